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
	uint64_t next_tail;     /* producer: where its last claim ended (cursors, above) */
	uint64_t next_head;     /* consumer: the position after its last claim */
	uint64_t rewinds_seen;  /* consumer: hdr->head_gen when next_head was set */
	uint64_t head_pub;      /* consumer: where it last found nothing (and published) */
	/* The only consumer (HBUS_CONSUME_EXCLUSIVE, not drop-head), the only
	 * producer (HBUS_PRODUCE_EXCLUSIVE).  Atomic (read relaxed: a plain
	 * load) because another thread may clear them: the client library,
	 * when hbusd no longer grants them (queue_drop_exclusive). */
	_Atomic int sc;
	_Atomic int sp;
	uint64_t sp_free;       /* the only producer: positions below were FREE at their lap */
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
	uint64_t xhold;         /* the only consumer: position + 1 of the READY slot its
				   record's xhold names (held without a claim store), or 0 */
	uint64_t xret;          /* ...and in auto-ack mode, acked but not yet returned:
				   xhold, or 0 (queue_xret_flush) */
	uint32_t empty_polls;   /* hbus_queue_consume: empty polls in a row */
};

/* A spin-wait hint: PAUSE on x86, YIELD on arm64. */
static inline void hbus_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

/* The state a claim of this handle puts a slot in. */
static inline unsigned held_state(const struct hbus_queue *q)
{
	return q->ack_mode == HBUS_ACK_MANUAL ? SLOT_CLAIMED : SLOT_CLAIMED_AUTO;
}

static inline int q_sc(const struct hbus_queue *q)
{
	return atomic_load_explicit(&q->sc, memory_order_relaxed);
}

static inline int q_sp(const struct hbus_queue *q)
{
	return atomic_load_explicit(&q->sp, memory_order_relaxed);
}

/* hbusd no longer grants this handle's exclusivity (the client library
 * learns it on a new session): from its next claim on, the handle claims
 * by CAS like the others.  Any thread may call it; a burst under way
 * finishes as it started (each of its steps is safe either way). */
static inline void queue_drop_exclusive(struct hbus_queue *q)
{
	atomic_store_explicit(&q->sc, 0, memory_order_relaxed);
	atomic_store_explicit(&q->sp, 0, memory_order_relaxed);
}

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
/*
 * The only consumer's held slot, in its record (xhold): the state it is
 * held in (CLAIMED or CLAIMED_AUTO, never 0, so a word names a slot iff it
 * is not 0), the index and the lap.  The slot stays READY(lap) while the
 * word names it: docs/QUEUE.md, "Exclusive handles".
 */
static inline uint64_t xhold_word(const struct hbus_queue *q, uint64_t pos, unsigned st)
{
	return (uint64_t)st << 60 | (pos & q->mask & 0xffffffu) << 32 | pos_lap(q, pos);
}
static inline unsigned xhold_state(uint64_t x) { return (unsigned)(x >> 60); }
static inline uint64_t xhold_idx(uint64_t x) { return x >> 32 & 0xffffffu; }
static inline uint64_t xhold_lap(uint64_t x) { return x & SLOT_LAP_MASK; }

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
 * Cursors.  Each handle walks from its own cursor (next_tail, next_head:
 * where its last claim ended), and the shared ones in the header are
 * lower bounds that handles publish, by a CAS from the value they read, when
 * they have nothing to do, when they walked over others' claims, and every
 * CURSOR_PUBLISH_BUSY positions otherwise: a CAS never moves a cursor back (a helper
 * that read a cursor, stalled for 4 ms and then stored would move it back
 * by everything done meanwhile, and after 2^31 laps of that the sign of a
 * lap distance flips and an empty ring refuses every enqueue), and off the
 * critical path it costs what one per message did not (two locked
 * instructions per message: 0.12 -> 0.16 us a 32-byte round trip,
 * docs/BENCHMARKS.md, "Session 4").  A handle starts from the larger of
 * its cursor and the shared one; claims stay in position order (a walk
 * steps only over taken slots, so the first FREE one it meets is the
 * lowest unclaimed).
 *
 * A requeue lowers the head and bumps its generation in one CAS
 * (queue_requeue.c): consumers that see a new generation walk from the
 * shared head again.
 */
/* While a handle works alone and without pause, it publishes only every
 * this many positions: the CAS waits for every store before it to drain,
 * and paid on the critical path it showed at p99 (one round trip in 16
 * slower at 16).  A handle that walked over others' claims, or has
 * nothing to do, publishes at once. */
#define CURSOR_PUBLISH_BUSY 1024u
/* How far ahead of its tail the only producer looks for free slots. */
#define SP_AHEAD 32u

static inline void cursor_advance(_Atomic uint64_t *cursor, uint64_t pos, uint64_t next)
{
	/* Look first: a cursor someone already moved costs no locked op.
	 * What we saw may be stale by the CAS: then the CAS fails. */
	if (atomic_load_explicit(cursor, RELAXED) != pos)
		return;
	CRASHPOINT(CURSOR_SEEN);
	atomic_compare_exchange_strong_explicit(cursor, &pos, next, RELAXED, RELAXED);
}

/* The larger of two positions (they are within half the position space of
 * each other: cursors lag by less than a lap). */
static inline uint64_t pos_max(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) > 0 ? a : b;
}

/* Publish our cursor `next` to the shared one when it is at least `lag`
 * ahead of it. */
static inline void cursor_publish(_Atomic uint64_t *cursor, uint64_t next, uint64_t lag)
{
	uint64_t cur = atomic_load_explicit(cursor, RELAXED);

	if ((int64_t)(next - cur) >= (int64_t)lag) {
		CRASHPOINT(CURSOR_SEEN);
		atomic_compare_exchange_strong_explicit(cursor, &cur, next, RELAXED, RELAXED);
	}
}

/*
 * The head and its generation (the requeues that lowered it) change
 * together, in one 16-byte CAS: a consumer that publishes how far it got
 * expects the generation it last saw, so it can never overwrite a head a
 * requeue lowered behind its cursor (it would hide the requeued message),
 * and a consumer that sees a new generation sees the lowered head with it.
 * Read as generation, head, generation (the pair is written only whole).
 */
static inline void head_read(const struct hbus_queue *q, uint64_t *head, uint64_t *gen)
{
	uint64_t g;

	do {
		g = atomic_load_explicit(&q->hdr->head_gen, ACQUIRE);
		*head = atomic_load_explicit(&q->hdr->head, ACQUIRE);
	} while (atomic_load_explicit(&q->hdr->head_gen, ACQUIRE) != g);
	*gen = g;
}

static inline int head_cas(struct hbus_queue *q, uint64_t head, uint64_t gen, uint64_t new_head,
			   uint64_t new_gen)
{
#if defined(__x86_64__)
	unsigned char ok;

	__asm__ volatile("lock cmpxchg16b %1\n\tsete %0"
			 : "=q"(ok), "+m"(*(volatile unsigned __int128 *)&q->hdr->head), "+a"(head),
			   "+d"(gen)
			 : "b"(new_head), "c"(new_gen)
			 : "memory", "cc");
	return ok;
#else
	unsigned __int128 want = (unsigned __int128)gen << 64 | head;

	return __atomic_compare_exchange_n((unsigned __int128 *)&q->hdr->head, &want,
					   (unsigned __int128)new_gen << 64 | new_head, 0,
					   __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
#endif
}

/* Publish a consumer's cursor `next` when it is at least `lag` ahead of the
 * head, unless a requeue lowered the head since this consumer looked. */
static inline void cursor_publish_head(struct hbus_queue *q, uint64_t next, uint64_t lag)
{
	uint64_t cur, gen;

	head_read(q, &cur, &gen);
	if ((int64_t)(next - cur) < (int64_t)lag || gen != q->rewinds_seen)
		return;
	CRASHPOINT(CURSOR_SEEN);
	head_cas(q, cur, gen, next, gen);
}

/* Where a producer (consumer) handle starts looking for the next slot. */
static inline uint64_t tail_start(const struct hbus_queue *q)
{
	return pos_max(q->next_tail, atomic_load_explicit(&q->hdr->tail, RELAXED));
}

static inline uint64_t head_start(struct hbus_queue *q)
{
	uint64_t h, gen;

	head_read(q, &h, &gen);
	if (gen != q->rewinds_seen) { /* a requeue lowered the head */
		q->rewinds_seen = gen;
		return h;
	}
	return pos_max(q->next_head, h);
}

/* A producer claimed [t, t + k): its cursor, and now and then the shared
 * one (the only producer owns the shared one: a plain store).  A producer
 * that had to step over others' claims (walked) publishes at once: others
 * are producing, and the shared tail spares their walks. */
static inline void tail_claimed(struct hbus_queue *q, uint64_t t, unsigned k, int walked)
{
	q->next_tail = t + k;
	if (q_sp(q))
		atomic_store_explicit(&q->hdr->tail, t + k, RELAXED);
	else
		cursor_publish(&q->hdr->tail, t + k, walked ? 1 : CURSOR_PUBLISH_BUSY);
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

/* The only consumer's slot held through xhold becomes CLAIMED*(L, us), and
 * xhold is cleared: 0, or -ESTALE when someone else claimed it meanwhile
 * (queue_consume.c). */
int queue_xhold_pin(struct hbus_queue *q);

/* Return the slot the only consumer acked in auto-ack mode and kept
 * (queue_consume.c, "Returned at the next call").  Every entry point that
 * may touch its slots calls queue_xret_flush first. */
void queue_xret_return(struct hbus_queue *q);

/* Laid out as unlikely: inline it cost bursts of 32 3-4% (docs/BENCHMARKS.md,
 * "Session 6").  hbus_queue_consume, where a request/response loop finds
 * a slot to return at every call, tests it itself. */
static inline void queue_xret_flush(struct hbus_queue *q)
{
	if (__builtin_expect(q->xret != 0, 0))
		queue_xret_return(q);
}

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
