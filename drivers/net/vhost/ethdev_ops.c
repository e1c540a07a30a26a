/* SPDX-License-Identifier: BSD-3-Clause */
/* The port's ethdev operations: configuration, lifecycle, capabilities, queues. */
#include <errno.h>
#include <stdalign.h>

#include <rte_eal.h>
#include <rte_malloc.h>

#include "pmd_internal.h"

/*
 * What the guests left to the host reaches the application as it enabled:
 * ethdev has checked the request against eth_dev_info()'s capabilities.
 */
static int
eth_dev_configure(struct rte_eth_dev *dev)
{
	struct pmd_internal *in = dev->data->dev_private;
	uint64_t rx = dev->data->dev_conf.rxmode.offloads;
	uint32_t offloads = in->legacy_ol_flags ? VHU_RX_OFFLOAD_LEGACY : 0;

	if (rx & (RTE_ETH_RX_OFFLOAD_TCP_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM))
		offloads |= VHU_RX_OFFLOAD_CKSUM;
	if (rx & RTE_ETH_RX_OFFLOAD_TCP_LRO)
		offloads |= VHU_RX_OFFLOAD_LRO;
	if (rx & RTE_ETH_RX_OFFLOAD_SCATTER)
		offloads |= VHU_RX_OFFLOAD_SCATTER;
	else if (in->zero_copy)
		PMD_LOG(WARNING, "%s: dequeue-zero-copy=1 hands out mbuf chains, which need the scatter RX offload: frames are copied until it is enabled",
			dev->data->name);
	vhu_port_set_rx_offloads(in->vport, offloads);
	return 0;
}

static void
set_queue_states(struct rte_eth_dev *dev, uint8_t state)
{
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		dev->data->rx_queue_state[i] = state;
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++)
		dev->data->tx_queue_state[i] = state;
}

static int
eth_dev_start(struct rte_eth_dev *dev)
{
	int ret = eth_rx_intr_start(dev);

	if (ret < 0)
		return ret;
	set_queue_states(dev, RTE_ETH_QUEUE_STATE_STARTED);
	return 0;
}

static int
eth_dev_stop(struct rte_eth_dev *dev)
{
	set_queue_states(dev, RTE_ETH_QUEUE_STATE_STOPPED);
	return 0;
}

static void
release_queues(void **queues, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		rte_free(queues[i]);
		queues[i] = NULL;
	}
}

int
eth_dev_close(struct rte_eth_dev *dev)
{
	struct pmd_internal *in = dev->data->dev_private;

	if (rte_eal_process_type() != RTE_PROC_PRIMARY || in == NULL)
		return 0;
	eth_rx_intr_uninstall(dev);	/* before the port closes the fds it lists */
	vhu_port_destroy(in->vport);
	in->vport = NULL;
	release_queues(dev->data->rx_queues, dev->data->nb_rx_queues);
	release_queues(dev->data->tx_queues, dev->data->nb_tx_queues);
	return 0;
}

/*
 * The link status is what the library last reported (on_link_changed, on the
 * control thread): reading it must neither overwrite a newer report nor
 * raise an event of its own.
 */
int
eth_link_update(struct rte_eth_dev *dev __rte_unused, int wait __rte_unused)
{
	return -1;	/* ethdev's "unchanged" */
}

/* The port receives every frame the guest sends: these modes are always on. */
int
eth_mode_always_on(struct rte_eth_dev *dev __rte_unused)
{
	return 0;
}

/*
 * ethdev has kept @mtu within dev_info's bounds, the guest's MTU above all:
 * storing it (ethdev does) is all there is to it, no frame size of ours
 * depends on it.
 */
static int
eth_mtu_set(struct rte_eth_dev *dev __rte_unused, uint16_t mtu __rte_unused)
{
	return 0;
}

int
eth_dev_info(struct rte_eth_dev *dev, struct rte_eth_dev_info *info)
{
	struct pmd_internal *in = dev->data->dev_private;

	uint16_t guest_mtu = in->vport != NULL ? vhu_port_mtu(in->vport) : 0;

	info->max_mac_addrs = 1;
	/* Not above the MTU the front end gave its guest, when it gave one. */
	info->min_mtu = RTE_ETHER_MIN_MTU;
	info->max_mtu = guest_mtu != 0 ? guest_mtu : VHU_MAX_MTU;
	info->max_rx_pktlen = (uint32_t)-1;
	info->max_rx_queues = in->queue_pairs;
	info->max_tx_queues = in->queue_pairs;
	/*
	 * Room for a smallest frame after the headroom: a pool with none would
	 * have each frame's copy chain mbuf after empty mbuf until it ran dry.
	 */
	info->min_rx_bufsize = RTE_ETHER_MIN_LEN;
	/*
	 * RX: without offloads every checksum a guest left to us is finished and
	 * its GSO frames cut; with them, partial checksums are flagged
	 * RTE_MBUF_F_RX_L4_CKSUM_NONE and GSO frames arrive whole with
	 * RTE_MBUF_F_RX_LRO (netoffload.h). With legacy-ol-flags=1 guests'
	 * requests arrive as TX requests instead, which no RX offload describes.
	 * TX: requests are handed to the guest, or finished in software.
	 */
	info->rx_offload_capa = RTE_ETH_RX_OFFLOAD_SCATTER;
	if (!in->legacy_ol_flags)
		info->rx_offload_capa |= RTE_ETH_RX_OFFLOAD_TCP_CKSUM |
					 RTE_ETH_RX_OFFLOAD_UDP_CKSUM |
					 (in->tso ? RTE_ETH_RX_OFFLOAD_TCP_LRO : 0);
	info->max_lro_pkt_size = VHU_MAX_LRO_PKT_SIZE;
	info->tx_offload_capa = RTE_ETH_TX_OFFLOAD_MULTI_SEGS | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM |
				RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM |
				RTE_ETH_TX_OFFLOAD_UDP_TSO | RTE_ETH_TX_OFFLOAD_TCP_TSO;
	info->speed_capa = RTE_ETH_LINK_SPEED_10G;
	return 0;
}

static struct vhost_queue *
queue_create(struct rte_eth_dev *dev, uint16_t ring_index, unsigned int socket_id)
{
	struct pmd_internal *in = dev->data->dev_private;
	struct vhost_queue *q = rte_zmalloc_socket(NULL, sizeof(*q), alignof(struct vhost_queue),
						   (int)socket_id);

	if (q == NULL) {
		PMD_LOG(ERR, "%s: out of memory for a queue", dev->data->name);
		return NULL;
	}
	q->vring = vhu_port_vring(in->vport, ring_index);
	q->port_id = dev->data->port_id;
	vhost_queue_stats_base(q);
	return q;
}

static int
eth_rx_queue_setup(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc __rte_unused,
		   unsigned int socket_id, const struct rte_eth_rxconf *conf __rte_unused,
		   struct rte_mempool *mp)
{
	struct vhost_queue *q = queue_create(dev, 2 * qid + 1, socket_id);

	if (q == NULL)
		return -ENOMEM;
	q->mb_pool = mp;
	rte_free(dev->data->rx_queues[qid]);
	dev->data->rx_queues[qid] = q;
	return 0;
}

static int
eth_tx_queue_setup(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc __rte_unused,
		   unsigned int socket_id, const struct rte_eth_txconf *conf __rte_unused)
{
	struct vhost_queue *q = queue_create(dev, 2 * qid, socket_id);

	if (q == NULL)
		return -ENOMEM;
	rte_free(dev->data->tx_queues[qid]);
	dev->data->tx_queues[qid] = q;
	return 0;
}

static void
eth_rx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	rte_free(dev->data->rx_queues[qid]);
	dev->data->rx_queues[qid] = NULL;
}

static void
eth_tx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	rte_free(dev->data->tx_queues[qid]);
	dev->data->tx_queues[qid] = NULL;
}

/* Transmitted mbufs are copied and freed in the burst: none is ever held to clean up. */
static int
eth_tx_done_cleanup(void *txq __rte_unused, uint32_t free_cnt __rte_unused)
{
	return 0;
}

const struct eth_dev_ops eth_vhost_ops = {
	.dev_configure = eth_dev_configure,
	.dev_start = eth_dev_start,
	.dev_stop = eth_dev_stop,
	.dev_close = eth_dev_close,
	.link_update = eth_link_update,
	.promiscuous_enable = eth_mode_always_on,
	.promiscuous_disable = eth_mode_always_on,
	.allmulticast_enable = eth_mode_always_on,
	.allmulticast_disable = eth_mode_always_on,
	.mtu_set = eth_mtu_set,
	.stats_get = eth_stats_get,
	.stats_reset = eth_stats_reset,
	.xstats_get = eth_xstats_get,
	.xstats_reset = eth_stats_reset,
	.xstats_get_names = eth_xstats_get_names,
	.dev_infos_get = eth_dev_info,
	.rx_queue_setup = eth_rx_queue_setup,
	.rx_queue_release = eth_rx_queue_release,
	.tx_queue_setup = eth_tx_queue_setup,
	.tx_queue_release = eth_tx_queue_release,
	.tx_done_cleanup = eth_tx_done_cleanup,
	.rx_queue_intr_enable = eth_rx_queue_intr_enable,
	.rx_queue_intr_disable = eth_rx_queue_intr_disable,
	.get_monitor_addr = eth_get_monitor_addr,
};
