/* attack.c - see attack.h. */
#include "attack.h"
#include "hbus.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Attackers still running: killed before their user is removed, whatever
 * assertion ended the test. */
static pid_t attackers[16];
static unsigned n_attackers;

uint64_t at_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run argv quietly; its exit status (or -1). */
static int run_quiet(char *const argv[])
{
	int st = 0, null;
	pid_t p = fork();

	if (p == 0) {
		null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (p < 0 || waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* userdel, again until it works: the user's last processes may still be
 * exiting (they die with the test process). */
static void remove_user(const char *name)
{
	char *del[] = { "userdel", (char *)name, NULL };
	char *force[] = { "userdel", "-f", (char *)name, NULL };
	int i;

	for (i = 0; i < 100; i++) {
		int rc = run_quiet(del);

		if (rc == 0 || rc == 6) /* 6: no such user */
			return;
		usleep(100000);
	}
	run_quiet(force);
}

void at_user_create(struct at_user *u)
{
	static int seq;
	struct passwd *pw;
	pid_t parent;
	int p[2], i, rc = -1;

	memset(u, 0, sizeof(*u));
	snprintf(u->name, sizeof(u->name), "hbt%d%c", (int)getpid(), 'a' + seq++ % 26);
	/* The reaper first: whatever happens next, the user goes.  Only the
	 * test process may hold the pipe's write end (close-on-exec, and the
	 * attackers close it): the reaper acts when the test is gone. */
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	parent = getpid();
	u->reaper = fork();
	cr_assert_geq(u->reaper, 0);
	if (u->reaper == 0) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		char c;

		/* Hold nothing of the test's (no other waiter may wait on us), and
		 * act when the test closes the pipe or is gone, whichever first. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != p[0])
				close(fd);
		while (getppid() == parent && (poll(&pf, 1, 1000) == 0 ||
					       (pf.revents & POLLIN && read(p[0], &c, 1) > 0)))
			;
		remove_user(u->name);
		_exit(0);
	}
	close(p[0]);
	u->reaper_fd = p[1];
	for (i = 0; i < 50 && rc != 0; i++) {
		char *add[] = { "useradd", "--system", "--no-create-home", "--user-group", "--shell",
				"/usr/sbin/nologin", u->name, NULL };

		rc = run_quiet(add);
		if (rc == 9) /* left by a crashed run of a recycled pid */
			remove_user(u->name);
		else if (rc != 0)
			usleep(100000); /* /etc/passwd locked by another useradd */
	}
	cr_assert_eq(rc, 0, "useradd %s failed (%d)", u->name, rc);
	pw = getpwnam(u->name);
	cr_assert_not_null(pw, "no passwd entry for %s", u->name);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	cr_assert_neq(u->uid, 0);
}

void at_user_remove(struct at_user *u)
{
	if (u->reaper > 0) {
		close(u->reaper_fd);
		waitpid(u->reaper, NULL, 0);
		u->reaper = 0;
	}
}

void at_init(struct hb_env *e, struct at_user *u, const char *bus)
{
	at_user_create(u);
	hb_env_init(e, bus);
}

void at_fini(struct hb_env *e, struct at_user *u)
{
	while (n_attackers)
		at_reap(attackers[0]);
	hb_env_fini(e);
	at_user_remove(u);
}

static void write_perms(const struct hb_env *e, const struct at_user *u, char *path, size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/permissions.json", e->base);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "{\"users\":{\"%s\":%s}}\n", u->name, AT_GRANT);
	cr_assert_eq(fclose(f), 0);
}

void at_restart(struct hb_env *e, const struct at_user *u, const char *const *extra)
{
	static char path[300];
	const char *args[24] = { "--permissions", path };
	unsigned n = 2;

	write_perms(e, u, path, sizeof(path));
	while (extra && *extra && n < 23)
		args[n++] = *extra++;
	args[n] = NULL;
	hb_start(e, args);
}

void at_start(struct hb_env *e, const struct at_user *u, const char *const *extra)
{
	int fd;

	at_restart(e, u, extra);
	fd = hb_session(e, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:b}", "op", "declare_exchange", "name", "vault.x",
		   "type", "direct", "durable", 1));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "vault.q", "durable",
		   1));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "vault.x",
		   "destination", "vault.q", "key", "k"));
	close(fd);
}

void at_say(int out, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(out, line, (size_t)n) != n)
		_exit(23);
}

const char *at_hear(int fd, char *buf, size_t cap, int timeout_ms)
{
	uint64_t deadline = at_now_ms() + (uint64_t)timeout_ms;
	size_t n = 0;
	char c;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = at_now_ms();
		int left = now >= deadline ? 0 : (int)(deadline - now);

		cr_assert_eq(poll(&p, 1, left), 1, "the attacker said nothing within %d ms (so far: "
			     "'%.*s')", timeout_ms, (int)n, buf);
		cr_assert_eq(read(fd, &c, 1), 1, "the attacker ended without a line (so far: '%.*s')",
			     (int)n, buf);
		if (c == '\n')
			break;
		if (n < cap - 1)
			buf[n++] = c;
	}
	buf[n] = '\0';
	return buf;
}

int at_hello(const struct hb_env *e, int fds[2])
{
	static const char hello[] = "{\"op\":\"hello\"}";
	int fd = hb_connect(e);
	json_t *r;

	fds[0] = fds[1] = -1;
	if (fd < 0 || hb_send_raw(fd, hello, sizeof(hello) - 1))
		return -1;
	r = hb_recv_fds(fd, fds, 2);
	if (!hb_ok(r)) {
		json_decref(r);
		close(fd);
		return -1;
	}
	json_decref(r);
	return fd;
}

pid_t at_spawn_as(const struct at_user *u, const struct hb_env *e, at_fn fn, void *arg,
		  int *out_fd)
{
	pid_t pid;

	cr_assert_lt(n_attackers, 16);
	pid = tu_fork_reporting(out_fd);
	if (pid == 0) {
		pid_t parent = getppid();

		close(u->reaper_fd);
		close(e->reaper_fd);
		if (setgroups(0, NULL) || setgid(u->gid) || setuid(u->uid) || getuid() != u->uid)
			_exit(20);
		/* Changing credentials cleared the parent-death signal tu_fork
		 * set: set it again, so the attacker dies with the test. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(21);
		fn(e, arg, *out_fd);
		_exit(0);
	}
	attackers[n_attackers++] = pid;
	return pid;
}

void at_reap(pid_t pid)
{
	unsigned i;

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (i = 0; i < n_attackers; i++)
		if (attackers[i] == pid)
			attackers[i--] = attackers[--n_attackers];
}

int at_run_as(const struct at_user *u, const struct hb_env *e, at_fn fn, void *arg, char *buf,
	      size_t cap)
{
	size_t got = 0;
	ssize_t n;
	int fd, st = 0;
	pid_t pid = at_spawn_as(u, e, fn, arg, &fd);

	while (got < cap - 1 && (n = read(fd, buf + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One timed request of root's; asserts it is answered ok in time. */
static unsigned timed_ok(int fd, const char *what, json_t *(*call)(int fd, const char *arg),
			 const char *arg)
{
	uint64_t t0 = at_now_ms(), ms;
	json_t *r = call(fd, arg);

	ms = (unsigned)(at_now_ms() - t0);
	cr_assert(hb_ok(r), "root's %s was refused: %s", what, hb_error(r));
	json_decref(r);
	cr_assert_lt(ms, AT_ROOT_MS, "root's %s took %llu ms", what, (unsigned long long)ms);
	return (unsigned)ms;
}

static json_t *call_declare(int fd, const char *name)
{
	return hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", name);
}

static json_t *call_delete(int fd, const char *name)
{
	return hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", name);
}

static json_t *call_list(int fd, const char *what)
{
	return hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", what);
}

unsigned at_root_served(const struct hb_env *e)
{
	uint64_t t0 = at_now_ms();
	unsigned worst, ms;
	int fd = hb_session(e, NULL);

	worst = (unsigned)(at_now_ms() - t0);
	cr_assert_lt(worst, AT_ROOT_MS, "root's hello took %u ms", worst);
	ms = timed_ok(fd, "declare_queue", call_declare, "vault.probe");
	worst = ms > worst ? ms : worst;
	ms = timed_ok(fd, "delete_queue", call_delete, "vault.probe");
	worst = ms > worst ? ms : worst;
	ms = timed_ok(fd, "list", call_list, "queues");
	worst = ms > worst ? ms : worst;
	close(fd);
	return worst;
}

void at_root_delivers(const struct hb_env *e, size_t n)
{
	struct hbus_client_opts o = { .bus = e->bus, .run_dir = e->run };
	uint8_t *body = malloc(n);
	hbus_client *c = NULL;
	hbus_queue *q = NULL;
	struct hbus_msg m;
	char reply[256];
	int rc;

	cr_assert_not_null(body);
	cr_assert_eq(getrandom(body, n, 0), (ssize_t)n);
	rc = hbus_connect(&o, &c);
	cr_assert_eq(rc, 0, "root cannot connect: %s", hbus_strerror(rc));
	rc = hbus_call(c, "{\"op\":\"purge_queue\",\"name\":\"vault.q\"}", reply, sizeof(reply));
	cr_assert_eq(rc, 0, "purge vault.q: %s", reply);
	rc = hbus_publish(c, "vault.x", "k", NULL, 0, body, (uint32_t)n);
	cr_assert_eq(rc, 1, "root's publish through vault.x reached %d queues", rc);
	rc = hbus_consume_open(c, "vault.q", HBUS_ACK_MANUAL, 0, &q);
	cr_assert_eq(rc, 0, "consume vault.q: %s", hbus_strerror(rc));
	rc = hbus_queue_consume_wait(q, &m, 5000);
	cr_assert_eq(rc, 0, "vault.q: %s", hbus_strerror(rc));
	cr_assert_eq(m.body_len, n, "vault.q gave %u bytes, %zu were published", m.body_len, n);
	cr_assert(memcmp(m.body, body, n) == 0, "vault.q gave other bytes than were published");
	cr_assert_eq(hbus_queue_ack(q, &m), 0);
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN, "vault.q held more than one message");
	hbus_consume_close(c, q);
	hbus_close(c);
	free(body);
}

void at_assert_service(const struct hb_env *e)
{
	unsigned ms = at_root_served(e);

	at_root_delivers(e, 700);
	cr_log_info("root served in at most %u ms; its message arrived intact", ms);
}

unsigned long at_rss_kib(pid_t pid)
{
	char path[64], line[256];
	unsigned long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int64_t at_stat(const struct hb_env *e, const char *k)
{
	int fd = hb_session(e, NULL);
	json_t *r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	int64_t v;

	cr_assert(hb_ok(r), "stat: %s", hb_error(r));
	cr_assert_not_null(json_object_get(r, k), "stat has no '%s'", k);
	v = hb_int(r, k);
	json_decref(r);
	close(fd);
	return v;
}
