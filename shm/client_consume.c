/*
 * client_consume.c - consumers: registration with hbusd (consume/cancel),
 * the queue handle a consumer reads, and re-registration when a new
 * session replaces a lost one (client.c, "Reconnect").
 */
#include "client_internal.h"
#include "queue_internal.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void consumer_free(struct client_consumer *cc)
{
	if (cc->q)
		hbus_queue_close(cc->q);
	free(cc->queue);
	free(cc->tag);
	free(cc);
}

/*
 * A reader of a protected queue maps its messages read-only and cannot
 * write the redelivered flag a requeue sets: it asks hbusd, which does it
 * on the slot if this owner (or virtual session) holds it.  -ESTALE when
 * hbusd says it does not.
 */
static int requeue_by_hbusd(void *ctx, hbus_queue *q, const struct hbus_msg *m)
{
	struct client_consumer *cc = ctx;
	json_t *req, *reply = NULL;
	int rc, code = 0;

	(void)q;
	req = json_pack("{s:s, s:I, s:I}", "op", "requeue", "qid", (json_int_t)cc->qid, "pos",
			(json_int_t)m->pos);
	if (req && cc->as)
		json_object_set_new(req, "as", json_integer(cc->as));
	rc = req ? client_request(cc->client, req, &reply, NULL) : -ENOMEM;
	if (rc == -EREMOTEIO)
		code = (int)json_integer_value(json_object_get(reply, "code"));
	json_decref(req);
	json_decref(reply);
	return code == 404 ? -ESTALE : rc;
}

int consumer_open(struct client_consumer *cc, int fds[2], const struct hbus_queue_opts *o)
{
	int rc = fds[0] >= 0 ? hbus_queue_open_fds(fds[0], fds[1], o, &cc->q) : -EPROTO;
	bool prot = fds[1] >= 0;

	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	if (rc)
		return rc;
	hbus_queue_set_dead_letter(cc->q, client_dead_letter, cc);
	if (prot)
		hbus_queue_set_requeue(cc->q, requeue_by_hbusd, cc);
	return 0;
}

/*
 * Send consume for cc on the current session; on success cc's tag and qid
 * are the new ones, *fast says whether hbusd lets it claim without a CAS
 * (an exclusive consumer: "exclusive_fast") and fds (when not NULL) are
 * the queue's descriptors.
 */
static int consumer_register_locked(hbus_client *c, struct client_consumer *cc, int fds[2],
				    bool *fast, const char *tag_again)
{
	json_t *req, *reply = NULL;
	int rc, qfds[2] = { -1, -1 };

	*fast = false;

	req = json_pack("{s:s, s:s, s:s, s:I, s:b}", "op", "consume", "queue", cc->queue,
			"ack_mode", cc->ack_mode == HBUS_ACK_MANUAL ? "manual" : "auto",
			"prefetch", (json_int_t)cc->prefetch,
			"exclusive", (cc->flags & HBUS_CONSUME_EXCLUSIVE) != 0);
	if (req && tag_again)
		json_object_set_new(req, "consumer_tag", json_string(tag_again));
	if (!req)
		return -ENOMEM;
	rc = client_request_fds_locked(c, req, &reply, qfds);
	json_decref(req);
	if (rc == 0) {
		const char *tag = json_string_value(json_object_get(reply, "consumer_tag"));
		free(cc->tag);
		cc->tag = tag ? strdup(tag) : NULL;
		cc->qid = (uint32_t)json_integer_value(json_object_get(reply, "qid"));
		*fast = (cc->flags & HBUS_CONSUME_EXCLUSIVE) &&
			json_is_true(json_object_get(reply, "exclusive_fast"));
		if (fds && qfds[0] < 0) {
			client_set_error_locked(c, 0, "consume reply without a queue descriptor");
			rc = -EPROTO;
		}
	}
	json_decref(reply);
	for (int i = 0; i < 2; i++) {
		if (fds && rc == 0)
			fds[i] = qfds[i];
		else if (qfds[i] >= 0)
			close(qfds[i]);
	}
	return rc;
}

/* Does hbusd have a consumer tagged tag that claims without a CAS? */
static bool listed_fast_locked(hbus_client *c, const char *tag)
{
	json_t *req = json_pack("{s:s, s:s}", "op", "list", "what", "consumers"), *reply = NULL, *it;
	bool fast = false;
	size_t i;

	if (req && client_request_locked(c, req, &reply, NULL) == 0)
		json_array_foreach(json_object_get(reply, "items"), i, it) {
			const char *t = json_string_value(json_object_get(it, "consumer_tag"));

			if (t && !strcmp(t, tag))
				fast = json_is_true(json_object_get(it, "exclusive_fast"));
		}
	json_decref(req);
	json_decref(reply);
	return fast;
}

/*
 * A new session: register consumers again.  A handle keeps the owner id it
 * was opened with for life, whatever id the new session has: its records
 * and the slots it holds name that id, and hbusd, which watched this
 * process when the old session ended, recovers them when it exits.
 * Moving a handle to a new id under a consumer that is using it (as
 * before) raced with that consumer, and taking back its claims here raced
 * with hbusd's own recovery of them.
 *
 * A resumed owner's consumers are hbusd's already (kept across its
 * restart), except for the only consumer that claims without a CAS: it
 * registers again under its own tag with every new session, and if hbusd
 * does not say it still may claim so (in the reply, or, when it refuses
 * because it has the consumer already, in its list), the handle claims by
 * CAS from then on.  So a handle never keeps claiming without a CAS once hbusd no
 * longer holds the queue for it (a lost state file, a new owner id).
 */
void consumers_rejoin_locked(hbus_client *c, bool resumed)
{
	struct client_consumer *cc;
	bool fast;

	for (cc = c->consumers; cc; cc = cc->next) {
		bool sc = q_sc(cc->q);
		int rc;

		if (resumed && !sc)
			continue;
		rc = consumer_register_locked(c, cc, NULL, &fast, sc ? cc->tag : NULL);
		/* Refused (the tag in use, the queue held): hbusd may have it
		 * already, restored across its restart. */
		if (rc == -EREMOTEIO && sc && cc->tag && listed_fast_locked(c, cc->tag))
			fast = true;
		else if (rc)
			HBUS_WARN("consumer of queue '%s' not registered again: %s", cc->queue,
				  rc == -EREMOTEIO ? c->err_msg : hbus_strerror(rc));
		/* The handle's own thread sees it at its next claim. */
		if (sc && !fast) {
			queue_drop_exclusive(cc->q);
			HBUS_WARN("consumer of queue '%s': hbusd no longer holds the queue for it alone; "
				  "it claims by CAS from now on", cc->queue);
		}
	}
}

int hbus_consume_open(hbus_client *c, const char *queue, uint32_t ack_mode, uint32_t prefetch,
		      hbus_queue **out)
{
	return hbus_consume_open_ex(c, queue, ack_mode, prefetch, 0, out);
}

int hbus_consume_open_ex(hbus_client *c, const char *queue, uint32_t ack_mode,
			 uint32_t prefetch, uint32_t flags, hbus_queue **out)
{
	struct hbus_queue_opts o = { .ack_mode = ack_mode, .prefetch = prefetch };
	struct client_consumer *cc;
	bool fast = false;
	int rc, fds[2];

	if (!c || !queue || !out || strlen(queue) > HBUS_NAME_MAX || ack_mode > HBUS_ACK_MANUAL ||
	    (flags & ~HBUS_CONSUME_EXCLUSIVE))
		return -EINVAL;
	*out = NULL;
	cc = calloc(1, sizeof(*cc));
	if (!cc || !(cc->queue = strdup(queue))) {
		free(cc);
		return -ENOMEM;
	}
	cc->client = c;
	cc->ack_mode = ack_mode;
	cc->prefetch = prefetch;
	cc->flags = flags;
	pthread_mutex_lock(&c->lock);
	rc = consumer_register_locked(c, cc, fds, &fast, NULL);
	if (rc == 0) {
		/* The owner of the session that answered (the lock is held). */
		o.owner = atomic_load_explicit(&c->owner, memory_order_relaxed);
		o.flags = fast ? HBUS_CONSUME_EXCLUSIVE : 0;
		rc = consumer_open(cc, fds, &o);
	}
	if (rc == 0) {
		cc->next = c->consumers;
		c->consumers = cc;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		consumer_free(cc);
		return rc;
	}
	*out = cc->q;
	return 0;
}

int hbus_consume_close(hbus_client *c, hbus_queue *q)
{
	struct client_consumer **pp, *cc;
	json_t *req, *reply = NULL;
	int rc = 0;

	if (!c || !q)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	for (pp = &c->consumers; *pp && (*pp)->q != q; pp = &(*pp)->next)
		;
	cc = *pp;
	if (!cc) {
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	*pp = cc->next;
	/* What it still holds goes back now, as when an AMQP channel closes
	 * (by this handle itself: no one else takes a live process's slots).
	 * Unlocked: a protected queue's reader requeues through hbusd. */
	pthread_mutex_unlock(&c->lock);
	if (hbus_queue_release_held(cc->q, NULL) != 0)
		HBUS_WARN("queue '%s': some unacked messages could not be given back now; they "
			  "are requeued when this process exits", cc->queue);
	pthread_mutex_lock(&c->lock);
	/* A cancel that cannot reach hbusd is not an error: the dead session
	 * already cancelled the consumer. */
	if (cc->tag && (req = json_pack("{s:s, s:s}", "op", "cancel", "consumer_tag", cc->tag))) {
		rc = client_request_locked(c, req, &reply, NULL);
		json_decref(req);
		json_decref(reply);
		if (rc != -EREMOTEIO)
			rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	consumer_free(cc);
	return rc;
}
