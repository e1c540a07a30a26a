/* SPDX-License-Identifier: BSD-3-Clause */
/* Guest TX ring -> mbufs (the ethdev RX direction). */
#include <inttypes.h>

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "guest_copy.h"
#include "netoffload.h"
#include "vhu.h"
#include "virtqueue.h"

/*
 * Copies the frame in @c, after its virtio-net header, into @m, chaining
 * more mbufs from @mp when it does not fit in one. False when the chain is
 * not a frame (counted) or mbufs ran out; @m may then hold extra segments.
 */
static bool
chain_to_mbuf(struct vhu_vring *vr, const struct vhu_chain *c, struct rte_mbuf *m,
	      struct rte_mempool *mp)
{
	struct virtio_net_hdr_mrg_rxbuf hdr;
	struct vhu_cursor cur;
	struct rte_mbuf *seg = m;
	uint64_t frame_len;

	if (c->len < vr->hdr_len + (uint64_t)RTE_ETHER_HDR_LEN) {
		vhu_vring_bad_input(vr, "chain %u: %" PRIu64 " bytes, too short for a %u-byte header and an Ethernet frame",
				      c->id, c->len, vr->hdr_len);
		return false;
	}
	frame_len = c->len - vr->hdr_len;
	if (frame_len > VHU_MAX_FRAME_LEN) {
		vhu_vring_bad_input(vr, "chain %u: frame longer than %u bytes", c->id,
				      VHU_MAX_FRAME_LEN);
		return false;
	}
	vhu_cursor_init(&cur, c->iov, c->niov);
	/* The header is copied out whole, even when spread over descriptors. */
	vhu_cursor_read(&cur, &hdr, vr->hdr_len);

	while (frame_len > 0) {
		uint32_t room = rte_pktmbuf_tailroom(seg);

		if (room == 0) {
			struct rte_mbuf *next = rte_pktmbuf_alloc(mp);

			if (next == NULL) {
				vr->stats.alloc_failed++;
				return false;
			}
			seg->next = next;
			m->nb_segs++;
			seg = next;
			continue;
		}
		uint32_t n = (uint32_t)RTE_MIN((uint64_t)room, frame_len);

		vhu_cursor_read(&cur, rte_pktmbuf_mtod_offset(seg, void *, seg->data_len), n);
		seg->data_len += n;
		m->pkt_len += n;
		frame_len -= n;
	}
	return (hdr.hdr.flags == 0 && hdr.hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE) ||
	       vhu_offload_from_guest(vr, &hdr.hdr, m);
}

uint16_t
vhu_dequeue_burst(struct vhu_vring *vr, struct rte_mempool *mp, struct rte_mbuf **pkts,
		  uint16_t count)
{
	struct vhu_chain chain;
	uint16_t received = 0;
	uint16_t completed = 0;
	uint16_t avail;

	if (!rte_spinlock_trylock(&vr->lock))
		return 0;
	if (!vr->ready || vr->broken)
		goto out;
	if (unlikely(vr->rarp_pending) && count > 0) {
		struct rte_mbuf *rarp = rte_net_make_rarp_packet(mp, &vr->rarp_mac);

		if (rarp != NULL) {
			vr->rarp_pending = false;
			vhu_vring_count_frame(vr, rarp);
			pkts[0] = rarp;
			rte_spinlock_unlock(&vr->lock);
			return 1;
		}
	}
	avail = vhu_vq_available(vr, count);
	if (avail == 0)
		goto out;
	if (rte_pktmbuf_alloc_bulk(mp, pkts, avail) != 0) {
		vr->stats.alloc_failed++;
		goto out;
	}
	for (uint16_t i = 0; i < avail; i++) {
		enum vhu_take t = vhu_vq_take(vr, false, vr->hdr_len + VHU_MAX_FRAME_LEN + 1,
						 &chain);

		if (t == VHU_TAKE_BROKEN || t == VHU_TAKE_EMPTY)
			break;
		struct rte_mbuf *m = pkts[received];
		bool ok = t == VHU_TAKE_OK && chain_to_mbuf(vr, &chain, m, mp);

		vhu_vq_complete(vr, &chain, 0);
		completed++;
		if (ok) {
			vhu_vring_count_frame(vr, m);
			received++;
		} else {
			/* Give the mbuf back its first-segment-only, empty state for reuse. */
			rte_pktmbuf_free(m->next);
			m->next = NULL;
			rte_pktmbuf_reset(m);
			vr->stats.dropped++;
		}
	}
	if (completed > 0)
		vhu_vq_publish(vr);
	rte_pktmbuf_free_bulk(&pkts[received], avail - received);
out:
	rte_spinlock_unlock(&vr->lock);
	return received;
}
