"""What a Linux guest's checksum and segmentation offloads become for an
application: a QEMU guest's traffic, received by our port with testpmd's
defaults (no RX offload enabled), written to a net_pcap file and checked
with Scapy.

Design. A TCP stream needs a peer that answers, and testpmd 22.11 cannot
copy frames to a capture on the way (no port mirroring; a bonding port in
broadcast mode needs members that take a MAC address, which net_pcap and
eth_vhost do not; dpdk-pdump needs a secondary process and hugepages). So
the guest makes the copy: guest A has two NICs, its address on a Linux
bonding device in broadcast mode over both, and hands every frame it sends,
the same socket buffer (checksum left partial, TSO frame whole), to each.
The first NIC's frames cross our io forwarding to guest B, which answers;
the second NIC is on our third port, which testpmd forwards to net_pcap:

    A eth0 -- eth_vhost0 <=io=> eth_vhost1 -- B 10.0.0.2
    A eth1 -- eth_vhost2 ==io=> net_pcap0 (tx_pcap: the capture)

The capture holds exactly what an application got from eth_vhost2 (testpmd
verbose lists the same frames, in the same order). Traffic from A, with
busybox: ping, small and 3000 bytes (ICMP, fragmented by A's IP layer);
traceroute's UDP probes, small (checksum left to us) and 3000 bytes (A
fragments them and computes the checksum itself); 1 MiB over TCP (busybox
nc), which A sends in TSO frames. Busybox has no tool that sets IPv4
options (its ping has no -R, its traceroute no -g), so IPv4 options with
checksums left to us are covered by virtio-user
(test_e2e_offload.py::test_guest_checksums_finished_by_default) only.

Checked: every IPv4 header, TCP, UDP and ICMP checksum in the capture is
what Scapy computes (fragmented datagrams reassembled first), no frame is
above the MTU (1514 bytes), and, so that this cannot pass with a guest that
offloads nothing, our port flagged what it did (testpmd verbose, per frame):
TCP segments it cut from A's TSO frames (RX_IP_CKSUM_GOOD and
RX_L4_CKSUM_GOOD, set by the cut only) and UDP datagrams whose partial
checksum it finished (RX_L4_CKSUM_GOOD).
"""

from __future__ import annotations

from collections import Counter

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness import read_pcap
from harness.inet import checksum_problems, mtu_sized
from harness.testpmd import parse_verbose
from qemu.rig import GUESTS, MIRROR_PORT, tcp_transfer
from qemu.vm import Vm, VmError

pytestmark = [pytest.mark.qemu, pytest.mark.ours_only, pytest.mark.timeout(300)]

PROBES = 2
CUT = {"RTE_MBUF_F_RX_IP_CKSUM_GOOD", "RTE_MBUF_F_RX_L4_CKSUM_GOOD"}
FINISHED = "RTE_MBUF_F_RX_L4_CKSUM_GOOD"


def kind(frame: bytes) -> str:
    """What a frame from guest A is, for the tally of the capture."""
    pkt = Ether(frame)
    if IP not in pkt or pkt[IP].src != GUESTS["a"][0]:
        return "other"
    ip = pkt[IP]
    if ip.frag > 0:
        return "fragment"
    if TCP in pkt:
        return "tcp data" if ip.len > ip.ihl * 4 + pkt[TCP].dataofs * 4 else "tcp"
    first = " first fragment" if ip.flags.MF else ""
    return ("udp" if UDP in pkt else "icmp" if ICMP in pkt else "ip") + first


def send_from_a(a: Vm, b: Vm):
    """Pings, traceroute's UDP probes (one hop: it ends whether B answers
    or not) and a TCP stream from A to B."""
    dst = GUESTS[b.name][0]
    for size in (56, 3000):
        a.run(f"ping -c {PROBES} -s {size} {dst}", timeout=30)
    for size in (60, 3000):
        a.run(f"traceroute -n -m 1 -q {PROBES} -w 2 {dst} {size}", timeout=30)
    tcp_transfer(a, b, 1, conns=1)


def test_guest_offloads_captured(rig):
    """A's pings, traceroute probes and TCP stream, as eth_vhost2 hands them
    to testpmd with default offloads: complete checksums, nothing above the
    MTU, and our port's flags show it finished and cut what A left to it."""
    capture = rig.launcher.path("mirror.pcap")
    a, b = rig.start(queues=1, mirror=capture, verbose=1)
    try:
        send_from_a(a, b)
        failed = None
    except VmError as exc:
        # B drops frames with wrong checksums and A's tools fail: the
        # capture, checked first, says why
        failed = exc
    rig.finish()

    frames = read_pcap(capture)
    dumped = [p for p in parse_verbose(rig.ours.log) if p.received and p.port == MIRROR_PORT]
    # the capture is what the application got from our port
    assert [len(f) for f in frames] == [p.length for p in dumped], \
        (len(frames), len(dumped))
    problems = checksum_problems(frames)
    assert not problems, f"{len(problems)} wrong checksums: {problems[:5]}"
    assert mtu_sized(frames), sorted(len(f) for f in frames)[-5:]
    kinds = Counter(kind(f) for f in frames)
    for want in ("tcp data", "udp", "udp first fragment", "icmp", "icmp first fragment",
                 "fragment"):
        assert kinds[want] > 0, f"no {want} from A in the capture: {kinds}"

    flags = Counter((k, CUT <= p.ol_flags, FINISHED in p.ol_flags)
                    for k, p in zip(map(kind, frames), dumped))
    assert flags["tcp data", True, True] > 0, f"no TSO frame of A's cut by our port: {flags}"
    assert flags["udp", False, True] > 0, f"no partial UDP checksum finished: {flags}"
    assert failed is None, failed
