/*
 * pp_zmq.c - ZeroMQ PAIR sockets over ipc:// in a private temp directory.
 *
 * A ZeroMQ context is not fork-safe, so each side makes its own in open()
 * (after the fork); the parent only makes and removes the directory.  The
 * pinger binds, the echoer connects (ZeroMQ reconnects until the bind is
 * there, and a PAIR send waits for the peer), and both busy-poll
 * zmq_recv(ZMQ_DONTWAIT).
 */
#ifdef HBUS_BENCH_ZMQ
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "pp.h"

struct zmq_pp_ctx {
	char dir[64];
	char endpoint[128];
	struct {
		void *zctx, *sock;
	} side[2];
};

static int zpp_prepare(void *ctx, const struct pp_opts *o)
{
	struct zmq_pp_ctx *c = ctx;
	(void)o;
	snprintf(c->dir, sizeof(c->dir), "/tmp/hbus-bench-zmq-XXXXXX");
	if (!mkdtemp(c->dir))
		return -errno;
	snprintf(c->endpoint, sizeof(c->endpoint), "ipc://%s/pp", c->dir);
	return 0;
}

static void zpp_close(void *ctx, int side)
{
	struct zmq_pp_ctx *c = ctx;

	if (c->side[side].sock)
		zmq_close(c->side[side].sock);
	if (c->side[side].zctx)
		zmq_ctx_term(c->side[side].zctx);
	c->side[side].sock = c->side[side].zctx = NULL;
}

static int zpp_open(void *ctx, int side)
{
	struct zmq_pp_ctx *c = ctx;
	int linger = 0, rc;

	c->side[side].zctx = zmq_ctx_new();
	if (!c->side[side].zctx)
		return -errno;
	c->side[side].sock = zmq_socket(c->side[side].zctx, ZMQ_PAIR);
	if (!c->side[side].sock) {
		rc = -zmq_errno();
		zpp_close(ctx, side);
		return rc;
	}
	zmq_setsockopt(c->side[side].sock, ZMQ_LINGER, &linger, sizeof(linger));
	rc = side == 0 ? zmq_bind(c->side[side].sock, c->endpoint)
		       : zmq_connect(c->side[side].sock, c->endpoint);
	if (rc != 0) {
		rc = -zmq_errno();
		zpp_close(ctx, side);
		return rc;
	}
	return 0;
}

static int zpp_send(void *ctx, int side, const void *buf, size_t len)
{
	struct zmq_pp_ctx *c = ctx;
	int n;

	do
		n = zmq_send(c->side[side].sock, buf, len, 0);
	while (n < 0 && zmq_errno() == EINTR);
	if (n < 0)
		return -zmq_errno();
	return (size_t)n == len ? 0 : -EIO;
}

static int zpp_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct zmq_pp_ctx *c = ctx;
	/* zmq_recv returns the full message length even when it truncated. */
	int n = zmq_recv(c->side[side].sock, buf, len, ZMQ_DONTWAIT);

	if (n < 0)
		return (zmq_errno() == EAGAIN || zmq_errno() == EINTR) ? 0 : -zmq_errno();
	return (size_t)n == len ? 1 : -EBADMSG;
}

static void zpp_cleanup(void *ctx)
{
	struct zmq_pp_ctx *c = ctx;
	char path[160];

	snprintf(path, sizeof(path), "%s/pp", c->dir);
	unlink(path);
	rmdir(c->dir);
}

const struct pp_ops pp_zmq_ops = {
	.name = "zmq",
	.ctx_size = sizeof(struct zmq_pp_ctx),
	.prepare = zpp_prepare,
	.open = zpp_open,
	.send = zpp_send,
	.try_recv = zpp_try_recv,
	.close = zpp_close,
	.cleanup = zpp_cleanup,
};
#else
/* Built without libzmq: compare skips the zmq row. */
typedef int pp_zmq_unavailable;
#endif
