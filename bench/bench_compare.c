/*
 * bench_compare.c - `hbus-bench compare`: the same ping-pong over the
 * hardware floor, hbus and its peers, in one run.
 *
 *   hbus-bench compare --size 32 --count 100000 --cpus 0,1 [--json] [--plot F.png]
 *                      [--rate MSGS_PER_S] [--rounds R] [--transports T1,T2,...]
 *
 * Transports: cacheline and cacheline2 (the floors: one buffer both ways,
 * one buffer per direction; pp_cacheline.c), shm (hbus), uds, udp, zmq,
 * aeron, amqp, rabbitmq; shm-x and shm-p (hbus with exclusive handles,
 * with protected queues) only when named in --transports.  A peer this
 * build left out (zmq without libzmq, aeron without -Daeron=DIR, the AMQP
 * rows without librabbitmq) is skipped with a one-line note on stderr.
 * The AMQP rows start brokers and run only when asked for
 * (HBUS_BENCH_AMQP=1, or named in --transports); a row whose prepare says
 * -ENOPKG (rabbitmq-server not installed) shows as skipped.
 *
 * The VM under us time-slices its two vCPUs and moves them between near
 * and far cores, so one long run per transport would compare different
 * machines.  The run is split into R rounds (default 5); each round runs
 * every transport for count/R round trips, in an order rotated by one
 * each round, so every transport sees each phase of the host's noise.
 * Histograms are merged across rounds; the medians of the per-round p50,
 * p99 and p99.9 are printed as well.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "plot.h"
#include "pp_cli.h"

#define CMP_MAX 16u /* rows: more than pp_all_names has */

/* The per-round percentiles kept: their medians are what the docs quote. */
static const double cmp_round_pct[] = { 50.0, 99.0, 99.9 };
static const char *const cmp_round_key[] = { "round_p50_ns", "round_p99_ns", "round_p99.9_ns" };
#define CMP_NRP (sizeof(cmp_round_pct) / sizeof(cmp_round_pct[0]))

struct cmp_result {
	const struct pp_ops *ops;
	bool skipped;        /* not run: its prepare said -ENOPKG, or not asked for */
	const char *why;
	struct hist merged;
	uint64_t *round[CMP_NRP]; /* [k][r]: percentile k of round r */
};

/* The rows of this run, and where the baselines are among them. */
struct cmp_set {
	struct cmp_result res[CMP_MAX];
	unsigned n;
	int shm, floor, floor2; /* indexes into res; floors -1 when left out */
};

/* The median of the per-round values of one percentile, in us. */
static double round_median_us(const uint64_t *ns, unsigned n)
{
	double v[n];

	for (unsigned i = 0; i < n; i++)
		v[i] = (double)ns[i];
	return bench_median(v, n) / 1000.0;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

/* Run every transport in every round; 0 or the first failure. */
static int cmp_run(const struct pp_cli *cli, struct cmp_set *set, struct hist *scratch)
{
	struct pp_opts o = cli->o;
	unsigned r, k;

	o.count = (cli->o.count + cli->rounds - 1) / cli->rounds;
	/* Each run is a fresh process and fresh queues: warm each one up. */
	o.warmup = cli->o.warmup / cli->rounds;
	if (o.warmup < 100 && cli->o.warmup >= 100)
		o.warmup = 100;
	for (r = 0; r < cli->rounds; r++) {
		for (k = 0; k < set->n; k++) {
			struct cmp_result *x = &set->res[(k + r) % set->n];
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
			for (unsigned p = 0; p < CMP_NRP; p++)
				x->round[p][r] = hist_percentile(scratch, cmp_round_pct[p]);
			hist_merge(&x->merged, scratch);
		}
		if (!cli->json)
			fprintf(stderr, "\rround %u/%u done", r + 1, cli->rounds);
	}
	if (!cli->json)
		fprintf(stderr, "\n");
	return 0;
}

static void cmp_print_json(const struct pp_cli *cli, const struct cmp_set *set)
{
	struct bench_json j;

	bench_json_begin(&j, stdout);
	bench_json_u64(&j, "size", cli->o.size);
	bench_json_u64(&j, "count", set->res[set->shm].merged.total);
	bench_json_u64(&j, "rounds", cli->rounds);
	if (cli->o.rate)
		bench_json_u64(&j, "rate", cli->o.rate);
	bench_json_key_arr(&j, "results");
	for (unsigned k = 0; k < set->n; k++) {
		const struct cmp_result *x = &set->res[k];
		if (x->skipped)
			continue;
		bench_json_obj(&j);
		bench_json_str(&j, "transport", x->ops->name);
		bench_json_hist(&j, "rtt_ns", &x->merged);
		for (unsigned p = 0; p < CMP_NRP; p++) {
			bench_json_key_arr(&j, cmp_round_key[p]);
			for (unsigned r = 0; r < cli->rounds; r++)
				bench_json_u64(&j, NULL, x->round[p][r]);
			bench_json_arr_end(&j);
		}
		bench_json_obj_end(&j);
	}
	bench_json_arr_end(&j);
	bench_json_end(&j);
}

static uint64_t p50_of(const struct cmp_set *set, int k)
{
	return hist_percentile(&set->res[k].merged, 50.0);
}

static void cmp_print_table(const struct pp_cli *cli, const struct cmp_set *set)
{
	const struct hist *hb = &set->res[set->shm].merged;
	uint64_t hb50 = hist_percentile(hb, 50.0), hb999 = hist_percentile(hb, 99.9);
	int best = -1;

	printf("compare: %u-byte messages, %llu round trips per transport in %u interleaved rounds,"
	       " cpus %d,%d%s\n", cli->o.size, (unsigned long long)hb->total,
	       cli->rounds, cli->o.cpu_a, cli->o.cpu_b,
	       cli->o.rate ? ", fixed rate (latency from intended send time)" : ", closed loop");
	printf("timer: %s (%.1f ns per read)\n",
	       bench_clock.use_tsc ? "rdtsc calibrated against CLOCK_MONOTONIC"
				   : "clock_gettime(CLOCK_MONOTONIC)", bench_clock.read_cost_ns);
	bench_print_hist_header(stdout, "RTT (us)");
	printf(" %8s %10s %8s %8s %9s\n", "p50/shm", "p99.9/shm", "rnd-p50", "rnd-p99", "rnd-p99.9");
	for (unsigned k = 0; k < set->n; k++) {
		const struct hist *h = &set->res[k].merged;
		if (set->res[k].skipped) {
			printf("%-12s skipped (%s)\n", set->res[k].ops->name, set->res[k].why);
			continue;
		}
		bench_print_hist_row(stdout, set->res[k].ops->name, h);
		printf(" %8.2f %10.2f", ratio(hist_percentile(h, 50.0), hb50),
		       ratio(hist_percentile(h, 99.9), hb999));
		for (unsigned p = 0; p < CMP_NRP; p++)
			printf(" %*.3f", p == 2 ? 9 : 8,
			       round_median_us(set->res[k].round[p], cli->rounds));
		putchar('\n');
		/* Peers only: not the floors, not hbus nor its variants (shm-*). */
		if ((int)k != set->floor && (int)k != set->floor2 &&
		    strncmp(set->res[k].ops->name, "shm", 3) != 0 &&
		    (best < 0 || p50_of(set, (int)k) < p50_of(set, best)))
			best = (int)k;
	}
	printf("(p50/shm, p99.9/shm: ratio to hbus; rnd-*: median of the %u per-round percentiles, us)\n",
	       cli->rounds);
	if (set->floor >= 0 || set->floor2 >= 0) {
		printf("hbus vs floor: p50");
		if (set->floor >= 0)
			printf(" %.2fx the cacheline ping-pong", ratio(hb50, p50_of(set, set->floor)));
		if (set->floor2 >= 0)
			printf("%s %.2fx the two-buffer one (cacheline2)", set->floor >= 0 ? "," : "",
			       ratio(hb50, p50_of(set, set->floor2)));
		putchar('\n');
	}
	if (best >= 0)
		printf("hbus vs best peer (%s): %.1fx faster at p50, %.1fx faster at p99.9\n",
		       set->res[best].ops->name, ratio(p50_of(set, best), hb50),
		       ratio(hist_percentile(&set->res[best].merged, 99.9), hb999));
}

/* Is name in the comma-separated list (NULL: every name is)? */
static bool cmp_listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p; p = strchr(p, ','), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0'))
			return true;
	return list == NULL;
}

/* The rows for --transports (every built transport by default), in the
 * canonical order; skipped peers get their note.  0 or 2 (usage error). */
static int cmp_select(const struct pp_cli *cli, const char *mode, struct cmp_set *set)
{
	const char *list = cli->transports;

	/* Every listed name must be one hbus-bench knows, built or not. */
	for (const char *p = list; p; p = strchr(p, ','), p = p ? p + 1 : NULL) {
		size_t len = strcspn(p, ",");
		bool known = false;
		for (unsigned i = 0; pp_all_names[i]; i++)
			known |= strlen(pp_all_names[i]) == len && !strncmp(p, pp_all_names[i], len);
		if (!known)
			return bench_usage_error(mode, "--transports: unknown transport '%.*s'",
						 (int)len, p);
	}
	set->n = 0;
	set->shm = set->floor = set->floor2 = -1;
	for (unsigned i = 0; pp_all_names[i] && set->n < CMP_MAX; i++) {
		const char *name = pp_all_names[i];
		if (!cmp_listed(list, name))
			continue;
		/* hbus's variants (exclusive handles, protected queues) and the
		 * slot-ring floor run when named: the default rows stay the ones
		 * the docs' tables have. */
		if (!list && (!strcmp(name, "shm-x") || !strcmp(name, "shm-p") ||
			      !strcmp(name, "slotring")))
			continue;
		set->res[set->n].ops = pp_find(name);
		if (!set->res[set->n].ops) {
			fprintf(stderr, "compare: no %s row: %s\n", name, pp_unavailable(name));
			continue;
		}
		/* The AMQP rows start brokers (RabbitMQ: seconds): asked for,
		 * by HBUS_BENCH_AMQP=1 or by name in --transports. */
		if ((!strcmp(name, "amqp") || !strcmp(name, "rabbitmq")) && !list &&
		    !getenv("HBUS_BENCH_AMQP")) {
			set->res[set->n].skipped = true;
			set->res[set->n].why = "set HBUS_BENCH_AMQP=1 to run it";
		}
		if (!strcmp(name, "shm"))
			set->shm = (int)set->n;
		else if (!strcmp(name, "cacheline"))
			set->floor = (int)set->n;
		else if (!strcmp(name, "cacheline2"))
			set->floor2 = (int)set->n;
		set->n++;
	}
	if (set->shm < 0)
		return bench_usage_error(mode, "--transports must include shm (ratios are to hbus)");
	return 0;
}

int bench_compare_main(int argc, char **argv)
{
	struct pp_cli cli;
	struct cmp_set *set;
	struct hist *scratch;
	int rc;

	rc = pp_cli_parse(argc, argv, PP_CLI_COMPARE, &cli);
	if (rc)
		return rc == 1 ? 0 : rc;
	set = calloc(1, sizeof(*set));
	scratch = malloc(sizeof(*scratch));
	if (!set || !scratch) {
		rc = 1;
		goto out;
	}
	rc = cmp_select(&cli, argv[0], set);
	if (rc)
		goto out;
	for (unsigned k = 0; k < set->n; k++) {
		hist_init(&set->res[k].merged);
		for (unsigned p = 0; p < CMP_NRP; p++) {
			set->res[k].round[p] = calloc(cli.rounds, sizeof(uint64_t));
			if (!set->res[k].round[p])
				rc = 1;
		}
	}
	if (rc)
		goto out;
	bench_clock_init();
	rc = cmp_run(&cli, set, scratch);
	if (rc) {
		rc = 1;
		goto out;
	}
	if (cli.json)
		cmp_print_json(&cli, set);
	else
		cmp_print_table(&cli, set);
	if (cli.plot) {
		const char *names[CMP_MAX];
		const struct hist *hs[CMP_MAX];
		char title[160];
		unsigned np = 0;
		for (unsigned k = 0; k < set->n; k++) {
			if (set->res[k].skipped)
				continue;
			names[np] = set->res[k].ops->name;
			hs[np++] = &set->res[k].merged;
		}
		snprintf(title, sizeof(title), "hbus-bench compare: %u-byte ping-pong RTT, cpus %d,%d%s",
			 cli.o.size, cli.o.cpu_a, cli.o.cpu_b, cli.o.rate ? ", fixed rate" : "");
		int prc = bench_plot_png(cli.plot, title, names, hs, np);
		if (prc) {
			fprintf(stderr, "hbus-bench compare: cannot write plot %s: %s\n", cli.plot,
				prc == -ENOENT ? "gnuplot not found (apt-get install gnuplot-nox)"
					       : strerror(-prc));
			rc = 1;
		}
	}
out:
	for (unsigned k = 0; set && k < set->n; k++)
		for (unsigned p = 0; p < CMP_NRP; p++)
			free(set->res[k].round[p]);
	free(set);
	free(scratch);
	return rc;
}
