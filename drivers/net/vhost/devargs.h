/* SPDX-License-Identifier: BSD-3-Clause */
/* The devargs of eth_vhost: net_vhost's, with their meanings, and ours. */
#ifndef VHU_PMD_DEVARGS_H
#define VHU_PMD_DEVARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#define ARG_IFACE	"iface"
#define ARG_QUEUES	"queues"
#define ARG_CLIENT	"client"
#define ARG_TSO		"tso"
#define ARG_IOMMU_SUPPORT	"iommu-support"
#define ARG_POSTCOPY_SUPPORT	"postcopy-support"
#define ARG_ZERO_COPY	"dequeue-zero-copy"
#define ARG_ZC_THRESHOLD	"zero-copy-threshold"
#define ARG_LEGACY_OL_FLAGS	"legacy-ol-flags"
#define ARG_LINEAR_BUFFER	"linear-buffer"
#define ARG_EXT_BUFFER	"ext-buffer"

/* For RTE_PMD_REGISTER_PARAM_STRING, which dpdk-pmdinfo.py shows. */
#define PMD_PARAM_STRING \
	ARG_IFACE "=<path> " \
	ARG_QUEUES "=<1-128> " \
	ARG_CLIENT "=<0|1> " \
	ARG_IOMMU_SUPPORT "=<0|1> " \
	ARG_POSTCOPY_SUPPORT "=<0|1> " \
	ARG_TSO "=<0|1> " \
	ARG_LINEAR_BUFFER "=<0|1> " \
	ARG_EXT_BUFFER "=<0|1> " \
	ARG_LEGACY_OL_FLAGS "=<0|1> " \
	ARG_ZERO_COPY "=<0|1> " \
	ARG_ZC_THRESHOLD "=<bytes>"

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
	bool postcopy;		/* postcopy-support */
	bool iommu;		/* iommu-support */
};

/* Parses @args of port @name into @a; -EINVAL with a log line naming the bad devarg. */
int pmd_parse_args(const char *name, const char *args, struct pmd_args *a);

#endif /* VHU_PMD_DEVARGS_H */
