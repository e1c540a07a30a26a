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
 * The exception is a batch: four one-descriptor chains in a row, checked
 * together before any is taken and written back used together, in place,
 * once their frames are copied (nothing of them can be given back).
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

/*
 * The next four available slots as a batch (vring.h), if each is a chain
 * of the common kind (vhu_packed_take_one(): one direct descriptor of the
 * wanted direction, of at least @min_len bytes and not empty, inside one
 * memory region), they do not wrap around the ring's end, nor do the four
 * used slots they will be handed back in, and the ring has room for them.
 * True with @b set; nothing is taken either way:
 * vhu_packed_batch_complete() takes them. Anything else (a chain, an
 * indirect table, a bad buffer, a vIOMMU) is left to the one-chain path,
 * which reports what is bad exactly as it always does.
 */
static inline bool
vhu_packed_batch_peek(struct vhu_vring *vr, bool device_writes, uint32_t min_len,
		      struct vhu_batch *b)
{
	const uint16_t slot = vr->last_avail_idx;
	/* available in this lap (AVAIL as the wrap counter, USED not), and the kind */
	const uint16_t kind_mask = VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED |
				   VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE;
	const uint16_t kind = (vr->packed.avail_wrap ? VRING_PACKED_DESC_F_AVAIL :
						       VRING_PACKED_DESC_F_USED) |
			      (device_writes ? VRING_DESC_F_WRITE : 0);

	if (slot + VHU_BATCH > vr->size ||
	    vr->last_used_idx + VHU_BATCH > vr->size ||
	    vhu_packed_slots_held(vr) + VHU_BATCH > vr->size || vr->iotlb != NULL)
		return false;
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++)
		if ((vhu_packed_desc_flags(vr, slot + k) & kind_mask) != kind)
			return false;
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		struct vring_packed_desc d;

		vhu_packed_desc_read(vr->packed.desc, slot + k, &d);
		if (d.len < RTE_MAX(min_len, 1u))
			return false;
		b->gpa[k] = d.addr;
		b->len[k] = d.len;
		b->id[k] = d.id;
	}
	return vhu_vring_batch_map(vr, b);
}

/* The used position moves @nslots slots on, flipping the wrap counter at the ring's end. */
static inline void
vhu_packed_used_advance(struct vhu_vring *vr, uint16_t nslots)
{
	vr->last_used_idx += nslots;
	if (vr->last_used_idx >= vr->size) {
		vr->last_used_idx -= vr->size;
		vr->packed.used_wrap = !vr->packed.used_wrap;
	}
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
	vhu_packed_used_advance(vr, nslots);
}

/*
 * Buffer @id (@nslots ring slots) of a guest TX ring, which the device
 * only read, is done. With IN_ORDER negotiated, the buffers done since the
 * last publish go back as one run: a used descriptor in the first one's
 * slot naming the last, from which the driver knows that the buffers
 * before it in the ring are used too (VIRTIO 1.2, in-order use of
 * descriptors). DPDK's virtio driver then reads one used descriptor a
 * burst instead of one a frame (16 instructions a frame). Only guest TX
 * rings: the driver of a guest RX ring needs each used length.
 */
static inline void
vhu_packed_complete_read(struct vhu_vring *vr, uint16_t id, uint16_t nslots)
{
	struct vhu_packed_view *pk = &vr->packed;

	if (!vr->neg.in_order || pk->npending == 0) {
		vhu_packed_complete(vr, id, nslots, 0);
		return;
	}
	pk->pending[pk->npending - 1].id = id;
	vhu_packed_used_advance(vr, nslots);
}

/*
 * The batch @b, peeked at the available index, is taken and handed back
 * used at once, @written[k] bytes written into buffer k (@written NULL:
 * none, the device read them). Written in place, not kept aside:
 * completions kept aside from before it are in earlier slots, which the
 * driver must see used before it looks at these, so the order in which it
 * finds them used stays the ring's.
 *
 * Read buffers (guest TX) with IN_ORDER negotiated are kept aside
 * instead, as part of the burst's run (vhu_packed_complete_read()).
 */
static inline void
vhu_packed_batch_complete(struct vhu_vring *vr, const struct vhu_batch *b,
			  const uint32_t *written)
{
	struct vhu_packed_view *pk = &vr->packed;
	static const uint32_t nothing[VHU_BATCH];

	vr->last_avail_idx += VHU_BATCH;
	if (vr->last_avail_idx == vr->size) {
		vr->last_avail_idx = 0;
		pk->avail_wrap = !pk->avail_wrap;
	}
	if (written == NULL && vr->neg.in_order) {
		vhu_packed_complete_read(vr, b->id[VHU_BATCH - 1], VHU_BATCH);
		return;
	}
	vhu_packed_used_put_batch(vr, vr->last_used_idx, b->id, written != NULL ? written : nothing,
				  pk->used_wrap ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0);
	vhu_packed_used_advance(vr, VHU_BATCH);
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
