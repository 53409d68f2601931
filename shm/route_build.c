/* route_build.c - see route_build.h. */
#include "route_build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t rt_buf_alloc(struct rt_buf *b, size_t n)
{
	size_t off = (b->len + RT_ALIGN - 1) & ~(size_t)(RT_ALIGN - 1);
	size_t end = off + n;

	if (b->err)
		return 0;
	/* Offsets are 32-bit: a table past 4 GiB cannot be described. */
	if (end > UINT32_MAX || end < off) {
		b->err = -EFBIG;
		return 0;
	}
	if (end > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *p;

		while (cap < end)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return 0;
		}
		b->p = p;
		b->cap = cap;
	}
	memset(b->p + b->len, 0, end - b->len);
	b->len = end;
	return (uint32_t)off;
}

uint32_t rt_buf_str(struct rt_buf *b, const char *s, size_t len)
{
	uint32_t off = rt_buf_alloc(b, len + 1);

	if (off && len)
		memcpy(b->p + off, s, len);
	return off;
}

uint32_t rt_slot_cap(unsigned n)
{
	uint32_t cap = 2;

	while (cap < 2ull * n)
		cap *= 2;
	return cap;
}

void rt_slots_fill(const struct rt_buf *b, struct rt_slot *slots, uint32_t cap,
		   const struct rt_slot *ents, unsigned n)
{
	uint32_t i, j;

	for (i = 0; i < n; i++) {
		for (j = ents[i].hash & (cap - 1); slots[j].off; j = (j + 1) & (cap - 1))
			;
		slots[j] = ents[i];
		rt_prefix((const char *)b->p + ents[i].off, ents[i].len, slots[j].pfx);
	}
}

uint32_t rt_buf_slots(struct rt_buf *b, const struct rt_slot *ents, unsigned n, uint32_t *mask)
{
	uint32_t cap = rt_slot_cap(n), off;

	off = rt_buf_alloc(b, (size_t)cap * sizeof(struct rt_slot));
	*mask = cap - 1;
	if (off)
		rt_slots_fill(b, rt_buf_at(b, off), cap, ents, n);
	return off;
}

static int dest_cmp(const void *a, const void *b)
{
	const struct rt_dest *x = a, *y = b;

	if (x->is_exchange != y->is_exchange)
		return x->is_exchange < y->is_exchange ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

uint32_t rt_buf_dests(struct rt_buf *b, struct rt_dest *d, unsigned n)
{
	struct rt_dests *out;
	unsigned i, m = 0, nq = 0;
	uint32_t off;

	if (n == 0)
		return 0;
	qsort(d, n, sizeof(*d), dest_cmp);
	for (i = 0; i < n; i++)
		if (m == 0 || dest_cmp(&d[m - 1], &d[i]) != 0)
			d[m++] = d[i];
	off = rt_buf_alloc(b, sizeof(*out) + (size_t)m * sizeof(uint32_t));
	if (!off)
		return 0;
	out = rt_buf_at(b, off);
	for (i = 0; i < m; i++) {
		out->ids[i] = d[i].id;
		nq += !d[i].is_exchange;
	}
	out->n_queues = nq;
	out->n_exchanges = m - nq;
	return off;
}
