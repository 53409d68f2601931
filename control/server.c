/*
 * server.c - the control socket: accept, read requests, send replies with
 * descriptors, close sessions (and with them, recover what they held).
 */
#include "server.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FDS_IN_MAX 16 /* descriptors a misbehaving peer may send us at once */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int server_listen(struct hbusd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &d->ev_listen };
	mode_t mode = perms_grants_others(&d->perms) ? 0666 : 0600, old;
	const char *name = strrchr(d->sock_path, '/') + 1;
	int fd, n, rc = 0;

	if (strlen(d->sock_path) >= sizeof(sa.sun_path)) {
		HBUS_ERR("socket path %s is longer than %zu bytes: use a shorter --run-dir",
			 d->sock_path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	/* Bound through the held run dir, so the socket lands in the
	 * directory that was checked, whatever happened to its path since. */
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", d->run_fd, name);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	d->reqbuf = malloc((size_t)d->o.max_request + 1);
	if (!d->reqbuf)
		return -ENOMEM;
	d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* We hold the bus lock: a socket file left here is a dead hbusd's. */
	if (unlinkat(d->run_fd, name, 0) == 0)
		HBUS_INFO("removed %s, left by an hbusd that did not stop cleanly: replaced",
			  d->sock_path);
	/* The mode comes from the umask at bind: no chmod by path after. */
	old = umask(~mode & 0777);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0)
		rc = -errno;
	umask(old);
	if (rc) {
		close(fd);
		return rc;
	}
	d->lfd = fd;
	d->ev_listen.kind = EV_LISTEN;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -errno;
	return 0;
}

static struct session *session_of_owner(const struct hbusd *d, uint32_t owner)
{
	struct session *s;

	for (s = d->sessions; s; s = s->next)
		if (s->owner == owner)
			return s;
	return NULL;
}

static bool held_cb(void *ctx, uint32_t owner)
{
	return owner_held(ctx, owner);
}

void server_check_readers(struct hbusd *d)
{
	struct readers_reg *g = &d->model.readers;
	uint32_t owners[16];
	unsigned i, n = readers_overdue(g, owners, 16);
	char msg[240];

	for (i = 0; i < n; i++) {
		struct session *s = session_of_owner(d, owners[i]);

		/* A router finishes a burst in microseconds: a block still on
		 * an old generation this long is stopped, stuck or forged.
		 * Its process is treated as no longer reading. */
		snprintf(msg, sizeof(msg), "a reader slot of this session held routing table "
			 "generation back for over %u ms (hbusd --reader-timeout): its reader block "
			 "is no longer honoured, session closed", g->timeout_ms);
		HBUS_WARN("owner %u (%s pid %d): reader block held a routing table publish back for "
			  "over %u ms: given up%s", owners[i], s ? "session," : "closed,",
			  s ? (int)s->peer.pid : 0, g->timeout_ms, s ? ", session closed" : "");
		readers_drop_owner(g, owners[i]);
		if (s && server_reply_err(d, s, AMQP_PRECONDITION, msg) == 0)
			server_session_close(d, s, "reader timed out");
	}
	readers_sweep(g, held_cb, d);
}

bool server_owner_live(const struct hbusd *d, uint32_t owner)
{
	return session_of_owner(d, owner) != NULL;
}

void server_note_qid(struct session *s, uint32_t qid)
{
	unsigned i;

	for (i = 0; i < s->n_qids; i++)
		if (s->qids[i] == qid)
			return;
	if (s->n_qids == s->cap_qids) {
		unsigned cap = s->cap_qids ? s->cap_qids * 2 : 8;
		uint32_t *n = realloc(s->qids, cap * sizeof(*n));
		if (!n) {
			s->all_queues = true; /* cannot track: recover everywhere */
			return;
		}
		s->qids = n;
		s->cap_qids = cap;
	}
	s->qids[s->n_qids++] = qid;
}

/* Stop watching and close a session's socket, dropping replies not sent. */
static void session_disconnect(struct hbusd *d, struct session *s)
{
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	while (s->out_head) {
		struct outmsg *o = s->out_head;
		s->out_head = o->next;
		server_free_out(s, o);
	}
	s->out_tail = NULL;
	s->out_n = 0;
}

void server_session_close(struct hbusd *d, struct session *s, const char *why)
{
	unsigned pending = 0;

	session_disconnect(d, s);
	server_resume_user(d, s);
	if (!s->owner)
		d->n_prehello--;
	vsession_close_all(d, s); /* a gateway's AMQP connections go with it */
	if (s->owner) {
		/* A process that still runs keeps its half-written slots until
		 * it exits (it publishes them by plain stores); its claims go
		 * back now.  Only sessions that were sent queues can hold any. */
		bool runs = !s->bye && (s->n_qids || s->all_queues) &&
			    orphan_session_closed(d, s->owner, s->peer.uid, s->peer.pid,
						  s->start_time);
		/* NULL means every queue: only for owners whose descriptors
		 * hbusd cannot know (resumed from before a restart). */
		static const uint32_t none[1];
		pending = model_owner_gone(&d->model, s->owner,
					   s->all_queues ? NULL : s->qids ? s->qids : none,
					   s->n_qids, !runs);
		if (runs)
			; /* the superblock entry stays: a restarted hbusd watches it */
		else if (pending)
			sb_session_closed(&d->sb, s->owner);
		else
			sb_session_remove(&d->sb, s->owner);
	}
	/* A session that never said hello held nothing: not worth a line
	 * each (a connect/close storm must not flood the log). */
	hbus_log(s->owner ? HBUS_LOG_INFO : HBUS_LOG_DEBUG,
		 "session %llu closed (%s): pid %d, user %s, owner %u%s",
		 (unsigned long long)s->id, why, (int)s->peer.pid, s->peer.user, s->owner,
		 pending ? ", recovery pending" : "");
	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	d->n_sessions--;
	user_bytes_put(d, s->user);
	s->user = NULL;
	s->ev.kind = 0;
	s->fd = -1;
	s->next = d->dead_sessions;
	d->dead_sessions = s;
	server_update_timer(d);
}

void server_reap(struct hbusd *d)
{
	while (d->dead_sessions) {
		struct session *s = d->dead_sessions;
		d->dead_sessions = s->next;
		free(s->qids);
		free(s);
	}
	while (d->dead_orphans) {
		struct orphan *o = d->dead_orphans;
		d->dead_orphans = o->next;
		free(o);
	}
}

/* Did the peer hang up?  A zero-byte read is EOF or an empty message. */
static bool peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void close_passed_fds(struct msghdr *mh, bool *had)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t i, n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			close(f);
		}
		*had = true;
	}
}

/* A session said hello: it gets its reader block (route.h) with the reply,
 * after the routes file.  Without one the session is useless: closed. */
static int hello_done(struct hbusd *d, struct session *s, json_t *reply, int routes_fd)
{
	struct hbus_readers *rd;
	char msg[160];
	int fd = -1, rc;

	rc = hbus_readers_create(&fd, &rd);
	if (rc == 0 && (rc = readers_add(&d->model.readers, s->owner, rd)) != 0) {
		close(fd);
		fd = -1;
	}
	if (rc) {
		json_decref(reply);
		snprintf(msg, sizeof(msg), "hbusd cannot make the session's reader block: %s%s",
			 hbus_strerror(rc), rc == -EMFILE || rc == -ENFILE ? " (raise its limit of "
			 "open files: ulimit -n, or LimitNOFILE= under systemd)" : "");
		if (server_reply_err(d, s, AMQP_PRECONDITION, msg) == 0)
			server_session_close(d, s, "no reader block");
		return -1;
	}
	/* The reply holds its own dup: ours is not needed any more. */
	rc = server_queue_reply(d, s, reply, routes_fd, fd, false);
	close(fd);
	return rc ? -1 : 1;
}

/* Read and answer one request.  1: read one, 0: nothing to read, -1:
 * session closed. */
static int read_one(struct hbusd *d, struct session *s, char *buf)
{
	char cbuf[CMSG_SPACE(FDS_IN_MAX * sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = (size_t)d->o.max_request + 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	json_t *reply;
	bool fds = false, changed = false, said_hello = s->owner != 0;
	ssize_t n;
	int out[2] = { -1, -1 };

	/* MSG_TRUNC: n is the size the peer sent, even past the buffer. */
	n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		server_session_close(d, s, strerror(errno));
		return -1;
	}
	close_passed_fds(&mh, &fds);
	if (fds || (mh.msg_flags & MSG_CTRUNC))
		return server_reply_err(d, s, AMQP_COMMAND_INVALID,
					"hbusd accepts no file descriptors: request ignored") ? -1 : 1;
	if (n == 0 && peer_gone(s->fd)) {
		server_session_close(d, s, "peer closed");
		return -1;
	}
	reply = dispatch_text(d, s, buf, (size_t)n, out, &changed);
	if (!said_hello && s->owner) {
		d->n_prehello--;
		return hello_done(d, s, reply, out[0]);
	}
	if (server_queue_reply(d, s, reply, out[0], out[1], changed))
		return -1;
	if (s->bye) {
		server_session_close(d, s, "said bye");
		return -1;
	}
	return 1;
}

void server_session_event(struct hbusd *d, struct session *s, uint32_t events)
{
	unsigned i;
	int rc = 1;

	if ((events & EPOLLOUT) && server_flush(d, s))
		return;
	if ((events & (EPOLLHUP | EPOLLERR)) && !s->reading) {
		/* Gone while we were not reading it (backpressure, or replies
		 * held for a publish): nobody is left to read the replies. */
		server_session_close(d, s, "peer closed");
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		for (i = 0; i < HBUSD_REQUESTS_PER_WAKE && server_may_read(d, s); i++) {
			rc = read_one(d, s, d->reqbuf);
			if (rc <= 0)
				break;
		}
		if (rc < 0)
			return;
		/* Hung up with nothing left to read (requests still queued
		 * are read first: a peer may send and close at once). */
		if (rc == 0 && (events & (EPOLLHUP | EPOLLERR))) {
			server_session_close(d, s, "peer closed");
			return;
		}
		if (!server_may_read(d, s))
			server_set_events(d, s, false, s->writing);
	}
	server_update_timer(d);
}

/* Refuse a connection with one reply (the peer reads it, then EOF).  The
 * log says so at most once a second: refusals come in storms. */
static void refuse(int fd, const char *msg)
{
	static uint64_t last_ns;
	static unsigned quiet;
	uint64_t now = mono_ns();
	json_t *r = reply_error(AMQP_PRECONDITION, msg);
	char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
	char sink[64];
	int i;

	if (text)
		send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
	/* Closing with requests unread makes the peer's next read fail with
	 * ECONNRESET instead of returning the reason: drop them first
	 * (bounded: a hung-up peer reads as endless empty messages). */
	for (i = 0; i < 64 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT | MSG_TRUNC) >= 0; i++)
		;
	free(text);
	json_decref(r);
	close(fd);
	if (last_ns && now - last_ns < 1000000000u) {
		quiet++;
		return;
	}
	HBUS_WARN("connection refused: %s (%u more in the last second)", msg, quiet);
	last_ns = now;
	quiet = 0;
}

static unsigned sessions_of(const struct hbusd *d, uid_t uid)
{
	const struct session *s;
	unsigned n = 0;

	for (s = d->sessions; s; s = s->next)
		n += s->peer.uid == uid;
	return n;
}

/* One user cannot take every session from the others (a local user may
 * connect whenever the socket is 0666).  Closed sessions whose process
 * still runs count too: hbusd keeps their owner ids (and their superblock
 * entries) until those processes exit. */
static bool over_user_limit(struct hbusd *d, const struct session *s, char *msg, size_t cap)
{
	unsigned live, closed;

	if (perms_is_admin(&d->perms, &s->peer))
		return false;
	live = sessions_of(d, s->peer.uid);
	closed = orphans_of(d, s->peer.uid);
	if (live + closed < d->o.max_sessions_per_user)
		return false;
	snprintf(msg, cap, "too many sessions of user '%s': limit of %u reached (hbusd "
		 "--max-sessions-per-user)", s->peer.user, d->o.max_sessions_per_user);
	if (closed)
		snprintf(msg + strlen(msg), cap - strlen(msg), "; %u of them closed, kept until "
			 "their processes exit", closed);
	return true;
}

void server_accept(struct hbusd *d)
{
	unsigned n;
	char msg[300];

	/* Bounded: hang-ups of the sessions accepted so far are handled
	 * before more are taken (the listening socket stays readable). */
	for (n = 0; n < HBUSD_ACCEPTS_PER_WAKE; n++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		struct session *s;
		int fd = accept4(d->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && d->spare_fd >= 0) {
			/* Out of descriptors: the connection would stay in the
			 * backlog and the listening socket readable forever.  Use
			 * the spare one to tell the peer why, then close it. */
			close(d->spare_fd);
			fd = accept4(d->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd >= 0)
				refuse(fd, "hbusd has reached its limit of open files: raise it "
					   "(ulimit -n, or LimitNOFILE= under systemd)");
			d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			continue;
		}
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				HBUS_WARN("accept: %s", strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (d->n_sessions >= d->o.max_sessions) {
			snprintf(msg, sizeof(msg), "too many sessions: limit of %u reached (hbusd "
				 "--max-sessions)", d->o.max_sessions);
			refuse(fd, msg);
			continue;
		}
		s = calloc(1, sizeof(*s));
		if (!s) {
			close(fd);
			continue;
		}
		s->ev.kind = EV_SESSION;
		s->fd = fd;
		s->id = ++d->next_session_id;
		s->reading = true;
		if (peer_identify(fd, &s->peer) != 0) {
			/* Without the kernel's word on who this is, nothing may
			 * be granted: a zeroed peer would read as root. */
			HBUS_WARN("connection refused: SO_PEERCRED failed: %s", strerror(errno));
			close(fd);
			free(s);
			continue;
		}
		if (over_user_limit(d, s, msg, sizeof(msg))) {
			refuse(fd, msg);
			free(s);
			continue;
		}
		s->start_time = proc_start_time(s->peer.pid);
		s->accepted_ns = mono_ns();
		server_set_sndbuf(d, s);
		ev.data.ptr = s;
		if (!(s->user = user_bytes_get(d, s->peer.uid)) ||
		    epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			user_bytes_put(d, s->user);
			close(fd);
			free(s);
			continue;
		}
		s->next = d->sessions;
		if (d->sessions)
			d->sessions->prev = s;
		d->sessions = s;
		d->n_sessions++;
		d->n_prehello++;
	}
}

void server_expire_hello(struct hbusd *d)
{
	uint64_t limit = (uint64_t)d->o.hello_timeout_s * 1000000000u, now = mono_ns();
	struct session *s = d->sessions, *next;
	char msg[120];

	if (!d->n_prehello)
		return;
	snprintf(msg, sizeof(msg), "no hello within %u s: session closed (hbusd --hello-timeout)",
		 d->o.hello_timeout_s);
	for (; s; s = next) {
		next = s->next;
		if (s->owner || now - s->accepted_ns < limit)
			continue;
		/* Say why before closing: the peer can still read it. */
		if (server_queue_reply(d, s, reply_error(AMQP_COMMAND_INVALID, msg), -1, -1,
				       false) == 0)
			server_session_close(d, s, "no hello in time");
	}
}

void server_flush_all(struct hbusd *d)
{
	struct session *s = d->sessions, *next;

	for (; s; s = next) {
		next = s->next;
		if (s->out_head)
			server_flush(d, s);
	}
}

void server_close_all(struct hbusd *d)
{
	struct session *s;

	/* hbusd is stopping, not the clients: their slots stay theirs and
	 * their superblock entries stay, so the next hbusd treats them as
	 * orphans to resume or recover. */
	while ((s = d->sessions) != NULL) {
		session_disconnect(d, s);
		d->sessions = s->next;
		user_bytes_put(d, s->user);
		vsession_free_all(s);
		free(s->qids);
		free(s);
	}
	d->n_sessions = 0;
	d->n_prehello = 0;
	free(d->reqbuf);
	d->reqbuf = NULL;
	if (d->spare_fd >= 0)
		close(d->spare_fd);
	d->spare_fd = -1;
}

void server_update_timer(struct hbusd *d)
{
	struct itimerspec its = { 0 };
	bool slow = false;
	struct orphan *o;
	int mode;

	for (o = d->orphans; o && !slow; o = o->next)
		slow = o->pidfd < 0;
	slow = slow || d->n_prehello; /* hello deadlines */
	mode = model_publish_waiting(&d->model) || d->model.pending.n ? 2 : slow ? 1 : 0;
	if (mode == d->timer_mode)
		return;
	/* 10 ms: a reader finishes a burst in microseconds, and a full queue
	 * drains within a consumer's latency budget.  Orphans without a
	 * pidfd, and hello deadlines, are checked twice a second. */
	if (mode) {
		its.it_value.tv_nsec = mode == 2 ? 10000000 : 500000000;
		its.it_interval = its.it_value;
	}
	timerfd_settime(d->timerfd, 0, &its, NULL);
	d->timer_mode = mode;
}
