/* report.c - list and stat replies: what the bus holds and how it is doing. */
#include "server.h"
#include "defs.h"

#include <string.h>

json_t *report_queue(const struct model *m, struct mx_queue *q)
{
	uint64_t depth = 0;
	json_t *o;

	(void)m;
	mq_depth(q, &depth);
	o = json_pack("{s:b, s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:b, s:b, s:b, s:I, s:I}",
		      "ok", 1, "name", q->name, "qid", (json_int_t)q->qid,
		      "capacity", (json_int_t)q->cfg.capacity,
		      "slot_size", (json_int_t)q->cfg.slot_size,
		      "overflow", q->cfg.overflow == HBUS_OVERFLOW_DROP_HEAD ? "drop-head" : "reject",
		      "ttl_ms", (json_int_t)q->cfg.ttl_ms, "numa_node", (json_int_t)q->cfg.numa_node,
		      "durable", q->durable, "exclusive", q->exclusive, "auto_delete", q->auto_delete,
		      "messages", (json_int_t)depth, "consumers", (json_int_t)q->consumers);
	if (o)
		json_object_set_new(o, "latency", json_boolean(q->cfg.flags & HBUS_QUEUE_F_LATENCY));
	if (o)
		json_object_set_new(o, "protected",
				    json_boolean(q->cfg.flags & HBUS_QUEUE_F_PROTECTED));
	if (o && q->corrupt)
		json_object_set_new(o, "corrupt", json_true());
	if (o && q->dlx)
		json_object_set_new(o, "dead_letter_exchange", json_string(q->dlx));
	if (o && q->dlx_key)
		json_object_set_new(o, "dead_letter_routing_key", json_string(q->dlx_key));
	return o;
}

static int32_t owner_pid(const struct hbusd *d, uint32_t owner)
{
	const struct session *s;
	const struct orphan *o;

	for (s = d->sessions; s; s = s->next)
		if (s->owner == owner)
			return s->peer.pid;
	for (o = d->orphans; o; o = o->next)
		if (o->owner == owner)
			return o->pid;
	return 0;
}

json_t *report_list(struct hbusd *d, const char *what, struct herr *e)
{
	const struct model *m = &d->model;
	json_t *items = json_array(), *it;
	unsigned i;

	if (!items)
		goto oom;
	if (!strcmp(what, "exchanges")) {
		/* The default exchange is listed, as RabbitMQ lists it. */
		json_array_append_new(items, json_pack("{s:s, s:s, s:b, s:b}", "name", "", "type",
						       "direct", "durable", 1, "auto_delete", 0));
		for (i = 0; i < m->exchanges.n; i++)
			json_array_append_new(items, defs_render_exchange(m->exchanges.v[i], DEFS_EXPORT));
	} else if (!strcmp(what, "queues")) {
		for (i = 0; i < m->queues.n; i++) {
			struct mx_queue *q = m->queues.v[i];

			it = report_queue(m, q);
			if (it)
				json_object_del(it, "ok");
			/* Who holds it exclusively (docs/CONTROL.md, "Exclusive handles"). */
			if (it && q->xp_owner)
				json_object_set_new(it, "exclusive_producer", json_integer(q->xp_owner));
			if (it && q->xc_owner)
				json_object_set_new(it, "exclusive_consumer", json_integer(q->xc_owner));
			json_array_append_new(items, it);
		}
	} else if (!strcmp(what, "bindings")) {
		for (i = 0; i < m->bindings.n; i++)
			json_array_append_new(items, defs_render_binding(m->bindings.v[i]));
	} else if (!strcmp(what, "consumers")) {
		for (i = 0; i < m->consumers.n; i++) {
			const struct mx_consumer *c = m->consumers.v[i];
			json_array_append_new(items, json_pack(
				"{s:s, s:s, s:I, s:I, s:i, s:s, s:I, s:b, s:b}", "consumer_tag", c->tag,
				"queue", c->q->name, "qid", (json_int_t)c->q->qid,
				"owner", (json_int_t)c->owner, "pid", (int)owner_pid(d, c->owner),
				"ack_mode", c->ack_mode == HBUS_ACK_MANUAL ? "manual" : "auto",
				"prefetch", (json_int_t)c->prefetch, "exclusive", c->exclusive,
				"exclusive_fast", c->fast));
		}
	} else if (!strcmp(what, "udpmaps")) {
		for (i = 0; i < m->udpmaps.n; i++)
			json_array_append_new(items, defs_render_udpmap(m->udpmaps.v[i]));
	} else {
		json_decref(items);
		herr_set(e, AMQP_COMMAND_INVALID,
			 "list: what is '%.64s', not exchanges, queues, bindings, consumers or udpmaps",
			 what);
		return NULL;
	}
	it = json_pack("{s:b, s:o}", "ok", 1, "items", items);
	if (it)
		return it;
oom:
	herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	return NULL;
}

/* Reply bytes hbusd holds for sessions that have not read them yet. */
static size_t pending_reply_bytes(const struct hbusd *d)
{
	const struct user_bytes *u;
	size_t n = 0;

	for (u = d->users; u; u = u->next)
		n += u->bytes;
	return n;
}

json_t *report_stat(struct hbusd *d)
{
	const struct model *m = &d->model;
	json_t *qs = json_array();
	unsigned i;

	for (i = 0; qs && i < m->queues.n; i++) {
		struct mx_queue *q = m->queues.v[i];
		struct hbus_queue_stats s;
		uint64_t depth = 0;

		if (mq_stats(q, &s))
			memset(&s, 0, sizeof(s)); /* its file faulted: listed, marked corrupt */
		mq_depth(q, &depth);
		json_array_append_new(qs, json_pack(
			"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"name", q->name, "qid", (json_int_t)q->qid, "depth", (json_int_t)depth,
			"capacity", (json_int_t)s.capacity, "slot_size", (json_int_t)s.slot_size,
			"enqueued", (json_int_t)s.enqueued,
			"dropped_overflow", (json_int_t)s.dropped_overflow,
			"dropped_oversize", (json_int_t)s.dropped_oversize,
			"dropped_head", (json_int_t)s.dropped_head, "aborted", (json_int_t)s.aborted,
			"delivered", (json_int_t)s.delivered, "acked", (json_int_t)s.acked,
			"released", (json_int_t)s.released, "requeued", (json_int_t)s.requeued,
			"rejected", (json_int_t)s.rejected, "expired", (json_int_t)s.expired,
			"dead_lettered", (json_int_t)s.dead_lettered, "head", (json_int_t)s.head,
			"tail", (json_int_t)s.tail, "consumers", (json_int_t)q->consumers,
			"unacked", (json_int_t)mq_unacked(q)));
		if (json_array_size(qs)) {
			json_t *o = json_array_get(qs, json_array_size(qs) - 1);

			json_object_set_new(o, "purged", json_integer((json_int_t)s.purged));
			json_object_set_new(o, "corrupt_walks", json_integer((json_int_t)s.corrupt));
			json_object_set_new(o, "handles", json_integer((json_int_t)s.handles));
			if (q->corrupt)
				json_object_set_new(o, "corrupt", json_true());
			if (q->resized)
				json_object_set_new(o, "resized", json_integer(q->resized));
		}
	}
	/* The dataplanes' counters files (report_dataplane.c). */
	/* "gateways": hbus-amqp's counters, as each last reported them. */
	return json_pack("{s:b, s:s, s:I, s:I, s:b, s:i, s:i, s:i, s:i, s:i, s:I, s:o*, s:o*, s:o*}",
			 "ok", 1, "bus", d->o.bus,
			 "epoch", (json_int_t)atomic_load(&d->sb.sb->epoch),
			 "generation", (json_int_t)m->generation,
			 "publish_waiting", model_publish_waiting(m),
			 "sessions", (int)d->n_sessions, "pending_recoveries", (int)m->pending.n,
			 "orphans", (int)d->n_orphans,
			 "session_table", (int)(d->sb.sb ? sb_sessions_used(&d->sb) : 0),
			 "reader_blocks", (int)m->readers.n,
			 "pending_reply_bytes", (json_int_t)pending_reply_bytes(d),
			 "queues", qs, "dataplanes", report_dataplanes(d->bus_dir),
			 "gateways", vsession_gateways(d));
}
