/* hbusd_harness.c - see hbusd_harness.h. */
#include "hbusd_harness.h"
#include "hbus.h"
#include "teardown.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void hb_backoff(unsigned *spins)
{
	if (++*spins < 16)
		sched_yield();
	else
		usleep(*spins < 64 ? 1000 : 10000);
}

static void rm_rf(const char *dir)
{
	pid_t p;

	if (!dir[0])
		return;
	p = fork();
	if (p == 0) {
		execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (p > 0)
		waitpid(p, NULL, 0);
}

void hb_env_init(struct hb_env *e, const char *bus)
{
	int p[2];

	memset(e, 0, sizeof(*e));
	snprintf(e->bus, sizeof(e->bus), "%s", bus);
	snprintf(e->base, sizeof(e->base), "/tmp/hbusd-test-XXXXXX");
	snprintf(e->shm, sizeof(e->shm), "/dev/shm/hbusd-test-XXXXXX");
	cr_assert_not_null(mkdtemp(e->base));
	cr_assert_not_null(mkdtemp(e->shm));
	/* Other uids (the permission tests) must reach the run dir. */
	chmod(e->base, 0755);
	snprintf(e->run, sizeof(e->run), "%s/run", e->base);
	snprintf(e->defs, sizeof(e->defs), "%s/definitions.json", e->base);
	snprintf(e->sock, sizeof(e->sock), "%s/%s.sock", e->run, e->bus);
	snprintf(e->log, sizeof(e->log), "%s/hbusd.log", e->base);
	/* The reaper outlives a crashed test: it sees the pipe close and
	 * removes what the test made (hbusd itself dies by PDEATHSIG). */
	cr_assert_eq(pipe(p), 0);
	e->reaper = fork();
	cr_assert_geq(e->reaper, 0);
	if (e->reaper == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) > 0)
			;
		rm_rf(e->base);
		rm_rf(e->shm);
		_exit(0);
	}
	close(p[0]);
	e->reaper_fd = p[1];
}

void hb_bus_dir(const struct hb_env *e, char *out, size_t cap)
{
	snprintf(out, cap, "%s/hbus-%s", e->shm, e->bus);
}

/* Print hbusd's log: what a failed test needs to be understood. */
static void dump_log(const struct hb_env *e)
{
	char buf[4096];
	ssize_t n;
	int fd = open(e->log, O_RDONLY);

	if (fd < 0)
		return;
	fprintf(stderr, "---- %s\n", e->log);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
}

void hb_env_fini(struct hb_env *e)
{
	int st = 0;

	/* A clean exit on SIGTERM is part of every test: under ASan it is
	 * also where leaks and memory errors in hbusd surface. */
	if (e->pid)
		st = hb_stop(e);
	if (st != 0)
		dump_log(e);
	if (e->reaper > 0) {
		close(e->reaper_fd);
		waitpid(e->reaper, NULL, 0);
		e->reaper = 0;
	}
	/* Called from .fini: a cr_assert here would be ignored. */
	tu_fini_check(st == 0, "hbusd did not exit cleanly on SIGTERM (status %d)", st);
}

static pid_t spawn(struct hb_env *e, const char *const *extra)
{
	const char *bin = getenv("HBUSD");
	const char *argv[40];
	pid_t parent = getpid(), p;
	int n = 0, fd;

	cr_assert_not_null(bin, "HBUSD is not set (run through meson test)");
	argv[n++] = bin;
	argv[n++] = "--bus";
	argv[n++] = e->bus;
	argv[n++] = "--run-dir";
	argv[n++] = e->run;
	argv[n++] = "--shm-dir";
	argv[n++] = e->shm;
	argv[n++] = "--definitions";
	argv[n++] = e->defs;
	argv[n++] = "--foreground";
	while (extra && *extra && n < 38)
		argv[n++] = *extra++;
	argv[n] = NULL;
	p = fork();
	cr_assert_geq(p, 0);
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0 && !getenv("HBUSD_TEST_VERBOSE"))
			dup2(fd, STDERR_FILENO);
		if (e->before_exec)
			e->before_exec();
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return p;
}

void hb_start(struct hb_env *e, const char *const *extra)
{
	unsigned spins = 0;
	int st, fd;

	cr_assert_eq(e->pid, 0, "hbusd already running");
	e->pid = spawn(e, extra);
	for (;;) {
		cr_assert_eq(waitpid(e->pid, &st, WNOHANG), 0,
			     "hbusd exited during start-up (see %s)", e->log);
		fd = hb_connect(e);
		if (fd >= 0) {
			close(fd);
			return;
		}
		cr_assert_lt(spins, 600, "hbusd did not come up (see %s)", e->log);
		hb_backoff(&spins);
	}
}

const char *hb_write_perms(const struct hb_env *e, const char *json)
{
	static char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/permissions.json", e->base);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_geq(fputs(json, f), 0);
	cr_assert_eq(fclose(f), 0);
	return path;
}

void hb_start_perms(struct hb_env *e, const char *json, const char *const *more)
{
	const char *extra[16] = { NULL };
	unsigned n = 0;

	if (json) {
		extra[n++] = "--permissions";
		extra[n++] = hb_write_perms(e, json);
	}
	while (more && *more && n < 15)
		extra[n++] = *more++;
	hb_start(e, extra);
}

int hb_start_fail(struct hb_env *e, const char *const *extra, char *out, size_t cap)
{
	pid_t p;
	int st = 0, fd;
	ssize_t n;

	if (truncate(e->log, 0) != 0 && errno != ENOENT)
		cr_log_warn("truncate %s: %s", e->log, strerror(errno));
	p = spawn(e, extra);
	cr_assert_eq(waitpid(p, &st, 0), p);
	if (out && cap) {
		out[0] = '\0';
		fd = open(e->log, O_RDONLY);
		if (fd >= 0) {
			n = read(fd, out, cap - 1);
			out[n > 0 ? n : 0] = '\0';
			close(fd);
		}
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void hb_stop_clean(struct hb_env *e)
{
	int st = hb_stop(e);

	if (st != 0)
		dump_log(e);
	cr_assert_eq(st, 0, "hbusd did not exit cleanly on SIGTERM (status %d, log above)", st);
}

int hb_stop(struct hb_env *e)
{
	unsigned waited = 0;
	int st = 0;

	if (!e->pid)
		return -1;
	kill(e->pid, SIGTERM);
	while (waitpid(e->pid, &st, WNOHANG) == 0) {
		if (++waited > 1500) { /* 15 s: a hang, not a slow exit */
			kill(e->pid, SIGKILL);
			waitpid(e->pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	e->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int hb_connect(const struct hb_env *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (strlen(e->sock) >= sizeof(sa.sun_path)) {
		close(fd);
		return -1;
	}
	memcpy(sa.sun_path, e->sock, strlen(e->sock) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int hb_send_raw(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

json_t *hb_recv(int fd, int *rfd)
{
	int got = -1;
	json_t *j = hb_recv_fds(fd, &got, 1);

	if (rfd)
		*rfd = got;
	else if (got >= 0)
		close(got);
	return j;
}

json_t *hb_recv_fds(int fd, int *rfds, int max)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct cmsghdr *cm;
	json_error_t err;
	char *buf;
	json_t *j;
	ssize_t len, n;
	int i, got = 0;

	for (i = 0; i < max; i++)
		rfds[i] = -1;
	/* A test must fail, not hang, if hbusd never answers. */
	if (poll(&pfd, 1, 10000) != 1)
		return NULL;
	iov.iov_base = NULL;
	iov.iov_len = 0;
	len = recvmsg(fd, &mh, MSG_PEEK | MSG_TRUNC);
	if (len <= 0)
		return NULL;
	buf = malloc((size_t)len + 1);
	iov.iov_base = buf;
	iov.iov_len = (size_t)len + 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	for (cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k, nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (k = 0; k < nfd; k++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
			if (got < max)
				rfds[got++] = f;
			else
				close(f); /* never leak what we were not asked for */
		}
	}
	j = n > 0 ? json_loadb(buf, (size_t)n, 0, &err) : NULL;
	free(buf);
	return j;
}

json_t *hb_call(int fd, int *rfd, const char *fmt, ...)
{
	json_error_t err;
	json_t *req;
	va_list ap;
	char *text;
	int rc;

	va_start(ap, fmt);
	req = json_vpack_ex(&err, 0, fmt, ap);
	va_end(ap);
	cr_assert_not_null(req, "bad request format: %s", err.text);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	rc = hb_send_raw(fd, text, strlen(text));
	free(text);
	if (rc)
		return NULL;
	return hb_recv(fd, rfd);
}

int hb_session(const struct hb_env *e, uint32_t *owner)
{
	int fd = hb_connect(e);
	json_t *r;

	cr_assert_geq(fd, 0, "connect %s: %s", e->sock, strerror(errno));
	r = hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "hello", "role", "client", "version", 1,
		    "pid", (int)getpid());
	cr_assert(hb_ok(r), "hello refused: %s", hb_error(r));
	if (owner)
		*owner = (uint32_t)hb_int(r, "owner");
	json_decref(r);
	return fd;
}

bool hb_ok(const json_t *r)
{
	return r && json_is_true(json_object_get(r, "ok"));
}

int hb_code(const json_t *r)
{
	if (!r)
		return -1;
	return hb_ok(r) ? 0 : (int)json_integer_value(json_object_get(r, "code"));
}

const char *hb_error(const json_t *r)
{
	const char *s = r ? json_string_value(json_object_get(r, "error")) : "no reply";
	return s ? s : "";
}

int64_t hb_int(const json_t *r, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(r, key));
}

size_t hb_list_count(int fd, const char *what)
{
	json_t *r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", what);
	size_t n;

	cr_assert(hb_ok(r), "list %s: %s", what, hb_error(r));
	n = json_array_size(json_object_get(r, "items"));
	json_decref(r);
	return n;
}

struct hbus_queue *hb_open_queue(int fd, const char *name, const char *mode, uint32_t owner,
				 uint32_t ack_mode)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack_mode };
	struct hbus_queue *q = NULL;
	int qfd = -1, rc;
	json_t *r = hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", name, "for",
			    mode);

	cr_assert(hb_ok(r), "open_queue %s for %s: %s", name, mode, hb_error(r));
	cr_assert_geq(qfd, 0, "open_queue passed no descriptor");
	json_decref(r);
	rc = hbus_queue_open_fd(qfd, &o, &q);
	close(qfd);
	cr_assert_eq(rc, 0, "mapping queue %s: %s", name, hbus_strerror(rc));
	return q;
}

void hb_declare_queue(int fd, const char *name)
{
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", name,
		   "capacity", 64, "slot_size", 128));
}

unsigned hb_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	cr_assert_not_null(d, "cannot list %s", path);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

void hb_kill_all(pid_t *pids, unsigned *n)
{
	while (*n) {
		pid_t p = pids[--*n];
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
	}
}

const char *hb_log_text(const struct hb_env *e)
{
	static char buf[1 << 16];
	FILE *f = fopen(e->log, "r");
	size_t n;

	cr_assert_not_null(f, "cannot read %s", e->log);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

void hb_wait_log(const struct hb_env *e, const char *needle, unsigned count)
{
	unsigned spins = 0;

	for (;;) {
		const char *p = hb_log_text(e);
		unsigned n = 0;

		while ((p = strstr(p, needle)) != NULL) {
			n++;
			p++;
		}
		if (n >= count)
			return;
		cr_assert_lt(spins, 2000, "hbusd never logged '%s' %u time(s):\n%s", needle, count,
			     hb_log_text(e));
		hb_backoff(&spins);
	}
}
