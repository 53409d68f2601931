/*
 * client_as.c - queue handles for a gateway's virtual sessions
 * (hbus_consume_open_as): the consume or open_queue request carries "as",
 * hbusd checks it as that virtual session's user, and the handle claims
 * slots under the virtual session's owner id, so hbusd gives them back when
 * that session (or the gateway) goes.  Kept apart from the session's own
 * consumers: those are registered again after a reconnect, these are not.
 */
#include "client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *request_for(const char *queue, const struct hbus_consume_as *o)
{
	json_t *req;

	if (o->get_only)
		req = json_pack("{s:s, s:s, s:s}", "op", "open_queue", "name", queue, "for", "read");
	else
		req = json_pack("{s:s, s:s, s:s, s:I, s:b}", "op", "consume", "queue", queue,
				"ack_mode", o->ack_mode == HBUS_ACK_MANUAL ? "manual" : "auto",
				"prefetch", (json_int_t)o->prefetch, "exclusive", o->exclusive != 0);
	if (req && o->as)
		json_object_set_new(req, "as", json_integer(o->as));
	if (req && !o->get_only && o->tag && o->tag[0])
		json_object_set_new(req, "consumer_tag", json_string(o->tag));
	return req;
}

int hbus_consume_open_as(hbus_client *c, const char *queue, const struct hbus_consume_as *o,
			 hbus_queue **out, char *tag_out, size_t tag_cap)
{
	struct hbus_queue_opts qo;
	struct client_consumer *cc;
	json_t *req, *reply = NULL;
	int rc, fds[2] = { -1, -1 };

	if (!c || !queue || !o || !out || strlen(queue) > HBUS_NAME_MAX ||
	    o->ack_mode > HBUS_ACK_MANUAL || o->as > HBUS_OWNER_MAX ||
	    (o->tag && strlen(o->tag) > HBUS_NAME_MAX))
		return -EINVAL;
	*out = NULL;
	cc = calloc(1, sizeof(*cc));
	req = request_for(queue, o);
	if (!cc || !req || !(cc->queue = strdup(queue))) {
		json_decref(req);
		free(cc);
		return -ENOMEM;
	}
	cc->client = c;
	cc->as = o->as;
	cc->ack_mode = o->ack_mode;
	cc->prefetch = o->prefetch;
	pthread_mutex_lock(&c->lock);
	rc = client_request_fds_locked(c, req, &reply, fds);
	json_decref(req);
	if (rc == 0 && fds[0] < 0) {
		client_set_error_locked(c, 0, "reply without a queue descriptor");
		rc = -EPROTO;
	}
	if (rc == 0) {
		const char *tag = json_string_value(json_object_get(reply, "consumer_tag"));

		cc->qid = (uint32_t)json_integer_value(json_object_get(reply, "qid"));
		if (tag && tag_out && tag_cap)
			snprintf(tag_out, tag_cap, "%s", tag);
		/* An exclusive consumer hbusd lets claim without a CAS
		 * (docs/CONTROL.md, "Exclusive handles"). */
		bool fast = o->exclusive && !o->get_only &&
			    json_is_true(json_object_get(reply, "exclusive_fast"));

		qo = (struct hbus_queue_opts){
			.owner = o->as ? o->as : atomic_load_explicit(&c->owner, memory_order_relaxed),
			.ack_mode = o->ack_mode, .prefetch = o->prefetch,
			.flags = fast ? HBUS_CONSUME_EXCLUSIVE : 0 };
		rc = consumer_open(cc, fds, &qo); /* closes fds */
	}
	for (int i = 0; rc && i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	json_decref(reply);
	if (rc == 0) {
		cc->next = c->as_handles;
		c->as_handles = cc;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		consumer_free(cc);
		return rc;
	}
	*out = cc->q;
	return 0;
}

int hbus_consume_close_as(hbus_client *c, hbus_queue *q)
{
	struct client_consumer **pp, *cc;

	if (!c || !q)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	for (pp = &c->as_handles; *pp && (*pp)->q != q; pp = &(*pp)->next)
		;
	cc = *pp;
	if (cc)
		*pp = cc->next;
	pthread_mutex_unlock(&c->lock);
	if (!cc)
		return -ENOENT;
	consumer_free(cc);
	return 0;
}
