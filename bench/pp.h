/*
 * pp.h - the ping-pong driver and the transport interface it drives.
 *
 * One driver (pp_driver.c) measures round trips over any transport: side 0
 * (the pinger, the calling process, pinned to cpu A) sends a message whose
 * first 8 bytes are a sequence number, side 1 (the echoer, a forked
 * process or a thread pinned to cpu B) sends every message it receives
 * straight back, and the pinger checks the sequence number and records
 * the round trip in a histogram.  The loop, the timer and the polling are
 * the same for every transport; a transport only supplies the ops below.
 *
 * Lifecycle of a transport context (ctx_size bytes, zeroed, in memory
 * shared by both sides even across fork):
 *   prepare(ctx, opts)   parent, before the echoer exists (create queues,
 *                        socket pairs, temp dirs: resources both inherit)
 *   open(ctx, side)      in each side, after fork / thread start
 *   send / try_recv      the hot loop
 *   close(ctx, side)     in each side
 *   cleanup(ctx)         parent, after the echoer has exited
 */
#ifndef HBUS_BENCH_PP_H
#define HBUS_BENCH_PP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

#define PP_MSG_MIN 8u        /* the sequence number */
#define PP_MSG_MAX 65000u    /* fits one UDP datagram */

struct pp_opts {
	uint32_t size;      /* message bytes, PP_MSG_MIN..PP_MSG_MAX */
	uint64_t count;     /* measured round trips */
	uint64_t warmup;    /* unmeasured round trips first */
	int cpu_a, cpu_b;   /* pinger, echoer */
	uint64_t rate;      /* 0: closed loop; else intended sends per second */
	const char *shm_dir;/* where shm queue files are created (then unlinked) */
};

struct pp_ops {
	const char *name;
	bool threads;     /* echoer is a thread (else a forked process) */
	size_t ctx_size;
	int (*prepare)(void *ctx, const struct pp_opts *o);
	int (*open)(void *ctx, int side);
	/* Send len bytes: 0 or negative errno (the driver gives up). */
	int (*send)(void *ctx, int side, const void *buf, size_t len);
	/* Non-blocking: 1 = one message copied into buf (its length checked
	 * against len), 0 = nothing yet, negative errno = error. */
	int (*try_recv)(void *ctx, int side, void *buf, size_t len);
	void (*close)(void *ctx, int side);
	void (*cleanup)(void *ctx);
};

extern const struct pp_ops pp_cacheline_ops;
extern const struct pp_ops pp_cacheline2_ops;
extern const struct pp_ops pp_slotring_ops;  /* the floor of a slot per message */
extern const struct pp_ops pp_shm_ops;
extern const struct pp_ops pp_shm_x_ops; /* every handle exclusive */
extern const struct pp_ops pp_shm_p_ops; /* protected queues */
extern const struct pp_ops pp_uds_ops;
extern const struct pp_ops pp_udp_ops;
#ifdef HBUS_BENCH_ZMQ
extern const struct pp_ops pp_zmq_ops;
#endif
#ifdef HBUS_BENCH_AERON
extern const struct pp_ops pp_aeron_ops;
#endif
#ifdef HBUS_BENCH_AMQP
extern const struct pp_ops pp_amqp_ops;     /* rabbitmq-c through hbus-amqp */
extern const struct pp_ops pp_rabbitmq_ops; /* rabbitmq-c through a private RabbitMQ */
#endif

/* For transports with nothing to do in open, close or cleanup. */
int pp_open_nothing(void *ctx, int side);
void pp_close_nothing(void *ctx, int side);
void pp_cleanup_nothing(void *ctx);

/* The transport called name, or NULL. */
const struct pp_ops *pp_find(const char *name);
/* For a transport this build left out (zmq, aeron), why and how to get it;
 * NULL for any other name. */
const char *pp_unavailable(const char *name);
/* Every transport name, built or not, in the order compare runs them
 * (NULL-terminated): the floors, hbus and its variants, then the peers. */
extern const char *const pp_all_names[];

/*
 * Run warmup + count round trips; record each measured round trip (ns) in
 * h (not reset first).  In rate mode a round trip is measured from the
 * intended send time, start + i / rate, so a stall delays the sends behind
 * it and their latency counts the wait (no coordinated omission).
 * 0, or negative errno with a message on stderr (sequence mismatch:
 * -EBADMSG; no reply within 10 s: -ETIMEDOUT).
 */
int pp_run(const struct pp_ops *ops, const struct pp_opts *o, struct hist *h);

/* The size options accept; a usage error message otherwise. */
const char *pp_check_opts(const struct pp_opts *o);

#endif /* HBUS_BENCH_PP_H */
