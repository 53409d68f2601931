/*
 * deliver.c - from the rings to AMQP consumers: each loop polls the queue
 * handles of its connections' consumers (no futex: one thread serves many
 * queues), within the limits that apply (consumer prefetch, channel
 * prefetch, --max-unacked, channel.flow, the connection's output buffer),
 * and keeps every manual-ack delivery in its channel's unacked list, in
 * delivery-tag order, until basic.ack / nack / reject / recover or the
 * channel's end settles it in the ring.
 */
#include "frame.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BURST 32u
#define PROPS_MAX 65600u

static bool has_credit(const struct consumer *k)
{
	const struct chan *ch = k->ch;
	const struct conn *c = ch->c;

	if (!k->q || k->cancelled || k->get_only || !ch->flow || ch->state != CH_OPEN ||
	    c->state != C_OPEN || c->dead || c->out.len > gw_opts.max_buffer / 2)
		return false;
	if (k->no_ack)
		return true;
	if (k->prefetch && k->unacked >= k->prefetch)
		return false;
	if (ch->prefetch && ch->unacked_n >= ch->prefetch)
		return false;
	return ch->unacked_n < gw_opts.max_unacked;
}

static int ua_push(struct chan *ch, struct consumer *k, uint64_t tag, const struct hbus_msg *m)
{
	if (ch->ua_n == ch->ua_cap) {
		size_t cap = ch->ua_cap ? ch->ua_cap * 2 : 64, i;
		struct unacked *n = malloc(cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (i = 0; i < ch->ua_n; i++)
			n[i] = ch->ua[(ch->ua_head + i) % ch->ua_cap];
		free(ch->ua);
		ch->ua = n;
		ch->ua_cap = cap;
		ch->ua_head = 0;
	}
	ch->ua[(ch->ua_head + ch->ua_n) % ch->ua_cap] = (struct unacked){ .tag = tag, .cons = k,
									  .m = *m };
	ch->ua_n++;
	k->unacked++;
	ch->unacked_n++;
	return 0;
}

static inline struct unacked *ua_at(struct chan *ch, size_t i)
{
	return &ch->ua[(ch->ua_head + i) % ch->ua_cap];
}

static _Thread_local uint8_t *props; /* encoded properties, one buffer per loop */

void deliver_thread_exit(void)
{
	free(props);
	props = NULL;
}

/* Frames for one message: method (deliver or get-ok), header, bodies. */
static int put_message(struct chan *ch, amqp_method_number_t id, void *method,
		       const struct hbus_msg *m)
{
	struct conn *c = ch->c;
	int n;

	if (!props && !(props = malloc(PROPS_MAX)))
		return -ENOMEM;
	n = props_from_meta(m->meta, m->meta_len, &c->pool, props, PROPS_MAX);
	if (n < 0) {
		props[0] = props[1] = 0;
		n = 2;
	}
	if (frame_put_method(&c->out, ch->id, id, method) ||
	    frame_put_content(&c->out, ch->id, props, (size_t)n, m->body, m->body_len, c->frame_max))
		return -ENOMEM;
	gw_count(GC_FRAMES_OUT, 2);
	loop_want_write(c);
	return 0;
}

/* Exchange and routing key of a message, as AMQP strings. */
static void where(const struct hbus_msg *m, amqp_bytes_t *x, amqp_bytes_t *rk)
{
	struct hbus_meta mt;

	*x = *rk = (amqp_bytes_t){ 0, "" };
	if (hbus_meta_decode(m->meta, m->meta_len, &mt) == 0) {
		*x = (amqp_bytes_t){ mt.exchange_len, (void *)mt.exchange };
		*rk = (amqp_bytes_t){ mt.routing_key_len, (void *)mt.routing_key };
	}
}

/* After the frames are out: auto mode returns the slot now, manual keeps
 * it claimed until the client settles it. */
static void track(struct chan *ch, struct consumer *k, uint64_t tag, const struct hbus_msg *m)
{
	if (k->no_ack || ua_push(ch, k, tag, m)) {
		if (!k->no_ack)
			hbus_queue_nack(k->q, m, 1); /* out of memory: give it back */
		else
			hbus_queue_ack(k->q, m);
	}
}

static unsigned deliver_consumer(struct consumer *k)
{
	struct chan *ch = k->ch;
	struct hbus_msg m;
	unsigned n = 0;

	while (n < BURST && has_credit(k) && hbus_queue_consume(k->q, &m) == 0) {
		amqp_basic_deliver_t d = { .consumer_tag = amqp_cstring_bytes(k->tag),
					   .delivery_tag = ch->next_tag++,
					   .redelivered = (m.flags & HBUS_MSG_REDELIVERED) != 0 };

		where(&m, &d.exchange, &d.routing_key);
		if (put_message(ch, AMQP_BASIC_DELIVER_METHOD, &d, &m)) {
			hbus_queue_nack(k->q, &m, 1);
			break;
		}
		track(ch, k, d.delivery_tag, &m);
		gw_count(GC_DELIVERED, 1);
		if (d.redelivered)
			gw_count(GC_REDELIVERED, 1);
		n++;
	}
	return n;
}

unsigned deliver_pass(struct loop *l)
{
	struct conn *c;
	unsigned total = 0, i;

	for (c = l->conns; c; c = c->next) {
		if (c->state != C_OPEN || c->dead || !c->ch)
			continue;
		for (i = 1; i <= c->hi_ch; i++) {
			struct chan *ch = c->ch[i];
			struct consumer *k;

			if (!ch || ch->state != CH_OPEN || !ch->consumers)
				continue;
			for (k = ch->consumers; k; k = k->next)
				total += deliver_consumer(k);
		}
		if (total)
			recycle_amqp_pool(&c->pool);
	}
	return total;
}

void deliver_get(struct chan *ch, struct consumer *g)
{
	struct hbus_msg m;
	uint64_t depth = 0;

	if (ch->unacked_n >= gw_opts.max_unacked || hbus_queue_consume(g->q, &m) != 0) {
		amqp_basic_get_empty_t e = { .cluster_id = amqp_cstring_bytes("") };
		gw_count(GC_GET_EMPTY, 1);
		if (frame_put_method(&ch->c->out, ch->id, AMQP_BASIC_GET_EMPTY_METHOD, &e) == 0)
			gw_count(GC_FRAMES_OUT, 1);
		loop_want_write(ch->c);
		return;
	}
	hbus_queue_depth(g->q, &depth);
	amqp_basic_get_ok_t ok = { .delivery_tag = ch->next_tag++,
				   .redelivered = (m.flags & HBUS_MSG_REDELIVERED) != 0,
				   .message_count = depth > UINT32_MAX ? UINT32_MAX : (uint32_t)depth };
	where(&m, &ok.exchange, &ok.routing_key);
	if (put_message(ch, AMQP_BASIC_GET_OK_METHOD, &ok, &m)) {
		hbus_queue_nack(g->q, &m, 1);
		return;
	}
	gw_count(GC_GET, 1);
	track(ch, g, ok.delivery_tag, &m);
	recycle_amqp_pool(&ch->c->pool);
}

void consumer_free_handle(struct consumer *k)
{
	if (k->q) {
		struct ctl_req *r = ctl_new(CTL_CLOSE_HANDLE);
		if (r) {
			r->q = k->q;
			ctl_submit_detached(r);
		}
	}
	if (!k->get_only && k->q)
		gw_gauge(&gw_stats.consumers, -1);
	free(k);
}

void consumer_settled(struct consumer *k)
{
	struct chan *ch = k->ch;
	struct consumer **pp;

	if (!k->cancelled || k->unacked)
		return;
	for (pp = &ch->consumers; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	consumer_free_handle(k);
}

static void settle(struct chan *ch, struct unacked *u, int how)
{
	struct consumer *k = u->cons;
	int rc;

	if (how == SETTLE_ACK) {
		rc = hbus_queue_ack(k->q, &u->m);
		gw_count(GC_ACKED, 1);
	} else {
		rc = hbus_queue_nack(k->q, &u->m, how == SETTLE_REQUEUE);
		gw_count(how == SETTLE_REQUEUE ? GC_NACKED : GC_REJECTED, 1);
	}
	/* -ESTALE: hbusd already gave it back (its session ended); -EAGAIN:
	 * the queue is full, it stays claimed until the virtual session ends
	 * and hbusd requeues it. */
	if (rc && rc != -ESTALE)
		HBUS_DEBUG("settle of delivery %llu on '%s': %s", (unsigned long long)u->tag,
			   k->queue, hbus_strerror(rc));
	u->cons = NULL;
	k->unacked--;
	ch->unacked_n--;
	consumer_settled(k);
}

static void pop_settled(struct chan *ch)
{
	while (ch->ua_n && !ua_at(ch, 0)->cons) {
		ch->ua_head = (ch->ua_head + 1) % ch->ua_cap;
		ch->ua_n--;
	}
	if (!ch->ua_n)
		ch->ua_head = 0;
}

int deliver_ack(struct chan *ch, uint64_t tag, bool multiple, int how)
{
	size_t lo = 0, hi = ch->ua_n, i;

	if (multiple) {
		for (i = 0; i < ch->ua_n; i++) {
			struct unacked *u = ua_at(ch, i);
			if (tag && u->tag > tag)
				break;
			if (u->cons)
				settle(ch, u, how);
		}
		pop_settled(ch);
		return 0;
	}
	while (lo < hi) { /* tags are in order: binary search */
		size_t mid = (lo + hi) / 2;
		if (ua_at(ch, mid)->tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == ch->ua_n || ua_at(ch, lo)->tag != tag || !ua_at(ch, lo)->cons) {
		chan_exception(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_ACK_METHOD,
			       "PRECONDITION_FAILED - unknown delivery tag %llu",
			       (unsigned long long)tag);
		return 0;
	}
	settle(ch, ua_at(ch, lo), how);
	pop_settled(ch);
	return 0;
}

int deliver_recover(struct chan *ch)
{
	size_t i;

	for (i = 0; i < ch->ua_n; i++) {
		struct unacked *u = ua_at(ch, i);
		if (u->cons)
			settle(ch, u, SETTLE_REQUEUE);
	}
	ch->ua_n = ch->ua_head = 0;
	return 0;
}

void deliver_queue_deleted(struct loop *l, const char *queue)
{
	struct conn *c;
	unsigned i;

	for (c = l->conns; c && queue; c = c->next) {
		if (c->dead || c->state != C_OPEN || !c->ch)
			continue;
		for (i = 1; i <= c->hi_ch; i++) {
			struct chan *ch = c->ch[i];
			struct consumer *k, *next;

			if (!ch || ch->state != CH_OPEN)
				continue;
			for (k = ch->consumers; k; k = next) {
				amqp_basic_cancel_t m = { .consumer_tag = amqp_cstring_bytes(k->tag),
							  .nowait = 1 };
				next = k->next;
				if (k->get_only || k->cancelled || strcmp(k->queue, queue))
					continue;
				if (frame_put_method(&c->out, ch->id, AMQP_BASIC_CANCEL_METHOD, &m) == 0)
					gw_count(GC_FRAMES_OUT, 1);
				k->cancelled = true;
				consumer_settled(k);
			}
		}
	}
}
