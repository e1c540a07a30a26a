/* SPDX-License-Identifier: BSD-3-Clause */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "netoffload.h"
#include "port.h"
#include "segment.h"
#include "vring_ctl.h"
#include "zerocopy.h"

struct rte_mempool *fz_pool;
struct rte_gso_ctx fz_gso;

static bool verbose;		/* VHU_FUZZ_LOG=1: the library's log and each burst */
static int fds_before;
static unsigned int mappings_before;

/* A port, and what its owner was told through struct vhu_port_ops. */
struct port_state {
	struct vhu_port *port;
	char sock_dir[64];
	bool link_up;
	bool enabled[VHU_MAX_VRINGS];
};

/* [0] copies every frame, [1] hands big guest frames out zero-copy. */
static struct port_state ports[2];
static struct port_state *cur = &ports[0];

/* mbufs a dequeue burst returned that the harness keeps for a while (zero-copy ones above all). */
#define HELD_MAX 256
static struct rte_mbuf *held[HELD_MAX];
static unsigned int nheld;

void
fz_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n==%d== FUZZ INVARIANT BROKEN at %s:%d: %s\n    ", (int)getpid(),
		file, line, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void
die(const char *what)
{
	perror(what);
	abort();
}

/* ---- the port's owner ---- */

/* Every report must change what the owner knows: a repeated one is a lost change. */
static void
on_link_changed(void *ctx, bool up)
{
	struct port_state *st = ctx;

	FZ_CHECK(up != st->link_up, "link reported %s twice", up ? "up" : "down");
	st->link_up = up;
}

static void
on_vring_state_changed(void *ctx, uint16_t ring_index, bool enabled)
{
	struct port_state *st = ctx;

	FZ_CHECK(ring_index < st->port->session.nrings, "state change of ring %u of %u",
		 ring_index, st->port->session.nrings);
	FZ_CHECK(enabled != st->enabled[ring_index],
		 "ring %u reported %s twice", ring_index, enabled ? "enabled" : "disabled");
	st->enabled[ring_index] = enabled;
}

static const struct vhu_port_ops owner_ops = {
	.link_changed = on_link_changed,
	.vring_state_changed = on_vring_state_changed,
};

/*
 * What the owner was told matches the port and its rings, and the link is up
 * exactly while queue pair 0 can move packets (vhu.h).
 */
static void
check_owner_view(void)
{
	const struct vhu_port *port = cur->port;
	const struct vhu_session *s = &port->session;
	bool pair0 = port->vrings[0].ready && port->vrings[1].ready;

	FZ_CHECK(cur->link_up == s->link_up, "owner thinks the link is %s",
		 cur->link_up ? "up" : "down");
	FZ_CHECK(s->link_up == pair0,
		 "link %s while rings 0 and 1 are%s ready", s->link_up ? "up" : "down",
		 pair0 ? "" : " not both");
	for (uint32_t i = 0; i < s->nrings; i++)
		FZ_CHECK(cur->enabled[i] == port->vrings[i].ctl.enabled,
			 "ring %u is %s, its owner was told %s", i,
			 port->vrings[i].ctl.enabled ? "enabled" : "disabled",
			 cur->enabled[i] ? "enabled" : "disabled");
}

/* ---- process set-up ---- */

static void
ports_destroy(void)
{
	for (unsigned int i = 0; i < RTE_DIM(ports); i++) {
		vhu_port_destroy(ports[i].port);
		ports[i].port = NULL;
		rmdir(ports[i].sock_dir);
	}
}

static void
port_create(struct port_state *st, bool zero_copy)
{
	struct vhu_port_config cfg = {
		.name = zero_copy ? "fuzz-zc" : "fuzz",
		.queue_pairs = FZ_QUEUE_PAIRS,
		.tso = true,
		.postcopy = true,
		.iommu = true,
		.socket_id = (int)rte_socket_id(),
		.zero_copy_threshold = zero_copy ? VHU_ZC_MIN_THRESHOLD : 0,
		.ops = &owner_ops,
		.ops_ctx = st,
	};
	char path[128];

	snprintf(st->sock_dir, sizeof(st->sock_dir), "/tmp/vhu-fuzz-XXXXXX");
	if (mkdtemp(st->sock_dir) == NULL)
		die("mkdtemp");
	snprintf(path, sizeof(path), "%s/sock", st->sock_dir);
	cfg.socket_path = path;
	st->port = vhu_port_create(&cfg);
	if (st->port == NULL) {
		fprintf(stderr, "vhu_port_create failed\n");
		exit(2);
	}
	/* The harness is the front end, without a socket: nobody connects to the port's. */
	vhu_ctl_lock();
	vhu_session_connected(&st->port->session);
	vhu_ctl_unlock();
}

int
LLVMFuzzerInitialize(int *argc __rte_unused, char ***fuzzer_argv)
{
	const char *prog = (*fuzzer_argv)[0];
	char lcore[16];
	cpu_set_t set;
	int cpu = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set); cpu++)
			;
	snprintf(lcore, sizeof(lcore), "%d", cpu);
	/* --no-shconf: no shared files, no IPC socket; any number of fuzzers may run. */
	char *argv[] = {
		(char *)prog, "--no-pci", "--no-huge", "-m", "64", "--no-shconf",
		"--no-telemetry", "--file-prefix=vhu-fuzz", "-l", lcore,
		"--log-level=lib.eal:error", NULL,
	};
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		exit(2);
	}
	const char *log = getenv("VHU_FUZZ_LOG");

	verbose = log != NULL && strcmp(log, "1") == 0;
	/* Verbose: every request too (logged at debug level). */
	rte_log_set_level_pattern("vhu.*", verbose ? RTE_LOG_DEBUG : RTE_LOG_EMERG);
	fz_pool = rte_pktmbuf_pool_create("vhu_fuzz", FZ_POOL_MBUFS, 0, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (fz_pool == NULL || vhu_gso_pools_create(&fz_gso, "fuzz", (int)rte_socket_id()) < 0) {
		fprintf(stderr, "cannot create the mbuf pools\n");
		exit(2);
	}
	port_create(&ports[0], false);
	port_create(&ports[1], true);
	atexit(ports_destroy);
	return 0;
}

static void
add_in_use(struct rte_mempool *mp, void *arg)
{
	*(unsigned int *)arg += rte_mempool_in_use_count(mp);
}

unsigned int
fz_mbufs_in_use(void)
{
	unsigned int n = 0;

	/* Every pool: ours, the port's segmentation pools, any a burst might reach. */
	rte_mempool_walk(add_in_use, &n);
	return n;
}

/* ---- one input ---- */

void
fz_input_begin(void)
{
	fds_before = fz_count_fds();
	mappings_before = fz_guarded_mappings();
	FZ_CHECK(fz_mbufs_in_use() == 0, "%u mbufs in use before the input", fz_mbufs_in_use());
}

/* Reads all of a frame: what zero-copy mbufs point to must stay mapped while they live. */
static void
release(unsigned int i)
{
	volatile uint64_t sink = fz_frame_digest(held[i]);

	(void)sink;
	rte_pktmbuf_free(held[i]);
	held[i] = held[--nheld];
}

void
fz_input_end(void)
{
	fz_disconnect();
	/* Past the disconnect: guest memory goes only with the last mbuf into it. */
	while (nheld > 0)
		release(nheld - 1);
	FZ_CHECK(fz_guarded_mappings() == mappings_before,
		 "%u shared mappings after a disconnect, %u before the input",
		 fz_guarded_mappings(), mappings_before);
	FZ_CHECK(fz_mbufs_in_use() == 0, "%u mbufs leaked", fz_mbufs_in_use());
	FZ_CHECK(fz_count_fds() == fds_before, "%d fds open after the input, %d before",
		 fz_count_fds(), fds_before);
}

/* ---- fds ---- */

int
fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		die("opendir /proc/self/fd");
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int
fz_memfd(uint64_t size)
{
	int fd = memfd_create("vhu-fuzz-guest", MFD_CLOEXEC);

	if (fd < 0)
		die("memfd_create");
	if (ftruncate(fd, (off_t)size) < 0)
		die("ftruncate");
	/*
	 * Every page there: once an input registered the memory for postcopy
	 * faults, a page missing would stop the burst that touches it until a
	 * front end placed it, and none does here.
	 */
	if (fallocate(fd, 0, 0, (off_t)size) < 0)
		die("fallocate");
	return fd;
}

int
fz_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		die("eventfd");
	return fd;
}

int
fz_dup(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (d < 0)
		die("dup");
	return d;
}

/* ---- guarded mappings (the link wraps mmap and munmap) ---- */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);

#define FZ_MAX_SHARED_MAPPINGS 128

static struct {
	pthread_mutex_t lock;
	unsigned int n;
	struct {
		uint8_t *addr;
		size_t len;
	} map[FZ_MAX_SHARED_MAPPINGS];
} guarded = { .lock = PTHREAD_MUTEX_INITIALIZER };

static size_t
page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * A shared file mapping lands in the middle of a PROT_NONE reservation one
 * page larger on each side. Anything else goes to mmap unchanged.
 */
void *
__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	size_t page = page_size();
	uint8_t *res, *p;
	size_t span;

	if (addr != NULL || fd < 0 || !(flags & MAP_SHARED) || len == 0 ||
	    len > SIZE_MAX - 3 * page)
		return __real_mmap(addr, len, prot, flags, fd, off);
	span = RTE_ALIGN_CEIL(len, page) + 2 * page;
	res = __real_mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	if (res == MAP_FAILED)
		return MAP_FAILED;
	p = __real_mmap(res + page, len, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED) {
		int err = errno;

		__real_munmap(res, span);
		errno = err;
		return MAP_FAILED;
	}
	pthread_mutex_lock(&guarded.lock);
	FZ_CHECK(guarded.n < FZ_MAX_SHARED_MAPPINGS, "more than %u shared mappings (harness limit)",
		 FZ_MAX_SHARED_MAPPINGS);
	guarded.map[guarded.n].addr = p;
	guarded.map[guarded.n].len = len;
	guarded.n++;
	pthread_mutex_unlock(&guarded.lock);
	return p;
}

int
__wrap_munmap(void *addr, size_t len)
{
	size_t page = page_size();

	pthread_mutex_lock(&guarded.lock);
	for (unsigned int i = 0; i < guarded.n; i++) {
		if (guarded.map[i].addr != addr)
			continue;
		FZ_CHECK(guarded.map[i].len == len, "munmap of %zu bytes of a %zu-byte mapping",
			 len, guarded.map[i].len);
		guarded.map[i] = guarded.map[--guarded.n];
		pthread_mutex_unlock(&guarded.lock);
		return __real_munmap((uint8_t *)addr - page, RTE_ALIGN_CEIL(len, page) + 2 * page);
	}
	pthread_mutex_unlock(&guarded.lock);
	return __real_munmap(addr, len);
}

unsigned int
fz_guarded_mappings(void)
{
	unsigned int n;

	pthread_mutex_lock(&guarded.lock);
	n = guarded.n;
	pthread_mutex_unlock(&guarded.lock);
	return n;
}

void
fz_guard_mem_table(const struct vhu_mem_table *mem)
{
	size_t page = page_size();

	for (uint32_t i = 0; i < mem->nregions; i++) {
		const struct vhu_mem_region *r = &mem->regions[i];
		uint8_t *start = r->map->addr;
		uint8_t *end = RTE_PTR_ALIGN_FLOOR(r->host_addr, page);

		if (end > start && mprotect(start, (size_t)(end - start), PROT_NONE) < 0)
			die("mprotect");
	}
}

/* ---- mbufs ---- */

void
fz_check_mbuf(const struct rte_mbuf *m, uint32_t max_pkt_len)
{
	uint32_t sum = 0;
	uint16_t segs = 0;

	FZ_CHECK(m->pkt_len <= max_pkt_len, "pkt_len %u > %u", m->pkt_len, max_pkt_len);
	for (const struct rte_mbuf *s = m; s != NULL; s = s->next) {
		segs++;
		FZ_CHECK(segs <= m->nb_segs, "more segments than nb_segs %u", m->nb_segs);
		FZ_CHECK((uint32_t)s->data_off + s->data_len <= s->buf_len,
			 "segment %u: data_off %u + data_len %u > buf_len %u", segs, s->data_off,
			 s->data_len, s->buf_len);
		FZ_CHECK(rte_mbuf_refcnt_read(s) == 1, "segment %u: refcnt %u", segs,
			 rte_mbuf_refcnt_read(s));
		sum += s->data_len;
	}
	FZ_CHECK(segs == m->nb_segs, "%u segments, nb_segs %u", segs, m->nb_segs);
	FZ_CHECK(sum == m->pkt_len, "segment lengths add up to %u, pkt_len %u", sum, m->pkt_len);
}

/* Received frames flagged as DPDK documents RX offloads, and only those enabled. */
static void
check_rx_flags(const struct rte_mbuf *m, uint32_t rx_offloads)
{
	const uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	const uint64_t ours = RTE_MBUF_F_RX_L4_CKSUM_MASK | RTE_MBUF_F_RX_IP_CKSUM_MASK |
			      ((rx_offloads & VHU_RX_OFFLOAD_LRO) ? RTE_MBUF_F_RX_LRO : 0);

	FZ_CHECK((m->ol_flags & ~ours) == 0, "unexpected mbuf flags 0x%" PRIx64 " (RX offloads 0x%x)",
		 m->ol_flags & ~ours, rx_offloads);
	FZ_CHECK(l4 != RTE_MBUF_F_RX_L4_CKSUM_NONE || (rx_offloads & VHU_RX_OFFLOAD_CKSUM),
		 "a partial checksum handed to an application that did not enable RX checksums");
	FZ_CHECK(l4 != RTE_MBUF_F_RX_L4_CKSUM_BAD, "a checksum flagged bad");
	FZ_CHECK(!(m->ol_flags & RTE_MBUF_F_RX_LRO) || m->tso_segsz >= VHU_GSO_MIN_SEGSZ,
		 "LRO frame with segment size %u", m->tso_segsz);
}

void
fz_check_offload(const struct rte_mbuf *m, uint32_t rx_offloads)
{
	const uint64_t ours = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG |
			      RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IPV6 |
			      RTE_MBUF_F_TX_IP_CKSUM;
	uint64_t ol = m->ol_flags;
	uint64_t l4 = ol & RTE_MBUF_F_TX_L4_MASK;
	bool v4 = (ol & RTE_MBUF_F_TX_IPV4) != 0;
	bool tcp = l4 == RTE_MBUF_F_TX_TCP_CKSUM;
	bool ufo = (ol & RTE_MBUF_F_TX_UDP_SEG) != 0;

	if (!(rx_offloads & VHU_RX_OFFLOAD_LEGACY)) {
		check_rx_flags(m, rx_offloads);
		return;
	}
	FZ_CHECK((ol & ~ours) == 0, "unexpected mbuf flags 0x%" PRIx64, ol & ~ours);
	if (ol == 0)
		return;
	/* Requests come as a set: IP version, checksum, and the layer lengths. */
	FZ_CHECK(tcp || l4 == RTE_MBUF_F_TX_UDP_CKSUM || ufo, "offload flags 0x%" PRIx64
		 " without a TCP or UDP checksum or fragmentation request", ol);
	FZ_CHECK(v4 != ((ol & RTE_MBUF_F_TX_IPV6) != 0), "offload flags 0x%" PRIx64
		 ": not exactly one of IPV4, IPV6", ol);
	FZ_CHECK(!(ol & RTE_MBUF_F_TX_TCP_SEG) || (tcp && m->tso_segsz >= VHU_GSO_MIN_SEGSZ),
		 "TSO with L4 request 0x%" PRIx64 ", segment size %u", l4, m->tso_segsz);
	FZ_CHECK(!(ol & (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)) || !v4 ||
		 (ol & RTE_MBUF_F_TX_IP_CKSUM), "segmentation over IPv4 without an IPv4 checksum request");
	FZ_CHECK(!ufo || (l4 == 0 && m->tso_segsz >= VHU_GSO_MIN_SEGSZ),
		 "UFO with L4 request 0x%" PRIx64 ", segment size %u", l4, m->tso_segsz);
	FZ_CHECK(m->l2_len >= RTE_ETHER_HDR_LEN && m->l3_len >= (v4 ? 20 : 40) &&
		 m->l4_len >= (tcp ? sizeof(struct rte_tcp_hdr) : sizeof(struct rte_udp_hdr)),
		 "header lengths l2 %u l3 %u l4 %u too short for %s over IPv%c", m->l2_len,
		 m->l3_len, m->l4_len, tcp ? "TCP" : "UDP", v4 ? '4' : '6');
	FZ_CHECK((uint32_t)m->l2_len + m->l3_len + m->l4_len <= m->pkt_len,
		 "headers l2 %u + l3 %u + l4 %u beyond a %u-byte frame", m->l2_len, m->l3_len,
		 m->l4_len, m->pkt_len);
}

struct rte_mbuf *
fz_make_frame(const uint8_t *head, uint32_t head_len, uint32_t len, uint32_t seg_len,
	      uint8_t seed)
{
	static const uint8_t eth[RTE_ETHER_HDR_LEN] = {
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x08, 0x00,
	};
	struct rte_mbuf *head_seg = NULL, *last = NULL;
	uint32_t pos = 0;

	if (seg_len == 0)
		seg_len = 1;
	do {
		struct rte_mbuf *s = rte_pktmbuf_alloc(fz_pool);

		if (s == NULL) {
			rte_pktmbuf_free(head_seg);
			return NULL;
		}
		uint32_t n = RTE_MIN(RTE_MIN(seg_len, len - pos), (uint32_t)rte_pktmbuf_tailroom(s));
		uint8_t *d = rte_pktmbuf_mtod(s, uint8_t *);

		for (uint32_t i = 0; i < n; i++, pos++)
			d[i] = pos < head_len ? head[pos] :
			       pos >= sizeof(eth) ? (uint8_t)(seed * 31 + pos * 7) :
			       pos == 0 && (seed & 1) ? 0xff : eth[pos];
		s->data_len = (uint16_t)n;
		if (head_seg == NULL) {
			head_seg = s;
		} else {
			last->next = s;
			head_seg->nb_segs++;
		}
		head_seg->pkt_len += n;
		last = s;
	} while (pos < len);
	return head_seg;
}

/* @total minus @minus, 0 rather than wrapping, as a big-endian 16-bit field. */
static rte_be16_t
be16_len(uint32_t total, uint32_t minus)
{
	return rte_cpu_to_be_16((uint16_t)(total > minus ? total - minus : 0));
}

uint32_t
fz_frame_headers(uint8_t *hdr, enum fz_l4 kind, uint32_t frame_len, bool tso,
		 uint16_t *l3_len, uint16_t *l4_len)
{
	const uint64_t phdr_flags = tso ? RTE_MBUF_F_TX_TCP_SEG : 0;
	static const struct rte_ether_addr dst = {{ 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }};
	static const struct rte_ether_addr src = {{ 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef }};
	bool v4 = kind == FZ_FRAME_TCP4 || kind == FZ_FRAME_UDP4;
	bool tcp = kind == FZ_FRAME_TCP4 || kind == FZ_FRAME_TCP6;
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)hdr;
	uint8_t *l3 = hdr + sizeof(*eth);
	uint8_t *l4;
	uint8_t *cksum;		/* the L4 checksum field (packed headers: bytes) */
	uint16_t pseudo;

	memset(hdr, 0, FZ_HDR_MAX);
	*l3_len = 0;
	*l4_len = 0;
	if (kind == FZ_FRAME_ETH || kind >= FZ_FRAME_KINDS)
		return 0;
	rte_ether_addr_copy(&dst, &eth->dst_addr);
	rte_ether_addr_copy(&src, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(v4 ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6);
	*l3_len = v4 ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr);
	*l4_len = tcp ? sizeof(struct rte_tcp_hdr) : sizeof(struct rte_udp_hdr);
	l4 = l3 + *l3_len;
	if (tcp) {
		struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)l4;

		t->src_port = rte_cpu_to_be_16(40000);
		t->dst_port = rte_cpu_to_be_16(5201);
		t->sent_seq = rte_cpu_to_be_32(0x12345678);
		t->data_off = (sizeof(*t) / 4) << 4;
		t->tcp_flags = RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG;
		t->rx_win = rte_cpu_to_be_16(65535);
		cksum = l4 + offsetof(struct rte_tcp_hdr, cksum);
	} else {
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)l4;

		u->src_port = rte_cpu_to_be_16(40000);
		u->dst_port = rte_cpu_to_be_16(4789);
		u->dgram_len = be16_len(frame_len, sizeof(*eth) + *l3_len);
		cksum = l4 + offsetof(struct rte_udp_hdr, dgram_cksum);
	}
	if (v4) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)l3;

		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->total_length = be16_len(frame_len, sizeof(*eth));
		ip->packet_id = rte_cpu_to_be_16(1);
		ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
		ip->time_to_live = 64;
		ip->next_proto_id = tcp ? IPPROTO_TCP : IPPROTO_UDP;
		ip->src_addr = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 1));
		ip->dst_addr = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 2));
		pseudo = rte_ipv4_phdr_cksum(ip, phdr_flags);
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)l3;

		ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
		ip->payload_len = be16_len(frame_len, sizeof(*eth) + *l3_len);
		ip->proto = tcp ? IPPROTO_TCP : IPPROTO_UDP;
		ip->hop_limits = 64;
		ip->src_addr[0] = 0xfd;
		ip->src_addr[15] = 1;
		ip->dst_addr[0] = 0xfd;
		ip->dst_addr[15] = 2;
		pseudo = rte_ipv6_phdr_cksum(ip, phdr_flags);
	}
	memcpy(cksum, &pseudo, sizeof(pseudo));
	return sizeof(*eth) + *l3_len + *l4_len;
}

/* What an application asks for on a frame (fz_read_frame's first byte). */
#define ASK_L4_CKSUM	0x08
#define ASK_TSO		0x10
#define ASK_IP_CKSUM	0x20
#define ASK_SHARED	0x40	/* someone else holds the whole frame too */
#define ASK_SHARED_TAIL	0x80	/* ... or the segments after the first */

bool
fz_read_frame(struct fz_reader *r, struct fz_frame *f)
{
	uint8_t what = fz_u8(r);
	uint32_t len = fz_u16(r);
	uint32_t seg_len = 64u * (1 + fz_u8(r) % 32);
	enum fz_l4 kind = (enum fz_l4)((what & 7) % FZ_FRAME_KINDS);
	bool v4 = kind == FZ_FRAME_TCP4 || kind == FZ_FRAME_UDP4;
	bool tcp = kind == FZ_FRAME_TCP4 || kind == FZ_FRAME_TCP6;
	bool tso = (what & ASK_TSO) && tcp;
	uint8_t hdr[FZ_HDR_MAX];
	uint16_t l3_len, l4_len;
	uint32_t hdr_len = fz_frame_headers(hdr, kind, len, tso, &l3_len, &l4_len);
	struct rte_mbuf *m;

	/* At most 128 segments: a 64 KiB frame of 64-byte segments would take 1024. */
	m = fz_make_frame(hdr, hdr_len, len, RTE_MAX(seg_len, len / 128 + 1), what);
	f->m = m;
	f->shared = NULL;
	f->tso = false;
	if (m == NULL)
		return false;
	if (kind != FZ_FRAME_ETH) {
		/* The lengths are the headers' own, even when the frame is shorter. */
		uint64_t ip = v4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6;
		uint64_t l4 = tcp ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM;

		m->l2_len = RTE_ETHER_HDR_LEN;
		m->l3_len = l3_len;
		m->l4_len = l4_len;
		if (what & ASK_L4_CKSUM)
			m->ol_flags |= ip | l4;
		if (tso) {
			m->ol_flags |= ip | l4 | RTE_MBUF_F_TX_TCP_SEG;
			m->tso_segsz = fz_u16(r);
			f->tso = true;
		}
		if ((what & ASK_IP_CKSUM) && v4)
			m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	}
	/*
	 * A frame sent to several ports, or a fresh header mbuf in front of a
	 * payload sent to several: nobody may write the shared segments.
	 */
	if (what & ASK_SHARED)
		f->shared = m;
	else if (what & ASK_SHARED_TAIL)
		f->shared = m->next;
	if (f->shared != NULL)
		rte_pktmbuf_refcnt_update(f->shared, 1);
	return true;
}

uint64_t
fz_frame_digest(const struct rte_mbuf *m)
{
	const uint64_t prime = UINT64_C(0x100000001b3);
	uint64_t h = UINT64_C(0xcbf29ce484222325);	/* FNV-1a, a word at a time */

	for (const struct rte_mbuf *s = m; s != NULL; s = s->next) {
		const uint8_t *d = rte_pktmbuf_mtod(s, const uint8_t *);
		uint16_t i = 0;

		for (; i + sizeof(uint64_t) <= s->data_len; i += sizeof(uint64_t)) {
			uint64_t w;

			memcpy(&w, d + i, sizeof(w));
			h = (h ^ w) * prime;
		}
		for (; i < s->data_len; i++)
			h = (h ^ d[i]) * prime;
	}
	return h;
}

uint32_t
fz_frame_refs(const struct rte_mbuf *m)
{
	uint32_t n = 0;

	for (const struct rte_mbuf *s = m; s != NULL; s = s->next)
		n += rte_mbuf_refcnt_read(s);
	return n;
}

void
fz_frame_free(struct fz_frame *f)
{
	/* Ours first: the shared segments survive it, linked or not. */
	rte_pktmbuf_free(f->m);
	rte_pktmbuf_free(f->shared);
	f->m = NULL;
	f->shared = NULL;
}

/* ---- the port ---- */

struct vhu_port *
fz_port(void)
{
	return cur->port;
}

void
fz_use_port(bool zero_copy)
{
	cur = &ports[zero_copy];
}

void
fz_msg_init(struct vhu_msg *m, uint32_t request, uint32_t size)
{
	memset(m, 0, sizeof(*m));
	m->hdr.request = request;
	m->hdr.flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY;
	m->hdr.size = size;
	for (int i = 0; i < VHU_MSG_MAX_FDS; i++)
		m->fds[i] = -1;
}

enum vhu_dispatch
fz_send(struct vhu_msg *m)
{
	struct vhu_session *s = &cur->port->session;
	const struct vhu_mem_table *mem_before = s->mem;
	const struct vhu_msg_hdr hdr = m->hdr;
	enum vhu_dispatch d;

	vhu_ctl_lock();
	d = vhu_session_handle(s, m);
	vhu_ctl_unlock();
	FZ_CHECK(m->nfds == 0, "%s: %u fds left in the message", vhu_request_name(hdr.request),
		 m->nfds);
	if (d == VHU_DISPATCH_REPLY) {
		/* socket.c sends hdr.size payload bytes back, from the same message. */
		FZ_CHECK(m->hdr.request == hdr.request, "reply to %u names request %u",
			 hdr.request, m->hdr.request);
		FZ_CHECK(m->hdr.size <= VHU_MSG_MAX_PAYLOAD, "%s: reply of %u bytes",
			 vhu_request_name(hdr.request), m->hdr.size);
		/*
		 * Asked for, or our postcopy answer to a memory table (always
		 * sent: the front end waits for it, NEED_REPLY or not).
		 */
		FZ_CHECK(vhu_request_has_reply(hdr.request) || (hdr.flags & VHOST_USER_NEED_REPLY) ||
			 (s->postcopy_table != NULL &&
			  (hdr.request == VHOST_USER_SET_MEM_TABLE ||
			   hdr.request == VHOST_USER_ADD_MEM_REG)),
			 "%s: a reply nobody asked for", vhu_request_name(hdr.request));
	}
	if (s->mem != NULL && s->mem != mem_before)
		fz_guard_mem_table(s->mem);
	check_owner_view();
	if (d == VHU_DISPATCH_CLOSE)
		fz_disconnect();
	return d;
}

int
fz_send_ack(struct vhu_msg *m)
{
	if (fz_send(m) != VHU_DISPATCH_REPLY || m->hdr.size != sizeof(uint64_t))
		return -1;
	return (int)m->payload.u64;
}

void
fz_disconnect(void)
{
	struct vhu_port *port = cur->port;
	struct vhu_session *s = &port->session;

	vhu_ctl_lock();
	vhu_session_end(s);
	vhu_ctl_unlock();
	FZ_CHECK(!s->connected && !s->link_up, "session still connected after a disconnect");
	FZ_CHECK(s->mem == NULL, "memory table kept after a disconnect");
	FZ_CHECK(s->log == NULL, "dirty log kept after a disconnect");
	FZ_CHECK(s->features == 0 && !s->features_set && s->protocol_features == 0,
		 "features kept after a disconnect");
	for (uint32_t i = 0; i < s->nrings; i++) {
		const struct vhu_vring *vr = &port->vrings[i];

		FZ_CHECK(vr->mem == NULL && vr->dirty.log == NULL, "ring %u keeps memory or log",
			 i);
		FZ_CHECK(vr->ctl.kickfd < 0 && vr->notify.callfd < 0 && vr->ctl.errfd < 0,
			 "ring %u keeps fds (kick %d call %d err %d)", i, vr->ctl.kickfd,
			 vr->notify.callfd, vr->ctl.errfd);
		FZ_CHECK(!vr->ready && !vr->ctl.enabled && !vr->ctl.started &&
			 vr->packed.pending == NULL,
			 "ring %u not reset (ready %d enabled %d started %d)", i, vr->ready,
			 vr->ctl.enabled, vr->ctl.started);
	}
	check_owner_view();
	/* The next front end connects. */
	vhu_ctl_lock();
	vhu_session_connected(s);
	vhu_ctl_unlock();
}

/* ---- bursts ---- */

/*
 * Every chain a burst takes is completed (or given back) in the same burst,
 * so a usable ring has nothing in flight between bursts (docs/design.md,
 * "Ring start and indices").
 */
static void
check_ring_idle(const struct vhu_vring *vr)
{
	if (!vr->ready || vr->broken)
		return;
	if (vr->zc != NULL) {
		/* ... except the chains zero-copy mbufs hold (one available entry each). */
		FZ_CHECK(vr->neg.packed ||
			 (uint16_t)(vr->last_avail_idx - vr->last_used_idx) == vhu_zc_held(vr),
			 "ring %u: available %u, used %u, %u chains held", vr->index,
			 vr->last_avail_idx, vr->last_used_idx, vhu_zc_held(vr));
		return;
	}
	FZ_CHECK(vr->last_avail_idx == vr->last_used_idx, "ring %u: available %u, used %u",
		 vr->index, vr->last_avail_idx, vr->last_used_idx);
	if (vr->neg.packed)
		FZ_CHECK(vr->packed.avail_wrap == vr->packed.used_wrap && vr->packed.npending == 0,
			 "ring %u: wrap counters %d/%d, %u completions pending", vr->index,
			 vr->packed.avail_wrap, vr->packed.used_wrap, vr->packed.npending);
}

static uint64_t
sum_sizes(const struct vhu_vring_stats *s)
{
	uint64_t n = 0;

	for (int i = 0; i < VHU_SIZE_CLASSES; i++)
		n += s->size[i];
	return n;
}

static void
dequeue(struct vhu_vring *vr, uint16_t count, bool hold)
{
	struct rte_mbuf *pkts[FZ_BURST_MAX];
	const struct vhu_vring_stats before = *vhu_vring_stats(vr);
	const struct vhu_vring_stats *after;
	uint64_t bytes = 0;
	uint16_t n;

	count = RTE_MIN(count, (uint16_t)FZ_BURST_MAX);
	n = vhu_dequeue_burst(vr, fz_pool, pkts, count);
	FZ_CHECK(n <= count, "dequeue returned %u of %u", n, count);
	if (verbose)
		fprintf(stderr, "fuzz: ring %u: dequeue %u of %u (%" PRIu64 " zero-copy)%s\n",
			vr->index, n, count, vhu_vring_stats(vr)->zero_copy - before.zero_copy,
			hold ? ", kept" : "");
	for (uint16_t i = 0; i < n; i++) {
		fz_check_mbuf(pkts[i], VHU_MAX_FRAME_LEN);
		FZ_CHECK(pkts[i]->pkt_len >= RTE_ETHER_HDR_LEN, "a %u-byte frame",
			 pkts[i]->pkt_len);
		fz_check_offload(pkts[i], vr->rx_offloads);
		FZ_CHECK(pkts[i]->nb_segs == 1 ||
			 (vr->rx_offloads & (VHU_RX_OFFLOAD_SCATTER | VHU_RX_OFFLOAD_LEGACY)),
			 "a %u-segment frame for an application without scatter",
			 pkts[i]->nb_segs);
		bytes += pkts[i]->pkt_len;
	}
	after = vhu_vring_stats(vr);
	FZ_CHECK(after->packets - before.packets == n && after->bytes - before.bytes == bytes &&
		 sum_sizes(after) - sum_sizes(&before) == n,
		 "%u frames of %" PRIu64 " bytes counted as %" PRIu64 " of %" PRIu64 " bytes", n,
		 bytes, after->packets - before.packets, after->bytes - before.bytes);
	FZ_CHECK(after->broadcast - before.broadcast + after->multicast - before.multicast <= n,
		 "more broadcast and multicast frames than frames");
	check_ring_idle(vr);
	for (uint16_t i = 0; i < n; i++) {
		if (hold && nheld < HELD_MAX)
			held[nheld++] = pkts[i];
		else
			rte_pktmbuf_free(pkts[i]);
	}
}

void
fz_dequeue(struct vhu_vring *vr, struct fz_reader *r)
{
	uint8_t what = fz_u8(r);

	vhu_vring_ctl_set_rx_offloads(vr, fz_rx_offloads(fz_u8(r)));
	if (what <= FZ_BURST_MAX) {
		dequeue(vr, what, false);
	} else if (what & 0x80) {
		dequeue(vr, what & 0x3f, true);
	} else {
		for (unsigned int k = 1 + (what & 7); k > 0 && nheld > 0; k--)
			release(fz_u8(r) % nheld);
	}
}

void
fz_enqueue(struct vhu_vring *vr, struct fz_reader *r)
{
	struct fz_frame f[FZ_BURST_MAX];
	struct rte_mbuf *pkts[FZ_BURST_MAX];
	uint64_t digest[FZ_BURST_MAX];
	uint32_t refs[FZ_BURST_MAX];
	uint16_t want = fz_u8(r) % (FZ_BURST_MAX + 1);
	const struct vhu_vring_stats before = *vhu_vring_stats(vr);
	const struct vhu_vring_stats *after;
	/* behind a vIOMMU, frames waiting for a translation (consumed, referenced) */
	const uint16_t waiting_before = vr->rx_pending_count;
	uint16_t n = 0, consumed, newly_held = 0;
	bool any_tso = false;
	int64_t counted;

	while (n < want && fz_read_frame(r, &f[n])) {
		pkts[n] = f[n].m;
		digest[n] = f[n].shared != NULL ? fz_frame_digest(f[n].shared) : 0;
		refs[n] = fz_frame_refs(f[n].m);
		any_tso |= f[n].tso;
		n++;
	}
	consumed = vhu_enqueue_burst(vr, pkts, n);
	FZ_CHECK(consumed <= n, "enqueue consumed %u of %u", consumed, n);
	after = vhu_vring_stats(vr);
	if (verbose)
		fprintf(stderr, "fuzz: ring %u: enqueue %u of %u, %" PRIu64 " delivered\n",
			vr->index, consumed, n, after->packets - before.packets);
	/* Consumed: delivered, dropped, or now waiting for a translation. */
	counted = (int64_t)(after->packets - before.packets + after->dropped - before.dropped) +
		  vr->rx_pending_count - waiting_before;
	/*
	 * A frame cut in software counts each of its segments; frames waiting
	 * before the burst may be such frames, and go first.
	 */
	FZ_CHECK(any_tso || waiting_before > 0 ? counted >= consumed : counted == consumed,
		 "%u frames consumed, %" PRId64 " delivered, dropped or waiting", consumed,
		 counted);
	check_ring_idle(vr);
	for (uint16_t i = 0; i < n; i++) {
		uint32_t now = fz_frame_refs(pkts[i]);

		/*
		 * The library keeps no reference to a frame, consumed or not,
		 * but one per segment of a frame it holds for a translation...
		 */
		if (now == refs[i] + pkts[i]->nb_segs && i < consumed && vr->rx_pending_count > 0)
			newly_held++;
		else
			FZ_CHECK(now == refs[i], "frame %u: references %u, were %u", i, now,
				 refs[i]);
		FZ_CHECK(newly_held <= vr->rx_pending_count,
			 "%u frames referenced, %u waiting for a translation", newly_held,
			 vr->rx_pending_count);
		/* ... and writes nothing (checksums) into segments someone else holds. */
		FZ_CHECK(f[i].shared == NULL || fz_frame_digest(f[i].shared) == digest[i],
			 "frame %u (%u bytes, %u segments, shared from segment %u) was written to",
			 i, pkts[i]->pkt_len, pkts[i]->nb_segs, f[i].shared == pkts[i] ? 1 : 2);
		fz_frame_free(&f[i]);
	}
}
