/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The library is a static archive linked into the test executable
 * (lib/vhost/meson.build), so the linker's --wrap=SYMBOL (tests/fault/
 * meson.build) sends its calls of SYMBOL to __wrap_SYMBOL below, and
 * __real_SYMBOL to libc's (or ASan's interceptor of it). Only the objects
 * linked into the executable are redirected, not DPDK's shared libraries
 * nor libc's calls inside itself (malloc's mmap): an interposed mmap in the
 * executable would also catch those, an LD_PRELOAD shim too, and neither
 * could tell the library's calls from DPDK's. The test's own front end is
 * linked in as well; the thread filter keeps it out.
 */
#define _GNU_SOURCE
#include "syscall_fault.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const call_names[] = {
	[FAULT_MMAP] = "mmap",
	[FAULT_EVENTFD] = "eventfd",
	[FAULT_EPOLL_CTL] = "epoll_ctl",
	[FAULT_ACCEPT4] = "accept",
	[FAULT_SOCKET] = "socket",
	[FAULT_SENDMSG] = "sendmsg",
	[FAULT_RECVMSG] = "recvmsg",
};

/* Written by the test's thread while disarmed, read by the thread it names. */
static struct {
	bool armed;
	enum fault_call call;
	pid_t tid;
	unsigned int nth;
	int err;
	unsigned int calls;	/* of @call by @tid since armed */
	bool fired;
} fault;

const char *
fault_call_name(enum fault_call call)
{
	return call_names[call];
}

void
fault_arm(enum fault_call call, pid_t tid, unsigned int nth, int err)
{
	fault.call = call;
	fault.tid = tid;
	fault.nth = nth;
	fault.err = err;
	fault.calls = 0;
	fault.fired = false;
	__atomic_store_n(&fault.armed, true, __ATOMIC_RELEASE);
}

bool
fault_disarm(void)
{
	__atomic_store_n(&fault.armed, false, __ATOMIC_RELEASE);
	return __atomic_load_n(&fault.fired, __ATOMIC_ACQUIRE);
}

/* Whether this call of @call fails; its errno (or FAULT_SHORT) in *@err. */
static bool
inject(enum fault_call call, int *err)
{
	if (!__atomic_load_n(&fault.armed, __ATOMIC_ACQUIRE) || fault.call != call ||
	    fault.tid != gettid())
		return false;
	/* only the armed thread gets here: no other writer */
	if (++fault.calls != fault.nth)
		return false;
	__atomic_store_n(&fault.fired, true, __ATOMIC_RELEASE);
	*err = fault.err;
	return true;
}

/*
 * __wrap_NAME(PARAMS): fails with the armed errno, returning FAILED, when
 * armed for this call; else libc's NAME(ARGS).
 */
#define WRAP(type, name, call, failed, params, args) \
	type __real_##name params; \
	type __wrap_##name params; \
	type __wrap_##name params \
	{ \
		int err; \
		\
		if (!inject(call, &err)) \
			return __real_##name args; \
		errno = err; \
		return failed; \
	}

/* The library is built with _FILE_OFFSET_BITS=64: its mmap is mmap64. */
WRAP(void *, mmap64, FAULT_MMAP, MAP_FAILED,
     (void *addr, size_t len, int prot, int flags, int fd, off_t off),
     (addr, len, prot, flags, fd, off))
WRAP(int, eventfd, FAULT_EVENTFD, -1, (unsigned int count, int flags), (count, flags))
WRAP(int, epoll_ctl, FAULT_EPOLL_CTL, -1, (int epfd, int op, int fd, struct epoll_event *ev),
     (epfd, op, fd, ev))
WRAP(int, accept4, FAULT_ACCEPT4, -1, (int fd, struct sockaddr *sa, socklen_t *len, int flags),
     (fd, sa, len, flags))
WRAP(int, socket, FAULT_SOCKET, -1, (int domain, int type, int protocol),
     (domain, type, protocol))

/* sendmsg and recvmsg can also be short (FAULT_SHORT). */
ssize_t __real_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __real_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t __wrap_recvmsg(int fd, struct msghdr *msg, int flags);

/*
 * What sendmsg or recvmsg (@call) passes on: @msg, or when armed so, @msg
 * with its data cut to half its first buffer (at least a byte), in @cut
 * and @iov; NULL (errno set) when the call fails instead.
 */
static const struct msghdr *
transfer(enum fault_call call, const struct msghdr *msg, struct msghdr *cut, struct iovec *iov)
{
	int err;

	if (!inject(call, &err))
		return msg;
	if (err != FAULT_SHORT) {
		errno = err;
		return NULL;
	}
	*cut = *msg;
	*iov = msg->msg_iov[0];
	if (iov->iov_len > 1)
		iov->iov_len /= 2;
	cut->msg_iov = iov;
	cut->msg_iovlen = 1;
	return cut;
}

ssize_t
__wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct msghdr cut;
	struct iovec iov;
	const struct msghdr *m = transfer(FAULT_SENDMSG, msg, &cut, &iov);

	return m != NULL ? __real_sendmsg(fd, m, flags) : -1;
}

ssize_t
__wrap_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct msghdr cut;
	struct iovec iov;
	const struct msghdr *m = transfer(FAULT_RECVMSG, msg, &cut, &iov);
	ssize_t n;

	if (m != &cut)
		return m != NULL ? __real_recvmsg(fd, msg, flags) : -1;
	n = __real_recvmsg(fd, &cut, flags);
	/* what the kernel says back besides the data */
	msg->msg_controllen = cut.msg_controllen;
	msg->msg_flags = cut.msg_flags;
	return n;
}
