/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * System calls of the library failing (syscall_fault.h): mmap, eventfd,
 * epoll_ctl, accept4, socket, and sendmsg/recvmsg interrupted (EINTR),
 * with nothing to do (EAGAIN) or short; and a front end that stops reading
 * our replies.
 *
 * Every call of one kind a scenario makes is failed in turn: the 1st in one
 * run, the 2nd in the next, until a run in which no call was failed. Per
 * run: the failing port completes (a fault the library must absorb, EINTR
 * for one, must leave no trace) or refuses the front end with a log line
 * naming what failed; a second port, connected all along, still has its
 * link up and answers; the failing port serves a fresh front end
 * afterwards; and once the front ends are gone, the process holds what it
 * held before: fds, DPDK heap and memzones, malloc'd bytes, mappings.
 *
 * The library's log goes to a file of ours for the log-line checks (and is
 * printed under a run that failed). EAL runs as for the scale test
 * (--no-huge --no-shconf, a file prefix of its own), the sockets live in a
 * private temporary directory: it runs in parallel with anything else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_log.h>

#include <vhu.h>

/* The wire format only: request codes, feature bits and payload layouts. */
#include "message.h"

#include "check.h"
#include "frontend.h"
#include "process.h"
#include "syscall_fault.h"

/* More calls of one kind than any scenario makes: the iteration stops before. */
#define MAX_CALLS 100
/* How long a link, a session's end or the control thread's rest may take. */
#define WAIT_MS 5000
/* Client mode: the library tries to connect every second. */
#define CLIENT_CONNECT_WAIT_MS 3000
/* The dirty log the front end hands over: a bit per 4 KiB page of guest memory. */
#define LOG_SIZE (FE_GUEST_SIZE / 4096 / 8)
/* glibc's tunable for no per-thread cache of freed chunks (see main()). */
#define NO_TCACHE "glibc.malloc.tcache_count=0"
/* A front end that stops reading: this many requests at most, answered or not. */
#define UNREAD_REQUESTS 100000

struct test_port {
	struct vhu_port *port;
	char path[108];
	struct link_changes links;	/* reported to the owner */
};

static struct {
	char dir[PATH_MAX];
	struct fe_guest guest;
	int logfd;		/* the dirty log's memfd */
	FILE *lib_log;		/* where the library's log lines go */
	/* Keeps the control thread (and what it keeps) from one scenario to the next. */
	struct test_port warm;
	struct test_port a;	/* the port whose system calls fail */
	struct test_port b;	/* connected all along; must not notice */
	int b_fe;		/* b's front end */
	pid_t ctl;		/* the control thread */
} T = { .guest.memfd = -1, .logfd = -1, .b_fe = -1 };

/* ---- time, the library's log, the control thread ---- */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* How much the library has logged so far: where a run's lines start. */
static off_t
log_mark(void)
{
	struct stat st;

	return fstat(fileno(T.lib_log), &st) == 0 ? st.st_size : 0;
}

/* The library's log lines since @mark (the last ones if there are many). */
static const char *
log_since(off_t mark)
{
	static char text[16384];
	off_t end = log_mark();
	ssize_t n;

	if (end - mark >= (off_t)sizeof(text))
		mark = end - (off_t)sizeof(text) + 1;
	n = pread(fileno(T.lib_log), text, sizeof(text) - 1, mark);
	text[n > 0 ? n : 0] = '\0';
	return text;
}

static bool
logged_since(off_t mark, const char *words)
{
	if (strstr(log_since(mark), words) != NULL)
		return true;
	fprintf(stderr, "no log line with \"%s\"\n", words);
	return false;
}

/*
 * Whether the control thread is waiting in epoll_wait, i.e. done with
 * whatever the front ends sent: nothing more of what a run armed can
 * happen once it is (the front end sends nothing meanwhile).
 */
static bool
ctl_idle(void)
{
	char path[64], line[64] = "";
	FILE *f;
	long nr = -1;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)T.ctl);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(line, sizeof(line), f) != NULL)
		nr = strtol(line, NULL, 10);
	fclose(f);
	return nr == SYS_epoll_wait || nr == SYS_epoll_pwait;
}

static bool
wait_ctl_idle(void)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (!ctl_idle()) {
		if (now_ms() > deadline) {
			fprintf(stderr, "the control thread is still busy after %d ms\n", WAIT_MS);
			return false;
		}
		usleep(100);
	}
	return true;
}

/* ---- ports and front ends ---- */

/* @p's socket: @name in T.dir; false (said) if the path is too long. */
static bool
name_socket(struct test_port *p, const char *name)
{
	if (snprintf(p->path, sizeof(p->path), "%s/%s", T.dir, name) < (int)sizeof(p->path))
		return true;
	fprintf(stderr, "%s/%s: path too long for a Unix socket\n", T.dir, name);
	return false;
}

static struct vhu_port *
create_port(struct test_port *p, const char *name, bool client)
{
	struct vhu_port_config cfg = {
		.name = name,
		.socket_path = p->path,
		.client = client,
		.queue_pairs = 1,
		.socket_id = (int)rte_socket_id(),
		.ops = &link_counting_ops,
		.ops_ctx = &p->links,
	};

	return vhu_port_create(&cfg);
}

/* The session of @p ended (its front end gone), within WAIT_MS. */
static bool
session_ended(const struct test_port *p)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (vhu_port_session_id(p->port) >= 0 || vhu_port_link_up(p->port)) {
		if (now_ms() > deadline) {
			fprintf(stderr, "%s: session still there %d ms after its front end left\n",
				p->path, WAIT_MS);
			return false;
		}
		usleep(100);
	}
	return true;
}

/* Migration's dirty log, whose mapping can fail too; answered 0 when mapped. */
static bool
set_log_base(int fd)
{
	struct vhu_log_base log = { .mmap_size = LOG_SIZE, .mmap_offset = 0 };

	return fe_request(fd, VHOST_USER_SET_LOG_BASE, &log, sizeof(log), T.logfd);
}

/* What a front end sends in every scenario: the whole set-up, then a dirty log. */
static bool
connect_sequence(int fd)
{
	return fe_handshake(fd, &T.guest) && set_log_base(fd);
}

/* A fresh front end on @p: its link comes up. Disconnected again, the session ends. */
static bool
serves_a_front_end(struct test_port *p)
{
	int fd = fe_connect(p->path);
	bool ok = fd >= 0 && connect_sequence(fd) && vhu_port_link_up(p->port);

	if (fd >= 0)
		close(fd);
	if (!ok)
		fprintf(stderr, "%s: a fresh front end was not served\n", p->path);
	return session_ended(p) && ok;
}

/* b kept its front end, its link up and no change of it, and answers. */
static bool
b_unaffected(void)
{
	uint64_t features;

	return vhu_port_link_up(T.b.port) && link_changes_are(&T.b.links, 1, 0) &&
	       fe_get_u64(T.b_fe, VHOST_USER_GET_FEATURES, &features);
}

/*
 * What every run ends with: b unaffected, a serving a fresh front end, and
 * the process holding what it held @before. The library's log since @mark
 * printed if anything failed.
 */
static void
check_aftermath(const struct proc_snapshot *before, off_t mark, unsigned int failures_before)
{
	struct proc_snapshot after;

	EXPECT(b_unaffected());
	EXPECT(serves_a_front_end(&T.a));
	after = proc_snapshot();
	EXPECT(proc_snapshot_same(before, &after, "after the front ends left"));
	if (check_failures != failures_before)
		fprintf(stderr, "the library's log of the run:\n%s", log_since(mark));
}

/* After each case of a table: nothing, a run cleans up after itself. */
static void
no_teardown(void)
{
}

/* ---- faults in the connection sequence of a front end, on the control thread ---- */

struct connect_fault {
	const char *name;
	enum fault_call call;
	int err;
	/*
	 * NULL: the library absorbs the fault, the port must come up. Else
	 * the port may come up or refuse the front end, and the log must say
	 * this.
	 */
	const char *logged;
};

static const struct connect_fault connect_faults[] = {
	/* guest memory (SET_MEM_TABLE), then the dirty log (SET_LOG_BASE) */
	{ "mmap ENOMEM", FAULT_MMAP, ENOMEM, "mmap of" },
	/* the connection, then each kick fd (interrupts are on for a's rings) */
	{ "epoll_ctl ENOMEM", FAULT_EPOLL_CTL, ENOMEM, "epoll_ctl" },
	{ "accept4 EMFILE", FAULT_ACCEPT4, EMFILE, "accept" },
	{ "accept4 ECONNABORTED", FAULT_ACCEPT4, ECONNABORTED, "accept" },
	{ "accept4 EINTR", FAULT_ACCEPT4, EINTR, NULL },
	{ "sendmsg EINTR", FAULT_SENDMSG, EINTR, NULL },
	{ "sendmsg EAGAIN", FAULT_SENDMSG, EAGAIN, "cannot send the" },
	{ "sendmsg short", FAULT_SENDMSG, FAULT_SHORT, "short write" },
	{ "recvmsg EINTR", FAULT_RECVMSG, EINTR, NULL },
	{ "recvmsg EAGAIN", FAULT_RECVMSG, EAGAIN, NULL },
	{ "recvmsg short", FAULT_RECVMSG, FAULT_SHORT, NULL },
};

/* One run: the @nth call of @f's kind fails. False when there was no such call. */
static bool
connect_under_fault(const struct connect_fault *f, unsigned int nth)
{
	struct proc_snapshot before = proc_snapshot();
	unsigned int failures_before = check_failures;
	off_t mark = log_mark();
	bool completed, fired;
	int fd;

	fault_arm(f->call, T.ctl, nth, f->err);
	fd = fe_connect(T.a.path);
	completed = fd >= 0 && connect_sequence(fd) && vhu_port_link_up(T.a.port);
	EXPECT(wait_ctl_idle());
	fired = fault_disarm();
	if (fired && f->logged == NULL)
		EXPECT(completed);
	if (fired && f->logged != NULL)
		EXPECT(logged_since(mark, f->logged));
	if (fd >= 0)
		close(fd);
	EXPECT(session_ended(&T.a));
	check_aftermath(&before, mark, failures_before);
	if (check_failures != failures_before)
		fprintf(stderr, "  ^ %s, call %u: %s\n", f->name, nth,
			completed ? "completed" : "refused");
	return fired;
}

static void
run_connect_fault(const struct connect_fault *f)
{
	unsigned int nth = 1;

	while (nth <= MAX_CALLS && connect_under_fault(f, nth))
		nth++;
	printf("  %-22s %u call%s failed in turn\n", f->name, nth - 1, nth == 2 ? "" : "s");
	EXPECT(nth > 1);	/* the sequence makes such calls: one at least was failed */
	EXPECT(nth <= MAX_CALLS);
}

static void
test_connect_faults(void)
{
	RUN_CASES(connect_faults, run_connect_fault, no_teardown);
}

/* ---- faults in creating a port, on the creating thread ---- */

struct create_fault {
	const char *name;
	enum fault_call call;
	int err;
	bool client;	/* the port connects (every second) instead of listening */
	const char *logged;
};

/* With the control thread running (the warm port): its listening socket or watching it. */
static const struct create_fault create_faults[] = {
	{ "socket EMFILE", FAULT_SOCKET, EMFILE, false, "socket" },
	{ "epoll_ctl ENOMEM", FAULT_EPOLL_CTL, ENOMEM, false, "epoll_ctl" },
	{ "client socket EMFILE", FAULT_SOCKET, EMFILE, true, "socket" },
};

/* The first port of the process also starts the control thread: its eventfds, its epoll set. */
static const struct create_fault first_port_faults[] = {
	{ "first port eventfd EMFILE", FAULT_EVENTFD, EMFILE, false, "eventfd" },
	{ "first port epoll_ctl ENOMEM", FAULT_EPOLL_CTL, ENOMEM, false, "epoll_ctl" },
};

/*
 * A front end listening on @p's path for a port in client mode: accepts its
 * connection (within CLIENT_CONNECT_WAIT_MS), serves it, leaves.
 */
static bool
serve_client_port(struct test_port *p, int listen_fd)
{
	struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
	int fd;
	bool ok;

	if (poll(&pfd, 1, CLIENT_CONNECT_WAIT_MS) != 1) {
		fprintf(stderr, "%s: the port did not connect within %d ms\n", p->path,
			CLIENT_CONNECT_WAIT_MS);
		return false;
	}
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	ok = fd >= 0 && connect_sequence(fd) && vhu_port_link_up(p->port);
	if (fd >= 0)
		close(fd);
	return session_ended(p) && ok;
}

static int
listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)) {
		perror(path);
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * One run: the @nth call of @f's kind made while creating port c fails.
 * A server port is not created, a client port retries; then port c serves
 * a front end and is destroyed, leaving what the process held @before
 * (NULL: not compared). False when there was no such call.
 */
static bool
create_under_fault(const struct create_fault *f, unsigned int nth,
		   const struct proc_snapshot *before)
{
	unsigned int failures_before = check_failures;
	off_t mark = log_mark();
	struct test_port c = { .port = NULL };
	struct proc_snapshot after;
	int listen_fd = -1;
	bool fired;

	if (!name_socket(&c, "c") || (f->client && (listen_fd = listen_on(c.path)) < 0)) {
		EXPECT(!"port c's socket");
		return false;
	}
	fault_arm(f->call, gettid(), nth, f->err);
	c.port = create_port(&c, "fault-c", f->client);
	fired = fault_disarm();
	if (fired) {
		EXPECT(logged_since(mark, f->logged));
		/* in client mode the port is there, and tries again in a second */
		EXPECT((c.port != NULL) == f->client);
	}
	if (c.port == NULL)
		c.port = create_port(&c, "fault-c", f->client);
	EXPECT(c.port != NULL);
	if (c.port != NULL)
		EXPECT(f->client ? serve_client_port(&c, listen_fd) : serves_a_front_end(&c));
	vhu_port_destroy(c.port);
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(c.path);
	}
	if (T.b.port != NULL)
		EXPECT(b_unaffected());
	after = proc_snapshot();
	if (before != NULL)
		EXPECT(proc_snapshot_same(before, &after, "after the port was destroyed"));
	if (check_failures != failures_before)
		fprintf(stderr, "the library's log of the run:\n%s  ^ %s, call %u\n",
			log_since(mark), f->name, nth);
	return fired;
}

static void
run_create_fault(const struct create_fault *f)
{
	struct proc_snapshot before = proc_snapshot();
	unsigned int nth = 1;

	while (nth <= MAX_CALLS && create_under_fault(f, nth, &before))
		nth++;
	printf("  %-28s %u call%s failed in turn\n", f->name, nth - 1, nth == 2 ? "" : "s");
	EXPECT(nth > 1);
	EXPECT(nth <= MAX_CALLS);
}

/*
 * Before any other port: the first port's creation also starts the control
 * thread. The very first run fails what only the process's first port does
 * (the memory guard's eventfd, memguard.c), which then stays for the
 * process's life, with the control thread's stack and malloc arena glibc
 * keeps for the next thread: that run is not compared, the runs of every
 * call in turn after it are, with the state it left.
 */
static void
run_first_port_fault(const struct create_fault *f)
{
	EXPECT(create_under_fault(f, 1, NULL));
	run_create_fault(f);
}

static void
test_first_port_faults(void)
{
	RUN_CASES(first_port_faults, run_first_port_fault, no_teardown);
}

static void
test_create_faults(void)
{
	RUN_CASES(create_faults, run_create_fault, no_teardown);
}

/* ---- a front end that never reads our replies ---- */

/*
 * It sends requests that are all answered and reads nothing: the replies
 * fill its socket. The control thread must not wait for room (the other
 * port would wait with it): the session is closed with a log line, b keeps
 * being served.
 */
static void
test_frontend_not_reading(void)
{
	struct proc_snapshot before = proc_snapshot();
	unsigned int failures_before = check_failures;
	off_t mark = log_mark();
	int fd = fe_connect(T.a.path);
	/* a library stuck sending would stop reading too: our sends time out then */
	struct timeval send_timeout = { .tv_sec = WAIT_MS / 1000 };
	unsigned int sent = 0;

	CHECK(fd >= 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout)) == 0);
	/* until the library hangs up: sending then fails (EPIPE, ECONNRESET) */
	while (sent < UNREAD_REQUESTS && fe_send_msg(fd, VHOST_USER_GET_FEATURES, NULL, 0, -1))
		sent++;
	printf("  the front end sent %u requests before the back end hung up\n", sent);
	EXPECT(sent < UNREAD_REQUESTS);
	EXPECT(b_unaffected());
	close(fd);
	EXPECT(session_ended(&T.a));
	EXPECT(logged_since(mark, "cannot send the GET_FEATURES reply"));
	check_aftermath(&before, mark, failures_before);
}

/* ---- the fixture ---- */

/*
 * The warm port (the control thread and what it keeps), port a with
 * interrupts asked for on its rings (so that its kick fds join an epoll
 * set: more epoll_ctl calls), port b with its front end connected. Each
 * served one front end, so that what the first connection allocates for
 * good (the control thread's malloc arena) is there before any count.
 */
static void
setup(void)
{
	CHECK(fe_socket_dir_make(T.dir, sizeof(T.dir), "fault"));
	CHECK(name_socket(&T.warm, "warm") && name_socket(&T.a, "a") && name_socket(&T.b, "b"));
	T.warm.port = create_port(&T.warm, "fault-warm", false);
	T.a.port = create_port(&T.a, "fault-a", false);
	T.b.port = create_port(&T.b, "fault-b", false);
	CHECK_NOT_NULL(T.warm.port);
	CHECK_NOT_NULL(T.a.port);
	CHECK_NOT_NULL(T.b.port);
	CHECK(vhu_vring_intr_fd(vhu_port_vring(T.a.port, 0)) >= 0);
	CHECK(vhu_vring_intr_fd(vhu_port_vring(T.a.port, 1)) >= 0);
	T.ctl = proc_ctl_tid();
	CHECK(T.ctl > 0);
	CHECK(serves_a_front_end(&T.warm));
	CHECK(serves_a_front_end(&T.a));
	T.b_fe = fe_connect(T.b.path);
	CHECK(T.b_fe >= 0);
	CHECK(connect_sequence(T.b_fe));
	CHECK(b_unaffected());
}

static void
teardown(void)
{
	vhu_port_destroy(T.a.port);
	vhu_port_destroy(T.b.port);
	vhu_port_destroy(T.warm.port);
	T.a.port = T.b.port = T.warm.port = NULL;
	if (T.b_fe >= 0)
		close(T.b_fe);
	T.b_fe = -1;
	EXPECT(fe_socket_dir_remove(T.dir));
}

static void
test_faults(void)
{
	setup();
	if (check_failures != 0)
		return;
	printf("connection sequence, on the control thread:\n");
	test_connect_faults();
	printf("port creation, with the control thread running:\n");
	test_create_faults();
	printf("a front end that never reads:\n");
	test_frontend_not_reading();
}

/* Port creation before any port: the control thread starts. */
static void
test_first_port(void)
{
	CHECK(fe_socket_dir_make(T.dir, sizeof(T.dir), "fault"));
	test_first_port_faults();
}

int
main(int argc __rte_unused, char **argv)
{
	int status;

	/*
	 * A thread's cache of freed chunks (tcache) counts as in use in
	 * mallinfo2(), and fills over the first runs: without it, what is
	 * freed is free in the count. Tunables are read at start-up only.
	 */
	const char *tunables = getenv("GLIBC_TUNABLES");

	if (tunables == NULL || strstr(tunables, NO_TCACHE) == NULL) {
		char with[1024];

		snprintf(with, sizeof(with), "%s%s" NO_TCACHE, tunables != NULL ? tunables : "",
			 tunables != NULL ? ":" : "");
		setenv("GLIBC_TUNABLES", with, 1);
		execv("/proc/self/exe", argv);
		perror("re-executing with GLIBC_TUNABLES");
		return EXIT_FAILURE;
	}
	if (proc_eal_init(argv[0], "fault", 64, "warning") < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		return EXIT_FAILURE;
	}
	T.lib_log = tmpfile();
	T.guest.memfd = fe_guest_memfd();
	T.logfd = fe_guest_memfd();
	if (T.lib_log == NULL || T.guest.memfd < 0 || T.logfd < 0) {
		perror("fault test set-up");
		return EXIT_FAILURE;
	}
	/* unbuffered: no buffer malloc'd at the first line, within a count */
	setvbuf(T.lib_log, NULL, _IONBF, 0);
	rte_openlog_stream(T.lib_log);
	T.guest.features = VHU_BIT(VIRTIO_F_VERSION_1) | VHU_BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
			   VHU_BIT(VIRTIO_NET_F_MRG_RXBUF);
	/* stdout's buffer is malloc'd at its first line: before any count */
	printf("fault injection: each call of a kind failed in turn\n");
	check_after_each = teardown;
	RUN_TEST(test_first_port);	/* first: no port may have been created before */
	RUN_TEST(test_faults);
	status = check_summary("fault");
	rte_openlog_stream(NULL);
	fclose(T.lib_log);
	close(T.guest.memfd);
	close(T.logfd);
	proc_eal_cleanup();
	return status;
}
