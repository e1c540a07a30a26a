/* SPDX-License-Identifier: BSD-3-Clause */
#include "session.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "postcopy.h"
#include "vhu_log.h"
#include "vring_ctl.h"

/*
 * What a handler made of its request. Requests the rules table marks as
 * answered (message.c) get the payload their handler filled in, whatever
 * the result; the others a reply-ack of 0 or 1 when the front end wants one.
 */
enum handler_result {
	HANDLED,
	REFUSED,		/* logged; the connection is kept */
	ANSWERED,		/* the message now holds a reply to send, asked for or not */
};

typedef enum handler_result (*request_handler)(struct vhu_session *s, struct vhu_msg *m);

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
	/* TCP segmentation towards the guest: frames handed on whole, or cut in software. */
	VHU_BIT(VIRTIO_NET_F_GUEST_TSO4) |
	VHU_BIT(VIRTIO_NET_F_GUEST_TSO6) |
	/*
	 * UDP fragmentation offload and ECN with TSO, both ways, as DPDK's vhost
	 * library offers them: a guest that negotiated them on a host running it
	 * can be migrated here (QEMU refuses a destination without them).
	 */
	VHU_BIT(VIRTIO_NET_F_HOST_UFO) |
	VHU_BIT(VIRTIO_NET_F_HOST_ECN) |
	VHU_BIT(VIRTIO_NET_F_GUEST_UFO) |
	VHU_BIT(VIRTIO_NET_F_GUEST_ECN) |
	/* Live migration: the front end turns dirty logging on and off with it. */
	VHU_BIT(VHOST_F_LOG_ALL) |
	/* The guest announces itself after a migration (QEMU relays it). */
	VHU_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);

/*
 * The guest's TCP segmentation left to us, unless the port turns it off: what
 * DPDK's vhost PMD's tso devarg controls, so that the same guest features
 * are offered for the same devargs and guests migrate between its ports and ours.
 */
static const uint64_t host_tso_features =
	VHU_BIT(VIRTIO_NET_F_HOST_TSO4) |
	VHU_BIT(VIRTIO_NET_F_HOST_TSO6);

static const uint64_t base_protocol_features =
	VHU_BIT(VHOST_USER_PROTOCOL_F_MQ) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_RARP) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_NET_MTU) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
	VHU_BIT(VHOST_USER_PROTOCOL_F_STATUS);

/*
 * Every ring's lock, taken in order: no burst runs while the IOTLB (used by
 * all rings) or what rings map through it changes.
 */
static void
lock_rings(struct vhu_session *s)
{
	for (uint32_t i = 0; i < s->nrings; i++)
		rte_spinlock_lock(&s->vrings[i].lock);
}

static void
unlock_rings(struct vhu_session *s)
{
	for (uint32_t i = s->nrings; i-- > 0;)
		rte_spinlock_unlock(&s->vrings[i].lock);
}

/* The IOTLB, when the guest negotiated a vIOMMU; else NULL. */
static struct vhu_iotlb *
iotlb_in_use(const struct vhu_session *s)
{
	return (s->features & VHU_BIT(VIRTIO_F_ACCESS_PLATFORM)) ? s->iotlb : NULL;
}

/*
 * Every ring follows the session's memory table, features and IOTLB, whose
 * entries land through the memory table: all at once, so that a burst never
 * meets a translation into memory its ring does not hold.
 */
static void
rebase_all(struct vhu_session *s)
{
	lock_rings(s);
	if (s->iotlb != NULL)
		vhu_iotlb_remap(s->iotlb, s->mem);
	for (uint32_t i = 0; i < s->nrings; i++)
		vhu_vring_ctl_rebase_locked(&s->vrings[i], s->mem, s->features, iotlb_in_use(s));
	unlock_rings(s);
}

/* The link is up while queue pair 0 can move packets both ways. */
static void
update_link(struct vhu_session *s)
{
	bool up = s->connected && s->vrings[0].ready && s->vrings[1].ready;

	if (up == s->link_up)
		return;
	__atomic_store_n(&s->link_up, up, __ATOMIC_RELEASE);
	VHU_LOG(INFO, "%s: link %s", s->name, up ? "up" : "down");
	if (s->ops != NULL && s->ops->link_changed != NULL)
		s->ops->link_changed(s->ops_ctx, up);
}

static void
ring_state_changed(struct vhu_session *s, uint32_t i, bool enabled)
{
	if (s->ops != NULL && s->ops->vring_state_changed != NULL)
		s->ops->vring_state_changed(s->ops_ctx, (uint16_t)i, enabled);
}

/* Out of postcopy mode: its userfaultfd closed, an unacknowledged table dropped. */
static void
postcopy_end(struct vhu_session *s)
{
	if (s->postcopy_ufd >= 0)
		close(s->postcopy_ufd);
	s->postcopy_ufd = -1;
	s->postcopy_listening = false;
	vhu_mem_table_put(s->postcopy_table);
	s->postcopy_table = NULL;
}

static void
reset(struct vhu_session *s)
{
	for (uint32_t i = 0; i < s->nrings; i++) {
		bool was_enabled = s->vrings[i].ctl.enabled;

		vhu_vring_ctl_reset(&s->vrings[i]);
		if (was_enabled)
			ring_state_changed(s, i, false);
	}
	vhu_mem_table_put(s->mem);
	s->mem = NULL;
	if (s->iotlb != NULL)
		vhu_iotlb_flush(s->iotlb);	/* no ring uses it any more */
	postcopy_end(s);
	vhu_dirty_log_put(s->log);
	s->log = NULL;
	s->features = 0;
	s->features_set = false;
	s->protocol_features = 0;
	s->status = 0;
	__atomic_store_n(&s->mtu, 0, __ATOMIC_RELAXED);
}

static void
reply_u64(struct vhu_msg *m, uint64_t value)
{
	m->payload.u64 = value;
	m->hdr.size = sizeof(uint64_t);
}

static enum handler_result
h_get_features(struct vhu_session *s, struct vhu_msg *m)
{
	reply_u64(m, s->offered_features);
	return HANDLED;
}

/* A front end may only accept what was offered. */
static bool
only_offered(const struct vhu_session *s, const struct vhu_msg *m, uint64_t offered)
{
	uint64_t extra = m->payload.u64 & ~offered;

	if (extra != 0)
		VHU_LOG(ERR, "%s: %s 0x%" PRIx64 " has bits not offered (0x%" PRIx64 ")", s->name,
			vhu_request_name(m->hdr.request), m->payload.u64, extra);
	return extra == 0;
}

/* Enables or disables ring @i, and tells the port's owner when that changes. */
static void
set_ring_enabled(struct vhu_session *s, uint32_t i, bool enable)
{
	if (vhu_vring_ctl_enable(&s->vrings[i], enable))
		ring_state_changed(s, i, enable);
}

/* The first ring started (kick received, not stopped), or -1. */
static int
started_ring(const struct vhu_session *s)
{
	for (uint32_t i = 0; i < s->nrings; i++)
		if (s->vrings[i].ctl.started)
			return (int)i;
	return -1;
}

static enum handler_result
h_set_features(struct vhu_session *s, struct vhu_msg *m)
{
	uint64_t f = m->payload.u64;
	int running = started_ring(s);

	if (!only_offered(s, m, s->offered_features))
		return REFUSED;
	/*
	 * Rings already running were set up for the features they started
	 * with (layout, header size): only dirty logging may be switched.
	 */
	if (s->features_set && running >= 0 && ((s->features ^ f) & ~VHU_BIT(VHOST_F_LOG_ALL))) {
		VHU_LOG(ERR, "%s: SET_FEATURES 0x%" PRIx64 " changes 0x%" PRIx64 " while ring %d is running (only LOG_ALL may change)",
			s->name, f, (s->features ^ f) & ~VHU_BIT(VHOST_F_LOG_ALL), running);
		return REFUSED;
	}
	s->features = f;
	s->features_set = true;
	rebase_all(s);
	/* Without protocol features there is no SET_VRING_ENABLE: rings start enabled. */
	if (!(f & VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		for (uint32_t i = 0; i < s->nrings; i++)
			set_ring_enabled(s, i, true);
	update_link(s);
	VHU_LOG(INFO, "%s: features 0x%" PRIx64 " negotiated", s->name, f);
	return HANDLED;
}

static enum handler_result
h_set_owner(struct vhu_session *s __rte_unused, struct vhu_msg *m __rte_unused)
{
	return HANDLED;
}

static enum handler_result
h_reset_owner(struct vhu_session *s, struct vhu_msg *m __rte_unused)
{
	reset(s);
	update_link(s);
	return HANDLED;
}

/* @table (NULL: refused) becomes the session's memory. */
static enum handler_result
install_mem_table(struct vhu_session *s, struct vhu_mem_table *table)
{
	struct vhu_mem_table *old = s->mem;

	if (table == NULL)
		return REFUSED;
	s->mem = table;
	rebase_all(s);		/* every ring now holds the new table */
	vhu_mem_table_put(old);
	update_link(s);		/* rings may have become usable, or stopped being */
	return HANDLED;
}

/*
 * Postcopy: @table (NULL: refused) waits for the front end to acknowledge
 * our answer, @regions of the message each with its front-end address
 * replaced by where we mapped it: the front end translates its faults with
 * those (postcopy.h).
 */
static enum handler_result
answer_postcopy_table(struct vhu_session *s, struct vhu_mem_table *table,
		      struct vhu_mem_region_desc *regions, uint32_t nregions)
{
	if (table == NULL)
		return REFUSED;
	for (uint32_t i = 0; i < nregions; i++)
		regions[i].frontend_addr =
			(uintptr_t)vhu_mem_guest_to_host(table, regions[i].guest_phys_addr, 0);
	vhu_mem_table_put(s->postcopy_table);
	s->postcopy_table = table;
	return ANSWERED;
}

/* The front end acknowledged our postcopy answer: the table goes into use. */
static enum handler_result
postcopy_table_acknowledged(struct vhu_session *s)
{
	struct vhu_mem_table *table = s->postcopy_table;

	s->postcopy_table = NULL;
	if (!vhu_postcopy_register(s->postcopy_ufd, table, s->name)) {
		vhu_mem_table_put(table);
		return REFUSED;
	}
	VHU_LOG(INFO, "%s: postcopy: %u memory regions registered for page faults", s->name,
		table->nregions);
	return install_mem_table(s, table);
}

static enum handler_result
h_set_mem_table(struct vhu_session *s, struct vhu_msg *m)
{
	struct vhu_memory *mem = &m->payload.memory;
	struct vhu_mem_table *table;

	table = vhu_mem_table_create(mem->regions, m->fds, mem->nregions, s->name);
	m->nfds = 0;	/* closed by vhu_mem_table_create */
	if (s->postcopy_listening)
		return answer_postcopy_table(s, table, mem->regions, mem->nregions);
	return install_mem_table(s, table);
}

/* Requests only valid once their protocol feature is negotiated: whether it is (else logged). */
static bool
negotiated(const struct vhu_session *s, const struct vhu_msg *m, unsigned int feature,
	   const char *feature_name)
{
	if (s->protocol_features & VHU_BIT(feature))
		return true;
	VHU_LOG(ERR, "%s: %s without PROTOCOL_F_%s negotiated", s->name,
		vhu_request_name(m->hdr.request), feature_name);
	return false;
}

#define mem_slots_negotiated(s, m) \
	negotiated(s, m, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, "CONFIGURE_MEM_SLOTS")
#define pagefault_negotiated(s, m) negotiated(s, m, VHOST_USER_PROTOCOL_F_PAGEFAULT, "PAGEFAULT")

static enum handler_result
h_get_max_mem_slots(struct vhu_session *s, struct vhu_msg *m)
{
	reply_u64(m, mem_slots_negotiated(s, m) ? VHU_MEM_MAX_REGIONS : 0);
	return HANDLED;
}

static enum handler_result
h_add_mem_reg(struct vhu_session *s, struct vhu_msg *m)
{
	struct vhu_mem_table *table;

	if (!mem_slots_negotiated(s, m))
		return REFUSED;
	/* While listening, regions added since the last acknowledgement wait with it. */
	table = vhu_mem_table_add(s->postcopy_table != NULL ? s->postcopy_table : s->mem,
				  &m->payload.mem_reg.region, m->fds[0], s->name);
	m->nfds = 0;	/* closed by vhu_mem_table_add */
	if (s->postcopy_listening)
		return answer_postcopy_table(s, table, &m->payload.mem_reg.region, 1);
	return install_mem_table(s, table);
}

static enum handler_result
h_rem_mem_reg(struct vhu_session *s, struct vhu_msg *m)
{
	if (!mem_slots_negotiated(s, m))
		return REFUSED;
	return install_mem_table(s, vhu_mem_table_remove(s->mem, &m->payload.mem_reg.region,
							 s->name));
}

/* Maps the log; answered always (front ends wait for it), 0 on success. */
static enum handler_result
h_set_log_base(struct vhu_session *s, struct vhu_msg *m)
{
	struct vhu_dirty_log *log = vhu_dirty_log_create(m->fds[0], m->payload.log.mmap_size,
							 m->payload.log.mmap_offset, s->name);

	m->fds[0] = -1;	/* closed by vhu_dirty_log_create */
	reply_u64(m, log != NULL ? 0 : 1);
	if (log == NULL)
		return REFUSED;
	/* Every ring switches under its lock; the session keeps one reference. */
	for (uint32_t i = 0; i < s->nrings; i++)
		vhu_vring_ctl_set_log(&s->vrings[i], log);
	vhu_dirty_log_put(s->log);
	s->log = log;
	return HANDLED;
}

/* The log fd signals log syncs for front ends that want them; we have no use for it. */
static enum handler_result
h_set_log_fd(struct vhu_session *s __rte_unused, struct vhu_msg *m __rte_unused)
{
	return HANDLED;
}

/* Split rings need a power of two; packed rings any size up to the maximum. */
static bool
ring_size_valid(uint32_t num, bool packed)
{
	return num != 0 && num <= VHU_VRING_MAX_SIZE && (packed || (num & (num - 1)) == 0);
}

static enum handler_result
h_set_vring_num(struct vhu_session *s, struct vhu_msg *m)
{
	uint32_t num = m->payload.state.num;
	bool packed = (s->features & VHU_BIT(VIRTIO_F_RING_PACKED)) != 0;

	if (!ring_size_valid(num, packed)) {
		VHU_LOG(ERR, "%s: ring %u: size %u (must be %sup to %u)", s->name, m->ring_index,
			num, packed ? "" : "a power of 2 ", VHU_VRING_MAX_SIZE);
		return REFUSED;
	}
	if (vhu_vring_ctl_set_num(&s->vrings[m->ring_index], num) < 0)
		return REFUSED;
	update_link(s);
	return HANDLED;
}

static enum handler_result
h_set_vring_addr(struct vhu_session *s, struct vhu_msg *m)
{
	const struct vhu_vring_addr *a = &m->payload.addr;
	const struct vhu_vring_addr_config addr = {
		.flags = a->flags,
		.desc = a->desc_user_addr,
		.avail = a->avail_user_addr,
		.used = a->used_user_addr,
		.log = a->log_guest_addr,
	};

	if ((a->desc_user_addr & 15) || (a->avail_user_addr & 1) || (a->used_user_addr & 3)) {
		VHU_LOG(ERR, "%s: ring %u: misaligned ring addresses (desc 0x%" PRIx64
			" avail 0x%" PRIx64 " used 0x%" PRIx64 ")", s->name, m->ring_index,
			a->desc_user_addr, a->avail_user_addr, a->used_user_addr);
		return REFUSED;
	}
	if (a->flags & ~VHOST_VRING_F_LOG) {
		VHU_LOG(ERR, "%s: ring %u: unknown address flags 0x%x", s->name,
			m->ring_index, a->flags);
		return REFUSED;
	}
	vhu_vring_ctl_set_addr(&s->vrings[m->ring_index], &addr);
	update_link(s);
	return HANDLED;
}

/*
 * Split: the next available index (16 bits). Packed: slot and wrap counter
 * of the next available descriptor in bits 0-15 and, as QEMU sends it (and
 * GET_VRING_BASE answers), of the next used one in bits 16-31; we complete
 * every chain we take, so the available half says it all (the ring checks
 * the slot against its size when it starts).
 */
static enum handler_result
h_set_vring_base(struct vhu_session *s, struct vhu_msg *m)
{
	bool packed = (s->features & VHU_BIT(VIRTIO_F_RING_PACKED)) != 0;

	if (!packed && m->payload.state.num > UINT16_MAX) {
		VHU_LOG(ERR, "%s: ring %u: base 0x%x out of range", s->name, m->ring_index,
			m->payload.state.num);
		return REFUSED;
	}
	return vhu_vring_ctl_set_base(&s->vrings[m->ring_index], m->payload.state.num) < 0 ?
	       REFUSED : HANDLED;
}

static enum handler_result
h_get_vring_base(struct vhu_session *s, struct vhu_msg *m)
{
	m->payload.state.num = vhu_vring_ctl_stop(&s->vrings[m->ring_index]);
	update_link(s);
	return HANDLED;
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

static enum handler_result
h_set_vring_kick(struct vhu_session *s, struct vhu_msg *m)
{
	vhu_vring_ctl_start(&s->vrings[m->ring_index], take_ring_fd(m));
	update_link(s);
	return HANDLED;
}

static enum handler_result
h_set_vring_call(struct vhu_session *s, struct vhu_msg *m)
{
	vhu_vring_ctl_set_callfd(&s->vrings[m->ring_index], take_ring_fd(m));
	return HANDLED;
}

static enum handler_result
h_set_vring_err(struct vhu_session *s, struct vhu_msg *m)
{
	vhu_vring_ctl_set_errfd(&s->vrings[m->ring_index], take_ring_fd(m));
	return HANDLED;
}

static enum handler_result
h_get_protocol_features(struct vhu_session *s, struct vhu_msg *m)
{
	reply_u64(m, s->offered_protocol_features);
	return HANDLED;
}

static enum handler_result
h_set_protocol_features(struct vhu_session *s, struct vhu_msg *m)
{
	if (!only_offered(s, m, s->offered_protocol_features))
		return REFUSED;
	s->protocol_features = m->payload.u64;
	return HANDLED;
}

static enum handler_result
h_get_queue_num(struct vhu_session *s, struct vhu_msg *m)
{
	reply_u64(m, s->queue_pairs);
	return HANDLED;
}

static enum handler_result
h_set_vring_enable(struct vhu_session *s, struct vhu_msg *m)
{
	uint32_t enable = m->payload.state.num;

	if (enable > 1) {
		VHU_LOG(ERR, "%s: ring %u: SET_VRING_ENABLE with %u", s->name,
			m->ring_index, enable);
		return REFUSED;
	}
	set_ring_enabled(s, m->ring_index, enable == 1);
	update_link(s);
	return HANDLED;
}

/*
 * After a migration, for a guest that cannot announce itself: the next
 * receive burst of queue 0 hands the application a RARP frame from the
 * guest's MAC, as if the guest had sent it.
 */
static enum handler_result
h_send_rarp(struct vhu_session *s, struct vhu_msg *m)
{
	struct rte_ether_addr mac;

	memcpy(&mac, &m->payload.u64, RTE_ETHER_ADDR_LEN);
	vhu_vring_ctl_announce(&s->vrings[1], &mac);
	VHU_LOG(INFO, "%s: will announce " RTE_ETHER_ADDR_PRT_FMT " with a RARP frame", s->name,
		RTE_ETHER_ADDR_BYTES(&mac));
	return HANDLED;
}

/*
 * The MTU the front end gave its guest (QEMU's host_mtu): the owner shows it
 * to the application (vhu_port_mtu). No frame size of ours depends on it.
 */
static enum handler_result
h_net_set_mtu(struct vhu_session *s, struct vhu_msg *m)
{
	uint64_t mtu = m->payload.u64;

	if (mtu < 68 || mtu > 65535) {
		VHU_LOG(ERR, "%s: NET_SET_MTU %" PRIu64 " out of range 68..65535", s->name, mtu);
		return REFUSED;
	}
	__atomic_store_n(&s->mtu, (uint16_t)mtu, __ATOMIC_RELAXED);
	VHU_LOG(INFO, "%s: the front end set the MTU to %" PRIu64, s->name, mtu);
	return HANDLED;
}

static enum handler_result
h_set_status(struct vhu_session *s, struct vhu_msg *m)
{
	if (m->payload.u64 > UINT8_MAX) {
		VHU_LOG(ERR, "%s: SET_STATUS 0x%" PRIx64 " is not a status byte", s->name,
			m->payload.u64);
		return REFUSED;
	}
	if (m->payload.u64 != s->status)
		VHU_LOG(INFO, "%s: device status 0x%02" PRIx64 "%s%s%s%s%s%s", s->name,
			m->payload.u64, m->payload.u64 == 0 ? " (reset)" : "",
			m->payload.u64 & VIRTIO_CONFIG_S_ACKNOWLEDGE ? " ACKNOWLEDGE" : "",
			m->payload.u64 & VIRTIO_CONFIG_S_DRIVER ? " DRIVER" : "",
			m->payload.u64 & VIRTIO_CONFIG_S_FEATURES_OK ? " FEATURES_OK" : "",
			m->payload.u64 & VIRTIO_CONFIG_S_DRIVER_OK ? " DRIVER_OK" : "",
			m->payload.u64 & VIRTIO_CONFIG_S_FAILED ? " FAILED" : "");
	/* The device status as the driver wrote it: a front end resetting the
	 * device waits until it reads back 0 (DPDK's virtio_reset()). */
	s->status = m->payload.u64;
	return HANDLED;
}

static enum handler_result
h_get_status(struct vhu_session *s, struct vhu_msg *m)
{
	reply_u64(m, s->status);
	return HANDLED;
}

/* Answered with a userfaultfd the front end resolves our page faults with. */
static enum handler_result
h_postcopy_advise(struct vhu_session *s, struct vhu_msg *m)
{
	m->hdr.size = 0;
	if (!pagefault_negotiated(s, m))
		return REFUSED;
	if (s->postcopy_ufd < 0)
		s->postcopy_ufd = vhu_postcopy_open(s->name);
	m->reply_fd = s->postcopy_ufd;
	return s->postcopy_ufd >= 0 ? HANDLED : REFUSED;
}

static enum handler_result
h_postcopy_listen(struct vhu_session *s, struct vhu_msg *m)
{
	if (!pagefault_negotiated(s, m))
		return REFUSED;
	if (s->postcopy_ufd < 0) {
		VHU_LOG(ERR, "%s: POSTCOPY_LISTEN before POSTCOPY_ADVISE", s->name);
		return REFUSED;
	}
	/* What is mapped already was touched, and its faults would not come to us. */
	if (s->mem != NULL && s->mem->nregions > 0) {
		VHU_LOG(ERR, "%s: POSTCOPY_LISTEN with guest memory mapped already", s->name);
		return REFUSED;
	}
	s->postcopy_listening = true;
	VHU_LOG(INFO, "%s: postcopy: listening", s->name);
	return HANDLED;
}

static enum handler_result
h_postcopy_end(struct vhu_session *s, struct vhu_msg *m)
{
	if (s->postcopy_listening)
		VHU_LOG(INFO, "%s: postcopy: done", s->name);
	postcopy_end(s);
	reply_u64(m, 0);
	return HANDLED;
}

#define backend_req_negotiated(s, m) \
	negotiated(s, m, VHOST_USER_PROTOCOL_F_BACKEND_REQ, "BACKEND_REQ")

/* Our request channel: IOTLB misses go there. */
static enum handler_result
h_set_backend_req_fd(struct vhu_session *s, struct vhu_msg *m)
{
	if (!backend_req_negotiated(s, m))
		return REFUSED;
	vhu_iotlb_set_backend_fd(s->iotlb, m->fds[0]);	/* offered only with an IOTLB */
	m->fds[0] = -1;
	return HANDLED;
}

/* Translations learnt: rings waiting for one map, frames waiting for one go. */
static void
iotlb_updated(struct vhu_session *s)
{
	for (uint32_t i = 0; i < s->nrings; i++)
		vhu_vring_ctl_iotlb_updated(&s->vrings[i]);
	update_link(s);
}

static enum handler_result
h_iotlb_msg(struct vhu_session *s, struct vhu_msg *m)
{
	const struct vhu_iotlb_msg *im = &m->payload.iotlb;
	struct vhu_iotlb *iotlb = iotlb_in_use(s);
	bool ok;

	if (iotlb == NULL) {
		VHU_LOG(ERR, "%s: IOTLB_MSG without VIRTIO_F_ACCESS_PLATFORM negotiated", s->name);
		return REFUSED;
	}
	switch (im->type) {
	case VHU_IOTLB_MSG_UPDATE:
		lock_rings(s);
		ok = vhu_iotlb_update(iotlb, s->mem, im->iova, im->size, im->uaddr, im->perm);
		unlock_rings(s);
		if (!ok)
			return REFUSED;
		iotlb_updated(s);
		return HANDLED;
	case VHU_IOTLB_MSG_INVALIDATE:
		/* Once answered, no burst uses the range: none runs meanwhile. */
		lock_rings(s);
		vhu_iotlb_invalidate(iotlb, im->iova, im->size);
		iotlb->count.invalidations++;
		for (uint32_t i = 0; i < s->nrings; i++)
			vhu_vring_ctl_iotlb_invalidated_locked(&s->vrings[i], im->iova, im->size);
		unlock_rings(s);
		update_link(s);
		return HANDLED;
	default:
		VHU_LOG(ERR, "%s: IOTLB_MSG of type %u (the front end sends updates and invalidations)",
			s->name, im->type);
		return REFUSED;
	}
}

static const request_handler handlers[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = h_get_features,
	[VHOST_USER_SET_FEATURES] = h_set_features,
	[VHOST_USER_SET_OWNER] = h_set_owner,
	[VHOST_USER_RESET_OWNER] = h_reset_owner,
	[VHOST_USER_SET_MEM_TABLE] = h_set_mem_table,
	[VHOST_USER_GET_MAX_MEM_SLOTS] = h_get_max_mem_slots,
	[VHOST_USER_ADD_MEM_REG] = h_add_mem_reg,
	[VHOST_USER_REM_MEM_REG] = h_rem_mem_reg,
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
	[VHOST_USER_SET_BACKEND_REQ_FD] = h_set_backend_req_fd,
	[VHOST_USER_IOTLB_MSG] = h_iotlb_msg,
	[VHOST_USER_POSTCOPY_ADVISE] = h_postcopy_advise,
	[VHOST_USER_POSTCOPY_LISTEN] = h_postcopy_listen,
	[VHOST_USER_POSTCOPY_END] = h_postcopy_end,
	[VHOST_USER_SET_STATUS] = h_set_status,
	[VHOST_USER_GET_STATUS] = h_get_status,
};

bool
vhu_session_handles(uint32_t request)
{
	return request < RTE_DIM(handlers) && handlers[request] != NULL;
}

enum vhu_dispatch
vhu_session_handle(struct vhu_session *s, struct vhu_msg *m)
{
	enum handler_result r;
	bool want_ack;

	m->reply_fd = -1;
	/*
	 * REPLY_ACK negotiated before this message or by it: the
	 * SET_PROTOCOL_FEATURES that turns it on is acknowledged too.
	 */
	want_ack = s->protocol_features & VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	if (s->postcopy_table != NULL && vhu_msg_is_postcopy_ack(m)) {
		/* acknowledged in turn if it asks for it, as any request */
		r = postcopy_table_acknowledged(s);
	} else if (s->postcopy_table != NULL && m->hdr.request != VHOST_USER_ADD_MEM_REG) {
		VHU_LOG(ERR, "%s: %s while our postcopy memory table waits for its acknowledgement",
			s->name, vhu_request_name(m->hdr.request));
		vhu_msg_close_fds(m);
		return VHU_DISPATCH_CLOSE;
	} else {
		if (vhu_msg_validate(m, s->nrings, s->name) < 0) {
			vhu_msg_close_fds(m);
			return VHU_DISPATCH_CLOSE;
		}
		VHU_LOG(DEBUG, "%s: %s", s->name, vhu_request_name(m->hdr.request));
		r = handlers[m->hdr.request](s, m);
		vhu_msg_close_fds(m);
		if (r == ANSWERED || vhu_request_has_reply(m->hdr.request))
			return VHU_DISPATCH_REPLY;	/* answered even when refused */
	}
	want_ack = (m->hdr.flags & VHOST_USER_NEED_REPLY) &&
		   (want_ack || (s->protocol_features & VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)));
	if (!want_ack)
		return VHU_DISPATCH_DONE;
	reply_u64(m, r == REFUSED ? 1 : 0);
	return VHU_DISPATCH_REPLY;
}

const struct vhu_memguard_flag *
vhu_session_memory_lost(const struct vhu_session *s)
{
	const struct vhu_memguard_flag *lost = vhu_mem_table_lost_memory(s->mem);

	if (lost != NULL)
		return lost;
	if (s->log != NULL && vhu_memguard_hit(&s->log->guard))
		return &s->log->guard;
	return NULL;
}

int
vhu_session_init(struct vhu_session *s, const struct vhu_port_config *cfg, const char *name,
		 struct vhu_vring *vrings)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->queue_pairs = cfg->queue_pairs;
	s->nrings = 2u * cfg->queue_pairs;
	s->vrings = vrings;
	s->ops = cfg->ops;
	s->ops_ctx = cfg->ops_ctx;
	s->offered_features = base_features | (cfg->tso ? host_tso_features : 0);
	/* Zero-copy gives chains back in the order mbufs are freed. */
	if (cfg->zero_copy_threshold > 0)
		s->offered_features &= ~VHU_BIT(VIRTIO_F_IN_ORDER);
	s->offered_protocol_features = base_protocol_features |
		(cfg->postcopy ? VHU_BIT(VHOST_USER_PROTOCOL_F_PAGEFAULT) : 0);
	s->id = -1;
	s->postcopy_ufd = -1;
	if (cfg->iommu) {
		/* IOTLB messages come with reply-ack; misses go on our request channel. */
		s->offered_features |= VHU_BIT(VIRTIO_F_ACCESS_PLATFORM);
		s->offered_protocol_features |= VHU_BIT(VHOST_USER_PROTOCOL_F_BACKEND_REQ);
		s->iotlb = vhu_iotlb_create(name);
		if (s->iotlb == NULL)
			return -1;
	}
	return 0;
}

void
vhu_session_fini(struct vhu_session *s)
{
	vhu_iotlb_destroy(s->iotlb);
	s->iotlb = NULL;
}

void
vhu_session_connected(struct vhu_session *s)
{
	static int next_id;

	s->connected = true;
	__atomic_store_n(&s->id, next_id++ & INT32_MAX, __ATOMIC_RELEASE);
}

void
vhu_session_end(struct vhu_session *s)
{
	if (s->iotlb != NULL && s->connected) {
		const struct vhu_iotlb_counters *c = &s->iotlb->count;

		if (c->updates > 0 || c->misses > 0)
			VHU_LOG(INFO, "%s: IOTLB: %" PRIu64 " updates, %" PRIu64 " invalidations, %"
				PRIu64 " misses asked, %" PRIu64 " entries evicted", s->name,
				c->updates, c->invalidations, c->misses, c->evictions);
		memset(&s->iotlb->count, 0, sizeof(s->iotlb->count));
		vhu_iotlb_set_backend_fd(s->iotlb, -1);
	}
	s->connected = false;
	__atomic_store_n(&s->id, -1, __ATOMIC_RELEASE);
	reset(s);
	update_link(s);
}
