/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of what only split rings have (virtqueue_split.c, and split
 * rings through dequeue.c, enqueue.c, zerocopy.c and vring_ctl.c): 16-bit
 * indices, heads and next indices, legacy headers, zero-copy dequeue. The
 * scenarios split and packed rings share are in test_virtqueue.c.
 *
 * The test plays the guest driver (ring_split.h): it writes descriptors and
 * available entries through its own mapping of guest memory and reads the
 * used ring back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "iotlb.h"
#include "memory.h"
#include "netoffload.h"
#include "vhu.h"
#include "virtio_defs.h"
#include "vring.h"
#include "vring_ctl.h"
#include "zerocopy.h"

#include "check.h"
#include "ring_split.h"

static void
teardown(void)
{
	EXPECT(ring_teardown());
}

/* A burst while another thread holds the ring lock does nothing. */
static void
test_locked_ring(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];

	CHECK(ring_setup(16, V1));
	make_frame(frame, sizeof(frame), 2);
	tx_simple(frame, sizeof(frame));
	rte_spinlock_lock(&R.vr->lock);
	CHECK_EQ(deq(pkts, 4), 0);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 0);
	rte_spinlock_unlock(&R.vr->lock);
	CHECK_EQ(used_idx(), 0);
	CHECK_EQ(deq(pkts, 4), 1);
}

/* ==================================================================== */
/* dequeue (guest TX)                                                   */
/* ==================================================================== */

static void
test_deq_header_split(void)
{
	/* 5 + 7 header bytes; the second descriptor also carries frame bytes */
	static const uint32_t lens[] = { 5, 27, 50 };
	/* and a header split exactly 5 + 7 */
	static const uint32_t lens2[] = { 5, 7, 64 };
	uint8_t frame[5 + 27 + 50 - 12], frame2[64];
	struct rte_mbuf *pkts[4];

	CHECK(ring_setup(16, V1));
	make_frame(frame, sizeof(frame), 5);
	tx_post(lens, 3, frame);
	make_frame(frame2, sizeof(frame2), 6);
	tx_post(lens2, 3, frame2);

	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(mbuf_is(pkts[1], frame2, sizeof(frame2)));
}

/* An indirect table may follow direct descriptors in a chain. */
static void
test_deq_direct_then_indirect(void)
{
	uint8_t frame[100];
	struct rte_mbuf *pkts[4];
	uint8_t *h, *b;

	CHECK(ring_setup(16, V1));
	make_frame(frame, sizeof(frame), 10);
	h = galloc(12);
	no_offload_hdr(h, 12);
	b = galloc(sizeof(frame));
	memcpy(b, frame, sizeof(frame));
	post((const struct dspec[]){
		{ gpa(h), 12, 0 },
		{ indirect_table(&(struct dspec){ gpa(b), sizeof(frame), 0 }, 1), 16, F_INDIR },
	}, 2);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
}

/* Without VERSION_1 (and without MRG_RXBUF) the header is 10 bytes. */
static void
test_deq_legacy_header(void)
{
	static const uint32_t lens[] = { 10, 64 };
	uint8_t frame[64];
	struct rte_mbuf *pkts[4];

	CHECK(ring_setup(16, 0));
	CHECK_EQ(R.vr->neg.hdr_len, 10);
	make_frame(frame, sizeof(frame), 12);
	tx_simple(frame, sizeof(frame));
	tx_post(lens, 2, frame);
	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(mbuf_is(pkts[1], frame, sizeof(frame)));

	/* legacy with MRG_RXBUF: 12 bytes */
	ring_refresh(MRG);
	tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
}

/* 16-bit ring indices wrap around. */
static void
test_deq_index_wrap(void)
{
	uint8_t frame[6][80];
	struct posted p[6];
	struct rte_mbuf *pkts[8];

	CHECK(ring_setup_at(4, V1, 0xfffe));
	for (int i = 0; i < 4; i++) {
		make_frame(frame[i], 60 + i, 20 + i);
		p[i] = tx_simple(frame[i], 60 + i);
	}
	CHECK_EQ(deq(pkts, 8), 4);		/* exactly a full ring */
	CHECK_EQ(used_idx(), 2);
	for (int i = 0; i < 4; i++) {
		CHECK(mbuf_is(pkts[i], frame[i], 60 + i));
		CHECK(used_is(&p[i], 0));
	}
	for (int i = 4; i < 6; i++) {
		make_frame(frame[i], 70, 20 + i);
		p[i] = tx_simple(frame[i], 70);
	}
	CHECK_EQ(deq(pkts, 8), 2);
	CHECK_EQ(used_idx(), 4);
	CHECK(mbuf_is(pkts[1], frame[5], 70));
	CHECK(!R.vr->broken);
}

/* The available index more than a ring ahead: the ring stops for good. */
static void
test_deq_avail_jump(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[32];

	CHECK(ring_setup(16, V1));
	make_frame(frame, sizeof(frame), 51);
	for (int i = 0; i < 16; i++)
		tx_simple(frame, sizeof(frame));
	/* exactly a ring's worth is fine */
	CHECK_EQ(deq(pkts, 32), 16);
	CHECK_EQ(used_idx(), 16);
	CHECK(!R.vr->broken);

	__atomic_store_n(&S.avail->idx, (uint16_t)(R.start + R.posted + 17), __ATOMIC_RELEASE);
	CHECK_EQ(deq(pkts, 32), 0);
	CHECK(R.vr->broken);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(used_idx(), 16);
	/* even a sane index does not revive it */
	__atomic_store_n(&S.avail->idx, (uint16_t)(R.start + R.posted + 1), __ATOMIC_RELEASE);
	CHECK_EQ(deq(pkts, 32), 0);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK_EQ(used_idx(), 16);
	/* until the control thread sets the ring up again */
	ring_refresh(V1);
	CHECK(!R.vr->broken);
}

/*
 * A head index beyond the ring, at each place of what would be a batch of
 * four: what came before it is delivered, then the ring stops.
 */
static void
test_deq_head_out_of_range(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	struct posted p[5];

	for (uint16_t bad = 0; bad < 4; bad++) {
		CHECK(ring_setup(16, V1));
		make_frame(frame, sizeof(frame), 52);
		for (uint16_t i = 0; i < 5; i++) {
			if (i == bad) {
				split_bait(S.desc, 16);
				split_push(16);
			} else {
				p[i] = tx_simple(frame, sizeof(frame));
			}
		}
		CHECK_EQ(deq(pkts, 8), bad);
		for (uint16_t i = 0; i < bad; i++) {
			CHECK(mbuf_is(pkts[i], frame, sizeof(frame)));
			CHECK(used_is(&p[i], 0));
		}
		CHECK(R.vr->broken);
		CHECK_EQ(used_idx(), bad);		/* the bad entry is not completed */
		CHECK_EQ(stats()->malformed, 1);
		CHECK_EQ(deq(pkts, 8), 0);
		CHECK_EQ(used_idx(), bad);
		teardown();
	}
}

/*
 * Batches whose available and used entries run over the end of their
 * rings (a ring of 8 started at 6): every frame arrives in order, each
 * used entry where the driver looks for it, both ways.
 */
static void
test_batch_wraps(void)
{
	uint8_t frame[8][70], got[12 + 70];
	struct rte_mbuf *pkts[8];
	struct rx_chain c[8];
	struct posted p[8];

	CHECK(ring_setup_at(8, V1, 6));
	for (int i = 0; i < 8; i++) {
		make_frame(frame[i], sizeof(frame[i]), 700 + i);
		p[i] = tx_simple(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(deq(pkts, 8), 8);
	for (int i = 0; i < 8; i++) {
		CHECK(mbuf_is(pkts[i], frame[i], sizeof(frame[i])));
		CHECK(used_is(&p[i], 0));
	}
	CHECK(none_used());
	teardown();

	CHECK(ring_setup_at(8, V1 | MRG, 6));
	for (int i = 0; i < 8; i++) {
		c[i] = rx_simple(sizeof(got));
		pkts[i] = mk_mbuf1(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(enq(pkts, 8), 8);
	for (int i = 0; i < 8; i++) {
		CHECK(used_is(&c[i].p, sizeof(got)));
		rx_read(&c[i], got, sizeof(got));
		CHECK(hdr_is(got, 12, 1));
		CHECK_MEM_EQ(got + 12, frame[i], sizeof(frame[i]));
	}
	CHECK(none_used());
	CHECK_EQ(stats()->packets, 8);
}

/* ==================================================================== */
/* enqueue (guest RX)                                                   */
/* ==================================================================== */

/* Without VERSION_1: 10-byte header, no num_buffers. */
static void
test_enq_legacy_header(void)
{
	uint8_t frame[64], got[100];
	struct rte_mbuf *pkts[1];
	struct rx_chain c;

	CHECK(ring_setup(16, 0));
	c = rx_simple(100);
	make_frame(frame, sizeof(frame), 63);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK(used_is(&c.p, 10 + 64));
	rx_read(&c, got, 100);
	CHECK(hdr_is(got, 10, 0));
	CHECK_MEM_EQ(got + 10, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c, 74));
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

	CHECK(ring_setup(512, V1 | MRG));
	c[0] = rx_post(first, 2, F_WRITE);
	for (int i = 1; i < 300; i++)
		c[i] = rx_simple(32);
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
	CHECK(used_is(&c[0].p, 32));
	pos = 20;
	for (int i = 1; i < 300; i++) {
		CHECK(used_is(&c[i].p, 32));
		CHECK_MEM_EQ(c[i].buf[0], frame + pos, 32);
		pos += 32;
	}
	CHECK_EQ(pos, sizeof(frame));
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
	CHECK(ring_setup(16, V1));
	make_frame(frame, sizeof(frame), 72);
	c[0] = rx_simple(1100);
	pkts[0] = mk_mbuf(frame, segs, 5);
	CHECK_EQ(pkts[0]->nb_segs, 5);
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK(used_is(&c[0].p, 1012));
	rx_read(&c[0], got, 1100);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c[0], 1012));
	teardown();

	/* mergeable, 128-byte buffers */
	CHECK(ring_setup(16, V1 | MRG));
	for (int i = 0; i < 8; i++)
		c[i] = rx_simple(128);
	pkts[0] = mk_mbuf(frame, segs, 5);
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK_EQ(used_idx(), 8);		/* 1012 bytes: 7 full buffers + 116 */
	for (int i = 0; i < 8; i++) {
		CHECK(used_is(&c[i].p, i < 7 ? 128 : 1012 - 7 * 128));
		memcpy(got + i * 128, c[i].buf[0], 128);
	}
	CHECK(hdr_is(got, 12, 8));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&c[7], 1012 - 7 * 128));
}

/* Malformed chains are completed empty and published; the frames meeting them are dropped. */
static void
test_enq_only_malformed(void)
{
	static const uint32_t len = 200;
	uint8_t frame[60];
	struct rte_mbuf *pkts[3];
	struct rx_chain bad;
	struct posted p;
	uint16_t d;

	CHECK(ring_setup(16, V1));
	bad = rx_post(&len, 1, 0);
	d = split_desc_new();
	split_desc_set(S.desc, d, gpa(galloc(10)), 10, F_WRITE | F_NEXT, 16);
	p = split_push(d);
	make_frame(frame, sizeof(frame), 74);
	for (int i = 0; i < 3; i++)
		pkts[i] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 3), 2);		/* two dropped, no room for the third */
	CHECK_EQ(used_idx(), 2);
	CHECK(used_is(&bad.p, 0));
	CHECK(used_is(&p, 0));
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

	CHECK(ring_setup(16, V1));
	c = rx_simple(200);
	S.desc[c.p.id].flags |= F_NEXT;
	S.desc[c.p.id].next = 0xffff;
	make_frame(frame, sizeof(frame), 78);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 1);
	CHECK(used_is(&c.p, 72));
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

	CHECK(ring_setup(16, V1 | MRG));
	tiny = rx_simple(8);
	good = rx_simple(256);
	make_frame(frame, sizeof(frame), 75);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	pkts[1] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(used_idx(), 2);
	CHECK(used_is(&tiny.p, 0));
	CHECK(used_is(&good.p, 72));
	CHECK(hdr_is(good.buf[0], 12, 1));
	CHECK_MEM_EQ(good.buf[0] + 12, frame, sizeof(frame));
	CHECK(rx_untouched_from(&tiny, 0));
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 1);
}

/*
 * EVENT_IDX: the first publish after a start always calls (nothing to compare
 * with); after that, a call goes out only when the used index moves past
 * used_event (the entry after the available ring), whatever avail->flags
 * says (packed rings differ: there DISABLE wins).
 */
static void
test_enq_event_idx_no_interrupt_ignored(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[1];

	CHECK(ring_setup(16, V1 | EVIDX));
	interrupts(false);			/* ignored with EVENT_IDX */
	call_at(2);				/* call after entry 2 */
	make_frame(frame, sizeof(frame), 83);
	for (int round = 1; round <= 4; round++) {
		rx_simple(100);
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

	CHECK(ring_setup(16, V1));
	__atomic_store_n(&S.avail->idx, 17, __ATOMIC_RELEASE);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 1), 0);
	CHECK(R.vr->broken);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(used_idx(), 0);
	teardown();

	for (int mrg = 0; mrg < 2; mrg++) {
		CHECK(ring_setup(16, mrg ? V1 | MRG : V1));
		c = rx_simple(100);
		split_push(16);
		rx_simple(100);
		for (int i = 0; i < 3; i++)
			pkts[i] = mk_mbuf1(frame, sizeof(frame));
		CHECK_EQ(enq(pkts, 3), 1);
		CHECK(R.vr->broken);
		CHECK_EQ(used_idx(), 1);
		CHECK(used_is(&c.p, 72));
		CHECK_EQ(enq(&pkts[1], 2), 0);
		CHECK_EQ(used_idx(), 1);
		teardown();
	}
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
	struct posted p;

	CHECK(ring_setup(16, V1));
	R.vr->index = 1;			/* a guest TX ring */
	vhu_vring_ctl_enable(R.vr, false);
	CHECK(!R.vr->ready && R.vr->discarding);
	make_frame(frame, sizeof(frame), 99);
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(used_idx(), 1);
	CHECK(used_is(&p, 0));
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 0);

	vhu_vring_ctl_enable(R.vr, true);	/* and on again: frames flow */
	CHECK(R.vr->ready && !R.vr->discarding);
	tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	app_free(pkts[0]);

	R.vr->index = 0;			/* a guest RX ring: left alone */
	vhu_vring_ctl_enable(R.vr, false);
	CHECK(!R.vr->ready && !R.vr->discarding);
}

/* ==================================================================== */
/* zero-copy dequeue                                                    */
/* ==================================================================== */

#define ZC_THRESHOLD 512

/* A ring with zero-copy on for frames of ZC_THRESHOLD bytes and more. */
static bool
setup_zc(uint32_t size)
{
	bool ready = ring_setup(size, V1);

	rte_spinlock_lock(&R.vr->lock);
	R.vr->zc_threshold = ZC_THRESHOLD;
	vhu_zc_ring_started(R.vr);
	rte_spinlock_unlock(&R.vr->lock);
	return ready && R.vr->zc != NULL;
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

		for (uint32_t r = 0; r < R.mem->nregions; r++) {
			const struct vhu_mem_region *reg = &R.mem->regions[r];

			inside |= p >= reg->host_addr && p + s->data_len <= reg->host_addr + reg->size;
		}
		if (!RTE_MBUF_HAS_EXTBUF(s) || !inside)
			return false;
	}
	return m->next != NULL && !RTE_MBUF_HAS_EXTBUF(m);
}

/* The virtio-net header of TX chain @p (its first descriptor). */
static struct virtio_net_hdr *
tx_hdr(const struct posted *p)
{
	return (struct virtio_net_hdr *)(G.g + (S.desc[p->id].addr - GPA_BASE));
}

/*
 * Makes a TX chain of one descriptor available: @frame, made from @seed,
 * after the virtio-net header @hdr (num_buffers 0).
 */
static struct posted
post_with_hdr(uint8_t *frame, uint32_t len, uint32_t seed, const struct virtio_net_hdr *hdr)
{
	struct posted p;

	make_frame(frame, len, seed);
	p = tx_simple(frame, len);
	memset(tx_hdr(&p), 0, 12);
	memcpy(tx_hdr(&p), hdr, sizeof(*hdr));
	return p;
}

static void
test_zc_small_frames_copied(void)
{
	uint8_t frame[ZC_THRESHOLD - 1];
	struct rte_mbuf *pkts[4];

	CHECK(setup_zc(16));
	make_frame(frame, sizeof(frame), 90);
	tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(!RTE_MBUF_HAS_EXTBUF(pkts[0]) && pkts[0]->next == NULL);
	CHECK_EQ(used_idx(), 1);			/* given back at once */
	CHECK_EQ(stats()->zero_copy, 0);
	CHECK_EQ(vhu_zc_held(R.vr), 0);
}

/* A big frame is handed out in guest memory; its chain goes back when freed. */
static void
test_zc_big_frame_held_until_freed(void)
{
	uint8_t frame[1500];
	struct rte_mbuf *pkts[4];
	struct posted p;
	uint8_t *gframe;

	CHECK(setup_zc(16));
	make_frame(frame, sizeof(frame), 91);
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(attached_to_guest(pkts[0]));
	CHECK_EQ(pkts[0]->nb_segs, 2);			/* head copy + one guest piece */
	CHECK_EQ(pkts[0]->data_len, VHU_ZC_HEAD_BYTES);
	CHECK_EQ(stats()->zero_copy, 1);
	CHECK_EQ(vhu_zc_held(R.vr), 1);
	CHECK_EQ(used_idx(), 0);			/* held */
	CHECK_EQ(calls(), 0);
	CHECK_EQ(R.mem->refcnt, 2);			/* ours, the ring's (covering the mbuf's) */

	/* past the head, what the mbuf shows is the guest's buffer itself */
	gframe = (uint8_t *)tx_hdr(&p) + 12;
	gframe[0] ^= 0xff;
	gframe[VHU_ZC_HEAD_BYTES] ^= 0xff;
	CHECK_EQ(*rte_pktmbuf_mtod(pkts[0], uint8_t *), frame[0]);	/* a copy */
	CHECK_EQ(*rte_pktmbuf_mtod(pkts[0]->next, uint8_t *), frame[VHU_ZC_HEAD_BYTES] ^ 0xff);
	/* what a checksum may be written into: the copy, never the guest's buffer */
	CHECK(vhu_mbuf_range_writable(pkts[0], 0, VHU_ZC_HEAD_BYTES));
	CHECK(!vhu_mbuf_range_writable(pkts[0], VHU_ZC_HEAD_BYTES, 2));

	CHECK_EQ(deq(pkts + 1, 3), 0);			/* nothing new, still held */
	CHECK_EQ(used_idx(), 0);
	app_free(pkts[0]);
	CHECK_EQ(R.mem->refcnt, 2);
	CHECK_EQ(deq(pkts, 4), 0);			/* the next burst gives it back */
	CHECK_EQ(used_idx(), 1);
	CHECK(used_is(&p, 0));
	CHECK_EQ(calls(), 1);
	CHECK_EQ(vhu_zc_held(R.vr), 0);
}

/*
 * No mbuf to attach the guest's buffer with, nor to copy it into: the frame
 * is dropped as a shortage (alloc_failed), its chain goes back at once, not
 * held, and nothing of the pool or the memory table stays referenced.
 */
static void
test_zc_no_mbuf_for_the_rest(void)
{
	uint8_t frame[1500];
	struct rte_mempool *one;
	struct rte_mbuf *pkts[2];
	struct posted p;

	CHECK(setup_zc(16));
	/* one mbuf, too small for the frame: a copy would need a second one too */
	one = rte_pktmbuf_pool_create("vhu_unit_zc_one", 1, 0, 0, RTE_PKTMBUF_HEADROOM + 512,
				      (int)rte_socket_id());
	CHECK_NOT_NULL(one);
	make_frame(frame, sizeof(frame), 93);
	p = tx_simple(frame, sizeof(frame));
	EXPECT_EQ(vhu_dequeue_burst(R.vr, one, pkts, 2), 0);
	EXPECT(used_is(&p, 0));
	EXPECT_EQ(stats()->alloc_failed, 1);
	EXPECT_EQ(stats()->zero_copy, 0);
	EXPECT_EQ(vhu_zc_held(R.vr), 0);
	EXPECT_EQ(R.mem->refcnt, 2);			/* ours and the ring's */
	EXPECT_EQ(rte_mempool_avail_count(one), 1);
	rte_mempool_free(one);
}

/*
 * Behind a vIOMMU, a zero-copy mbuf keeps the guest memory it points into
 * mapped after the buffer's translation is invalidated, as after a memory
 * table change: the memory table it holds is the mapping's.
 */
static void
test_zc_held_across_invalidation(void)
{
	uint8_t frame[1500];
	struct rte_mbuf *pkts[4];
	struct posted p;

	CHECK(setup_zc(16));
	CHECK(ring_behind_iommu());
	CHECK(ring_translate_buffers(VHU_IOTLB_RW));
	make_frame(frame, sizeof(frame), 92);
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(attached_to_guest(pkts[0]));
	rte_spinlock_lock(&R.vr->lock);
	vhu_iotlb_invalidate(R.iotlb, GPA_BASE + RING_BUF_OFF, GUEST_SIZE - RING_BUF_OFF);
	rte_spinlock_unlock(&R.vr->lock);
	CHECK_EQ(R.iotlb->nentries, RING_BUF_OFF / 4096);	/* the ring areas' only */
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK_EQ(R.mem->refcnt, 2);			/* ours, the ring's (covering the mbuf's) */
	app_free(pkts[0]);
	CHECK_EQ(R.mem->refcnt, 2);
	/* giving the chain back touches the used ring only, still translated */
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK(used_is(&p, 0));
}

/*
 * Zero-copy mbufs and the memory table they point into. While the ring
 * keeps the table, its reference covers them: handing them out and freeing
 * them write no count of the table, which every ring of the session reads.
 * When the ring moves to another table (SET_MEM_TABLE), each mbuf still out
 * takes a reference of its own on the old one, dropped when it is freed.
 */
static void
test_zc_memory_table_references(void)
{
	uint8_t frame[2][1500];
	struct rte_mbuf *pkts[4];
	struct vhu_mem_table *old = NULL;
	struct posted p[2];

	CHECK(setup_zc(16));
	for (int i = 0; i < 2; i++) {
		make_frame(frame[i], sizeof(frame[i]), 99 + i);
		p[i] = tx_simple(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(deq(pkts, 4), 2);
	CHECK_EQ(stats()->zero_copy, 2);
	CHECK_EQ(R.mem->refcnt, 2);			/* ours and the ring's */
	app_free(pkts[1]);				/* freed while the ring keeps the table */
	CHECK_EQ(R.mem->refcnt, 2);

	/* the same memory in a new table, the ring moved onto it */
	old = R.mem;
	R.mem = guest_mem_table();
	ring_refresh(R.features);
	EXPECT_EQ(old->refcnt, 2);			/* ours and pkts[0]'s */
	EXPECT_EQ(R.mem->refcnt, 2);			/* ours and the ring's */
	EXPECT(mbuf_is(pkts[0], frame[0], sizeof(frame[0])));
	app_free(pkts[0]);
	EXPECT_EQ(old->refcnt, 1);
	vhu_mem_table_put(old);
	/* both chains go back, in the order their mbufs were freed */
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK(used_is(&p[1], 0));
	CHECK(used_is(&p[0], 0));
	CHECK_EQ(vhu_zc_held(R.vr), 0);
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
	struct posted p[2];

	CHECK(setup_zc(16));
	make_frame(frame[0], sizeof(frame[0]), 97);
	p[0] = tx_simple(frame[0], sizeof(frame[0]));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK_EQ(vhu_zc_held(R.vr), 1);

	vhu_vring_ctl_enable(R.vr, false);
	CHECK(!R.vr->ready);
	vhu_vring_ctl_enable(R.vr, true);
	CHECK(R.vr->ready);
	CHECK_EQ(vhu_zc_held(R.vr), 1);
	CHECK_EQ(used_idx(), 0);

	make_frame(frame[1], sizeof(frame[1]), 98);
	p[1] = tx_simple(frame[1], sizeof(frame[1]));
	CHECK_EQ(deq(pkts + 1, 3), 1);			/* the new frame, only */
	CHECK(mbuf_is(pkts[1], frame[1], sizeof(frame[1])));
	app_free(pkts[0]);
	app_free(pkts[1]);
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(used_idx(), 2);
	CHECK(used_is(&p[0], 0));
	CHECK(used_is(&p[1], 0));
	CHECK_EQ(vhu_zc_held(R.vr), 0);
}

/* A frame over several descriptors and two regions: one mbuf per guest piece. */
static void
test_zc_chain_pieces(void)
{
	uint8_t frame[3000];
	const uint32_t lens[3] = { 12 + 700, 1000, 1300 };
	struct rte_mbuf *pkts[4];

	CHECK(setup_zc(16));
	make_frame(frame, sizeof(frame), 92);
	tx_post(lens, 3, frame);
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
	struct posted p[12];

	CHECK(setup_zc(16));
	for (int i = 0; i < 12; i++) {
		make_frame(frame[i], sizeof(frame[i]), 100 + i);
		p[i] = tx_simple(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(deq(pkts, 16), 12);
	for (int i = 0; i < 12; i++) {
		CHECK(mbuf_is(pkts[i], frame[i], sizeof(frame[i])));
		CHECK_EQ(attached_to_guest(pkts[i]), i < 8);
	}
	CHECK_EQ(stats()->zero_copy, 8);
	CHECK_EQ(vhu_zc_held(R.vr), 8);
	CHECK_EQ(used_idx(), 4);			/* the four copies */
	for (int i = 0; i < 4; i++)
		CHECK(used_is(&p[8 + i], 0));

	/* the application frees 5, 2, 7 */
	app_free(pkts[5]);
	app_free(pkts[2]);
	app_free(pkts[7]);
	CHECK_EQ(deq(pkts + 12, 4), 0);
	CHECK_EQ(used_idx(), 7);
	CHECK(used_is(&p[5], 0));
	CHECK(used_is(&p[2], 0));
	CHECK(used_is(&p[7], 0));
	CHECK_EQ(vhu_zc_held(R.vr), 5);
}

/*
 * Chains whose mbufs were freed since the last burst all go back in the
 * next one, whatever their number: 1 to 8 (all a 16-entry ring may hold),
 * so that the ring of freed slots is read in every length modulo four
 * (rte_ring copies groups of four, then the rest) and across its end.
 */
static void
test_zc_reap_every_count(void)
{
	uint8_t frame[1000];
	struct rte_mbuf *pkts[8];
	struct posted p[8];
	uint16_t used = 0;

	CHECK(setup_zc(16));
	for (unsigned int count = 1; count <= RTE_DIM(pkts); count++) {
		for (unsigned int i = 0; i < count; i++) {
			make_frame(frame, sizeof(frame), 110 + i);
			p[i] = tx_simple(frame, sizeof(frame));
		}
		CHECK_EQ(deq(pkts, RTE_DIM(pkts)), count);
		CHECK_EQ(vhu_zc_held(R.vr), count);
		for (unsigned int i = count; i > 0; i--)
			app_free(pkts[i - 1]);
		CHECK_EQ(deq(pkts, RTE_DIM(pkts)), 0);
		used += count;
		CHECK_EQ(used_idx(), used);
		for (unsigned int i = count; i > 0; i--)
			CHECK(used_is(&p[i - 1], 0));
		CHECK_EQ(vhu_zc_held(R.vr), 0);
	}
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

	CHECK(setup_zc(16));
	make_frame(frame, sizeof(frame), 93);
	tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(attached_to_guest(pkts[0]));
	vhu_vring_ctl_reset(R.vr);			/* the session is gone */
	CHECK_EQ(R.mem->refcnt, 2);			/* ours and the mbuf's */
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	app_free(pkts[0]);
	CHECK_EQ(R.mem->refcnt, 1);
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

	CHECK(setup_zc(16));
	for (int i = 0; i < 2; i++) {
		make_frame(frame[i], sizeof(frame[i]), 94 + i);
		tx_simple(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(deq(pkts, 4), 2);
	app_free(pkts[1]);				/* freed, not reaped yet */
	rte_spinlock_lock(&R.vr->lock);
	vhu_zc_ring_stopped(R.vr, true);
	rte_spinlock_unlock(&R.vr->lock);
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(calls(), 1);
	CHECK(R.vr->zc == NULL);
	CHECK(mbuf_is(pkts[0], frame[0], sizeof(frame[0])));
	app_free(pkts[0]);				/* goes to the orphaned pool */
	CHECK_EQ(used_idx(), 2);
	CHECK_EQ(R.mem->refcnt, 2);
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
	struct posted p;

	CHECK(setup_zc(16));
	p = post_with_hdr(frame, sizeof(frame), 96, &hdr);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(!attached_to_guest(pkts[0]));
	CHECK_EQ(stats()->zero_copy, 0);
	CHECK_EQ(used_idx(), 1);
	/* the guest's buffer was not written (the sum went into our copy) */
	CHECK_MEM_EQ((uint8_t *)tx_hdr(&p) + 12 + 600, frame + 600, 8);
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
	struct posted p;

	CHECK(setup_zc(16));
	p = post_with_hdr(frame, sizeof(frame), 97, &hdr);
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(deq(pkts, 4), 0);			/* reaped */
	CHECK_EQ(used_idx(), 1);
	CHECK(used_is(&p, 0));
	CHECK_EQ(vhu_zc_held(R.vr), 0);
}

int
main(int argc __rte_unused, char **argv)
{
	if (!unit_start(argv[0]))
		return 2;
	ring_use(&split_ops);
	check_after_each = teardown;

	RUN_TEST(test_locked_ring);

	RUN_TEST(test_deq_header_split);
	RUN_TEST(test_deq_direct_then_indirect);
	RUN_TEST(test_deq_legacy_header);
	RUN_TEST(test_deq_index_wrap);
	RUN_TEST(test_deq_avail_jump);
	RUN_TEST(test_deq_head_out_of_range);
	RUN_TEST(test_batch_wraps);

	RUN_TEST(test_enq_legacy_header);
	RUN_TEST(test_enq_mrg_num_buffers_bytes);
	RUN_TEST(test_enq_multiseg);
	RUN_TEST(test_enq_only_malformed);
	RUN_TEST(test_enq_walk_stops_at_want);
	RUN_TEST(test_enq_mrg_short_first);
	RUN_TEST(test_enq_event_idx_no_interrupt_ignored);
	RUN_TEST(test_enq_broken);

	RUN_TEST(test_disabled_tx_ring_discards);
	RUN_TEST(test_zc_small_frames_copied);
	RUN_TEST(test_zc_big_frame_held_until_freed);
	RUN_TEST(test_zc_held_across_invalidation);
	RUN_TEST(test_zc_memory_table_references);
	RUN_TEST(test_zc_no_mbuf_for_the_rest);
	RUN_TEST(test_zc_disable_enable_keeps_held);
	RUN_TEST(test_zc_chain_pieces);
	RUN_TEST(test_zc_bound_and_order);
	RUN_TEST(test_zc_reap_every_count);
	RUN_TEST(test_zc_disconnect_while_held);
	RUN_TEST(test_zc_stop_gives_back);
	RUN_TEST(test_zc_checksum_far_copied);
	RUN_TEST(test_zc_bad_header_held_chain_returns);

	return unit_finish(check_summary("test_split"));
}
