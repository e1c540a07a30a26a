/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Address translation against the number of guest memory regions: the data
 * path (vhu_dequeue_burst, vhu_enqueue_burst) on the unit tests' ring
 * (tests/unit/ring.h), its guest memory cut into N regions, in a steady loop
 * for callgrind to count. bench/regions.py runs the matrix; one case:
 *
 *   valgrind --tool=callgrind --toggle-collect=vhu_dequeue_burst \
 *       build/bench/bench_regions split dequeue 509 2000
 *
 * Each iteration the guest makes 32 one-descriptor chains available, the
 * device takes them in one burst of 32, the guest reads the 32 used entries
 * back. dequeue: 64-byte frames behind a virtio-net header; enqueue: 64-byte
 * mbufs into 2 KiB writable buffers, with mergeable RX buffers (the main
 * benchmark's mrg_rxbuf=1). No offloads; the driver polls (no interrupts).
 *
 * With a fifth argument "iommu", the guest is behind a vIOMMU: ring and
 * buffer addresses go through an IOTLB of 4 KiB entries, one per page of
 * guest memory (ring_behind_iommu(): as QEMU's intel-iommu answers misses),
 * every translation there before the loop.
 *
 * With "intr" instead (dequeue only), the application arms the ring's RX
 * interrupt after each burst and disarms it at once, as an application
 * does around a sleep that is cut short (l3fwd-power): count
 * vhu_vring_intr_enable for the cost of arming and disarming, and
 * vhu_dequeue_burst to see the bursts unchanged.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_log.h>
#include <rte_mbuf.h>

#include "iotlb.h"
#include "memory.h"
#include "vhu.h"
#include "vring.h"

#include "guest_fixture.h"
#include "ring.h"

#include "bench_common.h"

#define RING_SIZE	256
#define BURST		32
#define FRAME_LEN	64
#define PAGE		4096u

/*
 * Buffers sit in 2 KiB slots from RING_BUF_OFF on, the packets of a burst
 * NSLOTS / golden ratio slots apart (1.1 or 1.8 MiB): consecutive packets
 * land in different regions from 8 regions on. NSLOTS is prime, so the walk
 * visits every slot before it comes back to one.
 */
#define SLOT_SIZE	2048u
#define NSLOTS		1523u
#define STEP		941u

static uint32_t next_slot;

static uint8_t *
slot_addr(uint32_t slot)
{
	return G.g + RING_BUF_OFF + slot * SLOT_SIZE;
}

/* The guest address of the next buffer to post. */
static uint64_t
next_buffer(void)
{
	uint64_t a = gpa(slot_addr(next_slot));

	next_slot = (next_slot + STEP) % NSLOTS;
	return a;
}

/*
 * The fixture's region 0 (one memfd of GUEST_SIZE bytes) as @n adjacent
 * regions of equal size, each mapped from its own offset in the file, as a
 * front end describes a guest whose memory came in @n pieces (hot-plugged
 * DIMMs). Whole pages, as real regions are; a multiple of SLOT_SIZE, so no
 * buffer crosses from one region into the next.
 */
static struct vhu_mem_table *
regions_table(uint32_t n)
{
	struct vhu_mem_region_desc desc[VHU_MEM_MAX_REGIONS];
	int fds[VHU_MEM_MAX_REGIONS];
	uint64_t size = RTE_ALIGN_FLOOR(GUEST_SIZE / n, PAGE);
	struct vhu_mem_table *mem;

	/* the pages rounding left out come off the end of guest memory */
	if (size * n < RING_BUF_OFF + NSLOTS * SLOT_SIZE) {
		fprintf(stderr, "%u regions of %" PRIu64 " bytes end before the buffers do\n", n,
			size);
		exit(2);
	}
	for (uint32_t i = 0; i < n; i++) {
		desc[i] = (struct vhu_mem_region_desc){
			.guest_phys_addr = GPA_BASE + i * size,
			.size = size,
			.frontend_addr = FE_BASE + i * size,
			.mmap_offset = i * size,
		};
		fds[i] = xdup(G.memfd);
	}
	mem = vhu_mem_table_create(desc, fds, n, "bench");
	if (mem == NULL)
		die("vhu_mem_table_create");
	return mem;
}

static void
dequeue_loop(uint32_t iterations, uint32_t hdr_len, bool arm_between)
{
	struct rte_mbuf *pkts[BURST];
	struct posted p[BURST];

	/* every slot holds a frame: the guest only posts descriptors in the loop */
	for (uint32_t s = 0; s < NSLOTS; s++) {
		no_offload_hdr(slot_addr(s), hdr_len);
		make_frame(slot_addr(s) + hdr_len, FRAME_LEN, s);
	}
	for (uint32_t it = 0; it < iterations; it++) {
		for (unsigned int i = 0; i < BURST; i++)
			p[i] = post1(next_buffer(), hdr_len + FRAME_LEN, 0);
		bench_dequeue_checked(R.vr, mp, pkts, BURST, FRAME_LEN, it);
		for (unsigned int i = 0; i < BURST; i++)
			if (!used_is(&p[i], 0))
				bench_wrong("used entry", it);
		if (arm_between) {
			vhu_vring_intr_enable(R.vr, true);
			vhu_vring_intr_enable(R.vr, false);
		}
	}
}

static void
enqueue_loop(uint32_t iterations, uint32_t hdr_len)
{
	uint8_t frame[FRAME_LEN];
	struct rte_mbuf *pkts[BURST];
	struct posted p[BURST];

	/* the burst copies them: the same mbufs serve every iteration */
	make_frame(frame, FRAME_LEN, 1);
	for (unsigned int i = 0; i < BURST; i++)
		pkts[i] = mk_mbuf1(frame, FRAME_LEN);
	for (uint32_t it = 0; it < iterations; it++) {
		for (unsigned int i = 0; i < BURST; i++)
			p[i] = post1(next_buffer(), SLOT_SIZE, F_WRITE);
		if (vhu_enqueue_burst(R.vr, pkts, BURST) != BURST)
			bench_wrong("short enqueue burst", it);
		for (unsigned int i = 0; i < BURST; i++)
			if (!used_is(&p[i], hdr_len + FRAME_LEN))
				bench_wrong("used entry", it);
	}
}

static __rte_noreturn void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s split|packed dequeue|enqueue REGIONS(1..%u) ITERATIONS [iommu|intr]\n",
		prog, VHU_MEM_MAX_REGIONS);
	exit(2);
}

int
main(int argc, char **argv)
{
	bool packed, dequeue;
	uint32_t nregions, iterations;
	uint64_t features;
	struct vhu_mem_table *fixture_mem;
	bool iommu, intr;

	if (argc != 5 && argc != 6)
		usage(argv[0]);
	iommu = argc == 6 && strcmp(argv[5], "iommu") == 0;
	intr = argc == 6 && strcmp(argv[5], "intr") == 0;
	if (!bench_ring_and_direction(argv, &packed, &dequeue) || (argc == 6 && !iommu && !intr) ||
	    (intr && !dequeue))
		usage(argv[0]);
	nregions = bench_number(argv[3], VHU_MEM_MAX_REGIONS);
	/* the packet count must fit in 32 bits */
	iterations = bench_number(argv[4], UINT32_MAX / BURST);
	if (nregions == 0 || iterations == 0)
		usage(argv[0]);
	features = dequeue ? V1 : V1 | MRG;

	if (!unit_start(argv[0]))
		return 2;
	/* The library logs every region it maps: hundreds of lines that say nothing here. */
	rte_log_set_level_pattern("lib.vhu", RTE_LOG_WARNING);
	ring_use(packed ? &packed_ops : &split_ops);
	if (!ring_setup(RING_SIZE, features)) {
		fprintf(stderr, "the ring did not become ready\n");
		return 2;
	}
	interrupts(false);
	/* The ring moves to the new table as on SET_MEM_TABLE, then the fixture's goes. */
	fixture_mem = R.mem;
	R.mem = regions_table(nregions);
	ring_refresh(features);
	vhu_mem_table_put(fixture_mem);
	/* every translation there before the loop: the cost of hits */
	if (iommu && !(ring_behind_iommu() && ring_translate_buffers(VHU_IOTLB_RW))) {
		fprintf(stderr, "the ring did not go behind a vIOMMU\n");
		return 2;
	}
	if (intr && vhu_vring_intr_fd(R.vr) < 0) {
		fprintf(stderr, "the ring has no interrupt fd\n");
		return 2;
	}
	if (!R.vr->ready) {
		fprintf(stderr, "the ring is not ready in %u regions\n", nregions);
		return 2;
	}

	if (dequeue)
		dequeue_loop(iterations, R.vr->neg.hdr_len, intr);
	else
		enqueue_loop(iterations, R.vr->neg.hdr_len);
	printf("%s %s: %" PRIu32 " packets, %u region%s%s\n", argv[1], argv[2],
	       iterations * BURST, nregions, nregions == 1 ? "" : "s",
	       iommu ? ", behind a vIOMMU" : intr ? ", armed and disarmed between bursts" : "");
	return unit_finish(ring_teardown() ? 0 : 1);
}
