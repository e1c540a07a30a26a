/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the process holds, for the tests that drive the library in-process
 * (tests/scale, tests/fault) to find it back after ports come and go: fds,
 * DPDK heap and memzones, malloc'd bytes, mappings; and the control thread.
 */
#ifndef VHU_TEST_PROCESS_H
#define VHU_TEST_PROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <rte_malloc.h>

unsigned int proc_open_fds(void);

/* A "Name:   value kB" line of /proc/self/status, in bytes (0 if absent). */
uint64_t proc_status_kb(const char *key);

/* DPDK's heap on this lcore's NUMA socket. */
struct rte_malloc_socket_stats proc_dpdk_heap(void);

unsigned int proc_memzones(void);

/* The control thread's id (it is named vhu-ctl), or -1. */
pid_t proc_ctl_tid(void);

/* Everything that must come back once what a test created is gone. */
struct proc_snapshot {
	unsigned int fds;
	size_t heap_bytes;		/* DPDK heap allocated */
	unsigned int heap_allocs;
	unsigned int memzones;
	size_t malloc_bytes;		/* in use in glibc's arenas (mallinfo2), which ASan bypasses */
	unsigned int mappings;		/* lines of /proc/self/maps */
	uint64_t mapped_bytes;
};

struct proc_snapshot proc_snapshot(void);

/* Whether @now equals @before, every difference said on stderr after @what. */
bool proc_snapshot_same(const struct proc_snapshot *before, const struct proc_snapshot *now,
			const char *what);

#endif /* VHU_TEST_PROCESS_H */
