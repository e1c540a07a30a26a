/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost-user wire format: message header, typed payloads, and the one
 * table that says, per request, which payload, fds and ring index are valid.
 * vhu_msg_validate() applies that table before any handler sees a message.
 */
#ifndef VHU_MESSAGE_H
#define VHU_MESSAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "memory.h"
#include "virtio_defs.h"

enum vhu_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_REQUEST_MAX = 41,	/* one past the highest code in the table */
};

/* Protocol feature bits. */
#define VHOST_USER_PROTOCOL_F_MQ		0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD		1
#define VHOST_USER_PROTOCOL_F_RARP		2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK		3
#define VHOST_USER_PROTOCOL_F_NET_MTU		4
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ	5
#define VHOST_USER_PROTOCOL_F_PAGEFAULT		8
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS	15
#define VHOST_USER_PROTOCOL_F_STATUS		16

/* SET_VRING_KICK/CALL/ERR payload: ring index and "no fd" bit. */
#define VHOST_USER_VRING_IDX_MASK	0xffu
#define VHOST_USER_VRING_NOFD		0x100u


#define VHU_MSG_MAX_FDS 8
/* Largest payload any request we know may carry; bigger ones are refused. */
#define VHU_MSG_MAX_PAYLOAD 512

struct vhu_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vhu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
};

struct vhu_log_base {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

struct vhu_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhu_mem_region_desc regions[VHU_MEM_MSG_REGIONS];
};

/* ADD_MEM_REG and REM_MEM_REG payload: one region. */
struct vhu_mem_single_region {
	uint64_t padding;
	struct vhu_mem_region_desc region;
};

struct vhu_msg {
	struct vhu_msg_hdr hdr;
	union {
		uint64_t u64;
		struct vhu_vring_state state;
		struct vhu_vring_addr addr;
		struct vhu_memory memory;
		struct vhu_mem_single_region mem_reg;
		struct vhu_log_base log;
		struct vhu_iotlb_msg iotlb;
		uint8_t raw[VHU_MSG_MAX_PAYLOAD];
	} payload;
	int fds[VHU_MSG_MAX_FDS];
	uint32_t nfds;
	int reply_fd;		/* sent with the reply (the handler keeps its own), or -1 */
	/* Filled by validation. */
	uint32_t ring_index;	/* for requests that name a ring */
};

/* Name of a request code, for logs: any the specification defines, else "unknown". */
const char *vhu_request_name(uint32_t request);

/* Whether the rules table has @request (the ones we handle). */
bool vhu_request_supported(uint32_t request);

/* Whether the request's handler always answers with a payload. */
bool vhu_request_has_reply(uint32_t request);

/*
 * Checks header flags, payload size, fd count and ring index of @msg against
 * the request table. @nrings: rings of this port. Returns 0, or -1 after
 * logging what is wrong. Fds are left for the caller to close.
 */
int vhu_msg_validate(struct vhu_msg *msg, uint32_t nrings, const char *log_name);

/*
 * Whether @msg is a front end's acknowledgement of our postcopy answer to
 * SET_MEM_TABLE or ADD_MEM_REG: that request again, a u64 payload of 0, no
 * fd. Only valid while the session waits for it.
 */
bool vhu_msg_is_postcopy_ack(const struct vhu_msg *msg);

/* Close the fds a message still holds (those a handler did not take). */
void vhu_msg_close_fds(struct vhu_msg *msg);

#endif /* VHU_MESSAGE_H */
