"""QEMU guests that change their queues while running, and QEMU as the
vhost-user server being killed and restarted.

Same rig as tests/test_qemu_vm.py (Rig of tests/qemu/rig.py: our testpmd
forwarding eth_vhost0 <-> eth_vhost1 in io mode, guest A 10.0.0.1 on port 0,
guest B 10.0.0.2 on port 1):

* test_channels_changed: 4 queue
  pairs; A, then B, change their combined channels (``ethtool -L``; QEMU
  sends SET_VRING_ENABLE for the rings of the queue pairs that come and go),
  between TCP transfers or while 8 TCP streams run from A to B.
  Why B changes too: testpmd's io forwarding sends what it receives on port
  1 queue q out of port 0 queue q; with A on fewer channels those TX queues
  are disabled and B's frames there are dropped (ACKs, ping replies: TCP
  would stall).  While only A has changed, that is exactly what is checked:
  nothing enters a disabled ring of A.
  Channels removed under traffic check that the frames the guest had queued
  on the rings QEMU disables are consumed: the vhost-user spec says a
  started but disabled ring's TX packets must be processed and discarded,
  and frames left there unconsumed hang the guest's TCP streams.
* test_qemu_server_killed_and_restarted: QEMU listens on the vhost-user
  socket (chardev server=on) and our ports connect to it (client=1); guest
  A's QEMU is SIGKILLed under traffic and started again on the same path,
  VHU_QEMU_RESTART_ROUNDS times (default 2); our PMD reconnects by itself,
  and its fds and threads do not grow.

Run: /usr/bin/python3 -m pytest -v -rP tests/test_qemu_queues.py
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from qemu.opt_in import OPT_IN
from qemu.rig import (GUESTS, LSC_EVENT, MIB, PORT_BASE, Rig, both_xstats,
                      close_reporting_consoles, prepare_transfer, tcp_transfer)
from qemu.rig import ping as rig_ping
from qemu.vm import Vm

# Opt-in (qemu/opt_in.py): queue pairs enabled and disabled, and a front end
# killed and restarted, are what test_e2e_multiqueue.py and
# test_e2e_reconnect.py do with virtio-user.
pytestmark = [pytest.mark.qemu, OPT_IN]

QUEUES = 4
CHANGE_MIB = 8           # the transfer during which the channels change
CHANGE_CONNS = 8
CHANGE_PORT_BASE = PORT_BASE + 100
CHECK_MIB = 4            # the transfer after a change that shows which queues carry traffic
# A guest puts each connection on a random TX queue (see test_qemu_vm.py): with
# 32 connections the chance that one of 4 queues gets none is 4 * (3/4)^32 ~ 4e-4
# (2 queues, 16: 2^-15), and another transfer is run when that happens.
CHECK_CONNS = {1: 4, 2: 16, 4: 32}   # by number of channels
QUEUE_STATE_EVENT = "Port {port}: queue state event"
RING_LOG = r"VHU: eth_vhost{port}: {dir} queue {q} {state}"

ROUNDS = int(os.environ.get("VHU_QEMU_RESTART_ROUNDS", "2"))
RESTART_MIB = 2
SINK_PORT = 7000
# QEMU's own note while its vhost-user netdev waits for the back end to connect
QEMU_INFO_WAITING = "info: QEMU waiting for connection"


# ------------------------------------------------------------------ guest side

def ping(src: Vm, dst: Vm, count: int = 3):
    """qemu.rig.ping() at 5 per second."""
    rig_ping(src, dst, count, interval=0.2)


def start_transfer(src: Vm, dst: Vm, mib: int, conns: int, port_base: int,
                   meanwhile: str = "") -> str:
    """tcp_transfer() in the background: returns the sender's md5sum once the
    ``conns`` senders run (``finish_transfer`` checks the receiver's).
    ``meanwhile``: a script ``src`` runs (in the background, output and
    status in /tmp/meanwhile.log and .rc) right after starting the senders:
    the serial console of a guest under load answers too slowly to time it
    from the host."""
    # the streams run at the lowest priority: the guests' consoles (and
    # ``meanwhile``) must still get the vCPU at once
    want, ports = prepare_transfer(src, dst, mib, conns, port_base, low_priority=True)
    src.run("rm -f /tmp/meanwhile.rc /tmp/meanwhile.log")
    side = (f"( {meanwhile} ) > /tmp/meanwhile.log 2>&1; echo $? > /tmp/meanwhile.rc"
            if meanwhile else "true")
    src.run_bg(f"pids=; for p in {ports}; do nc {GUESTS[dst.name][0]} $p < /tmp/tx/$p & "
               f"pids=\"$pids $!\"; done; renice -n 19 -p $pids > /dev/null; ( {side} ) & "
               f"rc=0; for pid in $pids; do wait $pid || rc=1; done; "
               f"echo $rc > /tmp/tx.rc", "/tmp/tx.log")
    return want


class StreamsStalled(AssertionError):
    """TCP streams between the guests stopped moving."""


def tcp_counters(vm: Vm) -> dict:
    nstat = vm.run("cat /proc/net/netstat", check=False).output.split("\n")
    counters = {}
    for names, values in zip(nstat[0::2], nstat[1::2]):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            counters = dict(zip(names.split()[1:], values.split()[1:]))
    return {k: counters.get(k) for k in ("TCPSpuriousRtxHostQueues", "TCPTimeouts",
                                         "TCPLostRetransmit", "TCPFastRetrans")}


def tcp_diagnostics(vm: Vm) -> str:
    """Why streams stall: the guest's retransmission counters, 3 s apart
    (TCPSpuriousRtxHostQueues: a retransmission held back because the
    original is still in the device's TX queue), and its sockets."""
    first = tcp_counters(vm)
    time.sleep(3)
    return (f"{vm.name} TcpExt: {first}\n{vm.name} TcpExt 3 s later: {tcp_counters(vm)}\n"
            f"{vm.name} /proc/net/tcp:\n" + vm.run("cat /proc/net/tcp", check=False).output)


def finish_transfer(src: Vm, dst: Vm, want: str, mib: int, ours=None, stall: float = 10,
                    timeout: float = 120):
    """Wait for the senders of start_transfer() and check what ``dst`` got.
    ``ours``: fail early (with the sender's TCP counters) once our port 0
    has received less than 64 KiB in ``stall`` seconds."""
    deadline = time.monotonic() + timeout
    last, moved = None, time.monotonic()
    while not src.run("[ -e /tmp/tx.rc ]", check=False).ok:
        now = time.monotonic()
        if ours is not None:
            cur = ours.stats(0)["ibytes"]
            if last is None or cur - last >= 64 << 10:
                last, moved = cur, now
            elif now - moved > stall:
                raise StreamsStalled(f"the TCP streams from {src.name} to {dst.name} stalled: "
                                     f"our port 0 received < 64 KiB in {stall} s\n"
                                     + tcp_diagnostics(src))
        assert now < deadline, f"the {mib} MiB from {src.name} not sent after {timeout} s"
        time.sleep(1)
    rc = src.run("cat /tmp/tx.rc /tmp/tx.log").output
    assert rc.split()[0] == "0", f"{src.name}: a sender failed:\n{rc}"
    dst.run("until [ -e /tmp/rx.done ]; do sleep 0.1; done", timeout=30)
    got = dst.run("cat /tmp/rx/* | md5sum; cat /tmp/rx/* | wc -c", timeout=120).output.split()
    assert (got[0], int(got[2])) == (want, mib * MIB), \
        f"{src.name} sent {mib} MiB with md5 {want}; {dst.name} stored {got[2]} bytes, md5 {got[0]}"


# ----------------------------------------------------------------- host side

def delta(after, before):
    return {port: {k: v - before[port].get(k, 0) for k, v in after[port].items()}
            for port in after}


def queue_bytes(d, n_queues):
    """Per queue: (port 0 RX bytes = A's data, port 1 TX bytes = to B,
    port 1 RX packets = B's ACKs, port 0 TX packets = to A)."""
    return {q: (d[0][f"rx_q{q}_good_bytes"], d[1][f"tx_q{q}_good_bytes"],
                d[1][f"rx_q{q}_good_packets"], d[0][f"tx_q{q}_good_packets"])
            for q in range(n_queues)}


def wait_ring_changes(ours, port: int, old: int, new: int, start: int, timeout: float = 20):
    """Our PMD logs each ring of the queue pairs between ``old`` and ``new``
    being disabled (fewer) or enabled (more)."""
    state = "disabled" if new < old else "enabled"
    for q in range(min(old, new), max(old, new)):
        for direction in ("RX", "TX"):
            ours.wait_log(RING_LOG.format(port=port, dir=direction, q=q, state=state),
                          timeout=timeout, start=start)


# ----------------------------------------------------------------------- tests

def change_channels(ours, a: Vm, b: Vm, ifaces, current: int, n: int, under_traffic: bool):
    """A, then B, go from ``current`` to ``n`` combined channels, idle or
    while 8 TCP streams (8 MiB, md5-checked) run from A to B.  Our PMD logs
    each ring of the queue pairs in between disabled/enabled, testpmd prints
    a queue state event for each, and while only A has changed no frame
    enters one of A's disabled rings (idle: B tries 8 TCP connections to A
    then, most of them on queues that A no longer has)."""
    mark = len(ours.log)
    base = ours.stats(0)["ibytes"]
    change_a = f"ethtool -L {ifaces['a']} combined {n}"
    if under_traffic:
        # A changes once its streams have sent 1 MiB (timed in the guest: its
        # busy console answers too slowly), B once our port 0 saw A's rings go
        tx_bytes = f"$(cat /sys/class/net/{ifaces['a']}/statistics/tx_bytes)"
        want = start_transfer(a, b, CHANGE_MIB, CHANGE_CONNS, CHANGE_PORT_BASE,
                              meanwhile=f"t0={tx_bytes}; i=0; until [ {tx_bytes} -ge "
                                        f"$((t0 + {MIB})) ] || [ $i -ge 1200 ]; do sleep 0.05; "
                                        f"i=$((i + 1)); done; echo sent $(({tx_bytes} - t0)); "
                                        f"{change_a}")
    else:
        a.run(change_a)
    wait_ring_changes(ours, 0, current, n, mark)
    window = both_xstats(ours)    # A's rings >= n disabled; B still sends on all of its own
    if n < current and not under_traffic:
        b.run(f"for p in $(seq 9001 9008); do nc -w 1 {GUESTS['a'][0]} $p < /dev/null & done; "
              f"wait", check=False)
    b.run(f"ethtool -L {ifaces['b']} combined {n}")
    wait_ring_changes(ours, 1, current, n, mark)
    window_end = both_xstats(ours)
    if under_traffic:
        finish_transfer(a, b, want, CHANGE_MIB, ours=ours)
        assert a.run("cat /tmp/meanwhile.rc").output.split() == ["0"], \
            a.run("cat /tmp/meanwhile.log").output
        sent = int(re.search(r"^sent (\d+)", a.run("cat /tmp/meanwhile.log").output, re.M)[1])
        print(f"\nA ran ethtool after sending {sent / MIB:.1f} MiB")
        assert MIB <= sent < CHANGE_MIB * MIB, \
            f"A changed its channels after sending {sent} bytes, not during the {CHANGE_MIB} MiB"
    for vm in (a, b):
        out = vm.run(f"ethtool -l {ifaces[vm.name]}").output
        assert re.search(rf"Combined:\s*{n}\b", out[out.index("Current hardware settings"):]), \
            f"{vm.name}: {out}"
    sent_at = [x[0]["rx_good_bytes"] - base for x in (window, window_end)]
    events = ours.log[mark:]
    for port in (0, 1):
        count = events.count(QUEUE_STATE_EVENT.format(port=port))
        assert count >= 2 * abs(current - n), \
            f"{current} -> {n} channels: {count} queue state events of port {port}"
    window_d = delta(window_end, window)
    for q in range(n, QUEUES):
        assert window_d[0][f"tx_q{q}_good_packets"] == 0, \
            f"port 0 queue {q} disabled, yet frames entered it: {window_d[0]}"
    if n < current and not under_traffic:
        assert sum(window_d[1][f"rx_q{q}_good_packets"] for q in range(n, current)) > 0, \
            f"B sent nothing on the queues A had disabled: {window_d[1]}"
    print(f"\n{current} -> {n} channels{' under traffic' if under_traffic else ''}: "
          f"port 0 had received {sent_at[0] / MIB:.1f} MiB when A's rings had changed, "
          f"{sent_at[1] / MIB:.1f} MiB when B's had; "
          f"in between, port 1 received "
          f"{[window_d[1][f'rx_q{q}_good_packets'] for q in range(QUEUES)]} packets per queue "
          f"and port 0 sent {[window_d[0][f'tx_q{q}_good_packets'] for q in range(QUEUES)]}")


def check_queues_used(ours, a: Vm, b: Vm, n: int, record_property):
    """Ping both ways; then TCP streams from A to B use every one of the
    first ``n`` queue pairs (both ways, both ports) and none above."""
    ping(a, b)
    ping(b, a)
    before = both_xstats(ours)
    conns = CHECK_CONNS[n]
    conn_bytes = CHECK_MIB * MIB // conns
    for _ in range(3):
        rate = tcp_transfer(a, b, CHECK_MIB, conns=conns)
        per_q = queue_bytes(delta(both_xstats(ours), before), QUEUES)
        if all(per_q[q][0] >= conn_bytes // 2 and per_q[q][1] >= conn_bytes // 2
               and per_q[q][2] > 0 and per_q[q][3] > 0 for q in range(n)):
            break
    else:
        pytest.fail(f"{n} channels: not every queue below {n} carried traffic "
                    f"(3 transfers): {per_q}")
    for q in range(n, QUEUES):
        assert per_q[q] == (0, 0, 0, 0), f"{n} channels: queue {q} carried traffic: {per_q}"
    record_property(f"throughput_{n}_channels_MiBps", round(rate, 2))
    print(f"{n} channels: per queue (A bytes in, to B bytes, B packets in, to A packets) "
          f"{per_q}; {rate:.2f} MiB/s")


def channel_steps(rig, record_property, steps):
    """Both guests on 4 queue pairs and 4 channels, then ``steps``:
    (channels, under traffic, check which queues carry traffic)."""
    a, b = rig.start(queues=QUEUES)
    ours = rig.ours
    ifaces = {vm.name: vm.iface() for vm in (a, b)}
    for vm in (a, b):
        out = vm.run(f"ethtool -l {ifaces[vm.name]}").output
        assert re.search(r"Combined:\s*4\b", out[out.index("Current hardware settings"):]), out
    ping(a, b)
    ping(b, a)
    current = QUEUES
    for n, under_traffic, check in steps:
        change_channels(ours, a, b, ifaces, current, n, under_traffic)
        current = n
        if check:
            check_queues_used(ours, a, b, n, record_property)
        else:
            ping(a, b)
            ping(b, a)
    assert ours.alive
    rig.finish()


@pytest.mark.timeout(360)
def test_channels_changed(rig, record_property):
    """4 -> 1 channels between transfers (B's connection attempts meanwhile
    must not enter A's disabled rings), then 1 -> 2 -> 4 while TCP streams
    run, and 4 -> 1 again while they run (frames the guest had queued on
    the rings QEMU disables must still complete: the streams must not
    hang); every transfer's md5 matches, and after each change exactly the
    first N queue pairs carry traffic, every one of them."""
    channel_steps(rig, record_property,
                  [(1, False, True), (2, True, True), (4, True, True), (1, True, True)])


class ServerQemuRig(Rig):
    """Rig with QEMU as the vhost-user server (chardev server=on) and our
    ports as clients (client=1)."""

    def start(self, queues: int):
        return super().start(queues, vhost_opts={"client": 1},
                             vm_opts={"chardev_server": True})

    def finish(self):
        super().finish(ignore=(QEMU_INFO_WAITING,))


@pytest.fixture
def server_rig(request, launcher, guest_assets):
    r = ServerQemuRig(launcher, guest_assets)
    yield r
    close_reporting_consoles(request, r)


def resources(tp):
    """(open fds, threads) of a running testpmd (as in test_e2e_reconnect.py)."""
    pid = tp.proc.pid
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.timeout(120 + 50 * ROUNDS)
def test_qemu_server_killed_and_restarted(server_rig):
    """QEMU listens (server=on,wait=off), our two ports connect (client=1).
    Each round: A streams TCP to B, A's QEMU is SIGKILLed, port 0's link
    goes down (port 1's never moves), the same QEMU command starts again on
    the same socket path and our port reconnects by itself; then ping both
    ways and 2 MiB md5-checked over TCP (B to A, in the next round A to B,
    and so on).  Our fds and threads, counted with both links up, are the
    same after every round."""
    a, b = server_rig.start(queues=2)
    ours = server_rig.ours
    ping(a, b)
    ping(b, a)
    tcp_transfer(a, b, RESTART_MIB, conns=2)
    usage = [resources(ours)]
    took = []
    for r in range(ROUNDS):
        port = SINK_PORT + r
        b.run_bg(f"nc -l -p {port} -e sh -c 'cat > /dev/null' & echo $! > /tmp/sink.pid",
                 "/tmp/sink.log")
        b.run(f"until netstat -ltn | grep -q :{port}; do sleep 0.1; done")
        base = ours.stats(0)["ibytes"]
        a.run_bg(f"nc {GUESTS['b'][0]} {port} < /dev/zero", "/tmp/src.log")
        ours.wait_stat(0, "ibytes", base + MIB, timeout=60, settle=0)
        mark = len(ours.log)
        t0 = time.monotonic()
        a.kill()
        assert a.returncode == -signal.SIGKILL, a.returncode
        ours.wait_link(0, up=False, interval=0.1)
        t_down = time.monotonic() - t0
        assert os.path.exists(server_rig.socks[0]), "the killed QEMU's socket file is gone"
        a.start(wait_ready=False)
        ours.wait_link_up(0, timeout=60)
        t_up = time.monotonic() - t0
        a.wait_ready()
        events = ours.log[mark:]
        assert events.count(LSC_EVENT.format(port=0)) >= 2, f"port 0 down+up expected:\n{events}"
        assert LSC_EVENT.format(port=1) not in events, f"port 1's link moved:\n{events}"
        assert ours.link_up(1)
        b.run("kill $(cat /tmp/sink.pid) 2>/dev/null; true")   # its sender died with A
        ping(a, b)
        ping(b, a)
        src, dst = (b, a) if r % 2 == 0 else (a, b)   # into the new A first, then out of it
        tcp_transfer(src, dst, RESTART_MIB, conns=2)
        usage.append(resources(ours))
        took.append((round(t_down, 2), round(t_up, 2)))
    print(f"\n(link down, link up again) seconds after each SIGKILL: {took}")
    print(f"(fds, threads) of our testpmd: {usage}")
    assert all(u == usage[0] for u in usage), f"(fds, threads) per round: {usage}"
    assert ours.alive
    server_rig.finish()
