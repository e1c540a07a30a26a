/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory table. A table is immutable once built and reference counted:
 * SET_MEM_TABLE builds a new one, ADD_MEM_REG and REM_MEM_REG a copy of the
 * current one with one region more or less, and the session swaps it in.
 * Each region's mapping is reference counted too, by the tables that list
 * it: a mapping goes when the last table holding it goes, and a table goes
 * when the last ring or zero-copy mbuf drops its reference. So a region
 * removed while mbufs still point into it stays mapped until they are freed.
 *
 * Regions are sorted by guest physical address and a buffer's region is
 * found by binary search: a handful of compares with hundreds of regions
 * (DIMMs hot-plugged into a guest), one with one region.
 *
 * Every host pointer derived from a guest value comes from the translation
 * functions here, which check the whole (address, length) range.
 */
#ifndef VHU_MEMORY_H
#define VHU_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memguard.h"

/* Regions a table may hold: QEMU's and rust-vmm's limit (KVM's memory slots). */
#define VHU_MEM_MAX_REGIONS 509
/* Regions one SET_MEM_TABLE message carries. */
#define VHU_MEM_MSG_REGIONS 8

/* One mapped front-end file, shared by the tables that list its region. */
struct vhu_mem_mapping {
	uint32_t refcnt;
	void *addr;
	size_t len;
	struct vhu_memguard_flag guard;	/* its file was truncated under us */
	bool faults_registered;		/* with the postcopy userfaultfd (postcopy.h) */
	/*
	 * ADD_MEM_REG of this region not yet matched by a REM_MEM_REG: QEMU
	 * adds and removes each region once per queue pair (control thread).
	 */
	uint32_t adds;
};

struct vhu_mem_region {
	uint64_t guest_phys_addr;	/* start in guest physical space */
	uint64_t size;
	uint64_t frontend_addr;		/* start in the front end's virtual space */
	uint8_t *host_addr;		/* where guest_phys_addr is mapped here */
	struct vhu_mem_mapping *map;
};

struct vhu_mem_table {
	uint32_t refcnt;
	uint32_t nregions;
	struct vhu_mem_region regions[];	/* sorted by guest_phys_addr */
};

/* One piece of a guest buffer, contiguous in our address space. */
struct vhu_iov {
	uint8_t *addr;
	uint32_t len;
	uint64_t guest_phys_addr;	/* for dirty-page logging */
};

/* A region as the front end describes it in SET_MEM_TABLE. */
struct vhu_mem_region_desc {
	uint64_t guest_phys_addr;
	uint64_t size;
	uint64_t frontend_addr;
	uint64_t mmap_offset;
};

/*
 * Validate @n region descriptions (overflow, overlap, file size) and map them
 * from @fds, which are all closed. Returns the new table with one reference,
 * or NULL with a log line naming the problem.
 */
struct vhu_mem_table *vhu_mem_table_create(const struct vhu_mem_region_desc *desc,
					   const int *fds, uint32_t n,
					   const char *log_name);

/*
 * A region is named by its guest address, size and front-end address (its
 * mmap offset is not compared). QEMU adds and removes each region once per
 * queue pair: a region added again is counted, not mapped again, and goes
 * with its last removal.
 *
 * vhu_mem_table_add(): a new table, @old's regions (NULL: none) and @desc
 * mapped from @fd, which is closed; or @old itself with one more reference
 * when it has that region already. NULL (logged) when @desc is invalid,
 * overlaps another region of @old, or @old is full.
 */
struct vhu_mem_table *vhu_mem_table_add(struct vhu_mem_table *old,
					const struct vhu_mem_region_desc *desc, int fd,
					const char *log_name);

/*
 * vhu_mem_table_remove(): a new table, @old's regions but @desc's; or @old
 * itself with one more reference while the region has other additions to
 * match. NULL (logged) when there is no such region.
 */
struct vhu_mem_table *vhu_mem_table_remove(struct vhu_mem_table *old,
					   const struct vhu_mem_region_desc *desc,
					   const char *log_name);

/* Take or drop a reference; dropping the last one drops its mappings. */
void vhu_mem_table_get(struct vhu_mem_table *mem);
void vhu_mem_table_put(struct vhu_mem_table *mem);

/* The guard flag of a region of @mem whose file lost pages under us, or NULL. */
const struct vhu_memguard_flag *vhu_mem_table_lost_memory(const struct vhu_mem_table *mem);

static inline bool
vhu_range_inside(uint64_t addr, uint64_t len, uint64_t start, uint64_t size)
{
	/* addr >= start and addr + len <= start + size, without overflow */
	return addr >= start && addr - start <= size && len <= size - (addr - start);
}

/*
 * Front-end virtual address range -> host pointer. The whole range must lie
 * in one region (rings are mapped this way). NULL if not. Control path only:
 * a linear scan.
 */
static inline void *
vhu_mem_frontend_to_host(const struct vhu_mem_table *mem, uint64_t addr, uint64_t len)
{
	for (uint32_t i = 0; i < mem->nregions; i++) {
		const struct vhu_mem_region *r = &mem->regions[i];

		if (vhu_range_inside(addr, len, r->frontend_addr, r->size))
			return r->host_addr + (addr - r->frontend_addr);
	}
	return NULL;
}

/* Front-end virtual address -> guest physical address; UINT64_MAX if unmapped. */
static inline uint64_t
vhu_mem_frontend_to_guest(const struct vhu_mem_table *mem, uint64_t addr)
{
	for (uint32_t i = 0; i < mem->nregions; i++) {
		const struct vhu_mem_region *r = &mem->regions[i];

		if (vhu_range_inside(addr, 1, r->frontend_addr, r->size))
			return r->guest_phys_addr + (addr - r->frontend_addr);
	}
	return UINT64_MAX;
}

/*
 * The region that may hold guest physical address @gpa: the last one
 * starting at or below it (NULL if none). The caller checks the range.
 */
static inline const struct vhu_mem_region *
vhu_mem_region_below(const struct vhu_mem_table *mem, uint64_t gpa)
{
	const struct vhu_mem_region *r = mem->regions;
	uint32_t n = mem->nregions;

	/* Regions before r start at or below @gpa, those from r + n on above it. */
	while (n > 1) {
		uint32_t half = n / 2;

		if (r[half].guest_phys_addr <= gpa)
			r += half;
		n -= half;
	}
	return n == 1 && r->guest_phys_addr <= gpa ? r : NULL;
}

/* Guest physical range -> host pointer, the whole range in one region. */
static inline void *
vhu_mem_guest_to_host(const struct vhu_mem_table *mem, uint64_t gpa, uint64_t len)
{
	const struct vhu_mem_region *r = vhu_mem_region_below(mem, gpa);

	if (r != NULL && vhu_range_inside(gpa, len, r->guest_phys_addr, r->size))
		return r->host_addr + (gpa - r->guest_phys_addr);
	return NULL;
}

/*
 * Guest physical range -> host pointer when region @r (of the table) holds
 * the whole range, else NULL. As vhu_mem_guest_to_host() for such a range,
 * regions not overlapping: for buffers found near one another. A region of
 * a table does not wrap around the address space (memory.c refuses it), so
 * an address below it has an offset past its size: no separate test.
 */
static inline void *
vhu_mem_region_to_host(const struct vhu_mem_region *r, uint64_t gpa, uint64_t len)
{
	uint64_t off = gpa - r->guest_phys_addr;

	if (off <= r->size && len <= r->size - off)
		return r->host_addr + off;
	return NULL;
}

/* vhu_mem_guest_to_iov() for ranges that cross regions or are empty. */
int vhu_mem_guest_to_iov_split(const struct vhu_mem_table *mem, uint64_t gpa, uint32_t len,
			       struct vhu_iov *iov, uint32_t max);

/*
 * Guest physical range -> up to @max pieces, split where it crosses from one
 * region into an adjacent one. Returns the number of pieces, or -1 when a
 * byte of the range is unmapped or more than @max pieces would be needed.
 * Inline for the common case, a buffer inside one region: one piece.
 */
static inline int
vhu_mem_guest_to_iov(const struct vhu_mem_table *mem, uint64_t gpa, uint32_t len,
		     struct vhu_iov *iov, uint32_t max)
{
	const struct vhu_mem_region *r = vhu_mem_region_below(mem, gpa);

	if (len > 0 && max > 0 && r != NULL &&
	    vhu_range_inside(gpa, len, r->guest_phys_addr, r->size)) {
		iov->addr = r->host_addr + (gpa - r->guest_phys_addr);
		iov->len = len;
		iov->guest_phys_addr = gpa;
		return 1;
	}
	return vhu_mem_guest_to_iov_split(mem, gpa, len, iov, max);
}

#endif /* VHU_MEMORY_H */
