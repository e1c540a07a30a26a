/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Every access of ours to a split ring in guest memory, one accessor each,
 * with its memory order stated here and nowhere else. The guest writes the
 * available ring and descriptors at any time; we write the used ring.
 *
 *   available index    read with acquire: entries before it are the driver's
 *                      to give, and visible once the index is
 *   available entry    read relaxed, after the index that covers it
 *   available flags,   read relaxed, after the used index was published and
 *   used_event         a full fence (vhu_split_publish)
 *   descriptor         copied out once, then a compiler barrier: checks and
 *                      use see the same copy whatever the guest rewrites
 *   used element       plain stores; ordered by the release of the index
 *   used index         written with release: the elements before it first
 *   used flags,        written relaxed; asking the driver to kick is then
 *   avail_event        followed by a full fence and a read of the available
 *                      index (vhu_split_want_kicks)
 * Every write of the used ring is marked in the dirty log after the store:
 * the front end clears the bitmap while we run, and a mark it cleared
 * between our mark and a later store would lose that store.
 */
#ifndef VHU_SPLIT_ACCESS_H
#define VHU_SPLIT_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <rte_atomic.h>

#include "vring.h"

static inline uint16_t
vhu_split_avail_idx(const struct vhu_vring *vr)
{
	return __atomic_load_n(&vr->split.avail->idx, __ATOMIC_ACQUIRE);
}

/* The head the driver put at available position @idx (any 16-bit position). */
static inline uint16_t
vhu_split_avail_head(const struct vhu_vring *vr, uint16_t idx)
{
	return __atomic_load_n(&vr->split.avail->ring[idx & (vr->size - 1)], __ATOMIC_RELAXED);
}

static inline uint16_t
vhu_split_avail_flags(const struct vhu_vring *vr)
{
	return __atomic_load_n(&vr->split.avail->flags, __ATOMIC_RELAXED);
}

/* EVENT_IDX: the used index the driver wants a call at (after the available ring). */
static inline uint16_t
vhu_split_used_event(const struct vhu_vring *vr)
{
	return __atomic_load_n(&vr->split.avail->ring[vr->size], __ATOMIC_RELAXED);
}

/* Descriptor @i of @table (the ring's, or an indirect one: bytes, maybe unaligned). */
static inline void
vhu_split_desc_read(const void *table, uint32_t i, struct vring_desc *d)
{
	memcpy(d, (const uint8_t *)table + (size_t)i * sizeof(*d), sizeof(*d));
	rte_compiler_barrier();
}

/* Used element at position @idx: chain @id, @len bytes written. Visible at the next publish. */
static inline void
vhu_split_used_put(struct vhu_vring *vr, uint16_t idx, uint16_t id, uint32_t len)
{
	uint32_t slot = idx & (vr->size - 1);
	struct vring_used_elem *e = &vr->split.used->ring[slot];

	e->id = id;
	e->len = len;
	vhu_vring_log_used(vr, offsetof(struct vring_used, ring) + (uint64_t)slot * sizeof(*e),
			   sizeof(*e));
}

/* Rewrites the length of the used element at position @idx, not yet published. */
static inline void
vhu_split_used_set_len(struct vhu_vring *vr, uint16_t idx, uint32_t len)
{
	uint32_t slot = idx & (vr->size - 1);

	vr->split.used->ring[slot].len = len;
	vhu_vring_log_used(vr, offsetof(struct vring_used, ring) +
			   (uint64_t)slot * sizeof(struct vring_used_elem) +
			   offsetof(struct vring_used_elem, len), sizeof(len));
}

/* The used index in guest memory (where the ring resumes after a restart). */
static inline uint16_t
vhu_split_used_idx(const struct vhu_vring *vr)
{
	return __atomic_load_n(&vr->split.used->idx, __ATOMIC_ACQUIRE);
}

/* Publishes used index @idx. */
static inline void
vhu_split_used_idx_publish(struct vhu_vring *vr, uint16_t idx)
{
	__atomic_store_n(&vr->split.used->idx, idx, __ATOMIC_RELEASE);
	vhu_vring_log_used(vr, offsetof(struct vring_used, idx), sizeof(vr->split.used->idx));
}

static inline void
vhu_split_used_flags_set(struct vhu_vring *vr, uint16_t flags)
{
	__atomic_store_n(&vr->split.used->flags, flags, __ATOMIC_RELAXED);
	vhu_vring_log_used(vr, offsetof(struct vring_used, flags), sizeof(flags));
}

/* EVENT_IDX: the driver kicks once its available index passes @idx (after the used ring). */
static inline void
vhu_split_avail_event_set(struct vhu_vring *vr, uint16_t idx)
{
	const uint64_t offset = offsetof(struct vring_used, ring) +
				(uint64_t)vr->size * sizeof(struct vring_used_elem);

	__atomic_store_n((uint16_t *)((uint8_t *)vr->split.used + offset), idx, __ATOMIC_RELAXED);
	vhu_vring_log_used(vr, offset, sizeof(idx));
}

#endif /* VHU_SPLIT_ACCESS_H */
