/*
 * amqp_broker.h - the two AMQP brokers hbus-bench puts side by side, and
 * the rabbitmq-c connection both the ping-pong rows (pp_amqp.c) and
 * `amqp-throughput` (bench_amqp_tp.c) open to them.
 *
 *   AMQP_BROKER_HBUS      hbus-amqp with an hbusd of its own, both from the
 *                         build tree next to hbus-bench (else from PATH),
 *                         rings on tmpfs (/dev/shm)
 *   AMQP_BROKER_RABBITMQ  a private RabbitMQ node: Debian's rabbitmq-server as
 *                         root without systemd, its own node name, ports,
 *                         mnesia, logs and HOME (tests/amqp/rabbitmq.sh does
 *                         the same for the tests); -ENOPKG when not installed
 *
 * A broker starts once per hbus-bench process, on first use (RabbitMQ takes
 * seconds), and stops at exit.  HBUS_BENCH_AMQP_PORT / HBUS_BENCH_RABBITMQ_PORT
 * name a broker already running instead (user guest/guest).  Forked children
 * must leave with _exit(): the stop handlers are the parent's.
 */
#ifndef HBUS_BENCH_AMQP_BROKER_H
#define HBUS_BENCH_AMQP_BROKER_H

#ifdef HBUS_BENCH_AMQP
#include <amqp.h>

enum amqp_broker_kind { AMQP_BROKER_HBUS = 0, AMQP_BROKER_RABBITMQ, AMQP_BROKER_N };

/* Its row name: "amqp" or "rabbitmq". */
const char *amqp_broker_name(enum amqp_broker_kind k);

/* Start the broker (first call) and give its loopback port.  0, -ENOPKG
 * (rabbitmq-server is not installed; a note was printed), or another
 * negative errno (it did not start; said on stderr).  The answer of the
 * first call is kept.  The broker runs on every cpu, whatever the caller's
 * affinity. */
int amqp_broker_port(enum amqp_broker_kind k, int *port);

/* A connection logged in as guest/guest (frame_max 131072, no heartbeat)
 * with channel 1 open, or NULL. */
amqp_connection_state_t amqp_bench_connect(int port);
/* channel.close, connection.close, and free it. */
void amqp_bench_close(amqp_connection_state_t c);
#endif

#endif /* HBUS_BENCH_AMQP_BROKER_H */
