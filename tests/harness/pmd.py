"""Which vhost PMD serves "our side", and checks that prove it.

``VHU_PMD`` selects it:

* unset              -> our plugin at ``<repo>/build/drivers/net/vhost/librte_net_vhu.so``
                        loaded with ``-d`` (it claims the name ``eth_vhost`` first);
* ``distro``         -> the distribution's ``net_vhost`` (no ``-d``), only to
                        develop/check the harness itself;
* any other value    -> path of the plugin .so to load with ``-d``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PMD_SO = REPO_ROOT / "build" / "drivers" / "net" / "vhost" / "librte_net_vhu.so"

# What our PMD prints at probe (see tests/README.md).
VHU_PORT_LINE = r"VHU: {port}: vhost-user port on {sock}"
# A VHU line naming the version: the word "version" followed by a number, or a
# dotted version number (e.g. "driver vhu 0.1.0").  If the repo has a VERSION
# file, that exact version must appear on a VHU line (proves which build runs).
VHU_VERSION_RE = re.compile(r"(?im)^.*\bVHU\b.*(?:\bversion\b.*\d|\bv?\d+\.\d+(?:\.\d+)*\b).*$")


def repo_version() -> Optional[str]:
    try:
        v = (REPO_ROOT / "VERSION").read_text().strip()
    except OSError:
        return None
    return v or None
# What the distribution's librte_vhost prints.
VHOST_CONFIG_RE = re.compile(r"VHOST_CONFIG:")


def world_writable_ancestor(path: Path) -> Optional[Path]:
    """First directory above ``path`` that is world-writable (EAL's -d check)."""
    import stat
    for d in Path(os.path.abspath(path)).parents:
        try:
            if os.stat(d).st_mode & stat.S_IWOTH:
                return d
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class PmdSelection:
    mode: str                      # "ours" or "distro"
    so_path: Optional[Path] = None

    @classmethod
    def from_env(cls, environ=None) -> "PmdSelection":
        environ = os.environ if environ is None else environ
        value = environ.get("VHU_PMD", "").strip()
        if value == "distro":
            return cls("distro")
        path = Path(value) if value else DEFAULT_PMD_SO
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        return cls("ours", path)

    @property
    def is_distro(self) -> bool:
        return self.mode == "distro"

    @property
    def is_ours(self) -> bool:
        return self.mode == "ours"

    def problem(self) -> Optional[str]:
        """Why this selection cannot be used, or None."""
        if self.is_ours and not self.so_path.is_file():
            return (f"our PMD plugin {self.so_path} does not exist: build it first "
                    f"(meson setup build && ninja -C build), point VHU_PMD at the .so, "
                    f"or set VHU_PMD=distro to exercise the harness against the "
                    f"distribution's net_vhost")
        if self.is_ours:
            bad = world_writable_ancestor(self.so_path)
            if bad:
                return (f"EAL refuses to load plugins below a world-writable directory "
                        f"({bad}; 'EAL: Error, directory path ... is world-writable and "
                        f"insecure'): move {self.so_path.name} elsewhere (not under /tmp)")
        return None

    def eal_args(self) -> List[str]:
        """EAL arguments that make eth_vhost resolve to the selected PMD."""
        return ["-d", str(self.so_path)] if self.is_ours else []

    @property
    def lib_name(self) -> str:
        """Substring identifying our library in stack traces / maps."""
        return self.so_path.name.split(".so")[0] if self.so_path else "librte_net_vhost"

    def describe(self) -> str:
        return f"ours ({self.so_path})" if self.is_ours else "distro (net_vhost)"


def driver_identity_problems(log: str, selection: PmdSelection,
                             ports: Dict[str, str]) -> List[str]:
    """Check from the log that the ports were served by the selected PMD.

    ``ports`` maps port names (``eth_vhost0``) to their socket path.

    * ours:   ``VHU: <port>: vhost-user port on <sock>`` for every port, a VHU
              line naming the version, and no ``VHOST_CONFIG:`` line at all
              (that prefix belongs to the distribution's librte_vhost);
    * distro: the ``VHOST_CONFIG:`` lines must be present (``socket created``
              for every socket), which validates this very check.
    """
    problems = []
    if selection.is_ours:
        for port, sock in ports.items():
            rx = re.compile(VHU_PORT_LINE.format(port=re.escape(port), sock=re.escape(str(sock))))
            if not rx.search(log):
                problems.append(f"missing probe line matching /{rx.pattern}/")
        version = repo_version()
        vlines = [l for l in log.splitlines() if VHU_VERSION_RE.match(l)]
        if not vlines:
            problems.append(f"missing a VHU line naming the version (/{VHU_VERSION_RE.pattern}/)")
        elif version and not any(re.search(r"(?<![\d.])" + re.escape(version) + r"(?![\d.])", l)
                                 for l in vlines):
            problems.append(f"no VHU line names the version {version!r} of {REPO_ROOT}/VERSION; "
                            f"version lines: {vlines}")
        bad = [l for l in log.splitlines() if VHOST_CONFIG_RE.search(l)]
        if bad:
            problems.append("the distribution's vhost library is active (VHOST_CONFIG lines "
                            f"present), e.g. {bad[0]!r}")
    else:
        if not VHOST_CONFIG_RE.search(log):
            problems.append("distro PMD selected but no VHOST_CONFIG: line in the log")
        for port, sock in ports.items():
            rx = re.compile(r"VHOST_CONFIG: \(" + re.escape(str(sock)) +
                            r"\) vhost-user server: socket created")
            if not rx.search(log):
                problems.append(f"missing /{rx.pattern}/")
    return problems


def secondary_identity_problems(output: str, port: str) -> List[str]:
    """Check from a secondary process's output that OUR PMD attached
    ``port``, this very version: its attach line naming it.  The
    distribution's net_vhost would attach silently and read our port's
    private data as its own."""
    version = re.escape(repo_version()) if repo_version() else r"\S+"
    rx = re.compile(r"VHU: " + re.escape(port) + r": port \d+ of the primary process attached"
                    r".*\bdriver vhu " + version + r"(?![\d.])")
    return [] if rx.search(output) else [f"missing attach line matching /{rx.pattern}/"]


def assert_driver_identity(log: str, selection: PmdSelection, ports: Dict[str, str]):
    problems = driver_identity_problems(log, selection, ports)
    if problems:
        raise AssertionError(f"port(s) {sorted(ports)} not served by {selection.describe()}:\n  - "
                             + "\n  - ".join(problems))
