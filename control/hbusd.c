/*
 * hbusd.c - the control-plane daemon: arguments, start-up (lock, shared
 * memory, adoption of what a previous hbusd left) and the event loop.
 * Sessions of a previous hbusd whose processes still run: orphans.c.
 *
 * docs/OPERATIONS.md is the user's side of this file.
 */
#include "server.h"
#include "defs.h"
#include "dirs.h"
#include "fault_guard.h"
#include "log.h"
#include "route_layout.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hbusd [--bus NAME] [--run-dir DIR] [--shm-dir DIR] [--definitions FILE]\n"
		"             [--permissions FILE] [--foreground] [limits]\n"
		"  --bus NAME          bus to serve (default: $HBUS_BUS, else 'default')\n"
		"  --run-dir DIR       socket, pid and log files (default: $HBUS_RUN_DIR, else /run/hbus)\n"
		"  --shm-dir DIR       shared memory base (default: a hugetlbfs mount, else /dev/shm)\n"
		"  --definitions FILE  durable topology, restored at start, rewritten atomically\n"
		"  --permissions FILE  users' and groups' configure/write/read patterns (JSON)\n"
		"  --foreground        do not detach; log to stderr\n"
		"limits (docs/LIMITS.md; a request past one is refused naming it):\n"
		"  --max-exchanges N (1024)  --max-queues N (4096)  --max-bindings N (65536)\n"
		"  --max-consumers N per queue (256)  --max-udpmaps N (4096)\n"
		"  --max-sessions N (1024)  --max-sessions-per-user N (256)  --hello-timeout S (10)\n"
		"  --max-request BYTES (65536)  --max-definitions BYTES (67108864)\n"
		"  --max-queue-bytes BYTES shared memory of one queue (0: no limit)\n"
		"  --routes-size BYTES routing table capacity per generation (4194304)\n"
		"  --reader-timeout MS longest a routing-table reader may hold a publish back (1000)\n");
}

static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (!*s || *s == '-' || *end || errno || v == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int valid_bus_name(const char *b)
{
	size_t i, n = strlen(b);

	if (n == 0 || n > 64 || b[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!(b[i] == '-' || b[i] == '_' || b[i] == '.' || (b[i] >= '0' && b[i] <= '9') ||
		      (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z')))
			return 0;
	return 1;
}

static int parse_args(int argc, char **argv, struct hbusd_opts *o)
{
	static const struct option lo[] = {
		{ "bus", required_argument, 0, 'b' }, { "run-dir", required_argument, 0, 'r' },
		{ "shm-dir", required_argument, 0, 's' }, { "definitions", required_argument, 0, 'd' },
		{ "permissions", required_argument, 0, 'p' }, { "foreground", no_argument, 0, 'f' },
		{ "max-exchanges", required_argument, 0, 1 }, { "max-queues", required_argument, 0, 2 },
		{ "max-bindings", required_argument, 0, 3 }, { "max-consumers", required_argument, 0, 4 },
		{ "max-sessions", required_argument, 0, 5 }, { "routes-size", required_argument, 0, 6 },
		{ "max-request", required_argument, 0, 7 }, { "max-definitions", required_argument, 0, 8 },
		{ "max-queue-bytes", required_argument, 0, 9 }, { "max-udpmaps", required_argument, 0, 10 },
		{ "max-sessions-per-user", required_argument, 0, 11 },
		{ "hello-timeout", required_argument, 0, 12 },
		{ "reader-timeout", required_argument, 0, 13 },
		{ "help", no_argument, 0, 'h' }, { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 },
	};
	const char *run = getenv("HBUS_RUN_DIR");
	uint64_t v;
	int c, bad = 0;

	o->bus = getenv("HBUS_BUS") && *getenv("HBUS_BUS") ? getenv("HBUS_BUS") : "default";
	o->max_sessions = 1024;
	o->max_sessions_per_user = 256;
	o->max_request = HBUSD_REQUEST_MAX;
	o->hello_timeout_s = 10;
	o->lim = (struct model_limits){ .max_exchanges = 1024, .max_queues = 4096,
					.max_bindings = 65536, .max_consumers_per_queue = 256,
					.max_udpmaps = 4096, .routes_table_cap = 4u << 20,
					.max_definitions = 64u << 20,
					.reader_timeout_ms = HBUSD_READER_TIMEOUT_MS };
	snprintf(o->run_dir, sizeof(o->run_dir), "%s", run && *run ? run : "/run/hbus");
	while ((c = getopt_long(argc, argv, "b:r:s:d:p:fhV", lo, NULL)) != -1) {
		switch (c) {
		case 'b': o->bus = optarg; break;
		case 'r': snprintf(o->run_dir, sizeof(o->run_dir), "%s", optarg); break;
		case 's': o->shm_dir = optarg; break;
		case 'd': o->defs_path = optarg; break;
		case 'p': o->perms_path = optarg; break;
		case 'f': o->foreground = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("hbusd %s\n", HBUS_VERSION_STRING); exit(0);
		case '?': return -1;
		default:
			/* Sizes in bytes that are buffers hbusd allocates stop at
			 * 1 GiB; counts at 2^32 - 1; a queue's bytes at 2^62. */
			if (parse_num(optarg, c == 9 ? 1ull << 62 : c == 7 || c == 8 ? 1u << 30
								      : UINT32_MAX, &v)) {
				fprintf(stderr, "hbusd: --%s needs a positive number%s, not '%s'\n",
					lo[c + 5].name, c == 7 || c == 8 ? " up to 1073741824" : "",
					optarg);
				bad = 1;
				break;
			}
			if (c == 1) o->lim.max_exchanges = (uint32_t)v;
			if (c == 2) o->lim.max_queues = (uint32_t)v;
			if (c == 3) o->lim.max_bindings = (uint32_t)v;
			if (c == 4) o->lim.max_consumers_per_queue = (uint32_t)v;
			if (c == 5) o->max_sessions = (uint32_t)v;
			if (c == 6) o->lim.routes_table_cap = (size_t)v;
			if (c == 7) o->max_request = (uint32_t)v;
			if (c == 8) o->lim.max_definitions = (size_t)v;
			if (c == 9) o->lim.max_queue_bytes = v;
			if (c == 10) o->lim.max_udpmaps = (uint32_t)v;
			if (c == 11) o->max_sessions_per_user = (uint32_t)v;
			if (c == 12) o->hello_timeout_s = (uint32_t)v;
			if (c == 13) o->lim.reader_timeout_ms = (uint32_t)v;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hbusd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!valid_bus_name(o->bus)) {
		fprintf(stderr, "hbusd: bus name '%s' must be 1-64 characters of A-Z a-z 0-9 . _ - "
			"(not starting with '.')\n", o->bus);
		return -1;
	}
	return bad ? -1 : 0;
}

/* ------------------------------------------------------------------ start-up */

static int lock_pid_file(struct hbusd *d)
{
	char buf[32] = "";
	ssize_t n;
	int locked;

	snprintf(d->pid_path, sizeof(d->pid_path), "%s/%s.pid", d->o.run_dir, d->o.bus);
	d->pidfile_fd = dirs_open_file(d->run_fd, strrchr(d->pid_path, '/') + 1, O_RDWR | O_CREAT,
				       0644);
	if (d->pidfile_fd < 0) {
		HBUS_ERR("cannot open %s: %s", d->pid_path,
			 errno == ELOOP ? "it is a symbolic link" :
			 errno == EPERM ? "it belongs to another user" : strerror(errno));
		return -1;
	}
	locked = flock(d->pidfile_fd, LOCK_EX | LOCK_NB) == 0;
	n = pread(d->pidfile_fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!locked) {
		HBUS_ERR("hbusd is already running for bus '%s' (pid %s, lock %s)", d->o.bus,
			 buf[0] ? buf : "?", d->pid_path);
		return -1;
	}
	/* The lock died with its holder: the pid in the file is history. */
	if (buf[0])
		HBUS_INFO("%s names pid %s, which no longer holds its lock (an hbusd that did not "
			  "stop cleanly): replaced", d->pid_path, buf);
	return 0;
}

static void write_pid(struct hbusd *d)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (ftruncate(d->pidfile_fd, 0) != 0 || pwrite(d->pidfile_fd, buf, (size_t)n, 0) != n)
		HBUS_WARN("cannot write %s: %s", d->pid_path, strerror(errno));
}

/*
 * The routes file.  A previous hbusd's file is never reused: its readers'
 * slots were in blocks this hbusd cannot see, so it is retired instead (its
 * last table stays valid for the processes still routing by it, who take
 * the new file with their next session) and unlinked; the new file
 * continues its generation numbers.  Clients get a read-only descriptor.
 */
static int open_routes(struct hbusd *d)
{
	struct hbus_routes *r = NULL;
	struct stat a, b;
	uint64_t gen = 0;
	int fd, rc;

	fd = openat(d->bus_fd, "routes", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		rc = hbus_routes_open_fd(fd, &r);
		if (rc == 0) {
			gen = hbus_routes_generation(r);
			hbus_routes_retire(r);
			hbus_routes_close(r);
			HBUS_INFO("routes file of the previous hbusd retired at generation %llu: "
				  "processes routing by it move to the new one with their next "
				  "session", (unsigned long long)gen);
		} else {
			HBUS_WARN("routes file %s/routes unusable (%s): replaced", d->bus_dir,
				  hbus_strerror(rc));
		}
		close(fd);
	}
	if (unlinkat(d->bus_fd, "routes", 0) != 0 && errno != ENOENT) {
		HBUS_ERR("cannot remove %s/routes: %s", d->bus_dir, strerror(errno));
		return -1;
	}
	rc = hbus_routes_create_at(d->bus_fd, "routes", d->o.lim.routes_table_cap, &fd, &r);
	if (rc) {
		HBUS_ERR("cannot create routes file %s/routes: %s", d->bus_dir, hbus_strerror(rc));
		return -1;
	}
	hbus_routes_continue(r, gen);
	d->model.routes = r;
	/* What clients get: the same file, read-only (they cannot map it
	 * writable, nor truncate it). */
	d->routes_fd = openat(d->bus_fd, "routes", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	rc = d->routes_fd >= 0 && fstat(fd, &a) == 0 && fstat(d->routes_fd, &b) == 0 &&
	     a.st_ino == b.st_ino && a.st_dev == b.st_dev ? 0 : -1;
	close(fd);
	if (rc)
		HBUS_ERR("cannot reopen %s/routes read-only: %s", d->bus_dir, strerror(errno));
	return rc;
}

/* Queue files truncated by a client: seen at once, their sizes restored
 * (queue_fault.c).  Without the watch, the SIGBUS guard still catches
 * what hbusd touches. */
static void watch_queues(struct hbusd *d)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &d->ev_watch };
	int fd = mq_watch_open(&d->model);

	if (fd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		HBUS_WARN("cannot watch %s for truncated queue files (%s): they are found when "
			  "hbusd next touches them", d->bus_dir, strerror(fd < 0 ? -fd : errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	d->ev_watch.kind = EV_WATCH;
	d->watch_fd = fd;
}

static bool owner_held_cb(void *ctx, uint32_t owner)
{
	return owner_held(ctx, owner);
}

static int open_bus(struct hbusd *d)
{
	struct herr e;
	int other = 0, rc;

	if (dirs_open_bus(d->o.shm_dir, d->o.bus, d->bus_dir, sizeof(d->bus_dir), &d->bus_fd, &e)) {
		HBUS_ERR("%s", e.msg);
		return -1;
	}
	rc = sb_open(d->bus_fd, d->o.bus, &d->sb, &other);
	if (rc == -EWOULDBLOCK) {
		HBUS_ERR("another hbusd (pid %d) serves bus '%s' from %s", other, d->o.bus, d->bus_dir);
		return -1;
	}
	if (rc) {
		HBUS_ERR("superblock %s/superblock: %s%s", d->bus_dir, hbus_strerror(rc),
			 rc == -EXDEV ? " (it belongs to another bus)" : "");
		return -1;
	}
	if (d->sb.created || !d->sb.prev_pid)
		HBUS_INFO("%s superblock: epoch %llu%s", d->sb.created ? "created" : "adopted",
			  (unsigned long long)atomic_load(&d->sb.sb->epoch),
			  d->sb.was_blank ? " (over a file never initialised: a first start killed "
					    "while making it)" : "");
	else
		HBUS_INFO("adopted superblock: epoch %llu (the previous hbusd, pid %d, did not stop "
			  "cleanly)", (unsigned long long)atomic_load(&d->sb.sb->epoch),
			  (int)d->sb.prev_pid);
	model_init(&d->model, d->bus_dir, d->bus_fd, &d->o.lim);
	watch_queues(d);
	d->model.sb = &d->sb;
	d->model.defs_path = d->o.defs_path;
	d->model.self_owner = sb_alloc_owner(&d->sb, NULL, NULL);
	atomic_store(&d->sb.sb->hbusd_owner, d->model.self_owner);
	if (open_routes(d))
		return -1;
	if (defs_restore(&d->model, d->o.defs_path, &e)) {
		HBUS_ERR("%s", e.msg);
		return -1;
	}
	adopt_sessions(d);
	/* Grants of owners the superblock no longer names: nothing of them
	 * runs (docs/CONTROL.md, "Exclusive handles"). */
	grants_sweep(&d->model, owner_held_cb, d);
	sb_sweep(d);
	if (model_commit(&d->model, &e)) {
		HBUS_ERR("cannot publish the restored topology: %s", e.msg);
		return -1;
	}
	return 0;
}

/* Every queue and every session holds a descriptor: the usual soft limit
 * of 1024 open files would stop hbusd long before --max-queues.  Raise it
 * as far as needed (the hard limit allows), and say so when that is short. */
static void raise_fd_limit(const struct hbusd_opts *o)
{
	/* Two per queue: the file, and hbusd's own handle on the ring. */
	uint64_t need = 2ull * o->lim.max_queues + o->max_sessions + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need)
		HBUS_WARN("open files limit is %llu, --max-queues %u and --max-sessions %u need %llu: "
			  "raise it (ulimit -n, or LimitNOFILE= under systemd)",
			  (unsigned long long)rl.rlim_cur, o->lim.max_queues, o->max_sessions,
			  (unsigned long long)need);
}

static int setup_events(struct hbusd *d)
{
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t set;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->epfd < 0 || d->timerfd < 0 || d->sigfd < 0)
		return -errno;
	d->ev_signal.kind = EV_SIGNAL;
	d->ev_timer.kind = EV_TIMER;
	ev.data.ptr = &d->ev_signal;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->sigfd, &ev) != 0)
		return -errno;
	ev.data.ptr = &d->ev_timer;
	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->timerfd, &ev) != 0 ? -errno : 0;
}

/* Detach: the parent returns only once the child serves the socket (or
 * failed, having said why on stderr), so `hbusd && hbus ...` has no race. */
static int daemonize(struct hbusd *d, int *ready_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	*ready_fd = p[1];
	(void)d;
	return 0;
}

static void ready(struct hbusd *d, int ready_fd)
{
	char logpath[320];
	int fd;

	if (ready_fd < 0)
		return;
	snprintf(logpath, sizeof(logpath), "%s/%s.log", d->o.run_dir, d->o.bus);
	fd = dirs_open_file(d->run_fd, strrchr(logpath, '/') + 1, O_WRONLY | O_CREAT | O_APPEND,
			    0640);
	if (fd < 0)
		HBUS_WARN("cannot open %s: %s", logpath,
			  errno == ELOOP ? "it is a symbolic link" :
			  errno == EPERM ? "it belongs to another user" : strerror(errno));
	else
		HBUS_INFO("detached; logging to %s", logpath);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		close(fd);
	}
	if (write(ready_fd, "1", 1) != 1)
		HBUS_WARN("cannot signal readiness to the parent");
	close(ready_fd);
}

/* ------------------------------------------------------------------ the loop */

static void on_timer(struct hbusd *d)
{
	uint64_t ticks;

	if (read(d->timerfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		HBUS_WARN("timerfd: %s", strerror(errno));
	model_publish_retry(&d->model);
	server_check_readers(d);
	if (d->model.pending.n)
		model_retry_pending(&d->model);
	poll_orphans(d);
	server_expire_hello(d);
}

static void on_signal(struct hbusd *d)
{
	struct signalfd_siginfo si;
	struct herr e;

	while (read(d->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			if (!d->o.perms_path)
				HBUS_INFO("SIGHUP: no permissions file to reload");
			else if (perms_load(&d->perms, d->o.perms_path, &e))
				HBUS_ERR("SIGHUP: permissions not reloaded, the old ones stay: %s",
					 e.msg);
			continue;
		}
		HBUS_INFO("signal %u: stopping (shared memory stays for the next hbusd)",
			  si.ssi_signo);
		d->stop = true;
	}
}

static void run(struct hbusd *d)
{
	struct epoll_event evs[64];
	uint64_t seen = d->model.published_version;
	int i, n;

	while (!d->stop) {
		n = epoll_wait(d->epfd, evs, 64, -1);
		if (n < 0 && errno != EINTR) {
			HBUS_ERR("epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			struct ev_src *src = evs[i].data.ptr;

			switch (src->kind) {
			case EV_LISTEN:  server_accept(d); break;
			case EV_SESSION: server_session_event(d, (struct session *)src, evs[i].events); break;
			case EV_SIGNAL:  on_signal(d); break;
			case EV_TIMER:   on_timer(d); break;
			case EV_ORPHAN:  orphan_dead(d, (struct orphan *)src); break;
			case EV_WATCH:   mq_watch_event(&d->model, d->watch_fd); break;
			default:         break; /* closed earlier in this batch */
			}
		}
		/* A newly published table releases replies held in any session. */
		if (d->model.published_version != seen) {
			seen = d->model.published_version;
			server_flush_all(d);
		}
		server_reap(d);
		server_update_timer(d);
	}
}

int main(int argc, char **argv)
{
	static struct hbusd d;
	struct herr e;
	int ready_fd = -1, rc = 1;

	d.lfd = d.sigfd = d.timerfd = d.epfd = d.pidfile_fd = d.routes_fd = d.spare_fd = -1;
	d.run_fd = d.bus_fd = d.watch_fd = -1;
	if (parse_args(argc, argv, &d.o)) {
		usage(stderr);
		return 2;
	}
	perms_init(&d.perms);
	if (d.o.perms_path && perms_load(&d.perms, d.o.perms_path, &e)) {
		HBUS_ERR("%s", e.msg);
		return 1;
	}
	if (!d.o.foreground && daemonize(&d, &ready_fd))
		return 1;
	/* Before any queue is mapped: a client may truncate one under us. */
	rc = fault_guard_install();
	if (rc)
		HBUS_WARN("cannot install the SIGBUS handler (%s): a truncated queue file will "
			  "kill hbusd", strerror(-rc));
	rc = 1;
	raise_fd_limit(&d.o);
	if (dirs_open_run(d.o.run_dir, perms_grants_others(&d.perms), &d.run_fd, &e)) {
		HBUS_ERR("run dir: %s", e.msg);
		goto out;
	}
	if (lock_pid_file(&d) || setup_events(&d) != 0 || open_bus(&d))
		goto out;
	snprintf(d.sock_path, sizeof(d.sock_path), "%s/%s.sock", d.o.run_dir, d.o.bus);
	rc = server_listen(&d);
	if (rc) {
		HBUS_ERR("cannot listen on %s: %s", d.sock_path, hbus_strerror(rc));
		rc = 1;
		goto out;
	}
	write_pid(&d);
	HBUS_INFO("hbusd %s serving bus '%s' on %s: epoch %llu, owner %u, %u queue(s), "
		  "generation %llu", HBUS_VERSION_STRING, d.o.bus, d.sock_path,
		  (unsigned long long)atomic_load(&d.sb.sb->epoch), d.model.self_owner,
		  d.model.queues.n, (unsigned long long)d.model.generation);
	ready(&d, ready_fd);
	run(&d);
	rc = 0;
	unlinkat(d.run_fd, strrchr(d.sock_path, '/') + 1, 0);
out:
	server_close_all(&d);
	server_reap(&d);
	while (d.orphans)
		orphan_forget(&d, d.orphans);
	server_reap(&d);
	model_fini(&d.model);
	if (d.model.routes)
		hbus_routes_close(d.model.routes);
	if (d.routes_fd >= 0)
		close(d.routes_fd);
	if (d.sb.sb)
		sb_close(&d.sb);
	perms_free(&d.perms);
	if (d.pidfile_fd >= 0) {
		if (rc == 0)
			unlinkat(d.run_fd, strrchr(d.pid_path, '/') + 1, 0); /* still under our lock */
		close(d.pidfile_fd);
	}
	if (d.watch_fd >= 0)
		close(d.watch_fd);
	if (d.bus_fd >= 0)
		close(d.bus_fd);
	if (d.run_fd >= 0)
		close(d.run_fd);
	if (rc == 0)
		HBUS_INFO("stopped");
	return rc;
}
