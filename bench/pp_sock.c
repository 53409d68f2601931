/*
 * pp_sock.c - kernel socket peers: a Unix SOCK_SEQPACKET pair ("uds") and
 * two connected UDP sockets on 127.0.0.1 ("udp").
 *
 * Both are descriptor pairs made before the fork, one end per side, and
 * both busy-poll recv(MSG_DONTWAIT): the kernel path without the cost of
 * sleeping and waking, the fairest fight a socket can get.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pp.h"

struct sock_ctx {
	int fd[2]; /* fd[side] is that side's end */
};

static int uds_prepare(void *ctx, const struct pp_opts *o)
{
	struct sock_ctx *c = ctx;
	(void)o;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c->fd) != 0)
		return -errno;
	return 0;
}

/* Two UDP sockets on loopback, each bound to an ephemeral port and
 * connected to the other (so stray datagrams are filtered by the kernel). */
static int udp_prepare(void *ctx, const struct pp_opts *o)
{
	struct sock_ctx *c = ctx;
	struct sockaddr_in a[2];
	socklen_t alen = sizeof(a[0]);
	int rc = 0, i;
	(void)o;

	c->fd[0] = c->fd[1] = -1;
	for (i = 0; i < 2 && rc == 0; i++) {
		c->fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		a[i] = (struct sockaddr_in){ .sin_family = AF_INET,
					     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (c->fd[i] < 0 || bind(c->fd[i], (struct sockaddr *)&a[i], sizeof(a[i])) != 0 ||
		    getsockname(c->fd[i], (struct sockaddr *)&a[i], &alen) != 0)
			rc = -errno;
	}
	for (i = 0; i < 2 && rc == 0; i++)
		if (connect(c->fd[i], (struct sockaddr *)&a[1 - i], sizeof(a[0])) != 0)
			rc = -errno;
	if (rc)
		for (i = 0; i < 2; i++)
			if (c->fd[i] >= 0)
				close(c->fd[i]);
	return rc;
}

static int sock_send(void *ctx, int side, const void *buf, size_t len)
{
	struct sock_ctx *c = ctx;
	ssize_t n;

	do
		n = send(c->fd[side], buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int sock_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct sock_ctx *c = ctx;
	/* MSG_TRUNC: the real datagram length, so a longer one is caught. */
	ssize_t n = recv(c->fd[side], buf, len, MSG_DONTWAIT | MSG_TRUNC);

	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
	return (size_t)n == len ? 1 : -EBADMSG;
}

static void sock_cleanup(void *ctx)
{
	struct sock_ctx *c = ctx;

	close(c->fd[0]);
	close(c->fd[1]);
}

const struct pp_ops pp_uds_ops = {
	.name = "uds",
	.ctx_size = sizeof(struct sock_ctx),
	.prepare = uds_prepare,
	.open = pp_open_nothing,
	.send = sock_send,
	.try_recv = sock_try_recv,
	.close = pp_close_nothing, /* both ends: once, by the parent, in cleanup */
	.cleanup = sock_cleanup,
};

const struct pp_ops pp_udp_ops = {
	.name = "udp",
	.ctx_size = sizeof(struct sock_ctx),
	.prepare = udp_prepare,
	.open = pp_open_nothing,
	.send = sock_send,
	.try_recv = sock_try_recv,
	.close = pp_close_nothing, /* both ends: once, by the parent, in cleanup */
	.cleanup = sock_cleanup,
};
