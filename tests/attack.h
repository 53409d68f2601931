/*
 * attack.h - what every trust-boundary test (test_attack_*.c,
 * test_scribbler.c; docs/SECURITY.md) needs: an unprivileged Unix user of
 * its own, an hbusd that grants that user a narrow set of names, the
 * attacker's code run as that user, and the three things that must hold
 * after any attack:
 *   1. the attack failed or was contained (each test's own assertions);
 *   2. hbusd answers root within 2 s (at_root_served);
 *   3. a message root publishes through an exchange reaches a queue the
 *      attacker has no grant on, byte for byte (at_root_delivers).
 *
 * The user (hbt<pid><letter>) is made with useradd and removed with
 * userdel by a reaper process that outlives the test process, so it goes
 * even when a test fails or crashes; the attacker's processes die with the
 * test (PR_SET_PDEATHSIG).
 *
 * The grant (AT_GRANT): configure and write on alice.*, read on pub.* and
 * alice.*.  Root's own names (vault.*) are out of the attacker's reach.
 */
#ifndef HBUS_ATTACK_H
#define HBUS_ATTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hbusd_harness.h"

#define AT_GRANT "{\"configure\":\"^alice\\\\..*\",\"write\":\"^alice\\\\..*\"," \
		 "\"read\":\"^(pub|alice)\\\\..*\"}"
#define AT_ROOT_MS 2000 /* the longest root may wait for an answer */

struct at_user {
	char name[32];
	uid_t uid;
	gid_t gid;
	pid_t reaper;
	int reaper_fd;
};

/* Make a fresh user; asserts.  at_user_remove: now (the reaper does it at
 * exit otherwise). */
void at_user_create(struct at_user *u);
void at_user_remove(struct at_user *u);
/* A test's set-up and tear-down: the user and an hbusd environment. */
void at_init(struct hb_env *e, struct at_user *u, const char *bus);
void at_fini(struct hb_env *e, struct at_user *u);
/* A Criterion suite of attacks: `env` and `user` for each test of it. */
#define AT_SUITE(suite, bus, seconds)                                                      \
	static struct hb_env env;                                                          \
	static struct at_user user;                                                        \
	static void at_suite_init(void) { at_init(&env, &user, (bus)); }                   \
	static void at_suite_fini(void) { at_fini(&env, &user); }                          \
	TestSuite(suite, .init = at_suite_init, .fini = at_suite_fini, .timeout = (seconds))

/* Start hbusd for e with a permissions file granting u AT_GRANT (its
 * socket is then reachable by everyone), plus extra arguments (may be
 * NULL).  Root declares the vault: exchange vault.x (direct, durable),
 * queue vault.q (durable) bound with key "k". */
void at_start(struct hb_env *e, const struct at_user *u, const char *const *extra);
/* The same without declaring anything (a restart of the same bus). */
void at_restart(struct hb_env *e, const struct at_user *u, const char *const *extra);

/* Run fn(e, arg, out) as u in a child (it must _exit; no Criterion asserts
 * in it), collect what it writes to out into buf; returns its exit status
 * (0 = ok).  at_spawn_as: the same without waiting (the child reports to
 * *out_fd, the read end; kill/wait it with at_reap). */
typedef void (*at_fn)(const struct hb_env *e, void *arg, int out);
int at_run_as(const struct at_user *u, const struct hb_env *e, at_fn fn, void *arg, char *buf,
	      size_t cap);
pid_t at_spawn_as(const struct at_user *u, const struct hb_env *e, at_fn fn, void *arg,
		  int *out_fd);
void at_reap(pid_t pid);

/* In an attacker child: write a line to out (printf style). */
void at_say(int out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* In the test: the next line the attacker said (without '\n'), waiting at
 * most timeout_ms; asserts one came.  Lines longer than cap are cut. */
const char *at_hear(int fd, char *buf, size_t cap, int timeout_ms);
/* In an attacker child: hello on a fresh connection; fds[0] the routes
 * file, fds[1] the reader block (-1 when missing).  -1: no session. */
int at_hello(const struct hb_env *e, int fds[2]);

/* Root connects, says hello, declares and deletes a queue (a topology
 * change: its reply waits for the routing table) and lists the queues,
 * each answered within AT_ROOT_MS; asserts.  Returns the slowest, in ms. */
unsigned at_root_served(const struct hb_env *e);
/* Root publishes a random body of n bytes through vault.x (libhbus: routed
 * in process) and consumes it from vault.q: the very same bytes; asserts. */
void at_root_delivers(const struct hb_env *e, size_t n);
/* Both. */
void at_assert_service(const struct hb_env *e);

/* hbusd's resident memory (VmRSS), in KiB. */
unsigned long at_rss_kib(pid_t pid);
uint64_t at_now_ms(void);
/* The stat reply's integer field k. */
int64_t at_stat(const struct hb_env *e, const char *k);

#endif
