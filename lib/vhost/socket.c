/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "socket.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_lcore.h>

#include "memguard.h"
#include "message.h"
#include "session.h"
#include "vhu_log.h"

/* Messages handled per connection per wake-up, so one chatty front end cannot starve others. */
#define MSGS_PER_WAKEUP 32
#define LISTEN_BACKLOG 4
/* Client mode: seconds between connection attempts. */
#define RECONNECT_INTERVAL_S 1

typedef void (*fd_callback)(void *ctx, uint32_t events);

/*
 * Registered fds live in slots; epoll carries (generation << 32 | slot), so an
 * event that arrives for an fd unregistered meanwhile is recognised and dropped.
 */
struct fd_slot {
	fd_callback cb;
	void *ctx;
	uint32_t generation;
	bool used;
};

static struct {
	pthread_mutex_t lock;	/* recursive: callbacks may (un)register */
	pthread_mutex_t lifecycle;	/* serialises thread start and stop */
	int epfd;
	int wakefd;
	pthread_t thread;
	bool stop;
	/* The running thread's own exit flag: set when it stopped itself. */
	bool *thread_exits;
	/*
	 * Control threads that stopped themselves (detached) and have not yet
	 * returned; vhu_ctl_wait_detached() waits for 0. Under finishing_lock,
	 * not ctl.lock: a new thread may start and stop meanwhile.
	 */
	unsigned int finishing;
	pthread_mutex_t finishing_lock;
	pthread_cond_t finished;
	struct vhu_ctl_deferred *deferred;	/* control thread only */
	unsigned int users;	/* ports that have a listening socket */
	struct fd_slot *slots;
	uint32_t nslots;
} ctl = {
	.lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP,
	.lifecycle = PTHREAD_MUTEX_INITIALIZER,
	.finishing_lock = PTHREAD_MUTEX_INITIALIZER,
	.finished = PTHREAD_COND_INITIALIZER,
	.epfd = -1,
	.wakefd = -1,
};

#define WAKE_TOKEN UINT64_MAX
#define MEMGUARD_TOKEN (UINT64_MAX - 1)

static void close_sessions_that_lost_memory(void);

void
vhu_ctl_lock(void)
{
	pthread_mutex_lock(&ctl.lock);
}

void
vhu_ctl_unlock(void)
{
	pthread_mutex_unlock(&ctl.lock);
}

/* Call with ctl.lock held. Returns a handle, or 0 on failure (logged for port @name). */
static uint64_t
ctl_register(int fd, fd_callback cb, void *ctx, const char *name)
{
	uint32_t i;

	for (i = 0; i < ctl.nslots && ctl.slots[i].used; i++)
		;
	if (i == ctl.nslots) {
		uint32_t n = ctl.nslots ? 2 * ctl.nslots : 16;
		struct fd_slot *s = realloc(ctl.slots, n * sizeof(*s));

		if (s == NULL)
			return 0;
		memset(s + ctl.nslots, 0, (n - ctl.nslots) * sizeof(*s));
		ctl.slots = s;
		ctl.nslots = n;
	}
	struct fd_slot *slot = &ctl.slots[i];
	uint64_t handle = ((uint64_t)(slot->generation + 1) << 32) | i;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = handle };

	if (epoll_ctl(ctl.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		VHU_LOG(ERR, "%s: epoll_ctl add fd %d: %s", name, fd, strerror(errno));
		return 0;
	}
	slot->generation++;
	slot->cb = cb;
	slot->ctx = ctx;
	slot->used = true;
	return handle;
}

/* Call with ctl.lock held. */
static void
ctl_unregister(int fd, uint64_t handle)
{
	struct fd_slot *slot = &ctl.slots[(uint32_t)handle];

	epoll_ctl(ctl.epfd, EPOLL_CTL_DEL, fd, NULL);
	slot->used = false;
	slot->cb = NULL;
	slot->ctx = NULL;
}

static void
ctl_dispatch(uint64_t handle, uint32_t events)
{
	uint32_t idx = (uint32_t)handle;
	uint32_t gen = (uint32_t)(handle >> 32);

	if (idx >= ctl.nslots || !ctl.slots[idx].used || ctl.slots[idx].generation != gen)
		return;	/* unregistered after epoll_wait returned */
	ctl.slots[idx].cb(ctl.slots[idx].ctx, events);
}

bool
vhu_ctl_on_thread(void)
{
	return ctl.epfd >= 0 && pthread_equal(pthread_self(), ctl.thread);
}

void
vhu_ctl_defer(struct vhu_ctl_deferred *d)
{
	d->next = ctl.deferred;
	ctl.deferred = d;
}

static void
run_deferred(void)
{
	while (ctl.deferred != NULL) {
		struct vhu_ctl_deferred *d = ctl.deferred;

		ctl.deferred = d->next;
		d->fn(d->arg);
	}
}

/* True on a control thread, running or finishing after it stopped itself. */
static __thread bool on_ctl_thread;

/* The last thing a control thread that stopped itself does. */
static void
ctl_detached_finished(void)
{
	pthread_mutex_lock(&ctl.finishing_lock);
	ctl.finishing--;
	pthread_cond_broadcast(&ctl.finished);
	pthread_mutex_unlock(&ctl.finishing_lock);
}

void
vhu_ctl_wait_detached(void)
{
	if (on_ctl_thread)
		return;	/* it would wait for itself */
	pthread_mutex_lock(&ctl.finishing_lock);
	while (ctl.finishing > 0)
		pthread_cond_wait(&ctl.finished, &ctl.finishing_lock);
	pthread_mutex_unlock(&ctl.finishing_lock);
}

static void *
ctl_thread_main(void *arg __rte_unused)
{
	struct epoll_event evs[32];
	bool exits = false;

	on_ctl_thread = true;
	ctl.thread_exits = &exits;
	for (;;) {
		int n = epoll_wait(ctl.epfd, evs, RTE_DIM(evs), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			VHU_LOG(ERR, "control thread: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		pthread_mutex_lock(&ctl.lock);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == WAKE_TOKEN) {
				eventfd_t v;

				eventfd_read(ctl.wakefd, &v);
				continue;
			}
			if (evs[i].data.u64 == MEMGUARD_TOKEN) {
				close_sessions_that_lost_memory();
				continue;
			}
			ctl_dispatch(evs[i].data.u64, evs[i].events);
		}
		bool stop = ctl.stop;

		pthread_mutex_unlock(&ctl.lock);
		/* it may destroy the last port, stopping this thread (ctl_stop) */
		run_deferred();
		if (exits)
			ctl_detached_finished();
		if (stop || exits)
			return NULL;
	}
}

static int
ctl_start(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TOKEN };
	struct epoll_event guard_ev = { .events = EPOLLIN, .data.u64 = MEMGUARD_TOKEN };
	int guard_fd = vhu_memguard_eventfd();
	const char *failed = NULL;	/* the call that failed, for the log */

	if (guard_fd < 0) {
		VHU_LOG(ERR, "control thread set-up: no eventfd for the memory guard");
		return -1;
	}
	ctl.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ctl.epfd < 0)
		failed = "epoll_create1";
	else if ((ctl.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		failed = "eventfd";
	else if (epoll_ctl(ctl.epfd, EPOLL_CTL_ADD, ctl.wakefd, &ev) < 0 ||
		 epoll_ctl(ctl.epfd, EPOLL_CTL_ADD, guard_fd, &guard_ev) < 0)
		failed = "epoll_ctl";
	if (failed != NULL) {
		VHU_LOG(ERR, "control thread set-up: %s: %s", failed, strerror(errno));
		goto fail;
	}
	ctl.stop = false;
	if (rte_ctrl_thread_create(&ctl.thread, "vhu-ctl", NULL, ctl_thread_main, NULL) != 0) {
		VHU_LOG(ERR, "cannot create the control thread");
		goto fail;
	}
	return 0;
fail:
	if (ctl.epfd >= 0)
		close(ctl.epfd);
	if (ctl.wakefd >= 0)
		close(ctl.wakefd);
	ctl.epfd = ctl.wakefd = -1;
	return -1;
}

/*
 * Called with ctl.lifecycle held. On the control thread itself (the last
 * port destroyed from a callback), the thread cannot be joined: it is
 * detached and returns once its deferred work is done, touching nothing of
 * ctl after that, so a new thread may start meanwhile; the application's
 * exit waits for it (vhu_ctl_wait_detached).
 */
static void
ctl_stop(void)
{
	pthread_mutex_lock(&ctl.lock);
	ctl.stop = true;
	pthread_mutex_unlock(&ctl.lock);
	if (pthread_equal(pthread_self(), ctl.thread)) {
		pthread_mutex_lock(&ctl.finishing_lock);
		ctl.finishing++;
		pthread_mutex_unlock(&ctl.finishing_lock);
		*ctl.thread_exits = true;
		pthread_detach(ctl.thread);
	} else {
		eventfd_write(ctl.wakefd, 1);
		pthread_join(ctl.thread, NULL);
	}
	close(ctl.epfd);
	close(ctl.wakefd);
	ctl.epfd = ctl.wakefd = -1;
	free(ctl.slots);
	ctl.slots = NULL;
	ctl.nslots = 0;
}

/* ---- connections ---- */

struct vhu_conn {
	struct vhu_socket *sock;
	int fd;
	uint64_t handle;
	uint32_t got;		/* bytes of the current message received so far */
	struct vhu_msg msg;
};

static void
conn_close(struct vhu_conn *c)
{
	struct vhu_socket *sock = c->sock;

	ctl_unregister(c->fd, c->handle);
	close(c->fd);
	vhu_msg_close_fds(&c->msg);
	sock->conn = NULL;
	free(c);
	VHU_LOG(INFO, "%s: front end disconnected", sock->name);
	vhu_session_end(sock->session);
}

/* Keeps the fds of an SCM_RIGHTS message; false if fds were lost or too many. */
static bool
collect_fds(struct vhu_conn *c, struct msghdr *mh)
{
	bool ok = !(mh->msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(cm);

		for (size_t i = 0; i < n; i++) {
			if (c->msg.nfds < VHU_MSG_MAX_FDS) {
				c->msg.fds[c->msg.nfds++] = fds[i];
			} else {
				close(fds[i]);
				ok = false;
			}
		}
	}
	if (!ok)
		VHU_LOG(ERR, "%s: more than %u file descriptors on one message",
			c->sock->name, VHU_MSG_MAX_FDS);
	return ok;
}

static int
send_reply(struct vhu_conn *c)
{
	struct vhu_msg *m = &c->msg;
	size_t len = sizeof(m->hdr) + m->hdr.size;
	uint8_t buf[sizeof(m->hdr) + sizeof(m->payload)];
	char control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	m->hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY;
	memcpy(buf, &m->hdr, sizeof(m->hdr));
	memcpy(buf + sizeof(m->hdr), &m->payload, m->hdr.size);
	if (m->reply_fd >= 0) {
		struct cmsghdr *cm;

		memset(control, 0, sizeof(control));
		mh.msg_control = control;
		mh.msg_controllen = sizeof(control);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &m->reply_fd, sizeof(int));
	}
	do {
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len) {
		VHU_LOG(ERR, "%s: cannot send the %s reply: %s", c->sock->name,
			vhu_request_name(m->hdr.request), n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

/*
 * Reads what is there of the current message. Returns 1 when a whole message
 * is assembled, 0 when more bytes are needed later, -1 when the connection
 * must close.
 */
static int
conn_read(struct vhu_conn *c)
{
	const uint32_t hdr_size = sizeof(c->msg.hdr);
	char control[CMSG_SPACE(VHU_MSG_MAX_FDS * sizeof(int))];
	struct iovec iov;
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	ssize_t n;

	if (c->got < hdr_size) {
		iov.iov_base = (uint8_t *)&c->msg.hdr + c->got;
		iov.iov_len = hdr_size - c->got;
	} else {
		iov.iov_base = c->msg.payload.raw + (c->got - hdr_size);
		iov.iov_len = hdr_size + c->msg.hdr.size - c->got;
	}
	do {
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	if (n == 0)
		return -1;
	if (!collect_fds(c, &mh))
		return -1;
	c->got += (uint32_t)n;
	if (c->got == hdr_size && c->msg.hdr.size > VHU_MSG_MAX_PAYLOAD) {
		VHU_LOG(ERR, "%s: request %u announces a %u-byte payload (at most %u)",
			c->sock->name, c->msg.hdr.request, c->msg.hdr.size, VHU_MSG_MAX_PAYLOAD);
		return -1;
	}
	return c->got >= hdr_size && c->got == hdr_size + c->msg.hdr.size;
}

static void
conn_event(void *ctx, uint32_t events __rte_unused)
{
	struct vhu_conn *c = ctx;

	for (int i = 0; i < MSGS_PER_WAKEUP; i++) {
		int r = conn_read(c);

		if (r == 0)
			return;
		if (r < 0) {
			conn_close(c);
			return;
		}
		enum vhu_dispatch d = vhu_session_handle(c->sock->session, &c->msg);

		if (d == VHU_DISPATCH_CLOSE || (d == VHU_DISPATCH_REPLY && send_reply(c) < 0)) {
			VHU_LOG(ERR, "%s: closing the connection after %s", c->sock->name,
				vhu_request_name(c->msg.hdr.request));
			conn_close(c);
			return;
		}
		c->got = 0;
		c->msg.nfds = 0;
	}
}

/*
 * A front end truncated a file we mapped (memguard.h): a zero page stands in
 * for what it took away, and its session ends here.
 */
static void
close_sessions_that_lost_memory(void)
{
	eventfd_t v;

	eventfd_read(vhu_memguard_eventfd(), &v);
	for (uint32_t i = 0; i < ctl.nslots; i++) {
		if (!ctl.slots[i].used || ctl.slots[i].cb != conn_event)
			continue;
		struct vhu_conn *c = ctl.slots[i].ctx;
		const struct vhu_memguard_flag *lost = vhu_session_memory_lost(c->sock->session);

		if (lost == NULL)
			continue;
		VHU_LOG(ERR, "%s: the front end truncated a file of guest memory or of the dirty log under us (SIGBUS at %p, zero page put in its place); closing the connection",
			c->sock->name, (void *)lost->addr);
		conn_close(c);
	}
}

/* Takes a connected socket as the port's front end. Call with ctl.lock held. */
static void
conn_open(struct vhu_socket *sock, int fd)
{
	struct vhu_conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		VHU_LOG(ERR, "%s: out of memory for a connection", sock->name);
		close(fd);
		return;
	}
	c->sock = sock;
	c->fd = fd;
	c->handle = ctl_register(fd, conn_event, c, sock->name);
	if (c->handle == 0) {
		close(fd);
		free(c);
		return;
	}
	sock->conn = c;
	sock->waiting_logged = false;
	vhu_session_connected(sock->session);
	VHU_LOG(INFO, "%s: front end connected on %s", sock->name, sock->path);
}

static void
listen_event(void *ctx, uint32_t events __rte_unused)
{
	struct vhu_socket *sock = ctx;
	int fd = accept4(sock->endpoint_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			VHU_LOG(ERR, "%s: accept: %s", sock->name, strerror(errno));
		return;
	}
	if (sock->conn != NULL) {
		VHU_LOG(WARNING, "%s: refusing a second front end on %s: one is already connected",
			sock->name, sock->path);
		close(fd);
		return;
	}
	conn_open(sock, fd);
}

static void
fill_sockaddr(const struct vhu_socket *sock, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, sock->path, sizeof(sa->sun_path));
}

/* Client mode: one connection attempt. Call with ctl.lock held. */
static void
try_connect(struct vhu_socket *sock)
{
	struct sockaddr_un sa;
	/*
	 * Non-blocking: a front end whose listen backlog is full makes
	 * connect() fail with EAGAIN instead of stalling the control thread.
	 */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		/* ours, not the front end's absence: said each time */
		VHU_LOG(ERR, "%s: socket: %s; trying again in %d s", sock->name, strerror(errno),
			RECONNECT_INTERVAL_S);
		return;
	}
	fill_sockaddr(sock, &sa);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (!sock->waiting_logged)
			VHU_LOG(INFO, "%s: front end not there yet at %s (%s); retrying every %d s",
				sock->name, sock->path, strerror(errno), RECONNECT_INTERVAL_S);
		sock->waiting_logged = true;
		close(fd);
		return;
	}
	conn_open(sock, fd);
}

static void
reconnect_timer_event(void *ctx, uint32_t events __rte_unused)
{
	struct vhu_socket *sock = ctx;
	uint64_t expirations;

	if (read(sock->endpoint_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		VHU_LOG(ERR, "%s: reconnect timer: %s", sock->name, strerror(errno));
	if (sock->conn == NULL)
		try_connect(sock);
}

/* Removes a stale socket file left by a process that is gone; refuses a live one. */
static int
clear_stale_socket(const struct vhu_socket *sock, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sock->path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		VHU_LOG(ERR, "%s: %s exists and is not a socket", sock->name, sock->path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0) {
		VHU_LOG(ERR, "%s: %s is in use by another process", sock->name, sock->path);
		return -1;
	}
	unlink(sock->path);
	return 0;
}

/* Server mode: a listening socket. Returns its fd, or -1 (logged). */
static int
server_socket(struct vhu_socket *sock)
{
	struct sockaddr_un sa;
	const char *failed = NULL;	/* the call that failed, for the log */
	int fd;

	fill_sockaddr(sock, &sa);
	if (clear_stale_socket(sock, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		failed = "socket";
	else if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		failed = "bind";
	else if (listen(fd, LISTEN_BACKLOG) < 0)
		failed = "listen";
	if (failed != NULL) {
		VHU_LOG(ERR, "%s: cannot listen on %s: %s: %s", sock->name, sock->path, failed,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Client mode: the periodic timer driving connection attempts. */
static int
reconnect_timer(struct vhu_socket *sock)
{
	struct itimerspec every = {
		.it_interval = { .tv_sec = RECONNECT_INTERVAL_S },
		.it_value = { .tv_sec = RECONNECT_INTERVAL_S },
	};
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0 || timerfd_settime(fd, 0, &every, NULL) < 0) {
		VHU_LOG(ERR, "%s: reconnect timer: %s", sock->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

bool
vhu_socket_init(struct vhu_socket *sock, const char *name, const char *path, bool client,
		struct vhu_session *session)
{
	memset(sock, 0, sizeof(*sock));
	sock->name = name;
	sock->client = client;
	sock->endpoint_fd = -1;
	sock->session = session;
	if (snprintf(sock->path, sizeof(sock->path), "%s", path) >= (int)sizeof(sock->path)) {
		VHU_LOG(ERR, "%s: socket path longer than %zu bytes: %s", name,
			sizeof(sock->path) - 1, path);
		return false;
	}
	return true;
}

int
vhu_socket_open(struct vhu_socket *sock)
{
	int fd = sock->client ? reconnect_timer(sock) : server_socket(sock);

	if (fd < 0)
		return -1;

	pthread_mutex_lock(&ctl.lifecycle);
	if (ctl.users == 0 && ctl_start() < 0)
		goto fail;
	pthread_mutex_lock(&ctl.lock);
	sock->endpoint_fd = fd;
	sock->endpoint_handle = ctl_register(fd, sock->client ? reconnect_timer_event : listen_event,
					     sock, sock->name);
	if (sock->endpoint_handle != 0 && sock->client)
		try_connect(sock);
	pthread_mutex_unlock(&ctl.lock);
	if (sock->endpoint_handle == 0) {
		if (ctl.users == 0)
			ctl_stop();
		goto fail;
	}
	ctl.users++;
	pthread_mutex_unlock(&ctl.lifecycle);
	if (!sock->client)
		VHU_LOG(INFO, "%s: listening on %s", sock->name, sock->path);
	return 0;
fail:
	pthread_mutex_unlock(&ctl.lifecycle);
	sock->endpoint_fd = -1;
	close(fd);
	if (!sock->client)
		unlink(sock->path);
	return -1;
}

void
vhu_socket_close(struct vhu_socket *sock)
{
	pthread_mutex_lock(&ctl.lifecycle);
	pthread_mutex_lock(&ctl.lock);
	if (sock->conn != NULL)
		conn_close(sock->conn);
	ctl_unregister(sock->endpoint_fd, sock->endpoint_handle);
	close(sock->endpoint_fd);
	sock->endpoint_fd = -1;
	if (!sock->client)
		unlink(sock->path);	/* ours; in client mode the front end owns it */
	pthread_mutex_unlock(&ctl.lock);
	if (--ctl.users == 0)
		ctl_stop();
	pthread_mutex_unlock(&ctl.lifecycle);
}
