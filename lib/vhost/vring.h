/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One virtqueue of a port, whatever its layout. Four parts, each with one
 * owner:
 * - the data-path view: what the lcore polling the ring reads and advances
 *   (positions, host pointers into the ring, the negotiated features it
 *   needs, its counters). vring_ctl.c derives it from the control part at
 *   every control change; the poller holds @lock for a burst (a trylock);
 * - the identity, fixed when the port is created;
 * - the control part: what the front end said about the ring, written only
 *   on the control thread (vring_ctl.c), with @lock held;
 * - interrupt mode (guest TX rings): the application's fd and whether it
 *   sleeps on it, written by vring_intr.c with @lock held, by the
 *   application (arming) and the control thread (kick fds, ring starts).
 * This file holds what the data path shares between the layouts: chains,
 * frame counting, dirty logging of what it wrote. Nothing here changes a
 * ring's state; vring_ctl.c does.
 */
#ifndef VHU_VRING_H
#define VHU_VRING_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_gso.h>
#include <rte_mbuf.h>
#include <rte_spinlock.h>

#include "dirty_log.h"
#include "iotlb.h"
#include "memory.h"
#include "vhu.h"
#include "virtio_defs.h"

/* Most pieces one descriptor chain may map to (after region splits). */
#define VHU_CHAIN_MAX_IOV 128
/* Longest frame accepted from a guest. */
#define VHU_MAX_FRAME_LEN VHU_MAX_LRO_PKT_SIZE
/* Most frames one GSO frame is cut into in software (64 KiB at 256-byte segments). */
#define VHU_GSO_MAX_SEGS 256

/* Result of taking a chain from a ring. */
enum vhu_take {
	VHU_TAKE_OK,
	VHU_TAKE_MALFORMED,	/* chain consumed; complete it with length 0 */
	VHU_TAKE_BROKEN,	/* the ring itself is corrupt; stop using it */
	VHU_TAKE_EMPTY,		/* nothing (more) available */
	VHU_TAKE_MISS,		/* a translation is asked for: nothing taken, try later */
};

/* A completion not yet visible to the driver (packed rings publish them in one go). */
struct vhu_packed_used {
	uint16_t slot;
	uint16_t id;
	uint32_t len;
	uint16_t flags;		/* AVAIL|USED as the used wrap counter was at that slot */
};

/* A descriptor chain fetched from a ring, translated to host memory. */
struct vhu_chain {
	uint16_t id;		/* head index (split) / buffer id (packed) */
	uint16_t nslots;	/* ring slots it occupies (packed: descriptors in the ring) */
	uint32_t niov;
	uint64_t len;		/* sum of iov[].len */
	struct vhu_iov iov[VHU_CHAIN_MAX_IOV];
};

/* @c becomes the one-piece chain @id: @len bytes at guest address @gpa, mapped at @addr. */
static inline void
vhu_chain_set_one(struct vhu_chain *c, uint16_t id, uint8_t *addr, uint32_t len, uint64_t gpa)
{
	c->id = id;
	c->nslots = 1;
	c->niov = 1;
	c->len = len;
	c->iov[0].addr = addr;
	c->iov[0].len = len;
	c->iov[0].guest_phys_addr = gpa;
}

struct vhu_zc_pool;

/* What the data path needs of the negotiated features. */
struct vhu_vring_negotiated {
	uint64_t features;	/* all of them (offloads look at the GUEST_* bits) */
	uint16_t hdr_len;	/* virtio-net header: 10 or 12 bytes */
	bool packed;		/* VIRTIO_F_RING_PACKED: the layout */
	bool event_idx;		/* VIRTIO_RING_F_EVENT_IDX */
	bool mrg_rxbuf;		/* VIRTIO_NET_F_MRG_RXBUF */
	bool in_order;		/* VIRTIO_F_IN_ORDER */
};

/* Where a split ring's three areas are mapped (split_access.h reads and writes them). */
struct vhu_split_view {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx_shadow;	/* available index as last read */
};

/*
 * A packed ring (packed_access.h): its descriptors and event areas, the wrap
 * counters that go with the ring's positions, and completions kept aside
 * until the next publish.
 */
struct vhu_packed_view {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver_event;
	struct vring_packed_desc_event *device_event;
	bool avail_wrap;
	bool used_wrap;
	bool published_used_wrap;
	uint16_t published_used_idx;	/* where the driver looks for the next used slot */
	uint32_t npending;
	uint32_t pending_cap;
	/* a ring's worth, allocated at start: cache lines of its own (rte_malloc) */
	struct vhu_packed_used *pending;
};

/* Interrupting the guest: the call fd and what the last decision to call saw. */
struct vhu_vring_notify {
	int callfd;
	bool signalled_valid;		/* nothing decided since the ring (re)started */
	bool signalled_used_wrap;
	uint16_t signalled_used_idx;	/* used index when we last decided whether to call */
};

/* Dirty logging, while VHOST_F_LOG_ALL is negotiated and a log is set. */
struct vhu_vring_dirty {
	struct vhu_dirty_log *log;	/* one reference held, or NULL */
	bool logging;			/* log what we write into guest memory */
	bool log_used;			/* ... and our used-area writes, at used_gpa */
	uint64_t used_gpa;		/* split: used ring; packed: descriptor ring */
};

/* After a migration: announce the guest with a RARP frame (guest TX ring 1). */
struct vhu_vring_rarp {
	bool pending;
	struct rte_ether_addr mac;
};

/* What the front end set up for the ring (SET_VRING_*), as it said it. */
struct vhu_vring_addr_config {
	uint32_t flags;
	uint64_t desc;		/* front-end virtual addresses */
	uint64_t avail;
	uint64_t used;
	uint64_t log;		/* guest physical */
};

/*
 * mbufs[head .. head + rx_pending_count) of the ring. Guest TX rings:
 * segments of a GSO frame cut on receive that did not fit in the burst.
 * Guest RX rings: frames the application handed us that wait for an IOTLB
 * translation of the guest's buffers (one reference of ours each).
 */
struct vhu_rx_pending {
	uint16_t head;
	struct rte_mbuf *mbufs[VHU_GSO_MAX_SEGS];
};

/*
 * Interrupt mode of a guest TX ring (vring_intr.h): the application sleeps
 * on @fd instead of polling an empty ring. Kept across front ends.
 */
struct vhu_vring_intr {
	int fd;		/* epoll instance the application waits on; -1 until asked for */
	int wakefd;	/* eventfd of ours in @fd: arming found frames there already */
	int kickfd;	/* the front end's kick fd now watched in @fd, or -1 */
	bool armed;	/* the application waits: the driver is asked to kick */
	/* the memory table an lcore may be reading a word of (power monitor), or NULL */
	struct vhu_mem_table *monitored;
};

struct vhu_vring_control {
	bool num_set;
	bool addr_set;
	bool started;		/* kick fd received, not stopped by GET_VRING_BASE */
	bool enabled;
	bool base_pending;	/* packed: base not applied to the indices yet */
	bool indices_valid;	/* the indices have been started and say where the ring is */
	uint32_t base;		/* from SET_VRING_BASE (packed: with wrap counters) */
	int kickfd;
	int errfd;
	struct vhu_vring_addr_config addr;
	/* the session's, borrowed: every ring is told when they change */
	struct vhu_mem_table *mem;
	uint64_t features;
	struct vhu_iotlb *iotlb;	/* the session's, or NULL without a vIOMMU */
	/*
	 * Behind a vIOMMU: the guest physical address of the area our used
	 * entries land in (split: used ring; packed: descriptors), found when
	 * the ring was mapped, for dirty logging. UINT64_MAX if unknown.
	 */
	uint64_t used_area_gpa;
};

struct vhu_vring {
	rte_spinlock_t lock;

	/* ==== data-path view ==== */
	bool ready;		/* set up, started and enabled: polled */
	bool broken;		/* the guest corrupted the ring: not polled until re-set-up */
	/*
	 * A guest TX ring started but disabled: the vhost-user specification
	 * wants it processed all the same, its frames taken and dropped (a
	 * guest that cuts its queue pairs waits for what it queued there).
	 */
	bool discarding;
	uint32_t size;
	uint16_t last_avail_idx;	/* next available entry we will take */
	uint16_t last_used_idx;		/* next used entry we will write */
	struct vhu_vring_negotiated neg;
	struct vhu_mem_table *mem;	/* one reference held */
	/* Guest addresses are I/O virtual ones, translated here (iotlb.h); NULL: guest physical. */
	struct vhu_iotlb *iotlb;
	struct vhu_split_view split;
	struct vhu_packed_view packed;
	struct vhu_vring_notify notify;
	struct vhu_vring_dirty dirty;
	struct vhu_vring_rarp rarp;
	struct vhu_zc_pool *zc;		/* zero-copy (zerocopy.h): one reference, or NULL */
	uint32_t rx_offloads;		/* VHU_RX_OFFLOAD_*: what the application takes */
	uint16_t mbuf_port;		/* received mbufs' port (fixed at port creation) */
	uint16_t rx_pending_count;	/* segments waiting in rx_pending */
	struct vhu_vring_stats stats;
	uint32_t errors_logged;

	/* ==== identity, fixed at port creation ==== */
	uint16_t index;
	const char *port_name;
	int socket_id;			/* for what the ring allocates */
	uint32_t zc_threshold;		/* dequeue zero-copy from this frame size (0: off) */
	bool linear_buffer;		/* received frames in one mbuf, else dropped (rxbuf.h) */
	bool ext_buffer;		/* ... in an external buffer when larger than the mbuf's */
	const struct rte_gso_ctx *gso;	/* the port's segmentation pools */
	bool iommu;			/* the port offers guests a vIOMMU (iotlb.h) */

	/* ==== control part (vring_ctl.c) ==== */
	struct vhu_vring_control ctl;

	/* ==== interrupt mode (vring_intr.c), with @lock held ==== */
	struct vhu_vring_intr intr;

	/* ==== data path, rarely touched ==== */
	struct vhu_rx_pending rx_pending;
	/*
	 * Rings of a port lie side by side (port.h), each polled by its own
	 * lcore: whole cache lines each, so that no line one lcore writes (the
	 * lock, positions, counters) is another's.
	 */
} __rte_cache_aligned;

_Static_assert(alignof(struct vhu_vring) == RTE_CACHE_LINE_SIZE,
	       "a ring fills whole cache lines: rings side by side share none");

/* Whether the front end negotiated feature bit @feature (VIRTIO_*_F_*) for the ring. */
static inline bool
vhu_vring_has(const struct vhu_vring *vr, unsigned int feature)
{
	return (vr->neg.features & VHU_BIT(feature)) != 0;
}

/*
 * Bad input on the data path (a malformed chain or header from the guest, an
 * offload request that cannot be met): counted, and logged for the first few
 * occurrences on this ring only, so a hostile guest cannot flood the log.
 */
void vhu_vring_bad_input(struct vhu_vring *vr, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Signal the guest through the call fd. */
void vhu_vring_call(struct vhu_vring *vr);

/*
 * Guest buffer [@addr, @addr + @len), written (@device_writes) or read by
 * us, -> up to @max pieces of host memory. Returns the pieces, or
 * VHU_IOTLB_FAULT (outside guest memory, too many pieces), or VHU_IOTLB_MISS
 * (its IOVA translation is asked for). Every buffer address from the guest
 * goes through here or vhu_vring_map().
 */
static inline int
vhu_vring_map_iov(struct vhu_vring *vr, bool device_writes, uint64_t addr, uint32_t len,
		  struct vhu_iov *iov, uint32_t max)
{
	if (likely(vr->iotlb == NULL)) {
		int n = vhu_mem_guest_to_iov(vr->mem, addr, len, iov, max);

		return n < 0 ? VHU_IOTLB_FAULT : n;
	}
	return vhu_iotlb_to_iov(vr->iotlb, addr, len, device_writes ? VHU_IOTLB_WO : VHU_IOTLB_RO,
				iov, max);
}

/* Chains read ahead after a miss: what a Linux guest refills in one NAPI poll. */
#define VHU_ASK_AHEAD_CHAINS 64

/*
 * Behind a vIOMMU: asks for the translation of a descriptor's buffer (or of
 * its indirect table) unless the IOTLB has it, taking nothing. Reading ahead
 * in the ring after a miss this way turns a round trip to the front end per
 * buffer into one per batch of buffers the driver made available.
 */
static inline void
vhu_vring_ask_ahead_one(struct vhu_vring *vr, bool device_writes, uint16_t flags, uint64_t addr,
			uint32_t len)
{
	struct vhu_iov iov[8];
	int why;

	if (flags & VRING_DESC_F_INDIRECT)
		vhu_iotlb_to_host(vr->iotlb, addr, len, VHU_IOTLB_RO, NULL, &why);
	else
		vhu_iotlb_to_iov(vr->iotlb, addr, len, device_writes ? VHU_IOTLB_WO : VHU_IOTLB_RO,
				 iov, RTE_DIM(iov));
}

/* What a buffer that did not map may also have lacked, for log lines. */
static inline const char *
vhu_vring_map_fault_hint(const struct vhu_vring *vr, bool device_writes)
{
	if (vr->iotlb == NULL)
		return "";
	return device_writes ? " (or not writable through the IOMMU)" :
			       " (or not readable through the IOMMU)";
}

/*
 * Guest range [@addr, @addr + @len) we read (indirect tables) -> host
 * memory, all of it contiguous, or NULL with *@why as for vhu_vring_map_iov().
 */
static inline void *
vhu_vring_map(struct vhu_vring *vr, uint64_t addr, uint64_t len, int *why)
{
	void *p;

	if (likely(vr->iotlb == NULL)) {
		p = vhu_mem_guest_to_host(vr->mem, addr, len);
		*why = VHU_IOTLB_FAULT;
		return p;
	}
	return vhu_iotlb_to_host(vr->iotlb, addr, len, VHU_IOTLB_RO, NULL, why);
}

/* Chains a batch takes at once (virtqueue.h: vhu_vq_batch_peek()). */
#define VHU_BATCH 4u
/*
 * Before a loop over the chains of a batch: unrolled, the loops of a batch
 * are straight code (GCC -O2 does not unroll them by itself).
 */
#define VHU_BATCH_UNROLL _Pragma("GCC unroll 4")

/*
 * Four one-descriptor chains next to be taken, each the common kind of
 * vhu_vring_one_piece(), mapped: a batch (vhu_vq_batch_peek()).
 */
struct vhu_batch {
	uint8_t *addr[VHU_BATCH];	/* each buffer whole, in one memory region */
	uint64_t gpa[VHU_BATCH];
	uint32_t len[VHU_BATCH];
	uint16_t id[VHU_BATCH];
};

/*
 * Maps the buffers of @b (gpa and len set) into addr: false when one does
 * not lie whole inside one memory region. One region search for the four:
 * the first buffer's region, which usually holds the others too; a buffer
 * it does not hold whole is searched on its own.
 */
static inline bool
vhu_vring_batch_map(const struct vhu_vring *vr, struct vhu_batch *b)
{
	const struct vhu_mem_region *r = vhu_mem_region_below(vr->mem, b->gpa[0]);

	if (r == NULL)
		return false;
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		b->addr[k] = vhu_mem_region_to_host(r, b->gpa[k], b->len[k]);
		if (unlikely(b->addr[k] == NULL)) {
			b->addr[k] = vhu_mem_guest_to_host(vr->mem, b->gpa[k], b->len[k]);
			if (b->addr[k] == NULL)
				return false;
		}
	}
	return true;
}

/* vhu_vring_one_piece() behind a vIOMMU: out of line, off the common path. */
bool vhu_vring_one_piece_iotlb(struct vhu_vring *vr, bool device_writes, uint64_t addr,
			       uint32_t len, uint16_t id, struct vhu_chain *c);

/*
 * @c becomes the one-piece chain @id if its descriptor is the common kind: a
 * direct one (@flags without NEXT or INDIRECT, WRITE exactly when
 * @device_writes) of at least @min_len bytes, not empty, mapped in one
 * piece. False otherwise (@c may be written), with nothing logged: the
 * slow path handles the rest.
 */
static inline bool
vhu_vring_one_piece(struct vhu_vring *vr, bool device_writes, uint32_t min_len, uint16_t flags,
		    uint64_t addr, uint32_t len, uint16_t id, struct vhu_chain *c)
{
	uint8_t *p;

	if ((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE)) !=
	    (device_writes ? VRING_DESC_F_WRITE : 0) || len < RTE_MAX(min_len, 1u))
		return false;
	if (unlikely(vr->iotlb != NULL))
		return vhu_vring_one_piece_iotlb(vr, device_writes, addr, len, id, c);
	p = vhu_mem_guest_to_host(vr->mem, addr, len);
	if (p == NULL)
		return false;
	vhu_chain_set_one(c, id, p, len, addr);
	return true;
}

static inline enum vhu_size_class
vhu_size_class(uint32_t len)
{
	if (len < 64)
		return VHU_SIZE_UNDER_64;
	if (len == 64)
		return VHU_SIZE_64;
	if (len < 1024)	/* 65..127 -> 2, 128..255 -> 3, ... 512..1023 -> 5 */
		return (enum vhu_size_class)(31 - __builtin_clz(len) - 4);
	return len <= 1518 ? VHU_SIZE_1024_1518 : VHU_SIZE_1519_MAX;
}

/*
 * Adds @n to a counter of the ring (struct vhu_vring_stats). Counters are
 * written with the ring's lock held and read by any thread at any time
 * (ethdev statistics, vhu_vring_stats()): a relaxed atomic store of the
 * sum, so that a reader sees a whole value and the two are not a data race.
 * Not an atomic add: the lock orders the writers, and the store is a plain
 * store (no locked instruction) on x86-64 and arm64.
 */
#define VHU_COUNT(counter, n) \
	__atomic_store_n(&(counter), (counter) + (n), __ATOMIC_RELAXED)

/*
 * The frame counters of one burst (packets, bytes, size and address
 * classes), summed here in locals and written to the ring's counters once
 * each (vhu_vring_tally_flush()) before the burst lets go of the ring's
 * lock: a VHU_COUNT store per counter and burst, not per frame.
 */
struct vhu_frame_tally {
	uint32_t packets;
	uint32_t multicast;
	uint32_t broadcast;
	uint64_t bytes;
	uint32_t size[VHU_SIZE_CLASSES];
};

static inline void
vhu_frame_tally_init(struct vhu_frame_tally *t)
{
	memset(t, 0, sizeof(*t));
}

/*
 * A frame of @len bytes, @dst its destination address (NULL when its first
 * segment holds less than one).
 */
static __rte_always_inline void
vhu_frame_tally_add(struct vhu_frame_tally *t, uint32_t len, const struct rte_ether_addr *dst)
{
	t->packets++;
	t->bytes += len;
	t->size[vhu_size_class(len)]++;
	/* broadcast is a multicast address too: one test for a unicast frame */
	if (dst != NULL && unlikely(rte_is_multicast_ether_addr(dst))) {
		if (rte_is_broadcast_ether_addr(dst))
			t->broadcast++;
		else
			t->multicast++;
	}
}

/* Counts one frame that crossed the ring: packets, bytes, size class, address class. */
static __rte_always_inline void
vhu_frame_tally_mbuf(struct vhu_frame_tally *t, const struct rte_mbuf *m)
{
	vhu_frame_tally_add(t, m->pkt_len, m->data_len >= RTE_ETHER_ADDR_LEN ?
				rte_pktmbuf_mtod(m, const struct rte_ether_addr *) : NULL);
}

/*
 * Four frames (a packed ring's batch) of @len[k] bytes, each at least a
 * destination address long, starting at @frame[k]: one test of the four
 * group bits for the common case, no multicast among them, and one size
 * class when the four have the same length.
 */
static __rte_always_inline void
vhu_frame_tally_four(struct vhu_frame_tally *t, const uint32_t *len, const uint8_t *const *frame)
{
	t->packets += 4;
	t->bytes += (uint64_t)len[0] + len[1] + len[2] + len[3];
	/* four frames of one length (a stream of full-size or of minimum-size frames): one class */
	if (((len[0] ^ len[1]) | (len[0] ^ len[2]) | (len[0] ^ len[3])) == 0) {
		t->size[vhu_size_class(len[0])] += 4;
	} else {
		_Pragma("GCC unroll 4")
		for (unsigned int k = 0; k < 4; k++)
			t->size[vhu_size_class(len[k])]++;
	}
	if (unlikely(((frame[0][0] | frame[1][0] | frame[2][0] | frame[3][0]) &
		      RTE_ETHER_GROUP_ADDR) != 0)) {
		for (unsigned int k = 0; k < 4; k++) {
			const struct rte_ether_addr *dst = (const struct rte_ether_addr *)frame[k];

			if (rte_is_broadcast_ether_addr(dst))
				t->broadcast++;
			else if (rte_is_multicast_ether_addr(dst))
				t->multicast++;
		}
	}
}

/* The counters of @t added to the ring's, each written once (nothing if @t is empty). */
static inline void
vhu_vring_tally_flush(struct vhu_vring *vr, const struct vhu_frame_tally *t)
{
	struct vhu_vring_stats *s = &vr->stats;

	if (t->packets == 0)
		return;
	VHU_COUNT(s->packets, t->packets);
	VHU_COUNT(s->bytes, t->bytes);
	for (unsigned int i = 0; i < VHU_SIZE_CLASSES; i++)
		if (t->size[i] != 0)
			VHU_COUNT(s->size[i], t->size[i]);
	if (unlikely((t->multicast | t->broadcast) != 0)) {
		VHU_COUNT(s->multicast, t->multicast);
		VHU_COUNT(s->broadcast, t->broadcast);
	}
}

/* Marks @len bytes at @offset of the used area (split: used ring; packed: descriptors). */
static inline void
vhu_vring_log_used(struct vhu_vring *vr, uint64_t offset, uint64_t len)
{
	if (vr->dirty.log_used)
		vhu_dirty_log_range(vr->dirty.log, vr->dirty.used_gpa + offset, len);
}

/* Marks the pages of guest physical range [@gpa, @gpa + @len), written by us. */
static inline void
vhu_vring_log_range(struct vhu_vring *vr, uint64_t gpa, uint64_t len)
{
	if (vr->dirty.logging)
		vhu_dirty_log_range(vr->dirty.log, gpa, len);
}

/* Marks the pages behind the first @len bytes of chain @c. */
static inline void
vhu_vring_log_chain(struct vhu_vring *vr, const struct vhu_chain *c, uint64_t len)
{
	if (!vr->dirty.logging)
		return;
	for (uint32_t i = 0; i < c->niov && len > 0; i++) {
		uint64_t n = RTE_MIN(len, (uint64_t)c->iov[i].len);

		vhu_dirty_log_range(vr->dirty.log, c->iov[i].guest_phys_addr, n);
		len -= n;
	}
}

#endif /* VHU_VRING_H */
