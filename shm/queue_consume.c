/*
 * queue_consume.c - the consumer side of the ring: claim READY(lap) ->
 * CLAIMED(lap, me) by CAS, help the head past it, hand out a zero-copy
 * view, and CAS CLAIMED -> FREE(lap + 1) on ack; nack, TTL expiry, and the
 * futex-based blocking wait.
 */
#include "queue_internal.h"
#include "futex.h"

#include <errno.h>
#include <string.h>

/* Free a slot this handle holds in state `held` at pos: CAS to FREE(lap+1). */
static inline int release_slot(struct hbus_queue *q, uint64_t pos, unsigned held)
{
	struct hbus_slot *s = slot_at(q, pos);
	uint64_t lap = pos_lap(q, pos);
	uint64_t w = slot_word(lap, q->owner, held);

	if (!atomic_compare_exchange_strong_explicit(&s->state, &w,
			slot_word(lap + 1, 0, SLOT_FREE), RELEASE, RELAXED))
		return -ESTALE;
	return 0;
}

static inline unsigned held_state(const struct hbus_queue *q)
{
	return q->ack_mode == HBUS_ACK_MANUAL ? SLOT_CLAIMED : SLOT_CLAIMED_AUTO;
}

/* Hand a claimed message to the dead-letter hook and free its slot. */
static void dead_letter(struct hbus_queue *q, uint64_t pos, enum hbus_dead_reason why)
{
	struct hbus_msg m;

	if (q->dead_fn) {
		queue_fill_msg(q, slot_at(q, pos), pos, &m);
		q->dead_fn(q->dead_ctx, q, &m, why);
		counter_add(&q->hdr->cons.dead_lettered, 1);
	}
	release_slot(q, pos, held_state(q));
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

/* Claim the READY slot at the head.  0 and *pos, -EAGAIN when empty, or
 * -EUCLEAN when the walk found no end (a corrupt ring). */
static int claim_head(struct hbus_queue *q, uint64_t *pos)
{
	_Atomic uint64_t *head = &q->hdr->head;
	uint64_t h = atomic_load_explicit(head, RELAXED);
	unsigned held = held_state(q);
	uint64_t steps = walk_limit(q);

	while (steps--) {
		struct hbus_slot *s = slot_at(q, h);
		uint64_t lap = pos_lap(q, h);
		uint64_t w = atomic_load_explicit(&s->state, ACQUIRE);
		int64_t d = lap_diff(word_lap(w), lap);

		if (d < 0)
			return -EAGAIN; /* previous lap still held: nothing here yet */
		if (d == 0) {
			switch (word_state(w)) {
			case SLOT_FREE:
			case SLOT_WRITING:
				return -EAGAIN;
			case SLOT_READY:
				if (q->demote)
					prefetch_ready_message(q, s);
				if (atomic_compare_exchange_strong_explicit(&s->state, &w,
						slot_word(lap, q->owner, held), ACQUIRE, RELAXED)) {
					cursor_help(head, h);
					*pos = h;
					return 0;
				}
				continue;
			case SLOT_SKIP:
				if (!atomic_compare_exchange_strong_explicit(&s->state, &w,
						slot_word(lap + 1, 0, SLOT_FREE), RELEASE, RELAXED))
					continue;
				break;
			default: /* claimed by another consumer */
				break;
			}
			cursor_help(head, h);
		} else {
			/* Position h is done with: the head lags (lap_jump). */
			cursor_advance(head, h, h + lap_jump(q, d));
		}
		h = atomic_load_explicit(head, RELAXED);
	}
	return -EUCLEAN;
}

int hbus_queue_consume_burst(hbus_queue *q, struct hbus_msg *m, unsigned n)
{
	unsigned got = 0, delivered = 0, expired = 0;
	uint64_t pos, now = 0;
	int rc = 0;

	if (!q || (!m && n))
		return -EINVAL;
	if (q->ack_mode == HBUS_ACK_MANUAL) {
		unsigned room = q->unacked < q->prefetch ? q->prefetch - q->unacked : 0;
		if (n > room)
			n = room;
	}
	while (got < n && (rc = claim_head(q, &pos)) == 0) {
		struct hbus_slot *s = slot_at(q, pos);

		if (q->ttl_ns) {
			if (!now)
				now = hbus_now_ns();
			if (now - s->enq_ts_ns > q->ttl_ns && now > s->enq_ts_ns) {
				dead_letter(q, pos, HBUS_DEAD_EXPIRED);
				expired++;
				continue;
			}
		}
		queue_fill_msg(q, s, pos, &m[got++]);
		delivered++;
	}
	if (delivered)
		counter_add(&q->hdr->cons.delivered, delivered);
	if (expired)
		counter_add(&q->hdr->cons.expired, expired);
	if (q->ack_mode == HBUS_ACK_MANUAL)
		q->unacked += got;
	return got || rc != -EUCLEAN ? (int)got : rc;
}

int hbus_queue_consume(hbus_queue *q, struct hbus_msg *m)
{
	int rc;

	if (!q || !m)
		return -EINVAL;
	rc = hbus_queue_consume_burst(q, m, 1);
	if (rc == 1)
		return 0;
	if (rc == 0 && q->ack_mode == HBUS_ACK_MANUAL && q->unacked >= q->prefetch)
		return -EBUSY;
	return rc < 0 ? rc : -EAGAIN;
}

/* Could a consumer make progress at the head right now? */
static int head_ready(const struct hbus_queue *q)
{
	uint64_t h = atomic_load_explicit(&q->hdr->head, RELAXED);
	uint64_t w = atomic_load_explicit(&slot_at(q, h)->state, ACQUIRE);
	int64_t d = lap_diff(word_lap(w), pos_lap(q, h));

	if (d < 0)
		return 0;
	return d > 0 || (word_state(w) != SLOT_FREE && word_state(w) != SLOT_WRITING);
}

int hbus_queue_wait(hbus_queue *q, int timeout_ms)
{
	struct hbus_queue_hdr *h;
	uint64_t deadline = 0;
	int i, rc = 0;

	if (!q)
		return -EINVAL;
	h = q->hdr;
	/* Spin first: a message due within a few microseconds is cheaper to
	 * catch awake than through a futex round trip. */
	for (i = 0; i < 2048; i++) {
		if (head_ready(q))
			return 0;
		__builtin_ia32_pause();
	}
	if (timeout_ms >= 0)
		deadline = hbus_now_ns() + (uint64_t)timeout_ms * 1000000u;
	atomic_fetch_add_explicit(&h->waiters, 1, SEQ_CST);
	for (;;) {
		uint32_t seq = atomic_load_explicit(&h->futex_seq, SEQ_CST);
		int64_t left = -1;

		if (head_ready(q))
			break;
		if (timeout_ms >= 0) {
			uint64_t now = hbus_now_ns();
			if (now >= deadline) {
				rc = -ETIMEDOUT;
				break;
			}
			left = (int64_t)(deadline - now);
		}
		hbus_futex_wait(&h->futex_seq, seq, left);
	}
	atomic_fetch_sub_explicit(&h->waiters, 1, SEQ_CST);
	return rc;
}

int hbus_queue_consume_wait(hbus_queue *q, struct hbus_msg *m, int timeout_ms)
{
	uint64_t deadline = timeout_ms >= 0 ? hbus_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
	int rc;

	for (;;) {
		rc = hbus_queue_consume(q, m);
		if (rc != -EAGAIN)
			return rc;
		if (timeout_ms >= 0) {
			uint64_t now = hbus_now_ns();
			if (now >= deadline)
				return -ETIMEDOUT;
			timeout_ms = (int)((deadline - now + 999999) / 1000000);
		}
		rc = hbus_queue_wait(q, timeout_ms);
		if (rc)
			return rc;
	}
}

int hbus_queue_ack_burst(hbus_queue *q, const struct hbus_msg *m, unsigned n)
{
	unsigned i, done = 0;
	unsigned held;
	int rc = 0;

	if (!q || (!m && n))
		return -EINVAL;
	held = held_state(q);
	for (i = 0; i < n; i++) {
		if (release_slot(q, m[i].pos, held) == 0)
			done++;
		else
			rc = -ESTALE;
	}
	if (held == SLOT_CLAIMED) {
		q->unacked -= done < q->unacked ? done : q->unacked;
		counter_add(&q->hdr->cons.acked, done);
	} else if (done) {
		counter_add(&q->hdr->cons.released, done);
	}
	return rc;
}

int hbus_queue_ack(hbus_queue *q, const struct hbus_msg *m)
{
	if (!m)
		return -EINVAL;
	return hbus_queue_ack_burst(q, m, 1);
}

int hbus_queue_nack(hbus_queue *q, const struct hbus_msg *m, int requeue)
{
	uint64_t held;
	int rc;

	if (!q || !m)
		return -EINVAL;
	held = slot_word(pos_lap(q, m->pos), q->owner, held_state(q));
	if (atomic_load_explicit(&slot_at(q, m->pos)->state, ACQUIRE) != held)
		return -ESTALE;
	if (requeue) {
		rc = queue_republish(q, m->pos, held);
		if (rc)
			return rc;
	} else {
		dead_letter(q, m->pos, HBUS_DEAD_REJECTED);
		counter_add(&q->hdr->cons.rejected, 1);
	}
	if (q->ack_mode == HBUS_ACK_MANUAL && q->unacked)
		q->unacked--;
	return 0;
}
