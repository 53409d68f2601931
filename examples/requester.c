/*
 * requester.c - ask ./responder for the squares of 1..COUNT, one request at
 * a time, each answered on this process's own queue ("reply_to") and
 * matched by its "correlation_id".  The reply queue is auto-delete: hbusd
 * deletes it when this process's session ends, however it ends.  (Not
 * exclusive: hbus refuses other sessions every use of an exclusive queue,
 * publishing included, so the responder could not answer.)
 *
 *   ./requester [COUNT]        (start ./responder first)
 */
#include <unistd.h>

#include "example.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;
	hbus_client *c = connect_bus();
	char me[64], req[160], id[16], body[16];
	struct hbus_meta meta;
	struct hbus_msg m;
	hbus_queue *q;

	snprintf(me, sizeof(me), "reply-%d", (int)getpid());
	snprintf(req, sizeof(req), "{\"op\": \"declare_queue\", \"name\": \"%s\", "
		 "\"auto_delete\": true, \"capacity\": 16}", me);
	request(c, req);
	check(c, hbus_consume_open(c, me, HBUS_ACK_AUTO, 0, &q), "consume replies");
	for (int i = 1; i <= n; i++) {
		int len = snprintf(body, sizeof(body), "%d", i);
		struct hbus_header h[2] = {
			{ .name = "reply_to", .name_len = 8, .value = me, .value_len = (uint16_t)strlen(me) },
			{ .name = "correlation_id", .name_len = 14, .value = id,
			  .value_len = (uint16_t)snprintf(id, sizeof(id), "%d", i) },
		};

		if (check(c, hbus_publish(c, "", "rpc", h, 2, body, (uint32_t)len), "request") == 0) {
			fprintf(stderr, "no queue 'rpc': start ./responder first\n");
			return 1;
		}
		check(c, hbus_queue_consume_wait(q, &m, 10000), "wait for the reply");
		check(c, hbus_meta_decode(m.meta, m.meta_len, &meta), "reply metadata");
		const struct hbus_header *cid = header(&meta, "correlation_id");

		if (!cid || cid->value_len != strlen(id) || memcmp(cid->value, id, cid->value_len)) {
			fprintf(stderr, "reply to another request\n");
			return 1;
		}
		printf("%d squared is %.*s\n", i, (int)m.body_len, (const char *)m.body);
		hbus_queue_ack(q, &m); /* auto mode: returns the slot */
	}
	hbus_close(c);
	return 0;
}
