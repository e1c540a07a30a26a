/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Devargs: each checked by name, value and range; a bad one is named in the
 * log and the port refused. net_vhost's devargs keep net_vhost's meanings; a
 * capability we do not have yet is refused when asked for, never ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_kvargs.h>

#include "devargs.h"
#include "pmd_internal.h"

static const char *const valid_args[] = {
	ARG_IFACE, ARG_QUEUES, ARG_CLIENT, ARG_TSO, ARG_IOMMU_SUPPORT, ARG_POSTCOPY_SUPPORT,
	ARG_ZERO_COPY, ARG_ZC_THRESHOLD, ARG_LEGACY_OL_FLAGS, ARG_LINEAR_BUFFER, ARG_EXT_BUFFER,
	NULL
};

/* "iface, queues, ...": the valid devargs, for the log line refusing an unknown one. */
static void
valid_args_list(char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (const char *const *v = valid_args; *v != NULL && len < size; v++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
					v == valid_args ? "" : ", ", *v);
}

/*
 * Frames from this size up are handed out zero-copy by default: below it a
 * copy (32 bytes a move with AVX2) costs less than attaching, holding and
 * giving back the guest's buffer. Measured VM to VM with callgrind, rx + tx
 * instructions per frame, copy / zero-copy: 1518 bytes 862 / 1166, 4000
 * bytes 1486 / 1478, 9000 bytes 2734 / 2102 (docs/performance.md).
 */
#define DEFAULT_ZC_THRESHOLD 4096

static int
parse_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	if (value == NULL || *value == '\0' || *value == '-' || *value == '+')
		return -1;
	errno = 0;
	*out = strtoul(value, &end, 10);
	if (errno != 0 || *end != '\0' || *out < min || *out > max)
		return -1;
	return 0;
}

static int
arg_iface(const char *key __rte_unused, const char *value, void *opaque)
{
	struct pmd_args *a = opaque;

	if (value == NULL || *value == '\0') {
		PMD_LOG(ERR, "devarg iface is empty");
		return -1;
	}
	if (strlen(value) >= sizeof(a->iface)) {
		PMD_LOG(ERR, "devarg iface=%s: longer than the %zu bytes a Unix socket path may have",
			value, sizeof(a->iface) - 1);
		return -1;
	}
	strcpy(a->iface, value);
	return 0;
}

static int
arg_queues(const char *key __rte_unused, const char *value, void *opaque)
{
	struct pmd_args *a = opaque;
	unsigned long v;

	if (parse_uint(value, 1, VHU_MAX_QUEUE_PAIRS, &v) < 0) {
		PMD_LOG(ERR, "devarg queues=%s: must be a number of queue pairs from 1 to %u",
			value ? value : "", VHU_MAX_QUEUE_PAIRS);
		return -1;
	}
	a->queues = (uint16_t)v;
	return 0;
}

static int
arg_zc_threshold(const char *key, const char *value, void *opaque)
{
	struct pmd_args *a = opaque;
	unsigned long v;

	if (parse_uint(value, VHU_ZC_MIN_THRESHOLD, 65535, &v) < 0) {
		PMD_LOG(ERR, "devarg %s=%s: must be a frame size in bytes from %u to 65535",
			key, value ? value : "", VHU_ZC_MIN_THRESHOLD);
		return -1;
	}
	a->zc_threshold = (uint32_t)v;
	return 0;
}

/* A 0/1 devarg into the bool at @opaque. */
static int
arg_bool(const char *key, const char *value, void *opaque)
{
	unsigned long v;

	if (parse_uint(value, 0, 1, &v) < 0) {
		PMD_LOG(ERR, "devarg %s=%s: must be 0 or 1", key, value ? value : "");
		return -1;
	}
	*(bool *)opaque = v == 1;
	return 0;
}

/* Every devarg is checked by name first, so an unknown one is named in the log. */
int
pmd_parse_args(const char *name, const char *args, struct pmd_args *a)
{
	struct rte_kvargs *kv = rte_kvargs_parse(args, NULL);
	int ret = -EINVAL;

	memset(a, 0, sizeof(*a));
	a->queues = 1;
	a->tso = true;
	a->zc_threshold = DEFAULT_ZC_THRESHOLD;
	if (kv == NULL) {
		PMD_LOG(ERR, "%s: cannot parse devargs \"%s\"", name, args);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < kv->count; i++) {
		const char *key = kv->pairs[i].key;
		bool known = false;

		for (const char *const *v = valid_args; *v != NULL; v++)
			known |= strcmp(key, *v) == 0;
		if (!known) {
			char list[256];

			valid_args_list(list, sizeof(list));
			PMD_LOG(ERR, "%s: unknown devarg \"%s\" (valid: %s)", name, key, list);
			goto out;
		}
		if (rte_kvargs_count(kv, key) > 1) {
			PMD_LOG(ERR, "%s: devarg %s given more than once", name, key);
			goto out;
		}
	}
	if (rte_kvargs_count(kv, ARG_IFACE) != 1) {
		PMD_LOG(ERR, "%s: devarg iface=<socket path> is required", name);
		goto out;
	}
	if (rte_kvargs_process(kv, ARG_IFACE, arg_iface, a) < 0 ||
	    rte_kvargs_process(kv, ARG_QUEUES, arg_queues, a) < 0 ||
	    rte_kvargs_process(kv, ARG_CLIENT, arg_bool, &a->client) < 0 ||
	    rte_kvargs_process(kv, ARG_TSO, arg_bool, &a->tso) < 0 ||
	    rte_kvargs_process(kv, ARG_ZERO_COPY, arg_bool, &a->zero_copy) < 0 ||
	    rte_kvargs_process(kv, ARG_ZC_THRESHOLD, arg_zc_threshold, a) < 0 ||
	    rte_kvargs_process(kv, ARG_LEGACY_OL_FLAGS, arg_bool, &a->legacy_ol_flags) < 0 ||
	    rte_kvargs_process(kv, ARG_LINEAR_BUFFER, arg_bool, &a->linear_buffer) < 0 ||
	    rte_kvargs_process(kv, ARG_EXT_BUFFER, arg_bool, &a->ext_buffer) < 0 ||
	    rte_kvargs_process(kv, ARG_IOMMU_SUPPORT, arg_bool, &a->iommu) < 0 ||
	    rte_kvargs_process(kv, ARG_POSTCOPY_SUPPORT, arg_bool, &a->postcopy) < 0)
		goto out;
	if (rte_kvargs_count(kv, ARG_ZC_THRESHOLD) > 0 && !a->zero_copy) {
		PMD_LOG(ERR, "%s: devarg " ARG_ZC_THRESHOLD " needs " ARG_ZERO_COPY "=1", name);
		goto out;
	}
	if (a->zero_copy && (a->linear_buffer || a->ext_buffer)) {
		PMD_LOG(ERR, "%s: devargs " ARG_LINEAR_BUFFER " and " ARG_EXT_BUFFER
			" go with " ARG_ZERO_COPY "=0 only (zero-copy frames are mbuf chains)", name);
		goto out;
	}
	ret = 0;
out:
	rte_kvargs_free(kv);
	return ret;
}
