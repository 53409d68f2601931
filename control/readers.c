/* readers.c - see readers.h. */
#include "readers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void readers_init(struct readers_reg *g, uint32_t timeout_ms)
{
	memset(g, 0, sizeof(*g));
	g->timeout_ms = timeout_ms;
}

static void remove_at(struct readers_reg *g, unsigned i)
{
	hbus_readers_close(g->rds[i]);
	g->n--;
	g->v[i] = g->v[g->n];
	g->rds[i] = g->rds[g->n];
	g->busy[i] = g->busy[g->n];
}

void readers_fini(struct readers_reg *g)
{
	while (g->n)
		remove_at(g, g->n - 1);
	free(g->v);
	free(g->rds);
	free(g->busy);
	memset(g, 0, sizeof(*g));
}

static int grow(struct readers_reg *g)
{
	unsigned cap = g->cap ? g->cap * 2 : 16;
	struct rblock *v = realloc(g->v, cap * sizeof(*v));
	struct hbus_readers **rds;
	uint8_t *busy;

	if (!v)
		return -ENOMEM;
	g->v = v;
	if (!(rds = realloc(g->rds, cap * sizeof(*rds))))
		return -ENOMEM;
	g->rds = rds;
	if (!(busy = realloc(g->busy, cap)))
		return -ENOMEM;
	g->busy = busy;
	g->cap = cap;
	return 0;
}

int readers_add(struct readers_reg *g, uint32_t owner, struct hbus_readers *rd)
{
	unsigned i;

	if (g->n == g->cap && grow(g)) {
		hbus_readers_close(rd);
		return -ENOMEM;
	}
	for (i = 0; i < g->n; i++)
		if (g->v[i].owner == owner)
			g->v[i].current = false;
	g->v[g->n] = (struct rblock){ .owner = owner, .current = true };
	g->rds[g->n] = rd;
	g->busy[g->n] = 0;
	g->n++;
	return 0;
}

void readers_drop_owner(struct readers_reg *g, uint32_t owner)
{
	unsigned i = 0;

	while (i < g->n) {
		if (g->v[i].owner == owner)
			remove_at(g, i);
		else
			i++;
	}
}

int readers_publish(struct readers_reg *g, struct hbus_routes *r, const void *table, size_t len,
		    uint64_t *gen)
{
	uint64_t now;
	unsigned i;
	int rc = hbus_routes_publish(r, table, len, g->rds, g->n, g->busy, gen);

	if (rc != 0 && rc != -EBUSY)
		return rc;
	now = mono_ns();
	for (i = 0; i < g->n; i++) {
		if (rc == 0 || !g->busy[i])
			g->v[i].busy_since_ns = 0;
		else if (!g->v[i].busy_since_ns)
			g->v[i].busy_since_ns = now;
	}
	return rc;
}

unsigned readers_overdue(const struct readers_reg *g, uint32_t *owners, unsigned max)
{
	uint64_t now = mono_ns(), limit = (uint64_t)g->timeout_ms * 1000000u;
	unsigned i, j, n = 0;

	for (i = 0; i < g->n && n < max; i++) {
		if (!g->v[i].busy_since_ns || now - g->v[i].busy_since_ns <= limit)
			continue;
		for (j = 0; j < n && owners[j] != g->v[i].owner; j++)
			;
		if (j == n)
			owners[n++] = g->v[i].owner;
	}
	return n;
}

void readers_sweep(struct readers_reg *g, bool (*held)(void *ctx, uint32_t owner), void *ctx)
{
	unsigned i = 0;

	while (i < g->n) {
		if ((!g->v[i].current || !held(ctx, g->v[i].owner)) && hbus_readers_idle(g->rds[i]))
			remove_at(g, i);
		else
			i++;
	}
}
