/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue, device side: available-ring consumption, descriptor chain
 * walking, used-ring production. Bookkeeping only; no packet data is copied.
 *
 * Every value read from guest memory is read once into a local and checked
 * before use: the guest may change the ring under us at any time.
 */
#ifndef VHU_VIRTQUEUE_SPLIT_H
#define VHU_VIRTQUEUE_SPLIT_H

#include <stddef.h>
#include <string.h>

#include <rte_atomic.h>

#include "memory.h"
#include "vring.h"

/*
 * Number of chains the driver has made available (at most @max); they are
 * what vhu_split_take() hands out until the next call. An available index
 * more than a ring ahead marks the ring broken.
 */
uint16_t vhu_split_available(struct vhu_vring *vr, uint16_t max);

/*
 * Take the next available chain. @device_writes: the chain must be writable
 * (guest RX) or read-only (guest TX). Walking stops once @want bytes are
 * mapped, so a long chain costs no more than what is used of it.
 */
enum vhu_take vhu_split_take(struct vhu_vring *vr, bool device_writes, uint64_t want,
			     struct vhu_chain *c);

/*
 * The common chain without a walk: one direct descriptor of the wanted
 * direction, of at least @min_len bytes (and not empty), inside one memory
 * region. True with @c set to that one piece; false, nothing taken, for
 * anything else, which vhu_split_take() then walks (and reports if bad).
 */
static inline bool
vhu_split_take_one(struct vhu_vring *vr, bool device_writes, uint32_t min_len,
		   struct vhu_chain *c)
{
	struct vring_desc d;
	uint16_t head;
	uint8_t *addr;

	if (vr->last_avail_idx == vr->avail_idx_shadow)
		return false;
	head = __atomic_load_n(&vr->avail->ring[vr->last_avail_idx & (vr->size - 1)],
			       __ATOMIC_RELAXED);
	if (head >= vr->size)
		return false;
	/* Read once, as vhu_split_take() does: the guest may rewrite it. */
	memcpy(&d, &vr->desc[head], sizeof(d));
	rte_compiler_barrier();
	addr = vhu_vring_one_piece(vr, device_writes, min_len, d.flags, d.addr, d.len);
	if (addr == NULL)
		return false;
	vr->last_avail_idx++;
	vhu_chain_set_one(c, head, addr, d.len, d.addr);
	return true;
}

/* Record that the chain with head @id is done, @len bytes written into it. Not yet visible. */
static inline void
vhu_split_complete(struct vhu_vring *vr, uint16_t id, uint32_t len)
{
	struct vring_used_elem *e = &vr->used->ring[vr->last_used_idx & (vr->size - 1)];

	e->id = id;
	e->len = len;
	vhu_vring_log_used(vr, offsetof(struct vring_used, ring) +
			   (uint64_t)(e - vr->used->ring) * sizeof(*e), sizeof(*e));
	vr->last_used_idx++;
}

/* Make completed chains visible to the driver and interrupt it unless it asked not to. */
void vhu_split_publish(struct vhu_vring *vr);

#endif /* VHU_VIRTQUEUE_SPLIT_H */
