"""UDP fragmentation offload (UFO) through eth_vhost, both ways, with the
Python front end (tests/harness/vhost_user_client.py), which writes any
virtio-net header: DPDK's virtio PMD never sends a UFO frame, Linux guests
stopped doing so in 4.14.

From a guest (it negotiated HOST_UFO and sends one 8 KB UDP/IPv4 datagram
with gso_type UDP and its checksum left partial, NEEDS_CSUM) to a net_pcap
port: with no RX offload enabled our port hands the application the IP
fragments the guest would have sent itself, each within the MTU, the
datagram's checksum finished; with tcp_lro (the offload that asks for GSO
frames whole) one frame, RTE_MBUF_F_RX_LRO, its checksum finished (the
fragments of a datagram cannot finish it).

Towards a guest: testpmd 22.11 cannot ask a port for UFO (its csum engine
turns "tso set" into UDP fragmentation only through its own software GSO,
which cuts the datagram before the port sees it), so the request comes from
a first guest on a port with legacy-ol-flags=1, whose UFO frame arrives as
the TX request RTE_MBUF_F_TX_UDP_SEG (tso_segsz, l2/l3/l4_len), and io
forwarding hands it unchanged to our second port: a guest that negotiated
GUEST_UFO gets the datagram whole with gso_type UDP, one that did not gets
fragments cut by librte_gso.
"""

from __future__ import annotations

import random
from typing import List

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum

from harness import read_pcap
from harness.flows import JUMBO_OURS_ARGS, PCAP_PORT, VHOST_PORT, enable_scatter_if_supported
from harness.inet import checksum_problems, mtu_sized, pseudo_header_sum, reassemble_ipv4
from harness.testpmd import parse_verbose, pcap_vdev, vhost_vdev
from harness.vhost_user_client import (DEFAULT_FEATURES, F_CSUM, F_GUEST_CSUM, F_GUEST_UFO,
                                       F_HOST_UFO, GSO_UDP, HDR_F_NEEDS_CSUM, FrontEnd,
                                       NetHdr, bit, net_hdr)

pytestmark = pytest.mark.ours_only

PAYLOAD = 8000          # UDP payload of the datagram
FRAGMENT = 1480         # gso_size: IP payload per fragment at MTU 1500
FRAGMENTS = -(-(8 + PAYLOAD) // FRAGMENT)
L4 = 34                 # Ethernet + IPv4 header: where UDP starts
UDP_CSUM = 6
BIG_BUF = 16 << 10      # guest buffers that take the whole datagram (no MRG_RXBUF)
RING = 32
UFO_HDR = net_hdr(HDR_F_NEEDS_CSUM, GSO_UDP, hdr_len=L4 + 8, gso_size=FRAGMENT,
                  csum_start=L4, csum_offset=UDP_CSUM)
GUEST_SENDS_UFO = DEFAULT_FEATURES | bit(F_CSUM) | bit(F_HOST_UFO)


def datagram(seed: int, partial: bool) -> bytes:
    """One UDP/IPv4 datagram of PAYLOAD random bytes in a frame: its UDP
    checksum complete, or (``partial``) left to the receiver as a guest
    leaves it with NEEDS_CSUM (the pseudo-header sum)."""
    rng = random.Random(seed)
    pkt = Ether(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                      IP(src="10.0.0.1", dst="10.0.0.2", id=0x4242) /
                      UDP(sport=40000, dport=5001) / Raw(rng.randbytes(PAYLOAD))))
    if partial:
        pkt[UDP].chksum = pseudo_header_sum(pkt[IP], proto=17)
    return bytes(pkt)


def finish_partial(hdr: NetHdr, frame: bytes) -> bytes:
    """``frame`` with the checksum a NEEDS_CSUM header leaves to the guest
    finished, as a guest does: the sum from csum_start to the end, stored
    complemented at csum_offset (0 as 0xffff)."""
    if not hdr.flags & HDR_F_NEEDS_CSUM:
        return frame
    at = hdr.csum_start + hdr.csum_offset
    value = checksum(frame[hdr.csum_start:]) or 0xffff
    return frame[:at] + value.to_bytes(2, "big") + frame[at + 2:]


def assert_fragments_of(sent: bytes, got: List[bytes]):
    """``got`` are the IP fragments of the datagram in ``sent`` (its UDP
    checksum complete), each within the MTU, every checksum right."""
    assert len(got) == FRAGMENTS, [len(f) for f in got]
    assert mtu_sized(got), [len(f) for f in got]
    problems = checksum_problems(got)
    assert not problems, problems
    datagrams, _ = reassemble_ipv4(got)
    assert [d.frames for d in datagrams] == [list(range(len(got)))]
    assert bytes(datagrams[0].ip) == bytes(Ether(sent)[IP]), "the reassembled datagram differs"


@pytest.mark.parametrize("lro", [False, True], ids=["default", "tcp_lro"])
def test_ufo_from_guest(launcher, lro):
    """A guest's UFO datagram reaches an application forwarding to net_pcap
    as the fragments the guest would have sent, or whole with tcp_lro; the
    verbose dump shows what our port flagged."""
    sock, out = launcher.path("vh0.sock"), launcher.path("out.pcap")
    ours = launcher.ours([vhost_vdev(0, sock), pcap_vdev(0, tx_pcap=out)],
                         app_args=JUMBO_OURS_ARGS if lro else [])
    guest = FrontEnd(sock, features=GUEST_SENDS_UFO, queue_size=RING, buf_size=BIG_BUF,
                     tag="ufo")
    frame = datagram(1, partial=True)
    want = 1 if lro else FRAGMENTS
    try:
        guest.start()
        ours.wait_link_up(VHOST_PORT)
        if lro:
            enable_scatter_if_supported(ours, VHOST_PORT)
            for c in (f"port stop {VHOST_PORT}", f"port config {VHOST_PORT} rx_offload tcp_lro on",
                      f"port start {VHOST_PORT}"):
                ours.cmd(c)
        ours.wait_link_up(VHOST_PORT)
        ours.cmd("set verbose 1")
        ours.start_forwarding()
        guest.send_frames([frame], hdr=UFO_HDR)
        # on loss, the checks of the capture say what is missing
        ours.wait_stat(PCAP_PORT, "opackets", want, timeout=30, stall=10,
                       raise_on_timeout=False)
        xs = ours.xstats(VHOST_PORT)
        ours.stop_forwarding()
    finally:
        guest.close()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    got = read_pcap(out)
    sent = datagram(1, partial=False)
    dumped = [p for p in parse_verbose(ours.log) if p.received and p.port == VHOST_PORT]
    assert xs["rx_q0_dropped_packets"] == xs["rx_q0_malformed_chains"] == 0, xs
    if lro:
        assert got == [sent], "not the datagram, whole, its checksum finished"
        assert [(p.length, "RTE_MBUF_F_RX_LRO" in p.ol_flags) for p in dumped] == \
            [(len(sent), True)], dumped
    else:
        assert_fragments_of(sent, got)
        assert [p.length for p in dumped] == [len(f) for f in got], dumped
        assert all("RTE_MBUF_F_RX_IP_CKSUM_GOOD" in p.ol_flags and "L4_FRAG" in p.sw_ptype
                   for p in dumped), dumped


@pytest.mark.parametrize("guest_ufo", [True, False], ids=["guest_ufo", "fragmented"])
def test_ufo_to_guest(launcher, guest_ufo):
    """Guest A's UFO datagram, a TX request once through our legacy port
    0, goes out of our port 1 to guest B: whole with gso_type UDP if B
    negotiated GUEST_UFO (and, the spec says, NEEDS_CSUM with the
    pseudo-header sum in the field), else in IP fragments within the MTU
    with complete checksums; either way the datagram A sent."""
    socks = [launcher.path("vhA.sock"), launcher.path("vhB.sock")]
    ours = launcher.ours([vhost_vdev(0, socks[0], **{"legacy-ol-flags": 1}),
                          vhost_vdev(1, socks[1])])
    a = FrontEnd(socks[0], features=GUEST_SENDS_UFO, queue_size=RING, buf_size=BIG_BUF, tag="A")
    b_features = DEFAULT_FEATURES | (bit(F_GUEST_CSUM) | bit(F_GUEST_UFO) if guest_ufo else 0)
    b = FrontEnd(socks[1], features=b_features, queue_size=RING, buf_size=BIG_BUF, tag="B")
    frame = datagram(2, partial=True)
    want = 1 if guest_ufo else FRAGMENTS
    try:
        a.start()
        b.start()
        for port in (0, 1):
            ours.wait_link_up(port)
        ours.start_forwarding()
        a.send_frames([frame], hdr=UFO_HDR)
        got = b.receive_with_headers(want, timeout=10, quiet=0.5)
        xs = ours.xstats(1)
        ours.stop_forwarding()
    finally:
        for g in (a, b):
            g.close()
    launcher.finish_ours(ours, ports={f"eth_vhost{i}": s for i, s in enumerate(socks)})
    sent = datagram(2, partial=False)
    assert xs["tx_q0_dropped_packets"] == 0, xs
    if guest_ufo:
        assert len(got) == 1, [(h, len(f)) for h, f in got]
        hdr, whole = got[0]
        assert (hdr.gso_type, hdr.gso_size, hdr.hdr_len) == (GSO_UDP, FRAGMENT, L4 + 8), hdr
        # VIRTIO 1.2, 5.1.6.4.1: a GSO frame to the driver comes with NEEDS_CSUM
        assert (hdr.flags, hdr.csum_start, hdr.csum_offset) == \
            (HDR_F_NEEDS_CSUM, L4, UDP_CSUM), hdr
        assert Ether(whole)[UDP].chksum == pseudo_header_sum(Ether(whole)[IP], proto=17), \
            "the UDP checksum field does not hold the pseudo-header sum NEEDS_CSUM asks for"
        assert finish_partial(hdr, whole) == sent
    else:
        assert all(h.flags == 0 and h.gso_type == 0 for h, _ in got), [h for h, _ in got]
        assert_fragments_of(sent, [f for _, f in got])
