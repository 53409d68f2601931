/*
 * test_hbusd_exclusive.c - the exclusive producer and consumer as hbusd
 * grants and enforces them (docs/CONTROL.md, "Exclusive handles"), with
 * the real hbusd, real client processes and kill -9.
 *
 * A handle that claims without a CAS corrupts the queue if anyone else
 * claims beside it, so each refusal here is a corruption prevented: a
 * second consumer, a reader, a purge beside the only consumer; a second
 * writer beside the only producer, across session closes, process deaths
 * and hbusd restarts.  Every delivery is checked by id and checksum.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_internal.h"
#include "hbusd_harness.h"
#include "queue_internal.h"
#include "testutil.h"

static struct hb_env env;
static pid_t kids[4];
static unsigned n_kids;

static void setup(void)
{
	hb_env_init(&env, "excl");
	hb_start(&env, NULL);
}

static void teardown(void)
{
	hb_kill_all(kids, &n_kids);
	hb_env_fini(&env);
}

TestSuite(exclusive, .init = setup, .fini = teardown, .timeout = 180);

static hbus_client *client(void)
{
	struct hbus_client_opts o = { .bus = env.bus, .run_dir = env.run };
	hbus_client *c = NULL;
	int rc = hbus_connect(&o, &c);

	cr_assert_eq(rc, 0, "hbus_connect: %s", hbus_strerror(rc));
	return c;
}

static void declare(int fd, const char *name, int capacity, const char *overflow)
{
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i, s:s}", "op", "declare_queue", "name", name,
		   "capacity", capacity, "slot_size", 128, "overflow", overflow));
}

/* consume; returns the reply (ok asserted), *qfd the descriptor (closed
 * when qfd is NULL). */
static json_t *consume(int fd, const char *queue, bool exclusive, const char *tag, int *qfd)
{
	int rfd = -1;
	json_t *r = hb_call(fd, &rfd, "{s:s, s:s, s:s, s:b, s:s}", "op", "consume", "queue", queue,
			    "ack_mode", "manual", "exclusive", exclusive, "consumer_tag", tag);

	cr_assert(hb_ok(r), "consume %s: %s", queue, hb_error(r));
	cr_assert_geq(rfd, 0);
	if (qfd)
		*qfd = rfd;
	else
		close(rfd);
	return r;
}

static bool fast_of(json_t *r)
{
	bool fast = json_is_true(json_object_get(r, "exclusive_fast"));

	cr_assert(json_object_get(r, "exclusive_fast"), "no exclusive_fast in the consume reply");
	json_decref(r);
	return fast;
}

static json_t *open_write(int fd, const char *queue, bool exclusive)
{
	int rfd = -1;
	json_t *r = hb_call(fd, &rfd, "{s:s, s:s, s:s, s:b}", "op", "open_queue", "name", queue, "for",
			    "write", "exclusive", exclusive);

	if (rfd >= 0)
		close(rfd);
	return r;
}

static json_t *open_read(int fd, const char *queue)
{
	return hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "open_queue", "name", queue, "for", "read");
}

static json_t *purge(int fd, const char *queue)
{
	return hb_call(fd, NULL, "{s:s, s:s}", "op", "purge_queue", "name", queue);
}

/* Take the next message of q, check its checksum, return its id. */
static uint32_t take(hbus_queue *q, uint16_t *flags, bool ack)
{
	struct tu_payload p;
	struct hbus_msg m;
	unsigned spins = 0;
	int rc;

	while ((rc = hbus_queue_consume(q, &m)) == -EAGAIN) {
		cr_assert_lt(spins, 2000, "no message came");
		hb_backoff(&spins);
	}
	cr_assert_eq(rc, 0, "consume: %s", hbus_strerror(rc));
	cr_assert(tu_payload_ok(&m, &p), "a message with a bad checksum");
	if (flags)
		*flags = m.flags;
	if (ack)
		cr_assert_eq(hbus_queue_ack(q, &m), 0);
	return p.seq;
}

/* A counter of queue from hbusd's stat (hbus_queue_stats' fields). */
static uint64_t qstat(int fd, const char *queue, const char *field)
{
	json_t *r = hb_call(fd, NULL, "{s:s}", "op", "stat"), *it;
	int64_t v = -1;
	size_t i;

	cr_assert(hb_ok(r), "stat: %s", hb_error(r));
	json_array_foreach(json_object_get(r, "queues"), i, it)
		if (!strcmp(json_string_value(json_object_get(it, "name")), queue))
			v = hb_int(it, field);
	json_decref(r);
	cr_assert_geq(v, 0, "no %s in the stat of queue %s", field, queue);
	return (uint64_t)v;
}

/* Wait until hbusd holds nothing of processes that are gone: `sessions`
 * live sessions, no orphan, no pending recovery. */
static void wait_settled(int fd, int64_t sessions)
{
	unsigned spins = 0;

	for (;;) {
		json_t *r = hb_call(fd, NULL, "{s:s}", "op", "stat");
		bool done = hb_int(r, "sessions") == sessions && hb_int(r, "orphans") == 0 &&
			    hb_int(r, "pending_recoveries") == 0;

		json_decref(r);
		if (done)
			return;
		cr_assert_lt(spins, 2000, "hbusd never settled");
		hb_backoff(&spins);
	}
}

/* A child process: report a value, then wait to be killed. */
static void report(int out, uint32_t v)
{
	if (write(out, &v, sizeof(v)) != sizeof(v))
		_exit(3);
}

static void park(void)
{
	for (;;)
		pause();
}

static uint32_t read_report(int in)
{
	uint32_t v = 0;

	cr_assert_eq(read(in, &v, sizeof(v)), (ssize_t)sizeof(v), "the child failed early");
	return v;
}

static void kill_kid(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (unsigned i = 0; i < n_kids; i++)
		if (kids[i] == pid)
			kids[i] = kids[--n_kids];
}

/* Child: a producer of queue (exclusive or not) that writes count
 * messages (ids 0..count-1), reports its owner id (exclusive: only when
 * its handle claims without a CAS), and waits.  count 0: it writes until
 * killed, reporting its owner first. */
static pid_t spawn_producer(const char *queue, bool exclusive, uint32_t count, int *in)
{
	pid_t pid = tu_fork_reporting(in);
	hbus_client *c;
	hbus_queue *q;
	uint32_t owner, seq = 0;

	if (pid) {
		kids[n_kids++] = pid;
		return pid;
	}
	c = client();
	if (hbus_produce_open(c, queue, exclusive ? HBUS_PRODUCE_EXCLUSIVE : 0, &q) ||
	    (exclusive && !q_sp(q)))
		_exit(2);
	hbus_client_owner(c, &owner);
	if (!count)
		report(*in, owner);
	for (; !count || seq < count;) {
		struct tu_payload p[8];
		struct hbus_out o[8];
		int n;

		for (unsigned i = 0; i < 8; i++) {
			tu_payload_make(&p[i], 7, seq + i);
			o[i] = (struct hbus_out){ .body = &p[i], .body_len = sizeof(p[i]) };
		}
		n = hbus_queue_enqueue_burst(q, o, count && count - seq < 8 ? count - seq : 8);
		if (n > 0)
			seq += (uint32_t)n;
		else if (n == -ENOBUFS)
			usleep(100);
		else
			_exit(4);
	}
	report(*in, owner);
	park();
	return 0;
}

Test(exclusive, consumers_readers_and_purge_are_refused_beside_the_only_consumer)
{
	int fd = hb_session(&env, NULL), other = hb_session(&env, NULL);
	json_t *r, *it;
	size_t i;

	declare(fd, "q", 64, "reject");
	json_decref(consume(fd, "q", false, "s1", NULL));
	EXPECT(hb_call(other, NULL, "{s:s, s:s, s:b}", "op", "consume", "queue", "q", "exclusive", 1),
	       405, "has consumers");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "s1"));

	cr_assert(fast_of(consume(fd, "q", true, "x1", NULL)), "the only consumer of a quiet queue "
		  "claims without a CAS");
	EXPECT(hb_call(other, NULL, "{s:s, s:s}", "op", "consume", "queue", "q"), 405,
	       "exclusive consumer ('x1'");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "consume", "queue", "q", "consumer_tag",
		       "s2"), 405, "exclusive consumer");
	EXPECT(open_read(other, "q"), 405, "no one else may open it for reading");
	EXPECT(purge(fd, "q"), 405, "purge is refused");
	EXPECT(purge(other, "q"), 405, "'x1'");
	OK(open_write(other, "q", false)); /* producers are not its business */
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "consumers");
	json_array_foreach(json_object_get(r, "items"), i, it)
		cr_assert(json_is_true(json_object_get(it, "exclusive_fast")));
	json_decref(r);
	/* Cancelled: the queue is everyone's again. */
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "x1"));
	OK(purge(fd, "q"));
	OK(open_read(other, "q"));
	json_decref(consume(other, "q", false, "s3", NULL));
	close(fd);
	close(other);
}

Test(exclusive, no_fast_path_on_a_drop_head_queue)
{
	int fd = hb_session(&env, NULL), other = hb_session(&env, NULL);

	declare(fd, "dq", 64, "drop-head");
	cr_assert_not(fast_of(consume(fd, "dq", true, "x1", NULL)),
		      "producers remove from the head of a drop-head queue");
	/* Still AMQP's exclusive consumer; purge is the shared protocol's. */
	EXPECT(hb_call(other, NULL, "{s:s, s:s}", "op", "consume", "queue", "dq"), 405, "exclusive");
	OK(purge(fd, "dq"));
	OK(open_read(other, "dq"));
	close(fd);
	close(other);
}

Test(exclusive, no_fast_path_while_a_previous_consumer_holds_claims_or_lives_on)
{
	uint32_t a_owner;
	int a = hb_session(&env, &a_owner), b = hb_session(&env, NULL), c, qfd;
	struct hbus_queue_opts o = { .owner = a_owner, .ack_mode = HBUS_ACK_MANUAL };
	hbus_queue *w, *held;
	struct hbus_msg m[2];

	declare(a, "q", 64, "reject");
	w = hb_open_queue(a, "q", "write", a_owner, HBUS_ACK_AUTO);
	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(tu_enqueue_id(w, 1, i), 0);
	json_decref(consume(a, "q", false, "a1", &qfd));
	cr_assert_eq(hbus_queue_open_fd(qfd, &o, &held), 0);
	close(qfd);
	cr_assert_eq(hbus_queue_consume_burst(held, m, 2), 2);
	/* Cancelled with two deliveries unacked, as an AMQP channel may. */
	OK(hb_call(a, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "a1"));
	cr_assert_not(fast_of(consume(b, "q", true, "x1", NULL)),
		      "two messages are claimed: a requeue would land beside plain claims");
	OK(hb_call(b, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "x1"));
	cr_assert_eq(hbus_queue_ack_burst(held, m, 2), 0);
	cr_assert(fast_of(consume(b, "q", true, "x2", NULL)), "nothing held any more");
	OK(hb_call(b, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "x2"));

	/* A consumer whose session closed while its process (this one) runs
	 * may still claim with its handle. */
	c = hb_session(&env, NULL);
	json_decref(consume(c, "q", false, "c1", NULL));
	close(c);
	hb_wait_log(&env, "left its session but still runs", 1);
	cr_assert_not(fast_of(consume(b, "q", true, "x3", NULL)),
		      "the closed consumer's process still runs");
	hbus_queue_close(w);
	hbus_queue_close(held);
	close(a);
	close(b);
}

Test(exclusive, the_exclusive_producer_is_granted_alone_and_again_after_its_death)
{
	int fd = hb_session(&env, NULL), in_w, in_x;
	hbus_client *c = client();
	hbus_queue *q = NULL, *cons;
	pid_t w, x;
	uint32_t xowner;
	const char *msg;
	int code = 0;
	json_t *r, *it;
	size_t i;

	declare(fd, "q", 64, "reject");
	w = spawn_producer("q", false, 1, &in_w);
	read_report(in_w);
	EXPECT(open_write(fd, "q", true), 405, "another writer");
	cr_assert_eq(hbus_produce_open(c, "q", HBUS_PRODUCE_EXCLUSIVE, &q), -EREMOTEIO);
	hbus_client_error(c, &code, &msg);
	cr_assert_eq(code, 405, "%s", msg);
	/* The writer's process is gone: the queue may have an only producer. */
	kill_kid(w);
	wait_settled(fd, 2);
	x = spawn_producer("q", true, 10, &in_x);
	xowner = read_report(in_x);
	EXPECT(open_write(fd, "q", false), 405, "exclusive producer");
	EXPECT(open_write(fd, "q", true), 405, "exclusive producer");
	cr_assert_eq(hbus_produce_open(c, "q", 0, &q), -EREMOTEIO);
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "queues");
	json_array_foreach(json_object_get(r, "items"), i, it)
		cr_assert_eq(hb_int(it, "exclusive_producer"), xowner);
	json_decref(r);
	/* Consumers are not its business: the first writer's message (id 0),
	 * then the exclusive producer's ten, in order. */
	cr_assert_eq(hbus_consume_open(c, "q", HBUS_ACK_MANUAL, 0, &cons), 0);
	cr_assert_eq(take(cons, NULL, true), 0);
	for (uint32_t k = 0; k < 10; k++)
		cr_assert_eq(take(cons, NULL, true), k);
	kill_kid(x);
	hb_wait_log(&env, "its exclusive producer (owner", 1);
	cr_assert_eq(hbus_produce_open(c, "q", HBUS_PRODUCE_EXCLUSIVE, &q), 0);
	cr_assert(q_sp(q), "granted: the handle claims without a CAS");
	cr_assert_eq(tu_enqueue_id(q, 7, 10), 0);
	cr_assert_eq(take(cons, NULL, true), 10);
	/* Within this process it is the queue's only writer. */
	cr_assert_eq(hbus_produce_open(c, "q", 0, &(hbus_queue *){ NULL }), -EREMOTEIO);
	cr_assert_eq(hbus_produce_open(c, "q", HBUS_PRODUCE_EXCLUSIVE, &(hbus_queue *){ NULL }),
		     -EREMOTEIO);
	cr_assert_eq(hbus_publish(c, "", "q", NULL, 0, "x", 1), 0, "this client's router is refused");
	cr_assert_eq(hbus_produce_close(c, q), 0);
	/* Closed: the router may write (it retries a refused open after 1 s). */
	for (unsigned spins = 0; hbus_publish(c, "", "q", NULL, 0, "x", 1) != 1; hb_backoff(&spins))
		cr_assert_lt(spins, 2000, "the router never wrote once the handle was closed");
	hbus_consume_close(c, cons);
	hbus_close(c);
	close(fd);
}

Test(exclusive, a_killed_exclusive_producer_leaves_a_prefix_delivered_once)
{
	unsigned seed = tu_seed("exclusive producer kill"), stop_at = 200 + seed % 600;
	int fd = hb_session(&env, NULL), in;
	hbus_client *c = client();
	uint64_t expect = 0, enqueued;
	hbus_queue *cons, *q;
	uint16_t flags;
	pid_t x;

	declare(fd, "q", 256, "reject");
	/* Exclusive on both sides. */
	cr_assert_eq(hbus_consume_open_ex(c, "q", HBUS_ACK_MANUAL, 0, HBUS_CONSUME_EXCLUSIVE, &cons),
		     0);
	cr_assert(q_sc(cons));
	x = spawn_producer("q", true, 0, &in);
	read_report(in);
	while (expect < stop_at) {
		cr_assert_eq(take(cons, &flags, true), expect, "out of order or a duplicate");
		cr_assert_eq(flags & HBUS_MSG_REDELIVERED, 0);
		expect++;
	}
	kill_kid(x);
	hb_wait_log(&env, "its exclusive producer (owner", 1);
	enqueued = qstat(fd, "q", "enqueued");
	while (expect < enqueued)
		cr_assert_eq(take(cons, NULL, true), expect++, "a gap or a duplicate");
	cr_assert_eq(hbus_queue_consume(cons, &(struct hbus_msg){ 0 }), -EAGAIN);
	cr_assert_eq(qstat(fd, "q", "enqueued"), expect, "every message published is delivered, once");
	cr_assert_eq(qstat(fd, "q", "aborted"), 0, "the only producer leaves no half-written slot");
	cr_assert_eq(qstat(fd, "q", "acked"), expect);
	cr_assert_eq(hbus_produce_open(c, "q", HBUS_PRODUCE_EXCLUSIVE, &q), 0);
	hbus_close(c);
	close(fd);
}

/* Child: the only consumer of queue (manual acks): takes `n` messages,
 * acks the first `acked`, reports their ids and waits. */
static pid_t spawn_consumer(const char *queue, uint32_t n, uint32_t acked, int *in)
{
	pid_t pid = tu_fork_reporting(in);
	hbus_client *c;
	hbus_queue *q;

	if (pid) {
		kids[n_kids++] = pid;
		return pid;
	}
	c = client();
	if (hbus_consume_open_ex(c, queue, HBUS_ACK_MANUAL, 64, HBUS_CONSUME_EXCLUSIVE, &q) ||
	    !q_sc(q))
		_exit(2);
	for (uint32_t i = 0; i < n; i++) {
		struct tu_payload p;
		struct hbus_msg m;
		unsigned spins = 0;
		int rc;

		while ((rc = hbus_queue_consume(q, &m)) == -EAGAIN)
			tu_backoff(&spins);
		if (rc || !tu_payload_ok(&m, &p) || (i < acked && hbus_queue_ack(q, &m)))
			_exit(3);
		report(*in, p.seq);
	}
	park();
	return 0;
}

Test(exclusive, a_killed_exclusive_consumer_has_its_messages_redelivered)
{
	int fd = hb_session(&env, NULL), in;
	hbus_client *c = client();
	hbus_queue *w, *cons;
	uint16_t flags;
	pid_t x;

	declare(fd, "q", 64, "reject");
	cr_assert_eq(hbus_produce_open(c, "q", 0, &w), 0);
	for (uint32_t i = 0; i < 32; i++)
		cr_assert_eq(tu_enqueue_id(w, 7, i), 0);
	x = spawn_consumer("q", 10, 4, &in);
	for (uint32_t i = 0; i < 10; i++)
		cr_assert_eq(read_report(in), i);
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "q"), 405,
	       "exclusive consumer");
	kill_kid(x);
	hb_wait_log(&env, "its exclusive consumer", 1);
	/* Its six unacked messages are back at their places, flagged; the
	 * four it acked never come back. */
	cr_assert_eq(hbus_consume_open_ex(c, "q", HBUS_ACK_MANUAL, 0, HBUS_CONSUME_EXCLUSIVE, &cons),
		     0);
	cr_assert(q_sc(cons), "nothing is held any more: the fast path again");
	for (uint32_t i = 4; i < 32; i++) {
		cr_assert_eq(take(cons, &flags, true), i);
		cr_assert_eq(!!(flags & HBUS_MSG_REDELIVERED), i < 10, "message %u", i);
	}
	cr_assert_eq(hbus_queue_consume(cons, &(struct hbus_msg){ 0 }), -EAGAIN);
	cr_assert_eq(qstat(fd, "q", "requeued"), 6);
	cr_assert_eq(qstat(fd, "q", "acked"), 32);
	hbus_close(c);
	close(fd);
}

Test(exclusive, a_restarted_hbusd_keeps_both_exclusivities)
{
	int fd = hb_session(&env, NULL), in_x, in_c;
	pid_t x, xc;

	declare(fd, "pq", 64, "reject");
	declare(fd, "cq", 64, "reject");
	close(fd);
	x = spawn_producer("pq", true, 3, &in_x);
	read_report(in_x);
	xc = spawn_consumer("cq", 0, 0, &in_c);
	fd = hb_session(&env, NULL);
	/* The consumer registered once its reply came: wait for it. */
	for (unsigned spins = 0; hb_list_count(fd, "consumers") < 1; hb_backoff(&spins))
		cr_assert_lt(spins, 2000);
	close(fd);
	hb_stop_clean(&env);
	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	EXPECT(open_write(fd, "pq", false), 405, "exclusive producer");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "cq"), 405,
	       "exclusive consumer");
	EXPECT(purge(fd, "cq"), 405, "purge is refused");
	EXPECT(open_read(fd, "cq"), 405, "exclusive consumer");
	kill_kid(x);
	kill_kid(xc);
	hb_wait_log(&env, "its exclusive producer (owner", 1);
	hb_wait_log(&env, "its exclusive consumer", 1);
	OK(open_write(fd, "pq", true));
	cr_assert(fast_of(consume(fd, "cq", true, "x9", NULL)));
	close(fd);
}

/* hbusd's state file loses the grants of every queue (a state file that
 * predates them: a write that failed, a copy put back). */
static void forget_grants(void)
{
	char dir[200], path[300];
	json_error_t jerr;
	json_t *st, *q;
	size_t i;
	char *text;
	FILE *f;

	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/topology.json", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	st = json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr);
	fclose(f);
	cr_assert_not_null(st, "%s: %s", path, jerr.text);
	json_array_foreach(json_object_get(st, "queues"), i, q) {
		json_object_del(q, "writers");
		json_object_del(q, "readers");
		json_object_del(q, "exclusive_producer");
		json_object_del(q, "exclusive_consumer");
		json_object_del(q, "exclusive_consumer_tag");
	}
	text = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	f = fopen(path, "w");
	cr_assert(f && text && fputs(text, f) >= 0 && fclose(f) == 0, "rewriting %s", path);
	free(text);
}

/* The client's next look at its session opens a new one (hbusd restarted). */
static void reconnect(hbus_client *c)
{
	unsigned spins = 0;
	int rc;

	while ((rc = hbus_client_check(c)) != 1) {
		cr_assert_lt(spins, 2000, "no new session: %s", hbus_strerror(rc));
		hb_backoff(&spins);
	}
}

Test(exclusive, handles_keep_claiming_without_a_cas_only_while_hbusd_grants_it)
{
	hbus_client *c = client();
	hbus_queue *p, *cons, *w;
	uint32_t owner;
	int fd;

	fd = hb_session(&env, NULL);
	declare(fd, "pq", 64, "reject");
	declare(fd, "cq", 64, "reject");
	close(fd);
	cr_assert_eq(hbus_produce_open(c, "pq", HBUS_PRODUCE_EXCLUSIVE, &p), 0);
	cr_assert_eq(hbus_consume_open_ex(c, "cq", HBUS_ACK_MANUAL, 0, HBUS_CONSUME_EXCLUSIVE, &cons),
		     0);
	cr_assert(q_sp(p) && q_sc(cons));
	hbus_client_owner(c, &owner);

	/* A restart with the state intact: the same owner resumes, hbusd still
	 * grants both, the handles go on as they were. */
	hb_stop_clean(&env);
	hb_start(&env, NULL);
	reconnect(c);
	cr_assert_eq(hbus_client_owner(c, &(uint32_t){ 0 }), 0);
	cr_assert(q_sp(p), "the producer grant was renewed");
	cr_assert(q_sc(cons), "the consumer is still the only one");
	fd = hb_session(&env, NULL);
	EXPECT(open_write(fd, "pq", false), 405, "exclusive producer");
	EXPECT(open_read(fd, "cq"), 405, "exclusive consumer");
	close(fd);

	/* A restart that lost the grants, and another writer got in first:
	 * at its next session the client learns it, and both handles claim
	 * by CAS from then on. */
	hb_stop_clean(&env);
	forget_grants();
	hb_start(&env, NULL);
	fd = hb_session(&env, &owner);
	w = hb_open_queue(fd, "pq", "write", owner, HBUS_ACK_AUTO);
	reconnect(c);
	cr_assert_not(q_sp(p), "hbusd refused the grant: the handle must not claim without a CAS");
	cr_assert_not(q_sc(cons), "hbusd does not hold the queue for it: no plain claims");
	/* Both still work, by CAS. */
	cr_assert_eq(tu_enqueue_id(p, 7, 1), 0);
	cr_assert_eq(tu_enqueue_id(w, 8, 2), 0);
	cr_assert_eq(tu_enqueue_id(hb_open_queue(fd, "cq", "write", owner, HBUS_ACK_AUTO), 9, 3), 0);
	cr_assert_eq(take(cons, NULL, true), 3);
	hbus_queue_close(w);
	hbus_close(c);
	close(fd);
}

/* Both exclusivities on a protected queue: the only producer writes its
 * data file without a CAS, the only consumer maps it read-only (it cannot
 * produce) and claims without a CAS; its nack(requeue) goes through hbusd
 * (it cannot write the redelivered flag), and a killed only consumer's
 * messages come back flagged, ids and checksums intact. */
Test(exclusive, a_protected_queue_with_both_sides_exclusive)
{
	int fd = hb_session(&env, NULL), in;
	hbus_client *c = client();
	hbus_queue *cons;
	struct tu_payload p;
	struct hbus_msg m;
	uint16_t flags;
	unsigned spins = 0;
	pid_t x;
	int rc;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i, s:b}", "op", "declare_queue", "name", "pq",
		   "capacity", 64, "slot_size", 128, "protected", 1));
	x = spawn_producer("pq", true, 32, &in); /* exits 2 unless its handle has no CAS */
	cr_assert_gt(read_report(in), 0);
	kill_kid(x);
	cr_assert_eq(hbus_consume_open_ex(c, "pq", HBUS_ACK_MANUAL, 0, HBUS_CONSUME_EXCLUSIVE, &cons),
		     0);
	cr_assert(q_sc(cons), "the only consumer claims without a CAS");
	cr_assert_eq(tu_enqueue_id(cons, 7, 99), -EPERM, "a reader of a protected queue produced");
	cr_assert_eq(take(cons, &flags, true), 0);
	while ((rc = hbus_queue_consume(cons, &m)) == -EAGAIN)
		hb_backoff(&spins);
	cr_assert_eq(rc, 0);
	cr_assert(tu_payload_ok(&m, &p) && p.seq == 1);
	cr_assert_eq(hbus_queue_nack(cons, &m, 1), 0, "nack(requeue) through hbusd");
	cr_assert_eq(take(cons, &flags, true), 1, "the requeued message first, at its place");
	cr_assert(flags & HBUS_MSG_REDELIVERED);
	cr_assert_eq(take(cons, &flags, true), 2);
	cr_assert(!(flags & HBUS_MSG_REDELIVERED));
	cr_assert_eq(hbus_consume_close(c, cons), 0);
	wait_settled(fd, 2);
	/* A child takes 10 (acks 4) and is killed: 6 come back flagged. */
	x = spawn_consumer("pq", 10, 4, &in);
	for (uint32_t i = 3; i < 13; i++)
		cr_assert_eq(read_report(in), i);
	kill_kid(x);
	hb_wait_log(&env, "its exclusive consumer", 1);
	cr_assert_eq(hbus_consume_open_ex(c, "pq", HBUS_ACK_MANUAL, 0, HBUS_CONSUME_EXCLUSIVE, &cons),
		     0);
	for (uint32_t i = 7; i < 32; i++) {
		cr_assert_eq(take(cons, &flags, true), i);
		cr_assert_eq(!!(flags & HBUS_MSG_REDELIVERED), i < 13, "message %u", i);
	}
	cr_assert_eq(hbus_queue_consume(cons, &(struct hbus_msg){ 0 }), -EAGAIN);
	cr_assert_eq(qstat(fd, "pq", "acked"), 32);
	cr_assert_eq(qstat(fd, "pq", "requeued"), 7);
	hbus_close(c);
	close(fd);
}
