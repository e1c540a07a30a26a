/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Many ports on one control thread. DPDK's ethdev caps ports at
 * RTE_MAX_ETHPORTS (32 in Debian's build), the library does not: this test
 * creates VHU_SCALE_PORTS ports (default below) with vhu_port_create(),
 * connects a small front end to each (a Unix socket sending real vhost-user
 * messages until queue pair 0 is up), disconnects them all, reconnects them
 * all, and destroys the ports.
 *
 * It asserts correctness only: every link up or down when it must be, each
 * change reported once to the owner, and nothing left behind (file
 * descriptors, DPDK heap, memzones, socket files). The figures it prints
 * (memory per port, connect-to-link-up latency, the control thread's CPU
 * time per message) are for docs/performance.md ("Many ports"), never
 * asserted: the machine is shared.
 *
 * EAL runs with --no-huge --no-shconf and a file prefix of its own, the
 * sockets live in a private temporary directory: it runs in parallel with
 * anything else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>

#include <vhu.h>

/* The wire format only: feature bits. */
#include "message.h"

#include "check.h"
#include "frontend.h"
#include "process.h"

/*
 * Small enough for every `meson test` run (about 5 MB of DPDK heap per
 * port, see docs/performance.md); VHU_SCALE_PORTS asks for more.
 */
#define DEFAULT_PORTS 1000
#define MAX_PORTS 100000

/*
 * Fds per port: its listening socket; while connected, the library's end of
 * the connection, two kick and two call fds, and the front end's socket.
 */
#define LISTEN_FDS 1
#define CONNECTED_FDS (5 + 1)

/* How long all links going down may take before the test fails. */
#define LINKS_TIMEOUT_S 30

struct slot {
	struct vhu_port *port;
	char path[108];
	int fe;				/* the front end's socket, -1 while disconnected */
	struct link_changes links;	/* reported to the owner */
};

static struct {
	unsigned int n;
	struct slot *slots;
	char dir[PATH_MAX];
	struct fe_guest guest;		/* what every front end hands over and accepts */
	uint64_t *latency_ns;
	struct vhu_port *warm;		/* created first, destroyed last */
} S = { .guest.memfd = -1 };

/* ---- the process: fds, memory, the control thread ---- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * CPU time of thread @tid: utime + stime of its stat in clock ticks (what
 * top shows, 10 ms granules), and its scheduler run time in ns (schedstat,
 * precise enough for a per-message figure), 0 when unavailable.
 */
struct cpu_time {
	uint64_t ticks;
	uint64_t ns;
};

static struct cpu_time
thread_cpu(pid_t tid)
{
	struct cpu_time t = { 0, 0 };
	char path[64], buf[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (f != NULL) {
		/* after "pid (comm) ", whose comm may hold spaces: state is field 3 */
		char *p = fgets(buf, sizeof(buf), f) != NULL ? strrchr(buf, ')') : NULL;
		unsigned long long ut, st;

		if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
					&ut, &st) == 2)
			t.ticks = ut + st;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	f = fopen(path, "r");
	if (f != NULL) {
		unsigned long long ns;

		if (fscanf(f, "%llu", &ns) == 1)
			t.ns = ns;
		fclose(f);
	}
	return t;
}

/* Connects port @i's front end; its latency from connect() to link up in *@ns. */
static bool
connect_port(unsigned int i, uint64_t *ns)
{
	struct slot *s = &S.slots[i];
	uint64_t t0 = now_ns();
	int fd = fe_connect(s->path);

	if (fd < 0) {
		fprintf(stderr, "port %u: no connection\n", i);
		return false;
	}
	s->fe = fd;
	if (!fe_handshake(fd, &S.guest)) {
		fprintf(stderr, "port %u: handshake failed\n", i);
		return false;
	}
	/*
	 * The link changes in the handler of the last SET_VRING_ENABLE, before
	 * its ack is sent: it must be up by now.
	 */
	if (!vhu_port_link_up(s->port)) {
		fprintf(stderr, "port %u: link not up after its front end's set-up\n", i);
		return false;
	}
	*ns = now_ns() - t0;
	return true;
}

/* ---- the ports ---- */

static struct vhu_port *
create_port(struct slot *s, unsigned int i)
{
	char name[32];
	struct vhu_port_config cfg = {
		.name = name,
		.socket_path = s->path,
		.queue_pairs = 1,
		.tso = true,
		.socket_id = (int)rte_socket_id(),
		.ops = &link_counting_ops,
		.ops_ctx = &s->links,
	};

	snprintf(name, sizeof(name), "scale%u", i);
	return vhu_port_create(&cfg);
}

/*
 * Waits until @settled(@arg) holds, polling every millisecond; false after
 * LINKS_TIMEOUT_S. The control thread clears a port's link flag, then tells
 * the owner, then closes the connection: a test that sees one of these has
 * to wait for the others.
 */
static bool
settles(bool (*settled)(const void *arg), const void *arg)
{
	uint64_t deadline = now_ns() + (uint64_t)LINKS_TIMEOUT_S * 1000000000u;

	do {
		if (settled(arg))
			return true;
		usleep(1000);
	} while (now_ns() < deadline);
	return settled(arg);
}

static unsigned int
links_up(void)
{
	unsigned int up = 0;

	for (unsigned int i = 0; i < S.n; i++)
		up += vhu_port_link_up(S.slots[i].port);
	return up;
}

static bool
no_link_up(const void *arg __rte_unused)
{
	return links_up() == 0;
}

/* Waits until no port's link is up; false (said) after LINKS_TIMEOUT_S. */
static bool
all_links_down(void)
{
	if (settles(no_link_up, NULL))
		return true;
	fprintf(stderr, "%u links still up %d s after their front ends left\n", links_up(),
		LINKS_TIMEOUT_S);
	return false;
}

/*
 * Joined, the control thread may still be listed in /proc/self/task for a
 * moment: glibc's join returns when the kernel clears the thread's id, on
 * its way out, before the task is released.
 */
static bool
no_ctl_thread(const void *arg __rte_unused)
{
	return proc_ctl_tid() == -1;
}

struct link_counts {
	uint32_t ups, downs;
};

static bool
every_port_reported(const void *arg)
{
	const struct link_counts *want = arg;

	for (unsigned int i = 0; i < S.n; i++)
		if (!link_changes_are(&S.slots[i].links, want->ups, want->downs))
			return false;
	return true;
}

/*
 * Link changes reported to the owner: @ups and @downs on every port, within
 * LINKS_TIMEOUT_S; says which ports differ when not.
 */
static bool
events_are(uint32_t ups, uint32_t downs)
{
	const struct link_counts want = { ups, downs };
	unsigned int bad = 0;

	if (settles(every_port_reported, &want))
		return true;
	for (unsigned int i = 0; i < S.n; i++) {
		const struct link_changes *c = &S.slots[i].links;

		if (!link_changes_are(c, ups, downs)) {
			uint32_t u = __atomic_load_n(&c->ups, __ATOMIC_ACQUIRE);
			uint32_t d = __atomic_load_n(&c->downs, __ATOMIC_ACQUIRE);

			if (bad++ < 5)
				fprintf(stderr, "port %u: %u link-up and %u link-down events (%u and %u expected)\n",
					i, u, d, ups, downs);
		}
	}
	return false;
}

static bool
open_fds_are(const void *arg)
{
	return proc_open_fds() == *(const unsigned int *)arg;
}

/* Waits until the process has @n open fds; false (said) after LINKS_TIMEOUT_S. */
static bool
fds_become(unsigned int n)
{
	if (settles(open_fds_are, &n))
		return true;
	fprintf(stderr, "%u fds open, %u expected\n", proc_open_fds(), n);
	return false;
}

static void
disconnect_all(void)
{
	for (unsigned int i = 0; i < S.n; i++) {
		if (S.slots[i].fe >= 0)
			close(S.slots[i].fe);
		S.slots[i].fe = -1;
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of @v, sorted. */
static uint64_t
percentile(const uint64_t *v, unsigned int n, unsigned int p)
{
	unsigned int rank = (n * p + 99) / 100;

	return v[rank > 0 ? rank - 1 : 0];
}

/*
 * Connects every port's front end, one after the other as a host
 * starting its guests would; prints the latencies and the control
 * thread's CPU time per message. False (said) on the first failure.
 */
static bool
connect_all(const char *what, pid_t tid)
{
	struct cpu_time c0 = thread_cpu(tid), c1;
	uint64_t t0 = now_ns(), wall;
	uint64_t msgs = (uint64_t)S.n * FE_MSGS_PER_HANDSHAKE;
	long hz = sysconf(_SC_CLK_TCK);

	for (unsigned int i = 0; i < S.n; i++)
		if (!connect_port(i, &S.latency_ns[i]))
			return false;
	wall = now_ns() - t0;
	c1 = thread_cpu(tid);
	printf("%s: %u front ends in %.3f s, %" PRIu64 " messages\n", what, S.n, wall / 1e9, msgs);
	qsort(S.latency_ns, S.n, sizeof(S.latency_ns[0]), cmp_u64);
	printf("  connect() to link up: median %.1f us, p99 %.1f us, max %.1f us\n",
	       percentile(S.latency_ns, S.n, 50) / 1e3, percentile(S.latency_ns, S.n, 99) / 1e3,
	       S.latency_ns[S.n - 1] / 1e3);
	printf("  vhu-ctl CPU: %.2f us per message (schedstat), %" PRIu64
	       " ticks of 1/%ld s in total (stat utime+stime: %.1f us per message)\n",
	       c1.ns > c0.ns ? (double)(c1.ns - c0.ns) / (double)msgs / 1e3 : 0.0,
	       c1.ticks - c0.ticks, hz,
	       (double)(c1.ticks - c0.ticks) * 1e6 / (double)hz / (double)msgs);
	return true;
}

/* ---- the test ---- */

static unsigned int
ports_wanted(void)
{
	const char *e = getenv("VHU_SCALE_PORTS");
	char *end;
	unsigned long n;

	if (e == NULL || *e == '\0')
		return DEFAULT_PORTS;
	n = strtoul(e, &end, 10);
	if (*end != '\0' || n == 0 || n > MAX_PORTS) {
		fprintf(stderr, "VHU_SCALE_PORTS=%s: 1..%u expected\n", e, MAX_PORTS);
		exit(2);
	}
	return (unsigned int)n;
}

/* Front-end and library fds for @n connected ports, beyond what is open now. */
static bool
enough_fds(unsigned int n)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)n * (LISTEN_FDS + CONNECTED_FDS) + proc_open_fds() + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return false;
	if (rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return false;
	}
	if (rl.rlim_cur < need) {
		fprintf(stderr, "%u ports need %llu fds, RLIMIT_NOFILE allows %llu\n", n,
			(unsigned long long)need, (unsigned long long)rl.rlim_cur);
		return false;
	}
	return true;
}

static void
teardown(void)
{
	if (S.slots != NULL) {
		for (unsigned int i = 0; i < S.n; i++)
			vhu_port_destroy(S.slots[i].port);
		disconnect_all();
	}
	vhu_port_destroy(S.warm);
	S.warm = NULL;
	free(S.slots);
	S.slots = NULL;
	free(S.latency_ns);
	S.latency_ns = NULL;
	if (S.guest.memfd >= 0)
		close(S.guest.memfd);
	S.guest.memfd = -1;
	EXPECT(fe_socket_dir_remove(S.dir));
}

static void
test_many_ports(void)
{
	struct rte_malloc_socket_stats h0, h1, h2;
	unsigned int fds0, fds1, mz0, mz1;
	uint64_t rss0, rss1, rss2;
	struct slot warm_slot = { .fe = -1 };
	pid_t tid;

	S.n = ports_wanted();
	CHECK(enough_fds(S.n));
	S.slots = calloc(S.n, sizeof(*S.slots));
	S.latency_ns = calloc(S.n, sizeof(*S.latency_ns));
	CHECK_NOT_NULL(S.slots);
	CHECK_NOT_NULL(S.latency_ns);
	CHECK(fe_socket_dir_make(S.dir, sizeof(S.dir), "scale"));
	for (unsigned int i = 0; i < S.n; i++) {
		S.slots[i].fe = -1;
		CHECK_LT(snprintf(S.slots[i].path, sizeof(S.slots[i].path), "%s/%u", S.dir, i),
			 sizeof(S.slots[i].path));
	}
	S.guest.memfd = fe_guest_memfd();
	CHECK(S.guest.memfd >= 0);
	S.guest.features = VHU_BIT(VIRTIO_F_VERSION_1) | VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
		     VHU_BIT(VIRTIO_NET_F_MRG_RXBUF);

	/*
	 * One port created first and kept to the end: what the library keeps
	 * for the process's life (an eventfd, its SIGBUS guard, memguard.c) or
	 * while any port lives (the segmentation pools of a NUMA socket,
	 * segment.c), and the process's own one-time allocations, stay out of
	 * the figures per port.
	 */
	CHECK_LT(snprintf(warm_slot.path, sizeof(warm_slot.path), "%s/warm", S.dir),
		 sizeof(warm_slot.path));
	S.warm = create_port(&warm_slot, S.n);
	CHECK_NOT_NULL(S.warm);

	fds0 = proc_open_fds();
	rss0 = proc_status_kb("VmRSS");
	h0 = proc_dpdk_heap();
	mz0 = proc_memzones();
	uint64_t t0 = now_ns();

	for (unsigned int i = 0; i < S.n; i++) {
		S.slots[i].port = create_port(&S.slots[i], i);
		if (S.slots[i].port == NULL)
			fprintf(stderr, "vhu_port_create failed for port %u of %u: %u memzones in use (at most %d), DPDK heap %zu bytes allocated, %zu free\n",
				i, S.n, proc_memzones(), RTE_MAX_MEMZONE, proc_dpdk_heap().heap_allocsz_bytes,
				proc_dpdk_heap().heap_freesz_bytes);
		CHECK_NOT_NULL(S.slots[i].port);
	}
	uint64_t t_create = now_ns() - t0;

	rss1 = proc_status_kb("VmRSS");
	h1 = proc_dpdk_heap();
	mz1 = proc_memzones();
	fds1 = proc_open_fds();
	printf("%u ports created in %.3f s (%.2f ms each)\n", S.n, t_create / 1e9,
	       t_create / 1e6 / S.n);
	printf("  per port: RSS %.1f KiB, DPDK heap %.1f KiB in %.1f allocations, %.1f memzones, %.1f fds\n",
	       (double)(rss1 - rss0) / 1024 / S.n,
	       (double)(h1.heap_allocsz_bytes - h0.heap_allocsz_bytes) / 1024 / S.n,
	       (double)(h1.alloc_count - h0.alloc_count) / S.n, (double)(mz1 - mz0) / S.n,
	       (double)(fds1 - fds0) / S.n);
	printf("  memzones in use: %u of %d\n", mz1, RTE_MAX_MEMZONE);
	/* a listening socket each (the control thread came with the first port) */
	CHECK_EQ(fds1 - fds0, S.n * LISTEN_FDS);

	tid = proc_ctl_tid();
	CHECK(tid > 0);

	/* First connection of every port. */
	CHECK(connect_all("connect", tid));
	CHECK(events_are(1, 0));
	rss2 = proc_status_kb("VmRSS");
	printf("  connected, per port: RSS %.1f KiB more, %.1f fds more (the front end's socket included)\n",
	       ((double)rss2 - (double)rss1) / 1024 / S.n,
	       ((double)proc_open_fds() - fds1) / S.n);
	CHECK_EQ(proc_open_fds() - fds1, (uint64_t)S.n * CONNECTED_FDS);

	/* Every front end gone: every link down, each port waiting for the next. */
	struct cpu_time c0 = thread_cpu(tid), c1;
	uint64_t t1 = now_ns();

	disconnect_all();
	CHECK(all_links_down());
	c1 = thread_cpu(tid);
	printf("disconnect: %u links down in %.3f s, vhu-ctl CPU %.2f us per hang-up\n", S.n,
	       (now_ns() - t1) / 1e9, (double)(c1.ns - c0.ns) / S.n / 1e3);
	CHECK(events_are(1, 1));
	CHECK(fds_become(fds1));

	/* And back: the same ports serve new front ends. */
	CHECK(connect_all("reconnect", tid));
	CHECK(events_are(2, 1));
	disconnect_all();
	CHECK(all_links_down());
	CHECK(events_are(2, 2));
	CHECK(fds_become(fds1));

	/* Half the ports destroyed with their front end still connected. */
	CHECK(connect_all("third connect", tid));
	for (unsigned int i = 0; i < S.n; i += 2) {
		vhu_port_destroy(S.slots[i].port);
		S.slots[i].port = NULL;
	}
	disconnect_all();
	for (unsigned int i = 1; i < S.n; i += 2) {
		vhu_port_destroy(S.slots[i].port);
		S.slots[i].port = NULL;
	}

	/* Nothing left: fds, heap, memzones. */
	h2 = proc_dpdk_heap();
	printf("destroyed: fds %u (before %u), DPDK heap %zu bytes in %u allocations (before %zu in %u), memzones %u (before %u)\n",
	       proc_open_fds(), fds0, h2.heap_allocsz_bytes, h2.alloc_count, h0.heap_allocsz_bytes,
	       h0.alloc_count, proc_memzones(), mz0);
	EXPECT_EQ(proc_open_fds(), fds0);
	EXPECT_EQ(h2.heap_allocsz_bytes, h0.heap_allocsz_bytes);
	EXPECT_EQ(h2.alloc_count, h0.alloc_count);
	EXPECT_EQ(proc_memzones(), mz0);
	vhu_port_destroy(S.warm);
	S.warm = NULL;
	/* The last port took the control thread with it. */
	EXPECT(settles(no_ctl_thread, NULL));
	printf("RSS: %.1f MiB before the ports, %.1f MiB with them, %.1f MiB after\n",
	       rss0 / 1048576.0, rss2 / 1048576.0, proc_status_kb("VmRSS") / 1048576.0);
}

int
main(int argc __rte_unused, char **argv)
{
	int status;

	/*
	 * A port takes about 11 KiB of DPDK memory, the segmentation pools
	 * 5 MiB. The library's INFO lines (several per connection) stay out
	 * unless VHU_SCALE_LOG=1: thousands of lines, and each also goes to
	 * syslog.
	 */
	if (proc_eal_init(argv[0], "scale", 64 + ports_wanted() / 32,
			  getenv("VHU_SCALE_LOG") != NULL ? "info" : "warning") < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		return EXIT_FAILURE;
	}
	check_after_each = teardown;
	RUN_TEST(test_many_ports);
	status = check_summary("scale");
	proc_eal_cleanup();
	return status;
}
