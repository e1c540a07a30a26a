/* SPDX-License-Identifier: BSD-3-Clause */
#include "virtqueue_packed.h"

#include <rte_atomic.h>

uint16_t
vhu_packed_available(struct vhu_vring *vr, uint16_t max)
{
	uint16_t flags = vhu_packed_desc_flags(vr, vr->last_avail_idx);

	return vhu_packed_desc_available(flags, vr->packed.avail_wrap) ? max : 0;
}

uint16_t
vhu_packed_waiting(const struct vhu_vring *vr)
{
	uint16_t slot = vr->last_avail_idx, chains = 0;
	bool wrap = vr->packed.avail_wrap;

	for (uint16_t seen = 0; seen < vr->size; seen++) {
		uint16_t flags = vhu_packed_desc_flags(vr, slot);

		if (!vhu_packed_desc_available(flags, wrap))
			break;
		if (!(flags & VRING_DESC_F_NEXT))
			chains++;
		if (++slot == vr->size) {
			slot = 0;
			wrap = !wrap;
		}
	}
	return chains;
}

/* Why a buffer did not map (what else it may have lacked is added when logged). */
static const char not_mapped[] = "buffer outside guest memory or in too many pieces";

/*
 * Maps one buffer into @c unless @want bytes are mapped already. MALFORMED
 * with *@why, or MISS when its translation is asked for.
 */
static enum vhu_take
map_buffer(struct vhu_vring *vr, const struct vring_packed_desc *d, bool device_writes,
	   uint64_t want, struct vhu_chain *c, const char **why)
{
	if (((d->flags & VRING_DESC_F_WRITE) != 0) != device_writes) {
		*why = device_writes ? "read-only descriptor on a guest RX ring" :
				       "writable descriptor on a guest TX ring";
		return VHU_TAKE_MALFORMED;
	}
	if (c->len >= want)
		return VHU_TAKE_OK;
	int n = vhu_vring_map_iov(vr, device_writes, d->addr, d->len, &c->iov[c->niov],
				  VHU_CHAIN_MAX_IOV - c->niov);
	if (n == VHU_IOTLB_MISS)
		return VHU_TAKE_MISS;
	if (n < 0) {
		*why = not_mapped;
		return VHU_TAKE_MALFORMED;
	}
	c->niov += (uint32_t)n;
	c->len += d->len;
	return VHU_TAKE_OK;
}

/* The buffers of an indirect table, in table order; as map_buffer(). */
static enum vhu_take
walk_indirect(struct vhu_vring *vr, const struct vring_packed_desc *d, bool device_writes,
	      uint64_t want, struct vhu_chain *c, const char **why)
{
	const void *table;
	uint32_t n;
	int fault;

	if (d->len == 0 || d->len % sizeof(struct vring_packed_desc) != 0 ||
	    d->len / sizeof(struct vring_packed_desc) > VHU_VRING_MAX_SIZE) {
		*why = "indirect table of a bad length";
		return VHU_TAKE_MALFORMED;
	}
	table = vhu_vring_map(vr, d->addr, d->len, &fault);
	if (table == NULL && fault == VHU_IOTLB_MISS)
		return VHU_TAKE_MISS;
	if (table == NULL) {
		*why = "indirect table not inside one guest memory region";
		return VHU_TAKE_MALFORMED;
	}
	n = d->len / sizeof(struct vring_packed_desc);
	for (uint32_t i = 0; i < n && c->len < want; i++) {
		struct vring_packed_desc e;

		vhu_packed_desc_read(table, i, &e);
		if (e.flags & VRING_DESC_F_INDIRECT) {
			*why = "indirect descriptor inside an indirect table";
			return VHU_TAKE_MALFORMED;
		}
		/*
		 * DPDK's virtio PMD marks every entry of its packed indirect
		 * tables writable, TX ones too; reading a buffer the driver
		 * lets us write is harmless, so only RX is held to the flag.
		 */
		if (!device_writes)
			e.flags &= (uint16_t)~VRING_DESC_F_WRITE;
		enum vhu_take t = map_buffer(vr, &e, device_writes, want, c, why);

		if (t != VHU_TAKE_OK)
			return t;
	}
	return VHU_TAKE_OK;
}

void
vhu_packed_ask_ahead(struct vhu_vring *vr, bool device_writes, uint16_t max)
{
	uint16_t slot = vr->last_avail_idx;
	bool wrap = vr->packed.avail_wrap;

	for (uint16_t seen = 0; seen < RTE_MIN(max, vr->size); seen++) {
		struct vring_packed_desc d;

		if (!vhu_packed_desc_available(vhu_packed_desc_flags(vr, slot), wrap))
			return;
		vhu_packed_desc_read(vr->packed.desc, slot, &d);
		vhu_vring_ask_ahead_one(vr, device_writes, d.flags, d.addr, d.len);
		if (++slot == vr->size) {
			slot = 0;
			wrap = !wrap;
		}
	}
}

enum vhu_take
vhu_packed_take(struct vhu_vring *vr, bool device_writes, uint64_t want, struct vhu_chain *c)
{
	const uint16_t head = vr->last_avail_idx;
	/*
	 * Slots we hold are not the driver's until the next publish: a guest
	 * that marks them available again anyway (rewriting flags behind our
	 * back) must not make us take more than a ring's worth in one burst.
	 */
	const uint32_t room = vr->size - vhu_packed_slots_held(vr);
	uint16_t flags = vhu_packed_desc_flags(vr, head);
	const char *why = NULL;
	bool missing = false;	/* a translation asked for: the chain stays */
	uint32_t slot = head;
	uint16_t nslots = 0;

	if (room == 0 || !vhu_packed_desc_available(flags, vr->packed.avail_wrap))
		return VHU_TAKE_EMPTY;
	c->niov = 0;
	c->len = 0;
	/*
	 * The chain runs over consecutive slots while NEXT is set. Even after
	 * a bad descriptor we follow it to its end, to stay in step with the
	 * driver; a chain longer than the ring cannot be followed at all.
	 */
	for (;;) {
		struct vring_packed_desc d;

		if (nslots == room) {
			vr->broken = true;
			vhu_vring_bad_input(vr, "chain at slot %u longer than the %u free slots of the ring; ring stopped",
					      head, room);
			return VHU_TAKE_BROKEN;
		}
		vhu_packed_desc_read(vr->packed.desc, slot, &d);
		nslots++;
		if (why == NULL && !missing) {
			enum vhu_take t = VHU_TAKE_OK;

			if (d.flags & VRING_DESC_F_INDIRECT) {
				if (nslots != 1 || (d.flags & VRING_DESC_F_NEXT))
					why = "indirect descriptor inside a chain";
				else
					t = walk_indirect(vr, &d, device_writes, want, c, &why);
			} else {
				t = map_buffer(vr, &d, device_writes, want, c, &why);
			}
			missing = t == VHU_TAKE_MISS;
		}
		if (!(d.flags & VRING_DESC_F_NEXT)) {
			c->id = d.id;	/* the buffer id is in the chain's last descriptor */
			break;
		}
		if (++slot == vr->size)
			slot = 0;
	}
	if (missing)
		return VHU_TAKE_MISS;	/* taken again once translated */
	c->nslots = nslots;
	vr->last_avail_idx += nslots;
	if (vr->last_avail_idx >= vr->size) {
		vr->last_avail_idx -= vr->size;
		vr->packed.avail_wrap = !vr->packed.avail_wrap;
	}
	if (why != NULL) {
		vhu_vring_bad_input(vr, "chain at slot %u (buffer %u): %s%s", head, c->id, why,
				    why == not_mapped ? vhu_vring_map_fault_hint(vr, device_writes) : "");
		return VHU_TAKE_MALFORMED;
	}
	return VHU_TAKE_OK;
}

/*
 * With EVENT_IDX the driver may ask for a call only once the device passes a
 * given slot in a given lap (off_wrap); the positions are compared on a line
 * that unrolls the last lap, as the specification's vring_need_event does.
 */
static bool
driver_wants_call(struct vhu_vring *vr)
{
	struct vhu_vring_notify *nt = &vr->notify;
	const bool used_wrap = vr->packed.used_wrap;
	uint16_t flags = vhu_packed_driver_event_flags(vr);
	uint16_t new_idx = vr->last_used_idx;
	uint16_t old_idx = nt->signalled_used_idx;
	bool old_wrap = nt->signalled_used_wrap;
	bool valid = nt->signalled_valid;

	nt->signalled_used_idx = new_idx;
	nt->signalled_used_wrap = used_wrap;
	nt->signalled_valid = true;
	if (flags == VRING_PACKED_EVENT_FLAG_DISABLE)
		return false;
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !vr->neg.event_idx || !valid)
		return true;

	uint16_t off_wrap = vhu_packed_driver_event_off_wrap(vr);
	uint16_t event = off_wrap & 0x7fff;

	if (old_wrap != used_wrap)
		old_idx -= vr->size;
	if ((off_wrap >> 15) != used_wrap)
		event -= vr->size;
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

void
vhu_packed_publish(struct vhu_vring *vr)
{
	struct vhu_packed_view *pk = &vr->packed;

	/* Nothing completed since the last publish, kept aside or in place (batches). */
	if (vr->last_used_idx == pk->published_used_idx && pk->used_wrap == pk->published_used_wrap)
		return;
	/*
	 * Each slot whole before the next: the first slot's flags last of all,
	 * since the driver reads in order and stops at the first slot it does
	 * not see used.
	 */
	for (uint32_t i = pk->npending; i-- > 0;) {
		const struct vhu_packed_used *u = &pk->pending[i];

		vhu_packed_used_put(vr, u->slot, u->id, u->len,
				    u->flags | (u->len ? VRING_DESC_F_WRITE : 0));
	}
	pk->npending = 0;
	pk->published_used_idx = vr->last_used_idx;
	pk->published_used_wrap = pk->used_wrap;
	rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (driver_wants_call(vr))
		vhu_vring_call(vr);
	else
		VHU_COUNT(vr->stats.notifications_suppressed, 1);
}

bool
vhu_packed_want_kicks(struct vhu_vring *vr, bool want)
{
	struct vhu_packed_view *pk = &vr->packed;
	/* With EVENT_IDX: a kick for the descriptor at our next available slot. */
	uint16_t flags = !want ? VRING_PACKED_EVENT_FLAG_DISABLE :
			 vr->neg.event_idx ? VRING_PACKED_EVENT_FLAG_DESC :
			 VRING_PACKED_EVENT_FLAG_ENABLE;

	vhu_packed_device_event_set(vr, (uint16_t)(vr->last_avail_idx | pk->avail_wrap << 15),
				    flags);
	if (!want)
		return false;
	/* As for split rings: our store, a full fence, then the driver's flags. */
	rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vhu_packed_desc_available(vhu_packed_desc_flags(vr, vr->last_avail_idx),
					 pk->avail_wrap);
}
