/*
 * pp_shm.c - ping-pong over two hbus queue rings ("ping" and "pong").
 *
 * The parent creates both queue files in the shm directory and unlinks them
 * at once, so nothing is left behind even if the run is killed; the open
 * descriptors are inherited by the forked echoer, which maps them with
 * hbus_queue_open_fd like any client given a descriptor by hbusd.  Each
 * side produces on one ring and busy-polls hbus_queue_consume on the other
 * (auto ack: the slot is returned right after the body is copied out).
 *
 * Variants: "shm-x", every handle exclusive (each side the only producer
 * of one ring and the only consumer of the other: HBUS_PRODUCE_EXCLUSIVE,
 * HBUS_CONSUME_EXCLUSIVE); "shm-p", protected queues (the bytes in a second
 * file the consumer maps from a read-only descriptor).
 */
#include <errno.h>
#include <fcntl.h>
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
	int dfd[2], ro[2];      /* protected: data files, read-write and read-only */
	uint32_t qflags;        /* HBUS_QUEUE_F_* of both queues */
	uint32_t oflags;        /* HBUS_*_EXCLUSIVE of every handle */
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

/* A protected queue file pair under dir, unlinked at once; and the data
 * file opened read-only as well, as hbusd hands it to consumers. */
static int protected_create(const char *dir, const char *tag, uint32_t slot_size, int *fd,
			    int *dfd, int *ro)
{
	static _Atomic unsigned serial;
	struct hbus_queue_config cfg = {
		.capacity = SHM_PP_CAPACITY, .slot_size = slot_size < 8 ? 8 : slot_size,
		.numa_node = -1, .flags = SHM_PP_FLAGS | HBUS_QUEUE_F_PROTECTED,
	};
	char path[512], data[520];
	int rc;

	snprintf(path, sizeof(path), "%s/hbus-bench-%d-%u-%s", dir ? dir : "/dev/shm",
		 (int)getpid(), atomic_fetch_add(&serial, 1), tag);
	snprintf(data, sizeof(data), "%s.data", path);
	rc = hbus_queue_create_protected(path, data, tag, &cfg, fd, dfd);
	if (rc == 0) {
		*ro = open(data, O_RDONLY | O_CLOEXEC);
		rc = *ro < 0 ? -errno : 0;
		unlink(path);
		unlink(data);
		if (rc) {
			close(*fd);
			close(*dfd);
		}
	}
	return rc;
}

static int prepare(struct shm_ctx *c, const struct pp_opts *o)
{
	static const char *const tag[2] = { "ping", "pong" };
	int rc = 0;

	c->fd[0] = c->fd[1] = c->dfd[0] = c->dfd[1] = c->ro[0] = c->ro[1] = -1;
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = c->qflags & HBUS_QUEUE_F_PROTECTED
			? protected_create(o->shm_dir, tag[i], o->size, &c->fd[i], &c->dfd[i], &c->ro[i])
			: bench_shm_queue_create(o->shm_dir, tag[i], SHM_PP_CAPACITY, o->size,
						 c->qflags, &c->fd[i]);
	if (rc && c->fd[0] >= 0) {
		close(c->fd[0]);
		if (c->dfd[0] >= 0) {
			close(c->dfd[0]);
			close(c->ro[0]);
		}
	}
	return rc;
}

static int shm_prepare(void *ctx, const struct pp_opts *o)
{
	struct shm_ctx *c = ctx;

	c->qflags = SHM_PP_FLAGS;
	c->oflags = 0;
	return prepare(c, o);
}

static int shm_x_prepare(void *ctx, const struct pp_opts *o)
{
	struct shm_ctx *c = ctx;

	c->qflags = SHM_PP_FLAGS;
	c->oflags = HBUS_CONSUME_EXCLUSIVE | HBUS_PRODUCE_EXCLUSIVE;
	return prepare(c, o);
}

static int shm_p_prepare(void *ctx, const struct pp_opts *o)
{
	struct shm_ctx *c = ctx;

	c->qflags = SHM_PP_FLAGS | HBUS_QUEUE_F_PROTECTED;
	c->oflags = 0;
	return prepare(c, o);
}

static int shm_open(void *ctx, int side)
{
	struct shm_ctx *c = ctx;
	struct hbus_queue_opts opts = { .owner = (uint32_t)side + 1, .ack_mode = HBUS_ACK_AUTO,
					.flags = c->oflags };
	int rc;

	/* The pinger sends on ping and receives on pong; the echoer the
	 * reverse.  A protected queue's consumer maps its bytes read-only. */
	rc = hbus_queue_open_fds(c->fd[side], c->dfd[side], &opts, &c->side[side].tx);
	if (rc)
		return rc;
	rc = hbus_queue_open_fds(c->fd[1 - side], c->ro[1 - side], &opts, &c->side[side].rx);
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

	for (int i = 0; i < 2; i++) {
		if (c->fd[i] >= 0)
			close(c->fd[i]);
		if (c->dfd[i] >= 0)
			close(c->dfd[i]);
		if (c->ro[i] >= 0)
			close(c->ro[i]);
	}
}

#define SHM_OPS(nm, prep)                                                              \
	{ .name = nm, .threads = false, .ctx_size = sizeof(struct shm_ctx), .prepare = prep,  \
	  .open = shm_open, .send = shm_send, .try_recv = shm_try_recv, .close = shm_close,  \
	  .cleanup = shm_cleanup }

const struct pp_ops pp_shm_ops = SHM_OPS("shm", shm_prepare);
const struct pp_ops pp_shm_x_ops = SHM_OPS("shm-x", shm_x_prepare);
const struct pp_ops pp_shm_p_ops = SHM_OPS("shm-p", shm_p_prepare);
