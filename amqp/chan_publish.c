/*
 * chan_publish.c - basic.publish: the method, its content header and body
 * frames assembled per channel, then one hbus_publish_info through
 * libhbus's router (this loop thread's).  Permission: write on the
 * exchange, asked of hbusd once per connection and exchange (as RabbitMQ
 * caches it per channel).  Confirms: an ack once the message is in every
 * routed queue's ring (or routed nowhere), a nack when a queue refused it;
 * acks owed are sent together (multiple) after each read.
 */
#include "frame.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WRITE_CACHE_MAX 64u

static void put(struct chan *ch, amqp_method_number_t id, void *m)
{
	if (frame_put_method(&ch->c->out, ch->id, id, m) == 0)
		gw_count(GC_FRAMES_OUT, 1);
	loop_want_write(ch->c);
}

int chan_write_authorized(struct conn *c, const char *exch)
{
	unsigned i;

	for (i = 0; i < c->n_write_ok; i++)
		if (!strcmp(c->write_ok[i], exch))
			return 1;
	return 0;
}

static void cache_add(struct conn *c, const char *exch)
{
	char **n;
	unsigned i;

	if (c->n_write_ok == WRITE_CACHE_MAX) {
		for (i = 0; i < c->n_write_ok; i++)
			free(c->write_ok[i]);
		c->n_write_ok = 0;
	}
	n = realloc(c->write_ok, (c->n_write_ok + 1) * sizeof(*n));
	if (!n)
		return;
	c->write_ok = n;
	if ((n[c->n_write_ok] = strdup(exch)))
		c->n_write_ok++;
}

static void cache_drop(struct conn *c, const char *exch)
{
	unsigned i;

	for (i = 0; i < c->n_write_ok; i++)
		if (!strcmp(c->write_ok[i], exch)) {
			free(c->write_ok[i]);
			c->write_ok[i] = c->write_ok[--c->n_write_ok];
			return;
		}
}

static void auth_done(struct conn *c, struct ctl_req *r)
{
	struct chan *ch = conn_chan(c, r->channel);
	const char *x = json_string_value(json_object_get(r->req, "exchange"));

	if (!ch || ch->state != CH_OPEN || !x)
		return;
	if (r->rc) {
		int code = r->code == AMQP_NOT_FOUND ? AMQP_NOT_FOUND : AMQP_ACCESS_REFUSED;
		chan_exception(ch, code, AMQP_BASIC_PUBLISH_METHOD, "%s - %s",
			       code == AMQP_NOT_FOUND ? "NOT_FOUND" : "ACCESS_REFUSED", r->msg);
		return;
	}
	cache_add(c, x);
}

int chan_publish_method(struct chan *ch, const amqp_basic_publish_t *p)
{
	struct conn *c = ch->c;
	struct ctl_req *r;

	if (ch->cstate) {
		gw_count(GC_ERR_UNEXPECTED, 1);
		conn_fail(c, AMQP_UNEXPECTED_FRAME, 60, 40, "UNEXPECTED_FRAME - basic.publish "
			  "before the previous content was complete on channel %u", ch->id);
		return 0;
	}
	if (p->exchange.len > 255 || p->routing_key.len > 255 ||
	    memchr(p->exchange.bytes, 0, p->exchange.len) ||
	    memchr(p->routing_key.bytes, 0, p->routing_key.len)) {
		chan_exception(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH_METHOD,
			       "PRECONDITION_FAILED - exchange or routing key holds a NUL byte");
		return 0;
	}
	memcpy(ch->exch, p->exchange.bytes, p->exchange.len);
	ch->exch[p->exchange.len] = 0;
	memcpy(ch->rk, p->routing_key.bytes, p->routing_key.len);
	ch->rk[p->routing_key.len] = 0;
	ch->mandatory = p->mandatory;
	ch->discard = false;
	ch->cstate = 1;
	if (chan_write_authorized(c, ch->exch))
		return 0;
	r = ctl_new(CTL_CALL);
	if (!r || !(r->req = ctl_json(c, "authorize"))) {
		ctl_free(r);
		conn_fail(c, AMQP_INTERNAL_ERROR, 60, 40, "INTERNAL_ERROR - out of memory");
		return 0;
	}
	json_object_set_new(r->req, "perm", json_string("write"));
	json_object_set_new(r->req, "exchange", json_string(ch->exch));
	r->channel = ch->id;
	r->method = AMQP_BASIC_PUBLISH_METHOD;
	r->done = auth_done;
	ctl_submit(c, r, true);
	return 0;
}

void chan_confirm_flush(struct chan *ch)
{
	amqp_basic_ack_t a = { .delivery_tag = ch->ack_upto, .multiple = 1 };

	if (!ch->ack_upto)
		return;
	put(ch, AMQP_BASIC_ACK_METHOD, &a);
	ch->ack_upto = 0;
}

static void confirm(struct chan *ch, bool ack)
{
	uint64_t seq;

	if (!ch->confirm)
		return;
	seq = ch->pub_seq++;
	if (ack) {
		gw_count(GC_CONFIRM_ACK, 1);
		ch->ack_upto = seq;
		return;
	}
	gw_count(GC_CONFIRM_NACK, 1);
	chan_confirm_flush(ch); /* those before it first: multiple must not cover it */
	amqp_basic_nack_t n = { .delivery_tag = seq, .multiple = 0, .requeue = 0 };
	put(ch, AMQP_BASIC_NACK_METHOD, &n);
}

static void publish(struct chan *ch)
{
	struct conn *c = ch->c;
	struct hbus_publish_info info;
	struct props_hdrs *ph = NULL;
	void *dec = NULL;
	unsigned nh = 0;
	int rc;

	if (ch->discard) {
		confirm(ch, false);
		if (!ch->confirm)
			chan_exception(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH_METHOD,
				       "PRECONDITION_FAILED - message size %zu is larger than the "
				       "largest queue slot (%u bytes)", ch->body_len,
				       HBUS_SLOT_SIZE_MAX);
		return;
	}
	if (ch->props_len > 2) {
		ph = malloc(sizeof(*ph));
		if (!ph || amqp_decode_properties(AMQP_BASIC_CLASS, &c->pool,
						  (amqp_bytes_t){ .len = ch->props_len,
								  .bytes = ch->props }, &dec) ||
		    props_to_headers(dec, ch->props, ch->props_len, ph)) {
			free(ph);
			gw_count(GC_ERR_SYNTAX, 1);
			conn_fail(c, AMQP_SYNTAX_ERROR, 60, 40, "SYNTAX_ERROR - content properties "
				  "do not decode, or are larger than 65535 bytes");
			return;
		}
		nh = ph->n;
	}
	rc = gw_publish(ch->exch, ch->rk, ph ? ph->h : NULL, nh, ch->body, (uint32_t)ch->body_len,
			&info);
	free(ph);
	if (rc == -ENOENT) {
		cache_drop(c, ch->exch);
		chan_exception(ch, AMQP_NOT_FOUND, AMQP_BASIC_PUBLISH_METHOD, "NOT_FOUND - no "
			       "exchange '%s' in vhost '/'", ch->exch);
		return;
	}
	if (rc < 0) {
		gw_count(GC_PUB_REFUSED, 1);
		confirm(ch, false);
		if (!ch->confirm)
			chan_exception(ch, rc == -EINVAL ? AMQP_PRECONDITION_FAILED : AMQP_INTERNAL_ERROR,
				       AMQP_BASIC_PUBLISH_METHOD, "%s - publish failed: %s",
				       rc == -EINVAL ? "PRECONDITION_FAILED" : "INTERNAL_ERROR",
				       hbus_strerror(rc));
		return;
	}
	if (info.matched == 0) {
		gw_count(GC_PUB_UNROUTABLE, 1);
		if (ch->mandatory) {
			amqp_basic_return_t ret = { .reply_code = AMQP_NO_ROUTE,
						    .reply_text = amqp_cstring_bytes("NO_ROUTE"),
						    .exchange = amqp_cstring_bytes(ch->exch),
						    .routing_key = amqp_cstring_bytes(ch->rk) };
			static const uint8_t none[2];
			gw_count(GC_PUB_RETURNED, 1);
			put(ch, AMQP_BASIC_RETURN_METHOD, &ret);
			frame_put_content(&c->out, ch->id, ch->props_len ? ch->props : none,
					  ch->props_len ? ch->props_len : 2, ch->body, ch->body_len,
					  c->frame_max);
		}
		confirm(ch, true);
		return;
	}
	if (info.oversize || info.refused) {
		gw_count(GC_PUB_REFUSED, 1);
		confirm(ch, false);
		if (info.oversize && !ch->confirm)
			chan_exception(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH_METHOD,
				       "PRECONDITION_FAILED - message of %zu bytes does not fit the "
				       "slot of %u of the %u queue(s) it was routed to",
				       ch->body_len, info.oversize, info.matched);
		return;
	}
	gw_count(GC_PUBLISHED, 1);
	confirm(ch, true);
}

static void content_done(struct chan *ch)
{
	publish(ch);
	ch->cstate = 0;
	ch->c->body_bytes -= ch->body_cap;
	free(ch->body);
	ch->body = NULL;
	ch->body_cap = 0;
}

int chan_content_header(struct chan *ch, const uint8_t *p, size_t n)
{
	struct conn *c = ch->c;
	struct frame f = { .payload = p, .size = (uint32_t)n };
	const uint8_t *props;
	size_t props_len;
	uint16_t cls;
	uint64_t size;

	if (ch->state == CH_CLOSING)
		return 0;
	if (ch->state != CH_OPEN || ch->cstate != 1) {
		gw_count(GC_ERR_UNEXPECTED, 1);
		conn_fail(c, AMQP_UNEXPECTED_FRAME, 60, 40, "UNEXPECTED_FRAME - content header "
			  "without basic.publish on channel %u", ch->id);
		return 0;
	}
	if (frame_content_header(&f, &cls, &size, &props, &props_len) || cls != AMQP_BASIC_CLASS) {
		gw_count(GC_ERR_FRAME, 1);
		conn_fail(c, AMQP_FRAME_ERROR, 60, 40, "FRAME_ERROR - bad content header");
		return 0;
	}
	free(ch->props);
	ch->props = malloc(props_len ? props_len : 1);
	if (!ch->props) {
		conn_fail(c, AMQP_INTERNAL_ERROR, 60, 40, "INTERNAL_ERROR - out of memory");
		return 0;
	}
	memcpy(ch->props, props, props_len);
	ch->props_len = props_len;
	ch->body_len = size;
	ch->body_got = 0;
	/* Larger than any slot: read and drop it, then refuse it. */
	ch->discard = size > HBUS_SLOT_SIZE_MAX;
	if (!ch->discard && size) {
		if (c->body_bytes + size > gw_opts.max_buffer) {
			gw_count(GC_LIMIT_HIT, 1);
			conn_fail(c, AMQP_RESOURCE_ERROR, 60, 40, "RESOURCE_ERROR - contents in "
				  "progress over the connection's buffer limit (%zu bytes)",
				  gw_opts.max_buffer);
			return 0;
		}
		ch->body = malloc(size);
		if (!ch->body) {
			conn_fail(c, AMQP_INTERNAL_ERROR, 60, 40, "INTERNAL_ERROR - out of memory");
			return 0;
		}
		ch->body_cap = size;
		c->body_bytes += size;
	}
	ch->cstate = 2;
	if (size == 0)
		content_done(ch);
	return 0;
}

int chan_content_body(struct chan *ch, const uint8_t *p, size_t n)
{
	struct conn *c = ch->c;

	if (ch->state == CH_CLOSING)
		return 0;
	if (ch->state != CH_OPEN || ch->cstate != 2 || n > ch->body_len - ch->body_got) {
		gw_count(GC_ERR_UNEXPECTED, 1);
		conn_fail(c, AMQP_UNEXPECTED_FRAME, 60, 40, "UNEXPECTED_FRAME - body frame %s on "
			  "channel %u", ch->cstate == 2 ? "longer than the content" :
			  "without a content header", ch->id);
		return 0;
	}
	if (!ch->discard)
		memcpy(ch->body + ch->body_got, p, n);
	ch->body_got += n;
	if (ch->body_got == ch->body_len)
		content_done(ch);
	return 0;
}
