/*
 * test_attack_ctl.c - a granted user against hbusd's control side
 * (docs/SECURITY.md, issue "Trust boundary"): the session table, import,
 * files and directories, reply memory, control characters.  Each test runs
 * the attacker as a fresh unprivileged user with a narrow grant (attack.h)
 * and checks the three things: the attack fails or is contained, hbusd
 * answers root within 2 s, root's message through an exchange reaches a
 * queue the attacker has no grant on, byte for byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attack.h"

AT_SUITE(attack_ctl, "atk", 300);

/* Send each request of reqs (NULL-terminated) on one session, say one line
 * per reply: "code|error". */
static void attack_requests(const struct hb_env *e, void *arg, int out)
{
	const char *const *reqs = arg;
	int fds[2], fd = at_hello(e, fds);

	if (fd < 0)
		_exit(30);
	for (; *reqs; reqs++) {
		json_t *r;

		if (hb_send_raw(fd, *reqs, strlen(*reqs)))
			_exit(31);
		r = hb_recv(fd, NULL);
		at_say(out, "%d|%s", hb_code(r), hb_error(r));
		json_decref(r);
	}
}

static size_t list_count(const char *what)
{
	int fd = hb_session(&env, NULL);
	size_t n = hb_list_count(fd, what);

	close(fd);
	return n;
}

/* ------------------------------------------------ finding 4: session table */

/* A live process looping hello, open_queue, close: every closed session
 * leaves an owner hbusd must keep while the process runs. */
static void attack_session_loop(const struct hb_env *e, void *arg, int out)
{
	unsigned ok = 0, refused = 0, i, n = *(unsigned *)arg;
	char last[400] = "";

	for (i = 0; i < n; i++) {
		int fds[2], qfd = -1, fd = hb_connect(e);
		json_t *r;

		if (fd < 0)
			_exit(30);
		hb_send_raw(fd, "{\"op\":\"hello\"}", 14);
		r = hb_recv_fds(fd, fds, 2);
		if (!hb_ok(r)) {
			refused++;
			snprintf(last, sizeof(last), "%s", hb_error(r));
		} else {
			json_decref(hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name",
					    "pub.q", "for", "read"));
			ok += qfd >= 0;
		}
		json_decref(r);
		for (int k = 0; k < 2; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		if (qfd >= 0)
			close(qfd);
		close(fd);
	}
	at_say(out, "%u|%u|%s", ok, refused, last);
	for (;;)
		pause(); /* alive: its owners stay until it exits */
}

Test(attack_ctl, session_table_cannot_be_exhausted_by_a_looping_process)
{
	static const char *const cap[] = { "--max-sessions-per-user", "64", NULL };
	unsigned loops = 300, spins = 0;
	char line[512], want[300];
	int64_t base;
	int out, fd;
	pid_t pid;

	at_start(&env, &user, cap);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "pub.q"));
	close(fd);
	base = at_stat(&env, "session_table");
	pid = at_spawn_as(&user, &env, attack_session_loop, &loops, &out);
	at_hear(out, line, sizeof(line), 60000);
	snprintf(want, sizeof(want), "64|236|too many sessions of user '%s': limit of 64 reached "
		 "(hbusd --max-sessions-per-user); ", user.name);
	cr_assert(!strncmp(line, want, strlen(want)) &&
		  strstr(line, " of them closed, kept until their processes exit"), "%s", line);
	/* Its owners are held (it still runs), and counted: the table holds
	 * them and nothing more. */
	while (at_stat(&env, "orphans") != 64) {
		cr_assert_lt(spins, 500, "%lld owners held, not 64", (long long)at_stat(&env, "orphans"));
		hb_backoff(&spins);
	}
	spins = 0;
	cr_assert_leq(at_stat(&env, "session_table"), base + 64 + 1);
	at_assert_service(&env);
	/* It exits: everything it held is recovered and the table is back. */
	at_reap(pid);
	close(out);
	while (at_stat(&env, "orphans") != 0 || at_stat(&env, "session_table") > base) {
		cr_assert_lt(spins, 500, "owners of an exited process stayed");
		hb_backoff(&spins);
	}
	at_assert_service(&env);
}

/* ------------------------------------- finding 6: import checks = declare */

Test(attack_ctl, import_makes_the_checks_declare_makes)
{
	static const char *const reqs[] = {
		"{\"op\":\"declare_exchange\",\"name\":\"alice.x\",\"alternate_exchange\":\"vault.x\"}",
		"{\"op\":\"import\",\"definitions\":{\"hbus_definitions\":1,\"exchanges\":[{\"name\":"
		"\"alice.x\",\"type\":\"direct\",\"alternate_exchange\":\"vault.x\"}]}}",
		"{\"op\":\"declare_queue\",\"name\":\"alice.q\",\"dead_letter_exchange\":\"vault.x\"}",
		"{\"op\":\"import\",\"definitions\":{\"hbus_definitions\":1,\"queues\":[{\"name\":"
		"\"alice.q\",\"dead_letter_exchange\":\"vault.x\"}]}}",
		/* What the grant allows, it allows both ways. */
		"{\"op\":\"declare_exchange\",\"name\":\"alice.y\",\"alternate_exchange\":\"alice.z\"}",
		"{\"op\":\"import\",\"definitions\":{\"hbus_definitions\":1,\"queues\":[{\"name\":"
		"\"alice.r\",\"dead_letter_exchange\":\"alice.z\"}]}}",
		NULL,
	};
	char out[4096], *save = NULL, want[300];
	const char *l;

	at_start(&env, &user, NULL);
	cr_assert_eq(at_run_as(&user, &env, attack_requests, (void *)reqs, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "access refused: user '%s' (uid %u) has no write permission "
		 "on exchange 'vault.x'", user.name, (unsigned)user.uid);
	l = strtok_r(out, "\n", &save);
	cr_assert(l && !strncmp(l, "403|", 4) && strstr(l, want), "declare: %s", l);
	l = strtok_r(NULL, "\n", &save);
	cr_assert(l && !strncmp(l, "403|", 4) && strstr(l, want), "import: %s", l);
	l = strtok_r(NULL, "\n", &save);
	cr_assert(l && !strncmp(l, "403|", 4) && strstr(l, want), "declare: %s", l);
	l = strtok_r(NULL, "\n", &save);
	cr_assert(l && !strncmp(l, "403|", 4) && strstr(l, want), "import: %s", l);
	cr_assert_str_eq(strtok_r(NULL, "\n", &save), "0|");
	cr_assert_str_eq(strtok_r(NULL, "\n", &save), "0|");
	/* Nothing refused was made: the default, vault.x, alice.y; vault.q,
	 * alice.r. */
	cr_assert_eq(list_count("exchanges"), 3);
	cr_assert_eq(list_count("queues"), 2);
	at_assert_service(&env);
}

/* --------------------------------------------------- finding 7: files */

static void attack_plant_tmp(const struct hb_env *e, void *arg, int out)
{
	const char *const *p = arg; /* defs path, victim, hbusd pid */
	char link[400];
	int i, n = 0;

	(void)e;
	/* The old name was <defs>.tmp.<hbusd pid>: plant it, and a few
	 * neighbours in case of a fork. */
	for (i = -2; i <= 2; i++) {
		snprintf(link, sizeof(link), "%s.tmp.%d", p[0], atoi(p[2]) + i);
		n += symlink(p[1], link) == 0;
	}
	at_say(out, "planted %d", n);
}

static void attack_symlink_dir(const struct hb_env *e, void *arg, int out)
{
	const char *const *p = arg; /* link, target */

	(void)e;
	at_say(out, "%s", symlink(p[1], p[0]) == 0 ? "planted" : strerror(errno));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

static void file_is(const char *path, const char *text)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	size_t n;

	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	cr_assert_str_eq(buf, text, "%s was changed", path);
}

Test(attack_ctl, files_are_opened_safely)
{
	char shared[200], defs[260], victim[200], pidstr[16], evil[200], run[260], locked[200];
	char out[512], pidfile[300];
	const char *extra[4] = { "--definitions", defs, NULL };
	const char *plant[3] = { defs, victim, pidstr };
	const char *dirlink[2] = { run, locked };
	struct stat st;
	int fd;

	/* 1. The definitions file in a directory everyone may write to (the
	 * sticky bit, like /tmp): the attacker plants links at the temp
	 * file names it can guess. */
	snprintf(shared, sizeof(shared), "%s/shared", env.base);
	snprintf(defs, sizeof(defs), "%s/defs.json", shared);
	snprintf(victim, sizeof(victim), "%s/victim", env.base);
	cr_assert_eq(mkdir(shared, 01777), 0);
	cr_assert_eq(chmod(shared, 01777), 0);
	write_file(victim, "precious\n", 0600);
	at_start(&env, &user, extra);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)env.pid);
	cr_assert_eq(at_run_as(&user, &env, attack_plant_tmp, (void *)plant, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "planted 5\n");
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "vault.more",
		   "durable", 1));
	close(fd);
	file_is(victim, "precious\n");
	cr_assert_eq(lstat(defs, &st), 0);
	cr_assert(S_ISREG(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0640,
		  "definitions file: mode %o uid %u", st.st_mode, st.st_uid);
	at_assert_service(&env);
	cr_assert_eq(hb_stop(&env), 0);

	/* 2. A run dir whose parent the attacker owns: it makes the run dir a
	 * link to a directory of root's.  hbusd refuses it, and changes
	 * nothing through it (it used to chmod it first). */
	snprintf(evil, sizeof(evil), "%s/evil", env.base);
	snprintf(run, sizeof(run), "%s/run", evil);
	snprintf(locked, sizeof(locked), "%s/locked", env.base);
	cr_assert_eq(mkdir(evil, 0755), 0);
	cr_assert_eq(chown(evil, user.uid, user.gid), 0);
	cr_assert_eq(mkdir(locked, 0700), 0);
	cr_assert_eq(at_run_as(&user, &env, attack_symlink_dir, (void *)dirlink, out, sizeof(out)),
		     0);
	cr_assert_str_eq(out, "planted\n");
	{
		static char perms[300];
		const char *args[] = { "--run-dir", run, "--permissions", perms, NULL };

		snprintf(perms, sizeof(perms), "%s/permissions.json", env.base); /* grants others */
		cr_assert_eq(hb_start_fail(&env, args, out, sizeof(out)), 1);
		cr_assert(strstr(out, "is a symbolic link"), "%s", out);
	}
	cr_assert_eq(stat(locked, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "hbusd changed the mode through the link");

	/* 3. A pid file that is a link (only root can plant one in a run dir
	 * hbusd trusts: this is the last line of defence, O_NOFOLLOW). */
	snprintf(pidfile, sizeof(pidfile), "%s/%s.pid", env.run, env.bus);
	cr_assert_eq(symlink(victim, pidfile), 0);
	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, "symbolic link"), "%s", out);
	file_is(victim, "precious\n");
	cr_assert_eq(unlink(pidfile), 0);
	at_restart(&env, &user, extra);
	at_assert_service(&env);
}

/* ------------------------------------ finding 8: bus directory squatting */

static void attack_squat(const struct hb_env *e, void *arg, int out)
{
	const char *dir = arg;
	char path[400];
	int fd;

	(void)e;
	if (mkdir(dir, 0777) != 0 || chmod(dir, 0777) != 0)
		_exit(30);
	/* Planted files hbusd must never take as its own. */
	snprintf(path, sizeof(path), "%s/superblock", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0666);
	if (fd < 0 || write(fd, "junk", 4) != 4)
		_exit(31);
	close(fd);
	at_say(out, "squatted");
}

static void attack_squat_link(const struct hb_env *e, void *arg, int out)
{
	const char *const *p = arg;

	(void)e;
	if (mkdir(p[1], 0700) != 0 || symlink(p[1], p[0]) != 0)
		_exit(30);
	at_say(out, "linked");
}

static unsigned untrusted_entries(void)
{
	char cmd[400], buf[64] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls -d '%s'/hbus-%s.untrusted-uid%u-* 2>/dev/null | wc -l",
		 env.shm, env.bus, (unsigned)user.uid);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	pclose(f);
	return (unsigned)atoi(buf);
}

Test(attack_ctl, a_squatted_bus_directory_does_not_stop_hbusd)
{
	char dir[256], mine[300], out[256], aside[300];
	const char *link[2] = { dir, mine };
	struct stat st;

	/* The shared-memory base as /dev/shm is: everyone may make entries. */
	cr_assert_eq(chmod(env.shm, 01777), 0);
	hb_bus_dir(&env, dir, sizeof(dir));
	cr_assert_eq(at_run_as(&user, &env, attack_squat, dir, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "squatted\n");
	at_start(&env, &user, NULL);
	cr_assert(strstr(hb_log_text(&env), "made before hbusd: never trusted, moved to"), "%s",
		  hb_log_text(&env));
	cr_assert_eq(untrusted_entries(), 1);
	cr_assert_eq(lstat(dir, &st), 0);
	cr_assert(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0700);
	at_assert_service(&env);

	/* A symbolic link squatted in its place (the bus was never started,
	 * or its directory was removed). */
	cr_assert_eq(hb_stop(&env), 0);
	snprintf(aside, sizeof(aside), "%s.root-moved", dir);
	cr_assert_eq(rename(dir, aside), 0);
	snprintf(mine, sizeof(mine), "%s/attackers", env.shm);
	cr_assert_eq(at_run_as(&user, &env, attack_squat_link, (void *)link, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "linked\n");
	at_start(&env, &user, NULL);
	cr_assert_eq(untrusted_entries(), 2);
	cr_assert_eq(lstat(dir, &st), 0);
	cr_assert(S_ISDIR(st.st_mode) && st.st_uid == 0, "hbusd uses the attacker's link");
	at_assert_service(&env);
}

/* ------------------------------------------ finding 9: reply memory */

/* n sessions, each asking for the queue list as fast as the socket takes
 * requests, and never reading a reply. */
static void attack_unread_replies(const struct hb_env *e, void *arg, int out)
{
	static const char req[] = "{\"op\":\"list\",\"what\":\"queues\"}";
	unsigned i, n = *(unsigned *)arg, sent = 0;
	int fds[2];

	for (i = 0; i < n; i++) {
		int fd = at_hello(e, fds);

		if (fd < 0)
			_exit(30);
		close(fds[0]);
		close(fds[1]);
		while (send(fd, req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) > 0 && sent < 1u << 20)
			sent++;
	}
	at_say(out, "sent %u", sent);
	for (;;)
		pause();
}

Test(attack_ctl, unread_replies_take_bounded_memory)
{
	unsigned sessions = 40, i, spins = 0;
	unsigned long before, after;
	int64_t pending;
	char line[128], name[32];
	int out, fd;
	pid_t pid;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	for (i = 0; i < 600; i++) { /* list replies of ~100 KiB */
		snprintf(name, sizeof(name), "pub.padding.queue.%04u", i);
		OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i}", "op", "declare_queue", "name", name,
			   "capacity", 2, "slot_size", 64));
	}
	close(fd);
	before = at_rss_kib(env.pid);
	pid = at_spawn_as(&user, &env, attack_unread_replies, &sessions, &out);
	at_hear(out, line, sizeof(line), 60000);
	cr_log_info("attacker: %s", line);
	/* Let hbusd read what it will. */
	while (spins < 100)
		hb_backoff(&spins);
	after = at_rss_kib(env.pid);
	pending = at_stat(&env, "pending_reply_bytes");
	cr_log_info("hbusd RSS %lu KiB before, %lu KiB with %u sessions not reading; %lld reply "
		    "bytes held", before, after, sessions, (long long)pending);
	/* 8 MiB of replies for the user, plus one reply (~100 KiB) for each of
	 * its sessions that had nothing waiting when the user went over. */
	cr_assert_gt(pending, 1 << 20, "the attacker's replies did not pile up: no test");
	cr_assert_lt(pending, (8 << 20) + sessions * (256 << 10), "%lld reply bytes held",
		     (long long)pending);
#ifndef __SANITIZE_ADDRESS__ /* ASan keeps what is freed (quarantine): RSS says nothing */
	cr_assert_lt(after, before + 24 * 1024, "hbusd grew by %lu KiB", after - before);
#endif
	at_assert_service(&env);
	at_reap(pid);
	close(out);
}

/* ------------------------------------- finding 10: control characters */

Test(attack_ctl, control_characters_are_refused_naming_the_byte)
{
	static const char *const reqs[] = {
		"{\"op\":\"declare_queue\",\"name\":\"alice.\\n2026-12-05 hbusd: FORGED line\"}",
		"{\"op\":\"declare_queue\",\"name\":\"alice.\\u001b[31mRED\"}",
		"{\"op\":\"declare_exchange\",\"name\":\"alice.\\u009b2J\"}",
		"{\"op\":\"consume\",\"queue\":\"pub.q\",\"consumer_tag\":\"bell\\u0007\"}",
		"{\"op\":\"bind\",\"source\":\"\",\"destination\":\"alice.q\",\"key\":\"k\\r\"}",
		"{\"op\":\"list\",\"what\":\"queues\",\"x\\ny\":1}",
		"{\"op\":\"declare_queue\",\"name\":\"alice.caf\\u00e9 ok\"}",
		NULL,
	};
	static const char *const want[] = {
		"declare_queue: field 'name' holds control character 0x0a at byte 6",
		"declare_queue: field 'name' holds control character 0x1b at byte 6",
		"declare_exchange: field 'name' holds control character U+009B at byte 6",
		"consume: field 'consumer_tag' holds control character 0x07 at byte 4",
		"bind: field 'key' holds control character 0x0d at byte 1",
		"list: field name '(not shown)' holds control character 0x0a at byte 1",
		"", /* printable UTF-8 is fine */
	};
	char out[4096], *save = NULL;
	const char *log;
	unsigned i;
	int fd;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "pub.q"));
	close(fd);
	cr_assert_eq(at_run_as(&user, &env, attack_requests, (void *)reqs, out, sizeof(out)), 0);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *l = strtok_r(i ? NULL : out, "\n", &save);
		char full[300];

		if (want[i][0])
			snprintf(full, sizeof(full), "406|%s: names, keys and tags must be printable",
				 want[i]);
		else
			snprintf(full, sizeof(full), "0|");
		cr_assert_str_eq(l ? l : "(no reply)", full);
	}
	log = hb_log_text(&env);
	cr_assert_null(strstr(log, "FORGED"), "a refused name reached the log");
	cr_assert_null(strstr(log, "\x1b"), "an escape sequence reached the log");
	cr_assert_null(strstr(log, "\x07"), "a bell reached the log");
	cr_assert_eq(list_count("queues"), 3); /* vault.q, pub.q, alice.café ok */
	at_assert_service(&env);
}
