/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Interrupt mode of a ring (vhu_vring_intr_fd/_enable in vhu.h): instead of
 * polling an empty guest TX ring, the application sleeps on a file
 * descriptor that becomes readable when the guest kicks the ring.
 *
 * That fd is an epoll instance of ours, the same for the port's life: the
 * application registers it once (rte_eth_dev_rx_intr_ctl_q), while the front
 * end's kick fd changes with every SET_VRING_KICK and every connection.
 * Inside it are the kick fd of the moment (vring_ctl.c hands each new one
 * over, and takes the old one out before closing it) and an eventfd of ours,
 * written when arming finds frames there already: the guest made them
 * available while it was told not to kick, and will not kick for them.
 *
 * Arming asks the driver for kicks through split_access.h/packed_access.h,
 * then re-reads the ring after a full fence (virtqueue.h, vhu_vq_want_kicks);
 * disarming asks it not to kick, as a polled ring always does. A ring that
 * starts while armed asks for kicks from its first position.
 *
 * On a CPU that can wait for a write to memory (rte_power_monitor), the
 * lcore can sleep on the ring itself instead (vhu_vring_monitor): on the
 * word the driver writes to make the next chain available. The ring keeps a
 * reference on the memory table that word is in until the lcore asks again,
 * so that a front end leaving meanwhile cannot unmap it under the lcore's
 * read; the front end gone, its writes stop, and the limit the kernel puts
 * on such waits (Linux: 100000 TSC cycles unless set otherwise) ends the
 * sleep.
 */
#ifndef VHU_VRING_INTR_H
#define VHU_VRING_INTR_H

#include "vring.h"

/* No fd yet, not armed. */
void vhu_vring_intr_init(struct vhu_vring *vr);

/*
 * The front end's kick fd becomes @kickfd (-1: none): it is watched instead
 * of the previous one, which the caller closes after this. Ring lock held.
 */
void vhu_vring_intr_watch_locked(struct vhu_vring *vr, int kickfd);

/*
 * Tell the driver whether to kick (armed or not) and wake an armed
 * application when frames are there already. For a ring that starts being
 * polled, or whose application may now have frames. Ring lock held.
 */
void vhu_vring_intr_apply_locked(struct vhu_vring *vr);

/* The port goes away: the application's fd is closed, guest memory let go. */
void vhu_vring_intr_close(struct vhu_vring *vr);

#endif /* VHU_VRING_INTR_H */
