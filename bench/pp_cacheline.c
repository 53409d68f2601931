/*
 * pp_cacheline.c - the hardware floor: two threads hand a message back and
 * forth through plain shared memory, nothing else.
 *
 * One buffer: a 64-byte-aligned word, (seq << 1) | writer, where writer is
 * 1 for the pinger and 0 for the echoer, followed in the same line by the
 * message bytes (after the 8-byte sequence number, which the word already
 * carries).  The sender copies the message in and stores the word
 * (release); the receiver waits for a word written by the other side
 * (acquire) and copies the message out.  At 32 bytes a hop is exactly one
 * cache-line transfer, the least any shared-memory transport can cost; at
 * 288 and 1344 bytes it is the least that moving 5 and 22 lines from core
 * to core can cost, with no ring, no claim and no ack: the floor each size
 * is judged against.  It runs the same loop, timer and polling as every
 * other transport.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "pp.h"

struct cl_ctx {
	alignas(128) _Atomic uint64_t word;
	uint8_t rest[PP_MSG_MAX]; /* the message after its sequence number */
};

static int cl_prepare(void *ctx, const struct pp_opts *o)
{
	struct cl_ctx *c = ctx;
	(void)o;
	atomic_store(&c->word, 0); /* "written by the echoer": the pinger goes first */
	return 0;
}

static int cl_open(void *ctx, int side)
{
	(void)ctx;
	(void)side;
	return 0;
}

static int cl_send(void *ctx, int side, const void *buf, size_t len)
{
	struct cl_ctx *c = ctx;
	uint64_t seq;

	memcpy(&seq, buf, sizeof(seq));
	memcpy(c->rest, (const uint8_t *)buf + sizeof(seq), len - sizeof(seq));
	atomic_store_explicit(&c->word, (seq << 1) | (side == 0), memory_order_release);
	return 0;
}

static int cl_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct cl_ctx *c = ctx;
	uint64_t w = atomic_load_explicit(&c->word, memory_order_acquire);

	/* The pinger waits for an echoer word (bit 0 clear), and vice versa;
	 * the initial 0 never satisfies the pinger because it sends first. */
	if ((w & 1) == (uint64_t)(side == 0))
		return 0;
	w >>= 1;
	memcpy(buf, &w, sizeof(w));
	memcpy((uint8_t *)buf + sizeof(w), c->rest, len - sizeof(w));
	return 1;
}

static void cl_close(void *ctx, int side)
{
	(void)ctx;
	(void)side;
}

static void cl_cleanup(void *ctx)
{
	(void)ctx;
}

const struct pp_ops pp_cacheline_ops = {
	.name = "cacheline",
	.threads = true,
	.ctx_size = sizeof(struct cl_ctx),
	.prepare = cl_prepare,
	.open = cl_open,
	.send = cl_send,
	.try_recv = cl_try_recv,
	.close = cl_close,
	.cleanup = cl_cleanup,
};
