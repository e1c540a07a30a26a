/* SPDX-License-Identifier: BSD-3-Clause */
#include "iotlb.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rte_random.h>

#include "vhu_log.h"
#include "virtio_defs.h"

/*
 * A front end answers the misses it can, in order, and nothing for one its
 * own lookup refused (a guest that made a buffer available before mapping
 * it). A miss still unanswered after the front end answered nothing for
 * that long is asked again, so that such a ring does not wait for ever.
 * Never sooner: a miss asked twice can be answered the second time after
 * the guest used the buffer, unmapped it and mapped its IOVA for the other
 * direction, and the guest's IOMMU records a DMA fault against the device.
 */
#define ASK_AGAIN_MS 5000
/* Now in milliseconds: misses are rare, and a unit test needs no EAL for it. */
static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Misses are remembered by page: what the front end answers covers one at least. */
#define ASK_PAGE_MASK (~(uint64_t)4095)

struct vhu_iotlb *
vhu_iotlb_create(const char *name)
{
	struct vhu_iotlb *t = aligned_alloc(alignof(struct vhu_iotlb), sizeof(*t));

	if (t == NULL) {
		VHU_LOG(ERR, "%s: out of memory for the IOTLB", name);
		return NULL;
	}
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->backend_fd = -1;
	rte_spinlock_init(&t->ask_lock);
	return t;
}

void
vhu_iotlb_destroy(struct vhu_iotlb *t)
{
	if (t == NULL)
		return;
	vhu_iotlb_set_backend_fd(t, -1);
	free(t);
}

void
vhu_iotlb_set_backend_fd(struct vhu_iotlb *t, int fd)
{
	int old;

	rte_spinlock_lock(&t->ask_lock);
	old = t->backend_fd;
	t->backend_fd = fd;
	t->nasked = 0;
	rte_spinlock_unlock(&t->ask_lock);
	if (old >= 0)
		close(old);
}

/* Last byte of [addr, addr + size), size > 0, saturated at the top of the space. */
static uint64_t
range_last(uint64_t addr, uint64_t size)
{
	return size - 1 > UINT64_MAX - addr ? UINT64_MAX : addr + (size - 1);
}

/*
 * Index of the first entry ending at or after @iova (nentries if none).
 * Entries are sorted and disjoint: their ends are sorted too. Without
 * branches on the data: a handful of instructions per halving.
 */
static uint32_t
first_reaching(const struct vhu_iotlb *t, uint64_t iova)
{
	const struct vhu_iotlb_entry *base = t->entries;
	uint32_t n = t->nentries;

	if (n == 0)
		return 0;
	/* Entries before base end before @iova; from base + n on, at or after it. */
	while (n > 1) {
		uint32_t half = n / 2;

		base = base[half - 1].last < iova ? base + half : base;
		n -= half;
	}
	return (uint32_t)(base - t->entries) + (base->last < iova);
}

/* The entry holding @iova, or NULL. */
static const struct vhu_iotlb_entry *
lookup(const struct vhu_iotlb *t, uint64_t iova)
{
	uint32_t i = first_reaching(t, iova);

	return i < t->nentries && t->entries[i].iova <= iova ? &t->entries[i] : NULL;
}

static void
remove_entries(struct vhu_iotlb *t, uint32_t from, uint32_t n)
{
	memmove(&t->entries[from], &t->entries[from + n],
		(t->nentries - from - n) * sizeof(t->entries[0]));
	t->nentries -= n;
}

void
vhu_iotlb_invalidate(struct vhu_iotlb *t, uint64_t iova, uint64_t size)
{
	uint64_t last;
	uint32_t from, to;

	if (size == 0)
		return;
	last = range_last(iova, size);
	from = first_reaching(t, iova);
	for (to = from; to < t->nentries && t->entries[to].iova <= last; to++)
		;
	remove_entries(t, from, to - from);
}

void
vhu_iotlb_flush(struct vhu_iotlb *t)
{
	t->nentries = 0;
	rte_spinlock_lock(&t->ask_lock);
	t->nasked = 0;
	rte_spinlock_unlock(&t->ask_lock);
}

/* The region holding front-end address @addr, or NULL. */
static const struct vhu_mem_region *
frontend_region(const struct vhu_mem_table *mem, uint64_t addr)
{
	for (uint32_t i = 0; mem != NULL && i < mem->nregions; i++)
		if (vhu_range_inside(addr, 1, mem->regions[i].frontend_addr, mem->regions[i].size))
			return &mem->regions[i];
	return NULL;
}

/* @e's host and guest addresses through @r, which holds its first byte; false if it spills out. */
static bool
land(struct vhu_iotlb_entry *e, const struct vhu_mem_region *r)
{
	uint64_t off = e->frontend_addr - r->frontend_addr;

	if (!vhu_range_inside(e->frontend_addr, e->size, r->frontend_addr, r->size))
		return false;
	e->host_addr = r->host_addr + off;
	e->guest_phys_addr = r->guest_phys_addr + off;
	return true;
}

/* Puts @e (not overlapping any entry) in its place, making room if full. */
static void
insert(struct vhu_iotlb *t, const struct vhu_iotlb_entry *e)
{
	uint32_t at;

	if (t->nentries == VHU_IOTLB_MAX_ENTRIES) {
		remove_entries(t, (uint32_t)(rte_rand() % t->nentries), 1);
		t->count.evictions++;
	}
	at = first_reaching(t, e->iova);
	memmove(&t->entries[at + 1], &t->entries[at],
		(t->nentries - at) * sizeof(t->entries[0]));
	t->entries[at] = *e;
	t->nentries++;
}

/* Misses asked for pages of [iova, last] are answered. */
static void
forget_asked(struct vhu_iotlb *t, uint64_t iova, uint64_t last)
{
	rte_spinlock_lock(&t->ask_lock);
	t->answered_ms = now_ms();
	for (uint32_t i = 0; i < t->nasked;) {
		if (t->asked[i].iova >= (iova & ASK_PAGE_MASK) && t->asked[i].iova <= last)
			t->asked[i] = t->asked[--t->nasked];
		else
			i++;
	}
	rte_spinlock_unlock(&t->ask_lock);
}

bool
vhu_iotlb_update(struct vhu_iotlb *t, const struct vhu_mem_table *mem, uint64_t iova,
		 uint64_t size, uint64_t frontend_addr, uint8_t perm)
{
	uint64_t done;

	if (size == 0 || size - 1 > UINT64_MAX - iova || size - 1 > UINT64_MAX - frontend_addr ||
	    perm == 0 || perm > VHU_IOTLB_RW) {
		VHU_LOG(ERR, "%s: IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64 " perm %u: %s",
			t->name, iova, size, perm,
			size == 0 ? "empty" : perm == 0 || perm > VHU_IOTLB_RW ? "bad access" :
			"range wraps");
		return false;
	}
	/* All of it inside guest memory before anything changes. */
	for (done = 0; done < size;) {
		const struct vhu_mem_region *r = frontend_region(mem, frontend_addr + done);

		if (r == NULL) {
			VHU_LOG(ERR, "%s: IOTLB update iova 0x%" PRIx64 " size 0x%" PRIx64
				" to 0x%" PRIx64 ": 0x%" PRIx64 " is outside guest memory", t->name,
				iova, size, frontend_addr, frontend_addr + done);
			return false;
		}
		done += RTE_MIN(size - done,
				r->frontend_addr + r->size - (frontend_addr + done));
	}
	vhu_iotlb_invalidate(t, iova, size);
	for (done = 0; done < size;) {
		const struct vhu_mem_region *r = frontend_region(mem, frontend_addr + done);
		struct vhu_iotlb_entry e = {
			.iova = iova + done,
			.frontend_addr = frontend_addr + done,
			.perm = perm,
		};

		e.size = RTE_MIN(size - done, r->frontend_addr + r->size - e.frontend_addr);
		e.last = e.iova + (e.size - 1);	/* checked above: no wrap */
		land(&e, r);
		insert(t, &e);
		done += e.size;
	}
	t->count.updates++;
	forget_asked(t, iova, range_last(iova, size));
	return true;
}

void
vhu_iotlb_remap(struct vhu_iotlb *t, const struct vhu_mem_table *mem)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < t->nentries; i++) {
		struct vhu_iotlb_entry e = t->entries[i];
		const struct vhu_mem_region *r = frontend_region(mem, e.frontend_addr);

		if (r != NULL && land(&e, r))
			t->entries[kept++] = e;
	}
	t->nentries = kept;
}

static void
send_miss(struct vhu_iotlb *t, uint64_t iova, uint8_t perm)
{
	struct {
		struct vhu_msg_hdr hdr;
		struct vhu_iotlb_msg iotlb;
	} __attribute__((packed)) msg = {
		.hdr = {
			.request = VHOST_USER_BACKEND_IOTLB_MSG,
			.flags = VHOST_USER_VERSION,
			.size = sizeof(struct vhu_iotlb_msg),
		},
		.iotlb = { .iova = iova, .perm = perm, .type = VHU_IOTLB_MSG_MISS },
	};

	if (t->backend_fd < 0 ||
	    send(t->backend_fd, &msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(msg)) {
		if (t->count.misses == 0 || t->backend_fd < 0)
			VHU_LOG(ERR, "%s: IOTLB miss for iova 0x%" PRIx64 " not sent: %s", t->name,
				iova, t->backend_fd < 0 ? "no back-end request channel" :
				strerror(errno));
		/* not remembered: asked again at the next access */
		t->nasked--;
		return;
	}
	t->count.misses++;
}

/* Whether the miss @a is still to be answered rather than given up on. */
static bool
awaited(const struct vhu_iotlb *t, const struct vhu_iotlb_asked *a, uint64_t now)
{
	return now - RTE_MAX(a->ms, t->answered_ms) < ASK_AGAIN_MS;
}

/*
 * Asks the front end for @iova's translation, unless a miss for its page
 * is awaited. With every remembered miss awaited, asks nothing: the access
 * is tried again at the next burst.
 */
static void
ask(struct vhu_iotlb *t, uint64_t iova, uint8_t perm)
{
	uint64_t now = now_ms();
	uint64_t page = iova & ASK_PAGE_MASK;
	struct vhu_iotlb_asked *a = NULL;

	rte_spinlock_lock(&t->ask_lock);
	for (uint32_t i = 0; i < t->nasked; i++) {
		if (t->asked[i].iova == page && (t->asked[i].perm & perm) == perm &&
		    awaited(t, &t->asked[i], now)) {
			rte_spinlock_unlock(&t->ask_lock);
			return;
		}
	}
	if (t->nasked == VHU_IOTLB_MAX_ASKED) {
		/* the oldest makes room once given up on; never one still awaited */
		a = &t->asked[0];
		for (uint32_t i = 1; i < t->nasked; i++)
			if (t->asked[i].ms < a->ms)
				a = &t->asked[i];
		if (awaited(t, a, now)) {
			rte_spinlock_unlock(&t->ask_lock);
			return;
		}
		*a = t->asked[--t->nasked];
	}
	a = &t->asked[t->nasked++];
	*a = (struct vhu_iotlb_asked){ .iova = page, .ms = now, .perm = perm };
	send_miss(t, iova, perm);
	rte_spinlock_unlock(&t->ask_lock);
}

/*
 * The entry holding @iova with access @perm, or NULL with *@why set (a miss
 * asked for).
 */
static const struct vhu_iotlb_entry *
entry_for(struct vhu_iotlb *t, uint64_t iova, uint8_t perm, int *why)
{
	const struct vhu_iotlb_entry *e = lookup(t, iova);

	if (e == NULL) {
		ask(t, iova, perm);
		*why = VHU_IOTLB_MISS;
		return NULL;
	}
	if ((e->perm & perm) != perm) {
		*why = VHU_IOTLB_FAULT;
		return NULL;
	}
	return e;
}

int
vhu_iotlb_to_iov(struct vhu_iotlb *t, uint64_t iova, uint32_t len, uint8_t perm,
		 struct vhu_iov *iov, uint32_t max)
{
	uint32_t n = 0, done = 0;
	int why;

	if (len > 0 && len - 1 > UINT64_MAX - iova)
		return VHU_IOTLB_FAULT;
	while (done < len) {
		uint64_t at = iova + done;
		const struct vhu_iotlb_entry *e = entry_for(t, at, perm, &why);
		uint64_t off, piece;

		if (e == NULL)
			return why;
		off = at - e->iova;
		piece = RTE_MIN((uint64_t)(len - done), e->size - off);
		if (n > 0 && iov[n - 1].addr + iov[n - 1].len == e->host_addr + off &&
		    iov[n - 1].guest_phys_addr + iov[n - 1].len == e->guest_phys_addr + off) {
			iov[n - 1].len += (uint32_t)piece;	/* contiguous: one piece */
		} else {
			if (n == max)
				return VHU_IOTLB_FAULT;
			iov[n].addr = e->host_addr + off;
			iov[n].len = (uint32_t)piece;
			iov[n].guest_phys_addr = e->guest_phys_addr + off;
			n++;
		}
		done += (uint32_t)piece;
	}
	return (int)n;
}

void *
vhu_iotlb_to_host(struct vhu_iotlb *t, uint64_t iova, uint64_t len, uint8_t perm,
		  uint64_t *gpa, int *why)
{
	uint8_t *start = NULL;
	uint64_t done = 0;

	if (len > 0 && len - 1 > UINT64_MAX - iova) {
		*why = VHU_IOTLB_FAULT;
		return NULL;
	}
	do {
		uint64_t at = iova + done;
		const struct vhu_iotlb_entry *e = entry_for(t, at, perm, why);
		uint64_t off;

		if (e == NULL)
			return NULL;
		off = at - e->iova;
		if (start == NULL) {
			start = e->host_addr + off;
			if (gpa != NULL)
				*gpa = e->guest_phys_addr + off;
		} else if (e->host_addr + off != start + done) {
			*why = VHU_IOTLB_FAULT;	/* not contiguous here */
			return NULL;
		}
		done += RTE_MIN(len - done, e->size - off);
	} while (done < len);
	return start;
}
