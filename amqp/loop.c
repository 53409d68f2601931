/*
 * loop.c - one event loop per thread: a listening socket of its own
 * (SO_REUSEPORT: the kernel spreads connections over the loops), epoll on
 * the connections and on an eventfd for control completions, and between
 * events a pass over the rings for its consumers.  Idle, the loop sleeps
 * longer and longer between ring polls (up to --idle-max-us): rings have
 * no descriptor to wait on, and one thread serves many queues.
 */
#include "frame.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EVENTS 64
#define READ_CHUNK 65536u

static _Atomic uint64_t next_conn_id;
extern volatile sig_atomic_t gw_stop;

uint64_t gw_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void loop_update_events(struct conn *c)
{
	struct epoll_event ev = { .data.ptr = c };
	bool reading = c->shut || (c->in.len < (size_t)c->frame_max + READ_CHUNK &&
				   c->out.len <= gw_opts.max_buffer && c->state != C_DONE);
	bool writing = c->out.len > 0;

	if (c->dead || (reading == c->reading && writing == c->writing))
		return;
	ev.events = (reading ? EPOLLIN | EPOLLRDHUP : 0) | (writing ? EPOLLOUT : 0);
	if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) {
		c->reading = reading;
		c->writing = writing;
	}
}

void loop_want_write(struct conn *c)
{
	(void)c; /* every connection with output is flushed after each turn */
}

static void conn_close(struct conn *c)
{
	struct loop *l = c->loop;

	if (c->dead)
		return;
	HBUS_DEBUG("connection %llu (%s): socket closed in state %d", (unsigned long long)c->id,
		   c->peer, (int)c->state);
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->dead = true;
	gw_count(GC_CONN_CLOSED, 1);
	conn_teardown(c);
}

/* Unlink and free a closed connection once no request is out for it. */
static void conn_reap(struct conn *c)
{
	struct loop *l = c->loop;

	if (!c->dead || c->pending)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	l->n_conns--;
	conn_free(c);
}

static void flush(struct conn *c, uint64_t now)
{
	while (c->out.len) {
		ssize_t n = send(c->fd, gbuf_data(&c->out), c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			gw_count(GC_BYTES_OUT, (uint64_t)n);
			gbuf_consume(&c->out, (size_t)n);
			c->last_tx_ns = now;
			c->stuck_since_ns = c->out.len ? now : 0;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->stuck_since_ns)
				c->stuck_since_ns = now;
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		c->out.len = 0; /* the peer is gone */
		c->state = C_DONE;
		break;
	}
	if (!c->out.len)
		c->stuck_since_ns = 0;
	if (c->state == C_DONE && !c->out.len && !c->shut) {
		/* Say everything, then half-close and read until the peer
		 * closes too (or a second passes): closing with bytes unread
		 * would reset the connection before the peer reads our
		 * close-ok. */
		if (!c->peer_closes)
			shutdown(c->fd, SHUT_WR);
		/* After close-ok the client closes first, as with RabbitMQ. */
		c->shut = true;
		c->close_ns = now;
	}
	loop_update_events(c);
}

static void on_readable(struct conn *c, uint64_t now)
{
	for (;;) {
		ssize_t n;

		if (c->state == C_DONE) {
			char sink[4096];
			ssize_t k = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
			if (k > 0 || (k < 0 && errno == EINTR))
				continue;
			if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				conn_close(c);
			return;
		}
		if (gbuf_reserve(&c->in, READ_CHUNK)) {
			conn_close(c);
			return;
		}
		n = recv(c->fd, gbuf_end(&c->in), READ_CHUNK, MSG_DONTWAIT);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->last_rx_ns = now;
			gw_count(GC_BYTES_IN, (uint64_t)n);
			conn_process(c);
			if ((size_t)n < READ_CHUNK || c->waiting)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* EOF or error: a half-closed peer sends nothing more; what it
		 * sent is handled, the connection ends. */
		conn_close(c);
		return;
	}
}

static void on_accept(struct loop *l, int lfd)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		char peer[64];
		struct conn *c;
		int one = 1, fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		snprintf(peer, sizeof(peer), "%s:%u", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
		c = conn_new(l, fd, peer);
		if (!c) {
			gw_count(GC_CONN_REFUSED, 1);
			close(fd);
			continue;
		}
		c->id = ++next_conn_id;
		HBUS_DEBUG("connection %llu from %s on fd %d", (unsigned long long)c->id, peer, fd);
		c->reading = true;
		ev.data.ptr = c;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			conn_free(c);
			continue;
		}
		c->next = l->conns;
		if (l->conns)
			l->conns->prev = c;
		l->conns = c;
		l->n_conns++;
		gw_count(GC_CONN_ACCEPTED, 1);
	}
}

/* Control requests answered: their handlers run here, on the loop. */
static void drain_done(struct loop *l)
{
	struct ctl_req *r;
	uint64_t v;

	(void)!read(l->evfd, &v, sizeof(v)); /* the list says what is new */
	pthread_mutex_lock(l->lock);
	r = l->done_head;
	l->done_head = l->done_tail = NULL;
	pthread_mutex_unlock(l->lock);
	while (r) {
		struct ctl_req *next = r->next;
		struct conn *c = r->c;

		c->pending--;
		c->waiting = false;
		/* Handlers clean up after a connection or channel that went
		 * meanwhile (handles opened for it are closed, logins undone). */
		r->done(c, r);
		if (!c->dead)
			conn_process(c);
		ctl_free(r);
		/* A connection closed meanwhile is freed after this epoll
		 * batch (a later event of the batch may still name it). */
		r = next;
	}
}

static int listen_socket(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(gw_opts.port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (inet_pton(AF_INET, gw_opts.host, &sa.sin_addr) != 1) {
		close(fd);
		return -EINVAL;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 512)) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static struct ev_tag { int kind; } tag_listen = { 1 }, tag_evfd = { 2 };

int loop_init(struct loop *l, unsigned idx, int *lfd_out)
{
	struct epoll_event ev = { .events = EPOLLIN };
	pthread_mutex_t *m = malloc(sizeof(*m));
	int lfd;

	memset(l, 0, sizeof(*l));
	l->idx = idx;
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(m, NULL);
	l->lock = m;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	lfd = listen_socket();
	if (l->epfd < 0 || l->evfd < 0 || lfd < 0)
		return lfd < 0 ? lfd : -errno;
	ev.data.ptr = &tag_listen;
	epoll_ctl(l->epfd, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.ptr = &tag_evfd;
	epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev);
	*lfd_out = lfd;
	return 0;
}

void loop_run(struct loop *l, int lfd)
{
	struct epoll_event evs[EVENTS];
	struct timespec ts;
	struct conn *c, *next;

	while (!gw_stop) {
		uint64_t wait_ns, now;
		unsigned delivered;
		int n, i;

		if (l->idle < 64)
			wait_ns = 0;
		else if (atomic_load_explicit(&gw_stats.consumers, memory_order_relaxed) <= 0)
			wait_ns = 200000000; /* no consumer: only sockets and ticks matter */
		else {
			unsigned shift = (l->idle - 64) / 16;
			wait_ns = 20000ull << (shift > 10 ? 10 : shift);
			if (wait_ns > (uint64_t)gw_opts.idle_max_us * 1000)
				wait_ns = (uint64_t)gw_opts.idle_max_us * 1000;
		}
		ts.tv_sec = (time_t)(wait_ns / 1000000000u);
		ts.tv_nsec = (long)(wait_ns % 1000000000u);
		n = epoll_pwait2(l->epfd, evs, EVENTS, &ts, NULL);
		now = gw_now_ns();
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &tag_listen) {
				on_accept(l, lfd);
				continue;
			}
			if (p == &tag_evfd) {
				drain_done(l);
				continue;
			}
			c = p;
			if (c->dead)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				on_readable(c, now);
			if (!c->dead && (evs[i].events & EPOLLOUT))
				flush(c, now);
		}
		delivered = deliver_pass(l);
		if (now >= l->next_tick_ns) {
			for (c = l->conns; c; c = c->next) {
				if (!c->dead && c->shut && now > c->close_ns &&
				    now - c->close_ns > 1000000000u)
					conn_close(c);
				else if (!c->dead)
					conn_tick(c, now);
			}
			l->next_tick_ns = now + 1000000000u;
		}
		for (c = l->conns; c; c = next) {
			next = c->next;
			if (!c->dead && (c->out.len || c->state == C_DONE))
				flush(c, now);
			if (!c->dead)
				loop_update_events(c);
			if (c->dead)
				conn_reap(c);
		}
		l->idle = (n > 0 || delivered) ? 0 : l->idle + 1;
	}
	deliver_thread_exit();
}

/* After the loops and the control thread have stopped (so no answer can
 * reach a connection freed here): connections end as if their peers had
 * gone, deliveries requeued; hbusd logs their users out when the
 * gateway's session closes. */
void loop_fini(struct loop *l, int lfd)
{
	struct ctl_req *r;
	struct conn *c, *next;

	while ((r = l->done_head)) {
		l->done_head = r->next;
		if (r->kind == CTL_OPEN && r->q)
			hbus_consume_close_as(gw_client, r->q);
		if (r->kind == CTL_OPEN)
			free(r->arg);
		ctl_free(r);
	}
	for (c = l->conns; c; c = next) {
		next = c->next;
		conn_close(c);
		c->pending = 0;
		conn_reap(c);
	}
	close(lfd);
	close(l->evfd);
	close(l->epfd);
	pthread_mutex_destroy(l->lock);
	free(l->lock);
}
