/* SPDX-License-Identifier: BSD-3-Clause */
/* Guest TX ring -> mbufs (the ethdev RX direction). */
#include <inttypes.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "frame_copy.h"
#include "guest_copy.h"
#include "netoffload.h"
#include "rxbuf.h"
#include "segment.h"
#include "vhu.h"
#include "virtqueue.h"
#include "zerocopy.h"

/* Length of the frame in @c after its virtio-net header; false (counted) if it is not a frame. */
static bool
frame_length(struct vhu_vring *vr, const struct vhu_chain *c, uint64_t *frame_len)
{
	if (c->len < vr->neg.hdr_len + (uint64_t)RTE_ETHER_HDR_LEN) {
		vhu_vring_bad_input(vr, "chain %u: %" PRIu64 " bytes, too short for a %u-byte header and an Ethernet frame",
				      c->id, c->len, vr->neg.hdr_len);
		return false;
	}
	*frame_len = c->len - vr->neg.hdr_len;
	if (*frame_len > VHU_MAX_FRAME_LEN) {
		vhu_vring_bad_input(vr, "chain %u: frame longer than %u bytes", c->id,
				      VHU_MAX_FRAME_LEN);
		return false;
	}
	return true;
}

/*
 * Copies @len more bytes of the frame at @cur onto the end of @m, chaining
 * more mbufs from @mp when it does not fit. False when mbufs ran out; @m may
 * then hold extra segments.
 */
static bool
copy_to_mbuf(struct vhu_vring *vr, struct vhu_cursor *cur, uint64_t len, struct rte_mbuf *m,
	     struct rte_mempool *mp)
{
	struct rte_mbuf *seg = rte_pktmbuf_lastseg(m);

	while (len > 0) {
		uint32_t room = rte_pktmbuf_tailroom(seg);

		if (room == 0) {
			struct rte_mbuf *next = rte_pktmbuf_alloc(mp);

			if (next == NULL) {
				VHU_COUNT(vr->stats.alloc_failed, 1);
				return false;
			}
			seg->next = next;
			m->nb_segs++;
			seg = next;
			continue;
		}
		uint32_t n = (uint32_t)RTE_MIN((uint64_t)room, len);

		vhu_cursor_read(cur, rte_pktmbuf_mtod_offset(seg, void *, seg->data_len), n);
		seg->data_len += n;
		m->pkt_len += n;
		len -= n;
	}
	return true;
}

/*
 * Zero-copy: the @len bytes left at @cur join @m as external buffers in
 * guest memory, one mbuf per piece, and the chain is held until they are all
 * freed. False, with nothing changed, when that cannot be done (the ring
 * holds all it may, a piece too long for one mbuf, no mbufs): the caller
 * copies instead.
 */
static bool
attach_to_mbuf(struct vhu_vring *vr, const struct vhu_chain *c, const struct vhu_cursor *cur,
	       uint64_t len, struct rte_mbuf *m, struct rte_mempool *mp)
{
	struct rte_mbuf *segs[VHU_CHAIN_MAX_IOV];
	const bool iova_is_va = rte_eal_iova_mode() == RTE_IOVA_VA;
	struct vhu_zc_slot *slot;
	uint32_t nsegs = 0;
	uint64_t left = len;

	for (uint32_t i = cur->i, off = cur->off; left > 0 && i < cur->niov; i++, off = 0) {
		uint64_t n = RTE_MIN(left, (uint64_t)cur->iov[i].len - off);

		if (n > UINT16_MAX)
			return false;
		left -= n;
		nsegs++;
	}
	if (nsegs == 1)		/* the common case, without the bulk call's set-up */
		segs[0] = rte_pktmbuf_alloc(mp);
	if (nsegs == 0 || (nsegs == 1 ? segs[0] == NULL : rte_pktmbuf_alloc_bulk(mp, segs, nsegs) != 0))
		return false;
	slot = vhu_zc_hold(vr, c, (uint16_t)nsegs);
	if (slot == NULL) {
		rte_pktmbuf_free_bulk(segs, nsegs);
		return false;
	}
	struct rte_mbuf *last = rte_pktmbuf_lastseg(m);

	left = len;
	for (uint32_t k = 0, i = cur->i, off = cur->off; k < nsegs; k++, i++, off = 0) {
		uint8_t *addr = cur->iov[i].addr + off;
		uint16_t n = (uint16_t)RTE_MIN(left, (uint64_t)cur->iov[i].len - off);

		rte_pktmbuf_attach_extbuf(segs[k], addr,
					  iova_is_va ? (rte_iova_t)(uintptr_t)addr : RTE_BAD_IOVA,
					  n, &slot->shinfo);
		segs[k]->data_len = n;
		last->next = segs[k];
		last = segs[k];
		left -= n;
	}
	m->nb_segs += nsegs;
	m->pkt_len += len;
	VHU_COUNT(vr->stats.zero_copy, 1);
	return true;
}

/*
 * Zero-copy is for big frames whose bytes past the first mbuf nobody writes:
 * a checksum to finish must lie in the part we copy.
 */
static __rte_always_inline bool
zero_copy_candidate(const struct vhu_vring *vr, const struct virtio_net_hdr *h,
		    uint64_t frame_len)
{
	return vr->zc != NULL && frame_len >= vr->zc_threshold && frame_len > VHU_ZC_HEAD_BYTES &&
	       vhu_rxbuf_chains(vr) &&
	       (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) ||
		(uint32_t)h->csum_start + h->csum_offset + 2 <= VHU_ZC_HEAD_BYTES);
}

/*
 * The frame in @c, after its virtio-net header, into @m: copied, or with
 * zero-copy its head copied and the rest attached (*@held: the chain is
 * given back when the mbufs are freed, not now), and the header applied.
 * VHU_RX_DROP when the chain is not a frame (counted), VHU_RX_NOMBUF when
 * mbufs ran out; @m may then hold extra segments.
 */
static enum vhu_rx_verdict
chain_to_mbuf(struct vhu_vring *vr, const struct vhu_chain *c, struct rte_mbuf *m,
	      struct rte_mempool *mp, bool *held)
{
	struct virtio_net_hdr_mrg_rxbuf hdr;
	struct vhu_cursor cur;
	uint64_t frame_len;

	*held = false;
	if (!frame_length(vr, c, &frame_len))
		return VHU_RX_DROP;
	if (c->niov == 1) {
		/*
		 * Header and frame in one piece: the frame (or with zero-copy
		 * its head, the rest attached after it) goes straight into the
		 * mbuf when it fits.
		 */
		const uint8_t *frame = c->iov[0].addr + vr->neg.hdr_len;

		memcpy(&hdr.hdr, c->iov[0].addr, sizeof(hdr.hdr));
		if (likely(!zero_copy_candidate(vr, &hdr.hdr, frame_len))) {
			if (frame_len <= rte_pktmbuf_tailroom(m)) {
				vhu_copy(rte_pktmbuf_mtod(m, void *), frame, frame_len);
				m->data_len = (uint16_t)frame_len;
				m->pkt_len = (uint32_t)frame_len;
				goto offload;
			}
		} else if (VHU_ZC_HEAD_BYTES <= rte_pktmbuf_tailroom(m)) {
			vhu_copy(rte_pktmbuf_mtod(m, void *), frame, VHU_ZC_HEAD_BYTES);
			m->data_len = VHU_ZC_HEAD_BYTES;
			m->pkt_len = VHU_ZC_HEAD_BYTES;
			frame_len -= VHU_ZC_HEAD_BYTES;
			vhu_cursor_init(&cur, c->iov, c->niov);
			cur.off = vr->neg.hdr_len + VHU_ZC_HEAD_BYTES;
			*held = attach_to_mbuf(vr, c, &cur, frame_len, m, mp);
			if (!*held && !copy_to_mbuf(vr, &cur, frame_len, m, mp))
				return VHU_RX_NOMBUF;
			goto offload;
		}
	}
	vhu_cursor_init(&cur, c->iov, c->niov);
	/* The header is copied out whole, even when spread over descriptors. */
	vhu_cursor_read(&cur, &hdr, vr->neg.hdr_len);
	/* A GSO frame we cut is chained whatever the application takes: only its segments reach it. */
	if (!vhu_rxbuf_fit(vr, m, (uint32_t)frame_len) && !vhu_offload_cuts_gso(vr, hdr.hdr.gso_type))
		return VHU_RX_DROP;	/* larger than one mbuf, which the port must give */
	if (zero_copy_candidate(vr, &hdr.hdr, frame_len)) {
		if (!copy_to_mbuf(vr, &cur, VHU_ZC_HEAD_BYTES, m, mp))
			return VHU_RX_NOMBUF;
		frame_len -= VHU_ZC_HEAD_BYTES;
		*held = attach_to_mbuf(vr, c, &cur, frame_len, m, mp);
	}
	if (!*held && !copy_to_mbuf(vr, &cur, frame_len, m, mp))
		return VHU_RX_NOMBUF;
offload:
	if (hdr.hdr.flags == 0 && hdr.hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return VHU_RX_DELIVER;
	return vhu_offload_from_guest(vr, &hdr.hdr, m);
}

/*
 * Four frames at once (virtqueue.h: a batch; @packed: the ring's layout),
 * into the empty mbufs @m: each a one-descriptor chain whose header asks
 * for nothing (flags and GSO type 0) and whose frame fits its mbuf, so that
 * every one is a plain copy, delivered. Their checks come before anything
 * is taken: false, nothing taken, when one does not pass, and the one-chain
 * path handles them (the same frames as without batches, the same reports).
 */
static __rte_always_inline bool
dequeue_batch(struct vhu_vring *vr, const bool packed, struct rte_mbuf **m,
	      struct vhu_frame_tally *t)
{
	const uint16_t hdr_len = vr->neg.hdr_len;
	uint32_t frame_len[VHU_BATCH];
	uint8_t *frame[VHU_BATCH];
	struct vhu_batch b;

	if (!vhu_vq_batch_peek(vr, packed, false, hdr_len + RTE_ETHER_HDR_LEN, &b))
		return false;
	/*
	 * Every load before the first copy's stores (which may alias
	 * anything). The mbufs are empty (data_len 0): their room is what
	 * lies after data_off.
	 */
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		uint16_t asks;	/* the header's flags and gso_type, read at once */

		memcpy(&asks, b.addr[k] + offsetof(struct virtio_net_hdr, flags), sizeof(asks));
		RTE_BUILD_BUG_ON(offsetof(struct virtio_net_hdr, gso_type) != 1);
		frame_len[k] = b.len[k] - hdr_len;
		if (asks != 0 || frame_len[k] > (uint32_t)(m[k]->buf_len - m[k]->data_off))
			return false;
		frame[k] = rte_pktmbuf_mtod(m[k], uint8_t *);
	}
	VHU_BATCH_UNROLL
	for (unsigned int k = 0; k < VHU_BATCH; k++) {
		vhu_copy(frame[k], b.addr[k] + hdr_len, frame_len[k]);
		m[k]->data_len = (uint16_t)frame_len[k];
		m[k]->pkt_len = frame_len[k];
	}
	vhu_vq_batch_complete(vr, packed, &b, NULL);
	/* each frame at least an Ethernet header long (the peek's minimum) */
	vhu_frame_tally_four(t, frame_len, (const uint8_t *const *)frame);
	return true;
}

/*
 * A disabled guest TX ring: up to @count chains are taken and dropped, and
 * chains zero-copy mbufs held go back as those are freed.
 */
static void
discard_chains(struct vhu_vring *vr, uint16_t count)
{
	struct vhu_chain chain;
	uint32_t completed = vhu_zc_reap(vr);
	uint16_t avail = vhu_vq_available(vr, count);

	for (uint16_t i = 0; i < avail; i++) {
		enum vhu_take t = vhu_vq_take(vr, false, 0, &chain);

		if (t == VHU_TAKE_BROKEN || t == VHU_TAKE_EMPTY || t == VHU_TAKE_MISS)
			break;
		vhu_vq_complete_read(vr, &chain);
		completed++;
		VHU_COUNT(vr->stats.dropped, 1);
	}
	if (completed > 0)
		vhu_vq_publish(vr);
}

/* Hands out up to @count segments left from an earlier burst; returns how many. */
static uint16_t
take_pending(struct vhu_vring *vr, struct rte_mbuf **pkts, uint16_t count,
	     struct vhu_frame_tally *t)
{
	struct vhu_rx_pending *p = &vr->rx_pending;
	uint16_t n = RTE_MIN(count, vr->rx_pending_count);

	for (uint16_t i = 0; i < n; i++) {
		pkts[i] = p->mbufs[p->head + i];
		pkts[i]->port = vr->mbuf_port;
		vhu_frame_tally_mbuf(t, pkts[i]);
	}
	p->head = vr->rx_pending_count == n ? 0 : (uint16_t)(p->head + n);
	vr->rx_pending_count = (uint16_t)(vr->rx_pending_count - n);
	return n;
}

/*
 * The GSO frame @m cut into segments: as many as fit go to @pkts (room for
 * @room), the others wait for the next burst. Returns how many went to
 * @pkts; 0 when the frame is dropped (counted).
 */
static uint16_t
deliver_segments(struct vhu_vring *vr, struct rte_mbuf *m, struct rte_mempool *mp,
		 struct rte_mbuf **pkts, uint16_t room, struct vhu_frame_tally *t)
{
	struct vhu_rx_pending *p = &vr->rx_pending;
	unsigned int n = vhu_segment_received(vr, m, mp, p->mbufs);

	rte_pktmbuf_free(m);
	if (n == 0)
		return 0;	/* counted by vhu_segment_received() */
	p->head = 0;
	vr->rx_pending_count = (uint16_t)n;
	return take_pending(vr, pkts, room, t);
}

uint32_t
vhu_dequeue_waiting(struct vhu_vring *vr)
{
	uint32_t n;

	/* the lock keeps the control thread from unmapping the ring meanwhile */
	rte_spinlock_lock(&vr->lock);
	n = vr->rx_pending_count;
	if (vr->ready && !vr->broken)
		n += vhu_vq_waiting(vr);
	rte_spinlock_unlock(&vr->lock);
	return n;
}

/*
 * Up to @chains chains, one at a time, into the mbufs pkts[*received ..
 * *end), allocated for them (a dropped frame's mbuf serves the next chain);
 * @count is the burst's room in @pkts. Moves *@received past the frames
 * delivered, *@end to the first mbuf left over, and counts the chains
 * completed in *@completed, the frames delivered in @t. False when the burst can take no more: the ring
 * gave nothing (empty, broken, a miss) or a frame cut into segments took
 * the room left. Out of line: the burst calls it once, the batch loop once
 * per chain that is not part of a batch.
 */
static __rte_noinline bool
dequeue_chains(struct vhu_vring *vr, struct rte_mempool *mp, struct rte_mbuf **pkts,
	       uint16_t count, uint16_t chains, uint16_t *received, uint16_t *end,
	       uint32_t *completed, struct vhu_frame_tally *tally)
{
	struct vhu_chain chain;

	for (uint16_t i = 0; i < chains; i++) {
		enum vhu_take t = vhu_vq_take_one(vr, false, 0, &chain) ? VHU_TAKE_OK :
				  vhu_vq_take(vr, false, vr->neg.hdr_len + VHU_MAX_FRAME_LEN + 1,
					      &chain);

		/* A miss: the chain stays in the ring until its translation comes. */
		if (t == VHU_TAKE_MISS)
			vhu_vq_ask_ahead(vr, false, VHU_ASK_AHEAD_CHAINS);
		if (t == VHU_TAKE_BROKEN || t == VHU_TAKE_EMPTY || t == VHU_TAKE_MISS)
			return false;
		struct rte_mbuf *m = pkts[*received];
		bool held = false;
		enum vhu_rx_verdict v = t == VHU_TAKE_OK ?
					chain_to_mbuf(vr, &chain, m, mp, &held) : VHU_RX_DROP;

		if (!held) {
			vhu_vq_complete_read(vr, &chain);
			(*completed)++;
		}
		if (likely(v == VHU_RX_DELIVER)) {
			vhu_frame_tally_mbuf(tally, m);
			(*received)++;
		} else if (v == VHU_RX_SEGMENT) {
			/* Its segments may take every slot left: no more chains this burst. */
			rte_pktmbuf_free_bulk(&pkts[*received + 1], *end - *received - 1);
			*received += deliver_segments(vr, m, mp, &pkts[*received], count - *received,
						      tally);
			*end = *received;
			return false;
		} else {
			/*
			 * Give the mbuf back its first-segment-only, empty state
			 * for reuse; freeing attached segments lets a held chain go.
			 */
			rte_pktmbuf_free(m->next);
			m->next = NULL;
			rte_pktmbuf_reset(m);
			m->port = vr->mbuf_port;
			if (v == VHU_RX_DROP)
				VHU_COUNT(vr->stats.dropped, 1);
		}
	}
	return true;
}

/*
 * dequeue_chains() for a ring without zero-copy or vIOMMU: each run of four
 * frames dequeue_batch() takes goes at once, any other chain on its own.
 * Instantiated once per layout (@packed).
 */
static __rte_always_inline void
dequeue_chains_batched(struct vhu_vring *vr, const bool packed, struct rte_mempool *mp,
		       struct rte_mbuf **pkts, uint16_t count, uint16_t chains, uint16_t *received,
		       uint16_t *end, uint32_t *completed, struct vhu_frame_tally *t)
{
	while (chains > 0) {
		if (chains >= VHU_BATCH && dequeue_batch(vr, packed, &pkts[*received], t)) {
			*received += VHU_BATCH;
			*completed += VHU_BATCH;
			chains -= VHU_BATCH;
		} else if (dequeue_chains(vr, mp, pkts, count, 1, received, end, completed, t)) {
			chains--;
		} else {
			return;
		}
	}
}

uint16_t
vhu_dequeue_burst(struct vhu_vring *vr, struct rte_mempool *mp, struct rte_mbuf **pkts,
		  uint16_t count)
{
	struct vhu_frame_tally t;
	uint16_t received = 0;
	uint32_t completed;
	uint16_t avail, end;

	if (!rte_spinlock_trylock(&vr->lock))
		return 0;
	vhu_frame_tally_init(&t);
	/* Segments of a frame cut in an earlier burst go first: frames stay in order. */
	if (unlikely(vr->rx_pending_count > 0)) {
		received = take_pending(vr, pkts, count, &t);
		if (received == count)
			goto out;
	}
	if (!vr->ready || vr->broken) {
		if (vr->discarding && !vr->broken)
			discard_chains(vr, count);
		goto out;
	}
	if (unlikely(vr->rarp.pending) && received < count) {
		struct rte_mbuf *rarp = rte_net_make_rarp_packet(mp, &vr->rarp.mac);

		if (rarp == NULL) {
			VHU_COUNT(vr->stats.alloc_failed, 1);	/* still pending: the next burst tries */
		} else {
			vr->rarp.pending = false;
			rarp->port = vr->mbuf_port;
			vhu_frame_tally_mbuf(&t, rarp);
			pkts[received++] = rarp;
			goto out;
		}
	}
	/* Chains whose zero-copy mbufs the application freed go back first. */
	completed = vhu_zc_reap(vr);
	avail = vhu_vq_available(vr, count - received);
	if (avail > 0 && vhu_rxbuf_alloc_bulk(mp, &pkts[received], avail, vr->mbuf_port) != 0) {
		VHU_COUNT(vr->stats.alloc_failed, 1);
		avail = 0;
	}
	/* pkts[received .. end) hold the mbufs allocated and not used yet. */
	end = received + avail;
	/* Behind a vIOMMU batches never form (virtqueue.h): not tried. */
	if (vr->zc != NULL || vr->iotlb != NULL)
		dequeue_chains(vr, mp, pkts, count, avail, &received, &end, &completed, &t);
	else if (vr->neg.packed)
		dequeue_chains_batched(vr, true, mp, pkts, count, avail, &received, &end, &completed,
				       &t);
	else
		dequeue_chains_batched(vr, false, mp, pkts, count, avail, &received, &end,
				       &completed, &t);
	if (completed > 0)
		vhu_vq_publish(vr);
	if (end > received)
		rte_pktmbuf_free_bulk(&pkts[received], end - received);
out:
	vhu_vring_tally_flush(vr, &t);
	rte_spinlock_unlock(&vr->lock);
	return received;
}
