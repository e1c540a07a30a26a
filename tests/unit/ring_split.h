/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The split ring's guest driver (split_ops, ring.h), and what of it only the
 * split ring's own tests use: the three areas, single descriptors, raw heads
 * and the used index as it stands in guest memory.
 */
#ifndef VHU_UNIT_RING_SPLIT_H
#define VHU_UNIT_RING_SPLIT_H

#include <stdint.h>

#include "virtio_defs.h"

#include "ring.h"

/* The driver's view of the ring. */
struct split_driver {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint32_t next_desc;		/* descriptors are handed out round the table */
	uint16_t used_read;		/* the next used entry it reads */
	uint16_t snap_used_flags;	/* as at the last snapshot */
};

extern struct split_driver S;

/* The next descriptor of the table (round it, from R.start on). */
uint16_t split_desc_new(void);
void split_desc_set(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next);
/* Makes the chain at @head (any value) available. */
struct posted split_push(uint16_t head);
/*
 * A good-looking chain in descriptor @slot of @table, just past its end: a
 * walk that wrongly reached it would make a good frame (catches off-by-one).
 */
void split_bait(struct vring_desc *table, uint32_t slot);

/* The used index in guest memory. */
static inline uint16_t
used_idx(void)
{
	return __atomic_load_n(&S.used->idx, __ATOMIC_ACQUIRE);
}

#endif /* VHU_UNIT_RING_SPLIT_H */
