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
from harness.flows import (PCAP_PORT, enable_scatter_if_supported, exchange_two_guests,
                           one_way_transfer)
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
    assert enable_scatter_if_supported(ours, 0)     # zero-copy frames are chains
    ours.wait_link_up(0)
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
    frames_a = gen_frames(150, seed=820, tag=0xA)
    frames_b = gen_frames(150, seed=821, tag=0xB)
    x = exchange_two_guests(launcher, frames_a, frames_b, vhost_args=ZC_ARGS,
                            a_args=dict(mrg_rxbuf=1), b_args=dict(mrg_rxbuf=0))
    assert_frames_equal(frames_a, x.a_to_b, "A -> B")
    assert_frames_equal(frames_b, x.b_to_a, "B -> A")
    xs0, xs1 = x.xstats[0], x.xstats[1]
    assert xs0["rx_q0_zero_copy_packets"] == sum(len(f) >= THRESHOLD for f in frames_a), xs0
    assert xs1["rx_q0_zero_copy_packets"] == sum(len(f) >= THRESHOLD for f in frames_b), xs1
