/*
 * queue_recover.c - give back the slots of a process that died.
 *
 * hbusd calls this once a client's process has exited (its session socket
 * closing says so, confirmed by its pidfd).  A scan of every slot finds
 * the dead owner's:
 *   WRITING       -> SKIP      a half-written message was never accepted;
 *                              consumers pass over it, nobody stalls
 *   CLAIMED       -> republished with HBUS_MSG_REDELIVERED (manual ack:
 *                              not acked means not done)
 *   CLAIMED_AUTO  -> FREE      (auto ack: claim was delivery)
 * A republish needs a free slot; when the ring is full of READY messages it
 * may not get one yet, so the caller retries while pending != 0.
 *
 * Only the consumer side (the CLAIMED states) may be taken from a process
 * that still runs (hbus_queue_recover_claims: a session closed, a consumer
 * rejoined under a new id): its acks are CASes that fail on a slot taken
 * back.  Its WRITING slots are published by plain stores, so they are
 * given back only once it is gone.
 */
#include "queue_internal.h"

#include <errno.h>
#include <string.h>

/* The other slots of a dead producer's run whose first slot is still
 * WRITING.  Consumers wait at the first slot (it is published last), so
 * none of the run was seen: skip all of it, also the slots it had already
 * published, and a burst's messages are delivered whole runs at a time.
 * Nobody else can claim or consume these slots meanwhile. */
static void skip_run(struct hbus_queue *q, uint64_t pos, unsigned run, struct hbus_recovery *r)
{
	for (unsigned j = 1; j < run; j++) {
		struct hbus_slot *s = slot_at(q, pos + j);
		uint64_t lap = pos_lap(q, pos + j);
		uint64_t w = atomic_load_explicit(&s->state, ACQUIRE);

		if ((w != slot_word(lap, 0, SLOT_FREE) && w != slot_word(lap, 0, SLOT_READY)) ||
		    !atomic_compare_exchange_strong_explicit(&s->state, &w,
				slot_word(lap, 0, SLOT_SKIP), RELEASE, RELAXED))
			continue;
		counter_add(&q->hdr->prod.aborted, 1);
		r->skipped++;
	}
}

static int recover(hbus_queue *q, uint32_t owner, int writers, struct hbus_recovery *out)
{
	struct hbus_recovery r;
	uint64_t i, cap;
	int rc = 0;

	if (!q || owner == 0 || owner > HBUS_OWNER_MAX || owner == q->owner)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	cap = q->mask + 1;
	for (i = 0; i < cap; i++) {
		struct hbus_slot *s = slot_at(q, i);
		uint64_t w = atomic_load_explicit(&s->state, ACQUIRE);
		uint64_t lap = word_lap(w);
		/* A position with this slot index and this lap (mod 2^32):
		 * all the slot helpers need. */
		uint64_t pos = (lap << q->shift) | i;

		if (word_owner(w) != owner)
			continue;
		switch (word_state(w)) {
		case SLOT_WRITING:
			if (!writers)
				break;
			if (word_run(w) > 1)
				skip_run(q, pos, word_run(w), &r);
			if (atomic_compare_exchange_strong_explicit(&s->state, &w,
					slot_word(lap, 0, SLOT_SKIP), RELEASE, RELAXED)) {
				counter_add(&q->hdr->prod.aborted, 1);
				r.skipped++;
			}
			break;
		case SLOT_CLAIMED:
			rc = queue_republish(q, pos, w);
			if (rc == -EUCLEAN)
				goto out;
			if (rc == 0)
				r.requeued++;
			else if (atomic_load_explicit(&s->state, ACQUIRE) == w)
				r.pending++;
			break;
		case SLOT_CLAIMED_AUTO:
			if (atomic_compare_exchange_strong_explicit(&s->state, &w,
					slot_word(lap + 1, 0, SLOT_FREE), RELEASE, RELAXED)) {
				counter_add(&q->hdr->cons.released, 1);
				r.released++;
			}
			break;
		default:
			break;
		}
	}
out:
	/* Skips unblock consumers parked at the head: wake them. */
	queue_wake(q);
	if (out)
		*out = r;
	return rc == -EUCLEAN ? rc : r.pending ? -EAGAIN : 0;
}

int hbus_queue_recover_owner(hbus_queue *q, uint32_t dead, struct hbus_recovery *out)
{
	return recover(q, dead, 1, out);
}

int hbus_queue_recover_claims(hbus_queue *q, uint32_t owner, struct hbus_recovery *out)
{
	return recover(q, owner, 0, out);
}
