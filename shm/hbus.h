/*
 * hbus.h - the public C API of libhbus.
 *
 * A tiny API over shared-memory queue rings, in the spirit of liburing: the
 * rings live in files that hbusd creates; a client receives a file descriptor
 * (SCM_RIGHTS) and maps it.  Every function returns 0 (or a non-negative
 * count where documented) on success and a negative errno-style code on
 * failure.  No function aborts on bad input.
 *
 * Threading: a queue handle is used by one thread at a time, producer and
 * consumer calls alike (the handle keeps its own counters, journal and
 * unacked count in its record, as a liburing ring keeps its own cursors):
 * open one handle per thread.  Any number of handles, in any processes,
 * produce to and consume from one queue at once (at most
 * HBUS_QUEUE_RECORDS, 512, at a time).
 */
#ifndef HBUS_H
#define HBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HBUS_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- limits */

#define HBUS_NAME_MAX           255u        /* exchange/queue names, routing keys */
#define HBUS_QUEUE_CAPACITY_MIN 2u
#define HBUS_QUEUE_CAPACITY_MAX (1u << 24)
#define HBUS_SLOT_SIZE_MIN      8u
#define HBUS_SLOT_SIZE_MAX      (1u << 20)  /* data bytes per slot (meta + body) */
#define HBUS_OWNER_MAX          0xffffffu   /* owner ids are 24-bit, 0 is "nobody" */

/* ----------------------------------------------------------- queue rings */

enum hbus_overflow {
	HBUS_OVERFLOW_REJECT    = 0, /* a producer on a full queue gets -ENOBUFS */
	HBUS_OVERFLOW_DROP_HEAD = 1, /* the oldest READY message is discarded */
};

enum hbus_ack_mode {
	HBUS_ACK_AUTO   = 0, /* claim = done; hbus_queue_ack only returns the slot */
	HBUS_ACK_MANUAL = 1, /* slot stays CLAIMED until ack/nack */
};

/* Why a message left a queue without being consumed (dead-letter reasons). */
enum hbus_dead_reason {
	HBUS_DEAD_REJECTED = 1, /* nack without requeue */
	HBUS_DEAD_EXPIRED  = 2, /* message TTL passed */
	HBUS_DEAD_MAXLEN   = 3, /* dropped by drop-head overflow */
};

#define HBUS_MSG_REDELIVERED 0x0001u

struct hbus_queue_config {
	uint32_t capacity;  /* slots, a power of two */
	uint32_t slot_size; /* data bytes per slot: encoded meta + body */
	uint32_t overflow;  /* enum hbus_overflow */
	uint32_t ttl_ms;    /* 0 = no TTL */
	int32_t numa_node;  /* -1 = no preference */
	uint32_t flags;     /* HBUS_QUEUE_F_* */
};

/* A queue for hand-offs with one message in flight (request/response,
 * order entry): producers push each published message that spans several
 * cache lines out of their private caches (CLDEMOTE), so the waiting
 * consumer reads it sooner: -23% round trip at 288 bytes, -16% at 1344.
 * It costs streams most of their throughput (60-70%), so it is off by
 * default.  No effect on messages that fit one line, or on non-x86 CPUs. */
#define HBUS_QUEUE_F_LATENCY 0x1u
/* A queue whose consumers can read its messages but never write them: the
 * message bytes live in a second file (hbus_queue_create_protected) that
 * consumers map from a read-only descriptor; only the state words they
 * claim and free with are writable.  A consumer can then at most disturb
 * claims on the queue, never change or inject a message.  Costs a second
 * cache line per hand-off (docs/BENCHMARKS.md, "Protected queues").  A
 * consumer's nack(requeue) goes through hbusd (it writes the copy). */
#define HBUS_QUEUE_F_PROTECTED 0x2u
#define HBUS_QUEUE_F_ALL     (HBUS_QUEUE_F_LATENCY | HBUS_QUEUE_F_PROTECTED)

/* How a process uses a queue handle. */
struct hbus_queue_opts {
	uint32_t owner;    /* 1..HBUS_OWNER_MAX: names this process in slot states */
	uint32_t ack_mode; /* enum hbus_ack_mode */
	uint32_t prefetch; /* manual mode: max unacked messages, 0 = capacity */
	uint32_t flags;    /* HBUS_CONSUME_EXCLUSIVE, HBUS_PRODUCE_EXCLUSIVE */
};

/*
 * Exclusive handles: the queue's only consumer, or its only producer, as
 * hbusd granted (AMQP's exclusive consume; Aeron's ExclusivePublication;
 * rte_ring's single-producer / single-consumer modes).  With no one to
 * compete with, they claim without a CAS (the consumer takes no locked
 * instruction per message; the producer one fence per publish call, for
 * the futex handshake with sleeping consumers):
 *   HBUS_CONSUME_EXCLUSIVE  claims a message with a plain store, moves the
 *                           head with a plain store (not on a drop-head
 *                           queue, where producers remove from the head);
 *   HBUS_PRODUCE_EXCLUSIVE  claims its slots without a CAS and moves the
 *                           tail with a plain store.
 * Opening a handle exclusive without hbusd's grant breaks the queue for
 * whoever else uses it (only the queues whose descriptors the process has).
 * Recovery, acks, requeues and counters are the same as for shared handles
 * (docs/QUEUE.md, "Exclusive handles").
 */
#define HBUS_CONSUME_EXCLUSIVE 0x1u
#define HBUS_PRODUCE_EXCLUSIVE 0x2u

/* A message to enqueue.  meta is an encoded hbus_meta block (may be empty). */
struct hbus_out {
	const void *body;
	uint32_t body_len;
	uint16_t meta_len;
	uint16_t flags;
	const void *meta;
	uint64_t send_ts_ns; /* producer's timestamp (CLOCK_REALTIME ns), 0 = none */
};

/* A consumed message: a zero-copy view into shared memory, valid until it is
 * acked or nacked.  pos is the delivery tag. */
struct hbus_msg {
	const uint8_t *body;
	const uint8_t *meta;
	uint32_t body_len;
	uint16_t meta_len;
	uint16_t flags;
	uint64_t send_ts_ns;
	uint64_t enq_ts_ns; /* set only when the queue has a TTL */
	uint64_t pos;
};

/* A slot reserved for in-place writing (zero-copy publish). */
struct hbus_reservation {
	uint8_t *data;  /* slot_size writable bytes: meta first, then body */
	uint32_t cap;
	uint64_t pos;
};

/*
 * A queue's counters: sums over the records of every handle that used it.
 * Exact at rest, after a SIGKILL of anyone at any instruction once recovery
 * ran (docs/QUEUE.md, "Accounting"):
 *   enqueued = acked + released + rejected + expired + dropped_head + purged
 *              + (READY or held now)
 *   delivered = acked + released + rejected + requeued + (held now)
 */
struct hbus_queue_stats {
	/* producer side */
	uint64_t enqueued;          /* accepted messages (excluding requeues) */
	uint64_t dropped_overflow;  /* refused: queue full (reject, or no room) */
	uint64_t dropped_oversize;  /* refused: larger than a slot */
	uint64_t dropped_head;      /* accepted, then discarded by drop-head */
	uint64_t aborted;           /* slots of reservations abandoned or of dead producers */
	/* consumer side */
	uint64_t delivered;         /* claims handed to consumers (incl. redeliveries) */
	uint64_t acked;             /* manual acks */
	uint64_t released;          /* auto-mode slot returns (and dead auto consumers) */
	uint64_t requeued;          /* nack(requeue) and recovery requeues */
	uint64_t rejected;          /* nack without requeue */
	uint64_t expired;           /* TTL expiries */
	uint64_t dead_lettered;     /* handed to the dead-letter hook (at most once: not exact
				       across a kill) */
	uint64_t purged;            /* removed by purge */
	uint64_t corrupt;           /* walks that found no end (-EUCLEAN) */
	/* snapshot */
	uint64_t head, tail;        /* consumer and producer cursors */
	uint32_t capacity, slot_size;
	uint32_t handles;           /* records in use: open handles, and dead ones not yet recovered */
};

typedef struct hbus_queue hbus_queue;

/* Called (in the process that drops the message) before a message leaves the
 * queue for a dead-letter reason; the view is valid only during the call. */
typedef void (*hbus_dead_fn)(void *ctx, hbus_queue *q, const struct hbus_msg *m,
			     enum hbus_dead_reason reason);

/* Create a queue file at path (mode 0600, must not exist), sized and reserved
 * up front (fallocate), placed on cfg->numa_node.  On success *fd_out is an
 * open read-write descriptor.  -ENOSPC when the hugepage pool / tmpfs is full. */
int hbus_queue_create(const char *path, const char *name,
		      const struct hbus_queue_config *cfg, int *fd_out);

/* A protected queue (HBUS_QUEUE_F_PROTECTED in cfg->flags): the state file
 * at path, the message bytes at data_path; both descriptors returned
 * read-write (hbusd hands consumers the data file opened O_RDONLY). */
int hbus_queue_create_protected(const char *path, const char *data_path, const char *name,
				const struct hbus_queue_config *cfg, int *fd_out, int *data_fd_out);

/* Map a queue from a descriptor (the fd is dup'ed; the caller keeps its own)
 * and take a record for the handle.  Checks magic, layout version and every
 * size field: -EPROTO on a foreign or corrupt file, -EPROTONOSUPPORT on
 * another layout version, -EUSERS when every record is taken. */
int hbus_queue_open_fd(int fd, const struct hbus_queue_opts *opts, hbus_queue **out);
/* The same for a protected queue: data_fd is its data file, read-write (a
 * producer, hbusd) or read-only (a consumer: producing and requeueing then
 * return -EPERM, unless a requeue hook is set).  data_fd < 0: the queue must
 * not be protected. */
int hbus_queue_open_fds(int fd, int data_fd, const struct hbus_queue_opts *opts,
			hbus_queue **out);
/* A consumer that cannot write the bytes (a protected queue, read-only)
 * requeues through fn: the client library asks hbusd to do it. */
typedef int (*hbus_requeue_fn)(void *ctx, hbus_queue *q, const struct hbus_msg *m);
int hbus_queue_set_requeue(hbus_queue *q, hbus_requeue_fn fn, void *ctx);
/* hbusd's side of that: requeue the message at pos (a delivery tag) that a
 * handle of owner holds, as nack(requeue) would.  0, -ESTALE (not held by
 * that owner), -EAGAIN (full: retry), -EPERM (q is read-only). */
int hbus_queue_requeue_for(hbus_queue *q, uint32_t owner, uint64_t pos);
int hbus_queue_close(hbus_queue *q);

int hbus_queue_name(const hbus_queue *q, const char **name);
int hbus_queue_config_get(const hbus_queue *q, struct hbus_queue_config *cfg);
int hbus_queue_set_dead_letter(hbus_queue *q, hbus_dead_fn fn, void *ctx);

/* Producer.  enqueue: 0, -EMSGSIZE (counted), -ENOBUFS (full, counted),
 * -EUCLEAN (the ring is corrupt: a walk over it found no end, counted).
 * enqueue_burst: number enqueued (stops at the first failure), or negative
 * errno when none was. */
int hbus_queue_enqueue(hbus_queue *q, const struct hbus_out *m);
int hbus_queue_enqueue_burst(hbus_queue *q, const struct hbus_out *m, unsigned n);
int hbus_queue_reserve(hbus_queue *q, struct hbus_reservation *r);
int hbus_queue_commit(hbus_queue *q, const struct hbus_reservation *r,
		      uint16_t meta_len, uint32_t body_len, uint16_t flags, uint64_t send_ts_ns);
int hbus_queue_abort(hbus_queue *q, const struct hbus_reservation *r);

/* Consumer.  consume: 0, -EAGAIN (empty), -EBUSY (prefetch limit reached);
 * on an exclusive handle, after 16 empty polls in a row each further one
 * pauses (a spin-wait hint, ~20 ns) so a busy-polling loop does not pull
 * the slot line away from the producer writing it (docs/QUEUE.md).
 * consume_burst: number claimed (0 when empty or at the prefetch limit).
 * wait: spins briefly, then sleeps on the queue's futex until a message may
 * be ready: 0, or -ETIMEDOUT; timeout_ms < 0 waits forever. */
int hbus_queue_consume(hbus_queue *q, struct hbus_msg *m);
int hbus_queue_consume_burst(hbus_queue *q, struct hbus_msg *m, unsigned n);
int hbus_queue_wait(hbus_queue *q, int timeout_ms);
int hbus_queue_consume_wait(hbus_queue *q, struct hbus_msg *m, int timeout_ms);

/* ack: manual mode acks, auto mode returns the slot (an exclusive handle's
 * single message: at its next call on the handle, after whatever it sends
 * in between; docs/QUEUE.md, "Returned at the next call").  -ESTALE when
 * the tag is not held by this handle's owner (already acked, or recovered). */
int hbus_queue_ack(hbus_queue *q, const struct hbus_msg *m);
int hbus_queue_ack_burst(hbus_queue *q, const struct hbus_msg *m, unsigned n);
/* nack: requeue = back to its own position, flagged HBUS_MSG_REDELIVERED (it
 * is delivered again before what came after it, as in RabbitMQ; never waits
 * for room); else dead-letter (REJECTED). */
int hbus_queue_nack(hbus_queue *q, const struct hbus_msg *m, int requeue);

/* Remove up to max READY messages from the head unread (counted in purged;
 * not dead-lettered).  Claimed ones stay with their consumers, as in
 * RabbitMQ.  0 and *purged, or -EUCLEAN on a corrupt ring. */
int hbus_queue_purge(hbus_queue *q, uint64_t max, uint64_t *purged);

int hbus_queue_stats(const hbus_queue *q, struct hbus_queue_stats *s);
/* READY messages a consumer could claim now, from the counters (exact at
 * rest, approximate while handles work). */
int hbus_queue_depth(const hbus_queue *q, uint64_t *depth);
/* The slots by state now (one pass over the ring: for control decisions
 * such as delete-if-empty or granting an exclusive consumer, not for hot
 * paths). */
struct hbus_queue_census {
	uint64_t ready;    /* messages waiting for a consumer */
	uint64_t claimed;  /* held by consumers (manual or auto ack) */
	uint64_t writing;  /* being written by producers */
	uint64_t removing; /* being removed unread (expiry, drop-head, purge) */
};
int hbus_queue_scan(const hbus_queue *q, struct hbus_queue_census *c);

struct hbus_recovery {
	uint32_t skipped;     /* unpublished writes turned into skips */
	uint32_t requeued;    /* manual claims requeued as redelivered */
	uint32_t released;    /* auto claims returned */
	uint32_t removed;     /* removals (expiry, drop-head, purge) finished and counted */
	uint32_t records;     /* records freed */
};
/* Recover what a process held on this queue once it has EXITED: settle the
 * journals of its records (so every counter is exact), turn its unpublished
 * writes into skips, requeue its manual claims flagged redelivered, return
 * its auto claims, finish its removals, free its records.  Nothing is ever
 * taken from a process that still runs.  Requeued messages go back to their
 * own positions, so recovery never waits for room: one pass over the ring.
 * 0, or -EINVAL / -EPERM (a read-only handle). */
int hbus_queue_recover_owner(hbus_queue *q, uint32_t dead_owner, struct hbus_recovery *out);
/* Give back every message this handle holds (a consumer that stops, as an
 * AMQP channel closing): manual claims requeued flagged redelivered, auto
 * claims returned.  0, or the error of a requeue hbusd refused (a
 * protected queue's reader requeues through it). */
int hbus_queue_release_held(hbus_queue *q, struct hbus_recovery *out);

/* ------------------------------------------------------- message metadata */
/*
 * Exchange, routing key and headers travel in front of the body, in the
 * same encoding in a queue slot and in a wire frame (docs/PROTOCOL.md):
 *   u8 exchange_len, exchange, u8 key_len, key, u16le header_count,
 *   header_count x { u8 name_len, name, u16le value_len, value }
 */
#define HBUS_HEADERS_MAX 64u

struct hbus_header {
	const char *name;
	const char *value;
	uint8_t name_len;
	uint16_t value_len;
};

struct hbus_meta {
	const char *exchange;
	const char *routing_key;
	uint8_t exchange_len;
	uint8_t routing_key_len;
	uint16_t header_count;
	struct hbus_header headers[HBUS_HEADERS_MAX];
};

/* Encoded size of m, or negative errno (-EINVAL on a length past a limit). */
int hbus_meta_size(const struct hbus_meta *m);
/* Encode into buf; returns bytes written or -ENOSPC / -EINVAL. */
int hbus_meta_encode(const struct hbus_meta *m, uint8_t *buf, size_t cap);
/* Decode (pointers point into buf); -EBADMSG on any length past len. */
int hbus_meta_decode(const uint8_t *buf, size_t len, struct hbus_meta *m);

/* -------------------------------------------------------- wire frames */
/*
 * The UDP payload format (docs/PROTOCOL.md), little-endian:
 *   frame header (24 bytes): u32 magic "HBUS", u8 version, u8 flags,
 *     u16 msg_count, u32 stream_id, u32 reserved (0), u64 first_seq
 *   msg_count x message: u32 record_len (bytes after this field),
 *     u64 send_ts_ns, u16 meta_len, u16 flags, u32 body_len, meta, body
 * Message i of a frame has sequence number first_seq + i.
 */
#define HBUS_WIRE_MAGIC    0x53554248u /* "HBUS" little-endian */
#define HBUS_WIRE_VERSION  1u
#define HBUS_WIRE_HDR_LEN  24u
#define HBUS_WIRE_MSG_HDR_LEN 20u

struct hbus_wire_frame {
	uint32_t stream_id;
	uint16_t msg_count;
	uint8_t version;
	uint8_t flags;
	uint64_t first_seq;
	const uint8_t *msgs; /* first message record */
	size_t msgs_len;
};

struct hbus_wire_msg {
	uint64_t seq;
	uint64_t send_ts_ns;
	uint16_t flags;
	uint16_t meta_len;
	uint32_t body_len;
	const uint8_t *meta;
	const uint8_t *body;
};

struct hbus_wire_iter {
	const uint8_t *p, *end;
	uint64_t next_seq;
	uint16_t left;
};

/* Validate a frame header: 0, -EBADMSG (truncated or lengths), -EPROTO (bad
 * magic), -EPROTONOSUPPORT (other version). */
int hbus_wire_decode(const uint8_t *buf, size_t len, struct hbus_wire_frame *f);
int hbus_wire_iter_init(const struct hbus_wire_frame *f, struct hbus_wire_iter *it);
/* 1 = *m filled, 0 = end of frame, -EBADMSG = a record runs past the frame
 * (every later message of the frame is dropped too). */
int hbus_wire_iter_next(struct hbus_wire_iter *it, struct hbus_wire_msg *m);

struct hbus_wire_encoder {
	uint8_t *buf;
	size_t cap, len;
	uint16_t count;
};
int hbus_wire_encoder_init(struct hbus_wire_encoder *e, uint8_t *buf, size_t cap,
			   uint32_t stream_id, uint64_t first_seq);
/* -ENOSPC when the message does not fit (the frame stays valid). */
int hbus_wire_encoder_add(struct hbus_wire_encoder *e, const struct hbus_meta *meta,
			  const void *body, uint32_t body_len, uint64_t send_ts_ns, uint16_t flags);
/* Returns the frame length. */
int hbus_wire_encoder_finish(struct hbus_wire_encoder *e);

/* ------------------------------------------------- bus client (session) */
/*
 * A client holds one session with hbusd on its Unix socket
 * (<run_dir>/<bus>.sock; run_dir = opts->run_dir, else $HBUS_RUN_DIR, else
 * /run/hbus).  The session is how hbusd knows the process is alive: when
 * it closes (the process died), hbusd recovers the slots its owner id holds.
 * Queue files arrive as descriptors over the socket; routing happens in
 * process on the shared routing table.  If hbusd goes away, open queues
 * keep working and the client reconnects when it is back.
 */
typedef struct hbus_client hbus_client;
typedef struct hbus_router hbus_router;
struct hbus_rtable;

struct hbus_client_opts {
	const char *bus;      /* NULL: $HBUS_BUS, else "default" */
	const char *run_dir;  /* NULL: $HBUS_RUN_DIR, else /run/hbus */
	const char *role;     /* "client" (default) or "dataplane" */
};

int hbus_connect(const struct hbus_client_opts *opts, hbus_client **out);
int hbus_close(hbus_client *c);
int hbus_client_owner(const hbus_client *c, uint32_t *owner);
/* The AMQP reply code (e.g. 404) and message of the last refused request. */
int hbus_client_error(const hbus_client *c, int *amqp_code, const char **message);
/* One raw JSON request/reply (what the hbus command uses): 0 when hbusd
 * answered ok, -EREMOTEIO when it refused (see hbus_client_error). */
int hbus_call(hbus_client *c, const char *json_request, char *reply, size_t cap);

/* Publish through an exchange, routed in process.  Returns the number of
 * queues the message was enqueued on (0 = unroutable, counted). */
int hbus_publish(hbus_client *c, const char *exchange, const char *key,
		 const struct hbus_header *headers, unsigned header_count,
		 const void *body, uint32_t body_len);

/* Register as a consumer of queue and get a handle on it (owner = the
 * session's owner id).  hbus_consume_open is hbus_consume_open_ex with
 * flags 0. */
int hbus_consume_open(hbus_client *c, const char *queue, uint32_t ack_mode, uint32_t prefetch,
		      hbus_queue **out);
/* flags: HBUS_CONSUME_EXCLUSIVE registers as the queue's only consumer
 * (AMQP's exclusive consume): -EREMOTEIO with hbus_client_error 405 when
 * the queue has consumers, or another process's exclusive consumer.  The
 * handle claims without a CAS when hbusd says it may ("exclusive_fast":
 * not a drop-head queue, no message claimed or being removed by anyone,
 * no other reader): docs/CONTROL.md, "Exclusive handles".  While it is
 * registered, and while its process lives after its session closed, no
 * one else consumes, reads or purges the queue. */
int hbus_consume_open_ex(hbus_client *c, const char *queue, uint32_t ack_mode,
			 uint32_t prefetch, uint32_t flags, hbus_queue **out);
int hbus_consume_close(hbus_client *c, hbus_queue *q);

/* A producer handle on queue, for hbus_queue_enqueue* (owner = the
 * session's owner id; one thread at a time, as every handle).  flags:
 * HBUS_PRODUCE_EXCLUSIVE asks hbusd to make it the queue's only producer,
 * claiming without a CAS: granted only when no other process holds the
 * queue for writing, and then every other process's write open of it is
 * refused until this process exits (the grant outlives the handle);
 * within this process the handle must be the queue's only write handle
 * (routers and dead-lettering of this client are refused on it).
 * Refused: -EREMOTEIO with hbus_client_error 405.  On a new session the
 * grant is asked for again; a handle hbusd no longer grants it to claims
 * by CAS from then on. */
int hbus_produce_open(hbus_client *c, const char *queue, uint32_t flags, hbus_queue **out);
int hbus_produce_close(hbus_client *c, hbus_queue *q);

/* A router is per-thread routing state: a reader slot on the routes file
 * and the thread's qid -> queue handle map.  Per burst: begin (pick the
 * active table generation), look up (route.h), enqueue on
 * hbus_router_queue(qid), end. */
int hbus_router_open(hbus_client *c, hbus_router **out);
int hbus_router_close(hbus_router *r);
const struct hbus_rtable *hbus_router_begin(hbus_router *r);
/* The handle for qid; opens it through the session on first use (slow
 * path, once per queue).  NULL when the queue is gone or not permitted. */
hbus_queue *hbus_router_queue(hbus_router *r, uint32_t qid);
void hbus_router_end(hbus_router *r);
/* HBUS_PRODUCE_EXCLUSIVE: the router opens the queues it has not opened
 * yet as their exclusive producer (hbus_produce_open), for a thread that is
 * the only writer of every queue it feeds (hbus-dataplane
 * --exclusive-producer, lcores feeding disjoint queues).  0 or -EINVAL. */
int hbus_router_set_flags(hbus_router *r, uint32_t flags);
/* Why hbus_router_queue(r, qid) last returned NULL: -EBUSY when an
 * exclusive producer holds the queue, or this router asked to be one and
 * another writer holds it (405); -ENOENT when the queue is gone; another
 * negative errno; 0 when it returned a handle or was never asked. */
int hbus_router_queue_error(const hbus_router *r, uint32_t qid);

/* -------------------------------------- gateways: acting for other users */
/*
 * A gateway (hbus-amqp) holds one session and logs its own users in with
 * hbusd ({"op":"amqp_login",...} through hbus_call): each gets a virtual
 * session with an owner id of its own, and requests carrying {"as": owner}
 * are checked by hbusd as that user (docs/CONTROL.md, "Virtual sessions").
 */

/* What one publish did, queue by queue. */
struct hbus_publish_info {
	unsigned matched;  /* queues the message was routed to */
	unsigned enqueued; /* queues that took it */
	unsigned oversize; /* queues that refused it: larger than their slot */
	unsigned refused;  /* queues that refused it otherwise: full, or not openable */
};

/* hbus_publish that says what happened on each routed queue (info may be
 * NULL); same return value. */
int hbus_publish_info(hbus_client *c, const char *exchange, const char *key,
		      const struct hbus_header *headers, unsigned header_count,
		      const void *body, uint32_t body_len, struct hbus_publish_info *info);

struct hbus_consume_as {
	uint32_t as;       /* virtual session's owner id; 0: the session itself */
	uint32_t ack_mode; /* enum hbus_ack_mode */
	uint32_t prefetch;
	int exclusive;
	const char *tag;   /* consumer tag, NULL or "": hbusd makes one */
	int get_only;      /* 1: open for reading without a consumer (basic.get) */
};

/* Register a consumer (or open the queue for reading) as o->as, and get a
 * handle whose slots carry that owner id; tag_out (may be NULL) gets the
 * consumer tag.  Not re-registered after a reconnect: a virtual session
 * does not outlive its hbusd session.  Messages the handle rejects or lets
 * expire go to the queue's dead-letter exchange, as with hbus_consume_open. */
int hbus_consume_open_as(hbus_client *c, const char *queue, const struct hbus_consume_as *o,
			 hbus_queue **out, char *tag_out, size_t tag_cap);
/* Close a handle from hbus_consume_open_as (cancel the consumer first with
 * {"op":"cancel","as":...} if it is one). */
int hbus_consume_close_as(hbus_client *c, hbus_queue *q);

/* ------------------------------------------------------------- utilities */
const char *hbus_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* HBUS_H */
