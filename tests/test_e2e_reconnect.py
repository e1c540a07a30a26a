"""Reconnect: either side killed with SIGKILL under traffic and restarted.

Every round has two phases:
  A. byte-exact: the round's own frames cross from a pcap on one side to a
     pcap on the other (io forwarding with retry), all of them;
  B. load: the sending side floods (txonly), the receiving side drops
     (rxonly), and one side is killed with SIGKILL in the middle of it.
The surviving side keeps one pcap writer for all rounds, so at the end its
capture must be exactly the concatenation of every round's frames: nothing
lost, nothing duplicated, nothing left over from a killed session.

Our testpmd's fds and threads are counted with the link up in every round:
the last round must show what the first showed (no leak per cycle).

VHU_RECONNECT_ROUNDS (default 4) sets the number of rounds; a stress run of
hundreds is `VHU_RECONNECT_ROUNDS=300 pytest tests/test_e2e_reconnect.py`.
"""

from __future__ import annotations

import os

import pytest

from harness import assert_frames_equal, gen_frames, read_pcap, write_pcap
from harness.flows import PCAP_PORT, VHOST_PORT, enable_scatter_if_supported, takes_zero_copy
from harness.testpmd import pcap_vdev, vhost_vdev, virtio_user_vdev

ROUNDS = int(os.environ.get("VHU_RECONNECT_ROUNDS", "4"))
FRAMES_PER_ROUND = 150
LOAD_PACKETS = 20000     # phase B: at least this many frames before the kill
LOAD_FRAME = 1000        # bytes per phase B frame

pytestmark = [pytest.mark.ours_only, pytest.mark.timeout(120 + 40 * ROUNDS)]


def round_frames(r: int):
    return gen_frames(FRAMES_PER_ROUND, seed=700 + r, tag=r % 256)


def resources(tp):
    """(open fds, threads) of a running testpmd."""
    pid = tp.proc.pid
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def forward(tp, mode: str):
    """Restart forwarding in @mode: 'io' (with retry), 'txonly' or 'rxonly'."""
    tp.cmd("stop")
    if mode == "io":
        tp.enable_tx_retry()
    else:
        tp.cmd(f"set fwd {mode}")
    tp.start_forwarding()


def load_then(sender, receiver, kill):
    """Phase B: flood from @sender to @receiver, then @kill() one of them.
    The frames are big enough for zero-copy where it is on."""
    forward(receiver, "rxonly")
    base = receiver.stats(VHOST_PORT)["ipackets"]
    sender.cmd(f"set txpkts {LOAD_FRAME}")
    forward(sender, "txonly")
    receiver.wait_stat(VHOST_PORT, "ipackets", base + LOAD_PACKETS, timeout=60)
    kill()


def drain(survivor):
    """After the peer of @survivor died: let it consume what is left, then io."""
    survivor.wait_link(VHOST_PORT, False)
    survivor.wait_quiescent(VHOST_PORT, "ipackets", quiet=1.0)
    forward(survivor, "io")


def frontend_restarts(launcher, client: bool, extra=None):
    """Our testpmd stays; a virtio-user front end sends its round's frames,
    is killed under load and replaced, ROUNDS times. We listen (client=0) or
    connect to it (client=1, virtio-user server=1). Our capture must be every
    round's frames in order, and our fds and threads must not grow."""
    sock = launcher.path("vh0.sock")
    out = launcher.path("ours-out.pcap")
    ours = launcher.ours([vhost_vdev(0, sock, client=int(client), **(extra or {})),
                          pcap_vdev(0, tx_pcap=out)])
    if takes_zero_copy(extra):
        enable_scatter_if_supported(ours, VHOST_PORT)
    forward(ours, "io")
    sent, usage = [], []
    for r in range(ROUNDS):
        src = launcher.path(f"round{r}.pcap")
        frames = round_frames(r)
        write_pcap(src, frames)
        if client and os.path.exists(sock):
            os.unlink(sock)     # left by the killed server; virtio-user will not bind over it
        # as a server, virtio-user's start-up waits for us to connect (we retry every second)
        peer = launcher.peer([virtio_user_vdev(0, sock, server=1 if client else None),
                              pcap_vdev(0, rx_pcap=src)])
        ours.wait_link_up(VHOST_PORT)
        peer.wait_link_up(VHOST_PORT)
        usage.append(resources(ours))
        peer.enable_tx_retry()
        peer.start_forwarding()
        sent += frames
        ours.wait_stat(PCAP_PORT, "opackets", len(sent), timeout=60, stall=10)
        load_then(peer, ours, peer.kill)
        drain(ours)
    ours.stop_forwarding()
    launcher.finish_ours(ours, ports={"eth_vhost0": sock})
    assert_frames_equal(sent, read_pcap(out), f"{ROUNDS} front ends, one after another")
    assert usage[-1] == usage[0], f"(fds, threads) per round: {usage}"


@pytest.mark.parametrize("extra", [{}, {"dequeue-zero-copy": 1}], ids=["copy", "zero_copy"])
def test_server_mode_frontend_killed(launcher, extra):
    """client=0: virtio-user connects, is killed under load, and a new one
    connects. With zero-copy, mbufs pointing into the killed guest's memory
    are in flight."""
    frontend_restarts(launcher, client=False, extra=extra)


def test_client_mode_frontend_killed(launcher):
    """client=1: we connect to virtio-user (server=1); it is killed under load
    and restarted on the same path; we reconnect every time."""
    frontend_restarts(launcher, client=True)


def test_backend_killed_while_frontend_waits(launcher):
    """virtio-user (server=1) stays; our testpmd (client=1) is killed under
    load and a new one started ROUNDS times; each one's frames reach the
    front end's capture exactly, in order."""
    sock = launcher.path("vh0.sock")
    out = launcher.path("peer-out.pcap")
    sent = []
    peer = None
    for r in range(ROUNDS):
        src = launcher.path(f"round{r}.pcap")
        frames = round_frames(r)
        write_pcap(src, frames)
        ours = launcher.ours([vhost_vdev(0, sock, client=1), pcap_vdev(0, rx_pcap=src)],
                             name=f"ours{r}")
        if peer is None:
            # the first start of virtio-user (server) waits for our connection
            peer = launcher.peer([virtio_user_vdev(0, sock, server=1),
                                  pcap_vdev(0, tx_pcap=out)])
            forward(peer, "io")
        ours.wait_link_up(VHOST_PORT)
        ours.enable_tx_retry()
        ours.start_forwarding()
        sent += frames
        peer.wait_stat(PCAP_PORT, "opackets", len(sent), timeout=60, stall=10)
        load_then(ours, peer, ours.kill)
        ours.checked = True     # killed on purpose: no exit status to judge
        drain(peer)
    peer.stop_forwarding()
    peer.quit()
    assert_frames_equal(sent, read_pcap(out), f"{ROUNDS} back ends, one after another")
