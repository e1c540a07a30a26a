/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The packed ring's guest driver: see ring_packed.h and ring.h.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "vring_ctl.h"

#include "ring_packed.h"

/*
 * From R.areas on: room for a ring of R.room entries, then the event areas
 * (at the start of region 0, a ring of the largest size: 32768 x 16 bytes).
 */
#define EV_GAP		0x100u

static uint32_t
desc_off(void)
{
	return R.areas;
}

/* driver event suppression (SET_VRING_ADDR avail) */
static uint32_t
drv_ev_off(void)
{
	return R.areas + R.room * (uint32_t)sizeof(struct vring_packed_desc);
}

/* device event suppression (SET_VRING_ADDR used) */
static uint32_t
dev_ev_off(void)
{
	return drv_ev_off() + EV_GAP;
}

struct packed_driver P;

/* The ring as at the last snapshot, and the slots used entries were read from since. */
static struct vring_packed_desc snap[VHU_VRING_MAX_SIZE];
static bool read_since[VHU_VRING_MAX_SIZE];

uint32_t
packed_start(uint32_t size, uint32_t base)
{
	return (base & 0x7fff) + ((base & 0x8000) ? 0 : size);
}

bool
packed_setup_base(uint32_t size, uint64_t features, uint32_t base)
{
	struct vhu_vring_addr_config addr = ring_memory(size, features, packed_start(size, base));

	return ring_start(&addr, true, base);
}

void
packed_desc_set(struct vring_packed_desc *t, uint32_t i, uint64_t addr, uint32_t len,
		uint16_t flags)
{
	t[i].addr = addr;
	t[i].len = len;
	t[i].id = 0;
	t[i].flags = flags;
}

static uint16_t
avail_bits(bool wrap)
{
	return wrap ? F_AVAIL : F_USED;
}

/* Flags of a used descriptor written in a lap of wrap counter @wrap, with or without data. */
static uint16_t
used_flags(bool wrap, bool written)
{
	return (wrap ? F_AVAIL | F_USED : 0) | (written ? F_WRITE : 0);
}

/*
 * As the specification has it: consecutive slots, NEXT on all but the last,
 * buffer id @id in the last (JUNK_ID elsewhere), each descriptor's
 * AVAIL/USED bits from the wrap counter of its own slot, the head's flags
 * written last.
 */
struct posted
packed_post_id(const struct dspec *d, unsigned int n, uint16_t id)
{
	uint32_t pos = R.start + R.posted;
	uint16_t head = (uint16_t)(pos % R.size), slot = head;
	bool wrap = lap_wrap(pos / R.size);
	uint16_t head_flags = 0;

	if (n == 0 || P.inflight + n > R.size || P.id_slots[id] != 0) {
		fprintf(stderr, "post: test bug (%u descriptors, %u in flight, id %u)\n", n,
			P.inflight, id);
		exit(2);
	}
	for (unsigned int i = 0; i < n; i++) {
		struct vring_packed_desc *e = &P.desc[slot];
		uint16_t fl = (uint16_t)(d[i].flags | (i + 1 < n ? F_NEXT : 0) | avail_bits(wrap));

		e->addr = d[i].addr;
		e->len = d[i].len;
		e->id = i + 1 == n ? id : JUNK_ID;
		if (i == 0)
			head_flags = fl;
		else
			e->flags = fl;
		if (++slot == R.size) {
			slot = 0;
			wrap = !wrap;
		}
	}
	P.inflight += n;
	P.id_slots[id] = (uint16_t)n;
	__atomic_store_n(&P.desc[head].flags, head_flags, __ATOMIC_RELEASE);
	return ring_posted(id, (uint16_t)n);
}

bool
packed_at(uint16_t avail_slot, bool avail_wrap, uint16_t used_slot, bool used_wrap)
{
	const struct vhu_vring *vr = R.vr;

	if (vr->last_avail_idx == avail_slot && vr->packed.avail_wrap == avail_wrap &&
	    vr->last_used_idx == used_slot && vr->packed.used_wrap == used_wrap)
		return true;
	fprintf(stderr, "  device at avail %u/%d used %u/%d, expected %u/%d %u/%d\n",
		vr->last_avail_idx, vr->packed.avail_wrap, vr->last_used_idx,
		vr->packed.used_wrap, avail_slot, avail_wrap, used_slot, used_wrap);
	return false;
}

/* A used descriptor as the driver reads it. */
struct used_ent {
	uint16_t slot;
	uint16_t id;
	uint32_t len;
	uint16_t flags;
};

/* Whether the descriptor with @flags was used in the lap of wrap counter @wrap. */
static bool
is_used(uint16_t flags, bool wrap)
{
	return ((flags & F_AVAIL) != 0) == wrap && ((flags & F_USED) != 0) == wrap;
}

/* The next used descriptor, if the device has returned one; moves the driver on. */
static bool
reap(struct used_ent *u)
{
	uint16_t fl = __atomic_load_n(&P.desc[P.used_slot].flags, __ATOMIC_ACQUIRE);
	uint16_t n;

	if (!is_used(fl, P.used_wrap))
		return false;
	u->slot = P.used_slot;
	u->id = P.desc[P.used_slot].id;
	u->len = P.desc[P.used_slot].len;
	u->flags = fl;
	read_since[u->slot] = true;
	n = u->id < R.size ? P.id_slots[u->id] : 0;
	if (n == 0) {
		fprintf(stderr, "  used descriptor at slot %u names buffer %u, not in flight\n",
			u->slot, u->id);
		n = 1;
	} else {
		P.id_slots[u->id] = 0;
	}
	P.inflight -= n;
	P.used_slot = (uint16_t)(P.used_slot + n);
	if (P.used_slot >= R.size) {
		P.used_slot = (uint16_t)(P.used_slot - R.size);
		P.used_wrap = !P.used_wrap;
	}
	return true;
}

/* ---- ops ---- */

/*
 * The ring as the driver and device left it when they got to R.start
 * together: the slots before it used in the driver's lap, the others in the
 * lap before. So no slot looks used, or available, to either before it is
 * handed over.
 */
static uint32_t
packed_areas_size(uint32_t room)
{
	return room * (uint32_t)sizeof(struct vring_packed_desc) + EV_GAP +
	       (uint32_t)sizeof(struct vring_packed_desc_event);
}

static struct vhu_vring_addr_config
packed_lay_out(void)
{
	const uint32_t slot = R.start % R.size, lap = R.start / R.size;

	memset(&P, 0, sizeof(P));
	P.desc = (struct vring_packed_desc *)(G.g + desc_off());
	for (uint32_t s = 0; s < R.size; s++)
		P.desc[s].flags = used_flags(lap_wrap(s < slot ? lap : lap + 1), false);
	P.drv_ev = (struct vring_packed_desc_event *)(G.g + drv_ev_off());
	P.dev_ev = (struct vring_packed_desc_event *)(G.g + dev_ev_off());
	P.dev_ev->flags = 0xaaaa;	/* the device must overwrite it */
	P.dev_ev->off_wrap = 0x5555;
	P.drv_ev->flags = VRING_PACKED_EVENT_FLAG_ENABLE;
	P.used_slot = (uint16_t)(R.start % R.size);
	P.used_wrap = lap_wrap(R.start / R.size);
	return (struct vhu_vring_addr_config){
		.desc = FE_BASE + desc_off(),
		.avail = FE_BASE + drv_ev_off(),
		.used = FE_BASE + dev_ev_off(),
	};
}

/* The buffer ids of a ring are below its size: id_slots[] past them is not its state. */
static size_t
packed_driver_size(void)
{
	return offsetof(struct packed_driver, id_slots) + R.size * sizeof(P.id_slots[0]);
}

static uint32_t
packed_base(void)
{
	uint32_t pos = R.start + R.posted;

	return (pos % R.size) | ((uint32_t)lap_wrap(pos / R.size) << 15);
}

static struct posted
packed_post(const struct dspec *d, unsigned int n)
{
	return packed_post_id(d, n, (uint16_t)((P.ids++ + 3) % R.size));
}

/* Entries in table order; their NEXT flags mean nothing. */
static void
packed_table(void *t, const struct dspec *d, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		struct vring_packed_desc e = { .addr = d[i].addr, .len = d[i].len,
					       .flags = d[i].flags };

		memcpy((uint8_t *)t + i * sizeof(e), &e, sizeof(e));
	}
}

static bool
packed_used_is(const struct posted *p, uint32_t len)
{
	bool wrap = lap_wrap(p->lap);
	uint16_t exp_flags = used_flags(wrap, len > 0);
	struct used_ent u;

	if (P.used_slot != p->slot) {
		fprintf(stderr, "  driver expects the next used descriptor at slot %u, chain %u is at %u\n",
			P.used_slot, p->id, p->slot);
		return false;
	}
	if (!reap(&u)) {
		fprintf(stderr, "  slot %u (buffer %u): not used (flags 0x%04x)\n", p->slot, p->id,
			P.desc[p->slot].flags);
		return false;
	}
	if (u.id != p->id || u.len != len || u.flags != exp_flags) {
		fprintf(stderr, "  slot %u: used id %u len %u flags 0x%04x, expected id %u len %u flags 0x%04x\n",
			u.slot, u.id, u.len, u.flags, p->id, len, exp_flags);
		return false;
	}
	return true;
}

static bool
packed_none_used(void)
{
	const struct vring_packed_desc *d = &P.desc[P.used_slot];

	if (!is_used(d->flags, P.used_wrap))
		return true;
	fprintf(stderr, "  unexpected used descriptor at slot %u (id %u, flags 0x%04x)\n",
		P.used_slot, d->id, d->flags);
	return false;
}

static void
packed_snapshot(void)
{
	memcpy(snap, P.desc, R.size * sizeof(*snap));
	memset(read_since, 0, R.size * sizeof(*read_since));
}

/* The device writes nothing but used descriptors: one at the head slot of each buffer. */
static bool
packed_unchanged(void)
{
	for (uint32_t s = 0; s < R.size; s++) {
		if (read_since[s] || memcmp(&snap[s], &P.desc[s], sizeof(*snap)) == 0)
			continue;
		fprintf(stderr, "  slot %u changed: id %u len %u flags 0x%04x (was id %u len %u flags 0x%04x)\n",
			s, P.desc[s].id, P.desc[s].len, P.desc[s].flags, snap[s].id, snap[s].len,
			snap[s].flags);
		return false;
	}
	return true;
}

static bool
packed_device_at(uint32_t at)
{
	uint32_t pos = R.start + at;
	uint16_t slot = (uint16_t)(pos % R.size);
	bool wrap = lap_wrap(pos / R.size);

	return packed_at(slot, wrap, slot, wrap);
}

static void
packed_interrupts(bool on)
{
	P.drv_ev->flags = on ? VRING_PACKED_EVENT_FLAG_ENABLE : VRING_PACKED_EVENT_FLAG_DISABLE;
}

/* off_wrap: slot and wrap counter of the used descriptor the driver waits for. */
static void
packed_call_at(uint32_t at)
{
	uint32_t pos = R.start + at;

	P.drv_ev->flags = VRING_PACKED_EVENT_FLAG_DESC;
	P.drv_ev->off_wrap = (uint16_t)((pos % R.size) | ((uint32_t)lap_wrap(pos / R.size) << 15));
}

static bool
packed_polled(void)
{
	return P.dev_ev->flags == VRING_PACKED_EVENT_FLAG_DISABLE;
}

/*
 * As Linux's virtqueue_kick_prepare_packed(): the device event area read
 * whole; DESC names the slot and lap of the descriptor to kick for, which
 * is compared on the line through the driver's last lap.
 */
static bool
packed_must_kick(void)
{
	uint32_t pos = R.start + R.posted;
	uint16_t added = (uint16_t)(R.posted - R.kick_checked);
	uint16_t new_slot = (uint16_t)(pos % R.size), old_slot = (uint16_t)(new_slot - added);
	struct vring_packed_desc_event ev = *P.dev_ev;
	uint16_t event = ev.off_wrap & 0x7fff;

	R.kick_checked = R.posted;
	if (ev.flags != VRING_PACKED_EVENT_FLAG_DESC)
		return ev.flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	if ((ev.off_wrap >> 15) != lap_wrap(pos / R.size))
		event = (uint16_t)(event - R.size);
	return (uint16_t)(new_slot - event - 1) < (uint16_t)(new_slot - old_slot);
}

static bool
packed_mapped(void)
{
	const struct vhu_vring *vr = R.vr;

	return vr->packed.desc == vhu_mem_guest_to_host(R.mem, GPA_BASE + desc_off(),
							R.size * sizeof(*P.desc)) &&
	       vr->packed.driver_event ==
	       vhu_mem_guest_to_host(R.mem, GPA_BASE + drv_ev_off(), sizeof(*P.drv_ev)) &&
	       vr->packed.device_event ==
	       vhu_mem_guest_to_host(R.mem, GPA_BASE + dev_ev_off(), sizeof(*P.dev_ev)) &&
	       vr->split.desc == NULL && vr->split.avail == NULL && vr->split.used == NULL;
}

/* The descriptor ring running one descriptor past the end of region 1. */
static void
packed_misplace(bool outside)
{
	struct vhu_vring_addr_config addr = R.vr->ctl.addr;

	addr.desc = outside ? FE2_BASE + GUEST2_SIZE - (R.size - 1) * sizeof(*P.desc) :
			      FE_BASE + desc_off();
	vhu_vring_ctl_set_addr(R.vr, &addr);
}

/* ---- malformed TX chains of packed rings only ---- */

/* A direct descriptor, then an indirect one: packed chains may not mix them. */
static struct posted
bad_indirect_second(void)
{
	uint8_t *h = galloc(12);

	no_offload_hdr(h, 12);
	return post((const struct dspec[]){
		{ gpa(h), 12, 0 },
		{ indirect_frame_table(0), 16, F_INDIR },
	}, 2);
}

static const struct bad_case packed_bad_tx[] = {
	BAD_CASE(bad_indirect_second),
};

const struct ring_ops packed_ops = {
	.name = "packed",
	.features = PK,
	.room = VHU_VRING_MAX_SIZE,
	.areas_size = packed_areas_size,
	.lay_out = packed_lay_out,
	.driver = &P,
	.driver_size = packed_driver_size,
	.base = packed_base,
	.post = packed_post,
	.table = packed_table,
	.used_is = packed_used_is,
	.none_used = packed_none_used,
	.snapshot = packed_snapshot,
	.unchanged = packed_unchanged,
	.device_at = packed_device_at,
	.interrupts = packed_interrupts,
	.call_at = packed_call_at,
	.polled = packed_polled,
	.must_kick = packed_must_kick,
	.mapped = packed_mapped,
	.misplace = packed_misplace,
	.bad_tx = packed_bad_tx,
	.nbad_tx = RTE_DIM(packed_bad_tx),
};
