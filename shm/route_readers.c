/*
 * route_readers.c - reader blocks: the slots in which a session's routers
 * advertise the routing-table generation they read (route.h, layout in
 * route_layout.h).
 *
 * A block is memory of its own, one per session: hbusd makes an anonymous
 * memfd at hello, seals its size (so no client can shrink it under
 * hbusd's mapping: that would be a SIGBUS in hbusd) and passes it with the
 * hello reply.  Only that session's process can write it, so a forged or
 * stuck slot concerns that process alone; hbusd bounds how long it waits
 * for one (--reader-timeout, control/readers.c).
 */
#include "route_layout.h"
#include "shm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK_SIZE sizeof(struct hbus_readers_block)

_Static_assert(sizeof(struct hbus_readers_block) == 64 * HBUS_CURSOR_ALIGN,
	       "a reader block is its header pair and 63 slot pairs");
_Static_assert(HBUS_READER_SLOTS < 64, "one bit of `used` per slot");

static const unsigned seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

int hbus_readers_create(int *fd_out, struct hbus_readers **out)
{
	struct hbus_readers *rd;
	int fd, rc = 0;

	if (!fd_out || !out)
		return -EINVAL;
	if (!(rd = calloc(1, sizeof(*rd))))
		return -ENOMEM;
	fd = memfd_create("hbus-readers", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)BLOCK_SIZE) != 0 || fcntl(fd, F_ADD_SEALS, seals) != 0)
		rc = -errno;
	if (rc == 0)
		rc = hbus_shm_map_fd(fd, BLOCK_SIZE, &rd->map);
	if (rc) {
		if (fd >= 0)
			close(fd);
		free(rd);
		return rc;
	}
	rd->b = rd->map.addr;
	/* Fresh memfd: zero, every slot free and idle. */
	hbus_shm_init_hdr(&rd->b->file, HBUS_FILE_READERS, HBUS_READERS_LAYOUT_VERSION, BLOCK_SIZE);
	*fd_out = fd;
	*out = rd;
	return 0;
}

int hbus_readers_open_fd(int fd, struct hbus_readers **out)
{
	struct hbus_readers *rd;
	struct stat st;
	int rc;

	if (fd < 0 || !out)
		return -EINVAL;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (st.st_size != (off_t)BLOCK_SIZE)
		return -EPROTO;
	if (!(rd = calloc(1, sizeof(*rd))))
		return -ENOMEM;
	rc = hbus_shm_map_fd(fd, BLOCK_SIZE, &rd->map);
	if (rc == 0) {
		rd->b = rd->map.addr;
		rc = hbus_shm_check_hdr(&rd->map, HBUS_FILE_READERS, HBUS_READERS_LAYOUT_VERSION);
		if (rc)
			hbus_shm_unmap(&rd->map);
	}
	if (rc) {
		free(rd);
		return rc;
	}
	*out = rd;
	return 0;
}

void hbus_readers_close(struct hbus_readers *rd)
{
	if (!rd)
		return;
	hbus_shm_unmap(&rd->map);
	free(rd);
}

int hbus_readers_attach(struct hbus_readers *rd, unsigned *slot)
{
	uint64_t used, want;
	unsigned i;

	if (!rd || !slot)
		return -EINVAL;
	used = atomic_load_explicit(&rd->b->used, memory_order_relaxed);
	for (;;) {
		want = ~used & ((1ull << HBUS_READER_SLOTS) - 1);
		if (!want)
			return -ENOSPC;
		i = (unsigned)__builtin_ctzll(want);
		/* Threads of one process attach at once: a CAS decides. */
		if (atomic_compare_exchange_weak_explicit(&rd->b->used, &used, used | (1ull << i),
							  memory_order_acq_rel,
							  memory_order_relaxed))
			break;
	}
	/* Detach left it idle; this only makes sure of it (a stale value
	 * would at worst hold one publish back until this store). */
	atomic_store_explicit(&rd->b->slot[i].gen, 0, memory_order_release);
	*slot = i;
	return 0;
}

int hbus_readers_detach(struct hbus_readers *rd, unsigned slot)
{
	uint64_t bit;

	if (!rd || slot >= HBUS_READER_SLOTS)
		return -EINVAL;
	bit = 1ull << slot;
	if (!(atomic_load_explicit(&rd->b->used, memory_order_relaxed) & bit))
		return -EINVAL;
	atomic_store_explicit(&rd->b->slot[slot].gen, 0, memory_order_release);
	atomic_fetch_and_explicit(&rd->b->used, ~bit, memory_order_release);
	return 0;
}

bool hbus_readers_idle(const struct hbus_readers *rd)
{
	uint64_t used;

	if (!rd)
		return true;
	used = atomic_load_explicit(&rd->b->used, memory_order_acquire) &
	       ((1ull << HBUS_READER_SLOTS) - 1);
	while (used) {
		unsigned i = (unsigned)__builtin_ctzll(used);

		used &= used - 1;
		if (atomic_load_explicit(&rd->b->slot[i].gen, memory_order_acquire))
			return false;
	}
	return true;
}
