/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: vhost-user messages (message.c validation, session.c
 * handlers, memory.c and dirty_log.c mapping), in sequences, with bursts on
 * whatever rings they leave behind.
 *
 * An input is a sequence of operations, one byte each choosing what follows:
 * - a message as on the wire: header (request, flags, size: u32 each), an
 *   fd count (u8; more than VHU_MSG_MAX_FDS hangs up, as the socket layer
 *   does) and one byte per fd choosing one of four guest memory files, a
 *   new eventfd or one end of a new socketpair (the back end's request
 *   channel of SET_BACKEND_REQ_FD: the harness reads the other end), then
 *   the payload (size bytes; a size over VHU_MSG_MAX_PAYLOAD hangs up);
 * - bytes written into a guest memory file (file u8, offset u32, count u8,
 *   bytes): ring contents for the bursts;
 * - a burst on a ring (ring u8, then a dequeue byte, fz_dequeue, or enqueue
 *   frames; the ring's neighbour in its pair when it goes the other way);
 * - a hang-up (vhu_session_end);
 * - a guest memory file truncated (file u8, new size u32) under the
 *   library's mappings: its SIGBUS guard must stand a zero page in for what
 *   is gone and flag the session, which is then closed as the control
 *   thread would.
 * A first byte of 128 or more runs the input on the zero-copy port.
 * Messages go to the dispatcher as the control thread hands them over
 * (fz_send, which checks replies, fds and what the port's owner was told).
 * A disconnect at the end checks that the session left nothing behind.
 * After each operation, what the library sent on request channels is read:
 * only well-formed IOTLB misses may be there.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "iotlb.h"

enum {
	OP_MESSAGE,	/* 0..4: messages are most of it */
	OP_POKE = 5,
	OP_BURST,
	OP_HANG_UP,
	OP_TRUNCATE,
	OP_COUNT
};

/* Guest memory files an input may pass, created when first used. */
#define FILES 4
static const uint64_t file_size[FILES] = { 0x10000, 0x10000, 0x2000, 0x100000 };
/* fd kinds after the files */
#define FD_EVENT FILES
#define FD_CHANNEL (FILES + 1)
#define FD_KINDS (FILES + 2)
/* Request channels an input may hand over; an eventfd goes instead beyond. */
#define CHANNELS 8

struct files {
	int fd[FILES];
	int chan[CHANNELS];	/* our ends of the socketpairs handed over */
	bool request_channel[CHANNELS];	/* ... with SET_BACKEND_REQ_FD (others: kick fds...) */
	unsigned int nchan;
};

/* A new request channel: the library's end, ours kept to read. */
static int
channel(struct files *f, uint32_t request)
{
	int sv[2];

	if (f->nchan == CHANNELS)
		return fz_eventfd();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	f->request_channel[f->nchan] = request == VHOST_USER_SET_BACKEND_REQ_FD;
	f->chan[f->nchan++] = sv[0];
	return sv[1];
}

/*
 * What the library sent on its request channels: IOTLB misses only, each
 * whole, as QEMU's vhost_backend_handle_iotlb_msg() reads them. A socket
 * given for another fd (a call fd gets 8-byte counter writes) is drained.
 */
static void
read_channels(struct files *f)
{
	for (unsigned int i = 0; i < f->nchan; i++) {
		struct {
			struct vhu_msg_hdr hdr;
			struct vhu_iotlb_msg iotlb;
		} __attribute__((packed)) m;
		ssize_t n;

		while ((n = recv(f->chan[i], &m, sizeof(m), MSG_DONTWAIT)) > 0) {
			if (!f->request_channel[i])
				continue;
			FZ_CHECK(n == (ssize_t)sizeof(m), "a request of %zd bytes, %zu expected", n,
				 sizeof(m));
			FZ_CHECK(m.hdr.request == VHOST_USER_BACKEND_IOTLB_MSG &&
				 m.hdr.flags == VHOST_USER_VERSION &&
				 m.hdr.size == sizeof(struct vhu_iotlb_msg),
				 "request %u flags 0x%x size %u on the request channel",
				 m.hdr.request, m.hdr.flags, m.hdr.size);
			FZ_CHECK(m.iotlb.type == VHU_IOTLB_MSG_MISS && m.iotlb.size == 0 &&
				 m.iotlb.uaddr == 0 && m.iotlb.perm >= VHU_IOTLB_RO &&
				 m.iotlb.perm <= VHU_IOTLB_RW,
				 "IOTLB message type %u size 0x%" PRIx64 " uaddr 0x%" PRIx64
				 " perm %u: not a miss", m.iotlb.type, m.iotlb.size, m.iotlb.uaddr,
				 m.iotlb.perm);
		}
		FZ_CHECK(n == 0 || errno == EAGAIN, "request channel: %s", strerror(errno));
	}
}

static int
file(struct files *f, unsigned int i)
{
	if (f->fd[i] < 0)
		f->fd[i] = fz_memfd(file_size[i]);
	return f->fd[i];
}

static void
message(struct files *f, struct fz_reader *r)
{
	struct vhu_msg m;
	uint32_t nfds;

	fz_msg_init(&m, fz_u32(r), 0);
	m.hdr.flags = fz_u32(r);
	m.hdr.size = fz_u32(r);
	nfds = fz_u8(r);
	if (nfds > VHU_MSG_MAX_FDS || m.hdr.size > VHU_MSG_MAX_PAYLOAD) {
		/* Refused by the socket layer before any validation: it hangs up. */
		fz_disconnect();
		return;
	}
	for (m.nfds = 0; m.nfds < nfds; m.nfds++) {
		uint8_t kind = fz_u8(r) % FD_KINDS;

		m.fds[m.nfds] = kind < FILES ? fz_dup(file(f, kind)) :
				kind == FD_EVENT ? fz_eventfd() : channel(f, m.hdr.request);
	}
	fz_bytes(r, m.payload.raw, m.hdr.size);
	fz_send(&m);
}

static void
poke(struct files *f, struct fz_reader *r)
{
	unsigned int i = fz_u8(r) % FILES;
	uint64_t off = fz_u32(r) % file_size[i];
	uint8_t bytes[255];
	size_t n = fz_bytes(r, bytes, fz_u8(r));

	n = RTE_MIN(n, (size_t)(file_size[i] - off));
	if (pwrite(file(f, i), bytes, n, (off_t)off) != (ssize_t)n)
		abort();
}

static void
truncate_file(struct files *f, struct fz_reader *r)
{
	unsigned int i = fz_u8(r) % FILES;

	if (ftruncate(file(f, i), (off_t)(fz_u32(r) % file_size[i])) < 0)
		abort();
}

static void
burst(struct fz_reader *r)
{
	struct vhu_port *p = fz_port();
	uint16_t index = (uint16_t)(fz_u8(r) % p->session.nrings);
	bool enqueue = fz_u8(r) & 1;
	struct vhu_vring *vr;

	/*
	 * As vhu.h has it, and the PMD does: enqueue into guest RX rings (even),
	 * dequeue from guest TX rings (odd). A ring's waiting frames mean one
	 * thing or the other by its direction (frames held for a translation,
	 * segments of a frame cut on receive): a burst the other way would mix
	 * them up.
	 */
	if ((index & 1) == enqueue)
		index ^= 1;
	vr = vhu_port_vring(p, index);
	if (enqueue)
		fz_enqueue(vr, r);
	else
		fz_dequeue(vr, r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_reader r = { .p = data, .left = size };
	struct files f;

	/* A first byte of 128 or more: the zero-copy port (the operation is the byte's remainder). */
	fz_use_port(size > 0 && data[0] >= 0x80);
	fz_input_begin();
	for (int i = 0; i < FILES; i++)
		f.fd[i] = -1;
	f.nchan = 0;
	while (fz_more(&r)) {
		switch (fz_u8(&r) % OP_COUNT) {
		case OP_POKE:
			poke(&f, &r);
			break;
		case OP_BURST:
			burst(&r);
			break;
		case OP_HANG_UP:
			fz_disconnect();
			break;
		case OP_TRUNCATE:
			truncate_file(&f, &r);
			break;
		default:
			message(&f, &r);
			break;
		}
		/* socket.c closes a session whose memory was taken away. */
		if (vhu_session_memory_lost(&fz_port()->session) != NULL)
			fz_disconnect();
		read_channels(&f);
	}
	for (int i = 0; i < FILES; i++)
		if (f.fd[i] >= 0)
			close(f.fd[i]);
	/* ours go before the fds are counted; the library's go with the session */
	for (unsigned int i = 0; i < f.nchan; i++)
		close(f.chan[i]);
	fz_input_end();
	return 0;
}
