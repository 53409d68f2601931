/*
 * test_hbusd_writers.c - what hbusd takes back when a session closes.
 *
 * Nothing is taken from a process that still runs (docs/QUEUE.md,
 * "Recovery"): the slots it is writing and the messages it has claimed are
 * its own until it exits, then hbusd recovers them.  Both halves are
 * checked with real processes: the test process itself as the one that
 * lives on, and a child killed with SIGKILL.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "testutil.h"

static struct hb_env env;
static pid_t kids[4];
static unsigned n_kids;

static void setup(void)
{
	hb_env_init(&env, "writers");
	hb_start(&env, NULL);
}

static void teardown(void)
{
	hb_kill_all(kids, &n_kids);
	hb_env_fini(&env);
}

TestSuite(control_writers, .init = setup, .fini = teardown, .timeout = 120);

static void stats(int fd, const char *queue, uint32_t owner, struct hbus_queue_stats *s)
{
	hbus_queue *q = hb_open_queue(fd, queue, "read", owner, HBUS_ACK_AUTO);

	cr_assert_eq(hbus_queue_stats(q, s), 0);
	hbus_queue_close(q);
}

static uint32_t consume_seq(hbus_queue *q, uint16_t *flags)
{
	struct hbus_msg m;
	struct tu_payload p;
	unsigned spins = 0;
	int rc;

	while ((rc = hbus_queue_consume(q, &m)) == -EAGAIN) {
		cr_assert_lt(spins, 2000, "nothing to consume");
		hb_backoff(&spins);
	}
	cr_assert_eq(rc, 0);
	cr_assert(tu_payload_ok(&m, &p), "corrupt payload");
	if (flags)
		*flags = m.flags;
	cr_assert_eq(hbus_queue_ack(q, &m), 0);
	return p.seq;
}

Test(control_writers, a_live_process_keeps_its_write_and_its_claims)
{
	uint32_t wowner, cowner;
	int wfd = hb_session(&env, &wowner), cfd = hb_session(&env, &cowner);
	hbus_queue *w, *held, *c;
	struct hbus_reservation r;
	struct hbus_queue_stats s;
	struct hbus_msg m[2];
	struct tu_payload p;
	uint16_t flags;

	hb_declare_queue(cfd, "wq");
	w = hb_open_queue(wfd, "wq", "write", wowner, HBUS_ACK_AUTO);
	held = hb_open_queue(wfd, "wq", "read", wowner, HBUS_ACK_MANUAL);
	c = hb_open_queue(cfd, "wq", "read", cowner, HBUS_ACK_MANUAL);
	cr_assert_eq(tu_enqueue_id(w, 1, 0), 0);
	cr_assert_eq(tu_enqueue_id(w, 1, 1), 0);
	cr_assert_eq(hbus_queue_consume_burst(held, m, 2), 2);
	cr_assert_eq(hbus_queue_reserve(w, &r), 0); /* position 2, WRITING */
	/* The writer's session closes; the process (this one) runs on. */
	close(wfd);
	hb_wait_log(&env, "left its session but still runs", 1);
	/* Nothing was taken from it... */
	stats(cfd, "wq", cowner, &s);
	cr_assert_eq(s.requeued, 0, "a live consumer's claims were taken from it");
	cr_assert_eq(s.aborted, 0, "a live writer's slot was taken from it");
	/* ...its write is still its own: finishing it delivers it... */
	cr_assert_eq(hbus_queue_consume(c, &m[0]) == -EAGAIN, 1, "the open write comes first");
	tu_payload_make(&p, 1, 2);
	memcpy(r.data, &p, sizeof(p));
	cr_assert_eq(hbus_queue_commit(w, &r, 0, sizeof(p), 0, 0), 0);
	cr_assert_eq(consume_seq(c, &flags), 2);
	cr_assert_eq(flags & HBUS_MSG_REDELIVERED, 0);
	/* ...and so are its claims: its acks land, nothing comes back. */
	cr_assert_eq(hbus_queue_ack_burst(held, m, 2), 0);
	cr_assert_eq(hbus_queue_consume(c, &m[0]), -EAGAIN, "acked messages never come back");
	stats(cfd, "wq", cowner, &s);
	cr_assert_eq(s.acked, 3);
	cr_assert_eq(s.enqueued, 3);
	hbus_queue_close(w);
	hbus_queue_close(held);
	hbus_queue_close(c);
	close(cfd);
}

/* In the child: a session, a reservation on `queue`, the session closed,
 * then a byte on report, then wait to be killed. */
static void child_half_write(const char *queue, int report)
{
	struct hbus_queue_opts o = { .ack_mode = HBUS_ACK_AUTO };
	struct hbus_reservation r;
	hbus_queue *q;
	int fd = hb_connect(&env), qfd = -1;
	json_t *rep;

	rep = fd >= 0 ? hb_call(fd, NULL, "{s:s}", "op", "hello") : NULL;
	if (!hb_ok(rep))
		_exit(10);
	o.owner = (uint32_t)hb_int(rep, "owner");
	json_decref(rep);
	rep = hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", queue, "for", "write");
	if (!hb_ok(rep) || qfd < 0 || hbus_queue_open_fd(qfd, &o, &q) || hbus_queue_reserve(q, &r))
		_exit(11);
	close(fd);
	if (write(report, "x", 1) != 1)
		_exit(12);
	for (;;)
		pause();
}

Test(control_writers, a_writer_that_left_then_died_is_skipped_when_it_exits)
{
	uint32_t owner;
	int fd = hb_session(&env, &owner), rep[2];
	struct hbus_queue_stats s;
	hbus_queue *w, *c;
	pid_t pid;
	char b;

	hb_declare_queue(fd, "dq");
	w = hb_open_queue(fd, "dq", "write", owner, HBUS_ACK_AUTO);
	c = hb_open_queue(fd, "dq", "read", owner + 0, HBUS_ACK_AUTO);
	cr_assert_eq(pipe(rep), 0);
	pid = tu_fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(rep[0]);
		child_half_write("dq", rep[1]);
	}
	kids[n_kids++] = pid;
	close(rep[1]);
	cr_assert_eq(read(rep[0], &b, 1), 1, "the child failed before its half write");
	close(rep[0]);
	hb_wait_log(&env, "left its session but still runs", 1);
	cr_assert_eq(tu_enqueue_id(w, 1, 7), 0);
	cr_assert_eq(hbus_queue_consume(c, &(struct hbus_msg){ 0 }), -EAGAIN,
		     "blocked behind the child's open write while it runs");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	n_kids = 0;
	hb_wait_log(&env, "has exited: recovering its slots", 1);
	cr_assert_eq(consume_seq(c, NULL), 7, "the skip does not stall the queue");
	stats(fd, "dq", owner, &s);
	cr_assert_eq(s.aborted, 1);
	hbus_queue_close(w);
	hbus_queue_close(c);
	close(fd);
}
