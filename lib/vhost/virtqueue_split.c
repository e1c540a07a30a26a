/* SPDX-License-Identifier: BSD-3-Clause */
#include "virtqueue_split.h"

#include <inttypes.h>

#include <rte_atomic.h>

uint16_t
vhu_split_available(struct vhu_vring *vr, uint16_t max)
{
	uint16_t avail_idx = vhu_split_avail_idx(vr);
	uint16_t n = (uint16_t)(avail_idx - vr->last_avail_idx);

	vr->split.avail_idx_shadow = vr->last_avail_idx;
	if (n > vr->size) {
		vr->broken = true;
		vhu_vring_bad_input(vr, "available index %u is %u entries ahead of %u in a %u-entry ring; ring stopped",
				      avail_idx, n, vr->last_avail_idx, vr->size);
		return 0;
	}
	n = RTE_MIN(n, max);
	vr->split.avail_idx_shadow = (uint16_t)(vr->last_avail_idx + n);
	return n;
}

uint16_t
vhu_split_waiting(const struct vhu_vring *vr)
{
	uint16_t n = (uint16_t)(vhu_split_avail_idx(vr) - vr->last_avail_idx);

	return n <= vr->size ? n : 0;	/* a bad index is the next take's to report */
}

/*
 * Walks the chain starting at @head, following at most one indirect table,
 * and maps its buffers into @c until @want bytes are mapped. MALFORMED
 * (logged) on any descriptor the specification does not allow, MISS when a
 * translation is asked for.
 */
static enum vhu_take
walk_chain(struct vhu_vring *vr, uint16_t head, bool device_writes, uint64_t want,
	   struct vhu_chain *c)
{
	/* Bytes, not descriptors: an indirect table need not be 16-byte aligned. */
	const void *table = vr->split.desc;
	uint32_t table_size = vr->size;
	uint32_t idx = head;
	uint32_t visited = 0;
	bool in_indirect = false;
	int why;

	for (;;) {
		struct vring_desc d;

		if (idx >= table_size) {
			vhu_vring_bad_input(vr, "chain %u: next index %u beyond %s of %u",
					      head, idx, in_indirect ? "indirect table" : "ring",
					      table_size);
			return VHU_TAKE_MALFORMED;
		}
		if (++visited > table_size) {
			vhu_vring_bad_input(vr, "chain %u: longer than its table (descriptor loop)",
					      head);
			return VHU_TAKE_MALFORMED;
		}
		vhu_split_desc_read(table, idx, &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect || (d.flags & VRING_DESC_F_NEXT)) {
				vhu_vring_bad_input(vr, "chain %u: indirect descriptor %s",
						      head, in_indirect ? "inside an indirect table" :
						      "with the next flag");
				return VHU_TAKE_MALFORMED;
			}
			if (d.len == 0 || d.len % sizeof(struct vring_desc) != 0 ||
			    d.len / sizeof(struct vring_desc) > VHU_VRING_MAX_SIZE) {
				vhu_vring_bad_input(vr, "chain %u: indirect table of %u bytes",
						      head, d.len);
				return VHU_TAKE_MALFORMED;
			}
			table = vhu_vring_map(vr, d.addr, d.len, &why);
			if (table == NULL && why == VHU_IOTLB_MISS)
				return VHU_TAKE_MISS;
			if (table == NULL) {
				vhu_vring_bad_input(vr, "chain %u: indirect table 0x%" PRIx64 "+%u not inside one guest memory region",
						      head, d.addr, d.len);
				return VHU_TAKE_MALFORMED;
			}
			table_size = d.len / sizeof(struct vring_desc);
			idx = 0;
			visited = 0;
			in_indirect = true;
			continue;
		}
		if (((d.flags & VRING_DESC_F_WRITE) != 0) != device_writes) {
			vhu_vring_bad_input(vr, "chain %u: %s descriptor on a guest %s ring",
					      head, device_writes ? "read-only" : "writable",
					      device_writes ? "RX" : "TX");
			return VHU_TAKE_MALFORMED;
		}
		int n = vhu_vring_map_iov(vr, device_writes, d.addr, d.len, &c->iov[c->niov],
					  VHU_CHAIN_MAX_IOV - c->niov);
		if (n == VHU_IOTLB_MISS)
			return VHU_TAKE_MISS;
		if (n < 0) {
			vhu_vring_bad_input(vr, "chain %u: buffer 0x%" PRIx64 "+%u outside guest memory or in too many pieces%s",
					      head, d.addr, d.len,
					      vhu_vring_map_fault_hint(vr, device_writes));
			return VHU_TAKE_MALFORMED;
		}
		c->niov += (uint32_t)n;
		c->len += d.len;
		if (c->len >= want || !(d.flags & VRING_DESC_F_NEXT))
			return VHU_TAKE_OK;
		idx = d.next;
	}
}

void
vhu_split_ask_ahead(struct vhu_vring *vr, bool device_writes, uint16_t max)
{
	uint16_t n = (uint16_t)(vhu_split_avail_idx(vr) - vr->last_avail_idx);

	if (n > vr->size)
		return;		/* a bad index is the next take's to report */
	n = RTE_MIN(n, max);
	for (uint16_t i = 0; i < n; i++) {
		uint16_t head = vhu_split_avail_head(vr, (uint16_t)(vr->last_avail_idx + i));
		struct vring_desc d;

		if (head >= vr->size)
			return;
		vhu_split_desc_read(vr->split.desc, head, &d);
		vhu_vring_ask_ahead_one(vr, device_writes, d.flags, d.addr, d.len);
	}
}

enum vhu_take
vhu_split_take(struct vhu_vring *vr, bool device_writes, uint64_t want, struct vhu_chain *c)
{
	uint16_t head;

	if (vr->last_avail_idx == vr->split.avail_idx_shadow)
		return VHU_TAKE_EMPTY;
	head = vhu_split_avail_head(vr, vr->last_avail_idx);
	vr->last_avail_idx++;
	c->id = head;
	c->nslots = 1;
	c->niov = 0;
	c->len = 0;
	if (head >= vr->size) {
		vr->broken = true;
		vhu_vring_bad_input(vr, "available entry names head %u of a %u-entry ring; ring stopped",
				      head, vr->size);
		return VHU_TAKE_BROKEN;
	}
	enum vhu_take t = walk_chain(vr, head, device_writes, want, c);

	if (t == VHU_TAKE_MISS)
		vr->last_avail_idx--;	/* taken again once translated */
	return t;
}

/*
 * Whether the driver wants an interrupt now. With EVENT_IDX it names the used
 * index it waits for (used_event, after the available ring): call when the
 * used index just moved past it. Without it, a flag turns interrupts off.
 */
static bool
driver_wants_call(struct vhu_vring *vr)
{
	uint16_t new_idx = vr->last_used_idx;

	if (!vr->neg.event_idx)
		return !(vhu_split_avail_flags(vr) & VRING_AVAIL_F_NO_INTERRUPT);

	uint16_t old_idx = vr->notify.signalled_used_idx;
	uint16_t used_event = vhu_split_used_event(vr);
	bool valid = vr->notify.signalled_valid;

	vr->notify.signalled_used_idx = new_idx;
	vr->notify.signalled_valid = true;
	/* The first decision after a start has nothing to compare with: call. */
	return !valid || (uint16_t)(new_idx - used_event - 1) < (uint16_t)(new_idx - old_idx);
}

void
vhu_split_publish(struct vhu_vring *vr)
{
	vhu_split_used_idx_publish(vr, vr->last_used_idx);
	/* The index store must be visible before we read the driver's wishes. */
	rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (driver_wants_call(vr))
		vhu_vring_call(vr);
	else
		VHU_COUNT(vr->stats.notifications_suppressed, 1);
}

bool
vhu_split_want_kicks(struct vhu_vring *vr, bool want)
{
	vhu_split_used_flags_set(vr, want ? 0 : VRING_USED_F_NO_NOTIFY);
	/*
	 * With EVENT_IDX the driver ignores the flag and kicks when its index
	 * passes avail_event: at the next chain, or, to keep it quiet, only
	 * after it has gone all the way round the 16-bit index.
	 */
	if (vr->neg.event_idx)
		vhu_split_avail_event_set(vr, want ? vr->last_avail_idx :
					  (uint16_t)(vr->last_avail_idx - 1));
	if (!want)
		return false;
	/*
	 * The driver stores its index, then (a full barrier) reads what we
	 * want; we store what we want, then read its index: one of the two
	 * reads sees the other side's store, so a chain is either kicked for
	 * or seen here.
	 */
	rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vhu_split_avail_idx(vr) != vr->last_avail_idx;
}
