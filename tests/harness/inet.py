"""Internet checksums and IPv4 fragments of captured frames, recomputed with
Scapy: what a test asserts about frames an application got from our port.

A checksum is checked against what Scapy computes afresh for the same
bytes, so a frame passes only if whoever finished its checksum did it
right. A fragmented datagram's TCP/UDP/ICMP checksum covers the whole
datagram: it is checked after reassembly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import checksum

from .frames import MAX_FRAME

# Where a checksum lies, by protocol: the layers whose checksum is recomputed.
L4_LAYERS = (TCP, UDP, ICMP)


def pseudo_header_sum(ip, proto: int = 6, with_length: bool = True) -> int:
    """What a TCP or UDP checksum field holds while the checksum is left to
    the receiver: the folded sum of the IPv4 pseudo-header, not inverted.
    For TSO, virtio (Linux) counts the L4 length in it, DPDK (and NICs) do
    not; for UDP both do."""
    src, dst = (bytes(map(int, a.split("."))) for a in (ip.src, ip.dst))
    length = ip.len - ip.ihl * 4 if with_length else 0
    return checksum(struct.pack("!4s4sBBH", src, dst, 0, proto, length)) ^ 0xffff


def ipv4_header_valid(ip) -> bool:
    """The IPv4 header (options included) of Scapy layer ``ip`` sums to 0xffff."""
    return checksum(bytes(ip)[:ip.ihl * 4]) == 0


def l4_checksums_valid(pkt) -> bool:
    """The IPv4 header checksum and the TCP, UDP or ICMP checksum of ``pkt``
    (a frame's bytes, or a Scapy packet from Ether or IP down) are what
    Scapy computes for the same bytes."""
    if isinstance(pkt, (bytes, bytearray)):
        pkt = Ether(pkt)
    fresh = pkt.copy()
    layers = [layer for layer in (IP,) + L4_LAYERS if layer in pkt]
    for layer in layers:
        del fresh[layer].chksum
    fresh = fresh.__class__(bytes(fresh))
    return all(pkt[layer].chksum == fresh[layer].chksum for layer in layers)


def mtu_sized(frames: Iterable[bytes], mtu: int = MAX_FRAME - 14) -> bool:
    """No frame above ``mtu`` (default 1500) and its Ethernet header."""
    return all(len(f) <= mtu + 14 for f in frames)


@dataclass
class Datagram:
    """An IPv4 datagram put together from its fragments."""
    ip: IP                  # the whole datagram, its header the first fragment's
    frames: List[int]       # indices of its fragments in the capture


def _fragment(ip) -> bool:
    return bool(ip.flags.MF) or ip.frag > 0


def reassemble_ipv4(frames: Sequence[bytes]) -> Tuple[List[Datagram], List[str]]:
    """The datagrams of every IPv4 fragment in ``frames``, each from its
    fragments in offset order, and what is wrong with the fragments:
    offsets with gaps or overlaps, a last fragment missing, fragments of
    one datagram with different headers."""
    groups: Dict[tuple, List[Tuple[int, IP]]] = {}
    for i, f in enumerate(frames):
        pkt = Ether(f)
        if IP in pkt and _fragment(pkt[IP]):
            ip = pkt[IP]
            groups.setdefault((ip.src, ip.dst, ip.proto, ip.id), []).append((i, ip))
    datagrams, problems = [], []
    for key, frags in groups.items():
        frags.sort(key=lambda x: x[1].frag)
        data, where = b"", f"datagram {key} (frames {[i for i, _ in frags]})"
        for n, (i, ip) in enumerate(frags):
            payload = bytes(ip.payload)[:ip.len - ip.ihl * 4]
            if ip.frag * 8 != len(data):
                problems.append(f"{where}: fragment at {ip.frag * 8}, {len(data)} bytes so far")
            if bool(ip.flags.MF) != (n < len(frags) - 1):
                problems.append(f"{where}: fragment {n} of {len(frags)} with MF={ip.flags.MF}")
            if (ip.tos, ip.ttl, bytes(ip.options)) != (frags[0][1].tos, frags[0][1].ttl,
                                                        bytes(frags[0][1].options)):
                problems.append(f"{where}: fragment {n} has other IPv4 header fields")
            data += payload
        first = frags[0][1]
        whole = IP(bytes(first)[:first.ihl * 4] + data)
        whole.flags = int(first.flags) & ~1     # MF off
        whole.frag = 0
        whole.len = first.ihl * 4 + len(data)
        del whole.chksum
        datagrams.append(Datagram(IP(bytes(whole)), [i for i, _ in frags]))
    return datagrams, problems


def checksum_problems(frames: Sequence[bytes]) -> List[str]:
    """What is wrong with the checksums of ``frames``: every IPv4 header
    checksum, and every TCP, UDP and ICMP checksum (over IPv4; TCP and UDP
    over IPv6), of whole frames directly and of fragmented datagrams after
    reassembly, recomputed. Empty when all are right."""
    problems = []
    for i, f in enumerate(frames):
        pkt = Ether(f)
        if IP in pkt:
            if not ipv4_header_valid(pkt[IP]):
                problems.append(f"frame {i}: IPv4 header checksum: {pkt.summary()}")
            elif not _fragment(pkt[IP]) and not l4_checksums_valid(pkt):
                problems.append(f"frame {i}: L4 checksum: {pkt.summary()}")
        elif IPv6 in pkt and (TCP in pkt or UDP in pkt) and not l4_checksums_valid(pkt):
            problems.append(f"frame {i}: L4 checksum: {pkt.summary()}")
    datagrams, fragment_problems = reassemble_ipv4(frames)
    problems += fragment_problems
    for d in datagrams:
        if not l4_checksums_valid(d.ip):
            problems.append(f"reassembled from frames {d.frames}: L4 checksum: {d.ip.summary()}")
    return problems
