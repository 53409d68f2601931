/*
 * dp_counters.c - create, map and read the dataplane counters file (see
 * dp_counters.h for the layout).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dp_counters.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~(uint64_t)((a) - 1))

/* Offsets of every part for a file with max_lcores blocks. */
static void layout(struct hbus_dpc_hdr *h, const struct hbus_dpc_info *info)
{
	uint64_t off = ALIGN_UP(sizeof(*h), HBUS_CACHE_LINE);

	h->n_counters = info->n_counters;
	h->n_port_counters = info->n_port_counters;
	h->max_lcores = info->max_lcores;
	h->n_streams = HBUS_DPC_STREAMS;
	h->names_off = off;
	off += (uint64_t)h->n_counters * HBUS_DPC_NAME_LEN;
	h->port_names_off = off;
	off += (uint64_t)h->n_port_counters * HBUS_DPC_NAME_LEN;
	h->port_off = off = ALIGN_UP(off, HBUS_CURSOR_ALIGN);
	off += (uint64_t)h->n_port_counters * sizeof(uint64_t);
	h->lcores_off = off = ALIGN_UP(off, HBUS_CURSOR_ALIGN);
	h->streams_off = ALIGN_UP(sizeof(struct hbus_dpc_lcore) +
				  (uint64_t)h->n_counters * sizeof(uint64_t), HBUS_CACHE_LINE);
	/* Blocks of different lcores never share a prefetched line pair. */
	h->lcore_stride = ALIGN_UP(h->streams_off +
				   (uint64_t)h->n_streams * sizeof(struct hbus_dpc_stream),
				   HBUS_CURSOR_ALIGN);
	h->file.size = off + h->lcore_stride * info->max_lcores;
}

static uint64_t now_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* The writer's counter names, into the table at off. */
static void write_names(struct hbus_dpc_file *f, uint64_t off, unsigned n,
			const char *(*name)(unsigned id))
{
	for (unsigned i = 0; i < n; i++) {
		const char *s = name(i);

		copy_str((char *)f->map.addr + off + (uint64_t)i * HBUS_DPC_NAME_LEN,
			 HBUS_DPC_NAME_LEN, s ? s : "?");
	}
}

/*
 * A counters file left behind: -EADDRINUSE while its writer still runs;
 * else 0, with *old mapped when it is a valid file whose streams the new
 * one takes over (old->hdr NULL when there is none, or it is foreign or
 * corrupt: either way it is ours to replace).
 */
static int open_stale(const char *path, struct hbus_dpc_file *old)
{
	if (hbus_dpc_open(path, old) != 0)
		return 0;
	if (hbus_dpc_alive(old, 2000) && (pid_t)old->hdr->pid != getpid()) {
		hbus_dpc_close(old);
		return -EADDRINUSE;
	}
	return 0;
}

/* Each stream of a dead writer goes on from the sequence it committed
 * (durable_seq): what it lost, or never received, becomes a gap here.
 * Same table size, same slot: the open-addressed probing stays valid. */
static void carry_streams(const struct hbus_dpc_file *old, const struct hbus_dpc_file *f)
{
	unsigned li, i, n_lc = old->hdr->max_lcores < f->hdr->max_lcores ?
				       old->hdr->max_lcores : f->hdr->max_lcores;

	if (old->hdr->n_streams != f->hdr->n_streams)
		return;
	for (li = 0; li < n_lc; li++) {
		struct hbus_dpc_stream *from = hbus_dpc_streams(old, li);
		struct hbus_dpc_stream *to = hbus_dpc_streams(f, li);

		for (i = 0; i < f->hdr->n_streams; i++) {
			uint64_t seq;

			if (!atomic_load_explicit(&from[i].used, memory_order_acquire))
				continue;
			seq = atomic_load_explicit(&from[i].durable_seq, memory_order_relaxed);
			atomic_store_explicit(&to[i].stream_id,
					      atomic_load_explicit(&from[i].stream_id,
								   memory_order_relaxed),
					      memory_order_relaxed);
			atomic_store_explicit(&to[i].next_seq, seq, memory_order_relaxed);
			atomic_store_explicit(&to[i].durable_seq, seq, memory_order_relaxed);
			atomic_store_explicit(&to[i].used, 1, memory_order_relaxed);
		}
	}
}

int hbus_dpc_create(const char *dir, const struct hbus_dpc_info *info, struct hbus_dpc_file *f)
{
	struct hbus_dpc_hdr tmpl = { 0 }, *h;
	struct hbus_dpc_file old = { 0 };
	char path[512], tmp[520];
	int rc, n;

	if (!dir || !info || !info->name || !*info->name || strchr(info->name, '/') || !f ||
	    info->max_lcores == 0 || info->max_lcores > HBUS_DPC_MAX_LCORES ||
	    info->n_counters == 0 || info->n_counters > HBUS_DPC_MAX_COUNTERS ||
	    info->n_port_counters > HBUS_DPC_MAX_COUNTERS || !info->counter_name ||
	    (info->n_port_counters && !info->port_counter_name))
		return -EINVAL;
	n = snprintf(path, sizeof(path), "%s/%s.counters", dir, info->name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	rc = open_stale(path, &old);
	if (rc)
		return rc;
	/* Built aside and renamed over the old file: a writer killed while
	 * building never leaves a half-made file in the old one's place (nor
	 * the old one's streams lost).  A leftover .new is such a writer's. */
	unlink(tmp);
	layout(&tmpl, info);
	rc = hbus_shm_create(tmp, tmpl.file.size, -1, &f->fd, &f->map);
	if (rc) {
		hbus_dpc_close(&old);
		return rc;
	}
	/* Readable by `hbus stat` run by other users; only we write it. */
	fchmod(f->fd, 0644);
	h = f->hdr = f->map.addr;
	*h = tmpl;
	h->pid = (uint32_t)getpid();
	h->port_id = info->port_id;
	h->hbus_udp_port = info->hbus_udp_port;
	h->start_ns = now_realtime_ns();
	atomic_store_explicit(&h->heartbeat_ns, h->start_ns, memory_order_relaxed);
	copy_str(h->name, sizeof(h->name), info->name);
	copy_str(h->bus, sizeof(h->bus), info->bus);
	copy_str(h->port_name, sizeof(h->port_name), info->port_name);
	copy_str(h->ip, sizeof(h->ip), info->ip);
	write_names(f, h->names_off, h->n_counters, info->counter_name);
	write_names(f, h->port_names_off, h->n_port_counters, info->port_counter_name);
	if (old.hdr)
		carry_streams(&old, f);
	hbus_dpc_close(&old);
	/* The header (magic last) tells readers the layout is complete. */
	atomic_thread_fence(memory_order_release);
	hbus_shm_init_hdr(&h->file, HBUS_FILE_COUNTERS, HBUS_DPC_LAYOUT_VERSION, tmpl.file.size);
	if (rename(tmp, path) != 0) {
		rc = -errno;
		hbus_dpc_close(f);
		unlink(tmp);
		return rc;
	}
	return 0;
}

void hbus_dpc_destroy(struct hbus_dpc_file *f, const char *dir)
{
	char path[512];

	if (!f || !f->hdr)
		return;
	snprintf(path, sizeof(path), "%s/%s.counters", dir, f->hdr->name);
	hbus_dpc_close(f);
	unlink(path);
}

/* Every offset and count in a header read from a file must fit the map. */
static int hdr_consistent(const struct hbus_dpc_hdr *h, size_t maplen)
{
	uint64_t end;

	if (maplen < sizeof(*h) || h->n_counters == 0 || h->n_counters > HBUS_DPC_MAX_COUNTERS ||
	    h->n_port_counters > HBUS_DPC_MAX_COUNTERS || h->max_lcores == 0 ||
	    h->max_lcores > HBUS_DPC_MAX_LCORES || h->n_streams > 65536)
		return 0;
	if (h->names_off + (uint64_t)h->n_counters * HBUS_DPC_NAME_LEN > maplen ||
	    h->port_names_off + (uint64_t)h->n_port_counters * HBUS_DPC_NAME_LEN > maplen ||
	    h->port_off + (uint64_t)h->n_port_counters * 8 > maplen ||
	    h->port_off % 8 || h->lcores_off % 8 || h->lcore_stride % 8 || h->streams_off % 8)
		return 0;
	if (h->streams_off < sizeof(struct hbus_dpc_lcore) + (uint64_t)h->n_counters * 8 ||
	    h->streams_off + (uint64_t)h->n_streams * sizeof(struct hbus_dpc_stream) > h->lcore_stride)
		return 0;
	end = h->lcores_off + h->lcore_stride * h->max_lcores;
	return end <= h->file.size && h->file.size <= maplen;
}

int hbus_dpc_open(const char *path, struct hbus_dpc_file *f)
{
	struct stat st;
	void *p;
	int rc;

	if (!path || !f)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	/* Readers include hbusd (its stat reply), which must never block: a
	 * FIFO or device in the bus directory is refused, not waited on, and
	 * a symbolic link is not followed. */
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (f->fd < 0)
		return errno == ELOOP ? -EPROTO : -errno;
	if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < (off_t)sizeof(struct hbus_dpc_hdr)) {
		close(f->fd);
		return -EPROTO;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, f->fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		close(f->fd);
		return rc;
	}
	f->map.addr = p;
	f->map.len = (size_t)st.st_size;
	rc = hbus_shm_check_hdr(&f->map, HBUS_FILE_COUNTERS, HBUS_DPC_LAYOUT_VERSION);
	if (rc == 0 && !hdr_consistent(p, f->map.len))
		rc = -EPROTO;
	if (rc) {
		munmap(p, f->map.len);
		close(f->fd);
		memset(f, 0, sizeof(*f));
		return rc;
	}
	f->hdr = p;
	return 0;
}

void hbus_dpc_close(struct hbus_dpc_file *f)
{
	if (!f || !f->map.addr)
		return;
	munmap(f->map.addr, f->map.len);
	close(f->fd);
	memset(f, 0, sizeof(*f));
}

struct hbus_dpc_lcore *hbus_dpc_lcore(const struct hbus_dpc_file *f, unsigned i)
{
	if (!f || !f->hdr || i >= f->hdr->max_lcores)
		return NULL;
	return (struct hbus_dpc_lcore *)((char *)f->map.addr + f->hdr->lcores_off +
					 f->hdr->lcore_stride * i);
}

struct hbus_dpc_stream *hbus_dpc_streams(const struct hbus_dpc_file *f, unsigned i)
{
	char *l = (char *)hbus_dpc_lcore(f, i);

	return l ? (struct hbus_dpc_stream *)(l + f->hdr->streams_off) : NULL;
}

_Atomic uint64_t *hbus_dpc_port(const struct hbus_dpc_file *f)
{
	if (!f || !f->hdr)
		return NULL;
	return (_Atomic uint64_t *)((char *)f->map.addr + f->hdr->port_off);
}

static const char *name_at(const struct hbus_dpc_file *f, uint64_t off, unsigned n, unsigned id)
{
	const char *s;

	if (!f || !f->hdr || id >= n)
		return NULL;
	s = (const char *)f->map.addr + off + (uint64_t)id * HBUS_DPC_NAME_LEN;
	/* A name from a file is trusted only when it is terminated. */
	return memchr(s, 0, HBUS_DPC_NAME_LEN) ? s : "?";
}

const char *hbus_dpc_file_name(const struct hbus_dpc_file *f, unsigned id)
{
	return f && f->hdr ? name_at(f, f->hdr->names_off, f->hdr->n_counters, id) : NULL;
}

const char *hbus_dpc_file_port_name(const struct hbus_dpc_file *f, unsigned id)
{
	return f && f->hdr ? name_at(f, f->hdr->port_names_off, f->hdr->n_port_counters, id)
			   : NULL;
}

uint64_t hbus_dpc_total(const struct hbus_dpc_file *f, unsigned id)
{
	uint32_t n, i;
	uint64_t sum = 0;

	if (!f || !f->hdr || id >= f->hdr->n_counters)
		return 0;
	n = atomic_load_explicit(&f->hdr->n_lcores, memory_order_acquire);
	if (n > f->hdr->max_lcores)
		n = f->hdr->max_lcores;
	for (i = 0; i < n; i++)
		sum += atomic_load_explicit(&hbus_dpc_lcore(f, i)->c[id], memory_order_relaxed);
	return sum;
}

int hbus_dpc_alive(const struct hbus_dpc_file *f, unsigned max_age_ms)
{
	uint64_t hb, now;

	if (!f || !f->hdr)
		return 0;
	if (kill((pid_t)f->hdr->pid, 0) != 0 && errno == ESRCH)
		return 0;
	hb = atomic_load_explicit(&f->hdr->heartbeat_ns, memory_order_relaxed);
	now = now_realtime_ns();
	return now < hb || now - hb <= (uint64_t)max_age_ms * 1000000u;
}
