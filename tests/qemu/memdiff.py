"""Guest memory of a migrated guest, source against destination: which
pages differ, and what each of them is (tests/test_qemu_migration.py).

>>> src_mem, dst_mem = save_memory(src, dst, workdir)    # QMP pmemsave of both
>>> pages = differing_pages(src_mem, dst_mem)            # guest-physical addresses
>>> rings = {vm: virtio_rings(vm) for vm in (src, dst)}  # where the NIC's rings are
>>> print(classify(pages, src_mem, dst_mem, rings[src], frame_header))

A page that differs is one the source wrote after QEMU last copied it
without QEMU knowing (a write missing from its dirty bitmap), or one written
after the last copy (the source no longer stopped).  ``classify`` tells
those our back end writes (the guest's RX buffers posted on its RX ring, the
rings' used areas) from the others (the guest kernel's own data), and how
long ago the ring used a buffer in it (the used entries since).
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .vm import Vm

PAGE = 4096
DESC = struct.Struct("<QIHH")          # addr, len, flags, next
VRING_DESC_F_NEXT = 1


def save_memory(vm: Vm, path) -> bytes:
    """All of ``vm``'s RAM (``mem_bytes``, from guest-physical 0), read with QMP
    pmemsave into ``path`` (removed after)."""
    try:
        vm.qmp("pmemsave", val=0, size=vm.mem_bytes, filename=str(path))
        with open(path, "rb") as f:
            return f.read()
    finally:
        path.unlink(missing_ok=True)


def differing_pages(a: bytes, b: bytes) -> List[int]:
    """Guest-physical addresses of the 4 KiB pages that differ."""
    assert len(a) == len(b), (len(a), len(b))
    chunk = 1 << 20
    return [c + o for c in range(0, len(a), chunk) if a[c:c + chunk] != b[c:c + chunk]
            for o in range(0, chunk, PAGE) if a[c + o:c + o + PAGE] != b[c + o:c + o + PAGE]]


@dataclass
class Ring:
    """One virtqueue as QEMU describes it (x-query-virtio-queue-status)."""
    index: int
    num: int
    desc: int
    avail: int
    used: int
    status: dict

    def areas(self) -> Dict[str, Tuple[int, int]]:
        return {"desc": (self.desc, 16 * self.num), "avail": (self.avail, 6 + 2 * self.num),
                "used": (self.used, 6 + 8 * self.num)}


def virtio_rings(vm: Vm, queues: Sequence[int] = (0, 1)) -> List[Ring]:
    """The rings of ``vm``'s first virtio-net device (RX 0, TX 1...)."""
    path = next(d["path"] for d in vm.qmp("x-query-virtio") if d["name"] == "virtio-net")
    rings = []
    for q in queues:
        st = vm.qmp("x-query-virtio-queue-status", path=path, queue=q)
        rings.append(Ring(q, st["vring-num"], st["vring-desc"], st["vring-avail"],
                          st["vring-used"], st))
    return rings


def u16(mem: bytes, gpa: int) -> int:
    return struct.unpack_from("<H", mem, gpa)[0]


@dataclass
class RingState:
    """A split ring as it lies in one memory image."""
    avail_idx: int
    used_idx: int
    descs: List[Tuple[int, int, int, int]]
    used_ids: List[int]          # used_ids[k]: chain of used entry used_idx - 1 - k
    avail_heads: List[int]       # avail_heads[k]: head at avail_idx - 1 - k

    @classmethod
    def read(cls, mem: bytes, r: Ring) -> "RingState":
        avail_idx, used_idx = u16(mem, r.avail + 2), u16(mem, r.used + 2)
        descs = [DESC.unpack_from(mem, r.desc + 16 * i) for i in range(r.num)]
        used_ids = [struct.unpack_from("<I", mem, r.used + 4 + 8 * ((used_idx - 1 - k) % r.num))[0]
                    for k in range(r.num)]
        avail_heads = [u16(mem, r.avail + 4 + 2 * ((avail_idx - 1 - k) % r.num))
                       for k in range(r.num)]
        return cls(avail_idx, used_idx, descs, used_ids, avail_heads)


def entropy(data: bytes) -> float:
    """Bits per byte: ~8 for random data (the test's stream), far less for
    kernel structures."""
    if not data:
        return 0.0
    n = len(data)
    return abs(sum(c / n * math.log2(c / n) for c in Counter(data).values()))


@dataclass
class PageReport:
    gpa: int
    diff_bytes: int
    diff_span: Tuple[int, int]           # first and last differing offset
    src_entropy: float                   # of the differing span, source side
    dst_entropy: float
    frame_headers: int                   # of frames to the guest, in the source page
    rx_frames: int                       # ... of those, after a virtio-net header (ours)
    ring_area: Optional[str] = None      # "rx used", ...
    rx_buffers: List[str] = field(default_factory=list)   # descriptors pointing in it

    @property
    def ours(self) -> bool:
        """Written by our back end: a ring's area, an RX buffer on the ring,
        or a frame after a virtio-net header as we write them (an RX buffer
        the ring has used and the guest not reposted yet)."""
        return bool(self.ring_area or self.rx_buffers or self.rx_frames)

    def line(self) -> str:
        kind = (f"ring area {self.ring_area}" if self.ring_area else
                f"RX buffer {', '.join(self.rx_buffers)}" if self.rx_buffers else
                "an RX buffer the ring used earlier" if self.rx_frames else
                "not ours (no ring area, no RX buffer on the ring, no frame as we write it)")
        return (f"0x{self.gpa:x}: {self.diff_bytes} bytes differ at +0x{self.diff_span[0]:x}.."
                f"+0x{self.diff_span[1]:x}, entropy src {self.src_entropy:.1f} dst "
                f"{self.dst_entropy:.1f} bits/byte, {self.frame_headers} frame header(s), "
                f"{self.rx_frames} after a virtio-net header; "
                f"{kind}")


def classify(pages: Sequence[int], src: bytes, dst: bytes, rings: Sequence[Ring],
             frame_header: bytes) -> Tuple[List[PageReport], str]:
    """One report per page of ``pages``, and a summary: the rings' indices
    in both images, how many of the pages are ours. ``rings``: the source's
    (RX first); ``frame_header``: the bytes that start a frame to the
    guest (destination and source MAC, EtherType)."""
    states = {(which, r.index): RingState.read(mem, r) for r in rings
              for which, mem in (("src", src), ("dst", dst))}
    rx = rings[0]
    rx_src = states[("src", rx.index)]
    reports = []
    for gpa in pages:
        a, b = src[gpa:gpa + PAGE], dst[gpa:gpa + PAGE]
        diff = [i for i in range(PAGE) if a[i] != b[i]]
        lo, hi = diff[0], diff[-1]
        starts = [i for i in range(PAGE) if a.startswith(frame_header, i)]
        # our header ends with num_buffers (>= 1) right before the frame; a
        # copy of the frame the guest made (an skb head) has headroom there
        ours = [i for i in starts if i >= 2 and struct.unpack_from("<H", a, i - 2)[0] >= 1]
        rep = PageReport(gpa, len(diff), (lo, hi), entropy(a[lo:hi + 1]), entropy(b[lo:hi + 1]),
                         len(starts), len(ours))
        for r in rings:
            for name, (start, size) in r.areas().items():
                if start < gpa + PAGE and gpa < start + size:
                    rep.ring_area = f"{'rx' if r.index == 0 else 'tx'} {name}"
        for i, (addr, length, _flags, _next) in enumerate(rx_src.descs):
            if length and addr < gpa + PAGE and gpa < addr + length:
                ages = [k for k, cid in enumerate(rx_src.used_ids) if cid == i]
                posted = [k for k, h in enumerate(rx_src.avail_heads)
                          if h == i and k < (rx_src.avail_idx - rx_src.used_idx) % 65536]
                where = (f"used, {ages[0]} entries before the last" if ages else
                         "posted, not used" if posted else "in the table only")
                rep.rx_buffers.append(f"desc {i} 0x{addr:x}+{length} ({where})")
        reports.append(rep)
    idx = "; ".join(f"{which} ring {q}: avail {st.avail_idx} used {st.used_idx}"
                    for (which, q), st in sorted(states.items(), key=lambda kv: kv[0][::-1]))
    ours = sum(r.ours for r in reports)
    summary = (f"{len(reports)} pages differ: {ours} ours (ring areas, RX buffers), "
               f"{len(reports) - ours} not; {sum(r.frame_headers > 0 for r in reports)} hold "
               f"frame headers, {sum(r.rx_frames > 0 for r in reports)} after a virtio-net "
               f"header; {idx}; source queue status "
               f"{[{k: r.status.get(k) for k in ('last-avail-idx', 'used-idx', 'shadow-avail-idx')} for r in rings]}")
    return reports, summary
