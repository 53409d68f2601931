/*
 * bench_route.c - hbus-bench route: the cost of one topic lookup in a
 * market-data sized table, against a naive matcher that tests every
 * binding, measured in the same run.
 *
 *   hbus-bench route [--bindings N] [--keys N] [--naive-keys N] [--rounds N]
 *                    [--queues N] [--seed N] [--cpu N] [--json]
 *
 * Keys are md.<venue>.<symbol>.<type> (12 venues, 5 message types, as many
 * symbols as --keys needs); bindings are mostly exact subscriptions plus
 * the wildcards a market-data consumer uses (md.*.SYM.trade,
 * md.XNAS.SYM.#, md.XNAS.*.quote, md.#.status, ...), each to a random queue.
 * The trie is timed over every key; the naive matcher, 10,000 bindings per
 * key, over a sample.  Both run in alternation, --rounds times, and the
 * medians are reported.  On the sample, both must return the same queue
 * set for every key, or the run fails.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "route.h"
#include "../tests/topic_naive.h"

#define BR_ROUNDS_MAX 101
#define BR_KEY_MAX    48

struct br_opts {
	uint64_t bindings, keys, naive_keys, queues, rounds, seed;
	int cpu;
	bool json;
};

static const char *const venues[] = { "XNAS", "XNYS", "ARCX", "BATS", "BATY", "EDGA",
				      "EDGX", "IEXG", "MEMX", "XCHI", "XBOS", "XPSX" };
static const char *const types[] = { "trade", "quote", "book", "imbalance", "status" };
#define N_VENUES (sizeof(venues) / sizeof(venues[0]))
#define N_TYPES  (sizeof(types) / sizeof(types[0]))

/* A naive binding: its pattern split once, and its queue. */
struct br_naive {
	const char **w;
	size_t *len;
	int n;
	uint32_t qid;
};

struct br {
	struct br_opts o;
	uint64_t rng;
	uint32_t n_sym;
	char (*keys)[BR_KEY_MAX];
	size_t *key_len;
	char (*pats)[BR_KEY_MAX];
	struct hbus_rc_binding *binds;
	struct hbus_rc_queue *queues;
	char (*qnames)[16];
	struct br_naive *naive;
	void *table;
	size_t table_len;
	uint32_t xid;
};

static uint32_t br_rand(struct br *b)
{
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	return (uint32_t)(b->rng >> 11);
}

/* Symbol i as four letters; i * 7919 mod 26^4 is a bijection (7919 is
 * prime to 26), so symbols are distinct and look unordered. */
static void symbol(uint32_t i, char out[5])
{
	uint32_t v = (uint32_t)(((uint64_t)i * 7919u) % (26u * 26 * 26 * 26));

	for (int k = 3; k >= 0; k--, v /= 26)
		out[k] = (char)('A' + v % 26);
	out[4] = '\0';
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hbus-bench route [--bindings N] [--keys N] [--naive-keys N] [--rounds N]\n"
		   "                        [--queues N] [--seed N] [--cpu N] [--json]\n"
		   "  topic lookups over md.<venue>.<symbol>.<type> keys; defaults: 10000 bindings,\n"
		   "  100000 keys, naive matcher on 1000 of them, 5 rounds, 1000 queues\n");
}

static int parse(int argc, char **argv, struct br_opts *o)
{
	enum { O_BIND = 256, O_KEYS, O_NAIVE, O_ROUNDS, O_QUEUES, O_SEED, O_CPU, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "bindings", required_argument, NULL, O_BIND },
		{ "keys", required_argument, NULL, O_KEYS },
		{ "naive-keys", required_argument, NULL, O_NAIVE },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "seed", required_argument, NULL, O_SEED },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	*o = (struct br_opts){ .bindings = 10000, .keys = 100000, .naive_keys = 1000,
			       .queues = 1000, .rounds = 5, .seed = 1, .cpu = -1 };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_BIND:
			if (bench_parse_u64(optarg, &o->bindings) || o->bindings < 1 || o->bindings > 1000000)
				return bench_usage_error(argv[0], "--bindings must be 1..1000000");
			break;
		case O_KEYS:
			if (bench_parse_u64(optarg, &o->keys) || o->keys < 1 || o->keys > 10000000)
				return bench_usage_error(argv[0], "--keys must be 1..10000000");
			break;
		case O_NAIVE:
			if (bench_parse_u64(optarg, &o->naive_keys) || o->naive_keys < 1)
				return bench_usage_error(argv[0], "--naive-keys must be >= 1");
			break;
		case O_ROUNDS:
			if (bench_parse_u64(optarg, &o->rounds) || o->rounds < 1 || o->rounds > BR_ROUNDS_MAX)
				return bench_usage_error(argv[0], "--rounds must be 1..%d", BR_ROUNDS_MAX);
			break;
		case O_QUEUES:
			if (bench_parse_u64(optarg, &o->queues) || o->queues < 1 ||
			    o->queues > HBUS_ROUTE_MAX_QIDS)
				return bench_usage_error(argv[0], "--queues must be 1..%u", HBUS_ROUTE_MAX_QIDS);
			break;
		case O_SEED:
			if (bench_parse_u64(optarg, &o->seed))
				return bench_usage_error(argv[0], "--seed wants a number");
			break;
		case O_CPU:
			if (bench_parse_u64(optarg, &v) || v > 4095)
				return bench_usage_error(argv[0], "--cpu wants a cpu number");
			o->cpu = (int)v;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		default:
			return bench_usage_error(argv[0], "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if (o->naive_keys > o->keys)
		o->naive_keys = o->keys;
	return 0;
}

/* Every (venue, symbol, type) once, shuffled; the first o.keys are used. */
static void make_keys(struct br *b)
{
	uint64_t total, i;
	char sym[5];

	b->n_sym = (uint32_t)((b->o.keys + N_VENUES * N_TYPES - 1) / (N_VENUES * N_TYPES));
	total = (uint64_t)b->n_sym * N_VENUES * N_TYPES;
	uint32_t *perm = malloc(total * sizeof(*perm));
	b->keys = malloc(b->o.keys * sizeof(*b->keys));
	b->key_len = malloc(b->o.keys * sizeof(*b->key_len));
	for (i = 0; i < total; i++)
		perm[i] = (uint32_t)i;
	for (i = total - 1; i > 0; i--) {
		uint32_t j = br_rand(b) % (uint32_t)(i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < b->o.keys; i++) {
		uint32_t k = perm[i];
		symbol(k / (N_VENUES * N_TYPES), sym);
		b->key_len[i] = (size_t)snprintf(b->keys[i], BR_KEY_MAX, "md.%s.%s.%s",
						 venues[k % N_VENUES], sym,
						 types[(k / N_VENUES) % N_TYPES]);
	}
	free(perm);
}

/* Mostly exact subscriptions, then ever broader wildcards, ever rarer. */
static void make_pattern(struct br *b, char *out)
{
	uint32_t r = br_rand(b) % 1000;
	const char *v = venues[br_rand(b) % N_VENUES], *t = types[br_rand(b) % N_TYPES];
	char s[5];

	symbol(br_rand(b) % b->n_sym, s);
	if (r < 700)
		snprintf(out, BR_KEY_MAX, "md.%s.%s.%s", v, s, t);
	else if (r < 800)
		snprintf(out, BR_KEY_MAX, "md.*.%s.%s", s, t);
	else if (r < 880)
		snprintf(out, BR_KEY_MAX, "md.%s.%s.*", v, s);
	else if (r < 930)
		snprintf(out, BR_KEY_MAX, "md.%s.%s.#", v, s);
	else if (r < 975)
		snprintf(out, BR_KEY_MAX, "md.*.%s.#", s);
	else if (r < 995)
		snprintf(out, BR_KEY_MAX, "#.%s.%s", s, t);
	else if (r < 998)
		snprintf(out, BR_KEY_MAX, "md.%s.*.%s", v, t);
	else
		snprintf(out, BR_KEY_MAX, "md.#.%s", t);
}

static void split_naive(struct br_naive *nb, const char *pat)
{
	struct tn_words w;

	tn_split(pat, strlen(pat), &w);
	nb->n = w.n;
	nb->w = malloc((size_t)(w.n + 1) * sizeof(*nb->w));
	nb->len = malloc((size_t)(w.n + 1) * sizeof(*nb->len));
	memcpy(nb->w, w.w, (size_t)w.n * sizeof(*nb->w));
	memcpy(nb->len, w.len, (size_t)w.n * sizeof(*nb->len));
}

static int build(struct br *b, double *compile_ms)
{
	struct hbus_rc_exchange x = { .name = "md", .type = HBUS_X_TOPIC };
	struct hbus_rc_input in;
	uint64_t i, t0;
	size_t need = 0;
	int rc;

	b->queues = calloc(b->o.queues, sizeof(*b->queues));
	b->qnames = calloc(b->o.queues, sizeof(*b->qnames));
	b->binds = calloc(b->o.bindings, sizeof(*b->binds));
	b->pats = calloc(b->o.bindings, sizeof(*b->pats));
	b->naive = calloc(b->o.bindings, sizeof(*b->naive));
	for (i = 0; i < b->o.queues; i++) {
		snprintf(b->qnames[i], sizeof(b->qnames[i]), "q%04u", (unsigned)i);
		b->queues[i] = (struct hbus_rc_queue){ .name = b->qnames[i], .qid = (uint32_t)i + 1 };
	}
	for (i = 0; i < b->o.bindings; i++) {
		uint32_t q = br_rand(b) % (uint32_t)b->o.queues;

		make_pattern(b, b->pats[i]);
		b->binds[i] = (struct hbus_rc_binding){ .source = "md", .dest = b->qnames[q],
							 .key = b->pats[i] };
		split_naive(&b->naive[i], b->pats[i]);
		b->naive[i].qid = q + 1;
	}
	in = (struct hbus_rc_input){ &x, 1, b->queues, (unsigned)b->o.queues, b->binds,
				     (unsigned)b->o.bindings, NULL, 0 };
	t0 = bench_now_ns();
	rc = hbus_route_compile(&in, NULL, 0, &need);
	if (rc != -ENOSPC)
		return rc;
	b->table = aligned_alloc(64, (need + 63) / 64 * 64);
	rc = hbus_route_compile(&in, b->table, need, &b->table_len);
	*compile_ms = (double)(bench_now_ns() - t0) / 1e6;
	if (rc == 0)
		rc = hbus_route_exchange(b->table, "md", 2, &b->xid);
	return rc;
}

/* Naive routing: every binding against the key; qids deduped by stamp. */
static unsigned naive_lookup(const struct br *b, const char *key, size_t len, uint32_t *stamp,
			     uint32_t mark, uint32_t *out)
{
	struct tn_words k;
	unsigned n = 0;

	tn_split(key, len, &k);
	for (uint64_t i = 0; i < b->o.bindings; i++) {
		const struct br_naive *nb = &b->naive[i];

		if (tn_match_split(nb->w, nb->len, nb->n, &k) && stamp[nb->qid] != mark) {
			stamp[nb->qid] = mark;
			out[n++] = nb->qid;
		}
	}
	return n;
}

static void br_free(struct br *b)
{
	for (uint64_t i = 0; b->naive && i < b->o.bindings; i++) {
		free(b->naive[i].w);
		free(b->naive[i].len);
	}
	free(b->naive);
	free(b->keys);
	free(b->key_len);
	free(b->pats);
	free(b->binds);
	free(b->queues);
	free(b->qnames);
	free(b->table);
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Both matchers on the sample: the same queue set for every key. */
static uint64_t verify(const struct br *b, uint32_t *stamp, double *avg_queues)
{
	static uint32_t want[HBUS_ROUTE_MAX_QIDS], got[HBUS_ROUTE_MAX_QIDS];
	uint64_t bad = 0, total = 0;

	for (uint64_t i = 0; i < b->o.naive_keys; i++) {
		unsigned nw = naive_lookup(b, b->keys[i], b->key_len[i], stamp, (uint32_t)i + 1, want);
		int ng = hbus_route_lookup(b->table, b->xid, b->keys[i], b->key_len[i], NULL, got,
					   HBUS_ROUTE_MAX_QIDS);

		total += nw;
		qsort(want, nw, sizeof(*want), u32_cmp);
		if (ng > 0)
			qsort(got, (size_t)ng, sizeof(*got), u32_cmp);
		if (ng != (int)nw || memcmp(want, got, nw * sizeof(*want)) != 0) {
			if (bad++ < 5)
				fprintf(stderr, "hbus-bench route: mismatch on '%s': trie %d queues, naive %u\n",
					b->keys[i], ng, nw);
		}
	}
	*avg_queues = (double)total / (double)b->o.naive_keys;
	return bad;
}

int bench_route_main(int argc, char **argv)
{
	struct br b = { 0 };
	double trie_ns[BR_ROUNDS_MAX], naive_ns[BR_ROUNDS_MAX], compile_ms = 0, avg_q = 0;
	static uint32_t qids[HBUS_ROUTE_MAX_QIDS];
	uint32_t *stamp;
	uint64_t sink = 0, bad, r, i, t0, mark = 1u << 31;
	int rc = parse(argc, argv, &b.o);

	if (rc)
		return rc == 1 ? 0 : rc; /* 1: --help printed */
	if (b.o.cpu >= 0 && bench_pin_cpu(b.o.cpu) != 0)
		return bench_usage_error(argv[0], "cannot pin to cpu %d", b.o.cpu);
	bench_clock_init();
	b.rng = 0x9e3779b97f4a7c15ull ^ (b.o.seed * 0xbf58476d1ce4e5b9ull);
	make_keys(&b);
	if ((rc = build(&b, &compile_ms)) != 0) {
		fprintf(stderr, "hbus-bench route: compile: %s\n", hbus_strerror(rc));
		br_free(&b);
		return 1;
	}
	stamp = calloc(b.o.queues + 1, sizeof(*stamp));
	bad = verify(&b, stamp, &avg_q);
	/* Alternate the two so that both see the same machine weather. */
	for (r = 0; r < b.o.rounds; r++) {
		t0 = bench_now_ns();
		for (i = 0; i < b.o.keys; i++)
			sink += (uint64_t)hbus_route_lookup(b.table, b.xid, b.keys[i], b.key_len[i],
							    NULL, qids, HBUS_ROUTE_MAX_QIDS) + qids[0];
		trie_ns[r] = (double)(bench_now_ns() - t0) / (double)b.o.keys;
		t0 = bench_now_ns();
		for (i = 0; i < b.o.naive_keys; i++)
			sink += naive_lookup(&b, b.keys[i], b.key_len[i], stamp, (uint32_t)mark++, qids);
		naive_ns[r] = (double)(bench_now_ns() - t0) / (double)b.o.naive_keys;
	}
	qsort(trie_ns, b.o.rounds, sizeof(double), dbl_cmp);
	qsort(naive_ns, b.o.rounds, sizeof(double), dbl_cmp);
	double ns = trie_ns[b.o.rounds / 2], nns = naive_ns[b.o.rounds / 2];
	if (b.o.json) {
		struct bench_json j;
		bench_json_begin(&j, stdout);
		bench_json_u64(&j, "bindings", b.o.bindings);
		bench_json_u64(&j, "keys", b.o.keys);
		bench_json_dbl(&j, "ns_per_lookup", ns);
		bench_json_dbl(&j, "naive_ns_per_lookup", nns);
		bench_json_dbl(&j, "speedup", nns / ns);
		bench_json_u64(&j, "naive_keys", b.o.naive_keys);
		bench_json_u64(&j, "rounds", b.o.rounds);
		bench_json_dbl(&j, "avg_queues", avg_q);
		bench_json_u64(&j, "table_bytes", b.table_len);
		bench_json_dbl(&j, "compile_ms", compile_ms);
		bench_json_u64(&j, "mismatches", bad);
		bench_json_end(&j);
	} else {
		printf("topic exchange: %llu bindings over %llu keys (md.<venue>.<symbol>.<type>), "
		       "%.2f queues per key\n", (unsigned long long)b.o.bindings,
		       (unsigned long long)b.o.keys, avg_q);
		printf("table: %zu bytes, compiled in %.1f ms\n", b.table_len, compile_ms);
		printf("trie lookup:   %8.1f ns  (median of %llu rounds, min %.1f, max %.1f)\n", ns,
		       (unsigned long long)b.o.rounds, trie_ns[0], trie_ns[b.o.rounds - 1]);
		printf("naive lookup:  %8.1f ns  (%llu keys per round)\n", nns,
		       (unsigned long long)b.o.naive_keys);
		printf("speedup:       %8.1fx   (target >= 50x, < 200 ns: %s)\n", nns / ns,
		       nns / ns >= 50 && ns < 200 ? "met" : "NOT met");
		printf("verified:      %llu keys, %llu mismatches\n",
		       (unsigned long long)b.o.naive_keys, (unsigned long long)bad);
	}
	if (sink == 42) /* keep the timed loops from being optimized away */
		fprintf(stderr, " ");
	free(stamp);
	br_free(&b);
	return bad ? 1 : 0;
}
