/*
 * replies.c - what hbusd owes its sessions: replies queued per session,
 * sent as the peer's socket takes them (with their descriptors), held
 * until the routing table they depend on is published, and bounded.
 *
 * A session that does not read its replies is not read either: after
 * HBUSD_PENDING_REPLIES replies or HBUSD_PENDING_BYTES_SESSION bytes
 * waiting, and, while all the sessions of its user together have
 * HBUSD_PENDING_BYTES_USER bytes waiting, as soon as anything of its own
 * waits (root and hbusd's uid are held to the per-session bounds only).
 * So one user's unread replies take at most that much of hbusd's memory,
 * plus one reply per session of the user (--max-sessions-per-user).  The kernel's share is bounded by the send
 * buffer: forced large (HBUSD_SNDBUF) only for root and hbusd's uid,
 * whose list replies of big buses need it; everyone else gets
 * HBUSD_SNDBUF_USER, capped by net.core.wmem_max.
 */
#include "server.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------- per user */

struct user_bytes *user_bytes_get(struct hbusd *d, uid_t uid)
{
	struct user_bytes *u;

	for (u = d->users; u; u = u->next)
		if (u->uid == uid) {
			u->sessions++;
			return u;
		}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	u->sessions = 1;
	u->next = d->users;
	d->users = u;
	return u;
}

void user_bytes_put(struct hbusd *d, struct user_bytes *u)
{
	struct user_bytes **pp;

	if (!u || --u->sessions)
		return;
	for (pp = &d->users; *pp && *pp != u; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = u->next;
	free(u);
}

static bool user_over(const struct hbusd *d, const struct session *s)
{
	return s->user && !perms_is_admin(&d->perms, &s->peer) &&
	       s->user->bytes >= HBUSD_PENDING_BYTES_USER;
}

/* Past its user's bound, a session is read only while nothing of its own
 * waits: one process of a user that does not read its replies must not
 * stop the user's other processes that do. */
bool server_may_read(const struct hbusd *d, const struct session *s)
{
	return s->out_n < HBUSD_PENDING_REPLIES && s->out_bytes < HBUSD_PENDING_BYTES_SESSION &&
	       (!s->out_bytes || !user_over(d, s));
}

void server_set_events(struct hbusd *d, struct session *s, bool reading, bool writing)
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

static void account(struct session *s, const struct outmsg *o, bool add)
{
	if (add) {
		s->out_bytes += o->len;
		if (s->user)
			s->user->bytes += o->len;
	} else {
		s->out_bytes -= o->len;
		if (s->user)
			s->user->bytes -= o->len;
	}
}

/* The user's bytes went back under its bound: read its other sessions
 * again (they are woken by nothing else: nothing of theirs is pending). */
void server_resume_user(struct hbusd *d, struct session *self)
{
	struct session *s;

	for (s = d->sessions; s; s = s->next)
		if (s != self && s->user == self->user && !s->reading && s->fd >= 0 &&
		    server_may_read(d, s))
			server_set_events(d, s, true, s->writing);
}

void server_free_out(struct session *s, struct outmsg *o)
{
	int i;

	account(s, o, false);
	for (i = 0; i < 2; i++)
		if (o->fds[i] >= 0)
			close(o->fds[i]);
	free(o->text);
	free(o);
}

/* Send what can be sent now.  -1: the session had to be closed. */
int server_flush(struct hbusd *d, struct session *s)
{
	bool was_over = user_over(d, s);

	while (s->out_head) {
		struct outmsg *o = s->out_head;
		char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
		struct iovec iov = { .iov_base = o->text, .iov_len = o->len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		int nfd = (o->fds[0] >= 0) + (o->fds[1] >= 0);
		ssize_t n;

		if (o->min_version > d->model.published_version)
			break; /* held until the table with this change is live */
		if (nfd) {
			struct cmsghdr *cm;
			mh.msg_control = cbuf;
			mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(nfd * sizeof(int));
			memcpy(CMSG_DATA(cm), o->fds, nfd * sizeof(int));
		}
		n = sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			server_set_events(d, s, s->reading, true);
			return 0;
		}
		if (n < 0 && errno == EMSGSIZE && !nfd) {
			char msg[200];
			snprintf(msg, sizeof(msg), "{\"ok\":false,\"code\":541,\"error\":\"reply of %zu "
				 "bytes is larger than the socket can carry (net.core.wmem_max)\"}",
				 o->len);
			account(s, o, false);
			free(o->text);
			o->text = strdup(msg);
			o->len = o->text ? strlen(o->text) : 0;
			account(s, o, true);
			if (o->text)
				continue;
		}
		if (n < 0) {
			server_session_close(d, s, errno == EPIPE || errno == ECONNRESET
							   ? "peer went away" : strerror(errno));
			return -1;
		}
		s->out_head = o->next;
		if (!s->out_head)
			s->out_tail = NULL;
		s->out_n--;
		server_free_out(s, o);
	}
	server_set_events(d, s, server_may_read(d, s),
			  s->out_head != NULL && s->out_head->min_version <= d->model.published_version);
	if (was_over && !user_over(d, s))
		server_resume_user(d, s);
	return 0;
}

int server_queue_reply(struct hbusd *d, struct session *s, json_t *reply, int fd, int fd2,
		       bool changed)
{
	struct outmsg *o = calloc(1, sizeof(*o));

	if (!o)
		goto oom;
	o->fds[0] = o->fds[1] = -1;
	o->text = json_dumps(reply, JSON_COMPACT);
	if (!o->text)
		goto oom;
	o->len = strlen(o->text);
	account(s, o, true);
	/* The model may close its descriptor (queue deleted) before this is
	 * sent: hold our own. */
	if ((fd >= 0 && (o->fds[0] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) ||
	    (fd2 >= 0 && (o->fds[fd >= 0] = fcntl(fd2, F_DUPFD_CLOEXEC, 0)) < 0)) {
		/* Without its descriptor the reply is useless, and what the
		 * request set up (an owner, a consumer) must not stay: say why,
		 * then end the session, which undoes it. */
		server_free_out(s, o);
		json_decref(reply);
		if (server_queue_reply(d, s, reply_error(AMQP_PRECONDITION, "hbusd has reached its "
							 "limit of open files: raise it (ulimit -n, "
							 "or LimitNOFILE= under systemd); session "
							 "closed"), -1, -1, false) == 0)
			server_session_close(d, s, "no descriptor left to pass");
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
	return server_flush(d, s);
oom:
	if (o) {
		if (o->text)
			account(s, o, false);
		free(o->text);
		free(o);
	}
	json_decref(reply);
	server_session_close(d, s, "out of memory");
	return -1;
}

int server_reply_err(struct hbusd *d, struct session *s, int code, const char *msg)
{
	return server_queue_reply(d, s, reply_error(code, msg), -1, -1, false);
}

void server_set_sndbuf(const struct hbusd *d, const struct session *s)
{
	int force = HBUSD_SNDBUF, plain = HBUSD_SNDBUF_USER;

	/* Root may go past wmem_max: a list of thousands of queues is one
	 * message.  Nobody else may make the kernel hold that much. */
	if (!perms_is_admin(&d->perms, &s->peer))
		setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &plain, sizeof(plain));
	else if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &force, sizeof(force)) != 0)
		setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &force, sizeof(force));
}
