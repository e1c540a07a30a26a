/* SPDX-License-Identifier: BSD-3-Clause */
/* rte_vect_get_max_simd_bitwidth() is still experimental in 22.11. */
#define ALLOW_EXPERIMENTAL_API

#include "frame_copy.h"

#include <rte_cpuflags.h>
#include <rte_vect.h>

#include "vhu_log.h"

static void
copy_baseline(void *dst, const void *src, size_t n)
{
	rte_memcpy(dst, src, n);
}

vhu_copy_fn vhu_copy_wide = copy_baseline;

void
vhu_frame_copy_select(void)
{
	static bool selected;
	vhu_copy_fn fn = copy_baseline;

	if (__atomic_exchange_n(&selected, true, __ATOMIC_RELAXED))
		return;
	if (rte_cpu_get_flag_enabled(RTE_CPUFLAG_AVX2) > 0 &&
	    rte_vect_get_max_simd_bitwidth() >= RTE_VECT_SIMD_256)
		fn = vhu_copy_avx2;
	/* Other ports' rings may be copying already: either choice is valid. */
	__atomic_store_n(&vhu_copy_wide, fn, __ATOMIC_RELAXED);
	VHU_LOG(INFO, "frame copies of %u bytes and more: %s", VHU_COPY_WIDE_MIN,
		fn == vhu_copy_avx2 ? "AVX2" : "baseline");
}
