/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Every access of ours to a packed ring in guest memory, one accessor each,
 * with its memory order stated here and nowhere else. Driver and device
 * share the descriptor ring: a descriptor's flags hand it over.
 *
 *   descriptor flags   read with acquire: the rest of the descriptor (and
 *                      the chain after it) is the driver's once they say so
 *   descriptor         copied out once, then a compiler barrier: checks and
 *                      use see the same copy whatever the guest rewrites
 *   used descriptor    id and length plain, then the flags with release
 *   used batch         four slots in a row: ids and lengths plain, a release
 *                      fence, the flags of the last three, then the first
 *                      slot's flags with release: the driver, which reads
 *                      in order, sees the four at once and never a later
 *                      one used before an earlier one
 *   driver event       read relaxed, after a full fence (vhu_packed_publish)
 *   device event       offset and wrap relaxed, then the flags with release
 *                      (a driver that sees DESC sees where); asking the
 *                      driver to kick is then followed by a full fence and a
 *                      read of the next descriptor's flags
 *                      (vhu_packed_want_kicks)
 * A used descriptor is marked in the dirty log after its stores, as the
 * split used ring is (split_access.h).
 */
#ifndef VHU_PACKED_ACCESS_H
#define VHU_PACKED_ACCESS_H

#include <stdint.h>
#include <string.h>

#include <rte_atomic.h>

#include "vring.h"

static inline uint16_t
vhu_packed_desc_flags(const struct vhu_vring *vr, uint16_t slot)
{
	return __atomic_load_n(&vr->packed.desc[slot].flags, __ATOMIC_ACQUIRE);
}

/* Descriptor @i of @table (the ring's, or an indirect one). */
static inline void
vhu_packed_desc_read(const void *table, uint32_t i, struct vring_packed_desc *d)
{
	memcpy(d, (const uint8_t *)table + (size_t)i * sizeof(*d), sizeof(*d));
	rte_compiler_barrier();
}

/* Hands slot @slot back used: buffer @id, @len bytes written, wrap bits @flags. */
static inline void
vhu_packed_used_put(struct vhu_vring *vr, uint16_t slot, uint16_t id, uint32_t len,
		    uint16_t flags)
{
	struct vring_packed_desc *d = &vr->packed.desc[slot];

	d->id = id;
	d->len = len;
	__atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
	vhu_vring_log_used(vr, (uint64_t)slot * sizeof(*d), sizeof(*d));
}

/*
 * Hands slots @slot .. @slot + 3 (not wrapping) back used: buffer @id[k],
 * @len[k] bytes written, wrap bits @flags (WRITE added where bytes were).
 */
static inline void
vhu_packed_used_put_batch(struct vhu_vring *vr, uint16_t slot, const uint16_t *id,
			  const uint32_t *len, uint16_t flags)
{
	struct vring_packed_desc *d = &vr->packed.desc[slot];

	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		d[k].id = id[k];
		d[k].len = len[k];
	}
	/*
	 * Each flags store a release: ids and lengths are seen before any flag.
	 * (One release fence and relaxed stores would do the same, but
	 * ThreadSanitizer does not model fences; on x86-64 both are plain stores.)
	 */
	VHU_BATCH_UNROLL
	for (unsigned int k = 1; k < VHU_BATCH; k++)
		__atomic_store_n(&d[k].flags, flags | (len[k] ? VRING_DESC_F_WRITE : 0),
				 __ATOMIC_RELEASE);
	__atomic_store_n(&d[0].flags, flags | (len[0] ? VRING_DESC_F_WRITE : 0), __ATOMIC_RELEASE);
	vhu_vring_log_used(vr, (uint64_t)slot * sizeof(*d), VHU_BATCH * sizeof(*d));
}

static inline uint16_t
vhu_packed_driver_event_flags(const struct vhu_vring *vr)
{
	return __atomic_load_n(&vr->packed.driver_event->flags, __ATOMIC_RELAXED);
}

static inline uint16_t
vhu_packed_driver_event_off_wrap(const struct vhu_vring *vr)
{
	return __atomic_load_n(&vr->packed.driver_event->off_wrap, __ATOMIC_RELAXED);
}

/* Kicks wanted as @flags say (VRING_PACKED_EVENT_FLAG_*), for DESC at @off_wrap. */
static inline void
vhu_packed_device_event_set(struct vhu_vring *vr, uint16_t off_wrap, uint16_t flags)
{
	__atomic_store_n(&vr->packed.device_event->off_wrap, off_wrap, __ATOMIC_RELAXED);
	__atomic_store_n(&vr->packed.device_event->flags, flags, __ATOMIC_RELEASE);
}

#endif /* VHU_PACKED_ACCESS_H */
