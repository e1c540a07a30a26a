/* SPDX-License-Identifier: BSD-3-Clause */
#include "rxbuf.h"

#include <errno.h>
#include <string.h>

#include <rte_malloc.h>

/*
 * The fields rte_pktmbuf_reset() sets, written as constants, as DPDK's
 * vector PMDs rearm their mbufs: data_off, refcnt, nb_segs and port (the
 * receiving port's, which saves a pass over the mbufs to set it) as one
 * 8-byte word made once per burst, then zeroes. rte_pktmbuf_reset() loads
 * ol_flags and buf_len of every mbuf and stores field by field; that was
 * half the cost of taking a 64-byte frame's mbuf. A free mbuf's next is
 * NULL already (DPDK keeps free mbufs so; rte_mbuf_raw_alloc() checks it).
 * Every mbuf of a pool has the buffer length of the first, but for pools of
 * pinned external buffers, whose buffers may differ: those keep DPDK's
 * reset, as does their flag.
 */
int
vhu_rxbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned int n,
		     uint16_t port)
{
	struct rte_mbuf rearm;
	uint64_t rearm_word;

	if (unlikely(rte_pktmbuf_priv_flags(mp) & RTE_PKTMBUF_POOL_F_PINNED_EXT_BUF)) {
		if (rte_pktmbuf_alloc_bulk(mp, pkts, n) != 0)
			return -ENOENT;
		for (unsigned int i = 0; i < n; i++)
			pkts[i]->port = port;
		return 0;
	}
	if (unlikely(rte_mempool_get_bulk(mp, (void **)pkts, n) != 0))
		return -ENOENT;
	if (n == 0)
		return 0;
	rearm.data_off = RTE_MIN((uint16_t)RTE_PKTMBUF_HEADROOM, pkts[0]->buf_len);
	rte_mbuf_refcnt_set(&rearm, 1);
	rearm.nb_segs = 1;
	rearm.port = port;
	memcpy(&rearm_word, &rearm.rearm_data, sizeof(rearm_word));
	for (unsigned int i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];

		__rte_mbuf_raw_sanity_check(m);
		memcpy(&m->rearm_data, &rearm_word, sizeof(rearm_word));
		m->ol_flags = 0;
		m->packet_type = 0;
		m->pkt_len = 0;
		m->data_len = 0;
		m->vlan_tci = 0;
		m->vlan_tci_outer = 0;
		m->tx_offload = 0;
	}
	return 0;
}

static void
free_ext(void *addr, void *opaque __rte_unused)
{
	rte_free(addr);
}

bool
vhu_rxbuf_attach_ext(struct rte_mbuf *m, uint32_t len, int socket_id)
{
	struct rte_mbuf_ext_shared_info *shinfo;
	/* headroom, the frame, and the shared info at the end */
	uint32_t total = RTE_PKTMBUF_HEADROOM + len + sizeof(*shinfo) + sizeof(uintptr_t);
	uint16_t buf_len;
	void *buf;

	if (total > UINT16_MAX)
		return false;
	buf = rte_malloc_socket("vhu_rx_ext", total, RTE_CACHE_LINE_SIZE, socket_id);
	if (buf == NULL)
		return false;
	buf_len = (uint16_t)total;
	shinfo = rte_pktmbuf_ext_shinfo_init_helper(buf, &buf_len, free_ext, NULL);
	if (shinfo == NULL) {
		rte_free(buf);
		return false;
	}
	rte_pktmbuf_attach_extbuf(m, buf, rte_malloc_virt2iova(buf), buf_len, shinfo);
	rte_pktmbuf_reset_headroom(m);
	return true;
}
