/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Compiled with -mavx2 (lib/vhost/meson.build): rte_memcpy.h then moves 32
 * bytes at a time. Called only once vhu_frame_copy_select() has seen AVX2.
 */
#include "frame_copy.h"

#ifndef __AVX2__
#error "frame_copy_avx2.c must be compiled with -mavx2"
#endif

void
vhu_copy_avx2(void *dst, const void *src, size_t n)
{
	rte_memcpy(dst, src, n);
}
