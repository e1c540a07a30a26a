/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The store tracer: see store_trace.h.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "store_trace.h"

struct wt_trace wt;

static bool
store_in(unsigned int i, unsigned int page, uint32_t off, uint32_t len)
{
	return wt.st[i].page == page && wt.st[i].off >= off && wt.st[i].off - off < len;
}

/* The stores recorded in wt.st[]. */
static unsigned int
recorded(void)
{
	return wt.n < WT_MAX_STORES ? wt.n : WT_MAX_STORES;
}

int
wt_first(unsigned int page, uint32_t off, uint32_t len)
{
	for (unsigned int i = 0; i < recorded(); i++)
		if (store_in(i, page, off, len))
			return (int)i;
	return -1;
}

int
wt_last(unsigned int page, uint32_t off, uint32_t len)
{
	for (unsigned int i = recorded(); i-- > 0;)
		if (store_in(i, page, off, len))
			return (int)i;
	return -1;
}

#if STORE_TRACE_SUPPORTED

#define EFLAGS_TF 0x100u

static struct sigaction old_segv, old_trap;

static void
protect_all(int prot)
{
	for (unsigned int i = 0; i < wt.npages; i++)
		mprotect(wt.page[i], WT_PAGE_SIZE, prot);
}

static void
wt_segv(int sig __attribute__((unused)), siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	uint8_t *a = si->si_addr;
	unsigned int i = 0;

	while (i < wt.npages && (a < wt.page[i] || a >= wt.page[i] + WT_PAGE_SIZE))
		i++;
	if (i == wt.npages) {
		sigaction(SIGSEGV, &old_segv, NULL);	/* a real fault: let it happen */
		return;
	}
	if (wt.n < WT_MAX_STORES)
		wt.st[wt.n] = (struct wt_store){ .page = (uint8_t)i, .off = (uint16_t)(a - wt.page[i]) };
	wt.n++;
	/*
	 * Only this page opens: an instruction that stores to two traced
	 * pages faults again on the other one before it completes.
	 */
	mprotect(wt.page[i], WT_PAGE_SIZE, PROT_READ | PROT_WRITE);
	uc->uc_mcontext.gregs[REG_EFL] |= EFLAGS_TF;
}

static void
wt_trap(int sig __attribute__((unused)), siginfo_t *si __attribute__((unused)), void *ctx)
{
	ucontext_t *uc = ctx;

	uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)EFLAGS_TF;
	protect_all(PROT_READ);
}

void
wt_start(uint8_t *const *pages, unsigned int n)
{
	struct sigaction sa;

	if (n == 0 || n > WT_MAX_PAGES) {
		fprintf(stderr, "wt_start: test bug (%u pages)\n", n);
		exit(2);
	}
	memset(&wt, 0, sizeof(wt));
	for (unsigned int i = 0; i < n; i++)
		wt.page[i] = pages[i];
	wt.npages = n;
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sa.sa_sigaction = wt_segv;
	sigaction(SIGSEGV, &sa, &old_segv);
	sa.sa_sigaction = wt_trap;
	sigaction(SIGTRAP, &sa, &old_trap);
	for (unsigned int i = 0; i < n; i++) {
		if (mprotect(wt.page[i], WT_PAGE_SIZE, PROT_READ) != 0) {
			perror("wt_start: mprotect");
			exit(2);
		}
	}
}

void
wt_stop(void)
{
	protect_all(PROT_READ | PROT_WRITE);
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGTRAP, &old_trap, NULL);
}

#else /* !STORE_TRACE_SUPPORTED */

void
wt_start(uint8_t *const *pages __attribute__((unused)), unsigned int n __attribute__((unused)))
{
	fprintf(stderr, "wt_start: store tracing needs x86-64 Linux\n");
	exit(2);
}

void
wt_stop(void)
{
}

#endif
