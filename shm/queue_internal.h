/*
 * queue_internal.h - the process-local queue handle and the slot helpers
 * shared by queue.c (produce/consume/ack) and queue_recover.c.
 */
#ifndef HBUS_QUEUE_INTERNAL_H
#define HBUS_QUEUE_INTERNAL_H

#include "hbus.h"
#include "queue_layout.h"
#include "shm_file.h"

struct hbus_queue {
	struct hbus_queue_hdr *hdr;
	uint8_t *slots;
	/* Copied from the header once, after validation: a process never
	 * trusts sizes in shared memory twice. */
	uint64_t mask;
	uint32_t shift;
	uint32_t stride;
	uint32_t slot_size;
	uint32_t overflow;
	uint64_t ttl_ns;
	/* This handle's identity and consumer state. */
	uint32_t owner;
	uint32_t ack_mode;
	uint32_t prefetch;
	uint32_t unacked;
	int demote;             /* HBUS_QUEUE_F_LATENCY */
	/* This handle last found the ring full (a hint, shared by the threads
	 * producing through the handle; written only when it changes).  Set,
	 * a producer looks at the tail slot before locking it and asks for no
	 * lines ahead: on a full ring those lines are the consumer's next
	 * messages, and taking them would slow the one side that can make
	 * room. */
	_Atomic int full_hint;
	hbus_dead_fn dead_fn;
	void *dead_ctx;
	struct hbus_map map;
	int fd;
};

static inline struct hbus_slot *slot_at(const struct hbus_queue *q, uint64_t pos)
{
	return (struct hbus_slot *)(q->slots + (pos & q->mask) * q->stride);
}

static inline uint64_t pos_lap(const struct hbus_queue *q, uint64_t pos)
{
	return (pos >> q->shift) & SLOT_LAP_MASK;
}

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release
#define SEQ_CST memory_order_seq_cst

static inline void counter_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, RELAXED);
}

/*
 * Move a cursor forward from pos to next, unless someone already moved it
 * past pos.  A CAS from the position we hold, never a store: a helper that
 * stalled between a load and a store could otherwise move the cursor back
 * by everything done meanwhile (80 000 slots after a 4 ms preemption, and
 * after 2^31 laps a lap distance of the wrong sign: a ring that refuses
 * every enqueue).  The cursor is then a lower bound of the true frontier
 * that only grows, so a walker's lag is the claims in flight.  The line is
 * its side's own (producers share the tail, consumers the head), so in the
 * common case the CAS is local; paid for by the counters, which are plain
 * stores to the handle's own record since layout 3.
 */
static inline void cursor_advance(_Atomic uint64_t *cursor, uint64_t pos, uint64_t next)
{
	atomic_compare_exchange_strong_explicit(cursor, &pos, next, RELAXED, RELAXED);
}

static inline void cursor_help(_Atomic uint64_t *cursor, uint64_t pos)
{
	cursor_advance(cursor, pos, pos + 1);
}

/*
 * Every walk over the ring is bounded.  A walker steps past positions
 * already taken, and with cursors that never go back a legitimate walk is a
 * few steps (the claims in flight); slot words written by a hostile or
 * broken process (laps far ahead, states that never settle) could make it
 * endless.  Past this many steps the caller gets -EUCLEAN: the queue is
 * corrupt, a counted error, never a hang (docs/SECURITY.md).
 */
static inline uint64_t walk_limit(const struct hbus_queue *q)
{
	return 2 * (q->mask + 1) + 1024;
}

/* Ask for a line in exclusive state (PREFETCHW): a read prefetch of a
 * line another core modified brings it shared, and the CAS that follows
 * then pays a second transfer to upgrade it.  PREFETCHW decodes as a NOP
 * on x86 CPUs that lack it; other targets use the compiler's hint. */
static inline void prefetch_for_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

static inline void note_full(struct hbus_queue *q, int full)
{
	if (atomic_load_explicit(&q->full_hint, RELAXED) != full)
		atomic_store_explicit(&q->full_hint, full, RELAXED);
}

/*
 * How far a walker may move a cursor past position p whose slot is d > 0
 * laps ahead of p.  Producers claim in position order, so the slot's
 * having been claimed d - 1 laps on means every earlier position was
 * claimed; and a producer reached that position only after each slot was
 * freed a lap before, so every position more than a lap before it was
 * consumed.  d - 2 whole laps is therefore safe for both cursors; a step
 * of one otherwise.  Without the jump, a cursor far behind (a slot word
 * written far ahead) would be walked one slot per step.
 */
static inline uint64_t lap_jump(const struct hbus_queue *q, int64_t d)
{
	return d > 2 ? (uint64_t)(d - 2) << q->shift : 1;
}

static inline void cursor_help_n(_Atomic uint64_t *cursor, uint64_t pos, unsigned n)
{
	cursor_advance(cursor, pos, pos + n);
}

/* How far into its slot a message of data_len bytes reaches (header
 * included), at most the stride: where prefetching or demoting its lines
 * stops.  data_len may come from a racing read: the cap keeps it inside. */
static inline uint32_t slot_extent(const struct hbus_queue *q, uint64_t data_len)
{
	uint64_t end = HBUS_SLOT_HDR_LEN + data_len;

	return end < q->stride ? (uint32_t)end : q->stride;
}

/*
 * Latency queues (HBUS_QUEUE_F_LATENCY): push a published message that
 * spans several lines from this core's private caches to the shared L3
 * (CLDEMOTE), where the waiting consumer's misses are served sooner than
 * by snooping our L2.  data_len is the caller's, taken before publishing:
 * once READY the slot may be consumed and rewritten under us.  A hint in
 * the x86 NOP space: a NOP on CPUs without it.  Measured in
 * docs/BENCHMARKS.md ("Large messages").
 */
static inline void demote_slot(const struct hbus_queue *q, const struct hbus_slot *s,
			       uint32_t data_len)
{
#if defined(__x86_64__) || defined(__i386__)
	uint32_t end = slot_extent(q, data_len);

	if (!q->demote || end <= 64)
		return;
	for (uint32_t off = 0; off < end; off += 64)
		__asm__ volatile("cldemote %0" : : "m"(*((const char *)s + off)));
#else
	(void)q, (void)s, (void)data_len;
#endif
}

uint64_t hbus_now_ns(void);
void queue_fill_msg(const struct hbus_queue *q, struct hbus_slot *s, uint64_t pos,
		    struct hbus_msg *m);
void queue_wake(struct hbus_queue *q);
static inline void wake_if_waiting(struct hbus_queue *q)
{
	if (atomic_load_explicit(&q->hdr->waiters, SEQ_CST) != 0)
		queue_wake(q);
}

/* Claim the slot at the tail for writing (queue_produce.c).  0 and *pos, or
 * -ENOBUFS when full; *blocked then holds the word of the slot in the way. */
int queue_claim_tail(struct hbus_queue *q, uint64_t *pos, uint64_t *blocked);
/* WRITING -> READY; -ESTALE if the slot was taken from us (recovered). */
int queue_publish_slot(struct hbus_queue *q, struct hbus_slot *s, uint64_t pos);

/* Republish the message held in claimed slot pos (state `held`) at the tail
 * with HBUS_MSG_REDELIVERED and free the old slot.  -EAGAIN when full. */
int queue_republish(struct hbus_queue *q, uint64_t pos, uint64_t held);

#endif
