"""Run our side's dpdk-testpmd under ASan/UBSan (``VHU_ASAN=1``) or
ThreadSanitizer (``VHU_TSAN=1``) and judge its log.

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

``VHU_TSAN=1`` (plugin built with ``-Db_sanitize=thread``): the TSan runtime
(``libtsan.so.2`` of gcc 12) is preloaded into our side's testpmd, which keeps
running after a report (``halt_on_error=0``) and writes its reports to
``<work dir>/<name>.tsan.<pid>``; suppressions are in
``tests/sanitizers/tsan.supp``, each with its reason.  Every report printed
(a suppressed one is not printed) fails the test: see :func:`tsan_problems`.
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


TSAN_SUPPRESSIONS = Path(__file__).resolve().parent.parent / "sanitizers" / "tsan.supp"
# TSan exits with this code when it reported anything (halt_on_error=0).
TSAN_EXITCODE = 66


def _flag(name: str, environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get(name, "") not in ("", "0", "no", "false")


def tsan_requested(environ=None) -> bool:
    return _flag("VHU_TSAN", environ)


def asan_requested(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("VHU_ASAN", "") not in ("", "0", "no", "false")


@lru_cache(maxsize=None)
def _gcc_runtime(lib: str, env_override: str, requested_by: str) -> str:
    """Path of sanitizer runtime ``lib`` (libasan.so, libtsan.so) matching the
    system gcc, or the one ``env_override`` names."""
    override = os.environ.get(env_override)
    if override:
        return override
    try:
        out = subprocess.run(["gcc", f"-print-file-name={lib}"], check=True,
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"{requested_by} but cannot locate {lib} via gcc: {exc}") from exc
    if not out or not os.path.exists(out) or "/" not in out:
        raise RuntimeError(f"{requested_by} but gcc -print-file-name={lib} gave {out!r}")
    return os.path.realpath(out)


def asan_runtime() -> str:
    """Path of the ASan runtime matching the system gcc."""
    return _gcc_runtime("libasan.so", "VHU_ASAN_LIB", "VHU_ASAN=1")


def tsan_runtime() -> str:
    """Path of the TSan runtime matching the system gcc (libtsan.so.2 of gcc 12)."""
    return _gcc_runtime("libtsan.so", "VHU_TSAN_LIB", "VHU_TSAN=1")


def tsan_options(log_prefix) -> str:
    """TSAN_OPTIONS of a process whose reports go to ``<log_prefix>.<pid>``."""
    return ":".join([
        "halt_on_error=0",             # report every race of the run, not the first
        f"exitcode={TSAN_EXITCODE}",
        f"suppressions={TSAN_SUPPRESSIONS}",
        "print_suppressions=1",        # which suppressions matched, how often: at exit
        "history_size=7",              # the most: the other access's stack is kept longer
        "second_deadlock_stack=1",
        f"log_path={log_prefix}",
        f"stack_trace_format={STACK_FORMAT}",
    ])


def tsan_env(log_prefix, preload: bool = True) -> Dict[str, str]:
    """Environment for a process with a TSan-instrumented plugin (``preload``:
    the executable is not instrumented, so the runtime must come first)."""
    env = {"TSAN_OPTIONS": tsan_options(log_prefix)}
    if preload:
        env["LD_PRELOAD"] = tsan_runtime()
        if os.environ.get("LD_PRELOAD"):
            env["LD_PRELOAD"] += ":" + os.environ["LD_PRELOAD"]
    return env


def tsan_instrumented(so_path) -> bool:
    """Does the shared object call into the TSan runtime (built with -fsanitize=thread)?"""
    from elftools.elf.elffile import ELFFile
    with open(so_path, "rb") as f:
        dynsym = ELFFile(f).get_section_by_name(".dynsym")
        return dynsym is not None and any(sym.name == "__tsan_init"
                                          for sym in dynsym.iter_symbols())


def tsan_report_files(log_prefix) -> List[Path]:
    prefix = Path(log_prefix)
    return sorted(prefix.parent.glob(prefix.name + ".*"))


_TSAN_REPORT = re.compile(r"^WARNING: ThreadSanitizer: .*$", re.M)
_TSAN_FATAL = re.compile(r"FATAL: ThreadSanitizer|ThreadSanitizer: mmap at bad address|"
                         r"ThreadSanitizer:DEADLYSIGNAL|Sanitizer CHECK failed|"
                         r"ThreadSanitizer: unexpected memory mapping|"
                         r"ThreadSanitizer: can't restore|ThreadSanitizer: .*failed to")


def tsan_reports(text: str) -> List[str]:
    """Each ``WARNING: ThreadSanitizer:`` report block of ``text``
    (up to its ``SUMMARY:`` line)."""
    blocks = []
    for m in _TSAN_REPORT.finditer(text):
        end = text.find("\n==================", m.end())
        blocks.append(text[m.start(): end if end >= 0 else len(text)])
    return blocks


def tsan_problems(log_prefix, log: str = "") -> List[str]:
    """Findings that must fail the test: every TSan report not suppressed (a
    suppressed report is not printed), and any runtime failure, in the report
    files of ``log_prefix`` and in the process's own output ``log``."""
    problems = []
    for name, text in [("output", log)] + [(str(f), f.read_text(errors="replace"))
                                            for f in tsan_report_files(log_prefix)]:
        reports = tsan_reports(text)
        if reports:
            summaries = sorted({l for l in text.splitlines()
                                if l.startswith("SUMMARY: ThreadSanitizer")})
            problems.append(f"{len(reports)} ThreadSanitizer report(s) not suppressed in {name}:\n  "
                            + "\n  ".join(summaries[:20]) + "\nfirst report:\n"
                            + reports[0][:8000])
        m = _TSAN_FATAL.search(text)
        if m:
            start = max(0, m.start() - 200)
            problems.append(f"ThreadSanitizer runtime failure in {name}:\n" + text[start:start + 2000])
    return problems


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
    sanitizer exit code is tolerated when the only report is foreign leaks.
    Under TSan only 0 is (its exit code 66 means it reported)."""
    if rc == 0:
        return True
    if asan and rc == ASAN_EXITCODE:
        return bool(leak_blocks(log)) and "ERROR: AddressSanitizer" not in log \
            and "runtime error:" not in log
    return False
