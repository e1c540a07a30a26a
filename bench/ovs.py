#!/usr/bin/python3
"""Open vSwitch side by side: our eth_vhost ports against OVS's own vhost-user ports.

PVP through Debian's OVS 3.1 with DPDK (ovs-vswitchd-dpdk), a private one per
session (tests/harness/ovs.py: own database, sockets, logs, EAL file prefix
and network namespace), in two variants that differ only in who serves the
two vhost-user ports:

* ``ours``: ``-d`` a private copy of our plugin, the ports ``type=dpdk`` on
  ``eth_vhost0,iface=SOCK`` and ``eth_vhost1,...`` (our devargs' defaults);
  our PMD listens on the sockets;
* ``ovs-own``: no plugin, the ports ``type=dpdkvhostuser``: OVS's netdev-dpdk
  drives DPDK's vhost library (librte_vhost) itself and listens on
  ``<rundir>/vh0`` and ``<rundir>/vh1``.

Each variant's log must prove who served the ports (harness/pmd.py's
driver identity check: our probe and version lines and no librte_vhost
line, or librte_vhost's "socket created" lines) before anything is measured.

The bridge (netdev datapath) cross-connects the two ports with two OpenFlow
rules. The peer, one testpmd (``--no-pci --no-huge -m 1024``, own file
prefix, ``-l 0,1 --main-lcore 1``: it forwards on lcore 0, CPU 0), has two
virtio-user ports (clients, the same in both variants), one per OVS port,
and runs flowgen on both: frames go peer port 0 -> OVS port 1 -> OVS port
2 -> peer port 1 and the reverse. OVS's main thread is on CPU 0, its one
polling (PMD) thread on CPU 1 (harness/ovs.py's masks).

Per window: flowgen started, ``--warmup`` seconds, ``pmd-stats-clear``, the
peer's counters read twice ``--seconds`` apart, then ``pmd-stats-show`` and
``pmd-perf-show``. The figure is what the peer received (both ports'
``ipackets``) per second; OVS's own figure is its polling thread's
"avg processing cycles per packet" (its busy iterations' TSC cycles over the
packets it received; idle polling is not in it), also times the share of a
CPU the thread got (TSC cycles go on while it is descheduled). Both polling
threads' CPU shares are recorded: on a shared machine they, more than the
code, can set the rate.

Two OVS polling on one CPU would share it, so the variants cannot stand
side by side as bench/run.py's testpmd pairs do: a session starts one
variant's OVS and peer for one ring layout, measures every frame size, and
stops them. Sessions alternate: in each repetition, for each ring, both
variants, ours first in even repetitions and OVS's own first in odd ones;
the ratio ours/own is taken per repetition (windows tens of seconds apart)
and reported as median (min..max).

On a shared machine those figures move by tens of percent from one window
to the next, so a second figure does not depend on the load: ovs-vswitchd's
instructions per packet, counted by callgrind. One more session per variant
and ring runs ovs-vswitchd-dpdk under callgrind (``--fair-sched=yes``,
instrumentation off until the window), the peer as above but with rings of
1024 entries: it outruns OVS, which then always finds full bursts. Per size,
after the warm-up, the window (``--cg-seconds``) is counted and dumped; the
figure is the instructions of every thread of OVS over the packets the peer
received meanwhile, split by object: OVS itself, the vhost back end (our
plugin or librte_vhost), the rest of DPDK, libc.

Usage: bench/ovs.py [--quick] [--sizes 64,1518] [--rings split,packed] [--reps N]
                    [--no-pps] [--no-callgrind]
Results: bench/results/<date-time>-ovs/ (results.json, table.md, breakdown.md:
the functions with the most instructions, the callgrind profiles, run.log).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from harness.ovs import Ovs, OvsError, missing_tools  # noqa: E402
from harness.pmd import DEFAULT_PMD_SO, PmdSelection, driver_identity_problems  # noqa: E402
from harness.testpmd import PEER_LCORES, TestPmd, TestPmdError, vhost_vdev, virtio_user_vdev  # noqa: E402

import callgrind  # noqa: E402
import report  # noqa: E402
from common import (FLOWGEN_FCS, TESTPMD_APP_ARGS, command_output, run_logger,  # noqa: E402
                    run_metadata, run_phases, snapshot_plugin, thread_cpu_seconds)

VARIANTS = ("ours", "ovs-own")
BASELINE = "ovs-own"
# OVS interface names and their OpenFlow port numbers
IFACES = ("vh0", "vh1")
OFPORTS = (1, 2)
# What OVS warns of here, beyond what harness/ovs.py expects with our ports:
BENCH_WARNINGS = re.compile(
    # the port type of the ovs-own variant (chosen as the one that leaves the
    # peer as it is with our ports: a vhost-user client; see docs/performance.md)
    r"dpdkvhostuser ports are considered deprecated"
    # under callgrind its threads' loops overrun
    r"|\|timeval(\(\w+\))?\|WARN\|")
# OVS's polling thread's cycles per packet: as it reports them, and times the
# share of a CPU the thread got (see Session.measure)
CYCLES = ("pmd_cycles_per_pkt", "pmd_cycles_per_pkt_running")
# The pmd-perf-show line with what the polling thread received and its cost:
# "Rx packets:   8088288  (2010 Kpps, 722 cycles/pkt)"
_PERF_RX_RE = re.compile(r"Rx packets:\s+(\d+)\s+\((\d+) Kpps, (\d+) cycles/pkt\)")
# The peer's ring size under callgrind (see Session)
CALLGRIND_QUEUE_SIZE = 1024
# The back ends' receive burst functions, called by OVS once per poll of a
# port: their calls per packet show how full the polls were (1/32: always)
RX_ENTRIES = ("eth_vhost_rx", "rte_vhost_dequeue_burst")
# The objects of ovs-vswitchd's profile, as the table groups them
OBJECT_GROUPS = (("OVS", re.compile(r"ovs-vswitchd")),
                 ("vhost", re.compile(r"librte_vhost|librte_net_vhu")),
                 ("DPDK, other", re.compile(r"librte_")),
                 ("libc", re.compile(r"libc\.so")))


class Session:
    """One variant's OVS and the peer on its two ports, for one ring layout."""

    def __init__(self, variant: str, so: Path, ring: str, workdir: Path,
                 under_callgrind: bool = False):
        self.variant = variant
        self.workdir = workdir
        self.selection = PmdSelection("ours", so) if variant == "ours" else PmdSelection("distro")
        self.ring = ring
        self.profile_base = workdir / "callgrind.ovs-vswitchd"
        # (WINDOWED schedules fairly: OVS's main thread must answer ovs-appctl)
        wrapper = (callgrind.WINDOWED + [f"--callgrind-out-file={self.profile_base}.%p"]
                   if under_callgrind else [])
        self.sw = Ovs(workdir, self.selection, wrapper)
        # Under callgrind OVS forwards 30 to 100 kpps, far fewer than the
        # peer sends, so its receive rings are full and every burst takes 32 frames, except
        # after the peer was descheduled (a neighbour on CPU 0) long enough
        # for OVS to empty them: then it polls half-empty rings and the
        # polls' cost per packet grows. Rings of 1024 (virtio-user's
        # largest) hold some 20 ms of OVS's work, not 5.
        self.queue_size = CALLGRIND_QUEUE_SIZE if under_callgrind else None
        self.peer = None
        self.dumps = 0

    def start(self):
        self.sw.start()
        self.sw.add_bridge()
        socks = []
        for index, (name, ofport) in enumerate(zip(IFACES, OFPORTS)):
            if self.variant == "ours":
                sock = self.workdir / f"{name}.sock"
                self.sw.add_dpdk_port(name, ofport, vhost_vdev(index, sock))
            else:
                sock = self.sw.add_vhost_user_port(name, ofport)
            socks.append(sock)
        self.sw.cross_connect(*OFPORTS)
        self.peer = TestPmd(f"peer-{self.variant}",
                            vdevs=[virtio_user_vdev(i, sock, mrg_rxbuf=1,
                                                    packed_vq=int(self.ring == "packed"),
                                                    queue_size=self.queue_size)
                                   for i, sock in enumerate(socks)],
                            app_args=TESTPMD_APP_ARGS, lcores=PEER_LCORES, log_dir=self.workdir)
        self.peer.start()
        for port, name in enumerate(IFACES):
            self.peer.wait_link_up(port)
            self.sw.wait_link_up(name, f"eth_vhost{port}" if self.variant == "ours" else None)
        problems = driver_identity_problems(self.sw.log, self.selection, self.sw.ports)
        if problems:
            raise OvsError(f"{self.variant}: ports not served as the variant says: {problems}")
        self.peer.cmd("set fwd flowgen")

    def measure(self, size: int, warmup: float, seconds: float) -> dict:
        # flowgen's frames are FLOWGEN_FCS shorter than txpkts: frames of `size` bytes
        self.peer.cmd(f"set txpkts {size + FLOWGEN_FCS}")
        ports = range(len(IFACES))
        self.peer.start_forwarding()
        try:
            time.sleep(warmup)
            self.sw.pmd_stats_clear()
            cpu0 = self._cpu_seconds()
            stats0, t0 = self.peer.stats_all(), time.monotonic()
            time.sleep(seconds)
            stats1, t1 = self.peer.stats_all(), time.monotonic()
            cpu1 = self._cpu_seconds()
            pmd_threads = self.sw.pmd_stats()
            perf = self.sw.pmd_perf_show()
        finally:
            self.peer.stop_forwarding()
        if len(pmd_threads) != 1:
            raise OvsError(f"{self.variant}: expected one polling thread, pmd-stats-show "
                           f"gave {sorted(pmd_threads)}")
        pmd, = pmd_threads.values()
        delivered = sum(stats1[p]["ipackets"] - stats0[p]["ipackets"] for p in ports)
        offered = sum(stats1[p]["opackets"] - stats0[p]["opackets"] for p in ports)
        polled = pmd["idle cycles"] + pmd["processing cycles"]
        perf_rx = _PERF_RX_RE.search(perf)
        cpu_pmd = (cpu1[0] - cpu0[0]) / (t1 - t0)
        return {"pps": delivered / (t1 - t0),
                # what the peer's rings took; what of it was not delivered OVS
                # dropped (a full receive ring of the peer: OVS retries a
                # vhost-user port a few times, a type=dpdk port while it takes any)
                "offered_pps": offered / (t1 - t0),
                "pmd_cycles_per_pkt": pmd["avg processing cycles per packet"],
                # OVS counts TSC cycles per iteration, so the time its thread
                # spent descheduled (a neighbour on CPU 1) inflates its figure;
                # preemptions falling on busy and idle iterations alike, the
                # share of the CPU the thread got takes it out
                "pmd_cycles_per_pkt_running": pmd["avg processing cycles per packet"] * cpu_pmd,
                "pmd_packets": pmd["packets received"],
                "pmd_idle": pmd["idle cycles"] / polled if polled else None,
                "perf_cycles_per_pkt": int(perf_rx.group(3)) if perf_rx else None,
                "perf_kpps": int(perf_rx.group(2)) if perf_rx else None,
                # the share of a CPU OVS's polling thread and the peer's
                # forwarding thread got during the window
                "cpu_pmd": cpu_pmd,
                "cpu_peer": (cpu1[1] - cpu0[1]) / (t1 - t0),
                "pmd_stats": pmd, "pmd_perf_show": perf}

    def profile(self, size: int, warmup: float, seconds: float) -> dict:
        """Under callgrind: OVS's instructions (every thread of it) per packet
        it forwarded, by object, over a window of ``seconds``. OVS is the
        bottleneck then (30 to 100 kpps), every burst full."""
        self.peer.cmd(f"set txpkts {size + FLOWGEN_FCS}")
        pid = self.sw.vswitchd_pid
        ports = range(len(IFACES))
        self.peer.start_forwarding()
        try:
            time.sleep(warmup)
            # The packets are what the peer received meanwhile: callgrind's
            # control (vgdb) acts within milliseconds, whereas OVS's main
            # thread, under callgrind, answers ovs-appctl (pmd-stats) a
            # second or more later, and counted windows 7 to 15% off.
            callgrind.control(pid, "-i", "on")
            stats0 = self.peer.stats_all()
            time.sleep(seconds)
            stats1 = self.peer.stats_all()
            callgrind.control(pid, "-d")
            callgrind.control(pid, "-i", "off")
        finally:
            self.peer.stop_forwarding()
        self.dumps += 1
        dump = Path(f"{self.profile_base}.{pid}.{self.dumps}")
        packets = sum(stats1[p]["ipackets"] - stats0[p]["ipackets"] for p in ports)
        if not packets:
            raise OvsError(f"{self.variant}: no packet through OVS under callgrind")
        by_object, functions, polls = profile_costs(callgrind.parse(dump))
        return {"packets": packets, "polls_per_pkt": polls / packets,
                "instr_per_pkt": sum(by_object.values()) / packets,
                "by_object": {k: v / packets for k, v in by_object.items()},
                "functions": [{**f, "instr_per_pkt": f["instr"] / packets}
                              for f in functions],
                "dump": dump}

    def _cpu_seconds(self):
        return (thread_cpu_seconds(self.sw.vswitchd_pid, "pmd-c"),
                thread_cpu_seconds(self.peer.proc.pid, "rte-worker"))

    def close(self) -> List[str]:
        """Both stopped (the peer first: a virtio-user port whose server went
        away may die of SIGPIPE); what did not go as asked, and the warnings
        OVS logged that the tests do not expect."""
        if self.peer is not None:
            self.peer.close()
        return self.sw.stop() + self.sw.died + [w for w in self.sw.unexpected_warnings()
                                                if not BENCH_WARNINGS.search(w)]


def profile_costs(prof: callgrind.Profile, top: int = 25):
    """Instructions per object group (OBJECT_GROUPS, the rest "other"), the
    ``top`` functions (their own instructions) and the polls (calls of
    RX_ENTRIES) of a profile."""
    groups: Dict[str, int] = {name: 0 for name, _ in OBJECT_GROUPS}
    groups["other"] = 0
    functions: Dict[tuple, int] = {}
    for func, cost in prof.self_cost.items():
        obj = os.path.basename(func[0] or "?")
        group = next((name for name, rx in OBJECT_GROUPS if rx.search(obj)), "other")
        groups[group] += cost
        key = (obj, callgrind.base_name(func))
        functions[key] = functions.get(key, 0) + cost
    ranked = sorted(functions.items(), key=lambda kv: -kv[1])[:top]
    polls = sum(calls for callees in prof.edges.values() for callee, (calls, _) in callees.items()
                if callgrind.base_name(callee) in RX_ENTRIES)
    return groups, [{"object": obj, "function": name, "instr": cost}
                    for (obj, name), cost in ranked], polls


def session_rows(session: "Session", key: dict, sizes: List[int], label: str, log,
                 measure) -> List[dict]:
    """Starts ``session``, one row per size with what ``measure(size)``
    returns, then stops it; a failure leaves an error row for each size not
    measured, and the run goes on with the next session."""
    rows, done = [], []
    try:
        session.start()
        for size in sizes:
            rows.append({**key, "size": size, **measure(size)})
            done.append(size)
    except (TestPmdError, OvsError, OSError, subprocess.SubprocessError, ValueError) as exc:
        log(f"  {label}: FAILED: {exc}")
        rows += [{**key, "size": s, "error": str(exc)[:2000]} for s in sizes if s not in done]
    finally:
        problems = session.close()
        if problems:
            log(f"  {label}: at stop: {problems}")
    return rows


def run(args, so: Path, workroot: Path, log) -> List[dict]:
    rows = []
    for rep, ring in itertools.product(range(args.reps), args.rings):
        # rotated per repetition: ours first on even ones, OVS's own first on odd ones
        order = VARIANTS[rep % 2:] + VARIANTS[:rep % 2]
        for variant in order:
            workdir = Path(tempfile.mkdtemp(prefix=f"{variant}-{ring}-", dir=workroot))
            session = Session(variant, so, ring, workdir)

            def measure(size, session=session, variant=variant, ring=ring, rep=rep):
                m = session.measure(size, args.warmup, args.seconds)
                log(f"  {ring:6s} {size:5d}B rep {rep} {variant:7s} "
                    f"{m['pps'] / 1e6:6.3f} Mpps delivered (offered {m['offered_pps'] / 1e6:.3f}), "
                    f"OVS PMD {m['pmd_cycles_per_pkt']:6.0f} cycles/pkt, idle {m['pmd_idle']:.0%}, "
                    f"CPU PMD {m['cpu_pmd']:.0%} peer {m['cpu_peer']:.0%}")
                return {**m, "loadavg": os.getloadavg()[0]}

            rows += session_rows(session, {"variant": variant, "ring": ring, "rep": rep},
                                 args.sizes, f"{ring} rep {rep} {variant}", log, measure)
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    return rows


def run_callgrind(args, so: Path, workroot: Path, log) -> List[dict]:
    """One session per variant and ring under callgrind, every size profiled
    (instructions are deterministic enough: no repetitions)."""
    rows = []
    for ring, variant in itertools.product(args.rings, VARIANTS):
        workdir = Path(tempfile.mkdtemp(prefix=f"cg-{variant}-{ring}-", dir=workroot))
        session = Session(variant, so, ring, workdir, under_callgrind=True)

        def profile(size, session=session, variant=variant, ring=ring):
            p = session.profile(size, args.warmup, args.cg_seconds)
            kept = args.out / f"callgrind.{variant}.{ring}.{size}B.out"
            shutil.copy(p.pop("dump"), kept)
            log(f"  callgrind {ring:6s} {size:5d}B {variant:7s} "
                f"{p['instr_per_pkt']:7.0f} instr/pkt ({p['packets']:.0f} pkts, "
                f"{p['polls_per_pkt'] * 32:.2f} polls per 32, "
                + ", ".join(f"{k} {v:.0f}" for k, v in p["by_object"].items()) + ")")
            return {**p, "profile": kept.name}

        rows += session_rows(session, {"variant": variant, "ring": ring}, args.sizes,
                             f"callgrind {ring} {variant}", log, profile)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


# ------------------------------------------------------------------ report


def summarise(rows: List[dict]) -> List[dict]:
    """Per ring and size: each variant's pps and OVS cycles per packet over
    the repetitions, and the ratio ours/own of each repetition."""
    ok = [r for r in rows if "error" not in r]
    out = []
    for ring, size in sorted({(r["ring"], r["size"]) for r in rows},
                             key=lambda k: (report.RING_ORDER.get(k[0], 9), k[1])):
        by_rep: Dict[int, Dict[str, dict]] = {}
        for r in ok:
            if (r["ring"], r["size"]) == (ring, size):
                by_rep.setdefault(r["rep"], {})[r["variant"]] = r
        pairs = [v for v in by_rep.values() if len(v) == len(VARIANTS)]
        per_variant = {v: [r[v] for r in pairs] for v in VARIANTS}
        out.append({
            "ring": ring, "size": size, "reps": len(pairs),
            "failed": sum(1 for r in rows if (r["ring"], r["size"]) == (ring, size) and "error" in r),
            "pps": {v: report.spread([r["pps"] for r in per_variant[v]]) for v in VARIANTS},
            "pps_ratio": report.spread([p["ours"]["pps"] / p[BASELINE]["pps"] for p in pairs
                                        if p[BASELINE]["pps"]]),
            **{key: {v: report.spread([r[key] for r in per_variant[v]]) for v in VARIANTS}
               for key in CYCLES},
            **{f"{key}_ratio": report.spread([p["ours"][key] / p[BASELINE][key] for p in pairs
                                              if p[BASELINE][key]])
               for key in CYCLES},
            "idle": {v: _median([r["pmd_idle"] for r in per_variant[v]]) for v in VARIANTS},
            "cpu": {v: (_median([r["cpu_pmd"] for r in per_variant[v]]),
                        _median([r["cpu_peer"] for r in per_variant[v]])) for v in VARIANTS},
        })
    return out


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def table_md(summary: List[dict]) -> str:
    out = ["| case | Mpps ours | Mpps OVS's own | pps ratio | OVS cycles/pkt ours; own | ratio | "
           "x CPU share: ours; own | ratio | OVS PMD idle ours; own | "
           "CPU PMD/peer ours; own |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        failed = f" ({s['failed']} failed)" if s["failed"] else ""
        cells = [f"{s['ring']} {s['size']}B{failed}", report.fmt_spread(s["pps"]["ours"], 1e6),
                 report.fmt_spread(s["pps"][BASELINE], 1e6), report.fmt_spread(s["pps_ratio"])]
        for key in CYCLES:
            cells += ["; ".join(_fmt_median(s[key][v]) for v in VARIANTS),
                      report.fmt_spread(s[f"{key}_ratio"])]
        cells += ["; ".join(_pct(s["idle"][v]) for v in VARIANTS),
                  "; ".join(f"{_pct(s['cpu'][v][0])}/{_pct(s['cpu'][v][1])}" for v in VARIANTS)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _fmt_median(s) -> str:
    return "-" if not s else f"{s['median']:.0f}"


def callgrind_table_md(rows: List[dict]) -> str:
    """Per ring and size: OVS's instructions per packet in both variants,
    their ratio, and each variant's by object group."""
    by = {(r["ring"], r["size"], r["variant"]): r for r in rows if "error" not in r}
    groups = [name for name, _ in OBJECT_GROUPS] + ["other"]
    out = ["| case | instr/pkt ours | instr/pkt own | ratio | "
           + " | ".join(f"{g}: ours; own" for g in groups) + " |",
           "|---" * (4 + len(groups)) + "|"]
    for ring, size in sorted({(r["ring"], r["size"]) for r in rows},
                             key=lambda k: (report.RING_ORDER.get(k[0], 9), k[1])):
        ours, own = by.get((ring, size, "ours")), by.get((ring, size, BASELINE))
        cells = [f"{ring} {size}B"]
        cells += [f"{r['instr_per_pkt']:.0f}" if r else "failed" for r in (ours, own)]
        cells.append(f"{ours['instr_per_pkt'] / own['instr_per_pkt']:.2f}" if ours and own else "-")
        cells += ["; ".join(f"{r['by_object'][g]:.0f}" if r else "-" for r in (ours, own))
                  for g in groups]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def breakdown_md(rows: List[dict], top: int = 12) -> str:
    """The functions with the most instructions per packet, per profile."""
    out = []
    for r in rows:
        if "error" in r:
            continue
        out += [f"#### {r['variant']}, {r['ring']}, {r['size']} bytes: "
                f"{r['instr_per_pkt']:.0f} instructions per packet ({r['profile']})", "",
                "| instr/pkt | object | function |", "|---|---|---|"]
        out += [f"| {f['instr_per_pkt']:.1f} | {f['object']} | `{f['function']}` |"
                for f in r["functions"][:top]]
        out.append("")
    return "\n".join(out)


# -------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    csv = lambda conv: (lambda s: [conv(x) for x in s.split(",")])  # noqa: E731
    ap.add_argument("--quick", action="store_true",
                    help="64 and 1518 bytes, split and packed, 3 repetitions (about 6 min)")
    ap.add_argument("--sizes", type=csv(int), default=[64, 512, 1518],
                    help="frame sizes without CRC, 60..1518 (OVS's MTU is 1500)")
    ap.add_argument("--rings", type=csv(str), default=["split", "packed"])
    ap.add_argument("--reps", type=int, default=5, help="repetitions per variant (default 5)")
    ap.add_argument("--warmup", type=float, default=1.5, help="seconds before a window")
    ap.add_argument("--seconds", type=float, default=4.0, help="window (seconds)")
    ap.add_argument("--cg-seconds", type=float, default=5.0,
                    help="callgrind window (seconds; OVS forwards some 30 kpps under callgrind)")
    ap.add_argument("--no-pps", action="store_true")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--pmd", type=Path, default=DEFAULT_PMD_SO, help="our plugin (.so)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results directory (default bench/results/<date-time>-ovs)")
    ap.add_argument("--keep", action="store_true", help="keep OVS's and testpmd's logs")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.rings, args.reps = [64, 1518], ["split", "packed"], 3
    if set(args.rings) - {"split", "packed"}:
        ap.error(f"--rings: split, packed (not {args.rings})")
    if any(not 60 <= s <= 1518 for s in args.sizes):
        ap.error("--sizes: 60..1518 bytes")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = missing_tools()
    if missing:
        sys.exit(f"Open vSwitch with DPDK is not installed ({', '.join(missing)} missing): "
                 f"scripts/setup.sh installs openvswitch-switch-dpdk")
    if not args.pmd.is_file():
        sys.exit(f"{args.pmd} missing: build first (ninja -C build)")
    args.out = args.out or BENCH_DIR / "results" / (time.strftime("%Y%m%d-%H%M%S") + "-ovs")
    args.out.mkdir(parents=True, exist_ok=True)
    so = snapshot_plugin(args.pmd)
    log = run_logger(args.out / "run.log")

    pps_sessions = 0 if args.no_pps else args.reps * len(args.rings) * len(VARIANTS)
    cg_sessions = 0 if args.no_callgrind else len(args.rings) * len(VARIANTS)
    est = (pps_sessions * (10 + len(args.sizes) * (args.warmup + args.seconds + 1))
           + cg_sessions * (20 + len(args.sizes) * (args.warmup + args.cg_seconds + 5)))
    log(f"{pps_sessions} sessions measuring pps, {cg_sessions} under callgrind, "
        f"{len(args.sizes)} sizes each, about {est / 60:.0f} min; results in {args.out}")
    results = {"meta": {**run_metadata(args.pmd, so),
                        "valgrind": command_output("valgrind", "--version"),
                        "settings": {k: getattr(args, k) for k in (
                            "reps", "warmup", "seconds", "cg_seconds", "sizes", "rings")}},
               "windows": [], "callgrind": []}
    # short socket paths (AF_UNIX: 107 bytes)
    workroot = Path(tempfile.mkdtemp(prefix="vhuovs-", dir="/tmp"))
    run_phases(args, results, "windows", lambda: run(args, so, workroot, log),
               lambda: run_callgrind(args, so, workroot, log), workroot, so)
    tables = []
    if results["windows"]:
        tables.append(table_md(summarise(results["windows"])))
    if results["callgrind"]:
        tables.append(callgrind_table_md(results["callgrind"]))
        (args.out / "breakdown.md").write_text(breakdown_md(results["callgrind"]))
    (args.out / "table.md").write_text("\n".join(tables))
    print("\n".join(tables))
    log(f"done: {args.out}/results.json, table.md, breakdown.md; load average "
        f"{results['meta']['loadavg_start'][0]:.1f} at the start, "
        f"{results['meta']['loadavg_end'][0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
