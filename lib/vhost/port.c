/* SPDX-License-Identifier: BSD-3-Clause */
/* The public API of the library (vhu.h): ports and their rings. */
#include "port.h"

#include <stdalign.h>
#include <stdio.h>

#include <rte_malloc.h>

#include "frame_copy.h"
#include "segment.h"
#include "vhu_log.h"
#include "vring_ctl.h"
#include "vring_intr.h"

RTE_LOG_REGISTER(vhu_logtype, lib.vhu, INFO);

struct vhu_port *
vhu_port_create(const struct vhu_port_config *cfg)
{
	struct vhu_port *p;
	uint32_t nrings;

	if (cfg->queue_pairs == 0 || cfg->queue_pairs > VHU_MAX_QUEUE_PAIRS) {
		VHU_LOG(ERR, "%s: %u queue pairs (1..%u allowed)", cfg->name, cfg->queue_pairs,
			VHU_MAX_QUEUE_PAIRS);
		return NULL;
	}
	/* Zero-copy frames are chains of mbufs into guest memory. */
	if (cfg->zero_copy_threshold > 0 && (cfg->linear_buffer || cfg->ext_buffer)) {
		VHU_LOG(ERR, "%s: zero-copy dequeue hands out chains: it goes with neither linear nor external buffers",
			cfg->name);
		return NULL;
	}
	vhu_frame_copy_select();
	nrings = 2u * cfg->queue_pairs;
	/*
	 * In DPDK's shared memory rather than the process's heap: a secondary
	 * process (dpdk-proc-info, say) reads the rings' counters
	 * (vhu_vring_stats()) at the addresses this process handed out, while
	 * the data path keeps counting into the ring itself.
	 */
	p = rte_zmalloc_socket("vhu_port", sizeof(*p) + nrings * sizeof(p->vrings[0]),
			       alignof(struct vhu_port), cfg->socket_id);
	if (p == NULL) {
		VHU_LOG(ERR, "%s: out of memory", cfg->name);
		return NULL;
	}
	snprintf(p->name, sizeof(p->name), "%s", cfg->name);
	if (!vhu_socket_init(&p->sock, p->name, cfg->socket_path, cfg->client, &p->session)) {
		rte_free(p);
		return NULL;
	}
	for (uint32_t i = 0; i < nrings; i++) {
		/* Only guest TX rings (odd indices) are dequeued. */
		vhu_vring_ctl_init(&p->vrings[i], (uint16_t)i, p->name, cfg->socket_id,
				   (i & 1) ? cfg->zero_copy_threshold : 0, &p->gso);
		p->vrings[i].linear_buffer = cfg->linear_buffer;
		p->vrings[i].ext_buffer = cfg->ext_buffer;
		p->vrings[i].iommu = cfg->iommu;
		p->vrings[i].mbuf_port = cfg->mbuf_port;
	}
	if (vhu_session_init(&p->session, cfg, p->name, p->vrings) < 0) {
		rte_free(p);
		return NULL;
	}
	/* Guests offered GUEST_TSO and GUEST_UFO may refuse them: keep a way to segment. */
	if (vhu_gso_pools_create(&p->gso, p->name, cfg->socket_id) < 0) {
		vhu_session_fini(&p->session);
		rte_free(p);
		return NULL;
	}
	if (vhu_socket_open(&p->sock) < 0) {
		vhu_gso_pools_free(&p->gso);
		vhu_session_fini(&p->session);
		rte_free(p);
		return NULL;
	}
	return p;
}

static void
port_free(void *arg)
{
	struct vhu_port *p = arg;

	vhu_socket_close(&p->sock);
	vhu_session_end(&p->session);	/* also one no connection carried */
	vhu_session_fini(&p->session);
	for (uint32_t i = 0; i < p->session.nrings; i++)
		vhu_vring_intr_close(&p->vrings[i]);
	vhu_gso_pools_free(&p->gso);
	rte_free(p);
}

void
vhu_port_destroy(struct vhu_port *p)
{
	bool in_callback;

	if (p == NULL)
		return;
	/* No callbacks into an owner that is going away. */
	vhu_ctl_lock();
	p->session.ops = NULL;
	/*
	 * An owner closing its port from one of our callbacks is inside a
	 * message handler of this very port: the port goes once that handler
	 * has returned. The owner touches it no more either way.
	 */
	in_callback = vhu_ctl_on_thread();
	if (in_callback) {
		p->destroy = (struct vhu_ctl_deferred){ .fn = port_free, .arg = p };
		vhu_ctl_defer(&p->destroy);
	}
	vhu_ctl_unlock();
	if (!in_callback)
		port_free(p);
}

void
vhu_wait_ports_destroyed(void)
{
	vhu_ctl_wait_detached();
}

struct vhu_vring *
vhu_port_vring(struct vhu_port *p, uint16_t ring_index)
{
	return ring_index < p->session.nrings ? &p->vrings[ring_index] : NULL;
}

int
vhu_port_session_id(const struct vhu_port *p)
{
	return __atomic_load_n(&p->session.id, __ATOMIC_ACQUIRE);
}

bool
vhu_port_link_up(const struct vhu_port *p)
{
	return __atomic_load_n(&p->session.link_up, __ATOMIC_ACQUIRE);
}

uint16_t
vhu_port_mtu(const struct vhu_port *p)
{
	return __atomic_load_n(&p->session.mtu, __ATOMIC_RELAXED);
}

void
vhu_port_set_rx_offloads(struct vhu_port *p, uint32_t offloads)
{
	/* Only guest TX rings (odd indices) are dequeued. */
	for (uint32_t i = 1; i < p->session.nrings; i += 2)
		vhu_vring_ctl_set_rx_offloads(&p->vrings[i], offloads);
}

const struct vhu_vring_stats *
vhu_vring_stats(const struct vhu_vring *vr)
{
	return &vr->stats;
}
