/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Copies of packet bytes between mbufs and guest buffers. Small ones are
 * inlined (rte_memcpy as the build's baseline, SSE4.2 for the distribution's
 * DPDK); from VHU_COPY_WIDE_MIN bytes on, where the per-byte cost dominates,
 * one call to the widest copy this CPU allows: 32-byte AVX2 moves halve the
 * instructions of a 1518-byte frame's copy. The choice is made once, at the
 * first port's creation, within EAL's --force-max-simd-bitwidth.
 */
#ifndef VHU_FRAME_COPY_H
#define VHU_FRAME_COPY_H

#include <stddef.h>

#include <rte_memcpy.h>

/* Below this a call costs more than wider moves save. */
#define VHU_COPY_WIDE_MIN 256

typedef void (*vhu_copy_fn)(void *dst, const void *src, size_t n);

/* The wide copy in use (baseline until vhu_frame_copy_select() picks). */
extern vhu_copy_fn vhu_copy_wide;

/* Picks the wide copy for this CPU; idempotent, call after rte_eal_init(). */
void vhu_frame_copy_select(void);

/* The AVX2 build of the wide copy (frame_copy_avx2.c, compiled with -mavx2). */
void vhu_copy_avx2(void *dst, const void *src, size_t n);

/* Always inline: GCC would otherwise outline the small copy into a call. */
static __rte_always_inline void
vhu_copy(void *dst, const void *src, size_t n)
{
	if (n < VHU_COPY_WIDE_MIN)
		rte_memcpy(dst, src, n);
	else
		__atomic_load_n(&vhu_copy_wide, __ATOMIC_RELAXED)(dst, src, n);
}

#endif /* VHU_FRAME_COPY_H */
