/*
 * test_security.c - what stands between a local user and a bus
 * (docs/SECURITY.md), against the real hbusd: private files and
 * directories, descriptors only for the permission asked, other uids
 * refused or held to exactly their grant, a planted bus directory refused
 * (hostile clients: test_security_flood.c).
 *
 * Other uids run in forked children that drop to uid 65534 (nobody) and
 * report what they saw through a pipe, one line per request.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "testutil.h"

#define NOBODY 65534u

static struct hb_env env;

static void setup(void)
{
	hb_env_init(&env, "sec");
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 120);

static void start_with_perms(const char *json, const char *const *more)
{
	hb_start_perms(&env, json, more);
}

static void file_is_private(const char *path, mode_t mode)
{
	struct stat st;

	cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(st.st_uid, geteuid(), "%s is owned by uid %u", path, (unsigned)st.st_uid);
	cr_assert_eq(st.st_mode & 07777, mode, "%s has mode %04o, not %04o", path,
		     (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

Test(security, directories_and_files_are_private_to_hbusd)
{
	char dir[256], path[600];
	struct dirent *de;
	unsigned queues = 0;
	int fd;
	DIR *d;

	start_with_perms(NULL, NULL);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "plain");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "kept", "durable", 1));
	close(fd);

	file_is_private(env.run, 0700);
	file_is_private(env.sock, 0600);
	hb_bus_dir(&env, dir, sizeof(dir));
	file_is_private(dir, 0700);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		file_is_private(path, 0600); /* superblock, routes, state, queues */
		queues += !strncmp(de->d_name, "queue.", 6);
	}
	closedir(d);
	cr_assert_eq(queues, 2);
	file_is_private(env.defs, 0640);
}

/* ------------------------------------------------------ as another user */

/* In the child, as uid: one request per entry, one line per reply:
 * "code|fd|error", fd 1 when a descriptor came with it.  A queue descriptor
 * is mapped with the session's owner id and one message is consumed from
 * it: "|seq=N" or "|empty".  "path:P" is not sent but tried as an open(2)
 * of P: "path|0|<errno text>" (or "path|1|" if it opened).  No Criterion
 * asserts in a child: it reports by exit status. */
static void child_as(uid_t uid, int out, const char *const *reqs)
{
	char line[700];
	uint32_t owner = 0;
	int fd, n;

	tu_become(uid);
	fd = hb_connect(&env);
	if (fd < 0) {
		n = snprintf(line, sizeof(line), "connect|0|%s\n", strerror(errno));
		_exit(write(out, line, (size_t)n) == n ? 0 : 23);
	}
	for (; *reqs; reqs++) {
		struct hbus_queue_opts o = { .ack_mode = HBUS_ACK_AUTO };
		struct tu_payload p;
		struct hbus_msg m;
		hbus_queue *q;
		json_t *r;
		int rfd = -1;

		if (!strncmp(*reqs, "path:", 5)) {
			rfd = open(*reqs + 5, O_RDWR);
			n = snprintf(line, sizeof(line), "path|%d|%s\n", rfd >= 0,
				     rfd >= 0 ? "" : strerror(errno));
			if (rfd >= 0)
				close(rfd);
		} else {
			if (hb_send_raw(fd, *reqs, strlen(*reqs)))
				_exit(22);
			r = hb_recv(fd, &rfd);
			if (hb_ok(r) && json_object_get(r, "owner"))
				owner = (uint32_t)hb_int(r, "owner");
			n = snprintf(line, sizeof(line), "%d|%d|%s", hb_code(r), rfd >= 0, hb_error(r));
			o.owner = owner;
			if (rfd >= 0 && json_object_get(r, "qid") && hbus_queue_open_fd(rfd, &o, &q) == 0) {
				if (hbus_queue_consume(q, &m) == 0 && tu_payload_ok(&m, &p))
					n += snprintf(line + n, sizeof(line) - (size_t)n, "|seq=%u", p.seq);
				else
					n += snprintf(line + n, sizeof(line) - (size_t)n, "|empty");
				hbus_queue_close(q);
			}
			n += snprintf(line + n, sizeof(line) - (size_t)n, "\n");
			if (rfd >= 0)
				close(rfd);
			json_decref(r);
		}
		if (write(out, line, (size_t)n) != n)
			_exit(23);
	}
	_exit(0);
}

static void results_as(uid_t uid, const char *const *reqs, char *buf, size_t cap)
{
	tu_output_as(child_as, uid, reqs, buf, cap);
}

/* The next line of a results_as buffer (strtok_r over it). */
static const char *next_line(char **save, char *buf)
{
	const char *l = strtok_r(buf, "\n", save);

	cr_assert_not_null(l, "fewer reply lines than requests");
	return l;
}

static void expect_line(const char *line, const char *prefix)
{
	cr_assert(!strncmp(line, prefix, strlen(prefix)), "got '%s', expected '%s...'", line,
		  prefix);
}

static void fill_queue(int fd, uint32_t owner, const char *name, uint32_t n)
{
	hbus_queue *q = hb_open_queue(fd, name, "write", owner, HBUS_ACK_AUTO);
	uint32_t i;

	for (i = 0; i < n; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, i), 0);
	hbus_queue_close(q);
}

Test(security, read_grant_on_pub_gives_exactly_that)
{
	static const char perms[] =
		"{\"users\":{\"nobody\":{\"configure\":\"\",\"write\":\"\",\"read\":\"^pub\\\\..*\"}}}";
	char out[4096], qpath[400], dir[256], pathreq[420], *save = NULL;
	const char *reqs[16];
	uint32_t owner;
	int fd, n = 0;
	json_t *r;

	start_with_perms(perms, NULL);
	fd = hb_session(&env, &owner);
	hb_declare_queue(fd, "pub.ticks");
	hb_declare_queue(fd, "priv.orders");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "pub.x"));
	fill_queue(fd, owner, "pub.ticks", 3);
	fill_queue(fd, owner, "priv.orders", 3);
	r = hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "priv.orders",
		    "passive", 1);
	hb_bus_dir(&env, dir, sizeof(dir));
	snprintf(qpath, sizeof(qpath), "%s/queue.%lld", dir, (long long)hb_int(r, "qid"));
	json_decref(r);
	snprintf(pathreq, sizeof(pathreq), "path:%s", qpath);

	reqs[n++] = "{\"op\":\"hello\"}";
	reqs[n++] = "{\"op\":\"open_queue\",\"name\":\"pub.ticks\",\"for\":\"read\"}";
	reqs[n++] = "{\"op\":\"consume\",\"queue\":\"pub.ticks\"}";
	reqs[n++] = "{\"op\":\"open_queue\",\"name\":\"pub.ticks\",\"for\":\"write\"}";
	reqs[n++] = "{\"op\":\"open_queue\",\"name\":\"priv.orders\",\"for\":\"read\"}";
	reqs[n++] = "{\"op\":\"consume\",\"queue\":\"priv.orders\"}";
	reqs[n++] = "{\"op\":\"declare_queue\",\"name\":\"pub.new\"}";
	reqs[n++] = "{\"op\":\"delete_queue\",\"name\":\"pub.ticks\"}";
	reqs[n++] = "{\"op\":\"bind\",\"source\":\"pub.x\",\"destination\":\"pub.ticks\"}";
	reqs[n++] = "{\"op\":\"purge_queue\",\"name\":\"priv.orders\"}";
	reqs[n++] = pathreq;
	reqs[n] = NULL;
	results_as(NOBODY, reqs, out, sizeof(out));

	cr_assert_str_eq(next_line(&save, out), "0|1|");  /* hello: the routes file */
	cr_assert_str_eq(next_line(&save, NULL), "0|1||seq=0");
	cr_assert_str_eq(next_line(&save, NULL), "0|1||seq=1");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no write permission on queue 'pub.ticks'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no read permission on queue 'priv.orders'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no read permission on queue 'priv.orders'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no configure permission on queue 'pub.new'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no configure permission on queue 'pub.ticks'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no write permission on queue 'pub.ticks'");
	cr_assert_str_eq(next_line(&save, NULL),
		"403|0|access refused: user 'nobody' (uid 65534) has no read permission on queue 'priv.orders'");
	cr_assert_str_eq(next_line(&save, NULL), "path|0|Permission denied",
			 "a queue file was reachable by path");

	/* Nothing of it touched what nobody was refused: all 3 still there. */
	r = hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "priv.orders",
		    "passive", 1);
	cr_assert_eq(hb_int(r, "messages"), 3);
	json_decref(r);
	close(fd);
}

Test(security, other_uid_without_a_grant_is_refused)
{
	static const char *const reqs[] = {
		"{\"op\":\"declare_queue\",\"name\":\"q\"}", /* before hello */
		"{\"op\":\"hello\"}",
		"{\"op\":\"declare_queue\",\"name\":\"q\"}", /* after a refused hello */
		"{\"op\":\"consume\",\"queue\":\"q\"}",
		NULL,
	};
	char out[4096], *save = NULL;

	/* No permissions file: the socket is out of reach of other users. */
	start_with_perms(NULL, NULL);
	results_as(NOBODY, reqs, out, sizeof(out));
	cr_assert_str_eq(out, "connect|0|Permission denied\n");
	/* An admin who opened it up by hand still has hbusd's own check. */
	cr_assert_eq(chmod(env.run, 0755), 0);
	cr_assert_eq(chmod(env.sock, 0666), 0);
	results_as(NOBODY, reqs, out, sizeof(out));
	expect_line(next_line(&save, out), "503|0|op 'declare_queue' before hello");
	expect_line(next_line(&save, NULL), "403|0|access refused for user 'nobody' (uid 65534): "
					    "hbusd has no permissions file");
	expect_line(next_line(&save, NULL), "503|0|op 'declare_queue' before hello");
	expect_line(next_line(&save, NULL), "503|0|op 'consume' before hello");

	/* A file that grants someone else, not nobody. */
	hb_stop_clean(&env);
	start_with_perms("{\"users\":{\"65533\":{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}}}",
			 NULL);
	results_as(NOBODY, reqs + 1, out, sizeof(out));
	save = NULL;
	expect_line(next_line(&save, out), "403|0|access refused for user 'nobody' (uid 65534): "
					   "no entry for it or its groups");
	expect_line(next_line(&save, NULL), "503|0|op 'declare_queue' before hello");
}

Test(security, planted_bus_or_run_directory_is_refused)
{
	char dir[256], out[4096];
	int fd;

	hb_bus_dir(&env, dir, sizeof(dir));
	/* A bus directory others may write to.  (One another user made is
	 * moved aside: test_attack_ctl.c,
	 * a_squatted_bus_directory_does_not_stop_hbusd.) */
	cr_assert_eq(mkdir(dir, 0777), 0);
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, "writable by every user (mode 0777)"), "%s", out);
	cr_assert_eq(rmdir(dir), 0);
	/* A run dir others may write to (they could swap the socket). */
	cr_assert(mkdir(env.run, 0700) == 0 || errno == EEXIST); /* made by the failed starts */
	cr_assert_eq(chmod(env.run, 0775), 0);
	cr_assert_eq(hb_start_fail(&env, NULL, out, sizeof(out)), 1);
	cr_assert(strstr(out, "run dir") && strstr(out, "writable by its group"), "%s", out);
	cr_assert_eq(chmod(env.run, 0700), 0);
	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	close(fd);
}
