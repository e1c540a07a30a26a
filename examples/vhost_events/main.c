/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhu-events: prints the link and queue events of eth_vhost ports while
 * looping back what each port receives.
 *
 *   vhu-events <EAL args> -- [seconds] [close-on-down | unplug-after <frames>]
 *
 * It links the eth_vhost PMD (librte_net_vhu.so) and uses its public API,
 * rte_eth_vhost.h, the same API DPDK's vhost PMD has. Output, one line each:
 *   port <p>: link up (vid <v>) | port <p>: link down
 *   port <p>: rx|tx queue <q> enabled|disabled
 *   port <p>: received <n> sent <m>        (at exit)
 *   port <p>: tx_done_cleanup <ret>        (at start)
 *
 * Port lifecycle cases, as applications do it:
 *   close-on-down: the LSC callback closes the port when its link goes down
 *     (after pausing the polling loop), printing "port <p>: closed from its
 *     link-down callback";
 *   unplug-after <frames>: ports are polled on a worker lcore; once port 0
 *     received that many frames, the main lcore hot-unplugs its device
 *     (rte_dev_remove), printing "port 0: removed while polled", and the
 *     worker polls on what is left.
 *
 * Either way the polling loop is paused around the stop and close: ethdev
 * allows no burst on a port being stopped or closed. rte_eth_dev_stop() and
 * the port's release point its burst functions at ethdev's stand-ins by
 * zeroing rte_eth_fp_ops[port] and then filling it in (DPDK 22.11
 * eth_dev_fp_ops_reset()), so a burst running meanwhile can read a NULL
 * queue array or function and crash. Once the port is gone, bursts on its id
 * reach the stand-ins, but RTE_ETH_FOREACH_DEV skips it anyway.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "rte_eth_vhost.h"

#define BURST 32
#define NB_MBUFS 8191

/* set by the signal handler on the main lcore, read by the worker: atomics,
 * volatile sig_atomic_t covers one thread only */
static int quit;
static bool close_on_down;
static uint64_t received[RTE_MAX_ETHPORTS], sent[RTE_MAX_ETHPORTS];
/*
 * RX queues of each port, read once: the loop calls no ethdev control
 * function, which may not run concurrently with the port's removal.
 */
static uint16_t nb_rx_queues[RTE_MAX_ETHPORTS];

/*
 * The polling loop pauses when asked (by the LSC callback on the control
 * thread, or by the main lcore) and says so; polling_ended: it has returned,
 * so it will never pause again.
 */
static int pause_requested, polling_paused, polling_ended;

/*
 * Returns once the polling loop is paused (true) or over (false): either
 * way no burst runs until resume_polling().
 */
static bool
pause_polling(void)
{
	__atomic_store_n(&pause_requested, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		if (__atomic_load_n(&polling_paused, __ATOMIC_SEQ_CST))
			return true;
		if (__atomic_load_n(&polling_ended, __ATOMIC_SEQ_CST))
			return false;
		rte_pause();
	}
}

static void
resume_polling(void)
{
	__atomic_store_n(&pause_requested, 0, __ATOMIC_SEQ_CST);
}

static void
on_signal(int sig __rte_unused)
{
	__atomic_store_n(&quit, 1, __ATOMIC_RELAXED);
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
		/* Once the loop is over, the main lcore closes every port itself. */
		if (!link.link_status && close_on_down && pause_polling()) {
			printf("port %u: received %" PRIu64 " sent %" PRIu64 "\n", port,
			       received[port], sent[port]);
			rte_eth_dev_stop(port);
			rte_eth_dev_close(port);
			printf("port %u: closed from its link-down callback\n", port);
			resume_polling();
		}
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
	nb_rx_queues[port] = info.max_rx_queues;
	if (ret == 0)
		ret = rte_eth_dev_callback_register(port, RTE_ETH_EVENT_INTR_LSC, on_event, NULL);
	if (ret == 0)
		ret = rte_eth_dev_callback_register(port, RTE_ETH_EVENT_QUEUE_STATE, on_event, NULL);
	return ret == 0 ? rte_eth_dev_start(port) : ret;
}

/* Polls every port until @deadline (or a signal): what arrives goes back out. */
static void
poll_ports(uint64_t deadline)
{
	struct rte_mbuf *pkts[BURST];
	uint16_t port;

	while (!__atomic_load_n(&quit, __ATOMIC_RELAXED) && rte_get_timer_cycles() < deadline) {
		if (__atomic_load_n(&pause_requested, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&polling_paused, 1, __ATOMIC_SEQ_CST);
			while (__atomic_load_n(&pause_requested, __ATOMIC_SEQ_CST))
				rte_pause();
			__atomic_store_n(&polling_paused, 0, __ATOMIC_SEQ_CST);
		}
		RTE_ETH_FOREACH_DEV(port) {
			for (uint16_t q = 0; q < nb_rx_queues[port]; q++) {
				uint16_t nb_rx = rte_eth_rx_burst(port, q, pkts, BURST);
				uint16_t nb_tx = rte_eth_tx_burst(port, q, pkts, nb_rx);

				__atomic_fetch_add(&received[port], nb_rx, __ATOMIC_RELAXED);
				sent[port] += nb_tx;
				rte_pktmbuf_free_bulk(&pkts[nb_tx], nb_rx - nb_tx);
			}
		}
	}
	__atomic_store_n(&polling_ended, 1, __ATOMIC_SEQ_CST);
}

static int
poll_worker(void *arg)
{
	poll_ports(*(const uint64_t *)arg);
	return 0;
}

/*
 * Removes port 0's device once it received @frames while a worker lcore
 * polls the ports: the worker is paused for the removal, then polls on.
 */
static void
unplug_while_polled(uint64_t deadline, uint64_t frames)
{
	unsigned int worker = rte_get_next_lcore(-1, 1, 0);
	struct rte_eth_dev_info info;

	if (worker >= RTE_MAX_LCORE)
		rte_exit(EXIT_FAILURE, "unplug-after needs a worker lcore\n");
	rte_eal_remote_launch(poll_worker, &deadline, worker);
	while (!__atomic_load_n(&quit, __ATOMIC_RELAXED) && rte_get_timer_cycles() < deadline &&
	       __atomic_load_n(&received[0], __ATOMIC_RELAXED) < frames)
		rte_delay_ms(10);
	if (__atomic_load_n(&received[0], __ATOMIC_RELAXED) >= frames &&
	    rte_eth_dev_info_get(0, &info) == 0) {
		int ret;

		pause_polling();
		ret = rte_dev_remove(info.device);
		resume_polling();
		printf("port 0: removed while polled (%s)\n", ret == 0 ? "ok" : strerror(-ret));
	}
	rte_eal_wait_lcore(worker);
}

int
main(int argc, char **argv)
{
	struct rte_mempool *mp;
	uint64_t deadline, unplug_after = 0;
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
	if (argc > 2 && strcmp(argv[2], "close-on-down") == 0)
		close_on_down = true;
	else if (argc > 3 && strcmp(argv[2], "unplug-after") == 0)
		unplug_after = strtoull(argv[3], NULL, 10);
	else if (argc > 2)
		rte_exit(EXIT_FAILURE, "unknown case %s\n", argv[2]);

	mp = rte_pktmbuf_pool_create("vhu_events", NB_MBUFS, 256, 0,
				     RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (mp == NULL)
		rte_exit(EXIT_FAILURE, "cannot create the mbuf pool\n");
	RTE_ETH_FOREACH_DEV(port) {
		if (port_init(port, mp) != 0)
			rte_exit(EXIT_FAILURE, "cannot start port %u\n", port);
		/* an application calling it, as it may on any port */
		printf("port %u: tx_done_cleanup %d\n", port, rte_eth_tx_done_cleanup(port, 0, 0));
	}
	printf("ready: %u port(s)\n", rte_eth_dev_count_avail());

	if (unplug_after > 0)
		unplug_while_polled(deadline, unplug_after);
	else
		poll_ports(deadline);
	RTE_ETH_FOREACH_DEV(port) {
		printf("port %u: received %" PRIu64 " sent %" PRIu64 "\n", port, received[port],
		       sent[port]);
		rte_eth_dev_stop(port);
		rte_eth_dev_close(port);
	}
	rte_eal_cleanup();
	return 0;
}
