/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the vhost-user message rules (message.c: vhu_msg_validate)
 * and of the session's dispatch (session.c: vhu_session_handle): one rule
 * per request we handle and one handler per rule, every other request
 * refused with a log line naming it, and the answer each kind of request
 * gets (payload, reply-ack, nothing, hang-up).
 *
 * No EAL is needed: a session without memory never maps or allocates, and
 * rte_log works before rte_eal_init (its output is captured to check names).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_log.h>

#include "message.h"
#include "session.h"
#include "vhu.h"
#include "virtio_defs.h"
#include "vring_ctl.h"

#include "check.h"
#include "log_capture.h"

#define NRINGS 4

/* ---- messages ---- */

static void
msg_init(struct vhu_msg *m, uint32_t request, uint32_t size)
{
	memset(m, 0, sizeof(*m));
	m->hdr.request = request;
	m->hdr.flags = VHOST_USER_VERSION;
	m->hdr.size = size;
	for (int i = 0; i < VHU_MSG_MAX_FDS; i++)
		m->fds[i] = -1;
}

static int
validate(struct vhu_msg *m)
{
	return vhu_msg_validate(m, NRINGS, "unit");
}

static bool
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* ---- the rules table and the handlers ---- */

/*
 * Every request code: supported (a rule) exactly when the session has a
 * handler; every other one fails validation, and the log names it when the
 * specification does.
 */
static void
test_one_rule_one_handler(void)
{
	unsigned int supported = 0;

	for (uint32_t r = 0; r < VHOST_USER_REQUEST_MAX + 8; r++) {
		struct vhu_msg m;

		EXPECT_EQ(vhu_request_supported(r), vhu_session_handles(r));
		if (vhu_request_supported(r)) {
			supported++;
			continue;
		}
		msg_init(&m, r, 0);
		log_capture_start();
		EXPECT_EQ(validate(&m), -1);
		log_capture_stop();
		char want[96];

		snprintf(want, sizeof(want), "unit: unsupported request %u (%s)", r,
			 vhu_request_name(r));
		if (strstr(log_buf, want) == NULL) {
			fprintf(stderr, "request %u: log lacks \"%s\":\n%s", r, want, log_buf);
			EXPECT(false);
		}
	}
	EXPECT_EQ(supported, 30);
	/* requests of the specification we do not handle are named, not "unknown" */
	CHECK(strcmp(vhu_request_name(22), "IOTLB_MSG") == 0);
	CHECK(strcmp(vhu_request_name(28), "POSTCOPY_ADVISE") == 0);
	CHECK(strcmp(vhu_request_name(37), "ADD_MEM_REG") == 0);
	CHECK(strcmp(vhu_request_name(43), "CHECK_DEVICE_STATE") == 0);
	CHECK(strcmp(vhu_request_name(0), "unknown") == 0);
	CHECK(strcmp(vhu_request_name(44), "unknown") == 0);
	CHECK(strcmp(vhu_request_name(UINT32_MAX), "unknown") == 0);
}

/* ---- validation ---- */

struct rule_case {
	const char *name;
	uint32_t request;
	uint32_t size;
	uint32_t flags;		/* header flags (0: version 1, nothing else) */
	uint64_t u64;		/* payload.u64, or state.index / addr.index */
	uint32_t nfds;
	uint32_t nregions;	/* SET_MEM_TABLE */
	int want;		/* vhu_msg_validate's result */
	const char *log;	/* what the log must say when refused */
};

#define STATE sizeof(struct vhu_vring_state)
#define ADDR sizeof(struct vhu_vring_addr)
#define MEM(n) (8 + (n) * sizeof(struct vhu_mem_region_desc))

static const struct rule_case rule_cases[] = {
	{ "no payload", VHOST_USER_GET_FEATURES, 0, 0, 0, 0, 0, 0, NULL },
	{ "payload where none", VHOST_USER_GET_FEATURES, 8, 0, 0, 0, 0, -1,
	  "GET_FEATURES with a payload of 8 bytes" },
	{ "u64", VHOST_USER_SET_FEATURES, 8, 0, 0, 0, 0, 0, NULL },
	{ "u64 short", VHOST_USER_SET_FEATURES, 4, 0, 0, 0, 0, -1,
	  "SET_FEATURES with a payload of 4 bytes" },
	{ "need reply", VHOST_USER_SET_FEATURES, 8, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY, 0, 0, 0, 0, NULL },
	{ "version 2", VHOST_USER_SET_FEATURES, 8, 2, 0, 0, 0, -1, "bad flags 0x2" },
	{ "reply bit", VHOST_USER_SET_FEATURES, 8, VHOST_USER_VERSION | VHOST_USER_REPLY, 0, 0, 0, -1,
	  "bad flags 0x5" },
	{ "unknown flag", VHOST_USER_SET_FEATURES, 8, VHOST_USER_VERSION | 0x100, 0, 0, 0, -1, "bad flags 0x101" },
	{ "state", VHOST_USER_SET_VRING_NUM, STATE, 0, 3, 0, 0, 0, NULL },
	{ "state ring beyond", VHOST_USER_SET_VRING_NUM, STATE, 0, NRINGS, 0, 0, -1,
	  "SET_VRING_NUM for ring 4, but this port has 4 rings" },
	{ "addr", VHOST_USER_SET_VRING_ADDR, ADDR, 0, 1, 0, 0, 0, NULL },
	{ "addr as state", VHOST_USER_SET_VRING_ADDR, STATE, 0, 1, 0, 0, -1,
	  "SET_VRING_ADDR with a payload of 8 bytes" },
	{ "addr ring beyond", VHOST_USER_SET_VRING_ADDR, ADDR, 0, 200, 0, 0, -1,
	  "SET_VRING_ADDR for ring 200" },
	{ "kick with fd", VHOST_USER_SET_VRING_KICK, 8, 0, 2, 1, 0, 0, NULL },
	{ "kick without fd", VHOST_USER_SET_VRING_KICK, 8, 0, 2 | VHOST_USER_VRING_NOFD, 0, 0, 0,
	  NULL },
	{ "kick fd missing", VHOST_USER_SET_VRING_KICK, 8, 0, 2, 0, 0, -1,
	  "SET_VRING_KICK with 0 file descriptors, 1 expected" },
	{ "kick fd extra", VHOST_USER_SET_VRING_CALL, 8, 0, 2 | VHOST_USER_VRING_NOFD, 1, 0, -1,
	  "SET_VRING_CALL with 1 file descriptors, 0 expected" },
	{ "kick unknown bits", VHOST_USER_SET_VRING_ERR, 8, 0, 0x10002, 1, 0, -1,
	  "SET_VRING_ERR with unknown bits in 0x10002" },
	{ "kick ring beyond", VHOST_USER_SET_VRING_KICK, 8, 0, NRINGS, 1, 0, -1,
	  "SET_VRING_KICK for ring 4" },
	{ "fds on a request without", VHOST_USER_GET_QUEUE_NUM, 0, 0, 0, 1, 0, -1,
	  "GET_QUEUE_NUM with 1 file descriptors, 0 expected" },
	{ "log base", VHOST_USER_SET_LOG_BASE, 16, 0, 0, 1, 0, 0, NULL },
	{ "log base without fd", VHOST_USER_SET_LOG_BASE, 16, 0, 0, 0, 0, -1,
	  "SET_LOG_BASE with 0 file descriptors, 1 expected" },
	{ "memory 2 regions", VHOST_USER_SET_MEM_TABLE, MEM(2), 0, 0, 2, 2, 0, NULL },
	{ "memory fds short", VHOST_USER_SET_MEM_TABLE, MEM(2), 0, 0, 1, 2, -1,
	  "SET_MEM_TABLE with 1 file descriptors, 2 expected" },
	{ "memory 0 regions", VHOST_USER_SET_MEM_TABLE, MEM(0), 0, 0, 0, 0, -1,
	  "SET_MEM_TABLE with a payload of 8 bytes" },
	{ "memory 9 regions", VHOST_USER_SET_MEM_TABLE, MEM(8), 0, 0, 8, 9, -1,
	  "SET_MEM_TABLE with a payload of" },
	{ "memory size off", VHOST_USER_SET_MEM_TABLE, MEM(2) + 1, 0, 0, 2, 2, -1,
	  "SET_MEM_TABLE with a payload of" },
	{ "memory header short", VHOST_USER_SET_MEM_TABLE, 4, 0, 0, 0, 0, -1,
	  "SET_MEM_TABLE with a payload of 4 bytes" },
};

static void
run_rule_case(const struct rule_case *c)
{
	struct vhu_msg m;
	int r;

	msg_init(&m, c->request, c->size);
	if (c->flags != 0)
		m.hdr.flags = c->flags;
	if (c->request == VHOST_USER_SET_VRING_NUM)
		m.payload.state.index = (uint32_t)c->u64;
	else if (c->request == VHOST_USER_SET_VRING_ADDR)
		m.payload.addr.index = (uint32_t)c->u64;
	else
		m.payload.u64 = c->u64;
	if (c->request == VHOST_USER_SET_MEM_TABLE)
		m.payload.memory.nregions = c->nregions;
	m.nfds = c->nfds;
	for (uint32_t i = 0; i < c->nfds; i++)
		m.fds[i] = 100 + (int)i;	/* never used: validation only counts them */
	log_capture_start();
	r = validate(&m);
	log_capture_stop();
	EXPECT_EQ(r, c->want);
	if (c->want == 0 && (c->request == VHOST_USER_SET_VRING_NUM ||
			     c->request == VHOST_USER_SET_VRING_ADDR ||
			     c->request == VHOST_USER_SET_VRING_KICK))
		EXPECT_EQ(m.ring_index, (uint32_t)(c->u64 & VHOST_USER_VRING_IDX_MASK));
	if (c->log != NULL && strstr(log_buf, c->log) == NULL) {
		fprintf(stderr, "log lacks \"%s\":\n%s", c->log, log_buf);
		EXPECT(false);
	}
	/* validation leaves the fds to the caller */
	EXPECT_EQ(m.nfds, c->nfds);
}

static void
nothing_after(void)
{
}

static void
test_rules(void)
{
	RUN_CASES(rule_cases, run_rule_case, nothing_after);
}

/* ---- dispatch ---- */

static struct vhu_vring rings[NRINGS];
static struct vhu_session session;

static void
session_setup(void)
{
	struct vhu_port_config cfg = { .name = "unit", .queue_pairs = NRINGS / 2, .tso = true };

	for (uint16_t i = 0; i < NRINGS; i++)
		vhu_vring_ctl_init(&rings[i], i, "unit", SOCKET_ID_ANY, 0, NULL);
	vhu_session_init(&session, &cfg, "unit", rings);
	vhu_session_connected(&session);
}

static enum vhu_dispatch
send_msg(struct vhu_msg *m)
{
	return vhu_session_handle(&session, m);
}

static enum vhu_dispatch
send_u64(uint32_t request, uint64_t value, bool need_reply, struct vhu_msg *m)
{
	msg_init(m, request, sizeof(uint64_t));
	m->payload.u64 = value;
	if (need_reply)
		m->hdr.flags |= VHOST_USER_NEED_REPLY;
	return send_msg(m);
}

static void
test_dispatch(void)
{
	struct vhu_msg m;
	int fd;

	session_setup();
	/* an answered request: its payload, with or without NEED_REPLY */
	msg_init(&m, VHOST_USER_GET_FEATURES, 0);
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_REPLY);
	CHECK_EQ(m.hdr.size, sizeof(uint64_t));
	CHECK_EQ(m.payload.u64, session.offered_features);
	CHECK(m.payload.u64 & VHU_BIT(VIRTIO_NET_F_HOST_TSO4));
	msg_init(&m, VHOST_USER_GET_QUEUE_NUM, 0);
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_REPLY);
	CHECK_EQ(m.payload.u64, NRINGS / 2);

	/* without REPLY_ACK negotiated, NEED_REPLY gets nothing back */
	CHECK_EQ(send_u64(VHOST_USER_SET_FEATURES, VHU_BIT(VIRTIO_F_VERSION_1) |
			  VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES), true, &m), VHU_DISPATCH_DONE);
	/* ... nor a refusal: bits not offered */
	CHECK_EQ(send_u64(VHOST_USER_SET_FEATURES, UINT64_MAX, true, &m), VHU_DISPATCH_DONE);
	/* the SET_PROTOCOL_FEATURES that turns REPLY_ACK on is acknowledged */
	CHECK_EQ(send_u64(VHOST_USER_SET_PROTOCOL_FEATURES,
			  VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK), true, &m), VHU_DISPATCH_REPLY);
	CHECK_EQ(m.hdr.size, sizeof(uint64_t));
	CHECK_EQ(m.payload.u64, 0);
	/* then: ack 0 when handled, 1 when refused (the connection is kept) */
	CHECK_EQ(send_u64(VHOST_USER_SET_FEATURES, VHU_BIT(VIRTIO_F_VERSION_1), true, &m),
		 VHU_DISPATCH_REPLY);
	CHECK_EQ(m.payload.u64, 0);
	CHECK_EQ(send_u64(VHOST_USER_NET_SET_MTU, 10, true, &m), VHU_DISPATCH_REPLY);
	CHECK_EQ(m.payload.u64, 1);
	CHECK_EQ(send_u64(VHOST_USER_NET_SET_MTU, 1500, false, &m), VHU_DISPATCH_DONE);
	msg_init(&m, VHOST_USER_SET_VRING_ENABLE, sizeof(struct vhu_vring_state));
	m.hdr.flags |= VHOST_USER_NEED_REPLY;
	m.payload.state.index = 1;
	m.payload.state.num = 2;
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_REPLY);
	CHECK_EQ(m.payload.u64, 1);

	/* an answered request that is refused still answers: SET_LOG_BASE 1 */
	fd = eventfd(0, EFD_CLOEXEC);
	CHECK(fd >= 0);
	msg_init(&m, VHOST_USER_SET_LOG_BASE, sizeof(struct vhu_log_base));
	m.payload.log.mmap_size = 4096;
	m.fds[0] = fd;
	m.nfds = 1;
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_REPLY);
	CHECK_EQ(m.hdr.size, sizeof(uint64_t));
	CHECK_EQ(m.payload.u64, 1);
	CHECK(!fd_is_open(fd));			/* taken and closed */
	CHECK_EQ(m.nfds, 0);

	/* GET_VRING_BASE answers where the ring is */
	msg_init(&m, VHOST_USER_GET_VRING_BASE, sizeof(struct vhu_vring_state));
	m.payload.state.index = 3;
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_REPLY);
	CHECK_EQ(m.payload.state.num, 0);

	/* a request we do not handle: the connection closes, its fds with it */
	fd = eventfd(0, EFD_CLOEXEC);
	CHECK(fd >= 0);
	msg_init(&m, 24, 0);
	m.fds[0] = fd;
	m.nfds = 1;
	log_capture_start();
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_CLOSE);
	log_capture_stop();
	CHECK(strstr(log_buf, "unit: unsupported request 24 (GET_CONFIG)") != NULL);
	CHECK(!fd_is_open(fd));
	CHECK_EQ(m.nfds, 0);

	/* an fd its handler does not keep is closed (SET_LOG_FD: no use for it) */
	fd = eventfd(0, EFD_CLOEXEC);
	CHECK(fd >= 0);
	msg_init(&m, VHOST_USER_SET_LOG_FD, 0);
	m.fds[0] = fd;
	m.nfds = 1;
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_DONE);
	CHECK(!fd_is_open(fd));
	/* one it keeps stays open, the ring's until the session ends */
	fd = eventfd(0, EFD_CLOEXEC);
	CHECK(fd >= 0);
	msg_init(&m, VHOST_USER_SET_VRING_CALL, sizeof(uint64_t));
	m.payload.u64 = 1;
	m.fds[0] = fd;
	m.nfds = 1;
	CHECK_EQ(send_msg(&m), VHU_DISPATCH_DONE);
	CHECK(fd_is_open(fd));
	CHECK_EQ(rings[1].notify.callfd, fd);
	vhu_session_end(&session);
	CHECK(!fd_is_open(fd));			/* the session's end closed it */
	CHECK_EQ(rings[1].notify.callfd, -1);
	CHECK_EQ(session.id, -1);
	CHECK(!session.connected);
}

/* The postcopy acknowledgement: the request answered again, a u64 of 0, nothing else. */
static void
test_postcopy_ack(void)
{
	struct vhu_msg m;

	msg_init(&m, VHOST_USER_SET_MEM_TABLE, sizeof(uint64_t));
	CHECK(vhu_msg_is_postcopy_ack(&m));
	m.hdr.flags |= VHOST_USER_NEED_REPLY;
	CHECK(vhu_msg_is_postcopy_ack(&m));
	msg_init(&m, VHOST_USER_ADD_MEM_REG, sizeof(uint64_t));
	CHECK(vhu_msg_is_postcopy_ack(&m));
	m.payload.u64 = 1;
	CHECK(!vhu_msg_is_postcopy_ack(&m));
	msg_init(&m, VHOST_USER_SET_MEM_TABLE, 2 * sizeof(uint64_t));
	CHECK(!vhu_msg_is_postcopy_ack(&m));
	msg_init(&m, VHOST_USER_SET_MEM_TABLE, sizeof(uint64_t));
	m.nfds = 1;
	CHECK(!vhu_msg_is_postcopy_ack(&m));
	msg_init(&m, VHOST_USER_SET_MEM_TABLE, sizeof(uint64_t));
	m.hdr.flags = 2;	/* another protocol version */
	CHECK(!vhu_msg_is_postcopy_ack(&m));
	msg_init(&m, VHOST_USER_GET_FEATURES, sizeof(uint64_t));
	CHECK(!vhu_msg_is_postcopy_ack(&m));
}

int
main(void)
{
	RUN_TEST(test_one_rule_one_handler);
	RUN_TEST(test_rules);
	RUN_TEST(test_dispatch);
	RUN_TEST(test_postcopy_ack);
	return check_summary("test_message");
}
