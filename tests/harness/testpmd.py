"""Drive dpdk-testpmd in interactive mode.

The process runs with its stdout and stderr on a pseudo-terminal (so that
libc line-buffers testpmd's printf output and the log interleaves exactly as a
person would see it) and its stdin on a pipe (commands are written there; the
cmdline library echoes them to stdout).  A reader thread drains the pty into an
in-memory log and a log file, so a chatty process can never block on a full
pipe and the whole log stays available for assertions.

Every wait is bounded; :meth:`TestPmd.close` (quit -> SIGTERM -> SIGKILL of the
whole process group) is safe to call any number of times on every exit path.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
import tty
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence

from .process import kill_now, wait_or_escalate

PROMPT = "testpmd> "
# testpmd writes its prompt one character at a time (cmdline's rdline_puts),
# so log lines another thread prints (link and queue events, the PMD's
# control thread) can land between its characters: allow lines there, each
# ending in a newline but starting anywhere (a log line from another thread
# starts right after the prompt character before it, with no newline first).
PROMPT_RE = re.compile(b"(?:[^\n]*\n)*".join(re.escape(bytes([c]))
                                              for c in PROMPT.encode()))

DEFAULT_BINARY = os.environ.get("VHU_TESTPMD", "dpdk-testpmd")

# Common EAL arguments for every process of the suite.
BASE_EAL_ARGS = ["--no-pci", "--no-huge", "-m", "1024"]


# Where a primary reserves its memory's address space, which each secondary
# must map at the same address: above the 16 TiB of AddressSanitizer's shadow
# (which also holds EAL's default, 4 GiB) and below the shared libraries, so
# that no library or shadow of either process, randomised or not, is there.
SECONDARY_SAFE_BASE = "0x200000000000"


def hugepage_eal_args(huge_dir) -> List[str]:
    """BASE_EAL_ARGS of a primary that secondary processes attach to: its
    memory on the 2 MB pages of the hugetlbfs mount ``huge_dir``, since
    --no-huge memory is mapped by its own process only."""
    return ["--no-pci", f"--huge-dir={huge_dir}", f"--base-virtaddr={SECONDARY_SAFE_BASE}"]


# Lcore layouts: our side forwards on lcore 1 (main lcore 0), the peer side
# forwards on lcore 0 (main lcore 1), so the two busy-polling forwarding
# lcores never share a CPU.
OUR_LCORES = ["-l", "0,1"]
PEER_LCORES = ["-l", "0,1", "--main-lcore", "1"]

_prefix_counter = itertools.count()

# Every started TestPmd, so that nothing survives the Python process even if a
# test run is interrupted (Ctrl-C, internal error) before the fixtures' teardown.
_LIVE: "weakref.WeakSet[TestPmd]" = weakref.WeakSet()


@atexit.register
def _kill_leftovers():
    for tp in list(_LIVE):
        try:
            tp.kill()
        except Exception:  # noqa: BLE001
            pass


class TestPmdError(RuntimeError):
    """testpmd did something the harness did not expect (exited, hung...)."""

    __test__ = False  # not a pytest test class despite the name


def make_file_prefix(tag: str = "tp") -> str:
    """A --file-prefix unique to this Python process and call."""
    tag = re.sub(r"[^A-Za-z0-9]", "", tag)[:12] or "tp"
    return f"vhu{tag}{os.getpid()}n{next(_prefix_counter)}"


def eal_runtime_dir(file_prefix: str) -> Path:
    """Where EAL keeps the config/mp_socket of a --file-prefix (removed after exit)."""
    if os.geteuid() == 0:
        base = Path("/var/run/dpdk")
    else:
        base = Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / "dpdk"
    return base / file_prefix


def _kv(args: Dict[str, object]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items() if v is not None)


def vhost_vdev(index: int, iface, queues: int = 1, **extra) -> str:
    """``eth_vhost<index>,iface=<sock>,queues=<n>[,k=v...]`` (None values are dropped)."""
    args = {"iface": iface, "queues": queues}
    args.update(extra)
    return f"eth_vhost{index}," + _kv(args)


def virtio_user_vdev(index: int, path, queues: int = 1, mrg_rxbuf: Optional[int] = None,
                     in_order: Optional[int] = None, packed_vq: Optional[int] = None,
                     queue_size: Optional[int] = None, **extra) -> str:
    """``net_virtio_user<index>,path=<sock>,queues=<n>[,mrg_rxbuf=..]...``."""
    args = {"path": path, "queues": queues, "queue_size": queue_size,
            "mrg_rxbuf": mrg_rxbuf, "in_order": in_order, "packed_vq": packed_vq}
    args.update(extra)
    return f"net_virtio_user{index}," + _kv(args)


def pcap_vdev(index: int, rx_pcap=None, tx_pcap=None, **extra) -> str:
    """``net_pcap<index>[,rx_pcap=..][,tx_pcap=..]``."""
    args = {"rx_pcap": rx_pcap, "tx_pcap": tx_pcap}
    args.update(extra)
    body = _kv(args)
    return f"net_pcap{index}" + ("," + body if body else "")


# --------------------------------------------------------------------------
# output parsing

_STATS_BLOCK_RE = re.compile(
    r"#+ NIC statistics for port (\d+)\s+#+(.*?)#{20,}", re.S)
_STATS_FIELDS = {
    "ipackets": r"RX-packets:\s*(\d+)",
    "missed": r"RX-missed:\s*(\d+)",
    "ibytes": r"RX-bytes:\s*(\d+)",
    "ierrors": r"RX-errors:\s*(\d+)",
    "rx_nombuf": r"RX-nombuf:\s*(\d+)",
    "opackets": r"TX-packets:\s*(\d+)",
    "oerrors": r"TX-errors:\s*(\d+)",
    "obytes": r"TX-bytes:\s*(\d+)",
}


def parse_port_stats(text: str) -> Dict[int, Dict[str, int]]:
    """Parse every ``NIC statistics for port N`` block of ``show port stats``.

    Keys: ipackets, opackets, ibytes, obytes, ierrors, oerrors, missed,
    rx_nombuf, and ``errors`` (= ierrors + oerrors).
    """
    result: Dict[int, Dict[str, int]] = {}
    for m in _STATS_BLOCK_RE.finditer(text):
        port, body = int(m.group(1)), m.group(2)
        stats = {}
        for key, rx in _STATS_FIELDS.items():
            fm = re.search(rx, body)
            if fm is None:
                raise TestPmdError(f"cannot parse {key!r} in stats of port {port}:\n{body}")
            stats[key] = int(fm.group(1))
        stats["errors"] = stats["ierrors"] + stats["oerrors"]
        result[port] = stats
    return result


def parse_xstats(text: str) -> Dict[str, int]:
    """``show port xstats <port>``: name -> value."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^\s*(\w+):\s+(\d+)\s*$", text, re.M)}


@dataclass
class DumpedPacket:
    """One packet of testpmd's verbose dump (``set verbose 1``: received,
    2: sent too): its port and queue, length, the ptype testpmd computed
    (``sw ptype``) and the mbuf's offload flags by name."""
    port: int
    queue: int
    received: bool
    length: int
    sw_ptype: str
    ol_flags: FrozenSet[str]


_DUMP_BURST_RE = re.compile(r"port (\d+)/queue (\d+): (received|sent) \d+ packets$")
# A dump line may follow the interactive prompt on the same line: the
# prompt ends without a newline, and the forwarding lcore prints meanwhile.
_PROMPT_PREFIX = r"^(?:testpmd> )*"
_DUMP_PACKET_RE = re.compile(_PROMPT_PREFIX +
                             r"  src=.* - length=(\d+) - .*? - sw ptype: ([A-Z0-9_ ]*?) ?(?: - |$)")
_DUMP_FLAGS_RE = re.compile(_PROMPT_PREFIX + r"  ol_flags: ([A-Z0-9_ ]*)$")


def parse_verbose(text: str) -> List[DumpedPacket]:
    """Every packet testpmd's verbose mode dumped in ``text``, in order.
    Each belongs to the burst line before it; lines other threads print
    in between (command output) are skipped."""
    packets: List[DumpedPacket] = []
    burst, pending = None, None
    for line in text.splitlines():
        m = _DUMP_BURST_RE.search(line)
        if m:
            burst = (int(m.group(1)), int(m.group(2)), m.group(3) == "received")
            continue
        m = _DUMP_PACKET_RE.match(line)
        if m and burst is not None:
            pending = (int(m.group(1)), m.group(2).strip())
            continue
        m = _DUMP_FLAGS_RE.match(line)
        if m and pending is not None:
            packets.append(DumpedPacket(*burst, *pending, frozenset(m.group(1).split())))
            pending = None
    return packets


def parse_port_info(text: str) -> Dict[str, str]:
    """``show port info N`` as a dict of ``Key: value`` lines."""
    info = {}
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            if key and key not in info:
                info[key] = value.strip()
    return info


# --------------------------------------------------------------------------


class TestPmd:
    """One interactive dpdk-testpmd process.

    >>> tp = TestPmd("ours", eal_args=[...], vdevs=[...], app_args=["--no-flush-rx"])
    >>> tp.start()
    >>> tp.wait_link_up(0)
    >>> tp.start_forwarding()
    >>> tp.stats(0)["ipackets"]
    >>> tp.quit()
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, name: str, *, eal_args: Sequence[str] = (), vdevs: Iterable[str] = (),
                 app_args: Sequence[str] = (), lcores: Sequence[str] = OUR_LCORES,
                 file_prefix: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                 log_dir=None, binary: str = DEFAULT_BINARY, cmd_timeout: float = 30.0,
                 role: str = "other", base_eal_args: Sequence[str] = BASE_EAL_ARGS):
        self.name = name
        self.role = role
        self.file_prefix = file_prefix or make_file_prefix(name)
        self.vdevs = list(vdevs)
        self.binary = binary
        argv = [binary, *lcores, *base_eal_args, f"--file-prefix={self.file_prefix}"]
        argv += list(eal_args)
        for vdev in self.vdevs:
            argv += ["--vdev", vdev]
        argv += ["--", "-i", *app_args]
        self.argv = argv
        self.env_overrides = dict(env or {})
        self.cmd_timeout = cmd_timeout
        self.log_path = Path(log_dir) / f"{name}.log" if log_dir else None
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._reader: Optional[threading.Thread] = None
        self._eof = False
        self._master_fd: Optional[int] = None
        self._logfile = None
        self.checked = False  # set by post-mortem checks (sanitizers) in the fixtures

    # ---------------------------------------------------------------- process

    @property
    def command_line(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env_overrides.items())
        return (env + " " if env else "") + " ".join(shlex.quote(a) for a in self.argv)

    def start(self, timeout: float = 60.0, expect_prompt: bool = True) -> "TestPmd":
        """Spawn testpmd and wait for its first prompt.

        With ``expect_prompt=False`` the process may also exit before showing a
        prompt (used by negative tests); no exception is raised then.
        """
        if shutil.which(self.binary) is None and not os.path.exists(self.binary):
            raise TestPmdError(f"{self.binary} not found in PATH")
        env = os.environ.copy()
        env.update(self.env_overrides)
        master, slave = pty.openpty()
        tty.setraw(slave)  # no \n -> \r\n translation, no tty echo
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._logfile = open(self.log_path, "wb")
            self._logfile.write(f"$ {self.command_line}\n".encode())
            self._logfile.flush()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=slave,
                                         stderr=slave, env=env, start_new_session=True,
                                         close_fds=True)
        except OSError:
            os.close(master)
            if self._logfile:
                self._logfile.close()
            raise
        finally:
            os.close(slave)
        _LIVE.add(self)
        self._master_fd = master
        self._reader = threading.Thread(target=self._read_loop, name=f"testpmd-{self.name}",
                                        daemon=True)
        self._reader.start()
        found = self._wait_for_text(PROMPT, 0, timeout, allow_exit=not expect_prompt)
        if found < 0 and expect_prompt:
            raise TestPmdError(f"{self.name}: no prompt within {timeout}s")
        return self

    def _read_loop(self):
        fd = self._master_fd
        try:
            while True:
                try:
                    r, _, _ = select.select([fd], [], [], 0.5)
                except (OSError, ValueError):
                    break
                if not r:
                    if self.proc is not None and self.proc.poll() is not None:
                        # process gone and nothing left to read for 0.5 s (a
                        # leftover holder of the pty must not keep us here)
                        break
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not data:
                    break
                self._append(data)
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            if self._logfile:
                try:
                    self._logfile.close()
                except OSError:
                    pass
            try:
                os.close(fd)
            except OSError:
                pass

    def _append(self, data: bytes):
        with self._cond:
            self._buf += data
            if self._logfile:
                try:
                    self._logfile.write(data)
                    self._logfile.flush()
                except (OSError, ValueError):
                    pass
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log(self) -> str:
        """Full stdout+stderr so far (``\\r`` removed)."""
        with self._cond:
            data = bytes(self._buf)
        return data.decode("utf-8", "replace").replace("\r", "")

    def _log_len(self) -> int:
        with self._cond:
            return len(self._buf)

    def _wait_for_text(self, text: str, start: int, timeout: float, allow_exit: bool = False) -> int:
        """Wait until ``text`` (PROMPT: the prompt, even with other output
        inside it) appears in the raw log at or after ``start``.

        Returns the offset, or -1 if the process exited / EOF (only when
        ``allow_exit``) -- otherwise raises.
        """
        rx = PROMPT_RE if text == PROMPT else re.compile(re.escape(text.encode()))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf, start)
                if m:
                    return m.start()
                if self._eof:
                    if allow_exit:
                        return -1
                    raise TestPmdError(
                        f"{self.name}: process exited (rc={self._poll_rc()}) while waiting for "
                        f"{text!r}; log tail:\n{self.tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if allow_exit:
                        return -1
                    raise TestPmdError(
                        f"{self.name}: timeout ({timeout}s) waiting for {text!r}; log tail:\n"
                        f"{self.tail()}")
                self._cond.wait(min(remaining, 0.5))

    def _poll_rc(self):
        return self.proc.poll() if self.proc else None

    def tail(self, chars: int = 4000) -> str:
        with self._cond:
            data = bytes(self._buf[-chars:])
        return data.decode("utf-8", "replace").replace("\r", "")

    def wait_log(self, pattern, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Wait until regex ``pattern`` matches the log (from char offset ``start``)."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log, start)
            if m:
                return m
            if not self.alive and self._eof:
                raise TestPmdError(f"{self.name}: exited before {rx.pattern!r} appeared; "
                                   f"tail:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TestPmdError(f"{self.name}: {rx.pattern!r} not in log after {timeout}s; "
                                   f"tail:\n{self.tail()}")
            time.sleep(0.1)

    def wait_dumped(self, port: int, count: int, timeout: float = 60.0,
                    start: int = 0) -> List[DumpedPacket]:
        """Wait until verbose mode has dumped ``count`` packets received on
        ``port`` (log from char offset ``start``); returns them. Sends no
        command meanwhile: testpmd echoes a command character by character,
        into the middle of the lines the forwarding lcore prints."""
        deadline = time.monotonic() + timeout
        while True:
            got = [p for p in parse_verbose(self.log[start:]) if p.received and p.port == port]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TestPmdError(f"{self.name}: {len(got)} of {count} packets dumped after "
                                   f"{timeout}s; tail:\n{self.tail()}")
            time.sleep(0.1)

    # --------------------------------------------------------------- commands

    def cmd(self, command: str, timeout: Optional[float] = None) -> str:
        """Send one command line and return its output (up to the next prompt)."""
        if not self.alive:
            raise TestPmdError(f"{self.name}: cannot send {command!r}: process not running "
                               f"(rc={self._poll_rc()}); tail:\n{self.tail()}")
        timeout = self.cmd_timeout if timeout is None else timeout
        start = self._log_len()
        try:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise TestPmdError(f"{self.name}: writing {command!r} failed: {exc}") from exc
        idx = self._wait_for_text(PROMPT, start, timeout)
        with self._cond:
            out = bytes(self._buf[start:idx]).decode("utf-8", "replace").replace("\r", "")
        # drop the echoed command line
        first, sep, rest = out.partition("\n")
        if command.strip() and command.strip() in first:
            out = rest
        return out

    def stats_all(self) -> Dict[int, Dict[str, int]]:
        return parse_port_stats(self.cmd("show port stats all"))

    def stats(self, port: int) -> Dict[str, int]:
        # With verbose on, the forwarding lcore's dump lines can land inside
        # the command's output and break its block: ask again.
        for _ in range(3):
            parsed = parse_port_stats(self.cmd(f"show port stats {port}"))
            if port in parsed:
                return parsed[port]
        raise TestPmdError(f"{self.name}: no stats for port {port}")

    def xstats(self, port: int) -> Dict[str, int]:
        return parse_xstats(self.cmd(f"show port xstats {port}"))

    def port_info(self, port: int) -> Dict[str, str]:
        return parse_port_info(self.cmd(f"show port info {port}"))

    def link_up(self, port: int) -> bool:
        return self.port_info(port).get("Link status", "").lower() == "up"

    def wait_link_up(self, port: int, timeout: float = 30.0, interval: float = 0.2):
        """Poll ``show port info`` until ``Link status: up``."""
        self.wait_link(port, True, timeout, interval)

    def wait_link(self, port: int, up: bool, timeout: float = 30.0, interval: float = 0.2):
        """Poll ``show port info`` until the link of ``port`` is up (or down)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.link_up(port) == up:
                return
            if time.monotonic() > deadline:
                raise TestPmdError(f"{self.name}: link of port {port} not "
                                   f"{'up' if up else 'down'} after {timeout}s; "
                                   f"tail:\n{self.tail()}")
            time.sleep(interval)

    def wait_stat(self, port: int, key: str, value: int, timeout: float = 60.0,
                  settle: float = 0.3, stall: Optional[float] = None,
                  raise_on_timeout: bool = True) -> Dict[str, int]:
        """Wait until ``stats(port)[key] >= value``; then wait ``settle`` seconds
        and return fresh stats (so callers can assert exact equality and catch
        duplicates).

        ``stall``: give up early if the counter has not moved for that many
        seconds.  With ``raise_on_timeout=False`` a timeout/stall returns the
        last stats instead of raising (the caller's comparison of what arrived
        then gives the more precise failure message).
        """
        deadline = time.monotonic() + timeout
        last = self.stats(port)
        moved_at, prev = time.monotonic(), last[key]
        while last[key] < value:
            now = time.monotonic()
            if last[key] != prev:
                moved_at, prev = now, last[key]
            why = None
            if now > deadline:
                why = f"after {timeout}s"
            elif stall is not None and now - moved_at > stall:
                why = f"stalled for {stall}s"
            if why:
                msg = f"{self.name}: port {port} {key}={last[key]} < {value} {why}; stats={last}"
                self._append(f"\n[harness] {msg}\n".encode())
                if raise_on_timeout:
                    raise TestPmdError(msg)
                return last
            time.sleep(0.2)
            last = self.stats(port)
        if settle:
            time.sleep(settle)
            last = self.stats(port)
        return last

    def wait_quiescent(self, port: int, key: str, quiet: float = 1.0, timeout: float = 60.0):
        """Wait until ``stats(port)[key]`` stops changing for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        prev = self.stats(port)[key]
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            cur = self.stats(port)[key]
            if cur != prev:
                prev, since = cur, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return cur
        raise TestPmdError(f"{self.name}: port {port} {key} still changing after {timeout}s")

    def enable_tx_retry(self, delay_us: int = 10, retries: int = 200000, mode: str = "io"):
        """Use ``<mode> retry`` forwarding so a full Tx ring stalls instead of dropping."""
        self.cmd(f"set fwd {mode} retry")
        self.cmd(f"set burst tx delay {delay_us} retry {retries}")

    def start_forwarding(self):
        out = self.cmd("start")
        if "Packet forwarding already started" not in out and "forwarding" not in out.lower():
            raise TestPmdError(f"{self.name}: unexpected output of start:\n{out}")
        return out

    def stop_forwarding(self):
        return self.cmd("stop", timeout=60)

    # --------------------------------------------------------------- shutdown

    def request_exit(self):
        """Ask the running process to exit cleanly: testpmd's ``quit``."""
        try:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def quit(self, timeout: float = 60.0) -> Optional[int]:
        """``quit`` and wait for exit; escalate to SIGTERM/SIGKILL.  Returns rc."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.request_exit()
            wait_or_escalate(self.proc, timeout, self._signal_group,
                             lambda msg: self._append(f"\n[harness] {msg}\n".encode()))
        self._finish()
        return self.returncode

    def kill(self):
        """Immediate SIGKILL of the process group (no cleanup in testpmd)."""
        if self.proc is None:
            return
        kill_now(self.proc, self._signal_group)
        self._finish()

    def wait_exit(self, timeout: float = 30.0) -> Optional[int]:
        """Wait for the process to exit by itself (negative tests)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._finish()
        return self.returncode

    def close(self, quit_timeout: float = 20.0):
        """Make sure the process is gone (quit, then SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.quit(quit_timeout)
            except Exception:  # noqa: BLE001 - last resort on teardown
                self.kill()
        self._finish()

    def _signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _finish(self):
        self.returncode = self.proc.poll()
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(5)
        # If anything of the group survived (should not), kill it.
        try:
            os.killpg(self.proc.pid, 0)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.returncode is not None:
            shutil.rmtree(eal_runtime_dir(self.file_prefix), ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"<TestPmd {self.name} pid={self.proc.pid if self.proc else None}>"
