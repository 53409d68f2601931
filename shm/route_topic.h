/*
 * route_topic.h - topic exchanges: the trie compiler (hbusd) and the
 * matcher (every reader).
 *
 * Patterns and keys are '.'-separated words (RabbitMQ semantics): "*"
 * matches exactly one word, "#" zero or more, every other word itself.
 * Empty words are words ("a..b" has three); the empty key has none.
 */
#ifndef HBUS_ROUTE_TOPIC_H
#define HBUS_ROUTE_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "route_build.h"
#include "route_match.h"

/* Compile the bindings of one topic exchange into a trie in b: the node
 * array's offset and node count.  0, or -ENOMEM / -EFBIG. */
int rt_topic_build(struct rt_buf *b, const struct rt_cbind *binds, unsigned n,
		   uint32_t *nodes_off, uint32_t *n_nodes);

/* Add the destinations of every pattern of x that matches key to c.
 * 0, or -E2BIG from rt_emit.  No allocation, no recursion. */
int rt_topic_match(struct rt_ctx *c, const struct rt_exchange *x, const char *key, size_t len);

#endif
