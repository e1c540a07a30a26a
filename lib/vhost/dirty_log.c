/* SPDX-License-Identifier: BSD-3-Clause */
#include "dirty_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhu_log.h"

struct vhu_dirty_log *
vhu_dirty_log_create(int fd, uint64_t size, uint64_t offset, const char *log_name)
{
	struct vhu_dirty_log *log = NULL;
	struct stat st;
	void *addr;

	if (size == 0 || offset + size < offset || offset + size > (uint64_t)SIZE_MAX) {
		VHU_LOG(ERR, "%s: log of 0x%" PRIx64 " bytes at offset 0x%" PRIx64 " is empty or overflows",
			log_name, size, offset);
		goto out;
	}
	if (fstat(fd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size < offset + size) {
		VHU_LOG(ERR, "%s: log file smaller than offset + size 0x%" PRIx64, log_name,
			offset + size);
		goto out;
	}
	log = calloc(1, sizeof(*log));
	if (log == NULL)
		goto out;
	addr = vhu_guarded_mmap(fd, offset + size, &log->guard);
	if (addr == MAP_FAILED) {
		VHU_LOG(ERR, "%s: mmap of the log: %s", log_name, strerror(errno));
		free(log);
		log = NULL;
		goto out;
	}
	log->refcnt = 1;
	log->mmap_addr = addr;
	log->mmap_size = offset + size;
	log->bitmap = (uint8_t *)addr + offset;
	log->size = size;
	VHU_LOG(INFO, "%s: dirty log of 0x%" PRIx64 " bytes (guest memory up to 0x%" PRIx64 ")",
		log_name, size, size * 8 << VHU_LOG_PAGE_SHIFT);
out:
	close(fd);
	return log;
}

void
vhu_dirty_log_get(struct vhu_dirty_log *log)
{
	__atomic_fetch_add(&log->refcnt, 1, __ATOMIC_RELAXED);
}

void
vhu_dirty_log_put(struct vhu_dirty_log *log)
{
	if (log == NULL || __atomic_sub_fetch(&log->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	vhu_guarded_munmap(log->mmap_addr, log->mmap_size);
	free(log);
}
