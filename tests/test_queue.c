/*
 * test_queue.c - queue ring semantics in one process: wrap-around, full
 * ring under each overflow policy, oversize refusal, ack modes, prefetch,
 * nack, TTL, zero-copy reservations, recovery, blocking wait, bad input.
 * Every test ends by checking that the counters add up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "testutil.h"

/* Accepted messages all end somewhere: consumed, dropped or still queued. */
static void assert_accounted(hbus_queue *q, uint64_t still_queued)
{
	struct hbus_queue_stats s;

	cr_assert_eq(hbus_queue_stats(q, &s), 0);
	cr_assert_eq(s.enqueued, s.acked + s.released + s.rejected + s.expired + s.dropped_head +
				 still_queued,
		     "enqueued %lu != acked %lu + released %lu + rejected %lu + expired %lu + "
		     "dropped_head %lu + queued %lu",
		     s.enqueued, s.acked, s.released, s.rejected, s.expired, s.dropped_head,
		     still_queued);
}

static uint32_t consume_one(hbus_queue *q, uint16_t *flags)
{
	struct hbus_msg m;
	struct tu_payload p;

	cr_assert_eq(hbus_queue_consume(q, &m), 0);
	cr_assert(tu_payload_ok(&m, &p), "checksum mismatch");
	if (flags)
		*flags = m.flags;
	cr_assert_eq(hbus_queue_ack(q, &m), 0);
	return p.seq;
}

Test(queue, wraps_around_many_laps)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	uint32_t i;

	for (i = 0; i < 1000; i++) {
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
		if (i % 3 == 2) { /* keep the ring partly full across laps */
			cr_assert_eq(consume_one(q, NULL), i - 2);
			cr_assert_eq(consume_one(q, NULL), i - 1);
			cr_assert_eq(consume_one(q, NULL), i);
		}
	}
	cr_assert_eq(consume_one(q, NULL), 999);
	struct hbus_msg m;
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

Test(queue, full_ring_rejects_and_counts)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	struct hbus_queue_stats s;
	uint32_t i;

	for (i = 0; i < 8; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	cr_assert_eq(tu_enqueue_id(q, 1, 8), -ENOBUFS);
	cr_assert_eq(tu_enqueue_id(q, 1, 9), -ENOBUFS);
	hbus_queue_stats(q, &s);
	cr_assert_eq(s.dropped_overflow, 2);
	cr_assert_eq(s.enqueued, 8);
	for (i = 0; i < 8; i++)
		cr_assert_eq(consume_one(q, NULL), i);
	cr_assert_eq(tu_enqueue_id(q, 1, 10), 0);
	cr_assert_eq(consume_one(q, NULL), 10);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

struct dead_log {
	uint32_t seqs[64];
	int reasons[64];
	unsigned n;
};

static void log_dead(void *ctx, hbus_queue *q, const struct hbus_msg *m, enum hbus_dead_reason why)
{
	struct dead_log *l = ctx;
	struct tu_payload p;

	(void)q;
	cr_assert(tu_payload_ok(m, &p));
	cr_assert_lt(l->n, 64u);
	l->seqs[l->n] = p.seq;
	l->reasons[l->n++] = why;
}

Test(queue, drop_head_discards_oldest_and_dead_letters_it)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_DROP_HEAD, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	struct dead_log dl = { .n = 0 };
	struct hbus_queue_stats s;
	uint32_t i;

	hbus_queue_set_dead_letter(q, log_dead, &dl);
	for (i = 0; i < 12; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	hbus_queue_stats(q, &s);
	cr_assert_eq(s.dropped_head, 4);
	cr_assert_eq(s.dropped_overflow, 0);
	cr_assert_eq(dl.n, 4);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(dl.seqs[i], i);
		cr_assert_eq(dl.reasons[i], HBUS_DEAD_MAXLEN);
	}
	for (i = 4; i < 12; i++)
		cr_assert_eq(consume_one(q, NULL), i);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

Test(queue, drop_head_cannot_drop_unacked)
{
	int fd = tu_queue_fd(4, 64, HBUS_OVERFLOW_DROP_HEAD, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_MANUAL, 0);
	struct hbus_msg m;
	uint32_t i;

	for (i = 0; i < 4; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	cr_assert_eq(hbus_queue_consume(q, &m), 0); /* holds slot 0, unacked */
	/* The slot at the tail is held by a consumer: nothing can be dropped. */
	cr_assert_eq(tu_enqueue_id(q, 1, 4), -ENOBUFS);
	cr_assert_eq(hbus_queue_ack(q, &m), 0);
	cr_assert_eq(tu_enqueue_id(q, 1, 5), 0);
	for (i = 1; i < 4; i++)
		cr_assert_eq(consume_one(q, NULL), i);
	cr_assert_eq(consume_one(q, NULL), 5);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

Test(queue, oversize_is_refused_never_cut)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	uint8_t big[65], meta[8] = { 0 };
	struct hbus_out o = { .body = big, .body_len = 65 };
	struct hbus_queue_stats s;
	struct hbus_msg m;

	memset(big, 0xab, sizeof(big));
	cr_assert_eq(hbus_queue_enqueue(q, &o), -EMSGSIZE);
	o.body_len = 60; o.meta = meta; o.meta_len = 8; /* 68 with meta */
	cr_assert_eq(hbus_queue_enqueue(q, &o), -EMSGSIZE);
	o.body_len = 56;
	cr_assert_eq(hbus_queue_enqueue(q, &o), 0);
	o.meta_len = 0; o.body_len = 64;
	cr_assert_eq(hbus_queue_enqueue(q, &o), 0);
	hbus_queue_stats(q, &s);
	cr_assert_eq(s.dropped_oversize, 2);
	cr_assert_eq(hbus_queue_consume(q, &m), 0);
	cr_assert_eq(m.meta_len, 8);
	cr_assert_eq(m.body_len, 56);
	hbus_queue_ack(q, &m);
	cr_assert_eq(hbus_queue_consume(q, &m), 0);
	cr_assert_eq(m.body_len, 64);
	cr_assert_eq(fnv1a32(m.body, 64), fnv1a32(big, 64));
	hbus_queue_ack(q, &m);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

Test(queue, manual_ack_prefetch_bounds_unacked)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_MANUAL, 3);
	struct hbus_msg m[4];
	uint32_t i;

	for (i = 0; i < 6; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	cr_assert_eq(hbus_queue_consume_burst(q, m, 4), 3);
	cr_assert_eq(hbus_queue_consume(q, &m[3]), -EBUSY);
	cr_assert_eq(hbus_queue_ack(q, &m[1]), 0);
	cr_assert_eq(hbus_queue_ack(q, &m[1]), -ESTALE, "double ack must be refused");
	cr_assert_eq(hbus_queue_consume(q, &m[3]), 0);
	cr_assert_eq(hbus_queue_ack(q, &m[0]), 0);
	cr_assert_eq(hbus_queue_ack(q, &m[2]), 0);
	cr_assert_eq(hbus_queue_ack(q, &m[3]), 0);
	cr_assert_eq(consume_one(q, NULL), 4);
	cr_assert_eq(consume_one(q, NULL), 5);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

Test(queue, nack_requeue_redelivers_flagged_and_reject_dead_letters)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_MANUAL, 0);
	struct dead_log dl = { .n = 0 };
	struct hbus_queue_stats s;
	struct hbus_msg m;
	struct tu_payload p;
	uint16_t flags;

	hbus_queue_set_dead_letter(q, log_dead, &dl);
	cr_assert_eq(tu_enqueue_id(q, 1, 0), 0);
	cr_assert_eq(tu_enqueue_id(q, 1, 1), 0);
	cr_assert_eq(hbus_queue_consume(q, &m), 0);
	cr_assert(tu_payload_ok(&m, &p));
	cr_assert_eq(p.seq, 0);
	cr_assert_eq(m.flags & HBUS_MSG_REDELIVERED, 0);
	cr_assert_eq(hbus_queue_nack(q, &m, 1), 0);
	cr_assert_eq(hbus_queue_ack(q, &m), -ESTALE);
	/* Back at its own position: delivered again first, flagged. */
	cr_assert_eq(consume_one(q, &flags), 0);
	cr_assert_neq(flags & HBUS_MSG_REDELIVERED, 0);
	cr_assert_eq(consume_one(q, &flags), 1);
	cr_assert_eq(flags & HBUS_MSG_REDELIVERED, 0);

	cr_assert_eq(tu_enqueue_id(q, 1, 2), 0);
	cr_assert_eq(hbus_queue_consume(q, &m), 0);
	cr_assert_eq(hbus_queue_nack(q, &m, 0), 0);
	cr_assert_eq(dl.n, 1);
	cr_assert_eq(dl.seqs[0], 2);
	cr_assert_eq(dl.reasons[0], HBUS_DEAD_REJECTED);
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN);
	hbus_queue_stats(q, &s);
	cr_assert_eq(s.requeued, 1);
	cr_assert_eq(s.rejected, 1);
	cr_assert_eq(s.delivered, 4);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

/* A requeue needs no free slot: on a full ring it goes back to its own
 * position, delivered again before the rest, flagged. */
Test(queue, requeue_on_a_full_ring_goes_back_to_its_position)
{
	int fd = tu_queue_fd(4, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_MANUAL, 0);
	struct hbus_msg m[2];
	uint16_t flags;
	uint32_t i;

	for (i = 0; i < 4; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	cr_assert_eq(hbus_queue_consume_burst(q, m, 2), 2);
	cr_assert_eq(tu_enqueue_id(q, 1, 4), -ENOBUFS);
	cr_assert_eq(hbus_queue_nack(q, &m[1], 1), 0);
	cr_assert_eq(hbus_queue_nack(q, &m[0], 1), 0);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(consume_one(q, &flags), i);
		cr_assert_eq(!!(flags & HBUS_MSG_REDELIVERED), i < 2);
	}
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

/* A TTL far beyond scheduling noise (the 2M-message stress runs beside
 * this): wait until the first two are surely past it, and take the third
 * well within its own. */
Test(queue, ttl_expires_into_dead_letter)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 1000);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	struct dead_log dl = { .n = 0 };
	struct hbus_queue_stats s;
	uint64_t t0;

	hbus_queue_set_dead_letter(q, log_dead, &dl);
	cr_assert_eq(tu_enqueue_id(q, 1, 0), 0);
	cr_assert_eq(tu_enqueue_id(q, 1, 1), 0);
	t0 = tu_now_ms();
	while (tu_now_ms() - t0 < 1100)
		usleep(20000);
	cr_assert_eq(tu_enqueue_id(q, 1, 2), 0);
	cr_assert_eq(consume_one(q, NULL), 2);
	hbus_queue_stats(q, &s);
	cr_assert_eq(s.expired, 2);
	cr_assert_eq(dl.n, 2);
	cr_assert_eq(dl.reasons[0], HBUS_DEAD_EXPIRED);
	cr_assert_eq(dl.seqs[1], 1);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

Test(queue, zero_copy_reserve_commit_abort)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	struct hbus_reservation r1, r2, r3;
	struct hbus_queue_stats s;
	struct tu_payload p;

	cr_assert_eq(hbus_queue_reserve(q, &r1), 0);
	cr_assert_eq(hbus_queue_reserve(q, &r2), 0);
	cr_assert_eq(hbus_queue_reserve(q, &r3), 0);
	cr_assert_eq(r1.cap, 64);
	/* Commit out of order: the consumer still sees position order. */
	tu_payload_make(&p, 1, 3);
	memcpy(r3.data, &p, sizeof(p));
	cr_assert_eq(hbus_queue_commit(q, &r3, 0, sizeof(p), 0, 0), 0);
	struct hbus_msg m;
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN, "r1 still being written");
	cr_assert_eq(hbus_queue_abort(q, &r1), 0);
	tu_payload_make(&p, 1, 2);
	memcpy(r2.data, &p, sizeof(p));
	cr_assert_eq(hbus_queue_commit(q, &r2, 0, sizeof(p), 0, 0), 0);
	cr_assert_eq(hbus_queue_commit(q, &r2, 0, sizeof(p), 0, 0), -ESTALE);
	cr_assert_eq(consume_one(q, NULL), 2);
	cr_assert_eq(consume_one(q, NULL), 3);
	hbus_queue_stats(q, &s);
	cr_assert_eq(s.aborted, 1);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}

Test(queue, recover_dead_owner_requeues_claims_and_skips_writes)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *dead = tu_open(fd, 7, HBUS_ACK_MANUAL, 0);
	hbus_queue *live = tu_open(fd, 8, HBUS_ACK_MANUAL, 0);
	hbus_queue *dead_auto = tu_open(fd, 9, HBUS_ACK_AUTO, 0);
	struct hbus_msg m[3];
	struct hbus_reservation r;
	struct hbus_recovery rec;
	uint32_t seen = 0, i;
	uint16_t flags;

	for (i = 0; i < 4; i++)
		cr_assert_eq(tu_enqueue_id(live, 1, i), 0);
	cr_assert_eq(hbus_queue_consume_burst(dead, m, 2), 2);    /* 0, 1 */
	cr_assert_eq(hbus_queue_consume(dead_auto, &m[2]), 0);    /* 2: delivered */
	cr_assert_eq(hbus_queue_reserve(dead, &r), 0);            /* half-written */
	cr_assert_eq(tu_enqueue_id(live, 1, 5), 0);
	cr_assert_eq(hbus_queue_recover_owner(live, 7, &rec), 0);
	cr_assert_eq(rec.requeued, 2);
	cr_assert_eq(rec.skipped, 1);
	cr_assert_eq(hbus_queue_recover_owner(live, 9, &rec), 0);
	cr_assert_eq(rec.released, 1);
	/* 3, 5, then the redelivered 0 and 1; the skip does not stall. */
	for (i = 0; i < 4; i++) {
		uint32_t seq = consume_one(live, &flags);
		seen |= 1u << seq;
		cr_assert_eq(!!(flags & HBUS_MSG_REDELIVERED), seq < 2, "seq %u", seq);
	}
	cr_assert_eq(seen, 0x2bu);
	cr_assert_eq(hbus_queue_ack(dead, &m[0]), -ESTALE, "recovered tags are gone");
	assert_accounted(live, 0);
	hbus_queue_close(dead);
	hbus_queue_close(dead_auto);
	hbus_queue_close(live);
	close(fd);
}

static void *late_producer(void *arg)
{
	usleep(50000);
	tu_enqueue_id(arg, 1, 42);
	return NULL;
}

Test(queue, blocking_wait_sleeps_and_wakes)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *c = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *p = tu_open(fd, 2, HBUS_ACK_AUTO, 0);
	struct hbus_msg m;
	struct tu_payload pl;
	pthread_t th;

	cr_assert_eq(hbus_queue_consume_wait(c, &m, 20), -ETIMEDOUT);
	pthread_create(&th, NULL, late_producer, p);
	cr_assert_eq(hbus_queue_consume_wait(c, &m, 5000), 0);
	cr_assert(tu_payload_ok(&m, &pl));
	cr_assert_eq(pl.seq, 42);
	hbus_queue_ack(c, &m);
	pthread_join(th, NULL);
	assert_accounted(c, 0);
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

Test(queue, bad_arguments_are_errors_not_crashes)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	struct hbus_queue_opts o = { .owner = 0 };
	struct hbus_queue_config cfg = { .capacity = 6, .slot_size = 64, .numa_node = -1 };
	struct hbus_out out = { .body = NULL, .body_len = 5 };
	struct hbus_msg m = { .pos = 12345 };
	hbus_queue *q = NULL;
	int nfd;

	cr_assert_eq(hbus_queue_open_fd(fd, &o, &q), -EINVAL);
	o.owner = HBUS_OWNER_MAX + 1;
	cr_assert_eq(hbus_queue_open_fd(fd, &o, &q), -EINVAL);
	cr_assert_eq(hbus_queue_open_fd(-1, &o, &q), -EINVAL);
	cr_assert_eq(hbus_queue_create("/dev/shm/hbus-test-bad", "x", &cfg, &nfd), -EINVAL);
	cfg.capacity = 8; cfg.slot_size = 1;
	cr_assert_eq(hbus_queue_create("/dev/shm/hbus-test-bad", "x", &cfg, &nfd), -EINVAL);
	cfg.slot_size = 64; cfg.numa_node = 4096;
	cr_assert_eq(hbus_queue_create("/dev/shm/hbus-test-bad", "x", &cfg, &nfd), -EINVAL);
	cr_assert_eq(access("/dev/shm/hbus-test-bad", F_OK), -1, "failed create leaves no file");
	q = tu_open(fd, 1, HBUS_ACK_MANUAL, 0);
	cr_assert_eq(hbus_queue_enqueue(q, &out), -EINVAL);
	cr_assert_eq(hbus_queue_enqueue(NULL, &out), -EINVAL);
	cr_assert_eq(hbus_queue_ack(q, &m), -ESTALE);
	cr_assert_eq(hbus_queue_nack(q, &m, 1), -ESTALE);
	cr_assert_eq(hbus_queue_ack(q, NULL), -EINVAL);
	cr_assert_eq(hbus_queue_consume(q, NULL), -EINVAL);
	cr_assert_eq(hbus_queue_recover_owner(q, 0, NULL), -EINVAL);
	cr_assert_eq(hbus_queue_close(NULL), -EINVAL);
	assert_accounted(q, 0);
	hbus_queue_close(q);
	close(fd);
}
