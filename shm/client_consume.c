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
 * Send consume for cc on the current session; on success cc's tag and qid
 * are the new ones, *fast says whether hbusd lets it claim without a CAS
 * (an exclusive consumer: "exclusive_fast") and *fd (when fd is not NULL)
 * is the queue's descriptor.
 */
static int consumer_register_locked(hbus_client *c, struct client_consumer *cc, int *fd,
				    bool *fast)
{
	json_t *req, *reply = NULL;
	int rc, qfd = -1;

	*fast = false;
	req = json_pack("{s:s, s:s, s:s, s:I, s:b}", "op", "consume", "queue", cc->queue,
			"ack_mode", cc->ack_mode == HBUS_ACK_MANUAL ? "manual" : "auto",
			"prefetch", (json_int_t)cc->prefetch,
			"exclusive", (cc->flags & HBUS_CONSUME_EXCLUSIVE) != 0);
	if (!req)
		return -ENOMEM;
	rc = client_request_locked(c, req, &reply, &qfd);
	json_decref(req);
	if (rc == 0) {
		const char *tag = json_string_value(json_object_get(reply, "consumer_tag"));
		free(cc->tag);
		cc->tag = tag ? strdup(tag) : NULL;
		cc->qid = (uint32_t)json_integer_value(json_object_get(reply, "qid"));
		*fast = (cc->flags & HBUS_CONSUME_EXCLUSIVE) &&
			json_is_true(json_object_get(reply, "exclusive_fast"));
		if (fd && qfd < 0) {
			client_set_error_locked(c, 0, "consume reply without a queue descriptor");
			rc = -EPROTO;
		}
	}
	json_decref(reply);
	if (fd && rc == 0)
		*fd = qfd;
	else if (qfd >= 0)
		close(qfd);
	return rc;
}

/*
 * A new session: register every consumer again.  A handle keeps the owner
 * id it was opened with for life, whatever id the new session has: its
 * records and the slots it holds name that id, and hbusd, which watched
 * this process when the old session ended, recovers them when it exits.
 * Moving a handle to a new id under a consumer that is using it (as
 * before) raced with that consumer, and taking back its claims here raced
 * with hbusd's own recovery of them.
 */
void consumers_rejoin_locked(hbus_client *c, uint32_t new_owner)
{
	struct client_consumer *cc;
	bool fast;

	(void)new_owner;
	for (cc = c->consumers; cc; cc = cc->next) {
		int rc = consumer_register_locked(c, cc, NULL, &fast);

		if (rc)
			HBUS_WARN("consumer of queue '%s' not registered again: %s", cc->queue,
				  rc == -EREMOTEIO ? c->err_msg : hbus_strerror(rc));
		/* An only consumer hbusd no longer says may claim without a
		 * CAS claims by CAS from now on (the handle's own thread sees
		 * it at its next claim). */
		if (!fast && q_sc(cc->q)) {
			queue_drop_exclusive(cc->q);
			HBUS_WARN("consumer of queue '%s': no longer its only consumer for hbusd; it "
				  "claims by CAS from now on", cc->queue);
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
	int rc, fd = -1;

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
	rc = consumer_register_locked(c, cc, &fd, &fast);
	if (rc == 0) {
		/* The owner of the session that answered (the lock is held). */
		o.owner = atomic_load_explicit(&c->owner, memory_order_relaxed);
		o.flags = fast ? HBUS_CONSUME_EXCLUSIVE : 0;
		rc = hbus_queue_open_fd(fd, &o, &cc->q);
		close(fd);
	}
	if (rc == 0) {
		hbus_queue_set_dead_letter(cc->q, client_dead_letter, cc);
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
	 * (by this handle itself: no one else takes a live process's slots). */
	if (hbus_queue_release_held(cc->q, NULL) != 0)
		HBUS_WARN("queue '%s': some unacked messages could not be given back now; they "
			  "are requeued when this process exits", cc->queue);
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
