"""pytest fixtures for the eth_vhost end-to-end suite (see README.md)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from harness import Launcher, PmdSelection
from harness import sanitizers

DEFAULT_TEST_TIMEOUT = 240  # seconds, per test (override: @pytest.mark.timeout(N))


def pytest_configure(config):
    # also in pytest.ini; repeated here for runs that do not pick that file up
    config.addinivalue_line("markers", "slow: takes tens of seconds (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "ours_only: needs OUR PMD; skipped when VHU_PMD=distro")
    config.addinivalue_line("markers", "qemu: boots QEMU guests (TCG) on our ports "
                            "(deselect with -m 'not qemu')")
    config.addinivalue_line("markers", "timeout(seconds): wall-clock limit of one test "
                            f"(default {DEFAULT_TEST_TIMEOUT}s, env VHU_TEST_TIMEOUT)")


def pytest_report_header(config):
    sel = PmdSelection.from_env()
    lines = [f"vhost PMD under test: {sel.describe()}"]
    if sanitizers.asan_requested():
        lines.append("VHU_ASAN=1: our side runs with LD_PRELOAD of the ASan runtime")
    if sanitizers.tsan_requested():
        lines.append("VHU_TSAN=1: our side runs with LD_PRELOAD of the TSan runtime")
    prob = sel.problem()
    if prob:
        lines.append(f"WARNING: {prob}")
    return lines


def pytest_runtest_setup(item):
    if item.get_closest_marker("ours_only") and PmdSelection.from_env().is_distro:
        pytest.skip("checks behaviour of OUR PMD only (VHU_PMD=distro selects net_vhost)")


@pytest.fixture(scope="session")
def pmd() -> PmdSelection:
    """The PMD serving our side; fails (does not skip) if our .so is missing."""
    sel = PmdSelection.from_env()
    prob = sel.problem()
    if prob:
        pytest.fail(prob, pytrace=False)
    if sanitizers.asan_requested():
        try:
            sanitizers.asan_runtime()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
    if sanitizers.tsan_requested():
        if sanitizers.asan_requested():
            pytest.fail("VHU_TSAN=1 and VHU_ASAN=1 cannot be combined", pytrace=False)
        try:
            sanitizers.tsan_runtime()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        if sel.is_distro or not sanitizers.tsan_instrumented(sel.so_path):
            pytest.fail(f"VHU_TSAN=1 but {sel.describe()} is not built with -fsanitize=thread: "
                        f"point VHU_PMD at build-tsan/drivers/net/vhost/librte_net_vhu.so "
                        f"(meson setup build-tsan -Db_sanitize=thread -Db_lundef=false)",
                        pytrace=False)
    return sel


class _TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Bound every test in wall-clock time with SIGALRM (no plugin needed).

    The launcher's teardown disarms it before stopping processes, and every
    stop is itself bounded (quit -> SIGTERM -> SIGKILL)."""
    marker = request.node.get_closest_marker("timeout")
    limit = int(marker.args[0]) if marker else int(os.environ.get("VHU_TEST_TIMEOUT",
                                                                  DEFAULT_TEST_TIMEOUT))

    def on_alarm(signum, frame):
        raise _TestTimeout(f"test exceeded its time limit of {limit}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    launcher = getattr(item, "_vhu_launcher", None)
    if rep.failed and launcher is not None:
        rep.sections.append(("vhu work dir (kept)", str(launcher.workdir)))
        for tp in launcher.instances:
            log = tp.log
            if len(log) > 200_000:
                log = f"[... {len(log) - 200_000} chars cut; full log in {tp.log_path}]\n" + \
                      log[-200_000:]
            rep.sections.append((f"testpmd {tp.name} (rc={tp.returncode}) "
                                 f"$ {tp.command_line}", log))


@pytest.fixture
def workdir(request):
    """A short per-test directory under /tmp (AF_UNIX paths are limited to 107
    bytes, pytest's tmp_path can be longer).  Kept when the test fails."""
    path = Path(tempfile.mkdtemp(prefix="vhu-", dir=os.environ.get("VHU_TMPDIR", "/tmp")))
    yield path
    failed = any(getattr(request.node, f"rep_{w}", None) is not None and
                 getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    if not failed and not os.environ.get("VHU_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def launcher(request, pmd, workdir):
    """Starts testpmds for the test; stops all of them at teardown, and under
    VHU_ASAN=1 or VHU_TSAN=1 fails the test if an unchecked our-side process
    has findings."""
    lau = Launcher(workdir, pmd, asan=sanitizers.asan_requested())
    request.node._vhu_launcher = lau
    yield lau
    signal.alarm(0)  # teardown is bounded by itself; never interrupt it half-way
    problems = lau.close_all()
    if problems:
        pytest.fail("after the test:\n" + "\n".join(problems), pytrace=False)


# ------------------------------------------------------------- QEMU guests
# Used by tests/test_qemu_*.py only: the qemu package is imported when one of
# these fixtures runs, so runs without QEMU tests never load it.

@pytest.fixture(scope="session")
def guest_assets():
    """Kernel, busybox and ethtool for the guests (tests/qemu/assets.py);
    fails, saying why, if they cannot be had."""
    from qemu.assets import AssetError, ensure_assets
    try:
        return ensure_assets()
    except AssetError as exc:
        pytest.fail(f"QEMU guest assets unavailable: {exc}\n(scripts/setup.sh installs and "
                    f"caches them; -m 'not qemu' deselects these tests)", pytrace=False)


@pytest.fixture
def rig(request, launcher, guest_assets):
    """Our testpmd with guests A and B on eth_vhost0 and eth_vhost1
    (tests/qemu/rig.py), not started yet; the guests' serial consoles go
    into the report of a failed test."""
    from qemu.rig import Rig, close_reporting_consoles
    r = Rig(launcher, guest_assets)
    yield r
    close_reporting_consoles(request, r)


@pytest.fixture
def guests(request, workdir, guest_assets):
    """Guests A and B (tests/qemu/rig.py, Guests) for a test whose back end
    is not our testpmd; their consoles go into the report of a failed test."""
    from qemu.rig import Guests, close_reporting_consoles
    g = Guests(workdir, guest_assets)
    yield g
    close_reporting_consoles(request, g)
