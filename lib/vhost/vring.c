/* SPDX-License-Identifier: BSD-3-Clause */
#include "vring.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vhu_log.h"
#include "zerocopy.h"

/* Guest errors logged per ring before the log goes quiet (counters go on). */
#define VHU_GUEST_ERRORS_LOGGED 8

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
vhu_vring_init(struct vhu_vring *vr, uint16_t index, const char *port_name)
{
	memset(vr, 0, sizeof(*vr));
	rte_spinlock_init(&vr->lock);
	vr->index = index;
	vr->port_name = port_name;
	vr->callfd = -1;
	vr->kickfd = -1;
	vr->errfd = -1;
}

static void
unmap_rings(struct vhu_vring *vr)
{
	vr->desc = NULL;
	vr->avail = NULL;
	vr->used = NULL;
	vr->pdesc = NULL;
	vr->driver_event = NULL;
	vr->device_event = NULL;
}

void
vhu_vring_reset(struct vhu_vring *vr)
{
	rte_spinlock_lock(&vr->lock);
	vhu_zc_ring_stopped(vr, false);	/* the session is gone: nothing to give back */
	close_fd(&vr->callfd);
	close_fd(&vr->kickfd);
	close_fd(&vr->errfd);
	vhu_mem_table_put(vr->mem);
	vr->mem = NULL;
	vhu_vring_set_log(vr, NULL);
	vr->ready = false;
	vr->discarding = false;
	vr->broken = false;
	vr->num_set = false;
	vr->addr_set = false;
	vr->started = false;
	vr->enabled = false;
	vr->base = 0;
	vr->base_pending = false;
	vr->indices_valid = false;
	vr->errors_logged = 0;
	vr->rarp_pending = false;
	vr->size = 0;
	unmap_rings(vr);
	free(vr->pending);
	vr->pending = NULL;
	vr->pending_cap = 0;
	vr->npending = 0;
	memset(&vr->addr, 0, sizeof(vr->addr));
	rte_spinlock_unlock(&vr->lock);
}

/* Maps the three split-ring areas; false (logged) when one is not mapped. */
static bool
translate_split(struct vhu_vring *vr, const struct vhu_mem_table *mem)
{
	vr->desc = vhu_mem_frontend_to_host(mem, vr->addr.desc,
					    vring_desc_area_size(vr->size));
	vr->avail = vhu_mem_frontend_to_host(mem, vr->addr.avail,
					     vring_avail_area_size(vr->size));
	vr->used = vhu_mem_frontend_to_host(mem, vr->addr.used,
					    vring_used_area_size(vr->size));
	/*
	 * SET_VRING_ADDR checked the front end's addresses; a region whose
	 * file offset is odd can still map them to misaligned host addresses.
	 */
	if (vr->desc != NULL && vr->avail != NULL && vr->used != NULL &&
	    ((uintptr_t)vr->desc & 15) == 0 && ((uintptr_t)vr->avail & 1) == 0 &&
	    ((uintptr_t)vr->used & 3) == 0)
		return true;
	if (vr->desc != NULL && vr->avail != NULL && vr->used != NULL) {
		VHU_LOG(ERR, "%s: ring %u: guest memory maps the ring to misaligned addresses",
			vr->port_name, vr->index);
		unmap_rings(vr);
		return false;
	}
	VHU_LOG(ERR, "%s: ring %u: %s area (0x%" PRIx64 ") of a %u-entry ring is not inside guest memory",
		vr->port_name, vr->index,
		vr->desc == NULL ? "descriptor" : vr->avail == NULL ? "available" : "used",
		vr->desc == NULL ? vr->addr.desc : vr->avail == NULL ? vr->addr.avail : vr->addr.used,
		vr->size);
	unmap_rings(vr);
	return false;
}

/*
 * Maps the packed ring and its two event suppression areas (SET_VRING_ADDR's
 * avail and used addresses), and makes room for a ring's worth of pending
 * completions.
 */
static bool
translate_packed(struct vhu_vring *vr, const struct vhu_mem_table *mem)
{
	vr->pdesc = vhu_mem_frontend_to_host(mem, vr->addr.desc,
					     (uint64_t)vr->size * sizeof(struct vring_packed_desc));
	vr->driver_event = vhu_mem_frontend_to_host(mem, vr->addr.avail,
						    sizeof(struct vring_packed_desc_event));
	vr->device_event = vhu_mem_frontend_to_host(mem, vr->addr.used,
						    sizeof(struct vring_packed_desc_event));
	if (vr->pdesc == NULL || vr->driver_event == NULL || vr->device_event == NULL) {
		VHU_LOG(ERR, "%s: ring %u: %s of a %u-entry packed ring is not inside guest memory",
			vr->port_name, vr->index,
			vr->pdesc == NULL ? "descriptor area" : vr->driver_event == NULL ?
			"driver event area" : "device event area", vr->size);
		unmap_rings(vr);
		return false;
	}
	if (((uintptr_t)vr->pdesc & 15) || ((uintptr_t)vr->driver_event & 3) ||
	    ((uintptr_t)vr->device_event & 3)) {
		VHU_LOG(ERR, "%s: ring %u: guest memory maps the ring to misaligned addresses",
			vr->port_name, vr->index);
		unmap_rings(vr);
		return false;
	}
	if (vr->pending_cap < vr->size) {
		struct vhu_packed_used *p = realloc(vr->pending, vr->size * sizeof(*p));

		if (p == NULL) {
			VHU_LOG(ERR, "%s: ring %u: out of memory", vr->port_name, vr->index);
			unmap_rings(vr);
			return false;
		}
		vr->pending = p;
		vr->pending_cap = vr->size;
	}
	return true;
}

/*
 * Logging needs LOG_ALL and a log; the used area too when the ring's address
 * flags ask for it: split rings at the front end's log address, packed rings
 * at the guest address of the descriptor ring, where used entries land.
 */
static void
update_logging(struct vhu_vring *vr)
{
	vr->logging = vr->log != NULL && (vr->features & VHU_BIT(VHOST_F_LOG_ALL));
	vr->log_used = false;
	if (!vr->logging || !(vr->addr.flags & VHOST_VRING_F_LOG) || vr->mem == NULL)
		return;
	vr->used_gpa = vr->packed ? vhu_mem_frontend_to_guest(vr->mem, vr->addr.desc) :
				    vr->addr.log;
	vr->log_used = vr->used_gpa != UINT64_MAX;
}

/* Where a ring's indices (re)start: the split used index in guest memory, or the packed base. */
static void
restart_indices(struct vhu_vring *vr)
{
	bool fresh = !vr->indices_valid;

	vr->npending = 0;
	vr->indices_valid = true;
	if (vr->packed) {
		if (fresh && !vr->base_pending) {
			/* No base from the front end: a new ring, both wrap counters 1. */
			vr->last_avail_idx = 0;
			vr->last_used_idx = 0;
			vr->avail_wrap = true;
			vr->used_wrap = true;
		} else if (vr->base_pending) {
			/* bits 0-14: next available slot, bit 15: its wrap counter */
			vr->last_avail_idx = vr->base & 0x7fff;
			vr->avail_wrap = (vr->base >> 15) & 1;
			/* Nothing stays in flight here: used catches up with avail. */
			vr->last_used_idx = vr->last_avail_idx;
			vr->used_wrap = vr->avail_wrap;
			vr->base_pending = false;
		}
		vr->published_used_idx = vr->last_used_idx;
		vr->published_used_wrap = vr->used_wrap;
		return;
	}
	/*
	 * The used index in guest memory is the truth: whatever was taken
	 * beyond it was never completed and the front end offers it again
	 * after a reconnect.
	 */
	uint16_t used_idx = __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE);

	if (used_idx != (uint16_t)vr->base)
		VHU_LOG(INFO, "%s: ring %u: base %u differs from used index %u; resuming at the used index",
			vr->port_name, vr->index, vr->base, used_idx);
	vr->last_used_idx = used_idx;
	vr->last_avail_idx = used_idx;
}

/*
 * A ring (re)starts being polled: its first completion always signals (the
 * driver may have waited for one while it stopped), and the driver is told
 * not to kick us: we poll. With EVENT_IDX a split ring's flag is ignored and
 * avail_event rules; we never move it, so the driver kicks about once per
 * 65536 buffers.
 */
static void
start_polling(struct vhu_vring *vr)
{
	vr->signalled_valid = false;
	if (vr->packed)
		__atomic_store_n(&vr->device_event->flags, VRING_PACKED_EVENT_FLAG_DISABLE,
				 __ATOMIC_RELAXED);
	else
		__atomic_store_n(&vr->used->flags, VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

void
vhu_vring_refresh(struct vhu_vring *vr, struct vhu_mem_table *mem, uint64_t features)
{
	bool was_ready = vr->ready;
	bool restart;

	vr->ready = false;
	vr->discarding = false;
	vr->hdr_len = (features & (VHU_BIT(VIRTIO_F_VERSION_1) |
				   VHU_BIT(VIRTIO_NET_F_MRG_RXBUF))) ?
		      sizeof(struct virtio_net_hdr_mrg_rxbuf) : sizeof(struct virtio_net_hdr);
	vr->mrg_rxbuf = (features & VHU_BIT(VIRTIO_NET_F_MRG_RXBUF)) != 0;
	vr->features = features;
	vr->event_idx = (features & VHU_BIT(VIRTIO_RING_F_EVENT_IDX)) != 0;
	vr->packed = (features & VHU_BIT(VIRTIO_F_RING_PACKED)) != 0;

	if (vr->mem != mem) {
		if (mem != NULL)
			vhu_mem_table_get(mem);
		vhu_mem_table_put(vr->mem);
		vr->mem = mem;
	}
	unmap_rings(vr);
	if (mem == NULL || !vr->num_set || !vr->addr_set || !vr->started)
		return;
	if (!(vr->packed ? translate_packed(vr, mem) : translate_split(vr, mem)))
		return;
	/*
	 * Indices restart when a stopped ring has none (new ring, new base)
	 * and when the guest broke the ring: they stopped in the middle of a
	 * bad entry (so a ring stays broken through refreshes that cannot
	 * restart it). A ring only disabled, or remapped, keeps them: chains
	 * it still holds zero-copy complete on top of them later.
	 */
	restart = vr->broken || (!was_ready && !vr->indices_valid);
	vr->broken = false;
	if (restart) {
		/*
		 * Held chains belong to the indices being replaced: valid ones
		 * get them back first, as for GET_VRING_BASE; a new base forgets
		 * them (the front end took the ring back).
		 */
		vhu_zc_ring_stopped(vr, vr->indices_valid);
		restart_indices(vr);
	}
	if (!was_ready)
		start_polling(vr);
	/*
	 * Packed positions are slots, not masked indices: a base beyond the
	 * ring, or a ring shrunk (SET_VRING_NUM) or moved while running, would
	 * send the data path past the ring area checked above.
	 */
	if (vr->packed && (vr->last_avail_idx >= vr->size || vr->last_used_idx >= vr->size)) {
		vr->broken = true;
		vhu_vring_bad_input(vr, "slot %u beyond a %u-entry ring; ring stopped",
				      RTE_MAX(vr->last_avail_idx, vr->last_used_idx), vr->size);
	}
	update_logging(vr);
	vr->ready = vr->enabled && !vr->broken;
	vr->discarding = !vr->enabled && !vr->broken && (vr->index & 1);	/* odd: guest TX */
	if (vr->ready)
		vhu_zc_ring_started(vr, vr->socket_id);
}

void
vhu_vring_set_log(struct vhu_vring *vr, struct vhu_dirty_log *log)
{
	if (log != NULL)
		vhu_dirty_log_get(log);
	vhu_dirty_log_put(vr->log);
	vr->log = log;
	update_logging(vr);
}

void
vhu_vring_bad_input(struct vhu_vring *vr, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	vr->stats.malformed++;
	if (vr->errors_logged >= VHU_GUEST_ERRORS_LOGGED)
		return;
	vr->errors_logged++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	VHU_LOG(ERR, "%s: ring %u: %s%s", vr->port_name, vr->index, msg,
		vr->errors_logged == VHU_GUEST_ERRORS_LOGGED ?
		" (further errors on this ring are only counted)" : "");
}

void
vhu_vring_call(struct vhu_vring *vr)
{
	if (vr->callfd < 0)
		return;
	if (eventfd_write(vr->callfd, 1) == 0)
		vr->stats.notifications++;
}
