/*
 * pp_slotring.c - the floor of a ring with a slot per message: what the
 * hardware allows a transport of hbus's (and Aeron's) shape, with nothing
 * a message bus needs.
 *
 * One ring of 256 slots per direction (the message rounded up to whole
 * 64-byte lines), each written by one side only.  The sender copies the
 * message into its next slot after the slot's 8-byte word (which stands
 * for the message's sequence number) and stores the word (the message's position + 1, release);
 * the receiver polls the word of its next slot (acquire) and copies the
 * message out.  No flow control (one message is in flight), no claim, no
 * ack, nothing written by the receiver.  An empty poll pauses (PAUSE):
 * measured on this project's VM, a reader polling the line in a tight loop
 * pulls it back while it is written and costs 30-40 ns a round trip
 * (docs/BENCHMARKS.md, "Session 5").  cacheline2 is the floor of one line
 * rewritten per direction; this is the floor of a fresh slot per message,
 * which is lower on the machines we measured, so issue 15's comparison
 * with Aeron is read against it.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "bench.h"
#include "pp.h"

#define SR_SLOTS  256u
/* A slot: the word, then the message after its sequence number, rounded
 * up to whole lines; at most PP_MSG_MAX bytes. */
#define SR_STRIDE_MAX (((PP_MSG_MAX + 63u) / 64u) * 64u)

struct sr_ctx {
	uint32_t stride;
	struct {
		alignas(128) uint64_t sent, got; /* positions: side's own line */
	} pos[2];
	/* ring[side] (SR_SLOTS slots of stride bytes): side writes, the other
	 * reads.  Pages never touched cost nothing. */
	alignas(4096) uint8_t ring[2][SR_SLOTS * SR_STRIDE_MAX];
};

static inline _Atomic uint64_t *sr_word(struct sr_ctx *c, int ring, uint64_t p)
{
	return (_Atomic uint64_t *)&c->ring[ring][(p % SR_SLOTS) * c->stride];
}

static int sr_prepare(void *ctx, const struct pp_opts *o)
{
	struct sr_ctx *c = ctx;

	/* The word replaces the message's sequence number: o->size bytes. */
	c->stride = (o->size + 63u) & ~63u;
	return 0;
}

static int sr_send(void *ctx, int side, const void *buf, size_t len)
{
	struct sr_ctx *c = ctx;
	uint64_t p = c->pos[side].sent++;
	_Atomic uint64_t *w = sr_word(c, side, p);

	memcpy((uint8_t *)w + sizeof(uint64_t), (const uint8_t *)buf + sizeof(uint64_t),
	       len - sizeof(uint64_t));
	atomic_store_explicit(w, p + 1, memory_order_release);
	return 0;
}

static int sr_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct sr_ctx *c = ctx;
	uint64_t p = c->pos[side].got, seq;
	_Atomic uint64_t *w = sr_word(c, 1 - side, p);

	if (atomic_load_explicit(w, memory_order_acquire) != p + 1) {
		bench_cpu_relax();
		return 0;
	}
	/* The driver's sequence number is the message's position + 1 in
	 * both directions (one message in flight). */
	seq = p + 1;
	memcpy(buf, &seq, sizeof(seq));
	memcpy((uint8_t *)buf + sizeof(seq), (const uint8_t *)w + sizeof(seq), len - sizeof(seq));
	c->pos[side].got = p + 1;
	return 1;
}

const struct pp_ops pp_slotring_ops = {
	.name = "slotring",
	.threads = true,
	.ctx_size = sizeof(struct sr_ctx),
	.prepare = sr_prepare,
	.open = pp_open_nothing,
	.send = sr_send,
	.try_recv = sr_try_recv,
	.close = pp_close_nothing,
	.cleanup = pp_cleanup_nothing,
};
