/*
 * dispatch.c - one request in, one reply out: field checks, permissions,
 * then the model.  Which permission each op needs follows RabbitMQ's
 * access-control table (docs/CONTROL.md lists it).  The gateway's ops are
 * in dispatch_gw.c.
 */
#include "dispatch.h"
#include "args.h"
#include "defs.h"
#include "log.h"

#include <errno.h>
#include <string.h>

json_t *reply_error(int code, const char *msg)
{
	return json_pack("{s:b, s:i, s:s}", "ok", 0, "code", code, "error", msg);
}

static json_t *ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

static int perm_as(struct op_ctx *c, enum perm_kind k, const char *noun, const char *name,
		   struct herr *e)
{
	if (c->vs)
		return perms_check_amqp(&c->d->perms, c->vs->user, k, noun, name, e);
	return perms_check(&c->d->perms, &c->s->peer, k, noun, name, e);
}

/* perm_ops.h's checker: the same permission function for requests and
 * imports. */
static int check_cb(void *ctx, enum perm_kind k, const char *noun, const char *name,
		    struct herr *e)
{
	return perm_as(ctx, k, noun, name, e);
}

static int perm(struct op_ctx *c, enum perm_kind k, const char *noun, const char *name)
{
	return perm_as(c, k, noun, name, &c->e);
}

json_t *dispatch_ok(void)
{
	return ok();
}

int dispatch_perm(struct op_ctx *c, enum perm_kind k, const char *noun, const char *name)
{
	return perm(c, k, noun, name);
}

static json_t *op_hello(struct op_ctx *c)
{
	struct hbusd *d = c->d;
	struct session *s = c->s;
	struct orphan *o;
	const char *role;
	int64_t version, pid, want;
	bool resumed = false;
	uint32_t owner = 0;

	if (s->owner) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "this session already said hello (owner %u)",
			 s->owner);
		return NULL;
	}
	if (arg_str(c->req, "role", &role, "client", c->op, &c->e) ||
	    arg_int(c->req, "version", &version, HBUSD_PROTOCOL_VERSION, false, 0, INT32_MAX, c->op,
		    &c->e) ||
	    arg_int(c->req, "pid", &pid, 0, false, 0, INT32_MAX, c->op, &c->e) ||
	    arg_int(c->req, "owner", &want, 0, false, 0, HBUS_OWNER_MAX, c->op, &c->e))
		return NULL;
	if (version != HBUSD_PROTOCOL_VERSION) {
		herr_set(&c->e, AMQP_NOT_IMPLEMENTED,
			 "protocol version %lld is not supported: this hbusd speaks version %d",
			 (long long)version, HBUSD_PROTOCOL_VERSION);
		return NULL;
	}
	if (strcmp(role, "client") && strcmp(role, "dataplane")) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "hello: role '%s' is not 'client' or 'dataplane'",
			 role);
		return NULL;
	}
	if (perms_may_connect(&d->perms, &s->peer, &c->e))
		return NULL;
	/* Resuming is only for the very process that held the id before the
	 * restart (the kernel's pid and its start time, not what it says). */
	o = want ? orphan_find(d, (uint32_t)want) : NULL;
	if (o && o->pid == s->peer.pid && o->start_time == s->start_time) {
		owner = o->owner;
		orphan_forget(d, o);
		resumed = true;
		s->all_queues = true;
	} else {
		/* The last entries of the table are kept for root and hbusd's
		 * uid: nobody else can lock them out. */
		unsigned reserve = perms_is_admin(&d->perms, &s->peer) ? 0 : HBUSD_SB_ADMIN_RESERVE;
		int rc;

		owner = sb_alloc_owner(&d->sb, NULL, NULL);
		rc = owner ? sb_session_add(&d->sb, owner, s->peer.pid, s->start_time, reserve)
			   : -ENOSPC;
		if (rc && owner && sb_sweep(d)) /* entries nobody holds: taken back */
			rc = sb_session_add(&d->sb, owner, s->peer.pid, s->start_time, reserve);
		if (rc) {
			herr_set(&c->e, AMQP_PRECONDITION,
				 "too many sessions on bus '%s': the superblock holds %u%s", d->o.bus,
				 HBUS_SUPER_SESSIONS, reserve ? ", the last ones kept for root" : "");
			return NULL;
		}
	}
	s->owner = owner;
	snprintf(s->role, sizeof(s->role), "%s", role);
	HBUS_INFO("session %llu: hello from pid %d (user %s, %s): owner %u%s",
		  (unsigned long long)s->id, (int)s->peer.pid, s->peer.user, role, owner,
		  resumed ? " (resumed)" : "");
	c->fds[0] = d->routes_fd;
	/* bus_dir: where the dataplane keeps its counters file, so that it
	 * follows hbusd's --shm-dir rather than guessing it. */
	return json_pack("{s:b, s:I, s:s, s:I, s:I, s:b, s:s}", "ok", 1, "owner", (json_int_t)owner,
			 "bus", d->o.bus, "epoch", (json_int_t)atomic_load(&d->sb.sb->epoch),
			 "generation", (json_int_t)d->model.generation, "resumed", resumed,
			 "bus_dir", d->bus_dir);
}

static json_t *op_declare_exchange(struct op_ctx *c)
{
	struct exchange_args a;
	bool passive;

	if (args_exchange(c->req, &a, c->op, &c->e) ||
	    arg_bool(c->req, "passive", &passive, false, c->op, &c->e))
		return NULL;
	if (!passive && perm_declare_exchange(&c->who, &a, &c->e))
		return NULL;
	if (model_declare_exchange(&c->d->model, &a, passive, &c->e))
		return NULL;
	return ok();
}

static json_t *op_delete_exchange(struct op_ctx *c)
{
	const char *name;
	bool if_unused;

	if (arg_str(c->req, "name", &name, NULL, c->op, &c->e) ||
	    arg_bool(c->req, "if_unused", &if_unused, false, c->op, &c->e) ||
	    perm(c, PERM_CONFIGURE, "exchange", name) ||
	    model_delete_exchange(&c->d->model, name, if_unused, &c->e))
		return NULL;
	return ok();
}

static json_t *op_declare_queue(struct op_ctx *c)
{
	struct model *m = &c->d->model;
	struct queue_args a;
	struct mx_queue *q;
	char gen[40];
	bool passive;

	if (args_queue(c->req, &a, c->op, &c->e) ||
	    arg_bool(c->req, "passive", &passive, false, c->op, &c->e))
		return NULL;
	if (!passive) {
		/* Permissions apply to the name the queue will really have. */
		if (!a.name[0]) {
			model_server_name(m, gen, sizeof(gen));
			a.name = gen;
			a.server_named = true;
		}
		if (perm_declare_queue(&c->who, &a, &c->e))
			return NULL;
	}
	if (model_declare_queue(m, &a, c->owner, passive, &q, &c->e))
		return NULL;
	return report_queue(m, q);
}

static json_t *op_delete_queue(struct op_ctx *c)
{
	const char *name;
	bool if_unused, if_empty;
	uint64_t messages = 0;

	if (arg_str(c->req, "name", &name, NULL, c->op, &c->e) ||
	    arg_bool(c->req, "if_unused", &if_unused, false, c->op, &c->e) ||
	    arg_bool(c->req, "if_empty", &if_empty, false, c->op, &c->e) ||
	    perm(c, PERM_CONFIGURE, "queue", name) ||
	    model_delete_queue(&c->d->model, name, c->owner, if_unused, if_empty, &messages,
			       &c->e))
		return NULL;
	return json_pack("{s:b, s:I}", "ok", 1, "messages", (json_int_t)messages);
}

static json_t *op_purge_queue(struct op_ctx *c)
{
	const char *name;
	uint64_t purged = 0;

	if (arg_str(c->req, "name", &name, NULL, c->op, &c->e) ||
	    perm(c, PERM_READ, "queue", name) ||
	    model_purge_queue(&c->d->model, name, c->owner, &purged, &c->e))
		return NULL;
	return json_pack("{s:b, s:I}", "ok", 1, "purged", (json_int_t)purged);
}

static json_t *op_bind(struct op_ctx *c)
{
	struct hbus_header hdrs[HBUS_HEADERS_MAX];
	struct binding_args a;
	bool unbind = !strcmp(c->op, "unbind");

	if (args_binding(c->req, &a, hdrs, c->op, &c->e) ||
	    perm_bind(&c->who, &a, &c->e))
		return NULL;
	if ((unbind ? model_unbind : model_bind)(&c->d->model, &a, c->owner, &c->e))
		return NULL;
	return ok();
}

/* The queue file, and a protected queue's data file: read-write for a
 * writer, read-only for a reader. */
static json_t *queue_fd_reply(struct op_ctx *c, struct mx_queue *q, const char *tag, bool write)
{
	json_t *r = json_pack("{s:b, s:I, s:s, s:I, s:I}", "ok", 1, "qid", (json_int_t)q->qid,
			      "name", q->name, "capacity", (json_int_t)q->cfg.capacity,
			      "slot_size", (json_int_t)q->cfg.slot_size);

	if (r && tag)
		json_object_set_new(r, "consumer_tag", json_string(tag));
	if (c->vs)
		vsession_note_qid(c->vs, q->qid);
	else
		server_note_qid(c->s, q->qid);
	c->fds[0] = q->fd;
	c->fds[1] = write ? q->data_fd : q->data_ro_fd;
	return r;
}

static json_t *op_open_queue(struct op_ctx *c)
{
	struct model *m = &c->d->model;
	struct mx_queue *q;
	const char *name, *mode;
	int64_t qid;
	bool exclusive;
	json_t *r;

	if (arg_int(c->req, "qid", &qid, 0, false, 1, UINT32_MAX - 1, c->op, &c->e) ||
	    arg_str(c->req, "name", &name, "", c->op, &c->e) ||
	    arg_str(c->req, "for", &mode, NULL, c->op, &c->e) ||
	    arg_bool(c->req, "exclusive", &exclusive, false, c->op, &c->e))
		return NULL;
	if (strcmp(mode, "write") && strcmp(mode, "read")) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "open_queue: 'for' is '%s', not 'write' or 'read'",
			 mode);
		return NULL;
	}
	if (!qid && !name[0]) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "open_queue: give 'qid' or 'name'");
		return NULL;
	}
	q = qid ? model_queue_by_qid(m, (uint32_t)qid) : model_queue(m, name);
	if (!q) {
		if (qid)
			herr_set(&c->e, AMQP_NOT_FOUND, "no queue with qid %lld", (long long)qid);
		else
			herr_set(&c->e, AMQP_NOT_FOUND, "no queue '%s'", name);
		return NULL;
	}
	if (qid && name[0] && strcmp(name, q->name)) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "open_queue: qid %lld is queue '%s', not '%s'",
			 (long long)qid, q->name, name);
		return NULL;
	}
	/* A gateway's own session publishes for its virtual sessions: their
	 * exclusive queues are its too. */
	if ((!q->exclusive || c->vs || !vsession_find(c->s, q->excl_owner)) &&
	    model_queue_access(m, q, c->owner, &c->e))
		return NULL;
	if (exclusive && mode[0] != 'w') {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "open_queue: 'exclusive' is for 'write' (an "
			 "exclusive consumer registers with consume)");
		return NULL;
	}
	if (perm(c, mode[0] == 'w' ? PERM_WRITE : PERM_READ, "queue", q->name) ||
	    grant_open(m, q, c->owner, mode[0] == 'w', exclusive, &c->e))
		return NULL;
	r = queue_fd_reply(c, q, NULL, mode[0] == 'w');
	if (r && exclusive)
		json_object_set_new(r, "exclusive", json_true());
	return r;
}

static json_t *op_consume(struct op_ctx *c)
{
	struct mx_consumer *cons;
	const char *queue, *mode, *tag;
	int64_t prefetch;
	bool exclusive;
	uint32_t ack;
	json_t *r;

	if (arg_str(c->req, "queue", &queue, NULL, c->op, &c->e) ||
	    arg_str(c->req, "ack_mode", &mode, "auto", c->op, &c->e) ||
	    arg_int(c->req, "prefetch", &prefetch, 0, false, 0, UINT32_MAX, c->op, &c->e) ||
	    arg_bool(c->req, "exclusive", &exclusive, false, c->op, &c->e) ||
	    arg_str(c->req, "consumer_tag", &tag, "", c->op, &c->e))
		return NULL;
	if (!strcmp(mode, "auto")) {
		ack = HBUS_ACK_AUTO;
	} else if (!strcmp(mode, "manual")) {
		ack = HBUS_ACK_MANUAL;
	} else {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "consume: ack_mode '%s' is not 'auto' or 'manual'",
			 mode);
		return NULL;
	}
	if (perm(c, PERM_READ, "queue", queue) ||
	    model_consume(&c->d->model, queue, c->owner, ack, (uint32_t)prefetch, exclusive, tag,
			  &cons, &c->e))
		return NULL;
	r = queue_fd_reply(c, cons->q, cons->tag, false);
	if (r)
		json_object_set_new(r, "exclusive_fast", json_boolean(cons->fast));
	return r;
}

/* A reader of a protected queue cannot write a message's redelivered
 * flag: hbusd requeues the message for it, if the asker holds it. */
static json_t *op_requeue(struct op_ctx *c)
{
	struct mx_queue *q;
	int64_t qid, pos;
	int rc;

	if (arg_int(c->req, "qid", &qid, 0, true, 1, UINT32_MAX - 1, c->op, &c->e) ||
	    arg_int(c->req, "pos", &pos, 0, true, 0, INT64_MAX, c->op, &c->e))
		return NULL;
	q = model_queue_by_qid(&c->d->model, (uint32_t)qid);
	if (!q) {
		herr_set(&c->e, AMQP_NOT_FOUND, "requeue: no queue with qid %lld", (long long)qid);
		return NULL;
	}
	rc = mq_requeue_for(q, c->owner, (uint64_t)pos);
	if (rc == 0)
		return ok();
	if (rc == -ESTALE)
		herr_set(&c->e, AMQP_NOT_FOUND, "requeue: queue '%s' has no message at %lld held by "
			 "this session (acked, requeued or recovered already)", q->name,
			 (long long)pos);
	else
		herr_set(&c->e, rc == -EUCLEAN || rc == -EFAULT || rc == -EAGAIN ? AMQP_PRECONDITION
										   : AMQP_INTERNAL_ERROR,
			 "requeue on queue '%s': %s", q->name, rc == -EFAULT ? "the queue is "
			 "corrupt (its file was truncated)" : hbus_strerror(rc));
	return NULL;
}

static json_t *op_cancel(struct op_ctx *c)
{
	const char *tag;

	if (arg_str(c->req, "consumer_tag", &tag, NULL, c->op, &c->e) ||
	    model_cancel(&c->d->model, tag, c->owner, &c->e))
		return NULL;
	return ok();
}

static json_t *op_map_udp(struct op_ctx *c)
{
	struct udpmap_args a;
	unsigned i;

	if (!strcmp(c->op, "map_udp")) {
		if (args_udpmap(c->req, &a, true, c->op, &c->e) ||
		    perm_map_udp(&c->who, &a, &c->e) ||
		    model_map_udp(&c->d->model, &a, &c->e))
			return NULL;
		return ok();
	}
	if (args_udpmap(c->req, &a, false, c->op, &c->e))
		return NULL;
	for (i = 0; i < c->d->model.udpmaps.n; i++) {
		struct mx_udpmap *u = c->d->model.udpmaps.v[i];
		if (u->ip_be == a.ip_be && u->port == a.port &&
		    perm(c, PERM_CONFIGURE, "exchange", u->exchange))
			return NULL;
	}
	if (model_unmap_udp(&c->d->model, a.ip_be, a.port, &c->e))
		return NULL;
	return ok();
}

static json_t *op_list(struct op_ctx *c)
{
	const char *what;

	if (arg_str(c->req, "what", &what, NULL, c->op, &c->e))
		return NULL;
	return report_list(c->d, what, &c->e);
}

/* The client unmapped everything of this session (hbus_close) and says
 * so: the session closes as if its process had exited, so nothing is kept
 * for it until it does (docs/CONTROL.md).  A client that says it while
 * still writing can only spoil its own writes to queues it holds. */
static json_t *op_bye(struct op_ctx *c)
{
	c->s->bye = true;
	return ok();
}

static json_t *op_stat(struct op_ctx *c)
{
	return report_stat(c->d);
}

static json_t *op_export(struct op_ctx *c)
{
	json_t *defs = defs_render(&c->d->model, DEFS_EXPORT);

	if (!defs) {
		herr_set(&c->e, AMQP_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	return json_pack("{s:b, s:o}", "ok", 1, "definitions", defs);
}

static json_t *op_import(struct op_ctx *c)
{
	json_t *defs = json_object_get(c->req, "definitions");

	if (!json_is_object(defs)) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "import: field 'definitions' must be an object");
		return NULL;
	}
	if (defs_import(&c->d->model, defs, c->owner, &c->who, &c->e))
		return NULL;
	return ok();
}

#define F_COMMON "op", "id", "as"

static const char *const F_HELLO[] = { F_COMMON, "role", "version", "pid", "owner", NULL };
static const char *const F_DECL_X[] = { F_COMMON, "name", "type", "durable", "auto_delete",
					"alternate_exchange", "passive", NULL };
static const char *const F_DEL_X[] = { F_COMMON, "name", "if_unused", NULL };
static const char *const F_DECL_Q[] = { F_COMMON, "name", "capacity", "slot_size", "overflow",
					"ttl_ms", "dead_letter_exchange", "dead_letter_routing_key",
					"durable", "exclusive", "auto_delete", "numa_node",
					"latency", "protected", "passive", NULL };
static const char *const F_DEL_Q[] = { F_COMMON, "name", "if_unused", "if_empty", NULL };
static const char *const F_PURGE[] = { F_COMMON, "name", NULL };
static const char *const F_BIND[] = { F_COMMON, "source", "destination", "destination_type",
				      "key", "headers", "match", NULL };
static const char *const F_OPEN[] = { F_COMMON, "qid", "name", "for", "exclusive", NULL };
static const char *const F_CONSUME[] = { F_COMMON, "queue", "ack_mode", "prefetch", "exclusive",
					 "consumer_tag", NULL };
static const char *const F_CANCEL[] = { F_COMMON, "consumer_tag", NULL };
static const char *const F_REQUEUE[] = { F_COMMON, "qid", "pos", NULL };
static const char *const F_MAP[] = { F_COMMON, "addr", "port", "exchange", "key", NULL };
static const char *const F_UNMAP[] = { F_COMMON, "addr", "port", NULL };
static const char *const F_LIST[] = { F_COMMON, "what", NULL };
static const char *const F_NONE[] = { F_COMMON, NULL };
static const char *const F_IMPORT[] = { F_COMMON, "definitions", NULL };
static const char *const F_LOGIN[] = { F_COMMON, "user", "password", NULL };
static const char *const F_AUTH[] = { F_COMMON, "perm", "exchange", "queue", NULL };
static const char *const F_REPORT[] = { F_COMMON, "stats", NULL };

static const struct op {
	const char *name;
	json_t *(*fn)(struct op_ctx *c);
	const char *const *fields;
	bool as;  /* may act for a virtual session ("as") */
} ops[] = {
	{ "hello", op_hello, F_HELLO, false },
	{ "declare_exchange", op_declare_exchange, F_DECL_X, true },
	{ "delete_exchange", op_delete_exchange, F_DEL_X, true },
	{ "declare_queue", op_declare_queue, F_DECL_Q, true },
	{ "delete_queue", op_delete_queue, F_DEL_Q, true },
	{ "purge_queue", op_purge_queue, F_PURGE, true },
	{ "bind", op_bind, F_BIND, true },
	{ "unbind", op_bind, F_BIND, true },
	{ "open_queue", op_open_queue, F_OPEN, true },
	{ "consume", op_consume, F_CONSUME, true },
	{ "cancel", op_cancel, F_CANCEL, true },
	{ "requeue", op_requeue, F_REQUEUE, true },
	{ "map_udp", op_map_udp, F_MAP, false },
	{ "unmap_udp", op_map_udp, F_UNMAP, false },
	{ "list", op_list, F_LIST, false },
	{ "stat", op_stat, F_NONE, false },
	{ "bye", op_bye, F_NONE, false },
	{ "export", op_export, F_NONE, false },
	{ "import", op_import, F_IMPORT, false },
	{ "amqp_login", op_amqp_login, F_LOGIN, false },
	{ "amqp_logout", op_amqp_logout, F_NONE, true },
	{ "authorize", op_authorize, F_AUTH, true },
	{ "gateway_report", op_gateway_report, F_REPORT, false },
};

/* "as": the request acts for one of this session's virtual sessions. */
static int resolve_as(struct op_ctx *c, const struct op *op)
{
	int64_t as;

	c->owner = c->s->owner;
	if (!json_object_get(c->req, "as"))
		return 0;
	if (!op->as)
		return herr_set(&c->e, AMQP_COMMAND_INVALID, "%s: field 'as' is not accepted here",
				c->op);
	if (arg_int(c->req, "as", &as, 0, true, 1, HBUS_OWNER_MAX, c->op, &c->e))
		return -1;
	c->vs = vsession_find(c->s, (uint32_t)as);
	if (!c->vs)
		return herr_set(&c->e, AMQP_NOT_FOUND, "%s: no virtual session %lld on this "
				"session (logged out, or hbusd restarted)", c->op, (long long)as);
	c->owner = c->vs->owner;
	return 0;
}

json_t *dispatch_request(struct hbusd *d, struct session *s, json_t *req, int fds_out[2],
			 bool *changed)
{
	struct op_ctx c = { .d = d, .s = s, .req = req, .fds = { -1, -1 } };
	json_t *reply = NULL, *id = json_object_get(req, "id");
	const struct op *op = NULL;
	uint64_t v0 = d->model.version;
	unsigned i;

	c.who = (struct perm_checker){ .fn = check_cb, .ctx = &c };

	if (arg_str(req, "op", &c.op, NULL, "request", &c.e) == 0) {
		for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (!strcmp(ops[i].name, c.op))
				op = &ops[i];
		if (!op)
			herr_set(&c.e, AMQP_NOT_IMPLEMENTED, "unknown op '%.64s'", c.op);
		else if (!s->owner && op->fn != op_hello)
			herr_set(&c.e, AMQP_COMMAND_INVALID, "op '%s' before hello: say hello first",
				 c.op);
		else if (args_check_fields(req, op->fields, c.op, &c.e) == 0 &&
			 resolve_as(&c, op) == 0)
			reply = op->fn(&c);
	}
	if (!reply) {
		hbus_log(c.e.code == AMQP_INTERNAL_ERROR ? HBUS_LOG_ERR : HBUS_LOG_DEBUG,
			 "session %llu (user %s): refused %d: %s", (unsigned long long)s->id,
			 s->peer.user, c.e.code, c.e.msg);
		reply = reply_error(c.e.code, c.e.msg);
		c.fds[0] = c.fds[1] = -1;
	}
	*changed = d->model.version != v0;
	if (reply && id)
		json_object_set(reply, "id", id);
	fds_out[0] = c.fds[0];
	fds_out[1] = c.fds[1];
	return reply;
}

json_t *dispatch_text(struct hbusd *d, struct session *s, const char *buf, size_t n,
		      int fds_out[2], bool *changed)
{
	json_error_t jerr;
	json_t *req, *reply;
	char msg[300];

	fds_out[0] = fds_out[1] = -1;
	*changed = false;
	if (n == 0)
		return reply_error(AMQP_SYNTAX_ERROR, "empty request");
	/* Checked before buf is read: the socket layer passes the length the
	 * peer sent, which may be more than it could receive. */
	if (n > d->o.max_request) {
		snprintf(msg, sizeof(msg), "request of %zu bytes is larger than the limit of %u "
			 "bytes (hbusd --max-request)", n, d->o.max_request);
		return reply_error(AMQP_SYNTAX_ERROR, msg);
	}
	req = json_loadb(buf, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!req) {
		snprintf(msg, sizeof(msg), "request is not JSON: %s (at byte %d)", jerr.text,
			 jerr.position);
		return reply_error(AMQP_SYNTAX_ERROR, msg);
	}
	if (!json_is_object(req)) {
		json_decref(req);
		return reply_error(AMQP_SYNTAX_ERROR, "request must be a JSON object");
	}
	reply = dispatch_request(d, s, req, fds_out, changed);
	json_decref(req);
	return reply;
}
