/*
 * queue_internal.h - the process-local queue handle and the helpers shared
 * by the ring's modules: queue.c (files, records, counters),
 * queue_produce.c, queue_consume.c, queue_requeue.c and queue_recover.c.
 */
#ifndef HBUS_QUEUE_INTERNAL_H
#define HBUS_QUEUE_INTERNAL_H

#include <errno.h>

#include "hbus.h"
#include "queue_crash.h"
#include "queue_layout.h"
#include "shm_file.h"

/*
 * A handle is used by one thread at a time (producers and consumers alike):
 * its record's counters and journal are plain stores, with no locked
 * instruction and no line shared with another handle.  Open one handle per
 * thread, as the router and the dataplane's lcores do.
 */
struct hbus_queue {
	struct hbus_queue_hdr *hdr;
	uint8_t *slots;         /* message slots (in the data file of a protected queue) */
	uint8_t *states;        /* state words: slots itself, or the state lines */
	struct hbus_qrec *recs;
	struct hbus_qrec *rec;  /* ours */
	/* Copied from the header once, after validation: a process never
	 * trusts sizes in shared memory twice. */
	uint64_t mask;
	uint32_t shift;
	uint32_t stride;
	uint32_t state_stride;
	uint32_t slot_size;
	uint32_t flags;         /* HBUS_QUEUE_F_* */
	int read_only;          /* a protected queue's bytes, mapped read-only (a consumer) */
	uint32_t overflow;
	uint64_t ttl_ns;
	uint32_t nrec;
	/* This handle's identity and consumer state. */
	uint32_t owner;         /* the process's owner id (hbusd's session) */
	uint32_t holder;        /* our record's index + 1: what our slot words say */
	uint32_t ack_mode;
	uint32_t prefetch;
	uint32_t unacked;
	uint32_t held;          /* slots this handle holds now (claims, a reservation) */
	int demote;             /* HBUS_QUEUE_F_LATENCY */
	/* This handle last found the ring full.  Set, a producer looks at the
	 * tail slot before locking it and asks for no lines ahead: on a full
	 * ring those lines are the consumer's next messages, and taking them
	 * would slow the one side that can make room. */
	int full_hint;
	hbus_dead_fn dead_fn;
	void *dead_ctx;
	uint8_t *dead_buf;      /* slot_size bytes: a message removed unread, for dead_fn */
	hbus_requeue_fn requeue_fn;
	void *requeue_ctx;
	struct hbus_map map, data_map;
	int fd, data_fd;
};

/* queue_file.c: map the queue's file(s) onto q, every layout field checked
 * and copied; and undo it. */
int queue_map(struct hbus_queue *q, int fd, int data_fd);
void queue_unmap(struct hbus_queue *q);

static inline struct hbus_slot *slot_at(const struct hbus_queue *q, uint64_t pos)
{
	return (struct hbus_slot *)(q->slots + (pos & q->mask) * q->stride);
}

static inline uint64_t pos_lap(const struct hbus_queue *q, uint64_t pos)
{
	return (pos >> q->shift) & SLOT_LAP_MASK;
}

/* The full position of the slot at idx whose word says lap (mod 2^32):
 * the one nearest ref (a cursor).  What a scan of slot words, or a
 * journal, knows of a position. */
static inline uint64_t pos_near(const struct hbus_queue *q, uint64_t ref, uint64_t idx,
				uint64_t lap)
{
	uint64_t span_mask = (UINT64_C(1) << (SLOT_LAP_BITS + q->shift)) - 1;
	uint64_t delta = (((lap << q->shift) | (idx & q->mask)) - ref) & span_mask;

	if (delta > span_mask / 2)
		return ref - ((span_mask + 1) - delta);
	return ref + delta;
}

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release
#define SEQ_CST memory_order_seq_cst

/* ----------------------------------------------------------- journal */

/*
 * Crash order: the journal's stores, the CAS and the counter's store must
 * be in this order in the instruction stream, because a SIGKILL can land
 * between any two of them and recovery reads what was stored.  Relaxed
 * atomics to different objects may be reordered by the compiler; a signal
 * fence forbids it and costs no instruction.  (Recovery runs after the
 * process is gone, when all it stored is visible: no hardware fence.)
 */
#define CRASH_ORDER() atomic_signal_fence(memory_order_seq_cst)

static inline uint64_t jr_word(unsigned kind, uint64_t idx, uint64_t lap)
{
	return (uint64_t)kind << 56 | (idx & 0xffffffu) << 32 | (lap & SLOT_LAP_MASK);
}
static inline unsigned jr_kind(uint64_t op) { return (unsigned)(op >> 56); }
static inline uint64_t jr_idx(uint64_t op) { return op >> 32 & 0xffffffu; }
static inline uint64_t jr_lap(uint64_t op) { return op & SLOT_LAP_MASK; }

/*
 * Journal a counted transition of the slot at pos (at its lap): the op,
 * then the counter's value once it is done.  The op goes first: while the
 * target is still the previous op's, it equals the counter, so a recovery
 * that found this op done would store what is already there.  Returns the
 * target, which the caller stores in the counter after its CAS.
 */
static inline uint64_t journal(struct hbus_queue *q, unsigned kind, uint64_t pos, unsigned ctr,
			       uint64_t n)
{
	struct hbus_qrec *r = q->rec;
	uint64_t target = atomic_load_explicit(&r->c[ctr], RELAXED) + n;

	atomic_store_explicit(&r->jr_op, jr_word(kind, pos & q->mask, pos_lap(q, pos)), RELAXED);
	CRASH_ORDER();
	atomic_store_explicit(&r->jr_target, target, RELAXED);
	CRASH_ORDER();
	return target;
}

/* The same, for a transition that names a second slot (aux: a requeue's
 * source, index:24 | lap:32) or acts on a slot another record holds
 * (aux2: its holder, with JR_FOREIGN in the kind).  The op is cleared
 * first: a settle must never read new aux words with the old op. */
static inline uint64_t journal_ex(struct hbus_queue *q, unsigned kind, uint64_t pos, unsigned ctr,
				  uint64_t n, uint64_t aux, uint64_t aux2)
{
	struct hbus_qrec *r = q->rec;

	atomic_store_explicit(&r->jr_op, jr_word(JR_NONE, 0, 0), RELAXED);
	CRASH_ORDER();
	atomic_store_explicit(&r->jr_aux, aux, RELAXED);
	atomic_store_explicit(&r->jr_aux2, aux2, RELAXED);
	CRASH_ORDER();
	return journal(q, kind, pos, ctr, n);
}

/* Forget a journaled transition whose CAS failed (only a process writing
 * our slots behind our back makes that happen). */
static inline void journal_void(struct hbus_queue *q)
{
	atomic_store_explicit(&q->rec->jr_op, jr_word(JR_NONE, 0, 0), RELAXED);
}

/* The counter's store that ends a journaled transition. */
static inline void count_done(struct hbus_queue *q, unsigned ctr, uint64_t target)
{
	CRASH_ORDER();
	atomic_store_explicit(&q->rec->c[ctr], target, RELAXED);
	CRASH_ORDER();
}

/* A counter that records no transition (a refusal, a corrupt walk). */
static inline void count_plain(struct hbus_queue *q, unsigned ctr, uint64_t n)
{
	atomic_store_explicit(&q->rec->c[ctr], atomic_load_explicit(&q->rec->c[ctr], RELAXED) + n,
			      RELAXED);
}

/* The state word of pos: the slot's first 8 bytes, or its own line in the
 * state file of a protected queue. */
static inline _Atomic uint64_t *slot_state(const struct hbus_queue *q, uint64_t pos)
{
	return (_Atomic uint64_t *)(q->states + (pos & q->mask) * q->state_stride);
}

static inline int slot_cas(const struct hbus_queue *q, uint64_t pos, uint64_t *expect,
			   uint64_t want, memory_order success)
{
	return atomic_compare_exchange_strong_explicit(slot_state(q, pos), expect, want, success,
						       RELAXED);
}

/*
 * One counted transition of the slot at pos from the word `from`, which the
 * caller holds (its own slot, or a dead record's during recovery: no one
 * else moves either), to `to`: journal, CAS, count.  cp names its three
 * crash points (journal, CAS, count).  The CAS fails only when a process
 * wrote our slot behind our back: the journal is voided, -ESTALE.
 */
static inline int transition(struct hbus_queue *q, uint64_t pos, uint64_t from, uint64_t to,
			     unsigned kind, unsigned ctr, int cp)
{
	uint32_t h = word_holder(from);
	uint64_t target = h == q->holder ? journal(q, kind, pos, ctr, 1)
					 : journal_ex(q, kind | JR_FOREIGN, pos, ctr, 1, 0, h);

	CRASHPOINT_AT(cp);
	if (!slot_cas(q, pos, &from, to, RELEASE)) {
		journal_void(q);
		return -ESTALE;
	}
	CRASHPOINT_AT(cp + 1);
	count_done(q, ctr, target);
	CRASHPOINT_AT(cp + 2);
	return 0;
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
	/* Look first: a cursor someone already moved costs no locked op.
	 * What we saw may be stale by the CAS: then the CAS fails. */
	if (atomic_load_explicit(cursor, RELAXED) != pos)
		return;
	CRASHPOINT(CURSOR_SEEN);
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
	q->full_hint = full;
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
/* Is a consumer asleep on the queue's futex?  One line, read-shared: no
 * transfer while nobody sleeps.  The caller's READY publication is
 * ordered before this load by a seq_cst CAS or fence (the handshake in
 * hbus_queue_wait). */
static inline int sleepers_any(const struct hbus_queue *q)
{
	uint64_t any = 0;

	for (unsigned i = 0; i < HBUS_QUEUE_RECORDS / 64; i++)
		any |= atomic_load_explicit(&q->hdr->sleepers[i], RELAXED);
	return any != 0;
}

static inline void wake_if_waiting(struct hbus_queue *q)
{
	if (sleepers_any(q))
		queue_wake(q);
}

/* Claim the slot at the tail for writing (queue_produce.c): FREE(lap) ->
 * WRITING(lap, us).  0 and *pos, -ENOBUFS when full (*blocked then holds
 * the word of the slot in the way), -EUCLEAN on a corrupt ring. */
int queue_claim_tail(struct hbus_queue *q, uint64_t *pos, uint64_t *blocked);

/* Remove the READY message at pos (word w) unread: expiry, drop-head or
 * purge; dead-lettered with `why` when the handle has a hook.  0, or
 * -ESTALE when someone else took it first (queue_consume.c). */
int queue_remove_ready(struct hbus_queue *q, uint64_t pos, uint64_t w, unsigned why);

/* Requeue the message held in slot pos (word held; the holder may be
 * another record's when recovery does it) flagged HBUS_MSG_REDELIVERED,
 * back at its position (queue_requeue.c).  0, -ESTALE, -EPERM. */
int queue_requeue(struct hbus_queue *q, uint64_t pos, uint64_t held);
void queue_rewind_head(struct hbus_queue *q, uint64_t pos);

/* Settle the journal of a record whose process is gone: if its transition
 * happened, store the counter it journaled and finish a requeue's move of
 * the head (queue_recover.c). */
void queue_settle(struct hbus_queue *q, struct hbus_qrec *r);


#endif
