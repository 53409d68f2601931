/*
 * bench_compare.c - `hbus-bench compare`: the same ping-pong over the
 * hardware floor, hbus and its peers, in one run.
 *
 *   hbus-bench compare --size 32 --count 100000 --cpus 0,1 [--json] [--plot F.png]
 *                      [--rate MSGS_PER_S] [--rounds R]
 *
 * Transports: cacheline and cacheline2 (the floors: one buffer both ways,
 * one buffer per direction; pp_cacheline.c), shm (hbus), uds, udp, zmq.  The VM under
 * us time-slices its two vCPUs and moves them between near and far cores,
 * so one long run per transport would compare different machines.  The
 * run is split into R rounds (default 5); each round runs every transport
 * for count/R round trips, in an order rotated by one each round, so every
 * transport sees each phase of the host's noise.  Histograms are merged
 * across rounds; the median of the per-round p50s is printed as well.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "plot.h"
#include "pp_cli.h"

static const char *const cmp_names[] = {
	"cacheline", "cacheline2", "shm", "uds", "udp",
#ifdef HBUS_BENCH_ZMQ
	"zmq",
#endif
#ifdef HBUS_BENCH_AMQP
	"amqp", "rabbitmq", /* pp_amqp.c: the same rabbitmq-c client through both */
#endif
};
#define CMP_N (sizeof(cmp_names) / sizeof(cmp_names[0]))
#define CMP_FLOOR2 1u   /* index of the two-buffer floor */
#define CMP_SHM 2u      /* index of hbus in cmp_names */
#define CMP_PEER0 3u    /* first peer */

struct cmp_result {
	const struct pp_ops *ops;
	bool skipped;        /* not run: its prepare said -ENOPKG, or not asked for */
	const char *why;
	struct hist merged;
	uint64_t *round_p50; /* one per round */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t median(const uint64_t *v, unsigned n)
{
	uint64_t tmp[n];
	memcpy(tmp, v, sizeof(tmp));
	qsort(tmp, n, sizeof(tmp[0]), cmp_u64);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

/* Run every transport in every round; 0 or the first failure. */
static int cmp_run(const struct pp_cli *cli, struct cmp_result *res, struct hist *scratch)
{
	struct pp_opts o = cli->o;
	unsigned r, k;

	o.count = (cli->o.count + cli->rounds - 1) / cli->rounds;
	/* Each run is a fresh process and fresh queues: warm each one up. */
	o.warmup = cli->o.warmup / cli->rounds;
	if (o.warmup < 100 && cli->o.warmup >= 100)
		o.warmup = 100;
	for (r = 0; r < cli->rounds; r++) {
		for (k = 0; k < CMP_N; k++) {
			struct cmp_result *x = &res[(k + r) % CMP_N];
			int rc;
			if (x->skipped)
				continue;
			hist_init(scratch);
			rc = pp_run(x->ops, &o, scratch);
			if (rc == -ENOPKG) {
				x->skipped = true; /* e.g. rabbitmq-server not installed: said once */
				x->why = "not installed";
				continue;
			}
			if (rc)
				return rc;
			x->round_p50[r] = hist_percentile(scratch, 50.0);
			hist_merge(&x->merged, scratch);
		}
		if (!cli->json)
			fprintf(stderr, "\rround %u/%u done", r + 1, cli->rounds);
	}
	if (!cli->json)
		fprintf(stderr, "\n");
	return 0;
}

static void cmp_print_json(const struct pp_cli *cli, const struct cmp_result *res)
{
	struct bench_json j;

	bench_json_begin(&j, stdout);
	bench_json_u64(&j, "size", cli->o.size);
	bench_json_u64(&j, "count", res[0].merged.total);
	bench_json_u64(&j, "rounds", cli->rounds);
	if (cli->o.rate)
		bench_json_u64(&j, "rate", cli->o.rate);
	bench_json_key_arr(&j, "results");
	for (unsigned k = 0; k < CMP_N; k++) {
		if (res[k].skipped)
			continue;
		bench_json_obj(&j);
		bench_json_str(&j, "transport", res[k].ops->name);
		bench_json_hist(&j, "rtt_ns", &res[k].merged);
		bench_json_key_arr(&j, "round_p50_ns");
		for (unsigned r = 0; r < cli->rounds; r++)
			bench_json_u64(&j, NULL, res[k].round_p50[r]);
		bench_json_arr_end(&j);
		bench_json_obj_end(&j);
	}
	bench_json_arr_end(&j);
	bench_json_end(&j);
}

static void cmp_print_table(const struct pp_cli *cli, const struct cmp_result *res)
{
	const struct hist *hb = &res[CMP_SHM].merged;
	uint64_t hb50 = hist_percentile(hb, 50.0), hb999 = hist_percentile(hb, 99.9);
	unsigned best = CMP_PEER0;

	printf("compare: %u-byte messages, %llu round trips per transport in %u interleaved rounds,"
	       " cpus %d,%d%s\n", cli->o.size, (unsigned long long)res[0].merged.total, cli->rounds,
	       cli->o.cpu_a, cli->o.cpu_b,
	       cli->o.rate ? ", fixed rate (latency from intended send time)" : ", closed loop");
	printf("timer: %s (%.1f ns per read)\n",
	       bench_clock.use_tsc ? "rdtsc calibrated against CLOCK_MONOTONIC"
				   : "clock_gettime(CLOCK_MONOTONIC)", bench_clock.read_cost_ns);
	bench_print_hist_header(stdout, "RTT (us)");
	printf(" %8s %10s %10s\n", "p50/shm", "p99.9/shm", "rnd-p50");
	for (unsigned k = 0; k < CMP_N; k++) {
		const struct hist *h = &res[k].merged;
		if (res[k].skipped) {
			printf("%-12s skipped (%s)\n", res[k].ops->name, res[k].why);
			continue;
		}
		bench_print_hist_row(stdout, res[k].ops->name, h);
		printf(" %8.2f %10.2f %10.3f\n",
		       ratio(hist_percentile(h, 50.0), hb50), ratio(hist_percentile(h, 99.9), hb999),
		       (double)median(res[k].round_p50, cli->rounds) / 1000.0);
		if (k >= CMP_PEER0 && !res[best].skipped &&
		    hist_percentile(h, 50.0) < hist_percentile(&res[best].merged, 50.0))
			best = k;
	}
	printf("(p50/shm, p99.9/shm: ratio to hbus; rnd-p50: median of the %u per-round p50s, us)\n",
	       cli->rounds);
	printf("hbus vs floor: p50 %.2fx the cacheline ping-pong, %.2fx the two-buffer one (cacheline2)\n",
	       ratio(hb50, hist_percentile(&res[0].merged, 50.0)),
	       ratio(hb50, hist_percentile(&res[CMP_FLOOR2].merged, 50.0)));
	printf("hbus vs best peer (%s): %.1fx faster at p50, %.1fx faster at p99.9\n",
	       res[best].ops->name, ratio(hist_percentile(&res[best].merged, 50.0), hb50),
	       ratio(hist_percentile(&res[best].merged, 99.9), hb999));
}

int bench_compare_main(int argc, char **argv)
{
	struct pp_cli cli;
	struct cmp_result *res;
	struct hist *scratch;
	int rc;

	rc = pp_cli_parse(argc, argv, PP_CLI_COMPARE, &cli);
	if (rc)
		return rc == 1 ? 0 : rc;
	res = calloc(CMP_N, sizeof(*res));
	scratch = malloc(sizeof(*scratch));
	if (!res || !scratch)
		return 1;
	for (unsigned k = 0; k < CMP_N; k++) {
		res[k].ops = pp_find(cmp_names[k]);
		res[k].round_p50 = calloc(cli.rounds, sizeof(uint64_t));
		hist_init(&res[k].merged);
		/* The AMQP rows start brokers (RabbitMQ: seconds): asked for. */
		if (res[k].ops && res[k].ops->name[0] != 'c' && strstr("amqp rabbitmq", res[k].ops->name) &&
		    !getenv("HBUS_BENCH_AMQP")) {
			res[k].skipped = true;
			res[k].why = "set HBUS_BENCH_AMQP=1 to run it";
		}
		if (!res[k].ops || !res[k].round_p50) {
			rc = 1;
			goto out;
		}
	}
	bench_clock_init();
	rc = cmp_run(&cli, res, scratch);
	if (rc) {
		rc = 1;
		goto out;
	}
	if (cli.json)
		cmp_print_json(&cli, res);
	else
		cmp_print_table(&cli, res);
	if (cli.plot) {
		const char *names[CMP_N];
		const struct hist *hs[CMP_N];
		char title[160];
		for (unsigned k = 0; k < CMP_N; k++) {
			names[k] = res[k].ops->name;
			hs[k] = &res[k].merged;
		}
		snprintf(title, sizeof(title), "hbus-bench compare: %u-byte ping-pong RTT, cpus %d,%d%s",
			 cli.o.size, cli.o.cpu_a, cli.o.cpu_b, cli.o.rate ? ", fixed rate" : "");
		int prc = bench_plot_png(cli.plot, title, names, hs, CMP_N);
		if (prc) {
			fprintf(stderr, "hbus-bench compare: cannot write plot %s: %s\n", cli.plot,
				prc == -ENOENT ? "gnuplot not found (apt-get install gnuplot-nox)"
					       : strerror(-prc));
			rc = 1;
		}
	}
out:
	for (unsigned k = 0; k < CMP_N; k++)
		free(res[k].round_p50);
	free(res);
	free(scratch);
	return rc;
}
