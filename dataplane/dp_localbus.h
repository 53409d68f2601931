/*
 * dp_localbus.h - a bus without hbusd, for the dataplane's benchmark and
 * unit tests: a routes file with a compiled table, a reader block, and one
 * queue file per
 * table queue, all unlinked as soon as they are open (nothing is left
 * behind, even on a crash).  The pipeline reads it through
 * dp_route_src.routes / qtab, the same lookup code hbus-dataplane uses
 * through its router.
 */
#ifndef HBUS_DP_LOCALBUS_H
#define HBUS_DP_LOCALBUS_H

#include <stdint.h>

#include "dp_pipe.h"
#include "route.h"

#define DP_LOCALBUS_PRODUCER 1u /* owner id of the producer handles */

struct dp_localbus {
	struct hbus_routes *routes;
	int routes_fd;
	struct hbus_readers *readers;
	int readers_fd;
	unsigned reader;
	hbus_queue **qtab;     /* qid -> producer handle (NULL: no such queue) */
	int *qfd;              /* qid -> queue file descriptor, -1 */
	uint32_t qtab_len;
};

/*
 * Build it in dir (e.g. /dev/shm): compile in, publish it, create every
 * queue of in->queues with cfg.  0 or negative errno.
 */
int dp_localbus_open(struct dp_localbus *b, const char *dir, const struct hbus_rc_input *in,
		     const struct hbus_queue_config *cfg);
/* The same with the producer handles opened with producer_flags
 * (HBUS_PRODUCE_EXCLUSIVE: no hbusd grants it here; the one lcore using
 * them is every queue's only producer, as hbus-dataplane
 * --exclusive-producer). */
int dp_localbus_open_ex(struct dp_localbus *b, const char *dir, const struct hbus_rc_input *in,
			const struct hbus_queue_config *cfg, uint32_t producer_flags);
/* Compile and publish a new table (queues must already exist). */
int dp_localbus_publish(struct dp_localbus *b, const struct hbus_rc_input *in);
/* A consumer handle on queue qid. */
int dp_localbus_consumer(struct dp_localbus *b, uint32_t qid, uint32_t owner, uint32_t ack_mode,
			 hbus_queue **out);
void dp_localbus_route_src(const struct dp_localbus *b, struct dp_route_src *src);
void dp_localbus_close(struct dp_localbus *b);

#endif
