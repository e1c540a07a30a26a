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

Usage: bench/run.py --quick | bench/run.py [--dirs ...] [--sizes ...] ...
       bench/run.py --report-only RESULTS.json [...]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
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
# testpmd's flowgen makes its frames this much shorter than txpkts says
FLOWGEN_FCS = 4

# testpmd's default pool (~155k mbufs) only slows start-up; 16k is plenty for
# 4 queue pairs of 256 descriptors.
APP_ARGS = ["--total-num-mbufs=16384", "--nb-cores=1"]
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

VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
            # callers in function names keep the receive and transmit
            # subtrees apart where they share helpers (see callgrind.py)
            "--separate-callers=12",
            "--compress-pos=no"]  # absolute line numbers, see callgrind.parse


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
        return (APP_ARGS + (BIG_MBUF_ARGS if self.big_mbufs else [])
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

    def owns(self, obj: str) -> bool:
        return os.path.basename(obj).startswith(self.object_prefix)

    def check_identity(self, tp: TestPmd, sock, *more_socks) -> None:
        ports = {f"eth_vhost{i}": str(s) for i, s in enumerate((sock,) + more_socks)}
        problems = driver_identity_problems(tp.log, self.selection, ports)
        if problems:
            raise TestPmdError(f"{tp.name}: not served by {self.name}: {problems}")


def snapshot_plugin(so: Path) -> Path:
    """A private copy of our plugin: the build may change during a long run,
    and the copy (mode 0700 directory) satisfies EAL's -d check wherever the
    tree lives."""
    dest = Path(tempfile.mkdtemp(prefix="bench-", dir=_cache_dir())) / so.name
    shutil.copy2(so, dest)
    return dest


def _cache_dir() -> Path:
    d = Path(os.environ.get("HOME", "/root")) / ".cache" / "vhu"
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    return d


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
                             app_args=setup.app_args(), lcores=OUR_LCORES, log_dir=workdir)
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


_ZC_XSTAT_RE = re.compile(r"^rx_q\d+_zero_copy_packets$")


def vhost_zero_copy(tp: TestPmd, ports) -> tuple:
    """(zero-copy frames, received frames) of the vhost ports so far; our
    xstat rx_q<N>_zero_copy_packets (0 for the distribution's PMD)."""
    zc = rx = 0
    for port in ports:
        zc += sum(v for k, v in tp.xstats(port).items() if _ZC_XSTAT_RE.match(k))
        rx += tp.stats(port)["ipackets"]
    return zc, rx


def forwarding_cpu_seconds(tp: TestPmd) -> float:
    """CPU time of the process's forwarding thread (EAL names it rte-worker-N)."""
    ticks = 0
    task_dir = Path(f"/proc/{tp.proc.pid}/task")
    for tid in os.listdir(task_dir):
        try:
            stat = (task_dir / tid / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name.startswith("rte-worker"):
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


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


def analyse_profile(prof: callgrind.Profile, pmd: Pmd, port0: Dict[str, int]) -> dict:
    entries = prof.entries(pmd.owns, lambda obj: os.path.basename(obj) == "dpdk-testpmd")
    out = {"packets": {"dequeue": port0["rx"], "enqueue": port0["tx"]},
           "dropped": port0["tx_dropped"]}
    for direction in ("dequeue", "enqueue"):
        mine = {f: v for f, v in entries.items() if _direction_of(prof, f) == direction}
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


def _callgrind_control(tp: TestPmd, *args: str):
    subprocess.run(["callgrind_control", *args, str(tp.proc.pid)], check=True,
                   capture_output=True, timeout=120)


def run_callgrind_setup(pmd: Pmd, setup: Setup, sizes: List[int], args, workdir: Path,
                        log) -> List[dict]:
    sock = workdir / f"cg-{pmd.name}.sock"
    out_base = workdir / f"callgrind.{pmd.name}"
    tp = TestPmd(f"cg-{pmd.name}", eal_args=pmd.selection.eal_args(),
                 vdevs=[setup.vhost_vdev(sock, 0, pmd.devargs)],
                 app_args=setup.app_args() + ["--forward-mode=io", "--no-flush-rx"],
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
        for n, size in enumerate(sizes, start=1):
            # empty both loops of the previous size, then seed this one
            tp.cmd("set fwd rxonly")
            tp.start_forwarding()
            time.sleep(0.5)
            tp.stop_forwarding()
            tp.cmd("set fwd io")
            tp.cmd(f"set txpkts {size}")
            tp.cmd(f"start tx_first {SEED_BURSTS}")
            time.sleep(args.warmup)
            tp.stop_forwarding()
            _callgrind_control(tp, "-i", "on")
            tp.start_forwarding()
            time.sleep(args.cg_seconds)
            stats = parse_fwd_stats(tp.stop_forwarding())
            if 0 not in stats:
                raise TestPmdError(f"{tp.name}: no forward statistics for port 0 at stop")
            _callgrind_control(tp, "-d")
            _callgrind_control(tp, "-i", "off")
            dump = Path(f"{out_base}.{tp.proc.pid}.{n}")
            res = analyse_profile(callgrind.parse(dump), pmd, stats[0])
            rows.append({"ring": setup.ring, "mrg": setup.mrg, "queues": setup.queues,
                         "size": size, "pmd": pmd.name, **res})
            log(f"  callgrind {setup.label}/{size}B {pmd.name:6s} "
                f"dequeue {res['dequeue']['instr'] / max(res['packets']['dequeue'], 1):7.1f} "
                f"enqueue {res['enqueue']['instr'] / max(res['packets']['enqueue'], 1):7.1f} "
                f"instr/pkt ({res['packets']['dequeue']} pkts)")
            if args.keep_profiles or (size == 64 and setup.queues == 1):
                shutil.copy(dump, args.out / f"callgrind.{pmd.name}.{setup.ring}.mrg{setup.mrg}"
                                               f".q{setup.queues}.{size}B.out")
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
                 app_args=setup.app_args() + ["--forward-mode=io", "--no-flush-rx"],
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
            _callgrind_control(tp, "-i", "on")
            tp.start_forwarding()
            time.sleep(args.cg_seconds)
            stats = parse_fwd_stats(tp.stop_forwarding())
            _callgrind_control(tp, "-d")
            _callgrind_control(tp, "-i", "off")
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
    def cmd(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=REPO,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git": cmd("git", "describe", "--always", "--dirty"),
        "plugin": str(args.pmd), "plugin_sha256": hashlib.sha256(so.read_bytes()).hexdigest(),
        "dpdk": cmd("dpkg-query", "-W", "-f=${Version}", "dpdk"),
        "valgrind": cmd("valgrind", "--version"),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), platform.processor()),
        "nproc": os.cpu_count(), "loadavg_start": os.getloadavg(),
        "settings": {k: getattr(args, k) for k in ("reps", "warmup", "seconds", "cg_seconds",
                                                   "zc", "zc_threshold")},
        "command": " ".join(sys.argv),
    }


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
    logfile = open(args.out / "run.log", "a")

    def log(msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    results = {"meta": metadata(args, so), "pps": [], "callgrind": []}
    est = (0 if args.no_pps else
           len(cases) * args.reps * len(pmds) * (args.warmup + args.seconds + 1.5))
    est += 0 if args.no_callgrind else (len(cases) // len(args.dirs) * len(pmds)
                                        * (1 + (V2V in args.dirs and len(args.dirs) > 1))
                                        * (args.cg_seconds + 12))
    log(f"{len(cases)} cases, about {est / 60:.0f} min; results in {args.out}")
    # short socket paths (AF_UNIX: 107 bytes)
    workroot = Path(tempfile.mkdtemp(prefix="vhubench-", dir="/tmp"))
    save = lambda: (args.out / "results.json").write_text(json.dumps(results, indent=1))  # noqa: E731
    try:
        if not args.no_pps:
            results["pps"] = run_pps(pmds, cases, args, workroot, log)
            save()
        if not args.no_callgrind:
            results["callgrind"] = run_callgrind(pmds, cases, args, workroot, log)
    finally:
        results["meta"]["loadavg_end"] = os.getloadavg()
        save()
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
            shutil.rmtree(so.parent, ignore_errors=True)
    report.write_all(results, args.out, args.img)
    log(f"done: {args.out}/results.json, table.md, breakdown.md; charts in {args.img}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
