/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-net header <-> mbuf offload metadata.
 *
 * From the guest (dequeue): a checksum the guest left to us (NEEDS_CSUM) and
 * a GSO frame become mbuf TX offload requests (l2/l3/l4 lengths, tso_segsz,
 * RTE_MBUF_F_TX_* flags), so another vhost port can hand the frame on whole
 * and a NIC can segment and checksum it. A checksum that mbuf flags cannot
 * express is finished in software here.
 *
 * To the guest (enqueue): mbuf TX offload requests become a header for a
 * guest that negotiated the matching GUEST_* feature; otherwise checksums
 * are finished in software before the copy.
 *
 * Every header field from the guest is checked against the frame it came
 * with; a bad header drops the frame (counted), it is never trusted.
 */
#ifndef VHU_NETOFFLOAD_H
#define VHU_NETOFFLOAD_H

#include <stdbool.h>

#include <rte_mbuf.h>

#include "vring.h"

/* Applies the guest's header @h to @m. False (logged, counted): drop the frame. */
bool vhu_offload_from_guest(struct vhu_vring *vr, const struct virtio_net_hdr *h,
			    struct rte_mbuf *m);

/*
 * Fills @h for the guest from @m's offload requests, finishing in software
 * what the guest did not negotiate. False (logged, counted): drop the frame.
 */
bool vhu_offload_to_guest(struct vhu_vring *vr, struct rte_mbuf *m, struct virtio_net_hdr *h);

#endif /* VHU_NETOFFLOAD_H */
