/* shm_file.c - see shm_file.h. */
#include "shm_file.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

static int is_writable_hugetlbfs(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) != 0 || (unsigned long)sf.f_type != HUGETLBFS_MAGIC)
		return 0;
	return access(dir, W_OK | X_OK) == 0;
}

/* First hugetlbfs mount in /proc/mounts that we can write, else "". */
static void find_hugetlbfs(char *out, size_t cap)
{
	char line[512], dev[128], dir[256], type[64];
	FILE *f;

	out[0] = '\0';
	if (is_writable_hugetlbfs("/dev/hugepages")) {
		snprintf(out, cap, "/dev/hugepages");
		return;
	}
	f = fopen("/proc/mounts", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%127s %255s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "hugetlbfs") && is_writable_hugetlbfs(dir)) {
			snprintf(out, cap, "%s", dir);
			break;
		}
	}
	fclose(f);
}

int hbus_shm_bus_dir(const char *override, const char *bus, char *out, size_t cap,
		     int *on_hugetlbfs)
{
	char base[256];
	const char *why;
	int n;

	if (!bus || !*bus || !out || strchr(bus, '/') || strlen(bus) > 64)
		return -EINVAL;
	if (override && *override) {
		snprintf(base, sizeof(base), "%s", override);
		why = "as asked";
	} else {
		find_hugetlbfs(base, sizeof(base));
		why = "hugetlbfs mount";
		if (!base[0]) {
			snprintf(base, sizeof(base), "/dev/shm");
			why = "no writable hugetlbfs mount, using tmpfs (run scripts/setup-hugepages)";
		}
	}
	n = snprintf(out, cap, "%s/hbus-%s", base, bus);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	if (on_hugetlbfs)
		*on_hugetlbfs = is_writable_hugetlbfs(base);
	HBUS_INFO("bus '%s' shared memory in %s (%s)", bus, out, why);
	return 0;
}

int hbus_shm_round_size(int fd, size_t size, size_t *rounded)
{
	struct statfs sf;
	size_t unit = 4096;

	if (fstatfs(fd, &sf) != 0)
		return -errno;
	if ((unsigned long)sf.f_type == HUGETLBFS_MAGIC && sf.f_bsize > 0)
		unit = (size_t)sf.f_bsize;
	*rounded = (size + unit - 1) / unit * unit;
	return 0;
}

/* Lock a mapping.  Without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK this
 * fails: say so once and go on, since an unlocked ring still works. */
static void lock_mapping(void *addr, size_t len)
{
	static int warned;

	if (mlock(addr, len) != 0 && !warned) {
		warned = 1;
		HBUS_WARN("mlock failed (%s): shared memory is not locked; raise "
			  "RLIMIT_MEMLOCK (ulimit -l) or run with CAP_IPC_LOCK",
			  strerror(errno));
	}
}

static int map_whole(int fd, size_t len, struct hbus_map *map)
{
	/* A descriptor opened read-only is mapped read-only (and a PROT_WRITE
	 * mapping of it would fail anyway): what hbusd hands out O_RDONLY, a
	 * client can read, never write. */
	int ro = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY;
	void *p = mmap(NULL, len, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	lock_mapping(p, len);
	map->addr = p;
	map->len = len;
	return 0;
}

/*
 * Bind this thread's allocations to node while the file's pages are
 * allocated (fallocate allocates them, for hugetlbfs and tmpfs alike), then
 * put the old policy back.
 */
static int with_node_policy(int node, int fd, size_t size)
{
	struct bitmask *old = NULL, *want = NULL;
	int rc = 0;

	if (node >= 0) {
		if (numa_available() < 0)
			return node == 0 ? 0 : -EINVAL;
		if (node > numa_max_node())
			return -EINVAL;
		old = numa_get_membind();
		want = numa_allocate_nodemask();
		numa_bitmask_setbit(want, (unsigned)node);
		numa_set_membind(want);
	}
	if (fallocate(fd, 0, 0, (off_t)size) != 0) {
		rc = -errno;
		/* A filesystem without fallocate: fall back to a sized file. */
		if (rc == -EOPNOTSUPP)
			rc = ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
	}
	if (node >= 0) {
		numa_set_membind(old);
		numa_bitmask_free(old);
		numa_bitmask_free(want);
	}
	return rc;
}

int hbus_shm_create_at(int dirfd, const char *name, size_t size, int numa_node, int *fd_out,
		       struct hbus_map *map)
{
	size_t len;
	int fd, rc;

	if (!name || !fd_out || !map || size == 0)
		return -EINVAL;
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = hbus_shm_round_size(fd, size, &len);
	if (rc == 0)
		rc = with_node_policy(numa_node, fd, len);
	if (rc == 0)
		rc = map_whole(fd, len, map);
	if (rc != 0) {
		close(fd);
		unlinkat(dirfd, name, 0);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

int hbus_shm_create(const char *path, size_t size, int numa_node, int *fd_out,
		    struct hbus_map *map)
{
	return hbus_shm_create_at(AT_FDCWD, path, size, numa_node, fd_out, map);
}

int hbus_shm_map_fd(int fd, size_t min_size, struct hbus_map *map)
{
	struct stat st;

	if (fd < 0 || !map)
		return -EINVAL;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EPROTO;
	if ((size_t)st.st_size < min_size || st.st_size <= 0)
		return -EPROTO;
	return map_whole(fd, (size_t)st.st_size, map);
}

void hbus_shm_unmap(struct hbus_map *map)
{
	if (map && map->addr) {
		munmap(map->addr, map->len);
		map->addr = NULL;
		map->len = 0;
	}
}

void hbus_shm_init_hdr(struct hbus_file_hdr *h, uint32_t kind, uint32_t version,
		       uint64_t size)
{
	h->version = version;
	h->kind = kind;
	h->size = size;
	h->reserved = 0;
	/* Magic last: a reader that sees it sees a complete header. */
	__atomic_store_n(&h->magic, HBUS_FILE_MAGIC, __ATOMIC_RELEASE);
}

int hbus_shm_check_hdr(const struct hbus_map *map, uint32_t kind, uint32_t version)
{
	const struct hbus_file_hdr *h = map->addr;

	if (map->len < sizeof(*h))
		return -EPROTO;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != HBUS_FILE_MAGIC || h->kind != kind)
		return -EPROTO;
	if (h->version != version)
		return -EPROTONOSUPPORT;
	if (h->size > map->len || h->size < sizeof(*h))
		return -EPROTO;
	return 0;
}
