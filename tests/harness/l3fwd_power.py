"""DPDK's l3fwd-power example on our port, as an application that sleeps on
RX interrupts.

Its sources are those of the installed DPDK's Debian source package, which
``scripts/dpdk-driver-headers.sh`` keeps in ``.deps/dpdk-examples/`` (nothing
of it is committed); :func:`build` compiles it into the build directory
against the installed libraries, as the example's own Makefile does. It runs
like our testpmd (its output on a pty, in the launcher's registry, judged by
``Launcher.our_side_problems``), but takes no commands: it stops on SIGINT.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Sequence

from .pmd import REPO_ROOT
from .testpmd import OUR_LCORES, TestPmd, TestPmdError

SOURCE = REPO_ROOT / ".deps" / "dpdk-examples" / "l3fwd-power"
BINARY = REPO_ROOT / "build" / "examples" / "l3fwd-power" / "dpdk-l3fwd-power"

# What its interrupt loop logs (main.c, sleep_until_rx_interrupt): a wake-up
# for every epoll event of a queue's fd, and, before sleeping again after
# one, that it sleeps.
WAKE_RE = re.compile(r"lcore (\d+) is waked up from rx interrupt on port (\d+) queue (\d+)")
SLEEP_RE = re.compile(r"lcore (\d+) sleeps until interrupt triggers")


def build() -> Path:
    """The binary, compiled first when missing or older than its sources."""
    sources = [SOURCE / "main.c", SOURCE / "perf_core.c"]
    if not sources[0].is_file():
        raise TestPmdError(f"l3fwd-power sources missing in {SOURCE}: run "
                           f"scripts/dpdk-driver-headers.sh (scripts/setup.sh does)")
    inputs = sources + [SOURCE / "main.h", SOURCE / "perf_core.h"]
    if BINARY.is_file() and all(BINARY.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return BINARY

    def pkg_config(flag: str):
        out = subprocess.run(["pkg-config", flag, "libdpdk"], check=True, capture_output=True,
                             text=True).stdout
        return shlex.split(out)

    BINARY.parent.mkdir(parents=True, exist_ok=True)
    partial = BINARY.with_suffix(".partial")
    cmd = ["cc", "-O3", *pkg_config("--cflags"), "-DALLOW_EXPERIMENTAL_API",
           *map(str, sources), "-o", str(partial), *pkg_config("--libs")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise TestPmdError(f"building l3fwd-power failed:\n$ {shlex.join(cmd)}\n{res.stderr}")
    os.replace(partial, BINARY)
    return BINARY


# Interrupt-only mode (no frequency scaling: none here, and none needed to
# sleep), RX queue 0 of port 0 on lcore 1; packet types parsed in software,
# since our port reports none (l3fwd-power refuses a port without them).
APP_ARGS = ["-p", "0x1", "--config", "(0,0,1)", "--parse-ptype", "--interrupt-only"]


class L3fwdPower(TestPmd):
    """One l3fwd-power process (made by :func:`spawn`)."""

    def __init__(self, name: str, *, eal_args: Sequence[str], vdevs: Sequence[str],
                 app_args: Sequence[str], log_dir, env=None):
        super().__init__(name, eal_args=eal_args, vdevs=vdevs, lcores=OUR_LCORES, env=env,
                         log_dir=log_dir, binary=str(build()), role="ours")
        # its own arguments where testpmd's "-i" and options go
        self.argv = self.argv[:self.argv.index("--") + 1] + list(app_args)

    def start(self, timeout: float = 60.0, expect_prompt: bool = False) -> "L3fwdPower":
        """Spawn it (it shows no prompt), then wait until its ports are started.
        Its lcores start polling only once the links are up, or after 9 s."""
        super().start(timeout=0, expect_prompt=False)
        self.wait_log(r"Checking link status", timeout)
        return self

    def request_exit(self):
        """SIGINT: it leaves its loops, stops and closes its ports."""
        self._signal_group(signal.SIGINT)


def spawn(launcher, vdevs: Sequence[str], app_args: Sequence[str] = APP_ARGS,
          name: str = "l3fwd-power") -> L3fwdPower:
    """l3fwd-power on our side, with the selected PMD (and under the ASan
    runtime with ``VHU_ASAN=1`` or ``VHU_TSAN=1``), in the launcher's registry,
    not started."""
    app = L3fwdPower(name, eal_args=launcher.pmd.eal_args(), vdevs=vdevs, app_args=app_args,
                     log_dir=launcher.workdir,
                     env=launcher.our_env(name))
    launcher.instances.append(app)
    return app
