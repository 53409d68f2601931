/*
 * conn.c - one AMQP connection: protocol header, start / start-ok (PLAIN,
 * AMQPLAIN; hbusd checks the password), tune, open, close, heartbeats, and
 * frames routed to channels.  Every malformed or out-of-place frame ends in
 * the spec's connection exception (connection.close with its reply code)
 * and a counter; nothing a peer sends is trusted past its frame.
 */
#include "frame.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t proto_header[8] = { 'A', 'M', 'Q', 'P', 0, 0, 9, 1 };

#define M(id) ((amqp_method_number_t)(id))

static void put_method(struct conn *c, uint16_t ch, amqp_method_number_t id, void *m)
{
	if (frame_put_method(&c->out, ch, id, m) == 0)
		gw_count(GC_FRAMES_OUT, 1);
	loop_want_write(c);
}

struct conn *conn_new(struct loop *l, int fd, const char *peer)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->loop = l;
	c->frame_max = gw_opts.frame_max;
	c->channel_max = (uint16_t)gw_opts.channel_max;
	c->opened_ns = c->last_rx_ns = c->last_tx_ns = gw_now_ns();
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	init_amqp_pool(&c->pool, 16384);
	gw_gauge(&gw_stats.connections, 1);
	return c;
}

void conn_fail(struct conn *c, int code, uint16_t class_id, uint16_t method_id,
	       const char *fmt, ...)
{
	amqp_connection_close_t m = { .reply_code = (uint16_t)code, .class_id = class_id,
				      .method_id = method_id };
	char text[256];
	va_list ap;

	if (c->state >= C_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	gw_count(GC_CONN_EXCEPTIONS, 1);
	HBUS_DEBUG("connection %llu (%s, user '%s'): closing %d: %s", (unsigned long long)c->id,
		   c->peer, c->user, code, text);
	m.reply_text = amqp_cstring_bytes(text);
	put_method(c, 0, AMQP_CONNECTION_CLOSE_METHOD, &m);
	/* Before open there is no close handshake worth waiting for. */
	c->state = c->state >= C_OPEN_WAIT ? C_CLOSING : C_DONE;
	c->close_ns = gw_now_ns(); /* close-ok is due within the handshake time */
	/* Release what the connection holds now: nothing it sends after
	 * this counts (spec: discard all but close / close-ok). */
	conn_teardown(c);
}

struct chan *conn_chan(struct conn *c, uint16_t id)
{
	if (!c->ch || id == 0 || id > c->channel_max)
		return NULL;
	return c->ch[id];
}

/* ------------------------------------------------------------ handshake */

static void send_start(struct conn *c)
{
	amqp_table_entry_t caps[] = {
		{ amqp_cstring_bytes("publisher_confirms"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
		{ amqp_cstring_bytes("basic.nack"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
		{ amqp_cstring_bytes("consumer_cancel_notify"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
		{ amqp_cstring_bytes("exchange_exchange_bindings"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
		{ amqp_cstring_bytes("connection.blocked"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 0 } } },
		{ amqp_cstring_bytes("authentication_failure_close"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
		{ amqp_cstring_bytes("per_consumer_qos"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
	};
	amqp_table_entry_t props[] = {
		{ amqp_cstring_bytes("product"), { AMQP_FIELD_KIND_UTF8, { .bytes = amqp_cstring_bytes("hbus-amqp") } } },
		{ amqp_cstring_bytes("version"), { AMQP_FIELD_KIND_UTF8, { .bytes = amqp_cstring_bytes(HBUS_VERSION_STRING) } } },
		{ amqp_cstring_bytes("platform"), { AMQP_FIELD_KIND_UTF8, { .bytes = amqp_cstring_bytes("Linux, hbus shared memory") } } },
		{ amqp_cstring_bytes("capabilities"), { AMQP_FIELD_KIND_TABLE,
			{ .table = { sizeof(caps) / sizeof(caps[0]), caps } } } },
	};
	amqp_connection_start_t m = {
		.version_major = 0, .version_minor = 9,
		.server_properties = { sizeof(props) / sizeof(props[0]), props },
		.mechanisms = amqp_cstring_bytes("PLAIN AMQPLAIN"),
		.locales = amqp_cstring_bytes("en_US"),
	};

	put_method(c, 0, AMQP_CONNECTION_START_METHOD, &m);
	c->state = C_START_OK;
}

static void login_done(struct conn *c, struct ctl_req *r)
{
	amqp_connection_tune_t t = { .channel_max = c->channel_max, .frame_max = c->frame_max,
				     .heartbeat = (uint16_t)gw_opts.heartbeat };

	if (c->dead || c->state != C_START_OK) {
		/* The connection ended while hbusd checked: undo the login. */
		if (!r->rc) {
			c->vs = (uint32_t)json_integer_value(json_object_get(r->reply, "owner"));
			conn_teardown(c);
		}
		return;
	}
	if (r->rc) {
		gw_count(GC_AUTH_FAILED, 1);
		if (r->code == AMQP_ACCESS_REFUSED)
			conn_fail(c, AMQP_ACCESS_REFUSED, 0, 0, "ACCESS_REFUSED - Login was refused "
				  "using authentication mechanism PLAIN. For details see the broker "
				  "logfile.");
		else {
			HBUS_WARN("connection %llu (%s): login of '%s' failed: %d %s",
				  (unsigned long long)c->id, c->peer, c->user, r->code, r->msg);
			conn_fail(c, AMQP_INTERNAL_ERROR, 0, 0, "INTERNAL_ERROR - %s", r->msg);
		}
		return;
	}
	c->vs = (uint32_t)json_integer_value(json_object_get(r->reply, "owner"));
	put_method(c, 0, AMQP_CONNECTION_TUNE_METHOD, &t);
	c->state = C_TUNE_OK;
}

/* PLAIN: [authzid] NUL user NUL password.  AMQPLAIN: a field table without
 * its length, LOGIN and PASSWORD. */
static int sasl_response(struct conn *c, const amqp_connection_start_ok_t *m, char *user,
			 size_t ucap, char *pw, size_t pcap)
{
	const uint8_t *p = m->response.bytes;
	size_t n = m->response.len;

	if (m->mechanism.len == 5 && !memcmp(m->mechanism.bytes, "PLAIN", 5)) {
		const uint8_t *a = memchr(p, 0, n), *b;
		if (!a || !(b = memchr(a + 1, 0, n - (size_t)(a + 1 - p))))
			return -1;
		if ((size_t)(b - a - 1) >= ucap || n - (size_t)(b + 1 - p) >= pcap)
			return -1;
		memcpy(user, a + 1, (size_t)(b - a - 1));
		user[b - a - 1] = 0;
		memcpy(pw, b + 1, n - (size_t)(b + 1 - p));
		pw[n - (size_t)(b + 1 - p)] = 0;
		return 0;
	}
	if (m->mechanism.len == 8 && !memcmp(m->mechanism.bytes, "AMQPLAIN", 8)) {
		uint8_t buf[4 + 1024];
		amqp_table_t t;
		size_t off = 0;
		int i, got = 0;

		if (n > 1024)
			return -1;
		buf[0] = (uint8_t)(n >> 24); buf[1] = (uint8_t)(n >> 16);
		buf[2] = (uint8_t)(n >> 8); buf[3] = (uint8_t)n;
		memcpy(buf + 4, p, n);
		if (amqp_decode_table((amqp_bytes_t){ .len = n + 4, .bytes = buf }, &c->pool, &t, &off))
			return -1;
		for (i = 0; i < t.num_entries; i++) {
			amqp_table_entry_t *e = &t.entries[i];
			char *dst = NULL;
			size_t cap = 0;

			if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
				continue;
			if (e->key.len == 5 && !memcmp(e->key.bytes, "LOGIN", 5))
				dst = user, cap = ucap;
			else if (e->key.len == 8 && !memcmp(e->key.bytes, "PASSWORD", 8))
				dst = pw, cap = pcap;
			if (!dst || e->value.value.bytes.len >= cap)
				continue;
			memcpy(dst, e->value.value.bytes.bytes, e->value.value.bytes.len);
			dst[e->value.value.bytes.len] = 0;
			got++;
		}
		return got == 2 ? 0 : -1;
	}
	return -2;
}

static int on_start_ok(struct conn *c, const amqp_connection_start_ok_t *m)
{
	char pw[1024];
	struct ctl_req *r;
	int rc = sasl_response(c, m, c->user, sizeof(c->user), pw, sizeof(pw));

	if (rc == -2) {
		conn_fail(c, AMQP_ACCESS_REFUSED, 10, 11, "ACCESS_REFUSED - mechanism %.*s is not "
			  "supported (PLAIN, AMQPLAIN)", (int)(m->mechanism.len > 32 ? 32 :
							   m->mechanism.len), (char *)m->mechanism.bytes);
		return 0;
	}
	if (rc || memchr(c->user, 0, strlen(c->user)) || strlen(pw) == 0) {
		gw_count(GC_AUTH_FAILED, 1);
		conn_fail(c, AMQP_ACCESS_REFUSED, 10, 11, "ACCESS_REFUSED - Login was refused using "
			  "authentication mechanism PLAIN. For details see the broker logfile.");
		return 0;
	}
	r = ctl_new(CTL_CALL);
	if (!r || !(r->req = json_pack("{s:s, s:s, s:s}", "op", "amqp_login", "user", c->user,
				       "password", pw))) {
		ctl_free(r);
		conn_fail(c, AMQP_INTERNAL_ERROR, 10, 11, "INTERNAL_ERROR - out of memory");
		return 0;
	}
	memset(pw, 0, sizeof(pw));
	r->done = login_done;
	ctl_submit(c, r, true);
	return 0;
}

static int on_tune_ok(struct conn *c, const amqp_connection_tune_ok_t *m)
{
	if (m->frame_max && (m->frame_max < FRAME_MIN_SIZE || m->frame_max > c->frame_max)) {
		conn_fail(c, AMQP_NOT_ALLOWED, 10, 31, "NOT_ALLOWED - frame_max %u is outside %u..%u",
			  m->frame_max, FRAME_MIN_SIZE, c->frame_max);
		return 0;
	}
	if (m->frame_max)
		c->frame_max = m->frame_max;
	if (m->channel_max && m->channel_max < c->channel_max)
		c->channel_max = m->channel_max;
	c->heartbeat = m->heartbeat;
	c->ch = calloc((size_t)c->channel_max + 1, sizeof(*c->ch));
	if (!c->ch) {
		conn_fail(c, AMQP_INTERNAL_ERROR, 10, 31, "INTERNAL_ERROR - out of memory");
		return 0;
	}
	c->state = C_OPEN_WAIT;
	return 0;
}

static int on_open(struct conn *c, const amqp_connection_open_t *m)
{
	amqp_connection_open_ok_t ok = { .known_hosts = amqp_cstring_bytes("") };

	if (m->virtual_host.len != 1 || ((char *)m->virtual_host.bytes)[0] != '/') {
		conn_fail(c, AMQP_NOT_ALLOWED, 10, 40, "NOT_ALLOWED - vhost '%.*s' not found: "
			  "hbus has the one vhost '/'", (int)(m->virtual_host.len > 64 ? 64 :
							     m->virtual_host.len),
			  (char *)m->virtual_host.bytes);
		return 0;
	}
	put_method(c, 0, AMQP_CONNECTION_OPEN_OK_METHOD, &ok);
	c->state = C_OPEN;
	return 0;
}

/* ------------------------------------------------------------ channel 0 */

static int conn_method(struct conn *c, amqp_method_number_t id, void *m)
{
	amqp_connection_close_ok_t ok = { 0 };

	if (id == AMQP_CONNECTION_CLOSE_METHOD) {
		if (c->state != C_CLOSING) {
			put_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
			c->peer_closes = true;
		}
		c->state = C_DONE;
		conn_teardown(c);
		return 0;
	}
	if (id == AMQP_CONNECTION_CLOSE_OK_METHOD && c->state == C_CLOSING) {
		c->state = C_DONE;
		return 0;
	}
	if (c->state == C_CLOSING)
		return 0; /* spec: discard everything but close and close-ok */
	switch (c->state) {
	case C_START_OK:
		if (id == AMQP_CONNECTION_START_OK_METHOD)
			return on_start_ok(c, m);
		break;
	case C_TUNE_OK:
		if (id == AMQP_CONNECTION_TUNE_OK_METHOD)
			return on_tune_ok(c, m);
		break;
	case C_OPEN_WAIT:
		if (id == AMQP_CONNECTION_OPEN_METHOD)
			return on_open(c, m);
		break;
	case C_OPEN:
		if (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD)
			return 0;
		break;
	default:
		break;
	}
	gw_count(GC_ERR_UNEXPECTED, 1);
	conn_fail(c, AMQP_COMMAND_INVALID, (uint16_t)(id >> 16), (uint16_t)id,
		  "COMMAND_INVALID - method %u.%u is not expected on channel 0 now", id >> 16,
		  id & 0xffff);
	return 0;
}

/* ---------------------------------------------------------------- frames */

static void on_frame(struct conn *c, const struct frame *f)
{
	amqp_method_number_t id = 0;
	void *m = NULL;
	struct chan *ch;
	int rc;

	gw_count(GC_FRAMES_IN, 1);
	if (f->type == AMQP_FRAME_HEARTBEAT) {
		if (f->channel != 0) {
			gw_count(GC_ERR_FRAME, 1);
			conn_fail(c, AMQP_FRAME_ERROR, 0, 0, "FRAME_ERROR - heartbeat on channel %u",
				  f->channel);
		}
		return;
	}
	if (f->type == AMQP_FRAME_METHOD) {
		rc = frame_method(f, &c->pool, &id, &m);
		if (rc) {
			gw_count(rc == -AMQP_NOT_IMPLEMENTED ? GC_ERR_NOT_IMPL : GC_ERR_SYNTAX, 1);
			conn_fail(c, -rc, (uint16_t)(id >> 16), (uint16_t)id, "%s - method %u.%u %s",
				  rc == -AMQP_NOT_IMPLEMENTED ? "NOT_IMPLEMENTED" : "SYNTAX_ERROR",
				  id >> 16, id & 0xffff, rc == -AMQP_NOT_IMPLEMENTED ?
				  "is unknown" : "has malformed arguments");
			return;
		}
	} else if (f->type != AMQP_FRAME_HEADER && f->type != AMQP_FRAME_BODY) {
		gw_count(GC_ERR_FRAME, 1);
		conn_fail(c, AMQP_FRAME_ERROR, 0, 0, "FRAME_ERROR - unknown frame type %u", f->type);
		return;
	}
	if (f->channel == 0) {
		if (f->type != AMQP_FRAME_METHOD) {
			gw_count(GC_ERR_UNEXPECTED, 1);
			conn_fail(c, AMQP_UNEXPECTED_FRAME, 0, 0, "UNEXPECTED_FRAME - content on "
				  "channel 0");
			return;
		}
		conn_method(c, id, m);
		return;
	}
	if (c->state == C_CLOSING)
		return;
	if (c->state != C_OPEN) {
		gw_count(GC_ERR_UNEXPECTED, 1);
		conn_fail(c, AMQP_CHANNEL_ERROR, (uint16_t)(id >> 16), (uint16_t)id,
			  "CHANNEL_ERROR - channel %u before connection.open", f->channel);
		return;
	}
	ch = conn_chan(c, f->channel);
	if (f->channel > c->channel_max) {
		gw_count(GC_ERR_CHANNEL, 1);
		conn_fail(c, AMQP_CHANNEL_ERROR, (uint16_t)(id >> 16), (uint16_t)id,
			  "CHANNEL_ERROR - channel %u is over channel_max %u", f->channel,
			  c->channel_max);
		return;
	}
	if (f->type == AMQP_FRAME_METHOD && id == AMQP_CHANNEL_OPEN_METHOD && !ch) {
		ch = calloc(1, sizeof(*ch));
		if (!ch) {
			conn_fail(c, AMQP_INTERNAL_ERROR, 20, 10, "INTERNAL_ERROR - out of memory");
			return;
		}
		ch->c = c;
		ch->id = f->channel;
		c->ch[f->channel] = ch;
		c->n_chan++;
		if (f->channel > c->hi_ch)
			c->hi_ch = f->channel;
		gw_gauge(&gw_stats.channels, 1);
	}
	if (!ch) {
		gw_count(GC_ERR_CHANNEL, 1);
		conn_fail(c, AMQP_CHANNEL_ERROR, (uint16_t)(id >> 16), (uint16_t)id,
			  "CHANNEL_ERROR - expected 'channel.open' on channel %u", f->channel);
		return;
	}
	if (f->type == AMQP_FRAME_METHOD)
		chan_method(ch, id, m);
	else if (f->type == AMQP_FRAME_HEADER)
		chan_content_header(ch, f->payload, f->size);
	else
		chan_content_body(ch, f->payload, f->size);
}

void conn_process(struct conn *c)
{
	struct frame f;
	int n;

	while (!c->waiting && c->in.len && c->state != C_DONE) {
		if (c->state == C_HEADER) {
			size_t k = c->in.len < 8 ? c->in.len : 8;
			if (memcmp(gbuf_data(&c->in), proto_header, k)) {
				/* Spec: answer with the header we speak, then close. */
				if (gbuf_reserve(&c->out, 8) == 0) {
					memcpy(gbuf_end(&c->out), proto_header, 8);
					c->out.len += 8;
				}
				gw_count(GC_ERR_FRAME, 1);
				c->state = C_DONE;
				loop_want_write(c);
				return;
			}
			if (c->in.len < 8)
				return;
			gbuf_consume(&c->in, 8);
			send_start(c);
			continue;
		}
		n = frame_parse(gbuf_data(&c->in), c->in.len, c->frame_max, &f);
		if (n == 0)
			break;
		if (n < 0) {
			gw_count(GC_ERR_FRAME, 1);
			c->in.len = 0; /* what follows cannot be framed */
			conn_fail(c, -n, 0, 0, "FRAME_ERROR - malformed frame (over frame_max %u, "
				  "or no frame-end byte)", c->frame_max);
			break;
		}
		on_frame(c, &f);
		gbuf_consume(&c->in, (size_t)n);
		recycle_amqp_pool(&c->pool);
	}
	/* Confirms owed for what was just published go out together. */
	if (c->ch)
		for (unsigned i = 1; i <= c->hi_ch && c->state == C_OPEN; i++)
			if (c->ch[i] && c->ch[i]->ack_upto)
				chan_confirm_flush(c->ch[i]);
}

/* Time from t to now; 0 when t is later (taken after the loop read now). */
static inline uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

void conn_tick(struct conn *c, uint64_t now)
{
	uint64_t hb = (uint64_t)c->heartbeat * 1000000000ull;

	if (c->state < C_OPEN && since(now, c->opened_ns) > (uint64_t)gw_opts.handshake_s * 1000000000ull) {
		gw_count(GC_HANDSHAKE_TIMEOUT, 1);
		c->state = C_DONE; /* nothing to say to a peer that never finished */
		conn_teardown(c);
		return;
	}
	if (c->state == C_CLOSING &&
	    since(now, c->close_ns) > (uint64_t)gw_opts.handshake_s * 1000000000ull) {
		c->state = C_DONE;
		return;
	}
	if (hb && c->state == C_OPEN) {
		if (since(now, c->last_rx_ns) > 2 * hb) {
			gw_count(GC_HEARTBEAT_TIMEOUT, 1);
			HBUS_INFO("connection %llu (%s, user '%s'): no heartbeat for %u s: closed",
				  (unsigned long long)c->id, c->peer, c->user, 2u * c->heartbeat);
			c->state = C_DONE;
			conn_teardown(c);
			return;
		}
		if (since(now, c->last_tx_ns) >= hb / 2 && c->out.len == 0 && frame_put_heartbeat(&c->out) == 0)
			loop_want_write(c);
	}
	/* A peer that has read nothing for send_timeout while we had bytes
	 * for it is not buffered for without end. */
	if (c->out.len && c->stuck_since_ns && c->state != C_DONE &&
	    since(now, c->stuck_since_ns) > (uint64_t)gw_opts.send_timeout_s * 1000000000ull) {
		gw_count(GC_SLOW_READER, 1);
		HBUS_INFO("connection %llu (%s, user '%s'): read nothing for %u s with %zu bytes "
			  "waiting: closed", (unsigned long long)c->id, c->peer, c->user,
			  gw_opts.send_timeout_s, c->out.len);
		c->out.len = 0;
		c->state = C_DONE;
		conn_teardown(c);
	}
}

void conn_teardown(struct conn *c)
{
	struct ctl_req *r;
	unsigned i;

	if (c->ch) {
		for (i = 1; i <= c->hi_ch; i++) {
			if (!c->ch[i])
				continue;
			chan_release(c->ch[i]);
			if (c->ch[i]->state == CH_OPEN)
				c->ch[i]->state = CH_CLOSING;
		}
	}
	if (c->vs) {
		r = ctl_new(CTL_CALL);
		if (r && (r->req = ctl_json(c, "amqp_logout")))
			ctl_submit_detached(r);
		else
			ctl_free(r);
		c->vs = 0;
	}
}

void conn_free(struct conn *c)
{
	unsigned i;

	/* conn_teardown released what the channels held. */
	if (c->ch) {
		for (i = 1; i <= c->hi_ch; i++) {
			if (!c->ch[i])
				continue;
			free(c->ch[i]->ua);
			free(c->ch[i]->body);
			free(c->ch[i]->props);
			free(c->ch[i]);
			gw_gauge(&gw_stats.channels, -1);
		}
		free(c->ch);
	}
	for (i = 0; i < c->n_write_ok; i++)
		free(c->write_ok[i]);
	free(c->write_ok);
	empty_amqp_pool(&c->pool);
	gbuf_free(&c->in);
	gbuf_free(&c->out);
	gw_gauge(&gw_stats.connections, -1);
	free(c);
}
