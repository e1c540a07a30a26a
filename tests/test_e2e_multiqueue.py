"""Multi-queue: every queue pair of an eth_vhost port carries its own traffic.

net_pcap gives one queue per rx_pcap/tx_pcap file, and testpmd's io
forwarding moves Rx queue i of one port to Tx queue i of the other, so with
N files on each side queue i of our port carries exactly file i: every
queue is checked byte-exact and in order, on its own, and against the
per-queue xstats of our port.

Also: a front end asking for more queue pairs than the port offers is
refused (virtio-user 22.11 does not check GET_QUEUE_NUM itself), and the port
then serves a front end that asks for what is offered.
"""

from __future__ import annotations

import time

import pytest

from harness import assert_frames_equal, gen_frames, read_pcap, total_bytes, write_pcap
from harness.flows import PCAP_PORT, VHOST_PORT
from harness.launcher import PORT_FAILURE_RE
from harness.testpmd import vhost_vdev, virtio_user_vdev

FRAMES_PER_QUEUE = 200


def multi_pcap_vdev(index: int, rx_files, tx_files) -> str:
    """net_pcap with one queue per file: rx_pcap and tx_pcap repeated."""
    args = [f"rx_pcap={f}" for f in rx_files] + [f"tx_pcap={f}" for f in tx_files]
    return f"net_pcap{index}," + ",".join(args)


# Our side with two forwarding lcores (both on CPU 1: this machine has two
# CPUs), each polling its own queues: no lock is shared between queues.
TWO_FWD_LCORES = dict(lcores=["--lcores=0@0,1@1,2@1"], fwd_args=["--nb-cores=2"])
ONE_FWD_LCORE = dict(lcores=["-l", "0,1"], fwd_args=[])


@pytest.mark.parametrize("packed_vq", [0, 1], ids=["split", "packed"])
@pytest.mark.parametrize("queues, cores", [
    pytest.param(2, ONE_FWD_LCORE, id="2q"),
    pytest.param(4, ONE_FWD_LCORE, id="4q"),
    pytest.param(4, TWO_FWD_LCORES, id="4q_2lcores")])
@pytest.mark.parametrize("direction", ["g2h", "h2g"])
def test_every_queue_byte_exact(launcher, direction, queues, cores, packed_vq):
    sock = launcher.path("vh0.sock")
    sent = [gen_frames(FRAMES_PER_QUEUE, seed=500 + 10 * queues + q, tag=q)
            for q in range(queues)]
    src = [launcher.path(f"in{q}.pcap") for q in range(queues)]
    dst = [launcher.path(f"out{q}.pcap") for q in range(queues)]
    unused = [launcher.path(f"unused{q}.pcap") for q in range(queues)]
    empty = [launcher.path(f"empty{q}.pcap") for q in range(queues)]
    for q in range(queues):
        write_pcap(src[q], sent[q])
        write_pcap(empty[q], [])
    if direction == "g2h":
        ours_pcap = multi_pcap_vdev(0, empty, dst)
        peer_pcap = multi_pcap_vdev(0, src, unused)
    else:
        ours_pcap = multi_pcap_vdev(0, src, unused)
        peer_pcap = multi_pcap_vdev(0, empty, dst)
    qargs = [f"--rxq={queues}", f"--txq={queues}"]
    ours = launcher.ours([vhost_vdev(0, sock, queues=queues), ours_pcap],
                         app_args=qargs + cores["fwd_args"], lcores=cores["lcores"])
    peer = launcher.peer([virtio_user_vdev(0, sock, queues=queues, mrg_rxbuf=1,
                                           packed_vq=packed_vq), peer_pcap],
                         app_args=qargs)
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    for tp in (ours, peer):
        tp.enable_tx_retry()
    receiver, sender = (ours, peer) if direction == "g2h" else (peer, ours)
    started = {tp.name: tp.start_forwarding() for tp in (receiver, sender)}
    assert ("Logical Core 2 " in started[ours.name]) == (cores is TWO_FWD_LCORES), \
        started[ours.name]
    total = queues * FRAMES_PER_QUEUE
    receiver.wait_stat(PCAP_PORT, "opackets", total, timeout=60, stall=10,
                       raise_on_timeout=False)
    xs = ours.xstats(VHOST_PORT)
    receiver.stop_forwarding()
    sender.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})

    side = "rx" if direction == "g2h" else "tx"
    for q in range(queues):
        assert_frames_equal(sent[q], read_pcap(dst[q]), f"{direction} queue {q} of {queues}")
        assert xs[f"{side}_q{q}_good_packets"] == len(sent[q]), xs
        assert xs[f"{side}_q{q}_good_bytes"] == total_bytes(sent[q]), xs


@pytest.mark.ours_only
def test_more_queue_pairs_than_offered_refused(launcher):
    """virtio-user asking for 4 queue pairs of a 2-pair port: the rings beyond
    are refused with a log line, the front end's port does not come up, our
    testpmd lives on, and a front end asking for 2 pairs then works."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock, queues=2)], app_args=["--rxq=2", "--txq=2"])
    greedy = launcher.peer([virtio_user_vdev(0, sock, queues=4)],
                           app_args=["--rxq=4", "--txq=4"], name="greedy",
                           allow_port_failure=True, expect_prompt=False)
    ours.wait_log(r"for ring \d+, but this port has 4 rings \(queues=2\)", timeout=30)
    # virtio-user then fails its port start, or dies writing to the closed
    # socket (SIGPIPE): either way it never gets a working port.
    deadline = time.monotonic() + 30
    while greedy.alive and not PORT_FAILURE_RE.search(greedy.log):
        assert time.monotonic() < deadline, f"greedy front end neither failed nor exited:\n{greedy.tail()}"
        time.sleep(0.2)
    greedy.close()
    assert ours.alive
    assert not ours.link_up(VHOST_PORT)

    good = launcher.peer([virtio_user_vdev(0, sock, queues=2)],
                         app_args=["--rxq=2", "--txq=2"], name="good")
    ours.wait_link_up(VHOST_PORT)
    good.wait_link_up(VHOST_PORT)
    good.cmd("set fwd txonly")
    ours.cmd("set fwd rxonly")
    ours.start_forwarding()
    good.start_forwarding()
    ours.wait_stat(VHOST_PORT, "ipackets", 100000, timeout=60)
    good.stop_forwarding()
    ours.stop_forwarding()
    xs = ours.xstats(VHOST_PORT)
    good.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert xs["rx_q0_good_packets"] > 0 and xs["rx_q1_good_packets"] > 0, xs
