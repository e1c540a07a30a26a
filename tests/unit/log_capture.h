/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the library logs (rte_log) between two calls, kept in a buffer for a
 * test to look for the lines it expects. rte_log works before rte_eal_init.
 */
#ifndef VHU_UNIT_LOG_CAPTURE_H
#define VHU_UNIT_LOG_CAPTURE_H

/* The log since the last log_capture_start(), NUL-terminated (once stopped). */
extern char log_buf[16384];

/* Starts capturing, forgetting what was captured before. exit(2) when it cannot. */
void log_capture_start(void);
/* Stops capturing: the log goes where it went before; log_buf keeps what came. */
void log_capture_stop(void);

#endif /* VHU_UNIT_LOG_CAPTURE_H */
