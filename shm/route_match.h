/*
 * route_match.h - lookup-side state shared by route.c and the topic matcher
 * (route_topic.c): the per-lookup context and the small sets that dedupe
 * queue ids, exchange ids and topic search states.
 *
 * A lookup may not allocate and must be reentrant, so every set lives in
 * the caller's stack frame.  A set is an insertion-ordered array searched
 * linearly while small (the common case: a message reaches a handful of
 * queues, and clearing a hash index would cost more than the scan); past
 * RT_SET_LINEAR entries it builds an open-addressing index once and uses
 * it from then on, so a fanout to a thousand queues stays linear.
 */
#ifndef HBUS_ROUTE_MATCH_H
#define HBUS_ROUTE_MATCH_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "route_layout.h"

#define RT_SET_LINEAR 16u
#define RT_SET_EMPTY  UINT32_MAX /* an empty index slot */

/* Exchanges one lookup may pass through (the start, e2e destinations and
 * alternates); past it the lookup fails with -E2BIG. */
#define RT_MAX_XIDS 256u

struct rt_set {
	uint32_t *items; /* insertion order: the caller's qids[], or a work list */
	uint32_t *slots; /* index into items[], slot_cap >= 2 * cap, built lazily */
	uint32_t n, cap, mask;
	int indexed;
};

static inline void rt_set_init(struct rt_set *s, uint32_t *items, uint32_t cap,
			       uint32_t *slots, uint32_t slot_cap)
{
	s->items = items;
	s->slots = slots;
	s->n = 0;
	s->cap = cap;
	s->mask = slot_cap - 1;
	s->indexed = 0;
}

static inline uint32_t rt_set_pos(const struct rt_set *s, uint32_t v)
{
	uint32_t h = v * 0x9e3779b1u;

	return (h ^ (h >> 15)) & s->mask;
}

static inline void rt_set_build_index(struct rt_set *s)
{
	uint32_t i, k;

	memset(s->slots, 0xff, ((size_t)s->mask + 1) * sizeof(uint32_t));
	for (k = 0; k < s->n; k++) {
		for (i = rt_set_pos(s, s->items[k]); s->slots[i] != RT_SET_EMPTY; i = (i + 1) & s->mask)
			;
		s->slots[i] = k;
	}
	s->indexed = 1;
}

/* Find or insert v; *at = its position in items[].  1 = added, 0 = was
 * present, -E2BIG = full (v not added). */
static inline int rt_set_put(struct rt_set *s, uint32_t v, uint32_t *at)
{
	uint32_t i;

	if (!s->indexed) {
		for (i = 0; i < s->n; i++)
			if (s->items[i] == v) {
				*at = i;
				return 0;
			}
		if (s->n == s->cap)
			return -E2BIG;
		*at = s->n;
		s->items[s->n++] = v;
		if (s->n == RT_SET_LINEAR && s->cap > RT_SET_LINEAR)
			rt_set_build_index(s);
		return 1;
	}
	for (i = rt_set_pos(s, v); s->slots[i] != RT_SET_EMPTY; i = (i + 1) & s->mask)
		if (s->items[s->slots[i]] == v) {
			*at = s->slots[i];
			return 0;
		}
	if (s->n == s->cap)
		return -E2BIG;
	s->slots[i] = s->n;
	*at = s->n;
	s->items[s->n++] = v;
	return 1;
}

static inline int rt_set_add(struct rt_set *s, uint32_t v)
{
	uint32_t at;

	return rt_set_put(s, v, &at);
}

/* One lookup in progress. */
struct rt_ctx {
	const void *base;               /* the table */
	struct rt_set queues;           /* distinct qids reached: the result */
	struct rt_set exchanges;        /* exchanges reached: visited set + work list */
	const struct hbus_meta *headers;
	int matched;                    /* the current exchange matched a binding */
};

/* A binding matched: add its destinations.  0, or -E2BIG when more
 * distinct queues (or exchanges) are reached than the lookup may return. */
static inline int rt_emit(struct rt_ctx *c, uint32_t dests_off)
{
	const struct rt_dests *d = rt_at(c->base, dests_off);
	uint32_t i, n = d->n_queues + d->n_exchanges;
	int rc;

	c->matched = 1;
	for (i = 0; i < d->n_queues; i++)
		if ((rc = rt_set_add(&c->queues, d->ids[i])) < 0)
			return rc;
	for (; i < n; i++)
		if ((rc = rt_set_add(&c->exchanges, d->ids[i])) < 0)
			return rc;
	return 0;
}

#endif
