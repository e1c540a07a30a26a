"""Two QEMU guests talking through one testpmd with two eth_vhost ports.

    guest A 10.0.0.1 --vhost-user-- eth_vhost0 <=io=> eth_vhost1 --vhost-user-- guest B 10.0.0.2

Our testpmd forwards port 0 <-> port 1 (io, paired) on lcore 1; both QEMUs
(TCG, one vCPU each, shared memfd memory) run on the other CPU(s)
(tests/qemu/vm.py).  The guests boot Debian's cloud kernel with a busybox
initramfs built at test time (tests/qemu/) and are driven over their serial
consoles.  Traffic: ping both ways, and TCP streams of random data from A to
B with busybox nc whose md5sum must match on both ends.  The rig and those
transfers are in tests/qemu/rig.py, the ``rig`` fixture in tests/conftest.py.

Run: /usr/bin/python3 -m pytest -v -rP tests/test_qemu_vm.py
(-rP prints the throughput lines of passed tests; see tests/README.md.)
"""

from __future__ import annotations

import re

import pytest

from qemu.opt_in import OPT_IN, opt_in_unless_all
from qemu.rig import LSC_EVENT, MIB, both_xstats, ping, report_rate, tcp_transfer

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(180)]

BULK_MIB = 32
SMALL_MIB = 8            # after a reconnection
# A guest puts each TCP connection on a random TX queue (the socket's random
# hash picks among the queues XPS gives its one vCPU).  With 16 connections
# the chance that a queue carries none of them is 2^-15.
SPREAD_CONNS = 16

# ----------------------------------------------------------------- host side

def assert_every_queue_used(ours, before, queues: int, conn_bytes: int):
    """Since ``before`` (``both_xstats``), A's data (port 0 RX -> port 1 TX)
    and B's ACKs (port 1 RX -> port 0 TX) crossed every queue pair: on each,
    at least half of one connection's ``conn_bytes`` (a flow may move to the
    other queue when it idles) and some ACKs."""
    delta = {port: {k: v - before[port].get(k, 0) for k, v in after.items() if "_good_" in k}
             for port, after in both_xstats(ours).items()}
    for q in range(queues):
        for port, key in ((0, f"rx_q{q}_good_bytes"), (1, f"tx_q{q}_good_bytes")):
            assert delta[port][key] >= conn_bytes // 2, f"port {port} {key}: {delta[port]}"
        for port, key in ((1, f"rx_q{q}_good_packets"), (0, f"tx_q{q}_good_packets")):
            assert delta[port][key] > 0, f"port {port} {key}: {delta[port]}"


# ----------------------------------------------------------------------- tests

# Opt-in (qemu/opt_in.py), both: the vIOMMU, TSO, migration and Open vSwitch
# tests ping and transfer between two guests too; queue pairs are
# test_e2e_multiqueue.py's (virtio-user).
@OPT_IN
def test_two_guests_ping_and_tcp(rig, record_property):
    """Ping both ways, then 32 MiB of random data from A to B over one TCP
    connection with matching md5sums; testpmd's port stats show the data
    entering on port 0 and leaving on port 1 (and B's ACKs the other way)."""
    a, b = rig.start(queues=1)
    ping(a, b)
    ping(b, a)
    rate = tcp_transfer(a, b, BULK_MIB, conns=1)
    report_rate(record_property, "1 queue", rate)

    st = rig.ours.stats_all()
    assert st[0]["ibytes"] >= BULK_MIB * MIB, f"A's data not received on port 0: {st[0]}"
    assert st[1]["obytes"] >= BULK_MIB * MIB, f"A's data not sent to B on port 1: {st[1]}"
    assert st[1]["ipackets"] > 0 and st[0]["opackets"] > 0, f"no ACKs from B: {st}"
    assert st[0]["ierrors"] == 0 and st[1]["ierrors"] == 0, st
    rig.finish()


@OPT_IN
def test_two_guests_two_queues(rig, record_property):
    """queues=2 on both ports, both guests with 2 combined channels: 16
    parallel TCP connections (32 MiB in all) spread over both queue pairs,
    each of which carries data one way and ACKs the other."""
    a, b = rig.start(queues=2)
    for vm in (a, b):
        out = vm.run("ethtool -l eth0").output
        current = out[out.index("Current hardware settings"):]
        assert re.search(r"Combined:\s*2\b", current), f"{vm.name}: {out}"
    ping(a, b)
    ping(b, a)
    before = both_xstats(rig.ours)
    rate = tcp_transfer(a, b, BULK_MIB, conns=SPREAD_CONNS)
    report_rate(record_property, "2 queues", rate)
    assert_every_queue_used(rig.ours, before, 2, BULK_MIB * MIB // SPREAD_CONNS)
    rig.finish()


# Opt-in: a front end resetting the device and coming back is what
# test_e2e_reconnect.py and the hostile catalogue do with virtio-user.
@OPT_IN
@pytest.mark.parametrize("event", ["reboot", "restart"])
def test_guest_comes_back(rig, event):
    """While testpmd keeps running, guest A reboots (QEMU resets the
    machine) or its QEMU quits and starts again on the same socket: port 0's
    link goes down and comes back up (LSC events), QEMU resets the device
    (SET_STATUS 0) and sets it up again, port 1's never moves, and ping and a TCP transfer over both queue pairs work again."""
    a, b = rig.start(queues=2, reboot_a=event == "reboot")
    ping(a, b)
    ours = rig.ours
    mark = len(ours.log)
    if event == "reboot":
        boot = a.reboot_guest(wait=False)
        ours.wait_link(0, up=False, interval=0.1)
        a.wait_ready(boots=boot)
    else:
        assert a.quit() == 0
        ours.wait_link(0, up=False)
        a.start()
    ours.wait_link_up(0)
    # QEMU sets DRIVER_OK (PROTOCOL_F_STATUS) once the link is up
    ours.wait_log(r"eth_vhost0: device status 0x0f ", start=mark)
    events = ours.log[mark:]
    assert events.count(LSC_EVENT.format(port=0)) >= 2, f"port 0 down+up expected:\n{events}"
    # the device is reset on the way down and set up again; port 1's untouched
    status = re.findall(r"eth_vhost(\d): device status (0x[0-9a-f]{2})", events)
    assert ("0", "0x00") in status and status[-1] == ("0", "0x0f"), status
    assert all(port == "0" for port, _ in status), status
    assert LSC_EVENT.format(port=1) not in events, f"port 1's link moved:\n{events}"
    assert ours.link_up(1)

    ping(a, b)
    ping(b, a)
    before = both_xstats(ours)
    tcp_transfer(a, b, SMALL_MIB, conns=SPREAD_CONNS)
    assert_every_queue_used(ours, before, 2, SMALL_MIB * MIB // SPREAD_CONNS)
    rig.finish()


def test_host_mtu(rig):
    """QEMU's host_mtu (VIRTIO_NET_F_MTU; NET_SET_MTU to us): the guest's
    interface gets it, our ports show it as their MTU and refuse a larger
    one, accept a smaller one; frames of that size cross guest to guest."""
    # (whole_frames: its settings enable scatter, which frames above the mbuf size need)
    a, b = rig.start(queues=1, device_opts={"a": ",host_mtu=4000", "b": ",host_mtu=4000"},
                     whole_frames=True)
    for vm in (a, b):
        assert vm.run("cat /sys/class/net/$(cat /run/vhu-if)/mtu").output.strip() == "4000"
    for port in (0, 1):
        assert rig.ours.port_info(port)["MTU"].strip() == "4000", rig.ours.port_info(port)
    rig.ours.cmd("port config mtu 0 4001")
    assert rig.ours.port_info(0)["MTU"].strip() == "4000"
    rig.ours.cmd("port config mtu 0 3000")
    assert rig.ours.port_info(0)["MTU"].strip() == "3000"
    ping(a, b, size=3972)      # a 4000-byte IP packet, unfragmented
    rig.finish()


NO_TSO = ",host_tso4=off,host_tso6=off,guest_tso4=off,guest_tso6=off"
# name: (device options of A, of B, devargs of both our ports, testpmd set up
# as README says for TSO frames to cross whole: whole-frames.cmds)
OFFLOAD_VARIANTS = {
    "packed_tso": (",packed=on", ",packed=on", {}, True),
    "tso_off": (NO_TSO, NO_TSO, {}, False),
    "b_without_guest_tso": ("", ",guest_tso4=off,guest_tso6=off", {}, True),
    "zero_copy_tso": ("", "", {"dequeue-zero-copy": 1}, True),
    "tso_cut_by_default": ("", "", {}, False),
    "legacy_ol_flags": ("", "", {"legacy-ol-flags": 1}, False),
}


# The default run: packed_tso (whole frames). Opt-in: tso_off (plain MTU
# frames, as most of the suite), b_without_guest_tso and tso_cut_by_default
# (the segmenting of test_e2e_offload.py, and of
# test_ovs.py::test_ovs_guests_tso[segments_cut] with QEMU), zero_copy_tso
# (zero-copy is tested with virtio-user), legacy_ol_flags.
@pytest.mark.parametrize("variant", opt_in_unless_all(
    OFFLOAD_VARIANTS, set(OFFLOAD_VARIANTS) - {"packed_tso"}))
def test_tso_between_guests(rig, record_property, variant):
    """16 MiB from A to B over TCP, checksums matching, with:
    - packed rings, TSO and the whole-frames settings: A's GSO frames (up to
      64 KB) cross both our ports whole (size_1519_max_packets on port 0 Rx
      and port 1 Tx, less any that found B's ring full);
    - TSO off on both guests: no frame above the MTU anywhere;
    - B without GUEST_TSO: A's GSO frames arrive whole on port 0 and our
      PMD segments them for B in software (nothing above the MTU to B);
    - zero-copy dequeue on both ports and TSO: A's GSO frames reach port 1
      in mbufs pointing into A's memory and are copied once, into B's
      buffers (rx_q0_zero_copy_packets on port 0);
    - TSO with testpmd's defaults (io forwarding, no RX offload): A's GSO
      frames are cut on the way in, nothing above the MTU leaves port 0;
    - legacy-ol-flags=1 with io forwarding: whole, as TX requests.
    The throughput of each is reported: TSO is what makes VM-to-VM fast."""
    opts_a, opts_b, vhost_opts, whole = OFFLOAD_VARIANTS[variant]
    a, b = rig.start(queues=1, device_opts={"a": opts_a, "b": opts_b}, vhost_opts=vhost_opts,
                     whole_frames=whole)
    ping(a, b)
    before = both_xstats(rig.ours)
    rate = tcp_transfer(a, b, SMALL_MIB * 2, conns=1)
    report_rate(record_property, variant, rate)
    after = both_xstats(rig.ours)
    big_in = after[0]["rx_q0_size_1519_max_packets"] - before[0]["rx_q0_size_1519_max_packets"]
    big_out = after[1]["tx_q0_size_1519_max_packets"] - before[1]["tx_q0_size_1519_max_packets"]
    if variant in ("tso_off", "tso_cut_by_default"):
        assert (big_in, big_out) == (0, 0), (big_in, big_out)
    elif variant == "b_without_guest_tso":
        assert big_in > 0 and big_out == 0, (big_in, big_out)
    else:
        # every big frame leaves whole, but for those that found B's ring
        # full (testpmd drops what a TX burst leaves; TCP resends them)
        unsent = after[1]["tx_q0_missed_packets"] - before[1]["tx_q0_missed_packets"]
        assert big_in > 0 and big_in - unsent <= big_out <= big_in, (big_in, big_out, unsent)
    zero_copied = after[0]["rx_q0_zero_copy_packets"] - before[0]["rx_q0_zero_copy_packets"]
    if vhost_opts.get("dequeue-zero-copy"):
        # every GSO frame is far above the threshold; a frame is copied only
        # when A's ring nears the bound of chains held
        assert zero_copied > 0, after[0]
    else:
        assert zero_copied == 0, after[0]
    # (segments that find B's ring full are dropped and counted, TCP resends them)
    assert after[0]["rx_q0_malformed_chains"] == after[1]["tx_q0_malformed_chains"] == 0, after
    rig.finish()
