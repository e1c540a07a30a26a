/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The mbuf a received frame goes in, when it is larger than the mbuf's own
 * buffer: by default a chain of mbufs; with the port's ext_buffer, one
 * buffer of the frame's size attached to the mbuf (rte_malloc, freed with
 * the mbuf); with linear_buffer and no such buffer, none: the frame is
 * dropped. As DPDK's vhost library does with its LINEARBUF and EXTBUF
 * flags, which applications that take single-segment mbufs only (Open
 * vSwitch) ask for.
 */
#ifndef VHU_RXBUF_H
#define VHU_RXBUF_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "vring.h"

/* Attaches to @m a buffer for @len bytes of frame. False when there is no memory. */
bool vhu_rxbuf_attach_ext(struct rte_mbuf *m, uint32_t len, int socket_id);

/*
 * Whether @len bytes of frame may go into the empty mbuf @m: they fit its
 * buffer, or an external one was attached, or the port lets them be
 * chained. False: drop the frame.
 */
static inline bool
vhu_rxbuf_fit(const struct vhu_vring *vr, struct rte_mbuf *m, uint32_t len)
{
	if (likely(len <= rte_pktmbuf_tailroom(m)))
		return true;
	if (vr->ext_buffer && vhu_rxbuf_attach_ext(m, len, vr->socket_id))
		return true;
	return !vr->linear_buffer;
}

#endif /* VHU_RXBUF_H */
