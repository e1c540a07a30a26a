"""A private Open vSwitch (DPDK datapath) whose ``type=dpdk`` ports are our
``eth_vhost`` ports, for tests/test_ovs.py; or, to compare with them
(bench/ovs.py), whose ports are its own vhost-user ports (``type=dpdkvhostuser``,
served by DPDK's vhost library).

Nothing of the system's OVS is used or touched: the database, its server,
the control sockets, the logs and the PID files live in ``<workdir>/ovs``
(``OVS_RUNDIR``, ``OVS_DBDIR``, ``OVS_LOGDIR``, ``OVS_SYSCONFDIR`` and
``OVS_PKGDATADIR`` point there, every tool gets its socket named), both
daemons run in the foreground as our children, the EAL of
ovs-vswitchd-dpdk gets its own ``--file-prefix``, and ovs-vswitchd runs in
a network namespace of its own (``unshare --net``; root), where the kernel
tap devices of its netdev datapath live and die with it. The system
service the Debian package installs is not needed.

>>> sw = Ovs(workdir, pmd)
>>> sw.start({"userspace-tso-enable": "true"})     # ovsdb-server, then ovs-vswitchd
>>> sw.add_bridge()
>>> sw.add_dpdk_port("a", 1, "eth_vhost0,iface=/tmp/x/a.sock")
>>> sw.telemetry_xstats("eth_vhost0")               # our port's xstats, all of them
>>> sw.finish()                                      # exit --cleanup, exit status, log checks
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .pmd import PmdSelection, driver_identity_problems
from .process import kill_now, wait_or_escalate
from .testpmd import BASE_EAL_ARGS, eal_runtime_dir, make_file_prefix

# Debian's openvswitch-switch-dpdk; update-alternatives may or may not make it
# /usr/sbin/ovs-vswitchd, so it is named directly.
VSWITCHD = os.environ.get("VHU_OVS_VSWITCHD",
                          "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk")
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "unshare")

# ovs-vswitchd-dpdk's main lcore on CPU 0, its PMD (polling) thread on CPU 1,
# as our testpmd's forwarding lcore (tests/harness/testpmd.py): the peers
# and QEMUs of the tests keep away from CPU 1.
LCORE_MASK = "0x1"
PMD_CPU_MASK = "0x2"

# OVS 3.1 adds --in-memory to the EAL arguments unless they hold --in-memory
# or --legacy-mem, and EAL refuses --in-memory with --no-huge.
EAL_ARGS = BASE_EAL_ARGS + ["--legacy-mem"]

# What OVS 3.1 logs at WARN for our ports, and why it is expected:
EXPECTED_WARNINGS = [
    # OVS enables RX checksum offload only when the port offers IPv4, TCP
    # and UDP checksum offload alike (netdev-dpdk.c, dpdk_eth_dev_init).
    # Ours offers TCP and UDP (none with legacy-ol-flags=1), not IPv4:
    # virtio leaves no IPv4 header checksum to the host. Left off, OVS gets
    # finished checksums; on, it would forward guests' partial ones, which
    # it does not understand (README, "Open vSwitch").
    r"netdev_dpdk\|WARN\|Rx checksum offload is not supported on port \d+",
    # With userspace TSO OVS also asks for SCTP checksum offload, which
    # virtio has not; it only matters for SCTP frames OVS was given with
    # an SCTP checksum request, which only DPDK's vhost library makes.
    r"netdev_dpdk\|WARN\|\S+: Tx SCTP checksum offload is not supported",
    # DPDK telemetry's socket for clients of DPDK < 20.05; the v2 one is made.
    r"dpdk\|WARN\|TELEMETRY: No legacy callbacks, legacy socket not created",
]

_LIVE: "weakref.WeakSet[Ovs]" = weakref.WeakSet()


@atexit.register
def _kill_leftovers():
    for sw in list(_LIVE):
        sw.kill()


class OvsError(RuntimeError):
    """OVS did not do what the test expected."""


def missing_tools() -> List[str]:
    """The OVS programs of openvswitch-switch-dpdk that are not installed."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not os.access(VSWITCHD, os.X_OK):
        missing.append(VSWITCHD)
    return missing


def dpdk_telemetry(file_prefix: str, command: str, timeout: float = 10.0):
    """One command of DPDK's telemetry (v2 socket) of the process with
    ``--file-prefix=file_prefix``, e.g. ``/ethdev/xstats,0``: its answer."""
    path = eal_runtime_dir(file_prefix) / "dpdk_telemetry.v2"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        hello = json.loads(s.recv(1 << 16))
        s.send(command.encode())
        reply = json.loads(s.recv(max(1 << 16, hello.get("max_output_len", 0) * 2)))
    return reply[command.split(",")[0]]


def parse_pmd_stats(text: str) -> Dict[int, Dict[str, float]]:
    """``dpif-netdev/pmd-stats-show`` per polling thread (by core id): the
    first number of each line, e.g. "packets received", "idle cycles",
    "processing cycles", "avg processing cycles per packet". The main
    thread's section (the non-polling threads) is left out."""
    stats: Dict[int, Dict[str, float]] = {}
    current: Optional[Dict[str, float]] = None
    for line in text.splitlines():
        m = re.match(r"pmd thread numa_id \d+ core_id (\d+):", line)
        if m:
            current = stats.setdefault(int(m.group(1)), {})
        elif not line.startswith(" "):
            current = None          # "main thread:"
        elif current is not None:
            kv = re.match(r"\s+([^:]+):\s+([\d.]+)", line)
            if kv:
                current[kv.group(1)] = float(kv.group(2))
    return stats


class Ovs:
    """ovsdb-server and ovs-vswitchd-dpdk of one test, in ``<workdir>/ovs``."""

    def __init__(self, workdir: Path, pmd: PmdSelection, wrapper: Sequence[str] = ()):
        """``wrapper``: a command ovs-vswitchd-dpdk runs under (valgrind ...),
        in the same process (vswitchd_pid)."""
        self.pmd = pmd
        self.wrapper = list(wrapper)
        self.dir = Path(workdir) / "ovs"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Its own port is a kernel tap device of that name, as is the
        # datapath's ("ovs-netdev"): ovs-vswitchd runs in a network namespace
        # of its own, where they cannot collide with another instance's and
        # go with it even when it crashes (OVS makes them persistent).
        self.bridge = "br0"
        self.file_prefix = make_file_prefix("ovs")
        self.db_sock = self.dir / "db.sock"
        self.ctl = {"ovsdb-server": self.dir / "ovsdb-server.ctl",
                    "ovs-vswitchd": self.dir / "ovs-vswitchd.ctl"}
        self.log_path = self.dir / "ovs-vswitchd.log"
        self.env = dict(os.environ, **{f"OVS_{v}DIR": str(self.dir)
                                       for v in ("RUN", "DB", "LOG", "SYSCONF", "PKGDATA")})
        self.procs: Dict[str, subprocess.Popen] = {}
        # our ethdev's name (eth_vhost0), or OVS's own vhost-user interface's -> socket
        self.ports: Dict[str, str] = {}
        self.returncodes: Dict[str, Optional[int]] = {}
        self.died: List[str] = []              # daemons found gone when asked to stop
        _LIVE.add(self)

    # ------------------------------------------------------------- processes

    def _spawn(self, name: str, argv: Sequence[str]):
        out = open(self.dir / f"{name}.out", "wb")   # console: what precedes the log file
        try:
            self.procs[name] = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True, close_fds=True)
        finally:
            out.close()

    def _run(self, argv: Sequence[str], timeout: float = 60.0) -> str:
        try:
            res = subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                                 timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise OvsError(f"{' '.join(argv)}: no answer in {timeout}s{self._dead()}") from exc
        if res.returncode != 0:
            raise OvsError(f"{' '.join(argv)} exited with {res.returncode}: "
                           f"{res.stderr.strip()}{self._dead()}")
        return res.stdout

    def _dead(self) -> str:
        gone = [f"{n} exited with {p.poll()}" for n, p in self.procs.items()
                if p.poll() is not None]
        return ("; " + ", ".join(gone) + f"; log tail:\n{self.tail()}") if gone else ""

    def start(self, other_config: Optional[Dict[str, str]] = None):
        """A fresh database, ovsdb-server on it, DPDK set up in it
        (``other_config`` added), then ovs-vswitchd-dpdk."""
        db = self.dir / "conf.db"
        self._run(["ovsdb-tool", "create", str(db), SCHEMA])
        self._spawn("ovsdb-server", [
            "ovsdb-server", str(db), f"--remote=punix:{self.db_sock}",
            f"--unixctl={self.ctl['ovsdb-server']}", f"--pidfile={self.dir / 'ovsdb-server.pid'}",
            f"--log-file={self.dir / 'ovsdb-server.log'}"])
        deadline = time.monotonic() + 30
        while not self.db_sock.exists():
            if time.monotonic() > deadline or self.procs["ovsdb-server"].poll() is not None:
                raise OvsError(f"ovsdb-server did not open {self.db_sock}{self._dead()}")
            time.sleep(0.05)
        config = {
            "dpdk-init": "true",
            "dpdk-extra": " ".join(EAL_ARGS + self.pmd.eal_args()
                                   + [f"--file-prefix={self.file_prefix}"]),
            "dpdk-lcore-mask": LCORE_MASK,
            "pmd-cpu-mask": PMD_CPU_MASK,
            # A mempool per port sized by its queues (about 20k mbufs), not
            # the shared 256k-mbuf one: less memory and start-up time.
            "per-port-memory": "true",
        }
        config.update(other_config or {})
        self.vsctl("--no-wait", "init", "--", "set", "Open_vSwitch", ".",
                   *(f"other_config:{k}={json.dumps(v)}" for k, v in config.items()))
        self._spawn("ovs-vswitchd", [
            "unshare", "--net", "--", *self.wrapper, VSWITCHD, f"unix:{self.db_sock}",
            f"--unixctl={self.ctl['ovs-vswitchd']}",
            f"--pidfile={self.dir / 'ovs-vswitchd.pid'}", f"--log-file={self.log_path}"])

    # ----------------------------------------------------------------- tools

    def vsctl(self, *args: str, timeout: int = 60) -> str:
        """ovs-vsctl on our database; without --no-wait it returns once
        ovs-vswitchd has applied the change."""
        return self._run(["ovs-vsctl", f"--db=unix:{self.db_sock}", f"--timeout={timeout}",
                          *args], timeout + 10)

    def ofctl(self, *args: str) -> str:
        return self._run(["ovs-ofctl", args[0], f"unix:{self.dir / (self.bridge + '.mgmt')}",
                          *args[1:]])

    def appctl(self, *args: str, target: str = "ovs-vswitchd", timeout: int = 60) -> str:
        return self._run(["ovs-appctl", "-t", str(self.ctl[target]), f"--timeout={timeout}",
                          *args], timeout + 10)

    def add_bridge(self):
        self.vsctl("add-br", self.bridge, "--", "set", "Bridge", self.bridge,
                   "datapath_type=netdev")

    def add_dpdk_port(self, name: str, ofport: int, devargs: str):
        """A ``type=dpdk`` interface ``name`` (OpenFlow port ``ofport``) on
        the port ``devargs`` names (``eth_vhost0,iface=...``)."""
        self.vsctl("add-port", self.bridge, name, "--", "set", "Interface", name, "type=dpdk",
                   f"options:dpdk-devargs={json.dumps(devargs)}", f"ofport_request={ofport}")
        dev, _, args = devargs.partition(",")
        self.ports[dev] = re.search(r"(?:^|,)iface=([^,]+)", args).group(1)

    def add_vhost_user_port(self, name: str, ofport: int) -> Path:
        """OVS's own vhost-user port (``type=dpdkvhostuser``, DPDK's vhost
        library, not a PMD) ``name``, OpenFlow port ``ofport``: OVS listens
        on ``<rundir>/name`` for a front end. Returns that socket."""
        self.vsctl("add-port", self.bridge, name, "--", "set", "Interface", name,
                   "type=dpdkvhostuser", f"ofport_request={ofport}")
        sock = self.dir / name
        self.ports[name] = str(sock)
        return sock

    def cross_connect(self, a: int, b: int):
        """Everything entering OpenFlow port ``a`` leaves by ``b`` and the
        other way round; nothing else is forwarded (no MAC learning, no
        flooding: the bridge's own port sends nowhere)."""
        self.ofctl("del-flows")
        self.ofctl("add-flow", f"in_port={a},actions=output:{b}")
        self.ofctl("add-flow", f"in_port={b},actions=output:{a}")

    def dpif_show(self, name: str) -> Dict[str, str]:
        """What ``ovs-appctl dpif/show`` says of interface ``name``: its
        configured queues, MTU, rx_csum_offload, tx_tso_offload..."""
        m = re.search(rf"^\s*{re.escape(name)} \S+ \(dpdk: ([^)]*)\)", self.appctl("dpif/show"),
                      re.M)
        if not m:
            raise OvsError(f"{name} not in dpif/show")
        return dict(kv.split("=", 1) for kv in m.group(1).split(", "))

    def port_stats(self, name: str) -> Dict[str, int]:
        """The counters OVS reports for interface ``name`` (read from the
        port now, unlike the ``statistics`` column, updated every 5 s):
        rx_packets, rx_bytes, rx_errors, rx_dropped, tx_... as ``dpctl/show
        -s`` names them. rx_dropped adds the port's rx_nombuf, tx_dropped
        what OVS could not send (a full guest ring: it does not retry)."""
        # the datapath named: enumerating all of them logs a warning for the
        # kernel's, which is not there
        out = self.appctl("dpctl/show", "-s", "netdev@ovs-netdev")
        m = re.search(rf"^\s*port \d+: {re.escape(name)} .*\n((?:\s{{4}}.*\n?)*)", out, re.M)
        if not m:
            raise OvsError(f"{name} not in dpctl/show:\n{out}")
        stats = {}
        for line in m.group(1).splitlines():
            # "RX packets:5 errors:0 dropped:0 ...", "RX bytes:300  TX bytes:0"
            direction = ""
            for dirword, key, value in re.findall(r"(?:(RX|TX) )?(\w+):(\d+)", line):
                direction = dirword.lower() + "_" if dirword else direction
                stats[direction + key] = int(value)
        return stats

    # ------------------------------------------------------- polling threads

    def pmd_stats_clear(self):
        self.appctl("dpif-netdev/pmd-stats-clear")

    def pmd_stats(self) -> Dict[int, Dict[str, float]]:
        """``dpif-netdev/pmd-stats-show`` since the last pmd_stats_clear(),
        per polling thread (parse_pmd_stats)."""
        return parse_pmd_stats(self.appctl("dpif-netdev/pmd-stats-show"))

    def pmd_perf_show(self) -> str:
        """``dpif-netdev/pmd-perf-show``: the polling threads' iterations,
        packets and cycles per packet since the last pmd_stats_clear()."""
        return self.appctl("dpif-netdev/pmd-perf-show")

    @property
    def vswitchd_pid(self) -> int:
        # unshare execs ovs-vswitchd-dpdk or its wrapper (no --fork): the same process
        return self.procs["ovs-vswitchd"].pid

    # ---------------------------------------------- our ports, seen from DPDK

    def telemetry(self, command: str):
        return dpdk_telemetry(self.file_prefix, command)

    def port_id(self, ethdev: str) -> int:
        for pid in self.telemetry("/ethdev/list"):
            if self.telemetry(f"/ethdev/info,{pid}")["name"] == ethdev:
                return pid
        raise OvsError(f"no ethdev named {ethdev} in ovs-vswitchd")

    def telemetry_xstats(self, ethdev: str) -> Dict[str, int]:
        """Every xstat of our port (OVS's own ``statistics`` column keeps
        only the per-queue packets/bytes and the *_errors/*_dropped ones)."""
        return self.telemetry(f"/ethdev/xstats,{self.port_id(ethdev)}")

    def ethdev_info(self, ethdev: str) -> dict:
        """ethdev's view of the port: the RX/TX offloads OVS enabled, LRO..."""
        return self.telemetry(f"/ethdev/info,{self.port_id(ethdev)}")

    def wait_link_up(self, name: str, ethdev: Optional[str], timeout: float = 30.0):
        """Until our port ``ethdev`` reports its link up, and OVS says so of
        interface ``name`` (its ``link_state``: OVS polls the link every
        5 s, and the database lags behind). ``ethdev`` None: OVS's own
        vhost-user port, only OVS is asked."""
        pid = None if ethdev is None else self.port_id(ethdev)
        deadline = time.monotonic() + timeout
        while True:
            ours = "UP" if pid is None else self.telemetry(f"/ethdev/link_status,{pid}").get("status")
            theirs = self.vsctl("get", "Interface", name, "link_state").strip()
            if (ours, theirs) == ("UP", "up"):
                return
            if time.monotonic() > deadline:
                raise OvsError(f"{ethdev}: link {ours}, OVS's {name}: {theirs}, "
                               f"after {timeout}s")
            time.sleep(0.2)

    # ------------------------------------------------------------------ logs

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 4000) -> str:
        return self.log[-chars:]

    def warnings(self) -> List[str]:
        """WARN, ERR and EMER lines of ovs-vswitchd's log."""
        return re.findall(r"^.*\|(?:WARN|ERR|EMER)\|.*$", self.log, re.M)

    def unexpected_warnings(self) -> List[str]:
        return [w for w in self.warnings()
                if not any(re.search(p, w) for p in EXPECTED_WARNINGS)]

    # -------------------------------------------------------------- stopping

    def finish(self) -> None:
        """Stop both daemons as an administrator would (ovs-vswitchd removes
        its ports, hot-unplugging ours), then assert: both exited 0, our PMD
        served every port (its probe and version lines, no VHOST_CONFIG
        line), and our ports removed their sockets."""
        problems = self.stop() + self.died
        for name, rc in self.returncodes.items():
            if rc != 0:
                problems.append(f"{name} exited with {rc}")
        problems += driver_identity_problems(self.log, self.pmd, self.ports)
        problems += [f"socket {s} left behind" for s in self.ports.values() if os.path.exists(s)]
        if problems:
            raise AssertionError("Open vSwitch: " + "\n".join(problems)
                                 + f"\nlog tail:\n{self.tail()}")

    def stop(self) -> List[str]:
        """``exit --cleanup`` to ovs-vswitchd, ``exit`` to ovsdb-server, each
        escalated to SIGTERM and SIGKILL; then EAL's runtime directory goes
        (OVS never calls rte_eal_cleanup). Idempotent; returns what did not
        go as asked."""
        problems = []
        for name, args in (("ovs-vswitchd", ["exit", "--cleanup"]), ("ovsdb-server", ["exit"])):
            proc = self.procs.get(name)
            if proc is None or name in self.returncodes:
                continue
            if proc.poll() is not None:
                self.died.append(f"{name} had exited with {proc.returncode} "
                                 f"(negative: killed by that signal) before it was stopped")
            else:
                try:
                    self.appctl(*args, target=name, timeout=30)
                except OvsError as exc:
                    problems.append(str(exc))
                wait_or_escalate(proc, 30, lambda sig, p=proc: self._signal(p, sig),
                                 lambda msg, n=name: problems.append(f"{n}: {msg}"))
            self.returncodes[name] = proc.poll()
        shutil.rmtree(eal_runtime_dir(self.file_prefix), ignore_errors=True)
        _LIVE.discard(self)
        return problems

    def kill(self):
        for proc in self.procs.values():
            kill_now(proc, lambda sig, p=proc: self._signal(p, sig))
        shutil.rmtree(eal_runtime_dir(self.file_prefix), ignore_errors=True)

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
