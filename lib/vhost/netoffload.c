/* SPDX-License-Identifier: BSD-3-Clause */
#include "netoffload.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_net.h>
#include <rte_tcp.h>

#include "vhu_log.h"

/*
 * Stores the two bytes of @value as they lie in memory at byte @off of the
 * frame: checksums computed by rte_raw_cksum are already in wire order so.
 */
static void
store16(struct rte_mbuf *m, uint32_t off, uint16_t value)
{
	const uint8_t *bytes = (const uint8_t *)&value;
	int b = 0;

	for (struct rte_mbuf *seg = m; seg != NULL && b < 2; seg = seg->next) {
		while (b < 2 && off < seg->data_len)
			*rte_pktmbuf_mtod_offset(seg, uint8_t *, off++) = bytes[b++];
		off -= seg->data_len;
	}
}

/*
 * The folded one's-complement sum of @len bytes from @off of a chain. Not
 * rte_raw_cksum_mbuf(): DPDK 22.11's drops the carries of a segment that
 * starts at an odd offset (it byte-swaps the unfolded sum cut to 16 bits),
 * so frames in odd-sized segments got wrong checksums. Each segment's sum
 * is folded before it is swapped here.
 */
static uint16_t
raw_cksum_chain(const struct rte_mbuf *m, uint32_t off, uint32_t len)
{
	uint32_t sum = 0, done = 0;

	for (; m != NULL && len > 0; m = m->next) {
		if (off >= m->data_len) {
			off -= m->data_len;
			continue;
		}
		uint32_t n = RTE_MIN(len, (uint32_t)m->data_len - off);
		uint16_t part = __rte_raw_cksum_reduce(
			__rte_raw_cksum(rte_pktmbuf_mtod_offset(m, const void *, off), n, 0));

		sum += (done & 1) ? rte_bswap16(part) : part;
		done += n;
		len -= n;
		off = 0;
	}
	return __rte_raw_cksum_reduce(sum);
}

/*
 * The one's-complement sum from @start to the end of the frame, folded and
 * complemented, stored at @start + @offset: what NEEDS_CSUM asks for (the
 * field already holds the pseudo-header sum).
 */
static void
finish_checksum(struct rte_mbuf *m, uint32_t start, uint32_t offset, bool udp)
{
	uint16_t sum = (uint16_t)~raw_cksum_chain(m, start, m->pkt_len - start);

	if (udp && sum == 0)
		sum = 0xffff;	/* 0 means "no checksum" in UDP */
	store16(m, start + offset, sum);
}

/*
 * The TCP checksum field of a TSO frame holds a pseudo-header sum, and the
 * two sides disagree on the length in it: DPDK (rte_ipv4_phdr_cksum with
 * RTE_MBUF_F_TX_TCP_SEG, what NICs and rte_gso expect) leaves the TCP length
 * out, virtio (Linux, DPDK's virtio PMD) puts the whole frame's in. Rewrites
 * it for @with_length: virtio's when true, DPDK's when false.
 */
static void
set_tso_pseudo_sum(struct rte_mbuf *m, bool ipv4, bool with_length)
{
	const uint64_t flags = with_length ? 0 : RTE_MBUF_F_TX_TCP_SEG;
	union {
		struct rte_ipv4_hdr v4;
		struct rte_ipv6_hdr v6;
	} copy;
	const void *ip = rte_pktmbuf_read(m, m->l2_len, ipv4 ? sizeof(copy.v4) : sizeof(copy.v6),
					  &copy);

	if (ip == NULL || (uint32_t)m->l2_len + m->l3_len + sizeof(struct rte_tcp_hdr) > m->pkt_len)
		return;
	store16(m, (uint32_t)m->l2_len + m->l3_len + VHU_TCP_CSUM_OFFSET,
		ipv4 ? rte_ipv4_phdr_cksum(ip, flags) : rte_ipv6_phdr_cksum(ip, flags));
}

bool
vhu_offload_from_guest(struct vhu_vring *vr, const struct virtio_net_hdr *h,
		       struct rte_mbuf *m)
{
	uint8_t gso = h->gso_type;
	struct rte_net_hdr_lens lens;
	uint32_t ptype, l4;
	bool ipv4, ipv6, l4_known;

	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
		if (gso == VIRTIO_NET_HDR_GSO_NONE)
			return true;
		vhu_vring_bad_input(vr, "GSO type %u without NEEDS_CSUM; frame dropped", gso);
		return false;
	}
	if ((uint32_t)h->csum_start + h->csum_offset + 2 > m->pkt_len) {
		vhu_vring_bad_input(vr, "checksum at %u+%u outside a %u-byte frame; frame dropped",
				    h->csum_start, h->csum_offset, m->pkt_len);
		return false;
	}
	ptype = rte_net_get_ptype(m, &lens, RTE_PTYPE_L2_MASK | RTE_PTYPE_L3_MASK |
				  RTE_PTYPE_L4_MASK);
	l4 = ptype & RTE_PTYPE_L4_MASK;
	ipv4 = RTE_ETH_IS_IPV4_HDR(ptype);
	ipv6 = RTE_ETH_IS_IPV6_HDR(ptype);
	/*
	 * rte_net_get_ptype() names the L4 protocol even of a truncated header,
	 * and takes TCP's header length from its data offset unchecked.
	 */
	l4_known = (ipv4 || ipv6) && h->csum_start == lens.l2_len + lens.l3_len &&
		   (uint32_t)lens.l2_len + lens.l3_len + lens.l4_len <= m->pkt_len &&
		   ((l4 == RTE_PTYPE_L4_TCP && h->csum_offset == VHU_TCP_CSUM_OFFSET &&
		     lens.l4_len >= sizeof(struct rte_tcp_hdr)) ||
		    (l4 == RTE_PTYPE_L4_UDP && h->csum_offset == VHU_UDP_CSUM_OFFSET &&
		     lens.l4_len >= sizeof(struct rte_udp_hdr)));

	if (gso != VIRTIO_NET_HDR_GSO_NONE) {
		bool tcp4 = gso == VIRTIO_NET_HDR_GSO_TCPV4 && ipv4;
		bool tcp6 = gso == VIRTIO_NET_HDR_GSO_TCPV6 && ipv6;

		if (!l4_known || l4 != RTE_PTYPE_L4_TCP || !(tcp4 || tcp6) || h->gso_size == 0) {
			vhu_vring_bad_input(vr, "GSO type 0x%x, size %u does not match the frame; frame dropped",
					    gso, h->gso_size);
			return false;
		}
		m->tso_segsz = h->gso_size;
		m->ol_flags |= RTE_MBUF_F_TX_TCP_SEG;
	}
	if (!l4_known) {
		/* A checksum mbuf flags cannot ask for: finish it here. */
		finish_checksum(m, h->csum_start, h->csum_offset, false);
		return true;
	}
	m->l2_len = lens.l2_len;
	m->l3_len = lens.l3_len;
	m->l4_len = lens.l4_len;
	m->ol_flags |= (ipv4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6) |
		       (l4 == RTE_PTYPE_L4_TCP ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
	if (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG)
		set_tso_pseudo_sum(m, ipv4, false);	/* the mbuf is ours: a NIC's convention */
	return true;
}

static bool
has(const struct vhu_vring *vr, unsigned int feature)
{
	return (vr->neg.features & VHU_BIT(feature)) != 0;
}

/* Writes are only ours to make in an mbuf chain nobody else holds, any segment of it. */
static bool
held_by_us_alone(const struct rte_mbuf *m)
{
	for (; m != NULL; m = m->next)
		if (!RTE_MBUF_DIRECT(m) || rte_mbuf_refcnt_read(m) != 1)
			return false;
	return true;
}

/* held_by_us_alone(), or a log line saying why the frame is dropped. */
static bool
writable(struct vhu_vring *vr, const struct rte_mbuf *m)
{
	if (held_by_us_alone(m))
		return true;
	vhu_vring_bad_input(vr, "checksum to finish in a shared or indirect mbuf; frame dropped");
	return false;
}

bool
vhu_offload_to_guest(struct vhu_vring *vr, struct rte_mbuf *m, struct virtio_net_hdr *h)
{
	uint64_t ol = m->ol_flags;
	uint64_t l4 = ol & RTE_MBUF_F_TX_L4_MASK;
	uint16_t csum_start = (uint16_t)(m->l2_len + m->l3_len);
	uint16_t csum_offset = l4 == RTE_MBUF_F_TX_UDP_CKSUM ? VHU_UDP_CSUM_OFFSET :
							       VHU_TCP_CSUM_OFFSET;
	bool l4_request = (ol & RTE_MBUF_F_TX_TCP_SEG) || l4 == RTE_MBUF_F_TX_TCP_CKSUM ||
			  l4 == RTE_MBUF_F_TX_UDP_CKSUM;

	if (l4_request && (uint32_t)csum_start + csum_offset + 2 > m->pkt_len) {
		vhu_vring_bad_input(vr, "checksum offload at %u+%u beyond a %u-byte frame; frame dropped",
				    csum_start, csum_offset, m->pkt_len);
		return false;
	}
	if (ol & RTE_MBUF_F_TX_IP_CKSUM) {
		/* virtio has no IPv4 header checksum offload. */
		struct rte_ipv4_hdr ip;

		if (m->pkt_len < (uint32_t)m->l2_len + sizeof(ip)) {
			vhu_vring_bad_input(vr, "IPv4 checksum request for a %u-byte frame with a %u-byte L2 header; frame dropped",
					    m->pkt_len, m->l2_len);
			return false;
		}
		if (!writable(vr, m))
			return false;
		rte_memcpy(&ip, rte_pktmbuf_read(m, m->l2_len, sizeof(ip), &ip), sizeof(ip));
		ip.hdr_checksum = 0;
		store16(m, m->l2_len + offsetof(struct rte_ipv4_hdr, hdr_checksum),
			   rte_ipv4_cksum(&ip));
	}
	if (ol & RTE_MBUF_F_TX_TCP_SEG) {
		bool v4 = (ol & RTE_MBUF_F_TX_IPV4) != 0;

		if (!has(vr, VIRTIO_NET_F_GUEST_CSUM) ||
		    !has(vr, v4 ? VIRTIO_NET_F_GUEST_TSO4 : VIRTIO_NET_F_GUEST_TSO6)) {
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
		if (held_by_us_alone(m))
			set_tso_pseudo_sum(m, v4, true);
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->gso_type = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
		h->gso_size = m->tso_segsz;
		h->hdr_len = (uint16_t)(csum_start + m->l4_len);
		h->csum_start = csum_start;
		h->csum_offset = VHU_TCP_CSUM_OFFSET;
		return true;
	}
	if (!l4_request)
		return true;
	if (has(vr, VIRTIO_NET_F_GUEST_CSUM)) {
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->csum_start = csum_start;
		h->csum_offset = csum_offset;
		return true;
	}
	if (!writable(vr, m))
		return false;
	finish_checksum(m, csum_start, csum_offset, l4 == RTE_MBUF_F_TX_UDP_CKSUM);
	return true;
}

/* ---- software segmentation (guest without GUEST_TSO) ---- */

#define GSO_POOL_MBUFS 4095
#define GSO_POOL_CACHE 64
/* A header copy: Ethernet, IP (with options) and TCP (with options). */
#define GSO_HEADER_ROOM 256

int
vhu_gso_pools_create(struct rte_gso_ctx *ctx, const char *port_name, int socket_id)
{
	static uint32_t pool_serial;
	uint32_t serial = __atomic_fetch_add(&pool_serial, 1, __ATOMIC_RELAXED);
	char name[RTE_MEMPOOL_NAMESIZE];

	memset(ctx, 0, sizeof(*ctx));
	snprintf(name, sizeof(name), "vhu_gso_hdr_%u", serial);
	ctx->direct_pool = rte_pktmbuf_pool_create(name, GSO_POOL_MBUFS, GSO_POOL_CACHE, 0,
						   RTE_PKTMBUF_HEADROOM + GSO_HEADER_ROOM,
						   socket_id);
	snprintf(name, sizeof(name), "vhu_gso_ref_%u", serial);
	ctx->indirect_pool = rte_pktmbuf_pool_create(name, GSO_POOL_MBUFS, GSO_POOL_CACHE, 0, 0,
						     socket_id);
	if (ctx->direct_pool == NULL || ctx->indirect_pool == NULL) {
		VHU_LOG(ERR, "%s: cannot create the segmentation mbuf pools: %s", port_name,
			rte_strerror(rte_errno));
		vhu_gso_pools_free(ctx);
		return -1;
	}
	ctx->gso_types = RTE_ETH_TX_OFFLOAD_TCP_TSO;
	return 0;
}

void
vhu_gso_pools_free(struct rte_gso_ctx *ctx)
{
	rte_mempool_free(ctx->direct_pool);
	rte_mempool_free(ctx->indirect_pool);
	ctx->direct_pool = NULL;
	ctx->indirect_pool = NULL;
}

bool
vhu_offload_needs_segmentation(const struct vhu_vring *vr, const struct rte_mbuf *m)
{
	if (!(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG))
		return false;
	return !has(vr, VIRTIO_NET_F_GUEST_CSUM) ||
	       !has(vr, (m->ol_flags & RTE_MBUF_F_TX_IPV4) ? VIRTIO_NET_F_GUEST_TSO4 :
							      VIRTIO_NET_F_GUEST_TSO6);
}

/* Complete IPv4 and TCP checksums of one segment (its headers are our copy). */
static void
checksum_segment(struct rte_mbuf *seg)
{
	uint32_t l3 = seg->l2_len;
	uint32_t l4 = seg->l2_len + seg->l3_len;
	struct rte_tcp_hdr *tcp = rte_pktmbuf_mtod_offset(seg, struct rte_tcp_hdr *, l4);
	uint16_t pseudo;

	if (seg->ol_flags & RTE_MBUF_F_TX_IPV4) {
		struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(seg, struct rte_ipv4_hdr *, l3);

		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		pseudo = rte_ipv4_phdr_cksum(ip, 0);
	} else {
		pseudo = rte_ipv6_phdr_cksum(rte_pktmbuf_mtod_offset(seg, struct rte_ipv6_hdr *, l3),
					     0);
	}
	/* The field holds the pseudo-header sum; the sum over the segment finishes it. */
	tcp->cksum = pseudo;
	finish_checksum(seg, l4, VHU_TCP_CSUM_OFFSET, false);
	seg->ol_flags &= ~(RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG);
}

unsigned int
vhu_offload_segment(struct vhu_vring *vr, struct rte_mbuf *m, struct rte_mbuf **segs)
{
	struct rte_gso_ctx ctx = *vr->gso;
	uint32_t headers = (uint32_t)m->l2_len + m->l3_len + m->l4_len;
	int n;

	if (ctx.direct_pool == NULL || m->tso_segsz == 0 || m->l4_len < sizeof(struct rte_tcp_hdr) ||
	    m->data_len < headers) {
		vhu_vring_bad_input(vr, "TSO frame that cannot be segmented (segment size %u, headers %u); frame dropped",
				    m->tso_segsz, headers);
		return 0;
	}
	ctx.gso_size = (uint16_t)RTE_MIN(headers + m->tso_segsz, (uint32_t)UINT16_MAX);
	n = rte_gso_segment(m, &ctx, segs, VHU_GSO_MAX_SEGS);
	if (n == 0) {
		/*
		 * It fits in one segment: the frame itself with its checksums
		 * finished, in a copy when others hold any part of it. (librte_gso
		 * also leaves alone what it does not segment, e.g. IPv4 fragments:
		 * those cannot go to a guest without TSO.)
		 */
		if (m->pkt_len > headers + m->tso_segsz) {
			vhu_vring_bad_input(vr, "TSO frame librte_gso does not segment (%u bytes, segment size %u); frame dropped",
					    m->pkt_len, m->tso_segsz);
			return 0;
		}
		if (held_by_us_alone(m)) {
			rte_pktmbuf_refcnt_update(m, 1);	/* the caller frees segs[] */
			segs[0] = m;
		} else {
			segs[0] = rte_pktmbuf_copy(m, ctx.direct_pool, 0, UINT32_MAX);
			if (segs[0] == NULL || segs[0]->data_len < headers) {
				rte_pktmbuf_free(segs[0]);
				vhu_vring_bad_input(vr, "no mbuf to finish a shared TSO frame in; frame dropped");
				return 0;
			}
		}
		checksum_segment(segs[0]);
		return 1;
	}
	if (n < 0) {
		vhu_vring_bad_input(vr, "software segmentation failed (%d); frame dropped", n);
		return 0;
	}
	for (int i = 0; i < n; i++)
		checksum_segment(segs[i]);
	return (unsigned int)n;
}
