/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy live migration, destination side (PROTOCOL_F_PAGEFAULT). The
 * guest runs here before all of its memory has arrived, and the front end
 * (QEMU) resolves each fault on a page still missing through a userfaultfd:
 * we make one (POSTCOPY_ADVISE) and hand it over. While the front end
 * listens (POSTCOPY_LISTEN), a memory table (SET_MEM_TABLE, or regions
 * added one by one) is answered with where we mapped each region, and only
 * once the front end acknowledged that answer are the mappings registered
 * with the userfaultfd and the table put to use: a page we touched before
 * would be present already, and the front end could no longer place it
 * (EEXIST, the migration stops). After that, an access of ours to a missing
 * page waits in the kernel until the front end placed it; nothing else
 * waits. POSTCOPY_END closes our userfaultfd.
 */
#ifndef VHU_POSTCOPY_H
#define VHU_POSTCOPY_H

#include <stdbool.h>

#include "memory.h"

/* A userfaultfd for the front end to resolve our faults with; -1 (logged) if none. */
int vhu_postcopy_open(const char *log_name);

/* Registers @mem's mappings not registered yet with @ufd; false (logged) on failure. */
bool vhu_postcopy_register(int ufd, struct vhu_mem_table *mem, const char *log_name);

#endif /* VHU_POSTCOPY_H */
