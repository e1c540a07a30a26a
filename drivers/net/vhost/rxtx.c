/* SPDX-License-Identifier: BSD-3-Clause */
/* The burst functions: the guest's rings through lib/vhost, mbufs freed in runs. */
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "pmd_internal.h"

uint16_t
eth_vhost_rx(void *q, struct rte_mbuf **pkts, uint16_t count)
{
	struct vhost_queue *rxq = q;

	/* the library gives the mbufs our port id (vhu_port_config.mbuf_port) */
	return vhu_dequeue_burst(rxq->vring, rxq->mb_pool, pkts, count);
}

/* Frames the guest has sent that RX queue @q has not received yet (switches balance queues on it). */
uint32_t
eth_vhost_rx_queue_count(void *q)
{
	const struct vhost_queue *rxq = q;

	return vhu_dequeue_waiting(rxq->vring);
}

/* mbufs freed with one mempool put at a time, at most. */
#define TX_FREE_BATCH 64

/*
 * rte_pktmbuf_free_bulk() inlined for what a transmit burst frees: every
 * segment that is ours alone (after rte_pktmbuf_prefree_seg(), which also
 * detaches external buffers such as zero-copy ones and runs their free
 * callback) goes back to its pool a run at a time.
 */
static void
free_transmitted(struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *run[TX_FREE_BATCH];
	struct rte_mempool *pool = NULL;
	unsigned int nrun = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *seg = pkts[i];

		do {
			struct rte_mbuf *next = seg->next;
			struct rte_mbuf *m = rte_pktmbuf_prefree_seg(seg);

			seg = next;
			if (m == NULL)		/* still referenced elsewhere */
				continue;
			if (m->pool != pool || nrun == TX_FREE_BATCH) {
				if (nrun > 0)
					rte_mempool_put_bulk(pool, (void **)run, nrun);
				pool = m->pool;
				nrun = 0;
			}
			run[nrun++] = m;
		} while (seg != NULL);
	}
	if (nrun > 0)
		rte_mempool_put_bulk(pool, (void **)run, nrun);
}

uint16_t
eth_vhost_tx(void *q, struct rte_mbuf **pkts, uint16_t count)
{
	struct vhost_queue *txq = q;
	uint16_t n = vhu_enqueue_burst(txq->vring, pkts, count);

	free_transmitted(pkts, n);
	/* read by the statistics on any thread: see VHU_COUNT (vring.h) */
	__atomic_store_n(&txq->unsent, txq->unsent + count - n, __ATOMIC_RELAXED);
	return n;
}
