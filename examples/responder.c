/*
 * responder.c - serve COUNT requests on queue "rpc": each request's body is
 * a number, the reply its square, published to the queue named by the
 * request's "reply_to" header (through the default exchange "", which
 * routes to the queue named by the key) with the same "correlation_id".
 *
 *   ./responder [COUNT]        (then run ./requester)
 */
#include "example.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;
	hbus_client *c = connect_bus();
	char to[256], num[32], out[32];
	struct hbus_meta meta;
	struct hbus_msg m;
	hbus_queue *q;

	request(c, "{\"op\": \"declare_queue\", \"name\": \"rpc\", \"capacity\": 64}");
	check(c, hbus_consume_open(c, "rpc", HBUS_ACK_MANUAL, 1, &q), "consume rpc");
	printf("serving %d requests on rpc\n", n);
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		check(c, hbus_queue_consume_wait(q, &m, 10000), "consume");
		check(c, hbus_meta_decode(m.meta, m.meta_len, &meta), "request metadata");
		const struct hbus_header *reply_to = header(&meta, "reply_to");
		const struct hbus_header *id = header(&meta, "correlation_id");

		if (!reply_to || !id) { /* not a request: dead-letter it */
			hbus_queue_nack(q, &m, 0);
			continue;
		}
		snprintf(num, sizeof(num), "%.*s", (int)m.body_len, (const char *)m.body);
		long x = strtol(num, NULL, 10);
		int len = snprintf(out, sizeof(out), "%ld", x * x);

		snprintf(to, sizeof(to), "%.*s", reply_to->value_len, reply_to->value);
		check(c, hbus_publish(c, "", to, id, 1, out, (uint32_t)len), "reply");
		printf("request %.*s: %ld -> %s\n", id->value_len, id->value, x, out);
		fflush(stdout);
		check(c, hbus_queue_ack(q, &m), "ack");
	}
	hbus_close(c);
	return 0;
}
