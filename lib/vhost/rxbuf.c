/* SPDX-License-Identifier: BSD-3-Clause */
#include "rxbuf.h"

#include <rte_malloc.h>

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
