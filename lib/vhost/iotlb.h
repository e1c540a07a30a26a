/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The IOTLB of a port whose guest sits behind a virtual IOMMU
 * (VIRTIO_F_ACCESS_PLATFORM): ring and buffer addresses are then I/O virtual
 * addresses (IOVAs), and the front end tells us what they translate to
 * (IOTLB_MSG update), what no longer does (invalidate), and answers the
 * translations we ask for (a miss, on the back end's request channel).
 *
 * The cache: at most VHU_IOTLB_MAX_ENTRIES ranges, sorted by IOVA and not
 * overlapping, each with where it lands in the front end's address space
 * and, through the session's memory table, in ours; a lookup is a binary
 * search. A full cache drops an entry at random: it is a cache, and what it
 * dropped is asked for again.
 *
 * Threads: the control thread alone changes the cache, holding the lock of
 * every ring of the port; a ring's poller reads it holding its own ring's
 * lock. So a burst never sees a translation invalidated after it began
 * disappear under it, nor one invalidated before it began. Misses are sent
 * from any thread, serialised by the cache's own lock, innermost of all.
 */
#ifndef VHU_IOTLB_H
#define VHU_IOTLB_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_spinlock.h>

#include "memory.h"

/* Ranges the cache holds: DPDK's vhost library keeps as many. */
#define VHU_IOTLB_MAX_ENTRIES 2048
/*
 * Misses remembered as asked, so that a ring polled again does not ask
 * again: room for what both rings of a port ask ahead after a miss
 * (VHU_ASK_AHEAD_CHAINS each, a chain's buffer on up to two pages).
 */
#define VHU_IOTLB_MAX_ASKED 256

/* Access a translation grants or a miss asks for (struct vhost_iotlb_msg's perm). */
#define VHU_IOTLB_RO 1u
#define VHU_IOTLB_WO 2u
#define VHU_IOTLB_RW 3u

/* What a range did not translate into. */
#define VHU_IOTLB_FAULT (-1)	/* outside guest memory, or not with that access */
#define VHU_IOTLB_MISS (-2)	/* not known yet: asked for, try again later */

struct vhu_iotlb_entry {
	uint64_t iova;
	uint64_t last;			/* iova + size - 1: what lookups compare */
	uint64_t size;
	uint64_t frontend_addr;		/* where iova lands in the front end's space */
	uint8_t *host_addr;		/* ... and in ours */
	uint64_t guest_phys_addr;	/* ... and in the guest's (dirty logging) */
	uint8_t perm;			/* VHU_IOTLB_* */
};

struct vhu_iotlb_asked {
	uint64_t iova;
	uint64_t ms;		/* when asked (CLOCK_MONOTONIC) */
	uint8_t perm;
};

struct vhu_iotlb_counters {
	uint64_t updates;
	uint64_t invalidations;
	uint64_t misses;	/* asked of the front end */
	uint64_t evictions;
};

struct vhu_iotlb {
	/* What every ring's lookups read: changed by the control thread only. */
	const char *name;		/* the port's, for log lines */
	uint32_t nentries;
	struct vhu_iotlb_entry entries[VHU_IOTLB_MAX_ENTRIES];
	/*
	 * The back end's request channel and the misses asked on it, written
	 * by any ring's poller that misses (every burst while it waits for
	 * the answer): cache lines apart from what the lookups read, so that
	 * a ring waiting for a translation does not slow the others' hits.
	 */
	rte_spinlock_t ask_lock __rte_cache_aligned;
	int backend_fd;			/* from SET_BACKEND_REQ_FD, or -1 */
	uint64_t answered_ms;		/* when a miss was last answered */
	uint32_t nasked;
	struct vhu_iotlb_asked asked[VHU_IOTLB_MAX_ASKED];
	/* misses: with ask_lock held; the others: control thread, every ring lock held */
	struct vhu_iotlb_counters count;
};

_Static_assert(alignof(struct vhu_iotlb) == RTE_CACHE_LINE_SIZE,
	       "the IOTLB fills whole cache lines (vhu_iotlb_create()): no other object shares one");

/* An empty cache without a request channel; NULL (logged) without memory. */
struct vhu_iotlb *vhu_iotlb_create(const char *name);
void vhu_iotlb_destroy(struct vhu_iotlb *t);

/* The request channel becomes @fd (-1: none); the old one is closed. */
void vhu_iotlb_set_backend_fd(struct vhu_iotlb *t, int fd);

/*
 * Control thread, every ring lock held. vhu_iotlb_update(): [iova, iova +
 * size) translates to front-end address @frontend_addr with @perm, replacing
 * what overlapped it; split where it crosses memory regions of @mem. False
 * (logged, nothing changed) when the range is empty, wraps, has no access,
 * or is not inside @mem.
 */
bool vhu_iotlb_update(struct vhu_iotlb *t, const struct vhu_mem_table *mem, uint64_t iova,
		      uint64_t size, uint64_t frontend_addr, uint8_t perm);

/* Drops every entry overlapping [iova, iova + size). */
void vhu_iotlb_invalidate(struct vhu_iotlb *t, uint64_t iova, uint64_t size);

/* Drops every entry and every miss asked. */
void vhu_iotlb_flush(struct vhu_iotlb *t);

/*
 * The memory table changed: entries now land through @mem (NULL: none),
 * those outside it dropped.
 */
void vhu_iotlb_remap(struct vhu_iotlb *t, const struct vhu_mem_table *mem);

/*
 * [iova, iova + len) with access @perm -> up to @max pieces of host memory,
 * as vhu_mem_guest_to_iov(). Returns the pieces, VHU_IOTLB_FAULT, or
 * VHU_IOTLB_MISS once the missing translation is asked for.
 */
int vhu_iotlb_to_iov(struct vhu_iotlb *t, uint64_t iova, uint32_t len, uint8_t perm,
		     struct vhu_iov *iov, uint32_t max);

/*
 * [iova, iova + len) with access @perm -> one contiguous host range (rings,
 * indirect tables), its guest physical address in @gpa (may be NULL). NULL
 * with *@why = VHU_IOTLB_FAULT or VHU_IOTLB_MISS (asked for).
 */
void *vhu_iotlb_to_host(struct vhu_iotlb *t, uint64_t iova, uint64_t len, uint8_t perm,
			uint64_t *gpa, int *why);

#endif /* VHU_IOTLB_H */
