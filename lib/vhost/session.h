/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The session with the front end connected to a port: what it negotiated
 * (features, memory table, dirty log, status) and the handling of its
 * requests, one handler per request, each on a message already validated by
 * vhu_msg_validate(). The transport (socket.c) hands messages in and sends
 * back what the dispatcher says; the session knows nothing of sockets.
 * Every connection starts from a clean session: nothing is carried over.
 */
#ifndef VHU_SESSION_H
#define VHU_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "dirty_log.h"
#include "iotlb.h"
#include "memguard.h"
#include "memory.h"
#include "message.h"
#include "vhu.h"
#include "vring.h"

struct vhu_session {
	/* fixed at port creation */
	const char *name;		/* the port's, for log lines */
	uint16_t queue_pairs;
	uint32_t nrings;
	struct vhu_vring *vrings;	/* the port's */
	uint64_t offered_features;
	uint64_t offered_protocol_features;
	const struct vhu_port_ops *ops;	/* NULL once the owner goes away */
	void *ops_ctx;
	struct vhu_iotlb *iotlb;	/* when the port offers a vIOMMU, else NULL */

	/* reset on every connection */
	bool connected;
	int id;				/* new for every connection, -1 without (any thread) */
	uint64_t features;
	bool features_set;
	uint64_t protocol_features;
	uint64_t status;
	uint16_t mtu;			/* from NET_SET_MTU, 0 without (any thread) */
	struct vhu_mem_table *mem;
	struct vhu_dirty_log *log;	/* from SET_LOG_BASE, or NULL */
	bool link_up;			/* read by any thread */
	/* postcopy migration (postcopy.h) */
	int postcopy_ufd;		/* from POSTCOPY_ADVISE, or -1 */
	bool postcopy_listening;	/* between POSTCOPY_LISTEN and POSTCOPY_END */
	struct vhu_mem_table *postcopy_table;	/* answered, waiting for the front end's ack */
};

enum vhu_dispatch {
	VHU_DISPATCH_DONE,	/* nothing to send */
	VHU_DISPATCH_REPLY,	/* send the message back as the reply */
	VHU_DISPATCH_CLOSE,	/* the front end broke the protocol: hang up */
};

/*
 * A port's session, before any front end: what it offers comes from @cfg.
 * -1 (logged) without memory for it.
 */
int vhu_session_init(struct vhu_session *s, const struct vhu_port_config *cfg,
		     const char *name, struct vhu_vring *vrings);

/* The port goes: what vhu_session_init() allocated goes, after vhu_session_end(). */
void vhu_session_fini(struct vhu_session *s);

/* A front end connected: a fresh session with a new id. Control thread. */
void vhu_session_connected(struct vhu_session *s);

/*
 * The connection ended, or the port goes: the whole session is dropped and
 * the link reported down. Control thread (or with the control lock held).
 */
void vhu_session_end(struct vhu_session *s);

/* Validate and handle one request; fds not taken by a handler are closed. */
enum vhu_dispatch vhu_session_handle(struct vhu_session *s, struct vhu_msg *msg);

/*
 * The guard flag of the session's guest memory or dirty log when the front
 * end truncated its file under us (memguard.h), else NULL.
 */
const struct vhu_memguard_flag *vhu_session_memory_lost(const struct vhu_session *s);

/* Whether the session has a handler for @request (every request with a rule has one). */
bool vhu_session_handles(uint32_t request);

#endif /* VHU_SESSION_H */
