#!/usr/bin/python3
"""Instructions per packet of the data path with 1 to 509 guest memory regions.

Runs ``bench_regions`` (bench/regions/bench_regions.c: the unit tests' ring
over guest memory cut into N regions, bursts of 32 one-descriptor chains of
64-byte frames, buffers spread so that consecutive packets land in different
regions) under callgrind for {split, packed} x {dequeue, enqueue} x {1, 8,
64, 509} regions, and prints a Markdown table: instructions per packet of
``vhu_dequeue_burst`` / ``vhu_enqueue_burst`` and all they call (callgrind's
``--toggle-collect``: nothing else is counted), and the ratio to one region.
Then the same with one region behind a vIOMMU (``bench_regions ... iommu``:
every address through an IOTLB of 4 KiB entries, one per page the rings and
buffers use, all translated before the loop). Last, RX interrupts: dequeue
with the ring's interrupt armed and disarmed after every burst
(``bench_regions ... intr``), the bursts counted again and the arming and
disarming on their own (``vhu_vring_intr_enable``), per pair.

The count is exact and repeatable (the same for any number of iterations),
so one run per case does. About a minute on two CPUs; needs ``valgrind`` and ``ninja -C build``.

With ``--check``, only the one-region cases run, and each is compared with
the figure committed in bench/instructions.json: the exit status is 1 when
one grew by more than 3% (a regression guard; instructions, not time: the
counts are exact for one compiler and DPDK, Debian 12's). After a change
that moves them on purpose, ``--write`` records the new figures.

Usage: bench/regions.py [--build DIR] [--iterations K] [--jobs J] [--check | --write]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import callgrind

REPO = Path(__file__).resolve().parent.parent
RINGS = ("split", "packed")
DIRS = ("dequeue", "enqueue")
REGIONS = (1, 8, 64, 509)
BURST = 32  # packets per iteration, as in bench_regions.c
FIGURES = REPO / "bench" / "instructions.json"
GUARD_GROWTH = 0.03  # --check fails above this growth


def count(exe: Path, ring: str, direction: str, regions: int, variant: str, iterations: int,
          outdir: Path, function: str = "") -> float:
    """Instructions per packet of one case (``variant``: "", "iommu" or
    "intr"); of ``function`` instead of the burst function when given."""
    cmd = [str(exe), ring, direction, str(regions), str(iterations)] + ([variant] if variant else [])
    packets = iterations * BURST
    function = function or f"vhu_{direction}_burst"
    try:
        events, stdout = callgrind.count_below(
            cmd, function,
            outdir / f"callgrind.{ring}.{direction}.{regions}.{variant}.{function}")
    except callgrind.RunFailed as e:
        sys.exit(str(e))
    if f": {packets} packets," not in stdout:
        sys.exit(f"{' '.join(cmd)}: not {packets} packets:\n{stdout}")
    return events["Ir"] / packets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--build", type=Path, default=REPO / "build", help="meson build directory")
    ap.add_argument("--iterations", type=int, default=1000, help="bursts per case (1000)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="callgrind runs at a time (one per CPU)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help=f"one region only, against {FIGURES.name}: fail above "
                           f"{GUARD_GROWTH * 100:.0f}%% growth")  # argparse %-formats help
    mode.add_argument("--write", action="store_true",
                      help=f"one region only, recorded in {FIGURES.name}")
    args = ap.parse_args()

    exe = callgrind.bench_program(args.build, "regions")
    guard = args.check or args.write
    regions = (1,) if guard else REGIONS
    cases = [(ring, d, n, "") for ring in RINGS for d in DIRS for n in regions] + \
        [(ring, d, 1, "iommu") for ring in RINGS for d in DIRS]
    arming = [] if guard else [(ring, "dequeue", 1, "intr") for ring in RINGS]
    with tempfile.TemporaryDirectory(prefix="vhu-regions-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {c: pool.submit(count, exe, *c, args.iterations, Path(tmp))
                   for c in cases + arming}
        arm_futures = {c: pool.submit(count, exe, *c, args.iterations, Path(tmp),
                                      "vhu_vring_intr_enable") for c in arming}
        ipp = {c: f.result() for c, f in futures.items()}
        arm_ipp = {c: f.result() for c, f in arm_futures.items()}
    if guard:
        sys.exit(check_or_write(ipp, args.write))

    print(f"Instructions per packet, 64-byte frames, bursts of {BURST}, 256-entry rings, "
          f"{args.iterations} bursts (ratio to 1 region):\n")
    print("| case | " + " | ".join(f"{n} region{'s' if n > 1 else ''}" for n in REGIONS)
          + f" | {REGIONS[-1]} - 1 |")
    print("|---" * (len(REGIONS) + 2) + "|")
    for ring in RINGS:
        for d in DIRS:
            base = ipp[(ring, d, 1, "")]
            cells = [f"{base:.1f}"] + [f"{ipp[(ring, d, n, '')]:.1f} "
                                      f"({ipp[(ring, d, n, '')] / base:.2f})"
                                      for n in REGIONS[1:]]
            print(f"| {d} {ring} | " + " | ".join(cells)
                  + f" | +{ipp[(ring, d, REGIONS[-1], '')] - base:.1f} |")
    print("\nOne region, without and behind a vIOMMU:\n")
    print("| case | guest physical addresses | IOVAs through the IOTLB | difference |")
    print("|---|---|---|---|")
    for ring in RINGS:
        for d in DIRS:
            off, on = ipp[(ring, d, 1, "")], ipp[(ring, d, 1, "iommu")]
            print(f"| {d} {ring} | {off:.1f} | {on:.1f} | +{on - off:.1f} |")
    print("\nOne region, dequeue, the RX interrupt armed and disarmed after every burst:\n")
    print("| case | bursts, never armed | bursts, armed between | arming and disarming, "
          "per pair (per packet) |")
    print("|---|---|---|---|")
    for c in arming:
        ring = c[0]
        pair = arm_ipp[c] * BURST
        print(f"| dequeue {ring} | {ipp[(ring, 'dequeue', 1, '')]:.1f} | {ipp[c]:.1f} | "
              f"{pair:.0f} ({arm_ipp[c]:.1f}) |")


def case_name(case) -> str:
    ring, d, _, variant = case
    return f"{d} {ring}" + (f" {variant}" if variant else "")


def check_or_write(ipp, write: bool) -> int:
    """Compares the one-region counts with the committed ones (or records them)."""
    got = {case_name(c): round(v, 1) for c, v in ipp.items()}
    if write:
        FIGURES.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"recorded in {FIGURES}: {got}")
        return 0
    want = json.loads(FIGURES.read_text())
    failed = 0
    print("| case | committed | now | growth |\n|---|---|---|---|")
    for name in sorted(want):
        now = got.get(name)
        growth = (now - want[name]) / want[name] if now is not None else float("inf")
        bad = growth > GUARD_GROWTH
        failed += bad
        print(f"| {name} | {want[name]} | {now} | {growth:+.1%}{' TOO MUCH' if bad else ''} |")
    if failed:
        print(f"{failed} case(s) grew more than {GUARD_GROWTH:.0%}: find why (callgrind_annotate), "
              f"or record the new figures with --write and say why in the commit")
    return 1 if failed else 0


if __name__ == "__main__":
    main()
