/*
 * route_compile.c - hbus_route_compile: the topology in, one immutable
 * position-independent table out (layout: route_layout.h).
 *
 * Everything is validated and assembled in a private buffer first; the
 * caller's buffer is written only once the whole table exists and fits.
 * So an error (-EINVAL, -ENOSPC, ...) never leaves partial output behind,
 * and -ENOSPC can report the exact size needed.
 */
#include "route_build.h"
#include "route_topic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------ compile-time name maps */

struct cnames {
	const char **s;
	uint32_t *len;
	uint32_t *slot; /* index + 1, 0 = empty */
	uint32_t mask, n;
};

static int cn_init(struct cnames *m, unsigned cap)
{
	uint32_t slots = rt_slot_cap(cap);

	m->s = calloc(cap + 1, sizeof(*m->s));
	m->len = calloc(cap + 1, sizeof(*m->len));
	m->slot = calloc(slots, sizeof(*m->slot));
	m->mask = slots - 1;
	m->n = 0;
	return m->s && m->len && m->slot ? 0 : -ENOMEM;
}

static void cn_free(struct cnames *m)
{
	free(m->s);
	free(m->len);
	free(m->slot);
}

/* The slot where s is, or where it would go. */
static uint32_t *cn_slot(const struct cnames *m, const char *s, uint32_t len)
{
	uint32_t i = rt_hash(s, len) & m->mask, k;

	for (; (k = m->slot[i]) != 0; i = (i + 1) & m->mask)
		if (m->len[k - 1] == len && memcmp(m->s[k - 1], s, len) == 0)
			break;
	return &m->slot[i];
}

static int cn_find(const struct cnames *m, const char *s, uint32_t len)
{
	return (int)*cn_slot(m, s, len) - 1;
}

/* Index of the new name, or -EINVAL when it is already there. */
static int cn_add(struct cnames *m, const char *s, uint32_t len)
{
	uint32_t *slot = cn_slot(m, s, len);

	if (*slot)
		return -EINVAL;
	m->s[m->n] = s;
	m->len[m->n] = len;
	*slot = ++m->n;
	return (int)m->n - 1;
}

/* A name, key or value from the input: at most HBUS_NAME_MAX bytes. */
static int str_len(const char *s, uint32_t *len)
{
	size_t n;

	if (!s)
		return -EINVAL;
	n = strnlen(s, HBUS_NAME_MAX + 1);
	if (n > HBUS_NAME_MAX)
		return -EINVAL;
	*len = (uint32_t)n;
	return 0;
}

/* --------------------------------------------------------------- state */

struct compiler {
	const struct hbus_rc_input *in;
	struct cnames xn;          /* xid -> name; xid 0 is "" */
	struct cnames qn;          /* index into in->queues */
	uint32_t *xtype, *xalt;
	struct rt_cbind *binds;    /* sorted by source xid */
	struct rt_buf b;
};

static int resolve_exchanges(struct compiler *c)
{
	const struct hbus_rc_input *in = c->in;
	uint32_t len, i;
	int rc;

	c->xtype = calloc(in->n_exchanges + 1, sizeof(*c->xtype));
	c->xalt = calloc(in->n_exchanges + 1, sizeof(*c->xalt));
	if (!c->xtype || !c->xalt || cn_init(&c->xn, in->n_exchanges + 1))
		return -ENOMEM;
	cn_add(&c->xn, "", 0);
	c->xtype[0] = HBUS_X_DIRECT;
	c->xalt[0] = HBUS_ROUTE_NONE;
	for (i = 0; i < in->n_exchanges; i++) {
		const struct hbus_rc_exchange *x = &in->exchanges[i];

		if ((rc = str_len(x->name, &len)) != 0 || x->type > HBUS_X_HEADERS)
			return -EINVAL;
		if (len == 0) {
			/* Listing the default exchange is allowed, changing it is not. */
			if (x->type != HBUS_X_DIRECT || x->alternate)
				return -EINVAL;
			continue;
		}
		if ((rc = cn_add(&c->xn, x->name, len)) < 0)
			return rc;
		c->xtype[rc] = x->type;
	}
	for (i = 0; i < in->n_exchanges; i++) {
		const struct hbus_rc_exchange *x = &in->exchanges[i];
		int xid = cn_find(&c->xn, x->name, (uint32_t)strlen(x->name));
		int alt;

		if (xid == 0)
			continue;
		c->xalt[xid] = HBUS_ROUTE_NONE;
		if (!x->alternate)
			continue;
		if (str_len(x->alternate, &len) || (alt = cn_find(&c->xn, x->alternate, len)) < 0)
			return -EINVAL;
		c->xalt[xid] = (uint32_t)alt;
	}
	return 0;
}

static int qid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int resolve_queues(struct compiler *c)
{
	const struct hbus_rc_input *in = c->in;
	uint32_t *qids, len, i;
	int rc = 0;

	if (cn_init(&c->qn, in->n_queues))
		return -ENOMEM;
	for (i = 0; i < in->n_queues && !rc; i++) {
		const struct hbus_rc_queue *q = &in->queues[i];

		if (str_len(q->name, &len) || q->qid == HBUS_ROUTE_NONE)
			return -EINVAL;
		if (q->dead_letter_exchange &&
		    (str_len(q->dead_letter_exchange, &len) ||
		     cn_find(&c->xn, q->dead_letter_exchange, len) < 0))
			return -EINVAL;
		if (q->dead_letter_key && str_len(q->dead_letter_key, &len))
			return -EINVAL;
		rc = cn_add(&c->qn, q->name, (uint32_t)strlen(q->name));
		rc = rc < 0 ? rc : 0;
	}
	if (rc || in->n_queues == 0)
		return rc;
	/* Two queues with one qid would make routing ambiguous. */
	if (!(qids = malloc(in->n_queues * sizeof(*qids))))
		return -ENOMEM;
	for (i = 0; i < in->n_queues; i++)
		qids[i] = in->queues[i].qid;
	qsort(qids, in->n_queues, sizeof(*qids), qid_cmp);
	for (i = 1; i < in->n_queues; i++)
		if (qids[i] == qids[i - 1])
			rc = -EINVAL;
	free(qids);
	return rc;
}

static int bind_src_cmp(const void *a, const void *b)
{
	const struct rt_cbind *x = a, *y = b;

	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	return x->in < y->in ? -1 : x->in > y->in; /* stable: input order */
}

static int resolve_bindings(struct compiler *c)
{
	const struct hbus_rc_input *in = c->in;
	uint32_t len, i, k;
	int id;

	c->binds = calloc(in->n_bindings + 1, sizeof(*c->binds));
	if (!c->binds)
		return -ENOMEM;
	for (i = 0; i < in->n_bindings; i++) {
		const struct hbus_rc_binding *bi = &in->bindings[i];
		struct rt_cbind *cb = &c->binds[i];

		/* The default exchange takes no bindings, as in AMQP. */
		if (str_len(bi->source, &len) || (id = cn_find(&c->xn, bi->source, len)) <= 0)
			return -EINVAL;
		cb->src = (uint32_t)id;
		if (str_len(bi->dest, &len))
			return -EINVAL;
		if (bi->dest_is_exchange) {
			if ((id = cn_find(&c->xn, bi->dest, len)) <= 0)
				return -EINVAL;
			cb->dest.id = (uint32_t)id;
		} else {
			if ((id = cn_find(&c->qn, bi->dest, len)) < 0)
				return -EINVAL;
			cb->dest.id = in->queues[id].qid;
		}
		cb->dest.is_exchange = bi->dest_is_exchange != 0;
		cb->key = bi->key ? bi->key : "";
		if (str_len(cb->key, &cb->key_len))
			return -EINVAL;
		if (bi->header_count > HBUS_HEADERS_MAX || (bi->header_count && !bi->headers))
			return -EINVAL;
		for (k = 0; k < bi->header_count; k++) {
			const struct hbus_header *h = &bi->headers[k];

			if ((h->name_len && !h->name) || (h->value_len && !h->value))
				return -EINVAL;
		}
		cb->in = bi;
	}
	qsort(c->binds, in->n_bindings, sizeof(*c->binds), bind_src_cmp);
	return 0;
}

/* ------------------------------------------------------- per exchange */

static int bind_key_cmp(const void *a, const void *b)
{
	const struct rt_cbind *x = a, *y = b;
	int r = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);

	if (r)
		return r;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int build_direct(struct compiler *c, struct rt_cbind *bs, unsigned n, struct rt_exchange *x)
{
	struct rt_slot *ents = malloc((n + 1) * sizeof(*ents));
	struct rt_dest *d = malloc((n + 1) * sizeof(*d));
	unsigned i, j, k, n_keys = 0;

	if (!ents || !d) {
		free(ents);
		free(d);
		return -ENOMEM;
	}
	qsort(bs, n, sizeof(*bs), bind_key_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i; j < n && bind_key_cmp(&bs[i], &bs[j]) == 0; j++)
			d[j - i] = bs[j].dest;
		k = n_keys++;
		ents[k].hash = rt_hash(bs[i].key, bs[i].key_len);
		ents[k].len = bs[i].key_len;
		ents[k].off = rt_buf_str(&c->b, bs[i].key, bs[i].key_len);
		ents[k].id = rt_buf_dests(&c->b, d, j - i);
	}
	x->data_off = rt_buf_slots(&c->b, ents, n_keys, &x->data_n);
	free(ents);
	free(d);
	return c->b.err;
}

static int build_fanout(struct compiler *c, const struct rt_cbind *bs, unsigned n,
			struct rt_exchange *x)
{
	struct rt_dest *d = malloc((n + 1) * sizeof(*d));
	unsigned i;

	if (!d)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		d[i] = bs[i].dest;
	x->data_off = rt_buf_dests(&c->b, d, n);
	free(d);
	return c->b.err;
}

static int is_x_arg(const struct hbus_header *h)
{
	return h->name_len >= 2 && h->name[0] == 'x' && h->name[1] == '-';
}

static int build_headers(struct compiler *c, const struct rt_cbind *bs, unsigned n,
			 struct rt_exchange *x)
{
	struct rt_buf *b = &c->b;
	uint32_t binds_off = rt_buf_alloc(b, (n + 1) * sizeof(struct rt_hbind));
	unsigned i, k, np;

	for (i = 0; i < n && !b->err; i++) {
		const struct hbus_rc_binding *in = bs[i].in;
		struct rt_dest d = bs[i].dest;
		struct rt_hbind hb = { .match_all = in->match_all != 0 };
		uint32_t pairs_off;

		for (k = 0, np = 0; k < in->header_count; k++)
			np += !is_x_arg(&in->headers[k]);
		pairs_off = rt_buf_alloc(b, (np + 1) * sizeof(struct rt_hpair));
		for (k = 0; k < in->header_count && !b->err; k++) {
			const struct hbus_header *h = &in->headers[k];
			struct rt_hpair p;

			if (is_x_arg(h))
				continue;
			p.name_len = h->name_len;
			p.name_off = rt_buf_str(b, h->name, h->name_len);
			p.value_len = h->value_len;
			p.value_off = rt_buf_str(b, h->value, h->value_len);
			if (!b->err)
				((struct rt_hpair *)rt_buf_at(b, pairs_off))[hb.n_pairs++] = p;
		}
		hb.pairs_off = pairs_off;
		hb.dests_off = rt_buf_dests(b, &d, 1);
		if (!b->err)
			((struct rt_hbind *)rt_buf_at(b, binds_off))[i] = hb;
	}
	x->data_off = binds_off;
	x->data_n = n;
	return b->err;
}

static int build_exchanges(struct compiler *c, struct rt_table_hdr *h)
{
	struct rt_buf *b = &c->b;
	uint32_t n_x = c->xn.n, xid, i = 0, n_binds = c->in->n_bindings;
	struct rt_slot *dir = calloc(n_x, sizeof(*dir));
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	h->n_exchanges = n_x;
	h->exchanges_off = rt_buf_alloc(b, n_x * sizeof(struct rt_exchange));
	for (xid = 0; xid < n_x && !rc; xid++) {
		struct rt_exchange x = { .type = c->xtype[xid], .alternate = c->xalt[xid] };
		unsigned first = i;

		while (i < n_binds && c->binds[i].src == xid)
			i++;
		x.name_len = c->xn.len[xid];
		x.name_off = rt_buf_str(b, c->xn.s[xid], x.name_len);
		dir[xid] = (struct rt_slot){ .hash = rt_hash(c->xn.s[xid], x.name_len), .len = x.name_len,
					     .off = x.name_off, .id = xid };
		if (i > first) {
			if (x.type == HBUS_X_DIRECT)
				rc = build_direct(c, c->binds + first, i - first, &x);
			else if (x.type == HBUS_X_FANOUT)
				rc = build_fanout(c, c->binds + first, i - first, &x);
			else if (x.type == HBUS_X_TOPIC)
				rc = rt_topic_build(b, c->binds + first, i - first, &x.data_off, &x.data_n);
			else
				rc = build_headers(c, c->binds + first, i - first, &x);
		}
		if (!rc && !b->err)
			((struct rt_exchange *)rt_buf_at(b, h->exchanges_off))[xid] = x;
	}
	h->xdir_off = rt_buf_slots(b, dir, n_x, &h->xdir_mask);
	free(dir);
	return rc ? rc : b->err;
}

static int queue_qid_cmp(const void *a, const void *b)
{
	const struct hbus_rc_queue *x = *(const struct hbus_rc_queue *const *)a;
	const struct hbus_rc_queue *y = *(const struct hbus_rc_queue *const *)b;

	return x->qid < y->qid ? -1 : x->qid > y->qid;
}

static int build_queues(struct compiler *c, struct rt_table_hdr *h)
{
	struct rt_buf *b = &c->b;
	unsigned n = c->in->n_queues, i;
	const struct hbus_rc_queue **qs = calloc(n + 1, sizeof(*qs));
	struct rt_slot *dir = calloc(n + 1, sizeof(*dir));

	if (!qs || !dir) {
		free(qs);
		free(dir);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		qs[i] = &c->in->queues[i];
	qsort(qs, n, sizeof(*qs), queue_qid_cmp);
	h->n_queues = n;
	h->qid_limit = n ? qs[n - 1]->qid + 1 : 0;
	h->queues_off = rt_buf_alloc(b, (n + 1) * sizeof(struct rt_queue));
	for (i = 0; i < n && !b->err; i++) {
		const struct hbus_rc_queue *q = qs[i];
		struct rt_queue rq = { .qid = q->qid, .dlx_xid = HBUS_ROUTE_NONE };

		rq.name_len = (uint32_t)strlen(q->name);
		rq.name_off = rt_buf_str(b, q->name, rq.name_len);
		if (q->dead_letter_exchange)
			rq.dlx_xid = (uint32_t)cn_find(&c->xn, q->dead_letter_exchange,
						       (uint32_t)strlen(q->dead_letter_exchange));
		if (q->dead_letter_key) {
			rq.dlx_key_len = (uint32_t)strlen(q->dead_letter_key);
			rq.dlx_key_off = rt_buf_str(b, q->dead_letter_key, rq.dlx_key_len);
		}
		dir[i] = (struct rt_slot){ .hash = rt_hash(q->name, rq.name_len), .len = rq.name_len,
					   .off = rq.name_off, .id = q->qid };
		if (!b->err)
			((struct rt_queue *)rt_buf_at(b, h->queues_off))[i] = rq;
	}
	h->qdir_off = rt_buf_slots(b, dir, n, &h->qdir_mask);
	free(qs);
	free(dir);
	return b->err;
}

static int build_udpmaps(struct compiler *c, struct rt_table_hdr *h)
{
	struct rt_buf *b = &c->b;
	unsigned n = c->in->n_udpmaps, i, m;
	uint32_t cap = rt_slot_cap(n), len, j;
	uint32_t *groups = calloc(n + 1, sizeof(*groups));
	int xid;

	if (!groups)
		return -ENOMEM;
	h->n_udp = n;
	h->udp_mask = cap - 1;
	h->udp_off = rt_buf_alloc(b, cap * sizeof(struct rt_udp_slot));
	for (i = 0, m = 0; i < n && !b->err; i++) {
		const struct hbus_rc_udpmap *u = &c->in->udpmaps[i];
		struct rt_udp_slot s = { .ip_be = u->ip_be, .port = u->port, .used = 1 }, *slots;

		if (str_len(u->exchange, &len) || (xid = cn_find(&c->xn, u->exchange, len)) < 0 ||
		    str_len(u->key ? u->key : "", &s.key_len)) {
			free(groups);
			return -EINVAL;
		}
		s.xid = (uint32_t)xid;
		s.key_off = rt_buf_str(b, u->key ? u->key : "", s.key_len);
		if (b->err)
			break;
		slots = rt_buf_at(b, h->udp_off);
		for (j = rt_udp_pos(u->ip_be, u->port, cap - 1); slots[j].used; j = (j + 1) & (cap - 1))
			if (slots[j].ip_be == u->ip_be && slots[j].port == u->port) {
				free(groups);
				return -EINVAL; /* one destination, two meanings */
			}
		if (!b->err)
			slots[j] = s;
		if ((ntohl(u->ip_be) >> 28) == 0xe) /* 224.0.0.0/4 */
			groups[m++] = u->ip_be;
	}
	qsort(groups, m, sizeof(*groups), qid_cmp);
	for (i = 0, j = 0; i < m; i++)
		if (j == 0 || groups[j - 1] != groups[i])
			groups[j++] = groups[i];
	h->n_mcast = j;
	h->mcast_off = rt_buf_alloc(b, (j + 1) * sizeof(uint32_t));
	if (!b->err)
		memcpy(rt_buf_at(b, h->mcast_off), groups, j * sizeof(uint32_t));
	free(groups);
	return b->err;
}

#define RT_INPUT_MAX (1u << 24)

static int input_valid(const struct hbus_rc_input *in)
{
	return in && (in->exchanges || !in->n_exchanges) && (in->queues || !in->n_queues) &&
	       (in->bindings || !in->n_bindings) && (in->udpmaps || !in->n_udpmaps);
}

int hbus_route_compile(const struct hbus_rc_input *in, void *buf, size_t cap, size_t *used)
{
	struct compiler c = { .in = in };
	struct rt_table_hdr h = { .magic = RT_MAGIC, .version = RT_VERSION };
	int rc;

	if (used)
		*used = 0;
	/* The table is read in place with 32-bit loads: it must be aligned. */
	if (!input_valid(in) || !used || (!buf && cap) || ((uintptr_t)buf & (RT_ALIGN - 1)))
		return -EINVAL;
	/* Far past any table that fits 32-bit offsets; keeps counts + 1 sane. */
	if (in->n_exchanges > RT_INPUT_MAX || in->n_queues > RT_INPUT_MAX ||
	    in->n_bindings > RT_INPUT_MAX || in->n_udpmaps > RT_INPUT_MAX)
		return -EFBIG;
	rc = resolve_exchanges(&c);
	if (!rc)
		rc = resolve_queues(&c);
	if (!rc)
		rc = resolve_bindings(&c);
	if (!rc) {
		rt_buf_alloc(&c.b, sizeof(h)); /* the header, at offset 0 */
		rc = build_exchanges(&c, &h);
	}
	if (!rc)
		rc = build_queues(&c, &h);
	if (!rc)
		rc = build_udpmaps(&c, &h);
	if (!rc) {
		rt_buf_alloc(&c.b, 0); /* pad the size to RT_ALIGN */
		h.size = c.b.len;
		memcpy(c.b.p, &h, sizeof(h));
		*used = c.b.len;
		if (c.b.len > cap)
			rc = -ENOSPC;
		else
			memcpy(buf, c.b.p, c.b.len);
	}
	cn_free(&c.xn);
	cn_free(&c.qn);
	free(c.xtype);
	free(c.xalt);
	free(c.binds);
	free(c.b.p);
	return rc;
}
