/*
 * queue_wait.c - a consumer's blocking wait: spin a little, then sleep on
 * the queue's futex word with its record's bit set in sleepers, so that
 * producers wake only when someone sleeps (queue_internal.h,
 * wake_if_waiting); and consume with a timeout on top of it.
 */
#include "queue_internal.h"
#include "futex.h"

#include <errno.h>

/* Could this consumer make progress right now?  At its own cursor: the
 * shared head lags (a spurious wake-up after a requeue at most). */
static int head_ready(const struct hbus_queue *q)
{
	uint64_t h = pos_max(q->next_head, atomic_load_explicit(&q->hdr->head, RELAXED));
	uint64_t w = atomic_load_explicit(slot_state(q, h), ACQUIRE);
	int64_t d = lap_diff(word_lap(w), pos_lap(q, h));

	if (d < 0)
		return 0;
	return d > 0 || (word_state(w) != SLOT_FREE && word_state(w) != SLOT_WRITING);
}

int hbus_queue_wait(hbus_queue *q, int timeout_ms)
{
	struct hbus_queue_hdr *h;
	_Atomic uint64_t *word;
	uint64_t deadline = 0, bit;
	int i, rc = 0;

	if (!q)
		return -EINVAL;
	queue_xret_flush(q);
	h = q->hdr;
	/* Spin first: a message due within a few microseconds is cheaper to
	 * catch awake than through a futex round trip. */
	for (i = 0; i < 2048; i++) {
		if (head_ready(q))
			return 0;
		hbus_cpu_relax();
	}
	if (timeout_ms >= 0)
		deadline = hbus_now_ns() + (uint64_t)timeout_ms * 1000000u;
	/* Our record's bit: seq_cst, so either a producer's later sleepers
	 * load sees it, or our head_ready below sees its READY. */
	word = &h->sleepers[(q->holder - 1) / 64];
	bit = UINT64_C(1) << ((q->holder - 1) % 64);
	atomic_fetch_or_explicit(word, bit, SEQ_CST);
	CRASHPOINT(WAIT_SLEEPER);
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
	atomic_fetch_and_explicit(word, ~bit, SEQ_CST);
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
