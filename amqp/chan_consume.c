/*
 * chan_consume.c - basic.consume, basic.cancel and basic.get: each opens a
 * consumer handle through the control thread (ctl.c: hbusd's consume, as
 * the connection's AMQP user); deliveries are deliver.c.
 */
#include "chan_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct consumer *consumer_new(struct chan *ch, const char *queue, bool get_only, bool no_ack)
{
	struct consumer *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->ch = ch;
	snprintf(k->queue, sizeof(k->queue), "%s", queue);
	k->get_only = get_only;
	k->no_ack = no_ack;
	return k;
}

static void open_done(struct conn *c, struct ctl_req *r)
{
	struct chan *ch = conn_chan(c, r->channel);
	struct consumer *k = r->arg;

	if (!ch || ch->state != CH_OPEN || r->rc) {
		if (ch && ch->state == CH_OPEN && r->rc)
			chan_refused(ch, r);
		if (r->q) { /* opened for a channel that has gone */
			struct ctl_req *x = ctl_new(CTL_CLOSE_HANDLE);
			if (x) {
				x->q = r->q;
				ctl_submit_detached(x);
			}
		}
		free(k);
		return;
	}
	k->q = r->q;
	k->next = ch->consumers;
	ch->consumers = k;
	if (k->get_only) {
		deliver_get(ch, k);
		return;
	}
	snprintf(k->tag, sizeof(k->tag), "%s", r->tag);
	gw_gauge(&gw_stats.consumers, 1);
	if (!r->nowait) {
		amqp_basic_consume_ok_t m = { .consumer_tag = amqp_cstring_bytes(k->tag) };
		chan_put(ch, AMQP_BASIC_CONSUME_OK_METHOD, &m);
	}
}

static int open_handle(struct chan *ch, struct consumer *k, amqp_method_number_t id,
		       const char *tag, bool nowait)
{
	struct ctl_req *r = ctl_new(CTL_OPEN);

	if (!r) {
		free(k);
		return -1;
	}
	snprintf(r->queue, sizeof(r->queue), "%s", k->queue);
	r->as = (struct hbus_consume_as){ .as = ch->c->vs,
					  .ack_mode = k->no_ack ? HBUS_ACK_AUTO : HBUS_ACK_MANUAL,
					  .exclusive = k->exclusive, .get_only = k->get_only,
					  .tag = NULL };
	if (tag && tag[0]) {
		snprintf(r->tag, sizeof(r->tag), "%s", tag);
		r->as.tag = r->tag;
	}
	r->channel = ch->id;
	r->method = id;
	r->nowait = nowait;
	r->arg = k;
	r->done = open_done;
	ctl_submit(ch->c, r, true);
	return 0;
}

int chan_basic_consume(struct chan *ch, const amqp_basic_consume_t *m)
{
	char queue[256], tag[256];
	struct consumer *k;

	NAME(m->queue, queue, AMQP_BASIC_CONSUME_METHOD);
	NAME(m->consumer_tag, tag, AMQP_BASIC_CONSUME_METHOD);
	k = consumer_new(ch, queue, false, m->no_ack);
	if (!k)
		return -1;
	k->exclusive = m->exclusive;
	k->prefetch = ch->consumer_prefetch;
	return open_handle(ch, k, AMQP_BASIC_CONSUME_METHOD, tag, m->nowait);
}

int chan_basic_cancel(struct chan *ch, const amqp_basic_cancel_t *m)
{
	amqp_basic_cancel_ok_t ok = { .consumer_tag = m->consumer_tag };
	struct consumer **pp, *k;
	struct ctl_req *r;

	for (pp = &ch->consumers; (k = *pp); pp = &k->next)
		if (!k->get_only && strlen(k->tag) == m->consumer_tag.len &&
		    !memcmp(k->tag, m->consumer_tag.bytes, m->consumer_tag.len))
			break;
	if (k && !k->cancelled) {
		k->cancelled = true;
		r = ctl_new(CTL_CALL);
		if (r && (r->req = ctl_json(ch->c, "cancel"))) {
			json_object_set_new(r->req, "consumer_tag", json_string(k->tag));
			ctl_submit_detached(r);
		} else {
			ctl_free(r);
		}
		consumer_settled(k); /* freed now if it holds nothing */
	}
	/* Unknown tags are fine, as in RabbitMQ. */
	if (!m->nowait)
		chan_put(ch, AMQP_BASIC_CANCEL_OK_METHOD, &ok);
	return 0;
}

int chan_basic_get(struct chan *ch, const amqp_basic_get_t *m)
{
	char queue[256];
	struct consumer *k;

	NAME(m->queue, queue, AMQP_BASIC_GET_METHOD);
	for (k = ch->consumers; k; k = k->next)
		if (k->get_only && k->no_ack == (bool)m->no_ack && !strcmp(k->queue, queue))
			break;
	if (k) {
		deliver_get(ch, k);
		return 0;
	}
	k = consumer_new(ch, queue, true, m->no_ack);
	if (!k)
		return -1;
	return open_handle(ch, k, AMQP_BASIC_GET_METHOD, NULL, false);
}
