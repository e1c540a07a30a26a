/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: the virtio-net header parser and writer (netoffload.c)
 * on its own, over frames of any shape.
 *
 * An input is one frame and where it goes:
 * - from a guest: a virtio-net header (raw) and a frame (headers from a
 *   template, overwritten in part by raw bytes) go through
 *   vhu_offload_from_guest(); when it accepts them, the mbuf's offload
 *   requests must be consistent (fz_check_offload) and the frame goes on to
 *   a second guest, as between two eth_vhost ports;
 * - from an application: a frame with offload requests (fz_read_frame).
 * To a guest, the frame gets a header (vhu_offload_to_guest) or, without
 * GUEST_TSO, is cut in software (vhu_offload_segment).
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
 * GUEST_TSO4, GUEST_TSO6; bit 3: the frame comes from an application),
 * then for a guest's frame: the 10-byte header, frame length (u16), segment
 * size (u8), template (u8, enum fz_l4), and raw bytes (offset u8, count u8,
 * bytes) over the frame's first 256 bytes.
 */
#include <string.h>

#include <rte_ip.h>
#include <rte_mbuf.h>

#include "fuzz_common.h"
#include "netoffload.h"
#include "vring_ctl.h"
#include "virtio_defs.h"

#define CFG_GUEST_CSUM	0x01
#define CFG_GUEST_TSO4	0x02
#define CFG_GUEST_TSO6	0x04
#define CFG_FROM_APP	0x08

#define OFFLOAD_REQUESTS (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM)

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
 * The TCP checksum field of a TSO frame holds the pseudo-header sum in the
 * convention of whoever reads it next: virtio's (with the L4 length) for a
 * guest, DPDK's (without) in an mbuf.
 */
static void
check_tso_pseudo_sum(const struct rte_mbuf *m, bool with_length, const char *what)
{
	uint8_t copy[1u << 9];
	const void *ip = rte_pktmbuf_read(m, m->l2_len, m->l3_len, copy);
	const uint64_t flags = with_length ? 0 : RTE_MBUF_F_TX_TCP_SEG;
	uint16_t field, want;
	const void *f = rte_pktmbuf_read(m, m->l2_len + m->l3_len + VHU_TCP_CSUM_OFFSET,
					 sizeof(field), &field);

	FZ_CHECK(ip != NULL && f != NULL, "%s: headers beyond the frame", what);
	memcpy(&field, f, sizeof(field));
	want = (m->ol_flags & RTE_MBUF_F_TX_IPV4) ? rte_ipv4_phdr_cksum(ip, flags) :
						    rte_ipv6_phdr_cksum(ip, flags);
	FZ_CHECK(field == want, "%s: TCP checksum field 0x%04x, pseudo-header sum %s length 0x%04x",
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
	unsigned int n = vhu_offload_segment(vr, m, segs);

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

	if (vhu_offload_needs_segmentation(vr, m)) {
		segment(vr, m, consistent && verify, shared);
		return;
	}
	if (!(asked & OFFLOAD_REQUESTS))
		return;
	ok = vhu_offload_to_guest(vr, m, &h);
	check_counted(vr, malformed, ok, "offload request");
	if (!ok)
		return;
	FZ_CHECK(h.gso_type == VIRTIO_NET_HDR_GSO_NONE ||
		 ((h.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || h.gso_type == VIRTIO_NET_HDR_GSO_TCPV6) &&
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
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE && !shared)
		check_tso_pseudo_sum(m, true, "TSO frame for a guest");
	/* Checksums the guest does not take were finished here, in a frame nobody shares. */
	if (verify && !shared)
		check_checksums(m, (asked & RTE_MBUF_F_TX_IP_CKSUM) != 0,
				(asked & RTE_MBUF_F_TX_L4_MASK) &&
				!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM), "frame");
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
	bool ok;

	fz_bytes(r, &h, sizeof(h));
	len = fz_u16(r);
	seg_len = 64u * (1 + fz_u8(r) % 32);
	head_len = fz_frame_headers(head, (enum fz_l4)(fz_u8(r) % FZ_FRAME_KINDS), len, false,
				    &l3_len, &l4_len);
	memset(head + FZ_HDR_MAX, 0, sizeof(head) - FZ_HDR_MAX);
	off = fz_u8(r);
	head_len = RTE_MAX(head_len, off + (uint32_t)fz_bytes(r, head + off,
						RTE_MIN((size_t)fz_u8(r), sizeof(head) - off)));
	m = fz_make_frame(head, head_len, len, RTE_MAX(seg_len, len / 128 + 1), 0);
	if (m == NULL)
		return;
	ok = vhu_offload_from_guest(rx, &h, m);
	check_counted(rx, malformed, ok, "guest header");
	if (ok) {
		fz_check_offload(m);
		if (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG)
			check_tso_pseudo_sum(m, false, "GSO frame from a guest");
		/* The guest's checksum fields are its own: nothing to verify. */
		to_guest(tx, m, false, false);
	}
	rte_pktmbuf_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_reader r = { .p = data, .left = size };
	uint8_t cfg = fz_u8(&r);
	struct vhu_vring rx, tx;

	fz_input_begin();
	vhu_vring_ctl_init(&rx, 1, "fuzz", SOCKET_ID_ANY, 0, NULL);
	vhu_vring_ctl_init(&tx, 0, "fuzz", SOCKET_ID_ANY, 0, &fz_gso);
	tx.neg.features = ((cfg & CFG_GUEST_CSUM) ? VHU_BIT(VIRTIO_NET_F_GUEST_CSUM) : 0) |
		      ((cfg & CFG_GUEST_TSO4) ? VHU_BIT(VIRTIO_NET_F_GUEST_TSO4) : 0) |
		      ((cfg & CFG_GUEST_TSO6) ? VHU_BIT(VIRTIO_NET_F_GUEST_TSO6) : 0);
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
