/*
 * test_attack_shm.c - a granted user against the shared memory it is
 * handed (docs/SECURITY.md, issue "Trust boundary"): the routes file, its
 * own reader block, queue rings and their headers.  Each test runs the
 * attacker as a fresh unprivileged user with a narrow grant (attack.h) and
 * checks the three things: the attack fails or is contained, hbusd answers
 * root within 2 s, root's message through an exchange reaches a queue the
 * attacker has no grant on, byte for byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attack.h"
#include "queue_internal.h"
#include "queue_layout.h"
#include "route_layout.h"

AT_SUITE(attack_shm, "atk", 180);

/* Map a whole descriptor read-write, or NULL (errno set). */
static void *map_rw(int fd, size_t *len)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) != 0)
		return NULL;
	*len = (size_t)st.st_size;
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Every slot of the block attached and advertising a generation, both
 * parities: whatever half hbusd wants next, this block is in its way. */
static void forge_block(struct hbus_readers_block *b, uint64_t base)
{
	unsigned i;

	for (i = 0; i < HBUS_READER_SLOTS; i++)
		atomic_store(&b->slot[i].gen, base + i);
	atomic_store(&b->used, ~0ull);
}

/* ------------------------------------------------ finding 1: routes file */

static const char *err_of(int rc)
{
	return rc == 0 ? "ALLOWED" : strerror(errno);
}

static void attack_routes_file(const struct hb_env *e, void *arg, int out)
{
	struct hbus_readers_block *b;
	char path[64], buf[256];
	size_t len, blen;
	struct stat st;
	json_t *r;
	void *p;
	int fds[2], fd = at_hello(e, fds), rw;

	(void)arg;
	if (fd < 0 || fds[0] < 0 || fds[1] < 0)
		_exit(30);
	/* The table: every way of writing it. */
	fstat(fds[0], &st);
	len = (size_t)st.st_size;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	at_say(out, "mmap_rw %s", p == MAP_FAILED ? strerror(errno) : "ALLOWED");
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fds[0], 0);
	at_say(out, "mprotect %s", err_of(mprotect(p, 4096, PROT_READ | PROT_WRITE)));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
	rw = open(path, O_RDWR);
	at_say(out, "reopen %s", rw >= 0 ? "ALLOWED" : strerror(errno));
	at_say(out, "truncate %s", err_of(ftruncate(fds[0], 0)));
	at_say(out, "write %s", write(fds[0], "x", 1) == 1 ? "ALLOWED" : strerror(errno));
	/* Our own reader block: sealed, so hbusd's mapping cannot lose it. */
	at_say(out, "block_truncate %s", err_of(ftruncate(fds[1], 0)));
	b = map_rw(fds[1], &blen);
	if (!b)
		_exit(31);
	if (getrandom(b, blen, 0) != (ssize_t)blen) /* all of it: header too */
		_exit(32);
	forge_block(b, 1);
	at_say(out, "forged");
	/* hbusd gives the block up after --reader-timeout and says so. */
	r = hb_recv(fd, NULL);
	at_say(out, "told %d %s", hb_code(r), hb_error(r));
	json_decref(r);
	at_say(out, "closed %zd", recv(fd, buf, sizeof(buf), 0));
	/* The table we read is still there, read-only, and whole. */
	at_say(out, "table magic %s",
	       p != MAP_FAILED && ((const struct hbus_file_hdr *)p)->magic == HBUS_FILE_MAGIC ? "ok"
											 : "BAD");
}

Test(attack_shm, routes_file_is_read_only_and_reader_blocks_are_bounded)
{
	char line[512];
	unsigned ms;
	int out;
	pid_t pid;

	at_start(&env, &user, NULL);
	pid = at_spawn_as(&user, &env, attack_routes_file, NULL, &out);
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "mmap_rw Permission denied");
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "mprotect Permission denied");
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "reopen Permission denied");
	cr_assert(!strncmp(at_hear(out, line, sizeof(line), 10000), "truncate ", 9) &&
		  !strstr(line, "ALLOWED"), "%s", line);
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "write Bad file descriptor");
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000),
			 "block_truncate Operation not permitted");
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "forged");
	/* Root changes the topology twice (the second publish needs the half
	 * the forged block claims): answered once hbusd gives up on it. */
	ms = at_root_served(&env);
	cr_log_info("root served in %u ms with a forged reader block in the way", ms);
	at_hear(out, line, sizeof(line), 10000);
	cr_assert(strstr(line, "told 406 ") && strstr(line, "--reader-timeout"), "%s", line);
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "closed 0");
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "table magic ok");
	at_reap(pid);
	close(out);
	cr_assert(strstr(hb_log_text(&env), "reader block held a routing table publish back"),
		  "hbusd did not say why it closed the session");
	at_assert_service(&env);
}

/* --------------------------------- finding 2: forged slots, and a restart */

/* Forges its block, leaves its session while it holds a queue (hbusd then
 * watches it as an orphan), and keeps forging until killed. */
static void attack_forged_slots(const struct hb_env *e, void *arg, int out)
{
	struct hbus_readers_block *b;
	size_t blen;
	json_t *r;
	int fds[2], qfd = -1, fd = at_hello(e, fds);
	uint64_t k = 0;

	(void)arg;
	if (fd < 0 || !(b = map_rw(fds[1], &blen)))
		_exit(30);
	r = hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", "pub.q", "for",
		    "read");
	if (!hb_ok(r) || qfd < 0)
		_exit(31);
	json_decref(r);
	forge_block(b, 1);
	close(fd);
	at_say(out, "left");
	for (;;) {
		forge_block(b, ++k);
		usleep(1000);
	}
}

Test(attack_shm, forged_reader_slots_are_given_up_and_do_not_survive_a_restart)
{
	static const char *const patient[] = { "--reader-timeout", "30000", NULL };
	char line[256];
	int out, fd;
	pid_t pid;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "pub.q", "durable", 1));
	close(fd);
	pid = at_spawn_as(&user, &env, attack_forged_slots, NULL, &out);
	cr_assert_str_eq(at_hear(out, line, sizeof(line), 10000), "left");
	/* Its block blocks publishes until the time limit, then is dropped. */
	at_assert_service(&env);
	cr_assert(strstr(hb_log_text(&env), "given up"), "the forged block was never given up");
	/* A restart: the old block is not even seen.  With a 30 s limit,
	 * honouring it would hold root's changes for 30 s. */
	cr_assert_eq(hb_stop(&env), 0);
	at_restart(&env, &user, patient);
	at_assert_service(&env);
	cr_assert_eq(at_stat(&env, "publish_waiting"), 0);
	at_reap(pid);
	close(out);
}

/* -------------------------------------- finding 5: names from hbusd only */

/* Rewrite pub.q's header: its name becomes root's queue's. */
static void attack_queue_header(const struct hb_env *e, void *arg, int out)
{
	struct hbus_queue_hdr *h;
	size_t len;
	json_t *r;
	int fds[2], qfd = -1, fd = at_hello(e, fds);

	if (fd < 0)
		_exit(30);
	r = hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", "pub.q", "for",
		    "read");
	if (!hb_ok(r) || !(h = map_rw(qfd, &len)))
		_exit(31);
	json_decref(r);
	snprintf(h->name, sizeof(h->name), "%s", (const char *)arg);
	at_say(out, "renamed");
	/* And what the renamed queue would be worth: root's queue, read. */
	r = hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "open_queue", "name", "vault.q", "for",
		    "read");
	at_say(out, "vault %d", hb_code(r));
	json_decref(r);
}

static unsigned count_queues_named(const char *name)
{
	int fd = hb_session(&env, NULL);
	json_t *r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "queues"), *it;
	unsigned n = 0;
	size_t i;

	cr_assert(hb_ok(r));
	json_array_foreach(json_object_get(r, "items"), i, it)
		n += !strcmp(json_string_value(json_object_get(it, "name")), name);
	json_decref(r);
	close(fd);
	return n;
}

Test(attack_shm, queue_names_come_from_hbusd_never_from_a_header)
{
	char out[512], path[400], bus[256];
	int fd;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "pub.q", "durable", 1));
	close(fd);
	/* 1. The header disagrees with the state file at the next start. */
	cr_assert_eq(at_run_as(&user, &env, attack_queue_header, "vault.q", out, sizeof(out)), 0,
		     "%s", out);
	cr_assert_str_eq(out, "renamed\nvault 403\n");
	cr_assert_eq(hb_stop(&env), 0);
	at_restart(&env, &user, NULL);
	cr_assert(strstr(hb_log_text(&env), "(queue 'pub.q'): its header disagrees with the state "
		  "file"), "%s", hb_log_text(&env));
	cr_assert_eq(count_queues_named("vault.q"), 1);
	cr_assert_eq(count_queues_named("pub.q"), 1, "durable pub.q was not declared again");
	at_assert_service(&env);
	/* 2. No state file at all (lost): every queue file is a stray, and
	 * none is adopted under its header's name. */
	cr_assert_eq(at_run_as(&user, &env, attack_queue_header, "vault.evil", out, sizeof(out)),
		     0, "%s", out);
	cr_assert_eq(hb_stop(&env), 0);
	hb_bus_dir(&env, bus, sizeof(bus));
	snprintf(path, sizeof(path), "%s/topology.json", bus);
	cr_assert_eq(unlink(path), 0);
	at_restart(&env, &user, NULL);
	cr_assert(strstr(hb_log_text(&env), "no state or definitions name it"), "%s",
		  hb_log_text(&env));
	cr_assert_eq(count_queues_named("vault.evil"), 0, "a queue was adopted by its header");
	cr_assert_eq(count_queues_named("vault.q"), 1);
	at_assert_service(&env);
	cr_assert_eq(at_run_as(&user, &env, attack_queue_header, "vault.q", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "renamed\nvault 403\n");
}

/* ------------------------------------------ finding 3: ring walks bounded */

/* With a read grant on pub.q: every slot word a lap far ahead of the
 * cursors, one of them CLAIMED under our own owner id (so recovery must
 * republish it when we leave), then purge (read grant suffices) and
 * disconnect. */
/* As the attacking user: a session, and pub.q opened for reading (a
 * manual-ack handle under the session's owner id, in *owner unless NULL).
 * Exits 30/31 when hbusd refuses either. */
static hbus_queue *open_pub_for_read(const struct hb_env *e, int *fd_out, uint32_t *owner)
{
	static const char hello[] = "{\"op\":\"hello\"}";
	struct hbus_queue_opts o = { .ack_mode = HBUS_ACK_MANUAL };
	int fds[2], qfd = -1, fd = hb_connect(e);
	hbus_queue *q;
	json_t *r;

	if (fd < 0 || hb_send_raw(fd, hello, sizeof(hello) - 1))
		_exit(30);
	r = hb_recv_fds(fd, fds, 2);
	o.owner = (uint32_t)hb_int(r, "owner");
	json_decref(r);
	r = hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", "pub.q", "for",
		    "read");
	if (!hb_ok(r) || qfd < 0 || hbus_queue_open_fd(qfd, &o, &q))
		_exit(31);
	json_decref(r);
	*fd_out = fd;
	if (owner)
		*owner = o.owner;
	return q;
}

static void attack_ring_walks(const struct hb_env *e, void *arg, int out)
{
	uint64_t t0, lap = 1ull << 30;
	uint32_t owner;
	int fd;
	hbus_queue *q = open_pub_for_read(e, &fd, &owner);
	json_t *r;

	(void)arg;
	for (uint64_t i = 0; i <= q->mask; i++)
		atomic_store(&slot_at(q, i)->state, slot_word(lap + i, 0, SLOT_FREE));
	atomic_store(&slot_at(q, 3)->state, slot_word(lap + 7, owner, SLOT_CLAIMED));
	at_say(out, "forged");
	t0 = at_now_ms();
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "purge_queue", "name", "pub.q");
	at_say(out, "purge %d in %s", hb_code(r), at_now_ms() - t0 < AT_ROOT_MS ? "time" : "TOO LONG");
	json_decref(r);
	close(fd);
	at_say(out, "left");
}

Test(attack_shm, forged_slot_words_cannot_stall_hbusd)
{
	char out[512], *save = NULL;
	const char *l;
	int fd;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", "pub.q",
		   "capacity", 1024, "slot_size", 64));
	close(fd);
	cr_assert_eq(at_run_as(&user, &env, attack_ring_walks, NULL, out, sizeof(out)), 0, "%s",
		     out);
	cr_assert_str_eq(strtok_r(out, "\n", &save), "forged");
	l = strtok_r(NULL, "\n", &save);
	cr_assert(l && (!strcmp(l, "purge 0 in time") || !strcmp(l, "purge 406 in time")), "%s", l);
	cr_assert_str_eq(strtok_r(NULL, "\n", &save), "left");
	/* Its disconnect made hbusd recover (republish) the forged claim. */
	at_assert_service(&env);
	at_assert_service(&env);
}

/* What the user writes into its own record before it leaves. */
struct forged_rec {
	uint64_t xhold, jr_op, jr_aux, jr_target;
};

/* As the user: open pub.q to read, write its record's words (xhold, the
 * journal: docs/QUEUE.md) from *arg, and leave: hbusd recovers the record
 * when the session ends. */
static void attack_record(const struct hb_env *e, void *arg, int out)
{
	const struct forged_rec *f = arg;
	int fd;
	hbus_queue *q = open_pub_for_read(e, &fd, NULL);

	atomic_store(&q->rec->xhold, f->xhold);
	atomic_store(&q->rec->jr_aux, f->jr_aux);
	atomic_store(&q->rec->jr_target, f->jr_target);
	atomic_store(&q->rec->jr_op, f->jr_op);
	at_say(out, "forged");
	close(fd);
	at_say(out, "left");
}

/* Root publishes m0 m1 m2 into pub.q; the user, granted to read it,
 * forges its record once per entry of f and leaves, and hbusd recovers
 * it.  hbusd stays up and serves, and root gets each message once,
 * intact, flagged redelivered exactly for the bits of `flagged`. */
static void forge_records_then_consume(const struct forged_rec *f, size_t n, unsigned flagged)
{
	struct hbus_client_opts co = { .bus = env.bus, .run_dir = env.run };
	hbus_client *c = NULL;
	hbus_queue *q = NULL;
	struct hbus_msg m;
	unsigned seen = 0;
	char out[256], body[3] = "m0";
	int fd;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", "pub.q",
		   "capacity", 16, "slot_size", 64));
	close(fd);
	cr_assert_eq(hbus_connect(&co, &c), 0);
	for (char i = '0'; i < '3'; i++) {
		body[1] = i;
		cr_assert_eq(hbus_publish(c, "", "pub.q", NULL, 0, body, 2), 1);
	}
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(at_run_as(&user, &env, attack_record, (void *)&f[i], out, sizeof(out)),
			     0, "%s", out);
		cr_assert(strstr(out, "forged") && strstr(out, "left"), "%s", out);
		at_assert_service(&env);
	}
	cr_assert_eq(hbus_consume_open(c, "pub.q", HBUS_ACK_MANUAL, 0, &q), 0);
	while (hbus_queue_consume_wait(q, &m, 2000) == 0) {
		unsigned k;

		cr_assert_eq(m.body_len, 2);
		cr_assert_eq(((const char *)m.body)[0], 'm');
		k = (unsigned)(((const char *)m.body)[1] - '0');
		cr_assert(k < 3 && !(seen & (1u << k)), "m%u: unknown or twice", k);
		seen |= 1u << k;
		cr_assert_eq(!!(m.flags & HBUS_MSG_REDELIVERED), !!(flagged & (1u << k)),
			     "m%u's redelivered flag", k);
		cr_assert_eq(hbus_queue_ack(q, &m), 0);
	}
	cr_assert_eq(seen, 7u, "root got %#x of its three messages", seen);
	hbus_consume_close(c, q);
	hbus_close(c);
}

/* Forged xhold words (a slot past the ring, a state no claim has, a READY
 * message the user never took): the one the word named comes back flagged
 * (what the user could do to its slot word directly), the others do not. */
Test(attack_shm, forged_xhold_words_move_nothing_but_a_ready_message)
{
	const struct forged_rec f[] = {
		{ .xhold = (uint64_t)SLOT_CLAIMED << 60 | UINT64_C(0xffffff) << 32 },
		{ .xhold = UINT64_C(0x7) << 60 | UINT64_C(1) << 32 },
		{ .xhold = (uint64_t)SLOT_CLAIMED << 60 | UINT64_C(1) << 32 }, /* slot 1: "m1" */
	};

	forge_records_then_consume(f, sizeof(f) / sizeof(f[0]), 1u << 1);
}

/* Forged journals of the run kinds (layout 5), any length, over the READY
 * messages: recovery walks at most the ring, sets only the user's own
 * counters, and moves no message. */
Test(attack_shm, forged_run_journals_move_no_message)
{
	static const unsigned kinds[] = { JR_XCOMMIT, JR_XCLAIMRUN, JR_ACKRUN, JR_RELRUN };
	static const uint64_t lens[] = { 3, UINT64_C(1) << 40, UINT64_MAX };
	struct forged_rec f[12];
	size_t n = 0;

	for (size_t k = 0; k < 4; k++)
		for (size_t l = 0; l < 3; l++)
			f[n++] = (struct forged_rec){
				.jr_op = (uint64_t)kinds[k] << 56 | (uint64_t)l << 32,
				.jr_aux = lens[l],
				.jr_target = UINT64_MAX - l,
			};
	forge_records_then_consume(f, n, 0);
}
