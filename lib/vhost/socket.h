/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unix sockets and the control thread: the transport under a session. One
 * thread per process waits (epoll) on every port's listening socket and
 * connection, reads whole messages with their fds, and hands them to the
 * port's session (session.h). A slow or hostile front end cannot stall it:
 * sockets are non-blocking and a message is assembled across reads.
 */
#ifndef VHU_SOCKET_H
#define VHU_SOCKET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

struct vhu_conn;
struct vhu_session;

/* One port's end of the transport. */
struct vhu_socket {
	const char *name;		/* the port's, for log lines */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool client;			/* we connect (and reconnect) to the front end */
	bool waiting_logged;		/* client: "waiting for the front end" said once */
	int endpoint_fd;		/* server: listening socket; client: retry timer */
	uint64_t endpoint_handle;
	struct vhu_conn *conn;		/* the front end, or NULL */
	struct vhu_session *session;	/* where its messages go */
};

/*
 * Prepares @sock for @path (false, logged, when the path does not fit);
 * nothing is opened yet.
 */
bool vhu_socket_init(struct vhu_socket *sock, const char *name, const char *path, bool client,
		     struct vhu_session *session);

/*
 * Server: bind and listen on the path. Client: try to connect now and every
 * second until connected, and again after each disconnect. Starts the
 * control thread if needed.
 */
int vhu_socket_open(struct vhu_socket *sock);

/*
 * Stop listening or reconnecting, close the connection (ending its
 * session), remove the socket file we created. When it returns no
 * control-thread code runs for this socket.
 */
void vhu_socket_close(struct vhu_socket *sock);

/* Serialise with the control thread (it holds this while handling events). */
void vhu_ctl_lock(void);
void vhu_ctl_unlock(void);

/* True on the control thread, e.g. in a callback into a port's owner. With vhu_ctl_lock held. */
bool vhu_ctl_on_thread(void);

/* Work for the control thread to do once the event it is handling is done. */
struct vhu_ctl_deferred {
	void (*fn)(void *arg);
	void *arg;
	struct vhu_ctl_deferred *next;
};

/*
 * From the control thread only: runs @d->fn(@d->arg) there after the event
 * being handled (and whatever handler called this) has returned, with no
 * lock held, so that @fn may close sockets the handler is still using.
 */
void vhu_ctl_defer(struct vhu_ctl_deferred *d);

/*
 * Returns once every control thread that stopped itself (its last port
 * destroyed from a callback, so it could not be joined) has returned.
 * At once on a control thread.
 */
void vhu_ctl_wait_detached(void);

#endif /* VHU_SOCKET_H */
