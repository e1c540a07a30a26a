"""A postcopy live migration of a QEMU guest between two ports of our testpmd.

    guest A  (source)       --vhost-user-- eth_vhost0 \\
    guest A' (destination)  --vhost-user-- eth_vhost1  >=io=> eth_vhost2 --vhost-user-- guest B
                                                     /
The rig of tests/test_qemu_migration.py (MigrationRig), with
``postcopy-support=1`` on A's two ports (PROTOCOL_F_PAGEFAULT offered) and
our testpmd run with ``--no-mlockall``: testpmd's default mlockall() would
populate our mapping of the destination's memory before it is registered
with the userfaultfd, and QEMU could no longer place those pages (EEXIST:
the migration stops in postcopy-paused).

Scenario: B streams random data to A over TCP, and pings A 50 times a
second from just before the migration to its end; once some of the stream
arrived, A migrates with capability ``postcopy-ram`` (set on both QEMUs) and
``migrate-start-postcopy`` right after ``migrate``: the source switches to
postcopy before its first pass over the guest's memory, and the
destination runs the guest before (almost any of) its memory arrived.  Our
testpmd forwards B's port with the destination's from ``migrate`` on, so
our PMD polls A''s rings from the moment the destination QEMU starts them:
it then reads the rings and writes the stream and the pings into guest
pages that may not be there yet, each such access waiting in the kernel
until QEMU placed the page (our userfaultfd, handed to QEMU at
POSTCOPY_ADVISE).  The source sends the missing pages slowly
(POSTCOPY_SLOW) until the destination QEMU took a first fault of ours, then
fast (POSTCOPY_FAST).  The stream's second half is sent once the migration
completed, over the same connection.

Checked: query-migrate went through ``postcopy-active`` and completed; the
destination runs; our log shows, for eth_vhost1, ``postcopy: listening``,
the memory regions registered for page faults, ``postcopy: done``; the
stream arrives intact on the destination (md5) and B and A' ping each
other; no QEMU printed a warning or error; every QEMU and our testpmd exit
cleanly, the ports served by our PMD.  Our PMD must have met a missing page
at least once: the destination QEMU traces (-trace) the faults it read from
our userfaultfd (vhost_user_postcopy_fault_handler_found; 2 to 6 per run
here, the page stream then goes on from the page asked for) and those of
its own guest (postcopy_ram_fault_thread_request, printed).

Run: VHU_PMD="$(scripts/stage-pmd.sh build/drivers/net/vhost/librte_net_vhu.so)" \\
     /usr/bin/python3 -m pytest -v -rP tests/test_qemu_postcopy.py
"""

from __future__ import annotations

import re
import time

import pytest

from qemu.migration import start_destination, wait_arrived
from qemu.rig import GUESTS, MIB, QEMU_MESSAGE_RE, close_reporting_consoles, ping
from qemu.vm import VmError
from test_qemu_migration import DST, SRC, MigrationRig, Stream, wait_port_bytes

pytestmark = [pytest.mark.qemu, pytest.mark.ours_only, pytest.mark.timeout(180)]

FIRST_MIB = 16                  # streamed before/while A migrates
SECOND_MIB = 4                  # streamed once the migration completed
MIGRATE_AFTER_MIB = 2           # A received that much before the migration starts
# migrate-set-parameters max-bandwidth (bytes/s) before the switch to
# postcopy, and max-postcopy-bandwidth after it: slow until the destination
# QEMU took a fault of ours from our userfaultfd, so that the pages our PMD
# writes first are still missing then (pages come at that rate, on demand,
# and the stream goes on from each page asked for, past the RX buffers
# next to it); fast once it did, to finish. Slow for at most
# OUR_FAULT_TIMEOUT seconds.
POSTCOPY_SLOW = 2 * MIB
POSTCOPY_FAST = 64 * MIB
OUR_FAULT_TIMEOUT = 30
# destination QEMU trace events: our faults it took from our userfaultfd,
# its own (the guest's) faults
OUR_FAULT = "vhost_user_postcopy_fault_handler_found"
TRACE_EVENTS = (OUR_FAULT, "postcopy_ram_fault_thread_request")
POSTCOPY_OPTS = {"postcopy-support": 1}
# B's pings at A while it migrates (seconds, payload bytes): 50 frames/s
# that fill A's RX buffers whatever the stream does
PROVOKE_INTERVAL = 0.02
PROVOKE_SIZE = 1400


@pytest.fixture
def rig(request, launcher, guest_assets):
    r = MigrationRig(launcher, guest_assets)
    yield r
    close_reporting_consoles(request, r)


def postcopy_capability(vm):
    vm.qmp("migrate-set-capabilities",
           capabilities=[{"capability": "postcopy-ram", "state": True}])


def traced(vm, event: str) -> int:
    """How many times ``vm`` (run with ``-trace event``) traced ``event``."""
    return len(re.findall(rf"^(?:\d+@[\d.]+:)?{event} ", vm.log, re.M))


def test_postcopy_migration_mid_stream(rig, record_property):
    """B streams to A; A migrates from eth_vhost0 to eth_vhost1 in postcopy
    mode, the destination running (and our PMD writing its memory) before
    its memory arrived; the stream completes intact there."""
    t_start = time.monotonic()
    a, b = rig.start("", vhost_opts={SRC: POSTCOPY_OPTS, DST: POSTCOPY_OPTS},
                     app_args=["--no-mlockall"])
    ours = rig.ours
    ping(b, a)

    stream = Stream(a, b, FIRST_MIB, SECOND_MIB)

    trace = [arg for ev in TRACE_EVENTS for arg in ("-trace", ev)]
    dst = rig.vms["a-dst"] = start_destination(a, rig.launcher.workdir / "dst",
                                               rig.socks[DST], extra_args=trace)
    for vm in (a, dst):
        postcopy_capability(vm)
    a.qmp("migrate-set-parameters", **{"max-bandwidth": POSTCOPY_SLOW,
                                       "max-postcopy-bandwidth": POSTCOPY_SLOW})

    before = ours.stats(SRC)["obytes"]
    stream.start()
    at_start = wait_port_bytes(ours, SRC, "obytes", before + MIGRATE_AFTER_MIB * MIB, 90)
    # B's TCP stream may sit out the switch in retransmission back-off while
    # the pages the destination misses arrive; pings that keep coming make
    # our PMD write A''s RX buffers, posted on the source and untouched by
    # the guest since, as soon as the destination starts A''s rings
    b.run_bg(f"ping -q -i {PROVOKE_INTERVAL} -s {PROVOKE_SIZE} {GUESTS['a'][0]}",
             "/tmp/provoke.log")
    mark = len(ours.log)

    # migrate, in postcopy at once; B's port goes with the destination's
    # from now on: our PMD polls A''s rings from the moment the destination
    # QEMU starts them, before the guest runs again
    t0 = time.monotonic()
    a.qmp("migrate", uri=dst.incoming)
    # at once: the source switches to postcopy before its first pass over
    # the guest's memory, which is then missing on the destination
    a.qmp("migrate-start-postcopy")
    rig.forward(DST)
    statuses, dst_statuses = [], []
    fast_after = None       # seconds of slow postcopy
    info = {}
    while True:
        info = a.qmp("query-migrate") or {}
        status = info.get("status")
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status in ("failed", "cancelled") or status.startswith("postcopy-paused"):
            raise AssertionError(f"migration {status} (statuses {statuses}): {info}\n"
                                 f"destination:\n{dst.tail()}\nours:\n{ours.tail()}")
        if status == "postcopy-active" and fast_after is None:
            slow_for = time.monotonic() - t0
            if traced(dst, OUR_FAULT) or slow_for > OUR_FAULT_TIMEOUT:
                a.qmp("migrate-set-parameters", **{"max-postcopy-bandwidth": POSTCOPY_FAST})
                fast_after = slow_for
        if "running" not in dst_statuses:
            try:
                dst_status = dst.qmp("query-status")["status"]
            except (VmError, OSError) as exc:
                raise AssertionError(f"destination QEMU gone ({exc}), statuses {statuses}:\n"
                                     f"{dst.tail()}") from exc
            if not dst_statuses or dst_statuses[-1] != dst_status:
                dst_statuses.append(dst_status)
        if status == "completed":
            break
        assert time.monotonic() - t0 < 90, f"migration not completed after 90 s: {statuses}"
        time.sleep(0.05)
    at_end = ours.stats(SRC)["obytes"]
    into_dst = ours.stats(DST)["obytes"]    # what A' got while postcopy was active
    b.run("kill $(pidof ping) 2>/dev/null; true")
    wait_arrived(dst)
    print(f"\nsource statuses {statuses}; destination {dst_statuses}; postcopy at "
          f"{POSTCOPY_SLOW // MIB} MiB/s for {fast_after or 0:.1f} s, then "
          f"{POSTCOPY_FAST // MIB} MiB/s")
    assert "postcopy-active" in statuses, f"never postcopy-active: {statuses}"
    ram = info.get("ram", {})
    record_property("migration_total_ms", info.get("total-time"))
    record_property("migration_downtime_ms", info.get("downtime"))
    print(f"migration: total {info.get('total-time')} ms, downtime {info.get('downtime')} ms, "
          f"RAM transferred {ram.get('transferred', 0) / MIB:.1f} MiB, postcopy requests "
          f"{ram.get('postcopy-requests')}; {(at_end - at_start) / MIB:.1f} MiB went into A "
          f"on the source during it, {into_dst / MIB:.1f} MiB into A' in postcopy")

    # our side: postcopy on the destination's port, and only there
    during = ours.log[mark:]
    for line in (r"postcopy: listening", r"postcopy: \d+ memory regions registered for page "
                 r"faults", r"postcopy: done"):
        assert re.search(rf"eth_vhost{DST}: {line}", during), \
            f"no 'eth_vhost{DST}: {line}' in our log:\n{during[-4000:]}"
    assert not re.search(rf"eth_vhost{SRC}: postcopy", ours.log), "postcopy on the source port"
    print("ours: " + "; ".join(re.findall(rf"eth_vhost{DST}: postcopy: [^\n]*", during)))
    ours.wait_link_up(DST)
    ours.wait_link(SRC, up=False)
    assert a.quit() == 0, f"source QEMU: rc={a.returncode}\n{a.tail()}"
    del rig.vms["a"]   # checked; its log is in a.serial.log
    assert not QEMU_MESSAGE_RE.findall(a.log), QEMU_MESSAGE_RE.findall(a.log)

    # the second half, on the destination's rings
    stream.check_arrived(dst)
    ping(b, dst)
    ping(dst, b)

    counts = {ev: traced(dst, ev) for ev in TRACE_EVENTS}
    for ev, n in counts.items():
        record_property(ev, n)
    print(f"destination QEMU traced: {counts}")
    assert into_dst > 0, "nothing reached A' on eth_vhost1 while postcopy was active"
    assert counts[OUR_FAULT] >= 1, \
        f"QEMU resolved no page fault of ours (our PMD wrote {into_dst} bytes into A' in " \
        f"postcopy): {counts}"
    rig.finish()
    print(f"test runtime {time.monotonic() - t_start:.0f} s")
