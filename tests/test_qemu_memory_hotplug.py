"""Memory hot-plug under traffic: guest A gets 20 DIMMs and loses 16 of them
again while its vhost-user NIC on our eth_vhost0 carries TCP streams.

    guest A 10.0.0.1 (256 MiB + 20 x 128 MiB DIMMs) -- eth_vhost0 <=io=> eth_vhost1 -- guest B

Each DIMM is its own memfd (memory-backend-memfd, share=on), so QEMU hands
it to the back end as a region of its own: with VHOST_USER_PROTOCOL_F_
CONFIGURE_MEM_SLOTS one ADD_MEM_REG / REM_MEM_REG per DIMM; without it a
new SET_MEM_TABLE each time, limited to 8 regions, and QEMU refuses the
8th DIMM ("a used vhost backend has no free memory slots left").

Steps (timed; printed with -rP):

1. Both guests boot; A with ``-m 256M,slots=24,maxmem=3328M``.
2. B streams a 256 KiB random file over and over to A over TCP (busybox nc,
   md5sum on both ends) while the host hot-plugs 20 DIMMs of 128 MiB over
   QMP (object-add memory-backend-memfd + device_add pc-dimm), each of which
   must succeed, and A onlines the new memory blocks (sysfs; this kernel
   leaves hot-added memory offline): the first 4 DIMMs as kernel memory
   (ZONE_NORMAL, which the kernel prefers to the boot memory, all in DMA32
   here), the others as movable memory. The stream must go on during the
   hot-plug and arrive md5-exact.
3. MemTotal grew by the 20 DIMMs; A's RX buffers (read from its RX ring
   in guest memory with QMP x-query-virtio-queue-element) now lie in the
   kernel-memory DIMMs, where our back end writes what it receives for A.
4. 8 MiB each way, md5-exact.
5. The 16 movable DIMMs are unplugged (device_del: ACPI eject; the guest
   kernel offlines and removes the memory by itself) and their memory
   backends deleted. The 4 kernel-memory DIMMs stay: a guest cannot offline
   memory holding unmovable kernel pages (the RX buffers, slab), its
   eject fails ("memory memoryN: Offline failed", ACPI _OST "device busy")
   and QEMU keeps the DIMM.
6. Ping both ways and 4 MiB B -> A (into the remaining DIMMs), md5-exact.
7. Our testpmd's log shows a region added per DIMM and removed per
   unplugged one; QEMU printed no warning; testpmd exits cleanly.

Memory block size of the Debian cloud kernel (6.1) in this guest: 128 MiB
(/sys/devices/system/memory/block_size_bytes, checked), so the DIMMs are
128 MiB: a smaller one could not be added by the guest. The host only
provides what the guest touches (a few MiB per DIMM).

Run: /usr/bin/python3 -m pytest -v -rP tests/test_qemu_memory_hotplug.py
"""

from __future__ import annotations

import re
import time

import pytest

from qemu.rig import GUESTS, MIB, ping, tcp_transfer
from qemu.vm import Vm, VmError

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(240)]

BASE_MB = 256
DIMM_MB = 128           # = the guest's memory block size (checked)
SLOTS = 24
DIMMS = 20
KERNEL_DIMMS = 4        # onlined as kernel memory (kept), the others movable (unplugged)
STREAM_PORT = 6001
STREAM_FILE_KIB = 256
BULK_MIB = 8
FINAL_MIB = 4
GUEST_A_OPTS = dict(mem_mb=BASE_MB, mem_slots=SLOTS, maxmem_mb=BASE_MB + SLOTS * DIMM_MB)

# What our back end logs per region (lib/vhost/memory.c): a line per
# ADD_MEM_REG ("added") and per REM_MEM_REG ("removed"), with the region's
# guest physical address and the number of regions it has then.
# (not anchored: a line may follow testpmd's prompt)
REGION_RE = re.compile(r"VHU: eth_vhost0: region (added|removed): gpa (0x[0-9a-f]+) "
                       r".*\((\d+) in all\)")


class Timings:
    def __init__(self):
        self.t0 = self.last = time.monotonic()
        self.steps = []

    def __call__(self, what: str):
        now = time.monotonic()
        self.steps.append((what, now - self.last))
        print(f"[{now - self.t0:5.1f}s] {what} ({now - self.last:.1f}s)")
        self.last = now

    def report(self, record_property):
        total = time.monotonic() - self.t0
        for what, secs in self.steps:
            record_property(f"seconds_{what.replace(' ', '_')}", round(secs, 1))
        print("\ntimings: " + ", ".join(f"{w} {s:.1f}s" for w, s in self.steps)
              + f"; total {total:.1f}s")


# ----------------------------------------------------------------- host side

def plug_dimm(vm: Vm, i: int):
    """DIMM ``dimm<i>`` on its own memfd backend ``mem<i>``."""
    vm.qmp("object-add", **{"qom-type": "memory-backend-memfd", "id": f"mem{i}",
                            "size": DIMM_MB * MIB, "share": True})
    try:
        vm.qmp("device_add", driver="pc-dimm", id=f"dimm{i}", memdev=f"mem{i}")
    except VmError as exc:
        raise AssertionError(f"QEMU refused DIMM #{i + 1} of {DIMMS}: {exc}") from None


def dimm_addrs(vm: Vm) -> dict:
    """{DIMM id: guest physical address} of the DIMMs QEMU has."""
    return {d["data"]["id"]: d["data"]["addr"] for d in vm.qmp("query-memory-devices")
            if d["type"] == "dimm"}


def wait_dimms_gone(vm: Vm, ids, timeout: float = 60.0):
    """Wait until QEMU has none of the DIMMs ``ids`` (the guest ejected them)."""
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(set(ids) & set(dimm_addrs(vm)))
        if not left:
            return
        if time.monotonic() > deadline:
            osts = [e["info"] for e in vm.qmp_events("ACPI_DEVICE_OST")]
            raise AssertionError(f"{len(left)} DIMMs still there {timeout}s after device_del: "
                                 f"{left}; ACPI _OST events: {osts}; guest dmesg:\n"
                                 + vm.run("dmesg | tail -30", check=False).output)
        time.sleep(0.2)


def rx_buffer_addrs(vm: Vm) -> list:
    """Guest physical addresses of the buffers in ``vm``'s RX ring (queue 0),
    read from guest memory by QEMU (x-query-virtio-queue-element, every
    avail ring entry; it only reads, unlike x-query-virtio-queue-status,
    which sends GET_VRING_BASE to a vhost-user back end and so stops the
    ring)."""
    path = next(d["path"] for d in vm.qmp("x-query-virtio") if d["name"] == "virtio-net")
    addrs = []
    for index in range(256):
        elem = vm.qmp("x-query-virtio-queue-element", path=path, queue=0, index=index)
        addrs += [d["addr"] for d in elem["descs"]]
    return addrs


# ---------------------------------------------------------------- guest side

def mem_total_kib(vm: Vm) -> int:
    out = vm.run("grep MemTotal /proc/meminfo").output
    return int(out.split()[1])


def online_blocks(vm: Vm, blocks, zone: str, timeout: float = 30.0):
    """Wait until memory blocks ``blocks`` (numbers) exist (the kernel adds
    them when ACPI tells it of the DIMM), then online them as ``zone``
    (``online_kernel`` / ``online_movable``)."""
    names = " ".join(f"memory{n}" for n in blocks)
    vm.run(f"""set -e
cd /sys/devices/system/memory
for m in {names}; do
    until [ -e $m/state ]; do sleep 0.1; done
    [ "$(cat $m/state)" = online ] || echo {zone} > $m/state
    [ "$(cat $m/state)" = online ]
done""", timeout=timeout)


def start_stream(src: Vm, dst: Vm):
    """``src`` sends a random file over and over to ``dst`` over one TCP
    connection until ``stop_stream``; both ends keep the md5sum of the stream."""
    dst.run("rm -f /tmp/stream.md5")
    dst.run_bg(f"nc -l -p {STREAM_PORT} -e sh -c 'md5sum > /tmp/stream.md5'", "/tmp/stream.log")
    dst.run(f"until netstat -ltn | grep -q :{STREAM_PORT}; do sleep 0.1; done")
    src.run(f"rm -f /tmp/stop /tmp/stream.* /tmp/f && mkfifo /tmp/f && "
            f"dd if=/dev/urandom of=/tmp/s bs=1024 count={STREAM_FILE_KIB} 2>/dev/null")
    ip = GUESTS[dst.name][0]
    src.run_bg("md5sum < /tmp/f > /tmp/stream.md5 & "
               "n=0; while [ ! -e /tmp/stop ]; do cat /tmp/s || exit 1; n=$((n + 1)); "
               f"echo $n > /tmp/stream.n; done | tee /tmp/f | nc {ip} {STREAM_PORT}; "
               "echo $? > /tmp/stream.rc; wait", "/tmp/stream.log")


def stream_files(vm: Vm) -> int:
    """Files sent so far by the stream's source."""
    return int(vm.run("cat /tmp/stream.n 2>/dev/null || echo 0").output.split()[0])


def stop_stream(src: Vm, dst: Vm) -> float:
    """End the stream; asserts that it arrived whole. Returns the MiB sent."""
    src.run("touch /tmp/stop; until [ -s /tmp/stream.md5 ] && [ -e /tmp/stream.rc ]; "
            "do sleep 0.1; done", timeout=60)
    sent = src.run("cat /tmp/stream.md5 /tmp/stream.n /tmp/stream.rc").output.split()
    got = dst.run("until [ -s /tmp/stream.md5 ]; do sleep 0.1; done; cat /tmp/stream.md5",
                  timeout=60).output.split()
    assert sent[3] == "0", f"{src.name}'s nc exited with {sent[3]}"
    assert got[0] == sent[0], \
        f"{src.name} streamed {sent[2]} x {STREAM_FILE_KIB} KiB with md5 {sent[0]}; " \
        f"{dst.name} got md5 {got[0]}"
    return int(sent[2]) * STREAM_FILE_KIB / 1024


# ----------------------------------------------------------------------- test

def test_dimms_plugged_and_unplugged_under_traffic(rig, record_property):
    timings = Timings()
    a, b = rig.start(queues=1, guest_opts={"a": GUEST_A_OPTS})
    timings("boot")
    block = int(a.run("cat /sys/devices/system/memory/block_size_bytes").output.strip(), 16)
    assert block == DIMM_MB * MIB, f"guest memory block size {block:#x}: change DIMM_MB"
    total0 = mem_total_kib(a)
    ping(b, a, count=1)

    start_stream(b, a)
    timings("stream started")
    files0 = stream_files(b)
    for i in range(DIMMS):
        plug_dimm(a, i)
    timings(f"{DIMMS} DIMMs plugged")
    addrs = dimm_addrs(a)
    assert len(addrs) == DIMMS, addrs
    blocks = {dimm: addr // block for dimm, addr in addrs.items()}
    kernel = [f"dimm{i}" for i in range(KERNEL_DIMMS)]
    movable = [f"dimm{i}" for i in range(KERNEL_DIMMS, DIMMS)]
    online_blocks(a, [blocks[d] for d in kernel], "online_kernel")
    online_blocks(a, [blocks[d] for d in movable], "online_movable")
    timings("memory onlined")
    files1 = stream_files(b)
    # the stream went on meanwhile, and goes on into the new memory
    assert files1 > files0, f"the stream stalled during the hot-plug ({files0} -> {files1})"
    time.sleep(2)
    streamed = stop_stream(b, a)
    timings("stream checked")
    print(f"\nstream B -> A: {streamed:.2f} MiB, "
          f"{(files1 - files0) * STREAM_FILE_KIB / 1024:.2f} MiB during the hot-plug")

    grown = mem_total_kib(a) - total0
    assert grown == DIMMS * DIMM_MB * 1024, f"MemTotal grew by {grown} KiB"
    in_dimms = [x for x in rx_buffer_addrs(a)
                if any(addrs[d] <= x < addrs[d] + DIMM_MB * MIB for d in kernel)]
    print(f"A's RX buffers in the kernel-memory DIMMs: {len(in_dimms)} of 256")
    assert in_dimms, "none of A's RX buffers lies in a hot-plugged DIMM"

    tcp_transfer(b, a, BULK_MIB, conns=1)
    tcp_transfer(a, b, BULK_MIB, conns=1)
    timings("transfers")

    a.run("rm -rf /tmp/rx /tmp/tx")     # less for the guest to migrate away
    for dimm in movable:
        a.qmp("device_del", id=dimm)
    wait_dimms_gone(a, movable)
    for dimm in movable:
        a.qmp("object-del", id=dimm.replace("dimm", "mem"))
    timings(f"{len(movable)} DIMMs unplugged")
    assert sorted(dimm_addrs(a)) == sorted(kernel)
    left = mem_total_kib(a) - total0
    assert left == KERNEL_DIMMS * DIMM_MB * 1024, f"MemTotal above boot: {left} KiB"
    gone = a.run("cd /sys/devices/system/memory; for n in "
                 + " ".join(str(blocks[d]) for d in movable)
                 + "; do [ -e memory$n ] && echo memory$n; done; true").output.split()
    assert not gone, f"memory blocks still in the guest: {gone}"

    ping(a, b, count=2, interval=0.5)
    ping(b, a, count=2, interval=0.5)
    tcp_transfer(b, a, FINAL_MIB, conns=1)
    timings("final traffic")

    # each DIMM added once, each unplugged one removed once, the base RAM
    # (gpa 0) added and never removed: 1 + KERNEL_DIMMS regions left
    events = [(what, int(gpa, 16), int(n)) for what, gpa, n in REGION_RE.findall(rig.ours.log)]
    for dimm, addr in addrs.items():
        seen = [what for what, gpa, _ in events if gpa == addr]
        want = ["added"] + (["removed"] if dimm in movable else [])
        assert seen == want, f"{dimm} (gpa {addr:#x}): our log has {seen}, not {want}"
    assert [what for what, gpa, _ in events if gpa == 0] == ["added"], events
    assert len(events) == 1 + DIMMS + len(movable), events
    assert events[-1][2] == 1 + KERNEL_DIMMS, f"regions left: {events[-1]}"
    print(f"our log: {sum(w == 'added' for w, _, _ in events)} regions added, "
          f"{sum(w == 'removed' for w, _, _ in events)} removed, {events[-1][2]} left")
    rig.finish()
    timings("finish")
    timings.report(record_property)
