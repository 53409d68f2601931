/*
 * router.c - routing in the publisher's process: per-thread routers,
 * hbus_publish, and dead-lettering.
 *
 * A router is one thread's view of the bus: a slot in its session's reader
 * block (so hbusd never reuses the table half it is reading) and a map from
 * queue id to an open producer handle.  The fast path of a publish is:
 * pick the active table (one acquire per burst), look the exchange and key
 * up (route.h), and enqueue on each matched queue's handle - no syscall,
 * lock or allocation.  The slow paths are rare and off that line:
 *   - a queue id never seen before: ask hbusd for its descriptor
 *     (open_queue, for:"write") once, then keep the handle;
 *   - a new table generation: grow the map, close handles of queues the
 *     table no longer has (lazily, at the next burst);
 *   - a new session (hbusd restarted): take a slot in the new session's
 *     reader block (queue handles keep their owner id);
 *   - a retired routes file (a restarted hbusd replaced it): the table in
 *     it stays valid for good, so routing goes on by it while the router
 *     asks for a new session (at most every REJOIN_PERIOD_NS), which
 *     brings the new file.
 */
#include "client_internal.h"
#include "queue_internal.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META_BUF_LEN    65536u                 /* an encoded meta block is at most 0xffff */
#define OPEN_RETRY_NS   1000000000ull          /* a refused open is retried after 1 s */
#define QID_LIMIT       (1u << 24)             /* sanity bound on a qid from the table */
#define SESSION_STALE   UINT64_MAX             /* routes retired: rejoin at the next burst */
#define REJOIN_PERIOD_NS 10000000ull           /* a failed rejoin is retried after 10 ms */

struct rqueue {
	hbus_queue *q;
	hbus_router *r;
	uint32_t qid;
	char name[HBUS_NAME_MAX + 1]; /* as the table named it when opened */
	bool excl;         /* opened as the queue's exclusive producer */
};

struct rslot {
	struct rqueue *rq;
	uint64_t retry_ns; /* open refused: not again before this time */
	int err;           /* why the last open failed (hbus_router_queue_error) */
	bool locked_said;  /* a refusal for exclusivity was logged */
};

struct hbus_router {
	hbus_client *c;
	struct hbus_routes *routes; /* the mapping we read */
	struct client_readers *readers; /* the block our slot is in */
	unsigned reader;
	int attached;
	uint64_t session_gen;       /* the session our slot and handles belong to */
	uint64_t rejoin_ns;         /* SESSION_STALE: next time to ask for a session */
	uint32_t owner;
	uint32_t flags;             /* HBUS_PRODUCE_EXCLUSIVE: open queues exclusive */
	const struct hbus_rtable *t;
	uint64_t gen;
	int have_gen;
	unsigned depth;             /* begin/end nesting (dead letters publish inside a burst) */
	unsigned dl_depth;
	struct rslot *map;
	uint32_t map_len;
	uint8_t *meta_buf, *dl_meta_buf;
	hbus_router *next;
};

static void rqueue_close(hbus_router *r, struct rslot *s)
{
	if (s->rq) {
		pthread_mutex_lock(&r->c->lock);
		client_writer_put_locked(r->c, s->rq->qid, s->rq->excl ? s->rq->q : NULL);
		pthread_mutex_unlock(&r->c->lock);
		hbus_queue_close(s->rq->q);
		free(s->rq);
		s->rq = NULL;
	}
}

static int map_grow(hbus_router *r, uint32_t len)
{
	struct rslot *m;

	if (len <= r->map_len)
		return 0;
	if (len > QID_LIMIT)
		return -ERANGE;
	m = realloc(r->map, (size_t)len * sizeof(*m));
	if (!m)
		return -ENOMEM;
	memset(m + r->map_len, 0, (size_t)(len - r->map_len) * sizeof(*m));
	r->map = m;
	r->map_len = len;
	return 0;
}

/* The routes file was replaced by a restarted hbusd: ask for a new session
 * (which brings the new file), rate-limited.  A dataplane's control thread
 * does that itself; its workers never block on the socket. */
static void router_rejoin(hbus_router *r)
{
	uint64_t now = hbus_now_ns();

	if (r->c->router_rejoins && now >= r->rejoin_ns) {
		r->rejoin_ns = now + REJOIN_PERIOD_NS;
		hbus_client_check(r->c);
	}
}

/* A new session: a slot in its reader block; queues opened from now on are
 * opened under its owner id.  The old slot is given back (the block is this
 * process's own: hbusd may still be watching it until it reads idle). */
static void router_resync(hbus_router *r)
{
	hbus_client *c = r->c;
	struct hbus_routes *routes;
	struct client_readers *rb;
	uint64_t sg;
	uint32_t i, owner;
	int rc;

	if (r->session_gen == SESSION_STALE)
		router_rejoin(r);
	pthread_mutex_lock(&c->lock);
	sg = atomic_load_explicit(&c->session_gen, memory_order_acquire);
	routes = client_routes_locked(c);
	rb = client_readers_locked(c);
	owner = atomic_load_explicit(&c->owner, memory_order_relaxed);
	if (r->attached && rb == r->readers && routes == r->routes) {
		/* Still our session: only a retired file brings us here. */
		pthread_mutex_unlock(&c->lock);
		r->session_gen = hbus_routes_retired(routes) ? SESSION_STALE : sg;
		return;
	}
	if (r->attached) {
		hbus_readers_detach(r->readers->rd, r->reader);
		client_readers_put_locked(c, r->readers);
	}
	r->attached = 0;
	r->readers = NULL;
	rc = routes && rb ? hbus_readers_attach(rb->rd, &r->reader) : -ENOTCONN;
	if (rc == 0) {
		rb->users++;
		r->readers = rb;
		r->routes = routes;
		r->attached = 1;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc)
		HBUS_WARN("router: no reader slot in the session's block: %s", hbus_strerror(rc));
	r->owner = owner;
	/* Handles keep the owner id they were opened with (their records
	 * name it; hbusd recovers it when this process exits). */
	for (i = 0; i < r->map_len; i++)
		r->map[i].retry_ns = 0;
	r->session_gen = sg;
	r->have_gen = 0;
}

/* A new table generation: size the map, drop handles of vanished queues. */
static void router_new_generation(hbus_router *r, const struct hbus_rtable *t)
{
	struct hbus_route_queue_info qi;
	uint32_t i;

	map_grow(r, hbus_route_qid_limit(t)); /* on failure the slow path grows it */
	for (i = 0; i < r->map_len; i++) {
		struct rslot *s = &r->map[i];

		s->retry_ns = 0;
		if (!s->rq)
			continue;
		/* The name the table gave when the handle was opened, not the
		 * queue file's header: a client can write that, or truncate
		 * the file (reading it would be a SIGBUS). */
		if (hbus_route_queue_info(t, i, &qi) != 0 || !qi.name ||
		    strcmp(qi.name, s->rq->name) != 0)
			rqueue_close(r, s);
	}
}

const struct hbus_rtable *hbus_router_begin(hbus_router *r)
{
	uint64_t gen;

	if (!r)
		return NULL;
	if (r->depth++ > 0)
		return r->t;
	if (atomic_load_explicit(&r->c->session_gen, memory_order_relaxed) != r->session_gen)
		router_resync(r);
	if (!r->attached)
		return NULL;
	r->t = hbus_routes_acquire(r->routes, r->readers->rd, r->reader, &gen);
	if (r->t && (!r->have_gen || gen != r->gen)) {
		router_new_generation(r, r->t);
		r->gen = gen;
		r->have_gen = 1;
		if (gen & HBUS_ROUTES_RETIRED)
			r->session_gen = SESSION_STALE;
	}
	return r->t;
}

void hbus_router_end(hbus_router *r)
{
	if (!r || r->depth == 0)
		return;
	if (--r->depth == 0) {
		if (r->attached)
			hbus_routes_release(r->readers->rd, r->reader);
		r->t = NULL;
	}
}

static void router_dead_letter(void *ctx, hbus_queue *q, const struct hbus_msg *m,
			       enum hbus_dead_reason why);

/* Slow path: ask hbusd for the queue's descriptor, once (a refusal is
 * retried after OPEN_RETRY_NS).  An exclusive producer's handle is counted
 * with the client's other write handles (client_produce.c). */
static __attribute__((noinline)) hbus_queue *router_open_queue(hbus_router *r, uint32_t qid)
{
	bool excl = r->flags & HBUS_PRODUCE_EXCLUSIVE;
	hbus_client *c = r->c;
	struct hbus_route_queue_info qi;
	struct rqueue *rq;
	struct rslot *s;
	uint64_t now = hbus_now_ns();
	int rc;

	if (map_grow(r, qid + 1) != 0)
		return NULL;
	s = &r->map[qid];
	if (now < s->retry_ns)
		return NULL;
	rq = calloc(1, sizeof(*rq));
	pthread_mutex_lock(&c->lock);
	rc = rq ? client_open_write_locked(c, qid, r->owner, excl, &rq->q) : -ENOMEM;
	if (rc == -EREMOTEIO && (c->err_code == 405 || c->err_code == 404))
		rc = c->err_code == 405 ? -EBUSY : -ENOENT;
	if (rc == -EBUSY && !s->locked_said) {
		s->locked_said = true; /* once: it is retried every OPEN_RETRY_NS */
		HBUS_WARN("router: queue qid %u not fed by this thread: %s", qid, c->err_msg);
	}
	pthread_mutex_unlock(&c->lock);
	s->err = rc;
	if (rc) {
		free(rq);
		s->retry_ns = now + OPEN_RETRY_NS;
		return NULL;
	}
	rq->r = r;
	rq->qid = qid;
	if (r->t && hbus_route_queue_info(r->t, qid, &qi) == 0 && qi.name)
		snprintf(rq->name, sizeof(rq->name), "%s", qi.name);
	rq->excl = excl;
	hbus_queue_set_dead_letter(rq->q, router_dead_letter, rq);
	s->rq = rq;
	return rq->q;
}

int hbus_router_set_flags(hbus_router *r, uint32_t flags)
{
	if (!r || (flags & ~HBUS_PRODUCE_EXCLUSIVE))
		return -EINVAL;
	r->flags = flags;
	return 0;
}

int hbus_router_queue_error(const hbus_router *r, uint32_t qid)
{
	if (!r)
		return -EINVAL;
	return qid < r->map_len && !r->map[qid].rq ? r->map[qid].err : 0;
}

hbus_queue *hbus_router_queue(hbus_router *r, uint32_t qid)
{
	if (!r || r->depth == 0)
		return NULL;
	if (__builtin_expect(qid < r->map_len && r->map[qid].rq != NULL, 1))
		return r->map[qid].rq->q;
	return router_open_queue(r, qid);
}

/*
 * Route one encoded message from exchange xid and enqueue it on every
 * matched queue.  Returns the number of queues that took it, or -ENOENT
 * for an unknown exchange; *matched and *refused say how many matched and
 * how many of those refused it (full, too large, or not openable).
 */
static int route_and_enqueue(hbus_router *r, const struct hbus_rtable *t, uint32_t xid,
			     const struct hbus_meta *meta, const struct hbus_out *out,
			     unsigned *matched, unsigned *refused, unsigned *oversize)
{
	uint32_t qids[HBUS_ROUTE_MAX_QIDS];
	int n, i, done = 0, rc;

	n = hbus_route_lookup(t, xid, meta->routing_key, meta->routing_key_len, meta, qids,
			      HBUS_ROUTE_MAX_QIDS);
	if (n < 0)
		return n;
	*matched = (unsigned)n;
	*refused = 0;
	for (i = 0; i < n; i++) {
		hbus_queue *q = hbus_router_queue(r, qids[i]);

		rc = q ? hbus_queue_enqueue(q, out) : -ENOENT;
		if (rc == -ESTALE) /* our slot was recovered under us: not accepted, retry */
			rc = hbus_queue_enqueue(q, out);
		if (rc == 0)
			done++;
		else
			(*refused)++;
		if (rc == -EMSGSIZE && oversize)
			(*oversize)++;
	}
	return done;
}

static int header_valid(const struct hbus_header *h)
{
	return (h->name || !h->name_len) && (h->value || !h->value_len);
}

int hbus_publish(hbus_client *c, const char *exchange, const char *key,
		 const struct hbus_header *headers, unsigned header_count,
		 const void *body, uint32_t body_len)
{
	return hbus_publish_info(c, exchange, key, headers, header_count, body, body_len, NULL);
}

int hbus_publish_info(hbus_client *c, const char *exchange, const char *key,
		      const struct hbus_header *headers, unsigned header_count,
		      const void *body, uint32_t body_len, struct hbus_publish_info *info)
{
	struct hbus_meta meta;
	struct hbus_out out;
	const struct hbus_rtable *t;
	hbus_router *r;
	size_t xlen, klen;
	unsigned i, matched = 0, refused = 0, oversize = 0;
	uint32_t xid;
	int rc, mlen;

	if (info)
		memset(info, 0, sizeof(*info));
	if (!c || !exchange || !key || (!headers && header_count) ||
	    header_count > HBUS_HEADERS_MAX || (!body && body_len))
		return -EINVAL;
	xlen = strnlen(exchange, HBUS_NAME_MAX + 1);
	klen = strnlen(key, HBUS_NAME_MAX + 1);
	if (xlen > HBUS_NAME_MAX || klen > HBUS_NAME_MAX)
		return -EINVAL;
	meta.exchange = exchange;
	meta.exchange_len = (uint8_t)xlen;
	meta.routing_key = key;
	meta.routing_key_len = (uint8_t)klen;
	meta.header_count = (uint16_t)header_count;
	for (i = 0; i < header_count; i++) {
		if (!header_valid(&headers[i]))
			return -EINVAL;
		meta.headers[i] = headers[i];
	}
	r = client_thread_router(c);
	if (!r)
		return -ENOMEM;
	mlen = hbus_meta_encode(&meta, r->meta_buf, META_BUF_LEN);
	if (mlen < 0)
		return mlen == -ENOSPC ? -EINVAL : mlen;
	out = (struct hbus_out){ .body = body, .body_len = body_len, .meta = r->meta_buf,
				 .meta_len = (uint16_t)mlen, .send_ts_ns = hbus_now_ns() };
	t = hbus_router_begin(r);
	if (!t) {
		rc = -ENOTCONN;
	} else if ((rc = hbus_route_exchange(t, exchange, xlen, &xid)) == 0) {
		rc = route_and_enqueue(r, t, xid, &meta, &out, &matched, &refused, &oversize);
	}
	hbus_router_end(r);
	if (rc < 0)
		return rc;
	if (info) {
		info->matched = matched;
		info->enqueued = (unsigned)rc;
		info->oversize = oversize;
		info->refused = refused - oversize;
	}
	if (matched == 0)
		atomic_fetch_add_explicit(&c->unroutable, 1, memory_order_relaxed);
	if (refused)
		atomic_fetch_add_explicit(&c->refused, refused, memory_order_relaxed);
	if (rc > 0)
		atomic_fetch_add_explicit(&c->published, 1, memory_order_relaxed);
	return rc;
}

/* ----------------------------------------------------------- dead letters */

static const char *const dead_reason_name[] = {
	[HBUS_DEAD_REJECTED] = "rejected",
	[HBUS_DEAD_EXPIRED] = "expired",
	[HBUS_DEAD_MAXLEN] = "maxlen",
};

static void header_put(struct hbus_meta *m, const char *name, const char *value, size_t vlen,
		       int replace)
{
	size_t nlen = strlen(name);
	unsigned i;

	for (i = 0; i < m->header_count; i++) {
		struct hbus_header *h = &m->headers[i];
		if (h->name_len == nlen && memcmp(h->name, name, nlen) == 0) {
			if (!replace)
				return;
			break;
		}
	}
	if (i == HBUS_HEADERS_MAX)
		return; /* no room: the message keeps the headers it has */
	m->headers[i] = (struct hbus_header){ .name = name, .name_len = (uint8_t)nlen,
					      .value = value, .value_len = (uint16_t)vlen };
	if (i == m->header_count)
		m->header_count++;
}

/*
 * Republish a message leaving queue qid for a dead-letter reason to the
 * queue's dead-letter exchange, RabbitMQ style (rabbit_dead_letter): the
 * message's exchange becomes the DLX, its routing key the queue's
 * dead-letter routing key when it has one (else it keeps its own), headers
 * x-first-death-{reason,queue,exchange} are added once and
 * x-last-death-{reason,queue,exchange} set, where the exchange is the one
 * the message was published to before this death.  A message that dies
 * again while being dead-lettered is not dead-lettered twice (no cycles):
 * the ring counts it.
 */
static void dead_letter_via(hbus_router *r, uint32_t qid, const struct hbus_msg *m,
			    enum hbus_dead_reason why)
{
	struct hbus_route_queue_info qi;
	struct hbus_meta meta;
	struct hbus_out out;
	const struct hbus_rtable *t;
	const char *reason = why < sizeof(dead_reason_name) / sizeof(dead_reason_name[0]) &&
			     dead_reason_name[why] ? dead_reason_name[why] : "unknown";
	unsigned matched, refused;
	const char *dlx;
	size_t qlen, dlx_len;
	int mlen;

	if (!r || r->dl_depth)
		return;
	r->dl_depth++;
	t = hbus_router_begin(r);
	if (!t || hbus_route_queue_info(t, qid, &qi) != 0 || qi.dlx_xid == HBUS_ROUTE_NONE)
		goto out;
	if (hbus_meta_decode(m->meta, m->meta_len, &meta) != 0)
		hbus_meta_decode(NULL, 0, &meta);
	qlen = qi.name ? strnlen(qi.name, HBUS_NAME_MAX) : 0;
	header_put(&meta, "x-first-death-reason", reason, strlen(reason), 0);
	header_put(&meta, "x-first-death-queue", qi.name, qlen, 0);
	header_put(&meta, "x-first-death-exchange", meta.exchange, meta.exchange_len, 0);
	header_put(&meta, "x-last-death-reason", reason, strlen(reason), 1);
	header_put(&meta, "x-last-death-queue", qi.name, qlen, 1);
	header_put(&meta, "x-last-death-exchange", meta.exchange, meta.exchange_len, 1);
	/* The header values above still point at the old name (in m->meta);
	 * the new one is a view into t, valid until hbus_router_end. */
	if (hbus_route_exchange_name(t, qi.dlx_xid, &dlx, &dlx_len) == 0) {
		meta.exchange = dlx;
		meta.exchange_len = (uint8_t)dlx_len; /* <= HBUS_NAME_MAX */
	}
	if (qi.dlx_key && qi.dlx_key_len <= HBUS_NAME_MAX) {
		meta.routing_key = qi.dlx_key;
		meta.routing_key_len = (uint8_t)qi.dlx_key_len;
	}
	mlen = hbus_meta_encode(&meta, r->dl_meta_buf, META_BUF_LEN);
	if (mlen < 0)
		goto out;
	out = (struct hbus_out){ .body = m->body, .body_len = m->body_len, .meta = r->dl_meta_buf,
				 .meta_len = (uint16_t)mlen, .send_ts_ns = m->send_ts_ns };
	route_and_enqueue(r, t, qi.dlx_xid, &meta, &out, &matched, &refused, NULL);
out:
	hbus_router_end(r);
	r->dl_depth--;
}

static void router_dead_letter(void *ctx, hbus_queue *q, const struct hbus_msg *m,
			       enum hbus_dead_reason why)
{
	struct rqueue *rq = ctx;

	(void)q;
	dead_letter_via(rq->r, rq->qid, m, why);
}

void client_dead_letter(void *ctx, hbus_queue *q, const struct hbus_msg *m,
			enum hbus_dead_reason why)
{
	struct client_consumer *cc = ctx;

	(void)q;
	dead_letter_via(client_thread_router(cc->client), cc->qid, m, why);
}

/* ------------------------------------------------------------ lifecycle */

int hbus_router_open(hbus_client *c, hbus_router **out)
{
	hbus_router *r;

	if (!c || !out)
		return -EINVAL;
	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->c = c;
	r->meta_buf = malloc(META_BUF_LEN);
	r->dl_meta_buf = malloc(META_BUF_LEN);
	if (!r->meta_buf || !r->dl_meta_buf) {
		free(r->meta_buf);
		free(r->dl_meta_buf);
		free(r);
		return -ENOMEM;
	}
	router_resync(r);
	if (!r->attached) {
		free(r->meta_buf);
		free(r->dl_meta_buf);
		free(r);
		return -ENOSPC; /* every slot of the session's reader block is taken */
	}
	pthread_mutex_lock(&c->lock);
	r->next = c->routers;
	c->routers = r;
	pthread_mutex_unlock(&c->lock);
	*out = r;
	return 0;
}

int hbus_router_close(hbus_router *r)
{
	hbus_client *c;
	hbus_router **pp;
	uint32_t i;

	if (!r)
		return -EINVAL;
	c = r->c;
	if (r->depth) {
		r->depth = 1;
		hbus_router_end(r);
	}
	pthread_mutex_lock(&c->lock);
	for (pp = &c->routers; *pp && *pp != r; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = r->next;
	if (r->attached) {
		hbus_readers_detach(r->readers->rd, r->reader);
		client_readers_put_locked(c, r->readers);
	}
	pthread_mutex_unlock(&c->lock);
	if (pthread_getspecific(c->tls) == r)
		pthread_setspecific(c->tls, NULL);
	for (i = 0; i < r->map_len; i++)
		rqueue_close(r, &r->map[i]);
	free(r->map);
	free(r->meta_buf);
	free(r->dl_meta_buf);
	free(r);
	return 0;
}

hbus_router *client_thread_router(hbus_client *c)
{
	hbus_router *r = pthread_getspecific(c->tls);

	if (r)
		return r;
	if (hbus_router_open(c, &r) != 0)
		return NULL;
	pthread_setspecific(c->tls, r);
	return r;
}

void router_destroy_all(hbus_client *c)
{
	for (;;) {
		hbus_router *r;

		pthread_mutex_lock(&c->lock);
		r = c->routers;
		pthread_mutex_unlock(&c->lock);
		if (!r)
			break;
		hbus_router_close(r);
	}
}
