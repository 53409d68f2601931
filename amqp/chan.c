/*
 * chan.c - channel methods: channel open/close/flow, exchange and queue
 * methods (each one request to hbusd, made as the connection's AMQP user),
 * basic.qos / ack / nack / reject / recover and confirm.select.
 * basic.consume / cancel / get are chan_consume.c, publishing
 * chan_publish.c, deliveries deliver.c.
 */
#include "chan_args.h"
#include "chan_internal.h"
#include "frame.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void chan_put(struct chan *ch, amqp_method_number_t id, void *m)
{
	if (frame_put_method(&ch->c->out, ch->id, id, m) == 0)
		gw_count(GC_FRAMES_OUT, 1);
	loop_want_write(ch->c);
}

static const char *code_name(int code)
{
	switch (code) {
	case 403: return "ACCESS_REFUSED";
	case 404: return "NOT_FOUND";
	case 405: return "RESOURCE_LOCKED";
	case 406: return "PRECONDITION_FAILED";
	case 502: return "SYNTAX_ERROR";
	case 503: return "COMMAND_INVALID";
	case 504: return "CHANNEL_ERROR";
	case 530: return "NOT_ALLOWED";
	case 540: return "NOT_IMPLEMENTED";
	default:  return "INTERNAL_ERROR";
	}
}

void chan_exception(struct chan *ch, int code, amqp_method_number_t cause, const char *fmt, ...)
{
	amqp_channel_close_t m = { .reply_code = (uint16_t)code, .class_id = (uint16_t)(cause >> 16),
				   .method_id = (uint16_t)cause };
	char text[256];
	va_list ap;

	if (ch->state != CH_OPEN)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	gw_count(GC_CHAN_EXCEPTIONS, 1);
	m.reply_text = amqp_cstring_bytes(text);
	chan_put(ch, AMQP_CHANNEL_CLOSE_METHOD, &m);
	chan_release(ch);
	ch->state = CH_CLOSING;
}

/* hbusd refused: a channel exception with its code, or a connection
 * exception for the codes the spec makes hard errors. */
void chan_refused(struct chan *ch, struct ctl_req *r)
{
	int code = r->code ? r->code : AMQP_INTERNAL_ERROR;

	/* RabbitMQ answers reserved names and the default exchange with a
	 * soft 403; only a consumer tag in use is a hard 530. */
	if (code == AMQP_NOT_ALLOWED && !strstr(r->msg, "consumer tag"))
		code = AMQP_ACCESS_REFUSED;
	if (code == AMQP_NOT_ALLOWED || code >= 500)
		conn_fail(ch->c, code, (uint16_t)(r->method >> 16), (uint16_t)r->method, "%s - %s",
			  code_name(code), r->msg);
	else
		chan_exception(ch, code, r->method, "%s - %s", code_name(code), r->msg);
}

static void chan_reset(struct chan *ch)
{
	ch->state = CH_CLOSED;
	ch->flow = true;
	ch->confirm = false;
	ch->pub_seq = ch->ack_upto = 0;
	ch->next_tag = 1;
	ch->cstate = 0;
	ch->prefetch = ch->consumer_prefetch = 0;
}

void chan_release(struct chan *ch)
{
	struct conn *c = ch->c;

	/* Unacked deliveries go back to their queues (redelivered), consumers
	 * are cancelled and their handles closed once nothing is held. */
	deliver_recover(ch);
	while (ch->consumers) {
		struct consumer *k = ch->consumers;
		ch->consumers = k->next;
		if (!k->get_only && k->q && c->vs) {
			struct ctl_req *r = ctl_new(CTL_CALL);
			if (r && (r->req = ctl_json(c, "cancel"))) {
				json_object_set_new(r->req, "consumer_tag", json_string(k->tag));
				ctl_submit_detached(r);
			} else {
				ctl_free(r);
			}
		}
		consumer_free_handle(k);
	}
	if (ch->cstate) {
		c->body_bytes -= ch->body_cap;
		free(ch->body);
		ch->body = NULL;
		ch->body_cap = 0;
		ch->cstate = 0;
	}
}

/* --------------------------------------------------------- hbusd calls */

struct call_arg {
	json_t *want;      /* queue.declare: the declare to make after a passive look */
	char queue[256];   /* basic.get: the queue */
	bool no_ack;
};

static void call_done(struct conn *c, struct ctl_req *r);

static struct ctl_req *call(struct chan *ch, amqp_method_number_t method, json_t *req, bool nowait)
{
	struct ctl_req *r = ctl_new(CTL_CALL);

	if (!r || !req) {
		json_decref(req);
		ctl_free(r);
		conn_fail(ch->c, AMQP_INTERNAL_ERROR, 0, 0, "INTERNAL_ERROR - out of memory");
		return NULL;
	}
	r->req = req;
	r->channel = ch->id;
	r->method = method;
	r->nowait = nowait;
	r->done = call_done;
	ctl_submit(ch->c, r, true);
	return r;
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void call_done(struct conn *c, struct ctl_req *r)
{
	struct chan *ch = conn_chan(c, r->channel);
	struct call_arg *a = r->arg;
	json_t *rep = r->reply;

	if (!ch || ch->state != CH_OPEN)
		goto out;
	if (r->method == AMQP_QUEUE_DECLARE_METHOD && a && a->want) {
		struct arg_err err;
		if (r->rc && r->code == AMQP_NOT_FOUND) { /* new: declare it */
			struct ctl_req *n = call(ch, r->method, a->want, r->nowait);
			a->want = NULL;
			if (n) {
				n->arg = a;
				a = NULL;
			}
			goto out;
		}
		if (!r->rc && args_queue_equivalent(a->want, rep, &err)) {
			chan_exception(ch, AMQP_PRECONDITION_FAILED, r->method, "%s", err.msg);
			goto out;
		}
	}
	/* RabbitMQ: deleting what does not exist is fine. */
	if (r->rc && r->code == AMQP_NOT_FOUND &&
	    (r->method == AMQP_QUEUE_DELETE_METHOD || r->method == AMQP_EXCHANGE_DELETE_METHOD)) {
		r->rc = 0;
		rep = NULL;
	}
	if (r->rc) {
		chan_refused(ch, r);
		goto out;
	}
	/* consumer_cancel_notify: consumers here of a queue deleted here
	 * hear of it first (nowait or not). */
	if (r->method == AMQP_QUEUE_DELETE_METHOD)
		deliver_queue_deleted(c->loop, json_string_value(json_object_get(r->req, "name")));
	if (r->nowait)
		goto out;
	switch (r->method) {
	case AMQP_EXCHANGE_DECLARE_METHOD:
	case AMQP_EXCHANGE_DELETE_METHOD:
	case AMQP_EXCHANGE_BIND_METHOD:
	case AMQP_EXCHANGE_UNBIND_METHOD:
	case AMQP_QUEUE_BIND_METHOD:
	case AMQP_QUEUE_UNBIND_METHOD: {
		/* The replies without arguments (exchange.unbind-ok is not
		 * the id after exchange.unbind's: each is named). */
		static const struct { amqp_method_number_t req, ok; } empty_ok[] = {
			{ AMQP_EXCHANGE_DECLARE_METHOD, AMQP_EXCHANGE_DECLARE_OK_METHOD },
			{ AMQP_EXCHANGE_DELETE_METHOD, AMQP_EXCHANGE_DELETE_OK_METHOD },
			{ AMQP_EXCHANGE_BIND_METHOD, AMQP_EXCHANGE_BIND_OK_METHOD },
			{ AMQP_EXCHANGE_UNBIND_METHOD, AMQP_EXCHANGE_UNBIND_OK_METHOD },
			{ AMQP_QUEUE_BIND_METHOD, AMQP_QUEUE_BIND_OK_METHOD },
			{ AMQP_QUEUE_UNBIND_METHOD, AMQP_QUEUE_UNBIND_OK_METHOD },
		};
		amqp_exchange_declare_ok_t m = { 0 }; /* every one is empty */

		for (unsigned i = 0; i < sizeof(empty_ok) / sizeof(empty_ok[0]); i++)
			if (empty_ok[i].req == r->method)
				chan_put(ch, empty_ok[i].ok, &m);
		break;
	}
	case AMQP_QUEUE_DECLARE_METHOD: {
		const char *name = json_string_value(json_object_get(rep, "name"));
		amqp_queue_declare_ok_t m = { .queue = amqp_cstring_bytes(name ? name : ""),
					      .message_count = (uint32_t)jint(rep, "messages"),
					      .consumer_count = (uint32_t)jint(rep, "consumers") };
		chan_put(ch, AMQP_QUEUE_DECLARE_OK_METHOD, &m);
		break;
	}
	case AMQP_QUEUE_PURGE_METHOD: {
		amqp_queue_purge_ok_t m = { .message_count = (uint32_t)jint(rep, "purged") };
		chan_put(ch, AMQP_QUEUE_PURGE_OK_METHOD, &m);
		break;
	}
	case AMQP_QUEUE_DELETE_METHOD: {
		amqp_queue_delete_ok_t m = { .message_count = (uint32_t)jint(rep, "messages") };
		chan_put(ch, AMQP_QUEUE_DELETE_OK_METHOD, &m);
		break;
	}
	default:
		break;
	}
out:
	if (a) {
		json_decref(a->want);
		free(a);
	}
}

static int exchange_declare(struct chan *ch, const amqp_exchange_declare_t *m)
{
	char name[256], type[64];
	struct arg_err err;
	json_t *j;

	NAME(m->exchange, name, AMQP_EXCHANGE_DECLARE_METHOD);
	if (!chan_cstr(m->type, type, sizeof(type)))
		type[0] = 0;
	if (!(j = ctl_json(ch->c, "declare_exchange")))
		return -1;
	json_object_set_new(j, "name", json_string(name));
	json_object_set_new(j, "passive", json_boolean(m->passive));
	if (!m->passive) {
		if (strcmp(type, "direct") && strcmp(type, "fanout") && strcmp(type, "topic") &&
		    strcmp(type, "headers")) {
			json_decref(j);
			conn_fail(ch->c, AMQP_COMMAND_INVALID, 40, 10, "COMMAND_INVALID - unknown "
				  "exchange type '%s'", type);
			return 0;
		}
		json_object_set_new(j, "type", json_string(type));
		json_object_set_new(j, "durable", json_boolean(m->durable));
		json_object_set_new(j, "auto_delete", json_boolean(m->auto_delete));
		if (args_exchange_json(&m->arguments, j, &err)) {
			json_decref(j);
			chan_exception(ch, AMQP_PRECONDITION_FAILED, AMQP_EXCHANGE_DECLARE_METHOD,
				       "%s", err.msg);
			return 0;
		}
	}
	call(ch, AMQP_EXCHANGE_DECLARE_METHOD, j, m->nowait);
	return 0;
}

static int bind(struct chan *ch, amqp_method_number_t id, amqp_bytes_t src, amqp_bytes_t dst,
		amqp_bytes_t key, const amqp_table_t *args, bool to_exchange, bool nowait)
{
	char s[256], d[256], k[256];
	struct arg_err err;
	json_t *j = ctl_json(ch->c, (id == AMQP_QUEUE_UNBIND_METHOD ||
				     id == AMQP_EXCHANGE_UNBIND_METHOD) ? "unbind" : "bind");

	if (!j)
		return -1;
	if (!chan_cstr(src, s, sizeof(s)) || !chan_cstr(dst, d, sizeof(d)) || !chan_cstr(key, k, sizeof(k))) {
		json_decref(j);
		chan_exception(ch, AMQP_PRECONDITION_FAILED, id, "PRECONDITION_FAILED - a name "
			       "holds a NUL byte");
		return 0;
	}
	json_object_set_new(j, "source", json_string(s));
	json_object_set_new(j, "destination", json_string(d));
	json_object_set_new(j, "destination_type", json_string(to_exchange ? "exchange" : "queue"));
	json_object_set_new(j, "key", json_string(k));
	if (args_binding_json(args, j, &err)) {
		json_decref(j);
		chan_exception(ch, AMQP_PRECONDITION_FAILED, id, "%s", err.msg);
		return 0;
	}
	call(ch, id, j, nowait);
	return 0;
}

static int queue_declare(struct chan *ch, const amqp_queue_declare_t *m)
{
	char name[256];
	struct arg_err err;
	json_t *j;
	struct call_arg *a;
	struct ctl_req *r;

	NAME(m->queue, name, AMQP_QUEUE_DECLARE_METHOD);
	if (!(j = ctl_json(ch->c, "declare_queue")))
		return -1;
	json_object_set_new(j, "name", json_string(name));
	if (m->passive) {
		json_object_set_new(j, "passive", json_true());
		call(ch, AMQP_QUEUE_DECLARE_METHOD, j, m->nowait);
		return 0;
	}
	json_object_set_new(j, "durable", json_boolean(m->durable));
	json_object_set_new(j, "exclusive", json_boolean(m->exclusive));
	json_object_set_new(j, "auto_delete", json_boolean(m->auto_delete));
	if (args_queue_json(&m->arguments, j, &err)) {
		json_decref(j);
		chan_exception(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE_METHOD, "%s", err.msg);
		return 0;
	}
	if (!name[0]) { /* server-named: nothing to compare with */
		call(ch, AMQP_QUEUE_DECLARE_METHOD, j, m->nowait);
		return 0;
	}
	/* A queue made elsewhere (hbus declare-queue) has sizes the client
	 * never said: look first, compare what AMQP can say, declare if new. */
	a = calloc(1, sizeof(*a));
	if (!a) {
		json_decref(j);
		return -1;
	}
	a->want = j;
	j = ctl_json(ch->c, "declare_queue");
	if (j) {
		json_object_set_new(j, "name", json_string(name));
		json_object_set_new(j, "passive", json_true());
	}
	r = call(ch, AMQP_QUEUE_DECLARE_METHOD, j, m->nowait);
	if (r)
		r->arg = a;
	else {
		json_decref(a->want);
		free(a);
	}
	return 0;
}

static int queue_simple(struct chan *ch, amqp_method_number_t id, const char *op,
			amqp_bytes_t queue, bool if_unused, bool if_empty, bool nowait)
{
	char name[256];
	json_t *j;

	NAME(queue, name, id);
	if (!(j = ctl_json(ch->c, op)))
		return -1;
	json_object_set_new(j, "name", json_string(name));
	if (id == AMQP_QUEUE_DELETE_METHOD) {
		json_object_set_new(j, "if_unused", json_boolean(if_unused));
		json_object_set_new(j, "if_empty", json_boolean(if_empty));
	}
	call(ch, id, j, nowait);
	return 0;
}

/* ------------------------------------------------------------- dispatch */

int chan_method(struct chan *ch, amqp_method_number_t id, void *m)
{
	struct conn *c = ch->c;

	if (id == AMQP_CHANNEL_OPEN_METHOD) {
		amqp_channel_open_ok_t ok = { .channel_id = amqp_cstring_bytes("") };
		if (ch->state != CH_CLOSED) {
			conn_fail(c, AMQP_CHANNEL_ERROR, 20, 10, "CHANNEL_ERROR - second 'channel.open' "
				  "on channel %u", ch->id);
			return 0;
		}
		chan_reset(ch);
		ch->state = CH_OPEN;
		chan_put(ch, AMQP_CHANNEL_OPEN_OK_METHOD, &ok);
		return 0;
	}
	if (id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_ok_t ok = { 0 };
		chan_release(ch);
		chan_put(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		chan_reset(ch);
		return 0;
	}
	if (id == AMQP_CHANNEL_CLOSE_OK_METHOD) {
		if (ch->state == CH_CLOSING)
			chan_reset(ch);
		return 0;
	}
	if (ch->state == CH_CLOSING)
		return 0; /* spec: discard until close-ok */
	if (ch->state != CH_OPEN) {
		gw_count(GC_ERR_CHANNEL, 1);
		conn_fail(c, AMQP_CHANNEL_ERROR, (uint16_t)(id >> 16), (uint16_t)id,
			  "CHANNEL_ERROR - expected 'channel.open' on channel %u", ch->id);
		return 0;
	}
	if (ch->cstate && id != AMQP_BASIC_PUBLISH_METHOD) {
		gw_count(GC_ERR_UNEXPECTED, 1);
		conn_fail(c, AMQP_UNEXPECTED_FRAME, (uint16_t)(id >> 16), (uint16_t)id,
			  "UNEXPECTED_FRAME - method %u.%u inside a content on channel %u", id >> 16,
			  id & 0xffff, ch->id);
		return 0;
	}
	switch (id) {
	case AMQP_CHANNEL_FLOW_METHOD: {
		amqp_channel_flow_ok_t ok = { .active = ((amqp_channel_flow_t *)m)->active };
		ch->flow = ok.active;
		chan_put(ch, AMQP_CHANNEL_FLOW_OK_METHOD, &ok);
		return 0;
	}
	case AMQP_EXCHANGE_DECLARE_METHOD:
		return exchange_declare(ch, m);
	case AMQP_EXCHANGE_DELETE_METHOD: {
		amqp_exchange_delete_t *x = m;
		char name[256];
		json_t *j;
		NAME(x->exchange, name, id);
		if (!(j = ctl_json(c, "delete_exchange")))
			return -1;
		json_object_set_new(j, "name", json_string(name));
		json_object_set_new(j, "if_unused", json_boolean(x->if_unused));
		call(ch, id, j, x->nowait);
		return 0;
	}
	case AMQP_EXCHANGE_BIND_METHOD:
	case AMQP_EXCHANGE_UNBIND_METHOD: {
		amqp_exchange_bind_t *b = m; /* unbind has the same layout */
		return bind(ch, id, b->source, b->destination, b->routing_key, &b->arguments, true,
			    b->nowait);
	}
	case AMQP_QUEUE_DECLARE_METHOD:
		return queue_declare(ch, m);
	case AMQP_QUEUE_BIND_METHOD: {
		amqp_queue_bind_t *b = m;
		return bind(ch, id, b->exchange, b->queue, b->routing_key, &b->arguments, false,
			    b->nowait);
	}
	case AMQP_QUEUE_UNBIND_METHOD: {
		amqp_queue_unbind_t *b = m;
		return bind(ch, id, b->exchange, b->queue, b->routing_key, &b->arguments, false, false);
	}
	case AMQP_QUEUE_PURGE_METHOD: {
		amqp_queue_purge_t *p = m;
		return queue_simple(ch, id, "purge_queue", p->queue, false, false, p->nowait);
	}
	case AMQP_QUEUE_DELETE_METHOD: {
		amqp_queue_delete_t *d = m;
		return queue_simple(ch, id, "delete_queue", d->queue, d->if_unused, d->if_empty,
				    d->nowait);
	}
	case AMQP_BASIC_QOS_METHOD: {
		amqp_basic_qos_t *q = m;
		amqp_basic_qos_ok_t ok = { 0 };
		if (q->global)
			ch->prefetch = q->prefetch_count;
		else
			ch->consumer_prefetch = q->prefetch_count;
		chan_put(ch, AMQP_BASIC_QOS_OK_METHOD, &ok);
		return 0;
	}
	case AMQP_BASIC_CONSUME_METHOD:
		return chan_basic_consume(ch, m);
	case AMQP_BASIC_CANCEL_METHOD:
		return chan_basic_cancel(ch, m);
	case AMQP_BASIC_PUBLISH_METHOD:
		return chan_publish_method(ch, m);
	case AMQP_BASIC_GET_METHOD:
		return chan_basic_get(ch, m);
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *a = m;
		return deliver_ack(ch, a->delivery_tag, a->multiple, SETTLE_ACK);
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *n = m;
		return deliver_ack(ch, n->delivery_tag, n->multiple,
				   n->requeue ? SETTLE_REQUEUE : SETTLE_DROP);
	}
	case AMQP_BASIC_REJECT_METHOD: {
		amqp_basic_reject_t *r = m;
		return deliver_ack(ch, r->delivery_tag, false,
				   r->requeue ? SETTLE_REQUEUE : SETTLE_DROP);
	}
	case AMQP_BASIC_RECOVER_METHOD:
	case AMQP_BASIC_RECOVER_ASYNC_METHOD: {
		amqp_basic_recover_ok_t ok = { 0 };
		if (!((amqp_basic_recover_t *)m)->requeue) {
			conn_fail(c, AMQP_NOT_IMPLEMENTED, 60, (uint16_t)id, "NOT_IMPLEMENTED - "
				  "requeue=false");
			return 0;
		}
		deliver_recover(ch);
		if (id == AMQP_BASIC_RECOVER_METHOD)
			chan_put(ch, AMQP_BASIC_RECOVER_OK_METHOD, &ok);
		return 0;
	}
	case AMQP_CONFIRM_SELECT_METHOD: {
		amqp_confirm_select_ok_t ok = { 0 };
		if (!ch->confirm) {
			ch->confirm = true;
			ch->pub_seq = 1;
		}
		if (!((amqp_confirm_select_t *)m)->nowait)
			chan_put(ch, AMQP_CONFIRM_SELECT_OK_METHOD, &ok);
		return 0;
	}
	case AMQP_ACCESS_REQUEST_METHOD: {
		amqp_access_request_ok_t ok = { .ticket = 1 };
		chan_put(ch, AMQP_ACCESS_REQUEST_OK_METHOD, &ok);
		return 0;
	}
	default:
		gw_count(GC_ERR_NOT_IMPL, 1);
		conn_fail(c, AMQP_NOT_IMPLEMENTED, (uint16_t)(id >> 16), (uint16_t)id,
			  "NOT_IMPLEMENTED - method %u.%u is not supported by hbus (tx is not)",
			  id >> 16, id & 0xffff);
		return 0;
	}
}
