/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Cost against the number of queues: the data path (vhu_dequeue_burst,
 * vhu_enqueue_burst) on the rings of N queue pairs of one session, over one
 * guest memory (the unit tests' ring fixture, tests/unit/ring.h:
 * rings_add()), polled round-robin by one thread, in a steady loop for
 * callgrind to count. bench/queues.py runs the matrix; one case:
 *
 *   valgrind --tool=callgrind --toggle-collect=vhu_dequeue_burst \
 *       build/bench/bench_queues split dequeue 128 32
 *
 * dequeue polls the N queue pairs' guest TX rings, enqueue their guest RX
 * rings; the other direction's rings are not set up (nothing of theirs is
 * on the path measured). Each round the guest makes 32 one-descriptor
 * chains available in every ring, then the device takes them ring after
 * ring, one burst of 32 each, and after each burst the guest reads that
 * ring's 32 used entries back. dequeue: 64-byte frames behind a virtio-net
 * header, the mbufs freed after each burst; enqueue: 64-byte mbufs into
 * writable buffers, with mergeable RX buffers (the main benchmark's
 * mrg_rxbuf=1). No offloads; the driver polls (no interrupts). Each ring
 * has 32 buffers of its own, posted again every round. The mbufs come from
 * a pool of the benchmark's own, as an application has one (pool()).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>

#include "vhu.h"
#include "vring.h"

#include "guest_fixture.h"
#include "ring.h"

#include "bench_common.h"

#define RING_SIZE	256
#define BURST		32
#define FRAME_LEN	64
/* A ring's buffers: BURST slots of SLOT_SIZE bytes, each holding a header and a frame. */
#define SLOT_SIZE	128u

/* mbufs in the pool; its per-lcore cache (testpmd's default is 250) */
#define POOL_MBUFS	1023u
#define POOL_CACHE	256u

static struct rte_mempool *pool;
static uint32_t nrings;
/* The first of each ring's BURST buffer slots. */
static uint8_t *buffers[VHU_MAX_QUEUE_PAIRS];
/* The chains the guest made available this round. */
static struct posted posted[VHU_MAX_QUEUE_PAIRS][BURST];

/*
 * rte_pktmbuf_pool_create() but for the flag: without hugepages (EAL's
 * --no-huge, as the unit tests run) DPDK places each object on a 4 KiB
 * page of its own unless told that objects need not be IOVA-contiguous,
 * and every mbuf's header then falls in the same set of the cache, which
 * twelve or so mbufs fill: the cache simulation would show that rather
 * than the rings. With the flag, the mbufs lie side by side as in
 * hugepage memory. The per-lcore cache hands the same mbufs out again
 * burst after burst, as in an application; it holds a burst's worth from
 * the start, so that every burst costs the same.
 */
static struct rte_mempool *
pool_create(void)
{
	struct rte_pktmbuf_pool_private priv = { .mbuf_data_room_size = RTE_MBUF_DEFAULT_BUF_SIZE };
	struct rte_mbuf *warm[BURST];
	struct rte_mempool *p = rte_mempool_create_empty(
		"bench_queues", POOL_MBUFS, sizeof(struct rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE,
		POOL_CACHE, sizeof(priv), SOCKET_ID_ANY, RTE_MEMPOOL_F_NO_IOVA_CONTIG);

	if (p == NULL || rte_mempool_set_ops_byname(p, rte_mbuf_best_mempool_ops(), NULL) != 0)
		die("the benchmark's mbuf pool");
	rte_pktmbuf_pool_init(p, &priv);
	if (rte_mempool_populate_default(p) != (int)POOL_MBUFS)
		die("the benchmark's mbuf pool");
	rte_mempool_obj_iter(p, rte_pktmbuf_init, NULL);
	if (rte_pktmbuf_alloc_bulk(p, warm, BURST) != 0)
		die("mbufs");
	rte_pktmbuf_free_bulk(warm, BURST);
	return p;
}

static uint8_t *
slot_addr(uint32_t ring, unsigned int slot)
{
	return buffers[ring] + slot * SLOT_SIZE;
}

/* The guest makes BURST chains of @len bytes, with @flags, available in every ring. */
static void
post_all(uint32_t len, uint16_t flags)
{
	for (uint32_t q = 0; q < nrings; q++) {
		ring_select(q);
		for (unsigned int i = 0; i < BURST; i++)
			posted[q][i] = post1(gpa(slot_addr(q, i)), len, flags);
	}
}

/* The guest reads ring @q's used entries back: each chain with @len bytes written. */
static void
check_used(uint32_t q, uint32_t len, uint32_t round)
{
	for (unsigned int i = 0; i < BURST; i++)
		if (!used_is(&posted[q][i], len))
			bench_wrong("used entry", round);
}

static void
dequeue_loop(uint32_t rounds, uint32_t hdr_len)
{
	struct rte_mbuf *pkts[BURST];

	/* every slot holds a frame: the guest only posts descriptors in the loop */
	for (uint32_t q = 0; q < nrings; q++)
		for (unsigned int i = 0; i < BURST; i++) {
			no_offload_hdr(slot_addr(q, i), hdr_len);
			make_frame(slot_addr(q, i) + hdr_len, FRAME_LEN, q * BURST + i);
		}
	for (uint32_t r = 0; r < rounds; r++) {
		post_all(hdr_len + FRAME_LEN, 0);
		for (uint32_t q = 0; q < nrings; q++) {
			ring_select(q);
			bench_dequeue_checked(R.vr, pool, pkts, BURST, FRAME_LEN, r);
			check_used(q, 0, r);
		}
	}
}

static void
enqueue_loop(uint32_t rounds, uint32_t hdr_len)
{
	uint8_t frame[FRAME_LEN];
	struct rte_mbuf *pkts[BURST];

	/* the burst copies them: the same mbufs serve every ring and round */
	make_frame(frame, FRAME_LEN, 1);
	if (rte_pktmbuf_alloc_bulk(pool, pkts, BURST) != 0)
		die("mbufs");
	for (unsigned int i = 0; i < BURST; i++)
		memcpy(rte_pktmbuf_append(pkts[i], FRAME_LEN), frame, FRAME_LEN);
	for (uint32_t r = 0; r < rounds; r++) {
		post_all(SLOT_SIZE, F_WRITE);
		for (uint32_t q = 0; q < nrings; q++) {
			ring_select(q);
			if (vhu_enqueue_burst(R.vr, pkts, BURST) != BURST)
				bench_wrong("short enqueue burst", r);
			check_used(q, hdr_len + FRAME_LEN, r);
		}
	}
	rte_pktmbuf_free_bulk(pkts, BURST);
}

static __rte_noreturn void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s split|packed dequeue|enqueue QUEUE_PAIRS(1..%u) ROUNDS\n", prog,
		VHU_MAX_QUEUE_PAIRS);
	exit(2);
}

int
main(int argc, char **argv)
{
	bool packed, dequeue;
	uint32_t rounds;
	uint64_t features;

	if (argc != 5 || !bench_ring_and_direction(argv, &packed, &dequeue))
		usage(argv[0]);
	nrings = bench_number(argv[3], VHU_MAX_QUEUE_PAIRS);
	/* the packet count must fit in 32 bits */
	rounds = nrings == 0 ? 0 : bench_number(argv[4], UINT32_MAX / BURST / nrings);
	if (rounds == 0)
		usage(argv[0]);
	features = dequeue ? V1 : V1 | MRG;

	if (!unit_start(argv[0]))
		return 2;
	ring_use(packed ? &packed_ops : &split_ops);
	if (!ring_setup(RING_SIZE, features) || !rings_add(nrings)) {
		fprintf(stderr, "the rings did not become ready\n");
		return 2;
	}
	for (uint32_t q = 0; q < nrings; q++) {
		ring_select(q);
		interrupts(false);
		buffers[q] = galloc(BURST * SLOT_SIZE);
	}
	pool = pool_create();

	if (dequeue)
		dequeue_loop(rounds, R.vr->neg.hdr_len);
	else
		enqueue_loop(rounds, R.vr->neg.hdr_len);
	printf("%s %s: %" PRIu32 " packets, %u queue pair%s\n", argv[1], argv[2],
	       rounds * nrings * BURST, nrings, nrings == 1 ? "" : "s");
	if (rte_mempool_avail_count(pool) != POOL_MBUFS) {
		fprintf(stderr, "%u mbufs not back in the pool\n",
			POOL_MBUFS - rte_mempool_avail_count(pool));
		return 1;
	}
	rte_mempool_free(pool);
	return unit_finish(ring_teardown() ? 0 : 1);
}
