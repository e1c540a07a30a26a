/* SPDX-License-Identifier: BSD-3-Clause */
#define _GNU_SOURCE
#include "process.h"

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_memzone.h>

int
proc_eal_init(const char *prog, const char *name, unsigned int mem_mb,
	      const char *vhu_log_level)
{
	char lcore[16], mem[16], prefix[64], vhu_log[64];
	cpu_set_t set;
	int cpu = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set); cpu++)
			;
	snprintf(lcore, sizeof(lcore), "%d", cpu);
	snprintf(mem, sizeof(mem), "%u", mem_mb);
	snprintf(prefix, sizeof(prefix), "--file-prefix=vhu-%s-%d", name, (int)getpid());
	snprintf(vhu_log, sizeof(vhu_log), "--log-level=lib.vhu:%s", vhu_log_level);
	char *argv[] = {
		(char *)prog, "--no-pci", "--no-huge", "-m", mem, "--no-shconf",
		"--no-telemetry", prefix, "-l", lcore, "--log-level=lib.eal:warning", vhu_log,
		NULL,
	};
	return rte_eal_init((int)RTE_DIM(argv) - 1, argv);
}

void
proc_eal_cleanup(void)
{
	char runtime_dir[PATH_MAX];

	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	if (rte_eal_cleanup() != 0)
		fprintf(stderr, "rte_eal_cleanup failed\n");
	rmdir(runtime_dir);
}

unsigned int
proc_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned int n = 0;

	if (d == NULL)
		return 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n - 3;	/* ".", ".." and the directory's own fd */
}

uint64_t
proc_status_kb(const char *key)
{
	char line[256];
	size_t len = strlen(key);
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, len) == 0 && line[len] == ':') {
			v = strtoull(line + len + 1, NULL, 10) * 1024;
			break;
		}
	fclose(f);
	return v;
}

struct rte_malloc_socket_stats
proc_dpdk_heap(void)
{
	struct rte_malloc_socket_stats st;

	memset(&st, 0, sizeof(st));
	rte_malloc_get_socket_stats((int)rte_socket_id(), &st);
	return st;
}

static void
count_memzone(const struct rte_memzone *mz __rte_unused, void *arg)
{
	(*(unsigned int *)arg)++;
}

unsigned int
proc_memzones(void)
{
	unsigned int n = 0;

	rte_memzone_walk(count_memzone, &n);
	return n;
}

pid_t
proc_ctl_tid(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	pid_t tid = -1;

	if (d == NULL)
		return -1;
	while (tid < 0 && (e = readdir(d)) != NULL) {
		char path[64], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name) >=
		    (int)sizeof(path))
			continue;
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, "vhu-ctl\n") == 0)
			tid = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return tid;
}

static void
count_link_change(void *ctx, bool up)
{
	struct link_changes *c = ctx;

	__atomic_fetch_add(up ? &c->ups : &c->downs, 1, __ATOMIC_RELEASE);
}

const struct vhu_port_ops link_counting_ops = { .link_changed = count_link_change };

bool
link_changes_are(const struct link_changes *c, uint32_t ups, uint32_t downs)
{
	return __atomic_load_n(&c->ups, __ATOMIC_ACQUIRE) == ups &&
	       __atomic_load_n(&c->downs, __ATOMIC_ACQUIRE) == downs;
}

/* Lines of /proc/self/maps into *@n and the bytes they span into *@bytes. */
static void
count_mappings(unsigned int *n, uint64_t *bytes)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");

	*n = 0;
	*bytes = 0;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long start, end;

		/* a line longer than the buffer (a long path) is counted once */
		if (sscanf(line, "%llx-%llx", &start, &end) == 2) {
			(*n)++;
			*bytes += end - start;
		}
	}
	fclose(f);
}

struct proc_snapshot
proc_snapshot(void)
{
	struct rte_malloc_socket_stats heap = proc_dpdk_heap();
	struct proc_snapshot s = {
		.heap_bytes = heap.heap_allocsz_bytes,
		.heap_allocs = heap.alloc_count,
		.memzones = proc_memzones(),
	};

	count_mappings(&s.mappings, &s.mapped_bytes);
	s.fds = proc_open_fds();
	/* last: what the counting above allocated is freed again */
	s.malloc_bytes = mallinfo2().uordblks;
	return s;
}

#define SAME(field, fmt) do { \
	if (before->field != now->field) { \
		fprintf(stderr, "%s: " #field " %" fmt ", %" fmt " before\n", what, now->field, \
			before->field); \
		same = false; \
	} \
} while (0)

bool
proc_snapshot_same(const struct proc_snapshot *before, const struct proc_snapshot *now,
		   const char *what)
{
	bool same = true;

	SAME(fds, "u");
	SAME(heap_bytes, "zu");
	SAME(heap_allocs, "u");
	SAME(memzones, "u");
	SAME(malloc_bytes, "zu");
	SAME(mappings, "u");
	SAME(mapped_bytes, PRIu64);
	return same;
}
