/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * eth_vhost: an ethdev port whose other end is a vhost-user front end (a VM
 * through QEMU, or a container through virtio-user). Ethdev glue only: the
 * protocol and the rings are in lib/vhost (vhu.h).
 *
 * Queue mapping: ethdev RX queue i polls guest TX ring 2i+1, ethdev TX queue i
 * fills guest RX ring 2i.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <ethdev_driver.h>
#include <bus_vdev_driver.h>
#include <rte_kvargs.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <rte_spinlock.h>

#include "rte_eth_vhost.h"
#include "vhu.h"

RTE_LOG_REGISTER(vhu_pmd_logtype, pmd.net.vhu, INFO);

#define PMD_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_ ## level, vhu_pmd_logtype, "VHU: " fmt "\n", ##__VA_ARGS__)

#define ARG_IFACE	"iface"
#define ARG_QUEUES	"queues"
#define ARG_CLIENT	"client"
#define ARG_TSO		"tso"
#define ARG_ZERO_COPY	"dequeue-zero-copy"
#define ARG_ZC_THRESHOLD	"zero-copy-threshold"
#define ARG_LEGACY_OL_FLAGS	"legacy-ol-flags"
#define ARG_LINEAR_BUFFER	"linear-buffer"
#define ARG_EXT_BUFFER	"ext-buffer"

static const char *const valid_args[] = {
	ARG_IFACE, ARG_QUEUES, ARG_CLIENT, ARG_TSO, ARG_ZERO_COPY, ARG_ZC_THRESHOLD,
	ARG_LEGACY_OL_FLAGS, ARG_LINEAR_BUFFER, ARG_EXT_BUFFER, NULL
};

/*
 * Frames from this size up are handed out zero-copy by default: below it a
 * copy (32 bytes a move with AVX2) costs less than attaching, holding and
 * giving back the guest's buffer. Measured VM to VM with callgrind, rx + tx
 * instructions per frame, copy / zero-copy: 1518 bytes 862 / 1166, 4000
 * bytes 1486 / 1478, 9000 bytes 2734 / 2102 (docs/performance.md).
 */
#define DEFAULT_ZC_THRESHOLD 4096

struct pmd_args {
	char iface[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint16_t queues;
	bool client;
	bool tso;
	bool zero_copy;
	uint32_t zc_threshold;
	bool legacy_ol_flags;
	bool linear_buffer;
	bool ext_buffer;
};

struct vhost_queue {
	struct vhu_vring *vring;
	struct rte_mempool *mb_pool;	/* RX queues only */
	uint16_t port_id;
	uint64_t unsent;		/* TX: mbufs left to the caller (no guest buffer) */
	/* Counter values at the last stats reset. */
	struct vhu_vring_stats base;
	uint64_t unsent_base;
};

struct pmd_internal {
	struct vhu_port *vport;
	struct rte_eth_dev *eth_dev;
	uint16_t queue_pairs;
	bool tso;
	bool legacy_ol_flags;	/* guests' offload requests as TX requests on RX mbufs */
	/* Ring enable states as the front end set them, and as last reported
	 * through rte_eth_vhost_get_queue_event(). */
	rte_spinlock_t queue_event_lock;
	bool ring_enabled[VHU_MAX_VRINGS];
	bool ring_reported[VHU_MAX_VRINGS];
	char iface[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* ---- devargs ---- */

static int
parse_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	if (value == NULL || *value == '\0' || *value == '-' || *value == '+')
		return -1;
	errno = 0;
	*out = strtoul(value, &end, 10);
	if (errno != 0 || *end != '\0' || *out < min || *out > max)
		return -1;
	return 0;
}

static int
arg_iface(const char *key __rte_unused, const char *value, void *opaque)
{
	struct pmd_args *a = opaque;

	if (value == NULL || *value == '\0') {
		PMD_LOG(ERR, "devarg iface is empty");
		return -1;
	}
	if (strlen(value) >= sizeof(a->iface)) {
		PMD_LOG(ERR, "devarg iface=%s: longer than the %zu bytes a Unix socket path may have",
			value, sizeof(a->iface) - 1);
		return -1;
	}
	strcpy(a->iface, value);
	return 0;
}

static int
arg_queues(const char *key __rte_unused, const char *value, void *opaque)
{
	struct pmd_args *a = opaque;
	unsigned long v;

	if (parse_uint(value, 1, VHU_MAX_QUEUE_PAIRS, &v) < 0) {
		PMD_LOG(ERR, "devarg queues=%s: must be a number of queue pairs from 1 to %u",
			value ? value : "", VHU_MAX_QUEUE_PAIRS);
		return -1;
	}
	a->queues = (uint16_t)v;
	return 0;
}

static int
arg_zc_threshold(const char *key, const char *value, void *opaque)
{
	struct pmd_args *a = opaque;
	unsigned long v;

	if (parse_uint(value, VHU_ZC_MIN_THRESHOLD, 65535, &v) < 0) {
		PMD_LOG(ERR, "devarg %s=%s: must be a frame size in bytes from %u to 65535",
			key, value ? value : "", VHU_ZC_MIN_THRESHOLD);
		return -1;
	}
	a->zc_threshold = (uint32_t)v;
	return 0;
}

/* A 0/1 devarg into the bool at @opaque. */
static int
arg_bool(const char *key, const char *value, void *opaque)
{
	unsigned long v;

	if (parse_uint(value, 0, 1, &v) < 0) {
		PMD_LOG(ERR, "devarg %s=%s: must be 0 or 1", key, value ? value : "");
		return -1;
	}
	*(bool *)opaque = v == 1;
	return 0;
}

/* Every devarg is checked by name first, so an unknown one is named in the log. */
static int
parse_args(const char *name, const char *args, struct pmd_args *a)
{
	struct rte_kvargs *kv = rte_kvargs_parse(args, NULL);
	int ret = -EINVAL;

	memset(a, 0, sizeof(*a));
	a->queues = 1;
	a->tso = true;
	a->zc_threshold = DEFAULT_ZC_THRESHOLD;
	if (kv == NULL) {
		PMD_LOG(ERR, "%s: cannot parse devargs \"%s\"", name, args);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < kv->count; i++) {
		const char *key = kv->pairs[i].key;
		bool known = false;

		for (const char *const *v = valid_args; *v != NULL; v++)
			known |= strcmp(key, *v) == 0;
		if (!known) {
			PMD_LOG(ERR, "%s: unknown devarg \"%s\" (valid: iface, queues, client, tso, "
				ARG_ZERO_COPY ", " ARG_ZC_THRESHOLD ", " ARG_LEGACY_OL_FLAGS ", "
				ARG_LINEAR_BUFFER ", " ARG_EXT_BUFFER ")", name, key);
			goto out;
		}
		if (rte_kvargs_count(kv, key) > 1) {
			PMD_LOG(ERR, "%s: devarg %s given more than once", name, key);
			goto out;
		}
	}
	if (rte_kvargs_count(kv, ARG_IFACE) != 1) {
		PMD_LOG(ERR, "%s: devarg iface=<socket path> is required", name);
		goto out;
	}
	if (rte_kvargs_process(kv, ARG_IFACE, arg_iface, a) < 0 ||
	    rte_kvargs_process(kv, ARG_QUEUES, arg_queues, a) < 0 ||
	    rte_kvargs_process(kv, ARG_CLIENT, arg_bool, &a->client) < 0 ||
	    rte_kvargs_process(kv, ARG_TSO, arg_bool, &a->tso) < 0 ||
	    rte_kvargs_process(kv, ARG_ZERO_COPY, arg_bool, &a->zero_copy) < 0 ||
	    rte_kvargs_process(kv, ARG_ZC_THRESHOLD, arg_zc_threshold, a) < 0 ||
	    rte_kvargs_process(kv, ARG_LEGACY_OL_FLAGS, arg_bool, &a->legacy_ol_flags) < 0 ||
	    rte_kvargs_process(kv, ARG_LINEAR_BUFFER, arg_bool, &a->linear_buffer) < 0 ||
	    rte_kvargs_process(kv, ARG_EXT_BUFFER, arg_bool, &a->ext_buffer) < 0)
		goto out;
	if (rte_kvargs_count(kv, ARG_ZC_THRESHOLD) > 0 && !a->zero_copy) {
		PMD_LOG(ERR, "%s: devarg " ARG_ZC_THRESHOLD " needs " ARG_ZERO_COPY "=1", name);
		goto out;
	}
	if (a->zero_copy && (a->linear_buffer || a->ext_buffer)) {
		PMD_LOG(ERR, "%s: devargs " ARG_LINEAR_BUFFER " and " ARG_EXT_BUFFER
			" go with " ARG_ZERO_COPY "=0 only (zero-copy frames are mbuf chains)", name);
		goto out;
	}
	ret = 0;
out:
	rte_kvargs_free(kv);
	return ret;
}

/* ---- data path ---- */

static uint16_t
eth_vhost_rx(void *q, struct rte_mbuf **pkts, uint16_t count)
{
	struct vhost_queue *rxq = q;
	uint16_t n = vhu_dequeue_burst(rxq->vring, rxq->mb_pool, pkts, count);

	for (uint16_t i = 0; i < n; i++)
		pkts[i]->port = rxq->port_id;
	return n;
}

/* mbufs freed with one mempool put at a time, at most. */
#define TX_FREE_BATCH 64

/*
 * rte_pktmbuf_free_bulk() inlined for what a transmit burst frees: every
 * segment that is ours alone (after rte_pktmbuf_prefree_seg(), which also
 * detaches external buffers such as zero-copy ones and runs their free
 * callback) goes back to its pool a run at a time.
 */
static void
free_transmitted(struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *run[TX_FREE_BATCH];
	struct rte_mempool *pool = NULL;
	unsigned int nrun = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *seg = pkts[i];

		do {
			struct rte_mbuf *next = seg->next;
			struct rte_mbuf *m = rte_pktmbuf_prefree_seg(seg);

			seg = next;
			if (m == NULL)		/* still referenced elsewhere */
				continue;
			if (m->pool != pool || nrun == TX_FREE_BATCH) {
				if (nrun > 0)
					rte_mempool_put_bulk(pool, (void **)run, nrun);
				pool = m->pool;
				nrun = 0;
			}
			run[nrun++] = m;
		} while (seg != NULL);
	}
	if (nrun > 0)
		rte_mempool_put_bulk(pool, (void **)run, nrun);
}

static uint16_t
eth_vhost_tx(void *q, struct rte_mbuf **pkts, uint16_t count)
{
	struct vhost_queue *txq = q;
	uint16_t n = vhu_enqueue_burst(txq->vring, pkts, count);

	free_transmitted(pkts, n);
	txq->unsent += count - n;
	return n;
}

/* ---- events from the library (control thread) ---- */

static void
on_link_changed(void *ctx, bool up)
{
	struct pmd_internal *in = ctx;
	struct rte_eth_link link = {
		.link_speed = RTE_ETH_SPEED_NUM_10G,
		.link_duplex = RTE_ETH_LINK_FULL_DUPLEX,
		.link_autoneg = RTE_ETH_LINK_FIXED,
		.link_status = up ? RTE_ETH_LINK_UP : RTE_ETH_LINK_DOWN,
	};

	if (rte_eth_linkstatus_set(in->eth_dev, &link) == 0)
		rte_eth_dev_callback_process(in->eth_dev, RTE_ETH_EVENT_INTR_LSC, NULL);
}

static void
on_vring_state_changed(void *ctx, uint16_t ring_index, bool enabled)
{
	struct pmd_internal *in = ctx;

	PMD_LOG(INFO, "%s: %s queue %u %s", in->eth_dev->data->name,
		ring_index % 2 ? "RX" : "TX", ring_index / 2, enabled ? "enabled" : "disabled");
	rte_spinlock_lock(&in->queue_event_lock);
	in->ring_enabled[ring_index] = enabled;
	rte_spinlock_unlock(&in->queue_event_lock);
	rte_eth_dev_callback_process(in->eth_dev, RTE_ETH_EVENT_QUEUE_STATE, NULL);
}

static const struct vhu_port_ops port_ops = {
	.link_changed = on_link_changed,
	.vring_state_changed = on_vring_state_changed,
};

/* ---- ethdev operations ---- */

/*
 * What the guests left to the host reaches the application as it enabled:
 * ethdev has checked the request against eth_dev_info()'s capabilities.
 */
static int
eth_dev_configure(struct rte_eth_dev *dev)
{
	struct pmd_internal *in = dev->data->dev_private;
	uint64_t rx = dev->data->dev_conf.rxmode.offloads;
	uint32_t offloads = in->legacy_ol_flags ? VHU_RX_OFFLOAD_LEGACY : 0;

	if (rx & (RTE_ETH_RX_OFFLOAD_TCP_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM))
		offloads |= VHU_RX_OFFLOAD_CKSUM;
	if (rx & RTE_ETH_RX_OFFLOAD_TCP_LRO)
		offloads |= VHU_RX_OFFLOAD_LRO;
	vhu_port_set_rx_offloads(in->vport, offloads);
	return 0;
}

static void
set_queue_states(struct rte_eth_dev *dev, uint8_t state)
{
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		dev->data->rx_queue_state[i] = state;
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++)
		dev->data->tx_queue_state[i] = state;
}

static int
eth_dev_start(struct rte_eth_dev *dev)
{
	set_queue_states(dev, RTE_ETH_QUEUE_STATE_STARTED);
	return 0;
}

static int
eth_dev_stop(struct rte_eth_dev *dev)
{
	set_queue_states(dev, RTE_ETH_QUEUE_STATE_STOPPED);
	return 0;
}

static void
release_queues(void **queues, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		rte_free(queues[i]);
		queues[i] = NULL;
	}
}

static int
eth_dev_close(struct rte_eth_dev *dev)
{
	struct pmd_internal *in = dev->data->dev_private;

	if (rte_eal_process_type() != RTE_PROC_PRIMARY || in == NULL)
		return 0;
	vhu_port_destroy(in->vport);
	in->vport = NULL;
	release_queues(dev->data->rx_queues, dev->data->nb_rx_queues);
	release_queues(dev->data->tx_queues, dev->data->nb_tx_queues);
	return 0;
}

static int
eth_link_update(struct rte_eth_dev *dev, int wait __rte_unused)
{
	struct pmd_internal *in = dev->data->dev_private;

	on_link_changed(in, in->vport != NULL && vhu_port_link_up(in->vport));
	return 0;
}

/* The port receives every frame the guest sends: these modes are always on. */
static int
eth_mode_always_on(struct rte_eth_dev *dev __rte_unused)
{
	return 0;
}

static int
eth_mtu_set(struct rte_eth_dev *dev __rte_unused, uint16_t mtu __rte_unused)
{
	return 0;
}

static int
eth_dev_info(struct rte_eth_dev *dev, struct rte_eth_dev_info *info)
{
	struct pmd_internal *in = dev->data->dev_private;

	info->max_mac_addrs = 1;
	info->max_rx_pktlen = (uint32_t)-1;
	info->max_rx_queues = in->queue_pairs;
	info->max_tx_queues = in->queue_pairs;
	info->min_rx_bufsize = 0;
	/*
	 * RX: without offloads every checksum a guest left to us is finished and
	 * its GSO frames cut; with them, partial checksums are flagged
	 * RTE_MBUF_F_RX_L4_CKSUM_NONE and GSO frames arrive whole with
	 * RTE_MBUF_F_RX_LRO (netoffload.h). With legacy-ol-flags=1 guests'
	 * requests arrive as TX requests instead, which no RX offload describes.
	 * TX: requests are handed to the guest, or finished in software.
	 */
	info->rx_offload_capa = RTE_ETH_RX_OFFLOAD_SCATTER;
	if (!in->legacy_ol_flags)
		info->rx_offload_capa |= RTE_ETH_RX_OFFLOAD_TCP_CKSUM |
					 RTE_ETH_RX_OFFLOAD_UDP_CKSUM |
					 (in->tso ? RTE_ETH_RX_OFFLOAD_TCP_LRO : 0);
	info->max_lro_pkt_size = VHU_MAX_LRO_PKT_SIZE;
	info->tx_offload_capa = RTE_ETH_TX_OFFLOAD_MULTI_SEGS | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM |
				RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM |
				RTE_ETH_TX_OFFLOAD_UDP_TSO |
				(in->tso ? RTE_ETH_TX_OFFLOAD_TCP_TSO : 0);
	info->speed_capa = RTE_ETH_LINK_SPEED_10G;
	return 0;
}

/* A counter of a queue since the last reset. */
static uint64_t
queue_counter(const struct vhost_queue *q, size_t offset)
{
	const uint8_t *now = (const uint8_t *)vhu_vring_stats(q->vring);
	const uint8_t *base = (const uint8_t *)&q->base;

	return *(const uint64_t *)(now + offset) - *(const uint64_t *)(base + offset);
}

#define VRING_COUNTER(q, field) queue_counter(q, offsetof(struct vhu_vring_stats, field))

static int
eth_stats_get(struct rte_eth_dev *dev, struct rte_eth_stats *stats)
{
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++) {
		const struct vhost_queue *q = dev->data->rx_queues[i];

		if (q == NULL)
			continue;
		stats->ipackets += VRING_COUNTER(q, packets);
		stats->ibytes += VRING_COUNTER(q, bytes);
		stats->ierrors += VRING_COUNTER(q, dropped);
		stats->rx_nombuf += VRING_COUNTER(q, alloc_failed);
		if (i < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
			stats->q_ipackets[i] = VRING_COUNTER(q, packets);
			stats->q_ibytes[i] = VRING_COUNTER(q, bytes);
		}
	}
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++) {
		const struct vhost_queue *q = dev->data->tx_queues[i];

		if (q == NULL)
			continue;
		stats->opackets += VRING_COUNTER(q, packets);
		stats->obytes += VRING_COUNTER(q, bytes);
		stats->oerrors += VRING_COUNTER(q, dropped) + (q->unsent - q->unsent_base);
		if (i < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
			stats->q_opackets[i] = VRING_COUNTER(q, packets);
			stats->q_obytes[i] = VRING_COUNTER(q, bytes);
		}
	}
	return 0;
}

static void
reset_queue_stats(void **queues, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		struct vhost_queue *q = queues[i];

		if (q == NULL)
			continue;
		q->base = *vhu_vring_stats(q->vring);
		q->unsent_base = q->unsent;
	}
}

static int
eth_stats_reset(struct rte_eth_dev *dev)
{
	reset_queue_stats(dev->data->rx_queues, dev->data->nb_rx_queues);
	reset_queue_stats(dev->data->tx_queues, dev->data->nb_tx_queues);
	return 0;
}

/*
 * Extended stats, per queue, with the names DPDK's vhost PMD uses
 * (rx_q<N>_<name>, tx_q<N>_<name>) plus our own counters at the end.
 */
static const struct {
	const char *name;
	size_t offset;
} vring_xstats[] = {
#define XSTAT(n, f) { n, offsetof(struct vhu_vring_stats, f) }
	XSTAT("good_packets", packets),
	XSTAT("good_bytes", bytes),
	XSTAT("multicast_packets", multicast),
	XSTAT("broadcast_packets", broadcast),
	XSTAT("undersize_packets", size[VHU_SIZE_UNDER_64]),
	XSTAT("size_64_packets", size[VHU_SIZE_64]),
	XSTAT("size_65_127_packets", size[VHU_SIZE_65_127]),
	XSTAT("size_128_255_packets", size[VHU_SIZE_128_255]),
	XSTAT("size_256_511_packets", size[VHU_SIZE_256_511]),
	XSTAT("size_512_1023_packets", size[VHU_SIZE_512_1023]),
	XSTAT("size_1024_1518_packets", size[VHU_SIZE_1024_1518]),
	XSTAT("size_1519_max_packets", size[VHU_SIZE_1519_MAX]),
	XSTAT("guest_notifications", notifications),
	XSTAT("guest_notifications_suppressed", notifications_suppressed),
	XSTAT("dropped_packets", dropped),
	XSTAT("malformed_chains", malformed),
	XSTAT("mbuf_alloc_failed", alloc_failed),
	XSTAT("zero_copy_packets", zero_copy),
#undef XSTAT
};

#define NB_VRING_XSTATS RTE_DIM(vring_xstats)

/* Per queue: the ring's counters; TX queues add missed_packets (no guest buffer). */
static unsigned int
xstats_count(const struct rte_eth_dev *dev)
{
	return (dev->data->nb_rx_queues + dev->data->nb_tx_queues) * NB_VRING_XSTATS +
	       dev->data->nb_tx_queues;
}

static int
eth_xstats_get_names(struct rte_eth_dev *dev, struct rte_eth_xstat_name *names,
		     unsigned int size)
{
	unsigned int n = xstats_count(dev), k = 0;

	if (names == NULL || size < n)
		return (int)n;
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		for (unsigned int j = 0; j < NB_VRING_XSTATS; j++)
			snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "rx_q%u_%s", i,
				 vring_xstats[j].name);
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++) {
		for (unsigned int j = 0; j < NB_VRING_XSTATS; j++)
			snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "tx_q%u_%s", i,
				 vring_xstats[j].name);
		snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "tx_q%u_missed_packets", i);
	}
	return (int)n;
}

static void
queue_xstats(const struct vhost_queue *q, struct rte_eth_xstat *xs, unsigned int *k)
{
	for (unsigned int j = 0; j < NB_VRING_XSTATS; j++) {
		xs[*k].id = *k;
		xs[*k].value = q != NULL ? queue_counter(q, vring_xstats[j].offset) : 0;
		(*k)++;
	}
}

static int
eth_xstats_get(struct rte_eth_dev *dev, struct rte_eth_xstat *xs, unsigned int n)
{
	unsigned int count = xstats_count(dev), k = 0;

	if (xs == NULL || n < count)
		return (int)count;
	for (uint16_t i = 0; i < dev->data->nb_rx_queues; i++)
		queue_xstats(dev->data->rx_queues[i], xs, &k);
	for (uint16_t i = 0; i < dev->data->nb_tx_queues; i++) {
		const struct vhost_queue *q = dev->data->tx_queues[i];

		queue_xstats(q, xs, &k);
		xs[k].id = k;
		xs[k].value = q != NULL ? q->unsent - q->unsent_base : 0;
		k++;
	}
	return (int)count;
}

static struct vhost_queue *
queue_create(struct rte_eth_dev *dev, uint16_t ring_index, unsigned int socket_id)
{
	struct pmd_internal *in = dev->data->dev_private;
	struct vhost_queue *q = rte_zmalloc_socket(NULL, sizeof(*q), RTE_CACHE_LINE_SIZE,
						   (int)socket_id);

	if (q == NULL) {
		PMD_LOG(ERR, "%s: out of memory for a queue", dev->data->name);
		return NULL;
	}
	q->vring = vhu_port_vring(in->vport, ring_index);
	q->port_id = dev->data->port_id;
	q->base = *vhu_vring_stats(q->vring);
	return q;
}

static int
eth_rx_queue_setup(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc __rte_unused,
		   unsigned int socket_id, const struct rte_eth_rxconf *conf __rte_unused,
		   struct rte_mempool *mp)
{
	struct vhost_queue *q = queue_create(dev, 2 * qid + 1, socket_id);

	if (q == NULL)
		return -ENOMEM;
	q->mb_pool = mp;
	rte_free(dev->data->rx_queues[qid]);
	dev->data->rx_queues[qid] = q;
	return 0;
}

static int
eth_tx_queue_setup(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc __rte_unused,
		   unsigned int socket_id, const struct rte_eth_txconf *conf __rte_unused)
{
	struct vhost_queue *q = queue_create(dev, 2 * qid, socket_id);

	if (q == NULL)
		return -ENOMEM;
	rte_free(dev->data->tx_queues[qid]);
	dev->data->tx_queues[qid] = q;
	return 0;
}

static void
eth_rx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	rte_free(dev->data->rx_queues[qid]);
	dev->data->rx_queues[qid] = NULL;
}

static void
eth_tx_queue_release(struct rte_eth_dev *dev, uint16_t qid)
{
	rte_free(dev->data->tx_queues[qid]);
	dev->data->tx_queues[qid] = NULL;
}

static const struct eth_dev_ops eth_vhost_ops = {
	.dev_configure = eth_dev_configure,
	.dev_start = eth_dev_start,
	.dev_stop = eth_dev_stop,
	.dev_close = eth_dev_close,
	.link_update = eth_link_update,
	.promiscuous_enable = eth_mode_always_on,
	.promiscuous_disable = eth_mode_always_on,
	.allmulticast_enable = eth_mode_always_on,
	.allmulticast_disable = eth_mode_always_on,
	.mtu_set = eth_mtu_set,
	.stats_get = eth_stats_get,
	.stats_reset = eth_stats_reset,
	.xstats_get = eth_xstats_get,
	.xstats_reset = eth_stats_reset,
	.xstats_get_names = eth_xstats_get_names,
	.dev_infos_get = eth_dev_info,
	.rx_queue_setup = eth_rx_queue_setup,
	.rx_queue_release = eth_rx_queue_release,
	.tx_queue_setup = eth_tx_queue_setup,
	.tx_queue_release = eth_tx_queue_release,
};

/* ---- public API (rte_eth_vhost.h) ---- */

static struct pmd_internal *
vhost_port(uint16_t port_id)
{
	if (!rte_eth_dev_is_valid_port(port_id) ||
	    rte_eth_devices[port_id].dev_ops != &eth_vhost_ops)
		return NULL;
	return rte_eth_devices[port_id].data->dev_private;
}

__attribute__((visibility("default"))) int
rte_eth_vhost_get_queue_event(uint16_t port_id, struct rte_eth_vhost_queue_event *event)
{
	struct pmd_internal *in = vhost_port(port_id);
	int ret = -1;

	if (in == NULL || event == NULL)
		return -1;
	rte_spinlock_lock(&in->queue_event_lock);
	for (uint32_t i = 0; i < 2u * in->queue_pairs; i++) {
		if (in->ring_enabled[i] == in->ring_reported[i])
			continue;
		in->ring_reported[i] = in->ring_enabled[i];
		event->queue_id = (uint16_t)(i / 2);
		event->rx = i % 2 == 1;
		event->enable = in->ring_enabled[i];
		ret = 0;
		break;
	}
	rte_spinlock_unlock(&in->queue_event_lock);
	return ret;
}

__attribute__((visibility("default"))) int
rte_eth_vhost_get_vid_from_port_id(uint16_t port_id)
{
	struct pmd_internal *in = vhost_port(port_id);

	return in != NULL && in->vport != NULL ? vhu_port_session_id(in->vport) : -1;
}

/* ---- probe / remove ---- */

static int
vhost_probe(struct rte_vdev_device *vdev)
{
	struct rte_device *dev = &vdev->device;
	const char *name = rte_dev_name(dev);
	const struct rte_devargs *devargs = rte_dev_devargs(dev);
	const char *args = devargs != NULL && devargs->args != NULL ? devargs->args : "";
	struct rte_eth_dev *eth_dev;
	struct pmd_internal *in;
	struct rte_ether_addr *mac;
	struct pmd_args a;
	int numa = rte_dev_numa_node(dev);

	if (rte_eal_process_type() != RTE_PROC_PRIMARY) {
		PMD_LOG(ERR, "%s: secondary processes are not supported", name);
		return -ENOTSUP;
	}
	if (parse_args(name, args, &a) < 0)
		return -EINVAL;

	eth_dev = rte_eth_dev_allocate(name);
	if (eth_dev == NULL) {
		PMD_LOG(ERR, "%s: cannot allocate an ethdev port", name);
		return -ENOMEM;
	}
	in = rte_zmalloc_socket(name, sizeof(*in), 0, numa);
	mac = rte_zmalloc_socket(name, sizeof(*mac), 0, numa);
	if (in == NULL || mac == NULL) {
		PMD_LOG(ERR, "%s: out of memory", name);
		rte_free(in);
		rte_free(mac);
		rte_eth_dev_release_port(eth_dev);
		return -ENOMEM;
	}
	/* 56:48:4F:53:54 is "VHOST", the prefix DPDK's vhost PMD uses too. */
	*mac = (struct rte_ether_addr){ { 0x56, 0x48, 0x4f, 0x53, 0x54,
					 (uint8_t)eth_dev->data->port_id } };
	in->eth_dev = eth_dev;
	in->queue_pairs = a.queues;
	in->tso = a.tso;
	in->legacy_ol_flags = a.legacy_ol_flags;
	rte_spinlock_init(&in->queue_event_lock);
	memcpy(in->iface, a.iface, sizeof(in->iface));

	eth_dev->data->dev_private = in;
	eth_dev->data->mac_addrs = mac;
	eth_dev->data->dev_link = (struct rte_eth_link){
		.link_speed = RTE_ETH_SPEED_NUM_10G,
		.link_duplex = RTE_ETH_LINK_FULL_DUPLEX,
		.link_autoneg = RTE_ETH_LINK_FIXED,
		.link_status = RTE_ETH_LINK_DOWN,
	};
	eth_dev->data->dev_flags = RTE_ETH_DEV_INTR_LSC;
	eth_dev->data->numa_node = numa;
	eth_dev->data->promiscuous = 1;
	eth_dev->data->all_multicast = 1;
	eth_dev->dev_ops = &eth_vhost_ops;
	eth_dev->rx_pkt_burst = eth_vhost_rx;
	eth_dev->tx_pkt_burst = eth_vhost_tx;
	eth_dev->device = dev;

	struct vhu_port_config cfg = {
		.name = name,
		.socket_path = a.iface,
		.queue_pairs = a.queues,
		.client = a.client,
		.tso = a.tso,
		.zero_copy_threshold = a.zero_copy ? a.zc_threshold : 0,
		.linear_buffer = a.linear_buffer,
		.ext_buffer = a.ext_buffer,
		.socket_id = numa,
		.ops = &port_ops,
		.ops_ctx = in,
	};
	in->vport = vhu_port_create(&cfg);
	if (in->vport == NULL) {
		rte_eth_dev_release_port(eth_dev);	/* frees in and mac */
		return -EIO;
	}
	rte_eth_dev_probing_finish(eth_dev);
	PMD_LOG(INFO, "%s: vhost-user port on %s (%s), %u queue pair(s), driver vhu %s",
		name, a.iface, a.client ? "client" : "server", a.queues, VHU_VERSION);
	return 0;
}

static int
vhost_remove(struct rte_vdev_device *vdev)
{
	struct rte_eth_dev *eth_dev = rte_eth_dev_allocated(rte_dev_name(&vdev->device));

	if (eth_dev == NULL)
		return 0;	/* already closed by the application */
	eth_dev_close(eth_dev);
	rte_eth_dev_release_port(eth_dev);
	return 0;
}

static struct rte_vdev_driver vhost_driver = {
	.probe = vhost_probe,
	.remove = vhost_remove,
};

RTE_PMD_REGISTER_VDEV(net_vhost, vhost_driver);
RTE_PMD_REGISTER_ALIAS(net_vhost, eth_vhost);
RTE_PMD_REGISTER_PARAM_STRING(net_vhost,
	"iface=<path> "
	"queues=<1-128> "
	"client=<0|1> "
	"tso=<0|1> "
	ARG_ZERO_COPY "=<0|1> "
	ARG_ZC_THRESHOLD "=<bytes> "
	ARG_LEGACY_OL_FLAGS "=<0|1> "
	ARG_LINEAR_BUFFER "=<0|1> "
	ARG_EXT_BUFFER "=<0|1>");
