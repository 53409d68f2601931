/*
 * test_queue_crash.c - kill a process at every crash point of the ring's
 * state machine, run the recovery hbusd runs, and check the ledger.
 *
 * In the spirit of SQLite's crash tests: the ring code is compiled a second
 * time with crash points (shm/queue_crash.h; meson -Dcrashpoints=true, the
 * product has none).  For every point x (its first pass, a later pass) x
 * scenario (one slot, runs, a full ring, drop-head, TTL, a latency queue,
 * purge, lagging cursors, and hbusd itself dying mid-recovery in place or
 * by copy), a child works on a fresh queue and is SIGKILLed at that pass.
 * The parent then does what hbusd does (recover the dead owner, settling
 * its journals first), drains the queue, and checks:
 *   - no byte of any message is torn (ids, lengths, checksums);
 *   - a message is delivered again only with HBUS_MSG_REDELIVERED, and
 *     never after its ack or reject returned;
 *   - every accepted message was delivered, or is counted in a named drop;
 *   - the counters satisfy docs/QUEUE.md's identities exactly;
 *   - nothing is left held, no record leaks, no sleeper bit is left, and
 *     the ring goes on.
 * It prints how many points and cases ran, and fails if a point was never
 * reached by any case.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crash_ledger.h"
#include "queue_internal.h"
#include "testutil.h"

#define VICTIM     100u /* the owner the killed child works as */
#define DEAD       200u /* a dead owner the child (as hbusd) is recovering */
#define PARENT     1u   /* the parent, as the next hbusd */
#define STEPS      160u
#define HELD_MAX   64u

struct knobs {
	unsigned reserve : 1, aborts : 1, auto_ack : 1, ttl_sleep : 1, purge : 1, hook : 1,
		wait : 1, xp : 1, xc : 1; /* the only producer, the only consumer */
	unsigned burst_max, len_max;
};

struct scenario {
	const char *name;
	struct hbus_queue_config cfg;
	struct knobs k;
	/* In the parent, before the fork (white-box set-up). */
	void (*setup)(int fd, struct ledger *l);
	/* The child's work; NULL: the mixed workload with k. */
	void (*work)(int fd, struct ledger *l, const struct knobs *k, unsigned seed);
	uint32_t dead_owner; /* the child recovers this owner (0: none) */
};

static unsigned long hooked;

static void count_hook(void *ctx, hbus_queue *q, const struct hbus_msg *m,
		       enum hbus_dead_reason why)
{
	uint32_t producer, id;

	(void)ctx, (void)q, (void)why;
	/* A dead-letter copy must be whole too. */
	if (!msg_check(m->body, m->body_len, &producer, &id))
		_exit(3);
	hooked++;
}

/* The data file of the case's queue when it is protected (-1: none). */
static int case_dfd = -1;

static hbus_queue *open_as(int fd, uint32_t owner, uint32_t ack_mode, uint32_t flags)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack_mode, .flags = flags };
	hbus_queue *q = NULL;

	if (hbus_queue_open_fds(fd, case_dfd, &o, &q))
		_exit(4);
	return q;
}

/* The same in the parent, where a failure is an assertion. */
static hbus_queue *popen_flags(int fd, uint32_t owner, uint32_t ack_mode, uint32_t flags)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack_mode, .flags = flags };
	hbus_queue *q = NULL;
	int rc = hbus_queue_open_fds(fd, case_dfd, &o, &q);

	cr_assert_eq(rc, 0, "open: %s", hbus_strerror(rc));
	return q;
}

static hbus_queue *popen_as(int fd, uint32_t owner, uint32_t ack_mode)
{
	return popen_flags(fd, owner, ack_mode, 0);
}

/* ------------------------------------------------------ the child's work */

static uint32_t msg_len(const struct knobs *k, unsigned *seed)
{
	return MSG_HDR_LEN + (uint32_t)rand_r(seed) % (k->len_max - MSG_HDR_LEN + 1);
}

static uint32_t produce(hbus_queue *p, struct ledger *l, const struct knobs *k, unsigned *seed,
			uint32_t id)
{
	static uint8_t bodies[16][1344];
	struct hbus_out out[16];
	unsigned n = 1 + (unsigned)rand_r(seed) % k->burst_max;
	int rc;

	if (k->reserve) {
		struct hbus_reservation r;
		uint32_t len = msg_len(k, seed);
		int abort_it = k->aborts && rand_r(seed) % 8 == 0;

		ledger_add(l, EV_ENQ_BEGIN, id, 0, 0, 1);
		rc = hbus_queue_reserve(p, &r);
		if (rc == 0) {
			msg_make(r.data, VICTIM, id, len);
			rc = abort_it ? hbus_queue_abort(p, &r)
				      : hbus_queue_commit(p, &r, 0, len, 0, 0);
			rc = rc == 0 && !abort_it ? 1 : rc ? rc : 0;
		}
		ledger_add(l, EV_ENQ_END, id, rc, 0, 1);
		return id + 1;
	}
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = msg_len(k, seed);

		msg_make(bodies[i], VICTIM, id + i, len);
		out[i] = (struct hbus_out){ .body = bodies[i], .body_len = len };
	}
	ledger_add(l, EV_ENQ_BEGIN, id, 0, 0, (uint16_t)n);
	rc = hbus_queue_enqueue_burst(p, out, n);
	ledger_add(l, EV_ENQ_END, id, rc, 0, (uint16_t)n);
	return id + n;
}

static void deliver(struct ledger *l, const struct hbus_msg *m)
{
	uint32_t producer, id;

	if (!msg_check(m->body, m->body_len, &producer, &id) || producer != VICTIM)
		_exit(3); /* torn under a live consumer */
	ledger_add(l, EV_DELIVER, id, 0, m->flags, 0);
}

static uint32_t id_of(const struct hbus_msg *m)
{
	uint32_t id;

	memcpy(&id, m->body + 4, 4);
	return id;
}

static void work_mixed(int fd, struct ledger *l, const struct knobs *k, unsigned seed)
{
	hbus_queue *p = open_as(fd, VICTIM, HBUS_ACK_AUTO, k->xp ? HBUS_PRODUCE_EXCLUSIVE : 0);
	hbus_queue *c = open_as(fd, VICTIM, k->auto_ack ? HBUS_ACK_AUTO : HBUS_ACK_MANUAL,
				k->xc ? HBUS_CONSUME_EXCLUSIVE : 0);
	struct hbus_msg held[HELD_MAX], got[8];
	unsigned nheld = 0;
	uint32_t id = 0;
	uint64_t purged;

	if (k->hook) {
		hbus_queue_set_dead_letter(p, count_hook, NULL);
		hbus_queue_set_dead_letter(c, count_hook, NULL);
	}
	if (k->xc && !k->auto_ack) {
		/* Every run, not only when the dice say so: the only
		 * consumer's message held through xhold, nacked (pinned first). */
		struct hbus_msg x;

		id = produce(p, l, k, &seed, id);
		if (hbus_queue_consume(c, &x) == 0) {
			deliver(l, &x);
			ledger_add(l, EV_REQUEUE, id_of(&x), hbus_queue_nack(c, &x, 1), 0, 0);
		}
	}
	for (unsigned step = 0; step < STEPS; step++) {
		unsigned r = (unsigned)rand_r(&seed) % 10;

		if (k->ttl_sleep && step % 16 == 0)
			usleep(1500);
		if (k->purge && step % 20 == 10) {
			ledger_add(l, EV_BEGIN_OTHER, 0, 0, 0, 0);
			hbus_queue_purge(c, 3, &purged);
			ledger_add(l, EV_END_OTHER, 0, 0, 0, 0);
		}
		if (r < 4) {
			id = produce(p, l, k, &seed, id);
		} else if (r < 7 && nheld < HELD_MAX - 8) {
			unsigned want = 1 + (unsigned)rand_r(&seed) % 8;
			int n;

			/* One at a time as well: the only consumer's single
			 * claims take its record's xhold, not the slot. */
			if (want <= (k->xc ? 4u : 1u))
				n = hbus_queue_consume(c, &got[0]) == 0;
			else
				n = hbus_queue_consume_burst(c, got, want);

			if (n == 0 && k->wait)
				hbus_queue_wait(c, 0);
			for (int i = 0; i < n; i++)
				deliver(l, &got[i]);
			if (n > 1 && (k->auto_ack ? r != 6 : r == 6)) {
				/* A burst acked at once: its consecutive claims
				 * take one journal entry (ARUN_*). */
				int rc = hbus_queue_ack_burst(c, got, (unsigned)n);

				for (int i = 0; i < n; i++)
					ledger_add(l, EV_ACK, id_of(&got[i]), rc, 0, 0);
				n = 0;
			}
			for (int i = 0; i < n; i++) {
				if (k->auto_ack)
					ledger_add(l, EV_ACK, id_of(&got[i]), hbus_queue_ack(c, &got[i]), 0, 0);
				else
					held[nheld++] = got[i];
			}
		} else if (nheld) {
			unsigned i = (unsigned)rand_r(&seed) % nheld, how = (unsigned)rand_r(&seed) % 5;
			uint32_t mid = id_of(&held[i]);
			int rc;

			if (how < 3) {
				rc = hbus_queue_ack(c, &held[i]);
				ledger_add(l, EV_ACK, mid, rc, 0, 0);
			} else if (how == 3) {
				rc = hbus_queue_nack(c, &held[i], 1);
				ledger_add(l, EV_REQUEUE, mid, rc, 0, 0);
			} else {
				rc = hbus_queue_nack(c, &held[i], 0);
				ledger_add(l, EV_REJECT, mid, rc, 0, 0);
			}
			if (rc != -EAGAIN)
				held[i] = held[--nheld];
		}
	}
	while (nheld) {
		nheld--;
		ledger_add(l, EV_ACK, id_of(&held[nheld]), hbus_queue_ack(c, &held[nheld]), 0, 0);
	}
	hbus_queue_close(p);
	hbus_queue_close(c);
	_exit(0);
}

/* The child as hbusd: recover a dead owner the parent set up. */
static void work_recover(int fd, struct ledger *l, const struct knobs *k, unsigned seed)
{
	hbus_queue *h = open_as(fd, VICTIM, HBUS_ACK_AUTO, 0);
	struct hbus_recovery r;

	(void)l, (void)k, (void)seed;
	/* -EAGAIN (full): the parent's drain makes room and finishes. */
	if (hbus_queue_recover_owner(h, DEAD, &r) == 0)
		hbus_queue_close(h);
	_exit(0);
}

/* ------------------------------------------------- the parent's set-ups */

/* The dead owner's handles, open in the parent (unused: it is "dead"),
 * closed once the case is checked. */
static hbus_queue *dead_handles[4];

/* A dead owner holding a bit of everything: manual claims, an auto claim,
 * a message held through an only consumer's xhold (its second single
 * claim: the first, behind the others' claims, walks), a half-written
 * reservation, an unpublished run, and a removal it did not finish.  What
 * it was handed is in the ledger as delivered. */
static void setup_dead(int fd, struct ledger *l, int fill)
{
	hbus_queue *p = popen_as(fd, DEAD, HBUS_ACK_AUTO);
	hbus_queue *c = popen_as(fd, DEAD, HBUS_ACK_MANUAL);
	hbus_queue *a = popen_as(fd, DEAD, HBUS_ACK_AUTO);
	hbus_queue *x = popen_flags(fd, DEAD, HBUS_ACK_MANUAL, HBUS_CONSUME_EXCLUSIVE);
	struct knobs k = { .burst_max = 1, .len_max = 64 };
	unsigned seed = 7, cap = (unsigned)p->mask + 1;
	struct hbus_reservation r;
	struct hbus_msg m[4];
	uint32_t id = 0;
	uint64_t t, lap;

	dead_handles[0] = p;
	dead_handles[1] = c;
	dead_handles[2] = a;
	for (unsigned i = 0; i < (fill ? cap : 6); i++)
		id = produce(p, l, &k, &seed, id);
	cr_assert_eq(hbus_queue_consume_burst(c, m, 2), 2);
	deliver(l, &m[0]);
	deliver(l, &m[1]);
	cr_assert_eq(hbus_queue_consume(a, &m[2]), 0);
	deliver(l, &m[2]);
	dead_handles[3] = x;
	for (unsigned i = 0; i < 2; i++) {
		cr_assert_eq(hbus_queue_consume(x, &m[3]), 0);
		deliver(l, &m[3]);
	}
	cr_assert_eq(x->xhold, m[3].pos + 1, "the second claim is held through xhold");
	if (fill)
		return; /* full: the claims must be requeued in place */
	/* The next READY message was being dropped by it. */
	t = x->next_head;
	lap = pos_lap(p, t);
	cr_assert_eq(atomic_load(slot_state(p, t)), slot_word(lap, 0, SLOT_READY));
	atomic_store(slot_state(p, t), slot_word_run(lap, p->holder, SLOT_REMOVING, REMOVE_DROPPED + 1));
	/* A reservation half written, then a run of three claimed and one
	 * of its slots published, the first still WRITING. */
	ledger_add(l, EV_ENQ_BEGIN, id, 0, 0, 1);
	cr_assert_eq(hbus_queue_reserve(p, &r), 0);
	t = p->next_tail;
	atomic_store(slot_state(p, t), slot_word_run(pos_lap(p, t), p->holder, SLOT_WRITING, 3));
	atomic_store(slot_state(p, t + 2), slot_word(pos_lap(p, t + 2), 0, SLOT_READY));
	atomic_store(&p->hdr->tail, t + 3);
	/* Its handles stay open, unused: the owner is dead. */
}

static void setup_dead_copy(int fd, struct ledger *l) { setup_dead(fd, l, 0); }
static void setup_dead_full(int fd, struct ledger *l) { setup_dead(fd, l, 1); }

/* Cursors three laps behind the slots: walkers must jump, not walk. */
static void setup_lagging(int fd, struct ledger *l)
{
	hbus_queue *q = popen_as(fd, PARENT + 1, HBUS_ACK_AUTO);
	uint64_t cap = q->mask + 1;
	struct hbus_msg m;

	(void)l;
	for (unsigned i = 0; i < 3 * cap + 3; i++) {
		cr_assert_eq(tu_enqueue_id(q, 9, i), 0);
		cr_assert_eq(hbus_queue_consume(q, &m), 0);
		cr_assert_eq(hbus_queue_ack(q, &m), 0);
	}
	atomic_store(&q->hdr->tail, atomic_load(&q->hdr->tail) - 3 * cap);
	atomic_store(&q->hdr->head, atomic_load(&q->hdr->head) - 3 * cap);
	hbus_queue_close(q);
}

#define CFG(cap, slot, ovf, ttl, fl) \
	{ .capacity = cap, .slot_size = slot, .overflow = ovf, .ttl_ms = ttl, .numa_node = -1, \
	  .flags = fl }

static const struct scenario scenarios[] = {
	{ .name = "one-slot", .cfg = CFG(32, 96, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .reserve = 1, .aborts = 1, .auto_ack = 1, .burst_max = 1, .len_max = 96 } },
	{ .name = "runs", .cfg = CFG(64, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .burst_max = 16, .len_max = 64, .wait = 1 } },
	{ .name = "full-ring", .cfg = CFG(8, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .burst_max = 12, .len_max = 64 } },
	{ .name = "drop-head", .cfg = CFG(8, 64, HBUS_OVERFLOW_DROP_HEAD, 0, 0),
	  .k = { .burst_max = 6, .len_max = 64, .hook = 1 } },
	{ .name = "ttl", .cfg = CFG(32, 64, HBUS_OVERFLOW_REJECT, 1, 0),
	  .k = { .burst_max = 8, .len_max = 64, .ttl_sleep = 1, .hook = 1 } },
	{ .name = "latency", .cfg = CFG(32, 1344, HBUS_OVERFLOW_REJECT, 0, HBUS_QUEUE_F_LATENCY),
	  .k = { .burst_max = 16, .len_max = 1344 } },
	{ .name = "protected", .cfg = CFG(16, 200, HBUS_OVERFLOW_DROP_HEAD, 0, HBUS_QUEUE_F_PROTECTED),
	  .k = { .burst_max = 8, .len_max = 200, .hook = 1 } },
	{ .name = "exclusive-producer", .cfg = CFG(16, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .burst_max = 12, .len_max = 64, .xp = 1 } },
	{ .name = "exclusive-consumer", .cfg = CFG(16, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .burst_max = 12, .len_max = 64, .xc = 1, .wait = 1 } },
	{ .name = "exclusive-both", .cfg = CFG(8, 300, HBUS_OVERFLOW_REJECT, 0, HBUS_QUEUE_F_LATENCY),
	  .k = { .burst_max = 6, .len_max = 300, .xp = 1, .xc = 1, .auto_ack = 1 } },
	{ .name = "purge", .cfg = CFG(32, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .burst_max = 6, .len_max = 64, .purge = 1 } },
	{ .name = "lagging-cursors", .cfg = CFG(16, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .burst_max = 4, .len_max = 64 }, .setup = setup_lagging },
	{ .name = "recovery-by-copy", .cfg = CFG(32, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .len_max = 64 }, .setup = setup_dead_copy, .work = work_recover,
	  .dead_owner = DEAD },
	{ .name = "recovery-in-place", .cfg = CFG(8, 64, HBUS_OVERFLOW_REJECT, 0, 0),
	  .k = { .len_max = 64 }, .setup = setup_dead_full, .work = work_recover,
	  .dead_owner = DEAD },
};

/* ------------------------------------------------------------ the checks */

struct idst {
	uint8_t known, accepted, final, seen;
};

struct books {
	struct idst *id;
	uint32_t n_ids;
	uint64_t unseen_accepted;
	const char *where;
};

static struct idst *idst(struct books *b, uint32_t id)
{
	cr_assert_lt(id, b->n_ids, "%s: an id no one produced: %u", b->where, id);
	return &b->id[id];
}

/* One delivery, by the child (from the ledger) or the parent's drain. */
static void book_delivery(struct books *b, uint32_t id, uint16_t flags)
{
	struct idst *s = idst(b, id);

	cr_assert(s->known, "%s: id %u delivered but never enqueued", b->where, id);
	cr_assert(!s->final, "%s: id %u delivered after its ack or reject returned", b->where, id);
	cr_assert(!s->seen || (flags & HBUS_MSG_REDELIVERED),
		  "%s: id %u delivered again without the redelivered flag", b->where, id);
	s->seen = 1;
}

static void read_ledger(struct books *b, const struct ledger *l)
{
	uint32_t begin_id = 0, begin_n = 0;

	for (uint32_t i = 0; i < atomic_load(&l->count); i++) {
		const struct ev *e = &l->ev[i];

		switch (e->kind) {
		case EV_ENQ_BEGIN:
			begin_id = e->id;
			begin_n = e->n;
			for (uint32_t j = 0; j < e->n; j++)
				idst(b, e->id + j)->known = 1;
			break;
		case EV_ENQ_END:
			for (uint32_t j = 0; e->rc > 0 && j < (uint32_t)e->rc; j++)
				idst(b, begin_id + j)->accepted = 1;
			for (uint32_t j = e->rc > 0 ? (uint32_t)e->rc : 0; j < begin_n; j++)
				idst(b, begin_id + j)->known = 0; /* refused: must never show */
			begin_n = 0;
			break;
		case EV_DELIVER:
			book_delivery(b, e->id, e->flags);
			break;
		case EV_ACK:
		case EV_REJECT:
			if (e->rc == 0)
				idst(b, e->id)->final = 1;
			break;
		default:
			break;
		}
	}
}

/* Take one message from the queue as the parent: it must be whole, known,
 * and flagged if seen before.  0 when the queue had none (expired ones
 * removed on the way count as room made: 1). */
static int drain_one(hbus_queue *q, struct books *b)
{
	struct hbus_queue_stats before, after;
	struct hbus_msg m;
	uint32_t producer, id;

	hbus_queue_stats(q, &before);
	if (hbus_queue_consume(q, &m) != 0) {
		hbus_queue_stats(q, &after);
		return after.expired != before.expired;
	}
	cr_assert(msg_check(m.body, m.body_len, &producer, &id), "%s: a torn message", b->where);
	if (producer == VICTIM)
		book_delivery(b, id, m.flags);
	cr_assert_eq(hbus_queue_ack(q, &m), 0);
	return 1;
}

static void check_case(int fd, struct ledger *l, const struct scenario *sc, const char *where)
{
	hbus_queue *q = popen_as(fd, PARENT, HBUS_ACK_MANUAL);
	struct books b = { .n_ids = LEDGER_MAX, .where = where };
	struct hbus_queue_stats s;
	struct hbus_recovery r;
	struct hbus_queue_census census;
	uint64_t removed, lost_auto = 0;
	unsigned tries = 0;
	uint32_t owners[] = { VICTIM, sc->dead_owner };

	b.id = calloc(b.n_ids, sizeof(*b.id));
	read_ledger(&b, l);
	/* What hbusd does: the dead child's records (its journals settled
	 * first), then the owner it was recovering, making room while a
	 * requeue waits for it. */
	for (unsigned o = 0; o < 2; o++) {
		int rc;

		if (!owners[o])
			continue;
		while ((rc = hbus_queue_recover_owner(q, owners[o], &r)) == -EAGAIN) {
			cr_assert(drain_one(q, &b), "%s: recovery waits but nothing to drain", where);
			cr_assert_lt(++tries, 100000u);
		}
		cr_assert_eq(rc, 0, "%s: recovery of owner %u: %s", where, owners[o],
			     hbus_strerror(rc));
		/* Auto ack: the claim was the delivery, even if the dead
		 * process never got to read it (at most once, by choice). */
		lost_auto += r.released;
	}
	while (drain_one(q, &b))
		;
	cr_assert_eq(hbus_queue_stats(q, &s), 0);
	cr_assert_eq(hbus_queue_scan(q, &census), 0);
	cr_assert_eq(census.ready + census.claimed + census.writing + census.removing, 0,
		     "%s: %lu ready, %lu claimed, %lu writing, %lu removing after the drain", where,
		     census.ready, census.claimed, census.writing, census.removing);
	cr_assert_eq(s.handles, 1u, "%s: %u records in use (only ours should be)", where, s.handles);
	cr_assert(!sleepers_any(q), "%s: a dead sleeper's bit was left", where);
	removed = s.expired + s.dropped_head + s.purged;
	cr_assert_eq(s.enqueued, s.acked + s.released + s.rejected + removed,
		     "%s: enqueued %lu != acked %lu + released %lu + rejected %lu + expired %lu + "
		     "dropped_head %lu + purged %lu", where, s.enqueued, s.acked, s.released,
		     s.rejected, s.expired, s.dropped_head, s.purged);
	cr_assert_eq(s.delivered, s.acked + s.released + s.rejected + s.requeued,
		     "%s: delivered %lu != acked %lu + released %lu + rejected %lu + requeued %lu",
		     where, s.delivered, s.acked, s.released, s.rejected, s.requeued);
	for (uint32_t i = 0; i < b.n_ids; i++)
		b.unseen_accepted += b.id[i].accepted && !b.id[i].seen;
	cr_assert_leq(b.unseen_accepted, removed + lost_auto,
		      "%s: %lu accepted messages never delivered, only %lu removed by count and %lu "
		      "auto claims of the dead released", where, b.unseen_accepted, removed, lost_auto);
	/* The ring goes on: a lap and a half through it. */
	for (uint32_t i = 0; i < (uint32_t)(q->mask + 1) * 3 / 2; i++) {
		struct hbus_msg m;

		cr_assert_eq(tu_enqueue_id(q, 5, i), 0, "%s: the ring is stuck", where);
		cr_assert_eq(hbus_queue_consume(q, &m), 0);
		cr_assert_eq(hbus_queue_ack(q, &m), 0);
	}
	free(b.id);
	hbus_queue_close(q);
	for (unsigned i = 0; i < 4; i++) {
		if (dead_handles[i])
			hbus_queue_close(dead_handles[i]);
		dead_handles[i] = NULL;
	}
}

/* Run one case; returns 1 when the child was killed at the point. */
static int run_case(const struct scenario *sc, int point, unsigned long hit, unsigned seed)
{
	struct ledger *l = ledger_new();
	char where[160], path[96], data[104];
	int fd, status;
	pid_t pid;

	if (sc->cfg.flags & HBUS_QUEUE_F_PROTECTED) {
		snprintf(path, sizeof(path), "/dev/shm/hbus-crash-%d", (int)getpid());
		snprintf(data, sizeof(data), "%s.data", path);
		unlink(path);
		unlink(data);
		cr_assert_eq(hbus_queue_create_protected(path, data, "crash", &sc->cfg, &fd, &case_dfd), 0);
		unlink(path);
		unlink(data);
	} else {
		fd = tu_queue_fd_cfg(&sc->cfg);
	}
	snprintf(where, sizeof(where), "%s, point %s, pass %lu, seed %u", sc->name,
		 point >= 0 ? hbus_crashpoint_names[point] : "none", hit, seed);
	if (sc->setup)
		sc->setup(fd, l);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		hbus_crashpoint_arm(point, hit);
		(sc->work ? sc->work : work_mixed)(fd, l, &sc->k, seed);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) ? WEXITSTATUS(status) == 0 : WTERMSIG(status) == SIGKILL,
		  "%s: the child failed (status %#x: 3 = a torn message, 4 = no record)", where,
		  status);
	check_case(fd, l, sc, where);
	close(fd);
	if (case_dfd >= 0)
		close(case_dfd);
	case_dfd = -1;
	ledger_free(l);
	return WIFSIGNALED(status);
}

Test(queue_crash, every_point_every_scenario, .timeout = 900)
{
	unsigned reached[HBUS_CP_COUNT] = { 0 }, cases = 0, kills = 0, missing = 0;
	const unsigned long hits[] = { 1, 4 };
	unsigned seed = (unsigned)getpid();
	const char *env = getenv("HBUS_CRASH_SEED");

	if (env)
		seed = (unsigned)strtoul(env, NULL, 0);
	cr_log_info("seed %u (HBUS_CRASH_SEED=%u repeats this run)", seed, seed);
	fprintf(stderr, "crash: seed %u\n", seed);
	for (unsigned si = 0; si < sizeof(scenarios) / sizeof(scenarios[0]); si++) {
		/* Unarmed first: the scenario's ledger holds without a kill. */
		run_case(&scenarios[si], -1, 0, seed + si);
		cases++;
		for (int p = 0; p < HBUS_CP_COUNT; p++) {
			for (unsigned h = 0; h < 2; h++) {
				int killed = run_case(&scenarios[si], p, hits[h], seed + si);

				reached[p] += (unsigned)killed;
				kills += (unsigned)killed;
				cases++;
			}
		}
	}
	for (int p = 0; p < HBUS_CP_COUNT; p++) {
		if (!reached[p]) {
			fprintf(stderr, "crash: point %s was never reached\n", hbus_crashpoint_names[p]);
			missing++;
		}
	}
	fprintf(stderr, "crash: %d points x %zu passes x %zu scenarios: %u cases, %u killed at "
		"their point, every ledger checked\n", HBUS_CP_COUNT, sizeof(hits) / sizeof(hits[0]),
		sizeof(scenarios) / sizeof(scenarios[0]), cases, kills);
	cr_assert_eq(missing, 0, "%u crash points were never reached by any scenario", missing);
}
