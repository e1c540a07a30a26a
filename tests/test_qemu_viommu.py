"""Two QEMU guests behind a virtual IOMMU, their virtio-net NICs on two
vhost-user ports of one testpmd with ``iommu-support=1``.

    guest A 10.0.0.1 --vhost-user-- eth_vhost0 <=io=> eth_vhost1 --vhost-user-- guest B 10.0.0.2
    (q35, intel-iommu, strict)                                   (q35, intel-iommu, strict)

Each guest: ``-M q35`` (TCG, shared memfd memory as in every QEMU test),
``-device intel-iommu,device-iotlb=on,intremap=on`` before its NIC, the NIC
``virtio-net-pci,...,vectors=0,iommu_platform=on,ats=on`` behind a
``pcie-root-port`` of its own (on pcie.0 itself virtio-pci is an integrated
device without PCIe extended capabilities: no ATS), and the kernel command
line ``intel_iommu=on iommu.strict=1``. The guest kernel then gives the
NIC IOVAs, not guest physical addresses, maps each buffer before it goes
into a ring and unmaps it when it comes back, and, strict, invalidates the
IOTLB and the device's IOTLB (ATS) at every unmap. QEMU passes each
device-IOTLB invalidation to the back end (IOTLB_MSG invalidate), and
answers the back end's translation misses (IOTLB_MISS on the back-end
channel) with IOTLB_MSG updates. (Without ``ats=on``, Debian's QEMU 7.2.22
passes the plain IOTLB invalidations on instead, measured: no device-IOTLB
invalidation then, as many IOTLB_MSGs beyond the misses.) Under TCG
neither ``intremap=off`` nor ``kernel-irqchip=split`` is needed (the
latter is KVM's; interrupt remapping works in TCG and is on by default).

Checked, for each guest: its kernel log shows the IOMMU on (``DMAR: IOMMU
enabled``, ``DMA domain TLB invalidation policy: strict mode``, the NIC's
PCI function added to an IOMMU group), the NIC's group is a translated DMA
domain (sysfs ``iommu_group/type`` ``DMA``, not ``DMA-FQ``, the lazy one,
nor ``identity``), the NIC negotiated VIRTIO_F_ACCESS_PLATFORM (guest and
back end agree) and its ATS capability is enabled (the kernel enables it
only with a device IOTLB). Then ping both ways and a TCP transfer A -> B
with the same md5 on both ends (TRANSFER_MIB). While that traffic flowed,
QEMU's trace (``-trace``, into ``<name>.trace.log``) must show device-IOTLB
invalidations the guest issued (``vtd_inv_desc`` type ``device``), IOTLB
misses the back end asked for (``vhost_iotlb_miss`` step 1) and more
IOTLB_MSGs written to the back end (``vhost_user_write`` req 22) than there
were misses: the surplus are invalidations the back end acknowledged. No
DMA fault anywhere: none in the guests' kernel logs (``DMAR: DRHD: handling
fault``, ``DMAR: [DMA Read/Write ...]``...), none recorded by the vIOMMU
(``vtd_dmar_fault``/``vtd_fault_disabled`` traced), no QEMU message
(``Fail to lookup the translated address``...). The guests shut down
cleanly and testpmd exits cleanly (Rig.finish). Our PMD's IOTLB counters,
logged when each guest leaves, must match QEMU's trace of the whole run:
updates + invalidations = the IOTLB_MSGs QEMU wrote, some of each, and
its misses some of those QEMU traced.

Back ends (parameter ``backend``):
- ``ours`` (default): our PMD, plain ``set fwd io`` (no retry);
- ``net_vhost``: DPDK's own net_vhost as the reference, testpmd without
  ``-d``; it carries this traffic only with ``set fwd io retry`` and TX
  retries (Rig ``tx_retry``). Opt-in: ``VHU_QEMU_ALL=1`` (or
  ``VHU_PMD=distro``, which skips ``ours``).
Traffic (parameter ``variant``): ``short`` (the default) moves 2 MiB
A -> B; ``VHU_QEMU_ALL=1`` also runs ``bulk``, 8 MiB A -> B over 4
connections and 2 MiB back (0.2 to 5 MiB/s measured, strict mode costs a
vhost-user round trip per unmap), and ``packed``, 4 MiB A -> B on packed rings
(``packed=on``, checked negotiated; not with net_vhost: DPDK 22.11's
forwards nothing there).

Run: VHU_PMD="$(scripts/stage-pmd.sh build/drivers/net/vhost/librte_net_vhu.so)" \\
     /usr/bin/python3 -m pytest -v -rP tests/test_qemu_viommu.py
(VHU_QEMU_ALL=1 in front for the net_vhost reference and the longer variants.)
"""

from __future__ import annotations

import re
import time

import pytest

from harness import PmdSelection
from qemu.migration import negotiated, netvhost_negotiated
from qemu.opt_in import OPT_IN, opt_in_unless_all
from qemu.rig import GUESTS, ping, report_rate, tcp_transfer
from qemu.vm import Vm

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]


IOMMU = "intel-iommu,device-iotlb=on,intremap=on"
NIC_OPTS = ",iommu_platform=on,ats=on"
KERNEL_ARGS = "intel_iommu=on iommu.strict=1"
VHOST_OPTS = {"iommu-support": 1}
# QEMU trace events: the vIOMMU's invalidation descriptors (type device:
# device-IOTLB, passed on to the back end), the back end's IOTLB misses,
# every vhost-user message QEMU writes (IOTLB_MSG: req 22), and the DMA
# faults the vIOMMU records or suppresses
TRACE_EVENTS = ("vtd_inv_desc", "vhost_iotlb_miss", "vhost_user_write", "vtd_dmar_fault",
                "vtd_fault_disabled")
VIOMMU_GUEST = dict(machine="q35", iommu=IOMMU, root_ports=True, append=KERNEL_ARGS,
                    trace=TRACE_EVENTS)
VHOST_USER_IOTLB_MSG = 22
F_ACCESS_PLATFORM = 33
F_RING_PACKED = 34
PCI_EXT_CAP_ID_ATS = 0x0F
DMA_FAULT_RE = re.compile(r"^.*(?:DMAR: DRHD: handling fault|DMAR: \[(?:DMA|INTR)|"
                          r"PTE (?:Read|Write) access is not set|IOMMU fault|"
                          r"[Ff]ault addr).*$", re.M)
# what our PMD logs when a front end leaves (lib/vhost/session.c)
OUR_IOTLB_RE = re.compile(r"eth_vhost(\d+): IOTLB: (\d+) updates, (\d+) invalidations, "
                          r"(\d+) misses asked, (\d+) entries evicted")
# the Vm's trace_log lines (the log backend may prefix "<pid>@<time>:")
TRACE_LINE = r"^(?:\d+@[\d.]+:)?{event} {rest}"

# name: (PMD serving the ports, forwarding with TX retries)
BACKENDS = {"ours": (None, False), "net_vhost": (PmdSelection("distro"), True)}
# (net_vhost runs by default where it is the PMD under test: VHU_PMD=distro)
BACKEND_PARAMS = [pytest.param("ours", marks=pytest.mark.ours_only),
                  pytest.param("net_vhost",
                               marks=() if PmdSelection.from_env().is_distro else OPT_IN)]
# name: (MiB A -> B, connections, MiB B -> A, extra NIC options)
VARIANTS = {"short": (2, 1, 0, ""), "bulk": (8, 4, 2, ""), "packed": (4, 1, 0, ",packed=on")}
VARIANT_PARAMS = opt_in_unless_all(VARIANTS, {"bulk", "packed"})


# ---------------------------------------------------------------- guest side

def guest_iommu_state(vm: Vm) -> dict:
    """What ``vm``'s kernel says about the IOMMU and its NIC: the kernel log,
    the NIC's PCI address, IOMMU group and its type, the virtio feature
    bits the driver negotiated (sysfs string, bit n at index n) and the
    first 512 bytes of its PCI configuration space (hex)."""
    out = vm.run("""set -e
nic=$(cat /run/vhu-if)
pci=$(basename $(readlink -f /sys/class/net/$nic/device/..))
echo "@pci $pci"
echo "@group $(basename $(readlink -f /sys/bus/pci/devices/$pci/iommu_group))"
echo "@type $(cat /sys/bus/pci/devices/$pci/iommu_group/type)"
echo "@features $(cat /sys/class/net/$nic/device/features)"
echo "@config $(od -An -v -tx1 -N 512 /sys/bus/pci/devices/$pci/config | tr -d ' \\n')"
echo @dmesg
dmesg""", timeout=60).output
    state = dict(re.findall(r"^@(pci|group|type|features|config) (\S*)$", out, re.M))
    state["dmesg"] = out.split("@dmesg\n", 1)[1]
    return state


def ats_enabled(config_hex: str) -> bool:
    """Whether the PCIe extended capability list in ``config_hex`` (the
    configuration space from offset 0, hex) has ATS, with its Enable bit
    (ATS control register, bit 15) set."""
    config = bytes.fromhex(config_hex)
    offset, seen = 0x100, set()
    while offset and offset + 8 <= len(config) and offset not in seen:
        seen.add(offset)
        header = int.from_bytes(config[offset:offset + 4], "little")
        if header & 0xFFFF == PCI_EXT_CAP_ID_ATS:
            control = int.from_bytes(config[offset + 6:offset + 8], "little")
            return bool(control & 0x8000)
        offset = header >> 20
    return False


def assert_iommu_on(vm: Vm, state: dict):
    """The guest translates its NIC's DMA in strict mode, with ATS."""
    dmesg, pci = state["dmesg"], state["pci"]
    for line in (r"DMAR: IOMMU enabled",
                 r"iommu: DMA domain TLB invalidation policy: strict mode",
                 rf"pci {re.escape(pci)}: Adding to iommu group {state['group']}\b"):
        assert re.search(line, dmesg), f"{vm.name}: no /{line}/ in the kernel log:\n{dmesg}"
    assert state["type"] == "DMA", \
        f"{vm.name}: the NIC ({pci}) is in IOMMU group {state['group']} of type " \
        f"{state['type']!r}, not a strict translated domain (DMA)"
    features = state["features"]
    assert len(features) > F_ACCESS_PLATFORM and features[F_ACCESS_PLATFORM] == "1", \
        f"{vm.name}: VIRTIO_F_ACCESS_PLATFORM not negotiated (driver features {features})"
    assert ats_enabled(state["config"]), \
        f"{vm.name}: ATS not enabled on its NIC ({pci}); configuration space {state['config']}"


def dma_faults(vm: Vm) -> list:
    return DMA_FAULT_RE.findall(vm.run("dmesg").output)


# ----------------------------------------------------------------- host side

def trace_counts(vm: Vm, start: int = 0) -> dict:
    """Events in ``vm``'s QEMU trace from offset ``start``: device-IOTLB
    invalidations, IOTLB misses, IOTLB_MSGs written, DMA faults."""
    text = vm.trace_log()[start:]

    def count(event, rest=""):
        return len(re.findall(TRACE_LINE.format(event=event, rest=rest), text, re.M))

    return {"device_iotlb_invalidations": count("vtd_inv_desc", r"invalidate desc type device "),
            "iotlb_misses": count("vhost_iotlb_miss", r"\S+ step 1$"),
            "iotlb_msgs": count("vhost_user_write", rf"req:{VHOST_USER_IOTLB_MSG} "),
            "dma_faults": count("vtd_dmar_fault") + count("vtd_fault_disabled")}


def assert_our_iotlb_counters(log: str, vms):
    """Our PMD's IOTLB counters (logged when a front end leaves) agree with
    QEMU's trace of the whole run: every IOTLB_MSG QEMU wrote was applied,
    as an update or an invalidation, some of each; our misses were some of
    those QEMU traced (QEMU adds its own, for the used rings at start)."""
    ours = {int(port): tuple(map(int, rest)) for port, *rest in OUR_IOTLB_RE.findall(log)}
    for port, vm in enumerate(vms):
        assert port in ours, f"no IOTLB counters of eth_vhost{port} in our log " \
            f"(/{OUR_IOTLB_RE.pattern}/)"
        updates, invalidations, misses, evicted = ours[port]
        qemu = trace_counts(vm)
        print(f"eth_vhost{port}: {updates} updates, {invalidations} invalidations, {misses} "
              f"misses asked, {evicted} evicted; QEMU {vm.name} over the run: {qemu}")
        assert min(updates, invalidations, misses) > 0, ours[port]
        assert updates + invalidations == qemu["iotlb_msgs"], \
            f"eth_vhost{port} applied {updates} updates and {invalidations} invalidations, " \
            f"QEMU {vm.name} wrote {qemu['iotlb_msgs']} IOTLB_MSGs"
        assert misses <= qemu["iotlb_misses"], \
            f"eth_vhost{port} asked {misses} misses, QEMU {vm.name} traced {qemu}"


def backend_features(rig, port: int) -> list:
    """The feature words the back end logged as negotiated on ``port``."""
    if rig.pmd.is_distro:
        return netvhost_negotiated(rig.ours.log, rig.socks[port])
    return negotiated(rig.ours.log, port)


# ----------------------------------------------------------------------- test

@pytest.mark.parametrize("variant", VARIANT_PARAMS)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_viommu_strict(rig, record_property, backend, variant):
    """Both guests behind intel-iommu in strict mode: IOMMU on in each
    guest, ping both ways and an md5-exact TCP transfer, device-IOTLB
    invalidations reaching the back end during it, no DMA fault."""
    if (backend, variant) == ("net_vhost", "packed"):
        pytest.skip("DPDK 22.11's net_vhost forwards nothing on packed rings behind a vIOMMU "
                    "(measured: 0 frames received, the guests' pings unanswered)")
    t_start = time.monotonic()
    pmd, tx_retry = BACKENDS[backend]
    mib, conns, back_mib, nic_opts = VARIANTS[variant]
    a, b = rig.start(queues=1, vhost_opts=VHOST_OPTS, vm_opts=VIOMMU_GUEST,
                     device_opts={name: NIC_OPTS + nic_opts for name in GUESTS}, pmd=pmd,
                     tx_retry=tx_retry)
    print(f"\nbackend {backend} ({rig.pmd.describe()}, "
          f"{'io retry' if tx_retry else 'io'} forwarding); boot {a.boot_seconds:.1f} s / "
          f"{b.boot_seconds:.1f} s")
    for port, vm in enumerate((a, b)):
        state = guest_iommu_state(vm)
        assert_iommu_on(vm, state)
        packed = state["features"][F_RING_PACKED:F_RING_PACKED + 1] == "1"
        assert packed == ("packed=on" in nic_opts), \
            f"{vm.name}: packed ring negotiated: {packed}, features {state['features']}"
        words = backend_features(rig, port)
        assert words and words[-1] >> F_ACCESS_PLATFORM & 1, \
            f"port {port}: the back end did not log ACCESS_PLATFORM negotiated: " \
            f"{[hex(w) for w in words]}"
    marks = {vm.name: len(vm.trace_log()) for vm in (a, b)}

    ping(a, b)
    ping(b, a)
    rate = tcp_transfer(a, b, mib, conns=conns)
    report_rate(record_property, f"{backend}_{variant}_a_to_b", rate)
    if back_mib:
        rate = tcp_transfer(b, a, back_mib, conns=conns)
        report_rate(record_property, f"{backend}_{variant}_b_to_a", rate)

    for vm in (a, b):
        counts = trace_counts(vm, marks[vm.name])
        print(f"guest {vm.name}: QEMU traced during the traffic {counts}")
        for key, value in counts.items():
            record_property(f"{vm.name}_{key}", value)
        assert counts["device_iotlb_invalidations"] > 0, \
            f"{vm.name}: no device-IOTLB invalidation during the traffic: {counts}"
        assert counts["iotlb_misses"] > 0, f"{vm.name}: the back end asked no translation: " \
            f"{counts}"
        # a miss gets at most one IOTLB_MSG (the update); the others are invalidations
        assert counts["iotlb_msgs"] > counts["iotlb_misses"], \
            f"{vm.name}: no IOTLB invalidation reached the back end: {counts}"
        assert counts["dma_faults"] == 0, f"{vm.name}: the vIOMMU recorded DMA faults: " \
            f"{counts}"
        faults = dma_faults(vm)
        assert not faults, f"{vm.name}: DMA faults in the kernel log: {faults}"
    st = rig.ours.stats_all()
    assert st[0]["ibytes"] >= mib << 20 and st[1]["obytes"] >= mib << 20, st
    rig.finish()
    if not rig.pmd.is_distro:
        assert_our_iotlb_counters(rig.ours.log, (a, b))
    runtime = time.monotonic() - t_start
    record_property("runtime_s", round(runtime))
    print(f"test runtime {runtime:.0f} s")
