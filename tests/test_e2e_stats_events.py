"""Extended statistics against known traffic, stats reset, and the events
an application sees through rte_eth_vhost.h (examples/vhost_events)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import make_frame, read_pcap, total_bytes, write_pcap
from harness.flows import PCAP_PORT, VHOST_PORT
from harness.pmd import REPO_ROOT
from harness.sanitizers import asan_requested, tsan_env, tsan_problems, tsan_requested
from harness.testpmd import (BASE_EAL_ARGS, OUR_LCORES, make_file_prefix, pcap_vdev,
                             vhost_vdev, virtio_user_vdev)

pytestmark = pytest.mark.ours_only

# One length in each size class of the xstats (pkt_len, no CRC).
CLASS_OF_LENGTH = {60: "undersize", 64: "size_64", 65: "size_65_127", 127: "size_65_127",
                   128: "size_128_255", 300: "size_256_511", 511: "size_256_511",
                   512: "size_512_1023", 1023: "size_512_1023", 1024: "size_1024_1518",
                   1514: "size_1024_1518"}
BROADCAST = bytes.fromhex("ffffffffffff")
MULTICAST = bytes.fromhex("01005e000001")


def classified_frames(seed: int, count: int):
    """Frames of every size class, some broadcast, some multicast."""
    rng = random.Random(seed)
    lengths = sorted(CLASS_OF_LENGTH)
    frames = []
    for i in range(count):
        frame = make_frame(rng, lengths[i % len(lengths)], index=i, tag=seed & 0xff)
        dst = BROADCAST if i % 7 == 0 else MULTICAST if i % 7 == 1 else frame[:6]
        frames.append(dst + frame[6:])
    return frames


def expected_xstats(prefix: str, frames):
    want = {f"{prefix}_good_packets": len(frames), f"{prefix}_good_bytes": total_bytes(frames),
            f"{prefix}_broadcast_packets": sum(f[:6] == BROADCAST for f in frames),
            f"{prefix}_multicast_packets": sum(f[:6] == MULTICAST for f in frames)}
    for cls in set(CLASS_OF_LENGTH.values()):
        want[f"{prefix}_{cls}_packets"] = sum(CLASS_OF_LENGTH[len(f)] == cls for f in frames)
    want[f"{prefix}_size_1519_max_packets"] = 0
    return want


def test_xstats_match_traffic_and_reset(launcher):
    sock = launcher.path("vh0.sock")
    to_host, to_guest = classified_frames(31, 330), classified_frames(32, 220)
    p = {k: launcher.path(f"{k}.pcap") for k in ("ours_in", "ours_out", "peer_in", "peer_out")}
    write_pcap(p["ours_in"], to_guest)
    write_pcap(p["peer_in"], to_host)
    ours = launcher.ours([vhost_vdev(0, sock),
                          pcap_vdev(0, rx_pcap=p["ours_in"], tx_pcap=p["ours_out"])])
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=1),
                          pcap_vdev(0, rx_pcap=p["peer_in"], tx_pcap=p["peer_out"])])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    for tp in (ours, peer):
        tp.enable_tx_retry()
        tp.start_forwarding()
    ours.wait_stat(PCAP_PORT, "opackets", len(to_host), timeout=60, stall=10)
    peer.wait_stat(PCAP_PORT, "opackets", len(to_guest), timeout=60, stall=10)
    for tp in (ours, peer):
        tp.stop_forwarding()
    got = ours.xstats(VHOST_PORT)
    want = expected_xstats("rx_q0", to_host)
    want.update(expected_xstats("tx_q0", to_guest))
    want.update({"rx_q0_malformed_chains": 0, "rx_q0_dropped_packets": 0,
                 "tx_q0_dropped_packets": 0})
    assert {k: got.get(k) for k in want} == want
    # virtio-user polls and turns interrupts off: every publish decided not to call
    assert got["tx_q0_guest_notifications"] == 0, got
    assert got["tx_q0_guest_notifications_suppressed"] > 0, got

    ours.cmd(f"clear port xstats {VHOST_PORT}")
    cleared = ours.xstats(VHOST_PORT)
    assert all(v == 0 for k, v in cleared.items() if re.match(r"(rx|tx)_q0_", k)), cleared
    ours.cmd(f"clear port stats {VHOST_PORT}")
    st = ours.stats(VHOST_PORT)
    assert (st["ipackets"], st["opackets"], st["ibytes"], st["obytes"]) == (0, 0, 0, 0), st

    # counting goes on from zero
    ours.cmd("set fwd rxonly")
    ours.start_forwarding()
    peer.cmd("set fwd txonly")
    peer.start_forwarding()
    ours.wait_stat(VHOST_PORT, "ipackets", 1000, timeout=60)
    peer.stop_forwarding()
    ours.stop_forwarding()
    after = ours.xstats(VHOST_PORT)
    assert after["rx_q0_good_packets"] == ours.stats(VHOST_PORT)["ipackets"] > 0, after
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    # the classified frames themselves crossed intact (txonly wrote more after them)
    assert read_pcap(p["ours_out"]) == to_host
    assert read_pcap(p["peer_out"])[:len(to_guest)] == to_guest


class EventsApp:
    """examples/vhost_events (vhu-events), linked with our PMD, its output read live."""

    def __init__(self, workdir: Path, vdev: str, seconds: int, case: tuple = ()):
        build = "build-tsan" if tsan_requested() else "build-asan" if asan_requested() else "build"
        binary = REPO_ROOT / build / "examples/vhost_events/vhu-events"
        if not binary.exists():
            pytest.fail(f"{binary} not built (scripts/setup.sh builds it)")
        argv = [str(binary), *OUR_LCORES, *BASE_EAL_ARGS,
                f"--file-prefix={make_file_prefix('events')}", "--vdev", vdev, "--",
                str(seconds), *case]
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        # under VHU_TSAN=1 the executable itself is instrumented (libtsan is
        # its first DT_NEEDED): only the options, reports in vhu-events.tsan.<pid>
        self.tsan_prefix = workdir / "vhu-events.tsan" if tsan_requested() else None
        if self.tsan_prefix:
            env.update(tsan_env(self.tsan_prefix, preload=False))
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self._log = open(workdir / "vhu-events.log", "w")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, pattern: str, after: int = 0, timeout: float = 30.0) -> int:
        """Index of the first line from @after matching @pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self.lines)):
                    if rx.search(self.lines[i]):
                        return i
                left = deadline - time.monotonic()
                rc = self.proc.poll()
                # a crash is not a hang: say which it was
                why = f"vhu-events exited with {rc}" if rc is not None else \
                      f"none within {timeout} s, vhu-events still running"
                assert left > 0 and rc is None, \
                    f"no /{pattern}/ in vhu-events output ({why}):\n" + "\n".join(self.lines[-30:])
                self._cond.wait(min(left, 0.5))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        rc = self.proc.wait(30)
        self._log.close()
        return rc

    def assert_clean_exit(self, rc):
        """Exit status 0 and, under VHU_TSAN=1, no ThreadSanitizer report."""
        problems = tsan_problems(self.tsan_prefix, "\n".join(self.lines)) \
            if self.tsan_prefix else []
        assert rc == 0 and not problems, \
            f"vhu-events exited with {rc}\n" + "\n".join(problems)


def test_link_and_queue_events_through_public_api(launcher, workdir):
    """An application using rte_eth_vhost.h sees link up with a session id,
    every ring enabled, link down and the rings disabled when the front end
    goes, and a new session id for the next front end."""
    sock = launcher.path("vh0.sock")
    app = EventsApp(workdir, vhost_vdev(0, sock, queues=2), seconds=120)
    try:
        # as net_vhost: nothing is held after a transmit burst, nothing to clean up
        app.wait_line(r"^port 0: tx_done_cleanup 0$")
        app.wait_line(r"^ready: 1 port")
        vids = []
        mark = 0
        for n in range(2):
            peer = launcher.peer([virtio_user_vdev(0, sock, queues=2)],
                                 app_args=["--rxq=2", "--txq=2"], name=f"peer{n}")
            up = app.wait_line(r"^port 0: link up \(vid (\d+)\)", after=mark)
            vids.append(re.search(r"vid (\d+)", app.lines[up]).group(1))
            for q in (0, 1):
                for side in ("rx", "tx"):
                    app.wait_line(rf"^port 0: {side} queue {q} enabled", after=mark)
            peer.cmd("set fwd txonly")
            peer.start_forwarding()
            time.sleep(1)
            peer.stop_forwarding()
            peer.quit()
            down = app.wait_line(r"^port 0: link down", after=up)
            app.wait_line(r"^port 0: (rx|tx) queue 0 disabled", after=up)
            mark = down + 1
        assert vids[0] != vids[1], vids
    finally:
        rc = app.close()
    app.assert_clean_exit(rc)
    done = app.wait_line(r"^port 0: received (\d+) sent (\d+)")
    assert int(re.search(r"received (\d+)", app.lines[done]).group(1)) > 0


# A control thread or lcore touching what the close freed shows as a
# sanitizer report (ASan build) or as the control thread failing on the
# epoll fd it closed under itself.
LIFECYCLE_FAILURE_RE = re.compile(r"AddressSanitizer|runtime error|epoll_wait|Segmentation")


def test_close_from_link_down_callback(launcher, workdir):
    """An application may close its port from the LSC callback that reports
    the front end gone (the callback runs inside our handling of the
    disconnect): the port closes, its socket goes, the application runs on
    and exits cleanly."""
    sock = launcher.path("vh0.sock")
    app = EventsApp(workdir, vhost_vdev(0, sock), seconds=20, case=("close-on-down",))
    try:
        app.wait_line(r"^ready: 1 port")
        peer = launcher.peer([virtio_user_vdev(0, sock)])
        up = app.wait_line(r"^port 0: link up")
        peer.cmd("set fwd txonly")
        peer.start_forwarding()
        time.sleep(1)
        peer.stop_forwarding()
        peer.quit()
        closed = app.wait_line(r"^port 0: closed from its link-down callback", after=up)
        received = app.wait_line(r"^port 0: received (\d+)", after=up)
        assert int(re.search(r"received (\d+)", app.lines[received]).group(1)) > 0
        # nothing of the port is left: its socket is gone, no front end can connect
        deadline = time.monotonic() + 10
        while os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(sock), "the closed port's socket is still there"
        time.sleep(1)
        assert app.proc.poll() is None, "vhu-events died after closing its port:\n" + \
            "\n".join(app.lines[closed:])
    finally:
        rc = app.close()
    app.assert_clean_exit(rc)
    bad = [l for l in app.lines if LIFECYCLE_FAILURE_RE.search(l)]
    assert not bad, bad


def test_hot_unplug_while_polled(launcher, workdir):
    """rte_dev_remove() of a started port that a worker lcore polls, as
    ethdev allows it: the worker pauses for the removal (no burst may run
    while the port is stopped and released: ethdev zeroes its burst
    functions and queue arrays before pointing them at its stand-ins), then
    polls on. The port is stopped through ethdev before it is closed, and
    its socket goes with it."""
    sock = launcher.path("vh0.sock")
    app = EventsApp(workdir, vhost_vdev(0, sock), seconds=20, case=("unplug-after", "2000"))
    try:
        app.wait_line(r"^ready: 1 port")
        peer = launcher.peer([virtio_user_vdev(0, sock)])
        app.wait_line(r"^port 0: link up")
        peer.cmd("set fwd txonly")
        peer.start_forwarding()
        removed = app.wait_line(r"^port 0: removed while polled")
        assert app.lines[removed].endswith("(ok)"), app.lines[removed]
        peer.stop_forwarding()
        peer.quit()
    finally:
        rc = app.close()
    app.assert_clean_exit(rc)
    assert not os.path.exists(sock), "the removed port's socket is still there"
    bad = [l for l in app.lines if LIFECYCLE_FAILURE_RE.search(l)]
    assert not bad, bad
