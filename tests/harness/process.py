"""Stopping a child process group the same way everywhere in the harness."""

from __future__ import annotations

import signal
import subprocess
from typing import Callable


def wait_or_escalate(proc: subprocess.Popen, timeout: float, send: Callable[[int], None],
                     note: Callable[[str], None]):
    """After a polite request to exit: wait ``timeout`` seconds, then SIGTERM
    and 10 s more, then SIGKILL (``send(sig)`` signals the group; ``note``
    records each escalation in the process's log)."""
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    note(f"quit timed out after {timeout}s; SIGTERM")
    send(signal.SIGTERM)
    try:
        proc.wait(10)
        return
    except subprocess.TimeoutExpired:
        pass
    note("SIGTERM ignored; SIGKILL")
    send(signal.SIGKILL)
    proc.wait(10)


def kill_now(proc: subprocess.Popen, send: Callable[[int], None]):
    """SIGKILL the group (a crash, as far as its peers can tell) and reap it."""
    if proc.poll() is None:
        send(signal.SIGKILL)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
