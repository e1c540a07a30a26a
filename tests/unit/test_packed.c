/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of what only packed rings have (virtqueue_packed.c and the
 * packed parts of virtqueue.h, dequeue.c, enqueue.c, vring_ctl.c): wrap
 * counters and laps, bases as SET/GET_VRING_BASE carry them, rings of any
 * size, completions published in one go, batches of four one-descriptor
 * chains. The scenarios split and packed rings share are in
 * test_virtqueue.c.
 *
 * The test plays the guest driver (ring_packed.h) on a packed ring in guest
 * memory it maps itself.
 *
 * Tests named test_bug_* pin defects found while writing these tests (now
 * fixed; see the comment on each). One of them would overflow a heap buffer
 * and runs in a child process, so that an ASan abort there would be reported
 * as that test's failure only.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "memory.h"
#include "message.h"
#include "port.h"
#include "vhu.h"
#include "virtio_defs.h"
#include "virtqueue.h"
#include "vring.h"
#include "vring_ctl.h"

#include "check.h"
#include "log_capture.h"
#include "ring_packed.h"
#include "store_trace.h"

/* Control-path tests: the ring under test is this port's guest TX ring (ring 1). */
#define PORT_RING 1

static struct vhu_port *port;
static char sockdir[64];

static void port_teardown(void);

static void
teardown(void)
{
	if (port != NULL)
		port_teardown();
	EXPECT(ring_teardown());
}

/* ==================================================================== */
/* set-up and ring start                                                */
/* ==================================================================== */

/* Where the three areas of a packed ring may lie; what a started ring holds. */
static void
test_refresh_areas(void)
{
	struct vhu_vring_addr_config home, a;

	CHECK(ring_setup(5, V1));
	home = R.vr->ctl.addr;
	CHECK_GE(R.vr->packed.pending_cap, 5);
	/* completions kept aside: written per burst, on cache lines of the ring's own */
	CHECK_EQ((uintptr_t)R.vr->packed.pending % RTE_CACHE_LINE_SIZE, 0);
	CHECK(!R.vr->ctl.base_pending);

	/* a ring that runs past the end of its region: not ready */
	a = home;
	a.desc = FE2_BASE + GUEST2_SIZE - 4 * 16;
	vhu_vring_ctl_set_addr(R.vr, &a);
	CHECK(!R.vr->ready);
	/* exactly fits */
	a.desc = FE2_BASE + GUEST2_SIZE - 5 * 16;
	vhu_vring_ctl_set_addr(R.vr, &a);
	CHECK(R.vr->ready);
	/* an event area outside guest memory: not ready */
	a = home;
	a.avail = FE_BASE + GUEST_SIZE - 2;
	vhu_vring_ctl_set_addr(R.vr, &a);
	CHECK(!R.vr->ready);
	a = home;
	a.used = FE2_BASE + GUEST2_SIZE;
	vhu_vring_ctl_set_addr(R.vr, &a);
	CHECK(!R.vr->ready);
	vhu_vring_ctl_set_addr(R.vr, &home);
	CHECK(R.vr->ready);
	CHECK_EQ(R.mem->refcnt, 2);
	/* refreshing a running ring keeps its position */
	CHECK(packed_at(0, true, 0, true));
}

/* SET_VRING_BASE 0x0003: slot 3, wrap counter 0. */
static void
test_base_slot3_wrap0(void)
{
	uint8_t frame[3][80];
	struct rte_mbuf *pkts[4];
	struct posted p[3];

	CHECK(packed_setup_base(5, V1, 0x0003));
	CHECK(packed_at(3, false, 3, false));
	CHECK_EQ(P.dev_ev->flags, VRING_PACKED_EVENT_FLAG_DISABLE);
	for (int i = 0; i < 3; i++)
		make_frame(frame[i], sizeof(frame[i]), 1 + i);

	/* slot 3 made available for wrap counter 1 is not available in lap 0 */
	{
		uint8_t *b = galloc(12 + 80);

		no_offload_hdr(b, 12);
		memcpy(b + 12, frame[0], 80);
		packed_desc_set(P.desc, 3, gpa(b), 12 + 80, F_AVAIL);
		/* nor is a good chain at slot 0, where a ring with no base would start */
		packed_desc_set(P.desc, 0, gpa(b), 12 + 80, F_AVAIL);
	}
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK(packed_at(3, false, 3, false));

	/* slot 3 with the lap-0 bits (AVAIL 0, USED 1) */
	p[0] = tx_simple(frame[0], 80);
	CHECK_EQ(p[0].slot, 3);
	CHECK_EQ(P.desc[3].flags, F_USED);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame[0], 80));
	CHECK(used_is(&p[0], 0));
	CHECK_EQ(P.desc[3].flags, 0);			/* used in lap 0: AVAIL = USED = 0 */
	CHECK(packed_at(4, false, 4, false));

	/* a two-descriptor chain over slots 4 and 0: the wrap counter flips in the chain */
	{
		static const uint32_t lens[] = { 12, 80 };

		p[1] = tx_post(lens, 2, frame[1]);
	}
	CHECK_EQ(p[1].slot, 4);
	CHECK_EQ(P.desc[4].flags, F_USED | F_NEXT);
	CHECK_EQ(P.desc[0].flags, F_AVAIL);		/* lap 1 bits on the second one */
	p[2] = tx_simple(frame[2], 80);
	CHECK_EQ(p[2].slot, 1);
	CHECK(lap_wrap(p[2].lap));
	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(mbuf_is(pkts[0], frame[1], 80));
	CHECK(mbuf_is(pkts[1], frame[2], 80));
	CHECK(used_is(&p[1], 0));
	CHECK_EQ(P.desc[4].flags, 0);			/* used in lap 0 */
	CHECK(used_is(&p[2], 0));
	CHECK_EQ(P.desc[1].flags, F_AVAIL | F_USED);	/* used in lap 1 */
	CHECK(packed_at(2, true, 2, true));
	CHECK_EQ(stats()->malformed, 0);
	CHECK_EQ(stats()->packets, 3);
}

/* Bases at the edges: the last slot of the largest ring; a slot beyond the ring. */
static void
test_base_edges(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct posted p[2];

	make_frame(frame, sizeof(frame), 5);

	/* 0x7fff: slot 32767 of a 32768-entry ring, wrap counter 0 */
	CHECK(packed_setup_base(VHU_VRING_MAX_SIZE, V1, 0x7fff));
	CHECK(packed_at(32767, false, 32767, false));
	p[0] = tx_simple(frame, sizeof(frame));
	p[1] = tx_simple(frame, sizeof(frame));
	CHECK_EQ(p[1].slot, 0);
	CHECK(lap_wrap(p[1].lap));
	CHECK_EQ(deq(pkts, 4), 2);
	CHECK(used_is(&p[0], 0));
	CHECK(used_is(&p[1], 0));
	CHECK(packed_at(1, true, 1, true));
	teardown();

	/* 0xffff: the same slot, wrap counter 1 */
	CHECK(packed_setup_base(VHU_VRING_MAX_SIZE, V1, 0xffff));
	CHECK(packed_at(32767, true, 32767, true));
	teardown();

	/* slot 5 of a 5-entry ring: the ring stops (counted), whatever the wrap bit */
	for (uint32_t base = 0x0005; base <= 0x8005; base += 0x8000) {
		CHECK(!packed_setup_base(5, V1, base));
		CHECK(R.vr->broken);
		CHECK_EQ(stats()->malformed, 1);
		CHECK_EQ(deq(pkts, 4), 0);
		pkts[0] = mk_mbuf1(frame, sizeof(frame));
		CHECK_EQ(enq(pkts, 1), 0);
		/* and a refresh does not revive it */
		ring_refresh(V1);
		CHECK(!R.vr->ready);
		teardown();
	}

	/* 0x7fff for a ring of 32767: beyond it */
	CHECK(!packed_setup_base(VHU_VRING_MAX_SIZE - 1, V1, 0x7fff));
	CHECK(R.vr->broken);
}

/*
 * The base applies once, when the ring starts; a ring stopped and started
 * again without a new base (GET_VRING_BASE, then a kick fd) resumes where it
 * stopped, and its first publish after the start always calls.
 */
static void
test_base_restart(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct posted p;

	CHECK(packed_setup_base(5, V1 | EVIDX, 0x8002));
	make_frame(frame, sizeof(frame), 6);
	P.drv_ev->flags = VRING_PACKED_EVENT_FLAG_DESC;
	P.drv_ev->off_wrap = 0x7fff;		/* a slot never reached: no call but the first */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(tx_frames(1), i == 0 ? 1 : 0);
	CHECK(packed_at(1, false, 1, false));

	/* stop */
	ring_refresh(V1 | EVIDX);
	vhu_vring_ctl_stop(R.vr);
	CHECK(!R.vr->ready);
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 0);
	/* start again, no new base */
	vhu_vring_ctl_start(R.vr, -1);
	CHECK(R.vr->ready);
	CHECK(packed_at(1, false, 1, false));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(used_is(&p, 0));
	CHECK_EQ(calls(), 1);			/* first publish after the start */

	/* a new base is refused while the ring runs, taken at the next start */
	CHECK_EQ(vhu_vring_ctl_set_base(R.vr, 0x8004), -1);
	CHECK(packed_at(2, false, 2, false));
	vhu_vring_ctl_stop(R.vr);
	CHECK_EQ(vhu_vring_ctl_set_base(R.vr, 0x8004), 0);
	vhu_vring_ctl_start(R.vr, -1);
	CHECK(packed_at(4, true, 4, true));
	CHECK(!R.vr->ctl.base_pending);
}

/*
 * What the scenarios rely on of the driver (ring_packed.c): a chain over
 * consecutive slots, NEXT on all but its last descriptor, the buffer id in
 * that one only, each descriptor's AVAIL/USED bits from its own slot's lap
 * (the next lap's past the end of the ring), an indirect chain in one slot.
 */
static void
test_driver_lays_out_chains(void)
{
	static const uint32_t lens[] = { 5, 7, 30, 100 };
	struct rx_chain c;
	struct posted p;

	CHECK(packed_setup_base(5, V1, 0x8003));
	c = rx_post(lens, 4, F_WRITE);
	CHECK_EQ(c.p.slot, 3);
	CHECK_EQ(c.p.nslots, 4);
	CHECK_EQ(P.desc[3].flags, F_WRITE | F_NEXT | F_AVAIL);
	CHECK_EQ(P.desc[4].flags, F_WRITE | F_NEXT | F_AVAIL);
	CHECK_EQ(P.desc[0].flags, F_WRITE | F_NEXT | F_USED);	/* past the end: wrap 0 */
	CHECK_EQ(P.desc[1].flags, F_WRITE | F_USED);
	CHECK_EQ(P.desc[3].id, JUNK_ID);
	CHECK_EQ(P.desc[4].id, JUNK_ID);
	CHECK_EQ(P.desc[0].id, JUNK_ID);
	CHECK_EQ(P.desc[1].id, c.p.id);
	p = post_indirect(&(struct dspec){ gpa(galloc(100)), 100, F_WRITE }, 1);
	CHECK_EQ(p.slot, 2);
	CHECK_EQ(p.nslots, 1);
	CHECK_EQ(P.desc[2].flags, F_INDIR | F_USED);
	CHECK_EQ(P.desc[2].id, p.id);
}

/* ==================================================================== */
/* dequeue (guest TX)                                                   */
/* ==================================================================== */

/*
 * N = 5 (not a power of 2), 3 x N one-slot frames, then chains of 1, 2 and
 * 3 descriptors, several of them across the end of the ring, over several
 * laps; the driver's ring reads right all the way and both wrap counters
 * flip at each lap.
 */
static void
test_deq_laps(void)
{
	static const unsigned int burst[] = { 1, 2, 1, 3, 2, 1, 4, 1 };
	uint8_t frame[40][70];
	struct rte_mbuf *pkts[8];
	struct posted p[8];
	unsigned int done = 0, b = 0;
	uint32_t slots = 0;

	CHECK(ring_setup(5, V1));
	for (int i = 0; i < 40; i++)
		make_frame(frame[i], 60 + (i % 10), 30 + i);

	/* 15 single-descriptor frames in bursts of varying sizes */
	while (done < 15) {
		unsigned int n = RTE_MIN(burst[b++ % RTE_DIM(burst)], 15 - done);

		for (unsigned int i = 0; i < n; i++)
			p[i] = tx_simple(frame[done + i], 60 + ((done + i) % 10));
		CHECK_EQ(deq(pkts, 8), n);
		for (unsigned int i = 0; i < n; i++) {
			CHECK(mbuf_is(pkts[i], frame[done + i], 60 + ((done + i) % 10)));
			CHECK_EQ(lap_wrap(p[i].lap), ((done + i) / 5) % 2 == 0);
			CHECK(used_is(&p[i], 0));
		}
		done += n;
		slots += n;
		CHECK(packed_at(slots % 5, (slots / 5) % 2 == 0, slots % 5, (slots / 5) % 2 == 0));
	}
	CHECK(packed_at(0, false, 0, false));		/* three laps: wrap counters 1, 0, 1 -> 0 */

	/* chains of 1..3 descriptors, several straddling slot 4 -> 0 */
	for (int round = 0; round < 12; round++) {
		unsigned int n = 1 + (unsigned int)(round % 3);
		uint32_t lens[3];
		uint32_t flen = 60 + (uint32_t)round;
		bool wraps;

		for (unsigned int i = 0; i < n; i++)
			lens[i] = i == 0 ? (n == 1 ? 12 + flen : 12) :
				  (i + 1 < n ? 20 : flen - 20 * (n - 2));
		p[0] = tx_post(lens, n, frame[15 + round]);
		wraps = p[0].slot + n > 5;
		CHECK_EQ(deq(pkts, 8), 1);
		CHECK(mbuf_is(pkts[0], frame[15 + round], flen));
		CHECK(used_is(&p[0], 0));
		slots += n;
		CHECK(packed_at(slots % 5, (slots / 5) % 2 == 0, slots % 5, (slots / 5) % 2 == 0));
		if (wraps)
			CHECK_NE(R.vr->packed.avail_wrap, lap_wrap(p[0].lap));
	}
	CHECK_EQ(stats()->packets, 27);
	CHECK_EQ(stats()->malformed, 0);
	CHECK(!R.vr->broken);
}

/* A full ring of multi-slot chains in one burst, the last one straddling the end. */
static void
test_deq_full_ring_wrapping_chain(void)
{
	static const uint32_t lens[] = { 12, 66 };
	uint8_t frame[66];
	struct rte_mbuf *pkts[8];
	struct posted p[3];

	CHECK(ring_setup(7, V1));
	make_frame(frame, sizeof(frame), 40);
	p[0] = tx_simple(frame, sizeof(frame));		/* slot 0 */
	p[1] = tx_post(lens, 2, frame);			/* slots 1-2 */
	CHECK_EQ(deq(pkts, 8), 2);
	CHECK(used_is(&p[0], 0));
	CHECK(used_is(&p[1], 0));
	/* 7 slots in flight: 3-4, 5-6, 0 (lap 2) ... */
	p[0] = tx_post(lens, 2, frame);
	p[1] = tx_post(lens, 2, frame);
	{
		static const uint32_t lens3[] = { 12, 30, 36 };

		p[2] = tx_post(lens3, 3, frame);	/* slots 0, 1, 2 of lap 2 */
	}
	CHECK_EQ(p[2].slot, 0);
	CHECK(!lap_wrap(p[2].lap));
	CHECK_EQ(P.inflight, 7);
	CHECK_EQ(deq(pkts, 8), 3);
	for (int i = 0; i < 3; i++) {
		CHECK(mbuf_is(pkts[i], frame, sizeof(frame)));
		CHECK(used_is(&p[i], 0));
	}
	CHECK(packed_at(3, false, 3, false));
	/* the same slots again, one lap later */
	p[0] = tx_post(lens, 2, frame);
	CHECK_EQ(p[0].slot, 3);
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(used_is(&p[0], 0));
}

/*
 * DPDK's virtio PMD sets WRITE on the entries of its TX indirect tables:
 * ignored on a TX ring, on purpose (virtqueue_packed.c). Split rings refuse
 * them (ring_split.c, bad_writable_in_indirect).
 */
static void
test_deq_indirect_writable_entries(void)
{
	uint8_t frame[88];
	struct rte_mbuf *pkts[4];
	struct posted p;

	CHECK(ring_setup(8, V1));
	make_frame(frame, sizeof(frame), 99);
	p = post1(indirect_frame_table(F_WRITE), 16, F_INDIR);
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
	CHECK(used_is(&p, 0));
	CHECK_EQ(stats()->malformed, 0);
}

/*
 * A chain that never ends (NEXT on every descriptor of the ring) breaks the
 * ring: what came before it in the burst is published, the ring stops until
 * it is set up again. The ring starts in the lap of wrap counter 0.
 */
static void
test_deq_chain_never_ends(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct dspec d[5];
	struct posted p;

	CHECK(packed_setup_base(6, V1, 0x0000));
	make_frame(frame, sizeof(frame), 60);
	/* a good chain, then six descriptors with NEXT on all of them */
	p = tx_simple(frame, sizeof(frame));
	for (int i = 0; i < 5; i++)
		d[i] = (struct dspec){ gpa(galloc(20)), 20, 0 };
	post(d, 5);
	/* the last one too, and its neighbour (the good chain's slot) keeps NEXT */
	P.desc[(p.slot + 5) % 6].flags |= F_NEXT;
	ring_snapshot();
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(mbuf_is(pkts[0], frame, 60));
	CHECK(R.vr->broken);
	CHECK_EQ(stats()->malformed, 1);
	CHECK(used_is(&p, 0));				/* published */
	CHECK(ring_unchanged());			/* the bad chain is not completed */
	CHECK(packed_at(1, false, 1, false));
	CHECK_EQ(deq(pkts, 4), 0);
	CHECK_EQ(calls(), 1);
	/* until the control thread sets the ring up again */
	ring_refresh(V1);
	CHECK(!R.vr->broken);
}

/* ==================================================================== */
/* enqueue (guest RX)                                                   */
/* ==================================================================== */

/* Indirect RX tables: entries must be writable. */
static void
test_enq_indirect(void)
{
	uint8_t frame[100], got[112] = { 0 };
	struct rte_mbuf *pkts[2];
	struct posted p[2];
	uint8_t *b1, *b2;

	CHECK(ring_setup(4, V1));
	b1 = galloc(40);
	b2 = galloc(72);
	p[0] = post_indirect((const struct dspec[]){
		{ gpa(b1), 40, F_WRITE },
		{ gpa(b2), 72, F_WRITE },
	}, 2);
	/* a read-only entry: malformed */
	p[1] = post_indirect(&(struct dspec){ gpa(galloc(200)), 200, 0 }, 1);
	make_frame(frame, sizeof(frame), 73);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	pkts[1] = mk_mbuf1(frame, sizeof(frame));
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK(used_is(&p[0], 112));
	CHECK(used_is(&p[1], 0));
	memcpy(got, b1, 40);
	memcpy(got + 40, b2, 72);
	CHECK(hdr_is(got, 12, 1));
	CHECK_MEM_EQ(got + 12, frame, sizeof(frame));
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 1);
}

/*
 * The whole ring is counted in descriptors: three chains of two fill a ring
 * of 6, and a mergeable frame larger than them all is dropped; the next one
 * takes the first chain, over its two descriptors.
 */
static void
test_enq_mrg_larger_than_ring_slots(void)
{
	static const uint32_t lens[] = { 50, 50 };
	static uint8_t big[1000];
	uint8_t small[60];
	struct rte_mbuf *pkts[2];
	struct rx_chain c[3];

	CHECK(ring_setup(6, V1 | MRG));
	for (int i = 0; i < 3; i++)
		c[i] = rx_post(lens, 2, F_WRITE);
	make_frame(big, sizeof(big), 83);
	make_frame(small, sizeof(small), 84);
	pkts[0] = mk_mbuf1(big, sizeof(big));
	pkts[1] = mk_mbuf1(small, sizeof(small));
	ring_snapshot();
	CHECK_EQ(enq(pkts, 2), 2);
	CHECK_EQ(stats()->dropped, 1);
	CHECK_EQ(stats()->packets, 1);
	CHECK(used_is(&c[0].p, 72));
	CHECK(none_used());
	CHECK(ring_unchanged());
	CHECK(hdr_is(c[0].buf[0], 12, 1));
	CHECK_MEM_EQ(c[0].buf[0] + 12, small, 38);
	CHECK_MEM_EQ(c[0].buf[1], small + 38, 22);
	CHECK_EQ(calls(), 1);
}

/* N = 5, 3 x N frames, buffers re-posted as they come back, bursts of varying sizes. */
static void
test_enq_laps(void)
{
	uint8_t frame[15][80], got[92] = { 0 };
	struct rte_mbuf *pkts[5];
	struct rx_chain c[5];
	unsigned int done = 0;

	CHECK(ring_setup(5, V1 | MRG));
	for (int i = 0; i < 15; i++)
		make_frame(frame[i], 60 + i, 90 + i);
	while (done < 15) {
		unsigned int n = 1 + done % 4;

		n = RTE_MIN(n, 15 - done);
		for (unsigned int i = 0; i < n; i++) {
			c[i] = rx_simple(92);
			pkts[i] = mk_mbuf1(frame[done + i], 60 + done + i);
		}
		CHECK_EQ(enq(pkts, (uint16_t)n), n);
		for (unsigned int i = 0; i < n; i++) {
			CHECK(used_is(&c[i].p, 12 + 60 + done + i));
			rx_read(&c[i], got, 72 + done + i);
			CHECK(hdr_is(got, 12, 1));
			CHECK_MEM_EQ(got + 12, frame[done + i], 60 + done + i);
		}
		done += n;
		CHECK(packed_at(done % 5, (done / 5) % 2 == 0, done % 5, (done / 5) % 2 == 0));
	}
	CHECK_EQ(stats()->packets, 15);
}

/* A ring of one descriptor: every chain is a lap. */
static void
test_ring_size_1(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct posted p;
	struct rx_chain c;

	CHECK(ring_setup(1, V1));
	make_frame(frame, sizeof(frame), 95);
	for (int i = 0; i < 4; i++) {
		p = tx_simple(frame, sizeof(frame));
		CHECK_EQ(p.slot, 0);
		CHECK_EQ(lap_wrap(p.lap), i % 2 == 0);
		CHECK_EQ(deq(pkts, 4), 1);
		CHECK(mbuf_is(pkts[0], frame, sizeof(frame)));
		CHECK(used_is(&p, 0));
		CHECK(packed_at(0, i % 2 == 1, 0, i % 2 == 1));
	}
	teardown();

	CHECK(ring_setup(1, V1 | MRG));
	for (int i = 0; i < 3; i++) {
		c = rx_simple(100);
		pkts[0] = mk_mbuf1(frame, sizeof(frame));
		CHECK_EQ(enq(pkts, 1), 1);
		CHECK(used_is(&c.p, 72));
		CHECK(hdr_is(c.buf[0], 12, 1));
	}
	/* a frame bigger than the one buffer: dropped, the buffer untouched */
	{
		static uint8_t big[200];

		c = rx_simple(100);
		pkts[0] = mk_mbuf1(big, sizeof(big));
		ring_snapshot();
		CHECK_EQ(enq(pkts, 1), 1);
		CHECK_EQ(stats()->dropped, 1);
		CHECK(ring_unchanged());
		pkts[0] = mk_mbuf1(frame, sizeof(frame));
		CHECK_EQ(enq(pkts, 1), 1);
		CHECK(used_is(&c.p, 72));
	}
	/* a chain with NEXT cannot end in a ring of one */
	{
		post1(gpa(galloc(100)), 100, F_WRITE | F_NEXT);
		pkts[0] = mk_mbuf1(frame, sizeof(frame));
		CHECK_EQ(enq(pkts, 1), 0);
		CHECK(R.vr->broken);
		CHECK_EQ(stats()->malformed, 1);
	}
}

/* ==================================================================== */
/* publication                                                          */
/* ==================================================================== */

/*
 * The lock-free view: chains taken and completed are invisible to the driver
 * until vhu_packed_publish(); a rewind gives them back as if never taken.
 */
static bool
take_complete(int n)
{
	static struct vhu_chain c;

	for (int i = 0; i < n; i++) {
		if (vhu_packed_take(R.vr, false, UINT64_MAX, &c) != VHU_TAKE_OK)
			return false;
		vhu_packed_complete(R.vr, c.id, c.nslots, 0);
	}
	return true;
}

static void
test_publish_inner(void)
{
	static const uint32_t lens[] = { 12, 60 };
	uint8_t frame[60];
	struct posted p[3];
	struct vhu_vq_mark mark;
	bool ok;

	CHECK(ring_setup(6, V1));
	make_frame(frame, sizeof(frame), 100);
	p[0] = tx_simple(frame, sizeof(frame));
	p[1] = tx_post(lens, 2, frame);
	p[2] = tx_simple(frame, sizeof(frame));
	ring_snapshot();

	rte_spinlock_lock(&R.vr->lock);
	CHECK_EQ(vhu_packed_available(R.vr, 32), 32);
	vhu_vq_mark(R.vr, &mark);
	ok = take_complete(3);
	rte_spinlock_unlock(&R.vr->lock);
	CHECK(ok);
	CHECK_EQ(R.vr->packed.npending, 3);
	CHECK(ring_unchanged());			/* nothing visible yet */
	CHECK(packed_at(4, true, 4, true));
	CHECK_EQ(R.vr->packed.pending[0].slot, 0);
	CHECK_EQ(R.vr->packed.pending[1].slot, 1);
	CHECK_EQ(R.vr->packed.pending[2].slot, 3);
	CHECK_EQ(R.vr->packed.pending[1].id, p[1].id);

	/* given back: as if never taken */
	rte_spinlock_lock(&R.vr->lock);
	vhu_vq_rewind(R.vr, &mark);
	vhu_packed_publish(R.vr);			/* nothing to publish: no call */
	CHECK_EQ(vhu_packed_available(R.vr, 32), 32);
	ok = take_complete(3);
	CHECK_EQ(vhu_packed_available(R.vr, 32), 0);	/* slot 4 not available */
	rte_spinlock_unlock(&R.vr->lock);
	CHECK(ok);
	CHECK(ring_unchanged());
	CHECK_EQ(calls(), 0);
	CHECK_EQ(stats()->notifications_suppressed, 0);

	rte_spinlock_lock(&R.vr->lock);
	vhu_packed_publish(R.vr);
	rte_spinlock_unlock(&R.vr->lock);
	CHECK_EQ(R.vr->packed.npending, 0);
	for (int i = 0; i < 3; i++)
		CHECK(used_is(&p[i], 0));
	CHECK(ring_unchanged());			/* the 2-chain's second slot, free slots */
	CHECK_EQ(calls(), 1);
}

#if STORE_TRACE_SUPPORTED
/*
 * Publication order, store by store: id and length of every used descriptor
 * before its flags, each flags field written once, nothing written outside
 * the used slots, and the flags of the burst's first slot last of all (the
 * driver reads in order and stops at the first slot it does not see used).
 */
static void
test_publish_order(void)
{
	static const uint32_t lens[] = { 12, 60 };
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	struct posted p[4];
	const uint16_t used_slots[] = { 6, 0, 1, 3 };	/* ring of 8 started at slot 6 */
	int flags_at[8], id_at[8], len_at[8];

	CHECK(packed_setup_base(8, V1, 0x8006));
	CHECK_EQ((uintptr_t)R.vr->packed.desc % 4096, 0);
	make_frame(frame, sizeof(frame), 101);
	p[0] = tx_post(lens, 2, frame);			/* 6-7 */
	p[1] = tx_simple(frame, sizeof(frame));		/* 0 */
	p[2] = tx_post(lens, 2, frame);			/* 1-2 */
	p[3] = tx_simple(frame, sizeof(frame));		/* 3 */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(p[i].slot, used_slots[i]);

	wt_start((uint8_t *const[]){ (uint8_t *)R.vr->packed.desc }, 1);
	uint16_t n = deq(pkts, 8);
	wt_stop();
	CHECK_EQ(n, 4);
	for (int i = 0; i < 4; i++)
		CHECK(used_is(&p[i], 0));
	CHECK_LE(wt.n, WT_MAX_STORES);

	for (int s = 0; s < 8; s++)
		flags_at[s] = id_at[s] = len_at[s] = -1;
	for (unsigned int i = 0; i < wt.n; i++) {
		unsigned int slot = wt.st[i].off / 16, field = wt.st[i].off % 16;
		bool is_used = slot == 6 || slot == 0 || slot == 1 || slot == 3;

		if (!is_used || (field != 8 && field != 12 && field != 14)) {
			fprintf(stderr, "  store %u at slot %u byte %u\n", i, slot, field);
			CHECK(false);
		}
		if (field == 14) {
			CHECK_EQ(flags_at[slot], -1);	/* once */
			flags_at[slot] = (int)i;
		} else if (field == 12) {
			id_at[slot] = (int)i;
		} else {
			len_at[slot] = (int)i;
		}
	}
	for (int i = 0; i < 4; i++) {
		int s = used_slots[i];

		CHECK_NE(flags_at[s], -1);
		CHECK(id_at[s] < flags_at[s]);
		CHECK(len_at[s] < flags_at[s]);
	}
	CHECK_EQ(flags_at[6], (int)wt.n - 1);		/* first slot of the burst: last store */
}
#else
static void
test_publish_order(void)
{
	SKIP_TEST("store tracing needs x86-64 Linux");
}
#endif

/* ==================================================================== */
/* batches: four one-descriptor chains at once                          */
/* ==================================================================== */

/*
 * How the two bursts of test_batch_*_runs end: everything used, the device
 * at slot 6 two laps on, @packets frames delivered, @malformed refused, one
 * call per burst.
 */
static void
runs_end(uint64_t packets, uint64_t malformed)
{
	CHECK(none_used());
	CHECK(packed_at(6, true, 6, true));
	CHECK_EQ(stats()->packets, packets);
	CHECK_EQ(stats()->malformed, malformed);
	CHECK_EQ(calls(), 2);
}

/*
 * A ring of 8 started at slot 6: the four from slot 6 would wrap (and the
 * memory past the ring's end looks like three more available descriptors:
 * never read as slots 8 to 10), so they go one by one; the four from slot 0
 * would be a batch but for the header of the one in slot 2, which asks for
 * GSO without a checksum: refused as on its own. Then a two-descriptor
 * chain (slots 0-1, its first descriptor as long as a frame) breaks a run,
 * and the four after it (2-5) go as a batch. Every other frame arrives, in
 * order, and the driver finds every used descriptor where it looks.
 */
static void
test_batch_deq_runs(void)
{
	static const uint32_t lens[] = { 40, 42 };
	uint8_t frame[15][70];
	struct rte_mbuf *pkts[8];
	struct posted p[8];
	uint32_t pos = 0;
	uint8_t *asks_gso;

	CHECK(packed_setup_base(8, V1, 0x8006));
	for (int i = 0; i < 15; i++)
		make_frame(frame[i], sizeof(frame[i]), 200 + i);
	/* the chain's second buffer starts as a header asking for nothing would */
	frame[10][28] = frame[10][29] = 0;
	for (int s = 8; s < 11; s++) {	/* past the end, as if available in this lap */
		pos = 0;
		packed_desc_set(P.desc, (uint32_t)s, gpa(tx_buf(82, 12, frame[14], &pos)), 82,
				F_AVAIL);
	}
	for (int i = 0; i < 8; i++) {
		if (i == 4) {
			pos = 0;
			asks_gso = tx_buf(82, 12, frame[i], &pos);
			asks_gso[1] = VIRTIO_NET_HDR_GSO_TCPV4;
			p[i] = post1(gpa(asks_gso), 82, 0);
		} else {
			p[i] = tx_simple(frame[i], sizeof(frame[i]));
		}
	}
	CHECK_EQ(p[2].slot, 0);
	CHECK_EQ(deq(pkts, 8), 7);
	for (int i = 0, k = 0; i < 8; i++) {
		if (i != 4)
			CHECK(mbuf_is(pkts[k++], frame[i], sizeof(frame[i])));
		CHECK(used_is(&p[i], 0));
	}
	CHECK(packed_at(6, false, 6, false));
	CHECK_EQ(stats()->malformed, 1);
	CHECK_EQ(stats()->dropped, 1);

	p[0] = tx_simple(frame[8], sizeof(frame[8]));	/* 6 */
	p[1] = tx_simple(frame[9], sizeof(frame[9]));	/* 7 */
	p[2] = tx_post(lens, 2, frame[10]);		/* 0-1 */
	for (int i = 3; i < 7; i++)			/* 2-5 */
		p[i] = tx_simple(frame[8 + i], sizeof(frame[8 + i]));
	CHECK_EQ(deq(pkts, 8), 7);
	for (int i = 0; i < 7; i++) {
		CHECK(mbuf_is(pkts[i], frame[8 + i], sizeof(frame[8 + i])));
		CHECK(used_is(&p[i], 0));
	}
	runs_end(14, 1);
}

/* The same runs on a guest RX ring: each frame with its header, lengths as written. */
static void
test_batch_enq_runs(void)
{
	static const uint32_t lens[] = { 100, 100 };	/* each would hold a whole frame */
	uint8_t frame[15][80], got[140];
	struct rte_mbuf *pkts[8];
	struct rx_chain c[8];

	CHECK(packed_setup_base(8, V1 | MRG, 0x8006));
	for (int i = 0; i < 15; i++)
		make_frame(frame[i], 60 + i, 300 + i);
	for (int i = 0; i < 8; i++) {
		c[i] = rx_simple(140);
		pkts[i] = mk_mbuf1(frame[i], 60 + i);
	}
	CHECK_EQ(c[2].p.slot, 0);
	CHECK_EQ(enq(pkts, 8), 8);
	for (int i = 0; i < 8; i++) {
		CHECK(used_is(&c[i].p, 12 + 60 + i));
		rx_read(&c[i], got, 12 + 60 + i);
		CHECK(hdr_is(got, 12, 1));
		CHECK_MEM_EQ(got + 12, frame[i], 60 + i);
		CHECK(rx_untouched_from(&c[i], 12 + 60 + i));
	}
	CHECK(packed_at(6, false, 6, false));

	c[0] = rx_simple(140);				/* 6 */
	c[1] = rx_simple(140);				/* 7 */
	c[2] = rx_post(lens, 2, F_WRITE);		/* 0-1 */
	for (int i = 3; i < 7; i++)			/* 2-5 */
		c[i] = rx_simple(140);
	for (int i = 0; i < 7; i++)
		pkts[i] = mk_mbuf1(frame[8 + i], 60 + 8 + i);
	CHECK_EQ(enq(pkts, 7), 7);
	for (int i = 0; i < 7; i++) {
		uint32_t len = 12 + 60 + 8 + (uint32_t)i;

		CHECK(used_is(&c[i].p, len));
		rx_read(&c[i], got, len);
		CHECK(hdr_is(got, 12, 1));
		CHECK_MEM_EQ(got + 12, frame[8 + i], len - 12);
	}
	runs_end(15, 0);
}

#if STORE_TRACE_SUPPORTED
/*
 * IN_ORDER negotiated: the chains a burst takes from a guest TX ring, in
 * batches and on their own, go back as one run, a used descriptor in the
 * first slot naming the last buffer, the other slots left as the driver
 * made them available (VIRTIO 1.2, in-order use of descriptors); each
 * burst its own run. On a guest RX ring, whose used lengths the driver
 * needs, a batch still writes four. Without IN_ORDER: one used descriptor
 * per chain (test_batch_deq_runs).
 */
static void
test_in_order_runs(void)
{
	const uint16_t used = F_AVAIL | F_USED, avail = F_AVAIL;	/* first lap */
	uint8_t frame[8][70], got[82];
	struct rte_mbuf *pkts[5];
	struct rx_chain c[4];
	struct posted p[8];

	CHECK(ring_setup(16, V1 | VHU_BIT(VIRTIO_F_IN_ORDER)));
	for (int i = 0; i < 8; i++) {
		make_frame(frame[i], sizeof(frame[i]), 800 + i);
		p[i] = tx_simple(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(deq(pkts, 5), 5);			/* a batch, then one on its own */
	for (int i = 0; i < 5; i++)
		CHECK(mbuf_is(pkts[i], frame[i], sizeof(frame[i])));
	CHECK_EQ(deq(pkts, 5), 3);
	for (int i = 0; i < 3; i++)
		CHECK(mbuf_is(pkts[i], frame[5 + i], sizeof(frame[5 + i])));
	for (int i = 0; i < 8; i++) {
		const struct vring_packed_desc *d = &P.desc[p[i].slot];

		if (i == 0 || i == 5) {
			CHECK_EQ(d->flags, used);
			CHECK_EQ(d->id, p[i == 0 ? 4 : 7].id);
			CHECK_EQ(d->len, 0);
		} else {
			CHECK_EQ(d->flags & (F_AVAIL | F_USED), avail);
		}
	}
	CHECK(packed_at(8, true, 8, true));
	teardown();

	CHECK(ring_setup(16, V1 | MRG | VHU_BIT(VIRTIO_F_IN_ORDER)));
	for (int i = 0; i < 4; i++) {
		c[i] = rx_simple(sizeof(got));
		pkts[i] = mk_mbuf1(frame[i], sizeof(frame[i]));
	}
	CHECK_EQ(enq(pkts, 4), 4);
	for (int i = 0; i < 4; i++)
		CHECK(used_is(&c[i].p, sizeof(got)));
}

/*
 * A batch's used descriptors, store by store (on a guest TX ring, then on
 * a guest RX ring): the ids and lengths of all four before any flags, each
 * flags field written once, nothing outside the four slots, and the first
 * slot's flags last of all, so the driver never finds a later slot used
 * before the first. (One by one, each slot would be whole before the next:
 * test_publish_order.)
 */
static void
batch_order_case(bool rx)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct posted p[4];
	int first_flags = -1, last_id_len = -1, flags_at[4] = { -1, -1, -1, -1 };
	uint16_t n;

	CHECK(ring_setup(8, V1));
	CHECK_EQ((uintptr_t)R.vr->packed.desc % 4096, 0);
	make_frame(frame, sizeof(frame), 102);
	for (int i = 0; i < 4; i++) {
		p[i] = rx ? rx_simple(100).p : tx_simple(frame, sizeof(frame));
		if (rx)
			pkts[i] = mk_mbuf1(frame, sizeof(frame));
	}

	wt_start((uint8_t *const[]){ (uint8_t *)R.vr->packed.desc }, 1);
	n = rx ? enq(pkts, 4) : deq(pkts, 4);
	wt_stop();
	CHECK_EQ(n, 4);
	for (int i = 0; i < 4; i++)
		CHECK(used_is(&p[i], rx ? 12 + sizeof(frame) : 0));
	CHECK_LE(wt.n, WT_MAX_STORES);

	for (unsigned int i = 0; i < wt.n; i++) {
		unsigned int slot = wt.st[i].off / 16, field = wt.st[i].off % 16;

		if (slot >= 4 || (field != 8 && field != 12 && field != 14)) {
			fprintf(stderr, "  store %u at slot %u byte %u\n", i, slot, field);
			CHECK(false);
		}
		if (field == 14) {
			CHECK_EQ(flags_at[slot], -1);	/* once */
			flags_at[slot] = (int)i;
			if (first_flags == -1)
				first_flags = (int)i;
		} else {
			last_id_len = (int)i;
		}
	}
	CHECK(last_id_len < first_flags);		/* every id and length first */
	for (int s = 1; s < 4; s++)
		CHECK(flags_at[s] != -1 && flags_at[s] < flags_at[0]);
	CHECK_EQ(flags_at[0], (int)wt.n - 1);		/* the first slot's flags last */
}

static void
test_batch_used_order(void)
{
	batch_order_case(false);
	teardown();
	batch_order_case(true);
}
#else
static void
test_batch_used_order(void)
{
	SKIP_TEST("store tracing needs x86-64 Linux");
}
#endif

/* ==================================================================== */
/* notifications                                                        */
/* ==================================================================== */

/*
 * With EVENT_IDX, DISABLE still wins over DESC (split rings differ: there
 * EVENT_IDX overrides the flag), and ENABLE asks for a call at every publish.
 */
static void
test_notify_event_idx_flags(void)
{
	CHECK(ring_setup(5, V1 | EVIDX));
	CHECK_EQ(tx_frames(1), 1);			/* the first publish calls */
	call_at(R.posted);				/* the entry about to be written */
	P.drv_ev->flags = VRING_PACKED_EVENT_FLAG_DISABLE;
	CHECK_EQ(tx_frames(1), 0);
	P.drv_ev->flags = VRING_PACKED_EVENT_FLAG_ENABLE;
	CHECK_EQ(tx_frames(1), 1);
	CHECK_EQ(tx_frames(1), 1);
	CHECK_EQ(stats()->notifications, 3);
}

/* ==================================================================== */
/* control path: base as SET/GET_VRING_BASE carry it                    */
/* ==================================================================== */

static enum vhu_dispatch
ctl_send(struct vhu_msg *m)
{
	enum vhu_dispatch d;

	vhu_ctl_lock();
	d = vhu_session_handle(&port->session, m);
	vhu_ctl_unlock();
	return d;
}

static void
msg_init(struct vhu_msg *m, uint32_t request, uint32_t size)
{
	memset(m, 0, sizeof(*m));
	m->hdr.request = request;
	m->hdr.flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY;
	m->hdr.size = size;
	for (int i = 0; i < VHU_MSG_MAX_FDS; i++)
		m->fds[i] = -1;
}

/* Sends @m and returns its reply-ack: 0 done, 1 refused, -1 no ack. */
static int
ctl_ack(struct vhu_msg *m)
{
	if (ctl_send(m) != VHU_DISPATCH_REPLY || m->hdr.size != 8)
		return -1;
	return (int)m->payload.u64;
}

static int
ctl_u64(uint32_t request, uint64_t v)
{
	struct vhu_msg m;

	msg_init(&m, request, 8);
	m.payload.u64 = v;
	return ctl_ack(&m);
}

static int
ctl_state(uint32_t request, uint32_t num)
{
	struct vhu_msg m;

	msg_init(&m, request, sizeof(struct vhu_vring_state));
	m.payload.state.index = PORT_RING;
	m.payload.state.num = num;
	return ctl_ack(&m);
}

static int
ctl_ring_fd(uint32_t request, int fd)
{
	struct vhu_msg m;

	msg_init(&m, request, 8);
	m.payload.u64 = PORT_RING;
	m.fds[0] = fd;
	m.nfds = 1;
	return ctl_ack(&m);
}

/* GET_VRING_BASE: the reply's num, or UINT64_MAX. */
static uint64_t
ctl_get_base(void)
{
	struct vhu_msg m;

	msg_init(&m, VHOST_USER_GET_VRING_BASE, sizeof(struct vhu_vring_state));
	m.hdr.flags = VHOST_USER_VERSION;
	m.payload.state.index = PORT_RING;
	if (ctl_send(&m) != VHU_DISPATCH_REPLY || m.hdr.size != sizeof(struct vhu_vring_state))
		return UINT64_MAX;
	return m.payload.state.num;
}

static int
ctl_kick(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		die("eventfd");
	return ctl_ring_fd(VHOST_USER_SET_VRING_KICK, fd);
}

/*
 * A real port (listening on a socket nobody connects to) set up the way a
 * front end does it, messages handed straight to the dispatcher: features
 * (packed), reply-ack, memory, ring @size, addresses, base @base (when
 * @send_base), call, kick, enable. False when a step was refused.
 */
static bool
port_setup(uint32_t size, uint64_t features, bool send_base, uint32_t base)
{
	struct vhu_port_config cfg = { .name = "unit-port", .queue_pairs = 1 };
	struct vhu_vring_addr_config addr = ring_memory(size, features, packed_start(size, base));
	char path[128];
	struct vhu_msg m;

	snprintf(sockdir, sizeof(sockdir), "/tmp/vhu-unit-packed-XXXXXX");
	if (mkdtemp(sockdir) == NULL)
		die("mkdtemp");
	snprintf(path, sizeof(path), "%s/sock", sockdir);
	cfg.socket_path = path;
	port = vhu_port_create(&cfg);
	if (port == NULL)
		die("vhu_port_create");
	R.vr = vhu_port_vring(port, PORT_RING);
	G.vr = R.vr;

	if (ctl_u64(VHOST_USER_SET_PROTOCOL_FEATURES,
		    VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)) != 0)
		return false;
	if (ctl_u64(VHOST_USER_SET_FEATURES,
		    features | PK | VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)) != 0)
		return false;
	msg_init(&m, VHOST_USER_SET_MEM_TABLE, 8 + 2 * sizeof(struct vhu_mem_region_desc));
	m.payload.memory.nregions = 2;
	memcpy(m.payload.memory.regions, guest_regions, sizeof(guest_regions));
	m.fds[0] = xdup(G.memfd);
	m.fds[1] = xdup(G.memfd2);
	m.nfds = 2;
	if (ctl_ack(&m) != 0)
		return false;
	if (ctl_state(VHOST_USER_SET_VRING_NUM, size) != 0)
		return false;
	msg_init(&m, VHOST_USER_SET_VRING_ADDR, sizeof(struct vhu_vring_addr));
	m.payload.addr.index = PORT_RING;
	m.payload.addr.desc_user_addr = addr.desc;
	m.payload.addr.avail_user_addr = addr.avail;
	m.payload.addr.used_user_addr = addr.used;
	if (ctl_ack(&m) != 0)
		return false;
	if (send_base && ctl_state(VHOST_USER_SET_VRING_BASE, base) != 0)
		return false;
	if (ctl_ring_fd(VHOST_USER_SET_VRING_CALL, xdup(G.callfd)) != 0)
		return false;
	if (ctl_kick() != 0)
		return false;
	if (ctl_state(VHOST_USER_SET_VRING_ENABLE, 1) != 0)
		return false;
	return R.vr->ready;
}

static void
port_teardown(void)
{
	vhu_ctl_lock();
	vhu_session_end(&port->session);	/* drops memory, closes the ring fds */
	EXPECT_NULL(port->session.mem);
	vhu_ctl_unlock();
	vhu_port_destroy(port);
	port = NULL;
	close(G.callfd);
	rmdir(sockdir);
}

/*
 * SET_VRING_BASE with the 16-bit packed base (what virtio-user sends);
 * GET_VRING_BASE answers slot and wrap counter of the next available
 * descriptor in bits 0-15 and of the next used one in bits 16-31, and stops
 * the ring; a kick fd starts it again where it was.
 */
static void
test_ctl_base(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	struct posted p[5];
	uint64_t b;

	CHECK(port_setup(5, V1, true, 0x0003));
	CHECK(packed_at(3, false, 3, false));
	CHECK_EQ(P.dev_ev->flags, VRING_PACKED_EVENT_FLAG_DISABLE);
	make_frame(frame, sizeof(frame), 120);
	for (int i = 0; i < 4; i++)			/* slots 3, 4 | 0, 1 */
		p[i] = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 8), 4);
	for (int i = 0; i < 4; i++)
		CHECK(used_is(&p[i], 0));
	{
		static const uint32_t lens[] = { 12, 60 };

		p[4] = tx_post(lens, 2, frame);		/* slots 2-3 */
	}
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(used_is(&p[4], 0));
	CHECK_EQ(calls(), 2);

	b = ctl_get_base();
	CHECK_EQ(b, 0x80048004);			/* slot 4 wrap 1, both */
	CHECK(!R.vr->ready);
	p[0] = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 8), 0);

	/* started again without a new base: where it stopped */
	CHECK_EQ(ctl_kick(), 0);
	CHECK(R.vr->ready);
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(used_is(&p[0], 0));
	CHECK_EQ(ctl_get_base(), 0x00000000);		/* slot 0 wrap 0, both */

	/* with the 16-bit base of where the driver is */
	CHECK_EQ(ctl_state(VHOST_USER_SET_VRING_BASE, 0x0000), 0);
	CHECK_EQ(ctl_kick(), 0);
	CHECK(packed_at(0, false, 0, false));
	p[0] = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 8), 1);
	CHECK(used_is(&p[0], 0));

	/* a base beyond the ring: the ring does not start */
	CHECK_EQ(ctl_get_base(), 0x00010001);
	CHECK_EQ(ctl_state(VHOST_USER_SET_VRING_BASE, 0x8005), 0);
	CHECK_EQ(ctl_kick(), 0);
	CHECK(!R.vr->ready);
	CHECK(R.vr->broken);
}

/* ==================================================================== */
/* defects found while writing these tests (fixed)                      */
/* ==================================================================== */

/*
 * BUG 1 (fixed; session.c, h_set_vring_base, and vring_ctl.c, restart_indices):
 * a packed ring started without SET_VRING_BASE began with wrap counters 0
 * instead of 1, and QEMU sends the packed ring base as
 * 32 bits, next available slot + wrap in bits 0-15 and next used slot + wrap
 * in bits 16-31 (virtio_queue_packed_get_last_avail_idx(): avail | used << 16)
 * -- exactly what this library's own GET_VRING_BASE answers, and what QEMU
 * gives back at the next start. h_set_vring_base refuses any value above
 * 0xffff, so with QEMU a packed ring never starts: from the very first
 * start (a fresh queue has both wrap counters 1: 0x80008000), and after
 * every stop/start. virtio-user only sends 0x8000, hence the e2e tests pass.
 */
static void
test_bug_ctl_set_base_32bit(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[4];
	struct posted p;

	/* a fresh queue as QEMU starts it */
	CHECK(port_setup(8, V1, false, 0x8000));
	CHECK_EQ(ctl_get_base(), 0x80008000);		/* the library's own encoding */
	CHECK_EQ(ctl_state(VHOST_USER_SET_VRING_BASE, 0x80008000), 0);	/* was refused */
	CHECK_EQ(ctl_kick(), 0);
	CHECK(packed_at(0, true, 0, true));
	make_frame(frame, sizeof(frame), 121);
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(deq(pkts, 4), 1);
	CHECK(used_is(&p, 0));
	/* stop, and start again with what GET_VRING_BASE said */
	CHECK_EQ(ctl_get_base(), 0x80018001);
	CHECK_EQ(ctl_state(VHOST_USER_SET_VRING_BASE, 0x80018001), 0);
	CHECK_EQ(ctl_kick(), 0);
	CHECK(packed_at(1, true, 1, true));
}

/*
 * BUG 2 (fixed; virtqueue_packed.c, vhu_packed_take): nothing bounds the chains
 * taken in one burst by the size of vr->pending (one ring's worth). Slots
 * taken in a burst only become the driver's again at publish, but a guest
 * can make a slot available again before that: here its RX buffer is its
 * own descriptor ring, so the frame the device copies in rewrites slot 0 as
 * available for the next lap, and the next frame of the same burst takes
 * slot 0 again: vhu_packed_complete() writes vr->pending[1] of a 1-entry
 * array (heap overflow; a second vCPU rewriting flags does the same with
 * any ring size). Run in a child process: under ASan it aborts there.
 */
static void
bug_pending_overflow_body(void)
{
	static const uint8_t frame[4] = { 0x00, 0x00, F_WRITE, F_USED >> 8 };	/* id 0, lap-0 flags */
	struct rte_mbuf *pkts[2];

	CHECK(ring_setup(1, V1));
	packed_post_id(&(struct dspec){ gpa(P.desc), 16, F_WRITE }, 1, 0);
	pkts[0] = mk_mbuf1(frame, sizeof(frame));
	pkts[1] = mk_mbuf1(frame, sizeof(frame));
	/* the second frame must wait for a slot given back by a publish */
	EXPECT_EQ(enq(pkts, 2), 1);			/* was 2, pending[] overflowed */
	EXPECT_EQ(stats()->malformed, 0);
}

static void
test_bug_pending_overflow(void)
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		check_failures = 0;
		bug_pending_overflow_body();
		teardown();
		fflush(stderr);
		_exit(check_failures == 0 ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "  child %s %d\n", WIFEXITED(status) ? "exited with" : "killed by signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		CHECK(!"the burst in the child failed (see above)");
	}
}

/*
 * BUG 3 (fixed; vring_ctl.c, refresh): the check that a packed ring's
 * position lies inside the ring is made only when the ring starts. A front
 * end that shrinks a running ring (SET_VRING_NUM, or moves it with
 * SET_VRING_ADDR) leaves it at a slot beyond its end: the data path then
 * reads, takes and completes (writes) descriptors outside the ring area the
 * library checked against the memory table -- past the end of the guest
 * region if the ring sits at its end. Split rings mask their indices and
 * are not affected. Fixed twice over: every refresh checks the position,
 * and SET_VRING_NUM with another size is now refused on a running ring.
 */
static void
test_bug_resize_running(void)
{
	uint8_t frame[60];
	struct rte_mbuf *pkts[8];
	struct posted p;

	CHECK(port_setup(8, V1, true, 0x8000));
	make_frame(frame, sizeof(frame), 122);
	for (int i = 0; i < 6; i++) {
		p = tx_simple(frame, sizeof(frame));
		CHECK_EQ(deq(pkts, 8), 1);
		CHECK(used_is(&p, 0));
	}
	CHECK(packed_at(6, true, 6, true));
	/* a good-looking chain at slot 6, which will lie past the end of the ring */
	p = tx_simple(frame, sizeof(frame));
	CHECK_EQ(p.slot, 6);
	ring_snapshot();
	/* refused now: a running ring keeps its size */
	CHECK(ctl_state(VHOST_USER_SET_VRING_NUM, 4) != 0);
	CHECK_EQ(R.vr->size, 8);
	CHECK(ring_unchanged());
	/* the ring must not touch slot 6 of a 4-entry ring (stopped, or broken) */
	CHECK_EQ(deq(pkts, 8), 1);			/* the 8-entry ring goes on */
	CHECK(used_is(&p, 0));
}

/* ==================================================================== */

int
main(int argc __rte_unused, char **argv)
{
	if (!unit_start(argv[0]))
		return 2;
	ring_use(&packed_ops);
	check_after_each = teardown;

	RUN_TEST(test_refresh_areas);
	RUN_TEST(test_base_slot3_wrap0);
	RUN_TEST(test_base_edges);
	RUN_TEST(test_base_restart);
	RUN_TEST(test_driver_lays_out_chains);

	RUN_TEST(test_deq_laps);
	RUN_TEST(test_deq_full_ring_wrapping_chain);
	RUN_TEST(test_deq_indirect_writable_entries);
	RUN_TEST(test_deq_chain_never_ends);

	RUN_TEST(test_enq_indirect);
	RUN_TEST(test_enq_mrg_larger_than_ring_slots);
	RUN_TEST(test_enq_laps);
	RUN_TEST(test_ring_size_1);

	RUN_TEST(test_publish_inner);
	RUN_TEST(test_publish_order);

	RUN_TEST(test_batch_deq_runs);
	RUN_TEST(test_batch_enq_runs);
	RUN_TEST(test_batch_used_order);
	RUN_TEST(test_in_order_runs);

	RUN_TEST(test_notify_event_idx_flags);

	RUN_TEST(test_ctl_base);

	RUN_TEST(test_bug_ctl_set_base_32bit);
	RUN_TEST(test_bug_pending_overflow);
	RUN_TEST(test_bug_resize_running);

	return unit_finish(check_summary("test_packed"));
}
