/*
 * model_commit.c - from model to readers: compile the routing table,
 * persist, publish by generation; and the retry work the event loop does
 * when publishing or a recovery has to wait.
 */
#include "model.h"
#include "defs.h"
#include "log.h"
#include "superblock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCRATCH_MIN (64u << 10)

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct rc_arrays {
	struct hbus_rc_exchange *x;
	struct hbus_rc_queue *q;
	struct hbus_rc_binding *b;
	struct hbus_rc_udpmap *u;
};

/* Build the compiler's input.  An alternate or dead-letter exchange that
 * does not exist is left out, as RabbitMQ ignores a dangling one until it
 * is declared. */
static int build_input(const struct model *m, struct rc_arrays *a, struct hbus_rc_input *in)
{
	unsigned i;

	memset(a, 0, sizeof(*a));
	a->x = calloc(m->exchanges.n + 1, sizeof(*a->x));
	a->q = calloc(m->queues.n + 1, sizeof(*a->q));
	a->b = calloc(m->bindings.n + 1, sizeof(*a->b));
	a->u = calloc(m->udpmaps.n + 1, sizeof(*a->u));
	if (!a->x || !a->q || !a->b || !a->u)
		return -ENOMEM;
	for (i = 0; i < m->exchanges.n; i++) {
		const struct mx_exchange *x = m->exchanges.v[i];
		a->x[i].name = x->name;
		a->x[i].type = x->type;
		a->x[i].alternate = x->alternate && model_exchange_exists(m, x->alternate)
					    ? x->alternate : NULL;
	}
	for (i = 0; i < m->queues.n; i++) {
		const struct mx_queue *q = m->queues.v[i];
		bool dlx = q->dlx && model_exchange_exists(m, q->dlx);
		a->q[i].name = q->name;
		a->q[i].qid = q->qid;
		a->q[i].dead_letter_exchange = dlx ? q->dlx : NULL;
		a->q[i].dead_letter_key = dlx ? q->dlx_key : NULL;
	}
	for (i = 0; i < m->bindings.n; i++) {
		const struct mx_binding *b = m->bindings.v[i];
		a->b[i].source = b->source;
		a->b[i].dest = b->dest;
		a->b[i].dest_is_exchange = b->dest_is_exchange;
		a->b[i].key = b->key;
		a->b[i].headers = b->headers;
		a->b[i].header_count = b->n_headers;
		a->b[i].match_all = b->match_all;
	}
	for (i = 0; i < m->udpmaps.n; i++) {
		const struct mx_udpmap *u = m->udpmaps.v[i];
		a->u[i].ip_be = u->ip_be;
		a->u[i].port = u->port;
		a->u[i].exchange = u->exchange;
		a->u[i].key = u->key;
	}
	in->exchanges = a->x;
	in->n_exchanges = m->exchanges.n;
	in->queues = a->q;
	in->n_queues = m->queues.n;
	in->bindings = a->b;
	in->n_bindings = m->bindings.n;
	in->udpmaps = a->u;
	in->n_udpmaps = m->udpmaps.n;
	return 0;
}

static void free_input(struct rc_arrays *a)
{
	free(a->x);
	free(a->q);
	free(a->b);
	free(a->u);
}

/* Compile into m->scratch, growing it; *used = table bytes. */
static int compile(struct model *m, size_t *used, struct herr *e)
{
	struct hbus_rc_input in;
	struct rc_arrays a;
	int rc;

	rc = build_input(m, &a, &in);
	while (rc == 0) {
		size_t cap;
		void *p;

		*used = 0;
		rc = hbus_route_compile(&in, m->scratch, m->scratch_cap, used);
		if (rc != -ENOSPC)
			break;
		if (*used > m->lim.routes_table_cap || m->scratch_cap >= m->lim.routes_table_cap) {
			rc = -E2BIG;
			break;
		}
		cap = m->scratch_cap ? m->scratch_cap * 2 : SCRATCH_MIN;
		if (cap < *used)
			cap = *used;
		if (cap > m->lim.routes_table_cap)
			cap = m->lim.routes_table_cap;
		p = realloc(m->scratch, cap);
		if (!p) {
			rc = -ENOMEM;
			break;
		}
		m->scratch = p;
		m->scratch_cap = cap;
		rc = 0; /* and compile again */
	}
	free_input(&a);
	if (rc == 0 && *used > m->lim.routes_table_cap)
		rc = -E2BIG;
	if (rc == -E2BIG)
		return herr_set(e, AMQP_PRECONDITION,
				"the routing table would exceed its limit of %zu bytes (hbusd "
				"--routes-size; %u exchanges, %u queues, %u bindings)",
				m->lim.routes_table_cap, m->exchanges.n, m->queues.n, m->bindings.n);
	if (rc == -ENOMEM)
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory compiling the routing table");
	if (rc)
		return herr_set(e, AMQP_INTERNAL_ERROR, "compiling the routing table failed: %s",
				hbus_strerror(rc));
	return 0;
}

int model_commit(struct model *m, struct herr *e)
{
	void *t;
	size_t used = 0, c;
	char *text;

	if (compile(m, &used, e))
		return -1;
	if (m->defs_path) {
		text = defs_render_text(m, DEFS_DURABLE);
		if (!text)
			return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory rendering definitions");
		/* A file hbusd could not read back at its next start must not
		 * be written in the first place. */
		if (m->lim.max_definitions && strlen(text) + 1 > m->lim.max_definitions) {
			herr_set(e, AMQP_PRECONDITION, "the definitions file would be %zu bytes: over "
				 "the limit of %zu bytes (hbusd --max-definitions)", strlen(text) + 1,
				 m->lim.max_definitions);
			free(text);
			return -1;
		}
		/* Only a change to durable topology touches the disk. */
		if (!m->defs_text || strcmp(text, m->defs_text)) {
			if (defs_write_atomic(m->defs_path, text, e)) {
				free(text);
				return -1;
			}
			free(m->defs_text);
			m->defs_text = text;
		} else {
			free(text);
		}
	}
	/* The new table replaces any table still waiting to be published: the
	 * newest topology is the only one worth publishing. */
	t = m->table;
	c = m->table_cap;
	m->table = m->scratch;
	m->table_cap = m->scratch_cap;
	m->table_len = used;
	m->scratch = t;
	m->scratch_cap = c;
	m->version++;
	model_publish_retry(m);
	model_save_state(m);
	return 0;
}

bool model_publish_waiting(const struct model *m)
{
	return m->published_version != m->version;
}

int model_publish_retry(struct model *m)
{
	uint64_t gen = 0, now;
	int rc;

	if (!model_publish_waiting(m) || !m->routes)
		return 0;
	rc = readers_publish(&m->readers, m->routes, m->table, m->table_len, &gen);
	if (rc == 0) {
		if (m->publish_blocked_ns)
			HBUS_INFO("routing table generation %llu published after waiting %llu ms "
				  "for readers", (unsigned long long)gen,
				  (unsigned long long)((mono_ns() - m->publish_blocked_ns) / 1000000));
		m->published_version = m->version;
		m->generation = gen;
		m->publish_blocked_ns = 0;
		return 0;
	}
	if (rc != -EBUSY) {
		HBUS_ERR("publishing the routing table (%zu bytes): %s", m->table_len,
			 hbus_strerror(rc));
		return rc;
	}
	now = mono_ns();
	if (!m->publish_blocked_ns) {
		m->publish_blocked_ns = now;
		m->publish_warned_ns = now;
	} else if (now - m->publish_warned_ns > 1000000000ull) {
		/* Once a second while it lasts. */
		m->publish_warned_ns = now;
		HBUS_WARN("routing table publish blocked for %llu ms: a reader is still on an old "
			  "generation (a process stopped mid-burst?); topology replies wait, at "
			  "most --reader-timeout (%u ms) per reader",
			  (unsigned long long)((now - m->publish_blocked_ns) / 1000000),
			  m->readers.timeout_ms);
	}
	return rc;
}

int model_save_state(struct model *m)
{
	char *text = defs_render_text(m, DEFS_STATE);
	int rc;

	if (!text) {
		HBUS_ERR("out of memory rendering the state file");
		return -ENOMEM;
	}
	rc = state_write(m->bus_fd, text);
	if (rc)
		HBUS_WARN("cannot write %s/topology.json: %s (a restarted hbusd adopts only "
			  "durable topology and queue files)", m->bus_dir, hbus_strerror(rc));
	free(text);
	return rc;
}

/* Is a recovery of owner pending (on queue qid, or on any when any_qid)? */
static bool pending_has(const struct model *m, uint32_t owner, bool any_qid, uint32_t qid)
{
	for (unsigned i = 0; i < m->pending.n; i++) {
		const struct mx_pending *p = m->pending.v[i];

		if (p->owner == owner && (any_qid || p->qid == qid))
			return true;
	}
	return false;
}

bool model_owner_pending(const struct model *m, uint32_t owner)
{
	return pending_has(m, owner, true, 0);
}

bool model_recovery_pending(const struct model *m, uint32_t qid, uint32_t owner)
{
	return pending_has(m, owner, false, qid);
}

unsigned model_retry_pending(struct model *m)
{
	uint32_t done[64];
	unsigned i = 0, nd = 0, k;

	while (i < m->pending.n) {
		struct mx_pending *p = m->pending.v[i];
		struct mx_queue *q = model_queue_by_qid(m, p->qid);

		/* Claims waiting for room to be requeued (the rest was done
		 * in the first pass; doing it again finds nothing). */
		if (q && mq_recover(m, q, p->owner) == -EAGAIN) {
			i++;
			continue;
		}
		if (nd < 64)
			done[nd++] = p->owner;
		vec_del(&m->pending, i);
		free(p);
	}
	/* An owner leaves the session table once nothing of it is left to
	 * recover: a restarted hbusd then has nothing to do for it. */
	for (k = 0; k < nd; k++)
		if (!model_owner_pending(m, done[k]) && m->sb)
			sb_session_remove(m->sb, done[k]);
	return m->pending.n;
}
