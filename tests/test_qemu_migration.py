"""A real live migration of a QEMU guest between two ports of our testpmd.

    guest A  (source)       --vhost-user-- eth_vhost0 \\
    guest A' (destination)  --vhost-user-- eth_vhost1  >=io=> eth_vhost2 --vhost-user-- guest B
                                                     /
Our testpmd forwards (io, paired) between B's port 2 and the port that
carries A: ``set portlist 0,2`` before the migration, ``set portlist 1,2``
right after it completed (TCP retransmits cover the gap).  The destination
QEMU has the same guest configuration (MAC, IP, initramfs, memory, device
options) on its own vhost-user socket and waits with ``-incoming tcp:...``.

Scenario: B streams random data to A over TCP (busybox nc); while it flows
into A's RX ring (our PMD writing guest memory with dirty logging on), A
migrates with QMP ``migrate`` (query-migrate polled until completed; total
time and downtime are reported; "paused": once the first half is in).  The
stream's second half is only sent once A runs on the destination, so the
transfer both crosses the migration and continues on the destination's
rings (GET/SET_VRING_BASE hand-over);
the destination starts paused (-S): its memory must equal the stopped
source's, page by page (QMP pmemsave), before it is let run, and the
stopped source's memory must not change meanwhile (our rings stopped at
GET_VRING_BASE); differing pages are classified (qemu/memdiff.py: RX buffer
or ring area of ours, or the guest's own) and kept in the work dir.  The
stream's md5sum is checked on the destination's serial console, where the
migrated guest now lives, and B pings it there.  Our testpmd must have seen
dirty logging engaged on the source port (LOG_ALL, SET_LOG_BASE), and the
source port goes down when the source QEMU stops and quits.

Announcing the moved guest:
- ``guest_announce``: the guest negotiated GUEST_ANNOUNCE and sends
  gratuitous ARPs itself; QEMU sends no SEND_RARP;
- ``rarp``: virtio-net-pci ``guest_announce=off``: QEMU sends SEND_RARP to
  the destination back end and our PMD injects a RARP frame (0x8035, from
  the guest's MAC) on eth_vhost1's RX path, forwarded to B.

Run: /usr/bin/python3 -m pytest -v -rP tests/test_qemu_migration.py
"""

from __future__ import annotations

import os
import re
import time

import pytest

from harness import vhost_vdev
from qemu.initramfs import build_initramfs
from qemu.memdiff import PAGE, classify, differing_pages, save_memory, virtio_rings
from qemu.migration import (F_GUEST_ANNOUNCE, F_LOG_ALL, MAX_BANDWIDTH, TCG_SAFE_EXTRA_KB,
                            negotiated, start_destination)
from qemu.opt_in import opt_in_unless_all
from qemu.rig import GUESTS, MIB, QEMU_MESSAGE_RE, Rig, close_reporting_consoles, ping
from qemu.vm import Vm

pytestmark = [pytest.mark.qemu, pytest.mark.ours_only,  pytest.mark.timeout(200)]

SRC, DST, PEER = 0, 1, 2          # testpmd ports of A, A' and B
FIRST_MIB = 16                    # streamed before/while A migrates
SECOND_MIB = 8                    # streamed once A runs on the destination
MIGRATE_AFTER_MIB = 3             # A received that much before the migration starts
TCP_PORT = 5001
# what starts a frame from B to A: destination and source MAC, IPv4
FRAME_TO_A = (bytes.fromhex(GUESTS["a"][1].replace(":", "")) +
              bytes.fromhex(GUESTS["b"][1].replace(":", "")) + b"\x08\x00")
VARIANTS = {"guest_announce": "", "rarp": ",guest_announce=off"}
# Whether the stream into A still flows while A migrates. "flowing" (the
# default run): our PMD writes A's RX buffers and used ring while the guest
# CPU stores what it receives, both under dirty logging. "paused"
# (VHU_QEMU_ALL=1): the first half has arrived and the connection idles
# while A migrates; the second half flows on the destination over the same
# connection.
#
# A's RAM is 8 KiB more than 256 MiB (TCG_SAFE_EXTRA_KB): with a whole
# number of MiB, QEMU 7.2 under TCG loses guest-CPU writes in a migration
# (its fast dirty-bitmap sync leaves the vCPU's TLB bypassing dirty
# tracking), and pages of the guest kernel then differ between the stopped
# source and the destination, with no vhost-user traffic at all
# (test_live_migration_guest_writing; docs/design.md, "Dirty logging and
# live migration"). VHU_QEMU_MIGRATE_ALIGNED_RAM=1 migrates such a guest.
ALIGNED_RAM = os.environ.get("VHU_QEMU_MIGRATE_ALIGNED_RAM") == "1"
STREAMS = opt_in_unless_all(["flowing", "paused"], {"paused"})
# The default run migrates once, announcing with our RARP (SEND_RARP is our
# code; GUEST_ANNOUNCE is the guest's): VHU_QEMU_ALL=1 runs both.
ANNOUNCES = opt_in_unless_all(VARIANTS, {"guest_announce"})


class MigrationRig(Rig):
    """Our testpmd with eth_vhost0 (A), eth_vhost1 (A' after the migration)
    and eth_vhost2 (B), forwarding between B's port and A's."""

    def __init__(self, launcher, assets):
        super().__init__(launcher, assets)
        self.socks = [launcher.path(n) for n in ("a.sock", "a-dst.sock", "b.sock")]
        self.initrd = None
        self.device_opts = ""
        # A's RAM: see TCG_SAFE_EXTRA_KB (0: a whole number of MiB, where
        # QEMU 7.2 under TCG loses guest-CPU writes while migrating)
        self.mem_extra_kb = 0 if ALIGNED_RAM else TCG_SAFE_EXTRA_KB

    def _vm(self, name, workdir, port, **kw):
        ip, mac = GUESTS[name]
        opts = self.device_opts if name == "a" else ""
        extra = self.mem_extra_kb if name == "a" else 0
        return Vm(name, workdir, self.assets, self.initrd, sock=self.socks[port], mac=mac,
                  ip=f"{ip}/24", device_opts=opts, mem_extra_kb=extra, **kw)

    def start(self, device_opts: str, vhost_opts=None, **ours_kw):
        """testpmd forwarding 0 <-> 2, guests A and B booted, both links up.
        ``vhost_opts``: extra devargs by port; ``ours_kw``: of launcher.ours()
        (e.g. ``app_args``)."""
        self.device_opts = device_opts
        self.ours = self.launcher.ours([vhost_vdev(p, s, **(vhost_opts or {}).get(p, {}))
                                        for p, s in enumerate(self.socks)], **ours_kw)
        self.forward(SRC)
        self.initrd = build_initramfs(self.assets, self.launcher.workdir / "initrd.gz")
        self.vms["a"] = self._vm("a", self.launcher.workdir, SRC)
        self.vms["b"] = self._vm("b", self.launcher.workdir, PEER)
        for vm in self.vms.values():
            vm.start(wait_ready=False)
        for vm in self.vms.values():
            vm.wait_ready()
        for port in (SRC, PEER):
            self.ours.wait_link_up(port)
        return self.vms["a"], self.vms["b"]

    def start_destination(self) -> Vm:
        """The destination QEMU: guest A's configuration on eth_vhost1,
        waiting for the migration (its own work dir: QMP socket, serial log)."""
        # -S: it stays paused after the migration, for compare_memory()
        dst = self.vms["a-dst"] = start_destination(self.vms["a"], self.launcher.workdir / "dst",
                                                    self.socks[DST], extra_args=["-S"])
        return dst

    def forward(self, port_of_a: int, verbose: int = 0):
        """(Re)start io forwarding between ``port_of_a`` and B's port."""
        self.ours.cmd("stop", timeout=60)
        self.ours.cmd(f"set portlist {port_of_a},{PEER}")
        self.ours.cmd(f"set verbose {verbose}")
        if not verbose:
            self.ours.start_forwarding()
            return
        # the harness's prompt matcher allows whole lines between the prompt's
        # characters (PROMPT_RE); the frames printed with verbose on can let it
        # match from the echoed "start" onwards, and the command's output then
        # comes back as "s": look for the forwarding banner in the log instead
        mark = len(self.ours.log)
        self.ours.cmd("start")
        self.ours.wait_log(r"packet forwarding - ports=", 10, mark)



@pytest.fixture
def rig(request, launcher, guest_assets):
    r = MigrationRig(launcher, guest_assets)
    yield r
    close_reporting_consoles(request, r)


def nic_counters(vm: Vm) -> dict:
    out = vm.run("cd /sys/class/net/$(cat /run/vhu-if)/statistics && "
                 "for f in rx_packets rx_dropped rx_nohandler; do echo $f $(cat $f); done").output
    return {k: int(v) for k, v in (line.split() for line in out.strip().splitlines())}


def compare_memory(src: Vm, dst: Vm, workdir, timeout: float = 30.0):
    """Guest-physical addresses (hex) of the pages that differ between the
    source (stopped after the migration) and the destination (still paused),
    read with QMP pmemsave, and a report of what each is (qemu/memdiff.py;
    both versions of each page are kept in ``workdir``/memdiff).  Pages our
    back end wrote without logging them (or that QEMU failed to resend) show
    up here before the guest trips on them.  The source is read twice, before
    and after the destination: a page that changed in between was written
    while the source was stopped, which only our back end could have done
    (its rings stopped at GET_VRING_BASE)."""
    deadline = time.monotonic() + timeout
    while dst.qmp("query-status")["status"] == "inmigrate":
        assert time.monotonic() < deadline, "destination still inmigrate"
        time.sleep(0.1)
    sm = save_memory(src, workdir / "src.mem")
    dm = save_memory(dst, workdir / "dst.mem")
    again = save_memory(src, workdir / "src.mem")
    written = differing_pages(sm, again)
    assert not written, (f"{len(written)} pages of the stopped source changed: "
                         f"{[hex(p) for p in written[:40]]}")
    differing = differing_pages(sm, dm)
    if not differing:
        return [], ""
    reports, summary = classify(differing, sm, dm, virtio_rings(src), FRAME_TO_A)
    out = workdir / "memdiff"
    out.mkdir(exist_ok=True)
    for gpa in differing:
        (out / f"{gpa:08x}.src").write_bytes(sm[gpa:gpa + PAGE])
        (out / f"{gpa:08x}.dst").write_bytes(dm[gpa:gpa + PAGE])
    text = summary + "\n" + "\n".join(r.line() for r in reports)
    (out / "report.txt").write_text(text + "\n")
    print(f"\nmemory differences:\n{text}")
    return [hex(p) for p in differing], text


class Stream:
    """B's TCP stream into A across a migration: ``first_mib`` of random
    data once started, ``second_mib`` more once released (by then through
    the destination's rings); A stores it, the destination checks it."""

    def __init__(self, a: Vm, b: Vm, first_mib: int, second_mib: int):
        self.b = b
        self.total = (first_mib + second_mib) * MIB
        self.md5 = b.run(f"rm -rf /tmp/tx /tmp/go /tmp/tx.rc && mkdir /tmp/tx && "
                         f"dd if=/dev/urandom of=/tmp/tx/1 bs=1M count={first_mib} 2>/dev/null && "
                         f"dd if=/dev/urandom of=/tmp/tx/2 bs=1M count={second_mib} 2>/dev/null && "
                         f"cat /tmp/tx/1 /tmp/tx/2 | md5sum", timeout=120).output.split()[0]
        # (-e hands the socket to cat: see tcp_transfer in qemu/rig.py)
        a.run("rm -rf /tmp/rx /tmp/rx.done && mkdir /tmp/rx")
        a.run_bg(f"nc -l -p {TCP_PORT} -e sh -c \"cat > /tmp/rx/data\"; touch /tmp/rx.done",
                 "/tmp/rx.log")
        a.run("until netstat -ltn | grep -q LISTEN; do sleep 0.1; done")

    def start(self):
        self.b.run_bg(f"(cat /tmp/tx/1; until [ -e /tmp/go ]; do sleep 0.1; done; "
                      f"cat /tmp/tx/2) | nc {GUESTS['a'][0]} {TCP_PORT}; echo $? > /tmp/tx.rc",
                      "/tmp/tx.log")

    def check_arrived(self, dst: Vm):
        """Releases the second part; all of it arrives on ``dst``, md5-exact."""
        self.b.run("touch /tmp/go")
        dst.run("until [ -e /tmp/rx.done ]; do sleep 0.1; done", timeout=90)
        got = dst.run("md5sum /tmp/rx/data; wc -c < /tmp/rx/data", timeout=60).output.split()
        assert (got[0], int(got[2])) == (self.md5, self.total), \
            f"B sent {self.total} bytes with md5 {self.md5}; A' stored {got[2]} bytes, md5 {got[0]}"
        assert self.b.run("cat /tmp/tx.rc").output.strip() == "0", \
            self.b.run("cat /tmp/tx.log").output


def wait_port_bytes(ours, port: int, key: str, value: int, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        got = ours.stats(port)[key]
        if got >= value:
            return got
        assert time.monotonic() < deadline, f"port {port} {key}={got} < {value} after {timeout}s"
        time.sleep(0.2)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("announce", ANNOUNCES)
def test_live_migration_mid_stream(rig, record_property, announce, stream):
    """B streams to A; A migrates from eth_vhost0 to eth_vhost1 mid-stream;
    the stream completes intact on the destination, which answers ping;
    dirty logging was on during the migration; the guest is announced
    (its own gratuitous ARP, or our PMD's RARP)."""
    t_start = time.monotonic()
    a, b = rig.start(VARIANTS[announce])
    ours = rig.ours
    features = negotiated(ours.log, SRC)[-1]
    assert  bool(features >> F_GUEST_ANNOUNCE & 1) == (announce == "guest_announce"), \
        f"eth_vhost0 negotiated 0x{features:x}"
    ping(a, b)
    ping(b, a)
    mac = GUESTS["a"][1].upper()

    # the stream: FIRST_MIB now, SECOND_MIB once released
    tcp = Stream(a, b, FIRST_MIB, SECOND_MIB)

    dst = rig.start_destination()

    b_before = nic_counters(b)
    before = ours.stats(SRC)["obytes"]
    tcp.start()
    # migrate while the data flows into A's RX ring, or once the first half is in
    at_start = wait_port_bytes(ours, SRC, "obytes", before + (
        MIGRATE_AFTER_MIB if stream == "flowing" else FIRST_MIB) * MIB, 90)
    mark = len(ours.log)
    info = a.migrate(dst.incoming, timeout=90, max_bandwidth=MAX_BANDWIDTH)
    at_end = ours.stats(SRC)["obytes"]
    ram = info.get("ram", {})
    total_ms, downtime_ms = info["total-time"], info["downtime"]
    record_property("migration_total_ms", total_ms)
    record_property("migration_downtime_ms", downtime_ms)
    record_property("migration_setup_ms", info.get("setup-time"))
    record_property("migration_ram_transferred_MiB", round(ram.get("transferred", 0) / MIB, 1))
    print(f"\nmigration ({announce}): total {total_ms} ms, downtime {downtime_ms} ms, "
          f"setup {info.get('setup-time')} ms, RAM transferred "
          f"{ram.get('transferred', 0) / MIB:.1f} MiB in {ram.get('dirty-sync-count')} dirty "
          f"syncs; {(at_end - at_start) / MIB:.1f} MiB went into A during it")
    # the destination (paused, -S) must hold exactly the stopped source's memory
    differing, report = compare_memory(a, dst, rig.launcher.workdir)
    assert not differing, (f"after the migration {len(differing)} pages of guest memory differ "
                           f"between source and destination: {differing[:40]}\n{report}")
    dst.qmp("cont")
    rig.forward(DST, verbose=1)   # B <-> the destination's port; print frames for a while

    # the destination runs on eth_vhost1; the source stopped: eth_vhost0 down
    ours.wait_link_up(DST)
    ours.wait_link(SRC, up=False)
    during = ours.log[mark:]
    assert re.search(r"eth_vhost0: dirty log of 0x[0-9a-f]+ bytes", during), \
        f"no SET_LOG_BASE on eth_vhost0 during the migration:\n{during[-3000:]}"
    assert any(f >> F_LOG_ALL & 1 for f in negotiated(during, SRC)), \
        f"LOG_ALL not negotiated on eth_vhost0 during the migration:\n{during[-3000:]}"
    if stream == "flowing":
        assert at_end > at_start, "no data reached A while it migrated"
    assert not any(f >> F_LOG_ALL & 1 for f in negotiated(ours.log, DST)), "LOG_ALL on eth_vhost1"
    assert a.quit() == 0, f"source QEMU: rc={a.returncode}\n{a.tail()}"
    del rig.vms["a"]   # checked; its log is in a.serial.log
    assert not QEMU_MESSAGE_RE.findall(a.log), QEMU_MESSAGE_RE.findall(a.log)

    # the guest announces itself on the destination port, B gets it
    if announce == "rarp":
        ours.wait_log(rf"eth_vhost1: will announce {mac} with a RARP frame", 20, mark)
        frame_rx = rf"port {DST}/queue 0: received \d+ packets\n\s*src={mac} - " \
                   rf"dst=FF:FF:FF:FF:FF:FF - .*type=0x8035"
    else:
        frame_rx = rf"port {DST}/queue 0: received \d+ packets\n\s*src={mac} - " \
                   rf"dst=FF:FF:FF:FF:FF:FF - .*type=0x0806"
    ours.wait_log(frame_rx, 20, mark)
    ours.cmd("set verbose 0")
    b_after = nic_counters(b)
    print(f"B's counters: before {b_before}, after {b_after}")
    if announce == "rarp":   # B's kernel has no handler for 0x8035: counted as dropped
        unhandled = {k: b_after[k] - b_before[k] for k in ("rx_dropped", "rx_nohandler")}
        assert sum(unhandled.values()) >= 1, f"the RARP did not reach B: {b_before} -> {b_after}"
    if announce == "guest_announce":
        assert "will announce" not in ours.log, "SEND_RARP for a guest with GUEST_ANNOUNCE"

    # the second half goes through the destination's rings
    tcp.check_arrived(dst)
    ping(b, dst)
    ping(dst, b)
    st = ours.stats_all()
    assert st[DST]["obytes"] >= SECOND_MIB * MIB, f"second half not sent to A' on port 1: {st}"
    rig.finish()
    print(f"test runtime {time.monotonic() - t_start:.0f} s")


GUEST_WRITES = os.environ.get("VHU_QEMU_MIGRATE_GUEST_WRITES") == "1"
RAMS = ["unaligned", pytest.param("aligned", marks=pytest.mark.xfail(
    reason="QEMU 7.2 under TCG loses guest-CPU writes when the RAM is a multiple of 256 KiB",
    strict=False))]


@pytest.mark.skipif(not GUEST_WRITES, reason="a check of QEMU, not of our back end: "
                                             "VHU_QEMU_MIGRATE_GUEST_WRITES=1 runs it")
@pytest.mark.parametrize("ram", RAMS)
@pytest.mark.parametrize("writer", ["tmpfs", "idle"])
def test_live_migration_guest_writing(rig, writer, ram):
    """The reference for the memory comparison of the migration above, with
    no vhost-user traffic at all: guest A's own CPU writes memory (random
    data into tmpfs files, as its TCP receiver does; or only what an idle
    kernel writes) while it migrates to a paused destination, whose memory
    must equal the stopped source's.  The guests exchange no traffic: the
    report of differing pages shows the RX ring's indices, where our back end
    would have written (a handful of frames since boot).  ``aligned``: A's
    RAM a whole 256 MiB, where QEMU 7.2 loses some of those writes (most
    runs, a few to a few dozen kernel pages; TCG_SAFE_EXTRA_KB);
    ``unaligned``: 8 KiB more, as the migration test runs it.  ``idle``
    is the control: a kernel that writes little lost nothing in the runs
    made (docs/design.md)."""
    rig.mem_extra_kb = TCG_SAFE_EXTRA_KB if ram == "unaligned" else 0
    a, _b = rig.start(VARIANTS["rarp"])
    dst = rig.start_destination()
    if writer == "tmpfs":
        a.run_bg("i=0; while :; do dd if=/dev/urandom of=/tmp/w$((i % 8)) bs=64k count=16 "
                 "2>/dev/null; i=$((i + 1)); done", "/tmp/w.log")
        time.sleep(3)
    info = a.migrate(dst.incoming, timeout=90, max_bandwidth=MAX_BANDWIDTH)
    print(f"\nmigration ({writer}, {ram} RAM): total {info['total-time']} ms, downtime "
          f"{info['downtime']} ms, {info.get('ram', {}).get('dirty-sync-count')} dirty syncs")
    differing, report = compare_memory(a, dst, rig.launcher.workdir)
    assert not differing, (f"after the migration {len(differing)} pages of guest memory differ "
                           f"between source and destination: {differing[:40]}\n{report}")
