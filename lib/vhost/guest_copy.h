/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A cursor over the mapped pieces of a descriptor chain, for copying packet
 * bytes in and out of guest buffers in one pass.
 */
#ifndef VHU_GUEST_COPY_H
#define VHU_GUEST_COPY_H

#include <stdint.h>

#include <rte_common.h>

#include "frame_copy.h"
#include "memory.h"

struct vhu_cursor {
	const struct vhu_iov *iov;
	uint32_t niov;
	uint32_t i;	/* current piece */
	uint32_t off;	/* offset in it */
};

static inline void
vhu_cursor_init(struct vhu_cursor *c, const struct vhu_iov *iov, uint32_t niov)
{
	c->iov = iov;
	c->niov = niov;
	c->i = 0;
	c->off = 0;
}

/* Where the cursor points, or NULL at the end; the cursor does not move. */
static inline uint8_t *
vhu_cursor_ptr(const struct vhu_cursor *c)
{
	return c->i < c->niov ? c->iov[c->i].addr + c->off : NULL;
}

/* Bytes left in the current piece. */
static inline uint32_t
vhu_cursor_piece_left(const struct vhu_cursor *c)
{
	return c->i < c->niov ? c->iov[c->i].len - c->off : 0;
}

static inline void
vhu_cursor_advance(struct vhu_cursor *c, uint32_t n)
{
	c->off += n;
	if (c->off == c->iov[c->i].len) {
		c->i++;
		c->off = 0;
	}
}

/* Copies up to @len bytes into the guest buffer; returns how many fitted. */
static inline uint32_t
vhu_cursor_write(struct vhu_cursor *c, const void *src, uint32_t len)
{
	uint32_t done = 0;

	/* Most copies fit in the current piece: one memcpy, no loop. */
	if (likely(c->i < c->niov && len < vhu_cursor_piece_left(c))) {
		vhu_copy(vhu_cursor_ptr(c), src, len);
		c->off += len;
		return len;
	}

	while (done < len && c->i < c->niov) {
		uint32_t n = RTE_MIN(len - done, vhu_cursor_piece_left(c));

		vhu_copy(vhu_cursor_ptr(c), (const uint8_t *)src + done, n);
		vhu_cursor_advance(c, n);
		done += n;
	}
	return done;
}

/* Copies up to @len bytes out of the guest buffer; returns how many there were. */
static inline uint32_t
vhu_cursor_read(struct vhu_cursor *c, void *dst, uint32_t len)
{
	uint32_t done = 0;

	/* Most copies fit in the current piece: one memcpy, no loop. */
	if (likely(c->i < c->niov && len < vhu_cursor_piece_left(c))) {
		vhu_copy(dst, vhu_cursor_ptr(c), len);
		c->off += len;
		return len;
	}

	while (done < len && c->i < c->niov) {
		uint32_t n = RTE_MIN(len - done, vhu_cursor_piece_left(c));

		vhu_copy((uint8_t *)dst + done, vhu_cursor_ptr(c), n);
		vhu_cursor_advance(c, n);
		done += n;
	}
	return done;
}

#endif /* VHU_GUEST_COPY_H */
