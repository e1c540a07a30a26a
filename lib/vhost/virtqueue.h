/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the copy paths (enqueue.c, dequeue.c) need from a ring, whatever its
 * layout: see how much is available, take the next chain, complete it, give
 * back what a frame took, publish a burst. Each call picks the layout's
 * implementation (virtqueue_split.c, virtqueue_packed.c).
 */
#ifndef VHU_VIRTQUEUE_H
#define VHU_VIRTQUEUE_H

#include "virtqueue_packed.h"
#include "virtqueue_split.h"

/* Whether the ring's areas are mapped (its used area can be written). */
static inline bool
vhu_vq_mapped(const struct vhu_vring *vr)
{
	return vr->neg.packed ? vr->packed.desc != NULL : vr->split.used != NULL;
}

/*
 * Chains available now, at most @max. For a packed ring, where counting
 * means walking, this is @max when at least one chain is there, else 0.
 */
static inline uint16_t
vhu_vq_available(struct vhu_vring *vr, uint16_t max)
{
	return vr->neg.packed ? vhu_packed_available(vr, max) : vhu_split_available(vr, max);
}

/* Chains available and not taken yet, read only (what rx_queue_count reports). */
static inline uint16_t
vhu_vq_waiting(const struct vhu_vring *vr)
{
	return vr->neg.packed ? vhu_packed_waiting(vr) : vhu_split_waiting(vr);
}

/*
 * Behind a vIOMMU, after a miss: the translations of the buffers of up to
 * @max chains available from the next one on are asked for, nothing taken.
 */
static inline void
vhu_vq_ask_ahead(struct vhu_vring *vr, bool device_writes, uint16_t max)
{
	if (vr->neg.packed)
		vhu_packed_ask_ahead(vr, device_writes, max);
	else
		vhu_split_ask_ahead(vr, device_writes, max);
}

/*
 * Take the next available chain. @device_writes: it must be writable (guest
 * RX) or read-only (guest TX). Translation stops once @want bytes are mapped.
 */
static inline enum vhu_take
vhu_vq_take(struct vhu_vring *vr, bool device_writes, uint64_t want, struct vhu_chain *c)
{
	return vr->neg.packed ? vhu_packed_take(vr, device_writes, want, c) :
			    vhu_split_take(vr, device_writes, want, c);
}

/*
 * Take the next chain if it is the common kind: one direct descriptor of at
 * least @min_len bytes in one memory region (@c gets that one piece). False,
 * nothing taken and nothing logged, otherwise: vhu_vq_take() handles it.
 */
static inline bool
vhu_vq_take_one(struct vhu_vring *vr, bool device_writes, uint32_t min_len,
		struct vhu_chain *c)
{
	return vr->neg.packed ? vhu_packed_take_one(vr, device_writes, min_len, c) :
			    vhu_split_take_one(vr, device_writes, min_len, c);
}

/*
 * The next four chains as a batch (vring.h), if each is the common kind of
 * vhu_vq_take_one() and the layout lets four go at once; nothing is taken
 * either way. Behind a vIOMMU batches never form. @packed is
 * vr->neg.packed, given by a caller instantiated once per layout (a test
 * of the layout per batch costs the packed batch path 4 instructions per
 * frame).
 */
static __rte_always_inline bool
vhu_vq_batch_peek(struct vhu_vring *vr, const bool packed, bool device_writes,
		  uint32_t min_len, struct vhu_batch *b)
{
	return packed ? vhu_packed_batch_peek(vr, device_writes, min_len, b) :
			vhu_split_batch_peek(vr, device_writes, min_len, b);
}

/*
 * The batch @b, just peeked, is taken and done, @written[k] bytes written
 * into buffer k (@written NULL: none, the device read them). A packed ring
 * hands it back in place, visible to the driver at once, but for read
 * buffers with IN_ORDER, kept aside as part of a run (virtqueue_packed.h);
 * a split ring's is visible at the next publish.
 */
static __rte_always_inline void
vhu_vq_batch_complete(struct vhu_vring *vr, const bool packed, const struct vhu_batch *b,
		      const uint32_t *written)
{
	if (packed)
		vhu_packed_batch_complete(vr, b, written);
	else
		vhu_split_batch_complete(vr, b, written);
}

/* The chain @id (@nslots ring slots) is done, @len bytes written; visible at the next publish. */
static inline void
vhu_vq_complete_id(struct vhu_vring *vr, uint16_t id, uint16_t nslots, uint32_t len)
{
	if (vr->neg.packed)
		vhu_packed_complete(vr, id, nslots, len);
	else
		vhu_split_complete(vr, id, len);
}

/* Chain @c is done, @len bytes written into it; visible at the next publish. */
static inline void
vhu_vq_complete(struct vhu_vring *vr, const struct vhu_chain *c, uint32_t len)
{
	vhu_vq_complete_id(vr, c->id, c->nslots, len);
}

/* The chain @c of a guest TX ring, which the device only read, is done; visible at the next publish. */
static inline void
vhu_vq_complete_read(struct vhu_vring *vr, const struct vhu_chain *c)
{
	if (vr->neg.packed)
		vhu_packed_complete_read(vr, c->id, c->nslots);
	else
		vhu_split_complete(vr, c->id, 0);
}

/* A position to come back to when a frame cannot finish. */
struct vhu_vq_mark {
	uint16_t avail_idx;
	uint16_t used_idx;
	bool avail_wrap;
	bool used_wrap;
	uint32_t npending;
};

static inline void
vhu_vq_mark(const struct vhu_vring *vr, struct vhu_vq_mark *m)
{
	m->avail_idx = vr->last_avail_idx;
	m->used_idx = vr->last_used_idx;
	m->avail_wrap = vr->packed.avail_wrap;
	m->used_wrap = vr->packed.used_wrap;
	m->npending = vr->packed.npending;
}

/* Give back everything taken and completed since @m. */
static inline void
vhu_vq_rewind(struct vhu_vring *vr, const struct vhu_vq_mark *m)
{
	vr->last_avail_idx = m->avail_idx;
	vr->last_used_idx = m->used_idx;
	vr->packed.avail_wrap = m->avail_wrap;
	vr->packed.used_wrap = m->used_wrap;
	vr->packed.npending = m->npending;
}

/* Ring slots taken since @m. */
static inline uint32_t
vhu_vq_slots_since(const struct vhu_vring *vr, const struct vhu_vq_mark *m)
{
	return vr->neg.packed ? vhu_packed_slots_since(vr, m->avail_idx, m->avail_wrap) :
				vhu_split_slots_since(vr, m->avail_idx);
}

/*
 * Whether chains were completed since @m (and not given back): the used
 * position moved (packed: a ring's worth flips the wrap counter; a split
 * ring's never does).
 */
static inline bool
vhu_vq_completed_since(const struct vhu_vring *vr, const struct vhu_vq_mark *m)
{
	return vr->last_used_idx != m->used_idx || vr->packed.used_wrap != m->used_wrap;
}

/* Every chain completed since @m goes back with length 0 (nothing written). */
static inline void
vhu_vq_discard_since(struct vhu_vring *vr, const struct vhu_vq_mark *m)
{
	if (vr->neg.packed)
		vhu_packed_discard_since(vr, m->npending);
	else
		vhu_split_discard_since(vr, m->used_idx);
}

/*
 * Ask the driver to kick us for new chains (@want), or not to (we poll).
 * With @want, true when chains are available already (no kick comes for them).
 */
static inline bool
vhu_vq_want_kicks(struct vhu_vring *vr, bool want)
{
	return vr->neg.packed ? vhu_packed_want_kicks(vr, want) : vhu_split_want_kicks(vr, want);
}

/* Make the completions visible and call the guest unless it asked not to be. */
static inline void
vhu_vq_publish(struct vhu_vring *vr)
{
	if (vr->neg.packed)
		vhu_packed_publish(vr);
	else
		vhu_split_publish(vr);
}

#endif /* VHU_VIRTQUEUE_H */
