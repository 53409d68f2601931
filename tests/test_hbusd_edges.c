/*
 * test_hbusd_edges.c - promises of docs/LIMITS.md, CONTROL.md and
 * OPERATIONS.md at their edges, against the real hbusd:
 *
 *   names, routing keys and consumer tags of 255 bytes pass, 256 are 406;
 *   64 headers per binding pass, 65 are 406, as are a 256-byte header name
 *   and a 65536-byte value; a refused request changes nothing;
 *   SIGHUP with a broken permissions file keeps the old rules;
 *   the superblock holds 4096 sessions: the next hello is 406, and one
 *   closing makes room;
 *   without CAP_IPC_LOCK and with a tiny RLIMIT_MEMLOCK, mlock failing is
 *   warned about once and the bus works;
 *   owner ids go round the 24-bit space and skip ids still in use.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "superblock.h"
#include "testutil.h"

#define NOBODY 65534u

static struct hb_env env;

static void setup(void)
{
	hb_env_init(&env, "edges");
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(hbusd_edges, .init = setup, .fini = teardown, .timeout = 180);

static char *name_of(size_t len, char c)
{
	char *s = malloc(len + 1);

	cr_assert_not_null(s);
	memset(s, c, len);
	s[len] = '\0';
	return s;
}

Test(hbusd_edges, names_keys_and_tags_of_255_bytes_pass_256_are_406)
{
	char *n255 = name_of(255, 'q'), *n256 = name_of(256, 'q');
	char *x255 = name_of(255, 'x'), *x256 = name_of(256, 'x');
	char *k255 = name_of(255, 'k'), *k256 = name_of(256, 'k');
	char *t255 = name_of(255, 't'), *t256 = name_of(256, 't');
	int fd;

	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", n255,
		   "capacity", 8, "slot_size", 64));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", n256), 406,
	       "queue name is 256 bytes long, the limit is 255");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", x255));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", x256), 406,
	       "exchange name is 256 bytes long, the limit is 255");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", x255, "destination",
		   n255, "key", k255));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", x255,
		       "destination", n255, "key", k256), 406,
	       "routing key name is 256 bytes long, the limit is 255");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "consume", "queue", n255, "consumer_tag",
		   t255));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "consume", "queue", n255, "consumer_tag",
		       t256), 406, "consumer tag name is 256 bytes long, the limit is 255");
	/* What was refused is not there; what passed is, whole. */
	cr_assert_eq(hb_list_count(fd, "queues"), 1);
	cr_assert_eq(hb_list_count(fd, "bindings"), 1);
	cr_assert_eq(hb_list_count(fd, "consumers"), 1);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", n255, "passive", 1));
	close(fd);
	free(n255), free(n256), free(x255), free(x256);
	free(k255), free(k256), free(t255), free(t256);
}

/* bind hx -> hq matching n headers h0..0=v.., names and values of the
 * lengths given. */
static json_t *bind_headers(int fd, unsigned n, size_t name_len, size_t value_len)
{
	json_t *h = json_object();
	char *value = name_of(value_len, 'v'), *name = name_of(name_len, 'h');
	unsigned i;

	for (i = 0; i < n; i++) {
		snprintf(name, name_len + 1, "h%0*u", (int)name_len - 1, i);
		json_object_set_new(h, name, json_string(value));
	}
	free(value);
	free(name);
	return hb_call(fd, NULL, "{s:s, s:s, s:s, s:o}", "op", "bind", "source", "hx",
		       "destination", "hq", "headers", h);
}

Test(hbusd_edges, sixty_four_headers_pass_more_or_longer_are_406)
{
	static const char *const big_requests[] = { "--max-request", "400000", NULL };
	int fd;

	hb_start(&env, big_requests);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "hq");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "hx", "type",
		   "headers"));
	EXPECT(bind_headers(fd, 65, 4, 1), 406, "65 headers, the limit is 64");
	EXPECT(bind_headers(fd, 1, 256, 1), 406, "is too long (name up to 255 bytes, value up to 65535)");
	EXPECT(bind_headers(fd, 1, 4, 65536), 406, "is too long (name up to 255 bytes");
	cr_assert_eq(hb_list_count(fd, "bindings"), 0, "a refused binding was made");
	OK(bind_headers(fd, 64, 255, 8));
	OK(bind_headers(fd, 1, 4, 65535));
	cr_assert_eq(hb_list_count(fd, "bindings"), 2);
	close(fd);
}

static void wait_log(const char *needle)
{
	unsigned spins = 0;

	while (!strstr(hb_log_text(&env), needle)) {
		cr_assert_lt(spins, 3000, "hbusd never logged '%s'", needle);
		hb_backoff(&spins);
	}
}

/* As nobody: hello, then open_queue q for read; "code|code". */
static void child_open(uid_t uid, int out, const char *const *queues)
{
	char line[64];
	int fd, n = 0;

	tu_become(uid);
	fd = hb_connect(&env);
	if (fd < 0)
		_exit(21);
	json_decref(hb_call(fd, NULL, "{s:s}", "op", "hello"));
	for (; *queues; queues++) {
		json_t *r = hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "open_queue", "name", *queues,
				    "for", "read");
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%d", n ? "|" : "", hb_code(r));
		json_decref(r);
	}
	_exit(write(out, line, (size_t)n) == n ? 0 : 22);
}

static void nobody_opens(const char *want)
{
	static const char *const queues[] = { "pub.a", "priv.b", NULL };
	char out[64];

	tu_output_as(child_open, NOBODY, queues, out, sizeof(out));
	cr_assert_str_eq(out, want);
}

Test(hbusd_edges, sighup_with_a_broken_permissions_file_keeps_the_old_rules)
{
	static const char pub[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\"^pub\\\\..*\"}}}";
	static const char priv[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\"^priv\\\\..*\"}}}";
	int fd;

	hb_start_perms(&env, pub, NULL);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "pub.a");
	hb_declare_queue(fd, "priv.b");
	nobody_opens("0|403");
	/* Not JSON: refused, said so, the old rules stay. */
	hb_write_perms(&env, "{\"users\":{\"nobody\":");
	cr_assert_eq(kill(env.pid, SIGHUP), 0);
	wait_log("SIGHUP: permissions not reloaded, the old ones stay");
	nobody_opens("0|403");
	/* A valid file is taken. */
	hb_write_perms(&env, priv);
	cr_assert_eq(kill(env.pid, SIGHUP), 0);
	for (unsigned spins = 0;; hb_backoff(&spins)) {
		char out[64];
		static const char *const queues[] = { "pub.a", "priv.b", NULL };

		tu_output_as(child_open, NOBODY, queues, out, sizeof(out));
		if (!strcmp(out, "403|0"))
			break;
		cr_assert_str_eq(out, "0|403", "rules neither old nor new");
		cr_assert_lt(spins, 3000, "the valid file was never taken");
	}
	/* Both still served, and hbusd still answers the session it had. */
	cr_assert_eq(hb_list_count(fd, "queues"), 2);
	close(fd);
}

static void raise_nofile(rlim_t n)
{
	struct rlimit r = { n, n };

	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &r), 0, "setrlimit: %s", strerror(errno));
}

Test(hbusd_edges, the_superblock_holds_4096_sessions)
{
	static const char *const many[] = { "--max-sessions", "5000", NULL };
	static int fds[HBUS_SUPER_SESSIONS];
	json_t *r;
	int extra, i;

	raise_nofile(16384); /* ours, and hbusd's (inherited) */
	hb_start(&env, many);
	for (i = 0; i < (int)HBUS_SUPER_SESSIONS; i++)
		fds[i] = hb_session(&env, NULL);
	extra = hb_connect(&env);
	cr_assert_geq(extra, 0);
	r = hb_call(extra, NULL, "{s:s}", "op", "hello");
	EXPECT(r, 406, "too many sessions on bus 'edges': the superblock holds 4096");
	/* One session goes: its entry is free again. */
	close(fds[0]);
	for (unsigned spins = 0;; hb_backoff(&spins)) {
		int fd = hb_connect(&env);

		cr_assert_geq(fd, 0);
		r = hb_call(fd, NULL, "{s:s}", "op", "hello");
		if (hb_ok(r)) {
			json_decref(r);
			fds[0] = fd;
			break;
		}
		EXPECT(r, 406, "the superblock holds 4096");
		close(fd);
		cr_assert_lt(spins, 3000, "a closed session's entry never came back");
	}
	close(extra);
	for (i = 0; i < (int)HBUS_SUPER_SESSIONS; i++)
		close(fds[i]);
}

/* In hbusd's process before exec: no CAP_IPC_LOCK (even as root), and 64
 * KiB of lockable memory. */
static void no_memlock(void)
{
	struct rlimit r = { 64 << 10, 64 << 10 };

	if (prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) != 0 || setrlimit(RLIMIT_MEMLOCK, &r) != 0)
		_exit(125);
}

Test(hbusd_edges, mlock_failing_is_warned_once_and_the_bus_works)
{
	const char *log, *first;
	struct hbus_msg m;
	struct tu_payload p;
	hbus_queue *w, *rd;
	uint32_t owner, i;
	int fd;

#ifdef __SANITIZE_ADDRESS__
	cr_skip_test("ASan replaces mlock with a stub that never fails: the warning is seen in the "
		     "normal build only");
#endif
	env.before_exec = no_memlock;
	hb_start(&env, NULL);
	fd = hb_session(&env, &owner);
	for (i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "q%u", i);
		OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", name,
			   "capacity", 4096, "slot_size", 256)); /* 1 MiB each: far past 64 KiB */
	}
	w = hb_open_queue(fd, "q3", "write", owner, HBUS_ACK_AUTO);
	rd = hb_open_queue(fd, "q3", "read", owner, HBUS_ACK_MANUAL);
	for (i = 0; i < 100; i++)
		cr_assert_eq(tu_enqueue_id(w, 1, i), 0);
	for (i = 0; i < 100; i++) {
		cr_assert_eq(hbus_queue_consume(rd, &m), 0);
		cr_assert(tu_payload_ok(&m, &p) && p.seq == i);
		cr_assert_eq(hbus_queue_ack(rd, &m), 0);
	}
	hbus_queue_close(w);
	hbus_queue_close(rd);
	log = hb_log_text(&env);
	first = strstr(log, "mlock failed");
	cr_assert_not_null(first, "no mlock warning:\n%s", log);
	cr_assert(strstr(first, "raise RLIMIT_MEMLOCK (ulimit -l) or run with CAP_IPC_LOCK"), "%s",
		  first);
	cr_assert_null(strstr(first + 1, "mlock failed"), "warned more than once:\n%s", log);
	close(fd);
}

/* Owner ids come from the superblock's counter; set it near the top of
 * the 24-bit space while no hbusd runs (hbusd holds the file locked). */
static void set_next_owner(uint32_t next)
{
	char dir[256], path[300];
	int fd;

	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/superblock", dir);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(pwrite(fd, &next, sizeof(next), offsetof(struct hbus_super, next_owner)),
		     (ssize_t)sizeof(next));
	close(fd);
}

Test(hbusd_edges, owner_ids_wrap_after_24_bits_and_skip_ids_in_use)
{
	uint32_t kept, owners[6];
	int held, fds[6], i;

	hb_start(&env, NULL);
	held = hb_session(&env, &kept); /* its process lives on: its id stays taken */
	hb_stop_clean(&env);
	set_next_owner(HBUS_OWNER_MAX - 2);
	hb_start(&env, NULL);
	for (i = 0; i < 6; i++) {
		fds[i] = hb_session(&env, &owners[i]);
		cr_assert(owners[i] >= 1 && owners[i] <= HBUS_OWNER_MAX, "owner %u", owners[i]);
		cr_assert_neq(owners[i], kept, "owner %u given while its process still lives", kept);
		for (int j = 0; j < i; j++)
			cr_assert_neq(owners[i], owners[j], "owner %u given twice", owners[i]);
	}
	cr_log_info("kept %u; then %u %u %u %u %u %u", kept, owners[0], owners[1], owners[2],
		    owners[3], owners[4], owners[5]);
	/* hbusd takes one of the last ids itself; the sessions get the rest,
	 * then the counter goes round to the bottom of the space. */
	cr_assert_geq(owners[0], HBUS_OWNER_MAX - 1, "no id near the top: %u", owners[0]);
	cr_assert_lt(owners[5], 16, "the ids did not wrap: %u", owners[5]);
	for (i = 0; i < 6; i++)
		close(fds[i]);
	close(held);
}
