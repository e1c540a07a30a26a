/* SPDX-License-Identifier: BSD-3-Clause */
#include "segment.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "checksum.h"
#include "frame_copy.h"
#include "netoffload.h"
#include "rxbuf.h"
#include "vhu_log.h"

#define GSO_POOL_MBUFS 4095
#define GSO_POOL_CACHE 64
/* A header copy: Ethernet, IP (with options) and TCP (with options). */
#define GSO_HEADER_ROOM 256

/* The IPv4 header checksum of a header at @ip, options included. */
static void
set_ipv4_checksum(struct rte_ipv4_hdr *ip)
{
	ip->hdr_checksum = 0;
	ip->hdr_checksum = (uint16_t)~rte_raw_cksum(ip, rte_ipv4_hdr_len(ip));
}

/* ---- towards a guest ---- */

/*
 * The pools of each NUMA socket (index socket + 1; 0 for SOCKET_ID_ANY) and
 * how many ports use them. One port's pools would take 5 MiB and 6 of
 * DPDK's 2560 memzones (Debian's build): 425 ports at most.
 */
static struct gso_pools {
	struct rte_mempool *direct;
	struct rte_mempool *indirect;
	uint32_t users;
} gso_pools[RTE_MAX_NUMA_NODES + 1];
static pthread_mutex_t gso_pools_lock = PTHREAD_MUTEX_INITIALIZER;

static void
pools_free(struct gso_pools *p)
{
	rte_mempool_free(p->direct);
	rte_mempool_free(p->indirect);
	p->direct = NULL;
	p->indirect = NULL;
}

int
vhu_gso_pools_create(struct rte_gso_ctx *ctx, const char *port_name, int socket_id)
{
	char name[RTE_MEMPOOL_NAMESIZE];
	struct gso_pools *p;
	int idx = socket_id + 1;

	memset(ctx, 0, sizeof(*ctx));
	if (idx < 0 || idx > RTE_MAX_NUMA_NODES) {
		VHU_LOG(ERR, "%s: NUMA socket %d out of range", port_name, socket_id);
		return -1;
	}
	p = &gso_pools[idx];
	pthread_mutex_lock(&gso_pools_lock);
	if (p->users == 0) {
		snprintf(name, sizeof(name), "vhu_gso_hdr_%d", idx);
		p->direct = rte_pktmbuf_pool_create(name, GSO_POOL_MBUFS, GSO_POOL_CACHE, 0,
						    RTE_PKTMBUF_HEADROOM + GSO_HEADER_ROOM,
						    socket_id);
		snprintf(name, sizeof(name), "vhu_gso_ref_%d", idx);
		p->indirect = rte_pktmbuf_pool_create(name, GSO_POOL_MBUFS, GSO_POOL_CACHE, 0, 0,
						      socket_id);
		if (p->direct == NULL || p->indirect == NULL) {
			VHU_LOG(ERR, "%s: cannot create the segmentation mbuf pools: %s",
				port_name, rte_strerror(rte_errno));
			pools_free(p);
			pthread_mutex_unlock(&gso_pools_lock);
			return -1;
		}
	}
	p->users++;
	ctx->direct_pool = p->direct;
	ctx->indirect_pool = p->indirect;
	pthread_mutex_unlock(&gso_pools_lock);
	ctx->gso_types = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_UDP_TSO;
	return 0;
}

void
vhu_gso_pools_free(struct rte_gso_ctx *ctx)
{
	pthread_mutex_lock(&gso_pools_lock);
	for (unsigned int i = 0; ctx->direct_pool != NULL && i < RTE_DIM(gso_pools); i++) {
		struct gso_pools *p = &gso_pools[i];

		if (p->users > 0 && p->direct == ctx->direct_pool && --p->users == 0)
			pools_free(p);
	}
	pthread_mutex_unlock(&gso_pools_lock);
	ctx->direct_pool = NULL;
	ctx->indirect_pool = NULL;
}

bool
vhu_segment_refused_by_guest(const struct vhu_vring *vr, const struct rte_mbuf *m)
{
	bool v4 = (m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0;
	uint32_t udp_field = (uint32_t)m->l2_len + m->l3_len + VHU_UDP_CSUM_OFFSET;

	/* A GSO frame goes to the guest with NEEDS_CSUM, which takes GUEST_CSUM. */
	if (!vhu_vring_has(vr, VIRTIO_NET_F_GUEST_CSUM))
		return true;
	if (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG)
		return !vhu_vring_has(vr, v4 ? VIRTIO_NET_F_GUEST_TSO4 : VIRTIO_NET_F_GUEST_TSO6);
	/*
	 * A complete UDP checksum is made the pseudo-header sum NEEDS_CSUM
	 * asks for (vhu_offload_to_guest): not in a field others hold.
	 */
	return !vhu_vring_has(vr, VIRTIO_NET_F_GUEST_UFO) ||
	       ((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) != RTE_MBUF_F_TX_UDP_CKSUM &&
		!vhu_mbuf_range_writable(m, udp_field, 2));
}

/* Complete checksums of one segment cut by librte_gso (its headers are our copy). */
static void
checksum_segment(struct rte_mbuf *seg, bool udp)
{
	uint32_t l3 = seg->l2_len;
	uint32_t l4 = seg->l2_len + seg->l3_len;
	void *ip = rte_pktmbuf_mtod_offset(seg, void *, l3);

	if (seg->ol_flags & RTE_MBUF_F_TX_IPV4)
		set_ipv4_checksum(ip);
	/* A fragment's UDP checksum is the datagram's, finished before the cut. */
	if (!udp) {
		struct rte_tcp_hdr *tcp = rte_pktmbuf_mtod_offset(seg, struct rte_tcp_hdr *, l4);

		tcp->cksum = vhu_pseudo_sum(ip, (seg->ol_flags & RTE_MBUF_F_TX_IPV4) != 0,
					    IPPROTO_TCP, seg->pkt_len - l4);
		vhu_finish_checksum(seg, l4, VHU_TCP_CSUM_OFFSET);
	}
	seg->ol_flags &= ~(RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM |
			   RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG);
}

/*
 * A frame that fits one segment, as its only segment: a copy, finished there,
 * so that @m goes back to the caller as it came if the guest has no room.
 * NULL (logged) without mbufs for the copy.
 */
static struct rte_mbuf *
whole_frame(struct vhu_vring *vr, struct rte_mbuf *m, struct rte_mempool *pool,
	    uint32_t headers)
{
	struct rte_mbuf *seg = rte_pktmbuf_copy(m, pool, 0, UINT32_MAX);

	if (seg == NULL || seg->data_len < headers) {
		rte_pktmbuf_free(seg);
		vhu_vring_bad_input(vr, "no mbuf to finish a GSO frame of one segment in; frame dropped");
		return NULL;
	}
	return seg;
}

unsigned int
vhu_segment_for_guest(struct vhu_vring *vr, struct rte_mbuf *m, struct rte_mbuf **segs)
{
	const uint64_t requests = m->ol_flags;
	const bool udp = (requests & RTE_MBUF_F_TX_UDP_SEG) != 0;
	uint32_t l4_headers = udp ? sizeof(struct rte_udp_hdr) : m->l4_len;
	uint32_t headers = (uint32_t)m->l2_len + m->l3_len + l4_headers;
	struct rte_mbuf *src = m;	/* what is cut */
	struct rte_gso_ctx ctx;
	int n;

	/* (librte_gso copies the headers into a mbuf of our header pool as they are.) */
	if (vr->gso == NULL || vr->gso->direct_pool == NULL || m->tso_segsz == 0 ||
	    m->data_len < headers || headers > GSO_HEADER_ROOM ||
	    (!udp && m->l4_len < sizeof(struct rte_tcp_hdr)) ||
	    (udp && !(requests & RTE_MBUF_F_TX_IPV4))) {
		vhu_vring_bad_input(vr, "%s frame that cannot be segmented (segment size %u, headers %u); frame dropped",
				    udp ? "UFO" : "TSO", m->tso_segsz, headers);
		return 0;
	}
	ctx = *vr->gso;
	const bool udp_checksum = udp &&
				  (requests & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_UDP_CKSUM;

	/*
	 * What is cut is a copy (@m goes back as it came if the guest has no
	 * room, and the segments point into what is cut):
	 * - for a UDP datagram whose checksum, in its first fragment, is
	 *   finished before the cut;
	 * - for a frame whose first mbuf is not direct (an external buffer:
	 *   ext-buffer=1, DPDK's vhost library's EXTBUF mbufs, both in Open
	 *   vSwitch; or a clone). librte_gso (DPDK 22.11, hdr_segment_init())
	 *   gives each segment's header mbuf, a direct one of our pool, the
	 *   frame's ol_flags, RTE_MBUF_F_EXTERNAL or _INDIRECT included; freed
	 *   (by us, or by librte_gso when it fails half-way), such a mbuf is
	 *   detached from a buffer it has not: a crash. A copy is direct.
	 */
	if (udp_checksum || !RTE_MBUF_DIRECT(m)) {
		src = rte_pktmbuf_copy(m, m->pool, 0, UINT32_MAX);
		if (src == NULL || src->data_len < headers) {
			rte_pktmbuf_free(src);
			vhu_vring_bad_input(vr, "no mbuf to copy a %s frame to cut into; frame dropped",
					    udp ? "UFO" : "TSO");
			return 0;
		}
		if (udp_checksum)
			vhu_finish_checksum(src, m->l2_len + m->l3_len, VHU_UDP_CSUM_OFFSET);
	}
	/* librte_gso's fragments carry payload in multiples of 8 bytes. */
	ctx.gso_size = (uint16_t)RTE_MIN((uint32_t)m->l2_len + m->l3_len +
					 (udp ? m->tso_segsz & ~7u : l4_headers + m->tso_segsz),
					 (uint32_t)UINT16_MAX);
	n = rte_gso_segment(src, &ctx, segs, VHU_GSO_MAX_SEGS);
	/* It clears the caller's request: a frame that goes back keeps it. */
	m->ol_flags = requests;
	if (n == 0) {
		/*
		 * It fits in one segment. (librte_gso also leaves alone what it
		 * does not segment, e.g. IPv4 fragments: those cannot go to a
		 * guest without TSO.)
		 */
		if (m->pkt_len > ctx.gso_size) {
			vhu_vring_bad_input(vr, "GSO frame librte_gso does not segment (%u bytes, segment size %u); frame dropped",
					    m->pkt_len, m->tso_segsz);
			n = 0;
		} else {
			segs[0] = whole_frame(vr, src, ctx.direct_pool, headers);
			n = segs[0] != NULL;
		}
	} else if (n == -ENOMEM) {
		/* The pools are empty for now: not the guest's fault, nor the frame's. */
		VHU_COUNT(vr->stats.alloc_failed, 1);
		n = 0;
	} else if (n < 0) {
		vhu_vring_bad_input(vr, "software segmentation failed (%d); frame dropped", n);
		n = 0;
	}
	for (int i = 0; i < n; i++)
		checksum_segment(segs[i], udp);
	/* The segments hold what they need of a copy. */
	if (src != m)
		rte_pktmbuf_free(src);
	return (unsigned int)n;
}

/* ---- from a guest ---- */

/* The longest headers a received GSO frame may have to be cut here. */
#define RX_HEADERS_MAX 256

/*
 * Appends bytes [@off, @off + @len) of the chain @src to @dst, chaining
 * more mbufs from @mp when it is full. False when mbufs ran out.
 */
static bool
append_range(struct rte_mbuf *dst, struct rte_mempool *mp, const struct rte_mbuf *src,
	     uint32_t off, uint32_t len)
{
	struct rte_mbuf *last = rte_pktmbuf_lastseg(dst);

	while (src != NULL && off >= src->data_len) {
		off -= src->data_len;
		src = src->next;
	}
	while (len > 0 && src != NULL) {
		uint32_t room = rte_pktmbuf_tailroom(last);
		uint32_t n;

		if (room == 0) {
			struct rte_mbuf *next = rte_pktmbuf_alloc(mp);

			if (next == NULL)
				return false;
			last->next = next;
			last = next;
			dst->nb_segs++;
			continue;
		}
		n = RTE_MIN(len, RTE_MIN(room, (uint32_t)src->data_len - off));
		vhu_copy(rte_pktmbuf_mtod_offset(last, void *, last->data_len),
			 rte_pktmbuf_mtod_offset(src, const void *, off), n);
		last->data_len += n;
		dst->pkt_len += n;
		len -= n;
		off += n;
		if (off == src->data_len) {
			src = src->next;
			off = 0;
		}
	}
	return len == 0;
}

/*
 * A new frame from @mp for ring @vr: the @hdr_len bytes of headers at @hdr,
 * then bytes [@off, @off + @len) of @m. NULL when mbufs ran out or the
 * frame does not fit the one mbuf the port must give (rxbuf.h).
 */
static struct rte_mbuf *
new_frame(const struct vhu_vring *vr, struct rte_mempool *mp, const uint8_t *hdr,
	  uint32_t hdr_len, const struct rte_mbuf *m, uint32_t off, uint32_t len)
{
	struct rte_mbuf *f = rte_pktmbuf_alloc(mp);

	if (f == NULL)
		return NULL;
	if (rte_pktmbuf_tailroom(f) < hdr_len || !vhu_rxbuf_fit(vr, f, hdr_len + len)) {
		rte_pktmbuf_free(f);
		return NULL;
	}
	memcpy(rte_pktmbuf_mtod(f, void *), hdr, hdr_len);
	f->data_len = (uint16_t)hdr_len;
	f->pkt_len = hdr_len;
	if (!append_range(f, mp, m, off, len)) {
		rte_pktmbuf_free(f);
		return NULL;
	}
	f->packet_type = m->packet_type;
	return f;
}

/*
 * TCP: each segment has the frame's headers with its own IP length (and
 * IPv4 id), sequence number and checksums; FIN and PSH only on the last,
 * CWR only on the first, as Linux cuts.
 */
static void
fix_tcp_segment(struct rte_mbuf *f, const struct rte_mbuf *m, uint32_t i, uint32_t n,
		uint32_t payload)
{
	bool ipv4 = RTE_ETH_IS_IPV4_HDR(m->packet_type);
	void *ip = rte_pktmbuf_mtod_offset(f, void *, m->l2_len);
	struct rte_tcp_hdr *tcp = rte_pktmbuf_mtod_offset(f, struct rte_tcp_hdr *,
							  m->l2_len + m->l3_len);
	uint32_t l4_len = m->l4_len + payload;

	if (ipv4) {
		struct rte_ipv4_hdr *v4 = ip;

		v4->total_length = rte_cpu_to_be_16((uint16_t)(m->l3_len + l4_len));
		v4->packet_id = rte_cpu_to_be_16((uint16_t)(rte_be_to_cpu_16(v4->packet_id) + i));
		set_ipv4_checksum(v4);
	} else {
		struct rte_ipv6_hdr *v6 = ip;

		v6->payload_len = rte_cpu_to_be_16((uint16_t)(m->l3_len - sizeof(*v6) + l4_len));
	}
	tcp->sent_seq = rte_cpu_to_be_32(rte_be_to_cpu_32(tcp->sent_seq) + i * m->tso_segsz);
	if (i + 1 < n)
		tcp->tcp_flags &= (uint8_t)~(RTE_TCP_FIN_FLAG | RTE_TCP_PSH_FLAG);
	if (i > 0)
		tcp->tcp_flags &= (uint8_t)~RTE_TCP_CWR_FLAG;
	tcp->cksum = vhu_pseudo_sum(ip, ipv4, IPPROTO_TCP, l4_len);
	vhu_finish_checksum(f, m->l2_len + m->l3_len, VHU_TCP_CSUM_OFFSET);
	f->ol_flags = (ipv4 ? RTE_MBUF_F_RX_IP_CKSUM_GOOD : 0) | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
}

/* UDP over IPv4: fragment @i of @n, @len bytes of the datagram from byte @off of it. */
static void
fix_udp_fragment(struct rte_mbuf *f, const struct rte_mbuf *m, uint32_t i, uint32_t n,
		 uint32_t off, uint32_t len)
{
	struct rte_ipv4_hdr *v4 = rte_pktmbuf_mtod_offset(f, struct rte_ipv4_hdr *, m->l2_len);

	v4->total_length = rte_cpu_to_be_16((uint16_t)(m->l3_len + len));
	v4->fragment_offset = rte_cpu_to_be_16((uint16_t)(off / 8) |
					       (i + 1 < n ? RTE_IPV4_HDR_MF_FLAG : 0));
	set_ipv4_checksum(v4);
	f->packet_type = (m->packet_type & ~RTE_PTYPE_L4_MASK) | RTE_PTYPE_L4_FRAG;
	f->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
}

unsigned int
vhu_segment_received(struct vhu_vring *vr, struct rte_mbuf *m, struct rte_mempool *mp,
		     struct rte_mbuf **segs)
{
	const bool udp = (m->packet_type & RTE_PTYPE_L4_MASK) == RTE_PTYPE_L4_UDP;
	/* UDP: the IP payload is cut, UDP header and all; TCP: after the TCP header. */
	const uint32_t headers = (uint32_t)m->l2_len + m->l3_len + (udp ? 0 : m->l4_len);
	const uint32_t step = udp ? m->tso_segsz & ~7u : m->tso_segsz;
	uint8_t hdr[RX_HEADERS_MAX];
	const uint8_t *h;
	uint32_t payload, n;

	if (udp && !RTE_ETH_IS_IPV4_HDR(m->packet_type)) {
		vhu_vring_bad_input(vr, "UDP fragmentation of an IPv6 frame is not done in software; frame dropped");
		VHU_COUNT(vr->stats.dropped, 1);
		return 0;
	}
	payload = m->pkt_len - headers;
	n = RTE_MAX((payload + step - 1) / step, 1u);
	if (headers > sizeof(hdr) || n > VHU_GSO_MAX_SEGS) {
		vhu_vring_bad_input(vr, "GSO frame of %u bytes (headers %u, segment size %u) not cut: more than %u segments or headers over %zu bytes; frame dropped",
				    m->pkt_len, headers, m->tso_segsz, VHU_GSO_MAX_SEGS, sizeof(hdr));
		VHU_COUNT(vr->stats.dropped, 1);
		return 0;
	}
	if (headers + RTE_MIN(step, payload) >
	    (uint32_t)rte_pktmbuf_data_room_size(mp) - RTE_PKTMBUF_HEADROOM &&
	    !vhu_rxbuf_chains(vr) && !vr->ext_buffer) {
		/* not the guest's fault: the application takes no segment this long */
		VHU_COUNT(vr->stats.dropped, 1);
		return 0;
	}
	/* Fragments share the datagram's one checksum: it is finished first. */
	if (udp)
		vhu_finish_checksum(m, m->l2_len + m->l3_len, VHU_UDP_CSUM_OFFSET);
	h = rte_pktmbuf_read(m, 0, headers, hdr);
	if (h != hdr)
		memcpy(hdr, h, headers);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t off = i * step;
		uint32_t len = RTE_MIN(step, payload - off);
		struct rte_mbuf *f = new_frame(vr, mp, hdr, headers, m, headers + off, len);

		if (f == NULL) {
			/* A shortage, not bad input: counted as dequeue counts them. */
			rte_pktmbuf_free_bulk(segs, i);
			VHU_COUNT(vr->stats.alloc_failed, 1);
			return 0;
		}
		if (udp)
			fix_udp_fragment(f, m, i, n, off, len);
		else
			fix_tcp_segment(f, m, i, n, len);
		segs[i] = f;
	}
	return n;
}
