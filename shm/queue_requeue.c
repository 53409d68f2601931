/*
 * queue_requeue.c - a held message goes back to the queue flagged
 * HBUS_MSG_REDELIVERED: nack(requeue) by its consumer, and recovery of a
 * dead consumer's claims by hbusd.  Requeued messages go to the tail (a
 * decision: RabbitMQ classic queues restore the position; a ring cannot
 * without moving others).
 *
 * Two ways, each one journaled transition (docs/QUEUE.md, the table):
 *   in place   the ring is full and the held slot is the one blocking the
 *              tail: CLAIMED(L, h) -> READY(L + 1), one CAS, the flag
 *              written while the slot is still held;
 *   by a copy  a slot claimed at the tail, the message copied into it and
 *              published, then the held slot freed.  Journaled before the
 *              publish with the source slot named, so recovery that finds
 *              the copy published frees the source (roll forward) instead
 *              of requeueing it a second time.
 */
#include "queue_internal.h"

#include <errno.h>
#include <string.h>

void queue_copy_slot(const struct hbus_queue *q, struct hbus_slot *dst, const struct hbus_slot *src)
{
	/* Lengths come from shared memory: clamped to the slot. */
	uint32_t meta = src->meta_len, body = src->body_len;

	if (meta > q->slot_size)
		meta = q->slot_size;
	if (body > q->slot_size - meta)
		body = q->slot_size - meta;
	memcpy(dst->data, src->data, (size_t)meta + body);
	dst->body_len = body;
	dst->meta_len = (uint16_t)meta;
	dst->flags = src->flags | HBUS_MSG_REDELIVERED;
	dst->send_ts_ns = src->send_ts_ns;
	dst->enq_ts_ns = src->enq_ts_ns; /* a requeue does not restart the TTL */
}

/* The held slot blocks the full ring's tail t: publish it there, in place. */
static int requeue_in_place(struct hbus_queue *q, uint64_t pos, uint64_t held, uint64_t t)
{
	struct hbus_slot *s = slot_at(q, pos);
	uint64_t lap = word_lap(held), target;
	uint32_t h = word_holder(held);

	s->flags |= HBUS_MSG_REDELIVERED; /* held: no one else writes it */
	CRASHPOINT(REQIP_FLAGS);
	target = h == q->holder ? journal(q, JR_REQUEUE_IP, pos, QC_REQUEUED, 1)
				: journal_ex(q, JR_REQUEUE_IP | JR_FOREIGN, pos, QC_REQUEUED, 1, 0, h);
	CRASHPOINT(REQIP_JOURNAL);
	/* seq_cst: READY before the sleepers load (hbus_queue_wait). */
	if (!atomic_compare_exchange_strong_explicit(slot_state(q, pos), &held,
			slot_word(lap + 1, 0, SLOT_READY), SEQ_CST, RELAXED)) {
		journal_void(q);
		return -ESTALE;
	}
	CRASHPOINT(REQIP_CAS);
	cursor_help(&q->hdr->tail, t);
	CRASHPOINT(REQIP_CURSOR);
	count_done(q, QC_REQUEUED, target);
	CRASHPOINT(REQIP_COUNT);
	return 0;
}

/* A slot at the tail is ours (dst, WRITING): copy, publish, free the source. */
static void requeue_by_copy(struct hbus_queue *q, uint64_t pos, uint64_t held, uint64_t dst)
{
	struct hbus_slot *d = slot_at(q, dst);
	uint64_t target;

	CRASHPOINT(REQ_CLAIM);
	queue_copy_slot(q, d, slot_at(q, pos));
	CRASHPOINT(REQ_COPY);
	target = journal_ex(q, JR_REQUEUE, dst, QC_REQUEUED, 1,
			    (pos & q->mask) << 32 | word_lap(held), word_holder(held));
	CRASHPOINT(REQ_JOURNAL);
	atomic_store_explicit(slot_state(q, dst), slot_word(pos_lap(q, dst), 0, SLOT_READY), SEQ_CST);
	CRASHPOINT(REQ_PUBLISH);
	/* Only a forger makes this fail: then the message exists twice, both
	 * flagged, and the count says one requeue: nothing is lost. */
	atomic_compare_exchange_strong_explicit(slot_state(q, pos), &held,
		slot_word(word_lap(held) + 1, 0, SLOT_FREE), RELEASE, RELAXED);
	CRASHPOINT(REQ_FREE);
	count_done(q, QC_REQUEUED, target);
	CRASHPOINT(REQ_COUNT);
}

int queue_requeue(struct hbus_queue *q, uint64_t pos, uint64_t held)
{
	uint64_t t, blocked = 0;
	int rc;

	if (atomic_load_explicit(slot_state(q, pos), ACQUIRE) != held)
		return -ESTALE;
	if (q->read_only) {
		/* A protected queue's consumer cannot write the copy: hbusd
		 * does it for it (client_consume.c), on the slot we hold. */
		struct hbus_msg m;

		if (!q->requeue_fn)
			return -EPERM;
		queue_fill_msg(q, slot_at(q, pos), pos, &m);
		return q->requeue_fn(q->requeue_ctx, q, &m);
	}
	rc = queue_claim_tail(q, &t, &blocked);
	if (rc == -ENOBUFS) {
		/* Full: only in place, and only if our slot is the one in the
		 * way; else the message stays held and the caller retries. */
		if ((t & q->mask) != (pos & q->mask) || blocked != held)
			return -EAGAIN;
		rc = requeue_in_place(q, pos, held, t);
	} else if (rc == 0) {
		requeue_by_copy(q, pos, held, t);
	}
	if (rc == 0)
		wake_if_waiting(q);
	return rc;
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
