/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A minimal assertion framework for the unit tests.
 *
 * CHECK*() report file:line and the failing expression (with both values for
 * the comparison forms), count the failure and return from the current test
 * function, which must return void. RUN_TEST() runs one test function and
 * prints its verdict; check_summary() prints the totals and gives the exit
 * status (non-zero when anything failed).
 *
 * SKIP_TEST() ends a test that cannot run here (e.g. a CPU feature it needs
 * is missing): its verdict is a SKIP line with the reason, and when every
 * test of the executable skipped, the exit status is 77 (meson: SKIP).
 *
 * EXPECT*() are the non-fatal forms: they report and count but carry on.
 *
 * Include this header in exactly one translation unit per executable (the
 * counters are static).
 */
#ifndef VHU_UNIT_CHECK_H
#define VHU_UNIT_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned int check_failures;		/* in the current test */
static unsigned int check_tests_run;
static unsigned int check_tests_failed;
static unsigned int check_tests_skipped;
static const char *check_skip_reason;		/* set by SKIP_TEST() in the current test */
static const char *check_current_test = "?";
/* Optional: run after every test, before its verdict (e.g. a fixture teardown). */
static void (*check_after_each)(void);

static inline void
check_report(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: %s: check failed: %s\n", file, line,
		check_current_test, what);
	check_failures++;
}

static inline void
check_report_u64(const char *file, int line, const char *a_expr, const char *op,
		 const char *b_expr, uint64_t a, uint64_t b)
{
	fprintf(stderr, "%s:%d: %s: check failed: %s %s %s (0x%" PRIx64 " = %" PRIu64
		" vs 0x%" PRIx64 " = %" PRIu64 ")\n", file, line, check_current_test,
		a_expr, op, b_expr, a, a, b, b);
	check_failures++;
}

static inline void
check_report_mem(const char *file, int line, const char *a_expr, const char *b_expr,
		 const void *a, const void *b, size_t len)
{
	const uint8_t *pa = a, *pb = b;
	size_t i = 0;

	while (i < len && pa[i] == pb[i])
		i++;
	fprintf(stderr, "%s:%d: %s: check failed: memcmp(%s, %s, %zu) == 0: first difference at byte %zu (0x%02x vs 0x%02x)\n",
		file, line, check_current_test, a_expr, b_expr, len, i, pa[i], pb[i]);
	check_failures++;
}

/* ---- non-fatal ---- */
#define EXPECT(expr) do { \
	if (!(expr)) \
		check_report(__FILE__, __LINE__, #expr); \
} while (0)

#define EXPECT_OP_(a, op, b, ret) do { \
	uint64_t check_a_ = (uint64_t)(a); \
	uint64_t check_b_ = (uint64_t)(b); \
	if (!(check_a_ op check_b_)) { \
		check_report_u64(__FILE__, __LINE__, #a, #op, #b, check_a_, check_b_); \
		ret; \
	} \
} while (0)

#define EXPECT_EQ(a, b) EXPECT_OP_(a, ==, b, (void)0)
#define EXPECT_NE(a, b) EXPECT_OP_(a, !=, b, (void)0)
#define EXPECT_NULL(p) EXPECT((p) == NULL)

/* ---- fatal: return from the (void) test function ---- */
#define CHECK(expr) do { \
	if (!(expr)) { \
		check_report(__FILE__, __LINE__, #expr); \
		return; \
	} \
} while (0)

/* Unsigned comparisons (values are converted to uint64_t; compare like with like). */
#define CHECK_EQ(a, b) EXPECT_OP_(a, ==, b, return)
#define CHECK_NE(a, b) EXPECT_OP_(a, !=, b, return)
#define CHECK_LT(a, b) EXPECT_OP_(a, <, b, return)
#define CHECK_LE(a, b) EXPECT_OP_(a, <=, b, return)
#define CHECK_GE(a, b) EXPECT_OP_(a, >=, b, return)

#define CHECK_NULL(p) CHECK((p) == NULL)
#define CHECK_NOT_NULL(p) CHECK((p) != NULL)

#define CHECK_MEM_EQ(a, b, len) do { \
	size_t check_len_ = (size_t)(len); \
	if (memcmp((a), (b), check_len_) != 0) { \
		check_report_mem(__FILE__, __LINE__, #a, #b, (a), (b), check_len_); \
		return; \
	} \
} while (0)

/* Ends the current (void) test as skipped, saying why. */
#define SKIP_TEST(reason) do { \
	check_skip_reason = (reason); \
	return; \
} while (0)

/* Exit status of an executable none of whose tests could run (meson, automake). */
#define CHECK_EXIT_SKIP 77

/* Runs one test; @setup/@teardown around it are the test's own business. */
#define RUN_TEST(fn) check_run(#fn, fn)

/*
 * Inside a table-driven test: runs @run(&@cases[i]) for every entry of the
 * array @cases, each followed by @after() (e.g. the fixture teardown, so that
 * every case starts afresh), and names the entry (its .name) under the
 * failures of a case that failed: one case failing does not stop the others.
 */
#define RUN_CASES(cases, run, after) \
	RUN_CASES_N(cases, sizeof(cases) / sizeof((cases)[0]), run, after)

/* The same for the @n entries at @cases (a table known by pointer). */
#define RUN_CASES_N(cases, n, run, after) do { \
	for (size_t check_i_ = 0; check_i_ < (n); check_i_++) { \
		unsigned int check_before_ = check_failures; \
		\
		run(&(cases)[check_i_]); \
		after(); \
		if (check_failures != check_before_) \
			fprintf(stderr, "  ^ in case %s\n", (cases)[check_i_].name); \
	} \
} while (0)

static inline void
check_run(const char *name, void (*fn)(void))
{
	check_current_test = name;
	check_failures = 0;
	check_skip_reason = NULL;
	check_tests_run++;
	fn();
	if (check_after_each != NULL)
		check_after_each();
	if (check_failures != 0) {
		check_tests_failed++;
		fprintf(stderr, "FAIL %s (%u failed check%s)\n", name, check_failures,
			check_failures == 1 ? "" : "s");
	} else if (check_skip_reason != NULL) {
		check_tests_skipped++;
		printf("SKIP %s: %s\n", name, check_skip_reason);
	} else {
		printf("ok   %s\n", name);
	}
	fflush(stdout);
	check_current_test = "?";
}

/* Prints the totals; returns the process exit status. */
static inline int
check_summary(const char *suite)
{
	printf("%s: %u test%s, %u failed", suite, check_tests_run,
	       check_tests_run == 1 ? "" : "s", check_tests_failed);
	if (check_tests_skipped != 0)
		printf(", %u skipped", check_tests_skipped);
	printf("\n");
	fflush(stdout);
	if (check_tests_failed != 0)
		return EXIT_FAILURE;
	if (check_tests_run != 0 && check_tests_skipped == check_tests_run)
		return CHECK_EXIT_SKIP;
	return EXIT_SUCCESS;
}

#endif /* VHU_UNIT_CHECK_H */
