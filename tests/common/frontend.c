/* SPDX-License-Identifier: BSD-3-Clause */
#define _GNU_SOURCE
#include "frontend.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <vhu.h>

/* The wire format only: request codes, feature bits and payload layouts. */
#include "message.h"

#define FE_ADDR 0x7f0000000000ull	/* the front end's address of guest memory (never dereferenced) */
#define RING_SIZE 256
/* Ring r's descriptors, available and used areas, 16 KiB apart. */
#define RING_OFF(r) ((uint64_t)(r) * 16384)
#define DESC_OFF 0
#define AVAIL_OFF 4096
#define USED_OFF 8192

bool
fe_socket_dir_make(char *dir, size_t size, const char *name)
{
	const char *tmp = getenv("VHU_TMPDIR") ? getenv("VHU_TMPDIR") : "/tmp";

	if (snprintf(dir, size, "%s/vhu-%s-XXXXXX", tmp, name) >= (int)size ||
	    mkdtemp(dir) == NULL) {
		fprintf(stderr, "socket directory under %s: %s\n", tmp, strerror(errno));
		dir[0] = '\0';
		return false;
	}
	return true;
}

bool
fe_socket_dir_remove(char *dir)
{
	bool ok = dir[0] == '\0' || rmdir(dir) == 0;

	if (!ok)
		fprintf(stderr, "rmdir %s: %s\n", dir, strerror(errno));
	dir[0] = '\0';
	return ok;
}

int
fe_guest_memfd(void)
{
	int fd = memfd_create("vhu-test-guest", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, FE_GUEST_SIZE) < 0) {
		perror("front end: guest memory");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
fe_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "front end: connect %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

bool
fe_send_msg(int fd, uint32_t request, const void *payload, uint32_t size, int passfd)
{
	struct vhu_msg_hdr hdr = {
		.request = request,
		/* every request asks for its reply-ack: a front end waits for each */
		.flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY,
		.size = size,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)(uintptr_t)payload, .iov_len = size },
	};
	char control[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n;

	if (passfd >= 0) {
		struct cmsghdr *cm;

		memset(control, 0, sizeof(control));
		mh.msg_control = control;
		mh.msg_controllen = sizeof(control);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &passfd, sizeof(int));
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(sizeof(hdr) + size)) {
		fprintf(stderr, "front end: sending request %u: %s\n", request,
			n < 0 ? strerror(errno) : "short write");
		return false;
	}
	return true;
}

/* Reads exactly @len bytes, waiting at most FE_REPLY_TIMEOUT_MS for each read. */
static bool
read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, FE_REPLY_TIMEOUT_MS) != 1) {
			fprintf(stderr, "front end: no reply within %d ms\n", FE_REPLY_TIMEOUT_MS);
			return false;
		}
		n = read(fd, p, len);
		if (n <= 0) {
			fprintf(stderr, "front end: reading a reply: %s\n",
				n < 0 ? strerror(errno) : "connection closed");
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool
fe_reply_u64(int fd, uint32_t request, uint64_t *value)
{
	struct vhu_msg_hdr hdr;

	if (!read_all(fd, &hdr, sizeof(hdr)))
		return false;
	if (hdr.request != request || hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY) ||
	    hdr.size != sizeof(*value)) {
		fprintf(stderr, "front end: request %u answered by request %u, flags 0x%x, %u bytes\n",
			request, hdr.request, hdr.flags, hdr.size);
		return false;
	}
	return read_all(fd, value, sizeof(*value));
}

bool
fe_request(int fd, uint32_t request, const void *payload, uint32_t size, int passfd)
{
	uint64_t ack;

	if (!fe_send_msg(fd, request, payload, size, passfd) || !fe_reply_u64(fd, request, &ack))
		return false;
	if (ack != 0) {
		fprintf(stderr, "front end: request %u refused (ack %" PRIu64 ")\n", request, ack);
		return false;
	}
	return true;
}

bool
fe_get_u64(int fd, uint32_t request, uint64_t *value)
{
	/* a GET is answered with its value; NEED_REPLY adds nothing to it */
	return fe_send_msg(fd, request, NULL, 0, -1) && fe_reply_u64(fd, request, value);
}

/* A kick or call fd for ring @r: an eventfd, ours closed once it is sent. */
static bool
ring_fd(int fd, uint32_t request, uint32_t r)
{
	uint64_t idx = r;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	bool ok;

	if (efd < 0) {
		perror("front end: eventfd");
		return false;
	}
	ok = fe_request(fd, request, &idx, sizeof(idx), efd);
	close(efd);
	return ok;
}

static bool
setup_ring(int fd, uint32_t r)
{
	struct vhu_vring_state num = { .index = r, .num = RING_SIZE };
	struct vhu_vring_state base = { .index = r, .num = 0 };
	struct vhu_vring_state enable = { .index = r, .num = 1 };
	struct vhu_vring_addr addr = {
		.index = r,
		.desc_user_addr = FE_ADDR + RING_OFF(r) + DESC_OFF,
		.avail_user_addr = FE_ADDR + RING_OFF(r) + AVAIL_OFF,
		.used_user_addr = FE_ADDR + RING_OFF(r) + USED_OFF,
	};

	return fe_request(fd, VHOST_USER_SET_VRING_NUM, &num, sizeof(num), -1) &&
	       fe_request(fd, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), -1) &&
	       fe_request(fd, VHOST_USER_SET_VRING_BASE, &base, sizeof(base), -1) &&
	       ring_fd(fd, VHOST_USER_SET_VRING_KICK, r) &&
	       ring_fd(fd, VHOST_USER_SET_VRING_CALL, r) &&
	       fe_request(fd, VHOST_USER_SET_VRING_ENABLE, &enable, sizeof(enable), -1);
}

bool
fe_handshake(int fd, const struct fe_guest *guest)
{
	uint64_t offered, protocol;
	uint64_t want_protocol = VHU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	struct vhu_memory mem = {
		.nregions = 1,
		.regions[0] = { .guest_phys_addr = 0, .size = FE_GUEST_SIZE,
				.frontend_addr = FE_ADDR, .mmap_offset = 0 },
	};
	uint32_t mem_size = (uint32_t)(offsetof(struct vhu_memory, regions) +
				       sizeof(mem.regions[0]));

	if (!fe_get_u64(fd, VHOST_USER_GET_FEATURES, &offered) ||
	    !fe_get_u64(fd, VHOST_USER_GET_PROTOCOL_FEATURES, &protocol))
		return false;
	if ((offered & guest->features) != guest->features ||
	    (protocol & want_protocol) != want_protocol) {
		fprintf(stderr, "front end: offered features 0x%" PRIx64 " protocol 0x%" PRIx64
			" lack what it needs\n", offered, protocol);
		return false;
	}
	return fe_request(fd, VHOST_USER_SET_PROTOCOL_FEATURES, &want_protocol,
			  sizeof(want_protocol), -1) &&
	       fe_request(fd, VHOST_USER_SET_OWNER, NULL, 0, -1) &&
	       fe_request(fd, VHOST_USER_SET_FEATURES, &guest->features, sizeof(guest->features),
			  -1) &&
	       fe_request(fd, VHOST_USER_SET_MEM_TABLE, &mem, mem_size, guest->memfd) &&
	       setup_ring(fd, 0) && setup_ring(fd, 1);
}
