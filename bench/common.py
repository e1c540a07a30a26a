"""What the packets-per-second benchmarks (bench/run.py, bench/ovs.py) share:
the private copy of our plugin, the CPU time of polling threads, testpmd's
arguments and flowgen's frame length, and the description of the machine
and build that a run records."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# testpmd's default pool (~155k mbufs) only slows start-up; 16k is plenty for
# 4 queue pairs of 256 descriptors. One forwarding lcore polls every port.
TESTPMD_APP_ARGS = ["--total-num-mbufs=16384", "--nb-cores=1"]

# testpmd's flowgen makes its frames this much shorter than txpkts says
FLOWGEN_FCS = 4


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


def thread_cpu_seconds(pid: int, name_prefix: str) -> float:
    """CPU time of the threads of process ``pid`` whose name starts with
    ``name_prefix`` (testpmd's forwarding lcores are rte-worker-N, OVS's
    polling threads pmd-cNN/id:M)."""
    ticks = 0
    task_dir = Path(f"/proc/{pid}/task")
    for tid in os.listdir(task_dir):
        try:
            stat = (task_dir / tid / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name.startswith(name_prefix):
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_metadata(plugin: Path, so: Path) -> dict:
    """The build, the plugin (``so``: the private copy of ``plugin`` the run
    loads), DPDK, the machine and its load at the start, the command line."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git": command_output("git", "describe", "--always", "--dirty"),
        "plugin": str(plugin), "plugin_sha256": hashlib.sha256(so.read_bytes()).hexdigest(),
        "dpdk": command_output("dpkg-query", "-W", "-f=${Version}", "dpdk"),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), platform.processor()),
        "nproc": os.cpu_count(), "loadavg_start": os.getloadavg(),
        "command": " ".join(sys.argv),
    }


def command_output(*argv: str) -> str:
    """What ``argv`` prints, run in the repository; empty if it cannot run."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=REPO,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_logger(path: Path):
    """A function printing each message with the time and appending it to
    the file at ``path``: a benchmark's progress, on screen and kept."""
    logfile = open(path, "a")

    def log(msg: str) -> None:
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    return log


def run_phases(args, results: dict, pps_key: str, pps, callgrind, workroot: Path,
               so: Path) -> None:
    """The packets-per-second phase (``pps()`` into ``results[pps_key]``),
    then the callgrind phase (``callgrind()``), each unless ``--no-pps`` /
    ``--no-callgrind``; results.json written after each phase and at the
    end whatever happens, with the load average; then the work directory
    and the plugin's copy removed unless ``--keep``."""
    def save():
        (args.out / "results.json").write_text(json.dumps(results, indent=1))

    try:
        if not args.no_pps:
            results[pps_key] = pps()
            save()
        if not args.no_callgrind:
            results["callgrind"] = callgrind()
    finally:
        results["meta"]["loadavg_end"] = os.getloadavg()
        save()
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
            shutil.rmtree(so.parent, ignore_errors=True)
