/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Copies of packet bytes between mbufs and guest buffers. Small ones are
 * inlined (rte_memcpy as the build's baseline, SSE4.2 for the distribution's
 * DPDK); from VHU_COPY_WIDE_MIN bytes on, where the per-byte cost dominates,
 * one call to the widest copy this CPU allows: 32-byte AVX2 moves halve the
 * instructions of a 1518-byte frame's copy. From VHU_COPY_STRING_MIN bytes
 * on, a CPU with fast short REP MOVSB (FSRM) copies faster with one string
 * move, which its microcode carries out in whole cache lines, than with
 * vector moves (docs/performance.md: a full-size Ethernet frame's enqueue
 * gains 10 to 20%; frames of 512 to 1280 bytes gain nothing). The choices
 * are made once, at the first port's creation, the vector width within
 * EAL's --force-max-simd-bitwidth.
 */
#ifndef VHU_FRAME_COPY_H
#define VHU_FRAME_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <rte_branch_prediction.h>
#include <rte_common.h>
#include <rte_memcpy.h>

/* Below this a call costs more than wider moves save. */
#define VHU_COPY_WIDE_MIN 256
/* From this on a string move beats vector moves, on a CPU with FSRM. */
#define VHU_COPY_STRING_MIN 1400

typedef void (*vhu_copy_fn)(void *dst, const void *src, size_t n);

/* The wide copy in use (baseline until vhu_frame_copy_select() picks). */
extern vhu_copy_fn vhu_copy_wide;
/* The copy of VHU_COPY_STRING_MIN bytes and more: the wide one, or the string move. */
extern vhu_copy_fn vhu_copy_long;

/*
 * Whether this CPU has CLDEMOTE (CPUID leaf 7, ECX bit 25), found by
 * vhu_frame_copy_select(); false until then.
 */
extern bool vhu_cldemote;

/* Picks the wide and the long copy for this CPU; idempotent, call after rte_eal_init(). */
void vhu_frame_copy_select(void);

/* The AVX2 build of the wide copy (frame_copy_avx2.c, compiled with -mavx2). */
void vhu_copy_avx2(void *dst, const void *src, size_t n);

/* One REP MOVSB of @n bytes. */
void vhu_copy_string(void *dst, const void *src, size_t n);

/*
 * @n bytes, 16 <= @n <= 64, as two copies of @block (16 or 32) bytes: the
 * first @block and the last @block bytes, overlapping in the middle. Each
 * byte is read and written inside [0, @n) only; @dst and @src do not
 * overlap (a frame between an mbuf and guest memory).
 */
static __rte_always_inline void
vhu_copy_two_blocks(uint8_t *dst, const uint8_t *src, size_t n, size_t block)
{
	memcpy(dst, src, block);
	memcpy(dst + n - block, src + n - block, block);
}

/*
 * Up to 64 bytes (a minimum-size frame): with constant-size moves of the
 * two ends, without rte_memcpy's alignment test and size ladder.
 */
static __rte_always_inline void
vhu_copy_upto64(uint8_t *dst, const uint8_t *src, size_t n)
{
	if (n >= 32) {
		if (n == 64)	/* minimum-size frames: four fixed moves */
			memcpy(dst, src, 64);
		else
			vhu_copy_two_blocks(dst, src, n, 32);
	} else if (n >= 16) {
		vhu_copy_two_blocks(dst, src, n, 16);
	} else if (n >= 8) {
		memcpy(dst, src, 8);
		memcpy(dst + n - 8, src + n - 8, 8);
	} else if (n >= 4) {
		memcpy(dst, src, 4);
		memcpy(dst + n - 4, src + n - 4, 4);
	} else if (n > 0) {
		/* 1 to 3 bytes: the first, the last, and the middle one */
		dst[0] = src[0];
		dst[n - 1] = src[n - 1];
		dst[n / 2] = src[n / 2];
	}
}

/* Always inline: GCC would otherwise outline the small copy into a call. */
static __rte_always_inline void
vhu_copy(void *dst, const void *src, size_t n)
{
	if (likely(n <= 64))
		vhu_copy_upto64(dst, src, n);
	else if (n < VHU_COPY_WIDE_MIN)
		rte_memcpy(dst, src, n);
	else if (n < VHU_COPY_STRING_MIN)
		__atomic_load_n(&vhu_copy_wide, __ATOMIC_RELAXED)(dst, src, n);
	else
		__atomic_load_n(&vhu_copy_long, __ATOMIC_RELAXED)(dst, src, n);
}

struct vhu_cache_line {
	uint8_t bytes[RTE_CACHE_LINE_SIZE];
};

/* Whether to demote what we wrote: vhu_cldemote, read once per call. */
static __rte_always_inline bool
vhu_demote_wanted(void)
{
	return __atomic_load_n(&vhu_cldemote, __ATOMIC_RELAXED);
}

/*
 * Hands the cache line at @p, the start of a guest buffer we just wrote,
 * from this core's private caches down to the shared one (CLDEMOTE, a hint),
 * on a CPU that has it: check vhu_demote_wanted() first. The line holds what the
 * guest's driver reads first (the header's num_buffers, the Ethernet
 * header), on another core that polls: it then finds the line in the
 * shared cache instead of snooping it out of ours, which is what its
 * receive function waits on when it runs as fast as we deliver
 * (docs/performance.md: 64-byte PVP and VM to VM gain 3 to 8%).
 */
static __rte_always_inline void
vhu_demote_line(const void *p)
{
	/* cldemote (%rsi) as bytes, as rte_cldemote() has it (no -mcldemote
	 * needed); naming the line as an input keeps it after the copy's stores
	 * into it, without a clobber that would reload everything else. */
	__asm__ volatile(".byte 0x0f, 0x1c, 0x06"
			 : : "S"(p), "m"(*(const struct vhu_cache_line *)p));
}

#endif /* VHU_FRAME_COPY_H */
