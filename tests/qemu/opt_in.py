"""The QEMU cases the default run leaves out, for CI's time budget: each is
a longer form of a default case, or covers code a default case or a
virtio-user test also runs. ``VHU_QEMU_ALL=1`` runs them all."""

from __future__ import annotations

import os
from typing import Collection, Iterable, List

import pytest

RUN_ALL = os.environ.get("VHU_QEMU_ALL") == "1"
OPT_IN = pytest.mark.skipif(not RUN_ALL, reason="VHU_QEMU_ALL=1 runs it")


def opt_in_unless_all(values: Iterable, opt_in: Collection) -> List:
    """``values`` for parametrize, those in ``opt_in`` skipped unless VHU_QEMU_ALL=1."""
    return [pytest.param(v, marks=OPT_IN) if v in opt_in else v for v in values]
