/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A ring's control-side lifecycle: what each vhost-user ring request does
 * to it, and the data-path view re-derived after every change. Each call
 * runs on the control thread and takes the ring's lock itself, so a poller
 * sees either the view before the change or the one after. This file owns
 * the start and stop of zero-copy on the ring.
 *
 * A ring is polled (vr->ready) once it has a size, addresses inside the
 * session's memory, a kick fd, and is enabled. Its indices start when it
 * first becomes usable: from SET_VRING_BASE, or for a split ring from the
 * used index in guest memory. They survive disable/enable and remapping (a
 * new memory table), and restart after a new base or a broken ring.
 */
#ifndef VHU_VRING_CTL_H
#define VHU_VRING_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_gso.h>

#include "dirty_log.h"
#include "memory.h"
#include "vring.h"

/* A ring's identity and initial state: nothing set up, no fds held. */
void vhu_vring_ctl_init(struct vhu_vring *vr, uint16_t index, const char *port_name,
			int socket_id, uint32_t zc_threshold, const struct rte_gso_ctx *gso);

/*
 * The session's memory table, negotiated features or IOTLB changed (@mem
 * and @iotlb borrowed: the session calls this again before it lets go of
 * them; @iotlb NULL: ring addresses are the front end's, buffer addresses
 * guest physical). With the ring lock held.
 */
void vhu_vring_ctl_rebase_locked(struct vhu_vring *vr, struct vhu_mem_table *mem,
				 uint64_t features, struct vhu_iotlb *iotlb);

/*
 * The IOTLB dropped [iova, iova + size): a ring whose areas were there is
 * mapped again, or waits for their translation. With the ring lock held.
 */
void vhu_vring_ctl_iotlb_invalidated_locked(struct vhu_vring *vr, uint64_t iova,
					    uint64_t size);

/*
 * The IOTLB learnt a translation: a ring waiting for one maps its areas,
 * and frames waiting for one go to the guest.
 */
void vhu_vring_ctl_iotlb_updated(struct vhu_vring *vr);

/* The session ended: drop its fds, memory, log and addresses; held zero-copy chains are forgotten. */
void vhu_vring_ctl_reset(struct vhu_vring *vr);

/* SET_VRING_NUM: 0, or -1 (logged) when a running ring would be resized. */
int vhu_vring_ctl_set_num(struct vhu_vring *vr, uint32_t num);

/* SET_VRING_ADDR, checked by the caller. */
void vhu_vring_ctl_set_addr(struct vhu_vring *vr, const struct vhu_vring_addr_config *addr);

/* SET_VRING_BASE: 0, or -1 (logged) while the ring runs. */
int vhu_vring_ctl_set_base(struct vhu_vring *vr, uint32_t base);

/*
 * GET_VRING_BASE: stops the ring, gives back the chains zero-copy mbufs
 * hold, closes the kick fd, and returns where the ring stopped: split, the
 * next available index; packed, slot and wrap counter of the next available
 * (bits 0-15) and of the next used (bits 16-31) descriptor.
 */
uint32_t vhu_vring_ctl_stop(struct vhu_vring *vr);

/* SET_VRING_KICK: @kickfd (-1: none) starts the ring, as every front end expects. */
void vhu_vring_ctl_start(struct vhu_vring *vr, int kickfd);

/* SET_VRING_CALL / SET_VRING_ERR: the ring's fd replaced by @fd (-1: none). */
void vhu_vring_ctl_set_callfd(struct vhu_vring *vr, int fd);
void vhu_vring_ctl_set_errfd(struct vhu_vring *vr, int fd);

/* SET_VRING_ENABLE (or features without it): true when that changed the ring. */
bool vhu_vring_ctl_enable(struct vhu_vring *vr, bool enable);

/* SET_LOG_BASE: the ring logs into @log (NULL: none), holding a reference. */
void vhu_vring_ctl_set_log(struct vhu_vring *vr, struct vhu_dirty_log *log);

/* The application's VHU_RX_OFFLOAD_* for frames dequeued from the ring. */
void vhu_vring_ctl_set_rx_offloads(struct vhu_vring *vr, uint32_t offloads);

/* SEND_RARP: the next dequeue burst hands out a RARP frame from @mac. */
void vhu_vring_ctl_announce(struct vhu_vring *vr, const struct rte_ether_addr *mac);

#endif /* VHU_VRING_CTL_H */
