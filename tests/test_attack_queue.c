/*
 * test_attack_queue.c - a granted user against the queues it is handed
 * (docs/SECURITY.md): a reader of a protected queue, who must not be able
 * to change or add a single message byte, and a reader who truncates the
 * queue files it holds, which must not take hbusd down.  The attacker is a
 * fresh unprivileged user with a narrow grant (attack.h), and every test
 * ends with the three checks: the attack failed or was contained, hbusd
 * answers root within 2 s, root's message through an exchange reaches a
 * queue the attacker has no grant on, byte for byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attack.h"
#include "hbus.h"

AT_SUITE(attack_queue, "atq", 180);

#define BODY_LEN 300u

static uint8_t body[BODY_LEN]; /* root's message in pub.p */

/* A request whose reply passes up to two descriptors. */
static json_t *call_fds(int s, int fds[2], json_t *req)
{
	char *text = json_dumps(req, JSON_COMPACT);
	json_t *r = NULL;

	fds[0] = fds[1] = -1;
	if (text && hb_send_raw(s, text, strlen(text)) == 0)
		r = hb_recv_fds(s, fds, 2);
	free(text);
	json_decref(req);
	return r;
}

static const char *err_of(int rc)
{
	return rc == 0 ? "ALLOWED" : strerror(errno);
}

/* Root: a protected queue pub.p holding one random message. */
static void root_protected_queue(void)
{
	struct hbus_client_opts o = { .bus = env.bus, .run_dir = env.run };
	hbus_client *c = NULL;
	int fd = hb_session(&env, NULL);

	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i, s:b}", "op", "declare_queue", "name", "pub.p",
		   "capacity", 64, "slot_size", 512, "protected", 1));
	close(fd);
	cr_assert_eq(getrandom(body, sizeof(body), 0), (ssize_t)sizeof(body));
	cr_assert_eq(hbus_connect(&o, &c), 0);
	cr_assert_eq(hbus_publish(c, "", "pub.p", NULL, 0, body, BODY_LEN), 1);
	hbus_close(c);
}

/* ------------------------------------------ a protected queue's reader */

/* Every way of writing the data file it was handed, and producing. */
static void try_writing(int out, const int qf[2], uint32_t owner)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = HBUS_ACK_MANUAL };
	struct hbus_out m = { .body = "forged", .body_len = 6 };
	char path[64];
	struct stat st;
	hbus_queue *q;
	void *p;
	int rw;

	fstat(qf[1], &st);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, qf[1], 0);
	at_say(out, "mmap_rw %s", p == MAP_FAILED ? strerror(errno) : "ALLOWED");
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, qf[1], 0);
	at_say(out, "mprotect %s", p == MAP_FAILED ? "no mapping"
		   : err_of(mprotect(p, 4096, PROT_READ | PROT_WRITE)));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", qf[1]);
	rw = open(path, O_RDWR);
	at_say(out, "reopen %s", rw >= 0 ? "ALLOWED" : strerror(errno));
	at_say(out, "truncate %s", err_of(ftruncate(qf[1], 0)));
	at_say(out, "write %s", write(qf[1], "x", 1) == 1 ? "ALLOWED" : strerror(errno));
	at_say(out, "punch %s", err_of(fallocate(qf[1], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						 0, st.st_size)));
	if (hbus_queue_open_fds(qf[0], qf[1], &o, &q) != 0)
		_exit(33);
	at_say(out, "produce %s", strerror(-hbus_queue_enqueue(q, &m)));
	hbus_queue_close(q);
}

/* Consume through libhbus (a protected queue's reader requeues through
 * hbusd), nack(requeue), consume it again, ack; then ask hbusd to requeue
 * what it does not hold, on root's queue (qid 1, vault.q) and its own. */
static void consume_requeue(const struct hb_env *e, int out, const uint8_t *want, int64_t qid)
{
	struct hbus_client_opts o = { .bus = e->bus, .run_dir = e->run };
	char req[128], reply[512];
	hbus_client *c = NULL;
	struct hbus_msg m;
	hbus_queue *q;
	uint64_t pos;
	int code = 0;

	if (hbus_connect(&o, &c) || hbus_consume_open(c, "pub.p", HBUS_ACK_MANUAL, 0, &q))
		_exit(34);
	if (hbus_queue_consume_wait(q, &m, 5000))
		_exit(35);
	at_say(out, "got %s flags %u", m.body_len == BODY_LEN && !memcmp(m.body, want, BODY_LEN)
		    ? "same" : "OTHER", m.flags & HBUS_MSG_REDELIVERED);
	pos = m.pos;
	at_say(out, "nack %d", hbus_queue_nack(q, &m, 1));
	if (hbus_queue_consume_wait(q, &m, 5000))
		_exit(36);
	at_say(out, "again %s flags %u", m.body_len == BODY_LEN && !memcmp(m.body, want, BODY_LEN)
		    ? "same" : "OTHER", m.flags & HBUS_MSG_REDELIVERED);
	at_say(out, "ack %d", hbus_queue_ack(q, &m));
	/* hbusd requeues only what the asker holds. */
	for (int i = 0; i < 2; i++) {
		code = 0;
		snprintf(req, sizeof(req), "{\"op\":\"requeue\",\"qid\":%lld,\"pos\":%llu}",
			 (long long)(i ? qid : 1), (unsigned long long)pos);
		if (hbus_call(c, req, reply, sizeof(reply)) == -EREMOTEIO)
			hbus_client_error(c, &code, NULL);
		at_say(out, "requeue unheld %d", code);
	}
	hbus_consume_close(c, q);
	hbus_close(c);
}

static void attack_protected(const struct hb_env *e, void *arg, int out)
{
	int fds[2], qf[2], s = hb_connect(e);
	uint32_t owner;
	int64_t qid;
	json_t *r;

	if (s < 0 || hb_send_raw(s, "{\"op\":\"hello\"}", 14))
		_exit(30);
	r = hb_recv_fds(s, fds, 2);
	owner = (uint32_t)hb_int(r, "owner");
	json_decref(r);
	r = call_fds(s, qf, json_pack("{s:s, s:s, s:s}", "op", "open_queue", "name", "pub.p", "for",
				      "write"));
	at_say(out, "open for write %d", hb_code(r));
	json_decref(r);
	r = call_fds(s, qf, json_pack("{s:s, s:s}", "op", "consume", "queue", "pub.p"));
	if (!hb_ok(r) || qf[0] < 0 || qf[1] < 0 || !owner)
		_exit(31);
	qid = hb_int(r, "qid");
	json_decref(r);
	at_say(out, "data file %s", (fcntl(qf[1], F_GETFL) & O_ACCMODE) == O_RDONLY ? "read-only"
										: "WRITABLE");
	try_writing(out, qf, owner);
	close(s);
	consume_requeue(e, out, arg, qid);
}

Test(attack_queue, a_protected_queues_reader_cannot_write_a_message_byte)
{
	static const char *const want[] = {
		"open for write 403", "data file read-only", "mmap_rw Permission denied",
		"mprotect Permission denied", "reopen Permission denied",
		"truncate Invalid argument", "write Bad file descriptor",
		"punch Bad file descriptor", "produce Operation not permitted",
		"got same flags 0", "nack 0", "again same flags 1", "ack 0", "requeue unheld 404",
		"requeue unheld 404",
	};
	char line[256];
	unsigned i;
	int out, fd;
	pid_t pid;
	json_t *r, *q;

	at_start(&env, &user, NULL);
	root_protected_queue();
	pid = at_spawn_as(&user, &env, attack_protected, body, &out);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), want[i]);
	at_reap(pid);
	close(out);
	/* hbusd's books: one requeue, one ack, nothing left. */
	fd = hb_session(&env, NULL);
	r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	q = json_array_get(json_object_get(r, "queues"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(q, "name")), "pub.p");
	cr_assert_eq(hb_int(q, "requeued"), 1);
	cr_assert_eq(hb_int(q, "acked"), 1);
	cr_assert_eq(hb_int(q, "depth"), 0);
	json_decref(r);
	close(fd);
	at_assert_service(&env);
}

/* ------------------------------------------------- truncated queue files */

/* A reader of pub.q (default) and pub.p (protected) truncates their files
 * over and over, asking hbusd for stat (which reads every queue's
 * counters) and a purge in between. */
static void attack_truncate(const struct hb_env *e, void *arg, int out)
{
	int fds[2], qf[2], q1 = -1, s = at_hello(e, fds), i, ok = 0, refused = 0;
	json_t *r;

	(void)arg;
	if (s < 0)
		_exit(30);
	r = hb_call(s, &q1, "{s:s, s:s, s:s}", "op", "open_queue", "name", "pub.q", "for", "read");
	json_decref(r);
	r = call_fds(s, qf, json_pack("{s:s, s:s}", "op", "consume", "queue", "pub.p"));
	if (q1 < 0 || !hb_ok(r) || qf[1] < 0)
		_exit(31);
	json_decref(r);
	at_say(out, "data file truncate %s", err_of(ftruncate(qf[1], 0)));
	for (i = 0; i < 100; i++) {
		if (ftruncate(q1, 4096) || ftruncate(qf[0], 4096))
			_exit(32);
		json_decref(hb_call(s, NULL, "{s:s}", "op", "stat"));
		r = hb_call(s, NULL, "{s:s, s:s}", "op", "purge_queue", "name", "pub.q");
		ok += hb_ok(r);
		refused += hb_code(r) == 406;
		json_decref(r);
	}
	at_say(out, "purges ok %d refused %d", ok, refused);
	close(s);
}

static bool queue_corrupt(const char *name)
{
	int fd = hb_session(&env, NULL);
	json_t *r = hb_call(fd, NULL, "{s:s}", "op", "stat"), *q;
	bool corrupt = false;
	size_t i;

	json_array_foreach(json_object_get(r, "queues"), i, q)
		if (!strcmp(json_string_value(json_object_get(q, "name")), name))
			corrupt = json_is_true(json_object_get(q, "corrupt"));
	json_decref(r);
	close(fd);
	return corrupt;
}

/* hbusd's inotify watch usually restores a truncated file before anything
 * touches it.  Met inside a request instead: root's stat is on the socket,
 * hbusd stopped, when the file is truncated; continued, hbusd reads the
 * request first (epoll hands out what became ready first) and faults on
 * the queue's counters: the guard catches it. */
static bool stopped(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	bool t = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL)
		t = p[1] == ' ' && p[2] == 'T';
	if (f)
		fclose(f);
	return t;
}

static void truncated_inside_a_request(void)
{
	char bus[256], path[400];
	json_t *r;
	int fd = hb_session(&env, NULL), qf;

	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "root.t"));
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "queues");
	hb_bus_dir(&env, bus, sizeof(bus));
	snprintf(path, sizeof(path), "%s/queue.%lld", bus,
		 (long long)hb_int(json_array_get(json_object_get(r, "items"),
						  json_array_size(json_object_get(r, "items")) - 1), "qid"));
	json_decref(r);
	qf = open(path, O_RDWR);
	cr_assert_geq(qf, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(kill(env.pid, SIGSTOP), 0);
	for (unsigned spins = 0; !stopped(env.pid);)
		hb_backoff(&spins);
	cr_assert_eq(hb_send_raw(fd, "{\"op\":\"stat\"}", 13), 0);
	cr_assert_eq(ftruncate(qf, 0), 0);
	cr_assert_eq(kill(env.pid, SIGCONT), 0);
	r = hb_recv(fd, NULL);
	cr_assert(hb_ok(r), "stat over a truncated queue: %s", hb_error(r));
	json_decref(r);
	close(qf);
	close(fd);
	cr_assert(strstr(hb_log_text(&env), "queue 'root.t' (qid") &&
		  strstr(hb_log_text(&env), "a SIGBUS reading its counters"), "%s",
		  hb_log_text(&env));
	cr_assert(queue_corrupt("root.t"));
}

Test(attack_queue, truncating_queue_files_cannot_stop_hbusd)
{
	char out[512];
	int fd;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", "pub.q",
		   "capacity", 1024, "slot_size", 64));
	close(fd);
	root_protected_queue();
	cr_assert_eq(at_run_as(&user, &env, attack_truncate, NULL, out, sizeof(out)), 0, "%s", out);
	cr_log_info("truncator: %s", out);
	cr_assert(strstr(out, "data file truncate Invalid argument\n"), "%s", out);
	cr_assert(strstr(out, "purges ok 0 refused 100\n"), "%s", out);
	/* Alive, the same process, and it said what happened. */
	cr_assert_eq(kill(env.pid, 0), 0, "hbusd is gone");
	at_assert_service(&env);
	cr_assert(queue_corrupt("pub.q") && queue_corrupt("pub.p"),
		  "the truncated queues are not marked corrupt");
	cr_assert(strstr(hb_log_text(&env), "size restored"), "%s", hb_log_text(&env));
	cr_log_info("hbusd met the truncation %s",
		    strstr(hb_log_text(&env), "a SIGBUS") ? "in a SIGBUS (guard) and by inotify"
							   : "by inotify only");
	truncated_inside_a_request();
	/* Root: purge refused, delete works, the name is usable again. */
	fd = hb_session(&env, NULL);
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "purge_queue", "name", "pub.q"), 406,
	       "corrupt");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "pub.q"));
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "pub.p"));
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "pub.q"));
	close(fd);
	cr_assert(!queue_corrupt("pub.q"));
	at_assert_service(&env);
}
