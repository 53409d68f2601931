/*
 * gaps.c - off-cpu interval bookkeeping (see gaps.h).
 */
#include <stdbool.h>
#include <stdio.h>

#include "gaps.h"

/* Length of the union of two sorted gap lists, clipped to [lo, hi). */
static uint64_t union_len(const struct gaps *a, const struct gaps *b, uint64_t lo, uint64_t hi)
{
	size_t i = 0, j = 0;
	uint64_t total = 0, cur_s = 0, cur_e = 0;
	bool open = false;

	while (i < a->n || j < b->n) {
		const struct gap *g = (j >= b->n || (i < a->n && a->v[i].start < b->v[j].start))
				      ? &a->v[i++] : &b->v[j++];
		uint64_t s = g->start < lo ? lo : g->start, e = g->end > hi ? hi : g->end;

		if (s >= e)
			continue;
		if (open && s <= cur_e) {
			if (e > cur_e)
				cur_e = e;
			continue;
		}
		if (open)
			total += cur_e - cur_s;
		cur_s = s;
		cur_e = e;
		open = true;
	}
	if (open)
		total += cur_e - cur_s;
	return total;
}

double gaps_both_running(const struct gaps *a, const struct gaps *b, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return 0.0;
	return 1.0 - (double)union_len(a, b, lo, hi) / (double)(hi - lo);
}

uint64_t gaps_guest_wait_ns(void)
{
	unsigned long long run = 0, wait = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &run, &wait) != 2)
		wait = 0;
	fclose(f);
	return wait;
}
