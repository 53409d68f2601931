/*
 * gw.h - hbus-amqp, the AMQP 0-9-1 gateway: shared types.
 *
 * One process, one hbusd session (libhbus's hbus_client), N event loops
 * (one thread each, --threads) and one control thread.  A TCP connection
 * lives on one loop for its whole life.  Everything a loop does is
 * nonblocking: frames are parsed and answered in place, publishes go
 * through libhbus's per-thread router into the rings, consumers are polled
 * from the rings.  Requests to hbusd (declare, bind, consume, login ...)
 * go to the control thread (ctl.c) and come back as completions; while one
 * is out, the connection's input waits, so methods keep their order.
 *
 * Modules: frame (AMQP frames with librabbitmq's codecs), conn (the
 * connection state machine), chan (channel methods), chan_publish (content
 * assembly, publish, confirms), deliver (consumers, basic.get, acks),
 * props (AMQP properties <-> hbus headers), ctl (control thread), loop
 * (epoll, sockets, timers), stats (counters), main.
 */
#ifndef HBUS_AMQP_GW_H
#define HBUS_AMQP_GW_H

#include <amqp.h>
#include <amqp_framing.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hbus.h"
#include "log.h"

#define HBUS_DEBUG(...) hbus_log(HBUS_LOG_DEBUG, __VA_ARGS__)

/* ------------------------------------------------------------- options */

struct gw_opts {
	const char *bus, *run_dir;
	char host[64];
	uint16_t port;
	unsigned threads;
	unsigned channel_max;     /* offered in tune */
	unsigned frame_max;       /* offered in tune */
	unsigned heartbeat;       /* offered in tune, seconds */
	unsigned max_unacked;     /* per channel, whatever the prefetch */
	size_t max_buffer;        /* bytes buffered for one connection */
	unsigned handshake_s;     /* connect to connection.open */
	unsigned send_timeout_s;  /* a peer that reads nothing this long is cut */
	unsigned idle_max_us;     /* longest sleep between ring polls */
	uint32_t queue_capacity;  /* queues declared without x-max-length */
	uint32_t queue_slot_size;
	const char *stats_file;   /* counters as JSON, rewritten every second */
};

extern struct gw_opts gw_opts;

/* ------------------------------------------------------------- buffers */

struct gbuf {
	uint8_t *p;
	size_t head, len, cap; /* data is p[head .. head+len) */
};

int gbuf_reserve(struct gbuf *b, size_t n); /* room for n more bytes at the end */
static inline uint8_t *gbuf_end(struct gbuf *b) { return b->p + b->head + b->len; }
static inline uint8_t *gbuf_data(struct gbuf *b) { return b->p + b->head; }
void gbuf_consume(struct gbuf *b, size_t n);
void gbuf_free(struct gbuf *b);

/* ------------------------------------------------------------- counters */

enum gw_counter {
	GC_CONN_ACCEPTED, GC_CONN_CLOSED, GC_AUTH_FAILED, GC_CONN_REFUSED,
	GC_FRAMES_IN, GC_FRAMES_OUT, GC_BYTES_IN, GC_BYTES_OUT,
	GC_PUBLISHED, GC_PUB_UNROUTABLE, GC_PUB_RETURNED, GC_PUB_REFUSED,
	GC_CONFIRM_ACK, GC_CONFIRM_NACK,
	GC_DELIVERED, GC_REDELIVERED, GC_GET, GC_GET_EMPTY,
	GC_ACKED, GC_NACKED, GC_REJECTED,
	GC_ERR_FRAME, GC_ERR_SYNTAX, GC_ERR_UNEXPECTED, GC_ERR_CHANNEL, GC_ERR_NOT_IMPL,
	GC_CHAN_EXCEPTIONS, GC_CONN_EXCEPTIONS,
	GC_SLOW_READER, GC_HEARTBEAT_TIMEOUT, GC_HANDSHAKE_TIMEOUT, GC_LIMIT_HIT,
	GC_N
};
extern const char *const gw_counter_names[GC_N];

struct gw_counters {
	_Atomic uint64_t v[GC_N];
	_Atomic int64_t connections, channels, consumers; /* gauges */
};
extern struct gw_counters gw_stats;

static inline void gw_count(enum gw_counter c, uint64_t n)
{
	atomic_fetch_add_explicit(&gw_stats.v[c], n, memory_order_relaxed);
}
static inline void gw_gauge(_Atomic int64_t *g, int64_t d)
{
	atomic_fetch_add_explicit(g, d, memory_order_relaxed);
}
/* Counters as a JSON object (stats.c). */
json_t *gw_stats_json(void);

/* ---------------------------------------------------------- connections */

struct conn;
struct chan;
struct loop;

/* A consumer (basic.consume) or a basic.get handle on one queue. */
struct consumer {
	struct chan *ch;
	hbus_queue *q;           /* NULL until hbusd answered */
	char tag[256];
	char queue[256];
	bool no_ack, exclusive;
	bool get_only;           /* a basic.get handle, never polled */
	bool cancelled;          /* no more deliveries; freed once unacked is 0 */
	uint32_t prefetch;       /* basic.qos global=false: per consumer, 0 none */
	uint32_t unacked;
	struct consumer *next;
};

/* A delivery not yet acked (manual mode), in delivery-tag order. */
struct unacked {
	uint64_t tag;
	struct consumer *cons;   /* NULL: settled, waiting to be popped */
	struct hbus_msg m;
};

enum chan_state { CH_CLOSED = 0, CH_OPEN, CH_CLOSING };

struct chan {
	struct conn *c;
	uint16_t id;
	enum chan_state state;
	bool flow;               /* channel.flow: deliveries allowed */
	bool confirm;            /* confirm.select */
	uint64_t pub_seq;        /* publish sequence number of the next publish */
	uint64_t ack_upto;       /* confirms: an ack (multiple) up to this is owed */
	uint64_t next_tag;       /* delivery tags */
	/* content being assembled (basic.publish + header + bodies) */
	int cstate;              /* 0 none, 1 want header, 2 want body */
	bool mandatory, discard;
	char exch[256], rk[256];
	uint8_t *props;          /* encoded properties (flags on) */
	size_t props_len;
	uint8_t *body;
	size_t body_len, body_got, body_cap;
	/* consuming */
	uint32_t prefetch;       /* basic.qos global=true: per channel */
	uint32_t consumer_prefetch; /* basic.qos global=false: for new consumers */
	uint32_t unacked_n;
	struct unacked *ua;
	size_t ua_head, ua_n, ua_cap;
	struct consumer *consumers;
	unsigned rr;             /* round-robin start among consumers */
};

enum conn_state {
	C_HEADER = 0,  /* waiting for the protocol header */
	C_START_OK,    /* connection.start sent */
	C_TUNE_OK,     /* logged in, connection.tune sent */
	C_OPEN_WAIT,   /* tune-ok received, waiting for connection.open */
	C_OPEN,
	C_CLOSING,     /* connection.close sent, waiting for close-ok */
	C_DONE,        /* flush the output, then close the socket */
};

struct conn {
	int fd;
	struct loop *loop;
	uint64_t id;
	enum conn_state state;
	struct gbuf in, out;
	amqp_pool_t pool;        /* decoded methods; recycled after each */
	uint32_t frame_max;
	uint16_t channel_max, heartbeat;
	uint64_t opened_ns, last_rx_ns, last_tx_ns, stuck_since_ns, close_ns;
	char peer[64];
	char user[256];
	uint32_t vs;             /* virtual session owner id (amqp_login) */
	bool waiting;            /* a control request is out: input waits */
	unsigned pending;        /* control requests not completed yet */
	bool dead;               /* socket closed; freed when pending is 0 */
	bool reading, writing;   /* epoll interest */
	bool shut;               /* C_DONE: write side shut, draining input */
	bool peer_closes;        /* close-ok sent: the peer closes the socket */
	struct chan **ch;        /* [channel_max + 1], lazily allocated */
	unsigned n_chan;
	unsigned hi_ch;          /* highest channel id ever opened: loops stop there */
	char **write_ok;         /* exchanges this user may publish to */
	unsigned n_write_ok;
	size_t body_bytes;       /* bytes of partial contents held */
	struct conn *prev, *next;
};

/* conn.c */
struct conn *conn_new(struct loop *l, int fd, const char *peer);
/* Parse and act on what is in c->in (stops while c->waiting). */
void conn_process(struct conn *c);
/* A connection exception: connection.close(code, text), then close. */
void conn_fail(struct conn *c, int code, uint16_t class_id, uint16_t method_id,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The socket is gone or must go: release everything (deliveries
 * requeued, virtual session logged out). */
void conn_teardown(struct conn *c);
/* Per second: heartbeats, deadlines. */
void conn_tick(struct conn *c, uint64_t now_ns);
void conn_free(struct conn *c);
struct chan *conn_chan(struct conn *c, uint16_t id);

/* frame.c: AMQP frames (see frame.h). */

/* chan.c */
int chan_method(struct chan *ch, amqp_method_number_t id, void *m);
void chan_exception(struct chan *ch, int code, amqp_method_number_t cause, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void chan_release(struct chan *ch); /* deliveries requeued, consumers gone */
/* chan_publish.c */
int chan_publish_method(struct chan *ch, const amqp_basic_publish_t *p);
int chan_content_header(struct chan *ch, const uint8_t *p, size_t n);
int chan_content_body(struct chan *ch, const uint8_t *p, size_t n);
void chan_confirm_flush(struct chan *ch);
int chan_write_authorized(struct conn *c, const char *exch);
void chan_write_authorize(struct conn *c, const char *exch);

/* deliver.c */
/* Deliver what the rings hold to this loop's consumers: messages sent. */
unsigned deliver_pass(struct loop *l);
void deliver_thread_exit(void); /* a loop thread ends */
int deliver_ack(struct chan *ch, uint64_t tag, bool multiple, int how);
int deliver_recover(struct chan *ch);
void deliver_get(struct chan *ch, struct consumer *g);
void consumer_settled(struct consumer *k);
void consumer_free_handle(struct consumer *k);
/* A queue was deleted through this loop: its consumers here get
 * basic.cancel (consumer_cancel_notify). */
void deliver_queue_deleted(struct loop *l, const char *queue);
enum { SETTLE_ACK = 0, SETTLE_REQUEUE = 1, SETTLE_DROP = 2 };

/* props.c */
struct props_hdrs {
	struct hbus_header h[HBUS_HEADERS_MAX];
	unsigned n;
	char text[8][32];        /* numbers printed for headers */
	uint8_t blob[4096];      /* exact properties when headers cannot say it */
};
/* AMQP properties (decoded) -> hbus headers. */
int props_to_headers(const amqp_basic_properties_t *p, const uint8_t *raw, size_t raw_len,
		     struct props_hdrs *out);
/* hbus message meta -> encoded AMQP properties (flags + values) in buf:
 * bytes written or negative. */
int props_from_meta(const uint8_t *meta, size_t meta_len, amqp_pool_t *pool, uint8_t *buf,
		    size_t cap);

/* ------------------------------------------------------------- control */

enum ctl_kind { CTL_CALL = 0, CTL_OPEN, CTL_CLOSE_HANDLE };

struct ctl_req;
typedef void (*ctl_done_fn)(struct conn *c, struct ctl_req *r);

struct ctl_req {
	struct ctl_req *next;
	enum ctl_kind kind;
	json_t *req;             /* CTL_CALL: the request (owned) */
	char queue[256];         /* CTL_OPEN */
	struct hbus_consume_as as;
	char tag[256];
	hbus_queue *q;           /* CTL_OPEN result, CTL_CLOSE_HANDLE input */
	/* result */
	int rc, code;
	char msg[300];
	json_t *reply;           /* CTL_CALL ok: the reply (owned) */
	/* back to the loop */
	struct conn *c;          /* NULL: nobody waits (fire and forget) */
	ctl_done_fn done;
	uint16_t channel;
	uint32_t method;         /* the AMQP method that asked */
	bool nowait;
	void *arg;
};

struct ctl_req *ctl_new(enum ctl_kind k);
void ctl_free(struct ctl_req *r);
/* Send r to the control thread; r->done runs on c's loop when it is back
 * (and c->waiting is cleared first when wait is true). */
void ctl_submit(struct conn *c, struct ctl_req *r, bool wait);
/* A request nobody waits for (logout, cancel, closing a handle). */
void ctl_submit_detached(struct ctl_req *r);
/* JSON request helper: {"op": op, "as": c->vs, ...}. */
json_t *ctl_json(struct conn *c, const char *op);

/* ------------------------------------------------------------- loops */

struct loop {
	int epfd, evfd;          /* eventfd: control completions */
	unsigned idx;
	struct conn *conns;
	unsigned n_conns;
	struct ctl_req *done_head, *done_tail; /* (lock) completions */
	void *lock;              /* pthread_mutex_t */
	uint64_t next_tick_ns;
	unsigned idle;           /* empty passes in a row */
	bool stop;
};

/* The hbus session and publish entry point (ctl.c owns the client). */
extern hbus_client *gw_client;
int gw_publish(const char *exch, const char *rk, const struct hbus_header *h, unsigned nh,
	       const void *body, uint32_t len, struct hbus_publish_info *info);

void loop_want_write(struct conn *c);
void loop_update_events(struct conn *c);
uint64_t gw_now_ns(void);

/* How many connections user has on this gateway (all loops). */
unsigned gw_user_connections(const char *user);

#endif
