"""Soak: PVP through our testpmd while both front ends churn; our process's
resources sampled at intervals must stay flat.

    front end V (Python) -- eth_vhost0 <=io=> eth_vhost1 -- virtio-user G (testpmd, io loop)

Every frame V sends crosses our testpmd to G, which sends it straight back
(io forwarding on its one port, ``--port-topology=loop``), and crosses our
testpmd again to V: each round's frames must come back to V byte-exact, in
order. Between rounds one churn action, in turn:
  - V disconnects and a new V connects (new memory, new rings);
  - V replaces its memory table under running rings (SET_MEM_TABLE again);
  - G is killed (SIGKILL) and restarted with 1 of our port's 2 queue pairs;
  - G quits and comes back with 2;
  - our testpmd stops and starts both ports.
At each sampling point (after a whole turn of actions, with nothing in
flight) our testpmd's open fds, threads, DPDK heap (bytes and blocks
allocated), mbufs in use and resident memory (private, i.e. outside DPDK's
shared memory and code, and in all) are recorded; the last sample must equal
the first (private resident memory: within 1 MiB; the total is reported).

Default: 2 minutes (the CI form). VHU_SOAK_SECONDS=3600 for the hour
(docs/reliability.md has its figures); VHU_SOAK_SAMPLE_SECONDS sets the
sampling interval (default: 60, or 20 in runs shorter than 10 minutes).
"""

from __future__ import annotations

import os
import re
import time

import pytest

from harness import gen_frames
from harness.ovs import dpdk_telemetry
from harness.testpmd import vhost_vdev, virtio_user_vdev
from harness.vhost_user_client import FrontEnd, Req, pack_mem_table

SECONDS = int(os.environ.get("VHU_SOAK_SECONDS", "120"))
SAMPLE_SECONDS = int(os.environ.get("VHU_SOAK_SAMPLE_SECONDS",
                                    "60" if SECONDS >= 600 else "20"))
FRAMES_PER_ROUND = 200          # fewer than V's 256 RX buffers: none dropped
RSS_GROWTH_LIMIT_KIB = 1024

pytestmark = [pytest.mark.ours_only, pytest.mark.slow, pytest.mark.timeout(SECONDS + 300)]


def private_rss_kib(pid: int) -> int:
    """Resident anonymous memory of ``pid`` in kilobytes: what malloc and
    private mappings hold. DPDK's memory (a shared memfd with --no-huge, its
    pages touched one by one as mempools cycle) and file pages (code) are
    not in it."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return int(re.search(r"^Anonymous:\s+(\d+) kB", f.read(), re.M).group(1))


def total_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def mbufs_in_use(tp) -> int:
    """mbufs taken from testpmd's pools: each pool's size less what its
    ring and its lcore caches hold (dump_mempool; DPDK 22.11 prints no
    in-use count of its own)."""
    out = tp.cmd("dump_mempool")
    pools = re.findall(r"mempool <[^>]+>@[\s\S]*?\n  size=(\d+)[\s\S]*?"
                       r"total_cache_count=(\d+)\n  common_pool_count=(\d+)", out)
    assert pools, f"dump_mempool printed no pool:\n{out}"
    return sum(int(size) - int(cached) - int(common) for size, cached, common in pools)


def sample(tp) -> dict:
    pid = tp.proc.pid
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    # last: DPDK's telemetry serves each client on a thread (and fd) of its
    # own, which ends a moment after the client has gone
    heap = dpdk_telemetry(tp.file_prefix, "/eal/heap_info,0")
    return {
        "fds": fds,
        "threads": threads,
        "heap_alloc_bytes": heap["Alloc_size"],
        "heap_alloc_count": heap["Alloc_count"],
        "mbufs_in_use": mbufs_in_use(tp),
        "private_rss_kib": private_rss_kib(pid),
        "total_rss_kib": total_rss_kib(pid),
    }


class Pvp:
    """Our testpmd, V and G, and the churn actions."""

    def __init__(self, launcher):
        self.launcher = launcher
        self.socks = [launcher.path("vhV.sock"), launcher.path("vhG.sock")]
        self.ours = launcher.ours([vhost_vdev(0, self.socks[0], queues=2),
                                   vhost_vdev(1, self.socks[1], queues=2)],
                                  # locked and filled at start: what grows later is ours
                                  app_args=["--rxq=2", "--txq=2", "--mlockall"])
        self.ours.enable_tx_retry()
        self.ours.start_forwarding()
        self.g_queues = 2
        self.g = None
        self.v = None
        self.round = 0
        self.start_g()
        self.connect_v()

    def start_g(self):
        q = self.g_queues
        self.g = self.launcher.peer([virtio_user_vdev(0, self.socks[1], queues=q)],
                                    app_args=[f"--rxq={q}", f"--txq={q}",
                                              "--port-topology=loop"],
                                    name=f"g{self.round}")
        self.g.wait_link_up(0)
        self.g.enable_tx_retry()
        self.g.start_forwarding()
        self.ours.wait_link_up(1)

    def connect_v(self):
        self.v = FrontEnd(self.socks[0]).start()
        self.ours.wait_link_up(0)

    def exchange(self):
        """V's frames of this round come back to V byte-exact, in order."""
        self.round += 1
        frames = gen_frames(FRAMES_PER_ROUND, seed=9000 + self.round, tag=self.round % 256)
        self.v.send_frames(frames)
        back = self.v.receive(len(frames), timeout=20, quiet=0.05)
        assert back == frames, \
            f"round {self.round}: {len(back)} of {len(frames)} frames back, or altered"

    # ---- churn actions, run in this order
    def v_reconnects(self):
        self.v.close()
        self.ours.wait_link(0, up=False)
        self.connect_v()

    def v_replaces_memory_table(self):
        self.v.checked(Req.SET_MEM_TABLE, pack_mem_table([self.v.mem.region()]),
                       [self.v.mem.fd])

    def g_killed_returns_with_one_queue(self):
        self.g.kill()
        self.ours.wait_link(1, up=False)
        self.g_queues = 1
        self.start_g()

    def g_quits_returns_with_two_queues(self):
        self.g.stop_forwarding()
        assert self.g.quit() == 0
        self.ours.wait_link(1, up=False)
        self.g_queues = 2
        self.start_g()

    def ports_stopped_and_started(self):
        self.ours.stop_forwarding()
        self.ours.cmd("port stop all")
        self.ours.cmd("port start all")
        self.ours.wait_link_up(0)
        self.ours.wait_link_up(1)
        self.ours.start_forwarding()

    # a whole turn leaves G as it found it (2 queue pairs: 8 eventfds of ours)
    ACTIONS = ("v_reconnects", "v_replaces_memory_table", "g_killed_returns_with_one_queue",
               "g_quits_returns_with_two_queues", "ports_stopped_and_started")

    def close(self):
        if self.v is not None:
            self.v.close()
        self.ours.stop_forwarding()
        self.launcher.finish_ours(self.ours, ports={"eth_vhost0": self.socks[0],
                                                    "eth_vhost1": self.socks[1]})


def test_soak_pvp_with_churn(launcher, record_property):
    pvp = Pvp(launcher)
    samples = []
    turns = 0
    end = time.monotonic() + SECONDS
    next_sample = time.monotonic()
    try:
        pvp.exchange()
        while True:
            for action in Pvp.ACTIONS:
                getattr(pvp, action)()
                pvp.exchange()
            turns += 1
            now = time.monotonic()
            if now >= next_sample or now >= end:
                samples.append(sample(pvp.ours))
                next_sample = now + SAMPLE_SECONDS
            if now >= end:
                break
    finally:
        pvp.close()
    report = "\n".join(f"sample {i}: {s}" for i, s in enumerate(samples))
    summary = (f"{SECONDS} s: {turns} turns of {len(Pvp.ACTIONS)} actions, "
               f"{pvp.round} rounds of {FRAMES_PER_ROUND} frames back byte-exact")
    record_property("soak", f"{summary}\n{report}")
    print(f"{summary}\n{report}")
    assert len(samples) >= 2, f"only {len(samples)} sample(s) in {SECONDS} s"
    first, last = samples[0], samples[-1]
    for key in ("fds", "threads", "heap_alloc_bytes", "heap_alloc_count", "mbufs_in_use"):
        assert last[key] == first[key], f"{key} moved:\n{report}"
    growth = last["private_rss_kib"] - first["private_rss_kib"]
    assert growth < RSS_GROWTH_LIMIT_KIB, f"private RSS grew {growth} KiB:\n{report}"
