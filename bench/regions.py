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
buffers use, all translated before the loop).

The count is exact and repeatable (the same for any number of iterations),
so one run per case does. ``LD_BIND_NOW=1``: otherwise the first call of
each DPDK function from the burst would count the dynamic linker's lookup.
About a minute on two CPUs; needs ``valgrind`` and ``ninja -C build``.

Usage: bench/regions.py [--build DIR] [--iterations K] [--jobs J]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RINGS = ("split", "packed")
DIRS = ("dequeue", "enqueue")
REGIONS = (1, 8, 64, 509)
BURST = 32  # packets per iteration, as in bench_regions.c


def count(exe: Path, ring: str, direction: str, regions: int, iommu: bool, iterations: int,
          outdir: Path) -> float:
    """Instructions per packet of one case."""
    out = outdir / f"callgrind.{ring}.{direction}.{regions}.{int(iommu)}"
    cmd = ["valgrind", "--tool=callgrind", f"--toggle-collect=vhu_{direction}_burst",
           f"--callgrind-out-file={out}", str(exe), ring, direction, str(regions),
           str(iterations)] + (["iommu"] if iommu else [])
    res = subprocess.run(cmd, capture_output=True, text=True,
                         env=dict(os.environ, LD_BIND_NOW="1"))
    packets = iterations * BURST
    if res.returncode != 0 or f": {packets} packets," not in res.stdout:
        sys.exit(f"{' '.join(cmd)} failed (exit {res.returncode}):\n{res.stdout}"
                 f"{res.stderr[-2000:]}")
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("summary:"):
                return int(line.split()[1]) / packets
    sys.exit(f"{out}: no summary line")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--build", type=Path, default=REPO / "build", help="meson build directory")
    ap.add_argument("--iterations", type=int, default=1000, help="bursts per case (1000)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="callgrind runs at a time (one per CPU)")
    args = ap.parse_args()

    exe = args.build / "bench/regions/bench_regions"
    if not exe.is_file():
        sys.exit(f"{exe} missing: ninja -C {args.build}")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind missing")
    cases = [(ring, d, n, False) for ring in RINGS for d in DIRS for n in REGIONS] + \
        [(ring, d, 1, True) for ring in RINGS for d in DIRS]
    with tempfile.TemporaryDirectory(prefix="vhu-regions-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {c: pool.submit(count, exe, *c, args.iterations, Path(tmp)) for c in cases}
        ipp = {c: f.result() for c, f in futures.items()}

    print(f"Instructions per packet, 64-byte frames, bursts of {BURST}, 256-entry rings, "
          f"{args.iterations} bursts (ratio to 1 region):\n")
    print("| case | " + " | ".join(f"{n} region{'s' if n > 1 else ''}" for n in REGIONS)
          + f" | {REGIONS[-1]} - 1 |")
    print("|---" * (len(REGIONS) + 2) + "|")
    for ring in RINGS:
        for d in DIRS:
            base = ipp[(ring, d, 1, False)]
            cells = [f"{base:.1f}"] + [f"{ipp[(ring, d, n, False)]:.1f} "
                                      f"({ipp[(ring, d, n, False)] / base:.2f})"
                                      for n in REGIONS[1:]]
            print(f"| {d} {ring} | " + " | ".join(cells)
                  + f" | +{ipp[(ring, d, REGIONS[-1], False)] - base:.1f} |")
    print("\nOne region, without and behind a vIOMMU:\n")
    print("| case | guest physical addresses | IOVAs through the IOTLB | difference |")
    print("|---|---|---|---|")
    for ring in RINGS:
        for d in DIRS:
            off, on = ipp[(ring, d, 1, False)], ipp[(ring, d, 1, True)]
            print(f"| {d} {ring} | {off:.1f} | {on:.1f} | +{on - off:.1f} |")


if __name__ == "__main__":
    main()
