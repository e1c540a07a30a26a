/* SPDX-License-Identifier: BSD-3-Clause */
/* mbufs -> guest RX ring (the ethdev TX direction). */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include <rte_mbuf.h>

#include "frame_copy.h"
#include "guest_copy.h"
#include "netoffload.h"
#include "enqueue.h"
#include "segment.h"
#include "vhu.h"
#include "virtqueue.h"

enum enqueue_result {
	ENQ_DELIVERED,
	ENQ_DROPPED,	/* consumed but not delivered: it cannot fit */
	ENQ_NO_ROOM,	/* not consumed: the guest has no buffers for it now */
	ENQ_SEGMENTED,	/* consumed as segments, counted one by one */
	ENQ_MISS,	/* not consumed: a buffer's IOTLB translation is asked for */
};

#define OFFLOAD_REQUESTS (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG | RTE_MBUF_F_TX_L4_MASK | \
			  RTE_MBUF_F_TX_IP_CKSUM)

/* Where the source mbuf chain is up to. */
struct mbuf_reader {
	const struct rte_mbuf *seg;
	uint32_t off;
};

/* Copies as much of the rest of the frame as fits in @cur; returns bytes copied. */
static uint32_t
copy_frame(struct mbuf_reader *rd, struct vhu_cursor *cur)
{
	uint32_t copied = 0;

	while (rd->seg != NULL) {
		uint32_t left = rd->seg->data_len - rd->off;
		uint32_t n = vhu_cursor_write(cur, rte_pktmbuf_mtod_offset(rd->seg, const void *,
									   rd->off), left);

		copied += n;
		rd->off += n;
		if (n < left)
			break;	/* guest buffer full */
		rd->seg = rd->seg->next;
		rd->off = 0;
	}
	return copied;
}

/* Without mergeable buffers one chain holds the header and the whole frame. */
static enum enqueue_result
enqueue_one_chain(struct vhu_vring *vr, struct rte_mbuf *m,
		  const struct virtio_net_hdr_mrg_rxbuf *hdr, struct vhu_chain *c)
{
	struct mbuf_reader rd = { .seg = m, .off = 0 };
	uint64_t need = vr->neg.hdr_len + (uint64_t)m->pkt_len;
	struct vhu_cursor cur;
	struct vhu_vq_mark mark;

	vhu_vq_mark(vr, &mark);
	switch (vhu_vq_take(vr, true, need, c)) {
	case VHU_TAKE_EMPTY:
	case VHU_TAKE_BROKEN:
		return ENQ_NO_ROOM;
	case VHU_TAKE_MISS:
		return ENQ_MISS;
	case VHU_TAKE_MALFORMED:
		vhu_vq_complete(vr, c, 0);
		return ENQ_DROPPED;
	case VHU_TAKE_OK:
		break;
	}
	if (c->len < need) {
		/* Leave the buffer to the guest; this frame is too big for its buffers. */
		vhu_vq_rewind(vr, &mark);
		return ENQ_DROPPED;
	}
	vhu_cursor_init(&cur, c->iov, c->niov);
	vhu_cursor_write(&cur, hdr, vr->neg.hdr_len);
	copy_frame(&rd, &cur);
	vhu_vring_log_chain(vr, c, need);
	vhu_vq_complete(vr, c, (uint32_t)need);
	return ENQ_DELIVERED;
}

/*
 * With mergeable buffers the frame spreads over as many chains as it needs;
 * the header @hdr goes in the first one, with num_buffers saying how many. If the guest runs out of
 * buffers half-way, everything taken for this frame is given back, unless
 * the frame took the whole ring: then it can never fit and is dropped. A
 * malformed chain drops the frame, and every chain it took goes back to the
 * guest empty.
 */
static enum enqueue_result
enqueue_mergeable(struct vhu_vring *vr, struct rte_mbuf *m,
		  const struct virtio_net_hdr_mrg_rxbuf *hdr, struct vhu_chain *c)
{
	struct mbuf_reader rd = { .seg = m, .off = 0 };
	uint64_t left = vr->neg.hdr_len + (uint64_t)m->pkt_len;
	uint8_t *num_buffers[2] = { NULL, NULL };
	uint64_t num_buffers_gpa[2] = { 0, 0 };
	uint16_t nbufs = 0;
	struct vhu_vq_mark mark;

	vhu_vq_mark(vr, &mark);
	while (left > 0) {
		struct vhu_cursor cur;
		uint32_t written = 0;
		enum vhu_take t = vhu_vq_take(vr, true, left, c);

		if (t == VHU_TAKE_MISS) {
			vhu_vq_rewind(vr, &mark);
			return ENQ_MISS;
		}
		if (t == VHU_TAKE_EMPTY || t == VHU_TAKE_BROKEN) {
			bool whole_ring = vhu_vq_slots_since(vr, &mark) >= vr->size;

			vhu_vq_rewind(vr, &mark);
			return whole_ring ? ENQ_DROPPED : ENQ_NO_ROOM;
		}
		if (t == VHU_TAKE_OK && nbufs == 0 && c->len < vr->neg.hdr_len) {
			vhu_vring_bad_input(vr, "chain %u: %" PRIu64 " bytes, too short for the virtio-net header",
					      c->id, c->len);
			t = VHU_TAKE_MALFORMED;
		}
		if (t == VHU_TAKE_MALFORMED) {
			vhu_vq_complete(vr, c, 0);
			vhu_vq_discard_since(vr, &mark);
			return ENQ_DROPPED;
		}
		vhu_cursor_init(&cur, c->iov, c->niov);
		if (nbufs == 0) {
			/*
			 * num_buffers is known only at the end: remember where
			 * its two bytes land (they may sit in different pieces).
			 */
			vhu_cursor_write(&cur, hdr, offsetof(struct virtio_net_hdr_mrg_rxbuf,
							     num_buffers));
			for (int b = 0; b < 2; b++) {
				num_buffers[b] = vhu_cursor_ptr(&cur);
				num_buffers_gpa[b] = cur.iov[cur.i].guest_phys_addr + cur.off;
				vhu_cursor_advance(&cur, 1);
			}
			written = vr->neg.hdr_len;
		}
		written += copy_frame(&rd, &cur);
		vhu_vring_log_chain(vr, c, written);
		vhu_vq_complete(vr, c, written);
		left -= written;
		nbufs++;
	}
	num_buffers[0][0] = (uint8_t)(nbufs & 0xff);
	num_buffers[1][0] = (uint8_t)(nbufs >> 8);
	/* Written after its chain was marked: marked again (a mark precedes no store). */
	for (int b = 0; b < 2; b++)
		vhu_vring_log_range(vr, num_buffers_gpa[b], 1);
	return ENQ_DELIVERED;
}

/* The header @hdr at the start of guest buffer @piece, as long as negotiated. */
static __rte_always_inline void
put_header(const struct vhu_vring *vr, uint8_t *piece, const struct virtio_net_hdr_mrg_rxbuf *hdr)
{
	/* Constant sizes: the two header layouts, each copied inline. */
	if (vr->neg.hdr_len == sizeof(*hdr))
		memcpy(piece, hdr, sizeof(*hdr));
	else
		memcpy(piece, &hdr->hdr, sizeof(hdr->hdr));
}

/* One frame with its header, whichever way the guest takes buffers. */
static enum enqueue_result
enqueue_frame(struct vhu_vring *vr, struct rte_mbuf *m, struct vhu_chain *c)
{
	struct virtio_net_hdr_mrg_rxbuf hdr = { .num_buffers = 1 };

	if ((m->ol_flags & OFFLOAD_REQUESTS) && !vhu_offload_to_guest(vr, m, &hdr.hdr))
		return ENQ_DROPPED;
	if (vhu_vq_take_one(vr, true, vr->neg.hdr_len + m->pkt_len, c)) {
		/* Into one guest buffer that holds it all (num_buffers 1). */
		uint8_t *piece = c->iov[0].addr;
		uint32_t len = vr->neg.hdr_len + m->pkt_len;
		uint32_t off = vr->neg.hdr_len;

		put_header(vr, piece, &hdr);
		if (likely(m->next == NULL)) {
			vhu_copy(piece + off, rte_pktmbuf_mtod(m, const void *), m->pkt_len);
			off = len;
		} else {
			/* Segments as far as pkt_len says, whatever their data_len add up to. */
			for (const struct rte_mbuf *seg = m; seg != NULL && off < len;
			     seg = seg->next) {
				uint32_t n = RTE_MIN((uint32_t)seg->data_len, len - off);

				vhu_copy(piece + off, rte_pktmbuf_mtod(seg, const void *), n);
				off += n;
			}
		}
		if (vhu_demote_wanted())
			vhu_demote_line(piece);
		vhu_vring_log_chain(vr, c, off);
		vhu_vq_complete(vr, c, off);
		return ENQ_DELIVERED;
	}
	return vr->neg.mrg_rxbuf ? enqueue_mergeable(vr, m, &hdr, c) : enqueue_one_chain(vr, m, &hdr, c);
}

/*
 * Four frames at once (virtqueue.h: a batch; @packed: the ring's layout):
 * each one mbuf asking for no offload, into a one-descriptor chain that
 * holds it with its header (num_buffers 1), as enqueue_frame() would put
 * it. Their checks come before anything is taken: false, nothing taken,
 * when one does not pass, and enqueue_frame() handles them one by one.
 */
static __rte_always_inline bool
enqueue_batch(struct vhu_vring *vr, const bool packed, struct rte_mbuf **m,
	      struct vhu_frame_tally *t)
{
	static const struct virtio_net_hdr_mrg_rxbuf hdr = { .num_buffers = 1 };
	const uint16_t hdr_len = vr->neg.hdr_len;
	uint32_t len[VHU_BATCH], frame_len[VHU_BATCH];
	const uint8_t *frame[VHU_BATCH];
	struct vhu_batch b;

	/* (a frame shorter than an address is counted as on its own: not in a batch) */
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		if (m[k]->next != NULL || (m[k]->ol_flags & OFFLOAD_REQUESTS) ||
		    m[k]->data_len < RTE_ETHER_ADDR_LEN)
			return false;
		frame_len[k] = m[k]->pkt_len;
		len[k] = hdr_len + frame_len[k];
		frame[k] = rte_pktmbuf_mtod(m[k], const uint8_t *);
	}
	if (!vhu_vq_batch_peek(vr, packed, true, hdr_len, &b))
		return false;
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++)
		if (b.len[k] < len[k])
			return false;
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		put_header(vr, b.addr[k], &hdr);
		vhu_copy(b.addr[k] + hdr_len, frame[k], frame_len[k]);
		vhu_vring_log_range(vr, b.gpa[k], len[k]);
	}
	if (vhu_demote_wanted()) {
		VHU_BATCH_UNROLL
		for (unsigned int k = 0; k < VHU_BATCH; k++)
			vhu_demote_line(b.addr[k]);
	}
	vhu_vq_batch_complete(vr, packed, &b, len);
	vhu_frame_tally_four(t, frame_len, frame);
	return true;
}

/*
 * A TSO or UFO frame for a guest that cannot take it whole: cut it in
 * software and deliver the segments. Segments that find no room once some went through
 * are dropped (TCP recovers); with no room at all the frame stays the caller's.
 */
static enum enqueue_result
enqueue_segments(struct vhu_vring *vr, struct rte_mbuf *m, struct vhu_chain *c,
		 struct vhu_frame_tally *t)
{
	struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	unsigned int n = vhu_segment_for_guest(vr, m, segs);
	unsigned int done = 0;
	enum enqueue_result r = ENQ_SEGMENTED;

	if (n == 0)
		return ENQ_DROPPED;
	for (; done < n; done++) {
		enum enqueue_result s = enqueue_frame(vr, segs[done], c);

		if (s == ENQ_NO_ROOM || s == ENQ_MISS) {
			if (done == 0)
				r = s;
			else
				VHU_COUNT(vr->stats.dropped, n - done);
			break;
		}
		if (s == ENQ_DELIVERED)
			vhu_frame_tally_mbuf(t, segs[done]);
		else
			VHU_COUNT(vr->stats.dropped, 1);
	}
	rte_pktmbuf_free_bulk(segs, n);
	return r;
}

/* One frame, cut into segments if the guest needs it, and counted (in @t if delivered). */
static __rte_always_inline enum enqueue_result
enqueue_counted(struct vhu_vring *vr, struct rte_mbuf *m, struct vhu_chain *c,
		struct vhu_frame_tally *t)
{
	enum enqueue_result r = vhu_segment_needed_for_guest(vr, m) ?
				enqueue_segments(vr, m, c, t) : enqueue_frame(vr, m, c);

	if (r == ENQ_DROPPED)
		VHU_COUNT(vr->stats.dropped, 1);
	else if (r == ENQ_DELIVERED)
		vhu_frame_tally_mbuf(t, m);
	return r;
}

/* Frames waiting for a translation go first, in order: whether all went. */
static __rte_noinline bool
enqueue_waiting(struct vhu_vring *vr, struct vhu_chain *c, struct vhu_frame_tally *t)
{
	struct vhu_rx_pending *w = &vr->rx_pending;

	while (vr->rx_pending_count > 0) {
		struct rte_mbuf *m = w->mbufs[w->head];
		enum enqueue_result r = enqueue_counted(vr, m, c, t);

		if (r == ENQ_MISS)
			vhu_vq_ask_ahead(vr, true, VHU_ASK_AHEAD_CHAINS);
		if (r == ENQ_NO_ROOM || r == ENQ_MISS)
			return false;
		rte_pktmbuf_free(m);	/* our reference */
		w->head++;
		vr->rx_pending_count--;
	}
	w->head = 0;
	return true;
}

/*
 * @pkts join the frames waiting for a translation, as many as there is room
 * for; returns how many. We keep a reference to every segment of each: the
 * caller frees what we consumed.
 */
static uint16_t
hold(struct vhu_vring *vr, struct rte_mbuf **pkts, uint16_t count)
{
	struct vhu_rx_pending *w = &vr->rx_pending;
	uint16_t n = RTE_MIN(count, (uint16_t)(VHU_GSO_MAX_SEGS - vr->rx_pending_count));

	memmove(w->mbufs, &w->mbufs[w->head], vr->rx_pending_count * sizeof(w->mbufs[0]));
	w->head = 0;
	for (uint16_t i = 0; i < n; i++) {
		for (struct rte_mbuf *seg = pkts[i]; seg != NULL; seg = seg->next)
			rte_mbuf_refcnt_update(seg, 1);
		w->mbufs[vr->rx_pending_count++] = pkts[i];
	}
	return n;
}

/*
 * @pkts into the ring; with a vIOMMU, those from the first whose buffer
 * misses a translation wait for it (they count as consumed). Returns how
 * many were consumed. With @batching (rings without a vIOMMU) a run of
 * four frames enqueue_batch() takes goes at once. Instantiated for each
 * layout (@packed) with batches and once without, so that neither pays for
 * the other; the work per frame is out of line (enqueue_frame()), so the
 * copies of the loop are small.
 */
static __rte_always_inline uint16_t
enqueue_frames(struct vhu_vring *vr, struct rte_mbuf **pkts, uint16_t count, struct vhu_chain *c,
	       struct vhu_frame_tally *t, const bool batching, const bool packed)
{
	uint16_t consumed = 0;

	if (unlikely(vr->rx_pending_count > 0) && !enqueue_waiting(vr, c, t))
		return hold(vr, pkts, count);
	while (consumed < count) {
		if (batching && (uint16_t)(count - consumed) >= VHU_BATCH &&
		    enqueue_batch(vr, packed, &pkts[consumed], t)) {
			consumed += VHU_BATCH;
			continue;
		}
		enum enqueue_result r = enqueue_counted(vr, pkts[consumed], c, t);

		if (r == ENQ_MISS) {
			vhu_vq_ask_ahead(vr, true, VHU_ASK_AHEAD_CHAINS);
			return consumed + hold(vr, &pkts[consumed], count - consumed);
		}
		if (r == ENQ_NO_ROOM)
			break;
		consumed++;
	}
	return consumed;
}

uint16_t
vhu_enqueue_burst(struct vhu_vring *vr, struct rte_mbuf **pkts, uint16_t count)
{
	/* One chain at a time: the burst loop keeps nothing per chain. */
	struct vhu_chain chain;
	struct vhu_vq_mark burst_start;
	struct vhu_frame_tally t;
	uint16_t consumed = 0;

	if (!rte_spinlock_trylock(&vr->lock)) {
		/*
		 * Behind a vIOMMU the control thread takes every ring's lock
		 * for each IOTLB message, often: wait rather than bounce frames.
		 */
		if (!vr->iommu)
			return 0;
		rte_spinlock_lock(&vr->lock);
	}
	if (!vr->ready || vr->broken)
		goto out;
	if (vhu_vq_available(vr, UINT16_MAX) == 0) {
		/* frames already waiting keep their order */
		if (unlikely(vr->rx_pending_count > 0))
			consumed = hold(vr, pkts, count);
		goto out;
	}
	vhu_vq_mark(vr, &burst_start);
	vhu_frame_tally_init(&t);
	/* Behind a vIOMMU batches never form (virtqueue.h): not tried. */
	if (vr->iotlb != NULL)
		consumed = enqueue_frames(vr, pkts, count, &chain, &t, false, false);
	else if (vr->neg.packed)
		consumed = enqueue_frames(vr, pkts, count, &chain, &t, true, true);
	else
		consumed = enqueue_frames(vr, pkts, count, &chain, &t, true, false);
	vhu_vring_tally_flush(vr, &t);
	if (vhu_vq_completed_since(vr, &burst_start))
		vhu_vq_publish(vr);
out:
	rte_spinlock_unlock(&vr->lock);
	return consumed;
}

void
vhu_enqueue_waiting_locked(struct vhu_vring *vr)
{
	struct vhu_chain chain;
	struct vhu_vq_mark start;
	struct vhu_frame_tally t;

	if (vr->rx_pending_count == 0 || !vr->ready || vr->broken ||
	    vhu_vq_available(vr, UINT16_MAX) == 0)
		return;
	vhu_vq_mark(vr, &start);
	vhu_frame_tally_init(&t);
	enqueue_waiting(vr, &chain, &t);
	vhu_vring_tally_flush(vr, &t);
	if (vhu_vq_completed_since(vr, &start))
		vhu_vq_publish(vr);
}
