/*
 * rmq_client.c - a rabbitmq-c (librabbitmq) client for the gateway tests.
 *
 *   rmq_client PORT roundtrip N   declare queue rmq.q, publish N messages with
 *                                 message ids and confirms, consume them with
 *                                 manual acks, check ids + FNV-1a checksums
 *   rmq_client PORT publish Q N   publish N messages (ids 0..N-1) to queue Q
 *   rmq_client PORT consume Q N [ack|noack|hold]
 *                                 consume N messages from Q, print "id sum"
 *                                 per message; hold: never ack, then sleep
 * Exit status 0 when everything checked out.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fnv1a.h"

static int die(const char *what, amqp_rpc_reply_t r)
{
	fprintf(stderr, "rmq_client: %s failed (reply type %d, library error %d)\n", what,
		r.reply_type, r.library_error);
	exit(1);
}

static amqp_connection_state_t open_conn(int port)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	amqp_rpc_reply_t r;

	if (!s || amqp_socket_open(s, "127.0.0.1", port)) {
		fprintf(stderr, "rmq_client: cannot connect to port %d\n", port);
		exit(1);
	}
	r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die("login", r);
	amqp_channel_open(c, 1);
	r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die("channel.open", r);
	return c;
}

static void body_of(unsigned i, char *buf, size_t cap, size_t *len)
{
	*len = (size_t)snprintf(buf, cap, "rabbitmq-c message %u %08x", i, i * 2654435761u);
}

static void publish(amqp_connection_state_t c, const char *q, unsigned n)
{
	amqp_basic_properties_t p = { ._flags = AMQP_BASIC_MESSAGE_ID_FLAG };
	char buf[128], id[32];
	size_t len;
	unsigned i;

	for (i = 0; i < n; i++) {
		body_of(i, buf, sizeof(buf), &len);
		snprintf(id, sizeof(id), "%u", i);
		p.message_id = amqp_cstring_bytes(id);
		if (amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(q), 0, 0, &p,
				       (amqp_bytes_t){ len, buf })) {
			fprintf(stderr, "rmq_client: publish %u failed\n", i);
			exit(1);
		}
	}
}

/* Consume n; mode 0 ack, 1 no-ack, 2 hold.  Checks each body against its
 * id; prints "id sum". */
static unsigned consume(amqp_connection_state_t c, const char *q, unsigned n, int mode)
{
	amqp_rpc_reply_t r;
	unsigned got = 0, bad = 0;
	struct timeval tv = { .tv_sec = 10 };

	amqp_basic_qos(c, 1, 0, 100, 0);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, mode == 1, 0,
			   amqp_empty_table);
	r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die("basic.consume", r);
	while (got < n) {
		amqp_envelope_t e;
		char want[128], id[32];
		size_t wlen;
		unsigned i;

		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &e, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			break;
		snprintf(id, sizeof(id), "%.*s", (int)e.message.properties.message_id.len,
			 (char *)e.message.properties.message_id.bytes);
		i = (unsigned)strtoul(id, NULL, 10);
		body_of(i, want, sizeof(want), &wlen);
		if (e.message.body.len != wlen || memcmp(e.message.body.bytes, want, wlen))
			bad++;
		printf("%s %08x%s\n", id,
		       fnv1a32(e.message.body.bytes, e.message.body.len),
		       e.redelivered ? " redelivered" : "");
		if (mode == 0)
			amqp_basic_ack(c, 1, e.delivery_tag, 0);
		amqp_destroy_envelope(&e);
		got++;
	}
	fflush(stdout);
	if (mode == 2)
		pause(); /* hold them unacked until killed */
	return bad ? 0 : got;
}

static int run(amqp_connection_state_t c, int argc, char **argv);

int main(int argc, char **argv)
{
	amqp_connection_state_t c;
	int rc;

	if (argc < 4)
		return 2;
	c = open_conn(atoi(argv[1]));
	rc = run(c, argc, argv);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	return rc;
}

static int run(amqp_connection_state_t c, int argc, char **argv)
{
	if (!strcmp(argv[2], "roundtrip")) {
		unsigned n = (unsigned)atoi(argv[3]);
		amqp_queue_declare(c, 1, amqp_cstring_bytes("rmq.q"), 0, 0, 0, 0, amqp_empty_table);
		if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
			return 1;
		amqp_queue_purge(c, 1, amqp_cstring_bytes("rmq.q"));
		publish(c, "rmq.q", n);
		return consume(c, "rmq.q", n, 0) == n ? 0 : 1;
	}
	if (!strcmp(argv[2], "publish") && argc == 5) {
		publish(c, argv[3], (unsigned)atoi(argv[4]));
		return 0;
	}
	if (!strcmp(argv[2], "consume") && argc >= 5) {
		unsigned n = (unsigned)atoi(argv[4]);
		int mode = argc > 5 ? (!strcmp(argv[5], "noack") ? 1 : !strcmp(argv[5], "hold") ? 2 : 0) : 0;
		return consume(c, argv[3], n, mode) == n ? 0 : 1;
	}
	return 2;
}
