/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of lib/vhost/iotlb.c: IOVA translations through a memory table
 * built by hand (host buffers of the test), access rights, pieces, misses
 * asked on a request channel the test reads, invalidation, the bound.
 *
 * No EAL is needed: iotlb.c only logs and draws random numbers.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iotlb.h"
#include "message.h"

#include "check.h"

#define PAGE UINT64_C(0x1000)
/* Front-end addresses of two regions, adjacent in the front end's space. */
#define FE_A UINT64_C(0x700000000000)
#define FE_B (FE_A + 16 * PAGE)
#define GPA_A UINT64_C(0x100000)
#define GPA_B UINT64_C(0x900000)
#define IOVA UINT64_C(0xfeed0000)

static uint8_t host_a[16 * 4096], host_b[16 * 4096];

/* Two regions of 16 pages: A then B in the front end's space, apart in ours. */
static struct vhu_mem_table *
two_regions(uint8_t *a, uint8_t *b)
{
	struct vhu_mem_table *mem = calloc(1, sizeof(*mem) + 2 * sizeof(mem->regions[0]));

	if (mem == NULL)
		abort();
	mem->nregions = 2;
	mem->regions[0] = (struct vhu_mem_region){ .guest_phys_addr = GPA_A, .size = 16 * PAGE,
						   .frontend_addr = FE_A, .host_addr = a };
	mem->regions[1] = (struct vhu_mem_region){ .guest_phys_addr = GPA_B, .size = 16 * PAGE,
						   .frontend_addr = FE_B, .host_addr = b };
	return mem;
}

static struct vhu_iotlb *T;
static struct vhu_mem_table *MEM;
static int frontend_end = -1;	/* the front end's end of our request channel */

static void
setup(void)
{
	int sv[2];

	T = vhu_iotlb_create("unit");
	MEM = two_regions(host_a, host_b);
	if (T == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	vhu_iotlb_set_backend_fd(T, sv[0]);
	frontend_end = sv[1];
}

static void
teardown(void)
{
	vhu_iotlb_destroy(T);
	free(MEM);
	close(frontend_end);
	T = NULL;
	MEM = NULL;
}

/* The next miss on the request channel: false if there is none. */
static bool
read_miss(struct vhu_iotlb_msg *out)
{
	struct {
		struct vhu_msg_hdr hdr;
		struct vhu_iotlb_msg iotlb;
	} __attribute__((packed)) msg;
	ssize_t n = recv(frontend_end, &msg, sizeof(msg), MSG_DONTWAIT);

	if (n != (ssize_t)sizeof(msg))
		return false;
	if (msg.hdr.request != VHOST_USER_BACKEND_IOTLB_MSG || msg.hdr.flags != VHOST_USER_VERSION ||
	    msg.hdr.size != sizeof(msg.iotlb) || msg.iotlb.type != VHU_IOTLB_MSG_MISS)
		return false;
	*out = msg.iotlb;
	return true;
}

static void
test_translates_with_access(void)
{
	struct vhu_iov iov[4];

	setup();
	CHECK(vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A + 3 * PAGE, VHU_IOTLB_RO));
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 16, 100, VHU_IOTLB_RO, iov, 4), 1);
	CHECK(iov[0].addr == host_a + 3 * PAGE + 16);
	CHECK_EQ(iov[0].len, 100);
	CHECK_EQ(iov[0].guest_phys_addr, GPA_A + 3 * PAGE + 16);
	/* read-only: no writing */
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 100, VHU_IOTLB_WO, iov, 4), VHU_IOTLB_FAULT);
	/* the last byte of the page is there, the next one is not */
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + PAGE - 1, 1, VHU_IOTLB_RO, iov, 4), 1);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + PAGE - 1, 2, VHU_IOTLB_RO, iov, 4), VHU_IOTLB_MISS);
	CHECK_EQ(T->count.updates, 1);
	teardown();
}

static void
test_pieces(void)
{
	struct vhu_iov iov[4];
	uint64_t gpa = 0;
	int why = 0;

	setup();
	/* two IOVA pages on consecutive front-end pages: one piece */
	CHECK(vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A, VHU_IOTLB_RW));
	CHECK(vhu_iotlb_update(T, MEM, IOVA + PAGE, PAGE, FE_A + PAGE, VHU_IOTLB_RW));
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 8, (uint32_t)PAGE, VHU_IOTLB_WO, iov, 4), 1);
	CHECK_EQ(iov[0].len, PAGE);
	CHECK(vhu_iotlb_to_host(T, IOVA + 8, PAGE, VHU_IOTLB_RO, &gpa, &why) == host_a + 8);
	CHECK_EQ(gpa, GPA_A + 8);
	/* the next IOVA page lands elsewhere: two pieces, or no contiguous range */
	CHECK(vhu_iotlb_update(T, MEM, IOVA + 2 * PAGE, PAGE, FE_A + 9 * PAGE, VHU_IOTLB_RW));
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + PAGE, (uint32_t)(2 * PAGE), VHU_IOTLB_RO, iov, 4), 2);
	CHECK(iov[0].addr == host_a + PAGE && iov[0].len == PAGE);
	CHECK(iov[1].addr == host_a + 9 * PAGE && iov[1].len == PAGE);
	CHECK_EQ(iov[1].guest_phys_addr, GPA_A + 9 * PAGE);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + PAGE, (uint32_t)(2 * PAGE), VHU_IOTLB_RO, iov, 1),
		 VHU_IOTLB_FAULT);
	CHECK(vhu_iotlb_to_host(T, IOVA + PAGE, 2 * PAGE, VHU_IOTLB_RO, NULL, &why) == NULL);
	CHECK_EQ(why, VHU_IOTLB_FAULT);
	/* an empty range is no piece */
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 0, VHU_IOTLB_RO, iov, 4), 0);
	teardown();
}

static void
test_update_split_across_regions(void)
{
	struct vhu_iov iov[4];

	setup();
	/* the last page of A and the first of B, adjacent for the front end only */
	CHECK(vhu_iotlb_update(T, MEM, IOVA, 2 * PAGE, FE_B - PAGE, VHU_IOTLB_RW));
	CHECK_EQ(T->nentries, 2);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, (uint32_t)(2 * PAGE), VHU_IOTLB_RO, iov, 4), 2);
	CHECK(iov[0].addr == host_a + 15 * PAGE && iov[1].addr == host_b);
	CHECK_EQ(iov[1].guest_phys_addr, GPA_B);
	teardown();
}

static void
test_bad_updates_change_nothing(void)
{
	setup();
	CHECK(vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A, VHU_IOTLB_RW));
	/* outside guest memory, partly or wholly */
	CHECK(!vhu_iotlb_update(T, MEM, IOVA, 2 * PAGE, FE_B + 15 * PAGE, VHU_IOTLB_RW));
	CHECK(!vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A - PAGE, VHU_IOTLB_RW));
	/* empty, wrapping, without access or with an unknown one */
	CHECK(!vhu_iotlb_update(T, MEM, IOVA, 0, FE_A, VHU_IOTLB_RW));
	CHECK(!vhu_iotlb_update(T, MEM, UINT64_MAX - 10, PAGE, FE_A, VHU_IOTLB_RW));
	CHECK(!vhu_iotlb_update(T, MEM, IOVA, PAGE, UINT64_MAX - 10, VHU_IOTLB_RW));
	CHECK(!vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A, 0));
	CHECK(!vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A, 4));
	/* no memory table yet */
	CHECK(!vhu_iotlb_update(T, NULL, IOVA, PAGE, FE_A, VHU_IOTLB_RW));
	CHECK_EQ(T->nentries, 1);
	CHECK_EQ(T->count.updates, 1);
	teardown();
}

static void
test_miss_asked_once(void)
{
	struct vhu_iotlb_msg m;
	struct vhu_iov iov[1];

	setup();
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 0x123, 8, VHU_IOTLB_WO, iov, 1), VHU_IOTLB_MISS);
	CHECK(read_miss(&m));
	CHECK_EQ(m.iova, IOVA + 0x123);
	CHECK_EQ(m.perm, VHU_IOTLB_WO);
	/* the same page again, before an answer: not asked again */
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 0x456, 8, VHU_IOTLB_WO, iov, 1), VHU_IOTLB_MISS);
	CHECK(!read_miss(&m));
	/* more access than asked for is asked for */
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 8, VHU_IOTLB_RW, iov, 1), VHU_IOTLB_MISS);
	CHECK(read_miss(&m));
	CHECK_EQ(m.perm, VHU_IOTLB_RW);
	/* answered: translated, and a later miss of that page is asked again */
	CHECK(vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A, VHU_IOTLB_RW));
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 0x123, 8, VHU_IOTLB_WO, iov, 1), 1);
	vhu_iotlb_invalidate(T, IOVA, PAGE);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 0x123, 8, VHU_IOTLB_WO, iov, 1), VHU_IOTLB_MISS);
	CHECK(read_miss(&m));
	CHECK_EQ(T->count.misses, 3);
	/* a closed channel: the miss is logged, not remembered, and asked again */
	vhu_iotlb_set_backend_fd(T, -1);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 5 * PAGE, 8, VHU_IOTLB_WO, iov, 1), VHU_IOTLB_MISS);
	CHECK_EQ(T->nasked, 0);
	teardown();
}

/* Whether a miss for each of the first @n pages from IOVA is on the channel, in order. */
static bool
read_misses(uint32_t n)
{
	struct vhu_iotlb_msg m;

	for (uint32_t i = 0; i < n; i++)
		if (!read_miss(&m) || m.iova != IOVA + i * PAGE)
			return false;
	return true;
}

/* Misses from long ago, and the front end silent since: given up on. */
static void
age_misses(void)
{
	for (uint32_t i = 0; i < T->nasked; i++)
		T->asked[i].ms = 0;
	T->answered_ms = 0;
}

static void
test_miss_never_asked_twice_while_awaited(void)
{
	const uint32_t room = VHU_IOTLB_MAX_ASKED;
	struct vhu_iotlb_msg m;
	struct vhu_iov iov[1];

	setup();
	for (uint32_t i = 0; i < room; i++)
		CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + i * PAGE, 8, VHU_IOTLB_RO, iov, 1),
			 VHU_IOTLB_MISS);
	CHECK(read_misses(room));
	/* no room: nothing asked, and no awaited miss forgotten to make some */
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + room * PAGE, 8, VHU_IOTLB_RO, iov, 1),
		 VHU_IOTLB_MISS);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 8, VHU_IOTLB_RO, iov, 1), VHU_IOTLB_MISS);
	CHECK(!read_miss(&m));
	CHECK_EQ(T->nasked, room);
	/* old, but the front end still answers (in order): still awaited */
	age_misses();
	CHECK(vhu_iotlb_update(T, MEM, IOVA + room * PAGE, PAGE, FE_A, VHU_IOTLB_RW));
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 8, VHU_IOTLB_RO, iov, 1), VHU_IOTLB_MISS);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + (room + 1) * PAGE, 8, VHU_IOTLB_RO, iov, 1),
		 VHU_IOTLB_MISS);
	CHECK(!read_miss(&m));
	/* the front end silent for long: asked again, given-up misses make room */
	age_misses();
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 8, VHU_IOTLB_RO, iov, 1), VHU_IOTLB_MISS);
	CHECK(read_misses(1));
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + (room + 1) * PAGE, 8, VHU_IOTLB_RO, iov, 1),
		 VHU_IOTLB_MISS);
	CHECK(read_miss(&m));
	CHECK_EQ(m.iova, IOVA + (room + 1) * PAGE);
	CHECK_EQ(T->count.misses, room + 2);
	teardown();
}

static void
test_invalidate(void)
{
	struct vhu_iov iov[1];

	setup();
	for (uint64_t i = 0; i < 4; i++)
		CHECK(vhu_iotlb_update(T, MEM, IOVA + i * PAGE, PAGE, FE_A + i * PAGE,
				       VHU_IOTLB_RW));
	/* one byte of the second page drops that page only */
	vhu_iotlb_invalidate(T, IOVA + PAGE + 100, 1);
	CHECK_EQ(T->nentries, 3);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + PAGE, 1, VHU_IOTLB_RO, iov, 1), VHU_IOTLB_MISS);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA + 2 * PAGE, 1, VHU_IOTLB_RO, iov, 1), 1);
	/* a range to the top of the space drops everything from its start */
	vhu_iotlb_invalidate(T, IOVA + 2 * PAGE, UINT64_MAX);
	CHECK_EQ(T->nentries, 1);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 1, VHU_IOTLB_RO, iov, 1), 1);
	/* an update replaces what it overlaps */
	CHECK(vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A + 7 * PAGE, VHU_IOTLB_RW));
	CHECK_EQ(T->nentries, 1);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 1, VHU_IOTLB_RO, iov, 1), 1);
	CHECK(iov[0].addr == host_a + 7 * PAGE);
	vhu_iotlb_flush(T);
	CHECK_EQ(T->nentries, 0);
	teardown();
}

static void
test_bounded(void)
{
	setup();
	for (uint64_t i = 0; i < VHU_IOTLB_MAX_ENTRIES + 10; i++)
		CHECK(vhu_iotlb_update(T, MEM, IOVA + i * PAGE, PAGE, FE_A + (i % 16) * PAGE,
				       VHU_IOTLB_RW));
	CHECK_EQ(T->nentries, VHU_IOTLB_MAX_ENTRIES);
	CHECK_EQ(T->count.evictions, 10);
	for (uint32_t i = 1; i < T->nentries; i++)
		CHECK(T->entries[i - 1].iova + T->entries[i - 1].size <= T->entries[i].iova);
	teardown();
}

static void
test_remap(void)
{
	static uint8_t moved[16 * 4096];
	struct vhu_mem_table *only_a;
	struct vhu_iov iov[1];

	setup();
	CHECK(vhu_iotlb_update(T, MEM, IOVA, PAGE, FE_A + 2 * PAGE, VHU_IOTLB_RW));
	CHECK(vhu_iotlb_update(T, MEM, IOVA + PAGE, PAGE, FE_B, VHU_IOTLB_RW));
	/* region A mapped elsewhere here, region B gone */
	only_a = two_regions(moved, host_b);
	only_a->nregions = 1;
	vhu_iotlb_remap(T, only_a);
	CHECK_EQ(T->nentries, 1);
	CHECK_EQ(vhu_iotlb_to_iov(T, IOVA, 1, VHU_IOTLB_RO, iov, 1), 1);
	CHECK(iov[0].addr == moved + 2 * PAGE);
	vhu_iotlb_remap(T, NULL);
	CHECK_EQ(T->nentries, 0);
	free(only_a);
	teardown();
}

int
main(void)
{
	RUN_TEST(test_translates_with_access);
	RUN_TEST(test_pieces);
	RUN_TEST(test_update_split_across_regions);
	RUN_TEST(test_bad_updates_change_nothing);
	RUN_TEST(test_miss_asked_once);
	RUN_TEST(test_miss_never_asked_twice_while_awaited);
	RUN_TEST(test_invalidate);
	RUN_TEST(test_bounded);
	RUN_TEST(test_remap);
	return check_summary("test_iotlb");
}
