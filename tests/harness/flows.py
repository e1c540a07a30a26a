"""Reusable traffic scenarios: pcap -> virtio-user -> eth_vhost -> pcap and back.

Port numbering (vdevs are probed in command-line order):
  our side : port 0 = eth_vhost0,       port 1 = net_pcap0
  peer side: port 0 = net_virtio_user0, port 1 = net_pcap0
testpmd's default "paired" topology forwards 0 <-> 1 in io mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .frames import read_pcap, total_bytes, write_pcap
from .launcher import Launcher
from .testpmd import TestPmd, TestPmdError, pcap_vdev, vhost_vdev, virtio_user_vdev

VHOST_PORT = 0
PCAP_PORT = 1

# Our side, jumbo: MTU 9000 (max-pkt-len 9018 = 9000 + 14 Ethernet + 4 CRC).
# The mbuf stays at the default 2176 bytes so a 9000-byte frame is a chain of
# 5 mbufs.  Scatter is NOT requested on the command line: --enable-scatter
# applies to every port and net_pcap rejects it ("Fail to configure port 1");
# it is switched on per port by enable_scatter_if_supported() instead.
JUMBO_OURS_ARGS = ["--max-pkt-len=9018"]
# Peer side, jumbo: virtio-user with mrg_rxbuf=1 receives and sends 9000-byte
# chains at the default MTU; --max-pkt-len=9018 there would make the virtio PMD
# refuse to set up its Rx queue without scatter ("Rx scatter check failed"),
# and --enable-scatter would again break net_pcap.
JUMBO_PEER_ARGS: List[str] = []

# The testpmd commands README gives for keeping guests' TSO frames whole
# between two eth_vhost ports (LRO and checksum offloads on, csum engine).
WHOLE_FRAMES_CMDS = Path(__file__).resolve().parents[2] / "app" / "test-pmd-scripts" / \
    "whole-frames.cmds"
WHOLE_FRAMES_MSS = 1448


def keep_frames_whole(tp: TestPmd, wait_links: bool = True):
    """Runs app/test-pmd-scripts/whole-frames.cmds in ``tp`` (ports 0 and 1,
    both ours), as a user following README would, and (``wait_links``) waits
    for both links."""
    start = len(tp.log)
    for line in WHOLE_FRAMES_CMDS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            tp.cmd(line, timeout=60)
    from .launcher import PORT_FAILURE_RE
    m = PORT_FAILURE_RE.search(tp.log, start)
    if m:
        raise TestPmdError(f"{tp.name}: whole-frames.cmds failed: {m.group(0)}")
    for port in (0, 1) if wait_links else ():
        tp.wait_link_up(port)


def takes_zero_copy(vhost_args: Optional[Dict[str, object]]) -> bool:
    """Whether our port's devargs ask for zero-copy dequeue, whose frames are
    mbuf chains: the application must enable scatter to get them."""
    return bool((vhost_args or {}).get("dequeue-zero-copy"))


def enable_scatter_if_supported(tp: TestPmd, port: int) -> bool:
    """If ``port`` advertises the SCATTER Rx offload, reconfigure it with
    scatter on (port stop/config/start).  Returns True if it did."""
    caps = tp.cmd(f"show port {port} rx_offload capabilities")
    if "SCATTER" not in caps.upper():
        return False
    start = len(tp.log)
    tp.cmd("port stop all")
    tp.cmd(f"port config {port} rx_offload scatter on")
    tp.cmd("port start all", timeout=60)
    from .launcher import PORT_FAILURE_RE
    m = PORT_FAILURE_RE.search(tp.log, start)
    if m:
        raise TestPmdError(f"{tp.name}: restarting port {port} with scatter failed: {m.group(0)}")
    return True


@dataclass
class TransferResult:
    direction: str
    sent: List[bytes]
    received: List[bytes]
    ours: TestPmd
    peer: TestPmd
    ours_stats: Dict[int, Dict[str, int]]
    peer_stats: Dict[int, Dict[str, int]]
    sock: str
    elapsed: float
    notes: List[str] = field(default_factory=list)

    @property
    def sent_bytes(self) -> int:
        return total_bytes(self.sent)


def one_way_transfer(launcher: Launcher, direction: str, frames: Sequence[bytes], *,
                     mrg_rxbuf: Optional[int] = None, in_order: Optional[int] = None,
                     packed_vq: Optional[int] = None, queue_size: Optional[int] = None,
                     jumbo: bool = False, timeout: float = 60.0,
                     finish_ours: bool = True, tag: str = "",
                     vhost_args: Optional[Dict[str, object]] = None,
                     peer_args: Optional[Dict[str, object]] = None,
                     peer_eal: Sequence[str] = ()) -> TransferResult:
    """Send ``frames`` across one vhost-user link and capture them at the far end.

    ``vhost_args``: extra devargs of our port (e.g. ``{"dequeue-zero-copy": 1}``);
    ``peer_args``, ``peer_eal``: extra devargs and EAL arguments of virtio-user's side.

    ``direction``: ``"g2h"`` (guest -> host: peer pcap rx -> virtio-user tx ->
    eth_vhost rx -> our pcap tx) or ``"h2g"`` (host -> guest: our pcap rx ->
    eth_vhost tx -> virtio-user rx -> peer pcap tx).

    The receiving side starts forwarding first; both sides use io-retry
    forwarding so a momentarily full ring stalls instead of dropping.  The
    peer quits first (clean vhost-user disconnect), then ours; both quits flush
    the pcap writers.  With ``finish_ours`` the our-side post-mortem (exit
    status, sanitizers, driver identity) is asserted.
    """
    if direction not in ("g2h", "h2g"):
        raise ValueError(direction)
    frames = list(frames)
    sock = launcher.path(f"vh{tag}0.sock")
    in_pcap = launcher.path(f"{direction}{tag}-in.pcap")
    out_pcap = launcher.path(f"{direction}{tag}-out.pcap")
    write_pcap(in_pcap, frames)
    if direction == "g2h":
        our_pcap, peer_pcap = pcap_vdev(0, tx_pcap=out_pcap), pcap_vdev(0, rx_pcap=in_pcap)
    else:
        our_pcap, peer_pcap = pcap_vdev(0, rx_pcap=in_pcap), pcap_vdev(0, tx_pcap=out_pcap)

    t0 = time.monotonic()
    ours = launcher.ours([vhost_vdev(0, sock, **(vhost_args or {})), our_pcap],
                         app_args=JUMBO_OURS_ARGS if jumbo else [], name=f"ours{tag}")
    peer = launcher.peer([virtio_user_vdev(0, sock, mrg_rxbuf=mrg_rxbuf, in_order=in_order,
                                           packed_vq=packed_vq, queue_size=queue_size,
                                           **(peer_args or {})),
                          peer_pcap],
                         app_args=JUMBO_PEER_ARGS if jumbo else [], name=f"peer{tag}",
                         extra_eal=peer_eal)
    ours.wait_link_up(VHOST_PORT)
    peer.wait_link_up(VHOST_PORT)
    notes = []
    if (jumbo or takes_zero_copy(vhost_args)) and enable_scatter_if_supported(ours, VHOST_PORT):
        notes.append("scatter enabled on our vhost port")
        ours.wait_link_up(VHOST_PORT)
        peer.wait_link_up(VHOST_PORT)
    for tp in (ours, peer):
        tp.enable_tx_retry()

    receiver, sender = (ours, peer) if direction == "g2h" else (peer, ours)
    receiver.start_forwarding()
    sender.start_forwarding()
    # On loss, stop waiting once nothing moved for 10 s and let the capture
    # comparison report the first missing/corrupt frame.
    receiver.wait_stat(PCAP_PORT, "opackets", len(frames), timeout=timeout, settle=0.5,
                       stall=10.0, raise_on_timeout=False)
    ours_stats = ours.stats_all()
    peer_stats = peer.stats_all()
    receiver.stop_forwarding()
    sender.stop_forwarding()
    peer.quit()
    if finish_ours:
        launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    else:
        ours.quit()
    received = read_pcap(out_pcap)
    return TransferResult(direction, frames, received, ours, peer, ours_stats, peer_stats,
                          sock, time.monotonic() - t0, notes)


def assert_vhost_stats(result: TransferResult, port: int = VHOST_PORT):
    """Our vhost port counted exactly the frames and bytes (no CRC) it carried."""
    st = result.ours_stats[port]
    n, nbytes = len(result.sent), result.sent_bytes
    if result.direction == "g2h":
        got = (st["ipackets"], st["ibytes"])
        what = "ipackets/ibytes"
    else:
        got = (st["opackets"], st["obytes"])
        what = "opackets/obytes"
    assert got == (n, nbytes), (
        f"our port {port} {what} = {got}, expected ({n}, {nbytes}); stats={st}")
    # oerrors is NOT checked: like DPDK's net_vhost, a vhost PMD may count the
    # packets a tx_burst could not place in a full guest ring (testpmd's io-retry
    # mode then retries them), so it depends on timing, not on correctness.
    # Delivery itself is proven by the byte-exact capture.
    assert st["ierrors"] == 0, f"Rx errors on our port {port}: {st}"


@dataclass
class TwoGuests:
    """Our testpmd with eth_vhost0 and eth_vhost1 forwarding to each other
    (io, paired), a virtio-user peer on each: A on port 0, B on port 1."""
    launcher: Launcher
    ours: TestPmd
    peer_a: TestPmd
    peer_b: TestPmd
    socks: List[str]

    def finish(self):
        """Stop forwarding everywhere, quit the peers, then the post-mortem of ours."""
        for tp in (self.peer_a, self.ours, self.peer_b):
            tp.stop_forwarding()
        self.peer_a.quit()
        self.peer_b.quit()
        self.launcher.finish_ours(self.ours, ports={f"eth_vhost{i}": sock
                                                    for i, sock in enumerate(self.socks)})


def start_peers(launcher: Launcher, socks: Sequence[str], a_pcap: str, b_pcap: str,
                a_args: Optional[Dict[str, object]] = None,
                b_args: Optional[Dict[str, object]] = None) -> Tuple[TestPmd, TestPmd]:
    """Virtio-user peers A on ``socks[0]`` and B on ``socks[1]`` (their
    vhost-user servers already listening), each with the pcap vdev
    ``a_pcap`` / ``b_pcap`` as its port 1 and ``a_args`` / ``b_args`` as
    extra devargs; returns them once their links are up, not forwarding.
    Both forward on lcore 0 (they time-share it: slow but, with io-retry
    forwarding, lossless on their side)."""
    peer_a = launcher.peer([virtio_user_vdev(0, socks[0], **(a_args or {})), a_pcap],
                           name="peerA")
    peer_b = launcher.peer([virtio_user_vdev(0, socks[1], **(b_args or {})), b_pcap],
                           name="peerB")
    for tp in (peer_a, peer_b):
        tp.wait_link_up(VHOST_PORT)
    return peer_a, peer_b


def start_two_guests(launcher: Launcher, a_pcap: str, b_pcap: str,
                     vhost_args: Optional[Dict[str, object]] = None,
                     a_args: Optional[Dict[str, object]] = None,
                     b_args: Optional[Dict[str, object]] = None) -> TwoGuests:
    """Starts :class:`TwoGuests` (peers as :func:`start_peers` starts them)
    and waits for every link; nothing forwards yet. CPU plan (2 CPUs): ours
    forwards on lcore 1, both peers on lcore 0."""
    socks = [launcher.path("vhA.sock"), launcher.path("vhB.sock")]
    ours = launcher.ours([vhost_vdev(i, sock, **(vhost_args or {}))
                          for i, sock in enumerate(socks)])
    # ours must listen before the peers connect, and its links need them
    peer_a, peer_b = start_peers(launcher, socks, a_pcap, b_pcap, a_args, b_args)
    for port in (0, 1):
        ours.wait_link_up(port)
        if takes_zero_copy(vhost_args):
            enable_scatter_if_supported(ours, port)
    for port in (0, 1) if takes_zero_copy(vhost_args) else ():
        ours.wait_link_up(port)
    for tp in (peer_a, peer_b) if takes_zero_copy(vhost_args) else ():
        tp.wait_link_up(VHOST_PORT)
    return TwoGuests(launcher, ours, peer_a, peer_b, socks)


@dataclass
class Exchange:
    a_to_b: List[bytes]             # what B's pcap captured
    b_to_a: List[bytes]             # what A's pcap captured
    stats: Dict[int, Dict[str, int]]    # our ports' stats
    xstats: Dict[int, Dict[str, int]]   # our ports' xstats


@dataclass
class ExchangePcaps:
    """The pcap files of peers A and B exchanging frames: what each sends
    (its pcap vdev's rx_pcap) and what it captures (tx_pcap)."""
    paths: Dict[str, str]

    def vdev(self, side: str) -> str:
        """The pcap vdev of peer ``side`` ("a" or "b")."""
        return pcap_vdev(0, rx_pcap=self.paths[f"{side}_in"], tx_pcap=self.paths[f"{side}_out"])

    def captured(self) -> Tuple[List[bytes], List[bytes]]:
        """(what B captured, what A captured), once the peers have quit."""
        return read_pcap(self.paths["b_out"]), read_pcap(self.paths["a_out"])


def exchange_pcaps(launcher: Launcher, frames_a: Sequence[bytes],
                   frames_b: Sequence[bytes]) -> ExchangePcaps:
    pc = ExchangePcaps({k: launcher.path(f"{k}.pcap") for k in ("a_in", "a_out", "b_in", "b_out")})
    write_pcap(pc.paths["a_in"], frames_a)
    write_pcap(pc.paths["b_in"], frames_b)
    return pc


def run_exchange(peer_a: TestPmd, peer_b: TestPmd, n_a: int, n_b: int):
    """The peers send their pcaps to each other at once (io-retry); returns
    when B captured ``n_a`` frames and A ``n_b``, or nothing moved for 20 s
    (the caller's comparison of the captures then says what is missing)."""
    for tp in (peer_a, peer_b):
        tp.enable_tx_retry()
    peer_b.start_forwarding()
    peer_a.start_forwarding()
    peer_b.wait_stat(PCAP_PORT, "opackets", n_a, timeout=150, stall=20, raise_on_timeout=False)
    peer_a.wait_stat(PCAP_PORT, "opackets", n_b, timeout=150, stall=20, raise_on_timeout=False)


def exchange_two_guests(launcher: Launcher, frames_a: Sequence[bytes],
                        frames_b: Sequence[bytes], **start_args) -> Exchange:
    """A sends ``frames_a`` to B and B ``frames_b`` to A at once, through
    :func:`start_two_guests` (``start_args``), io-retry everywhere."""
    pc = exchange_pcaps(launcher, frames_a, frames_b)
    g = start_two_guests(launcher, pc.vdev("a"), pc.vdev("b"), **start_args)
    g.ours.enable_tx_retry()
    g.ours.start_forwarding()
    run_exchange(g.peer_a, g.peer_b, len(frames_a), len(frames_b))
    stats = g.ours.stats_all()
    xstats = {port: g.ours.xstats(port) for port in (0, 1)}
    g.finish()
    return Exchange(*pc.captured(), stats, xstats)
