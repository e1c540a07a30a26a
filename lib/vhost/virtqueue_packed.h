/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueue, device side. One descriptor ring shared both ways: the
 * driver makes a chain available by flipping its head descriptor's AVAIL/USED
 * bits to match its wrap counter; the device returns a buffer by writing the
 * buffer id and length into the slot at its used index and flipping the bits
 * to match its own wrap counter. Ring sizes need not be powers of two.
 *
 * Completions are kept aside (vr->pending) and written to the ring only at
 * publish, the first one's flags last, so the driver sees a burst at once and
 * a frame that gives its chains back has never touched the ring.
 */
#ifndef VHU_VIRTQUEUE_PACKED_H
#define VHU_VIRTQUEUE_PACKED_H

#include "vring.h"

/* @max when the chain at the available index is there, else 0. */
uint16_t vhu_packed_available(struct vhu_vring *vr, uint16_t max);

enum vhu_take vhu_packed_take(struct vhu_vring *vr, bool device_writes, uint64_t want,
			      struct vhu_chain *c);

/* Buffer @id, which took @nslots ring slots, is done with @len bytes written. */
static inline void
vhu_packed_complete(struct vhu_vring *vr, uint16_t id, uint16_t nslots, uint32_t len)
{
	struct vhu_packed_used *u = &vr->pending[vr->npending++];

	u->slot = vr->last_used_idx;
	u->id = id;
	u->len = len;
	u->flags = vr->used_wrap ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0;
	vr->last_used_idx += nslots;
	if (vr->last_used_idx >= vr->size) {
		vr->last_used_idx -= vr->size;
		vr->used_wrap = !vr->used_wrap;
	}
}

void vhu_packed_publish(struct vhu_vring *vr);

#endif /* VHU_VIRTQUEUE_PACKED_H */
