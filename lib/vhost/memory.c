/* SPDX-License-Identifier: BSD-3-Clause */
#include "memory.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_common.h>

#include "vhu_log.h"

/* ---- mappings ---- */

static void
mapping_put(struct vhu_mem_mapping *map)
{
	if (__atomic_sub_fetch(&map->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	vhu_guarded_munmap(map->addr, map->len);
	free(map);
}

/* Maps @d from @fd into @r (its mapping with one reference); false, logged, if it cannot. */
static bool
map_region(struct vhu_mem_region *r, const struct vhu_mem_region_desc *d, int fd,
	   const char *log_name)
{
	struct stat st;
	uint64_t map_len = d->mmap_offset + d->size;
	struct vhu_mem_mapping *map;

	if (fstat(fd, &st) < 0) {
		VHU_LOG(ERR, "%s: memory region at gpa 0x%" PRIx64 ": fstat: %s", log_name,
			d->guest_phys_addr, strerror(errno));
		return false;
	}
	/* Touching a mapping beyond the end of its file raises SIGBUS. */
	if (st.st_size < 0 || (uint64_t)st.st_size < map_len) {
		VHU_LOG(ERR, "%s: memory region at gpa 0x%" PRIx64 ": file of %jd bytes is smaller than offset + size 0x%" PRIx64,
			log_name, d->guest_phys_addr, (intmax_t)st.st_size, map_len);
		return false;
	}
	/* hugetlbfs wants whole pages mapped; st_blksize is the page size there. */
	if (st.st_blksize > 0)
		map_len = RTE_ALIGN_CEIL(map_len, (uint64_t)st.st_blksize);
	map = calloc(1, sizeof(*map));
	if (map == NULL) {
		VHU_LOG(ERR, "%s: out of memory for a memory region", log_name);
		return false;
	}
	/* Checked now, the file may still shrink later: the mapping is guarded. */
	map->addr = vhu_guarded_mmap(fd, map_len, &map->guard);
	if (map->addr == MAP_FAILED) {
		VHU_LOG(ERR, "%s: memory region at gpa 0x%" PRIx64 ": mmap of 0x%" PRIx64 " bytes: %s",
			log_name, d->guest_phys_addr, map_len, strerror(errno));
		free(map);
		return false;
	}
	map->refcnt = 1;
	map->adds = 1;
	map->len = map_len;
	*r = (struct vhu_mem_region){
		.guest_phys_addr = d->guest_phys_addr,
		.size = d->size,
		.frontend_addr = d->frontend_addr,
		.host_addr = (uint8_t *)map->addr + d->mmap_offset,
		.map = map,
	};
	return true;
}

/* ---- region descriptions ---- */

static bool
ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* A description on its own: not empty, no address wrapping around. */
static bool
desc_valid(const struct vhu_mem_region_desc *d, const char *log_name)
{
	if (d->size == 0) {
		VHU_LOG(ERR, "%s: memory region at gpa 0x%" PRIx64 " has size 0", log_name,
			d->guest_phys_addr);
		return false;
	}
	if (d->guest_phys_addr + d->size < d->guest_phys_addr ||
	    d->frontend_addr + d->size < d->frontend_addr ||
	    d->mmap_offset + d->size < d->mmap_offset ||
	    d->mmap_offset + d->size > (uint64_t)SIZE_MAX) {
		VHU_LOG(ERR, "%s: memory region at gpa 0x%" PRIx64 " overflows (uaddr 0x%" PRIx64
			" offset 0x%" PRIx64 " size 0x%" PRIx64 ")",
			log_name, d->guest_phys_addr, d->frontend_addr, d->mmap_offset, d->size);
		return false;
	}
	return true;
}

/* Whether @d shares guest or front-end addresses with region (@gpa, @fe, @size). */
static bool
desc_overlaps(const struct vhu_mem_region_desc *d, uint64_t gpa, uint64_t fe, uint64_t size,
	      const char *log_name)
{
	if (!ranges_overlap(d->guest_phys_addr, d->size, gpa, size) &&
	    !ranges_overlap(d->frontend_addr, d->size, fe, size))
		return false;
	VHU_LOG(ERR, "%s: memory region at gpa 0x%" PRIx64 " (uaddr 0x%" PRIx64 " size 0x%" PRIx64
		") overlaps the one at gpa 0x%" PRIx64 " (uaddr 0x%" PRIx64 " size 0x%" PRIx64 ")",
		log_name, d->guest_phys_addr, d->frontend_addr, d->size, gpa, fe, size);
	return true;
}

static void
log_region(const char *log_name, const char *what, const struct vhu_mem_region *r,
	   uint32_t nregions)
{
	VHU_LOG(INFO, "%s: region %s: gpa 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64
		" (%u in all)", log_name, what, r->guest_phys_addr, r->size, r->frontend_addr,
		nregions);
}

/* ---- tables ---- */

static struct vhu_mem_table *
table_alloc(uint32_t nregions, const char *log_name)
{
	struct vhu_mem_table *mem = calloc(1, sizeof(*mem) + nregions * sizeof(mem->regions[0]));

	if (mem == NULL)
		VHU_LOG(ERR, "%s: out of memory for a memory table of %u regions", log_name,
			nregions);
	else
		mem->refcnt = 1;
	return mem;
}

/* Drops the table's references to its mappings and frees it. */
static void
table_free(struct vhu_mem_table *mem)
{
	for (uint32_t i = 0; i < mem->nregions; i++)
		mapping_put(mem->regions[i].map);
	free(mem);
}

/* Appends @r to @mem (allocated large enough), keeping the regions sorted. */
static void
insert_sorted(struct vhu_mem_table *mem, const struct vhu_mem_region *r)
{
	uint32_t i = mem->nregions;

	for (; i > 0 && mem->regions[i - 1].guest_phys_addr > r->guest_phys_addr; i--)
		mem->regions[i] = mem->regions[i - 1];
	mem->regions[i] = *r;
	mem->nregions++;
}

struct vhu_mem_table *
vhu_mem_table_create(const struct vhu_mem_region_desc *desc, const int *fds, uint32_t n,
		     const char *log_name)
{
	struct vhu_mem_table *mem = NULL;
	uint32_t i;

	if (n == 0 || n > VHU_MEM_MAX_REGIONS) {
		VHU_LOG(ERR, "%s: memory table with %u regions (1..%u allowed)",
			log_name, n, VHU_MEM_MAX_REGIONS);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!desc_valid(&desc[i], log_name))
			goto out;
		for (uint32_t j = 0; j < i; j++)
			if (desc_overlaps(&desc[i], desc[j].guest_phys_addr, desc[j].frontend_addr,
					  desc[j].size, log_name))
				goto out;
	}
	mem = table_alloc(n, log_name);
	for (i = 0; mem != NULL && i < n; i++) {
		struct vhu_mem_region r;

		if (!map_region(&r, &desc[i], fds[i], log_name)) {
			table_free(mem);
			mem = NULL;
			break;
		}
		insert_sorted(mem, &r);
	}
	for (i = 0; mem != NULL && i < mem->nregions; i++)
		log_region(log_name, "mapped", &mem->regions[i], mem->nregions);
out:
	/* The mappings keep the memory; the fds are not needed any more. */
	for (i = 0; i < n; i++)
		close(fds[i]);
	return mem;
}

/* A new table with @old's regions but @skip (NULL: all), mappings shared; room for @extra more. */
static struct vhu_mem_table *
table_copy(const struct vhu_mem_table *old, const struct vhu_mem_region *skip, uint32_t extra,
	   const char *log_name)
{
	uint32_t n = old != NULL ? old->nregions : 0;
	struct vhu_mem_table *mem = table_alloc(n + extra, log_name);

	for (uint32_t i = 0; mem != NULL && i < n; i++) {
		if (&old->regions[i] == skip)
			continue;
		__atomic_fetch_add(&old->regions[i].map->refcnt, 1, __ATOMIC_RELAXED);
		mem->regions[mem->nregions++] = old->regions[i];
	}
	return mem;
}

/* @old's region named as @desc names it (see memory.h), or NULL. */
static struct vhu_mem_region *
find_region(struct vhu_mem_table *old, const struct vhu_mem_region_desc *desc)
{
	for (uint32_t i = 0; old != NULL && i < old->nregions; i++)
		if (old->regions[i].guest_phys_addr == desc->guest_phys_addr &&
		    old->regions[i].size == desc->size &&
		    old->regions[i].frontend_addr == desc->frontend_addr)
			return &old->regions[i];
	return NULL;
}

struct vhu_mem_table *
vhu_mem_table_add(struct vhu_mem_table *old, const struct vhu_mem_region_desc *desc,
		  int fd, const char *log_name)
{
	uint32_t n = old != NULL ? old->nregions : 0;
	struct vhu_mem_region *same = find_region(old, desc);
	struct vhu_mem_table *mem = NULL;
	struct vhu_mem_region r;

	if (same != NULL) {
		same->map->adds++;
		vhu_mem_table_get(old);
		mem = old;
		goto out;
	}
	if (n == VHU_MEM_MAX_REGIONS) {
		VHU_LOG(ERR, "%s: ADD_MEM_REG beyond the %u memory slots offered", log_name,
			VHU_MEM_MAX_REGIONS);
		goto out;
	}
	if (!desc_valid(desc, log_name))
		goto out;
	for (uint32_t i = 0; i < n; i++)
		if (desc_overlaps(desc, old->regions[i].guest_phys_addr,
				  old->regions[i].frontend_addr, old->regions[i].size, log_name))
			goto out;
	mem = table_copy(old, NULL, 1, log_name);
	if (mem == NULL)
		goto out;
	if (!map_region(&r, desc, fd, log_name)) {
		table_free(mem);
		mem = NULL;
		goto out;
	}
	insert_sorted(mem, &r);
	log_region(log_name, "added", &r, mem->nregions);
out:
	close(fd);
	return mem;
}

struct vhu_mem_table *
vhu_mem_table_remove(struct vhu_mem_table *old, const struct vhu_mem_region_desc *desc,
		     const char *log_name)
{
	struct vhu_mem_region *r = find_region(old, desc);
	struct vhu_mem_table *mem;

	if (r == NULL) {
		VHU_LOG(ERR, "%s: REM_MEM_REG of a region not mapped (gpa 0x%" PRIx64 " uaddr 0x%"
			PRIx64 " size 0x%" PRIx64 ")", log_name, desc->guest_phys_addr,
			desc->frontend_addr, desc->size);
		return NULL;
	}
	if (--r->map->adds > 0) {
		vhu_mem_table_get(old);
		return old;
	}
	mem = table_copy(old, r, 0, log_name);
	if (mem == NULL)
		r->map->adds++;		/* still there */
	else
		log_region(log_name, "removed", r, mem->nregions);
	return mem;
}

void
vhu_mem_table_get(struct vhu_mem_table *mem)
{
	__atomic_fetch_add(&mem->refcnt, 1, __ATOMIC_RELAXED);
}

void
vhu_mem_table_put(struct vhu_mem_table *mem)
{
	if (mem == NULL)
		return;
	if (__atomic_sub_fetch(&mem->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	table_free(mem);
}

const struct vhu_memguard_flag *
vhu_mem_table_lost_memory(const struct vhu_mem_table *mem)
{
	for (uint32_t i = 0; mem != NULL && i < mem->nregions; i++)
		if (vhu_memguard_hit(&mem->regions[i].map->guard))
			return &mem->regions[i].map->guard;
	return NULL;
}

int
vhu_mem_guest_to_iov_split(const struct vhu_mem_table *mem, uint64_t gpa, uint32_t len,
			   struct vhu_iov *iov, uint32_t max)
{
	uint32_t n = 0;

	/* A zero-length buffer still has to point into guest memory. */
	if (len == 0) {
		if (max == 0 || vhu_mem_guest_to_host(mem, gpa, 0) == NULL)
			return -1;
		return 0;
	}
	while (len > 0) {
		const struct vhu_mem_region *r = vhu_mem_region_below(mem, gpa);

		if (r == NULL || gpa - r->guest_phys_addr >= r->size || n == max)
			return -1;

		uint64_t off = gpa - r->guest_phys_addr;
		uint64_t piece = RTE_MIN((uint64_t)len, r->size - off);

		iov[n].addr = r->host_addr + off;
		iov[n].len = (uint32_t)piece;
		iov[n].guest_phys_addr = gpa;
		n++;
		gpa += piece;
		len -= (uint32_t)piece;
		if (len > 0 && gpa == 0)	/* wrapped past the top of the space */
			return -1;
	}
	return (int)n;
}
