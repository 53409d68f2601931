/*
 * test_security.c - what stands between a local user and a bus
 * (docs/SECURITY.md), against the real hbusd: private files and
 * directories, descriptors only for the permission asked, other uids
 * refused or held to exactly their grant, a planted bus directory refused,
 * and hostile clients (descriptors, huge requests, floods, connection
 * storms, silence) that never stop hbusd serving everyone else.
 *
 * Other uids run in forked children that drop to uid 65534 (nobody) and
 * report what they saw through a pipe, one line per request.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "testutil.h"

#define NOBODY 65534u
#define MAX_HOSTILE 16

static struct hb_env env;
static pid_t hostile[MAX_HOSTILE];
static unsigned n_hostile;

static void setup(void)
{
	hb_env_init(&env, "sec");
}

static void stop_hostiles(void)
{
	hb_kill_all(hostile, &n_hostile);
}

static void teardown(void)
{
	stop_hostiles();
	hb_env_fini(&env);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 120);

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Start hbusd with a permissions file holding `json` (NULL: none). */
static void start_with_perms(const char *json, const char *const *more)
{
	static char path[300];
	const char *extra[16] = { NULL };
	unsigned n = 0;
	FILE *f;

	if (json) {
		snprintf(path, sizeof(path), "%s/permissions.json", env.base);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs(json, f);
		fclose(f);
		extra[n++] = "--permissions";
		extra[n++] = path;
	}
	while (more && *more && n < 15)
		extra[n++] = *more++;
	hb_start(&env, extra);
}

static void file_is_private(const char *path, mode_t mode)
{
	struct stat st;

	cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(st.st_uid, geteuid(), "%s is owned by uid %u", path, (unsigned)st.st_uid);
	cr_assert_eq(st.st_mode & 07777, mode, "%s has mode %04o, not %04o", path,
		     (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

Test(security, directories_and_files_are_private_to_hbusd)
{
	char dir[256], path[600];
	struct dirent *de;
	unsigned queues = 0;
	int fd;
	DIR *d;

	start_with_perms(NULL, NULL);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "plain");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "kept", "durable", 1));
	close(fd);

	file_is_private(env.run, 0700);
	file_is_private(env.sock, 0600);
	hb_bus_dir(&env, dir, sizeof(dir));
	file_is_private(dir, 0700);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		file_is_private(path, 0600); /* superblock, routes, state, queues */
		queues += !strncmp(de->d_name, "queue.", 6);
	}
	closedir(d);
	cr_assert_eq(queues, 2);
	file_is_private(env.defs, 0640);
}

/* ------------------------------------------------------ as another user */

/* In the child, as uid: one request per entry, one line per reply:
 * "code|fd|error", fd 1 when a descriptor came with it.  A queue descriptor
 * is mapped with the session's owner id and one message is consumed from
 * it: "|seq=N" or "|empty".  "path:P" is not sent but tried as an open(2)
 * of P: "path|0|<errno text>" (or "path|1|" if it opened).  No Criterion
 * asserts in a child: it reports by exit status. */
static void child_as(uid_t uid, int out, const char *const *reqs)
{
	char line[700];
	uint32_t owner = 0;
	int fd, n;

	if (setgroups(0, NULL) || setgid(uid) || setuid(uid))
		_exit(20);
	fd = hb_connect(&env);
	if (fd < 0) {
		n = snprintf(line, sizeof(line), "connect|0|%s\n", strerror(errno));
		_exit(write(out, line, (size_t)n) == n ? 0 : 23);
	}
	for (; *reqs; reqs++) {
		struct hbus_queue_opts o = { .ack_mode = HBUS_ACK_AUTO };
		struct tu_payload p;
		struct hbus_msg m;
		hbus_queue *q;
		json_t *r;
		int rfd = -1;

		if (!strncmp(*reqs, "path:", 5)) {
			rfd = open(*reqs + 5, O_RDWR);
			n = snprintf(line, sizeof(line), "path|%d|%s\n", rfd >= 0,
				     rfd >= 0 ? "" : strerror(errno));
			if (rfd >= 0)
				close(rfd);
		} else {
			if (hb_send_raw(fd, *reqs, strlen(*reqs)))
				_exit(22);
			r = hb_recv(fd, &rfd);
			if (hb_ok(r) && json_object_get(r, "owner"))
				owner = (uint32_t)hb_int(r, "owner");
			n = snprintf(line, sizeof(line), "%d|%d|%s", hb_code(r), rfd >= 0, hb_error(r));
			o.owner = owner;
			if (rfd >= 0 && json_object_get(r, "qid") && hbus_queue_open_fd(rfd, &o, &q) == 0) {
				if (hbus_queue_consume(q, &m) == 0 && tu_payload_ok(&m, &p))
					n += snprintf(line + n, sizeof(line) - (size_t)n, "|seq=%u", p.seq);
				else
					n += snprintf(line + n, sizeof(line) - (size_t)n, "|empty");
				hbus_queue_close(q);
			}
			n += snprintf(line + n, sizeof(line) - (size_t)n, "\n");
			if (rfd >= 0)
				close(rfd);
			json_decref(r);
		}
		if (write(out, line, (size_t)n) != n)
			_exit(23);
	}
	_exit(0);
}

static void results_as(uid_t uid, const char *const *reqs, char *buf, size_t cap)
{
	tu_output_as(child_as, uid, reqs, buf, cap);
}

/* The next line of a results_as buffer (strtok_r over it). */
static const char *next_line(char **save, char *buf)
{
	const char *l = strtok_r(buf, "\n", save);

	cr_assert_not_null(l, "fewer reply lines than requests");
	return l;
}

static void expect_line(const char *line, const char *prefix)
{
	cr_assert(!strncmp(line, prefix, strlen(prefix)), "got '%s', expected '%s...'", line,
		  prefix);
}

static void fill_queue(int fd, uint32_t owner, const char *name, uint32_t n)
{
	hbus_queue *q = hb_open_queue(fd, name, "write", owner, HBUS_ACK_AUTO);
	uint32_t i;

	for (i = 0; i < n; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	hbus_queue_close(q);
}

Test(security, read_grant_on_pub_gives_exactly_that)
{
	static const char perms[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\"^pub\\\\..*\"}}}";
	char out[4096], qpath[400], dir[256], pathreq[420], *save = NULL;
	const char *reqs[16];
	uint32_t owner;
	int fd, n = 0;
	json_t *r;

	start_with_perms(perms, NULL);
	fd = hb_session(&env, &owner);
	hb_declare_queue(fd, "pub.ticks");
	hb_declare_queue(fd, "priv.orders");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "pub.x"));
	fill_queue(fd, owner, "pub.ticks", 3);
	fill_queue(fd, owner, "priv.orders", 3);
	r = hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "priv.orders",
		    "passive", 1);
	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(qpath, sizeof(qpath), "%s/queue.%lld", dir, (long long)hb_int(r, "qid"));
	json_decref(r);
	snprintf(pathreq, sizeof(pathreq), "path:%s", qpath);

	reqs[n++] = "{\"op\":\"hello\"}";
	reqs[n++] = "{\"op\":\"open_queue\",\"name\":\"pub.ticks\",\"for\":\"read\"}";
	reqs[n++] = "{\"op\":\"consume\",\"queue\":\"pub.ticks\"}";
	reqs[n++] = "{\"op\":\"open_queue\",\"name\":\"pub.ticks\",\"for\":\"write\"}";
	reqs[n++] = "{\"op\":\"open_queue\",\"name\":\"priv.orders\",\"for\":\"read\"}";
	reqs[n++] = "{\"op\":\"consume\",\"queue\":\"priv.orders\"}";
	reqs[n++] = "{\"op\":\"declare_queue\",\"name\":\"pub.new\"}";
	reqs[n++] = "{\"op\":\"delete_queue\",\"name\":\"pub.ticks\"}";
	reqs[n++] = "{\"op\":\"bind\",\"source\":\"pub.x\",\"destination\":\"pub.ticks\"}";
	reqs[n++] = "{\"op\":\"purge_queue\",\"name\":\"priv.orders\"}";
	reqs[n++] = pathreq;
	reqs[n] = NULL;
	results_as(NOBODY, reqs, out, sizeof(out));

	cr_assert_str_eq(next_line(&save, out), "0|1|");  /* hello: the routes file */
	cr_assert_str_eq(next_line(&save, NULL), "0|1||seq=0");
	cr_assert_str_eq(next_line(&save, NULL), "0|1||seq=1");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no write permission on queue 'pub.ticks'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no read permission on queue 'priv.orders'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no read permission on queue 'priv.orders'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no configure permission on queue 'pub.new'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no configure permission on queue 'pub.ticks'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no write permission on queue 'pub.ticks'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no read permission on queue 'priv.orders'");
	cr_assert_str_eq(next_line(&save, NULL), "path|0|Permission denied",
			 "a queue file was reachable by path");

	/* Nothing of it touched what nobody was refused: all 3 still there. */
	r = hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "priv.orders",
		    "passive", 1);
	cr_assert_eq(hb_int(r, "messages"), 3);
	json_decref(r);
	close(fd);
}

Test(security, other_uid_without_a_grant_is_refused)
{
	static const char *const reqs[] = {
		"{\"op\":\"declare_queue\",\"name\":\"q\"}", /* before hello */
		"{\"op\":\"hello\"}",
		"{\"op\":\"declare_queue\",\"name\":\"q\"}", /* after a refused hello */
		"{\"op\":\"consume\",\"queue\":\"q\"}",
		NULL,
	};
	char out[4096], *save = NULL;

	/* No permissions file: the socket is out of reach of other users. */
	start_with_perms(NULL, NULL);
	results_as(NOBODY, reqs, out, sizeof(out));
	cr_assert_str_eq(out, "connect|0|Permission denied\n");
	/* An admin who opened it up by hand still has hbusd's own check. */
	cr_assert_eq(chmod(env.run, 0755), 0);
	cr_assert_eq(chmod(env.sock, 0666), 0);
	results_as(NOBODY, reqs, out, sizeof(out));
	expect_line(next_line(&save, out), "503|0|op 'declare_queue' before hello");
	expect_line(next_line(&save, NULL), "403|0|access refused for user 'nobody' (uid 65534): "
					    "hbusd has no permissions file");
	expect_line(next_line(&save, NULL), "503|0|op 'declare_queue' before hello");
	expect_line(next_line(&save, NULL), "503|0|op 'consume' before hello");

	/* A file that grants someone else, not nobody. */
	hb_stop(&env);
	start_with_perms("{\"users\":{\"65533\":{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}}}",
			 NULL);
	results_as(NOBODY, reqs + 1, out, sizeof(out));
	save = NULL;
	expect_line(next_line(&save, out), "403|0|access refused for user 'nobody' (uid 65534): "
					   "no entry for it or its groups");
	expect_line(next_line(&save, NULL), "503|0|op 'declare_queue' before hello");
}

Test(security, planted_bus_or_run_directory_is_refused)
{
	char dir[256], out[4096];
	int fd;

	hb_bus_dir(&env, dir, sizeof(dir));
	/* A bus directory others may write to.  (One another user made is
	 * moved aside: test_attack.c, bus_directory_squatting.) */
	cr_assert_eq(mkdir(dir, 0777), 0);
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, "writable by every user (mode 0777)"), "%s", out);
	cr_assert_eq(rmdir(dir), 0);
	/* A run dir others may write to (they could swap the socket). */
	cr_assert(mkdir(env.run, 0700) == 0 || errno == EEXIST); /* made by the failed starts */
	cr_assert_eq(chmod(env.run, 0775), 0);
	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, "run dir") && strstr(out, "writable by its group"), "%s", out);
	cr_assert_eq(chmod(env.run, 0700), 0);
	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	close(fd);
}

/* --------------------------------------------------------- hostile clients */

/* A hostile client is another local user (root may do anything anyway). */
static void spawn_hostile(void (*fn)(void))
{
	pid_t p;

	cr_assert_lt(n_hostile, MAX_HOSTILE);
	p = tu_fork();
	cr_assert_geq(p, 0);
	if (p == 0) {
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(20);
		fn();
		_exit(0);
	}
	hostile[n_hostile++] = p;
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

/* Sends and never reads: hbusd must stop reading it, not block on it. */
static void flood_unread(void)
{
	static const char req[] = "{\"op\":\"list\",\"what\":\"queues\"}";
	int fd = raw_session();

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;)
		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0)
			usleep(1000);
}

/* Topology changes as fast as they are answered: each one compiles the
 * routing table and rewrites (fsyncs) the definitions file. */
static void flood_changes(void)
{
	int fd = raw_session();
	json_t *r;

	for (;;) {
		r = hb_call(fd, NULL, "{s:s, s:s, s:b, s:i, s:i}", "op", "declare_queue", "name",
			    "churn", "durable", 1, "capacity", 2, "slot_size", 8);
		json_decref(r);
		json_decref(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "churn"));
	}
}

/* Requests over the 64 KiB limit, and deeply nested JSON under it. */
static void flood_huge(void)
{
	static char big[200000], deep[60000];
	int fd = raw_session();

	int sndbuf = 1 << 20;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memset(big, '[', sizeof(big));
	memset(deep, '[', sizeof(deep));
	for (;;) {
		if (hb_send_raw(fd, big, sizeof(big)) || hb_send_raw(fd, deep, sizeof(deep)))
			_exit(32); /* hbusd would have closed it: the probes say more */
		json_decref(hb_recv(fd, NULL));
		json_decref(hb_recv(fd, NULL));
	}
}

/* 250 descriptors with every request. */
static void flood_fds(void)
{
	static const char req[] = "{\"op\":\"stat\"}";
	char cbuf[CMSG_SPACE(250 * sizeof(int))];
	struct iovec iov = { .iov_base = (void *)req, .iov_len = sizeof(req) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fd = raw_session(), fds[250], i;

	for (i = 0; i < 250; i++)
		fds[i] = open("/dev/null", O_RDONLY);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	for (;;) {
		/* ETOOMANYREFS: the kernel's own cap on descriptors in flight */
		if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0) {
			usleep(1000);
			continue;
		}
		json_decref(hb_recv(fd, NULL));
	}
}

/* Connect, maybe send garbage, hang up, again and again. */
static void storm_connect(void)
{
	unsigned i;

	for (i = 0;; i++) {
		int fd = hb_connect(&env);
		if (fd >= 0 && (i & 1))
			send(fd, "{\"op\":", 6, MSG_NOSIGNAL);
		if (fd >= 0)
			close(fd);
	}
}

/* Holds 100 connections that never say hello (hbusd's per-user limit is
 * 256 by default: the storm above still gets some). */
static void hold_silent(void)
{
	int i;

	for (i = 0; i < 100; i++)
		hb_connect(&env);
	for (;;)
		pause();
}

static unsigned hbusd_fds(void)
{
	return hb_fd_count(env.pid);
}

Test(security, hostile_clients_do_not_stop_service_to_others, .timeout = 180)
{
	static void (*const kinds[])(void) = { flood_unread, flood_changes, flood_huge, flood_fds,
					       storm_connect, hold_silent };
	uint64_t t0, t, worst = 0, start;
	unsigned i, probes = 0, spins = 0, base;
	char name[32];
	int keep, fd;

	start_with_perms("{\"users\":{\"nobody\":{\"configure\":\"^churn$\",\"write\":\"\","
			 "\"read\":\".*\"}}}", NULL);
	keep = hb_session(&env, NULL);
	base = hbusd_fds();
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		spawn_hostile(kinds[i]);
	usleep(300000); /* let them get going */
	/* While they run: new sessions and an old one are answered in time. */
	for (start = now_ms(); now_ms() - start < 4000; probes++) {
		t0 = now_ms();
		fd = hb_session(&env, NULL);
		snprintf(name, sizeof(name), "probe.%u", probes);
		hb_declare_queue(fd, name);
		OK(hb_call(keep, NULL, "{s:s, s:s}", "op", "delete_queue", "name", name));
		close(fd);
		t = now_ms() - t0;
		worst = t > worst ? t : worst;
		usleep(20000);
	}
	cr_log_info("%u probes under attack, worst %llu ms", probes, (unsigned long long)worst);
	cr_assert_lt(worst, 2000, "a probe took %llu ms while hostile clients ran",
		     (unsigned long long)worst);
	cr_assert_geq(probes, 10);
	stop_hostiles();
	/* Only what a flooder may have left: its queue, killed mid-cycle. */
	json_decref(hb_call(keep, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "churn"));
	/* Their sessions close; every descriptor they sent was closed. */
	while (hbusd_fds() > base) {
		cr_assert_lt(spins, 500, "hbusd holds %u descriptors, %u before the attack",
			     hbusd_fds(), base);
		hb_backoff(&spins);
	}
	cr_assert_eq(hb_list_count(keep, "queues"), 0);
	close(keep);
}

Test(security, silent_client_blocks_nobody_and_is_closed_at_hello_timeout)
{
	static const char *const fast[] = { "--hello-timeout", "1", NULL };
	uint64_t t0, waited;
	int silent, fd;
	json_t *r;
	char c;

	start_with_perms(NULL, fast);
	silent = hb_connect(&env);
	cr_assert_geq(silent, 0);
	t0 = now_ms();
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "served");
	cr_assert_lt(now_ms() - t0, 1000, "a silent client held up another one");
	r = hb_recv(silent, NULL); /* the reason, then end of stream */
	waited = now_ms() - t0;
	EXPECT(r, 503, "no hello within 1 s");
	cr_assert_geq(waited, 700);
	cr_assert_lt(waited, 5000);
	cr_assert_eq(recv(silent, &c, 1, 0), 0, "the silent session was not closed");
	close(silent);
	/* A session that said hello stays, however quiet. */
	usleep(1600000);
	cr_assert_eq(hb_list_count(fd, "queues"), 1);
	close(fd);
}

/* As nobody: open n connections, say hello on each; "ok|refused|error". */
static void child_sessions(int out, int n)
{
	unsigned ok = 0, refused = 0;
	char line[400] = "", err[300] = "";
	int i, len;

	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		_exit(20);
	for (i = 0; i < n; i++) {
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
		}
		json_decref(r);
	}
	len = snprintf(line, sizeof(line), "%u|%u|%s\n", ok, refused, err);
	_exit(write(out, line, (size_t)len) == len ? 0 : 23);
}

Test(security, one_user_cannot_take_every_session)
{
	static const char perms[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\".*\"}}}";
	static const char *const cap[] = { "--max-sessions-per-user", "8", NULL };
	char out[512] = "";
	int p[2], st, fds[20], i;
	pid_t pid;

	start_with_perms(perms, cap);
	cr_assert_eq(pipe(p), 0);
	pid = tu_fork();
	if (pid == 0) {
		close(p[0]);
		child_sessions(p[1], 12);
	}
	close(p[1]);
	cr_assert_gt(read(p[0], out, sizeof(out) - 1), 0);
	close(p[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", WEXITSTATUS(st));
	cr_assert_str_eq(out, "8|4|too many sessions of user 'nobody': limit of 8 reached "
			      "(hbusd --max-sessions-per-user)\n");
	/* root is not held to it. */
	for (i = 0; i < 20; i++)
		fds[i] = hb_session(&env, NULL);
	for (i = 0; i < 20; i++)
		close(fds[i]);
}
