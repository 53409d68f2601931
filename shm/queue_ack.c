/*
 * queue_ack.c - what a consumer does with what it holds: ack (auto ack:
 * release) CLAIMED -> FREE(lap + 1) by a release store, a burst's
 * consecutive claims as one run, nack (requeue, or reject to the
 * dead-letter hook); the only consumer's xhold let go or pinned into a
 * claim, and its auto-ack slot returned at its next call.  Every counted
 * transition is journaled in the handle's record first (queue_internal.h,
 * "journal").
 */
#include "queue_internal.h"

#include <errno.h>

/* Does this handle hold the slot at pos by a claim, in state `held`? */
static inline int holds_claim(const struct hbus_queue *q, uint64_t pos, unsigned held)
{
	return atomic_load_explicit(slot_state(q, pos), ACQUIRE) ==
	       slot_word(pos_lap(q, pos), q->holder, held);
}

/* ...or through xhold, without a claim store (the slot still READY)? */
static inline int holds(const struct hbus_queue *q, uint64_t pos, unsigned held)
{
	if (q->xhold == pos + 1)
		return atomic_load_explicit(slot_state(q, pos), ACQUIRE) ==
		       slot_word(pos_lap(q, pos), 0, SLOT_READY);
	return holds_claim(q, pos, held);
}

/* The only consumer lets go of the slot its record's xhold names: after
 * the slot's FREE store (ack, release), or once it is pinned (below). */
static void xhold_clear(struct hbus_queue *q)
{
	CRASH_ORDER();
	atomic_store_explicit(&q->rec->xhold, 0, RELAXED);
	q->xhold = 0;
	CRASHPOINT(XHOLD_CLEAR);
}

/*
 * Turn the slot xhold names into the claim it stands for, CLAIMED*(L, us),
 * before anything but a plain ack or release (nack, requeue, giving
 * everything back), so those paths see the slot states they always did.
 * A CAS: if hbusd no longer grants us the queue alone (queue_drop_exclusive),
 * another consumer may have claimed it meanwhile: -ESTALE then.
 */
int queue_xhold_pin(struct hbus_queue *q)
{
	uint64_t pos = q->xhold - 1, lap = pos_lap(q, pos);
	uint64_t w = slot_word(lap, 0, SLOT_READY);
	int ok = slot_cas(q, pos, &w, slot_word(lap, q->holder, held_state(q)), ACQUIRE);

	CRASHPOINT(XHOLD_PIN);
	xhold_clear(q);
	return ok ? 0 : -ESTALE;
}

/*
 * Free a slot this handle holds (ack, release, reject): journal, a release
 * store of FREE(lap + 1), count.  The caller checked that we hold it, and
 * no one else moves a slot a live handle holds, so a store does what a CAS
 * did, without the locked instruction (a process writing our slots behind
 * our back can only disturb its own queue).
 */
static int free_held(struct hbus_queue *q, uint64_t pos, unsigned kind, unsigned ctr, int cp)
{
	uint64_t target = journal(q, kind, pos, ctr, 1);

	CRASHPOINT_AT(cp);
	atomic_store_explicit(slot_state(q, pos), slot_word(pos_lap(q, pos) + 1, 0, SLOT_FREE),
			      RELEASE);
	CRASHPOINT_AT(cp + 1);
	count_done(q, ctr, target);
	CRASHPOINT_AT(cp + 2);
	return 0;
}

/* Ack or release: free_held, and for the slot xhold names, xhold cleared
 * after the FREE store.  If hbusd no longer grants us the queue alone
 * (queue_drop_exclusive), another consumer may claim that slot now: pinned
 * first, freed as a claim.  The common case costs one compare. */
static int free_own(struct hbus_queue *q, uint64_t pos, unsigned kind, unsigned ctr, int cp)
{
	if (__builtin_expect(q->xhold != pos + 1, 1))
		return free_held(q, pos, kind, ctr, cp);
	if (!q_sc(q))
		return queue_xhold_pin(q) ? -ESTALE : free_held(q, pos, kind, ctr, cp);
	free_held(q, pos, kind, ctr, cp);
	xhold_clear(q);
	return 0;
}

/*
 * Returned at the next call.  In auto-ack mode the claim is the delivery
 * and hbus_queue_ack only gives the slot back.  The only consumer, holding
 * the slot through xhold, gives it back at its next call on the handle
 * instead: the FREE store writes a line the producer's core has, and on x86
 * every later store of this thread waits behind it, so the reply that a
 * request/response loop sends right after the ack went out one cross-core
 * write later (32-byte round trips near cpus: 0.111 -> 0.102 us,
 * docs/BENCHMARKS.md, "Session 6").  Recovery is unchanged: a kill before
 * the return leaves xhold naming a READY slot held CLAIMED_AUTO, which it
 * releases, counted in released as the return would have.
 */
void queue_xret_return(struct hbus_queue *q)
{
	uint64_t pos = q->xret - 1;

	q->xret = 0;
	if (holds(q, pos, SLOT_CLAIMED_AUTO))
		free_own(q, pos, JR_RELEASE, QC_RELEASED, CRASHPOINT_ID(ACK_JOURNAL));
	else if (q->xhold == pos + 1) /* taken by another after a lost grant */
		xhold_clear(q);
	if (q->held)
		q->held--;
}

/*
 * Acks (releases) of consecutive claims of this handle, m[0..k) for the
 * longest such run up to n: one journal entry (first slot, length, the
 * counter before it), the FREE(L + 1) stores in order, one count; recovery
 * counts the freed prefix (slots no longer held by us at their lap).  The
 * common case of a burst consumer, which acks what one burst claimed.
 * Returns k, or 0 when m[0] does not start a run of two (then one by one).
 */
static unsigned ack_run(struct hbus_queue *q, const struct hbus_msg *m, unsigned n,
			unsigned held, uint64_t xh)
{
	uint64_t pos = m[0].pos, base;
	unsigned k, ctr = held == SLOT_CLAIMED ? QC_ACKED : QC_RELEASED;

	if (n > q->mask + 1)
		n = (unsigned)q->mask + 1;
	for (k = 0; k < n; k++)
		if (m[k].pos != pos + k || xh == pos + k + 1 || !holds_claim(q, pos + k, held))
			break;
	if (k < 2)
		return 0;
	base = journal_ex(q, held == SLOT_CLAIMED ? JR_ACKRUN : JR_RELRUN, pos, ctr, 0, k, 0);
	CRASHPOINT(ARUN_JOURNAL);
	for (unsigned j = 0; j < k; j++) {
		atomic_store_explicit(slot_state(q, pos + j),
				      slot_word(pos_lap(q, pos + j) + 1, 0, SLOT_FREE), RELEASE);
		CRASHPOINT(ARUN_FREE);
	}
	count_done(q, ctr, base + k);
	CRASHPOINT(ARUN_COUNT);
	return k;
}

int hbus_queue_ack_burst(hbus_queue *q, const struct hbus_msg *m, unsigned n)
{
	unsigned i, done = 0, held;
	uint64_t xh;
	int manual, rc = 0;

	if (!q || (!m && n))
		return -EINVAL;
	queue_xret_flush(q);
	held = held_state(q);
	manual = held == SLOT_CLAIMED;
	xh = q->xhold; /* in a register: the stores below may alias q */
	for (i = 0; i < n; i++) {
		unsigned k = ack_run(q, m + i, n - i, held, xh);

		if (k) {
			done += k;
			i += k - 1;
			continue;
		}
		/* The slot xhold names, if any, off the loop's path: measured,
		 * a load and test of q->xhold per message cost a burst of acks
		 * 5%. */
		if (__builtin_expect(xh == m[i].pos + 1, 0)) {
			if (holds(q, m[i].pos, held) &&
			    free_own(q, m[i].pos, manual ? JR_ACK : JR_RELEASE,
				     manual ? QC_ACKED : QC_RELEASED, CRASHPOINT_ID(ACK_JOURNAL)) == 0)
				done++;
			else
				rc = -ESTALE;
			xh = q->xhold;
			continue;
		}
		if (holds_claim(q, m[i].pos, held) &&
		    free_held(q, m[i].pos, manual ? JR_ACK : JR_RELEASE,
			      manual ? QC_ACKED : QC_RELEASED, CRASHPOINT_ID(ACK_JOURNAL)) == 0)
			done++;
		else
			rc = -ESTALE;
	}
	if (manual)
		q->unacked -= done < q->unacked ? done : q->unacked;
	q->held -= done < q->held ? done : q->held;
	return rc;
}

/* Is m held by this handle?  0 and *held (the state of its claims), or
 * -EINVAL, or -ESTALE (acked already, recovered, or taken by another
 * consumer after a lost grant: then the handle stops naming it in xhold). */
static int held_msg(struct hbus_queue *q, const struct hbus_msg *m, unsigned *held)
{
	if (!q || !m)
		return -EINVAL;
	queue_xret_flush(q);
	*held = held_state(q);
	if (holds(q, m->pos, *held))
		return 0;
	if (q->xhold == m->pos + 1)
		xhold_clear(q);
	return -ESTALE;
}

int hbus_queue_ack(hbus_queue *q, const struct hbus_msg *m)
{
	unsigned held;
	int rc = held_msg(q, m, &held);

	if (rc)
		return rc;
	if (held == SLOT_CLAIMED_AUTO && q->xhold == m->pos + 1 && q_sc(q)) {
		q->xret = m->pos + 1; /* given back at the next call (queue_xret_return) */
		return 0;
	}
	if (held == SLOT_CLAIMED) {
		rc = free_own(q, m->pos, JR_ACK, QC_ACKED, CRASHPOINT_ID(ACK_JOURNAL));
		if (q->unacked)
			q->unacked--;
	} else {
		rc = free_own(q, m->pos, JR_RELEASE, QC_RELEASED, CRASHPOINT_ID(ACK_JOURNAL));
	}
	if (q->held)
		q->held--;
	return rc; /* -ESTALE: another consumer took it (a lost grant) */
}

/* nack(no requeue): dead-letter the held message, then free its slot.
 * The hook runs while we hold the slot (a kill in it: redelivered, and
 * the dead-letter copy may exist too: at least once, flagged). */
static int reject(struct hbus_queue *q, uint64_t pos)
{
	struct hbus_msg m;

	if (q->dead_fn) {
		queue_fill_msg(q, slot_at(q, pos), pos, &m);
		q->dead_fn(q->dead_ctx, q, &m, HBUS_DEAD_REJECTED);
		count_plain(q, QC_DEAD_LETTERED, 1);
	}
	CRASHPOINT(REJECT_HOOK);
	return free_held(q, pos, JR_REJECT, QC_REJECTED, CRASHPOINT_ID(REJECT_JOURNAL));
}

int hbus_queue_nack(hbus_queue *q, const struct hbus_msg *m, int requeue)
{
	unsigned held;
	int rc = held_msg(q, m, &held);

	if (rc)
		return rc;
	if (q->xhold == m->pos + 1 && (rc = queue_xhold_pin(q)) != 0)
		return rc;
	rc = requeue ? queue_requeue(q, m->pos, slot_word(pos_lap(q, m->pos), q->holder, held))
		     : reject(q, m->pos);
	if (rc)
		return rc;
	if (q->ack_mode == HBUS_ACK_MANUAL && q->unacked)
		q->unacked--;
	if (q->held)
		q->held--;
	return 0;
}
