"""RX interrupts: DPDK's l3fwd-power sleeps on our port and the guest's kicks
wake it, as DTS's vhost_user_interrupt test plan has it.

l3fwd-power (``--interrupt-only``, port 0 queue 0 on lcore 1) arms its queue
and sleeps in epoll on the queue's fd once the queue has been empty for a
few hundred polls, and logs ``lcore 1 is waked up from rx
interrupt on port 0 queue 0`` for every event of that fd, then, when it
sleeps again after one, ``lcore 1 sleeps until interrupt triggers``. Its
epoll wait times out every 10 ms, so it forwards even without interrupts:
only the log lines prove them.

A virtio-user peer (testpmd, io forwarding between it and a pcap port)
connects, stays idle, sends a few IPv4 frames from its pcap and counts what
l3fwd-power sends back; then it quits and a new one connects on the same
socket and does the same, l3fwd-power still running with the fd it
registered once. Per front end: no wake-up while idle; at least one with the
traffic, and every frame forwarded back; asleep again after it, and no wake-up in the
idle time after. Split and packed rings.

Power monitoring (``--pmd-mgmt monitor``: the lcore waits with UMWAIT for
the guest's write to the ring, at the address our get_monitor_addr gives)
runs the same front ends, the forwarding checked only (the wait leaves no
trace in the log), where the CPU has the instruction.
"""

from __future__ import annotations

import re
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from harness import write_pcap
from harness.l3fwd_power import APP_ARGS, SLEEP_RE, WAKE_RE, spawn
from harness.testpmd import pcap_vdev, vhost_vdev, virtio_user_vdev

FRAMES = 64          # fewer than a ring: nothing can be dropped for room
IDLE = 1.0           # seconds without traffic: a hundred of l3fwd-power's 10 ms waits
# DPDK's virtio PMD kicks its TX rings once when it starts (virtio_dev_start),
# which wakes l3fwd-power if it sleeps by then: a real kick, left to pass
# before the first idle time is watched.
START_KICK = 0.5
PEER_VIRTIO = 0      # the peer's ports: virtio-user, then the pcap port
# The lcore waits for the guest's write with UMWAIT between empty polls.
MONITOR_ARGS = [a for a in APP_ARGS if a != "--interrupt-only"] + ["--pmd-mgmt", "monitor"]

pytestmark = [pytest.mark.ours_only, pytest.mark.timeout(80)]


def ipv4_frames(tag: int):
    """What l3fwd-power forwards: IPv4 (it routes on the destination and,
    finding no port for it, sends the frame back where it came from)."""
    return [bytes(Ether(src="02:00:00:00:00:01", dst="56:48:4f:53:54:00") /
                  IP(src="10.0.0.1", dst=f"10.1.{tag}.{i}") / UDP(sport=1024 + i, dport=9) /
                  Raw(bytes(18)))
            for i in range(FRAMES)]


def assert_idle(app, what: str):
    """IDLE seconds without traffic: no wake-up."""
    since = len(app.log)
    time.sleep(IDLE)
    woke = WAKE_RE.findall(app.log, since)
    assert not woke, f"{what}: woken {len(woke)} times in {IDLE}s without traffic"


def front_end(launcher, app, sock: str, packed: int, n: int, interrupts: bool = True):
    """Front end number @n connects, idles, sends FRAMES frames, idles, quits."""
    src = launcher.path(f"peer{n}-in.pcap")
    write_pcap(src, ipv4_frames(n))
    peer = launcher.peer([virtio_user_vdev(0, sock, packed_vq=packed),
                          pcap_vdev(0, rx_pcap=src, tx_pcap=launcher.path(f"peer{n}-out.pcap"))],
                         name=f"peer{n}")
    peer.wait_link_up(PEER_VIRTIO)
    app.wait_log(r"entering main \w+ loop on lcore 1", timeout=30)
    time.sleep(START_KICK)
    if interrupts:
        assert_idle(app, f"front end {n}, before its traffic")
    else:
        time.sleep(IDLE)

    since = len(app.log)
    peer.start_forwarding()
    back = peer.wait_stat(PEER_VIRTIO, "ipackets", FRAMES, timeout=10)["ipackets"]
    assert back == FRAMES, f"front end {n}: {back} of {FRAMES} frames forwarded back"
    if interrupts:
        woke = list(WAKE_RE.finditer(app.log, since))
        assert woke, f"front end {n}: its frames were forwarded, but never woke l3fwd-power"
        assert {m.groups() for m in woke} == {("1", "0", "0")}, [m.group(0) for m in woke]
        # a burst can come after l3fwd-power slept again (the peer shares its
        # CPU with l3fwd-power's main lcore): asleep after the last wake-up
        app.wait_log(SLEEP_RE, timeout=5, start=woke[-1].end())
        assert_idle(app, f"front end {n}, after its traffic")
    peer.stop_forwarding()
    peer.quit()


@pytest.mark.parametrize("packed", [0, 1], ids=["split", "packed"])
def test_l3fwd_power_sleeps_and_wakes(launcher, packed):
    sock = launcher.path("vh0.sock")
    app = spawn(launcher, [vhost_vdev(0, sock)])
    app.start()
    for n in range(2):
        front_end(launcher, app, sock, packed, n)
    launcher.finish_ours(app, ports={"eth_vhost0": sock})


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^flags\s*:(.*)$", f.read(), re.M)
    return set(m.group(1).split()) if m else set()


@pytest.mark.skipif("waitpkg" not in cpu_flags(),
                    reason="this CPU has no WAITPKG (UMONITOR/UMWAIT), the only instructions "
                           "DPDK 22.11's rte_power_monitor() sleeps with: l3fwd-power "
                           "--pmd-mgmt monitor refuses every queue here, whatever the PMD")
@pytest.mark.parametrize("packed", [0, 1], ids=["split", "packed"])
def test_l3fwd_power_monitor(launcher, packed):
    """The lcore monitors the ring between bursts and must still forward,
    before and after a reconnect (the old guest memory stays mapped while it
    may read it)."""
    sock = launcher.path("vh0.sock")
    app = spawn(launcher, [vhost_vdev(0, sock)], app_args=MONITOR_ARGS)
    app.start()
    for n in range(2):
        front_end(launcher, app, sock, packed, n, interrupts=False)
    launcher.finish_ours(app, ports={"eth_vhost0": sock})
