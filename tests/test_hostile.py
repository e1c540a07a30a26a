"""Hostile front ends and guests: nothing they send may crash the back end,
leak, or reach outside guest memory.

One dpdk-testpmd (module scope) runs our PMD with two ports forwarding to
each other (io, paired): ``eth_vhost0`` is attacked, ``eth_vhost1`` keeps a
well-behaved front end ("B", tests/harness/vhost_user_client.py) connected
for the whole module.  Each case of :data:`CASES` connects a hostile front
end to ``eth_vhost0`` and checks:

* the back end's log names the problem (the text lib/vhost logs for it;
  requests are logged by name at debug level, which proves that a message
  accepted silently was handled);
* the refusal is the one the back end's code makes: the connection closed,
  a reply-ack of 1, the chain given back empty with the drop counted in the
  port's xstats, the ring stopped, or the ring not started;
* afterwards testpmd is alive, its fd count is back to what it was (every fd
  we sent, every fd it made for the session, closed) and no memfd of ours is
  still open or mapped in it;
* B still gets answers meanwhile, and after the hostile front end has gone a
  well-behaved one ("A") on ``eth_vhost0`` exchanges frames with B,
  byte-exact both ways.

Legitimate but unusual front ends and guests (headers spread over many
descriptors, rings set up before the memory table...) are in the same table:
their frames must arrive byte-exact.

Whatever the log and refusal checks of a case find, the checks that
nothing broke (testpmd alive, fds back, the exchange) still run: a failing
refusal must not hide a crash or a leak.

After the cases, DPDK's virtio-user carries millions of packets through the
same port, counted on both sides.  With ``VHU_ASAN=1`` our testpmd runs under
ASan/LSan and the module's post-mortem fails on any report about our code.

Run: /usr/bin/python3 -m pytest -v tests/test_hostile.py
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import socket
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness import (Launcher, PmdSelection, gen_frames, make_frame, sanitizers, vhost_vdev,
                     virtio_user_vdev)
from harness.shared_testpmd import shared_testpmd_fixtures
from harness.testpmd import TestPmd, TestPmdError
from harness.vhost_user_client import (
    BUF_SIZE, DEFAULT_FEATURES, DEFAULT_GPA, DEFAULT_PROTOCOL_FEATURES, DESC_INDIRECT, DESC_NEXT, DESC_WRITE,
    F_CSUM, F_HOST_TSO4, F_HOST_TSO6, F_LOG_ALL, F_MRG_RXBUF, F_RING_PACKED,
    FLAG_REPLY, GSO_ECN, GSO_TCPV4, GSO_TCPV6, GSO_UDP, HDR_F_NEEDS_CSUM, IOTLB_ACCESS_FAIL,
    IOTLB_INVALIDATE, IOTLB_MISS, IOTLB_RO, IOTLB_RW, IOTLB_UPDATE, MAX_FDS, PAGE,
    PF_CONFIGURE_MEM_SLOTS, PF_LOG_SHMFD, PF_PAGEFAULT, RX_RING, TX_RING,
    VERSION, VRING_F_LOG, VRING_NOFD, FrontEnd, IommuLayout, Region, Req, VhostUserClient,
    bit, net_hdr, pack_addr, pack_desc, pack_iotlb, pack_log_base, pack_mem_reg, pack_mem_table,
    pack_packed_desc, pack_state, pack_u64)

pytestmark = pytest.mark.ours_only

PORT = "eth_vhost0"         # the port under attack
RING_SIZE = 256             # every guest's rings
SETTLE = 5.0                # seconds the control thread gets to clean up after a session
LOG_ARGS = ["--log-level=lib.vhu:debug"]

OFFLOAD_FEATURES = DEFAULT_FEATURES | bit(F_CSUM) | bit(F_HOST_TSO4) | bit(F_HOST_TSO6)
PACKED_FEATURES = DEFAULT_FEATURES | bit(F_RING_PACKED)
MRG_FEATURES = DEFAULT_FEATURES | bit(F_MRG_RXBUF)
LOG_FEATURES = DEFAULT_FEATURES | bit(F_LOG_ALL)

MiB = 1 << 20
TOP = 2**64


def ipv4_frame(l4, payload: bytes) -> bytes:
    """Ethernet/IPv4 without options: the L4 header starts at 34."""
    return bytes(Ether(src="02:00:00:00:00:04", dst="02:00:00:00:00:05") /
                 IP(src="10.4.0.1", dst="10.4.0.2") / l4 / payload)


FRAME = make_frame(random.Random(4), 200, index=1, tag=4)   # what hostile guests send
HDR = net_hdr()                                             # 12 bytes, nothing asked
TCP4 = ipv4_frame(TCP(sport=4, dport=5, flags="A"), b"t" * 1400)
UDP4 = ipv4_frame(UDP(sport=4, dport=5), b"u" * 300)
TSO_SMALL = ipv4_frame(TCP(sport=4, dport=5, flags="A"), b"s" * 100)
L4 = 34                     # csum_start of these frames
TCP_CSUM, UDP_CSUM = 16, 6  # csum_offset


# ==========================================================================
# the shared testpmd


def memfd_held(name: str, fds: Dict[str, str], maps: str) -> bool:
    # the kernel's name for it, whole ("vhu-x-1" must not match "vhu-x-10")
    link = f"/memfd:{name} (deleted)"
    return link in fds.values() or link in maps


class Bench:
    """Our testpmd with eth_vhost0 (attacked) and eth_vhost1 (front end B),
    forwarding io between them; restarted if a case killed it."""

    def __init__(self, pmd: PmdSelection):
        self.workdir = Path(tempfile.mkdtemp(prefix="vhu-hostile-",
                                             dir=os.environ.get("VHU_TMPDIR", "/tmp")))
        self.launcher = Launcher(self.workdir, pmd, asan=sanitizers.asan_requested())
        self.sock = [self.launcher.path("vh0.sock"), self.launcher.path("vh1.sock")]
        self.ours: Optional[TestPmd] = None
        self.b: Optional[FrontEnd] = None
        self.baseline_fds: Dict[str, str] = {}

    def start(self):
        # port 0 offers postcopy and a vIOMMU too, for their messages' cases
        self.ours = self.launcher.ours([vhost_vdev(0, self.sock[0], **{"postcopy-support": 1,
                                                                       "iommu-support": 1}),
                                        vhost_vdev(1, self.sock[1])],
                                       extra_eal=LOG_ARGS)
        self.ours.cmd("set fwd io")
        self.ours.start_forwarding()
        self.b = FrontEnd(self.sock[1], tag="B").start()
        self.ours.wait_link_up(1)
        self.baseline_fds = self.fds()

    def ensure_running(self):
        """A case that killed testpmd has failed with the evidence: start afresh."""
        if self.ours is not None and self.ours.alive:
            return
        if self.ours is not None:
            self.b.close()
            self.ours.close()
            self.ours.checked = True
        self.start()

    # ------------------------------------------------------------ inspection

    def fds(self) -> Dict[str, str]:
        """testpmd's open fds: number -> what it points at."""
        out = {}
        base = f"/proc/{self.ours.proc.pid}/fd"
        for name in os.listdir(base):
            with contextlib.suppress(OSError):
                out[name] = os.readlink(f"{base}/{name}")
        return out

    def mappings(self) -> str:
        with open(f"/proc/{self.ours.proc.pid}/maps") as f:
            return f.read()

    def xstats(self, port: int = 0) -> Dict[str, int]:
        return self.ours.xstats(port)

    def link_up(self, port: int = 0) -> bool:
        return self.ours.link_up(port)

    def wait_log(self, pattern: str, mark: int, timeout: float = 5.0):
        try:
            self.ours.wait_log(pattern, timeout=timeout, start=mark)
        except TestPmdError as exc:
            raise AssertionError(f"no log line /{pattern}/ after the attack; our log since:\n"
                                 f"{self.ours.log[mark:][-3000:]}") from exc

    def assert_alive(self, what: str):
        if self.ours.alive:
            problems = sanitizers.sanitizer_problems(self.ours.log, self.launcher.pmd.lib_name)
            assert not problems, f"{what}: " + "\n".join(problems)
            return
        self.ours.wait_exit(10)
        problems = self.launcher.our_side_problems(self.ours, require_clean_exit=False)
        raise AssertionError(f"testpmd died {what} (rc={self.ours.returncode}):\n" +
                             "\n".join(problems) + f"\nlog tail:\n{self.ours.tail(6000)}")

    def assert_fds_back(self, names: Sequence[str]):
        """Within SETTLE seconds: fd count back at the baseline, and none of
        our memfds ``names`` open or mapped in testpmd (the control thread
        closes the session's fds before it unmaps its memory)."""
        deadline = time.monotonic() + SETTLE
        while True:
            now, maps = self.fds(), self.mappings()
            held = [n for n in names if memfd_held(n, now, maps)]
            if (len(now) == len(self.baseline_fds) and not held) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.02)
        extra = {n: t for n, t in now.items() if self.baseline_fds.get(n) != t}
        assert len(now) == len(self.baseline_fds), (
            f"testpmd holds {len(now)} fds, {len(self.baseline_fds)} before the case; "
            f"new ones: {extra}")
        assert not held, f"testpmd still holds or maps our memfd(s) {held}"

    def exchange(self, seed: int):
        """A well-behaved front end on eth_vhost0 and B swap frames through
        testpmd, byte-exact and in order both ways."""
        a_frames = gen_frames(6, seed=seed, tag=0xA)
        b_frames = gen_frames(6, seed=seed + 1, tag=0xB)
        stray = self.b.drain()
        assert not stray, f"B received {len(stray)} frame(s) nobody sent it"
        a = FrontEnd(self.sock[0], tag="A")
        try:
            a.start()
            a.send_frames(a_frames)
            got = self.b.receive(len(a_frames), timeout=5, quiet=0.02)
            assert got == a_frames, f"A -> B: {len(got)} of {len(a_frames)} frames, or altered"
            self.b.send_frames(b_frames)
            got = a.receive(len(b_frames), timeout=5, quiet=0.02)
            assert got == b_frames, f"B -> A: {len(got)} of {len(b_frames)} frames, or altered"
        finally:
            a.close()
        self.assert_fds_back([a.mem.name])

    def close(self) -> List[str]:
        """Quit; the post-mortem of our testpmd (exit status, sanitizers)."""
        problems = []
        if self.b is not None:
            self.b.close()
        if self.ours is not None and not self.ours.checked:
            self.ours.quit()
            problems = self.launcher.our_side_problems(
                self.ours, ports={"eth_vhost0": self.sock[0], "eth_vhost1": self.sock[1]})
        problems += self.launcher.close_all()
        if not problems and not os.environ.get("VHU_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


def started_bench(pmd) -> "Bench":
    b = Bench(pmd)
    b.start()
    return b


bench, _show_our_log_on_failure = shared_testpmd_fixtures(started_bench, "the hostile cases")


# ==========================================================================
# one case: a session of hostile front ends, and what they achieved


@dataclass
class Outcome:
    """What an attack leaves for its refusal check."""
    client: Optional[VhostUserClient] = None
    ack: Optional[int] = None               # last reply-ack / u64 reply
    ring: object = None                     # the ring a chain was offered on
    buf_id: Optional[int] = None            # the id its used entry must carry
    frames: Sequence[bytes] = ()            # what B must receive (legitimate cases)
    after: Optional[Callable[[], None]] = None       # extra checks once refused


_probe_serial = itertools.count()


class Session:
    """The hostile front ends of one case, and the fds and memfds they made."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.b = bench.b
        self.sock = bench.sock[0]
        self.clients: List[VhostUserClient] = []
        self.memfds: List[str] = []
        self.fds: List[int] = []

    def raw(self) -> VhostUserClient:
        c = VhostUserClient(self.sock)
        self.clients.append(c)
        return c

    def guest(self, features: int = DEFAULT_FEATURES, **kw) -> FrontEnd:
        g = FrontEnd(self.sock, features=features, queue_size=RING_SIZE, tag="hostile", **kw)
        self.clients.append(g)
        self.memfds.append(g.mem.name)
        return g

    def probe_fds(self, n: int, size: int = 4096) -> List[int]:
        """memfds whose names show whether testpmd kept them."""
        fds = []
        for _ in range(n):
            name = f"vhu-probe-{os.getpid()}-{next(_probe_serial)}"
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
            self.memfds.append(name)
            fds.append(fd)
        self.fds += fds
        return fds

    def close(self):
        for c in self.clients:
            c.close()
        for fd in self.fds:
            os.close(fd)


# ---------------------------------------------------------------- refusals

class Refusal:
    def check(self, s: Session, o: Outcome, x0: Dict[str, int]):
        raise NotImplementedError


class Closes(Refusal):
    """The back end hangs up on the front end."""

    def check(self, s, o, x0):
        assert o.client.wait_closed(5.0), "the back end kept the connection open"


class Answers(Refusal):
    """The request is answered ``value`` (ack or u64 reply: 1 = refused,
    0 = accepted) and the connection goes on."""

    def __init__(self, value: int):
        self.value = value

    def check(self, s, o, x0):
        assert o.ack == self.value, f"answered {o.ack}, expected {self.value}"
        assert o.client.still_talks(), "the connection did not survive"


class StillServes(Refusal):
    """Nothing to refuse: the connection goes on being served."""

    def check(self, s, o, x0):
        assert o.client.still_talks(), "the connection is not served any more"


class Waits(Refusal):
    """Half a message: the connection stays open (the rest may come), and
    the control thread keeps serving the other port meanwhile."""

    def check(self, s, o, x0):
        assert not o.client.wait_closed(0.3), "closed on a message still arriving"
        assert s.b.still_talks(), "the control thread stalls on half a message"


class NotStarted(Refusal):
    """Every message accepted, but the ring never runs: the link stays down."""

    def check(self, s, o, x0):
        assert o.ack == 0, f"ack {o.ack}: the message itself should be accepted"
        assert o.client.still_talks()
        assert not s.bench.link_up(), "the link is up with a ring that cannot run"


def assert_deltas(x1: Dict[str, int], x0: Dict[str, int], expected: Dict[str, int], port=0):
    got = {k: x1[k] - x0[k] for k in expected}
    assert got == expected, f"port {port} xstats deltas {got}, expected {expected}"


def wait_used(ring, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = ring.completed()
        if done:
            return done
        time.sleep(0.005)
    return []


def queue_of(ring) -> str:
    """Prefix of the xstats of a guest ring: guest TX ring -> our ethdev RX
    queue ("rx_q0_"), guest RX ring -> our ethdev TX queue ("tx_q0_")."""
    return "rx_q0_" if ring.index == TX_RING else "tx_q0_"


class Drops(Refusal):
    """The chain comes back used with length 0; the frame is dropped and
    counted (malformed chain + dropped packet) and reaches nobody."""

    def check(self, s, o, x0):
        used = wait_used(o.ring)
        assert used == [(o.buf_id, 0)], f"used entries {used}, expected [({o.buf_id}, 0)]"
        q = queue_of(o.ring)
        assert_deltas(s.bench.xstats(), x0, {q + "malformed_chains": 1, q + "dropped_packets": 1,
                                             q + "good_packets": 0})
        assert s.b.drain() == [], "a refused frame reached the other port"


class Stops(Refusal):
    """The ring is marked broken: nothing is completed on it again, not even
    a good chain offered afterwards."""

    def check(self, s, o, x0):
        ring, mem = o.ring, o.client.mem
        time.sleep(0.1)
        if ring.packed:
            assert ring.completed() == [], "a chain was completed on a stopped ring"
        else:
            used = ring.used_idx()
            good = mem.alloc(len(HDR + FRAME))
            mem.write(good, HDR + FRAME)
            ring.write_desc(1, mem.gpa(good), len(HDR + FRAME),
                            DESC_WRITE if ring.index == RX_RING else 0)
            ring.publish_avail(used)
            ring.make_available(1)
            if ring.index == RX_RING:
                s.b.send_frames([FRAME])    # the back end looks at RX rings for frames only
            time.sleep(0.2)
            assert ring.used_idx() == used, "the stopped ring was used again"
        q = queue_of(ring)
        assert_deltas(s.bench.xstats(), x0, {q + "malformed_chains": 1, q + "good_packets": 0})
        assert s.b.drain() == []


class Delivers(Refusal):
    """Legitimate: the frames arrive at B byte-exact, nothing is refused,
    and the port says its link is up."""

    def check(self, s, o, x0):
        got = s.b.receive(len(o.frames), timeout=5, quiet=0.05)
        assert got == list(o.frames), \
            f"B received {len(got)} frame(s), expected {len(o.frames)} unchanged"
        assert_deltas(s.bench.xstats(), x0, {"rx_q0_malformed_chains": 0,
                                             "rx_q0_dropped_packets": 0,
                                             "rx_q0_good_packets": len(o.frames)})
        assert s.bench.link_up(), "frames flow but the port reports its link down"


CLOSES, NACKS, ACCEPTS, NOT_STARTED, DROPS, STOPS, DELIVERS = (
    Closes(), Answers(1), Answers(0), NotStarted(), Drops(), Stops(), Delivers())


@dataclass
class Case:
    id: str
    attack: Callable[[Session], Outcome]
    log: str                    # regex, searched in testpmd's log after the attack
    refusal: Refusal


def run_case(bench: Bench, case: Case):
    """The attack, its log line and refusal; then, whatever those gave, the
    checks that nothing broke: a wrong refusal must not hide a crash or a leak."""
    bench.ensure_running()
    mark = len(bench.ours.log)
    x0 = bench.xstats()
    s = Session(bench)
    wrong = None
    try:
        o = case.attack(s)
        bench.wait_log(case.log, mark)
        case.refusal.check(s, o, x0)
        if o.after:
            o.after()
        assert s.b.still_talks(), "the other port's front end got no answer"
    except (AssertionError, OSError, TestPmdError) as exc:
        wrong = exc
    finally:
        s.close()
    try:
        bench.assert_alive("after the hostile front end")
        bench.assert_fds_back(s.memfds)
        # the session's fds go first, then the link-down event (session end):
        # under a slow runtime (TSan) the two are visibly apart
        try:
            bench.ours.wait_link(0, up=False, timeout=SETTLE)
        except TestPmdError as exc:
            raise AssertionError("link still up after the front end left") from exc
        bench.exchange(seed=zlib.crc32(case.id.encode()))
    except AssertionError as exc:
        if wrong is not None:
            raise AssertionError(f"{exc}\n(and before that: {wrong!r})") from exc
        raise
    if wrong is not None:
        raise wrong


# ==========================================================================
# attacks: each connects its front ends through the Session and returns the
# Outcome its refusal check needs


def msg(request: int, payload: bytes = b"", *, flags: int = VERSION,
        size: Optional[int] = None, nfds: int = 0):
    """One message, as given, from a fresh front end; ``nfds`` probe memfds
    ride along."""
    def attack(s: Session) -> Outcome:
        c = s.raw()
        c.send(request, payload, s.probe_fds(nfds), flags=flags, size=size)
        return Outcome(client=c)
    return attack


def acked(request: int, payload: Callable[[FrontEnd], bytes], *,
          fds: Callable[[Session, FrontEnd], Sequence[int]] = lambda s, g: (),
          need_reply: bool = True):
    """One request after negotiation, with NEED_REPLY (or, for requests that
    are always answered, as it is); the outcome holds the u64 answered."""
    def attack(s: Session) -> Outcome:
        g = s.guest()
        g.negotiate()
        ack = g.call(request, payload(g), fds(s, g), need_reply=need_reply).u64
        return Outcome(client=g, ack=ack)
    return attack


def log_base(size: int, offset: int):
    """SET_LOG_BASE (always answered, 1 = refused) on a 4 KiB probe memfd."""
    return acked(Req.SET_LOG_BASE, lambda g: pack_log_base(size, offset),
                 fds=lambda s, g: s.probe_fds(1), need_reply=False)


def mem_table(regions: Callable[[FrontEnd], List[Region]],
              fd: Callable[[Session, FrontEnd], int] = lambda s, g: g.mem.fd):
    """SET_MEM_TABLE with ``regions`` (each backed by ``fd``), after negotiation."""
    return acked(Req.SET_MEM_TABLE, lambda g: pack_mem_table(regions(g)),
                 fds=lambda s, g: [fd(s, g)] * len(regions(g)))


def read_only_fd(s: Session, g: FrontEnd) -> int:
    fd = os.open(f"/proc/self/fd/{g.mem.fd}", os.O_RDONLY | os.O_CLOEXEC)
    s.fds.append(fd)
    return fd


def pipe_fd(s: Session, g: FrontEnd) -> int:
    r, w = os.pipe()
    s.fds += [r, w]
    return r


def ring_step(request: int, payload: Callable[[FrontEnd], bytes],
              features: int = DEFAULT_FEATURES):
    """Queue pair 0 set up, except that ring 1's step ``request`` carries
    ``payload``; the rest of ring 1's set-up follows it.  The outcome holds
    that step's ack."""
    def attack(s: Session) -> Outcome:
        g = s.guest(features).prepare()
        g.set_up_ring(g.rx)
        steps = [(Req.SET_VRING_NUM, lambda g: pack_state(TX_RING, RING_SIZE)),
                 (Req.SET_VRING_BASE, lambda g: pack_state(TX_RING, g.tx.base())),
                 (Req.SET_VRING_ADDR, lambda g: g.tx.addr_payload()),
                 (Req.SET_VRING_KICK, lambda g: pack_u64(TX_RING))]
        ack = None
        for req, default in steps:
            fds = [g.tx.kickfd] if req == Req.SET_VRING_KICK else []
            value = g.ack(req, (payload if req == request else default)(g), fds)
            if req == request:
                ack = value
        g.enable()
        return Outcome(client=g, ack=ack)
    return attack


def same_fd_count(s: Session, action: Callable[[], None]):
    """testpmd holds as many fds after ``action`` as before it."""
    before = len(s.bench.fds())
    action()
    after = len(s.bench.fds())
    assert after == before, f"testpmd went from {before} to {after} fds"


def ring_fds_replaced(s: Session) -> Outcome:
    """Kick, call and err fds of both rings replaced 30 times while running:
    each old fd must be closed."""
    g = s.guest().start()

    def replace_all():
        for ring in g.rings:
            for req in (Req.SET_VRING_KICK, Req.SET_VRING_CALL, Req.SET_VRING_ERR):
                fd = os.eventfd(0)
                try:
                    g.checked(req, pack_u64(ring.index), [fd])
                finally:
                    os.close(fd)
    replace_all()       # the err fds are new: from here on every fd replaces one
    same_fd_count(s, lambda: [replace_all() for _ in range(30)])
    return Outcome(client=g, ack=0)


def log_fd_not_kept(s: Session) -> Outcome:
    """SET_LOG_FD accepted 20 times: the back end has no use for the fd and
    must not keep it."""
    g = s.guest()
    g.negotiate()
    fds = s.probe_fds(20)
    same_fd_count(s, lambda: [g.checked(Req.SET_LOG_FD, b"", [fd]) for fd in fds])
    return Outcome(client=g, ack=0)


def truncated_payload(s: Session) -> Outcome:
    """Half of SET_FEATURES' payload, then nothing."""
    c = s.raw()
    c.send_raw(struct.pack("<III", Req.SET_FEATURES, VERSION, 8) + b"\0" * 4)
    return Outcome(client=c)


def dribble(s: Session) -> Outcome:
    """GET_FEATURES one byte per write: assembled across reads and answered."""
    c = s.raw()
    for byte in struct.pack("<III", Req.GET_FEATURES, VERSION, 0):
        c.send_raw(bytes([byte]))
        time.sleep(0.005)
    reply = c.recv_reply()
    assert (reply.request, reply.flags, len(reply.payload)) == \
        (Req.GET_FEATURES, VERSION | FLAG_REPLY, 8), f"reply {reply}"
    return Outcome(client=c)


def never_reads_replies(s: Session) -> Outcome:
    """GET_FEATURES after GET_FEATURES without reading a single answer: the
    back end cannot queue answers forever."""
    c = s.raw()
    burst = struct.pack("<III", Req.GET_FEATURES, VERSION, 0) * 200
    c.sock.settimeout(10)
    with contextlib.suppress(OSError):      # hung up on, as it should
        for _ in range(200):
            c.sock.sendall(burst)
    return Outcome(client=c)


# ---- guest memory contents

def put(g: FrontEnd, data: bytes) -> int:
    """``data`` somewhere fresh in guest memory; its guest physical address."""
    off = g.mem.alloc(len(data) or 1)
    g.mem.write(off, data)
    return g.mem.gpa(off)


def mem_end(g: FrontEnd) -> int:
    return g.mem.gpa(g.mem.size)


def whole(g: FrontEnd, data: bytes, flags: int = 0) -> tuple:
    """One piece (gpa, len, flags) holding ``data``."""
    return (put(g, data), len(data), flags)


def spread(g: FrontEnd, data: bytes, cuts: Sequence[int]) -> List[tuple]:
    """``data`` cut at the offsets ``cuts``, one piece each."""
    edges = [0, *cuts, len(data)]
    return [whole(g, data[a:b]) for a, b in zip(edges, edges[1:])]


def offer(ring, pieces: Sequence[tuple], buf_id: int = 0) -> int:
    """Chain ``pieces`` [(gpa, len, flags)] made available on ``ring``:
    descriptors buf_id, buf_id + 1, ... linked by NEXT (split) or
    consecutive slots (packed).  Returns the id the used entry will carry."""
    if ring.packed:
        ring.add_chain(pieces, buf_id)
        return buf_id
    for i, (addr, length, flags) in enumerate(pieces):
        more = DESC_NEXT if i < len(pieces) - 1 else 0
        ring.write_desc(buf_id + i, addr, length, flags | more, buf_id + i + 1)
    ring.make_available(buf_id)
    return buf_id


# ---- what guests put in their rings

def guest_tx(build: Callable[[FrontEnd], int], features: int = DEFAULT_FEATURES,
             frames: Sequence[bytes] = (), regions=None):
    """A started guest offers on its TX ring what ``build(g)`` writes there
    (returning the used id to expect)."""
    def attack(s: Session) -> Outcome:
        g = s.guest(features)
        g.start(regions=regions(g) if regions else None)
        buf_id = build(g)
        g.tx.kick()
        return Outcome(client=g, ring=g.tx, buf_id=buf_id, frames=frames)
    return attack


def tx_frame(hdr: bytes, frame: bytes):
    """One frame after the virtio-net header ``hdr`` in one TX buffer, from
    a guest that negotiated checksum and segmentation offloads."""
    return guest_tx(lambda g: offer(g.tx, [whole(g, hdr + frame)]), OFFLOAD_FEATURES)


def guest_rx(build: Callable[[FrontEnd], int], features: int = DEFAULT_FEATURES,
             check_untouched: bool = False):
    """A started guest offers on its RX ring (instead of good buffers) what
    ``build(g)`` writes there; B then sends a frame, which testpmd forwards
    to it.  ``check_untouched``: guest memory stays as the guest left it,
    except where the completion lands."""
    def attack(s: Session) -> Outcome:
        g = s.guest(features).start(post_rx=False)
        buf_id = build(g)
        snapshot = g.mem.read(0, g.mem.size)
        s.b.send_frames([FRAME])

        def untouched():
            now = g.mem.read(0, g.mem.size)
            start, length = g.rx.device_writes()
            end = start + length
            assert now[:start] + now[end:] == snapshot[:start] + snapshot[end:], \
                "the back end wrote into guest memory it may not write"
        return Outcome(client=g, ring=g.rx, buf_id=buf_id,
                       after=untouched if check_untouched else None)
    return attack


def loop(length: int):
    """Split descriptors 0 -> 1 -> 0 ..., each ``length`` bytes."""
    def build(g: FrontEnd) -> int:
        at = put(g, bytes(max(length, 1)))
        g.tx.write_desc(0, at, length, DESC_NEXT, 1)
        g.tx.write_desc(1, at, length, DESC_NEXT, 0)
        g.tx.make_available(0)
        return 0
    return build


def next_beyond_ring(g: FrontEnd) -> int:
    g.tx.write_desc(0, put(g, HDR + FRAME), len(HDR + FRAME), DESC_NEXT, RING_SIZE)
    g.tx.make_available(0)
    return 0


def indirect(entries: Callable[[FrontEnd], List[bytes]], length: Optional[int] = None,
             flags: int = DESC_INDIRECT, ring: int = TX_RING):
    """A split descriptor pointing to an indirect table of ``entries``
    (``length`` may lie about its size)."""
    def build(g: FrontEnd) -> int:
        body = b"".join(entries(g))
        r = g.rings[ring]
        r.write_desc(0, put(g, body), len(body) if length is None else length, flags)
        r.make_available(0)
        return 0
    return build


def packed_indirect(entries: Callable[[FrontEnd], List[bytes]], length: Optional[int] = None):
    """The same on a packed TX ring, buffer id 7."""
    def build(g: FrontEnd) -> int:
        body = b"".join(entries(g))
        g.tx.add_chain([(put(g, body), len(body) if length is None else length,
                         DESC_INDIRECT)], 7)
        return 7
    return build


def avail_index(value: int, ring: int = TX_RING):
    """A good chain at slot 0, and avail->idx set to ``value``."""
    def build(g: FrontEnd) -> int:
        r = g.rings[ring]
        r.write_desc(0, put(g, HDR + FRAME), len(HDR + FRAME),
                     DESC_WRITE if ring == RX_RING else 0)
        r.write_avail_entry(0, 0)
        r.publish_avail(value)
        return 0
    return build


def head(value: int, ring: int = TX_RING):
    """An available entry naming descriptor ``value``."""
    def build(g: FrontEnd) -> int:
        g.rings[ring].make_available(value)
        return value
    return build


def packed_endless_chain(g: FrontEnd) -> int:
    """Every slot of the ring available, each one saying "more follows"
    (the head last, as a driver publishes a chain)."""
    at = put(g, HDR + FRAME)
    for slot in reversed(range(RING_SIZE)):
        g.tx.write_slot(slot, at, 16, 9, DESC_NEXT | g.tx.avail_flags(1))
    return 9


def two_regions(g: FrontEnd) -> List[Region]:
    """Guest memory as two regions, adjacent in both address spaces."""
    half = g.mem.size // 2
    return [g.mem.region(0, half), g.mem.region(half, half)]


def straddle(g: FrontEnd) -> int:
    """The frame in one buffer that starts in region 0 and ends in region 1."""
    data = HDR + FRAME
    off = g.mem.size // 2 - 100
    g.mem.write(off, data)
    return offer(g.tx, [(g.mem.gpa(off), len(data), 0)])


# ---- set-ups in unusual orders, repeated messages

def then_frames_flow(bring_up: Callable[[FrontEnd], None], features: int = DEFAULT_FEATURES):
    """``bring_up(g)`` brings the guest up its own way; a frame must then cross."""
    def attack(s: Session) -> Outcome:
        g = s.guest(features)
        bring_up(g)
        g.send_frames([FRAME])
        return Outcome(client=g, frames=[FRAME])
    return attack


def rings_before_memory(g: FrontEnd):
    g.negotiate()
    g.checked(Req.SET_FEATURES, pack_u64(g.features))
    for ring in g.rings:
        g.set_up_ring(ring)
    g.enable()
    g.checked(Req.SET_MEM_TABLE, pack_mem_table([g.mem.region()]), [g.mem.fd])
    g.post_rx_buffers()


def kick_before_addr(g: FrontEnd):
    g.prepare()
    for ring in g.rings:
        g.checked(Req.SET_VRING_KICK, pack_u64(ring.index), [ring.kickfd])
        g.checked(Req.SET_VRING_NUM, pack_state(ring.index, ring.size))
        g.checked(Req.SET_VRING_BASE, pack_state(ring.index, 0))
        g.checked(Req.SET_VRING_ADDR, ring.addr_payload())
    g.enable()
    g.post_rx_buffers()


def polling_only(g: FrontEnd):
    """No kick or call fds at all: "no fd" bit on both (the back end polls)."""
    g.negotiate()
    for ring in g.rings:
        g.checked(Req.SET_VRING_CALL, pack_u64(ring.index | VRING_NOFD))
    g.checked(Req.SET_FEATURES, pack_u64(g.features))
    g.checked(Req.SET_MEM_TABLE, pack_mem_table([g.mem.region()]), [g.mem.fd])
    for ring in g.rings:
        g.checked(Req.SET_VRING_NUM, pack_state(ring.index, ring.size))
        g.checked(Req.SET_VRING_BASE, pack_state(ring.index, 0))
        g.checked(Req.SET_VRING_ADDR, ring.addr_payload())
        g.checked(Req.SET_VRING_KICK, pack_u64(ring.index | VRING_NOFD))
    g.enable()
    g.post_rx_buffers()


def mem_table_again(g: FrontEnd):
    """A second SET_MEM_TABLE (same memory, new fd) while the rings run."""
    g.start()
    g.checked(Req.SET_MEM_TABLE, pack_mem_table([g.mem.region()]), [g.mem.fd])


def features_again(g: FrontEnd):
    """SET_FEATURES repeated while running, as QEMU does per queue pair."""
    g.start()
    g.checked(Req.SET_FEATURES, pack_u64(g.features))


def stopped_then_restarted(g: FrontEnd):
    """GET_VRING_BASE stops ring 1; a new kick fd starts it again."""
    g.start()
    reply = g.call(Req.GET_VRING_BASE, pack_state(TX_RING, 0))
    assert struct.unpack("<II", reply.payload) == (TX_RING, 0)
    g.checked(Req.SET_VRING_KICK, pack_u64(TX_RING), [g.tx.kickfd])


def get_vring_base_unstarted(s: Session) -> Outcome:
    g = s.guest()
    g.negotiate()
    reply = g.call(Req.GET_VRING_BASE, pack_state(TX_RING, 0))
    index, base = struct.unpack("<II", reply.payload)
    assert index == TX_RING
    return Outcome(client=g, ack=base)


def memory_pulled_from_under_rings(s: Session) -> Outcome:
    """A new memory table without the part holding the rings, while they run."""
    g = s.guest().start()
    half = g.mem.size // 2
    ack = g.ack(Req.SET_MEM_TABLE, pack_mem_table([g.mem.region(half, half)]), [g.mem.fd])
    return Outcome(client=g, ack=ack)


MEM_SLOTS = DEFAULT_PROTOCOL_FEATURES | bit(PF_CONFIGURE_MEM_SLOTS)


def set_up_then(protocol_features: int, set_up: Callable[[FrontEnd], object],
                steps: Callable[[FrontEnd], int]):
    """A front end that negotiated ``protocol_features``, taken through
    ``set_up`` (FrontEnd.negotiate, .prepare or .start), then ``steps``; the
    outcome holds what they return."""
    def attack(s: Session) -> Outcome:
        g = s.guest(protocol_features=protocol_features)
        set_up(g)
        return Outcome(client=g, ack=steps(g))
    return attack


def mem_reg(request: int, region: Callable[[FrontEnd], Region], *, start: bool = False,
            fds: Callable[[FrontEnd], Sequence[int]] = lambda g: ()):
    """ADD_MEM_REG or REM_MEM_REG of ``region`` from a front end that
    negotiated memory slots (its memory added as one region; with ``start``
    its rings running in it); the outcome holds the ack."""
    return set_up_then(MEM_SLOTS, FrontEnd.start if start else FrontEnd.prepare,
                       lambda g: g.ack(request, pack_mem_reg(region(g)), fds(g)))


def mem_slots_full(s: Session) -> Outcome:
    """Every slot GET_MAX_MEM_SLOTS offers taken (a page each), then one more."""
    g = s.guest(protocol_features=MEM_SLOTS)
    g.prepare(regions=[])
    for i in range(g.max_mem_slots):
        g.add_region(g.mem.region(i * 4096, 4096))
    ack = g.ack(Req.ADD_MEM_REG, pack_mem_reg(Region(g.mem.gpa(g.mem.size), 4096,
                                                     g.mem.uaddr(g.mem.size), 0)), [g.mem.fd])
    return Outcome(client=g, ack=ack)


POSTCOPY = DEFAULT_PROTOCOL_FEATURES | bit(PF_PAGEFAULT)


def postcopy(steps: Callable[[FrontEnd], int], *, with_memory: bool = False):
    """A front end that negotiated PAGEFAULT (with its memory table first if
    ``with_memory``), then ``steps``; the outcome holds what they return."""
    return set_up_then(POSTCOPY, FrontEnd.prepare if with_memory else FrontEnd.negotiate,
                       steps)


def advised(g: FrontEnd):
    """POSTCOPY_ADVISE; the userfaultfd it brings is closed here."""
    for fd in g.call(Req.POSTCOPY_ADVISE).fds:
        os.close(fd)


def listen_after_advice(g: FrontEnd) -> int:
    advised(g)
    return g.ack(Req.POSTCOPY_LISTEN)


def unacknowledged_table(g: FrontEnd) -> int:
    """Our postcopy answer to SET_MEM_TABLE, then another request instead of the ack."""
    advised(g)
    g.checked(Req.POSTCOPY_LISTEN)
    g.call(Req.SET_MEM_TABLE, pack_mem_table([g.mem.region()]), [g.mem.fd], need_reply=True)
    g.send(Req.GET_FEATURES)
    return 0


def layout_switched_while_running(s: Session) -> Outcome:
    """SET_FEATURES turning a running split ring into a packed one."""
    g = s.guest().start()
    return Outcome(client=g, ack=g.ack(Req.SET_FEATURES,
                                       pack_u64(g.features | bit(F_RING_PACKED))))


def base_set_while_running(s: Session) -> Outcome:
    """SET_VRING_BASE on a ring being polled: it would move the indices
    under the data path (and under chains held zero-copy)."""
    g = s.guest().start()
    return Outcome(client=g, ack=g.ack(Req.SET_VRING_BASE, pack_state(0, 7)))


def resized_while_running(s: Session) -> Outcome:
    """SET_VRING_NUM with another size on a ring being polled: its positions
    (and chains held zero-copy) belong to the old size."""
    g = s.guest().start()
    return Outcome(client=g, ack=g.ack(Req.SET_VRING_NUM, pack_state(0, 8)))


def reset_owner_running(s: Session) -> Outcome:
    """RESET_OWNER while running: the session is dropped, guest memory let
    go at once, the connection kept."""
    g = s.guest().start()
    ack = g.ack(Req.RESET_OWNER)

    def memory_released():
        assert not memfd_held(g.mem.name, {}, s.bench.mappings()), \
            "guest memory still mapped after RESET_OWNER"
    return Outcome(client=g, ack=ack, after=memory_released)


# ---- guest memory under attack

def memory_shrunk_under_running_rings(s: Session) -> Outcome:
    """The front end truncates its memfd after SET_MEM_TABLE, rings running.
    (Our own mapping of it must not be touched from here on either.)"""
    g = s.guest().start()
    os.ftruncate(g.mem.fd, 0)
    return Outcome(client=g)


LOG_OFFSET, LOG_SIZE, LOG_FILE = 4096, 64, 8192    # a bitmap for the first 2 MiB


def dirty_log_smaller_than_memory(s: Session) -> Outcome:
    """Live-migration logging with a log that covers only part of guest
    memory, and the used rings logged at a guest address beyond it: pages
    the back end writes inside the bitmap are marked, and nothing outside
    the bitmap is ever written."""
    g = s.guest(LOG_FEATURES, protocol_features=DEFAULT_PROTOCOL_FEATURES | bit(PF_LOG_SHMFD),
                gpa=0)
    g.prepare()
    log_fd = s.probe_fds(1, LOG_FILE)[0]
    assert g.call(Req.SET_LOG_BASE, pack_log_base(LOG_SIZE, LOG_OFFSET), [log_fd]).u64 == 0
    for ring in g.rings:
        g.set_up_ring(ring, flags=VRING_F_LOG, log=3 * MiB)
    g.enable()
    g.post_rx_buffers()
    g.send_frames([FRAME])

    def logged_inside_only():
        s.b.send_frames([FRAME])
        assert g.receive(1, timeout=5) == [FRAME]
        log = os.pread(log_fd, LOG_FILE, 0)
        assert log[:LOG_OFFSET] == bytes(LOG_OFFSET), "written below the dirty bitmap"
        assert log[LOG_OFFSET + LOG_SIZE:] == bytes(LOG_FILE - LOG_OFFSET - LOG_SIZE), \
            "written beyond the dirty bitmap"
        assert any(log[LOG_OFFSET:LOG_OFFSET + LOG_SIZE]), "the RX buffer was not marked dirty"
    return Outcome(client=g, frames=[FRAME], after=logged_inside_only)


# ---- guests behind a virtual IOMMU (iommu-support=1)

IOMMU = IommuLayout()


def traffic_flows(s: Session, g: FrontEnd):
    """A frame each way between ``g`` and B, byte-exact."""
    def check():
        g.send_frames([FRAME])
        assert s.b.receive(1, timeout=5, quiet=0.02) == [FRAME], "guest -> B lost"
        s.b.send_frames([FRAME])
        assert g.receive(1, timeout=5, quiet=0.02) == [FRAME], "B -> guest lost"
        assert not g.iommu.errors, f"the guest's IOMMU: {g.iommu.errors}"
    return check


def iommu_guest(steps: Callable[[FrontEnd], int], *, start: bool = False,
                features: int = DEFAULT_FEATURES, then_traffic: bool = False):
    """A guest behind its vIOMMU (ACCESS_PLATFORM, its request channel),
    prepared (features and memory) or, with ``start``, running and
    translating on request; then ``steps``, whose value is the outcome's
    ack. ``then_traffic``: frames must still cross both ways afterwards."""
    def attack(s: Session) -> Outcome:
        g = s.guest(features, iommu=IOMMU)
        g.start() if start else g.prepare()
        if start:
            s.bench.ours.wait_link_up(0)
        ack = steps(g)
        return Outcome(client=g, ack=ack, after=traffic_flows(s, g) if then_traffic else None)
    return attack


def iotlb(iova: int, size: int, uaddr: int, perm: int, type_: int):
    """One IOTLB_MSG (NEED_REPLY) with exactly these fields; its ack."""
    return lambda g: g.ack(Req.IOTLB_MSG, pack_iotlb(iova, size, uaddr, perm, type_))


def update_outside_memory(g: FrontEnd) -> int:
    """An update of a page the guest uses, to just past the end of its memory."""
    iova = g.ring_iovas[TX_RING]["desc"]
    return g.ack(Req.IOTLB_MSG, pack_iotlb(iova, PAGE, g.mem.uaddr(g.mem.size), IOTLB_RW,
                                           IOTLB_UPDATE))


def invalidate_everything(g: FrontEnd) -> int:
    """An invalidation from IOVA 4096 to past the top of the space (the range
    wraps): the rings' areas go too, and are asked for again."""
    return g.iommu.invalidate(PAGE, TOP - 1)


def update_before_memory_table(s: Session) -> Outcome:
    """ACCESS_PLATFORM negotiated, no memory yet: nothing to translate to."""
    g = s.guest(iommu=IOMMU)
    g.negotiate()
    g.checked(Req.SET_FEATURES, pack_u64(g.features))
    return Outcome(client=g, ack=iotlb(0, PAGE, g.mem.uaddr(0), IOTLB_RW, IOTLB_UPDATE)(g))


def never_answered(s: Session) -> Outcome:
    """A guest TX chain whose buffer is at an IOVA the guest never maps:
    the back end asks, nobody answers, the chain stays in the ring; the
    guest's RX ring keeps receiving what B sends meanwhile."""
    g = s.guest(iommu=IOMMU).start()
    s.bench.ours.wait_link_up(0)
    hole = g.iommu.reserve()
    g.tx.write_desc(0, hole, len(HDR + FRAME))
    g.tx.make_available(0)
    g.tx.kick()

    def ring_waits_others_flow():
        assert g.iommu.wait_misses([hole], timeout=5), "no miss for the unmapped IOVA"
        s.b.send_frames([FRAME] * 3)
        assert g.receive(3, timeout=5, quiet=0.02) == [FRAME] * 3, \
            "the guest's RX ring stopped while its TX ring waits"
        assert g.tx.used_idx() == 0, "a chain with an untranslated buffer was completed"
        assert s.b.drain() == [], "something left the waiting ring"
        assert s.bench.link_up(), "link down while a chain waits for a translation"
        x = s.bench.xstats()
        assert x["rx_q0_malformed_chains"] == x0["rx_q0_malformed_chains"]
    x0 = s.bench.xstats()
    return Outcome(client=g, ack=0, after=ring_waits_others_flow)


def rx_buffer_read_only(s: Session) -> Outcome:
    """An RX buffer whose I/O page the guest's IOMMU translates read-only:
    the back end asks to write, gets a read-only translation, and must
    refuse the chain without writing."""
    g = s.guest(iommu=IOMMU).start(post_rx=False)
    s.bench.ours.wait_link_up(0)
    iova = g.buf(RX_RING, 0)
    for page in g.iommu.pages(iova, BUF_SIZE):
        g.iommu.map(page, g.iommu.table[page][0], IOTLB_RO)
    g.iommu.write(iova, b"\xa5" * BUF_SIZE)
    g.rx.write_desc(0, iova, BUF_SIZE, DESC_WRITE)
    g.rx.make_available(0)
    s.b.send_frames([FRAME])

    def untouched():
        assert g.iommu.read(iova, BUF_SIZE) == b"\xa5" * BUF_SIZE, \
            "the back end wrote into a buffer translated read-only"
        assert g.iommu.misses_for([iova]), "the buffer's translation was never asked"
    return Outcome(client=g, ring=g.rx, buf_id=0, after=untouched)


def backend_channel_replaced(s: Session) -> Outcome:
    """SET_BACKEND_REQ_FD 20 more times with new sockets: each old channel
    is closed (testpmd's fd count does not grow) and misses go to the last."""
    g = s.guest(iommu=IOMMU)
    g.negotiate()

    def replace():
        for _ in range(20):
            ours, theirs = socket.socketpair()
            try:
                g.checked(Req.SET_BACKEND_REQ_FD, b"", [theirs.fileno()])
            finally:
                ours.close()
                theirs.close()
    same_fd_count(s, replace)
    return Outcome(client=g, ack=0)


TOP_PAGE = TOP - PAGE
IOTLB_TYPE = rf"{PORT}: IOTLB_MSG of type %d \(the front end sends updates and invalidations\)"


# ==========================================================================
# the catalogue

def mem_log_prefix(gpa: int = 0) -> str:
    return rf"{PORT}: memory region at gpa {gpa:#x}"


CASES: List[Case] = [
    # ---- message framing ------------------------------------------------
    Case("unknown_request", msg(99), rf"{PORT}: unsupported request 99\b", CLOSES),
    Case("request_zero", msg(0), rf"{PORT}: unsupported request 0\b", CLOSES),
    Case("request_max_u32", msg(0xFFFFFFFF), rf"{PORT}: unsupported request 4294967295\b",
         CLOSES),
    Case("version_0", msg(Req.GET_FEATURES, flags=0),
         rf"{PORT}: request 1 with bad flags 0x0 ", CLOSES),
    Case("version_2", msg(Req.GET_FEATURES, flags=2),
         rf"{PORT}: request 1 with bad flags 0x2 ", CLOSES),
    Case("reply_bit_set", msg(Req.GET_FEATURES, flags=VERSION | FLAG_REPLY),
         rf"{PORT}: request 1 with bad flags 0x5 ", CLOSES),
    Case("reserved_flag_bit", msg(Req.GET_FEATURES, flags=VERSION | 0x10),
         rf"{PORT}: request 1 with bad flags 0x11 ", CLOSES),
    Case("size_beyond_any_payload", msg(Req.SET_MEM_TABLE, size=513),
         rf"{PORT}: request 5 announces a 513-byte payload \(at most 512\)", CLOSES),
    Case("size_max_u32", msg(Req.GET_FEATURES, size=0xFFFFFFFF),
         rf"{PORT}: request 1 announces a 4294967295-byte payload", CLOSES),
    Case("payload_short_for_request", msg(Req.SET_FEATURES, b"\0" * 4),
         rf"{PORT}: SET_FEATURES with a payload of 4 bytes", CLOSES),
    Case("payload_on_request_without_one", msg(Req.GET_FEATURES, pack_u64(0)),
         rf"{PORT}: GET_FEATURES with a payload of 8 bytes", CLOSES),
    Case("vring_addr_truncated", msg(Req.SET_VRING_ADDR, pack_addr(1, 0, 0, 0)[:24]),
         rf"{PORT}: SET_VRING_ADDR with a payload of 24 bytes", CLOSES),
    Case("mem_table_count_lies", msg(Req.SET_MEM_TABLE,
                                     pack_mem_table([Region(0, 4096, 0)], nregions=2), nfds=2),
         rf"{PORT}: SET_MEM_TABLE with a payload of 40 bytes", CLOSES),
    Case("payload_truncated_then_silence", truncated_payload,
         rf"{PORT}: front end connected", Waits()),
    Case("header_one_byte_at_a_time", dribble, rf"{PORT}: GET_FEATURES", StillServes()),
    Case("replies_never_read", never_reads_replies,
         rf"{PORT}: cannot send the GET_FEATURES reply", CLOSES),

    # ---- file descriptors -----------------------------------------------
    Case("fd_on_request_without_fds", msg(Req.GET_FEATURES, nfds=1),
         rf"{PORT}: GET_FEATURES with 1 file descriptors, 0 expected", CLOSES),
    Case("fds_more_than_8", msg(Req.SET_FEATURES, pack_u64(0), nfds=MAX_FDS + 4),
         rf"{PORT}: more than 8 file descriptors on one message", CLOSES),
    Case("kick_without_fd_or_nofd_bit", msg(Req.SET_VRING_KICK, pack_u64(1)),
         rf"{PORT}: SET_VRING_KICK with 0 file descriptors, 1 expected", CLOSES),
    Case("call_nofd_bit_with_fd", msg(Req.SET_VRING_CALL, pack_u64(VRING_NOFD), nfds=1),
         rf"{PORT}: SET_VRING_CALL with 1 file descriptors, 0 expected", CLOSES),
    Case("mem_table_fewer_fds_than_regions",
         msg(Req.SET_MEM_TABLE, pack_mem_table([Region(0, 4096, 0), Region(4096, 4096, 4096)]),
             nfds=1),
         rf"{PORT}: SET_MEM_TABLE with 1 file descriptors, 2 expected", CLOSES),
    Case("log_base_without_fd", msg(Req.SET_LOG_BASE, pack_log_base(4096, 0)),
         rf"{PORT}: SET_LOG_BASE with 0 file descriptors, 1 expected", CLOSES),
    Case("log_fd_not_kept", log_fd_not_kept, rf"{PORT}: SET_LOG_FD", ACCEPTS),
    Case("ring_fds_replaced_while_running", ring_fds_replaced, rf"{PORT}: SET_VRING_ERR",
         ACCEPTS),

    # ---- ring indices -----------------------------------------------------
    Case("vring_num_ring_2", msg(Req.SET_VRING_NUM, pack_state(2, 256)),
         rf"{PORT}: SET_VRING_NUM for ring 2, but this port has 2 rings \(queues=1\)", CLOSES),
    Case("vring_addr_ring_max_u32", msg(Req.SET_VRING_ADDR, pack_addr(0xFFFFFFFF, 0, 0, 0)),
         rf"{PORT}: SET_VRING_ADDR for ring 4294967295,", CLOSES),
    Case("kick_ring_255", msg(Req.SET_VRING_KICK, pack_u64(255), nfds=1),
         rf"{PORT}: SET_VRING_KICK for ring 255,", CLOSES),
    Case("call_index_high_bits", msg(Req.SET_VRING_CALL, pack_u64(1 << 32), nfds=1),
         rf"{PORT}: SET_VRING_CALL with unknown bits in 0x100000000", CLOSES),
    Case("enable_ring_3", msg(Req.SET_VRING_ENABLE, pack_state(3, 1)),
         rf"{PORT}: SET_VRING_ENABLE for ring 3,", CLOSES),
    Case("get_vring_base_ring_2", msg(Req.GET_VRING_BASE, pack_state(2, 0)),
         rf"{PORT}: GET_VRING_BASE for ring 2,", CLOSES),

    # ---- SET_MEM_TABLE ------------------------------------------------------
    Case("mem_zero_regions", msg(Req.SET_MEM_TABLE, pack_mem_table([])),
         rf"{PORT}: SET_MEM_TABLE with a payload of 8 bytes", CLOSES),
    Case("mem_nine_regions",
         msg(Req.SET_MEM_TABLE, pack_mem_table([Region(i << 20, 4096, i << 20) for i in range(9)]),
             nfds=MAX_FDS),
         rf"{PORT}: SET_MEM_TABLE with a payload of 296 bytes", CLOSES),
    Case("mem_overlapping_gpa",
         mem_table(lambda g: [g.mem.region(0, MiB), Region(g.mem.gpa(MiB // 2), MiB,
                                                           g.mem.uaddr(2 * MiB), MiB)]),
         rf"{PORT}: memory region at gpa 0x[0-9a-f]+ \(.*\) overlaps the one at gpa", NACKS),
    Case("mem_overlapping_uaddr",
         mem_table(lambda g: [g.mem.region(0, MiB), Region(g.mem.gpa(2 * MiB), MiB,
                                                           g.mem.uaddr(MiB // 2), MiB)]),
         rf"{PORT}: memory region at gpa 0x[0-9a-f]+ \(.*\) overlaps the one at gpa", NACKS),
    Case("mem_gpa_overflow", mem_table(lambda g: [Region(TOP - 4096, 2 * 4096, 0)]),
         rf"{mem_log_prefix(TOP - 4096)} overflows \(uaddr 0x0 ", NACKS),
    Case("mem_uaddr_overflow", mem_table(lambda g: [Region(0, 2 * 4096, TOP - 4096)]),
         rf"{mem_log_prefix()} overflows .*uaddr 0xfffffffffffff000", NACKS),
    Case("mem_offset_overflow", mem_table(lambda g: [Region(0, 2 * 4096, 0, TOP - 4096)]),
         rf"{mem_log_prefix()} overflows .*offset 0xfffffffffffff000", NACKS),
    Case("mem_size_zero", mem_table(lambda g: [Region(0, 0, 0)]),
         rf"{mem_log_prefix()} has size 0", NACKS),
    Case("mem_second_region_bad", mem_table(lambda g: [g.mem.region(0, MiB),
                                                       Region(TOP - 4096, 2 * 4096, 0)]),
         rf"{mem_log_prefix(TOP - 4096)} overflows", NACKS),
    Case("mem_larger_than_file", mem_table(lambda g: [g.mem.region(0, 2 * g.mem.size)]),
         rf"{mem_log_prefix(DEFAULT_GPA)}: file of 4194304 bytes is smaller than offset \+ size 0x800000",
         NACKS),
    Case("mem_offset_beyond_file", mem_table(lambda g: [Region(0, 4096, 0, g.mem.size)]),
         rf"{mem_log_prefix()}: file of 4194304 bytes is smaller than offset \+ size 0x401000",
         NACKS),
    Case("mem_fd_is_a_pipe", mem_table(lambda g: [g.mem.region()], fd=pipe_fd),
         rf"{mem_log_prefix(DEFAULT_GPA)}: file of 0 bytes is smaller", NACKS),
    Case("mem_fd_read_only", mem_table(lambda g: [g.mem.region()], fd=read_only_fd),
         rf"{mem_log_prefix(DEFAULT_GPA)}: mmap of 0x400000 bytes: Permission denied", NACKS),


    # ---- memory slots: ADD_MEM_REG, REM_MEM_REG ------------------------------
    Case("mem_reg_not_negotiated",
         acked(Req.ADD_MEM_REG, lambda g: pack_mem_reg(g.mem.region()),
               fds=lambda s, g: [g.mem.fd]),
         rf"{PORT}: ADD_MEM_REG without PROTOCOL_F_CONFIGURE_MEM_SLOTS negotiated", NACKS),
    Case("mem_reg_payload_short", msg(Req.ADD_MEM_REG, bytes(32), nfds=1),
         rf"{PORT}: ADD_MEM_REG with a payload of 32 bytes", CLOSES),
    Case("add_mem_reg_without_fd", msg(Req.ADD_MEM_REG, pack_mem_reg(Region(0, 4096, 0))),
         rf"{PORT}: ADD_MEM_REG with 0 file descriptors, 1 expected", CLOSES),
    Case("rem_mem_reg_two_fds", msg(Req.REM_MEM_REG, pack_mem_reg(Region(0, 4096, 0)), nfds=2),
         rf"{PORT}: REM_MEM_REG with 2 file descriptors, 1 expected", CLOSES),
    Case("add_mem_reg_overlapping",
         mem_reg(Req.ADD_MEM_REG, lambda g: Region(g.mem.gpa(4096), 4096, g.mem.uaddr(g.mem.size)),
                 fds=lambda g: [g.mem.fd]),
         rf"{mem_log_prefix(DEFAULT_GPA + 4096)} \(.*\) overlaps the one at gpa", NACKS),
    Case("add_mem_reg_larger_than_file",
         mem_reg(Req.ADD_MEM_REG, lambda g: Region(g.mem.gpa(g.mem.size), 4096,
                                                   g.mem.uaddr(g.mem.size), g.mem.size),
                 fds=lambda g: [g.mem.fd]),
         rf"{mem_log_prefix(DEFAULT_GPA + 0x400000)}: file of 4194304 bytes is smaller", NACKS),
    Case("rem_mem_reg_unknown",
         mem_reg(Req.REM_MEM_REG, lambda g: Region(g.mem.gpa(0), 4096, g.mem.uaddr(0))),
         rf"{PORT}: REM_MEM_REG of a region not mapped \(gpa 0x100000000 ", NACKS),
    Case("mem_slots_beyond_max", mem_slots_full,
         rf"{PORT}: ADD_MEM_REG beyond the 509 memory slots offered", NACKS),
    Case("rem_mem_reg_under_the_rings",
         mem_reg(Req.REM_MEM_REG, lambda g: g.mem.region(), start=True),
         rf"{PORT}: region removed: gpa 0x100000000 [\s\S]*{PORT}: ring 0: descriptor area "
         r"\(0x7f0000000000\) of a 256-entry ring is not inside guest memory", NOT_STARTED),

    # ---- postcopy: POSTCOPY_ADVISE, _LISTEN, _END -----------------------------
    Case("postcopy_not_negotiated", acked(Req.POSTCOPY_LISTEN, lambda g: b""),
         rf"{PORT}: POSTCOPY_LISTEN without PROTOCOL_F_PAGEFAULT negotiated", NACKS),
    Case("postcopy_listen_before_advise", postcopy(lambda g: g.ack(Req.POSTCOPY_LISTEN)),
         rf"{PORT}: POSTCOPY_LISTEN before POSTCOPY_ADVISE", NACKS),
    Case("postcopy_listen_with_memory", postcopy(listen_after_advice, with_memory=True),
         rf"{PORT}: POSTCOPY_LISTEN with guest memory mapped already", NACKS),
    Case("postcopy_table_not_acknowledged", postcopy(unacknowledged_table),
         rf"{PORT}: GET_FEATURES while our postcopy memory table waits for its "
         r"acknowledgement", CLOSES),

    # ---- vIOMMU: SET_BACKEND_REQ_FD, IOTLB_MSG -------------------------------
    Case("backend_req_fd_not_negotiated",
         acked(Req.SET_BACKEND_REQ_FD, lambda g: b"", fds=lambda s, g: s.probe_fds(1)),
         rf"{PORT}: SET_BACKEND_REQ_FD without PROTOCOL_F_BACKEND_REQ negotiated", NACKS),
    Case("backend_req_fd_without_fd", msg(Req.SET_BACKEND_REQ_FD),
         rf"{PORT}: SET_BACKEND_REQ_FD with 0 file descriptors, 1 expected", CLOSES),
    Case("backend_req_fd_replaced", backend_channel_replaced, rf"{PORT}: SET_BACKEND_REQ_FD",
         ACCEPTS),
    Case("iotlb_msg_payload_short", msg(Req.IOTLB_MSG, bytes(24)),
         rf"{PORT}: IOTLB_MSG with a payload of 24 bytes", CLOSES),
    Case("iotlb_without_access_platform",
         acked(Req.IOTLB_MSG, lambda g: pack_iotlb(0, PAGE, g.mem.uaddr(0), IOTLB_RW,
                                                   IOTLB_UPDATE)),
         rf"{PORT}: IOTLB_MSG without VIRTIO_F_ACCESS_PLATFORM negotiated", NACKS),
    Case("iotlb_update_outside_guest_memory",
         iommu_guest(update_outside_memory, start=True, then_traffic=True),
         rf"{PORT}: IOTLB update iova 0x[0-9a-f]+ size 0x1000 to 0x7f0000400000: "
         r"0x7f0000400000 is outside guest memory", NACKS),
    Case("iotlb_update_before_memory_table", update_before_memory_table,
         rf"{PORT}: IOTLB update iova 0x0 size 0x1000 to 0x7f0000000000: 0x7f0000000000 is "
         r"outside guest memory", NACKS),
    Case("iotlb_type_miss_from_front_end",
         iommu_guest(iotlb(0, PAGE, 0, IOTLB_RW, IOTLB_MISS)), IOTLB_TYPE % 1, NACKS),
    Case("iotlb_type_access_fail_from_front_end",
         iommu_guest(iotlb(0, PAGE, 0, IOTLB_RW, IOTLB_ACCESS_FAIL)), IOTLB_TYPE % 4, NACKS),
    Case("iotlb_type_0", iommu_guest(iotlb(0, PAGE, 0, IOTLB_RW, 0)), IOTLB_TYPE % 0, NACKS),
    Case("iotlb_type_255", iommu_guest(iotlb(0, PAGE, 0, IOTLB_RW, 255)), IOTLB_TYPE % 255,
         NACKS),
    Case("iotlb_update_size_0",
         iommu_guest(lambda g: iotlb(0, 0, g.mem.uaddr(0), IOTLB_RW, IOTLB_UPDATE)(g)),
         rf"{PORT}: IOTLB update iova 0x0 size 0x0 perm 3: empty", NACKS),
    Case("iotlb_update_iova_wraps",
         iommu_guest(lambda g: iotlb(TOP_PAGE, 2 * PAGE, g.mem.uaddr(0), IOTLB_RW,
                                     IOTLB_UPDATE)(g)),
         rf"{PORT}: IOTLB update iova 0xfffffffffffff000 size 0x2000 perm 3: range wraps",
         NACKS),
    Case("iotlb_update_uaddr_wraps",
         iommu_guest(iotlb(0, 2 * PAGE, TOP_PAGE, IOTLB_RW, IOTLB_UPDATE)),
         rf"{PORT}: IOTLB update iova 0x0 size 0x2000 perm 3: range wraps", NACKS),
    Case("iotlb_update_perm_0",
         iommu_guest(lambda g: iotlb(0, PAGE, g.mem.uaddr(0), 0, IOTLB_UPDATE)(g)),
         rf"{PORT}: IOTLB update iova 0x0 size 0x1000 perm 0: bad access", NACKS),
    Case("iotlb_update_perm_4",
         iommu_guest(lambda g: iotlb(0, PAGE, g.mem.uaddr(0), 4, IOTLB_UPDATE)(g)),
         rf"{PORT}: IOTLB update iova 0x0 size 0x1000 perm 4: bad access", NACKS),
    Case("iotlb_invalidate_size_0",
         iommu_guest(iotlb(0, 0, 0, 0, IOTLB_INVALIDATE), start=True, then_traffic=True),
         rf"{PORT}: IOTLB_MSG", ACCEPTS),
    Case("iotlb_invalidate_wrapping_range_while_running",
         iommu_guest(invalidate_everything, start=True, then_traffic=True),
         rf"{PORT}: IOTLB_MSG[\s\S]*{PORT}: link down[\s\S]*{PORT}: link up", ACCEPTS),
    Case("iova_never_answered", never_answered, rf"{PORT}: IOTLB_MSG", ACCEPTS),
    Case("rx_buffer_translated_read_only", rx_buffer_read_only,
         rf"{PORT}: ring 0: chain 0: buffer 0x[0-9a-f]+\+2048 outside guest memory or in too "
         r"many pieces \(or not writable through the IOMMU\)", DROPS),

    # ---- SET_LOG_BASE: always answered, 1 = refused --------------------------
    Case("log_offset_overflow", log_base(4096, TOP - 2048),
         rf"{PORT}: log of 0x1000 bytes at offset 0xfffffffffffff800 is empty or overflows",
         NACKS),
    Case("log_size_overflow", log_base(TOP - 1, 2),
         rf"{PORT}: log of 0xffffffffffffffff bytes at offset 0x2 is empty or overflows", NACKS),
    Case("log_size_zero", log_base(0, 0),
         rf"{PORT}: log of 0x0 bytes at offset 0x0 is empty", NACKS),
    Case("log_larger_than_file", log_base(MiB, 0),
         rf"{PORT}: log file smaller than offset \+ size 0x100000", NACKS),

    # ---- ring set-up ----------------------------------------------------------
    Case("ring_desc_unmapped",
         ring_step(Req.SET_VRING_ADDR, lambda g: g.tx.addr_payload(desc=g.mem.uaddr(g.mem.size))),
         rf"{PORT}: ring 1: descriptor area \(0x7f0000400000\) of a 256-entry ring is not "
         r"inside guest memory", NOT_STARTED),
    Case("ring_used_crosses_memory_end",
         ring_step(Req.SET_VRING_ADDR,
                   lambda g: g.tx.addr_payload(used=g.mem.uaddr(g.mem.size - 1024))),
         rf"{PORT}: ring 1: used area \(0x7f00003ffc00\) of a 256-entry ring", NOT_STARTED),
    Case("ring_avail_given_as_gpa",
         ring_step(Req.SET_VRING_ADDR, lambda g: g.tx.addr_payload(avail=g.mem.gpa(g.tx.avail))),
         rf"{PORT}: ring 1: available area \(0x1[0-9a-f]{{8}}\) of a 256-entry ring", NOT_STARTED),
    Case("ring_misaligned",
         ring_step(Req.SET_VRING_ADDR,
                   lambda g: g.tx.addr_payload(desc=g.mem.uaddr(g.tx.desc + 8))),
         rf"{PORT}: ring 1: misaligned ring addresses", NACKS),
    Case("ring_address_flags_unknown",
         ring_step(Req.SET_VRING_ADDR, lambda g: g.tx.addr_payload(flags=2)),
         rf"{PORT}: ring 1: unknown address flags 0x2", NACKS),
    Case("ring_size_0", ring_step(Req.SET_VRING_NUM, lambda g: pack_state(TX_RING, 0)),
         rf"{PORT}: ring 1: size 0 \(must be a power of 2 up to 32768\)", NACKS),
    Case("ring_size_not_power_of_2",
         ring_step(Req.SET_VRING_NUM, lambda g: pack_state(TX_RING, 100)),
         rf"{PORT}: ring 1: size 100 \(must be a power of 2", NACKS),
    Case("ring_size_65536", ring_step(Req.SET_VRING_NUM, lambda g: pack_state(TX_RING, 65536)),
         rf"{PORT}: ring 1: size 65536 \(must be", NACKS),
    Case("packed_ring_size_0",
         ring_step(Req.SET_VRING_NUM, lambda g: pack_state(TX_RING, 0), PACKED_FEATURES),
         rf"{PORT}: ring 1: size 0 \(must be up to 32768\)", NACKS),
    Case("split_base_beyond_16_bits",
         ring_step(Req.SET_VRING_BASE, lambda g: pack_state(TX_RING, 0x10000)),
         rf"{PORT}: ring 1: base 0x10000 out of range", NACKS),
    Case("packed_base_beyond_ring",
         ring_step(Req.SET_VRING_BASE, lambda g: pack_state(TX_RING, 300 | 1 << 15),
                   PACKED_FEATURES),
         rf"{PORT}: ring 1: slot 300 beyond a 256-entry ring; ring stopped", NOT_STARTED),
    Case("vring_enable_2", acked(Req.SET_VRING_ENABLE, lambda g: pack_state(1, 2)),
         rf"{PORT}: ring 1: SET_VRING_ENABLE with 2", NACKS),
    Case("features_not_offered", acked(Req.SET_FEATURES, lambda g: pack_u64(1 << 63)),
         rf"{PORT}: SET_FEATURES 0x8000000000000000 has bits not offered", NACKS),
    Case("protocol_features_not_offered",
         acked(Req.SET_PROTOCOL_FEATURES, lambda g: pack_u64(1 << 40)),
         rf"{PORT}: SET_PROTOCOL_FEATURES 0x10000000000 has bits not offered", NACKS),
    Case("mtu_below_68", acked(Req.NET_SET_MTU, lambda g: pack_u64(67)),
         rf"{PORT}: NET_SET_MTU 67 out of range 68\.\.65535", NACKS),
    Case("status_not_a_byte", acked(Req.SET_STATUS, lambda g: pack_u64(0x100)),
         rf"{PORT}: SET_STATUS 0x100 is not a status byte", NACKS),

    # ---- descriptor chains on the guest TX ring ------------------------------
    Case("desc_loop", guest_tx(loop(0)),
         rf"{PORT}: ring 1: chain 0: longer than its table \(descriptor loop\)", DROPS),
    Case("desc_loop_with_data", guest_tx(loop(64)),
         rf"{PORT}: ring 1: chain 0: buffer 0x[0-9a-f]+\+64 outside guest memory or in too many "
         r"pieces", DROPS),
    Case("next_beyond_ring", guest_tx(next_beyond_ring),
         rf"{PORT}: ring 1: chain 0: next index 256 beyond ring of 256", DROPS),
    Case("indirect_nested",
         guest_tx(indirect(lambda g: [pack_desc(put(g, bytes(32)), 32, DESC_INDIRECT)])),
         rf"{PORT}: ring 1: chain 0: indirect descriptor inside an indirect table", DROPS),
    Case("indirect_with_next",
         guest_tx(indirect(lambda g: [pack_desc(put(g, HDR + FRAME), len(HDR + FRAME))],
                           flags=DESC_INDIRECT | DESC_NEXT)),
         rf"{PORT}: ring 1: chain 0: indirect descriptor with the next flag", DROPS),
    Case("indirect_length_not_multiple_of_16",
         guest_tx(indirect(lambda g: [pack_desc(put(g, HDR + FRAME), len(HDR + FRAME))] * 2,
                           length=24)),
         rf"{PORT}: ring 1: chain 0: indirect table of 24 bytes", DROPS),
    Case("indirect_length_0",
         guest_tx(indirect(lambda g: [pack_desc(put(g, HDR + FRAME), len(HDR + FRAME))],
                           length=0)),
         rf"{PORT}: ring 1: chain 0: indirect table of 0 bytes", DROPS),
    Case("indirect_table_longer_than_any_ring",
         guest_tx(lambda g: offer(g.tx, [(put(g, bytes(16)), 16 * 32769, DESC_INDIRECT)])),
         rf"{PORT}: ring 1: chain 0: indirect table of 524304 bytes", DROPS),
    Case("indirect_table_outside_memory",
         guest_tx(lambda g: offer(g.tx, [(mem_end(g) - 16, 32, DESC_INDIRECT)])),
         rf"{PORT}: ring 1: chain 0: indirect table 0x1003ffff0\+32 not inside one guest memory "
         r"region", DROPS),
    Case("indirect_loop",
         guest_tx(indirect(lambda g: [pack_desc(put(g, b"x"), 0, DESC_NEXT, 1),
                                      pack_desc(put(g, b"x"), 0, DESC_NEXT, 0)])),
         rf"{PORT}: ring 1: chain 0: longer than its table \(descriptor loop\)", DROPS),
    Case("indirect_next_beyond_table",
         guest_tx(indirect(lambda g: [pack_desc(put(g, HDR), 12, DESC_NEXT, 5),
                                      pack_desc(put(g, FRAME), len(FRAME))])),
         rf"{PORT}: ring 1: chain 0: next index 5 beyond indirect table of 2", DROPS),
    Case("indirect_legit",
         guest_tx(indirect(lambda g: [pack_desc(put(g, HDR), 12, DESC_NEXT, 1),
                                      pack_desc(put(g, FRAME), len(FRAME))]), frames=[FRAME]),
         rf"{PORT}: SET_VRING_ENABLE", DELIVERS),
    Case("zero_length_chain", guest_tx(lambda g: offer(g.tx, [(put(g, b"x"), 0, 0)])),
         rf"{PORT}: ring 1: chain 0: 0 bytes, too short for a 12-byte header and an Ethernet "
         r"frame", DROPS),
    Case("zero_length_descriptor_mid_chain",
         guest_tx(lambda g: offer(g.tx, [whole(g, HDR), (put(g, b"x"), 0, 0), whole(g, FRAME)]),
                  frames=[FRAME]),
         rf"{PORT}: SET_VRING_ENABLE", DELIVERS),
    Case("zero_length_descriptor_unmapped",
         guest_tx(lambda g: offer(g.tx, [whole(g, HDR), (mem_end(g) + 4096, 0, 0),
                                         whole(g, FRAME)])),
         rf"{PORT}: ring 1: chain 0: buffer 0x100401000\+0 outside guest memory", DROPS),
    Case("frame_too_short",
         guest_tx(lambda g: offer(g.tx, [whole(g, HDR + FRAME[:13])])),
         rf"{PORT}: ring 1: chain 0: 25 bytes, too short for a 12-byte header", DROPS),
    Case("frame_too_long",
         guest_tx(lambda g: offer(g.tx, [whole(g, HDR + FRAME)] +
                                  [(put(g, bytes(4096)), 4096, 0)] * 17)),
         rf"{PORT}: ring 1: chain 0: frame longer than 65792 bytes", DROPS),
    Case("buffer_crosses_memory_end",
         guest_tx(lambda g: offer(g.tx, [(mem_end(g) - 32, 100, 0)])),
         rf"{PORT}: ring 1: chain 0: buffer 0x1003fffe0\+100 outside guest memory", DROPS),
    Case("buffer_below_memory", guest_tx(lambda g: offer(g.tx, [(0, len(HDR + FRAME), 0)])),
         rf"{PORT}: ring 1: chain 0: buffer 0x0\+212 outside guest memory", DROPS),
    Case("buffer_address_wraps",
         guest_tx(lambda g: offer(g.tx, [(TOP - 16, len(HDR + FRAME), 0)])),
         rf"{PORT}: ring 1: chain 0: buffer 0xfffffffffffffff0\+212 outside guest memory", DROPS),
    Case("buffer_given_as_uaddr",
         guest_tx(lambda g: offer(g.tx, [(g.mem.uaddr(g.mem.alloc(256)), 212, 0)])),
         rf"{PORT}: ring 1: chain 0: buffer 0x7f[0-9a-f]+\+212 outside guest memory", DROPS),
    Case("buffer_spans_two_regions", guest_tx(straddle, frames=[FRAME], regions=two_regions),
         rf"{PORT}: region mapped: gpa 0x100200000", DELIVERS),
    Case("writable_descriptor_on_tx_ring",
         guest_tx(lambda g: offer(g.tx, [whole(g, HDR + FRAME, DESC_WRITE)])),
         rf"{PORT}: ring 1: chain 0: writable descriptor on a guest TX ring", DROPS),
    Case("header_spread_over_12_descriptors",
         guest_tx(lambda g: offer(g.tx, spread(g, HDR + FRAME, list(range(1, 12)) + [40, 100])),
                  frames=[FRAME]),
         rf"{PORT}: SET_VRING_ENABLE", DELIVERS),
    Case("header_and_frame_cut_mid_field",
         guest_tx(lambda g: offer(g.tx, spread(g, HDR + FRAME, [3, 7, 13, 27])), frames=[FRAME]),
         rf"{PORT}: SET_VRING_ENABLE", DELIVERS),
    Case("avail_index_more_than_a_ring_ahead", guest_tx(avail_index(RING_SIZE + 1)),
         rf"{PORT}: ring 1: available index 257 is 257 entries ahead of 0 in a 256-entry ring; "
         r"ring stopped", STOPS),
    Case("avail_index_behind_used", guest_tx(avail_index(0xFFFF)),
         rf"{PORT}: ring 1: available index 65535 is 65535 entries ahead of 0", STOPS),
    Case("head_beyond_ring", guest_tx(head(RING_SIZE)),
         rf"{PORT}: ring 1: available entry names head 256 of a 256-entry ring; ring stopped",
         STOPS),
    Case("head_max_u16", guest_tx(head(0xFFFF)),
         rf"{PORT}: ring 1: available entry names head 65535", STOPS),

    # ---- virtio-net header fields ------------------------------------------------
    Case("csum_start_beyond_frame",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, csum_start=2000, csum_offset=TCP_CSUM), UDP4),
         rf"{PORT}: ring 1: checksum at 2000\+16 outside a 342-byte frame; frame dropped",
         DROPS),
    Case("csum_offset_beyond_frame",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, csum_start=L4, csum_offset=0xFFFF), UDP4),
         rf"{PORT}: ring 1: checksum at 34\+65535 outside a 342-byte frame", DROPS),
    Case("csum_field_straddles_frame_end",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, csum_start=len(UDP4) - 1, csum_offset=0), UDP4),
         rf"{PORT}: ring 1: checksum at 341\+0 outside a 342-byte frame", DROPS),
    Case("gso_size_0",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, GSO_TCPV4, 54, 0, L4, TCP_CSUM), TCP4),
         rf"{PORT}: ring 1: GSO type 0x1, size 0 does not match the frame or what was offered; "
         r"frame dropped", DROPS),
    Case("gso_udp_on_tcp_frame",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, GSO_UDP, 54, 1000, L4, TCP_CSUM), TCP4),
         rf"{PORT}: ring 1: GSO type 0x3, size 1000 does not match the frame", DROPS),
    Case("gso_tcpv6_on_ipv4_frame",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, GSO_TCPV6, 54, 1000, L4, TCP_CSUM), TCP4),
         rf"{PORT}: ring 1: GSO type 0x4, size 1000 does not match the frame", DROPS),
    Case("gso_tcpv4_on_udp_frame",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, GSO_TCPV4, 42, 100, L4, UDP_CSUM), UDP4),
         rf"{PORT}: ring 1: GSO type 0x1, size 100 does not match the frame", DROPS),
    Case("gso_ecn_bit",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, GSO_TCPV4 | GSO_ECN, 54, 1000, L4, TCP_CSUM), TCP4),
         rf"{PORT}: ring 1: GSO type 0x81, size 1000 does not match the frame", DROPS),
    Case("gso_without_needs_csum", tx_frame(net_hdr(0, GSO_TCPV4, 54, 1000, L4, TCP_CSUM), TCP4),
         rf"{PORT}: ring 1: GSO type 0x1 without NEEDS_CSUM; frame dropped", DROPS),
    # a segment size no NIC takes (below Linux's smallest MSS, 48) never leaves the guest's ring
    Case("gso_size_1",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, GSO_TCPV4, 54, 1, L4, TCP_CSUM), TCP4),
         rf"{PORT}: ring 1: GSO type 0x1, size 1 does not match the frame", DROPS),
    Case("tso_frame_within_one_segment",
         guest_tx(lambda g: offer(g.tx, [whole(g, net_hdr(HDR_F_NEEDS_CSUM, GSO_TCPV4, 54, 1448,
                                                          L4, TCP_CSUM) + TSO_SMALL)]),
                  OFFLOAD_FEATURES, frames=[TSO_SMALL]),
         rf"{PORT}: SET_VRING_ENABLE", DELIVERS),
    Case("gso_csum_start_not_at_l4",
         tx_frame(net_hdr(HDR_F_NEEDS_CSUM, GSO_TCPV4, 54, 1000, L4 + 2, TCP_CSUM), TCP4),
         rf"{PORT}: ring 1: GSO type 0x1, size 1000 does not match the frame", DROPS),

    # ---- the guest RX ring ---------------------------------------------------------
    Case("rx_read_only_buffer",
         guest_rx(lambda g: offer(g.rx, [(put(g, b"\xa5" * BUF_SIZE), BUF_SIZE, 0)]),
                  check_untouched=True),
         rf"{PORT}: ring 0: chain 0: read-only descriptor on a guest RX ring", DROPS),
    Case("rx_read_only_in_indirect_table",
         guest_rx(indirect(lambda g: [pack_desc(put(g, b"\xa5" * BUF_SIZE), BUF_SIZE)],
                           ring=RX_RING), check_untouched=True),
         rf"{PORT}: ring 0: chain 0: read-only descriptor on a guest RX ring", DROPS),
    Case("rx_buffer_crosses_memory_end",
         guest_rx(lambda g: offer(g.rx, [(mem_end(g) - 64, BUF_SIZE, DESC_WRITE)]),
                  check_untouched=True),
         rf"{PORT}: ring 0: chain 0: buffer 0x1003fffc0\+2048 outside guest memory", DROPS),
    Case("rx_indirect_nested",
         guest_rx(indirect(lambda g: [pack_desc(put(g, bytes(32)), 32, DESC_INDIRECT)],
                           ring=RX_RING), check_untouched=True),
         rf"{PORT}: ring 0: chain 0: indirect descriptor inside an indirect table", DROPS),
    Case("rx_header_does_not_fit_mrg",
         guest_rx(lambda g: offer(g.rx, [(put(g, bytes(4)), 4, DESC_WRITE)]), MRG_FEATURES,
                  check_untouched=True),
         rf"{PORT}: ring 0: chain 0: 4 bytes, too short for the virtio-net header", DROPS),
    Case("rx_avail_index_more_than_a_ring_ahead",
         guest_rx(avail_index(RING_SIZE + 1, ring=RX_RING)),
         rf"{PORT}: ring 0: available index 257 is 257 entries ahead", STOPS),
    Case("rx_head_beyond_ring", guest_rx(head(RING_SIZE, ring=RX_RING)),
         rf"{PORT}: ring 0: available entry names head 256", STOPS),

    # ---- packed rings ----------------------------------------------------------------
    Case("packed_chain_longer_than_ring", guest_tx(packed_endless_chain, PACKED_FEATURES),
         rf"{PORT}: ring 1: chain at slot 0 longer than the 256 free slots of the ring; ring "
         r"stopped", STOPS),
    Case("packed_indirect_bad_length",
         guest_tx(packed_indirect(lambda g: [pack_packed_desc(put(g, HDR + FRAME), 212, 0, 0)],
                                  length=20), PACKED_FEATURES),
         rf"{PORT}: ring 1: chain at slot 0 \(buffer 7\): indirect table of a bad length", DROPS),
    Case("packed_indirect_nested",
         guest_tx(packed_indirect(lambda g: [pack_packed_desc(put(g, bytes(16)), 16, 0,
                                                              DESC_INDIRECT)]), PACKED_FEATURES),
         rf"{PORT}: ring 1: chain at slot 0 \(buffer 7\): indirect descriptor inside an indirect "
         r"table", DROPS),
    Case("packed_indirect_inside_chain",
         guest_tx(lambda g: offer(g.tx, [whole(g, HDR), (put(g, bytes(16)), 16, DESC_INDIRECT)],
                                  buf_id=3), PACKED_FEATURES),
         rf"{PORT}: ring 1: chain at slot 0 \(buffer 3\): indirect descriptor inside a chain",
         DROPS),
    Case("packed_buffer_outside_memory",
         guest_tx(lambda g: offer(g.tx, [(mem_end(g) - 8, 212, 0)], buf_id=5), PACKED_FEATURES),
         rf"{PORT}: ring 1: chain at slot 0 \(buffer 5\): buffer outside guest memory", DROPS),
    Case("packed_writable_on_tx",
         guest_tx(lambda g: offer(g.tx, [whole(g, HDR + FRAME, DESC_WRITE)], buf_id=2),
                  PACKED_FEATURES),
         rf"{PORT}: ring 1: chain at slot 0 \(buffer 2\): writable descriptor on a guest TX ring",
         DROPS),
    Case("packed_rx_read_only",
         guest_rx(lambda g: offer(g.rx, [(put(g, b"\xa5" * BUF_SIZE), BUF_SIZE, 0)], buf_id=4),
                  PACKED_FEATURES, check_untouched=True),
         rf"{PORT}: ring 0: chain at slot 0 \(buffer 4\): read-only descriptor on a guest RX ring",
         DROPS),
    Case("packed_header_spread",
         guest_tx(lambda g: offer(g.tx, spread(g, HDR + FRAME, [1, 5, 11, 12, 90])),
                  PACKED_FEATURES, frames=[FRAME]),
         rf"{PORT}: SET_VRING_ENABLE", DELIVERS),

    # ---- messages out of order or repeated -------------------------------------------
    Case("rings_before_memory", then_frames_flow(rings_before_memory),
         rf"{PORT}: region mapped: gpa 0x100000000 size 0x400000", DELIVERS),
    Case("kick_before_addr", then_frames_flow(kick_before_addr), rf"{PORT}: link up", DELIVERS),
    Case("kick_and_call_without_fds", then_frames_flow(polling_only),
         rf"{PORT}: SET_VRING_KICK", DELIVERS),
    Case("get_vring_base_unstarted_ring", get_vring_base_unstarted, rf"{PORT}: GET_VRING_BASE",
         ACCEPTS),
    Case("ring_stopped_then_restarted", then_frames_flow(stopped_then_restarted),
         rf"{PORT}: GET_VRING_BASE", DELIVERS),
    Case("mem_table_twice_while_running", then_frames_flow(mem_table_again),
         rf"{PORT}: SET_MEM_TABLE[\s\S]*{PORT}: SET_MEM_TABLE", DELIVERS),
    Case("mem_table_pulled_from_under_the_rings", memory_pulled_from_under_rings,
         rf"{PORT}: ring 0: descriptor area \(0x7f0000000000\) of a 256-entry ring is not inside "
         r"guest memory", NOT_STARTED),
    Case("features_again_while_running", then_frames_flow(features_again),
         rf"{PORT}: SET_FEATURES[\s\S]*{PORT}: SET_FEATURES", DELIVERS),
    Case("features_switch_layout_while_running", layout_switched_while_running,
         rf"{PORT}: .*SET_FEATURES.*(running|started)", NACKS),
    Case("base_set_while_running", base_set_while_running,
         rf"{PORT}: ring 0: base set while the ring runs; refused", NACKS),
    Case("ring_resized_while_running", resized_while_running,
         rf"{PORT}: ring 0: resized from \d+ to 8 while the ring runs; refused", NACKS),
    Case("reset_owner_while_running", reset_owner_running, rf"{PORT}: link down", ACCEPTS),

    # ---- guest memory ------------------------------------------------------------------
    Case("dirty_log_smaller_than_guest_memory", dirty_log_smaller_than_memory,
         rf"{PORT}: dirty log of 0x40 bytes \(guest memory up to 0x200000\)", DELIVERS),
    Case("memfd_shrunk_under_running_rings", memory_shrunk_under_running_rings,
         rf"{PORT}: the front end truncated a file of guest memory or of the dirty log under "
         r"us \(SIGBUS at 0x[0-9a-f]+", CLOSES),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_hostile(bench, case):
    run_case(bench, case)


# ==========================================================================
# the port after all that: DPDK's virtio-user, millions of packets

MIN_PACKETS = 2_000_000


@pytest.mark.timeout(300)
def test_virtio_user_carries_millions_after_hostile_cases(bench):
    """virtio-user (txonly/rxonly in a second testpmd) on the attacked port:
    at least MIN_PACKETS each way, every one counted on both sides."""
    bench.ensure_running()
    ours = bench.ours
    peer = bench.launcher.peer([virtio_user_vdev(0, bench.sock[0])], name="virtio_user")
    ours.wait_link_up(0)
    peer.wait_link_up(0)
    try:
        for sender, receiver in ((peer, ours), (ours, peer)):
            for tp in (ours, peer):
                tp.stop_forwarding()
                tp.cmd("clear port stats all")
            sender.cmd("set fwd txonly")
            receiver.cmd("set fwd rxonly")
            receiver.start_forwarding()
            sender.start_forwarding()
            receiver.wait_stat(0, "ipackets", MIN_PACKETS, timeout=120)
            sender.stop_forwarding()
            received = receiver.wait_quiescent(0, "ipackets", quiet=0.5)
            sent = sender.stats(0)["opackets"]
            assert received == sent, (f"{sender.name} sent {sent} packets, {receiver.name} "
                                      f"received {received}")
            assert receiver.stats(0)["ierrors"] == 0
            x = bench.xstats()     # since the "clear port stats" above
            bad = {k: x[k] for k in ("rx_q0_malformed_chains", "tx_q0_malformed_chains",
                                     "rx_q0_dropped_packets", "tx_q0_dropped_packets")}
            assert not any(bad.values()), f"refusals during the virtio-user run: {bad}"
    finally:
        peer.quit()
        ours.stop_forwarding()
        ours.cmd("set fwd io")
        ours.start_forwarding()
    bench.b.drain()     # txonly filled B's ring too: our testpmd sends on every port
    bench.assert_alive("after the virtio-user run")
    bench.assert_fds_back([])
    bench.exchange(seed=7)
