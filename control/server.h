/*
 * server.h - hbusd's control socket: sessions, the event loop's sources,
 * one JSON request -> one JSON reply (+ at most one descriptor).
 *
 * Single-threaded and never blocking on a client: every socket is
 * nonblocking; a reply the peer's socket cannot take now waits in the
 * session's queue (EPOLLOUT), and a session with too many replies waiting
 * is not read until they drain (backpressure, not disconnection).  A reply
 * to a topology change is held back until the routing table that contains
 * the change is published, so "ok" means readers route by it.
 */
#ifndef HBUSD_SERVER_H
#define HBUSD_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "model.h"
#include "perms.h"
#include "superblock.h"

#define HBUSD_REQUEST_MAX       (64u << 10) /* bytes of one request (--max-request) */
#define HBUSD_PENDING_REPLIES   32u         /* per session, then stop reading it */
#define HBUSD_PENDING_BYTES_SESSION (1u << 20) /* reply bytes waiting, per session */
#define HBUSD_PENDING_BYTES_USER    (8u << 20) /* ... per user (not root, hbusd's uid) */
#define HBUSD_REQUESTS_PER_WAKE 16u         /* fairness between sessions */
#define HBUSD_ACCEPTS_PER_WAKE  64u         /* a connect storm waits its turn too */
#define HBUSD_SNDBUF            (8u << 20)  /* forced, root and hbusd's uid: large replies */
#define HBUSD_SNDBUF_USER       (256u << 10) /* everyone else (wmem_max caps it) */
#define HBUSD_SB_ADMIN_RESERVE  64u         /* superblock session entries only root and
					       hbusd's uid may take */
#define HBUSD_PROTOCOL_VERSION  1

enum ev_kind { EV_LISTEN = 1, EV_SESSION, EV_SIGNAL, EV_TIMER, EV_ORPHAN, EV_WATCH };

struct ev_src {
	enum ev_kind kind;
};

struct outmsg {
	struct outmsg *next;
	char *text;
	size_t len;
	int fds[2];           /* dups to pass (SCM_RIGHTS), -1 none */
	uint64_t min_version; /* send once this topology version is published */
};

/* Reply bytes waiting for one user's sessions (replies.c). */
struct user_bytes {
	uid_t uid;
	size_t bytes;
	unsigned sessions;
	struct user_bytes *next;
};

/* A gateway's AMQP connection: an owner id checked as an AMQP user
 * (vsession.c). */
struct vsession {
	uint32_t owner;
	char *user;            /* the AMQP user */
	uint32_t *qids;        /* queues it received descriptors for */
	unsigned n_qids, cap_qids;
	bool all_queues;
	struct vsession *next;
};

struct session {
	struct ev_src ev;
	int fd;
	uint64_t id;           /* for log lines */
	uint32_t owner;        /* 0 until hello */
	char role[16];
	struct peer peer;
	uint64_t start_time;   /* of the peer process */
	uint64_t accepted_ns;  /* CLOCK_MONOTONIC: hello is due within --hello-timeout */
	struct outmsg *out_head, *out_tail;
	unsigned out_n;
	size_t out_bytes;
	struct user_bytes *user; /* its user's pending reply bytes */
	bool reading;          /* EPOLLIN armed */
	bool writing;          /* EPOLLOUT armed */
	uint32_t *qids;        /* queues this session received descriptors for */
	unsigned n_qids, cap_qids;
	bool all_queues;       /* resumed an owner from before a restart: its
				  descriptors are unknown, recover everywhere */
	bool bye;              /* the peer said it holds nothing of this session
				  any more (op bye): no orphan is kept for it */
	struct vsession *vsessions; /* a gateway's AMQP connections */
	unsigned n_vsessions;
	json_t *gw_report;     /* a gateway's latest counters (gateway_report) */
	struct session *prev, *next;
};

/* A session owner from before a restart whose process is still alive:
 * kept until the process exits (pidfd) or says hello again with it. */
struct orphan {
	struct ev_src ev;
	uint32_t owner;
	uid_t uid;             /* counts against --max-sessions-per-user */
	int32_t pid;
	uint64_t start_time;
	int pidfd;             /* -1: polled from the timer instead */
	struct orphan *next;
};

struct hbusd_opts {
	const char *bus;
	char run_dir[256];
	const char *shm_dir;
	const char *defs_path;
	const char *perms_path;
	bool foreground;
	uint32_t max_sessions;
	uint32_t max_sessions_per_user; /* root and hbusd's own uid are exempt */
	uint32_t max_request;           /* bytes of one request */
	uint32_t hello_timeout_s;       /* a session without hello is closed after it */
	struct model_limits lim;
};

struct hbusd {
	struct hbusd_opts o;
	char bus_dir[256];
	char sock_path[300];
	char pid_path[300];
	int epfd, lfd, sigfd, timerfd, pidfile_fd;
	int routes_fd;  /* read-only: what every hello passes */
	int run_fd, bus_fd; /* the held, checked directories (dirs.h) */
	int spare_fd;   /* /dev/null, given up to refuse a connection at EMFILE */
	int watch_fd;   /* inotify on the bus directory: queue files changing size */
	int timer_mode; /* 0 off, 1 slow (orphan polling), 2 fast (retries) */
	bool stop;
	struct ev_src ev_listen, ev_signal, ev_timer, ev_watch;
	struct model model;
	struct perms perms;
	struct superblock sb;
	struct session *sessions;
	unsigned n_sessions;
	unsigned n_prehello;   /* sessions that have not said hello yet */
	char *reqbuf;          /* max_request + 1 bytes: one request at a time */
	uint64_t next_session_id;
	struct orphan *orphans;
	unsigned n_orphans;
	unsigned n_pidfds;     /* orphans watched by a pidfd (the rest are polled) */
	struct user_bytes *users;
	/* Closed in this epoll batch; freed after it, as a later event of
	 * the batch may still point at them. */
	struct session *dead_sessions;
	struct orphan *dead_orphans;
};

/* server.c */
int server_listen(struct hbusd *d);
void server_session_close(struct hbusd *d, struct session *s, const char *why);
/* Close sessions whose reader block held a publish back past
 * --reader-timeout (their blocks are given up), drop blocks nobody holds. */
void server_check_readers(struct hbusd *d);
void server_accept(struct hbusd *d);
void server_session_event(struct hbusd *d, struct session *s, uint32_t events);
void server_close_all(struct hbusd *d);
/* Free sessions and orphans closed during the last epoll batch. */
void server_reap(struct hbusd *d);
/* Send held replies whose topology version is now published. */
void server_flush_all(struct hbusd *d);

/* replies.c: queueing, sending and bounding replies. */
int server_queue_reply(struct hbusd *d, struct session *s, json_t *reply, int fd, int fd2,
		       bool changed);
int server_reply_err(struct hbusd *d, struct session *s, int code, const char *msg);
int server_flush(struct hbusd *d, struct session *s);
void server_free_out(struct session *s, struct outmsg *o);
bool server_may_read(const struct hbusd *d, const struct session *s);
void server_set_events(struct hbusd *d, struct session *s, bool reading, bool writing);
void server_set_sndbuf(const struct hbusd *d, const struct session *s);
/* Read self's user's other sessions again where its bound allows. */
void server_resume_user(struct hbusd *d, struct session *self);
struct user_bytes *user_bytes_get(struct hbusd *d, uid_t uid);
void user_bytes_put(struct hbusd *d, struct user_bytes *u);
void server_note_qid(struct session *s, uint32_t qid);
/* Arm the retry timer if anything waits (publish, recovery, orphans). */
void server_update_timer(struct hbusd *d);
bool server_owner_live(const struct hbusd *d, uint32_t owner);
/* Close sessions that did not say hello within --hello-timeout. */
void server_expire_hello(struct hbusd *d);

/*
 * dispatch.c: handle one parsed request.  Returns the reply (ok or error)
 * and fds_out (up to two descriptors owned by the model, to be dup'ed, in
 * the order the reply passes them; -1 where none).
 * *changed is set when the request committed a topology change: its reply
 * must wait until that change is published.
 */
json_t *dispatch_request(struct hbusd *d, struct session *s, json_t *req, int fds_out[2],
			 bool *changed);
/* One request's bytes in, its reply out, as hbusd answers a message on its
 * socket (parse, validate, permissions, model) but without the socket: what
 * only the socket knows (descriptors sent, hang-ups) is checked before.
 * n may exceed what buf holds: a request over --max-request is refused
 * unread.  tests/fuzz/fuzz_request.c drives this directly. */
json_t *dispatch_text(struct hbusd *d, struct session *s, const char *buf, size_t n,
		      int fds_out[2], bool *changed);
json_t *reply_error(int code, const char *msg);

/* report.c: list and stat replies. */
json_t *report_queue(const struct model *m, struct mx_queue *q);
json_t *report_list(struct hbusd *d, const char *what, struct herr *e);
json_t *report_stat(struct hbusd *d);
/* report_dataplane.c: the dataplanes' counters files in bus_dir, as the
 * stat reply's "dataplanes" array (NULL only when out of memory). */
json_t *report_dataplanes(const char *bus_dir);

/* vsession.c: a gateway's virtual sessions (docs/AMQP.md, "Identity"). */
struct vsession *vsession_find(const struct session *s, uint32_t owner);
void vsession_note_qid(struct vsession *v, uint32_t qid);
json_t *vsession_login(struct hbusd *d, struct session *s, json_t *req, const char *op,
		       struct herr *e);
int vsession_logout(struct hbusd *d, struct session *s, uint32_t owner, struct herr *e);
/* The gateway's session closed: close each of its virtual sessions. */
void vsession_close_all(struct hbusd *d, struct session *s);
/* hbusd is stopping: free them, leaving the superblock as it is. */
void vsession_free_all(struct session *s);
/* gateway_report: keep a gateway's counters for stat. */
json_t *vsession_report(struct hbusd *d, struct session *s, json_t *req, struct herr *e);
/* stat's "gateways": one object per session that reported. */
json_t *vsession_gateways(const struct hbusd *d);

/* orphans.c: owners whose session is gone but whose process still runs
 * (sessions of a previous hbusd, or closed by a live process). */
struct orphan *orphan_find(struct hbusd *d, uint32_t owner);
void orphan_forget(struct hbusd *d, struct orphan *o);
void orphan_dead(struct hbusd *d, struct orphan *o);
void adopt_sessions(struct hbusd *d);
/* A session of owner closed: true when its process still runs (it is then
 * watched, and its writing slots recovered when it exits), false when it
 * has exited (recover everything now). */
bool orphan_session_closed(struct hbusd *d, uint32_t owner, uid_t uid, int32_t pid,
			   uint64_t start_time);
void poll_orphans(struct hbusd *d);
unsigned orphans_of(const struct hbusd *d, uid_t uid);
/* Is owner a live session or a watched orphan? */
bool owner_held(const struct hbusd *d, uint32_t owner);
/* Remove superblock session entries nobody holds: no live session, no
 * watched orphan, no pending recovery (at start, and when the table fills). */
unsigned sb_sweep(struct hbusd *d);

#endif
