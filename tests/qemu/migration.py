"""What the live-migration tests share (tests/test_qemu_migration*.py): the
destination QEMU and the features our PMD logged as negotiated.

>>> dst = start_destination(src, workdir / "dst", sock)   # paused in "inmigrate"
>>> info = src.migrate(dst.incoming)                      # query-migrate "completed"
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import List, Sequence

from .vm import Vm

F_LOG_ALL = 26
F_GUEST_ANNOUNCE = 21
# migrate-set-parameters max-bandwidth: QEMU's default (32 MiB/s) only
# stretches the migration; the CPU is the limit here
MAX_BANDWIDTH = 1 << 30


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


def negotiated(log: str, port: int) -> List[int]:
    """Feature words our PMD logged as negotiated on eth_vhost<port>, in order."""
    return [int(f, 16) for f in
            re.findall(rf"eth_vhost{port}: features 0x([0-9a-f]+) negotiated", log)]
