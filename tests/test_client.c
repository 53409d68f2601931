/*
 * test_client.c - the client library (shm/client.c, shm/router.c) against
 * a small in-process stand-in for hbusd that speaks the control protocol's
 * session subset (hello, open_queue, consume, cancel) on a real
 * SOCK_SEQPACKET socket with SCM_RIGHTS, serves real queue and routes
 * files, and recovers a closed session's slots as hbusd does.  The real
 * hbusd end to end is tests/test_cli.sh.
 *
 * Topology: exchanges ex.direct (direct), ex.fan (fanout), dlx (fanout);
 * queues q1 (qid 1, dead-letter exchange dlx), q2 (qid 2), dead (qid 3);
 * bindings ex.direct -k1-> q1, ex.fan -> q1 and q2, dlx -> dead.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "client_internal.h"
#include "hbus.h"
#include "route.h"

#define NQ 3
#define SERVER_OWNER 0xfffff0u

static const char *const qnames[NQ + 1] = { NULL, "q1", "q2", "dead" };

struct fake {
	char dir[64];
	struct sockaddr_un addr;
	int lfd, conn;
	uint32_t owner, next_owner;
	int routes_fd;           /* read-only, as hbusd passes it */
	struct hbus_routes *routes;
	struct hbus_readers *rd; /* the current session's reader block */
	int qfd[NQ + 1];
	hbus_queue *q[NQ + 1];
	pthread_t th;
	_Atomic int stop, want_down, want_up, is_down, sessions, recovered;
	/* hbusd crash: no recovery at close, the owner resumable by hello. */
	_Atomic int crash, consumes;
};

static struct fake F;

static void fake_listen(struct fake *f)
{
	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert_geq(f->lfd, 0);
	unlink(f->addr.sun_path);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&f->addr, sizeof(f->addr)), 0);
	cr_assert_eq(listen(f->lfd, 4), 0);
}

static void reply2(struct fake *f, json_t *r, int fd, int fd2)
{
	char *text = json_dumps(r, JSON_COMPACT);
	union { struct cmsghdr h; char b[CMSG_SPACE(2 * sizeof(int))]; } ctl;
	struct iovec iov = { .iov_base = text, .iov_len = strlen(text) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[2] = { fd, fd2 }, n = (fd >= 0) + (fd2 >= 0);

	if (n) {
		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	sendmsg(f->conn, &mh, MSG_NOSIGNAL);
	free(text);
	json_decref(r);
}

static void reply(struct fake *f, json_t *r, int fd)
{
	reply2(f, r, fd, -1);
}

static void error_reply(struct fake *f, int code, const char *msg)
{
	reply(f, json_pack("{s:b, s:i, s:s}", "ok", 0, "code", code, "error", msg), -1);
}

static int qid_by_name(const char *name)
{
	for (int i = 1; i <= NQ; i++)
		if (name && !strcmp(qnames[i], name))
			return i;
	return -1;
}

static void handle(struct fake *f, const char *text)
{
	json_t *req = json_loads(text, 0, NULL);
	const char *op = json_string_value(json_object_get(req, "op"));
	char msg[128];
	int qid;

	if (!op) {
		error_reply(f, 502, "not a JSON object with an op");
	} else if (!strcmp(op, "hello")) {
		json_int_t want = json_integer_value(json_object_get(req, "owner"));
		int bfd;

		f->owner = atomic_load(&f->crash) && want == f->owner ? f->owner : f->next_owner++;
		atomic_fetch_add(&f->sessions, 1);
		/* Every session gets a reader block of its own, as from hbusd. */
		hbus_readers_close(f->rd);
		f->rd = NULL;
		if (hbus_readers_create(&bfd, &f->rd) != 0) {
			error_reply(f, 541, "no reader block");
		} else {
			reply2(f, json_pack("{s:b, s:i, s:s, s:i, s:i}", "ok", 1, "owner",
					    (int)f->owner, "bus", "t", "epoch", 1, "generation", 1),
			       f->routes_fd, bfd);
			close(bfd);
		}
	} else if (!strcmp(op, "open_queue")) {
		qid = (int)json_integer_value(json_object_get(req, "qid"));
		if (qid < 1 || qid > NQ)
			error_reply(f, 404, "no queue with that qid");
		else
			reply(f, json_pack("{s:b, s:i, s:s}", "ok", 1, "qid", qid, "name", qnames[qid]),
			      f->qfd[qid]);
	} else if (!strcmp(op, "consume")) {
		atomic_fetch_add(&f->consumes, 1);
		qid = qid_by_name(json_string_value(json_object_get(req, "queue")));
		snprintf(msg, sizeof(msg), "no queue '%s'",
			 json_string_value(json_object_get(req, "queue")));
		if (qid < 0)
			error_reply(f, 404, msg);
		else
			reply(f, json_pack("{s:b, s:i, s:s}", "ok", 1, "qid", qid, "consumer_tag",
					   "ctag"), f->qfd[qid]);
	} else if (!strcmp(op, "cancel")) {
		reply(f, json_pack("{s:b}", "ok", 1), -1);
	} else if (!strcmp(op, "ping")) {
		usleep(100); /* a reply that takes a while: the caller waits in poll */
		reply(f, json_pack("{s:b}", "ok", 1), -1);
	} else {
		snprintf(msg, sizeof(msg), "unknown op '%s'", op);
		error_reply(f, 540, msg);
	}
	json_decref(req);
}

/* What hbusd does when a session closes.  Its process (this one) still
 * runs, so nothing of what it holds on the queues is taken from it (hbusd
 * would watch it and recover it when it exits); its reader slot goes. */
static void session_closed(struct fake *f)
{
	close(f->conn);
	f->conn = -1;
	if (atomic_load(&f->crash))
		return; /* a dead hbusd does nothing; the next one keeps the orphan */
	hbus_readers_close(f->rd); /* the fake honours no block: it publishes no more */
	f->rd = NULL;
	atomic_fetch_add(&f->recovered, 1);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	char buf[65536];

	while (!atomic_load(&f->stop)) {
		struct pollfd p[2] = { { .fd = f->lfd, .events = POLLIN },
				       { .fd = f->conn, .events = POLLIN } };
		if (atomic_load(&f->want_down)) {
			if (f->conn >= 0)
				session_closed(f);
			close(f->lfd);
			f->lfd = -1;
			unlink(f->addr.sun_path);
			atomic_store(&f->want_down, 0);
			atomic_store(&f->is_down, 1);
		}
		if (atomic_load(&f->want_up)) {
			fake_listen(f);
			atomic_store(&f->want_up, 0);
			atomic_store(&f->is_down, 0);
		}
		if (poll(p, 2, 5) <= 0)
			continue;
		if (f->lfd >= 0 && (p[0].revents & POLLIN) && f->conn < 0)
			f->conn = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (f->conn >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
			ssize_t n = recv(f->conn, buf, sizeof(buf) - 1, 0);
			if (n <= 0) {
				session_closed(f);
				continue;
			}
			buf[n] = '\0';
			handle(f, buf);
		}
	}
	return NULL;
}

static void compile_routes(struct fake *f)
{
	static const struct hbus_rc_exchange xs[] = {
		{ .name = "ex.direct", .type = HBUS_X_DIRECT },
		{ .name = "ex.fan", .type = HBUS_X_FANOUT },
		{ .name = "dlx", .type = HBUS_X_FANOUT },
	};
	static const struct hbus_rc_queue qs[] = {
		{ .name = "q1", .qid = 1, .dead_letter_exchange = "dlx" },
		{ .name = "q2", .qid = 2 },
		{ .name = "dead", .qid = 3 },
	};
	static const struct hbus_rc_binding bs[] = {
		{ .source = "ex.direct", .dest = "q1", .key = "k1" },
		{ .source = "ex.fan", .dest = "q1", .key = "" },
		{ .source = "ex.fan", .dest = "q2", .key = "" },
		{ .source = "dlx", .dest = "dead", .key = "" },
	};
	struct hbus_rc_input in = { xs, 3, qs, 3, bs, 4, NULL, 0 };
	static uint8_t table[65536];
	size_t used = 0;
	char path[128];
	int rw;

	cr_assert_eq(hbus_route_compile(&in, table, sizeof(table), &used), 0);
	snprintf(path, sizeof(path), "/dev/shm/hbus-test-client-%d-routes", (int)getpid());
	unlink(path);
	cr_assert_eq(hbus_routes_create(path, 65536, &rw, &f->routes), 0);
	f->routes_fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(f->routes_fd, 0);
	unlink(path);
	close(rw);
	cr_assert_eq(hbus_routes_publish(f->routes, table, used, NULL, 0, NULL, NULL), 0);
}

static void fake_start(void)
{
	struct fake *f = &F;
	struct hbus_queue_config cfg = { .capacity = 64, .slot_size = 256, .numa_node = -1 };
	struct hbus_queue_opts o = { .owner = SERVER_OWNER };
	char path[128];

	memset(f, 0, sizeof(*f));
	f->conn = -1;
	f->next_owner = 1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/hbus-test-client-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	f->addr.sun_family = AF_UNIX;
	snprintf(f->addr.sun_path, sizeof(f->addr.sun_path), "%.60s/t.sock", f->dir);
	compile_routes(f);
	for (int i = 1; i <= NQ; i++) {
		snprintf(path, sizeof(path), "/dev/shm/hbus-test-client-%d-q%d", (int)getpid(), i);
		unlink(path);
		cr_assert_eq(hbus_queue_create(path, qnames[i], &cfg, &f->qfd[i]), 0);
		unlink(path);
		cr_assert_eq(hbus_queue_open_fd(f->qfd[i], &o, &f->q[i]), 0);
	}
	fake_listen(f);
	pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_stop(void)
{
	struct fake *f = &F;

	atomic_store(&f->stop, 1);
	pthread_join(f->th, NULL);
	if (f->conn >= 0)
		close(f->conn);
	if (f->lfd >= 0)
		close(f->lfd);
	unlink(f->addr.sun_path);
	rmdir(f->dir);
	for (int i = 1; i <= NQ; i++) {
		hbus_queue_close(f->q[i]);
		close(f->qfd[i]);
	}
	hbus_routes_close(f->routes);
	hbus_readers_close(f->rd);
	close(f->routes_fd);
}

static void wait_flag(_Atomic int *flag, int value)
{
	for (int i = 0; i < 2000 && atomic_load(flag) != value; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(flag), value);
}

static hbus_client *connect_fake(void)
{
	struct hbus_client_opts o = { .bus = "t", .run_dir = F.dir };
	hbus_client *c = NULL;

	cr_assert_eq(hbus_connect(&o, &c), 0);
	return c;
}

TestSuite(client, .init = fake_start, .fini = fake_stop, .timeout = 30);

Test(client, connect_refused_without_server)
{
	struct hbus_client_opts o = { .bus = "nosuchbus", .run_dir = F.dir };
	hbus_client *c = (hbus_client *)1;

	cr_assert_eq(hbus_connect(&o, &c), -ENOENT);
	cr_assert_null(c);
	cr_assert_eq(hbus_connect(NULL, NULL), -EINVAL);
	o.bus = "a/b";
	cr_assert_eq(hbus_connect(&o, &c), -EINVAL);
}

Test(client, publish_routes_and_counts)
{
	hbus_client *c = connect_fake();
	struct hbus_client_counters k;
	struct hbus_header h = { .name = "h", .name_len = 1, .value = "v", .value_len = 1 };
	struct hbus_meta meta;
	struct hbus_msg m;
	hbus_queue *q1, *q2;
	uint32_t owner;

	cr_assert_eq(hbus_client_owner(c, &owner), 0);
	cr_assert_eq(owner, 1);
	cr_assert_eq(hbus_publish(c, "ex.direct", "k1", &h, 1, "one", 3), 1);
	cr_assert_eq(hbus_publish(c, "ex.fan", "any", NULL, 0, "two", 3), 2);
	cr_assert_eq(hbus_publish(c, "", "q2", NULL, 0, "three", 5), 1, "default exchange");
	cr_assert_eq(hbus_publish(c, "ex.direct", "nokey", NULL, 0, "x", 1), 0);
	cr_assert_eq(hbus_publish(c, "nosuch", "k1", NULL, 0, "x", 1), -ENOENT);
	cr_assert_eq(hbus_publish(c, NULL, "k1", NULL, 0, "x", 1), -EINVAL);
	cr_assert_eq(hbus_publish(c, "ex.fan", "k", NULL, 1, "x", 1), -EINVAL);
	cr_assert_eq(hbus_publish(c, "ex.fan", "k", NULL, 0, NULL, 1), -EINVAL);
	hbus_client_counters(c, &k);
	cr_assert_eq(k.published, 3);
	cr_assert_eq(k.unroutable, 1);
	cr_assert_eq(k.refused, 0);

	cr_assert_eq(hbus_consume_open(c, "q1", HBUS_ACK_AUTO, 0, &q1), 0);
	cr_assert_eq(hbus_queue_consume(q1, &m), 0);
	cr_assert_eq(hbus_meta_decode(m.meta, m.meta_len, &meta), 0);
	cr_assert_eq(meta.exchange_len, 9);
	cr_assert_eq(memcmp(meta.exchange, "ex.direct", 9), 0);
	cr_assert_eq(meta.header_count, 1);
	cr_assert_eq(memcmp(m.body, "one", 3), 0);
	cr_assert_neq(m.send_ts_ns, 0);
	cr_assert_eq(hbus_queue_ack(q1, &m), 0);
	cr_assert_eq(hbus_queue_consume(q1, &m), 0);
	cr_assert_eq(memcmp(m.body, "two", 3), 0);
	cr_assert_eq(hbus_queue_ack(q1, &m), 0);
	cr_assert_eq(hbus_queue_consume(q1, &m), -EAGAIN);
	cr_assert_eq(hbus_consume_close(c, q1), 0);
	/* The fanout's second copy, then what the default exchange routed to
	 * q2 by its name; nothing else. */
	cr_assert_eq(hbus_consume_open(c, "q2", HBUS_ACK_AUTO, 0, &q2), 0);
	cr_assert_eq(hbus_queue_consume(q2, &m), 0);
	cr_assert_eq(m.body_len, 3);
	cr_assert_eq(memcmp(m.body, "two", 3), 0);
	cr_assert_eq(hbus_meta_decode(m.meta, m.meta_len, &meta), 0);
	cr_assert_eq(meta.exchange_len, 6);
	cr_assert_eq(memcmp(meta.exchange, "ex.fan", 6), 0);
	cr_assert_eq(hbus_queue_ack(q2, &m), 0);
	cr_assert_eq(hbus_queue_consume(q2, &m), 0);
	cr_assert_eq(m.body_len, 5);
	cr_assert_eq(memcmp(m.body, "three", 5), 0);
	cr_assert_eq(hbus_meta_decode(m.meta, m.meta_len, &meta), 0);
	cr_assert_eq(meta.exchange_len, 0, "the default exchange is \"\"");
	cr_assert_eq(meta.routing_key_len, 2);
	cr_assert_eq(memcmp(meta.routing_key, "q2", 2), 0);
	cr_assert_eq(hbus_queue_ack(q2, &m), 0);
	cr_assert_eq(hbus_queue_consume(q2, &m), -EAGAIN);
	cr_assert_eq(hbus_consume_close(c, q2), 0);
	cr_assert_eq(hbus_close(c), 0);
}

Test(client, refused_requests_carry_code_and_message)
{
	hbus_client *c = connect_fake();
	hbus_queue *q = NULL;
	const char *msg;
	char buf[256];
	int code;

	cr_assert_eq(hbus_consume_open(c, "nosuch", HBUS_ACK_AUTO, 0, &q), -EREMOTEIO);
	cr_assert_null(q);
	hbus_client_error(c, &code, &msg);
	cr_assert_eq(code, 404);
	cr_assert_str_eq(msg, "no queue 'nosuch'");
	cr_assert_eq(hbus_call(c, "{\"op\":\"frobnicate\"}", buf, sizeof(buf)), -EREMOTEIO);
	cr_assert(strstr(buf, "\"ok\":false"), "%s", buf);
	hbus_client_error(c, &code, &msg);
	cr_assert_eq(code, 540);
	cr_assert_eq(hbus_call(c, "{\"op\":\"cancel\"}", buf, 4), -ENOSPC, "reply cut to fit");
	cr_assert_eq(strlen(buf), 3);
	hbus_close(c);
}

Test(client, nack_dead_letters_with_death_headers)
{
	hbus_client *c = connect_fake();
	hbus_queue *q1, *dead;
	struct hbus_meta meta;
	struct hbus_msg m;
	int found = 0;

	cr_assert_eq(hbus_consume_open(c, "q1", HBUS_ACK_MANUAL, 4, &q1), 0);
	cr_assert_eq(hbus_consume_open(c, "dead", HBUS_ACK_AUTO, 0, &dead), 0);
	cr_assert_eq(hbus_publish(c, "ex.direct", "k1", NULL, 0, "doomed", 6), 1);
	cr_assert_eq(hbus_queue_consume(q1, &m), 0);
	cr_assert_eq(hbus_queue_nack(q1, &m, 0), 0);
	cr_assert_eq(hbus_queue_consume(dead, &m), 0, "dead-lettered to dlx -> dead");
	cr_assert_eq(m.body_len, 6);
	cr_assert_eq(memcmp(m.body, "doomed", 6), 0);
	cr_assert_eq(hbus_meta_decode(m.meta, m.meta_len, &meta), 0);
	cr_assert_eq(meta.routing_key_len, 2);
	cr_assert_eq(memcmp(meta.routing_key, "k1", 2), 0, "no dlx key: the key is kept");
	/* As RabbitMQ: the message now comes from the DLX; the exchange it was
	 * published to is in the death headers. */
	cr_assert_eq(meta.exchange_len, 3, "exchange is the DLX, not the original");
	cr_assert_eq(memcmp(meta.exchange, "dlx", 3), 0);
	for (unsigned i = 0; i < meta.header_count; i++) {
		const struct hbus_header *h = &meta.headers[i];
		if (h->name_len == 20 && !memcmp(h->name, "x-first-death-reason", 20))
			found += h->value_len == 8 && !memcmp(h->value, "rejected", 8);
		if (h->name_len == 19 && !memcmp(h->name, "x-first-death-queue", 19))
			found += h->value_len == 2 && !memcmp(h->value, "q1", 2);
		if ((h->name_len == 22 && !memcmp(h->name, "x-first-death-exchange", 22)) ||
		    (h->name_len == 21 && !memcmp(h->name, "x-last-death-exchange", 21)))
			found += h->value_len == 9 && !memcmp(h->value, "ex.direct", 9);
	}
	cr_assert_eq(found, 4, "x-first-death-reason=rejected, x-first-death-queue=q1, "
			       "x-{first,last}-death-exchange=ex.direct");
	hbus_queue_ack(dead, &m);
	hbus_close(c);
}

/*
 * hbusd goes away: publishing on open queues goes on, a new queue cannot be
 * opened (counted as refused), the unacked delivery stays this process's
 * (nothing is taken from a process that runs); hbusd comes back: the
 * client rejoins with a new owner id, the handle keeps its own, and the
 * delivery is acked as if nothing happened.
 */
Test(client, survives_hbusd_restart)
{
	hbus_client *c = connect_fake();
	struct hbus_client_counters k;
	hbus_queue *q1;
	struct hbus_msg m, m2;
	uint32_t owner;

	cr_assert_eq(hbus_consume_open(c, "q1", HBUS_ACK_MANUAL, 1, &q1), 0);
	cr_assert_eq(hbus_publish(c, "ex.direct", "k1", NULL, 0, "held", 4), 1);
	cr_assert_eq(hbus_queue_consume(q1, &m), 0);
	cr_assert_eq(hbus_queue_consume(q1, &m2), -EBUSY, "prefetch 1");

	atomic_store(&F.want_down, 1);
	wait_flag(&F.is_down, 1);
	cr_assert_eq(F.recovered, 1);
	cr_assert_eq(hbus_publish(c, "ex.direct", "k1", NULL, 0, "during", 6), 1,
		     "open queue keeps working without hbusd");
	cr_assert_eq(hbus_publish(c, "", "q2", NULL, 0, "new", 3), 0,
		     "a queue never opened needs hbusd");
	hbus_client_counters(c, &k);
	cr_assert_eq(k.refused, 1);
	usleep(120000); /* past the reconnect rate limit */
	cr_assert_lt(hbus_client_check(c), 0, "hbusd is down");

	atomic_store(&F.want_up, 1);
	wait_flag(&F.is_down, 0);
	usleep(120000);
	cr_assert_eq(hbus_client_check(c), 1, "rejoined");
	cr_assert_eq(hbus_client_check(c), 0, "and stays");
	hbus_client_owner(c, &owner);
	cr_assert_eq(owner, 2, "a new session has a new owner id");
	cr_assert_eq(m.body_len, 4);
	cr_assert_eq(memcmp(m.body, "held", 4), 0);
	cr_assert_eq(hbus_queue_ack(q1, &m), 0, "the delivery is still this handle's");
	cr_assert_eq(hbus_queue_consume(q1, &m), 0);
	cr_assert_eq(memcmp(m.body, "during", 6), 0);
	cr_assert_eq(hbus_queue_ack(q1, &m), 0);
	cr_assert_eq(hbus_publish(c, "", "q2", NULL, 0, "new", 3), 1,
		     "the new session opens what the old one could not");
	hbus_close(c);
}

/* hbusd crashes and comes back knowing this process (an orphan): hello
 * resumes the old owner id, the unacked delivery stays valid and the
 * consumer is not registered twice. */
Test(client, resumes_owner_after_hbusd_crash)
{
	hbus_client *c = connect_fake();
	hbus_queue *q1;
	struct hbus_msg m;
	uint32_t owner;

	cr_assert_eq(hbus_consume_open(c, "q1", HBUS_ACK_MANUAL, 4, &q1), 0);
	cr_assert_eq(hbus_publish(c, "ex.direct", "k1", NULL, 0, "kept", 4), 1);
	cr_assert_eq(hbus_queue_consume(q1, &m), 0);
	atomic_store(&F.crash, 1);
	atomic_store(&F.want_down, 1);
	wait_flag(&F.is_down, 1);
	atomic_store(&F.want_up, 1);
	wait_flag(&F.is_down, 0);
	usleep(120000);
	cr_assert_eq(hbus_client_check(c), 1);
	hbus_client_owner(c, &owner);
	cr_assert_eq(owner, 1, "owner id resumed");
	cr_assert_eq(F.consumes, 1, "consumer not registered again");
	cr_assert_eq(hbus_queue_ack(q1, &m), 0, "the delivery is still ours");
	cr_assert_eq(hbus_publish(c, "ex.fan", "", NULL, 0, "after", 5), 2);
	cr_assert_eq(hbus_queue_consume(q1, &m), 0);
	cr_assert_eq(memcmp(m.body, "after", 5), 0);
	cr_assert_eq(m.flags & HBUS_MSG_REDELIVERED, 0);
	cr_assert_eq(hbus_queue_ack(q1, &m), 0);
	hbus_close(c);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

Test(client, close_releases_everything)
{
	int before, after;

	/* Warm up lazily-opened libc/criterion descriptors first. */
	hbus_close(connect_fake());
	wait_flag(&F.recovered, 1);
	before = count_fds();
	for (int i = 0; i < 3; i++) {
		hbus_client *c = connect_fake();
		hbus_queue *q;
		cr_assert_eq(hbus_publish(c, "ex.fan", "", NULL, 0, "x", 1), 2);
		cr_assert_eq(hbus_consume_open(c, "q2", HBUS_ACK_AUTO, 0, &q), 0);
		hbus_close(c);
		wait_flag(&F.recovered, 2 + i);
	}
	after = count_fds();
	cr_assert_eq(after, before, "descriptors leaked: %d -> %d", before, after);
}

/* ------------------------------------------------ signals (EINTR) */

static _Atomic unsigned long sigs_seen;

static void on_sigusr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&sigs_seen, 1);
}

struct storm {
	pthread_t target;
	_Atomic int stop;
	unsigned long sent;
};

static void *storm_main(void *arg)
{
	struct storm *st = arg;
	struct timespec ts = { 0, 20000 };

	while (!atomic_load(&st->stop)) {
		pthread_kill(st->target, SIGUSR1);
		st->sent++;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/*
 * A handler installed without SA_RESTART makes blocking calls fail with
 * EINTR (hbus-dataplane on net_tap gets SIGIO per frame; profilers, timers
 * and applications have their own).  That is no lost session: under a
 * stream of signals to the calling thread, 1000 requests all succeed on
 * the one session, and sessions open and close.
 */
Test(client, signals_do_not_break_the_session)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 }, old;
	struct storm st = { .target = pthread_self() };
	pthread_t th;
	hbus_client *c;
	char buf[256];
	int failed = 0, sessions, i, rc;

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART */
	cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);
	c = connect_fake();
	sessions = atomic_load(&F.sessions);
	atomic_store(&sigs_seen, 0);
	pthread_create(&th, NULL, storm_main, &st);
	for (i = 0; i < 1000; i++) {
		rc = hbus_call(c, "{\"op\":\"ping\"}", buf, sizeof(buf));
		if (rc != 0 && failed++ == 0)
			cr_log_error("request %d: %s", i, hbus_strerror(rc));
	}
	cr_assert_eq(failed, 0, "%d of 1000 requests failed under signals", failed);
	cr_assert_eq(atomic_load(&F.sessions), sessions, "the session was dropped and reopened");
	hbus_close(c);
	for (i = 0; i < 50; i++) {
		hbus_client *c2 = NULL;
		rc = hbus_connect(&(struct hbus_client_opts){ .bus = "t", .run_dir = F.dir }, &c2);
		cr_assert_eq(rc, 0, "connect %d under signals: %s", i, hbus_strerror(rc));
		cr_assert_eq(hbus_call(c2, "{\"op\":\"ping\"}", buf, sizeof(buf)), 0);
		hbus_close(c2);
	}
	atomic_store(&st.stop, 1);
	pthread_join(th, NULL);
	sigaction(SIGUSR1, &old, NULL);
	/* The test means something only if signals did land during it. */
	cr_assert_geq(atomic_load(&sigs_seen), 100, "only %lu signals handled (%lu sent)",
		      atomic_load(&sigs_seen), st.sent);
	cr_log_info("%lu signals handled during the requests", atomic_load(&sigs_seen));
}
