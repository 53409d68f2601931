/*
 * queue_consume.c - the consumer side of the ring: claim READY(lap) ->
 * CLAIMED(lap, us) by CAS (the only consumer: a store, a run, or its
 * record's xhold), help the head past it, hand out a zero-copy view; and
 * removal of a READY message unread (TTL expiry, drop-head, purge).  Acks
 * and nacks are in queue_ack.c, the blocking wait in queue_wait.c.  Every
 * counted transition is journaled in the handle's record first
 * (queue_internal.h, "journal").
 */
#include "queue_internal.h"

#include <errno.h>
#include <string.h>

/* The view of a message for the dead-letter hook, from the copy taken
 * while the slot was ours (the slot itself may be reused by then). */
static void dead_letter_copy(struct hbus_queue *q, const struct hbus_slot *s, uint64_t pos,
			     struct hbus_msg *m)
{
	queue_fill_msg(q, (struct hbus_slot *)s, pos, m);
	memcpy(q->dead_buf, s->data, (size_t)m->meta_len + m->body_len);
	m->meta = q->dead_buf;
	m->body = q->dead_buf + m->meta_len;
}

static const unsigned remove_kind[] = {
	[REMOVE_EXPIRED] = JR_EXPIRE, [REMOVE_DROPPED] = JR_DROP, [REMOVE_PURGED] = JR_PURGE,
};
static const unsigned remove_ctr[] = {
	[REMOVE_EXPIRED] = QC_EXPIRED, [REMOVE_DROPPED] = QC_DROPPED_HEAD,
	[REMOVE_PURGED] = QC_PURGED,
};
static const enum hbus_dead_reason remove_reason[] = {
	[REMOVE_EXPIRED] = HBUS_DEAD_EXPIRED, [REMOVE_DROPPED] = HBUS_DEAD_MAXLEN,
	[REMOVE_PURGED] = 0,
};

/*
 * Remove the READY message at pos unread: READY(L) -> REMOVING(L, us, why)
 * by CAS, so it is ours and its bytes stay put while the dead-letter hook
 * gets a copy; then journal, FREE(L + 1), count.  A remover killed while
 * it holds the slot leaves REMOVING(why): recovery finishes the removal
 * and counts it in the same named counter (without the hook: dead-lettering
 * is at most once).  The hook runs last, on the copy, so a hook that blocks
 * (it may open a queue through hbusd) holds no slot.
 */
int queue_remove_ready(struct hbus_queue *q, uint64_t pos, uint64_t w, unsigned why)
{
	uint64_t lap = word_lap(w), target;
	struct hbus_slot *s = slot_at(q, pos);
	struct hbus_msg m;
	int hook = q->dead_fn && q->dead_buf && remove_reason[why];

	if (!slot_cas(q, pos, &w, slot_word_run(lap, q->holder, SLOT_REMOVING, why + 1), ACQUIRE))
		return -ESTALE;
	CRASHPOINT(REMOVE_CLAIM);
	if (hook)
		dead_letter_copy(q, s, pos, &m);
	CRASHPOINT(REMOVE_COPY);
	target = journal(q, remove_kind[why], pos, remove_ctr[why], 1);
	CRASHPOINT(REMOVE_JOURNAL);
	atomic_store_explicit(slot_state(q, pos), slot_word(lap + 1, 0, SLOT_FREE), RELEASE);
	CRASHPOINT(REMOVE_FREE);
	count_done(q, remove_ctr[why], target);
	CRASHPOINT(REMOVE_COUNT);
	if (hook) {
		q->dead_fn(q->dead_ctx, q, &m, remove_reason[why]);
		count_plain(q, QC_DEAD_LETTERED, 1);
		CRASHPOINT(REMOVE_HOOK);
	}
	return 0;
}

/*
 * Latency queues: ask for a READY message's lines past the first before
 * claiming it.  The claim CAS holds back every later load until it owns
 * the first line; the other lines then arrive while it waits instead of
 * after it (1344-byte round trips -10%, docs/BENCHMARKS.md, "Session 3").
 * Only there: a stream's consumer finds the next lines on their way anyway.
 * The lengths are read before the claim (relaxed: another consumer may
 * take the slot and a producer rewrite it meanwhile), so they may be stale:
 * a hint, bounded by the slot.
 */
static inline void prefetch_ready_message(const struct hbus_queue *q, const struct hbus_slot *s)
{
	uint32_t end = slot_extent(q, (uint64_t)__atomic_load_n(&s->meta_len, __ATOMIC_RELAXED) +
					 __atomic_load_n(&s->body_len, __ATOMIC_RELAXED));

	for (uint32_t off = HBUS_CACHE_LINE; off < end; off += HBUS_CACHE_LINE)
		__builtin_prefetch((const char *)s + off, 0, 3);
}

/* Has the READY message in slot s outlived the queue's TTL?  Read after
 * the acquire load of its READY word, so enq_ts_ns is that message's; the
 * claim's CAS confirms it was still the same one. */
static inline int expired(const struct hbus_queue *q, const struct hbus_slot *s, uint64_t *now)
{
	uint64_t t = s->enq_ts_ns;

	if (!*now)
		*now = hbus_now_ns();
	return *now > t && *now - t > q->ttl_ns;
}

/*
 * Claim the READY slot at the head: journal, CAS, help the head, count
 * the delivery.  0 and *pos, -EAGAIN when empty, or -EUCLEAN when the walk
 * found no end (a corrupt ring).  Expired messages met on the way are
 * removed (counted in expired).  Purging, the READY message at the head is
 * removed instead (counted in purged), and 0 says one was.
 */
static int claim_head(struct hbus_queue *q, uint64_t *pos, uint64_t *now, int purge)
{
	uint64_t h = head_start(q), h0 = h, xheld = q->xhold; /* a register, not a load a step */
	unsigned held = held_state(q);
	uint64_t steps = walk_limit(q), target;

	while (steps--) {
		struct hbus_slot *s = slot_at(q, h);
		uint64_t lap = pos_lap(q, h);
		uint64_t w = atomic_load_explicit(slot_state(q, h), ACQUIRE);
		int64_t d = lap_diff(word_lap(w), lap);

		if (d < 0 || (d == 0 && (word_state(w) == SLOT_FREE ||
					 word_state(w) == SLOT_WRITING))) {
			/* Nothing here yet: look here next time; and while we
			 * wait anyway, tell the others how far we got. */
			q->next_head = h;
			cursor_publish_head(q, h, 1);
			q->head_pub = h; /* told (or someone is further): quiet until we move */
			return -EAGAIN;
		}
		if (d > 0) { /* position h is done with: we lag (lap_jump) */
			h += lap_jump(q, d);
			CRASHPOINT(CURSOR_JUMP);
			continue;
		}
		switch (word_state(w)) {
		case SLOT_READY:
			if (xheld == h + 1) { /* ours already (a requeue lowered the head) */
				h++;
				break;
			}
			if (purge || (q->ttl_ns && expired(q, s, now))) {
				if (queue_remove_ready(q, h, w, purge ? REMOVE_PURGED : REMOVE_EXPIRED) == 0 &&
				    purge) {
					q->next_head = h + 1;
					return 0;
				}
				continue;
			}
			if (q->demote)
				prefetch_ready_message(q, s);
			/* The journal names the claim before the CAS: if the
			 * CAS fails, the slot is not ours and recovery sees the
			 * claim undone. */
			target = journal(q, JR_CLAIM, h, QC_DELIVERED, 1);
			CRASHPOINT(CLAIM_JOURNAL);
			if (q_sc(q)) {
				/* The only consumer: no one else claims or removes
				 * a READY message (hbusd grants no other consumer,
				 * refuses to purge, and drop-head queues take the
				 * CAS path). */
				atomic_store_explicit(slot_state(q, h), slot_word(lap, q->holder, held),
						      RELAXED);
			} else if (!slot_cas(q, h, &w, slot_word(lap, q->holder, held), ACQUIRE)) {
				continue;
			}
			CRASHPOINT(CLAIM_CAS);
			cursor_publish_head(q, h + 1, h != h0 ? 1 : CURSOR_PUBLISH_BUSY);
			q->next_head = h + 1;
			CRASHPOINT(CLAIM_CURSOR);
			count_done(q, QC_DELIVERED, target);
			CRASHPOINT(CLAIM_COUNT);
			*pos = h;
			return 0;
		case SLOT_SKIP:
			if (!slot_cas(q, h, &w, slot_word(lap + 1, 0, SLOT_FREE), RELEASE))
				continue;
			CRASHPOINT(SKIP_CLEAR);
			h++;
			break;
		default: /* claimed, or being removed: step past it */
			h++;
			break;
		}
	}
	count_plain(q, QC_CORRUPT, 1);
	return -EUCLEAN;
}

/*
 * The only consumer's burst: the READY run at its own cursor, claimed with
 * one journal entry (first slot, length, delivered before it) and one count,
 * the slots claimed in order by plain stores.  Recovery counts the claimed
 * prefix (slots no longer READY at their lap: no one else moves them while
 * we live).  claim_head costs a head read, a journal, a count and a cursor
 * look per message; this, per message, a load and a store (bursts of 32:
 * docs/BENCHMARKS.md, "Session 6").  Returns the run's length and *pos, or
 * 0 for the general walk: a requeue lowered the head, a TTL, a latency
 * queue (its claims ask for the message's lines first), nothing READY at
 * the cursor, or the slot xhold names there.
 */
static unsigned claim_run_sc(struct hbus_queue *q, unsigned n, uint64_t *pos)
{
	uint64_t h = q->next_head, xheld = q->xhold, base;
	unsigned held = held_state(q), k;

	if (q->ttl_ns || q->demote ||
	    atomic_load_explicit(&q->hdr->head_gen, RELAXED) != q->rewinds_seen)
		return 0;
	if (n > q->mask + 1)
		n = (unsigned)q->mask + 1;
	for (k = 0; k < n; k++)
		if (xheld == h + k + 1 || atomic_load_explicit(slot_state(q, h + k), ACQUIRE) !=
						  slot_word(pos_lap(q, h + k), 0, SLOT_READY))
			break;
	if (!k)
		return 0;
	base = journal_ex(q, JR_XCLAIMRUN, h, QC_DELIVERED, 0, k, 0);
	CRASHPOINT(XCRUN_JOURNAL);
	for (unsigned j = 0; j < k; j++) {
		atomic_store_explicit(slot_state(q, h + j),
				      slot_word(pos_lap(q, h + j), q->holder, held), RELAXED);
		CRASHPOINT(XCRUN_SLOT);
	}
	q->next_head = h + k;
	cursor_publish_head(q, h + k, CURSOR_PUBLISH_BUSY);
	CRASHPOINT(XCRUN_CURSOR);
	count_done(q, QC_DELIVERED, base + k);
	CRASHPOINT(XCRUN_COUNT);
	*pos = h;
	return k;
}

/* Up to n messages by runs (claim_run_sc) into m.  Not inlined: in the
 * shared consumers' burst it cost their loop 3% (code placement). */
static __attribute__((noinline)) unsigned consume_runs_sc(struct hbus_queue *q,
							   struct hbus_msg *m, unsigned n)
{
	unsigned got = 0, k;
	uint64_t pos;

	while (got < n && (k = claim_run_sc(q, n - got, &pos)) != 0)
		for (unsigned j = 0; j < k; j++)
			queue_fill_msg(q, slot_at(q, pos + j), pos + j, &m[got++]);
	return got;
}

int hbus_queue_consume_burst(hbus_queue *q, struct hbus_msg *m, unsigned n)
{
	unsigned got = 0;
	uint64_t pos, now = 0;
	int rc = 0;

	if (!q || (!m && n))
		return -EINVAL;
	queue_xret_flush(q);
	if (q->ack_mode == HBUS_ACK_MANUAL) {
		unsigned room = q->unacked < q->prefetch ? q->prefetch - q->unacked : 0;
		if (n > room)
			n = room;
	}
	if (q_sc(q)) /* the runs at its cursor; then the walk sees what stopped them */
		got = consume_runs_sc(q, m, n);
	while (got < n && (rc = claim_head(q, &pos, &now, 0)) == 0)
		queue_fill_msg(q, slot_at(q, pos), pos, &m[got++]);
	q->held += got;
	if (q->ack_mode == HBUS_ACK_MANUAL)
		q->unacked += got;
	return got || rc != -EUCLEAN ? (int)got : rc;
}

int hbus_queue_purge(hbus_queue *q, uint64_t max, uint64_t *purged)
{
	uint64_t n = 0, pos, now = 0;
	int rc = 0;

	if (!q || !purged)
		return -EINVAL;
	queue_xret_flush(q);
	while (n < max && (rc = claim_head(q, &pos, &now, 1)) == 0)
		n++;
	*purged = n;
	return rc == -EUCLEAN ? rc : 0;
}

/*
 * One message at this consumer's own cursor, the path a request/response
 * takes: 1 when claimed into *m, 0 when there is nothing there and we
 * already told the others how far we got (the common empty poll: two
 * loads), -1 when claim_head must look (a requeue lowered the head, the
 * slot is taken or ahead, a TTL, a failed CAS, the first empty poll after
 * progress).
 */
static int claim_own(struct hbus_queue *q, struct hbus_msg *m)
{
	uint64_t h = q->next_head, lap = pos_lap(q, h), target, w;
	unsigned held = held_state(q);
	int sc, xclaim;

	if (q->ttl_ns || atomic_load_explicit(&q->hdr->head_gen, RELAXED) != q->rewinds_seen)
		return -1;
	w = atomic_load_explicit(slot_state(q, h), ACQUIRE);
	if (w != slot_word(lap, 0, SLOT_READY))
		return (w == slot_word(lap, 0, SLOT_FREE) || word_norun(w) == word_norun(
			slot_word(lap, word_holder(w), SLOT_WRITING))) && h == q->head_pub ? 0 : -1;
	if (q->xhold == h + 1)
		return -1; /* ours already (a requeue lowered the head): claim_head steps over it */
	sc = q_sc(q);
	xclaim = sc && !q->xhold;
	if (q->demote)
		prefetch_ready_message(q, slot_at(q, h));
	target = journal(q, xclaim ? JR_XCLAIM : JR_CLAIM, h, QC_DELIVERED, 1);
	CRASHPOINT(CLAIM_JOURNAL);
	if (xclaim) {
		/* The only consumer, holding nothing through xhold: the claim
		 * is the record's word, the slot stays READY and its line is
		 * left to the producer (docs/QUEUE.md, "Exclusive handles"). */
		atomic_store_explicit(&q->rec->xhold, xhold_word(q, h, held), RELAXED);
		q->xhold = h + 1;
	} else if (sc) {
		atomic_store_explicit(slot_state(q, h), slot_word(lap, q->holder, held), RELAXED);
	} else if (!slot_cas(q, h, &w, slot_word(lap, q->holder, held), ACQUIRE)) {
		return -1;
	}
	CRASHPOINT(CLAIM_CAS);
	q->next_head = h + 1;
	CRASHPOINT(CLAIM_CURSOR);
	count_done(q, QC_DELIVERED, target);
	CRASHPOINT(CLAIM_COUNT);
	queue_fill_msg(q, slot_at(q, h), h, m);
	q->held++;
	if (q->ack_mode == HBUS_ACK_MANUAL)
		q->unacked++;
	return 1;
}

/*
 * The only consumer polling in a loop: after POLL_SPIN empty polls in a
 * row, each further one waits a moment (PAUSE).  While the slot is being
 * written, a poll that misses pulls its line back from the producer's core
 * and makes it pay for the line again.  With the claim off the slot line
 * (xhold), this host's 32-byte round trips fell 16% on average where its
 * two cpus are far apart (0.56 to 0.48 us; 0.40 in a third of the runs),
 * and stayed within 3% where they are near (docs/BENCHMARKS.md, "Session 5").
 * The first POLL_SPIN empty polls stay tight: a reply due within ~100 ns is
 * not delayed by a pause (~20 ns here).  Shared consumers do not pause:
 * their claim CAS writes the line anyway, and measured they only lost.
 */
#define POLL_SPIN 16u

static inline void empty_poll(struct hbus_queue *q)
{
	if (q_sc(q) && ++q->empty_polls > POLL_SPIN)
		hbus_cpu_relax();
}

int hbus_queue_consume(hbus_queue *q, struct hbus_msg *m)
{
	int rc;

	if (!q || !m)
		return -EINVAL;
	if (q->xret) /* the common case of a request/response loop: not laid out as unlikely */
		queue_xret_return(q);
	if (q->ack_mode != HBUS_ACK_MANUAL || q->unacked < q->prefetch) {
		rc = claim_own(q, m);
		if (rc > 0) {
			q->empty_polls = 0;
			return 0;
		}
		if (rc == 0) {
			empty_poll(q);
			return -EAGAIN;
		}
	}
	rc = hbus_queue_consume_burst(q, m, 1);
	if (rc == 1) {
		q->empty_polls = 0;
		return 0;
	}
	if (rc == 0 && q->ack_mode == HBUS_ACK_MANUAL && q->unacked >= q->prefetch)
		return -EBUSY;
	return rc < 0 ? rc : -EAGAIN;
}
