/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internet checksums over mbuf chains, for what is finished in software:
 * checksums a guest left to us, those an application asked of a guest that
 * does not take them, and those of frames cut in software.
 */
#ifndef VHU_CHECKSUM_H
#define VHU_CHECKSUM_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

/*
 * Stores the two bytes of @value as they lie in memory at byte @off of the
 * frame: checksums computed by rte_raw_cksum are already in wire order so.
 */
static inline void
vhu_store16(struct rte_mbuf *m, uint32_t off, uint16_t value)
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
static inline uint16_t
vhu_raw_cksum_chain(const struct rte_mbuf *m, uint32_t off, uint32_t len)
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
 * field already holds the pseudo-header sum). A result of 0 is stored as
 * 0xffff, its other form, as Linux does: in UDP, 0 means "no checksum".
 */
static inline void
vhu_finish_checksum(struct rte_mbuf *m, uint32_t start, uint32_t offset)
{
	uint16_t sum = (uint16_t)~vhu_raw_cksum_chain(m, start, m->pkt_len - start);

	vhu_store16(m, start + offset, sum == 0 ? 0xffff : sum);
}

/*
 * The pseudo-header sum (folded, not complemented) of an @l4_len-byte L4
 * segment of protocol @proto after the IP header at @ip: what a checksum
 * field holds while the checksum is left to the receiver. IPv6 extension
 * headers do not count: the length is the L4 one, given here.
 */
static inline uint16_t
vhu_pseudo_sum(const void *ip, bool ipv4, uint8_t proto, uint32_t l4_len)
{
	uint32_t sum;

	if (ipv4) {
		const struct rte_ipv4_hdr *h = ip;

		sum = __rte_raw_cksum(&h->src_addr, 8, 0);
	} else {
		const struct rte_ipv6_hdr *h = ip;

		sum = __rte_raw_cksum(h->src_addr, 32, 0);
	}
	sum += rte_cpu_to_be_16((uint16_t)(l4_len >> 16)) + rte_cpu_to_be_16((uint16_t)l4_len) +
	       rte_cpu_to_be_16(proto);
	return __rte_raw_cksum_reduce(sum);
}

#endif /* VHU_CHECKSUM_H */
