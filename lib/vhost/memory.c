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

static void
unmap_regions(struct vhu_mem_table *mem)
{
	for (uint32_t i = 0; i < mem->nregions; i++)
		vhu_guarded_munmap(mem->regions[i].mmap_addr, mem->regions[i].mmap_size);
}

static bool
ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Checks one description on its own and against the ones before it. */
static bool
region_desc_valid(const struct vhu_mem_region_desc *d, uint32_t idx,
		  const char *log_name)
{
	if (d[idx].size == 0) {
		VHU_LOG(ERR, "%s: memory region %u has size 0", log_name, idx);
		return false;
	}
	if (d[idx].guest_phys_addr + d[idx].size < d[idx].guest_phys_addr ||
	    d[idx].frontend_addr + d[idx].size < d[idx].frontend_addr ||
	    d[idx].mmap_offset + d[idx].size < d[idx].mmap_offset ||
	    d[idx].mmap_offset + d[idx].size > (uint64_t)SIZE_MAX) {
		VHU_LOG(ERR, "%s: memory region %u overflows (gpa 0x%" PRIx64
			" uaddr 0x%" PRIx64 " offset 0x%" PRIx64 " size 0x%" PRIx64 ")",
			log_name, idx, d[idx].guest_phys_addr, d[idx].frontend_addr,
			d[idx].mmap_offset, d[idx].size);
		return false;
	}
	for (uint32_t j = 0; j < idx; j++) {
		if (ranges_overlap(d[idx].guest_phys_addr, d[idx].size,
				   d[j].guest_phys_addr, d[j].size) ||
		    ranges_overlap(d[idx].frontend_addr, d[idx].size,
				   d[j].frontend_addr, d[j].size)) {
			VHU_LOG(ERR, "%s: memory regions %u and %u overlap",
				log_name, j, idx);
			return false;
		}
	}
	return true;
}

static int
map_region(struct vhu_mem_table *mem, uint32_t idx, const struct vhu_mem_region_desc *d, int fd,
	   const char *log_name)
{
	struct stat st;
	uint64_t map_len = d->mmap_offset + d->size;

	if (fstat(fd, &st) < 0) {
		VHU_LOG(ERR, "%s: memory region %u: fstat: %s", log_name, idx,
			strerror(errno));
		return -1;
	}
	/* Touching a mapping beyond the end of its file raises SIGBUS. */
	if (st.st_size < 0 || (uint64_t)st.st_size < map_len) {
		VHU_LOG(ERR, "%s: memory region %u: file of %jd bytes is smaller than offset + size 0x%" PRIx64,
			log_name, idx, (intmax_t)st.st_size, map_len);
		return -1;
	}
	/* hugetlbfs wants whole pages mapped; st_blksize is the page size there. */
	if (st.st_blksize > 0)
		map_len = RTE_ALIGN_CEIL(map_len, (uint64_t)st.st_blksize);

	/* Checked now, the file may still shrink later: the mapping is guarded. */
	void *addr = vhu_guarded_mmap(fd, map_len, &mem->guard);
	struct vhu_mem_region *r = &mem->regions[idx];

	if (addr == MAP_FAILED) {
		VHU_LOG(ERR, "%s: memory region %u: mmap of 0x%" PRIx64 " bytes: %s",
			log_name, idx, map_len, strerror(errno));
		return -1;
	}
	r->guest_phys_addr = d->guest_phys_addr;
	r->size = d->size;
	r->frontend_addr = d->frontend_addr;
	r->mmap_addr = addr;
	r->mmap_size = map_len;
	r->host_addr = (uint8_t *)addr + d->mmap_offset;
	return 0;
}

struct vhu_mem_table *
vhu_mem_table_create(const struct vhu_mem_region_desc *desc, const int *fds,
		     uint32_t n, const char *log_name)
{
	struct vhu_mem_table *mem = NULL;
	uint32_t i;

	if (n == 0 || n > VHU_MEM_MAX_REGIONS) {
		VHU_LOG(ERR, "%s: memory table with %u regions (1..%u allowed)",
			log_name, n, VHU_MEM_MAX_REGIONS);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (!region_desc_valid(desc, i, log_name))
			goto out;

	mem = calloc(1, sizeof(*mem));
	if (mem == NULL) {
		VHU_LOG(ERR, "%s: out of memory for the memory table", log_name);
		goto out;
	}
	mem->refcnt = 1;
	for (i = 0; i < n; i++) {
		if (map_region(mem, i, &desc[i], fds[i], log_name) < 0) {
			unmap_regions(mem);
			free(mem);
			mem = NULL;
			goto out;
		}
		mem->nregions = i + 1;
	}
	for (i = 0; i < n; i++)
		VHU_LOG(INFO, "%s: region %u: gpa 0x%" PRIx64 " size 0x%" PRIx64
			" uaddr 0x%" PRIx64, log_name, i, mem->regions[i].guest_phys_addr,
			mem->regions[i].size, mem->regions[i].frontend_addr);
out:
	/* The mappings keep the memory; the fds are not needed any more. */
	for (i = 0; i < n && i < VHU_MEM_MAX_REGIONS; i++)
		close(fds[i]);
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
	unmap_regions(mem);
	free(mem);
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
		const struct vhu_mem_region *r = NULL;

		for (uint32_t i = 0; i < mem->nregions; i++) {
			const struct vhu_mem_region *c = &mem->regions[i];

			if (gpa >= c->guest_phys_addr &&
			    gpa - c->guest_phys_addr < c->size) {
				r = c;
				break;
			}
		}
		if (r == NULL || n == max)
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
