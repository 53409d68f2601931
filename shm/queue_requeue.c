/*
 * queue_requeue.c - a held message goes back to the queue flagged
 * HBUS_MSG_REDELIVERED: nack(requeue) by its consumer, and recovery of a
 * dead consumer's claims by hbusd.
 *
 * Back where it was: CLAIMED(L, h) -> READY(L) in one CAS, the flag
 * written while the slot is still held, then the head moved back to it
 * (a CAS that only lowers it).  The message keeps its position, as in
 * RabbitMQ, and a requeue needs no free slot, so it never waits for room
 * and never claims at the tail (which an exclusive producer owns alone).
 *
 * Moving the head back is safe where a stale helper's store was not: the
 * head is a lower bound of the consumers' frontier, and walkers from the
 * requeued position pass every position after it that is taken or done
 * (at most a lap: a held slot stops producers one lap on).  Until the head
 * is moved back the message is READY but behind it, so the move is the
 * journaled transition's second half: recovery that finds the CAS done
 * moves the head back itself (roll forward).
 */
#include "queue_internal.h"

#include <errno.h>
#include <string.h>

/* Lower the head to pos unless it is there or lower already, and bump its
 * generation, in one CAS: every consumer walks from it again (their own
 * cursors are ahead), and none can publish past it unseen. */
void queue_rewind_head(struct hbus_queue *q, uint64_t pos)
{
	uint64_t h, gen;

	do
		head_read(q, &h, &gen);
	while (!head_cas(q, h, gen, (int64_t)(h - pos) > 0 ? pos : h, gen + 1));
}

int queue_requeue(struct hbus_queue *q, uint64_t pos, uint64_t held)
{
	struct hbus_slot *s = slot_at(q, pos);
	uint32_t h = word_holder(held);
	uint64_t target;

	if (atomic_load_explicit(slot_state(q, pos), ACQUIRE) != held)
		return -ESTALE;
	if (q->read_only) {
		/* A protected queue's consumer cannot write the flag: hbusd
		 * does it for it (client_consume.c), on the slot we hold. */
		struct hbus_msg m;

		if (!q->requeue_fn)
			return -EPERM;
		queue_fill_msg(q, s, pos, &m);
		return q->requeue_fn(q->requeue_ctx, q, &m);
	}
	s->flags |= HBUS_MSG_REDELIVERED; /* held: no one else writes it */
	CRASHPOINT(REQ_FLAGS);
	target = h == q->holder ? journal(q, JR_REQUEUE, pos, QC_REQUEUED, 1)
				: journal_ex(q, JR_REQUEUE | JR_FOREIGN, pos, QC_REQUEUED, 1, 0, h);
	CRASHPOINT(REQ_JOURNAL);
	/* seq_cst: READY before the sleepers load (hbus_queue_wait). */
	if (!atomic_compare_exchange_strong_explicit(slot_state(q, pos), &held,
			slot_word(word_lap(held), 0, SLOT_READY), SEQ_CST, RELAXED)) {
		journal_void(q);
		return -ESTALE;
	}
	CRASHPOINT(REQ_CAS);
	queue_rewind_head(q, pos);
	CRASHPOINT(REQ_REWIND);
	count_done(q, QC_REQUEUED, target);
	CRASHPOINT(REQ_COUNT);
	wake_if_waiting(q);
	return 0;
}

int hbus_queue_requeue_for(hbus_queue *q, uint32_t owner, uint64_t pos)
{
	uint64_t w;
	uint32_t h;
	unsigned st;

	if (!q || owner == 0 || owner > HBUS_OWNER_MAX)
		return -EINVAL;
	if (q->read_only)
		return -EPERM;
	w = atomic_load_explicit(slot_state(q, pos), ACQUIRE);
	h = word_holder(w);
	st = word_state(w);
	/* Held, at this position's lap, by a record of that owner: the asker
	 * (whose thread waits in its nack while we work on its slot). */
	if ((st != SLOT_CLAIMED && st != SLOT_CLAIMED_AUTO) || word_lap(w) != pos_lap(q, pos) ||
	    h == 0 || h > q->nrec || atomic_load_explicit(&q->recs[h - 1].owner, ACQUIRE) != owner)
		return -ESTALE;
	return queue_requeue(q, pos, w);
}
