"""A vhost-user front end written for tests: well-behaved or hostile.

It is the client side of the Unix socket (the back end listens), owns the
guest memory (memfd + mmap, shared with the back end through SET_MEM_TABLE)
and lays out rings and descriptors itself, so a test can put anything on the
wire and in the rings:

* :class:`VhostUserClient` sends any message: raw header fields, any payload
  bytes, any fds (SCM_RIGHTS); reads replies; notices when the back end hangs
  up.
* :class:`GuestMemory`, :class:`SplitRing`, :class:`PackedRing` and the
  ``pack_*`` / :func:`net_hdr` helpers build memory tables, descriptor tables,
  available/used rings, packed descriptors, indirect tables and virtio-net
  headers in guest memory.
* :class:`FrontEnd` adds the well-behaved mode: it negotiates features, sets
  up queue pair 0 in the order DPDK's virtio-user does, sends frames through
  the guest TX ring and receives them from the guest RX ring byte-exact. Its
  rings stay accessible, so a test can go hostile at any point.
* :class:`Iommu` puts the guest behind a virtual IOMMU (``FrontEnd(...,
  iommu=Iommu(...))``, VIRTIO_F_ACCESS_PLATFORM): the test decides which
  guest memory page each I/O virtual page translates to, ring addresses and
  descriptors carry IOVAs, and a thread answers the misses the back end asks
  on its request channel (SET_BACKEND_REQ_FD) with IOTLB_MSG updates, as
  QEMU does, unless the test withholds them.

Wire format: QEMU's docs/interop/vhost-user.rst, our lib/vhost/message.h.
Everything is little-endian (x86-64).  The back end polls its rings, so
kicks are courtesy and interrupts are not needed: our rings ask for none.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import enum
import errno
import itertools
import mmap
import os
import select
import socket
import random
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple


class Req(enum.IntEnum):
    """Request codes (front end -> back end)."""
    GET_FEATURES = 1
    SET_FEATURES = 2
    SET_OWNER = 3
    RESET_OWNER = 4
    SET_MEM_TABLE = 5
    SET_LOG_BASE = 6
    SET_LOG_FD = 7
    SET_VRING_NUM = 8
    SET_VRING_ADDR = 9
    SET_VRING_BASE = 10
    GET_VRING_BASE = 11
    SET_VRING_KICK = 12
    SET_VRING_CALL = 13
    SET_VRING_ERR = 14
    GET_PROTOCOL_FEATURES = 15
    SET_PROTOCOL_FEATURES = 16
    GET_QUEUE_NUM = 17
    SET_VRING_ENABLE = 18
    SEND_RARP = 19
    NET_SET_MTU = 20
    SET_BACKEND_REQ_FD = 21
    IOTLB_MSG = 22
    GET_CONFIG = 24
    SET_CONFIG = 25
    GET_INFLIGHT_FD = 31
    SET_INFLIGHT_FD = 32
    POSTCOPY_ADVISE = 28
    POSTCOPY_LISTEN = 29
    POSTCOPY_END = 30
    RESET_DEVICE = 34
    GET_MAX_MEM_SLOTS = 36
    ADD_MEM_REG = 37
    REM_MEM_REG = 38
    SET_STATUS = 39
    GET_STATUS = 40


# Header: u32 request, u32 flags, u32 size.
HEADER = struct.Struct("<III")
VERSION = 0x1
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8
MAX_FDS = 8                     # per message, by the specification
VRING_NOFD = 0x100              # KICK/CALL/ERR payload: no fd follows

# Feature bits (VIRTIO 1.1, vhost-user).
F_CSUM = 0
F_GUEST_CSUM = 1
F_GUEST_TSO4 = 7
F_GUEST_TSO6 = 8
F_GUEST_UFO = 10
F_HOST_TSO4 = 11
F_HOST_TSO6 = 12
F_HOST_UFO = 14
F_MRG_RXBUF = 15
F_LOG_ALL = 26
F_INDIRECT_DESC = 28
F_EVENT_IDX = 29
F_PROTOCOL_FEATURES = 30
F_VERSION_1 = 32
F_ACCESS_PLATFORM = 33
F_RING_PACKED = 34
PF_MQ = 0
PF_LOG_SHMFD = 1
PF_RARP = 2
PF_REPLY_ACK = 3
PF_BACKEND_REQ = 5
PF_PAGEFAULT = 8
PF_CONFIGURE_MEM_SLOTS = 15
PF_STATUS = 16
VRING_F_LOG = 1                 # SET_VRING_ADDR flag: log used-ring writes

# Descriptor flags; packed-ring wrap bits; ring flags.
DESC_NEXT = 1
DESC_WRITE = 2
DESC_INDIRECT = 4
PACKED_AVAIL = 1 << 7
PACKED_USED = 1 << 15
AVAIL_F_NO_INTERRUPT = 1
PACKED_EVENT_DISABLE = 1

# virtio-net header flags and GSO types.
HDR_F_NEEDS_CSUM = 1
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_ECN = 0x80

DESC = struct.Struct("<QIHH")           # split: addr, len, flags, next
PACKED_DESC = struct.Struct("<QIHH")    # packed: addr, len, id, flags
USED_ELEM = struct.Struct("<II")        # id, len
REGION = struct.Struct("<QQQQ")         # gpa, size, uaddr, mmap_offset

# Ring indices of queue pair 0 (guest view): the back end fills RX, reads TX.
RX_RING = 0
TX_RING = 1

BUF_SIZE = 2048                 # one guest buffer: header + a 1514-byte frame fit


def bit(n: int) -> int:
    return 1 << n


class ConnectionClosed(ConnectionError):
    """The back end closed the connection."""


class Refused(AssertionError):
    """The back end answered a request with a non-zero ack (a test expected 0)."""


# --------------------------------------------------------------------- payloads

def pack_u64(value: int) -> bytes:
    return struct.pack("<Q", value & (2**64 - 1))


def pack_state(index: int, num: int) -> bytes:
    return struct.pack("<II", index & 0xFFFFFFFF, num & 0xFFFFFFFF)


def pack_addr(index: int, desc: int, used: int, avail: int, log: int = 0,
              flags: int = 0) -> bytes:
    """SET_VRING_ADDR payload (front-end virtual addresses; field order of the spec)."""
    return struct.pack("<IIQQQQ", index, flags, desc, used, avail, log)


def pack_log_base(size: int, offset: int) -> bytes:
    return struct.pack("<QQ", size, offset)


# IOTLB_MSG payload (struct vhost_iotlb_msg): iova, size, uaddr, perm, type, padding to 32.
IOTLB = struct.Struct("<QQQBB6x")
IOTLB_MISS = 1
IOTLB_UPDATE = 2
IOTLB_INVALIDATE = 3
IOTLB_ACCESS_FAIL = 4
IOTLB_RO = 1
IOTLB_WO = 2
IOTLB_RW = 3
BACKEND_IOTLB_MSG = 1           # the back end's request (its channel): an IOTLB message


def pack_iotlb(iova: int, size: int, uaddr: int, perm: int, type_: int) -> bytes:
    """IOTLB_MSG payload (32 bytes); every field as given."""
    m = 2**64 - 1
    return IOTLB.pack(iova & m, size & m, uaddr & m, perm & 0xFF, type_ & 0xFF)


@dataclass
class Region:
    """One SET_MEM_TABLE region: guest physical, front-end virtual, file offset."""
    gpa: int
    size: int
    uaddr: int
    mmap_offset: int = 0

    def pack(self) -> bytes:
        return REGION.pack(*(v & (2**64 - 1) for v in
                             (self.gpa, self.size, self.uaddr, self.mmap_offset)))


def pack_mem_table(regions: Sequence[Region], nregions: Optional[int] = None) -> bytes:
    """SET_MEM_TABLE payload; ``nregions`` may lie about the count."""
    n = len(regions) if nregions is None else nregions
    return struct.pack("<II", n, 0) + b"".join(r.pack() for r in regions)


def pack_mem_reg(region: Region) -> bytes:
    """ADD_MEM_REG and REM_MEM_REG payload: padding, then the one region."""
    return pack_u64(0) + region.pack()


NET_HDR = struct.Struct("<BBHHHHH")    # flags, gso_type, hdr_len, gso_size, csum_start/offset,
                                        # num_buffers (the last with VERSION_1 or MRG_RXBUF)


def net_hdr(flags: int = 0, gso_type: int = GSO_NONE, hdr_len: int = 0, gso_size: int = 0,
            csum_start: int = 0, csum_offset: int = 0, num_buffers: int = 0,
            size: int = 12) -> bytes:
    """A virtio-net header: 12 bytes with VERSION_1 or MRG_RXBUF, else 10."""
    hdr = NET_HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers)
    return hdr[:size]


class NetHdr(NamedTuple):
    """A virtio-net header as the back end wrote it."""
    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int
    num_buffers: int

    @classmethod
    def parse(cls, data: bytes) -> "NetHdr":
        return cls(*NET_HDR.unpack(data[:NET_HDR.size].ljust(NET_HDR.size, b"\0")))


def pack_desc(addr: int, length: int, flags: int = 0, next_: int = 0) -> bytes:
    """One split (or indirect-table) descriptor."""
    return DESC.pack(addr & (2**64 - 1), length & 0xFFFFFFFF, flags, next_ & 0xFFFF)


def pack_packed_desc(addr: int, length: int, buf_id: int, flags: int) -> bytes:
    return PACKED_DESC.pack(addr & (2**64 - 1), length & 0xFFFFFFFF, buf_id, flags)


def eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


# ----------------------------------------------------------------- guest memory

_memfd_serial = itertools.count()

# Where guest memory appears: guest physical addresses (descriptors) and our
# "virtual" addresses (ring addresses) deliberately differ, so a back end that
# mixes the two up misses memory instead of working by accident.
DEFAULT_GPA = 0x1_0000_0000
DEFAULT_UADDR = 0x7F00_0000_0000


class GuestMemory:
    """Guest RAM: one memfd mapped here, handed to the back end as one region
    (or cut into several).  A bump allocator places rings and buffers."""

    def __init__(self, size: int = 4 << 20, gpa: int = DEFAULT_GPA, uaddr: int = DEFAULT_UADDR,
                 tag: str = "guest"):
        # The name shows in /proc/<pid>/fd and /proc/<pid>/maps of the back end:
        # tests look for it there to prove the memory was let go.
        self.name = f"vhu-{tag}-{os.getpid()}-{next(_memfd_serial)}"
        self.fd = os.memfd_create(self.name, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.size = size
        self.gpa_base = gpa
        self.uaddr_base = uaddr
        self._next = 0

    def alloc(self, nbytes: int, align: int = 64) -> int:
        """Offset of ``nbytes`` fresh bytes, zeroed."""
        off = (self._next + align - 1) // align * align
        if off + nbytes > self.size:
            raise MemoryError(f"guest memory of {self.size} bytes is full")
        self._next = off + nbytes
        self.map[off:off + nbytes] = bytes(nbytes)
        return off

    def gpa(self, off: int) -> int:
        return self.gpa_base + off

    def uaddr(self, off: int) -> int:
        return self.uaddr_base + off

    def write(self, off: int, data: bytes):
        self.map[off:off + len(data)] = data

    def read(self, off: int, n: int) -> bytes:
        return bytes(self.map[off:off + n])

    # Ring indices and flags change under the back end's eyes: one 16-bit
    # load or store each, as a driver's READ_ONCE/WRITE_ONCE.  (struct's
    # pack_into zeroes its target before writing and unpack_from reads byte
    # by byte: the back end would see an index of 0 now and then.)
    def load16(self, off: int) -> int:
        return ctypes.c_uint16.from_buffer(self.map, off).value

    def store16(self, off: int, value: int):
        ctypes.c_uint16.from_buffer(self.map, off).value = value & 0xFFFF

    def region(self, offset: int = 0, size: Optional[int] = None) -> Region:
        """The region of ``size`` bytes at file offset ``offset``."""
        size = self.size - offset if size is None else size
        return Region(self.gpa(offset), size, self.uaddr(offset), offset)

    def close(self):
        self.map.close()
        os.close(self.fd)


# ------------------------------------------------------------------------ rings

class SplitRing:
    """A split virtqueue in guest memory (driver side).

    Buffers are identified by their head descriptor index; :meth:`submit`
    (one-descriptor chains) and :meth:`completed` serve the well-behaved path,
    everything else lets a test write whatever it wants.
    """

    packed = False

    def __init__(self, mem: GuestMemory, index: int, size: int):
        self.mem = mem
        self.index = index
        self.size = size
        self.desc = mem.alloc(16 * size, 4096)
        self.avail = mem.alloc(6 + 2 * size, 4096)
        self.used = mem.alloc(6 + 8 * size, 4096)
        self.avail_idx = 0      # the driver's next available index
        self.used_seen = 0      # used entries consumed so far
        self.kickfd = eventfd()
        self.callfd = eventfd()
        mem.store16(self.avail, AVAIL_F_NO_INTERRUPT)

    # addresses for SET_VRING_ADDR (front-end virtual)
    def addr_payload(self, **override) -> bytes:
        args = dict(index=self.index, desc=self.mem.uaddr(self.desc),
                    used=self.mem.uaddr(self.used), avail=self.mem.uaddr(self.avail))
        args.update(override)
        return pack_addr(**args)

    def base(self) -> int:
        return self.avail_idx

    def device_writes(self) -> Tuple[int, int]:
        """(offset, length) of what the back end writes in this ring: the used ring."""
        return self.used, 6 + 8 * self.size

    def write_desc(self, i: int, addr: int, length: int, flags: int = 0, next_: int = 0):
        self.mem.write(self.desc + 16 * i, pack_desc(addr, length, flags, next_))

    def write_avail_entry(self, slot: int, head: int):
        self.mem.store16(self.avail + 4 + 2 * (slot % self.size), head)

    def publish_avail(self, idx: Optional[int] = None):
        """Store avail->idx (``idx`` may be anything, e.g. far ahead)."""
        if idx is not None:
            self.avail_idx = idx & 0xFFFF
        self.mem.store16(self.avail + 2, self.avail_idx)

    def make_available(self, *heads: int):
        for head in heads:
            self.write_avail_entry(self.avail_idx, head)
            self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.publish_avail()

    def used_idx(self) -> int:
        return self.mem.load16(self.used + 2)

    def used_flags(self) -> int:
        return self.mem.load16(self.used)

    def used_elem(self, i: int) -> Tuple[int, int]:
        return USED_ELEM.unpack(self.mem.read(self.used + 4 + 8 * (i % self.size), 8))

    def completed(self) -> List[Tuple[int, int]]:
        """Used entries (id, len) that appeared since the last call."""
        out = []
        idx = self.used_idx()
        while self.used_seen != idx:
            out.append(self.used_elem(self.used_seen))
            self.used_seen = (self.used_seen + 1) & 0xFFFF
        return out

    def submit(self, buf_id: int, addr: int, length: int, writable: bool):
        self.write_desc(buf_id, addr, length, DESC_WRITE if writable else 0)
        self.make_available(buf_id)

    def kick(self):
        os.eventfd_write(self.kickfd, 1)

    def close(self):
        for fd in (self.kickfd, self.callfd):
            os.close(fd)


class PackedRing:
    """A packed virtqueue in guest memory (driver side), with wrap counters.

    :meth:`add_chain` writes a chain at the next slots (the head's flags
    last, as a driver must), :meth:`completed` walks used descriptors.
    """

    packed = True

    def __init__(self, mem: GuestMemory, index: int, size: int):
        self.mem = mem
        self.index = index
        self.size = size
        self.desc = mem.alloc(16 * size, 4096)
        self.driver_event = mem.alloc(4, 64)
        self.device_event = mem.alloc(4, 64)
        self.next_avail = 0
        self.avail_wrap = 1
        self.next_used = 0
        self.used_wrap = 1
        self.chain_slots: Dict[int, int] = {}   # buffer id -> descriptors in its chain
        self.kickfd = eventfd()
        self.callfd = eventfd()
        mem.store16(self.driver_event + 2, PACKED_EVENT_DISABLE)

    def addr_payload(self, **override) -> bytes:
        # Packed rings: "avail" is the driver event area, "used" the device one.
        args = dict(index=self.index, desc=self.mem.uaddr(self.desc),
                    used=self.mem.uaddr(self.device_event),
                    avail=self.mem.uaddr(self.driver_event))
        args.update(override)
        return pack_addr(**args)

    def base(self) -> int:
        """SET_VRING_BASE value: next slot and its wrap counter (bit 15)."""
        return self.next_avail | self.avail_wrap << 15

    def device_writes(self) -> Tuple[int, int]:
        """(offset, length) of what the back end writes in this ring: used
        descriptors land in the descriptor ring itself."""
        return self.desc, 16 * self.size

    def avail_flags(self, wrap: int) -> int:
        return PACKED_AVAIL if wrap else PACKED_USED

    def write_slot(self, slot: int, addr: int, length: int, buf_id: int, flags: int):
        """Address, length and id first, the flags (which make it available) last."""
        desc = pack_packed_desc(addr, length, buf_id, flags)
        self.mem.write(self.desc + 16 * slot, desc[:14])
        self.mem.store16(self.desc + 16 * slot + 14, flags)

    def add_chain(self, descs: Sequence[Tuple[int, int, int]], buf_id: int):
        """Make ``descs`` [(addr, len, flags)] available as one chain (NEXT is
        set on all but the last unless a flag says otherwise)."""
        slots = []
        for i, (addr, length, flags) in enumerate(descs):
            if i < len(descs) - 1:
                flags |= DESC_NEXT
            slots.append((self.next_avail, addr, length, flags | self.avail_flags(self.avail_wrap)))
            self.next_avail += 1
            if self.next_avail == self.size:
                self.next_avail = 0
                self.avail_wrap ^= 1
        self.chain_slots[buf_id] = len(descs)
        for slot, addr, length, flags in reversed(slots):
            self.write_slot(slot, addr, length, buf_id, flags)

    def completed(self) -> List[Tuple[int, int]]:
        out = []
        while True:
            at = self.desc + 16 * self.next_used
            # flags first: the id and length are valid once they say "used"
            flags = self.mem.load16(at + 14)
            used = bool(flags & PACKED_USED)
            if used != bool(flags & PACKED_AVAIL) or used != bool(self.used_wrap):
                return out
            _, length, buf_id, _ = PACKED_DESC.unpack(self.mem.read(at, 16))
            out.append((buf_id, length))
            self.next_used += self.chain_slots.pop(buf_id, 1)
            if self.next_used >= self.size:
                self.next_used -= self.size
                self.used_wrap ^= 1

    def submit(self, buf_id: int, addr: int, length: int, writable: bool):
        self.add_chain([(addr, length, DESC_WRITE if writable else 0)], buf_id)

    def kick(self):
        os.eventfd_write(self.kickfd, 1)

    def close(self):
        for fd in (self.kickfd, self.callfd):
            os.close(fd)


# ----------------------------------------------------------------------- socket

@dataclass
class Reply:
    request: int
    flags: int
    payload: bytes
    fds: List[int] = field(default_factory=list)    # the caller's to close

    @property
    def u64(self) -> int:
        return struct.unpack("<Q", self.payload[:8])[0]


class VhostUserClient:
    """The front end's end of the socket: any message, any fds."""

    def __init__(self, path: str, timeout: float = 5.0):
        self.path = path
        self.timeout = timeout
        # A request and its answer go together: an Iommu's thread answers
        # misses on the same socket while the test sends its own requests.
        self.lock = threading.RLock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def send_raw(self, data: bytes, fds: Sequence[int] = ()):
        """Bytes and fds exactly as given (one sendmsg)."""
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        with self.lock:
            try:
                sent = self.sock.sendmsg([data], anc)
                if sent != len(data):
                    self.sock.sendall(data[sent:])
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ConnectionClosed(f"send: {exc}") from exc

    def send(self, request: int, payload: bytes = b"", fds: Sequence[int] = (),
             flags: int = VERSION, size: Optional[int] = None, need_reply: bool = False):
        """One message; ``flags`` and ``size`` are sent as given (``size``
        defaults to the payload's length)."""
        if need_reply:
            flags |= FLAG_NEED_REPLY
        size = len(payload) if size is None else size
        self.send_raw(HEADER.pack(request, flags, size) + payload, fds)

    def _recv_exact(self, n: int, timeout: float) -> bytes:
        buf = b""
        self.sock.settimeout(timeout)
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError as exc:
                raise ConnectionClosed(str(exc)) from exc
            if not chunk:
                raise ConnectionClosed("the back end closed the connection")
            buf += chunk
        return buf

    def _recv_header(self, timeout: float) -> Tuple[bytes, List[int]]:
        """The header, and the fds that came with it (POSTCOPY_ADVISE's)."""
        self.sock.settimeout(timeout)
        fds = array.array("i")
        try:
            data, anc, _, _ = self.sock.recvmsg(HEADER.size, socket.CMSG_SPACE(MAX_FDS * 4))
        except ConnectionResetError as exc:
            raise ConnectionClosed(str(exc)) from exc
        for level, kind, blob in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(blob[:len(blob) - len(blob) % fds.itemsize])
        if not data:
            raise ConnectionClosed("the back end closed the connection")
        return data + self._recv_exact(HEADER.size - len(data), timeout), list(fds)

    def recv_reply(self, timeout: Optional[float] = None) -> Reply:
        timeout = self.timeout if timeout is None else timeout
        header, fds = self._recv_header(timeout)
        request, flags, size = HEADER.unpack(header)
        payload = self._recv_exact(size, timeout) if size else b""
        return Reply(request, flags, payload, fds)

    def call(self, request: int, payload: bytes = b"", fds: Sequence[int] = (),
             **kw) -> Reply:
        """A request that is answered (GET_*, SET_LOG_BASE, or with NEED_REPLY)."""
        with self.lock:
            self.send(request, payload, fds, **kw)
            reply = self.recv_reply()
        if reply.request != request or not reply.flags & FLAG_REPLY:
            raise AssertionError(f"reply to {Req(request).name} is {reply}")
        return reply

    def ack(self, request: int, payload: bytes = b"", fds: Sequence[int] = ()) -> int:
        """Send with NEED_REPLY and return the u64 the back end acked (0 = success)."""
        return self.call(request, payload, fds, need_reply=True).u64

    def checked(self, request: int, payload: bytes = b"", fds: Sequence[int] = ()):
        value = self.ack(request, payload, fds)
        if value != 0:
            raise Refused(f"{Req(request).name} refused (ack {value})")

    def get_u64(self, request: int) -> int:
        return self.call(request).u64

    def still_talks(self) -> bool:
        """Whether the back end still answers on this connection."""
        try:
            return self.get_u64(Req.GET_FEATURES) != 0
        except (ConnectionClosed, socket.timeout):
            return False

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True once the back end has closed the connection (replies still in
        flight are skipped), False if it is still open after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            r, _, _ = select.select([self.sock], [], [], remaining)
            if not r:
                return False
            try:
                if not self.sock.recv(4096):
                    return True
            except ConnectionResetError:
                return True
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    continue
                raise

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------- vIOMMU

PAGE = 4096
# I/O virtual addresses start here: neither a guest physical address nor a
# front-end address of ours, so a back end that takes one for another misses.
DEFAULT_IOVA = 0x4000_0000


def page_of(addr: int) -> int:
    return addr & ~(PAGE - 1)


class BackendMsg(NamedTuple):
    """A message the back end sent on its request channel, and when."""
    request: int
    flags: int
    size: int
    iova: int
    iotlb_size: int
    uaddr: int
    perm: int
    type: int
    when: float

    @property
    def page(self) -> int:
        return page_of(self.iova)

    def problem(self) -> Optional[str]:
        """What is wrong with it as an IOTLB miss (header request 1, flags
        1, size 32, type miss, no size or address, an access asked)."""
        if (self.request, self.flags, self.size) != (BACKEND_IOTLB_MSG, VERSION, IOTLB.size):
            return f"header request {self.request} flags {self.flags:#x} size {self.size}"
        if self.type != IOTLB_MISS or self.iotlb_size != 0 or self.uaddr != 0 or \
                self.perm not in (IOTLB_RO, IOTLB_WO, IOTLB_RW):
            return (f"type {self.type} size {self.iotlb_size:#x} uaddr {self.uaddr:#x} "
                    f"perm {self.perm}")
        return None


@dataclass
class IommuLayout:
    """Where :class:`FrontEnd` puts its buffers in I/O virtual space: one
    range per ring, buffer *i* at ``lead + i * stride`` bytes into it (a
    ``lead`` or ``stride`` that is not a multiple of the page size makes
    buffers cross I/O pages). Its pages are guest memory pages in order,
    or, with ``scatter`` (a seed), in a random order: consecutive I/O pages
    land on pages far apart."""
    lead: int = 0
    stride: int = 0                 # 0: the buffer size
    scatter: Optional[int] = None


class Iommu:
    """The virtual IOMMU of a guest (VIRTIO_F_ACCESS_PLATFORM): which guest
    memory page each I/O virtual page translates to, as the test decides,
    and the back end's request channel.

    :meth:`open_channel` makes the socketpair whose far end goes to the
    back end with SET_BACKEND_REQ_FD; a thread reads the misses it sends
    there (every one is kept in :attr:`misses`) and answers each with an
    IOTLB_MSG update of the page asked for (NEED_REPLY, ack checked), the
    translation :attr:`table` holds for it: lazily, only what is asked.
    Pages the test withholds (:meth:`withhold`), or that have no translation, are
    not answered until :meth:`release` or :meth:`map`. Anything wrong (a
    malformed message on the channel, an update refused) goes to
    :attr:`errors`, for the test to assert empty.
    """

    def __init__(self, mem: GuestMemory, iova_base: int = DEFAULT_IOVA):
        self.mem = mem
        self.table: Dict[int, Tuple[int, int]] = {}     # I/O page -> (memory offset, perm)
        self.withheld: Set[int] = set()
        self.deferred: Dict[int, int] = {}              # pages asked, not answered: perms
        self.told: Set[int] = set()                     # pages the back end has translated
        self.misses: List[BackendMsg] = []
        self.errors: List[str] = []
        self.updates = 0                # IOTLB updates acknowledged with 0
        self.invalidations = 0          # invalidations acknowledged with 0
        self.lock = threading.RLock()
        self.front: Optional["VhostUserClient"] = None
        self.channel_closed = threading.Event()
        self._next = iova_base
        self._chan: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._closing = False

    # ------------------------------------------------------- address space

    def _take(self, npages: int) -> int:
        """Fresh I/O pages; a page left out after each range, so that running
        off its end misses instead of landing in the next."""
        base = self._next
        self._next += (npages + 1) * PAGE
        return base

    def reserve(self, npages: int = 1) -> int:
        """IOVAs no translation will ever exist for."""
        return self._take(npages)

    def map(self, iova: int, off: int, perm: int = IOTLB_RW):
        """I/O page ``iova`` translates to the guest memory page at offset
        ``off``; a miss waiting for it is answered (unless withheld)."""
        assert off % PAGE == 0, f"memory offset {off:#x} not page aligned"
        page = page_of(iova)
        with self.lock:
            self.table[page] = (off, perm)
            if page in self.deferred and page not in self.withheld:
                self._answer(page)

    def unmap(self, iova: int):
        """The page has no translation any more (the back end is not told)."""
        with self.lock:
            self.table.pop(page_of(iova), None)

    def expose(self, off: int, nbytes: int, perm: int = IOTLB_RW) -> int:
        """Fresh IOVAs for guest memory [off, off + nbytes), its pages in order."""
        first = page_of(off)
        npages = (off + nbytes - first + PAGE - 1) // PAGE
        base = self._take(npages)
        for i in range(npages):
            self.map(base + i * PAGE, first + i * PAGE, perm)
        return base + off - first

    def alloc(self, nbytes: int, lead: int = 0, rng: Optional[random.Random] = None,
              perm: int = IOTLB_RW) -> int:
        """IOVA of ``nbytes`` fresh zeroed bytes starting ``lead`` bytes into
        a page; its pages fresh guest memory pages, in order or shuffled by
        ``rng``."""
        npages = (lead + nbytes + PAGE - 1) // PAGE
        offs = [self.mem.alloc(PAGE, PAGE) for _ in range(npages)]
        if rng is not None:
            rng.shuffle(offs)
        base = self._take(npages)
        for i, off in enumerate(offs):
            self.map(base + i * PAGE, off, perm)
        return base + lead

    def translate(self, iova: int) -> int:
        """Guest memory offset of ``iova`` (which must have a translation)."""
        off, _ = self.table[page_of(iova)]
        return off + iova % PAGE

    def pages(self, iova: int, nbytes: int) -> List[int]:
        """The I/O pages of [iova, iova + nbytes)."""
        return list(range(page_of(iova), iova + max(nbytes, 1), PAGE))

    def _pieces(self, iova: int, nbytes: int) -> Iterable[Tuple[int, int, int]]:
        done = 0
        while done < nbytes:
            at = iova + done
            n = min(nbytes - done, PAGE - at % PAGE)
            yield done, self.translate(at), n
            done += n

    def write(self, iova: int, data: bytes):
        for done, off, n in self._pieces(iova, len(data)):
            self.mem.write(off, data[done:done + n])

    def read(self, iova: int, nbytes: int) -> bytes:
        return b"".join(self.mem.read(off, n) for _, off, n in self._pieces(iova, nbytes))

    def uaddr(self, iova: int) -> int:
        """Front-end virtual address ``iova`` translates to."""
        return self.mem.uaddr(self.translate(iova))

    # -------------------------------------------------- the back end's channel

    def open_channel(self, front: "VhostUserClient") -> int:
        """The socketpair of the back end's request channel; returns the end
        to hand over with SET_BACKEND_REQ_FD (the caller closes its copy) and
        starts answering misses on ``front``."""
        self.front = front
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._chan = ours
        self._thread = threading.Thread(target=self._serve, name="iommu-misses", daemon=True)
        self._thread.start()
        return theirs.detach()

    def _recv(self, n: int) -> Optional[bytes]:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self._chan.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self):
        try:
            while True:
                header = self._recv(HEADER.size)
                if header is None:
                    break
                request, flags, size = HEADER.unpack(header)
                if size > 4096:
                    self.errors.append(f"request channel: a message of {size} bytes")
                    break
                payload = self._recv(size) if size else b""
                if payload is None:
                    break
                fields = IOTLB.unpack(payload) if size == IOTLB.size else (0, 0, 0, 0, 0)
                self._on_miss(BackendMsg(request, flags, size, *fields, time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - reported through errors
            if not self._closing:
                self.errors.append(f"miss thread: {exc!r}")
        finally:
            self.channel_closed.set()

    def _on_miss(self, m: BackendMsg):
        with self.lock:
            self.misses.append(m)
            problem = m.problem()
            if problem:
                self.errors.append(f"request channel: not an IOTLB miss: {problem}")
                return
            if m.page not in self.table or m.page in self.withheld or self._closing:
                self.deferred[m.page] = self.deferred.get(m.page, 0) | m.perm
                return
            try:
                self._answer(m.page)
            except (ConnectionClosed, OSError) as exc:
                # the front end hung up meanwhile: keep reading what was asked
                if not self._closing:
                    self.errors.append(f"answering a miss for {m.page:#x}: {exc!r}")

    def _answer(self, page: int):
        off, perm = self.table[page]
        ack = self.front.ack(Req.IOTLB_MSG, pack_iotlb(page, PAGE, self.mem.uaddr(off), perm,
                                                       IOTLB_UPDATE))
        self.deferred.pop(page, None)
        if ack != 0:
            self.errors.append(f"IOTLB update of iova {page:#x} refused (ack {ack})")
            return
        self.updates += 1
        self.told.add(page)

    def update(self, iova: int) -> None:
        """Tell the back end the translation of ``iova``'s page now, unasked."""
        with self.lock:
            self._answer(page_of(iova))

    def withhold(self, pages: Iterable[int]):
        """Misses for these pages wait until :meth:`release`."""
        with self.lock:
            self.withheld.update(page_of(p) for p in pages)

    def release(self, pages: Optional[Iterable[int]] = None):
        """Withheld pages (all by default) answered again, those asked at once."""
        with self.lock:
            pages = set(self.withheld) if pages is None else {page_of(p) for p in pages}
            self.withheld -= pages
            for page in sorted(pages):
                if page in self.deferred and page in self.table:
                    self._answer(page)

    def invalidate(self, iova: int, size: int = PAGE) -> int:
        """IOTLB_MSG invalidate of [iova, iova + size), NEED_REPLY; the ack.
        Once it is 0 the back end no longer uses what it had for the range."""
        with self.lock:
            ack = self.front.ack(Req.IOTLB_MSG, pack_iotlb(iova, size, 0, 0, IOTLB_INVALIDATE))
            if ack == 0:
                self.invalidations += 1
                self.told -= {p for p in self.told if iova <= p + PAGE - 1 and p <= iova + size - 1}
            return ack

    def misses_for(self, pages: Iterable[int], since: int = 0) -> List[BackendMsg]:
        wanted = {page_of(p) for p in pages}
        with self.lock:
            return [m for m in self.misses[since:] if m.page in wanted]

    def wait_misses(self, pages: Iterable[int], timeout: float = 5.0, since: int = 0
                    ) -> List[BackendMsg]:
        """Misses for all of ``pages`` (after the ``since``-th), within ``timeout``."""
        wanted = {page_of(p) for p in pages}
        deadline = time.monotonic() + timeout
        while True:
            got = self.misses_for(wanted, since)
            if {m.page for m in got} >= wanted or time.monotonic() > deadline:
                return got
            time.sleep(0.01)

    def stop_answering(self, timeout: float = 2.0):
        """Misses are read but no longer answered. An answer under way gets
        its ack first (unless the back end keeps it past ``timeout``), so
        :attr:`updates` counts every update the back end applied."""
        acquired = self.lock.acquire(timeout=timeout)
        self._closing = True
        if acquired:
            self.lock.release()

    def close(self, timeout: float = 5.0):
        """After the front end hung up: the back end closes its end with the
        session; every miss it sent before is read by then."""
        self._closing = True
        if self._thread is not None:
            self.channel_closed.wait(timeout)
        if self._chan is not None:
            with contextlib.suppress(OSError):
                self._chan.shutdown(socket.SHUT_RDWR)
            if self._thread is not None:
                self._thread.join(timeout)
            self._chan.close()
            self._chan = None


# -------------------------------------------------------------------- front end

DEFAULT_FEATURES = bit(F_VERSION_1) | bit(F_PROTOCOL_FEATURES)
DEFAULT_PROTOCOL_FEATURES = bit(PF_MQ) | bit(PF_REPLY_ACK)


class FrontEnd(VhostUserClient):
    """A guest with queue pair 0: memory, rings, buffers, and the
    handshake of DPDK's virtio-user (``start()``).

    Each ring gets ``queue_size`` buffers of ``buf_size`` bytes (default
    :data:`BUF_SIZE`: a header and a 1514-byte frame; more for GSO frames
    without MRG_RXBUF), buffer *i* belonging to descriptor (split) or buffer
    id (packed) *i*.

    With ``iommu`` (an :class:`IommuLayout`) the guest sits behind a
    virtual IOMMU (:attr:`iommu`, an :class:`Iommu`): ACCESS_PLATFORM and
    BACKEND_REQ (with REPLY_ACK) are negotiated, the request channel is
    handed over after the protocol features, each ring area gets I/O
    virtual addresses of its own (SET_VRING_ADDR) and the buffers are laid
    out in I/O virtual space as the layout says; descriptors carry IOVAs.
    Nothing is translated for the back end before it asks.
    """

    def __init__(self, path: str, *, features: int = DEFAULT_FEATURES,
                 protocol_features: int = DEFAULT_PROTOCOL_FEATURES, queue_size: int = 256,
                 mem_size: int = 4 << 20, gpa: int = DEFAULT_GPA, tag: str = "guest",
                 timeout: float = 5.0, buf_size: int = BUF_SIZE,
                 iommu: Optional[IommuLayout] = None):
        super().__init__(path, timeout)
        self.features = features
        self.protocol_features = protocol_features
        self.buf_size = buf_size
        self.mem = GuestMemory(mem_size, gpa=gpa, tag=tag)
        ring_cls = PackedRing if features & bit(F_RING_PACKED) else SplitRing
        self.rings = [ring_cls(self.mem, i, queue_size) for i in (RX_RING, TX_RING)]
        self.iommu: Optional[Iommu] = None
        self.ring_iovas: Dict[int, Dict[str, int]] = {}
        if iommu is None:
            self.bufs = [[self.mem.alloc(buf_size) for _ in range(queue_size)]
                         for _ in self.rings]
        else:
            self._behind_iommu(iommu, queue_size)
        self.free = [list(range(queue_size)) for _ in self.rings]
        self.rx_posted = False

    def _behind_iommu(self, layout: IommuLayout, queue_size: int):
        self.features |= bit(F_ACCESS_PLATFORM)
        self.protocol_features |= bit(PF_BACKEND_REQ) | bit(PF_REPLY_ACK)
        self.iommu = Iommu(self.mem)
        for ring in self.rings:
            if ring.packed:
                areas = dict(desc=(ring.desc, 16 * ring.size), avail=(ring.driver_event, 4),
                             used=(ring.device_event, 4))
            else:
                areas = dict(desc=(ring.desc, 16 * ring.size),
                             avail=(ring.avail, 6 + 2 * ring.size),
                             used=(ring.used, 6 + 8 * ring.size))
            self.ring_iovas[ring.index] = {k: self.iommu.expose(off, n)
                                           for k, (off, n) in areas.items()}
        stride = layout.stride or self.buf_size
        rng = random.Random(layout.scatter) if layout.scatter is not None else None
        self.bufs = []
        for _ in self.rings:
            base = self.iommu.alloc(stride * queue_size, lead=layout.lead, rng=rng)
            self.bufs.append([base + i * stride for i in range(queue_size)])

    @property
    def rx(self):
        return self.rings[RX_RING]

    @property
    def tx(self):
        return self.rings[TX_RING]

    @property
    def hdr_len(self) -> int:
        return 12 if self.features & (bit(F_VERSION_1) | bit(F_MRG_RXBUF)) else 10

    # -------------------------------------------------------------- handshake

    def negotiate(self):
        """SET_OWNER and feature negotiation, as virtio-user's device init."""
        self.send(Req.SET_OWNER)
        offered = self.get_u64(Req.GET_FEATURES)
        if self.features & ~offered:
            raise Refused(f"features 0x{self.features:x} not all offered (0x{offered:x})")
        if self.features & bit(F_PROTOCOL_FEATURES):
            self.get_u64(Req.GET_PROTOCOL_FEATURES)
            # No ack for this one: REPLY_ACK is not on before it arrives.
            self.send(Req.SET_PROTOCOL_FEATURES, pack_u64(self.protocol_features))
            self.get_u64(Req.GET_QUEUE_NUM)
            if self.iommu is not None and self.protocol_features & bit(PF_BACKEND_REQ):
                # as QEMU: the back end's channel right after the protocol features
                fd = self.iommu.open_channel(self)
                try:
                    self.checked(Req.SET_BACKEND_REQ_FD, b"", [fd])
                finally:
                    os.close(fd)

    def prepare(self, regions: Optional[Sequence[Region]] = None) -> "FrontEnd":
        """Everything before the rings, in virtio-user's order: negotiation,
        call fds, SET_FEATURES, SET_MEM_TABLE (one region for all of guest
        memory unless ``regions`` cut it up; with PROTOCOL_F_CONFIGURE_MEM_SLOTS
        one ADD_MEM_REG each instead)."""
        self.negotiate()
        for ring in self.rings:
            self.checked(Req.SET_VRING_CALL, pack_u64(ring.index), [ring.callfd])
        self.checked(Req.SET_FEATURES, pack_u64(self.features))
        regions = [self.mem.region()] if regions is None else regions
        if self.protocol_features & bit(PF_CONFIGURE_MEM_SLOTS):
            # as QEMU does: one ADD_MEM_REG per region, no SET_MEM_TABLE
            self.max_mem_slots = self.get_u64(Req.GET_MAX_MEM_SLOTS)
            for region in regions:
                self.add_region(region)
        else:
            self.checked(Req.SET_MEM_TABLE, pack_mem_table(regions), [self.mem.fd] * len(regions))
        return self

    def add_region(self, region: Region):
        self.checked(Req.ADD_MEM_REG, pack_mem_reg(region), [self.mem.fd])

    def remove_region(self, region: Region):
        self.checked(Req.REM_MEM_REG, pack_mem_reg(region))

    def ring_addr(self, ring, **override) -> bytes:
        """SET_VRING_ADDR payload of ``ring``: front-end addresses, or IOVAs
        behind the IOMMU (``override`` replaces fields)."""
        return ring.addr_payload(**{**self.ring_iovas.get(ring.index, {}), **override})

    def set_up_ring(self, ring, **addr):
        """NUM, BASE, ADDR (``addr`` overrides fields, e.g. flags and log), KICK."""
        self.checked(Req.SET_VRING_NUM, pack_state(ring.index, ring.size))
        self.checked(Req.SET_VRING_BASE, pack_state(ring.index, ring.base()))
        self.checked(Req.SET_VRING_ADDR, self.ring_addr(ring, **addr))
        self.checked(Req.SET_VRING_KICK, pack_u64(ring.index), [ring.kickfd])

    def enable(self):
        if self.features & bit(F_PROTOCOL_FEATURES):
            for ring in self.rings:
                self.checked(Req.SET_VRING_ENABLE, pack_state(ring.index, 1))

    def start(self, post_rx: bool = True, regions: Optional[Sequence[Region]] = None
              ) -> "FrontEnd":
        """Queue pair 0 up as virtio-user brings it up: :meth:`prepare`, then
        each ring (NUM, BASE, ADDR, KICK), then both rings enabled."""
        self.prepare(regions)
        for ring in self.rings:
            self.set_up_ring(ring)
        self.enable()
        if post_rx:
            self.post_rx_buffers()
        return self

    # ------------------------------------------------------------ data path

    def buf(self, ring_index: int, buf_id: int) -> int:
        """Offset of buffer ``buf_id`` of a ring in guest memory (its IOVA
        behind the IOMMU)."""
        return self.bufs[ring_index][buf_id]

    def buf_addr(self, ring_index: int, buf_id: int) -> int:
        """What a descriptor says for the buffer: its guest physical
        address, or its IOVA behind the IOMMU."""
        b = self.bufs[ring_index][buf_id]
        return b if self.iommu is not None else self.mem.gpa(b)

    def write_buf(self, ring_index: int, buf_id: int, data: bytes):
        b = self.bufs[ring_index][buf_id]
        if self.iommu is not None:
            self.iommu.write(b, data)
        else:
            self.mem.write(b, data)

    def read_buf(self, ring_index: int, buf_id: int, nbytes: int) -> bytes:
        b = self.bufs[ring_index][buf_id]
        return self.iommu.read(b, nbytes) if self.iommu is not None else self.mem.read(b, nbytes)

    def post_rx(self, buf_id: int):
        """RX buffer ``buf_id`` goes to the back end, writable."""
        self.rx.submit(buf_id, self.buf_addr(RX_RING, buf_id), self.buf_size, writable=True)

    def post_rx_buffers(self):
        """Every free RX buffer goes to the back end, writable."""
        while self.free[RX_RING]:
            self.post_rx(self.free[RX_RING].pop())
        self.rx_posted = True

    def _reclaim_tx(self) -> int:
        done = self.tx.completed()
        self.free[TX_RING].extend(buf_id for buf_id, _ in done)
        return len(done)

    def send_frames(self, frames: Sequence[bytes], hdr: Optional[bytes] = None,
                    timeout: float = 10.0):
        """Each frame, after a virtio-net header (``hdr``, default all zero),
        in one buffer of the guest TX ring; returns once the back end has
        completed them all."""
        hdr = bytes(self.hdr_len) if hdr is None else hdr
        deadline = time.monotonic() + timeout
        in_flight = 0
        for frame in frames:
            while not self.free[TX_RING]:
                in_flight -= self._reclaim_tx()
                if time.monotonic() > deadline:
                    raise TimeoutError("the back end does not complete TX buffers")
                time.sleep(0.001)
            b = self.free[TX_RING].pop()
            data = hdr + frame
            if len(data) > self.buf_size:
                raise ValueError(f"a {len(frame)}-byte frame and its header do not fit a "
                                 f"{self.buf_size}-byte buffer")
            self.write_buf(TX_RING, b, data)
            self.tx.submit(b, self.buf_addr(TX_RING, b), len(data), writable=False)
            in_flight += 1
        self.tx.kick()
        while in_flight > 0:
            in_flight -= self._reclaim_tx()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{in_flight} TX buffers not completed after {timeout}s")
            time.sleep(0.001)

    def receive(self, count: int, timeout: float = 10.0, quiet: float = 0.0) -> List[bytes]:
        """Frames from the guest RX ring (headers stripped), reposting each
        buffer: wait for ``count`` of them, then ``quiet`` seconds more to
        catch extras.  Returns what arrived, possibly fewer."""
        return [frame for _, frame in self.receive_with_headers(count, timeout, quiet)]

    def receive_with_headers(self, count: int, timeout: float = 10.0, quiet: float = 0.0
                             ) -> List[Tuple[NetHdr, bytes]]:
        """:meth:`receive`, each frame with the virtio-net header the back
        end wrote before it (one buffer per frame: no MRG_RXBUF)."""
        frames: List[Tuple[NetHdr, bytes]] = []
        deadline = time.monotonic() + timeout
        extra_until = None
        while True:
            for buf_id, length in self.rx.completed():
                data = self.read_buf(RX_RING, buf_id, length)
                frames.append((NetHdr.parse(data[:self.hdr_len]), data[self.hdr_len:]))
                self.post_rx(buf_id)
            now = time.monotonic()
            if len(frames) >= count and extra_until is None:
                extra_until = now + quiet
            if (extra_until is not None and now >= extra_until) or now > deadline:
                return frames
            time.sleep(0.001)

    def drain(self, quiet: float = 0.05) -> List[bytes]:
        """Whatever frames are waiting in the guest RX ring."""
        return self.receive(0, timeout=quiet, quiet=quiet)

    def close(self):
        if self.iommu is not None:
            self.iommu.stop_answering()
            # wakes the miss thread if it still waits for an answer here
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.iommu.close()
        super().close()
        for ring in self.rings:
            ring.close()
        self.mem.close()
