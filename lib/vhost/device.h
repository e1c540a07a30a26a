/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A port: the long-lived object behind one socket path, holding its rings,
 * and the state of the session with the front end currently connected. Each
 * new connection starts from a clean session; nothing is carried over.
 */
#ifndef VHU_DEVICE_H
#define VHU_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include <rte_gso.h>

#include "message.h"
#include "vhu.h"
#include "vring.h"

struct vhu_conn;

struct vhu_port {
	char name[64];
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint16_t queue_pairs;
	uint32_t nrings;
	const struct vhu_port_ops *ops;
	void *ops_ctx;
	uint64_t offered_features;
	uint64_t offered_protocol_features;
	struct rte_gso_ctx gso;		/* software segmentation, when TSO is offered */

	/* socket.c */
	bool client;			/* we connect (and reconnect) to the front end */
	bool waiting_logged;		/* client: "waiting for the front end" said once */
	int endpoint_fd;		/* server: listening socket; client: retry timer */
	uint64_t endpoint_handle;
	struct vhu_conn *conn;		/* the front end, or NULL */
	int session_id;			/* of conn; -1 without one (read by any thread) */

	/* session, reset on every connection (device.c) */
	uint64_t features;
	bool features_set;
	uint64_t protocol_features;
	uint64_t status;
	uint16_t mtu;
	struct vhu_mem_table *mem;
	struct vhu_dirty_log *log;	/* from SET_LOG_BASE, or NULL */
	bool link_up;			/* read by any thread */

	struct vhu_vring vrings[];
};

enum vhu_dispatch {
	VHU_DISPATCH_DONE,	/* nothing to send */
	VHU_DISPATCH_REPLY,	/* send the message back as the reply */
	VHU_DISPATCH_CLOSE,	/* the front end broke the protocol: hang up */
};

/* Validate and handle one request; fds not taken by a handler are closed. */
enum vhu_dispatch vhu_device_handle(struct vhu_port *port, struct vhu_msg *msg);

/* A connection ended: drop the whole session and report the link down. */
void vhu_device_disconnected(struct vhu_port *port);

/*
 * The guard flag of the session's guest memory or dirty log when the front
 * end truncated its file under us (memguard.h), else NULL.
 */
const struct vhu_memguard_flag *vhu_device_memory_lost(const struct vhu_port *port);

#endif /* VHU_DEVICE_H */
