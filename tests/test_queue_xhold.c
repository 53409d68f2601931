/*
 * test_queue_xhold.c - the only consumer's claim without a store into the
 * slot: its record's xhold names the READY message it holds (docs/QUEUE.md,
 * "Exclusive handles").  Each test checks the slot words, the census and
 * the counters, and the ids and checksums of what comes out.  Kills at
 * every step are in tests/test_queue_crash.c (XHOLD_*, REC_XHOLD_*).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue_internal.h"
#include "testutil.h"

TestSuite(queue_xhold, .timeout = 60);

static hbus_queue *open_x(int fd, uint32_t owner, uint32_t ack_mode, uint32_t flags)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack_mode, .prefetch = 16,
				     .flags = flags };
	hbus_queue *q = NULL;

	cr_assert_eq(hbus_queue_open_fd(fd, &o, &q), 0);
	return q;
}

static uint32_t seq_of(const struct hbus_msg *m)
{
	struct tu_payload p;

	cr_assert(tu_payload_ok(m, &p), "checksum mismatch");
	return p.seq;
}

static void census(hbus_queue *q, uint64_t ready, uint64_t claimed)
{
	struct hbus_queue_census c;

	cr_assert_eq(hbus_queue_scan(q, &c), 0);
	cr_assert_eq(c.ready, ready, "ready %lu, want %lu", c.ready, ready);
	cr_assert_eq(c.claimed, claimed, "claimed %lu, want %lu", c.claimed, claimed);
}

Test(queue_xhold, a_single_claim_leaves_the_slot_ready_and_the_ack_frees_it)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, HBUS_PRODUCE_EXCLUSIVE);
	hbus_queue *c = open_x(fd, 2, HBUS_ACK_MANUAL, HBUS_CONSUME_EXCLUSIVE);
	struct hbus_queue_stats s;
	struct hbus_msg m;

	for (uint32_t i = 0; i < 20; i++) {
		cr_assert_eq(tu_enqueue_id(p, 1, i), 0);
		cr_assert_eq(hbus_queue_consume(c, &m), 0);
		cr_assert_eq(seq_of(&m), i);
		cr_assert_eq(atomic_load(slot_state(c, m.pos)), slot_word(pos_lap(c, m.pos), 0, SLOT_READY),
			     "no store into the slot");
		cr_assert_eq(atomic_load(&c->rec->xhold), xhold_word(c, m.pos, SLOT_CLAIMED));
		census(c, 0, 1);
		cr_assert_eq(hbus_queue_consume(c, &m) , -EAGAIN, "held, not handed out twice");
		cr_assert_eq(hbus_queue_ack(c, &m), 0);
		cr_assert_eq(atomic_load(&c->rec->xhold), 0);
		cr_assert_eq(word_state(atomic_load(slot_state(c, m.pos))), SLOT_FREE);
		cr_assert_eq(hbus_queue_ack(c, &m), -ESTALE, "acked once");
	}
	cr_assert_eq(hbus_queue_stats(c, &s), 0);
	cr_assert(s.enqueued == 20 && s.delivered == 20 && s.acked == 20,
		  "enqueued %lu delivered %lu acked %lu", s.enqueued, s.delivered, s.acked);
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

Test(queue_xhold, a_nacked_held_message_comes_back_flagged_once)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *c = open_x(fd, 2, HBUS_ACK_MANUAL, HBUS_CONSUME_EXCLUSIVE);
	struct hbus_queue_stats s;
	struct hbus_msg m, again;

	cr_assert_eq(tu_enqueue_id(p, 1, 7), 0);
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert_eq(c->xhold, m.pos + 1);
	cr_assert_eq(hbus_queue_nack(c, &m, 1), 0);
	cr_assert_eq(c->xhold, 0, "pinned, then requeued as a claim");
	census(c, 1, 0);
	cr_assert_eq(hbus_queue_consume(c, &again), 0);
	cr_assert_eq(seq_of(&again), 7);
	cr_assert(again.flags & HBUS_MSG_REDELIVERED, "the redelivery is flagged");
	cr_assert_eq(hbus_queue_ack(c, &again), 0);
	cr_assert_eq(hbus_queue_consume(c, &again), -EAGAIN);
	cr_assert_eq(hbus_queue_stats(c, &s), 0);
	cr_assert(s.delivered == 2 && s.requeued == 1 && s.acked == 1);
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

/* An explicit claim below the held one is requeued: the head goes back
 * behind the held message, and the walk must step over it, not hand it
 * out a second time. */
Test(queue_xhold, a_requeue_behind_the_held_message_does_not_deliver_it_twice)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *c = open_x(fd, 2, HBUS_ACK_MANUAL, HBUS_CONSUME_EXCLUSIVE);
	struct hbus_msg m[4], got;

	for (uint32_t i = 0; i < 3; i++)
		cr_assert_eq(tu_enqueue_id(p, 1, i), 0);
	cr_assert_eq(hbus_queue_consume(c, &m[0]), 0);  /* held through xhold */
	cr_assert_eq(hbus_queue_consume(c, &m[1]), 0);  /* a claim store: xhold is taken */
	cr_assert_eq(hbus_queue_ack(c, &m[0]), 0);       /* xhold free again */
	cr_assert_eq(hbus_queue_consume(c, &m[2]), 0);  /* held through xhold, above m[1] */
	cr_assert_eq(c->xhold, m[2].pos + 1);
	cr_assert_eq(hbus_queue_nack(c, &m[1], 1), 0);   /* the head back to m[1] */
	cr_assert_eq(hbus_queue_consume(c, &got), 0);
	cr_assert_eq(seq_of(&got), 1);
	cr_assert(got.flags & HBUS_MSG_REDELIVERED);
	cr_assert_eq(hbus_queue_consume(c, &m[3]), -EAGAIN, "seq 2 is held, not handed out again");
	cr_assert_eq(hbus_queue_ack(c, &got), 0);
	cr_assert_eq(hbus_queue_ack(c, &m[2]), 0);
	census(c, 0, 0);
	hbus_queue_close(p);
	hbus_queue_close(c);
	close(fd);
}

/* What a SIGKILL leaves, written directly (tests/test_queue_crash.c kills
 * at every point): a dead only consumer holding one message through xhold
 * (manual ack: redelivered, flagged) and one killed between its ack's
 * journal and its FREE store (not acked: redelivered too). */
Test(queue_xhold, recovery_turns_a_dead_xhold_into_a_redelivery)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *dead = open_x(fd, 5, HBUS_ACK_MANUAL, HBUS_CONSUME_EXCLUSIVE);
	hbus_queue *h = open_x(fd, 9, HBUS_ACK_AUTO, 0);
	struct hbus_recovery r;
	struct hbus_queue_stats s;
	struct hbus_msg m, got;

	cr_assert_eq(tu_enqueue_id(p, 1, 3), 0);
	cr_assert_eq(hbus_queue_consume(dead, &m), 0);
	/* Its ack journaled, then killed before the FREE store. */
	journal(dead, JR_ACK, m.pos, QC_ACKED, 1);
	cr_assert_eq(hbus_queue_recover_owner(h, 5, &r), 0);
	cr_assert_eq(r.requeued, 1);
	cr_assert_eq(atomic_load(&dead->rec->xhold), 0);
	cr_assert_eq(hbus_queue_consume(h, &got), 0);
	cr_assert_eq(seq_of(&got), 3);
	cr_assert(got.flags & HBUS_MSG_REDELIVERED);
	cr_assert_eq(hbus_queue_ack(h, &got), 0);
	cr_assert_eq(hbus_queue_stats(h, &s), 0);
	cr_assert(s.delivered == 2 && s.acked == 0 && s.requeued == 1 && s.released == 1,
		  "delivered %lu acked %lu requeued %lu released %lu", s.delivered, s.acked,
		  s.requeued, s.released);
	hbus_queue_close(dead); /* its record went back in the recovery */
	hbus_queue_close(p);
	hbus_queue_close(h);
	close(fd);
}

/* A forged xhold (the record is the client's to write): recovery acts on
 * nothing but a slot READY at the lap it names, and never crashes. */
Test(queue_xhold, a_forged_xhold_moves_nothing_but_a_ready_slot)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *forger = open_x(fd, 6, HBUS_ACK_MANUAL, 0), *old[4];
	hbus_queue *h = open_x(fd, 9, HBUS_ACK_AUTO, 0);
	const uint64_t forged[] = {
		UINT64_C(0x7) << 60 | 3,                          /* a state no claim has */
		(uint64_t)SLOT_CLAIMED << 60 | UINT64_C(0xffffff) << 32, /* past the ring */
		(uint64_t)SLOT_CLAIMED << 60 | UINT64_C(5) << 32, /* a FREE slot */
		(uint64_t)SLOT_CLAIMED << 60 | 9,                 /* slot 0 at another lap */
	};
	struct hbus_recovery r;
	struct hbus_queue_census c;
	struct hbus_msg m;

	cr_assert_eq(tu_enqueue_id(p, 1, 11), 0); /* READY at slot 0, lap 0 */
	for (unsigned i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		atomic_store(&forger->rec->xhold, forged[i]);
		cr_assert_eq(hbus_queue_recover_owner(h, 6, &r), 0);
		cr_assert_eq(r.requeued + r.released, 0, "forged word %u moved a slot", i);
		cr_assert_eq(atomic_load(&forger->rec->xhold), 0, "cleared");
		cr_assert_eq(hbus_queue_scan(h, &c), 0);
		cr_assert_eq(c.ready, 1);
		old[i] = forger;
		forger = open_x(fd, 6, HBUS_ACK_MANUAL, 0); /* the record was freed */
	}
	for (unsigned i = 0; i < 4; i++)
		hbus_queue_close(old[i]);
	hbus_queue_close(forger);
	cr_assert_eq(hbus_queue_consume(h, &m), 0);
	cr_assert_eq(seq_of(&m), 11);
	cr_assert(!(m.flags & HBUS_MSG_REDELIVERED), "never delivered, never flagged");
	cr_assert_eq(hbus_queue_ack(h, &m), 0);
	hbus_queue_close(p);
	hbus_queue_close(h);
	close(fd);
}

/* hbusd stopped granting the queue alone (queue_drop_exclusive) and a
 * shared consumer took the held message: the ack says -ESTALE, frees
 * nothing of the other's, and the handle stops naming the slot. */
Test(queue_xhold, a_lost_grant_leaves_the_message_to_the_consumer_that_took_it)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, 0);
	hbus_queue *x = open_x(fd, 2, HBUS_ACK_MANUAL, HBUS_CONSUME_EXCLUSIVE);
	hbus_queue *other = open_x(fd, 3, HBUS_ACK_MANUAL, 0);
	struct hbus_msg m, taken;

	cr_assert_eq(tu_enqueue_id(p, 1, 21), 0);
	cr_assert_eq(hbus_queue_consume(x, &m), 0);
	cr_assert_eq(x->xhold, m.pos + 1);
	atomic_store(&x->sc, 0); /* what queue_drop_exclusive does */
	cr_assert_eq(hbus_queue_consume(other, &taken), 0);
	cr_assert_eq(seq_of(&taken), 21);
	cr_assert_eq(hbus_queue_ack(x, &m), -ESTALE);
	cr_assert_eq(x->xhold, 0);
	cr_assert_eq(atomic_load(&x->rec->xhold), 0);
	cr_assert_eq(atomic_load(slot_state(other, taken.pos)),
		     slot_word(pos_lap(other, taken.pos), other->holder, SLOT_CLAIMED),
		     "the other consumer's claim is untouched");
	cr_assert_eq(hbus_queue_ack(other, &taken), 0);
	/* A nack after the loss: the same (not requeued, not named). */
	atomic_store(&x->sc, 1);
	cr_assert_eq(tu_enqueue_id(p, 1, 22), 0);
	cr_assert_eq(hbus_queue_consume(x, &m), 0);
	cr_assert_eq(x->xhold, m.pos + 1);
	atomic_store(&x->sc, 0);
	cr_assert_eq(hbus_queue_consume(other, &taken), 0);
	cr_assert_eq(seq_of(&taken), 22);
	cr_assert_eq(hbus_queue_nack(x, &m, 1), -ESTALE);
	cr_assert_eq(x->xhold, 0);
	cr_assert_eq(atomic_load(&x->rec->xhold), 0);
	cr_assert_eq(hbus_queue_ack(other, &taken), 0);
	census(p, 0, 0);
	hbus_queue_close(p);
	hbus_queue_close(x);
	hbus_queue_close(other);
	close(fd);
}

static void stats_of(hbus_queue *q, uint64_t delivered, uint64_t released)
{
	struct hbus_queue_stats s;

	cr_assert_eq(hbus_queue_stats(q, &s), 0);
	cr_assert(s.delivered == delivered && s.released == released && s.acked == 0,
		  "delivered %lu released %lu acked %lu, want %lu %lu 0", s.delivered, s.released,
		  s.acked, delivered, released);
}

/* Auto ack: the claim is the delivery, the ack gives the slot back, and
 * the only consumer gives it back at its next call (docs/QUEUE.md,
 * "Returned at the next call").  Until then the slot is READY and named
 * in xhold, and the census counts it held; every call returns it first. */
Test(queue_xhold, an_auto_ack_returns_the_slot_at_the_next_call)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, HBUS_PRODUCE_EXCLUSIVE);
	hbus_queue *c = open_x(fd, 2, HBUS_ACK_AUTO, HBUS_CONSUME_EXCLUSIVE);
	struct hbus_msg m, next;

	cr_assert_eq(tu_enqueue_id(p, 1, 1), 0);
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert_eq(seq_of(&m), 1);
	cr_assert_eq(hbus_queue_ack(c, &m), 0);
	cr_assert_eq(atomic_load(slot_state(c, m.pos)), slot_word(pos_lap(c, m.pos), 0, SLOT_READY),
		     "kept until the next call");
	cr_assert_eq(atomic_load(&c->rec->xhold), xhold_word(c, m.pos, SLOT_CLAIMED_AUTO));
	census(c, 0, 1);
	stats_of(c, 1, 0);
	cr_assert_eq(hbus_queue_consume(c, &next), -EAGAIN, "returned, and not handed out again");
	cr_assert_eq(word_state(atomic_load(slot_state(c, m.pos))), SLOT_FREE);
	cr_assert_eq(atomic_load(&c->rec->xhold), 0);
	census(c, 0, 0);
	stats_of(c, 1, 1);

	/* A second ack, or a nack, of a message acked already: -ESTALE
	 * (the call returns the slot first, then finds it not ours). */
	cr_assert_eq(tu_enqueue_id(p, 1, 2), 0);
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert_eq(hbus_queue_ack(c, &m), 0);
	cr_assert_eq(hbus_queue_ack(c, &m), -ESTALE);
	stats_of(c, 2, 2);
	cr_assert_eq(tu_enqueue_id(p, 1, 3), 0);
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert_eq(hbus_queue_ack(c, &m), 0);
	cr_assert_eq(hbus_queue_nack(c, &m, 1), -ESTALE, "not requeued after its ack");
	census(c, 0, 0);
	stats_of(c, 3, 3);

	/* Closing returns it too, and the record goes back. */
	cr_assert_eq(tu_enqueue_id(p, 1, 4), 0);
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert_eq(hbus_queue_ack(c, &m), 0);
	cr_assert_eq(hbus_queue_close(c), 0);
	census(p, 0, 0);
	stats_of(p, 4, 4);
	hbus_queue_close(p);
	close(fd);
}

/* The slot kept is a slot the producer cannot have yet: a full ring gets
 * room at the consumer's next call, and a handle that produces into the
 * queue it consumes returns its own slot before it looks for room. */
Test(queue_xhold, a_full_ring_gets_the_kept_slot_at_the_next_call)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, HBUS_PRODUCE_EXCLUSIVE);
	hbus_queue *c = open_x(fd, 2, HBUS_ACK_AUTO, HBUS_CONSUME_EXCLUSIVE);
	struct hbus_queue_stats s;
	struct hbus_msg m;
	uint32_t want = 0;

	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(tu_enqueue_id(p, 1, i), 0);
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert_eq(seq_of(&m), want++);
	cr_assert_eq(hbus_queue_ack(c, &m), 0);
	cr_assert_eq(tu_enqueue_id(p, 1, 8), -ENOBUFS, "the slot is not back yet");
	cr_assert_eq(hbus_queue_consume(c, &m), 0);
	cr_assert_eq(seq_of(&m), want++);
	cr_assert_eq(tu_enqueue_id(p, 1, 8), 0, "back at the consumer's next call");
	cr_assert_eq(hbus_queue_ack(c, &m), 0);
	/* The consumer's own handle produces: its kept slot is its room. */
	cr_assert_eq(tu_enqueue_id(p, 1, 9), -ENOBUFS);
	cr_assert_eq(tu_enqueue_id(c, 2, 9), 0);
	while (hbus_queue_consume(c, &m) == 0) {
		cr_assert_eq(seq_of(&m), want++);
		cr_assert_eq(hbus_queue_ack(c, &m), 0);
	}
	cr_assert_eq(want, 10, "every message once, in order");
	hbus_queue_close(c);
	census(p, 0, 0);
	stats_of(p, 10, 10);
	cr_assert_eq(hbus_queue_stats(p, &s), 0);
	cr_assert(s.enqueued == 10 && s.dropped_overflow == 2,
		  "enqueued %lu dropped_overflow %lu: the two refusals only", s.enqueued,
		  s.dropped_overflow);
	hbus_queue_close(p);
	close(fd);
}

/* Killed between its ack and its next call: what is left is a READY slot
 * named in xhold in CLAIMED_AUTO, which recovery releases (counted in
 * released, as the return would have), and nothing is delivered twice. */
Test(queue_xhold, a_consumer_killed_before_returning_its_slot_delivers_nothing_twice)
{
	int fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	hbus_queue *p = open_x(fd, 1, HBUS_ACK_AUTO, HBUS_PRODUCE_EXCLUSIVE);
	hbus_queue *h = open_x(fd, 9, HBUS_ACK_AUTO, 0);
	struct hbus_recovery r;
	struct hbus_msg m;
	int st;
	pid_t pid;

	cr_assert_eq(tu_enqueue_id(p, 1, 5), 0);
	cr_assert_eq(tu_enqueue_id(p, 1, 6), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		hbus_queue *c = open_x(fd, 2, HBUS_ACK_AUTO, HBUS_CONSUME_EXCLUSIVE);

		if (hbus_queue_consume(c, &m) != 0 || seq_of(&m) != 5 || hbus_queue_ack(c, &m) != 0)
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child acked, then was killed");
	census(h, 1, 1);
	cr_assert_eq(hbus_queue_recover_owner(h, 2, &r), 0);
	cr_assert(r.released == 1 && r.requeued == 0, "released %u requeued %u", r.released,
		  r.requeued);
	census(h, 1, 0);
	stats_of(h, 1, 1);
	cr_assert_eq(hbus_queue_consume(h, &m), 0);
	cr_assert_eq(seq_of(&m), 6, "5 is not delivered again");
	cr_assert(!(m.flags & HBUS_MSG_REDELIVERED));
	cr_assert_eq(hbus_queue_ack(h, &m), 0);
	cr_assert_eq(hbus_queue_consume(h, &m), -EAGAIN);
	stats_of(h, 2, 2);
	hbus_queue_close(p);
	hbus_queue_close(h);
	close(fd);
}
