/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Mappings of front-end files that the front end can take away. A file we
 * mapped (guest memory, the dirty log) and the front end then truncates
 * raises SIGBUS at our next access to the missing part, which would kill the
 * whole process with every other port in it. Guarded mappings get a private
 * zero page in place of each missing one instead, their owner's flag is
 * raised, and the control thread is woken (vhu_memguard_eventfd) to close
 * that front end's connection. SIGBUS elsewhere goes to the handler that was
 * there before, or kills the process as it would have.
 */
#ifndef VHU_MEMGUARD_H
#define VHU_MEMGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Raised (once) when a guarded mapping lost pages under us. */
struct vhu_memguard_flag {
	uint32_t hit;
	uintptr_t addr;		/* the first faulting address */
};

/* mmap(@fd, MAP_SHARED, read-write) of @len bytes, guarded with @flag; MAP_FAILED on error. */
void *vhu_guarded_mmap(int fd, size_t len, struct vhu_memguard_flag *flag);

void vhu_guarded_munmap(void *addr, size_t len);

/* Readable when a flag was raised (read it to rearm); -1 if it cannot be made. */
int vhu_memguard_eventfd(void);

static inline bool
vhu_memguard_hit(const struct vhu_memguard_flag *flag)
{
	return __atomic_load_n(&flag->hit, __ATOMIC_ACQUIRE) != 0;
}

#endif /* VHU_MEMGUARD_H */
