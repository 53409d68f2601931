/*
 * test_hist.c - the hbus-bench latency histogram (bench/hist.c) against
 * exact percentiles of sorted data.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "hist.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Latency-like data: log-uniform over [1, 2^span), so every bucket range
 * from the exact linear part to the log part is exercised. */
static uint64_t rnd_value(unsigned span)
{
	unsigned e = (unsigned)(rnd() % span);
	uint64_t base = 1ull << e;
	return base + rnd() % base;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The value of rank ceil(p% * n) in sorted v (1-based rank). */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double p)
{
	double want = p / 100.0 * (double)n;
	size_t rank = (size_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

static void check_against_exact(size_t n, unsigned span)
{
	static const double pcts[] = { 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999, 100 };
	uint64_t *v = malloc(n * sizeof(*v));
	struct hist *h = malloc(sizeof(*h));

	cr_assert(v && h);
	hist_init(h);
	for (size_t i = 0; i < n; i++) {
		v[i] = rnd_value(span);
		hist_record(h, v[i]);
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	cr_assert_eq(h->total, n);
	cr_assert_eq(h->min, v[0]);
	cr_assert_eq(h->max, v[n - 1]);
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		uint64_t want = exact_percentile(v, n, pcts[i]);
		uint64_t got = hist_percentile(h, pcts[i]);
		double err = want ? ((double)got - (double)want) / (double)want : (double)got;
		cr_assert(err <= 0.01 && err >= -0.01,
			  "p%g: histogram %llu, exact %llu (error %.4f%%)", pcts[i],
			  (unsigned long long)got, (unsigned long long)want, err * 100);
	}
	free(v);
	free(h);
}

Test(hist, percentiles_within_1pct_on_latency_like_data)
{
	check_against_exact(200000, 34); /* 1 ns .. 17 s */
}

Test(hist, percentiles_within_1pct_small_samples)
{
	for (size_t n = 1; n <= 64; n++)
		check_against_exact(n, 20);
}

Test(hist, percentiles_within_1pct_full_64bit_range)
{
	check_against_exact(50000, 63);
}

Test(hist, every_value_lies_in_its_bucket_and_buckets_are_narrow)
{
	for (int i = 0; i < 1000000; i++) {
		uint64_t v = rnd() >> (rnd() % 64);
		unsigned idx = hist_index(v);
		cr_assert_lt(idx, HIST_NBUCKETS);
		uint64_t lo = hist_bucket_low(idx), hi = hist_bucket_high(idx);
		cr_assert(lo <= v && v <= hi, "v=%llu idx=%u [%llu,%llu]", (unsigned long long)v,
			  idx, (unsigned long long)lo, (unsigned long long)hi);
		/* width <= lo/128: relative error of the midpoint < 0.4% */
		cr_assert_leq(hi - lo, lo / HIST_SUB);
	}
	cr_assert_eq(hist_index(0), 0u);
	cr_assert_eq(hist_index(UINT64_MAX), HIST_NBUCKETS - 1);
	/* Consecutive buckets tile the number line with no gap or overlap. */
	for (unsigned i = 0; i + 1 < HIST_NBUCKETS; i++)
		cr_assert_eq(hist_bucket_high(i) + 1, hist_bucket_low(i + 1), "bucket %u", i);
}

Test(hist, merge_equals_recording_everything_in_one)
{
	struct hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));

	cr_assert(a && b && all);
	hist_init(a);
	hist_init(b);
	hist_init(all);
	for (int i = 0; i < 100000; i++) {
		uint64_t v = rnd_value(30);
		hist_record(i % 3 ? a : b, v);
		hist_record(all, v);
	}
	hist_merge(a, b);
	cr_assert_eq(a->total, all->total);
	cr_assert_eq(a->min, all->min);
	cr_assert_eq(a->max, all->max);
	for (unsigned i = 0; i < HIST_NBUCKETS; i++)
		cr_assert_eq(a->counts[i], all->counts[i], "bucket %u", i);
	cr_assert_eq(hist_percentile(a, 99.9), hist_percentile(all, 99.9));
	free(a);
	free(b);
	free(all);
}

Test(hist, empty_and_constant)
{
	struct hist *h = malloc(sizeof(*h));

	cr_assert(h);
	hist_init(h);
	cr_assert_eq(hist_percentile(h, 50), 0u);
	cr_assert_eq(hist_percentile(h, 100), 0u);
	for (int i = 0; i < 1000; i++)
		hist_record(h, 123456789);
	/* Clamped to [min, max]: a constant stream reads back exactly. */
	cr_assert_eq(hist_percentile(h, 0.001), 123456789u);
	cr_assert_eq(hist_percentile(h, 50), 123456789u);
	cr_assert_eq(hist_percentile(h, 100), 123456789u);
	cr_assert_float_eq(hist_mean(h), 123456789.0, 1e-3);
	free(h);
}
