/*
 * crash_ledger.h - what a process did to a queue, written where its death
 * cannot lose it, and the checks of docs/QUEUE.md that must hold once the
 * process was killed anywhere and recovery ran (tests/test_queue_crash.c).
 *
 * The ledger lives in a MAP_SHARED page made before fork: the victim
 * appends an event after each call returns (the entry first, then the
 * count), so the parent reads every event of a call that completed, and
 * knows which call was in flight (its "begin" event has no "end").
 *
 * Message bodies carry their id, their length and a checksum over all of
 * it (producer, id, length and every byte), so a torn or misplaced message
 * is caught wherever it surfaces.
 */
#ifndef HBUS_CRASH_LEDGER_H
#define HBUS_CRASH_LEDGER_H

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "fnv1a.h"
#include "hbus.h"

enum ev_kind {
	EV_ENQ_BEGIN = 1, /* id = first id, n = how many */
	EV_ENQ_END,       /* rc = how many were accepted (or -errno) */
	EV_DELIVER,       /* id, flags: a message handed to the victim */
	EV_ACK,           /* id, rc: ack / release returned */
	EV_REQUEUE,       /* id, rc: nack(requeue) returned */
	EV_REJECT,        /* id, rc: nack(reject) returned */
	EV_BEGIN_OTHER,   /* a call whose messages the ledger does not follow began */
	EV_END_OTHER,
};

struct ev {
	uint32_t kind, id;
	int32_t rc;
	uint16_t flags, n;
};

#define LEDGER_MAX 65536u

struct ledger {
	_Atomic uint32_t count;
	struct ev ev[LEDGER_MAX];
};

static inline struct ledger *ledger_new(void)
{
	struct ledger *l = mmap(NULL, sizeof(*l), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(l, MAP_FAILED);
	return l;
}

static inline void ledger_free(struct ledger *l)
{
	munmap(l, sizeof(*l));
}

static inline void ledger_add(struct ledger *l, uint32_t kind, uint32_t id, int32_t rc,
			      uint16_t flags, uint16_t n)
{
	uint32_t i = atomic_load(&l->count);

	if (i >= LEDGER_MAX)
		return;
	l->ev[i] = (struct ev){ .kind = kind, .id = id, .rc = rc, .flags = flags, .n = n };
	atomic_store(&l->count, i + 1);
}

/* --------------------------------------------------------- message bodies */

#define MSG_HDR_LEN 16u

/* Body of message id from producer: len bytes (>= MSG_HDR_LEN). */
static inline void msg_make(uint8_t *b, uint32_t producer, uint32_t id, uint32_t len)
{
	for (uint32_t i = MSG_HDR_LEN; i < len; i++)
		b[i] = (uint8_t)(id * 131 + i * 7 + producer);
	memcpy(b, &producer, 4);
	memcpy(b + 4, &id, 4);
	memcpy(b + 8, &len, 4);
	uint32_t sum = fnv1a32(b, 12) ^ fnv1a32(b + MSG_HDR_LEN, len - MSG_HDR_LEN);
	memcpy(b + 12, &sum, 4);
}

/* 1 and *id when the body is whole and its own. */
static inline int msg_check(const uint8_t *b, uint32_t body_len, uint32_t *producer, uint32_t *id)
{
	uint32_t len, sum;

	if (body_len < MSG_HDR_LEN)
		return 0;
	memcpy(producer, b, 4);
	memcpy(id, b + 4, 4);
	memcpy(&len, b + 8, 4);
	memcpy(&sum, b + 12, 4);
	return len == body_len &&
	       sum == (fnv1a32(b, 12) ^ fnv1a32(b + MSG_HDR_LEN, len - MSG_HDR_LEN));
}

#endif
