#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes the seed corpora of the libFuzzer harnesses (fuzz/corpus/<harness>/)
and the message harness's dictionary (fuzz/fuzz_vhu_msg.dict).

The seeds are small well-formed inputs in each harness's input format (see
the comment at the top of each fuzz_vhu_*.c and fuzz_ring.h): complete
set-ups as QEMU and virtio-user send them, rings with frames to receive and
buffers to fill, headers and frames of each kind. Run again after changing an
input format; the output does not depend on anything but this file:

    /usr/bin/python3 fuzz/make-seeds.py
"""
import hashlib
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v):
    return struct.pack('<B', v)


def u16(v):
    return struct.pack('<H', v)


def u32(v):
    return struct.pack('<I', v)


def u64(v):
    return struct.pack('<Q', v)


# ---- lib/vhost definitions the inputs use ----

REQ = {
    'GET_FEATURES': 1, 'SET_FEATURES': 2, 'SET_OWNER': 3, 'RESET_OWNER': 4,
    'SET_MEM_TABLE': 5, 'SET_LOG_BASE': 6, 'SET_LOG_FD': 7, 'SET_VRING_NUM': 8,
    'SET_VRING_ADDR': 9, 'SET_VRING_BASE': 10, 'GET_VRING_BASE': 11,
    'SET_VRING_KICK': 12, 'SET_VRING_CALL': 13, 'SET_VRING_ERR': 14,
    'GET_PROTOCOL_FEATURES': 15, 'SET_PROTOCOL_FEATURES': 16, 'GET_QUEUE_NUM': 17,
    'SET_VRING_ENABLE': 18, 'SEND_RARP': 19, 'NET_SET_MTU': 20, 'SET_BACKEND_REQ_FD': 21,
    'IOTLB_MSG': 22, 'POSTCOPY_ADVISE': 28,
    'POSTCOPY_LISTEN': 29, 'POSTCOPY_END': 30, 'GET_MAX_MEM_SLOTS': 36,
    'ADD_MEM_REG': 37, 'REM_MEM_REG': 38, 'SET_STATUS': 39, 'GET_STATUS': 40,
}
VERSION, NEED_REPLY = 0x1, 0x8
NOFD = 0x100

F = {
    'CSUM': 0, 'GUEST_CSUM': 1, 'MTU': 3, 'GUEST_TSO4': 7, 'GUEST_TSO6': 8,
    'HOST_TSO4': 11, 'HOST_TSO6': 12, 'MRG_RXBUF': 15, 'CTRL_VQ': 17,
    'GUEST_ANNOUNCE': 21, 'MQ': 22, 'LOG_ALL': 26, 'ANY_LAYOUT': 27,
    'INDIRECT_DESC': 28, 'EVENT_IDX': 29, 'PROTOCOL_FEATURES': 30, 'VERSION_1': 32,
    'ACCESS_PLATFORM': 33, 'RING_PACKED': 34, 'IN_ORDER': 35,
}
PF = {'MQ': 0, 'LOG_SHMFD': 1, 'RARP': 2, 'REPLY_ACK': 3, 'NET_MTU': 4, 'BACKEND_REQ': 5,
      'PAGEFAULT': 8, 'CONFIGURE_MEM_SLOTS': 15, 'STATUS': 16}
# IOTLB_MSG: access and message type (struct vhost_iotlb_msg)
IOTLB_RO, IOTLB_WO, IOTLB_RW = 1, 2, 3
IOTLB_MISS, IOTLB_UPDATE, IOTLB_INVALIDATE = 1, 2, 3


def bits(table, *names):
    v = 0
    for n in names:
        v |= 1 << table[n]
    return v


DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
PACKED_AVAIL, PACKED_USED = 1 << 7, 1 << 15
NEEDS_CSUM = 1
GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_ECN = 1, 3, 4, 0x80

# ---- frames: a virtio-net header and Ethernet/IP/L4 bytes ----


def csum16(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def ip4_frame(proto, payload_len, vlan=False):
    """Ethernet + IPv4 + TCP/UDP header (pseudo-header sum in the checksum field)."""
    l4_len = 20 if proto == 6 else 8
    total = 20 + l4_len + payload_len
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, total, 1, 0x4000, 64, proto, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    ip = ip[:10] + struct.pack('!H', 0xffff - csum16(ip)) + ip[12:]
    pseudo = csum16(ip[12:20] + struct.pack('!BBH', 0, proto, l4_len + payload_len))
    if proto == 6:
        l4 = struct.pack('!HHIIBBHHH', 40000, 5201, 1, 0, 0x50, 0x18, 65535, pseudo, 0)
    else:
        l4 = struct.pack('!HHHH', 40000, 4789, l4_len + payload_len, pseudo)
    eth = bytes.fromhex('525400123456525400abcdef')
    eth += bytes.fromhex('8100000a') if vlan else b''
    return eth + b'\x08\x00' + ip + l4 + bytes(i & 0xff for i in range(payload_len))


def ip6_frame(proto, payload_len):
    l4_len = 20 if proto == 6 else 8
    src = bytes([0xfd] + [0] * 14 + [1])
    dst = bytes([0xfd] + [0] * 14 + [2])
    ip = struct.pack('!IHBB', 6 << 28, l4_len + payload_len, proto, 64) + src + dst
    pseudo = csum16(src + dst + struct.pack('!IxxxB', l4_len + payload_len, proto))
    if proto == 6:
        l4 = struct.pack('!HHIIBBHHH', 40000, 5201, 1, 0, 0x50, 0x18, 65535, pseudo, 0)
    else:
        l4 = struct.pack('!HHHH', 40000, 4789, l4_len + payload_len, pseudo)
    eth = bytes.fromhex('525400123456525400abcdef86dd')
    return eth + ip + l4 + bytes(i & 0xff for i in range(payload_len))


def net_hdr(flags=0, gso=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0,
            num_buffers=None):
    h = struct.pack('<BBHHHH', flags, gso, hdr_len, gso_size, csum_start, csum_offset)
    return h if num_buffers is None else h + u16(num_buffers)


# ---- fz_read_frame: an application's frame for an enqueue burst ----

KIND = {'eth': 0, 'tcp4': 1, 'udp4': 2, 'tcp6': 3, 'udp6': 4}
ASK_L4, ASK_TSO, ASK_IP, ASK_SHARED, ASK_SHARED_TAIL = 0x08, 0x10, 0x20, 0x40, 0x80


def app_frame(kind, length, seg=31, ask=0, mss=None):
    b = u8(KIND[kind] | ask) + u16(length) + u8(seg)
    if (ask & ASK_TSO) and kind in ('tcp4', 'tcp6'):
        b += u16(mss)
    return b


def enqueue_spec(*frames):
    return u8(len(frames)) + b''.join(frames)


# ---- fuzz_vhu_msg ----

MSG_OP_MESSAGE, MSG_OP_POKE, MSG_OP_BURST, MSG_OP_HANG_UP, MSG_OP_TRUNCATE = 0, 5, 6, 7, 8
MSG_OPS = 9
FILE_SIZE = [0x10000, 0x10000, 0x2000, 0x100000]
FD_EVENT = 4
FD_CHANNEL = 5      # a socketpair: the back end's request channel, read by the harness


def msg(request, payload=b'', fds=(), flags=VERSION | NEED_REPLY, size=None):
    if isinstance(request, str):
        request = REQ[request]
    return (u8(MSG_OP_MESSAGE) + u32(request) + u32(flags) +
            u32(len(payload) if size is None else size) + u8(len(fds)) +
            b''.join(u8(k) for k in fds) + payload)


def poke(file, off, data):
    return u8(MSG_OP_POKE) + u8(file) + u32(off) + u8(len(data)) + data


def truncate(file, size):
    return u8(MSG_OP_TRUNCATE) + u8(file) + u32(size)


def on_zero_copy_port(seed):
    """A first byte of 128 or more runs the input on the zero-copy port; same operation."""
    assert seed[0] < MSG_OPS
    return bytes([seed[0] + MSG_OPS * 15]) + seed[1:]


# fz_rx_offloads: what the application takes of what guests leave to us
RX_CKSUM, RX_LRO, RX_LEGACY = 0x01, 0x02, 0x04


def burst_dequeue(ring, count, rx=0):
    return u8(MSG_OP_BURST) + u8(ring) + u8(0) + u8(count) + u8(rx)


def burst_enqueue(ring, *frames):
    return u8(MSG_OP_BURST) + u8(ring) + u8(1) + enqueue_spec(*frames)


def mem_table(*regions):
    """regions: (gpa, size, uaddr, offset, file)"""
    body = u32(len(regions)) + u32(0)
    for gpa, size, uaddr, off, _ in regions:
        body += u64(gpa) + u64(size) + u64(uaddr) + u64(off)
    return msg('SET_MEM_TABLE', body, fds=[r[4] for r in regions])


def mem_reg(request, region):
    """ADD_MEM_REG (with the region's file) or REM_MEM_REG (without) of one region."""
    gpa, size, uaddr, off, file = region
    body = u64(0) + u64(gpa) + u64(size) + u64(uaddr) + u64(off)
    return msg(request, body, fds=[file] if request == 'ADD_MEM_REG' else [])


def state(request, index, num):
    return msg(request, u32(index) + u32(num))


def ring_fd(request, index, fd=FD_EVENT):
    if fd is None:
        return msg(request, u64(index | NOFD))
    return msg(request, u64(index), fds=[fd])


def vring_addr(index, desc, avail, used, log=0, flags=0):
    return msg('SET_VRING_ADDR', u32(index) + u32(flags) + u64(desc) + u64(used) +
               u64(avail) + u64(log))


UADDR = 0x7f0000000000


IOVA = 0x40000000          # ring areas behind the vIOMMU
BUF_IOVA = 0x50000000      # buffers behind the vIOMMU


def iotlb(iova, size, uaddr, perm, type_):
    return msg('IOTLB_MSG', u64(iova) + u64(size) + u64(uaddr) + u8(perm) + u8(type_) +
               bytes(6))


def msg_ring_setup(index, size, desc_off, avail_off, used_off, base=0, packed=False,
                   at=UADDR):
    out = state('SET_VRING_NUM', index, size)
    out += state('SET_VRING_BASE', index, base)
    out += vring_addr(index, at + desc_off, at + avail_off, at + used_off)
    out += ring_fd('SET_VRING_CALL', index)
    out += ring_fd('SET_VRING_KICK', index)
    out += state('SET_VRING_ENABLE', index, 1)
    return out


def msg_seeds():
    feats = bits(F, 'VERSION_1', 'MRG_RXBUF', 'EVENT_IDX', 'INDIRECT_DESC', 'CSUM',
                 'GUEST_CSUM', 'HOST_TSO4', 'GUEST_TSO4', 'PROTOCOL_FEATURES', 'MQ',
                 'CTRL_VQ', 'MTU')
    pfeats = bits(PF, 'MQ', 'REPLY_ACK', 'NET_MTU', 'LOG_SHMFD', 'RARP')
    hello = (msg('GET_FEATURES') + msg('GET_PROTOCOL_FEATURES') +
             msg('SET_PROTOCOL_FEATURES', u64(pfeats)) + msg('GET_QUEUE_NUM') +
             msg('SET_OWNER'))
    region = (0, 0x10000, UADDR, 0, 0)
    seeds = {}

    # QEMU-like split set-up of both rings of pair 0, a frame each way.
    frame = net_hdr(num_buffers=0) + ip4_frame(6, 32)
    s = hello + msg('SET_FEATURES', u64(feats)) + mem_table(region)
    s += msg_ring_setup(0, 256, 0x0000, 0x1000, 0x2000)
    s += msg_ring_setup(1, 256, 0x4000, 0x5000, 0x6000)
    # ring 1: descriptor 0 -> buffer at 0x8000, avail ring[0] = 0, avail idx = 1
    s += poke(0, 0x4000, u64(0x8000) + u32(len(frame)) + u16(0) + u16(0))
    s += poke(0, 0x8000, frame)
    s += poke(0, 0x5000, u16(0) + u16(1) + u16(0))
    s += burst_dequeue(1, 32)
    # ring 0: a writable 2 KiB buffer for one frame
    s += poke(0, 0x0000, u64(0x9000) + u32(2048) + u16(DESC_F_WRITE) + u16(0))
    s += poke(0, 0x1000, u16(0) + u16(1) + u16(0))
    s += burst_enqueue(0, app_frame('tcp4', 200, ask=ASK_L4))
    seeds['split-setup'] = s + state('GET_VRING_BASE', 0, 0) + state('GET_VRING_BASE', 1, 0)

    # The front end takes ring 1's pages away under the running ring.
    seeds['truncated'] = s + truncate(0, 0x4000) + burst_dequeue(1, 32) + msg('GET_FEATURES')

    # Zero-copy port (first byte 128 or more): a big frame kept past a ring
    # stop and the disconnect.
    big = net_hdr(num_buffers=0) + ip4_frame(6, 600)
    s = hello + msg('SET_FEATURES', u64(feats)) + mem_table(region)
    s += msg_ring_setup(1, 256, 0x4000, 0x5000, 0x6000)
    s += poke(0, 0x4000, u64(0x8000) + u32(len(big)) + u16(0) + u16(0))
    s += poke(0, 0x8000, big[:255]) + poke(0, 0x5000, u16(0) + u16(1) + u16(0))
    s += burst_dequeue(1, 0x80 | 32) + state('GET_VRING_BASE', 1, 0) + msg('GET_FEATURES')
    seeds['zero-copy'] = on_zero_copy_port(s)

    # Packed rings, virtio-user style base (slot 0, wrap counter 1).
    pk = feats | bits(F, 'RING_PACKED')
    s = hello + msg('SET_FEATURES', u64(pk)) + mem_table(region)
    s += msg_ring_setup(0, 256, 0x0000, 0x1000, 0x1040, base=0x8000)
    s += msg_ring_setup(1, 256, 0x4000, 0x5000, 0x5040, base=0x8000)
    s += poke(0, 0x4000, u64(0x8000) + u32(len(frame)) + u16(7) + u16(PACKED_AVAIL))
    s += poke(0, 0x8000, frame)
    s += burst_dequeue(1, 32)
    s += poke(0, 0x0000, u64(0x9000) + u32(2048) + u16(3) +
              u16(PACKED_AVAIL | DESC_F_WRITE))
    s += burst_enqueue(0, app_frame('udp4', 100))
    s += state('GET_VRING_BASE', 1, 0)
    seeds['packed-setup'] = s

    # Legacy front end: no protocol features, rings start enabled.
    legacy = bits(F, 'MRG_RXBUF', 'CSUM', 'GUEST_CSUM')
    s = msg('GET_FEATURES', flags=VERSION) + msg('SET_OWNER', flags=VERSION)
    s += msg('SET_FEATURES', u64(legacy), flags=VERSION) + mem_table(region)
    for i, base_off in ((0, 0), (1, 0x4000)):
        s += state('SET_VRING_NUM', i, 64) + state('SET_VRING_BASE', i, 0)
        s += vring_addr(i, UADDR + base_off, UADDR + base_off + 0x1000,
                        UADDR + base_off + 0x2000)
        s += ring_fd('SET_VRING_KICK', i)
    s += burst_dequeue(1, 8) + msg('RESET_OWNER', flags=VERSION)
    seeds['legacy'] = s

    # Migration: dirty log, LOG_ALL, logged used ring, RARP, then a second table.
    s = hello + msg('SET_FEATURES', u64(feats | bits(F, 'LOG_ALL')))
    s += mem_table(region, (0x100000, 0x2000, UADDR + 0x100000, 0, 2))
    s += msg('SET_LOG_BASE', u64(0x1000) + u64(0), fds=[3]) + msg('SET_LOG_FD', fds=[FD_EVENT])
    s += state('SET_VRING_NUM', 0, 128) + state('SET_VRING_BASE', 0, 0)
    s += vring_addr(0, UADDR, UADDR + 0x1000, UADDR + 0x2000, log=0x2000, flags=1)
    s += ring_fd('SET_VRING_CALL', 0, None) + ring_fd('SET_VRING_ERR', 0)
    s += ring_fd('SET_VRING_KICK', 0) + state('SET_VRING_ENABLE', 0, 1)
    s += poke(0, 0x0000, u64(0x9000) + u32(4096) + u16(DESC_F_WRITE) + u16(0))
    s += poke(0, 0x1000, u16(0) + u16(1) + u16(0))
    s += burst_enqueue(0, app_frame('eth', 60), app_frame('tcp6', 3000, ask=ASK_TSO,
                                                          mss=1400))
    s += msg('SEND_RARP', bytes.fromhex('525400abcdef0000')) + burst_dequeue(1, 1)
    s += msg('NET_SET_MTU', u64(9000)) + msg('SET_STATUS', u64(0x0f)) + msg('GET_STATUS')
    s += mem_table((0, 0x10000, UADDR, 0, 1), (0x10000, 0x1000, UADDR + 0x10000, 0x1000, 2))
    s += burst_enqueue(0, app_frame('udp4', 1500, ask=ASK_L4 | ASK_IP))
    s += u8(MSG_OP_HANG_UP) + msg('GET_FEATURES')
    seeds['migration'] = s

    # Second queue pair, the highest ring, and refusals that keep the connection.
    s = hello + msg('SET_FEATURES', u64(feats)) + mem_table((0, 0x100000, UADDR, 0, 3))
    s += msg_ring_setup(3, 1024, 0x10000, 0x20000, 0x30000)
    s += state('SET_VRING_NUM', 2, 3) + state('SET_VRING_ENABLE', 2, 2)
    s += msg('SET_FEATURES', u64(1 << 63)) + msg('NET_SET_MTU', u64(10))
    s += burst_dequeue(3, 4)
    seeds['queue-pair-1'] = s

    # Memory slots: regions added one by one under running rings, the one
    # holding ring 1 removed and added back, one removed that is not there.
    slots = pfeats | bits(PF, 'CONFIGURE_MEM_SLOTS', 'STATUS')
    lo, hi = (0, 0x8000, UADDR, 0, 0), (0x8000, 0x8000, UADDR + 0x8000, 0x8000, 0)
    s = (msg('GET_FEATURES') + msg('GET_PROTOCOL_FEATURES') +
         msg('SET_PROTOCOL_FEATURES', u64(slots)) + msg('GET_MAX_MEM_SLOTS') +
         msg('SET_FEATURES', u64(feats)) + mem_reg('ADD_MEM_REG', lo) +
         mem_reg('ADD_MEM_REG', hi))
    s += msg_ring_setup(1, 256, 0x4000, 0x5000, 0x6000)
    s += poke(0, 0x4000, u64(0x9000) + u32(len(frame)) + u16(0) + u16(0))
    s += poke(0, 0x9000, frame) + poke(0, 0x5000, u16(0) + u16(1) + u16(0))
    s += mem_reg('REM_MEM_REG', lo) + burst_dequeue(1, 32) + mem_reg('ADD_MEM_REG', lo)
    s += burst_dequeue(1, 32) + mem_reg('REM_MEM_REG', (0x10000, 0x1000, UADDR, 0, 0))
    s += mem_reg('ADD_MEM_REG', (0x4000, 0x1000, UADDR + 0x20000, 0, 1))
    seeds['mem-slots'] = s + msg('SET_STATUS', u64(0)) + msg('GET_STATUS')

    # Postcopy destination: a table answered, acknowledged, a burst on it, the end;
    # then a table answered and a request instead of the acknowledgement.
    pc = pfeats | bits(PF, 'PAGEFAULT')
    s = (msg('GET_FEATURES') + msg('GET_PROTOCOL_FEATURES') +
         msg('SET_PROTOCOL_FEATURES', u64(pc)) + msg('POSTCOPY_ADVISE') +
         msg('POSTCOPY_LISTEN') + msg('SET_FEATURES', u64(feats)) + mem_table(region) +
         msg('SET_MEM_TABLE', u64(0)))
    s += msg_ring_setup(1, 256, 0x4000, 0x5000, 0x6000)
    s += poke(0, 0x4000, u64(0x9000) + u32(len(frame)) + u16(0) + u16(0))
    s += poke(0, 0x9000, frame) + poke(0, 0x5000, u16(0) + u16(1) + u16(0))
    s += burst_dequeue(1, 32) + msg('POSTCOPY_END')
    s += msg('POSTCOPY_ADVISE') + msg('POSTCOPY_LISTEN') + mem_reg('ADD_MEM_REG', region)
    seeds['postcopy'] = s + msg('GET_FEATURES')

    # Behind a vIOMMU: the request channel, ring 1's areas translated up
    # front and ring 0's on request; a TX buffer and an RX buffer (across two
    # I/O pages landing on pages apart) missed, then translated; the RX
    # buffers invalidated and missed again, ring 0's descriptors invalidated
    # under a waiting frame; refusals that keep the connection.
    iommu = pfeats | bits(PF, 'BACKEND_REQ')
    s = (msg('GET_FEATURES') + msg('GET_PROTOCOL_FEATURES') +
         msg('SET_PROTOCOL_FEATURES', u64(iommu)) + msg('GET_QUEUE_NUM') + msg('SET_OWNER') +
         msg('SET_BACKEND_REQ_FD', fds=[FD_CHANNEL]) +
         msg('SET_FEATURES', u64(feats | bits(F, 'ACCESS_PLATFORM'))) + mem_table(region))
    s += iotlb(IOVA + 0x4000, 0x3000, UADDR + 0x4000, IOTLB_RW, IOTLB_UPDATE)
    s += msg_ring_setup(0, 256, 0x0000, 0x1000, 0x2000, at=IOVA)
    s += msg_ring_setup(1, 256, 0x4000, 0x5000, 0x6000, at=IOVA)
    s += iotlb(IOVA, 0x3000, UADDR, IOTLB_RW, IOTLB_UPDATE)
    s += poke(0, 0x4000, u64(BUF_IOVA) + u32(len(frame)) + u16(0) + u16(0))
    s += poke(0, 0x8000, frame) + poke(0, 0x5000, u16(0) + u16(1) + u16(0))
    s += burst_dequeue(1, 32)
    s += iotlb(BUF_IOVA, 0x1000, UADDR + 0x8000, IOTLB_RO, IOTLB_UPDATE) + burst_dequeue(1, 32)
    rx_iova = BUF_IOVA + 0x1c00
    s += poke(0, 0x0000, u64(rx_iova) + u32(2048) + u16(DESC_F_WRITE) + u16(0))
    s += poke(0, 0x0010, u64(rx_iova) + u32(2048) + u16(DESC_F_WRITE) + u16(0))
    s += poke(0, 0x1000, u16(0) + u16(1) + u16(0))
    s += burst_enqueue(0, app_frame('tcp4', 1400, ask=ASK_L4))
    s += iotlb(BUF_IOVA + 0x1000, 0x1000, UADDR + 0xb000, IOTLB_RW, IOTLB_UPDATE)
    s += iotlb(BUF_IOVA + 0x2000, 0x1000, UADDR + 0x9000, IOTLB_WO, IOTLB_UPDATE)
    s += iotlb(BUF_IOVA + 0x1000, 0x2000, 0, 0, IOTLB_INVALIDATE)
    s += poke(0, 0x1002, u16(2) + u16(1)) + burst_enqueue(0, app_frame('udp4', 300))
    s += iotlb(IOVA, 0x1000, 0, 0, IOTLB_INVALIDATE) + burst_enqueue(0, app_frame('eth', 60))
    s += iotlb(IOVA, 0x3000, UADDR, IOTLB_RW, IOTLB_UPDATE)
    s += iotlb(0, 0x1000, UADDR + 0x100000, IOTLB_RW, IOTLB_UPDATE)
    s += iotlb(0, 0x1000, 0, IOTLB_RW, IOTLB_MISS)
    s += state('GET_VRING_BASE', 0, 0) + state('GET_VRING_BASE', 1, 0)
    seeds['iommu'] = s

    # Messages the validation refuses (each hangs up).
    s = msg(99) + msg('GET_FEATURES', flags=VERSION | 0x4) + msg('SET_FEATURES', u32(1))
    s += msg('SET_VRING_KICK', u64(0)) + state('SET_VRING_NUM', 4, 256)
    s += msg('SET_MEM_TABLE', u32(9) + u32(0), size=8)
    seeds['refused'] = s
    return seeds


def msg_dict():
    entries = []
    for name, code in sorted(REQ.items(), key=lambda kv: kv[1]):
        entries.append((name.lower(), u32(code)))
    entries += [
        ('flags_need_reply', u32(VERSION | NEED_REPLY)), ('flags_plain', u32(VERSION)),
        ('size_u64', u32(8)), ('size_state', u32(8)), ('size_addr', u32(40)),
        ('size_log', u32(16)), ('size_mem1', u32(40)), ('size_mem2', u32(72)),
        ('mem_slots', u64(1 << PF['CONFIGURE_MEM_SLOTS'])), ('status', u64(1 << PF['STATUS'])),
        ('pagefault', u64(1 << PF['PAGEFAULT'])),
        ('nofd', u64(NOFD)), ('packed', u64(1 << F['RING_PACKED'])),
        ('version_1', u64(1 << F['VERSION_1'])),
        ('protocol_features', u64(1 << F['PROTOCOL_FEATURES'])),
        ('log_all', u64(1 << F['LOG_ALL'])), ('reply_ack', u64(1 << PF['REPLY_ACK'])),
        ('wrap_base', u32(0x8000)), ('uaddr', u64(UADDR)),
        ('access_platform', u64(1 << F['ACCESS_PLATFORM'])),
        ('backend_req', u64(1 << PF['BACKEND_REQ'])), ('size_iotlb', u32(32)),
        ('iotlb_update_rw', u8(IOTLB_RW) + u8(IOTLB_UPDATE)),
        ('iotlb_update_wo', u8(IOTLB_WO) + u8(IOTLB_UPDATE)),
        ('iotlb_invalidate', u8(0) + u8(IOTLB_INVALIDATE)), ('iova', u64(IOVA)),
        ('fd_channel', u8(FD_CHANNEL)),
    ]
    lines = ['# vhost-user words for fuzz_vhu_msg (generated by fuzz/make-seeds.py)']
    for name, b in entries:
        lines.append('%s="%s"' % (name, ''.join('\\x%02x' % c for c in b)))
    return '\n'.join(lines) + '\n'


# ---- fuzz_vhu_split and fuzz_vhu_packed (fuzz_ring.h) ----

CFG_BITS = ['MRG_RXBUF', 'EVENT_IDX', 'IN_ORDER', 'INDIRECT_DESC', 'VERSION_1', 'CSUM',
            'GUEST_CSUM', 'GUEST_TSO4', 'GUEST_TSO6', 'HOST_TSO4', 'HOST_TSO6',
            'PROTOCOL_FEATURES', 'LOG_ALL', 'CALLFD', 'BASE', 'ZERO_COPY']
RING_OP_WRITE, RING_OP_DEQ, RING_OP_ENQ, RING_OP_CTL, RING_OP_LAYOUT = 0, 1, 2, 3, 4
CTL = {'restart': 0, 'enable': 1, 'mem_table': 2, 'num': 3, 'base': 4, 'features': 5,
       'rarp': 6, 'call': 7}
POST_WRITE, POST_INDIRECT, POST_END, POST_BYTES = 0x01, 0x02, 0x04, 0x80
BUF = 0x8000          # buffers in region 0 from here
REGION1 = 0x10000     # adjacent region


def cfg(*names):
    v = 0
    for n in names:
        v |= 1 << CFG_BITS.index(n)
    return v


def ring_config(config, size_param, base=0, used_idx=0, log_gpa=0x5000):
    return u16(config) + u16(size_param) + u16(base) + u16(used_idx) + u32(log_gpa)


def post_desc(addr, length, how=0, contents=None):
    b = u64(addr) + u32(length)
    if contents is None:
        return b + u8(how)
    return b + u8(how | POST_BYTES) + u8(len(contents)) + contents


def ctl(name, *args):
    return u8(RING_OP_CTL) + u8(CTL[name]) + b''.join(args)


HOLD = 0x80          # fz_dequeue: keep the mbufs


def deq(count=32, rx=0):
    return u8(RING_OP_DEQ) + u8(count) + u8(rx)


def release(*picks):
    """fz_dequeue: free kept mbufs, each picked by a byte."""
    return u8(RING_OP_DEQ) + u8(0x20 | (len(picks) - 1)) + u8(0) + bytes(picks)


def enq(*frames):
    return u8(RING_OP_ENQ) + enqueue_spec(*frames)


def tx_frames():
    """(header, frame) pairs a guest sends: plain, checksum left to us, TSO."""
    tcp = ip4_frame(6, 100)
    return [
        (net_hdr(), ip4_frame(17, 18)),
        (net_hdr(NEEDS_CSUM, 0, 0, 0, 34, 16), tcp),
        (net_hdr(NEEDS_CSUM, GSO_TCPV4, 54, 40, 34, 16), tcp),
        (net_hdr(NEEDS_CSUM, 0, 0, 0, 54, 6), ip6_frame(17, 30)),
    ]


def ring_seeds(layout):
    packed = layout == 'packed'
    L = RING_OP_LAYOUT
    seeds = {}
    size_param = 7 if not packed else 127      # 128 entries either way

    def post(*descs, ctl_byte=0, table=None, buf_id=0):
        b = u8(L + 0) + u8(ctl_byte | (len(descs) - 1) | (0x08 if table is not None else 0))
        if table is not None:
            b += u32(table)
        if packed:
            b += u16(buf_id)
        return b + b''.join(descs)

    # Guest TX: frames of each kind, one descriptor each (12-byte headers).
    s = ring_config(cfg('VERSION_1', 'CSUM', 'HOST_TSO4', 'CALLFD'), size_param)
    for i, (h, f) in enumerate(tx_frames()):
        data = h + u16(0) + f      # VERSION_1: a 12-byte header
        s += post(post_desc(BUF + i * 0x400, len(data), 0, data[:255]), buf_id=i)
    seeds['tx-kinds'] = s + deq(32)
    # the same for an application that takes partial checksums and whole GSO frames,
    # and for one in DPDK's legacy convention
    seeds['tx-kinds-offloads'] = s + deq(32, RX_CKSUM | RX_LRO)
    seeds['tx-kinds-legacy'] = s + deq(32, RX_LEGACY)

    # Guest TX: header and frame in separate descriptors, a buffer across regions.
    frame = ip4_frame(6, 200)
    s = ring_config(cfg('VERSION_1', 'EVENT_IDX', 'CALLFD'), size_param)
    s += post(post_desc(BUF, 12, 0, bytes(12)), post_desc(BUF + 0x100, len(frame), 0,
                                                           frame[:255]), buf_id=1)
    s += u8(RING_OP_WRITE) + u32(REGION1 - 20) + u8(20) + frame[:20]
    s += post(post_desc(REGION1 - 32, 64 + 12, 0, bytes(12) + frame[:20]), buf_id=2)
    s += deq(32) + post(post_desc(BUF, 12 + 60, 0), buf_id=3) + deq(1)
    seeds['tx-chains'] = s

    # Guest TX through an indirect table.
    s = ring_config(cfg('VERSION_1', 'INDIRECT_DESC', 'IN_ORDER'), size_param)
    s += post(post_desc(BUF, 12, 0, bytes(12)), post_desc(BUF + 0x100, 64, 0,
                                                           ip4_frame(17, 22)),
              table=0x7000, buf_id=5)
    s += deq(32)
    seeds['tx-indirect'] = s

    # Guest RX without mergeable buffers: one writable buffer per frame.
    s = ring_config(cfg('VERSION_1', 'GUEST_CSUM', 'GUEST_TSO4', 'CALLFD', 'EVENT_IDX'),
                    size_param)
    for i in range(4):
        s += post(post_desc(BUF + i * 0x1000, 0x1000, POST_WRITE), buf_id=i)
    s += enq(app_frame('eth', 60), app_frame('tcp4', 1514, ask=ASK_L4),
             app_frame('tcp4', 3000, ask=ASK_TSO, mss=1448), app_frame('udp6', 9000))
    seeds['rx-simple'] = s

    # Guest RX with mergeable buffers, small ones, a frame over several.
    s = ring_config(cfg('MRG_RXBUF', 'VERSION_1', 'CALLFD', 'PROTOCOL_FEATURES'), size_param)
    for i in range(8):
        s += post(post_desc(BUF + i * 0x200, 0x200, POST_WRITE), buf_id=i)
    s += enq(app_frame('tcp4', 1400, seg=3, ask=ASK_L4 | ASK_IP),
             app_frame('udp4', 300, ask=ASK_L4 | ASK_SHARED_TAIL))
    s += enq(app_frame('tcp4', 4000, ask=ASK_TSO, mss=1000))
    seeds['rx-mergeable'] = s

    # Software segmentation for a guest without GUEST_TSO.
    s = ring_config(cfg('MRG_RXBUF', 'VERSION_1', 'GUEST_CSUM', 'CALLFD'), size_param)
    for i in range(16):
        s += post(post_desc(BUF + i * 0x800, 0x800, POST_WRITE), buf_id=i)
    s += enq(app_frame('tcp4', 8000, ask=ASK_TSO, mss=1448))
    seeds['rx-segmented'] = s

    # Control while running: restart, disable/enable, new table, new size, base.
    s = ring_config(cfg('VERSION_1', 'PROTOCOL_FEATURES', 'CALLFD', 'BASE'), size_param,
                    base=0x8000 if packed else 0)
    s += post(post_desc(BUF, 72, 0), buf_id=0) + deq()
    s += ctl('restart') + post(post_desc(BUF, 72, 0), buf_id=1) + deq()
    s += ctl('enable', u8(0)) + deq() + ctl('enable', u8(1)) + deq()
    s += ctl('mem_table') + post(post_desc(BUF, 72, 0), buf_id=2) + deq()
    s += ctl('num', u16(3 if not packed else 15)) + ctl('base', u16(0x8000 if packed else 5))
    s += ctl('restart') + post(post_desc(BUF, 72, 0), buf_id=3) + deq()
    s += ctl('rarp', u64(0x0000efcdab005452)) + deq(1) + ctl('call', u8(0))
    s += ctl('features', u16(cfg('VERSION_1', 'MRG_RXBUF', 'PROTOCOL_FEATURES')))
    s += post(post_desc(BUF, 0x100, POST_WRITE), buf_id=4) + enq(app_frame('eth', 100))
    seeds['control'] = s

    # Dirty logging of buffers and used ring.
    s = ring_config(cfg('VERSION_1', 'LOG_ALL', 'CALLFD'), size_param, log_gpa=0x5000)
    s += post(post_desc(BUF, 0x800, POST_WRITE), buf_id=0)
    s += enq(app_frame('udp4', 1000))
    seeds['dirty-log'] = s

    # Wrapping: a small ring taken round several times.
    small = 3 if not packed else 4             # split 8 entries; packed 5
    s = ring_config(cfg('VERSION_1', 'EVENT_IDX', 'CALLFD'), small, used_idx=0xfffe)
    for lap in range(4):
        for i in range(3):
            s += post(post_desc(BUF + i * 0x100, 12 + 60, 0), buf_id=i)
        s += deq(2) + deq(2)
    seeds['wrap'] = s

    # Zero-copy port: big frames handed out in guest memory and kept across
    # a new memory table, a ring restart and the disconnect.
    s = ring_config(cfg('VERSION_1', 'CALLFD', 'ZERO_COPY', 'EVENT_IDX'), size_param)
    frame = net_hdr() + u16(0) + ip4_frame(6, 600)
    for i in range(3):
        s += post(post_desc(BUF + i * 0x400, len(frame), 0, frame[:255]), buf_id=i)
    s += deq(HOLD | 32) + ctl('mem_table')
    for i in range(3, 6):
        s += post(post_desc(BUF + i * 0x400, len(frame), 0, frame[:255]), buf_id=i)
    s += deq(HOLD | 2) + release(1, 0) + deq(HOLD | 32) + ctl('restart')
    s += post(post_desc(BUF + 6 * 0x400, len(frame), 0, frame[:255]), buf_id=6) + deq(HOLD | 1)
    seeds['zero-copy'] = s

    if packed:
        # A chain written in two laps: the driver's wrap counter flips mid-chain.
        s = ring_config(cfg('VERSION_1', 'BASE'), 4, base=0x8003)
        s += post(post_desc(BUF, 12, 0, bytes(12)), post_desc(BUF + 0x40, 30, 0),
                  post_desc(BUF + 0x80, 30, 0), buf_id=9)
        s += u8(L + 2) + u16(0x8002) + u16(2) + deq()
        seeds['lap-chain'] = s
    else:
        # The driver moves the available index back and forth, rewrites entries.
        s = ring_config(cfg('VERSION_1', 'CALLFD'), 4)
        s += post(post_desc(BUF, 72, 0), ctl_byte=0x10)
        s += u8(L + 2) + u8(1) + u16(0) + u16(0) + u8(L + 2) + u8(0) + u16(1) + deq()
        s += u8(L + 1) + u16(1) + u64(BUF) + u32(72) + u16(DESC_F_NEXT) + u16(1)
        s += u8(L + 3) + u16(1) + u16(0) + deq()
        seeds['driver-rewrites'] = s
    return seeds


# ---- fuzz_vhu_nethdr ----

def nethdr_seeds():
    seeds = {}
    cfg_csum, cfg_tso4, cfg_tso6, cfg_app, cfg_ufo = 0x01, 0x02, 0x04, 0x08, 0x10

    def guest(config, hdr, frame, seg=31, rx=0):
        # the frame's bytes go in whole through the raw overlay (first 255 bytes)
        head = frame[:255]
        return (u8(config) + u8(rx) + hdr + u16(len(frame)) + u8(seg) + u8(KIND['eth']) +
                u8(0) + u8(len(head)) + head)

    def app(config, frame):
        return u8(config | cfg_app) + u8(0) + frame

    tcp4 = ip4_frame(6, 1000)
    seeds['guest-tcp4-csum'] = guest(0, net_hdr(NEEDS_CSUM, 0, 0, 0, 34, 16), tcp4)
    seeds['guest-tcp4-csum-flagged'] = guest(0, net_hdr(NEEDS_CSUM, 0, 0, 0, 34, 16), tcp4,
                                             rx=RX_CKSUM)
    seeds['guest-tcp4-tso'] = guest(cfg_csum | cfg_tso4,
                                    net_hdr(NEEDS_CSUM, GSO_TCPV4, 54, 300, 34, 16), tcp4,
                                    rx=RX_LEGACY)
    seeds['guest-tcp4-tso-cut'] = guest(0, net_hdr(NEEDS_CSUM, GSO_TCPV4, 54, 300, 34, 16),
                                        tcp4)
    seeds['guest-tcp4-tso-lro'] = guest(0, net_hdr(NEEDS_CSUM, GSO_TCPV4, 54, 300, 34, 16),
                                        tcp4, rx=RX_LRO | RX_CKSUM)
    seeds['guest-tcp4-tso-sw'] = guest(cfg_csum,
                                       net_hdr(NEEDS_CSUM, GSO_TCPV4, 54, 300, 34, 16), tcp4,
                                       rx=RX_LEGACY)
    seeds['guest-udp4-vlan'] = guest(cfg_csum, net_hdr(NEEDS_CSUM, 0, 0, 0, 38, 6),
                                     ip4_frame(17, 200, vlan=True))
    seeds['guest-tcp6-tso'] = guest(cfg_csum | cfg_tso6,
                                    net_hdr(NEEDS_CSUM, GSO_TCPV6, 74, 500, 54, 16),
                                    ip6_frame(6, 1200), rx=RX_LEGACY)
    seeds['guest-tcp6-tso-cut'] = guest(0, net_hdr(NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 74, 500,
                                                   54, 16), ip6_frame(6, 1200))
    seeds['guest-csum-elsewhere'] = guest(0, net_hdr(NEEDS_CSUM, 0, 0, 0, 20, 4),
                                          ip4_frame(17, 100))
    seeds['guest-gso-udp'] = guest(0, net_hdr(NEEDS_CSUM, GSO_UDP, 42, 100, 34, 6),
                                   ip4_frame(17, 400))
    seeds['guest-gso-udp-legacy'] = guest(cfg_ufo, net_hdr(NEEDS_CSUM, GSO_UDP, 42, 100, 34, 6),
                                          ip4_frame(17, 400), rx=RX_LEGACY)
    seeds['app-tcp4-csum'] = app(0, app_frame('tcp4', 1000, ask=ASK_L4 | ASK_IP))
    seeds['app-udp6-csum-chain'] = app(0, app_frame('udp6', 5000, seg=0, ask=ASK_L4))
    seeds['app-tso4-sw'] = app(cfg_csum, app_frame('tcp4', 20000, ask=ASK_TSO, mss=1448))
    seeds['app-tso6-guest'] = app(cfg_csum | cfg_tso6,
                                  app_frame('tcp6', 9000, ask=ASK_TSO, mss=1400))
    seeds['app-shared'] = app(0, app_frame('tcp4', 300, ask=ASK_L4 | ASK_SHARED))
    return seeds


def write_corpus(harness, seeds):
    d = os.path.join(HERE, 'corpus', harness)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in sorted(seeds.items()):
        digest = hashlib.sha1(data).hexdigest()[:12]
        with open(os.path.join(d, '%s-%s' % (name, digest)), 'wb') as f:
            f.write(data)


def main():
    write_corpus('fuzz_vhu_msg', msg_seeds())
    write_corpus('fuzz_vhu_split', ring_seeds('split'))
    write_corpus('fuzz_vhu_packed', ring_seeds('packed'))
    write_corpus('fuzz_vhu_nethdr', nethdr_seeds())
    with open(os.path.join(HERE, 'fuzz_vhu_msg.dict'), 'w') as f:
        f.write(msg_dict())


if __name__ == '__main__':
    main()
