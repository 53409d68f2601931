/*
 * test_security_flood.c - hostile clients against the real hbusd: the rows
 * of docs/SECURITY.md's table "Hostile clients do not stop hbusd serving
 * the others" (section 5), all at once (the per-turn bounds, the hello
 * timeout and the session limits: test_security_turns.c).
 *
 * Six attackers run at once as user nobody; each reports what it did
 * through a pipe (requests sent, the replies it expected: a wrong reply
 * ends it with a non-zero status), so the test knows that every attack
 * ran, and was still running and working when the probes ended, not only
 * that hbusd answered the probes.  No assertion on elapsed time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
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
		tu_become(NOBODY);
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
		t0 = tu_now_ms();
		fd = hb_session(&env, NULL);
		snprintf(name, sizeof(name), "probe.%u", probes);
		hb_declare_queue(fd, name);
		OK(hb_call(keep, NULL, "{s:s, s:s}", "op", "delete_queue", "name", name));
		close(fd);
		t = tu_now_ms() - t0;
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
