/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Zero-copy dequeue: a frame from a guest TX ring reaches the application in
 * mbufs that point into the guest's buffer (external buffers) instead of a
 * copy of it, and its descriptor chain goes back to the guest only once the
 * application has freed the last of those mbufs.
 *
 * What made DPDK drop its own dequeue zero-copy is ruled out by construction:
 * - Memory: every held chain keeps the memory table it points into (the
 *   ring's reference, then one of its own: enum vhu_zc_mem_ref), so the
 *   mapping outlives a disconnect or a new SET_MEM_TABLE until the last
 *   mbuf is freed.
 * - Lifetime: the slots a ring hands out live in a reference-counted pool of
 *   their own; an mbuf freed after its ring was stopped, reset or destroyed
 *   touches only that pool, never the ring or the port.
 * - Starvation: at most half a ring is held; past that, frames are copied,
 *   so the guest's TX ring keeps moving however long mbufs are held.
 * - Order: chains come back in the order the application frees them, which
 *   the guest accepts because IN_ORDER is not offered with zero-copy.
 * A ring stopped by the front end (GET_VRING_BASE) gives every held chain
 * back at once so that its indices are whole; the mbufs stay valid (mapped),
 * but from then on the guest may reuse what they point to.
 */
#ifndef VHU_ZEROCOPY_H
#define VHU_ZEROCOPY_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "vring.h"

/* Bytes copied into the first mbuf (headers a later stage may rewrite). */
#define VHU_ZC_HEAD_BYTES 192
_Static_assert(VHU_ZC_HEAD_BYTES < VHU_ZC_MIN_THRESHOLD, "zero-copy frames have a part to attach");

struct vhu_zc_pool;

/*
 * What keeps the memory table a chain's mbufs point into. While the ring
 * keeps that table, its own reference does: handing a frame out and freeing
 * it write no reference count of the table, which every ring of the session
 * reads (its regions) and would otherwise share written with the others.
 * When the ring lets go of the table, each chain whose mbufs are still out
 * takes a reference of its own (vhu_zc_memory_leaving()).
 */
enum vhu_zc_mem_ref {
	VHU_ZC_MEM_NONE,	/* no mbufs out */
	VHU_ZC_MEM_BORROWED,	/* the ring's reference covers them */
	VHU_ZC_MEM_OWNED,	/* one reference of the slot's, dropped with the last mbuf */
};

/* A chain handed to the application: what it takes to give it back. */
struct vhu_zc_slot {
	struct rte_mbuf_ext_shared_info shinfo;	/* free_cb runs when the mbufs are gone */
	struct vhu_zc_pool *pool;
	struct vhu_mem_table *mem;		/* what the mbufs point into */
	uint32_t mem_ref;			/* enum vhu_zc_mem_ref, atomic */
	uint16_t id;				/* chain head (split) / buffer id (packed) */
	uint16_t nslots;			/* ring slots of the chain (packed) */
	bool held;				/* handed out, not given back (ring's lcore) */
};

/* Creates the ring's pool when its ring starts, if zero-copy is on for it. */
int vhu_zc_ring_started(struct vhu_vring *vr);

/*
 * The ring lets go of its pool: with @give_back, and the ring still mapped,
 * every chain still held is completed (length 0) and published first. Mbufs
 * still out keep the pool alive. With the ring lock held.
 */
void vhu_zc_ring_stopped(struct vhu_vring *vr, bool give_back);

/* Completes the chains whose mbufs were freed since the last call; returns how many. */
uint32_t vhu_zc_reap(struct vhu_vring *vr);

/*
 * The ring lets go of its memory table (for another, or none) or of its
 * pool: every chain whose mbufs are still out takes a reference of its own
 * on the table. With the ring lock held, before the ring drops its
 * reference.
 */
void vhu_zc_memory_leaving(struct vhu_vring *vr);

/*
 * A free slot for chain @c, or NULL when the ring holds all it may. The
 * ring's reference on its memory table covers the slot (no reference count
 * written), and its shinfo is armed for @nsegs external buffers.
 */
struct vhu_zc_slot *vhu_zc_hold(struct vhu_vring *vr, const struct vhu_chain *c,
				uint16_t nsegs);

/*
 * Whether an external buffer is a held chain's, i.e. a guest's TX buffer:
 * the guest only lets us read it.
 */
bool vhu_zc_buffer(const struct rte_mbuf_ext_shared_info *shinfo);

/* Chains held now (for tests and stats). */
uint32_t vhu_zc_held(const struct vhu_vring *vr);

#endif /* VHU_ZEROCOPY_H */
