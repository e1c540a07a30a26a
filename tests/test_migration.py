"""Live migration: dirty-page logging checked page by page, and RARP.

A scripted front end (tests/harness/vhost_user_client.py) owns guest A's
memory on eth_vhost0, negotiates LOG_ALL with a dirty log (SET_LOG_BASE) and
asks for used-ring logging (VRING_F_LOG). Guest B on eth_vhost1 sends frames
that our testpmd forwards into A's RX ring, and A sends frames of its own.
Then, for every page of A's memory:
- every page the back end changed is marked in the bitmap (exact: nothing
  it wrote may be missed, or the migrated guest would see stale memory);
- only pages the back end may write are marked (RX buffers it filled, the
  used ring or, packed, the descriptor ring): guest TX buffers are not;
- with LOG_ALL switched off again (SET_FEATURES while running), nothing more
  is marked.
For split and packed rings, with and without mergeable RX buffers.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import select
import struct
import threading
import time
from typing import List

import pytest

from scapy.layers.l2 import ARP, Ether

from harness import gen_frames
from harness.testpmd import vhost_vdev
from harness.vhost_user_client import (BUF_SIZE, DEFAULT_FEATURES, DEFAULT_PROTOCOL_FEATURES,
                                       F_LOG_ALL, F_MRG_RXBUF, F_RING_PACKED, PF_LOG_SHMFD,
                                       PF_PAGEFAULT, PF_RARP, RX_RING, TX_RING, VRING_F_LOG,
                                       FrontEnd, Req, bit, pack_log_base, pack_mem_table,
                                       pack_state, pack_u64)

pytestmark = pytest.mark.ours_only

PAGE = 4096
MEM_SIZE = 4 << 20
RING_SIZE = 256
FRAMES = 40


def pages(offset: int, length: int):
    return set(range(offset // PAGE, (offset + length - 1) // PAGE + 1))


class Log:
    """A dirty log for guest memory at guest-physical 0..MEM_SIZE."""

    def __init__(self):
        self.size = MEM_SIZE // PAGE // 8
        self.fd = os.memfd_create("vhu-dirty-log", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, PAGE)

    def marked(self):
        bitmap = os.pread(self.fd, self.size, 0)
        return {i * 8 + b for i, byte in enumerate(bitmap) for b in range(8) if byte >> b & 1}

    def clear(self):
        os.pwrite(self.fd, bytes(self.size), 0)


def changed_pages(before: bytes, after: bytes):
    return {p for p in range(len(before) // PAGE)
            if before[p * PAGE:(p + 1) * PAGE] != after[p * PAGE:(p + 1) * PAGE]}


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@contextlib.contextmanager
def logged_guests(launcher, features: int, tag: str):
    """Our testpmd forwarding between guest A (``features``, dirty logging
    into a Log, its rings' used areas logged too) and guest B, all up:
    yields (ours, a, b, log); closes them all and checks our exit after."""
    sock_a, sock_b = launcher.path("vhA.sock"), launcher.path("vhB.sock")
    ours = launcher.ours([vhost_vdev(0, sock_a), vhost_vdev(1, sock_b)])
    ours.start_forwarding()
    a = FrontEnd(sock_a, features=features, mem_size=MEM_SIZE, gpa=0, queue_size=RING_SIZE,
                 protocol_features=DEFAULT_PROTOCOL_FEATURES | bit(PF_LOG_SHMFD), tag=tag)
    b = FrontEnd(sock_b, queue_size=RING_SIZE, tag="src")
    log = Log()
    try:
        a.prepare()
        log_fd = os.dup(log.fd)     # the back end's copy
        assert a.call(Req.SET_LOG_BASE, pack_log_base(log.size, 0), [log_fd]).u64 == 0
        os.close(log_fd)
        for ring in a.rings:
            used_area, _ = ring.device_writes()
            a.set_up_ring(ring, flags=VRING_F_LOG, log=a.mem.gpa(used_area))
        a.enable()
        a.post_rx_buffers()
        b.start()
        ours.wait_link_up(0)
        ours.wait_link_up(1)
        yield ours, a, b, log
    finally:
        for g in (a, b):
            g.close()
        os.close(log.fd)
    ours.stop_forwarding()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock_a, "eth_vhost1": sock_b})


@pytest.mark.parametrize("mrg", [0, 1], ids=["mrg0", "mrg1"])
@pytest.mark.parametrize("packed", [0, 1], ids=["split", "packed"])
def test_dirty_log_exact(launcher, packed, mrg):
    features = (DEFAULT_FEATURES | bit(F_LOG_ALL) | (bit(F_RING_PACKED) if packed else 0) |
                (bit(F_MRG_RXBUF) if mrg else 0))
    with logged_guests(launcher, features, tag="log") as (ours, a, b, log):
        rx_used = pages(*a.rx.device_writes())
        tx_used = pages(*a.tx.device_writes())

        # the back end fills A's RX buffers: every page it changed is marked
        log.clear()
        before = a.mem.read(0, MEM_SIZE)
        frames = gen_frames(FRAMES, seed=900 + 2 * packed + mrg)
        b.send_frames(frames)
        done = []
        wait_for(lambda: done.extend(a.rx.completed()) or len(done) >= FRAMES,
                 f"A received {len(done)} of {FRAMES} frames")
        marked = log.marked()
        changed = changed_pages(before, a.mem.read(0, MEM_SIZE))
        filled = set().union(*(pages(a.buf(RX_RING, buf_id), length) for buf_id, length in done))
        assert changed - marked == set(), "pages written by the back end but not logged"
        assert rx_used <= marked, "the used area of the RX ring is not logged"
        assert marked <= filled | rx_used, f"pages logged that the back end did not write: " \
                                           f"{sorted(marked - filled - rx_used)}"

        # A sends: the back end only writes its used area, and logs just that
        log.clear()
        a.send_frames(gen_frames(FRAMES, seed=950))
        marked = log.marked()
        assert marked & tx_used, "the used area of the TX ring is not logged"
        assert marked <= tx_used, f"pages logged beyond the TX used area: " \
                                  f"{sorted(marked - tx_used)}"

        # logging off again while running: nothing is marked any more
        a.checked(Req.SET_FEATURES, pack_u64(features & ~bit(F_LOG_ALL)))
        for buf_id, _ in done:
            a.rx.submit(buf_id, a.mem.gpa(a.buf(RX_RING, buf_id)), BUF_SIZE, writable=True)
        log.clear()
        b.send_frames(frames)
        wait_for(lambda: len(a.rx.completed()) > 0, "A receives with logging off")
        a.send_frames(frames[:5])
        assert log.marked() == set()


@pytest.mark.parametrize("packed", [0, 1], ids=["split", "packed"])
def test_nothing_written_after_get_vring_base(launcher, packed):
    """QEMU stops the source's rings (GET_VRING_BASE) before its last sync of
    the dirty log: from our answer on, frames still forwarded to the guest
    must not reach its memory (no bitmap QEMU reads would hold them), nor
    be marked in the log.  B keeps sending after A stopped both rings with
    RX buffers still posted: not a byte of A's memory changes."""
    features = DEFAULT_FEATURES | bit(F_LOG_ALL) | (bit(F_RING_PACKED) if packed else 0)
    with logged_guests(launcher, features, tag="stop") as (ours, a, b, log):
        frames = gen_frames(FRAMES, seed=990 + packed)
        b.send_frames(frames[:10])
        done = []
        wait_for(lambda: done.extend(a.rx.completed()) or len(done) >= 10,
                 f"A received {len(done)} of 10 frames")

        # the VM stops: QEMU takes both rings back, then syncs the log a last time
        for ring in (RX_RING, TX_RING):
            a.call(Req.GET_VRING_BASE, pack_state(ring, 0))
        log.clear()
        before = a.mem.read(0, MEM_SIZE)
        forwarded = ours.stats(0)["opackets"]
        b.send_frames(frames)
        time.sleep(0.5)
        changed = changed_pages(before, a.mem.read(0, MEM_SIZE))
        assert not changed, f"A's memory written after GET_VRING_BASE: pages {sorted(changed)}"
        assert log.marked() == set(), f"pages logged after GET_VRING_BASE: {sorted(log.marked())}"
        assert ours.stats(0)["opackets"] == forwarded, "frames still delivered to A's stopped ring"


def test_send_rarp_announces_guest(launcher):
    """On the migration destination QEMU sends SEND_RARP (PROTOCOL_F_RARP)
    for a guest that cannot announce itself: the port hands the application
    one RARP frame with the guest's MAC as if the guest had sent it, here
    forwarded to guest B."""
    sock_a, sock_b = launcher.path("vhA.sock"), launcher.path("vhB.sock")
    ours = launcher.ours([vhost_vdev(0, sock_a), vhost_vdev(1, sock_b)])
    ours.start_forwarding()
    a = FrontEnd(sock_a, protocol_features=DEFAULT_PROTOCOL_FEATURES | bit(PF_RARP), tag="dst")
    b = FrontEnd(sock_b, tag="peer")
    mac = bytes.fromhex("5254000012ab")
    try:
        a.start()
        b.start()
        ours.wait_link_up(0)
        ours.wait_link_up(1)
        a.checked(Req.SEND_RARP, mac + bytes(2))
        frames = b.receive(1, timeout=10, quiet=0.5)
    finally:
        for g in (a, b):
            g.close()
    ours.stop_forwarding()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock_a, "eth_vhost1": sock_b})
    assert len(frames) == 1, frames
    rarp = Ether(frames[0])
    assert rarp.type == 0x8035 and rarp.dst == "ff:ff:ff:ff:ff:ff", rarp.summary()
    assert rarp.src == mac_str(mac)
    arp = ARP(bytes(rarp.payload))
    assert arp.op == 3 and arp.hwsrc == mac_str(mac) and arp.hwdst == mac_str(mac), arp.show(dump=True)
    assert f"will announce {mac_str(mac).upper()} with a RARP frame" in ours.log


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# ------------------------------------------------------------------ postcopy

# linux/userfaultfd.h
UFFD_EVENT_PAGEFAULT = 0x12
UFFD_MSG = struct.Struct("<BBHIQQI4x")          # event, -, -, -, flags, address, ptid
UFFDIO_COPY = 0xC028AA03                         # _IOWR(0xAA, 3, struct uffdio_copy)
UFFDIO_COPY_ARG = struct.Struct("<QQQQq")        # dst, src, len, mode, copy


class FaultResolver:
    """What QEMU does on a postcopy destination: reads the back end's page
    faults from the userfaultfd it handed over, and places each missing page
    (UFFDIO_COPY, from ``image``, the guest memory as the source has it) at
    the faulting address, which wakes the faulting thread."""

    def __init__(self, ufd: int, our_base: int, image: bytearray):
        self.ufd, self.our_base, self.image = ufd, our_base, image
        self.faults: List[int] = []             # offsets in guest memory, in order
        self.errors: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        poller = select.poll()
        poller.register(self.ufd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            try:
                data = os.read(self.ufd, UFFD_MSG.size)
            except BlockingIOError:
                continue
            event, _, _, _, _, address, _ = UFFD_MSG.unpack(data)
            if event != UFFD_EVENT_PAGEFAULT:
                self.errors.append(f"userfaultfd event {event:#x}")
                continue
            page = address & ~(PAGE - 1)
            off = page - self.our_base
            src = (ctypes.c_char * PAGE).from_buffer(self.image, off)
            arg = bytearray(UFFDIO_COPY_ARG.pack(page, ctypes.addressof(src), PAGE, 0, 0))
            try:
                fcntl.ioctl(self.ufd, UFFDIO_COPY, arg)
                self.faults.append(off)
            except OSError as exc:
                self.errors.append(f"UFFDIO_COPY at +{off:#x}: {exc}")
            del src

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def locked_kb(pid: int) -> int:
    """VmLck of process ``pid``: what mlockall locked."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmLck:"))


MLOCK_WARNING = r"eth_vhost0: postcopy: this process locks its memory \(\d+ kB, mlockall\?\)"


@pytest.mark.parametrize("mlockall", [False, True], ids=["no_mlockall", "mlockall"])
def test_postcopy_faults_wait_for_their_page(launcher, mlockall):
    """Postcopy destination (PROTOCOL_F_PAGEFAULT, devarg postcopy-support=1),
    driven as QEMU drives it: POSTCOPY_ADVISE hands over a userfaultfd,
    POSTCOPY_LISTEN, SET_MEM_TABLE answered with where the back end mapped
    the memory, acknowledged; then a TX buffer and an RX buffer on pages
    that have not arrived yet (never touched): the back end's read and write
    of them fault, wait until the front end places the page, and the frames
    cross byte-exact both ways. POSTCOPY_END closes it.
    With testpmd's default mlockall, our mapping is filled with zero pages
    when it is made: nothing faults, the guest's TX frame arrives as zeros
    (QEMU would stop, "File exists"), and our log says to use --no-mlockall."""
    sock_a, sock_b = launcher.path("vhA.sock"), launcher.path("vhB.sock")
    ours = launcher.ours([vhost_vdev(0, sock_a, **{"postcopy-support": 1}),
                          vhost_vdev(1, sock_b)], app_args=["--mlockall"] if mlockall else [])
    if mlockall and locked_kb(ours.proc.pid) == 0:
        # under ASan, whose shadow memory cannot all be locked, testpmd runs on unlocked
        launcher.finish_ours(ours, ports={"eth_vhost0": sock_a, "eth_vhost1": sock_b})
        pytest.skip("testpmd's mlockall did not lock its memory (ASan?)")
    ours.start_forwarding()
    a = FrontEnd(sock_a, mem_size=MEM_SIZE, tag="postcopy",
                 protocol_features=DEFAULT_PROTOCOL_FEATURES | bit(PF_PAGEFAULT))
    b = FrontEnd(sock_b, tag="peer")
    image = bytearray(MEM_SIZE)                 # the source's copy of A's memory
    untouched = MEM_SIZE - 16 * PAGE            # A's allocator never gets there
    assert a.mem._next <= untouched
    frame_out, frame_in = gen_frames(2, seed=28, include_extremes=False)
    resolver = None
    try:
        b.start()
        a.negotiate()
        advice = a.call(Req.POSTCOPY_ADVISE)
        assert len(advice.fds) == 1, f"POSTCOPY_ADVISE answered with {len(advice.fds)} fds"
        ufd = advice.fds[0]
        a.checked(Req.POSTCOPY_LISTEN)
        for ring in a.rings:
            a.checked(Req.SET_VRING_CALL, pack_u64(ring.index), [ring.callfd])
        a.checked(Req.SET_FEATURES, pack_u64(a.features))
        answer = a.call(Req.SET_MEM_TABLE, pack_mem_table([a.mem.region()]), [a.mem.fd],
                        need_reply=True)
        nregions, = struct.unpack_from("<I", answer.payload)
        gpa, size, our_base, _ = struct.unpack_from("<QQQQ", answer.payload, 8)
        assert (nregions, gpa, size) == (1, a.mem.gpa(0), MEM_SIZE), answer
        assert our_base != a.mem.uaddr(0), "the answer must carry the back end's address"
        resolver = FaultResolver(ufd, our_base, image)
        assert a.ack(Req.SET_MEM_TABLE, pack_u64(0)) == 0
        ours.wait_log(r"eth_vhost0: postcopy: 1 memory regions registered for page faults")
        for ring in a.rings:
            a.set_up_ring(ring)
        a.enable()
        ours.wait_link_up(0)

        # guest -> host: the frame is in a page only the source has
        data = bytes(a.hdr_len) + frame_out
        image[untouched:untouched + len(data)] = data
        a.tx.submit(a.free[TX_RING].pop(), a.mem.gpa(untouched), len(data), writable=False)
        a.tx.kick()
        if mlockall:
            assert b.receive(1, timeout=10) == [bytes(len(frame_out))]
            ours.wait_log(MLOCK_WARNING)
        else:
            assert b.receive(1, timeout=10) == [frame_out]
            # host -> guest: the RX buffer's page has not arrived either
            rx_off = untouched + 4 * PAGE
            a.rx.submit(a.free[RX_RING].pop(), a.mem.gpa(rx_off), BUF_SIZE, writable=True)
            b.send_frames([frame_in])
            deadline = time.monotonic() + 10
            done = []
            while not done and time.monotonic() < deadline:
                done = a.rx.completed()
                time.sleep(0.01)
            assert len(done) == 1, "the frame to A did not arrive"
            got = a.mem.read(rx_off, done[0][1])
            assert got[a.hdr_len:] == frame_in
            assert a.get_u64(Req.POSTCOPY_END) == 0
            ours.wait_log(r"eth_vhost0: postcopy: done")
    finally:
        if resolver is not None:
            resolver.stop()
        for g in (a, b):
            g.close()
    ours.stop_forwarding()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock_a, "eth_vhost1": sock_b})
    assert not resolver.errors, resolver.errors
    if not mlockall:
        assert resolver.faults[:2] == [untouched, rx_off], [hex(f) for f in resolver.faults]
        assert not re.search(MLOCK_WARNING, ours.log)
