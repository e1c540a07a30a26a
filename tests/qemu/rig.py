"""Two QEMU guests on two eth_vhost ports of one testpmd, and what the QEMU
test modules do with them (tests/test_qemu_*.py; their fixtures are in
tests/conftest.py).

    guest A 10.0.0.1 --vhost-user-- eth_vhost0 <=io=> eth_vhost1 --vhost-user-- guest B 10.0.0.2

With a mirror (``Rig.start(mirror=...)``), A has a second NIC on eth_vhost2
and sends every frame on both (a bonding device in broadcast mode); our
testpmd forwards what eth_vhost2 receives to a net_pcap port:

    guest A eth1 --vhost-user-- eth_vhost2 ==io=> net_pcap0 (tx_pcap: the capture)
"""

from __future__ import annotations

import re
import signal
import time
from typing import Optional, Union

from harness import OUR_LCORES, PmdSelection, assert_driver_identity, pcap_vdev, vhost_vdev
from harness.flows import keep_frames_whole

from .assets import NET_MODULES
from .initramfs import build_initramfs
from .vm import Vm

MIB = 1 << 20
GUESTS = {  # name: (IP, MAC); guest A is on port 0, B on port 1
    "a": ("10.0.0.1", "52:54:00:00:00:0a"),
    "b": ("10.0.0.2", "52:54:00:00:00:0b"),
}
MIRROR_MAC = "52:54:00:00:01:0a"    # A's second NIC, on port MIRROR_PORT
MIRROR_PORT = 2
CAPTURE_PORT = 3                    # net_pcap: what MIRROR_PORT receives goes there
PORT_BASE = 5001
SLICE_BLOCK = 64 << 10   # dd block size of the slice files
LSC_EVENT = "Port {port}: link state change event"
QEMU_MESSAGE_RE = re.compile(r"^qemu-system-\S+: .*$", re.M)


def close_reporting_consoles(request, rig):
    """Closes ``rig``; after a failed test, its guests' serial consoles go
    into the report."""
    signal.alarm(0)  # as in the launcher fixture: never interrupt the teardown half-way
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for key, vm in rig.vms.items():
            request.node.add_report_section("teardown", f"serial console of guest {key} "
                                            f"({vm.log_path})", vm.tail(20000))
    rig.close()


class Guests:
    """Guests A and B, each on a vhost-user socket a back end listens on
    (ours in a testpmd: :class:`Rig`; or any application with our ports)."""

    def __init__(self, workdir, assets):
        self.workdir = workdir
        self.assets = assets
        self.socks = [str(workdir / "a.sock"), str(workdir / "b.sock")]
        self.vms = {}

    def boot(self, queues: int, reboot_a: bool = False, device_opts=None, vm_opts=None,
             mirror_sock: str = "", guest_opts=None):
        """Boot both guests (in parallel) on ``socks``, which must be
        listening, and wait until both are ready. ``device_opts``: extra
        ",k=v" of each guest's virtio-net-pci, by name; ``vm_opts``: extra
        arguments of both guests' Vm; ``guest_opts``: extra arguments of one
        guest's Vm, by name (over ``vm_opts``); ``mirror_sock``: the socket
        of A's second NIC (MIRROR_MAC), with the bonding module in the
        initramfs."""
        initrd = build_initramfs(self.assets, self.workdir / "initrd.gz",
                                 modules=NET_MODULES + (["bonding"] if mirror_sock else []))
        for sock, (name, (ip, mac)) in zip(self.socks, GUESTS.items()):
            mirror_nic = [(mirror_sock, MIRROR_MAC)] if mirror_sock and name == "a" else []
            self.vms[name] = Vm(name, self.workdir, self.assets, initrd, sock=sock,
                                mac=mac, ip=f"{ip}/24", queues=queues,
                                reboot=reboot_a and name == "a",
                                device_opts=(device_opts or {}).get(name, ""),
                                extra_nics=mirror_nic,
                                **{**(vm_opts or {}), **(guest_opts or {}).get(name, {})})
        for vm in self.vms.values():
            vm.start(wait_ready=False)
        for vm in self.vms.values():
            vm.wait_ready()
        return self.vms["a"], self.vms["b"]

    def quit(self, ignore: tuple = ()):
        """Quit the guests: QEMU must exit 0 and have printed no warning but
        those containing a string of ``ignore``."""
        for key, vm in self.vms.items():
            rc = vm.quit()
            assert rc == 0, f"QEMU {key} exited with {rc}; serial tail:\n{vm.tail()}"
            messages = [m for m in QEMU_MESSAGE_RE.findall(vm.log)
                        if not any(i in m for i in ignore)]
            assert not messages, f"QEMU {key} complained: {messages}"

    def close(self):
        for vm in self.vms.values():
            vm.close()


class Rig(Guests):
    """Our testpmd with eth_vhost0/eth_vhost1 forwarding to each other, and
    guest A on port 0 and guest B on port 1."""

    def __init__(self, launcher, assets):
        super().__init__(launcher.workdir, assets)
        self.launcher = launcher
        self.ours = None
        self.pmd = launcher.pmd     # the PMD serving the ports (start(pmd=...))
        self.mirror_sock = None     # A's second NIC's, with start(mirror=...)

    def start(self, queues: int, reboot_a: bool = False, device_opts=None, vhost_opts=None,
              whole_frames: bool = False, vm_opts=None, mirror: str = "", verbose: int = 0,
              guest_opts=None, pmd: Optional[PmdSelection] = None, tx_retry: bool = False):
        """Start testpmd, boot both guests (:meth:`Guests.boot`) and wait
        for the links. ``vhost_opts``: extra devargs of the eth_vhost ports;
        ``whole_frames``: testpmd set up as README says for TSO frames to
        cross whole (app/test-pmd-scripts/whole-frames.cmds), else io
        forwarding; ``mirror``: the pcap file of A's mirror NIC (module
        docstring), A's address on the bonding device over both NICs;
        ``verbose``: testpmd's verbose level from the first frame on;
        ``vm_opts``/``guest_opts``: :meth:`Guests.boot`; ``pmd``: the PMD
        serving the ports instead of the launcher's, e.g.
        ``PmdSelection("distro")``: DPDK's net_vhost as a reference (a
        testpmd without ``-d`` on our lcores, no sanitizer; ``rig.ours``
        all the same); ``tx_retry``: ``set fwd io retry`` with TX retries
        (``enable_tx_retry``: a full guest ring stalls forwarding instead
        of dropping), else plain io forwarding."""
        socks = self.socks + ([self.launcher.path("a-mirror.sock")] if mirror else [])
        vdevs = [vhost_vdev(port, sock, queues, **(vhost_opts or {}))
                 for port, sock in enumerate(socks)]
        vdevs += [pcap_vdev(0, tx_pcap=mirror)] if mirror else []
        app_args = [f"--rxq={queues}", f"--txq={queues}"]
        self.pmd = pmd or self.launcher.pmd
        if self.pmd == self.launcher.pmd:
            self.ours = self.launcher.ours(vdevs, app_args=app_args)
        else:
            self.ours = self.launcher.spawn("netvhost" if self.pmd.is_distro else "pmd",
                                            role="peer", lcores=OUR_LCORES, vdevs=vdevs,
                                            app_args=app_args, eal_args=self.pmd.eal_args())
        if whole_frames:
            keep_frames_whole(self.ours, wait_links=False)
        if tx_retry:
            self.ours.enable_tx_retry()
        if verbose:
            self.ours.cmd(f"set verbose {verbose}")
        self.ours.start_forwarding()
        a, b = self.boot(queues, reboot_a, device_opts, vm_opts,
                         mirror_sock=socks[MIRROR_PORT] if mirror else "",
                         guest_opts=guest_opts)
        for port in range(len(socks)):
            self.ours.wait_link_up(port)
        if mirror:
            send_on_both_nics(a)
        self.mirror_sock = socks[MIRROR_PORT] if mirror else None
        return a, b

    def finish(self, ignore: tuple = ()):
        """Quit the guests (:meth:`Guests.quit`), then our testpmd: clean
        exit, no sanitizer finding, and every port served by the selected
        PMD (launcher.finish_ours; with ``start(pmd=...)``: exit status 0
        and that PMD's log lines)."""
        self.quit(ignore)
        socks = self.socks + ([self.mirror_sock] if self.mirror_sock else [])
        ports = {f"eth_vhost{port}": sock for port, sock in enumerate(socks)}
        if self.pmd == self.launcher.pmd:
            self.launcher.finish_ours(self.ours, ports=ports)
            return
        rc = self.ours.quit()
        assert rc == 0, f"{self.ours.name} exited with {rc}:\n{self.ours.tail()}"
        assert_driver_identity(self.ours.log, self.pmd, ports)


# ------------------------------------------------------------------ guest side

def send_on_both_nics(vm: Vm):
    """``vm``'s address moves from its NIC to a bonding device in broadcast
    mode over that NIC and its mirror NIC (MIRROR_MAC): every frame it
    sends leaves on both, the same socket buffer (checksums left partial,
    GSO frames whole) handed to each."""
    ip = GUESTS[vm.name][0]
    vm.run(f"""set -e
nic=$(cat /run/vhu-if)
for d in /sys/class/net/eth*; do
    [ "$(cat $d/address)" = {MIRROR_MAC} ] && mirror=${{d##*/}}
done
ip addr flush dev $nic
ip link set $nic down
ip link set $mirror down
echo broadcast > /sys/class/net/bond0/bonding/mode
echo 100 > /sys/class/net/bond0/bonding/miimon
echo +$nic > /sys/class/net/bond0/bonding/slaves
echo +$mirror > /sys/class/net/bond0/bonding/slaves
ip addr add {ip}/24 dev bond0
ip link set bond0 up
for i in $(seq 150); do
    [ "$(cat /sys/class/net/bond0/operstate)" = up ] && break
    sleep 0.1
done
[ "$(cat /sys/class/net/bond0/operstate)" = up ]""", timeout=30)


def ping(src: Vm, dst: Union[Vm, str], count: int = 3, size: int = 56, interval: float = 1.0):
    """``count`` pings of ``size`` payload bytes from ``src`` to guest
    ``dst`` (or to an address), ``interval`` seconds apart, all answered."""
    ip = GUESTS[dst.name][0] if isinstance(dst, Vm) else dst
    out = src.run(f"ping -c {count} -s {size} -i {interval:g} {ip}",
                  timeout=30 + count * interval).output
    assert f"{count} packets received" in out, f"{src.name} -> {ip}:\n{out}"


def prepare_transfer(src: Vm, dst: Vm, mib: int, conns: int, port_base: int = PORT_BASE,
                     low_priority: bool = False):
    """``mib`` MiB of random data on ``src`` in ``conns`` slices, one per port
    from ``port_base`` (4 digits each, so that the port names the slice's
    file and "cat dir/*" keeps their order), and a receiver per slice on
    ``dst`` (at the lowest priority with ``low_priority``: the guests'
    consoles must still get the vCPU at once). Returns the slices' md5sum
    and the ports, as a shell expression."""
    blocks = mib * MIB // SLICE_BLOCK
    per = blocks // conns
    assert per * conns == blocks, "the slices must add up to the file"
    ports = f"$(seq {port_base} {port_base + conns - 1})"
    want = src.run(f"rm -rf /tmp/tx /tmp/tx.rc && mkdir /tmp/tx && for p in {ports}; do "
                   f"dd if=/dev/urandom of=/tmp/tx/$p bs={SLICE_BLOCK} count={per} 2>/dev/null; "
                   f"done && cat /tmp/tx/* | md5sum", timeout=120).output.split()[0]
    # -e hands the socket to cat, which ends at the sender's EOF.  A plain
    # "nc -l > file" would also read its stdin (/dev/null here) and shut the
    # connection down when that ends, which makes the sender quit early.
    renice = "renice -n 19 -p $pids > /dev/null; " if low_priority else ""
    dst.run("rm -rf /tmp/rx /tmp/rx.done && mkdir /tmp/rx")
    dst.run_bg(f"pids=; for p in {ports}; do nc -l -p $p -e sh -c \"cat > /tmp/rx/$p\" & "
               f"pids=\"$pids $!\"; done; {renice}wait; touch /tmp/rx.done", "/tmp/rx.log")
    dst.run(f"until [ $(netstat -ltn | grep -c LISTEN) -ge {conns} ]; do sleep 0.1; done")
    return want, ports


def tcp_transfer(src: Vm, dst: Vm, mib: int, conns: int) -> float:
    """Send ``mib`` MiB of random data from ``src`` to ``dst`` over ``conns``
    parallel TCP connections (busybox nc, one slice file each) and assert
    that ``dst`` stored it all with the sender's md5sum.  Returns MiB/s,
    timed on the host around the sending command."""
    want, ports = prepare_transfer(src, dst, mib, conns)
    t0 = time.monotonic()
    src.run(f"pids=; for p in {ports}; do nc {GUESTS[dst.name][0]} $p < /tmp/tx/$p & "
            f"pids=\"$pids $!\"; done; rc=0; for pid in $pids; do wait $pid || rc=1; done; exit $rc",
            timeout=240)
    rate = mib / (time.monotonic() - t0)
    # the senders end once the receivers closed; their files are then complete
    dst.run("until [ -e /tmp/rx.done ]; do sleep 0.1; done", timeout=30)
    got = dst.run("cat /tmp/rx/* | md5sum; cat /tmp/rx/* | wc -c", timeout=120).output.split()
    assert (got[0], int(got[2])) == (want, mib * MIB), \
        f"{src.name} sent {mib} MiB with md5 {want}; {dst.name} stored {got[2]} bytes, md5 {got[0]}"
    return rate


def report_rate(record_property, what: str, rate: float):
    """A transfer's throughput: a junit property, and printed (-rP, -s)."""
    record_property(f"throughput_{what}_MiBps", round(rate, 2))
    print(f"\nthroughput {what}: {rate:.2f} MiB/s")


# ----------------------------------------------------------------- host side

def both_xstats(ours):
    return {port: ours.xstats(port) for port in (0, 1)}
