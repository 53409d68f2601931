/*
 * test_stale.c - what a starting hbusd finds after everything was killed
 * -9 (hbusd and its clients), and what it makes of it
 * (docs/OPERATIONS.md, "Restart and adoption"): a superblock whose hbusd is
 * dead is adopted with a new epoch; queue files it cannot trust (bad magic,
 * another layout version, truncated) are moved aside, ones that never held
 * anything removed; a dead hbusd's socket and pid file are replaced; dead
 * clients' slots recovered; a live hbusd is never disturbed.  Each decision
 * is one line of hbusd's log, and the messages in trusted queues survive.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "queue_layout.h"
#include "testutil.h"

static struct hb_env env;
static pid_t kids[4];
static unsigned n_kids;

static void setup(void)
{
	hb_env_init(&env, "stale");
}

static void kill_kids(void)
{
	hb_kill_all(kids, &n_kids);
}

static void teardown(void)
{
	kill_kids();
	hb_env_fini(&env);
}

TestSuite(stale, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------- the log */

static const char *read_log(void)
{
	return hb_log_text(&env);
}

/* Exactly one line of the log contains `key`, and it contains each of the
 * other needles (NULL-terminated). */
static void one_line(const char *log, const char *key, ...)
{
	const char *p = log, *line = NULL, *end, *needle;
	unsigned hits = 0;
	char copy[1024];
	va_list ap;

	while ((p = strstr(p, key)) != NULL) {
		const char *start = p;
		while (start > log && start[-1] != '\n')
			start--;
		line = start;
		hits++;
		end = strchr(p, '\n');
		p = end ? end : p + strlen(p);
	}
	cr_assert_eq(hits, 1, "%u log lines name '%s', not 1:\n%s", hits, key, log);
	end = strchr(line, '\n');
	snprintf(copy, sizeof(copy), "%.*s", (int)(end ? end - line : (long)strlen(line)), line);
	va_start(ap, key);
	while ((needle = va_arg(ap, const char *)) != NULL)
		cr_assert(strstr(copy, needle), "'%s' lacks '%s'", copy, needle);
	va_end(ap);
}

/* ----------------------------------------------------- clients to kill */

static void fill(int fd, uint32_t owner, const char *queue, uint32_t n)
{
	hbus_queue *q = hb_open_queue(fd, queue, "write", owner, HBUS_ACK_AUTO);
	uint32_t i;

	for (i = 0; i < n; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	hbus_queue_close(q);
}

/* A child that holds n manual claims on `claim` and one half-written slot
 * on `reserve`, reports, and waits to be killed.  Reports by exit status
 * only (no Criterion asserts in a child). */
static void child_holds(const char *claim, int n, const char *reserve, int report)
{
	struct hbus_reservation res;
	struct hbus_msg m;
	hbus_queue *c, *p;
	uint32_t owner;
	int fd = hb_connect(&env), i;
	json_t *r;
	char ok = 1;

	r = fd >= 0 ? hb_call(fd, NULL, "{s:s}", "op", "hello") : NULL;
	if (!hb_ok(r))
		_exit(10);
	owner = (uint32_t)hb_int(r, "owner");
	json_decref(r);
	{
		struct hbus_queue_opts o = { .owner = owner, .ack_mode = HBUS_ACK_MANUAL };
		int cfd = -1, pfd = -1;

		r = hb_call(fd, &cfd, "{s:s, s:s, s:s}", "op", "consume", "queue", claim,
			    "ack_mode", "manual");
		if (!hb_ok(r) || hbus_queue_open_fd(cfd, &o, &c))
			_exit(11);
		json_decref(r);
		r = hb_call(fd, &pfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", reserve, "for",
			    "write");
		o.ack_mode = HBUS_ACK_AUTO;
		if (!hb_ok(r) || hbus_queue_open_fd(pfd, &o, &p))
			_exit(12);
		json_decref(r);
	}
	for (i = 0; i < n; i++)
		if (hbus_queue_consume(c, &m))
			_exit(13);
	if (hbus_queue_reserve(p, &res))
		_exit(14);
	if (write(report, &ok, 1) != 1)
		_exit(15);
	for (;;)
		pause();
}

static void spawn_holder(const char *claim, int n, const char *reserve)
{
	char ok = 0;
	int rep;
	pid_t pid = tu_fork_reporting(&rep);

	if (pid == 0)
		child_holds(claim, n, reserve, rep);
	kids[n_kids++] = pid;
	cr_assert_eq(read(rep, &ok, 1), 1, "the holder child failed before holding");
	close(rep);
}

/* ------------------------------------------------------------ the files */

static void queue_path(int64_t qid, char *out, size_t cap)
{
	char dir[256];

	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(out, cap, "%s/queue.%lld", dir, (long long)qid);
}

static void overwrite(int64_t qid, off_t at, const void *bytes, size_t n)
{
	char path[400];
	int fd;

	queue_path(qid, path, sizeof(path));
	fd = open(path, O_WRONLY);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(pwrite(fd, bytes, n, at), (ssize_t)n);
	close(fd);
}

static void plant(const char *name, const void *bytes, size_t n)
{
	char dir[256], path[400];
	int fd;

	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, bytes, n), (ssize_t)n);
	close(fd);
}

static bool exists(const char *fmt, long long a, long long b)
{
	char dir[256], rel[128], path[400];
	struct stat st;

	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(rel, sizeof(rel), fmt, a, b);
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return stat(path, &st) == 0;
}

/* Drain `queue`: seq 0..n-1 exactly once each; those below `held` (and
 * only those) flagged redelivered. */
static void expect_all(int fd, uint32_t owner, const char *queue, uint32_t n, uint32_t held)
{
	hbus_queue *q = hb_open_queue(fd, queue, "read", owner, HBUS_ACK_MANUAL);
	struct tu_payload p;
	struct hbus_msg m;
	uint32_t got = 0, redelivered = 0;
	uint8_t seen[64] = { 0 };
	unsigned spins = 0;
	int rc;

	while (got < n) {
		rc = hbus_queue_consume(q, &m);
		if (rc == -EAGAIN) {
			cr_assert_lt(spins, 500, "%s: only %u of %u messages", queue, got, n);
			hb_backoff(&spins);
			continue;
		}
		cr_assert_eq(rc, 0, "consume %s: %s", queue, hbus_strerror(rc));
		cr_assert(tu_payload_ok(&m, &p), "corrupt payload in %s", queue);
		cr_assert_lt(p.seq, n);
		cr_assert_eq(seen[p.seq]++, 0, "%s: message %u twice", queue, p.seq);
		if (m.flags & HBUS_MSG_REDELIVERED) {
			redelivered++;
			cr_assert_lt(p.seq, held, "%s: message %u was never held", queue, p.seq);
		}
		cr_assert_eq(hbus_queue_ack(q, &m), 0);
		got++;
	}
	cr_assert_eq(redelivered, held);
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN, "%s: more messages than were sent", queue);
	hbus_queue_close(q);
}

Test(stale, after_kill_9_of_everything_trusted_state_is_adopted_the_rest_set_aside)
{
	static const uint8_t zero[64], junk[8192] = { 'j', 'u', 'n', 'k' };
	static const char *const names[] = { "keep", "plain", "bad-magic", "truncated", "future",
					     "zeroed" };
	const uint32_t version = 99;
	int64_t qid[6], epoch;
	char path[400], old_pid[32], key[64], want[200];
	const char *log;
	uint32_t owner;
	struct stat st;
	unsigned i;
	pid_t dead;
	json_t *r;
	int fd;

	hb_start(&env, NULL);
	fd = hb_session(&env, &owner);
	for (i = 0; i < 6; i++) {
		r = hb_call(fd, NULL, "{s:s, s:s, s:i, s:i, s:b}", "op", "declare_queue", "name",
			    names[i], "capacity", 64, "slot_size", 64,
			    "durable", i == 0 || i == 3);
		cr_assert(hb_ok(r), "%s", hb_error(r));
		qid[i] = hb_int(r, "qid");
		json_decref(r);
		fill(fd, owner, names[i], i == 0 ? 8 : 5);
	}
	r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	epoch = hb_int(r, "epoch");
	json_decref(r);
	close(fd);
	/* A consumer holding 3 of keep's messages, a producer mid-write on plain. */
	spawn_holder("keep", 3, "plain");
	spawn_holder("keep", 0, "plain");

	/* Everything dies at once, hbusd first. */
	dead = env.pid;
	kill(env.pid, SIGKILL);
	waitpid(env.pid, NULL, 0);
	env.pid = 0;
	kill_kids();
	cr_assert_eq(stat(env.sock, &st), 0, "kill -9 left no socket?");
	snprintf(old_pid, sizeof(old_pid), "pid %d", (int)dead);

	/* Damage: what a crash, a bad disk or another version could leave. */
	overwrite(qid[2], 0, "GARBAGE!", 8);
	queue_path(qid[3], path, sizeof(path));
	cr_assert_eq(truncate(path, 2048), 0);
	overwrite(qid[4], 8, &version, sizeof(version));
	overwrite(qid[5], 0, zero, sizeof(zero));
	plant("queue.9999", junk, sizeof(junk));
	plant("queue.9998", "", 0);

	cr_assert_eq(truncate(env.log, 0), 0);
	hb_start(&env, NULL);
	log = read_log();

	/* One line per decision. */
	snprintf(want, sizeof(want), "epoch %lld (the previous hbusd, %s, did not stop cleanly)",
		 (long long)epoch + 1, old_pid);
	one_line(log, "superblock", "adopted", want, NULL);
	snprintf(want, sizeof(want), "names %s, which no longer holds its lock", old_pid);
	one_line(log, ".pid names", want, "replaced", NULL);
	one_line(log, "left by an hbusd that did not stop cleanly", env.sock, "replaced", NULL);
	snprintf(key, sizeof(key), "queue.%lld (queue 'bad-magic')", (long long)qid[2]);
	one_line(log, key, "bad magic", "not an hbus file", "moved to stale/", NULL);
	snprintf(key, sizeof(key), "queue.%lld (queue 'truncated')", (long long)qid[3]);
	one_line(log, key, "truncated: 2048 of", "moved to stale/", NULL);
	snprintf(key, sizeof(key), "queue.%lld (queue 'future')", (long long)qid[4]);
	snprintf(want, sizeof(want), "queue layout version 99, this hbusd reads version %u",
		 HBUS_QUEUE_LAYOUT_VERSION);
	one_line(log, key, want, "moved to stale/", NULL);
	snprintf(key, sizeof(key), "queue.%lld (queue 'zeroed')", (long long)qid[5]);
	one_line(log, key, "never initialised", "removed", NULL);
	one_line(log, "queue.9999:", "bad magic", "moved to stale/queue.9999.epoch", NULL);
	one_line(log, "queue.9998:", "never initialised", "removed", NULL);
	one_line(log, "durable queue 'truncated' recreated empty", NULL);
	one_line(log, "queue 'bad-magic' is not durable: dropped", NULL);
	one_line(log, "queue 'future' is not durable", NULL);
	one_line(log, "queue 'zeroed' is not durable", NULL);
	one_line(log, "adopted queue 'keep'", "durable", NULL);
	one_line(log, "adopted queue 'plain'", NULL);
	cr_assert(strstr(log, "from before the restart is gone: recovering"), "%s", log);

	/* The files: set aside under their name and epoch, or gone. */
	for (i = 2; i <= 4; i++) {
		cr_assert(exists("stale/queue.%lld.epoch%lld", qid[i], epoch + 1),
			  "queue.%lld not in stale/", (long long)qid[i]);
		cr_assert(!exists("queue.%lld", qid[i], 0));
	}
	cr_assert(exists("stale/queue.%lld.epoch%lld", 9999, epoch + 1));
	cr_assert(!exists("queue.%lld", qid[5], 0) && !exists("queue.%lld", 9998, 0));

	/* The trusted queues and their messages: keep's 8, the 3 a dead
	 * consumer held flagged redelivered; plain's 5, past the slot a dead
	 * producer never finished. */
	fd = hb_session(&env, &owner);
	r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	cr_assert_eq(hb_int(r, "epoch"), epoch + 1);
	json_decref(r);
	cr_assert_eq(hb_list_count(fd, "queues"), 3); /* keep, plain, truncated */
	expect_all(fd, owner, "keep", 8, 3);
	expect_all(fd, owner, "plain", 5, 0);
	fill(fd, owner, "plain", 2);
	expect_all(fd, owner, "plain", 2, 0);
	expect_all(fd, owner, "truncated", 0, 0);
	close(fd);
}

Test(stale, live_hbusd_is_refused_and_left_alone)
{
	struct hb_env other;
	struct stat before, after;
	char out[4096], pidtext[32] = "", want[64];
	FILE *f;
	int fd;

	hb_start(&env, NULL);
	cr_assert_eq(stat(env.sock, &before), 0);
	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	snprintf(want, sizeof(want), "(pid %d, lock", (int)env.pid);
	cr_assert(strstr(out, "hbusd is already running for bus 'stale'") && strstr(out, want),
		  "%s", out);
	/* Another run dir, same shared memory: refused by the superblock lock. */
	other = env;
	other.reaper = 0;
	snprintf(other.run, sizeof(other.run), "%s/run2", env.base);
	snprintf(other.sock, sizeof(other.sock), "%s/stale.sock", other.run);
	cr_assert_eq(hb_start_fail(&other, NULL, out, sizeof(out)), 1);
	snprintf(want, sizeof(want), "another hbusd (pid %d) serves bus 'stale'", (int)env.pid);
	cr_assert(strstr(out, want), "%s", out);
	/* Its socket and pid file are the ones it made, and it serves. */
	cr_assert_eq(stat(env.sock, &after), 0);
	cr_assert_eq(before.st_ino, after.st_ino, "a refused start replaced the live socket");
	snprintf(out, sizeof(out), "%s/stale.pid", env.run);
	f = fopen(out, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(pidtext, sizeof(pidtext), f));
	fclose(f);
	cr_assert_eq(atoi(pidtext), (int)env.pid);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "still.served");
	close(fd);
}

Test(stale, superblock_never_initialised_is_initialised_foreign_one_refused)
{
	char dir[256], path[400], cmd[600], out[4096];
	struct stat st;
	int fd;

	hb_start(&env, NULL);
	hb_stop_clean(&env);
	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/superblock", dir);
	cr_assert_eq(stat(path, &st), 0);
	/* A first start killed between making the file and filling it: the
	 * file is all zero, and nothing else exists yet. */
	snprintf(cmd, sizeof(cmd), "cd '%s' && rm -f routes topology.json && "
		 "dd if=/dev/zero of=superblock bs=%lld count=1 conv=notrunc status=none",
		 dir, (long long)st.st_size);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(truncate(env.log, 0), 0);
	hb_start(&env, NULL);
	one_line(read_log(), "superblock", "created superblock: epoch 1 (over a file never "
		 "initialised", NULL);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "works");
	close(fd);
	hb_stop_clean(&env);

	/* Anything else that is not a superblock is not ours to rewrite. */
	fd = open(path, O_WRONLY);
	cr_assert_eq(pwrite(fd, "NOTHBUS!", 8, 0), 8);
	close(fd);
	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, path) && strstr(out, "not an hbus file"), "%s", out);
	cr_assert(exists("queue.%lld", 1, 0), "a refused start touched the queue files");
}
