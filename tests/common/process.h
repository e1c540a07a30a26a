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

#include <vhu.h>

/*
 * EAL for a test that may run beside anything else: --no-huge with @mem_mb
 * MiB, --no-pci, --no-shconf (no shared config, no IPC socket, nothing in
 * the runtime directory), a file prefix of its own (vhu-@name-PID), the
 * first CPU it may run on, the library's log lines from @vhu_log_level up.
 */
int proc_eal_init(const char *prog, const char *name, unsigned int mem_mb,
		  const char *vhu_log_level);

/* rte_eal_cleanup(), and the runtime directory removed. */
void proc_eal_cleanup(void);

unsigned int proc_open_fds(void);

/* A "Name:   value kB" line of /proc/self/status, in bytes (0 if absent). */
uint64_t proc_status_kb(const char *key);

/* DPDK's heap on this lcore's NUMA socket. */
struct rte_malloc_socket_stats proc_dpdk_heap(void);

unsigned int proc_memzones(void);

/* The control thread's id (it is named vhu-ctl), or -1. */
pid_t proc_ctl_tid(void);

/* Link changes a port reported to its owner (the control thread counts them). */
struct link_changes {
	uint32_t ups, downs;
};

/* Port ops counting link changes into the struct link_changes given as ops_ctx. */
extern const struct vhu_port_ops link_counting_ops;

/* Whether @c counted @ups changes up and @downs down. */
bool link_changes_are(const struct link_changes *c, uint32_t ups, uint32_t downs);

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
