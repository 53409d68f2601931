/*
 * test_route_topic.c - topic exchanges: RabbitMQ's tutorial examples,
 * '#' and '*' edge cases, empty words, 255-byte keys, and thousands of
 * randomized bindings and keys cross-checked against a naive matcher
 * (topic_naive.h) that shares no code with the trie.
 */
#include "route_topo.h"
#include "topic_naive.h"

/* What the naive matcher says exchange x should route key to. */
static const char *naive_route(struct topo *t, const char *x, const char *key, char *out,
			       size_t cap)
{
	static const char *names[TP_B];
	unsigned i, j, n = 0;
	size_t o = 0;

	for (i = 0; i < t->nb; i++) {
		const struct hbus_rc_binding *b = &t->b[i];

		if (strcmp(b->source, x) || b->dest_is_exchange || !tn_match(b->key, key))
			continue;
		for (j = 0; j < n && strcmp(names[j], b->dest); j++)
			;
		if (j == n)
			names[n++] = b->dest;
	}
	qsort(names, n, sizeof(*names), tp_cmp_str);
	out[0] = '\0';
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", names[i]);
	return out;
}

static void expect_naive(struct topo *t, const char *x, const char *key)
{
	static char want[64 * 1024];

	naive_route(t, x, key, want, sizeof(want));
	cr_assert_str_eq(tp_route(t, x, key), want, "key '%s'", key);
}

Test(route_topic, rabbitmq_tutorial)
{
	struct topo *t = tp_new();

	tp_x(t, "topic_logs", HBUS_X_TOPIC, NULL);
	tp_q(t, "Q1");
	tp_q(t, "Q2");
	tp_bind(t, "topic_logs", "Q1", "*.orange.*");
	tp_bind(t, "topic_logs", "Q2", "*.*.rabbit");
	tp_bind(t, "topic_logs", "Q2", "lazy.#");
	cr_assert_str_eq(tp_route(t, "topic_logs", "quick.orange.rabbit"), "Q1,Q2");
	cr_assert_str_eq(tp_route(t, "topic_logs", "lazy.orange.elephant"), "Q1,Q2");
	cr_assert_str_eq(tp_route(t, "topic_logs", "quick.orange.fox"), "Q1");
	cr_assert_str_eq(tp_route(t, "topic_logs", "lazy.brown.fox"), "Q2");
	cr_assert_str_eq(tp_route(t, "topic_logs", "lazy.pink.rabbit"), "Q2"); /* once */
	cr_assert_str_eq(tp_route(t, "topic_logs", "quick.brown.fox"), "");
	cr_assert_str_eq(tp_route(t, "topic_logs", "orange"), "");
	cr_assert_str_eq(tp_route(t, "topic_logs", "quick.orange.male.rabbit"), "");
	cr_assert_str_eq(tp_route(t, "topic_logs", "lazy.orange.male.rabbit"), "Q2");
	tp_free(t);
}

/* One queue per pattern, so each assertion names the patterns that match. */
static struct topo *pattern_topo(const char *const *pats, unsigned n)
{
	struct topo *t = tp_new();

	tp_x(t, "t", HBUS_X_TOPIC, NULL);
	for (unsigned i = 0; i < n; i++) {
		tp_q(t, tp_str(t, "[%s]", pats[i]));
		tp_bind(t, "t", t->q[i].name, pats[i]);
	}
	tp_compile(t);
	return t;
}

Test(route_topic, hash_and_star_edges)
{
	const char *pats[] = { "#", "#.#", "a.#.b", "*.#", "#.*", "a.#", "#.b", "#.#.a.#.#",
			       "*", "a.*.#.*.b" };
	struct topo *t = pattern_topo(pats, sizeof(pats) / sizeof(pats[0]));

	cr_assert_str_eq(tp_route(t, "t", "a"), "[#.#.a.#.#],[#.#],[#.*],[#],[*.#],[*],[a.#]");
	cr_assert_str_eq(tp_route(t, "t", "a.b"),
			 "[#.#.a.#.#],[#.#],[#.*],[#.b],[#],[*.#],[a.#.b],[a.#]");
	cr_assert_str_eq(tp_route(t, "t", "a.x.y.b"),
			 "[#.#.a.#.#],[#.#],[#.*],[#.b],[#],[*.#],[a.#.b],[a.#],[a.*.#.*.b]");
	cr_assert_str_eq(tp_route(t, "t", "a.x.b"),
			 "[#.#.a.#.#],[#.#],[#.*],[#.b],[#],[*.#],[a.#.b],[a.#]");
	cr_assert_str_eq(tp_route(t, "t", "b.a"), "[#.#.a.#.#],[#.#],[#.*],[#],[*.#]");
	cr_assert_str_eq(tp_route(t, "t", "b.b"), "[#.#],[#.*],[#.b],[#],[*.#]");
	for (const char *const *k = (const char *const[]){ "a", "a.b", "b.a.b", "x.a.y.b.b", "b",
							   "a.a.a.b.b", NULL }; *k; k++)
		expect_naive(t, "t", *k);
	tp_free(t);
}

/* The empty key has no words; "a..b" has three; "." has two empty ones. */
Test(route_topic, empty_key_and_empty_words)
{
	const char *pats[] = { "", "#", "*", "*.*", "*.*.*", "a..b", "a.*.b", "a.#.b", ".", "a.",
			       ".#", "#." };
	struct topo *t = pattern_topo(pats, sizeof(pats) / sizeof(pats[0]));

	cr_assert_str_eq(tp_route(t, "t", ""), "[#],[]");
	cr_assert_str_eq(tp_route(t, "t", "a..b"), "[#],[*.*.*],[a.#.b],[a.*.b],[a..b]");
	cr_assert_str_eq(tp_route(t, "t", "."), "[#.],[#],[*.*],[.#],[.]");
	cr_assert_str_eq(tp_route(t, "t", "a."), "[#.],[#],[*.*],[a.]");
	cr_assert_str_eq(tp_route(t, "t", "a.b"), "[#],[*.*],[a.#.b]");
	cr_assert_str_eq(tp_route(t, "t", "x"), "[#],[*]");
	for (const char *const *k = (const char *const[]){ "", ".", "..", "a..b", ".a", "a.",
							   "a...b", NULL }; *k; k++)
		expect_naive(t, "t", *k);
	tp_free(t);
}

/* Keys and patterns up to HBUS_NAME_MAX bytes, i.e. up to 256 words. */
Test(route_topic, keys_of_255_bytes)
{
	struct topo *t = tp_new();
	char lit[256], dots[256], stars[256], as[256], big[257];
	int i;

	memset(lit, 'k', 255);
	lit[255] = '\0';
	memset(dots, '.', 255); /* 256 empty words */
	dots[255] = '\0';
	for (i = 0; i < 255; i++) {
		stars[i] = i % 2 ? '.' : '*'; /* 128 stars */
		as[i] = i % 2 ? '.' : 'a';    /* 128 words */
	}
	stars[255] = as[255] = '\0';
	tp_x(t, "t", HBUS_X_TOPIC, NULL);
	tp_q(t, "LIT");
	tp_q(t, "DOTS");
	tp_q(t, "STARS");
	tp_q(t, "HASH");
	tp_q(t, "DEEP");
	tp_bind(t, "t", "LIT", lit);
	tp_bind(t, "t", "DOTS", dots);
	tp_bind(t, "t", "STARS", stars);
	tp_bind(t, "t", "HASH", "#");
	tp_bind(t, "t", "DEEP", tp_str(t, "#.%s", stars + 4));
	tp_bind(t, "t", "DEEP", tp_str(t, "%s.#", dots + 2));
	tp_compile(t);
	cr_assert_str_eq(tp_route(t, "t", lit), "HASH,LIT");
	cr_assert_str_eq(tp_route(t, "t", dots), "DEEP,DOTS,HASH");
	cr_assert_str_eq(tp_route(t, "t", as), "DEEP,HASH,STARS");
	expect_naive(t, "t", lit);
	expect_naive(t, "t", dots);
	expect_naive(t, "t", as);
	expect_naive(t, "t", as + 2);
	memset(big, 'k', 256);
	big[256] = '\0';
	cr_assert_str_eq(tp_route(t, "t", big), "ERR-22");
	tp_bind(t, "t", "LIT", big);
	cr_assert_eq(tp_try_compile(t), -EINVAL);
	tp_free(t);
}

Test(route_topic, many_bindings_sharing_prefixes)
{
	struct topo *t = tp_new();
	int i;

	tp_x(t, "t", HBUS_X_TOPIC, NULL);
	for (i = 0; i < 200; i++)
		tp_q(t, tp_str(t, "q%03d", i));
	for (i = 0; i < 3000; i++) {
		const char *q = t->q[(i * 7) % 200].name;
		switch (i % 6) {
		case 0: tp_bind(t, "t", q, tp_str(t, "s.%d.x", i % 100)); break;
		case 1: tp_bind(t, "t", q, tp_str(t, "s.%d.#", i % 90)); break;
		case 2: tp_bind(t, "t", q, tp_str(t, "s.*.%d", i % 50)); break;
		case 3: tp_bind(t, "t", q, tp_str(t, "#.%d", i % 30)); break;
		case 4: tp_bind(t, "t", q, tp_str(t, "s.%d.%d.*", i % 20, i % 3)); break;
		default: tp_bind(t, "t", q, tp_str(t, "s.%d", i % 100)); break;
		}
	}
	tp_compile(t);
	for (i = 0; i < 300; i++) {
		char key[64];
		switch (i % 4) {
		case 0: snprintf(key, sizeof(key), "s.%d.x", i % 110); break;
		case 1: snprintf(key, sizeof(key), "s.%d.%d", i % 95, i % 55); break;
		case 2: snprintf(key, sizeof(key), "s.%d.%d.q", i % 25, i % 4); break;
		default: snprintf(key, sizeof(key), "z.%d", i % 33); break;
		}
		expect_naive(t, "t", key);
	}
	tp_free(t);
}

static uint64_t rng_state;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static const char *random_words(struct topo *t, const char *const *alpha, unsigned n_alpha,
				unsigned max_words)
{
	char buf[128];
	unsigned n = rng() % (max_words + 1), i;
	size_t o = 0;

	buf[0] = '\0';
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "." : "",
				      alpha[rng() % n_alpha]);
	return tp_str(t, "%s", buf);
}

/* Thousands of random patterns over a tiny alphabet (so '#', '*' and empty
 * words collide a lot) against random keys: the trie must agree with the
 * naive matcher on every one. */
Test(route_topic, random_bindings_agree_with_naive, .timeout = 60)
{
	static const char *const pat_alpha[] = { "a", "b", "c", "", "*", "#", "#", "*" };
	static const char *const key_alpha[] = { "a", "b", "c", "" };
	unsigned round, i, checked = 0;

	for (round = 0; round < 12; round++) {
		struct topo *t = tp_new();

		rng_state = 0x9e3779b97f4a7c15ull * (round + 1);
		tp_x(t, "t", HBUS_X_TOPIC, NULL);
		for (i = 0; i < 40; i++)
			tp_q(t, tp_str(t, "q%02u", i));
		for (i = 0; i < 250; i++)
			tp_bind(t, "t", t->q[rng() % 40].name, random_words(t, pat_alpha, 8, 6));
		tp_compile(t);
		for (i = 0; i < 400; i++, checked++)
			expect_naive(t, "t", random_words(t, key_alpha, 4, 8));
		tp_free(t);
	}
	cr_assert_eq(checked, 4800);
}

/* Patterns with many '#' against long keys: exponential for a search that
 * re-expands nested '#' nodes for every split of the outer ones. */
Test(route_topic, pathological_hash_patterns, .timeout = 30)
{
	struct topo *t = tp_new();
	char key[256];
	int i, b;

	for (i = 0; i < 127; i++) {
		key[2 * i] = 'a';
		key[2 * i + 1] = '.';
	}
	key[254] = 'b';
	key[255] = '\0'; /* 127 "a" words and a "b" */
	tp_x(t, "t", HBUS_X_TOPIC, NULL);
	tp_q(t, "HASHES");
	tp_q(t, "NEVER");
	tp_bind(t, "t", "HASHES", "#.a.#.a.#.a.#.a.#.a.#.a.#.b");
	tp_bind(t, "t", "HASHES", "#.*.#.*.#.*.#.*.#.*.#.*.#.a.#");
	tp_bind(t, "t", "NEVER", "#.a.#.a.#.a.#.a.#.a.#.a.#.c");
	tp_bind(t, "t", "NEVER", "#.b.#.a");
	/* 256 distinct nested '#' nodes alive for the same key (within the memo). */
	for (i = 0; i < 256; i++) {
		char pat[64];
		size_t o = 0;
		for (b = 0; b < 8; b++)
			o += (size_t)snprintf(pat + o, sizeof(pat) - o, "%s.", (i >> b) & 1 ? "*" : "a");
		snprintf(pat + o, sizeof(pat) - o, "#.a.#.b");
		tp_q(t, tp_str(t, "c%03d", i));
		tp_bind(t, "t", t->q[t->nq - 1].name, tp_str(t, "%s", pat));
	}
	tp_compile(t);
	expect_naive(t, "t", key);
	expect_naive(t, "t", key + 2);
	expect_naive(t, "t", "a.a.a.a.a.a.a.a.a.a.b");
	expect_naive(t, "t", "a.a.a.a.a.a.a.a.a.b");
	cr_assert_eq(strlen(tp_route(t, "t", "a.a.a.a.a.a.a.a.a.a.b")), 256 * 5 - 1 + 7);
	tp_free(t);
}

/* More nested '#' nodes reached by one key than the memo holds: the extra
 * arrivals are re-expanded, and the result is still exact. */
Test(route_topic, memo_overflow_stays_correct, .timeout = 60)
{
	struct topo *t = tp_new();
	int i, b;

	tp_x(t, "t", HBUS_X_TOPIC, NULL);
	for (i = 0; i < 100; i++)
		tp_q(t, tp_str(t, "q%02d", i));
	for (i = 0; i < 2048; i++) {
		char pat[64];
		size_t o = 0;
		for (b = 0; b < 11; b++)
			o += (size_t)snprintf(pat + o, sizeof(pat) - o, "%s.", (i >> b) & 1 ? "*" : "a");
		snprintf(pat + o, sizeof(pat) - o, "#.a.#.%s", i % 3 ? "b" : "c");
		tp_bind(t, "t", t->q[i % 100].name, tp_str(t, "%s", pat));
	}
	tp_compile(t);
	expect_naive(t, "t", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.b");
	expect_naive(t, "t", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.c");
	expect_naive(t, "t", "a.a.a.a.a.a.a.a.a.a.a.a.b");
	expect_naive(t, "t", "a.a.a.a.a.a.a.a.a.a.a.b");
	tp_free(t);
}
