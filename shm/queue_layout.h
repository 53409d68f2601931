/*
 * queue_layout.h - the in-memory layout of a queue file, shared by every
 * process that maps it.  Fixed-width types and offsets only.
 *
 *   [ struct hbus_queue_hdr ][ records x nrec ][ slot 0 ][ slot 1 ] ... [ slot capacity-1 ]
 *
 * A protected queue (HBUS_QUEUE_F_PROTECTED) keeps message bytes in a
 * second file that consumers map read-only; the state words (one 64-byte
 * line each, no false sharing) stay in the first, which they map
 * read-write:
 *
 *   queue.<qid>:       [ hdr ][ records ][ state 0 ][ state 1 ] ...
 *   queue.<qid>.data:  [ struct hbus_queue_data_hdr ][ slot 0 ][ slot 1 ] ...
 *
 * The slot layout is the same; a protected slot's own state word is unused.
 *
 * Each slot starts with one 64-bit state word:
 *
 *   bits 63..32  lap     (position / capacity, modulo 2^32)
 *   bits 31..28  run     (WRITING only: run length - 1, see below)
 *   bits 27..4   holder  (record index + 1 of the handle holding the slot; 0: nobody)
 *   bits  3..0   state   (enum slot_state)
 *
 * A slot cycles FREE(lap) -> WRITING(lap, holder) -> READY(lap) ->
 * CLAIMED(lap, holder) -> FREE(lap + 1).  Because the lap is part of the
 * word, a producer or consumer that stalled for a whole lap can never act
 * on a slot of the wrong lap (no ABA), and because the holder is part of
 * it, a dead process's slots can be found and recovered by scanning.
 *
 * Records (layout 3).  Every handle on a queue owns one record: which
 * process (owner id) holds it, its counters, and an intent journal.  A slot
 * word names the record that holds it, so two handles of one process never
 * act on each other's slots.  Each counter is written only by its record's
 * handle (plain stores, no shared counter line), and every transition that
 * a counter records is journaled first (what slot, at what lap, and the
 * counter's value once done), so that a SIGKILL between the slot's CAS and
 * the counter's store leaves a state that recovery settles exactly: it
 * looks at the slot to see whether the CAS happened, and if so stores the
 * journaled value (docs/QUEUE.md, "Crash atomicity").
 *
 * A producer with a burst claims a run of up to SLOT_RUN_MAX consecutive
 * FREE slots with one CAS on the first one, whose WRITING word carries the
 * run's length; it writes the run and publishes each slot READY with a
 * plain (release) store, the first slot last.  Other producers that find a
 * run's first slot step the tail past the whole run, so no one else ever
 * claims a slot inside it, and consumers wait at the first slot.  Plain
 * stores are safe because no one takes a slot from a process that still
 * runs (docs/QUEUE.md, "Recovery").
 *
 * The head and tail cursors are lower bounds of the consumers' and
 * producers' frontiers that only move forward (by CAS); the slot states
 * are the truth.  A consumer polls the slot it wants, not a shared index,
 * so a hand-off costs one cache-line transfer.
 */
#ifndef HBUS_QUEUE_LAYOUT_H
#define HBUS_QUEUE_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "shm_file.h"

#define HBUS_QUEUE_LAYOUT_VERSION 5u /* 3: records (counters + journal), holder = record;
                                        4: the only consumer's held slot (xhold);
                                        5: claim and ack runs (JR_XCLAIMRUN, JR_ACKRUN,
                                           JR_RELRUN) */
#define HBUS_SLOT_HDR_LEN 32u

enum slot_state {
	SLOT_FREE         = 0,
	SLOT_WRITING      = 1,
	SLOT_READY        = 2,
	SLOT_CLAIMED      = 3, /* manual ack: held until ack/nack */
	SLOT_CLAIMED_AUTO = 4, /* auto ack: delivered, held only while read */
	SLOT_SKIP         = 5, /* abandoned write: consumers pass over it */
	SLOT_REMOVING     = 6, /* a READY message being removed unread (run bits: enum remove_why) */
};

/* Why a REMOVING slot is being removed; carried in the run bits, so that
 * recovery can finish a dead remover's work and count it where it belongs. */
enum remove_why { REMOVE_EXPIRED = 0, REMOVE_DROPPED = 1, REMOVE_PURGED = 2 };

#define SLOT_OWNER_SHIFT 4
#define SLOT_RUN_SHIFT   28
#define SLOT_RUN_MAX     16u
#define SLOT_LAP_SHIFT   32
#define SLOT_LAP_BITS    32
#define SLOT_LAP_MASK    ((UINT64_C(1) << SLOT_LAP_BITS) - 1)

static inline uint64_t slot_word(uint64_t lap, uint32_t holder, unsigned state)
{
	return ((lap & SLOT_LAP_MASK) << SLOT_LAP_SHIFT) |
	       ((uint64_t)(holder & 0xffffffu) << SLOT_OWNER_SHIFT) | state;
}
/* WRITING at the first slot of a run of n (1..SLOT_RUN_MAX) positions. */
static inline uint64_t slot_word_run(uint64_t lap, uint32_t holder, unsigned state, unsigned n)
{
	return slot_word(lap, holder, state) | (uint64_t)((n - 1) & 0xf) << SLOT_RUN_SHIFT;
}
static inline unsigned word_run(uint64_t w) { return (unsigned)(w >> SLOT_RUN_SHIFT & 0xf) + 1; }
static inline unsigned word_state(uint64_t w) { return (unsigned)(w & 0xf); }
static inline uint32_t word_holder(uint64_t w) { return (uint32_t)(w >> SLOT_OWNER_SHIFT) & 0xffffffu; }
static inline uint64_t word_lap(uint64_t w) { return w >> SLOT_LAP_SHIFT; }
/* The word without its run length: what a WRITING slot is, whatever its run. */
static inline uint64_t word_norun(uint64_t w) { return w & ~((uint64_t)0xf << SLOT_RUN_SHIFT); }

/* Signed distance a - b between two laps, modulo 2^32. */
static inline int64_t lap_diff(uint64_t a, uint64_t b)
{
	return (int64_t)((a - b) << (64 - SLOT_LAP_BITS)) >> (64 - SLOT_LAP_BITS);
}

struct hbus_slot {
	_Atomic uint64_t state;
	uint32_t body_len;
	uint16_t meta_len;
	uint16_t flags;
	uint64_t send_ts_ns;
	uint64_t enq_ts_ns;
	uint8_t data[]; /* meta_len bytes of meta, then body_len bytes of body */
};

/* ---------------------------------------------------------------- records */

/* Counters of a record, in the order of struct hbus_queue_stats. */
enum qc {
	QC_ENQUEUED, QC_DROPPED_OVERFLOW, QC_DROPPED_OVERSIZE, QC_DROPPED_HEAD, QC_ABORTED,
	QC_DELIVERED, QC_ACKED, QC_RELEASED, QC_REQUEUED, QC_REJECTED, QC_EXPIRED,
	QC_DEAD_LETTERED, QC_PURGED, QC_CORRUPT,
	QC_N
};

/*
 * The journal of a record: the one counted transition its handle is making.
 * jr_op = kind:8 | slot index:24 | lap:32 names the slot and the lap the
 * transition acts on; jr_target is the counter's value once it is done.
 * Written in that order before the CAS, jr_op first: until jr_target is
 * written the op cannot have happened, and a stale target from the op
 * before equals the counter, so settling it changes nothing.  jr_aux2
 * carries the holder of a slot recovery takes from a dead record (with
 * JR_FOREIGN in the kind); jr_aux is for transitions that name a second
 * value.
 */
enum jr_kind {
	JR_NONE = 0,
	JR_CLAIM,      /* READY(L) -> CLAIMED*(L, me): delivered; done when it is ours */
	JR_ACK,        /* CLAIMED(L, me) -> FREE(L+1): acked; done when it is not */
	JR_RELEASE,    /* CLAIMED_AUTO(L, h) -> FREE(L+1): released */
	JR_COMMIT,     /* WRITING(L, me, run) -> READY(L): enqueued += run */
	JR_ABORT,      /* WRITING(L, h) -> SKIP(L): aborted */
	JR_SKIP_INNER, /* a dead run's other slot FREE/READY(L, 0) -> SKIP(L): aborted */
	JR_REJECT,     /* CLAIMED(L, me) -> FREE(L+1): rejected */
	JR_EXPIRE,     /* READY(L) -> FREE(L+1): expired; done when the lap moved on */
	JR_DROP,       /* READY(L) -> FREE(L+1): dropped_head */
	JR_PURGE,      /* READY(L) -> FREE(L+1): purged */
	JR_REQUEUE,    /* CLAIMED*(L, h) -> READY(L), then the head back to it: requeued */
	JR_XCOMMIT,    /* the only producer's run of jr_aux slots FREE(L) -> READY(L) in order:
			  enqueued = jr_target + the published prefix */
	JR_SCOMMIT,    /* the only producer's one slot FREE(L) -> READY(L): enqueued */
	JR_XCLAIM,     /* the only consumer takes READY(L) by naming it in xhold (the slot stays
			  READY): delivered; done when xhold names it */
	JR_XCLAIMRUN,  /* the only consumer's run of jr_aux slots READY(L) -> CLAIMED*(L, me) in
			  order: delivered = jr_target + the claimed prefix */
	JR_ACKRUN,     /* a run of jr_aux slots CLAIMED(L, me) -> FREE(L+1) in order: acked =
			  jr_target + the freed prefix */
	JR_RELRUN,     /* the same from CLAIMED_AUTO(L, me): released */
	JR_KINDS,
	JR_FOREIGN = 0x80, /* the pre-state's holder is jr_aux2, not the record's own */
};

#define HBUS_QUEUE_RECORDS 512u /* handles on one queue at once */

struct hbus_qrec {
	/* Line 0: identity and journal, written by the owner only (and by
	 * recovery once the owner is dead). */
	_Atomic uint32_t owner;  /* owner id of the process; 0 = free */
	uint32_t reserved0;
	_Atomic uint64_t jr_op;
	_Atomic uint64_t jr_target;
	_Atomic uint64_t jr_aux;
	_Atomic uint64_t jr_aux2;
	/* The only consumer's held slot: a READY(L) message it took without
	 * writing the slot (xhold_word: index, lap, the state it is held in),
	 * 0 for none.  Recovery turns it into the claim it stands for. */
	_Atomic uint64_t xhold;
	uint64_t reserved1[2];
	/* Lines 1-2: this handle's counters (enum qc), cumulative over every
	 * handle that held the record: queue totals are the sums. */
	_Atomic uint64_t c[16];
};
_Static_assert(sizeof(struct hbus_qrec) == 192, "a record is three cache lines");
_Static_assert(QC_N <= 16, "counters fit the record");

struct hbus_queue_hdr {
	struct hbus_file_hdr file;
	/* Read-only after create. */
	uint32_t capacity;
	uint32_t slot_size;
	uint32_t slot_stride;
	uint32_t overflow;
	uint32_t ttl_ms;
	int32_t numa_node;
	uint32_t flags;        /* HBUS_QUEUE_F_* */
	uint32_t nrec;         /* records */
	uint64_t rec_offset;
	uint64_t slots_offset; /* in this file, or in the data file (protected) */
	uint64_t states_offset; /* the state words: slots_offset unless protected */
	uint32_t state_stride;  /* slot_stride unless protected (64) */
	uint32_t reserved0;
	uint64_t created_ns;   /* also in the data file: the pair belongs together */
	char name[256];

	/* Producers' cursor: next position to claim. */
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint64_t tail;
	/* Consumers' cursor: next position to claim; and beside it, changed
	 * with it in one 16-byte CAS, the number of requeues that lowered it
	 * (docs/QUEUE.md, "Cursors"). */
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint64_t head;
	_Atomic uint64_t head_gen;
	/* Blocking consumers sleep on futex_seq.  A sleeper sets its record's
	 * bit in sleepers (one bit per record, so a sleeper killed in its
	 * sleep is cleared by recovery, where a count could not say whose it
	 * was); producers read the line and wake only when a bit is set. */
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint32_t futex_seq;
	alignas(HBUS_CACHE_LINE) _Atomic uint64_t sleepers[HBUS_QUEUE_RECORDS / 64];
	/* One past the highest record ever taken (records are taken lowest
	 * first): sums read only that far. */
	alignas(HBUS_CACHE_LINE) _Atomic uint32_t rec_hwm;
};

/* The header of a protected queue's data file. */
struct hbus_queue_data_hdr {
	struct hbus_file_hdr file;
	uint32_t capacity;
	uint32_t slot_stride;
	uint64_t slots_offset;
	uint64_t created_ns;   /* equal to the state file's */
};

#endif
