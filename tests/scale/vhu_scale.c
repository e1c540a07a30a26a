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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>

#include <vhu.h>

/* The wire format only: request codes, feature bits and payload layouts. */
#include "message.h"

#include "check.h"

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

/* How long a reply, or all links going down, may take before the test fails. */
#define REPLY_TIMEOUT_MS 5000
#define LINKS_TIMEOUT_S 30

/* The guest memory every front end hands over: one memfd for all ports. */
#define GUEST_SIZE (64 * 1024)
#define FE_ADDR 0x7f0000000000ull	/* the front end's address of it (never dereferenced) */
#define RING_SIZE 256
/* Ring r's descriptors, available and used areas, 16 KiB apart. */
#define RING_OFF(r) ((uint64_t)(r) * 16384)
#define DESC_OFF 0
#define AVAIL_OFF 4096
#define USED_OFF 8192

/*
 * What a front end sends per connection: GET_FEATURES,
 * GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER, SET_FEATURES,
 * SET_MEM_TABLE, then NUM, ADDR, BASE, KICK, CALL and ENABLE for rings 0 and 1.
 */
#define MSGS_PER_CONNECT (6 + 2 * 6)

struct slot {
	struct vhu_port *port;
	char path[108];
	int fe;				/* the front end's socket, -1 while disconnected */
	uint32_t ups, downs;		/* link changes reported (control thread writes) */
};

static struct {
	unsigned int n;
	struct slot *slots;
	char dir[PATH_MAX];
	int memfd;
	uint64_t *latency_ns;
	uint64_t features;		/* what the front ends accept of the offer */
	struct vhu_port *warm;		/* created first, destroyed last */
} S = { .memfd = -1 };

/* ---- the process: fds, memory, the control thread ---- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned int
open_fds(void)
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

/* A "Name:   value kB" line of /proc/self/status, in bytes. */
static uint64_t
status_kb(const char *key)
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

static struct rte_malloc_socket_stats
heap(void)
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

static unsigned int
memzones(void)
{
	unsigned int n = 0;

	rte_memzone_walk(count_memzone, &n);
	return n;
}

/* The control thread's id (it is named vhu-ctl), or -1. */
static pid_t
ctl_tid(void)
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

/* ---- the front end ---- */

static bool
send_msg(int fd, uint32_t request, const void *payload, uint32_t size, int passfd)
{
	struct vhu_msg_hdr hdr = {
		.request = request,
		/* every request asks for its reply-ack: a front end waits for each */
		.flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY,
		.size = size,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)(uintptr_t)payload, .iov_len = size },
	};
	char control[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n;

	if (passfd >= 0) {
		struct cmsghdr *cm;

		memset(control, 0, sizeof(control));
		mh.msg_control = control;
		mh.msg_controllen = sizeof(control);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &passfd, sizeof(int));
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(sizeof(hdr) + size)) {
		fprintf(stderr, "front end: sending request %u: %s\n", request,
			n < 0 ? strerror(errno) : "short write");
		return false;
	}
	return true;
}

/* Reads exactly @len bytes, waiting at most REPLY_TIMEOUT_MS for each read. */
static bool
read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, REPLY_TIMEOUT_MS) != 1) {
			fprintf(stderr, "front end: no reply within %d ms\n", REPLY_TIMEOUT_MS);
			return false;
		}
		n = read(fd, p, len);
		if (n <= 0) {
			fprintf(stderr, "front end: reading a reply: %s\n",
				n < 0 ? strerror(errno) : "connection closed");
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* The u64 answering @request: a GET's value or a reply-ack. */
static bool
reply_u64(int fd, uint32_t request, uint64_t *value)
{
	struct vhu_msg_hdr hdr;

	if (!read_all(fd, &hdr, sizeof(hdr)))
		return false;
	if (hdr.request != request || hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY) ||
	    hdr.size != sizeof(*value)) {
		fprintf(stderr, "front end: request %u answered by request %u, flags 0x%x, %u bytes\n",
			request, hdr.request, hdr.flags, hdr.size);
		return false;
	}
	return read_all(fd, value, sizeof(*value));
}

/* A request with its reply-ack, which must say success (0). */
static bool
request(int fd, uint32_t req, const void *payload, uint32_t size, int passfd)
{
	uint64_t ack;

	if (!send_msg(fd, req, payload, size, passfd) || !reply_u64(fd, req, &ack))
		return false;
	if (ack != 0) {
		fprintf(stderr, "front end: request %u refused (ack %" PRIu64 ")\n", req, ack);
		return false;
	}
	return true;
}

static bool
get_u64(int fd, uint32_t req, uint64_t *value)
{
	/* a GET is answered with its value; NEED_REPLY adds nothing to it */
	return send_msg(fd, req, NULL, 0, -1) && reply_u64(fd, req, value);
}

/* A kick or call fd for ring @r: an eventfd, ours closed once it is sent. */
static bool
ring_fd(int fd, uint32_t req, uint32_t r)
{
	uint64_t idx = r;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	bool ok;

	if (efd < 0) {
		perror("eventfd");
		return false;
	}
	ok = request(fd, req, &idx, sizeof(idx), efd);
	close(efd);
	return ok;
}

static bool
setup_ring(int fd, uint32_t r)
{
	struct vhu_vring_state num = { .index = r, .num = RING_SIZE };
	struct vhu_vring_state base = { .index = r, .num = 0 };
	struct vhu_vring_state enable = { .index = r, .num = 1 };
	struct vhu_vring_addr addr = {
		.index = r,
		.desc_user_addr = FE_ADDR + RING_OFF(r) + DESC_OFF,
		.avail_user_addr = FE_ADDR + RING_OFF(r) + AVAIL_OFF,
		.used_user_addr = FE_ADDR + RING_OFF(r) + USED_OFF,
	};

	return request(fd, VHOST_USER_SET_VRING_NUM, &num, sizeof(num), -1) &&
	       request(fd, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), -1) &&
	       request(fd, VHOST_USER_SET_VRING_BASE, &base, sizeof(base), -1) &&
	       ring_fd(fd, VHOST_USER_SET_VRING_KICK, r) &&
	       ring_fd(fd, VHOST_USER_SET_VRING_CALL, r) &&
	       request(fd, VHOST_USER_SET_VRING_ENABLE, &enable, sizeof(enable), -1);
}

/*
 * What QEMU sends a vhost-user net back end for one queue pair, each
 * request waiting for its answer: MSGS_PER_CONNECT messages.
 */
static bool
handshake(int fd)
{
	uint64_t offered, protocol;
	uint64_t want_protocol = VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	struct vhu_memory mem = {
		.nregions = 1,
		.regions[0] = { .guest_phys_addr = 0, .size = GUEST_SIZE,
				.frontend_addr = FE_ADDR, .mmap_offset = 0 },
	};
	uint32_t mem_size = (uint32_t)(offsetof(struct vhu_memory, regions) +
				       sizeof(mem.regions[0]));

	if (!get_u64(fd, VHOST_USER_GET_FEATURES, &offered) ||
	    !get_u64(fd, VHOST_USER_GET_PROTOCOL_FEATURES, &protocol))
		return false;
	if ((offered & S.features) != S.features || (protocol & want_protocol) != want_protocol) {
		fprintf(stderr, "front end: offered features 0x%" PRIx64 " protocol 0x%" PRIx64
			" lack what it needs\n", offered, protocol);
		return false;
	}
	return request(fd, VHOST_USER_SET_PROTOCOL_FEATURES, &want_protocol,
		       sizeof(want_protocol), -1) &&
	       request(fd, VHOST_USER_SET_OWNER, NULL, 0, -1) &&
	       request(fd, VHOST_USER_SET_FEATURES, &S.features, sizeof(S.features), -1) &&
	       request(fd, VHOST_USER_SET_MEM_TABLE, &mem, mem_size, S.memfd) &&
	       setup_ring(fd, 0) && setup_ring(fd, 1);
}

/* Connects port @i's front end; its latency from connect() to link up in *@ns. */
static bool
connect_port(unsigned int i, uint64_t *ns)
{
	struct slot *s = &S.slots[i];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t t0 = now_ns();
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, s->path, sizeof(s->path));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "port %u: connect %s: %s\n", i, s->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	s->fe = fd;
	if (!handshake(fd)) {
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

static void
link_changed(void *ctx, bool up)
{
	struct slot *s = ctx;

	__atomic_fetch_add(up ? &s->ups : &s->downs, 1, __ATOMIC_RELEASE);
}

static const struct vhu_port_ops ops = { .link_changed = link_changed };

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
		.ops = &ops,
		.ops_ctx = s,
	};

	snprintf(name, sizeof(name), "scale%u", i);
	return vhu_port_create(&cfg);
}

/* Waits until no port's link is up; false (said) after LINKS_TIMEOUT_S. */
static bool
all_links_down(void)
{
	uint64_t deadline = now_ns() + (uint64_t)LINKS_TIMEOUT_S * 1000000000u;
	unsigned int up;

	do {
		up = 0;
		for (unsigned int i = 0; i < S.n; i++)
			up += vhu_port_link_up(S.slots[i].port);
		if (up == 0)
			return true;
		usleep(1000);
	} while (now_ns() < deadline);
	fprintf(stderr, "%u links still up %d s after their front ends left\n", up, LINKS_TIMEOUT_S);
	return false;
}

/* Link changes reported to the owner: @ups and @downs on every port. */
static bool
events_are(uint32_t ups, uint32_t downs)
{
	unsigned int bad = 0;

	for (unsigned int i = 0; i < S.n; i++) {
		uint32_t u = __atomic_load_n(&S.slots[i].ups, __ATOMIC_ACQUIRE);
		uint32_t d = __atomic_load_n(&S.slots[i].downs, __ATOMIC_ACQUIRE);

		if (u != ups || d != downs) {
			if (bad++ < 5)
				fprintf(stderr, "port %u: %u link-up and %u link-down events (%u and %u expected)\n",
					i, u, d, ups, downs);
		}
	}
	return bad == 0;
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
	uint64_t msgs = (uint64_t)S.n * MSGS_PER_CONNECT;
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
	rlim_t need = (rlim_t)n * (LISTEN_FDS + CONNECTED_FDS) + open_fds() + 64;

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
	if (S.memfd >= 0)
		close(S.memfd);
	S.memfd = -1;
	/* every port unlinks its socket file when destroyed: the directory is empty */
	if (S.dir[0] != '\0' && rmdir(S.dir) < 0) {
		fprintf(stderr, "rmdir %s: %s\n", S.dir, strerror(errno));
		EXPECT(!"socket directory empty");
	}
	S.dir[0] = '\0';
}

static void
test_many_ports(void)
{
	const char *tmp = getenv("VHU_TMPDIR") ? getenv("VHU_TMPDIR") : "/tmp";
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
	snprintf(S.dir, sizeof(S.dir), "%s/vhu-scale-XXXXXX", tmp);
	if (mkdtemp(S.dir) == NULL) {
		perror(S.dir);
		S.dir[0] = '\0';	/* nothing for the teardown to remove */
		CHECK(!"mkdtemp");
	}
	for (unsigned int i = 0; i < S.n; i++) {
		S.slots[i].fe = -1;
		CHECK_LT(snprintf(S.slots[i].path, sizeof(S.slots[i].path), "%s/%u", S.dir, i),
			 sizeof(S.slots[i].path));
	}
	S.memfd = memfd_create("vhu-scale-guest", MFD_CLOEXEC);
	CHECK(S.memfd >= 0);
	CHECK_EQ(ftruncate(S.memfd, GUEST_SIZE), 0);
	S.features = VHU_BIT(VIRTIO_F_VERSION_1) | VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
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

	fds0 = open_fds();
	rss0 = status_kb("VmRSS");
	h0 = heap();
	mz0 = memzones();
	uint64_t t0 = now_ns();

	for (unsigned int i = 0; i < S.n; i++) {
		S.slots[i].port = create_port(&S.slots[i], i);
		if (S.slots[i].port == NULL)
			fprintf(stderr, "vhu_port_create failed for port %u of %u: %u memzones in use (at most %d), DPDK heap %zu bytes allocated, %zu free\n",
				i, S.n, memzones(), RTE_MAX_MEMZONE, heap().heap_allocsz_bytes,
				heap().heap_freesz_bytes);
		CHECK_NOT_NULL(S.slots[i].port);
	}
	uint64_t t_create = now_ns() - t0;

	rss1 = status_kb("VmRSS");
	h1 = heap();
	mz1 = memzones();
	fds1 = open_fds();
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

	tid = ctl_tid();
	CHECK(tid > 0);

	/* First connection of every port. */
	CHECK(connect_all("connect", tid));
	CHECK(events_are(1, 0));
	rss2 = status_kb("VmRSS");
	printf("  connected, per port: RSS %.1f KiB more, %.1f fds more (the front end's socket included)\n",
	       ((double)rss2 - (double)rss1) / 1024 / S.n,
	       ((double)open_fds() - fds1) / S.n);
	CHECK_EQ(open_fds() - fds1, (uint64_t)S.n * CONNECTED_FDS);

	/* Every front end gone: every link down, each port waiting for the next. */
	struct cpu_time c0 = thread_cpu(tid), c1;
	uint64_t t1 = now_ns();

	disconnect_all();
	CHECK(all_links_down());
	c1 = thread_cpu(tid);
	printf("disconnect: %u links down in %.3f s, vhu-ctl CPU %.2f us per hang-up\n", S.n,
	       (now_ns() - t1) / 1e9, (double)(c1.ns - c0.ns) / S.n / 1e3);
	CHECK(events_are(1, 1));
	CHECK_EQ(open_fds(), fds1);

	/* And back: the same ports serve new front ends. */
	CHECK(connect_all("reconnect", tid));
	CHECK(events_are(2, 1));
	disconnect_all();
	CHECK(all_links_down());
	CHECK(events_are(2, 2));
	CHECK_EQ(open_fds(), fds1);

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
	h2 = heap();
	printf("destroyed: fds %u (before %u), DPDK heap %zu bytes in %u allocations (before %zu in %u), memzones %u (before %u)\n",
	       open_fds(), fds0, h2.heap_allocsz_bytes, h2.alloc_count, h0.heap_allocsz_bytes,
	       h0.alloc_count, memzones(), mz0);
	EXPECT_EQ(open_fds(), fds0);
	EXPECT_EQ(h2.heap_allocsz_bytes, h0.heap_allocsz_bytes);
	EXPECT_EQ(h2.alloc_count, h0.alloc_count);
	EXPECT_EQ(memzones(), mz0);
	vhu_port_destroy(S.warm);
	S.warm = NULL;
	EXPECT_EQ(ctl_tid(), -1);	/* the last port took the control thread with it */
	printf("RSS: %.1f MiB before the ports, %.1f MiB with them, %.1f MiB after\n",
	       rss0 / 1048576.0, rss2 / 1048576.0, status_kb("VmRSS") / 1048576.0);
}

static int
eal_init(const char *prog, unsigned int nports)
{
	char lcore[16], mem[16], prefix[64];
	cpu_set_t set;
	int cpu = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set); cpu++)
			;
	snprintf(lcore, sizeof(lcore), "%d", cpu);
	/* A port takes about 11 KiB of DPDK memory, the segmentation pools 5 MiB. */
	snprintf(mem, sizeof(mem), "%u", 64 + nports / 32);
	snprintf(prefix, sizeof(prefix), "--file-prefix=vhu-scale-%d", (int)getpid());
	/*
	 * --no-shconf: no shared config, no IPC socket, nothing in the runtime
	 * directory. The library's INFO lines (several per connection) stay
	 * out unless VHU_SCALE_LOG=1: thousands of lines, and each also goes
	 * to syslog.
	 */
	char *argv[] = {
		(char *)prog, "--no-pci", "--no-huge", "-m", mem, "--no-shconf",
		"--no-telemetry", prefix, "-l", lcore, "--log-level=lib.eal:warning",
		getenv("VHU_SCALE_LOG") != NULL ? "--log-level=lib.vhu:info" :
		"--log-level=lib.vhu:warning", NULL,
	};
	return rte_eal_init((int)RTE_DIM(argv) - 1, argv);
}

int
main(int argc __rte_unused, char **argv)
{
	char runtime_dir[PATH_MAX];
	int status;

	if (eal_init(argv[0], ports_wanted()) < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		return EXIT_FAILURE;
	}
	check_after_each = teardown;
	RUN_TEST(test_many_ports);
	status = check_summary("scale");
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	if (rte_eal_cleanup() != 0)
		fprintf(stderr, "rte_eal_cleanup failed\n");
	rmdir(runtime_dir);
	return status;
}
