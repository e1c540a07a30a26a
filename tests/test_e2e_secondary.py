"""Our port seen from secondary processes and by DPDK's tools: dpdk-proc-info's
counters, dpdk-pdump's and dpdk-dumpcap's captures, telemetry, and what a
secondary may not do.  The primary is our side's testpmd on hugepages (a
secondary maps the primary's memory; --no-huge memory is private), its only
port eth_vhost0 in io forwarding, so what the virtio-user peer sends comes
back to it: one set of frames crosses the port both ways.  The tools get
what README's "DPDK's tools on our ports" says a user must pass."""

from __future__ import annotations

import re

import pytest

from harness import assert_frames_equal, gen_frames, read_pcap, total_bytes, write_pcap
from harness.flows import PCAP_PORT, VHOST_PORT
from harness.frames import PCAPNG_INBOUND, PCAPNG_OUTBOUND, read_pcapng
from harness.pmd import REPO_ROOT, secondary_identity_problems
from harness.secondary import (Tool, hugepages, mempool_ops, parse_proc_info_stats, run_tool,
                               telemetry, tool_eal_args, tool_plugins)
from harness.sanitizers import tsan_requested
from harness.testpmd import hugepage_eal_args, parse_xstats, pcap_vdev, vhost_vdev, virtio_user_vdev

pytestmark = [pytest.mark.ours_only,
              # the primary's memory at SECONDARY_SAFE_BASE (0x200000000000) lies in
              # the range the TSan runtime reserves (0x200000000000-0x300000000000),
              # and DPDK's tools are not run under it
              pytest.mark.skipif(tsan_requested(), reason="not under VHU_TSAN=1: the "
                                 "secondaries' fixed memory base is in TSan's reserved range")]

# Room for our side's testpmd (16384 mbufs), dpdk-pdump's and dpdk-dumpcap's pools.
HUGEPAGES = 256


@pytest.fixture(scope="module")
def huge_dir():
    try:
        with hugepages(HUGEPAGES) as mnt:
            yield mnt
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"cannot reserve {HUGEPAGES} 2 MB pages for a primary process: {exc}",
                    pytrace=False)


class Loop:
    """Our side (the primary) forwarding eth_vhost0 to itself, already
    started, and the peer sending ``frames`` from a pcap when told to."""

    def __init__(self, launcher, huge_dir, frames):
        self.launcher, self.frames = launcher, frames
        self.sock = launcher.path("vh0.sock")
        self.out_pcap = launcher.path("back.pcap")
        write_pcap(launcher.path("sent.pcap"), frames)
        self.ours = launcher.ours([vhost_vdev(0, self.sock)],
                                  base_eal_args=hugepage_eal_args(huge_dir))
        # A capture shows a frame at every tx_burst call given it: a
        # transmit retried after a full ring would show its frames again.
        # The peer's receive ring (512 of its 1024 entries filled) takes all
        # the frames at once, so our side never retries.
        self.peer = launcher.peer([virtio_user_vdev(0, self.sock, mrg_rxbuf=1,
                                                    queue_size=1024),
                                   pcap_vdev(0, rx_pcap=launcher.path("sent.pcap"),
                                             tx_pcap=self.out_pcap)])
        self.ours.wait_link_up(VHOST_PORT)
        self.peer.wait_link_up(VHOST_PORT)
        for tp in (self.ours, self.peer):
            tp.enable_tx_retry()
        # Before any tool runs: dpdk-pdump adds ports to the primary, and
        # testpmd will not start forwarding while one of them is stopped.
        self.ours.start_forwarding()

    def send(self):
        """The peer sends the frames and waits for all of them to come back."""
        self.peer.start_forwarding()
        self.peer.wait_stat(PCAP_PORT, "opackets", len(self.frames), timeout=60, stall=10)
        self.peer.stop_forwarding()

    def finish(self):
        """Quits both sides (the peer first); the frames came back byte-exact
        and the primary passes its post-mortem, driver identity included."""
        self.ours.stop_forwarding()
        self.peer.quit()
        self.launcher.finish_ours(self.ours, ports={"eth_vhost0": self.sock})
        assert_frames_equal(self.frames, read_pcap(self.out_pcap), "frames back at the peer")


@pytest.fixture
def loop(launcher, huge_dir):
    return Loop(launcher, huge_dir, gen_frames(300, seed=61))


def assert_ours_attached(output: str, tool: str):
    problems = secondary_identity_problems(output, "eth_vhost0")
    assert not problems, f"{tool}: {problems}; output:\n{output[-4000:]}"


def proc_info(loop, launcher, pmd, *options) -> str:
    argv = ["dpdk-proc-info", *tool_eal_args(loop.ours, pmd), "--", "-p", "1", *options]
    out = run_tool("proc-info", argv, launcher.workdir, launcher.asan, pmd)
    assert_ours_attached(out, "dpdk-proc-info")
    return out


def test_proc_info_shows_our_counters(loop, launcher, pmd):
    """--stats and --xstats equal the primary's, which count the frames;
    --stats-reset from the secondary clears the primary's counters."""
    loop.send()
    n, nbytes = len(loop.frames), total_bytes(loop.frames)
    primary = loop.ours.stats(VHOST_PORT)
    want = {"ipackets": n, "ibytes": nbytes, "opackets": n, "obytes": nbytes, "ierrors": 0,
            "rx_nombuf": 0}
    assert {k: primary[k] for k in want} == want, primary
    stats = parse_proc_info_stats(proc_info(loop, launcher, pmd, "--stats"), VHOST_PORT)
    assert stats == {k: primary[k] for k in stats}

    xstats = parse_xstats(proc_info(loop, launcher, pmd, "--xstats"))
    primary_x = loop.ours.xstats(VHOST_PORT)
    assert primary_x["rx_q0_good_packets"] == primary_x["tx_q0_good_packets"] == n, primary_x
    assert xstats == primary_x

    proc_info(loop, launcher, pmd, "--stats-reset")
    cleared = loop.ours.stats(VHOST_PORT)
    assert (cleared["ipackets"], cleared["ibytes"], cleared["opackets"], cleared["obytes"]) == \
        (0, 0, 0, 0), cleared
    loop.finish()


def test_telemetry_reports_our_port(loop):
    """dpdk-telemetry.py's /ethdev answers equal what the primary shows.
    The primary answers telemetry itself, no secondary process involved:
    this guards the operations telemetry calls, and the numbers it shows."""
    loop.send()
    prefix = loop.ours.file_prefix
    got = telemetry(prefix, ["/ethdev/list", "/ethdev/stats,0", "/ethdev/xstats,0",
                             "/ethdev/info,0", "/ethdev/link_status,0"])
    stats, xstats = loop.ours.stats(VHOST_PORT), loop.ours.xstats(VHOST_PORT)
    info = loop.ours.port_info(VHOST_PORT)
    n = len(loop.frames)

    assert got["/ethdev/list"] == [VHOST_PORT]
    keys = ("ipackets", "opackets", "ibytes", "obytes", "ierrors", "oerrors", "rx_nombuf")
    assert {k: got["/ethdev/stats"][k] for k in keys} == {k: stats[k] for k in keys}
    assert got["/ethdev/stats"]["ipackets"] == got["/ethdev/stats"]["q_ipackets"][0] == n
    assert got["/ethdev/stats"]["opackets"] == got["/ethdev/stats"]["q_opackets"][0] == n
    assert got["/ethdev/xstats"] == xstats
    ti = got["/ethdev/info"]
    assert (ti["name"], ti["port_id"], ti["nb_rx_queues"], ti["nb_tx_queues"]) == \
        ("eth_vhost0", VHOST_PORT, 1, 1), ti
    assert (ti["mac_addr"], str(ti["mtu"])) == (info["MAC address"], info["MTU"]), (ti, info)
    assert (ti["promiscuous"], ti["all_multicast"], ti["dev_started"]) == (1, 1, 1), ti
    link = got["/ethdev/link_status"]
    assert (link["status"], link["duplex"]) == (info["Link status"].upper(), info["Link duplex"])
    assert f"{link['speed'] // 1000} Gbps" == info["Link speed"], (link, info)
    loop.finish()


def assert_same_mempool_ops(loop, tool: Tool):
    """The tool's pools are used by the primary's capture callbacks, through
    the primary's table: the same ops must sit at the same indices."""
    ours, theirs = mempool_ops(loop.ours.proc.pid), mempool_ops(tool.proc.pid)
    assert theirs == ours, f"mempool ops of {tool.name} {theirs} differ from the primary's {ours}"


def test_pdump_captures_byte_exact(loop, launcher, pmd):
    """dpdk-pdump writes what the port received and what it sent, every
    frame byte-exact and in order."""
    rx_pcap, tx_pcap = launcher.path("pdump-rx.pcap"), launcher.path("pdump-tx.pcap")
    # Each ring (a power of two) holds a whole capture, and the pool both:
    # no frame is dropped however late dpdk-pdump, sharing a CPU with the
    # peer, drains them.
    ring = 1 << (len(loop.frames) - 1).bit_length()
    spec = (f"port={VHOST_PORT},queue=*,rx-dev={rx_pcap},tx-dev={tx_pcap},"
            f"ring-size={ring},total-num-mbufs={4 * ring}")
    pdump = Tool("pdump", ["dpdk-pdump", *tool_eal_args(loop.ours, pmd), "--", "--pdump", spec],
                 launcher.workdir, launcher.asan)
    try:
        pdump.wait_output(r"capture for \(1\) tuples")
        assert_ours_attached(pdump.output, "dpdk-pdump")
        assert_same_mempool_ops(loop, pdump)
        loop.send()
        pdump.interrupt()
    finally:
        pdump.kill()
    assert not pdump.problems(pmd), (pdump.problems(pmd), pdump.output[-4000:])
    assert_frames_equal(loop.frames, read_pcap(rx_pcap), "dpdk-pdump's capture of RX")
    assert_frames_equal(loop.frames, read_pcap(tx_pcap), "dpdk-pdump's capture of TX")
    loop.finish()


def test_dumpcap_captures_byte_exact(loop, launcher, pmd):
    """dpdk-dumpcap (which takes no EAL arguments: plugins through
    LD_PRELOAD) writes what the port received and sent, byte-exact, in order
    per direction."""
    out = launcher.path("dumpcap.pcapng")
    n = len(loop.frames)
    dumpcap = Tool("dumpcap", ["dpdk-dumpcap", f"--file-prefix={loop.ours.file_prefix}",
                               "-i", "eth_vhost0", "-w", out, "-c", str(2 * n)],
                   launcher.workdir, launcher.asan, preload=tool_plugins(loop.ours, pmd))
    try:
        dumpcap.wait_output(r"Capturing on 'eth_vhost0'")
        assert_ours_attached(dumpcap.output, "dpdk-dumpcap")
        assert_same_mempool_ops(loop, dumpcap)
        loop.send()
        dumpcap.wait(30)  # it stops by itself after 2n frames
    finally:
        dumpcap.kill()
    assert not dumpcap.problems(pmd), (dumpcap.problems(pmd), dumpcap.output[-4000:])
    captured = read_pcapng(out)
    assert_frames_equal(loop.frames, [f for d, f in captured if d == PCAPNG_INBOUND],
                        "dpdk-dumpcap's inbound frames")
    assert_frames_equal(loop.frames, [f for d, f in captured if d == PCAPNG_OUTBOUND],
                        "dpdk-dumpcap's outbound frames")
    loop.finish()


def vhu_secondary(loop, launcher, pmd, *ops) -> dict:
    """tests/secondary's vhu-secondary doing ``ops`` to eth_vhost0: op -> its
    line's key=value pairs, and "log" -> the whole output."""
    build = "build-asan" if launcher.asan else "build"
    binary = REPO_ROOT / build / "tests/secondary/vhu-secondary"
    if not binary.exists():
        pytest.fail(f"{binary} not built (ninja -C {build})")
    out = run_tool("vhu-secondary", [str(binary), "--proc-type=secondary",
                                     *tool_eal_args(loop.ours, pmd), "--", "eth_vhost0", *ops],
                   launcher.workdir, launcher.asan, pmd)
    assert_ours_attached(out, "vhu-secondary")
    results = {"log": out}
    for m in re.finditer(r"^(\w+) (ret=.*)$", out, re.M):
        results[m.group(1)] = dict(kv.split("=", 1) for kv in m.group(2).split())
    return results


ENOTSUP = "-95"


def refusal_line(what: str) -> str:
    return rf"VHU: eth_vhost0: {what} refused in a secondary process"


def test_secondary_reads_and_is_refused_the_rest(loop, launcher, pmd):
    """A secondary reads info, link and stats as the primary has them; every
    call that would act on the port is refused with -ENOTSUP (with our log
    line where ethdev lets us say it), changing nothing: the port then
    carries the frames byte-exact, and is still started and at its MTU."""
    # What ethdev refuses of a started port before asking the PMD is no test
    # of ours: stop the port first.
    loop.ours.stop_forwarding()
    loop.ours.cmd("port stop 0")
    ops = ("configure", "rxq", "txq", "start", "mtu")
    got = vhu_secondary(loop, launcher, pmd, *ops)
    assert {op: got[op]["ret"] for op in ops} == dict.fromkeys(ops, ENOTSUP)
    for what in ("start", "MTU change"):
        assert re.search(refusal_line(what), got["log"]), (what, got["log"])
    loop.ours.cmd("port start 0")
    loop.ours.wait_link_up(VHOST_PORT)
    loop.ours.start_forwarding()

    loop.send()
    primary = loop.ours.stats(VHOST_PORT)
    got = vhu_secondary(loop, launcher, pmd, "info", "link", "stats", "rx", "tx", "stop")
    assert got["info"] == {"ret": "0", "driver": "net_vhost", "max_rx_queues": "1",
                           "max_tx_queues": "1", "nb_rx_queues": "1", "nb_tx_queues": "1"}
    assert got["link"] == {"ret": "0", "status": "1", "speed": "10000"}
    assert got["stats"] == {"ret": "0", **{k: str(primary[k]) for k in
                                           ("ipackets", "ibytes", "opackets", "obytes")}}
    assert primary["ipackets"] == primary["opackets"] == len(loop.frames), primary
    assert (got["rx"], got["tx"], got["stop"]) == ({"ret": "0"}, {"ret": "0"}, {"ret": ENOTSUP})
    for what in ("RX bursts", "TX bursts", "stop"):
        assert re.search(refusal_line(what), got["log"]), (what, got["log"])
    info = telemetry(loop.ours.file_prefix, ["/ethdev/info,0"])["/ethdev/info"]
    assert (info["dev_started"], info["mtu"]) == (1, 1500), info
    loop.finish()
