/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Software segmentation, both ways, for an end that cannot take a GSO frame
 * whole:
 * - to a guest that cannot take it whole (without GUEST_CSUM and
 *   GUEST_TSO4/6 or GUEST_UFO; a UFO frame whose complete checksum lies in
 *   memory others hold), a TSO or UFO mbuf is cut by librte_gso into two
 *   small pools (header copies and references to the payload), every
 *   segment with complete checksums;
 * - from a guest, for an application that did not enable LRO, a GSO frame
 *   is copied into the frames the guest would have sent without GSO (TCP
 *   over IPv4 and IPv6; UDP over IPv4 as IP fragments), from the
 *   application's pool, with complete checksums.
 */
#ifndef VHU_SEGMENT_H
#define VHU_SEGMENT_H

#include <stdbool.h>

#include <rte_gso.h>
#include <rte_mbuf.h>

#include "vring.h"

/*
 * Mbuf pools for segmentation towards the guests of one port: those of its
 * NUMA socket, which every port of the process there shares (a segment
 * lives for one enqueue: the pools hold what lcores have in hand at once,
 * not what ports have). The first port of a socket creates them, the last
 * one frees them. Any application thread. 0, or -1 (logged).
 */
int vhu_gso_pools_create(struct rte_gso_ctx *ctx, const char *port_name, int socket_id);
void vhu_gso_pools_free(struct rte_gso_ctx *ctx);

/* Whether the guest on @vr cannot take the segmentation request of @m whole. */
bool vhu_segment_refused_by_guest(const struct vhu_vring *vr, const struct rte_mbuf *m);

/* Whether @m asks for segmentation that the guest on @vr cannot take. */
static inline bool
vhu_segment_needed_for_guest(const struct vhu_vring *vr, const struct rte_mbuf *m)
{
	return (m->ol_flags & (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)) &&
	       vhu_segment_refused_by_guest(vr, m);
}

/*
 * Cuts the TSO or UFO frame @m into segments with complete checksums and no
 * offload requests left. Returns their number (put in @segs, at most
 * VHU_GSO_MAX_SEGS; the caller frees them, and @m, which keeps its requests
 * as they were), or 0 (logged, counted): drop the frame.
 */
unsigned int vhu_segment_for_guest(struct vhu_vring *vr, struct rte_mbuf *m,
				   struct rte_mbuf **segs);

/*
 * Cuts the GSO frame @m from the guest (l2/l3/l4_len, packet_type and
 * tso_segsz set; its checksum partial as the guest left it) into frames
 * allocated from @mp, flagged with good checksums. Returns their number (put
 * in @segs, at most VHU_GSO_MAX_SEGS), or 0: the frame is dropped, and
 * counted here: bad input (logged; malformed and dropped), segments longer
 * than the application takes (dropped), or @mp ran out (alloc_failed). @m,
 * its UDP checksum finished, is left to the caller.
 */
unsigned int vhu_segment_received(struct vhu_vring *vr, struct rte_mbuf *m,
				  struct rte_mempool *mp, struct rte_mbuf **segs);

#endif /* VHU_SEGMENT_H */
