/* SPDX-License-Identifier: BSD-3-Clause */
#include "vring_ctl.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <rte_malloc.h>

#include "enqueue.h"
#include "vhu_log.h"
#include "virtqueue.h"
#include "vring_intr.h"
#include "zerocopy.h"

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
vhu_vring_ctl_init(struct vhu_vring *vr, uint16_t index, const char *port_name, int socket_id,
		   uint32_t zc_threshold, const struct rte_gso_ctx *gso)
{
	memset(vr, 0, sizeof(*vr));
	rte_spinlock_init(&vr->lock);
	vr->index = index;
	vr->port_name = port_name;
	vr->socket_id = socket_id;
	vr->zc_threshold = zc_threshold;
	vr->gso = gso;
	vr->notify.callfd = -1;
	vr->ctl.kickfd = -1;
	vr->ctl.errfd = -1;
	vhu_vring_intr_init(vr);
}

/* The kick fd becomes @fd (-1: none); interrupt mode lets go of the old one before it is closed. */
static void
replace_kickfd(struct vhu_vring *vr, int fd)
{
	vhu_vring_intr_watch_locked(vr, fd);
	close_fd(&vr->ctl.kickfd);
	vr->ctl.kickfd = fd;
}

static void
unmap_rings(struct vhu_vring *vr)
{
	memset(&vr->split, 0, sizeof(vr->split));
	vr->packed.desc = NULL;
	vr->packed.driver_event = NULL;
	vr->packed.device_event = NULL;
}

/*
 * A ring area -> host memory: @addr is a front-end virtual address, or an
 * IOVA behind a vIOMMU, whose translation may still be missing (then asked
 * for, and *@missing set).
 */
static void *
map_area(struct vhu_vring *vr, const struct vhu_mem_table *mem, uint64_t addr, uint64_t len,
	 uint8_t perm, bool *missing, uint64_t *gpa)
{
	void *p;
	int why;

	if (vr->ctl.iotlb == NULL)
		return vhu_mem_frontend_to_host(mem, addr, len);
	p = vhu_iotlb_to_host(vr->ctl.iotlb, addr, len, perm, gpa, &why);
	if (p == NULL && why == VHU_IOTLB_MISS)
		*missing = true;
	return p;
}

/* A ring behind a vIOMMU waits for the translations of its areas, asked for. */
static bool
wait_for_translation(struct vhu_vring *vr)
{
	VHU_LOG(DEBUG, "%s: ring %u: waiting for the IOTLB to translate its areas",
		vr->port_name, vr->index);
	unmap_rings(vr);
	return false;
}

/* Maps the three split-ring areas; false (logged) when one is not mapped. */
static bool
translate_split(struct vhu_vring *vr, const struct vhu_mem_table *mem)
{
	const struct vhu_vring_addr_config *a = &vr->ctl.addr;
	struct vhu_split_view *sp = &vr->split;
	bool missing = false;

	sp->desc = map_area(vr, mem, a->desc, vring_desc_area_size(vr->size), VHU_IOTLB_RO,
			    &missing, NULL);
	sp->avail = map_area(vr, mem, a->avail, vring_avail_area_size(vr->size), VHU_IOTLB_RO,
			     &missing, NULL);
	sp->used = map_area(vr, mem, a->used, vring_used_area_size(vr->size), VHU_IOTLB_RW,
			    &missing, &vr->ctl.used_area_gpa);
	if (missing)
		return wait_for_translation(vr);
	/*
	 * SET_VRING_ADDR checked the front end's addresses; a region whose
	 * file offset is odd can still map them to misaligned host addresses.
	 */
	if (sp->desc != NULL && sp->avail != NULL && sp->used != NULL &&
	    ((uintptr_t)sp->desc & 15) == 0 && ((uintptr_t)sp->avail & 1) == 0 &&
	    ((uintptr_t)sp->used & 3) == 0)
		return true;
	if (sp->desc != NULL && sp->avail != NULL && sp->used != NULL) {
		VHU_LOG(ERR, "%s: ring %u: guest memory maps the ring to misaligned addresses",
			vr->port_name, vr->index);
		unmap_rings(vr);
		return false;
	}
	VHU_LOG(ERR, "%s: ring %u: %s area (0x%" PRIx64 ") of a %u-entry ring is not inside guest memory",
		vr->port_name, vr->index,
		sp->desc == NULL ? "descriptor" : sp->avail == NULL ? "available" : "used",
		sp->desc == NULL ? a->desc : sp->avail == NULL ? a->avail : a->used, vr->size);
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
	const struct vhu_vring_addr_config *a = &vr->ctl.addr;
	struct vhu_packed_view *pk = &vr->packed;
	bool missing = false;

	pk->desc = map_area(vr, mem, a->desc,
			    (uint64_t)vr->size * sizeof(struct vring_packed_desc), VHU_IOTLB_RW,
			    &missing, &vr->ctl.used_area_gpa);
	pk->driver_event = map_area(vr, mem, a->avail, sizeof(struct vring_packed_desc_event),
				    VHU_IOTLB_RO, &missing, NULL);
	pk->device_event = map_area(vr, mem, a->used, sizeof(struct vring_packed_desc_event),
				    VHU_IOTLB_RW, &missing, NULL);
	if (missing)
		return wait_for_translation(vr);
	if (pk->desc == NULL || pk->driver_event == NULL || pk->device_event == NULL) {
		VHU_LOG(ERR, "%s: ring %u: %s of a %u-entry packed ring is not inside guest memory",
			vr->port_name, vr->index,
			pk->desc == NULL ? "descriptor area" : pk->driver_event == NULL ?
			"driver event area" : "device event area", vr->size);
		unmap_rings(vr);
		return false;
	}
	if (((uintptr_t)pk->desc & 15) || ((uintptr_t)pk->driver_event & 3) ||
	    ((uintptr_t)pk->device_event & 3)) {
		VHU_LOG(ERR, "%s: ring %u: guest memory maps the ring to misaligned addresses",
			vr->port_name, vr->index);
		unmap_rings(vr);
		return false;
	}
	if (pk->pending_cap < vr->size) {
		/*
		 * Written by every burst that completes a chain on its own:
		 * whole cache lines, so that no other ring's array (or anything
		 * else) shares one with it.
		 */
		struct vhu_packed_used *p =
			rte_realloc_socket(pk->pending,
					   RTE_ALIGN_CEIL(vr->size * sizeof(*p), RTE_CACHE_LINE_SIZE),
					   RTE_CACHE_LINE_SIZE, vr->socket_id);

		if (p == NULL) {
			VHU_LOG(ERR, "%s: ring %u: out of memory", vr->port_name, vr->index);
			unmap_rings(vr);
			return false;
		}
		pk->pending = p;
		pk->pending_cap = vr->size;
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
	struct vhu_vring_dirty *dl = &vr->dirty;

	dl->logging = dl->log != NULL && vhu_vring_has(vr, VHOST_F_LOG_ALL);
	dl->log_used = false;
	if (!dl->logging || !(vr->ctl.addr.flags & VHOST_VRING_F_LOG) || vr->mem == NULL)
		return;
	if (vr->ctl.iotlb != NULL) {
		/*
		 * Behind a vIOMMU the ring's addresses (QEMU's log address too,
		 * the used ring's) are IOVAs: the guest address was found when
		 * the ring was mapped, and stays right after an invalidation.
		 */
		dl->used_gpa = vhu_vq_mapped(vr) ? vr->ctl.used_area_gpa : UINT64_MAX;
	} else {
		dl->used_gpa = vr->neg.packed ?
			       vhu_mem_frontend_to_guest(vr->mem, vr->ctl.addr.desc) :
			       vr->ctl.addr.log;
	}
	dl->log_used = dl->used_gpa != UINT64_MAX;
}

/* Where a ring's indices (re)start: the split used index in guest memory, or the packed base. */
static void
restart_indices(struct vhu_vring *vr)
{
	struct vhu_vring_control *ctl = &vr->ctl;
	struct vhu_packed_view *pk = &vr->packed;
	bool fresh = !ctl->indices_valid;

	pk->npending = 0;
	ctl->indices_valid = true;
	if (vr->neg.packed) {
		if (fresh && !ctl->base_pending) {
			/* No base from the front end: a new ring, both wrap counters 1. */
			vr->last_avail_idx = 0;
			vr->last_used_idx = 0;
			pk->avail_wrap = true;
			pk->used_wrap = true;
		} else if (ctl->base_pending) {
			/* bits 0-14: next available slot, bit 15: its wrap counter */
			vr->last_avail_idx = ctl->base & 0x7fff;
			pk->avail_wrap = (ctl->base >> 15) & 1;
			/* Nothing stays in flight here: used catches up with avail. */
			vr->last_used_idx = vr->last_avail_idx;
			pk->used_wrap = pk->avail_wrap;
			ctl->base_pending = false;
		}
		pk->published_used_idx = vr->last_used_idx;
		pk->published_used_wrap = pk->used_wrap;
		return;
	}
	/*
	 * The used index in guest memory is the truth: whatever was taken
	 * beyond it was never completed and the front end offers it again
	 * after a reconnect.
	 */
	uint16_t used_idx = vhu_split_used_idx(vr);

	if (used_idx != (uint16_t)ctl->base)
		VHU_LOG(INFO, "%s: ring %u: base %u differs from used index %u; resuming at the used index",
			vr->port_name, vr->index, ctl->base, used_idx);
	vr->last_used_idx = used_idx;
	vr->last_avail_idx = used_idx;
}

/*
 * A ring (re)starts being polled: its first completion always signals (the
 * driver may have waited for one while it stopped), and the driver is told
 * not to kick us, since we poll, unless the application sleeps until it does
 * (vring_intr.h).
 */
static void
start_polling(struct vhu_vring *vr)
{
	vr->notify.signalled_valid = false;
	vhu_vring_intr_apply_locked(vr);
}

/* What the negotiated features mean for the data path. */
static void
derive_negotiated(struct vhu_vring_negotiated *neg, uint64_t features)
{
	neg->features = features;
	neg->hdr_len = (features & (VHU_BIT(VIRTIO_F_VERSION_1) |
				    VHU_BIT(VIRTIO_NET_F_MRG_RXBUF))) ?
		       sizeof(struct virtio_net_hdr_mrg_rxbuf) : sizeof(struct virtio_net_hdr);
	neg->mrg_rxbuf = (features & VHU_BIT(VIRTIO_NET_F_MRG_RXBUF)) != 0;
	neg->event_idx = (features & VHU_BIT(VIRTIO_RING_F_EVENT_IDX)) != 0;
	neg->packed = (features & VHU_BIT(VIRTIO_F_RING_PACKED)) != 0;
	neg->in_order = (features & VHU_BIT(VIRTIO_F_IN_ORDER)) != 0;
}

/* Re-derives the data-path view from the control part. With the ring lock held. */
static void
refresh(struct vhu_vring *vr)
{
	struct vhu_mem_table *mem = vr->ctl.mem;
	bool was_ready = vr->ready;
	bool restart;

	vr->ready = false;
	vr->discarding = false;
	derive_negotiated(&vr->neg, vr->ctl.features);
	vr->iotlb = vr->ctl.iotlb;
	if (vr->mem != mem) {
		if (mem != NULL)
			vhu_mem_table_get(mem);
		vhu_zc_memory_leaving(vr);
		vhu_mem_table_put(vr->mem);
		vr->mem = mem;
	}
	unmap_rings(vr);
	if (mem == NULL || !vr->ctl.num_set || !vr->ctl.addr_set || !vr->ctl.started)
		return;
	if (!(vr->neg.packed ? translate_packed(vr, mem) : translate_split(vr, mem)))
		return;
	/*
	 * Indices restart when a stopped ring has none (new ring, new base)
	 * and when the guest broke the ring: they stopped in the middle of a
	 * bad entry (so a ring stays broken through refreshes that cannot
	 * restart it). A ring only disabled, or remapped, keeps them: chains
	 * it still holds zero-copy are completed on top of them.
	 */
	restart = vr->broken || (!was_ready && !vr->ctl.indices_valid);
	vr->broken = false;
	if (restart) {
		/*
		 * Held chains belong to the indices being replaced: valid ones
		 * get them back first, as for GET_VRING_BASE; a new base forgets
		 * them (the front end took the ring back).
		 */
		vhu_zc_ring_stopped(vr, vr->ctl.indices_valid);
		restart_indices(vr);
	}
	/*
	 * Packed positions are slots, not masked indices: a base beyond the
	 * ring, or a ring shrunk (SET_VRING_NUM) or moved while running, would
	 * send the data path past the ring area checked above.
	 */
	if (vr->neg.packed && (vr->last_avail_idx >= vr->size || vr->last_used_idx >= vr->size)) {
		vr->broken = true;
		vhu_vring_bad_input(vr, "slot %u beyond a %u-entry ring; ring stopped",
				    RTE_MAX(vr->last_avail_idx, vr->last_used_idx), vr->size);
	}
	update_logging(vr);
	vr->ready = vr->ctl.enabled && !vr->broken;
	vr->discarding = !vr->ctl.enabled && !vr->broken && (vr->index & 1);	/* odd: guest TX */
	if (!was_ready)
		start_polling(vr);
	if (vr->ready)
		vhu_zc_ring_started(vr);
}

void
vhu_vring_ctl_rebase_locked(struct vhu_vring *vr, struct vhu_mem_table *mem, uint64_t features,
			    struct vhu_iotlb *iotlb)
{
	vr->ctl.mem = mem;
	vr->ctl.features = features;
	vr->ctl.iotlb = iotlb;
	refresh(vr);
}

/* Whether [addr, addr + len) and [iova, iova + size) share a byte (len, size > 0). */
static bool
overlaps(uint64_t addr, uint64_t len, uint64_t iova, uint64_t size)
{
	return addr - iova < size || iova - addr < len;
}

void
vhu_vring_ctl_iotlb_invalidated_locked(struct vhu_vring *vr, uint64_t iova, uint64_t size)
{
	const struct vhu_vring_addr_config *a = &vr->ctl.addr;
	bool hit;

	if (vr->ctl.iotlb == NULL || !vhu_vq_mapped(vr) || size == 0)
		return;
	if (vr->neg.packed)
		hit = overlaps(a->desc, (uint64_t)vr->size * sizeof(struct vring_packed_desc),
			       iova, size) ||
		      overlaps(a->avail, sizeof(struct vring_packed_desc_event), iova, size) ||
		      overlaps(a->used, sizeof(struct vring_packed_desc_event), iova, size);
	else
		hit = overlaps(a->desc, vring_desc_area_size(vr->size), iova, size) ||
		      overlaps(a->avail, vring_avail_area_size(vr->size), iova, size) ||
		      overlaps(a->used, vring_used_area_size(vr->size), iova, size);
	if (hit)
		refresh(vr);
}

void
vhu_vring_ctl_iotlb_updated(struct vhu_vring *vr)
{
	struct vhu_vring_control *ctl = &vr->ctl;

	rte_spinlock_lock(&vr->lock);
	if (ctl->iotlb != NULL && !vhu_vq_mapped(vr) && ctl->num_set && ctl->addr_set &&
	    ctl->started && ctl->mem != NULL)
		refresh(vr);
	if (!(vr->index & 1))	/* guest RX */
		vhu_enqueue_waiting_locked(vr);
	rte_spinlock_unlock(&vr->lock);
}

static void
set_log_locked(struct vhu_vring *vr, struct vhu_dirty_log *log)
{
	if (log != NULL)
		vhu_dirty_log_get(log);
	vhu_dirty_log_put(vr->dirty.log);
	vr->dirty.log = log;
	update_logging(vr);
}

void
vhu_vring_ctl_reset(struct vhu_vring *vr)
{
	struct vhu_packed_view *pk = &vr->packed;

	rte_spinlock_lock(&vr->lock);
	vhu_zc_ring_stopped(vr, false);	/* the session is gone: nothing to give back */
	close_fd(&vr->notify.callfd);
	replace_kickfd(vr, -1);
	close_fd(&vr->ctl.errfd);
	vhu_mem_table_put(vr->mem);
	vr->mem = NULL;
	vr->iotlb = NULL;
	set_log_locked(vr, NULL);
	vr->ready = false;
	vr->discarding = false;
	vr->broken = false;
	vr->errors_logged = 0;
	vr->rarp.pending = false;
	/* Segments cut from the session's frames, not handed out yet. */
	rte_pktmbuf_free_bulk(&vr->rx_pending.mbufs[vr->rx_pending.head], vr->rx_pending_count);
	vr->rx_pending.head = 0;
	vr->rx_pending_count = 0;
	vr->size = 0;
	unmap_rings(vr);
	rte_free(pk->pending);
	pk->pending = NULL;
	pk->pending_cap = 0;
	pk->npending = 0;
	memset(&vr->ctl, 0, sizeof(vr->ctl));
	vr->ctl.kickfd = -1;
	vr->ctl.errfd = -1;
	rte_spinlock_unlock(&vr->lock);
}

int
vhu_vring_ctl_set_num(struct vhu_vring *vr, uint32_t num)
{
	rte_spinlock_lock(&vr->lock);
	if (num != vr->size && vr->ready) {
		/* Positions and held zero-copy chains would outgrow a smaller ring. */
		uint32_t size = vr->size;

		rte_spinlock_unlock(&vr->lock);
		VHU_LOG(ERR, "%s: ring %u: resized from %u to %u while the ring runs; refused",
			vr->port_name, vr->index, size, num);
		return -1;
	}
	if (num != vr->size && vr->ctl.indices_valid) {
		/* Another ring: the old one's positions and held chains mean nothing in it. */
		vhu_zc_ring_stopped(vr, false);
		vr->ctl.indices_valid = false;
	}
	vr->size = num;
	vr->ctl.num_set = true;
	refresh(vr);
	rte_spinlock_unlock(&vr->lock);
	return 0;
}

void
vhu_vring_ctl_set_addr(struct vhu_vring *vr, const struct vhu_vring_addr_config *addr)
{
	rte_spinlock_lock(&vr->lock);
	vr->ctl.addr = *addr;
	vr->ctl.addr_set = true;
	refresh(vr);
	rte_spinlock_unlock(&vr->lock);
}

int
vhu_vring_ctl_set_base(struct vhu_vring *vr, uint32_t base)
{
	rte_spinlock_lock(&vr->lock);
	if (vr->ready) {
		/* The base says where a ring starts; one being polled has its own. */
		rte_spinlock_unlock(&vr->lock);
		VHU_LOG(ERR, "%s: ring %u: base set while the ring runs; refused", vr->port_name,
			vr->index);
		return -1;
	}
	vr->ctl.base = base;
	vr->ctl.base_pending = (vr->ctl.features & VHU_BIT(VIRTIO_F_RING_PACKED)) != 0;
	vr->ctl.indices_valid = false;	/* the front end says where the ring is now */
	rte_spinlock_unlock(&vr->lock);
	return 0;
}

uint32_t
vhu_vring_ctl_stop(struct vhu_vring *vr)
{
	struct vhu_vring_control *ctl = &vr->ctl;
	uint32_t where;

	rte_spinlock_lock(&vr->lock);
	/* Held zero-copy chains go back first, so that the indices are whole. */
	vhu_zc_ring_stopped(vr, true);
	if (ctl->indices_valid) {
		if (vr->neg.packed)
			ctl->base = (uint32_t)(vr->last_avail_idx | vr->packed.avail_wrap << 15) |
				    (uint32_t)(vr->last_used_idx | vr->packed.used_wrap << 15) << 16;
		else
			ctl->base = vr->last_avail_idx;
	}
	where = ctl->base;
	ctl->base &= UINT16_MAX;
	ctl->started = false;
	replace_kickfd(vr, -1);
	refresh(vr);
	rte_spinlock_unlock(&vr->lock);
	return where;
}

void
vhu_vring_ctl_start(struct vhu_vring *vr, int kickfd)
{
	rte_spinlock_lock(&vr->lock);
	replace_kickfd(vr, kickfd);
	vr->ctl.started = true;
	refresh(vr);
	rte_spinlock_unlock(&vr->lock);
}

static void
replace_fd(struct vhu_vring *vr, int *slot, int fd)
{
	rte_spinlock_lock(&vr->lock);
	close_fd(slot);
	*slot = fd;
	rte_spinlock_unlock(&vr->lock);
}

void
vhu_vring_ctl_set_callfd(struct vhu_vring *vr, int fd)
{
	replace_fd(vr, &vr->notify.callfd, fd);
}

void
vhu_vring_ctl_set_errfd(struct vhu_vring *vr, int fd)
{
	replace_fd(vr, &vr->ctl.errfd, fd);
}

bool
vhu_vring_ctl_enable(struct vhu_vring *vr, bool enable)
{
	bool changed;

	rte_spinlock_lock(&vr->lock);
	changed = vr->ctl.enabled != enable;
	vr->ctl.enabled = enable;
	refresh(vr);
	rte_spinlock_unlock(&vr->lock);
	return changed;
}

void
vhu_vring_ctl_set_log(struct vhu_vring *vr, struct vhu_dirty_log *log)
{
	rte_spinlock_lock(&vr->lock);
	set_log_locked(vr, log);
	rte_spinlock_unlock(&vr->lock);
}

void
vhu_vring_ctl_set_rx_offloads(struct vhu_vring *vr, uint32_t offloads)
{
	rte_spinlock_lock(&vr->lock);
	vr->rx_offloads = offloads;
	rte_spinlock_unlock(&vr->lock);
}

void
vhu_vring_ctl_announce(struct vhu_vring *vr, const struct rte_ether_addr *mac)
{
	rte_spinlock_lock(&vr->lock);
	vr->rarp.mac = *mac;
	vr->rarp.pending = true;
	vhu_vring_intr_apply_locked(vr);	/* an application asleep on the ring has a frame */
	rte_spinlock_unlock(&vr->lock);
}
