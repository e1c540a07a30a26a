/* SPDX-License-Identifier: BSD-3-Clause */
#include "postcopy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "vhu_log.h"

/* Kilobytes of this process's memory locked (VmLck), 0 if unknown. */
static unsigned long
locked_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	unsigned long kb = 0;
	char line[128];

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmLck: %lu kB", &kb) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kb;
}

int
vhu_postcopy_open(const char *log_name)
{
	struct uffdio_api api = { .api = UFFD_API };
	int ufd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	unsigned long locked;

	if (ufd < 0) {
		VHU_LOG(ERR, "%s: postcopy: userfaultfd: %s (root, or vm.unprivileged_userfaultfd=1)",
			log_name, strerror(errno));
		return -1;
	}
	if (ioctl(ufd, UFFDIO_API, &api) < 0) {
		VHU_LOG(ERR, "%s: postcopy: UFFDIO_API: %s", log_name, strerror(errno));
		close(ufd);
		return -1;
	}
	/*
	 * mlockall(MCL_FUTURE), testpmd's default, fills each mapping with
	 * pages as it is made: the guest's could then never be placed.
	 */
	locked = locked_kb();
	if (locked > 0)
		VHU_LOG(WARNING, "%s: postcopy: this process locks its memory (%lu kB, mlockall?): guest pages we map are filled in at once and the migration will stop; run testpmd with --no-mlockall",
			log_name, locked);
	return ufd;
}

bool
vhu_postcopy_register(int ufd, struct vhu_mem_table *mem, const char *log_name)
{
	for (uint32_t i = 0; i < mem->nregions; i++) {
		struct vhu_mem_mapping *map = mem->regions[i].map;
		/* The whole mapping: its ends are page aligned, the region's may not be. */
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)map->addr, .len = map->len },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (map->faults_registered)
			continue;
		if (ioctl(ufd, UFFDIO_REGISTER, &reg) < 0) {
			VHU_LOG(ERR, "%s: postcopy: registering region at gpa 0x%" PRIx64
				" with the userfaultfd: %s", log_name,
				mem->regions[i].guest_phys_addr, strerror(errno));
			return false;
		}
		map->faults_registered = true;
	}
	return true;
}
