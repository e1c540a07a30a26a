/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Session state and the request handlers: one handler per request, found in
 * one dispatch table, each running on a message already validated by
 * vhu_msg_validate().
 */
#include "device.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame_copy.h"
#include "netoffload.h"
#include "socket.h"
#include "vhu_log.h"
#include "zerocopy.h"

RTE_LOG_REGISTER(vhu_logtype, vhu.lib, INFO);

/* What a handler asks the dispatcher to do. */
enum handler_result {
	HANDLED,		/* success; ack 0 when the front end wants one */
	HANDLED_REPLY,		/* the handler filled the reply payload */
	REFUSED,		/* logged; ack 1 when wanted, connection kept */
	FATAL,			/* logged; the connection is closed */
};

typedef enum handler_result (*request_handler)(struct vhu_port *p, struct vhu_msg *m);

static const uint64_t base_features =
	VHU_BIT(VIRTIO_F_VERSION_1) |
	VHU_BIT(VIRTIO_F_ANY_LAYOUT) |
	VHU_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	VHU_BIT(VIRTIO_RING_F_EVENT_IDX) |
	/* Chains are always completed in the order they were made available. */
	VHU_BIT(VIRTIO_F_IN_ORDER) |
	VHU_BIT(VIRTIO_F_RING_PACKED) |
	VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
	VHU_BIT(VIRTIO_NET_F_MRG_RXBUF) |
	VHU_BIT(VIRTIO_NET_F_MTU) |
	/* The control queue and the queue-pair count live in the front end
	 * (QEMU, virtio-user); offering them lets it use several pairs. */
	VHU_BIT(VIRTIO_NET_F_CTRL_VQ) |
	VHU_BIT(VIRTIO_NET_F_MQ) |
	/* Checksums: left to us (guest TX) and handed on (guest RX), see netoffload.h. */
	VHU_BIT(VIRTIO_NET_F_CSUM) |
	VHU_BIT(VIRTIO_NET_F_GUEST_CSUM) |
	/* Live migration: the front end turns dirty logging on and off with it. */
	VHU_BIT(VHOST_F_LOG_ALL) |
	/* The guest announces itself after a migration (QEMU relays it). */
	VHU_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);

/* TCP segmentation offload both ways, unless the port turns it off. */
static const uint64_t tso_features =
	VHU_BIT(VIRTIO_NET_F_HOST_TSO4) |
	VHU_BIT(VIRTIO_NET_F_HOST_TSO6) |
	VHU_BIT(VIRTIO_NET_F_GUEST_TSO4) |
	VHU_BIT(VIRTIO_NET_F_GUEST_TSO6);

/*
 * PROTOCOL_F_STATUS is not offered (GET/SET_STATUS are still served when a
 * front end sends them): DPDK 22.11's virtio-user sends GET_STATUS from its
 * interrupt thread, woken by any reply arriving on the socket, while its main
 * thread waits for a reply-ack on the same socket; one thread then takes the
 * other's reply and port start hangs. Without the feature it never sends them.
 */
static const uint64_t base_protocol_features =
	VHU_BIT(VHOST_USER_PROTOCOL_F_MQ) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_RARP) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_NET_MTU);

/* Re-derive a ring's data-path view after a change, under its lock. */
static void
refresh_locked(struct vhu_port *p, struct vhu_vring *vr)
{
	vhu_vring_refresh(vr, p->mem, p->features);
}

static void
refresh_all(struct vhu_port *p)
{
	for (uint32_t i = 0; i < p->nrings; i++) {
		struct vhu_vring *vr = &p->vrings[i];

		rte_spinlock_lock(&vr->lock);
		refresh_locked(p, vr);
		rte_spinlock_unlock(&vr->lock);
	}
}

/* The link is up while queue pair 0 can move packets both ways. */
static void
update_link(struct vhu_port *p)
{
	bool up = p->conn != NULL && p->vrings[0].ready && p->vrings[1].ready;

	if (up == p->link_up)
		return;
	__atomic_store_n(&p->link_up, up, __ATOMIC_RELEASE);
	VHU_LOG(INFO, "%s: link %s", p->name, up ? "up" : "down");
	if (p->ops != NULL && p->ops->link_changed != NULL)
		p->ops->link_changed(p->ops_ctx, up);
}

static void
reset_session(struct vhu_port *p)
{
	for (uint32_t i = 0; i < p->nrings; i++) {
		bool was_enabled = p->vrings[i].enabled;

		vhu_vring_reset(&p->vrings[i]);
		if (was_enabled && p->ops != NULL && p->ops->vring_state_changed != NULL)
			p->ops->vring_state_changed(p->ops_ctx, (uint16_t)i, false);
	}
	vhu_mem_table_put(p->mem);
	p->mem = NULL;
	vhu_dirty_log_put(p->log);
	p->log = NULL;
	p->features = 0;
	p->features_set = false;
	p->protocol_features = 0;
	p->status = 0;
	p->mtu = 0;
}

static void
reply_u64(struct vhu_msg *m, uint64_t value)
{
	m->payload.u64 = value;
	m->hdr.size = sizeof(uint64_t);
}

static enum handler_result
h_get_features(struct vhu_port *p, struct vhu_msg *m)
{
	reply_u64(m, p->offered_features);
	return HANDLED_REPLY;
}

/* A front end may only accept what was offered. */
static bool
only_offered(const struct vhu_port *p, const struct vhu_msg *m, uint64_t offered)
{
	uint64_t extra = m->payload.u64 & ~offered;

	if (extra != 0)
		VHU_LOG(ERR, "%s: %s 0x%" PRIx64 " has bits not offered (0x%" PRIx64 ")", p->name,
			vhu_request_name(m->hdr.request), m->payload.u64, extra);
	return extra == 0;
}

/* Enables or disables ring @i, and tells the port's owner when that changes. */
static void
set_ring_enabled(struct vhu_port *p, uint32_t i, bool enable)
{
	struct vhu_vring *vr = &p->vrings[i];
	bool changed;

	rte_spinlock_lock(&vr->lock);
	changed = vr->enabled != enable;
	vr->enabled = enable;
	refresh_locked(p, vr);
	rte_spinlock_unlock(&vr->lock);
	if (changed && p->ops != NULL && p->ops->vring_state_changed != NULL)
		p->ops->vring_state_changed(p->ops_ctx, (uint16_t)i, enable);
}

/* The first ring started (kick received, not stopped), or -1. */
static int
started_ring(const struct vhu_port *p)
{
	for (uint32_t i = 0; i < p->nrings; i++)
		if (p->vrings[i].started)
			return (int)i;
	return -1;
}

static enum handler_result
h_set_features(struct vhu_port *p, struct vhu_msg *m)
{
	uint64_t f = m->payload.u64;
	int running = started_ring(p);

	if (!only_offered(p, m, p->offered_features))
		return REFUSED;
	/*
	 * Rings already running were set up for the features they started
	 * with (layout, header size): only dirty logging may be switched.
	 */
	if (p->features_set && running >= 0 && ((p->features ^ f) & ~VHU_BIT(VHOST_F_LOG_ALL))) {
		VHU_LOG(ERR, "%s: SET_FEATURES 0x%" PRIx64 " changes 0x%" PRIx64 " while ring %d is running (only LOG_ALL may change)",
			p->name, f, (p->features ^ f) & ~VHU_BIT(VHOST_F_LOG_ALL), running);
		return REFUSED;
	}
	p->features = f;
	p->features_set = true;
	/* Without protocol features there is no SET_VRING_ENABLE: rings start enabled. */
	if (!(f & VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		for (uint32_t i = 0; i < p->nrings; i++)
			set_ring_enabled(p, i, true);
	refresh_all(p);
	update_link(p);
	VHU_LOG(INFO, "%s: features 0x%" PRIx64 " negotiated", p->name, f);
	return HANDLED;
}

static enum handler_result
h_set_owner(struct vhu_port *p __rte_unused, struct vhu_msg *m __rte_unused)
{
	return HANDLED;
}

static enum handler_result
h_reset_owner(struct vhu_port *p, struct vhu_msg *m __rte_unused)
{
	reset_session(p);
	update_link(p);
	return HANDLED;
}

static enum handler_result
h_set_mem_table(struct vhu_port *p, struct vhu_msg *m)
{
	const struct vhu_memory *mem = &m->payload.memory;
	struct vhu_mem_table *table, *old;

	table = vhu_mem_table_create(mem->regions, m->fds, mem->nregions, p->name);
	m->nfds = 0;	/* closed by vhu_mem_table_create */
	if (table == NULL)
		return REFUSED;
	old = p->mem;
	p->mem = table;
	refresh_all(p);		/* every ring now holds the new table */
	vhu_mem_table_put(old);
	update_link(p);		/* rings may have become usable, or stopped being */
	return HANDLED;
}

/* Split rings need a power of two; packed rings any size up to the maximum. */
/* Every ring switches to @log (NULL: none) under its lock; the port keeps one reference. */
static void
swap_log(struct vhu_port *p, struct vhu_dirty_log *log)
{
	struct vhu_dirty_log *old = p->log;

	p->log = log;
	for (uint32_t i = 0; i < p->nrings; i++) {
		struct vhu_vring *vr = &p->vrings[i];

		rte_spinlock_lock(&vr->lock);
		vhu_vring_set_log(vr, log);
		rte_spinlock_unlock(&vr->lock);
	}
	vhu_dirty_log_put(old);
}

/* Maps the log; answered always (front ends wait for it), 0 on success. */
static enum handler_result
h_set_log_base(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_dirty_log *log = vhu_dirty_log_create(m->fds[0], m->payload.log.mmap_size,
							 m->payload.log.mmap_offset, p->name);

	m->fds[0] = -1;	/* closed by vhu_dirty_log_create */
	if (log != NULL)
		swap_log(p, log);
	reply_u64(m, log != NULL ? 0 : 1);
	return HANDLED_REPLY;
}

/* The log fd signals log syncs for front ends that want them; we have no use for it. */
static enum handler_result
h_set_log_fd(struct vhu_port *p __rte_unused, struct vhu_msg *m __rte_unused)
{
	return HANDLED;
}

static bool
ring_size_valid(uint32_t num, bool packed)
{
	return num != 0 && num <= VHU_VRING_MAX_SIZE && (packed || (num & (num - 1)) == 0);
}

static enum handler_result
h_set_vring_num(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_vring *vr = &p->vrings[m->ring_index];
	uint32_t num = m->payload.state.num;

	bool packed = (p->features & VHU_BIT(VIRTIO_F_RING_PACKED)) != 0;

	if (!ring_size_valid(num, packed)) {
		VHU_LOG(ERR, "%s: ring %u: size %u (must be %sup to %u)", p->name, m->ring_index,
			num, packed ? "" : "a power of 2 ", VHU_VRING_MAX_SIZE);
		return REFUSED;
	}
	rte_spinlock_lock(&vr->lock);
	if (num != vr->size && vr->ready) {
		/* Positions and held zero-copy chains would outgrow a smaller ring. */
		uint32_t size = vr->size;

		rte_spinlock_unlock(&vr->lock);
		VHU_LOG(ERR, "%s: ring %u: resized from %u to %u while the ring runs; refused",
			p->name, m->ring_index, size, num);
		return REFUSED;
	}
	if (num != vr->size && vr->indices_valid) {
		/* Another ring: the old one's positions and held chains mean nothing in it. */
		vhu_zc_ring_stopped(vr, false);
		vr->indices_valid = false;
	}
	vr->size = num;
	vr->num_set = true;
	refresh_locked(p, vr);
	rte_spinlock_unlock(&vr->lock);
	update_link(p);
	return HANDLED;
}

static enum handler_result
h_set_vring_addr(struct vhu_port *p, struct vhu_msg *m)
{
	const struct vhu_vring_addr *a = &m->payload.addr;
	struct vhu_vring *vr = &p->vrings[m->ring_index];

	if ((a->desc_user_addr & 15) || (a->avail_user_addr & 1) || (a->used_user_addr & 3)) {
		VHU_LOG(ERR, "%s: ring %u: misaligned ring addresses (desc 0x%" PRIx64
			" avail 0x%" PRIx64 " used 0x%" PRIx64 ")", p->name, m->ring_index,
			a->desc_user_addr, a->avail_user_addr, a->used_user_addr);
		return REFUSED;
	}
	if (a->flags & ~VHOST_VRING_F_LOG) {
		VHU_LOG(ERR, "%s: ring %u: unknown address flags 0x%x", p->name,
			m->ring_index, a->flags);
		return REFUSED;
	}
	rte_spinlock_lock(&vr->lock);
	vr->addr.flags = a->flags;
	vr->addr.desc = a->desc_user_addr;
	vr->addr.avail = a->avail_user_addr;
	vr->addr.used = a->used_user_addr;
	vr->addr.log = a->log_guest_addr;
	vr->addr_set = true;
	refresh_locked(p, vr);
	rte_spinlock_unlock(&vr->lock);
	update_link(p);
	return HANDLED;
}

static enum handler_result
h_set_vring_base(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_vring *vr = &p->vrings[m->ring_index];
	bool packed = (p->features & VHU_BIT(VIRTIO_F_RING_PACKED)) != 0;

	/*
	 * Split: the next available index (16 bits). Packed: slot and wrap
	 * counter of the next available descriptor in bits 0-15 and, as QEMU
	 * sends it (and GET_VRING_BASE answers), of the next used one in bits
	 * 16-31; we complete every chain we take, so the available half says
	 * it all (vhu_vring_refresh checks the slot against the ring size).
	 */
	if (!packed && m->payload.state.num > UINT16_MAX) {
		VHU_LOG(ERR, "%s: ring %u: base 0x%x out of range", p->name, m->ring_index,
			m->payload.state.num);
		return REFUSED;
	}
	rte_spinlock_lock(&vr->lock);
	if (vr->ready) {
		/* The base says where a ring starts; one being polled has its own. */
		rte_spinlock_unlock(&vr->lock);
		VHU_LOG(ERR, "%s: ring %u: base set while the ring runs; refused", p->name,
			m->ring_index);
		return REFUSED;
	}
	vr->base = m->payload.state.num;
	vr->base_pending = packed;
	vr->indices_valid = false;	/* the front end says where the ring is now */
	rte_spinlock_unlock(&vr->lock);
	return HANDLED;
}

/*
 * Stops the ring and reports where it stopped: split, the next available
 * index; packed, slot and wrap counter of the next available (bits 0-15) and
 * of the next used (bits 16-31) descriptor.
 */
static enum handler_result
h_get_vring_base(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_vring *vr = &p->vrings[m->ring_index];

	rte_spinlock_lock(&vr->lock);
	/* Held zero-copy chains go back first, so that the indices are whole. */
	vhu_zc_ring_stopped(vr, true);
	if (vr->indices_valid) {
		if (vr->packed)
			vr->base = (uint32_t)(vr->last_avail_idx | vr->avail_wrap << 15) |
				   (uint32_t)(vr->last_used_idx | vr->used_wrap << 15) << 16;
		else
			vr->base = vr->last_avail_idx;
	}
	m->payload.state.num = vr->base;
	vr->base &= UINT16_MAX;
	vr->started = false;
	if (vr->kickfd >= 0)
		close(vr->kickfd);
	vr->kickfd = -1;
	refresh_locked(p, vr);
	rte_spinlock_unlock(&vr->lock);
	update_link(p);
	return HANDLED_REPLY;
}

/* Takes the fd of a KICK/CALL/ERR message (-1 with the no-fd bit). */
static int
take_ring_fd(struct vhu_msg *m)
{
	int fd = -1;

	if (m->nfds == 1) {
		fd = m->fds[0];
		m->fds[0] = -1;
	}
	return fd;
}

/* Replaces one of a ring's fds (@slot) with the message's, or none, under the ring lock. */
static void
replace_ring_fd(struct vhu_vring *vr, int *slot, struct vhu_msg *m)
{
	int fd = take_ring_fd(m);

	rte_spinlock_lock(&vr->lock);
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
	rte_spinlock_unlock(&vr->lock);
}

static enum handler_result
h_set_vring_kick(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_vring *vr = &p->vrings[m->ring_index];

	replace_ring_fd(vr, &vr->kickfd, m);
	rte_spinlock_lock(&vr->lock);
	vr->started = true;	/* a kick fd starts the ring, as every front end expects */
	refresh_locked(p, vr);
	rte_spinlock_unlock(&vr->lock);
	update_link(p);
	return HANDLED;
}

static enum handler_result
h_set_vring_call(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_vring *vr = &p->vrings[m->ring_index];

	replace_ring_fd(vr, &vr->callfd, m);
	return HANDLED;
}

static enum handler_result
h_set_vring_err(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_vring *vr = &p->vrings[m->ring_index];

	replace_ring_fd(vr, &vr->errfd, m);
	return HANDLED;
}

static enum handler_result
h_get_protocol_features(struct vhu_port *p, struct vhu_msg *m)
{
	reply_u64(m, p->offered_protocol_features);
	return HANDLED_REPLY;
}

static enum handler_result
h_set_protocol_features(struct vhu_port *p, struct vhu_msg *m)
{
	if (!only_offered(p, m, p->offered_protocol_features))
		return REFUSED;
	p->protocol_features = m->payload.u64;
	return HANDLED;
}

static enum handler_result
h_get_queue_num(struct vhu_port *p, struct vhu_msg *m)
{
	reply_u64(m, p->queue_pairs);
	return HANDLED_REPLY;
}

static enum handler_result
h_set_vring_enable(struct vhu_port *p, struct vhu_msg *m)
{
	uint32_t enable = m->payload.state.num;

	if (enable > 1) {
		VHU_LOG(ERR, "%s: ring %u: SET_VRING_ENABLE with %u", p->name,
			m->ring_index, enable);
		return REFUSED;
	}
	set_ring_enabled(p, m->ring_index, enable == 1);
	update_link(p);
	return HANDLED;
}

/*
 * After a migration, for a guest that cannot announce itself: the next
 * receive burst of queue 0 hands the application a RARP frame from the
 * guest's MAC, as if the guest had sent it.
 */
static enum handler_result
h_send_rarp(struct vhu_port *p, struct vhu_msg *m)
{
	struct vhu_vring *vr = &p->vrings[1];

	rte_spinlock_lock(&vr->lock);
	memcpy(&vr->rarp_mac, &m->payload.u64, RTE_ETHER_ADDR_LEN);
	vr->rarp_pending = true;
	rte_spinlock_unlock(&vr->lock);
	VHU_LOG(INFO, "%s: will announce " RTE_ETHER_ADDR_PRT_FMT " with a RARP frame", p->name,
		RTE_ETHER_ADDR_BYTES(&vr->rarp_mac));
	return HANDLED;
}

static enum handler_result
h_net_set_mtu(struct vhu_port *p, struct vhu_msg *m)
{
	uint64_t mtu = m->payload.u64;

	if (mtu < 68 || mtu > 65535) {
		VHU_LOG(ERR, "%s: NET_SET_MTU %" PRIu64 " out of range 68..65535", p->name, mtu);
		return REFUSED;
	}
	p->mtu = (uint16_t)mtu;
	return HANDLED;
}

static enum handler_result
h_set_status(struct vhu_port *p, struct vhu_msg *m)
{
	if (m->payload.u64 > UINT8_MAX) {
		VHU_LOG(ERR, "%s: SET_STATUS 0x%" PRIx64 " is not a status byte", p->name,
			m->payload.u64);
		return REFUSED;
	}
	p->status = m->payload.u64;
	return HANDLED;
}

static enum handler_result
h_get_status(struct vhu_port *p, struct vhu_msg *m)
{
	reply_u64(m, p->status);
	return HANDLED_REPLY;
}

static const request_handler handlers[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = h_get_features,
	[VHOST_USER_SET_FEATURES] = h_set_features,
	[VHOST_USER_SET_OWNER] = h_set_owner,
	[VHOST_USER_RESET_OWNER] = h_reset_owner,
	[VHOST_USER_SET_MEM_TABLE] = h_set_mem_table,
	[VHOST_USER_SET_LOG_BASE] = h_set_log_base,
	[VHOST_USER_SET_LOG_FD] = h_set_log_fd,
	[VHOST_USER_SET_VRING_NUM] = h_set_vring_num,
	[VHOST_USER_SET_VRING_ADDR] = h_set_vring_addr,
	[VHOST_USER_SET_VRING_BASE] = h_set_vring_base,
	[VHOST_USER_GET_VRING_BASE] = h_get_vring_base,
	[VHOST_USER_SET_VRING_KICK] = h_set_vring_kick,
	[VHOST_USER_SET_VRING_CALL] = h_set_vring_call,
	[VHOST_USER_SET_VRING_ERR] = h_set_vring_err,
	[VHOST_USER_GET_PROTOCOL_FEATURES] = h_get_protocol_features,
	[VHOST_USER_SET_PROTOCOL_FEATURES] = h_set_protocol_features,
	[VHOST_USER_GET_QUEUE_NUM] = h_get_queue_num,
	[VHOST_USER_SET_VRING_ENABLE] = h_set_vring_enable,
	[VHOST_USER_SEND_RARP] = h_send_rarp,
	[VHOST_USER_NET_SET_MTU] = h_net_set_mtu,
	[VHOST_USER_SET_STATUS] = h_set_status,
	[VHOST_USER_GET_STATUS] = h_get_status,
};

enum vhu_dispatch
vhu_device_handle(struct vhu_port *p, struct vhu_msg *m)
{
	enum handler_result r;
	bool want_ack;

	if (vhu_msg_validate(m, p->nrings, p->name) < 0 || handlers[m->hdr.request] == NULL) {
		vhu_msg_close_fds(m);
		return VHU_DISPATCH_CLOSE;
	}
	/*
	 * REPLY_ACK negotiated before this message or by it: the
	 * SET_PROTOCOL_FEATURES that turns it on is acknowledged too.
	 */
	want_ack = p->protocol_features & VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	VHU_LOG(DEBUG, "%s: %s", p->name, vhu_request_name(m->hdr.request));
	r = handlers[m->hdr.request](p, m);
	vhu_msg_close_fds(m);
	want_ack = (m->hdr.flags & VHOST_USER_NEED_REPLY) &&
		   (want_ack || (p->protocol_features & VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)));

	switch (r) {
	case HANDLED_REPLY:
		return VHU_DISPATCH_REPLY;
	case FATAL:
		return VHU_DISPATCH_CLOSE;
	case HANDLED:
	case REFUSED:
		if (vhu_request_has_reply(m->hdr.request)) {
			/* A request that always answers gets an answer, even a refusal. */
			return VHU_DISPATCH_REPLY;
		}
		if (!want_ack)
			return VHU_DISPATCH_DONE;
		reply_u64(m, r == REFUSED ? 1 : 0);
		return VHU_DISPATCH_REPLY;
	}
	return VHU_DISPATCH_CLOSE;
}

const struct vhu_memguard_flag *
vhu_device_memory_lost(const struct vhu_port *p)
{
	if (p->mem != NULL && vhu_memguard_hit(&p->mem->guard))
		return &p->mem->guard;
	if (p->log != NULL && vhu_memguard_hit(&p->log->guard))
		return &p->log->guard;
	return NULL;
}

void
vhu_device_disconnected(struct vhu_port *p)
{
	reset_session(p);
	update_link(p);
}

/* ---- public API ---- */

struct vhu_port *
vhu_port_create(const struct vhu_port_config *cfg)
{
	struct vhu_port *p;
	uint32_t nrings;

	if (cfg->queue_pairs == 0 || cfg->queue_pairs > VHU_MAX_QUEUE_PAIRS) {
		VHU_LOG(ERR, "%s: %u queue pairs (1..%u allowed)", cfg->name, cfg->queue_pairs,
			VHU_MAX_QUEUE_PAIRS);
		return NULL;
	}
	vhu_frame_copy_select();
	nrings = 2u * cfg->queue_pairs;
	p = calloc(1, sizeof(*p) + nrings * sizeof(p->vrings[0]));
	if (p == NULL) {
		VHU_LOG(ERR, "%s: out of memory", cfg->name);
		return NULL;
	}
	snprintf(p->name, sizeof(p->name), "%s", cfg->name);
	if (snprintf(p->socket_path, sizeof(p->socket_path), "%s", cfg->socket_path) >=
	    (int)sizeof(p->socket_path)) {
		VHU_LOG(ERR, "%s: socket path longer than %zu bytes: %s", cfg->name,
			sizeof(p->socket_path) - 1, cfg->socket_path);
		free(p);
		return NULL;
	}
	p->queue_pairs = cfg->queue_pairs;
	p->nrings = nrings;
	p->ops = cfg->ops;
	p->ops_ctx = cfg->ops_ctx;
	p->offered_features = base_features | (cfg->tso ? tso_features : 0);
	/* Zero-copy gives chains back in the order mbufs are freed. */
	if (cfg->zero_copy_threshold > 0)
		p->offered_features &= ~VHU_BIT(VIRTIO_F_IN_ORDER);
	p->offered_protocol_features = base_protocol_features;
	p->client = cfg->client;
	p->session_id = -1;
	p->endpoint_fd = -1;
	for (uint32_t i = 0; i < nrings; i++) {
		vhu_vring_init(&p->vrings[i], (uint16_t)i, p->name);
		p->vrings[i].gso = &p->gso;
		p->vrings[i].socket_id = cfg->socket_id;
		/* Only guest TX rings (odd indices) are dequeued. */
		p->vrings[i].zc_threshold = (i & 1) ? cfg->zero_copy_threshold : 0;
	}
	/* Guests offered GUEST_TSO may still refuse it: keep a way to segment. */
	if (cfg->tso && vhu_gso_pools_create(&p->gso, p->name, cfg->socket_id) < 0) {
		free(p);
		return NULL;
	}
	if (vhu_socket_open(p) < 0) {
		vhu_gso_pools_free(&p->gso);
		free(p);
		return NULL;
	}
	return p;
}

void
vhu_port_destroy(struct vhu_port *p)
{
	if (p == NULL)
		return;
	/* No callbacks into an owner that is going away. */
	vhu_ctl_lock();
	p->ops = NULL;
	vhu_ctl_unlock();
	vhu_socket_close(p);
	reset_session(p);
	vhu_gso_pools_free(&p->gso);
	free(p);
}

struct vhu_vring *
vhu_port_vring(struct vhu_port *p, uint16_t ring_index)
{
	return ring_index < p->nrings ? &p->vrings[ring_index] : NULL;
}

int
vhu_port_session_id(const struct vhu_port *p)
{
	return __atomic_load_n(&p->session_id, __ATOMIC_ACQUIRE);
}

bool
vhu_port_link_up(const struct vhu_port *p)
{
	return __atomic_load_n(&p->link_up, __ATOMIC_ACQUIRE);
}

const struct vhu_vring_stats *
vhu_vring_stats(const struct vhu_vring *vr)
{
	return &vr->stats;
}
