/*
 * queue_recover.c - give back what a process held once it is gone.
 *
 * hbusd calls this when a client's process has exited (its session socket
 * closing says so, confirmed by its pidfd), and at start for processes
 * that died while no hbusd ran (a previous hbusd among them).  Nothing is
 * ever taken from a process that still runs: its slots are its own until
 * it exits, so every owner's transition is a plain sequence of its own,
 * and recovery reasons about a frozen state (docs/QUEUE.md, "Recovery").
 *
 * For each of the dead owner's records:
 *   1. settle its journal: if its last counted transition happened, store
 *      the counter it journaled (and finish a requeue's second half);
 *   2. scan the ring for slots the record holds:
 *        WRITING       -> SKIP      a half-written message was never accepted;
 *                                   a run's other slots first, then its first
 *        CLAIMED       -> requeued  HBUS_MSG_REDELIVERED (manual ack: not
 *                                   acked means not done)
 *        CLAIMED_AUTO  -> FREE      released (auto ack: the claim was delivery)
 *        REMOVING      -> FREE      the removal finished and counted
 *   3. clear its sleeper bit and free the record for the next handle.
 * Each step is itself journaled in the recovering handle's record, so an
 * hbusd killed mid-recovery leaves a state the next one settles.  A requeue
 * puts the message back at its own position, so recovery never waits for
 * room and never walks the ring: it is one pass, bounded by the capacity.
 */
#include "queue_internal.h"

#include <errno.h>
#include <string.h>

/* Did the journaled transition of r happen?  Decided on the slot alone: a
 * pre-state ours until the transition (only we, or recovery, move it), or
 * for a claim the post-state, which names us. */
static int jr_done(const struct hbus_queue *q, const struct hbus_qrec *r, uint64_t op,
		   unsigned kind, uint32_t h)
{
	uint64_t w = atomic_load_explicit(slot_state(q, jr_idx(op)), ACQUIRE);
	uint64_t x = atomic_load_explicit(&r->xhold, ACQUIRE);
	unsigned st = word_state(w);
	int same = word_lap(w) == jr_lap(op) && word_holder(w) == h;
	/* The op's slot is the one our xhold names, and it is still READY:
	 * held without a claim store, so nothing has happened to it yet. */
	int xheld = x && xhold_idx(x) == jr_idx(op) && xhold_lap(x) == jr_lap(op) &&
		    w == slot_word(jr_lap(op), 0, SLOT_READY);

	switch (kind) {
	case JR_CLAIM:
		return same && (st == SLOT_CLAIMED || st == SLOT_CLAIMED_AUTO);
	case JR_XCLAIM: /* done once xhold names it (cleared only after a FREE store) */
		return x && xhold_idx(x) == jr_idx(op) && xhold_lap(x) == jr_lap(op);
	case JR_ACK:
	case JR_REJECT:
		return !(same && st == SLOT_CLAIMED) && !xheld;
	case JR_RELEASE:
		return !(same && st == SLOT_CLAIMED_AUTO) && !xheld;
	case JR_REQUEUE:
		return !(same && (st == SLOT_CLAIMED || st == SLOT_CLAIMED_AUTO));
	case JR_COMMIT:
	case JR_ABORT:
		return !(same && st == SLOT_WRITING);
	case JR_SKIP_INNER:
		return !(word_lap(w) == jr_lap(op) && word_holder(w) == 0 &&
			 (st == SLOT_FREE || st == SLOT_READY));
	case JR_EXPIRE:
	case JR_DROP:
	case JR_PURGE:
		return !(same && st == SLOT_REMOVING);
	case JR_SCOMMIT: /* the slot was FREE at this lap until it was published */
		return !(word_lap(w) == jr_lap(op) && st == SLOT_FREE);
	default:
		return 0;
	}
}

static const unsigned jr_counter[JR_KINDS] = {
	[JR_CLAIM] = QC_DELIVERED, [JR_ACK] = QC_ACKED, [JR_RELEASE] = QC_RELEASED,
	[JR_COMMIT] = QC_ENQUEUED, [JR_ABORT] = QC_ABORTED, [JR_SKIP_INNER] = QC_ABORTED,
	[JR_REJECT] = QC_REJECTED, [JR_EXPIRE] = QC_EXPIRED, [JR_DROP] = QC_DROPPED_HEAD,
	[JR_PURGE] = QC_PURGED, [JR_REQUEUE] = QC_REQUEUED, [JR_SCOMMIT] = QC_ENQUEUED,
	[JR_XCLAIM] = QC_DELIVERED,
};

/* A run journaled by its first slot and length (jr_aux), its slots moved
 * in order out of state pre (holder 0) at their lap: the counter is its
 * value before the run (jr_target) plus the prefix no longer in pre.  ref,
 * a cursor near the run, places the first slot's position. */
static void settle_run(struct hbus_queue *q, struct hbus_qrec *r, uint64_t op,
		       const _Atomic uint64_t *ref, uint32_t holder, unsigned pre, unsigned ctr)
{
	uint64_t pos = pos_near(q, atomic_load_explicit(ref, RELAXED), jr_idx(op), jr_lap(op));
	uint64_t k = atomic_load_explicit(&r->jr_aux, RELAXED), j;

	for (j = 0; j < k && j <= q->mask; j++)
		if (atomic_load_explicit(slot_state(q, pos + j), ACQUIRE) ==
		    slot_word(pos_lap(q, pos + j), holder, pre))
			break;
	atomic_store_explicit(&r->c[ctr], atomic_load_explicit(&r->jr_target, RELAXED) + j,
			      RELAXED);
}

void queue_settle(struct hbus_queue *q, struct hbus_qrec *r)
{
	uint64_t op = atomic_load_explicit(&r->jr_op, ACQUIRE);
	unsigned kind = jr_kind(op) & ~(unsigned)JR_FOREIGN;
	uint32_t own = (uint32_t)(r - q->recs) + 1, h;

	if (kind == JR_NONE)
		return;
	if (kind >= JR_KINDS || jr_idx(op) > q->mask) {
		count_plain(q, QC_CORRUPT, 1); /* not a journal any handle writes */
	} else if (kind == JR_XCOMMIT) {
		/* The only producer's run, published in order: its published
		 * prefix (slots no longer FREE at their lap; consumed ones have
		 * moved on) is what was enqueued. */
		settle_run(q, r, op, &q->hdr->tail, 0, SLOT_FREE, QC_ENQUEUED);
	} else if (kind == JR_XCLAIMRUN) {
		/* The only consumer's run, claimed in order: its claimed prefix
		 * (slots no longer READY at their lap) is what was delivered. */
		settle_run(q, r, op, &q->hdr->head, 0, SLOT_READY, QC_DELIVERED);
	} else if (kind == JR_ACKRUN || kind == JR_RELRUN) {
		/* Consecutive claims freed in order: the prefix no longer ours
		 * at its lap is what was acked (released). */
		settle_run(q, r, op, &q->hdr->head, own,
			   kind == JR_ACKRUN ? SLOT_CLAIMED : SLOT_CLAIMED_AUTO,
			   kind == JR_ACKRUN ? QC_ACKED : QC_RELEASED);
	} else {
		h = jr_kind(op) & JR_FOREIGN ? (uint32_t)atomic_load_explicit(&r->jr_aux2, RELAXED)
					     : own;
		if (jr_done(q, r, op, kind, h)) {
			atomic_store_explicit(&r->c[jr_counter[kind]],
					      atomic_load_explicit(&r->jr_target, RELAXED), RELAXED);
			if (kind == JR_REQUEUE) /* back at its position: the head too */
				queue_rewind_head(q, pos_near(q, atomic_load_explicit(&q->hdr->head,
							RELAXED), jr_idx(op), jr_lap(op)));
		}
	}
	atomic_store_explicit(&r->jr_op, jr_word(JR_NONE, 0, 0), RELEASE);
	CRASHPOINT(REC_SETTLE);
}

/*
 * A dead only consumer's xhold (a READY message it held without a claim
 * store): make it the claim it stands for, CLAIMED*(L, dead), so the scan
 * below requeues or releases it like any claim of the dead; then clear it.
 * The word is input: it acts only on a slot READY at the lap it names (a
 * hostile one can do no more than its writer could do to any slot word).
 * Killed in between: the slot is no longer READY, so the next recovery
 * only clears the word.
 */
static void recover_xhold(struct hbus_queue *q, struct hbus_qrec *r, uint32_t holder)
{
	uint64_t x = atomic_load_explicit(&r->xhold, ACQUIRE);
	unsigned st = xhold_state(x);

	if (!x)
		return;
	if (xhold_idx(x) <= q->mask && (st == SLOT_CLAIMED || st == SLOT_CLAIMED_AUTO)) {
		uint64_t w = slot_word(xhold_lap(x), 0, SLOT_READY);

		slot_cas(q, xhold_idx(x), &w, slot_word(xhold_lap(x), holder, st), ACQUIRE);
		CRASHPOINT(REC_XHOLD_PIN);
	}
	atomic_store_explicit(&r->xhold, 0, RELEASE);
	CRASHPOINT(REC_XHOLD_CLEAR);
}

/* A dead producer's unpublished write at pos (word w): the run's other
 * slots first, then its first, so consumers (who wait at the first) never
 * see a slot of a run that is not whole.  Nobody else touches these slots
 * meanwhile.  Each slot is counted in aborted. */
static void skip_write(struct hbus_queue *q, uint64_t pos, uint64_t w, struct hbus_recovery *r)
{
	uint64_t lap = word_lap(w);

	for (unsigned j = 1; j < word_run(w); j++) {
		uint64_t p = pos + j, lj = pos_lap(q, p);
		uint64_t wj = atomic_load_explicit(slot_state(q, p), ACQUIRE);

		if ((wj == slot_word(lj, 0, SLOT_FREE) || wj == slot_word(lj, 0, SLOT_READY)) &&
		    transition(q, p, wj, slot_word(lj, 0, SLOT_SKIP), JR_SKIP_INNER, QC_ABORTED,
			       CRASHPOINT_ID(REC_SKIP_JOURNAL)) == 0)
			r->skipped++;
	}
	if (transition(q, pos, w, slot_word(lap, 0, SLOT_SKIP), JR_ABORT, QC_ABORTED,
		       CRASHPOINT_ID(REC_SKIP_JOURNAL)) == 0)
		r->skipped++;
}

static const unsigned removal_kind[] = {
	[REMOVE_EXPIRED] = JR_EXPIRE, [REMOVE_DROPPED] = JR_DROP, [REMOVE_PURGED] = JR_PURGE,
};
static const unsigned removal_ctr[] = {
	[REMOVE_EXPIRED] = QC_EXPIRED, [REMOVE_DROPPED] = QC_DROPPED_HEAD,
	[REMOVE_PURGED] = QC_PURGED,
};

/* Recover the slot at index i if one of the dead records (bitmap dead,
 * by holder) holds it. */
static void recover_slot(struct hbus_queue *q, uint64_t i, const uint64_t *dead,
			struct hbus_recovery *r)
{
	uint64_t w = atomic_load_explicit(slot_state(q, i), ACQUIRE);
	uint32_t h = word_holder(w);
	uint64_t lap = word_lap(w);
	uint64_t pos = pos_near(q, atomic_load_explicit(&q->hdr->head, RELAXED), i, lap);
	unsigned why;

	if (!h || h > q->nrec || !(dead[(h - 1) / 64] >> ((h - 1) % 64) & 1))
		return;
	switch (word_state(w)) {
	case SLOT_WRITING:
		skip_write(q, pos, w, r);
		break;
	case SLOT_CLAIMED:
		if (queue_requeue(q, pos, w) == 0)
			r->requeued++;
		break;
	case SLOT_CLAIMED_AUTO:
		if (transition(q, pos, w, slot_word(lap + 1, 0, SLOT_FREE), JR_RELEASE, QC_RELEASED,
			       CRASHPOINT_ID(REC_RELEASE_JOURNAL)) == 0)
			r->released++;
		break;
	case SLOT_REMOVING:
		why = word_run(w) - 1;
		if (why <= REMOVE_PURGED &&
		    transition(q, pos, w, slot_word(lap + 1, 0, SLOT_FREE), removal_kind[why],
			       removal_ctr[why], CRASHPOINT_ID(REC_REMOVE_JOURNAL)) == 0)
			r->removed++;
		break;
	default:
		break;
	}
}

int hbus_queue_recover_owner(hbus_queue *q, uint32_t owner, struct hbus_recovery *out)
{
	uint64_t dead[HBUS_QUEUE_RECORDS / 64] = { 0 };
	struct hbus_recovery r;
	uint32_t i;
	int any = 0;

	if (!q || owner == 0 || owner > HBUS_OWNER_MAX || owner == q->owner)
		return -EINVAL;
	if (q->read_only)
		return -EPERM;
	memset(&r, 0, sizeof(r));
	for (i = 0; i < q->nrec; i++) {
		if (atomic_load_explicit(&q->recs[i].owner, ACQUIRE) != owner)
			continue;
		dead[i / 64] |= UINT64_C(1) << (i % 64);
		queue_settle(q, &q->recs[i]);
		recover_xhold(q, &q->recs[i], i + 1);
		any = 1;
	}
	for (uint64_t k = 0; any && k <= q->mask; k++)
		recover_slot(q, k, dead, &r);
	for (i = 0; any && i < q->nrec; i++) {
		if (!(dead[i / 64] >> (i % 64) & 1))
			continue;
		atomic_fetch_and_explicit(&q->hdr->sleepers[i / 64], ~(UINT64_C(1) << (i % 64)),
					  SEQ_CST);
		CRASHPOINT(REC_SLEEPER);
		atomic_store_explicit(&q->recs[i].jr_op, jr_word(JR_NONE, 0, 0), RELAXED);
		atomic_store_explicit(&q->recs[i].owner, 0, RELEASE);
		CRASHPOINT(REC_FREE);
		r.records++;
	}
	/* Skips unblock consumers parked at the head: wake them. */
	if (any)
		queue_wake(q);
	if (out)
		*out = r;
	return 0;
}

int hbus_queue_release_held(hbus_queue *q, struct hbus_recovery *out)
{
	struct hbus_recovery r;
	int rc = 0;

	if (!q)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	queue_xret_flush(q);
	if (q->xhold) /* held through xhold: make it a claim, given back below */
		queue_xhold_pin(q);
	for (uint64_t i = 0; i <= q->mask; i++) {
		uint64_t w = atomic_load_explicit(slot_state(q, i), ACQUIRE);
		uint64_t pos = pos_near(q, atomic_load_explicit(&q->hdr->head, RELAXED), i,
					word_lap(w));

		if (word_holder(w) != q->holder)
			continue;
		if (word_state(w) == SLOT_CLAIMED) {
			int e = queue_requeue(q, pos, w);

			if (e == 0)
				r.requeued++;
			else if (e != -ESTALE)
				rc = e;
		} else if (word_state(w) == SLOT_CLAIMED_AUTO &&
			   transition(q, pos, w, slot_word(word_lap(w) + 1, 0, SLOT_FREE), JR_RELEASE,
				      QC_RELEASED, CRASHPOINT_ID(ACK_JOURNAL)) == 0) {
			r.released++;
		}
	}
	q->unacked = 0;
	q->held -= r.requeued + r.released < q->held ? r.requeued + r.released : q->held;
	if (out)
		*out = r;
	return rc;
}
