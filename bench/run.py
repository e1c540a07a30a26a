#!/usr/bin/python3
"""Benchmark our eth_vhost PMD against the distribution's net_vhost.

Two figures per case (see docs/performance.md):

* packets per second, two testpmd processes on the two CPUs: the vhost side
  (``-l 0,1``, forwards on lcore 1) and a virtio-user peer (``-l 0,1
  --main-lcore 1``, forwards on lcore 0). Both PMDs get a pair of their own,
  started side by side with forwarding stopped; the cases' measurement windows
  alternate between the two pairs (ours first on even repetitions, the
  distribution's first on odd ones), so a neighbour's load hits both alike and
  the ratio of one repetition compares two windows seconds apart.
* instructions per packet of the PMD's receive and transmit burst functions,
  counted by callgrind in ONE testpmd process that holds the vhost port and,
  attached after it, the virtio-user port: packets seeded with ``start
  tx_first`` circulate in io mode (virtio TX -> vhost RX -> virtio TX, and
  vhost TX -> virtio RX -> vhost TX) on one thread, so every burst finds the
  same work and the count does not depend on timing. With the peer in another
  process the vhost thread, slowed down 50 times by callgrind, polls empty
  rings whenever the peer is descheduled, and those polls, not the packets,
  made up half of the count.

VM to VM (``--dirs v2v``, issue 8): the vhost side holds two vhost ports
forwarding to each other (io, paired), the peer two virtio-user ports, one per
socket; a frame goes virtio A -> vhost A -> vhost B -> virtio B (and the
reverse). pps: the peer runs flowgen on both ports and counts what arrives on
both (the sum of its two ports' ``ipackets``). Instructions: one process with
the two vhost ports and the two virtio-user ports hot-plugged after them
(ports 2 and 3), paired (0,1) and (2,3) so the frames circulate virtio A ->
vhost A -> vhost B -> virtio B -> virtio A; the figure is both vhost ports'
receive and transmit burst functions per frame the vhost side received.
``--zc`` adds a third competitor, ours with ``dequeue-zero-copy=1``.

Guests' checksums (``--guest-csum sw|offload``, callgrind only): the
virtio-user port leaves the UDP checksum of every frame it sends to the host
(``tx_offload udp_cksum``: ``NEEDS_CSUM``), as a Linux guest does. testpmd's
csum engine forwards instead of io (port 1: ``csum set udp hw``; port 0: all
in software), so each frame the vhost port received goes back to the virtio
port flagged ``RTE_MBUF_F_TX_UDP_CKSUM``. The engine leaves a zero UDP
checksum alone, and testpmd's generators send zero, so the loop is seeded
from a pcap port (hot-plugged, then detached) replaying frames like txonly's but
with their UDP checksum; paired with the virtio port it can only fill the
receive loop (virtio TX -> vhost RX -> virtio TX): the transmit burst
function is not exercised. ``sw``: port 0 with no RX offload, the PMD
finishes each checksum in its receive burst; ``offload``: ``rx_offload
udp_cksum``, it only flags the frames ``RTE_MBUF_F_RX_L4_CKSUM_NONE``. Before
the counted window a short ``set verbose 1`` window checks both (the flags of
what port 0 received, and that what went to the virtio port asked for the
checksum). testpmd's own checksum work is outside the PMD's burst functions,
so not in the figure.

Usage: bench/run.py --quick | bench/run.py [--dirs ...] [--sizes ...] ...
       bench/run.py --report-only RESULTS.json [...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests"))

from harness.pmd import DEFAULT_PMD_SO, PmdSelection, driver_identity_problems  # noqa: E402
from harness.testpmd import (OUR_LCORES, PEER_LCORES, TestPmd, TestPmdError,  # noqa: E402
                             vhost_vdev, virtio_user_vdev)

import callgrind  # noqa: E402
import report  # noqa: E402
from common import (FLOWGEN_FCS, TESTPMD_APP_ARGS, command_output, run_logger,  # noqa: E402
                    run_metadata, run_phases, snapshot_plugin, thread_cpu_seconds)

# Per direction: the vhost side's and the peer's forwarding modes, and whose
# port counts the packets that made it (for enqueue and PVP: what the peer got).
DIRECTIONS = {
    "dequeue": {"vhost": "rxonly", "peer": "txonly", "count": ("vhost", "ipackets")},
    "enqueue": {"vhost": "txonly", "peer": "rxonly", "count": ("peer", "ipackets")},
    "pvp": {"vhost": "io", "peer": "flowgen", "count": ("peer", "ipackets")},
}
# VM to VM: two vhost ports forwarding to each other, the peer's two ports
# generate and count (both ports' ipackets: what went through the vhost side).
V2V = "v2v"
V2V_MODES = {"vhost": "io", "peer": "flowgen", "count": ("peer", "ipackets")}

# Frames bigger than a default mbuf (2048 bytes of data) stand for TSO frames
# (up to 64 KB): testpmd's generators make one-segment frames only (flowgen)
# and cannot make TCP segmentation frames, so such sizes get a setup of their
# own whose pool holds the largest mbufs there are (data room is 16 bits),
# fewer of them. The frame is then one piece on every side: what a guest's
# GSO frame costs the vhost side but for the GSO header fields.
DEFAULT_MBUF_DATA = 2048
BIG_MBUF_ARGS = ["--mbuf-size=65535", "--total-num-mbufs=4096"]

# Bursts of 32 seeded per stream for the callgrind loops: 128 packets in flight
# keep every receive burst full and stay well inside 256-entry rings.
SEED_BURSTS = 4
# v2v: each circulation loop (A -> B and B -> A) gets two seeded streams (a
# vhost port's and a virtio port's), so half as many bursts each keep the
# same 128 frames per loop.
V2V_SEED_BURSTS = SEED_BURSTS // 2

# callers in function names keep the receive and transmit subtrees apart
# where they share helpers (see callgrind.py)
VALGRIND = callgrind.WINDOWED + ["--separate-callers=12"]

# --guest-csum (see the module's docstring): off (io forwarding, frames
# without checksum requests), sw, offload; and the RX flag of every frame the
# vhost port then receives
GUEST_CSUM = ("off", "sw", "offload")
GUEST_CSUM_RX_FLAG = {"sw": "RTE_MBUF_F_RX_L4_CKSUM_GOOD", "offload": "RTE_MBUF_F_RX_L4_CKSUM_NONE"}
# the share of the frames of the check window that must show what the mode is for
GUEST_CSUM_MIN_SHARE = 0.99
GUEST_CSUM_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class Setup:
    """What the two processes are started with; cases of one setup share them."""
    ring: str      # split | packed
    mrg: int       # virtio-user mrg_rxbuf
    queues: int
    v2v: bool = False  # two vhost ports (and two peer ports) forwarding to each other
    big_mbufs: bool = False  # frames above DEFAULT_MBUF_DATA: BIG_MBUF_ARGS

    @property
    def label(self) -> str:
        return (f"{self.ring}/mrg{self.mrg}/q{self.queues}" + ("/v2v" if self.v2v else "")
                + ("/64k-mbufs" if self.big_mbufs else ""))

    def vhost_vdev(self, sock, index: int = 0, devargs: Optional[dict] = None) -> str:
        return vhost_vdev(index, sock, queues=self.queues, **(devargs or {}))

    def peer_vdev(self, sock, index: int = 0) -> str:
        return virtio_user_vdev(index, sock, queues=self.queues, mrg_rxbuf=self.mrg,
                                packed_vq=int(self.ring == "packed"))

    def app_args(self) -> List[str]:
        return (TESTPMD_APP_ARGS + (BIG_MBUF_ARGS if self.big_mbufs else [])
                + [f"--rxq={self.queues}", f"--txq={self.queues}"])


class Pmd:
    """One of the competitors (ours, the distribution's, with --zc ours with
    zero-copy dequeue): how to select it and how to find its code in a profile."""

    def __init__(self, name: str, selection: PmdSelection, devargs: Optional[dict] = None):
        self.name = name
        self.selection = selection
        self.devargs = dict(devargs or {})  # extra vhost vdev arguments (zero-copy)
        # ours: the staged plugin; distro: the net_vhost plugin EAL loads by itself
        self.object_prefix = (selection.so_path.name if selection.is_ours
                              else "librte_net_vhost.so")

    def app_args(self) -> List[str]:
        """Zero-copy frames are mbuf chains: the application enables scatter to get them."""
        return ["--enable-scatter"] if self.devargs.get("dequeue-zero-copy") else []

    def owns(self, obj: str) -> bool:
        return os.path.basename(obj).startswith(self.object_prefix)

    def check_identity(self, tp: TestPmd, sock, *more_socks) -> None:
        ports = {f"eth_vhost{i}": str(s) for i, s in enumerate((sock,) + more_socks)}
        problems = driver_identity_problems(tp.log, self.selection, ports)
        if problems:
            raise TestPmdError(f"{tp.name}: not served by {self.name}: {problems}")


# ----------------------------------------------------------------- pps


class Pair:
    """The vhost-side testpmd and its virtio-user peer, forwarding stopped."""

    def __init__(self, pmd: Pmd, setup: Setup, workdir: Path):
        self.pmd = pmd
        self.setup = setup
        # v2v: one socket per vhost port, and a peer port on each
        self.socks = ([workdir / f"{pmd.name}.sock"] if not setup.v2v else
                      [workdir / f"{pmd.name}-{c}.sock" for c in "ab"])
        self.sock = self.socks[0]
        self.vhost = TestPmd(f"{pmd.name}-vhost", eal_args=pmd.selection.eal_args(),
                             vdevs=[setup.vhost_vdev(s, i, pmd.devargs)
                                    for i, s in enumerate(self.socks)],
                             app_args=setup.app_args() + pmd.app_args(), lcores=OUR_LCORES,
                             log_dir=workdir)
        self.peer = TestPmd(f"{pmd.name}-peer",
                            vdevs=[setup.peer_vdev(s, i) for i, s in enumerate(self.socks)],
                            app_args=setup.app_args(), lcores=PEER_LCORES, log_dir=workdir)

    def start(self):
        self.vhost.start()
        self.peer.start()
        for port in range(len(self.socks)):
            self.vhost.wait_link_up(port)
            self.peer.wait_link_up(port)
        self.pmd.check_identity(self.vhost, *self.socks)

    def close(self):
        # peers first: a virtio-user peer whose server is gone may die of SIGPIPE
        self.peer.close()
        self.vhost.close()

    def measure(self, direction: str, size: int, warmup: float, seconds: float) -> dict:
        v2v = direction == V2V
        modes = V2V_MODES if v2v else DIRECTIONS[direction]
        side, key = modes["count"]
        counted = self.vhost if side == "vhost" else self.peer
        ports = range(len(self.socks))

        def count() -> int:
            if not v2v:
                return counted.stats(0)[key]
            stats = counted.stats_all()
            return sum(stats[p][key] for p in ports)

        for tp, role in ((self.vhost, "vhost"), (self.peer, "peer")):
            tp.cmd(f"set fwd {modes[role]}")
            # flowgen sends frames of txpkts - 4 bytes ("Adjust FCS"); v2v
            # asks for 4 more so that its frames are the size the callgrind
            # loop (txonly's frames) and the zero-copy threshold see (the
            # cases of before keep their txpkts: PVP's frames are 4 bytes short)
            extra_bytes = FLOWGEN_FCS if v2v and modes[role] == "flowgen" else 0
            tp.cmd(f"set txpkts {size + extra_bytes}")
        self.vhost.start_forwarding()
        self.peer.start_forwarding()
        extra = {}
        try:
            time.sleep(warmup)
            cpu0 = [forwarding_cpu_seconds(tp) for tp in (self.vhost, self.peer)]
            if v2v:
                zc0, rx0 = vhost_zero_copy(self.vhost, ports)
            before, t0 = count(), time.monotonic()
            time.sleep(seconds)
            after, t1 = count(), time.monotonic()
            cpu1 = [forwarding_cpu_seconds(tp) for tp in (self.vhost, self.peer)]
            if v2v:
                zc1, rx1 = vhost_zero_copy(self.vhost, ports)
                # what the vhost side received (peer TX) and how much of it zero-copy
                extra = {"vhost_rx": rx1 - rx0, "zero_copy": zc1 - zc0}
        finally:
            self.peer.stop_forwarding()
            self.vhost.stop_forwarding()
        return {"pps": (after - before) / (t1 - t0),
                # share of a CPU the two polling threads got: on a loaded
                # machine this, more than the PMD, sets the rate
                "cpu_vhost": (cpu1[0] - cpu0[0]) / (t1 - t0),
                "cpu_peer": (cpu1[1] - cpu0[1]) / (t1 - t0), **extra}


def forwarding_cpu_seconds(tp: TestPmd) -> float:
    """CPU time of the process's forwarding thread (EAL names it rte-worker-N)."""
    return thread_cpu_seconds(tp.proc.pid, "rte-worker")


_ZC_XSTAT_RE = re.compile(r"^rx_q\d+_zero_copy_packets$")


def vhost_zero_copy(tp: TestPmd, ports) -> tuple:
    """(zero-copy frames, received frames) of the vhost ports so far; our
    xstat rx_q<N>_zero_copy_packets (0 for the distribution's PMD)."""
    zc = rx = 0
    for port in ports:
        zc += sum(v for k, v in tp.xstats(port).items() if _ZC_XSTAT_RE.match(k))
        rx += tp.stats(port)["ipackets"]
    return zc, rx


def run_pps(pmds: List[Pmd], cases: List[dict], args, workroot: Path, log) -> List[dict]:
    rows = []
    for setup, group in itertools.groupby(cases, key=lambda c: c["setup"]):
        group = list(group)
        workdir = Path(tempfile.mkdtemp(prefix="pps-", dir=workroot))
        pairs = [Pair(p, setup, workdir) for p in pmds]
        try:
            for pair in pairs:
                pair.start()
            for case, rep in itertools.product(group, range(args.reps)):
                # rotated per repetition: with two PMDs ours first on even
                # repetitions, the distribution's first on odd ones
                k = rep % len(pairs)
                order = pairs[k:] + pairs[:k]
                for pair in order:
                    m = pair.measure(case["direction"], case["size"], args.warmup, args.seconds)
                    rows.append({**case_key(case), "pmd": pair.pmd.name, "rep": rep, **m,
                                 "loadavg": os.getloadavg()[0]})
                    zc = (f", zero-copy {m['zero_copy'] / m['vhost_rx']:.0%}"
                          if m.get("vhost_rx") else "")
                    log(f"  {case_label(case):34s} rep {rep} {pair.pmd.name:6s} "
                        f"{m['pps'] / 1e6:7.3f} Mpps (CPU vhost {m['cpu_vhost']:.0%}, "
                        f"peer {m['cpu_peer']:.0%}{zc})")
        except TestPmdError as exc:
            log(f"  {setup.label}: FAILED: {exc}")
            done = [{k: r[k] for k in case_key(group[0])} for r in rows]
            rows += [{**case_key(c), "error": str(exc)[:2000]} for c in group
                     if case_key(c) not in done]
        finally:
            for pair in pairs:
                pair.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


# ----------------------------------------------------------- callgrind

_FWD_STATS_RE = re.compile(
    r"Forward statistics for port (\d+)\s*-+\s*RX-packets:\s*(\d+)\s+RX-dropped:\s*(\d+)"
    r".*?TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)", re.S)


def parse_fwd_stats(text: str) -> Dict[int, Dict[str, int]]:
    """The per-port block that ``stop`` prints: packets of this start..stop only."""
    return {int(m.group(1)): {"rx": int(m.group(2)), "rx_dropped": int(m.group(3)),
                              "tx": int(m.group(4)), "tx_dropped": int(m.group(5))}
            for m in _FWD_STATS_RE.finditer(text)}


def _direction_of(prof: callgrind.Profile, entry) -> Optional[str]:
    """rx or tx burst function? By its name (ours) or, for a stripped PMD, by
    the librte_vhost function it calls (rte_vhost_dequeue/enqueue_burst)."""
    names = [callgrind.base_name(entry)] + [callgrind.base_name(f) for f in prof.edges.get(entry, ())]
    for name in names:
        if re.search(r"(^|_)rx(_|$)|dequeue", name):
            return "dequeue"
        if re.search(r"(^|_)tx(_|$)|enqueue", name):
            return "enqueue"
    return None


def analyse_profile(prof: callgrind.Profile, pmd: Pmd, port0: Dict[str, int],
                    required=("dequeue", "enqueue")) -> dict:
    """The burst functions' costs; a direction not in ``required`` may be
    missing (--guest-csum circulates received frames only): then zeros."""
    entries = prof.entries(pmd.owns, lambda obj: os.path.basename(obj) == "dpdk-testpmd")
    out = {"packets": {"dequeue": port0["rx"], "enqueue": port0["tx"]},
           "dropped": port0["tx_dropped"]}
    for direction in ("dequeue", "enqueue"):
        mine = {f: v for f, v in entries.items() if _direction_of(prof, f) == direction}
        if not mine and direction not in required:
            out[direction] = {"instr": 0, "calls": 0, "functions": [], "breakdown": [],
                              "hot_lines": [], "subtree_instr": 0}
            continue
        if not mine:
            raise TestPmdError(f"{pmd.name}: no {direction} burst function called from testpmd "
                               f"in the profile (entries: {list(entries)})")
        cost = sum(v[1] for v in mine.values())
        out[direction] = {
            "instr": cost, "calls": sum(v[0] for v in mine.values()),
            "functions": sorted({callgrind.base_name(f) for f in mine}),
            "breakdown": callgrind.breakdown(prof, mine, top=20),
            "hot_lines": callgrind.hot_lines(prof, mine, top=20),
            # equals "instr" when the caller contexts kept the two directions
            # apart; more means helpers below both were counted twice
            "subtree_instr": sum(prof.subtree(mine).values()),
        }
    return out


def checksum_functions(prof: callgrind.Profile, pmd: Pmd, direction: str) -> Dict[str, int]:
    """Instructions of the functions below the PMD's ``direction`` burst
    functions whose name says checksum (cksum, csum): what shows that the
    checksums were, or were not, finished there (inlined code counts for the
    function it was inlined into)."""
    entries = prof.entries(pmd.owns, lambda obj: os.path.basename(obj) == "dpdk-testpmd")
    mine = {f: v for f, v in entries.items() if _direction_of(prof, f) == direction}
    found: Dict[str, int] = Counter()
    for func, cost in prof.subtree(mine).items():
        name = callgrind.base_name(func)
        if re.search(r"cksum|csum", name) and cost:
            found[name] += cost
    return dict(found)


def _csum16(data: bytes) -> int:
    """Ones' complement sum of ``data`` (RFC 1071), folded to 16 bits."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return total


def udp_seed_frame(size: int) -> bytes:
    """A frame like testpmd's txonly frames (IPv4 198.18.0.1 -> 198.18.0.2,
    UDP port 9 -> 9, ``size`` bytes without FCS) but with its UDP checksum:
    the csum engine offloads no checksum that is zero (UDP's "none")."""
    ip_len = size - 14
    udp_len = ip_len - 20
    src, dst = bytes((198, 18, 0, 1)), bytes((198, 18, 0, 2))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0, 64, 17, 0, src, dst))
    struct.pack_into("!H", ip, 10, ~_csum16(bytes(ip)) & 0xffff)
    udp = bytearray(struct.pack("!HHHH", 9, 9, udp_len, 0) + bytes(udp_len - 8))
    csum = ~_csum16(src + dst + struct.pack("!BBH", 0, 17, udp_len) + bytes(udp)) & 0xffff
    struct.pack_into("!H", udp, 6, csum or 0xffff)
    # the csum engine writes both MAC addresses (peer's, port's) as it forwards
    return bytes.fromhex("020000000001" "020000000000") + b"\x08\x00" + bytes(ip) + bytes(udp)


def write_seed_pcap(path: Path, size: int, count: int) -> Path:
    """``count`` copies of udp_seed_frame(size), a pcap file (Ethernet)."""
    frame = udp_seed_frame(size)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i in range(count):
            fh.write(struct.pack("<IIII", 1_700_000_000, i, len(frame), len(frame)) + frame)
    return path


_CMD_ERROR_RE = re.compile(r"not supported|error|fail|invalid|bad arguments|stop port", re.I)


def configure_guest_csum(tp: TestPmd, mode: str) -> None:
    """--guest-csum: the virtio-user port (1) leaves UDP checksums to the
    host (NEEDS_CSUM), the vhost port (0) without (sw) or with (offload)
    rx_offload udp_cksum; csum forwarding, testpmd's own checksums in software."""
    tp.cmd("port stop all", timeout=120)
    cmds = ["port config 1 tx_offload udp_cksum on"]
    if mode == "offload":
        cmds.append("port config 0 rx_offload udp_cksum on")
    cmds += ["set fwd csum",
             "csum set ip sw 0", "csum set udp sw 0", "csum mac-swap off 0",
             "csum set ip sw 1", "csum set udp hw 1", "csum mac-swap off 1"]
    for command in cmds:
        out = tp.cmd(command, timeout=120)
        if _CMD_ERROR_RE.search(out):
            raise TestPmdError(f"{tp.name}: {command!r} failed: {out.strip()[-600:]}")
    tp.cmd("port start all", timeout=120)
    tp.wait_link_up(0, timeout=120)
    tp.wait_link_up(1, timeout=120)
    rx0 = tp.cmd("show port 0 rx_offload configuration")
    tx1 = tp.cmd("show port 1 tx_offload configuration")
    if ("UDP_CKSUM" in rx0) != (mode == "offload") or "UDP_CKSUM" not in tx1:
        raise TestPmdError(f"{tp.name}: offloads not as --guest-csum {mode} needs:\n{rx0}\n{tx1}")


def seed_guest_csum(tp: TestPmd, size: int, count: int, workdir: Path, index: int) -> None:
    """Fill the receive loop (virtio TX -> vhost RX -> virtio TX) with
    ``count`` frames with UDP checksums: a pcap port, hot-plugged for the
    purpose, forwards them to the virtio port (csum engine: checksum
    offloaded); the vhost port is not polled meanwhile, so they wait in its
    receive ring. The pcap port goes away again."""
    pcap = write_seed_pcap(workdir / f"seed-{size}.pcap", size, count)
    out = tp.cmd(f"port attach net_pcap{index},rx_pcap={pcap},tx_pcap=/dev/null", timeout=120)
    m = re.search(r"Port (\d+) is attached", out)
    if not m:
        raise TestPmdError(f"{tp.name}: attaching the pcap port failed: {out.strip()[-600:]}")
    port = int(m.group(1))
    try:
        tp.cmd(f"port start {port}", timeout=120)
        # paired: pcap RX -> virtio TX, and virtio RX (empty) -> pcap TX
        tp.cmd(f"set portlist 1,{port}")
        tp.start_forwarding()
        time.sleep(1.0)
        stats = parse_fwd_stats(tp.stop_forwarding())
    finally:
        tp.cmd("set portlist 0,1")
        # stopped, then removed (a closed port cannot be detached any more)
        for command in (f"port stop {port}", f"port detach {port}"):
            tp.cmd(command, timeout=120)
        tp.cmd("set portlist 0,1")
    sent = stats.get(1, {}).get("tx", 0)
    if sent != count or stats.get(port, {}).get("rx", 0) != count:
        raise TestPmdError(f"{tp.name}: seeding sent {sent} of {count} frames to the virtio "
                           f"port (stats {stats})")


_CSUM_VERBOSE_RE = re.compile(
    r"port=(\d+), mbuf=0x[0-9a-f]+, pkt_len=\d+, nb_segs=\d+:\n+"
    r"rx: [^\n]*?flags=([^\n]*)\n+(?:tx: m->[^\n]*\n+)*tx: flags=([^\n]*)")


def _write_commands(tp: TestPmd, *commands: str) -> None:
    """Commands written without waiting for their prompts (see check_guest_csum)."""
    try:
        tp.proc.stdin.write("".join(c + "\n" for c in commands).encode())
        tp.proc.stdin.flush()
    except (OSError, AttributeError) as exc:
        raise TestPmdError(f"{tp.name}: writing {commands} failed: {exc}") from exc


def check_guest_csum(tp: TestPmd, mode: str) -> dict:
    """A short window with ``set verbose 1`` (csum engine's per-frame lines):
    the L4 checksum flag of the frames the vhost port received, and whether
    they went back to the virtio port asking for the checksum (NEEDS_CSUM).
    The forwarding thread's lines land between the characters of testpmd's
    prompt (written one at a time), where the harness cannot tell a prompt
    from them: ``start`` and ``stop`` are written blind, and the window ends
    at the prompt after ``set verbose 0``, printed once forwarding stopped."""
    tp.cmd("set verbose 1")
    start = len(tp.log)
    _write_commands(tp, "start")
    time.sleep(GUEST_CSUM_CHECK_SECONDS)
    _write_commands(tp, "stop", "set verbose 0")
    tp.wait_log(r"Change verbose level from 1 to 0\n(?:[^\n]*\n)*?testpmd> ", timeout=120,
                start=start)
    seen: Counter = Counter()
    for m in _CSUM_VERBOSE_RE.finditer(tp.log[start:]):
        if m.group(1) != "0":
            continue
        l4 = next((f for f in m.group(2).split() if f.startswith("RTE_MBUF_F_RX_L4_CKSUM_")),
                  "no L4 flag")
        tx = "TX_UDP_CKSUM" if "RTE_MBUF_F_TX_UDP_CKSUM" in m.group(3).split() else "no TX_UDP_CKSUM"
        seen[f"{l4}, {tx}"] += 1
    frames = sum(seen.values())
    expected = seen[f"{GUEST_CSUM_RX_FLAG[mode]}, TX_UDP_CKSUM"]
    check = {"frames": frames, "expected": expected, "seen": dict(seen)}
    if frames < 32 or expected < GUEST_CSUM_MIN_SHARE * frames:
        raise TestPmdError(f"{tp.name}: --guest-csum {mode}: of {frames} frames received on "
                           f"port 0, {expected} were {GUEST_CSUM_RX_FLAG[mode]} and sent back "
                           f"with TX_UDP_CKSUM ({dict(seen)})")
    return check


def run_callgrind_setup(pmd: Pmd, setup: Setup, sizes: List[int], args, workdir: Path,
                        log) -> List[dict]:
    guest_csum = getattr(args, "guest_csum", "off")
    sock = workdir / f"cg-{pmd.name}.sock"
    out_base = workdir / f"callgrind.{pmd.name}"
    tp = TestPmd(f"cg-{pmd.name}", eal_args=pmd.selection.eal_args(),
                 vdevs=[setup.vhost_vdev(sock, 0, pmd.devargs)],
                 app_args=setup.app_args() + pmd.app_args() + ["--forward-mode=io",
                                                               "--no-flush-rx"],
                 lcores=OUR_LCORES, log_dir=workdir, cmd_timeout=300)
    # the harness builds the command line; callgrind goes in front of it
    tp.argv = VALGRIND + [f"--callgrind-out-file={out_base}.%p"] + tp.argv
    rows = []
    try:
        tp.start(timeout=300)
        # The distribution's net_vhost creates its socket at port start, after
        # every --vdev was probed, so the virtio-user port, which connects at
        # probe, comes in by hot-plug (the same for both PMDs).
        tp.cmd("port attach " + setup.peer_vdev(sock))
        tp.cmd("port start 1")
        tp.wait_link_up(0, timeout=120)
        tp.wait_link_up(1, timeout=120)
        pmd.check_identity(tp, sock)
        if guest_csum != "off":
            configure_guest_csum(tp, guest_csum)
        for n, size in enumerate(sizes, start=1):
            # empty both loops of the previous size, then seed this one
            tp.cmd("set fwd rxonly")
            tp.start_forwarding()
            time.sleep(0.5)
            tp.stop_forwarding()
            check = None
            if guest_csum == "off":
                tp.cmd("set fwd io")
                tp.cmd(f"set txpkts {size}")
                tp.cmd(f"start tx_first {SEED_BURSTS}")
            else:
                # as many frames as tx_first seeds a loop with, in the receive loop only
                tp.cmd("set fwd csum")
                seed_guest_csum(tp, size, SEED_BURSTS * 32, workdir, n)
                tp.start_forwarding()
            time.sleep(args.warmup)
            tp.stop_forwarding()
            if guest_csum != "off":
                check = check_guest_csum(tp, guest_csum)
            callgrind.control(tp.proc.pid, "-i", "on")
            tp.start_forwarding()
            time.sleep(args.cg_seconds)
            stats = parse_fwd_stats(tp.stop_forwarding())
            if 0 not in stats:
                raise TestPmdError(f"{tp.name}: no forward statistics for port 0 at stop")
            callgrind.control(tp.proc.pid, "-d")
            callgrind.control(tp.proc.pid, "-i", "off")
            dump = Path(f"{out_base}.{tp.proc.pid}.{n}")
            prof = callgrind.parse(dump)
            res = analyse_profile(prof, pmd, stats[0],
                                  required=("dequeue", "enqueue") if check is None else ("dequeue",))
            row = {"ring": setup.ring, "mrg": setup.mrg, "queues": setup.queues,
                   "size": size, "pmd": pmd.name, **res}
            if check is not None:
                row.update(guest_csum=guest_csum, guest_csum_check=check,
                           checksum_functions=checksum_functions(prof, pmd, "dequeue"))
            rows.append(row)
            enq = res["packets"]["enqueue"]
            log(f"  callgrind {setup.label}/{size}B {pmd.name:6s} "
                f"dequeue {res['dequeue']['instr'] / max(res['packets']['dequeue'], 1):7.1f} "
                + (f"enqueue {res['enqueue']['instr'] / max(enq, 1):7.1f} "
                   if enq or check is None else "enqueue       - ")
                + f"instr/pkt ({res['packets']['dequeue']} pkts)")
            if check is not None:
                pkts = max(res["packets"]["dequeue"], 1)
                fns = ", ".join(f"{k} {v / pkts:.1f}" for k, v in
                                sorted(row["checksum_functions"].items(), key=lambda kv: -kv[1]))
                log(f"    guest csum {guest_csum}: {check['expected']}/{check['frames']} frames "
                    f"{GUEST_CSUM_RX_FLAG[guest_csum]} and sent back with TX_UDP_CKSUM; "
                    f"checksum functions under the receive burst (instr/pkt): {fns or 'none'}")
            if args.keep_profiles or (size == 64 and setup.queues == 1):
                tag = "" if check is None else f".csum-{guest_csum}"
                shutil.copy(dump, args.out / f"callgrind.{pmd.name}.{setup.ring}.mrg{setup.mrg}"
                                               f".q{setup.queues}.{size}B{tag}.out")
    except (TestPmdError, subprocess.SubprocessError, OSError) as exc:
        log(f"  callgrind {setup.label} {pmd.name}: FAILED: {exc}")
        rows += [{"ring": setup.ring, "mrg": setup.mrg, "queues": setup.queues, "size": s,
                  "pmd": pmd.name, "error": str(exc)[:2000]}
                 for s in sizes if not any(r["size"] == s for r in rows)]
    finally:
        tp.close(quit_timeout=120)
    return rows


def run_callgrind_v2v(pmd: Pmd, setup: Setup, sizes: List[int], args, workdir: Path,
                      log) -> List[dict]:
    """VM to VM in one process: vhost ports 0 (socket a) and 1 (socket b),
    virtio-user ports 2 (a) and 3 (b) hot-plugged after them. testpmd's
    paired topology forwards 0 <-> 1 and 2 <-> 3, so a frame circulates
    virtio A TX -> vhost A RX -> vhost B TX -> virtio B RX -> virtio A TX
    (and the reverse loop through vhost B RX and vhost A TX)."""
    socks = [workdir / f"cg-{pmd.name}-{c}.sock" for c in "ab"]
    out_base = workdir / f"callgrind.{pmd.name}"
    tp = TestPmd(f"cg-{pmd.name}-v2v", eal_args=pmd.selection.eal_args(),
                 vdevs=[setup.vhost_vdev(s, i, pmd.devargs) for i, s in enumerate(socks)],
                 app_args=setup.app_args() + pmd.app_args() + ["--forward-mode=io",
                                                               "--no-flush-rx"],
                 lcores=OUR_LCORES, log_dir=workdir, cmd_timeout=300)
    tp.argv = VALGRIND + [f"--callgrind-out-file={out_base}.%p"] + tp.argv
    vhost_ports = (0, 1)
    rows = []
    try:
        tp.start(timeout=300)
        for i, sock in enumerate(socks):
            tp.cmd("port attach " + setup.peer_vdev(sock, i))
            tp.cmd(f"port start {2 + i}")
        for port in range(4):
            tp.wait_link_up(port, timeout=120)
        pmd.check_identity(tp, *socks)
        for n, size in enumerate(sizes, start=1):
            tp.cmd("set fwd rxonly")
            tp.start_forwarding()
            time.sleep(0.5)
            tp.stop_forwarding()
            tp.cmd("set fwd io")
            tp.cmd(f"set txpkts {size}")
            tp.cmd(f"start tx_first {V2V_SEED_BURSTS}")
            time.sleep(args.warmup)
            tp.stop_forwarding()
            zc0, _ = vhost_zero_copy(tp, vhost_ports)
            callgrind.control(tp.proc.pid, "-i", "on")
            tp.start_forwarding()
            time.sleep(args.cg_seconds)
            stats = parse_fwd_stats(tp.stop_forwarding())
            callgrind.control(tp.proc.pid, "-d")
            callgrind.control(tp.proc.pid, "-i", "off")
            zc1, _ = vhost_zero_copy(tp, vhost_ports)
            if any(p not in stats for p in range(4)):
                raise TestPmdError(f"{tp.name}: forward statistics for ports {sorted(stats)} "
                                   f"at stop, expected 0..3")
            # both vhost ports as one: what they received and transmitted
            both = {k: sum(stats[p][k] for p in vhost_ports) for k in stats[0]}
            dump = Path(f"{out_base}.{tp.proc.pid}.{n}")
            res = analyse_profile(callgrind.parse(dump), pmd, both)
            fwd = max(res["packets"]["dequeue"], 1)
            total = res["dequeue"]["instr"] + res["enqueue"]["instr"]
            rows.append({"direction": V2V, "ring": setup.ring, "mrg": setup.mrg,
                         "queues": setup.queues, "size": size, "pmd": pmd.name, **res,
                         "zero_copy": zc1 - zc0, "ports": stats})
            log(f"  callgrind {setup.label}/{size}B {pmd.name:7s} "
                f"rx {res['dequeue']['instr'] / fwd:7.1f} "
                f"tx {res['enqueue']['instr'] / max(res['packets']['enqueue'], 1):7.1f} "
                f"both {total / fwd:7.1f} instr/pkt ({res['packets']['dequeue']} pkts, "
                f"{res['packets']['dequeue'] / max(res['dequeue']['calls'], 1):.1f}/burst, "
                f"zero-copy {(zc1 - zc0) / fwd:.0%}, tx dropped {both['tx_dropped']})")
            shutil.copy(dump, args.out / f"callgrind.{pmd.name}.v2v.{setup.ring}.mrg{setup.mrg}"
                                           f".q{setup.queues}.{size}B.out")
    except (TestPmdError, subprocess.SubprocessError, OSError) as exc:
        log(f"  callgrind {setup.label} {pmd.name}: FAILED: {exc}")
        rows += [{"direction": V2V, "ring": setup.ring, "mrg": setup.mrg,
                  "queues": setup.queues, "size": s, "pmd": pmd.name, "error": str(exc)[:2000]}
                 for s in sizes if not any(r["size"] == s for r in rows)]
    finally:
        tp.close(quit_timeout=120)
    return rows


def run_callgrind(pmds: List[Pmd], cases: List[dict], args, workroot: Path, log) -> List[dict]:
    sizes_of: Dict[Setup, List[int]] = {}
    for c in cases:
        sizes = sizes_of.setdefault(c["setup"], [])
        if c["size"] not in sizes:
            sizes.append(c["size"])
    rows = []
    for setup, sizes in sizes_of.items():
        for pmd in pmds:
            if pmd.devargs.get("dequeue-zero-copy") and not setup.v2v:
                # the one-process loop sends what port 0 received out through
                # the virtio-user port it came from: zero-copy mbufs point into
                # our mapping of that port's memory, which is not in its memory
                # table, and we refuse such chains (pps and v2v are fine)
                log(f"  callgrind {setup.label} {pmd.name}: skipped (loops mbufs back "
                    f"to the guest they point into)")
                continue
            workdir = Path(tempfile.mkdtemp(prefix="cg-", dir=workroot))
            run = run_callgrind_v2v if setup.v2v else run_callgrind_setup
            rows += run(pmd, setup, sizes, args, workdir, log)
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    return rows


# ---------------------------------------------------------------- main


def case_key(case: dict) -> dict:
    s = case["setup"]
    return {"direction": case["direction"], "size": case["size"], "ring": s.ring,
            "mrg": s.mrg, "queues": s.queues}


def case_label(case: dict) -> str:
    return f"{case['direction']}/{case['size']}B/{case['setup'].label}"


def build_cases(args) -> List[dict]:
    # grouped by setup: the pps pairs are started once per setup (v2v, with
    # two ports a side, is a setup of its own, after the others)
    std = [d for d in args.dirs if d != V2V]
    cases = [{"setup": Setup(ring, mrg, q, v2v, size > DEFAULT_MBUF_DATA),
              "direction": d, "size": size}
             for ring, mrg, q in itertools.product(args.rings, args.mrg, args.queues)
             for v2v, dirs in ((False, std), (True, [V2V] if V2V in args.dirs else []))
             for d, size in itertools.product(dirs, args.sizes)]
    # the big-mbuf setups after the others (a stable sort keeps the rest's order)
    return sorted(cases, key=lambda c: c["setup"].big_mbufs)


def metadata(args, so: Path) -> dict:
    return {**run_metadata(args.pmd, so), "valgrind": command_output("valgrind", "--version"),
            "settings": {k: getattr(args, k) for k in ("reps", "warmup", "seconds", "cg_seconds",
                                                       "zc", "zc_threshold", "guest_csum")}}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    csv = lambda conv: (lambda s: [conv(x) for x in s.split(",")])  # noqa: E731
    ap.add_argument("--quick", action="store_true",
                    help="64 and 1518 bytes, split and packed, mrg_rxbuf=1, 1 queue pair, "
                         "dequeue and enqueue (a few minutes)")
    ap.add_argument("--dirs", type=csv(str), default=list(DIRECTIONS),
                    help=f"{','.join(DIRECTIONS)} (default) and {V2V} (VM to VM: two vhost "
                         f"ports forwarding to each other)")
    ap.add_argument("--sizes", type=csv(int), default=[64, 512, 1518])
    ap.add_argument("--rings", type=csv(str), default=["split", "packed"])
    ap.add_argument("--mrg", type=csv(int), default=[0, 1])
    ap.add_argument("--queues", type=csv(int), default=[1, 2, 4])
    ap.add_argument("--reps", type=int, default=3, help="pps repetitions per PMD (default 3)")
    ap.add_argument("--warmup", type=float, default=1.5, help="seconds before a window")
    ap.add_argument("--seconds", type=float, default=4.0, help="pps window (seconds)")
    ap.add_argument("--cg-seconds", type=float, default=8.0,
                    help="callgrind window (seconds; ~200k packets per second under callgrind)")
    ap.add_argument("--zc", action="store_true",
                    help="a third competitor: ours with dequeue-zero-copy=1 (\"ours-zc\")")
    ap.add_argument("--zc-threshold", type=int, default=None, metavar="N",
                    help="zero-copy-threshold=N for ours-zc (default: the PMD's, 4096)")
    ap.add_argument("--guest-csum", choices=GUEST_CSUM, default="off",
                    help="callgrind only (with --no-pps; 1 queue pair; frames of 60..2048 "
                         "bytes): the virtio-user port leaves every UDP checksum to the host "
                         "(NEEDS_CSUM), testpmd's csum engine forwards; sw: the vhost port has "
                         "no RX offload and finishes the checksums in its receive burst; "
                         "offload: it has rx_offload udp_cksum and only flags the frames. "
                         "Receive side only (no transmit figure). Default off: io, frames "
                         "without checksum requests")
    ap.add_argument("--no-pps", action="store_true")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--pmd", type=Path, default=DEFAULT_PMD_SO, help="our plugin (.so)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results directory (default bench/results/<date-time>)")
    ap.add_argument("--img", type=Path, default=REPO / "docs" / "img", help="charts go here")
    ap.add_argument("--keep", action="store_true", help="keep testpmd logs and sockets")
    ap.add_argument("--keep-profiles", action="store_true",
                    help="keep every callgrind profile (default: the 64-byte 1-queue ones)")
    ap.add_argument("--report-only", type=Path, nargs="+", metavar="RESULTS_JSON",
                    help="no measurement: tables and charts from earlier results (merged)")
    args = ap.parse_args(argv)
    if args.quick:
        args.dirs, args.sizes, args.rings = ["dequeue", "enqueue"], [64, 1518], ["split", "packed"]
        args.mrg, args.queues = [1], [1]
    bad = set(args.dirs) - set(DIRECTIONS) - {V2V}
    if bad:
        ap.error(f"unknown direction(s) {sorted(bad)}; valid: {list(DIRECTIONS) + [V2V]}")
    if args.zc_threshold is not None and not args.zc:
        ap.error("--zc-threshold needs --zc")
    if args.guest_csum != "off":
        if not args.no_pps or args.no_callgrind:
            ap.error("--guest-csum is a callgrind measurement: with --no-pps, "
                     "without --no-callgrind")
        if V2V in args.dirs:
            ap.error("--guest-csum: not with v2v")
        if args.queues != [1]:
            ap.error("--guest-csum: 1 queue pair only (--queues 1)")
        if any(not 60 <= s <= DEFAULT_MBUF_DATA for s in args.sizes):
            ap.error(f"--guest-csum: sizes from 60 to {DEFAULT_MBUF_DATA} bytes")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        results = report.merge([json.loads(p.read_text()) for p in args.report_only])
        out = args.out or args.report_only[0].parent
        out.mkdir(parents=True, exist_ok=True)
        report.write_all(results, out, args.img)
        print(f"tables in {out}, charts in {args.img}")
        return 0
    for tool in ("dpdk-testpmd", "valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install dpdk valgrind)")
    if not args.pmd.is_file():
        sys.exit(f"{args.pmd} missing: build first (ninja -C build)")
    args.out = args.out or BENCH_DIR / "results" / time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    so = snapshot_plugin(args.pmd)
    pmds = [Pmd("ours", PmdSelection("ours", so)), Pmd("distro", PmdSelection("distro"))]
    if args.zc:
        zc = {"dequeue-zero-copy": 1}
        if args.zc_threshold is not None:
            zc["zero-copy-threshold"] = args.zc_threshold
        pmds.insert(1, Pmd("ours-zc", PmdSelection("ours", so), zc))
    cases = build_cases(args)
    log = run_logger(args.out / "run.log")

    results = {"meta": metadata(args, so), "pps": [], "callgrind": []}
    est = (0 if args.no_pps else
           len(cases) * args.reps * len(pmds) * (args.warmup + args.seconds + 1.5))
    est += 0 if args.no_callgrind else (len(cases) // len(args.dirs) * len(pmds)
                                        * (1 + (V2V in args.dirs and len(args.dirs) > 1))
                                        * (args.cg_seconds + 12))
    log(f"{len(cases)} cases, about {est / 60:.0f} min; results in {args.out}")
    # short socket paths (AF_UNIX: 107 bytes)
    workroot = Path(tempfile.mkdtemp(prefix="vhubench-", dir="/tmp"))
    run_phases(args, results, "pps", lambda: run_pps(pmds, cases, args, workroot, log),
               lambda: run_callgrind(pmds, cases, args, workroot, log), workroot, so)
    report.write_all(results, args.out, args.img)
    log(f"done: {args.out}/results.json, table.md, breakdown.md; charts in {args.img}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
