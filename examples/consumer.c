/*
 * consumer.c - consume COUNT messages from queue "hello-q" (bound to the
 * exchange "greetings" with key "hello") with manual acks: each message is
 * acked only after it was printed, so if this process dies before that,
 * hbusd gives the message back to the queue, flagged redelivered.
 *
 *   ./consumer [COUNT]         (then run ./publisher)
 */
#include "example.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5;
	hbus_client *c = connect_bus();
	struct hbus_msg m;
	hbus_queue *q;

	request(c, "{\"op\": \"declare_exchange\", \"name\": \"greetings\", \"type\": \"direct\"}");
	request(c, "{\"op\": \"declare_queue\", \"name\": \"hello-q\", \"capacity\": 64}");
	request(c, "{\"op\": \"bind\", \"source\": \"greetings\", \"destination\": \"hello-q\", "
		   "\"key\": \"hello\"}");
	/* Manual acks, at most 16 messages unacked at a time. */
	check(c, hbus_consume_open(c, "hello-q", HBUS_ACK_MANUAL, 16, &q), "consume hello-q");
	printf("waiting for %d messages on hello-q\n", n);
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		/* Sleeps on the queue's futex until a message is there (10 s at most). */
		check(c, hbus_queue_consume_wait(q, &m, 10000), "consume");
		/* m.body points into the queue's shared memory: no copy. */
		printf("got '%.*s'%s\n", (int)m.body_len, (const char *)m.body,
		       m.flags & HBUS_MSG_REDELIVERED ? " (redelivered)" : "");
		fflush(stdout);
		check(c, hbus_queue_ack(q, &m), "ack");
	}
	printf("acked %d messages\n", n);
	hbus_consume_close(c, q);
	hbus_close(c);
	return 0;
}
