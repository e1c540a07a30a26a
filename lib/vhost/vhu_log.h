/* SPDX-License-Identifier: BSD-3-Clause */
/* Logging of the vhu library: one DPDK log type, "lib.vhu", prefix "VHU: ". */
#ifndef VHU_LOG_H
#define VHU_LOG_H

#include <rte_log.h>

extern int vhu_logtype;

#define VHU_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_ ## level, vhu_logtype, "VHU: " fmt "\n", ##__VA_ARGS__)

#endif /* VHU_LOG_H */
