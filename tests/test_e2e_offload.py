"""TCP segmentation and checksum offload through eth_vhost, with virtio-user.

testpmd's csum engine turns big TCP frames read from a pcap into TSO
requests (RTE_MBUF_F_TX_TCP_SEG, tso_segsz, l2/l3/l4_len) on its Tx port:
- on our port (host -> guest): a guest that negotiated GUEST_TSO4 and
  GUEST_CSUM gets each frame whole; one that did not gets the segments our
  PMD cuts in software, every one with correct checksums;
- on a virtio-user port (guest -> host): the guest leaves checksums and
  segmentation to us. What our port hands the application follows the RX
  offloads it enabled: nothing (the default): complete frames of the
  guest's MSS; tcp_lro and tcp_cksum: the frames whole, flagged
  RTE_MBUF_F_RX_LRO, checksums partial; legacy-ol-flags=1: whole, as TX
  requests another port honours unchanged.
VM to VM (two virtio-user guests through our two ports) a 64 KB frame stays
whole with app/test-pmd-scripts/whole-frames.cmds (README) or legacy-ol-flags.
virtio-user asks for GUEST_TSO4/6 with Rx offload tcp_lro and for GUEST_CSUM
with tcp_cksum; it completes a NEEDS_CSUM checksum itself on receive.
"""

from __future__ import annotations

import random
import re
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP, IPOption
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from harness import assert_frames_equal, gen_jumbo_mix, read_pcap, write_pcap
from harness.flows import (JUMBO_OURS_ARGS, PCAP_PORT, VHOST_PORT, WHOLE_FRAMES_MSS,
                           enable_scatter_if_supported, keep_frames_whole, start_two_guests)
from harness.inet import l4_checksums_valid, mtu_sized, pseudo_header_sum
from harness.testpmd import parse_verbose, pcap_vdev, vhost_vdev, virtio_user_vdev

pytestmark = pytest.mark.ours_only

MSS = 1400
FRAMES = 6
PAYLOAD = 8000
TSO_BITS = {7: "GUEST_TSO4", 8: "GUEST_TSO6", 11: "HOST_TSO4", 12: "HOST_TSO6"}


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
               Ether(f)[TCP].chksum == pseudo_header_sum(Ether(f)[IP], with_length=with_length)
               for f in frames)


def tcp_stream(frames):
    """(seq, payload) of every frame: what a receiver's TCP would see."""
    return [(Ether(f)[TCP].seq, bytes(Ether(f)[TCP].payload)) for f in frames]


def assert_same_stream(sent, got):
    data = b"".join(p for _, p in sorted(tcp_stream(got)))
    assert data == b"".join(p for _, p in tcp_stream(sent)), "TCP payload differs"


def segment_requests(tp, port: int):
    """Make @tp's csum engine ask @port for TCP and UDP (and, where the port
    can, IPv4) checksums and TSO at MSS. virtio ports cannot do IPv4
    checksums: testpmd computes those itself."""
    ip_hw = "IPV4_CKSUM" in tp.cmd(f"show port {port} tx_offload capabilities")
    tp.cmd(f"port stop {port}")
    for offload in ("tcp_tso", "tcp_cksum", "udp_cksum") + (("ipv4_cksum",) if ip_hw else ()):
        tp.cmd(f"port config {port} tx_offload {offload} on")
    for c in ("set fwd csum", f"csum set ip {'hw' if ip_hw else 'sw'} {port}",
              f"csum set tcp hw {port}", f"csum set udp hw {port}", f"tso set {MSS} {port}"):
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
                      guest_tso: bool = False, rx_offloads=(), vhost_args=None):
    """``frames`` from a pcap on one side to a pcap on the other (``h2g``:
    ours -> guest, ``g2h``: guest -> ours), the ``segmenting`` side ("ours"
    or "peer") asking its vhost/virtio port for TSO; with ``guest_tso`` the
    guest takes TSO frames whole; ``rx_offloads`` switched on at our port,
    which gets ``vhost_args``. Waits for ``want`` frames at the far pcap;
    returns them and our port's xstats."""
    sock = launcher.path("vh0.sock")
    src, out = launcher.path("in.pcap"), launcher.path("out.pcap")
    write_pcap(src, frames)
    ours_pcap, peer_pcap = ((pcap_vdev(0, rx_pcap=src), pcap_vdev(0, tx_pcap=out))
                            if direction == "h2g" else
                            (pcap_vdev(0, tx_pcap=out), pcap_vdev(0, rx_pcap=src)))
    ours = launcher.ours([vhost_vdev(0, sock, **(vhost_args or {})), ours_pcap],
                         app_args=JUMBO_OURS_ARGS)
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=1), peer_pcap])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    enable_scatter_if_supported(ours, VHOST_PORT)
    if rx_offloads:
        ours.cmd(f"port stop {VHOST_PORT}")
        for offload in rx_offloads:
            ours.cmd(f"port config {VHOST_PORT} rx_offload {offload} on")
        ours.cmd(f"port start {VHOST_PORT}")
        ours.wait_link_up(VHOST_PORT)
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
        assert all(l4_checksums_valid(f) for f in got)
        assert max(len(Ether(f)[TCP].payload) for f in got) == MSS
        assert xs["tx_q0_good_packets"] == want, xs


def test_guest_tso_cut_by_default(launcher):
    """An application that enabled no RX offload gets a guest's TSO frames
    cut into frames of the guest's MSS with complete checksums: nothing left
    to finish, nothing above the MTU (what a NIC, pcap or tap port needs)."""
    frames = big_tcp_frames(3)
    want = FRAMES * -(-PAYLOAD // MSS)
    got, xs, _ = tso_over_one_link(launcher, "g2h", frames, want, "peer")
    assert len(got) == want and xs["rx_q0_good_packets"] == want, xs
    assert xs["rx_q0_size_1519_max_packets"] == 0, xs
    assert mtu_sized(got) and all(l4_checksums_valid(f) for f in got)
    assert max(len(Ether(f)[TCP].payload) for f in got) == MSS
    assert_same_stream(frames, got)


def test_guest_tso_whole_with_lro(launcher):
    """With tcp_lro and tcp_cksum enabled, a guest's TSO frames arrive whole
    (RTE_MBUF_F_RX_LRO), their TCP checksum partial as the guest left it
    (virtio's pseudo-header sum, with the length)."""
    frames = big_tcp_frames(3)
    got, xs, _ = tso_over_one_link(launcher, "g2h", frames, FRAMES, "peer",
                                   rx_offloads=("tcp_lro", "tcp_cksum"))
    assert len(got) == FRAMES and xs["rx_q0_size_1519_max_packets"] == FRAMES, xs
    assert partial_checksums(got, with_length=True)
    assert_same_stream(frames, got)


def test_guest_tso_legacy_ol_flags(launcher):
    """legacy-ol-flags=1: a guest's TSO frames arrive whole on our port, as
    mbufs a NIC can segment: l2/l3/l4_len and tso_segsz set (checked by our
    other port in test_vm_to_vm_tso), and the TCP field holding DPDK's TSO
    pseudo-header sum (without the length), whatever virtio's convention put
    there."""
    frames = big_tcp_frames(3)
    got, xs, _ = tso_over_one_link(launcher, "g2h", frames, FRAMES, "peer",
                                   vhost_args={"legacy-ol-flags": 1})
    assert len(got) == FRAMES and xs["rx_q0_size_1519_max_packets"] == FRAMES, xs
    assert partial_checksums(got, with_length=False)
    assert_same_stream(frames, got)


# How our testpmd forwards VM to VM: io forwarding with nothing enabled (the
# guests' TSO frames are cut on the way in), README's whole-frames.cmds, or io
# forwarding with legacy-ol-flags=1.
V2V_MODES = {
    "default": dict(vhost_args={}, whole=False),
    "whole_frames": dict(vhost_args={}, whole=True),
    "legacy": dict(vhost_args={"legacy-ol-flags": 1}, whole=False),
    # as Open vSwitch needs it (README, "Open vSwitch"): whole frames in
    # external buffers, one mbuf each
    "legacy_ext": dict(vhost_args={"legacy-ol-flags": 1, "ext-buffer": 1, "linear-buffer": 1},
                       whole=False),
}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode,b_takes_tso", [("default", True), ("whole_frames", True),
                                              ("whole_frames", False), ("legacy", True),
                                              ("legacy", False), ("legacy_ext", True),
                                              ("legacy_ext", False)],
                         ids=["default", "whole_frames", "whole_frames-b_segmented", "legacy",
                              "legacy-b_segmented", "legacy_ext", "legacy_ext-b_segmented"])
def test_vm_to_vm_tso(launcher, mode, b_takes_tso):
    """Guest A sends TSO frames (csum engine on its virtio port); our two
    ports forward them to guest B. With the whole-frames settings or
    legacy-ol-flags they cross our ports whole; B gets them whole if it takes
    TSO, else in segments cut by our port. By default they are cut on the way
    in, into A's MSS. legacy_ext: legacy with ext-buffer=1 and linear-buffer=1,
    as Open vSwitch needs it: each frame in one external buffer, which our
    port 1 writes B's checksum convention into, or cuts for B."""
    settings = V2V_MODES[mode]
    src, out = launcher.path("a-in.pcap"), launcher.path("b-out.pcap")
    frames = big_tcp_frames(2)
    write_pcap(src, frames)
    g = start_two_guests(launcher, pcap_vdev(0, rx_pcap=src), pcap_vdev(0, tx_pcap=out),
                         vhost_args=settings["vhost_args"],
                         a_args=dict(mrg_rxbuf=1), b_args=dict(mrg_rxbuf=1))
    if settings["whole"]:
        keep_frames_whole(g.ours)
    if b_takes_tso:
        guest_takes_tso(g.peer_b)
    segment_requests(g.peer_a, VHOST_PORT)
    g.ours.enable_tx_retry(mode="csum" if settings["whole"] else "io")
    g.peer_b.enable_tx_retry()
    for tp in (g.ours, g.peer_b):
        tp.start_forwarding()
    g.peer_a.start_forwarding()
    cut_by = MSS if mode == "default" else WHOLE_FRAMES_MSS if settings["whole"] else MSS
    whole = mode != "default" and b_takes_tso
    want = FRAMES if whole else FRAMES * -(-PAYLOAD // cut_by)
    g.peer_b.wait_stat(PCAP_PORT, "opackets", want, timeout=120, stall=20)
    xs0, xs1 = g.ours.xstats(0), g.ours.xstats(1)
    g.finish()
    ours = g.ours

    assert negotiated_tso_bits(ours) >= {"HOST_TSO4", "HOST_TSO6"}
    # whole through our first port, unless cut on the way in
    assert xs0["rx_q0_size_1519_max_packets"] == (0 if mode == "default" else FRAMES), xs0
    got = read_pcap(out)
    assert len(got) == want
    assert_same_stream(frames, got)
    if whole:
        # nobody computed a checksum on the way (the point of VM-to-VM
        # offload): B gets the pseudo-header sum in virtio's convention
        assert partial_checksums(got, with_length=True)
        assert xs1["tx_q0_size_1519_max_packets"] == FRAMES, xs1
    else:
        assert all(l4_checksums_valid(f) for f in got) and mtu_sized(got)
        assert max(len(Ether(f)[TCP].payload) for f in got) == cut_by
        assert xs1["tx_q0_good_packets"] == want, xs1


@pytest.mark.parametrize("tso", [0, 1])
def test_tso_devarg(launcher, tso):
    """As net_vhost's devarg: tso=0 withholds HOST_TSO4/6 (the guest cannot
    leave TCP segmentation to us), tso=1 (our default) offers them; GUEST_TSO4/6
    are offered either way, so a guest negotiates the same features on
    net_vhost's ports and ours for the same devargs. virtio-user shows what it
    was offered as its ports' offload capabilities (its TX: HOST_TSO, its RX
    LRO: GUEST_TSO)."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock, tso=tso)])
    peer = launcher.peer([virtio_user_vdev(0, sock)])
    ours.wait_link_up(VHOST_PORT)
    tx_capa = peer.cmd(f"show port {VHOST_PORT} tx_offload capabilities")
    rx_capa = peer.cmd(f"show port {VHOST_PORT} rx_offload capabilities")
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert ("TCP_TSO" in tx_capa) == bool(tso), tx_capa
    assert "TCP_LRO" in rx_capa, rx_capa
    # checksum offload is offered either way
    assert "TCP_CKSUM" in tx_capa and "TCP_CKSUM" in rx_capa, (tx_capa, rx_capa)


def mixed_frames(seed: int):
    """What a guest sends with its checksums left to the host: TCP and UDP
    over IPv4 and IPv6, IPv4 with options, and big TCP frames (cut by its
    TSO), every checksum field wrong until someone finishes it."""
    rng = random.Random(seed)
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    v4, v6 = IP(src="10.0.0.1", dst="10.0.0.2"), IPv6(src="fd00::1", dst="fd00::2")
    opts = IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption(b"\x01\x01\x01\x00")])
    shapes = [v4 / TCP(sport=1, dport=2, flags="A") / Raw(rng.randbytes(300)),
              v4 / UDP(sport=3, dport=4) / Raw(rng.randbytes(500)),
              v6 / TCP(sport=5, dport=6, flags="A") / Raw(rng.randbytes(700)),
              v6 / UDP(sport=7, dport=8) / Raw(rng.randbytes(900)),
              opts / TCP(sport=9, dport=10, flags="A") / Raw(rng.randbytes(400)),
              opts / UDP(sport=11, dport=12) / Raw(rng.randbytes(200)),
              v4 / TCP(sport=13, dport=14, flags="A") / Raw(rng.randbytes(PAYLOAD))]
    return [bytes(eth / p) for p in shapes]


def test_guest_checksums_finished_by_default(launcher):
    """A guest leaving every TCP and UDP checksum to the host (and cutting
    nothing itself): our port, with no RX offload enabled, hands an
    application that forwards to a pcap port only complete frames: every IPv4,
    TCP and UDP checksum right, IP options or not, nothing above the MTU."""
    frames = mixed_frames(4)
    want = len(frames) - 1 + -(-PAYLOAD // MSS)
    got, xs, _ = tso_over_one_link(launcher, "g2h", frames, want, "peer")
    assert len(got) == want, xs
    bad = [Ether(f).summary() for f in got if not l4_checksums_valid(f)]
    assert not bad, f"{len(bad)} frames with checksums left unfinished: {bad[:4]}"
    assert mtu_sized(got)
    assert xs["rx_q0_malformed_chains"] == 0, xs


def test_rx_offload_flags(launcher):
    """With tcp_cksum, udp_cksum and tcp_lro enabled, testpmd (rxonly,
    verbose) sees DPDK's RX flags, not TX requests: partial checksums
    RTE_MBUF_F_RX_L4_CKSUM_NONE, TSO frames RTE_MBUF_F_RX_LRO; with nothing
    enabled, RTE_MBUF_F_RX_L4_CKSUM_GOOD and every frame of the MTU."""
    sock = launcher.path("vh0.sock")
    src = launcher.path("in.pcap")
    frames = mixed_frames(5)
    write_pcap(src, frames)
    ours = launcher.ours([vhost_vdev(0, sock)], app_args=JUMBO_OURS_ARGS)
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=1), pcap_vdev(0, rx_pcap=src)])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    enable_scatter_if_supported(ours, VHOST_PORT)
    ours.cmd(f"port stop {VHOST_PORT}")
    for offload in ("tcp_cksum", "udp_cksum", "tcp_lro"):
        ours.cmd(f"port config {VHOST_PORT} rx_offload {offload} on")
    ours.cmd(f"port start {VHOST_PORT}")
    ours.wait_link_up(VHOST_PORT)
    for c in ("set fwd rxonly", "set verbose 1"):
        ours.cmd(c)
    segment_requests(peer, VHOST_PORT)
    ours.start_forwarding()
    peer.start_forwarding()
    ours.wait_dumped(VHOST_PORT, len(frames), timeout=60)
    time.sleep(0.3)     # time to show a duplicate
    dump = ours.log
    ours.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    flags = [(p.length, p.ol_flags) for p in parse_verbose(dump) if p.received]
    assert len(flags) == len(frames), dump[-3000:]
    assert all("RTE_MBUF_F_RX_L4_CKSUM_NONE" in f for _, f in flags), flags
    lro = [n for n, f in flags if "RTE_MBUF_F_RX_LRO" in f]
    assert lro == [len(frames[-1])], flags
    assert not any("TX_" in name for _, f in flags for name in f), flags


@pytest.mark.parametrize("legacy", [0, 1])
def test_offload_capabilities(launcher, legacy):
    """Our port advertises exactly what it does, and ethdev refuses a
    configuration asking for more (VLAN stripping). In DPDK's legacy
    convention no RX offload describes what arrives: none is advertised."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock, **{"legacy-ol-flags": legacy})])
    rx = set(ours.cmd(f"show port {VHOST_PORT} rx_offload capabilities").split())
    tx = set(ours.cmd(f"show port {VHOST_PORT} tx_offload capabilities").split())
    want_rx = {"SCATTER"} | (set() if legacy else {"TCP_CKSUM", "UDP_CKSUM", "TCP_LRO"})
    assert want_rx <= rx and not ({"TCP_CKSUM", "TCP_LRO", "VLAN_STRIP"} - want_rx) & rx, rx
    assert {"MULTI_SEGS", "IPV4_CKSUM", "TCP_CKSUM", "UDP_CKSUM", "TCP_TSO", "UDP_TSO"} <= tx, tx
    ours.cmd(f"port stop {VHOST_PORT}")
    ours.cmd(f"port config {VHOST_PORT} rx_offload vlan_strip on")
    out = ours.cmd(f"port start {VHOST_PORT}")
    assert re.search(r"doesn't match Rx offloads capabilities|Fail to configure port", out +
                     ours.log), out
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})


MBUF_DATA_ROOM = 2048   # testpmd's default mbufs: 2176 bytes, 128 of headroom


@pytest.mark.parametrize("buffers", ["chained", "linear-buffer", "ext-buffer"])
def test_linear_and_ext_buffer(launcher, buffers):
    """Frames larger than an mbuf (9000 bytes, mixed with others) from a
    guest: by default they arrive as mbuf chains; with linear-buffer=1 an
    application that takes single-segment mbufs only gets the frames that fit
    one, the others dropped and counted; with ext-buffer=1 every frame, each
    in one segment (an external buffer of its size). testpmd's verbose dump
    shows each mbuf's segments."""
    frames = gen_jumbo_mix(30, seed=77)
    fit = [f for f in frames if len(f) <= MBUF_DATA_ROOM]
    assert len(fit) < len(frames)
    sock, src, out = launcher.path("vh0.sock"), launcher.path("in.pcap"), launcher.path("out.pcap")
    write_pcap(src, frames)
    args = {} if buffers == "chained" else {buffers: 1}
    ours = launcher.ours([vhost_vdev(0, sock, **args), pcap_vdev(0, tx_pcap=out)],
                         app_args=JUMBO_OURS_ARGS)
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=1), pcap_vdev(0, rx_pcap=src)])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    enable_scatter_if_supported(ours, VHOST_PORT)
    ours.cmd("set verbose 1")
    peer.enable_tx_retry()
    ours.start_forwarding()
    peer.start_forwarding()
    want = fit if buffers == "linear-buffer" else frames
    ours.wait_dumped(VHOST_PORT, len(want), timeout=60)
    ours.wait_stat(PCAP_PORT, "opackets", len(want), timeout=60, stall=10)
    peer.wait_quiescent(PCAP_PORT, "ipackets")
    xs = ours.xstats(VHOST_PORT)
    dump = ours.log
    ours.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert_frames_equal(want, read_pcap(out), buffers)
    assert xs["rx_q0_dropped_packets"] == len(frames) - len(want), xs
    segs = [int(n) for n in re.findall(r"length=\d+ - nb_segs=(\d+)", dump)]
    assert len(segs) == len(want), dump[-2000:]
    if buffers == "chained":
        assert max(segs) > 1, segs
    else:
        assert set(segs) == {1}, segs
