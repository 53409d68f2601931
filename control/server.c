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
	mode_t mode = perms_grants_others(&d->perms) ? 0666 : 0600;
	int fd;

	if (strlen(d->sock_path) >= sizeof(sa.sun_path)) {
		HBUS_ERR("socket path %s is longer than %zu bytes: use a shorter --run-dir",
			 d->sock_path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, d->sock_path, strlen(d->sock_path) + 1);
	d->reqbuf = malloc((size_t)d->o.max_request + 1);
	if (!d->reqbuf)
		return -ENOMEM;
	d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* We hold the bus lock: a socket file left here is a dead hbusd's. */
	if (unlink(d->sock_path) == 0)
		HBUS_INFO("removed %s, left by an hbusd that did not stop cleanly: replaced",
			  d->sock_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(d->sock_path, mode) != 0 ||
	    listen(fd, 128) != 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	d->lfd = fd;
	d->ev_listen.kind = EV_LISTEN;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -errno;
	return 0;
}

static void set_events(struct hbusd *d, struct session *s, bool reading, bool writing)
{
	struct epoll_event ev = { .data.ptr = s };

	if (s->reading == reading && s->writing == writing)
		return;
	/* RDHUP is level-triggered: armed only while the session is read,
	 * or a hung-up peer we are not reading would wake us forever. */
	ev.events = (reading ? EPOLLIN | EPOLLRDHUP : 0) | (writing ? EPOLLOUT : 0);
	if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, s->fd, &ev) == 0) {
		s->reading = reading;
		s->writing = writing;
	}
}

bool server_owner_live(const struct hbusd *d, uint32_t owner)
{
	const struct session *s;

	for (s = d->sessions; s; s = s->next)
		if (s->owner == owner)
			return true;
	return false;
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

static void free_out(struct outmsg *o)
{
	if (o->fd >= 0)
		close(o->fd);
	free(o->text);
	free(o);
}

/* Stop watching and close a session's socket, dropping replies not sent. */
static void session_disconnect(struct hbusd *d, struct session *s)
{
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	while (s->out_head) {
		struct outmsg *o = s->out_head;
		s->out_head = o->next;
		free_out(o);
	}
}

static void session_close(struct hbusd *d, struct session *s, const char *why)
{
	unsigned pending = 0;

	session_disconnect(d, s);
	if (!s->owner)
		d->n_prehello--;
	vsession_close_all(d, s); /* a gateway's AMQP connections go with it */
	if (s->owner) {
		/* A process that still runs keeps its half-written slots until
		 * it exits (it publishes them by plain stores); its claims go
		 * back now.  Only sessions that were sent queues can hold any. */
		bool runs = (s->n_qids || s->all_queues) &&
			    orphan_session_closed(d, s->owner, s->peer.pid, s->start_time);
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

/* Send what can be sent now.  -1: the session had to be closed. */
static int flush(struct hbusd *d, struct session *s)
{
	while (s->out_head) {
		struct outmsg *o = s->out_head;
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { .iov_base = o->text, .iov_len = o->len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (o->min_version > d->model.published_version)
			break; /* held until the table with this change is live */
		if (o->fd >= 0) {
			struct cmsghdr *cm;
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &o->fd, sizeof(int));
		}
		n = sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_events(d, s, s->reading, true);
			return 0;
		}
		if (n < 0 && errno == EMSGSIZE && o->fd < 0) {
			char msg[160];
			snprintf(msg, sizeof(msg), "{\"ok\":false,\"code\":541,\"error\":\"reply of %zu "
				 "bytes is larger than the socket can carry\"}", o->len);
			free(o->text);
			o->text = strdup(msg);
			o->len = o->text ? strlen(o->text) : 0;
			if (o->text)
				continue;
		}
		if (n < 0) {
			session_close(d, s, errno == EPIPE || errno == ECONNRESET ? "peer went away"
										   : strerror(errno));
			return -1;
		}
		s->out_head = o->next;
		if (!s->out_head)
			s->out_tail = NULL;
		s->out_n--;
		free_out(o);
	}
	set_events(d, s, s->out_n < HBUSD_PENDING_REPLIES, s->out_head != NULL &&
		   s->out_head->min_version <= d->model.published_version);
	return 0;
}

static int queue_reply(struct hbusd *d, struct session *s, json_t *reply, int fd, bool changed)
{
	struct outmsg *o = calloc(1, sizeof(*o));

	if (!o)
		goto oom;
	o->fd = -1;
	o->text = json_dumps(reply, JSON_COMPACT);
	if (!o->text)
		goto oom;
	o->len = strlen(o->text);
	/* The model may close its descriptor (queue deleted) before this is
	 * sent: hold our own. */
	if (fd >= 0 && (o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		/* Without its descriptor the reply is useless, and what the
		 * request set up (an owner, a consumer) must not stay: say why,
		 * then end the session, which undoes it. */
		free_out(o);
		json_decref(reply);
		if (queue_reply(d, s, reply_error(AMQP_PRECONDITION, "hbusd has reached its limit of "
						  "open files: raise it (ulimit -n, or LimitNOFILE= "
						  "under systemd); session closed"), -1, false) == 0)
			session_close(d, s, "no descriptor left to pass");
		return -1;
	}
	o->min_version = changed ? d->model.version : 0;
	if (s->out_tail)
		s->out_tail->next = o;
	else
		s->out_head = o;
	s->out_tail = o;
	s->out_n++;
	json_decref(reply);
	return flush(d, s);
oom:
	if (o)
		free_out(o);
	json_decref(reply);
	session_close(d, s, "out of memory");
	return -1;
}

static int reply_err(struct hbusd *d, struct session *s, int code, const char *msg)
{
	return queue_reply(d, s, reply_error(code, msg), -1, false);
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
	int fd = -1;

	/* MSG_TRUNC: n is the size the peer sent, even past the buffer. */
	n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		session_close(d, s, strerror(errno));
		return -1;
	}
	close_passed_fds(&mh, &fds);
	if (fds || (mh.msg_flags & MSG_CTRUNC))
		return reply_err(d, s, AMQP_COMMAND_INVALID,
				 "hbusd accepts no file descriptors: request ignored") ? -1 : 1;
	if (n == 0 && peer_gone(s->fd)) {
		session_close(d, s, "peer closed");
		return -1;
	}
	reply = dispatch_text(d, s, buf, (size_t)n, &fd, &changed);
	if (!said_hello && s->owner)
		d->n_prehello--;
	if (queue_reply(d, s, reply, fd, changed))
		return -1;
	return 1;
}

void server_session_event(struct hbusd *d, struct session *s, uint32_t events)
{
	unsigned i;
	int rc = 1;

	if ((events & EPOLLOUT) && flush(d, s))
		return;
	if ((events & (EPOLLHUP | EPOLLERR)) && !s->reading) {
		/* Gone while we were not reading it (backpressure, or replies
		 * held for a publish): nobody is left to read the replies. */
		session_close(d, s, "peer closed");
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		for (i = 0; i < HBUSD_REQUESTS_PER_WAKE && s->out_n < HBUSD_PENDING_REPLIES; i++) {
			rc = read_one(d, s, d->reqbuf);
			if (rc <= 0)
				break;
		}
		if (rc < 0)
			return;
		/* Hung up with nothing left to read (requests still queued
		 * are read first: a peer may send and close at once). */
		if (rc == 0 && (events & (EPOLLHUP | EPOLLERR))) {
			session_close(d, s, "peer closed");
			return;
		}
		if (s->out_n >= HBUSD_PENDING_REPLIES)
			set_events(d, s, false, s->writing);
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

void server_accept(struct hbusd *d)
{
	int sndbuf = HBUSD_SNDBUF;
	unsigned n;
	char msg[200];

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
		/* One user cannot take every session from the others (a local
		 * user may connect whenever the socket is 0666). */
		if (!perms_is_admin(&d->perms, &s->peer) &&
		    sessions_of(d, s->peer.uid) >= d->o.max_sessions_per_user) {
			snprintf(msg, sizeof(msg), "too many sessions of user '%s': limit of %u "
				 "reached (hbusd --max-sessions-per-user)", s->peer.user,
				 d->o.max_sessions_per_user);
			refuse(fd, msg);
			free(s);
			continue;
		}
		s->start_time = proc_start_time(s->peer.pid);
		s->accepted_ns = mono_ns();
		/* Root may go past wmem_max: a list of thousands of queues is
		 * one message. */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		ev.data.ptr = s;
		if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
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
		if (queue_reply(d, s, reply_error(AMQP_COMMAND_INVALID, msg), -1, false) == 0)
			session_close(d, s, "no hello in time");
	}
}

void server_flush_all(struct hbusd *d)
{
	struct session *s = d->sessions, *next;

	for (; s; s = next) {
		next = s->next;
		if (s->out_head)
			flush(d, s);
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
