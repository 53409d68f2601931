/*
 * defs.h - the topology as JSON: the definitions file (durable topology,
 * --definitions), export/import, and the state file (everything, for an
 * hbusd that restarts on the same shared memory).
 *
 * Definitions (docs/CONTROL.md): {"hbus_definitions":1, "exchanges":[...],
 * "queues":[...], "bindings":[...], "udpmaps":[...]}, portable between
 * buses (no qids).  The state file is the same plus what only this bus
 * lifetime means: qids, exclusive owners, consumers.  It lives in the bus
 * directory (<bus dir>/topology.json), next to the queue files it
 * describes, so the two always share a lifetime.
 */
#ifndef HBUSD_DEFS_H
#define HBUSD_DEFS_H

#include <jansson.h>
#include <stdbool.h>

#include "herr.h"
#include "model.h"
#include "perm_ops.h"

enum defs_mode {
	DEFS_DURABLE, /* the --definitions file: durable things only */
	DEFS_EXPORT,  /* export: everything but exclusive queues */
	DEFS_STATE,   /* topology.json: everything, with qids and owners */
};

json_t *defs_render(const struct model *m, enum defs_mode mode);
/* One item, as the definitions write it (list replies use these too). */
json_t *defs_render_exchange(const struct mx_exchange *x, enum defs_mode mode);
json_t *defs_render_binding(const struct mx_binding *b);
json_t *defs_render_udpmap(const struct mx_udpmap *u);
/* Compact text of defs_render (caller frees), NULL on out of memory. */
char *defs_render_text(const struct model *m, enum defs_mode mode);

/*
 * Apply definitions (import, or restore at start).  The whole object is
 * checked first; then everything is applied as one change: one commit, and
 * if any item is refused nothing of it stays.  Items that exist with the
 * same arguments are fine; with other arguments: 406.
 * check: who is importing: each item needs the permissions the matching
 * request needs (perm_ops.h, the very same functions), checked before it is
 * applied; NULL = none (restore).
 */
#define defs_check perm_checker
int defs_import(struct model *m, json_t *defs, uint32_t owner, const struct defs_check *check,
		struct herr *e);

/* Write text to path atomically: temp file in the same directory, fsync,
 * rename over path, fsync the directory. */
int defs_write_atomic(const char *path, const char *text, struct herr *e);
/* Parse definitions or state text (NUL padding after the text is allowed:
 * the state file is padded to its page size).  what names the source in
 * the error: "line N: ..." follows it. */
json_t *defs_parse(const char *buf, size_t len, const char *what, struct herr *e);
/* Load a JSON file of at most max bytes (406 naming the size past it). */
#define DEFS_FILE_MAX (64u << 20) /* state and permissions files */
json_t *defs_load_file(const char *path, size_t max, struct herr *e);
/* The same for name in the directory dirfd (not following a link at name);
 * path names it in messages. */
json_t *defs_load_at(int dirfd, const char *name, const char *path, size_t max, struct herr *e);

/* The state file.  Written through a mapping (hugetlbfs has no write(2)),
 * padded with NULs to the page size; atomic by rename. */
#define STATE_FILE "topology.json"
int state_write(int bus_fd, const char *text);
int state_path(const char *bus_dir, char *buf, size_t cap); /* for messages */

/*
 * Start-up: rebuild the model from the state file (adopting queue files),
 * then from the definitions file (durable things the state lacks), then
 * adopt queue files neither names.  One log line per decision.
 */
int defs_restore(struct model *m, const char *defs_path, struct herr *e);

#endif
