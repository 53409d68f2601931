/*
 * test_security_turns.c - what bounds one client's share of hbusd
 * (docs/SECURITY.md, section 5), each bound shown exactly: 16 requests per
 * session and 64 accepts per turn (hbusd is stopped with SIGSTOP while
 * requests or connections pile up, and the order in which it then serves
 * them is read back: queue ids are handed out in order, `stat` counts
 * sessions); a silent client holds no one up and is closed at its hello
 * timeout; one user's sessions are capped; refusals are logged at most
 * once a second.  No assertion on elapsed time but lower bounds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "testutil.h"

#define NOBODY 65534u

static struct hb_env env;

static void setup(void)
{
	hb_env_init(&env, "turns");
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(security_turns, .init = setup, .fini = teardown, .timeout = 180);

/* Stop hbusd (SIGSTOP, and wait until it is stopped) / let it go on.
 * First wait until it sleeps in epoll_wait: until it calls it again, the
 * session it served last is still on epoll's ready list (level-triggered
 * entries are re-queued as they are reported) and would come first. */
static void freeze(void)
{
	char path[64], wchan[64] = "";
	unsigned spins = 0;
	int st;

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)env.pid);
	for (;;) {
		FILE *f = fopen(path, "r");

		cr_assert_not_null(f);
		if (!fgets(wchan, sizeof(wchan), f))
			wchan[0] = '\0';
		fclose(f);
		if (strstr(wchan, "epoll") || strstr(wchan, "ep_poll"))
			break;
		cr_assert_lt(spins, 3000, "hbusd never went back to epoll_wait (%s)", wchan);
		hb_backoff(&spins);
	}
	cr_assert_eq(kill(env.pid, SIGSTOP), 0);
	cr_assert_eq(waitpid(env.pid, &st, WUNTRACED), env.pid);
	cr_assert(WIFSTOPPED(st));
}

static void thaw(void)
{
	cr_assert_eq(kill(env.pid, SIGCONT), 0);
}

static int64_t stat_int(int fd, const char *key)
{
	json_t *r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	int64_t v;

	cr_assert(hb_ok(r), "stat: %s", hb_error(r));
	v = hb_int(r, key);
	json_decref(r);
	return v;
}

#define PIPELINED 48

/* Two sessions each have 48 requests waiting when hbusd resumes: it
 * serves them 16 at a time, alternating (queue ids are given in the order
 * the declares are served). */
Test(security_turns, hostile_clients_get_16_requests_per_turn)
{
	int fd[2], i, k;
	uint32_t qid[2][PIPELINED], lo = UINT32_MAX;
	int owner[2 * PIPELINED];
	char req[160];
	unsigned runs = 0, run = 0;

	hb_start(&env, NULL);
	fd[0] = hb_session(&env, NULL);
	fd[1] = hb_session(&env, NULL);
	freeze();
	for (k = 0; k < 2; k++)
		for (i = 0; i < PIPELINED; i++) {
			int n = snprintf(req, sizeof(req), "{\"op\":\"declare_queue\",\"name\":"
				 "\"s%d.%d\",\"capacity\":2,\"slot_size\":8}", k, i);
			cr_assert_eq(send(fd[k], req, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL), n,
				     "request %d of session %d did not fit the socket", i, k);
		}
	thaw();
	for (k = 0; k < 2; k++)
		for (i = 0; i < PIPELINED; i++) {
			json_t *r = hb_recv(fd[k], NULL);

			cr_assert(hb_ok(r), "declare %d of session %d: %s", i, k, hb_error(r));
			qid[k][i] = (uint32_t)hb_int(r, "qid");
			lo = qid[k][i] < lo ? qid[k][i] : lo;
			json_decref(r);
		}
	for (i = 0; i < 2 * PIPELINED; i++)
		owner[i] = -1;
	for (k = 0; k < 2; k++)
		for (i = 0; i < PIPELINED; i++) {
			cr_assert_lt(qid[k][i] - lo, 2 * PIPELINED, "qids not consecutive");
			owner[qid[k][i] - lo] = k;
		}
	/* In qid order: runs of exactly 16 of one session, then the other. */
	for (i = 0; i < 2 * PIPELINED; i++) {
		cr_assert_geq(owner[i], 0, "qid %u not handed out", lo + (unsigned)i);
		run++;
		if (i + 1 == 2 * PIPELINED || owner[i + 1] != owner[i]) {
			cr_assert_eq(run, 16, "run %u: %u requests of session %d in one turn", runs, run,
				     owner[i]);
			runs++;
			run = 0;
		}
	}
	cr_assert_eq(runs, 2 * PIPELINED / 16);
	close(fd[0]);
	close(fd[1]);
}

/* 100 connections wait in the backlog when hbusd resumes, and a request
 * of an old session behind them: hbusd accepts 64, serves the request
 * (which counts them), and takes the rest on its next turn. */
Test(security_turns, hostile_clients_get_64_accepts_per_turn)
{
	static const char stat[] = "{\"op\":\"stat\"}";
	int keep, conn[100], i;
	unsigned spins = 0;
	int64_t base;
	json_t *r;

	hb_start(&env, NULL);
	keep = hb_session(&env, NULL);
	base = stat_int(keep, "sessions");
	freeze();
	for (i = 0; i < 100; i++) {
		conn[i] = hb_connect(&env);
		cr_assert_geq(conn[i], 0, "connect %d: %s", i, strerror(errno));
	}
	cr_assert_eq(hb_send_raw(keep, stat, sizeof(stat) - 1), 0);
	thaw();
	r = hb_recv(keep, NULL);
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert_eq(hb_int(r, "sessions"), base + 64, "%lld sessions when the request was served",
		     (long long)hb_int(r, "sessions"));
	json_decref(r);
	while (stat_int(keep, "sessions") != base + 100) {
		cr_assert_lt(spins, 3000, "the other 36 connections were never accepted");
		hb_backoff(&spins);
	}
	for (i = 0; i < 100; i++)
		close(conn[i]);
	for (spins = 0; stat_int(keep, "sessions") != base;) {
		cr_assert_lt(spins, 3000, "hello-less sessions not closed");
		hb_backoff(&spins);
	}
	cr_assert_null(strstr(hb_log_text(&env), "owner 0"), "a hello-less session was logged");
	close(keep);
}

Test(security_turns, silent_client_blocks_nobody_and_is_closed_at_hello_timeout)
{
	static const char *const fast[] = { "--hello-timeout", "3", NULL };
	struct pollfd pfd;
	uint64_t t0, waited;
	int silent, fd;
	json_t *r;
	char c;

	hb_start(&env, fast);
	silent = hb_connect(&env);
	cr_assert_geq(silent, 0);
	t0 = tu_now_ms();
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "served");
	/* Served while the silent session was still open: it held no one
	 * up (a server blocked on it would answer after closing it). */
	pfd = (struct pollfd){ .fd = silent, .events = POLLIN | POLLRDHUP };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "the silent session was closed before another was served");
	r = hb_recv(silent, NULL); /* the reason, then end of stream */
	waited = tu_now_ms() - t0;
	EXPECT(r, 503, "no hello within 3 s");
	cr_assert_geq(waited, 2900, "closed after %llu ms, before its deadline",
		      (unsigned long long)waited);
	cr_assert_eq(recv(silent, &c, 1, 0), 0, "the silent session was not closed");
	close(silent);
	/* The pass that closed it passed over this session: one that said
	 * hello stays, however quiet. */
	cr_assert_eq(hb_list_count(fd, "queues"), 1);
	close(fd);
}

/* As nobody: open n connections and say hello on each, then go on
 * connecting until storm_ms after the first refusal (each refused);
 * "ok|refused|last error". */
static void child_sessions(int out, int n, unsigned storm_ms)
{
	unsigned ok = 0, refused = 0;
	char line[400] = "", err[300] = "";
	uint64_t end = 0;
	int i, len;

	tu_become(NOBODY);
	for (i = 0; i < n || (storm_ms && (!end || tu_now_ms() < end)); i++) {
		int fd = hb_connect(&env);
		json_t *r;

		if (fd < 0)
			_exit(21);
		send(fd, "{\"op\":\"hello\"}", 14, MSG_NOSIGNAL); /* may be EPIPE: refused */
		r = hb_recv(fd, NULL);
		if (hb_ok(r)) {
			ok++;
		} else {
			refused++;
			snprintf(err, sizeof(err), "%s", hb_error(r));
			close(fd);
			if (refused == 1 && storm_ms)
				end = tu_now_ms() + storm_ms;
		}
		json_decref(r);
	}
	len = snprintf(line, sizeof(line), "%u|%u|%s\n", ok, refused, err);
	_exit(write(out, line, (size_t)len) == len ? 0 : 23);
}

static void sessions_as_nobody(int n, unsigned storm_ms, char *out, size_t cap)
{
	ssize_t got;
	int fd, st;
	pid_t pid = tu_fork_reporting(&fd);

	if (pid == 0)
		child_sessions(fd, n, storm_ms);
	got = read(fd, out, cap - 1);
	cr_assert_gt(got, 0);
	out[got] = '\0';
	close(fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", WEXITSTATUS(st));
}

Test(security_turns, one_user_cannot_take_every_session)
{
	static const char perms[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\".*\"}}}";
	static const char *const cap[] = { "--max-sessions-per-user", "8", NULL };
	char out[512] = "";
	int fds[20], i;

	hb_start_perms(&env, perms, cap);
	sessions_as_nobody(12, 0, out, sizeof(out));
	cr_assert_str_eq(out, "8|4|too many sessions of user 'nobody': limit of 8 reached "
			      "(hbusd --max-sessions-per-user)\n");
	/* root is not held to it. */
	for (i = 0; i < 20; i++)
		fds[i] = hb_session(&env, NULL);
	for (i = 0; i < 20; i++)
		close(fds[i]);
}

/* A storm of refused connections for 1.5 s: the log says so at most once
 * a second, and the lines count what they left out.  (hbusd saw the last
 * refusal at least 1.5 s after the first: so two lines at least.) */
Test(security_turns, refusals_are_logged_at_most_once_a_second)
{
	static const char perms[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\".*\"}}}";
	static const char *const cap[] = { "--max-sessions-per-user", "8", NULL };
	const char *line = "connection refused: too many sessions of user 'nobody'", *p;
	unsigned ok, refused, lines = 0, more, quiet = 0;
	uint64_t t0, elapsed;
	char out[512] = "";

	hb_start_perms(&env, perms, cap);
	t0 = tu_now_ms();
	sessions_as_nobody(8, 1500, out, sizeof(out));
	elapsed = tu_now_ms() - t0;
	cr_assert_eq(sscanf(out, "%u|%u|", &ok, &refused), 2, "%s", out);
	cr_assert_eq(ok, 8);
	for (p = hb_log_text(&env); (p = strstr(p, line)) != NULL; p++) {
		cr_assert_eq(sscanf(strstr(p, "reached (hbusd --max-sessions-per-user) (") +
					    strlen("reached (hbusd --max-sessions-per-user) ("),
				    "%u more", &more), 1, "no count of the quiet ones in the line");
		quiet += more;
		lines++;
	}
	cr_log_info("%u refusals in %llu ms: %u log lines, counting %u more", refused,
		    (unsigned long long)elapsed, lines, quiet);
	cr_assert_geq(refused, 20, "the storm was too small to show anything");
	cr_assert_geq(lines, 2, "refusals over 1.5 s logged %u times", lines);
	cr_assert_leq(lines, elapsed / 1000 + 1, "%u lines in %llu ms", lines,
		      (unsigned long long)elapsed);
	/* Each refusal is in a line or counted in the next one (the last
	 * second's are not logged until a refusal after it). */
	cr_assert_leq(lines + quiet, refused);
}
