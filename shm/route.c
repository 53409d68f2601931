/*
 * route.c - the routing lookup every reader runs (hbus-dataplane lcores,
 * local publishers) and the table's small accessors.
 *
 * hbus_route_lookup walks exchanges breadth-first: the exchanges set is
 * both the visited set (so a->b->a terminates) and the work list.  Each
 * exchange adds the destinations of the bindings that match; an exchange
 * whose bindings match nothing hands the message to its alternate
 * exchange, as RabbitMQ does (rabbit_exchange:route/2): the alternate is
 * taken per exchange, when that exchange's own bindings produced no
 * destination at all, and it is itself subject to the visited set, so
 * alternate chains and loops terminate.  Queues reached twice are
 * reported once.
 *
 * Nothing here allocates, blocks or calls the kernel; all state is on the
 * caller's stack (about 40 KiB at most, most of it never touched), so any
 * number of threads may look up in one table at once.
 */
#include "route_match.h"
#include "route_topic.h"

#include <errno.h>
#include <string.h>

static const struct rt_table_hdr *hdr_of(const struct hbus_rtable *t)
{
	return (const struct rt_table_hdr *)(const void *)t;
}

static int section_ok(const struct rt_table_hdr *h, uint32_t off, uint64_t n, size_t elem)
{
	return off >= sizeof(*h) && (off & (RT_ALIGN - 1)) == 0 && off + n * elem <= h->size;
}

int rt_table_check(const void *table, size_t len)
{
	const struct rt_table_hdr *h = table;

	if (!table || len < sizeof(*h) || ((uintptr_t)table & (RT_ALIGN - 1)))
		return -EPROTO;
	if (h->magic != RT_MAGIC)
		return -EPROTO;
	if (h->version != RT_VERSION)
		return -EPROTONOSUPPORT;
	/* The sections a reader indexes without a bound must lie inside. */
	if (h->size != len || h->n_exchanges == 0 ||
	    !section_ok(h, h->exchanges_off, h->n_exchanges, sizeof(struct rt_exchange)) ||
	    !section_ok(h, h->xdir_off, (uint64_t)h->xdir_mask + 1, sizeof(struct rt_slot)) ||
	    !section_ok(h, h->queues_off, h->n_queues, sizeof(struct rt_queue)) ||
	    !section_ok(h, h->qdir_off, (uint64_t)h->qdir_mask + 1, sizeof(struct rt_slot)) ||
	    !section_ok(h, h->udp_off, (uint64_t)h->udp_mask + 1, sizeof(struct rt_udp_slot)) ||
	    !section_ok(h, h->mcast_off, h->n_mcast, sizeof(uint32_t)))
		return -EPROTO;
	return 0;
}

static const struct rt_exchange *exchange_at(const struct rt_table_hdr *h, uint32_t xid)
{
	return (const struct rt_exchange *)rt_at(h, h->exchanges_off) + xid;
}

static int bytes_eq(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/* Does the message carry header name = value? */
static int has_header(const void *base, const struct rt_hpair *p, const struct hbus_meta *m)
{
	unsigned i, n = m ? m->header_count : 0;

	if (n > HBUS_HEADERS_MAX)
		n = HBUS_HEADERS_MAX;
	for (i = 0; i < n; i++) {
		const struct hbus_header *h = &m->headers[i];

		if (h->name_len == p->name_len && h->value_len == p->value_len &&
		    bytes_eq(h->name, rt_at(base, p->name_off), p->name_len) &&
		    bytes_eq(h->value, rt_at(base, p->value_off), p->value_len))
			return 1;
	}
	return 0;
}

/* x-match all: every pair present (so no pairs matches everything);
 * any: some pair present (so no pairs matches nothing) -- as RabbitMQ. */
static int headers_match(const void *base, const struct rt_hbind *b, const struct hbus_meta *m)
{
	const struct rt_hpair *p = rt_at(base, b->pairs_off);
	uint32_t i;

	for (i = 0; i < b->n_pairs; i++)
		if (has_header(base, &p[i], m) != (int)b->match_all)
			return !b->match_all;
	return (int)b->match_all;
}

static int route_default(struct rt_ctx *c, const char *key, size_t len)
{
	const struct rt_table_hdr *h = c->base;
	const struct rt_slot *s;
	struct rt_key k;

	rt_key_init(&k, key, len);
	s = rt_slot_find(h, rt_at(h, h->qdir_off), h->qdir_mask, &k);
	if (!s)
		return 0;
	c->matched = 1;
	return rt_set_add(&c->queues, s->id) < 0 ? -E2BIG : 0;
}

/* Add the destinations exchange xid's bindings give this message. */
static int route_one(struct rt_ctx *c, uint32_t xid, const struct rt_exchange *x, const char *key,
		     size_t len)
{
	const struct rt_slot *s;
	const struct rt_hbind *hb;
	struct rt_key k;
	uint32_t i;
	int rc;

	if (xid == 0)
		return route_default(c, key, len);
	if (x->data_off == 0)
		return 0;
	switch (x->type) {
	case HBUS_X_DIRECT:
		rt_key_init(&k, key, len);
		s = rt_slot_find(c->base, rt_at(c->base, x->data_off), x->data_n, &k);
		return s ? rt_emit(c, s->id) : 0;
	case HBUS_X_FANOUT:
		return rt_emit(c, x->data_off);
	case HBUS_X_TOPIC:
		return rt_topic_match(c, x, key, len);
	case HBUS_X_HEADERS:
		hb = rt_at(c->base, x->data_off);
		for (i = 0; i < x->data_n; i++)
			if (headers_match(c->base, &hb[i], c->headers) &&
			    (rc = rt_emit(c, hb[i].dests_off)) < 0)
				return rc;
		return 0;
	default:
		return 0;
	}
}

int hbus_route_lookup(const struct hbus_rtable *t, uint32_t xid, const char *key, size_t key_len,
		      const struct hbus_meta *headers, uint32_t *qids, unsigned max)
{
	const struct rt_table_hdr *h = hdr_of(t);
	uint32_t qslots[2 * HBUS_ROUTE_MAX_QIDS];
	uint32_t xitems[RT_MAX_XIDS], xslots[2 * RT_MAX_XIDS];
	struct rt_ctx c;
	uint32_t w;
	int rc;

	if (!t || (!key && key_len) || (!qids && max) || key_len > HBUS_NAME_MAX)
		return -EINVAL;
	if (xid >= h->n_exchanges)
		return -ENOENT;
	if (!key)
		key = "";
	if (max > HBUS_ROUTE_MAX_QIDS)
		max = HBUS_ROUTE_MAX_QIDS;
	c.base = h;
	c.headers = headers;
	rt_set_init(&c.queues, qids, max, qslots, 2 * HBUS_ROUTE_MAX_QIDS);
	rt_set_init(&c.exchanges, xitems, RT_MAX_XIDS, xslots, 2 * RT_MAX_XIDS);
	rt_set_add(&c.exchanges, xid);
	/* The set grows while we walk it: that is the breadth-first work list. */
	for (w = 0; w < c.exchanges.n; w++) {
		uint32_t cur = c.exchanges.items[w];
		const struct rt_exchange *x = exchange_at(h, cur);

		c.matched = 0;
		if ((rc = route_one(&c, cur, x, key, key_len)) < 0)
			return rc;
		if (!c.matched && x->alternate != HBUS_ROUTE_NONE &&
		    (rc = rt_set_add(&c.exchanges, x->alternate)) < 0)
			return rc;
	}
	return (int)c.queues.n;
}

/* ------------------------------------------------------------ accessors */

int hbus_route_exchange(const struct hbus_rtable *t, const char *name, size_t len, uint32_t *xid)
{
	const struct rt_table_hdr *h = hdr_of(t);
	const struct rt_slot *s;
	struct rt_key k;

	if (!t || !xid || (!name && len))
		return -EINVAL;
	if (len > HBUS_NAME_MAX)
		return -ENOENT;
	rt_key_init(&k, name ? name : "", len);
	s = rt_slot_find(h, rt_at(h, h->xdir_off), h->xdir_mask, &k);
	if (!s)
		return -ENOENT;
	*xid = s->id;
	return 0;
}

int hbus_route_exchange_type(const struct hbus_rtable *t, uint32_t xid, uint32_t *type)
{
	const struct rt_table_hdr *h = hdr_of(t);

	if (!t || !type)
		return -EINVAL;
	if (xid >= h->n_exchanges)
		return -ENOENT;
	*type = exchange_at(h, xid)->type;
	return 0;
}

int hbus_route_exchange_name(const struct hbus_rtable *t, uint32_t xid, const char **name,
			     size_t *len)
{
	const struct rt_table_hdr *h = hdr_of(t);
	const struct rt_exchange *x;
	const char *s;

	if (!t || !name || !len)
		return -EINVAL;
	if (xid >= h->n_exchanges)
		return -ENOENT;
	/* rt_table_check vouched for the exchanges section, not for the
	 * strings it points at: the name and its NUL must lie inside. */
	x = exchange_at(h, xid);
	if (x->name_len > HBUS_NAME_MAX || x->name_off < sizeof(*h) ||
	    (uint64_t)x->name_off + x->name_len >= h->size)
		return -EPROTO;
	s = rt_at(h, x->name_off);
	if (s[x->name_len] != '\0')
		return -EPROTO;
	*name = s;
	*len = x->name_len;
	return 0;
}

int hbus_route_queue_info(const struct hbus_rtable *t, uint32_t qid, struct hbus_route_queue_info *qi)
{
	const struct rt_table_hdr *h = hdr_of(t);
	const struct rt_queue *qs, *q;
	uint32_t lo = 0, hi;

	if (!t || !qi)
		return -EINVAL;
	qs = rt_at(h, h->queues_off);
	hi = h->n_queues;
	while (lo < hi) { /* queues are sorted by qid */
		uint32_t mid = lo + (hi - lo) / 2;

		if (qs[mid].qid < qid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == h->n_queues || qs[lo].qid != qid)
		return -ENOENT;
	q = &qs[lo];
	qi->name = rt_at(h, q->name_off);
	qi->dlx_xid = q->dlx_xid;
	qi->dlx_key = q->dlx_key_off ? rt_at(h, q->dlx_key_off) : NULL;
	qi->dlx_key_len = q->dlx_key_off ? q->dlx_key_len : 0;
	return 0;
}

uint32_t hbus_route_qid_limit(const struct hbus_rtable *t)
{
	return t ? hdr_of(t)->qid_limit : 0;
}

int hbus_route_udpmap(const struct hbus_rtable *t, uint32_t ip_be, uint16_t port, uint32_t *xid,
		      const char **key, size_t *key_len)
{
	const struct rt_table_hdr *h = hdr_of(t);
	const struct rt_udp_slot *slots;
	uint32_t i;

	if (!t || !xid || !key || !key_len)
		return -EINVAL;
	slots = rt_at(h, h->udp_off);
	for (i = rt_udp_pos(ip_be, port, h->udp_mask); slots[i].used; i = (i + 1) & h->udp_mask) {
		if (slots[i].ip_be == ip_be && slots[i].port == port) {
			*xid = slots[i].xid;
			*key = rt_at(h, slots[i].key_off);
			*key_len = slots[i].key_len;
			return 0;
		}
	}
	return -ENOENT;
}

unsigned hbus_route_mcast_groups(const struct hbus_rtable *t, uint32_t *groups, unsigned max)
{
	const struct rt_table_hdr *h = hdr_of(t);
	unsigned n;

	if (!t || !groups)
		return 0;
	n = h->n_mcast < max ? h->n_mcast : max;
	memcpy(groups, rt_at(h, h->mcast_off), n * sizeof(uint32_t));
	return n;
}
