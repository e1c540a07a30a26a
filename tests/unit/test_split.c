/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the split ring data path (virtqueue_split.c, dequeue.c,
 * enqueue.c) and its set-up (vring_ctl.c) on rings laid out in memory the
 * test owns.
 *
 * The test plays the guest driver: it maps the same memfds as the table
 * (MAP_SHARED), writes descriptors and available entries through its own
 * mapping and reads the used ring back. Guest memory, frames, mbufs and the
 * EAL set-up are shared with test_packed.c (guest_fixture.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "memory.h"
#include "vhu.h"
#include "virtio_defs.h"
#include "virtqueue_split.h"
#include "vring.h"
#include "vring_ctl.h"
#include "zerocopy.h"

#include "check.h"
#include "guest_fixture.h"

/* Layout of region 0 (room for rings of up to 4096 entries). */
#define DESC_OFF	0x00000u
#define AVAIL_OFF	0x10000u
#define USED_OFF	0x20000u
#define INDIR_OFF	0x30000u
#define BUF_OFF		0x40000u

/* ---- the fixture: one ring in fresh guest memory ---- */

struct fx {
	bool active;
	struct vhu_mem_table *mem;	/* our own reference */
	struct vhu_vring vr;
	uint32_t size;
	struct vring_desc *desc;	/* guest views of the ring */
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;		/* the driver's shadow of avail->idx */
	uint16_t start_idx;
	uint32_t next_desc;
};

static struct fx F;

/* Like the session: the ring follows our memory table and @features. */
static void
fx_refresh(uint64_t features)
{
	vhu_vring_ctl_rebase(&F.vr, F.mem, features);
}

/* The front end moves the used area to @used (front-end address). */
static void
fx_set_used_addr(uint64_t used)
{
	struct vhu_vring_addr_config addr = F.vr.ctl.addr;

	addr.used = used;
	vhu_vring_ctl_set_addr(&F.vr, &addr);
}

/*
 * Fresh guest memory and a ring of @size entries whose used and available
 * indices start at @start. False when the ring did not become ready.
 */
static bool
fx_setup_at(uint32_t size, uint64_t features, uint16_t start)
{
	memset(&F, 0, sizeof(F));
	F.active = true;
	F.size = size;
	guest_setup(INDIR_OFF, BUF_OFF);
	F.desc = (struct vring_desc *)(G.g + DESC_OFF);
	F.avail = (struct vring_avail *)(G.g + AVAIL_OFF);
	F.used = (struct vring_used *)(G.g + USED_OFF);
	F.start_idx = start;
	F.avail_idx = start;
	F.avail->idx = start;
	F.used->idx = start;
	F.mem = guest_mem_table();

	/* As the control thread sets a ring up; it becomes ready at the last step. */
	vhu_vring_ctl_init(&F.vr, 0, "unit", SOCKET_ID_ANY, 0, NULL);
	if (vhu_vring_ctl_set_num(&F.vr, size) < 0)
		return false;
	vhu_vring_ctl_set_addr(&F.vr, &(struct vhu_vring_addr_config){
		.desc = FE_BASE + DESC_OFF,
		.avail = FE_BASE + AVAIL_OFF,
		.used = FE_BASE + USED_OFF,
	});
	vhu_vring_ctl_start(&F.vr, -1);
	vhu_vring_ctl_set_callfd(&F.vr, G.callfd);	/* the ring owns it */
	vhu_vring_ctl_enable(&F.vr, true);
	G.vr = &F.vr;
	fx_refresh(features);
	return F.vr.ready;
}

static bool
fx_setup(uint32_t size, uint64_t features)
{
	return fx_setup_at(size, features, 0);
}

static void
fx_teardown(void)
{
	if (!F.active)
		return;
	free_tracked();
	vhu_vring_ctl_reset(&F.vr);		/* closes the call fd, drops the ring's reference */
	EXPECT_EQ(F.mem->refcnt, 1);	/* only ours is left */
	vhu_mem_table_put(F.mem);
	guest_teardown();
	/* every mbuf the library allocated went back to the pool or to us */
	EXPECT_EQ(rte_mempool_avail_count(mp), POOL_N);
	F.active = false;
}

/* ---- the guest driver ---- */

static uint16_t
new_desc(void)
{
	return (uint16_t)(F.next_desc++ % F.size);
}

static void
set_desc(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
	 uint16_t next)
{
	table[i].addr = addr;
	table[i].len = len;
	table[i].flags = flags;
	table[i].next = next;
}

/* Makes @head available. */
static void
push(uint16_t head)
{
	F.avail->ring[F.avail_idx % F.size] = head;
	F.avail_idx++;
	__atomic_store_n(&F.avail->idx, F.avail_idx, __ATOMIC_RELEASE);
}

static uint16_t
used_idx(void)
{
	return __atomic_load_n(&F.used->idx, __ATOMIC_ACQUIRE);
}

/* The @n-th used entry written since the fixture was set up. */
static struct vring_used_elem
used_at(uint16_t n)
{
	return F.used->ring[(uint16_t)(F.start_idx + n) % F.size];
}

/*
 * A TX chain of consecutive ring descriptors with buffer lengths @lens,
 * holding an @hdr_len-byte header that asks for no offload and then @frame
 * (see tx_buf()). Returns the head.
 */
static uint16_t
tx_chain(const uint32_t *lens, unsigned int n, uint32_t hdr_len, const uint8_t *frame)
{
	uint16_t head = 0, prev = 0;
	uint32_t pos = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t d = new_desc();
		uint8_t *b = tx_buf(lens[i], hdr_len, frame, &pos);

		set_desc(F.desc, d, gpa(b), lens[i], 0, 0);
		if (i == 0)
			head = d;
		else {
			F.desc[prev].flags |= VRING_DESC_F_NEXT;
			F.desc[prev].next = d;
		}
		prev = d;
	}
	return head;
}

/* One descriptor holding the header and the frame. */
static uint16_t
tx_simple(uint32_t hdr_len, const uint8_t *frame, uint32_t frame_len)
{
	uint32_t len = hdr_len + frame_len;

	return tx_chain(&len, 1, hdr_len, frame);
}

/* An RX chain: its buffers, for reading back what the device wrote (rx_read()). */
struct rx_chain {
	uint16_t head;
	unsigned int n;
	uint8_t *buf[16];
	uint32_t len[16];
};

static struct rx_chain
rx_chain(const uint32_t *lens, unsigned int n, uint16_t flags)
{
	struct rx_chain c = { .n = n };
	uint16_t prev = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t d = new_desc();

		c.buf[i] = galloc(lens[i]);
		c.len[i] = lens[i];
		set_desc(F.desc, d, gpa(c.buf[i]), lens[i], flags, 0);
		if (i == 0)
			c.head = d;
		else {
			F.desc[prev].flags |= VRING_DESC_F_NEXT;
			F.desc[prev].next = d;
		}
		prev = d;
	}
	return c;
}

static struct rx_chain
rx_simple(uint32_t len)
{
	return rx_chain(&len, 1, VRING_DESC_F_WRITE);
}

/* ==================================================================== */
/* set-up                                                               */
/* ==================================================================== */

static void
test_refresh(void)
{
	CHECK(fx_setup_at(16, V1, 7));
	CHECK(F.vr.ready);
	CHECK(!F.vr.broken);
	CHECK_EQ(F.vr.neg.hdr_len, 12);
	CHECK(!F.vr.neg.mrg_rxbuf);
	CHECK_EQ(F.mem->refcnt, 2);		/* ours and the ring's */
	/* resumes at the used index found in guest memory */
	CHECK_EQ(F.vr.last_used_idx, 7);
	CHECK_EQ(F.vr.last_avail_idx, 7);
	/* we poll: the driver is told not to kick */
	CHECK_EQ(F.used->flags, VRING_USED_F_NO_NOTIFY);
	/* host pointers of the ring are the table's mapping of the right offsets */
	CHECK(F.vr.split.desc == vhu_mem_guest_to_host(F.mem, GPA_BASE + DESC_OFF, 16 * 16));
	CHECK(F.vr.split.avail == vhu_mem_guest_to_host(F.mem, GPA_BASE + AVAIL_OFF, 38));
	CHECK(F.vr.split.used == vhu_mem_guest_to_host(F.mem, GPA_BASE + USED_OFF, 134));

	/* header length by features */
	fx_refresh(0);
	CHECK_EQ(F.vr.neg.hdr_len, 10);
	fx_refresh(MRG);
	CHECK_EQ(F.vr.neg.hdr_len, 12);
	CHECK(F.vr.neg.mrg_rxbuf);
	fx_refresh(V1 | MRG);
	CHECK_EQ(F.vr.neg.hdr_len, 12);
	CHECK_EQ(F.mem->refcnt, 2);		/* the same table is not referenced twice */

	/* a ring area outside guest memory: not ready, bursts do nothing */
	fx_set_used_addr(FE_BASE + GUEST_SIZE - 0x10);
	CHECK(!F.vr.ready);
	fx_set_used_addr(FE_BASE + USED_OFF);
	CHECK(F.vr.ready);

	/* disabled ring: not ready */
	vhu_vring_ctl_enable(&F.vr, false);
	CHECK(!F.vr.ready);
	{
		uint8_t frame[60];
		struct rte_mbuf *pkts[4];

		make_frame(frame, sizeof(frame), 1);
		push(tx_simple(12, frame, sizeof(frame)));
		CHECK_EQ(deq(pkts, 4), 0);
		CHECK_EQ(used_idx(), 7);
		vhu_vring_ctl_enable(&F.vr, true);
		CHECK(F.vr.ready);
		CHECK_EQ(deq(pkts, 4), 1);
		CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	}

	/* no memory: the ring drops its reference */
	vhu_vring_ctl_rebase(&F.vr, NULL, V1);
	CHECK(!F.vr.ready);
	CHECK_EQ(F.mem->refcnt, 1);
	fx_refresh(V1);
	CHECK_EQ(F.mem->refcnt, 2);
}

/* A burst while another thread holds the ring lock does nothing. */
static void
test_locked_ring(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 2);
	push(tx_simple(12, frame, sizeof(frame)));
	rte_spinlock_lock(&F.vr.lock);
	CHECK_EQ(deq(pkts, 4), 0);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 0);
	rte_spinlock_unlock(&F.vr.lock);
	CHECK_EQ(used_idx(), 0);
	CHECK_EQ(deq(pkts, 4), 1);
}

/* ==================================================================== */
/* dequeue (guest TX)                                                   */
/* ==================================================================== */

static void
test_deq_single(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	uint16_t head;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 3);
	CHECK_EQ(deq(pkts, 8), 0);			/* nothing yet */
	CHECK_EQ(calls(), 0);

	head = tx_simple(12, frame, sizeof(frame));
	push(head);
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK_EQ(pkts[0]->nb_segs, 1);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(used_at(0).id, head);
	CHECK_EQ(used_at(0).len, 0);
	CHECK_EQ(calls(), 1);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(stats()->bytes, sizeof(frame));
	CHECK_EQ(stats()->notifications, 1);
	CHECK_EQ(stats()->dropped, 0);
	CHECK_EQ(stats()->malformed, 0);

	/* nothing more: no completion, no interrupt */
	CHECK_EQ(deq(pkts, 8), 0);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(calls(), 0);
}

/* Several packets, the burst smaller than what is available. */
static void
test_deq_burst_limit(void)
{
	uint8_t frame[5][100];
	uint16_t head[5];
	struct rte_mbuf *pkts[8];

	CHECK(fx_setup(16, V1));
	for (int i = 0; i < 5; i++) {
		make_frame(frame[i], 60 + i * 10, 10 + i);
		head[i] = tx_simple(12, frame[i], 60 + i * 10);
		push(head[i]);
	}
	CHECK_EQ(deq(pkts, 2), 2);
	CHECK_EQ(used_idx(), 2);
	CHECK(mbuf_is(pkts[0], frame[0], 60));
	CHECK(mbuf_is(pkts[1], frame[1], 70));
	CHECK_EQ(deq(pkts, 8), 3);
	CHECK_EQ(used_idx(), 5);
	for (int i = 0; i < 3; i++)
		CHECK(mbuf_is(pkts[i], frame[i + 2], 80 + i * 10));
	for (uint16_t i = 0; i < 5; i++)
		CHECK_EQ(used_at(i).id, head[i]);
	CHECK_EQ(stats()->packets, 5);
	CHECK_EQ(stats()->bytes, 60 + 70 + 80 + 90 + 100);
}

static void
test_deq_header_own_descriptor(void)
{
	static const uint32_t lens[] = { 12, 30, 70, 1 };
	uint8_t frame[101];
	struct rte_mbuf *pkts[4];
	uint16_t head;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 4);
	head = tx_chain(lens, 4, 12, frame);
	push(head);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK_EQ(used_at(0).id, head);
	CHECK_EQ(used_at(0).len, 0);
}

static void
test_deq_header_split(void)
{
	/* 5 + 7 header bytes; the second descriptor also carries frame bytes */
	static const uint32_t lens[] = { 5, 27, 50 };
	uint8_t frame[5 + 27 + 50 - 12];
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 5);
	push(tx_chain(lens, 3, 12, frame));
	/* and a header split exactly 5 + 7 */
	static const uint32_t lens2[] = { 5, 7, 64 };
	uint8_t frame2[64];

	make_frame(frame2, sizeof(frame2), 6);
	push(tx_chain(lens2, 3, 12, frame2));

	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(mbuf_is(pkts[1], frame2, sizeof(frame2)));
}

/* A buffer that straddles two guest memory regions adjacent in gpa space. */
static void
test_deq_buffer_across_regions(void)
{
	uint8_t frame[300];
	struct rte_mbuf *pkts[4];
	uint8_t *end;
	uint16_t d;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 7);
	end = G.g + GUEST_SIZE - 100;		/* 100 bytes in region 0 ... */
	no_offload_hdr(end, 12);
	memcpy(end + 12, frame, 88);
	memcpy(G.g2, frame + 88, sizeof(frame) - 88);	/* ... the rest in region 1 */
	d = new_desc();
	set_desc(F.desc, d, gpa(end), 12 + sizeof(frame), 0, 0);
	push(d);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
}

static void
test_deq_indirect(void)
{
	uint8_t frame[200], frame2[80];
	struct rte_mbuf *pkts[4];
	struct vring_desc *t;
	uint8_t *h, *b1, *b2;
	uint16_t head, head2;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 8);
	h = galloc(12);
	no_offload_hdr(h, 12);
	b1 = galloc(50);
	memcpy(b1, frame, 50);
	b2 = galloc(150);
	memcpy(b2, frame + 50, 150);
	/* out of order inside the table: 0 -> 2 -> 1 */
	t = indirect_alloc(3);
	set_desc(t, 0, gpa(h), 12, VRING_DESC_F_NEXT, 2);
	set_desc(t, 2, gpa(b1), 50, VRING_DESC_F_NEXT, 1);
	set_desc(t, 1, gpa(b2), 150, 0, 0);
	head = new_desc();
	set_desc(F.desc, head, gpa(t), 3 * 16, VRING_DESC_F_INDIRECT, 0);
	push(head);

	/* the write flag on the descriptor naming the table is ignored (spec 2.7.5.3.2) */
	make_frame(frame2, sizeof(frame2), 9);
	h = galloc(12 + sizeof(frame2));
	no_offload_hdr(h, 12);
	memcpy(h + 12, frame2, sizeof(frame2));
	t = indirect_alloc(1);
	set_desc(t, 0, gpa(h), 12 + sizeof(frame2), 0, 0);
	head2 = new_desc();
	set_desc(F.desc, head2, gpa(t), 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	push(head2);

	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(mbuf_is(pkts[1], frame2, sizeof(frame2)));
	CHECK_EQ(used_at(0).id, head);
	CHECK_EQ(used_at(1).id, head2);
	CHECK_EQ(stats()->malformed, 0);
}

/* An indirect table may follow direct descriptors in a chain. */
static void
test_deq_direct_then_indirect(void)
{
	uint8_t frame[100];
	struct rte_mbuf *pkts[4];
	struct vring_desc *t;
	uint8_t *h, *b;
	uint16_t d0, d1;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 10);
	h = galloc(12);
	no_offload_hdr(h, 12);
	b = galloc(sizeof(frame));
	memcpy(b, frame, sizeof(frame));
	t = indirect_alloc(1);
	set_desc(t, 0, gpa(b), sizeof(frame), 0, 0);
	d0 = new_desc();
	d1 = new_desc();
	set_desc(F.desc, d0, gpa(h), 12, VRING_DESC_F_NEXT, d1);
	set_desc(F.desc, d1, gpa(t), 16, VRING_DESC_F_INDIRECT, 0);
	push(d0);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
}

/* Frames longer than one mbuf come out as a chain. */
static void
test_deq_mbuf_chain(void)
{
	static uint8_t frame[VHU_MAX_FRAME_LEN];
	const uint32_t room = RTE_MBUF_DEFAULT_DATAROOM;
	struct rte_mbuf *pkts[4];
	const struct rte_mbuf *s;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 11);
	push(tx_simple(12, frame, 5000));
	/* the largest frame accepted, split over descriptors too */
	{
		uint32_t lens[] = { 1000, 30000, 12 + VHU_MAX_FRAME_LEN - 31000 };

		push(tx_chain(lens, 3, 12, frame));
	}
	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(mbuf_is(pkts[0], frame, 5000));
	CHECK_EQ(pkts[0]->nb_segs, (5000 + room - 1) / room);
	s = pkts[0];
	CHECK_EQ(s->data_len, room);
	CHECK_EQ(s->next->data_len, room);
	CHECK_EQ(s->next->next->data_len, 5000 - 2 * room);
	CHECK_NULL(s->next->next->next);
	CHECK(mbuf_is(pkts[1], frame, VHU_MAX_FRAME_LEN));
	CHECK_EQ(pkts[1]->nb_segs, (VHU_MAX_FRAME_LEN + room - 1) / room);
	CHECK_EQ(stats()->bytes, 5000 + VHU_MAX_FRAME_LEN);
}

/* Without VERSION_1 (and without MRG_RXBUF) the header is 10 bytes. */
static void
test_deq_legacy_header(void)
{
	static const uint32_t lens[] = { 10, 64 };
	uint8_t frame[64];
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup(16, 0));
	CHECK_EQ(F.vr.neg.hdr_len, 10);
	make_frame(frame, sizeof(frame), 12);
	push(tx_simple(10, frame, sizeof(frame)));
	push(tx_chain(lens, 2, 10, frame));
	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(mbuf_is(pkts[1], frame, sizeof(frame)));

	/* legacy with MRG_RXBUF: 12 bytes */
	fx_refresh(MRG);
	push(tx_simple(12, frame, sizeof(frame)));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
}

/* 16-bit ring indices wrap around. */
static void
test_deq_index_wrap(void)
{
	uint8_t frame[6][80];
	uint16_t head[6];
	struct rte_mbuf *pkts[8];

	CHECK(fx_setup_at(4, V1, 0xfffe));
	for (int i = 0; i < 4; i++) {
		make_frame(frame[i], 60 + i, 20 + i);
		head[i] = tx_simple(12, frame[i], 60 + i);
		push(head[i]);
	}
	CHECK_EQ(deq(pkts, 8), 4);		/* exactly a full ring */
	CHECK_EQ(used_idx(), 2);
	for (uint16_t i = 0; i < 4; i++) {
		CHECK(mbuf_is(pkts[i], frame[i], 60 + i));
		CHECK_EQ(used_at(i).id, head[i]);
	}
	for (int i = 4; i < 6; i++) {
		make_frame(frame[i], 70, 20 + i);
		head[i] = tx_simple(12, frame[i], 70);
		push(head[i]);
	}
	CHECK_EQ(deq(pkts, 8), 2);
	CHECK_EQ(used_idx(), 4);
	CHECK(mbuf_is(pkts[1], frame[5], 70));
	CHECK(!F.vr.broken);
}

static void
test_deq_no_interrupt(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 13);
	F.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	push(tx_simple(12, frame, sizeof(frame)));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK_EQ(used_idx(), 1);		/* published all the same */
	CHECK_EQ(calls(), 0);
	CHECK_EQ(stats()->notifications, 0);
	F.avail->flags = 0;
	push(tx_simple(12, frame, sizeof(frame)));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK_EQ(calls(), 1);
	CHECK_EQ(stats()->notifications, 1);
}

/* Running out of mbufs for a chain drops the frame and leaks nothing. */
static void
test_deq_alloc_failure(void)
{
	static uint8_t frame[5000];
	struct rte_mempool *small;
	struct rte_mbuf *pkts[4];
	uint16_t head;

	CHECK(fx_setup(16, V1));
	small = rte_pktmbuf_pool_create("vhu_unit_small", 2, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					(int)rte_socket_id());
	CHECK_NOT_NULL(small);
	make_frame(frame, sizeof(frame), 14);
	head = tx_simple(12, frame, sizeof(frame));	/* needs 3 mbufs */
	push(head);
	EXPECT_EQ(vhu_dequeue_burst(&F.vr, small, pkts, 4), 0);
	EXPECT_EQ(used_idx(), 1);
	EXPECT_EQ(used_at(0).id, head);
	EXPECT_EQ(stats()->alloc_failed, 1);
	EXPECT_EQ(stats()->dropped, 1);
	EXPECT_EQ(rte_mempool_avail_count(small), 2);
	/* an empty pool: nothing taken from the ring */
	{
		struct rte_mbuf *hold[2];

		EXPECT_EQ(rte_pktmbuf_alloc_bulk(small, hold, 2), 0);
		push(tx_simple(12, frame, 60));
		EXPECT_EQ(vhu_dequeue_burst(&F.vr, small, pkts, 4), 0);
		EXPECT_EQ(used_idx(), 1);
		EXPECT_EQ(stats()->alloc_failed, 2);
		rte_pktmbuf_free_bulk(hold, 2);
		EXPECT_EQ(vhu_dequeue_burst(&F.vr, small, pkts, 4), 1);
		EXPECT(mbuf_is(pkts[0], frame, 60));
		rte_pktmbuf_free(pkts[0]);
	}
	rte_mempool_free(small);
}

/* ---- malformed TX chains ---- */

/* Each builds one bad chain (not yet available) and returns its head. */
typedef uint16_t (*bad_builder)(void);

/*
 * A valid-looking descriptor in @slot, just past the end of a table: a chain
 * that wrongly reached it would make a good packet (catches off-by-one).
 */
static void
bait(struct vring_desc *table, uint32_t slot)
{
	uint8_t *b = galloc(12 + 60);

	no_offload_hdr(b, 12);
	make_frame(b + 12, 60, 98);
	set_desc(table, (uint16_t)slot, gpa(b), 12 + 60, 0, 0);
}

static uint16_t
bad_next_out_of_range(void)
{
	uint16_t d = new_desc();

	bait(F.desc, F.size);
	set_desc(F.desc, d, gpa(galloc(12)), 12, VRING_DESC_F_NEXT, (uint16_t)F.size);
	return d;
}

static uint16_t
bad_next_ffff(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, gpa(galloc(12)), 12, VRING_DESC_F_NEXT, 0xffff);
	return d;
}

static uint16_t
bad_loop(void)
{
	uint16_t a = new_desc(), b = new_desc();

	set_desc(F.desc, a, gpa(galloc(8)), 8, VRING_DESC_F_NEXT, b);
	set_desc(F.desc, b, gpa(galloc(8)), 8, VRING_DESC_F_NEXT, a);
	return a;
}

static uint16_t
bad_self_loop_empty(void)
{
	uint16_t a = new_desc();

	set_desc(F.desc, a, gpa(galloc(1)), 0, VRING_DESC_F_NEXT, a);
	return a;
}

static uint16_t
indirect_head(const struct vring_desc *t, uint32_t len, uint16_t flags)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, gpa(t), len, VRING_DESC_F_INDIRECT | flags, 0);
	return d;
}

/* A valid 1-entry table holding a whole packet. */
static struct vring_desc *
good_table(void)
{
	struct vring_desc *t = indirect_alloc(2);
	uint8_t *b = galloc(100);

	no_offload_hdr(b, 12);
	make_frame(b + 12, 88, 99);
	set_desc(t, 0, gpa(b), 100, 0, 0);
	return t;
}

static uint16_t
bad_nested_indirect(void)
{
	struct vring_desc *inner = good_table();
	struct vring_desc *outer = indirect_alloc(1);

	set_desc(outer, 0, gpa(inner), 16, VRING_DESC_F_INDIRECT, 0);
	return indirect_head(outer, 16, 0);
}

/* A table of 1 descriptor whose chain goes on into a second one (bait) */
static uint16_t
bad_indirect_len_16_next(void)
{
	struct vring_desc *t = indirect_alloc(2);

	set_desc(t, 0, gpa(galloc(12)), 12, VRING_DESC_F_NEXT, 1);
	bait(t, 1);
	return indirect_head(t, 16, 0);
}

static uint16_t
bad_indirect_len_24(void)
{
	return indirect_head(good_table(), 24, 0);
}

static uint16_t
bad_indirect_len_0(void)
{
	return indirect_head(good_table(), 0, 0);
}

static uint16_t
bad_indirect_with_next(void)
{
	uint16_t d = indirect_head(good_table(), 16, VRING_DESC_F_NEXT);

	F.desc[d].next = (uint16_t)((d + 1) % F.size);
	set_desc(F.desc, (uint16_t)((d + 1) % F.size), gpa(galloc(20)), 20, 0, 0);
	new_desc();
	return d;
}

static uint16_t
bad_indirect_table_outside(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, UINT64_C(0x40000000), 32, VRING_DESC_F_INDIRECT, 0);
	return d;
}

static uint16_t
bad_indirect_table_runs_off(void)
{
	uint16_t d = new_desc();

	/* starts 16 bytes before the end of guest memory, 32 bytes long */
	set_desc(F.desc, d, GPA2_BASE + GUEST2_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	return d;
}

static uint16_t
bad_indirect_next_out_of_range(void)
{
	struct vring_desc *t = indirect_alloc(3);

	set_desc(t, 0, gpa(galloc(12)), 12, VRING_DESC_F_NEXT, 1);
	set_desc(t, 1, gpa(galloc(20)), 20, VRING_DESC_F_NEXT, 2);	/* the table has 2 */
	bait(t, 2);
	return indirect_head(t, 32, 0);
}

static uint16_t
bad_indirect_loop(void)
{
	struct vring_desc *t = indirect_alloc(2);

	set_desc(t, 0, gpa(galloc(8)), 8, VRING_DESC_F_NEXT, 1);
	set_desc(t, 1, gpa(galloc(8)), 8, VRING_DESC_F_NEXT, 0);
	return indirect_head(t, 32, 0);
}

static uint16_t
bad_buffer_outside(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, UINT64_C(0x40000000), 100, 0, 0);
	return d;
}

static uint16_t
bad_buffer_runs_off(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, GPA2_BASE + GUEST2_SIZE - 50, 100, 0, 0);
	return d;
}

static uint16_t
bad_buffer_starts_before(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, GPA_BASE - 10, 100, 0, 0);
	return d;
}

static uint16_t
bad_buffer_wraps(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, UINT64_MAX - 10, 100, 0, 0);
	return d;
}

static uint16_t
bad_second_buffer_outside(void)
{
	uint16_t a = new_desc(), b = new_desc();

	set_desc(F.desc, a, gpa(galloc(12)), 12, VRING_DESC_F_NEXT, b);
	set_desc(F.desc, b, UINT64_C(0x40000000), 60, 0, 0);
	return a;
}

static uint16_t
bad_writable(void)
{
	uint8_t *b = galloc(72);
	uint16_t d = new_desc();

	no_offload_hdr(b, 12);
	make_frame(b + 12, 60, 1);
	set_desc(F.desc, d, gpa(b), 72, VRING_DESC_F_WRITE, 0);
	return d;
}

static uint16_t
bad_writable_second(void)
{
	uint16_t a = new_desc(), b = new_desc();

	set_desc(F.desc, a, gpa(galloc(12)), 12, VRING_DESC_F_NEXT, b);
	set_desc(F.desc, b, gpa(galloc(60)), 60, VRING_DESC_F_WRITE, 0);
	return a;
}

static uint16_t
bad_writable_in_indirect(void)
{
	struct vring_desc *t = good_table();

	t[0].flags |= VRING_DESC_F_WRITE;
	return indirect_head(t, 16, 0);
}

static uint16_t
bad_shorter_than_header(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, gpa(galloc(8)), 8, 0, 0);
	return d;
}

static uint16_t
bad_no_ethernet_header(void)
{
	uint16_t d = new_desc();

	set_desc(F.desc, d, gpa(galloc(12 + 13)), 12 + 13, 0, 0);
	return d;
}

static uint16_t
bad_frame_too_long(void)
{
	uint32_t len = 12 + VHU_MAX_FRAME_LEN + 1;
	uint16_t d = new_desc();

	set_desc(F.desc, d, gpa(galloc(len)), len, 0, 0);
	return d;
}

/* More pieces than a chain may have (VHU_CHAIN_MAX_IOV): refused, no overflow. */
static uint16_t
bad_too_many_pieces(void)
{
	const uint32_t n = VHU_CHAIN_MAX_IOV + 2;
	struct vring_desc *t = indirect_alloc(n);
	uint8_t *b = galloc(n);

	for (uint32_t i = 0; i < n; i++)
		set_desc(t, (uint16_t)i, gpa(b + i), 1,
			 i + 1 < n ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	return indirect_head(t, n * 16, 0);
}

/* Zero-length buffers must still point into guest memory. */
static uint16_t
bad_empty_buffer_outside(void)
{
	uint16_t a = new_desc(), b = new_desc();

	set_desc(F.desc, a, UINT64_C(0x40000000), 0, VRING_DESC_F_NEXT, b);
	set_desc(F.desc, b, gpa(galloc(80)), 80, 0, 0);
	return a;
}

struct bad_case {
	const char *name;
	bad_builder build;
};

#define BAD(fn) { #fn, fn }
static const struct bad_case bad_tx_cases[] = {
	BAD(bad_next_out_of_range),
	BAD(bad_next_ffff),
	BAD(bad_loop),
	BAD(bad_self_loop_empty),
	BAD(bad_nested_indirect),
	BAD(bad_indirect_len_16_next),
	BAD(bad_indirect_len_24),
	BAD(bad_indirect_len_0),
	BAD(bad_indirect_with_next),
	BAD(bad_indirect_table_outside),
	BAD(bad_indirect_table_runs_off),
	BAD(bad_indirect_next_out_of_range),
	BAD(bad_indirect_loop),
	BAD(bad_buffer_outside),
	BAD(bad_buffer_runs_off),
	BAD(bad_buffer_starts_before),
	BAD(bad_buffer_wraps),
	BAD(bad_second_buffer_outside),
	BAD(bad_writable),
	BAD(bad_writable_second),
	BAD(bad_writable_in_indirect),
	BAD(bad_shorter_than_header),
	BAD(bad_no_ethernet_header),
	BAD(bad_frame_too_long),
	BAD(bad_too_many_pieces),
	BAD(bad_empty_buffer_outside),
};

/*
 * good, bad, good in one burst, then good again: the bad chain is completed
 * in order with length 0 and counted; the good ones are unaffected.
 */
static void
malformed_tx_case(const struct bad_case *bc)
{
	uint8_t frame[3][90];
	uint16_t head[4];
	struct rte_mbuf *pkts[8];

	CHECK(fx_setup(16, V1));
	for (int i = 0; i < 3; i++)
		make_frame(frame[i], sizeof(frame[i]), 40 + i);
	head[0] = tx_simple(12, frame[0], sizeof(frame[0]));
	push(head[0]);
	head[1] = bc->build();
	push(head[1]);
	head[2] = tx_simple(12, frame[1], sizeof(frame[1]));
	push(head[2]);

	CHECK_EQ(deq(pkts, 8), 2);
	CHECK(mbuf_is(pkts[0], frame[0], sizeof(frame[0])));
	CHECK(mbuf_is(pkts[1], frame[1], sizeof(frame[1])));
	CHECK_EQ(used_idx(), 3);
	for (uint16_t i = 0; i < 3; i++) {
		CHECK_EQ(used_at(i).id, head[i]);
		CHECK_EQ(used_at(i).len, 0);
	}
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 2);
	CHECK_EQ(stats()->bytes, 2 * sizeof(frame[0]));
	CHECK(!F.vr.broken);
	CHECK_EQ(calls(), 1);

	head[3] = tx_simple(12, frame[2], sizeof(frame[2]));
	push(head[3]);
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(mbuf_is(pkts[0], frame[2], sizeof(frame[2])));
	CHECK_EQ(used_at(3).id, head[3]);
	CHECK_EQ(stats()->malformed, 1);
}

static void
test_deq_malformed(void)
{
	RUN_CASES(bad_tx_cases, malformed_tx_case, fx_teardown);
}

/* A chain as long as the ring is fine; one descriptor more is a loop. */
static void
test_deq_chain_length_limit(void)
{
	struct rte_mbuf *pkts[4];
	uint32_t lens[8];
	uint8_t frame[200];

	CHECK(fx_setup(8, V1));
	make_frame(frame, sizeof(frame), 50);
	for (int i = 0; i < 8; i++)
		lens[i] = i == 0 ? 12 : 20;
	push(tx_chain(lens, 8, 12, frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, 7 * 20));
	CHECK_EQ(stats()->malformed, 0);
}

/* The available index more than a ring ahead: the ring stops for good. */
static void
test_deq_avail_jump(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[32];

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 51);
	for (int i = 0; i < 16; i++)
		push(tx_simple(12, frame, sizeof(frame)));
	/* exactly a ring's worth is fine */
	CHECK_EQ(deq(pkts, 32), 16);
	CHECK_EQ(used_idx(), 16);
	CHECK(!F.vr.broken);

	__atomic_store_n(&F.avail->idx, (uint16_t)(F.avail_idx + 17), __ATOMIC_RELEASE);
	CHECK_EQ(deq(pkts, 32), 0);
	CHECK(F.vr.broken);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(used_idx(), 16);
	/* even a sane index does not revive it */
	__atomic_store_n(&F.avail->idx, (uint16_t)(F.avail_idx + 1), __ATOMIC_RELEASE);
	CHECK_EQ(deq(pkts, 32), 0);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK_EQ(used_idx(), 16);
	/* until the control thread sets the ring up again */
	fx_refresh(V1);
	CHECK(!F.vr.broken);
}

/* A head index beyond the ring: what came before it is delivered, then the ring stops. */
static void
test_deq_head_out_of_range(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	uint16_t head;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 52);
	head = tx_simple(12, frame, sizeof(frame));
	push(head);
	bait(F.desc, 16);
	push(16);
	push(tx_simple(12, frame, sizeof(frame)));
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(F.vr.broken);
	CHECK_EQ(used_idx(), 1);		/* the bad entry is not completed */
	CHECK_EQ(used_at(0).id, head);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(deq(pkts, 8), 0);
	CHECK_EQ(used_idx(), 1);
}

/*
 * An indirect table at an address that is not a multiple of 16: the
 * specification puts no alignment requirement on indirect tables (only on
 * the three ring areas), and the address comes from the guest. Descriptors
 * must then be read bytewise: a misaligned 8-byte load through a struct
 * pointer is undefined behaviour that UBSan (halt_on_error, set in
 * meson.build) turns into a crash a guest could cause at will.
 */
static void
test_deq_indirect_unaligned(void)
{
	uint8_t frame[100];
	struct rte_mbuf *pkts[4];
	struct vring_desc t[1];
	uint8_t *where, *b;
	uint16_t head;

	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 53);
	b = galloc(12 + sizeof(frame));
	no_offload_hdr(b, 12);
	memcpy(b + 12, frame, sizeof(frame));
	set_desc(t, 0, gpa(b), 12 + sizeof(frame), 0, 0);
	where = galloc(64) + 3;
	memcpy(where, t, sizeof(t));
	head = new_desc();
	set_desc(F.desc, head, gpa(where), 16, VRING_DESC_F_INDIRECT, 0);
	push(head);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
}

/* ==================================================================== */
/* enqueue (guest RX)                                                   */
/* ==================================================================== */

static void
test_enq_simple(void)
{
	uint8_t frame[2][1000], got[2048];
	struct rte_mbuf *pkts[2];
	struct rx_chain c[3];

	CHECK(fx_setup(16, V1));
	for (int i = 0; i < 3; i++) {
		c[i] = rx_simple(1518);
		push(c[i].head);
	}
	make_frame(frame[0], 60, 60);
	make_frame(frame[1], 1000, 61);
	pkts[0] = mk_mbuf1(frame[0], 60);
	pkts[1] = mk_mbuf1(frame[1], 1000);
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(used_at(0).id, c[0].head);
	CHECK_EQ(used_at(0).len, 12 + 60);
	CHECK_EQ(used_at(1).id, c[1].head);
	CHECK_EQ(used_at(1).len, 12 + 1000);
	CHECK(hdr_is(c[0].buf[0], 12, 1));
	CHECK(hdr_is(c[1].buf[0], 12, 1));
	rx_read(&c[0], got, 72);
	CHECK_MEM_EQ(got + 12, frame[0], 60);
	CHECK(rx_untouched_from(&c[0], 72));
	rx_read(&c[1], got, 1012);
	CHECK_MEM_EQ(got + 12, frame[1], 1000);
	CHECK(rx_untouched_from(&c[1], 1012));
	CHECK(rx_untouched_from(&c[2], 0));
	CHECK_EQ(calls(), 1);
	CHECK_EQ(stats()->packets, 2);
	CHECK_EQ(stats()->bytes, 1060);
	CHECK_EQ(stats()->notifications, 1);
	CHECK_EQ(stats()->dropped, 0);
	/* the mbufs are not freed by the library (teardown frees them; a double free would show) */
	CHECK_EQ(rte_mbuf_refcnt_read(pkts[0]), 1);
}

/* Header and frame over several descriptors, header split 5 + 7. */
static void
test_enq_chain(void)
{
	static const uint32_t lens[] = { 5, 7, 30, 100 };
	uint8_t frame[120], got[142];
	struct rte_mbuf *pkts[1];
	struct rx_chain c;

	CHECK(fx_setup(16, V1));
	c = rx_chain(lens, 4, VRING_DESC_F_WRITE);
	push(c.head);
	make_frame(frame, sizeof(frame), 62);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_at(0).id, c.head);
	CHECK_EQ(used_at(0).len, 132);
	rx_read(&c, got, 142);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c, 132));
}

/* Without VERSION_1: 10-byte header, no num_buffers. */
static void
test_enq_legacy_header(void)
{
	uint8_t frame[64], got[100];
	struct rte_mbuf *pkts[1];
	struct rx_chain c;

	CHECK(fx_setup(16, 0));
	c = rx_simple(100);
	push(c.head);
	make_frame(frame, sizeof(frame), 63);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_at(0).len, 10 + 64);
	rx_read(&c, got, 100);
	CHECK(hdr_is(got, 10, 0));
	CHECK_MEM_EQ(got + 10, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c, 74));
}

/* A frame too big for the chain: dropped and counted; the chain stays for the next one. */
static void
test_enq_too_small(void)
{
	uint8_t big[100], small[30], got[50];
	struct rte_mbuf *pkts[3];
	struct rx_chain c;

	CHECK(fx_setup(16, V1));
	c = rx_simple(50);
	push(c.head);
	make_frame(big, sizeof(big), 64);
	make_frame(small, sizeof(small), 65);
	pkts[0] = mk_mbuf1(big, sizeof(big));
	CHECK_EQ(enq(pkts, 1), 1);		/* consumed (dropped) */
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 0);
	CHECK_EQ(stats()->malformed, 0);
	CHECK_EQ(used_idx(), 0);		/* nothing completed, nothing published */
	CHECK_EQ(calls(), 0);
	CHECK_EQ(F.vr.last_avail_idx, 0);	/* the chain was not consumed */
	CHECK(rx_untouched_from(&c, 0));

	pkts[0] = mk_mbuf1(big, sizeof(big));
	pkts[1] = mk_mbuf1(small, sizeof(small));
	pkts[2] = mk_mbuf1(small, sizeof(small));
	CHECK_EQ(enq(pkts, 3), 2);		/* dropped, delivered, no room */
	CHECK_EQ(stats()->dropped, 2);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(used_at(0).id, c.head);
	CHECK_EQ(used_at(0).len, 42);
	rx_read(&c, got, 50);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, small, sizeof(small));
	CHECK_EQ(calls(), 1);
}

static void
test_enq_no_buffers(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];

	CHECK(fx_setup(16, V1 | MRG));
	make_frame(frame, sizeof(frame), 66);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK_EQ(used_idx(), 0);
	CHECK_EQ(calls(), 0);
	fx_refresh(V1);
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK_EQ(used_idx(), 0);
	CHECK_EQ(stats()->dropped, 0);
}

static void
test_enq_mrg(void)
{
	static uint8_t frame[3000], got[2048];
	uint8_t frame2[100];
	struct rte_mbuf *pkts[2];
	struct rx_chain c[3];

	CHECK(fx_setup(16, V1 | MRG));
	for (int i = 0; i < 3; i++) {
		c[i] = rx_simple(2048);
		push(c[i].head);
	}
	make_frame(frame, sizeof(frame), 67);
	make_frame(frame2, sizeof(frame2), 68);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	pkts[1] = mk_mbuf1(frame2, sizeof(frame2));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(used_idx(), 3);
	CHECK_EQ(used_at(0).id, c[0].head);
	CHECK_EQ(used_at(0).len, 2048);
	CHECK_EQ(used_at(1).id, c[1].head);
	CHECK_EQ(used_at(1).len, 3012 - 2048);
	CHECK_EQ(used_at(2).id, c[2].head);
	CHECK_EQ(used_at(2).len, 112);
	CHECK(hdr_is(c[0].buf[0], 12, 2));
	CHECK_MEM_EQ(c[0].buf[0] + 12, frame, 2036);
	CHECK_MEM_EQ(c[1].buf[0], frame + 2036, 964);
	CHECK(rx_untouched_from(&c[1], 964));
	CHECK(hdr_is(c[2].buf[0], 12, 1));
	rx_read(&c[2], got, 112);
	CHECK_MEM_EQ(got + 12, frame2, sizeof(frame2));
	CHECK(rx_untouched_from(&c[2], 112));
	CHECK_EQ(stats()->packets, 2);
	CHECK_EQ(stats()->bytes, 3100);
	CHECK_EQ(calls(), 1);
}

/* num_buffers above 255, and its two bytes in different descriptors. */
static void
test_enq_mrg_num_buffers_bytes(void)
{
	static uint8_t frame[300 * 32 - 12];
	static const uint32_t first[] = { 11, 21 };
	struct rte_mbuf *pkts[1];
	struct rx_chain c[300];
	uint32_t pos;

	CHECK(fx_setup(512, V1 | MRG));
	c[0] = rx_chain(first, 2, VRING_DESC_F_WRITE);
	push(c[0].head);
	for (int i = 1; i < 300; i++) {
		c[i] = rx_simple(32);
		push(c[i].head);
	}
	make_frame(frame, sizeof(frame), 69);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_idx(), 300);
	/* header: 10 zero bytes, num_buffers = 300 = 0x012c, low byte last in desc 0 */
	for (int i = 0; i < 10; i++)
		CHECK_EQ(c[0].buf[0][i], 0);
	CHECK_EQ(c[0].buf[0][10], 0x2c);
	CHECK_EQ(c[0].buf[1][0], 0x01);
	CHECK_MEM_EQ(c[0].buf[1] + 1, frame, 20);
	pos = 20;
	for (uint16_t i = 1; i < 300; i++) {
		CHECK_EQ(used_at(i).id, c[i].head);
		CHECK_EQ(used_at(i).len, 32);
		CHECK_MEM_EQ(c[i].buf[0], frame + pos, 32);
		pos += 32;
	}
	CHECK_EQ(used_at(0).len, 32);
	CHECK_EQ(pos, sizeof(frame));
}

/* Out of buffers half-way through a frame: nothing of it is published. */
static void
test_enq_mrg_out_of_buffers(void)
{
	static uint8_t small[500], big[3000];
	struct rte_mbuf *pkts[2];
	struct rx_chain c[5];

	CHECK(fx_setup(16, V1 | MRG));
	for (int i = 0; i < 2; i++) {
		c[i] = rx_simple(1024);
		push(c[i].head);
	}
	make_frame(small, sizeof(small), 70);
	make_frame(big, sizeof(big), 71);
	pkts[0] = mk_mbuf1(small, sizeof(small));
	pkts[1] = mk_mbuf1(big, sizeof(big));
	CHECK_EQ(enq(pkts, 2), 1);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(used_at(0).id, c[0].head);
	CHECK_EQ(used_at(0).len, 512);
	CHECK_EQ(F.vr.last_avail_idx, 1);	/* c[1] given back */
	CHECK_EQ(F.vr.last_used_idx, 1);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(stats()->dropped, 0);
	CHECK_EQ(calls(), 1);

	/* still no room: no change at all, no interrupt */
	CHECK_EQ(enq(&pkts[1], 1), 0);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(calls(), 0);

	/* more buffers: the frame goes into c[1], c[2], c[3] */
	for (int i = 2; i < 5; i++) {
		c[i] = rx_simple(1024);
		push(c[i].head);
	}
	CHECK_EQ(enq(&pkts[1], 1), 1);
	CHECK_EQ(used_idx(), 4);
	CHECK_EQ(used_at(1).id, c[1].head);
	CHECK_EQ(used_at(1).len, 1024);
	CHECK_EQ(used_at(2).id, c[2].head);
	CHECK_EQ(used_at(2).len, 1024);
	CHECK_EQ(used_at(3).id, c[3].head);
	CHECK_EQ(used_at(3).len, 3012 - 2048);
	CHECK(hdr_is(c[1].buf[0], 12, 3));
	CHECK_MEM_EQ(c[1].buf[0] + 12, big, 1012);
	CHECK_MEM_EQ(c[2].buf[0], big + 1012, 1024);
	CHECK_MEM_EQ(c[3].buf[0], big + 2036, 964);
	CHECK(rx_untouched_from(&c[4], 0));
}

/* Multi-segment mbufs, with segment and buffer boundaries in different places. */
static void
test_enq_multiseg(void)
{
	static const uint32_t segs[] = { 100, 1, 200, 50, 649 };
	uint8_t frame[1000], got[1100];
	struct rte_mbuf *pkts[1];
	struct rx_chain c[8];

	/* one chain per packet */
	CHECK(fx_setup(16, V1));
	make_frame(frame, sizeof(frame), 72);
	c[0] = rx_simple(1100);
	push(c[0].head);
	pkts[0] = mk_mbuf(frame, segs, 5);
	CHECK_EQ(pkts[0]->nb_segs, 5);
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_at(0).len, 1012);
	rx_read(&c[0], got, 1100);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c[0], 1012));
	fx_teardown();

	/* mergeable, 128-byte buffers */
	CHECK(fx_setup(16, V1 | MRG));
	for (int i = 0; i < 8; i++) {
		c[i] = rx_simple(128);
		push(c[i].head);
	}
	pkts[0] = mk_mbuf(frame, segs, 5);
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_idx(), 8);		/* 1012 bytes: 7 full buffers + 116 */
	for (uint16_t i = 0; i < 8; i++) {
		CHECK_EQ(used_at(i).id, c[i].head);
		CHECK_EQ(used_at(i).len, i < 7 ? 128 : 1012 - 7 * 128);
		memcpy(got + i * 128, c[i].buf[0], 128);
	}
	CHECK(hdr_is(got, 12, 8));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c[7], 1012 - 7 * 128));
}

/*
 * A read-only descriptor on the RX ring: the chain is refused and returned
 * empty, and the frame that met it is dropped; the next frame uses the next chain.
 */
static void
enq_readonly_case(uint64_t features)
{
	static const uint32_t lens[] = { 12, 100 };
	uint8_t frame[60], got[112];
	struct rte_mbuf *pkts[3];
	struct rx_chain bad1, bad2, good;

	CHECK(fx_setup(16, features));
	bad1 = rx_chain(lens, 1, 0);			/* read-only */
	push(bad1.head);
	bad2 = rx_chain(lens, 2, VRING_DESC_F_WRITE);
	F.desc[(bad2.head + 1) % 16].flags &= (uint16_t)~VRING_DESC_F_WRITE;	/* second one read-only */
	push(bad2.head);
	good = rx_simple(112);
	push(good.head);
	make_frame(frame, sizeof(frame), 73);
	for (int i = 0; i < 3; i++)
		pkts[i] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 3), 3);
	CHECK_EQ(used_idx(), 3);
	CHECK_EQ(used_at(0).id, bad1.head);
	CHECK_EQ(used_at(0).len, 0);
	CHECK_EQ(used_at(1).id, bad2.head);
	CHECK_EQ(used_at(1).len, 0);
	CHECK_EQ(used_at(2).id, good.head);
	CHECK_EQ(used_at(2).len, 72);
	CHECK(rx_untouched_from(&bad1, 0));
	rx_read(&good, got, 112);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK_EQ(stats()->malformed, 2);
	CHECK_EQ(stats()->dropped, 2);
	CHECK_EQ(stats()->packets, 1);
}

static void
test_enq_readonly(void)
{
	enq_readonly_case(V1);
	fx_teardown();
	enq_readonly_case(V1 | MRG);
}

/* Malformed chains are completed empty and published; the frames meeting them are dropped. */
static void
test_enq_only_malformed(void)
{
	static const uint32_t len = 200;
	uint8_t frame[60];
	struct rte_mbuf *pkts[3];
	struct rx_chain bad;
	uint16_t d;

	CHECK(fx_setup(16, V1));
	bad = rx_chain(&len, 1, 0);
	push(bad.head);
	d = new_desc();
	set_desc(F.desc, d, gpa(galloc(10)), 10, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 16);
	push(d);
	make_frame(frame, sizeof(frame), 74);
	for (int i = 0; i < 3; i++)
		pkts[i] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 3), 2);		/* two dropped, no room for the third */
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(used_at(0).id, bad.head);
	CHECK_EQ(used_at(0).len, 0);
	CHECK_EQ(used_at(1).id, d);
	CHECK_EQ(used_at(1).len, 0);
	CHECK_EQ(stats()->malformed, 2);
	CHECK_EQ(stats()->dropped, 2);
	CHECK_EQ(stats()->packets, 0);
	CHECK_EQ(calls(), 1);
	rte_pktmbuf_free(pkts[2]);
}

/*
 * Walking a chain stops once it holds what is needed (virtqueue_split.h):
 * what lies beyond, even a bad next index, is not looked at.
 */
static void
test_enq_walk_stops_at_want(void)
{
	uint8_t frame[60], got[72];
	struct rte_mbuf *pkts[1];
	struct rx_chain c;

	CHECK(fx_setup(16, V1));
	c = rx_simple(200);
	F.desc[c.head].flags |= VRING_DESC_F_NEXT;
	F.desc[c.head].next = 0xffff;
	push(c.head);
	make_frame(frame, sizeof(frame), 78);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_at(0).id, c.head);
	CHECK_EQ(used_at(0).len, 72);
	CHECK_EQ(stats()->malformed, 0);
	rx_read(&c, got, 72);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
}

/* With mergeable buffers a first chain shorter than the header drops the frame. */
static void
test_enq_mrg_short_first(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[2];
	struct rx_chain tiny, good;

	CHECK(fx_setup(16, V1 | MRG));
	tiny = rx_simple(8);
	push(tiny.head);
	good = rx_simple(256);
	push(good.head);
	make_frame(frame, sizeof(frame), 75);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	pkts[1] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(used_at(0).id, tiny.head);
	CHECK_EQ(used_at(0).len, 0);
	CHECK_EQ(used_at(1).id, good.head);
	CHECK_EQ(used_at(1).len, 72);
	CHECK(hdr_is(good.buf[0], 12, 1));
	CHECK_MEM_EQ(good.buf[0] + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&tiny, 0));
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 1);
}

/*
 * A malformed chain in the middle of a mergeable frame: the frame is dropped
 * and every chain it took goes back empty, so the driver never sees a frame
 * with an empty buffer inside it.
 */
static void
test_enq_mrg_malformed_mid_frame(void)
{
	static uint8_t big[3000], small[60];
	struct rte_mbuf *pkts[2];
	struct rx_chain a, bad, c;

	CHECK(fx_setup(16, V1 | MRG));
	a = rx_simple(1024);
	push(a.head);
	bad = rx_chain((const uint32_t[]){ 1024 }, 1, 0);	/* read-only */
	push(bad.head);
	c = rx_simple(2048);
	push(c.head);
	make_frame(big, sizeof(big), 79);
	make_frame(small, sizeof(small), 80);
	pkts[0] = mk_mbuf1(big, sizeof(big));
	pkts[1] = mk_mbuf1(small, sizeof(small));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(used_idx(), 3);
	CHECK_EQ(used_at(0).id, a.head);
	CHECK_EQ(used_at(0).len, 0);
	CHECK_EQ(used_at(1).id, bad.head);
	CHECK_EQ(used_at(1).len, 0);
	CHECK_EQ(used_at(2).id, c.head);
	CHECK_EQ(used_at(2).len, 72);
	CHECK(hdr_is(c.buf[0], 12, 1));
	CHECK_MEM_EQ(c.buf[0] + 12, small, sizeof(small));
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(stats()->malformed, 1);
}

/*
 * A mergeable frame larger than all the buffers of a full ring can never be
 * delivered: it is dropped (not left to block the queue), and the buffers
 * stay with the guest for the next frame.
 */
static void
test_enq_mrg_larger_than_ring(void)
{
	static uint8_t big[1000], small[60];
	struct rte_mbuf *pkts[2];
	struct rx_chain c[4];

	CHECK(fx_setup(4, V1 | MRG));
	for (int i = 0; i < 4; i++) {
		c[i] = rx_simple(100);
		push(c[i].head);
	}
	make_frame(big, sizeof(big), 81);
	make_frame(small, sizeof(small), 82);
	pkts[0] = mk_mbuf1(big, sizeof(big));
	pkts[1] = mk_mbuf1(small, sizeof(small));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(used_at(0).id, c[0].head);
	CHECK_EQ(used_at(0).len, 72);
}

static void
test_enq_no_interrupt(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];

	CHECK(fx_setup(16, V1));
	F.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	push(rx_simple(100).head);
	make_frame(frame, sizeof(frame), 76);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(calls(), 0);
	CHECK_EQ(stats()->notifications, 0);
}

/*
 * EVENT_IDX: the first publish after a start always calls (nothing to compare
 * with); after that, a call goes out only when the used index moves past
 * used_event (the entry after the available ring), whatever avail->flags says.
 */
static void
test_enq_event_idx(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];

	CHECK(fx_setup(16, V1 | VHU_BIT(VIRTIO_RING_F_EVENT_IDX)));
	F.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;	/* ignored with EVENT_IDX */
	F.avail->ring[16] = 2;				/* used_event: call after entry 2 */
	make_frame(frame, sizeof(frame), 83);
	for (int round = 1; round <= 4; round++) {
		push(rx_simple(100).head);
		pkts[0] = mk_mbuf1(frame, sizeof(frame));
		CHECK_EQ(enq(pkts, 1), 1);
		CHECK_EQ(used_idx(), round);
		/* round 1: first publish; round 3: used index went from 2 to 3, past 2 */
		CHECK_EQ(calls(), round == 1 || round == 3 ? 1 : 0);
	}
	CHECK_EQ(stats()->notifications, 2);
	CHECK_EQ(stats()->notifications_suppressed, 2);
}

/* The RX ring stops on a bad available index or head, like the TX ring. */
static void
test_enq_broken(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[3];
	struct rx_chain c;

	make_frame(frame, sizeof(frame), 77);

	CHECK(fx_setup(16, V1));
	__atomic_store_n(&F.avail->idx, 17, __ATOMIC_RELEASE);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK(F.vr.broken);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(used_idx(), 0);
	fx_teardown();

	for (int mrg = 0; mrg < 2; mrg++) {
		CHECK(fx_setup(16, mrg ? V1 | MRG : V1));
		c = rx_simple(100);
		push(c.head);
		push(16);
		push(rx_simple(100).head);
		for (int i = 0; i < 3; i++)
			pkts[i] = mk_mbuf1(frame, sizeof(frame));
		CHECK_EQ(enq(pkts, 3), 1);
		CHECK(F.vr.broken);
		CHECK_EQ(used_idx(), 1);
		CHECK_EQ(used_at(0).id, c.head);
		CHECK_EQ(used_at(0).len, 72);
		CHECK_EQ(enq(&pkts[1], 2), 0);
		CHECK_EQ(used_idx(), 1);
		fx_teardown();
	}
}

/* ==================================================================== */

/* ==================================================================== */
/* zero-copy dequeue                                                    */
/* ==================================================================== */

#define ZC_THRESHOLD 512

/* A ring with zero-copy on for frames of ZC_THRESHOLD bytes and more. */
static bool
fx_setup_zc(uint32_t size)
{
	bool ready;

	ready = fx_setup(size, V1);
	rte_spinlock_lock(&F.vr.lock);
	F.vr.zc_threshold = ZC_THRESHOLD;
	vhu_zc_ring_started(&F.vr);
	rte_spinlock_unlock(&F.vr.lock);
	return ready && F.vr.zc != NULL;
}

/*
 * Whether every segment after the first points into guest memory as the
 * library maps it (not a copy), and the first is a copy.
 */
static bool
attached_to_guest(const struct rte_mbuf *m)
{
	for (const struct rte_mbuf *s = m->next; s != NULL; s = s->next) {
		const uint8_t *p = rte_pktmbuf_mtod(s, const uint8_t *);
		bool inside = false;

		for (uint32_t r = 0; r < F.mem->nregions; r++) {
			const struct vhu_mem_region *reg = &F.mem->regions[r];

			inside |= p >= reg->host_addr && p + s->data_len <= reg->host_addr + reg->size;
		}
		if (!RTE_MBUF_HAS_EXTBUF(s) || !inside)
			return false;
	}
	return m->next != NULL && !RTE_MBUF_HAS_EXTBUF(m);
}

/* The virtio-net header of the TX chain at @head (its first descriptor). */
static struct virtio_net_hdr *
tx_hdr(uint16_t head)
{
	return (struct virtio_net_hdr *)(G.g + (F.desc[head].addr - GPA_BASE));
}

/*
 * Makes a TX chain of one descriptor available: @frame, made from @seed,
 * after the virtio-net header @hdr (num_buffers 0). Returns the head.
 */
static uint16_t
push_with_hdr(uint8_t *frame, uint32_t len, uint32_t seed, const struct virtio_net_hdr *hdr)
{
	uint16_t head;

	make_frame(frame, len, seed);
	head = tx_simple(12, frame, len);
	memset(tx_hdr(head), 0, 12);
	memcpy(tx_hdr(head), hdr, sizeof(*hdr));
	push(head);
	return head;
}

static void
test_zc_small_frames_copied(void)
{
	uint8_t frame[ZC_THRESHOLD - 1];
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup_zc(16));
	make_frame(frame, sizeof(frame), 90);
	push(tx_simple(12, frame, sizeof(frame)));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(!RTE_MBUF_HAS_EXTBUF(pkts[0]) && pkts[0]->next == NULL);
	CHECK_EQ(used_idx(), 1);			/* given back at once */
	CHECK_EQ(stats()->zero_copy, 0);
	CHECK_EQ(vhu_zc_held(&F.vr), 0);
}

/* A big frame is handed out in guest memory; its chain goes back when freed. */
static void
test_zc_big_frame_held_until_freed(void)
{
	uint8_t frame[1500];
	struct rte_mbuf *pkts[4];
	uint16_t head;

	CHECK(fx_setup_zc(16));
	make_frame(frame, sizeof(frame), 91);
	head = tx_simple(12, frame, sizeof(frame));
	push(head);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(attached_to_guest(pkts[0]));
	CHECK_EQ(pkts[0]->nb_segs, 2);			/* head copy + one guest piece */
	CHECK_EQ(pkts[0]->data_len, VHU_ZC_HEAD_BYTES);
	CHECK_EQ(stats()->zero_copy, 1);
	CHECK_EQ(vhu_zc_held(&F.vr), 1);
	CHECK_EQ(used_idx(), 0);			/* held */
	CHECK_EQ(calls(), 0);
	CHECK_EQ(F.mem->refcnt, 3);			/* ours, the ring's, the mbuf's */

	/* past the head, what the mbuf shows is the guest's buffer itself */
	uint8_t *gframe = (uint8_t *)tx_hdr(head) + 12;

	gframe[0] ^= 0xff;
	gframe[VHU_ZC_HEAD_BYTES] ^= 0xff;
	CHECK_EQ(*rte_pktmbuf_mtod(pkts[0], uint8_t *), frame[0]);	/* a copy */
	CHECK_EQ(*rte_pktmbuf_mtod(pkts[0]->next, uint8_t *), frame[VHU_ZC_HEAD_BYTES] ^ 0xff);

	CHECK_EQ(deq(pkts + 1, 3), 0);			/* nothing new, still held */
	CHECK_EQ(used_idx(), 0);
	app_free(pkts[0]);
	CHECK_EQ(F.mem->refcnt, 2);
	CHECK_EQ(deq(pkts, 4), 0);			/* the next burst gives it back */
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(used_at(0).id, head);
	CHECK_EQ(used_at(0).len, 0);
	CHECK_EQ(calls(), 1);
	CHECK_EQ(vhu_zc_held(&F.vr), 0);
}

/*
 * A guest TX ring started but disabled is still processed (vhost-user): its
 * chains are taken, given back empty and counted as dropped, nothing is
 * delivered; a guest RX ring that is disabled is left alone.
 */
static void
test_disabled_tx_ring_discards(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	uint16_t head;

	CHECK(fx_setup(16, V1));
	F.vr.index = 1;				/* a guest TX ring */
	vhu_vring_ctl_enable(&F.vr, false);
	CHECK(!F.vr.ready && F.vr.discarding);
	make_frame(frame, sizeof(frame), 99);
	head = tx_simple(12, frame, sizeof(frame));
	push(head);
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(used_at(0).id, head);
	CHECK_EQ(used_at(0).len, 0);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 0);

	vhu_vring_ctl_enable(&F.vr, true);			/* and on again: frames flow */
	CHECK(F.vr.ready && !F.vr.discarding);
	push(tx_simple(12, frame, sizeof(frame)));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	app_free(pkts[0]);

	F.vr.index = 0;				/* a guest RX ring: left alone */
	vhu_vring_ctl_enable(&F.vr, false);
	CHECK(!F.vr.ready && !F.vr.discarding);
}

/* A frame over several descriptors and two regions: one mbuf per guest piece. */
static void
test_zc_chain_pieces(void)
{
	uint8_t frame[3000];
	const uint32_t lens[3] = { 12 + 700, 1000, 1300 };
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup_zc(16));
	make_frame(frame, sizeof(frame), 92);
	push(tx_chain(lens, 3, 12, frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(attached_to_guest(pkts[0]));
	CHECK_EQ(pkts[0]->nb_segs, 4);			/* head copy, rest of 1st, 2nd, 3rd */
	app_free(pkts[0]);
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(used_idx(), 1);
}

/*
 * At most half the ring is held; past that, frames are copied and go back
 * at once, so the guest's TX ring keeps moving. Chains held go back in the
 * order their mbufs are freed.
 */
static void
test_zc_bound_and_order(void)
{
	uint8_t frame[12][1000];
	struct rte_mbuf *pkts[16];
	uint16_t head[12];

	CHECK(fx_setup_zc(16));
	for (int i = 0; i < 12; i++) {
		make_frame(frame[i], sizeof(frame[i]), 100 + i);
		head[i] = tx_simple(12, frame[i], sizeof(frame[i]));
		push(head[i]);
	}
	CHECK_EQ(deq(pkts, 16), 12);
	for (int i = 0; i < 12; i++) {
		CHECK(mbuf_is(pkts[i], frame[i], sizeof(frame[i])));
		CHECK_EQ(attached_to_guest(pkts[i]), i < 8);
	}
	CHECK_EQ(stats()->zero_copy, 8);
	CHECK_EQ(vhu_zc_held(&F.vr), 8);
	CHECK_EQ(used_idx(), 4);			/* the four copies */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(used_at(i).id, head[8 + i]);

	/* the application frees 5, 2, 7 */
	app_free(pkts[5]);
	app_free(pkts[2]);
	app_free(pkts[7]);
	CHECK_EQ(deq(pkts + 12, 4), 0);
	CHECK_EQ(used_idx(), 7);
	CHECK_EQ(used_at(4).id, head[5]);
	CHECK_EQ(used_at(5).id, head[2]);
	CHECK_EQ(used_at(6).id, head[7]);
	CHECK_EQ(vhu_zc_held(&F.vr), 5);
}

/*
 * The front end goes away while the application holds mbufs: they stay
 * readable (the memory stays mapped), nothing is written to the old ring,
 * and the mapping goes with the last mbuf.
 */
static void
test_zc_disconnect_while_held(void)
{
	uint8_t frame[2000];
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup_zc(16));
	make_frame(frame, sizeof(frame), 93);
	push(tx_simple(12, frame, sizeof(frame)));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(attached_to_guest(pkts[0]));
	vhu_vring_ctl_reset(&F.vr);				/* the session is gone */
	CHECK_EQ(F.mem->refcnt, 2);			/* ours and the mbuf's */
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	app_free(pkts[0]);
	CHECK_EQ(F.mem->refcnt, 1);
	CHECK_EQ(used_idx(), 0);			/* the old ring was left alone */
}

/*
 * The front end stops the ring (GET_VRING_BASE) while mbufs are held: their
 * chains go back at once so the indices are whole; the mbufs stay valid.
 */
static void
test_zc_stop_gives_back(void)
{
	uint8_t frame[2][800];
	struct rte_mbuf *pkts[4];

	CHECK(fx_setup_zc(16));
	for (int i = 0; i < 2; i++) {
		make_frame(frame[i], sizeof(frame[i]), 94 + i);
		push(tx_simple(12, frame[i], sizeof(frame[i])));
	}
	CHECK_EQ(deq(pkts, 4), 2);
	app_free(pkts[1]);				/* freed, not reaped yet */
	rte_spinlock_lock(&F.vr.lock);
	vhu_zc_ring_stopped(&F.vr, true);
	rte_spinlock_unlock(&F.vr.lock);
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(calls(), 1);
	CHECK(F.vr.zc == NULL);
	CHECK(mbuf_is(pkts[0], frame[0], sizeof(frame[0])));
	app_free(pkts[0]);				/* goes to the orphaned pool */
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(F.mem->refcnt, 2);
}

/*
 * The front end disables and enables the ring (QEMU does when the guest
 * changes its number of queue pairs) while a chain is held: the ring keeps
 * its indices, so the held chain goes back once, when freed, and the next
 * frame is the next available entry, not the held one again.
 */
static void
test_zc_disable_enable_keeps_held(void)
{
	uint8_t frame[2][900];
	struct rte_mbuf *pkts[4];
	uint16_t head[2];

	CHECK(fx_setup_zc(16));
	make_frame(frame[0], sizeof(frame[0]), 97);
	head[0] = tx_simple(12, frame[0], sizeof(frame[0]));
	push(head[0]);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK_EQ(vhu_zc_held(&F.vr), 1);

	vhu_vring_ctl_enable(&F.vr, false);
	CHECK(!F.vr.ready);
	vhu_vring_ctl_enable(&F.vr, true);
	CHECK(F.vr.ready);
	CHECK_EQ(vhu_zc_held(&F.vr), 1);
	CHECK_EQ(used_idx(), 0);

	make_frame(frame[1], sizeof(frame[1]), 98);
	head[1] = tx_simple(12, frame[1], sizeof(frame[1]));
	push(head[1]);
	CHECK_EQ(deq(pkts + 1, 3), 1);			/* the new frame, only */
	CHECK(mbuf_is(pkts[1], frame[1], sizeof(frame[1])));
	app_free(pkts[0]);
	app_free(pkts[1]);
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(used_at(0).id, head[0]);
	CHECK_EQ(used_at(1).id, head[1]);
	CHECK_EQ(vhu_zc_held(&F.vr), 0);
}

/* A checksum to finish beyond the copied head: the frame is copied. */
static void
test_zc_checksum_far_copied(void)
{
	static const struct virtio_net_hdr hdr = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.csum_start = 600,			/* not a TCP/UDP header: finished here */
		.csum_offset = 4,
	};
	uint8_t frame[1200];
	struct rte_mbuf *pkts[4];
	struct virtio_net_hdr *h;

	CHECK(fx_setup_zc(16));
	h = tx_hdr(push_with_hdr(frame, sizeof(frame), 96, &hdr));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(!attached_to_guest(pkts[0]));
	CHECK_EQ(stats()->zero_copy, 0);
	CHECK_EQ(used_idx(), 1);
	/* the guest's buffer was not written (the sum went into our copy) */
	CHECK_MEM_EQ((uint8_t *)h + 12 + 600, frame + 600, 8);
}

/* A held frame whose header turns out bad: dropped, its chain still goes back. */
static void
test_zc_bad_header_held_chain_returns(void)
{
	static const struct virtio_net_hdr hdr = {
		.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,	/* GSO without NEEDS_CSUM */
	};
	uint8_t frame[1200];
	struct rte_mbuf *pkts[4];
	uint16_t head;

	CHECK(fx_setup_zc(16));
	head = push_with_hdr(frame, sizeof(frame), 97, &hdr);
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(deq(pkts, 4), 0);			/* reaped */
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(used_at(0).id, head);
	CHECK_EQ(vhu_zc_held(&F.vr), 0);
}

int
main(int argc __rte_unused, char **argv)
{
	if (!unit_start(argv[0]))
		return 2;
	check_after_each = fx_teardown;

	RUN_TEST(test_refresh);
	RUN_TEST(test_locked_ring);

	RUN_TEST(test_deq_single);
	RUN_TEST(test_deq_burst_limit);
	RUN_TEST(test_deq_header_own_descriptor);
	RUN_TEST(test_deq_header_split);
	RUN_TEST(test_deq_buffer_across_regions);
	RUN_TEST(test_deq_indirect);
	RUN_TEST(test_deq_direct_then_indirect);
	RUN_TEST(test_deq_mbuf_chain);
	RUN_TEST(test_deq_legacy_header);
	RUN_TEST(test_deq_index_wrap);
	RUN_TEST(test_deq_no_interrupt);
	RUN_TEST(test_deq_alloc_failure);
	RUN_TEST(test_deq_malformed);
	RUN_TEST(test_deq_chain_length_limit);
	RUN_TEST(test_deq_avail_jump);
	RUN_TEST(test_deq_head_out_of_range);
	RUN_TEST(test_deq_indirect_unaligned);

	RUN_TEST(test_enq_simple);
	RUN_TEST(test_enq_chain);
	RUN_TEST(test_enq_legacy_header);
	RUN_TEST(test_enq_too_small);
	RUN_TEST(test_enq_no_buffers);
	RUN_TEST(test_enq_mrg);
	RUN_TEST(test_enq_mrg_num_buffers_bytes);
	RUN_TEST(test_enq_mrg_out_of_buffers);
	RUN_TEST(test_enq_multiseg);
	RUN_TEST(test_enq_readonly);
	RUN_TEST(test_enq_only_malformed);
	RUN_TEST(test_enq_walk_stops_at_want);
	RUN_TEST(test_enq_mrg_short_first);
	RUN_TEST(test_enq_mrg_malformed_mid_frame);
	RUN_TEST(test_enq_mrg_larger_than_ring);
	RUN_TEST(test_enq_no_interrupt);
	RUN_TEST(test_enq_event_idx);
	RUN_TEST(test_enq_broken);

	RUN_TEST(test_disabled_tx_ring_discards);
	RUN_TEST(test_zc_small_frames_copied);
	RUN_TEST(test_zc_big_frame_held_until_freed);
	RUN_TEST(test_zc_disable_enable_keeps_held);
	RUN_TEST(test_zc_chain_pieces);
	RUN_TEST(test_zc_bound_and_order);
	RUN_TEST(test_zc_disconnect_while_held);
	RUN_TEST(test_zc_stop_gives_back);
	RUN_TEST(test_zc_checksum_far_copied);
	RUN_TEST(test_zc_bad_header_held_chain_returns);

	return unit_finish(check_summary("test_split"));
}
