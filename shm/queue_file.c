/*
 * queue_file.c - queue files: their geometry, creation, and the mapping of
 * a handle onto them with every layout field checked once and copied.
 *
 * A default queue is one file: header, records, slots (each slot's state
 * word is its first 8 bytes, so a hand-off moves one cache line).  A
 * protected queue is two: the state file (header, records, one 64-byte
 * state line per slot) that every handle maps read-write, and the data
 * file (slots) that consumers map read-only (queue_layout.h).
 */
#include "queue_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t stride_for(uint32_t slot_size)
{
	return (HBUS_SLOT_HDR_LEN + slot_size + HBUS_CACHE_LINE - 1) & ~(uint32_t)(HBUS_CACHE_LINE - 1);
}

static uint64_t line_up(uint64_t n)
{
	return (n + HBUS_CACHE_LINE - 1) & ~(uint64_t)(HBUS_CACHE_LINE - 1);
}

/* Where everything is, from the configuration alone: what create writes
 * and what open demands. */
struct geometry {
	uint64_t rec_offset, states_offset, slots_offset, state_size, data_size;
	uint32_t stride, state_stride;
};

static void geometry(const struct hbus_queue_config *c, struct geometry *g)
{
	g->stride = stride_for(c->slot_size);
	g->rec_offset = line_up(sizeof(struct hbus_queue_hdr));
	g->states_offset = g->rec_offset + (uint64_t)HBUS_QUEUE_RECORDS * sizeof(struct hbus_qrec);
	if (c->flags & HBUS_QUEUE_F_PROTECTED) {
		g->state_stride = HBUS_CACHE_LINE;
		g->state_size = g->states_offset + (uint64_t)c->capacity * g->state_stride;
		g->slots_offset = line_up(sizeof(struct hbus_queue_data_hdr));
		g->data_size = g->slots_offset + (uint64_t)c->capacity * g->stride;
	} else {
		g->state_stride = g->stride;
		g->slots_offset = g->states_offset;
		g->state_size = g->slots_offset + (uint64_t)c->capacity * g->stride;
		g->data_size = 0;
	}
}

static int config_valid(const struct hbus_queue_config *c)
{
	return c->capacity >= HBUS_QUEUE_CAPACITY_MIN && c->capacity <= HBUS_QUEUE_CAPACITY_MAX &&
	       (c->capacity & (c->capacity - 1)) == 0 &&
	       c->slot_size >= HBUS_SLOT_SIZE_MIN && c->slot_size <= HBUS_SLOT_SIZE_MAX &&
	       c->overflow <= HBUS_OVERFLOW_DROP_HEAD && c->numa_node >= -1 &&
	       c->ttl_ms <= 7u * 24 * 3600 * 1000 && (c->flags & ~HBUS_QUEUE_F_ALL) == 0;
}

static int create_data(const char *path, const struct hbus_queue_config *cfg,
		       const struct geometry *g, uint64_t created, int *fd_out)
{
	struct hbus_queue_data_hdr *d;
	struct hbus_map map;
	int rc = hbus_shm_create(path, g->data_size, cfg->numa_node, fd_out, &map);

	if (rc)
		return rc;
	d = map.addr;
	d->capacity = cfg->capacity;
	d->slot_stride = g->stride;
	d->slots_offset = g->slots_offset;
	d->created_ns = created;
	hbus_shm_init_hdr(&d->file, HBUS_FILE_QUEUE_DATA, HBUS_QUEUE_LAYOUT_VERSION, g->data_size);
	hbus_shm_unmap(&map);
	return 0;
}

static int create(const char *path, const char *data_path, const char *name,
		  const struct hbus_queue_config *cfg, int *fd_out, int *data_fd_out)
{
	struct hbus_queue_hdr *h;
	struct geometry g;
	struct hbus_map map;
	uint64_t created = hbus_now_ns();
	int fd, dfd = -1, rc;

	if (!path || !name || !cfg || !fd_out || strlen(name) > HBUS_NAME_MAX || !config_valid(cfg) ||
	    !!data_path != !!(cfg->flags & HBUS_QUEUE_F_PROTECTED))
		return -EINVAL;
	geometry(cfg, &g);
	if (data_path && (rc = create_data(data_path, cfg, &g, created, &dfd)) != 0)
		return rc;
	rc = hbus_shm_create(path, g.state_size, cfg->numa_node, &fd, &map);
	if (rc) {
		if (dfd >= 0) {
			close(dfd);
			unlink(data_path);
		}
		return rc;
	}
	/* The file is new and zero-filled: every slot is FREE at lap 0, every
	 * record free with its counters at 0. */
	h = map.addr;
	h->capacity = cfg->capacity;
	h->slot_size = cfg->slot_size;
	h->slot_stride = g.stride;
	h->overflow = cfg->overflow;
	h->ttl_ms = cfg->ttl_ms;
	h->numa_node = cfg->numa_node;
	h->flags = cfg->flags;
	h->nrec = HBUS_QUEUE_RECORDS;
	h->rec_offset = g.rec_offset;
	h->slots_offset = g.slots_offset;
	h->states_offset = g.states_offset;
	h->state_stride = g.state_stride;
	h->created_ns = created;
	memcpy(h->name, name, strlen(name) + 1);
	hbus_shm_init_hdr(&h->file, HBUS_FILE_QUEUE, HBUS_QUEUE_LAYOUT_VERSION, g.state_size);
	hbus_shm_unmap(&map);
	*fd_out = fd;
	if (data_fd_out)
		*data_fd_out = dfd;
	return 0;
}

int hbus_queue_create(const char *path, const char *name, const struct hbus_queue_config *cfg,
		      int *fd_out)
{
	return create(path, NULL, name, cfg, fd_out, NULL);
}

int hbus_queue_create_protected(const char *path, const char *data_path, const char *name,
				const struct hbus_queue_config *cfg, int *fd_out, int *data_fd_out)
{
	if (!data_path || !data_fd_out)
		return -EINVAL;
	return create(path, data_path, name, cfg, fd_out, data_fd_out);
}

/* Every field of the header must agree with the geometry its configuration
 * gives and with the file; a copy of it is what the handle uses. */
static int header_consistent(const struct hbus_queue_hdr *h, size_t maplen, struct geometry *g)
{
	struct hbus_queue_config c = {
		.capacity = h->capacity, .slot_size = h->slot_size,
		.overflow = h->overflow, .ttl_ms = h->ttl_ms, .numa_node = h->numa_node,
		.flags = h->flags,
	};

	if (!config_valid(&c))
		return 0;
	geometry(&c, g);
	return h->slot_stride == g->stride && h->nrec == HBUS_QUEUE_RECORDS &&
	       h->rec_offset == g->rec_offset && h->slots_offset == g->slots_offset &&
	       h->states_offset == g->states_offset && h->state_stride == g->state_stride &&
	       memchr(h->name, 0, sizeof(h->name)) != NULL && h->file.size == g->state_size &&
	       g->state_size <= maplen;
}

static int data_consistent(const struct hbus_queue_data_hdr *d, size_t maplen,
			   const struct hbus_queue_hdr *h, const struct geometry *g)
{
	return maplen >= sizeof(*d) && d->capacity == h->capacity && d->slot_stride == g->stride &&
	       d->slots_offset == g->slots_offset && d->created_ns == h->created_ns &&
	       d->file.size == g->data_size && g->data_size <= maplen;
}

int queue_map(struct hbus_queue *q, int fd, int data_fd)
{
	const struct hbus_queue_hdr *h;
	struct geometry g;
	int rc, prot;

	q->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (q->fd < 0)
		return -errno;
	rc = hbus_shm_map_fd(q->fd, sizeof(struct hbus_file_hdr), &q->map);
	if (rc == 0)
		rc = hbus_shm_check_hdr(&q->map, HBUS_FILE_QUEUE, HBUS_QUEUE_LAYOUT_VERSION);
	if (rc == 0 && (q->map.len < sizeof(*h) || !header_consistent(q->map.addr, q->map.len, &g)))
		rc = -EPROTO;
	if (rc)
		return rc;
	h = q->map.addr;
	prot = (h->flags & HBUS_QUEUE_F_PROTECTED) != 0;
	if (prot != (data_fd >= 0))
		return -EINVAL; /* a protected queue needs its data file, others have none */
	if (prot) {
		q->data_fd = fcntl(data_fd, F_DUPFD_CLOEXEC, 0);
		if (q->data_fd < 0)
			return -errno;
		rc = hbus_shm_map_fd(q->data_fd, sizeof(struct hbus_queue_data_hdr), &q->data_map);
		if (rc == 0)
			rc = hbus_shm_check_hdr(&q->data_map, HBUS_FILE_QUEUE_DATA,
						HBUS_QUEUE_LAYOUT_VERSION);
		if (rc == 0 && !data_consistent(q->data_map.addr, q->data_map.len, h, &g))
			rc = -EPROTO;
		if (rc)
			return rc;
		q->read_only = (fcntl(q->data_fd, F_GETFL) & O_ACCMODE) == O_RDONLY;
		q->slots = (uint8_t *)q->data_map.addr + g.slots_offset;
	} else {
		q->slots = (uint8_t *)q->map.addr + g.slots_offset;
	}
	/* Everything below is a copy, from the geometry checked above. */
	q->hdr = q->map.addr;
	q->recs = (struct hbus_qrec *)((uint8_t *)q->map.addr + g.rec_offset);
	q->nrec = HBUS_QUEUE_RECORDS;
	q->states = (uint8_t *)q->map.addr + g.states_offset;
	q->state_stride = g.state_stride;
	q->mask = h->capacity - 1;
	q->shift = (uint32_t)__builtin_ctz(h->capacity);
	q->stride = g.stride;
	q->slot_size = h->slot_size;
	q->overflow = h->overflow;
	q->ttl_ns = (uint64_t)h->ttl_ms * 1000000u;
	q->flags = h->flags;
	q->demote = (h->flags & HBUS_QUEUE_F_LATENCY) != 0;
	return 0;
}

void queue_unmap(struct hbus_queue *q)
{
	hbus_shm_unmap(&q->map);
	hbus_shm_unmap(&q->data_map);
	if (q->fd >= 0)
		close(q->fd);
	if (q->data_fd >= 0)
		close(q->data_fd);
}
