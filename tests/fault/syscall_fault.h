/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Faults injected into the system calls the library makes: the Nth call of
 * one wrapper, made by one thread, fails with a chosen errno, or (sendmsg,
 * recvmsg) transfers less than it was asked to. Armed and disarmed by the
 * test; every other call, and every call of any other thread, goes through
 * untouched, so the test's own front end is never disturbed.
 *
 * How the calls are caught: see syscall_fault.c and meson.build (--wrap).
 */
#ifndef VHU_SYSCALL_FAULT_H
#define VHU_SYSCALL_FAULT_H

#include <stdbool.h>
#include <sys/types.h>

enum fault_call {
	FAULT_MMAP,
	FAULT_EVENTFD,
	FAULT_EPOLL_CTL,
	FAULT_ACCEPT4,
	FAULT_SOCKET,
	FAULT_SENDMSG,
	FAULT_RECVMSG,
};

/* As the errno of a fault: the call moves half the bytes asked (at least one), no error. */
#define FAULT_SHORT (-1)

/* The name of the system call, as the library's log lines give it. */
const char *fault_call_name(enum fault_call call);

/* From now on, the @nth call (1: the next) of @call by thread @tid fails with @err. */
void fault_arm(enum fault_call call, pid_t tid, unsigned int nth, int err);

/* No more faults; whether the armed one was injected. */
bool fault_disarm(void);

#endif /* VHU_SYSCALL_FAULT_H */
