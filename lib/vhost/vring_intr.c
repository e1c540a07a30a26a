/* SPDX-License-Identifier: BSD-3-Clause */
#include "vring_intr.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_power_intrinsics.h>

#include "vhu_log.h"
#include "virtqueue.h"

void
vhu_vring_intr_init(struct vhu_vring *vr)
{
	vr->intr = (struct vhu_vring_intr){ .fd = -1, .wakefd = -1, .kickfd = -1 };
}

/* @fd joins the ring's epoll instance; false (logged) when it cannot be waited on. */
static bool
watch(struct vhu_vring *vr, int fd, const char *what)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (epoll_ctl(vr->intr.fd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return true;
	VHU_LOG(ERR, "%s: ring %u: cannot wait on its %s (epoll_ctl: %s): no interrupts from it",
		vr->port_name, vr->index, what, strerror(errno));
	return false;
}

void
vhu_vring_intr_watch_locked(struct vhu_vring *vr, int kickfd)
{
	struct vhu_vring_intr *in = &vr->intr;

	if (in->fd < 0)
		return;		/* nobody asked for interrupts yet */
	/*
	 * Taken out by number while the number is still ours: epoll forgets
	 * an fd only when its file goes, and the front end holds the file.
	 */
	if (in->kickfd >= 0)
		epoll_ctl(in->fd, EPOLL_CTL_DEL, in->kickfd, NULL);
	in->kickfd = kickfd >= 0 && watch(vr, kickfd, "kick fd") ? kickfd : -1;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int
vhu_vring_intr_fd(struct vhu_vring *vr)
{
	struct vhu_vring_intr *in = &vr->intr;
	int fd;

	rte_spinlock_lock(&vr->lock);
	if (in->fd < 0) {
		in->fd = epoll_create1(EPOLL_CLOEXEC);
		in->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (in->fd < 0 || in->wakefd < 0) {
			VHU_LOG(ERR, "%s: ring %u: cannot create its interrupt fd (%s)",
				vr->port_name, vr->index, strerror(errno));
			close_fd(&in->fd);
			close_fd(&in->wakefd);
		} else if (!watch(vr, in->wakefd, "wake-up eventfd")) {
			close_fd(&in->fd);
			close_fd(&in->wakefd);
		} else {
			vhu_vring_intr_watch_locked(vr, vr->ctl.kickfd);
		}
	}
	fd = in->fd;
	rte_spinlock_unlock(&vr->lock);
	return fd;
}

/* Frames the next burst hands out with nothing new from the guest: cut segments, a RARP. */
static bool
frames_held(const struct vhu_vring *vr)
{
	return vr->rx_pending_count > 0 || vr->rarp.pending;
}

void
vhu_vring_intr_apply_locked(struct vhu_vring *vr)
{
	struct vhu_vring_intr *in = &vr->intr;
	/* A ring not polled has no position to ask kicks from: it asks when it starts. */
	bool available = (vr->ready || vr->discarding) && vhu_vq_want_kicks(vr, in->armed);

	if (in->armed && (available || frames_held(vr)) && in->wakefd >= 0)
		eventfd_write(in->wakefd, 1);
}

/*
 * Kicks that came while the application polled, and our own wake-ups: it
 * has seen what they were for. Only readable fds are read, so no read blocks
 * (the front end's kick fd need not be non-blocking).
 */
static void
drain(struct vhu_vring_intr *in)
{
	struct epoll_event ev[2];
	int n = epoll_wait(in->fd, ev, RTE_DIM(ev), 0);

	for (int i = 0; i < n; i++) {
		uint64_t count;
		ssize_t r = read(ev[i].data.fd, &count, sizeof(count));

		RTE_SET_USED(r);	/* nothing to do about a kick fd gone bad */
	}
}

void
vhu_vring_intr_enable(struct vhu_vring *vr, bool enable)
{
	struct vhu_vring_intr *in = &vr->intr;

	/* Not a trylock: the caller sleeps next and must not miss the request. */
	rte_spinlock_lock(&vr->lock);
	if (enable && in->fd >= 0)
		drain(in);
	in->armed = enable;
	vhu_vring_intr_apply_locked(vr);
	rte_spinlock_unlock(&vr->lock);
}

/* rte_power_monitor's check of a split ring's available index (opaque[0]: ours). */
static int
split_avail_moved(const uint64_t value, const uint64_t opaque[RTE_POWER_MONITOR_OPAQUE_SZ])
{
	return (uint16_t)value != (uint16_t)opaque[0] ? -1 : 0;
}

/* ... of a packed ring's next descriptor flags (opaque[0]: our wrap counter). */
static int
packed_desc_made_available(const uint64_t value,
			   const uint64_t opaque[RTE_POWER_MONITOR_OPAQUE_SZ])
{
	return vhu_packed_desc_available((uint16_t)value, opaque[0] != 0) ? -1 : 0;
}

/* The lcore's reference follows the ring's table: the old one goes with the caller's last read. */
static void
hold_memory(struct vhu_vring_intr *in, struct vhu_mem_table *mem)
{
	if (in->monitored == mem)
		return;
	if (mem != NULL)
		vhu_mem_table_get(mem);
	vhu_mem_table_put(in->monitored);
	in->monitored = mem;
}

int
vhu_vring_monitor(struct vhu_vring *vr, struct rte_power_monitor_cond *pmc)
{
	int ret = -1;

	rte_spinlock_lock(&vr->lock);
	hold_memory(&vr->intr, vr->mem);
	if (vr->ready && !frames_held(vr)) {
		if (vr->neg.packed) {
			pmc->addr = &vr->packed.desc[vr->last_avail_idx].flags;
			pmc->fn = packed_desc_made_available;
			pmc->opaque[0] = vr->packed.avail_wrap;
		} else {
			pmc->addr = &vr->split.avail->idx;
			pmc->fn = split_avail_moved;
			pmc->opaque[0] = vr->last_avail_idx;
		}
		pmc->size = sizeof(uint16_t);
		ret = 0;
	}
	rte_spinlock_unlock(&vr->lock);
	return ret;
}

void
vhu_vring_intr_close(struct vhu_vring *vr)
{
	rte_spinlock_lock(&vr->lock);
	vhu_vring_intr_watch_locked(vr, -1);
	close_fd(&vr->intr.fd);
	close_fd(&vr->intr.wakefd);
	vr->intr.armed = false;
	hold_memory(&vr->intr, NULL);
	rte_spinlock_unlock(&vr->lock);
}
