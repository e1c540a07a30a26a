"""TCP segmentation and checksum offload through eth_vhost, with virtio-user.

testpmd's csum engine turns big TCP frames read from a pcap into TSO
requests (RTE_MBUF_F_TX_TCP_SEG, tso_segsz, l2/l3/l4_len) on its Tx port:
- on our port (host -> guest): a guest that negotiated GUEST_TSO4 and
  GUEST_CSUM gets each frame whole; one that did not gets the segments our
  PMD cuts in software, every one with correct checksums;
- on a virtio-user port (guest -> host): the guest's virtio-net header
  becomes offload metadata on our Rx mbufs, which our other port then honours
  for the second guest (VM to VM): whole frames to a guest that takes them,
  correct segments of the first guest's MSS to one that does not.
virtio-user asks for GUEST_TSO4/6 with Rx offload tcp_lro and for GUEST_CSUM
with tcp_cksum; it completes a NEEDS_CSUM checksum itself on receive.
"""

from __future__ import annotations

import random
import re
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum

from harness import read_pcap, write_pcap
from harness.flows import (JUMBO_OURS_ARGS, PCAP_PORT, VHOST_PORT, enable_scatter_if_supported,
                           start_two_guests)
from harness.testpmd import pcap_vdev, vhost_vdev, virtio_user_vdev

pytestmark = pytest.mark.ours_only

MSS = 1400
FRAMES = 6
PAYLOAD = 8000
TSO_BITS = {7: "GUEST_TSO4", 8: "GUEST_TSO6", 11: "HOST_TSO4", 12: "HOST_TSO6"}


def pseudo_header_sum(ip, with_length: bool = True) -> int:
    """What a TCP checksum field holds while the checksum is left to the
    receiver: the folded sum of the pseudo-header, not inverted. For TSO,
    virtio (Linux) counts the TCP length in it, DPDK (and NICs) do not."""
    src, dst = (bytes(map(int, a.split("."))) for a in (ip.src, ip.dst))
    length = ip.len - ip.ihl * 4 if with_length else 0
    return checksum(struct.pack("!4s4sBBH", src, dst, 0, 6, length)) ^ 0xffff


def big_tcp_frames(seed: int):
    """IPv4/TCP frames with PAYLOAD bytes each, consecutive sequence numbers,
    TCP checksum field as a DPDK application prepares it for TSO."""
    rng = random.Random(seed)
    frames = []
    for i in range(FRAMES):
        pkt = Ether(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                          IP(src="10.0.0.1", dst="10.0.0.2", id=i) /
                          TCP(sport=40000, dport=5001, seq=1 + i * PAYLOAD, flags="A") /
                          Raw(rng.randbytes(PAYLOAD))))
        pkt[TCP].chksum = pseudo_header_sum(pkt[IP], with_length=False)
        frames.append(bytes(pkt))
    return frames


def partial_checksums(frames, with_length: bool) -> bool:
    """Every frame has a valid IPv4 checksum and the pseudo-header sum in TCP's."""
    return all(Ether(f)[IP].chksum == Ether(bytes(Ether(f)))[IP].chksum and
               Ether(f)[TCP].chksum == pseudo_header_sum(Ether(f)[IP], with_length)
               for f in frames)


def checksums_valid(frame: bytes) -> bool:
    """IPv4 and TCP checksums are complete and right."""
    pkt = Ether(frame)
    fresh = pkt.copy()
    del fresh[IP].chksum
    del fresh[TCP].chksum
    fresh = Ether(bytes(fresh))
    return (pkt[IP].chksum, pkt[TCP].chksum) == (fresh[IP].chksum, fresh[TCP].chksum)


def tcp_stream(frames):
    """(seq, payload) of every frame: what a receiver's TCP would see."""
    return [(Ether(f)[TCP].seq, bytes(Ether(f)[TCP].payload)) for f in frames]


def assert_same_stream(sent, got):
    data = b"".join(p for _, p in sorted(tcp_stream(got)))
    assert data == b"".join(p for _, p in tcp_stream(sent)), "TCP payload differs"


def segment_requests(tp, port: int):
    """Make @tp's csum engine ask @port for TCP (and, where the port can,
    IPv4) checksums and TSO at MSS. virtio ports cannot do IPv4 checksums:
    testpmd computes those itself."""
    ip_hw = "IPV4_CKSUM" in tp.cmd(f"show port {port} tx_offload capabilities")
    tp.cmd(f"port stop {port}")
    for offload in ("tcp_tso", "tcp_cksum") + (("ipv4_cksum",) if ip_hw else ()):
        tp.cmd(f"port config {port} tx_offload {offload} on")
    for c in ("set fwd csum", f"csum set ip {'hw' if ip_hw else 'sw'} {port}",
              f"csum set tcp hw {port}", f"tso set {MSS} {port}"):
        tp.cmd(c)
    out = tp.cmd(f"tso show {port}")
    assert re.search(rf"non-tunneled packets is {MSS}\b", out), out
    tp.cmd(f"port start {port}")
    tp.wait_link_up(port)


def guest_takes_tso(tp, port: int = VHOST_PORT):
    """virtio-user negotiates GUEST_TSO4/6 (tcp_lro) and GUEST_CSUM (tcp_cksum)."""
    for c in (f"port stop {port}", f"port config {port} rx_offload tcp_lro on",
              f"port config {port} rx_offload tcp_cksum on", f"port start {port}"):
        tp.cmd(c)
    tp.wait_link_up(port)


def negotiated_tso_bits(tp):
    features = int(re.findall(r"features 0x([0-9a-f]+) negotiated", tp.log)[-1], 16)
    return {name for bit, name in TSO_BITS.items() if features >> bit & 1}


def tso_over_one_link(launcher, direction: str, frames, want: int, segmenting: str,
                      guest_tso: bool = False):
    """``frames`` from a pcap on one side to a pcap on the other (``h2g``:
    ours -> guest, ``g2h``: guest -> ours), the ``segmenting`` side ("ours"
    or "peer") asking its vhost/virtio port for TSO; with ``guest_tso`` the
    guest takes TSO frames whole. Waits for ``want`` frames at the far pcap;
    returns them and our port's xstats."""
    sock = launcher.path("vh0.sock")
    src, out = launcher.path("in.pcap"), launcher.path("out.pcap")
    write_pcap(src, frames)
    ours_pcap, peer_pcap = ((pcap_vdev(0, rx_pcap=src), pcap_vdev(0, tx_pcap=out))
                            if direction == "h2g" else
                            (pcap_vdev(0, tx_pcap=out), pcap_vdev(0, rx_pcap=src)))
    ours = launcher.ours([vhost_vdev(0, sock), ours_pcap], app_args=JUMBO_OURS_ARGS)
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=1), peer_pcap])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    enable_scatter_if_supported(ours, VHOST_PORT)
    if guest_tso:
        guest_takes_tso(peer)
    segment_requests(ours if segmenting == "ours" else peer, VHOST_PORT)
    receiver, sender = (peer, ours) if direction == "h2g" else (ours, peer)
    receiver.enable_tx_retry()
    receiver.start_forwarding()
    sender.start_forwarding()
    receiver.wait_stat(PCAP_PORT, "opackets", want, timeout=60, stall=10)
    xs = ours.xstats(VHOST_PORT)
    ours.stop_forwarding()
    peer.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    return read_pcap(out), xs, ours


@pytest.mark.parametrize("guest_tso", [True, False], ids=["guest_tso", "no_guest_tso"])
def test_host_to_guest_tso(launcher, guest_tso):
    frames = big_tcp_frames(1)
    want = FRAMES if guest_tso else FRAMES * -(-PAYLOAD // MSS)
    got, xs, ours = tso_over_one_link(launcher, "h2g", frames, want, "ours", guest_tso)
    assert len(got) == want
    assert_same_stream(frames, got)
    if guest_tso:
        # whole, checksum left to the guest with the pseudo-header sum as
        # virtio has it (virtio-user reports RX_L4_CKSUM_NONE: data valid)
        assert partial_checksums(got, with_length=True)
        assert xs["tx_q0_size_1519_max_packets"] == FRAMES, xs
        assert negotiated_tso_bits(ours) >= {"GUEST_TSO4", "GUEST_TSO6"}
    else:
        assert all(checksums_valid(f) for f in got)
        assert max(len(Ether(f)[TCP].payload) for f in got) == MSS
        assert xs["tx_q0_good_packets"] == want, xs


def test_guest_to_host_tso_metadata(launcher):
    """A guest's TSO frames arrive whole on our port, as mbufs a NIC can
    segment: l2/l3/l4_len and tso_segsz set (checked by our other port in
    test_vm_to_vm_tso), and the TCP field holding DPDK's TSO pseudo-header
    sum (without the length), whatever virtio's convention put there."""
    frames = big_tcp_frames(3)
    got, xs, _ = tso_over_one_link(launcher, "g2h", frames, FRAMES, "peer")
    assert len(got) == FRAMES and xs["rx_q0_size_1519_max_packets"] == FRAMES, xs
    assert partial_checksums(got, with_length=False)
    assert_same_stream(frames, got)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("b_takes_tso", [True, False], ids=["whole", "segmented"])
def test_vm_to_vm_tso(launcher, b_takes_tso):
    """Guest A sends TSO frames (csum engine on its virtio port); our two
    ports forward them (io) to guest B. They cross our port whole; B gets
    them whole if it takes TSO, else in segments of A's MSS."""
    src, out = launcher.path("a-in.pcap"), launcher.path("b-out.pcap")
    frames = big_tcp_frames(2)
    write_pcap(src, frames)
    g = start_two_guests(launcher, pcap_vdev(0, rx_pcap=src), pcap_vdev(0, tx_pcap=out),
                         a_args=dict(mrg_rxbuf=1), b_args=dict(mrg_rxbuf=1))
    if b_takes_tso:
        guest_takes_tso(g.peer_b)
    segment_requests(g.peer_a, VHOST_PORT)
    for tp in (g.ours, g.peer_b):
        tp.enable_tx_retry()
        tp.start_forwarding()
    g.peer_a.start_forwarding()
    want = FRAMES if b_takes_tso else FRAMES * -(-PAYLOAD // MSS)
    g.peer_b.wait_stat(PCAP_PORT, "opackets", want, timeout=120, stall=20)
    xs0, xs1 = g.ours.xstats(0), g.ours.xstats(1)
    g.finish()
    ours = g.ours

    # every frame crossed our first port whole: no segmentation on the way in
    assert xs0["rx_q0_size_1519_max_packets"] == FRAMES, xs0
    assert negotiated_tso_bits(ours) >= {"HOST_TSO4", "HOST_TSO6"}
    got = read_pcap(out)
    assert len(got) == want
    assert_same_stream(frames, got)
    if b_takes_tso:
        # nobody computed a checksum on the way (the point of VM-to-VM
        # offload): B gets the pseudo-header sum in virtio's convention
        assert partial_checksums(got, with_length=True)
        assert xs1["tx_q0_size_1519_max_packets"] == FRAMES, xs1
    else:
        assert all(checksums_valid(f) for f in got)
        assert max(len(Ether(f)[TCP].payload) for f in got) == MSS
        assert xs1["tx_q0_good_packets"] == want, xs1


@pytest.mark.parametrize("tso", [0, 1])
def test_tso_devarg(launcher, tso):
    """tso=0: the guest is offered no TSO either way; tso=1 (default): both.
    virtio-user shows what it was offered as its ports' offload capabilities."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock, tso=tso)])
    peer = launcher.peer([virtio_user_vdev(0, sock)])
    ours.wait_link_up(VHOST_PORT)
    tx_capa = peer.cmd(f"show port {VHOST_PORT} tx_offload capabilities")
    rx_capa = peer.cmd(f"show port {VHOST_PORT} rx_offload capabilities")
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert ("TCP_TSO" in tx_capa) == bool(tso), tx_capa
    assert ("TCP_LRO" in rx_capa) == bool(tso), rx_capa
    # checksum offload is offered either way
    assert "TCP_CKSUM" in tx_capa and "TCP_CKSUM" in rx_capa, (tx_capa, rx_capa)
