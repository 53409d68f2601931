/*
 * client.c - the bus client's session with hbusd: connect and hello,
 * one-JSON-request / one-JSON-reply exchanges on the SOCK_SEQPACKET socket
 * (docs/CONTROL.md), descriptors received with SCM_RIGHTS, and reconnect
 * after hbusd restarts.
 *
 * Only the control path lives here; consumers are client_consume.c,
 * publishing and routing router.c.
 *
 * Reconnect.  When hbusd goes away, queue handles and the mapped routing
 * table stay valid (they are mappings, not requests), so publishing and
 * consuming go on.  The next control request (or hbus_client_check) opens
 * a new session, and hello asks for the old owner id back: a restarted
 * hbusd that kept it for this process (an "orphan" it knew from its state
 * file) resumes it, and nothing changes for us.  Otherwise (hbusd lost
 * its state) the session has a new owner id.  Every handle keeps the owner
 * id it was opened with for life: its records and the slots it holds name
 * that id, and moving a handle under a thread using it would race with it.
 * Routers open new producer handles under the new id at their next burst;
 * consumers are registered again (client_consume.c), an exclusive one
 * dropping to CAS claims unless hbusd grants it again.  What the old id
 * holds is recovered by hbusd when this process exits, if hbusd knows the
 * id; a protected queue's reader asks hbusd to requeue as its session, so
 * under a new id its nack(requeue) is -ESTALE and the message waits for
 * that recovery (docs/CLI.md, "When hbusd goes away").
 */
#include "client_internal.h"
#include "queue_internal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECONNECT_PERIOD_NS 100000000ull /* at most 10 attempts a second */

void client_set_error_locked(hbus_client *c, int code, const char *msg)
{
	c->err_code = code;
	snprintf(c->err_msg, sizeof(c->err_msg), "%s", msg ? msg : "");
}

/* Parse a reply; 0 for ok, -EREMOTEIO (error recorded) or -EPROTO. */
static int reply_parse_locked(hbus_client *c, const char *text, json_t **out)
{
	json_error_t jerr;
	json_t *r = json_loads(text, 0, &jerr);

	if (!r || !json_is_object(r)) {
		json_decref(r);
		client_set_error_locked(c, 0, "hbusd sent a reply that is not a JSON object");
		return -EPROTO;
	}
	*out = r;
	if (json_is_true(json_object_get(r, "ok")))
		return 0;
	client_set_error_locked(c, (int)json_integer_value(json_object_get(r, "code")),
			 json_string_value(json_object_get(r, "error")));
	return -EREMOTEIO;
}

static int session_open_locked(hbus_client *c);

static void close_fds(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/*
 * One exchange under the lock.  A request that could not be sent at all is
 * retried once on a fresh session (hbusd never saw it); one whose reply was
 * lost is not (hbusd may have applied it): the caller gets -ECONNRESET.
 * fds (may be NULL: closed) gets the descriptors that came with the reply.
 */
static int request_text_locked(hbus_client *c, const char *text, json_t **reply, int fds[2])
{
	char *rtext = NULL;
	int rc, attempt, rfds[2] = { -1, -1 };

	*reply = NULL;
	for (attempt = 0; attempt < 2; attempt++) {
		if (c->sock < 0) {
			/* Requests made while opening a session (hello, consumer
			 * registration) never open another one. */
			if (c->in_hello)
				return -ENOTCONN;
			rc = session_open_locked(c);
			if (rc)
				return rc;
		}
		rc = client_send_locked(c, text, strlen(text));
		if (rc == 0)
			break;
		if (rc != -EPIPE && rc != -ECONNRESET && rc != -ENOTCONN)
			return rc;
		client_drop_locked(c);
		if (attempt == 0)
			c->next_connect_ns = 0; /* one immediate retry is not a storm */
	}
	if (rc)
		return rc;
	rc = client_recv_locked(c, &rtext, rfds);
	if (rc) {
		client_drop_locked(c);
		return rc;
	}
	rc = reply_parse_locked(c, rtext, reply);
	free(rtext);
	if (fds)
		memcpy(fds, rfds, sizeof(rfds));
	else
		close_fds(rfds);
	return rc;
}

int client_request_fds_locked(hbus_client *c, json_t *req, json_t **reply, int fds[2])
{
	char *text = json_dumps(req, JSON_COMPACT);
	int rc;

	fds[0] = fds[1] = -1;
	if (!text)
		return -ENOMEM;
	rc = request_text_locked(c, text, reply, fds);
	free(text);
	return rc;
}

int client_request_locked(hbus_client *c, json_t *req, json_t **reply, int *fd)
{
	int fds[2], rc = client_request_fds_locked(c, req, reply, fds);

	if (fd) {
		*fd = fds[0];
		fds[0] = -1;
	}
	close_fds(fds);
	return rc;
}

int client_request(hbus_client *c, json_t *req, json_t **reply, int *fd)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = client_request_locked(c, req, reply, fd);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int client_request_fds(hbus_client *c, json_t *req, json_t **reply, int fds[2])
{
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = client_request_fds_locked(c, req, reply, fds);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* ------------------------------------------------------------- session */

/* Take the routes file that came with hello: keep the current mapping when
 * it is the same file (hbusd adopted it), else map the new one. */
static int routes_adopt_locked(hbus_client *c, int fd)
{
	struct client_routes *cr;
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (c->routes && c->routes->dev == st.st_dev && c->routes->ino == st.st_ino)
		return 0;
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	rc = hbus_routes_open_fd(fd, &cr->routes);
	if (rc) {
		free(cr);
		return rc;
	}
	cr->dev = st.st_dev;
	cr->ino = st.st_ino;
	cr->next = c->routes;
	c->routes = cr;
	return 0;
}

/* Take the session's reader block; unmap old ones no router uses. */
static int readers_adopt_locked(hbus_client *c, int fd)
{
	struct client_readers *cr = calloc(1, sizeof(*cr)), **pp, *old;
	int rc;

	if (!cr)
		return -ENOMEM;
	rc = hbus_readers_open_fd(fd, &cr->rd);
	if (rc) {
		free(cr);
		return rc;
	}
	cr->next = c->readers;
	c->readers = cr;
	for (pp = &cr->next; (old = *pp);) {
		if (old->users) {
			pp = &old->next;
			continue;
		}
		*pp = old->next;
		hbus_readers_close(old->rd);
		free(old);
	}
	return 0;
}

struct client_readers *client_readers_locked(hbus_client *c)
{
	return c->readers;
}

void client_readers_put_locked(hbus_client *c, struct client_readers *cr)
{
	struct client_readers **pp;

	if (!cr || !cr->users || --cr->users || cr == c->readers)
		return;
	for (pp = &c->readers; *pp && *pp != cr; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = cr->next;
		hbus_readers_close(cr->rd);
		free(cr);
	}
}

static int hello_locked(hbus_client *c)
{
	json_t *req, *reply = NULL;
	const char *dir;
	json_int_t owner;
	int rc, fds[2] = { -1, -1 };

	uint32_t old = atomic_load_explicit(&c->owner, memory_order_relaxed);

	req = json_pack("{s:s, s:s, s:i, s:I}", "op", "hello", "role", c->role, "version", 1,
			"pid", (json_int_t)getpid());
	if (!req)
		return -ENOMEM;
	/* Ask for our old owner id back: a restarted hbusd that kept it for
	 * this very process (pid and start time) resumes it, and nothing we
	 * hold is void. */
	if (old)
		json_object_set_new(req, "owner", json_integer(old));
	rc = client_request_fds_locked(c, req, &reply, fds);
	json_decref(req);
	if (rc)
		goto out;
	owner = json_integer_value(json_object_get(reply, "owner"));
	if (owner <= 0 || owner > (json_int_t)HBUS_OWNER_MAX || fds[0] < 0 || fds[1] < 0) {
		client_set_error_locked(c, 0, "hello reply without an owner id, routes descriptor "
					      "and reader block");
		rc = -EPROTO;
		goto out;
	}
	rc = routes_adopt_locked(c, fds[0]);
	if (rc == 0)
		rc = readers_adopt_locked(c, fds[1]);
	if (rc)
		goto out;
	dir = json_string_value(json_object_get(reply, "bus_dir"));
	snprintf(c->bus_dir, sizeof(c->bus_dir), "%s", dir && strlen(dir) < sizeof(c->bus_dir) ? dir : "");
	atomic_store_explicit(&c->owner, (uint32_t)owner, memory_order_relaxed);
	/* Resumed: hbusd kept our consumers and slots as they were; the
	 * exclusive ones check that it still holds their queues for them,
	 * and exclusive producers ask for their grants again. */
	consumers_rejoin_locked(c, (uint32_t)owner == old);
	producers_rejoin_locked(c);
	/* Release: a router that sees the new generation sees the new owner
	 * and routes mapping. */
	atomic_fetch_add_explicit(&c->session_gen, 1, memory_order_release);
out:
	close_fds(fds);
	json_decref(reply);
	return rc;
}

static int session_open_locked(hbus_client *c)
{
	uint64_t now = hbus_now_ns();
	int rc;

	if (now < c->next_connect_ns)
		return -ENOTCONN;
	c->next_connect_ns = now + RECONNECT_PERIOD_NS;
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0)
		return -errno;
	rc = client_connect_retry(c->sock, &c->addr);
	if (rc) {
		client_drop_locked(c);
		return rc;
	}
	c->in_hello = 1;
	rc = hello_locked(c);
	c->in_hello = 0;
	if (rc == 0 && c->sock < 0)
		rc = -ENOTCONN; /* hbusd went away again during the hello */
	if (rc)
		client_drop_locked(c);
	return rc;
}

int client_bus_dir(hbus_client *c, char *buf, size_t cap)
{
	int rc;

	if (!c || !buf || !cap)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (!c->bus_dir[0])
		rc = -ENOENT;
	else
		rc = snprintf(buf, cap, "%s", c->bus_dir) < (int)cap ? 0 : -ENAMETOOLONG;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int hbus_client_check(hbus_client *c)
{
	int rc = 0;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->sock >= 0) {
		struct pollfd p = { .fd = c->sock, .events = POLLRDHUP };
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
			client_drop_locked(c);
	}
	if (c->sock < 0) {
		rc = session_open_locked(c);
		if (rc == 0)
			rc = 1;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

struct hbus_routes *client_routes_locked(hbus_client *c)
{
	return c->routes ? c->routes->routes : NULL;
}

static void thread_router_gone(void *r)
{
	hbus_router_close(r);
}

int hbus_connect(const struct hbus_client_opts *opts, hbus_client **out)
{
	return hbus_connect_err(opts, out, NULL, NULL, 0);
}

int hbus_connect_err(const struct hbus_client_opts *opts, hbus_client **out,
		     int *amqp_code, char *msg, size_t cap)
{
	const char *bus = opts ? opts->bus : NULL, *dir = opts ? opts->run_dir : NULL;
	const char *role = opts && opts->role ? opts->role : "client";
	hbus_client *c;
	int rc, n;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!bus)
		bus = getenv("HBUS_BUS");
	if (!bus || !*bus)
		bus = "default";
	if (!dir)
		dir = getenv("HBUS_RUN_DIR");
	if (!dir || !*dir)
		dir = "/run/hbus";
	if (strlen(bus) > HBUS_NAME_MAX || strchr(bus, '/') ||
	    (strcmp(role, "client") && strcmp(role, "dataplane")))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = -1;
	c->addr.sun_family = AF_UNIX;
	n = snprintf(c->addr.sun_path, sizeof(c->addr.sun_path), "%s/%s.sock", dir, bus);
	if (n < 0 || (size_t)n >= sizeof(c->addr.sun_path)) {
		free(c);
		return -ENAMETOOLONG;
	}
	snprintf(c->bus, sizeof(c->bus), "%s", bus);
	snprintf(c->role, sizeof(c->role), "%s", role);
	c->router_rejoins = strcmp(role, "dataplane") != 0;
	pthread_mutex_init(&c->lock, NULL);
	if (pthread_key_create(&c->tls, thread_router_gone) != 0) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -EAGAIN;
	}
	pthread_mutex_lock(&c->lock);
	rc = session_open_locked(c);
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		if (amqp_code)
			*amqp_code = c->err_code;
		if (cap)
			snprintf(msg, cap, "%s", c->err_msg);
		hbus_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

int hbus_close(hbus_client *c)
{
	struct client_consumer *cc;
	struct client_routes *cr;
	struct client_readers *rb;

	if (!c)
		return -EINVAL;
	/* Routers first: they hold reader slots and read the routes mappings. */
	router_destroy_all(c);
	pthread_key_delete(c->tls);
	while ((cc = c->consumers)) {
		c->consumers = cc->next;
		consumer_free(cc);
	}
	while ((cc = c->as_handles)) {
		c->as_handles = cc->next;
		consumer_free(cc);
	}
	pthread_mutex_lock(&c->lock);
	producers_free_locked(c);
	pthread_mutex_unlock(&c->lock);
	/* Nothing of the session is mapped any more: say so, so hbusd keeps
	 * nothing for it while this process lives on (no reply needed: hbusd
	 * reads what was sent before the close).  Then closing the session
	 * cancels our consumers and gives back what they held. */
	if (c->sock >= 0)
		client_send_locked(c, "{\"op\":\"bye\"}", 12);
	client_drop_locked(c);
	while ((cr = c->routes)) {
		c->routes = cr->next;
		hbus_routes_close(cr->routes);
		free(cr);
	}
	while ((rb = c->readers)) {
		c->readers = rb->next;
		hbus_readers_close(rb->rd);
		free(rb);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
	return 0;
}

int hbus_client_owner(const hbus_client *c, uint32_t *owner)
{
	if (!c || !owner)
		return -EINVAL;
	*owner = atomic_load_explicit(&c->owner, memory_order_relaxed);
	return 0;
}

int hbus_client_error(const hbus_client *c, int *amqp_code, const char **message)
{
	if (!c)
		return -EINVAL;
	if (amqp_code)
		*amqp_code = c->err_code;
	if (message)
		*message = c->err_msg;
	return 0;
}

int hbus_client_counters(const hbus_client *c, struct hbus_client_counters *out)
{
	if (!c || !out)
		return -EINVAL;
	out->published = atomic_load_explicit(&c->published, memory_order_relaxed);
	out->unroutable = atomic_load_explicit(&c->unroutable, memory_order_relaxed);
	out->refused = atomic_load_explicit(&c->refused, memory_order_relaxed);
	return 0;
}

int hbus_call(hbus_client *c, const char *json_request, char *reply, size_t cap)
{
	json_t *r = NULL;
	char *text;
	int rc;

	if (!c || !json_request || (!reply && cap))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	rc = request_text_locked(c, json_request, &r, NULL);
	pthread_mutex_unlock(&c->lock);
	if (!r)
		return rc;
	text = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	if (!text)
		return -ENOMEM;
	if (cap) {
		size_t len = strlen(text);
		if (len >= cap && rc == 0)
			rc = -ENOSPC; /* reply cut to fit: the caller's buffer was too small */
		memcpy(reply, text, len < cap ? len + 1 : cap);
		reply[cap - 1] = '\0';
	}
	free(text);
	return rc;
}
