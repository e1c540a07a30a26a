/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: the packed ring data path (virtqueue_packed.c, the copy
 * paths in dequeue.c and enqueue.c, netoffload.c) on guest memory the input
 * fills, for a ring set up through the control path (fuzz_ring.h).
 *
 * The input plays the guest driver: it posts chains over consecutive slots
 * (direct or one indirect table, with buffer contents) flipping its wrap
 * counter as the specification says, rewrites any slot behind the device's
 * back, sets the driver event area, and runs bursts both ways between
 * control messages.
 *
 * Checked beyond the common checks (fuzz_common.h): the first slot a burst
 * hands back carries the device's wrap counter, a length only with the
 * WRITE flag, and none for guest TX buffers.
 */
#include <string.h>

#include "fuzz_ring.h"
#include "virtio_defs.h"

enum {
	PACKED_POST,	/* a chain made available at the driver's slot */
	PACKED_DESC,	/* one slot rewritten, flags and all */
	PACKED_EVENT,	/* the driver event suppression area */
	PACKED_OPS
};

static uint16_t
avail_bits(bool wrap)
{
	return wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
}

static uint16_t
buffer_flags(uint8_t how)
{
	return (uint16_t)(((how & FZ_POST_WRITE) ? VRING_DESC_F_WRITE : 0) |
			  ((how & FZ_POST_INDIRECT) ? VRING_DESC_F_INDIRECT : 0));
}

static void
put_desc(struct vring_packed_desc *table, uint32_t i, uint64_t addr, uint32_t len, uint16_t id,
	 uint16_t flags)
{
	const struct vring_packed_desc d = { .addr = addr, .len = len, .id = id, .flags = flags };

	/* Indirect tables need not be aligned in guest memory. */
	memcpy((uint8_t *)table + (size_t)i * sizeof(d), &d, sizeof(d));
}

/*
 * Control byte: descriptors (1 + bits 0-2), bit 3 an indirect table at a
 * guest address that follows; then the buffer id. The head's flags are
 * written last, as a driver must.
 */
static void
post(struct fz_ring *g, struct fz_reader *r)
{
	uint8_t ctl = fz_u8(r);
	unsigned int n = 1 + (ctl & 7);
	bool indirect = (ctl & 0x08) != 0;
	uint64_t table_gpa = indirect ? fz_u32(r) : 0;
	uint16_t id = fz_u16(r);
	struct vring_packed_desc *ring = fz_ring_area(g, FZ_DESC_OFF);
	struct vring_packed_desc *table = indirect ?
		fz_ring_guest(g, table_gpa, n * sizeof(struct vring_packed_desc)) : NULL;
	uint32_t size = g->size;
	uint16_t head = (uint16_t)(g->next % size);
	uint16_t slot = head;
	bool wrap = g->wrap;
	uint16_t head_flags = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct fz_post_desc d;
		bool last;

		fz_ring_read_desc(g, r, &d);
		last = i + 1 == n || (d.how & FZ_POST_END);
		if (indirect) {
			if (table != NULL)
				put_desc(table, i, d.addr, d.len, id, buffer_flags(d.how));
		} else {
			uint16_t flags = (uint16_t)(buffer_flags(d.how) | avail_bits(wrap) |
						    (last ? 0 : VRING_DESC_F_NEXT));

			put_desc(ring, slot, d.addr, d.len, id, i == 0 ? ring[slot].flags : flags);
			if (i == 0)
				head_flags = flags;
			if (++slot == size) {
				slot = 0;
				wrap = !wrap;
			}
		}
		if (last)
			break;
	}
	if (indirect) {
		head_flags = VRING_DESC_F_INDIRECT | avail_bits(wrap);
		put_desc(ring, slot, table_gpa, (i + 1) * (uint32_t)sizeof(struct vring_packed_desc),
			 id, ring[slot].flags);
		if (++slot == size) {
			slot = 0;
			wrap = !wrap;
		}
	}
	__atomic_store_n(&ring[head].flags, head_flags, __ATOMIC_RELEASE);
	g->next = slot;
	g->wrap = wrap;
}

static void
packed_op(struct fz_ring *g, unsigned int op, struct fz_reader *r)
{
	struct vring_packed_desc_event *ev = fz_ring_area(g, FZ_AVAIL_OFF);

	switch (op) {
	case PACKED_POST:
		post(g, r);
		break;
	case PACKED_DESC: {
		uint16_t slot = fz_u16(r) % g->size;
		uint64_t addr = fz_u64(r);
		uint32_t len = fz_u32(r);
		uint16_t id = fz_u16(r);

		put_desc(fz_ring_area(g, FZ_DESC_OFF), slot, addr, len, id, fz_u16(r));
		break;
	}
	case PACKED_EVENT:
		ev->off_wrap = fz_u16(r);
		__atomic_store_n(&ev->flags, fz_u16(r), __ATOMIC_RELEASE);
		break;
	}
}

static void
packed_check_used(struct fz_ring *g, const struct fz_ring_mark *before, bool rx)
{
	const struct vring_packed_desc *d =
		(const struct vring_packed_desc *)fz_ring_area(g, FZ_DESC_OFF) + before->used_idx;
	uint16_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
	bool avail = (flags & VRING_PACKED_DESC_F_AVAIL) != 0;
	bool used = (flags & VRING_PACKED_DESC_F_USED) != 0;

	FZ_CHECK(avail == before->used_wrap && used == before->used_wrap,
		 "slot %u handed back with flags 0x%x, wrap counter %d", before->used_idx, flags,
		 before->used_wrap);
	FZ_CHECK(((flags & VRING_DESC_F_WRITE) != 0) == (d->len != 0),
		 "slot %u handed back with flags 0x%x and length %u", before->used_idx, flags,
		 d->len);
	FZ_CHECK(rx || d->len == 0, "guest TX buffer %u handed back with length %u", d->id,
		 d->len);
}

static const struct fz_layout packed = {
	.packed = true,
	.nops = PACKED_OPS,
	.op = packed_op,
	.check_used = packed_check_used,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_ring_run(&packed, data, size);
	return 0;
}
