/* SPDX-License-Identifier: BSD-3-Clause */
#include "message.h"

#include <inttypes.h>
#include <stddef.h>
#include <unistd.h>

#include <rte_common.h>

#include "vhu_log.h"

enum payload_rule {
	PAYLOAD_NONE,
	PAYLOAD_U64,
	PAYLOAD_STATE,
	PAYLOAD_ADDR,
	PAYLOAD_MEMORY,
	PAYLOAD_MEM_REG,
	PAYLOAD_LOG,
	PAYLOAD_IOTLB,
};

enum fd_rule {
	FDS_NONE,
	FDS_ONE,
	FDS_PER_REGION,
	FDS_UNLESS_NOFD,	/* one fd unless the payload's "no fd" bit is set */
	FDS_AT_MOST_ONE,	/* REM_MEM_REG: QEMU sent the region's fd before 7.1 */
};

enum ring_rule {
	RING_NONE,
	RING_STATE,		/* vhu_vring_state.index */
	RING_ADDR,		/* vhu_vring_addr.index */
	RING_U64,		/* low 8 bits of the u64 */
};

struct request_rule {
	bool supported;
	uint8_t payload;	/* enum payload_rule */
	uint8_t fds;		/* enum fd_rule */
	uint8_t ring;		/* enum ring_rule */
	bool reply;		/* always answered with a payload */
};

#define RULE(req, pl, fd, rg, rep) \
	[VHOST_USER_ ## req] = { true, PAYLOAD_ ## pl, FDS_ ## fd, RING_ ## rg, rep }

/* Every request of the specification, ours or not, so that a refusal can name it. */
static const char *const request_names[] = {
	[1] = "GET_FEATURES", "SET_FEATURES", "SET_OWNER", "RESET_OWNER", "SET_MEM_TABLE",
	"SET_LOG_BASE", "SET_LOG_FD", "SET_VRING_NUM", "SET_VRING_ADDR", "SET_VRING_BASE",
	"GET_VRING_BASE", "SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR",
	"GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES", "GET_QUEUE_NUM", "SET_VRING_ENABLE",
	"SEND_RARP", "NET_SET_MTU", "SET_BACKEND_REQ_FD", "IOTLB_MSG", "SET_VRING_ENDIAN",
	"GET_CONFIG", "SET_CONFIG", "CREATE_CRYPTO_SESSION", "CLOSE_CRYPTO_SESSION",
	"POSTCOPY_ADVISE", "POSTCOPY_LISTEN", "POSTCOPY_END", "GET_INFLIGHT_FD",
	"SET_INFLIGHT_FD", "GPU_SET_SOCKET", "RESET_DEVICE", "VRING_KICK", "GET_MAX_MEM_SLOTS",
	"ADD_MEM_REG", "REM_MEM_REG", "SET_STATUS", "GET_STATUS", "GET_SHARED_OBJECT",
	"SET_DEVICE_STATE_FD", "CHECK_DEVICE_STATE",
};

static const struct request_rule request_rules[VHOST_USER_REQUEST_MAX] = {
	RULE(GET_FEATURES,          NONE,   NONE,        NONE,  true),
	RULE(SET_FEATURES,          U64,    NONE,        NONE,  false),
	RULE(SET_OWNER,             NONE,   NONE,        NONE,  false),
	RULE(RESET_OWNER,           NONE,   NONE,        NONE,  false),
	RULE(SET_MEM_TABLE,         MEMORY, PER_REGION,  NONE,  false),
	RULE(SET_LOG_BASE,          LOG,    ONE,         NONE,  true),
	RULE(SET_LOG_FD,            NONE,   ONE,         NONE,  false),
	RULE(SET_VRING_NUM,         STATE,  NONE,        STATE, false),
	RULE(SET_VRING_ADDR,        ADDR,   NONE,        ADDR,  false),
	RULE(SET_VRING_BASE,        STATE,  NONE,        STATE, false),
	RULE(GET_VRING_BASE,        STATE,  NONE,        STATE, true),
	RULE(SET_VRING_KICK,        U64,    UNLESS_NOFD, U64,   false),
	RULE(SET_VRING_CALL,        U64,    UNLESS_NOFD, U64,   false),
	RULE(SET_VRING_ERR,         U64,    UNLESS_NOFD, U64,   false),
	RULE(GET_PROTOCOL_FEATURES, NONE,   NONE,        NONE,  true),
	RULE(SET_PROTOCOL_FEATURES, U64,    NONE,        NONE,  false),
	RULE(GET_QUEUE_NUM,         NONE,   NONE,        NONE,  true),
	RULE(SET_VRING_ENABLE,      STATE,  NONE,        STATE, false),
	RULE(SEND_RARP,             U64,    NONE,        NONE,  false),
	RULE(NET_SET_MTU,           U64,    NONE,        NONE,  false),
	RULE(SET_BACKEND_REQ_FD,    NONE,   ONE,         NONE,  false),
	RULE(IOTLB_MSG,             IOTLB,  NONE,        NONE,  false),
	RULE(POSTCOPY_ADVISE,       NONE,   NONE,        NONE,  true),
	RULE(POSTCOPY_LISTEN,       NONE,   NONE,        NONE,  false),
	RULE(POSTCOPY_END,          NONE,   NONE,        NONE,  true),
	RULE(GET_MAX_MEM_SLOTS,     NONE,   NONE,        NONE,  true),
	RULE(ADD_MEM_REG,           MEM_REG, ONE,        NONE,  false),
	RULE(REM_MEM_REG,           MEM_REG, AT_MOST_ONE, NONE, false),
	RULE(SET_STATUS,            U64,    NONE,        NONE,  false),
	RULE(GET_STATUS,            NONE,   NONE,        NONE,  true),
};

static const struct request_rule *
rule_of(uint32_t request)
{
	if (request >= VHOST_USER_REQUEST_MAX || !request_rules[request].supported)
		return NULL;
	return &request_rules[request];
}

const char *
vhu_request_name(uint32_t request)
{
	if (request >= RTE_DIM(request_names) || request_names[request] == NULL)
		return "unknown";
	return request_names[request];
}

bool
vhu_request_supported(uint32_t request)
{
	return rule_of(request) != NULL;
}

bool
vhu_request_has_reply(uint32_t request)
{
	const struct request_rule *r = rule_of(request);

	return r != NULL && r->reply;
}

static int
payload_size_ok(const struct vhu_msg *msg, enum payload_rule rule)
{
	uint32_t size = msg->hdr.size;

	switch (rule) {
	case PAYLOAD_NONE:
		return size == 0;
	case PAYLOAD_U64:
		return size == sizeof(uint64_t);
	case PAYLOAD_STATE:
		return size == sizeof(struct vhu_vring_state);
	case PAYLOAD_ADDR:
		return size == sizeof(struct vhu_vring_addr);
	case PAYLOAD_MEM_REG:
		return size == sizeof(struct vhu_mem_single_region);
	case PAYLOAD_LOG:
		return size == sizeof(struct vhu_log_base);
	case PAYLOAD_IOTLB:
		return size == sizeof(struct vhu_iotlb_msg);
	case PAYLOAD_MEMORY: {
		const uint32_t fixed = offsetof(struct vhu_memory, regions);

		if (size < fixed)
			return 0;
		uint32_t n = msg->payload.memory.nregions;

		return n >= 1 && n <= VHU_MEM_MSG_REGIONS &&
		       size == fixed + n * sizeof(struct vhu_mem_region_desc);
	}
	}
	return 0;
}

static uint32_t
expected_fds(const struct vhu_msg *msg, enum fd_rule rule)
{
	switch (rule) {
	case FDS_ONE:
		return 1;
	case FDS_PER_REGION:
		return msg->payload.memory.nregions;
	case FDS_UNLESS_NOFD:
		return (msg->payload.u64 & VHOST_USER_VRING_NOFD) ? 0 : 1;
	case FDS_AT_MOST_ONE:
		return RTE_MIN(msg->nfds, 1u);
	case FDS_NONE:
		break;
	}
	return 0;
}

static uint64_t
ring_index_of(const struct vhu_msg *msg, enum ring_rule rule)
{
	switch (rule) {
	case RING_STATE:
		return msg->payload.state.index;
	case RING_ADDR:
		return msg->payload.addr.index;
	case RING_U64:
		return msg->payload.u64 & VHOST_USER_VRING_IDX_MASK;
	case RING_NONE:
		break;
	}
	return 0;
}

int
vhu_msg_validate(struct vhu_msg *msg, uint32_t nrings, const char *log_name)
{
	const struct vhu_msg_hdr *h = &msg->hdr;
	const struct request_rule *r = rule_of(h->request);

	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
	    (h->flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_NEED_REPLY)) != 0) {
		VHU_LOG(ERR, "%s: request %u with bad flags 0x%x (version must be 1, reply bit clear)",
			log_name, h->request, h->flags);
		return -1;
	}
	if (r == NULL) {
		VHU_LOG(ERR, "%s: unsupported request %u (%s)", log_name, h->request,
			vhu_request_name(h->request));
		return -1;
	}
	if (!payload_size_ok(msg, r->payload)) {
		VHU_LOG(ERR, "%s: %s with a payload of %u bytes", log_name,
			vhu_request_name(h->request), h->size);
		return -1;
	}
	if (r->ring == RING_U64 &&
	    (msg->payload.u64 & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD))) {
		VHU_LOG(ERR, "%s: %s with unknown bits in 0x%" PRIx64, log_name,
			vhu_request_name(h->request), msg->payload.u64);
		return -1;
	}
	if (msg->nfds != expected_fds(msg, r->fds)) {
		VHU_LOG(ERR, "%s: %s with %u file descriptors, %u expected", log_name,
			vhu_request_name(h->request), msg->nfds, expected_fds(msg, r->fds));
		return -1;
	}
	if (r->ring != RING_NONE) {
		uint64_t idx = ring_index_of(msg, r->ring);

		if (idx >= nrings) {
			VHU_LOG(ERR, "%s: %s for ring %" PRIu64 ", but this port has %u rings (queues=%u)",
				log_name, vhu_request_name(h->request), idx, nrings, nrings / 2);
			return -1;
		}
		msg->ring_index = (uint32_t)idx;
	}
	return 0;
}

bool
vhu_msg_is_postcopy_ack(const struct vhu_msg *msg)
{
	return (msg->hdr.request == VHOST_USER_SET_MEM_TABLE ||
		msg->hdr.request == VHOST_USER_ADD_MEM_REG) &&
	       (msg->hdr.flags & ~VHOST_USER_NEED_REPLY) == VHOST_USER_VERSION &&
	       msg->hdr.size == sizeof(uint64_t) && msg->nfds == 0 && msg->payload.u64 == 0;
}

void
vhu_msg_close_fds(struct vhu_msg *msg)
{
	for (uint32_t i = 0; i < msg->nfds; i++) {
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
		msg->fds[i] = -1;
	}
	msg->nfds = 0;
}
