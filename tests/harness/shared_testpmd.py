"""One testpmd shared by a module's tests (the hostile catalogue, the vIOMMU
tests): the fixtures that give it to each test and judge it at the end."""

from __future__ import annotations

import signal
from typing import Callable

import pytest


def shared_testpmd_fixtures(make_bench: Callable, what: str):
    """Returns the fixtures ``bench`` (module scope: ``make_bench(pmd)``,
    whose ``close()`` returns the problems found in its post-mortem, which
    fail the module) and ``_show_our_log_on_failure`` (autouse: a failing
    test's report gets the bench's logs), to assign to module globals of
    those names."""

    @pytest.fixture(scope="module")
    def bench(pmd):
        b = make_bench(pmd)
        yield b
        signal.alarm(0)  # the post-mortem is bounded by itself; never cut it short
        problems = b.close()
        if problems:
            pytest.fail(f"our testpmd after {what} (logs in {b.workdir}):\n" +
                        "\n".join(problems), pytrace=False)

    @pytest.fixture(autouse=True)
    def _show_our_log_on_failure(request, bench):
        # conftest's report hook attaches the logs of this launcher to a failure.
        request.node._vhu_launcher = bench.launcher

    return bench, _show_our_log_on_failure
