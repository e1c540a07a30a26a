#!/usr/bin/python3
"""Instructions and cache misses per packet of the data path with 1 to 128 queue pairs.

Runs ``bench_queues`` (bench/queues/bench_queues.c: the rings of N queue
pairs of one session over one guest memory, polled round-robin by one
thread, each ring a burst of 32 one-descriptor chains of 64-byte frames per
round) under callgrind for {split, packed} x {dequeue, enqueue} x {1, 8, 32,
128} queue pairs, and prints Markdown tables: instructions per packet of
``vhu_dequeue_burst`` / ``vhu_enqueue_burst`` and all they call (callgrind's
``--toggle-collect``: nothing else is counted) with the ratio to one queue
pair, then the data cache misses per packet from callgrind's cache
simulation (first level, and last level: see CACHES).

Every case runs the same number of bursts, whatever its queue pairs, twice:
BURSTS and 2 x BURSTS bursts. The instruction count is exact (the same per
packet in both runs, which is checked); the misses per packet are the
difference between the two runs over the difference in packets, so that
what the first round of each ring misses (the cache starts empty) is left
out: what is left is the steady state. About 3 minutes on two CPUs; needs
``valgrind`` and ``ninja -C build``.

With ``--check``, instructions only (one run per case, no cache
simulation, about 2 minutes): the exit status is 1 when a case costs more
than 5% more per packet with more queue pairs than with one.

Usage: bench/queues.py [--build DIR] [--bursts K] [--jobs J] [--check]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import callgrind

REPO = Path(__file__).resolve().parent.parent
RINGS = ("split", "packed")
DIRS = ("dequeue", "enqueue")
QUEUE_PAIRS = (1, 8, 32, 128)
BURST = 32  # packets per ring and round, as in bench_queues.c
FLAT = 0.05  # --check fails above this growth over one queue pair
# The simulated caches, fixed so that the figures do not depend on the
# machine's: a first level as this machine's cores have (48 KiB, 12-way),
# and as the last level the 2 MiB, 16-way L2 each core has to itself
# (callgrind simulates two levels; the 105 MiB L3 shared by the cores
# would hold every case whole).
CACHES = ("--I1=32768,8,64", "--D1=49152,12,64", "--LL=2097152,16,64")


def run(exe: Path, case, bursts: int, cache_sim: bool, outdir: Path):
    """Events of one case over ``bursts`` bursts in all, and its packets."""
    ring, direction, pairs = case
    rounds = bursts // pairs
    packets = rounds * pairs * BURST
    cmd = [str(exe), ring, direction, str(pairs), str(rounds)]
    try:
        events, stdout = callgrind.count_below(
            cmd, f"vhu_{direction}_burst",
            outdir / f"callgrind.{ring}.{direction}.{pairs}.{rounds}",
            ("--cache-sim=yes",) + CACHES if cache_sim else ())
    except callgrind.RunFailed as e:
        sys.exit(str(e))
    if f": {packets} packets," not in stdout:
        sys.exit(f"{' '.join(cmd)}: not {packets} packets:\n{stdout}")
    return events, packets


def measure(exe: Path, case, bursts: int, cache_sim: bool, outdir: Path) -> dict:
    """Per packet: instructions, and with the cache simulation the steady
    state's first- and last-level data cache misses."""
    events, packets = run(exe, case, bursts, cache_sim, outdir)
    got = {"Ir": events["Ir"] / packets}
    if not cache_sim:
        return got
    events2, packets2 = run(exe, case, 2 * bursts, cache_sim, outdir)
    if events2["Ir"] * packets != events["Ir"] * packets2:
        print(f"{case}: {events['Ir'] / packets} instructions per packet over {packets} "
              f"packets, {events2['Ir'] / packets2} over {packets2}", file=sys.stderr)
    steady = {e: (events2[e] - events[e]) / (packets2 - packets) for e in events}
    got["D1"] = steady["D1mr"] + steady["D1mw"]
    got["LL"] = steady["DLmr"] + steady["DLmw"]
    return got


def pairs_name(n: int) -> str:
    return f"{n} queue pair{'s' if n > 1 else ''}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--build", type=Path, default=REPO / "build", help="meson build directory")
    ap.add_argument("--bursts", type=int, default=1024,
                    help="bursts per case, spread over its queue pairs (1024)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="callgrind runs at a time (one per CPU)")
    ap.add_argument("--check", action="store_true",
                    help=f"instructions only: fail above {FLAT * 100:.0f}%% growth over one queue pair")
    args = ap.parse_args()

    exe = callgrind.bench_program(args.build, "queues")
    if args.bursts % QUEUE_PAIRS[-1] != 0:
        sys.exit(f"--bursts: a multiple of {QUEUE_PAIRS[-1]}, so that every ring gets as many")
    cache_sim = not args.check
    cases = [(ring, d, n) for ring in RINGS for d in DIRS for n in QUEUE_PAIRS]
    with tempfile.TemporaryDirectory(prefix="vhu-queues-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {c: pool.submit(measure, exe, c, args.bursts, cache_sim, Path(tmp))
                   for c in cases}
        got = {c: f.result() for c, f in futures.items()}

    print(f"Instructions per packet, 64-byte frames, bursts of {BURST}, 256-entry rings, "
          f"{args.bursts} bursts per case (ratio to 1 queue pair):\n")
    print("| case | " + " | ".join(pairs_name(n) for n in QUEUE_PAIRS) + " |")
    print("|---" * (len(QUEUE_PAIRS) + 1) + "|")
    worst = 0.0
    for ring in RINGS:
        for d in DIRS:
            base = got[(ring, d, 1)]["Ir"]
            ratios = [got[(ring, d, n)]["Ir"] / base for n in QUEUE_PAIRS[1:]]
            worst = max([worst] + ratios)
            print(f"| {d} {ring} | {base:.1f} | "
                  + " | ".join(f"{got[(ring, d, n)]['Ir']:.1f} ({r:.3f})"
                               for n, r in zip(QUEUE_PAIRS[1:], ratios)) + " |")
    if cache_sim:
        for level, name in (("D1", "first-level (D1: 48 KiB, 12-way)"),
                            ("LL", "last-level (LL: 2 MiB, 16-way)")):
            print(f"\nData cache misses per packet, {name}, reads and writes, steady state:\n")
            print("| case | " + " | ".join(pairs_name(n) for n in QUEUE_PAIRS) + " |")
            print("|---" * (len(QUEUE_PAIRS) + 1) + "|")
            for ring in RINGS:
                for d in DIRS:
                    print(f"| {d} {ring} | "
                          + " | ".join(f"{got[(ring, d, n)][level]:.2f}" for n in QUEUE_PAIRS)
                          + " |")
    if args.check and worst > 1 + FLAT:
        sys.exit(f"a case costs {worst - 1:.1%} more per packet with more queue pairs than "
                 f"with one (at most {FLAT:.0%}): find why with callgrind_annotate")


if __name__ == "__main__":
    main()
