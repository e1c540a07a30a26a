"""DPDK's multi-process tools (dpdk-proc-info, dpdk-pdump, dpdk-dumpcap, and
tests/secondary's vhu-secondary) against our side's testpmd: hugepages for a
primary they can attach to, the arguments they need, running them and
reading what they print.  README's "DPDK's tools on our ports" says why each
argument is needed."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import tty
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Sequence

from . import sanitizers
from .pmd import PmdSelection
from .process import kill_now, wait_or_escalate
from .testpmd import TestPmd, TestPmdError

HUGEPAGES_2M = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")


@contextlib.contextmanager
def hugepages(count: int):
    """``count`` more 2 MB pages reserved, and a hugetlbfs mount of our own
    holding at most that many (its path is yielded, for --huge-dir); both
    given back afterwards.  Our own mount rather than /dev/hugepages (which
    not every machine mounts): whatever a killed primary leaves in it goes
    with the unmount, and the primaries cannot take more than was reserved."""
    nr = HUGEPAGES_2M / "nr_hugepages"
    nr.write_text(str(int(nr.read_text()) + count))
    mnt = tempfile.mkdtemp(prefix="vhu-huge-")
    try:
        free = int((HUGEPAGES_2M / "free_hugepages").read_text())
        if free < count:
            raise RuntimeError(f"asked the kernel for {count} more 2 MB pages, {free} are free "
                               f"(memory short or fragmented)")
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", f"pagesize=2M,size={2 * count}M",
                        "nodev", mnt], check=True, capture_output=True, text=True)
        try:
            yield mnt
        finally:
            # lazy: a process still mapping pages lets them go when it exits
            subprocess.run(["umount", "--lazy", mnt], check=False)
    finally:
        os.rmdir(mnt)
        nr.write_text(str(max(int(nr.read_text()) - count, 0)))


@lru_cache(maxsize=None)
def linked_mempool_drivers(binary: str) -> tuple:
    """The mempool drivers among ``binary``'s shared libraries, in ldd's
    order.  They register their ops when the program loads, before EAL loads
    the plugin directory, so they take the first indices of the process's
    ops table (Debian's dpdk-testpmd links librte_mempool_dpaa, DPDK's tools
    link none).  A mempool records its ops by index in shared memory: a
    secondary process whose pools the primary uses must load these first
    (-d) to number its ops as the primary does."""
    path = shutil.which(binary) or binary
    ldd = subprocess.run(["ldd", path], check=True, capture_output=True, text=True).stdout
    drivers = []
    for lib in re.findall(r"=> (/\S+) \(", ldd):
        imports = subprocess.run(["nm", "-D", "--undefined-only", lib], capture_output=True,
                                 text=True).stdout
        if re.search(r"\brte_mempool_register_ops\b", imports):
            drivers.append(lib)
    return tuple(drivers)


def mempool_ops(pid: int) -> List[str]:
    """The names in process ``pid``'s mempool ops table, in index order, read
    from its memory.  DPDK 22.11's rte_mempool_ops_table: a spinlock, the
    count, then 64-byte aligned entries of 128 bytes starting with a 32-byte
    name.  The table lives in the executable when it copy-relocates the
    symbol (it uses inline mempool functions), else in librte_mempool."""
    maps = [line.split() for line in Path(f"/proc/{pid}/maps").read_text().splitlines()]
    objects = [os.readlink(f"/proc/{pid}/exe")] + sorted({m[5] for m in maps if len(m) > 5 and
                                                          "librte_mempool.so" in m[5]})
    for obj in objects:
        syms = subprocess.run(["nm", "-D", "--defined-only", obj], capture_output=True,
                              text=True).stdout
        m = re.search(r"^([0-9a-f]+) B rte_mempool_ops_table\b", syms, re.M)
        if m is None:
            continue
        base = next(int(f[0].split("-")[0], 16) for f in maps
                    if len(f) > 5 and f[5] == obj and int(f[2], 16) == 0)
        table = base + int(m.group(1), 16)
        with open(f"/proc/{pid}/mem", "rb") as mem:
            mem.seek(table + 4)
            count = int.from_bytes(mem.read(4), "little")
            names = []
            for i in range(count):
                mem.seek(table + 64 + 128 * i)
                names.append(mem.read(32).split(b"\0")[0].decode())
        return names
    raise RuntimeError(f"no rte_mempool_ops_table in process {pid} ({objects})")


def tool_plugins(primary: TestPmd, pmd: PmdSelection) -> List[str]:
    """What a secondary process of ``primary`` must load before EAL's plugin
    directory: the primary's mempool drivers, then our plugin (else the
    distribution's net_vhost attaches our ports and reads them as its own)."""
    return list(linked_mempool_drivers(primary.binary)) + [str(pmd.so_path)]


def tool_eal_args(primary: TestPmd, pmd: PmdSelection) -> List[str]:
    """EAL arguments of a secondary process of ``primary``: its file prefix
    and the plugins (-d), which EAL loads in this order ahead of its
    plugin directory."""
    args = [f"--file-prefix={primary.file_prefix}"]
    for lib in tool_plugins(primary, pmd):
        args += ["-d", lib]
    return args


class Tool:
    """A DPDK tool run as a secondary process, its stdout and stderr in
    ``<workdir>/<name>.log`` through a pseudo-terminal (on a file stdio
    would hold back the lines that say it is ready until it exits); under
    VHU_ASAN=1 with the sanitizer runtime preloaded, since it loads our
    plugin.  ``preload``: objects for LD_PRELOAD (after the sanitizer
    runtime)."""

    def __init__(self, name: str, argv: Sequence[str], workdir, asan: bool,
                 preload: Sequence[str] = ()):
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(workdir) / f"{name}.log"
        env = dict(os.environ)
        if asan:
            env.update(sanitizers.sanitizer_env())
        preload = [p for p in [env.get("LD_PRELOAD"), *preload] if p]
        if preload:
            env["LD_PRELOAD"] = ":".join(preload)
        self.asan = asan
        master, slave = pty.openpty()
        tty.setraw(slave)
        log = open(self.log_path, "wb")
        log.write(f"$ {' '.join(self.argv)}\n".encode())
        log.flush()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=slave,
                                         stderr=slave, env=env, start_new_session=True)
        finally:
            os.close(slave)
        self._copier = threading.Thread(target=self._copy, args=(master, log), daemon=True)
        self._copier.start()

    @staticmethod
    def _copy(master: int, log):
        """Pty to log file, until every holder of the pty's other end is gone."""
        with log:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: no writer left
                    break
                if not data:
                    break
                log.write(data)
                log.flush()
        os.close(master)

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def wait_output(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.output)
            if m:
                return m
            rc = self.proc.poll()
            if rc is not None or time.monotonic() > deadline:
                why = f"exited with status {rc}" if rc is not None else f"after {timeout}s"
                raise TestPmdError(f"{self.name}: no /{pattern}/ ({why}); output:\n"
                                   f"{self.output[-4000:]}")
            time.sleep(0.1)

    def _reaped(self) -> int:
        self._copier.join(10)  # the whole output is in the log
        return self.proc.returncode

    def wait(self, timeout: float = 60.0) -> int:
        """Exit status after the tool ends by itself (SIGKILL past ``timeout``)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestPmdError(f"{self.name}: still running after {timeout}s; output:\n"
                               f"{self.output[-4000:]}")
        return self._reaped()

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C (how dpdk-pdump is stopped); exit status."""
        self._signal_group(signal.SIGINT)
        wait_or_escalate(self.proc, timeout, self._signal_group, lambda msg: None)
        return self._reaped()

    def kill(self):
        kill_now(self.proc, self._signal_group)
        self._reaped()

    def problems(self, pmd: PmdSelection) -> List[str]:
        """Post-mortem: a crash, or a sanitizer finding in our plugin."""
        rc, out = self.proc.returncode, self.output
        found = [] if sanitizers.acceptable_exit(rc, out, self.asan) else \
            [f"{self.name} exited with status {rc}"]
        if self.asan:
            found += sanitizers.sanitizer_problems(out, pmd.lib_name)
        return found


def run_tool(name: str, argv: Sequence[str], workdir, asan: bool, pmd: PmdSelection,
             timeout: float = 60.0, preload: Sequence[str] = ()) -> str:
    """Runs a tool to its end; its output.  Fails on a crash or a sanitizer
    finding."""
    tool = Tool(name, argv, workdir, asan, preload)
    tool.wait(timeout)
    problems = tool.problems(pmd)
    if problems:
        raise AssertionError("\n".join(problems) + f"\noutput:\n{tool.output[-6000:]}")
    return tool.output


_PROC_INFO_STATS = {"ipackets": r"RX-packets:\s*(\d+)", "ierrors": r"RX-errors:\s*(\d+)",
                    "ibytes": r"RX-bytes:\s*(\d+)", "rx_nombuf": r"RX-nombuf:\s*(\d+)",
                    "opackets": r"TX-packets:\s*(\d+)", "oerrors": r"TX-errors:\s*(\d+)",
                    "obytes": r"TX-bytes:\s*(\d+)"}


def parse_proc_info_stats(text: str, port: int) -> Dict[str, int]:
    """Port ``port``'s totals in ``dpdk-proc-info --stats`` output."""
    m = re.search(rf"NIC statistics for port {port}\s+#+\n(.*?)(?:Stats reg|#{{20,}})", text, re.S)
    if m is None:
        raise AssertionError(f"no statistics of port {port} in:\n{text[-4000:]}")
    return {key: int(re.search(rx, m.group(1)).group(1)) for key, rx in _PROC_INFO_STATS.items()}


def telemetry(file_prefix: str, commands: Sequence[str],
              timeout: float = 30.0) -> Dict[str, object]:
    """Each command's answer through dpdk-telemetry.py (the primary's
    telemetry socket), keyed by the command without its parameters."""
    out = subprocess.run(["dpdk-telemetry.py", "-f", file_prefix], input="\n".join(commands) + "\n",
                         capture_output=True, text=True, timeout=timeout, check=True).stdout
    answers = {}
    for line in out.splitlines():
        if line.startswith("{"):
            answers.update(json.loads(line))
    missing = [c for c in commands if c.split(",")[0] not in answers]
    if missing:
        raise AssertionError(f"dpdk-telemetry.py did not answer {missing}:\n{out}")
    return answers
