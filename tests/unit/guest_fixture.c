/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest side shared by the data-path unit tests: see guest_fixture.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "segment.h"

#include "guest_fixture.h"

struct guest G;
struct rte_mempool *mp;
struct rte_gso_ctx gso;

const struct vhu_mem_region_desc guest_regions[2] = {
	{ .guest_phys_addr = GPA_BASE, .size = GUEST_SIZE, .frontend_addr = FE_BASE },
	{ .guest_phys_addr = GPA2_BASE, .size = GUEST2_SIZE, .frontend_addr = FE2_BASE },
};

void
die(const char *what)
{
	perror(what);
	exit(2);
}

int
xdup(int fd)
{
	int d = dup(fd);

	if (d < 0)
		die("dup");
	return d;
}

static int
new_memfd(size_t size)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "vhu-unit-%d", (int)getpid());
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		die("memfd_create");
	if (ftruncate(fd, (off_t)size) < 0)
		die("ftruncate");
	return fd;
}

static uint8_t *
map_shared(int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

void
guest_setup(uint32_t indir_off, uint32_t buf_off)
{
	memset(&G, 0, sizeof(G));
	G.memfd = new_memfd(GUEST_SIZE);
	G.memfd2 = new_memfd(GUEST2_SIZE);
	G.g = map_shared(G.memfd, GUEST_SIZE);
	G.g2 = map_shared(G.memfd2, GUEST2_SIZE);
	G.indir_next = indir_off;
	G.indir_end = buf_off;
	G.buf_next = buf_off;
	G.callfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (G.callfd < 0)
		die("eventfd");
}

struct vhu_mem_table *
guest_mem_table(void)
{
	/* the table takes (and closes) its own files, as from a message */
	int fds[2] = { xdup(G.memfd), xdup(G.memfd2) };
	struct vhu_mem_table *mem = vhu_mem_table_create(guest_regions, fds, 2, "unit");

	if (mem == NULL)
		die("vhu_mem_table_create");
	return mem;
}

void
guest_teardown(void)
{
	munmap(G.g, GUEST_SIZE);
	munmap(G.g2, GUEST2_SIZE);
	close(G.memfd);
	close(G.memfd2);
}

/* ---- guest memory ---- */

uint64_t
gpa(const void *p)
{
	const uint8_t *q = p;

	if (q >= G.g && q < G.g + GUEST_SIZE)
		return GPA_BASE + (uint64_t)(q - G.g);
	if (q >= G.g2 && q <= G.g2 + GUEST2_SIZE)
		return GPA2_BASE + (uint64_t)(q - G.g2);
	fprintf(stderr, "gpa(): %p is not guest memory\n", p);
	abort();
}

uint8_t *
galloc(uint32_t len)
{
	uint8_t *p;

	if (G.buf_next + len > GUEST_SIZE) {
		fprintf(stderr, "galloc: out of guest memory\n");
		exit(2);
	}
	p = G.g + G.buf_next;
	memset(p, SENTINEL, len);
	G.buf_next = RTE_ALIGN_CEIL(G.buf_next + len, 64u);
	return p;
}

void *
indirect_alloc(uint32_t n)
{
	uint8_t *t = G.g + G.indir_next;

	G.indir_next = RTE_ALIGN_CEIL(G.indir_next + n * 16, 64u);
	if (G.indir_next > G.indir_end) {
		fprintf(stderr, "indirect_alloc: out of room\n");
		exit(2);
	}
	memset(t, 0, n * 16);
	return t;
}

/* ---- frames ---- */

void
no_offload_hdr(uint8_t *h, size_t len)
{
	memset(h, HDR_BYTE, len);
	h[0] = 0;
	if (len > 1)
		h[1] = 0;
}

void
make_frame(uint8_t *f, uint32_t len, uint32_t seed)
{
	static const uint8_t eth[14] = {
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x08, 0x00,
	};

	for (uint32_t i = 0; i < len; i++)
		f[i] = i < sizeof(eth) ? eth[i] : (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

uint8_t *
tx_buf(uint32_t len, uint32_t hdr_len, const uint8_t *frame, uint32_t *pos)
{
	uint8_t *b = galloc(len);

	for (uint32_t k = 0; k < len; k++, (*pos)++)
		b[k] = *pos < hdr_len ? (*pos < 2 ? 0 : HDR_BYTE) : frame[*pos - hdr_len];
	return b;
}

bool
hdr_is(const uint8_t *h, uint32_t hdr_len, uint16_t num_buffers)
{
	uint8_t exp[12] = { 0 };

	exp[10] = (uint8_t)num_buffers;
	exp[11] = (uint8_t)(num_buffers >> 8);
	if (memcmp(h, exp, RTE_MIN(hdr_len, (uint32_t)sizeof(exp))) == 0)
		return true;
	fprintf(stderr, "  header:");
	for (uint32_t i = 0; i < hdr_len; i++)
		fprintf(stderr, " %02x", h[i]);
	fprintf(stderr, " (num_buffers %u expected)\n", num_buffers);
	return false;
}

/* ---- mbufs ---- */

void
track(struct rte_mbuf *m)
{
	if (G.nmbufs == MAX_TRACKED) {
		fprintf(stderr, "too many mbufs in one test\n");
		exit(2);
	}
	G.mbufs[G.nmbufs++] = m;
}

void
app_free(struct rte_mbuf *m)
{
	for (unsigned int i = 0; i < G.nmbufs; i++) {
		if (G.mbufs[i] == m) {
			G.mbufs[i] = G.mbufs[--G.nmbufs];
			rte_pktmbuf_free(m);
			return;
		}
	}
	fprintf(stderr, "app_free: mbuf not tracked\n");
	abort();
}

void
free_tracked(void)
{
	for (unsigned int i = 0; i < G.nmbufs; i++)
		rte_pktmbuf_free(G.mbufs[i]);
	G.nmbufs = 0;
}

struct rte_mbuf *
mk_mbuf(const uint8_t *data, const uint32_t *seglens, unsigned int nseg)
{
	struct rte_mbuf *head = NULL;
	uint32_t pos = 0;

	for (unsigned int i = 0; i < nseg; i++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
		char *p;

		if (m == NULL)
			die("rte_pktmbuf_alloc");
		p = rte_pktmbuf_append(m, (uint16_t)seglens[i]);
		if (p == NULL)
			die("rte_pktmbuf_append");
		memcpy(p, data + pos, seglens[i]);
		pos += seglens[i];
		if (head == NULL)
			head = m;
		else if (rte_pktmbuf_chain(head, m) != 0)
			die("rte_pktmbuf_chain");
	}
	track(head);
	return head;
}

struct rte_mbuf *
mk_mbuf1(const uint8_t *data, uint32_t len)
{
	uint32_t segs[32];
	unsigned int n = 0;

	do {
		segs[n] = RTE_MIN(len, (uint32_t)RTE_MBUF_DEFAULT_DATAROOM);
		len -= segs[n++];
	} while (len > 0 && n < RTE_DIM(segs));
	return mk_mbuf(data, segs, n);
}

bool
mbuf_is(const struct rte_mbuf *m, const uint8_t *exp, uint32_t len)
{
	uint32_t pos = 0, segs = 0;

	if (m->pkt_len != len) {
		fprintf(stderr, "  mbuf pkt_len %u, expected %u\n", m->pkt_len, len);
		return false;
	}
	for (const struct rte_mbuf *s = m; s != NULL; s = s->next, segs++) {
		if (pos + s->data_len > len) {
			fprintf(stderr, "  mbuf segments hold more than pkt_len\n");
			return false;
		}
		if (memcmp(rte_pktmbuf_mtod(s, const uint8_t *), exp + pos, s->data_len) != 0) {
			fprintf(stderr, "  mbuf segment %u (bytes %u..%u) differs\n", segs, pos,
				pos + s->data_len);
			return false;
		}
		pos += s->data_len;
	}
	if (pos != len || segs != m->nb_segs) {
		fprintf(stderr, "  mbuf: %u bytes in %u segments, nb_segs %u\n", pos, segs,
			m->nb_segs);
		return false;
	}
	return true;
}

/* ---- the ring under test ---- */

uint16_t
deq(struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t r = vhu_dequeue_burst(G.vr, mp, pkts, n);

	for (uint16_t i = 0; i < r; i++) {
		track(pkts[i]);
		/* whichever path made it: frame, segment, RARP, a dropped frame's mbuf reused */
		if (pkts[i]->port != G.vr->mbuf_port) {
			fprintf(stderr, "mbuf %u of the burst has port %u, the ring's is %u\n", i,
				pkts[i]->port, G.vr->mbuf_port);
			abort();
		}
	}
	return r;
}

uint16_t
enq(struct rte_mbuf **pkts, uint16_t n)
{
	return vhu_enqueue_burst(G.vr, pkts, n);
}

uint64_t
calls(void)
{
	eventfd_t v;

	if (eventfd_read(G.callfd, &v) == 0)
		return v;
	if (errno != EAGAIN)
		die("eventfd_read");
	return 0;
}

const struct vhu_vring_stats *
stats(void)
{
	return vhu_vring_stats(G.vr);
}

/* ---- the process ---- */

static int
eal_init(const char *prog)
{
	char lcore[16];
	cpu_set_t set;
	int cpu = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set); cpu++)
			;
	snprintf(lcore, sizeof(lcore), "%d", cpu);
	/*
	 * --no-shconf: no shared config, no IPC socket, nothing in the runtime
	 * directory, so one fixed prefix serves any number of concurrent runs
	 * and a crashed run leaves at most one empty directory behind.
	 */
	char *argv[] = {
		(char *)prog, "--no-pci", "--no-huge", "-m", "64", "--no-shconf",
		"--no-telemetry", "--file-prefix=vhu-unit", "-l", lcore,
		"--log-level=lib.eal:warning", NULL,
	};
	return rte_eal_init((int)RTE_DIM(argv) - 1, argv);
}

bool
unit_start(const char *prog)
{
	if (eal_init(prog) < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		return false;
	}
	mp = rte_pktmbuf_pool_create("vhu_unit", POOL_N, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				     (int)rte_socket_id());
	if (mp == NULL || vhu_gso_pools_create(&gso, "unit", (int)rte_socket_id()) < 0) {
		fprintf(stderr, "cannot create the mbuf pools\n");
		rte_mempool_free(mp);
		rte_eal_cleanup();
		return false;
	}
	return true;
}

/* Whether @p (@name) has all its mbufs, @n of them; prints it when not. */
static bool
pool_full(const struct rte_mempool *p, const char *name, unsigned int n)
{
	unsigned int avail = rte_mempool_avail_count(p);

	if (avail == n)
		return true;
	fprintf(stderr, "  %u mbufs in the %s pool, %u expected\n", avail, name, n);
	return false;
}

bool
pools_full(void)
{
	bool ok = pool_full(mp, "test", POOL_N);

	/* every pool looked at: say all that is missing */
	ok = pool_full(gso.direct_pool, "segment header", gso.direct_pool->size) && ok;
	ok = pool_full(gso.indirect_pool, "segment payload", gso.indirect_pool->size) && ok;
	return ok;
}

int
unit_finish(int status)
{
	char runtime_dir[PATH_MAX];

	vhu_gso_pools_free(&gso);
	rte_mempool_free(mp);
	/* With --no-shconf EAL leaves only its (empty) runtime directory behind. */
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	if (rte_eal_cleanup() != 0)
		fprintf(stderr, "rte_eal_cleanup failed\n");
	rmdir(runtime_dir);
	return status;
}
