/*
 * queue_layout.h - the in-memory layout of a queue file, shared by every
 * process that maps it.  Fixed-width types and offsets only.
 *
 *   [ struct hbus_queue_hdr ][ slot 0 ][ slot 1 ] ... [ slot capacity-1 ]
 *
 * Each slot starts with one 64-bit state word:
 *
 *   bits 63..32  lap    (position / capacity, modulo 2^32)
 *   bits 31..28  run    (WRITING only: run length - 1, see below)
 *   bits 27..4   owner  (24-bit id of the process holding the slot)
 *   bits  3..0   state  (enum slot_state)
 *
 * A slot cycles FREE(lap) -> WRITING(lap, producer) -> READY(lap) ->
 * CLAIMED(lap, consumer) -> FREE(lap + 1).  Because the lap is part of the
 * word, a producer or consumer that stalled for a whole lap can never act
 * on a slot of the wrong lap (no ABA), and because the owner is part of it,
 * a dead process's slots can be found and recovered by scanning.
 *
 * A producer with a burst claims a run of up to SLOT_RUN_MAX consecutive
 * FREE slots with one CAS on the first one, whose WRITING word carries the
 * run's length; it writes the run and publishes each slot READY with a
 * plain (release) store, the first slot last.  Other producers that find a
 * run's first slot step the tail past the whole run, so no one else ever
 * claims a slot inside it, and consumers wait at the first slot.  Plain
 * stores are safe because a process's WRITING slots are only recovered
 * once the process is gone (docs/QUEUE.md, "Recovery").
 *
 * The head and tail cursors are hints that only ever move forward past
 * slots already claimed at their lap; the slot states are the truth.  A
 * consumer polls the slot it wants, not a shared index, so a hand-off costs
 * one cache-line transfer.
 */
#ifndef HBUS_QUEUE_LAYOUT_H
#define HBUS_QUEUE_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "shm_file.h"

#define HBUS_QUEUE_LAYOUT_VERSION 2u /* 2: 32-bit lap + run field */
#define HBUS_SLOT_HDR_LEN 32u

enum slot_state {
	SLOT_FREE         = 0,
	SLOT_WRITING      = 1,
	SLOT_READY        = 2,
	SLOT_CLAIMED      = 3, /* manual ack: held until ack/nack */
	SLOT_CLAIMED_AUTO = 4, /* auto ack: delivered, held only while read */
	SLOT_SKIP         = 5, /* abandoned write: consumers pass over it */
};

#define SLOT_OWNER_SHIFT 4
#define SLOT_RUN_SHIFT   28
#define SLOT_RUN_MAX     16u
#define SLOT_LAP_SHIFT   32
#define SLOT_LAP_BITS    32
#define SLOT_LAP_MASK    ((UINT64_C(1) << SLOT_LAP_BITS) - 1)

static inline uint64_t slot_word(uint64_t lap, uint32_t owner, unsigned state)
{
	return ((lap & SLOT_LAP_MASK) << SLOT_LAP_SHIFT) |
	       ((uint64_t)(owner & 0xffffffu) << SLOT_OWNER_SHIFT) | state;
}
/* WRITING at the first slot of a run of n (1..SLOT_RUN_MAX) positions. */
static inline uint64_t slot_word_run(uint64_t lap, uint32_t owner, unsigned state, unsigned n)
{
	return slot_word(lap, owner, state) | (uint64_t)((n - 1) & 0xf) << SLOT_RUN_SHIFT;
}
static inline unsigned word_run(uint64_t w) { return (unsigned)(w >> SLOT_RUN_SHIFT & 0xf) + 1; }
static inline unsigned word_state(uint64_t w) { return (unsigned)(w & 0xf); }
static inline uint32_t word_owner(uint64_t w) { return (uint32_t)(w >> SLOT_OWNER_SHIFT) & 0xffffffu; }
static inline uint64_t word_lap(uint64_t w) { return w >> SLOT_LAP_SHIFT; }

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
	uint64_t slots_offset;
	uint64_t created_ns;
	char name[256];

	/* Producers' cursor: next position to claim. */
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint64_t tail;
	/* Consumers' cursor: next position to claim. */
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint64_t head;
	/* Blocking consumers sleep on futex_seq; producers look at waiters only. */
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint32_t futex_seq;
	_Atomic uint32_t waiters;

	/* Counters, grouped by the side that writes them. */
	alignas(HBUS_CURSOR_ALIGN) struct {
		_Atomic uint64_t enqueued, dropped_overflow, dropped_oversize,
			dropped_head, aborted;
	} prod;
	alignas(HBUS_CURSOR_ALIGN) struct {
		_Atomic uint64_t delivered, acked, released, requeued, rejected,
			expired, dead_lettered;
	} cons;
};

#endif
