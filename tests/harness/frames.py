"""Deterministic Ethernet frame generation, pcap I/O and ordered comparison.

Frames are plain ``bytes`` (no FCS/CRC), which is what the pcap PMD reads and
writes and what testpmd counts in its byte statistics.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import RawPcapReader, RawPcapWriter

MIN_FRAME = 60     # minimum Ethernet frame without FCS
MAX_FRAME = 1514   # standard MTU 1500 + 14 bytes of Ethernet header
JUMBO_FRAME = 9000

DLT_EN10MB = 1

SRC_MAC = "02:00:00:00:00:01"
DST_MAC = "02:00:00:00:00:02"


def _headers(rng: random.Random, ipv6: bool, tcp: bool, index: int, tag: int):
    l2 = Ether(src=SRC_MAC, dst=DST_MAC)
    if ipv6:
        l3 = IPv6(src=f"fd00::{tag:x}:1", dst=f"fd00::{tag:x}:2", hlim=64)
    else:
        l3 = IP(src=f"10.{tag & 0xff}.0.1", dst=f"10.{tag & 0xff}.0.2", ttl=64,
                id=index & 0xFFFF)
    sport = 1024 + (index % 60000)
    dport = rng.randint(1, 65535)
    if tcp:
        l4 = TCP(sport=sport, dport=dport, seq=index, flags="PA")
    else:
        l4 = UDP(sport=sport, dport=dport)
    return l2 / l3 / l4


def make_frame(rng: random.Random, length: int, index: int = 0, tag: int = 0) -> bytes:
    """One valid Ethernet/IPv4|IPv6/TCP|UDP frame of exactly ``length`` bytes.

    The payload starts with a 4-byte big-endian sequence number (``index``) and
    continues with random bytes.
    """
    choices = [(v6, tcp) for v6 in (False, True) for tcp in (False, True)]
    rng.shuffle(choices)
    for ipv6, tcp in choices:
        hdr = _headers(rng, ipv6, tcp, index, tag)
        hlen = len(hdr)
        if hlen + 4 <= length:
            payload = index.to_bytes(4, "big") + rng.randbytes(length - hlen - 4)
            frame = bytes(hdr / Raw(payload))
            assert len(frame) == length, (len(frame), length)
            return frame
    raise ValueError(f"frame length {length} too small for any header combination")


def gen_frames(count: int, seed: int, min_len: int = MIN_FRAME, max_len: int = MAX_FRAME,
               tag: int = 0, include_extremes: bool = True) -> List[bytes]:
    """``count`` frames with lengths uniformly in [min_len, max_len], mixed
    IPv4/IPv6 and TCP/UDP, random payloads; fully determined by ``seed``.

    With ``include_extremes`` the first frames are exactly ``min_len`` and
    ``max_len`` long (when count allows) so the boundaries are always covered.
    """
    rng = random.Random(seed)
    lengths = [rng.randint(min_len, max_len) for _ in range(count)]
    if include_extremes and count >= 2:
        lengths[0], lengths[1] = min_len, max_len
    return [make_frame(rng, n, index=i, tag=tag) for i, n in enumerate(lengths)]


def gen_jumbo_mix(count: int, seed: int, jumbo_len: int = JUMBO_FRAME, jumbo_ratio: float = 0.5,
                  tag: int = 0) -> List[bytes]:
    """A mix of ``jumbo_len`` frames and 60..1514 frames (plus some lengths
    between 1515 and ``jumbo_len`` so chains of 2..N segments occur)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        r = rng.random()
        if i == 0 or r < jumbo_ratio:
            n = jumbo_len
        elif r < jumbo_ratio + (1 - jumbo_ratio) / 2:
            n = rng.randint(MIN_FRAME, MAX_FRAME)
        else:
            n = rng.randint(MAX_FRAME + 1, jumbo_len)
        out.append(make_frame(rng, n, index=i, tag=tag))
    return out


# ---------------------------------------------------------------- pcap I/O

def write_pcap(path, frames: Iterable[bytes]) -> Path:
    path = Path(path)
    writer = RawPcapWriter(str(path), linktype=DLT_EN10MB, snaplen=65535, sync=False)
    try:
        writer.write_header(None)  # also for an empty list
        for i, frame in enumerate(frames):
            # deterministic timestamps (1 us apart)
            writer.write_packet(frame, sec=1_700_000_000, usec=i % 1_000_000)
    finally:
        writer.close()
    return path


def read_pcap(path) -> List[bytes]:
    """All frames of a pcap (micro- or nanosecond) file, in file order.

    Raises if a frame was truncated on capture (caplen < wirelen).
    """
    frames = []
    reader = RawPcapReader(str(path))
    try:
        for data, meta in reader:
            wirelen = getattr(meta, "wirelen", None)
            if wirelen is not None and wirelen != len(data):
                raise AssertionError(f"{path}: frame {len(frames)} truncated in capture: "
                                     f"caplen={len(data)} wirelen={wirelen}")
            frames.append(bytes(data))
    finally:
        reader.close()
    return frames


PCAPNG_INBOUND, PCAPNG_OUTBOUND = 1, 2


def read_pcapng(path) -> List[Tuple[int, bytes]]:
    """(direction, frame) of every Enhanced Packet Block of a pcapng file, in
    file order; direction from the block's epb_flags (PCAPNG_INBOUND,
    PCAPNG_OUTBOUND, 0 if absent). Scapy's reader drops the flags, which
    dpdk-dumpcap sets to tell the frames a port received from those it sent.

    Raises if a frame was truncated on capture.
    """
    data = Path(path).read_bytes()
    endian, pos, frames = "<", 0, []
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from(endian + "II", data, pos)
        if btype == 0x0A0D0D0A:  # section header: its byte-order magic says the endianness
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack_from(endian + "I", data, pos + 4)[0]
        elif btype == 6:  # enhanced packet block
            caplen, origlen = struct.unpack_from(endian + "II", data, pos + 20)
            if caplen != origlen:
                raise AssertionError(f"{path}: frame {len(frames)} truncated in capture: "
                                     f"caplen={caplen} origlen={origlen}")
            frame = data[pos + 28:pos + 28 + caplen]
            direction, opt, end = 0, pos + 28 + (caplen + 3) // 4 * 4, pos + blen - 4
            while opt + 4 <= end:
                code, olen = struct.unpack_from(endian + "HH", data, opt)
                if code == 0:
                    break
                if code == 2:  # epb_flags: bits 0-1 the direction
                    direction = struct.unpack_from(endian + "I", data, opt + 4)[0] & 3
                opt += 4 + (olen + 3) // 4 * 4
            frames.append((direction, frame))
        pos += blen
    return frames


# -------------------------------------------------------------- comparison

def _hexline(data: bytes, start: int, width: int = 16) -> str:
    chunk = data[start:start + width]
    return f"{start:06x}: " + " ".join(f"{b:02x}" for b in chunk)


def hexdiff(a: bytes, b: bytes, context: int = 2, width: int = 16) -> str:
    """Offset of the first differing byte and a few hex lines of both sides."""
    n = min(len(a), len(b))
    off = next((i for i in range(n) if a[i] != b[i]), n)
    if off == n and len(a) == len(b):
        return "identical"
    first_row = max(0, (off // width - context)) * width
    lines = [f"first difference at byte offset {off} (0x{off:x}); "
             f"expected len {len(a)}, actual len {len(b)}"]
    for row in range(first_row, first_row + (2 * context + 1) * width, width):
        if row >= max(len(a), len(b)):
            break
        mark = "  <--" if row <= off < row + width else ""
        lines.append(f"  exp {_hexline(a, row, width)}{mark}")
        lines.append(f"  act {_hexline(b, row, width)}")
    return "\n".join(lines)


def first_mismatch(expected: Sequence[bytes], actual: Sequence[bytes]) -> Optional[str]:
    """None if identical sequences, else a description of the first mismatch."""
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e != a:
            # Try to tell a reordering/loss from corruption.
            hint = ""
            try:
                j = list(expected).index(a)
                hint = f" (actual frame {i} equals expected frame {j}: loss, duplication or reordering)"
            except ValueError:
                hint = " (actual frame matches no expected frame: corruption)"
            return (f"frame {i} differs{hint}: expected len {len(e)}, actual len {len(a)}\n"
                    + hexdiff(e, a))
    if len(expected) != len(actual):
        n = min(len(expected), len(actual))
        what = "missing" if len(actual) < len(expected) else "extra"
        nxt = (expected[n] if len(actual) < len(expected) else actual[n])
        return (f"frame count differs: expected {len(expected)}, actual {len(actual)}; "
                f"first {what} frame is index {n} (len {len(nxt)})")
    return None


def assert_frames_equal(expected: Sequence[bytes], actual: Sequence[bytes], what: str = "frames"):
    """Ordered, byte-exact comparison; raises AssertionError on the first mismatch."""
    msg = first_mismatch(expected, actual)
    if msg is not None:
        raise AssertionError(f"{what}: received {len(actual)} frames "
                             f"({total_bytes(actual)} bytes), expected {len(expected)} "
                             f"({total_bytes(expected)} bytes); {msg}")


def ethertype(frame: bytes) -> int:
    return int.from_bytes(frame[12:14], "big")


def assert_frames_equal_per_flow(expected: Sequence[bytes], actual: Sequence[bytes],
                                 flow: Callable[[bytes], object] = ethertype,
                                 what: str = "frames"):
    """Byte-exact, every frame once, in order within each ``flow(frame)``:
    for a switch that keeps order per flow only (Open vSwitch hands each
    received burst on flow by flow: its datapath flows for rules matching
    the port alone still tell IPv4 from IPv6)."""
    flows = {}
    for name, frames in (("expected", expected), ("actual", actual)):
        for f in frames:
            flows.setdefault(flow(f), {"expected": [], "actual": []})[name].append(f)
    for key, both in flows.items():
        assert_frames_equal(both["expected"], both["actual"], f"{what}, flow {key!r}")


def total_bytes(frames: Iterable[bytes]) -> int:
    return sum(len(f) for f in frames)
