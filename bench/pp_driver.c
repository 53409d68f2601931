/*
 * pp_driver.c - the one ping-pong loop every transport is measured with.
 *
 * The pinger (calling process, cpu A) and the echoer (forked process or
 * thread, cpu B) share a control block and the transport context in one
 * MAP_SHARED anonymous mapping, so the same code works for both.  Both
 * sides busy-poll try_recv; the stop flag and the timeout are looked at
 * only every few thousand empty polls so they cost nothing per message.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "pp.h"

#define PP_TIMEOUT_NS   (10ull * 1000000000ull) /* no reply / peer not ready */
#define PP_CHECK_EVERY  4096u                   /* empty polls between checks */

/* Shared between the two sides; fields written by different sides sit in
 * different cache lines. */
struct pp_ctl {
	alignas(128) _Atomic int ready;    /* echoer: 1 = open, -1 = failed */
	alignas(128) _Atomic int stop;     /* pinger: done, echoer should exit */
	alignas(128) _Atomic int peer_rc;  /* echoer's result */
};

struct pp_run_state {
	const struct pp_ops *ops;
	const struct pp_opts *o;
	struct pp_ctl *ctl;
	void *ctx;
};

const char *const pp_all_names[] = {
	"cacheline", "cacheline2", "slotring", "shm", "shm-x", "shm-p", "uds", "udp", "zmq", "aeron", "amqp",
	"rabbitmq", NULL,
};

int pp_open_nothing(void *ctx, int side)
{
	(void)ctx;
	(void)side;
	return 0;
}

void pp_close_nothing(void *ctx, int side)
{
	(void)ctx;
	(void)side;
}

void pp_cleanup_nothing(void *ctx)
{
	(void)ctx;
}

const struct pp_ops *pp_find(const char *name)
{
	static const struct pp_ops *const all[] = {
		&pp_cacheline_ops, &pp_cacheline2_ops, &pp_slotring_ops, &pp_shm_ops, &pp_shm_x_ops, &pp_shm_p_ops,
		&pp_uds_ops, &pp_udp_ops,
#ifdef HBUS_BENCH_ZMQ
		&pp_zmq_ops,
#endif
#ifdef HBUS_BENCH_AERON
		&pp_aeron_ops,
#endif
#ifdef HBUS_BENCH_AMQP
		&pp_amqp_ops, &pp_rabbitmq_ops,
#endif
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(all[i]->name, name))
			return all[i];
	return NULL;
}

const char *pp_unavailable(const char *name)
{
	if (pp_find(name))
		return NULL;
	if (!strcmp(name, "zmq"))
		return "hbus-bench was built without libzmq (apt-get install libzmq3-dev, then reconfigure)";
	if (!strcmp(name, "aeron"))
		return "hbus-bench was built without -Daeron=DIR (an Aeron C build: docs/BENCHMARKS.md)";
	if (!strcmp(name, "amqp") || !strcmp(name, "rabbitmq"))
		return "hbus-bench was built without librabbitmq (apt-get install librabbitmq-dev, then reconfigure)";
	return NULL;
}

const char *pp_check_opts(const struct pp_opts *o)
{
	if (o->size < PP_MSG_MIN || o->size > PP_MSG_MAX)
		return "--size must be 8..65000 bytes";
	if (o->count == 0)
		return "--count must be at least 1";
	if (o->cpu_a == o->cpu_b)
		return "--cpus needs two different cpus";
	return NULL;
}

/* Side 1: send back everything received until told to stop. */
static int echo_loop(const struct pp_run_state *st)
{
	const struct pp_ops *ops = st->ops;
	struct pp_ctl *ctl = st->ctl;
	uint8_t *buf;
	unsigned idle = 0;
	int rc;

	if (bench_pin_cpu(st->o->cpu_b) != 0)
		fprintf(stderr, "hbus-bench: cannot pin the echoer to cpu %d\n", st->o->cpu_b);
	buf = aligned_alloc(64, (st->o->size + 63u) & ~63u);
	rc = buf ? ops->open(st->ctx, 1) : -ENOMEM;
	if (rc) {
		atomic_store(&ctl->peer_rc, rc);
		atomic_store(&ctl->ready, -1);
		free(buf);
		return rc;
	}
	atomic_store(&ctl->ready, 1);
	for (;;) {
		rc = ops->try_recv(st->ctx, 1, buf, st->o->size);
		if (rc > 0) {
			rc = ops->send(st->ctx, 1, buf, st->o->size);
			if (rc)
				break;
			idle = 0;
			continue;
		}
		if (rc < 0)
			break;
		if (++idle % PP_CHECK_EVERY == 0 && atomic_load_explicit(&ctl->stop, memory_order_relaxed))
			break;
	}
	ops->close(st->ctx, 1);
	free(buf);
	atomic_store(&ctl->peer_rc, rc);
	return rc;
}

static void *echo_thread(void *arg)
{
	echo_loop(arg);
	return NULL;
}

/* Wait for the echoer to be ready: 0, or its error / -ETIMEDOUT. */
static int wait_ready(struct pp_ctl *ctl, pid_t child)
{
	uint64_t t0 = bench_mono_ns();

	for (;;) {
		int r = atomic_load(&ctl->ready);
		if (r == 1)
			return 0;
		if (r < 0)
			return atomic_load(&ctl->peer_rc);
		if (child > 0 && waitpid(child, NULL, WNOHANG) == child)
			return -ECHILD;
		if (bench_mono_ns() - t0 > PP_TIMEOUT_NS)
			return -ETIMEDOUT;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL); /* 2 cpus: let the echoer start */
	}
}

/* Side 0: the measured loop. */
static int ping_loop(const struct pp_run_state *st, struct hist *h)
{
	const struct pp_ops *ops = st->ops;
	const struct pp_opts *o = st->o;
	uint64_t total = o->warmup + o->count, start = 0;
	uint8_t *buf = aligned_alloc(64, (o->size + 63u) & ~63u);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->size; i++)
		buf[i] = (uint8_t)i;
	for (uint64_t i = 0; i < total && rc == 0; i++) {
		uint64_t seq = i + 1, got, t0, t1, from = 0;
		unsigned idle = 0;

		if (o->rate && i >= o->warmup) {
			uint64_t k = i - o->warmup;
			if (k == 0)
				start = bench_now_ns();
			/* Intended send time of message k; the loop keeps to the
			 * schedule even when it falls behind. */
			from = start + (uint64_t)((unsigned __int128)k * 1000000000u / o->rate);
			while (bench_now_ns() < from)
				bench_cpu_relax();
		}
		memcpy(buf, &seq, sizeof(seq));
		t0 = bench_now_ns();
		rc = ops->send(st->ctx, 0, buf, o->size);
		if (rc)
			break;
		while ((rc = ops->try_recv(st->ctx, 0, buf, o->size)) == 0) {
			if (++idle % PP_CHECK_EVERY == 0) {
				if (bench_now_ns() - t0 > PP_TIMEOUT_NS) {
					rc = -ETIMEDOUT;
					break;
				}
				if (atomic_load_explicit(&st->ctl->peer_rc, memory_order_relaxed)) {
					rc = atomic_load(&st->ctl->peer_rc);
					break;
				}
			}
		}
		if (rc < 0)
			break;
		t1 = bench_now_ns();
		rc = 0;
		memcpy(&got, buf, sizeof(got));
		if (got != seq) {
			fprintf(stderr, "hbus-bench: %s: reply carries sequence %" PRIu64
				", expected %" PRIu64 "\n", ops->name, got, seq);
			rc = -EBADMSG;
			break;
		}
		if (i >= o->warmup)
			hist_record(h, t1 - (o->rate ? from : t0));
	}
	free(buf);
	return rc;
}

int pp_run(const struct pp_ops *ops, const struct pp_opts *o, struct hist *h)
{
	size_t ctl_len = (sizeof(struct pp_ctl) + 4095u) & ~(size_t)4095u;
	size_t len = ctl_len + ((ops->ctx_size + 4095u) & ~(size_t)4095u);
	struct pp_run_state st = { .ops = ops, .o = o };
	pthread_t thr;
	pid_t child = -1;
	int rc, peer;

	bench_clock_init();
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	st.ctl = mem;
	st.ctx = (uint8_t *)mem + ctl_len;
	rc = ops->prepare(st.ctx, o);
	if (rc) {
		fprintf(stderr, "hbus-bench: %s: setup failed: %s\n", ops->name, strerror(-rc));
		munmap(mem, len);
		return rc;
	}
	if (bench_pin_cpu(o->cpu_a) != 0)
		fprintf(stderr, "hbus-bench: cannot pin the pinger to cpu %d\n", o->cpu_a);
	if (ops->threads) {
		rc = -pthread_create(&thr, NULL, echo_thread, &st);
	} else {
		pid_t self = getpid();
		fflush(NULL);
		child = fork();
		if (child == 0) {
			/* A killed pinger takes its echoer with it: nothing
			 * else would ever tell it to stop spinning. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != self)
				_exit(1);
			_exit(echo_loop(&st) ? 1 : 0);
		}
		rc = child < 0 ? -errno : 0;
	}
	if (rc) {
		ops->cleanup(st.ctx);
		munmap(mem, len);
		return rc;
	}
	rc = wait_ready(st.ctl, child);
	if (rc == 0) {
		rc = ops->open(st.ctx, 0);
		if (rc == 0) {
			rc = ping_loop(&st, h);
			ops->close(st.ctx, 0);
		}
	}
	atomic_store(&st.ctl->stop, 1);
	if (ops->threads) {
		pthread_join(thr, NULL);
	} else {
		int status;
		uint64_t t0 = bench_mono_ns();
		/* An echoer stuck in a transport call is killed, not awaited. */
		while (waitpid(child, &status, WNOHANG) == 0) {
			if (bench_mono_ns() - t0 > PP_TIMEOUT_NS / 5) {
				kill(child, SIGKILL);
				waitpid(child, &status, 0);
				break;
			}
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
	peer = atomic_load(&st.ctl->peer_rc);
	if (rc == 0 && peer)
		rc = peer;
	if (rc)
		fprintf(stderr, "hbus-bench: %s: ping-pong failed: %s\n", ops->name, strerror(-rc));
	ops->cleanup(st.ctx);
	munmap(mem, len);
	return rc;
}
