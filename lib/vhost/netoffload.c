/* SPDX-License-Identifier: BSD-3-Clause */
#include "netoffload.h"

#include <stddef.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_net.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "checksum.h"
#include "zerocopy.h"

/* The largest IPv4 header, options included. */
#define IPV4_HDR_MAX 60

/*
 * Whether the bytes @m holds are its alone: its own buffer, or an external
 * one (ext-buffer=1, DPDK's vhost library's EXTBUF mbufs in Open vSwitch, a
 * NIC's pinned buffers) attached to it only, and in either case @m not held
 * twice. Never a guest's buffer (zero-copy).
 */
static bool
mbuf_data_private(const struct rte_mbuf *m)
{
	if (rte_mbuf_refcnt_read(m) != 1 || RTE_MBUF_CLONED(m))
		return false;
	return !RTE_MBUF_HAS_EXTBUF(m) ||
	       (rte_mbuf_ext_refcnt_read(m->shinfo) == 1 && !vhu_zc_buffer(m->shinfo));
}

bool
vhu_mbuf_range_writable(const struct rte_mbuf *m, uint32_t off, uint32_t len)
{
	for (; m != NULL && len > 0; m = m->next) {
		if (off >= m->data_len) {
			off -= m->data_len;
			continue;
		}
		if (!mbuf_data_private(m))
			return false;
		len -= RTE_MIN(len, (uint32_t)m->data_len - off);
		off = 0;
	}
	return true;
}

/*
 * Stores in the checksum field of the TCP or UDP (@proto) header of @m the
 * pseudo-header sum a checksum left to the receiver starts from. For TSO the
 * two sides disagree on the length in it: DPDK (rte_ipv4_phdr_cksum with
 * RTE_MBUF_F_TX_TCP_SEG, what NICs and rte_gso expect) leaves the TCP length
 * out, virtio (Linux, DPDK's virtio PMD) puts the whole frame's in: virtio's
 * when @with_length is true, DPDK's when false. The length is the L4 one,
 * whatever IPv6 extension headers lie between.
 */
static void
set_pseudo_sum(struct rte_mbuf *m, bool ipv4, uint8_t proto, bool with_length)
{
	bool tcp = proto == IPPROTO_TCP;
	uint32_t l4 = (uint32_t)m->l2_len + m->l3_len;
	union {
		struct rte_ipv4_hdr v4;
		struct rte_ipv6_hdr v6;
	} copy;
	const void *ip = rte_pktmbuf_read(m, m->l2_len, ipv4 ? sizeof(copy.v4) : sizeof(copy.v6),
					  &copy);

	if (ip == NULL ||
	    l4 + (tcp ? sizeof(struct rte_tcp_hdr) : sizeof(struct rte_udp_hdr)) > m->pkt_len)
		return;
	vhu_store16(m, l4 + (tcp ? VHU_TCP_CSUM_OFFSET : VHU_UDP_CSUM_OFFSET),
		    vhu_pseudo_sum(ip, ipv4, proto, with_length ? m->pkt_len - l4 : 0));
}

/* ---- from the guest ---- */

/* What a guest's header asks of its frame, once checked against the frame. */
struct guest_request {
	struct rte_net_hdr_lens lens;
	uint32_t ptype;
	bool ipv4;
	bool l4_known;		/* csum_start/offset name the frame's own TCP or UDP checksum */
	uint8_t gso;		/* VIRTIO_NET_HDR_GSO_*, without the ECN bit */
};

/*
 * Checks @h against @m. A checksum request must lie in the frame; a GSO
 * request must be one the guest was offered, match the frame's headers and
 * name a segment size between VHU_GSO_MIN_SEGSZ and what an IP packet holds.
 */
static bool
parse_guest_request(struct vhu_vring *vr, const struct virtio_net_hdr *h, struct rte_mbuf *m,
		    struct guest_request *rq)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	bool ecn = (h->gso_type & VIRTIO_NET_HDR_GSO_ECN) != 0;
	struct rte_net_hdr_lens *lens = &rq->lens;
	uint32_t l4, headers;
	bool ipv6, gso_ok;

	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
		vhu_vring_bad_input(vr, "GSO type 0x%x without NEEDS_CSUM; frame dropped",
				    h->gso_type);
		return false;
	}
	if ((uint32_t)h->csum_start + h->csum_offset + 2 > m->pkt_len) {
		vhu_vring_bad_input(vr, "checksum at %u+%u outside a %u-byte frame; frame dropped",
				    h->csum_start, h->csum_offset, m->pkt_len);
		return false;
	}
	rq->ptype = rte_net_get_ptype(m, lens, RTE_PTYPE_L2_MASK | RTE_PTYPE_L3_MASK |
				      RTE_PTYPE_L4_MASK);
	l4 = rq->ptype & RTE_PTYPE_L4_MASK;
	rq->ipv4 = RTE_ETH_IS_IPV4_HDR(rq->ptype);
	ipv6 = RTE_ETH_IS_IPV6_HDR(rq->ptype);
	/*
	 * rte_net_get_ptype() names the L4 protocol even of a truncated header,
	 * and takes TCP's header length from its data offset unchecked.
	 */
	rq->l4_known = (rq->ipv4 || ipv6) && h->csum_start == lens->l2_len + lens->l3_len &&
		       (uint32_t)lens->l2_len + lens->l3_len + lens->l4_len <= m->pkt_len &&
		       ((l4 == RTE_PTYPE_L4_TCP && h->csum_offset == VHU_TCP_CSUM_OFFSET &&
			 lens->l4_len >= sizeof(struct rte_tcp_hdr)) ||
			(l4 == RTE_PTYPE_L4_UDP && h->csum_offset == VHU_UDP_CSUM_OFFSET &&
			 lens->l4_len >= sizeof(struct rte_udp_hdr)));
	rq->gso = gso;
	if (gso == VIRTIO_NET_HDR_GSO_NONE && !ecn)
		return true;
	headers = (uint32_t)lens->l3_len + lens->l4_len;
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		gso_ok = rq->ipv4 && l4 == RTE_PTYPE_L4_TCP && vhu_vring_has(vr, VIRTIO_NET_F_HOST_TSO4);
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		gso_ok = ipv6 && l4 == RTE_PTYPE_L4_TCP && vhu_vring_has(vr, VIRTIO_NET_F_HOST_TSO6);
		break;
	case VIRTIO_NET_HDR_GSO_UDP:
		gso_ok = l4 == RTE_PTYPE_L4_UDP && vhu_vring_has(vr, VIRTIO_NET_F_HOST_UFO);
		break;
	default:
		gso_ok = false;
		break;
	}
	if (!gso_ok || !rq->l4_known || (ecn && !vhu_vring_has(vr, VIRTIO_NET_F_HOST_ECN)) ||
	    h->gso_size < VHU_GSO_MIN_SEGSZ || headers + h->gso_size > UINT16_MAX) {
		vhu_vring_bad_input(vr, "GSO type 0x%x, size %u does not match the frame or what was offered; frame dropped",
				    h->gso_type, h->gso_size);
		return false;
	}
	m->l2_len = lens->l2_len;
	m->l3_len = lens->l3_len;
	m->l4_len = lens->l4_len;
	m->tso_segsz = h->gso_size;
	return true;
}

/*
 * DPDK's vhost library's "legacy" convention: the guest's requests as TX
 * offload requests, the form another port takes unchanged (a NIC, or an
 * eth_vhost port handing a 64 KB frame whole to its guest).
 */
static enum vhu_rx_verdict
as_tx_requests(const struct virtio_net_hdr *h, struct rte_mbuf *m, const struct guest_request *rq)
{
	uint64_t ip = rq->ipv4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6;

	if (rq->gso == VIRTIO_NET_HDR_GSO_UDP) {
		/* Fragments cannot finish a datagram's checksum: it is done here. */
		vhu_finish_checksum(m, h->csum_start, h->csum_offset);
		m->ol_flags |= ip | RTE_MBUF_F_TX_UDP_SEG |
			       (rq->ipv4 ? RTE_MBUF_F_TX_IP_CKSUM : 0);
		return VHU_RX_DELIVER;
	}
	if (!rq->l4_known) {
		/* A checksum mbuf flags cannot ask for: finish it here. */
		vhu_finish_checksum(m, h->csum_start, h->csum_offset);
		return VHU_RX_DELIVER;
	}
	m->l2_len = rq->lens.l2_len;
	m->l3_len = rq->lens.l3_len;
	m->l4_len = rq->lens.l4_len;
	m->ol_flags |= ip | ((rq->ptype & RTE_PTYPE_L4_MASK) == RTE_PTYPE_L4_TCP ?
			     RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
	if (rq->gso != VIRTIO_NET_HDR_GSO_NONE) {
		/* TSO over IPv4 asks for the IPv4 checksum too (rte_mbuf_core.h). */
		m->ol_flags |= RTE_MBUF_F_TX_TCP_SEG | (rq->ipv4 ? RTE_MBUF_F_TX_IP_CKSUM : 0);
		set_pseudo_sum(m, rq->ipv4, IPPROTO_TCP, false);	/* the mbuf is ours: a NIC's convention */
	}
	return VHU_RX_DELIVER;
}

enum vhu_rx_verdict
vhu_offload_from_guest(struct vhu_vring *vr, const struct virtio_net_hdr *h, struct rte_mbuf *m)
{
	struct guest_request rq;

	/* Flags the device does not know are ignored (VIRTIO 1.2, 5.1.6.2.2). */
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && h->gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return VHU_RX_DELIVER;
	if (!parse_guest_request(vr, h, m, &rq))
		return VHU_RX_DROP;
	if (vr->rx_offloads & VHU_RX_OFFLOAD_LEGACY)
		return as_tx_requests(h, m, &rq);
	m->packet_type = rq.ptype;
	if (vhu_offload_cuts_gso(vr, rq.gso))
		return VHU_RX_SEGMENT;	/* the segments get complete checksums */
	if (rq.gso != VIRTIO_NET_HDR_GSO_NONE)
		m->ol_flags |= RTE_MBUF_F_RX_LRO;	/* what remains: the application's LRO */
	/* A datagram to fragment cannot leave its checksum to the fragments. */
	if (rq.l4_known && (vr->rx_offloads & VHU_RX_OFFLOAD_CKSUM) &&
	    rq.gso != VIRTIO_NET_HDR_GSO_UDP) {
		m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_NONE;
		return VHU_RX_DELIVER;
	}
	vhu_finish_checksum(m, h->csum_start, h->csum_offset);
	if (rq.l4_known)
		m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	return VHU_RX_DELIVER;
}

/* ---- to the guest ---- */

/* vhu_mbuf_range_writable(), or a log line saying why the frame is dropped. */
static bool
writable(struct vhu_vring *vr, const struct rte_mbuf *m, uint32_t off, uint32_t len)
{
	if (vhu_mbuf_range_writable(m, off, len))
		return true;
	vhu_vring_bad_input(vr, "checksum to write into a shared or indirect mbuf; frame dropped");
	return false;
}

/* The IPv4 header checksum, which virtio cannot leave to the guest. */
static bool
finish_ipv4_checksum(struct vhu_vring *vr, struct rte_mbuf *m)
{
	uint8_t buf[IPV4_HDR_MAX];
	const struct rte_ipv4_hdr *ip;
	uint32_t len;

	ip = rte_pktmbuf_read(m, m->l2_len, sizeof(*ip), buf);
	len = ip != NULL ? rte_ipv4_hdr_len(ip) : 0;
	if (len < sizeof(*ip) || (uint32_t)m->l2_len + len > m->pkt_len) {
		vhu_vring_bad_input(vr, "IPv4 checksum request for a %u-byte frame with a %u-byte L2 header; frame dropped",
				    m->pkt_len, m->l2_len);
		return false;
	}
	/* The whole header, options included, in a buffer it fits. */
	ip = rte_pktmbuf_read(m, m->l2_len, len, buf);
	if (ip != (const void *)buf)
		memcpy(buf, ip, len);
	/* Already right (a frame flooded to several ports): nothing to write. */
	if (rte_raw_cksum(buf, len) == 0xffff)
		return true;
	if (!writable(vr, m, m->l2_len + offsetof(struct rte_ipv4_hdr, hdr_checksum), 2))
		return false;
	((struct rte_ipv4_hdr *)buf)->hdr_checksum = 0;
	vhu_store16(m, m->l2_len + offsetof(struct rte_ipv4_hdr, hdr_checksum),
		    (uint16_t)~rte_raw_cksum(buf, len));
	return true;
}

/* A checksum request for the guest: left to it with GUEST_CSUM, else finished here. */
static bool
checksum_to_guest(struct vhu_vring *vr, struct rte_mbuf *m, struct virtio_net_hdr *h,
		  uint16_t csum_start, uint16_t csum_offset)
{
	if (vhu_vring_has(vr, VIRTIO_NET_F_GUEST_CSUM)) {
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->csum_start = csum_start;
		h->csum_offset = csum_offset;
		return true;
	}
	if (!writable(vr, m, (uint32_t)csum_start + csum_offset, 2))
		return false;
	vhu_finish_checksum(m, csum_start, csum_offset);
	return true;
}

bool
vhu_offload_to_guest(struct vhu_vring *vr, struct rte_mbuf *m, struct virtio_net_hdr *h)
{
	uint64_t ol = m->ol_flags;
	uint64_t l4 = ol & RTE_MBUF_F_TX_L4_MASK;
	bool udp = l4 == RTE_MBUF_F_TX_UDP_CKSUM || (ol & RTE_MBUF_F_TX_UDP_SEG);
	uint16_t csum_start = (uint16_t)(m->l2_len + m->l3_len);
	uint16_t csum_offset = udp ? VHU_UDP_CSUM_OFFSET : VHU_TCP_CSUM_OFFSET;
	bool l4_request = (ol & (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)) ||
			  l4 == RTE_MBUF_F_TX_TCP_CKSUM || l4 == RTE_MBUF_F_TX_UDP_CKSUM;

	if (l4_request && (uint32_t)csum_start + csum_offset + 2 > m->pkt_len) {
		vhu_vring_bad_input(vr, "checksum offload at %u+%u beyond a %u-byte frame; frame dropped",
				    csum_start, csum_offset, m->pkt_len);
		return false;
	}
	if ((ol & RTE_MBUF_F_TX_IP_CKSUM) && !finish_ipv4_checksum(vr, m))
		return false;
	if (ol & RTE_MBUF_F_TX_TCP_SEG) {
		bool v4 = (ol & RTE_MBUF_F_TX_IPV4) != 0;

		if (!vhu_vring_has(vr, VIRTIO_NET_F_GUEST_CSUM) ||
		    !vhu_vring_has(vr, v4 ? VIRTIO_NET_F_GUEST_TSO4 : VIRTIO_NET_F_GUEST_TSO6)) {
			vhu_vring_bad_input(vr, "TCP segmentation for a guest without GUEST_TSO%c; frame dropped",
					    v4 ? '4' : '6');
			return false;
		}
		if (m->tso_segsz == 0 || (uint32_t)csum_start + m->l4_len > m->pkt_len) {
			vhu_vring_bad_input(vr, "TCP segmentation request (segment size %u, headers %u) for a %u-byte frame; frame dropped",
					    m->tso_segsz, csum_start + m->l4_len, m->pkt_len);
			return false;
		}
		/* An mbuf others hold keeps its field as it is: we may not write. */
		if (vhu_mbuf_range_writable(m, (uint32_t)csum_start + VHU_TCP_CSUM_OFFSET, 2))
			set_pseudo_sum(m, v4, IPPROTO_TCP, true);
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->gso_type = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
		h->gso_size = m->tso_segsz;
		h->hdr_len = (uint16_t)(csum_start + m->l4_len);
		h->csum_start = csum_start;
		h->csum_offset = VHU_TCP_CSUM_OFFSET;
		return true;
	}
	if (ol & RTE_MBUF_F_TX_UDP_SEG) {
		if (!vhu_vring_has(vr, VIRTIO_NET_F_GUEST_CSUM) ||
		    !vhu_vring_has(vr, VIRTIO_NET_F_GUEST_UFO) || m->tso_segsz == 0) {
			vhu_vring_bad_input(vr, "UDP fragmentation (segment size %u) for a guest without GUEST_UFO; frame dropped",
					    m->tso_segsz);
			return false;
		}
		/*
		 * A GSO frame goes to the guest with NEEDS_CSUM and the
		 * pseudo-header sum in its checksum field (VIRTIO 1.2,
		 * 5.1.6.4.1). A UDP checksum request has that sum there already
		 * (DPDK's convention counts the length for UDP, as virtio's
		 * does); a complete checksum becomes it again, for the guest to
		 * finish.
		 */
		if (l4 != RTE_MBUF_F_TX_UDP_CKSUM) {
			if (!writable(vr, m, (uint32_t)csum_start + csum_offset, 2))
				return false;
			set_pseudo_sum(m, (ol & RTE_MBUF_F_TX_IPV4) != 0, IPPROTO_UDP, true);
		}
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->csum_start = csum_start;
		h->csum_offset = csum_offset;
		h->gso_type = VIRTIO_NET_HDR_GSO_UDP;
		h->gso_size = m->tso_segsz;
		h->hdr_len = (uint16_t)(csum_start + sizeof(struct rte_udp_hdr));
		return true;
	}
	if (!l4_request)
		return true;
	return checksum_to_guest(vr, m, h, csum_start, csum_offset);
}
