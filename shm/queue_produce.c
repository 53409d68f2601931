/*
 * queue_produce.c - the producer side of the ring.  A burst claims runs of
 * FREE(lap) slots with one CAS each (claim_run), writes them in place and
 * publishes them READY with release stores, the run's first slot last; the
 * one-slot path (queue_claim_tail: FREE(lap) -> WRITING(lap, us) by CAS,
 * write, publish) serves reservations and every unusual case (a lagging
 * tail, skips to clear, drop-head, a full ring).  Each publication is
 * journaled in the handle's record and counted by a plain store
 * (queue_internal.h, "journal").  Consumers are woken only when one sleeps.
 */
#include "queue_internal.h"

#include <errno.h>
#include <string.h>

/*
 * Claim the slot at the tail for writing.  0 and *pos, or -ENOBUFS when the
 * slot at the tail still holds the previous lap; *blocked then names that
 * position's slot word so callers can recognise their own slot.  A walk
 * longer than walk_limit() is a corrupt ring: -EUCLEAN.
 */
int queue_claim_tail(struct hbus_queue *q, uint64_t *pos, uint64_t *blocked)
{
	uint64_t t = tail_start(q), t0 = t;
	uint64_t steps = walk_limit(q);

	while (steps--) {
		uint64_t lap = pos_lap(q, t);
		uint64_t w = atomic_load_explicit(slot_state(q, t), ACQUIRE);
		int64_t d = lap_diff(word_lap(w), lap);

		if (d == 0) {
			if (word_state(w) == SLOT_FREE &&
			    slot_cas(q, t, &w, slot_word(lap, q->holder, SLOT_WRITING), ACQUIRE)) {
				CRASHPOINT(ONE_CLAIM);
				tail_claimed(q, t, 1, t != t0);
				CRASHPOINT(ONE_CURSOR);
				note_full(q, 0);
				*pos = t;
				return 0;
			}
			/* Taken: step past it (a run: all of it). */
			if (word_state(w) != SLOT_FREE)
				t += word_state(w) == SLOT_WRITING ? word_run(w) : 1;
			continue;
		}
		if (d > 0) { /* position t is done with: we lag (lap_jump) */
			t += lap_jump(q, d);
			CRASHPOINT(CURSOR_JUMP);
			continue;
		}
		/* The previous lap still occupies the slot: the ring is full,
		 * unless what is there can be cleared. */
		if (word_state(w) == SLOT_SKIP) {
			if (slot_cas(q, t, &w, slot_word(lap, 0, SLOT_FREE), RELEASE))
				CRASHPOINT(SKIP_CLEAR);
			continue;
		}
		if (word_state(w) == SLOT_READY && q->overflow == HBUS_OVERFLOW_DROP_HEAD) {
			/* The oldest message makes room (an unacked one never
			 * does): dead-lettered, counted in dropped_head. */
			queue_remove_ready(q, t - q->mask - 1, w, REMOVE_DROPPED);
			continue;
		}
		/* Full: we wait anyway, tell the others how far we got. */
		q->next_tail = t;
		if (!q_sp(q))
			cursor_publish(&q->hdr->tail, t, 1);
		*pos = t;
		if (blocked)
			*blocked = w;
		note_full(q, 1);
		return -ENOBUFS;
	}
	count_plain(q, QC_CORRUPT, 1);
	return -EUCLEAN;
}

/*
 * Publish the slot at pos, which we hold WRITING and whose message is
 * written: journal, READY, count.  seq_cst: orders the READY store before
 * the sleepers load in wake_if_waiting (the futex handshake in
 * hbus_queue_wait).  No CAS: no one takes a slot from a live writer.
 */
static void publish_one(struct hbus_queue *q, uint64_t pos)
{
	struct hbus_slot *s = slot_at(q, pos);
	uint32_t len = (uint32_t)s->meta_len + s->body_len;
	uint64_t target;

	if (q->ttl_ns)
		s->enq_ts_ns = hbus_now_ns();
	target = journal(q, JR_COMMIT, pos, QC_ENQUEUED, 1);
	CRASHPOINT(ONE_JOURNAL);
	atomic_store_explicit(slot_state(q, pos), slot_word(pos_lap(q, pos), 0, SLOT_READY), SEQ_CST);
	CRASHPOINT(ONE_PUBLISH);
	count_done(q, QC_ENQUEUED, target);
	CRASHPOINT(ONE_COUNT);
	demote_slot(q, s, len);
}

static inline int out_valid(const struct hbus_out *m)
{
	return (m->body || !m->body_len) && (m->meta || !m->meta_len);
}

static inline int out_fits(const struct hbus_queue *q, const struct hbus_out *m)
{
	return (uint64_t)m->meta_len + m->body_len <= q->slot_size;
}

/* Copy bytes [from, to) of the message (meta, then body) to s->data. */
static inline void copy_span(struct hbus_slot *s, const struct hbus_out *m, uint32_t from,
			     uint32_t to)
{
	if (from < m->meta_len) {
		uint32_t end = to < m->meta_len ? to : m->meta_len;

		memcpy(s->data + from, (const uint8_t *)m->meta + from, end - from);
		from = end;
	}
	if (from < to)
		memcpy(s->data + from, (const uint8_t *)m->body + (from - m->meta_len), to - from);
}

/* Bytes of data that share the slot's first line with its header. */
#define SLOT_LINE0_DATA (HBUS_CACHE_LINE - HBUS_SLOT_HDR_LEN)

/*
 * Write a message into a claimed slot, its first line last.  That line
 * holds the state word a waiting consumer polls, so it is pulled away from
 * us while we write; filling the other lines first and the first one (data,
 * then header, then the caller's READY store) at the end takes it back
 * once instead of twice (with the claim below: 288-byte round trips -12%,
 * docs/BENCHMARKS.md, "Session 3").
 */
static inline void write_slot(struct hbus_slot *s, const struct hbus_out *m)
{
	uint32_t len = (uint32_t)m->meta_len + m->body_len;

	if (len > SLOT_LINE0_DATA) {
		copy_span(s, m, SLOT_LINE0_DATA, len);
		copy_span(s, m, 0, SLOT_LINE0_DATA);
	} else {
		copy_span(s, m, 0, len);
	}
	s->body_len = m->body_len;
	s->meta_len = m->meta_len;
	s->flags = m->flags;
	s->send_ts_ns = m->send_ts_ns;
}

/*
 * Ask for the next slots of a burst in exclusive state before claiming
 * them: each slot line was last written by a consumer (it freed it) on
 * another core, and without this each claim waits for its own cross-core
 * transfer in turn.  PREFETCHW, not a read prefetch: a read brings the line
 * shared, and the claim then pays a second transfer to own it (measured:
 * docs/BENCHMARKS.md, "Write prefetch").  A hint only: a wrong guess costs
 * a wasted prefetch, never correctness.
 */
static inline void prefetch_tail(const struct hbus_queue *q, unsigned n)
{
	uint64_t t = tail_start(q);
	unsigned i;

	if (n > 64)
		n = 64;
	for (i = 1; i < n; i++)
		prefetch_for_write(slot_at(q, t + i));
}

/*
 * The same for the lines of the slot at the tail other than its first,
 * where the first message of a burst goes.  Not its first line: a waiting
 * consumer polls it, and pulling it early only makes it bounce (measured
 * worse); the claim CAS takes it once.  The other lines then arrive while
 * that CAS waits and are written at once after it, so the consumer has no
 * time to take the first line back before it is written last (288-byte
 * round trips a further -8%, 1344-byte -4%: docs/BENCHMARKS.md, "Session 3").
 */
static inline void prefetch_first_message(const struct hbus_queue *q, const struct hbus_out *m)
{
	const char *s = (const char *)slot_at(q, tail_start(q));
	uint32_t end = slot_extent(q, (uint64_t)m->meta_len + m->body_len);

	for (uint32_t off = HBUS_CACHE_LINE; off < end; off += HBUS_CACHE_LINE)
		prefetch_for_write(s + off);
}

/*
 * Claim a run of up to n (<= SLOT_RUN_MAX) slots from the tail with one
 * CAS on the first: its WRITING word carries the run's length, and the
 * other slots stay FREE until they are published.  No one else claims
 * them (a producer that meets the first slot steps the tail past the whole
 * run) and no consumer reads them (consumers wait at the first slot, which
 * is published last).  Returns the run's length and *pos, or 0 when the
 * slot at the tail is not plainly FREE at its lap (full, taken, lagging
 * tail...): the caller then takes the one-slot path, which handles every
 * such case.
 */
static unsigned claim_run(struct hbus_queue *q, unsigned n, uint64_t *pos)
{
	uint64_t t = tail_start(q);
	uint64_t w = slot_word(pos_lap(q, t), 0, SLOT_FREE);
	unsigned k;

	/* No load of slot t before the CAS: a consumer waiting for it holds
	 * its line, and a load would fetch it shared for the CAS to upgrade,
	 * two transfers where the CAS alone makes one.  Unless the ring was
	 * full last time: then slot t is likely the consumer's next message,
	 * and a failed CAS would take its line away. */
	if (q->full_hint && atomic_load_explicit(slot_state(q, t), RELAXED) != w)
		return 0;
	if (n > q->mask + 1)
		n = (unsigned)q->mask + 1;
	/* A slot ahead of the tail that is FREE at its lap stays so until it
	 * is claimed, and claims happen only at the tail: if our CAS finds
	 * slot t still FREE at its lap, no one has claimed past it, and these
	 * loads still hold (taken before the CAS, they may be of a run that
	 * is being written: the CAS then fails).  Acquire: what a consumer
	 * wrote into the slot before freeing it is behind us before we write. */
	for (k = 1; k < n; k++)
		if (atomic_load_explicit(slot_state(q, t + k), ACQUIRE) !=
		    slot_word(pos_lap(q, t + k), 0, SLOT_FREE))
			break;
	if (!slot_cas(q, t, &w, slot_word_run(pos_lap(q, t), q->holder, SLOT_WRITING, k), ACQUIRE))
		return 0;
	CRASHPOINT(RUN_CLAIM);
	tail_claimed(q, t, k, 0);
	CRASHPOINT(RUN_CURSOR);
	note_full(q, 0);
	*pos = t;
	return k;
}

/* Write and publish a claimed run, its first slot last: until then the
 * consumers wait at the first slot, never on a line being written, and
 * then take the whole run at once.  The first slot's READY store is the
 * run's publication, journaled and counted as k messages. */
static void publish_run(struct hbus_queue *q, uint64_t pos, const struct hbus_out *m, unsigned k)
{
	uint64_t ts = q->ttl_ns ? hbus_now_ns() : 0, target;
	struct hbus_slot *s;

	for (unsigned j = k; --j > 0;) {
		s = slot_at(q, pos + j);
		write_slot(s, &m[j]);
		s->enq_ts_ns = ts;
		atomic_store_explicit(slot_state(q, pos + j), slot_word(pos_lap(q, pos + j), 0, SLOT_READY),
				      RELEASE);
		CRASHPOINT(RUN_INNER);
		demote_slot(q, s, (uint32_t)m[j].meta_len + m[j].body_len);
	}
	s = slot_at(q, pos);
	write_slot(s, &m[0]);
	s->enq_ts_ns = ts;
	target = journal(q, JR_COMMIT, pos, QC_ENQUEUED, k);
	CRASHPOINT(RUN_JOURNAL);
	atomic_store_explicit(slot_state(q, pos), slot_word(pos_lap(q, pos), 0, SLOT_READY), RELEASE);
	CRASHPOINT(RUN_PUBLISH);
	count_done(q, QC_ENQUEUED, target);
	CRASHPOINT(RUN_COUNT);
	demote_slot(q, s, (uint32_t)m[0].meta_len + m[0].body_len);
}

/*
 * The only producer (HBUS_PRODUCE_EXCLUSIVE): no one else claims at the
 * tail (a requeue goes back to its own position, hbusd never claims there,
 * and hbusd grants no other writer), so the slots from the tail that are
 * FREE at their lap are ours without a CAS, and the tail is ours to store.
 * Returns how many (at most n), 0 when the slot at the tail is not FREE
 * (full, a skip, drop-head...): the one-slot path handles those, by CAS.
 */
/*
 * How many slots from t the only producer may write (at most n): those FREE
 * at their lap (they stay so until we claim them: no one else claims here).
 * Each message asks, SP_AHEAD positions ahead, for the line it will write
 * then, in exclusive state: by the time it gets there the line is ours and
 * the look at its state is a hit, not a wait for the consumer's core (which
 * freed it a lap before).  One prefetch per message, no scan that stalls
 * every so many (it showed at p99).
 */
static unsigned sp_room(struct hbus_queue *q, uint64_t t, unsigned n)
{
	unsigned k;

	if (n > q->mask + 1)
		n = (unsigned)q->mask + 1;
	for (k = 0; k < n; k++) {
		uint64_t p = t + k;

		if ((int64_t)(p - q->sp_free) < 0)
			continue; /* found free before */
		prefetch_for_write(slot_state(q, p + SP_AHEAD));
		if (atomic_load_explicit(slot_state(q, p), ACQUIRE) !=
		    slot_word(pos_lap(q, p), 0, SLOT_FREE))
			break;
		q->sp_free = p + 1;
	}
	return k;
}

static unsigned claim_run_sp(struct hbus_queue *q, unsigned n, uint64_t *pos)
{
	*pos = q->next_tail;
	return sp_room(q, *pos, n);
}

/*
 * The only producer's one message, the path a request/response takes:
 * write, journal, READY, count; the tail is ours to store.  A one-slot
 * journal (the slot's pre-state FREE at its lap is ours alone), so two
 * stores where a run's needs five.
 */
static void publish_one_sp(struct hbus_queue *q, uint64_t t, const struct hbus_out *m)
{
	struct hbus_slot *s = slot_at(q, t);
	uint64_t target;

	write_slot(s, m);
	s->enq_ts_ns = 0;
	target = journal(q, JR_SCOMMIT, t, QC_ENQUEUED, 1);
	CRASHPOINT(XRUN_JOURNAL);
	atomic_store_explicit(slot_state(q, t), slot_word(pos_lap(q, t), 0, SLOT_READY), RELEASE);
	CRASHPOINT(XRUN_SLOT);
	q->next_tail = t + 1;
	atomic_store_explicit(&q->hdr->tail, t + 1, RELAXED);
	CRASHPOINT(XRUN_TAIL);
	count_done(q, QC_ENQUEUED, target);
	CRASHPOINT(XRUN_COUNT);
	demote_slot(q, s, (uint32_t)m->meta_len + m->body_len);
}

/*
 * Write and publish the only producer's run in order, each slot READY by a
 * release store as soon as it is written (consumers may take the first
 * while the rest is written: there is no claim to wait behind).  The
 * journal names the run's first slot and length and the counter's value
 * before it: recovery counts the published prefix (docs/QUEUE.md).
 */
static void publish_run_sp(struct hbus_queue *q, uint64_t pos, const struct hbus_out *m, unsigned k)
{
	uint64_t ts = q->ttl_ns ? hbus_now_ns() : 0;
	uint64_t base = journal_ex(q, JR_XCOMMIT, pos, QC_ENQUEUED, 0, k, 0);

	CRASHPOINT(XRUN_JOURNAL);
	for (unsigned j = 0; j < k; j++) {
		struct hbus_slot *s = slot_at(q, pos + j);

		write_slot(s, &m[j]);
		s->enq_ts_ns = ts;
		atomic_store_explicit(slot_state(q, pos + j),
				      slot_word(pos_lap(q, pos + j), 0, SLOT_READY), RELEASE);
		CRASHPOINT(XRUN_SLOT);
		demote_slot(q, s, (uint32_t)m[j].meta_len + m[j].body_len);
	}
	tail_claimed(q, pos, k, 0);
	CRASHPOINT(XRUN_TAIL);
	count_done(q, QC_ENQUEUED, base + k);
	CRASHPOINT(XRUN_COUNT);
	note_full(q, 0);
}

/* The messages at m[0..n) that fit a slot, at most SLOT_RUN_MAX. */
static inline unsigned count_valid(const struct hbus_queue *q, const struct hbus_out *m, unsigned n)
{
	unsigned j;

	for (j = 0; j < n && j < SLOT_RUN_MAX; j++)
		if (!out_valid(&m[j]) || !out_fits(q, &m[j]))
			break;
	return j;
}

/* queue_claim_tail for a message or a reservation.  Full, and this handle
 * consumes the queue too and keeps a slot it acked (queue_xret_return):
 * that slot may be the room, so it goes back first. */
static int claim_tail_room(struct hbus_queue *q, uint64_t *pos)
{
	int rc = queue_claim_tail(q, pos, NULL);

	if (rc == -ENOBUFS && q->xret) {
		queue_xret_flush(q);
		rc = queue_claim_tail(q, pos, NULL);
	}
	return rc;
}

/* A claim refused: a full ring is counted here (a corrupt one was counted
 * by the walk). */
static int refused(struct hbus_queue *q, int rc)
{
	if (rc == -ENOBUFS)
		count_plain(q, QC_DROPPED_OVERFLOW, 1);
	return rc;
}

/* One message by the one-slot path: claim (helping, clearing skips,
 * dropping the head, or finding the ring full), write, publish. */
static int enqueue_one(struct hbus_queue *q, const struct hbus_out *m)
{
	uint64_t pos;
	int rc;

	if (!out_valid(m))
		return -EINVAL;
	if (!out_fits(q, m)) {
		count_plain(q, QC_DROPPED_OVERSIZE, 1);
		return -EMSGSIZE;
	}
	rc = claim_tail_room(q, &pos);
	if (rc)
		return refused(q, rc);
	write_slot(slot_at(q, pos), m);
	CRASHPOINT(ONE_WRITE);
	publish_one(q, pos);
	return 0;
}

int hbus_queue_enqueue_burst(hbus_queue *q, const struct hbus_out *m, unsigned n)
{
	unsigned i = 0, runs = 0;
	uint64_t pos;
	int rc = 0, sp;

	if (!q || (!m && n))
		return -EINVAL;
	sp = q_sp(q); /* once per burst (queue_drop_exclusive) */
	if (q->read_only)
		return -EPERM; /* a consumer of a protected queue */
	if (!q->full_hint) {
		prefetch_tail(q, n);
		if (n && out_valid(&m[0]))
			prefetch_first_message(q, &m[0]);
	}
	while (i < n) {
		unsigned k = count_valid(q, m + i, n - i);

		if (k && sp && (k = claim_run_sp(q, k, &pos)) != 0) {
			publish_run_sp(q, pos, m + i, k);
			i += k;
			runs++;
			continue;
		}
		if (k && !sp && (k = claim_run(q, k, &pos)) != 0) {
			publish_run(q, pos, m + i, k);
			i += k;
			runs++;
			continue;
		}
		rc = enqueue_one(q, &m[i]);
		if (rc)
			break;
		i++;
	}
	if (i) {
		/* READY went out by plain stores: order them before the
		 * sleepers load (the futex handshake in hbus_queue_wait), once
		 * for the whole burst. */
		if (runs)
			atomic_thread_fence(SEQ_CST);
		wake_if_waiting(q);
	}
	return i ? (int)i : rc;
}

int hbus_queue_enqueue(hbus_queue *q, const struct hbus_out *m)
{
	int rc;

	if (q && m && q_sp(q) && !q->ttl_ns && out_valid(m) && out_fits(q, m) &&
	    sp_room(q, q->next_tail, 1)) {
		publish_one_sp(q, q->next_tail, m);
		/* READY by a plain store: order it before the sleepers load
		 * (the futex handshake in hbus_queue_wait). */
		atomic_thread_fence(SEQ_CST);
		wake_if_waiting(q);
		return 0;
	}
	rc = hbus_queue_enqueue_burst(q, m, 1);

	return rc == 1 ? 0 : (rc == 0 ? -EINVAL : rc);
}

int hbus_queue_reserve(hbus_queue *q, struct hbus_reservation *r)
{
	uint64_t pos;
	int rc;

	if (!q || !r)
		return -EINVAL;
	if (q->read_only)
		return -EPERM;
	rc = claim_tail_room(q, &pos);
	if (rc)
		return refused(q, rc);
	r->data = slot_at(q, pos)->data;
	r->cap = q->slot_size;
	r->pos = pos;
	q->held++;
	return 0;
}

/* Is the reservation still ours (WRITING at its lap, by this handle)?  A
 * reservation committed or aborted already, or someone else's, is not. */
static int reservation_held(const struct hbus_queue *q, const struct hbus_reservation *r)
{
	uint64_t w = atomic_load_explicit(slot_state(q, r->pos), ACQUIRE);

	return word_norun(w) == slot_word(pos_lap(q, r->pos), q->holder, SLOT_WRITING);
}

int hbus_queue_commit(hbus_queue *q, const struct hbus_reservation *r,
		      uint16_t meta_len, uint32_t body_len, uint16_t flags, uint64_t send_ts_ns)
{
	struct hbus_slot *s;

	if (!q || !r)
		return -EINVAL;
	if (!reservation_held(q, r))
		return -ESTALE;
	if ((uint64_t)meta_len + body_len > q->slot_size) {
		/* The reservation is given up: the slot must not stall the ring. */
		hbus_queue_abort(q, r);
		count_plain(q, QC_DROPPED_OVERSIZE, 1);
		return -EMSGSIZE;
	}
	s = slot_at(q, r->pos);
	s->body_len = body_len;
	s->meta_len = meta_len;
	s->flags = flags;
	s->send_ts_ns = send_ts_ns;
	CRASHPOINT(ONE_WRITE);
	publish_one(q, r->pos);
	q->held--;
	wake_if_waiting(q);
	return 0;
}

int hbus_queue_abort(hbus_queue *q, const struct hbus_reservation *r)
{
	uint64_t lap;
	int rc;

	if (!q || !r)
		return -EINVAL;
	if (!reservation_held(q, r))
		return -ESTALE;
	lap = pos_lap(q, r->pos);
	rc = transition(q, r->pos, atomic_load_explicit(slot_state(q, r->pos), RELAXED),
			slot_word(lap, 0, SLOT_SKIP), JR_ABORT, QC_ABORTED,
			CRASHPOINT_ID(ABORT_JOURNAL));
	if (rc == 0) {
		q->held--;
		wake_if_waiting(q);
	}
	return rc;
}
