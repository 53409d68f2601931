/*
 * model_bind.c - bindings (queue and exchange-to-exchange), raw UDP maps
 * and consumers.
 */
#include "model.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- bindings */

static bool headers_equal(const struct hbus_header *a, uint16_t na, const struct hbus_header *b,
			  uint16_t nb)
{
	uint16_t i, j;

	if (na != nb)
		return false;
	/* Argument tables compare as sets, as RabbitMQ's do. */
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb; j++)
			if (a[i].name_len == b[j].name_len && a[i].value_len == b[j].value_len &&
			    !memcmp(a[i].name, b[j].name, a[i].name_len) &&
			    !memcmp(a[i].value, b[j].value, a[i].value_len))
				break;
		if (j == nb)
			return false;
	}
	return true;
}

static struct mx_binding *find_binding(const struct model *m, const struct binding_args *a,
				       unsigned *at)
{
	unsigned i;

	for (i = 0; i < m->bindings.n; i++) {
		struct mx_binding *b = m->bindings.v[i];

		if (b->dest_is_exchange == a->dest_is_exchange && !strcmp(b->source, a->source) &&
		    !strcmp(b->dest, a->dest) && !strcmp(b->key, a->key) &&
		    b->match_all == a->match_all &&
		    headers_equal(b->headers, b->n_headers, a->headers, a->n_headers)) {
			if (at)
				*at = i;
			return b;
		}
	}
	return NULL;
}

bool model_binding_exists(const struct model *m, const struct binding_args *a)
{
	return find_binding(m, a, NULL) != NULL;
}

/* Source and destination must exist, and neither may be the default
 * exchange: every queue is bound to it by its own name, implicitly. */
static int binding_ends(struct model *m, const struct binding_args *a, uint32_t owner,
			struct mx_exchange **src, struct herr *e)
{
	struct mx_queue *q;

	*src = NULL; /* written on every path: see arg_str */
	if (!a->source[0] || (a->dest_is_exchange && !a->dest[0]))
		return herr_set(e, AMQP_NOT_ALLOWED,
				"the default exchange \"\" cannot be bound: every queue is bound "
				"to it by its name");
	*src = model_exchange(m, a->source);
	if (!*src)
		return herr_set(e, AMQP_NOT_FOUND, "no exchange '%s'", a->source);
	if (a->dest_is_exchange) {
		if (!model_exchange(m, a->dest))
			return herr_set(e, AMQP_NOT_FOUND, "no exchange '%s'", a->dest);
		return 0;
	}
	q = model_queue(m, a->dest);
	if (!q)
		return herr_set(e, AMQP_NOT_FOUND, "no queue '%s'", a->dest);
	return model_queue_access(m, q, owner, e);
}

static void undo_binding(struct model *m, void *p)
{
	int i = vec_find(&m->bindings, p);

	if (i >= 0)
		vec_del(&m->bindings, (unsigned)i);
	model_free_binding(p);
}

static struct mx_binding *copy_binding(const struct binding_args *a)
{
	struct mx_binding *b = calloc(1, sizeof(*b));
	uint16_t i;

	if (!b)
		return NULL;
	b->source = strdup(a->source);
	b->dest = strdup(a->dest);
	b->key = strdup(a->key);
	b->dest_is_exchange = a->dest_is_exchange;
	b->match_all = a->match_all;
	if (a->n_headers)
		b->headers = calloc(a->n_headers, sizeof(*b->headers));
	if (!b->source || !b->dest || !b->key || (a->n_headers && !b->headers))
		goto fail;
	for (i = 0; i < a->n_headers; i++) {
		struct hbus_header *h = &b->headers[i];

		h->name = strndup(a->headers[i].name, a->headers[i].name_len);
		h->value = strndup(a->headers[i].value, a->headers[i].value_len);
		h->name_len = a->headers[i].name_len;
		h->value_len = a->headers[i].value_len;
		b->n_headers = (uint16_t)(i + 1);
		if (!h->name || !h->value)
			goto fail;
	}
	return b;
fail:
	model_free_binding(b);
	return NULL;
}

int model_bind(struct model *m, const struct binding_args *a, uint32_t owner, struct herr *e)
{
	struct mx_exchange *src;
	struct mx_binding *b;

	if (binding_ends(m, a, owner, &src, e) || model_check_name("routing key", a->key, e))
		return -1;
	if (find_binding(m, a, NULL))
		return 0; /* binding twice is binding once */
	if (m->bindings.n >= m->lim.max_bindings)
		return herr_set(e, AMQP_PRECONDITION,
				"limit of %u bindings reached (hbusd --max-bindings)",
				m->lim.max_bindings);
	b = copy_binding(a);
	if (!b || vec_push(&m->bindings, b)) {
		if (b)
			model_free_binding(b);
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	}
	if (model_commit_or_undo(m, e, undo_binding, b))
		return -1;
	src->had_binding = true;
	return 0;
}

int model_unbind(struct model *m, const struct binding_args *a, uint32_t owner, struct herr *e)
{
	struct mx_exchange *src;
	struct mx_binding *b;
	unsigned at;

	if (binding_ends(m, a, owner, &src, e))
		return -1;
	b = find_binding(m, a, &at);
	if (!b)
		return 0; /* as RabbitMQ: unbinding what is not bound is not an error */
	vec_del(&m->bindings, at);
	model_free_binding(b);
	model_autodelete_exchanges(m);
	model_commit_removal(m);
	return 0;
}

/* ----------------------------------------------------------- raw UDP maps */

static void ip_str(uint32_t ip_be, char *out, size_t cap)
{
	const uint8_t *b = (const uint8_t *)&ip_be;

	snprintf(out, cap, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
}

static int find_udpmap(const struct model *m, uint32_t ip_be, uint16_t port)
{
	unsigned i;

	for (i = 0; i < m->udpmaps.n; i++) {
		struct mx_udpmap *u = m->udpmaps.v[i];
		if (u->ip_be == ip_be && u->port == port)
			return (int)i;
	}
	return -1;
}

static void undo_udpmap(struct model *m, void *p)
{
	int i = vec_find(&m->udpmaps, p);

	if (i >= 0)
		vec_del(&m->udpmaps, (unsigned)i);
	model_free_udpmap(p);
}

int model_map_udp(struct model *m, const struct udpmap_args *a, struct herr *e)
{
	struct mx_udpmap *u;
	char ip[16];
	int i;

	ip_str(a->ip_be, ip, sizeof(ip));
	if (!model_exchange_exists(m, a->exchange))
		return herr_set(e, AMQP_NOT_FOUND, "no exchange '%s'", a->exchange);
	if (model_check_name("routing key", a->key, e))
		return -1;
	i = find_udpmap(m, a->ip_be, a->port);
	if (i >= 0) {
		u = m->udpmaps.v[i];
		if (!strcmp(u->exchange, a->exchange) && !strcmp(u->key, a->key))
			return 0;
		return herr_set(e, AMQP_PRECONDITION,
				"UDP %s:%u is already mapped to exchange '%s' key '%s'; unmap it first",
				ip, a->port, u->exchange, u->key);
	}
	if (m->udpmaps.n >= m->lim.max_udpmaps)
		return herr_set(e, AMQP_PRECONDITION, "limit of %u UDP maps reached (hbusd "
				"--max-udpmaps)", m->lim.max_udpmaps);
	u = calloc(1, sizeof(*u));
	if (!u || !(u->exchange = strdup(a->exchange)) || !(u->key = strdup(a->key)) ||
	    vec_push(&m->udpmaps, u)) {
		if (u)
			model_free_udpmap(u);
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	}
	u->ip_be = a->ip_be;
	u->port = a->port;
	return model_commit_or_undo(m, e, undo_udpmap, u);
}

int model_unmap_udp(struct model *m, uint32_t ip_be, uint16_t port, struct herr *e)
{
	int i = find_udpmap(m, ip_be, port);
	char ip[16];

	if (i < 0) {
		ip_str(ip_be, ip, sizeof(ip));
		return herr_set(e, AMQP_NOT_FOUND, "UDP %s:%u is not mapped", ip, port);
	}
	model_free_udpmap(m->udpmaps.v[i]);
	vec_del(&m->udpmaps, (unsigned)i);
	model_autodelete_exchanges(m);
	model_commit_removal(m);
	return 0;
}

/* -------------------------------------------------------------- consumers */

static struct mx_consumer *find_consumer(const struct model *m, const char *tag, unsigned *at)
{
	unsigned i;

	for (i = 0; i < m->consumers.n; i++) {
		struct mx_consumer *c = m->consumers.v[i];
		if (!strcmp(c->tag, tag)) {
			if (at)
				*at = i;
			return c;
		}
	}
	return NULL;
}

int model_consume(struct model *m, const char *queue, uint32_t owner, uint32_t ack_mode,
		  uint32_t prefetch, bool exclusive, const char *tag, struct mx_consumer **out,
		  struct herr *e)
{
	struct mx_queue *q = model_queue(m, queue);
	struct mx_consumer *c;
	char gen[64];

	if (!q)
		return herr_set(e, AMQP_NOT_FOUND, "no queue '%s'", queue);
	if (model_queue_access(m, q, owner, e) || grant_consume_check(q, owner, exclusive, e))
		return -1;
	if (q->exclusive_consumer || (exclusive && q->consumers))
		return herr_set(e, AMQP_RESOURCE_LOCKED,
				q->exclusive_consumer ? "queue '%s' has an exclusive consumer"
						      : "queue '%s' has consumers: cannot consume exclusively",
				queue);
	if (q->consumers >= m->lim.max_consumers_per_queue)
		return herr_set(e, AMQP_PRECONDITION,
				"limit of %u consumers on queue '%s' reached (hbusd --max-consumers)",
				m->lim.max_consumers_per_queue, queue);
	if (tag && *tag) {
		if (model_check_name("consumer tag", tag, e))
			return -1;
		if (find_consumer(m, tag, NULL))
			return herr_set(e, AMQP_NOT_ALLOWED, "consumer tag '%s' is in use", tag);
	} else {
		do {
			snprintf(gen, sizeof(gen), "amq.ctag-%u-%llu", owner,
				 (unsigned long long)++m->consumer_seq);
		} while (find_consumer(m, gen, NULL));
		tag = gen;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->tag = strdup(tag)) || vec_push(&m->consumers, c)) {
		if (c)
			model_free_consumer(c);
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	}
	c->owner = owner;
	c->q = q;
	c->ack_mode = ack_mode;
	c->prefetch = prefetch;
	c->exclusive = exclusive;
	c->fast = exclusive && grant_consume_fast(m, q, owner, c->tag);
	q->consumers++;
	q->had_consumer = true;
	q->exclusive_consumer = exclusive;
	if (!m->loading)
		model_save_state(m);
	*out = c;
	return 0;
}

/* After consumers of q went away: auto-delete q when that was the last. */
static bool maybe_autodelete_queue(struct model *m, struct mx_queue *q)
{
	if (!q->auto_delete || !q->had_consumer || q->consumers)
		return false;
	HBUS_INFO("auto-delete queue '%s' (qid %u): its last consumer is gone", q->name, q->qid);
	model_drop_queue(m, q);
	return true;
}

int model_cancel(struct model *m, const char *tag, uint32_t owner, struct herr *e)
{
	unsigned at = 0;
	struct mx_consumer *c = find_consumer(m, tag, &at);
	struct mx_queue *q;

	if (!c || c->owner != owner)
		return herr_set(e, AMQP_NOT_FOUND, "no consumer '%s' in this session", tag);
	q = c->q;
	if (c->fast)
		grant_consumer_cancelled(q, owner);
	model_remove_consumer_at(m, at);
	if (maybe_autodelete_queue(m, q))
		model_commit_removal(m);
	else
		model_save_state(m);
	return 0;
}

/* ------------------------------------------------------- an owner is gone */

unsigned model_owner_gone(struct model *m, uint32_t owner, const uint32_t *qids, unsigned n_qids,
			  bool exited)
{
	bool consumers_changed = false, dropped = false, again = true;
	unsigned i, pending = 0;
	struct mx_queue *q;
	int rc;

	/* Slots first: whatever happens to the queues below, the messages a
	 * dead consumer held go back to the queue it took them from.  Only
	 * once the process is gone: nothing is taken from one that runs
	 * (docs/QUEUE.md, "Recovery"); hbusd watches it and comes back here
	 * when it exits. */
	for (i = 0; exited && i < (qids ? n_qids : m->queues.n); i++) {
		q = qids ? model_queue_by_qid(m, qids[i]) : m->queues.v[i];
		if (!q)
			continue;
		rc = mq_recover(m, q, owner);
		if (rc == -EAGAIN && model_recovery_pending(m, q->qid, owner)) {
			pending++; /* already waiting (a session closed, then its process exited) */
		} else if (rc == -EAGAIN) {
			struct mx_pending *p = malloc(sizeof(*p));

			if (p && vec_push(&m->pending, p) == 0) {
				p->qid = q->qid;
				p->owner = owner;
				pending++;
			} else {
				free(p);
				HBUS_ERR("out of memory: recovery of owner %u on queue '%s' dropped",
					 owner, q->name);
			}
		}
	}
	/* An owner whose process has exited reads no table any more; one
	 * that still runs keeps its reader block until it exits (readers.h). */
	if (exited) {
		readers_drop_owner(&m->readers, owner);
		consumers_changed = grants_owner_exited(m, owner);
	}

	i = 0;
	while (i < m->consumers.n) {
		struct mx_consumer *c = m->consumers.v[i];

		if (c->owner != owner) {
			i++;
			continue;
		}
		q = c->q;
		/* A process that runs on may still claim with its handle. */
		if (!exited)
			grant_consumer_left(q, owner);
		model_remove_consumer_at(m, i);
		consumers_changed = true;
		if (maybe_autodelete_queue(m, q)) {
			dropped = true;
			i = 0; /* dropping a queue reshuffled the consumers */
		}
	}
	while (again) {
		again = false;
		for (i = 0; i < m->queues.n; i++) {
			q = m->queues.v[i];
			if (q->exclusive && q->excl_owner == owner) {
				HBUS_INFO("exclusive queue '%s' (qid %u) deleted: its session (owner %u) is gone",
					  q->name, q->qid, owner);
				model_drop_queue(m, q);
				again = true;
				break;
			}
		}
		dropped |= again;
	}
	/* Only a dropped queue changes routing; consumers live in the state
	 * file alone. */
	if (dropped)
		model_commit_removal(m);
	else if (consumers_changed)
		model_save_state(m);
	return pending;
}
