/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the library's benchmark programs (bench/regions, bench/queues)
 * share: reading their arguments, a checked dequeue burst, stopping on a
 * wrong result.
 */
#ifndef VHU_BENCH_COMMON_H
#define VHU_BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_mbuf.h>

#include "vhu.h"

/* @s as a number from 1 to @max; 0 when it is not one. */
static inline uint32_t
bench_number(const char *s, uint32_t max)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v == 0 || v > max)
		return 0;
	return (uint32_t)v;
}

/*
 * The first two arguments, "split|packed dequeue|enqueue", as *@packed and
 * *@dequeue; false when they are something else.
 */
static inline bool
bench_ring_and_direction(char **argv, bool *packed, bool *dequeue)
{
	if (strcmp(argv[1], "split") != 0 && strcmp(argv[1], "packed") != 0)
		return false;
	if (strcmp(argv[2], "dequeue") != 0 && strcmp(argv[2], "enqueue") != 0)
		return false;
	*packed = strcmp(argv[1], "packed") == 0;
	*dequeue = strcmp(argv[2], "dequeue") == 0;
	return true;
}

/* A check of the loop failed in @iteration: the count would mean nothing. */
static inline __rte_noreturn void
bench_wrong(const char *what, uint32_t iteration)
{
	fprintf(stderr, "iteration %u: %s\n", iteration, what);
	exit(1);
}

/*
 * One dequeue burst of @n frames of @frame_len bytes from @vr into @pkts,
 * checked, then freed; anything else stops the program (@iteration says when).
 */
static inline void
bench_dequeue_checked(struct vhu_vring *vr, struct rte_mempool *mp, struct rte_mbuf **pkts,
		      uint16_t n, uint32_t frame_len, uint32_t iteration)
{
	if (vhu_dequeue_burst(vr, mp, pkts, n) != n)
		bench_wrong("short dequeue burst", iteration);
	for (unsigned int i = 0; i < n; i++)
		if (pkts[i]->pkt_len != frame_len)
			bench_wrong("dequeued frame of the wrong length", iteration);
	rte_pktmbuf_free_bulk(pkts, n);
}

#endif /* VHU_BENCH_COMMON_H */
