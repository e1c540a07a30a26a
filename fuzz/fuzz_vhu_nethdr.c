/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: the virtio-net header parser and writer (netoffload.c)
 * and software segmentation (segment.c) on their own, over frames of any
 * shape.
 *
 * An input is one frame and where it goes:
 * - from a guest: a virtio-net header (raw) and a frame (headers from a
 *   template, overwritten in part by raw bytes) go through
 *   vhu_offload_from_guest() with the receive offloads the input picks;
 *   when it accepts them, the mbuf's metadata must be what the application
 *   asked for (fz_check_offload), a frame to cut is cut
 *   (vhu_segment_received), and in the legacy convention the frame goes on
 *   to a second guest, as between two eth_vhost ports;
 * - from an application: a frame with offload requests (fz_read_frame).
 * To a guest, the frame gets a header (vhu_offload_to_guest) or, without
 * GUEST_TSO or GUEST_UFO, is cut in software (vhu_segment_for_guest).
 *
 * Checked: every refusal is counted once and only refusals are; a header
 * for the guest points inside the frame and a GSO header has a segment
 * size; the TCP checksum field of a TSO frame holds the pseudo-header sum in
 * its next reader's convention; for a well-formed request: checksums
 * finished in software are right, segments are no longer than asked and
 * carry right checksums and no requests, and a TSO frame is refused only
 * when it needs more than VHU_GSO_MAX_SEGS segments.
 *
 * Input: u8 configuration (bits 0-2: the receiving guest has GUEST_CSUM,
 * GUEST_TSO4, GUEST_TSO6; bit 3: the frame comes from an application; bit
 * 4: the receiving guest has GUEST_UFO), u8 receive offloads
 * (fz_rx_offloads), then for a guest's frame: the 10-byte header, frame
 * length (u16), segment size (u8), template (u8, enum fz_l4), and raw bytes
 * (offset u8, count u8, bytes) over the frame's first 256 bytes.
 */
#include <string.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_net.h>

#include "fuzz_common.h"
#include "netoffload.h"
#include "segment.h"
#include "vring_ctl.h"
#include "virtio_defs.h"

#define CFG_GUEST_CSUM	0x01
#define CFG_GUEST_TSO4	0x02
#define CFG_GUEST_TSO6	0x04
#define CFG_FROM_APP	0x08
#define CFG_GUEST_UFO	0x10

#define OFFLOAD_REQUESTS (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG | RTE_MBUF_F_TX_L4_MASK | \
			  RTE_MBUF_F_TX_IP_CKSUM)

/* Refusals counted by the call that made them: @ok, or exactly one more. */
static void
check_counted(const struct vhu_vring *vr, uint64_t malformed_before, bool ok, const char *what)
{
	uint64_t n = vr->stats.malformed - malformed_before;

	FZ_CHECK(n == (ok ? 0 : 1),
		 "%s %s, %" PRIu64 " refusals counted", what, ok ? "accepted" : "refused", n);
}

/* A frame whose offload requests match its own headers (as fz_frame_headers wrote them). */
static bool
request_consistent(const struct rte_mbuf *m)
{
	if (!(m->ol_flags & OFFLOAD_REQUESTS))
		return false;
	return (uint32_t)m->l2_len + m->l3_len + m->l4_len <= m->pkt_len &&
	       (!(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) || m->tso_segsz > 0);
}

/*
 * The frame's IPv4 header checksum (@ip) and TCP/UDP checksum (@l4) are
 * right. Checked on a contiguous copy with DPDK's single-buffer functions:
 * its mbuf-walking checksum is what is under test.
 */
static void
check_checksums(const struct rte_mbuf *m, bool ip, bool l4, const char *what)
{
	static uint8_t frame[UINT16_MAX + 1];
	const uint8_t *f = rte_pktmbuf_read(m, 0, m->pkt_len, frame);
	const void *l3 = f + m->l2_len;
	const void *l4_hdr = f + m->l2_len + m->l3_len;
	bool v4 = (m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0;

	FZ_CHECK(f != NULL && m->pkt_len <= sizeof(frame), "%s: %u bytes", what, m->pkt_len);
	if (ip && v4)
		FZ_CHECK(rte_raw_cksum(l3, m->l3_len) == 0xffff, "%s: bad IPv4 header checksum",
			 what);
	if (l4)
		FZ_CHECK((v4 ? rte_ipv4_udptcp_cksum_verify(l3, l4_hdr) :
			       rte_ipv6_udptcp_cksum_verify(l3, l4_hdr)) == 0,
			 "%s: bad L4 checksum (%u bytes, %u segments)", what, m->pkt_len,
			 m->nb_segs);
}

/*
 * The checksum field of a GSO frame holds the pseudo-header sum in the
 * convention of whoever reads it next: for TSO virtio's (with the L4 length)
 * for a guest, DPDK's (without) in an mbuf; for UFO both count the length.
 * Its protocol is @proto (TCP or UDP) and its length the L4 one, whatever
 * IPv6 extension headers precede it (so not rte_ipv6_phdr_cksum(), which
 * reads both from the fixed header).
 */
static void
check_pseudo_sum(const struct rte_mbuf *m, uint8_t proto, bool with_length, const char *what)
{
	uint8_t copy[1u << 9];
	const uint8_t *ip = rte_pktmbuf_read(m, m->l2_len, m->l3_len, copy);
	bool v4 = (m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0;
	uint32_t l4_len = with_length ? m->pkt_len - m->l2_len - m->l3_len : 0;
	uint8_t pseudo[40] = { 0 };
	uint16_t field, want;
	const void *f = rte_pktmbuf_read(m, m->l2_len + m->l3_len +
					 (proto == IPPROTO_TCP ? VHU_TCP_CSUM_OFFSET : VHU_UDP_CSUM_OFFSET),
					 sizeof(field), &field);

	FZ_CHECK(ip != NULL && f != NULL, "%s: headers beyond the frame", what);
	memcpy(&field, f, sizeof(field));
	/* addresses, then the 32-bit length and the protocol (RFC 8200, 8.1) */
	memcpy(pseudo, ip + (v4 ? 12 : 8), v4 ? 8 : 32);
	pseudo[32] = (uint8_t)(l4_len >> 24);
	pseudo[33] = (uint8_t)(l4_len >> 16);
	pseudo[34] = (uint8_t)(l4_len >> 8);
	pseudo[35] = (uint8_t)l4_len;
	pseudo[39] = proto;
	want = rte_raw_cksum(pseudo, sizeof(pseudo));
	FZ_CHECK(field == want, "%s: checksum field 0x%04x, pseudo-header sum %s length 0x%04x",
		 what, field, with_length ? "with" : "without", want);
}

/*
 * A TSO frame for a guest without GUEST_TSO: cut in software. @consistent:
 * a well-formed request whose results can be verified; @shared: someone else
 * holds the frame too.
 */
static void
segment(struct vhu_vring *vr, struct rte_mbuf *m, bool consistent, bool shared)
{
	struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	uint32_t headers = (uint32_t)m->l2_len + m->l3_len + m->l4_len;
	uint64_t malformed = vr->stats.malformed;
	uint32_t mss = m->tso_segsz;
	uint32_t payload = m->pkt_len - RTE_MIN(m->pkt_len, headers);
	unsigned int n = vhu_segment_for_guest(vr, m, segs);

	check_counted(vr, malformed, n > 0, "TSO frame");
	/*
	 * librte_gso cuts TCP over IPv4 (into at most VHU_GSO_MAX_SEGS); a
	 * frame that fits one segment needs no cutting, only its checksums
	 * finished, which cannot be done in a frame someone else holds.
	 */
	if (consistent && (m->ol_flags & RTE_MBUF_F_TX_IPV4))
		FZ_CHECK(n > 0 || payload > VHU_GSO_MAX_SEGS * mss || (payload <= mss && shared),
			 "a %u-byte TSO frame (headers %u, segment size %u) refused", m->pkt_len,
			 headers, mss);
	for (unsigned int i = 0; i < n; i++) {
		/* A frame that fits one segment comes back itself, held once more. */
		if (segs[i] != m)
			fz_check_mbuf(segs[i], UINT16_MAX);
		FZ_CHECK(!(segs[i]->ol_flags & OFFLOAD_REQUESTS),
			 "segment %u keeps offload requests 0x%" PRIx64, i,
			 (uint64_t)(segs[i]->ol_flags & OFFLOAD_REQUESTS));
		FZ_CHECK(segs[i]->pkt_len <= headers + mss,
			 "segment %u of %u bytes, %u + %u asked", i, segs[i]->pkt_len, headers, mss);
		if (consistent)
			check_checksums(segs[i], true, true, "segment");
	}
	rte_pktmbuf_free_bulk(segs, n);
}

/* The frame goes to a guest: a header, a software checksum, or segments. */
static void
to_guest(struct vhu_vring *vr, struct rte_mbuf *m, bool shared, bool verify)
{
	struct virtio_net_hdr h = { 0 };
	uint64_t malformed = vr->stats.malformed;
	bool consistent = request_consistent(m);
	uint64_t asked = m->ol_flags;
	bool ok;

	if (vhu_segment_needed_for_guest(vr, m)) {
		segment(vr, m, consistent && verify, shared);
		return;
	}
	if (!(asked & OFFLOAD_REQUESTS))
		return;
	ok = vhu_offload_to_guest(vr, m, &h);
	check_counted(vr, malformed, ok, "offload request");
	if (!ok)
		return;
	/* A GSO frame to the driver comes with NEEDS_CSUM (VIRTIO 1.2, 5.1.6.4.1). */
	FZ_CHECK(h.gso_type == VIRTIO_NET_HDR_GSO_NONE ||
		 ((h.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || h.gso_type == VIRTIO_NET_HDR_GSO_TCPV6 ||
		   h.gso_type == VIRTIO_NET_HDR_GSO_UDP) &&
		  (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)),
		 "GSO type %u, flags 0x%x", h.gso_type, h.flags);
	/*
	 * What the guest is told lies inside the frame, whatever the request:
	 * a checksum request that does not fit is refused, and so must be a
	 * segmentation request.
	 */
	FZ_CHECK(!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) ||
		 (uint32_t)h.csum_start + h.csum_offset + 2 <= m->pkt_len,
		 "checksum at %u+%u in a %u-byte frame", h.csum_start, h.csum_offset, m->pkt_len);
	FZ_CHECK(h.gso_type == VIRTIO_NET_HDR_GSO_NONE ||
		 (h.gso_size > 0 && h.hdr_len <= m->pkt_len),
		 "GSO header: size %u, header length %u, frame %u", h.gso_size, h.hdr_len,
		 m->pkt_len);
	if (!consistent)
		return;
	if ((h.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || h.gso_type == VIRTIO_NET_HDR_GSO_TCPV6) &&
	    !shared)
		check_pseudo_sum(m, IPPROTO_TCP, true, "TSO frame for a guest");
	/* A complete UDP checksum was made the pseudo-header sum (a request's is the caller's). */
	if (h.gso_type == VIRTIO_NET_HDR_GSO_UDP &&
	    (asked & RTE_MBUF_F_TX_L4_MASK) != RTE_MBUF_F_TX_UDP_CKSUM)
		check_pseudo_sum(m, IPPROTO_UDP, true, "UFO frame for a guest");
	/* Checksums the guest does not take were finished here, in a frame nobody shares. */
	if (verify && !shared)
		check_checksums(m, (asked & RTE_MBUF_F_TX_IP_CKSUM) != 0,
				(asked & RTE_MBUF_F_TX_L4_MASK) &&
				!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM), "frame");
}

/*
 * A frame handed to an application that asked for nothing left to do: every
 * IPv4 header checksum and every TCP or UDP checksum (but a fragment's)
 * right. Checked on a contiguous copy with DPDK's single-buffer functions.
 */
static void
check_received_checksums(const struct rte_mbuf *m, const char *what)
{
	static uint8_t frame[UINT16_MAX + 1];
	struct rte_net_hdr_lens lens;
	uint32_t ptype = rte_net_get_ptype(m, &lens, RTE_PTYPE_ALL_MASK);
	uint32_t l4 = ptype & RTE_PTYPE_L4_MASK;
	const uint8_t *f = rte_pktmbuf_read(m, 0, m->pkt_len, frame);
	const void *l3 = f + lens.l2_len;
	bool v4 = RTE_ETH_IS_IPV4_HDR(ptype);

	FZ_CHECK(f != NULL && m->pkt_len <= sizeof(frame), "%s: %u bytes", what, m->pkt_len);
	if (v4)
		FZ_CHECK(rte_raw_cksum(l3, lens.l3_len) == 0xffff, "%s: bad IPv4 header checksum",
			 what);
	if ((v4 || RTE_ETH_IS_IPV6_HDR(ptype)) && (l4 == RTE_PTYPE_L4_TCP || l4 == RTE_PTYPE_L4_UDP))
		FZ_CHECK((v4 ? rte_ipv4_udptcp_cksum_verify(l3, f + lens.l2_len + lens.l3_len) :
			       rte_ipv6_udptcp_cksum_verify(l3, f + lens.l2_len + lens.l3_len)) == 0,
			 "%s: bad L4 checksum (%u bytes, %u segments)", what, m->pkt_len,
			 m->nb_segs);
}

/*
 * A GSO frame from the guest cut for an application without LRO: frames of
 * at most the guest's segment size (UDP: its multiple of 8), their checksums
 * right when the guest's request was, and nothing left to the application.
 */
static void
check_received_segments(struct vhu_vring *rx, struct rte_mbuf *m, bool verify)
{
	struct rte_mbuf *segs[VHU_GSO_MAX_SEGS];
	const struct vhu_vring_stats before = rx->stats;
	bool udp = (m->packet_type & RTE_PTYPE_L4_MASK) == RTE_PTYPE_L4_UDP;
	uint32_t most = (uint32_t)m->l2_len + m->l3_len +
			(udp ? m->tso_segsz & ~7u : m->l4_len + m->tso_segsz);
	unsigned int n = vhu_segment_received(rx, m, fz_pool, segs);
	uint64_t dropped = rx->stats.dropped - before.dropped;
	uint64_t malformed = rx->stats.malformed - before.malformed;
	uint64_t nomem = rx->stats.alloc_failed - before.alloc_failed;

	/* a frame dropped is counted once, by its cause; bad input also as malformed */
	FZ_CHECK(n > 0 ? dropped + malformed + nomem == 0 :
			 dropped + nomem == 1 && malformed <= dropped,
		 "GSO frame cut into %u: counted %" PRIu64 " dropped, %" PRIu64 " malformed, %"
		 PRIu64 " without mbufs", n, dropped, malformed, nomem);
	for (unsigned int i = 0; i < n; i++) {
		fz_check_mbuf(segs[i], UINT16_MAX);
		fz_check_offload(segs[i], rx->rx_offloads);
		FZ_CHECK(segs[i]->pkt_len <= most, "segment %u of %u bytes, at most %u asked", i,
			 segs[i]->pkt_len, most);
		if (verify)
			check_received_checksums(segs[i], "received segment");
	}
	rte_pktmbuf_free_bulk(segs, n);
}

/* A frame from a guest: its header and bytes from the input. */
static void
from_guest(struct vhu_vring *rx, struct vhu_vring *tx, struct fz_reader *r)
{
	struct virtio_net_hdr h;
	uint8_t head[256];
	uint16_t l3_len, l4_len;
	uint32_t len, seg_len, head_len, off;
	struct rte_mbuf *m;
	uint64_t malformed = rx->stats.malformed;
	uint32_t template_len, written;
	enum vhu_rx_verdict v;

	fz_bytes(r, &h, sizeof(h));
	len = fz_u16(r);
	seg_len = 64u * (1 + fz_u8(r) % 32);
	template_len = fz_frame_headers(head, (enum fz_l4)(fz_u8(r) % FZ_FRAME_KINDS), len, false,
					&l3_len, &l4_len);
	memset(head + FZ_HDR_MAX, 0, sizeof(head) - FZ_HDR_MAX);
	off = fz_u8(r);
	written = (uint32_t)fz_bytes(r, head + off, RTE_MIN((size_t)fz_u8(r), sizeof(head) - off));
	head_len = RTE_MAX(template_len, off + written);
	m = fz_make_frame(head, head_len, len, RTE_MAX(seg_len, len / 128 + 1), 0);
	if (m == NULL)
		return;
	v = vhu_offload_from_guest(rx, &h, m);
	check_counted(rx, malformed, v != VHU_RX_DROP, "guest header");
	if (v != VHU_RX_DROP)
		fz_check_offload(m, rx->rx_offloads);
	if (v == VHU_RX_SEGMENT) {
		FZ_CHECK(!(rx->rx_offloads & (VHU_RX_OFFLOAD_LRO | VHU_RX_OFFLOAD_LEGACY)),
			 "a GSO frame cut for an application that takes it whole");
		/* TCP segments get checksums of their own, right if the headers are. */
		check_received_segments(rx, m, (written == 0 || off >= template_len) &&
					(m->packet_type & RTE_PTYPE_L4_MASK) == RTE_PTYPE_L4_TCP);
	} else if (v == VHU_RX_DELIVER && (rx->rx_offloads & VHU_RX_OFFLOAD_LEGACY)) {
		if (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG)
			check_pseudo_sum(m, IPPROTO_TCP, false, "GSO frame from a guest");
		/* The guest's checksum fields are its own: nothing to verify. */
		to_guest(tx, m, false, false);
	} else if (v == VHU_RX_DELIVER) {
		FZ_CHECK(!(m->ol_flags & RTE_MBUF_F_RX_LRO) ||
			 h.gso_type != VIRTIO_NET_HDR_GSO_NONE, "LRO flag on a frame without GSO");
	}
	rte_pktmbuf_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_reader r = { .p = data, .left = size };
	uint8_t cfg = fz_u8(&r);
	static struct vhu_vring rx, tx;

	fz_input_begin();
	vhu_vring_ctl_init(&rx, 1, "fuzz", SOCKET_ID_ANY, 0, NULL);
	vhu_vring_ctl_init(&tx, 0, "fuzz", SOCKET_ID_ANY, 0, &fz_gso);
	/* The sending guest was offered every GSO kind there is. */
	rx.neg.features = VHU_BIT(VIRTIO_NET_F_HOST_TSO4) | VHU_BIT(VIRTIO_NET_F_HOST_TSO6) |
			  VHU_BIT(VIRTIO_NET_F_HOST_UFO) | VHU_BIT(VIRTIO_NET_F_HOST_ECN);
	rx.rx_offloads = fz_rx_offloads(fz_u8(&r));
	tx.neg.features = ((cfg & CFG_GUEST_CSUM) ? VHU_BIT(VIRTIO_NET_F_GUEST_CSUM) : 0) |
		      ((cfg & CFG_GUEST_TSO4) ? VHU_BIT(VIRTIO_NET_F_GUEST_TSO4) : 0) |
		      ((cfg & CFG_GUEST_TSO6) ? VHU_BIT(VIRTIO_NET_F_GUEST_TSO6) : 0) |
		      ((cfg & CFG_GUEST_UFO) ? VHU_BIT(VIRTIO_NET_F_GUEST_UFO) : 0);
	if (cfg & CFG_FROM_APP) {
		struct fz_frame f;

		if (fz_read_frame(&r, &f)) {
			to_guest(&tx, f.m, f.shared != NULL, true);
			fz_frame_free(&f);
		}
	} else {
		from_guest(&rx, &tx, &r);
	}
	fz_input_end();
	return 0;
}
