/*
 * model_grant.c - who may take which ring path on a queue: the exclusive
 * producer and the fast exclusive consumer (docs/CONTROL.md, "Exclusive
 * handles"; docs/QUEUE.md, "Exclusive handles").
 *
 * A handle opened HBUS_PRODUCE_EXCLUSIVE claims slots without a CAS, one
 * opened HBUS_CONSUME_EXCLUSIVE claims messages with a plain store.  Either
 * corrupts the queue if anyone else claims on its side, so hbusd grants
 * them and keeps everyone else out.  The difficulty is that a session is
 * not a process: a session that closes while its process runs leaves the
 * process's handles working (nothing is taken from a running process), so
 * every grant here lasts until the owner's PROCESS has exited
 * (grants_owner_exited), not until its session closed:
 *   writers   owners sent the queue file for writing;
 *   readers   owners that may claim without being a consumer now: those
 *             that opened it for reading (basic.get), and consumers whose
 *             session closed while their process runs;
 *   xp_owner  the exclusive producer: no other owner is sent the file for
 *             writing, and it was granted only when no other owner was;
 *   xc_owner  the fast exclusive consumer: no other consumer, no reader,
 *             no purge; it was granted only when no message was claimed
 *             or being removed by anyone (a previous consumer's claims
 *             would be requeued beside its plain claims).
 * All of it is in the state file, so a restarted hbusd keeps enforcing it
 * for the processes that outlived the previous one.
 */
#include "model.h"
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static bool set_has(const struct ownerset *s, uint32_t owner)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->v[i] == owner)
			return true;
	return false;
}

/* 1 added, 0 already there, -ENOMEM. */
static int set_add(struct ownerset *s, uint32_t owner)
{
	if (set_has(s, owner))
		return 0;
	if (s->n == s->cap) {
		unsigned cap = s->cap ? s->cap * 2 : 4;
		uint32_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = owner;
	return 1;
}

static bool set_del(struct ownerset *s, uint32_t owner)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->v[i] == owner) {
			s->v[i] = s->v[--s->n];
			return true;
		}
	return false;
}

/* An owner of s other than owner, 0 when there is none. */
static uint32_t set_other(const struct ownerset *s, uint32_t owner)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->v[i] != owner)
			return s->v[i];
	return 0;
}

void grants_free(struct mx_queue *q)
{
	free(q->writers.v);
	free(q->readers.v);
	free(q->xc_tag);
	memset(&q->writers, 0, sizeof(q->writers));
	memset(&q->readers, 0, sizeof(q->readers));
	q->xc_tag = NULL;
	q->xc_owner = q->xp_owner = 0;
}

static int locked_by_consumer(const struct mx_queue *q, struct herr *e, const char *what)
{
	return herr_set(e, AMQP_RESOURCE_LOCKED, "queue '%s' has an exclusive consumer ('%s', "
			"owner %u) that claims without a CAS: %s until it cancels or its process "
			"exits", q->name, q->xc_tag ? q->xc_tag : "?", q->xc_owner, what);
}

int grant_open(struct model *m, struct mx_queue *q, uint32_t owner, bool write, bool exclusive,
	       struct herr *e)
{
	bool changed;
	uint32_t other;
	int rc;

	if (!write) {
		/* A reader claims by CAS beside the plain claims of the only
		 * consumer: refused while there is one. */
		if (q->xc_owner)
			return locked_by_consumer(q, e, "no one else may open it for reading");
		rc = set_add(&q->readers, owner);
		if (rc < 0)
			return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		if (rc > 0 && !m->loading)
			model_save_state(m);
		return 0;
	}
	if (q->xp_owner && q->xp_owner != owner)
		return herr_set(e, AMQP_RESOURCE_LOCKED, "queue '%s' has an exclusive producer (owner "
				"%u): no other process may write to it until that one exits",
				q->name, q->xp_owner);
	/* The same owner's other write handles (its routers, its dead
	 * letters) would claim by CAS beside its exclusive handle's plain
	 * claims, but hbusd cannot tell one owner's handles apart, nor know
	 * when one closes: the client library keeps them apart
	 * (shm/client_produce.c), for as long as the exclusive handle is
	 * open.  The grant itself lasts as long as the process. */
	if (exclusive && !q->xp_owner && (other = set_other(&q->writers, owner)) != 0)
		return herr_set(e, AMQP_RESOURCE_LOCKED, "queue '%s' has another writer (owner %u, "
				"until its process exits): an exclusive producer must be the only one",
				q->name, other);
	rc = set_add(&q->writers, owner);
	if (rc < 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	changed = rc > 0 || (exclusive && !q->xp_owner);
	if (exclusive && !q->xp_owner) {
		q->xp_owner = owner;
		HBUS_INFO("queue '%s': owner %u is its exclusive producer", q->name, owner);
	}
	if (!changed || m->loading)
		return 0;
	/* The grant must survive an hbusd restart, or a restarted hbusd
	 * would let a second writer in beside a handle that claims without a
	 * CAS: no state file, no grant. */
	if (model_save_state(m) != 0 && exclusive && q->xp_owner == owner) {
		q->xp_owner = 0;
		if (rc > 0)
			set_del(&q->writers, owner);
		return herr_set(e, AMQP_INTERNAL_ERROR, "queue '%s': the exclusive producer grant "
				"cannot be kept across an hbusd restart (the state file in %s cannot "
				"be written)", q->name, m->bus_dir);
	}
	return 0;
}

int grant_consume_check(const struct mx_queue *q, uint32_t owner, bool exclusive,
			struct herr *e)
{
	/* The owner of the lock asking again is the process of the only
	 * consumer registering again (a new session, the same process). */
	if (q->xc_owner && !(exclusive && q->xc_owner == owner))
		return locked_by_consumer(q, e, "no other consumer may register");
	return 0;
}

int grant_purge_check(const struct mx_queue *q, struct herr *e)
{
	if (q->xc_owner)
		return locked_by_consumer(q, e, "purge is refused");
	return 0;
}

bool grant_consume_fast(struct model *m, struct mx_queue *q, uint32_t owner, const char *tag)
{
	struct hbus_queue_census c = { 0 };
	char *t;

	if (m->loading)
		return q->xc_owner == owner; /* as the state file says */
	if (q->xc_owner == owner) {
		/* Its process kept the handle, which claims as before. */
		if ((t = strdup(tag))) {
			free(q->xc_tag);
			q->xc_tag = t;
		}
		return true;
	}
	/* Producers remove from the head of a drop-head queue; another
	 * owner's reader may claim; a message claimed or being removed by
	 * anyone may be requeued or freed under the plain claims. */
	if (q->cfg.overflow == HBUS_OVERFLOW_DROP_HEAD || set_other(&q->readers, owner) ||
	    hbus_queue_scan(q->h, &c) != 0 || c.claimed || c.removing)
		return false;
	t = strdup(tag);
	if (!t)
		return false;
	free(q->xc_tag);
	q->xc_tag = t;
	q->xc_owner = owner;
	HBUS_INFO("queue '%s': consumer '%s' (owner %u) is its only consumer, claiming without a "
		  "CAS", q->name, tag, owner);
	return true;
}

void grant_consumer_cancelled(struct mx_queue *q, uint32_t owner)
{
	if (q->xc_owner != owner)
		return;
	HBUS_INFO("queue '%s': its exclusive consumer '%s' (owner %u) cancelled", q->name,
		  q->xc_tag ? q->xc_tag : "?", owner);
	free(q->xc_tag);
	q->xc_tag = NULL;
	q->xc_owner = 0;
}

bool grant_consumer_left(struct mx_queue *q, uint32_t owner)
{
	/* Its process runs on with the handle: it may still claim. */
	return q->xc_owner != owner && set_add(&q->readers, owner) > 0;
}

bool grants_owner_exited(struct model *m, uint32_t owner)
{
	bool changed = false;

	for (unsigned i = 0; i < m->queues.n; i++) {
		struct mx_queue *q = m->queues.v[i];

		changed |= set_del(&q->writers, owner);
		changed |= set_del(&q->readers, owner);
		if (q->xp_owner == owner) {
			HBUS_INFO("queue '%s': its exclusive producer (owner %u) has exited", q->name,
				  owner);
			q->xp_owner = 0;
			changed = true;
		}
		if (q->xc_owner == owner) {
			HBUS_INFO("queue '%s': its exclusive consumer '%s' (owner %u) has exited",
				  q->name, q->xc_tag ? q->xc_tag : "?", owner);
			free(q->xc_tag);
			q->xc_tag = NULL;
			q->xc_owner = 0;
			changed = true;
		}
	}
	return changed;
}

void grants_sweep(struct model *m, bool (*held)(void *ctx, uint32_t owner), void *ctx)
{
	uint32_t gone[64];
	unsigned n, k;

	/* Owners the state file named that nothing holds any more (no
	 * session, no watched process): their processes are gone. */
	do {
		n = 0;
		for (unsigned i = 0; i < m->queues.n && n < 64; i++) {
			struct mx_queue *q = m->queues.v[i];
			const struct ownerset *sets[2] = { &q->writers, &q->readers };

			for (k = 0; k < 2; k++)
				for (unsigned j = 0; j < sets[k]->n && n < 64; j++)
					if (!held(ctx, sets[k]->v[j]))
						gone[n++] = sets[k]->v[j];
			if (q->xp_owner && !held(ctx, q->xp_owner) && n < 64)
				gone[n++] = q->xp_owner;
			if (q->xc_owner && !held(ctx, q->xc_owner) && n < 64)
				gone[n++] = q->xc_owner;
		}
		for (k = 0; k < n; k++)
			grants_owner_exited(m, gone[k]);
	} while (n == 64);
	if (n)
		model_save_state(m);
}

/* ------------------------------------------------------------ state file */

static json_t *set_json(const struct ownerset *s)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < s->n; i++)
		json_array_append_new(a, json_integer(s->v[i]));
	return a;
}

void grants_render(const struct mx_queue *q, json_t *o)
{
	if (q->writers.n)
		json_object_set_new(o, "writers", set_json(&q->writers));
	if (q->readers.n)
		json_object_set_new(o, "readers", set_json(&q->readers));
	if (q->xp_owner)
		json_object_set_new(o, "exclusive_producer", json_integer(q->xp_owner));
	if (q->xc_owner) {
		json_object_set_new(o, "exclusive_consumer", json_integer(q->xc_owner));
		json_object_set_new(o, "exclusive_consumer_tag", json_string(q->xc_tag ? q->xc_tag : ""));
	}
}

/* An owner id from the state file, 0 when it is not one. */
static uint32_t owner_of(json_t *v)
{
	json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

	return n > 0 && n <= (json_int_t)HBUS_OWNER_MAX ? (uint32_t)n : 0;
}

void grants_restore(struct mx_queue *q, json_t *o)
{
	struct ownerset *sets[2] = { &q->writers, &q->readers };
	static const char *const keys[2] = { "writers", "readers" };
	const char *tag = json_string_value(json_object_get(o, "exclusive_consumer_tag"));
	json_t *v;
	size_t i;

	for (unsigned k = 0; k < 2; k++) {
		json_t *a = json_object_get(o, keys[k]);

		json_array_foreach(json_is_array(a) ? a : NULL, i, v)
			if (owner_of(v) && set_add(sets[k], owner_of(v)) < 0)
				HBUS_ERR("queue '%s': out of memory restoring its %s", q->name, keys[k]);
	}
	q->xp_owner = owner_of(json_object_get(o, "exclusive_producer"));
	q->xc_owner = owner_of(json_object_get(o, "exclusive_consumer"));
	if (q->xc_owner)
		q->xc_tag = strdup(tag ? tag : "");
	if (q->xp_owner || q->xc_owner)
		HBUS_INFO("queue '%s': exclusive producer owner %u, exclusive consumer owner %u kept "
			  "from the state file", q->name, q->xp_owner, q->xc_owner);
}
