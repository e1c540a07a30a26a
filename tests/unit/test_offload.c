/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the offload contract between virtio-net headers and mbufs
 * (netoffload.c), of software segmentation both ways (segment.c) and of the
 * checksums finished in software (checksum.h), on frames built by hand.
 *
 * The ring under test is a struct vhu_vring from vhu_vring_ctl_init() whose
 * negotiated features and receive offloads are set directly: all the
 * header conversion looks at. No guest memory; the scenarios through a
 * ring are in test_virtqueue.c.
 *
 * Expected checksums are computed here, on contiguous copies, by this
 * file's own one's-complement code: the library's checksum over mbuf chains
 * is what is under test. Frames from a guest come in odd-sized segments,
 * headers split over the first two, as a chain walk must cope with them.
 *
 * Tests named test_bug_* pin defects (fixed; see the comment on each): each
 * fails with its fix reverted.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "netoffload.h"
#include "segment.h"
#include "virtio_defs.h"
#include "vring.h"
#include "vring_ctl.h"

#include "check.h"
#include "guest_fixture.h"

#define HOST_TSO4	VHU_BIT(VIRTIO_NET_F_HOST_TSO4)
#define HOST_TSO6	VHU_BIT(VIRTIO_NET_F_HOST_TSO6)
#define HOST_UFO	VHU_BIT(VIRTIO_NET_F_HOST_UFO)
#define HOST_ECN	VHU_BIT(VIRTIO_NET_F_HOST_ECN)
#define GUEST_CSUM	VHU_BIT(VIRTIO_NET_F_GUEST_CSUM)
#define GUEST_TSO4	VHU_BIT(VIRTIO_NET_F_GUEST_TSO4)

#define RX_CKSUM	VHU_RX_OFFLOAD_CKSUM
#define RX_LRO		VHU_RX_OFFLOAD_LRO
#define RX_LEGACY	VHU_RX_OFFLOAD_LEGACY

/* What an application may ask of a frame it sends (enqueue.c's list). */
#define TX_REQUESTS (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG | RTE_MBUF_F_TX_L4_MASK | \
		     RTE_MBUF_F_TX_IP_CKSUM)

/* Where IP starts in every frame here (Ethernet without VLAN), and header values. */
#define L3		RTE_ETHER_HDR_LEN
#define IP4_ID		0x1234
#define TCP_SEQ		0xfffff000u	/* wraps within a 64 KiB frame */
#define TCP_FIN		0x01
#define TCP_PSH		0x08
#define TCP_ACK		0x10
#define TCP_CWR		0x80
#define VXLAN_PORT	4789
#define FRAME_MAX	(VHU_MAX_FRAME_LEN + 64)

static struct vhu_vring vr;		/* the ring under test: ring_init() starts it afresh */
static uint8_t frame[FRAME_MAX];	/* the frame a test builds */
static uint8_t flat[FRAME_MAX];	/* an mbuf read back */

static void
teardown(void)
{
	free_tracked();
	/* every mbuf the library allocated went back to its pool */
	EXPECT(pools_full());
}

static void
ring_init(uint64_t features, uint32_t rx_offloads)
{
	vhu_vring_ctl_init(&vr, 1, "unit", SOCKET_ID_ANY, 0, &gso);
	vr.neg.features = features;
	vr.rx_offloads = rx_offloads;
}

/* ==================================================================== */
/* frames and checksums, independently of the library                  */
/* ==================================================================== */

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* The one's-complement sum of @n bytes as big-endian 16-bit words, added to @sum. */
static uint32_t
sum16(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t
fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * The pseudo-header sum (folded, not complemented) of an @l4_len-byte L4
 * segment after the IP header at @ip: with @l4_len 0, DPDK's TSO convention.
 */
static uint16_t
pseudo(const uint8_t *ip, bool v6, uint8_t proto, uint32_t l4_len)
{
	uint32_t s = v6 ? sum16(ip + 8, 32, 0) : sum16(ip + 12, 8, 0);

	return fold(s + proto + (l4_len >> 16) + (l4_len & 0xffff));
}

/* The IPv4 header at @ip, options included, has a right checksum. */
static bool
ipv4_ok(const uint8_t *ip)
{
	return fold(sum16(ip, (ip[0] & 0xfu) * 4u, 0)) == 0xffff;
}

/* The @l4_len-byte TCP or UDP segment at @l4 has a right checksum (a UDP 0 is none: wrong here). */
static bool
l4_ok(const uint8_t *ip, bool v6, uint8_t proto, const uint8_t *l4, uint32_t l4_len)
{
	if (proto == IPPROTO_UDP && get16(l4 + 6) == 0)
		return false;
	return fold(pseudo(ip, v6, proto, l4_len) + sum16(l4, l4_len, 0)) == 0xffff;
}

/* What a frame is made of. */
struct spec {
	bool v6;
	uint8_t proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	uint8_t ip_opts;	/* IPv4 option bytes: 0, or a multiple of 4 from 8 to 40 */
	uint8_t tcp_flags;
	uint32_t payload;
};

/* Where its parts lie. */
struct layout {
	uint32_t l3_len;
	uint32_t l4;		/* offset of the TCP or UDP header */
	uint32_t data;		/* offset of the payload */
	uint32_t len;		/* of the frame */
};

/* The payload byte at @i, in every frame built here. */
static uint8_t
payload_byte(uint32_t i)
{
	return (uint8_t)(i * 7 + (i >> 8) + 1);
}

/*
 * Builds the frame @sp at @f: every length right, the IPv4 header checksum
 * right, the L4 checksum field 0 (the caller fills it in as the test needs).
 */
static struct layout
build(uint8_t *f, const struct spec *sp)
{
	static const uint8_t macs[12] = {
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef,
	};
	struct layout lo;
	uint8_t *ip = f + L3, *l4;

	lo.l3_len = sp->v6 ? 40u : 20u + sp->ip_opts;
	lo.l4 = L3 + lo.l3_len;
	lo.data = lo.l4 + (sp->proto == IPPROTO_TCP ? 20u : 8u);
	lo.len = lo.data + sp->payload;
	memcpy(f, macs, sizeof(macs));
	put16(f + 12, sp->v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, lo.l3_len);
	if (sp->v6) {
		static const uint8_t addrs[32] = {
			0x20, 0x01, 0x0d, 0xb8, [15] = 1, 0x20, 0x01, 0x0d, 0xb8, [31] = 2,
		};

		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)(lo.len - lo.l4));
		ip[6] = sp->proto;
		ip[7] = 64;
		memcpy(ip + 8, addrs, sizeof(addrs));
	} else {
		ip[0] = (uint8_t)(0x45 + sp->ip_opts / 4);
		put16(ip + 2, (uint16_t)(lo.len - L3));
		put16(ip + 4, IP4_ID);
		put16(ip + 6, 0x4000);			/* DF */
		ip[8] = 64;
		ip[9] = sp->proto;
		put32(ip + 12, 0x0a000001);
		put32(ip + 16, 0x0a000002);
		if (sp->ip_opts > 0) {
			/* Record Route, its addresses filled in, then End of Options */
			ip[20] = 7;
			ip[21] = (uint8_t)(sp->ip_opts - 1);
			ip[22] = (uint8_t)(sp->ip_opts - 1);
			for (uint32_t i = 23; i < 20u + sp->ip_opts - 1; i++)
				ip[i] = (uint8_t)(0xc0 + i * 3);
		}
		put16(ip + 10, (uint16_t)~fold(sum16(ip, lo.l3_len, 0)));
	}
	l4 = f + lo.l4;
	memset(l4, 0, lo.data - lo.l4);
	put16(l4, 40000);
	if (sp->proto == IPPROTO_TCP) {
		put16(l4 + 2, 80);
		put32(l4 + 4, TCP_SEQ);
		put32(l4 + 8, 0x0a0b0c0d);
		l4[12] = 5 << 4;
		l4[13] = sp->tcp_flags;
		put16(l4 + 14, 0xffff);
	} else {
		put16(l4 + 2, 9);
		put16(l4 + 4, (uint16_t)(lo.len - lo.l4));
	}
	for (uint32_t i = 0; i < sp->payload; i++)
		f[lo.data + i] = payload_byte(i);
	return lo;
}

/* Where the L4 checksum field of frame @lo lies. */
static uint32_t
csum_field(const struct spec *sp, const struct layout *lo)
{
	return lo->l4 + (sp->proto == IPPROTO_TCP ? VHU_TCP_CSUM_OFFSET : VHU_UDP_CSUM_OFFSET);
}

/* The pseudo-header sum a partial checksum holds, with the L4 length (virtio, Linux). */
static uint16_t
partial_sum(const uint8_t *f, const struct spec *sp, const struct layout *lo)
{
	return pseudo(f + L3, sp->v6, sp->proto, lo->len - lo->l4);
}

/* The complete L4 checksum of frame @f, whatever its field holds now. */
static uint16_t
complete_sum(const uint8_t *f, const struct spec *sp, const struct layout *lo)
{
	uint32_t field = csum_field(sp, lo);
	uint32_t s = pseudo(f + L3, sp->v6, sp->proto, lo->len - lo->l4);

	s = sum16(f + lo->l4, field - lo->l4, s);
	s = sum16(f + field + 2, lo->len - field - 2, s);
	return (uint16_t)~fold(s);
}

/*
 * Rewrites the two payload bytes at @at (an even distance from the L4
 * header) so that the complete L4 checksum of frame @f comes out as 0.
 */
static void
force_zero_checksum(uint8_t *f, const struct spec *sp, const struct layout *lo, uint32_t at)
{
	put16(f + at, 0);
	/*
	 * complete_sum() is ~T for the sum T without those two bytes: as a
	 * word, ~T brings the sum to 0xffff, whose complement is 0.
	 */
	put16(f + at, complete_sum(f, sp, lo));
}

/*
 * @len bytes at @f in a tracked chain from the test pool: a first segment
 * of @first bytes, then segments of @rest.
 */
static struct rte_mbuf *
chop(const uint8_t *f, uint32_t len, uint32_t first, uint32_t rest)
{
	uint32_t lens[128];
	unsigned int n = 0;

	for (uint32_t pos = 0; pos < len; n++) {
		if (n == RTE_DIM(lens)) {
			fprintf(stderr, "chop: test bug (%u bytes in segments of %u)\n", len, rest);
			exit(2);
		}
		lens[n] = RTE_MIN(len - pos, n == 0 ? first : rest);
		pos += lens[n];
	}
	return mk_mbuf(f, lens, n);
}

/* The bytes of @m, contiguous, in flat[]. */
static const uint8_t *
read_back(const struct rte_mbuf *m)
{
	uint32_t pos = 0;

	for (; m != NULL; m = m->next) {
		memcpy(flat + pos, rte_pktmbuf_mtod(m, const void *), m->data_len);
		pos += m->data_len;
	}
	return flat;
}

/* Two bytes at @off of @m, as a big-endian number. */
static uint16_t
mbuf_get16(const struct rte_mbuf *m, uint32_t off)
{
	uint8_t b[2];
	const uint8_t *p = rte_pktmbuf_read(m, off, 2, b);

	return p == NULL ? 0 : get16(p);
}

/* The header a guest sends with frame @sp (@lo): NEEDS_CSUM at its L4, GSO as asked. */
static struct virtio_net_hdr
guest_hdr(const struct spec *sp, const struct layout *lo, uint8_t gso_type, uint16_t gso_size)
{
	return (struct virtio_net_hdr){
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = gso_type,
		.gso_size = gso_size,
		.hdr_len = gso_type == VIRTIO_NET_HDR_GSO_NONE ? 0 : (uint16_t)lo->data,
		.csum_start = (uint16_t)lo->l4,
		.csum_offset = sp->proto == IPPROTO_TCP ? VHU_TCP_CSUM_OFFSET : VHU_UDP_CSUM_OFFSET,
	};
}

/* frame[] from a guest, in segments of 40 (inside the TCP or UDP header) then 1001 bytes. */
static struct rte_mbuf *
guest_mbuf(uint32_t len)
{
	return chop(frame, len, 40, 1001);
}

/*
 * A frame from a guest: @sp built in frame[] (*@lo), its L4 checksum left
 * partial as NEEDS_CSUM has it, GSO @gso_type of @gso_size asked in @h.
 */
static struct rte_mbuf *
guest_frame(const struct spec *sp, struct layout *lo, uint8_t gso_type, uint16_t gso_size,
	    struct virtio_net_hdr *h)
{
	*lo = build(frame, sp);
	put16(frame + csum_field(sp, lo), partial_sum(frame, sp, lo));
	*h = guest_hdr(sp, lo, gso_type, gso_size);
	return guest_mbuf(lo->len);
}

/*
 * A frame from an application, built in frame[]: @sp with the L4 checksum
 * field as DPDK wants it for the requests @ol (the pseudo-header sum,
 * without the length for TSO).
 */
static struct layout
app_build(const struct spec *sp, uint64_t ol)
{
	struct layout lo = build(frame, sp);

	if (ol & RTE_MBUF_F_TX_L4_MASK)
		put16(frame + csum_field(sp, &lo),
		      pseudo(frame + L3, sp->v6, sp->proto,
			     (ol & RTE_MBUF_F_TX_TCP_SEG) ? 0 : lo.len - lo.l4));
	if (ol & RTE_MBUF_F_TX_IP_CKSUM)
		put16(frame + L3 + 10, 0xdead);		/* left to us: anything */
	return lo;
}

/*
 * frame[] (@lo) from an application with the requests @ol: headers in the
 * first segment, the payload in segments of 1000 bytes.
 */
static struct rte_mbuf *
app_mbuf(const struct layout *lo, uint64_t ol, uint16_t tso_segsz)
{
	struct rte_mbuf *m = chop(frame, lo->len, lo->data, 1000);

	m->ol_flags = ol;
	m->l2_len = L3;
	m->l3_len = lo->l3_len;
	m->l4_len = lo->data - lo->l4;
	m->tso_segsz = tso_segsz;
	return m;
}

static struct rte_mbuf *
app_frame(const struct spec *sp, struct layout *lo, uint64_t ol, uint16_t tso_segsz)
{
	*lo = app_build(sp, ol);
	return app_mbuf(lo, ol, tso_segsz);
}

/* ==================================================================== */
/* from the guest: what the application gets                           */
/* ==================================================================== */

static const struct spec tcp4 = {
	.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK | TCP_PSH, .payload = 300,
};

/* A partial TCP/IPv4 checksum (NEEDS_CSUM at 34 + 16) as each receive mode hands it out. */
struct rx_mode_case {
	const char *name;
	uint32_t rx_offloads;
	bool finished;		/* the checksum complete, else the pseudo-header sum left as it was */
	uint64_t rx_l4;		/* RTE_MBUF_F_RX_L4_CKSUM_* */
	uint64_t tx;		/* TX requests (and l2/l3/l4_len named) */
};

static const struct rx_mode_case rx_mode_cases[] = {
	/* nothing left to the application */
	{ "default", 0, true, RTE_MBUF_F_RX_L4_CKSUM_GOOD, 0 },
	/* partial, flagged so as DPDK documents it (data verified, checksum not complete) */
	{ "cksum", RX_CKSUM, false, RTE_MBUF_F_RX_L4_CKSUM_NONE, 0 },
	/* as a TX checksum request, for a port that takes it on */
	{ "legacy", RX_LEGACY, false, 0, RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV4 },
};

static void
rx_mode_case(const struct rx_mode_case *tc)
{
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(&tcp4, &lo, VIRTIO_NET_HDR_GSO_NONE, 0, &h);
	uint16_t want = tc->finished ? complete_sum(frame, &tcp4, &lo) : get16(frame + 50);
	const uint8_t *f;

	ring_init(0, tc->rx_offloads);
	CHECK_EQ(h.csum_start, 34);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DELIVER);
	f = read_back(m);
	CHECK_EQ(m->pkt_len, lo.len);
	CHECK_EQ(get16(f + 50), want);
	CHECK(!tc->finished || l4_ok(f + L3, false, IPPROTO_TCP, f + lo.l4, lo.len - lo.l4));
	CHECK_MEM_EQ(f, frame, 50);			/* nothing else changed */
	CHECK_MEM_EQ(f + 52, frame + 52, lo.len - 52);
	CHECK_EQ(m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK, tc->rx_l4);
	CHECK_EQ(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK, tc->tx);
	CHECK_EQ(m->ol_flags & RTE_MBUF_F_RX_LRO, 0);
	if (tc->tx != 0) {
		CHECK_EQ(m->l2_len, 14);
		CHECK_EQ(m->l3_len, 20);
		CHECK_EQ(m->l4_len, 20);
	}
	CHECK_EQ(vr.stats.malformed, 0);
}

static void
test_rx_csum_modes(void)
{
	RUN_CASES(rx_mode_cases, rx_mode_case, free_tracked);
}

static const struct spec tso4 = {
	.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK | TCP_PSH, .payload = 4000,
};

/*
 * A guest's GSO frame @sp (*@lo) of @gso_type and @gso_size through a ring
 * with @features and the receive offloads @rx: handed out whole, with
 * exactly the mbuf flags @ol and the segment size, nothing refused. The
 * mbuf, its bytes in flat[]; NULL (printed) when not so.
 */
static struct rte_mbuf *
whole_from_guest(const struct spec *sp, struct layout *lo, uint8_t gso_type, uint16_t gso_size,
		 uint64_t features, uint32_t rx, uint64_t ol)
{
	struct virtio_net_hdr h;
	struct rte_mbuf *m = guest_frame(sp, lo, gso_type, gso_size, &h);
	enum vhu_rx_verdict v;

	ring_init(features, rx);
	v = vhu_offload_from_guest(&vr, &h, m);
	if (v == VHU_RX_DELIVER && m->ol_flags == ol && m->tso_segsz == gso_size &&
	    vr.stats.malformed == 0) {
		read_back(m);
		return m;
	}
	fprintf(stderr, "  verdict %d, mbuf flags 0x%" PRIx64 " (0x%" PRIx64 " expected), segment size %u (%u), %" PRIu64 " refused\n",
		v, m->ol_flags, ol, m->tso_segsz, gso_size, vr.stats.malformed);
	return NULL;
}

/*
 * A TCP/IPv4 GSO frame (HOST_TSO4 offered): cut in software by default,
 * whole with LRO (checksum finished, or left partial with CKSUM too).
 */
static void
test_rx_gso_tcp4(void)
{
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(&tso4, &lo, VIRTIO_NET_HDR_GSO_TCPV4, 1448, &h);

	/* default: to be cut, the frame as the guest left it, its headers named */
	ring_init(HOST_TSO4, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	CHECK(mbuf_is(m, frame, lo.len));
	CHECK_EQ(m->l2_len, 14);
	CHECK_EQ(m->l3_len, 20);
	CHECK_EQ(m->l4_len, 20);
	CHECK_EQ(m->tso_segsz, 1448);
	CHECK_EQ(m->packet_type & (RTE_PTYPE_L2_MASK | RTE_PTYPE_L4_MASK),
		 RTE_PTYPE_L2_ETHER | RTE_PTYPE_L4_TCP);
	CHECK(RTE_ETH_IS_IPV4_HDR(m->packet_type));

	/* LRO and CKSUM: whole, partial */
	m = whole_from_guest(&tso4, &lo, VIRTIO_NET_HDR_GSO_TCPV4, 1448, HOST_TSO4,
			     RX_LRO | RX_CKSUM, RTE_MBUF_F_RX_LRO | RTE_MBUF_F_RX_L4_CKSUM_NONE);
	CHECK_NOT_NULL(m);
	CHECK_MEM_EQ(flat, frame, lo.len);

	/* LRO alone: whole, its checksum finished over all of it */
	m = whole_from_guest(&tso4, &lo, VIRTIO_NET_HDR_GSO_TCPV4, 1448, HOST_TSO4, RX_LRO,
			     RTE_MBUF_F_RX_LRO | RTE_MBUF_F_RX_L4_CKSUM_GOOD);
	CHECK_NOT_NULL(m);
	CHECK(l4_ok(flat + L3, false, IPPROTO_TCP, flat + lo.l4, lo.len - lo.l4));
}

/* The same for UDP (GSO_UDP, HOST_UFO), which without HOST_UFO is dropped. */
static void
test_rx_gso_udp(void)
{
	static const struct spec udp4 = { .proto = IPPROTO_UDP, .payload = 1000 };
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(&udp4, &lo, VIRTIO_NET_HDR_GSO_UDP, 100, &h);

	ring_init(HOST_UFO, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	CHECK_EQ(m->tso_segsz, 100);
	CHECK_EQ(m->packet_type & RTE_PTYPE_L4_MASK, RTE_PTYPE_L4_UDP);
	CHECK_EQ(vr.stats.malformed, 0);

	ring_init(HOST_TSO4 | HOST_TSO6 | HOST_ECN, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DROP);
	CHECK_EQ(vr.stats.malformed, 1);
}

/*
 * A GSO type the guest was not offered, or that does not match its frame,
 * is dropped and counted; ECN only with HOST_ECN.
 */
static void
test_rx_gso_not_offered(void)
{
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(&tso4, &lo, VIRTIO_NET_HDR_GSO_TCPV4, 1448, &h);

	ring_init(HOST_TSO6 | HOST_UFO | HOST_ECN, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DROP);
	CHECK_EQ(vr.stats.malformed, 1);
	/* TCPV6 on an IPv4 frame */
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DROP);
	CHECK_EQ(vr.stats.malformed, 2);
	/* a GSO frame without NEEDS_CSUM */
	ring_init(HOST_TSO4, 0);
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.flags = 0;
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DROP);
	CHECK_EQ(vr.stats.malformed, 1);
	CHECK(mbuf_is(m, frame, lo.len));		/* a refused frame is left alone */

	/* TCPV4 | ECN: refused without HOST_ECN, cut with it */
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
	ring_init(HOST_TSO4, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DROP);
	CHECK_EQ(vr.stats.malformed, 1);
	ring_init(HOST_TSO4 | HOST_ECN, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	CHECK_EQ(vr.stats.malformed, 0);
}

/* ==================================================================== */
/* from the guest: GSO frames cut in software (vhu_segment_received)    */
/* ==================================================================== */

/*
 * The segments of the TCP frame @sp (@lo, built in frame[]) cut at @mss:
 * as many as the payload needs, each no longer than asked, with the
 * frame's headers but for the IP length (and IPv4 id, + i), the sequence
 * number and FIN/PSH (last only) and CWR (first only), checksums right and
 * flagged good, the payload in order.
 */
static void
check_tcp_segments(struct rte_mbuf *const *segs, unsigned int n, const struct spec *sp,
		   const struct layout *lo, uint32_t mss)
{
	uint32_t payload = lo->len - lo->data;

	CHECK_EQ(n, (payload + mss - 1) / mss);
	for (unsigned int i = 0; i < n; i++) {
		uint32_t want = RTE_MIN(mss, payload - i * mss);
		uint8_t flags = sp->tcp_flags;
		const uint8_t *f = read_back(segs[i]);
		const uint8_t *ip = f + L3, *tcp = f + lo->l4;

		CHECK_EQ(segs[i]->pkt_len, lo->data + want);
		CHECK_MEM_EQ(f, frame, L3);
		if (sp->v6) {
			CHECK_EQ(get16(ip + 4), segs[i]->pkt_len - L3 - 40);
			CHECK_MEM_EQ(ip + 6, frame + L3 + 6, 34);
		} else {
			CHECK_EQ(get16(ip + 2), segs[i]->pkt_len - L3);
			CHECK_EQ(get16(ip + 4), IP4_ID + i);
			CHECK_EQ(get16(ip + 6), 0x4000);
			CHECK(ipv4_ok(ip));
		}
		CHECK_EQ(get32(tcp + 4), (uint32_t)(TCP_SEQ + i * mss));
		if (i + 1 < n)
			flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (i > 0)
			flags &= (uint8_t)~TCP_CWR;
		CHECK_EQ(tcp[13], flags);
		CHECK(l4_ok(ip, sp->v6, IPPROTO_TCP, tcp, segs[i]->pkt_len - lo->l4));
		CHECK_MEM_EQ(f + lo->data, frame + lo->data + i * mss, want);
		CHECK_EQ(segs[i]->ol_flags, (sp->v6 ? 0 : RTE_MBUF_F_RX_IP_CKSUM_GOOD) |
					    RTE_MBUF_F_RX_L4_CKSUM_GOOD);
	}
}

/* A guest's GSO frame @sp of segment size @mss, accepted to be cut: cut, and checked. */
static void
cut_tcp(const struct spec *sp, uint8_t gso_type, uint64_t features, uint16_t mss)
{
	static struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(sp, &lo, gso_type, mss, &h);
	unsigned int n;

	ring_init(features, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	n = vhu_segment_received(&vr, m, mp, segs);
	check_tcp_segments(segs, n, sp, &lo, mss);
	rte_pktmbuf_free_bulk(segs, n);
	CHECK_EQ(vr.stats.malformed, 0);
}

/* A 64 KiB TCP/IPv4 frame in 66 segments, FIN, PSH and CWR set. */
static void
test_segment_received_tcp4(void)
{
	static const struct spec big = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR,
		.payload = 64000,
	};

	cut_tcp(&big, VIRTIO_NET_HDR_GSO_TCPV4, HOST_TSO4, 1448);
}

static void
test_segment_received_tcp6(void)
{
	static const struct spec big6 = {
		.v6 = true, .proto = IPPROTO_TCP, .tcp_flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR,
		.payload = 20000,
	};

	cut_tcp(&big6, VIRTIO_NET_HDR_GSO_TCPV6, HOST_TSO6, 1428);
}

/*
 * UDP/IPv4: IP fragments of the datagram, whose checksum is finished first
 * (the fragments share it): fragment payloads of the segment size rounded
 * down to 8, offsets in 8-byte units, MF on all but the last, each IPv4
 * header right; put back together, the datagram with a right checksum.
 */
static void
test_segment_received_udp4(void)
{
	static const struct spec udp4 = { .proto = IPPROTO_UDP, .payload = 1000 };
	static uint8_t dgram[1008];
	struct rte_mbuf *segs[16];
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(&udp4, &lo, VIRTIO_NET_HDR_GSO_UDP, 100, &h);
	uint32_t dlen = lo.len - lo.l4, pos = 0;
	unsigned int n;

	ring_init(HOST_UFO, 0);
	CHECK_EQ(dlen, sizeof(dgram));
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	n = vhu_segment_received(&vr, m, mp, segs);
	CHECK_EQ(n, (dlen + 95) / 96);
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *f = read_back(segs[i]);
		uint32_t len = segs[i]->pkt_len - lo.l4;

		CHECK_EQ(len, RTE_MIN(96u, dlen - i * 96));
		CHECK_MEM_EQ(f, frame, L3);
		CHECK_EQ(get16(f + L3 + 2), 20 + len);
		CHECK_EQ(get16(f + L3 + 4), IP4_ID);
		CHECK_EQ(get16(f + L3 + 6), (i * 96) / 8 | (i + 1 < n ? 0x2000 : 0));
		CHECK(ipv4_ok(f + L3));
		CHECK_EQ(segs[i]->ol_flags, RTE_MBUF_F_RX_IP_CKSUM_GOOD);
		CHECK_EQ(segs[i]->packet_type & RTE_PTYPE_L4_MASK, RTE_PTYPE_L4_FRAG);
		memcpy(dgram + pos, f + lo.l4, len);
		pos += len;
	}
	CHECK_EQ(pos, dlen);
	CHECK(l4_ok(frame + L3, false, IPPROTO_UDP, dgram, dlen));
	CHECK_MEM_EQ(dgram, frame + lo.l4, 6);
	CHECK_MEM_EQ(dgram + 8, frame + lo.data, dlen - 8);
	rte_pktmbuf_free_bulk(segs, n);
}

/* UDP over IPv6 is not fragmented in software: dropped, counted. */
static void
test_segment_received_udp6(void)
{
	static const struct spec udp6 = { .v6 = true, .proto = IPPROTO_UDP, .payload = 1000 };
	struct rte_mbuf *segs[16];
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(&udp6, &lo, VIRTIO_NET_HDR_GSO_UDP, 100, &h);

	ring_init(HOST_UFO, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	CHECK_EQ(vhu_segment_received(&vr, m, mp, segs), 0);
	CHECK_EQ(vr.stats.malformed, 1);
}

/* VHU_GSO_MAX_SEGS segments are cut; one more is refused (counted). */
static void
test_segment_received_max_segs(void)
{
	struct spec sp = { .proto = IPPROTO_TCP, .tcp_flags = TCP_ACK,
			   .payload = VHU_GSO_MIN_SEGSZ * VHU_GSO_MAX_SEGS };
	static struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m;
	unsigned int avail;

	cut_tcp(&sp, VIRTIO_NET_HDR_GSO_TCPV4, HOST_TSO4, VHU_GSO_MIN_SEGSZ);
	sp.payload++;
	m = guest_frame(&sp, &lo, VIRTIO_NET_HDR_GSO_TCPV4, VHU_GSO_MIN_SEGSZ, &h);
	ring_init(HOST_TSO4, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	avail = rte_mempool_avail_count(mp);
	CHECK_EQ(vhu_segment_received(&vr, m, mp, segs), 0);
	CHECK_EQ(vr.stats.malformed, 1);
	CHECK_EQ(rte_mempool_avail_count(mp), avail);
}

/*
 * Out of mbufs half-way: nothing is handed out, what was allocated goes
 * back, the shortage is counted.
 */
static void
test_segment_received_pool_exhausted(void)
{
	static struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	static const struct spec sp = { .proto = IPPROTO_TCP, .tcp_flags = TCP_ACK,
					.payload = 1448 * 12 };
	struct rte_mempool *small;
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m = guest_frame(&sp, &lo, VIRTIO_NET_HDR_GSO_TCPV4, 1448, &h);

	small = rte_pktmbuf_pool_create("unit_small", 8, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					(int)rte_socket_id());
	CHECK_NOT_NULL(small);
	ring_init(HOST_TSO4, 0);
	EXPECT_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_SEGMENT);
	EXPECT_EQ(vhu_segment_received(&vr, m, small, segs), 0);
	EXPECT_EQ(vr.stats.alloc_failed, 1);
	EXPECT_EQ(rte_mempool_avail_count(small), 8);
	rte_mempool_free(small);
}

/* ==================================================================== */
/* to the guest                                                         */
/* ==================================================================== */

/*
 * Checksum requests for a guest: left to it with GUEST_CSUM (NEEDS_CSUM at
 * the frame's L4, the field untouched), finished here without.
 */
static void
test_tx_csum_to_guest(void)
{
	static const uint64_t ol = RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV4;
	struct virtio_net_hdr h = { 0 };
	struct layout lo;
	struct rte_mbuf *m = app_frame(&tcp4, &lo, ol, 0);
	const uint8_t *f;

	ring_init(GUEST_CSUM, 0);
	CHECK(vhu_offload_to_guest(&vr, m, &h));
	CHECK_EQ(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	CHECK_EQ(h.csum_start, 34);
	CHECK_EQ(h.csum_offset, 16);
	CHECK(mbuf_is(m, frame, lo.len));

	memset(&h, 0, sizeof(h));
	m = app_frame(&tcp4, &lo, ol, 0);
	ring_init(0, 0);
	CHECK(vhu_offload_to_guest(&vr, m, &h));
	CHECK_EQ(h.flags, 0);
	f = read_back(m);
	CHECK(l4_ok(f + L3, false, IPPROTO_TCP, f + lo.l4, lo.len - lo.l4));
	CHECK_EQ(vr.stats.malformed, 0);
}

/* TSO for a guest with GUEST_TSO4: the header asks for it, the field in virtio's convention. */
static void
test_tx_tso_to_guest(void)
{
	struct virtio_net_hdr h = { 0 };
	struct layout lo;
	struct rte_mbuf *m = app_frame(&tso4, &lo, RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				       RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM, 1448);
	const uint8_t *f;

	ring_init(GUEST_CSUM | GUEST_TSO4, 0);
	CHECK(!vhu_segment_needed_for_guest(&vr, m));
	CHECK(vhu_offload_to_guest(&vr, m, &h));
	CHECK_EQ(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	CHECK_EQ(h.gso_size, 1448);
	CHECK_EQ(h.hdr_len, 54);
	CHECK_EQ(h.csum_start, 34);
	CHECK_EQ(h.csum_offset, 16);
	f = read_back(m);
	CHECK(ipv4_ok(f + L3));
	CHECK_EQ(get16(f + 50), partial_sum(frame, &tso4, &lo));
	/* without GUEST_CSUM, GUEST_TSO4 means nothing: cut in software */
	ring_init(GUEST_TSO4, 0);
	CHECK(vhu_segment_needed_for_guest(&vr, m));
}

/* ==================================================================== */
/* defects (fixed)                                                      */
/* ==================================================================== */

/*
 * BUG 1 (fixed; netoffload.c, as_tx_requests): in the legacy convention a
 * TCP/IPv4 GSO frame from a guest became TX_TCP_SEG | TX_IPV4 without
 * TX_IP_CKSUM, which TSO over IPv4 requires (rte_mbuf_core.h): a NIC, or
 * librte_gso, left every segment's IPv4 header checksum as it was. The TCP
 * checksum field is rewritten to DPDK's convention (no length), the lengths
 * named; IPv6 has no header checksum to ask for.
 */
static void
test_bug_legacy_tso_ip_cksum(void)
{
	static const struct spec tso6 = {
		.v6 = true, .proto = IPPROTO_TCP, .tcp_flags = TCP_ACK, .payload = 4000,
	};
	static const struct spec udp4 = { .proto = IPPROTO_UDP, .payload = 1000 };
	static const uint64_t offered = HOST_TSO4 | HOST_TSO6 | HOST_UFO;
	struct layout lo;
	struct rte_mbuf *m;

	m = whole_from_guest(&tso4, &lo, VIRTIO_NET_HDR_GSO_TCPV4, 1448, offered, RX_LEGACY,
			     RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
			     RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM);
	CHECK_NOT_NULL(m);
	CHECK_EQ(m->l2_len, 14);
	CHECK_EQ(m->l3_len, 20);
	CHECK_EQ(m->l4_len, 20);
	CHECK_EQ(get16(flat + 50), pseudo(frame + L3, false, IPPROTO_TCP, 0));

	m = whole_from_guest(&tso6, &lo, VIRTIO_NET_HDR_GSO_TCPV6, 1448, offered, RX_LEGACY,
			     RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV6);
	CHECK_NOT_NULL(m);
	CHECK_EQ(get16(flat + lo.l4 + 16), pseudo(frame + L3, true, IPPROTO_TCP, 0));

	/* UFO: the datagram's checksum finished (fragments cannot), then the request */
	m = whole_from_guest(&udp4, &lo, VIRTIO_NET_HDR_GSO_UDP, 100, offered, RX_LEGACY,
			     RTE_MBUF_F_TX_UDP_SEG | RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM);
	CHECK_NOT_NULL(m);
	CHECK(l4_ok(flat + L3, false, IPPROTO_UDP, flat + lo.l4, lo.len - lo.l4));
}

/*
 * BUG 2 (fixed; segment.c, vhu_segment_for_guest): rte_gso_segment()
 * clears TX_TCP_SEG in the frame it cuts, and the frame stayed so. The
 * caller keeps it when the segments find no room in the ring (enqueue
 * returns it unconsumed): retried, it was no longer a TSO frame and went
 * to the guest whole, larger than its MTU, with an unfinished checksum.
 * (Through a ring: test_virtqueue.c, test_enq_tso_segmented.)
 */
static void
test_bug_segment_for_guest_keeps_requests(void)
{
	static const uint64_t ol = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				   RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	static const struct spec sp = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK | TCP_PSH, .payload = 3500,
	};
	struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	struct layout lo;
	struct rte_mbuf *m = app_frame(&sp, &lo, ol, 1000);
	unsigned int n;

	ring_init(GUEST_CSUM, 0);
	CHECK(vhu_segment_needed_for_guest(&vr, m));
	n = vhu_segment_for_guest(&vr, m, segs);
	EXPECT_EQ(m->ol_flags, ol);
	EXPECT_EQ(m->tso_segsz, 1000);
	EXPECT_EQ(n, 4);
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *f = read_back(segs[i]);
		uint32_t want = RTE_MIN(1000u, sp.payload - i * 1000);

		EXPECT_EQ(segs[i]->ol_flags & TX_REQUESTS, 0);
		EXPECT_EQ(segs[i]->pkt_len, lo.data + want);
		EXPECT(ipv4_ok(f + L3));
		EXPECT(l4_ok(f + L3, false, IPPROTO_TCP, f + lo.l4, segs[i]->pkt_len - lo.l4));
		EXPECT_EQ(get32(f + lo.l4 + 4), (uint32_t)(TCP_SEQ + i * 1000));
		EXPECT(memcmp(f + lo.data, frame + lo.data + i * 1000, want) == 0);
	}
	rte_pktmbuf_free_bulk(segs, n);
	CHECK_EQ(vr.stats.malformed, 0);
	CHECK_EQ(rte_mbuf_refcnt_read(m), 1);
}

/*
 * BUG 3 (fixed; netoffload.c, finish_ipv4_checksum): the IPv4 header
 * checksum for a guest was computed from a 20-byte copy of the header,
 * summing ihl * 4 bytes of it: with options, bytes of the stack past the
 * copy (a stack overflow under ASan) and a wrong checksum. Header in one
 * segment, then straddling two.
 */
static void
test_bug_ipv4_options_checksum(void)
{
	static const struct spec sp = { .proto = IPPROTO_UDP, .ip_opts = 40, .payload = 100 };
	static const uint64_t ol = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	static const uint32_t first_seg[] = { 200, 30 };	/* all of it; inside the options */

	for (size_t i = 0; i < RTE_DIM(first_seg); i++) {
		struct virtio_net_hdr h = { 0 };
		struct layout lo = build(frame, &sp);
		struct rte_mbuf *m;
		const uint8_t *f;
		uint16_t want;

		CHECK_EQ(frame[L3], 0x4f);
		want = get16(frame + L3 + 10);		/* build() computes it */
		put16(frame + L3 + 10, 0);
		m = chop(frame, lo.len, first_seg[i], 1000);
		m->ol_flags = ol;
		m->l2_len = L3;
		m->l3_len = lo.l3_len;
		ring_init(0, 0);
		CHECK(vhu_offload_to_guest(&vr, m, &h));
		CHECK_EQ(h.flags, 0);
		f = read_back(m);
		CHECK_EQ(get16(f + L3 + 10), want);
		CHECK(ipv4_ok(f + L3));
		CHECK_MEM_EQ(f + L3 + 12, frame + L3 + 12, lo.len - L3 - 12);
	}
}

/* No-op: the external buffers here are static. */
static void
ext_free(void *addr __rte_unused, void *opaque __rte_unused)
{
}

/*
 * BUG 4 (fixed; netoffload.c, vhu_mbuf_range_writable): a TSO frame for a
 * guest with GUEST_TSO4 has its TCP checksum field rewritten to virtio's
 * convention (pseudo-header sum with the TCP length), unless the field
 * lies in memory others hold. The check looked at every segment: a frame
 * whose headers are its own but whose payload is an external buffer or
 * an indirect mbuf (zero-copy, a reference to a shared payload) kept
 * DPDK's convention, and the guest computed wrong checksums from it.
 */
static void
test_bug_tso_payload_elsewhere(void)
{
	static const struct spec sp = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK, .payload = 2000,
	};
	static const uint64_t ol = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				   RTE_MBUF_F_TX_IPV4;
	static struct rte_mbuf_ext_shared_info shinfo = { .free_cb = ext_free };

	for (int indirect = 0; indirect <= 1; indirect++) {
		struct virtio_net_hdr h = { 0 };
		struct layout lo;
		struct rte_mbuf *m = app_frame(&sp, &lo, ol, 1448);
		struct rte_mbuf *pay = rte_pktmbuf_alloc(mp);
		struct rte_mbuf *ref;

		CHECK_NOT_NULL(pay);
		/* the payload out of the chain app_frame() made: the headers stay */
		rte_pktmbuf_free(m->next);
		if (indirect) {
			memcpy(rte_pktmbuf_append(pay, (uint16_t)sp.payload), frame + lo.data,
			       sp.payload);
			ref = rte_pktmbuf_alloc(mp);
			CHECK_NOT_NULL(ref);
			rte_pktmbuf_attach(ref, pay);
			rte_pktmbuf_free(pay);		/* ref holds it now */
			CHECK(RTE_MBUF_CLONED(ref));
		} else {
			/* held by another mbuf too (an external buffer of its own is ours: BUG 7) */
			rte_mbuf_ext_refcnt_set(&shinfo, 2);
			rte_pktmbuf_attach_extbuf(pay, frame + lo.data, RTE_BAD_IOVA,
						  (uint16_t)sp.payload, &shinfo);
			pay->data_len = (uint16_t)sp.payload;
			ref = pay;
			CHECK(RTE_MBUF_HAS_EXTBUF(ref));
		}
		ref->pkt_len = ref->data_len;
		m->next = ref;
		m->nb_segs = 2;
		m->pkt_len = lo.len;
		CHECK_EQ(m->data_len, lo.data);

		/* the headers may be written, not the payload */
		EXPECT(vhu_mbuf_range_writable(m, 50, 2));
		EXPECT(!vhu_mbuf_range_writable(m, lo.data, 1));
		EXPECT(!vhu_mbuf_range_writable(m, 50, 10));
		ring_init(GUEST_CSUM | GUEST_TSO4, 0);
		CHECK(vhu_offload_to_guest(&vr, m, &h));
		CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
		CHECK_EQ(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		CHECK_EQ(h.hdr_len, lo.data);
		CHECK_EQ(mbuf_get16(m, 50), partial_sum(frame, &sp, &lo));
		CHECK_EQ(vr.stats.malformed, 0);
	}
}

/* Free callback of ext_frame()'s buffer: counts its calls. */
static unsigned int ext_frees;

static void
ext_count_free(void *addr __rte_unused, void *opaque __rte_unused)
{
	ext_frees++;
}

/*
 * frame[] (@lo) from an application with the requests @ol, in one mbuf
 * whose buffer is an external one (a copy in @buf; @shinfo with
 * @refs references, as many mbufs hold it), as Open vSwitch sends frames
 * received with ext-buffer=1 or from DPDK's vhost library's EXTBUF mbufs.
 * NULL without a mbuf.
 */
static struct rte_mbuf *
ext_frame(const struct layout *lo, uint64_t ol, uint16_t tso_segsz, uint8_t *buf,
	  struct rte_mbuf_ext_shared_info *shinfo, uint16_t refs)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);

	if (m == NULL)
		return NULL;
	memcpy(buf, frame, lo->len);
	shinfo->free_cb = ext_count_free;
	rte_mbuf_ext_refcnt_set(shinfo, refs);
	rte_pktmbuf_attach_extbuf(m, buf, RTE_BAD_IOVA, (uint16_t)lo->len, shinfo);
	m->data_off = 0;
	m->data_len = (uint16_t)lo->len;
	m->pkt_len = lo->len;
	m->ol_flags |= ol;
	m->l2_len = L3;
	m->l3_len = lo->l3_len;
	m->l4_len = lo->data - lo->l4;
	m->tso_segsz = tso_segsz;
	return m;
}

/*
 * BUG 6 (fixed; segment.c, vhu_segment_for_guest): a TSO frame in an
 * external buffer, cut for a guest without GUEST_TSO: librte_gso gives each
 * segment's header mbuf (a direct one of our pool) the frame's ol_flags,
 * RTE_MBUF_F_EXTERNAL included, and freeing the segments detached those
 * from a shared info they have not: a crash (Open vSwitch 3.1 sending on
 * a guest's 64 KB frames received with ext-buffer=1; tests/test_ovs.py).
 */
static void
test_bug_segment_ext_buffer(void)
{
	static const uint64_t ol = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				   RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	static const struct spec sp = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK | TCP_PSH, .payload = 3500,
	};
	static uint8_t buf[4096];
	static struct rte_mbuf_ext_shared_info shinfo;
	struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	struct layout lo = app_build(&sp, ol);
	struct rte_mbuf *m = ext_frame(&lo, ol, 1000, buf, &shinfo, 1);
	unsigned int n;

	CHECK_NOT_NULL(m);
	ext_frees = 0;
	ring_init(GUEST_CSUM, 0);
	CHECK(vhu_segment_needed_for_guest(&vr, m));
	n = vhu_segment_for_guest(&vr, m, segs);
	EXPECT_EQ(n, 4);
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *f = read_back(segs[i]);
		uint32_t want = RTE_MIN(1000u, sp.payload - i * 1000);

		EXPECT(RTE_MBUF_DIRECT(segs[i]));
		EXPECT_EQ(segs[i]->pkt_len, lo.data + want);
		EXPECT(ipv4_ok(f + L3));
		EXPECT(l4_ok(f + L3, false, IPPROTO_TCP, f + lo.l4, segs[i]->pkt_len - lo.l4));
		EXPECT(memcmp(f + lo.data, frame + lo.data + i * 1000, want) == 0);
	}
	rte_pktmbuf_free_bulk(segs, n);
	CHECK_EQ(vr.stats.malformed, 0);
	/* the frame as it came, its buffer still its own */
	EXPECT_EQ(m->ol_flags & ~RTE_MBUF_F_EXTERNAL, ol);
	EXPECT(memcmp(buf, frame, lo.len) == 0);
	EXPECT_EQ(rte_mbuf_ext_refcnt_read(&shinfo), 1);
	rte_pktmbuf_free(m);
	EXPECT_EQ(ext_frees, 1);
}

/*
 * BUG 8 (fixed; segment.c, vhu_segment_for_guest): librte_gso copies a
 * frame's headers (l2_len + l3_len + l4_len, up to 893 bytes as an
 * application may set them) into a mbuf of our header pool, which has room
 * for 256: longer ones overflowed it into the next mbuf of the pool. Such
 * a frame is dropped.
 */
static void
test_bug_segment_headers_too_long(void)
{
	static const uint64_t ol = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				   RTE_MBUF_F_TX_IPV4;
	static const struct spec sp = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK, .payload = 3000,
	};
	struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	struct layout lo;
	struct rte_mbuf *m = app_frame(&sp, &lo, ol, 100);

	/* headers of 14 + 300 + 20 bytes and 1100 of payload, in one segment */
	rte_pktmbuf_free(m->next);
	m->next = NULL;
	CHECK_NOT_NULL(rte_pktmbuf_append(m, 1400));
	m->nb_segs = 1;
	m->pkt_len = m->data_len;
	m->l3_len = 300;
	ring_init(GUEST_CSUM, 0);
	EXPECT_EQ(vhu_segment_for_guest(&vr, m, segs), 0);
	EXPECT_EQ(vr.stats.malformed, 1);
}

/*
 * BUG 7 (fixed; netoffload.c, vhu_mbuf_range_writable): any external
 * buffer counted as memory others hold, so a TSO frame in an external
 * buffer of its own (Open vSwitch with ext-buffer=1, DPDK's vhost
 * library's EXTBUF mbufs) reached a guest with GUEST_TSO4 with its TCP
 * checksum field in DPDK's convention, not virtio's (BUG 4). Its own, the
 * field is rewritten; held by another mbuf too, it is left alone.
 */
static void
test_bug_tso_in_own_ext_buffer(void)
{
	static const uint64_t ol = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				   RTE_MBUF_F_TX_IPV4;
	static const struct spec sp = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK, .payload = 2000,
	};
	static uint8_t buf[4096];
	static struct rte_mbuf_ext_shared_info shinfo;

	for (uint16_t refs = 1; refs <= 2; refs++) {
		struct virtio_net_hdr h = { 0 };
		struct layout lo = app_build(&sp, ol);
		struct rte_mbuf *m = ext_frame(&lo, ol, 1448, buf, &shinfo, refs);
		uint32_t field = csum_field(&sp, &lo);
		uint16_t dpdk = get16(frame + field);

		CHECK_NOT_NULL(m);
		EXPECT_EQ(vhu_mbuf_range_writable(m, field, 2), refs == 1);
		ring_init(GUEST_CSUM | GUEST_TSO4, 0);
		CHECK(vhu_offload_to_guest(&vr, m, &h));
		CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
		EXPECT_EQ(get16(buf + field), refs == 1 ? partial_sum(frame, &sp, &lo) : dpdk);
		CHECK_EQ(vr.stats.malformed, 0);
		rte_pktmbuf_free(m);
	}
}

/*
 * BUG 5 (fixed; checksum.h, vhu_finish_checksum): a checksum finished in
 * software that came out as 0 was stored as 0, which in UDP means "no
 * checksum"; it is stored as 0xffff, its other form, as Linux does. From a
 * guest (the frame's own UDP, and a checksum in a VXLAN-encapsulated inner
 * UDP the parser does not see as the frame's L4), and for a guest without
 * GUEST_CSUM.
 */
static void
test_bug_checksum_zero_is_ffff(void)
{
	static const struct spec udp4 = { .proto = IPPROTO_UDP, .payload = 40 };
	static uint8_t inner[200];
	struct virtio_net_hdr h;
	struct layout lo, in, out;
	struct rte_mbuf *m;
	const uint8_t *f;

	/* the frame's own UDP */
	lo = build(frame, &udp4);
	force_zero_checksum(frame, &udp4, &lo, lo.data + 10);
	put16(frame + lo.l4 + 6, partial_sum(frame, &udp4, &lo));
	h = guest_hdr(&udp4, &lo, VIRTIO_NET_HDR_GSO_NONE, 0);
	m = guest_mbuf(lo.len);
	ring_init(0, 0);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DELIVER);
	EXPECT_EQ(mbuf_get16(m, lo.l4 + 6), 0xffff);
	CHECK_EQ(m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_GOOD);

	/* inner UDP of a VXLAN frame: outer UDP without checksum, inner partial */
	in = build(inner, &udp4);
	force_zero_checksum(inner, &udp4, &in, in.data + 10);
	put16(inner + in.l4 + 6, partial_sum(inner, &udp4, &in));
	out = build(frame, &(struct spec){ .proto = IPPROTO_UDP, .payload = 8 + in.len });
	put16(frame + out.l4 + 2, VXLAN_PORT);
	memset(frame + out.data, 0, 8);
	frame[out.data] = 0x08;				/* VNI valid */
	memcpy(frame + out.data + 8, inner, in.len);
	h.csum_start = (uint16_t)(out.data + 8 + in.l4);
	for (uint32_t rx = 0; rx <= RX_LEGACY; rx += RX_LEGACY) {
		m = guest_mbuf(out.len);
		ring_init(0, rx);
		CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DELIVER);
		EXPECT_EQ(mbuf_get16(m, h.csum_start + 6), 0xffff);
		f = read_back(m);
		EXPECT(l4_ok(f + out.data + 8 + L3, false, IPPROTO_UDP, f + h.csum_start,
			     in.len - in.l4));
		CHECK_EQ(get16(f + out.l4 + 6), 0);	/* the outer one is not touched */
		/* not the frame's own L4: nothing said about it, nothing asked */
		CHECK_EQ(m->ol_flags, 0);
	}

	/* for a guest without GUEST_CSUM */
	lo = app_build(&udp4, RTE_MBUF_F_TX_UDP_CKSUM | RTE_MBUF_F_TX_IPV4);
	force_zero_checksum(frame, &udp4, &lo, lo.data + 10);
	m = app_mbuf(&lo, RTE_MBUF_F_TX_UDP_CKSUM | RTE_MBUF_F_TX_IPV4, 0);
	memset(&h, 0, sizeof(h));
	ring_init(0, 0);
	CHECK(vhu_offload_to_guest(&vr, m, &h));
	CHECK_EQ(h.flags, 0);
	EXPECT_EQ(mbuf_get16(m, lo.l4 + 6), 0xffff);
}

/*
 * BUG 6 (fixed; netoffload.c, parse_guest_request): the guest's segment
 * size was not bounded: gso_size 1 asked for a segment per payload byte
 * (up to 65536 frames cut from one), and a size that with the headers
 * overflows an IP packet could not be cut at all. Bounds: from
 * VHU_GSO_MIN_SEGSZ to what an IP packet holds with the frame's L3 and L4
 * headers (here 40 bytes).
 */
static void
test_bug_gso_size_bounds(void)
{
	static const struct {
		uint16_t gso_size;
		enum vhu_rx_verdict v;
	} cases[] = {
		{ 1, VHU_RX_DROP },
		{ VHU_GSO_MIN_SEGSZ - 1, VHU_RX_DROP },
		{ VHU_GSO_MIN_SEGSZ, VHU_RX_SEGMENT },
		{ UINT16_MAX - 40, VHU_RX_SEGMENT },
		{ UINT16_MAX - 40 + 1, VHU_RX_DROP },
		{ UINT16_MAX, VHU_RX_DROP },
	};
	struct virtio_net_hdr h;
	struct layout lo;
	struct rte_mbuf *m;

	for (size_t i = 0; i < RTE_DIM(cases); i++) {
		m = guest_frame(&tso4, &lo, VIRTIO_NET_HDR_GSO_TCPV4, cases[i].gso_size, &h);
		ring_init(HOST_TSO4, 0);
		CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), cases[i].v);
		CHECK_EQ(vr.stats.malformed, cases[i].v == VHU_RX_DROP);
		/* the application that takes GSO frames whole gets the same bounds */
		m = guest_mbuf(lo.len);
		ring_init(HOST_TSO4, RX_LRO);
		CHECK_EQ(vhu_offload_from_guest(&vr, &h, m),
			 cases[i].v == VHU_RX_DROP ? VHU_RX_DROP : VHU_RX_DELIVER);
		CHECK(cases[i].v == VHU_RX_DROP || m->tso_segsz == cases[i].gso_size);
	}
}

/* ==================================================================== */

/*
 * BUG 8 (fixed; segment.c, whole_frame): a TSO frame small enough for one
 * segment, for a guest without TSO, was finished in place (its TCP field
 * made a complete checksum, its requests cleared): when the guest had no
 * room, the caller got back a different frame than it gave. Now the one
 * segment is a finished copy; the UFO datagram whose checksum must be
 * finished before the cut is copied too.
 */
static void
test_bug_one_segment_frame_untouched(void)
{
	static const uint64_t tso = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
				    RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	static const uint64_t ufo = RTE_MBUF_F_TX_UDP_SEG | RTE_MBUF_F_TX_UDP_CKSUM |
				    RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	static const struct spec small = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK | TCP_PSH, .payload = 900,
	};
	static const struct spec udp = { .proto = IPPROTO_UDP, .payload = 1000 };
	static uint8_t before[FRAME_MAX];
	struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	struct layout lo;
	struct rte_mbuf *m = app_frame(&small, &lo, tso, 1000);
	unsigned int n;

	memcpy(before, read_back(m), lo.len);
	ring_init(GUEST_CSUM, 0);
	n = vhu_segment_for_guest(&vr, m, segs);
	CHECK_EQ(n, 1);
	CHECK(segs[0] != m);
	EXPECT_EQ(m->ol_flags, tso);
	EXPECT(memcmp(read_back(m), before, lo.len) == 0);
	const uint8_t *f = read_back(segs[0]);

	EXPECT_EQ(segs[0]->ol_flags & TX_REQUESTS, 0);
	EXPECT(ipv4_ok(f + L3));
	EXPECT(l4_ok(f + L3, false, IPPROTO_TCP, f + lo.l4, lo.len - lo.l4));
	rte_pktmbuf_free_bulk(segs, n);

	m = app_frame(&udp, &lo, ufo, 400);
	memcpy(before, read_back(m), lo.len);
	n = vhu_segment_for_guest(&vr, m, segs);
	EXPECT_EQ(n, 3);
	EXPECT_EQ(m->ol_flags, ufo);
	EXPECT(memcmp(read_back(m), before, lo.len) == 0);	/* the pseudo-header sum kept */
	for (unsigned int i = 0; i < n; i++) {
		f = read_back(segs[i]);
		EXPECT_EQ(segs[i]->ol_flags & TX_REQUESTS, 0);
		EXPECT(ipv4_ok(f + L3));
	}
	/* the datagram's checksum, in the first fragment, is the whole datagram's */
	EXPECT_EQ(mbuf_get16(segs[0], csum_field(&udp, &lo)), complete_sum(frame, &udp, &lo));
	rte_pktmbuf_free_bulk(segs, n);
	CHECK_EQ(vr.stats.malformed, 0);
}

/*
 * BUG 9 (fixed; netoffload.c, set_tso_pseudo_sum): the TSO pseudo-header
 * sum of a TCP/IPv6 frame with an extension header was taken from
 * rte_ipv6_phdr_cksum(), which names the fixed header's next header (here
 * hop-by-hop, 0) as the protocol and, for a guest, its payload length (the
 * extension header included) as the length. The protocol is TCP and the
 * length the TCP one, as Linux computes it.
 */
static void
test_bug_ipv6_extension_pseudo_sum(void)
{
	static const struct spec sp = {
		.v6 = true, .proto = IPPROTO_TCP, .tcp_flags = TCP_ACK, .payload = 3000,
	};
	const uint32_t ext = 8;
	struct virtio_net_hdr h = { 0 };
	struct layout lo = build(frame, &sp);
	uint8_t *ip = frame + L3;
	struct rte_mbuf *m;

	/* a hop-by-hop header (PadN) between the IPv6 header and TCP */
	memmove(frame + lo.l4 + ext, frame + lo.l4, lo.len - lo.l4);
	memset(frame + lo.l4, 0, ext);
	frame[lo.l4] = IPPROTO_TCP;
	frame[lo.l4 + 2] = 1;
	frame[lo.l4 + 3] = 4;
	ip[6] = 0;
	put16(ip + 4, (uint16_t)(get16(ip + 4) + ext));
	lo.l3_len += ext;
	lo.l4 += ext;
	lo.data += ext;
	lo.len += ext;

	/* to a guest that takes TSO: virtio's convention, with the TCP length */
	m = app_mbuf(&lo, RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV6,
		     1440);
	ring_init(GUEST_CSUM | VHU_BIT(VIRTIO_NET_F_GUEST_TSO6), 0);
	CHECK(vhu_offload_to_guest(&vr, m, &h));
	CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV6);
	CHECK_EQ(mbuf_get16(m, lo.l4 + 16), pseudo(ip, true, IPPROTO_TCP, lo.len - lo.l4));

	/* from a guest, legacy convention: DPDK's, without the length */
	put16(frame + lo.l4 + 16, pseudo(ip, true, IPPROTO_TCP, lo.len - lo.l4));
	m = guest_mbuf(lo.len);
	h = (struct virtio_net_hdr){
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV6,
		.gso_size = 1440, .hdr_len = (uint16_t)lo.data, .csum_start = (uint16_t)lo.l4,
		.csum_offset = VHU_TCP_CSUM_OFFSET,
	};
	ring_init(HOST_TSO6, RX_LEGACY);
	CHECK_EQ(vhu_offload_from_guest(&vr, &h, m), VHU_RX_DELIVER);
	CHECK_EQ(m->l3_len, 48);
	CHECK_EQ(mbuf_get16(m, lo.l4 + 16), pseudo(ip, true, IPPROTO_TCP, 0));
}

/*
 * BUG 10 (fixed; netoffload.c, finish_ipv4_checksum): an IPv4 checksum
 * request on a frame others hold too (flooded to several ports) was
 * refused even when its checksum was already right, which legacy TSO
 * frames from a guest always ask for. A right checksum needs no write; a
 * wrong one in a shared frame is still refused, counted.
 */
static void
test_bug_shared_ipv4_checksum_right(void)
{
	static const struct spec sp = {
		.proto = IPPROTO_TCP, .tcp_flags = TCP_ACK, .payload = 200,
	};
	struct virtio_net_hdr h = { 0 };
	struct layout lo;
	struct rte_mbuf *m = app_frame(&sp, &lo, RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV4,
				       0);

	m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;	/* its IPv4 checksum is right already */
	rte_mbuf_refcnt_update(m, 1);
	ring_init(GUEST_CSUM, 0);
	EXPECT(vhu_offload_to_guest(&vr, m, &h));
	EXPECT_EQ(vr.stats.malformed, 0);
	EXPECT(ipv4_ok(rte_pktmbuf_mtod_offset(m, const uint8_t *, L3)));
	/* a wrong one cannot be fixed in a frame others hold */
	*rte_pktmbuf_mtod_offset(m, uint8_t *, L3 + 10) ^= 0x55;
	EXPECT(!vhu_offload_to_guest(&vr, m, &h));
	EXPECT_EQ(vr.stats.malformed, 1);
	rte_mbuf_refcnt_update(m, -1);
}

int
main(int argc __rte_unused, char **argv)
{
	if (!unit_start(argv[0]))
		return 2;
	check_after_each = teardown;

	RUN_TEST(test_rx_csum_modes);
	RUN_TEST(test_rx_gso_tcp4);
	RUN_TEST(test_rx_gso_udp);
	RUN_TEST(test_rx_gso_not_offered);

	RUN_TEST(test_segment_received_tcp4);
	RUN_TEST(test_segment_received_tcp6);
	RUN_TEST(test_segment_received_udp4);
	RUN_TEST(test_segment_received_udp6);
	RUN_TEST(test_segment_received_max_segs);
	RUN_TEST(test_segment_received_pool_exhausted);

	RUN_TEST(test_tx_csum_to_guest);
	RUN_TEST(test_tx_tso_to_guest);

	RUN_TEST(test_bug_legacy_tso_ip_cksum);
	RUN_TEST(test_bug_segment_for_guest_keeps_requests);
	RUN_TEST(test_bug_ipv4_options_checksum);
	RUN_TEST(test_bug_tso_payload_elsewhere);
	RUN_TEST(test_bug_segment_ext_buffer);
	RUN_TEST(test_bug_tso_in_own_ext_buffer);
	RUN_TEST(test_bug_segment_headers_too_long);
	RUN_TEST(test_bug_checksum_zero_is_ffff);
	RUN_TEST(test_bug_gso_size_bounds);
	RUN_TEST(test_bug_one_segment_frame_untouched);
	RUN_TEST(test_bug_ipv6_extension_pseudo_sum);
	RUN_TEST(test_bug_shared_ipv4_checksum_right);

	return unit_finish(check_summary("test_offload"));
}
