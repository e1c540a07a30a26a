"""Open vSwitch 3.1 (Debian's ovs-vswitchd-dpdk) with our eth_vhost ports as
its ``type=dpdk`` ports: a real application using our PMD as a drop-in for
DPDK's net_vhost.

    A --vhost-user-- eth_vhost0 (OVS port 1) <=rules=> eth_vhost1 (OVS port 2) --vhost-user-- B

(A and B: virtio-user peers in testpmds, or QEMU guests.)

A private OVS per test (tests/harness/ovs.py: its own database, sockets and
logs in the test's work dir; the EAL options README gives), a netdev bridge,
the two ports cross-connected by two OpenFlow rules. Every test ends with
ovs-vswitchd's ``exit --cleanup`` (it hot-unplugs our ports): both daemons
exit 0, the log proves our PMD served both ports, our sockets are gone, and
OVS logged no warning but the expected ones (harness/ovs.py,
EXPECTED_WARNINGS: among them "Rx checksum offload is not supported", as
OVS 3.1 wants IPv4 checksum offload too).

What OVS 3.1 does with our ports (lib/netdev-dpdk.c of v3.1.0; shown by
ethdev's own view through DPDK telemetry in the tests):
- RX offloads: it enables RTE_ETH_RX_OFFLOAD_CHECKSUM only if the port
  offers IPv4, TCP and UDP checksum offload, and never LRO on a type=dpdk
  port. So guests' GSO frames are cut by our port at the guest's MSS, with
  finished checksums (README, "Offloads"), unless the port has
  ``legacy-ol-flags=1``: then they arrive whole as TX offload requests,
  which is what OVS 3.1 takes from DPDK's vhost library for its own vhost
  ports (it reads guests' offloads only that way until OVS 3.6).
- With ``userspace-tso-enable``, TX TSO and checksum offloads on both ports
  (our dev_info offers them); it sends a TSO frame on with tso_segsz set
  from the port's MTU, and our port hands it to a guest that takes TSO.
- Its mbufs are single-segment, its RX mbufs MTU-sized, and it does not
  enable scatter at MTU 1500: a whole 64 KB frame needs ``ext-buffer=1``
  (one external buffer), and ``linear-buffer=1`` keeps chains (frames over
  64 KiB minus the headroom) from it.

Run: VHU_PMD="$(scripts/stage-pmd.sh build/drivers/net/vhost/librte_net_vhu.so)" \\
     /usr/bin/python3 -m pytest -v -rP tests/test_ovs.py
"""

from __future__ import annotations

import signal

import pytest

from harness import gen_frames, total_bytes, vhost_vdev
from harness.flows import exchange_pcaps, run_exchange, start_peers
from harness.frames import assert_frames_equal_per_flow
from harness.ovs import Ovs, missing_tools
from harness.sanitizers import asan_requested, tsan_requested
from qemu.migration import negotiated
from qemu.opt_in import opt_in_unless_all
from qemu.rig import ping, report_rate, tcp_transfer

pytestmark = [pytest.mark.ours_only, pytest.mark.slow, pytest.mark.timeout(180)]

# OpenFlow port numbers of eth_vhost0 and eth_vhost1
OFPORTS = (1, 2)
# name of each OVS interface -> our ethdev
IFACES = {"vh0": "eth_vhost0", "vh1": "eth_vhost1"}

# What OVS needs on our ports for guests' 64 KB frames to cross whole (see
# the module's docstring); the same devargs DPDK's net_vhost takes.
WHOLE_FRAMES_DEVARGS = {"legacy-ol-flags": 1, "ext-buffer": 1, "linear-buffer": 1}

# Bits of the virtio-net features word
HOST_TSO4, GUEST_TSO4 = 11, 7
# RX and TX offload bits of ethdev (rte_ethdev.h)
RX_OFFLOAD_TCP_LRO = 1 << 4
TX_OFFLOAD_TCP_TSO = 1 << 5


@pytest.fixture
def ovs(request, pmd, workdir):
    """An Ovs (not started); stopped at teardown, its log in the report of
    a failed test."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"Open vSwitch with DPDK is not installed ({', '.join(missing)} missing): "
                    f"scripts/setup.sh installs openvswitch-switch-dpdk", pytrace=False)
    if asan_requested():
        pytest.skip("ovs-vswitchd-dpdk does not run under the ASan runtime here")
    if tsan_requested():
        pytest.skip("ovs-vswitchd-dpdk is not run under the TSan runtime (VHU_TSAN=1 covers testpmd)")
    sw = Ovs(workdir, pmd)
    yield sw
    signal.alarm(0)   # teardown is bounded by itself
    problems = sw.stop() + sw.died
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        # a daemon that died mid-test (a crash in our PMD) shows here first
        request.node.add_report_section("teardown", "Open vSwitch",
                                        "\n".join(problems) or "stopped as asked")
        request.node.add_report_section("teardown", f"ovs-vswitchd log ({sw.log_path})",
                                        sw.tail(30000))


def start_switch(sw: Ovs, socks, other_config=None, **devargs):
    """OVS started with ``other_config``, a netdev bridge, our ports on
    ``socks`` (with ``devargs``) as OpenFlow ports 1 and 2, cross-connected."""
    sw.start(other_config)
    sw.add_bridge()
    for (name, ethdev), sock, ofport in zip(IFACES.items(), socks, OFPORTS):
        index = int(ethdev[-1])
        sw.add_dpdk_port(name, ofport, vhost_vdev(index, sock, **devargs))
    sw.cross_connect(*OFPORTS)


def check_switch(sw: Ovs):
    """No warning in OVS's log but the expected ones; then finish()."""
    unexpected = sw.unexpected_warnings()
    assert not unexpected, f"OVS warned: {unexpected}"
    sw.finish()


def delta(before, after, key):
    return after[key] - before[key]


# ------------------------------------------------------------- virtio-user

# Frames each way. OVS drops what a full ring does not take (no retry), and
# both peers time-share CPU 0: a ring holds all the frames sent to it, so
# nothing depends on when the receiving peer gets the CPU.
FRAMES = 400
QUEUE_SIZE = 1024


def test_ovs_virtio_user_both_ways(ovs, launcher):
    """Two virtio-user peers (testpmd, pcap in and out) send 400 frames of
    60..1514 bytes (IPv4/IPv6, TCP/UDP) to each other at once through OVS:
    each side captures the other's frames byte-exact, each once, in order
    within each of OVS's flows; our ports' counters, as OVS reports them,
    are exact. Without userspace TSO OVS enables no offload on our ports."""
    socks = [launcher.path("a.sock"), launcher.path("b.sock")]
    start_switch(ovs, socks)
    frames_a = gen_frames(FRAMES, seed=1500, tag=0xA)
    frames_b = gen_frames(FRAMES, seed=1501, tag=0xB)
    pc = exchange_pcaps(launcher, frames_a, frames_b)
    peer_a, peer_b = start_peers(launcher, socks, pc.vdev("a"), pc.vdev("b"),
                                 a_args=dict(mrg_rxbuf=1, queue_size=QUEUE_SIZE),
                                 b_args=dict(mrg_rxbuf=0, queue_size=QUEUE_SIZE))
    for name, ethdev in IFACES.items():
        ovs.wait_link_up(name, ethdev)
    run_exchange(peer_a, peer_b, len(frames_a), len(frames_b))
    stats = {name: ovs.port_stats(name) for name in IFACES}
    infos = {name: ovs.ethdev_info(ethdev) for name, ethdev in IFACES.items()}
    for tp in (peer_a, peer_b):
        tp.stop_forwarding()
        tp.quit()
    a_to_b, b_to_a = pc.captured()
    assert_frames_equal_per_flow(frames_a, a_to_b, what="A -> B")
    assert_frames_equal_per_flow(frames_b, b_to_a, what="B -> A")

    na, ba, nb, bb = len(frames_a), total_bytes(frames_a), len(frames_b), total_bytes(frames_b)
    for name, (rx, tx) in (("vh0", ((na, ba), (nb, bb))), ("vh1", ((nb, bb), (na, ba)))):
        st = stats[name]
        got = ((st["rx_packets"], st["rx_bytes"]), (st["tx_packets"], st["tx_bytes"]))
        assert got == (rx, tx), f"{name}: {st}"
        assert st["rx_errors"] == st["rx_dropped"] == st["tx_dropped"] == 0, f"{name}: {st}"
        assert infos[name]["rx_offloads"] == infos[name]["tx_offloads"] == 0, infos[name]
    check_switch(ovs)


# ------------------------------------------------------------ QEMU guests

TSO_MIB = 16
NO_GUEST_TSO = ",guest_tso4=off,guest_tso6=off"
# name: (devargs of both our ports, virtio-net-pci options of guest B)
TSO_VARIANTS = {
    "segments_cut": ({}, ""),
    "whole_frames": (WHOLE_FRAMES_DEVARGS, ""),
    "b_without_guest_tso": (WHOLE_FRAMES_DEVARGS, NO_GUEST_TSO),
}


# The default run: segments_cut. whole_frames (OVS given 64 KB frames whole)
# and b_without_guest_tso (our port cutting TSO requests for a guest
# without TSO, which test_qemu_vm.py also covers) are opt-in (qemu/opt_in.py).
@pytest.mark.qemu
@pytest.mark.parametrize("variant", opt_in_unless_all(
    TSO_VARIANTS, {"whole_frames", "b_without_guest_tso"}))
def test_ovs_guests_tso(ovs, guests, record_property, variant):
    """Two QEMU guests on our ports of an OVS with
    ``userspace-tso-enable=true``: pings both ways, then 16 MiB from A (TSO
    on) to B over TCP with matching md5sums. OVS enabled TX TSO on our
    ports, no RX checksum offload and no LRO (ethdev's view, through DPDK
    telemetry).
    - segments_cut (our defaults): A's GSO frames are cut by our port at A's
      MSS, so nothing above 1518 bytes enters port 0 or leaves port 1;
    - whole_frames (legacy-ol-flags=1, ext-buffer=1, linear-buffer=1): A's
      64 KB frames enter port 0 whole (rx size_1519_max_packets), OVS sends
      them on as TSO requests and they reach B whole (tx
      size_1519_max_packets of port 1);
    - b_without_guest_tso: the same, but B does not take TSO: our port 1
      cuts OVS's TSO requests for it (nothing above 1518 bytes to B)."""
    devargs, b_opts = TSO_VARIANTS[variant]
    start_switch(ovs, guests.socks, {"userspace-tso-enable": "true"}, **devargs)
    a, b = guests.boot(queues=1, device_opts={"b": b_opts})
    for name, ethdev in IFACES.items():
        ovs.wait_link_up(name, ethdev)
    ping(a, b)
    ping(b, a)
    before = {ethdev: ovs.telemetry_xstats(ethdev) for ethdev in IFACES.values()}
    rate = tcp_transfer(a, b, TSO_MIB, conns=1)
    report_rate(record_property, f"OVS_{variant}", rate)
    after = {ethdev: ovs.telemetry_xstats(ethdev) for ethdev in IFACES.values()}
    big_in = delta(before["eth_vhost0"], after["eth_vhost0"], "rx_q0_size_1519_max_packets")
    big_out = delta(before["eth_vhost1"], after["eth_vhost1"], "tx_q0_size_1519_max_packets")
    stats = {name: ovs.port_stats(name) for name in IFACES}
    print(f"{variant}: frames above 1518 bytes into port 0: {big_in}, out of port 1: "
          f"{big_out}; OVS's counters: {stats}")

    for name, ethdev in IFACES.items():
        shown = ovs.dpif_show(name)
        assert (shown["tx_tso_offload"], shown["rx_csum_offload"]) == ("true", "false"), shown
        info = ovs.ethdev_info(ethdev)
        assert info["tx_offloads"] & TX_OFFLOAD_TCP_TSO, info
        assert not info["lro"] and not info["rx_offloads"] & RX_OFFLOAD_TCP_LRO, info
    # A may send GSO frames; B takes them unless told not to
    assert negotiated(ovs.log, 0)[-1] >> HOST_TSO4 & 1
    assert bool(negotiated(ovs.log, 1)[-1] >> GUEST_TSO4 & 1) == (not b_opts)
    if variant == "whole_frames":
        # every whole frame leaves port 1 unless B's ring was full: OVS
        # drops it then (no retry; TCP sends it again)
        assert 0 < big_out <= big_in, (big_in, big_out)
    elif variant == "b_without_guest_tso":
        assert big_in > 0 and big_out == 0, (big_in, big_out)
    else:
        assert (big_in, big_out) == (0, 0), (big_in, big_out)
    # nothing refused by our ports either way (a frame they could not take
    # from a guest, or not offload or cut for one, is counted there)
    for ethdev, xs in after.items():
        assert xs["rx_q0_malformed_chains"] == xs["rx_q0_dropped_packets"] == \
            xs["tx_q0_malformed_chains"] == 0, (ethdev, xs)
    guests.quit()
    check_switch(ovs)
