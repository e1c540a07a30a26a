/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the control thread asks of the copy path towards the guest
 * (enqueue.c; its burst is in vhu.h).
 */
#ifndef VHU_ENQUEUE_H
#define VHU_ENQUEUE_H

#include "vring.h"

/*
 * A guest RX ring's frames waiting for IOTLB translations go into it as far
 * as they now can: the front end answered a miss, and the application may
 * send nothing more to push them. With the ring lock held.
 */
void vhu_enqueue_waiting_locked(struct vhu_vring *vr);

#endif /* VHU_ENQUEUE_H */
