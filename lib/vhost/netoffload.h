/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-net header <-> mbuf offload metadata.
 *
 * From the guest (dequeue): what the guest left to us (a checksum,
 * NEEDS_CSUM; segmentation, a GSO frame) reaches the application the way it
 * asked for (vhu_port_set_rx_offloads):
 * - by default every checksum is finished and a GSO frame is cut into the
 *   frames the guest would have sent without GSO (segment.h): nothing is
 *   left to do;
 * - with VHU_RX_OFFLOAD_CKSUM a partial checksum stays partial, flagged
 *   RTE_MBUF_F_RX_L4_CKSUM_NONE as DPDK documents it (data verified,
 *   checksum not complete);
 * - with VHU_RX_OFFLOAD_LRO a GSO frame arrives whole, RTE_MBUF_F_RX_LRO
 *   with tso_segsz;
 * - with VHU_RX_OFFLOAD_LEGACY, as TX offload requests (l2/l3/l4 lengths,
 *   tso_segsz, RTE_MBUF_F_TX_*), so that another port can hand the frame
 *   on unchanged (DPDK's vhost library calls this legacy-ol-flags).
 *
 * To the guest (enqueue): mbuf TX offload requests become a header for a
 * guest that negotiated the matching GUEST_* feature; otherwise checksums
 * are finished in software before the copy, and segmentation is done in
 * software (segment.h).
 *
 * Every header field from the guest is checked against the frame it came
 * with; a bad header drops the frame (counted), it is never trusted.
 */
#ifndef VHU_NETOFFLOAD_H
#define VHU_NETOFFLOAD_H

#include <stdbool.h>

#include <rte_mbuf.h>

#include "vring.h"

/* Smallest segment size a GSO frame from a guest may ask for (Linux's TCP_MIN_SND_MSS). */
#define VHU_GSO_MIN_SEGSZ 48

/* What becomes of a frame from the guest once its header is applied. */
enum vhu_rx_verdict {
	VHU_RX_DELIVER,		/* as it is */
	VHU_RX_SEGMENT,		/* cut it in software first (vhu_segment_received) */
	VHU_RX_DROP,		/* its header does not match it (logged, counted) */
	VHU_RX_NOMBUF,		/* mbufs ran out (counted in alloc_failed, not dropped) */
};

/*
 * Whether a frame from the guest whose header says @gso_type is cut into
 * segments here (VHU_RX_SEGMENT): a GSO frame the application takes
 * neither whole (LRO) nor as TX offload requests (LEGACY).
 */
static inline bool
vhu_offload_cuts_gso(const struct vhu_vring *vr, uint8_t gso_type)
{
	return gso_type != VIRTIO_NET_HDR_GSO_NONE &&
	       !(vr->rx_offloads & (VHU_RX_OFFLOAD_LRO | VHU_RX_OFFLOAD_LEGACY));
}

/* Applies the guest's header @h to @m, as the ring's receive offloads say. */
enum vhu_rx_verdict vhu_offload_from_guest(struct vhu_vring *vr, const struct virtio_net_hdr *h,
					   struct rte_mbuf *m);

/*
 * Fills @h for the guest from @m's offload requests, finishing in software
 * what the guest did not negotiate. False (logged, counted): drop the frame.
 */
bool vhu_offload_to_guest(struct vhu_vring *vr, struct rte_mbuf *m, struct virtio_net_hdr *h);

/*
 * Whether the bytes [@off, @off + @len) of @m may be written: every segment
 * holding one of them is a mbuf nobody else holds, whose buffer (its own, or
 * an external one) nobody else holds either and is not a guest's (others
 * may point into the rest, even into guest memory: it is only read).
 */
bool vhu_mbuf_range_writable(const struct rte_mbuf *m, uint32_t off, uint32_t len);

#endif /* VHU_NETOFFLOAD_H */
