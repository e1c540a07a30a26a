/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the data path (virtqueue_split.c, virtqueue_packed.c,
 * dequeue.c, enqueue.c) and of a ring's set-up (vring_ctl.c): every scenario
 * the two ring layouts share, written once and run once per layout (named
 * split/<test> and packed/<test>) on rings laid out in memory the test owns
 * (ring.h). What only one layout has is in test_split.c and test_packed.c.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <netinet/in.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_power_intrinsics.h>

#include "dirty_log.h"
#include "enqueue.h"
#include "memory.h"
#include "vhu.h"
#include "virtio_defs.h"
#include "vring.h"
#include "vring_ctl.h"

#include "check.h"
#include "log_capture.h"
#include "ring.h"
#include "store_trace.h"

#define GUEST_CSUM	VHU_BIT(VIRTIO_NET_F_GUEST_CSUM)
#define HOST_TSO	(VHU_BIT(VIRTIO_NET_F_CSUM) | VHU_BIT(VIRTIO_NET_F_HOST_TSO4))
#define LOG_ALL		VHU_BIT(VHOST_F_LOG_ALL)

static void
teardown(void)
{
	EXPECT(ring_teardown());
}

/* ==================================================================== */
/* set-up                                                               */
/* ==================================================================== */

/*
 * A ring set up as the control thread does: ready, mapped where the front
 * end said, polled, at the driver's position (split: the used index found in
 * guest memory; packed: the base); then what features, a misplaced area, a
 * disable and a missing memory table change.
 */
static void
test_refresh(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct posted p;

	CHECK(ring_setup_at(16, V1, 7));
	CHECK(R.vr->ready);
	CHECK(!R.vr->broken);
	CHECK_EQ(R.vr->neg.packed, R.ops->features != 0);
	CHECK_EQ(R.vr->neg.hdr_len, 12);
	CHECK(!R.vr->neg.mrg_rxbuf);
	CHECK_EQ(R.mem->refcnt, 2);		/* ours and the ring's */
	CHECK(R.ops->mapped());
	/* we poll: the driver is told not to kick */
	CHECK(R.ops->polled());
	CHECK(caught_up());

	/* header length by features */
	ring_refresh(0);
	CHECK_EQ(R.vr->neg.hdr_len, 10);
	ring_refresh(MRG);
	CHECK_EQ(R.vr->neg.hdr_len, 12);
	CHECK(R.vr->neg.mrg_rxbuf);
	ring_refresh(V1 | MRG);
	CHECK_EQ(R.vr->neg.hdr_len, 12);
	CHECK_EQ(R.mem->refcnt, 2);		/* the same table is not referenced twice */

	/* a ring area outside guest memory: not ready */
	R.ops->misplace(true);
	CHECK(!R.vr->ready);
	R.ops->misplace(false);
	CHECK(R.vr->ready);
	/* refreshing a running ring keeps its position */
	CHECK(caught_up());

	/* disabled ring: not ready, bursts do nothing */
	vhu_vring_ctl_enable(R.vr, false);
	CHECK(!R.vr->ready);
	make_frame(frame, sizeof(frame), 1);
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK(none_used());
	vhu_vring_ctl_enable(R.vr, true);
	CHECK(R.vr->ready);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(used_is(&p, 0));

	/* no memory: the ring drops its reference */
	ring_rebase(NULL, R.features);
	CHECK(!R.vr->ready);
	CHECK_EQ(R.mem->refcnt, 1);
	ring_refresh(V1);
	CHECK_EQ(R.mem->refcnt, 2);
}

/* ==================================================================== */
/* dequeue (guest TX)                                                   */
/* ==================================================================== */

static void
test_deq_single(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	struct posted p;

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 3);
	CHECK_EQ(deq(pkts, 8), 0);			/* nothing yet */
	CHECK_EQ(calls(), 0);
	CHECK_EQ(stats()->notifications, 0);

	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK_EQ(pkts[0]->nb_segs, 1);
	CHECK(used_is(&p, 0));
	CHECK(caught_up());
	CHECK_EQ(calls(), 1);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(stats()->bytes, sizeof(frame));
	CHECK_EQ(stats()->notifications, 1);
	CHECK_EQ(stats()->dropped, 0);
	CHECK_EQ(stats()->malformed, 0);

	/* nothing more: no completion, no interrupt */
	CHECK_EQ(deq(pkts, 8), 0);
	CHECK(none_used());
	CHECK_EQ(calls(), 0);
	CHECK(caught_up());
}

/*
 * Rings of one session (the queues of a port): one memory table, and each
 * ring its own positions, used entries and counters. A burst on one ring
 * takes nothing from the others.
 */
static void
test_deq_rings_of_one_session(void)
{
	enum { NRINGS = 3 };
	uint8_t frame[NRINGS][60];
	struct posted p[NRINGS];
	struct rte_mbuf *pkts[8];

	CHECK(ring_setup(8, V1));
	CHECK(rings_add(NRINGS));
	/* ours and the ring's, per ring */
	CHECK_EQ(R.mem->refcnt, 2 * NRINGS);
	for (unsigned int i = 0; i < NRINGS; i++) {
		ring_select(i);
		CHECK_EQ(R.vr->index, i);
		make_frame(frame[i], sizeof(frame[i]), 20 + i);
		p[i] = tx_simple(frame[i], sizeof(frame[i]));
	}
	/* from ring 1 on, round the rings */
	for (unsigned int k = 0; k < NRINGS; k++) {
		unsigned int i = (k + 1) % NRINGS;

		ring_select(i);
		CHECK_EQ(deq(pkts, 8), 1);
		CHECK(mbuf_is(pkts[0], frame[i], sizeof(frame[i])));
		CHECK(used_is(&p[i], 0));
		CHECK(caught_up());
		CHECK_EQ(calls(), 1);
		CHECK_EQ(stats()->packets, 1);
		for (unsigned int j = k + 1; j < NRINGS; j++) {
			ring_select((j + 1) % NRINGS);
			CHECK(device_at(&p[(j + 1) % NRINGS]));
			CHECK(none_used());
			CHECK_EQ(stats()->packets, 0);
		}
	}
}

/* Several chains available, the burst smaller than that. */
static void
test_deq_burst_limit(void)
{
	uint8_t frame[5][100];
	struct posted p[5];
	struct rte_mbuf *pkts[8];

	CHECK(ring_setup(8, V1));
	for (int i = 0; i < 5; i++) {
		make_frame(frame[i], 60 + i * 10, 10 + i);
		p[i] = tx_simple(frame[i], 60 + i * 10);
	}
	CHECK_EQ(deq(pkts, 2), 2);
	CHECK(mbuf_is(pkts[0], frame[0], 60));
	CHECK(mbuf_is(pkts[1], frame[1], 70));
	CHECK(used_is(&p[0], 0));
	CHECK(used_is(&p[1], 0));
	CHECK(none_used());
	CHECK_EQ(deq(pkts, 8), 3);
	for (int i = 0; i < 3; i++) {
		CHECK(mbuf_is(pkts[i], frame[i + 2], 80 + i * 10));
		CHECK(used_is(&p[i + 2], 0));
	}
	CHECK(none_used());
	CHECK_EQ(calls(), 2);
	CHECK_EQ(stats()->packets, 5);
	CHECK_EQ(stats()->bytes, 60 + 70 + 80 + 90 + 100);
}

/*
 * Header and data in separate descriptors: the header alone in the first,
 * split 5 + 7, or sharing one with data. The device names each chain by its
 * id (packed: from its last descriptor), moves on by the slots it took, and
 * writes nothing but the used entries.
 */
static void
test_deq_chain(void)
{
	static const uint32_t lens_hdr[] = { 12, 30, 70, 1 };
	static const uint32_t lens2[] = { 12, 90 };
	static const uint32_t lens4[] = { 5, 7, 40, 41 };	/* header split 5 + 7 */
	static const uint32_t lens3[] = { 5, 30, 50 };		/* header and data share 1 */
	uint8_t f1[101], f2[90], f4[81], f3[73];
	struct rte_mbuf *pkts[4];
	struct posted p[4];

	CHECK(ring_setup(16, V1));
	make_frame(f1, sizeof(f1), 4);
	make_frame(f2, sizeof(f2), 20);
	make_frame(f4, sizeof(f4), 21);
	make_frame(f3, sizeof(f3), 22);
	p[0] = tx_post(lens_hdr, 4, f1);
	p[1] = tx_post(lens2, 2, f2);
	p[2] = tx_post(lens4, 4, f4);
	p[3] = tx_post(lens3, 3, f3);
	ring_snapshot();
	CHECK_EQ(deq(pkts, 4), 4);
	CHECK(mbuf_is(pkts[0], f1, sizeof(f1)));
	CHECK(mbuf_is(pkts[1], f2, sizeof(f2)));
	CHECK(mbuf_is(pkts[2], f4, sizeof(f4)));
	CHECK(mbuf_is(pkts[3], f3, sizeof(f3)));
	for (int i = 0; i < 4; i++)
		CHECK(used_is(&p[i], 0));
	CHECK(ring_unchanged());
	CHECK(caught_up());
	CHECK_EQ(stats()->malformed, 0);
}

static void
test_deq_indirect(void)
{
	uint8_t frame[200], frame2[80];
	struct rte_mbuf *pkts[4];
	struct posted p[3];
	uint8_t *h, *b1, *b2;

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 8);
	h = galloc(12);
	no_offload_hdr(h, 12);
	b1 = galloc(50);
	memcpy(b1, frame, 50);
	b2 = galloc(150);
	memcpy(b2, frame + 50, 150);
	/* split: out of table order, linked by next; packed: in table order, NEXT means nothing */
	p[0] = post_indirect((const struct dspec[]){
		{ gpa(h), 12, 0 },
		{ gpa(b1), 50, F_NEXT },
		{ gpa(b2), 150, 0 },
	}, 3);

	/* the write flag on the descriptor naming the table is ignored (spec 2.7.5.3.2) */
	make_frame(frame2, sizeof(frame2), 9);
	h = galloc(12 + sizeof(frame2));
	no_offload_hdr(h, 12);
	memcpy(h + 12, frame2, sizeof(frame2));
	p[1] = post1(indirect_table(&(struct dspec){ gpa(h), 12 + sizeof(frame2), 0 }, 1), 16,
		     F_INDIR | F_WRITE);
	/* a direct chain after them */
	p[2] = tx_simple(frame2, sizeof(frame2));

	CHECK_EQ(deq(pkts, 4), 3);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(mbuf_is(pkts[1], frame2, sizeof(frame2)));
	CHECK(mbuf_is(pkts[2], frame2, sizeof(frame2)));
	for (int i = 0; i < 3; i++)
		CHECK(used_is(&p[i], 0));
	CHECK(caught_up());
	CHECK_EQ(stats()->malformed, 0);
}

/*
 * An indirect table at an address that is not a multiple of 16: the
 * specification puts no alignment requirement on indirect tables (only on
 * the ring areas), and the address comes from the guest. Descriptors must
 * then be read bytewise: a misaligned 8-byte load through a struct pointer
 * is undefined behaviour that UBSan (halt_on_error, set in meson.build)
 * turns into a crash a guest could cause at will.
 */
static void
test_deq_indirect_unaligned(void)
{
	uint8_t frame[100];
	struct rte_mbuf *pkts[4];
	struct posted p;
	uint8_t *b;

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 53);
	b = galloc(12 + sizeof(frame));
	no_offload_hdr(b, 12);
	memcpy(b + 12, frame, sizeof(frame));
	p = post1(indirect_table_at(galloc(64) + 3,
				    &(struct dspec){ gpa(b), 12 + sizeof(frame), 0 }, 1),
		  16, F_INDIR);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(used_is(&p, 0));
}

/* Frames longer than one mbuf come out as chains; a buffer straddling two regions. */
static void
test_deq_multi_mbuf(void)
{
	static uint8_t frame[VHU_MAX_FRAME_LEN];
	static const uint32_t lens[] = { 1000, 30000, 12 + VHU_MAX_FRAME_LEN - 31000 };
	const uint32_t room = RTE_MBUF_DEFAULT_DATAROOM;
	struct rte_mbuf *pkts[4];
	const struct rte_mbuf *s;
	struct posted p[3];
	uint8_t *end;

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 11);
	p[0] = tx_simple(frame, 5000);
	p[1] = tx_post(lens, 3, frame);			/* the largest frame accepted */
	/* regions 0 and 1 are adjacent in gpa space: 100 bytes in region 0, the rest in 1 */
	end = G.g + GUEST_SIZE - 100;
	no_offload_hdr(end, 12);
	memcpy(end + 12, frame, 88);
	memcpy(G.g2, frame + 88, 300 - 88);
	p[2] = post1(gpa(end), 12 + 300, 0);

	CHECK_EQ(deq(pkts, 4), 3);
	CHECK(mbuf_is(pkts[0], frame, 5000));
	CHECK_EQ(pkts[0]->nb_segs, (5000 + room - 1) / room);
	s = pkts[0];
	CHECK_EQ(s->data_len, room);
	CHECK_EQ(s->next->data_len, room);
	CHECK_EQ(s->next->next->data_len, 5000 - 2 * room);
	CHECK_NULL(s->next->next->next);
	CHECK(mbuf_is(pkts[1], frame, VHU_MAX_FRAME_LEN));
	CHECK_EQ(pkts[1]->nb_segs, (VHU_MAX_FRAME_LEN + room - 1) / room);
	CHECK(mbuf_is(pkts[2], frame, 300));
	for (int i = 0; i < 3; i++)
		CHECK(used_is(&p[i], 0));
	CHECK_EQ(stats()->bytes, 5000 + VHU_MAX_FRAME_LEN + 300);
}

/*
 * An application that did not enable scatter gets one segment per frame:
 * a frame longer than its mbufs is dropped and counted, unless the legacy
 * convention (whose applications take chains) or an external buffer.
 */
static void
test_deq_no_scatter(void)
{
	static uint8_t frame[5000];
	struct rte_mbuf *pkts[4];
	struct posted p[3];

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 15);
	vhu_vring_ctl_set_rx_offloads(R.vr, 0);
	p[0] = tx_simple(frame, sizeof(frame));
	p[1] = tx_simple(frame, 1000);
	CHECK_EQ(deq(pkts, 4), 1);
	EXPECT(mbuf_is(pkts[0], frame, 1000));
	EXPECT_EQ(pkts[0]->nb_segs, 1);
	EXPECT(used_is(&p[0], 0));
	EXPECT(used_is(&p[1], 0));
	EXPECT_EQ(stats()->dropped, 1);
	rte_pktmbuf_free(pkts[0]);

	vhu_vring_ctl_set_rx_offloads(R.vr, VHU_RX_OFFLOAD_LEGACY);
	p[2] = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	EXPECT(mbuf_is(pkts[0], frame, sizeof(frame)));
	EXPECT(pkts[0]->nb_segs > 1);
	EXPECT(used_is(&p[2], 0));
	rte_pktmbuf_free(pkts[0]);

	vhu_vring_ctl_set_rx_offloads(R.vr, 0);
	R.vr->ext_buffer = true;
	p[0] = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	EXPECT(mbuf_is(pkts[0], frame, sizeof(frame)));
	EXPECT_EQ(pkts[0]->nb_segs, 1);
	EXPECT(RTE_MBUF_HAS_EXTBUF(pkts[0]));
	rte_pktmbuf_free(pkts[0]);
	R.vr->ext_buffer = false;
}

/* What rx_queue_count reports: chains waiting, not descriptors; none taken by asking. */
static void
test_deq_waiting(void)
{
	static uint8_t frame[3000];
	static const uint32_t lens[] = { 12 + 1000, 2000 };
	struct rte_mbuf *pkts[4];

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 16);
	EXPECT_EQ(vhu_dequeue_waiting(R.vr), 0);
	tx_simple(frame, 100);
	tx_post(lens, 2, frame);
	tx_simple(frame, 200);
	EXPECT_EQ(vhu_dequeue_waiting(R.vr), 3);
	EXPECT_EQ(vhu_dequeue_waiting(R.vr), 3);
	CHECK_EQ(deq(pkts, 1), 1);
	EXPECT_EQ(vhu_dequeue_waiting(R.vr), 2);
	CHECK_EQ(deq(pkts + 1, 3), 2);
	EXPECT_EQ(vhu_dequeue_waiting(R.vr), 0);
	rte_pktmbuf_free_bulk(pkts, 3);
}

/*
 * A RARP to announce (after a migration) and no mbuf for it: it stays
 * pending, counted as an allocation failure, and goes at the first burst
 * that has one, before the guest's frames.
 */
static void
test_deq_rarp_alloc_failure(void)
{
	static const struct rte_ether_addr mac = { { 0x02, 0, 0, 0, 0, 0x42 } };
	struct rte_mempool *small;
	struct rte_mbuf *pkts[2], *hold[1];
	uint8_t frame[60];

	CHECK(ring_setup(8, V1));
	small = rte_pktmbuf_pool_create("vhu_unit_rarp", 1, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					(int)rte_socket_id());
	CHECK_NOT_NULL(small);
	vhu_vring_ctl_announce(R.vr, &mac);
	CHECK_EQ(rte_pktmbuf_alloc_bulk(small, hold, 1), 0);
	EXPECT_EQ(vhu_dequeue_burst(R.vr, small, pkts, 2), 0);
	EXPECT(R.vr->rarp.pending);
	EXPECT_EQ(stats()->alloc_failed, 1);
	rte_pktmbuf_free(hold[0]);
	make_frame(frame, sizeof(frame), 15);
	tx_simple(frame, sizeof(frame));
	EXPECT_EQ(vhu_dequeue_burst(R.vr, small, pkts, 2), 1);
	EXPECT(!R.vr->rarp.pending);
	EXPECT_EQ(rte_be_to_cpu_16(rte_pktmbuf_mtod(pkts[0], struct rte_ether_hdr *)->ether_type),
		  RTE_ETHER_TYPE_RARP);
	EXPECT_EQ(pkts[0]->port, UNIT_MBUF_PORT);
	rte_pktmbuf_free(pkts[0]);
	EXPECT_EQ(rte_mempool_avail_count(small), 1);
	rte_mempool_free(small);
}

/* Running out of mbufs for a frame's segments: dropped, completed, nothing leaked. */
static void
test_deq_alloc_failure(void)
{
	static uint8_t frame[5000];
	struct rte_mempool *small;
	struct rte_mbuf *pkts[1], *hold[2];
	struct posted p;

	CHECK(ring_setup(8, V1));
	small = rte_pktmbuf_pool_create("vhu_unit_small", 2, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					(int)rte_socket_id());
	CHECK_NOT_NULL(small);
	make_frame(frame, sizeof(frame), 14);
	p = tx_simple(frame, sizeof(frame));		/* needs 3 mbufs */
	EXPECT_EQ(vhu_dequeue_burst(R.vr, small, pkts, 1), 0);
	EXPECT(used_is(&p, 0));
	EXPECT_EQ(stats()->alloc_failed, 1);
	EXPECT_EQ(stats()->dropped, 0);		/* a shortage, counted once as such */
	EXPECT_EQ(rte_mempool_avail_count(small), 2);

	/* an empty pool: nothing taken from the ring */
	EXPECT_EQ(rte_pktmbuf_alloc_bulk(small, hold, 2), 0);
	p = tx_simple(frame, 60);
	EXPECT_EQ(vhu_dequeue_burst(R.vr, small, pkts, 1), 0);
	EXPECT(none_used());
	EXPECT_EQ(stats()->alloc_failed, 2);
	EXPECT(device_at(&p));
	rte_pktmbuf_free_bulk(hold, 2);
	EXPECT_EQ(vhu_dequeue_burst(R.vr, small, pkts, 1), 1);
	EXPECT(mbuf_is(pkts[0], frame, 60));
	EXPECT(used_is(&p, 0));
	rte_pktmbuf_free(pkts[0]);
	EXPECT_EQ(rte_mempool_avail_count(small), 2);
	rte_mempool_free(small);
}

/* ---- malformed TX chains ---- */

static struct posted
bad_writable(void)
{
	uint8_t *b = galloc(72);

	no_offload_hdr(b, 12);
	make_frame(b + 12, 60, 1);
	return post1(gpa(b), 72, F_WRITE);
}

static struct posted
bad_writable_second(void)
{
	return post((const struct dspec[]){
		{ gpa(galloc(12)), 12, 0 },
		{ gpa(galloc(60)), 60, F_WRITE },
	}, 2);
}

static struct posted
bad_buffer_outside(void)
{
	return post1(UINT64_C(0x40000000), 100, 0);
}

static struct posted
bad_buffer_runs_off(void)
{
	return post1(GPA2_BASE + GUEST2_SIZE - 50, 100, 0);
}

static struct posted
bad_buffer_starts_before(void)
{
	return post1(GPA_BASE - 10, 100, 0);
}

static struct posted
bad_buffer_wraps(void)
{
	return post1(UINT64_MAX - 10, 100, 0);
}

static struct posted
bad_second_buffer_outside(void)
{
	return post((const struct dspec[]){
		{ gpa(galloc(12)), 12, 0 },
		{ UINT64_C(0x40000000), 60, 0 },
	}, 2);
}

/* The bad descriptor first, good ones after it (packed: the chain is still followed to its end). */
static struct posted
bad_first_of_three_outside(void)
{
	return post((const struct dspec[]){
		{ UINT64_C(0x40000000), 12, 0 },
		{ gpa(galloc(30)), 30, 0 },
		{ gpa(galloc(30)), 30, 0 },
	}, 3);
}

static struct posted
bad_nested_indirect(void)
{
	return post_indirect(&(struct dspec){ indirect_frame_table(0), 16, F_INDIR }, 1);
}

/* INDIRECT with NEXT, and a second descriptor after it. */
static struct posted
bad_indirect_with_next(void)
{
	return post((const struct dspec[]){
		{ indirect_frame_table(0), 16, F_INDIR },
		{ gpa(galloc(20)), 20, 0 },
	}, 2);
}

static struct posted
bad_indirect_len_0(void)
{
	return post1(indirect_frame_table(0), 0, F_INDIR);
}

static struct posted
bad_indirect_len_24(void)
{
	return post1(indirect_frame_table(0), 24, F_INDIR);
}

static struct posted
bad_indirect_table_outside(void)
{
	return post1(UINT64_C(0x40000000), 32, F_INDIR);
}

/* Starts 16 bytes before the end of guest memory, 32 bytes long. */
static struct posted
bad_indirect_table_runs_off(void)
{
	return post1(GPA2_BASE + GUEST2_SIZE - 16, 32, F_INDIR);
}

static struct posted
bad_indirect_entry_outside(void)
{
	return post_indirect((const struct dspec[]){
		{ gpa(galloc(12)), 12, 0 },
		{ UINT64_C(0x40000000), 60, 0 },
	}, 2);
}

/* More pieces than a chain may have (VHU_CHAIN_MAX_IOV): refused, no overflow. */
static struct posted
bad_too_many_pieces(void)
{
	struct dspec d[VHU_CHAIN_MAX_IOV + 2];
	uint8_t *b = galloc(RTE_DIM(d));

	for (uint32_t i = 0; i < RTE_DIM(d); i++)
		d[i] = (struct dspec){ gpa(b + i), 1, 0 };
	return post_indirect(d, RTE_DIM(d));
}

static struct posted
bad_shorter_than_header(void)
{
	return post1(gpa(galloc(8)), 8, 0);
}

static struct posted
bad_no_ethernet_header(void)
{
	return post1(gpa(galloc(12 + 13)), 12 + 13, 0);
}

static struct posted
bad_frame_too_long(void)
{
	uint32_t len = 12 + VHU_MAX_FRAME_LEN + 1;

	return post1(gpa(galloc(len)), len, 0);
}

/* Zero-length buffers must still point into guest memory. */
static struct posted
bad_empty_buffer_outside(void)
{
	return post((const struct dspec[]){
		{ UINT64_C(0x40000000), 0, 0 },
		{ gpa(galloc(80)), 80, 0 },
	}, 2);
}

static const struct bad_case bad_tx_cases[] = {
	BAD_CASE(bad_writable),
	BAD_CASE(bad_writable_second),
	BAD_CASE(bad_buffer_outside),
	BAD_CASE(bad_buffer_runs_off),
	BAD_CASE(bad_buffer_starts_before),
	BAD_CASE(bad_buffer_wraps),
	BAD_CASE(bad_second_buffer_outside),
	BAD_CASE(bad_first_of_three_outside),
	BAD_CASE(bad_nested_indirect),
	BAD_CASE(bad_indirect_with_next),
	BAD_CASE(bad_indirect_len_0),
	BAD_CASE(bad_indirect_len_24),
	BAD_CASE(bad_indirect_table_outside),
	BAD_CASE(bad_indirect_table_runs_off),
	BAD_CASE(bad_indirect_entry_outside),
	BAD_CASE(bad_too_many_pieces),
	BAD_CASE(bad_shorter_than_header),
	BAD_CASE(bad_no_ethernet_header),
	BAD_CASE(bad_frame_too_long),
	BAD_CASE(bad_empty_buffer_outside),
};

/*
 * good, bad, good in one burst, then good again: the bad chain is completed
 * in its place with length 0 and counted; the good ones are unaffected and
 * the driver finds every used entry where it looks for it. The ring starts
 * 2 slots before its end so the chains cross it.
 */
static void
malformed_tx_case(const struct bad_case *bc)
{
	uint8_t frame[3][90];
	struct posted p[4];
	struct rte_mbuf *pkts[8];

	CHECK(ring_setup_at(8, V1, 6));
	for (int i = 0; i < 3; i++)
		make_frame(frame[i], sizeof(frame[i]), 40 + i);
	p[0] = tx_simple(frame[0], sizeof(frame[0]));
	p[1] = bc->build();
	p[2] = tx_simple(frame[1], sizeof(frame[1]));

	CHECK_EQ(deq(pkts, 8), 2);
	CHECK(mbuf_is(pkts[0], frame[0], sizeof(frame[0])));
	CHECK(mbuf_is(pkts[1], frame[1], sizeof(frame[1])));
	for (int i = 0; i < 3; i++)
		CHECK(used_is(&p[i], 0));
	CHECK(none_used());
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 2);
	CHECK_EQ(stats()->bytes, 2 * sizeof(frame[0]));
	CHECK(!R.vr->broken);
	CHECK_EQ(calls(), 1);

	p[3] = tx_simple(frame[2], sizeof(frame[2]));
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(mbuf_is(pkts[0], frame[2], sizeof(frame[2])));
	CHECK(used_is(&p[3], 0));
	CHECK_EQ(stats()->malformed, 1);
	CHECK(caught_up());
}

/* The chains both layouts refuse, then those only the layout under test has. */
static void
test_deq_malformed(void)
{
	RUN_CASES(bad_tx_cases, malformed_tx_case, teardown);
	RUN_CASES_N(R.ops->bad_tx, R.ops->nbad_tx, malformed_tx_case, teardown);
}

/*
 * A bad chain third of four one-descriptor chains in a row, where a packed
 * ring takes four at once when it can (a batch): refused exactly as on its
 * own (malformed_tx_case()), the frames before it delivered, and the four
 * after it, a batch again, too.
 */
static void
malformed_tx_in_run_case(const struct bad_case *bc)
{
	uint8_t frame[6][90];
	struct posted p[7];
	struct rte_mbuf *pkts[8];

	CHECK(ring_setup(16, V1));
	for (int i = 0; i < 6; i++)
		make_frame(frame[i], sizeof(frame[i]), 60 + i);
	p[0] = tx_simple(frame[0], sizeof(frame[0]));
	p[1] = tx_simple(frame[1], sizeof(frame[1]));
	p[2] = bc->build();
	for (int i = 3; i < 7; i++)
		p[i] = tx_simple(frame[i - 1], sizeof(frame[i - 1]));

	CHECK_EQ(deq(pkts, 8), 6);
	for (int i = 0; i < 6; i++)
		CHECK(mbuf_is(pkts[i], frame[i], sizeof(frame[i])));
	for (int i = 0; i < 7; i++)
		CHECK(used_is(&p[i], 0));
	CHECK(none_used());
	CHECK(caught_up());
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 6);
	CHECK(!R.vr->broken);
	CHECK_EQ(calls(), 1);
}

static void
test_deq_malformed_in_run(void)
{
	RUN_CASES(bad_tx_cases, malformed_tx_in_run_case, teardown);
	RUN_CASES_N(R.ops->bad_tx, R.ops->nbad_tx, malformed_tx_in_run_case, teardown);
}

/* A chain as long as the ring is fine (packed: it takes a whole lap). */
static void
test_deq_chain_as_long_as_ring(void)
{
	uint8_t frame[200];
	struct rte_mbuf *pkts[4];
	struct posted p;
	uint32_t lens[8];

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 50);
	for (int i = 0; i < 8; i++)
		lens[i] = i == 0 ? 12 : 20;
	p = tx_post(lens, 8, frame);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, 7 * 20));
	CHECK(used_is(&p, 0));
	CHECK(caught_up());
	CHECK_EQ(stats()->malformed, 0);
	CHECK_EQ(calls(), 1);
}

/* ==================================================================== */
/* enqueue (guest RX)                                                   */
/* ==================================================================== */

static void
test_enq_simple(void)
{
	uint8_t frame[2][1000], got[2048] = { 0 };
	struct rte_mbuf *pkts[2];
	struct rx_chain c[3];

	CHECK(ring_setup(8, V1));
	for (int i = 0; i < 3; i++)
		c[i] = rx_simple(1518);
	make_frame(frame[0], 60, 60);
	make_frame(frame[1], 1000, 61);
	pkts[0] = mk_mbuf1(frame[0], 60);
	pkts[1] = mk_mbuf1(frame[1], 1000);
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK(used_is(&c[0].p, 12 + 60));
	CHECK(used_is(&c[1].p, 12 + 1000));
	CHECK(none_used());
	CHECK(hdr_is(c[0].buf[0], 12, 1));
	CHECK(hdr_is(c[1].buf[0], 12, 1));
	rx_read(&c[0], got, 72);
	CHECK_MEM_EQ(got + 12, frame[0], 60);
	CHECK(rx_untouched_from(&c[0], 72));
	rx_read(&c[1], got, 1012);
	CHECK_MEM_EQ(got + 12, frame[1], 1000);
	CHECK(rx_untouched_from(&c[1], 1012));
	CHECK(rx_untouched_from(&c[2], 0));
	CHECK(device_at(&c[2].p));
	CHECK_EQ(calls(), 1);
	CHECK_EQ(stats()->packets, 2);
	CHECK_EQ(stats()->bytes, 1060);
	CHECK_EQ(stats()->notifications, 1);
	CHECK_EQ(stats()->dropped, 0);
	/* the mbufs are not freed by the library (teardown frees them; a double free would show) */
	CHECK_EQ(rte_mbuf_refcnt_read(pkts[0]), 1);
}

/* Header and frame over several descriptors, header split 5 + 7, across the end of the ring. */
static void
test_enq_chain(void)
{
	static const uint32_t lens[] = { 5, 7, 30, 100 };
	uint8_t frame[120], got[142] = { 0 };
	struct rte_mbuf *pkts[1];
	struct rx_chain c;

	CHECK(ring_setup_at(8, V1, 6));
	c = rx_post(lens, 4, F_WRITE);		/* descriptors 6, 7, 0, 1 */
	make_frame(frame, sizeof(frame), 62);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK(used_is(&c.p, 132));
	rx_read(&c, got, 142);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c, 132));
	CHECK(caught_up());
}

/*
 * A frame too big for the chain: dropped and counted; the chain is not
 * consumed (nothing of the ring written) and takes the next frame.
 */
static void
test_enq_too_small(void)
{
	uint8_t big[100], small[30], got[50] = { 0 };
	struct rte_mbuf *pkts[3];
	struct rx_chain c;

	CHECK(ring_setup(4, V1));
	c = rx_simple(50);
	make_frame(big, sizeof(big), 64);
	make_frame(small, sizeof(small), 65);
	ring_snapshot();
	pkts[0] = mk_mbuf1(big, sizeof(big));
	CHECK_EQ(enq(pkts, 1), 1);			/* consumed (dropped) */
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 0);
	CHECK_EQ(stats()->malformed, 0);
	CHECK(ring_unchanged());			/* nothing completed, nothing published */
	CHECK_EQ(calls(), 0);
	CHECK(device_at(&c.p));				/* the chain was not consumed */
	CHECK(rx_untouched_from(&c, 0));

	pkts[0] = mk_mbuf1(big, sizeof(big));
	pkts[1] = mk_mbuf1(small, sizeof(small));
	pkts[2] = mk_mbuf1(small, sizeof(small));
	CHECK_EQ(enq(pkts, 3), 2);			/* dropped, delivered, no room */
	CHECK_EQ(stats()->dropped, 2);
	CHECK_EQ(stats()->packets, 1);
	CHECK(used_is(&c.p, 42));
	CHECK(none_used());
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

	CHECK(ring_setup(4, V1 | MRG));
	make_frame(frame, sizeof(frame), 66);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	ring_snapshot();
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK(ring_unchanged());
	CHECK_EQ(calls(), 0);
	ring_refresh(V1);
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK(ring_unchanged());
	CHECK_EQ(stats()->dropped, 0);
	CHECK_EQ(stats()->notifications_suppressed, 0);
}

/* The descriptors of every chain a mergeable frame is spread over. */
struct mrg_case {
	const char *name;
	uint32_t lens[2];
	unsigned int n;
};

static const struct mrg_case mrg_cases[] = {
	{ "one_buffer_per_chain", { 2048 }, 1 },
	{ "two_buffers_per_chain", { 600, 424 }, 2 },
};

/*
 * Mergeable: a 3000-byte frame over as many chains as it takes, num_buffers
 * in the first, then a small frame in the next chain. The ring starts at its
 * last slot, so the chains cross its end.
 */
static void
enq_mrg_case(const struct mrg_case *mc)
{
	static uint8_t frame[3000];
	const uint32_t cap = mc->lens[0] + (mc->n > 1 ? mc->lens[1] : 0);
	const uint32_t total = 12 + sizeof(frame);
	const uint16_t nbufs = (uint16_t)((total + cap - 1) / cap);
	uint8_t frame2[100], got[2048] = { 0 };
	struct rte_mbuf *pkts[2];
	struct rx_chain c[4];
	uint32_t done = 0;

	CHECK(ring_setup_at(8, V1 | MRG, 7));
	CHECK(R.vr->neg.mrg_rxbuf);
	for (uint16_t i = 0; i <= nbufs; i++)
		c[i] = rx_post(mc->lens, mc->n, F_WRITE);
	make_frame(frame, sizeof(frame), 67);
	make_frame(frame2, sizeof(frame2), 68);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	pkts[1] = mk_mbuf1(frame2, sizeof(frame2));
	CHECK_EQ(enq(pkts, 2), 2);
	for (uint16_t i = 0; i < nbufs; i++) {
		uint32_t len = RTE_MIN(cap, total - done);

		CHECK(used_is(&c[i].p, len));
		rx_read(&c[i], got, len);
		if (i == 0) {
			CHECK(hdr_is(got, 12, nbufs));
			CHECK_MEM_EQ(got + 12, frame, len - 12);
		} else {
			CHECK_MEM_EQ(got, frame + done - 12, len);
		}
		done += len;
	}
	CHECK(rx_untouched_from(&c[nbufs - 1], total - (nbufs - 1) * cap));
	CHECK(used_is(&c[nbufs].p, 112));
	CHECK_EQ(c[nbufs].p.lap, 1);			/* past the end of the ring */
	rx_read(&c[nbufs], got, 112);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame2, sizeof(frame2));
	CHECK(rx_untouched_from(&c[nbufs], 112));
	CHECK(caught_up());
	CHECK_EQ(stats()->packets, 2);
	CHECK_EQ(stats()->bytes, 3100);
	CHECK_EQ(calls(), 1);
}

static void
test_enq_mrg(void)
{
	RUN_CASES(mrg_cases, enq_mrg_case, teardown);
}

/*
 * Out of buffers half-way through a frame: nothing of it is published and
 * the chains it took are given back as the driver left them (their buffers
 * may hold a partial copy: they were the device's to write); with more
 * buffers it goes through.
 */
static void
test_enq_mrg_out_of_buffers(void)
{
	static uint8_t small[500], big[3000];
	struct rte_mbuf *pkts[2];
	struct rx_chain c[5];

	CHECK(ring_setup(4, V1 | MRG));
	for (int i = 0; i < 3; i++)
		c[i] = rx_simple(1024);
	make_frame(small, sizeof(small), 70);
	make_frame(big, sizeof(big), 71);
	pkts[0] = mk_mbuf1(small, sizeof(small));
	pkts[1] = mk_mbuf1(big, sizeof(big));
	ring_snapshot();
	CHECK_EQ(enq(pkts, 2), 1);
	CHECK(used_is(&c[0].p, 512));
	CHECK(none_used());
	CHECK(ring_unchanged());
	CHECK(device_at(&c[1].p));			/* c[1] and c[2] given back */
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(stats()->dropped, 0);
	CHECK_EQ(calls(), 1);

	/* still no room: nothing at all happens */
	CHECK_EQ(enq(&pkts[1], 1), 0);
	CHECK(ring_unchanged());
	CHECK_EQ(calls(), 0);
	CHECK_EQ(stats()->notifications_suppressed, 0);

	/* more buffers, and the frame goes into c[1], c[2], c[3] */
	c[3] = rx_simple(1024);
	c[4] = rx_simple(1024);
	CHECK_EQ(enq(&pkts[1], 1), 1);
	CHECK(used_is(&c[1].p, 1024));
	CHECK(used_is(&c[2].p, 1024));
	CHECK(used_is(&c[3].p, 3012 - 2048));
	CHECK(none_used());
	CHECK(hdr_is(c[1].buf[0], 12, 3));
	CHECK_MEM_EQ(c[1].buf[0] + 12, big, 1012);
	CHECK_MEM_EQ(c[2].buf[0], big + 1012, 1024);
	CHECK_MEM_EQ(c[3].buf[0], big + 2036, 964);
	CHECK(rx_untouched_from(&c[4], 0));
	CHECK(device_at(&c[4].p));
}

/* A malformed RX chain: its descriptors and their flags. */
struct bad_rx_case {
	const char *name;
	uint32_t lens[2];
	uint16_t flags[2];
	unsigned int n;
};

static const struct bad_rx_case mid_frame_cases[] = {
	{ "read_only", { 1024 }, { 0 }, 1 },
	{ "second_read_only", { 512, 512 }, { F_WRITE, 0 }, 2 },
};

/*
 * A malformed chain in the middle of a mergeable frame: the frame is dropped
 * and every chain it took goes back empty (packed: no WRITE), so the driver
 * never sees a frame with an empty buffer inside it.
 */
static void
enq_mrg_malformed_mid_frame_case(const struct bad_rx_case *bc)
{
	static uint8_t big[3000];
	uint8_t small[60];
	struct rte_mbuf *pkts[2];
	struct rx_chain a, bad, c;

	CHECK(ring_setup(8, V1 | MRG));
	a = rx_simple(1024);
	bad = rx_post_flags(bc->lens, bc->flags, bc->n);
	c = rx_simple(2048);
	make_frame(big, sizeof(big), 79);
	make_frame(small, sizeof(small), 80);
	pkts[0] = mk_mbuf1(big, sizeof(big));
	pkts[1] = mk_mbuf1(small, sizeof(small));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK(used_is(&a.p, 0));
	CHECK(used_is(&bad.p, 0));
	CHECK(used_is(&c.p, 72));
	CHECK(none_used());
	CHECK(hdr_is(c.buf[0], 12, 1));
	CHECK_MEM_EQ(c.buf[0] + 12, small, sizeof(small));
	CHECK(rx_untouched_from(&bad, 0));
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(calls(), 1);
}

static void
test_enq_mrg_malformed_mid_frame(void)
{
	RUN_CASES(mid_frame_cases, enq_mrg_malformed_mid_frame_case, teardown);
}

/*
 * A mergeable frame larger than all the buffers of a full ring can never be
 * delivered: dropped (not left to block the queue), the buffers stay with
 * the guest (ring untouched) and take the next frame.
 */
static void
test_enq_mrg_larger_than_ring(void)
{
	static uint8_t big[1000];
	uint8_t small[60];
	struct rte_mbuf *pkts[2];
	struct rx_chain c[4];

	CHECK(ring_setup(4, V1 | MRG));
	for (int i = 0; i < 4; i++)
		c[i] = rx_simple(100);
	make_frame(big, sizeof(big), 81);
	make_frame(small, sizeof(small), 82);
	pkts[0] = mk_mbuf1(big, sizeof(big));
	ring_snapshot();
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK(ring_unchanged());
	CHECK(device_at(&c[0].p));
	CHECK_EQ(calls(), 0);

	pkts[0] = mk_mbuf1(big, sizeof(big));
	pkts[1] = mk_mbuf1(small, sizeof(small));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(stats()->dropped, 2);
	CHECK_EQ(stats()->packets, 1);
	CHECK(used_is(&c[0].p, 72));
	CHECK(none_used());
	CHECK(ring_unchanged());
	CHECK(hdr_is(c[0].buf[0], 12, 1));
	CHECK_MEM_EQ(c[0].buf[0] + 12, small, sizeof(small));
}

/*
 * Malformed RX chains, with and without mergeable buffers: each is
 * completed empty and the frame that met it dropped; the next frame takes
 * the next chain. The ring starts 3 slots before its end.
 */
static void
enq_malformed_case(uint64_t features)
{
	static const uint32_t ro_len = 200;
	uint8_t frame[60], got[112] = { 0 };
	struct rte_mbuf *pkts[6];
	struct posted bad[5];
	struct rx_chain ro, good;
	uint64_t table, inner;

	CHECK(ring_setup_at(8, features, 5));
	ro = rx_post(&ro_len, 1, 0);			/* read-only */
	bad[0] = ro.p;
	bad[1] = post((const struct dspec[]){		/* writable, then read-only */
		{ gpa(galloc(12)), 12, F_WRITE },
		{ gpa(galloc(100)), 100, 0 },
	}, 2);
	bad[2] = post1(UINT64_C(0x40000000), 200, F_WRITE);	/* outside guest memory */
	table = indirect_table(&(struct dspec){ gpa(galloc(200)), 200, F_WRITE }, 1);
	bad[3] = post((const struct dspec[]){		/* indirect with NEXT */
		{ table, 16, F_INDIR },
		{ gpa(galloc(100)), 100, F_WRITE },
	}, 2);
	/* nested indirect */
	inner = indirect_table(&(struct dspec){ gpa(galloc(200)), 200, F_WRITE }, 1);
	bad[4] = post_indirect(&(struct dspec){ inner, 16, F_INDIR | F_WRITE }, 1);
	good = rx_simple(112);
	make_frame(frame, sizeof(frame), 85);
	for (int i = 0; i < 6; i++)
		pkts[i] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 6), 6);
	for (int i = 0; i < 5; i++)
		CHECK(used_is(&bad[i], 0));
	CHECK(used_is(&good.p, 72));
	CHECK(rx_untouched_from(&ro, 0));
	rx_read(&good, got, 112);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK_EQ(stats()->malformed, 5);
	CHECK_EQ(stats()->dropped, 5);
	CHECK_EQ(stats()->packets, 1);
	CHECK_EQ(calls(), 1);
}

static void
test_enq_malformed(void)
{
	enq_malformed_case(V1);
	teardown();
	enq_malformed_case(V1 | MRG);
}

/* A TCP/IPv4 frame at @f: 54 bytes of headers, then @payload bytes (checksums left to do). */
static uint32_t
tcp4_frame(uint8_t *f, uint32_t payload)
{
	uint32_t len = 54 + payload;
	uint8_t *ip = f + 14, *tcp = f + 34;

	make_frame(f, len, 131);			/* Ethernet, IPv4, then a pattern */
	memset(ip, 0, 40);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((len - 14) >> 8);
	ip[3] = (uint8_t)(len - 14);
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	ip[12] = 10;
	ip[15] = 1;
	ip[16] = 10;
	ip[19] = 2;
	tcp[12] = 5 << 4;
	tcp[13] = 0x10;					/* ACK */
	return len;
}

/*
 * A TSO frame for a guest without GUEST_TSO4 is cut in software into frames
 * of its segment size. With no room for the first segment it is not
 * consumed and stays as the application gave it, TSO request included
 * (BUG 2 of test_offload.c: rte_gso_segment() cleared it, and the retry sent
 * the frame whole); retried with room, it is cut again, every segment a
 * frame of its own.
 */
static void
test_enq_tso_segmented(void)
{
	static const uint64_t ol = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				   RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	static uint8_t f[54 + 3000], got[12 + 1054];
	struct rte_mbuf *m;
	struct rx_chain c[4];
	uint32_t len = tcp4_frame(f, 3000);

	CHECK(ring_setup(8, V1 | MRG | GUEST_CSUM));
	m = mk_mbuf1(f, len);
	m->ol_flags = ol;
	m->l2_len = 14;
	m->l3_len = 20;
	m->l4_len = 20;
	m->tso_segsz = 1000;
	c[0] = rx_simple(100);				/* too small for a 1054-byte segment */
	ring_snapshot();
	CHECK_EQ(enq(&m, 1), 0);
	CHECK_EQ(m->ol_flags, ol);
	CHECK_EQ(m->tso_segsz, 1000);
	CHECK(ring_unchanged());
	CHECK(device_at(&c[0].p));
	CHECK_EQ(stats()->dropped, 0);
	CHECK_EQ(stats()->packets, 0);

	/* room: the first segment takes the small buffer and another */
	for (int i = 1; i < 4; i++)
		c[i] = rx_simple(2048);
	CHECK_EQ(enq(&m, 1), 1);
	CHECK(used_is(&c[0].p, 100));
	CHECK(used_is(&c[1].p, 12 + 1054 - 100));
	CHECK(used_is(&c[2].p, 12 + 1054));
	CHECK(used_is(&c[3].p, 12 + 1054));
	CHECK(none_used());
	CHECK_EQ(stats()->packets, 3);
	for (int i = 0; i < 3; i++) {
		if (i == 0) {
			rx_read(&c[0], got, 100);
			rx_read(&c[1], got + 100, sizeof(got) - 100);
		} else {
			rx_read(&c[i + 1], got, sizeof(got));
		}
		CHECK(hdr_is(got, 12, i == 0 ? 2 : 1));	/* no offload left to the guest */
		CHECK_MEM_EQ(got + 12, f, 14);
		CHECK_EQ(got[12 + 16] << 8 | got[12 + 17], 1040);	/* IPv4 total length */
		CHECK_MEM_EQ(got + 12 + 54, f + 54 + i * 1000, 1000);
	}
}

/*
 * The segmentation pools empty (every lcore cutting frames at once): the
 * TSO frame is dropped and counted as an allocation failure, not as the
 * guest's fault; once mbufs are back, the next one is cut.
 */
static void
test_enq_tso_pools_empty(void)
{
	static uint8_t f[54 + 3000];
	struct rte_mbuf *held[8192], *m[2];
	struct rx_chain c[8];
	uint32_t len = tcp4_frame(f, 3000);
	unsigned int n = 0;

	CHECK(ring_setup(16, V1 | MRG | GUEST_CSUM));
	for (int i = 0; i < 2; i++) {
		m[i] = mk_mbuf1(f, len);
		m[i]->ol_flags = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				 RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
		m[i]->l2_len = 14;
		m[i]->l3_len = 20;
		m[i]->l4_len = 20;
		m[i]->tso_segsz = 1000;
	}
	for (int i = 0; i < 8; i++)
		c[i] = rx_simple(2048);
	while (n < RTE_DIM(held) && (held[n] = rte_pktmbuf_alloc(gso.direct_pool)) != NULL)
		n++;
	CHECK(n < RTE_DIM(held));
	CHECK_EQ(enq(&m[0], 1), 1);			/* consumed: dropped */
	CHECK(none_used());
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->alloc_failed, 1);
	CHECK_EQ(stats()->malformed, 0);
	rte_pktmbuf_free_bulk(held, n);
	CHECK_EQ(enq(&m[1], 1), 1);
	CHECK(used_is(&c[0].p, 12 + 1054));
	CHECK_EQ(stats()->packets, 3);
}

/* ==================================================================== */
/* behind a vIOMMU                                                      */
/* ==================================================================== */

/* The pages of the first buffers of @n chains, each once, in chain order. */
static unsigned int
first_pages(const struct rx_chain *c, unsigned int n, uint64_t *pages)
{
	unsigned int np = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t page = gpa(c[i].buf[0]) & ~UINT64_C(4095);
		bool seen = false;

		for (unsigned int j = 0; j < np; j++)
			seen |= pages[j] == page;
		if (!seen)
			pages[np++] = page;
	}
	return np;
}

/*
 * A miss asks ahead: the buffers of the chains the driver made available
 * after the one that missed are asked for in the same go, each page once,
 * so that one round trip to the front end serves a batch.
 */
static void
test_iommu_asks_ahead(void)
{
	uint64_t want[4], got[8];
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];
	struct rx_chain c[4];
	unsigned int nwant;

	CHECK(ring_setup(8, V1));
	CHECK(ring_behind_iommu());
	for (int i = 0; i < 4; i++)
		c[i] = rx_simple(3000);
	nwant = first_pages(c, 4, want);
	CHECK(nwant >= 3);
	make_frame(frame, sizeof(frame), 40);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);			/* held */
	CHECK_EQ(ring_misses_asked(got, RTE_DIM(got)), nwant);
	for (unsigned int i = 0; i < nwant; i++)
		CHECK_EQ(got[i] & ~UINT64_C(4095), want[i]);
	/* asked already: the next burst asks nothing again */
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(ring_misses_asked(got, RTE_DIM(got)), 0);
}

/* A guest TX chain whose buffer misses stays in the ring until translated. */
static void
test_iommu_deq_miss_waits(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct posted p;

	CHECK(ring_setup(8, V1));
	CHECK(ring_behind_iommu());
	make_frame(frame, sizeof(frame), 9);
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK(none_used());
	CHECK_EQ(stats()->malformed, 0);
	CHECK(ring_translate_buffers(VHU_IOTLB_RW));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(used_is(&p, 0));
	rte_pktmbuf_free(pkts[0]);
	CHECK(caught_up());
}

/*
 * Frames for a guest RX buffer that misses wait, referenced, and count as
 * consumed; later frames queue behind them; once translated the control
 * thread's call delivers them all, in order.
 */
static void
test_iommu_enq_miss_holds(void)
{
	uint8_t frame[3][60], got[72];
	struct rte_mbuf *pkts[3];
	struct rx_chain c[3];

	CHECK(ring_setup(8, V1));
	CHECK(ring_behind_iommu());
	for (int i = 0; i < 3; i++) {
		c[i] = rx_simple(1518);
		make_frame(frame[i], 60, (uint8_t)(20 + i));
		pkts[i] = mk_mbuf1(frame[i], 60);
	}
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(enq(&pkts[2], 1), 1);
	CHECK(none_used());
	CHECK_EQ(R.vr->rx_pending_count, 3);
	CHECK_EQ(rte_mbuf_refcnt_read(pkts[0]), 2);
	CHECK_EQ(stats()->packets, 0);
	CHECK(ring_translate_buffers(VHU_IOTLB_RW));
	rte_spinlock_lock(&R.vr->lock);
	vhu_enqueue_waiting_locked(R.vr);
	rte_spinlock_unlock(&R.vr->lock);
	CHECK_EQ(R.vr->rx_pending_count, 0);
	for (int i = 0; i < 3; i++) {
		CHECK(used_is(&c[i].p, 12 + 60));
		rx_read(&c[i], got, 72);
		CHECK_MEM_EQ(got + 12, frame[i], 60);
		CHECK_EQ(rte_mbuf_refcnt_read(pkts[i]), 1);
	}
	CHECK_EQ(stats()->packets, 3);
	CHECK_EQ(calls(), 1);
}

/* The front end goes while frames wait: they are freed with the ring's state. */
static void
test_iommu_enq_held_freed_at_reset(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];

	CHECK(ring_setup(8, V1));
	CHECK(ring_behind_iommu());
	rx_simple(1518);
	make_frame(frame, sizeof(frame), 30);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(rte_mbuf_refcnt_read(pkts[0]), 2);
	ring_session_end();
	CHECK_EQ(rte_mbuf_refcnt_read(pkts[0]), 1);
}

/* A buffer translated read-only cannot take a frame: malformed, counted. */
static void
test_iommu_enq_read_only_refused(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];
	struct rx_chain c;

	CHECK(ring_setup(8, V1));
	CHECK(ring_behind_iommu());
	c = rx_simple(1518);
	CHECK(ring_translate_buffers(VHU_IOTLB_RO));
	make_frame(frame, sizeof(frame), 31);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);		/* consumed: dropped */
	CHECK(used_is(&c.p, 0));
	CHECK(rx_untouched_from(&c, 0));
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
}

/* ==================================================================== */
/* dirty logging                                                        */
/* ==================================================================== */

/*
 * A ring as ring_setup() makes it, logging what it writes: LOG_ALL
 * negotiated, a log of one page (bits for 128 MiB of guest memory) and the
 * used area logged too (VHOST_VRING_F_LOG; split at the used ring's guest
 * address, which the front end gives; packed at the descriptor ring's,
 * which the library derives). The ring holds the only reference to the log.
 */
static bool
logged_ring_setup(uint32_t size, uint64_t features)
{
	struct vhu_vring_addr_config addr = ring_memory(size, features | LOG_ALL, 0);
	struct vhu_dirty_log *log;
	int fd = memfd_create("vhu-unit-log", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, WT_PAGE_SIZE) < 0)
		die("dirty log memfd");
	addr.flags |= VHOST_VRING_F_LOG;
	addr.log = GPA_BASE + (addr.used - FE_BASE);
	if (!ring_start(&addr, R.ops->base != NULL, R.ops->base != NULL ? R.ops->base() : 0)) {
		close(fd);
		return false;
	}
	log = vhu_dirty_log_create(fd, WT_PAGE_SIZE, 0, "unit");	/* closes fd */
	if (log == NULL)
		return false;
	vhu_vring_ctl_set_log(R.vr, log);
	vhu_dirty_log_put(log);
	return R.vr->dirty.logging && R.vr->dirty.log_used &&
	       R.vr->dirty.used_gpa == (R.ops->features ? GPA_BASE + (addr.desc - FE_BASE) : addr.log);
}

/* The byte of the bitmap that holds the bit of guest page @gpa. */
static uint32_t
log_byte(uint64_t gpa)
{
	return (uint32_t)((gpa >> VHU_LOG_PAGE_SHIFT) / 8);
}

/* Whether the log marks the page of @gpa. */
static bool
logged(uint64_t gpa)
{
	uint64_t page = gpa >> VHU_LOG_PAGE_SHIFT;

	return (R.vr->dirty.log->bitmap[page / 8] >> (page % 8)) & 1;
}

#if STORE_TRACE_SUPPORTED
/* The library's mapping of the used area and its length (both in one page here). */
static uint8_t *
used_area(uint32_t *len)
{
	*len = R.ops->features ? R.size * (uint32_t)sizeof(struct vring_packed_desc) :
				 (uint32_t)vring_used_area_size(R.size);
	return vhu_mem_guest_to_host(R.mem, R.vr->dirty.used_gpa, *len);
}

/*
 * A burst of three frames, from the guest (@rx false: dequeue) or to it
 * (enqueue), its stores to the page of the used area and to the bitmap
 * traced: what it wrote of the used area (split: elements and index;
 * packed: descriptors) is marked in the log after its last store. A mark
 * made before could be cleared by the front end (it clears the bitmap
 * while the ring runs) before the store, which would then be lost. Nothing
 * else of the page is written; the buffers written are marked too.
 */
static void
log_used_burst(bool rx)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[3];
	struct rx_chain c[3];
	struct posted p[3];
	uint32_t len, off;
	uint8_t *used;
	uint16_t n;
	int store, mark;

	CHECK(logged_ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 130);
	for (int i = 0; i < 3; i++) {
		if (rx) {
			c[i] = rx_simple(100);
			p[i] = c[i].p;
			pkts[i] = mk_mbuf1(frame, sizeof(frame));
		} else {
			p[i] = tx_simple(frame, sizeof(frame));
		}
	}
	used = used_area(&len);
	off = (uint32_t)(used - wt_page_of(used));
	wt_start((uint8_t *const[]){ wt_page_of(used), R.vr->dirty.log->bitmap }, 2);
	n = rx ? enq(pkts, 3) : deq(pkts, 3);
	wt_stop();
	CHECK_EQ(n, 3);
	for (int i = 0; i < 3; i++) {
		CHECK(used_is(&p[i], rx ? 12 + sizeof(frame) : 0));
		CHECK(!rx || logged(gpa(c[i].buf[0])));
	}

	store = wt_last(0, off, len);
	mark = wt_last(1, log_byte(R.vr->dirty.used_gpa), 1);
	CHECK_LE(wt.n, WT_MAX_STORES);
	CHECK_EQ(wt_first(0, 0, off), -1);
	CHECK_EQ(wt_first(0, off + len, WT_PAGE_SIZE - off - len), -1);
	CHECK_NE(store, -1);
	CHECK_NE(mark, -1);
	CHECK_LT(store, mark);
	CHECK(logged(R.vr->dirty.used_gpa));
}

static void
test_log_used_deq(void)
{
	log_used_burst(false);
}

static void
test_log_used_enq(void)
{
	log_used_burst(true);
}

/*
 * Mergeable RX buffers: num_buffers, in the first chain's buffer, is known
 * and written only once the frame is in all its chains; its page is marked
 * after that store, not only with the rest of the chain before it.
 */
static void
test_log_num_buffers(void)
{
	uint8_t frame[100];
	struct rte_mbuf *m;
	struct rx_chain c[2];
	uint8_t *buf;
	uint32_t off;
	int first_nb, last_nb, mark;

	CHECK(logged_ring_setup(8, V1 | MRG));
	make_frame(frame, sizeof(frame), 133);
	c[0] = rx_simple(64);
	c[1] = rx_simple(64);
	m = mk_mbuf1(frame, sizeof(frame));
	buf = vhu_mem_guest_to_host(R.mem, gpa(c[0].buf[0]), 64);
	CHECK_NOT_NULL(buf);
	off = (uint32_t)(buf - wt_page_of(buf));
	wt_start((uint8_t *const[]){ wt_page_of(buf), R.vr->dirty.log->bitmap }, 2);
	uint16_t n = enq(&m, 1);
	wt_stop();
	CHECK_EQ(n, 1);
	CHECK(used_is(&c[0].p, 64));
	CHECK(used_is(&c[1].p, 12 + 100 - 64));
	CHECK(hdr_is(c[0].buf[0], 12, 2));

	CHECK_LE(wt.n, WT_MAX_STORES);
	first_nb = wt_first(0, off + 10, 2);
	last_nb = wt_last(0, off + 10, 2);
	mark = wt_last(1, log_byte(gpa(c[0].buf[0])), 1);
	CHECK_NE(first_nb, -1);
	/* num_buffers last of all that page's stores (both chains' buffers are in it) */
	CHECK_LT(wt_last(0, 0, off + 10), first_nb);
	CHECK_LT(wt_last(0, off + 12, WT_PAGE_SIZE - off - 12), first_nb);
	CHECK_EQ(wt_last(0, 0, WT_PAGE_SIZE), last_nb);
	CHECK_LT(last_nb, mark);
	CHECK(logged(gpa(c[0].buf[0])));
}
#else
static void
test_log_used_deq(void)
{
	SKIP_TEST("store tracing needs x86-64 Linux");
}

static void
test_log_used_enq(void)
{
	SKIP_TEST("store tracing needs x86-64 Linux");
}

static void
test_log_num_buffers(void)
{
	SKIP_TEST("store tracing needs x86-64 Linux");
}
#endif

/* ==================================================================== */
/* notifications                                                        */
/* ==================================================================== */

/*
 * Without EVENT_IDX the driver turns interrupts off and on: used entries are
 * published all the same, a call goes out once per burst, both ways, and an
 * event index means nothing.
 */
static void
test_notify_flags(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];
	struct rx_chain c;

	CHECK(ring_setup(8, V1));
	interrupts(false);
	CHECK_EQ(tx_frames(1), 0);			/* published all the same */
	CHECK_EQ(tx_frames(1), 0);
	CHECK_EQ(stats()->notifications, 0);
	CHECK_EQ(stats()->notifications_suppressed, 2);
	interrupts(true);
	CHECK_EQ(tx_frames(1), 1);
	CHECK_EQ(tx_frames(3), 1);			/* one call per burst */
	CHECK_EQ(stats()->notifications, 2);
	/* an event index without EVENT_IDX negotiated means nothing: call */
	call_at(R.posted + 2);
	CHECK_EQ(tx_frames(1), 1);

	/* the enqueue side decides the same way */
	make_frame(frame, sizeof(frame), 112);
	interrupts(false);
	c = rx_simple(100);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK(used_is(&c.p, 72));
	CHECK_EQ(calls(), 0);
	CHECK_EQ(stats()->notifications, 3);
	interrupts(true);
	c = rx_simple(100);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK(used_is(&c.p, 72));
	CHECK_EQ(calls(), 1);
}

/*
 * EVENT_IDX: a call only when the used index passes the entry the driver
 * waits for, except the first publish after a start; events before, at and
 * across the end of the ring, in the lap a burst leaves, and one passed.
 * Entries are counted from the start (tx_frames() writes one each).
 */
static void
test_notify_event_idx(void)
{
	CHECK(ring_setup(8, V1 | EVIDX));
	call_at(4);
	CHECK_EQ(tx_frames(1), 1);			/* 0: the first publish calls */
	call_at(3);
	CHECK_EQ(tx_frames(1), 0);			/* 1 */
	CHECK_EQ(tx_frames(2), 1);			/* 2, 3: passes 3 */
	CHECK_EQ(tx_frames(1), 0);			/* 4 */
	CHECK(caught_up());
	call_at(6);
	CHECK_EQ(tx_frames(1), 0);			/* 5 */
	CHECK_EQ(tx_frames(1), 1);			/* 6 */
	/* reached by a burst crossing the end: 7 | 8, 9, 10, then 11 */
	call_at(11);
	CHECK_EQ(tx_frames(4), 0);
	CHECK_EQ(tx_frames(1), 1);
	/* an event in the lap the burst leaves: 12 .. 15 | */
	CHECK(caught_up());
	call_at(14);
	CHECK_EQ(tx_frames(4), 1);
	/* an event already passed: never again */
	CHECK_EQ(tx_frames(3), 0);			/* 16, 17, 18 */
	CHECK_EQ(tx_frames(3), 0);			/* 19, 20, 21 */
	/* the event is the entry just written: call; the one after it: not yet */
	CHECK(caught_up());
	call_at(22);
	CHECK_EQ(tx_frames(1), 1);
	call_at(24);
	CHECK_EQ(tx_frames(1), 0);			/* 23 */
	CHECK_EQ(tx_frames(1), 1);			/* 24 */
	CHECK_EQ(stats()->notifications, 7);
}

/* ==================================================================== */
/* kicks and interrupt mode (vring_intr.h)                              */
/* ==================================================================== */

/* The chain post_frame() made available last. */
static struct posted last_posted;

/* The driver makes a TX frame available, and kicks if the ring asks it to; whether it kicked. */
static bool
post_frame(void)
{
	uint8_t frame[60];

	make_frame(frame, sizeof(frame), 140);
	last_posted = tx_simple(frame, sizeof(frame));
	if (!R.ops->must_kick())
		return false;
	if (eventfd_write(R.kick, 1) != 0)
		die("eventfd_write");
	return true;
}

/* The application's interrupt fd is readable: epoll_wait on it would return. */
static bool
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* The frame post_frame() made available is dequeued, and the driver sees it used. */
static bool
one_frame(void)
{
	struct rte_mbuf *pkts[4];

	return deq(pkts, 4) == 1 && used_is(&last_posted, 0);
}

/*
 * A polled ring asks the driver not to kick, EVENT_IDX or not, and goes on
 * asking as its position moves: with EVENT_IDX the event index stays behind
 * it, a whole lap of the 16-bit index away.
 */
static void
kicks_polled(uint64_t features)
{
	CHECK(ring_setup(8, V1 | features));
	CHECK(R.ops->polled());
	for (int i = 0; i < 20; i++) {	/* round the ring and past */
		CHECK(!post_frame());
		CHECK(one_frame());
	}
	CHECK(R.ops->polled());
}

static void
test_kicks_polled(void)
{
	kicks_polled(0);
}

static void
test_kicks_polled_event_idx(void)
{
	kicks_polled(EVIDX);
}

/*
 * Armed, the ring asks for a kick for the next chain and the fd becomes
 * readable with it; the application disarms when awake and the kicks stop.
 * Armed again, the wake-up before is forgotten: readable only with the next kick.
 */
static void
intr_arm_disarm(uint64_t features)
{
	int fd;

	CHECK(ring_setup(8, V1 | features));
	fd = vhu_vring_intr_fd(R.vr);
	CHECK_GE(fd, 0);
	CHECK_EQ(vhu_vring_intr_fd(R.vr), fd);		/* one fd for the ring */
	for (int round = 0; round < 6; round++) {	/* past the end of the ring */
		vhu_vring_intr_enable(R.vr, true);
		CHECK(!R.ops->polled());
		CHECK(!readable(fd));
		CHECK(post_frame());
		CHECK(readable(fd));
		vhu_vring_intr_enable(R.vr, false);
		CHECK(R.ops->polled());
		CHECK(one_frame());
		CHECK(!post_frame());
		CHECK(one_frame());
		CHECK(readable(fd));			/* until armed again */
	}
}

static void
test_intr_arm_disarm(void)
{
	intr_arm_disarm(0);
}

static void
test_intr_arm_disarm_event_idx(void)
{
	intr_arm_disarm(EVIDX);
}

/*
 * A chain made available while the ring asked for no kicks, just before the
 * application arms: no kick comes for it, so arming finds it (after its
 * request, a full fence) and makes the fd readable at once.
 */
static void
intr_arm_finds_chain(uint64_t features)
{
	int fd;

	CHECK(ring_setup(8, V1 | features));
	fd = vhu_vring_intr_fd(R.vr);
	CHECK(!post_frame());
	vhu_vring_intr_enable(R.vr, true);
	CHECK(readable(fd));
	vhu_vring_intr_enable(R.vr, false);
	CHECK(one_frame());
	vhu_vring_intr_enable(R.vr, true);
	CHECK(!readable(fd));				/* nothing more there */
	CHECK(post_frame());
	CHECK(readable(fd));
}

static void
test_intr_arm_finds_chain(void)
{
	intr_arm_finds_chain(0);
}

static void
test_intr_arm_finds_chain_event_idx(void)
{
	intr_arm_finds_chain(EVIDX);
}

/*
 * The front end goes while the application sleeps and a new one sets the
 * ring up with a new kick fd: the application's fd stays the same and
 * wakes on the new kick fd, not on the old one (which the old front end may
 * still hold), and the new ring asks for kicks from its first chain. Armed
 * and disarmed while no front end is there, the ring writes nothing to
 * guest memory; one that starts disarmed asks for no kicks.
 */
static void
intr_new_front_end(uint64_t features)
{
	int fd, old_kick;

	CHECK(ring_setup(8, V1 | features));
	fd = vhu_vring_intr_fd(R.vr);
	CHECK(!post_frame());
	CHECK(one_frame());
	vhu_vring_intr_enable(R.vr, true);
	old_kick = xdup(R.kick);
	ring_session_end();
	ring_snapshot();
	vhu_vring_intr_enable(R.vr, false);
	vhu_vring_intr_enable(R.vr, true);
	CHECK(ring_unchanged());
	CHECK(!readable(fd));
	CHECK(ring_session_resume());
	CHECK_EQ(vhu_vring_intr_fd(R.vr), fd);
	CHECK(!readable(fd));
	CHECK_EQ(eventfd_write(old_kick, 1), 0);
	CHECK(!readable(fd));
	close(old_kick);
	CHECK(!R.ops->polled());
	CHECK(post_frame());
	CHECK(readable(fd));
	vhu_vring_intr_enable(R.vr, false);
	CHECK(one_frame());

	ring_session_end();
	CHECK(ring_session_resume());
	CHECK(R.ops->polled());
	CHECK(!post_frame());
	CHECK(one_frame());
}

static void
test_intr_new_front_end(void)
{
	intr_new_front_end(0);
}

static void
test_intr_new_front_end_event_idx(void)
{
	intr_new_front_end(EVIDX);
}

/* What rte_power_monitor() does before it sleeps: read the word, ask the check (-1: wake). */
static int
monitor_check(const struct rte_power_monitor_cond *pmc)
{
	uint16_t value = *(const volatile uint16_t *)pmc->addr;

	return pmc->fn(value, pmc->opaque);
}

/*
 * For rte_power_monitor: the word the driver writes to make the next chain
 * available, and a check that wakes once it did so (not before), at every
 * position round the ring. The memory table stays referenced for the lcore
 * after the front end left, until it asks again; no address while the ring
 * is not polled.
 */
static void
test_monitor(void)
{
	struct rte_power_monitor_cond pmc;

	CHECK(ring_setup(8, V1));
	for (int i = 0; i < 20; i++) {
		CHECK_EQ(vhu_vring_monitor(R.vr, &pmc), 0);
		CHECK_EQ(pmc.size, sizeof(uint16_t));
		CHECK_EQ(monitor_check(&pmc), 0);
		post_frame();
		CHECK_EQ(monitor_check(&pmc), -1);
		CHECK(one_frame());
	}
	CHECK_EQ(vhu_vring_monitor(R.vr, &pmc), 0);
	CHECK_EQ(R.mem->refcnt, 3);			/* ours, the ring's, the lcore's */
	ring_session_end();
	CHECK_EQ(R.mem->refcnt, 2);
	CHECK_EQ(monitor_check(&pmc), 0);		/* the lcore may still read it */
	CHECK_EQ(vhu_vring_monitor(R.vr, &pmc), -1);
	CHECK_EQ(R.mem->refcnt, 1);
	CHECK(ring_session_resume());
	CHECK_EQ(vhu_vring_monitor(R.vr, &pmc), 0);
	CHECK_EQ(R.mem->refcnt, 3);
}

/*
 * A guest's TSO frame for an application that does not take TSO: cut in
 * software into segments, two in the burst that has room for two, the
 * third in the next burst; each its own frame of the ring's port (deq()
 * checks every mbuf's port).
 */
static void
test_deq_tso_cut(void)
{
	static uint8_t f[54 + 3000];
	const struct virtio_net_hdr hdr = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = 54,
		.gso_size = 1000,
		.csum_start = 34,
		.csum_offset = 16,
	};
	uint32_t len = tcp4_frame(f, 3000), pos = 0;
	struct rte_mbuf *pkts[4];
	struct posted p;
	uint8_t *b;

	CHECK(ring_setup(8, V1 | HOST_TSO));
	vhu_vring_ctl_set_rx_offloads(R.vr, 0);
	b = tx_buf(12 + len, 12, f, &pos);
	memcpy(b, &hdr, sizeof(hdr));
	p = post1(gpa(b), 12 + len, 0);
	CHECK_EQ(deq(pkts, 2), 2);
	CHECK(used_is(&p, 0));
	CHECK_EQ(deq(&pkts[2], 2), 1);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(pkts[i]->pkt_len, 54 + 1000);
		CHECK_MEM_EQ(rte_pktmbuf_mtod_offset(pkts[i], uint8_t *, 54), f + 54 + i * 1000,
			     pkts[i]->data_len - 54);
	}
	CHECK_EQ(stats()->packets, 3);
	CHECK_EQ(stats()->malformed, 0);
}

/* ==================================================================== */
/* batches: four one-descriptor chains at once, either layout           */
/* (test_packed.c and test_split.c: what only one layout's batches do)  */
/* ==================================================================== */

/*
 * Frame counters as a reference computes them, one frame at a time: what
 * the ring's must add up to whichever path (batch, one chain) took them.
 */
struct want_counts {
	uint64_t packets, bytes, broadcast, multicast, size[VHU_SIZE_CLASSES];
};

static void
want_frame(struct want_counts *w, const uint8_t *f, uint32_t len)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	unsigned int c = len < 64 ? 0 : len == 64 ? 1 : len < 128 ? 2 : len < 256 ? 3 :
			 len < 512 ? 4 : len < 1024 ? 5 : len <= 1518 ? 6 : 7;

	w->packets++;
	w->bytes += len;
	w->size[c]++;
	if (len >= 6 && memcmp(f, bcast, 6) == 0)
		w->broadcast++;
	else if (len >= 6 && (f[0] & 1))
		w->multicast++;
}

static bool
counts_are(const struct want_counts *w)
{
	const struct vhu_vring_stats *s = stats();
	bool ok = s->packets == w->packets && s->bytes == w->bytes &&
		  s->broadcast == w->broadcast && s->multicast == w->multicast;

	for (unsigned int c = 0; c < VHU_SIZE_CLASSES; c++)
		ok = ok && s->size[c] == w->size[c];
	if (!ok)
		fprintf(stderr, "packets %" PRIu64 "/%" PRIu64 " bytes %" PRIu64 "/%" PRIu64
			" broadcast %" PRIu64 "/%" PRIu64 " multicast %" PRIu64 "/%" PRIu64 "\n",
			s->packets, w->packets, s->bytes, w->bytes, s->broadcast, w->broadcast,
			s->multicast, w->multicast);
	return ok;
}

/* Destination address kinds of the frames of test_batch_*_counters. */
static void
set_dst(uint8_t *f, unsigned int kind)
{
	static const uint8_t dst[3][6] = {
		{ 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 },	/* unicast */
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },	/* broadcast */
		{ 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 },	/* multicast */
	};

	memcpy(f, dst[kind % 3], 6);
}

/*
 * Counters summed per burst stay exact: one burst of a batch of four
 * 64-byte frames (unicast, broadcast, multicast), a batch of four lengths
 * in four size classes, a two-descriptor chain and single chains after it
 * (one-chain path), over every size class and address class; then a second
 * burst adds to them.
 */
static void
test_batch_deq_counters(void)
{
	static const uint32_t flen[] = { 64, 64, 64, 64, 60, 65, 200, 1000, 70, 1518, 1600, 14 };
	static const unsigned int kind[] = { 0, 1, 2, 0, 2, 0, 0, 1, 1, 2, 0, 1 };
	static const uint32_t lens[] = { 40, 42 };
	static uint8_t frame[12][1600];
	struct want_counts w = { 0 };
	struct rte_mbuf *pkts[12];

	CHECK(ring_setup(32, V1));
	for (int i = 0; i < 12; i++) {
		make_frame(frame[i], flen[i], 400 + i);
		set_dst(frame[i], kind[i]);
	}
	frame[8][28] = frame[8][29] = 0;	/* the chain's second buffer as a header would be */
	for (int i = 0; i < 12; i++) {
		if (i == 8)
			tx_post(lens, 2, frame[i]);
		else
			tx_simple(frame[i], flen[i]);
		want_frame(&w, frame[i], flen[i]);
	}
	CHECK_EQ(deq(pkts, 12), 12);
	for (int i = 0; i < 12; i++)
		CHECK(mbuf_is(pkts[i], frame[i], flen[i]));
	CHECK(counts_are(&w));
	for (int i = 0; i < 4; i++) {
		tx_simple(frame[i], flen[i]);
		want_frame(&w, frame[i], flen[i]);
	}
	CHECK_EQ(deq(pkts, 12), 4);
	CHECK(counts_are(&w));
	CHECK_EQ(stats()->malformed, 0);
	CHECK_EQ(stats()->dropped, 0);
}

/*
 * The same on a guest RX ring, with a 5-byte frame (shorter than an
 * address: counted without an address class, never in a batch) among them.
 */
static void
test_batch_enq_counters(void)
{
	static const uint32_t flen[] = { 64, 64, 64, 64, 60, 65, 200, 1000, 5, 1518, 1600, 14 };
	static const unsigned int kind[] = { 0, 1, 2, 0, 2, 0, 0, 1, 1, 2, 0, 1 };
	static uint8_t frame[12][1600];
	struct want_counts w = { 0 };
	struct rte_mbuf *pkts[12];

	CHECK(ring_setup(32, V1 | MRG));
	for (int i = 0; i < 12; i++) {
		make_frame(frame[i], flen[i], 500 + i);
		set_dst(frame[i], kind[i]);
		rx_simple(12 + 1600);
		pkts[i] = mk_mbuf1(frame[i], flen[i]);
		want_frame(&w, frame[i], flen[i]);
	}
	CHECK_EQ(enq(pkts, 12), 12);
	CHECK(counts_are(&w));
	for (int i = 0; i < 4; i++) {
		rx_simple(12 + 1600);
		pkts[i] = mk_mbuf1(frame[i], flen[i]);
		want_frame(&w, frame[i], flen[i]);
	}
	CHECK_EQ(enq(pkts, 4), 4);
	CHECK(counts_are(&w));
	CHECK_EQ(stats()->dropped, 0);
}

/*
 * A buffer too short for its frame third of four: no batch; with mergeable
 * buffers that frame takes it and the next one (num_buffers 2), as on its own.
 */
static void
test_batch_enq_short_buffer(void)
{
	static const uint32_t buf_len[] = { 140, 140, 50, 140, 140 };
	uint8_t frame[4][80], got[140];
	struct rte_mbuf *pkts[4];
	struct rx_chain c[5];

	CHECK(ring_setup(8, V1 | MRG));
	for (int i = 0; i < 5; i++)
		c[i] = rx_simple(buf_len[i]);
	for (int i = 0; i < 4; i++) {
		make_frame(frame[i], sizeof(frame[i]), 500 + i);
		pkts[i] = mk_mbuf1(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(enq(pkts, 4), 4);
	CHECK(used_is(&c[0].p, 92));
	CHECK(used_is(&c[1].p, 92));
	CHECK(used_is(&c[2].p, 50));
	CHECK(used_is(&c[3].p, 42));
	CHECK(used_is(&c[4].p, 92));
	rx_read(&c[2], got, 50);
	rx_read(&c[3], got + 50, 42);
	CHECK(hdr_is(got, 12, 2));
	CHECK_MEM_EQ(got + 12, frame[2], sizeof(frame[2]));
	rx_read(&c[4], got, 92);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame[3], sizeof(frame[3]));
	CHECK(rx_untouched_from(&c[4], 92));
	CHECK_EQ(stats()->packets, 4);
}

/*
 * A frame longer than its mbuf third of four: no batch; it arrives in two
 * mbufs, as on its own, and the frames around it in one each.
 */
static void
test_batch_deq_frame_beyond_mbuf(void)
{
	static uint8_t frame[4][RTE_MBUF_DEFAULT_DATAROOM + 100];
	const uint32_t len[4] = { 70, 70, sizeof(frame[2]), 70 };
	struct rte_mbuf *pkts[4];
	struct posted p[4];

	CHECK(ring_setup(8, V1));
	for (int i = 0; i < 4; i++) {
		make_frame(frame[i], len[i], 600 + i);
		p[i] = tx_simple(frame[i], len[i]);
	}
	CHECK_EQ(deq(pkts, 4), 4);
	for (int i = 0; i < 4; i++) {
		CHECK(mbuf_is(pkts[i], frame[i], len[i]));
		CHECK_EQ(pkts[i]->nb_segs, i == 2 ? 2 : 1);
		CHECK(used_is(&p[i], 0));
	}
	CHECK_EQ(stats()->packets, 4);
}

/* Lines of the captured log holding @s. */
static unsigned int
log_lines_with(const char *s)
{
	unsigned int n = 0;

	for (const char *p = strstr(log_buf, s); p != NULL; p = strstr(p + 1, s))
		n++;
	return n;
}

/*
 * What the log says of chain @p refused for its buffer @addr+@len outside
 * guest memory: a packed ring names the slot and the buffer id, a split
 * ring the head and the buffer.
 */
static void
outside_line(char *line, size_t size, const struct posted *p, uint64_t addr, uint32_t len)
{
	if (R.ops == &packed_ops)
		snprintf(line, size, "chain at slot %u (buffer %u): buffer outside guest memory or in too many pieces\n",
			 p->slot, p->id);
	else
		snprintf(line, size, "chain %u: buffer 0x%" PRIx64 "+%u outside guest memory or in too many pieces\n",
			 p->id, addr, len);
}

/*
 * A buffer outside guest memory third of four, on either ring: the four
 * are no batch, and the bad one is refused as on its own (test_virtqueue's
 * malformed cases): completed empty in its place, counted once, logged once
 * naming it; the frames around it go through.
 */
static void
test_batch_buffer_outside(void)
{
	const uint64_t outside = UINT64_C(0x40000000);
	uint8_t frame[4][70], got[82];
	struct rte_mbuf *pkts[4];
	struct rx_chain c[4];
	struct posted p[4];
	char line[160];

	CHECK(ring_setup(8, V1));
	for (int i = 0; i < 4; i++)
		make_frame(frame[i], sizeof(frame[i]), 400 + i);
	for (int i = 0; i < 4; i++)
		p[i] = i == 2 ? post1(outside, 12 + 70, 0) : tx_simple(frame[i], sizeof(frame[i]));
	log_capture_start();
	uint16_t n = deq(pkts, 4);
	log_capture_stop();
	CHECK_EQ(n, 3);
	CHECK(mbuf_is(pkts[0], frame[0], sizeof(frame[0])));
	CHECK(mbuf_is(pkts[1], frame[1], sizeof(frame[1])));
	CHECK(mbuf_is(pkts[2], frame[3], sizeof(frame[3])));
	for (int i = 0; i < 4; i++)
		CHECK(used_is(&p[i], 0));
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 3);
	outside_line(line, sizeof(line), &p[2], outside, 12 + 70);
	CHECK_EQ(log_lines_with(line), 1);
	CHECK_EQ(log_lines_with("outside guest memory"), 1);
	teardown();

	CHECK(ring_setup(8, V1));
	for (int i = 0; i < 4; i++) {
		if (i == 2)
			c[i].p = post1(outside, 200, F_WRITE);
		else
			c[i] = rx_simple(sizeof(got));
		pkts[i] = mk_mbuf1(frame[i], sizeof(frame[i]));
	}
	log_capture_start();
	n = enq(pkts, 4);
	log_capture_stop();
	CHECK_EQ(n, 4);					/* consumed, one dropped */
	for (int i = 0; i < 4; i++) {
		CHECK(used_is(&c[i].p, i == 2 ? 0 : sizeof(got)));
		if (i == 2)
			continue;
		rx_read(&c[i], got, sizeof(got));
		CHECK(hdr_is(got, 12, 1));
		CHECK_MEM_EQ(got + 12, frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 3);
	outside_line(line, sizeof(line), &c[2].p, outside, 200);
	CHECK_EQ(log_lines_with(line), 1);
	CHECK_EQ(log_lines_with("outside guest memory"), 1);
}

/*
 * A batch whose third buffer lies in the other memory region than the
 * first's: translated on its own, the four go as before; then the third
 * running past the end of that region: refused as on its own.
 */
static void
test_batch_other_region(void)
{
	uint8_t frame[4][70];
	struct rte_mbuf *pkts[4];
	struct posted p[4];

	for (int run = 0; run < 2; run++) {
		uint8_t *b2 = run == 0 ? G.g2 + 1024 : G.g2 + GUEST2_SIZE - 40;

		CHECK(ring_setup(8, V1));
		for (int i = 0; i < 4; i++)
			make_frame(frame[i], sizeof(frame[i]), 600 + i);
		if (run == 0) {
			memset(b2, 0, 12);
			memcpy(b2 + 12, frame[2], sizeof(frame[2]));
		}
		for (int i = 0; i < 4; i++)
			p[i] = i == 2 ? post1(gpa(b2), 12 + 70, 0) :
					tx_simple(frame[i], sizeof(frame[i]));
		log_capture_start();
		uint16_t n = deq(pkts, 4);
		log_capture_stop();
		CHECK_EQ(n, run == 0 ? 4 : 3);
		for (int i = 0, k = 0; i < 4; i++) {
			if (run == 1 && i == 2)
				continue;
			CHECK(mbuf_is(pkts[k++], frame[i], sizeof(frame[i])));
		}
		for (int i = 0; i < 4; i++)
			CHECK(used_is(&p[i], 0));
		CHECK_EQ(stats()->malformed, (uint64_t)run);
		CHECK_EQ(stats()->packets, run == 0 ? 4 : 3);
		CHECK_EQ(log_lines_with("outside guest memory"), run);
		teardown();
	}
}

/* ==================================================================== */

/* Runs @fn once per layout, named <layout>/<name>. */
static void
run_both(const char *name, void (*fn)(void))
{
	static const struct ring_ops *const layouts[] = { &split_ops, &packed_ops };
	char full[80];

	for (size_t i = 0; i < RTE_DIM(layouts); i++) {
		ring_use(layouts[i]);
		snprintf(full, sizeof(full), "%s/%s", layouts[i]->name, name);
		check_run(full, fn);
	}
}

#define RUN_BOTH(fn) run_both(#fn, fn)

int
main(int argc __rte_unused, char **argv)
{
	if (!unit_start(argv[0]))
		return 2;
	check_after_each = teardown;

	RUN_BOTH(test_refresh);

	RUN_BOTH(test_deq_single);
	RUN_BOTH(test_deq_burst_limit);
	RUN_BOTH(test_deq_rings_of_one_session);
	RUN_BOTH(test_deq_chain);
	RUN_BOTH(test_deq_indirect);
	RUN_BOTH(test_deq_indirect_unaligned);
	RUN_BOTH(test_deq_multi_mbuf);
	RUN_BOTH(test_deq_no_scatter);
	RUN_BOTH(test_deq_waiting);
	RUN_BOTH(test_deq_alloc_failure);
	RUN_BOTH(test_deq_rarp_alloc_failure);
	RUN_BOTH(test_deq_malformed);
	RUN_BOTH(test_deq_malformed_in_run);
	RUN_BOTH(test_deq_chain_as_long_as_ring);

	RUN_BOTH(test_deq_tso_cut);
	RUN_BOTH(test_batch_deq_frame_beyond_mbuf);
	RUN_BOTH(test_batch_enq_short_buffer);
	RUN_BOTH(test_batch_buffer_outside);
	RUN_BOTH(test_batch_other_region);
	RUN_BOTH(test_batch_deq_counters);
	RUN_BOTH(test_batch_enq_counters);

	RUN_BOTH(test_enq_simple);
	RUN_BOTH(test_enq_chain);
	RUN_BOTH(test_enq_too_small);
	RUN_BOTH(test_enq_no_buffers);
	RUN_BOTH(test_enq_mrg);
	RUN_BOTH(test_enq_mrg_out_of_buffers);
	RUN_BOTH(test_enq_mrg_malformed_mid_frame);
	RUN_BOTH(test_enq_mrg_larger_than_ring);
	RUN_BOTH(test_enq_malformed);
	RUN_BOTH(test_enq_tso_segmented);
	RUN_BOTH(test_enq_tso_pools_empty);

	RUN_BOTH(test_iommu_deq_miss_waits);
	RUN_BOTH(test_iommu_enq_miss_holds);
	RUN_BOTH(test_iommu_enq_held_freed_at_reset);
	RUN_BOTH(test_iommu_enq_read_only_refused);
	RUN_BOTH(test_iommu_asks_ahead);

	RUN_BOTH(test_log_used_deq);
	RUN_BOTH(test_log_used_enq);
	RUN_BOTH(test_log_num_buffers);

	RUN_BOTH(test_notify_flags);
	RUN_BOTH(test_notify_event_idx);

	RUN_BOTH(test_kicks_polled);
	RUN_BOTH(test_kicks_polled_event_idx);
	RUN_BOTH(test_intr_arm_disarm);
	RUN_BOTH(test_intr_arm_disarm_event_idx);
	RUN_BOTH(test_intr_arm_finds_chain);
	RUN_BOTH(test_intr_arm_finds_chain_event_idx);
	RUN_BOTH(test_intr_new_front_end);
	RUN_BOTH(test_intr_new_front_end_event_idx);
	RUN_BOTH(test_monitor);

	return unit_finish(check_summary("test_virtqueue"));
}
