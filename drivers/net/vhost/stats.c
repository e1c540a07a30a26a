/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Statistics: the rings' own counters (lib/vhost, written by the polling
 * lcore only) less their values at the last reset, kept per queue here.
 * They change while we read them: each is read with a relaxed atomic load,
 * as they are written with relaxed atomic stores (VHU_COUNT, vring.h).
 */
#include <stddef.h>
#include <stdio.h>

#include "pmd_internal.h"

/* reset copies the counters one by one */
_Static_assert(sizeof(struct vhu_vring_stats) % sizeof(uint64_t) == 0,
	       "struct vhu_vring_stats holds uint64_t counters only");

/* A counter of a queue since the last reset. */
static uint64_t
queue_counter(const struct vhost_queue *q, size_t offset)
{
	const uint8_t *now = (const uint8_t *)vhu_vring_stats(q->vring);
	const uint8_t *base = (const uint8_t *)&q->base;

	return __atomic_load_n((const uint64_t *)(now + offset), __ATOMIC_RELAXED) -
	       *(const uint64_t *)(base + offset);
}

/* The TX queue's mbufs left to the caller since the last reset. */
static uint64_t
queue_unsent(const struct vhost_queue *q)
{
	return __atomic_load_n(&q->unsent, __ATOMIC_RELAXED) - q->unsent_base;
}

#define VRING_COUNTER(q, field) queue_counter(q, offsetof(struct vhu_vring_stats, field))

int
eth_stats_get(struct rte_eth_dev *dev, struct rte_eth_stats *stats)
{
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++) {
		const struct vhost_queue *q = dev->data->rx_queues[i];

		if (q == NULL)
			continue;
		stats->ipackets += VRING_COUNTER(q, packets);
		stats->ibytes += VRING_COUNTER(q, bytes);
		stats->ierrors += VRING_COUNTER(q, dropped);
		stats->rx_nombuf += VRING_COUNTER(q, alloc_failed);
		if (i < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
			stats->q_ipackets[i] = VRING_COUNTER(q, packets);
			stats->q_ibytes[i] = VRING_COUNTER(q, bytes);
		}
	}
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++) {
		const struct vhost_queue *q = dev->data->tx_queues[i];

		if (q == NULL)
			continue;
		stats->opackets += VRING_COUNTER(q, packets);
		stats->obytes += VRING_COUNTER(q, bytes);
		stats->oerrors += VRING_COUNTER(q, dropped) + queue_unsent(q);
		if (i < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
			stats->q_opackets[i] = VRING_COUNTER(q, packets);
			stats->q_obytes[i] = VRING_COUNTER(q, bytes);
		}
	}
	return 0;
}

void
vhost_queue_stats_base(struct vhost_queue *q)
{
	const uint64_t *now = (const uint64_t *)vhu_vring_stats(q->vring);
	uint64_t *base = (uint64_t *)&q->base;

	for (size_t j = 0; j < sizeof(q->base) / sizeof(uint64_t); j++)
		base[j] = __atomic_load_n(&now[j], __ATOMIC_RELAXED);
	q->unsent_base = __atomic_load_n(&q->unsent, __ATOMIC_RELAXED);
}

static void
reset_queue_stats(void **queues, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		struct vhost_queue *q = queues[i];

		if (q != NULL)
			vhost_queue_stats_base(q);
	}
}

int
eth_stats_reset(struct rte_eth_dev *dev)
{
	reset_queue_stats(dev->data->rx_queues, dev->data->nb_rx_queues);
	reset_queue_stats(dev->data->tx_queues, dev->data->nb_tx_queues);
	return 0;
}

/*
 * Extended stats, per queue, with the names DPDK's vhost PMD uses
 * (rx_q<N>_<name>, tx_q<N>_<name>) plus our own counters at the end.
 */
static const struct {
	const char *name;
	size_t offset;
} vring_xstats[] = {
#define XSTAT(n, f) { n, offsetof(struct vhu_vring_stats, f) }
	XSTAT("good_packets", packets),
	XSTAT("good_bytes", bytes),
	XSTAT("multicast_packets", multicast),
	XSTAT("broadcast_packets", broadcast),
	XSTAT("undersize_packets", size[VHU_SIZE_UNDER_64]),
	XSTAT("size_64_packets", size[VHU_SIZE_64]),
	XSTAT("size_65_127_packets", size[VHU_SIZE_65_127]),
	XSTAT("size_128_255_packets", size[VHU_SIZE_128_255]),
	XSTAT("size_256_511_packets", size[VHU_SIZE_256_511]),
	XSTAT("size_512_1023_packets", size[VHU_SIZE_512_1023]),
	XSTAT("size_1024_1518_packets", size[VHU_SIZE_1024_1518]),
	XSTAT("size_1519_max_packets", size[VHU_SIZE_1519_MAX]),
	XSTAT("guest_notifications", notifications),
	XSTAT("guest_notifications_suppressed", notifications_suppressed),
	XSTAT("dropped_packets", dropped),
	XSTAT("malformed_chains", malformed),
	XSTAT("mbuf_alloc_failed", alloc_failed),
	XSTAT("zero_copy_packets", zero_copy),
#undef XSTAT
};

#define NB_VRING_XSTATS RTE_DIM(vring_xstats)

/* Per queue: the ring's counters; TX queues add missed_packets (no guest buffer). */
static unsigned int
xstats_count(const struct rte_eth_dev *dev)
{
	return (dev->data->nb_rx_queues + dev->data->nb_tx_queues) * NB_VRING_XSTATS +
	       dev->data->nb_tx_queues;
}

int
eth_xstats_get_names(struct rte_eth_dev *dev, struct rte_eth_xstat_name *names,
		     unsigned int size)
{
	unsigned int n = xstats_count(dev), k = 0;

	if (names == NULL || size < n)
		return (int)n;
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		for (unsigned int j = 0; j < NB_VRING_XSTATS; j++)
			snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "rx_q%u_%s", i,
				 vring_xstats[j].name);
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++) {
		for (unsigned int j = 0; j < NB_VRING_XSTATS; j++)
			snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "tx_q%u_%s", i,
				 vring_xstats[j].name);
		snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "tx_q%u_missed_packets", i);
	}
	return (int)n;
}

static void
queue_xstats(const struct vhost_queue *q, struct rte_eth_xstat *xs, unsigned int *k)
{
	for (unsigned int j = 0; j < NB_VRING_XSTATS; j++) {
		xs[*k].id = *k;
		xs[*k].value = q != NULL ? queue_counter(q, vring_xstats[j].offset) : 0;
		(*k)++;
	}
}

int
eth_xstats_get(struct rte_eth_dev *dev, struct rte_eth_xstat *xs, unsigned int n)
{
	unsigned int count = xstats_count(dev), k = 0;

	if (xs == NULL || n < count)
		return (int)count;
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		queue_xstats(dev->data->rx_queues[i], xs, &k);
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++) {
		const struct vhost_queue *q = dev->data->tx_queues[i];

		queue_xstats(q, xs, &k);
		xs[k].id = k;
		xs[k].value = q != NULL ? queue_unsent(q) : 0;
		k++;
	}
	return (int)count;
}
