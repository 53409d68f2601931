/*
 * defs.c - topology <-> JSON: render (definitions, export, state), import,
 * and the two ways of writing a file atomically.
 */
#include "defs.h"
#include "args.h"
#include "log.h"
#include "perm_ops.h"
#include "shm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- rendering */

json_t *defs_render_exchange(const struct mx_exchange *x, enum defs_mode mode)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:b}", "name", x->name, "type", xtype_name(x->type),
			      "durable", x->durable, "auto_delete", x->auto_delete);

	if (o && x->alternate)
		json_object_set_new(o, "alternate_exchange", json_string(x->alternate));
	if (o && mode == DEFS_STATE)
		json_object_set_new(o, "had_binding", json_boolean(x->had_binding));
	return o;
}

static json_t *render_queue(const struct mx_queue *q, enum defs_mode mode)
{
	json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:b, s:b}", "name", q->name,
			      "capacity", (json_int_t)q->cfg.capacity,
			      "slot_size", (json_int_t)q->cfg.slot_size,
			      "overflow", q->cfg.overflow == HBUS_OVERFLOW_DROP_HEAD ? "drop-head" : "reject",
			      "ttl_ms", (json_int_t)q->cfg.ttl_ms,
			      "numa_node", (json_int_t)q->cfg.numa_node,
			      "durable", q->durable, "auto_delete", q->auto_delete);

	if (!o)
		return NULL;
	/* Flags only when set: older files stay as they were. */
	if (q->cfg.flags & HBUS_QUEUE_F_LATENCY)
		json_object_set_new(o, "latency", json_true());
	if (q->cfg.flags & HBUS_QUEUE_F_PROTECTED)
		json_object_set_new(o, "protected", json_true());
	if (q->dlx)
		json_object_set_new(o, "dead_letter_exchange", json_string(q->dlx));
	if (q->dlx_key)
		json_object_set_new(o, "dead_letter_routing_key", json_string(q->dlx_key));
	if (mode == DEFS_STATE) {
		json_object_set_new(o, "qid", json_integer(q->qid));
		json_object_set_new(o, "exclusive", json_boolean(q->exclusive));
		json_object_set_new(o, "owner", json_integer(q->excl_owner));
		json_object_set_new(o, "had_consumer", json_boolean(q->had_consumer));
		grants_render(q, o);
	}
	return o;
}

json_t *defs_render_binding(const struct mx_binding *b)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "source", b->source, "destination",
			      b->dest, "destination_type", b->dest_is_exchange ? "exchange" : "queue",
			      "key", b->key, "match", b->match_all ? "all" : "any");
	json_t *h;
	uint16_t i;

	if (o && b->n_headers) {
		h = json_object();
		for (i = 0; h && i < b->n_headers; i++)
			json_object_set_new(h, b->headers[i].name,
					    json_stringn(b->headers[i].value, b->headers[i].value_len));
		json_object_set_new(o, "headers", h);
	}
	return o;
}

json_t *defs_render_udpmap(const struct mx_udpmap *u)
{
	const uint8_t *b = (const uint8_t *)&u->ip_be;
	char ip[16];

	snprintf(ip, sizeof(ip), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	return json_pack("{s:s, s:i, s:s, s:s}", "addr", ip, "port", (int)u->port, "exchange",
			 u->exchange, "key", u->key);
}

/* Is the queue or exchange `name` part of what mode writes? */
static bool included(const struct model *m, const char *name, bool is_exchange,
		     enum defs_mode mode)
{
	if (is_exchange) {
		const struct mx_exchange *x = model_exchange(m, name);
		if (!name[0])
			return true;
		return x && (mode != DEFS_DURABLE || x->durable);
	} else {
		const struct mx_queue *q = model_queue(m, name);
		if (!q)
			return false;
		if (mode == DEFS_STATE)
			return true;
		return !q->exclusive && (mode == DEFS_EXPORT || q->durable);
	}
}

json_t *defs_render(const struct model *m, enum defs_mode mode)
{
	json_t *root = json_object(), *xs = json_array(), *qs = json_array(), *bs = json_array(),
	       *us = json_array(), *cs = NULL;
	unsigned i;

	if (!root || !xs || !qs || !bs || !us)
		goto fail;
	json_object_set_new(root, mode == DEFS_STATE ? "hbus_state" : "hbus_definitions",
			    json_integer(1));
	for (i = 0; i < m->exchanges.n; i++) {
		const struct mx_exchange *x = m->exchanges.v[i];
		if (included(m, x->name, true, mode))
			json_array_append_new(xs, defs_render_exchange(x, mode));
	}
	for (i = 0; i < m->queues.n; i++) {
		const struct mx_queue *q = m->queues.v[i];
		if (included(m, q->name, false, mode))
			json_array_append_new(qs, render_queue(q, mode));
	}
	for (i = 0; i < m->bindings.n; i++) {
		const struct mx_binding *b = m->bindings.v[i];
		if (included(m, b->source, true, mode) &&
		    included(m, b->dest, b->dest_is_exchange, mode))
			json_array_append_new(bs, defs_render_binding(b));
	}
	for (i = 0; i < m->udpmaps.n; i++) {
		const struct mx_udpmap *u = m->udpmaps.v[i];
		if (included(m, u->exchange, true, mode))
			json_array_append_new(us, defs_render_udpmap(u));
	}
	json_object_set_new(root, "exchanges", xs);
	json_object_set_new(root, "queues", qs);
	json_object_set_new(root, "bindings", bs);
	json_object_set_new(root, "udpmaps", us);
	if (mode == DEFS_STATE) {
		cs = json_array();
		for (i = 0; cs && i < m->consumers.n; i++) {
			const struct mx_consumer *c = m->consumers.v[i];
			json_array_append_new(cs, json_pack("{s:s, s:s, s:I, s:s, s:I, s:b}",
				"tag", c->tag, "queue", c->q->name, "owner", (json_int_t)c->owner,
				"ack_mode", c->ack_mode == HBUS_ACK_MANUAL ? "manual" : "auto",
				"prefetch", (json_int_t)c->prefetch, "exclusive", c->exclusive));
		}
		json_object_set_new(root, "consumers", cs);
	}
	return root;
fail:
	json_decref(root);
	json_decref(xs);
	json_decref(qs);
	json_decref(bs);
	json_decref(us);
	return NULL;
}

char *defs_render_text(const struct model *m, enum defs_mode mode)
{
	json_t *j = defs_render(m, mode);
	char *s;

	if (!j)
		return NULL;
	/* The files are for people too: indented, one item per line. */
	s = json_dumps(j, mode == DEFS_STATE ? JSON_COMPACT : JSON_INDENT(2));
	json_decref(j);
	return s;
}

/* ---------------------------------------------------------------- import */

static const char *const X_FIELDS[] = { "name", "type", "durable", "auto_delete",
					"alternate_exchange", NULL };
static const char *const Q_FIELDS[] = { "name", "capacity", "slot_size", "overflow", "ttl_ms",
					"numa_node", "latency", "protected", "dead_letter_exchange",
					"dead_letter_routing_key", "durable", "auto_delete", NULL };
static const char *const B_FIELDS[] = { "source", "destination", "destination_type", "key",
					"headers", "match", NULL };
static const char *const U_FIELDS[] = { "addr", "port", "exchange", "key", NULL };
static const char *const TOP_FIELDS[] = { "hbus_definitions", "exchanges", "queues", "bindings",
					  "udpmaps", NULL };

struct undo {
	int kind; /* 0 exchange, 1 queue, 2 binding, 3 udpmap */
	struct mx_queue *q;
	const char *name;
	struct binding_args b;
	struct hbus_header *hdrs;
	bool had_binding; /* the source exchange's flag before this binding */
	uint32_t ip_be;
	uint16_t port;
};

static json_t *section(json_t *defs, const char *k, struct herr *e)
{
	json_t *a = json_object_get(defs, k);

	if (!a || json_is_null(a))
		return json_array(); /* missing section: nothing of that kind */
	if (!json_is_array(a)) {
		herr_set(e, AMQP_COMMAND_INVALID, "definitions: '%s' must be an array", k);
		return NULL;
	}
	return json_incref(a);
}

static void undo_all(struct model *m, struct undo *u, size_t n, uint32_t owner)
{
	struct herr ignore;

	m->loading = true;
	while (n--) {
		switch (u[n].kind) {
		case 0: model_delete_exchange(m, u[n].name, false, &ignore); break;
		case 1: model_drop_queue(m, u[n].q); break;
		case 2: {
			/* Unbinding the last binding of an auto-delete exchange
			 * deletes it: unless this binding was its first, it was
			 * never due to go. */
			struct mx_exchange *x = model_exchange(m, u[n].b.source);
			if (x)
				x->had_binding = u[n].had_binding;
			model_unbind(m, &u[n].b, owner, &ignore);
			break;
		}
		case 3: model_unmap_udp(m, u[n].ip_be, u[n].port, &ignore); break;
		}
	}
	m->loading = false;
}

/* Apply one item; on success record how to take it back if it was new. */
static int apply_item(struct model *m, int kind, json_t *o, size_t idx, uint32_t owner,
		      const struct defs_check *chk, struct undo *u, size_t *nu, struct herr *e)
{
	static const char *const names[] = { "exchanges", "queues", "bindings", "udpmaps" };
	static const char *const *const fields[] = { X_FIELDS, Q_FIELDS, B_FIELDS, U_FIELDS };
	struct hbus_header hdrs[HBUS_HEADERS_MAX];
	struct exchange_args xa;
	struct queue_args qa;
	struct binding_args ba;
	struct udpmap_args ua;
	struct mx_queue *q;
	char ctx[64];
	bool existed;

	snprintf(ctx, sizeof(ctx), "definitions %s[%zu]", names[kind], idx);
	if (!json_is_object(o))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s must be an object", ctx);
	if (args_check_fields(o, fields[kind], ctx, e))
		return -1;
	memset(&u[*nu], 0, sizeof(u[*nu]));
	u[*nu].kind = kind;
	switch (kind) {
	case 0:
		if (args_exchange(o, &xa, ctx, e) ||
		    (chk && perm_declare_exchange(chk, &xa, e)))
			return -1;
		existed = model_exchange(m, xa.name) != NULL;
		if (model_declare_exchange(m, &xa, false, e))
			return -1;
		u[*nu].name = xa.name;
		break;
	case 1:
		if (args_queue(o, &qa, ctx, e) || (chk && perm_declare_queue(chk, &qa, e)))
			return -1;
		if (!qa.name[0])
			return herr_set(e, AMQP_COMMAND_INVALID, "%s: a queue needs a name", ctx);
		existed = model_queue(m, qa.name) != NULL;
		if (model_declare_queue(m, &qa, owner, false, &q, e))
			return -1;
		u[*nu].q = q;
		break;
	case 2:
		if (args_binding(o, &ba, hdrs, ctx, e) || (chk && perm_bind(chk, &ba, e)))
			return -1;
		/* model_bind is idempotent: unbinding on undo would remove a
		 * binding that was there before, so look first. */
		existed = model_binding_exists(m, &ba);
		u[*nu].had_binding = model_exchange(m, ba.source) &&
				     model_exchange(m, ba.source)->had_binding;
		if (model_bind(m, &ba, owner, e))
			return -1;
		/* The header pointers point into the definitions JSON, which
		 * outlives the undo list; the array itself is this frame's. */
		u[*nu].b = ba;
		if (ba.n_headers) {
			u[*nu].hdrs = malloc(ba.n_headers * sizeof(*hdrs));
			if (!u[*nu].hdrs) {
				u[*nu].b.n_headers = 0;
				existed = true; /* cannot be undone exactly: leave it */
			} else {
				memcpy(u[*nu].hdrs, hdrs, ba.n_headers * sizeof(*hdrs));
				u[*nu].b.headers = u[*nu].hdrs;
			}
		}
		break;
	default:
		if (args_udpmap(o, &ua, true, ctx, e) || (chk && perm_map_udp(chk, &ua, e)))
			return -1;
		existed = false;
		for (unsigned i = 0; i < m->udpmaps.n && !existed; i++) {
			struct mx_udpmap *x = m->udpmaps.v[i];
			existed = x->ip_be == ua.ip_be && x->port == ua.port;
		}
		if (model_map_udp(m, &ua, e))
			return -1;
		u[*nu].ip_be = ua.ip_be;
		u[*nu].port = ua.port;
		break;
	}
	if (!existed)
		(*nu)++;
	else
		free(u[*nu].hdrs);
	return 0;
}

/* A refusal of the model or a permission check says what; the reply also
 * says which item (field errors already do). */
static void name_item(struct herr *e, const char *section, size_t idx)
{
	char msg[sizeof(e->msg)];

	if (!strncmp(e->msg, "definitions ", 12))
		return;
	snprintf(msg, sizeof(msg), "%s", e->msg);
	herr_set(e, e->code, "definitions %s[%zu]: %s", section, idx, msg);
}

int defs_import(struct model *m, json_t *defs, uint32_t owner, const struct defs_check *chk,
		struct herr *e)
{
	json_t *sec[4] = { NULL }, *v = json_object_get(defs, "hbus_definitions"), *o;
	static const char *const keys[] = { "exchanges", "queues", "bindings", "udpmaps" };
	struct undo *u = NULL;
	size_t n = 0, nu = 0, i;
	int kind, rc = -1;

	if (!json_is_object(defs))
		return herr_set(e, AMQP_COMMAND_INVALID, "definitions must be a JSON object");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return herr_set(e, AMQP_COMMAND_INVALID,
				"not hbus definitions: \"hbus_definitions\": 1 is missing");
	if (args_check_fields(defs, TOP_FIELDS, "definitions", e))
		return -1;
	for (kind = 0; kind < 4; kind++) {
		sec[kind] = section(defs, keys[kind], e);
		if (!sec[kind])
			goto out;
		n += json_array_size(sec[kind]);
	}
	u = calloc(n + 1, sizeof(*u));
	if (!u) {
		herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		goto out;
	}
	/* Per-item commits are off: the whole import is one change. */
	m->loading = true;
	for (kind = 0; kind < 4; kind++) {
		json_array_foreach(sec[kind], i, o) {
			if (apply_item(m, kind, o, i, owner, chk, u, &nu, e)) {
				name_item(e, keys[kind], i);
				m->loading = false;
				undo_all(m, u, nu, owner);
				goto out;
			}
		}
	}
	m->loading = false;
	if (model_commit(m, e)) {
		undo_all(m, u, nu, owner);
		goto out;
	}
	HBUS_INFO("imported definitions: %zu new item(s) of %zu", nu, n);
	rc = 0;
out:
	for (kind = 0; kind < 4; kind++)
		json_decref(sec[kind]);
	for (i = 0; u && i < nu; i++)
		free(u[i].hdrs);
	free(u);
	return rc;
}

/* ---------------------------------------------------------------- files */

int defs_write_atomic(const char *path, const char *text, struct herr *e)
{
	char tmp[4096], dir[4096];
	size_t len = strlen(text), off = 0;
	int fd, dfd, rc = 0;
	ssize_t w;

	/* A fresh file of our own (mkostemp: O_EXCL, a name nobody could
	 * have guessed): a file or link planted in the directory is never
	 * written through. */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp))
		return herr_set(e, AMQP_INTERNAL_ERROR, "definitions file path too long: %s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0 || fchmod(fd, 0640) != 0) {
		herr_set(e, AMQP_INTERNAL_ERROR, "cannot write definitions file %s: %s", tmp,
			 strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return -1;
	}
	while (off < len && rc == 0) {
		w = write(fd, text + off, len - off);
		if (w < 0 && errno != EINTR)
			rc = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (rc == 0 && write(fd, "\n", 1) != 1)
		rc = -EIO;
	/* Data on disk before the name points at it: a crash leaves the old
	 * file or the new one, never a torn one. */
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return herr_set(e, AMQP_INTERNAL_ERROR, "cannot write definitions file %s: %s", path,
				strerror(-rc));
	}
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* the rename itself */
		close(dfd);
	}
	return 0;
}

json_t *defs_parse(const char *buf, size_t len, const char *what, struct herr *e)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf, strnlen(buf, len), JSON_REJECT_DUPLICATES, &jerr);

	if (!j)
		herr_set(e, AMQP_SYNTAX_ERROR, "%s: line %d: %s", what, jerr.line, jerr.text);
	return j;
}

json_t *defs_load_file(const char *path, size_t max, struct herr *e)
{
	return defs_load_at(AT_FDCWD, path, path, max, e);
}

json_t *defs_load_at(int dirfd, const char *name, const char *path, size_t max, struct herr *e)
{
	struct stat st;
	char *buf;
	json_t *j;
	ssize_t n;
	size_t got = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | (dirfd == AT_FDCWD ? 0 : O_NOFOLLOW));

	if (fd < 0) {
		herr_set(e, errno == ENOENT ? AMQP_NOT_FOUND : AMQP_INTERNAL_ERROR, "%s: %s", path,
			 strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		herr_set(e, AMQP_INTERNAL_ERROR, "%s: not a regular file", path);
		return NULL;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		herr_set(e, AMQP_PRECONDITION, "%s is %lld bytes, over the limit of %zu bytes", path,
			 (long long)st.st_size, max);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf && got < (size_t)st.st_size &&
	       (n = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (!buf) {
		herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	buf[got] = '\0';
	j = defs_parse(buf, got, path, e);
	free(buf);
	return j;
}

int state_path(const char *bus_dir, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/" STATE_FILE, bus_dir);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int state_write(int bus_fd, const char *text)
{
	static const char tmp[] = STATE_FILE ".tmp";
	struct hbus_map map;
	size_t len = strlen(text) + 1;
	int fd, rc;

	unlinkat(bus_fd, tmp, 0);
	/* hugetlbfs has no write(2): fill the file through a mapping. */
	rc = hbus_shm_create_at(bus_fd, tmp, len, -1, &fd, &map);
	if (rc)
		return rc;
	memcpy(map.addr, text, len);
	hbus_shm_unmap(&map);
	close(fd);
	if (renameat(bus_fd, tmp, bus_fd, STATE_FILE) != 0) {
		rc = -errno;
		unlinkat(bus_fd, tmp, 0);
	}
	return rc;
}
