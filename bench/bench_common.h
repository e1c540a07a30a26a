/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the library's benchmark programs (bench/regions, bench/queues)
 * share: reading their numeric arguments and stopping on a wrong result.
 */
#ifndef VHU_BENCH_COMMON_H
#define VHU_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_common.h>

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

/* A check of the loop failed in @iteration: the count would mean nothing. */
static inline __rte_noreturn void
bench_wrong(const char *what, uint32_t iteration)
{
	fprintf(stderr, "iteration %u: %s\n", iteration, what);
	exit(1);
}

#endif /* VHU_BENCH_COMMON_H */
