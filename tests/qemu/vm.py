"""QEMU (TCG) guests with a vhost-user virtio-net NIC, driven over the serial console.

>>> vm = Vm("a", workdir, assets, initrd, sock="/tmp/x/a.sock", mac="52:54:00:00:00:0a",
...         ip="10.0.0.1/24", queues=2)
>>> vm.start()                       # boots, waits for "@@READY a"
>>> vm.run("ping -c 3 10.0.0.2")     # -> GuestResult(rc, output); raises if rc != 0
>>> vm.quit()

Serial console: QEMU's stdio chardev on pipes; a reader thread drains it into
memory and ``<workdir>/<name>.serial.log`` (QEMU's own stderr goes there too).
Commands: see ``guest-init.sh``; every command runs in a fresh ``sh`` with
stdin from /dev/null, stdout+stderr to the console, bounded in time in the
guest (busybox ``timeout``) and on the host.

Control: QMP on ``<workdir>/<name>.qmp`` (``vm.qmp("system_reset")``).
Every QEMU runs in its own process group; ``close()`` (QMP quit, SIGTERM,
SIGKILL of the group) is idempotent and also runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import base64
import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from harness.process import kill_now, wait_or_escalate

from .assets import Assets

DEFAULT_MEM_MB = 256
# Which host CPUs QEMU may use (taskset -c); default: every CPU we may run on
# except FORWARDING_CPU, where our testpmd's forwarding lcore busy-polls.
ENV_CPUS = "VHU_QEMU_CPUS"
# lcore 1 of our side's "-l 0,1" (tests/harness/testpmd.py, OUR_LCORES)
FORWARDING_CPU = 1

_LIVE: "weakref.WeakSet[Vm]" = weakref.WeakSet()


@atexit.register
def _kill_leftovers():
    for vm in list(_LIVE):
        try:
            vm.kill()
        except Exception:  # noqa: BLE001
            pass


class VmError(RuntimeError):
    """The guest or QEMU did not do what the rig expected."""


@dataclass
class GuestResult:
    rc: int
    output: str
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


def default_qemu_cpus(avoid: Sequence[int] = (FORWARDING_CPU,)) -> str:
    """``VHU_QEMU_CPUS``, else every CPU we may run on but those of ``avoid``
    (all of them if that leaves none)."""
    env = os.environ.get(ENV_CPUS)
    if env:
        return env
    cpus = sorted(os.sched_getaffinity(0))
    others = [c for c in cpus if c not in avoid]
    return ",".join(str(c) for c in (others or cpus))


class Qmp:
    """Minimal QMP client (one command at a time, events are kept)."""

    def __init__(self, path: str, timeout: float = 20.0):
        self.path = path
        self.events: List[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise VmError(f"QMP socket {path} not connectable after {timeout}s")
                time.sleep(0.1)
        self._file = self.sock.makefile("rwb", buffering=0)
        greeting = self._read()
        if "QMP" not in greeting:
            raise VmError(f"unexpected QMP greeting {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        line = self._file.readline()
        if not line:
            raise VmError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name: str, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self._file.write(json.dumps(msg).encode() + b"\n")
        while True:
            resp = self._read()
            if "event" in resp:
                self.events.append(resp)
                continue
            if "error" in resp:
                raise VmError(f"QMP {name} failed: {resp['error']}")
            return resp.get("return")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Vm:
    """One QEMU guest: TCG, shared memfd memory, one vhost-user virtio-net NIC.

    ``sock``: the vhost-user socket (our testpmd is the server: start it
    first).  ``queues`` > 1 adds ``mq=on`` and the guest sets that many
    combined channels at boot (ethtool).  ``reboot``: let a guest reboot
    reset the machine (default: QEMU exits, ``-no-reboot``).
    ``netdev_opts``/``device_opts``: extra ``,k=v`` for -netdev / -device
    (e.g. ``packed=on``, ``mrg_rxbuf=off``, ``csum=off``).
    ``extra_nics``: more vhost-user NICs, (socket, MAC) each, set up as the
    first one (the guest configures only the first: ``vhu.mac``).
    ``incoming``: start as a migration destination (``-incoming <uri>``,
    e.g. ``tcp:127.0.0.1:4444``): start it with ``wait_ready=False``, the
    guest arrives running (no ``@@READY``); see ``migrate()``.
    ``chardev_server``: QEMU listens on ``sock`` (``server=on,wait=off``)
    and the back end connects to it (our devarg ``client=1``); ``start()``
    then does not require the socket to exist (QEMU replaces a stale one).
    ``mem_extra_kb``: RAM beyond ``mem_mb`` (a multiple of 8 KiB, QEMU's
    granule for ``-m``): 8 makes the RAM no multiple of 256 KiB, which has
    QEMU 7.2 sync a migration's dirty bitmap page by page; under TCG only
    that path brings the vCPU's TLB up to date (qemu/migration.py,
    ``TCG_SAFE_EXTRA_KB``).
    ``mem_slots``/``maxmem_mb``: room for hot-plugged memory
    (``-m <mem_mb>M,slots=<mem_slots>,maxmem=<maxmem_mb>M``; pc-dimm
    devices over QMP: ``device_add``), none by default.
    ``machine``: QEMU's ``-M`` (default ``pc``; ``q35`` for PCI Express).
    ``iommu``: a vIOMMU ``-device``, e.g. ``intel-iommu,device-iotlb=on``
    (q35), placed before the NICs, which it then translates for.
    ``root_ports``: each NIC behind a ``pcie-root-port`` of its own (q35):
    a PCI Express endpoint there (on pcie.0 it would be an integrated
    device without extended capabilities such as ATS, ``ats=on``).
    ``trace``: QEMU trace events (``-trace``, patterns allowed), written to
    ``<workdir>/<name>.trace.log`` (``-D``; ``trace_log``), away from the
    console the rig parses; QEMU's own messages stay on the console.
    """

    def __init__(self, name: str, workdir: Union[str, Path], assets: Assets, initrd: Path, *,
                 sock: str, mac: str, ip: Optional[str] = None, queues: int = 1,
                 mem_mb: int = DEFAULT_MEM_MB, cpus: Optional[str] = None,
                 reboot: bool = False, netdev_opts: str = "", device_opts: str = "",
                 append: str = "", extra_args: Sequence[str] = (), incoming: str = "",
                 chardev_server: bool = False, extra_nics: Sequence[Tuple[str, str]] = (),
                 mem_slots: int = 0, maxmem_mb: int = 0, machine: str = "pc",
                 mem_extra_kb: int = 0,
                 iommu: str = "", root_ports: bool = False, trace: Sequence[str] = ()):
        if bool(mem_slots) != bool(maxmem_mb) or (maxmem_mb and maxmem_mb <= mem_mb):
            raise VmError(f"{name}: mem_slots={mem_slots} maxmem_mb={maxmem_mb}: both or "
                          f"neither, and maxmem above mem_mb={mem_mb}")
        self.name = name
        self.workdir = Path(workdir)
        self.assets = assets
        self.initrd = Path(initrd)
        self.sock = sock
        self.mac = mac
        self.ip = ip
        self.queues = queues
        self.mem_mb = mem_mb
        if mem_extra_kb % 8:
            raise VmError(f"{name}: mem_extra_kb={mem_extra_kb} is not a multiple of 8")
        self.mem_extra_kb = mem_extra_kb
        self.mem_slots = mem_slots
        self.maxmem_mb = maxmem_mb
        self.cpus = cpus if cpus is not None else default_qemu_cpus()
        self.reboot = reboot
        self.netdev_opts = netdev_opts
        self.device_opts = device_opts
        self.append = append
        self.extra_args = list(extra_args)
        self.incoming = incoming
        self.chardev_server = chardev_server
        self.extra_nics = list(extra_nics)
        self.machine = machine
        self.iommu = iommu
        self.root_ports = root_ports
        self.trace = list(trace)
        self.trace_path = self.workdir / f"{name}.trace.log"
        self.qmp_path = str(self.workdir / f"{name}.qmp")
        self.log_path = self.workdir / f"{name}.serial.log"
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self._qmp: Optional[Qmp] = None
        self._buf = ""
        self._cond = threading.Condition()
        self._reader: Optional[threading.Thread] = None
        self._eof = True
        self._ids = itertools.count(1)
        self._logfh = None
        self.boots = 0            # "@@READY" markers seen so far
        self.started_at: Optional[float] = None
        self.boot_seconds: Optional[float] = None

    def destination(self, workdir: Union[str, Path], sock: str, incoming: str,
                    extra_args: Sequence[str] = ()) -> "Vm":
        """A Vm with this guest's configuration (name, MAC, IP, initramfs,
        memory, CPUs, device options...) on vhost-user socket ``sock``, to
        start as the destination of a migration to ``incoming``, with
        ``extra_args`` added to this one's. ``workdir`` must differ from
        this one's: the QMP socket and serial log are named after the guest."""
        if Path(workdir) == self.workdir:
            raise VmError(f"{self.name}: the destination needs its own work dir")
        return Vm(self.name, workdir, self.assets, self.initrd, sock=sock, mac=self.mac,
                  ip=self.ip, queues=self.queues, mem_mb=self.mem_mb, cpus=self.cpus,
                  reboot=self.reboot, netdev_opts=self.netdev_opts,
                  device_opts=self.device_opts, append=self.append,
                  extra_args=[*self.extra_args, *extra_args], incoming=incoming,
                  chardev_server=self.chardev_server, mem_slots=self.mem_slots,
                  maxmem_mb=self.maxmem_mb, machine=self.machine, iommu=self.iommu,
                  mem_extra_kb=self.mem_extra_kb,
                  root_ports=self.root_ports, trace=self.trace)

    # -------------------------------------------------------------- command line

    def kernel_cmdline(self) -> str:
        parts = ["console=ttyS0", "panic=-1", "mitigations=off", "tsc=unstable",
                 "nokaslr", "quiet", f"vhu.name={self.name}", f"vhu.mac={self.mac}"]
        if self.ip:
            parts.append(f"vhu.ip={self.ip}")
        if self.queues > 1:
            parts.append(f"vhu.queues={self.queues}")
        if self.append:
            parts.append(self.append)
        return " ".join(parts)

    def nic_args(self, index: int, sock: str, mac: str) -> List[str]:
        """Chardev, netdev and device of vhost-user NIC ``index`` on ``sock``."""
        netdev = f"vhost-user,id=n{index},chardev=c{index},queues={self.queues}{self.netdev_opts}"
        device = f"virtio-net-pci,netdev=n{index},mac={mac},vectors=0,romfile="
        if self.queues > 1:
            device += ",mq=on"
        port = []
        if self.root_ports:
            port = ["-device", f"pcie-root-port,id=rp{index},bus=pcie.0,chassis={index + 1}"]
            device += f",bus=rp{index}"
        device += self.device_opts
        return ["-chardev", f"socket,id=c{index},path={sock}"
                + (",server=on,wait=off" if self.chardev_server else ""),
                "-netdev", netdev, *port, "-device", device]

    def argv(self) -> List[str]:
        mem = f"{(self.mem_mb << 10) + self.mem_extra_kb}K" if self.mem_extra_kb else \
              f"{self.mem_mb}M"
        hotplug = f",slots={self.mem_slots},maxmem={self.maxmem_mb}M" if self.mem_slots else ""
        argv = ["taskset", "-c", self.cpus] if self.cpus else []
        argv += [self.assets.qemu, "-name", self.name, "-nodefaults", "-no-user-config",
                 "-display", "none", "-accel", "tcg", "-M", self.machine, "-smp", "1",
                 "-m", mem + hotplug,
                 "-object", f"memory-backend-memfd,id=mem,size={mem},share=on",
                 "-numa", "node,memdev=mem",
                 "-kernel", str(self.assets.kernel.vmlinuz), "-initrd", str(self.initrd),
                 "-append", self.kernel_cmdline(),
                 "-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0",
                 "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if self.trace:
            argv += [arg for event in self.trace for arg in ("-trace", event)]
            argv += ["-D", str(self.trace_path)]
        if self.iommu:
            argv += ["-device", self.iommu]
        for index, (sock, mac) in enumerate([(self.sock, self.mac)] + self.extra_nics):
            argv += self.nic_args(index, sock, mac)
        if not self.reboot:
            argv.append("-no-reboot")
        if self.incoming:
            argv += ["-incoming", self.incoming]
        return argv + self.extra_args

    @property
    def mem_bytes(self) -> int:
        """Size of the guest's RAM (from guest-physical 0, below 4 GiB)."""
        return (self.mem_mb << 20) + (self.mem_extra_kb << 10)

    @property
    def command_line(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv())

    # ---------------------------------------------------------------- lifecycle

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait_ready: bool = True, timeout: float = 90.0) -> "Vm":
        if self.alive:
            raise VmError(f"{self.name}: already running")
        if not self.chardev_server and not os.path.exists(self.sock):
            raise VmError(f"{self.name}: vhost-user socket {self.sock} does not exist "
                          f"(start the vhost-user server first)")
        try:
            os.unlink(self.qmp_path)
        except FileNotFoundError:
            pass
        self._logfh = open(self.log_path, "a", encoding="utf-8", errors="replace")
        self._logfh.write(f"\n===== [rig] start: {self.command_line}\n")
        self._logfh.flush()
        with self._cond:
            self._eof = False
            self._mark = len(self._buf)
        self.boots_at_start = self.boots
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.returncode = None
        _LIVE.add(self)
        self._reader = threading.Thread(target=self._read_loop, name=f"serial-{self.name}",
                                        daemon=True)
        self._reader.start()
        self._qmp = None
        if wait_ready:
            self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, timeout: float = 90.0, boots: Optional[int] = None):
        """Wait for the guest's ``@@READY`` marker (``boots``: the n-th since
        this object was created; default: the next one since ``start()``)."""
        want = (self.boots_at_start + 1) if boots is None else boots
        t0 = time.monotonic()
        self.wait_until(lambda: self.boots >= want, timeout, f"@@READY #{want}")
        if self.boot_seconds is None:
            self.boot_seconds = time.monotonic() - (self.started_at or t0)
        errors = re.findall(r"^@@ERROR .*$", self.log, re.M)
        if errors:
            raise VmError(f"{self.name}: guest init reported: {errors}\n{self.tail()}")

    def _read_loop(self):
        fd = self.proc.stdout.fileno()
        pending = ""
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
            with self._cond:
                self._buf += text
                pending += text
                # count boots on complete lines
                *lines, pending = pending.split("\n")
                for line in lines:
                    if line.startswith("@@READY"):
                        self.boots += 1
                self._cond.notify_all()
            if self._logfh:
                self._logfh.write(text)
                self._logfh.flush()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return self._buf

    def tail(self, chars: int = 4000) -> str:
        with self._cond:
            return self._buf[-chars:]

    def trace_log(self) -> str:
        """What QEMU traced so far (``trace=``; empty without)."""
        try:
            return self.trace_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_until(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                if self._eof:
                    rc = self.proc.poll() if self.proc else None
                    raise VmError(f"{self.name}: QEMU exited (rc={rc}) while waiting for "
                                  f"{what}; serial tail:\n{self._buf[-4000:]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise VmError(f"{self.name}: timeout ({timeout}s) waiting for {what}; "
                                  f"serial tail:\n{self._buf[-4000:]}")
                self._cond.wait(min(remaining, 0.5))

    def wait_for(self, pattern: str, timeout: float = 60.0, start: Optional[int] = None
                 ) -> re.Match:
        """Wait until regex ``pattern`` matches the serial log (from offset
        ``start``, default: since the last ``start()``)."""
        rx = re.compile(pattern, re.M)
        begin = self._mark if start is None else start
        found: List[re.Match] = []

        def pred():
            m = rx.search(self._buf, begin)
            if m:
                found.append(m)
            return bool(m)

        self.wait_until(pred, timeout, f"/{pattern}/")
        return found[0]

    def log_offset(self) -> int:
        with self._cond:
            return len(self._buf)

    # ------------------------------------------------------------------ commands

    def _write(self, data: bytes):
        if not self.alive:
            raise VmError(f"{self.name}: QEMU not running (rc={self.proc and self.proc.poll()})")
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise VmError(f"{self.name}: writing to the serial console failed: {exc}") from exc

    def run(self, script: str, timeout: float = 60.0, check: bool = True) -> GuestResult:
        """Run a shell script in the guest; returns its status and output.

        Bounded in the guest by ``timeout -s KILL`` and on the host by
        ``timeout`` + 15 s.  ``check``: raise VmError if rc != 0."""
        cid = next(self._ids)
        guarded = f"timeout -s KILL {int(timeout)} sh -c {shlex.quote(script)}"
        b64 = base64.b64encode(guarded.encode()).decode()
        if len(b64) > 3800:
            raise VmError(f"{self.name}: command too long for one console line "
                          f"({len(b64)} base64 chars); use put_file()")
        start = self.log_offset()
        t0 = time.monotonic()
        self._write(f"@@{cid} {b64}\n".encode())
        end_rx = re.compile(rf"^@@END {cid} rc=(\d+)$", re.M)
        found: List[re.Match] = []

        def pred():
            m = end_rx.search(self._buf, start)
            if m:
                found.append(m)
            return bool(m) or f"@@BADCMD {cid}\n" in self._buf[start:]

        self.wait_until(pred, timeout + 15, f"end of guest command #{cid} {script[:80]!r}")
        elapsed = time.monotonic() - t0
        if not found:
            raise VmError(f"{self.name}: guest could not decode command #{cid}")
        with self._cond:
            text = self._buf[start:found[0].start()]
        m = re.search(rf"^@@BEGIN {cid}\n", text, re.M)
        out = text[m.end():] if m else text
        res = GuestResult(int(found[0].group(1)), out, elapsed)
        if check and res.rc != 0:
            hint = " (killed by the guest-side timeout)" if res.rc in (124, 137) else ""
            raise VmError(f"{self.name}: `{script}` exited with {res.rc}{hint}; output:\n{out}")
        return res

    def run_bg(self, script: str, log: str) -> None:
        """Start ``script`` in the background in the guest, output to file ``log``."""
        self.run(f"( {script} ) > {shlex.quote(log)} 2>&1 < /dev/null &", timeout=30)

    def reboot_guest(self, wait: bool = True, timeout: float = 90.0) -> int:
        """Reboot from inside the guest (``reboot -f``; QEMU resets the machine,
        which needs ``reboot=True``, else it exits).  ``wait``: until the next
        ``@@READY``.  Returns that boot's number, for ``wait_ready(boots=)``."""
        if not self.reboot:
            raise VmError(f"{self.name}: started with -no-reboot; pass reboot=True")
        want = self.boots + 1
        # in the background, so that the command itself completes first
        self.run_bg("sleep 0.2; reboot -f", "/dev/null")
        if wait:
            self.wait_ready(timeout=timeout, boots=want)
        return want

    def put_file(self, path: str, data: Union[str, bytes], mode: int = 0o644, chunk: int = 2000):
        """Write a (small) file into the guest over the console."""
        raw = data.encode() if isinstance(data, str) else data
        self.run(f": > {shlex.quote(path)}")
        for i in range(0, max(len(raw), 1), chunk):
            piece = base64.b64encode(raw[i:i + chunk]).decode()
            self.run(f"echo {piece} | base64 -d >> {shlex.quote(path)}")
        self.run(f"chmod {mode:o} {shlex.quote(path)}")

    def iface(self) -> str:
        return self.run("cat /run/vhu-if").output.strip()

    # ----------------------------------------------------------------------- QMP

    def qmp(self, name: str, **arguments):
        if self._qmp is None:
            self._qmp = Qmp(self.qmp_path)
        return self._qmp.cmd(name, **arguments)

    def qmp_events(self, name: str) -> List[dict]:
        """The QMP events ``name`` received so far (QMP keeps the events it
        reads while waiting for a command's answer): their ``data``."""
        return [e.get("data", {}) for e in (self._qmp.events if self._qmp else [])
                if e["event"] == name]

    def migrate(self, uri: str, timeout: float = 120.0, interval: float = 0.2,
                **parameters) -> dict:
        """Live-migrate this guest to ``uri`` (a destination started with
        ``incoming=``): ``migrate-set-parameters`` with ``parameters`` if
        any (e.g. ``max_bandwidth=...``; ``_`` becomes ``-``), QMP
        ``migrate``, then poll ``query-migrate`` until ``completed``.
        Returns the last ``query-migrate`` (``total-time``, ``downtime``,
        ``ram``... in ms/bytes); raises VmError if it fails or times out.
        The source is left paused (``postmigrate``): ``quit()`` it."""
        if parameters:
            self.qmp("migrate-set-parameters",
                     **{k.replace("_", "-"): v for k, v in parameters.items()})
        self.qmp("migrate", uri=uri)
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp("query-migrate") or {}
            status = info.get("status")
            if status == "completed":
                return info
            if status in ("failed", "cancelled"):
                raise VmError(f"{self.name}: migration to {uri} {status}: {info}")
            if time.monotonic() > deadline:
                try:
                    self.qmp("migrate_cancel")
                except VmError:
                    pass
                raise VmError(f"{self.name}: migration to {uri} not completed after "
                              f"{timeout}s: {info}")
            time.sleep(interval)

    def wait_incoming(self, timeout: float = 30.0):
        """Wait until a destination (``incoming=``) answers QMP in state
        ``inmigrate`` (its migration listener is then open)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.qmp("query-status").get("status")
            if status == "inmigrate":
                return
            if time.monotonic() > deadline:
                raise VmError(f"{self.name}: status {status!r}, not inmigrate, after {timeout}s")
            time.sleep(0.1)

    # ----------------------------------------------------------------- stopping

    def quit(self, timeout: float = 20.0) -> Optional[int]:
        """QMP ``quit`` (QEMU closes the vhost-user connection cleanly), then
        SIGTERM/SIGKILL of the process group if it does not exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.qmp("quit")
            except (VmError, OSError):
                pass
            wait_or_escalate(self.proc, timeout, self._signal, self._note)
        self._finish()
        return self.returncode

    def kill(self):
        """SIGKILL of the process group (a crash, as far as the back end can tell)."""
        if self.proc is None:
            return
        kill_now(self.proc, self._signal)
        self._finish()

    def close(self):
        if self.proc is None:
            return
        try:
            self.quit()
        except Exception:  # noqa: BLE001 - teardown
            self.kill()

    def _note(self, msg: str):
        text = f"\n[rig] {self.name}: {msg}\n"
        with self._cond:
            self._buf += text
        if self._logfh:
            self._logfh.write(text)
            self._logfh.flush()

    def _signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self):
        self.returncode = self.proc.poll()
        if self._qmp:
            self._qmp.close()
            self._qmp = None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(5)
        try:   # anything left in the group (should not be)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._logfh:
            self._logfh.write(f"\n===== [rig] QEMU exited rc={self.returncode}\n")
            self._logfh.close()
            self._logfh = None
        _LIVE.discard(self)

    def __repr__(self):
        return f"<Vm {self.name} pid={self.proc.pid if self.proc else None}>"
