/*
 * test_hbusd.c - the control protocol itself against the real hbusd:
 * hello, malformed and hostile requests, descriptors sent the wrong way,
 * peers that vanish or flood, replies held until readers can see a change,
 * limits, export/import.  (AMQP semantics of each op: test_hbusd_ops.c;
 * sessions dying, restarts and permissions: test_hbusd_life.c.)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "route.h"
#include "testutil.h"

static struct hb_env env;

static void setup(void)
{
	hb_env_init(&env, "ctl");
	hb_start(&env, NULL);
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 60);

static json_t *raw(int fd, const char *text)
{
	cr_assert_eq(hb_send_raw(fd, text, strlen(text)), 0);
	return hb_recv(fd, NULL);
}

Test(control, hello_assigns_owner_and_passes_routes_file)
{
	uint32_t o2;
	int fd = hb_connect(&env), rfd = -1, fd2;
	struct hbus_routes *routes = NULL;
	json_t *r;

	cr_assert_geq(fd, 0);
	r = hb_call(fd, &rfd, "{s:s, s:s, s:i, s:i}", "op", "hello", "role", "client", "version", 1,
		    "pid", (int)getpid());
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert_gt(hb_int(r, "owner"), 0);
	cr_assert_leq(hb_int(r, "owner"), HBUS_OWNER_MAX);
	cr_assert_geq(hb_int(r, "epoch"), 1);
	cr_assert_geq(hb_int(r, "generation"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(r, "bus")), "ctl");
	cr_assert_geq(rfd, 0, "hello passed no routes descriptor");
	cr_assert_eq(hbus_routes_open_fd(rfd, &routes), 0);
	cr_assert_eq(hbus_routes_generation(routes), (uint64_t)hb_int(r, "generation"));
	hbus_routes_close(routes);
	close(rfd);

	EXPECT(hb_call(fd, NULL, "{s:s}", "op", "hello"), 503, "already");
	fd2 = hb_session(&env, &o2);
	cr_assert_neq(o2, (uint32_t)hb_int(r, "owner"), "two sessions got one owner id");
	EXPECT(hb_call(fd2, NULL, "{s:s, s:i}", "op", "hello", "version", 2), 503, "already");
	json_decref(r);
	close(fd);
	close(fd2);

	fd = hb_connect(&env);
	EXPECT(hb_call(fd, NULL, "{s:s, s:i}", "op", "hello", "version", 2), 540, "version");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "hello", "role", "boss"), 503, "role");
	close(fd);
}

Test(control, requests_before_hello_are_refused)
{
	int fd = hb_connect(&env);

	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "queues"), 503, "hello");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "q"), 503, "hello");
	OK(hb_call(fd, NULL, "{s:s}", "op", "hello"));
	cr_assert_eq(hb_list_count(fd, "queues"), 0);
	close(fd);
}

Test(control, malformed_requests_get_errors_and_the_session_lives)
{
	static const struct { const char *text; int code; const char *needle; } cases[] = {
		{ "not json at all", 502, "not JSON" },
		{ "[1, 2]", 502, "object" },
		{ "\"hello\"", 502, "object" },
		{ "{\"op\":\"hel", 502, "not JSON" },
		{ "{\"op\":\"hello\",\"op\":\"hello\"}", 502, "not JSON" },
		{ "{}", 503, "'op'" },
		{ "{\"op\":5}", 503, "string" },
		{ "{\"op\":\"frobnicate\"}", 540, "frobnicate" },
		{ "{\"op\":\"declare_queue\",\"name\":\"q\",\"capacity\":\"big\"}", 503, "capacity" },
		{ "{\"op\":\"declare_queue\",\"name\":\"q\",\"capacity\":8.5}", 503, "capacity" },
		{ "{\"op\":\"declare_queue\",\"name\":\"q\",\"capcity\":8}", 503, "capcity" },
		{ "{\"op\":\"declare_queue\",\"name\":7}", 503, "name" },
		{ "{\"op\":\"declare_queue\",\"name\":\"q\",\"durable\":\"yes\"}", 503, "durable" },
		{ "{\"op\":\"bind\",\"source\":\"x\"}", 503, "destination" },
		{ "{\"op\":\"list\",\"what\":\"everything\"}", 503, "everything" },
	};
	static char big[70000];
	unsigned i;
	int fd = hb_session(&env, NULL), other;
	json_t *r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		EXPECT(raw(fd, cases[i].text), cases[i].code, cases[i].needle);
	/* An empty message is not end-of-stream. */
	cr_assert_eq(send(fd, "", 0, 0), 0);
	EXPECT(hb_recv(fd, NULL), 502, "empty");
	/* Larger than 64 KiB: refused whole, and the next request is fine. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"op\":\"list\",\"what\":\"queues\"}", 29);
	cr_assert_eq(hb_send_raw(fd, big, sizeof(big)), 0);
	EXPECT(hb_recv(fd, NULL), 502, "65536");
	/* The "id" of a request comes back with its reply. */
	r = raw(fd, "{\"op\":\"list\",\"what\":\"queues\",\"id\":\"abc\"}");
	cr_assert(hb_ok(r));
	cr_assert_str_eq(json_string_value(json_object_get(r, "id")), "abc");
	json_decref(r);
	other = hb_session(&env, NULL);
	cr_assert_eq(hb_list_count(other, "exchanges"), 1); /* the default exchange */
	close(other);
	close(fd);
}

Test(control, descriptors_sent_to_hbusd_are_closed_and_refused)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	const char *text = "{\"op\":\"list\",\"what\":\"queues\"}";
	struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	struct pollfd pfd;
	int fd = hb_session(&env, NULL), p[2];
	char c;

	cr_assert_eq(pipe(p), 0);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
	cr_assert_eq(sendmsg(fd, &mh, 0), (ssize_t)strlen(text));
	close(p[1]);
	EXPECT(hb_recv(fd, NULL), 503, "descriptors");
	/* hbusd closed its copy: the pipe's last writer is gone. */
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 5000), 1);
	cr_assert_eq(read(p[0], &c, 1), 0, "hbusd kept the descriptor it was sent");
	close(p[0]);
	cr_assert_eq(hb_list_count(fd, "queues"), 0);
	close(fd);
}

Test(control, peer_that_closes_mid_request_does_not_hurt_others)
{
	const char *req = "{\"op\":\"declare_queue\",\"name\":\"left-behind\",\"capacity\":8}";
	int fd, i, other;

	for (i = 0; i < 20; i++) {
		fd = hb_session(&env, NULL);
		cr_assert_eq(hb_send_raw(fd, req, strlen(req)), 0);
		close(fd); /* never reads the reply */
		fd = hb_connect(&env);
		close(fd); /* connects and says nothing */
	}
	other = hb_session(&env, NULL);
	/* Requests queued before the close were still served, in order. */
	OK(hb_call(other, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "left-behind",
		   "passive", 1));
	cr_assert_eq(hb_list_count(other, "queues"), 1);
	close(other);
}

Test(control, flooding_client_is_throttled_not_served_first)
{
	int fl = hb_session(&env, NULL), other, sent = 0, i, fl_flags;
	char text[128];
	json_t *r;

	fl_flags = fcntl(fl, F_GETFL);
	fcntl(fl, F_SETFL, fl_flags | O_NONBLOCK);
	/* Never read: hbusd must stop reading this session, not block. */
	for (i = 0; i < 2000; i++) {
		int n = snprintf(text, sizeof(text), "{\"op\":\"list\",\"what\":\"queues\",\"id\":%d}", i);
		if (send(fl, text, (size_t)n, MSG_NOSIGNAL) != n) {
			cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
			break;
		}
		sent++;
	}
	cr_assert_gt(sent, 32);
	other = hb_session(&env, NULL);
	OK(hb_call(other, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "still-served"));
	close(other);
	fcntl(fl, F_SETFL, fl_flags);
	for (i = 0; i < sent; i++) {
		r = hb_recv(fl, NULL);
		cr_assert(hb_ok(r), "reply %d of %d: %s", i, sent, hb_error(r));
		cr_assert_eq(hb_int(r, "id"), i, "replies out of order");
		json_decref(r);
	}
	close(fl);
}

Test(control, export_import_round_trip_and_atomic_refusal)
{
	struct hb_env env2;
	int fd = hb_session(&env, NULL), fd2;
	json_t *r, *defs;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:b}", "op", "declare_exchange", "name", "ex", "type",
		   "topic", "durable", 1));
	hb_declare_queue(fd, "q1");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "ex", "destination",
		   "q1", "key", "a.#"));
	r = hb_call(fd, NULL, "{s:s}", "op", "export");
	cr_assert(hb_ok(r));
	defs = json_incref(json_object_get(r, "definitions"));
	json_decref(r);
	cr_assert_eq(json_array_size(json_object_get(defs, "queues")), 1);

	hb_env_init(&env2, "ctl2");
	hb_start(&env2, NULL);
	fd2 = hb_session(&env2, NULL);
	OK(hb_call(fd2, NULL, "{s:s, s:O}", "op", "import", "definitions", defs));
	OK(hb_call(fd2, NULL, "{s:s, s:O}", "op", "import", "definitions", defs)); /* idempotent */
	cr_assert_eq(hb_list_count(fd2, "queues"), 1);
	cr_assert_eq(hb_list_count(fd2, "bindings"), 1);
	cr_assert_eq(hb_list_count(fd2, "exchanges"), 2);
	/* A conflicting item refuses the whole import: the new queue of the
	 * same import is not left behind. */
	OK(hb_call(fd2, NULL, "{s:s, s:{s:i, s:[{s:s, s:i}, {s:s, s:i}]}}", "op", "import",
		   "definitions", "hbus_definitions", 1, "queues", "name", "fresh", "capacity", 8,
		   "name", "fresh2", "capacity", 8));
	EXPECT(hb_call(fd2, NULL, "{s:s, s:{s:i, s:[{s:s, s:i}, {s:s, s:i}]}}", "op", "import",
		       "definitions", "hbus_definitions", 1, "queues", "name", "new1", "capacity", 8,
		       "name", "q1", "capacity", 8), 406, "capacity");
	cr_assert_eq(hb_list_count(fd2, "queues"), 3, "a refused import left queues behind");
	EXPECT(hb_call(fd2, NULL, "{s:s, s:{s:[]}}", "op", "import", "definitions", "queues"), 503,
	       "hbus_definitions");
	EXPECT(hb_call(fd2, NULL, "{s:s, s:{s:i, s:[{s:s, s:b}]}}", "op", "import", "definitions",
		       "hbus_definitions", 1, "queues", "name", "x", "exclusive", 1), 503, "exclusive");
	close(fd2);
	hb_env_fini(&env2);
	json_decref(defs);
	close(fd);
}

Test(control, limits_are_406_naming_the_limit)
{
	static const char *const lim[] = { "--max-queues", "2", "--max-bindings", "1",
					   "--max-consumers", "1", "--max-exchanges", "1", NULL };
	int fd;

	hb_stop_clean(&env);
	hb_start(&env, lim);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "a");
	hb_declare_queue(fd, "b");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "c"), 406,
	       "limit of 2 queues");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "x"));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "y"), 406,
	       "limit of 1 exchanges");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "x", "destination", "a"));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "x", "destination", "b"),
	       406, "limit of 1 bindings");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "a"));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "a"), 406, "max-consumers");
	close(fd);
}

Test(control, routing_table_over_its_size_is_refused_and_undone)
{
	static const char *const small[] = { "--routes-size", "4096", NULL };
	char name[32];
	int fd, i, refused = -1;
	json_t *r;

	hb_stop_clean(&env);
	/* A fresh bus: the routes file is created with the small size. */
	char dir[256];
	hb_bus_dir(&env, dir, sizeof(dir));
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	hb_start(&env, small);
	fd = hb_session(&env, NULL);
	hb_declare_queue(fd, "q");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "t", "type", "topic"));
	for (i = 0; i < 400 && refused < 0; i++) {
		snprintf(name, sizeof(name), "key.%d.with.some.words", i);
		r = hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "t",
			    "destination", "q", "key", name);
		if (!hb_ok(r)) {
			cr_assert_eq(hb_code(r), 406, "%s", hb_error(r));
			cr_assert(strstr(hb_error(r), "routes-size"), "%s", hb_error(r));
			refused = i;
		}
		json_decref(r);
	}
	cr_assert_gt(refused, 0, "a 4 KiB table never filled up");
	cr_assert_eq(hb_list_count(fd, "bindings"), (size_t)refused, "the refused binding stayed");
	close(fd);
}

Test(control, reply_waits_until_readers_can_see_the_change)
{
	struct hbus_routes *routes = NULL;
	struct hbus_readers *rd = NULL;
	const struct hbus_rtable *t;
	struct pollfd pfd;
	uint32_t qids[16], xid;
	uint64_t gen;
	unsigned slot, spins = 0;
	int fd = hb_connect(&env), fds[2], other;
	const char *bind2 = "{\"op\":\"bind\",\"source\":\"x\",\"destination\":\"q\",\"key\":\"k2\"}";
	const char *hello = "{\"op\":\"hello\"}";

	cr_assert_eq(hb_send_raw(fd, hello, strlen(hello)), 0);
	OK(hb_recv_fds(fd, fds, 2));
	cr_assert(fds[0] >= 0 && fds[1] >= 0, "hello passed no routes file or reader block");
	hb_declare_queue(fd, "q");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "x"));
	cr_assert_eq(hbus_routes_open_fd(fds[0], &routes), 0);
	cr_assert_eq(hbus_readers_open_fd(fds[1], &rd), 0);
	cr_assert_eq(hbus_readers_attach(rd, &slot), 0);
	/* A reader parked mid-burst on generation g... */
	t = hbus_routes_acquire(routes, rd, slot, &gen);
	cr_assert_not_null(t);
	/* ...does not stop g+1 (the other half)... */
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "x", "destination", "q",
		   "key", "k1"));
	/* ...but g+2 would overwrite its half: the reply must wait.  Once
	 * hbusd has made the change (another session lists the binding), the
	 * reply must not be there: it waits for the reader, not for time. */
	cr_assert_eq(hb_send_raw(fd, bind2, strlen(bind2)), 0);
	other = hb_session(&env, NULL);
	while (hb_list_count(other, "bindings") != 2) {
		cr_assert_lt(spins, 3000, "hbusd never made the second binding");
		hb_backoff(&spins);
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "ok sent before readers could see the binding");
	hbus_routes_release(rd, slot);
	close(other);
	OK(hb_recv(fd, NULL));
	t = hbus_routes_acquire(routes, rd, slot, &gen);
	cr_assert_eq(hbus_route_exchange(t, "x", 1, &xid), 0);
	cr_assert_eq(hbus_route_lookup(t, xid, "k2", 2, NULL, qids, 16), 1);
	hbus_routes_release(rd, slot);
	hbus_readers_detach(rd, slot);
	hbus_readers_close(rd);
	hbus_routes_close(routes);
	close(fds[0]);
	close(fds[1]);
	close(fd);
}
