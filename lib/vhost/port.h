/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A port (vhu.h): the long-lived object behind one socket path. It owns its
 * rings, the session with whichever front end is connected (session.h) and
 * the transport that session arrives on (socket.h); it sits above both.
 */
#ifndef VHU_PORT_H
#define VHU_PORT_H

#include <stddef.h>

#include <rte_gso.h>

#include "session.h"
#include "socket.h"
#include "vhu.h"
#include "vring.h"

/*
 * One allocation, cache aligned (vhu_port_create()): the port's own fields,
 * written by the control thread only, then its rings, each on cache lines
 * of its own (vring.h).
 */
struct vhu_port {
	char name[64];
	struct rte_gso_ctx gso;		/* software segmentation towards the guest */
	struct vhu_socket sock;
	struct vhu_session session;
	struct vhu_ctl_deferred destroy;	/* when destroyed from the control thread */
	struct vhu_vring vrings[];
};

_Static_assert(offsetof(struct vhu_port, vrings) % RTE_CACHE_LINE_SIZE == 0,
	       "the first ring shares no cache line with the port's own fields");

#endif /* VHU_PORT_H */
