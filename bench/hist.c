/*
 * hist.c - log-linear latency histogram.  See hist.h for the bucket scheme.
 */
#include <string.h>

#include "hist.h"

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_NBUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_bucket_low(unsigned idx)
{
	if (idx < HIST_LINEAR)
		return idx;
	unsigned k = idx - HIST_LINEAR;
	unsigned e = k / HIST_SUB + HIST_SUB_BITS + 1u; /* power of two of the range */
	uint64_t sub = k % HIST_SUB;
	return (1ull << e) + (sub << (e - HIST_SUB_BITS));
}

uint64_t hist_bucket_high(unsigned idx)
{
	if (idx < HIST_LINEAR)
		return idx;
	unsigned e = (idx - HIST_LINEAR) / HIST_SUB + HIST_SUB_BITS + 1u;
	return hist_bucket_low(idx) + ((1ull << (e - HIST_SUB_BITS)) - 1u);
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h->total == 0)
		return 0;
	if (p >= 100.0)
		return h->max;
	if (p < 0.0)
		p = 0.0;
	/* Rank of the wanted value, 1-based: ceil(p% of total), at least 1. */
	double want = p / 100.0 * (double)h->total;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->total)
		rank = h->total;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_NBUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t lo = hist_bucket_low(i), hi = hist_bucket_high(i);
			uint64_t v = lo + (hi - lo) / 2;
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->total ? h->sum / (double)h->total : 0.0;
}
