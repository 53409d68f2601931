/*
 * pp_aeron.c - Aeron IPC as a ping-pong peer: the C client against a
 * private C media driver (built only with meson -Daeron=DIR).
 *
 * prepare() makes a private directory under --shm-dir (default /dev/shm:
 * the log buffers must live on tmpfs, as Aeron's own default dir does) and
 * starts aeronmd in it: SHARED threading (one driver thread), backoff
 * idle, non-sparse log files.  The C driver maps non-sparse logs with
 * MAP_POPULATE, and each client maps them pre-touched as well
 * (aeron_context_set_pre_touch_mapped_memory), so no page is faulted in
 * the measured loop: the configuration a latency-bound user runs, and the
 * one issue 15 compares hbus against.  cleanup() stops the driver with
 * SIGINT (its clean shutdown deletes its directory; cleanup removes
 * whatever is left); the driver gets PR_SET_PDEATHSIG, so it cannot
 * outlive a killed benchmark, nor leave its directory behind.
 *
 * An Aeron client is not fork-safe: each side makes its own in open(),
 * after the fork.  Each side has an exclusive publication (Aeron's
 * single-writer one, the counterpart of an exclusive hbus producer) on
 * aeron:ipc and a subscription on the other stream, and busy-spins offer
 * and poll.  Messages longer than the IPC MTU arrive in fragments; a
 * fragment assembler puts them back together (unfragmented ones pass
 * straight through it).
 */
#ifdef HBUS_BENCH_AERON
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aeronc.h>

#include "bench.h"
#include "pp.h"

#define APP_URI          "aeron:ipc"
#define APP_STREAM_PING  1001          /* pinger -> echoer */
#define APP_STREAM_PONG  1002          /* echoer -> pinger */
#define APP_DEADLINE_NS  (10ull * 1000000000ull) /* driver start, connect, a stuck offer */
#define APP_SPIN_CHECK   4096u         /* failed offers between clock reads */

/* What the fragment handler fills in for the try_recv that polled. */
struct app_rx {
	uint8_t *dst;
	size_t want;
	int got;   /* 1: a whole message of want bytes copied to dst */
	int bad;   /* 1: a message of another length arrived */
};

/* One side's client.  The context lives in memory both processes map, so
 * each side's struct gets its own cache lines: the rx fields are written
 * on every poll. */
struct app_side {
	alignas(128) aeron_context_t *actx;
	aeron_t *client;
	aeron_exclusive_publication_t *pub;
	aeron_subscription_t *sub;
	aeron_fragment_assembler_t *assembler;
	struct app_rx rx;
};

struct app_ctx {
	/* The driver's aeron.dir: made private (0700) here, removed by the
	 * driver's own shutdown, and by cleanup if the driver could not. */
	char dir[256];
	pid_t driver;
	struct app_side side[2];
};

static int app_fail(const char *what)
{
	fprintf(stderr, "hbus-bench: aeron: %s: %s\n", what, aeron_errmsg());
	return -EIO;
}

static void app_nap(void)
{
	struct timespec ts = { 0, 200000 };
	nanosleep(&ts, NULL);
}

/* In the forked child: become aeronmd.  Never returns.  Only
 * async-signal-safe calls: the argument was formatted before the fork. */
static void app_exec_driver(char *dir_def, pid_t parent)
{
	static const char msg[] = "hbus-bench: aeron: cannot run " HBUS_BENCH_AERONMD "\n";
	cpu_set_t all;

	/* A killed benchmark takes its driver with it (SIGINT: clean shutdown). */
	prctl(PR_SET_PDEATHSIG, SIGINT);
	if (getppid() != parent)
		_exit(127);
	/* The parent may already be pinned to the pinger's cpu (compare runs
	 * transports back to back): the driver floats, as it would for a user.
	 * The kernel drops the cpus that do not exist from the mask. */
	memset(&all, 0xff, sizeof(all));
	sched_setaffinity(0, sizeof(all), &all);
	/* Its stdout is chatter ("Shutting down driver..."); errors go to stderr. */
	int null = open("/dev/null", O_WRONLY);
	if (null >= 0)
		dup2(null, 1);
	char *const argv[] = {
		HBUS_BENCH_AERONMD,
		dir_def,
		"-Daeron.threading.mode=SHARED",
		"-Daeron.shared.idle.strategy=backoff",
		"-Daeron.term.buffer.sparse.file=false",
		"-Daeron.dir.delete.on.shutdown=true",
		NULL,
	};
	execv(argv[0], argv);
	ssize_t w = write(2, msg, sizeof(msg) - 1);
	(void)w;
	_exit(127);
}

static int app_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* Stop the driver (SIGINT, then SIGKILL after 5 s) and remove the directory. */
static void app_cleanup(void *ctx)
{
	struct app_ctx *c = ctx;

	if (c->driver > 0) {
		uint64_t t0 = bench_mono_ns();
		int status;

		kill(c->driver, SIGINT);
		while (waitpid(c->driver, &status, WNOHANG) == 0) {
			if (bench_mono_ns() - t0 > APP_DEADLINE_NS / 2) {
				kill(c->driver, SIGKILL);
				waitpid(c->driver, &status, 0);
				break;
			}
			app_nap();
		}
		c->driver = 0;
	}
	if (c->dir[0])
		nftw(c->dir, app_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	c->dir[0] = '\0';
}

/* Start the driver and wait for its CnC file: 0, or negative errno. */
static int app_prepare(void *ctx, const struct pp_opts *o)
{
	struct app_ctx *c = ctx;
	char cnc[320], dir_def[320];
	struct stat st;
	uint64_t t0;
	pid_t self = getpid(), pid;
	int status;

	snprintf(c->dir, sizeof(c->dir), "%s/hbus-bench-aeron-XXXXXX",
		 o->shm_dir ? o->shm_dir : "/dev/shm");
	if (!mkdtemp(c->dir)) {
		int rc = -errno;
		c->dir[0] = '\0';
		return rc;
	}
	snprintf(cnc, sizeof(cnc), "%s/cnc.dat", c->dir);
	snprintf(dir_def, sizeof(dir_def), "-Daeron.dir=%s", c->dir);
	fflush(NULL);
	/* ctx is shared memory: only the parent may store the pid in it. */
	pid = fork();
	if (pid == 0)
		app_exec_driver(dir_def, self);
	if (pid < 0) {
		int rc = -errno;
		app_cleanup(c);
		return rc;
	}
	c->driver = pid;
	/* The clients wait for the driver's heartbeat themselves; here only
	 * fail fast when the driver dies at start instead of timing out. */
	for (t0 = bench_mono_ns(); stat(cnc, &st) != 0 || st.st_size == 0; app_nap()) {
		if (waitpid(c->driver, &status, WNOHANG) == c->driver) {
			fprintf(stderr, "hbus-bench: aeron: %s %s %d at start\n", HBUS_BENCH_AERONMD,
				WIFEXITED(status) ? "exited with status" : "killed by signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			c->driver = 0;
			app_cleanup(c);
			return -ECHILD;
		}
		if (bench_mono_ns() - t0 > APP_DEADLINE_NS) {
			fprintf(stderr, "hbus-bench: aeron: no %s after 10 s\n", cnc);
			app_cleanup(c);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

static void app_on_fragment(void *clientd, const uint8_t *buf, size_t len, aeron_header_t *hdr)
{
	struct app_rx *rx = clientd;

	(void)hdr;
	if (len != rx->want) {
		rx->bad = 1;
		return;
	}
	memcpy(rx->dst, buf, len);
	rx->got = 1;
}

static void app_close(void *ctx, int side)
{
	struct app_side *s = &((struct app_ctx *)ctx)->side[side];

	if (s->sub)
		aeron_subscription_close(s->sub, NULL, NULL);
	if (s->pub)
		aeron_exclusive_publication_close(s->pub, NULL, NULL);
	if (s->client)
		aeron_close(s->client);
	if (s->actx)
		aeron_context_close(s->actx);
	if (s->assembler)
		aeron_fragment_assembler_delete(s->assembler);
	memset(s, 0, sizeof(*s));
}

/* Add this side's publication and subscription and wait until both exist;
 * the pinger (side 0, which opens after the echoer) also waits until both
 * are connected, so the first round trip does not include the hook-up. */
static int app_connect(struct app_side *s, int side)
{
	aeron_async_add_exclusive_publication_t *apub;
	aeron_async_add_subscription_t *asub;
	int32_t tx = side == 0 ? APP_STREAM_PING : APP_STREAM_PONG;
	int32_t rx = side == 0 ? APP_STREAM_PONG : APP_STREAM_PING;
	uint64_t t0 = bench_mono_ns();
	int rp = 0, rs = 0;

	if (aeron_async_add_exclusive_publication(&apub, s->client, APP_URI, tx) < 0)
		return app_fail("add publication");
	if (aeron_async_add_subscription(&asub, s->client, APP_URI, rx, NULL, NULL, NULL, NULL) < 0)
		return app_fail("add subscription");
	while (rp == 0 || rs == 0) {
		if (rp == 0 && (rp = aeron_async_add_exclusive_publication_poll(&s->pub, apub)) < 0)
			return app_fail("add publication");
		if (rs == 0 && (rs = aeron_async_add_subscription_poll(&s->sub, asub)) < 0)
			return app_fail("add subscription");
		if (bench_mono_ns() - t0 > APP_DEADLINE_NS)
			return -ETIMEDOUT;
		if (rp == 0 || rs == 0)
			app_nap();
	}
	while (side == 0 && !(aeron_exclusive_publication_is_connected(s->pub) &&
			      aeron_subscription_is_connected(s->sub))) {
		if (bench_mono_ns() - t0 > APP_DEADLINE_NS) {
			fprintf(stderr, "hbus-bench: aeron: the echoer did not connect in 10 s\n");
			return -ETIMEDOUT;
		}
		app_nap();
	}
	return 0;
}

static int app_open(void *ctx, int side)
{
	struct app_ctx *c = ctx;
	struct app_side *s = &c->side[side];
	int rc;

	if (aeron_context_init(&s->actx) < 0)
		return app_fail("client context");
	/* Pre-touched client mappings: MAP_POPULATE on every log it maps. */
	if (aeron_context_set_dir(s->actx, c->dir) < 0 ||
	    aeron_context_set_pre_touch_mapped_memory(s->actx, true) < 0) {
		rc = app_fail("client context");
		goto fail;
	}
	if (aeron_init(&s->client, s->actx) < 0 || aeron_start(s->client) < 0) {
		rc = app_fail("client start");
		goto fail;
	}
	if (aeron_fragment_assembler_create(&s->assembler, app_on_fragment, &s->rx) < 0) {
		rc = app_fail("fragment assembler");
		goto fail;
	}
	rc = app_connect(s, side);
	if (rc == 0)
		return 0;
fail:
	app_close(ctx, side);
	return rc;
}

static int app_send(void *ctx, int side, const void *buf, size_t len)
{
	struct app_side *s = &((struct app_ctx *)ctx)->side[side];
	uint64_t t0 = 0;

	for (unsigned spins = 1;; spins++) {
		int64_t r = aeron_exclusive_publication_offer(s->pub, buf, len, NULL, NULL);

		if (r > 0)
			return 0;
		if (r != AERON_PUBLICATION_BACK_PRESSURED && r != AERON_PUBLICATION_ADMIN_ACTION &&
		    r != AERON_PUBLICATION_NOT_CONNECTED) {
			fprintf(stderr, "hbus-bench: aeron: offer failed (%lld): %s\n", (long long)r,
				aeron_errmsg());
			return -EIO;
		}
		if (spins % APP_SPIN_CHECK == 0) {
			uint64_t now = bench_mono_ns();
			if (t0 == 0)
				t0 = now;
			else if (now - t0 > APP_DEADLINE_NS)
				return r == AERON_PUBLICATION_NOT_CONNECTED ? -ENOTCONN : -ETIMEDOUT;
		}
	}
}

static int app_try_recv(void *ctx, int side, void *buf, size_t len)
{
	struct app_side *s = &((struct app_ctx *)ctx)->side[side];
	int n;

	s->rx.dst = buf;
	s->rx.want = len;
	s->rx.got = 0;
	n = aeron_subscription_poll(s->sub, aeron_fragment_assembler_handler, s->assembler, 1);
	if (n < 0)
		return app_fail("poll");
	if (s->rx.bad)
		return -EBADMSG;
	return s->rx.got;
}

const struct pp_ops pp_aeron_ops = {
	.name = "aeron",
	.threads = false,
	.ctx_size = sizeof(struct app_ctx),
	.prepare = app_prepare,
	.open = app_open,
	.send = app_send,
	.try_recv = app_try_recv,
	.close = app_close,
	.cleanup = app_cleanup,
};
#else
/* Built without -Daeron=DIR: compare skips the aeron row. */
typedef int pp_aeron_unavailable;
#endif
