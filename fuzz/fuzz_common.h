/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared helpers of the libFuzzer harnesses: an input reader, EAL start-up,
 * the mbuf pools, guarded guest memory, fd counting, the port every harness
 * drives through the real control path, bursts with their checks, and the
 * checks that turn a broken invariant into a crash.
 *
 * Every harness brackets one input with fz_input_begin() and
 * fz_input_end(): between them it may use the port, create fds and mbufs;
 * fz_input_end() disconnects the port and checks that nothing of the input
 * is left (fds, mbufs, guest memory mappings, session state).
 */
#ifndef VHU_FUZZ_COMMON_H
#define VHU_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_gso.h>

#include "port.h"
#include "vring.h"

struct rte_mbuf;
struct rte_mempool;

/* ---- reading the fuzz input: past its end every read gives zeros ---- */

struct fz_reader {
	const uint8_t *p;
	size_t left;
};

static inline bool
fz_more(const struct fz_reader *r)
{
	return r->left > 0;
}

static inline uint8_t
fz_u8(struct fz_reader *r)
{
	if (r->left == 0)
		return 0;
	r->left--;
	return *r->p++;
}

static inline uint16_t
fz_u16(struct fz_reader *r)
{
	uint16_t lo = fz_u8(r);

	return (uint16_t)(lo | fz_u8(r) << 8);
}

static inline uint32_t
fz_u32(struct fz_reader *r)
{
	uint32_t lo = fz_u16(r);

	return lo | (uint32_t)fz_u16(r) << 16;
}

static inline uint64_t
fz_u64(struct fz_reader *r)
{
	uint64_t lo = fz_u32(r);

	return lo | (uint64_t)fz_u32(r) << 32;
}

/* Copies up to @len bytes; the rest of @dst is zeroed. Returns bytes taken. */
static inline size_t
fz_bytes(struct fz_reader *r, void *dst, size_t len)
{
	size_t n = len < r->left ? len : r->left;
	uint8_t *d = dst;

	for (size_t i = 0; i < n; i++)
		d[i] = r->p[i];
	for (size_t i = n; i < len; i++)
		d[i] = 0;
	r->p += n;
	r->left -= n;
	return n;
}

/* ---- failures ---- */

/* A broken invariant: print it and abort, which libFuzzer reports as a crash. */
#define FZ_CHECK(cond, ...) do { \
	if (!(cond)) \
		fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
} while (0)

void fz_fail(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

/* ---- process set-up, once ---- */

/* libFuzzer's entry points: fuzz_common.c starts EAL, each harness runs inputs. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * LLVMFuzzerInitialize() starts EAL (--no-huge --no-pci --no-shconf, no
 * telemetry), creates the mbuf pool, the segmentation pools and the port.
 * The library's log is quiet unless VHU_FUZZ_LOG=1 is in the environment.
 */

extern struct rte_mempool *fz_pool;	/* mbufs for bursts */
extern struct rte_gso_ctx fz_gso;	/* segmentation pools of rings made without a port */
#define FZ_POOL_MBUFS 8191u

/* mbufs of every pool of the process handed out and not yet back. */
unsigned int fz_mbufs_in_use(void);

/* ---- one input ---- */

/* Notes what the process holds before the input (fds, shared mappings). */
void fz_input_begin(void);

/*
 * Disconnects the port (vhu_session_end), checks the session is
 * gone, frees the mbufs kept from dequeue bursts (reading them whole: guest
 * memory must outlive zero-copy mbufs), then checks that the input left no
 * fd, mbuf or shared mapping behind that was not there before it. The
 * harness must have released its own first.
 */
void fz_input_end(void);

/* ---- fds ---- */

/* Number of open fds of the process (/proc/self/fd). */
int fz_count_fds(void);

/* A memfd of @size bytes (contents zero). Aborts on failure (not the library's fault). */
int fz_memfd(uint64_t size);

/* An eventfd, as front ends pass for kick, call and error notifications. */
int fz_eventfd(void);

/* An fd the caller gives away: a dup of @fd. */
int fz_dup(int fd);

/* ---- guest memory ---- */

/*
 * Every shared file mapping of the harness executable, the library's guest
 * memory and dirty logs included, is placed between two PROT_NONE pages
 * (the link wraps mmap and munmap), so that a stray access next to guest
 * memory crashes instead of reading a neighbour.
 */

/* Guarded mappings alive (the harness's own, and the library's memory tables and logs). */
unsigned int fz_guarded_mappings(void);

/*
 * Makes what a table's mappings hold before each region (the part of the
 * file below mmap_offset) inaccessible too. Bytes after a region's end up
 * to the end of its last page stay accessible: pages are the unit.
 */
void fz_guard_mem_table(const struct vhu_mem_table *mem);

/* ---- mbufs ---- */

/* Checks the shape of an mbuf chain a burst returned (lengths, segments, room). */
void fz_check_mbuf(const struct rte_mbuf *m, uint32_t max_pkt_len);

/*
 * Checks the offload metadata on an mbuf that the library produced from a
 * guest's header for a ring with receive offloads @rx_offloads
 * (VHU_RX_OFFLOAD_*): with LEGACY, TX requests only, as a set (IP version,
 * checksum, header lengths inside the frame, a segment size for TSO and IPv4
 * checksum with TSO over IPv4); otherwise RX flags only, and only those the
 * application enabled.
 */
void fz_check_offload(const struct rte_mbuf *m, uint32_t rx_offloads);

/*
 * A frame of @len bytes spread over segments of at most @seg_len bytes: its
 * first @head_len bytes from @head, the rest an Ethernet header (first byte
 * 0xff, a multicast address, when @seed is odd) and a pattern from @seed.
 * NULL when the pool is empty.
 */
struct rte_mbuf *fz_make_frame(const uint8_t *head, uint32_t head_len, uint32_t len,
			       uint32_t seg_len, uint8_t seed);

/* Header layouts fz_frame_headers() writes. */
enum fz_l4 {
	FZ_FRAME_ETH,		/* Ethernet header only */
	FZ_FRAME_TCP4,
	FZ_FRAME_UDP4,
	FZ_FRAME_TCP6,
	FZ_FRAME_UDP6,
	FZ_FRAME_KINDS
};

/*
 * Writes well-formed Ethernet, IP and TCP/UDP headers of @kind for a frame of
 * @frame_len bytes into @hdr (room for FZ_HDR_MAX), the L4 checksum field
 * holding the pseudo-header sum as DPDK's TX offload requests want it (for
 * @tso without the L4 length). Returns the length written; @l3_len and
 * @l4_len receive the layer lengths.
 */
#define FZ_HDR_MAX 128
uint32_t fz_frame_headers(uint8_t *hdr, enum fz_l4 kind, uint32_t frame_len, bool tso,
			  uint16_t *l3_len, uint16_t *l4_len);

/* A frame as an application hands it to vhu_enqueue_burst(). */
struct fz_frame {
	struct rte_mbuf *m;
	/* Segments from here to the end are held by someone else too (refcnt 2), or NULL. */
	struct rte_mbuf *shared;
	bool tso;		/* TCP segmentation requested */
};

/*
 * Reads a frame from the input: length, segment size, headers and offload
 * requests (checksum, TSO, IPv4 header checksum), sometimes held in part or
 * whole by someone else. False when the pool is empty.
 */
bool fz_read_frame(struct fz_reader *r, struct fz_frame *f);

/* A digest of the frame's bytes, to see whether something wrote into it. */
uint64_t fz_frame_digest(const struct rte_mbuf *m);

/* Sum of the reference counts of the frame's segments. */
uint32_t fz_frame_refs(const struct rte_mbuf *m);

/* Drops the harness's references (and the other holder's) to the frame. */
void fz_frame_free(struct fz_frame *f);

/* ---- the port ---- */

/* Queue pairs of the port: 2, so that ring indices 2 and 3 exist (and 4 does not). */
#define FZ_QUEUE_PAIRS 2

/*
 * The port an input uses. Two are created once, one copying every frame and
 * one handing big guest frames out zero-copy (VHU_ZC_MIN_THRESHOLD); each
 * listens on a socket in a private directory that nobody connects to, and
 * the harness hands messages to the dispatcher itself, as the control
 * thread would.
 */
struct vhu_port *fz_port(void);

/* Chooses the port for the next input; call before fz_input_begin(). */
void fz_use_port(bool zero_copy);

/* A message with the version and NEED_REPLY flags, no payload bytes, no fds. */
void fz_msg_init(struct vhu_msg *m, uint32_t request, uint32_t size);

/*
 * Hands @m to vhu_session_handle() under the control lock, then checks the
 * answer (a reply fits, fds taken), guards a new memory table and checks the
 * ring states reported to the port's owner. VHU_DISPATCH_CLOSE disconnects,
 * as the socket layer does.
 */
enum vhu_dispatch fz_send(struct vhu_msg *m);

/* Sends @m and returns its reply-ack (0 done, 1 refused), -1 without one. */
int fz_send_ack(struct vhu_msg *m);

/* The front end hangs up: vhu_session_end() and the session checks. */
void fz_disconnect(void);

/* ---- bursts ---- */

/* Most mbufs one harness burst passes. */
#define FZ_BURST_MAX 32

/*
 * One byte of input: 0 to FZ_BURST_MAX, a dequeue burst of up to that many,
 * its mbufs freed at once; 128 and above, a burst of up to the low 6 bits
 * whose mbufs the harness keeps (zero-copy ones hold guest memory and their
 * chains), until released or the end of the input, after the disconnect;
 * in between, releases 1 + (low 3 bits) kept mbufs, each picked by a byte.
 * Every mbuf returned is checked, and the ring's counters and indices.
 */
void fz_dequeue(struct vhu_vring *vr, struct fz_reader *r);

/* Receive offloads (VHU_RX_OFFLOAD_*) the input picks from byte @b. */
static inline uint32_t
fz_rx_offloads(uint8_t b)
{
	return b & (VHU_RX_OFFLOAD_CKSUM | VHU_RX_OFFLOAD_LRO | VHU_RX_OFFLOAD_LEGACY |
		    VHU_RX_OFFLOAD_SCATTER);
}

/*
 * An enqueue burst of frames read from the input (fz_read_frame): checks the
 * count consumed, the counters and indices, then frees every frame.
 */
void fz_enqueue(struct vhu_vring *vr, struct fz_reader *r);

#endif /* VHU_FUZZ_COMMON_H */
