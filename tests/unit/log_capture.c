/* SPDX-License-Identifier: BSD-3-Clause */
/* The log capture: see log_capture.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_log.h>

#include "log_capture.h"

char log_buf[16384];
static FILE *log_stream;

void
log_capture_start(void)
{
	memset(log_buf, 0, sizeof(log_buf));
	log_stream = fmemopen(log_buf, sizeof(log_buf) - 1, "w");
	if (log_stream == NULL) {
		perror("fmemopen");
		exit(2);
	}
	rte_openlog_stream(log_stream);
}

void
log_capture_stop(void)
{
	rte_openlog_stream(NULL);
	fclose(log_stream);
	log_stream = NULL;
}
