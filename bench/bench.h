/*
 * bench.h - helpers shared by every hbus-bench mode.
 *
 * A mode is `int bench_<mode>_main(int argc, char **argv)` in
 * bench/bench_<mode>.c, listed in main.c's mode table.  argv[0] is the mode
 * name; the return value is the process exit status.
 *
 * Timing: bench_now_ns() reads the TSC (rdtsc, ~7 ns on these VMs, vs ~20 ns
 * for clock_gettime through the vDSO) scaled by a factor calibrated once
 * against CLOCK_MONOTONIC; on machines without a usable invariant TSC it
 * falls back to clock_gettime(CLOCK_MONOTONIC).  See docs/BENCHMARKS.md.
 */
#ifndef HBUS_BENCH_H
#define HBUS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "hist.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_HAVE_TSC 1
#endif

/* ------------------------------------------------------------- timing */

/* Calibration result: ns = ((tsc - tsc0) * mult) >> shift.  Filled by
 * bench_clock_init(); use_tsc is false when the fallback clock is used. */
struct bench_clock {
	bool use_tsc;
	uint32_t shift;
	uint64_t mult;
	uint64_t tsc0;
	double tsc_hz;
	double read_cost_ns; /* measured cost of one bench_now_ns() */
};
extern struct bench_clock bench_clock;

/* Calibrate (about 50 ms).  Idempotent; safe to call from every mode. */
void bench_clock_init(void);

static inline uint64_t bench_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_now_ns(void)
{
#ifdef BENCH_HAVE_TSC
	if (bench_clock.use_tsc) {
		uint64_t d = __rdtsc() - bench_clock.tsc0;
		return (uint64_t)(((unsigned __int128)d * bench_clock.mult) >> bench_clock.shift);
	}
#endif
	return bench_mono_ns();
}

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

/* ------------------------------------------------------- cpus, options */

/* Pin the calling thread to one cpu: 0 or negative errno. */
int bench_pin_cpu(int cpu);
/* Parse "A,B" into two cpu numbers: 0 or -EINVAL. */
int bench_parse_cpus(const char *s, int *a, int *b);
/* The median of v[0..n-1] (n >= 1; the mean of the middle two when n is
 * even); v is left as it was. */
double bench_median(const double *v, unsigned n);
/* Parse a non-negative integer with an optional k/M/G suffix (x1000):
 * 0 or -EINVAL. */
int bench_parse_u64(const char *s, uint64_t *out);
/* Print "hbus-bench <mode>: <msg>" to stderr and return 2 (usage error). */
int bench_usage_error(const char *mode, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Create an hbus queue file under dir (NULL: /dev/shm) and unlink it at
 * once: *fd is then the only reference, inherited across fork.  flags:
 * HBUS_QUEUE_F_*.  0 or negative errno from hbus_queue_create. */
int bench_shm_queue_create(const char *dir, const char *tag, uint32_t capacity,
			   uint32_t slot_size, uint32_t flags, int *fd);

/* ----------------------------------------------------------- output */

/* Minimal JSON writer: enough for flat objects, nested objects and arrays
 * of numbers/strings.  Commas are inserted automatically. */
struct bench_json {
	FILE *f;
	int depth;
	bool need_comma[16];
};
void bench_json_begin(struct bench_json *j, FILE *f);          /* "{" */
void bench_json_end(struct bench_json *j);                     /* "}\n" */
void bench_json_key_obj(struct bench_json *j, const char *key); /* "key":{ */
void bench_json_obj(struct bench_json *j);                     /* { in an array */
void bench_json_obj_end(struct bench_json *j);                 /* } */
void bench_json_key_arr(struct bench_json *j, const char *key); /* "key":[ */
void bench_json_arr_end(struct bench_json *j);                 /* ] */
void bench_json_str(struct bench_json *j, const char *key, const char *v);
void bench_json_u64(struct bench_json *j, const char *key, uint64_t v);
void bench_json_dbl(struct bench_json *j, const char *key, double v);

/* The standard percentile set printed everywhere. */
#define BENCH_NPCT 6
extern const double bench_pct[BENCH_NPCT];            /* 50 90 99 99.9 99.99 100 */
extern const char *const bench_pct_name[BENCH_NPCT];  /* "p50" ... "max" */

/* "rtt_ns":{"p50":..,...,"max":..} from a histogram. */
void bench_json_hist(struct bench_json *j, const char *key, const struct hist *h);
/* Human table header and rows, without the newline (callers may add
 * columns): label then the six percentiles in microseconds. */
void bench_print_hist_header(FILE *f, const char *label_title);
void bench_print_hist_row(FILE *f, const char *label, const struct hist *h);

/* ----------------------------------------------------------- modes */

int bench_pingpong_main(int argc, char **argv);
int bench_throughput_main(int argc, char **argv);
int bench_compare_main(int argc, char **argv);
int bench_vmcheck_main(int argc, char **argv);
#ifdef HBUS_BENCH_ROUTE
int bench_route_main(int argc, char **argv);
#endif
#ifdef HBUS_BENCH_DATAPLANE
int bench_dataplane_main(int argc, char **argv);
#endif
#ifdef HBUS_BENCH_AMQP
int bench_amqp_tp_main(int argc, char **argv);
#endif

#endif /* HBUS_BENCH_H */
