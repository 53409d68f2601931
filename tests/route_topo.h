/*
 * route_topo.h - build a topology, compile it, route through it by name:
 * the helpers tests/test_route*.c share.  A route result is the sorted
 * list of queue names reached, "Q1,Q2", so assertions read like the
 * RabbitMQ tutorials they come from.
 */
#ifndef HBUS_ROUTE_TOPO_H
#define HBUS_ROUTE_TOPO_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

#define TP_X 320
#define TP_Q 2200
#define TP_B 8192
#define TP_H 1024

struct topo {
	struct hbus_rc_exchange x[TP_X];
	struct hbus_rc_queue q[TP_Q];
	struct hbus_rc_binding b[TP_B];
	struct hbus_rc_udpmap u[16];
	struct hbus_header h[TP_H];
	unsigned nx, nq, nb, nu, nh;
	char pool[1 << 20];
	size_t pool_used;
	void *table;
	size_t table_len;
	char out[64 * 1024];
};

static inline struct topo *tp_new(void)
{
	struct topo *t = calloc(1, sizeof(*t));
	cr_assert_not_null(t);
	return t;
}

static inline void tp_free(struct topo *t)
{
	free(t->table);
	free(t);
}

/* A copy of a formatted string that lives as long as the topology. */
static inline const char *tp_str(struct topo *t, const char *fmt, ...)
{
	char *s = t->pool + t->pool_used;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s, sizeof(t->pool) - t->pool_used, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < sizeof(t->pool) - t->pool_used);
	t->pool_used += (size_t)n + 1;
	return s;
}

static inline void tp_x(struct topo *t, const char *name, uint32_t type, const char *alt)
{
	cr_assert_lt(t->nx, TP_X);
	t->x[t->nx++] = (struct hbus_rc_exchange){ .name = name, .type = type, .alternate = alt };
}

/* qids are deliberately not indexes: 100, 103, 106, ... */
static inline uint32_t tp_q(struct topo *t, const char *name)
{
	cr_assert_lt(t->nq, TP_Q);
	t->q[t->nq] = (struct hbus_rc_queue){ .name = name, .qid = 100 + 3 * t->nq };
	return t->q[t->nq++].qid;
}

static inline struct hbus_rc_binding *tp_bind(struct topo *t, const char *src, const char *dest,
					      const char *key)
{
	cr_assert_lt(t->nb, TP_B);
	t->b[t->nb] = (struct hbus_rc_binding){ .source = src, .dest = dest, .key = key };
	return &t->b[t->nb++];
}

static inline void tp_bindx(struct topo *t, const char *src, const char *dest, const char *key)
{
	tp_bind(t, src, dest, key)->dest_is_exchange = 1;
}

/* Headers binding: pairs given as "name=value" strings. */
static inline void tp_bindh(struct topo *t, const char *src, const char *dest, int all,
			    unsigned n, const char *const *pairs)
{
	struct hbus_rc_binding *b = tp_bind(t, src, dest, "");
	unsigned i;

	cr_assert_leq(t->nh + n, TP_H);
	b->headers = &t->h[t->nh];
	b->header_count = (uint16_t)n;
	b->match_all = (uint8_t)all;
	for (i = 0; i < n; i++) {
		const char *eq = strchr(pairs[i], '=');
		struct hbus_header *h = &t->h[t->nh++];

		h->name = pairs[i];
		h->name_len = (uint8_t)(eq - pairs[i]);
		h->value = eq + 1;
		h->value_len = (uint16_t)strlen(eq + 1);
	}
}

/* Message headers, given as "name=value" strings (n at most 64). */
static inline struct hbus_meta *tp_meta(struct hbus_meta *m, unsigned n, const char *const *pairs)
{
	memset(m, 0, sizeof(*m));
	m->header_count = (uint16_t)n;
	for (unsigned i = 0; i < n; i++) {
		const char *eq = strchr(pairs[i], '=');
		m->headers[i].name = pairs[i];
		m->headers[i].name_len = (uint8_t)(eq - pairs[i]);
		m->headers[i].value = eq + 1;
		m->headers[i].value_len = (uint16_t)strlen(eq + 1);
	}
	return m;
}

static inline struct hbus_rc_input tp_input(const struct topo *t)
{
	return (struct hbus_rc_input){ t->x, t->nx, t->q, t->nq, t->b, t->nb, t->u, t->nu };
}

static inline int tp_try_compile(struct topo *t)
{
	struct hbus_rc_input in = tp_input(t);
	size_t need = 0;
	int rc = hbus_route_compile(&in, NULL, 0, &need);

	if (rc != -ENOSPC)
		return rc;
	free(t->table);
	t->table = aligned_alloc(64, (need + 63) / 64 * 64);
	cr_assert_not_null(t->table);
	rc = hbus_route_compile(&in, t->table, need, &t->table_len);
	cr_assert(rc != 0 || t->table_len == need);
	return rc;
}

static inline const struct hbus_rtable *tp_compile(struct topo *t)
{
	int rc = tp_try_compile(t);
	cr_assert_eq(rc, 0, "compile: %s", strerror(-rc));
	return t->table;
}

static inline const char *tp_qname(const struct topo *t, uint32_t qid)
{
	unsigned i;
	for (i = 0; i < t->nq; i++)
		if (t->q[i].qid == qid)
			return t->q[i].name;
	return "?";
}

static inline int tp_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Route through exchange xname: "Q1,Q2" (sorted), "" (unroutable), or
 * "ERR<code>".  Asserts the returned qids are distinct. */
static inline const char *tp_route_h(struct topo *t, const char *xname, const char *key,
				     const struct hbus_meta *m)
{
	static uint32_t qids[HBUS_ROUTE_MAX_QIDS];
	static const char *names[HBUS_ROUTE_MAX_QIDS];
	uint32_t xid;
	int n, i, j;
	size_t o = 0;

	if (!t->table)
		tp_compile(t);
	cr_assert_eq(hbus_route_exchange(t->table, xname, strlen(xname), &xid), 0, "no %s", xname);
	n = hbus_route_lookup(t->table, xid, key, strlen(key), m, qids, HBUS_ROUTE_MAX_QIDS);
	if (n < 0) {
		snprintf(t->out, sizeof(t->out), "ERR%d", n);
		return t->out;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			cr_assert_neq(qids[i], qids[j], "qid %u returned twice", qids[i]);
		names[i] = tp_qname(t, qids[i]);
	}
	qsort(names, (size_t)n, sizeof(*names), tp_cmp_str);
	t->out[0] = '\0';
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(t->out + o, sizeof(t->out) - o, "%s%s", i ? "," : "", names[i]);
	return t->out;
}

static inline const char *tp_route(struct topo *t, const char *xname, const char *key)
{
	return tp_route_h(t, xname, key, NULL);
}

#endif
