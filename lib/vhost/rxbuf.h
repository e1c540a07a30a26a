/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The mbuf a received frame goes in, when it is larger than the mbuf's own
 * buffer: a chain of mbufs when the application takes chains (scatter, or
 * the legacy convention, and not the port's linear_buffer); else, with the
 * port's ext_buffer, one buffer of the frame's size attached to the mbuf
 * (rte_malloc, freed with the mbuf), or none: the frame is dropped. As
 * DPDK's vhost library does with its LINEARBUF and EXTBUF flags, which
 * applications that take single-segment mbufs only (Open vSwitch) ask for.
 */
#ifndef VHU_RXBUF_H
#define VHU_RXBUF_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "vring.h"

/*
 * rte_pktmbuf_alloc_bulk(): @n mbufs from @mp, each empty, one segment,
 * with the pool's headroom and no flag but a pinned external buffer's; and
 * port @port. 0, or a negative errno when the pool has fewer than @n.
 */
int vhu_rxbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned int n,
			 uint16_t port);

/* Attaches to @m a buffer for @len bytes of frame. False when there is no memory. */
bool vhu_rxbuf_attach_ext(struct rte_mbuf *m, uint32_t len, int socket_id);

/* Whether the application takes frames larger than one mbuf as chains. */
static inline bool
vhu_rxbuf_chains(const struct vhu_vring *vr)
{
	return (vr->rx_offloads & (VHU_RX_OFFLOAD_SCATTER | VHU_RX_OFFLOAD_LEGACY)) &&
	       !vr->linear_buffer;
}

/*
 * Whether @len bytes of frame may go into the empty mbuf @m: they fit its
 * buffer, or an external one was attached, or they may be chained. False:
 * drop the frame.
 */
static inline bool
vhu_rxbuf_fit(const struct vhu_vring *vr, struct rte_mbuf *m, uint32_t len)
{
	if (likely(len <= rte_pktmbuf_tailroom(m)))
		return true;
	if (vr->ext_buffer && vhu_rxbuf_attach_ext(m, len, vr->socket_id))
		return true;
	return vhu_rxbuf_chains(vr);
}

#endif /* VHU_RXBUF_H */
