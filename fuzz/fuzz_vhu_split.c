/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: the split ring data path (virtqueue_split.c, the copy
 * paths in dequeue.c and enqueue.c, netoffload.c) on guest memory the input
 * fills, for a ring set up through the control path (fuzz_ring.h).
 *
 * The input plays the guest driver: it posts chains (direct or through an
 * indirect table, with buffer contents), rewrites descriptors, available
 * entries and the available index behind the device's back, sets event
 * suppression, and runs bursts both ways between control messages.
 *
 * Checked beyond the common checks (fuzz_common.h): the used index a burst
 * publishes matches the ring's, and every used entry of a guest TX burst
 * names a descriptor of the ring, with length 0.
 */
#include <string.h>

#include "fuzz_ring.h"
#include "virtio_defs.h"

enum {
	SPLIT_POST,	/* a chain, then its head in the available ring */
	SPLIT_DESC,	/* one descriptor rewritten */
	SPLIT_AVAIL,	/* an available entry or the available index rewritten */
	SPLIT_EVENT,	/* interrupt suppression: flags and used_event */
	SPLIT_OPS
};

/* Descriptor flags the input asks for in @how (FZ_POST_*), NEXT unless @last. */
static uint16_t
desc_flags(uint8_t how, bool last)
{
	return (uint16_t)(((how & FZ_POST_WRITE) ? VRING_DESC_F_WRITE : 0) |
			  ((how & FZ_POST_INDIRECT) ? VRING_DESC_F_INDIRECT : 0) |
			  (last ? 0 : VRING_DESC_F_NEXT));
}

static void
put_desc(struct vring_desc *table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
	 uint16_t next)
{
	const struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	/* Indirect tables need not be aligned in guest memory. */
	memcpy((uint8_t *)table + (size_t)i * sizeof(d), &d, sizeof(d));
}

/*
 * Control byte: descriptors (1 + bits 0-2), bit 3 an indirect table at a
 * guest address that follows, bit 4 not made available (a chain the device
 * must not see yet).
 */
static void
post(struct fz_ring *g, struct fz_reader *r)
{
	uint8_t ctl = fz_u8(r);
	unsigned int n = 1 + (ctl & 7);
	bool indirect = (ctl & 0x08) != 0;
	uint64_t table_gpa = indirect ? fz_u32(r) : 0;
	struct vring_desc *ring = fz_ring_area(g, FZ_DESC_OFF);
	struct vring_desc *table = indirect ?
		fz_ring_guest(g, table_gpa, n * sizeof(struct vring_desc)) : ring;
	struct vring_avail *avail = fz_ring_area(g, FZ_AVAIL_OFF);
	uint32_t size = g->size;
	uint16_t head = (uint16_t)(g->next % size);
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct fz_post_desc d;
		bool last;
		uint32_t idx = indirect ? i : (head + i) % size;

		fz_ring_read_desc(g, r, &d);
		last = i + 1 == n || (d.how & FZ_POST_END);
		if (table != NULL)
			put_desc(table, idx, d.addr, d.len, desc_flags(d.how, last),
				 (uint16_t)(indirect ? i + 1 : (idx + 1) % size));
		if (last)
			break;
	}
	if (indirect) {
		put_desc(ring, head, table_gpa, (i + 1) * (uint32_t)sizeof(struct vring_desc),
			 VRING_DESC_F_INDIRECT, 0);
		g->next++;
	} else {
		g->next += i + 1;
	}
	if (ctl & 0x10)
		return;
	uint16_t idx = avail->idx;

	avail->ring[idx % size] = head;
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static void
split_op(struct fz_ring *g, unsigned int op, struct fz_reader *r)
{
	struct vring_avail *avail = fz_ring_area(g, FZ_AVAIL_OFF);

	switch (op) {
	case SPLIT_POST:
		post(g, r);
		break;
	case SPLIT_DESC: {
		uint16_t i = fz_u16(r) % g->size;
		uint64_t addr = fz_u64(r);
		uint32_t len = fz_u32(r);
		uint16_t flags = fz_u16(r);

		put_desc(fz_ring_area(g, FZ_DESC_OFF), i, addr, len, flags, fz_u16(r));
		break;
	}
	case SPLIT_AVAIL: {
		uint8_t what = fz_u8(r);
		uint16_t v = fz_u16(r);

		if (what & 1)
			avail->ring[v % g->size] = fz_u16(r);
		else
			__atomic_store_n(&avail->idx, (uint16_t)(avail->idx + v), __ATOMIC_RELEASE);
		break;
	}
	case SPLIT_EVENT:
		avail->flags = fz_u16(r);
		avail->ring[g->size] = fz_u16(r);	/* used_event */
		break;
	}
}

static void
split_check_used(struct fz_ring *g, const struct fz_ring_mark *before, bool rx)
{
	const struct vhu_vring *vr = g->vr;
	const struct vring_used *used = fz_ring_area(g, FZ_USED_OFF);

	FZ_CHECK(used->idx == vr->last_used_idx, "used index %u in guest memory, %u in the ring",
		 used->idx, vr->last_used_idx);
	/*
	 * Entries are written as chains complete, so on a guest RX ring a
	 * later frame may land on them: a guest is free to give us buffers
	 * over its own used ring. Only what a guest TX burst wrote is sure to
	 * be the library's.
	 */
	if (rx)
		return;
	for (uint16_t i = before->used_idx; i != vr->last_used_idx; i++) {
		const struct vring_used_elem *e = &used->ring[i & (vr->size - 1)];

		FZ_CHECK(e->id < vr->size && e->len == 0,
			 "used entry %u names descriptor %u of %u with length %u", i, e->id,
			 vr->size, e->len);
	}
}

static const struct fz_layout split = {
	.packed = false,
	.nops = SPLIT_OPS,
	.op = split_op,
	.check_used = split_check_used,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_ring_run(&split, data, size);
	return 0;
}
