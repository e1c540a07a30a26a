/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The order of the library's stores to a few pages, store by store: what a
 * test needs to check that one store is made before another (a descriptor's
 * flags after its id and length, a dirty-log mark after the store it
 * covers), which the end state of memory cannot tell.
 *
 * The pages are made read-only; each store faults, the SIGSEGV handler
 * records which page and byte it was, opens the page and single-steps the
 * store (trap flag); the SIGTRAP handler closes the pages again. Only stores
 * through the traced mapping are seen: trace the library's own mapping of
 * guest memory (the memory table's, the dirty log's), not the test's view of
 * it. A fault outside the traced pages puts the previous handler back, so a
 * real crash still crashes.
 *
 * x86-64 Linux only (the trap flag lives in the saved EFLAGS):
 * STORE_TRACE_SUPPORTED says whether it is there; tests skip without it.
 */
#ifndef VHU_UNIT_STORE_TRACE_H
#define VHU_UNIT_STORE_TRACE_H

#include <stdint.h>

#if defined(__x86_64__) && defined(__linux__)
#define STORE_TRACE_SUPPORTED 1
#else
#define STORE_TRACE_SUPPORTED 0
#endif

#define WT_PAGE_SIZE	4096u
#define WT_MAX_PAGES	4
#define WT_MAX_STORES	4096

/* One store: which of the traced pages (index in wt_start()'s list), which byte of it. */
struct wt_store {
	uint8_t page;
	uint16_t off;
};

struct wt_trace {
	uint8_t *page[WT_MAX_PAGES];
	unsigned int npages;
	struct wt_store st[WT_MAX_STORES];
	unsigned int n;		/* stores seen; only the first WT_MAX_STORES are in st[] */
};

/* The current (or last) trace. */
extern struct wt_trace wt;

/*
 * Starts recording stores to the @n pages at @pages (page-aligned, distinct,
 * at most WT_MAX_PAGES), forgetting the last trace. exit(2) when it cannot.
 */
void wt_start(uint8_t *const *pages, unsigned int n);
/* Stops recording: the pages are writable again, the signal handlers as before. */
void wt_stop(void);

/* The page holding @p. */
static inline uint8_t *
wt_page_of(const void *p)
{
	return (uint8_t *)((uintptr_t)p & ~(uintptr_t)(WT_PAGE_SIZE - 1));
}

/* Index in wt.st[] of the first / last store to bytes [@off, @off + @len) of page @page; -1 if none. */
int wt_first(unsigned int page, uint32_t off, uint32_t len);
int wt_last(unsigned int page, uint32_t off, uint32_t len);

#endif /* VHU_UNIT_STORE_TRACE_H */
