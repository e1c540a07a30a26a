/* SPDX-License-Identifier: BSD-3-Clause */
#include "fuzz_ring.h"

#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "virtio_defs.h"

/* Front-end addresses are non-canonical: used untranslated, they fault at once. */
#define FE_BASE		UINT64_C(0x8000123400000000)

static const struct vhu_mem_region_desc regions[FZ_REGIONS] = {
	{ .guest_phys_addr = 0x00000, .size = FZ_MEM0_SIZE, .frontend_addr = FE_BASE },
	{ .guest_phys_addr = FZ_MEM0_SIZE, .size = 0x1000, .frontend_addr = FE_BASE + 0x100000 },
	{ .guest_phys_addr = 0x20000, .size = 0x1000, .frontend_addr = FE_BASE + 0x200000,
	  .mmap_offset = 0x1000 },
};

/* Configuration bit i of the input turns on feature feature_bits[i]. */
static const uint8_t feature_bits[] = {
	VIRTIO_NET_F_MRG_RXBUF,
	VIRTIO_RING_F_EVENT_IDX,
	VIRTIO_F_IN_ORDER,
	VIRTIO_RING_F_INDIRECT_DESC,
	VIRTIO_F_VERSION_1,
	VIRTIO_NET_F_CSUM,
	VIRTIO_NET_F_GUEST_CSUM,
	VIRTIO_NET_F_GUEST_TSO4,
	VIRTIO_NET_F_GUEST_TSO6,
	VIRTIO_NET_F_HOST_TSO4,
	VIRTIO_NET_F_HOST_TSO6,
	VHOST_USER_F_PROTOCOL_FEATURES,	/* rings then wait for SET_VRING_ENABLE */
	VHOST_F_LOG_ALL,		/* with a dirty log and used-ring logging */
};
/* Configuration bits after the features. */
#define CFG_CALLFD	(1u << RTE_DIM(feature_bits))	/* the ring gets a call fd */
#define CFG_BASE	(CFG_CALLFD << 1)		/* packed: SET_VRING_BASE sent */
#define CFG_ZERO_COPY	(CFG_BASE << 1)			/* the zero-copy port (fz_use_port) */

/* Operations every layout has; the layout's own follow. */
enum {
	OP_WRITE,	/* raw bytes into guest memory */
	OP_DEQUEUE,
	OP_ENQUEUE,
	OP_CONTROL,	/* a control message while the ring runs */
	OP_COMMON
};

/* Control messages of OP_CONTROL. */
enum {
	CTL_RESTART,	/* GET_VRING_BASE, then SET_VRING_KICK */
	CTL_ENABLE,
	CTL_MEM_TABLE,	/* the same memory again: a new table swapped in */
	CTL_NUM,
	CTL_BASE,
	CTL_FEATURES,
	CTL_RARP,
	CTL_CALL,
	CTL_COUNT
};

void *
fz_ring_guest(struct fz_ring *g, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < FZ_REGIONS; i++)
		if (vhu_range_inside(gpa, len, regions[i].guest_phys_addr, regions[i].size))
			return g->view[i] + (gpa - regions[i].guest_phys_addr);
	return NULL;
}

void
fz_ring_read_desc(struct fz_ring *g, struct fz_reader *r, struct fz_post_desc *d)
{
	d->addr = fz_u64(r);
	d->len = fz_u32(r);
	d->how = fz_u8(r);
	if (d->how & FZ_POST_BYTES) {
		/* Contents first: a virtio-net header and a frame, or anything. */
		uint8_t bytes[255];
		size_t n = fz_bytes(r, bytes, fz_u8(r));
		void *dst = fz_ring_guest(g, d->addr, n);

		if (dst != NULL)
			memcpy(dst, bytes, n);
	}
}

/* ---- control messages ---- */

static uint64_t
features_of(uint32_t cfg, bool packed)
{
	uint64_t f = packed ? VHU_BIT(VIRTIO_F_RING_PACKED) : 0;

	for (unsigned int i = 0; i < RTE_DIM(feature_bits); i++)
		if (cfg & (1u << i))
			f |= VHU_BIT(feature_bits[i]);
	return f;
}

static void
send_u64(uint32_t request, uint64_t v)
{
	struct vhu_msg m;

	fz_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = v;
	fz_send(&m);
}

static void
send_state(uint32_t request, uint32_t num)
{
	struct vhu_msg m;

	fz_msg_init(&m, request, sizeof(struct vhu_vring_state));
	m.payload.state.index = FZ_RING_INDEX;
	m.payload.state.num = num;
	fz_send(&m);
}

/* KICK or CALL with @fd (given away), or with the no-fd bit when @fd < 0. */
static void
send_ring_fd(uint32_t request, int fd)
{
	struct vhu_msg m;

	fz_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = FZ_RING_INDEX;
	if (fd < 0) {
		m.payload.u64 |= VHOST_USER_VRING_NOFD;
	} else {
		m.fds[0] = fd;
		m.nfds = 1;
	}
	fz_send(&m);
}

static void
send_mem_table(struct fz_ring *g)
{
	struct vhu_msg m;

	fz_msg_init(&m, VHOST_USER_SET_MEM_TABLE,
		    offsetof(struct vhu_memory, regions) + sizeof(regions));
	m.payload.memory.nregions = FZ_REGIONS;
	memcpy(m.payload.memory.regions, regions, sizeof(regions));
	for (int i = 0; i < FZ_REGIONS; i++)
		m.fds[i] = fz_dup(g->fd[i]);
	m.nfds = FZ_REGIONS;
	fz_send(&m);
}

static void
send_log_base(void)
{
	/* One page of bitmap covers 128 MiB of guest memory, far more than ours. */
	const uint64_t log_size = 4096;
	int fd = fz_memfd(log_size);
	struct vhu_msg m;

	fz_msg_init(&m, VHOST_USER_SET_LOG_BASE, sizeof(struct vhu_log_base));
	m.payload.log.mmap_size = log_size;
	m.payload.log.mmap_offset = 0;
	m.fds[0] = fd;
	m.nfds = 1;
	fz_send(&m);
}

static void
send_addr(uint64_t log_gpa, bool log)
{
	struct vhu_msg m;

	fz_msg_init(&m, VHOST_USER_SET_VRING_ADDR, sizeof(struct vhu_vring_addr));
	m.payload.addr.index = FZ_RING_INDEX;
	m.payload.addr.flags = log ? VHOST_VRING_F_LOG : 0;
	m.payload.addr.desc_user_addr = FE_BASE + FZ_DESC_OFF;
	m.payload.addr.avail_user_addr = FE_BASE + FZ_AVAIL_OFF;
	m.payload.addr.used_user_addr = FE_BASE + FZ_USED_OFF;
	m.payload.addr.log_guest_addr = log_gpa;
	fz_send(&m);
}

/* A ring size from the input: a power of two for split rings, any size for packed ones. */
static uint32_t
ring_size(uint16_t v, bool packed)
{
	return packed ? 1u + v % FZ_RING_MAX : 1u << (v % 11);
}

/*
 * The set-up a front end sends, in QEMU's order. Configuration: features
 * and options (u16), ring size (u16), base (u16), the used index the guest
 * memory holds at the start (u16, split), the guest address of the used-ring
 * log (u32).
 */
static void
ring_setup(struct fz_ring *g, const struct fz_layout *l, struct fz_reader *r)
{
	uint32_t cfg = fz_u16(r);
	uint16_t size = fz_u16(r);
	uint16_t base = fz_u16(r);
	uint16_t used_idx = fz_u16(r);
	uint32_t log_gpa = fz_u32(r);

	/* The zero-copy port does not offer IN_ORDER. */
	g->features = features_of(cfg, l->packed) & fz_port()->session.offered_features;
	g->size = ring_size(size, l->packed);
	if (l->packed) {
		/* Without a base a packed ring starts at slot 0 with wrap counters 1. */
		g->next = (cfg & CFG_BASE) ? base & 0x7fff : 0;
		g->wrap = !(cfg & CFG_BASE) || (base >> 15);
	} else {
		struct vring_used *used = fz_ring_area(g, FZ_USED_OFF);

		/* A split ring starts where the used index in guest memory says. */
		used->idx = used_idx;
		((struct vring_avail *)fz_ring_area(g, FZ_AVAIL_OFF))->idx = used_idx;
		g->next = used_idx;
	}
	send_u64(VHOST_USER_SET_PROTOCOL_FEATURES,
		 VHU_BIT(VHOST_USER_PROTOCOL_F_MQ) | VHU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) |
		 VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK));
	send_u64(VHOST_USER_SET_FEATURES, g->features);
	send_mem_table(g);
	if (g->features & VHU_BIT(VHOST_F_LOG_ALL))
		send_log_base();
	send_state(VHOST_USER_SET_VRING_NUM, g->size);
	if (!l->packed || (cfg & CFG_BASE))
		send_state(VHOST_USER_SET_VRING_BASE, base);
	send_addr(log_gpa, (g->features & VHU_BIT(VHOST_F_LOG_ALL)) != 0);
	send_ring_fd(VHOST_USER_SET_VRING_CALL, (cfg & CFG_CALLFD) ? fz_dup(g->callfd) : -1);
	send_ring_fd(VHOST_USER_SET_VRING_KICK, fz_eventfd());
	if (g->features & VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES))
		send_state(VHOST_USER_SET_VRING_ENABLE, 1);
}

static void
control(struct fz_ring *g, const struct fz_layout *l, struct fz_reader *r)
{
	struct vhu_msg m;

	switch (fz_u8(r) % CTL_COUNT) {
	case CTL_RESTART:
		fz_msg_init(&m, VHOST_USER_GET_VRING_BASE, sizeof(struct vhu_vring_state));
		m.payload.state.index = FZ_RING_INDEX;
		fz_send(&m);
		send_ring_fd(VHOST_USER_SET_VRING_KICK, fz_eventfd());
		break;
	case CTL_ENABLE:
		send_state(VHOST_USER_SET_VRING_ENABLE, fz_u8(r) & 1);
		break;
	case CTL_MEM_TABLE:
		send_mem_table(g);
		break;
	case CTL_NUM: {
		uint32_t size = ring_size(fz_u16(r), l->packed);

		send_state(VHOST_USER_SET_VRING_NUM, size);
		if (g->vr->size == size)
			g->size = size;
		break;
	}
	case CTL_BASE:
		send_state(VHOST_USER_SET_VRING_BASE, fz_u16(r));
		break;
	case CTL_FEATURES:
		send_u64(VHOST_USER_SET_FEATURES, features_of(fz_u16(r), l->packed));
		break;
	case CTL_RARP:
		send_u64(VHOST_USER_SEND_RARP, fz_u64(r));
		break;
	case CTL_CALL:
		send_ring_fd(VHOST_USER_SET_VRING_CALL, (fz_u8(r) & 1) ? fz_dup(g->callfd) : -1);
		break;
	}
}

/* ---- bursts, with the layout's checks ---- */

static void
burst(struct fz_ring *g, const struct fz_layout *l, bool rx, struct fz_reader *r)
{
	const struct fz_ring_mark before = {
		.used_idx = g->vr->last_used_idx,
		.used_wrap = g->vr->packed.used_wrap,
	};
	bool ready = g->vr->ready && !g->vr->broken;

	if (rx)
		fz_enqueue(g->vr, r);
	else
		fz_dequeue(g->vr, r);
	if (ready && (g->vr->last_used_idx != before.used_idx ||
		      g->vr->packed.used_wrap != before.used_wrap))
		l->check_used(g, &before, rx);
}

/* ---- one input ---- */

/*
 * The guest's memory files, mappings and call fd live as long as the
 * process (creating and unmapping them for every input would cost more than
 * the input); every input starts them zeroed.
 */
static void
guest_create(struct fz_ring *g)
{
	static struct {
		bool done;
		int fd[FZ_REGIONS];
		uint8_t *view[FZ_REGIONS];
		int callfd;
	} mem;
	eventfd_t stale;

	if (!mem.done) {
		for (int i = 0; i < FZ_REGIONS; i++) {
			size_t len = regions[i].mmap_offset + regions[i].size;
			uint8_t *p;

			mem.fd[i] = fz_memfd(len);
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mem.fd[i], 0);
			if (p == MAP_FAILED) {
				perror("mmap");
				abort();
			}
			mem.view[i] = p + regions[i].mmap_offset;
		}
		mem.callfd = fz_eventfd();
		mem.done = true;
	}
	memset(g, 0, sizeof(*g));
	for (int i = 0; i < FZ_REGIONS; i++) {
		g->fd[i] = mem.fd[i];
		g->view[i] = mem.view[i];
		memset(g->view[i], 0, regions[i].size);
	}
	g->callfd = mem.callfd;
	eventfd_read(g->callfd, &stale);
	g->vr = vhu_port_vring(fz_port(), FZ_RING_INDEX);
	g->calls_before = vhu_vring_stats(g->vr)->notifications;
}

/* Every call the ring counted reached the guest, and no other. */
static void
check_calls(struct fz_ring *g)
{
	eventfd_t calls = 0;

	eventfd_read(g->callfd, &calls);
	FZ_CHECK(calls == vhu_vring_stats(g->vr)->notifications - g->calls_before,
		 "the guest got %" PRIu64 " calls, the ring counted %" PRIu64, (uint64_t)calls,
		 vhu_vring_stats(g->vr)->notifications - g->calls_before);
}

void
fz_ring_run(const struct fz_layout *l, const uint8_t *data, size_t size)
{
	struct fz_reader r = { .p = data, .left = size };
	struct fz_ring g;

	/* The configuration's first u16, read again by ring_setup(). */
	fz_use_port(size >= 2 && ((data[0] | data[1] << 8) & CFG_ZERO_COPY));
	guest_create(&g);
	fz_input_begin();
	ring_setup(&g, l, &r);
	while (fz_more(&r)) {
		unsigned int op = fz_u8(&r) % (OP_COMMON + l->nops);

		switch (op) {
		case OP_WRITE: {
			uint64_t gpa = fz_u32(&r);
			uint8_t bytes[255];
			size_t n = fz_bytes(&r, bytes, fz_u8(&r));
			void *dst = fz_ring_guest(&g, gpa, n);

			if (dst != NULL)
				memcpy(dst, bytes, n);
			break;
		}
		case OP_DEQUEUE:
		case OP_ENQUEUE:
			burst(&g, l, op == OP_ENQUEUE, &r);
			break;
		case OP_CONTROL:
			control(&g, l, &r);
			break;
		default:
			l->op(&g, op - OP_COMMON, &r);
			break;
		}
	}
	check_calls(&g);
	fz_input_end();
}
