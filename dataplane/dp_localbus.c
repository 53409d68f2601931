/* dp_localbus.c - see dp_localbus.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_localbus.h"

#define TABLE_CAP (1u << 20)

static unsigned seq;

static void unique_path(char *out, size_t cap, const char *dir, const char *what)
{
	snprintf(out, cap, "%s/hbus-dp-%s-%d-%u", dir, what, (int)getpid(),
		 __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
}

int dp_localbus_publish(struct dp_localbus *b, const struct hbus_rc_input *in)
{
	size_t used = 0;
	void *buf = malloc(TABLE_CAP);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = hbus_route_compile(in, buf, TABLE_CAP, &used);
	if (rc == 0)
		rc = hbus_routes_publish(b->routes, buf, used, &b->readers, b->readers ? 1 : 0, NULL,
					 NULL);
	free(buf);
	return rc;
}

int dp_localbus_open(struct dp_localbus *b, const char *dir, const struct hbus_rc_input *in,
		     const struct hbus_queue_config *cfg)
{
	return dp_localbus_open_ex(b, dir, in, cfg, 0);
}

int dp_localbus_open_ex(struct dp_localbus *b, const char *dir, const struct hbus_rc_input *in,
			const struct hbus_queue_config *cfg, uint32_t producer_flags)
{
	struct hbus_queue_opts po = { .owner = DP_LOCALBUS_PRODUCER, .ack_mode = HBUS_ACK_AUTO,
				      .flags = producer_flags };
	char path[512];
	uint32_t limit = 0;
	unsigned i;
	int rc;

	memset(b, 0, sizeof(*b));
	b->routes_fd = b->readers_fd = -1;
	for (i = 0; i < in->n_queues; i++)
		if (in->queues[i].qid + 1 > limit)
			limit = in->queues[i].qid + 1;
	b->qtab_len = limit;
	b->qtab = calloc(limit ? limit : 1, sizeof(*b->qtab));
	b->qfd = malloc((limit ? limit : 1) * sizeof(*b->qfd));
	if (!b->qtab || !b->qfd) {
		dp_localbus_close(b);
		return -ENOMEM;
	}
	for (i = 0; i < limit; i++)
		b->qfd[i] = -1;

	unique_path(path, sizeof(path), dir, "routes");
	rc = hbus_routes_create(path, TABLE_CAP, &b->routes_fd, &b->routes);
	unlink(path);
	if (rc == 0)
		rc = dp_localbus_publish(b, in);
	if (rc == 0)
		rc = hbus_readers_create(&b->readers_fd, &b->readers);
	if (rc == 0)
		rc = hbus_readers_attach(b->readers, &b->reader);
	for (i = 0; rc == 0 && i < in->n_queues; i++) {
		uint32_t qid = in->queues[i].qid;

		unique_path(path, sizeof(path), dir, "queue");
		rc = hbus_queue_create(path, in->queues[i].name, cfg, &b->qfd[qid]);
		unlink(path);
		if (rc == 0)
			rc = hbus_queue_open_fd(b->qfd[qid], &po, &b->qtab[qid]);
	}
	if (rc)
		dp_localbus_close(b);
	return rc;
}

int dp_localbus_consumer(struct dp_localbus *b, uint32_t qid, uint32_t owner, uint32_t ack_mode,
			 hbus_queue **out)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack_mode };

	if (qid >= b->qtab_len || b->qfd[qid] < 0)
		return -ENOENT;
	return hbus_queue_open_fd(b->qfd[qid], &o, out);
}

void dp_localbus_route_src(const struct dp_localbus *b, struct dp_route_src *src)
{
	memset(src, 0, sizeof(*src));
	src->routes = b->routes;
	src->readers = b->readers;
	src->reader = b->reader;
	src->qtab = b->qtab;
	src->qtab_len = b->qtab_len;
}

void dp_localbus_close(struct dp_localbus *b)
{
	uint32_t i;

	for (i = 0; b->qtab && b->qfd && i < b->qtab_len; i++) {
		if (b->qtab[i])
			hbus_queue_close(b->qtab[i]);
		if (b->qfd[i] >= 0)
			close(b->qfd[i]);
	}
	free(b->qtab);
	free(b->qfd);
	if (b->routes)
		hbus_routes_close(b->routes);
	if (b->routes_fd >= 0)
		close(b->routes_fd);
	hbus_readers_close(b->readers);
	if (b->readers_fd >= 0)
		close(b->readers_fd);
	memset(b, 0, sizeof(*b));
	b->routes_fd = b->readers_fd = -1;
}
