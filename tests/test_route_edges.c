/*
 * test_route_edges.c - the promises of docs/ROUTING.md at their edges:
 * a message header repeated under one name (any occurrence can match),
 * and the 256 exchanges one lookup may pass through (one more is -E2BIG,
 * never a cut-down result), along a chain and across a fan.
 */
#include <criterion/criterion.h>

#include "route_topo.h"

Test(route_edges, repeated_header_name_any_occurrence_matches)
{
	struct topo *t = tp_new();
	struct hbus_meta m;
	const char *tag_b[] = { "tag=b" }, *tag_b_env_prod[] = { "tag=b", "env=prod" };
	const char *tags_ab[] = { "tag=a", "tag=b" }, *tags_ba_env[] = { "tag=b", "env=prod", "tag=a" };
	const char *tags_ax[] = { "tag=a", "tag=x" };

	tp_x(t, "h", HBUS_X_HEADERS, NULL);
	tp_q(t, "ALL_B");
	tp_q(t, "ANY_B");
	tp_q(t, "ALL_B_PROD");
	tp_bindh(t, "h", "ALL_B", 1, 1, tag_b);
	tp_bindh(t, "h", "ANY_B", 0, 1, tag_b);
	tp_bindh(t, "h", "ALL_B_PROD", 1, 2, tag_b_env_prod);
	/* tag=b as the second of two "tag" headers, or the first. */
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 2, tags_ab)), "ALL_B,ANY_B");
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 3, tags_ba_env)),
			 "ALL_B,ALL_B_PROD,ANY_B");
	/* Repeating the name matches no value that is not there. */
	cr_assert_str_eq(tp_route_h(t, "h", "", tp_meta(&m, 2, tags_ax)), "");
	tp_free(t);
}

/* e0 -> e1 -> ... -> e(n-1) -> Q (fanout exchanges). */
static const char *chain(unsigned n)
{
	struct topo *t = tp_new();
	static char out[64];
	unsigned i;

	for (i = 0; i < n; i++)
		tp_x(t, tp_str(t, "e%u", i), HBUS_X_FANOUT, NULL);
	tp_q(t, "Q");
	for (i = 0; i + 1 < n; i++)
		tp_bindx(t, tp_str(t, "e%u", i), tp_str(t, "e%u", i + 1), "");
	tp_bind(t, tp_str(t, "e%u", n - 1), "Q", "");
	snprintf(out, sizeof(out), "%s", tp_route(t, "e0", "k"));
	tp_free(t);
	return out;
}

Test(route_edges, a_lookup_passes_through_at_most_256_exchanges)
{
	char e2big[16];

	snprintf(e2big, sizeof(e2big), "ERR%d", -E2BIG);
	cr_assert_str_eq(chain(255), "Q");
	cr_assert_str_eq(chain(256), "Q", "256 exchanges is the limit, not past it");
	cr_assert_str_eq(chain(257), e2big, "a 257th exchange must be refused, not ignored");
}

Test(route_edges, a_fan_out_to_more_than_256_exchanges_is_e2big)
{
	struct topo *t = tp_new();
	char e2big[16];
	unsigned i;

	snprintf(e2big, sizeof(e2big), "ERR%d", -E2BIG);
	tp_x(t, "root", HBUS_X_DIRECT, NULL);
	for (i = 0; i < 300; i++) {
		const char *x = tp_str(t, "x%u", i), *q = tp_str(t, "q%u", i);

		tp_x(t, x, HBUS_X_FANOUT, NULL);
		tp_q(t, q);
		tp_bind(t, x, q, "");
		/* key "few": 255 of them (with root, 256 exchanges); "all": 300 */
		if (i < 255)
			tp_bindx(t, "root", x, "few");
		tp_bindx(t, "root", x, "all");
	}
	const char *few = tp_route(t, "root", "few"), *p;
	unsigned names = 1;

	cr_assert_neq(strncmp(few, "ERR", 3), 0, "%s", few);
	for (p = few; (p = strchr(p, ',')) != NULL; p++)
		names++;
	cr_assert_eq(names, 255, "%u queues through 255 exchanges", names);
	cr_assert_str_eq(tp_route(t, "root", "all"), e2big);
	tp_free(t);
}
