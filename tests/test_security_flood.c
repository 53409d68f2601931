/*
 * test_security_flood.c - hostile clients against the real hbusd: each row
 * of docs/SECURITY.md's table "Hostile clients do not stop hbusd serving
 * the others" (section 5), checked.
 *
 * hostile_clients_do_not_stop_service_to_others runs six attackers at once
 * as user nobody; each reports what it did through a pipe (requests sent,
 * the replies it expected: a wrong reply ends it with a non-zero status),
 * so the test knows that every attack ran, and was still running and
 * working when the probes ended, not only that hbusd answered the probes.
 * The per-turn bounds (16 requests, 64 accepts) are shown exactly: hbusd
 * is stopped (SIGSTOP) while requests or connections pile up, and the
 * order in which it then serves them is read back (queue ids are handed
 * out in order; `stat` counts sessions).  No assertion on elapsed time
 * other than lower bounds: the machine is noisy.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "testutil.h"

#define NOBODY 65534u
#define MAX_HOSTILE 8

static struct hb_env env;

/* What a hostile client has done so far (one pipe write: atomic). */
struct hreport {
	uint64_t work;   /* requests sent, connections made, ... */
	uint64_t checked; /* replies received and found as the table says */
	uint32_t flags;
};
#define H_BLOCKED 1u /* a send would block: hbusd stopped reading us */

static struct hostile {
	const char *name;
	pid_t pid;
	int fd;
	struct hreport last;
} hostile[MAX_HOSTILE];
static unsigned n_hostile;
static int report_fd = -1; /* in a hostile child */

static void setup(void)
{
	hb_env_init(&env, "flood");
}

static void stop_hostiles(void)
{
	while (n_hostile) {
		struct hostile *h = &hostile[--n_hostile];
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		close(h->fd);
	}
}

static void teardown(void)
{
	stop_hostiles();
	hb_env_fini(&env);
}

TestSuite(security_flood, .init = setup, .fini = teardown, .timeout = 180);

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void as_nobody(void)
{
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		_exit(20);
}

/* ------------------------------------------------------ hostile clients */

/* In a hostile child: say what was done so far.  The pipe is non-blocking
 * on this side: a report that does not fit is dropped (the next says more),
 * the attack never waits for the test. */
static void say(uint64_t work, uint64_t checked, uint32_t flags)
{
	struct hreport r = { .work = work, .checked = checked, .flags = flags };

	if (write(report_fd, &r, sizeof(r)) < 0 && errno != EAGAIN)
		_exit(21); /* the test is gone */
}

static int raw_session(void)
{
	int fd = hb_connect(&env);
	json_t *r;

	if (fd < 0)
		_exit(30);
	r = hb_call(fd, NULL, "{s:s}", "op", "hello");
	if (!hb_ok(r))
		_exit(31);
	json_decref(r);
	return fd;
}

/* A reply with this code whose message contains needle, or _exit(code). */
static void want_reply(int fd, int code, const char *needle, int exit_code)
{
	json_t *r = hb_recv(fd, NULL);

	if (hb_code(r) != code || !strstr(hb_error(r), needle))
		_exit(exit_code);
	json_decref(r);
}

/* Sends and never reads: hbusd must stop reading it, not block on it. */
static void flood_unread(void)
{
	static const char req[] = "{\"op\":\"list\",\"what\":\"queues\"}";
	int fd = raw_session();
	uint64_t sent = 0;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0) {
			if (errno != EAGAIN)
				_exit(32);
			say(sent, 0, H_BLOCKED);
			usleep(1000);
			continue;
		}
		say(++sent, 0, 0);
	}
}

/* Topology changes as fast as they are answered, every one of them
 * answered ok: each compiles the routing table and rewrites (fsyncs) the
 * definitions file. */
static void flood_changes(void)
{
	int fd = raw_session();
	uint64_t n = 0;

	for (;;) {
		json_t *r = hb_call(fd, NULL, "{s:s, s:s, s:b, s:i, s:i}", "op", "declare_queue",
				    "name", "churn", "durable", 1, "capacity", 2, "slot_size", 8);
		if (!hb_ok(r))
			_exit(33);
		json_decref(r);
		r = hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "churn");
		if (!hb_ok(r))
			_exit(34);
		json_decref(r);
		n += 2;
		say(n, n, 0);
	}
}

/* Requests over the 64 KiB limit (502 naming it, the session lives),
 * deeply nested JSON under it (502) and an unknown field (503). */
static void flood_huge(void)
{
	static char big[200000], deep[60000];
	static const char unknown[] = "{\"op\":\"list\",\"what\":\"queues\",\"colour\":1}";
	int fd = raw_session(), sndbuf = 1 << 20;
	uint64_t n = 0;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memset(big, '[', sizeof(big));
	memset(deep, '[', sizeof(deep));
	for (;;) {
		if (hb_send_raw(fd, big, sizeof(big)) || hb_send_raw(fd, deep, sizeof(deep)) ||
		    hb_send_raw(fd, unknown, sizeof(unknown) - 1))
			_exit(35);
		want_reply(fd, 502, "larger than the limit of 65536 bytes (hbusd --max-request)", 36);
		want_reply(fd, 502, "", 37);
		want_reply(fd, 503, "colour", 38);
		n += 3;
		say(n, n, 0);
	}
}

/* 250 descriptors with every request: each refused (503), all closed. */
static void flood_fds(void)
{
	static const char req[] = "{\"op\":\"stat\"}";
	char cbuf[CMSG_SPACE(250 * sizeof(int))];
	struct iovec iov = { .iov_base = (void *)req, .iov_len = sizeof(req) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fd = raw_session(), fds[250], i;
	uint64_t sent = 0, refused = 0;

	for (i = 0; i < 250; i++)
		fds[i] = open("/dev/null", O_RDONLY);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	for (;;) {
		/* ETOOMANYREFS: the kernel's own cap on descriptors in flight */
		if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0) {
			if (errno != ETOOMANYREFS && errno != EAGAIN)
				_exit(39);
			usleep(1000);
			continue;
		}
		sent++;
		want_reply(fd, 503, "hbusd accepts no file descriptors", 40);
		say(sent, ++refused, 0);
	}
}

/* Connect, maybe send garbage, hang up, again and again. */
static void storm_connect(void)
{
	uint64_t i, made = 0;

	for (i = 0;; i++) {
		int fd = hb_connect(&env);
		if (fd < 0)
			continue;
		if (i & 1)
			send(fd, "{\"op\":", 6, MSG_NOSIGNAL);
		close(fd);
		say(++made, 0, 0);
	}
}

/* Holds 100 connections that never say hello (hbusd's per-user limit is
 * 256 by default: the storm above still gets some), and checks they stay
 * open (the hello timeout is set far beyond the test). */
static void hold_silent(void)
{
	struct pollfd p[100];
	int i;

	for (i = 0; i < 100; i++) {
		p[i] = (struct pollfd){ .fd = hb_connect(&env), .events = POLLIN | POLLRDHUP };
		if (p[i].fd < 0)
			_exit(41);
	}
	for (;;) {
		if (poll(p, 100, 0) != 0)
			_exit(42); /* hbusd said something, or closed one */
		say(100, 100, 0);
		usleep(20000);
	}
}

/* A hostile client is another local user (root may do anything anyway). */
static void spawn_hostile(const char *name, void (*fn)(void))
{
	struct hostile *h = &hostile[n_hostile];

	cr_assert_lt(n_hostile, MAX_HOSTILE);
	h->name = name;
	h->last = (struct hreport){ 0 };
	h->pid = tu_fork_reporting(&h->fd);
	if (h->pid == 0) {
		report_fd = h->fd;
		fcntl(report_fd, F_SETFL, O_NONBLOCK);
		as_nobody();
		fn();
		_exit(0);
	}
	fcntl(h->fd, F_SETFL, O_NONBLOCK);
	n_hostile++;
}

/* Read what the hostile clients reported; each must still run. */
static void collect(void)
{
	struct hreport r;
	unsigned i;
	int st;

	for (i = 0; i < n_hostile; i++) {
		struct hostile *h = &hostile[i];

		while (read(h->fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
			h->last = r;
		cr_assert_eq(waitpid(h->pid, &st, WNOHANG), 0,
			     "hostile client %s ended (status 0x%x: exit %d) after %lu units", h->name,
			     st, WIFEXITED(st) ? WEXITSTATUS(st) : -1, h->last.work);
	}
}

static struct hostile *hostile_named(const char *name)
{
	for (unsigned i = 0; i < n_hostile; i++)
		if (!strcmp(hostile[i].name, name))
			return &hostile[i];
	cr_assert_fail("no hostile client %s", name);
	return NULL;
}

Test(security_flood, hostile_clients_do_not_stop_service_to_others)
{
	static const char *const slow_hello[] = { "--hello-timeout", "600", NULL };
	static const struct {
		const char *name;
		void (*fn)(void);
	} kinds[] = { { "flood_unread", flood_unread }, { "flood_changes", flood_changes },
		      { "flood_huge", flood_huge },     { "flood_fds", flood_fds },
		      { "storm_connect", storm_connect }, { "hold_silent", hold_silent } };
	struct hreport before[MAX_HOSTILE];
	uint64_t t0, t, worst = 0;
	unsigned i, probes, spins = 0, base;
	char name[32];
	int keep, fd;

	hb_start_perms(&env, "{\"users\":{\"nobody\":{\"configure\":\"^churn$\",\"write\":\"\","
			     "\"read\":\".*\"}}}", slow_hello);
	keep = hb_session(&env, NULL);
	base = hb_fd_count(env.pid);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		spawn_hostile(kinds[i].name, kinds[i].fn);
	/* Every attack is under way before the probes start. */
	for (;;) {
		unsigned going = 0;

		collect();
		for (i = 0; i < n_hostile; i++)
			going += hostile[i].last.work > 0;
		if (going == n_hostile)
			break;
		cr_assert_lt(spins, 3000, "only %u of %u hostile clients got going", going, n_hostile);
		hb_backoff(&spins);
	}
	/* flood_unread is blocked once hbusd stopped reading it (32 replies
	 * it never read are waiting): wait for that too. */
	for (spins = 0; !(hostile_named("flood_unread")->last.flags & H_BLOCKED);) {
		cr_assert_lt(spins, 3000, "flood_unread never blocked: hbusd kept reading it");
		hb_backoff(&spins);
		collect();
	}
	for (i = 0; i < n_hostile; i++)
		before[i] = hostile[i].last;
	/* While they run: new sessions and an old one are served. */
	for (probes = 0; probes < 20; probes++) {
		t0 = now_ms();
		fd = hb_session(&env, NULL);
		snprintf(name, sizeof(name), "probe.%u", probes);
		hb_declare_queue(fd, name);
		OK(hb_call(keep, NULL, "{s:s, s:s}", "op", "delete_queue", "name", name));
		close(fd);
		t = now_ms() - t0;
		worst = t > worst ? t : worst;
		collect();
		usleep(20000);
	}
	/* ...while every attack was still running, and working: */
	collect();
	for (i = 0; i < n_hostile; i++) {
		struct hostile *h = &hostile[i];

		cr_log_info("%-14s %8lu units, %8lu replies as documented%s", h->name, h->last.work,
			    h->last.checked, h->last.flags & H_BLOCKED ? ", blocked (not read)" : "");
		if (!strcmp(h->name, "flood_unread"))
			cr_assert(h->last.flags & H_BLOCKED, "hbusd read flood_unread again");
		else if (!strcmp(h->name, "hold_silent"))
			cr_assert_eq(h->last.checked, 100, "silent connections were closed");
		else
			cr_assert_gt(h->last.work, before[i].work, "%s made no progress during the probes",
				     h->name);
	}
	cr_assert_gt(hostile_named("flood_huge")->last.checked, 0);
	cr_assert_gt(hostile_named("flood_fds")->last.checked, 0);
	cr_log_info("%u probes under attack, worst %llu ms", probes, (unsigned long long)worst);
	stop_hostiles();
	/* Only what a flooder may have left: its queue, killed mid-cycle. */
	json_decref(hb_call(keep, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "churn"));
	/* Their sessions close; every descriptor they sent was closed. */
	for (spins = 0; hb_fd_count(env.pid) > base;) {
		cr_assert_lt(spins, 3000, "hbusd holds %u descriptors, %u before the attack",
			     hb_fd_count(env.pid), base);
		hb_backoff(&spins);
	}
	cr_assert_eq(hb_list_count(keep, "queues"), 0);
	/* Sessions that never said hello are not logged one by one. */
	cr_assert_null(strstr(hb_log_text(&env), "owner 0"), "a hello-less session was logged");
	close(keep);
}

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
Test(security_flood, hostile_clients_get_16_requests_per_turn)
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
Test(security_flood, hostile_clients_get_64_accepts_per_turn)
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

Test(security_flood, silent_client_blocks_nobody_and_is_closed_at_hello_timeout)
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
	t0 = now_ms();
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "served");
	/* Served while the silent session was still open: it held no one
	 * up (a server blocked on it would answer after closing it). */
	pfd = (struct pollfd){ .fd = silent, .events = POLLIN | POLLRDHUP };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "the silent session was closed before another was served");
	r = hb_recv(silent, NULL); /* the reason, then end of stream */
	waited = now_ms() - t0;
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

	as_nobody();
	for (i = 0; i < n || (storm_ms && (!end || now_ms() < end)); i++) {
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
				end = now_ms() + storm_ms;
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

Test(security_flood, one_user_cannot_take_every_session)
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
Test(security_flood, refusals_are_logged_at_most_once_a_second)
{
	static const char perms[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\".*\"}}}";
	static const char *const cap[] = { "--max-sessions-per-user", "8", NULL };
	const char *line = "connection refused: too many sessions of user 'nobody'", *p;
	unsigned ok, refused, lines = 0, more, quiet = 0;
	uint64_t t0, elapsed;
	char out[512] = "";

	hb_start_perms(&env, perms, cap);
	t0 = now_ms();
	sessions_as_nobody(8, 1500, out, sizeof(out));
	elapsed = now_ms() - t0;
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
