/* SPDX-License-Identifier: BSD-3-Clause */
#include "memguard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include <rte_common.h>

#include "vhu_log.h"

/* Mappings guarded at once: 8 regions of 64 memory tables, and logs. */
#define MAX_GUARDED 1024

/*
 * The handler reads this table without a lock (it may interrupt anything):
 * an entry is filled, then published by storing its start; removed by
 * clearing the start before the mapping goes away.
 */
static struct guarded {
	uintptr_t start;	/* 0: free */
	uintptr_t end;
	/*
	 * The file's page size: a lost page is replaced whole. Within a
	 * hugetlbfs mapping no smaller page can be placed (the kernel splits
	 * such a mapping only at its huge page boundaries).
	 */
	uintptr_t page;
	struct vhu_memguard_flag *flag;
} guarded[MAX_GUARDED];

static pthread_mutex_t guarded_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static struct sigaction previous;
/*
 * Made by the first caller that gets one, not once at installation: an
 * eventfd that could not be made then (EMFILE, say) would have left every
 * later port without a control thread (socket.c's ctl_start needs it).
 */
static pthread_mutex_t wake_fd_lock = PTHREAD_MUTEX_INITIALIZER;
static int wake_fd = -1;

static void
pass_on(int sig, siginfo_t *si, void *uctx)
{
	if (previous.sa_flags & SA_SIGINFO) {
		previous.sa_sigaction(sig, si, uctx);
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
	} else {
		/* Returning re-runs the access, which now ends the process as before. */
		signal(sig, SIG_DFL);
	}
}

static void
on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	uintptr_t addr = (uintptr_t)si->si_addr;
	int saved_errno = errno;

	for (unsigned int i = 0; i < MAX_GUARDED; i++) {
		uintptr_t start = __atomic_load_n(&guarded[i].start, __ATOMIC_ACQUIRE);

		if (start == 0 || addr < start || addr >= guarded[i].end)
			continue;
		void *page = (void *)RTE_ALIGN_FLOOR(addr, guarded[i].page);

		if (mmap(page, guarded[i].page, PROT_READ | PROT_WRITE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
			break;
		struct vhu_memguard_flag *flag = guarded[i].flag;
		uint32_t was = 0;

		if (__atomic_compare_exchange_n(&flag->hit, &was, 1, false, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			flag->addr = addr;
		int fd = __atomic_load_n(&wake_fd, __ATOMIC_ACQUIRE);

		if (fd >= 0)
			eventfd_write(fd, 1);
		errno = saved_errno;
		return;
	}
	errno = saved_errno;
	pass_on(sig, si, uctx);
}

static void
install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &previous) < 0)
		VHU_LOG(ERR, "memory guard: sigaction: %s", strerror(errno));
}

int
vhu_memguard_eventfd(void)
{
	int fd;

	pthread_once(&install_once, install);
	pthread_mutex_lock(&wake_fd_lock);
	fd = wake_fd;
	if (fd < 0) {
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			VHU_LOG(ERR, "memory guard: eventfd: %s", strerror(errno));
		__atomic_store_n(&wake_fd, fd, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&wake_fd_lock);
	return fd;
}

void *
vhu_guarded_mmap(int fd, size_t len, struct vhu_memguard_flag *flag)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	struct statfs fs;
	void *addr;
	unsigned int i;

	/* the handler, and its wake-up made now if it is not there yet */
	vhu_memguard_eventfd();
	/* hugetlbfs files (memfds made with MFD_HUGETLB too): their huge page size */
	if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC)
		page = (uintptr_t)fs.f_bsize;
	addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED)
		return MAP_FAILED;
	pthread_mutex_lock(&guarded_lock);
	for (i = 0; i < MAX_GUARDED && guarded[i].start != 0; i++)
		;
	if (i < MAX_GUARDED) {
		guarded[i].end = (uintptr_t)addr + len;
		guarded[i].page = page;
		guarded[i].flag = flag;
		__atomic_store_n(&guarded[i].start, (uintptr_t)addr, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&guarded_lock);
	if (i == MAX_GUARDED) {
		VHU_LOG(ERR, "memory guard: more than %u mappings; refusing another", MAX_GUARDED);
		munmap(addr, len);
		errno = ENOSPC;
		return MAP_FAILED;
	}
	return addr;
}

void
vhu_guarded_munmap(void *addr, size_t len)
{
	pthread_mutex_lock(&guarded_lock);
	for (unsigned int i = 0; i < MAX_GUARDED; i++)
		if (guarded[i].start == (uintptr_t)addr)
			__atomic_store_n(&guarded[i].start, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&guarded_lock);
	munmap(addr, len);
}
