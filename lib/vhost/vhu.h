/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhu: the vhost-user back end library. This is its only public header: the
 * PMD (drivers/net/vhost) sees ports, rings and bursts, never the wire format.
 *
 * Threads: vhu_port_create/destroy run on an application thread; every
 * vhost-user message is handled on one control thread shared by all ports of
 * the process, which also calls the port's ops; each ring is polled with
 * vhu_dequeue_burst/vhu_enqueue_burst by at most one lcore at a time, with no
 * lock shared between rings.
 *
 * Processes: a port belongs to the process that created it. It lives in
 * DPDK's shared memory so that a secondary process may read its rings'
 * counters (vhu_vring_stats() on a ring the creator looked up); nothing else
 * of a port may be used outside its creator (guest memory, fds and the
 * control thread are that process's).
 */
#ifndef VHU_H
#define VHU_H

#include <stdbool.h>
#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_power_monitor_cond;

/* Most queue pairs one port can offer (ring index 2k: guest RX, 2k+1: guest TX). */
#define VHU_MAX_QUEUE_PAIRS 128
#define VHU_MAX_VRINGS (2 * VHU_MAX_QUEUE_PAIRS)

struct vhu_port;
struct vhu_vring;

/* Callbacks into the port's owner, run on the control thread. */
struct vhu_port_ops {
	/* The front end finished (up) or lost (down) the set-up of queue pair 0. */
	void (*link_changed)(void *ctx, bool up);
	/* Ring @ring_index was enabled or disabled by the front end. */
	void (*vring_state_changed)(void *ctx, uint16_t ring_index, bool enabled);
};

/*
 * Smallest zero-copy threshold: the first bytes of a zero-copy frame are
 * copied anyway (headers later stages may rewrite), so smaller frames gain nothing.
 */
#define VHU_ZC_MIN_THRESHOLD 256

struct vhu_port_config {
	const char *name;		/* for log lines, e.g. the ethdev name */
	const char *socket_path;	/* Unix socket of the port */
	bool client;			/* false: listen on it; true: connect to it, retrying
					 * every second until the front end is there and
					 * again after every disconnect */
	uint16_t queue_pairs;		/* 1..VHU_MAX_QUEUE_PAIRS */
	bool tso;			/* let guests leave TCP segmentation to us (HOST_TSO4/6) */
	uint32_t zero_copy_threshold;	/* dequeue frames of at least this many bytes
					 * without copying them (0: off); see zerocopy.h */
	bool linear_buffer;		/* a received frame in one mbuf segment, or dropped */
	bool ext_buffer;		/* one larger than an mbuf in a buffer attached to it */
	bool postcopy;			/* offer postcopy live migration (PROTOCOL_F_PAGEFAULT) */
	bool iommu;			/* offer guests a vIOMMU (VIRTIO_F_ACCESS_PLATFORM) */
	int socket_id;			/* NUMA socket for the port's own mbuf pools */
	uint16_t mbuf_port;		/* what received mbufs carry as their port
					 * (rte_mbuf.port): the ethdev's port id */
	const struct vhu_port_ops *ops;
	void *ops_ctx;
};

/* Frame size classes counted per ring (the classes of DPDK's vhost xstats). */
enum vhu_size_class {
	VHU_SIZE_UNDER_64,
	VHU_SIZE_64,
	VHU_SIZE_65_127,
	VHU_SIZE_128_255,
	VHU_SIZE_256_511,
	VHU_SIZE_512_1023,
	VHU_SIZE_1024_1518,
	VHU_SIZE_1519_MAX,
	VHU_SIZE_CLASSES
};

/*
 * Counters of one ring, written only by the lcore polling it. Every member is
 * a uint64_t, so a reader may treat the struct as an array of counters.
 */
struct vhu_vring_stats {
	uint64_t packets;		/* frames delivered (enqueue) or received (dequeue) */
	uint64_t bytes;			/* their bytes, without virtio-net header */
	uint64_t multicast;		/* of those, to a multicast address (not broadcast) */
	uint64_t broadcast;
	uint64_t size[VHU_SIZE_CLASSES];	/* by frame length */
	uint64_t dropped;		/* frames given up: cannot fit, malformed chain (a
					 * frame lost for lack of mbufs is in alloc_failed) */
	uint64_t malformed;		/* descriptor chains refused */
	uint64_t alloc_failed;		/* mbuf allocation failures (dequeue; enqueue:
					 * segmentation pools empty, frame dropped) */
	uint64_t notifications;		/* guest interrupts sent through the call fd */
	uint64_t notifications_suppressed;	/* not sent: the driver did not want one */
	uint64_t zero_copy;		/* frames handed out in guest memory, not copied */
};

/*
 * Create a port: listens on cfg->socket_path (a stale socket file there is
 * replaced), or in client mode starts connecting to it. Returns NULL with a
 * log line on failure.
 */
struct vhu_port *vhu_port_create(const struct vhu_port_config *cfg);

/*
 * Close the connection and the socket, unmap guest memory, free the port.
 * May be called from the port's ops (on the control thread): the port is
 * then freed once the message being handled is done; no op runs after this.
 */
void vhu_port_destroy(struct vhu_port *port);

/*
 * Returns once every port destroyed so far is entirely gone. A port
 * destroyed from its ops is torn down after the op returns, and if it was
 * the last one the control thread then ends on its own, logging as it
 * goes: call this before tearing down what the library uses (e.g. from a
 * driver's remove, which rte_eal_cleanup() calls before closing the log).
 * Returns at once when called from a port's ops.
 */
void vhu_wait_ports_destroyed(void);

/* The ring with index @ring_index (< 2 * queue_pairs), valid until destroy. */
struct vhu_vring *vhu_port_vring(struct vhu_port *port, uint16_t ring_index);

/* Identifier of the connected front end's session (new for every connection), or -1. */
int vhu_port_session_id(const struct vhu_port *port);

/* True while a front end is connected and queue pair 0 is set up. */
bool vhu_port_link_up(const struct vhu_port *port);

/*
 * The MTU the front end set for its guest (NET_SET_MTU, e.g. QEMU's
 * host_mtu), 0 if it set none; set before the link comes up. Any thread.
 */
uint16_t vhu_port_mtu(const struct vhu_port *port);

/*
 * What the application takes in received frames (vhu_dequeue_burst) of what
 * a guest leaves to the host. With none of these every checksum is finished
 * and every GSO frame cut into the frames the guest would have sent without
 * GSO: nothing is left to the application.
 */
#define VHU_RX_OFFLOAD_CKSUM	(1u << 0)	/* partial checksums flagged RTE_MBUF_F_RX_L4_CKSUM_NONE */
#define VHU_RX_OFFLOAD_LRO	(1u << 1)	/* GSO frames whole: RTE_MBUF_F_RX_LRO, tso_segsz */
/* What a guest left to us as TX offload requests (DPDK's vhost "legacy-ol-flags"). */
#define VHU_RX_OFFLOAD_LEGACY	(1u << 2)
/*
 * Frames larger than one mbuf as chains of mbufs. Without it (and without
 * legacy, whose applications take chains) each frame is one segment: in an
 * external buffer with the port's ext_buffer, else dropped and counted.
 * Zero-copy frames are chains: none without it.
 */
#define VHU_RX_OFFLOAD_SCATTER	(1u << 3)

/* The longest frame VHU_RX_OFFLOAD_LRO hands out: a 64 KiB GSO frame and its headers. */
#define VHU_MAX_LRO_PKT_SIZE (65536 + 256)

/* Sets the port's VHU_RX_OFFLOAD_* (none at creation); any thread, between bursts. */
void vhu_port_set_rx_offloads(struct vhu_port *port, uint32_t offloads);

/*
 * Guest TX ring -> mbufs allocated from @mp, each with the port's
 * mbuf_port as its port. Returns the number received: frames, or the
 * segments of a GSO frame cut in software (those that do not fit in @count
 * come first in the next burst).
 */
uint16_t vhu_dequeue_burst(struct vhu_vring *vr, struct rte_mempool *mp,
			   struct rte_mbuf **pkts, uint16_t count);

/*
 * Frames waiting to be received from @vr: the chains the guest made
 * available, and segments of a frame cut in software not handed out yet
 * (a GSO frame waiting counts as one). Any thread; waits for a burst in progress.
 */
uint32_t vhu_dequeue_waiting(struct vhu_vring *vr);

/*
 * mbufs -> guest RX ring, copied. Returns how many of @pkts were consumed
 * (delivered, or dropped and counted because they can never fit, or, behind
 * a vIOMMU, held with a reference of ours until the guest's buffers are
 * translated); the caller frees those and keeps the rest.
 */
uint16_t vhu_enqueue_burst(struct vhu_vring *vr, struct rte_mbuf **pkts,
			   uint16_t count);

/*
 * The ring's counters; from any process of the creator's DPDK application.
 * They change under the reader: read each with
 * __atomic_load_n(&counter, __ATOMIC_RELAXED) (they are written so).
 */
const struct vhu_vring_stats *vhu_vring_stats(const struct vhu_vring *vr);

/*
 * Interrupt mode, for an application that sleeps instead of polling an empty
 * guest TX ring: a file descriptor that becomes readable when the guest
 * kicks ring @vr while it is armed. It is the same fd for the port's life,
 * whatever front end connects, so it is registered once (epoll, level or
 * edge triggered); vhu_port_destroy closes it. -1 (logged) if it cannot be
 * created.
 */
int vhu_vring_intr_fd(struct vhu_vring *vr);

/*
 * Arm (@enable) the ring's interrupt before sleeping on its fd: the guest is
 * asked to kick for its next frame, and the fd becomes readable then, or at
 * once when frames are already waiting. Disarm it when awake: the guest is
 * asked not to kick, as while polling. From the lcore polling the ring,
 * between bursts. The fd stays readable until the next arming.
 */
void vhu_vring_intr_enable(struct vhu_vring *vr, bool enable);

/*
 * For rte_power_monitor() (ethdev's get_monitor_addr): @pmc gets the address
 * the guest writes when it makes the ring's next chain available, and the
 * check of what is read there (wake once a chain is there). Guest memory
 * stays mapped until the next call from the same lcore, however the front
 * end changes meanwhile: the caller may still be reading the address. 0, or
 * -1 when the ring is not polled or frames wait on our side already.
 */
int vhu_vring_monitor(struct vhu_vring *vr, struct rte_power_monitor_cond *pmc);

#endif /* VHU_H */
