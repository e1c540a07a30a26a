"""Self-tests of the harness: parsers, comparison, identity and sanitizer
checks must be able to FAIL, otherwise the e2e tests prove nothing.

Fast; only the sanitizer self-test starts a (single) testpmd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import (PmdSelection, driver_identity_problems, first_mismatch, gen_frames,
                     gen_jumbo_mix, parse_port_stats, read_pcap, vhost_vdev, write_pcap)
from harness import sanitizers
from harness.inet import checksum_problems, mtu_sized, reassemble_ipv4
from harness.frames import assert_frames_equal_per_flow, ethertype
from harness.launcher import Launcher
from harness.ovs import parse_pmd_stats
from harness.testpmd import PROMPT_RE, parse_verbose

STATS_TEXT = """
  ######################## NIC statistics for port 0  ########################
  RX-packets: 12         RX-missed: 1          RX-bytes:  3456
  RX-errors: 2
  RX-nombuf:  0
  TX-packets: 7          TX-errors: 3          TX-bytes:  890

  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ############################################################################

  ######################## NIC statistics for port 1  ########################
  RX-packets: 0          RX-missed: 0          RX-bytes:  0
  RX-errors: 0
  RX-nombuf:  0
  TX-packets: 12         TX-errors: 0          TX-bytes:  3456

  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ############################################################################
"""


def test_parse_port_stats():
    st = parse_port_stats(STATS_TEXT)
    assert st[0] == {"ipackets": 12, "missed": 1, "ibytes": 3456, "ierrors": 2, "rx_nombuf": 0,
                     "opackets": 7, "oerrors": 3, "obytes": 890, "errors": 5}
    assert st[1]["opackets"] == 12 and st[1]["obytes"] == 3456


@pytest.mark.parametrize("text, found", [
    (b"Done\r\ntestpmd> ", True),
    # a log line of the PMD's control thread inside the prompt
    (b"testVHU: eth_vhost0: RX queue 1 enabled\r\npmd> ", True),
    # testpmd's own event line, and two interleavings in one prompt
    (b"t\r\nPort 0: queue state event\r\nestpmd>VHU: x\r\n\r\nPort 0: y\r\n ", True),
    (b"testpmd: create a new mbuf pool <mb_pool_0>\r\n", False),
    (b"testpmd>", False),
])
def test_prompt_found_through_interleaved_lines(text, found):
    assert bool(PROMPT_RE.search(text)) == found


def test_frames_deterministic_and_ranged(tmp_path):
    a, b = gen_frames(300, seed=5), gen_frames(300, seed=5)
    assert a == b and a != gen_frames(300, seed=6)
    assert min(map(len, a)) == 60 and max(map(len, a)) == 1514
    # IPv4 and IPv6 (ethertype at offset 12), TCP and UDP all present
    ethertypes = {f[12:14] for f in a}
    assert ethertypes == {b"\x08\x00", b"\x86\xdd"}
    j = gen_jumbo_mix(30, seed=1)
    assert 9000 in map(len, j)
    write_pcap(tmp_path / "x.pcap", a + j)
    assert read_pcap(tmp_path / "x.pcap") == a + j


def test_compare_reports_first_mismatch():
    frames = gen_frames(20, seed=7)
    assert first_mismatch(frames, list(frames)) is None
    corrupt = list(frames)
    corrupt[4] = corrupt[4][:33] + bytes([corrupt[4][33] ^ 0xFF]) + corrupt[4][34:]
    msg = first_mismatch(frames, corrupt)
    assert msg.startswith("frame 4 differs") and "offset 33" in msg and "corruption" in msg
    swapped = list(frames)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    msg = first_mismatch(frames, swapped)  # same multiset, wrong order
    assert msg.startswith("frame 2 differs") and "reordering" in msg
    msg = first_mismatch(frames, frames[:-1])
    assert "frame count differs" in msg and "index 19" in msg
    msg = first_mismatch(frames, frames + frames[:1])
    assert "extra" in msg


VERBOSE_TEXT = """testpmd> port 2/queue 0: received 2 packets
  src=52:54:00:00:00:0A - dst=52:54:00:00:00:0B - pool=mb_pool_0 - type=0x0800 - length=1514 \
- nb_segs=1 - hw ptype: L2_ETHER L3_IPV4 L4_TCP  - sw ptype: L2_ETHER L3_IPV4 L4_TCP  - l2_len=14 \
- l3_len=20 - l4_len=32 - Receive queue=0x0
Port 1: link state change event
  ol_flags: RTE_MBUF_F_RX_L4_CKSUM_GOOD RTE_MBUF_F_RX_IP_CKSUM_GOOD RTE_MBUF_F_RX_OUTER_L4_CKSUM_UNKNOWN
testpmd>   src=52:54:00:00:00:0A - dst=FF:FF:FF:FF:FF:FF - pool=mb_pool_0 - type=0x0806 - length=42 \
- nb_segs=1 - sw ptype: L2_ETHER_ARP  - l2_len=14 - Receive queue=0x0
  ol_flags: RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN
port 3/queue 0: sent 1 packets
  src=52:54:00:00:00:0A - dst=52:54:00:00:00:0B - pool=mb_pool_0 - type=0x0800 - length=60 \
- nb_segs=1 - sw ptype: L2_ETHER L3_IPV4 L4_UDP  - l2_len=14 - l3_len=20 - l4_len=8 - Send queue=0x0
testpmd>   ol_flags: RTE_MBUF_F_TX_UDP_CKSUM
"""


# OVS 3.1's dpif-netdev/pmd-stats-show (lines left out)
PMD_STATS_TEXT = """pmd thread numa_id 0 core_id 1:
  packets received: 8087840
  simple match hits: 8087840
  avg. packets per output batch: 32.00
  idle cycles: 2195469998 (27.34%)
  processing cycles: 5835978852 (72.66%)
  avg cycles per packet: 993.03 (8031448850/8087840)
  avg processing cycles per packet: 721.57 (5835978852/8087840)
main thread:
  packets received: 0
  avg. packets per output batch: 0.00
"""


def test_parse_pmd_stats():
    stats = parse_pmd_stats(PMD_STATS_TEXT)
    assert list(stats) == [1]
    assert stats[1]["packets received"] == 8087840
    assert stats[1]["idle cycles"] == 2195469998
    assert stats[1]["avg processing cycles per packet"] == 721.57
    assert stats[1]["avg. packets per output batch"] == 32.0


def test_parse_verbose():
    """Packets belong to the burst line before them, whatever lines other
    threads print in between, and also when a dump line follows the
    interactive prompt on its line."""
    got = [(p.port, p.received, p.length, p.sw_ptype, sorted(p.ol_flags))
           for p in parse_verbose(VERBOSE_TEXT)]
    assert got == [
        (2, True, 1514, "L2_ETHER L3_IPV4 L4_TCP",
         ["RTE_MBUF_F_RX_IP_CKSUM_GOOD", "RTE_MBUF_F_RX_L4_CKSUM_GOOD",
          "RTE_MBUF_F_RX_OUTER_L4_CKSUM_UNKNOWN"]),
        (2, True, 42, "L2_ETHER_ARP",
         ["RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN", "RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN"]),
        (3, False, 60, "L2_ETHER L3_IPV4 L4_UDP", ["RTE_MBUF_F_TX_UDP_CKSUM"]),
    ]


def test_capture_checks_can_fail():
    """checksum_problems() finds a wrong IPv4 header, TCP, UDP or ICMP
    checksum, in a whole frame or only visible after reassembly, and a lost
    fragment; reassembly gives the datagram back; mtu_sized() sees a frame
    one byte too long."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption, fragment
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    ip = IP(src="10.0.0.1", dst="10.0.0.2", id=9)
    big = ip / UDP(sport=1, dport=2) / Raw(bytes(range(256)) * 20)
    frags = [bytes(eth / f) for f in fragment(big, 1480)]
    whole = [bytes(eth / ip / TCP(flags="S")),
             bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2",
                            options=[IPOption(b"\x01\x01\x01\x00")]) / UDP() / Raw(b"x" * 50)),
             bytes(eth / ip / ICMP() / Raw(b"y" * 40))]
    assert checksum_problems(whole + frags) == []
    datagrams, problems = reassemble_ipv4(frags)
    assert problems == [] and len(datagrams) == 1
    assert bytes(datagrams[0].ip) == bytes(IP(bytes(big)))

    def flip(frame: bytes, at: int) -> bytes:
        return frame[:at] + bytes([frame[at] ^ 1]) + frame[at + 1:]

    for i, at in ((0, 24), (0, 14 + 20 + 16), (1, 14 + 24 + 6), (2, 14 + 20 + 2)):
        bad = list(whole)
        bad[i] = flip(bad[i], at)
        assert len(checksum_problems(bad)) == 1, (i, at)
    assert len(checksum_problems(frags[:1] + [flip(frags[1], len(frags[1]) - 1)] +
                                 frags[2:])) == 1     # the datagram's checksum
    assert checksum_problems(frags[:1] + frags[2:])  # a fragment lost
    assert mtu_sized(frags) and not mtu_sized(frags + [bytes(1515)])
def test_per_flow_compare():
    """Frames of different EtherTypes may swap places; within one, or with
    a frame lost, added or changed, the check fails."""
    frames = gen_frames(40, seed=8)
    v4 = [f for f in frames if ethertype(f) == 0x0800]
    v6 = [f for f in frames if ethertype(f) == 0x86DD]
    assert v4 and v6
    assert_frames_equal_per_flow(frames, v6 + v4)
    bad = {"reordered within a flow": v4[1:2] + v4[:1] + v4[2:] + v6,
           "lost": v4 + v6[1:],
           "extra": v4 + v6 + v6[:1],
           "corrupt": v4[:-1] + [v4[-1][:-1] + bytes([v4[-1][-1] ^ 1])] + v6}
    for what, actual in bad.items():
        with pytest.raises(AssertionError):
            assert_frames_equal_per_flow(frames, actual, what=what)


def test_identity_check_logic():
    ours = PmdSelection("ours", Path("/x/librte_net_vhu.so"))
    distro = PmdSelection("distro")
    sock = "/tmp/vhu-x/vh0.sock"
    ours_log = (f"VHU: eth_vhost0: vhost-user port on {sock}, 1 queue pair(s), driver vhu 9.9.9\n")
    distro_log = f"VHOST_CONFIG: ({sock}) vhost-user server: socket created, fd: 21\n"
    ports = {"eth_vhost0": sock}
    from harness import pmd as pmd_mod
    real = pmd_mod.repo_version
    pmd_mod.repo_version = lambda: "9.9.9"
    try:
        assert driver_identity_problems(ours_log, ours, ports) == []
        assert driver_identity_problems(ours_log + distro_log, ours, ports)  # both present
        assert driver_identity_problems(distro_log, ours, ports)
        pmd_mod.repo_version = lambda: "1.0.0"  # stale build
        assert driver_identity_problems(ours_log, ours, ports)
    finally:
        pmd_mod.repo_version = real
    assert driver_identity_problems(distro_log, distro, ports) == []
    assert driver_identity_problems(ours_log, distro, ports)


def test_sanitizer_log_judgement():
    leak_ours = ("Direct leak of 8 byte(s) in 1 object(s) allocated from:\n"
                 "    #0 0x1 in malloc x.cpp:1 [(libasan.so+0x1)]\n"
                 "    #1 0x2 in vhu_probe drivers/net/vhost/x.c:3 [(librte_net_vhu.so+0x2)]\n\n")
    leak_eal = ("Indirect leak of 8 byte(s) in 1 object(s) allocated from:\n"
                "    #0 0x1 in malloc x.cpp:1 [(libasan.so+0x1)]\n"
                "    #1 0x2 in foo (/lib/librte_eal.so.23+0x2) [(librte_eal.so.23+0x2)]\n\n")
    assert sanitizers.sanitizer_problems(leak_eal) == []
    assert len(sanitizers.foreign_leaks(leak_eal)) == 1
    assert sanitizers.sanitizer_problems(leak_ours + leak_eal)
    assert sanitizers.sanitizer_problems("x.c:1:2: runtime error: shift exponent 40\n")
    assert sanitizers.sanitizer_problems("==1==ERROR: AddressSanitizer: heap-buffer-overflow\n")
    assert sanitizers.acceptable_exit(0, "", asan=False)
    assert not sanitizers.acceptable_exit(-11, "", asan=True)
    assert sanitizers.acceptable_exit(sanitizers.ASAN_EXITCODE, leak_eal, asan=True)


def test_tsan_report_judgement(tmp_path):
    """VHU_TSAN=1's post-mortem: a report in a per-process file or in the
    output fails, a runtime failure fails, the list of matched suppressions
    alone does not."""
    race = ("==================\n"
            "WARNING: ThreadSanitizer: data race (pid=7)\n"
            "  Write of size 4 at 0x7b0400000010 by thread T3:\n"
            "    #0 vhu_x lib/vhost/x.c:1 (librte_net_vhu.so+0x1) [librte_net_vhu.so]\n\n"
            "  Previous read of size 4 at 0x7b0400000010 by thread T1:\n"
            "    #0 vhu_y lib/vhost/y.c:2 (librte_net_vhu.so+0x2) [librte_net_vhu.so]\n\n"
            "SUMMARY: ThreadSanitizer: data race lib/vhost/x.c:1 in vhu_x\n"
            "==================\n")
    matched = ("ThreadSanitizer: Matched 2 suppressions (pid=7):\n"
               "2 race:^rte_ring_dequeue\n")
    prefix = tmp_path / "ours.tsan"
    assert sanitizers.tsan_problems(prefix, "") == []
    (tmp_path / "ours.tsan.7").write_text(matched)
    assert sanitizers.tsan_problems(prefix, "") == []
    (tmp_path / "ours.tsan.8").write_text(race + "ThreadSanitizer: reported 1 warnings\n")
    found = sanitizers.tsan_problems(prefix, "")
    assert len(found) == 1 and "in vhu_x" in found[0] and "ours.tsan.8" in found[0], found
    assert sanitizers.tsan_problems(tmp_path / "other.tsan", race)
    assert sanitizers.tsan_problems(tmp_path / "other.tsan",
                                    "FATAL: ThreadSanitizer: unexpected memory mapping 0x1-0x2\n")
    assert not sanitizers.acceptable_exit(sanitizers.TSAN_EXITCODE, race, asan=False)


# ------------------------------------------------------------------------
# The ASan plumbing for real: an instrumented plugin loaded with -d into a
# testpmd run the way our side is run under VHU_ASAN=1.

_PLUGIN_SRC = r"""
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
__attribute__((noinline)) static void *vhu_selftest_alloc(size_t n) { return malloc(n); }
__attribute__((constructor)) static void vhu_selftest_init(void)
{
    const char *what = getenv("VHU_SELFTEST_BUG");
    volatile char *p;
    fprintf(stderr, "VHU selftest plugin loaded (%s)\n", what ? what : "none");
    if (!what)
        return;
    if (!strcmp(what, "leak")) {
        p = vhu_selftest_alloc(77);
        p[0] = 1;
        p = NULL;
    } else if (!strcmp(what, "overflow")) {
        p = vhu_selftest_alloc(16);
        p[16] = 1;
        free((void *)p);
    } else if (!strcmp(what, "ub")) {
        volatile int x = 0x7fffffff;
        x = x + 1;
    }
}
"""


def build_selftest_plugin(name: str, source: str, cflags, runtime, other_requested: bool,
                          other: str):
    """A shared object built from ``source`` with ``cflags`` in a directory
    EAL accepts plugins from; yields its path, then removes it. Skips when
    gcc or the sanitizer ``runtime`` (a function of harness.sanitizers) is
    missing, or when the run's plugin is built for the ``other`` sanitizer
    (the two runtimes cannot share a process)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not available")
    if other_requested:
        pytest.skip(f"VHU_{other.upper()}=1: VHU_PMD is built for {other}, whose runtime "
                    "cannot share a process with this one")
    try:
        runtime()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    # EAL refuses -d plugins below a world-writable directory such as /tmp.
    base = Path.home() / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="vhu-selftest-", dir=base))
    os.chmod(d, 0o755)
    src, so = d / "plugin.c", d / name
    src.write_text(source)
    res = subprocess.run(["gcc", "-shared", "-fPIC", "-g", "-O1", *cflags, "-o", str(so),
                          str(src)], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        pytest.skip(f"cannot build the plugin: {res.stderr[-500:]}")
    yield so
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def asan_plugin():
    yield from build_selftest_plugin(
        "librte_net_vhu_selftest.so", _PLUGIN_SRC,
        ["-fno-omit-frame-pointer", "-fsanitize=address,undefined"],
        sanitizers.asan_runtime, sanitizers.tsan_requested(), "TSan")

@pytest.mark.parametrize("bug, expect", [
    ("none", None),
    ("leak", "LeakSanitizer leak(s) in our code"),
    ("overflow", "AddressSanitizer report"),
    ("ub", "UBSan reports"),
], ids=["clean", "leak", "heap_overflow", "ub"])
def test_sanitizer_plumbing(asan_plugin, pmd, workdir, bug, expect):
    """testpmd runs under LD_PRELOAD=libasan with an instrumented plugin, and
    each kind of finding in 'our' code is caught by the post-mortem."""
    lau = Launcher(workdir, pmd, asan=True, tsan=False)
    env_bug = {} if bug == "none" else {"VHU_SELFTEST_BUG": bug}
    try:
        tp = lau.spawn("asan-selftest", role="ours", lcores=["-l", "0,1"],
                       vdevs=[vhost_vdev(0, lau.path("vh0.sock"))],
                       eal_args=list(pmd.eal_args()) + ["-d", str(asan_plugin)],
                       env={**sanitizers.sanitizer_env(), **env_bug}, expect_prompt=False)
        if tp.alive:
            tp.quit(30)
        else:
            tp.wait_exit(10)
        problems = lau.our_side_problems(tp)
        problems = [p for p in problems if "exited with status" not in p]
        assert "VHU selftest plugin loaded" in tp.log, tp.tail()
        if expect is None:
            assert problems == [], problems
            assert tp.returncode == 0, tp.tail()
        else:
            assert any(expect in p for p in problems), (problems, tp.tail())
            assert tp.returncode != 0
    finally:
        lau.close_all()


# ------------------------------------------------------------------------
# The TSan plumbing for real: a -fsanitize=thread plugin whose constructor
# races two threads on a counter (or not), loaded with -d into a testpmd run
# the way our side is run under VHU_TSAN=1.

_TSAN_PLUGIN_SRC = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static long vhu_selftest_counter;
static pthread_mutex_t vhu_selftest_lock = PTHREAD_MUTEX_INITIALIZER;
static int vhu_selftest_locked;
static void *vhu_selftest_bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        if (vhu_selftest_locked)
            pthread_mutex_lock(&vhu_selftest_lock);
        vhu_selftest_counter++;
        if (vhu_selftest_locked)
            pthread_mutex_unlock(&vhu_selftest_lock);
    }
    return NULL;
}
__attribute__((constructor)) static void vhu_selftest_init(void)
{
    const char *what = getenv("VHU_SELFTEST_BUG");
    pthread_t t[2];
    vhu_selftest_locked = !(what && !strcmp(what, "race"));
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, vhu_selftest_bump, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    fprintf(stderr, "VHU selftest plugin loaded (%s): %ld\n", what ? what : "none",
            vhu_selftest_counter);
}
"""


@pytest.fixture(scope="module")
def tsan_plugin():
    yield from build_selftest_plugin(
        "librte_net_vhu_tsan_selftest.so", _TSAN_PLUGIN_SRC, ["-pthread", "-fsanitize=thread"],
        sanitizers.tsan_runtime, sanitizers.asan_requested(), "ASan")

@pytest.mark.parametrize("bug", ["none", "race"], ids=["clean", "race"])
def test_tsan_plumbing(tsan_plugin, pmd, workdir, bug):
    """testpmd runs under LD_PRELOAD=libtsan with an instrumented plugin; a
    race in it is reported to <name>.tsan.<pid> and fails the post-mortem,
    and the same code with a lock passes."""
    lau = Launcher(workdir, pmd, asan=False, tsan=True)
    env_bug = {} if bug == "none" else {"VHU_SELFTEST_BUG": bug}
    try:
        tp = lau.spawn("tsan-selftest", role="ours", lcores=["-l", "0,1"],
                       vdevs=[vhost_vdev(0, lau.path("vh0.sock"))],
                       eal_args=list(pmd.eal_args()) + ["-d", str(tsan_plugin)],
                       env=env_bug, expect_prompt=False)
        if tp.alive:
            tp.quit(30)
        else:
            tp.wait_exit(10)
        problems = lau.our_side_problems(tp)
        assert "VHU selftest plugin loaded" in tp.log, tp.tail()
        if bug == "none":
            assert problems == [], problems
            assert tp.returncode == 0, tp.tail()
        else:
            assert any("ThreadSanitizer report(s) not suppressed" in p and "tsan-selftest.tsan."
                       in p for p in problems), (problems, tp.tail())
            assert tp.returncode == sanitizers.TSAN_EXITCODE, tp.tail()
    finally:
        lau.close_all()
