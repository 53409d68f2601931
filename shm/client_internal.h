/*
 * client_internal.h - the bus client's session state, shared by client.c
 * (session, requests, reconnect, consumers) and router.c (routing,
 * publishing, dead-lettering), and the few extra entry points the `hbus`
 * command uses.  Not installed: the public API is hbus.h.
 *
 * Locking: c->lock guards the session socket and every field marked (L).
 * The data path never takes it: a router notices a new session by one
 * relaxed load of c->session_gen per burst and only then takes the lock to
 * pick up the new owner id and routes mapping.
 */
#ifndef HBUS_CLIENT_INTERNAL_H
#define HBUS_CLIENT_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/un.h>

#include "hbus.h"
#include "route.h"

/* A routes mapping retired by a reconnect that brought a different file.
 * Kept mapped until hbus_close: a router of another thread may still be
 * inside a burst on it. */
struct client_routes {
	struct hbus_routes *routes;
	dev_t dev;
	ino_t ino;
	struct client_routes *next;
};

/* The reader block of a session (a new one with every hello).  Routers
 * attach a slot in the current one; an old block stays mapped while a
 * router still uses it (users, under c->lock) and is unmapped after. */
struct client_readers {
	struct hbus_readers *rd;
	unsigned users;
	struct client_readers *next;
};

/* A consumer registered through hbus_consume_open, re-registered with the
 * new session after a reconnect. */
struct client_consumer {
	hbus_queue *q;
	hbus_client *client;
	char *queue;
	char *tag;
	uint32_t qid;
	uint32_t as;        /* the virtual session it consumes for (client_as.c), 0: none */
	uint32_t ack_mode, prefetch;
	uint32_t flags;        /* HBUS_CONSUME_EXCLUSIVE: registered exclusive */
	struct client_consumer *next;
};

/* A producer handle from hbus_produce_open (client_produce.c). */
struct client_producer {
	hbus_queue *q;
	uint32_t qid;
	bool exclusive;
	struct client_producer *next;
};

/* This client's write handles on one queue (client_produce.c): hbusd
 * cannot tell one owner's handles apart, so the client keeps an exclusive
 * producer its process's only writer on the queue. */
struct client_writer {
	uint32_t qid;
	unsigned shared;      /* open write handles claiming by CAS (routers) */
	hbus_queue *excl;     /* the exclusive producer handle, NULL: none */
	struct client_writer *next;
};

struct hbus_client {
	pthread_mutex_t lock;
	int sock;                         /* (L) -1 while disconnected */
	struct sockaddr_un addr;
	char role[16];
	char bus[HBUS_NAME_MAX + 1];
	char bus_dir[256];                /* (L) hbusd's bus directory, from the last hello ("" if it did not say) */
	_Atomic uint32_t owner;           /* owner id of the current session */
	_Atomic uint64_t session_gen;     /* bumped by every successful hello */
	struct client_routes *routes;     /* (L) head = current mapping */
	struct client_readers *readers;   /* (L) head = current session's block */
	uint64_t next_connect_ns;         /* (L) reconnect attempts are rate-limited */
	int in_hello;                     /* (L) a session is being opened */
	bool router_rejoins;              /* routers ask for a session themselves
					     (not a dataplane's: its control
					     thread does) */
	int err_code;                     /* (L) last refused request */
	char err_msg[256];
	struct client_consumer *consumers; /* (L) */
	struct client_consumer *as_handles; /* (L) hbus_consume_open_as */
	struct client_producer *producers; /* (L) hbus_produce_open */
	struct client_writer *writers;    /* (L) write handles per queue */
	hbus_router *routers;             /* (L) every open router */
	pthread_key_t tls;                /* this thread's router for hbus_publish */
	/* Publish outcome counters (per client, all threads). */
	_Atomic uint64_t published, unroutable, refused;
};

struct hbus_client_counters {
	uint64_t published;  /* messages enqueued on at least one queue */
	uint64_t unroutable; /* messages that matched no queue */
	uint64_t refused;    /* (message, queue) pairs a queue refused: full,
				too large, or the queue could not be opened */
};
int hbus_client_counters(const hbus_client *c, struct hbus_client_counters *out);

/* hbus_connect that also says why hbusd refused the hello (amqp_code and
 * msg are filled when it returns -EREMOTEIO; either may be NULL / 0). */
int hbus_connect_err(const struct hbus_client_opts *opts, hbus_client **out,
		     int *amqp_code, char *msg, size_t cap);

/*
 * One request/reply with hbusd: req is sent as compact JSON; *reply gets
 * the parsed reply (caller json_decref's it) and *fd the descriptor that
 * came with it (or -1; pass fd NULL to close any).  Reconnects first when
 * the session is gone.  0 = ok reply, -EREMOTEIO = refused (hbus_client_error),
 * -ENOTCONN / -ECONNREFUSED / -ENOENT = hbusd not reachable, -EPROTO = a
 * reply that is not a JSON object.
 */
int client_request(hbus_client *c, json_t *req, json_t **reply, int *fd);
/* The same with both descriptors a reply may carry (a protected queue's
 * state file, then its data file), -1 where none came. */
int client_request_fds(hbus_client *c, json_t *req, json_t **reply, int fds[2]);

/*
 * Check the session without a request (one poll(), no blocking): when
 * hbusd has gone, close the socket and try to reconnect (rate-limited).
 * 0 = session up (it was, or a reconnect succeeded: then 1), negative errno
 * when hbusd is not reachable.  For long-running loops that make no
 * control requests (hbus publish / consume), so they rejoin a restarted
 * hbusd.
 */
int hbus_client_check(hbus_client *c);

/* client_io.c: the socket, under c->lock.  drop: close it (the session is
 * gone); recv: one reply and up to two descriptors (-1 where none came),
 * waiting at most 10 s. */
void client_drop_locked(hbus_client *c);
int client_send_locked(hbus_client *c, const char *text, size_t len);
int client_recv_locked(hbus_client *c, char **text, int fds[2]);
int client_connect_retry(int fd, const struct sockaddr_un *addr);

/* The same with c->lock held (inside the session code). */
int client_request_locked(hbus_client *c, json_t *req, json_t **reply, int *fd);
int client_request_fds_locked(hbus_client *c, json_t *req, json_t **reply, int fds[2]);
void client_set_error_locked(hbus_client *c, int code, const char *msg);

/* The bus directory hbusd named in the last hello (hbus-dataplane keeps its
 * counters file there): 0, -ENOENT when it named none (an older hbusd),
 * -ENAMETOOLONG when it does not fit cap. */
int client_bus_dir(hbus_client *c, char *buf, size_t cap);

/* The current routes mapping and reader block (under c->lock). */
struct hbus_routes *client_routes_locked(hbus_client *c);
struct client_readers *client_readers_locked(hbus_client *c);
/* A router stopped using block cr (under c->lock): an old block nobody
 * uses any more is unmapped. */
void client_readers_put_locked(hbus_client *c, struct client_readers *cr);

/* client_consume.c */
void consumers_rejoin_locked(hbus_client *c, bool resumed);
void consumer_free(struct client_consumer *cc);
/* Open cc's handle from the descriptors of a consume / open_queue reply
 * (closed here, and set to -1) and set its hooks: dead-lettering, and for a protected
 * queue's reader requeues through hbusd (the op requeue, as cc->as). */
int consumer_open(struct client_consumer *cc, int fds[2], const struct hbus_queue_opts *o);

/* client_produce.c.  take: count a write handle of this client on qid
 * (excl: the exclusive producer handle, NULL: a shared one); -EBUSY (error
 * 405 set) when it would claim beside an exclusive one.  put: the handle
 * closes.  open_write: open_queue for write (exclusive: as its only
 * producer) and the handle, counted; -EBUSY refused here, -EREMOTEIO by
 * hbusd.  rejoin: a new session asks for every exclusive grant again; a
 * handle refused drops to the CAS path. */
int client_writer_take_locked(hbus_client *c, uint32_t qid, hbus_queue *excl);
void client_writer_put_locked(hbus_client *c, uint32_t qid, hbus_queue *excl);
int client_open_write_locked(hbus_client *c, uint32_t qid, uint32_t owner, bool exclusive,
			     hbus_queue **out);
void producers_rejoin_locked(hbus_client *c);
void producers_free_locked(hbus_client *c);

/* router.c: this thread's router for hbus_publish and dead-lettering,
 * created on first use. */
hbus_router *client_thread_router(hbus_client *c);
void router_destroy_all(hbus_client *c);
/* Dead-letter hook installed on every queue handle the client opens. */
void client_dead_letter(void *ctx, hbus_queue *q, const struct hbus_msg *m,
			enum hbus_dead_reason why);

#endif
