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

#include <rte_gso.h>
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

/* Most segments one TSO frame is cut into (64 KiB at the smallest sane MSS). */
#define VHU_GSO_MAX_SEGS 128

/*
 * Mbuf pools for software segmentation of one port: header copies (direct)
 * and payload references (indirect). Returns 0, or -1 (logged).
 */
int vhu_gso_pools_create(struct rte_gso_ctx *ctx, const char *port_name, int socket_id);
void vhu_gso_pools_free(struct rte_gso_ctx *ctx);

/* Whether @m asks for segmentation that the guest on @vr cannot take. */
bool vhu_offload_needs_segmentation(const struct vhu_vring *vr, const struct rte_mbuf *m);

/*
 * Cuts the TSO frame @m into segments with complete checksums and no
 * offload requests left. Returns their number (put in @segs; the caller
 * frees them, and @m as before), or 0 (logged, counted): drop the frame.
 */
unsigned int vhu_offload_segment(struct vhu_vring *vr, struct rte_mbuf *m,
				 struct rte_mbuf **segs);

#endif /* VHU_NETOFFLOAD_H */
