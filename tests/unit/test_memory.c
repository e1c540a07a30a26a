/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of lib/vhost/memory.c: guest memory tables built from memfds the
 * test owns, address translation, region validation, fd ownership, refcount.
 *
 * No EAL is needed: memory.c only logs, and rte_log works before rte_eal_init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_common.h>

#include "memory.h"

#include "check.h"

#define PAGE 0x1000u

/* Front-end addresses: never mapped in this process (the table must translate them). */
#define FE_A UINT64_C(0x700000000000)
#define FE_B UINT64_C(0x710000000000)
#define FE_C UINT64_C(0x720000000000)
#define GPA_A UINT64_C(0x100000)

/* ---- helpers ---- */

static unsigned int memfd_seq;

/* A memfd of @size bytes named "vhu-unit-<pid>-<tag>-<seq>" (name copied to @name). */
static int
make_memfd(const char *tag, size_t size, char *name, size_t name_len)
{
	char buf[96];
	int fd;

	snprintf(buf, sizeof(buf), "vhu-unit-%d-%s-%u", (int)getpid(), tag, memfd_seq++);
	if (name != NULL)
		snprintf(name, name_len, "%s", buf);
	fd = memfd_create(buf, MFD_CLOEXEC);
	if (fd < 0) {
		perror("memfd_create");
		exit(2);
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		perror("ftruncate");
		exit(2);
	}
	return fd;
}

/* Our own view of the file, to fill and inspect it. */
static uint8_t *
map_fd(int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

/* Fills @len bytes with a pattern derived from @seed and the offset. */
static void
fill_pattern(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

static int
xdup(int fd)
{
	int d = dup(fd);

	if (d < 0) {
		perror("dup");
		exit(2);
	}
	return d;
}

static bool
fd_is_closed(int fd)
{
	errno = 0;
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/* Number of mappings of the memfd called @name in this process. */
static int
count_mappings(const char *name)
{
	char needle[128], line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0;

	if (f == NULL) {
		perror("/proc/self/maps");
		exit(2);
	}
	snprintf(needle, sizeof(needle), "/memfd:%s ", name);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

static struct vhu_mem_region_desc
region(uint64_t gpa, uint64_t size, uint64_t fe, uint64_t off)
{
	return (struct vhu_mem_region_desc){
		.guest_phys_addr = gpa, .size = size, .frontend_addr = fe, .mmap_offset = off,
	};
}

/* ---- translation within one region ---- */

static void
test_single_region_translation(void)
{
	const uint64_t size = 0x10000;
	int fd = make_memfd("single", size, NULL, 0);
	uint8_t *mine = map_fd(fd, size);
	struct vhu_mem_region_desc d = region(GPA_A, size, FE_A, 0);
	int fds[1] = { xdup(fd) };
	struct vhu_mem_table *mem;
	uint8_t *h;

	fill_pattern(mine, size, 0x11);
	mem = vhu_mem_table_create(&d, fds, 1, "unit");
	CHECK_NOT_NULL(mem);
	CHECK(fd_is_closed(fds[0]));
	CHECK_EQ(mem->nregions, 1);
	CHECK_EQ(mem->refcnt, 1);
	CHECK_EQ(mem->regions[0].guest_phys_addr, GPA_A);
	CHECK_EQ(mem->regions[0].size, size);
	CHECK_EQ(mem->regions[0].frontend_addr, FE_A);

	/* fully inside: same bytes as our own mapping of the file */
	h = vhu_mem_guest_to_host(mem, GPA_A, size);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine, size);
	h = vhu_mem_guest_to_host(mem, GPA_A + 0x1234, 0x100);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine + 0x1234, 0x100);
	h = vhu_mem_guest_to_host(mem, GPA_A + size - 1, 1);
	CHECK_NOT_NULL(h);
	CHECK_EQ(*h, mine[size - 1]);
	/* shared: a write through the table is seen through our mapping */
	h = vhu_mem_guest_to_host(mem, GPA_A + 0x40, 4);
	CHECK_NOT_NULL(h);
	memcpy(h, "\xde\xad\xbe\xef", 4);
	CHECK_MEM_EQ(mine + 0x40, "\xde\xad\xbe\xef", 4);

	h = vhu_mem_frontend_to_host(mem, FE_A, size);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine, size);
	h = vhu_mem_frontend_to_host(mem, FE_A + 0x2345, 0x10);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine + 0x2345, 0x10);
	CHECK_NOT_NULL(vhu_mem_frontend_to_host(mem, FE_A + size - 1, 1));

	/* crossing the end */
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + size - 1, 2));
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + 0x100, size));
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A, size + 1));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, FE_A + size - 1, 2));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, FE_A, size + 1));
	/* entirely after */
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + size, 1));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, FE_A + size, 1));

	/* starting before */
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A - 1, 1));
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A - 1, 2));
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A - 0x100, 0x1000));
	CHECK_NULL(vhu_mem_guest_to_host(mem, 0, GPA_A + 1));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, FE_A - 1, 2));

	/* zero length: inside is fine, outside is not */
	h = vhu_mem_guest_to_host(mem, GPA_A + 0x10, 0);
	CHECK(h == mem->regions[0].host_addr + 0x10);
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A - 1, 0));
	CHECK_NULL(vhu_mem_guest_to_host(mem, 0, 0));
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + size + 1, 0));
	CHECK_NOT_NULL(vhu_mem_frontend_to_host(mem, FE_A + 0x10, 0));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, FE_A - 1, 0));

	/* u64 overflow: addr + len wraps past zero */
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + 0x10, UINT64_MAX));
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + 0x10, UINT64_MAX - 0xf));	/* end wraps to GPA_A */
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + 0x10, 0 - (GPA_A + 0x10)));	/* end wraps to 0 */
	CHECK_NULL(vhu_mem_guest_to_host(mem, UINT64_MAX, 1));
	CHECK_NULL(vhu_mem_guest_to_host(mem, UINT64_MAX, GPA_A + 2));
	CHECK_NULL(vhu_mem_guest_to_host(mem, UINT64_MAX - 0xf, 0x20 + GPA_A));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, FE_A + 0x10, UINT64_MAX));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, UINT64_MAX, FE_A + 2));

	/* the two address spaces are not confused */
	CHECK_NULL(vhu_mem_guest_to_host(mem, FE_A, 1));
	CHECK_NULL(vhu_mem_frontend_to_host(mem, GPA_A, 1));

	vhu_mem_table_put(mem);
	munmap(mine, size);
	close(fd);
}

/* mmap_offset selects where in the file the region starts. */
static void
test_mmap_offset(void)
{
	const size_t file_size = 4 * PAGE;
	int fd = make_memfd("offset", file_size, NULL, 0);
	uint8_t *mine = map_fd(fd, file_size);
	struct vhu_mem_region_desc d[2] = {
		region(GPA_A, 2 * PAGE, FE_A, PAGE),
		/* not page aligned, and ending exactly at the end of the file */
		region(GPA_A + 0x100000, file_size - 0x123, FE_B, 0x123),
	};
	int fds[2] = { xdup(fd), xdup(fd) };
	struct vhu_mem_table *mem;
	uint8_t *h;

	fill_pattern(mine, file_size, 0x5a);
	mem = vhu_mem_table_create(d, fds, 2, "unit");
	CHECK_NOT_NULL(mem);
	CHECK(fd_is_closed(fds[0]));
	CHECK(fd_is_closed(fds[1]));

	h = vhu_mem_guest_to_host(mem, GPA_A, 2 * PAGE);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine + PAGE, 2 * PAGE);
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A, 2 * PAGE + 1));
	h = vhu_mem_frontend_to_host(mem, FE_A + 0x10, 0x20);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine + PAGE + 0x10, 0x20);

	h = vhu_mem_guest_to_host(mem, GPA_A + 0x100000, file_size - 0x123);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine + 0x123, file_size - 0x123);
	h = vhu_mem_frontend_to_host(mem, FE_B + file_size - 0x124, 1);
	CHECK_NOT_NULL(h);
	CHECK_EQ(*h, mine[file_size - 1]);

	vhu_mem_table_put(mem);
	munmap(mine, file_size);
	close(fd);
}

/* A region whose size is not a multiple of the page size. */
static void
test_unaligned_region_size(void)
{
	const size_t file_size = PAGE + 0x800;
	int fd = make_memfd("unaligned", file_size, NULL, 0);
	uint8_t *mine = map_fd(fd, file_size);
	struct vhu_mem_region_desc d = region(GPA_A, file_size, FE_A, 0);
	int fds[1] = { xdup(fd) };
	struct vhu_mem_table *mem;
	uint8_t *h;

	fill_pattern(mine, file_size, 0x77);
	mem = vhu_mem_table_create(&d, fds, 1, "unit");
	CHECK_NOT_NULL(mem);
	h = vhu_mem_guest_to_host(mem, GPA_A, file_size);
	CHECK_NOT_NULL(h);
	CHECK_MEM_EQ(h, mine, file_size);
	CHECK_NULL(vhu_mem_guest_to_host(mem, GPA_A + file_size, 1));
	vhu_mem_table_put(mem);
	munmap(mine, file_size);
	close(fd);
}

/* ---- several regions, guest_to_iov ---- */

#define RSIZE UINT64_C(0x10000)

struct three {
	int fd[3];
	uint8_t *mine[3];
	struct vhu_mem_table *mem;
};

/*
 * A and B adjacent in guest physical space (different files, far apart in
 * front-end space), C after a one-page gap. Listed in the table as B, C, A
 * so nothing depends on the order.
 */
static struct vhu_mem_table *
three_create(struct three *t)
{
	struct vhu_mem_region_desc d[3] = {
		region(GPA_A + RSIZE, RSIZE, FE_B, 0),			/* B */
		region(GPA_A + 2 * RSIZE + PAGE, RSIZE, FE_C, 0),	/* C */
		region(GPA_A, RSIZE, FE_A, 0),				/* A */
	};
	int fds[3];

	for (int i = 0; i < 3; i++) {
		t->fd[i] = make_memfd("three", RSIZE, NULL, 0);
		t->mine[i] = map_fd(t->fd[i], RSIZE);
		fill_pattern(t->mine[i], RSIZE, (uint8_t)(0x30 * (i + 1)));
	}
	/* t->fd/mine index: 0 = A, 1 = B, 2 = C */
	fds[0] = xdup(t->fd[1]);
	fds[1] = xdup(t->fd[2]);
	fds[2] = xdup(t->fd[0]);
	t->mem = vhu_mem_table_create(d, fds, 3, "unit");
	for (int i = 0; i < 3; i++)
		if (!fd_is_closed(fds[i]))
			EXPECT(!"vhu_mem_table_create left an fd open");
	return t->mem;
}

static void
three_destroy(struct three *t)
{
	vhu_mem_table_put(t->mem);
	for (int i = 0; i < 3; i++) {
		munmap(t->mine[i], RSIZE);
		close(t->fd[i]);
	}
}

static void
check_three(struct three *t)
{
	const uint64_t a = GPA_A, b = GPA_A + RSIZE, c = GPA_A + 2 * RSIZE + PAGE;
	struct vhu_mem_table *mem = t->mem;
	struct vhu_iov iov[4];
	int n;

	CHECK_NOT_NULL(mem);
	CHECK_EQ(mem->nregions, 3);

	/* each region on its own */
	CHECK_MEM_EQ(vhu_mem_guest_to_host(mem, a, RSIZE), t->mine[0], RSIZE);
	CHECK_MEM_EQ(vhu_mem_guest_to_host(mem, b, RSIZE), t->mine[1], RSIZE);
	CHECK_MEM_EQ(vhu_mem_guest_to_host(mem, c, RSIZE), t->mine[2], RSIZE);
	CHECK_MEM_EQ(vhu_mem_frontend_to_host(mem, FE_B + 8, 8), t->mine[1] + 8, 8);
	/* guest_to_host wants one region: crossing A -> B is refused... */
	CHECK_NULL(vhu_mem_guest_to_host(mem, b - 0x10, 0x20));
	/* ...and so is crossing in front-end space (FE_A + RSIZE is not FE_B) */
	CHECK_NULL(vhu_mem_frontend_to_host(mem, FE_A + RSIZE - 0x10, 0x20));

	/* one piece inside one region */
	memset(iov, 0, sizeof(iov));
	n = vhu_mem_guest_to_iov(mem, b + 0x100, 0x200, iov, 4);
	CHECK_EQ(n, 1);
	CHECK(iov[0].addr == (uint8_t *)vhu_mem_guest_to_host(mem, b + 0x100, 0x200));
	CHECK_EQ(iov[0].len, 0x200);
	CHECK_EQ(iov[0].guest_phys_addr, b + 0x100);

	/* split across the adjacent A and B */
	memset(iov, 0, sizeof(iov));
	n = vhu_mem_guest_to_iov(mem, b - 0x10, 0x30, iov, 4);
	CHECK_EQ(n, 2);
	CHECK_EQ(iov[0].len, 0x10);
	CHECK_EQ(iov[0].guest_phys_addr, b - 0x10);
	CHECK_MEM_EQ(iov[0].addr, t->mine[0] + RSIZE - 0x10, 0x10);
	CHECK_EQ(iov[1].len, 0x20);
	CHECK_EQ(iov[1].guest_phys_addr, b);
	CHECK_MEM_EQ(iov[1].addr, t->mine[1], 0x20);
	/* the pieces are the table's mappings, not ours (regions sorted by guest address) */
	CHECK(iov[0].addr == mem->regions[0].host_addr + RSIZE - 0x10);
	CHECK(iov[1].addr == mem->regions[1].host_addr);

	/* exactly two whole regions */
	n = vhu_mem_guest_to_iov(mem, a, (uint32_t)(2 * RSIZE), iov, 2);
	CHECK_EQ(n, 2);
	CHECK_EQ(iov[0].len, RSIZE);
	CHECK_EQ(iov[1].len, RSIZE);

	/* too few pieces allowed */
	CHECK_EQ(vhu_mem_guest_to_iov(mem, b - 0x10, 0x30, iov, 1), -1);
	CHECK_EQ(vhu_mem_guest_to_iov(mem, b - 0x10, 0x30, iov, 0), -1);
	CHECK_EQ(vhu_mem_guest_to_iov(mem, b + 0x10, 0x30, iov, 0), -1);

	/* a gap between B and C */
	CHECK_EQ(vhu_mem_guest_to_iov(mem, c - PAGE - 0x10, 0x20, iov, 4), -1);
	CHECK_EQ(vhu_mem_guest_to_iov(mem, c - PAGE - 0x10, PAGE + 0x20, iov, 4), -1);
	CHECK_EQ(vhu_mem_guest_to_iov(mem, c - 0x10, 0x20, iov, 4), -1);	/* starts in the gap */
	CHECK_EQ(vhu_mem_guest_to_iov(mem, a - 0x10, 0x20, iov, 4), -1);	/* starts before A */
	CHECK_EQ(vhu_mem_guest_to_iov(mem, c + RSIZE - 0x10, 0x20, iov, 4), -1);	/* runs off C */
	CHECK_EQ(vhu_mem_guest_to_iov(mem, UINT64_MAX - 0xf, 0x20, iov, 4), -1);

	/* zero length: no pieces, but the address must still be guest memory */
	CHECK_EQ(vhu_mem_guest_to_iov(mem, b + 0x10, 0, iov, 4), 0);
	CHECK_EQ(vhu_mem_guest_to_iov(mem, c - 0x10, 0, iov, 4), -1);
	CHECK_EQ(vhu_mem_guest_to_iov(mem, 0, 0, iov, 4), -1);
}

static void
test_adjacent_regions_iov(void)
{
	struct three t;

	three_create(&t);
	check_three(&t);
	three_destroy(&t);
}

/* ---- refusals ---- */

/*
 * vhu_mem_table_create() must refuse @d (n regions, file sizes @file_size)
 * and close every fd it was given.
 */
static void
expect_refused(const struct vhu_mem_region_desc *d, uint32_t n, const uint64_t *file_size,
	       int line)
{
	char names[VHU_MEM_MAX_REGIONS][96];
	int fds[VHU_MEM_MAX_REGIONS];
	struct vhu_mem_table *mem;

	for (uint32_t i = 0; i < n; i++)
		fds[i] = make_memfd("refused", file_size[i], names[i], sizeof(names[i]));
	mem = vhu_mem_table_create(d, fds, n, "unit");
	if (mem != NULL) {
		fprintf(stderr, "%s:%d: table accepted\n", __FILE__, line);
		vhu_mem_table_put(mem);
	}
	CHECK_NULL(mem);
	for (uint32_t i = 0; i < n; i++) {
		if (!fd_is_closed(fds[i])) {
			fprintf(stderr, "%s:%d: fd of region %u left open\n", __FILE__, line, i);
			close(fds[i]);
			EXPECT(!"fd left open");
		}
		/* nothing stays mapped after a refusal */
		EXPECT_EQ(count_mappings(names[i]), 0);
	}
}

#define REFUSED(n, ...) do { \
	const struct vhu_mem_region_desc d_[] = { __VA_ARGS__ }; \
	uint64_t fs_[VHU_MEM_MAX_REGIONS]; \
	unsigned int before_ = check_failures; \
	for (uint32_t i_ = 0; i_ < (n); i_++) \
		fs_[i_] = d_[i_].mmap_offset + d_[i_].size < d_[i_].mmap_offset ? \
			  RSIZE : RTE_MIN(d_[i_].mmap_offset + d_[i_].size, 16 * RSIZE); \
	expect_refused(d_, (n), fs_, __LINE__); \
	if (check_failures != before_) \
		fprintf(stderr, "  (case at %s:%d)\n", __FILE__, __LINE__); \
} while (0)

static void
test_refuse_region_count(void)
{
	struct vhu_mem_region_desc d[VHU_MEM_MAX_REGIONS + 1];
	int fds[VHU_MEM_MAX_REGIONS + 1];
	char names[VHU_MEM_MAX_REGIONS + 1][96];
	int spare = make_memfd("count0", PAGE, NULL, 0);

	/* no region at all (and nothing of ours is touched) */
	fds[0] = spare;
	CHECK_NULL(vhu_mem_table_create(d, fds, 0, "unit"));
	CHECK(!fd_is_closed(spare));
	close(spare);

	/* one region more than allowed, otherwise valid */
	for (uint32_t i = 0; i < VHU_MEM_MAX_REGIONS + 1; i++) {
		d[i] = region(GPA_A + i * RSIZE, PAGE, FE_A + i * RSIZE, 0);
		fds[i] = make_memfd("count9", PAGE, names[i], sizeof(names[i]));
	}
	CHECK_NULL(vhu_mem_table_create(d, fds, VHU_MEM_MAX_REGIONS + 1, "unit"));
	for (uint32_t i = 0; i < VHU_MEM_MAX_REGIONS + 1; i++) {
		EXPECT(fd_is_closed(fds[i]));
		EXPECT_EQ(count_mappings(names[i]), 0);
	}

	/* exactly the maximum is fine */
	for (uint32_t i = 0; i < VHU_MEM_MAX_REGIONS; i++)
		fds[i] = make_memfd("count8", PAGE, NULL, 0);
	struct vhu_mem_table *mem = vhu_mem_table_create(d, fds, VHU_MEM_MAX_REGIONS, "unit");
	CHECK_NOT_NULL(mem);
	CHECK_EQ(mem->nregions, VHU_MEM_MAX_REGIONS);
	for (uint32_t i = 0; i < VHU_MEM_MAX_REGIONS; i++) {
		EXPECT(fd_is_closed(fds[i]));
		EXPECT(vhu_mem_guest_to_host(mem, GPA_A + i * RSIZE, PAGE) != NULL);
	}
	vhu_mem_table_put(mem);
}

static void
test_refuse_bad_regions(void)
{
	const uint64_t top = UINT64_MAX - PAGE + 1;	/* last page of the space */

	/* size 0, alone and after a good region */
	REFUSED(1, region(GPA_A, 0, FE_A, 0));
	REFUSED(1, region(GPA_A, 0, FE_A, PAGE));	/* would map (offset + 0 > 0) */
	REFUSED(2, region(GPA_A, RSIZE, FE_A, 0), region(GPA_A + RSIZE, 0, FE_B, 0));

	/* overlapping guest physical ranges */
	/* by one byte, either way round */
	REFUSED(2, region(GPA_A, RSIZE, FE_A, 0), region(GPA_A + RSIZE - 1, RSIZE, FE_B, 0));
	REFUSED(2, region(GPA_A + RSIZE, RSIZE, FE_A, 0), region(GPA_A + 1, RSIZE, FE_B, 0));
	REFUSED(2, region(GPA_A, RSIZE, FE_A, 0), region(GPA_A, RSIZE, FE_B, 0));
	REFUSED(2, region(GPA_A + PAGE, PAGE, FE_A, 0), region(GPA_A, RSIZE, FE_B, 0));
	REFUSED(3, region(GPA_A, PAGE, FE_A, 0), region(GPA_A + RSIZE, PAGE, FE_B, 0),
		region(GPA_A + RSIZE - PAGE, 2 * PAGE, FE_C, 0));

	/* overlapping front-end ranges */
	REFUSED(2, region(GPA_A, RSIZE, FE_A, 0), region(GPA_A + RSIZE, RSIZE, FE_A + RSIZE - 1, 0));
	REFUSED(2, region(GPA_A, RSIZE, FE_A + RSIZE, 0), region(GPA_A + RSIZE, RSIZE, FE_A + 1, 0));
	REFUSED(2, region(GPA_A, RSIZE, FE_A + PAGE, 0), region(GPA_A + RSIZE, RSIZE, FE_A, 0));

	/* address + size overflows */
	REFUSED(1, region(UINT64_MAX - PAGE + 2, PAGE, FE_A, 0));
	REFUSED(1, region(top, PAGE, FE_A, 0));		/* end would be exactly 2^64 */
	REFUSED(1, region(GPA_A, UINT64_MAX, FE_A, 0));
	REFUSED(1, region(GPA_A, PAGE, UINT64_MAX - 0x10, 0));
	REFUSED(1, region(GPA_A, PAGE, FE_A, UINT64_MAX - 0x10));
	REFUSED(2, region(GPA_A, PAGE, FE_A, 0), region(top, 2 * PAGE, FE_B, 0));
	/* a wrapped region that would "overlap" nothing if the check were naive */
	REFUSED(2, region(GPA_A + RSIZE, PAGE, FE_A, 0), region(UINT64_MAX - PAGE, GPA_A + 2 * PAGE, FE_B, 0));

	/* ranges larger than the file: refused, not SIGBUS later */
	{
		const struct vhu_mem_region_desc d[2] = {
			region(GPA_A, RSIZE, FE_A, 0),
			region(GPA_A + RSIZE, RSIZE, FE_B, PAGE),
		};
		const uint64_t fs1[1] = { RSIZE - 1 };
		const uint64_t fs2[2] = { RSIZE, RSIZE };	/* offset + size = RSIZE + PAGE */
		const uint64_t fs3[2] = { RSIZE, 0 };

		expect_refused(d, 1, fs1, __LINE__);
		expect_refused(d, 2, fs2, __LINE__);
		expect_refused(d, 2, fs3, __LINE__);
	}
}

/* Regions adjacent in both address spaces do not overlap. */
static void
test_adjacent_accepted(void)
{
	const struct vhu_mem_region_desc lo = region(GPA_A, RSIZE, FE_A, 0);
	const struct vhu_mem_region_desc hi = region(GPA_A + RSIZE, RSIZE, FE_A + RSIZE, 0);

	/* both orders: the check compares each region with the ones before it */
	for (int order = 0; order < 2; order++) {
		struct vhu_mem_region_desc d[2] = { order ? hi : lo, order ? lo : hi };
		int fds[2] = { make_memfd("adj", RSIZE, NULL, 0), make_memfd("adj", RSIZE, NULL, 0) };
		struct vhu_mem_table *mem = vhu_mem_table_create(d, fds, 2, "unit");
		uint32_t ilo = 0;	/* regions are sorted by guest address */

		CHECK_NOT_NULL(mem);
		EXPECT(vhu_mem_frontend_to_host(mem, FE_A, RSIZE) == mem->regions[ilo].host_addr);
		EXPECT(vhu_mem_frontend_to_host(mem, FE_A + RSIZE, RSIZE) ==
		       mem->regions[1 - ilo].host_addr);
		EXPECT(vhu_mem_guest_to_host(mem, GPA_A + RSIZE, 1) ==
		       mem->regions[1 - ilo].host_addr);
		/* still one region at a time, even when both spaces are contiguous */
		EXPECT_NULL(vhu_mem_frontend_to_host(mem, FE_A + RSIZE - 1, 2));
		EXPECT_NULL(vhu_mem_guest_to_host(mem, GPA_A + RSIZE - 1, 2));
		vhu_mem_table_put(mem);
	}
}

/* A bad fd (here: not an fd at all) after a good region: nothing leaks. */
static void
test_refuse_bad_fd(void)
{
	char name[96];
	struct vhu_mem_region_desc d[2] = {
		region(GPA_A, RSIZE, FE_A, 0),
		region(GPA_A + RSIZE, RSIZE, FE_B, 0),
	};
	int fds[2] = { make_memfd("badfd", RSIZE, name, sizeof(name)), -1 };

	CHECK_NULL(vhu_mem_table_create(d, fds, 2, "unit"));
	CHECK(fd_is_closed(fds[0]));
	CHECK_EQ(count_mappings(name), 0);
}

/* ---- reference counting ---- */

static void
test_refcount(void)
{
	char name[96];
	int fd = make_memfd("refcnt", RSIZE, name, sizeof(name));
	uint8_t *mine = map_fd(fd, RSIZE);
	struct vhu_mem_region_desc d = region(GPA_A, RSIZE, FE_A, 0);
	int fds[1] = { fd };
	struct vhu_mem_table *mem;
	volatile uint8_t *h;

	fill_pattern(mine, RSIZE, 3);
	CHECK_EQ(count_mappings(name), 1);	/* ours */
	mem = vhu_mem_table_create(&d, fds, 1, "unit");
	CHECK_NOT_NULL(mem);
	CHECK(fd_is_closed(fd));
	CHECK_EQ(count_mappings(name), 2);	/* ours and the table's */

	vhu_mem_table_get(mem);
	CHECK_EQ(mem->refcnt, 2);
	vhu_mem_table_get(mem);
	CHECK_EQ(mem->refcnt, 3);
	vhu_mem_table_put(mem);
	CHECK_EQ(mem->refcnt, 2);
	vhu_mem_table_put(mem);
	CHECK_EQ(mem->refcnt, 1);
	CHECK_EQ(count_mappings(name), 2);	/* still mapped while referenced */
	h = vhu_mem_guest_to_host(mem, GPA_A + RSIZE - 1, 1);
	CHECK_NOT_NULL(h);
	CHECK_EQ(*h, mine[RSIZE - 1]);

	vhu_mem_table_put(mem);		/* the last one unmaps */
	CHECK_EQ(count_mappings(name), 1);

	vhu_mem_table_put(NULL);	/* harmless */
	munmap(mine, RSIZE);
	CHECK_EQ(count_mappings(name), 0);
}

/* ---- a front end that truncates its file under us ---- */

static void
test_truncated_file_guarded(void)
{
	char name[96];
	int fd = make_memfd("shrunk", RSIZE, name, sizeof(name));
	struct vhu_mem_region_desc d = region(GPA_A, RSIZE, FE_A, 0);
	int fds[1] = { dup(fd) };
	struct vhu_mem_table *mem;
	volatile uint8_t *h;
	eventfd_t woken = 0;

	CHECK(fd >= 0 && fds[0] >= 0);
	CHECK(ftruncate(fd, RSIZE) == 0);
	mem = vhu_mem_table_create(&d, fds, 1, "unit");
	CHECK_NOT_NULL(mem);
	h = vhu_mem_guest_to_host(mem, GPA_A, RSIZE);
	CHECK_NOT_NULL(h);
	h[5000] = 7;
	CHECK_EQ(h[5000], 7);
	CHECK(vhu_mem_table_lost_memory(mem) == NULL);

	CHECK(ftruncate(fd, 0) == 0);		/* what a hostile front end does */
	CHECK_EQ(h[5000], 0);			/* SIGBUS absorbed: a zero page */
	h[RSIZE - 1] = 9;			/* writes go to a private page */
	CHECK_EQ(h[RSIZE - 1], 9);
	CHECK(vhu_mem_table_lost_memory(mem) == &mem->regions[0].map->guard);
	CHECK_EQ(mem->regions[0].map->guard.addr, (uintptr_t)&h[5000]);
	CHECK(eventfd_read(vhu_memguard_eventfd(), &woken) == 0 && woken >= 1);

	vhu_mem_table_put(mem);
	CHECK_EQ(count_mappings(name), 0);
	close(fd);
}

#define HUGE_SIZE (UINT64_C(2) << 20)
#define NR_HUGEPAGES "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

/* Reads (@add 0) or moves by @add the number of reserved 2 MB pages; -1 if it cannot. */
static long
reserved_hugepages(long add)
{
	FILE *f = fopen(NR_HUGEPAGES, add == 0 ? "r" : "r+");
	long n = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld", &n) == 1 && add != 0) {
		rewind(f);
		n = fprintf(f, "%ld\n", n + add) > 0 ? n + add : -1;
	}
	fclose(f);
	return n;
}

/*
 * The same on hugetlbfs: the lost page is a 2 MB one, and no 4 KiB page can
 * be placed inside a hugetlb mapping, so the guard replaces it whole. Needs
 * one free 2 MB page: reserved here (as root) if there is none, and given
 * back; without one the test says it was skipped.
 */
static void
test_truncated_hugepage_file_guarded(void)
{
	struct vhu_mem_region_desc d = region(GPA_A, HUGE_SIZE, FE_A, 0);
	int fd = memfd_create("vhu-unit-huge", MFD_CLOEXEC | MFD_HUGETLB);
	long reserved = 0;
	struct vhu_mem_table *mem;
	volatile uint8_t *h;
	int fds[1];

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, HUGE_SIZE) == 0);
	if (fallocate(fd, 0, 0, HUGE_SIZE) != 0) {
		if (reserved_hugepages(1) > 0)
			reserved = 1;
		if (fallocate(fd, 0, 0, HUGE_SIZE) != 0) {
			printf("SKIP test_truncated_hugepage_file_guarded: no free 2 MB page (%s)\n",
			       strerror(errno));
			close(fd);
			if (reserved)
				reserved_hugepages(-1);
			return;
		}
	}
	fds[0] = dup(fd);
	mem = vhu_mem_table_create(&d, fds, 1, "unit");
	CHECK_NOT_NULL(mem);
	h = vhu_mem_guest_to_host(mem, GPA_A, HUGE_SIZE);
	CHECK_NOT_NULL(h);
	h[5000] = 7;
	CHECK_EQ(h[5000], 7);

	CHECK(ftruncate(fd, 0) == 0);		/* the huge page goes */
	CHECK_EQ(h[5000], 0);			/* SIGBUS absorbed */
	h[HUGE_SIZE - 1] = 9;			/* the whole 2 MB replaced */
	CHECK_EQ(h[HUGE_SIZE - 1], 9);
	CHECK(vhu_mem_table_lost_memory(mem) == &mem->regions[0].map->guard);
	CHECK_EQ(mem->regions[0].map->guard.addr, (uintptr_t)&h[5000]);

	vhu_mem_table_put(mem);
	close(fd);
	if (reserved)
		reserved_hugepages(-1);
}

/* ---- regions added and removed one at a time (memory slots) ---- */

/*
 * @mem (NULL: none) plus regions @first .. @first + @count - 1, one page each at
 * GPA_A + i * 2 * RSIZE (gaps between them), added one by one; their memfds'
 * names in @names.
 */
static struct vhu_mem_table *
add_regions(struct vhu_mem_table *mem, uint32_t first, uint32_t count, char (*names)[96])
{
	for (uint32_t i = first; i < first + count; i++) {
		/* a permutation (3 is prime to 4 and 509): additions land anywhere in the order */
		uint32_t k = first + (i - first) * 3 % count;
		struct vhu_mem_region_desc d = region(GPA_A + k * 2 * RSIZE, PAGE,
						      FE_A + k * 2 * RSIZE, 0);
		struct vhu_mem_table *next;

		next = vhu_mem_table_add(mem, &d, make_memfd("slot", PAGE, names[k], sizeof(names[k])),
					 "unit");
		if (next == NULL) {
			fprintf(stderr, "region %u not added\n", k);
			exit(1);
		}
		vhu_mem_table_put(mem);
		mem = next;
	}
	return mem;
}

static void
test_add_and_remove_regions(void)
{
	static char names[4][96];
	struct vhu_mem_table *mem, *before, *after;
	struct vhu_mem_region_desc d;
	int fd;

	/* ADD_MEM_REG may come first (QEMU sends no SET_MEM_TABLE then) */
	mem = add_regions(NULL, 0, 4, names);
	CHECK_EQ(mem->nregions, 4);
	for (uint32_t i = 0; i < 4; i++) {
		uint64_t gpa = GPA_A + i * 2 * RSIZE;

		EXPECT_EQ(mem->regions[i].guest_phys_addr, gpa);	/* sorted */
		EXPECT(vhu_mem_guest_to_host(mem, gpa, PAGE) == mem->regions[i].host_addr);
		EXPECT_NULL(vhu_mem_guest_to_host(mem, gpa + PAGE, 1));	/* the gap after it */
		EXPECT(vhu_mem_frontend_to_host(mem, FE_A + i * 2 * RSIZE, PAGE) ==
		       mem->regions[i].host_addr);
		EXPECT_EQ(count_mappings(names[i]), 1);
	}
	EXPECT_NULL(vhu_mem_guest_to_host(mem, GPA_A - 1, 1));	/* below the first */

	/* overlapping an existing region, in either space: refused, fd closed, nothing mapped */
	{
		char name[96];
		const struct vhu_mem_region_desc bad[] = {
			region(GPA_A + 2 * RSIZE + PAGE - 1, PAGE, FE_C, 0),
			region(GPA_A + 3 * RSIZE, PAGE, FE_A + 4 * RSIZE, 0),
			region(GPA_A + 3 * RSIZE, 0, FE_C, 0),
		};

		for (uint32_t i = 0; i < RTE_DIM(bad); i++) {
			fd = make_memfd("overlap", PAGE, name, sizeof(name));
			CHECK_NULL(vhu_mem_table_add(mem, &bad[i], fd, "unit"));
			EXPECT(fd_is_closed(fd));
			EXPECT_EQ(count_mappings(name), 0);
		}
	}

	/* added again (QEMU does, once per queue pair): counted, not mapped again */
	{
		struct vhu_mem_region_desc again = region(GPA_A + 2 * RSIZE, PAGE,
							  FE_A + 2 * RSIZE, 0);
		struct vhu_mem_table *same;

		fd = make_memfd("again", PAGE, NULL, 0);
		same = vhu_mem_table_add(mem, &again, fd, "unit");
		CHECK(same == mem);
		EXPECT(fd_is_closed(fd));
		EXPECT_EQ(mem->refcnt, 2);
		EXPECT_EQ(count_mappings(names[1]), 1);
		/* the first of its two removals leaves it there */
		same = vhu_mem_table_remove(mem, &again, "unit");
		CHECK(same == mem);
		EXPECT_EQ(mem->refcnt, 3);
		vhu_mem_table_put(mem);
		vhu_mem_table_put(mem);
		EXPECT(vhu_mem_guest_to_host(mem, again.guest_phys_addr, PAGE) != NULL);
	}

	/* removing: matched on guest address, size and front-end address */
	d = region(GPA_A + 2 * RSIZE, PAGE, FE_A + 2 * RSIZE, 12345);	/* offset ignored */
	before = mem;
	CHECK_NULL(vhu_mem_table_remove(before, &(struct vhu_mem_region_desc){
			.guest_phys_addr = d.guest_phys_addr, .size = 2 * PAGE,
			.frontend_addr = d.frontend_addr }, "unit"));
	CHECK_NULL(vhu_mem_table_remove(before, &(struct vhu_mem_region_desc){
			.guest_phys_addr = d.guest_phys_addr, .size = PAGE,
			.frontend_addr = FE_C }, "unit"));
	after = vhu_mem_table_remove(before, &d, "unit");
	CHECK_NOT_NULL(after);
	CHECK_EQ(after->nregions, 3);
	EXPECT_NULL(vhu_mem_guest_to_host(after, d.guest_phys_addr, 1));
	EXPECT(vhu_mem_guest_to_host(after, GPA_A + 4 * RSIZE, PAGE) != NULL);
	/* the old table (a zero-copy mbuf's, say) still reaches the removed region */
	EXPECT(vhu_mem_guest_to_host(before, d.guest_phys_addr, PAGE) != NULL);
	EXPECT_EQ(count_mappings(names[1]), 1);
	vhu_mem_table_put(before);
	EXPECT_EQ(count_mappings(names[1]), 0);		/* gone with the last table holding it */
	EXPECT_EQ(count_mappings(names[0]), 1);		/* the others are still mapped, once */
	EXPECT_EQ(count_mappings(names[2]), 1);

	/* down to no region at all, which nothing translates into */
	for (uint32_t i = 0; i < 4; i++) {
		struct vhu_mem_table *next;

		if (i == 1)
			continue;
		d = region(GPA_A + i * 2 * RSIZE, PAGE, FE_A + i * 2 * RSIZE, 0);
		next = vhu_mem_table_remove(after, &d, "unit");
		CHECK_NOT_NULL(next);
		vhu_mem_table_put(after);
		after = next;
	}
	CHECK_EQ(after->nregions, 0);
	EXPECT_NULL(vhu_mem_guest_to_host(after, GPA_A, 1));
	struct vhu_iov iov[2];

	EXPECT_EQ(vhu_mem_guest_to_iov(after, GPA_A, 1, iov, 2), -1);
	vhu_mem_table_put(after);
	for (uint32_t i = 0; i < 4; i++)
		EXPECT_EQ(count_mappings(names[i]), 0);
}

/* Every region of a full table found by the binary search, the gaps refused; no slot more. */
static void
test_full_table_lookup(void)
{
	static char names[VHU_MEM_MAX_REGIONS][96];
	struct vhu_mem_table *mem = add_regions(NULL, 0, VHU_MEM_MAX_REGIONS, names);
	struct vhu_mem_region_desc d = region(GPA_A + 2 * VHU_MEM_MAX_REGIONS * RSIZE, PAGE, FE_C, 0);
	struct vhu_iov iov[2];
	int fd;

	CHECK_EQ(mem->nregions, VHU_MEM_MAX_REGIONS);
	for (uint32_t i = 0; i < VHU_MEM_MAX_REGIONS; i++) {
		uint64_t gpa = GPA_A + i * 2 * RSIZE;
		uint8_t *h = mem->regions[i].host_addr;

		EXPECT_EQ(mem->regions[i].guest_phys_addr, gpa);
		EXPECT(vhu_mem_guest_to_host(mem, gpa, 1) == h);
		EXPECT(vhu_mem_guest_to_host(mem, gpa + PAGE - 1, 1) == h + PAGE - 1);
		EXPECT_NULL(vhu_mem_guest_to_host(mem, gpa + PAGE - 1, 2));
		EXPECT_NULL(vhu_mem_guest_to_host(mem, gpa + PAGE, 1));
		EXPECT_NULL(vhu_mem_guest_to_host(mem, gpa - 1, 1));
		EXPECT_EQ(vhu_mem_guest_to_iov(mem, gpa + 8, 16, iov, 2), 1);
		EXPECT(iov[0].addr == h + 8);
	}
	fd = make_memfd("one-too-many", PAGE, NULL, 0);
	CHECK_NULL(vhu_mem_table_add(mem, &d, fd, "unit"));
	EXPECT(fd_is_closed(fd));
	vhu_mem_table_put(mem);
	for (uint32_t i = 0; i < VHU_MEM_MAX_REGIONS; i++)
		EXPECT_EQ(count_mappings(names[i]), 0);
}

int
main(void)
{
	RUN_TEST(test_single_region_translation);
	RUN_TEST(test_mmap_offset);
	RUN_TEST(test_unaligned_region_size);
	RUN_TEST(test_adjacent_regions_iov);
	RUN_TEST(test_refuse_region_count);
	RUN_TEST(test_refuse_bad_regions);
	RUN_TEST(test_adjacent_accepted);
	RUN_TEST(test_refuse_bad_fd);
	RUN_TEST(test_refcount);
	RUN_TEST(test_truncated_file_guarded);
	RUN_TEST(test_truncated_hugepage_file_guarded);
	RUN_TEST(test_add_and_remove_regions);
	RUN_TEST(test_full_table_lookup);
	return check_summary("test_memory");
}
