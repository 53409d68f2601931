/*
 * pp_amqp.c - AMQP ping-pong with rabbitmq-c (librabbitmq): "amqp" through
 * hbus-amqp (with its own hbusd), "rabbitmq" through a private RabbitMQ
 * node, the same client code for both, so `compare` puts the two brokers
 * side by side.
 *
 * Each side opens its own connection after the fork, declares the two
 * queues, consumes its own with no-ack and publishes to the other's; the
 * receive side polls amqp_consume_message with a zero timeout.  The brokers
 * (amqp_broker.c) start once per hbus-bench process, at the first prepare,
 * and stop at exit: RabbitMQ takes seconds to start, compare runs every
 * transport once per round.  Without rabbitmq-server installed, the
 * rabbitmq row is skipped (-ENOPKG) with a note.
 */
#ifdef HBUS_BENCH_AMQP
#include <amqp.h>
#include <errno.h>
#include <string.h>
#include <sys/time.h>

#include "amqp_broker.h"
#include "pp.h"

struct amqp_pp_ctx {
	int port;
	struct {
		amqp_connection_state_t c;
	} side[2];
};

static int gw_prepare(void *ctx, const struct pp_opts *o)
{
	(void)o;
	return amqp_broker_port(AMQP_BROKER_HBUS, &((struct amqp_pp_ctx *)ctx)->port);
}

static int rmq_prepare(void *ctx, const struct pp_opts *o)
{
	(void)o;
	return amqp_broker_port(AMQP_BROKER_RABBITMQ, &((struct amqp_pp_ctx *)ctx)->port);
}

static const char *const qname[2] = { "hbus.bench.pp0", "hbus.bench.pp1" };

static int app_open(void *ctx, int side)
{
	struct amqp_pp_ctx *c = ctx;
	amqp_connection_state_t conn = amqp_bench_connect(c->port);
	int i;

	if (!conn)
		return -ECONNREFUSED;
	c->side[side].c = conn; /* closed by app_close, whatever happens next */
	for (i = 0; i < 2; i++) {
		amqp_queue_declare(conn, 1, amqp_cstring_bytes(qname[i]), 0, 0, 0, 0, amqp_empty_table);
		if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
			return -EPROTO;
	}
	amqp_queue_purge(conn, 1, amqp_cstring_bytes(qname[side]));
	amqp_basic_consume(conn, 1, amqp_cstring_bytes(qname[side]), amqp_empty_bytes, 0, 1, 0,
			   amqp_empty_table);
	if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
		return -EPROTO;
	return 0;
}

static int app_send(void *ctx, int side, const void *buf, size_t len)
{
	struct amqp_pp_ctx *c = ctx;

	return amqp_basic_publish(c->side[side].c, 1, amqp_empty_bytes,
				  amqp_cstring_bytes(qname[!side]), 0, 0, NULL,
				  (amqp_bytes_t){ len, (void *)buf }) ? -EIO : 0;
}

static int app_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct amqp_pp_ctx *c = ctx;
	struct timeval zero = { 0, 0 };
	amqp_envelope_t e;
	amqp_rpc_reply_t r;
	int got = 0;

	amqp_maybe_release_buffers(c->side[side].c);
	r = amqp_consume_message(c->side[side].c, &e, &zero, 0);
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
		return 0;
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return -EIO;
	if (e.message.body.len == len) {
		memcpy(buf, e.message.body.bytes, len);
		got = 1;
	}
	amqp_destroy_envelope(&e);
	return got ? 1 : -EBADMSG;
}

static void app_close(void *ctx, int side)
{
	struct amqp_pp_ctx *c = ctx;

	amqp_bench_close(c->side[side].c);
	c->side[side].c = NULL;
}

const struct pp_ops pp_amqp_ops = {
	.name = "amqp", .threads = false, .ctx_size = sizeof(struct amqp_pp_ctx),
	.prepare = gw_prepare, .open = app_open, .send = app_send, .try_recv = app_try_recv,
	.close = app_close, .cleanup = pp_cleanup_nothing, /* the brokers stop at exit */
};

const struct pp_ops pp_rabbitmq_ops = {
	.name = "rabbitmq", .threads = false, .ctx_size = sizeof(struct amqp_pp_ctx),
	.prepare = rmq_prepare, .open = app_open, .send = app_send, .try_recv = app_try_recv,
	.close = app_close, .cleanup = pp_cleanup_nothing, /* the brokers stop at exit */
};
#endif
