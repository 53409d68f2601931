/*
 * routes_file.c - the routes file: two halves holding compiled routing
 * tables, published by generation (layout: route_layout.h).
 *
 * hbusd is the only writer.  Generation g lives in half g & 1; the active
 * word names the generation readers should use.  To publish g + 1, hbusd
 * overwrites the other half -- which holds g - 1 -- and then makes g + 1
 * active.  A reader advertises the generation it is using in its own slot,
 * and hbusd overwrites a half only when no slot advertises a generation of
 * that half's parity.
 *
 * The one hard race is a reader that read "g - 1 is active" just before
 * g became active, and is about to advertise g - 1 while hbusd scans the
 * slots to reuse g - 1's half.  It is the store-buffering pattern (each
 * side stores one word and then loads the other's), which only
 * sequentially consistent fences on both sides order:
 *
 *   reader:  slot = g'   ; fence(seq_cst) ; re-load active
 *   hbusd:   active = g  ; fence(seq_cst) ; load every slot
 *
 * Either hbusd's scan sees the advertised g' (and answers -EBUSY), or the
 * reader's re-load sees the newer active and retries; never neither.
 */
#include "route_layout.h"
#include "shm_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct hbus_routes {
	struct hbus_map map;
	struct hbus_routes_hdr *h;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Halves start on their own cache-line pairs after the header. */
static uint64_t layout(uint64_t table_cap, uint64_t half_off[2])
{
	half_off[0] = align_up(sizeof(struct hbus_routes_hdr), HBUS_CURSOR_ALIGN);
	half_off[1] = half_off[0] + table_cap;
	return half_off[1] + table_cap;
}

static const struct rt_table_hdr *half_table(const struct hbus_routes *r, uint64_t gen)
{
	return (const struct rt_table_hdr *)((const uint8_t *)r->map.addr + r->h->half_off[gen & 1]);
}

int hbus_routes_create(const char *path, size_t table_cap, int *fd_out, struct hbus_routes **out)
{
	struct hbus_routes *r;
	struct hbus_routes_hdr *h;
	uint64_t half_off[2], size;
	int fd, rc;

	/* Table offsets are 32-bit, so a half larger than 4 GiB is useless. */
	if (!path || !fd_out || !out || table_cap < sizeof(struct rt_table_hdr) ||
	    table_cap > UINT32_MAX)
		return -EINVAL;
	table_cap = align_up(table_cap, HBUS_CURSOR_ALIGN);
	size = layout(table_cap, half_off);
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	rc = hbus_shm_create(path, size, -1, &fd, &r->map);
	if (rc) {
		free(r);
		return rc;
	}
	h = r->h = r->map.addr;
	/* The file is fresh (fallocate zeroes it): active 0, every slot free. */
	h->table_cap = table_cap;
	h->half_off[0] = half_off[0];
	h->half_off[1] = half_off[1];
	h->n_readers = HBUS_ROUTE_READERS;
	hbus_shm_init_hdr(&h->file, HBUS_FILE_ROUTES, HBUS_ROUTES_LAYOUT_VERSION, size);
	*fd_out = fd;
	*out = r;
	return 0;
}

/* Every size field must agree with the file before anything is trusted. */
static int check_layout(const struct hbus_routes *r)
{
	const struct hbus_routes_hdr *h = r->h;
	uint64_t half_off[2], gen;
	const struct rt_table_hdr *t;

	if (h->n_readers != HBUS_ROUTE_READERS || h->table_cap < sizeof(struct rt_table_hdr) ||
	    h->table_cap > UINT32_MAX || h->table_cap % HBUS_CURSOR_ALIGN ||
	    layout(h->table_cap, half_off) != h->file.size ||
	    h->half_off[0] != half_off[0] || h->half_off[1] != half_off[1])
		return -EPROTO;
	gen = atomic_load_explicit(&h->active, memory_order_acquire);
	if (gen == 0)
		return 0;
	t = half_table(r, gen);
	if (h->half_gen[gen & 1] != gen || h->half_len[gen & 1] > h->table_cap)
		return -EPROTO;
	return rt_table_check(t, h->half_len[gen & 1]) ? -EPROTO : 0;
}

int hbus_routes_open_fd(int fd, struct hbus_routes **out)
{
	struct hbus_routes *r;
	int rc;

	if (fd < 0 || !out)
		return -EINVAL;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	rc = hbus_shm_map_fd(fd, sizeof(struct hbus_routes_hdr), &r->map);
	if (rc == 0) {
		r->h = r->map.addr;
		rc = hbus_shm_check_hdr(&r->map, HBUS_FILE_ROUTES, HBUS_ROUTES_LAYOUT_VERSION);
		if (rc == 0)
			rc = check_layout(r);
		if (rc)
			hbus_shm_unmap(&r->map);
	}
	if (rc) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int hbus_routes_close(struct hbus_routes *r)
{
	if (!r)
		return -EINVAL;
	hbus_shm_unmap(&r->map);
	free(r);
	return 0;
}

int hbus_routes_publish(struct hbus_routes *r, const void *table, size_t len, uint64_t *gen_out)
{
	struct hbus_routes_hdr *h;
	uint64_t next;
	unsigned half, i;

	if (!r || !table)
		return -EINVAL;
	h = r->h;
	if (len > h->table_cap)
		return -EMSGSIZE;
	if (rt_table_check(table, len))
		return -EINVAL;
	/* hbusd is the only writer of active: a relaxed load reads its own. */
	next = atomic_load_explicit(&h->active, memory_order_relaxed) + 1;
	half = next & 1;
	/* Order our last flip of active before the slot loads below (the
	 * store-buffering fence, see the top of this file). */
	atomic_thread_fence(memory_order_seq_cst);
	for (i = 0; i < HBUS_ROUTE_READERS; i++) {
		/* Acquire: a slot seen idle (0) or moved on means the reader's
		 * reads of the old table happened before, so we may overwrite. */
		uint64_t g = atomic_load_explicit(&h->readers[i].gen, memory_order_acquire);

		if (g != 0 && (g & 1) == half)
			return -EBUSY;
	}
	memcpy((uint8_t *)r->map.addr + h->half_off[half], table, len);
	h->half_len[half] = len;
	h->half_gen[half] = next;
	/* Release: a reader that loads next (acquire) sees the whole table. */
	atomic_store_explicit(&h->active, next, memory_order_release);
	if (gen_out)
		*gen_out = next;
	return 0;
}

int hbus_routes_reap(struct hbus_routes *r, uint32_t dead_owner)
{
	unsigned i;
	int n = 0;

	if (!r || dead_owner == 0 || dead_owner > HBUS_OWNER_MAX)
		return -EINVAL;
	for (i = 0; i < HBUS_ROUTE_READERS; i++) {
		struct hbus_routes_reader *s = &r->h->readers[i];

		if (atomic_load_explicit(&s->owner, memory_order_acquire) != dead_owner)
			continue;
		/* Idle first, then free: whoever claims the slot next finds
		 * it idle.  The owner is dead, so nobody races us here. */
		atomic_store_explicit(&s->gen, 0, memory_order_release);
		atomic_store_explicit(&s->owner, 0, memory_order_release);
		n++;
	}
	return n;
}

uint64_t hbus_routes_generation(const struct hbus_routes *r)
{
	return r ? atomic_load_explicit(&r->h->active, memory_order_acquire) : 0;
}

int hbus_routes_reader_attach(struct hbus_routes *r, uint32_t owner, unsigned *slot)
{
	unsigned i;

	if (!r || !slot || owner == 0 || owner > HBUS_OWNER_MAX)
		return -EINVAL;
	for (i = 0; i < HBUS_ROUTE_READERS; i++) {
		struct hbus_routes_reader *s = &r->h->readers[i];
		uint32_t free_owner = 0;

		/* Many processes attach at once: a CAS decides who gets it. */
		if (atomic_compare_exchange_strong_explicit(&s->owner, &free_owner, owner,
							    memory_order_acq_rel,
							    memory_order_relaxed)) {
			atomic_store_explicit(&s->gen, 0, memory_order_release);
			*slot = i;
			return 0;
		}
	}
	return -ENOSPC;
}

int hbus_routes_reader_detach(struct hbus_routes *r, unsigned slot)
{
	struct hbus_routes_reader *s;

	if (!r || slot >= HBUS_ROUTE_READERS)
		return -EINVAL;
	s = &r->h->readers[slot];
	if (atomic_load_explicit(&s->owner, memory_order_relaxed) == 0)
		return -EINVAL;
	atomic_store_explicit(&s->gen, 0, memory_order_release);
	atomic_store_explicit(&s->owner, 0, memory_order_release);
	return 0;
}

const struct hbus_rtable *hbus_routes_acquire(struct hbus_routes *r, unsigned slot, uint64_t *gen)
{
	struct hbus_routes_reader *s;
	uint64_t g;

	if (!r || slot >= HBUS_ROUTE_READERS)
		return NULL;
	s = &r->h->readers[slot];
	for (;;) {
		/* Acquire: pairs with publish's release store, so the table
		 * bytes of generation g are visible once we use them. */
		g = atomic_load_explicit(&r->h->active, memory_order_acquire);
		if (g == 0)
			return NULL;
		/* Release: hbusd's acquire load of this slot then also orders
		 * our reads of any table we used before this burst. */
		atomic_store_explicit(&s->gen, g, memory_order_release);
		/* The store-buffering fence (top of file): hbusd either sees
		 * our slot, or we see its newer active below. */
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&r->h->active, memory_order_relaxed) == g)
			break;
		/* A newer generation appeared meanwhile: its half may be
		 * the one we were about to use; start over. */
	}
	if (gen)
		*gen = g;
	return (const struct hbus_rtable *)(const void *)half_table(r, g);
}

void hbus_routes_release(struct hbus_routes *r, unsigned slot)
{
	if (!r || slot >= HBUS_ROUTE_READERS)
		return;
	/* Release: our reads of the table happen before hbusd's acquire load
	 * sees the slot idle and overwrites the half. */
	atomic_store_explicit(&r->h->readers[slot].gen, 0, memory_order_release);
}
