/* SPDX-License-Identifier: BSD-3-Clause */
#include "vring.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>

#include "vhu_log.h"

/* Guest errors logged per ring before the log goes quiet (counters go on). */
#define VHU_GUEST_ERRORS_LOGGED 8

void
vhu_vring_bad_input(struct vhu_vring *vr, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	VHU_COUNT(vr->stats.malformed, 1);
	if (vr->errors_logged >= VHU_GUEST_ERRORS_LOGGED)
		return;
	vr->errors_logged++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	VHU_LOG(ERR, "%s: ring %u: %s%s", vr->port_name, vr->index, msg,
		vr->errors_logged == VHU_GUEST_ERRORS_LOGGED ?
		" (further errors on this ring are only counted)" : "");
}

void
vhu_vring_call(struct vhu_vring *vr)
{
	if (vr->notify.callfd < 0)
		return;
	if (eventfd_write(vr->notify.callfd, 1) == 0)
		VHU_COUNT(vr->stats.notifications, 1);
}

bool
vhu_vring_one_piece_iotlb(struct vhu_vring *vr, bool device_writes, uint64_t addr, uint32_t len,
			  uint16_t id, struct vhu_chain *c)
{
	if (vhu_vring_map_iov(vr, device_writes, addr, len, c->iov, 1) != 1)
		return false;
	vhu_chain_set_one(c, id, c->iov[0].addr, len, c->iov[0].guest_phys_addr);
	return true;
}
