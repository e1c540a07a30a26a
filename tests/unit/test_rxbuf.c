/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of vhu_rxbuf_alloc_bulk() (lib/vhost/rxbuf.c): every mbuf it
 * gives is exactly what rte_pktmbuf_alloc_bulk() would give, i.e. the mbuf
 * as it was in the pool with rte_pktmbuf_reset() applied, with the port
 * asked for, whatever the
 * fields held when the mbuf was freed; for pools of ordinary buffers, pools
 * whose buffers are shorter than the headroom, and pools of pinned external
 * buffers; and an empty pool gives nothing and keeps its mbufs.
 */
/* rte_pktmbuf_pool_create_extbuf() is experimental in DPDK 22.11 */
#define ALLOW_EXPERIMENTAL_API

#include <stdint.h>
#include <string.h>

#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "rxbuf.h"

#include "check.h"
#include "guest_fixture.h"

#define N_MBUFS 64u
#define PINNED_BUF_LEN 2048u
#define RX_PORT 7u

/* What each mbuf of @p held before it was allocated, by address. */
struct pool_snapshot {
	struct rte_mbuf *mbuf[N_MBUFS];
	struct rte_mbuf before[N_MBUFS];
};

/*
 * Takes every mbuf of @p, writes junk in every field rte_pktmbuf_reset()
 * sets (but next, nb_segs and refcnt, which a free mbuf has as DPDK's free
 * leaves them), records each, and gives them back.
 */
static void
dirty_pool(struct rte_mempool *p, struct pool_snapshot *s)
{
	CHECK_EQ(rte_mempool_get_bulk(p, (void **)s->mbuf, N_MBUFS), 0);
	for (unsigned int i = 0; i < N_MBUFS; i++) {
		struct rte_mbuf *m = s->mbuf[i];

		m->pkt_len = 1000 + i;
		m->data_len = (uint16_t)(100 + i);
		m->tx_offload = UINT64_C(0x0123456789abcdef) + i;
		m->vlan_tci = 0x1234;
		m->vlan_tci_outer = 0x5678;
		m->port = (uint16_t)i;
		m->ol_flags |= RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_RX_L4_CKSUM_BAD;
		m->packet_type = RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4;
		m->data_off = 7;
		m->hash.rss = 0xfeedbeef;
		s->before[i] = *m;
	}
	rte_mempool_put_bulk(p, (void **)s->mbuf, N_MBUFS);
}

/* Whether @m is its snapshot in @s with rte_pktmbuf_reset() applied, port RX_PORT. */
static bool
is_reset(const struct pool_snapshot *s, const struct rte_mbuf *m)
{
	for (unsigned int i = 0; i < N_MBUFS; i++) {
		if (s->mbuf[i] != m)
			continue;
		struct rte_mbuf want = s->before[i];

		rte_pktmbuf_reset(&want);
		want.port = RX_PORT;
		if (memcmp(&want, m, sizeof(want)) == 0)
			return true;
		fprintf(stderr, "mbuf %u: data_off %u/%u, ol_flags %#" PRIx64 "/%#" PRIx64
			", port %u/%u, pkt_len %u/%u, tx_offload %#" PRIx64 "/%#" PRIx64 "\n",
			i, m->data_off, want.data_off, m->ol_flags, want.ol_flags, m->port,
			want.port, m->pkt_len, want.pkt_len, m->tx_offload, want.tx_offload);
		return false;
	}
	fprintf(stderr, "mbuf %p is not of the pool\n", (const void *)m);
	return false;
}

/* Allocates from @p in bursts of 1 to 5 (reset, not only the first of a burst), all of it. */
static void
check_alloc_is_reset(struct rte_mempool *p)
{
	struct pool_snapshot s;
	struct rte_mbuf *got[N_MBUFS];
	unsigned int n = 0;

	dirty_pool(p, &s);
	for (unsigned int burst = 1; n < N_MBUFS; burst = burst % 5 + 1) {
		unsigned int k = RTE_MIN(burst, N_MBUFS - n);

		CHECK_EQ(vhu_rxbuf_alloc_bulk(p, &got[n], k, RX_PORT), 0);
		for (unsigned int i = n; i < n + k; i++)
			CHECK(is_reset(&s, got[i]));
		n += k;
	}
	CHECK_EQ(rte_mempool_avail_count(p), 0);
	rte_pktmbuf_free_bulk(got, N_MBUFS);
}

/* check_alloc_is_reset() on a fresh pool of buffers of @data_room bytes. */
static void
check_pool_of(const char *name, uint16_t data_room)
{
	struct rte_mempool *p = rte_pktmbuf_pool_create(name, N_MBUFS, 0, 0, data_room,
							(int)rte_socket_id());

	CHECK(p != NULL);
	check_alloc_is_reset(p);
	rte_mempool_free(p);
}

static void
test_ordinary_buffers(void)
{
	check_pool_of("rxbuf_plain", RTE_MBUF_DEFAULT_BUF_SIZE);
}

/* Buffers shorter than the headroom: data_off is the buffer's length. */
static void
test_buffers_shorter_than_headroom(void)
{
	check_pool_of("rxbuf_short", RTE_PKTMBUF_HEADROOM / 2);
}

/* Pinned external buffers: the EXTERNAL flag stays, as with DPDK's reset. */
static void
test_pinned_external_buffers(void)
{
	struct rte_pktmbuf_extmem ext = {
		.buf_len = N_MBUFS * PINNED_BUF_LEN,
		.elt_size = PINNED_BUF_LEN,
	};
	struct rte_mempool *p;

	ext.buf_ptr = rte_malloc("rxbuf_ext", ext.buf_len, RTE_CACHE_LINE_SIZE);
	CHECK(ext.buf_ptr != NULL);
	ext.buf_iova = rte_malloc_virt2iova(ext.buf_ptr);
	p = rte_pktmbuf_pool_create_extbuf("rxbuf_pinned", N_MBUFS, 0, 0, PINNED_BUF_LEN,
					   (int)rte_socket_id(), &ext, 1);
	if (p == NULL)
		rte_free(ext.buf_ptr);
	CHECK(p != NULL);
	check_alloc_is_reset(p);
	struct rte_mbuf *m;

	CHECK_EQ(vhu_rxbuf_alloc_bulk(p, &m, 1, RX_PORT), 0);
	CHECK(m->ol_flags & RTE_MBUF_F_EXTERNAL);
	rte_pktmbuf_free(m);
	rte_mempool_free(p);
	rte_free(ext.buf_ptr);
}

static void
test_empty_pool_gives_nothing(void)
{
	struct rte_mempool *p = rte_pktmbuf_pool_create("rxbuf_few", 4, 0, 0,
							RTE_MBUF_DEFAULT_BUF_SIZE,
							(int)rte_socket_id());
	struct rte_mbuf *got[5] = {NULL};

	CHECK(p != NULL);
	CHECK(vhu_rxbuf_alloc_bulk(p, got, 5, RX_PORT) < 0);
	CHECK(got[0] == NULL);
	CHECK_EQ(rte_mempool_avail_count(p), 4);
	CHECK_EQ(vhu_rxbuf_alloc_bulk(p, got, 4, RX_PORT), 0);
	rte_pktmbuf_free_bulk(got, 4);
	rte_mempool_free(p);
}

int
main(int argc __rte_unused, char **argv)
{
	if (!unit_start(argv[0]))
		return 2;
	RUN_TEST(test_ordinary_buffers);
	RUN_TEST(test_buffers_shorter_than_headroom);
	RUN_TEST(test_pinned_external_buffers);
	RUN_TEST(test_empty_pool_gives_nothing);
	return unit_finish(check_summary("rxbuf"));
}
