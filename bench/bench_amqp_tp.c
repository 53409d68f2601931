/*
 * bench_amqp_tp.c - `hbus-bench amqp-throughput`: publish throughput of
 * hbus-amqp against RabbitMQ, the same rabbitmq-c client for both, in the
 * same run (issue 16: at least 5x, confirms off and on).
 *
 *   hbus-bench amqp-throughput [--size B] [--count N] [--rounds R] [--window W]
 *                              [--confirms off|on|both] [--brokers amqp,rabbitmq] [--json]
 *
 * One run = one broker, one confirm mode: a consumer process (forked)
 * declares the queue, purges it and subscribes (no-ack); then the publisher
 * (this process) publishes N messages of B bytes to it through the default
 * exchange, with confirms off, or on (confirm.select, at most W
 * unconfirmed: it reads acks whenever W are out).  The consumer checks
 * every message (its id in range and seen once, a checksum over the body)
 * and the rate is what it consumed over the time from the first publish to
 * the last message consumed; the publisher's own rate (to its last
 * publish, or last confirm) is printed too.  A run that lost a message
 * (neither consumed nor nacked) or got a bad one fails the mode (exit 1).
 *
 * Both brokers get the same queue: x-max-length N (hbus: a ring of the next
 * power of two, so nothing is dropped because the consumer lags),
 * x-overflow reject-publish, x-hbus-slot-size B + 256 (the ring's slot;
 * RabbitMQ ignores x-hbus-*).  Rounds interleave the brokers (hbus-amqp,
 * RabbitMQ, hbus-amqp, ...) so both see the same phases of a noisy
 * machine; medians of the per-run rates and their ratio are printed.
 * Nothing is pinned: on two cpus the broker needs one as much as the
 * clients do.
 */
#ifdef HBUS_BENCH_AMQP
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_tp.h"
#include "bench.h"

#define TP_SIZE_MIN 16u          /* id + checksum */
#define TP_SIZE_MAX 65536u
#define TP_COUNT_MAX 4000000u
#define TP_RING_MAX (1ull << 30) /* bytes of the hbus ring the queue needs */

static void atp_usage(FILE *f)
{
	fprintf(f, "usage: hbus-bench amqp-throughput [--size B] [--count N] [--rounds R] [--window W]\n"
		   "                                  [--confirms off|on|both] [--brokers LIST] [--json]\n"
		   "  N messages of B bytes (default 100000 of 32; B %u..%u) published with rabbitmq-c\n"
		   "  through hbus-amqp and a private RabbitMQ, each consumed and checked on the other\n"
		   "  side; R rounds (default 5) interleaving the brokers; confirms off, on (at most W\n"
		   "  unconfirmed, default 1000) or both (default); LIST: amqp,rabbitmq (default both)\n",
		TP_SIZE_MIN, TP_SIZE_MAX);
}

static int atp_parse(int argc, char **argv, struct atp_opts *o)
{
	enum { O_SIZE = 256, O_COUNT, O_ROUNDS, O_WINDOW, O_CONFIRMS, O_BROKERS, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "confirms", required_argument, NULL, O_CONFIRMS },
		{ "brokers", required_argument, NULL, O_BROKERS },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	*o = (struct atp_opts){ .size = 32, .count = 100000, .rounds = 5, .window = 1000,
				.modes = { true, true }, .brokers = { true, true } };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_SIZE:
			if (bench_parse_u64(optarg, &v) || v < TP_SIZE_MIN || v > TP_SIZE_MAX)
				return bench_usage_error(argv[0], "--size must be %u..%u", TP_SIZE_MIN,
							 TP_SIZE_MAX);
			o->size = (uint32_t)v;
			break;
		case O_COUNT:
			if (bench_parse_u64(optarg, &o->count) || o->count == 0 || o->count > TP_COUNT_MAX)
				return bench_usage_error(argv[0], "--count must be 1..%u", TP_COUNT_MAX);
			break;
		case O_ROUNDS:
			if (bench_parse_u64(optarg, &v) || v == 0 || v > 100)
				return bench_usage_error(argv[0], "--rounds must be 1..100");
			o->rounds = (uint32_t)v;
			break;
		case O_WINDOW:
			if (bench_parse_u64(optarg, &v) || v == 0 || v > 1000000)
				return bench_usage_error(argv[0], "--window must be 1..1000000");
			o->window = (uint32_t)v;
			break;
		case O_CONFIRMS:
			o->modes[0] = !strcmp(optarg, "off") || !strcmp(optarg, "both");
			o->modes[1] = !strcmp(optarg, "on") || !strcmp(optarg, "both");
			if (!o->modes[0] && !o->modes[1])
				return bench_usage_error(argv[0], "--confirms is off, on or both");
			break;
		case O_BROKERS: {
			char buf[64], *save = NULL, *t;
			snprintf(buf, sizeof(buf), "%s", optarg);
			o->brokers[0] = o->brokers[1] = false;
			for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				if (!strcmp(t, "amqp"))
					o->brokers[AMQP_BROKER_HBUS] = true;
				else if (!strcmp(t, "rabbitmq"))
					o->brokers[AMQP_BROKER_RABBITMQ] = true;
				else
					return bench_usage_error(argv[0], "--brokers: unknown broker '%s' "
								 "(amqp, rabbitmq)", t);
			}
			if (!o->brokers[0] && !o->brokers[1])
				return bench_usage_error(argv[0], "--brokers names none");
			break;
		}
		case O_JSON:
			o->json = true;
			break;
		case O_HELP:
			atp_usage(stdout);
			return 1;
		default:
			return bench_usage_error(argv[0], "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	v = 2;
	while (v < o->count)
		v <<= 1;
	if (v * (o->size + TP_SLOT_EXTRA) > TP_RING_MAX)
		return bench_usage_error(argv[0], "--count %llu of --size %u needs a ring of %llu MiB "
					 "(at most %llu): fewer or smaller messages",
					 (unsigned long long)o->count, o->size,
					 (unsigned long long)(v * (o->size + TP_SLOT_EXTRA) >> 20),
					 (unsigned long long)(TP_RING_MAX >> 20));
	return 0;
}


/* -------------------------------------------------------------- output */

static const char *const mode_name[2] = { "off", "on" };

/* runs[round][mode][broker] */
#define RUN(r, m, k) runs[((r) * 2 + (m)) * AMQP_BROKER_N + (k)]
/* Every run that was asked for and whose broker started, in order. */
#define FOR_EACH_RUN(o, brc, r, m, k)                                          \
	for (unsigned r = 0; r < (o)->rounds; r++)                             \
		for (int m = 0; m < 2; m++)                                    \
			for (int k = 0; k < AMQP_BROKER_N; k++)                \
				if ((o)->modes[m] && (o)->brokers[k] && !(brc)[k])

static void print_table(const struct atp_opts *o, const struct atp_run *runs, const int *brc)
{
	printf("amqp-throughput: %llu messages of %u bytes per run, rabbitmq-c publisher -> broker "
	       "-> rabbitmq-c consumer (no-ack), %u rounds, brokers interleaved\n",
	       (unsigned long long)o->count, o->size, o->rounds);
	for (int k = 0; k < AMQP_BROKER_N; k++)
		if (o->brokers[k] && brc[k])
			printf("%s: skipped (%s)\n", amqp_broker_name(k),
			       brc[k] == -ENOPKG ? "rabbitmq-server is not installed" : "did not start");
	printf("%-26s %14s %14s %8s\n", "msgs/s consumed, median", "amqp", "rabbitmq", "ratio");
	for (int m = 0; m < 2; m++) {
		double med[AMQP_BROKER_N] = { 0 }, v[o->rounds], ratio[o->rounds];
		char label[64];

		if (!o->modes[m])
			continue;
		for (int k = 0; k < AMQP_BROKER_N; k++) {
			if (!o->brokers[k] || brc[k])
				continue;
			for (unsigned r = 0; r < o->rounds; r++)
				v[r] = RUN(r, m, k).rate;
			med[k] = bench_median(v, o->rounds);
		}
		snprintf(label, sizeof(label), m ? "confirms on (window %u)" : "confirms off", o->window);
		printf("%-26s", label);
		for (int k = 0; k < AMQP_BROKER_N; k++) {
			if (med[k] > 0)
				printf(" %14.0f", med[k]);
			else
				printf(" %14s", "-");
		}
		if (med[0] > 0 && med[1] > 0) {
			for (unsigned r = 0; r < o->rounds; r++)
				ratio[r] = RUN(r, m, 1).rate > 0 ? RUN(r, m, 0).rate / RUN(r, m, 1).rate : 0;
			printf(" %7.2fx   (per round:", med[0] / med[1]);
			for (unsigned r = 0; r < o->rounds; r++)
				printf(" %.2f", ratio[r]);
			printf(")");
		}
		printf("\n");
	}
	printf("\n%-6s %-9s %-4s %12s %12s %10s %10s %8s %5s\n", "round", "broker", "conf", "msgs/s",
	       "publish/s", "published", "consumed", "nacked", "bad");
	FOR_EACH_RUN(o, brc, r, m, k) {
				const struct atp_run *x = &RUN(r, m, k);
				printf("%-6u %-9s %-4s %12.0f %12.0f %10llu %10llu %8llu %5llu%s\n", r + 1,
				       amqp_broker_name(k), mode_name[m], x->rate, x->pub_rate,
				       (unsigned long long)x->published, (unsigned long long)x->consumed,
				       (unsigned long long)x->nacked,
				       (unsigned long long)(x->bad + x->dups), x->rc ? "  FAILED" : "");
			}
}

static void print_json(const struct atp_opts *o, const struct atp_run *runs, const int *brc)
{
	struct bench_json j;

	bench_json_begin(&j, stdout);
	bench_json_str(&j, "mode", "amqp-throughput");
	bench_json_u64(&j, "size", o->size);
	bench_json_u64(&j, "count", o->count);
	bench_json_u64(&j, "rounds", o->rounds);
	bench_json_u64(&j, "window", o->window);
	bench_json_key_arr(&j, "runs");
	FOR_EACH_RUN(o, brc, r, m, k) {
				const struct atp_run *x = &RUN(r, m, k);
				bench_json_obj(&j);
				bench_json_u64(&j, "round", r + 1);
				bench_json_str(&j, "broker", amqp_broker_name(k));
				bench_json_str(&j, "confirms", mode_name[m]);
				bench_json_u64(&j, "published", x->published);
				bench_json_u64(&j, "acked", x->acked);
				bench_json_u64(&j, "nacked", x->nacked);
				bench_json_u64(&j, "consumed", x->consumed);
				bench_json_u64(&j, "bad", x->bad);
				bench_json_u64(&j, "dups", x->dups);
				bench_json_dbl(&j, "msgs_per_s", x->rate);
				bench_json_dbl(&j, "publish_msgs_per_s", x->pub_rate);
				bench_json_str(&j, "result", x->rc ? "failed" : "ok");
				bench_json_obj_end(&j);
			}
	bench_json_arr_end(&j);
	bench_json_key_arr(&j, "results");
	for (int m = 0; m < 2; m++) {
		double med[AMQP_BROKER_N] = { 0 }, v[o->rounds];
		if (!o->modes[m])
			continue;
		bench_json_obj(&j);
		bench_json_str(&j, "confirms", mode_name[m]);
		for (int k = 0; k < AMQP_BROKER_N; k++) {
			char key[64];
			if (!o->brokers[k] || brc[k])
				continue;
			for (unsigned r = 0; r < o->rounds; r++)
				v[r] = RUN(r, m, k).rate;
			med[k] = bench_median(v, o->rounds);
			snprintf(key, sizeof(key), "%s_msgs_per_s", amqp_broker_name(k));
			bench_json_dbl(&j, key, med[k]);
		}
		if (med[0] > 0 && med[1] > 0)
			bench_json_dbl(&j, "ratio", med[0] / med[1]);
		bench_json_obj_end(&j);
	}
	bench_json_arr_end(&j);
	bench_json_key_arr(&j, "skipped");
	for (int k = 0; k < AMQP_BROKER_N; k++)
		if (o->brokers[k] && brc[k])
			bench_json_str(&j, NULL, amqp_broker_name(k));
	bench_json_arr_end(&j);
	bench_json_end(&j);
}

int bench_amqp_tp_main(int argc, char **argv)
{
	struct atp_opts o;
	struct atp_run *runs;
	int port[AMQP_BROKER_N] = { 0 }, brc[AMQP_BROKER_N] = { 0 }, rc, failed = 0, ran = 0;
	unsigned r;

	rc = atp_parse(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	runs = calloc((size_t)o.rounds * 2 * AMQP_BROKER_N, sizeof(*runs));
	if (!runs)
		return 1;
	for (int k = 0; k < AMQP_BROKER_N; k++)
		if (o.brokers[k])
			brc[k] = amqp_broker_port(k, &port[k]);
	for (r = 0; r < o.rounds && !failed; r++) {
		for (int m = 0; m < 2; m++) {
			if (!o.modes[m])
				continue;
			for (int k = 0; k < AMQP_BROKER_N; k++) {
				struct atp_run *x = &RUN(r, m, k);
				if (!o.brokers[k] || brc[k])
					continue;
				x->rc = amqp_tp_run(k, port[k], m == 1, &o, x);
				ran++;
				if (x->rc || x->bad || x->dups || x->consumed != x->published - x->nacked) {
					fprintf(stderr, "hbus-bench amqp-throughput: round %u, %s, confirms "
						"%s: published %llu, nacked %llu, consumed %llu, bad %llu, "
						"duplicates %llu%s\n", r + 1, amqp_broker_name(k),
						mode_name[m], (unsigned long long)x->published,
						(unsigned long long)x->nacked, (unsigned long long)x->consumed,
						(unsigned long long)x->bad, (unsigned long long)x->dups,
						x->rc ? " (run failed)" : "");
					x->rc = x->rc ? x->rc : -EBADMSG;
					failed = 1;
				}
			}
		}
		if (!o.json)
			fprintf(stderr, "round %u/%u done\r", r + 1, o.rounds);
	}
	if (!o.json)
		fprintf(stderr, "\n");
	o.rounds = r; /* what ran: a failed round is the last, marked FAILED */
	if (o.json)
		print_json(&o, runs, brc);
	else
		print_table(&o, runs, brc);
	free(runs);
	return failed || !ran ? 1 : 0;
}
#endif
