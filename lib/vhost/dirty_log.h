/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dirty-page log for live migration: a bitmap shared with the front end, one
 * bit per 4 KiB page of guest physical memory. While VHOST_F_LOG_ALL is
 * negotiated the data path marks every page it writes: guest RX buffers,
 * and the used ring when the ring's address flags ask for it.
 *
 * A log is immutable and reference counted, like a memory table: a new
 * SET_LOG_BASE swaps it in under each ring's lock and the old one is
 * unmapped when the last ring lets go. Bits are set with an atomic OR: the
 * front end clears them concurrently.
 */
#ifndef VHU_DIRTY_LOG_H
#define VHU_DIRTY_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "memguard.h"

#define VHU_LOG_PAGE_SHIFT 12

struct vhu_dirty_log {
	uint32_t refcnt;
	uint8_t *bitmap;
	uint64_t size;		/* bytes of bitmap: pages below size * 8 can be logged */
	void *mmap_addr;
	size_t mmap_size;
	struct vhu_memguard_flag guard;	/* the log file was truncated under us */
};

/*
 * Maps @size bytes at @offset of @fd (always closed) as a log. Returns it with
 * one reference, or NULL (logged).
 */
struct vhu_dirty_log *vhu_dirty_log_create(int fd, uint64_t size, uint64_t offset,
					   const char *log_name);
void vhu_dirty_log_get(struct vhu_dirty_log *log);
void vhu_dirty_log_put(struct vhu_dirty_log *log);

/*
 * Marks the pages of guest physical range [gpa, gpa + len). Pages beyond the
 * bitmap are not marked: the front end sized the log for the memory it
 * migrates, and guest memory it does not log is not ours to report.
 */
static inline void
vhu_dirty_log_range(struct vhu_dirty_log *log, uint64_t gpa, uint64_t len)
{
	uint64_t first, last;

	if (len == 0)
		return;
	first = gpa >> VHU_LOG_PAGE_SHIFT;
	last = (gpa + len - 1) >> VHU_LOG_PAGE_SHIFT;
	for (uint64_t page = first; page <= last && page / 8 < log->size; page++)
		__atomic_fetch_or(&log->bitmap[page / 8], (uint8_t)(1u << (page % 8)),
				  __ATOMIC_RELAXED);
}

#endif /* VHU_DIRTY_LOG_H */
