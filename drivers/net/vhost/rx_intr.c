/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sleeping while RX queues are empty. RX interrupts (intr_conf.rxq = 1,
 * l3fwd-power): the port's interrupt handle lists, per RX queue, the
 * interrupt fd of its guest TX ring (vhu_vring_intr_fd: readable when the
 * guest kicks the ring, the same fd whatever front end connects), and
 * rx_queue_intr_enable/disable arm and disarm the ring. Power monitoring
 * (rte_power_pmd_mgmt's monitor mode): get_monitor_addr names the word of
 * guest memory the guest writes next (vhu_vring_monitor).
 *
 * The handle lives from the first start with interrupts to close: the
 * application registers its fds once (rte_eth_dev_rx_intr_ctl_q) and they
 * stay valid across stop/start and reconnections. Only a new number of RX
 * queues replaces it, unregistering what the application registered.
 */
/* DPDK 22.11 still calls the interrupt-instance allocators experimental. */
#define ALLOW_EXPERIMENTAL_API

#include <errno.h>

#include <rte_interrupts.h>

#include "pmd_internal.h"

static struct vhu_vring *
rx_vring(struct rte_eth_dev *dev, uint16_t qid)
{
	struct pmd_internal *in = dev->data->dev_private;

	return vhu_port_vring(in->vport, (uint16_t)(2 * qid + 1));
}

void
eth_rx_intr_uninstall(struct rte_eth_dev *dev)
{
	struct rte_intr_handle *h = dev->intr_handle;

	if (h == NULL)
		return;
	/* The application's epoll registrations point into the handle. */
	rte_intr_free_epoll_fd(h);
	rte_intr_vec_list_free(h);
	rte_intr_instance_free(h);
	dev->intr_handle = NULL;
}

/*
 * RTE_INTR_HANDLE_VDEV with a counter size of 0: EAL reads nothing from the
 * fds when they fire (they are epoll instances, which cannot be read); the
 * ring clears them when armed again. max_intr counts one more than the
 * queues, as for a NIC with a link interrupt besides, so that EAL reports
 * other interrupts as allowed.
 */
static int
install(struct rte_eth_dev *dev)
{
	uint16_t nb = dev->data->nb_rx_queues;
	struct rte_intr_handle *h = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);

	dev->intr_handle = h;
	if (h == NULL || rte_intr_type_set(h, RTE_INTR_HANDLE_VDEV) != 0 ||
	    rte_intr_efd_counter_size_set(h, 0) != 0 ||
	    rte_intr_vec_list_alloc(h, NULL, nb) != 0)
		goto fail;
	for (uint16_t i = 0; i < nb; i++) {
		int fd = vhu_vring_intr_fd(rx_vring(dev, i));

		if (fd < 0 || rte_intr_vec_list_index_set(h, i, RTE_INTR_VEC_RXTX_OFFSET + i) != 0 ||
		    rte_intr_efds_index_set(h, i, fd) != 0)
			goto fail;
	}
	if (rte_intr_nb_efd_set(h, nb) != 0 || rte_intr_max_intr_set(h, nb + 1) != 0)
		goto fail;
	return 0;
fail:
	PMD_LOG(ERR, "%s: cannot set up RX interrupts", dev->data->name);
	eth_rx_intr_uninstall(dev);
	return -ENOMEM;
}

int
eth_rx_intr_start(struct rte_eth_dev *dev)
{
	struct rte_intr_handle *h = dev->intr_handle;

	if (!dev->data->dev_conf.intr_conf.rxq) {
		eth_rx_intr_uninstall(dev);
		return 0;
	}
	if (h != NULL && rte_intr_nb_efd_get(h) == dev->data->nb_rx_queues)
		return 0;
	eth_rx_intr_uninstall(dev);
	return install(dev);
}

int
eth_rx_queue_intr_enable(struct rte_eth_dev *dev, uint16_t qid)
{
	vhu_vring_intr_enable(rx_vring(dev, qid), true);
	return 0;
}

int
eth_rx_queue_intr_disable(struct rte_eth_dev *dev, uint16_t qid)
{
	vhu_vring_intr_enable(rx_vring(dev, qid), false);
	return 0;
}

/* -EAGAIN: nothing to sleep on now (no front end, or frames waiting): poll again. */
int
eth_get_monitor_addr(void *rxq, struct rte_power_monitor_cond *pmc)
{
	const struct vhost_queue *q = rxq;

	return vhu_vring_monitor(q->vring, pmc) == 0 ? 0 : -EAGAIN;
}
