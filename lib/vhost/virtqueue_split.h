/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue, device side: available-ring consumption, descriptor chain
 * walking, used-ring production. Bookkeeping only; no packet data is copied.
 * Guest memory is touched only through split_access.h.
 *
 * Every value read from guest memory is read once into a local and checked
 * before use: the guest may change the ring under us at any time.
 */
#ifndef VHU_VIRTQUEUE_SPLIT_H
#define VHU_VIRTQUEUE_SPLIT_H

#include "memory.h"
#include "split_access.h"
#include "vring.h"

/*
 * Number of chains the driver has made available (at most @max); they are
 * what vhu_split_take() hands out until the next call. An available index
 * more than a ring ahead marks the ring broken.
 */
uint16_t vhu_split_available(struct vhu_vring *vr, uint16_t max);

/* Chains the driver has made available and we have not taken, read only. */
uint16_t vhu_split_waiting(const struct vhu_vring *vr);

/*
 * Take the next available chain. @device_writes: the chain must be writable
 * (guest RX) or read-only (guest TX). Walking stops once @want bytes are
 * mapped, so a long chain costs no more than what is used of it.
 */
/* Behind a vIOMMU: asks for the buffers of up to @max available chains (vring.h). */
void vhu_split_ask_ahead(struct vhu_vring *vr, bool device_writes, uint16_t max);

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

	if (vr->last_avail_idx == vr->split.avail_idx_shadow)
		return false;
	head = vhu_split_avail_head(vr, vr->last_avail_idx);
	if (head >= vr->size)
		return false;
	vhu_split_desc_read(vr->split.desc, head, &d);
	if (!vhu_vring_one_piece(vr, device_writes, min_len, d.flags, d.addr, d.len, head, c))
		return false;
	vr->last_avail_idx++;
	return true;
}

/*
 * The next four available chains as a batch (vring.h), if each is of the
 * common kind of vhu_split_take_one(). True with @b set; nothing is taken
 * either way: vhu_split_batch_complete() takes them. Anything else (a
 * chain, an indirect table, a bad head or buffer, a vIOMMU) is left to the
 * one-chain path, which reports what is bad exactly as it always does.
 */
static inline bool
vhu_split_batch_peek(struct vhu_vring *vr, bool device_writes, uint32_t min_len,
		     struct vhu_batch *b)
{
	const uint16_t idx = vr->last_avail_idx;
	const uint16_t kind = device_writes ? VRING_DESC_F_WRITE : 0;

	if ((uint16_t)(vr->split.avail_idx_shadow - idx) < VHU_BATCH || vr->iotlb != NULL)
		return false;
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		b->id[k] = vhu_split_avail_head(vr, (uint16_t)(idx + k));
		if (b->id[k] >= vr->size)
			return false;
	}
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		struct vring_desc d;

		vhu_split_desc_read(vr->split.desc, b->id[k], &d);
		if ((d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE)) !=
		    kind || d.len < RTE_MAX(min_len, 1u))
			return false;
		b->gpa[k] = d.addr;
		b->len[k] = d.len;
	}
	return vhu_vring_batch_map(vr, b);
}

/*
 * The batch @b, peeked at the available index, is taken and done,
 * @written[k] bytes written into buffer k (@written NULL: none).
 */
static inline void
vhu_split_batch_complete(struct vhu_vring *vr, const struct vhu_batch *b, const uint32_t *written)
{
	vr->last_avail_idx += VHU_BATCH;
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++)
		vhu_split_used_put(vr, (uint16_t)(vr->last_used_idx + k), b->id[k],
				   written != NULL ? written[k] : 0);
	vr->last_used_idx += VHU_BATCH;
}

/* Record that the chain with head @id is done, @len bytes written into it. Not yet visible. */
static inline void
vhu_split_complete(struct vhu_vring *vr, uint16_t id, uint32_t len)
{
	vhu_split_used_put(vr, vr->last_used_idx, id, len);
	vr->last_used_idx++;
}

/* Ring slots taken since available position @avail_idx. */
static inline uint32_t
vhu_split_slots_since(const struct vhu_vring *vr, uint16_t avail_idx)
{
	return (uint16_t)(vr->last_avail_idx - avail_idx);
}

/* Chains completed since used position @used_idx now go back with length 0. */
static inline void
vhu_split_discard_since(struct vhu_vring *vr, uint16_t used_idx)
{
	for (uint16_t i = used_idx; i != vr->last_used_idx; i++)
		vhu_split_used_set_len(vr, i, 0);
}

/* Make completed chains visible to the driver and interrupt it unless it asked not to. */
void vhu_split_publish(struct vhu_vring *vr);

/*
 * Ask the driver to kick us when it makes chains available (@want), or not
 * to (we poll). With @want, true when chains are available already: the
 * driver may have made them so before it could see the request, and will
 * not kick for them.
 */
bool vhu_split_want_kicks(struct vhu_vring *vr, bool want);

#endif /* VHU_VIRTQUEUE_SPLIT_H */
