"""The regression guard of the data path's cost: instructions per packet of
the bursts, counted by callgrind (exact, not time), must not grow more than
3% over the figures committed in bench/instructions.json
(``bench/regions.py --check``: split and packed rings, dequeue and enqueue,
64-byte frames, one memory region, without and behind a vIOMMU).

After a change that moves them on purpose: ``bench/regions.py --write`` and
say why in the commit. The figures are the normal build's (GCC 12 and DPDK
22.11 of Debian 12): not checked against the ASan build.

Run: /usr/bin/python3 -m pytest -v tests/test_instructions.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from harness import sanitizers
from harness.pmd import REPO_ROOT


def test_instructions_per_packet_within_guard():
    if sanitizers.asan_requested() or sanitizers.tsan_requested():
        pytest.skip("the committed counts are the normal build's")
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind missing (scripts/setup.sh installs it)")
    res = subprocess.run([sys.executable, str(REPO_ROOT / "bench/regions.py"), "--check",
                          "--iterations", "200", "--build", str(REPO_ROOT / "build")],
                         capture_output=True, text=True, timeout=600)
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
