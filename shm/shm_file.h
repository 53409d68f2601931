/*
 * shm_file.h - shared-memory files: where they live, how they are created,
 * reserved, placed, mapped and checked.
 *
 * Every file a bus keeps in shared memory starts with struct hbus_file_hdr
 * (magic, layout version, kind, size), checked on every map, so a stale or
 * foreign file is refused with a clear error instead of being trusted.
 * Structures inside use fixed-width types and offsets, never pointers:
 * each process maps them at its own address.
 */
#ifndef HBUS_SHM_FILE_H
#define HBUS_SHM_FILE_H

#include <stddef.h>
#include <stdint.h>

#define HBUS_FILE_MAGIC  0x4d48535355424868ull /* "hBUSSHM" + kind-free tag */
#define HBUS_CACHE_LINE  64
/* Cursors written by different sides sit 128 bytes apart: the adjacent-line
 * prefetcher pulls lines in pairs, so 64 is not enough to avoid sharing. */
#define HBUS_CURSOR_ALIGN 128

enum hbus_file_kind {
	HBUS_FILE_SUPER    = 1,
	HBUS_FILE_QUEUE    = 2,
	HBUS_FILE_ROUTES   = 3,
	HBUS_FILE_COUNTERS = 4,
	HBUS_FILE_QUEUE_DATA = 5, /* a protected queue's message bytes */
	HBUS_FILE_READERS  = 6,   /* a session's reader block (route_readers.c) */
};

struct hbus_file_hdr {
	uint64_t magic;
	uint32_t version; /* layout version of this kind */
	uint32_t kind;    /* enum hbus_file_kind */
	uint64_t size;    /* bytes of the file this layout needs */
	uint64_t reserved;
};

struct hbus_map {
	void *addr;
	size_t len;
};

/*
 * Pick the bus directory: override if given, else a writable hugetlbfs
 * mount (default /dev/hugepages), else /dev/shm; append "hbus-<bus>".
 * Logs one line saying which.  *on_hugetlbfs tells the caller.
 */
int hbus_shm_bus_dir(const char *override, const char *bus, char *out, size_t cap,
		     int *on_hugetlbfs);

/* Round size up to what the filesystem of fd allocates (hugepage size). */
int hbus_shm_round_size(int fd, size_t size, size_t *rounded);

/*
 * Create path (O_EXCL, mode 0600), reserve size bytes up front (fallocate,
 * so a full hugepage pool or tmpfs is -ENOSPC here and never a SIGBUS
 * later), placed on numa_node (-1 = anywhere), map it prefaulted and locked.
 * On failure nothing is left behind.
 */
int hbus_shm_create(const char *path, size_t size, int numa_node, int *fd_out,
		    struct hbus_map *map);
/* The same for name relative to the directory dirfd (openat; a symbolic
 * link at name is refused): hbusd creates files through its held bus
 * directory descriptor. */
int hbus_shm_create_at(int dirfd, const char *name, size_t size, int numa_node, int *fd_out,
		       struct hbus_map *map);

/* Map an existing file, prefaulted and locked; checks that it is at least
 * min_size bytes.  The whole file is mapped, read-write, or read-only when
 * fd was opened O_RDONLY. */
int hbus_shm_map_fd(int fd, size_t min_size, struct hbus_map *map);
void hbus_shm_unmap(struct hbus_map *map);

/* Check magic, kind, layout version and the recorded size against the
 * mapping.  -EPROTO: foreign or corrupt; -EPROTONOSUPPORT: other version. */
int hbus_shm_check_hdr(const struct hbus_map *map, uint32_t kind, uint32_t version);
void hbus_shm_init_hdr(struct hbus_file_hdr *h, uint32_t kind, uint32_t version,
		       uint64_t size);

#endif
