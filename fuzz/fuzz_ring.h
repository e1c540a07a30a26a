/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the two ring harnesses (fuzz_vhu_split.c, fuzz_vhu_packed.c) share:
 * guest memory in three memfd regions, one ring set up through the real
 * control path with features, size and base from the input, and the
 * operations on it that do not depend on the ring layout (raw writes to
 * guest memory, bursts, control messages while the ring runs). Each harness
 * adds the guest driver of its layout: posting chains, rewriting
 * descriptors and indices, event suppression.
 *
 * Input: a configuration (fz_ring_run), then operations, one byte each
 * choosing what follows. Bit 15 of the configuration puts the ring on the
 * zero-copy port: dequeue bursts that keep their mbufs (fz_dequeue) then
 * hold guest chains and memory across later operations and the disconnect.
 */
#ifndef VHU_FUZZ_RING_H
#define VHU_FUZZ_RING_H

#include "fuzz_common.h"

/*
 * Guest memory: region 0 holds the ring and room for buffers, region 1
 * follows it in guest physical space (a buffer may run from one into the
 * other: two pieces), region 2 lies apart and starts one page into its file.
 */
#define FZ_REGIONS	3
#define FZ_MEM0_SIZE	0x10000u

/* Where the ring areas lie in region 0. */
#define FZ_DESC_OFF	0x0000u		/* descriptor table / packed ring */
#define FZ_AVAIL_OFF	0x4000u		/* available ring / driver event area */
#define FZ_USED_OFF	0x5000u		/* used ring / device event area */
/* Largest ring the areas have room for. */
#define FZ_RING_MAX	1024u

/* The ring under test (a guest TX ring, so that SEND_RARP applies) and its guest. */
#define FZ_RING_INDEX	1

struct fz_ring {
	int fd[FZ_REGIONS];		/* the library gets dups */
	uint8_t *view[FZ_REGIONS];	/* the guest driver's mapping of each region */
	int callfd;			/* the library gets dups */
	uint64_t calls_before;		/* the ring's notification count at the start */
	struct vhu_vring *vr;
	uint64_t features;
	uint32_t size;			/* ring size as the driver last set it */
	/* the guest driver of the layout */
	uint16_t next;			/* split: next free descriptor; packed: next slot */
	bool wrap;			/* packed: the driver's wrap counter */
};

/* Ring state before a burst, for the layout's checks of what the burst wrote. */
struct fz_ring_mark {
	uint16_t used_idx;
	bool used_wrap;
};

struct fz_layout {
	bool packed;
	/* Guest driver operations of this layout: @op < nops. */
	unsigned int nops;
	void (*op)(struct fz_ring *g, unsigned int op, struct fz_reader *r);
	/* Checks the used entries a burst just published (@rx: an enqueue burst). */
	void (*check_used)(struct fz_ring *g, const struct fz_ring_mark *before, bool rx);
};

/* Runs one input on a fresh guest and ring of layout @l. */
void fz_ring_run(const struct fz_layout *l, const uint8_t *data, size_t size);

/* The driver's view of @len bytes of guest memory at @gpa, or NULL if not all mapped. */
void *fz_ring_guest(struct fz_ring *g, uint64_t gpa, uint64_t len);

/* The driver's view of the ring areas (region 0). */
static inline void *
fz_ring_area(struct fz_ring *g, uint32_t offset)
{
	return g->view[0] + offset;
}

/*
 * Reads a buffer the driver posts: guest address, length and the flags the
 * input asks for (FZ_POST_*), and optionally bytes to put in it first.
 */
#define FZ_POST_WRITE		0x01	/* device-writable */
#define FZ_POST_INDIRECT	0x02	/* an indirect flag where none belongs */
#define FZ_POST_END		0x04	/* the chain ends here, whatever its length */
#define FZ_POST_BYTES		0x80	/* contents follow: count (u8) and bytes */
struct fz_post_desc {
	uint64_t addr;
	uint32_t len;
	uint8_t how;
};
void fz_ring_read_desc(struct fz_ring *g, struct fz_reader *r, struct fz_post_desc *d);

#endif /* VHU_FUZZ_RING_H */
