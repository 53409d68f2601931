/*
 * fuzz_hbusd.h - an hbusd without its socket, for the control-plane fuzz
 * targets (fuzz_request.c, fuzz_defs.c).
 *
 * What runs is hbusd's own code: the model, permissions, superblock, routes
 * file, definitions and state files, queue files.  Only the socket and the
 * event loop are missing.  Everything lives in a private directory on tmpfs
 * ($HBUS_FUZZ_TMP, else /dev/shm), removed at exit; the limits are small so
 * that no input can take more than a few MiB of shared memory, whatever
 * capacities it asks for.
 *
 * Properties every target checks after each step (a violation aborts, which
 * libFuzzer reports as a crash):
 *   - a reply is an object with "ok"; an error carries a known AMQP code and
 *     a message;
 *   - a refused request changes nothing (docs/CONTROL.md): the state file
 *     text hbusd would write is the same before and after;
 *   - the model is consistent: names and qids unique, every binding's ends,
 *     every consumer's queue and every UDP map's exchange exist, per-queue
 *     consumer counts add up, no limit is exceeded (but for what a restart
 *     adopts).
 */
#ifndef HBUS_FUZZ_HBUSD_H
#define HBUS_FUZZ_HBUSD_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "defs.h"
#include "fuzz_check.h"
#include "server.h"


#define FZ_ROUTES_CAP (64u << 10)
#define FZ_NOBODY     65534u

static const struct model_limits fz_limits = {
	.max_exchanges = 16, .max_queues = 16, .max_bindings = 64,
	.max_consumers_per_queue = 4, .max_udpmaps = 8, .routes_table_cap = FZ_ROUTES_CAP,
	.max_queue_bytes = 256u << 10, .max_definitions = 256u << 10,
};

struct fz {
	struct hbusd d;
	struct hbus_routes *routes;
	char base[200];   /* removed at exit */
	char bus_dir[256];
	int bus_fd;
	char defs_path[300];
};

static struct fz fz;

static inline void fz_rm_base(void)
{
	char cmd[300];

	if (fz.base[0] && (size_t)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz.base) < sizeof(cmd))
		if (system(cmd) != 0)
			fprintf(stderr, "fuzz: cannot remove %s\n", fz.base);
}

/* A run that crashed (abort: no atexit) left hbus-fuzz-<pid>-* behind:
 * remove those whose process is gone. */
static inline void fz_rm_dead(const char *tmp)
{
	char cmd[600];
	struct dirent *de;
	DIR *d = opendir(tmp);
	int pid;

	while (d && (de = readdir(d)) != NULL) {
		if (sscanf(de->d_name, "hbus-fuzz-%d-", &pid) != 1 || pid <= 0)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue; /* still running */
		if ((size_t)snprintf(cmd, sizeof(cmd), "rm -rf '%s/%s'", tmp, de->d_name) < sizeof(cmd) &&
		    system(cmd) != 0)
			fprintf(stderr, "fuzz: cannot remove %s/%s\n", tmp, de->d_name);
	}
	if (d)
		closedir(d);
}

static inline void fz_write(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "w");

	CHECK(f);
	CHECK(fwrite(buf, 1, n, f) == n || n == 0);
	CHECK(fclose(f) == 0);
}

/* Once per process: directories, superblock, routes file, permissions.
 * The permissions file grants uid 65534 what the seeds exercise. */
static inline void fz_init(void)
{
	static const char perms[] =
		"{\"users\":{\"65534\":{\"configure\":\"^f\\\\..*\",\"write\":\"^(f|pub)\\\\..*\","
		"\"read\":\"^(f|pub)\\\\..*|amq\\\\.default\"}}}";
	const char *tmp = getenv("HBUS_FUZZ_TMP");
	char path[300];
	struct herr e;
	int other = 0;

	setenv("HBUS_LOG", "quiet", 1); /* info lines per request would dominate */
	tmp = tmp && *tmp ? tmp : "/dev/shm";
	fz_rm_dead(tmp);
	snprintf(fz.base, sizeof(fz.base), "%s/hbus-fuzz-%d-XXXXXX", tmp, (int)getpid());
	CHECK(mkdtemp(fz.base));
	atexit(fz_rm_base);
	snprintf(fz.bus_dir, sizeof(fz.bus_dir), "%s/bus", fz.base);
	snprintf(fz.defs_path, sizeof(fz.defs_path), "%s/definitions.json", fz.base);
	CHECK(mkdir(fz.bus_dir, 0700) == 0);
	fz.bus_fd = open(fz.bus_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fz.bus_fd >= 0);

	fz.d.o.bus = "fuzz";
	fz.d.o.max_request = HBUSD_REQUEST_MAX;
	fz.d.o.lim = fz_limits;
	fz.d.lfd = fz.d.epfd = fz.d.sigfd = fz.d.timerfd = fz.d.pidfile_fd = -1;
	perms_init(&fz.d.perms);
	snprintf(path, sizeof(path), "%s/permissions.json", fz.base);
	fz_write(path, perms, strlen(perms));
	CHECK(perms_load(&fz.d.perms, path, &e) == 0);
	CHECK(sb_open(fz.bus_fd, "fuzz", &fz.d.sb, &other) == 0);
	snprintf(path, sizeof(path), "%s/routes", fz.bus_dir);
	CHECK(hbus_routes_create(path, FZ_ROUTES_CAP, &fz.d.routes_fd, &fz.routes) == 0);
}

/* Remove what an input left in the bus directory (queue files, the state
 * file, stale/) and the definitions file: superblock and routes stay. */
static inline void fz_clean(void)
{
	char path[600];
	struct dirent *de;
	DIR *dir;

	unlink(fz.defs_path);
	snprintf(path, sizeof(path), "%s/stale", fz.bus_dir);
	if ((dir = opendir(path)) != NULL) {
		while ((de = readdir(dir)) != NULL) {
			snprintf(path, sizeof(path), "%s/stale/%s", fz.bus_dir, de->d_name);
			if (de->d_name[0] != '.')
				unlink(path);
		}
		closedir(dir);
		snprintf(path, sizeof(path), "%s/stale", fz.bus_dir);
		rmdir(path);
	}
	dir = opendir(fz.bus_dir);
	CHECK(dir);
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "superblock") ||
		    !strcmp(de->d_name, "routes") || !strcmp(de->d_name, "stale"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", fz.bus_dir, de->d_name);
		unlink(path);
	}
	closedir(dir);
}

/* A fresh, empty model over the process's superblock and routes file, as
 * hbusd's open_bus makes it.  defs: whether it keeps a definitions file. */
static inline struct model *fz_model_begin(bool defs)
{
	struct model *m = &fz.d.model;

	model_init(m, fz.bus_dir, fz.bus_fd, &fz_limits);
	m->sb = &fz.d.sb;
	m->routes = fz.routes;
	m->defs_path = defs ? fz.defs_path : NULL;
	m->self_owner = sb_alloc_owner(&fz.d.sb, NULL, NULL);
	CHECK(m->self_owner != 0);
	return m;
}

/* Free the model, as a stopping hbusd does: its files stay (fz_clean). */
static inline void fz_model_end(void)
{
	model_fini(&fz.d.model);
}

/* A session as server_accept makes it: root (admin) or uid 65534. */
static inline void fz_session_init(struct session *s, bool nobody)
{
	memset(s, 0, sizeof(*s));
	s->ev.kind = EV_SESSION;
	s->fd = -1;
	s->id = 1;
	s->peer.uid = nobody ? FZ_NOBODY : 0;
	s->peer.gid = nobody ? FZ_NOBODY : 0;
	s->peer.pid = getpid();
	snprintf(s->peer.user, sizeof(s->peer.user), "%s", nobody ? "nobody" : "root");
}

/* The session closes, as server.c's session_close handles it. */
static inline void fz_session_close(struct session *s)
{
	static const uint32_t none[1];

	if (s->owner) {
		model_owner_gone(&fz.d.model, s->owner,
				 s->all_queues ? NULL : s->qids ? s->qids : none, s->n_qids, true);
		/* Pending recoveries die with this input's model: the entry goes
		 * too, or the table would fill up over millions of inputs. */
		sb_session_remove(&fz.d.sb, s->owner);
	}
	free(s->qids);
	s->qids = NULL;
}

/* ---------------------------------------------------------------- properties */

static inline char *fz_state_text(void)
{
	char *t = defs_render_text(&fz.d.model, DEFS_STATE);

	CHECK(t);
	return t;
}

static inline void fz_check_reply(json_t *r)
{
	static const int codes[] = { 403, 404, 405, 406, 502, 503, 530, 540, 541 };
	json_t *ok = json_object_get(r, "ok");
	const char *msg;
	char *text;
	bool known = false;
	unsigned i;

	CHECK(json_is_object(r));
	CHECK(json_is_boolean(ok));
	text = json_dumps(r, JSON_COMPACT);
	CHECK(text);
	free(text);
	if (json_is_true(ok))
		return;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		known |= json_integer_value(json_object_get(r, "code")) == codes[i];
	CHECK(known);
	msg = json_string_value(json_object_get(r, "error"));
	CHECK(msg && *msg);
}

/* limits: also check the counts against the limits (not after a restore:
 * a restarted hbusd adopts every queue file it finds, limit or not). */
static inline void fz_check_model(bool limits)
{
	const struct model *m = &fz.d.model;
	unsigned i, j, n;

	CHECK(!limits || m->queues.n <= m->lim.max_queues);
	CHECK(!limits || m->exchanges.n <= m->lim.max_exchanges);
	CHECK(!limits || m->bindings.n <= m->lim.max_bindings);
	CHECK(!limits || m->udpmaps.n <= m->lim.max_udpmaps);
	for (i = 0; i < m->queues.n; i++) {
		const struct mx_queue *q = m->queues.v[i];
		CHECK(q->name && q->fd >= 0 && q->h);
		CHECK(mq_ring_bytes(&q->cfg) <= m->lim.max_queue_bytes);
		for (j = i + 1; j < m->queues.n; j++) {
			const struct mx_queue *o = m->queues.v[j];
			CHECK(strcmp(q->name, o->name) && q->qid != o->qid);
		}
		for (n = 0, j = 0; j < m->consumers.n; j++)
			n += ((const struct mx_consumer *)m->consumers.v[j])->q == q;
		CHECK(n == q->consumers && (!limits || n <= m->lim.max_consumers_per_queue));
	}
	for (i = 0; i < m->exchanges.n; i++) {
		const struct mx_exchange *x = m->exchanges.v[i];
		CHECK(x->name && x->name[0] && x->type < 4);
		for (j = i + 1; j < m->exchanges.n; j++)
			CHECK(strcmp(x->name, ((const struct mx_exchange *)m->exchanges.v[j])->name));
	}
	for (i = 0; i < m->bindings.n; i++) {
		const struct mx_binding *b = m->bindings.v[i];
		CHECK(model_exchange_exists(m, b->source));
		CHECK(b->dest_is_exchange ? model_exchange_exists(m, b->dest)
					  : model_queue(m, b->dest) != NULL);
	}
	for (i = 0; i < m->consumers.n; i++) {
		const struct mx_consumer *c = m->consumers.v[i];
		CHECK(vec_find(&m->queues, c->q) >= 0);
	}
	for (i = 0; i < m->udpmaps.n; i++)
		CHECK(model_exchange_exists(m, ((const struct mx_udpmap *)m->udpmaps.v[i])->exchange));
	CHECK(m->table_len <= m->lim.routes_table_cap);
}

#endif
