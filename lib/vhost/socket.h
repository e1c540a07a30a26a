/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unix sockets and the control thread. One thread per process waits (epoll)
 * on every port's listening socket and connection, reads whole messages with
 * their fds, and hands them to device.c. A slow or hostile front end cannot
 * stall it: sockets are non-blocking and a message is assembled across reads.
 */
#ifndef VHU_SOCKET_H
#define VHU_SOCKET_H

struct vhu_port;

/*
 * Server: bind and listen on port->socket_path. Client: try to connect now
 * and every second until connected, and again after each disconnect.
 * Starts the control thread if needed.
 */
int vhu_socket_open(struct vhu_port *port);

/*
 * Stop listening or reconnecting, close the connection, remove the socket
 * file we created. When it returns no control-thread code runs for this port.
 */
void vhu_socket_close(struct vhu_port *port);

/* Serialise with the control thread (it holds this while handling events). */
void vhu_ctl_lock(void);
void vhu_ctl_unlock(void);

#endif /* VHU_SOCKET_H */
