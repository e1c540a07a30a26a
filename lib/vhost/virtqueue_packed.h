/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueue, device side. One descriptor ring shared both ways: the
 * driver makes a chain available by flipping its head descriptor's AVAIL/USED
 * bits to match its wrap counter; the device returns a buffer by writing the
 * buffer id and length into the slot at its used index and flipping the bits
 * to match its own wrap counter. Ring sizes need not be powers of two.
 *
 * Completions are kept aside (vr->packed.pending) and written to the ring
 * only at publish, the first one's flags last, so the driver sees a burst at
 * once and a frame that gives its chains back has never touched the ring.
 * Guest memory is touched only through packed_access.h.
 */
#ifndef VHU_VIRTQUEUE_PACKED_H
#define VHU_VIRTQUEUE_PACKED_H

#include "memory.h"
#include "packed_access.h"
#include "vring.h"

/* @max when the chain at the available index is there, else 0. */
uint16_t vhu_packed_available(struct vhu_vring *vr, uint16_t max);

/*
 * Chains the driver has made available and we have not taken, read only:
 * counted by walking the descriptors (a chain ends at one without NEXT).
 */
uint16_t vhu_packed_waiting(const struct vhu_vring *vr);

/* Behind a vIOMMU: asks for the buffers of up to @max available slots (vring.h). */
void vhu_packed_ask_ahead(struct vhu_vring *vr, bool device_writes, uint16_t max);

enum vhu_take vhu_packed_take(struct vhu_vring *vr, bool device_writes, uint64_t want,
			      struct vhu_chain *c);

/* The driver made the descriptor with these flags available in this lap. */
static inline bool
vhu_packed_desc_available(uint16_t flags, bool wrap)
{
	return ((flags & VRING_PACKED_DESC_F_AVAIL) != 0) == wrap &&
	       ((flags & VRING_PACKED_DESC_F_USED) != 0) != wrap;
}

/* Ring slots taken since available slot @avail_idx in the lap of @avail_wrap. */
static inline uint32_t
vhu_packed_slots_since(const struct vhu_vring *vr, uint16_t avail_idx, bool avail_wrap)
{
	return vr->last_avail_idx + (vr->packed.avail_wrap != avail_wrap ? vr->size : 0) -
	       avail_idx;
}

/*
 * Ring slots the driver has made available and not seen used yet: from
 * where the driver will look for the next used descriptor (the used index at
 * the last publish) to our available index. Chains held by zero-copy mbufs
 * are in it.
 */
static inline uint32_t
vhu_packed_slots_held(const struct vhu_vring *vr)
{
	return vhu_packed_slots_since(vr, vr->packed.published_used_idx,
				      vr->packed.published_used_wrap);
}

/*
 * The common chain without a walk: one direct descriptor of the wanted
 * direction, of at least @min_len bytes (and not empty), inside one memory
 * region, with a free slot to take it into. True with @c set to that one
 * piece; false, nothing taken, for anything else, which vhu_packed_take()
 * then walks (and reports if bad).
 */
static inline bool
vhu_packed_take_one(struct vhu_vring *vr, bool device_writes, uint32_t min_len,
		    struct vhu_chain *c)
{
	const uint16_t slot = vr->last_avail_idx;
	uint16_t flags = vhu_packed_desc_flags(vr, slot);
	struct vring_packed_desc d;

	if (!vhu_packed_desc_available(flags, vr->packed.avail_wrap) ||
	    vhu_packed_slots_held(vr) >= vr->size)
		return false;
	vhu_packed_desc_read(vr->packed.desc, slot, &d);
	if (!vhu_vring_one_piece(vr, device_writes, min_len, d.flags, d.addr, d.len, d.id, c))
		return false;
	if (++vr->last_avail_idx == vr->size) {
		vr->last_avail_idx = 0;
		vr->packed.avail_wrap = !vr->packed.avail_wrap;
	}
	return true;
}

/* Buffer @id, which took @nslots ring slots, is done with @len bytes written. */
static inline void
vhu_packed_complete(struct vhu_vring *vr, uint16_t id, uint16_t nslots, uint32_t len)
{
	struct vhu_packed_view *pk = &vr->packed;
	struct vhu_packed_used *u = &pk->pending[pk->npending++];

	u->slot = vr->last_used_idx;
	u->id = id;
	u->len = len;
	u->flags = pk->used_wrap ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0;
	vr->last_used_idx += nslots;
	if (vr->last_used_idx >= vr->size) {
		vr->last_used_idx -= vr->size;
		pk->used_wrap = !pk->used_wrap;
	}
}

/* Completions kept aside since the first @npending now go back with length 0. */
static inline void
vhu_packed_discard_since(struct vhu_vring *vr, uint32_t npending)
{
	for (uint32_t i = npending; i < vr->packed.npending; i++)
		vr->packed.pending[i].len = 0;
}

void vhu_packed_publish(struct vhu_vring *vr);

/*
 * Ask the driver to kick us when it makes chains available (@want), or not
 * to (we poll). With @want, true when the next chain is available already.
 */
bool vhu_packed_want_kicks(struct vhu_vring *vr, bool want);

#endif /* VHU_VIRTQUEUE_PACKED_H */
