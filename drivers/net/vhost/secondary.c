/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The port in a secondary process (DPDK's dpdk-proc-info, dpdk-pdump,
 * dpdk-dumpcap, or an application's own): attached to the port the primary
 * created, as DPDK's net_vhost does. The vhost-user connection, the guest's
 * memory and the rings' positions are the primary's alone; what lives in
 * shared memory is the port's ethdev data, its private data and its queues,
 * and the library's port with the rings' counters (vhu_port_create()). So a
 * secondary reads the port (device info, link, stats and xstats, and may
 * reset the counters) and is refused what would act on it.
 */
#include <errno.h>

#include <rte_ethdev.h>
#include <ethdev_driver.h>
#include <bus_vdev_driver.h>

#include "pmd_internal.h"

static int
refused(struct rte_eth_dev *dev, const char *what)
{
	PMD_LOG(ERR, "%s: %s refused in a secondary process: the primary runs the port",
		dev->data->name, what);
	return -ENOTSUP;
}

static int
refuse_start(struct rte_eth_dev *dev)
{
	return refused(dev, "start");
}

static int
refuse_stop(struct rte_eth_dev *dev)
{
	return refused(dev, "stop");
}

static int
refuse_mtu_set(struct rte_eth_dev *dev, uint16_t mtu __rte_unused)
{
	return refused(dev, "MTU change");
}

/*
 * A burst here would walk the guest's rings, which are mapped in the primary
 * only. Said once per process and direction: an application polling in a
 * loop would fill the log otherwise.
 */
static uint16_t
refuse_burst(const struct vhost_queue *q, const char *what, bool *said)
{
	if (!__atomic_exchange_n(said, true, __ATOMIC_RELAXED))
		PMD_LOG(ERR, "%s: %s bursts refused in a secondary process: the primary polls the port (logged once)",
			rte_eth_devices[q->port_id].data->name, what);
	return 0;
}

static uint16_t
refuse_rx(void *q, struct rte_mbuf **pkts __rte_unused, uint16_t count __rte_unused)
{
	static bool said;

	return refuse_burst(q, "RX", &said);
}

static uint16_t
refuse_tx(void *q, struct rte_mbuf **pkts __rte_unused, uint16_t count __rte_unused)
{
	static bool said;

	return refuse_burst(q, "TX", &said);
}

/*
 * Configuring and setting queues up are missing rather than refused: ethdev
 * rewrites the port's shared configuration and releases its queues before it
 * calls those, and answers -ENOTSUP without touching anything when they are
 * missing. Promiscuous and all-multicast can be asked for (they are always
 * on) but not turned off (dpdk-dumpcap tries, and ethdev would then record
 * them off in the shared data).
 */
static const struct eth_dev_ops secondary_ops = {
	.dev_start = refuse_start,
	.dev_stop = refuse_stop,
	.dev_close = eth_dev_close,	/* lets the process's view of the port go */
	.link_update = eth_link_update,
	.promiscuous_enable = eth_mode_always_on,
	.allmulticast_enable = eth_mode_always_on,
	.mtu_set = refuse_mtu_set,
	.stats_get = eth_stats_get,
	.stats_reset = eth_stats_reset,
	.xstats_get = eth_xstats_get,
	.xstats_reset = eth_stats_reset,
	.xstats_get_names = eth_xstats_get_names,
	.dev_infos_get = eth_dev_info,
};

int
eth_vhost_attach_secondary(struct rte_vdev_device *vdev)
{
	const char *name = rte_vdev_device_name(vdev);
	struct rte_eth_dev *eth_dev = rte_eth_dev_attach_secondary(name);

	if (eth_dev == NULL) {
		PMD_LOG(ERR, "%s: the primary process has no such port", name);
		return -ENODEV;
	}
	eth_dev->dev_ops = &secondary_ops;
	eth_dev->rx_pkt_burst = refuse_rx;
	eth_dev->tx_pkt_burst = refuse_tx;
	eth_dev->device = &vdev->device;
	rte_eth_dev_probing_finish(eth_dev);
	/* NOTICE: dpdk-dumpcap logs at that level; the line says whose driver attached. */
	PMD_LOG(NOTICE, "%s: port %u of the primary process attached (secondary process: info, link, stats and xstats only), driver vhu %s",
		name, eth_dev->data->port_id, VHU_VERSION);
	return 0;
}
