/*
 * queue_recover.c - give back the slots of a process that died.
 *
 * hbusd calls this when a client's session socket closes (the kernel closes
 * it when the process dies, however it dies).  A scan of every slot finds
 * the dead owner's:
 *   WRITING       -> SKIP      a half-written message was never accepted;
 *                              consumers pass over it, nobody stalls
 *   CLAIMED       -> republished with HBUS_MSG_REDELIVERED (manual ack:
 *                              not acked means not done)
 *   CLAIMED_AUTO  -> FREE      (auto ack: claim was delivery)
 * A republish needs a free slot; when the ring is full of READY messages it
 * may not get one yet, so the caller retries while pending != 0.
 */
#include "queue_internal.h"

#include <errno.h>
#include <string.h>

int hbus_queue_recover_owner(hbus_queue *q, uint32_t dead, struct hbus_recovery *out)
{
	struct hbus_recovery r;
	uint64_t i, cap;

	if (!q || dead == 0 || dead > HBUS_OWNER_MAX || dead == q->owner)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	cap = q->mask + 1;
	for (i = 0; i < cap; i++) {
		struct hbus_slot *s = slot_at(q, i);
		uint64_t w = atomic_load_explicit(&s->state, ACQUIRE);
		uint64_t lap = word_lap(w);
		/* A position with this slot index and this lap (mod 2^36):
		 * all the slot helpers need. */
		uint64_t pos = (lap << q->shift) | i;

		if (word_owner(w) != dead)
			continue;
		switch (word_state(w)) {
		case SLOT_WRITING:
			if (atomic_compare_exchange_strong_explicit(&s->state, &w,
					slot_word(lap, 0, SLOT_SKIP), RELEASE, RELAXED)) {
				counter_add(&q->hdr->prod.aborted, 1);
				r.skipped++;
			}
			break;
		case SLOT_CLAIMED:
			if (queue_republish(q, pos, w) == 0)
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
	/* Skips unblock consumers parked at the head: wake them. */
	queue_wake(q);
	if (out)
		*out = r;
	return r.pending ? -EAGAIN : 0;
}
