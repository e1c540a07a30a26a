/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The split ring's guest driver: descriptors in a table, heads in the
 * available ring, used entries read back from the used ring. See ring.h.
 */
#include <stdio.h>
#include <string.h>

#include "memory.h"
#include "vring_ctl.h"

#include "ring_split.h"

/*
 * The three areas from R.areas on, each with room for a ring of R.room
 * entries (16 bytes an entry: a descriptor table's). At the start of region
 * 0 rings of up to 4096 entries fit.
 */
#define ROOM		4096u

static uint32_t
desc_off(void)
{
	return R.areas;
}

static uint32_t
avail_off(void)
{
	return R.areas + R.room * (uint32_t)sizeof(struct vring_desc);
}

static uint32_t
used_off(void)
{
	return R.areas + 2 * R.room * (uint32_t)sizeof(struct vring_desc);
}

struct split_driver S;

uint16_t
split_desc_new(void)
{
	return (uint16_t)(S.next_desc++ % R.size);
}

void
split_desc_set(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
	       uint16_t next)
{
	table[i].addr = addr;
	table[i].len = len;
	table[i].flags = flags;
	table[i].next = next;
}

struct posted
split_push(uint16_t head)
{
	uint16_t idx = (uint16_t)(R.start + R.posted);

	S.avail->ring[idx & (R.size - 1)] = head;
	__atomic_store_n(&S.avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	return ring_posted(head, 1);
}

void
split_bait(struct vring_desc *table, uint32_t slot)
{
	uint8_t *b = galloc(12 + 60);

	no_offload_hdr(b, 12);
	make_frame(b + 12, 60, 98);
	split_desc_set(table, (uint16_t)slot, gpa(b), 12 + 60, 0, 0);
}

/* ---- ops ---- */

/*
 * Both indices start at R.start, the used one in guest memory (where the
 * device resumes), and descriptors are handed out from there too, so that
 * chains of a ring started near its end cross the end of the table.
 */
static uint32_t
split_areas_size(uint32_t room)
{
	return 2 * room * (uint32_t)sizeof(struct vring_desc) + (uint32_t)vring_used_area_size(room);
}

static struct vhu_vring_addr_config
split_lay_out(void)
{
	memset(&S, 0, sizeof(S));
	S.desc = (struct vring_desc *)(G.g + desc_off());
	S.avail = (struct vring_avail *)(G.g + avail_off());
	S.used = (struct vring_used *)(G.g + used_off());
	S.avail->idx = (uint16_t)R.start;
	S.used->idx = (uint16_t)R.start;
	S.used_read = (uint16_t)R.start;
	S.next_desc = R.start % R.size;
	return (struct vhu_vring_addr_config){
		.desc = FE_BASE + desc_off(),
		.avail = FE_BASE + avail_off(),
		.used = FE_BASE + used_off(),
	};
}

static size_t
split_driver_size(void)
{
	return sizeof(S);
}

static struct posted
split_post(const struct dspec *d, unsigned int n)
{
	uint16_t head = split_desc_new();
	uint16_t cur = head;

	for (unsigned int i = 0; i < n; i++) {
		bool more = i + 1 < n;
		uint16_t next = more ? split_desc_new() : 0;

		split_desc_set(S.desc, cur, d[i].addr, d[i].len,
			       (uint16_t)(d[i].flags | (more ? F_NEXT : 0)), next);
		cur = next;
	}
	return split_push(head);
}

/* Where entry @i of an @n-entry table goes: the first at 0, the others from the end back. */
static uint16_t
table_slot(unsigned int i, unsigned int n)
{
	return (uint16_t)(i == 0 ? 0 : n - i);
}

/* A table out of order (0 -> n-1 -> n-2 ...): a walk must follow next, not the table. */
static void
split_table(void *t, const struct dspec *d, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		bool more = i + 1 < n;
		struct vring_desc e = {
			.addr = d[i].addr,
			.len = d[i].len,
			.flags = (uint16_t)(d[i].flags | (more ? F_NEXT : 0)),
			.next = more ? table_slot(i + 1, n) : 0,
		};

		memcpy((uint8_t *)t + table_slot(i, n) * sizeof(e), &e, sizeof(e));
	}
}

static bool
split_used_is(const struct posted *p, uint32_t len)
{
	struct vring_used_elem e;

	if (used_idx() == S.used_read) {
		fprintf(stderr, "  used entry %u (chain %u): not published\n", S.used_read, p->id);
		return false;
	}
	e = S.used->ring[S.used_read & (R.size - 1)];
	if (e.id != p->id || e.len != len) {
		fprintf(stderr, "  used entry %u: id %u len %u, expected id %u len %u\n", S.used_read,
			e.id, e.len, p->id, len);
		return false;
	}
	S.used_read++;
	return true;
}

static bool
split_none_used(void)
{
	if (used_idx() == S.used_read)
		return true;
	fprintf(stderr, "  used index %u, the driver has read up to %u\n", used_idx(), S.used_read);
	return false;
}

/*
 * Of the used ring the driver sees the index and the flags: the entries past
 * the index are not its yet (the device may write them and give them back).
 */
static void
split_snapshot(void)
{
	S.snap_used_flags = S.used->flags;
}

static bool
split_unchanged(void)
{
	if (S.used->flags == S.snap_used_flags)
		return split_none_used();
	fprintf(stderr, "  used flags 0x%04x, were 0x%04x\n", S.used->flags, S.snap_used_flags);
	return false;
}

static bool
split_device_at(uint32_t at)
{
	uint16_t idx = (uint16_t)(R.start + at);

	if (R.vr->last_avail_idx == idx && R.vr->last_used_idx == idx)
		return true;
	fprintf(stderr, "  device at avail %u used %u, expected %u\n", R.vr->last_avail_idx,
		R.vr->last_used_idx, idx);
	return false;
}

static void
split_interrupts(bool on)
{
	S.avail->flags = on ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
}

/* used_event: the entry after the available ring. */
static void
split_call_at(uint32_t at)
{
	S.avail->ring[R.size] = (uint16_t)(R.start + at);
}

static bool
split_polled(void)
{
	return S.used->flags == VRING_USED_F_NO_NOTIFY;
}

/*
 * As Linux's virtqueue_kick_prepare_split(): without EVENT_IDX the used
 * flags, with it avail_event (after the used ring), which the driver's index
 * must just have passed.
 */
static bool
split_must_kick(void)
{
	uint16_t new_idx = (uint16_t)(R.start + R.posted);
	uint16_t old_idx = (uint16_t)(R.start + R.kick_checked);
	uint16_t event;

	R.kick_checked = R.posted;
	if (!(R.features & EVIDX))
		return !(S.used->flags & VRING_USED_F_NO_NOTIFY);
	memcpy(&event, &S.used->ring[R.size], sizeof(event));
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

static bool
split_mapped(void)
{
	return R.vr->split.desc == vhu_mem_guest_to_host(R.mem, GPA_BASE + desc_off(),
							 vring_desc_area_size(R.size)) &&
	       R.vr->split.avail == vhu_mem_guest_to_host(R.mem, GPA_BASE + avail_off(),
							  vring_avail_area_size(R.size)) &&
	       R.vr->split.used == vhu_mem_guest_to_host(R.mem, GPA_BASE + used_off(),
							 vring_used_area_size(R.size));
}

/* The used ring at the very end of region 0. */
static void
split_misplace(bool outside)
{
	struct vhu_vring_addr_config addr = R.vr->ctl.addr;

	addr.used = outside ? FE_BASE + GUEST_SIZE - 0x10 : FE_BASE + used_off();
	vhu_vring_ctl_set_addr(R.vr, &addr);
}

/* ---- malformed TX chains of split rings only ---- */

static struct posted
bad_next_out_of_range(void)
{
	uint16_t d = split_desc_new();

	split_bait(S.desc, R.size);
	split_desc_set(S.desc, d, gpa(galloc(12)), 12, F_NEXT, (uint16_t)R.size);
	return split_push(d);
}

static struct posted
bad_next_ffff(void)
{
	uint16_t d = split_desc_new();

	split_desc_set(S.desc, d, gpa(galloc(12)), 12, F_NEXT, 0xffff);
	return split_push(d);
}

static struct posted
bad_loop(void)
{
	uint16_t a = split_desc_new(), b = split_desc_new();

	split_desc_set(S.desc, a, gpa(galloc(8)), 8, F_NEXT, b);
	split_desc_set(S.desc, b, gpa(galloc(8)), 8, F_NEXT, a);
	return split_push(a);
}

static struct posted
bad_self_loop_empty(void)
{
	uint16_t a = split_desc_new();

	split_desc_set(S.desc, a, gpa(galloc(1)), 0, F_NEXT, a);
	return split_push(a);
}

/* A chain in an indirect table @t, whose head says it is @len bytes long. */
static struct posted
indirect_head(const struct vring_desc *t, uint32_t len)
{
	return post1(gpa(t), len, F_INDIR);
}

/* A table of 1 descriptor whose chain goes on into a second one (bait). */
static struct posted
bad_indirect_len_16_next(void)
{
	struct vring_desc *t = indirect_alloc(2);

	split_desc_set(t, 0, gpa(galloc(12)), 12, F_NEXT, 1);
	split_bait(t, 1);
	return indirect_head(t, 16);
}

static struct posted
bad_indirect_next_out_of_range(void)
{
	struct vring_desc *t = indirect_alloc(3);

	split_desc_set(t, 0, gpa(galloc(12)), 12, F_NEXT, 1);
	split_desc_set(t, 1, gpa(galloc(20)), 20, F_NEXT, 2);	/* the table has 2 */
	split_bait(t, 2);
	return indirect_head(t, 32);
}

static struct posted
bad_indirect_loop(void)
{
	struct vring_desc *t = indirect_alloc(2);

	split_desc_set(t, 0, gpa(galloc(8)), 8, F_NEXT, 1);
	split_desc_set(t, 1, gpa(galloc(8)), 8, F_NEXT, 0);
	return indirect_head(t, 32);
}

/* Packed rings take writable entries of a TX table (virtio PMD), split rings do not. */
static struct posted
bad_writable_in_indirect(void)
{
	return post1(indirect_frame_table(F_WRITE), 16, F_INDIR);
}

static const struct bad_case split_bad_tx[] = {
	BAD_CASE(bad_next_out_of_range),
	BAD_CASE(bad_next_ffff),
	BAD_CASE(bad_loop),
	BAD_CASE(bad_self_loop_empty),
	BAD_CASE(bad_indirect_len_16_next),
	BAD_CASE(bad_indirect_next_out_of_range),
	BAD_CASE(bad_indirect_loop),
	BAD_CASE(bad_writable_in_indirect),
};

const struct ring_ops split_ops = {
	.name = "split",
	.features = 0,
	.room = ROOM,
	.areas_size = split_areas_size,
	.lay_out = split_lay_out,
	.driver = &S,
	.driver_size = split_driver_size,
	.post = split_post,
	.table = split_table,
	.used_is = split_used_is,
	.none_used = split_none_used,
	.snapshot = split_snapshot,
	.unchanged = split_unchanged,
	.device_at = split_device_at,
	.interrupts = split_interrupts,
	.call_at = split_call_at,
	.polled = split_polled,
	.must_kick = split_must_kick,
	.mapped = split_mapped,
	.misplace = split_misplace,
	.bad_tx = split_bad_tx,
	.nbad_tx = RTE_DIM(split_bad_tx),
};
