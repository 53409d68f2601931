/*
 * testutil.h - helpers shared by the Criterion suites.
 *
 * Queue files are created under /dev/shm and unlinked as soon as they are
 * open, so nothing is left behind even when a test fails or crashes.
 */
#ifndef HBUS_TESTUTIL_H
#define HBUS_TESTUTIL_H

#include <criterion/criterion.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fnv1a.h"
#include "hbus.h"

/* A queue file (created, then unlinked: the fd is all that is left). */
static inline int tu_queue_fd_cfg(const struct hbus_queue_config *cfg)
{
	static int seq;
	char path[128];
	int fd = -1, rc;

	snprintf(path, sizeof(path), "/dev/shm/hbus-test-%d-%d", (int)getpid(), seq++);
	unlink(path);
	rc = hbus_queue_create(path, "test", cfg, &fd);
	cr_assert_eq(rc, 0, "hbus_queue_create: %s", hbus_strerror(rc));
	unlink(path);
	return fd;
}

static inline int tu_queue_fd(uint32_t capacity, uint32_t slot_size, uint32_t overflow,
			      uint32_t ttl_ms)
{
	struct hbus_queue_config cfg = {
		.capacity = capacity, .slot_size = slot_size, .overflow = overflow,
		.ttl_ms = ttl_ms, .numa_node = -1,
	};

	return tu_queue_fd_cfg(&cfg);
}

static inline hbus_queue *tu_open(int fd, uint32_t owner, uint32_t ack_mode, uint32_t prefetch)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack_mode, .prefetch = prefetch };
	hbus_queue *q = NULL;
	int rc = hbus_queue_open_fd(fd, &o, &q);

	cr_assert_eq(rc, 0, "hbus_queue_open_fd: %s", hbus_strerror(rc));
	return q;
}

/* A test message: id and checksum of its body travel inside the body. */
struct tu_payload {
	uint32_t producer;
	uint32_t seq;
	uint32_t sum; /* fnv1a of fill[] */
	uint8_t fill[20];
};

static inline void tu_payload_make(struct tu_payload *p, uint32_t producer, uint32_t seq)
{
	unsigned i;
	p->producer = producer;
	p->seq = seq;
	for (i = 0; i < sizeof(p->fill); i++)
		p->fill[i] = (uint8_t)(producer * 31 + seq * 7 + i);
	p->sum = fnv1a32(p->fill, sizeof(p->fill));
}

static inline int tu_payload_ok(const struct hbus_msg *m, struct tu_payload *out)
{
	if (m->body_len != sizeof(*out))
		return 0;
	memcpy(out, m->body, sizeof(*out));
	return out->sum == fnv1a32(out->fill, sizeof(out->fill));
}

static inline int tu_enqueue_id(hbus_queue *q, uint32_t producer, uint32_t seq)
{
	struct tu_payload p;
	struct hbus_out o = { .body = &p, .body_len = sizeof(p) };

	tu_payload_make(&p, producer, seq);
	return hbus_queue_enqueue(q, &o);
}

/* fork() whose child dies with the test process, so a failing or crashing
 * test never leaves workers behind holding the ring or the test's pipes. */
static inline pid_t tu_fork(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
	}
	return pid;
}

/* tu_fork() with a pipe from the child to the parent: 0 in the child, with
 * *fd the write end; the child's pid in the parent, with *fd the read end
 * (the other end closed on each side). */
static inline pid_t tu_fork_reporting(int *fd)
{
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = tu_fork();
	cr_assert_geq(pid, 0);
	close(p[pid == 0 ? 0 : 1]);
	*fd = p[pid == 0 ? 1 : 0];
	return pid;
}

/* Run child(uid, out, reqs) in a child process (it must _exit), collect
 * what it writes to out into buf (NUL-terminated, at most cap - 1 bytes)
 * and assert that it exited with status 0. */
static inline void tu_output_as(void (*child)(uid_t uid, int out, const char *const *reqs),
				uid_t uid, const char *const *reqs, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;
	int fd, st;
	pid_t pid = tu_fork_reporting(&fd);

	if (pid == 0)
		child(uid, fd, reqs);
	while (got < cap - 1 && (n = read(fd, buf + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child as uid %u failed (%d): %s",
		  (unsigned)uid, WEXITSTATUS(st), buf);
}

/* The seed of a randomised test: $HBUS_TEST_SEED, else from the clock.  It
 * is printed before anything else happens, so that a failure, a crash or
 * a timeout can be repeated (HBUS_TEST_SEED=N meson test NAME). */
static inline unsigned tu_seed(const char *test)
{
	const char *e = getenv("HBUS_TEST_SEED");
	struct timespec ts;
	unsigned s;

	clock_gettime(CLOCK_REALTIME, &ts);
	s = e && *e ? (unsigned)strtoul(e, NULL, 0) : (unsigned)(ts.tv_sec ^ ts.tv_nsec);
	fprintf(stderr, "%s: seed %u (HBUS_TEST_SEED=%u repeats it)\n", test, s, s);
	fflush(stderr);
	return s;
}

/* In a forked child: become uid (and its gid, no supplementary groups),
 * or exit 20. */
static inline void tu_become(uid_t uid)
{
	if (setgroups(0, NULL) || setgid((gid_t)uid) || setuid(uid))
		_exit(20);
}

static inline uint64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Back off in a polling loop: there are only two cores. */
static inline void tu_backoff(unsigned *spins)
{
	if (++*spins < 64)
		__builtin_ia32_pause();
	else if (*spins < 256)
		sched_yield();
	else
		usleep(50);
}

#endif
