/*
 * bench_util.c - clock calibration, cpu pinning, option parsing and output
 * helpers shared by the hbus-bench modes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct bench_clock bench_clock;

#ifdef BENCH_HAVE_TSC
/* The TSC is usable when the cpu says it is invariant (CPUID 0x80000007
 * EDX bit 8) or the kernel picked it as its clocksource. */
static bool tsc_invariant(void)
{
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0));
	if (a >= 0x80000007u) {
		__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000007u), "c"(0));
		if (d & (1u << 8))
			return true;
	}
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	char buf[32] = "";
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return strncmp(buf, "tsc", 3) == 0;
}
#endif

static double measure_read_cost(void)
{
	enum { N = 100000 };
	volatile uint64_t sink = 0;
	uint64_t t0 = bench_mono_ns();
	for (int i = 0; i < N; i++)
		sink += bench_now_ns();
	(void)sink;
	return (double)(bench_mono_ns() - t0) / N;
}

void bench_clock_init(void)
{
	if (bench_clock.mult || (!bench_clock.use_tsc && bench_clock.read_cost_ns > 0))
		return;
	bench_clock.use_tsc = false;
#ifdef BENCH_HAVE_TSC
	if (tsc_invariant() && !getenv("HBUS_BENCH_NO_TSC")) {
		/* Calibrate over ~50 ms, taking each endpoint as the tightest of
		 * a few (monotonic, tsc) pairs so a preemption between the two
		 * reads does not skew the rate. */
		uint64_t m0 = 0, c0 = 0, m1 = 0, c1 = 0;
		for (int end = 0; end < 2; end++) {
			uint64_t best = UINT64_MAX, bm = 0, bc = 0;
			for (int i = 0; i < 16; i++) {
				uint64_t a = bench_mono_ns();
				uint64_t c = __rdtsc();
				uint64_t b = bench_mono_ns();
				if (b - a < best) {
					best = b - a;
					bm = a + (b - a) / 2;
					bc = c;
				}
			}
			if (end == 0) {
				m0 = bm;
				c0 = bc;
				struct timespec ts = { 0, 50 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			} else {
				m1 = bm;
				c1 = bc;
			}
		}
		double hz = (double)(c1 - c0) * 1e9 / (double)(m1 - m0);
		if (c1 > c0 && hz > 1e8) {
			bench_clock.tsc_hz = hz;
			bench_clock.shift = 32;
			bench_clock.mult = (uint64_t)(1e9 * 4294967296.0 / hz);
			bench_clock.tsc0 = c0;
			bench_clock.use_tsc = true;
		}
	}
#endif
	bench_clock.read_cost_ns = measure_read_cost();
}

int bench_pin_cpu(int cpu)
{
	cpu_set_t set;
	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	return rc ? -rc : 0;
}

int bench_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	uint64_t mult = 1;
	if (*end == 'k' || *end == 'K')
		mult = 1000u, end++;
	else if (*end == 'M')
		mult = 1000000u, end++;
	else if (*end == 'G')
		mult = 1000000000u, end++;
	if (*end || (v && mult > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mult;
	return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(const double *v, unsigned n)
{
	double tmp[n];

	memcpy(tmp, v, sizeof(tmp));
	qsort(tmp, n, sizeof(tmp[0]), cmp_dbl);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

int bench_parse_cpus(const char *s, int *a, int *b)
{
	char *end;
	if (!s)
		return -EINVAL;
	long x = strtol(s, &end, 10);
	if (end == s || *end != ',')
		return -EINVAL;
	const char *p = end + 1;
	long y = strtol(p, &end, 10);
	if (end == p || *end || x < 0 || y < 0 || x >= CPU_SETSIZE || y >= CPU_SETSIZE)
		return -EINVAL;
	*a = (int)x;
	*b = (int)y;
	return 0;
}

int bench_usage_error(const char *mode, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "hbus-bench %s: ", mode);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (hbus-bench %s --help)\n", mode);
	return 2;
}

/* ------------------------------------------------------------- json */

static void json_sep(struct bench_json *j)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
}

static void json_key(struct bench_json *j, const char *key)
{
	json_sep(j);
	if (key)
		fprintf(j->f, "\"%s\":", key);
}

static void json_open(struct bench_json *j, char c)
{
	fputc(c, j->f);
	if (j->depth < 15)
		j->depth++;
	j->need_comma[j->depth] = false;
}

static void json_close(struct bench_json *j, char c)
{
	fputc(c, j->f);
	if (j->depth > 0)
		j->depth--;
}

void bench_json_begin(struct bench_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->depth = -1;
	fputc('{', f);
	j->depth = 0;
	j->need_comma[0] = false;
}

void bench_json_end(struct bench_json *j)
{
	fputs("}\n", j->f);
	fflush(j->f);
}

void bench_json_key_obj(struct bench_json *j, const char *key)
{
	json_key(j, key);
	json_open(j, '{');
}

void bench_json_obj(struct bench_json *j)
{
	json_key(j, NULL);
	json_open(j, '{');
}

void bench_json_obj_end(struct bench_json *j)
{
	json_close(j, '}');
}

void bench_json_key_arr(struct bench_json *j, const char *key)
{
	json_key(j, key);
	json_open(j, '[');
}

void bench_json_arr_end(struct bench_json *j)
{
	json_close(j, ']');
}

void bench_json_str(struct bench_json *j, const char *key, const char *v)
{
	json_key(j, key);
	fputc('"', j->f);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', j->f);
		if ((unsigned char)*p >= 0x20)
			fputc(*p, j->f);
	}
	fputc('"', j->f);
}

void bench_json_u64(struct bench_json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void bench_json_dbl(struct bench_json *j, const char *key, double v)
{
	json_key(j, key);
	fprintf(j->f, "%.6g", v);
}

const double bench_pct[BENCH_NPCT] = { 50.0, 90.0, 99.0, 99.9, 99.99, 100.0 };
const char *const bench_pct_name[BENCH_NPCT] = { "p50", "p90", "p99", "p99.9", "p99.99", "max" };

void bench_json_hist(struct bench_json *j, const char *key, const struct hist *h)
{
	bench_json_key_obj(j, key);
	for (int i = 0; i < BENCH_NPCT; i++)
		bench_json_u64(j, bench_pct_name[i], hist_percentile(h, bench_pct[i]));
	bench_json_obj_end(j);
}

void bench_print_hist_header(FILE *f, const char *label_title)
{
	fprintf(f, "%-12s", label_title);
	for (int i = 0; i < BENCH_NPCT; i++)
		fprintf(f, " %10s", bench_pct_name[i]);
}

void bench_print_hist_row(FILE *f, const char *label, const struct hist *h)
{
	fprintf(f, "%-12s", label);
	for (int i = 0; i < BENCH_NPCT; i++)
		fprintf(f, " %10.3f", (double)hist_percentile(h, bench_pct[i]) / 1000.0);
}
