/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of lib/vhost/frame_copy.c: the inline copy, both wide copies
 * (baseline and, on a CPU with AVX2, the -mavx2 build) and the string move
 * copy exactly the bytes asked for, at every alignment of source and
 * destination, across the sizes where the copy loops change shape, and
 * write nothing around them; the long copy is the string move exactly on
 * CPUs with FSRM. Demoting what was written (CLDEMOTE, used exactly on CPUs
 * that have it) changes none of it, at any alignment and length.
 */
#include <cpuid.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_cpuflags.h>

#include "frame_copy.h"

#include "check.h"

#define GUARD 64
#define MAX_LEN 9000
#define BUF (GUARD + 64 + MAX_LEN + GUARD)

static uint8_t src_buf[BUF];
static uint8_t dst_buf[BUF];
static uint8_t want[BUF];

static const size_t lengths[] = {
	0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 60, 63, 64, 65, 127, 128, 129, VHU_COPY_WIDE_MIN - 1,
	VHU_COPY_WIDE_MIN, VHU_COPY_WIDE_MIN + 1, 511, 512, 513, VHU_COPY_STRING_MIN - 1,
	VHU_COPY_STRING_MIN, VHU_COPY_STRING_MIN + 1, 1514, 1518, 2048, 4095,
	4096, 4097, MAX_LEN,
};

/* Copies with @copy at every pair of offsets 0..33 and compares with memcpy. */
static void
check_copy(void (*copy)(void *, const void *, size_t))
{
	for (size_t i = 0; i < BUF; i++)
		src_buf[i] = (uint8_t)(i * 7 + 3);
	for (size_t l = 0; l < RTE_DIM(lengths); l++) {
		for (size_t so = 0; so < 34; so++) {
			for (size_t d = 0; d < 34; d++) {
				size_t len = lengths[l];

				memset(dst_buf, 0xa5, BUF);
				memset(want, 0xa5, BUF);
				memcpy(want + GUARD + d, src_buf + GUARD + so, len);
				copy(dst_buf + GUARD + d, src_buf + GUARD + so, len);
				if (memcmp(dst_buf, want, BUF) != 0) {
					fprintf(stderr, "length %zu, source offset %zu, destination offset %zu\n",
						len, so, d);
					CHECK(!"copy differs from memcpy");
				}
			}
		}
	}
}

static void
inline_copy(void *dst, const void *src, size_t n)
{
	vhu_copy(dst, src, n);
}

static void
test_inline_and_baseline_copy(void)
{
	check_copy(inline_copy);
}

static void
test_avx2_copy(void)
{
	if (rte_cpu_get_flag_enabled(RTE_CPUFLAG_AVX2) <= 0)
		SKIP_TEST("no AVX2 on this CPU: the AVX2 copy is never selected");
	check_copy(vhu_copy_avx2);
}

static void
test_string_copy(void)
{
	check_copy(vhu_copy_string);
}

/* CPUID leaf 7's ECX and EDX, zero where the CPU has no leaf 7. */
static void
cpuid_leaf7(unsigned int *ecx, unsigned int *edx)
{
	unsigned int eax, ebx;

	if (!__get_cpuid_count(7, 0, &eax, &ebx, ecx, edx))
		*ecx = *edx = 0;
}

static void
copy_then_demote(void *dst, const void *src, size_t n)
{
	vhu_copy(dst, src, n);
	if (vhu_demote_wanted())
		vhu_demote_line(dst);
}

/*
 * What vhu_frame_copy_select() picked copies right: the string move where
 * FSRM says it is fast, CLDEMOTE after the copies where the CPU has it, and
 * that hint leaves every byte as written.
 */
static void
test_selected_copies(void)
{
	unsigned int ecx, edx;

	cpuid_leaf7(&ecx, &edx);
	bool fsrm = edx & (1u << 4);
	bool cldemote = ecx & (1u << 25);

	vhu_frame_copy_select();
	CHECK(vhu_copy_long == (fsrm ? vhu_copy_string : vhu_copy_wide));
	CHECK(vhu_cldemote == cldemote);
	check_copy(copy_then_demote);
	/* A CPU without it executes the same bytes as a NOP: harmless there too. */
	vhu_cldemote = true;
	check_copy(copy_then_demote);
	vhu_cldemote = cldemote;
}

int
main(void)
{
	RUN_TEST(test_inline_and_baseline_copy);
	RUN_TEST(test_avx2_copy);
	RUN_TEST(test_string_copy);
	RUN_TEST(test_selected_copies);
	return check_summary("test_frame_copy");
}
