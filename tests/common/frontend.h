/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small vhost-user front end in C for the tests that drive the library
 * in-process (tests/scale, tests/fault): a Unix socket sending the messages
 * QEMU sends a net back end for one queue pair, each request with
 * NEED_REPLY and waiting for its answer. Failures are said on stderr.
 */
#ifndef VHU_TEST_FRONTEND_H
#define VHU_TEST_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What fe_handshake() sends: GET_FEATURES, GET_PROTOCOL_FEATURES,
 * SET_PROTOCOL_FEATURES, SET_OWNER, SET_FEATURES, SET_MEM_TABLE, then NUM,
 * ADDR, BASE, KICK, CALL and ENABLE for rings 0 and 1.
 */
#define FE_MSGS_PER_HANDSHAKE (6 + 2 * 6)

/* How long a reply may take before the front end gives up. */
#define FE_REPLY_TIMEOUT_MS 5000

/* The guest memory a front end hands over (one region) and what it accepts. */
#define FE_GUEST_SIZE (64 * 1024)

struct fe_guest {
	int memfd;		/* FE_GUEST_SIZE bytes (fe_guest_memfd()) */
	uint64_t features;	/* accepted of the offer: must all be offered */
};

/*
 * A private directory for the ports' sockets in @dir (@size bytes): a new
 * vhu-@name-XXXXXX under $VHU_TMPDIR (default /tmp). False (said) if it
 * cannot be made, @dir then empty.
 */
bool fe_socket_dir_make(char *dir, size_t size, const char *name);

/*
 * Removes @dir (nothing if empty), which must be empty: every port
 * unlinks its socket file when destroyed. False (said) if it cannot be.
 */
bool fe_socket_dir_remove(char *dir);

/* A memfd of FE_GUEST_SIZE bytes, or -1 (said). */
int fe_guest_memfd(void);

/* A socket connected to @path, or -1 (said). */
int fe_connect(const char *path);

/* One request with @size bytes of @payload and @passfd (-1: none) attached. */
bool fe_send_msg(int fd, uint32_t request, const void *payload, uint32_t size, int passfd);

/* The u64 answering @request: a GET's value or a reply-ack. */
bool fe_reply_u64(int fd, uint32_t request, uint64_t *value);

/* A GET request and its value. */
bool fe_get_u64(int fd, uint32_t request, uint64_t *value);

/* A request with its reply-ack, which must say success (0). */
bool fe_request(int fd, uint32_t request, const void *payload, uint32_t size, int passfd);

/* The whole set-up of queue pair 0 (FE_MSGS_PER_HANDSHAKE messages). */
bool fe_handshake(int fd, const struct fe_guest *guest);

#endif /* VHU_TEST_FRONTEND_H */
