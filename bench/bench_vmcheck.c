/*
 * bench_vmcheck.c - `hbus-bench vmcheck`: how much of the time do the two
 * cpus actually run, and how much of it together?
 *
 *   hbus-bench vmcheck [--cpus A,B] [--seconds S] [--json]
 *
 * Two pinned threads spin reading the clock; a jump of more than 20 us
 * between two reads is time the thread did not run.  That time has two
 * causes: other processes of this machine (the guest scheduler: counted
 * in /proc/thread-self/schedstat, reported separately) and the host, which
 * time-slices the VM's vCPUs and reports no steal time to this guest.
 * The report is each cpu's lost share and the share of the wall time when
 * both ran at once, the only time a cross-core hand-off can happen: a
 * throughput or tail-latency number means little without it.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "bench.h"
#include "gaps.h"

#define VM_MAX_GAPS 200000u

struct vm_side {
	int cpu;
	uint64_t t_begin, t_end;
	uint64_t guest_wait;    /* run-queue wait: other guest processes */
	struct gaps g;
};

static _Atomic int vm_stop;
static _Atomic int vm_started;

static void *vm_spin(void *arg)
{
	struct vm_side *s = arg;

	bench_pin_cpu(s->cpu);
	atomic_fetch_add(&vm_started, 1);
	while (atomic_load(&vm_started) < 2)
		bench_cpu_relax();
	uint64_t wait0 = gaps_guest_wait_ns();
	uint64_t prev = bench_now_ns();
	s->t_begin = prev;
	while (!atomic_load_explicit(&vm_stop, memory_order_relaxed)) {
		uint64_t now = bench_now_ns();
		gaps_note(&s->g, prev, now);
		prev = now;
	}
	s->t_end = prev;
	s->guest_wait = gaps_guest_wait_ns() - wait0;
	return NULL;
}

int bench_vmcheck_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_side side[2] = { { .cpu = 0 }, { .cpu = 1 } };
	uint64_t seconds = 2;
	bool json = false;
	pthread_t thr[2];
	int c, rc = 0;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (bench_parse_cpus(optarg, &side[0].cpu, &side[1].cpu) || side[0].cpu == side[1].cpu)
				return bench_usage_error(argv[0], "--cpus wants two different cpus, e.g. 0,1");
			break;
		case 's':
			if (bench_parse_u64(optarg, &seconds) || seconds == 0 || seconds > 600)
				return bench_usage_error(argv[0], "--seconds must be 1..600");
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: hbus-bench vmcheck [--cpus A,B] [--seconds S] [--json]\n");
			return 0;
		default:
			return bench_usage_error(argv[0], "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	bench_clock_init();
	for (int i = 0; i < 2; i++) {
		side[i].g.cap = VM_MAX_GAPS;
		side[i].g.v = malloc(VM_MAX_GAPS * sizeof(struct gap));
		if (!side[i].g.v)
			return 1;
	}
	atomic_store(&vm_stop, 0);
	atomic_store(&vm_started, 0);
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = pthread_create(&thr[i], NULL, vm_spin, &side[i]);
	if (rc == 0) {
		struct timespec ts = { (time_t)seconds, 0 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&vm_stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(thr[i], NULL);
	uint64_t lo = side[0].t_begin > side[1].t_begin ? side[0].t_begin : side[1].t_begin;
	uint64_t hi = side[0].t_end < side[1].t_end ? side[0].t_end : side[1].t_end;
	double wall = hi > lo ? (double)(hi - lo) : 1.0;
	double both = gaps_both_running(&side[0].g, &side[1].g, lo, hi);

	if (json) {
		struct bench_json j;
		bench_json_begin(&j, stdout);
		bench_json_dbl(&j, "seconds", wall / 1e9);
		for (int i = 0; i < 2; i++) {
			char key[16];
			snprintf(key, sizeof(key), "cpu%d", side[i].cpu);
			bench_json_key_obj(&j, key);
			bench_json_dbl(&j, "lost_fraction", (double)side[i].g.lost / wall);
			bench_json_u64(&j, "gaps", side[i].g.n);
			bench_json_u64(&j, "max_gap_ns", side[i].g.max_gap);
			bench_json_dbl(&j, "guest_wait_fraction", (double)side[i].guest_wait / wall);
			bench_json_obj_end(&j);
		}
		bench_json_dbl(&j, "both_running_fraction", both);
		bench_json_end(&j);
	} else {
		printf("vmcheck: %.2f s; a gap > %u us between two clock reads is time the thread did not run;\n"
		       "the part not spent waiting behind other processes was taken by the host\n",
		       wall / 1e9, GAPS_MIN_NS / 1000);
		for (int i = 0; i < 2; i++)
			printf("  cpu %d: did not run %5.1f%% of the time (%zu gaps, longest %.2f ms);"
			       " waited behind other processes of this machine %.1f%%\n",
			       side[i].cpu, 100.0 * (double)side[i].g.lost / wall, side[i].g.n,
			       (double)side[i].g.max_gap / 1e6, 100.0 * (double)side[i].guest_wait / wall);
		printf("  both cpus running at once: %.1f%% of the time\n", 100.0 * both);
	}
	free(side[0].g.v);
	free(side[1].g.v);
	return rc ? 1 : 0;
}
