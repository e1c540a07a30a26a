/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * eth_vhost: an ethdev port whose other end is a vhost-user front end (a VM
 * through QEMU, or a container through virtio-user). This file registers the
 * driver, creates and removes ports, turns the library's events into ethdev
 * events and implements the public API (rte_eth_vhost.h).
 */
#include <errno.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <ethdev_driver.h>
#include <bus_vdev_driver.h>
#include <rte_malloc.h>
#include <rte_spinlock.h>

#include "devargs.h"
#include "pmd_internal.h"
#include "rte_eth_vhost.h"

RTE_LOG_REGISTER(vhu_pmd_logtype, pmd.net.vhu, INFO);

/* ---- events from the library (control thread) ---- */

static void
on_link_changed(void *ctx, bool up)
{
	struct pmd_internal *in = ctx;
	struct rte_eth_link link = {
		.link_speed = RTE_ETH_SPEED_NUM_10G,
		.link_duplex = RTE_ETH_LINK_FULL_DUPLEX,
		.link_autoneg = RTE_ETH_LINK_FIXED,
		.link_status = up ? RTE_ETH_LINK_UP : RTE_ETH_LINK_DOWN,
	};

	/*
	 * As a NIC shows its link's MTU: the one the front end gave its guest.
	 * The control thread may call us before vhost_probe has stored the port
	 * vhu_port_create returned (a front end already there): in->vport is
	 * published with a release store and read here with an acquire load.
	 */
	struct vhu_port *port = __atomic_load_n(&in->vport, __ATOMIC_ACQUIRE);

	if (up && port != NULL && vhu_port_mtu(port) != 0)
		in->eth_dev->data->mtu = vhu_port_mtu(port);
	if (rte_eth_linkstatus_set(in->eth_dev, &link) == 0)
		rte_eth_dev_callback_process(in->eth_dev, RTE_ETH_EVENT_INTR_LSC, NULL);
}

static void
on_vring_state_changed(void *ctx, uint16_t ring_index, bool enabled)
{
	struct pmd_internal *in = ctx;

	PMD_LOG(INFO, "%s: %s queue %u %s", in->eth_dev->data->name,
		ring_index % 2 ? "RX" : "TX", ring_index / 2, enabled ? "enabled" : "disabled");
	rte_spinlock_lock(&in->queue_event_lock);
	in->ring_enabled[ring_index] = enabled;
	rte_spinlock_unlock(&in->queue_event_lock);
	rte_eth_dev_callback_process(in->eth_dev, RTE_ETH_EVENT_QUEUE_STATE, NULL);
}

static const struct vhu_port_ops port_ops = {
	.link_changed = on_link_changed,
	.vring_state_changed = on_vring_state_changed,
};

/* ---- public API (rte_eth_vhost.h) ---- */

static struct pmd_internal *
vhost_port(uint16_t port_id)
{
	if (!rte_eth_dev_is_valid_port(port_id) ||
	    rte_eth_devices[port_id].dev_ops != &eth_vhost_ops)
		return NULL;
	return rte_eth_devices[port_id].data->dev_private;
}

__attribute__((visibility("default"))) int
rte_eth_vhost_get_queue_event(uint16_t port_id, struct rte_eth_vhost_queue_event *event)
{
	struct pmd_internal *in = vhost_port(port_id);
	int ret = -1;

	if (in == NULL || event == NULL)
		return -1;
	rte_spinlock_lock(&in->queue_event_lock);
	for (uint32_t i = 0; i < 2u * in->queue_pairs; i++) {
		if (in->ring_enabled[i] == in->ring_reported[i])
			continue;
		in->ring_reported[i] = in->ring_enabled[i];
		event->queue_id = (uint16_t)(i / 2);
		event->rx = i % 2 == 1;
		event->enable = in->ring_enabled[i];
		ret = 0;
		break;
	}
	rte_spinlock_unlock(&in->queue_event_lock);
	return ret;
}

__attribute__((visibility("default"))) int
rte_eth_vhost_get_vid_from_port_id(uint16_t port_id)
{
	struct pmd_internal *in = vhost_port(port_id);

	return in != NULL && in->vport != NULL ? vhu_port_session_id(in->vport) : -1;
}

/* ---- probe / remove ---- */

static int
vhost_probe(struct rte_vdev_device *vdev)
{
	struct rte_device *dev = &vdev->device;
	const char *name = rte_dev_name(dev);
	const struct rte_devargs *devargs = rte_dev_devargs(dev);
	const char *args = devargs != NULL && devargs->args != NULL ? devargs->args : "";
	struct rte_eth_dev *eth_dev;
	struct pmd_internal *in;
	struct rte_ether_addr *mac;
	struct pmd_args a;
	int numa = rte_dev_numa_node(dev);

	if (rte_eal_process_type() != RTE_PROC_PRIMARY)
		return eth_vhost_attach_secondary(vdev);
	if (pmd_parse_args(name, args, &a) < 0)
		return -EINVAL;

	eth_dev = rte_eth_dev_allocate(name);
	if (eth_dev == NULL) {
		PMD_LOG(ERR, "%s: cannot allocate an ethdev port", name);
		return -ENOMEM;
	}
	in = rte_zmalloc_socket(name, sizeof(*in), 0, numa);
	mac = rte_zmalloc_socket(name, sizeof(*mac), 0, numa);
	if (in == NULL || mac == NULL) {
		PMD_LOG(ERR, "%s: out of memory", name);
		rte_free(in);
		rte_free(mac);
		rte_eth_dev_release_port(eth_dev);
		return -ENOMEM;
	}
	/* 56:48:4F:53:54 is "VHOST", the prefix DPDK's vhost PMD uses too. */
	*mac = (struct rte_ether_addr){ { 0x56, 0x48, 0x4f, 0x53, 0x54,
					 (uint8_t)eth_dev->data->port_id } };
	in->eth_dev = eth_dev;
	in->queue_pairs = a.queues;
	in->tso = a.tso;
	in->legacy_ol_flags = a.legacy_ol_flags;
	in->zero_copy = a.zero_copy;
	rte_spinlock_init(&in->queue_event_lock);
	memcpy(in->iface, a.iface, sizeof(in->iface));

	eth_dev->data->dev_private = in;
	eth_dev->data->mac_addrs = mac;
	eth_dev->data->dev_link = (struct rte_eth_link){
		.link_speed = RTE_ETH_SPEED_NUM_10G,
		.link_duplex = RTE_ETH_LINK_FULL_DUPLEX,
		.link_autoneg = RTE_ETH_LINK_FIXED,
		.link_status = RTE_ETH_LINK_DOWN,
	};
	eth_dev->data->dev_flags = RTE_ETH_DEV_INTR_LSC;
	eth_dev->data->numa_node = numa;
	eth_dev->data->promiscuous = 1;
	eth_dev->data->all_multicast = 1;
	eth_dev->dev_ops = &eth_vhost_ops;
	eth_dev->rx_pkt_burst = eth_vhost_rx;
	eth_dev->tx_pkt_burst = eth_vhost_tx;
	eth_dev->rx_queue_count = eth_vhost_rx_queue_count;
	eth_dev->device = dev;

	struct vhu_port_config cfg = {
		.name = name,
		.socket_path = a.iface,
		.queue_pairs = a.queues,
		.client = a.client,
		.tso = a.tso,
		.zero_copy_threshold = a.zero_copy ? a.zc_threshold : 0,
		.linear_buffer = a.linear_buffer,
		.ext_buffer = a.ext_buffer,
		.postcopy = a.postcopy,
		.iommu = a.iommu,
		.socket_id = numa,
		.mbuf_port = eth_dev->data->port_id,
		.ops = &port_ops,
		.ops_ctx = in,
	};
	struct vhu_port *port = vhu_port_create(&cfg);

	/* read by on_link_changed on the control thread, which may run already */
	__atomic_store_n(&in->vport, port, __ATOMIC_RELEASE);
	if (port == NULL) {
		rte_eth_dev_release_port(eth_dev);	/* frees in and mac */
		return -EIO;
	}
	rte_eth_dev_probing_finish(eth_dev);
	PMD_LOG(INFO, "%s: vhost-user port on %s (%s), %u queue pair(s), driver vhu %s",
		name, a.iface, a.client ? "client" : "server", a.queues, VHU_VERSION);
	return 0;
}

static int
vhost_remove(struct rte_vdev_device *vdev)
{
	struct rte_eth_dev *eth_dev = rte_eth_dev_allocated(rte_dev_name(&vdev->device));

	if (eth_dev == NULL) {
		/*
		 * Already closed by the application, maybe from its LSC
		 * callback: the control thread then tears the port down and
		 * ends after the callback returns. rte_eal_cleanup() calls us
		 * before it closes the log that thread writes to.
		 */
		vhu_wait_ports_destroyed();
		return 0;
	}
	/*
	 * Hot-unplug of a started port: ethdev closes only stopped ones, so it
	 * is stopped through ethdev first. As for any stop, the application
	 * must have stopped polling it: rte_eth_dev_stop() and the release
	 * point the port's bursts at ethdev's stand-ins by zeroing
	 * rte_eth_fp_ops[port] and then filling it in (DPDK 22.11
	 * eth_dev_fp_ops_reset()), and a burst racing with that reads NULL
	 * (no driver can make it atomic). Bursts after the removal reach the
	 * stand-ins. A secondary only lets its view of the port go.
	 */
	if (rte_eal_process_type() == RTE_PROC_PRIMARY)
		rte_eth_dev_stop(eth_dev->data->port_id);
	return rte_eth_dev_close(eth_dev->data->port_id);
}

static struct rte_vdev_driver vhost_driver = {
	.probe = vhost_probe,
	.remove = vhost_remove,
};

RTE_PMD_REGISTER_VDEV(net_vhost, vhost_driver);
RTE_PMD_REGISTER_ALIAS(net_vhost, eth_vhost);
RTE_PMD_REGISTER_PARAM_STRING(net_vhost, PMD_PARAM_STRING);
