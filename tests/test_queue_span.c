/*
 * test_queue_span.c - messages that span cache lines, across processes,
 * and processes killed -9 in the middle of them.
 *
 * A latency queue (HBUS_QUEUE_F_LATENCY: producers CLDEMOTE what they
 * publish, consumers prefetch a message's other lines before the claim) of
 * 1,344-byte slots carries messages of 12..1,344 bytes (1 to 22 cache
 * lines, so the "first line written last" order and the prefetches are
 * exercised between processes) from 3 producer processes to 2 competing
 * consumer processes in manual ack mode.  A message is
 *
 *   producer (4) | seq (4) | fill derived from both | FNV-1a of all before (4)
 *
 * and its length is derived from (producer, seq) too: a torn, mixed,
 * misattributed or truncated message fails the consumer, byte by byte.
 *
 * exactly_once: no kills; every message delivered once, unflagged.
 * survive_kill_9: a chaos loop stops a producer inside
 * hbus_queue_enqueue_burst, or a consumer holding claims, kills it -9,
 * restarts it under a new owner id and recovers the dead one as hbusd
 * would (hbus_queue_recover_owner).  Every process writes down what it
 * does in a shared ledger first, so that afterwards each message is
 * accounted for exactly: delivered once, or redelivered flagged once per
 * claim a dead consumer held, or (only inside the burst a dead producer was
 * writing) never enqueued; acked once; and the queue's counters add up
 * (docs/QUEUE.md): enqueued = acked = messages delivered, delivered =
 * enqueued + requeued, requeued and aborted = what the recoveries said.
 *
 * Both run in every combination of shared and exclusive handles: three
 * shared producers or one exclusive (HBUS_PRODUCE_EXCLUSIVE), two shared
 * consumers or one exclusive (HBUS_CONSUME_EXCLUSIVE).  A killed process
 * is recovered before its successor starts, as hbusd grants exclusivity
 * again only once the dead owner is recovered.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

#define NPROD 3
#define NCONS 2
#define SLOT 1344u
#define CAPACITY 256u
#define PBURST 8u /* a producer's burst: 1..PBURST */
#define CBURST 4u /* a consumer's burst */
#define MAX_KILLS 40u

struct prod_state {
	_Atomic uint32_t next;    /* seqs below were enqueued (the call returned) */
	_Atomic uint32_t lo, hi;  /* the burst of the call in progress */
	_Atomic uint32_t in_call; /* 1 from before the call until next is stored */
};

struct cons_state {
	_Atomic uint32_t inst;     /* instance (restart count) writing holder[] */
	_Atomic uint32_t claiming; /* inside consume_burst, claims not written down */
	_Atomic uint32_t busy;     /* holds claims (reading them, acking them) */
	_Atomic uint32_t acking;   /* id + 1 of the message being acked, 0 none */
};

struct span {
	uint32_t per_prod;            /* seq space of each producer */
	uint32_t quota;               /* 0: produce until stop_prod */
	_Atomic uint32_t stop_prod, stop_cons;
	struct prod_state prod[NPROD];
	struct cons_state cons[NCONS];
	/* per id = producer * per_prod + seq: */
	_Atomic uint16_t *plain, *flagged, *acked;
	_Atomic uint32_t *holder;     /* consumer slot << 24 | instance of the last claim */
};

static size_t span_len(uint32_t per_prod)
{
	return sizeof(struct span) + (size_t)NPROD * per_prod * (3 * sizeof(uint16_t) + 4);
}

static struct span *span_new(uint32_t per_prod, uint32_t quota)
{
	struct span *l = mmap(NULL, span_len(per_prod), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	size_t n = (size_t)NPROD * per_prod;

	cr_assert_neq(l, MAP_FAILED);
	l->per_prod = per_prod;
	l->quota = quota;
	l->holder = (_Atomic uint32_t *)(l + 1);
	l->plain = (_Atomic uint16_t *)(l->holder + n);
	l->flagged = l->plain + n;
	l->acked = l->flagged + n;
	return l;
}

/* ------------------------------------------------------------ messages */

static uint32_t mix(uint32_t p, uint32_t seq)
{
	uint32_t h = p * 0x9e3779b1u ^ seq * 0x85ebca6bu;

	h ^= h >> 15;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 13);
}

/* 12..SLOT bytes, most of them several lines long. */
static uint32_t msg_len(uint32_t p, uint32_t seq)
{
	return 12 + mix(p, seq) % (SLOT - 12 + 1);
}

static uint32_t msg_make(uint8_t *b, uint32_t p, uint32_t seq)
{
	uint32_t len = msg_len(p, seq), h = mix(p, seq), sum, i;

	memcpy(b, &p, 4);
	memcpy(b + 4, &seq, 4);
	for (i = 8; i < len - 4; i++)
		b[i] = (uint8_t)(h + i * 131u + (i >> 8));
	sum = fnv1a32(b, len - 4);
	memcpy(b + len - 4, &sum, 4);
	return len;
}

/* The id of a message that is whole and exactly what its producer made,
 * or -1. */
static int64_t msg_check(const struct hbus_msg *m, uint32_t per_prod)
{
	static uint8_t want[SLOT];
	uint32_t p, seq;

	if (m->body_len < 12)
		return -1;
	memcpy(&p, m->body, 4);
	memcpy(&seq, m->body + 4, 4);
	if (p >= NPROD || seq >= per_prod || m->body_len != msg_len(p, seq))
		return -1;
	msg_make(want, p, seq);
	if (memcmp(want, m->body, m->body_len) != 0)
		return -1;
	return (int64_t)p * per_prod + seq;
}

/* ----------------------------------------------------------- processes */

/* The combination under test: how many producers and consumers, and the
 * flags their handles open with. */
static uint32_t n_prod = NPROD, n_cons = NCONS, prod_flags, cons_flags;

static hbus_queue *open_flags(int fd, uint32_t owner, uint32_t ack, uint32_t prefetch,
			      uint32_t flags)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack, .prefetch = prefetch,
				     .flags = flags };
	hbus_queue *q = NULL;

	if (hbus_queue_open_fd(fd, &o, &q))
		_exit(14);
	return q;
}

static void producer(int fd, struct span *l, uint32_t p, uint32_t owner, unsigned seed)
{
	static uint8_t buf[PBURST][SLOT];
	struct prod_state *ps = &l->prod[p];
	hbus_queue *q = open_flags(fd, owner, HBUS_ACK_AUTO, 0, prod_flags);
	uint32_t seq = atomic_load(&ps->next), end = l->quota ? l->quota : l->per_prod, i;
	struct hbus_out o[PBURST];
	unsigned spins = 0;

	while (seq < end && !atomic_load(&l->stop_prod)) {
		uint32_t n = 1 + (uint32_t)rand_r(&seed) % PBURST;
		int rc;

		n = n < end - seq ? n : end - seq;
		for (i = 0; i < n; i++)
			o[i] = (struct hbus_out){ .body = buf[i],
						  .body_len = msg_make(buf[i], p, seq + i) };
		atomic_store(&ps->lo, seq);
		atomic_store(&ps->hi, seq + n);
		atomic_store(&ps->in_call, 1);
		rc = hbus_queue_enqueue_burst(q, o, n);
		if (rc > 0) {
			seq += (uint32_t)rc;
			atomic_store(&ps->next, seq);
		}
		atomic_store(&ps->in_call, 0);
		if (rc > 0)
			spins = 0;
		else if (rc == -ENOBUFS)
			tu_backoff(&spins);
		else
			_exit(10);
	}
	/* Out of ids before the chaos ended: wait for it (a kill may still
	 * come, and must find a process, not a zombie). */
	while (!l->quota && !atomic_load(&l->stop_prod))
		usleep(1000);
	_exit(0);
}

static void consumer(int fd, struct span *l, uint32_t c, uint32_t owner)
{
	struct cons_state *cs = &l->cons[c];
	hbus_queue *q = open_flags(fd, owner, HBUS_ACK_MANUAL, 2 * CBURST, cons_flags);
	uint32_t tag = c << 24 | atomic_load(&cs->inst);
	struct hbus_msg m[CBURST];
	int64_t id[CBURST];
	unsigned spins = 0;

	for (;;) {
		uint64_t depth = 1;
		int n, i;

		atomic_store(&cs->claiming, 1);
		atomic_store(&cs->busy, 1);
		n = hbus_queue_consume_burst(q, m, CBURST);
		for (i = 0; i < n; i++) {
			id[i] = msg_check(&m[i], l->per_prod);
			if (id[i] < 0)
				_exit(11);
			atomic_fetch_add(m[i].flags & HBUS_MSG_REDELIVERED ? &l->flagged[id[i]]
									  : &l->plain[id[i]], 1);
			atomic_store(&l->holder[id[i]], tag);
		}
		atomic_store(&cs->claiming, 0);
		for (i = 0; i < n; i++) {
			/* Read it again while holding it: a kill lands here
			 * in the middle of a multi-line message. */
			if (msg_check(&m[i], l->per_prod) != id[i])
				_exit(12);
			atomic_store(&cs->acking, (uint32_t)id[i] + 1);
			if (hbus_queue_ack(q, &m[i]) != 0)
				_exit(13);
			atomic_fetch_add(&l->acked[id[i]], 1);
			atomic_store(&cs->acking, 0);
		}
		atomic_store(&cs->busy, 0);
		if (n > 0) {
			spins = 0;
			continue;
		}
		if (atomic_load(&l->stop_cons) && hbus_queue_depth(q, &depth) == 0 && depth == 0)
			break;
		tu_backoff(&spins);
	}
	hbus_queue_close(q);
	_exit(0);
}

/* ------------------------------------------------------------ the test */

struct run {
	struct span *l;
	int fd;
	hbus_queue *q;               /* the test's own handle (stats, recovery) */
	unsigned seed;
	pid_t prod_pid[NPROD], cons_pid[NCONS];
	uint32_t prod_owner[NPROD], cons_owner[NCONS], next_owner;
	/* what the kills did */
	unsigned prod_kills, cons_kills, mid_claim_kills, mid_call_kills;
	uint64_t skipped, requeued, released;
	uint8_t *doubt;              /* per id: in the burst a dead producer was writing */
	uint8_t *acking_dead;        /* per id: being acked when its consumer died */
	uint16_t *dead_holds;        /* per id: claims held by consumers that died */
};

static void start_producer(struct run *r, uint32_t p)
{
	r->prod_owner[p] = r->next_owner++;
	r->prod_pid[p] = tu_fork();
	cr_assert_geq(r->prod_pid[p], 0);
	if (r->prod_pid[p] == 0)
		producer(r->fd, r->l, p, r->prod_owner[p], r->seed + r->prod_owner[p]);
}

static void start_consumer(struct run *r, uint32_t c)
{
	r->cons_owner[c] = r->next_owner++;
	atomic_fetch_add(&r->l->cons[c].inst, 1);
	r->cons_pid[c] = tu_fork();
	cr_assert_geq(r->cons_pid[c], 0);
	if (r->cons_pid[c] == 0)
		consumer(r->fd, r->l, c, r->cons_owner[c]);
}

/* Wait until the processes in pids[0..n) have exited 0; fail at once if
 * any of the test's children ends otherwise (a consumer that found a
 * corrupt message exits 11: waiting on the producers would then hang). */
static void wait_exit0(struct run *r, const pid_t *pids, unsigned n, const char *what)
{
	unsigned left = n, spins = 0, i;
	bool done[NPROD + NCONS] = { false };

	while (left) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);

		if (p <= 0) {
			tu_backoff(&spins);
			continue;
		}
		for (i = 0; i < n && pids[i] != p; i++)
			;
		cr_assert(i < n, "%s %d ended (status 0x%x) while waiting for the %s", p == r->cons_pid[0] ||
			  p == r->cons_pid[1] ? "consumer" : "producer", (int)p, st, what);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %d failed: status 0x%x", what,
			  (int)p, st);
		cr_assert(!done[i]);
		done[i] = true;
		left--;
	}
}

/* As hbusd does once a process has exited: its writes become skips, its
 * claims come back flagged; -EAGAIN while the ring has no room (the
 * consumers, restarted first, make some).  Each call says what it did. */
static void recover(struct run *r, uint32_t owner)
{
	struct hbus_recovery rec;
	unsigned tries = 0;
	int rc;

	while ((rc = hbus_queue_recover_owner(r->q, owner, &rec)) == -EAGAIN) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);

		r->skipped += rec.skipped;
		r->requeued += rec.requeued;
		r->released += rec.released;
		cr_assert_leq(p, 0, "process %d ended (status 0x%x) while recovery waited for room",
			      (int)p, st);
		cr_assert_lt(tries++, 20000, "recovery of owner %u pending for 20 s", owner);
		usleep(1000);
	}
	cr_assert_eq(rc, 0, "recover owner %u: %s", owner, hbus_strerror(rc));
	r->skipped += rec.skipped;
	r->requeued += rec.requeued;
	r->released += rec.released;
}

/* Stop the victim until it is in the middle of something (a producer
 * inside enqueue_burst with room in the ring, a consumer holding claims),
 * within 200 tries, and kill it -9 there. */
static void stop_and_kill(struct run *r, pid_t pid, _Atomic uint32_t *mid, bool need_room)
{
	unsigned tries;
	int st;

	for (tries = 0;; tries++) {
		uint64_t depth = 0;

		cr_assert_eq(kill(pid, SIGSTOP), 0);
		cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
		cr_assert(WIFSTOPPED(st), "victim %d exited (status 0x%x)", (int)pid, st);
		cr_assert_eq(hbus_queue_depth(r->q, &depth), 0);
		if ((atomic_load(mid) && (!need_room || depth + PBURST <= CAPACITY)) || tries >= 200)
			break;
		cr_assert_eq(kill(pid, SIGCONT), 0);
		usleep((useconds_t)(50 + rand_r(&r->seed) % 500));
	}
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "victim status 0x%x", st);
}

static void kill_producer(struct run *r, uint32_t p)
{
	struct prod_state *ps = &r->l->prod[p];
	uint32_t i;

	stop_and_kill(r, r->prod_pid[p], &ps->in_call, true);
	r->prod_kills++;
	if (atomic_load(&ps->in_call)) {
		r->mid_call_kills++;
		/* The burst it was in: each of it enqueued or not; the next
		 * instance goes on after it. */
		for (i = atomic_load(&ps->lo); i < atomic_load(&ps->hi); i++)
			r->doubt[(size_t)p * r->l->per_prod + i] = 1;
		atomic_store(&ps->next, atomic_load(&ps->hi));
		atomic_store(&ps->in_call, 0);
	}
	recover(r, r->prod_owner[p]);
	start_producer(r, p);
}

static void kill_consumer(struct run *r, uint32_t c)
{
	struct cons_state *cs = &r->l->cons[c];
	uint32_t tag = c << 24 | atomic_load(&cs->inst), acking, owner = r->cons_owner[c];
	size_t i, n = (size_t)NPROD * r->l->per_prod;

	stop_and_kill(r, r->cons_pid[c], &cs->busy, false);
	r->cons_kills++;
	r->mid_claim_kills += atomic_load(&cs->claiming);
	acking = atomic_load(&cs->acking);
	/* What it held when it died must come back flagged (a message being
	 * acked may or may not have been). */
	for (i = 0; i < n; i++)
		if (atomic_load(&r->l->holder[i]) == tag && !atomic_load(&r->l->acked[i])) {
			if (acking == i + 1)
				r->acking_dead[i] = 1;
			else
				r->dead_holds[i]++;
			atomic_store(&r->l->holder[i], 0);
		}
	atomic_store(&cs->claiming, 0);
	atomic_store(&cs->busy, 0);
	atomic_store(&cs->acking, 0);
	recover(r, owner);
	start_consumer(r, c);
}

static void run_span(bool chaos, uint32_t pflags, uint32_t cflags)
{
	struct run r = { .seed = tu_seed(chaos ? "span kill -9" : "span exactly_once"),
			 .next_owner = 100 };
	struct hbus_queue_config cfg = { .capacity = CAPACITY, .slot_size = SLOT, .numa_node = -1,
					 .overflow = HBUS_OVERFLOW_REJECT,
					 .flags = HBUS_QUEUE_F_LATENCY };
	const char *e = getenv("HBUS_STRESS_MSGS");
	uint32_t quota;
	uint32_t per_prod, p, c;
	size_t i, n;
	uint64_t delivered_ids = 0, extra = 0, lost_in_doubt = 0;
	struct hbus_queue_stats s;
	struct hbus_msg m;

	prod_flags = pflags;
	cons_flags = cflags;
	n_prod = pflags ? 1 : NPROD;
	n_cons = cflags ? 1 : NCONS;
	quota = (e ? (uint32_t)strtoul(e, NULL, 10) : 2000000u) / 20 / NPROD / 4;
	per_prod = chaos ? 1u << 19 : quota;
	n = (size_t)NPROD * per_prod;
	r.l = span_new(per_prod, chaos ? 0 : quota);
	cr_log_info("producers %s, consumers %s", pflags ? "one, exclusive" : "shared",
		    cflags ? "one, exclusive" : "shared");
	r.fd = tu_queue_fd_cfg(&cfg);
	r.q = tu_open(r.fd, 2, HBUS_ACK_MANUAL, 0);
	r.doubt = calloc(n, 1);
	r.acking_dead = calloc(n, 1);
	r.dead_holds = calloc(n, sizeof(uint16_t));
	cr_assert(r.doubt && r.acking_dead && r.dead_holds);
	for (c = 0; c < n_cons; c++)
		start_consumer(&r, c);
	for (p = 0; p < n_prod; p++)
		start_producer(&r, p);

	if (chaos) {
		unsigned k;

		/* Kills a few ms apart, producers and consumers alike. */
		for (k = 0; k < MAX_KILLS; k++) {
			unsigned who = (unsigned)rand_r(&r.seed) % (n_prod + n_cons);

			usleep((useconds_t)(2000 + rand_r(&r.seed) % 8000));
			if (who < n_prod)
				kill_producer(&r, who);
			else
				kill_consumer(&r, who - n_prod);
		}
		atomic_store(&r.l->stop_prod, 1);
	}
	wait_exit0(&r, r.prod_pid, n_prod, "producers");
	atomic_store(&r.l->stop_cons, 1);
	wait_exit0(&r, r.cons_pid, n_cons, "consumers");
	cr_assert_eq(hbus_queue_consume(r.q, &m), -EAGAIN, "a message left in the queue");

	/* The ledger, message by message. */
	for (i = 0; i < n; i++) {
		uint32_t plain = atomic_load(&r.l->plain[i]), fl = atomic_load(&r.l->flagged[i]);
		uint32_t acks = atomic_load(&r.l->acked[i]), seq = (uint32_t)(i % per_prod);
		uint32_t prod = (uint32_t)(i / per_prod), want_fl;

		if (seq >= atomic_load(&r.l->prod[prod].next)) {
			cr_assert_eq(plain + fl, 0, "id %zu delivered, never sent", i);
			continue;
		}
		cr_assert_leq(plain, 1, "id %zu delivered unflagged %u times", i, plain);
		if (plain + fl == 0) {
			cr_assert(r.doubt[i], "id %zu (producer %u seq %u) lost", i, prod, seq);
			lost_in_doubt++;
			continue;
		}
		delivered_ids++;
		/* Acked once: by us (recorded), or by a consumer that died
		 * between its ack and writing it down. */
		cr_assert(acks == 1 || (acks == 0 && r.acking_dead[i]),
			  "id %zu acked %u times (acking when its consumer died: %u)", i, acks,
			  r.acking_dead[i]);
		/* One flagged redelivery per claim a dead consumer held... */
		want_fl = r.dead_holds[i] + (r.acking_dead[i] && acks == 1);
		cr_assert_geq(fl, want_fl, "id %zu: %u flagged deliveries, %u claims died", i, fl,
			      want_fl);
		if (!chaos)
			cr_assert(plain == 1 && fl == 0, "id %zu: %u plain, %u flagged", i, plain, fl);
		/* ...plus claims taken by a consumer killed before it could
		 * write them down (bounded below). */
		extra += fl - want_fl;
	}
	cr_assert_leq(extra, (uint64_t)r.mid_claim_kills * 2 * CBURST,
		      "%lu deliveries nobody wrote down, %u kills inside a claim", extra,
		      r.mid_claim_kills);

	/* The queue's counters (docs/QUEUE.md, "Accounting"). */
	cr_assert_eq(hbus_queue_stats(r.q, &s), 0);
	cr_log_info("%s: %lu messages of up to %u bytes, %u producer and %u consumer kills "
		    "(%u inside a claim); recovery: %lu skipped, %lu requeued; %lu in-doubt never "
		    "sent", chaos ? "kill -9" : "no kills", delivered_ids, SLOT, r.prod_kills,
		    r.cons_kills, r.mid_claim_kills, r.skipped, r.requeued, lost_in_doubt);
	cr_assert_eq(s.released + s.rejected + s.expired + s.dropped_head + s.dropped_oversize, 0);
	cr_assert_eq(s.requeued, r.requeued, "requeued %lu, recoveries requeued %lu", s.requeued,
		     r.requeued);
	cr_assert_eq(s.aborted, r.skipped, "aborted %lu, recoveries skipped %lu", s.aborted,
		     r.skipped);
	cr_assert_eq(s.enqueued, delivered_ids, "enqueued %lu, %lu distinct messages delivered",
		     s.enqueued, delivered_ids);
	cr_assert_eq(s.acked, delivered_ids, "acked %lu of %lu", s.acked, delivered_ids);
	cr_assert_eq(s.delivered, s.enqueued + s.requeued, "delivered %lu != enqueued %lu + "
		     "requeued %lu", s.delivered, s.enqueued, s.requeued);
	if (chaos) {
		/* The kills hit something: writes cut short (an exclusive
		 * producer leaves no WRITING slot to skip: inside its call),
		 * claims taken back. */
		if (pflags)
			cr_assert_gt(r.mid_call_kills, 0, "no producer kill of %u landed in a call",
				     r.prod_kills);
		else
			cr_assert_gt(r.skipped, 0, "no producer kill of %u landed mid-message",
				     r.prod_kills);
		cr_assert_gt(r.requeued, 0, "no consumer kill of %u found claims", r.cons_kills);
	} else {
		cr_assert_eq(delivered_ids, (uint64_t)n_prod * quota);
	}
	free(r.doubt);
	free(r.acking_dead);
	free(r.dead_holds);
	hbus_queue_close(r.q);
	close(r.fd);
	munmap(r.l, span_len(per_prod));
}

TestSuite(queue_span, .timeout = 300);

#define XP HBUS_PRODUCE_EXCLUSIVE
#define XC HBUS_CONSUME_EXCLUSIVE

Test(queue_span, multi_line_messages_exactly_once)
{
	run_span(false, 0, 0);
}

Test(queue_span, multi_line_messages_exactly_once_exclusive_both)
{
	run_span(false, XP, XC);
}

Test(queue_span, multi_line_messages_survive_kill_9_and_counters_add_up)
{
	run_span(true, 0, 0);
}

Test(queue_span, kill_9_exclusive_producer_shared_consumers)
{
	run_span(true, XP, 0);
}

Test(queue_span, kill_9_shared_producers_exclusive_consumer)
{
	run_span(true, 0, XC);
}

Test(queue_span, kill_9_exclusive_both)
{
	run_span(true, XP, XC);
}
