/*
 * test_scribbler.c - the bluntest hostile client (docs/SECURITY.md): with a
 * narrow grant, it takes every descriptor hbusd will hand it (the routes
 * file and its reader block at hello, a queue it may read, a consumer on
 * it, a consumer on a protected queue, a queue of its own it may write),
 * maps each one writable wherever the kernel lets it (not a protected
 * queue's data file), fills every byte with random data, asks for the
 * purges its grant allows and disconnects.  Then again after hbusd
 * restarts.  Each time: hbusd answers root within 2 s, and root's message
 * through an exchange reaches the queue the scribbler has no grant on,
 * byte for byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attack.h"

AT_SUITE(scribbler, "scr", 300);

/* Fill all of fd that can be mapped writable; one line saying what. */
static void scribble_fd(int out, const char *what, int fd)
{
	struct stat st;
	size_t off, len;
	uint8_t *p;

	if (fd < 0 || fstat(fd, &st) != 0) {
		at_say(out, "%s: no descriptor", what);
		return;
	}
	len = (size_t)st.st_size;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		at_say(out, "%s: not writable (%s)", what, strerror(errno));
		return;
	}
	for (off = 0; off < len;) {
		ssize_t n = getrandom(p + off, len - off > (1u << 20) ? 1u << 20 : len - off, 0);

		if (n <= 0)
			_exit(40);
		off += (size_t)n;
	}
	munmap(p, len);
	at_say(out, "%s: scribbled", what);
}

static int fd_of(int s, const char *fmt, const char *a, const char *b, const char *c)
{
	int fd = -1;
	json_t *r = hb_call(s, &fd, fmt, "op", a, "name", b, "for", c);

	json_decref(r);
	return fd;
}

/* A consumer of a protected queue: both of its descriptors. */
static void consume_protected(int s, int pf[2])
{
	static const char req[] = "{\"op\":\"consume\",\"queue\":\"pub.p\"}";

	pf[0] = pf[1] = -1;
	if (hb_send_raw(s, req, sizeof(req) - 1) == 0)
		json_decref(hb_recv_fds(s, pf, 2));
}

static void scribble(const struct hb_env *e, void *arg, int out)
{
	int fds[2], s = at_hello(e, fds), q_read, q_own, q_cons = -1, pf[2];
	json_t *r;

	(void)arg;
	if (s < 0)
		_exit(30);
	json_decref(hb_call(s, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "alice.own"));
	q_own = fd_of(s, "{s:s, s:s, s:s}", "open_queue", "alice.own", "write");
	q_read = fd_of(s, "{s:s, s:s, s:s}", "open_queue", "pub.q", "read");
	r = hb_call(s, &q_cons, "{s:s, s:s}", "op", "consume", "queue", "pub.q");
	json_decref(r);
	consume_protected(s, pf);
	scribble_fd(out, "routes", fds[0]);
	scribble_fd(out, "reader block", fds[1]);
	scribble_fd(out, "own queue", q_own);
	scribble_fd(out, "read queue", q_read);
	scribble_fd(out, "consumer", q_cons);
	scribble_fd(out, "protected state", pf[0]);
	scribble_fd(out, "protected data", pf[1]);
	r = hb_call(s, NULL, "{s:s, s:s}", "op", "purge_queue", "name", "pub.q");
	at_say(out, "purge pub.q: %d", hb_code(r));
	json_decref(r);
	r = hb_call(s, NULL, "{s:s, s:s}", "op", "purge_queue", "name", "alice.own");
	at_say(out, "purge alice.own: %d", hb_code(r));
	json_decref(r);
	r = hb_call(s, NULL, "{s:s, s:s}", "op", "purge_queue", "name", "pub.p");
	at_say(out, "purge pub.p: %d", hb_code(r));
	json_decref(r);
	close(s); /* disconnect: hbusd recovers what the owner held */
}

static void run_scribbler(void)
{
	char out[2048];
	int rc = at_run_as(&user, &env, scribble, NULL, out, sizeof(out));

	cr_log_info("scribbler:\n%s", out);
	cr_assert_eq(rc, 0, "the scribbler could not run: %d\n%s", rc, out);
	/* The routes file cannot be mapped writable; everything else it was
	 * given, it filled. */
	cr_assert(strstr(out, "routes: not writable (Permission denied)"), "%s", out);
	cr_assert(strstr(out, "reader block: scribbled"), "%s", out);
	cr_assert(strstr(out, "own queue: scribbled"), "%s", out);
	cr_assert(strstr(out, "read queue: scribbled"), "%s", out);
	cr_assert(strstr(out, "consumer: scribbled"), "%s", out);
	/* A protected queue: its state words, not its messages. */
	cr_assert(strstr(out, "protected state: scribbled"), "%s", out);
	cr_assert(strstr(out, "protected data: not writable (Permission denied)"), "%s", out);
	/* A purge of a scribbled ring is answered: done, or "corrupt". */
	cr_assert(strstr(out, "purge pub.q: 0") || strstr(out, "purge pub.q: 406"), "%s", out);
	cr_assert(strstr(out, "purge pub.p: 0") || strstr(out, "purge pub.p: 406"), "%s", out);
}

Test(scribbler, random_bytes_in_every_writable_descriptor)
{
	int fd;
	uint32_t i;

	at_start(&env, &user, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "pub.q", "durable", 1));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b, s:b}", "op", "declare_queue", "name", "pub.p",
		   "durable", 1, "protected", 1));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "vault.x",
		   "destination", "pub.q", "key", "pub"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "vault.x",
		   "destination", "pub.p", "key", "pub"));
	close(fd);
	for (i = 0; i < 3; i++)
		at_root_delivers(&env, 100 + i); /* traffic on the bus before */
	run_scribbler();
	at_assert_service(&env);
	/* hbusd restarts on the scribbled shared memory. */
	cr_assert_eq(hb_stop(&env), 0);
	at_restart(&env, &user, NULL);
	at_assert_service(&env);
	run_scribbler();
	at_assert_service(&env);
	cr_assert_eq(hb_stop(&env), 0);
	at_restart(&env, &user, NULL);
	at_assert_service(&env);
}
