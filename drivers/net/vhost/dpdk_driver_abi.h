/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The part of DPDK 22.11's driver interface this PMD needs.
 *
 * Debian's libdpdk-dev installs only the application headers: DPDK 22.11 is
 * built there without enable_driver_sdk, so ethdev_driver.h, ethdev_vdev.h,
 * bus_vdev_driver.h and dev_driver.h are missing, although the functions they
 * declare are exported by the shared libraries (symbol version INTERNAL).
 * This header declares the structures and functions of that interface with
 * the 22.11 ABI layout. meson.build pins the DPDK version to 22.11.x, the only
 * one whose layout this matches (a stable branch keeps its ABI), and probe
 * checks at run time that the ethdev layout agrees with the library's.
 */
#ifndef VHU_DPDK_DRIVER_ABI_H
#define VHU_DPDK_DRIVER_ABI_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/queue.h>

#include <rte_common.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_ethdev_core.h>

/* ---- dev_driver.h ---- */

struct rte_driver {
	RTE_TAILQ_ENTRY(rte_driver) next;
	const char *name;
	const char *alias;
};

/* ---- bus_vdev_driver.h ---- */

struct rte_vdev_device {
	RTE_TAILQ_ENTRY(rte_vdev_device) next;
	struct rte_device *device_start[];	/* struct rte_device follows; opaque here */
};

static inline struct rte_device *
vdev_to_device(struct rte_vdev_device *vdev)
{
	return (struct rte_device *)(void *)vdev->device_start;
}

typedef int (rte_vdev_probe_t)(struct rte_vdev_device *dev);
typedef int (rte_vdev_remove_t)(struct rte_vdev_device *dev);
typedef int (rte_vdev_dma_map_t)(struct rte_vdev_device *dev, void *addr,
				 uint64_t iova, size_t len);
typedef int (rte_vdev_dma_unmap_t)(struct rte_vdev_device *dev, void *addr,
				   uint64_t iova, size_t len);

struct rte_vdev_driver {
	RTE_TAILQ_ENTRY(rte_vdev_driver) next;
	struct rte_driver driver;
	rte_vdev_probe_t *probe;
	rte_vdev_remove_t *remove;
	rte_vdev_dma_map_t *dma_map;
	rte_vdev_dma_unmap_t *dma_unmap;
	uint32_t drv_flags;
};

void rte_vdev_register(struct rte_vdev_driver *driver);
void rte_vdev_unregister(struct rte_vdev_driver *driver);

/*
 * Registration, in the shape dpdk-pmdinfo.py and EAL expect: a constructor
 * registers the driver under @nm with alias @alias_str, and a symbol named
 * this_pmd_name<N> holds the name for the build-time PMD info generator.
 */
#define VHU_PMD_REGISTER_VDEV(nm, alias_str, vdrv) \
	RTE_INIT(vhu_register_ ## nm) \
	{ \
		(vdrv).driver.name = RTE_STR(nm); \
		(vdrv).driver.alias = alias_str; \
		rte_vdev_register(&(vdrv)); \
	} \
	RTE_PMD_EXPORT_NAME(nm, __COUNTER__)

/* ---- ethdev_driver.h ---- */

struct rte_eth_rxtx_callback;

struct rte_eth_dev {
	eth_rx_burst_t rx_pkt_burst;
	eth_tx_burst_t tx_pkt_burst;
	eth_tx_prep_t tx_pkt_prepare;
	eth_rx_queue_count_t rx_queue_count;
	eth_rx_descriptor_status_t rx_descriptor_status;
	eth_tx_descriptor_status_t tx_descriptor_status;
	struct rte_eth_dev_data *data;
	void *process_private;
	const struct eth_dev_ops *dev_ops;
	struct rte_device *device;
	struct rte_intr_handle *intr_handle;
	struct rte_eth_dev_cb_list link_intr_cbs;
	struct rte_eth_rxtx_callback *post_rx_burst_cbs[RTE_MAX_QUEUES_PER_PORT];
	struct rte_eth_rxtx_callback *pre_tx_burst_cbs[RTE_MAX_QUEUES_PER_PORT];
	enum rte_eth_dev_state state;
	void *security_ctx;
} __rte_cache_aligned;

struct rte_eth_dev_data {
	char name[RTE_ETH_NAME_MAX_LEN];
	void **rx_queues;
	void **tx_queues;
	uint16_t nb_rx_queues;
	uint16_t nb_tx_queues;
	struct rte_eth_dev_sriov sriov;
	void *dev_private;
	struct rte_eth_link dev_link;
	struct rte_eth_conf dev_conf;
	uint16_t mtu;
	uint32_t min_rx_buf_size;
	uint64_t rx_mbuf_alloc_failed;
	struct rte_ether_addr *mac_addrs;
	uint64_t mac_pool_sel[RTE_ETH_NUM_RECEIVE_MAC_ADDR];
	struct rte_ether_addr *hash_mac_addrs;
	uint16_t port_id;
	__extension__ uint8_t promiscuous : 1,
		scattered_rx : 1,
		all_multicast : 1,
		dev_started : 1,
		lro : 1,
		dev_configured : 1,
		flow_configured : 1;
	uint8_t rx_queue_state[RTE_MAX_QUEUES_PER_PORT];
	uint8_t tx_queue_state[RTE_MAX_QUEUES_PER_PORT];
	uint32_t dev_flags;
	int numa_node;
	struct rte_vlan_filter_conf vlan_filter_conf;
	struct rte_eth_dev_owner owner;
	uint16_t representor_id;
	uint16_t backer_port_id;
	pthread_mutex_t flow_ops_mutex;
} __rte_cache_aligned;

typedef void (*vhu_unused_op)(void);

/*
 * struct eth_dev_ops of 22.11: the operations this PMD implements are typed,
 * every other slot keeps its place in the layout as an unused pointer.
 */
struct eth_dev_ops {
	int (*dev_configure)(struct rte_eth_dev *dev);
	int (*dev_start)(struct rte_eth_dev *dev);
	int (*dev_stop)(struct rte_eth_dev *dev);
	vhu_unused_op dev_set_link_up;
	vhu_unused_op dev_set_link_down;
	int (*dev_close)(struct rte_eth_dev *dev);
	vhu_unused_op dev_reset;
	int (*link_update)(struct rte_eth_dev *dev, int wait_to_complete);
	vhu_unused_op is_removed;

	int (*promiscuous_enable)(struct rte_eth_dev *dev);
	int (*promiscuous_disable)(struct rte_eth_dev *dev);
	int (*allmulticast_enable)(struct rte_eth_dev *dev);
	int (*allmulticast_disable)(struct rte_eth_dev *dev);
	vhu_unused_op mac_addr_remove;
	vhu_unused_op mac_addr_add;
	vhu_unused_op mac_addr_set;
	vhu_unused_op set_mc_addr_list;
	int (*mtu_set)(struct rte_eth_dev *dev, uint16_t mtu);

	int (*stats_get)(struct rte_eth_dev *dev, struct rte_eth_stats *stats);
	int (*stats_reset)(struct rte_eth_dev *dev);
	int (*xstats_get)(struct rte_eth_dev *dev, struct rte_eth_xstat *xstats, unsigned int n);
	int (*xstats_reset)(struct rte_eth_dev *dev);
	int (*xstats_get_names)(struct rte_eth_dev *dev, struct rte_eth_xstat_name *names,
				unsigned int size);
	vhu_unused_op queue_stats_mapping_set;

	int (*dev_infos_get)(struct rte_eth_dev *dev, struct rte_eth_dev_info *info);
	vhu_unused_op rxq_info_get;
	vhu_unused_op txq_info_get;
	vhu_unused_op rx_burst_mode_get;
	vhu_unused_op tx_burst_mode_get;
	vhu_unused_op fw_version_get;
	vhu_unused_op dev_supported_ptypes_get;
	vhu_unused_op dev_ptypes_set;

	vhu_unused_op vlan_filter_set;
	vhu_unused_op vlan_tpid_set;
	vhu_unused_op vlan_strip_queue_set;
	vhu_unused_op vlan_offload_set;
	vhu_unused_op vlan_pvid_set;

	vhu_unused_op rx_queue_start;
	vhu_unused_op rx_queue_stop;
	vhu_unused_op tx_queue_start;
	vhu_unused_op tx_queue_stop;
	int (*rx_queue_setup)(struct rte_eth_dev *dev, uint16_t queue_id, uint16_t nb_desc,
			      unsigned int socket_id, const struct rte_eth_rxconf *conf,
			      struct rte_mempool *mp);
	void (*rx_queue_release)(struct rte_eth_dev *dev, uint16_t queue_id);
	vhu_unused_op rx_queue_intr_enable;
	vhu_unused_op rx_queue_intr_disable;
	int (*tx_queue_setup)(struct rte_eth_dev *dev, uint16_t queue_id, uint16_t nb_desc,
			      unsigned int socket_id, const struct rte_eth_txconf *conf);
	void (*tx_queue_release)(struct rte_eth_dev *dev, uint16_t queue_id);
	vhu_unused_op tx_done_cleanup;

	/* The 65 operations from dev_led_on to cman_config_get, none used here. */
	vhu_unused_op unused_tail[65];
};

extern struct rte_eth_dev rte_eth_devices[];

struct rte_eth_dev *rte_eth_dev_allocate(const char *name);
struct rte_eth_dev *rte_eth_dev_allocated(const char *name);
int rte_eth_dev_release_port(struct rte_eth_dev *eth_dev);
void rte_eth_dev_probing_finish(struct rte_eth_dev *dev);
int rte_eth_dev_callback_process(struct rte_eth_dev *dev, enum rte_eth_event_type event,
				 void *ret_param);

/* Atomically replaces the link status; true when link_status changed. */
static inline bool
vhu_eth_linkstatus_set(struct rte_eth_dev *dev, const struct rte_eth_link *link)
{
	union { uint64_t u64; struct rte_eth_link link; } old, new_link = { .link = *link };

	RTE_BUILD_BUG_ON(sizeof(*link) != sizeof(uint64_t));
	old.u64 = __atomic_exchange_n((uint64_t *)&dev->data->dev_link, new_link.u64,
				      __ATOMIC_SEQ_CST);
	return old.link.link_status != link->link_status;
}

#endif /* VHU_DPDK_DRIVER_ABI_H */
