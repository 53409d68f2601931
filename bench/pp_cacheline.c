/*
 * pp_cacheline.c - the hardware floors: two threads hand a message back and
 * forth through plain shared memory, nothing else.
 *
 * cacheline: one buffer for both directions.  A 64-byte-aligned word,
 * (seq << 1) | writer, where writer is 1 for the pinger and 0 for the
 * echoer, followed in the same line by the message bytes (after the 8-byte
 * sequence number, which the word already carries).  The sender copies the
 * message in and stores the word (release); the receiver waits for a word
 * written by the other side (acquire) and copies the message out.  At 32
 * bytes a hop is exactly one cache-line transfer, the least any
 * shared-memory transport can cost; at 288 and 1344 bytes it is the least
 * that moving 5 and 22 lines from core to core can cost.  The echoer
 * writes its reply over lines it has just read (shared, so only the other
 * copy is invalidated), which no transport with a buffer per direction
 * can do.
 *
 * cacheline2: the same with one buffer per direction, each written by one
 * side only (word = the sequence number), a multi-line message pushed to
 * the shared cache after it is published: what a pair of one-way rings
 * costs at the least, with no ring, no claim and no ack.  The writer has
 * to take back lines the reader holds, so large messages cost more than
 * on the shared buffer; hbus has a ring per direction, so this is the
 * floor its large messages are judged against (docs/BENCHMARKS.md).
 *
 * Both run the same loop, timer and polling as every other transport.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "pp.h"

struct cl_buf {
	alignas(128) _Atomic uint64_t word;
	uint8_t rest[PP_MSG_MAX]; /* the message after its sequence number */
};

struct cl_ctx {
	struct cl_buf buf[2];     /* cacheline uses buf[0] both ways */
	bool split;               /* cacheline2: buf[side] is side's to write */
	/* cacheline2: the last sequence number each side sent (its own line). */
	struct {
		alignas(128) uint64_t seq;
	} sent[2];
};

/* cacheline2: push a published multi-line message to the shared cache,
 * where the reader's misses are served sooner (hbus's latency queues do
 * the same; measured: 1344 bytes 0.79 -> 0.71 us).  The floor is the least
 * a pair of one-way buffers can cost, so it gets every trick that helps. */
static void demote_lines(const struct cl_buf *b, size_t len)
{
#if defined(__x86_64__) || defined(__i386__)
	if (len <= 64 - sizeof(uint64_t))
		return;
	for (size_t off = 0; off < sizeof(b->word) + len; off += 64)
		__asm__ volatile("cldemote %0" : : "m"(*((const char *)b + off)));
#else
	(void)b, (void)len;
#endif
}

static int cl_prepare_common(void *ctx, bool split)
{
	struct cl_ctx *c = ctx;

	/* Word 0: "written by the echoer" on the shared buffer (the pinger
	 * goes first); "nothing sent yet" on split buffers (seq >= 1). */
	atomic_store(&c->buf[0].word, 0);
	atomic_store(&c->buf[1].word, 0);
	c->sent[0].seq = c->sent[1].seq = 0;
	c->split = split;
	return 0;
}

static int cl_prepare(void *ctx, const struct pp_opts *o)
{
	(void)o;
	return cl_prepare_common(ctx, false);
}

static int cl2_prepare(void *ctx, const struct pp_opts *o)
{
	(void)o;
	return cl_prepare_common(ctx, true);
}

static int cl_send(void *ctx, int side, const void *buf, size_t len)
{
	struct cl_ctx *c = ctx;
	struct cl_buf *b = &c->buf[c->split ? side : 0];
	uint64_t seq;

	memcpy(&seq, buf, sizeof(seq));
	memcpy(b->rest, (const uint8_t *)buf + sizeof(seq), len - sizeof(seq));
	if (c->split) {
		c->sent[side].seq = seq;
		atomic_store_explicit(&b->word, seq, memory_order_release);
		demote_lines(b, len);
	} else {
		atomic_store_explicit(&b->word, (seq << 1) | (side == 0), memory_order_release);
	}
	return 0;
}

static int cl_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct cl_ctx *c = ctx;
	struct cl_buf *b = &c->buf[c->split ? 1 - side : 0];
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);

	if (c->split) {
		/* The pinger waits for the echo of what it sent; the echoer
		 * for a sequence number other than the one it echoed last. */
		if (side == 0 ? w != c->sent[0].seq : w == c->sent[1].seq)
			return 0;
	} else {
		/* The pinger waits for an echoer word (bit 0 clear), and vice
		 * versa; the initial 0 never satisfies the pinger because it
		 * sends first. */
		if ((w & 1) == (uint64_t)(side == 0))
			return 0;
		w >>= 1;
	}
	memcpy(buf, &w, sizeof(w));
	memcpy((uint8_t *)buf + sizeof(w), b->rest, len - sizeof(w));
	return 1;
}

const struct pp_ops pp_cacheline_ops = {
	.name = "cacheline",
	.threads = true,
	.ctx_size = sizeof(struct cl_ctx),
	.prepare = cl_prepare,
	.open = pp_open_nothing,
	.send = cl_send,
	.try_recv = cl_try_recv,
	.close = pp_close_nothing,
	.cleanup = pp_cleanup_nothing,
};

const struct pp_ops pp_cacheline2_ops = {
	.name = "cacheline2",
	.threads = true,
	.ctx_size = sizeof(struct cl_ctx),
	.prepare = cl2_prepare,
	.open = pp_open_nothing,
	.send = cl_send,
	.try_recv = cl_try_recv,
	.close = pp_close_nothing,
	.cleanup = pp_cleanup_nothing,
};
