/*
 * test_queue_forged.c - a ring whose slot words and cursors were written by
 * a hostile or broken process (anyone holding the descriptor read-write can
 * do it).  Every operation must return, with a result or -EUCLEAN, never
 * walk for minutes or run past the mapping (the sanitizer build checks the
 * bounds); a queue the forger never touched keeps working.
 * docs/SECURITY.md, "Shared memory is input".
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_internal.h"
#include "testutil.h"

TestSuite(queue_forged, .timeout = 120);

static void forge_all(hbus_queue *q, uint64_t (*word)(uint64_t i, void *ctx), void *ctx)
{
	for (uint64_t i = 0; i <= q->mask; i++)
		atomic_store(&slot_at(q, i)->state, word(i, ctx));
}

static uint64_t far_ahead(uint64_t i, void *ctx)
{
	(void)i;
	return slot_word(*(uint64_t *)ctx, 0, SLOT_FREE);
}

/* Every operation of both sides and of recovery, on whatever is there:
 * each must return.  Returns how many messages were consumed. */
static unsigned exercise(hbus_queue *p, hbus_queue *c, uint32_t victim)
{
	struct tu_payload pay;
	struct hbus_out o = { .body = &pay, .body_len = sizeof(pay) };
	struct hbus_msg m[8];
	struct hbus_recovery r;
	uint64_t depth;
	unsigned got = 0;
	int n;

	tu_payload_make(&pay, 1, 7);
	for (int k = 0; k < 8; k++) {
		n = hbus_queue_enqueue(p, &o);
		cr_assert(n == 0 || n == -ENOBUFS || n == -EUCLEAN || n == -ESTALE, "enqueue: %d", n);
		n = hbus_queue_consume_burst(c, m, 8);
		cr_assert(n >= 0 || n == -EUCLEAN, "consume: %d", n);
		if (n > 0) {
			got += (unsigned)n;
			hbus_queue_ack_burst(c, m, (unsigned)n);
		}
	}
	n = hbus_queue_recover_owner(c, victim, &r);
	cr_assert(n == 0 || n == -EAGAIN || n == -EUCLEAN, "recover: %d", n);
	cr_assert_eq(hbus_queue_depth(c, &depth), 0);
	return got;
}

/* Slot words a lap count far ahead of the cursors: the walkers jump whole
 * laps instead of stepping through 2^30 of them one slot at a time. */
Test(queue_forged, laps_far_ahead_are_jumped_not_walked)
{
	int fd = tu_queue_fd(1024, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *c = tu_open(fd, 2, HBUS_ACK_MANUAL, 0);
	uint64_t lap = 1u << 30;
	struct tu_payload pay, got;
	struct hbus_out o = { .body = &pay, .body_len = sizeof(pay) };
	struct hbus_msg m;

	forge_all(p, far_ahead, &lap);
	tu_payload_make(&pay, 1, 42);
	cr_assert_eq(hbus_queue_enqueue(p, &o), 0, "a ring of free slots must take a message");
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert(tu_payload_ok(&m, &got) && got.seq == 42, "the message must come back whole");
	cr_assert_eq(hbus_queue_ack(c, &m), 0);
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

/* Laps half the lap space away (the sign of a lap distance flips there),
 * forged CLAIMED slots of a "dead" owner far ahead, cursors set to
 * nonsense, and random words: every call returns. */
Test(queue_forged, nonsense_words_and_cursors_always_return)
{
	int fd = tu_queue_fd(256, 64, HBUS_OVERFLOW_DROP_HEAD, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *c = tu_open(fd, 2, HBUS_ACK_MANUAL, 0);
	uint64_t lap = (1ull << 31) + 5;
	unsigned seed = 12345, round;

	forge_all(p, far_ahead, &lap);
	exercise(p, c, 3);
	for (uint64_t i = 0; i <= p->mask; i++)
		atomic_store(&slot_at(p, i)->state, slot_word(i * 977 + (1u << 29), 3, SLOT_CLAIMED));
	exercise(p, c, 3);
	atomic_store(&p->hdr->tail, UINT64_MAX - 3);
	atomic_store(&p->hdr->head, 1ull << 63);
	exercise(p, c, 3);
	for (round = 0; round < 300; round++) {
		cr_log_info("round %u", round);
		for (uint64_t i = 0; i <= p->mask; i++) {
			uint64_t w = (uint64_t)rand_r(&seed) << 40 ^ (uint64_t)rand_r(&seed) << 20 ^
				     (uint64_t)rand_r(&seed);
			/* Mostly small lap distances and our owner ids, so the
			 * states are reached, sometimes anything at all. */
			if (round % 3)
				w = slot_word(w >> 40 & 3, 1 + (w & 3), (w >> 8) % 6);
			atomic_store(&slot_at(p, i)->state, w);
		}
		atomic_store(&p->hdr->tail, (uint64_t)rand_r(&seed) << (round % 40));
		atomic_store(&p->hdr->head, (uint64_t)rand_r(&seed) << (round % 37));
		exercise(p, c, 3 + round % 4);
	}
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

struct flipper {
	hbus_queue *q;
	atomic_int stop;
};

/* Keep rewriting every slot READY at a lap the walkers will never settle
 * on: a consumer's CAS keeps failing and its walk keeps being sent back. */
static void *flip_main(void *arg)
{
	struct flipper *f = arg;
	uint64_t k = 0;

	while (!atomic_load(&f->stop)) {
		for (uint64_t i = 0; i <= f->q->mask; i++)
			atomic_store(&slot_at(f->q, i)->state,
				     slot_word((k + i) & 1 ? 1 : 0, 0, (k & 1) ? SLOT_READY : SLOT_SKIP));
		atomic_store(&f->q->hdr->head, 0);
		k++;
	}
	return NULL;
}

/* A walk that cannot end while another thread keeps rewriting the ring
 * under it: the walker stops after its bound with -EUCLEAN (or gets a
 * result), the call never spins forever. */
Test(queue_forged, a_walk_under_concurrent_forgery_is_bounded)
{
	int fd = tu_queue_fd(4, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *c = tu_open(fd, 2, HBUS_ACK_AUTO, 0);
	struct flipper f = { .q = p };
	pthread_t th;
	unsigned calls;

	cr_assert_eq(pthread_create(&th, NULL, flip_main, &f), 0);
	for (calls = 0; calls < 20000; calls++)
		exercise(p, c, 3);
	atomic_store(&f.stop, 1);
	pthread_join(th, NULL);
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

/* A ring the forger never touched keeps its messages and order. */
Test(queue_forged, an_untouched_queue_is_not_disturbed)
{
	int fa = tu_queue_fd(64, 64, HBUS_OVERFLOW_REJECT, 0);
	int fb = tu_queue_fd(64, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *pa = tu_open(fa, 1, HBUS_ACK_AUTO, 0), *ca = tu_open(fa, 2, HBUS_ACK_AUTO, 0);
	hbus_queue *pb = tu_open(fb, 1, HBUS_ACK_AUTO, 0), *cb = tu_open(fb, 2, HBUS_ACK_AUTO, 0);
	struct tu_payload pay, got;
	struct hbus_out o = { .body = &pay, .body_len = sizeof(pay) };
	struct hbus_msg m;
	uint32_t i;

	for (i = 0; i < 40; i++) {
		tu_payload_make(&pay, 9, i);
		cr_assert_eq(hbus_queue_enqueue(pb, &o), 0);
	}
	for (uint64_t k = 0; k <= pa->mask; k++)
		atomic_store(&slot_at(pa, k)->state, ~0ull - k);
	exercise(pa, ca, 3);
	for (i = 0; i < 40; i++) {
		cr_assert_eq(hbus_queue_consume(cb, &m), 0);
		cr_assert(tu_payload_ok(&m, &got) && got.seq == i && got.producer == 9);
		cr_assert_eq(hbus_queue_ack(cb, &m), 0);
	}
	hbus_queue_close(pa);
	hbus_queue_close(ca);
	hbus_queue_close(pb);
	hbus_queue_close(cb);
	close(fa);
	close(fb);
}

/* A dead record's journal is input too (docs/SECURITY.md): every kind, the
 * run kinds with any length, any slot and lap.  Recovery returns, walks
 * no further than the ring (a run's length is bounded by the capacity),
 * moves no slot, and a READY message another producer published comes
 * out once and intact. */
Test(queue_forged, a_forged_journal_of_any_kind_moves_no_slot)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *h = tu_open(fd, 9, HBUS_ACK_AUTO, 0);
	const uint64_t lens[] = { 0, 1, 2, 17, UINT64_C(1) << 40, UINT64_MAX };
	struct tu_payload pay, got;
	struct hbus_out o = { .body = &pay, .body_len = sizeof(pay) };
	struct hbus_queue_census cen;
	struct hbus_recovery r;
	struct hbus_msg m;
	unsigned seed = 777;

	tu_payload_make(&pay, 4, 42);
	cr_assert_eq(hbus_queue_enqueue(p, &o), 0); /* READY at slot 0, lap 0 */
	for (unsigned kind = 0; kind < 256; kind++) {
		for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			hbus_queue *f = tu_open(fd, 6, HBUS_ACK_MANUAL, 0);
			uint64_t idx = (uint64_t)rand_r(&seed) % 40, lap = (uint64_t)rand_r(&seed) % 3;

			atomic_store(&f->rec->jr_aux, lens[i]);
			atomic_store(&f->rec->jr_aux2, (uint64_t)rand_r(&seed));
			atomic_store(&f->rec->jr_target, (uint64_t)rand_r(&seed));
			atomic_store(&f->rec->jr_op, (uint64_t)kind << 56 | idx << 32 | lap);
			cr_assert_eq(hbus_queue_recover_owner(h, 6, &r), 0, "kind %u", kind);
			cr_assert_eq(r.requeued + r.released + r.skipped + r.removed, 0,
				     "kind %u length %lu moved a slot", kind, lens[i]);
			cr_assert_eq(hbus_queue_scan(h, &cen), 0);
			cr_assert(cen.ready == 1 && cen.claimed == 0, "kind %u: ready %lu claimed %lu",
				  kind, cen.ready, cen.claimed);
			hbus_queue_close(f);
		}
	}
	cr_assert_eq(hbus_queue_consume(h, &m), 0);
	cr_assert(tu_payload_ok(&m, &got) && got.seq == 42 && got.producer == 4);
	cr_assert(!(m.flags & HBUS_MSG_REDELIVERED));
	cr_assert_eq(hbus_queue_ack(h, &m), 0);
	cr_assert_eq(hbus_queue_consume(h, &m), -EAGAIN);
	hbus_queue_close(p);
	hbus_queue_close(h);
	close(fd);
}
