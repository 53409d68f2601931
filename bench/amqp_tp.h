/*
 * amqp_tp.h - one run of `hbus-bench amqp-throughput` (amqp_tp_run.c); the
 * mode's options, rounds and output are in bench_amqp_tp.c.
 */
#ifndef HBUS_BENCH_AMQP_TP_H
#define HBUS_BENCH_AMQP_TP_H

#ifdef HBUS_BENCH_AMQP
#include <stdbool.h>
#include <stdint.h>

#include "amqp_broker.h"

#define TP_SLOT_EXTRA 256u       /* meta (exchange, key) beside the body in a slot */

struct atp_opts {
	uint32_t size, window, rounds;
	uint64_t count;
	bool modes[2];               /* confirms off, on */
	bool brokers[AMQP_BROKER_N];
	bool json;
};

struct atp_run {
	uint64_t published, acked, nacked, consumed, bad, dups;
	double rate, pub_rate;       /* msgs/s: end to end, publisher side */
	int rc;
};

/* One run: a consumer process subscribes, this process publishes o->count
 * messages of o->size bytes to the broker on port (confirms on: at most
 * o->window unconfirmed), the consumer checks every one.  Fills run; 0, or
 * negative errno when the run could not be made (said on stderr).  Lost or
 * bad messages are in run, not in the return value. */
int amqp_tp_run(enum amqp_broker_kind k, int port, bool confirm, const struct atp_opts *o,
		struct atp_run *run);
#endif

#endif /* HBUS_BENCH_AMQP_TP_H */
