/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ring under test, whatever its layout: see ring.h.
 */
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "iotlb.h"
#include "vring_ctl.h"
#include "vring_intr.h"

#include "ring.h"

struct ring R;

/* The ring ring_start() sets up. */
static struct vhu_vring own;

/*
 * The rings of the session (rings_add()), the first one own: each ring's
 * record and its layout driver's state, kept here while another ring is
 * current (the current one's are R and the driver's).
 */
static struct {
	struct ring *rec;
	uint8_t *driver;		/* n x driver_size() bytes */
	struct vhu_vring *added;	/* rings 1 .. n - 1 */
	unsigned int n;
	unsigned int current;
} rings;

void
ring_use(const struct ring_ops *ops)
{
	R.ops = ops;
}

struct vhu_vring_addr_config
ring_memory(uint32_t size, uint64_t features, uint32_t start)
{
	const struct ring_ops *ops = R.ops;

	memset(&R, 0, sizeof(R));
	R.ops = ops;
	R.active = true;
	R.room = ops->room;
	R.size = size;
	R.start = start;
	R.kick = -1;
	R.features = features | ops->features;
	guest_setup(RING_INDIR_OFF, RING_BUF_OFF);
	return ops->lay_out();
}

void
ring_rebase(struct vhu_mem_table *mem, uint64_t features)
{
	rte_spinlock_lock(&R.vr->lock);
	vhu_vring_ctl_rebase_locked(R.vr, mem, features, NULL);
	rte_spinlock_unlock(&R.vr->lock);
}

/*
 * A front end's session sets the ring up, as the control thread does; it
 * becomes ready at the last step. The ring gets a copy of the driver's kick
 * fd and owns @callfd.
 */
static bool
session_start(const struct vhu_vring_addr_config *addr, bool send_base, uint32_t base, int callfd)
{
	struct vhu_vring *vr = R.vr;

	R.addr = *addr;
	/* The features come first: a packed ring's base is read by them. */
	ring_rebase(NULL, R.features);
	if (vhu_vring_ctl_set_num(vr, R.size) < 0)
		return false;
	vhu_vring_ctl_set_addr(vr, addr);
	if (send_base && vhu_vring_ctl_set_base(vr, base) < 0)
		return false;
	R.kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (R.kick < 0)
		die("eventfd");
	R.kick_checked = R.posted;
	vhu_vring_ctl_start(vr, xdup(R.kick));
	vhu_vring_ctl_set_callfd(vr, callfd);
	vhu_vring_ctl_enable(vr, true);
	ring_rebase(R.mem, R.features);
	/* as an application enabling scatter: frames of any size, in chains */
	vhu_vring_ctl_set_rx_offloads(vr, VHU_RX_OFFLOAD_SCATTER);
	return vr->ready;
}

bool
ring_start(const struct vhu_vring_addr_config *addr, bool send_base, uint32_t base)
{
	R.mem = guest_mem_table();
	R.vr = &own;
	G.vr = R.vr;
	vhu_vring_ctl_init(R.vr, 0, "unit", SOCKET_ID_ANY, 0, &gso);
	R.vr->mbuf_port = UNIT_MBUF_PORT;
	return session_start(addr, send_base, base, G.callfd);
}

void
ring_session_end(void)
{
	int callfd = xdup(G.callfd);

	vhu_vring_ctl_reset(R.vr);	/* closes the ring's copy of the kick fd and the call fd */
	G.callfd = callfd;
	close(R.kick);
	R.kick = -1;
}

/* session_start() with the base the layout sends for the driver where it is. */
static bool
session_start_at_driver(const struct vhu_vring_addr_config *addr, int callfd)
{
	return session_start(addr, R.ops->base != NULL, R.ops->base != NULL ? R.ops->base() : 0,
			     callfd);
}

bool
ring_session_resume(void)
{
	return session_start_at_driver(&R.addr, G.callfd);
}

bool
ring_setup_at(uint32_t size, uint64_t features, uint32_t start)
{
	struct vhu_vring_addr_config addr = ring_memory(size, features, start);

	return ring_start(&addr, R.ops->base != NULL, R.ops->base != NULL ? R.ops->base() : 0);
}

bool
ring_setup(uint32_t size, uint64_t features)
{
	return ring_setup_at(size, features, 0);
}

void
ring_refresh(uint64_t features)
{
	R.features = features | R.ops->features;
	ring_rebase(R.mem, R.features);
}

/* The current ring's session and fds end (closing the ring's kick fd copy and call fd). */
static void
ring_end(void)
{
	vhu_vring_ctl_reset(R.vr);
	vhu_vring_intr_close(R.vr);
	close(R.kick);
}

/* The current ring's record and driver state go aside, for ring_select() to bring back. */
static void
ring_keep(void)
{
	size_t driver_size = R.ops->driver_size();

	rings.rec[rings.current] = R;
	memcpy(rings.driver + rings.current * driver_size, R.ops->driver, driver_size);
}

bool
rings_add(unsigned int n)
{
	const struct ring first = R;
	size_t driver_size = R.ops->driver_size();

	rings.rec = calloc(n, sizeof(*rings.rec));
	rings.driver = malloc(n * driver_size);
	/* side by side and cache aligned, as in a port */
	rings.added = rte_zmalloc("unit rings", (n - 1) * sizeof(*rings.added),
				  alignof(struct vhu_vring));
	if (rings.rec == NULL || rings.driver == NULL || (n > 1 && rings.added == NULL))
		die("rings_add");
	rings.n = 1;
	rings.current = 0;
	while (rings.n < n) {
		/* an added ring's areas have room for its own size only */
		uint32_t room = first.size;
		struct vhu_vring_addr_config addr;
		unsigned int i = rings.n++;

		ring_keep();
		rings.current = i;
		R = (struct ring){
			.ops = first.ops, .active = true, .mem = first.mem, .vr = &rings.added[i - 1],
			.room = room, .size = first.size, .start = first.start,
			.features = first.features, .kick = -1,
		};
		R.areas = (uint32_t)(galloc(R.ops->areas_size(room)) - G.g);
		memset(G.g + R.areas, 0, R.ops->areas_size(room));
		vhu_mem_table_get(R.mem);
		addr = R.ops->lay_out();
		vhu_vring_ctl_init(R.vr, (uint16_t)i, "unit", SOCKET_ID_ANY, 0, &gso);
		R.vr->mbuf_port = UNIT_MBUF_PORT;
		G.vr = R.vr;
		if (!session_start_at_driver(&addr, xdup(G.callfd)))
			return false;
	}
	return true;
}

void
ring_select(unsigned int i)
{
	size_t driver_size = R.ops->driver_size();

	if (i == rings.current)
		return;
	ring_keep();
	R = rings.rec[i];
	memcpy(R.ops->driver, rings.driver + i * driver_size, driver_size);
	G.vr = R.vr;
	rings.current = i;
}

/* The rings rings_add() added end, each dropping its reference to the memory table. */
static void
rings_teardown(void)
{
	for (unsigned int i = rings.n; i-- > 1;) {
		ring_select(i);
		ring_end();
		vhu_mem_table_put(R.mem);
	}
	if (rings.n > 0)
		ring_select(0);
	free(rings.rec);
	free(rings.driver);
	rte_free(rings.added);
	memset(&rings, 0, sizeof(rings));
}

bool
ring_teardown(void)
{
	bool ok = true;

	if (!R.active)
		return true;
	rings_teardown();
	free_tracked();
	if (R.mem != NULL) {
		/* closes the call fd and the ring's kick fd, drops the ring's reference */
		ring_end();
		if (R.mem->refcnt != 1) {
			fprintf(stderr, "  memory table: %u references, only ours expected\n",
				R.mem->refcnt);
			ok = false;
		}
		vhu_mem_table_put(R.mem);
	}
	/* the ring let go of the IOTLB at its reset */
	vhu_iotlb_destroy(R.iotlb);
	R.iotlb = NULL;
	if (R.iommu_channel > 0)
		close(R.iommu_channel);
	R.iommu_channel = -1;
	guest_teardown();
	/* every mbuf the library allocated went back to its pool or to us */
	if (!pools_full())
		ok = false;
	R.active = false;
	return ok;
}

bool
ring_behind_iommu(void)
{
	bool ok = true;

	int sv[2];

	R.iotlb = vhu_iotlb_create("unit");
	if (R.iotlb == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
					  sv) < 0)
		return false;
	vhu_iotlb_set_backend_fd(R.iotlb, sv[0]);
	R.iommu_channel = sv[1];
	rte_spinlock_lock(&R.vr->lock);
	for (uint64_t off = 0; off < RING_BUF_OFF; off += 4096)
		ok &= vhu_iotlb_update(R.iotlb, R.mem, FE_BASE + off, 4096, FE_BASE + off,
				       VHU_IOTLB_RW);
	vhu_vring_ctl_rebase_locked(R.vr, R.mem, R.features, R.iotlb);
	rte_spinlock_unlock(&R.vr->lock);
	return ok && R.vr->ready;
}

bool
ring_translate_buffers(uint8_t perm)
{
	bool ok = true;

	rte_spinlock_lock(&R.vr->lock);
	for (uint64_t off = RING_BUF_OFF; off < GUEST_SIZE; off += 4096)
		ok &= vhu_iotlb_update(R.iotlb, R.mem, GPA_BASE + off, 4096, FE_BASE + off, perm);
	rte_spinlock_unlock(&R.vr->lock);
	return ok;
}

unsigned int
ring_misses_asked(uint64_t *iova, unsigned int max)
{
	struct {
		struct vhu_msg_hdr hdr;
		struct vhu_iotlb_msg iotlb;
	} __attribute__((packed)) msg;
	unsigned int n = 0;

	while (recv(R.iommu_channel, &msg, sizeof(msg), MSG_DONTWAIT) == (ssize_t)sizeof(msg)) {
		if (msg.hdr.request != VHOST_USER_BACKEND_IOTLB_MSG ||
		    msg.iotlb.type != VHU_IOTLB_MSG_MISS)
			die("not a miss on the IOTLB's request channel");
		if (n < max)
			iova[n] = msg.iotlb.iova;
		n++;
	}
	return n;
}

struct posted
ring_posted(uint16_t id, uint16_t nslots)
{
	uint32_t pos = R.start + R.posted;
	struct posted p = {
		.id = id, .nslots = nslots, .at = R.posted,
		.slot = (uint16_t)(pos % R.size), .lap = pos / R.size,
	};

	R.posted += nslots;
	return p;
}

/* ---- chains ---- */

struct posted
post(const struct dspec *d, unsigned int n)
{
	return R.ops->post(d, n);
}

struct posted
post1(uint64_t addr, uint32_t len, uint16_t flags)
{
	struct dspec d = { addr, len, flags };

	return post(&d, 1);
}

uint64_t
indirect_table_at(void *t, const struct dspec *d, unsigned int n)
{
	R.ops->table(t, d, n);
	return gpa(t);
}

uint64_t
indirect_table(const struct dspec *d, unsigned int n)
{
	return indirect_table_at(indirect_alloc(n), d, n);
}

uint64_t
indirect_frame_table(uint16_t flags)
{
	uint8_t *b = galloc(100);

	no_offload_hdr(b, 12);
	make_frame(b + 12, 88, 99);
	return indirect_table(&(struct dspec){ gpa(b), 100, flags }, 1);
}

struct posted
post_indirect(const struct dspec *d, unsigned int n)
{
	return post1(indirect_table(d, n), n * 16, F_INDIR);
}

/* A chain of @n descriptors fits the builders' arrays; exit(2) otherwise (a bug of the test). */
static void
chain_fits(const char *who, unsigned int n)
{
	if (n <= CHAIN_MAX)
		return;
	fprintf(stderr, "%s: test bug (%u descriptors)\n", who, n);
	exit(2);
}

struct posted
tx_post(const uint32_t *lens, unsigned int n, const uint8_t *frame)
{
	struct dspec d[CHAIN_MAX];
	uint32_t pos = 0;

	chain_fits(__func__, n);
	for (unsigned int i = 0; i < n; i++)
		d[i] = (struct dspec){ gpa(tx_buf(lens[i], R.vr->neg.hdr_len, frame, &pos)),
				       lens[i], 0 };
	return post(d, n);
}

struct posted
tx_simple(const uint8_t *frame, uint32_t frame_len)
{
	uint32_t len = R.vr->neg.hdr_len + frame_len;

	return tx_post(&len, 1, frame);
}

struct rx_chain
rx_post_flags(const uint32_t *lens, const uint16_t *flags, unsigned int n)
{
	struct rx_chain c = { .n = n };
	struct dspec d[CHAIN_MAX];

	chain_fits(__func__, n);
	for (unsigned int i = 0; i < n; i++) {
		c.buf[i] = galloc(lens[i]);
		c.len[i] = lens[i];
		d[i] = (struct dspec){ gpa(c.buf[i]), lens[i], flags[i] };
	}
	c.p = post(d, n);
	return c;
}

struct rx_chain
rx_post(const uint32_t *lens, unsigned int n, uint16_t flags)
{
	uint16_t f[CHAIN_MAX];

	chain_fits(__func__, n);
	for (unsigned int i = 0; i < n; i++)
		f[i] = flags;
	return rx_post_flags(lens, f, n);
}

struct rx_chain
rx_simple(uint32_t len)
{
	return rx_post(&len, 1, F_WRITE);
}

void
rx_read(const struct rx_chain *c, uint8_t *out, uint32_t want)
{
	uint32_t pos = 0;

	for (unsigned int i = 0; i < c->n && pos < want; i++) {
		uint32_t k = RTE_MIN(c->len[i], want - pos);

		memcpy(out + pos, c->buf[i], k);
		pos += k;
	}
}

bool
rx_untouched_from(const struct rx_chain *c, uint32_t from)
{
	uint32_t pos = 0;

	for (unsigned int i = 0; i < c->n; i++)
		for (uint32_t k = 0; k < c->len[i]; k++, pos++)
			if (pos >= from && c->buf[i][k] != SENTINEL)
				return false;
	return true;
}

uint64_t
tx_frames(unsigned int n)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	struct posted p[8];

	if (n > RTE_DIM(p))
		return 99;
	make_frame(frame, sizeof(frame), 110);
	for (unsigned int i = 0; i < n; i++)
		p[i] = tx_simple(frame, sizeof(frame));
	if (deq(pkts, 8) != n)
		return 99;
	for (unsigned int i = 0; i < n; i++)
		if (!used_is(&p[i], 0))
			return 99;
	return calls();
}
