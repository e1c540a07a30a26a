/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Public API of the eth_vhost PMD, the same as DPDK's vhost PMD offers, so
 * applications written for that one compile against this one. Link the
 * application with librte_net_vhu.so to use it.
 */
#ifndef RTE_ETH_VHOST_H
#define RTE_ETH_VHOST_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A ring of an eth_vhost port was enabled or disabled by the front end. */
struct rte_eth_vhost_queue_event {
	uint16_t queue_id;	/* ethdev queue */
	bool rx;		/* true: an RX queue (the guest's TX ring) */
	bool enable;
};

/*
 * Takes the next queue-state change of @port_id not reported yet. Call it
 * after an RTE_ETH_EVENT_QUEUE_STATE event until it returns -1. Changes that
 * cancel each other out between two calls are not reported.
 * Returns 0 with *event filled, or -1 when there is none (or @port_id is not
 * an eth_vhost port).
 */
int rte_eth_vhost_get_queue_event(uint16_t port_id, struct rte_eth_vhost_queue_event *event);

/*
 * Identifier of the front-end session currently connected to @port_id (a new
 * one for every connection), or -1 when none is connected or @port_id is not
 * an eth_vhost port.
 */
int rte_eth_vhost_get_vid_from_port_id(uint16_t port_id);

#ifdef __cplusplus
}
#endif

#endif /* RTE_ETH_VHOST_H */
