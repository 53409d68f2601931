/*
 * model.c - exchanges, bindings, UDP maps and consumers, and the queue
 * operations that are about the model rather than the queue file
 * (model_queue.c has those).  Semantics follow RabbitMQ; where hbus
 * differs, docs/CONTROL.md says so and why.
 */
#include "model.h"
#include "defs.h"
#include "log.h"
#include "superblock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const xtype_names[] = { "direct", "fanout", "topic", "headers" };

const char *xtype_name(uint32_t type)
{
	return type < 4 ? xtype_names[type] : "?";
}

int xtype_parse(const char *s, uint32_t *type)
{
	uint32_t i;

	for (i = 0; i < 4; i++)
		if (!strcmp(s, xtype_names[i])) {
			*type = i;
			return 0;
		}
	return -EINVAL;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool is_reserved(const char *name)
{
	return !strncmp(name, "amq.", 4);
}

int model_check_name(const char *what, const char *name, struct herr *e)
{
	size_t n = strlen(name);

	if (n > HBUS_NAME_MAX)
		return herr_set(e, AMQP_PRECONDITION, "%s name is %zu bytes long, the limit is %u",
				what, n, HBUS_NAME_MAX);
	return 0;
}

int model_init(struct model *m, const char *bus_dir, int bus_fd, const struct model_limits *lim)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->bus_dir, sizeof(m->bus_dir), "%s", bus_dir);
	m->bus_fd = bus_fd;
	m->lim = *lim;
	readers_init(&m->readers, lim->reader_timeout_ms ? lim->reader_timeout_ms
							 : HBUSD_READER_TIMEOUT_MS);
	return 0;
}

void model_free_binding(struct mx_binding *b)
{
	uint16_t i;

	for (i = 0; i < b->n_headers; i++) {
		free((char *)b->headers[i].name);
		free((char *)b->headers[i].value);
	}
	free(b->headers);
	free(b->source);
	free(b->dest);
	free(b->key);
	free(b);
}

static void free_exchange(struct mx_exchange *x)
{
	free(x->name);
	free(x->alternate);
	free(x);
}

void model_free_consumer(struct mx_consumer *c)
{
	free(c->tag);
	free(c);
}

void model_free_udpmap(struct mx_udpmap *u)
{
	free(u->exchange);
	free(u->key);
	free(u);
}

void model_fini(struct model *m)
{
	unsigned i;

	for (i = 0; i < m->consumers.n; i++)
		model_free_consumer(m->consumers.v[i]);
	for (i = 0; i < m->bindings.n; i++)
		model_free_binding(m->bindings.v[i]);
	for (i = 0; i < m->udpmaps.n; i++)
		model_free_udpmap(m->udpmaps.v[i]);
	for (i = 0; i < m->queues.n; i++)
		mq_free(m, m->queues.v[i], false);
	for (i = 0; i < m->exchanges.n; i++)
		free_exchange(m->exchanges.v[i]);
	for (i = 0; i < m->pending.n; i++)
		free(m->pending.v[i]);
	vec_free(&m->consumers);
	vec_free(&m->bindings);
	vec_free(&m->udpmaps);
	vec_free(&m->queues);
	vec_free(&m->exchanges);
	vec_free(&m->pending);
	free(m->table);
	free(m->scratch);
	free(m->defs_text);
	readers_fini(&m->readers);
}

struct mx_exchange *model_exchange(const struct model *m, const char *name)
{
	unsigned i;

	for (i = 0; *name && i < m->exchanges.n; i++) {
		struct mx_exchange *x = m->exchanges.v[i];
		if (!strcmp(x->name, name))
			return x;
	}
	return NULL;
}

bool model_exchange_exists(const struct model *m, const char *name)
{
	return !*name || model_exchange(m, name) != NULL;
}

struct mx_queue *model_queue(const struct model *m, const char *name)
{
	unsigned i;

	for (i = 0; i < m->queues.n; i++) {
		struct mx_queue *q = m->queues.v[i];
		if (!strcmp(q->name, name))
			return q;
	}
	return NULL;
}

struct mx_queue *model_queue_by_qid(const struct model *m, uint32_t qid)
{
	unsigned i;

	for (i = 0; i < m->queues.n; i++) {
		struct mx_queue *q = m->queues.v[i];
		if (q->qid == qid)
			return q;
	}
	return NULL;
}

int model_commit_or_undo(struct model *m, struct herr *e, void (*undo)(struct model *, void *),
			  void *what)
{
	if (m->loading || model_commit(m, e) == 0)
		return 0;
	undo(m, what);
	return -1;
}

/* A removal is committed regardless: the table only shrinks, and a
 * definitions file that cannot be written is logged and rewritten at the
 * next change. */
void model_commit_removal(struct model *m)
{
	struct herr e;

	if (!m->loading && model_commit(m, &e) != 0)
		HBUS_ERR("committing a removal: %s", e.msg);
}

/* --------------------------------------------------------------- exchanges */

static int exchange_equivalent(const struct mx_exchange *x, const struct exchange_args *a,
			       struct herr *e)
{
	const char *what = NULL, *got = "", *have = "";

	if (x->type != a->type) {
		what = "type"; got = xtype_name(a->type); have = xtype_name(x->type);
	} else if (x->durable != a->durable) {
		what = "durable"; got = a->durable ? "true" : "false"; have = x->durable ? "true" : "false";
	} else if (x->auto_delete != a->auto_delete) {
		what = "auto_delete"; got = a->auto_delete ? "true" : "false";
		have = x->auto_delete ? "true" : "false";
	} else if (!str_eq(x->alternate, a->alternate)) {
		what = "alternate_exchange"; got = a->alternate ? a->alternate : "(none)";
		have = x->alternate ? x->alternate : "(none)";
	}
	if (!what)
		return 0;
	return herr_set(e, AMQP_PRECONDITION,
			"inequivalent arg '%s' for exchange '%s': received '%s' but current is '%s'",
			what, x->name, got, have);
}

static void undo_exchange(struct model *m, void *p)
{
	int i = vec_find(&m->exchanges, p);

	if (i >= 0)
		vec_del(&m->exchanges, (unsigned)i);
	free_exchange(p);
}

int model_declare_exchange(struct model *m, const struct exchange_args *a, bool passive,
			   struct herr *e)
{
	struct mx_exchange *x;

	if (!a->name[0]) {
		if (passive)
			return 0;
		return herr_set(e, AMQP_NOT_ALLOWED,
				"the default exchange \"\" always exists and cannot be declared");
	}
	x = model_exchange(m, a->name);
	if (passive)
		return x ? 0 : herr_set(e, AMQP_NOT_FOUND, "no exchange '%s'", a->name);
	if (x)
		return exchange_equivalent(x, a, e);
	if (model_check_name("exchange", a->name, e) ||
	    (a->alternate && model_check_name("alternate exchange", a->alternate, e)))
		return -1;
	if (is_reserved(a->name))
		return herr_set(e, AMQP_NOT_ALLOWED,
				"exchange name '%s' uses the reserved prefix 'amq.'", a->name);
	if (m->exchanges.n >= m->lim.max_exchanges)
		return herr_set(e, AMQP_PRECONDITION,
				"limit of %u exchanges reached (hbusd --max-exchanges)",
				m->lim.max_exchanges);
	x = calloc(1, sizeof(*x));
	if (!x || !(x->name = strdup(a->name)) ||
	    (a->alternate && !(x->alternate = strdup(a->alternate))) ||
	    vec_push(&m->exchanges, x)) {
		if (x)
			free_exchange(x);
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	}
	x->type = a->type;
	x->durable = a->durable;
	x->auto_delete = a->auto_delete;
	return model_commit_or_undo(m, e, undo_exchange, x);
}

static bool has_source_bindings(const struct model *m, const char *x)
{
	unsigned i;

	for (i = 0; i < m->bindings.n; i++)
		if (!strcmp(((struct mx_binding *)m->bindings.v[i])->source, x))
			return true;
	return false;
}

struct mx_udpmap *model_udpmap_to(const struct model *m, const char *x)
{
	unsigned i;

	for (i = 0; i < m->udpmaps.n; i++)
		if (!strcmp(((struct mx_udpmap *)m->udpmaps.v[i])->exchange, x))
			return m->udpmaps.v[i];
	return NULL;
}

/* Remove every binding that names exchange or queue `name` as source or
 * destination. */
void model_remove_bindings_of(struct model *m, const char *name, bool is_exchange)
{
	unsigned i = 0;

	while (i < m->bindings.n) {
		struct mx_binding *b = m->bindings.v[i];
		bool hit = (is_exchange && !strcmp(b->source, name)) ||
			   (b->dest_is_exchange == is_exchange && !strcmp(b->dest, name));

		if (hit) {
			vec_del(&m->bindings, i);
			model_free_binding(b);
		} else {
			i++;
		}
	}
}

/* Auto-delete exchanges that lost their last binding; deleting one removes
 * bindings to it, which may empty another, so repeat until nothing moves. */
void model_autodelete_exchanges(struct model *m)
{
	bool again = true;
	unsigned i;

	while (again) {
		again = false;
		for (i = 0; i < m->exchanges.n; i++) {
			struct mx_exchange *x = m->exchanges.v[i];

			if (!x->auto_delete || !x->had_binding || has_source_bindings(m, x->name) ||
			    model_udpmap_to(m, x->name))
				continue;
			HBUS_INFO("auto-delete exchange '%s': its last binding is gone", x->name);
			vec_del(&m->exchanges, i);
			model_remove_bindings_of(m, x->name, true);
			free_exchange(x);
			again = true;
			break;
		}
	}
}

int model_delete_exchange(struct model *m, const char *name, bool if_unused, struct herr *e)
{
	struct mx_exchange *x;
	struct mx_udpmap *u;
	char ip[16];

	if (!name[0])
		return herr_set(e, AMQP_NOT_ALLOWED, "the default exchange \"\" cannot be deleted");
	x = model_exchange(m, name);
	if (!x)
		return herr_set(e, AMQP_NOT_FOUND, "no exchange '%s'", name);
	if (if_unused && has_source_bindings(m, name))
		return herr_set(e, AMQP_PRECONDITION, "exchange '%s' in use: it has bindings (if_unused)",
				name);
	u = model_udpmap_to(m, name);
	if (u) {
		const uint8_t *b = (const uint8_t *)&u->ip_be;
		snprintf(ip, sizeof(ip), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
		return herr_set(e, AMQP_PRECONDITION,
				"exchange '%s' receives UDP %s:%u (map_udp); unmap it first",
				name, ip, u->port);
	}
	vec_del(&m->exchanges, (unsigned)vec_find(&m->exchanges, x));
	model_remove_bindings_of(m, name, true);
	free_exchange(x);
	model_autodelete_exchanges(m);
	model_commit_removal(m);
	return 0;
}

/* ---------------------------------------------------------------- queues */

int model_queue_access(const struct model *m, const struct mx_queue *q, uint32_t owner,
		       struct herr *e)
{
	(void)m;
	if (q->exclusive && q->excl_owner != owner)
		return herr_set(e, AMQP_RESOURCE_LOCKED,
				"cannot obtain access to queue '%s': it is exclusive to another session",
				q->name);
	return 0;
}

static int queue_equivalent(const struct mx_queue *q, const struct queue_args *a, struct herr *e)
{
	char got[300], have[300];
	const char *what = NULL;

#define CMP_U(field, label) \
	if (!what && (int64_t)q->cfg.field != (int64_t)a->cfg.field) { \
		what = label; \
		snprintf(got, sizeof(got), "%lld", (long long)a->cfg.field); \
		snprintf(have, sizeof(have), "%lld", (long long)q->cfg.field); }
#define CMP_B(field, label) \
	if (!what && q->field != a->field) { \
		what = label; \
		snprintf(got, sizeof(got), "%s", a->field ? "true" : "false"); \
		snprintf(have, sizeof(have), "%s", q->field ? "true" : "false"); }
#define CMP_F(bit, label) \
	if (!what && (q->cfg.flags & (bit)) != (a->cfg.flags & (bit))) { \
		what = label; \
		snprintf(got, sizeof(got), "%s", a->cfg.flags & (bit) ? "true" : "false"); \
		snprintf(have, sizeof(have), "%s", q->cfg.flags & (bit) ? "true" : "false"); }
#define CMP_S(field, label) \
	if (!what && !str_eq(q->field, a->field)) { \
		what = label; \
		snprintf(got, sizeof(got), "%s", a->field ? a->field : "(none)"); \
		snprintf(have, sizeof(have), "%s", q->field ? q->field : "(none)"); }
	CMP_U(capacity, "capacity")
	CMP_U(slot_size, "slot_size")
	CMP_U(overflow, "overflow")
	CMP_U(ttl_ms, "ttl_ms")
	CMP_U(numa_node, "numa_node")
	CMP_F(HBUS_QUEUE_F_LATENCY, "latency")
	CMP_F(HBUS_QUEUE_F_PROTECTED, "protected")
	CMP_S(dlx, "dead_letter_exchange")
	CMP_S(dlx_key, "dead_letter_routing_key")
	CMP_B(durable, "durable")
	CMP_B(exclusive, "exclusive")
	CMP_B(auto_delete, "auto_delete")
#undef CMP_U
#undef CMP_F
#undef CMP_B
#undef CMP_S
	if (!what)
		return 0;
	return herr_set(e, AMQP_PRECONDITION,
			"inequivalent arg '%s' for queue '%s': received '%s' but current is '%s'",
			what, q->name, got, have);
}

/* "amq.gen-" + 22 random URL-safe base64 characters, as RabbitMQ names them. */
void model_server_name(const struct model *m, char *out, size_t cap)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t r[22];
	unsigned i;

	do {
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			for (i = 0; i < sizeof(r); i++)
				r[i] = (uint8_t)rand();
		snprintf(out, cap, "amq.gen-");
		for (i = 0; i < sizeof(r) && 8 + i + 1 < cap; i++)
			out[8 + i] = b64[r[i] & 63];
		out[8 + i] = '\0';
	} while (model_queue(m, out));
}

static void undo_queue(struct model *m, void *p)
{
	int i = vec_find(&m->queues, p);

	if (i >= 0)
		vec_del(&m->queues, (unsigned)i);
	mq_free(m, p, true);
}

int model_declare_queue(struct model *m, const struct queue_args *a, uint32_t owner, bool passive,
			struct mx_queue **out, struct herr *e)
{
	struct queue_args named = *a;
	struct mx_queue *q = a->name[0] ? model_queue(m, a->name) : NULL;
	char gen[40];

	if (passive || q) {
		if (!q)
			return herr_set(e, AMQP_NOT_FOUND, "no queue '%s'", a->name);
		if (model_queue_access(m, q, owner, e) || (!passive && queue_equivalent(q, a, e)))
			return -1;
		*out = q;
		return 0;
	}
	if (model_check_name("queue", a->name, e) ||
	    (a->dlx && model_check_name("dead-letter exchange", a->dlx, e)) ||
	    (a->dlx_key && model_check_name("dead-letter routing key", a->dlx_key, e)))
		return -1;
	if (is_reserved(a->name) && !a->server_named)
		return herr_set(e, AMQP_NOT_ALLOWED,
				"queue name '%s' uses the reserved prefix 'amq.' (declare name \"\" "
				"to get a server-named queue)", a->name);
	if (m->queues.n >= m->lim.max_queues)
		return herr_set(e, AMQP_PRECONDITION, "limit of %u queues reached (hbusd --max-queues)",
				m->lim.max_queues);
	if (!a->name[0]) {
		model_server_name(m, gen, sizeof(gen));
		named.name = gen;
	}
	if (m->lim.max_queue_bytes && mq_ring_bytes(&a->cfg) > m->lim.max_queue_bytes)
		return herr_set(e, AMQP_PRECONDITION,
				"queue '%s' needs %llu bytes (capacity %u x slot_size %u): over the "
				"limit of %llu bytes per queue (hbusd --max-queue-bytes)", named.name,
				(unsigned long long)mq_ring_bytes(&a->cfg), a->cfg.capacity,
				a->cfg.slot_size, (unsigned long long)m->lim.max_queue_bytes);
	if (mq_create(m, &named, owner, &q, e))
		return -1;
	if (vec_push(&m->queues, q)) {
		mq_free(m, q, true);
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	}
	if (model_commit_or_undo(m, e, undo_queue, q))
		return -1;
	*out = q;
	return 0;
}

void model_remove_consumer_at(struct model *m, unsigned i)
{
	struct mx_consumer *c = m->consumers.v[i];

	c->q->consumers--;
	if (c->exclusive)
		c->q->exclusive_consumer = false;
	vec_del(&m->consumers, i);
	model_free_consumer(c);
}

void model_drop_queue(struct model *m, struct mx_queue *q)
{
	unsigned i = 0;

	while (i < m->consumers.n) {
		if (((struct mx_consumer *)m->consumers.v[i])->q == q)
			model_remove_consumer_at(m, i);
		else
			i++;
	}
	i = 0;
	while (i < m->pending.n) {
		struct mx_pending *p = m->pending.v[i];
		if (p->qid == q->qid) {
			vec_del(&m->pending, i);
			free(p);
		} else {
			i++;
		}
	}
	model_remove_bindings_of(m, q->name, false);
	model_autodelete_exchanges(m);
	vec_del(&m->queues, (unsigned)vec_find(&m->queues, q));
	mq_free(m, q, true);
}

int model_delete_queue(struct model *m, const char *name, uint32_t owner, bool if_unused,
		       bool if_empty, uint64_t *messages, struct herr *e)
{
	struct mx_queue *q = model_queue(m, name);
	uint64_t depth = 0;

	if (!q)
		return herr_set(e, AMQP_NOT_FOUND, "no queue '%s'", name);
	if (model_queue_access(m, q, owner, e))
		return -1;
	if (if_unused && q->consumers)
		return herr_set(e, AMQP_PRECONDITION, "queue '%s' in use: %u consumer(s) (if_unused)",
				name, q->consumers);
	mq_depth(q, &depth);
	if (if_empty) {
		/* Counted from the slots themselves, not from counters that a
		 * producer between its publish and its count makes lag. */
		struct hbus_queue_census c;

		mq_scan(q, &c);
		if (c.ready + c.claimed + c.writing + c.removing)
			return herr_set(e, AMQP_PRECONDITION, "queue '%s' not empty: %llu message(s) "
					"ready, %llu held (if_empty)", name, (unsigned long long)c.ready,
					(unsigned long long)(c.claimed + c.writing + c.removing));
	}
	*messages = depth;
	HBUS_INFO("queue '%s' (qid %u) deleted with %llu message(s)", name, q->qid,
		  (unsigned long long)depth);
	model_drop_queue(m, q);
	model_commit_removal(m);
	return 0;
}

int model_purge_queue(struct model *m, const char *name, uint32_t owner, uint64_t *purged,
		      struct herr *e)
{
	struct mx_queue *q = model_queue(m, name);
	int rc;

	if (!q)
		return herr_set(e, AMQP_NOT_FOUND, "no queue '%s'", name);
	if (model_queue_access(m, q, owner, e) || grant_purge_check(q, e))
		return -1;
	if (q->corrupt)
		return herr_set(e, AMQP_PRECONDITION, "queue '%s' is corrupt: delete and declare it "
				"again", name);
	rc = mq_purge(m, q, purged);
	if (rc == -EUCLEAN)
		return herr_set(e, AMQP_PRECONDITION, "queue '%s' is corrupt (%s): delete and "
				"declare it again", name, hbus_strerror(rc));
	if (rc < 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "purging queue '%s': %s", name,
				hbus_strerror(rc));
	return 0;
}
