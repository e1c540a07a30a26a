"""What the live-migration tests share (tests/test_qemu_migration*.py): the
destination QEMU, the check that the guest arrived there, and what each
back end logged (negotiated features; DPDK's net_vhost also the ring bases).

>>> dst = start_destination(src, workdir / "dst", sock)   # paused in "inmigrate"
>>> info = src.migrate(dst.incoming)                      # query-migrate "completed"
>>> wait_arrived(dst)                                     # the guest runs there
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Dict, List, Sequence

from .vm import Vm, VmError

F_LOG_ALL = 26
F_GUEST_ANNOUNCE = 21
# migrate-set-parameters max-bandwidth: QEMU's default (32 MiB/s) only
# stretches the migration; the CPU is the limit here
MAX_BANDWIDTH = 1 << 30
# Guest RAM this much beyond a whole number of MiB (Vm mem_extra_kb) when
# the guest migrates under TCG. QEMU 7.2 syncs a RAM block's migration dirty
# bitmap 64 pages at a time when its size is a multiple of 256 KiB, and that
# path clears dirty bits without bringing the vCPU's TLB up to date: a page
# the vCPU had written before keeps a TLB entry that bypasses dirty
# tracking, so its later guest-CPU writes are never resent (fixed in QEMU
# 9.0, "physmem: Fix migration dirty bitmap coherency with TCG memory
# access"). With 8 KiB more the block takes the page-by-page path, which
# resets the TLB entries of every page it cleans (docs/design.md, "Dirty
# logging and live migration").
TCG_SAFE_EXTRA_KB = 8
# QEMU's virtio_load() when the destination's back end did not offer a
# feature the guest negotiated on the source: the migration is refused.
FEATURES_REFUSED_RE = re.compile(r"Features 0x([0-9a-f]+) unsupported\. "
                                 r"Allowed features: 0x([0-9a-f]+)")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_destination(src: Vm, workdir: Path, sock: str, extra_args: Sequence[str] = ()) -> Vm:
    """The destination QEMU of ``src``'s migration: the same guest on
    vhost-user socket ``sock``, in ``workdir`` (its QMP socket and serial
    log), listening on a free local TCP port (``dst.incoming``).  Returns
    once it answers QMP in state ``inmigrate``."""
    workdir.mkdir(exist_ok=True)
    dst = src.destination(workdir, sock, f"tcp:127.0.0.1:{free_tcp_port()}", extra_args)
    dst.start(wait_ready=False)
    dst.wait_incoming()
    return dst


def refused_features(log: str) -> List[str]:
    """What QEMU's ``Features 0x... unsupported`` errors in ``log`` name: the
    negotiated features the back end did not offer, one hex mask per error."""
    return [hex(int(guest, 16) & ~int(allowed, 16))
            for guest, allowed in FEATURES_REFUSED_RE.findall(log)]


def wait_arrived(dst: Vm, timeout: float = 60.0):
    """Wait until the destination of a completed migration runs the guest.
    The source reports "completed" once it sent everything; the destination
    may still refuse the state it loads (and exit): that is reported with
    the features QEMU found missing."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = dst.qmp("query-status")["status"]
        except (VmError, OSError) as exc:
            raise AssertionError(
                f"destination QEMU gone after the migration ({exc}); features refused: "
                f"{refused_features(dst.log)}; serial tail:\n{dst.tail()}") from exc
        if status == "running":
            return
        assert status == "inmigrate", f"destination in state {status!r}:\n{dst.tail()}"
        assert time.monotonic() < deadline, f"destination still inmigrate after {timeout}s"
        time.sleep(0.1)


def negotiated(log: str, port: int) -> List[int]:
    """Feature words our PMD logged as negotiated on eth_vhost<port>, in order."""
    return [int(f, 16) for f in
            re.findall(rf"eth_vhost{port}: features 0x([0-9a-f]+) negotiated", log)]


def _netvhost_lines(log: str, sock: str, rest: str):
    """The groups of regex ``rest`` in net_vhost's lines about socket ``sock``
    (which may start after a prompt: not anchored at the line's start)."""
    return re.findall(rf"VHOST_CONFIG: \({re.escape(str(sock))}\) {rest}", log, re.M)


def netvhost_negotiated(log: str, sock: str) -> List[int]:
    """Feature words DPDK's net_vhost logged as negotiated on socket ``sock``, in order."""
    return [int(f, 16) for f in
            _netvhost_lines(log, sock, r"negotiated Virtio features: 0x([0-9a-f]+)$")]


def netvhost_bases_given(log: str, sock: str) -> Dict[int, int]:
    """Ring -> the base net_vhost last answered GET_VRING_BASE with on ``sock``
    (a split ring's next available index: what the source hands over)."""
    return {int(ring): int(num) for ring, num in
            _netvhost_lines(log, sock, r"vring base idx:(\d+) file:(\d+)$")}


def netvhost_bases_taken(log: str, sock: str) -> Dict[int, int]:
    """Ring -> the base net_vhost last took from SET_VRING_BASE on ``sock``."""
    return {int(ring): int(avail) for ring, avail in
            _netvhost_lines(log, sock, r"vring base idx:(\d+) last_used_idx:\d+ "
                                       r"last_avail_idx:(\d+)\.$")}
