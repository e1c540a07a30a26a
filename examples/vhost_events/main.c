/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhu-events: prints the link and queue events of eth_vhost ports while
 * looping back what each port receives.
 *
 *   vhu-events <EAL args> -- [seconds]
 *
 * It links the eth_vhost PMD (librte_net_vhu.so) and uses its public API,
 * rte_eth_vhost.h, the same API DPDK's vhost PMD has. Output, one line each:
 *   port <p>: link up (vid <v>) | port <p>: link down
 *   port <p>: rx|tx queue <q> enabled|disabled
 *   port <p>: received <n> sent <m>        (at exit)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "rte_eth_vhost.h"

#define BURST 32
#define NB_MBUFS 8191

static volatile sig_atomic_t quit;

static void
on_signal(int sig __rte_unused)
{
	quit = 1;
}

static int
on_event(uint16_t port, enum rte_eth_event_type type, void *arg __rte_unused,
	 void *ret __rte_unused)
{
	if (type == RTE_ETH_EVENT_INTR_LSC) {
		struct rte_eth_link link;

		rte_eth_link_get_nowait(port, &link);
		if (link.link_status)
			printf("port %u: link up (vid %d)\n", port,
			       rte_eth_vhost_get_vid_from_port_id(port));
		else
			printf("port %u: link down\n", port);
	} else {
		struct rte_eth_vhost_queue_event ev;

		while (rte_eth_vhost_get_queue_event(port, &ev) == 0)
			printf("port %u: %s queue %u %s\n", port, ev.rx ? "rx" : "tx",
			       ev.queue_id, ev.enable ? "enabled" : "disabled");
	}
	return 0;
}

static int
port_init(uint16_t port, struct rte_mempool *mp)
{
	struct rte_eth_conf conf = { .intr_conf = { .lsc = 1 } };
	struct rte_eth_dev_info info;
	uint16_t q;
	int ret = rte_eth_dev_info_get(port, &info);

	if (ret != 0)
		return ret;
	/* Every queue pair the port offers, so every ring's events are seen. */
	ret = rte_eth_dev_configure(port, info.max_rx_queues, info.max_tx_queues, &conf);
	for (q = 0; ret == 0 && q < info.max_rx_queues; q++)
		ret = rte_eth_rx_queue_setup(port, q, 256, rte_eth_dev_socket_id(port), NULL, mp);
	for (q = 0; ret == 0 && q < info.max_tx_queues; q++)
		ret = rte_eth_tx_queue_setup(port, q, 256, rte_eth_dev_socket_id(port), NULL);
	if (ret == 0)
		ret = rte_eth_dev_callback_register(port, RTE_ETH_EVENT_INTR_LSC, on_event, NULL);
	if (ret == 0)
		ret = rte_eth_dev_callback_register(port, RTE_ETH_EVENT_QUEUE_STATE, on_event, NULL);
	return ret == 0 ? rte_eth_dev_start(port) : ret;
}

int
main(int argc, char **argv)
{
	uint64_t received[RTE_MAX_ETHPORTS] = { 0 }, sent[RTE_MAX_ETHPORTS] = { 0 };
	struct rte_mbuf *pkts[BURST];
	struct rte_mempool *mp;
	uint64_t deadline;
	uint16_t port;
	int n = rte_eal_init(argc, argv);

	if (n < 0)
		rte_exit(EXIT_FAILURE, "EAL initialisation failed\n");
	argc -= n;
	argv += n;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	deadline = rte_get_timer_cycles() +
		   (argc > 1 ? strtoull(argv[1], NULL, 10) : 10) * rte_get_timer_hz();

	mp = rte_pktmbuf_pool_create("vhu_events", NB_MBUFS, 256, 0,
				     RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (mp == NULL)
		rte_exit(EXIT_FAILURE, "cannot create the mbuf pool\n");
	RTE_ETH_FOREACH_DEV(port)
		if (port_init(port, mp) != 0)
			rte_exit(EXIT_FAILURE, "cannot start port %u\n", port);
	printf("ready: %u port(s)\n", rte_eth_dev_count_avail());

	while (!quit && rte_get_timer_cycles() < deadline) {
		RTE_ETH_FOREACH_DEV(port) {
			struct rte_eth_dev_info info;

			rte_eth_dev_info_get(port, &info);
			for (uint16_t q = 0; q < info.nb_rx_queues; q++) {
				uint16_t nb_rx = rte_eth_rx_burst(port, q, pkts, BURST);
				uint16_t nb_tx = rte_eth_tx_burst(port, q, pkts, nb_rx);

				received[port] += nb_rx;
				sent[port] += nb_tx;
				rte_pktmbuf_free_bulk(&pkts[nb_tx], nb_rx - nb_tx);
			}
		}
	}
	RTE_ETH_FOREACH_DEV(port) {
		printf("port %u: received %" PRIu64 " sent %" PRIu64 "\n", port, received[port],
		       sent[port]);
		rte_eth_dev_stop(port);
		rte_eth_dev_close(port);
	}
	rte_eal_cleanup();
	return 0;
}
