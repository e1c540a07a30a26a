/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the files of the eth_vhost PMD share: the port's private data, its
 * queues, the log. Ethdev glue only: the protocol and the rings are in
 * lib/vhost (vhu.h).
 *
 * Queue mapping: ethdev RX queue i polls guest TX ring 2i+1, ethdev TX queue i
 * fills guest RX ring 2i.
 */
#ifndef VHU_PMD_INTERNAL_H
#define VHU_PMD_INTERNAL_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include <rte_ethdev.h>
#include <ethdev_driver.h>
#include <rte_log.h>
#include <rte_spinlock.h>

#include "vhu.h"

extern int vhu_pmd_logtype;

#define PMD_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_ ## level, vhu_pmd_logtype, "VHU: " fmt "\n", ##__VA_ARGS__)

/* The largest MTU without a guest's own: a whole 64 KiB IP packet. */
#define VHU_MAX_MTU UINT16_MAX

/*
 * One ethdev queue, polled by one lcore, which writes @unsent every transmit
 * burst: whole cache lines of its own (an allocation each, cache aligned),
 * so that no other queue's lcore writes a line of it.
 */
struct vhost_queue {
	struct vhu_vring *vring;
	struct rte_mempool *mb_pool;	/* RX queues only */
	uint16_t port_id;
	uint64_t unsent;		/* TX: mbufs left to the caller (no guest buffer);
				 * written by the polling lcore, read atomically */
	/* Counter values at the last stats reset. */
	struct vhu_vring_stats base;
	uint64_t unsent_base;
} __rte_cache_aligned;

_Static_assert(alignof(struct vhost_queue) == RTE_CACHE_LINE_SIZE,
	       "a queue fills whole cache lines: no other queue's data shares one");

struct pmd_internal {
	struct vhu_port *vport;
	struct rte_eth_dev *eth_dev;
	uint16_t queue_pairs;
	bool tso;
	bool legacy_ol_flags;	/* guests' offload requests as TX requests on RX mbufs */
	bool zero_copy;		/* dequeue-zero-copy: frames are chains */
	/* Ring enable states as the front end set them, and as last reported
	 * through rte_eth_vhost_get_queue_event(). */
	rte_spinlock_t queue_event_lock;
	bool ring_enabled[VHU_MAX_VRINGS];
	bool ring_reported[VHU_MAX_VRINGS];
	char iface[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* rxtx.c: the burst functions. */
uint16_t eth_vhost_rx(void *q, struct rte_mbuf **pkts, uint16_t count);
uint16_t eth_vhost_tx(void *q, struct rte_mbuf **pkts, uint16_t count);
uint32_t eth_vhost_rx_queue_count(void *q);

/* stats.c: basic and extended statistics. */
int eth_stats_get(struct rte_eth_dev *dev, struct rte_eth_stats *stats);
int eth_stats_reset(struct rte_eth_dev *dev);
/* Takes the queue's counters as they are now as its zero (reset, set-up). */
void vhost_queue_stats_base(struct vhost_queue *q);
int eth_xstats_get(struct rte_eth_dev *dev, struct rte_eth_xstat *xs, unsigned int n);
int eth_xstats_get_names(struct rte_eth_dev *dev, struct rte_eth_xstat_name *names,
			 unsigned int size);

/*
 * rx_intr.c: RX interrupts, set up at start when the application asked for
 * them (intr_conf.rxq), removed at close; the queues' arming; the address
 * to monitor for power management.
 */
int eth_rx_intr_start(struct rte_eth_dev *dev);
void eth_rx_intr_uninstall(struct rte_eth_dev *dev);
int eth_rx_queue_intr_enable(struct rte_eth_dev *dev, uint16_t qid);
int eth_rx_queue_intr_disable(struct rte_eth_dev *dev, uint16_t qid);
int eth_get_monitor_addr(void *rxq, struct rte_power_monitor_cond *pmc);

/* ethdev_ops.c: the port's operations; closing also destroys its vhost-user port. */
extern const struct eth_dev_ops eth_vhost_ops;
int eth_dev_close(struct rte_eth_dev *dev);
/* ... and those a secondary process has too (secondary.c). */
int eth_dev_info(struct rte_eth_dev *dev, struct rte_eth_dev_info *info);
int eth_link_update(struct rte_eth_dev *dev, int wait);
int eth_mode_always_on(struct rte_eth_dev *dev);

/* secondary.c: the primary's port as a secondary process sees it. */
struct rte_vdev_device;
int eth_vhost_attach_secondary(struct rte_vdev_device *vdev);

#endif /* VHU_PMD_INTERNAL_H */
