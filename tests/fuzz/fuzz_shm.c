/*
 * fuzz_shm.c - libFuzzer target: a queue file whose bytes a hostile client
 * chose (anyone holding a queue's descriptor maps it read-write), fed to
 * what hbusd does with queue files: open with validation, recovery of dead
 * owners, requeue on a reader's behalf, scan (delete-if-empty), purge,
 * statistics; plus one producer and one consumer round (nack, ack, give
 * back what it holds), as clients would.  Every call must
 * return (the ring walks are bounded: -EUCLEAN), never crash or read
 * outside the mapping (ASan checks that), never hang (libFuzzer's
 * -timeout).  A violated property aborts.
 *
 * Input: byte 0 picks the geometry (capacity 2..64, slot size 64 or 256)
 * and how the rest lands in a freshly created file of that geometry:
 *   mode 0  over the whole file from offset 0 (the header too);
 *   mode 1  over the slots only (a valid header, hostile ring);
 *   mode 2  as (offset, byte) pairs anywhere (a few precise forgeries);
 *   mode 3  as 8-byte slot state words, one per slot, the rest fresh
 *           (reaches the slot states most directly).
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "hbus.h"
#include "queue_layout.h"


/* rc is 0 or one of the errors listed (0-terminated); else say which. */
static void check_rc(int rc, const char *call, int line, ...)
{
	va_list ap;
	int ok;

	if (rc == 0)
		return;
	va_start(ap, line);
	while ((ok = va_arg(ap, int)) != 0 && ok != rc)
		;
	va_end(ap);
	if (ok)
		return;
	fprintf(stderr, "fuzz property failed: %s returned %d (%s) at line %d\n", call, rc,
		hbus_strerror(rc), line);
	abort();
}
#define CHECK_RC(rc, call, ...) check_rc((rc), (call), __LINE__, __VA_ARGS__, 0)

#define GEOMETRIES 12

struct geometry {
	int fd;
	size_t len;
	uint8_t *pristine; /* the file as hbus_queue_create left it */
	uint8_t *map;
	struct hbus_queue_config cfg;
};

static struct geometry geo[GEOMETRIES];

static void make_geometry(struct geometry *g, unsigned k)
{
	const char *tmp = getenv("HBUS_FUZZ_TMP");
	char path[300];
	struct stat st;

	g->cfg = (struct hbus_queue_config){ .capacity = 2u << (k % 6),
					     .slot_size = k < 6 ? 64 : 256,
					     .overflow = k & 1 ? HBUS_OVERFLOW_DROP_HEAD
							       : HBUS_OVERFLOW_REJECT,
					     .numa_node = -1 };
	snprintf(path, sizeof(path), "%s/hbus-fuzz-shm-%d-%u", tmp && *tmp ? tmp : "/dev/shm",
		 (int)getpid(), k);
	unlink(path);
	CHECK(hbus_queue_create(path, "fuzz", &g->cfg, &g->fd) == 0);
	unlink(path); /* the descriptor is all that is left */
	CHECK(fstat(g->fd, &st) == 0);
	g->len = (size_t)st.st_size;
	g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	CHECK(g->map != MAP_FAILED);
	g->pristine = malloc(g->len);
	CHECK(g->pristine);
	memcpy(g->pristine, g->map, g->len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("HBUS_LOG", "quiet", 1);
	for (unsigned k = 0; k < GEOMETRIES; k++)
		make_geometry(&geo[k], k);
	return 0;
}

static void lay(struct geometry *g, unsigned mode, const uint8_t *d, size_t n)
{
	size_t slots = sizeof(struct hbus_queue_hdr), i;

	memcpy(g->map, g->pristine, g->len);
	switch (mode) {
	case 0:
		memcpy(g->map, d, n < g->len ? n : g->len);
		break;
	case 1:
		slots = (slots + HBUS_CURSOR_ALIGN - 1) / HBUS_CURSOR_ALIGN * HBUS_CURSOR_ALIGN;
		if (slots < g->len)
			memcpy(g->map + slots, d, n < g->len - slots ? n : g->len - slots);
		break;
	case 2:
		for (i = 0; i + 2 < n; i += 3)
			g->map[((size_t)d[i] << 8 | d[i + 1]) % g->len] = d[i + 2];
		break;
	default: {
		const struct hbus_queue_hdr *h = (const void *)g->pristine;

		for (i = 0; i < g->cfg.capacity && (i + 1) * 8 <= n; i++)
			memcpy(g->map + h->slots_offset + i * h->slot_stride, d + i * 8, 8);
	}
	}
}

/* What hbusd does with a queue file it holds, then a client's round. */
static void exercise(int fd)
{
	struct hbus_queue_opts ho = { .owner = 1, .ack_mode = HBUS_ACK_AUTO };
	struct hbus_queue_opts co = { .owner = 3, .ack_mode = HBUS_ACK_MANUAL, .prefetch = 4 };
	static const uint8_t body[40] = "a message that must come back whole";
	struct hbus_out o = { .body = body, .body_len = sizeof(body) };
	struct hbus_queue_config cfg;
	struct hbus_queue_stats st;
	struct hbus_recovery r;
	struct hbus_msg m[16];
	hbus_queue *h, *c;
	struct hbus_queue_census census;
	uint64_t depth, taken = 0;
	int n;

	if (hbus_queue_open_fd(fd, &ho, &h) != 0)
		return; /* refused at open: the header did not hold */
	CHECK(hbus_queue_config_get(h, &cfg) == 0);
	/* Recovery of dead owners (hbusd, on session close / process exit). */
	for (uint32_t dead = 2; dead < 6; dead++) {
		CHECK_RC(hbus_queue_recover_owner(h, dead, &r), "recover_owner", -EAGAIN, -EUCLEAN);
		/* hbusd requeueing a delivery for a reader of a protected queue */
		CHECK_RC(hbus_queue_requeue_for(h, dead, dead * 7u), "requeue_for", -ESTALE, -EAGAIN,
			 -EUCLEAN, -EPERM);
	}
	CHECK_RC(hbus_queue_scan(h, &census), "scan", -EUCLEAN); /* delete-if-empty */
	/* Purge, bounded as mq_purge bounds it. */
	while (taken < 2ull * cfg.capacity && (n = hbus_queue_consume_burst(h, m, 16)) > 0) {
		hbus_queue_ack_burst(h, m, (unsigned)n);
		taken += (uint64_t)n;
	}
	CHECK(hbus_queue_stats(h, &st) == 0);
	CHECK(hbus_queue_depth(h, &depth) == 0);
	/* A client: produce, consume (manual), nack one, ack the rest. */
	if (hbus_queue_open_fd(fd, &co, &c) == 0) {
		for (int k = 0; k < 4; k++)
			CHECK_RC(hbus_queue_enqueue(h, &o), "enqueue", -ENOBUFS, -EUCLEAN, -ESTALE,
				 -EMSGSIZE); /* a forged but consistent slot_size */
		n = hbus_queue_consume_burst(c, m, 4);
		CHECK(n >= 0 || n == -EUCLEAN);
		for (int k = 0; k < n; k++) {
			CHECK(m[k].body_len <= cfg.slot_size);
			/* nack: -EAGAIN when there is no room to requeue now */
			CHECK_RC(k == 0 ? hbus_queue_nack(c, &m[k], 1) : hbus_queue_ack(c, &m[k]),
				 k == 0 ? "nack" : "ack", -ESTALE, -EUCLEAN, -ENOBUFS, -EAGAIN);
		}
		CHECK_RC(hbus_queue_release_held(c, &r), "release_held", -EAGAIN, -EUCLEAN);
		hbus_queue_close(c);
		CHECK_RC(hbus_queue_recover_owner(h, 3, &r), "recover_owner", -EAGAIN, -EUCLEAN);
	}
	hbus_queue_close(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct geometry *g;

	if (size < 1)
		return 0;
	g = &geo[(data[0] >> 2) % GEOMETRIES];
	lay(g, data[0] & 3, data + 1, size - 1);
	exercise(g->fd);
	return 0;
}
