"""End-to-end tests of the eth_vhost PMD against DPDK's virtio-user front end.

Our side: dpdk-testpmd with eth_vhost (the vhost-user server) + net_pcap,
forwarding on lcore 1.  Peer side: dpdk-testpmd with net_virtio_user (the
front end, i.e. the "guest") + net_pcap, forwarding on lcore 0.  Frames are
injected from a pcap file on one side and captured to a pcap file on the other;
on a single queue they must arrive byte-exact AND in order.

Run: /usr/bin/python3 -m pytest tests/ -v   (see tests/README.md)
"""

from __future__ import annotations

import re
import socket

import pytest

from harness import (assert_driver_identity, assert_frames_equal, gen_frames, gen_jumbo_mix,
                     pcap_vdev, read_pcap, total_bytes, vhost_vdev, virtio_user_vdev, write_pcap)
from harness.vhost_user_client import (DEFAULT_PROTOCOL_FEATURES, PF_STATUS, FrontEnd, Req,
                                      bit, pack_u64)
from harness.flows import (PCAP_PORT, VHOST_PORT, assert_vhost_stats, exchange_two_guests,
                           one_way_transfer)

MIXED_FRAMES = 400      # frames of 60..1514 bytes per one-way transfer
JUMBO_FRAMES = 120      # 9000-byte frames mixed with others


def _check_transfer(res, what):
    assert_frames_equal(res.sent, res.received, what)
    assert_vhost_stats(res)


# --------------------------------------------------------------------- a, b, c, f

# virtio-user's ring paths: split or packed ring, mergeable buffers or not,
# in-order or not.
RING_PATHS = pytest.mark.parametrize(
    "packed_vq, mrg_rxbuf, in_order",
    [(p, m, i) for p in (0, 1) for m in (0, 1) for i in (0, 1)],
    ids=[f"{'packed' if p else 'split'}_mrg{m}_inorder{i}"
         for p in (0, 1) for m in (0, 1) for i in (0, 1)])


@RING_PATHS
def test_guest_to_host(launcher, packed_vq, mrg_rxbuf, in_order):
    """a/c/f: peer pcap -> virtio-user -> eth_vhost -> our pcap, byte-exact, in order;
    our vhost port's ipackets/ibytes equal what was sent."""
    frames = gen_frames(MIXED_FRAMES, seed=100 + mrg_rxbuf)
    res = one_way_transfer(launcher, "g2h", frames, mrg_rxbuf=mrg_rxbuf, in_order=in_order,
                           packed_vq=packed_vq)
    _check_transfer(res, f"guest->host packed_vq={packed_vq} mrg_rxbuf={mrg_rxbuf} "
                         f"in_order={in_order}")
    # the peer's virtio port sent them all (sanity of the set-up itself)
    assert res.peer_stats[VHOST_PORT]["opackets"] == len(frames)


@RING_PATHS
def test_host_to_guest(launcher, packed_vq, mrg_rxbuf, in_order):
    """b/c/f: our pcap -> eth_vhost -> virtio-user -> peer pcap, byte-exact, in order;
    our vhost port's opackets/obytes equal what was sent."""
    frames = gen_frames(MIXED_FRAMES, seed=200 + mrg_rxbuf)
    res = one_way_transfer(launcher, "h2g", frames, mrg_rxbuf=mrg_rxbuf, in_order=in_order,
                           packed_vq=packed_vq)
    _check_transfer(res, f"host->guest packed_vq={packed_vq} mrg_rxbuf={mrg_rxbuf} "
                         f"in_order={in_order}")
    st = res.peer_stats[VHOST_PORT]
    assert (st["ipackets"], st["ibytes"]) == (len(frames), total_bytes(frames)), st


# virtio-user's vectorized paths (22.11): split needs mrg_rxbuf=0 and
# in_order=0 (SSE), packed in_order=1 and AVX512, which EAL allows only with
# --force-max-simd-bitwidth=512. The virtio PMD says which path it took at
# debug level.
VECTOR_PATHS = pytest.mark.parametrize("packed_vq, in_order, path", [
    (0, 0, "using vectorized Rx path"),
    (1, 1, "using packed ring vectorized Rx path"),
], ids=["split_vec", "packed_vec"])
VECTOR_EAL = ["--force-max-simd-bitwidth=512", "--log-level=pmd.net.virtio.init:debug"]


@VECTOR_PATHS
@pytest.mark.parametrize("direction", ["g2h", "h2g"])
def test_vectorized_virtio_user(launcher, direction, packed_vq, in_order, path):
    if packed_vq and "avx512f" not in open("/proc/cpuinfo").read():
        pytest.skip("virtio-user's packed vectorized path needs AVX512")
    frames = gen_frames(MIXED_FRAMES, seed=600 + packed_vq)
    res = one_way_transfer(launcher, direction, frames, mrg_rxbuf=0, in_order=in_order,
                           packed_vq=packed_vq, peer_args={"vectorized": 1},
                           peer_eal=VECTOR_EAL)
    assert path in res.peer.log, "virtio-user did not take its vectorized path"
    _check_transfer(res, f"{direction} vectorized packed_vq={packed_vq}")


# --------------------------------------------------------------------------- d

@pytest.mark.slow
@pytest.mark.parametrize("packed_vq", [0, 1], ids=["split", "packed"])
@pytest.mark.parametrize("direction", ["g2h", "h2g"], ids=["guest_to_host", "host_to_guest"])
def test_jumbo_mrg_rxbuf(launcher, direction, packed_vq):
    """d: 9000-byte frames (chains of 5 default-size mbufs on both sides) mixed
    with 60..1514 and 1515..9000 byte frames, mrg_rxbuf=1."""
    frames = gen_jumbo_mix(JUMBO_FRAMES, seed=300 + (direction == "h2g"))
    assert sum(len(f) == 9000 for f in frames) >= JUMBO_FRAMES // 3
    res = one_way_transfer(launcher, direction, frames, mrg_rxbuf=1, in_order=0, jumbo=True,
                           packed_vq=packed_vq, timeout=120)
    _check_transfer(res, f"jumbo {direction}")


@pytest.mark.parametrize("queue_size", [200, 1000], ids=["qsize200", "qsize1000"])
def test_packed_ring_size_not_power_of_two(launcher, queue_size):
    """Packed rings may have any size: frames cross both ways byte-exact."""
    for direction in ("g2h", "h2g"):
        frames = gen_frames(MIXED_FRAMES, seed=400 + queue_size)
        res = one_way_transfer(launcher, direction, frames, mrg_rxbuf=1, in_order=0,
                               packed_vq=1, queue_size=queue_size, tag=direction)
        _check_transfer(res, f"packed {direction} queue_size={queue_size}")


# --------------------------------------------------------------------------- f

def test_stats_bidirectional(launcher):
    """f: both directions at once on one link; our vhost port counts exactly
    the frames/bytes (no CRC) in each direction, and both captures are exact."""
    sock = launcher.path("vh0.sock")
    to_host = gen_frames(300, seed=400)
    to_guest = gen_frames(250, seed=401, tag=1)
    p = {k: launcher.path(f"{k}.pcap") for k in ("ours_in", "ours_out", "peer_in", "peer_out")}
    write_pcap(p["ours_in"], to_guest)
    write_pcap(p["peer_in"], to_host)
    ours = launcher.ours([vhost_vdev(0, sock),
                          pcap_vdev(0, rx_pcap=p["ours_in"], tx_pcap=p["ours_out"])])
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=1, in_order=0),
                          pcap_vdev(0, rx_pcap=p["peer_in"], tx_pcap=p["peer_out"])])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    for tp in (ours, peer):
        tp.enable_tx_retry()
    ours.start_forwarding()
    peer.start_forwarding()
    ours.wait_stat(PCAP_PORT, "opackets", len(to_host), timeout=60, stall=10,
                   raise_on_timeout=False)
    peer.wait_stat(PCAP_PORT, "opackets", len(to_guest), timeout=60, stall=10,
                   raise_on_timeout=False)
    st = ours.stats(VHOST_PORT)
    pcap_st = ours.stats(PCAP_PORT)
    ours.stop_forwarding()
    peer.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})

    assert_frames_equal(to_host, read_pcap(p["ours_out"]), "guest->host")
    assert_frames_equal(to_guest, read_pcap(p["peer_out"]), "host->guest")
    assert (st["ipackets"], st["ibytes"]) == (len(to_host), total_bytes(to_host)), st
    assert (st["opackets"], st["obytes"]) == (len(to_guest), total_bytes(to_guest)), st
    assert st["ierrors"] == 0 and st["missed"] == 0, st  # oerrors: see assert_vhost_stats
    assert (pcap_st["ipackets"], pcap_st["opackets"]) == (len(to_guest), len(to_host)), pcap_st


# --------------------------------------------------------------------------- e

@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_ports_paired(launcher):
    """e: our testpmd with eth_vhost0 and eth_vhost1 forwarding to each other
    (io, paired); peer A on vhost0, peer B on vhost1.  A's frames arrive at B
    byte-exact and in order, and B's at A.

    CPU plan: see harness.flows.start_two_guests."""
    frames_a = gen_frames(200, seed=500, tag=0xA)
    frames_b = gen_frames(150, seed=501, tag=0xB)
    x = exchange_two_guests(launcher, frames_a, frames_b,
                            a_args=dict(mrg_rxbuf=1, in_order=0),
                            b_args=dict(mrg_rxbuf=0, in_order=0))
    st = x.stats
    assert_frames_equal(frames_a, x.a_to_b, "peer A -> peer B")
    assert_frames_equal(frames_b, x.b_to_a, "peer B -> peer A")
    na, ba, nb, bb = len(frames_a), total_bytes(frames_a), len(frames_b), total_bytes(frames_b)
    assert (st[0]["ipackets"], st[0]["ibytes"], st[0]["opackets"], st[0]["obytes"]) == \
        (na, ba, nb, bb), st[0]
    assert (st[1]["ipackets"], st[1]["ibytes"], st[1]["opackets"], st[1]["obytes"]) == \
        (nb, bb, na, ba), st[1]


# --------------------------------------------------------------------------- g

def test_driver_identity(launcher, pmd):
    """g: the port is served by the selected PMD: with ours, the VHU probe and
    version lines are logged and the distribution's VHOST_CONFIG lines are
    absent; with VHU_PMD=distro the VHOST_CONFIG lines must be present (which
    checks the check)."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock)])
    info = ours.port_info(0)
    assert info.get("Device name") == "eth_vhost0", info
    assert info.get("Link status") == "down", "no front end connected, link must be down"
    ours.quit()
    assert_driver_identity(ours.log, pmd, {"eth_vhost0": sock})
    launcher.finish_ours(ours)


# --------------------------------------------------------------------------- h

PROBE_FAILED_RE = re.compile(r"failed to initialize eth_vhost0|No probed ethernet devices"
                             r"|Bus \(vdev\) probe failed")


@pytest.mark.ours_only
@pytest.mark.parametrize("devargs, offending", [
    ("iface={sock},queues=0", "queues"),
    ("iface={sock},queues=129", "queues"),
    ("iface={sock},queues=abc", "queues"),
    ("queues=1", "iface"),
    ("iface={sock},queues=1,foo=1", "foo"),
    ("iface={sock},queues=1,queues=2", "queues"),
    ("iface={sock},client=2", "client"),
    ("iface=/" + "x" * 120, "iface"),
    ("iface={sock},dequeue-zero-copy=yes", "dequeue-zero-copy"),
    ("iface={sock},dequeue-zero-copy=1,zero-copy-threshold=100", "zero-copy-threshold"),
    ("iface={sock},zero-copy-threshold=1024", "zero-copy-threshold"),
    ("iface={sock},legacy-ol-flags=2", "legacy-ol-flags"),
    ("iface={sock},dequeue-zero-copy=1,linear-buffer=1", "linear-buffer"),
    ("iface={sock},iommu-support=2", "iommu-support"),
    ("iface={sock},postcopy-support=2", "postcopy-support"),
], ids=["queues0", "queues129", "queues_abc", "missing_iface", "unknown_foo", "queues_twice",
        "client2", "iface_too_long", "zero_copy_yes", "zc_threshold_small",
        "zc_threshold_without_zc", "legacy_ol_flags2", "linear_buffer_with_zero_copy",
        "iommu_support_2", "postcopy_support_2"])
def test_bad_devargs(launcher, devargs, offending):
    """h: invalid devargs make the probe fail cleanly (no crash, no port) and
    our PMD names the offending devarg in a VHU log line."""
    sock = launcher.path("vh0.sock")
    vdev = "eth_vhost0," + devargs.format(sock=sock)
    tp = launcher.ours([vdev], expect_prompt=False, allow_port_failure=True,
                       startup_timeout=60)
    if tp.alive:
        # testpmd survived the failed probe and shows its prompt
        summary = tp.cmd("show port summary all")
        ports = re.search(r"Number of available ports:\s*(\d+)", summary)
        assert ports and int(ports.group(1)) == 0, \
            f"a port was created from bad devargs {vdev!r}:\n{summary}"
        tp.quit()
    else:
        tp.wait_exit(10)
    log = tp.log
    rc = tp.returncode
    assert rc is not None and rc >= 0, f"testpmd died from signal {-rc} on {vdev!r}"
    assert rc != 0 or PROBE_FAILED_RE.search(log), \
        f"no sign of a failed probe for {vdev!r} (rc={rc})"
    vhu_lines = [l for l in log.splitlines() if "VHU" in l]
    assert any(re.search(f"(?i){offending}", l) for l in vhu_lines), (
        f"no VHU log line mentions {offending!r} for {vdev!r}; VHU lines: {vhu_lines}")
    assert not (launcher.workdir / "vh0.sock").exists(), "socket left behind by a failed probe"


@pytest.mark.ours_only
@pytest.mark.parametrize("packed_vq", [0, 1], ids=["split", "packed"])
def test_rx_queue_count(launcher, packed_vq):
    """rte_eth_rx_queue_count() (testpmd's "desc used count") is the number
    of frames the guest sent that the queue has not received: all of them
    while ours does not poll, none once it has."""
    frames = gen_frames(100, seed=55)
    sock, src = launcher.path("vh0.sock"), launcher.path("in.pcap")
    write_pcap(src, frames)
    ours = launcher.ours([vhost_vdev(0, sock)])
    peer = launcher.peer([virtio_user_vdev(0, sock, packed_vq=packed_vq),
                          pcap_vdev(0, rx_pcap=src)])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)

    def count() -> int:
        out = ours.cmd(f"show port {VHOST_PORT} rxq 0 desc used count")
        return int(re.search(r"Used desc count = (\d+)", out).group(1))

    assert count() == 0
    peer.start_forwarding()
    peer.wait_stat(VHOST_PORT, "opackets", len(frames), timeout=30)
    assert count() == len(frames)
    ours.cmd("set fwd rxonly")
    ours.start_forwarding()
    ours.wait_stat(VHOST_PORT, "ipackets", len(frames), timeout=30)
    ours.stop_forwarding()
    assert count() == 0
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})


@pytest.mark.ours_only
def test_pool_without_data_room_refused(launcher):
    """A pool whose mbufs have no room after the headroom (testpmd
    --mbuf-size=128) is refused at RX queue set-up (dev_info's
    min_rx_bufsize): it could not hold any frame."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock)], app_args=["--mbuf-size=128"],
                         allow_port_failure=True)
    info = ours.port_info(VHOST_PORT)
    ours.quit()
    assert re.search(r"mbuf_data_room_size 128 < 192", ours.log), ours.log[-2000:]
    assert info.get("Link status", "").strip() != "up" and \
        re.search(r"Fail to (configure|start) port 0|Start port 0.*fail", ours.log, re.I), \
        ours.log[-2000:]


# net_vhost 22.11's devargs (dpdk-pmdinfo.py on its plugin) with values we
# implement: a command line written for it must work unchanged with ours.
NET_VHOST_DEVARGS = {"queues": 1, "client": 0, "iommu-support": 0, "postcopy-support": 0,
                     "tso": 0, "linear-buffer": 0, "ext-buffer": 0, "legacy-ol-flags": 0}


@pytest.mark.ours_only
def test_net_vhost_devargs_accepted(launcher):
    """Every devarg of net_vhost is accepted with net_vhost's meaning: a port
    given all of them carries traffic byte-exact."""
    frames = gen_frames(64, seed=7)
    res = one_way_transfer(launcher, "g2h", frames, vhost_args=NET_VHOST_DEVARGS)
    _check_transfer(res, "guest->host with all of net_vhost's devargs")


@pytest.mark.ours_only
def test_iommu_support_without_guest_iommu(launcher):
    """iommu-support=1 offers VIRTIO_F_ACCESS_PLATFORM; a front end without an
    IOMMU (virtio-user) leaves it, and its traffic flows as on any port."""
    frames = gen_frames(64, seed=8)
    res = one_way_transfer(launcher, "g2h", frames, vhost_args={"iommu-support": 1})
    _check_transfer(res, "guest->host with iommu-support=1")
    res = one_way_transfer(launcher, "h2g", frames, vhost_args={"iommu-support": 1})
    _check_transfer(res, "host->guest with iommu-support=1")


# --------------------------------------------------------------------------- i

@pytest.mark.ours_only
def test_second_frontend_refused(launcher):
    """i: a second connection to the socket of a connected port is closed by
    the server, and the first connection keeps carrying traffic."""
    sock = launcher.path("vh0.sock")
    in_pcap, out_pcap = launcher.path("in.pcap"), launcher.path("out.pcap")
    frames = gen_frames(200, seed=600)
    write_pcap(in_pcap, frames)
    ours = launcher.ours([vhost_vdev(0, sock), pcap_vdev(0, tx_pcap=out_pcap)])
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=1, in_order=0),
                          pcap_vdev(0, rx_pcap=in_pcap)])
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)

    intruder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    intruder.settimeout(5.0)
    outcome = None
    try:
        try:
            intruder.connect(sock)
        except ConnectionRefusedError:
            outcome = "connect refused"
        if outcome is None:
            try:
                data = intruder.recv(4096)
                outcome = "closed" if data == b"" else f"server sent {data!r}"
            except ConnectionResetError:
                outcome = "closed (reset)"
            except socket.timeout:
                outcome = f"still open after {5.0}s"
    finally:
        intruder.close()
    assert outcome in ("closed", "closed (reset)", "connect refused"), \
        f"second front end was not refused: {outcome}"

    assert ours.alive, "our testpmd died when a second front end connected"
    assert ours.link_up(VHOST_PORT), "first connection lost its link"
    for tp in (ours, peer):
        tp.enable_tx_retry()
    ours.start_forwarding()
    peer.start_forwarding()
    ours.wait_stat(PCAP_PORT, "opackets", len(frames), timeout=60, stall=10,
                   raise_on_timeout=False)
    st = ours.stats(VHOST_PORT)
    peer.stop_forwarding()
    ours.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert_frames_equal(frames, read_pcap(out_pcap), "guest->host after refused intruder")
    assert (st["ipackets"], st["ibytes"]) == (len(frames), total_bytes(frames)), st


# ------------------------------------------------------------ device status

STATUS_LINE = re.compile(r"eth_vhost0: device status (0x[0-9a-f]{2})")


@pytest.mark.parametrize("packed_vq", [0, 1], ids=["split", "packed"])
def test_device_status(launcher, packed_vq):
    """PROTOCOL_F_STATUS is offered, and virtio-user (which sends SET_STATUS
    only when it was negotiated, each with NEED_REPLY, and GET_STATUS before
    each) walks the device through ACKNOWLEDGE, DRIVER, FEATURES_OK and
    DRIVER_OK without a failed or lost reply; the guest's frames then arrive."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock)])
    peer = launcher.peer([virtio_user_vdev(0, sock, packed_vq=packed_vq)])
    ours.wait_link_up(0)
    peer.wait_link_up(0)
    ours.wait_log(r"eth_vhost0: device status 0x0f ")
    for tp in (ours, peer):
        tp.cmd("set fwd txonly" if tp is peer else "set fwd rxonly")
    ours.start_forwarding()
    peer.start_forwarding()
    ours.wait_stat(0, "ipackets", 1000, timeout=30)
    peer.stop_forwarding()
    ours.stop_forwarding()
    peer.quit()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert STATUS_LINE.findall(ours.log) == ["0x0b", "0x0f"], ours.log
    for complaint in ("Failed to get device status", "Failed to send get status",
                      "reply ack", "device reset timeout"):
        assert complaint.lower() not in peer.log.lower(), peer.log


def test_device_status_read_back(launcher):
    """What SET_STATUS wrote GET_STATUS reads back, 0 after a reset (DPDK's
    virtio_reset() polls GET_STATUS until it reads 0); SET_STATUS is
    acknowledged with 0 when NEED_REPLY asks for it. A new connection starts
    from 0."""
    sock = launcher.path("vh0.sock")
    ours = launcher.ours([vhost_vdev(0, sock)])
    protocol = DEFAULT_PROTOCOL_FEATURES | bit(PF_STATUS)
    for round_ in range(2):
        mark = len(ours.log)
        g = FrontEnd(sock, protocol_features=protocol)
        try:
            g.negotiate()
            assert g.get_u64(Req.GET_STATUS) == 0
            for status in (0x01, 0x03, 0x0b, 0x0f, 0x00):
                assert g.call(Req.SET_STATUS, pack_u64(status), need_reply=True).u64 == 0
                assert g.get_u64(Req.GET_STATUS) == status
            g.checked(Req.SET_STATUS, pack_u64(0x0b))
        finally:
            g.close()
        ours.wait_log(r"eth_vhost0: front end disconnected", start=mark)
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert STATUS_LINE.findall(ours.log) == ["0x01", "0x03", "0x0b", "0x0f", "0x00", "0x0b"] * 2
