/* SPDX-License-Identifier: BSD-3-Clause */

#ifndef RTE_ETH_VHOST_H
#define RTE_ETH_VHOST_H

/**
 * @file
 * Public API of the eth_vhost PMD (librte_net_vhu.so): the same functions
 * DPDK's vhost PMD offers, so that applications written for that one
 * compile against this one. Link the application with librte_net_vhu.so to
 * call them.
 */

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A ring of an eth_vhost port was enabled or disabled by the front end. */
struct rte_eth_vhost_queue_event {
	uint16_t queue_id;	/**< ethdev queue */
	bool rx;		/**< true: an RX queue (the guest's TX ring) */
	bool enable;		/**< true: enabled; false: disabled */
};

/**
 * Take the next queue-state change of a port not reported yet.
 *
 * Call it after an RTE_ETH_EVENT_QUEUE_STATE event until it returns -1.
 * Changes that cancel each other out between two calls are not reported.
 *
 * @param port_id
 *   The ethdev port.
 * @param event
 *   Filled with the change when there is one.
 * @return
 *   0 with *event filled; -1 when there is none, or @p port_id is not an
 *   eth_vhost port of this (primary) process.
 */
int rte_eth_vhost_get_queue_event(uint16_t port_id, struct rte_eth_vhost_queue_event *event);

/**
 * Identify the front-end session connected to a port.
 *
 * @param port_id
 *   The ethdev port.
 * @return
 *   The session's identifier, new for every connection; -1 when no front end
 *   is connected, or @p port_id is not an eth_vhost port of this (primary)
 *   process.
 */
int rte_eth_vhost_get_vid_from_port_id(uint16_t port_id);

#ifdef __cplusplus
}
#endif

#endif /* RTE_ETH_VHOST_H */
