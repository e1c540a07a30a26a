/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Wire-level constants and layouts of virtio rings and the virtio-net header,
 * as the VIRTIO 1.1 specification defines them, and of vhost-user messages
 * (QEMU's docs/interop/vhost-user.rst). Only facts live here: no code.
 * Everything is little-endian on the wire; this back end builds for x86-64
 * and other little-endian hosts only (checked in meson.build).
 */
#ifndef VHU_VIRTIO_DEFS_H
#define VHU_VIRTIO_DEFS_H

#include <stdint.h>

/* Device-independent feature bits. */
#define VIRTIO_F_NOTIFY_ON_EMPTY	24
#define VIRTIO_F_ANY_LAYOUT		27
#define VIRTIO_RING_F_INDIRECT_DESC	28
#define VIRTIO_RING_F_EVENT_IDX		29
#define VHOST_USER_F_PROTOCOL_FEATURES	30
#define VIRTIO_F_VERSION_1		32
#define VIRTIO_F_ACCESS_PLATFORM	33
#define VIRTIO_F_RING_PACKED		34
#define VIRTIO_F_IN_ORDER		35
#define VHOST_F_LOG_ALL			26

/* Device status bits (VIRTIO 1.2, 2.1), as SET_STATUS carries them. */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE	0x01
#define VIRTIO_CONFIG_S_DRIVER		0x02
#define VIRTIO_CONFIG_S_DRIVER_OK	0x04
#define VIRTIO_CONFIG_S_FEATURES_OK	0x08
#define VIRTIO_CONFIG_S_FAILED		0x80

/* virtio-net feature bits. */
#define VIRTIO_NET_F_CSUM		0
#define VIRTIO_NET_F_GUEST_CSUM		1
#define VIRTIO_NET_F_MTU		3
#define VIRTIO_NET_F_MAC		5
#define VIRTIO_NET_F_GUEST_TSO4		7
#define VIRTIO_NET_F_GUEST_TSO6		8
#define VIRTIO_NET_F_GUEST_ECN		9
#define VIRTIO_NET_F_GUEST_UFO		10
#define VIRTIO_NET_F_HOST_TSO4		11
#define VIRTIO_NET_F_HOST_TSO6		12
#define VIRTIO_NET_F_HOST_ECN		13
#define VIRTIO_NET_F_HOST_UFO		14
#define VIRTIO_NET_F_MRG_RXBUF		15
#define VIRTIO_NET_F_STATUS		16
#define VIRTIO_NET_F_CTRL_VQ		17
#define VIRTIO_NET_F_GUEST_ANNOUNCE	21
#define VIRTIO_NET_F_MQ			22

/* ---- vhost-user message layouts ---- */

struct vhu_msg_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

/* Header flags. */
#define VHOST_USER_VERSION_MASK		0x3u
#define VHOST_USER_VERSION		0x1u
#define VHOST_USER_REPLY		0x4u
#define VHOST_USER_NEED_REPLY		0x8u

/* Requests of ours on the back end's request channel (SET_BACKEND_REQ_FD). */
#define VHOST_USER_BACKEND_IOTLB_MSG	1

/* IOTLB_MSG payload (struct vhost_iotlb_msg): perm: 1 read, 2 write, 3 both. */
struct vhu_iotlb_msg {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;
	uint8_t type;
};

_Static_assert(sizeof(struct vhu_iotlb_msg) == 32, "the wire size QEMU sends");

#define VHU_IOTLB_MSG_MISS		1
#define VHU_IOTLB_MSG_UPDATE		2
#define VHU_IOTLB_MSG_INVALIDATE	3
#define VHU_IOTLB_MSG_ACCESS_FAIL	4

#define VHU_BIT(b) (UINT64_C(1) << (b))

/* vhost ring address flag: log used-ring writes (SET_VRING_ADDR). */
#define VHOST_VRING_F_LOG	0x1u

/* Split ring descriptor flags. */
#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4

/* Split ring: driver asks for no interrupts; device asks for no kicks. */
#define VRING_AVAIL_F_NO_INTERRUPT	1
#define VRING_USED_F_NO_NOTIFY		1

/* Largest ring the virtio specification allows. */
#define VHU_VRING_MAX_SIZE	32768

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];	/* followed by used_event with EVENT_IDX */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];	/* followed by avail_event */
};

/* Sizes of the split ring areas for a ring of @num entries (event fields included). */
static inline uint64_t vring_desc_area_size(uint32_t num) { return 16ULL * num; }
static inline uint64_t vring_avail_area_size(uint32_t num) { return 6ULL + 2ULL * num; }
static inline uint64_t vring_used_area_size(uint32_t num) { return 6ULL + 8ULL * num; }

/* Packed ring descriptor: flags AVAIL and USED carry the wrap counters. */
#define VRING_PACKED_DESC_F_AVAIL	(1u << 7)
#define VRING_PACKED_DESC_F_USED	(1u << 15)

struct vring_packed_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

/* Packed ring event suppression area (one for the driver, one for the device). */
#define VRING_PACKED_EVENT_FLAG_ENABLE	0
#define VRING_PACKED_EVENT_FLAG_DISABLE	1
#define VRING_PACKED_EVENT_FLAG_DESC	2	/* with EVENT_IDX: at off_wrap */

struct vring_packed_desc_event {
	uint16_t off_wrap;	/* bits 0-14 descriptor offset, bit 15 wrap counter */
	uint16_t flags;
};

/* virtio-net header. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM	1
#define VIRTIO_NET_HDR_F_DATA_VALID	2
#define VIRTIO_NET_HDR_GSO_NONE		0
#define VIRTIO_NET_HDR_GSO_TCPV4	1
#define VIRTIO_NET_HDR_GSO_UDP		3
#define VIRTIO_NET_HDR_GSO_TCPV6	4
#define VIRTIO_NET_HDR_GSO_ECN		0x80

/* Where the checksum field sits in a TCP and a UDP header. */
#define VHU_TCP_CSUM_OFFSET		16
#define VHU_UDP_CSUM_OFFSET		6

struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
};

struct virtio_net_hdr_mrg_rxbuf {
	struct virtio_net_hdr hdr;
	uint16_t num_buffers;
};

#endif /* VHU_VIRTIO_DEFS_H */
