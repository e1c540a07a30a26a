/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhu-secondary: a secondary process doing to a port what an application
 * might, one ethdev call per word, for tests/test_e2e_secondary.py:
 *
 *   vhu-secondary --proc-type=secondary <EAL args> -- <port name> <op>...
 *
 * ops: info link stats (read the port), configure rxq txq start stop mtu
 * rx tx (act on it). One line per op on stdout: "<op> ret=<return value>",
 * then what it read, as key=value pairs. Exit status 0 unless the port is
 * missing: refusals are results, not failures.
 */
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

static struct rte_mempool *pool;

static void
op_info(uint16_t port)
{
	struct rte_eth_dev_info info;
	int ret = rte_eth_dev_info_get(port, &info);

	printf("info ret=%d", ret);
	if (ret == 0)
		printf(" driver=%s max_rx_queues=%u max_tx_queues=%u nb_rx_queues=%u nb_tx_queues=%u",
		       info.driver_name, info.max_rx_queues, info.max_tx_queues,
		       info.nb_rx_queues, info.nb_tx_queues);
	printf("\n");
}

static void
op_link(uint16_t port)
{
	struct rte_eth_link link;
	int ret = rte_eth_link_get_nowait(port, &link);

	printf("link ret=%d", ret);
	if (ret == 0)
		printf(" status=%u speed=%u", link.link_status, link.link_speed);
	printf("\n");
}

static void
op_stats(uint16_t port)
{
	struct rte_eth_stats st;
	int ret = rte_eth_stats_get(port, &st);

	printf("stats ret=%d", ret);
	if (ret == 0)
		printf(" ipackets=%" PRIu64 " ibytes=%" PRIu64 " opackets=%" PRIu64
		       " obytes=%" PRIu64, st.ipackets, st.ibytes, st.opackets, st.obytes);
	printf("\n");
}

static void
op_configure(uint16_t port)
{
	struct rte_eth_conf conf = { 0 };
	int ret = rte_eth_dev_configure(port, 1, 1, &conf);

	printf("configure ret=%d\n", ret);
}

static void
op_rxq(uint16_t port)
{
	int ret = rte_eth_rx_queue_setup(port, 0, 256, rte_eth_dev_socket_id(port), NULL, pool);

	printf("rxq ret=%d\n", ret);
}

static void
op_txq(uint16_t port)
{
	int ret = rte_eth_tx_queue_setup(port, 0, 256, rte_eth_dev_socket_id(port), NULL);

	printf("txq ret=%d\n", ret);
}

static void
op_start(uint16_t port)
{
	int ret = rte_eth_dev_start(port);

	printf("start ret=%d\n", ret);
}

static void
op_stop(uint16_t port)
{
	int ret = rte_eth_dev_stop(port);

	printf("stop ret=%d\n", ret);
}

static void
op_mtu(uint16_t port)
{
	int ret = rte_eth_dev_set_mtu(port, 1400);

	printf("mtu ret=%d\n", ret);
}

static void
op_rx(uint16_t port)
{
	struct rte_mbuf *pkts[32];
	uint16_t n = rte_eth_rx_burst(port, 0, pkts, RTE_DIM(pkts));

	printf("rx ret=%u\n", n);
	rte_pktmbuf_free_bulk(pkts, n);
}

static void
op_tx(uint16_t port)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	uint16_t n;

	if (m == NULL || rte_pktmbuf_append(m, 60) == NULL)
		rte_exit(EXIT_FAILURE, "cannot make a frame to send\n");
	memset(rte_pktmbuf_mtod(m, void *), 0xff, 60);
	n = rte_eth_tx_burst(port, 0, &m, 1);
	printf("tx ret=%u\n", n);
	if (n == 0)
		rte_pktmbuf_free(m);
}

static const struct {
	const char *name;
	void (*run)(uint16_t port);
} ops[] = {
	{ "info", op_info }, { "link", op_link }, { "stats", op_stats },
	{ "configure", op_configure }, { "rxq", op_rxq }, { "txq", op_txq },
	{ "start", op_start }, { "stop", op_stop }, { "mtu", op_mtu },
	{ "rx", op_rx }, { "tx", op_tx },
};

int
main(int argc, char **argv)
{
	uint16_t port;
	int n = rte_eal_init(argc, argv);

	if (n < 0)
		rte_exit(EXIT_FAILURE, "EAL initialisation failed\n");
	argc -= n;
	argv += n;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || rte_eth_dev_get_port_by_name(argv[1], &port) != 0)
		rte_exit(EXIT_FAILURE, "no port %s\n", argc < 2 ? "named" : argv[1]);
	/* This process's own mbufs, for a queue set-up and a frame to send. */
	pool = rte_pktmbuf_pool_create("vhu_secondary", 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       rte_socket_id());
	if (pool == NULL)
		rte_exit(EXIT_FAILURE, "cannot create the mbuf pool\n");
	for (int i = 2; i < argc; i++) {
		size_t k = 0;

		while (k < RTE_DIM(ops) && strcmp(ops[k].name, argv[i]) != 0)
			k++;
		if (k == RTE_DIM(ops))
			rte_exit(EXIT_FAILURE, "unknown op %s\n", argv[i]);
		ops[k].run(port);
	}
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
