/*
 * gaps.h - detect the time a spinning thread did not run (host preemption
 * of a vCPU, which this hypervisor does not report as steal time).
 *
 * A thread that reads the clock at least every few microseconds calls
 * gaps_note(prev, now) on each read: a jump longer than GAPS_MIN_NS is
 * recorded as an interval the thread was off-cpu.  Two threads' records
 * give the share of the wall time both ran at once
 * (gaps_both_running), the only time a cross-core hand-off can happen.
 */
#ifndef HBUS_BENCH_GAPS_H
#define HBUS_BENCH_GAPS_H

#include <stddef.h>
#include <stdint.h>

#define GAPS_MIN_NS 20000u

struct gap {
	uint64_t start, end;
};

struct gaps {
	uint64_t lost, max_gap;
	size_t n, cap;     /* gaps past cap are counted in lost, not listed */
	struct gap *v;
};

static inline void gaps_note(struct gaps *g, uint64_t prev, uint64_t now)
{
	uint64_t d = now - prev;

	if (d <= GAPS_MIN_NS)
		return;
	if (g->n < g->cap)
		g->v[g->n++] = (struct gap){ prev, now };
	g->lost += d;
	if (d > g->max_gap)
		g->max_gap = d;
}

/* Nanoseconds the calling thread has waited on a guest run queue (second
 * field of /proc/thread-self/schedstat): the part of its off-cpu time due
 * to other processes of this machine, as opposed to the host.  0 when the
 * kernel does not provide it. */
uint64_t gaps_guest_wait_ns(void);

/* Fraction of [lo, hi) in which neither thread was in a recorded gap. */
double gaps_both_running(const struct gaps *a, const struct gaps *b, uint64_t lo, uint64_t hi);

#endif
