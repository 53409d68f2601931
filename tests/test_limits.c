/*
 * test_limits.c - every limit of a bus (docs/LIMITS.md), against the real
 * hbusd: reaching one is a refusal that names the limit and the option that
 * raises it, refuses nothing below it, and leaves what exists working.
 * Shared memory running out at declare time (a small tmpfs, a hugetlbfs
 * mount with a tiny pool, mounted by the test) is a 406 naming the
 * directory, never a SIGBUS, and the queues that fit keep carrying
 * messages.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "teardown.h"
#include "testutil.h"

static struct hb_env env;

/* A filesystem the test mounts.  A reaper process unmounts it when the
 * test process goes away however it goes (the pipe closes), and fini does
 * it at once. */
static struct mnt {
	char dir[64];
	pid_t reaper;
	int fd;
	long hugepages_before; /* nr_hugepages to put back, -1: untouched */
} mnt = { .reaper = -1, .fd = -1, .hugepages_before = -1 };

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fprintf(f, "%ld\n", v);
		fclose(f);
	}
}

#define NR_HUGEPAGES "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
#define FREE_HUGEPAGES "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

static void mnt_release(const char *dir, long hugepages_before)
{
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	if (hugepages_before >= 0)
		write_long(NR_HUGEPAGES, hugepages_before);
}

static void mount_fs(const char *type, const char *opts)
{
	int p[2];

	snprintf(mnt.dir, sizeof(mnt.dir), "/tmp/hbus-mnt-XXXXXX");
	cr_assert_not_null(mkdtemp(mnt.dir));
	cr_assert_eq(pipe(p), 0);
	mnt.reaper = fork();
	cr_assert_geq(mnt.reaper, 0);
	if (mnt.reaper == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) > 0)
			;
		mnt_release(mnt.dir, mnt.hugepages_before);
		_exit(0);
	}
	close(p[0]);
	mnt.fd = p[1];
	cr_assert_eq(mount(type, mnt.dir, type, MS_NOSUID | MS_NODEV, opts), 0, "mount -t %s -o %s %s: %s",
		     type, opts, mnt.dir, strerror(errno));
	/* hbusd uses it as its shm dir; the harness's own stays unused. */
	snprintf(env.shm, sizeof(env.shm), "%s", mnt.dir);
}

static void setup(void)
{
	hb_env_init(&env, "lim");
}

static void teardown(void)
{
	int st = env.pid ? hb_stop(&env) : 0;

	if (mnt.reaper > 0) {
		mnt_release(mnt.dir, mnt.hugepages_before);
		close(mnt.fd);
		waitpid(mnt.reaper, NULL, 0);
		mnt.reaper = -1;
	}
	hb_env_fini(&env);
	tu_fini_check(st == 0, "hbusd did not exit cleanly on SIGTERM (status %d)", st);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 120);

static void expect_limit(json_t *r, const char *what, const char *option)
{
	cr_assert_eq(hb_code(r), 406, "expected 406 for %s, got %d: %s", what, hb_code(r),
		     hb_error(r));
	cr_assert(strstr(hb_error(r), what), "'%s' does not name '%s'", hb_error(r), what);
	cr_assert(strstr(hb_error(r), option), "'%s' does not name '%s'", hb_error(r), option);
	json_decref(r);
}

Test(limits, counts_are_refused_naming_the_limit_and_its_option)
{
	static const char *const lim[] = { "--max-queues", "3", "--max-exchanges", "2",
					   "--max-bindings", "2", "--max-consumers", "2",
					   "--max-udpmaps", "1", "--max-sessions", "4", NULL };
	int fd, extra[4], i;
	json_t *r;

	hb_start(&env, lim);
	fd = hb_session(&env, NULL);
	for (i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "q%d", i);
		hb_declare_queue(fd, name);
	}
	expect_limit(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "q3"),
		     "limit of 3 queues reached", "(hbusd --max-queues)");
	/* A server-named queue is a queue too; so is one that comes in an import. */
	expect_limit(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", ""),
		     "limit of 3 queues", "--max-queues");
	expect_limit(hb_call(fd, NULL, "{s:s, s:{s:i, s:[{s:s}]}}", "op", "import", "definitions",
			     "hbus_definitions", 1, "queues", "name", "q9"),
		     "definitions queues[0]: limit of 3 queues", "--max-queues");
	/* The limit is on what exists: delete one, and there is room again. */
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "q2"));
	hb_declare_queue(fd, "q2");

	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "x0"));
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "x1"));
	expect_limit(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "x2"),
		     "limit of 2 exchanges reached", "(hbusd --max-exchanges)");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "x0", "destination", "q0"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "x0", "destination", "q1"));
	expect_limit(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "x1",
			     "destination", "q1"),
		     "limit of 2 bindings reached", "(hbusd --max-bindings)");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "q0"));
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "q0"));
	expect_limit(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "q0"),
		     "limit of 2 consumers on queue 'q0' reached", "(hbusd --max-consumers)");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "q1")); /* per queue */
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s, s:s}", "op", "map_udp", "addr", "239.1.1.1",
		   "port", 5000, "exchange", "x0", "key", "k"));
	expect_limit(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s, s:s}", "op", "map_udp", "addr",
			     "239.1.1.2", "port", 5000, "exchange", "x0", "key", "k"),
		     "limit of 1 UDP maps reached", "(hbusd --max-udpmaps)");

	/* Sessions: this one and three more; the fifth gets the reason. */
	for (i = 0; i < 3; i++)
		extra[i] = hb_session(&env, NULL);
	extra[3] = hb_connect(&env);
	cr_assert_geq(extra[3], 0);
	r = hb_recv(extra[3], NULL);
	expect_limit(r, "too many sessions: limit of 4 reached", "(hbusd --max-sessions)");
	for (i = 0; i < 4; i++)
		close(extra[i]);
	cr_assert_eq(hb_list_count(fd, "queues"), 3, "a refusal changed the bus");
	close(fd);
}

Test(limits, message_size_is_the_slot_size)
{
	static const char *const lim[] = { "--max-queue-bytes", "65536", NULL };
	uint8_t body[200] = { 0 };
	struct hbus_out m = { .body = body };
	struct hbus_msg got;
	hbus_queue *p, *c;
	uint32_t owner;
	json_t *r;
	int fd;

	hb_start(&env, lim);
	fd = hb_session(&env, &owner);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", "small",
		   "capacity", 4, "slot_size", 64));
	p = hb_open_queue(fd, "small", "write", owner, HBUS_ACK_AUTO);
	c = hb_open_queue(fd, "small", "read", owner, HBUS_ACK_AUTO);
	m.body_len = 64; /* no metadata: the whole slot is body */
	cr_assert_eq(hbus_queue_enqueue(p, &m), 0);
	m.body_len = 65;
	cr_assert_eq(hbus_queue_enqueue(p, &m), -EMSGSIZE, "a message larger than a slot was taken");
	cr_assert_eq(hbus_queue_consume(c, &got), 0);
	cr_assert_eq(got.body_len, 64);
	cr_assert_eq(hbus_queue_ack(c, &got), 0);
	cr_assert_eq(hbus_queue_consume(c, &got), -EAGAIN, "the oversize message was cut, not refused");
	hbus_queue_close(p);
	hbus_queue_close(c);
	/* Counted, where hbus stat shows it. */
	r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	cr_assert(hb_ok(r));
	cr_assert_eq(hb_int(json_array_get(json_object_get(r, "queues"), 0), "dropped_oversize"), 1);
	json_decref(r);

	r = hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "huge", "slot_size",
		    (1 << 20) + 1);
	expect_limit(r, "slot_size 1048577 must be from 8 to 1048576 bytes", "largest message");
	/* One queue's shared memory: 1024 slots of 1 KiB is past 64 KiB. */
	r = hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", "wide",
		    "capacity", 1024, "slot_size", 1024);
	expect_limit(r, "over the limit of 65536 bytes per queue", "(hbusd --max-queue-bytes)");
	cr_assert_eq(hb_list_count(fd, "queues"), 1);
	close(fd);
}

/* A request of exactly n bytes: a list request padded with spaces. */
static char *padded(size_t n)
{
	static const char req[] = "{\"op\":\"list\",\"what\":\"queues\"}";
	char *b = malloc(n);

	cr_assert_not_null(b);
	memset(b, ' ', n);
	memcpy(b, req, sizeof(req) - 1);
	return b;
}

/* An import of n queues, as text. */
static char *import_of(unsigned n)
{
	json_t *qs = json_array(), *req;
	char name[32], *text;
	unsigned i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "imported.queue.%05u", i);
		json_array_append_new(qs, json_pack("{s:s, s:i, s:i}", "name", name, "capacity", 2,
						    "slot_size", 8));
	}
	req = json_pack("{s:s, s:{s:i, s:o}}", "op", "import", "definitions", "hbus_definitions", 1,
			"queues", qs);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return text;
}

Test(limits, request_size_is_refused_naming_its_option)
{
	static const char *const bigger[] = { "--max-request", "131072", "--max-queues", "5000",
					      NULL };
	char *b, *imp;
	int fd;

	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	b = padded(65536);
	cr_assert_eq(hb_send_raw(fd, b, 65536), 0);
	OK(hb_recv(fd, NULL)); /* exactly the limit is fine */
	cr_assert_eq(hb_send_raw(fd, b, 65536), 0);
	free(b);
	OK(hb_recv(fd, NULL));
	b = padded(65537);
	cr_assert_eq(hb_send_raw(fd, b, 65537), 0);
	free(b);
	EXPECT(hb_recv(fd, NULL), 502,
	       "request of 65537 bytes is larger than the limit of 65536 bytes (hbusd --max-request)");
	/* Definitions come in one request: an import past it says so too. */
	imp = import_of(2000);
	cr_assert_gt(strlen(imp), 65536);
	cr_assert_lt(strlen(imp), 131072);
	cr_assert_eq(hb_send_raw(fd, imp, strlen(imp)), 0);
	EXPECT(hb_recv(fd, NULL), 502, "(hbusd --max-request)");
	cr_assert_eq(hb_list_count(fd, "queues"), 0);
	close(fd);

	/* Raised, the same import goes through. */
	hb_stop_clean(&env);
	hb_start(&env, bigger);
	fd = hb_session(&env, NULL);
	cr_assert_eq(hb_send_raw(fd, imp, strlen(imp)), 0);
	OK(hb_recv(fd, NULL));
	cr_assert_eq(hb_list_count(fd, "queues"), 2000);
	free(imp);
	close(fd);
}

Test(limits, definitions_size_is_kept_when_written_and_checked_when_read)
{
	static const char *const small[] = { "--max-definitions", "2048", NULL };
	static const char *const smaller[] = { "--max-definitions", "512", NULL };
	char name[32], out[4096];
	json_error_t jerr;
	struct stat st;
	json_t *r, *defs;
	int fd, i, refused = -1;

	hb_start(&env, small);
	fd = hb_session(&env, NULL);
	for (i = 0; i < 100 && refused < 0; i++) {
		snprintf(name, sizeof(name), "durable.%03d", i);
		r = hb_call(fd, NULL, "{s:s, s:s, s:b, s:i, s:i}", "op", "declare_queue", "name", name,
			    "durable", 1, "capacity", 2, "slot_size", 8);
		if (!hb_ok(r)) {
			refused = i;
			expect_limit(r, "over the limit of 2048 bytes", "(hbusd --max-definitions)");
		} else {
			json_decref(r);
		}
	}
	cr_assert_gt(refused, 1, "2 KiB of definitions never filled up");
	cr_assert_eq(hb_list_count(fd, "queues"), (size_t)refused, "the refused queue stayed");
	hb_declare_queue(fd, "not.durable"); /* not in the file: still fine */
	close(fd);
	/* What was written is whole and within the limit. */
	cr_assert_eq(stat(env.defs, &st), 0);
	cr_assert_leq(st.st_size, 2048);
	defs = json_load_file(env.defs, 0, &jerr);
	cr_assert_not_null(defs, "%s", jerr.text);
	cr_assert_eq(json_array_size(json_object_get(defs, "queues")), (size_t)refused);
	json_decref(defs);

	/* Read back at start under a smaller limit: refused, naming it. */
	hb_stop_clean(&env);
	cr_assert_eq(hb_start_fail(&env, smaller, out, sizeof(out)), 1);
	cr_assert(strstr(out, "over the limit of 512 bytes (hbusd --max-definitions)") &&
		  strstr(out, env.defs), "%s", out);
	hb_start(&env, small);
}

static unsigned hbusd_fds(void)
{
	return hb_fd_count(env.pid);
}

static void read_log(char *buf, size_t cap)
{
	FILE *f = fopen(env.log, "r");
	size_t n;

	cr_assert_not_null(f);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

Test(limits, open_files_limit_is_raised_or_named)
{
	struct rlimit old, low;
	char name[64], want[200], log[16384], arg[32];
	const char *extra[3] = { "--max-queues", arg, NULL };
	int fd, i, refused = -1;
	json_t *r;

	/* A low soft limit (the usual 1024, here 64): hbusd raises its own
	 * as far as its limits need. */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 64;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	snprintf(arg, sizeof(arg), "200");
	hb_start(&env, extra);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	fd = hb_session(&env, NULL);
	for (i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "q%03d", i);
		hb_declare_queue(fd, name);
	}
	close(fd);
	hb_stop_clean(&env);

	/* Limits past the hard limit: said at start. */
	if (old.rlim_max != RLIM_INFINITY) {
		snprintf(arg, sizeof(arg), "%llu", (unsigned long long)old.rlim_max);
		cr_assert_eq(truncate(env.log, 0), 0);
		hb_start(&env, extra);
		read_log(log, sizeof(log));
		snprintf(want, sizeof(want), "open files limit is %llu, --max-queues %s and "
			 "--max-sessions 1024 need %llu: raise it",
			 (unsigned long long)old.rlim_max, arg,
			 2ull * old.rlim_max + 1024 + 64);
		cr_assert(strstr(log, want), "'%s' not in:\n%s", want, log);
		hb_stop_clean(&env);
	}

	/* Reached while serving: new sessions and new queues are refused
	 * naming it (hbusd holds two descriptors per queue). */
	snprintf(arg, sizeof(arg), "4096");
	hb_start(&env, extra);
	fd = hb_session(&env, NULL);
	low.rlim_cur = low.rlim_max = hbusd_fds() + 20;
	cr_assert_eq(prlimit(env.pid, RLIMIT_NOFILE, &low, NULL), 0, "%s", strerror(errno));
	for (i = 150; i < 400 && refused < 0; i++) {
		snprintf(name, sizeof(name), "q%03d", i);
		r = hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", name,
			    "capacity", 2, "slot_size", 8);
		if (!hb_ok(r)) {
			refused = i;
			expect_limit(r, "limit of open files", "ulimit -n");
		} else {
			json_decref(r);
		}
	}
	cr_assert_gt(refused, 150, "never refused, or at once");
	cr_assert_eq(hb_list_count(fd, "queues"), (size_t)refused);
	/* New sessions: the last descriptors go, then each is told why. */
	for (i = 0;; i++) {
		int s = hb_connect(&env);

		cr_assert_geq(s, 0);
		cr_assert_lt(i, 10, "sessions kept coming at the limit of open files");
		send(s, "{\"op\":\"hello\"}", 14, MSG_NOSIGNAL); /* EPIPE if refused */
		r = hb_recv(s, NULL);
		if (!hb_ok(r)) {
			close(s);
			expect_limit(r, "limit of open files", "ulimit -n");
			break;
		}
		json_decref(r); /* left open: it holds a descriptor */
	}
	/* Nothing broke: what exists works, and room comes back. */
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "q000"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", "again",
		   "capacity", 2, "slot_size", 8));
	close(fd);
}

/* ------------------------------------------------------ shared memory runs out */

/* Declare queues of `bytes` each until one is refused; returns how many
 * fit, and checks the refusal. */
static int declare_until_full(int fd, unsigned capacity, unsigned slot_size, const char *hint)
{
	char name[32], dir[256];
	json_t *r;
	int i;

	hb_bus_dir(&env, dir, sizeof(dir));
	for (i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "fill.%02d", i);
		r = hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", name,
			    "capacity", (int)capacity, "slot_size", (int)slot_size);
		cr_assert_not_null(r, "hbusd did not answer (died?)");
		if (!hb_ok(r)) {
			char want[400];
			snprintf(want, sizeof(want), "no space in %s: queue '%s' needs", dir, name);
			cr_log_info("%d queue(s) fit; then: %s", i, hb_error(r));
			expect_limit(r, want, hint);
			return i;
		}
		json_decref(r);
	}
	cr_assert_fail("64 queues fit in a filesystem meant to hold a few");
	return -1;
}

/* Queue fill.00 still carries messages both ways, checksummed. */
static void still_carries(int fd, uint32_t owner)
{
	hbus_queue *p = hb_open_queue(fd, "fill.00", "write", owner, HBUS_ACK_AUTO);
	hbus_queue *c = hb_open_queue(fd, "fill.00", "read", owner, HBUS_ACK_MANUAL);
	struct tu_payload pl;
	struct hbus_msg m;
	uint32_t i;

	for (i = 0; i < 10; i++)
		cr_assert_eq(tu_enqueue_id(p, 7, i), 0);
	for (i = 0; i < 10; i++) {
		cr_assert_eq(hbus_queue_consume(c, &m), 0);
		cr_assert(tu_payload_ok(&m, &pl), "corrupt message");
		cr_assert_eq(pl.seq, i);
		cr_assert_eq(hbus_queue_ack(c, &m), 0);
	}
	hbus_queue_close(p);
	hbus_queue_close(c);
}

Test(limits, full_tmpfs_is_a_clear_refusal_and_the_rest_works)
{
	static const char *const small[] = { "--routes-size", "65536", NULL };
	uint32_t owner;
	int fd, fit;

	mount_fs("tmpfs", "size=4m,mode=0700");
	hb_start(&env, small);
	fd = hb_session(&env, &owner);
	/* 512 slots of 992 bytes: 512 KiB a ring. */
	fit = declare_until_full(fd, 512, 992, "give the tmpfs more room");
	cr_assert_geq(fit, 3, "only %d queues of 512 KiB fit in 4 MiB", fit);
	still_carries(fd, owner);
	/* Room comes back with a deleted queue. */
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "fill.01"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", "again",
		   "capacity", 512, "slot_size", 992));
	cr_assert_eq(hb_list_count(fd, "queues"), (size_t)fit);
	close(fd);
}

Test(limits, exhausted_hugepage_pool_is_a_clear_refusal_and_the_rest_works)
{
	static const char *const small[] = { "--routes-size", "65536", NULL };
	long free_pages = read_long(FREE_HUGEPAGES), total = read_long(NR_HUGEPAGES);
	uint32_t owner;
	int fd, fit;

	cr_assert_geq(total, 0, "no 2 MiB hugepages on this kernel");
	/* The mount takes at most 8 pages; make sure the pool has them, and
	 * put the pool back as it was afterwards. */
	if (free_pages < 8) {
		mnt.hugepages_before = total;
		write_long(NR_HUGEPAGES, total + 8 - free_pages);
		cr_assert_geq(read_long(FREE_HUGEPAGES), 8, "cannot reserve 8 hugepages");
	}
	mount_fs("hugetlbfs", "pagesize=2M,size=16M,mode=0700");
	hb_start(&env, small);
	fd = hb_session(&env, &owner);
	/* Superblock, routes and state take a 2 MiB page each; a ring of 64
	 * slots of 1 KiB is one more. */
	fit = declare_until_full(fd, 64, 992, "reserve more hugepages");
	cr_assert_geq(fit, 2, "only %d queues fit in 8 hugepages", fit);
	still_carries(fd, owner);
	close(fd);
}
