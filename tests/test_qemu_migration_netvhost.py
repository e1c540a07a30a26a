"""A QEMU guest live-migrates from DPDK's own net_vhost to our PMD and back.

    testpmd "netvhost" (no -d: the distribution's net_vhost)   testpmd "ours" (-d our .so)
      eth_vhost0 -- guest A   (boots here)                      eth_vhost0 -- guest A'
      eth_vhost1 -- guest A'' (back here)

A boots on net_vhost; QMP ``migrate`` moves it to A' on our port, then to
A'' on net_vhost's second port.  Each step must complete (query-migrate
"completed", the destination running the guest), QEMU must not refuse the
state it loads ("Features 0x... unsupported": a feature the guest
negotiated on one back end that the other does not offer), and the guest's
traffic must flow where it landed.

Traffic: both testpmds run the ``icmpecho`` engine, which answers ARP
requests and pings on the port they arrive on, so the guest needs no peer
guest (one that could not follow it from one testpmd to the other).  Only
the testpmd serving the guest forwards; the other is stopped, so the
answers prove where the guest's frames went, and one busy-polling lcore
leaves the TCG guests a CPU of their own on two (the netvhost testpmd
forwards on lcore 0, ours on lcore 1, the QEMUs may use both CPUs).  After
each migration the guest pings, small and full-sized frames, every one
answered, and the serving port counts them both ways; ICMP checksums cover
the payload, so a damaged frame is a lost ping.

Checked besides: the guest negotiates the same features on all three ports
(dirty logging aside); dirty logging (LOG_ALL) is on at the source during
each migration, on our port with its log base (SET_LOG_BASE), and never
at a destination; the rings' hand-over: the bases our port answered
GET_VRING_BASE with (net_vhost logs them when it takes them) are exactly
those net_vhost handed over plus the frames our port took from and gave to
the guest; each source port goes down once its QEMU quits; net_vhost's log
proves it served both of its ports, ours that our PMD served its port (the
two report the same driver name, net_vhost); every QEMU and testpmd exits
cleanly.

Run: VHU_PMD="$(scripts/stage-pmd.sh build/drivers/net/vhost/librte_net_vhu.so)" \\
     /usr/bin/python3 -m pytest -v -rP tests/test_qemu_migration_netvhost.py
"""

from __future__ import annotations

import re
import time

import pytest

from harness import PEER_LCORES, OUR_LCORES, PmdSelection, assert_driver_identity, vhost_vdev
from qemu.initramfs import build_initramfs
from qemu.migration import (F_LOG_ALL, MAX_BANDWIDTH, TCG_SAFE_EXTRA_KB, negotiated,
                            netvhost_bases_given, netvhost_bases_taken, netvhost_negotiated,
                            refused_features, start_destination, wait_arrived)
from qemu.rig import GUESTS, QEMU_MESSAGE_RE, Rig, close_reporting_consoles, ping
from qemu.vm import Vm, default_qemu_cpus

pytestmark = [pytest.mark.qemu, pytest.mark.ours_only, pytest.mark.timeout(240)]

RX_RING, TX_RING = 0, 1        # the guest's; our port's TX and RX
PEER_IP = "10.0.0.2"          # any address of A's subnet: icmpecho answers for all
PINGS = 5                     # per size
PING_SIZES = (56, 1472)       # ICMP payload; 1472 fills a 1500-byte MTU
DISTRO = PmdSelection("distro")


class NetVhostRig(Rig):
    """The two testpmds and guest A's three QEMUs (vms: "a", "a-ours", "a-back")."""

    def __init__(self, launcher, assets):
        super().__init__(launcher, assets)
        self.socks = {"a": launcher.path("a.sock"), "a-back": launcher.path("a-back.sock"),
                      "a-ours": launcher.path("a-ours.sock")}
        self.netvhost = None

    def start(self) -> Vm:
        """Both testpmds in icmpecho, netvhost forwarding; A booted on its port 0."""
        # no -d: EAL's own plugins, where net_vhost takes the name eth_vhost
        self.netvhost = self.launcher.spawn(
            "netvhost", role="peer", lcores=PEER_LCORES,
            vdevs=[vhost_vdev(0, self.socks["a"]), vhost_vdev(1, self.socks["a-back"])])
        self.ours = self.launcher.ours([vhost_vdev(0, self.socks["a-ours"])],
                                       lcores=OUR_LCORES)
        assert_driver_identity(self.netvhost.log, DISTRO, self.netvhost_ports())
        assert_driver_identity(self.ours.log, self.launcher.pmd, self.ours_ports())
        for tp in (self.netvhost, self.ours):
            tp.cmd("set fwd icmpecho")
        self.netvhost.start_forwarding()
        ip, mac = GUESTS["a"]
        initrd = build_initramfs(self.assets, self.launcher.workdir / "initrd.gz")
        a = self.vms["a"] = Vm("a", self.launcher.workdir, self.assets, initrd,
                               sock=self.socks["a"], mac=mac, ip=f"{ip}/24",
                               cpus=default_qemu_cpus(avoid=()),
                               # QEMU 7.2's TCG loses guest writes otherwise
                               mem_extra_kb=TCG_SAFE_EXTRA_KB)
        a.start()
        self.netvhost.wait_link_up(0)
        return a

    def netvhost_ports(self):
        return {"eth_vhost0": self.socks["a"], "eth_vhost1": self.socks["a-back"]}

    def ours_ports(self):
        return {"eth_vhost0": self.socks["a-ours"]}

    def migrate(self, src: str, dst: str, dst_tp, dst_port: int, src_tp, src_port: int) -> Vm:
        """Migrate guest ``src`` to a new QEMU ``dst`` on ``dst_tp``'s port;
        the guest must arrive and run there, and ``dst_tp`` then serves it
        (forwarding moves over).  The source QEMU quits cleanly, and its port
        goes down."""
        source = self.vms[src]
        target = self.vms[dst] = start_destination(source, self.launcher.workdir / dst,
                                                   self.socks[dst])
        info = source.migrate(target.incoming, timeout=90, max_bandwidth=MAX_BANDWIDTH)
        wait_arrived(target)
        print(f"\nmigration {src} -> {dst}: total {info['total-time']} ms, "
              f"downtime {info['downtime']} ms, RAM transferred "
              f"{info.get('ram', {}).get('transferred', 0) >> 20} MiB")
        src_tp.stop_forwarding()
        dst_tp.start_forwarding()
        dst_tp.wait_link_up(dst_port)
        assert source.quit() == 0, f"source QEMU {src}: rc={source.returncode}\n{source.tail()}"
        assert_quiet(src, source)
        src_tp.wait_link(src_port, up=False)
        return target


def assert_quiet(key: str, vm: Vm):
    """No "Features ... unsupported", nor any other QEMU message, in ``vm``'s log."""
    refused = refused_features(vm.log)
    assert not refused, f"QEMU {key} refused the migrated features {refused}"
    messages = QEMU_MESSAGE_RE.findall(vm.log)
    assert not messages, f"QEMU {key} complained: {messages}"


def answered(vm: Vm, tp, port: int):
    """Pings from ``vm`` to PEER_IP, all answered by ``tp``'s icmpecho on
    ``port``, which counts them (and the ARP exchange, if any) both ways."""
    before = tp.stats(port)
    for size in PING_SIZES:
        ping(vm, PEER_IP, count=PINGS, size=size, interval=0.2)
    after = tp.stats(port)
    want = PINGS * len(PING_SIZES)
    got = {k: after[k] - before[k] for k in ("ipackets", "opackets")}
    assert min(got.values()) >= want, \
        f"{tp.name} port {port} counted {got} while {vm.name} had {want} pings answered"


@pytest.fixture
def rig(request, launcher, guest_assets):
    r = NetVhostRig(launcher, guest_assets)
    yield r
    close_reporting_consoles(request, r)


def test_migration_from_net_vhost_and_back(rig, record_property):
    """net_vhost -> ours -> net_vhost: each migration completes, the guest
    keeps its features and answers pings where it lands."""
    t_start = time.monotonic()
    a = rig.start()
    netvhost, ours = rig.netvhost, rig.ours
    answered(a, netvhost, 0)
    features = netvhost_negotiated(netvhost.log, rig.socks["a"])
    assert features, f"no features negotiated on {rig.socks['a']}:\n{netvhost.tail()}"
    guest_features = features[-1]
    print(f"\nguest A negotiated 0x{guest_features:x} on net_vhost")
    assert not guest_features >> F_LOG_ALL & 1, "LOG_ALL before any migration"

    # net_vhost -> ours
    mark = len(netvhost.log)
    a_ours = rig.migrate("a", "a-ours", ours, 0, netvhost, 0)
    assert any(f >> F_LOG_ALL & 1 for f in
               netvhost_negotiated(netvhost.log[mark:], rig.socks["a"])), \
        f"no dirty logging on net_vhost's port during the migration:\n{netvhost.log[mark:]}"
    handed = netvhost_bases_given(netvhost.log, rig.socks["a"])
    assert handed.get(TX_RING, 0) > 0, f"net_vhost handed over ring bases {handed}"
    on_ours = negotiated(ours.log, 0)
    assert on_ours and on_ours[-1] == guest_features, \
        (f"the guest negotiated 0x{guest_features:x} on net_vhost, our port logged "
         f"{[hex(f) for f in on_ours]}")
    answered(a_ours, ours, 0)

    # ours -> net_vhost
    mark = len(ours.log)
    a_back = rig.migrate("a-ours", "a-back", netvhost, 1, ours, 0)
    during = ours.log[mark:]
    assert re.search(r"eth_vhost0: dirty log of 0x[0-9a-f]+ bytes", during), \
        f"no SET_LOG_BASE on our port during the migration:\n{during[-3000:]}"
    assert any(f >> F_LOG_ALL & 1 for f in negotiated(during, 0)), \
        f"LOG_ALL not negotiated on our port during the migration:\n{during[-3000:]}"
    assert not any(f >> F_LOG_ALL & 1 for f in negotiated(ours.log[:mark], 0)), \
        "LOG_ALL on our port while it was the destination"
    back = netvhost_negotiated(netvhost.log, rig.socks["a-back"])
    assert back and back[-1] == guest_features, \
        (f"the guest negotiated 0x{guest_features:x} first, net_vhost's second port logged "
         f"{[hex(f) for f in back]}")
    # Our port started each ring where net_vhost left it and handed over
    # where it got to: every frame it took from the guest's TX ring is one
    # chain; every frame it put in the RX ring one buffer (Linux's mergeable
    # RX buffers hold at least 1518 bytes and the header, the frames here
    # at most 1514).
    st = ours.stats(0)
    taken = netvhost_bases_taken(netvhost.log, rig.socks["a-back"])
    assert taken == {RX_RING: handed[RX_RING] + st["opackets"],
                     TX_RING: handed[TX_RING] + st["ipackets"]}, \
        (f"net_vhost handed over ring bases {handed}, our port sent {st['opackets']} and "
         f"received {st['ipackets']} frames, then handed over {taken}")
    answered(a_back, netvhost, 1)

    assert a_back.quit() == 0, f"QEMU a-back: rc={a_back.returncode}\n{a_back.tail()}"
    assert_quiet("a-back", a_back)
    rig.launcher.finish_ours(ours, ports=rig.ours_ports())
    assert netvhost.quit() == 0, f"netvhost testpmd exited with {netvhost.returncode}"
    assert_driver_identity(netvhost.log, DISTRO, rig.netvhost_ports())
    runtime = time.monotonic() - t_start
    record_property("runtime_s", round(runtime))
    print(f"test runtime {runtime:.0f} s")
