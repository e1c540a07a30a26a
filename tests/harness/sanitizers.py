"""Run our side's dpdk-testpmd under ASan/UBSan (``VHU_ASAN=1``) and judge its log.

dpdk-testpmd and the distribution's DPDK are not instrumented, but our plugin
may be built with ``-Db_sanitize=address,undefined``.  An instrumented shared
object needs the ASan runtime to be the first DSO of the process, so the
harness runs testpmd with ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``.
libubsan is a DT_NEEDED of such a plugin and comes in with the dlopen.

What fails a test (see :func:`sanitizer_problems`):
* any ``ERROR: AddressSanitizer`` report;
* any UBSan ``runtime error:`` line;
* a LeakSanitizer leak whose allocation stack mentions our code (the plugin's
  module name, any .so of the build tree, or a source path in the repo).
  Leaks that belong only to testpmd/EAL are listed but do not fail.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

from .pmd import REPO_ROOT

SUPPRESSIONS = Path(__file__).resolve().parent.parent / "sanitizers" / "lsan.supp"
UBSAN_SUPPRESSIONS = Path(__file__).resolve().parent.parent / "sanitizers" / "ubsan.supp"

# Module basename + offset after every frame, so leak stacks can be attributed
# to a library even when the frame is symbolized with a source path.
STACK_FORMAT = '"    #%n %p %F %L [%M]"'

# ASan (and LSan, its leak checker) exits with this code when it reports.
ASAN_EXITCODE = 66


def asan_requested(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("VHU_ASAN", "") not in ("", "0", "no", "false")


@lru_cache(maxsize=None)
def asan_runtime() -> str:
    """Path of the ASan runtime matching the system gcc."""
    override = os.environ.get("VHU_ASAN_LIB")
    if override:
        return override
    try:
        out = subprocess.run(["gcc", "-print-file-name=libasan.so"], check=True,
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"VHU_ASAN=1 but cannot locate libasan.so via gcc: {exc}") from exc
    if not out or not os.path.exists(out) or "/" not in out:
        raise RuntimeError(f"VHU_ASAN=1 but gcc -print-file-name=libasan.so gave {out!r}")
    return os.path.realpath(out)


def sanitizer_env(detect_leaks: bool = True) -> Dict[str, str]:
    """Environment for a testpmd whose plugin may be ASan/UBSan instrumented."""
    preload = asan_runtime()
    if os.environ.get("LD_PRELOAD"):
        preload += ":" + os.environ["LD_PRELOAD"]
    asan = [
        "halt_on_error=1",
        "abort_on_error=0",
        f"exitcode={ASAN_EXITCODE}",
        f"detect_leaks={1 if detect_leaks else 0}",
        "fast_unwind_on_malloc=0",     # DPDK is built without frame pointers
        "malloc_context_size=40",
        "detect_odr_violation=0",      # plugin and distro libs may share symbols
        "handle_segv=1",
        "color=never",
        "print_suppressions=0",
        f"stack_trace_format={STACK_FORMAT}",
    ]
    ubsan = [
        "halt_on_error=1",
        "print_stacktrace=1",
        "color=never",
        f"stack_trace_format={STACK_FORMAT}",
    ]
    if UBSAN_SUPPRESSIONS.exists():
        ubsan.append(f"suppressions={UBSAN_SUPPRESSIONS}")
    lsan = ["print_suppressions=0", f"exitcode={ASAN_EXITCODE}"]
    if SUPPRESSIONS.exists():
        lsan.append(f"suppressions={SUPPRESSIONS}")
    return {
        "LD_PRELOAD": preload,
        "ASAN_OPTIONS": ":".join(asan),
        "UBSAN_OPTIONS": ":".join(ubsan),
        "LSAN_OPTIONS": ":".join(lsan),
    }


@lru_cache(maxsize=None)
def _build_tree_modules() -> tuple:
    build = REPO_ROOT / "build"
    names = set()
    if build.is_dir():
        for so in build.rglob("*.so*"):
            if so.is_file() and not so.parent.name.endswith(".p"):
                names.add(so.name.split(".so")[0] + ".so")
    return tuple(sorted(names))


def our_markers(lib_name: Optional[str]) -> List[str]:
    """Substrings of a stack frame that identify our code."""
    markers = [str(REPO_ROOT / "lib"), str(REPO_ROOT / "drivers"), "librte_net_vhu"]
    if lib_name:
        markers.append(lib_name)
    markers.extend(_build_tree_modules())
    return sorted(set(markers))


_LEAK_HDR = re.compile(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\)", re.M)


def leak_blocks(log: str) -> List[str]:
    """Each LeakSanitizer ``Direct/Indirect leak of ...`` block with its stack."""
    blocks = []
    for m in _LEAK_HDR.finditer(log):
        end = log.find("\n\n", m.end())
        blocks.append(log[m.start(): end if end >= 0 else len(log)])
    return blocks


def sanitizer_problems(log: str, lib_name: Optional[str] = None) -> List[str]:
    """Findings that must fail the test (empty list = clean)."""
    problems = []
    for m in re.finditer(r"^.*ERROR: AddressSanitizer.*$", log, re.M):
        start = m.start()
        problems.append("AddressSanitizer report:\n" + log[start:start + 6000])
        break
    ub = [l for l in log.splitlines() if "runtime error:" in l]
    if ub:
        problems.append("UBSan reports:\n  " + "\n  ".join(ub[:20]))
    markers = our_markers(lib_name)
    ours = [b for b in leak_blocks(log) if any(mk in b for mk in markers)]
    if ours:
        problems.append(f"{len(ours)} LeakSanitizer leak(s) in our code "
                        f"(markers {markers}):\n" + "\n\n".join(ours[:10]))
    if re.search(r"LeakSanitizer has encountered a fatal error|Sanitizer CHECK failed", log):
        problems.append("sanitizer runtime failure (DEADLYSIGNAL / leak checker failure)")
    return problems


def foreign_leaks(log: str, lib_name: Optional[str] = None) -> List[str]:
    """Leak blocks that do NOT mention our code (informational)."""
    markers = our_markers(lib_name)
    return [b for b in leak_blocks(log) if not any(mk in b for mk in markers)]


def acceptable_exit(rc: Optional[int], log: str, asan: bool) -> bool:
    """Is ``rc`` a clean exit of testpmd?  Under ASan an exit with the
    sanitizer exit code is tolerated when the only report is foreign leaks."""
    if rc == 0:
        return True
    if asan and rc == ASAN_EXITCODE:
        return bool(leak_blocks(log)) and "ERROR: AddressSanitizer" not in log \
            and "runtime error:" not in log
    return False
