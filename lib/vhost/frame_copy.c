/* SPDX-License-Identifier: BSD-3-Clause */
/* rte_vect_get_max_simd_bitwidth() is still experimental in 22.11. */
#define ALLOW_EXPERIMENTAL_API

#include "frame_copy.h"

#include <cpuid.h>

#include <rte_cpuflags.h>
#include <rte_vect.h>

#include "vhu_log.h"

static void
copy_baseline(void *dst, const void *src, size_t n)
{
	rte_memcpy(dst, src, n);
}

vhu_copy_fn vhu_copy_wide = copy_baseline;
vhu_copy_fn vhu_copy_long = copy_baseline;
bool vhu_cldemote;

void
vhu_copy_string(void *dst, const void *src, size_t n)
{
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

/*
 * Fast short REP MOVSB: CPUID leaf 7, EDX bit 4. DPDK 22.11 has no flag
 * for it. (Valgrind's emulated CPU has none: callgrind counts the vector
 * path, and would count a string move one instruction per byte.)
 */
static bool
cpu_has_fsrm(void)
{
	unsigned int eax, ebx, ecx, edx;

	return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (edx & (1u << 4)) != 0;
}

void
vhu_frame_copy_select(void)
{
	static bool selected;
	vhu_copy_fn wide = copy_baseline;
	vhu_copy_fn lng;

	if (__atomic_exchange_n(&selected, true, __ATOMIC_RELAXED))
		return;
	if (rte_cpu_get_flag_enabled(RTE_CPUFLAG_AVX2) > 0 &&
	    rte_vect_get_max_simd_bitwidth() >= RTE_VECT_SIMD_256)
		wide = vhu_copy_avx2;
	lng = cpu_has_fsrm() ? vhu_copy_string : wide;
	/* Other ports' rings may be copying already: any choice is valid. */
	__atomic_store_n(&vhu_copy_wide, wide, __ATOMIC_RELAXED);
	__atomic_store_n(&vhu_copy_long, lng, __ATOMIC_RELAXED);
	/* (Valgrind's CPU has no CLDEMOTE either: callgrind counts the flag test.) */
	__atomic_store_n(&vhu_cldemote, rte_cpu_get_flag_enabled(RTE_CPUFLAG_CLDEMOTE) > 0,
			 __ATOMIC_RELAXED);
	VHU_LOG(INFO, "frame copies of %u bytes and more: %s; of %u and more: %s; "
		"buffers' first lines demoted (CLDEMOTE): %s",
		VHU_COPY_WIDE_MIN, wide == vhu_copy_avx2 ? "AVX2" : "baseline",
		VHU_COPY_STRING_MIN, lng == vhu_copy_string ? "REP MOVSB (FSRM)" :
		"the same", vhu_cldemote ? "yes" : "no");
}
