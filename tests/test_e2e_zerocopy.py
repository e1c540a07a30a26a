"""Zero-copy dequeue (devarg dequeue-zero-copy=1) with virtio-user.

Frames from zero-copy-threshold up reach the application in mbufs pointing
into the guest's buffers; smaller ones are copied. Either way every frame
must arrive byte-exact and in order, and the zero_copy_packets xstat shows
that the zero-copy path carried the big ones. How held chains are bounded,
given back out of order and kept mapped past a disconnect is covered by the
unit tests (tests/unit/test_split.c, test_zc_*); killing the front end under
zero-copy traffic by test_e2e_reconnect.py.
"""

from __future__ import annotations

import pytest

from harness import (assert_frames_equal, gen_frames, gen_jumbo_mix, read_pcap, total_bytes,
                     write_pcap)
from harness.flows import PCAP_PORT, one_way_transfer
from harness.testpmd import pcap_vdev, vhost_vdev, virtio_user_vdev

pytestmark = pytest.mark.ours_only

THRESHOLD = 600
ZC_ARGS = {"dequeue-zero-copy": 1, "zero-copy-threshold": THRESHOLD}


@pytest.mark.parametrize("packed_vq", [0, 1], ids=["split", "packed"])
def test_guest_to_host_byte_exact(launcher, packed_vq):
    """Frames of 60..9000 bytes, around the threshold and far beyond it
    (chains of several guest buffers with mergeable buffers)."""
    frames = gen_jumbo_mix(240, seed=800 + packed_vq, jumbo_ratio=0.3)
    res = one_way_transfer(launcher, "g2h", frames, mrg_rxbuf=1, packed_vq=packed_vq,
                           jumbo=True, vhost_args=ZC_ARGS)
    assert_frames_equal(res.sent, res.received, f"zero-copy g2h packed_vq={packed_vq}")
    st = res.ours_stats[0]
    assert (st["ipackets"], st["ibytes"]) == (len(frames), total_bytes(frames)), st


def test_zero_copy_counts_and_threshold(launcher):
    """Every frame from the threshold up is handed out zero-copy (nothing
    holds mbufs here, so the bound is never reached); none below it."""
    sock = launcher.path("vh0.sock")
    src, out = launcher.path("in.pcap"), launcher.path("out.pcap")
    frames = gen_frames(200, seed=810)
    write_pcap(src, frames)
    ours = launcher.ours([vhost_vdev(0, sock, **ZC_ARGS), pcap_vdev(0, tx_pcap=out)])
    peer = launcher.peer([virtio_user_vdev(0, sock), pcap_vdev(0, rx_pcap=src)])
    ours.wait_link_up(0)
    peer.wait_link_up(0)
    ours.enable_tx_retry()
    ours.start_forwarding()
    peer.enable_tx_retry()
    peer.start_forwarding()
    ours.wait_stat(PCAP_PORT, "opackets", len(frames), timeout=60, stall=10)
    xs = ours.xstats(0)
    ours.stop_forwarding()
    peer.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert_frames_equal(frames, read_pcap(out), "zero-copy threshold")
    big = sum(len(f) >= THRESHOLD for f in frames)
    assert 0 < big < len(frames)
    assert xs["rx_q0_zero_copy_packets"] == big, xs
    assert xs["rx_q0_good_packets"] == len(frames), xs
    # no IN_ORDER with zero-copy: chains come back in the order mbufs are freed
    assert "features 0x" in ours.log
    features = int(ours.log.split("features 0x")[-1].split()[0], 16)
    assert not features >> 35 & 1, hex(features)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_vm_to_vm_one_copy(launcher):
    """Two eth_vhost ports with zero-copy forwarding to each other: each
    frame is copied once, from guest A's buffer into guest B's."""
    sock_a, sock_b = launcher.path("vhA.sock"), launcher.path("vhB.sock")
    frames_a = gen_frames(150, seed=820, tag=0xA)
    frames_b = gen_frames(150, seed=821, tag=0xB)
    pc = {k: launcher.path(f"{k}.pcap") for k in ("a_in", "a_out", "b_in", "b_out")}
    write_pcap(pc["a_in"], frames_a)
    write_pcap(pc["b_in"], frames_b)
    ours = launcher.ours([vhost_vdev(0, sock_a, **ZC_ARGS), vhost_vdev(1, sock_b, **ZC_ARGS)])
    peer_a = launcher.peer([virtio_user_vdev(0, sock_a, mrg_rxbuf=1),
                            pcap_vdev(0, rx_pcap=pc["a_in"], tx_pcap=pc["a_out"])], name="peerA")
    peer_b = launcher.peer([virtio_user_vdev(0, sock_b, mrg_rxbuf=0),
                            pcap_vdev(0, rx_pcap=pc["b_in"], tx_pcap=pc["b_out"])], name="peerB")
    for port in (0, 1):
        ours.wait_link_up(port)
    for tp in (ours, peer_a, peer_b):
        tp.enable_tx_retry()
    ours.start_forwarding()
    peer_b.start_forwarding()
    peer_a.start_forwarding()
    peer_b.wait_stat(PCAP_PORT, "opackets", len(frames_a), timeout=150, stall=20)
    peer_a.wait_stat(PCAP_PORT, "opackets", len(frames_b), timeout=150, stall=20)
    xs0, xs1 = ours.xstats(0), ours.xstats(1)
    for tp in (peer_a, peer_b, ours):
        tp.stop_forwarding()
    peer_a.quit()
    peer_b.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock_a, "eth_vhost1": sock_b})
    assert_frames_equal(frames_a, read_pcap(pc["b_out"]), "A -> B")
    assert_frames_equal(frames_b, read_pcap(pc["a_out"]), "B -> A")
    assert xs0["rx_q0_zero_copy_packets"] == sum(len(f) >= THRESHOLD for f in frames_a), xs0
    assert xs1["rx_q0_zero_copy_packets"] == sum(len(f) >= THRESHOLD for f in frames_b), xs1
