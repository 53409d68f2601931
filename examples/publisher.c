/*
 * publisher.c - publish COUNT messages ("hello 0", "hello 1", ...) to the
 * direct exchange "greetings" with routing key "hello".
 *
 *   ./publisher [COUNT]        (start ./consumer first: it makes the queue)
 *
 * hbus_publish routes in this process, on the bus's shared routing table,
 * and writes the message into every queue it matches: no hbusd round trip.
 */
#include "example.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5, unrouted = 0;
	hbus_client *c = connect_bus();
	char body[64];

	request(c, "{\"op\": \"declare_exchange\", \"name\": \"greetings\", \"type\": \"direct\"}");
	for (int i = 0; i < n; i++) {
		int len = snprintf(body, sizeof(body), "hello %d", i);
		/* The number of queues it went to; 0 = nothing was bound. */
		int queues = check(c, hbus_publish(c, "greetings", "hello", NULL, 0, body,
						   (uint32_t)len), "publish");

		printf("published '%s' to %d queue(s)\n", body, queues);
		unrouted += queues == 0;
	}
	hbus_close(c);
	return unrouted ? 1 : 0;
}
