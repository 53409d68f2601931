/*
 * model.h - hbusd's topology: exchanges, queues, bindings, consumers and
 * raw UDP maps, with AMQP 0-9-1 semantics (as RabbitMQ implements them,
 * deviations in docs/CONTROL.md).
 *
 * The model is the single source of truth: every change goes through one of
 * the model_* operations below, which validates it, applies it, and commits
 * it (model_commit: compile the routing table, write the definitions file
 * when durable topology changed, publish the table, write the state file).
 * An addition that cannot be committed (table over its limit, definitions
 * file not writable) is undone, so a refused request leaves no trace.
 *
 * Identities: a session is known here only by its 24-bit owner id (the same
 * id its slots carry in shared memory); permission checks happen before the
 * model is called (perms.h), exclusivity checks here.
 */
#ifndef HBUSD_MODEL_H
#define HBUSD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hbus.h"
#include "herr.h"
#include "readers.h"
#include "route.h"
#include "vec.h"

#define HBUSD_DEFAULT_CAPACITY  4096u
#define HBUSD_DEFAULT_SLOT_SIZE 1024u
#define HBUSD_MAX_TTL_MS        (7u * 24 * 3600 * 1000) /* what queue.c accepts */

struct superblock;

/* Limits a request is refused at (406 naming the limit). */
struct model_limits {
	uint32_t max_exchanges;
	uint32_t max_queues;
	uint32_t max_bindings;
	uint32_t max_consumers_per_queue;
	uint32_t max_udpmaps;
	size_t routes_table_cap; /* bytes per half of the routes file */
	uint64_t max_queue_bytes; /* shared memory of one queue's ring, 0: no limit */
	size_t max_definitions;   /* bytes of the definitions file, read or written */
	uint32_t reader_timeout_ms; /* a reader block holds a publish back at most this
				       long (0: HBUSD_READER_TIMEOUT_MS) */
};

struct mx_exchange {
	char *name;
	uint32_t type; /* enum hbus_xtype */
	bool durable, auto_delete;
	bool had_binding; /* auto_delete applies once it had a binding */
	char *alternate;  /* NULL: none */
};

/* Owners holding a grant on a queue until their processes exit
 * (model_grant.c). */
struct ownerset {
	uint32_t *v;
	unsigned n, cap;
};

struct mx_queue {
	char *name;
	uint32_t qid;
	struct hbus_queue_config cfg;
	char *dlx, *dlx_key; /* NULL: none / keep the message's key */
	bool durable, exclusive, auto_delete;
	bool had_consumer;   /* auto_delete applies once it had a consumer */
	bool exclusive_consumer;
	uint32_t excl_owner; /* exclusive queues: owner id of the declaring session */
	uint32_t consumers;
	/* Grants that outlive sessions, until the owner's process exits
	 * (model_grant.c; docs/CONTROL.md, "Exclusive handles"). */
	struct ownerset writers; /* owners sent the file for writing */
	struct ownerset readers; /* owners that may claim without being consumers now */
	uint32_t xp_owner;   /* the exclusive producer, 0: none */
	uint32_t xc_owner;   /* the exclusive consumer claiming without a CAS, 0: none */
	char *xc_tag;        /* its consumer tag when it was granted */
	bool corrupt;        /* a walk over its ring found no end (-EUCLEAN), or its file was
				truncated: see mq_corrupt */
	int fd;              /* the queue file; what clients receive */
	int data_fd;         /* a protected queue's data file, read-write: writers, hbusd */
	int data_ro_fd;      /* the same, read-only: what readers receive (-1: not protected) */
	uint64_t size, data_size; /* the files' sizes as made: a truncation is undone to them */
	uint32_t resized;    /* times a client changed a file's size (restored each time) */
	hbus_queue *h;       /* hbusd's own handle: purge, stats, recovery */
};

struct mx_binding {
	char *source, *dest;
	bool dest_is_exchange;
	char *key;
	struct hbus_header *headers; /* owned copies */
	uint16_t n_headers;
	bool match_all;
};

struct mx_consumer {
	char *tag;
	uint32_t owner;
	struct mx_queue *q;
	uint32_t ack_mode, prefetch;
	bool exclusive;
	bool fast;           /* exclusive, and may claim without a CAS (model_grant.c) */
};

struct mx_udpmap {
	uint32_t ip_be;
	uint16_t port;
	char *exchange, *key;
};

/* Operation arguments: strings point into the caller's storage (usually
 * the request JSON) and are copied by the model. */
struct exchange_args {
	const char *name;
	uint32_t type;
	bool durable, auto_delete;
	const char *alternate;
};

struct queue_args {
	const char *name;
	bool server_named; /* name came from model_server_name: "amq." allowed */
	struct hbus_queue_config cfg;
	const char *dlx, *dlx_key;
	bool durable, exclusive, auto_delete;
};

struct binding_args {
	const char *source, *dest;
	bool dest_is_exchange;
	const char *key;
	const struct hbus_header *headers;
	uint16_t n_headers;
	bool match_all;
};

struct udpmap_args {
	uint32_t ip_be;
	uint16_t port;
	const char *exchange, *key;
};

/* A dead owner whose claimed slots could not all be republished yet. */
struct mx_pending {
	uint32_t qid, owner;
};

struct model {
	struct vec exchanges, queues, bindings, consumers, udpmaps, pending;
	struct model_limits lim;
	char bus_dir[256];        /* for messages */
	int bus_fd;               /* the held bus directory: files are opened at it */
	uint32_t self_owner;      /* hbusd's owner id on queues this epoch */
	struct superblock *sb;    /* qid counter, session table */
	struct hbus_routes *routes;
	struct readers_reg readers; /* the sessions' reader blocks a publish waits for */
	const char *defs_path;    /* --definitions, NULL: none */

	/* Routing table: compiled into scratch, then swapped into table. */
	void *table, *scratch;
	size_t table_len, table_cap, scratch_cap;
	uint64_t version;           /* committed topology changes */
	uint64_t published_version; /* the last one readers can see */
	uint64_t generation;        /* routes file generation of it */
	uint64_t publish_blocked_ns;/* when publishing first got -EBUSY (0: not) */
	uint64_t publish_warned_ns;
	char *defs_text;            /* what the definitions file holds now */
	uint64_t consumer_seq;
	bool loading;               /* restoring at start: no commit per item */
};

/* bus_dir: for messages; bus_fd: the held bus directory, where every file
 * is opened (openat). */
int model_init(struct model *m, const char *bus_dir, int bus_fd, const struct model_limits *lim);
void model_fini(struct model *m);

/* Lookups.  model_exchange("") is NULL: the default exchange is implicit. */
struct mx_exchange *model_exchange(const struct model *m, const char *name);
struct mx_queue *model_queue(const struct model *m, const char *name);
struct mx_queue *model_queue_by_qid(const struct model *m, uint32_t qid);
bool model_exchange_exists(const struct model *m, const char *name); /* "" too */
const char *xtype_name(uint32_t type);
int xtype_parse(const char *s, uint32_t *type);

/* Operations: 0, or -1 with *e filled.  owner: the requesting session. */
int model_declare_exchange(struct model *m, const struct exchange_args *a, bool passive,
			   struct herr *e);
int model_delete_exchange(struct model *m, const char *name, bool if_unused, struct herr *e);
/* A fresh "amq.gen-..." name for a server-named queue (cap >= 32). */
void model_server_name(const struct model *m, char *out, size_t cap);
int model_declare_queue(struct model *m, const struct queue_args *a, uint32_t owner, bool passive,
			struct mx_queue **out, struct herr *e);
int model_delete_queue(struct model *m, const char *name, uint32_t owner, bool if_unused,
		       bool if_empty, uint64_t *messages, struct herr *e);
int model_purge_queue(struct model *m, const char *name, uint32_t owner, uint64_t *purged,
		      struct herr *e);
int model_bind(struct model *m, const struct binding_args *a, uint32_t owner, struct herr *e);
int model_unbind(struct model *m, const struct binding_args *a, uint32_t owner, struct herr *e);
bool model_binding_exists(const struct model *m, const struct binding_args *a);
int model_map_udp(struct model *m, const struct udpmap_args *a, struct herr *e);
int model_unmap_udp(struct model *m, uint32_t ip_be, uint16_t port, struct herr *e);
/* May this owner use queue q?  405 for another session's exclusive queue. */
int model_queue_access(const struct model *m, const struct mx_queue *q, uint32_t owner,
		       struct herr *e);
int model_consume(struct model *m, const char *queue, uint32_t owner, uint32_t ack_mode,
		  uint32_t prefetch, bool exclusive, const char *tag, struct mx_consumer **out,
		  struct herr *e);
int model_cancel(struct model *m, const char *tag, uint32_t owner, struct herr *e);

/* A session or orphaned owner is gone: recover its slots on the queues in
 * qids (all queues when qids is NULL), cancel its consumers, delete its
 * exclusive queues and auto-delete queues it was the last consumer of.
 * exited: its process is gone, so its slots are recovered; else they stay
 * its own (nothing is taken from a process that runs) until it exits.
 * Returns the number of (queue, owner) recoveries still pending. */
unsigned model_owner_gone(struct model *m, uint32_t owner, const uint32_t *qids, unsigned n_qids,
			  bool exited);
/* Retry pending recoveries; returns how many are still pending.  Owners
 * whose recovery completes leave the superblock's session table. */
unsigned model_retry_pending(struct model *m);
bool model_owner_pending(const struct model *m, uint32_t owner);
/* Is the recovery of owner on queue qid pending already? */
bool model_recovery_pending(const struct model *m, uint32_t qid, uint32_t owner);

/* Compile, persist and publish the current topology.  -1 (*e filled) when
 * the table exceeds its limit or the definitions file cannot be written;
 * the caller undoes its change.  Publishing itself may be deferred (a
 * reader still uses the free half): model_publish_pending retries. */
int model_commit(struct model *m, struct herr *e);
/* 1 while a compiled table waits to be published. */
bool model_publish_waiting(const struct model *m);
int model_publish_retry(struct model *m);

/* Queue files (model_queue.c).  mq_path: for messages; mq_name: the file's
 * name in the bus directory (what is opened, at m->bus_fd); mq_data_name:
 * a protected queue's data file. */
#define MQ_NAME_MAX 24
int mq_path(const struct model *m, uint32_t qid, char *buf, size_t cap);
void mq_name(uint32_t qid, char name[MQ_NAME_MAX]);
void mq_data_name(uint32_t qid, char name[MQ_NAME_MAX]);
/* Bytes of shared memory a ring of this configuration takes. */
uint64_t mq_ring_bytes(const struct hbus_queue_config *c);
int mq_create(struct model *m, const struct queue_args *a, uint32_t owner, struct mx_queue **out,
	      struct herr *e);
/* Adopt an existing queue file as the queue a describes (hbusd's state):
 * -EEXIST when the file's header says otherwise (it is then not used). */
int mq_adopt(struct model *m, uint32_t qid, const struct queue_args *a, struct mx_queue **out);
void mq_free(struct model *m, struct mx_queue *q, bool unlink_file);
/* hbusd's reads of a ring (-EFAULT when its file faulted: see mq_guarded). */
int mq_depth(struct mx_queue *q, uint64_t *depth);
int mq_stats(struct mx_queue *q, struct hbus_queue_stats *s);
int mq_scan(struct mx_queue *q, struct hbus_queue_census *c);
uint64_t mq_unacked(struct mx_queue *q);
void mq_corrupt(struct mx_queue *q, const char *during);
int mq_purge(struct model *m, struct mx_queue *q, uint64_t *purged);
/* 0 done, -EAGAIN pending, other negative: error (logged).  writers: the
 * owner's process has exited, recover its WRITING slots too. */
int mq_recover(struct model *m, struct mx_queue *q, uint32_t owner);
/* A reader of a protected queue asks hbusd to requeue the message at pos
 * that it holds (hbus_queue_requeue_for): 0, -ESTALE not held by owner,
 * -EAGAIN, -EUCLEAN corrupt, -EFAULT its file faulted. */
int mq_requeue_for(struct mx_queue *q, uint32_t owner, uint64_t pos);

/* queue_fault.c: a queue file truncated under hbusd (docs/SECURITY.md).
 * mq_guarded runs fn(q->h, arg) under the SIGBUS guard: fn's result, or
 * -EFAULT when q's file faulted (the queue is then marked corrupt and its
 * files' sizes restored).  While q->h is NULL (being opened) any SIGBUS
 * in the call counts as q's. */
typedef int (*mq_fn)(hbus_queue *h, void *arg);
int mq_guarded(struct mx_queue *q, const char *during, mq_fn fn, void *arg);
/* Put q's files back to the sizes they were made with when someone
 * changed them; 1 when one had shrunk (the queue is then marked corrupt:
 * its messages are gone), 0 when none had, negative errno. */
int mq_restore_size(struct mx_queue *q);
/* Watch the bus directory for queue files changing size (inotify on
 * m->bus_fd): the descriptor to poll, or negative errno.  mq_watch_event
 * reads what came and restores what shrank. */
int mq_watch_open(const struct model *m);
void mq_watch_event(struct model *m, int fd);

/* ---- shared by model*.c only */

/* Remove queue q from the model: consumers, bindings, pending recoveries,
 * then the file. */
void model_drop_queue(struct model *m, struct mx_queue *q);
void model_free_binding(struct mx_binding *b);
void model_free_consumer(struct mx_consumer *c);
void model_free_udpmap(struct mx_udpmap *u);
void model_remove_consumer_at(struct model *m, unsigned i);
void model_remove_bindings_of(struct model *m, const char *name, bool is_exchange);
struct mx_udpmap *model_udpmap_to(const struct model *m, const char *exchange);
void model_autodelete_exchanges(struct model *m);
int model_check_name(const char *what, const char *name, struct herr *e);
/* Commit an addition; undo() takes it back when the commit is refused.
 * While loading (restore at start) nothing is committed per item. */
int model_commit_or_undo(struct model *m, struct herr *e, void (*undo)(struct model *, void *),
			 void *what);
/* A removal is committed regardless: the table only shrinks, and a
 * definitions file that cannot be written is logged and rewritten at the
 * next change. */
void model_commit_removal(struct model *m);
/* Write the state file only (consumer changes: no routing change): 0, or
 * the error (logged). */
int model_save_state(struct model *m);

/* ---- grants (model_grant.c): the exclusive producer and consumer */

/* open_queue: may owner be sent q's file for writing (exclusive: as its
 * only producer) or reading?  Records the grant. */
int grant_open(struct model *m, struct mx_queue *q, uint32_t owner, bool write, bool exclusive,
	       struct herr *e);
/* consume, purge: 405 while another owner's consumer claims without a CAS. */
int grant_consume_check(const struct mx_queue *q, uint32_t owner, bool exclusive,
			struct herr *e);
int grant_purge_check(const struct mx_queue *q, struct herr *e);
/* An exclusive consumer registers: may it claim without a CAS?  If so it
 * holds the queue's lock until it cancels or its process exits. */
bool grant_consume_fast(struct model *m, struct mx_queue *q, uint32_t owner, const char *tag);
void grant_consumer_cancelled(struct mx_queue *q, uint32_t owner);
/* A consumer's session closed while its process runs: true when q's grants
 * changed. */
bool grant_consumer_left(struct mx_queue *q, uint32_t owner);
/* owner's process has exited: every grant it held goes.  True when any did. */
bool grants_owner_exited(struct model *m, uint32_t owner);
/* At start: drop grants of owners nothing holds (held(ctx, owner) false). */
void grants_sweep(struct model *m, bool (*held)(void *ctx, uint32_t owner), void *ctx);
void grants_free(struct mx_queue *q);
/* The state file's copy of q's grants (jansson objects). */
struct json_t;
void grants_render(const struct mx_queue *q, struct json_t *o);
void grants_restore(struct mx_queue *q, struct json_t *o);

#endif
