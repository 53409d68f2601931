/*
 * hist.h - log-linear latency histogram (HdrHistogram-style).
 *
 * Values are unsigned 64-bit (nanoseconds in hbus-bench).  Values below
 * HIST_LINEAR are counted exactly; above, each power-of-two range
 * [2^e, 2^(e+1)) is split into HIST_SUB equal sub-buckets, so a bucket is
 * at most 1/HIST_SUB = 0.78% of its lower bound wide, and the reported
 * value (the bucket's midpoint) is within 0.4% of any value counted in it.
 *
 * The struct is fixed-size (about 59 KB): hist_record() only increments a
 * counter, never allocates, and a histogram can live in shared memory.
 * Not thread-safe: one histogram per recording thread, merge afterwards.
 */
#ifndef HBUS_BENCH_HIST_H
#define HBUS_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7u
#define HIST_SUB      (1u << HIST_SUB_BITS)              /* 128 sub-buckets */
#define HIST_LINEAR   (2u * HIST_SUB)                    /* exact below 256 */
#define HIST_NBUCKETS (HIST_LINEAR + (64u - HIST_SUB_BITS - 1u) * HIST_SUB)

struct hist {
	uint64_t total;
	uint64_t min, max;
	double sum;
	uint64_t counts[HIST_NBUCKETS];
};

void hist_init(struct hist *h);

/* Bucket index of v (exposed for the unit test). */
static inline unsigned hist_index(uint64_t v)
{
	if (v < HIST_LINEAR)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= HIST_SUB_BITS + 1 */
	unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1u);
	return HIST_LINEAR + (e - HIST_SUB_BITS - 1u) * HIST_SUB + sub;
}

static inline void hist_record(struct hist *h, uint64_t v)
{
	h->counts[hist_index(v)]++;
	h->total++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* dst += src. */
void hist_merge(struct hist *dst, const struct hist *src);

/* Value at percentile p (0 < p <= 100): the midpoint of the bucket holding
 * the ceil(p/100 * total)-th smallest value, clamped to [min, max].  p = 100
 * returns the exact max.  0 when the histogram is empty. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);

/* Lowest and highest value a bucket holds (for the unit test). */
uint64_t hist_bucket_low(unsigned idx);
uint64_t hist_bucket_high(unsigned idx);

#endif /* HBUS_BENCH_HIST_H */
