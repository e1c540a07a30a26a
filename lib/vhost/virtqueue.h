/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the copy paths (enqueue.c, dequeue.c) need from a ring, whatever its
 * layout: take the next available chain, complete it, give back what a frame
 * took, publish a burst. virtqueue_split.c implements it for split rings.
 */
#ifndef VHU_VIRTQUEUE_H
#define VHU_VIRTQUEUE_H

#include "vring.h"

/* Result of taking a chain. */
enum vhu_take {
	VHU_TAKE_OK,
	VHU_TAKE_MALFORMED,	/* chain consumed; complete it with length 0 */
	VHU_TAKE_BROKEN,	/* the ring itself is corrupt; stop using it */
	VHU_TAKE_EMPTY,		/* nothing (more) available */
};

/* A position in the ring to come back to (a frame that could not finish). */
struct vhu_vq_mark {
	uint16_t avail_idx;
	uint16_t used_idx;
};

static inline void
vhu_vq_mark(const struct vhu_vring *vr, struct vhu_vq_mark *m)
{
	m->avail_idx = vr->last_avail_idx;
	m->used_idx = vr->last_used_idx;
}

/* Give back everything taken and completed since @m. */
static inline void
vhu_vq_rewind(struct vhu_vring *vr, const struct vhu_vq_mark *m)
{
	vr->last_avail_idx = m->avail_idx;
	vr->last_used_idx = m->used_idx;
}

/* Ring slots taken since @m. */
static inline uint16_t
vhu_vq_slots_since(const struct vhu_vring *vr, const struct vhu_vq_mark *m)
{
	return (uint16_t)(vr->last_avail_idx - m->avail_idx);
}

#endif /* VHU_VIRTQUEUE_H */
