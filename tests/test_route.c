/*
 * test_route.c - the compiled routing table: every exchange type, the
 * default exchange, alternate exchanges, exchange-to-exchange bindings,
 * dedupe, accessors and compile-time validation.  Topic matching has its
 * own suite (test_route_topic.c).
 */
#include <arpa/inet.h>
#include <pthread.h>

#include "route_topo.h"
#include "route_layout.h"

static const char *const Q3[] = { "Q1", "Q2", "Q3" };

Test(route, direct_routes_exact_key_only)
{
	struct topo *t = tp_new();

	tp_x(t, "d", HBUS_X_DIRECT, NULL);
	for (int i = 0; i < 3; i++)
		tp_q(t, Q3[i]);
	tp_bind(t, "d", "Q1", "a");
	tp_bind(t, "d", "Q2", "b");
	tp_bind(t, "d", "Q3", "a");
	tp_bind(t, "d", "Q3", "a"); /* same binding twice: still one delivery */
	tp_bind(t, "d", "Q2", "");
	cr_assert_str_eq(tp_route(t, "d", "a"), "Q1,Q3");
	cr_assert_str_eq(tp_route(t, "d", "b"), "Q2");
	cr_assert_str_eq(tp_route(t, "d", ""), "Q2");
	cr_assert_str_eq(tp_route(t, "d", "A"), "");
	cr_assert_str_eq(tp_route(t, "d", "a.b"), "");
	cr_assert_str_eq(tp_route(t, "d", "ab"), "");
	tp_free(t);
}

Test(route, direct_many_keys)
{
	struct topo *t = tp_new();
	int i;

	tp_x(t, "d", HBUS_X_DIRECT, NULL);
	for (i = 0; i < 2000; i++) {
		tp_q(t, tp_str(t, "q%04d", i));
		tp_bind(t, "d", t->q[i].name, tp_str(t, "key.%d", i));
	}
	tp_compile(t);
	for (i = 0; i < 2000; i += 37) {
		char want[16], key[16];
		snprintf(want, sizeof(want), "q%04d", i);
		snprintf(key, sizeof(key), "key.%d", i);
		cr_assert_str_eq(tp_route(t, "d", key), want);
	}
	cr_assert_str_eq(tp_route(t, "d", "key.2000"), "");
	tp_free(t);
}

Test(route, fanout_ignores_key)
{
	struct topo *t = tp_new();

	tp_x(t, "f", HBUS_X_FANOUT, NULL);
	tp_x(t, "empty", HBUS_X_FANOUT, NULL);
	for (int i = 0; i < 3; i++) {
		tp_q(t, Q3[i]);
		tp_bind(t, "f", Q3[i], i == 1 ? "ignored" : "");
	}
	cr_assert_str_eq(tp_route(t, "f", ""), "Q1,Q2,Q3");
	cr_assert_str_eq(tp_route(t, "f", "anything.at.all"), "Q1,Q2,Q3");
	cr_assert_str_eq(tp_route(t, "empty", "x"), "");
	tp_free(t);
}

Test(route, headers_all_and_any)
{
	struct topo *t = tp_new();
	struct hbus_meta m;
	const char *fmt_pdf[] = { "format=pdf", "type=report" };
	const char *x_args[] = { "x-match=all", "x-foo=bar" };
	const char *one[] = { "format=pdf" };

	tp_x(t, "h", HBUS_X_HEADERS, NULL);
	tp_q(t, "ALL");
	tp_q(t, "ANY");
	tp_q(t, "ALL0");
	tp_q(t, "ANY0");
	tp_q(t, "XALL");
	tp_bindh(t, "h", "ALL", 1, 2, fmt_pdf);
	tp_bindh(t, "h", "ANY", 0, 2, fmt_pdf);
	tp_bindh(t, "h", "ALL0", 1, 0, NULL);  /* all, no args: everything */
	tp_bindh(t, "h", "ANY0", 0, 0, NULL);  /* any, no args: nothing */
	tp_bindh(t, "h", "XALL", 1, 2, x_args); /* x- args are ignored: all of nothing */
	tp_compile(t);

	const char *both[] = { "type=report", "format=pdf", "extra=1" };
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 3, both)), "ALL,ALL0,ANY,XALL");
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 1, one)), "ALL0,ANY,XALL");
	const char *wrong_value[] = { "format=zip", "type=report" };
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 2, wrong_value)), "ALL0,ANY,XALL");
	const char *wrong_all[] = { "format=zip", "type=log" };
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 2, wrong_all)), "ALL0,XALL");
	/* Missing headers entirely: only the argument-less "all" bindings. */
	cr_assert_str_eq(tp_route_h(t, "h", "", NULL), "ALL0,XALL");
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 0, NULL)), "ALL0,XALL");
	/* A header whose name is a prefix of the bound one does not match. */
	const char *prefix[] = { "form=pdf", "format=pd" };
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 2, prefix)), "ALL0,XALL");
	tp_free(t);
}

Test(route, default_exchange_routes_by_queue_name)
{
	struct topo *t = tp_new();
	uint32_t xid = 99, type = 99;

	tp_x(t, "", HBUS_X_DIRECT, NULL); /* listing it is allowed */
	tp_q(t, "orders");
	tp_q(t, "orders.eu");
	tp_compile(t);
	cr_assert_eq(hbus_route_exchange(t->table, "", 0, &xid), 0);
	cr_assert_eq(hbus_route_exchange(t->table, NULL, 0, &xid), 0);
	cr_assert_eq(hbus_route_exchange_type(t->table, xid, &type), 0);
	cr_assert_eq(type, HBUS_X_DIRECT);
	cr_assert_str_eq(tp_route(t, "", "orders"), "orders");
	cr_assert_str_eq(tp_route(t, "", "orders.eu"), "orders.eu");
	cr_assert_str_eq(tp_route(t, "", "order"), "");
	cr_assert_str_eq(tp_route(t, "", ""), "");
	tp_free(t);
}

Test(route, alternate_exchange_chain)
{
	struct topo *t = tp_new();

	/* d -(unroutable)-> alt1 (direct, no match) -> alt2 (fanout) */
	tp_x(t, "d", HBUS_X_DIRECT, "alt1");
	tp_x(t, "alt1", HBUS_X_DIRECT, "alt2");
	tp_x(t, "alt2", HBUS_X_FANOUT, NULL);
	tp_q(t, "Q");
	tp_q(t, "A1");
	tp_q(t, "A2");
	tp_bind(t, "d", "Q", "k");
	tp_bind(t, "alt1", "A1", "k1");
	tp_bind(t, "alt2", "A2", "");
	cr_assert_str_eq(tp_route(t, "d", "k"), "Q");      /* routed: no alternate */
	cr_assert_str_eq(tp_route(t, "d", "k1"), "A1");    /* first alternate matches */
	cr_assert_str_eq(tp_route(t, "d", "other"), "A2"); /* the alternate's alternate */
	tp_free(t);
}

Test(route, alternate_cycles_terminate)
{
	struct topo *t = tp_new();

	tp_x(t, "a", HBUS_X_DIRECT, "b");
	tp_x(t, "b", HBUS_X_DIRECT, "a");
	tp_x(t, "self", HBUS_X_TOPIC, "self");
	tp_q(t, "QB");
	tp_bind(t, "b", "QB", "kb");
	cr_assert_str_eq(tp_route(t, "a", "nothing"), "");
	cr_assert_str_eq(tp_route(t, "a", "kb"), "QB");
	cr_assert_str_eq(tp_route(t, "self", "x"), "");
	tp_free(t);
}

/* RabbitMQ takes an exchange's alternate only when that exchange's own
 * bindings matched nothing; a match to an exchange that then routes
 * nowhere is still a match.  The dead end's own alternate is used. */
Test(route, alternate_is_per_exchange)
{
	struct topo *t = tp_new();

	tp_x(t, "front", HBUS_X_FANOUT, "front-ae");
	tp_x(t, "front-ae", HBUS_X_FANOUT, NULL);
	tp_x(t, "dead", HBUS_X_DIRECT, NULL);
	tp_x(t, "dead2", HBUS_X_DIRECT, "dead2-ae");
	tp_x(t, "dead2-ae", HBUS_X_FANOUT, NULL);
	tp_x(t, "front2", HBUS_X_FANOUT, "front-ae");
	tp_q(t, "AE");
	tp_q(t, "AE2");
	tp_bindx(t, "front", "dead", "");
	tp_bindx(t, "front2", "dead2", "");
	tp_bind(t, "front-ae", "AE", "");
	tp_bind(t, "dead2-ae", "AE2", "");
	cr_assert_str_eq(tp_route(t, "front", "k"), "");
	cr_assert_str_eq(tp_route(t, "front2", "k"), "AE2");
	tp_free(t);
}

Test(route, e2e_cycles_terminate_and_dedupe)
{
	struct topo *t = tp_new();

	tp_x(t, "a", HBUS_X_FANOUT, NULL);
	tp_x(t, "b", HBUS_X_TOPIC, NULL);
	tp_x(t, "c", HBUS_X_DIRECT, NULL);
	tp_q(t, "QA");
	tp_q(t, "QB");
	tp_q(t, "SHARED");
	tp_bindx(t, "a", "b", "");
	tp_bindx(t, "b", "a", "#");      /* a -> b -> a */
	tp_bindx(t, "b", "c", "x.*");
	tp_bindx(t, "c", "a", "x.y");    /* and a -> b -> c -> a */
	tp_bindx(t, "b", "b", "#");      /* self loop */
	tp_bind(t, "a", "QA", "");
	tp_bind(t, "a", "SHARED", "");
	tp_bind(t, "b", "QB", "x.#");
	tp_bind(t, "b", "SHARED", "#");
	tp_bind(t, "c", "SHARED", "x.y");
	cr_assert_str_eq(tp_route(t, "a", "x.y"), "QA,QB,SHARED");
	cr_assert_str_eq(tp_route(t, "b", "x.y"), "QA,QB,SHARED");
	cr_assert_str_eq(tp_route(t, "c", "x.y"), "QA,QB,SHARED");
	cr_assert_str_eq(tp_route(t, "c", "x.z"), "");
	cr_assert_str_eq(tp_route(t, "b", "z"), "QA,SHARED");
	tp_free(t);
}

Test(route, queue_reached_many_ways_is_reported_once)
{
	struct topo *t = tp_new();
	int i;

	tp_x(t, "top", HBUS_X_TOPIC, NULL);
	tp_x(t, "fan", HBUS_X_FANOUT, NULL);
	tp_q(t, "Q");
	tp_q(t, "R");
	tp_bind(t, "top", "Q", "a.b");
	tp_bind(t, "top", "Q", "a.*");
	tp_bind(t, "top", "Q", "#");
	tp_bind(t, "top", "Q", "a.#");
	tp_bind(t, "top", "R", "*.b");
	tp_bindx(t, "top", "fan", "#");
	/* Many exchanges all reaching Q: pushes the sets past their linear mode. */
	for (i = 0; i < 40; i++) {
		const char *name = tp_str(t, "x%d", i);
		tp_x(t, name, HBUS_X_FANOUT, NULL);
		tp_bindx(t, "fan", name, "");
		tp_bind(t, name, "Q", "");
		tp_bind(t, name, "R", "");
	}
	cr_assert_str_eq(tp_route(t, "top", "a.b"), "Q,R");
	cr_assert_str_eq(tp_route(t, "top", "zzz"), "Q,R");
	tp_free(t);
}

Test(route, fanout_to_a_thousand_queues)
{
	struct topo *t = tp_new();
	static uint32_t qids[HBUS_ROUTE_MAX_QIDS + 8], want[HBUS_ROUTE_MAX_QIDS + 1];
	static uint8_t seen[8192];
	uint32_t xid, qid_max = 0;
	int i, n;

	tp_x(t, "f", HBUS_X_FANOUT, NULL);
	tp_x(t, "big", HBUS_X_FANOUT, NULL);
	for (i = 0; i < (int)HBUS_ROUTE_MAX_QIDS + 1; i++) {
		const char *name = tp_str(t, "q%d", i);
		uint32_t qid = tp_q(t, name);
		tp_bind(t, "big", name, "");
		want[i] = qid;
		qid_max = qid > qid_max ? qid : qid_max;
		if (i < 1000) {
			tp_bind(t, "f", name, "");
			tp_bind(t, "f", name, "dup");
		}
	}
	cr_assert_lt(qid_max, sizeof(seen), "qids are small here: a bitmap of them");
	tp_compile(t);
	cr_assert_eq(hbus_route_exchange(t->table, "f", 1, &xid), 0);
	n = hbus_route_lookup(t->table, xid, "k", 1, NULL, qids, HBUS_ROUTE_MAX_QIDS);
	cr_assert_eq(n, 1000);
	/* Exactly the 1000 bound queues, each once (bound twice: one copy). */
	for (i = 0; i < n; i++) {
		cr_assert_leq(qids[i], qid_max, "qid %u was never declared", qids[i]);
		cr_assert_eq(seen[qids[i]]++, 0, "qid %u routed twice", qids[i]);
	}
	for (i = 0; i < (int)HBUS_ROUTE_MAX_QIDS + 1; i++)
		cr_assert_eq(seen[want[i]], i < 1000, "queue q%d (qid %u): routed %u times", i,
			     want[i], seen[want[i]]);
	/* More distinct queues than the caller can take: an error, not a cut. */
	cr_assert_eq(hbus_route_lookup(t->table, xid, "k", 1, NULL, qids, 999), -E2BIG);
	cr_assert_eq(hbus_route_exchange(t->table, "big", 3, &xid), 0);
	cr_assert_eq(hbus_route_lookup(t->table, xid, "k", 1, NULL, qids,
				       HBUS_ROUTE_MAX_QIDS + 8), -E2BIG);
	tp_free(t);
}

Test(route, bad_lookup_arguments)
{
	struct topo *t = tp_new();
	uint32_t qids[4], xid, type;
	char long_key[HBUS_NAME_MAX + 2];

	tp_x(t, "d", HBUS_X_DIRECT, NULL);
	tp_compile(t);
	cr_assert_eq(hbus_route_lookup(t->table, 2, "k", 1, NULL, qids, 4), -ENOENT);
	cr_assert_eq(hbus_route_lookup(t->table, HBUS_ROUTE_NONE, "k", 1, NULL, qids, 4), -ENOENT);
	cr_assert_eq(hbus_route_lookup(NULL, 1, "k", 1, NULL, qids, 4), -EINVAL);
	cr_assert_eq(hbus_route_lookup(t->table, 1, NULL, 3, NULL, qids, 4), -EINVAL);
	memset(long_key, 'k', sizeof(long_key));
	cr_assert_eq(hbus_route_lookup(t->table, 1, long_key, HBUS_NAME_MAX + 1, NULL, qids, 4),
		     -EINVAL);
	cr_assert_eq(hbus_route_lookup(t->table, 1, NULL, 0, NULL, qids, 4), 0);
	cr_assert_eq(hbus_route_exchange(t->table, "nope", 4, &xid), -ENOENT);
	cr_assert_eq(hbus_route_exchange(t->table, long_key, sizeof(long_key), &xid), -ENOENT);
	cr_assert_eq(hbus_route_exchange_type(t->table, 7, &type), -ENOENT);
	tp_free(t);
}

/* Exchange names by id: every exchange, the default one, a name of the
 * maximum length; unknown ids and entries pointing outside the table are
 * refused, not read. */
Test(route, exchange_name_by_id)
{
	struct topo *t = tp_new();
	char longest[HBUS_NAME_MAX + 1];
	const char *names[] = { "direct.x", "f", longest };
	struct rt_exchange *xs;
	struct rt_table_hdr *h;
	const char *name;
	uint32_t xid;
	size_t len;

	memset(longest, 'n', HBUS_NAME_MAX);
	longest[HBUS_NAME_MAX] = '\0';
	for (unsigned i = 0; i < 3; i++)
		tp_x(t, names[i], i == 1 ? HBUS_X_FANOUT : HBUS_X_DIRECT, NULL);
	tp_compile(t);
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(hbus_route_exchange(t->table, names[i], strlen(names[i]), &xid), 0);
		cr_assert_eq(hbus_route_exchange_name(t->table, xid, &name, &len), 0);
		cr_assert_eq(len, strlen(names[i]));
		cr_assert_str_eq(name, names[i], "NUL-terminated view of the name");
	}
	cr_assert_eq(hbus_route_exchange_name(t->table, 0, &name, &len), 0);
	cr_assert_eq(len, 0);
	cr_assert_str_eq(name, "", "xid 0 is the default exchange");
	cr_assert_eq(hbus_route_exchange_name(t->table, 4, &name, &len), -ENOENT);
	cr_assert_eq(hbus_route_exchange_name(t->table, HBUS_ROUTE_NONE, &name, &len), -ENOENT);
	cr_assert_eq(hbus_route_exchange_name(NULL, 1, &name, &len), -EINVAL);
	cr_assert_eq(hbus_route_exchange_name(t->table, 1, NULL, &len), -EINVAL);
	cr_assert_eq(hbus_route_exchange_name(t->table, 1, &name, NULL), -EINVAL);

	/* A damaged entry (white box): name past the end, name_off into the
	 * header, length past the limit, a name without its NUL. */
	h = (struct rt_table_hdr *)t->table;
	xs = (struct rt_exchange *)((char *)t->table + h->exchanges_off);
	cr_assert_eq(hbus_route_exchange(t->table, "f", 1, &xid), 0);
	xs[xid].name_off = (uint32_t)h->size - 1; /* its NUL would be past the end */
	cr_assert_eq(hbus_route_exchange_name(t->table, xid, &name, &len), -EPROTO);
	xs[xid].name_off = 0;
	xs[xid].name_len = 0;
	cr_assert_eq(hbus_route_exchange_name(t->table, xid, &name, &len), -EPROTO);
	cr_assert_eq(hbus_route_exchange(t->table, longest, HBUS_NAME_MAX, &xid), 0);
	xs[xid].name_len = HBUS_NAME_MAX + 1;
	cr_assert_eq(hbus_route_exchange_name(t->table, xid, &name, &len), -EPROTO);
	xs[xid].name_len = 3; /* "nnn", then more n's: no NUL */
	cr_assert_eq(hbus_route_exchange_name(t->table, xid, &name, &len), -EPROTO);
	tp_free(t);
}

Test(route, queue_info_and_qid_limit)
{
	struct topo *t = tp_new();
	struct hbus_route_queue_info qi;
	uint32_t dlx;

	tp_x(t, "dlx", HBUS_X_FANOUT, NULL);
	tp_q(t, "plain");
	tp_q(t, "dead");
	tp_q(t, "keyed");
	t->q[1].dead_letter_exchange = "dlx";
	t->q[2].dead_letter_exchange = "";
	t->q[2].dead_letter_key = "parking";
	tp_compile(t);
	cr_assert_eq(hbus_route_qid_limit(t->table), 100 + 3 * 2 + 1);
	cr_assert_eq(hbus_route_queue_info(t->table, 100, &qi), 0);
	cr_assert_str_eq(qi.name, "plain");
	cr_assert_eq(qi.dlx_xid, HBUS_ROUTE_NONE);
	cr_assert_null(qi.dlx_key);
	cr_assert_eq(hbus_route_queue_info(t->table, 103, &qi), 0);
	cr_assert_eq(hbus_route_exchange(t->table, "dlx", 3, &dlx), 0);
	cr_assert_eq(qi.dlx_xid, dlx);
	cr_assert_null(qi.dlx_key);
	cr_assert_eq(hbus_route_queue_info(t->table, 106, &qi), 0);
	cr_assert_eq(qi.dlx_xid, 0); /* the default exchange */
	cr_assert_eq(qi.dlx_key_len, 7);
	cr_assert_eq(memcmp(qi.dlx_key, "parking", 7), 0);
	cr_assert_eq(hbus_route_queue_info(t->table, 101, &qi), -ENOENT);
	cr_assert_eq(hbus_route_queue_info(t->table, 0, &qi), -ENOENT);
	tp_free(t);

	t = tp_new();
	tp_compile(t);
	cr_assert_eq(hbus_route_qid_limit(t->table), 0);
	tp_free(t);
}

static uint32_t ip(int a, int b, int c, int d)
{
	return htonl((uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | (uint32_t)d);
}

Test(route, udp_maps_and_multicast_groups)
{
	struct topo *t = tp_new();
	uint32_t xid, md, groups[8];
	const char *key;
	size_t key_len;

	tp_x(t, "md", HBUS_X_TOPIC, NULL);
	t->u[t->nu++] = (struct hbus_rc_udpmap){ ip(239, 1, 1, 1), 5000, "md", "feed.a" };
	t->u[t->nu++] = (struct hbus_rc_udpmap){ ip(239, 1, 1, 1), 5001, "md", "feed.b" };
	t->u[t->nu++] = (struct hbus_rc_udpmap){ ip(10, 0, 0, 1), 5000, "", "direct-q" };
	t->u[t->nu++] = (struct hbus_rc_udpmap){ ip(224, 0, 0, 9), 7, "md", NULL };
	tp_compile(t);
	cr_assert_eq(hbus_route_exchange(t->table, "md", 2, &md), 0);
	cr_assert_eq(hbus_route_udpmap(t->table, ip(239, 1, 1, 1), 5001, &xid, &key, &key_len), 0);
	cr_assert_eq(xid, md);
	cr_assert_eq(key_len, 6);
	cr_assert_str_eq(key, "feed.b");
	cr_assert_eq(hbus_route_udpmap(t->table, ip(10, 0, 0, 1), 5000, &xid, &key, &key_len), 0);
	cr_assert_eq(xid, 0);
	cr_assert_str_eq(key, "direct-q");
	cr_assert_eq(hbus_route_udpmap(t->table, ip(224, 0, 0, 9), 7, &xid, &key, &key_len), 0);
	cr_assert_eq(key_len, 0);
	cr_assert_eq(hbus_route_udpmap(t->table, ip(10, 0, 0, 1), 5001, &xid, &key, &key_len), -ENOENT);
	cr_assert_eq(hbus_route_udpmap(t->table, ip(10, 0, 0, 2), 5000, &xid, &key, &key_len), -ENOENT);
	/* Two distinct groups (239.1.1.1 is mapped twice); unicast excluded. */
	cr_assert_eq(hbus_route_mcast_groups(t->table, groups, 8), 2);
	cr_assert(groups[0] != groups[1]);
	cr_assert(groups[0] == ip(239, 1, 1, 1) || groups[1] == ip(239, 1, 1, 1));
	cr_assert(groups[0] == ip(224, 0, 0, 9) || groups[1] == ip(224, 0, 0, 9));
	cr_assert_eq(hbus_route_mcast_groups(t->table, groups, 1), 1);
	/* The same ip:port mapped twice is refused. */
	t->u[t->nu++] = (struct hbus_rc_udpmap){ ip(10, 0, 0, 1), 5000, "md", "x" };
	cr_assert_eq(tp_try_compile(t), -EINVAL);
	tp_free(t);
}

/* Compile must refuse bad input with -EINVAL and write nothing. */
static void expect_einval(struct topo *t, const char *why)
{
	struct hbus_rc_input in = tp_input(t);
	static uint64_t buf[1 << 14];
	size_t used = 12345;
	unsigned i;

	memset(buf, 0xa5, sizeof(buf));
	cr_assert_eq(hbus_route_compile(&in, buf, sizeof(buf), &used), -EINVAL, "%s", why);
	cr_assert_eq(used, 0, "%s", why);
	for (i = 0; i < sizeof(buf) / sizeof(buf[0]); i++)
		cr_assert_eq(buf[i], 0xa5a5a5a5a5a5a5a5ull, "%s: output written", why);
}

static struct topo *valid_topo(void)
{
	struct topo *t = tp_new();

	tp_x(t, "x", HBUS_X_TOPIC, NULL);
	tp_x(t, "y", HBUS_X_DIRECT, NULL);
	tp_q(t, "q");
	tp_bind(t, "x", "q", "a.#");
	tp_bindx(t, "x", "y", "b");
	cr_assert_eq(tp_try_compile(t), 0);
	return t;
}

#define BAD_CASE(why, ...) \
	do { struct topo *t = valid_topo(); __VA_ARGS__; expect_einval(t, why); tp_free(t); } while (0)

Test(route, compile_refuses_bad_input)
{
	static char long_name[HBUS_NAME_MAX + 2];
	memset(long_name, 'n', HBUS_NAME_MAX + 1);

	BAD_CASE("unknown source", t->b[0].source = "nope");
	BAD_CASE("unknown queue", t->b[0].dest = "nope");
	BAD_CASE("unknown dest exchange", t->b[1].dest = "nope");
	BAD_CASE("queue named as exchange", t->b[1].dest = "q");
	BAD_CASE("bind from default", t->b[0].source = "");
	BAD_CASE("bind to default", t->b[1].dest = "");
	BAD_CASE("duplicate exchange", tp_x(t, "x", HBUS_X_FANOUT, NULL));
	BAD_CASE("duplicate queue", t->q[t->nq++] = (struct hbus_rc_queue){ .name = "q", .qid = 7 });
	BAD_CASE("duplicate qid", t->q[t->nq++] = (struct hbus_rc_queue){ .name = "q2", .qid = 100 });
	BAD_CASE("qid NONE", t->q[0].qid = HBUS_ROUTE_NONE);
	BAD_CASE("bad type", t->x[0].type = 4);
	BAD_CASE("unknown alternate", t->x[0].alternate = "nope");
	BAD_CASE("unknown dlx", t->q[0].dead_letter_exchange = "nope");
	BAD_CASE("default redefined", tp_x(t, "", HBUS_X_FANOUT, NULL));
	BAD_CASE("default with alternate", tp_x(t, "", HBUS_X_DIRECT, "x"));
	BAD_CASE("NULL exchange name", t->x[1].name = NULL);
	BAD_CASE("NULL queue name", t->q[0].name = NULL);
	BAD_CASE("long exchange name", t->x[1].name = long_name);
	BAD_CASE("long queue name", t->q[0].name = long_name);
	BAD_CASE("long key", t->b[0].key = long_name);
	BAD_CASE("long dlx key", t->q[0].dead_letter_key = long_name);
	BAD_CASE("too many headers",
		 t->b[0].headers = t->h; t->b[0].header_count = HBUS_HEADERS_MAX + 1);
	BAD_CASE("NULL headers", t->b[0].header_count = 1);
	BAD_CASE("unknown udp exchange",
		 t->u[t->nu++] = (struct hbus_rc_udpmap){ 1, 2, "nope", "k" });

	struct hbus_rc_input in = { 0 };
	size_t used;
	uint64_t buf[64];
	cr_assert_eq(hbus_route_compile(NULL, buf, sizeof(buf), &used), -EINVAL);
	cr_assert_eq(hbus_route_compile(&in, buf, sizeof(buf), NULL), -EINVAL);
	cr_assert_eq(hbus_route_compile(&in, (char *)buf + 4, 64, &used), -EINVAL);
	in.n_queues = 1;
	cr_assert_eq(hbus_route_compile(&in, buf, sizeof(buf), &used), -EINVAL);
	in = (struct hbus_rc_input){ .exchanges = (void *)buf, .n_exchanges = UINT32_MAX };
	cr_assert_eq(hbus_route_compile(&in, buf, sizeof(buf), &used), -EFBIG);
}

Test(route, compile_reports_size_on_enospc)
{
	struct topo *t = valid_topo();
	struct hbus_rc_input in = tp_input(t);
	size_t need = 0, used = 0;
	uint8_t *buf;

	cr_assert_eq(hbus_route_compile(&in, NULL, 0, &need), -ENOSPC);
	cr_assert_eq(need, t->table_len);
	cr_assert_eq(need % 8, 0);
	buf = aligned_alloc(8, need + 64);
	memset(buf, 0x5a, need + 64);
	cr_assert_eq(hbus_route_compile(&in, buf, need - 8, &used), -ENOSPC);
	cr_assert_eq(used, need);
	for (size_t i = 0; i < need + 64; i++)
		cr_assert_eq(buf[i], 0x5a, "byte %zu written on -ENOSPC", i);
	cr_assert_eq(hbus_route_compile(&in, buf, need, &used), 0);
	cr_assert_eq(used, need);
	/* Same input, same bytes: the table is a pure function of it. */
	cr_assert_eq(memcmp(buf, t->table, need), 0);
	cr_assert_eq(buf[need], 0x5a);
	free(buf);
	tp_free(t);
}

/* The table is position independent: a copy elsewhere routes the same. */
Test(route, table_is_position_independent)
{
	struct topo *t = valid_topo();
	uint64_t *copy = aligned_alloc(64, (t->table_len + 63) / 64 * 64);
	uint32_t qids[4], xid;

	memcpy(copy, t->table, t->table_len);
	memset(t->table, 0, t->table_len);
	free(t->table);
	t->table = NULL;
	cr_assert_eq(hbus_route_exchange((const void *)copy, "x", 1, &xid), 0);
	cr_assert_eq(hbus_route_lookup((const void *)copy, xid, "a.z", 3, NULL, qids, 4), 1);
	cr_assert_eq(qids[0], 100);
	free(copy);
	tp_free(t);
}

struct par_arg {
	const struct hbus_rtable *t;
	uint32_t xid;
	uint64_t sum;
};

static void *par_lookups(void *p)
{
	struct par_arg *a = p;
	uint32_t qids[HBUS_ROUTE_MAX_QIDS];
	char key[32];

	for (int i = 0; i < 20000; i++) {
		int n = snprintf(key, sizeof(key), "k.%d.%d", i % 50, i % 7);
		int got = hbus_route_lookup(a->t, a->xid, key, (size_t)n, NULL, qids, HBUS_ROUTE_MAX_QIDS);
		for (int j = 0; j < got; j++)
			a->sum += qids[j] * (uint64_t)(i + 1);
	}
	return NULL;
}

/* Lookups share nothing: threads at once get what one thread gets. */
Test(route, concurrent_lookups_agree)
{
	struct topo *t = tp_new();
	struct par_arg a[4];
	pthread_t th[4];

	tp_x(t, "t", HBUS_X_TOPIC, NULL);
	for (int i = 0; i < 60; i++) {
		const char *name = tp_str(t, "q%d", i);
		tp_q(t, name);
		tp_bind(t, "t", name, tp_str(t, "k.%d.#", i % 50));
		tp_bind(t, "t", name, tp_str(t, "*.*.%d", i % 7));
	}
	tp_compile(t);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct par_arg){ .t = t->table };
		cr_assert_eq(hbus_route_exchange(t->table, "t", 1, &a[i].xid), 0);
	}
	par_lookups(&a[0]);
	for (int i = 1; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, par_lookups, &a[i]), 0);
	for (int i = 1; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(a[i].sum, a[0].sum);
	}
	cr_assert_neq(a[0].sum, 0);
	tp_free(t);
}
