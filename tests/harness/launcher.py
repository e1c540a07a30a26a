"""Start "our side" and "peer side" testpmds for one test and clean up after it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import sanitizers
from .pmd import PmdSelection, driver_identity_problems
from .testpmd import BASE_EAL_ARGS, OUR_LCORES, PEER_LCORES, TestPmd, TestPmdError

# --no-flush-rx: testpmd's "start" otherwise drains every Rx queue first,
#   which would eat the frames of a pcap rx_pcap file.
# --total-num-mbufs: the default pool (~155k mbufs) only slows start-up.
# --no-mlockall: testpmd's default mlockall() fills all of EAL's memory at
#   start (0.8 s and 1 GiB resident per process); a test that wants it
#   passes --mlockall, which comes later and wins.
DEFAULT_APP_ARGS = ["--no-flush-rx", "--total-num-mbufs=16384", "--no-mlockall"]

# Lines meaning testpmd could not bring a port up (it still shows a prompt).
PORT_FAILURE_RE = re.compile(
    r"Fail to configure port|Fail to start port|Start ports failed|Fail to setup"
    r"|Port \d+ can not be set back to stopped|Configuring Port \d+ .*failed", re.I)


class Launcher:
    """Factory and registry of the testpmd processes of one test.

    ``ours()`` runs the vhost side (lcores 0,1 with main lcore 0, i.e. it
    forwards on lcore 1) with the selected PMD (``-d <our .so>`` or nothing
    for the distro PMD) and, with ``VHU_ASAN=1``, under the ASan runtime, with
    ``VHU_TSAN=1`` under the TSan runtime (reports in ``<name>.tsan.<pid>``).
    ``peer()`` runs the virtio-user side (main lcore 1, forwards on lcore 0).
    """

    def __init__(self, workdir: Path, pmd: PmdSelection, asan: bool = False,
                 tsan: Optional[bool] = None):
        self.workdir = Path(workdir)
        self.pmd = pmd
        self.asan = asan
        self.tsan = sanitizers.tsan_requested() if tsan is None else tsan
        self.instances: List[TestPmd] = []
        self._names: Dict[str, int] = {}

    def path(self, name: str) -> str:
        """A file in the test's (short) work directory, e.g. sockets and pcaps."""
        return str(self.workdir / name)

    def _unique(self, name: str) -> str:
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        return name if n == 0 else f"{name}{n}"

    def spawn(self, name: str, *, role: str, lcores: Sequence[str], vdevs: Sequence[str],
              app_args: Sequence[str] = (), eal_args: Sequence[str] = (),
              env: Optional[Dict[str, str]] = None, start: bool = True,
              expect_prompt: bool = True, allow_port_failure: bool = False,
              default_app_args: bool = True, startup_timeout: float = 60.0,
              base_eal_args: Sequence[str] = BASE_EAL_ARGS) -> TestPmd:
        args = (DEFAULT_APP_ARGS if default_app_args else []) + list(app_args)
        name = self._unique(name)
        if role == "ours" and self.tsan:
            env = dict(env or {}, **sanitizers.tsan_env(self.tsan_log_prefix(name)))
        tp = TestPmd(name, eal_args=eal_args, vdevs=vdevs, app_args=args,
                     lcores=lcores, env=env, log_dir=self.workdir, role=role,
                     base_eal_args=base_eal_args)
        self.instances.append(tp)
        if start:
            tp.start(timeout=startup_timeout, expect_prompt=expect_prompt)
            if expect_prompt and not allow_port_failure:
                m = PORT_FAILURE_RE.search(tp.log)
                if m:
                    raise TestPmdError(f"{tp.name}: port set-up failed ({m.group(0)!r}); "
                                       f"log tail:\n{tp.tail()}")
        return tp

    def tsan_log_prefix(self, name: str) -> Path:
        """Where the TSan reports of the process ``name`` go (``.<pid>`` appended)."""
        return self.workdir / f"{name}.tsan"

    def our_env(self, name: str) -> Optional[Dict[str, str]]:
        """Sanitizer environment of an our-side process ``name`` (None: none)."""
        if self.tsan:
            return sanitizers.tsan_env(self.tsan_log_prefix(name))
        return sanitizers.sanitizer_env() if self.asan else None

    def sanitizer_problems(self, tp: TestPmd) -> List[str]:
        problems = []
        if self.asan:
            problems += sanitizers.sanitizer_problems(tp.log, self.pmd.lib_name)
        if self.tsan:
            problems += sanitizers.tsan_problems(self.tsan_log_prefix(tp.name), tp.log)
        return problems

    def ours(self, vdevs: Sequence[str], app_args: Sequence[str] = (), name: str = "ours",
             extra_eal: Sequence[str] = (), lcores: Sequence[str] = OUR_LCORES,
             **kw) -> TestPmd:
        env = sanitizers.sanitizer_env() if self.asan else None
        return self.spawn(name, role="ours", lcores=lcores, vdevs=vdevs, app_args=app_args,
                          eal_args=list(self.pmd.eal_args()) + list(extra_eal), env=env, **kw)

    def peer(self, vdevs: Sequence[str], app_args: Sequence[str] = (), name: str = "peer",
             extra_eal: Sequence[str] = (), **kw) -> TestPmd:
        return self.spawn(name, role="peer", lcores=PEER_LCORES, vdevs=vdevs,
                          app_args=app_args, eal_args=extra_eal, **kw)

    # ------------------------------------------------------------ verdicts

    def our_side_problems(self, tp: TestPmd, ports: Optional[Dict[str, str]] = None,
                          require_clean_exit: bool = True) -> List[str]:
        """Post-mortem of an "ours" testpmd that has exited: exit status,
        sanitizer findings and (if ``ports`` given) the driver identity."""
        problems = []
        log = tp.log
        if tp.alive:
            problems.append(f"{tp.name} still running at post-mortem")
        if require_clean_exit and not sanitizers.acceptable_exit(tp.returncode, log, self.asan):
            problems.append(f"{tp.name} exited with status {tp.returncode} "
                            f"(negative = killed by signal)")
        problems += self.sanitizer_problems(tp)
        if ports:
            problems += driver_identity_problems(log, self.pmd, ports)
        tp.checked = True
        return problems

    def finish_ours(self, tp: TestPmd, ports: Optional[Dict[str, str]] = None,
                    quit_timeout: float = 60.0):
        """Quit our side and assert a clean exit, no sanitizer finding, and
        (if ``ports`` given) that the ports were served by the selected PMD."""
        if tp.alive:
            tp.quit(quit_timeout)
        problems = self.our_side_problems(tp, ports)
        if problems:
            raise AssertionError(f"{tp.name}: " + "\n".join(problems))

    def close_all(self) -> List[str]:
        """Stop every process (reverse start order: peers first).  Returns
        the problems found in our-side processes not yet checked (sanitizers,
        crash), for the fixture to report."""
        problems = []
        for tp in reversed(self.instances):
            try:
                tp.close()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{tp.name}: close failed: {exc}")
                tp.kill()
        for tp in self.instances:
            if tp.role == "ours" and not tp.checked and tp.proc is not None and \
                    (self.asan or self.tsan):
                problems += self.sanitizer_problems(tp)
                tp.checked = True
        return problems
