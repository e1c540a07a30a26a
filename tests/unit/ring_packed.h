/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The packed ring's guest driver (packed_ops, ring.h), and what of it only
 * the packed ring's own tests use: the descriptor ring and event areas, the
 * device's position as slots and wrap counters, explicit bases and buffer ids.
 *
 * The driver follows the VIRTIO 1.1 packed ring: a chain is written over
 * consecutive slots (wrapping at the ring size, descriptors past the end
 * carrying the flipped wrap counter), buffer id in its last descriptor, head
 * flags last; used descriptors are read at the driver's used slot, which
 * moves by the number of descriptors of the buffer they return. The wrap
 * counter of a lap is 1 in the first lap from R.start, 0 in the next, ...
 */
#ifndef VHU_UNIT_RING_PACKED_H
#define VHU_UNIT_RING_PACKED_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_defs.h"

#include "ring.h"

#define PK	VHU_BIT(VIRTIO_F_RING_PACKED)

#define F_AVAIL	VRING_PACKED_DESC_F_AVAIL
#define F_USED	VRING_PACKED_DESC_F_USED

/* The buffer id in the descriptors of a chain but its last. */
#define JUNK_ID		0xdead

/* The driver's view of the ring. */
struct packed_driver {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *drv_ev;
	struct vring_packed_desc_event *dev_ev;
	uint16_t used_slot;		/* next slot it expects a used descriptor in */
	bool used_wrap;
	uint32_t inflight;		/* slots made available and not yet used */
	uint32_t ids;
	/* descriptors of each buffer id in flight; last: see packed_driver_size() */
	uint16_t id_slots[VHU_VRING_MAX_SIZE];
};

extern struct packed_driver P;

/* A ring of @size entries started at SET_VRING_BASE @base (bits 0-14 slot, 15 wrap counter). */
bool packed_setup_base(uint32_t size, uint64_t features, uint32_t base);
/* The driver's position for @base: its slot, plus a lap when its wrap counter is 0. */
uint32_t packed_start(uint32_t size, uint32_t base);

/* post() with buffer id @id. */
struct posted packed_post_id(const struct dspec *d, unsigned int n, uint16_t id);
void packed_desc_set(struct vring_packed_desc *t, uint32_t i, uint64_t addr, uint32_t len,
		     uint16_t flags);

/* The driver's wrap counter in lap @lap. */
static inline bool
lap_wrap(uint32_t lap)
{
	return lap % 2 == 0;
}

/* The device's position: slot and wrap counter of the next available and used entries. */
bool packed_at(uint16_t avail_slot, bool avail_wrap, uint16_t used_slot, bool used_wrap);

#endif /* VHU_UNIT_RING_PACKED_H */
