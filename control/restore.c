/*
 * restore.c - what a starting hbusd finds and keeps.
 *
 * Three sources, in this order, each logged one line per decision:
 *  1. the state file (<bus dir>/topology.json): the whole topology of the
 *     previous hbusd on this shared memory, with qids, so every queue file
 *     is adopted with its messages, durable or not;
 *  2. the definitions file: durable things the state does not have (after
 *     a reboot wiped shared memory, or on a new bus) are declared afresh;
 *  3. queue files neither names (a state file that could not be written)
 *     are moved aside, never deleted: they may hold messages.
 * Names come only from hbusd's own files (state, definitions), never from
 * a queue file's header: any client holding a queue's descriptor can write
 * that header, and a queue adopted under its header's name would hand the
 * name to whoever wrote it.  So a queue file that cannot be trusted (bad
 * magic, another layout version, truncated, not a regular file), whose
 * header disagrees with the state file, or that nothing names, is never
 * mapped by clients: it is moved aside to <bus dir>/stale/ under a neutral
 * name (queue.<qid>.epoch<N>), or removed when it never held anything (a
 * create interrupted by a crash), with one line saying which and why.
 * Everything is opened through the held bus directory (openat).
 */
#include "defs.h"
#include "args.h"
#include "log.h"
#include "superblock.h"

#include "queue_layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static json_t *array_of(json_t *root, const char *k)
{
	json_t *a = json_object_get(root, k);

	return json_is_array(a) ? a : NULL;
}

static int64_t int_of(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Why queue file `name` (of kind HBUS_FILE_QUEUE or _QUEUE_DATA) is
 * unusable, from its header alone (a truncated file is never mapped:
 * touching the missing part would be a SIGBUS).  Returns 1 when it never
 * held anything (empty or an all-zero header), 2 when its file header
 * looks sound, 0 otherwise, -1 when there is no such file. */
static int diagnose(int dirfd, const char *name, uint32_t kind, char *why, size_t cap)
{
	static const struct hbus_file_hdr zero;
	struct hbus_file_hdr h;
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), empty = 0;
	ssize_t n;

	if (fd < 0) {
		snprintf(why, cap, "%s", errno == ELOOP ? "a symbolic link, not a queue file"
							 : strerror(errno));
		return errno == ENOENT ? -1 : 0;
	}
	n = fstat(fd, &st) == 0 ? pread(fd, &h, sizeof(h), 0) : -1;
	close(fd);
	if (n < 0 || !S_ISREG(st.st_mode))
		snprintf(why, cap, "not a regular file");
	else if ((empty = st.st_size == 0 || (n == (ssize_t)sizeof(h) &&
						  !memcmp(&h, &zero, sizeof(h)))))
		snprintf(why, cap, "never initialised (a create interrupted by a crash)");
	else if (n < (ssize_t)sizeof(h))
		snprintf(why, cap, "truncated to %lld bytes, less than a header",
			 (long long)st.st_size);
	else if (h.magic != HBUS_FILE_MAGIC)
		snprintf(why, cap, "bad magic 0x%016llx, not an hbus file",
			 (unsigned long long)h.magic);
	else if (h.kind != kind)
		snprintf(why, cap, "an hbus file of kind %u, not a queue%s", h.kind,
			 kind == HBUS_FILE_QUEUE_DATA ? "'s data" : "");
	else if (h.version != HBUS_QUEUE_LAYOUT_VERSION)
		snprintf(why, cap, "queue layout version %u, this hbusd reads version %u",
			 h.version, HBUS_QUEUE_LAYOUT_VERSION);
	else if (h.size > (uint64_t)st.st_size)
		snprintf(why, cap, "truncated: %lld of %llu bytes", (long long)st.st_size,
			 (unsigned long long)h.size);
	else
		return snprintf(why, cap, "inconsistent header (sizes do not agree)"), 2;
	return empty;
}

/* mq_adopt failed with rc: is the file itself at fault (not memory)? */
static bool untrusted(int rc)
{
	return rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -ELOOP;
}

/* Take file (of kind) out of the way, in one log line.  who: " (queue
 * 'x')", or "".  reason: why, or NULL when the file itself is unusable
 * (diagnose says how). */
static void set_aside_file(struct model *m, const char *file, uint32_t kind, const char *who,
			   const char *reason)
{
	char dest[64], why[160];
	unsigned long long epoch = m->sb ? (unsigned long long)atomic_load(&m->sb->sb->epoch) : 0;
	int sound = diagnose(m->bus_fd, file, kind, why, sizeof(why));

	if (sound < 0) /* gone already: moved with its pair */
		return;
	if (sound == 1) {
		if (unlinkat(m->bus_fd, file, 0) == 0)
			HBUS_WARN("%s%s: %s: removed", file, who, why);
		else
			HBUS_WARN("%s%s: %s: cannot remove it: %s", file, who, why, strerror(errno));
		return;
	}
	if (reason && sound == 2) /* else what is wrong with the file says more */
		snprintf(why, sizeof(why), "%s", reason);
	if (mkdirat(m->bus_fd, "stale", 0700) != 0 && errno != EEXIST) {
		HBUS_WARN("%s%s: %s: left in place, cannot create %s/stale: %s", file, who, why,
			  m->bus_dir, strerror(errno));
		return;
	}
	snprintf(dest, sizeof(dest), "stale/%s.epoch%llu", file, epoch);
	if (renameat(m->bus_fd, file, m->bus_fd, dest) != 0)
		HBUS_WARN("%s%s: %s: left in place, cannot move it to %s/%s: %s", file, who, why,
			  m->bus_dir, dest, strerror(errno));
	else
		HBUS_WARN("%s%s: %s: moved to %s (never used again: inspect it, then delete it, "
			  "it still takes shared memory)", file, who, why, dest);
}

/* Take a queue's file, and its data file if it has one, out of the way.
 * name: the queue the state file gave it, NULL for a stray. */
static void set_aside(struct model *m, uint32_t qid, const char *name, const char *reason)
{
	char file[MQ_NAME_MAX], who[300] = "";

	if (name)
		snprintf(who, sizeof(who), " (queue '%s')", name);
	mq_name(qid, file);
	set_aside_file(m, file, HBUS_FILE_QUEUE, who, reason);
	mq_data_name(qid, file);
	set_aside_file(m, file, HBUS_FILE_QUEUE_DATA, who,
		       reason ? reason : "its queue file is unusable: moved with it");
}

static void restore_queue_from_state(struct model *m, json_t *o)
{
	struct queue_args a;
	struct mx_queue *q = NULL;
	struct herr e;
	uint64_t depth = 0;
	uint32_t qid = (uint32_t)int_of(o, "qid"), owner = (uint32_t)int_of(o, "owner");
	char file[MQ_NAME_MAX];
	bool prot;
	int rc;

	if (args_queue(o, &a, "state queue", &e) ||
	    (!a.name[0] && herr_set(&e, AMQP_COMMAND_INVALID, "no name")) ||
	    (!qid && herr_set(&e, AMQP_COMMAND_INVALID, "no qid"))) {
		HBUS_WARN("state file: unusable queue entry skipped: %s", e.msg);
		return;
	}
	prot = (a.cfg.flags & HBUS_QUEUE_F_PROTECTED) != 0;
	rc = mq_adopt(m, qid, &a, &q);
	if (rc == 0) {
		if (vec_push(&m->queues, q)) {
			mq_free(m, q, false);
			return;
		}
		q->excl_owner = q->exclusive ? owner : 0;
		q->had_consumer = json_is_true(json_object_get(o, "had_consumer"));
		grants_restore(q, o);
		mq_depth(q, &depth);
		HBUS_INFO("adopted queue '%s' (qid %u) with %llu message(s)%s", q->name, qid,
			  (unsigned long long)depth, q->durable ? ", durable" : "");
		return;
	}
	mq_name(qid, file);
	if (rc == -ENOENT && prot && faccessat(m->bus_fd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		set_aside(m, qid, a.name, "its data file is missing");
	else if (rc == -ENOENT)
		HBUS_WARN("queue '%s': its file %s is gone (shared memory was reset?)", a.name, file);
	else if (untrusted(rc))
		set_aside(m, qid, a.name, prot ? "its two files do not agree (a data file made "
				      "with another state file), or one is damaged" : NULL);
	else if (rc == -EEXIST)
		set_aside(m, qid, a.name, "its header disagrees with the state file (name or "
					  "arguments: a client may have written it)");
	else
		HBUS_WARN("queue '%s': cannot adopt queue.%u: %s", a.name, qid, hbus_strerror(rc));
	if (!a.durable) {
		HBUS_WARN("queue '%s' is not durable: dropped", a.name);
		return;
	}
	if (model_declare_queue(m, &a, owner, false, &q, &e))
		HBUS_ERR("durable queue '%s' could not be recreated: %s", a.name, e.msg);
	else
		HBUS_INFO("durable queue '%s' recreated empty as qid %u", a.name, q->qid);
}

static uint32_t binding_owner(const struct model *m, const struct binding_args *b)
{
	const struct mx_queue *q = b->dest_is_exchange ? NULL : model_queue(m, b->dest);

	return q ? q->excl_owner : 0;
}

static void restore_state(struct model *m)
{
	struct hbus_header hdrs[HBUS_HEADERS_MAX];
	struct exchange_args xa;
	struct binding_args ba;
	struct udpmap_args ua;
	struct mx_consumer *c;
	struct herr e;
	char path[512];
	json_t *root, *o;
	size_t i;

	state_path(m->bus_dir, path, sizeof(path));
	root = defs_load_at(m->bus_fd, STATE_FILE, path, DEFS_FILE_MAX, &e);
	if (!root) {
		if (e.code == AMQP_NOT_FOUND)
			HBUS_INFO("no state file %s: nothing of a previous hbusd to adopt", path);
		else
			HBUS_WARN("state file unusable (%s): ignored; durable topology comes from the "
				  "definitions file", e.msg);
		return;
	}
	if (!json_is_object(root) || int_of(root, "hbus_state") != 1) {
		HBUS_WARN("%s is not an hbus state file: ignored", path);
		json_decref(root);
		return;
	}
	json_array_foreach(array_of(root, "exchanges"), i, o) {
		struct mx_exchange *x;
		if (args_exchange(o, &xa, "state exchange", &e) ||
		    model_declare_exchange(m, &xa, false, &e)) {
			HBUS_WARN("state file: exchange skipped: %s", e.msg);
			continue;
		}
		x = model_exchange(m, xa.name);
		if (x)
			x->had_binding = json_is_true(json_object_get(o, "had_binding"));
		HBUS_INFO("adopted exchange '%s' (%s)", xa.name, xtype_name(xa.type));
	}
	json_array_foreach(array_of(root, "queues"), i, o)
		restore_queue_from_state(m, o);
	json_array_foreach(array_of(root, "bindings"), i, o) {
		if (args_binding(o, &ba, hdrs, "state binding", &e) ||
		    model_bind(m, &ba, binding_owner(m, &ba), &e))
			HBUS_WARN("state file: binding skipped: %s", e.msg);
	}
	json_array_foreach(array_of(root, "udpmaps"), i, o) {
		if (args_udpmap(o, &ua, true, "state udpmap", &e) || model_map_udp(m, &ua, &e))
			HBUS_WARN("state file: UDP map skipped: %s", e.msg);
	}
	/* Consumers of sessions from before the restart: kept until hbusd
	 * knows their processes are gone (orphans, hbusd.c). */
	json_array_foreach(array_of(root, "consumers"), i, o) {
		const char *tag = json_string_value(json_object_get(o, "tag"));
		const char *queue = json_string_value(json_object_get(o, "queue"));
		const char *mode = json_string_value(json_object_get(o, "ack_mode"));

		if (!tag || !queue ||
		    model_consume(m, queue, (uint32_t)int_of(o, "owner"),
				  mode && !strcmp(mode, "manual") ? HBUS_ACK_MANUAL : HBUS_ACK_AUTO,
				  (uint32_t)int_of(o, "prefetch"),
				  json_is_true(json_object_get(o, "exclusive")), tag, &c, &e))
			HBUS_WARN("state file: consumer skipped: %s", tag ? e.msg : "no tag");
	}
	HBUS_INFO("state file: %u exchange(s), %u queue(s), %u binding(s), %u UDP map(s), "
		  "%u consumer(s) adopted", m->exchanges.n, m->queues.n, m->bindings.n,
		  m->udpmaps.n, m->consumers.n);
	json_decref(root);
}

/* Durable things the state lacks.  Where both have a thing and disagree,
 * the running bus (state) wins: it matches the files in shared memory. */
static int restore_definitions(struct model *m, const char *path, struct herr *e)
{
	struct hbus_header hdrs[HBUS_HEADERS_MAX];
	struct exchange_args xa;
	struct queue_args qa;
	struct binding_args ba;
	struct udpmap_args ua;
	struct mx_queue *q;
	struct herr ie;
	json_t *root, *o;
	size_t i;
	bool had;

	root = defs_load_file(path, m->lim.max_definitions ? m->lim.max_definitions : SIZE_MAX, e);
	if (!root) {
		if (e->code == AMQP_PRECONDITION) { /* its size */
			char why[sizeof(e->msg)];
			snprintf(why, sizeof(why), "%s", e->msg);
			herr_set(e, AMQP_PRECONDITION, "definitions file %s (hbusd --max-definitions)",
				 why);
		}
		if (e->code != AMQP_NOT_FOUND)
			return -1; /* never start and then overwrite a file we could not read */
		HBUS_INFO("definitions file %s does not exist yet: it will be written at the first "
			  "durable change", path);
		return 0;
	}
	if (!json_is_object(root) || int_of(root, "hbus_definitions") != 1) {
		json_decref(root);
		return herr_set(e, AMQP_COMMAND_INVALID,
				"%s is not an hbus definitions file (no \"hbus_definitions\": 1)", path);
	}
	json_array_foreach(array_of(root, "exchanges"), i, o) {
		if (args_exchange(o, &xa, "definitions exchange", &ie)) {
			HBUS_WARN("%s: %s", path, ie.msg);
			continue;
		}
		had = model_exchange(m, xa.name) != NULL;
		if (model_declare_exchange(m, &xa, false, &ie))
			HBUS_WARN("%s: exchange '%s' kept as the running bus has it: %s", path,
				  xa.name, ie.msg);
		else if (!had)
			HBUS_INFO("restored durable exchange '%s' from %s", xa.name, path);
	}
	json_array_foreach(array_of(root, "queues"), i, o) {
		/* args_queue fails before it sets the name when the name is bad */
		if (args_queue(o, &qa, "definitions queue", &ie) ||
		    (!qa.name[0] && herr_set(&ie, AMQP_COMMAND_INVALID, "no name"))) {
			HBUS_WARN("%s: queue entry skipped: %s", path, ie.msg);
			continue;
		}
		had = model_queue(m, qa.name) != NULL;
		if (model_declare_queue(m, &qa, 0, false, &q, &ie))
			HBUS_WARN("%s: queue '%s': %s", path, qa.name, ie.msg);
		else if (!had)
			HBUS_INFO("restored durable queue '%s' from %s (empty, qid %u)", qa.name, path,
				  q->qid);
	}
	json_array_foreach(array_of(root, "bindings"), i, o) {
		if (args_binding(o, &ba, hdrs, "definitions binding", &ie) ||
		    model_bind(m, &ba, binding_owner(m, &ba), &ie))
			HBUS_WARN("%s: binding skipped: %s", path, ie.msg);
	}
	json_array_foreach(array_of(root, "udpmaps"), i, o) {
		if (args_udpmap(o, &ua, true, "definitions udpmap", &ie) ||
		    model_map_udp(m, &ua, &ie))
			HBUS_WARN("%s: UDP map skipped: %s", path, ie.msg);
	}
	json_decref(root);
	return 0;
}

/* Queue files nothing named: hbusd cannot know their name (the header's
 * is not to be believed), so they are moved aside, with their messages. */
static void set_aside_strays(struct model *m)
{
	struct dirent *d;
	char *end;
	int fd = dup(m->bus_fd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((d = readdir(dir)) != NULL) {
		const struct mx_queue *q;
		unsigned long qid;
		bool data;

		if (strncmp(d->d_name, "queue.", 6) != 0)
			continue;
		qid = strtoul(d->d_name + 6, &end, 10);
		data = !strcmp(end, ".data");
		if ((*end && !data) || end == d->d_name + 6 || !qid || qid >= UINT32_MAX)
			continue;
		q = model_queue_by_qid(m, (uint32_t)qid);
		if (q && (!data || (q->cfg.flags & HBUS_QUEUE_F_PROTECTED)))
			continue;
		sb_note_qid(m->sb, (uint32_t)qid); /* never handed out again */
		if (q) /* a data file beside a queue that has none */
			set_aside_file(m, d->d_name, HBUS_FILE_QUEUE_DATA, "", "a data file beside "
				       "a queue that is not protected");
		else
			set_aside(m, (uint32_t)qid, NULL, "no state or definitions name it, and "
				  "the name in its header is not to be believed");
	}
	closedir(dir);
}

int defs_restore(struct model *m, const char *defs_path, struct herr *e)
{
	int rc = 0;

	m->loading = true;
	restore_state(m);
	if (defs_path)
		rc = restore_definitions(m, defs_path, e);
	if (rc == 0)
		set_aside_strays(m);
	m->loading = false;
	return rc;
}
