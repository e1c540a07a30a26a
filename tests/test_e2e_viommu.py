"""Guests behind a virtual IOMMU (devarg iommu-support=1): ring and buffer
addresses are I/O virtual addresses (IOVAs), translated through the IOTLB
the front end fills (IOTLB_MSG) and asked for on the back end's request
channel (SET_BACKEND_REQ_FD) when missing.

DPDK's virtio-user has no IOMMU, so guest A is the Python front end of
tests/harness/vhost_user_client.py behind its own vIOMMU (``Iommu``): the
test decides which guest memory page each I/O page translates to, puts
IOVAs in SET_VRING_ADDR and in every descriptor, and a thread answers each
miss the back end asks with an IOTLB update (NEED_REPLY, ack checked),
lazily: nothing is translated before it is asked for. Guest B, on the
other port, is a plain front end. One testpmd (module scope) forwards
eth_vhost0 <-> eth_vhost1 with plain ``io`` forwarding, no retry: a
translation still missing must delay frames, never drop them.

Each test checks its frames byte-exact and in order, that the back end
asked only well-formed misses, and, when A hangs up, the session's IOTLB
log line against what A's IOMMU counted (updates acked, invalidations
acked, misses read). The refusals (updates outside guest memory, messages
without ACCESS_PLATFORM, bad types and ranges, read-only RX buffers,
translations never answered) are in the hostile catalogue
(tests/test_hostile.py). ``VHU_LONG=1`` runs the traffic tests longer.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

from harness import Launcher, PmdSelection, gen_frames, sanitizers, vhost_vdev
from harness.shared_testpmd import shared_testpmd_fixtures
from harness.testpmd import TestPmd
from harness.vhost_user_client import (DEFAULT_FEATURES, F_RING_PACKED, IOTLB_RO, IOTLB_RW,
                                       PAGE, RX_RING, TX_RING, FrontEnd, Iommu, IommuLayout,
                                       bit, page_of)

pytestmark = pytest.mark.ours_only

LONG = os.environ.get("VHU_LONG") == "1"
LAYOUTS = {"split": DEFAULT_FEATURES, "packed": DEFAULT_FEATURES | bit(F_RING_PACKED)}
# Buffers 1000 bytes into their first I/O page, 2312 bytes apart: most of
# them cross an I/O page boundary.
CROSSING = dict(lead=1000, stride=2312)
POISON = b"\xee" * PAGE
IOTLB_LINE = (r"eth_vhost0: IOTLB: (\d+) updates, (\d+) invalidations, (\d+) misses asked, "
              r"(\d+) entries evicted")


class Bench:
    """Our testpmd: eth_vhost0 and eth_vhost1 (both iommu-support=1),
    io-forwarding to each other; guests come and go per test."""

    def __init__(self, pmd: PmdSelection):
        self.workdir = Path(tempfile.mkdtemp(prefix="vhu-viommu-",
                                             dir=os.environ.get("VHU_TMPDIR", "/tmp")))
        self.launcher = Launcher(self.workdir, pmd, asan=sanitizers.asan_requested())
        self.sock = [self.launcher.path("vh0.sock"), self.launcher.path("vh1.sock")]
        self.ours: TestPmd = self.launcher.ours(
            [vhost_vdev(0, self.sock[0], **{"iommu-support": 1}),
             vhost_vdev(1, self.sock[1], **{"iommu-support": 1})])
        self.ours.cmd("set fwd io")
        self.ours.start_forwarding()

    def guests(self, features: int, layout: Optional[IommuLayout] = None,
               mem_size: int = 4 << 20) -> (FrontEnd, FrontEnd):
        """A (behind its IOMMU, ``layout``) on port 0, B (plain) on port 1; not started."""
        a = FrontEnd(self.sock[0], features=features, tag="A", mem_size=mem_size,
                     iommu=layout or IommuLayout())
        b = FrontEnd(self.sock[1], tag="B")
        return a, b

    def hang_up(self, a: FrontEnd, b: FrontEnd) -> Dict[str, int]:
        """Both guests leave; A's IOTLB line must say what A's IOMMU counted."""
        mark = len(self.ours.log)
        a.close()
        b.close()
        m = self.ours.wait_log(IOTLB_LINE, timeout=10, start=mark)
        got = dict(zip(("updates", "invalidations", "misses", "evicted"),
                       map(int, m.groups())))
        want = dict(updates=a.iommu.updates, invalidations=a.iommu.invalidations,
                    misses=len(a.iommu.misses), evicted=0)
        assert got == want, f"IOTLB log line {got}, A's IOMMU counted {want}"
        assert not a.iommu.errors, f"A's IOMMU: {a.iommu.errors}"
        for port in (0, 1):
            self.ours.wait_link(port, up=False, timeout=10)
        return got

    def close(self) -> List[str]:
        problems = []
        if self.ours.alive:
            self.ours.quit()
        problems += self.launcher.our_side_problems(
            self.ours, ports={"eth_vhost0": self.sock[0], "eth_vhost1": self.sock[1]})
        problems += self.launcher.close_all()
        if not problems and not os.environ.get("VHU_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


bench, _show_our_log_on_failure = shared_testpmd_fixtures(Bench, "the vIOMMU tests")


@pytest.fixture
def pair(bench):
    """A factory of (A, B) that closes whatever the test left open."""
    made = []

    def make(*args, **kw):
        a, b = bench.guests(*args, **kw)
        made.append((a, b))
        return a, b
    yield make
    for a, b in made:
        for g in (a, b):
            if g.sock.fileno() >= 0:
                g.close()


def start(bench: Bench, a: FrontEnd, b: FrontEnd):
    a.start()
    b.start()
    bench.ours.wait_link_up(0)
    bench.ours.wait_link_up(1)


def exchange(a: FrontEnd, b: FrontEnd, count: int, seed: int):
    """``count`` frames A -> B, then B -> A: each arrives once, byte-exact, in order."""
    to_b = gen_frames(count, seed=seed, tag=0xA)
    to_a = gen_frames(count, seed=seed + 1, tag=0xB)
    a.send_frames(to_b)
    got = b.receive(count, timeout=10, quiet=0.1)
    assert got == to_b, f"A -> B: {len(got)} of {count} frames arrived, or altered"
    b.send_frames(to_a)
    got = a.receive(count, timeout=10, quiet=0.1)
    assert got == to_a, f"B -> A: {len(got)} of {count} frames arrived, or altered"


def xstats(bench: Bench) -> Dict[str, int]:
    return bench.ours.xstats(0)


def wait_any_miss(iommu: Iommu, pages: Sequence[int], since: int = 0, timeout: float = 5.0):
    """The misses for any of ``pages`` (after the ``since``-th), once there is one."""
    deadline = time.monotonic() + timeout
    while not iommu.misses_for(pages, since) and time.monotonic() < deadline:
        time.sleep(0.01)
    return iommu.misses_for(pages, since)


def buffer_pages(g: FrontEnd, ring: int) -> List[int]:
    """Every I/O page of the buffers of a ring."""
    return sorted({p for b in g.bufs[ring] for p in g.iommu.pages(b, g.buf_size)})


# ==========================================================================
# (a), (b): frames both ways, translations given only when asked


@pytest.mark.parametrize("ring_layout", LAYOUTS)
@pytest.mark.parametrize("iova_layout", ["contiguous", "scattered"])
def test_frames_both_ways_translated_on_request(bench, pair, ring_layout, iova_layout):
    """A behind its IOMMU, nothing translated before the back end asks:
    contiguous (each buffer range on consecutive guest pages, at IOVAs that
    are neither guest physical nor front-end addresses) or scattered (each
    I/O page of the buffers on a random guest page, buffers crossing I/O
    pages). 200 frames each way arrive byte-exact and in order; the back
    end asked misses (well-formed, each for a page A maps) and the IOTLB
    line counts them."""
    layout = IommuLayout() if iova_layout == "contiguous" else \
        IommuLayout(scatter=len(ring_layout), **CROSSING)
    a, b = pair(LAYOUTS[ring_layout], layout)
    start(bench, a, b)
    x0 = xstats(bench)
    exchange(a, b, 400 if LONG else 200, seed=11)
    iommu = a.iommu
    assert iommu.misses, "no miss asked: nothing was translated on request"
    unknown = sorted({m.page for m in iommu.misses} - set(iommu.table))
    assert not unknown, f"misses for pages A never mapped: {[hex(p) for p in unknown]}"
    assert iommu.updates <= len(iommu.misses), "more updates than misses: not lazy"
    if iova_layout == "scattered":
        # buffers that crossed an I/O page, and so two guest pages far apart
        crossing = [b_ for b_ in a.bufs[RX_RING] + a.bufs[TX_RING]
                    if page_of(b_) != page_of(b_ + 1513)]
        assert len(crossing) > len(a.bufs[RX_RING]) // 2
        far = [b_ for b_ in crossing
               if iommu.translate(b_ + 1513) - iommu.translate(b_) != 1513]
        assert far, "no buffer crossing I/O pages lands on two separate guest pages"
    x1 = xstats(bench)
    for k in ("tx_q0_missed_packets", "tx_q0_dropped_packets", "tx_q0_malformed_chains",
              "rx_q0_malformed_chains", "rx_q0_dropped_packets"):
        assert x1[k] == x0[k], f"{k}: {x1[k] - x0[k]} during the exchange"
    counts = bench.hang_up(a, b)
    assert counts["misses"] > 0 and counts["invalidations"] == 0


# ==========================================================================
# (c): RX buffer pages invalidated and moved while frames flow


class RxGuest:
    """A's side of a B -> A stream: harvests A's RX ring, reposts each
    buffer, and knows which I/O pages each completion used."""

    def __init__(self, a: FrontEnd):
        self.a = a
        self.frames: List[bytes] = []
        self.used_pages: List[set] = []     # per frame: I/O pages its buffer spans

    def harvest(self) -> int:
        n = 0
        for buf_id, length in self.a.rx.completed():
            iova = self.a.buf(RX_RING, buf_id)
            self.frames.append(self.a.read_buf(RX_RING, buf_id, length)[self.a.hdr_len:])
            self.used_pages.append(set(self.a.iommu.pages(iova, length)))
            self.a.post_rx(buf_id)
            n += 1
        return n


def stream(b: FrontEnd, frames: Sequence[bytes], rx: RxGuest, window: int,
           errors: List[BaseException]):
    """B sends ``frames`` in bursts of 16, never more than ``window`` ahead
    of what A has received (A's RX ring never runs out under plain io)."""
    try:
        sent = 0
        while sent < len(frames):
            deadline = time.monotonic() + 20
            while sent - len(rx.frames) > window - 16:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"A stuck at {len(rx.frames)} of {sent} frames sent")
                time.sleep(0.001)
            b.send_frames(frames[sent:sent + 16])
            sent += 16
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(exc)


def move_page(a: FrontEnd, rx: RxGuest, page: int, retired: List[int]) -> int:
    """Invalidate I/O page ``page`` (withheld meanwhile, so the back end
    cannot have it translated again), take in what was written through the
    old translation, map the page to a fresh guest page, poison the old one
    and answer again. Returns the misses count at the invalidation."""
    iommu = a.iommu
    mark = len(iommu.misses)
    iommu.withhold([page])
    assert iommu.invalidate(page) == 0, f"invalidation of {page:#x} refused"
    rx.harvest()
    old, perm = iommu.table[page]
    iommu.map(page, a.mem.alloc(PAGE, PAGE), perm)
    a.mem.write(old, POISON)
    retired.append(old)
    iommu.release([page])
    return mark


@pytest.mark.parametrize("ring_layout", LAYOUTS)
def test_rx_pages_invalidated_and_moved_under_traffic(bench, pair, ring_layout):
    """B streams to A while A invalidates pages of its RX buffers (posted
    ones too) and maps them to other guest pages, poisoning each old page
    once the invalidation is acked: every frame arrives byte-exact and in
    order through the new translations, no old page is written after its
    invalidation, and a page used again after its invalidation was asked
    for again."""
    total = 6000 if LONG else 1500
    moves = 200 if LONG else 40
    a, b = pair(LAYOUTS[ring_layout], IommuLayout(scatter=3, **CROSSING), mem_size=8 << 20)
    start(bench, a, b)
    rx = RxGuest(a)
    frames = gen_frames(total, seed=21, tag=0xB)
    errors: List[BaseException] = []
    sender = threading.Thread(target=stream, args=(b, frames, rx, 128, errors))
    sender.start()
    rng = random.Random(5)
    rx_pages = buffer_pages(a, RX_RING)
    moved: List[tuple] = []      # (page, misses mark, frames received at the move)
    retired: List[int] = []
    deadline = time.monotonic() + 60
    while len(rx.frames) < total and not errors and time.monotonic() < deadline:
        if rx.harvest() == 0:
            time.sleep(0.0005)
        if len(moved) < moves and len(rx.frames) >= len(moved) * total // (moves + 1):
            page = rng.choice(rx_pages)
            moved.append((page, move_page(a, rx, page, retired), len(rx.frames)))
    sender.join(30)
    assert not errors, f"B's stream: {errors[0]!r}"
    assert rx.frames == frames, \
        f"A received {len(rx.frames)} of {total} frames, or some altered or out of order"
    assert len(moved) == moves
    written = [hex(off) for off in retired if a.mem.read(off, PAGE) != POISON]
    assert not written, f"guest pages written after their invalidation was acked: {written}"
    asked_again = 0
    for page, mark, at in moved:
        used_after = any(page in pages for pages in rx.used_pages[at:])
        if used_after:
            assert a.iommu.misses_for([page], since=mark), \
                f"page {page:#x} used after its invalidation without a miss"
            asked_again += 1
    assert asked_again > 0
    x = xstats(bench)
    assert x["tx_q0_missed_packets"] == 0 and x["tx_q0_dropped_packets"] == 0
    counts = bench.hang_up(a, b)
    assert counts["invalidations"] == moves


# ==========================================================================
# (d): a translation withheld: frames wait, nothing is dropped


def test_rx_translation_withheld_frames_wait(bench, pair):
    """A's RX buffer pages are not answered for 1.5 s: B's 100 frames wait
    in the library (misses asked for A's RX pages, nothing delivered,
    nothing counted missed or dropped) and arrive in order, byte-exact,
    once A answers. Then the same towards B: A's TX buffer pages withheld,
    its frames stay in its TX ring, the miss is asked again once the front
    end has been silent for 5 s (not before), and they reach B once
    answered."""
    a, b = pair(LAYOUTS["split"], IommuLayout(**CROSSING))
    rx_pages = buffer_pages(a, RX_RING)
    tx_pages = buffer_pages(a, TX_RING)
    a.iommu.withhold(rx_pages + tx_pages)
    start(bench, a, b)
    x0 = xstats(bench)
    to_a = gen_frames(100, seed=31, tag=0xB)
    b.send_frames(to_a)
    assert wait_any_miss(a.iommu, rx_pages), "no miss for A's RX buffers"
    time.sleep(1.5)
    assert a.rx.used_idx() == 0, "a frame reached A through a translation it never gave"
    x1 = xstats(bench)
    assert x1["tx_q0_good_packets"] == x0["tx_q0_good_packets"]
    assert x1["tx_q0_missed_packets"] == x0["tx_q0_missed_packets"], "frames bounced"
    a.iommu.release(rx_pages)
    got = a.receive(len(to_a), timeout=10, quiet=0.1)
    assert got == to_a, f"{len(got)} of {len(to_a)} frames after the answer, or altered"
    x2 = xstats(bench)
    assert x2["tx_q0_missed_packets"] == x0["tx_q0_missed_packets"]
    assert x2["tx_q0_dropped_packets"] == x0["tx_q0_dropped_packets"]

    to_b = gen_frames(50, seed=32, tag=0xA)
    mark = len(a.iommu.misses)
    sender = threading.Thread(target=a.send_frames, args=(to_b,), kwargs={"timeout": 20})
    sender.start()
    first = wait_any_miss(a.iommu, tx_pages, since=mark)
    assert first, "no miss for A's first TX buffer"
    # asked again once the front end has answered nothing for 5 s (the ring
    # is polled meanwhile); never before: the first ask is still awaited
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert len(a.iommu.misses_for([first[0].page], since=mark)) == 1, \
            "a miss asked again while the front end still answers"
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while len(a.iommu.misses_for([first[0].page], since=mark)) < 2 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    again = a.iommu.misses_for([first[0].page], since=mark)
    assert len(again) >= 2, "a miss left unanswered was not asked again"
    assert b.drain() == [], "a frame left A without its TX buffer translated"
    a.iommu.release(tx_pages)
    sender.join(20)
    assert not sender.is_alive()
    got = b.receive(len(to_b), timeout=10, quiet=0.1)
    assert got == to_b, f"A -> B: {len(got)} of {len(to_b)} frames, or altered"
    bench.hang_up(a, b)


# ==========================================================================
# (e): the rings' own areas translated on request


@pytest.mark.parametrize("ring_layout", LAYOUTS)
def test_ring_areas_translated_on_request(bench, pair, ring_layout):
    """A's ring areas withheld: queue pair 0 set up, and the back end asks
    for each area (descriptors, available/driver area, used/device area of
    both rings, with the access it needs), the link stays down; answered,
    the link comes up and frames cross."""
    a, b = pair(LAYOUTS[ring_layout])
    areas = {(ring, name): iova for ring, addrs in a.ring_iovas.items()
             for name, iova in addrs.items()}
    a.iommu.withhold(areas.values())
    b.start()
    a.start()
    bench.ours.wait_link_up(1)
    got = a.iommu.wait_misses(areas.values(), timeout=5)
    asked = {}
    for m in got:
        asked[m.page] = asked.get(m.page, 0) | m.perm
    for (ring, name), iova in areas.items():
        assert page_of(iova) in asked, f"ring {ring} {name} area never asked for"
        need = IOTLB_RW if name == "used" or (name == "desc" and a.rx.packed) else IOTLB_RO
        assert asked[page_of(iova)] & need == need, \
            f"ring {ring} {name} asked with perm {asked[page_of(iova)]}, needs {need}"
    assert not bench.ours.link_up(0), "link up with the rings not translated"
    a.iommu.release()
    bench.ours.wait_link_up(0)
    exchange(a, b, 32, seed=41)
    bench.hang_up(a, b)


# ==========================================================================
# hostile: invalidations and updates racing the bursts


def paced_stream(b: FrontEnd, frames: Sequence[bytes], rx: RxGuest,
                 errors: List[BaseException]):
    """B sends ``frames`` in bursts of 16, giving A up to 20 ms to catch up
    with each (frames may be lost here: nothing waits for them)."""
    try:
        for at in range(0, len(frames), 16):
            deadline = time.monotonic() + 0.02
            while at - len(rx.frames) > 96 and time.monotonic() < deadline:
                time.sleep(0.0005)
            b.send_frames(frames[at:at + 16])
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(exc)


def a_to_b(a: FrontEnd, b: FrontEnd, frames: Sequence[bytes], got: List[bytes],
           errors: List[BaseException]):
    """A sends ``frames`` 32 at a time, B takes each batch before the next."""
    try:
        for at in range(0, len(frames), 32):
            batch = frames[at:at + 32]
            a.send_frames(batch, timeout=20)
            got += b.receive(len(batch), timeout=20)
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(exc)


def is_subsequence(part: Sequence[bytes], whole: Sequence[bytes]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


@pytest.mark.parametrize("ring_layout", LAYOUTS)
def test_invalidation_storm_while_frames_flow(bench, pair, ring_layout):
    """Frames both ways while A's IOMMU invalidates at random: RX buffer
    pages moved to other guest pages (the old one poisoned once acked),
    buffer pages dropped and translated again unchanged, whole buffer
    ranges, the rings' own areas (the ring stops until asked again), and
    updates nobody asked for. testpmd survives; A -> B arrives whole
    (A's chains wait in its ring); B -> A arrives in order and byte-exact
    but for frames our port counted as missed or dropped (a guest RX ring
    unmapped under them), exactly; no old page is written after its
    invalidation was acked; the IOTLB line counts it all."""
    total = 8000 if LONG else 2000
    a, b = pair(LAYOUTS[ring_layout], IommuLayout(scatter=9, **CROSSING), mem_size=8 << 20)
    start(bench, a, b)
    iommu = a.iommu
    x0 = xstats(bench)
    rx = RxGuest(a)
    to_a = gen_frames(total, seed=51, tag=0xB)
    to_b = gen_frames(total // 4, seed=52, tag=0xA)
    got_b: List[bytes] = []
    errors: List[BaseException] = []
    threads = [threading.Thread(target=paced_stream, args=(b, to_a, rx, errors)),
               threading.Thread(target=a_to_b, args=(a, b, to_b, got_b, errors))]
    for t in threads:
        t.start()
    rng = random.Random(ring_layout)
    rx_pages, tx_pages = buffer_pages(a, RX_RING), buffer_pages(a, TX_RING)
    areas = [iova for addrs in a.ring_iovas.values() for iova in addrs.values()]
    retired: List[int] = []
    actions = 0
    while any(t.is_alive() for t in threads):
        rx.harvest()
        what = rng.randrange(5)
        if what == 0:
            move_page(a, rx, rng.choice(rx_pages), retired)
        elif what == 1:
            assert iommu.invalidate(rng.choice(rx_pages + tx_pages)) == 0
        elif what == 2:
            pages = rng.choice((rx_pages, tx_pages))
            assert iommu.invalidate(pages[0], pages[-1] + PAGE - pages[0]) == 0
        elif what == 3:
            assert iommu.invalidate(page_of(rng.choice(areas))) == 0
        else:
            iommu.update(rng.choice(rx_pages + tx_pages + [page_of(p) for p in areas]))
        actions += 1
        time.sleep(0.001)
    for t in threads:
        t.join()
    assert not errors, f"traffic: {errors[0]!r}"
    assert bench.ours.alive
    bench.ours.wait_link_up(0)
    # what B sent and A has not taken yet, or is not counted lost yet
    deadline = time.monotonic() + 5
    while True:
        rx.harvest()
        x1 = xstats(bench)
        lost = (x1["tx_q0_missed_packets"] - x0["tx_q0_missed_packets"] +
                x1["tx_q0_dropped_packets"] - x0["tx_q0_dropped_packets"])
        if len(rx.frames) + lost >= total or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got_b == to_b, f"A -> B: {len(got_b)} of {len(to_b)} frames, or altered"
    assert is_subsequence(rx.frames, to_a), "B -> A: a frame altered, repeated or out of order"
    assert len(rx.frames) + lost == total, \
        f"B -> A: {len(rx.frames)} received + {lost} counted lost != {total} sent"
    written = [hex(off) for off in retired if a.mem.read(off, PAGE) != POISON]
    assert not written, f"guest pages written after their invalidation was acked: {written}"
    assert x1["tx_q0_malformed_chains"] == x0["tx_q0_malformed_chains"]
    counts = bench.hang_up(a, b)
    print(f"{actions} IOTLB actions, {lost} of {total} frames B -> A lost (counted), "
          f"{len(retired)} pages moved; {counts}")
