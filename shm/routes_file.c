/*
 * routes_file.c - the routes file: two halves holding compiled routing
 * tables, published by generation (layout: route_layout.h).
 *
 * hbusd is the only writer; every client maps the file read-only.
 * Generation g lives in half g & 1; the active word names the generation
 * readers should use.  To publish g + 1, hbusd overwrites the other half --
 * which holds g - 1 -- and then makes g + 1 active.  A reader advertises
 * the generation it is using in its slot of its session's reader block
 * (route_readers.c), and hbusd overwrites a half only when no block
 * advertises a generation of that half's parity.
 *
 * The one hard race is a reader that read "g - 1 is active" just before
 * g became active, and is about to advertise g - 1 while hbusd scans the
 * slots to reuse g - 1's half.  It is the store-buffering pattern (each
 * side stores one word and then loads the other's), which only
 * sequentially consistent fences on both sides order:
 *
 *   reader:  slot = g'   ; fence(seq_cst) ; re-load active
 *   hbusd:   active = g  ; fence(seq_cst) ; load every block's slots
 *
 * Either hbusd's scan sees the advertised g' (and answers -EBUSY), or the
 * reader's re-load sees the newer active and retries; never neither.  A
 * router attaches its slot (sets its bit in `used`) before its first
 * advertisement, so the scan, which reads `used` after the fence, sees the
 * bit whenever it must see the slot.
 *
 * Layout fields are checked once when a file is mapped and copied into the
 * process's handle: table_cap and half_off[] are never read from shared
 * memory again, and hbusd numbers generations from its own counter.
 */
#include "route_layout.h"
#include "shm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

struct hbus_routes {
	struct hbus_map map;
	struct hbus_routes_hdr *h;
	uint64_t table_cap;    /* copies of the checked layout */
	uint64_t half_off[2];
	uint64_t last_gen;     /* hbusd: the generation it published last */
	bool writable;
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
	return (const struct rt_table_hdr *)((const uint8_t *)r->map.addr + r->half_off[gen & 1]);
}

int hbus_routes_create_at(int dirfd, const char *name, size_t table_cap, int *fd_out,
			  struct hbus_routes **out)
{
	struct hbus_routes *r;
	struct hbus_routes_hdr *h;
	uint64_t size;
	int fd, rc;

	/* Table offsets are 32-bit, so a half larger than 4 GiB is useless. */
	if (!name || !fd_out || !out || table_cap < sizeof(struct rt_table_hdr) ||
	    table_cap > UINT32_MAX)
		return -EINVAL;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	r->table_cap = align_up(table_cap, HBUS_CURSOR_ALIGN);
	size = layout(r->table_cap, r->half_off);
	rc = hbus_shm_create_at(dirfd, name, size, -1, &fd, &r->map);
	if (rc) {
		free(r);
		return rc;
	}
	h = r->h = r->map.addr;
	/* The file is fresh (fallocate zeroes it): active 0. */
	h->table_cap = r->table_cap;
	h->half_off[0] = r->half_off[0];
	h->half_off[1] = r->half_off[1];
	hbus_shm_init_hdr(&h->file, HBUS_FILE_ROUTES, HBUS_ROUTES_LAYOUT_VERSION, size);
	r->writable = true;
	*fd_out = fd;
	*out = r;
	return 0;
}

int hbus_routes_create(const char *path, size_t table_cap, int *fd_out, struct hbus_routes **out)
{
	return hbus_routes_create_at(AT_FDCWD, path, table_cap, fd_out, out);
}

/* Every size field must agree with the file before anything is trusted;
 * what passes is copied into r. */
static int check_layout(struct hbus_routes *r)
{
	const struct hbus_routes_hdr *h = r->h;
	uint64_t cap = h->table_cap, half_off[2], gen;
	const struct rt_table_hdr *t;

	if (cap < sizeof(struct rt_table_hdr) || cap > UINT32_MAX || cap % HBUS_CURSOR_ALIGN ||
	    layout(cap, half_off) != h->file.size || h->file.size > r->map.len ||
	    h->half_off[0] != half_off[0] || h->half_off[1] != half_off[1])
		return -EPROTO;
	r->table_cap = cap;
	r->half_off[0] = half_off[0];
	r->half_off[1] = half_off[1];
	gen = atomic_load_explicit(&h->active, memory_order_acquire) & ~HBUS_ROUTES_RETIRED;
	r->last_gen = gen;
	if (gen == 0)
		return 0;
	t = half_table(r, gen);
	if (h->half_gen[gen & 1] != gen || h->half_len[gen & 1] > cap)
		return -EPROTO;
	return rt_table_check(t, h->half_len[gen & 1]) ? -EPROTO : 0;
}

int hbus_routes_open_fd(int fd, struct hbus_routes **out)
{
	struct hbus_routes *r;
	int rc, fl;

	if (fd < 0 || !out)
		return -EINVAL;
	if ((fl = fcntl(fd, F_GETFL)) < 0)
		return -errno;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	r->writable = (fl & O_ACCMODE) == O_RDWR;
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

/* Does any attached slot of block b advertise a generation of parity half? */
static bool block_uses(const struct hbus_readers_block *b, unsigned half)
{
	/* Acquire: a slot seen idle (0) or moved on means the reader's reads
	 * of the old table happened before, so we may overwrite. */
	uint64_t used = atomic_load_explicit(&b->used, memory_order_acquire);

	used &= (1ull << HBUS_READER_SLOTS) - 1;
	while (used) {
		unsigned i = (unsigned)__builtin_ctzll(used);
		uint64_t g = atomic_load_explicit(&b->slot[i].gen, memory_order_acquire);

		used &= used - 1;
		if (g != 0 && (g & 1) == half)
			return true;
	}
	return false;
}

int hbus_routes_publish(struct hbus_routes *r, const void *table, size_t len,
			struct hbus_readers *const *rds, unsigned n_rds, uint8_t *busy,
			uint64_t *gen_out)
{
	struct hbus_routes_hdr *h;
	uint64_t next;
	unsigned half, i;
	bool blocked = false;

	if (!r || !table || (!rds && n_rds))
		return -EINVAL;
	if (!r->writable || r->last_gen + 1 >= HBUS_ROUTES_RETIRED)
		return -EPERM;
	h = r->h;
	if (len > r->table_cap)
		return -EMSGSIZE;
	if (rt_table_check(table, len))
		return -EINVAL;
	next = r->last_gen + 1;
	half = next & 1;
	/* Order our last flip of active before the slot loads below (the
	 * store-buffering fence, see the top of this file). */
	atomic_thread_fence(memory_order_seq_cst);
	for (i = 0; i < n_rds; i++) {
		bool b = rds[i] && block_uses(rds[i]->b, half);

		if (busy)
			busy[i] = b;
		blocked |= b;
	}
	if (blocked)
		return -EBUSY;
	memcpy((uint8_t *)r->map.addr + r->half_off[half], table, len);
	h->half_len[half] = len;
	h->half_gen[half] = next;
	/* Release: a reader that loads next (acquire) sees the whole table. */
	atomic_store_explicit(&h->active, next, memory_order_release);
	r->last_gen = next;
	if (gen_out)
		*gen_out = next;
	return 0;
}

void hbus_routes_continue(struct hbus_routes *r, uint64_t gen)
{
	/* Only before the first publish: the file's halves are still empty. */
	if (r && r->writable && r->last_gen == 0 && gen < HBUS_ROUTES_RETIRED - 2)
		r->last_gen = gen;
}

int hbus_routes_retire(struct hbus_routes *r)
{
	if (!r || !r->writable)
		return -EINVAL;
	/* Release: nothing of the table changes any more, but a reader that
	 * sees the flag must see the generation it goes with. */
	atomic_store_explicit(&r->h->active, r->last_gen | HBUS_ROUTES_RETIRED,
			      memory_order_release);
	r->writable = false;
	return 0;
}

uint64_t hbus_routes_generation(const struct hbus_routes *r)
{
	if (!r)
		return 0;
	if (r->writable)
		return r->last_gen;
	return atomic_load_explicit(&r->h->active, memory_order_acquire) & ~HBUS_ROUTES_RETIRED;
}

bool hbus_routes_retired(const struct hbus_routes *r)
{
	return r && (atomic_load_explicit(&r->h->active, memory_order_relaxed) & HBUS_ROUTES_RETIRED);
}

const struct hbus_rtable *hbus_routes_acquire(struct hbus_routes *r, struct hbus_readers *rd,
					      unsigned slot, uint64_t *gen)
{
	struct hbus_reader_slot *s;
	uint64_t g;

	if (!r || !rd || slot >= HBUS_READER_SLOTS)
		return NULL;
	s = &rd->b->slot[slot];
	for (;;) {
		/* Acquire: pairs with publish's release store, so the table
		 * bytes of generation g are visible once we use them. */
		g = atomic_load_explicit(&r->h->active, memory_order_acquire);
		if (!(g << 1)) /* no generation yet (the retired flag aside) */
			return NULL;
		/* Release: hbusd's acquire load of this slot then also orders
		 * our reads of any table we used before this burst.  (The
		 * retired flag may go along: hbusd looks at the parity only.) */
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
	return (const struct hbus_rtable *)(const void *)half_table(r, g); /* by g & 1 */
}

void hbus_routes_release(struct hbus_readers *rd, unsigned slot)
{
	if (!rd || slot >= HBUS_READER_SLOTS)
		return;
	/* Release: our reads of the table happen before hbusd's acquire load
	 * sees the slot idle and overwrites the half. */
	atomic_store_explicit(&rd->b->slot[slot].gen, 0, memory_order_release);
}
