/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest side shared by the data-path unit tests (test_virtqueue.c,
 * test_split.c, test_packed.c): guest memory the test maps itself
 * (MAP_SHARED, the same memfds as the library's memory table), buffers and
 * indirect tables in it, frames, mbufs, and the EAL and mbuf pool the tests
 * run on.
 *
 * The ring itself, and the guest driver of each layout, are in ring.h.
 *
 * Guest memory:
 *   region 0: GPA_BASE,  GUEST_SIZE bytes  (rings, indirect tables, buffers:
 *             see ring.h)
 *   region 1: GPA2_BASE, GUEST2_SIZE bytes (adjacent to region 0 in gpa space,
 *             a different file: buffers can straddle the two)
 * The front-end addresses given to the library are non-canonical (never
 * dereferenceable), so anything that uses them without translating them
 * through the memory table crashes at once.
 *
 * Nothing here uses check.h, whose counters are per translation unit: the
 * helpers return what they found (and print what differs), the tests assert.
 */
#ifndef VHU_UNIT_GUEST_FIXTURE_H
#define VHU_UNIT_GUEST_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_gso.h>

#include "memory.h"
#include "vhu.h"
#include "virtio_defs.h"

#define GUEST_SIZE	(4u << 20)
#define GUEST2_SIZE	0x10000u
#define GPA_BASE	UINT64_C(0x100000)
#define GPA2_BASE	(GPA_BASE + GUEST_SIZE)
/* Non-canonical x86-64 addresses: dereferencing one faults. */
#define FE_BASE		UINT64_C(0x8000123400000000)
#define FE2_BASE	UINT64_C(0x8000567800000000)

#define V1	VHU_BIT(VIRTIO_F_VERSION_1)
#define MRG	VHU_BIT(VIRTIO_NET_F_MRG_RXBUF)
#define EVIDX	VHU_BIT(VIRTIO_RING_F_EVENT_IDX)

#define SENTINEL	0xcc	/* fresh RX buffers are filled with it */
#define HDR_BYTE	0xee	/* TX virtio-net headers are filled with it */

#define POOL_N		4095u
/* The port the rings under test give the mbufs they deliver (deq() checks every one). */
#define UNIT_MBUF_PORT	5u
#define MAX_TRACKED	512

/* The guest's side of the current test; guest_setup() starts it afresh. */
struct guest {
	int memfd, memfd2;
	uint8_t *g, *g2;		/* our (the guest's) view of the regions */
	int callfd;			/* the ring's call eventfd, for calls() */
	struct vhu_vring *vr;		/* the ring under test, set by the fixture */
	uint32_t buf_next;		/* galloc() goes on from here ... */
	uint32_t indir_next;		/* ... indirect_alloc() from here, */
	uint32_t indir_end;		/* up to here */
	struct rte_mbuf *mbufs[MAX_TRACKED];	/* freed at teardown */
	unsigned int nmbufs;
};

extern struct guest G;
extern struct rte_mempool *mp;		/* the test pool, POOL_N mbufs */
/* The segmentation pools towards guests, as a port has them (segment.h); rings get them. */
extern struct rte_gso_ctx gso;

/* The two regions as SET_MEM_TABLE describes them. */
extern const struct vhu_mem_region_desc guest_regions[2];

/* Set-up failures are not test failures: say what failed and exit(2). */
__rte_noreturn void die(const char *what);
int xdup(int fd);

/*
 * Fresh guest memory (both regions zeroed), a fresh call eventfd, no tracked
 * mbufs. Indirect tables go to region 0 from @indir_off up to @buf_off,
 * buffers from @buf_off to its end.
 */
void guest_setup(uint32_t indir_off, uint32_t buf_off);
/* A memory table of both regions, as SET_MEM_TABLE makes it: one reference, ours. */
struct vhu_mem_table *guest_mem_table(void);
/* Unmaps our view of guest memory and closes its files (not the call fd). */
void guest_teardown(void);

/* ---- guest memory ---- */

uint64_t gpa(const void *p);
/* A fresh buffer in region 0, filled with SENTINEL. */
uint8_t *galloc(uint32_t len);
/* Room for an indirect table of @n 16-byte descriptors (split or packed), zeroed. */
void *indirect_alloc(uint32_t n);

/* ---- frames ---- */

/* A @len-byte TX header asking for no offload: flags and gso_type 0, the rest HDR_BYTE. */
void no_offload_hdr(uint8_t *h, size_t len);
/* A recognisable frame: Ethernet header, then a pattern from @seed. */
void make_frame(uint8_t *f, uint32_t len, uint32_t seed);
/*
 * A fresh @len-byte TX buffer holding bytes *@pos on of an @hdr_len-byte
 * header that asks for no offload (flags and gso_type 0, every other byte
 * HDR_BYTE, which must then be ignored) followed by @frame; moves *@pos on.
 * Consecutive calls fill the buffers of one chain.
 */
uint8_t *tx_buf(uint32_t len, uint32_t hdr_len, const uint8_t *frame, uint32_t *pos);

/*
 * The @hdr_len-byte (10 or 12) virtio-net header the device writes: all zero
 * but num_buffers (its last two bytes, with 12). Prints it when not.
 */
bool hdr_is(const uint8_t *h, uint32_t hdr_len, uint16_t num_buffers);

/* ---- mbufs ---- */

/* Frees @m at teardown. */
void track(struct rte_mbuf *m);
/* Frees a tracked mbuf before teardown (the application letting go of it). */
void app_free(struct rte_mbuf *m);
/* Frees every tracked mbuf (the teardown). */
void free_tracked(void);
/* A tracked mbuf (chain) from the test pool holding @data, in segments of @seglens. */
struct rte_mbuf *mk_mbuf(const uint8_t *data, const uint32_t *seglens, unsigned int nseg);
/* As few segments as @len needs (one unless it exceeds the data room). */
struct rte_mbuf *mk_mbuf1(const uint8_t *data, uint32_t len);
/* Checks an mbuf chain's lengths and bytes; prints what differs. */
bool mbuf_is(const struct rte_mbuf *m, const uint8_t *exp, uint32_t len);

/* ---- the ring under test (G.vr) ---- */

/* A dequeue burst from the test pool; the mbufs it returns are tracked. */
uint16_t deq(struct rte_mbuf **pkts, uint16_t n);
uint16_t enq(struct rte_mbuf **pkts, uint16_t n);
/* Interrupts sent since the last call (reads and clears the eventfd). */
uint64_t calls(void);
const struct vhu_vring_stats *stats(void);

/* ---- the process ---- */

/*
 * Starts EAL (on one lcore we may run on, no hugepages, no files left
 * behind) and creates the test pool and the segmentation pools. False, with
 * a message, when it could not.
 */
bool unit_start(const char *prog);
/* Every mbuf of the pools is back in them; prints what is missing. */
bool pools_full(void);
/* Frees the pools and stops EAL; returns @status, main()'s exit status. */
int unit_finish(int status);

#endif /* VHU_UNIT_GUEST_FIXTURE_H */
