/*
 * test_queue_run.c - bursts claimed as runs (one CAS per run of up to
 * SLOT_RUN_MAX slots), and recovery of a producer that died inside one.
 *
 * The dead-producer cases are built white-box: the slot words a producer
 * leaves when it dies right after the run's CAS (or halfway through
 * publishing it) are written directly, since no test can time a SIGKILL
 * into a window of a few instructions.  The live paths are real, and
 * tests/test_queue_mp.c kills bursting producers at random.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "queue_internal.h"
#include "testutil.h"

static struct tu_payload pay[64];
static struct hbus_out out[64];

static void make_burst(uint32_t producer, uint32_t first, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		tu_payload_make(&pay[i], producer, first + i);
		out[i] = (struct hbus_out){ .body = &pay[i], .body_len = sizeof(pay[i]) };
	}
}

/* Consume everything there is; the sequence numbers must run from *next. */
static unsigned drain_in_order(hbus_queue *q, uint32_t *next)
{
	struct hbus_msg m[64];
	struct tu_payload p;
	unsigned got = 0;
	int n;

	while ((n = hbus_queue_consume_burst(q, m, 64)) > 0) {
		for (int i = 0; i < n; i++) {
			cr_assert(tu_payload_ok(&m[i], &p), "checksum mismatch");
			cr_assert_eq(p.seq, *next, "got %u, want %u", p.seq, *next);
			(*next)++;
		}
		cr_assert_eq(hbus_queue_ack_burst(q, m, (unsigned)n), 0);
		got += (unsigned)n;
	}
	return got;
}

static void assert_stats(hbus_queue *q, uint64_t enq, uint64_t aborted, uint64_t released)
{
	struct hbus_queue_stats s;

	cr_assert_eq(hbus_queue_stats(q, &s), 0);
	cr_assert_eq(s.enqueued, enq, "enqueued %lu, want %lu", s.enqueued, enq);
	cr_assert_eq(s.aborted, aborted, "aborted %lu, want %lu", s.aborted, aborted);
	cr_assert_eq(s.released, released, "released %lu, want %lu", s.released, released);
}

TestSuite(queue_run, .timeout = 60);

Test(queue_run, bursts_wrap_many_laps_in_order)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *c = tu_open(fd, 2, HBUS_ACK_AUTO, 0);
	uint32_t sent = 0, next = 0;
	unsigned round;

	/* Bursts of 1..40 into 16 slots: runs end at the ring's end and at
	 * the full mark, and resume on the next lap. */
	for (round = 0; round < 2000; round++) {
		unsigned n = 1 + (round * 7) % 40;
		int rc;

		make_burst(1, sent, n);
		rc = hbus_queue_enqueue_burst(p, out, n);
		cr_assert(rc > 0 && (unsigned)rc <= n && rc <= 16, "round %u: rc %d", round, rc);
		sent += (uint32_t)rc;
		drain_in_order(c, &next);
	}
	cr_assert_eq(next, sent);
	assert_stats(c, sent, 0, sent);
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

Test(queue_run, full_ring_takes_what_fits_and_counts_the_rest)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	struct hbus_queue_stats s;
	uint32_t next = 0;

	make_burst(1, 0, 10);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 10), 10);
	make_burst(1, 10, 10);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 10), 6, "only 6 slots left");
	cr_assert_eq(hbus_queue_enqueue_burst(q, out + 6, 4), -ENOBUFS);
	cr_assert_eq(hbus_queue_stats(q, &s), 0);
	cr_assert_eq(s.dropped_overflow, 2, "the message that found the ring full, each call");
	/* attempts = enqueued + dropped_overflow + dropped_oversize, where a
	 * burst attempts what it took plus the one message that stopped it:
	 * 10, then 6 + 1, then 1 (docs/QUEUE.md, "Accounting"). */
	cr_assert_eq(10 + (6 + 1) + 1, s.enqueued + s.dropped_overflow + s.dropped_oversize);
	cr_assert_eq(drain_in_order(q, &next), 16);
	hbus_queue_close(q);
	close(fd);
}

Test(queue_run, burst_stops_at_a_bad_message_after_the_good_ones)
{
	int fd = tu_queue_fd(64, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	static uint8_t big[65];
	struct hbus_queue_stats s;
	uint32_t next = 0;

	make_burst(1, 0, 5);
	out[2] = (struct hbus_out){ .body = big, .body_len = sizeof(big) };
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 5), 2);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out + 2, 3), -EMSGSIZE);
	out[2] = (struct hbus_out){ .body = NULL, .body_len = 4 };
	cr_assert_eq(hbus_queue_enqueue_burst(q, out + 2, 3), -EINVAL);
	cr_assert_eq(hbus_queue_stats(q, &s), 0);
	cr_assert_eq(s.dropped_oversize, 2);
	cr_assert_eq(s.enqueued, 2);
	cr_assert_eq(drain_in_order(q, &next), 2);
	hbus_queue_close(q);
	close(fd);
}

/*
 * Producer 60 died right after claiming a run of 4 at positions 0..3 (its
 * CAS on slot 0 went through; slots 1..3 are FREE until published) and, in
 * the second case, before stepping the tail past the run.
 */
static void dead_unmarked_run(int tail_moved)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *dead = tu_open(fd, 60, HBUS_ACK_AUTO, 0);
	hbus_queue *q = tu_open(fd, 2, HBUS_ACK_AUTO, 0);
	struct hbus_recovery rec;
	struct hbus_msg m;
	uint32_t next = 100;

	atomic_store(&slot_at(q, 0)->state, slot_word_run(0, dead->holder, SLOT_WRITING, 4));
	if (tail_moved)
		atomic_store(&q->hdr->tail, 4);
	/* A live producer goes past the whole run, never into it. */
	make_burst(1, 100, 3);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 3), 3);
	cr_assert_eq(q->next_tail, 7, "past the whole run, never into it");
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN, "blocked behind the dead run");
	cr_assert_eq(hbus_queue_recover_owner(q, 60, &rec), 0);
	cr_assert_eq(rec.skipped, 4, "the run's first slot and its three unpublished slots");
	cr_assert_eq(drain_in_order(q, &next), 3);
	assert_stats(q, 3, 4, 3);
	/* The ring goes on: next laps over the skipped slots. */
	for (unsigned i = 0; i < 5; i++) {
		make_burst(1, next, 16);
		cr_assert_eq(hbus_queue_enqueue_burst(q, out, 16), 16);
		cr_assert_eq(drain_in_order(q, &next), 16);
	}
	hbus_queue_close(q);
	close(fd);
}

Test(queue_run, dead_producer_unmarked_run_is_skipped)
{
	dead_unmarked_run(1);
}

Test(queue_run, dead_producer_run_before_the_tail_moved_is_skipped)
{
	dead_unmarked_run(0);
}

/* Producer 60 died halfway through publishing a run of 4 (published last
 * to first): slots 3 and 2 READY, slot 1 still FREE, the run's first slot
 * still WRITING.  No consumer saw any of it: the whole run is skipped, so
 * what a dead producer leaves is a prefix of its stream, whole runs. */
Test(queue_run, dead_producer_partly_published_run_is_skipped_whole)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *dead = tu_open(fd, 60, HBUS_ACK_AUTO, 0);
	hbus_queue *q = tu_open(fd, 2, HBUS_ACK_AUTO, 0);
	struct hbus_recovery rec;
	struct hbus_msg m;
	uint32_t next = 4;

	make_burst(60, 0, 4);
	cr_assert_eq(hbus_queue_enqueue_burst(dead, out, 4), 4);
	atomic_store(&slot_at(q, 0)->state, slot_word_run(0, dead->holder, SLOT_WRITING, 4));
	atomic_store(&slot_at(q, 1)->state, slot_word(0, 0, SLOT_FREE));
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN, "consumers wait at the run's first slot");
	cr_assert_eq(hbus_queue_recover_owner(q, 60, &rec), 0);
	cr_assert_eq(rec.skipped, 4);
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN, "nothing of the run is delivered");
	make_burst(1, 4, 3);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 3), 3);
	cr_assert_eq(drain_in_order(q, &next), 3);
	hbus_queue_close(dead);
	hbus_queue_close(q);
	close(fd);
}

/* A consumer that stops gives back its own claims, and only those: not
 * another handle's of the same process, not its reservation. */
Test(queue_run, release_held_gives_back_only_this_handles_claims)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *live = tu_open(fd, 7, HBUS_ACK_MANUAL, 0);
	hbus_queue *twin = tu_open(fd, 7, HBUS_ACK_MANUAL, 0); /* same process, own record */
	hbus_queue *other = tu_open(fd, 8, HBUS_ACK_AUTO, 0);
	struct hbus_reservation r;
	struct hbus_recovery rec;
	struct hbus_msg m[2], t;
	struct tu_payload p;

	make_burst(1, 0, 3);
	cr_assert_eq(hbus_queue_enqueue_burst(other, out, 3), 3);
	cr_assert_eq(hbus_queue_consume_burst(live, m, 2), 2);
	cr_assert_eq(hbus_queue_consume(twin, &t), 0);
	cr_assert_eq(hbus_queue_reserve(live, &r), 0);
	cr_assert_eq(hbus_queue_release_held(live, &rec), 0);
	cr_assert_eq(rec.requeued, 2);
	cr_assert_eq(rec.released, 0);
	cr_assert_eq(hbus_queue_ack(live, &m[0]), -ESTALE, "given back: the tag is gone");
	cr_assert_eq(hbus_queue_ack(twin, &t), 0, "the twin's claim is still the twin's");
	/* It finishes its write (position 3); the requeued 0 and 1 are back
	 * at their own positions, before it. */
	tu_payload_make(&p, 1, 3);
	memcpy(r.data, &p, sizeof(p));
	cr_assert_eq(hbus_queue_commit(live, &r, 0, sizeof(p), 0, 0), 0);
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(hbus_queue_consume(other, &m[0]), 0);
		cr_assert(tu_payload_ok(&m[0], &p));
		cr_assert_eq(p.seq, i < 2 ? i : 3, "the requeued 0 and 1, then 3");
		cr_assert_eq(!!(m[0].flags & HBUS_MSG_REDELIVERED), i < 2);
		cr_assert_eq(hbus_queue_ack(other, &m[0]), 0);
	}
	cr_assert_eq(hbus_queue_consume(other, m), -EAGAIN);
	hbus_queue_close(live);
	hbus_queue_close(twin);
	hbus_queue_close(other);
	close(fd);
}

Test(queue_run, recovery_bad_arguments)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 7, HBUS_ACK_AUTO, 0);

	cr_assert_eq(hbus_queue_release_held(NULL, NULL), -EINVAL);
	cr_assert_eq(hbus_queue_recover_owner(NULL, 3, NULL), -EINVAL);
	cr_assert_eq(hbus_queue_recover_owner(q, 0, NULL), -EINVAL);
	cr_assert_eq(hbus_queue_recover_owner(q, 7, NULL), -EINVAL, "not its own handle's id");
	cr_assert_eq(hbus_queue_recover_owner(q, HBUS_OWNER_MAX + 1, NULL), -EINVAL);
	hbus_queue_close(q);
	close(fd);
}

/* A latency queue (HBUS_QUEUE_F_LATENCY) demotes published multi-line
 * slots: a hint that must change nothing of what is delivered. */
Test(queue_run, latency_queue_delivers_multi_line_messages_whole)
{
	struct hbus_queue_config cfg = { .capacity = 64, .slot_size = 1344,
					 .overflow = HBUS_OVERFLOW_REJECT, .numa_node = -1,
					 .flags = HBUS_QUEUE_F_LATENCY }, got;
	static uint8_t body[20][1300];
	struct hbus_out o[20];
	struct hbus_msg m[20];
	int fd = tu_queue_fd_cfg(&cfg);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	unsigned i, round;

	cr_assert_eq(hbus_queue_config_get(q, &got), 0);
	cr_assert_eq(got.flags, HBUS_QUEUE_F_LATENCY);
	for (round = 0; round < 10; round++) {
		unsigned n = round % 2 ? 20 : 1; /* the one-message path, then runs */

		for (i = 0; i < n; i++) {
			memset(body[i], (int)(round * 20 + i), sizeof(body[i]));
			o[i] = (struct hbus_out){ .body = body[i], .body_len = 64 + 61 * i };
		}
		cr_assert_eq(hbus_queue_enqueue_burst(q, o, n), (int)n);
		cr_assert_eq(hbus_queue_consume_burst(q, m, 20), (int)n);
		for (i = 0; i < n; i++) {
			cr_assert_eq(m[i].body_len, 64 + 61 * i);
			cr_assert_eq(fnv1a32(m[i].body, m[i].body_len), fnv1a32(body[i], 64 + 61 * i),
				     "round %u message %u", round, i);
		}
		cr_assert_eq(hbus_queue_ack_burst(q, m, n), 0);
	}
	hbus_queue_close(q);
	close(fd);
}

/* A slot's first line is written last (after the rest of the message):
 * every split of meta and body around that line's end arrives byte for
 * byte, through runs and through the one-slot path (taken when the tail
 * hint lags, as after two producers helped it at once: stepped back here). */
Test(queue_run, messages_split_around_the_first_line_arrive_whole)
{
	int fd = tu_queue_fd(64, 160, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	static uint8_t meta[80], body[160];
	static struct hbus_out all[1024];
	struct hbus_msg m[16];
	unsigned ml, bl, i, n = 0, done, k, batch = 0;

	for (i = 0; i < sizeof(meta); i++)
		meta[i] = (uint8_t)(0x80 + i);
	for (i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7 + 1);
	for (ml = 0; ml <= 70; ml += 5)
		for (bl = 0; ml + bl <= 160; bl += bl < 40 ? 1 : 29)
			all[n++] = (struct hbus_out){ .meta = ml ? meta : NULL, .meta_len = (uint16_t)ml,
						      .body = bl ? body : NULL, .body_len = bl };
	cr_assert_gt(n, 500);
	for (done = 0; done < n; done += k, batch++) {
		const struct hbus_out *o = &all[done];

		k = n - done < 16 ? n - done : 16;
		if (batch % 2) {
			cr_assert_eq(hbus_queue_enqueue_burst(q, o, k), (int)k);
		} else {
			for (i = 0; i < k; i++) {
				uint64_t t = atomic_load(&q->hdr->tail);

				if (t > 0 && i % 2)
					atomic_store(&q->hdr->tail, t - 1); /* a lagging hint */
				cr_assert_eq(hbus_queue_enqueue(q, &o[i]), 0);
			}
		}
		cr_assert_eq(hbus_queue_consume_burst(q, m, 16), (int)k);
		for (i = 0; i < k; i++) {
			cr_assert_eq(m[i].meta_len, o[i].meta_len);
			cr_assert_eq(m[i].body_len, o[i].body_len);
			cr_assert(!m[i].meta_len || !memcmp(m[i].meta, meta, m[i].meta_len),
				  "meta %u + body %u", o[i].meta_len, o[i].body_len);
			cr_assert(!m[i].body_len || !memcmp(m[i].body, body, m[i].body_len),
				  "meta %u + body %u", o[i].meta_len, o[i].body_len);
		}
		cr_assert_eq(hbus_queue_ack_burst(q, m, k), 0);
	}
	assert_stats(q, n, 0, n);
	hbus_queue_close(q);
	close(fd);
}

/* A handle that found the ring full looks before it locks (full_hint):
 * set by a refusal, cleared by the next claim; bursts on a full ring
 * leave every slot as it was, and what fits later arrives in order. */
Test(queue_run, full_ring_hint_is_set_by_a_refusal_and_cleared_by_a_claim)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *q = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	uint64_t words[16];
	uint32_t next = 0;
	unsigned i;

	make_burst(1, 0, 16);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 16), 16);
	cr_assert_eq(q->full_hint, 0);
	for (i = 0; i < 16; i++)
		words[i] = atomic_load(&slot_at(q, i)->state);
	make_burst(1, 16, 8);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 8), -ENOBUFS);
	cr_assert_eq(q->full_hint, 1);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 8), -ENOBUFS, "again, now looking first");
	cr_assert_eq(hbus_queue_enqueue(q, &out[0]), -ENOBUFS);
	for (i = 0; i < 16; i++)
		cr_assert_eq(atomic_load(&slot_at(q, i)->state), words[i], "slot %u changed", i);
	/* Room for three: a burst of eight takes three, then finds it full. */
	{
		struct hbus_msg m[3];

		cr_assert_eq(hbus_queue_consume_burst(q, m, 3), 3);
		cr_assert_eq(hbus_queue_ack_burst(q, m, 3), 0);
	}
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 8), 3);
	cr_assert_eq(q->full_hint, 1, "the fourth found it full");
	next = 3;
	cr_assert_eq(drain_in_order(q, &next), 16);
	cr_assert_eq(next, 19);
	make_burst(1, 19, 4);
	cr_assert_eq(hbus_queue_enqueue_burst(q, out, 4), 4);
	cr_assert_eq(q->full_hint, 0, "a claim clears it");
	cr_assert_eq(drain_in_order(q, &next), 4);
	assert_stats(q, 23, 0, 23);
	hbus_queue_close(q);
	close(fd);
}

Test(queue_run, unknown_queue_flags_are_refused)
{
	struct hbus_queue_config cfg = { .capacity = 64, .slot_size = 64, .numa_node = -1,
					 .flags = 0x2 };
	int fd = -1;

	cr_assert_eq(hbus_queue_create("/dev/shm/hbus-test-flags", "t", &cfg, &fd), -EINVAL);
	cr_assert_eq(fd, -1);
	cr_assert_eq(access("/dev/shm/hbus-test-flags", F_OK), -1, "nothing was created");
}
