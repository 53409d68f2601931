/*
 * test_queue_race.c - the races the ring review found (docs/QUEUE.md,
 * "Crash atomicity"), each driven into its window deterministically: the
 * ring is the test build with crash points (queue_crash.h), and a hook on
 * them parks one thread at the exact instruction while another works.
 *
 *   - a helper that read a cursor, stalled, then moved it: never back;
 *   - a dead consumer's claim put back by recovery while others ack,
 *     consume and fill the ring: never lost, torn or doubled;
 *   - a dead-letter hook that runs while its slot is reused: it reads its
 *     own copy;
 *   - a consumer killed in its sleep: its sleeper bit goes with it, so
 *     producers stop paying for a wake-up.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crash_ledger.h"
#include "queue_internal.h"
#include "testutil.h"

TestSuite(queue_race, .timeout = 60);

/* ------------------------------------------------------------- parking */

static _Thread_local int parkable;
static int park_point = -1;
static atomic_int parked, released;

static void park_hook(int point, void *ctx)
{
	(void)ctx;
	if (!parkable || point != park_point)
		return;
	parkable = 0; /* once */
	atomic_store(&parked, 1);
	while (!atomic_load(&released))
		usleep(100);
}

static void park_at(int point)
{
	park_point = point;
	atomic_store(&parked, 0);
	atomic_store(&released, 0);
	hbus_crashpoint_hook(park_hook, NULL);
}

static void wait_parked(void)
{
	unsigned spins = 0;

	while (!atomic_load(&parked)) {
		cr_assert_lt(++spins, 200000u, "the thread never reached its point");
		usleep(50);
	}
}

static void unpark(void)
{
	atomic_store(&released, 1);
	hbus_crashpoint_hook(NULL, NULL);
}

static void put(hbus_queue *q, uint32_t id)
{
	uint8_t b[48];

	msg_make(b, 1, id, sizeof(b));
	struct hbus_out o = { .body = b, .body_len = sizeof(b) };
	cr_assert_eq(hbus_queue_enqueue(q, &o), 0, "enqueue %u", id);
}

static uint32_t take(hbus_queue *q, uint16_t *flags)
{
	struct hbus_msg m;
	uint32_t producer, id;

	cr_assert_eq(hbus_queue_consume(q, &m), 0);
	cr_assert(msg_check(m.body, m.body_len, &producer, &id), "a torn message");
	if (flags)
		*flags = m.flags;
	cr_assert_eq(hbus_queue_ack(q, &m), 0);
	return id;
}

/* ------------------------------------------- a stalled cursor helper */

struct claimer {
	hbus_queue *q;
	struct hbus_msg m;
	int rc;
};

static void *claim_parked(void *arg)
{
	struct claimer *c = arg;

	parkable = 1;
	c->rc = hbus_queue_consume(c->q, &c->m);
	return NULL;
}

/* A consumer took message 0 and, finding nothing more, publishes how far
 * it got: it reads the shared head (0) and stalls before its CAS, while
 * another consumer takes 50 messages and publishes 51.  When it goes on,
 * the head must stay at 51, not go back to 1 (as a plain store would do:
 * walkers would then step over 50 taken slots, and after 2^31 laps of such
 * regressions an empty ring refuses every enqueue). */
Test(queue_race, a_stalled_cursor_helper_never_moves_it_back)
{
	int fd = tu_queue_fd(64, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	struct claimer a = { .q = tu_open(fd, 2, HBUS_ACK_MANUAL, 0) };
	hbus_queue *b = tu_open(fd, 3, HBUS_ACK_MANUAL, 0);
	struct hbus_msg m0;
	pthread_t th;

	put(p, 0);
	cr_assert_eq(hbus_queue_consume(a.q, &m0), 0);
	park_at(HBUS_CP_CURSOR_SEEN);
	cr_assert_eq(pthread_create(&th, NULL, claim_parked, &a), 0);
	wait_parked();
	cr_assert_eq(atomic_load(&p->hdr->head), 0, "parked before its CAS");
	for (uint32_t i = 1; i < 51; i++)
		put(p, i);
	for (uint32_t i = 1; i < 51; i++)
		cr_assert_eq(take(b, NULL), i);
	cr_assert_eq(hbus_queue_consume(b, &a.m), -EAGAIN);
	cr_assert_eq(atomic_load(&p->hdr->head), 51);
	unpark();
	pthread_join(th, NULL);
	cr_assert_eq(a.rc, -EAGAIN);
	cr_assert_eq(atomic_load(&p->hdr->head), 51, "the stalled helper moved the head back");
	cr_assert_eq(hbus_queue_ack(a.q, &m0), 0);
	hbus_queue_close(p);
	hbus_queue_close(a.q);
	hbus_queue_close(b);
	close(fd);
}

/* -------------------------------- recovery copying while others work */

struct recoverer {
	hbus_queue *q;
	uint32_t dead;
	int rc;
};

static void *recover_parked(void *arg)
{
	struct recoverer *r = arg;
	struct hbus_recovery rec;

	parkable = 1;
	r->rc = hbus_queue_recover_owner(r->q, r->dead, &rec);
	return NULL;
}

/* A dead consumer held message 0.  Recovery has put it back (READY at its
 * own position) and stalls before moving the head back to it.  Meanwhile a
 * live consumer tries to ack it by its tag (not its holder: refused) and
 * takes the others; producers fill the ring and cannot pass the requeued
 * slot.  Then recovery goes on: message 0 arrives once, whole, flagged, and
 * the counters add up.  (Before, recovery copied the message to the tail
 * and could copy bytes a producer was writing into a slot its live owner
 * had just acked.) */
Test(queue_race, a_requeue_back_is_neither_lost_torn_nor_doubled)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *dead = tu_open(fd, 66, HBUS_ACK_MANUAL, 0);
	hbus_queue *live = tu_open(fd, 2, HBUS_ACK_MANUAL, 0);
	struct recoverer r = { .q = tu_open(fd, 3, HBUS_ACK_AUTO, 0), .dead = 66 };
	struct hbus_queue_stats s;
	struct hbus_msg held, fake;
	uint32_t seen = 0, id;
	uint16_t flags;
	pthread_t th;

	for (uint32_t i = 0; i < 3; i++)
		put(p, i);
	cr_assert_eq(hbus_queue_consume(dead, &held), 0);
	park_at(HBUS_CP_REQ_CAS);
	cr_assert_eq(pthread_create(&th, NULL, recover_parked, &r), 0);
	wait_parked();
	fake = held;
	cr_assert_eq(hbus_queue_ack(live, &fake), -ESTALE, "a tag it does not hold");
	for (uint32_t i = 3; i < 8; i++)
		put(p, i); /* positions 3..7: the ring is then full at 0's slot */
	uint8_t b[48];
	msg_make(b, 1, 99, sizeof(b));
	struct hbus_out o = { .body = b, .body_len = sizeof(b) };
	cr_assert_eq(hbus_queue_enqueue(p, &o), -ENOBUFS, "the requeued slot is never reused");
	unpark();
	pthread_join(th, NULL);
	cr_assert_eq(r.rc, 0);
	for (uint32_t i = 0; i < 8; i++) {
		id = take(live, &flags);
		cr_assert_eq(!!(flags & HBUS_MSG_REDELIVERED), id == 0, "id %u", id);
		cr_assert(!(seen & (1u << id)), "id %u twice", id);
		cr_assert_eq(id, i, "in position order: 0 (requeued) first");
		seen |= 1u << id;
	}
	cr_assert_eq(hbus_queue_consume(live, &held), -EAGAIN);
	hbus_queue_stats(p, &s);
	cr_assert_eq(s.enqueued, 8);
	cr_assert_eq(s.acked, 8);
	cr_assert_eq(s.requeued, 1);
	cr_assert_eq(s.delivered, 9);
	hbus_queue_close(p);
	hbus_queue_close(dead);
	hbus_queue_close(live);
	hbus_queue_close(r.q);
	close(fd);
}

/* A consumer that found nothing more reads the head to publish how far it
 * got (position 5) and stalls before its CAS; meanwhile another consumer
 * requeues message 0, lowering the head to 0.  When the first goes on, its
 * CAS must fail (the head's generation moved with the requeue), or message
 * 0 would sit behind every cursor: producers stop a lap later at its slot,
 * consumers never look back (found by test_queue_mp as a deadlock). */
Test(queue_race, a_cursor_publish_never_hides_a_requeue)
{
	int fd = tu_queue_fd(64, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	struct claimer a = { .q = tu_open(fd, 2, HBUS_ACK_MANUAL, 0) };
	hbus_queue *c = tu_open(fd, 3, HBUS_ACK_MANUAL, 0);
	struct hbus_msg m0, held[4];
	uint32_t producer, id;
	pthread_t th;

	for (uint32_t i = 0; i < 5; i++)
		put(p, i);
	cr_assert_eq(hbus_queue_consume(c, &m0), 0);
	cr_assert_eq(hbus_queue_consume_burst(a.q, held, 4), 4);
	park_at(HBUS_CP_CURSOR_SEEN);
	cr_assert_eq(pthread_create(&th, NULL, claim_parked, &a), 0);
	wait_parked();
	cr_assert_eq(hbus_queue_nack(c, &m0, 1), 0);
	cr_assert_eq(atomic_load(&p->hdr->head), 0);
	unpark();
	pthread_join(th, NULL);
	cr_assert_eq(a.rc, -EAGAIN);
	cr_assert_eq(atomic_load(&p->hdr->head), 0, "a publish hid the requeued message");
	cr_assert_eq(hbus_queue_consume(a.q, &a.m), 0);
	cr_assert(msg_check(a.m.body, a.m.body_len, &producer, &id) && id == 0);
	cr_assert(a.m.flags & HBUS_MSG_REDELIVERED);
	cr_assert_eq(hbus_queue_ack(a.q, &a.m), 0);
	cr_assert_eq(hbus_queue_ack_burst(a.q, held, 4), 0);
	hbus_queue_close(p);
	hbus_queue_close(a.q);
	hbus_queue_close(c);
	close(fd);
}

/* ------------------------------- a dead-letter hook while its slot is reused */

struct dl_ctx {
	hbus_queue *other;
	unsigned calls;
	int intact_after_reuse;
	uint32_t dropped_id;
};

static void dl_reuse(void *arg, hbus_queue *q, const struct hbus_msg *m, enum hbus_dead_reason why)
{
	struct dl_ctx *c = arg;
	uint32_t producer = 0, id = 0;

	(void)q;
	cr_assert_eq(why, HBUS_DEAD_MAXLEN);
	if (c->calls++)
		return;
	/* The dropped message's slot is free by now: fill it. */
	put(c->other, 1000);
	c->intact_after_reuse = msg_check(m->body, m->body_len, &producer, &id);
	c->dropped_id = id;
}

/* Drop-head frees the oldest message's slot before its hook runs, on a
 * copy: another producer can reuse the slot meanwhile (here the hook
 * itself does), and neither the hook's view nor the new message is hurt
 * (before, a plain FREE store after the hook could wipe a message put
 * there meanwhile). */
Test(queue_race, a_dead_letter_hook_reads_its_copy_while_the_slot_is_reused)
{
	int fd = tu_queue_fd(4, 64, HBUS_OVERFLOW_DROP_HEAD, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *other = tu_open(fd, 2, HBUS_ACK_AUTO, 0);
	hbus_queue *c = tu_open(fd, 3, HBUS_ACK_MANUAL, 0);
	struct dl_ctx ctx = { .other = other };
	struct hbus_queue_stats s;
	uint32_t got[5];

	cr_assert_eq(hbus_queue_set_dead_letter(p, dl_reuse, &ctx), 0);
	for (uint32_t i = 0; i < 5; i++)
		put(p, i); /* the fifth drops 0; its hook puts 1000 in 0's slot */
	cr_assert(ctx.intact_after_reuse, "the hook's view changed under it");
	cr_assert_eq(ctx.dropped_id, 0);
	cr_assert_eq(ctx.calls, 2, "1000 took the slot, so 4 dropped 1 as well");
	for (unsigned i = 0; i < 4; i++)
		got[i] = take(c, NULL);
	cr_assert_eq(got[0], 2);
	cr_assert_eq(got[1], 3);
	cr_assert_eq(got[2], 1000);
	cr_assert_eq(got[3], 4);
	hbus_queue_stats(p, &s);
	cr_assert_eq(s.dropped_head, 2);
	cr_assert_eq(s.enqueued, 6);
	cr_assert_eq(s.acked + s.dropped_head, s.enqueued);
	hbus_queue_close(p);
	hbus_queue_close(other);
	hbus_queue_close(c);
	close(fd);
}

/* ------------------------------------------ a consumer killed asleep */

Test(queue_race, a_consumer_killed_in_its_sleep_leaves_no_sleeper)
{
	int fd = tu_queue_fd(16, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = tu_open(fd, 1, HBUS_ACK_AUTO, 0);
	unsigned spins = 0;
	struct hbus_recovery r;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		hbus_queue *c = NULL;
		struct hbus_queue_opts o = { .owner = 77, .ack_mode = HBUS_ACK_MANUAL };

		if (hbus_queue_open_fd(fd, &o, &c))
			_exit(2);
		hbus_queue_wait(c, -1);
		_exit(1);
	}
	while (!sleepers_any(p)) {
		cr_assert_lt(++spins, 100000u, "the child never went to sleep");
		usleep(100);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_assert(sleepers_any(p), "its bit stays until recovery");
	cr_assert_eq(hbus_queue_recover_owner(p, 77, &r), 0);
	cr_assert_eq(r.records, 1);
	cr_assert(!sleepers_any(p), "recovery cleared the dead sleeper's bit");
	put(p, 1);
	cr_assert_eq(take(p, NULL), 1);
	hbus_queue_close(p);
	close(fd);
}
