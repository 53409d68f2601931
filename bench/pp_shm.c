/*
 * pp_shm.c - ping-pong over two hbus queue rings ("ping" and "pong").
 *
 * The parent creates both queue files in the shm directory and unlinks them
 * at once, so nothing is left behind even if the run is killed; the open
 * descriptors are inherited by the forked echoer, which maps them with
 * hbus_queue_open_fd like any client given a descriptor by hbusd.  Each
 * side produces on one ring and busy-polls hbus_queue_consume on the other
 * (auto ack: the slot is returned right after the body is copied out).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "hbus.h"
#include "pp.h"

/* Ring capacity: deep enough that a producer never finds its next slot
 * still held (the ping-pong has one message in flight). */
#define SHM_PP_CAPACITY 256u
/* A ping-pong has one message in flight: the queues are declared the way
 * a latency-bound user declares them (hbus declare-queue --latency). */
#define SHM_PP_FLAGS HBUS_QUEUE_F_LATENCY

struct shm_ctx {
	int fd[2];              /* 0 = ping (pinger -> echoer), 1 = pong */
	struct {
		hbus_queue *tx, *rx;
	} side[2];
};

/* Create one queue file under dir and unlink it: the fd is all that is left. */
int bench_shm_queue_create(const char *dir, const char *tag, uint32_t capacity,
			   uint32_t slot_size, uint32_t flags, int *fd)
{
	static _Atomic unsigned serial;
	char path[512];
	struct hbus_queue_config cfg = {
		.capacity = capacity,
		.slot_size = slot_size < 8 ? 8 : slot_size,
		.overflow = HBUS_OVERFLOW_REJECT,
		.numa_node = -1,
		.flags = flags,
	};
	int rc;

	snprintf(path, sizeof(path), "%s/hbus-bench-%d-%u-%s", dir ? dir : "/dev/shm",
		 (int)getpid(), atomic_fetch_add(&serial, 1), tag);
	rc = hbus_queue_create(path, tag, &cfg, fd);
	if (rc == 0)
		unlink(path);
	return rc;
}

static int shm_prepare(void *ctx, const struct pp_opts *o)
{
	struct shm_ctx *c = ctx;
	int rc;

	c->fd[0] = c->fd[1] = -1;
	rc = bench_shm_queue_create(o->shm_dir, "ping", SHM_PP_CAPACITY, o->size, SHM_PP_FLAGS,
				    &c->fd[0]);
	if (rc == 0)
		rc = bench_shm_queue_create(o->shm_dir, "pong", SHM_PP_CAPACITY, o->size, SHM_PP_FLAGS,
					    &c->fd[1]);
	if (rc && c->fd[0] >= 0)
		close(c->fd[0]);
	return rc;
}

static int shm_open(void *ctx, int side)
{
	struct shm_ctx *c = ctx;
	struct hbus_queue_opts opts = { .owner = (uint32_t)side + 1, .ack_mode = HBUS_ACK_AUTO };
	int rc;

	/* The pinger sends on ping and receives on pong; the echoer the reverse. */
	rc = hbus_queue_open_fd(c->fd[side], &opts, &c->side[side].tx);
	if (rc)
		return rc;
	rc = hbus_queue_open_fd(c->fd[1 - side], &opts, &c->side[side].rx);
	if (rc) {
		hbus_queue_close(c->side[side].tx);
		c->side[side].tx = NULL;
	}
	return rc;
}

static int shm_send(void *ctx, int side, const void *buf, size_t len)
{
	struct shm_ctx *c = ctx;
	struct hbus_out m = { .body = buf, .body_len = (uint32_t)len };

	return hbus_queue_enqueue(c->side[side].tx, &m);
}

static int shm_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct shm_ctx *c = ctx;
	hbus_queue *q = c->side[side].rx;
	struct hbus_msg m;
	int rc = hbus_queue_consume(q, &m);

	if (rc == -EAGAIN)
		return 0;
	if (rc)
		return rc;
	if (m.body_len != len) {
		hbus_queue_ack(q, &m);
		return -EBADMSG;
	}
	memcpy(buf, m.body, len);
	rc = hbus_queue_ack(q, &m);
	return rc ? rc : 1;
}

static void shm_close(void *ctx, int side)
{
	struct shm_ctx *c = ctx;

	if (c->side[side].tx)
		hbus_queue_close(c->side[side].tx);
	if (c->side[side].rx)
		hbus_queue_close(c->side[side].rx);
	c->side[side].tx = c->side[side].rx = NULL;
}

static void shm_cleanup(void *ctx)
{
	struct shm_ctx *c = ctx;

	for (int i = 0; i < 2; i++)
		if (c->fd[i] >= 0)
			close(c->fd[i]);
}

const struct pp_ops pp_shm_ops = {
	.name = "shm",
	.threads = false,
	.ctx_size = sizeof(struct shm_ctx),
	.prepare = shm_prepare,
	.open = shm_open,
	.send = shm_send,
	.try_recv = shm_try_recv,
	.close = shm_close,
	.cleanup = shm_cleanup,
};
