/*
 * test_hbusd_life.c - what must hold when processes die and hbusd
 * restarts: a killed consumer's messages come back flagged redelivered,
 * session-bound queues go with their session, durable topology and queued
 * messages survive restarts (clean, kill -9, shared memory wiped), the
 * definitions file is exact and written atomically, two hbusd never serve
 * one bus, and other users get 403s that say what is missing.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "testutil.h"

static struct hb_env env;

static void setup(void)
{
	hb_env_init(&env, "life");
	hb_start(&env, NULL);
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(control_life, .init = setup, .fini = teardown, .timeout = 120);

static json_t *find_item(int fd, const char *what, const char *key, const char *name)
{
	json_t *r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", what), *it, *out = NULL;
	size_t i;

	cr_assert(hb_ok(r), "%s", hb_error(r));
	json_array_foreach(json_object_get(r, "items"), i, it) {
		if (!strcmp(json_string_value(json_object_get(it, key)) ?: "", name))
			out = json_incref(it);
	}
	json_decref(r);
	return out;
}

static hbus_queue *consumer(int fd, const char *queue, uint32_t owner)
{
	int cfd = -1;
	json_t *r = hb_call(fd, &cfd, "{s:s, s:s, s:s}", "op", "consume", "queue", queue, "ack_mode",
			    "manual");
	hbus_queue *q;

	cr_assert(hb_ok(r), "consume %s: %s", queue, hb_error(r));
	json_decref(r);
	q = tu_open(cfd, owner, HBUS_ACK_MANUAL, 0);
	close(cfd);
	return q;
}

static hbus_queue *producer(int fd, const char *queue, uint32_t owner)
{
	int qfd = -1;
	json_t *r = hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", queue, "for",
			    "write");
	hbus_queue *q;

	cr_assert(hb_ok(r), "open_queue %s: %s", queue, hb_error(r));
	json_decref(r);
	q = tu_open(qfd, owner, HBUS_ACK_AUTO, 0);
	close(qfd);
	return q;
}

/* ------------------------------------------------ a child that holds claims */

/* In the child: hello (resuming `resume` if non-zero), claim n messages
 * of queue in manual mode, report the owner id, wait for a byte on go
 * (then reconnect with the same owner and report "resumed"), then hang.
 * No Criterion asserts in a forked child: it reports by exit status. */
static void child_hold(const char *queue, int n, int report, int go)
{
	struct hbus_queue_opts o = { .ack_mode = HBUS_ACK_MANUAL };
	struct hbus_msg m;
	hbus_queue *q;
	uint32_t owner;
	int fd = hb_connect(&env), cfd = -1, i;
	json_t *r;
	char c;

	r = fd >= 0 ? hb_call(fd, NULL, "{s:s}", "op", "hello") : NULL;
	if (!hb_ok(r))
		_exit(10);
	owner = (uint32_t)hb_int(r, "owner");
	json_decref(r);
	r = hb_call(fd, &cfd, "{s:s, s:s, s:s}", "op", "consume", "queue", queue, "ack_mode", "manual");
	if (!hb_ok(r) || cfd < 0)
		_exit(11);
	json_decref(r);
	o.owner = owner;
	if (hbus_queue_open_fd(cfd, &o, &q))
		_exit(12);
	for (i = 0; i < n; i++)
		if (hbus_queue_consume(q, &m))
			_exit(13);
	if (write(report, &owner, sizeof(owner)) != sizeof(owner))
		_exit(14);
	if (go >= 0 && read(go, &c, 1) == 1) {
		uint32_t resumed;
		int fd2 = hb_connect(&env);
		r = fd2 >= 0 ? hb_call(fd2, NULL, "{s:s, s:i}", "op", "hello", "owner", (int)owner)
			     : NULL;
		resumed = hb_ok(r) && json_is_true(json_object_get(r, "resumed")) &&
			  (uint32_t)hb_int(r, "owner") == owner;
		if (write(report, &resumed, sizeof(resumed)) != sizeof(resumed))
			_exit(15);
	}
	for (;;)
		pause();
}

static pid_t spawn_holder(const char *queue, int n, uint32_t *owner, int *go_fd)
{
	int rep[2], go[2] = { -1, -1 };
	pid_t pid;

	cr_assert_eq(pipe(rep), 0);
	if (go_fd)
		cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(rep[0]);
		if (go_fd)
			close(go[1]);
		child_hold(queue, n, rep[1], go[0]);
	}
	close(rep[1]);
	if (go_fd) {
		close(go[0]);
		*go_fd = go[1];
	}
	cr_assert_eq(read(rep[0], owner, sizeof(*owner)), (ssize_t)sizeof(*owner),
		     "the holder child failed before claiming");
	if (go_fd)
		*go_fd = (*go_fd << 8) | rep[0]; /* both ends the caller needs, packed */
	else
		close(rep[0]);
	return pid;
}

static void kill_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Fill queue with seq 0..n-1, let a child claim `held` of them and die
 * (by kill_after), then check every message comes back exactly once with
 * the held ones flagged redelivered. */
static void expect_redelivery(int fd, uint32_t owner, const char *queue, int n, int held)
{
	struct tu_payload p;
	struct hbus_msg m;
	unsigned spins = 0;
	int got = 0, redelivered = 0, seen[64] = { 0 };
	hbus_queue *q = consumer(fd, queue, owner);

	while (got < n) {
		int rc = hbus_queue_consume(q, &m);
		if (rc == -EAGAIN) {
			cr_assert_lt(spins, 1000, "only %d of %d messages came back", got, n);
			hb_backoff(&spins);
			continue;
		}
		cr_assert_eq(rc, 0, "consume: %s", hbus_strerror(rc));
		cr_assert(tu_payload_ok(&m, &p), "corrupt payload");
		cr_assert_lt(p.seq, (uint32_t)n);
		cr_assert_eq(seen[p.seq]++, 0, "message %u delivered twice", p.seq);
		if (m.flags & HBUS_MSG_REDELIVERED) {
			redelivered++;
			cr_assert_lt(p.seq, (uint32_t)held, "message %u was never held", p.seq);
		}
		cr_assert_eq(hbus_queue_ack(q, &m), 0);
		got++;
	}
	cr_assert_eq(redelivered, held);
	cr_assert_eq(hbus_queue_consume(q, &m), -EAGAIN, "more messages than were sent");
	hbus_queue_close(q);
}

static void fill(int fd, uint32_t owner, const char *queue, int n)
{
	hbus_queue *q = producer(fd, queue, owner);
	int i;

	for (i = 0; i < n; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, (uint32_t)i), 0);
	hbus_queue_close(q);
}

Test(control_life, killed_consumer_messages_come_back_redelivered)
{
	uint32_t owner, child_owner;
	int fd = hb_session(&env, &owner);
	pid_t pid;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "work", "capacity", 16));
	fill(fd, owner, "work", 5);
	pid = spawn_holder("work", 3, &child_owner, NULL);
	cr_assert_neq(child_owner, owner);
	kill_child(pid);
	expect_redelivery(fd, owner, "work", 5, 3);
	close(fd);
}

Test(control_life, session_bound_queues_go_with_their_session)
{
	unsigned spins = 0;
	int a = hb_session(&env, NULL), b;
	json_t *it;

	OK(hb_call(a, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "excl", "exclusive", 1));
	OK(hb_call(a, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "auto", "auto_delete", 1));
	OK(hb_call(a, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "keep"));
	OK(hb_call(a, NULL, "{s:s, s:s}", "op", "consume", "queue", "auto"));
	OK(hb_call(a, NULL, "{s:s, s:s}", "op", "consume", "queue", "keep"));
	close(a);
	b = hb_session(&env, NULL);
	for (;;) {
		json_t *r = hb_call(b, NULL, "{s:s, s:s}", "op", "list", "what", "queues");
		size_t n = json_array_size(json_object_get(r, "items"));
		json_decref(r);
		if (n == 1)
			break;
		cr_assert_lt(spins, 500, "session queues still there: %zu queues", n);
		hb_backoff(&spins);
	}
	it = find_item(b, "queues", "name", "keep");
	cr_assert_not_null(it);
	cr_assert_eq(hb_int(it, "consumers"), 0, "the closed session's consumer stayed");
	json_decref(it);
	close(b);
}

static void declare_topology(int fd)
{
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:b}", "op", "declare_exchange", "name", "dx", "type",
		   "topic", "durable", 1));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:b}", "op", "declare_queue", "name", "dq", "capacity",
		   32, "durable", 1));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "tq", "capacity", 32));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "dx", "destination",
		   "dq", "key", "a.#"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "dx", "destination",
		   "tq", "key", "b.#"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s, s:s}", "op", "map_udp", "addr", "239.9.9.9",
		   "port", 7000, "exchange", "dx", "key", "a.udp"));
}

static int64_t queue_messages(int fd, const char *name)
{
	json_t *it = find_item(fd, "queues", "name", name);
	int64_t n;

	cr_assert_not_null(it, "queue '%s' is gone", name);
	n = hb_int(it, "messages");
	json_decref(it);
	return n;
}

Test(control_life, restart_adopts_queues_messages_and_topology)
{
	uint32_t owner, owner2;
	int fd = hb_session(&env, &owner), i;
	char dir[256], path[512];
	struct stat st;
	json_t *r;
	int64_t epoch;

	declare_topology(fd);
	fill(fd, owner, "dq", 3);
	fill(fd, owner, "tq", 2);
	r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	epoch = hb_int(r, "epoch");
	json_decref(r);
	close(fd);

	cr_assert_eq(hb_stop(&env), 0, "SIGTERM is a clean exit");
	cr_assert_neq(stat(env.sock, &st), 0, "socket left behind");
	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/superblock", dir);
	cr_assert_eq(stat(path, &st), 0, "shared memory must survive hbusd");

	for (i = 0; i < 2; i++) {
		hb_start(&env, NULL);
		fd = hb_session(&env, &owner2);
		cr_assert_gt(owner2, owner, "owner ids are not reused across restarts");
		r = hb_call(fd, NULL, "{s:s}", "op", "stat");
		cr_assert_eq(hb_int(r, "epoch"), epoch + 1 + i);
		json_decref(r);
		cr_assert_eq(queue_messages(fd, "dq"), 3);
		cr_assert_eq(queue_messages(fd, "tq"), 2, "non-durable queue not adopted");
		r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "bindings");
		cr_assert_eq(json_array_size(json_object_get(r, "items")), 2);
		json_decref(r);
		r = find_item(fd, "udpmaps", "addr", "239.9.9.9");
		cr_assert_not_null(r);
		json_decref(r);
		owner = owner2;
		close(fd);
		if (i == 0) { /* then the hard way: no clean exit */
			kill(env.pid, SIGKILL);
			waitpid(env.pid, NULL, 0);
			env.pid = 0;
		}
	}
	fd = hb_session(&env, &owner);
	expect_redelivery(fd, owner, "dq", 3, 0);
	close(fd);
}

Test(control_life, definitions_file_holds_durable_topology_atomically)
{
	char text[8192], dir[256], cmd[600], tmp[300], before[8192];
	json_t *defs, *x, *q, *b;
	struct dirent *de;
	struct stat st;
	json_error_t jerr;
	DIR *d;
	FILE *f;
	size_t n;
	int fd = hb_session(&env, NULL);
	json_t *r;

	declare_topology(fd);
	defs = json_load_file(env.defs, 0, &jerr);
	cr_assert_not_null(defs, "%s: %s", env.defs, jerr.text);
	cr_assert_eq(hb_int(defs, "hbus_definitions"), 1);
	x = json_object_get(defs, "exchanges");
	q = json_object_get(defs, "queues");
	b = json_object_get(defs, "bindings");
	cr_assert_eq(json_array_size(x), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(x, 0), "name")), "dx");
	cr_assert_eq(json_array_size(q), 1, "only durable queues belong in the file");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(q, 0), "name")), "dq");
	cr_assert_eq(hb_int(json_array_get(q, 0), "capacity"), 32);
	cr_assert_eq(json_array_size(b), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(b, 0), "key")), "a.#");
	cr_assert_eq(json_array_size(json_object_get(defs, "udpmaps")), 1);
	json_decref(defs);
	cr_assert_eq(stat(env.defs, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640);
	d = opendir(env.base);
	while ((de = readdir(d)) != NULL)
		cr_assert_null(strstr(de->d_name, ".tmp"), "temp file left: %s", de->d_name);
	closedir(d);

	/* A write that fails refuses the change, and the old file stays. */
	f = fopen(env.defs, "r");
	n = fread(before, 1, sizeof(before) - 1, f);
	before[n] = '\0';
	fclose(f);
	/* The definitions path is a directory for a moment: the rename of the
	 * written temp file over it fails.  (The temp file's name is random:
	 * nothing can be planted there.) */
	snprintf(tmp, sizeof(tmp), "%s.saved", env.defs);
	cr_assert_eq(rename(env.defs, tmp), 0);
	cr_assert_eq(mkdir(env.defs, 0700), 0);
	r = hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "dq2", "durable", 1);
	cr_assert_eq(hb_code(r), 541, "%s", hb_error(r));
	cr_assert(strstr(hb_error(r), "definitions"), "%s", hb_error(r));
	json_decref(r);
	r = hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "dq2", "passive", 1);
	cr_assert_eq(hb_code(r), 404, "the refused queue was kept");
	json_decref(r);
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "not-durable"));
	cr_assert_eq(rmdir(env.defs), 0);
	cr_assert_eq(rename(tmp, env.defs), 0);
	d = opendir(env.base);
	while ((de = readdir(d)) != NULL)
		cr_assert_null(strstr(de->d_name, ".tmp"), "temp file left: %s", de->d_name);
	closedir(d);
	f = fopen(env.defs, "r");
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	cr_assert_str_eq(text, before, "the definitions file changed under a refused write");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "dq2", "durable", 1));
	close(fd);

	/* Shared memory wiped (a reboot): durable topology comes back, empty. */
	cr_assert_eq(hb_stop(&env), 0);
	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	cr_assert_eq(queue_messages(fd, "dq"), 0);
	cr_assert_eq(queue_messages(fd, "dq2"), 0);
	r = find_item(fd, "queues", "name", "tq");
	cr_assert_null(r, "a non-durable queue came back after a wipe");
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "bindings");
	cr_assert_eq(json_array_size(json_object_get(r, "items")), 1);
	json_decref(r);
	close(fd);
}

Test(control_life, two_hbusd_never_serve_one_bus)
{
	struct hb_env other = env;
	char out[4096];

	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, "already running"), "%s", out);
	/* Another run dir, same shared memory: the superblock lock refuses. */
	other.reaper = 0;
	snprintf(other.run, sizeof(other.run), "%s/run2", env.base);
	cr_assert_eq(hb_start_fail(&other, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, "another hbusd"), "%s", out);
	/* The first one is unharmed. */
	close(hb_session(&env, NULL));
}

/* ---------------------------------------------------------------- permissions */

/* In a child as uid/gid: run requests, write "code|error\n" per request. */
static void run_as(uid_t uid, int out, const char *const *reqs)
{
	char line[600];
	int fd, n;

	tu_become(uid);
	fd = hb_connect(&env);
	if (fd < 0)
		_exit(21);
	for (; *reqs; reqs++) {
		json_t *r;
		if (hb_send_raw(fd, *reqs, strlen(*reqs)))
			_exit(22);
		r = hb_recv(fd, NULL);
		n = snprintf(line, sizeof(line), "%d|%s\n", hb_code(r), hb_error(r));
		if (write(out, line, (size_t)n) != n)
			_exit(23);
		json_decref(r);
	}
	_exit(0);
}

static void results_as(uid_t uid, const char *const *reqs, char *buf, size_t cap)
{
	tu_output_as(run_as, uid, reqs, buf, cap);
}

Test(control_life, other_users_get_403_naming_what_is_missing)
{
	static const char *const nobody_reqs[] = {
		"{\"op\":\"hello\"}",
		"{\"op\":\"declare_queue\",\"name\":\"nobody.q\"}",
		"{\"op\":\"declare_queue\",\"name\":\"other\"}",
		"{\"op\":\"open_queue\",\"name\":\"rootq\",\"for\":\"write\"}",
		"{\"op\":\"open_queue\",\"name\":\"rootq\",\"for\":\"read\"}",
		"{\"op\":\"delete_queue\",\"name\":\"rootq\"}",
		"{\"op\":\"bind\",\"source\":\"rootx\",\"destination\":\"nobody.q\"}",
		NULL,
	};
	static const char *const stranger_reqs[] = { "{\"op\":\"hello\"}", NULL };
	static const char *const with_perms[3] = { "--permissions", NULL, NULL };
	const char *extra[3] = { with_perms[0], NULL, NULL };
	char perms[256], out[4096];
	struct stat st;
	FILE *f;
	int fd;

	snprintf(perms, sizeof(perms), "%s/permissions.json", env.base);
	f = fopen(perms, "w");
	fprintf(f, "{\"users\":{\"nobody\":{\"configure\":\"^nobody\\\\..*\",\"write\":\"^nobody\\\\..*\","
		   "\"read\":\".*\"}}}\n");
	fclose(f);
	extra[1] = perms;
	hb_stop_clean(&env);
	hb_start(&env, extra);
	cr_assert_eq(stat(env.run, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0755, "others need the run dir");
	cr_assert_eq(stat(env.sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0666);
	fd = hb_session(&env, NULL); /* root may do everything */
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "rootq"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "rootx", "type", "direct"));

	results_as(65534, nobody_reqs, out, sizeof(out));
	cr_assert_str_eq(strtok(out, "\n"), "0|");                     /* hello */
	cr_assert_str_eq(strtok(NULL, "\n"), "0|");                    /* its own queue */
	cr_assert_str_eq(strtok(NULL, "\n"),
		"403|access refused: user 'nobody' (uid 65534) has no configure permission on queue 'other'");
	cr_assert_str_eq(strtok(NULL, "\n"),
		"403|access refused: user 'nobody' (uid 65534) has no write permission on queue 'rootq'");
	cr_assert_str_eq(strtok(NULL, "\n"), "0|");                    /* read is granted */
	cr_assert_str_eq(strtok(NULL, "\n"),
		"403|access refused: user 'nobody' (uid 65534) has no configure permission on queue 'rootq'");
	cr_assert_str_eq(strtok(NULL, "\n"), "0|"); /* write on nobody.q, read on rootx */
	results_as(65533, stranger_reqs, out, sizeof(out));
	cr_assert(!strncmp(out, "403|access refused for user", 27), "%s", out);
	cr_assert(strstr(out, "65533") && strstr(out, "no entry"), "%s", out);

	/* SIGHUP reloads the file. */
	f = fopen(perms, "w");
	fprintf(f, "{\"users\":{\"nobody\":{\"configure\":\".*\",\"write\":\"\",\"read\":\"\"}}}\n");
	fclose(f);
	kill(env.pid, SIGHUP);
	{
		static const char *const again[] = { "{\"op\":\"hello\"}",
			"{\"op\":\"declare_queue\",\"name\":\"other\"}", NULL };
		unsigned spins = 0;
		for (;;) {
			results_as(65534, again, out, sizeof(out));
			if (!strcmp(out, "0|\n0|\n"))
				break;
			cr_assert_lt(spins, 200, "SIGHUP did not reload permissions: %s", out);
			hb_backoff(&spins);
		}
	}
	close(fd);
}

/* ------------------------------------------------ clients across a restart */

Test(control_life, client_dying_while_hbusd_was_down_is_recovered)
{
	uint32_t owner, child_owner;
	int fd = hb_session(&env, &owner);
	pid_t pid;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "work", "capacity", 16));
	fill(fd, owner, "work", 4);
	pid = spawn_holder("work", 2, &child_owner, NULL);
	close(fd);
	cr_assert_eq(hb_stop(&env), 0);
	hb_start(&env, NULL);
	fd = hb_session(&env, &owner);
	/* The holder still runs: its claims must stay claimed... */
	cr_assert_eq(queue_messages(fd, "work"), 2);
	/* ...until it dies (hbusd watches it through a pidfd). */
	kill_child(pid);
	expect_redelivery(fd, owner, "work", 4, 2);
	close(fd);
}

Test(control_life, client_resumes_its_owner_after_a_restart)
{
	uint32_t owner, child_owner, resumed = 0;
	int fd = hb_session(&env, &owner), packed, go, rep;
	pid_t pid;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "work", "capacity", 16));
	fill(fd, owner, "work", 3);
	pid = spawn_holder("work", 1, &child_owner, &packed);
	go = packed >> 8;
	rep = packed & 0xff;
	close(fd);
	cr_assert_eq(hb_stop(&env), 0);
	hb_start(&env, NULL);
	cr_assert_eq(write(go, "g", 1), 1);
	cr_assert_eq(read(rep, &resumed, sizeof(resumed)), (ssize_t)sizeof(resumed));
	cr_assert_eq(resumed, 1, "the same process did not get its owner id back");
	fd = hb_session(&env, &owner);
	cr_assert_neq(owner, child_owner);
	/* Its resumed session closing recovers the claim made before. */
	kill_child(pid);
	expect_redelivery(fd, owner, "work", 3, 1);
	close(go);
	close(rep);
	close(fd);
}

static int64_t stat_field(int fd, const char *field)
{
	json_t *r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	int64_t v = hb_int(r, field);

	json_decref(r);
	return v;
}

/* A dead consumer's claim on a full ring goes back to its own position at
 * once: a requeue needs no free slot, so recovery never waits. */
Test(control_life, recovery_into_a_full_ring_completes_at_once)
{
	struct hbus_msg held, m;
	struct tu_payload p;
	uint32_t owner, child_owner;
	unsigned spins = 0;
	int fd = hb_session(&env, &owner), rc;
	hbus_queue *q;
	pid_t pid;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "tiny", "capacity", 4));
	fill(fd, owner, "tiny", 4);
	q = consumer(fd, "tiny", owner);
	cr_assert_eq(hbus_queue_consume(q, &held), 0); /* we hold seq 0 */
	pid = spawn_holder("tiny", 1, &child_owner, NULL); /* the child holds seq 1 */
	kill_child(pid);
	/* hbusd requeues it (no waiting for room)... */
	for (struct hbus_queue_stats s = { 0 }; hbus_queue_stats(q, &s) == 0 && s.requeued != 1;) {
		cr_assert_lt(spins, 500, "the dead consumer's message was never requeued");
		hb_backoff(&spins);
	}
	/* ...and seq 1 comes back first (its position), flagged, though the
	 * ring is full; then 2 and 3. */
	for (int want = 1; want <= 3; want++) {
		while ((rc = hbus_queue_consume(q, &m)) == -EAGAIN) {
			cr_assert_lt(spins, 500, "the dead consumer's message never came back");
			hb_backoff(&spins);
		}
		cr_assert_eq(rc, 0, "consume: %s", hbus_strerror(rc));
		cr_assert(tu_payload_ok(&m, &p));
		cr_assert_eq(p.seq, (uint32_t)want);
		cr_assert_eq(!!(m.flags & HBUS_MSG_REDELIVERED), want == 1);
		cr_assert_eq(hbus_queue_ack(q, &m), 0);
	}
	cr_assert_eq(stat_field(fd, "pending_recoveries"), 0);
	cr_assert_eq(hbus_queue_ack(q, &held), 0);
	hbus_queue_close(q);
	close(fd);
}
