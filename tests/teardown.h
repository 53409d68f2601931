/*
 * teardown.h - checks in a Criterion suite's .fini.
 *
 * Criterion 2.4 runs .fini after the test's verdict: a failed cr_assert
 * there is printed and then ignored, and the test still passes.  A check
 * in teardown therefore says why and aborts, which Criterion counts as a
 * crash (a failure).  scripts/test fails the run on any cr_assert or
 * cr_expect reachable from a .fini (its --audit).
 */
#ifndef HBUS_TEST_TEARDOWN_H
#define HBUS_TEST_TEARDOWN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((format(printf, 2, 3))) static inline void tu_fini_check(bool ok, const char *fmt,
								       ...)
{
	va_list ap;

	if (ok)
		return;
	fputs("teardown failed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#endif
