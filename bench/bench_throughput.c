/*
 * bench_throughput.c - `hbus-bench throughput`: one producer process, one
 * consumer process, one hbus queue ring, as many messages as fit in S
 * seconds.
 *
 *   hbus-bench throughput --size 32 --seconds 5 --cpus 0,1 [--burst 32] [--json]
 *
 * The producer enqueues bursts (hbus_queue_enqueue_burst) and retries the
 * rest of a burst, after a pause, when the ring is full; the consumer claims bursts
 * (consume_burst), checks that every sequence number is the next one and
 * returns the slots (ack_burst, auto-ack mode).  The rate is the consumer's
 * count over the consumer's time from the first to the last message.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "gaps.h"
#include "hbus.h"

#define TP_BURST_MAX 1024u
#define TP_CAPACITY  4096u
#define TP_MAX_GAPS  100000u
#define TP_FULL_PAUSES 512     /* producer's wait when the ring is full */

struct tp_opts {
	uint32_t size, burst;
	uint64_t seconds;
	int cpu_prod, cpu_cons;
	const char *shm_dir;
	bool json;
	uint32_t flags;   /* --exclusive: HBUS_PRODUCE_EXCLUSIVE and HBUS_CONSUME_EXCLUSIVE */
};

/* Shared by the two processes. */
struct tp_ctl {
	alignas(128) _Atomic int cons_ready;
	alignas(128) _Atomic int go;
	alignas(128) _Atomic uint64_t produced; /* final count, then done = 1 */
	_Atomic int prod_done;
	alignas(128) _Atomic int cons_rc;
	uint64_t consumed, elapsed_ns, bad_seq;
	uint64_t cons_calls, cons_empty;  /* consume_burst calls, of which empty */
	uint64_t prod_full;               /* enqueue_burst calls that found the ring full */
	uint64_t t_first, t_last;         /* consumer's first and last message */
	struct gaps prod_gaps, cons_gaps; /* when each side was off-cpu */
	uint64_t prod_wait, cons_wait;    /* of which waiting behind other processes */
	struct gap gap_store[2][TP_MAX_GAPS];
};

static void tp_usage(FILE *f)
{
	fprintf(f, "usage: hbus-bench throughput [--size B] [--seconds S] [--cpus A,B] [--burst N]\n"
		   "                             [--shm-dir DIR] [--exclusive] [--json]\n"
		   "  producer on cpu A, consumer on cpu B (default 0,1); size >= 8 (default 32);\n"
		   "  seconds default 5; burst default 32 (1..%u)\n", TP_BURST_MAX);
}

static int tp_parse(int argc, char **argv, struct tp_opts *o)
{
	enum { O_SIZE = 256, O_SECONDS, O_CPUS, O_BURST, O_SHMDIR, O_JSON, O_EXCL, O_HELP };
	static const struct option opts[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "burst", required_argument, NULL, O_BURST },
		{ "shm-dir", required_argument, NULL, O_SHMDIR },
		{ "json", no_argument, NULL, O_JSON },
		{ "exclusive", no_argument, NULL, O_EXCL },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	*o = (struct tp_opts){ .size = 32, .burst = 32, .seconds = 5, .cpu_prod = 0, .cpu_cons = 1 };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_SIZE:
			if (bench_parse_u64(optarg, &v) || v < 8 || v > HBUS_SLOT_SIZE_MAX)
				return bench_usage_error(argv[0], "--size must be 8..%u", HBUS_SLOT_SIZE_MAX);
			o->size = (uint32_t)v;
			break;
		case O_SECONDS:
			if (bench_parse_u64(optarg, &o->seconds) || o->seconds == 0 || o->seconds > 3600)
				return bench_usage_error(argv[0], "--seconds must be 1..3600");
			break;
		case O_CPUS:
			if (bench_parse_cpus(optarg, &o->cpu_prod, &o->cpu_cons) || o->cpu_prod == o->cpu_cons)
				return bench_usage_error(argv[0], "--cpus wants two different cpus, e.g. 0,1");
			break;
		case O_BURST:
			if (bench_parse_u64(optarg, &v) || v < 1 || v > TP_BURST_MAX)
				return bench_usage_error(argv[0], "--burst must be 1..%u", TP_BURST_MAX);
			o->burst = (uint32_t)v;
			break;
		case O_SHMDIR:
			o->shm_dir = optarg;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_EXCL:
			o->flags = HBUS_PRODUCE_EXCLUSIVE | HBUS_CONSUME_EXCLUSIVE;
			break;
		case O_HELP:
			tp_usage(stdout);
			return 1;
		default:
			return bench_usage_error(argv[0], "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* Consumer process: count and check until the producer's final count. */
static int consumer(int fd, const struct tp_opts *o, struct tp_ctl *ctl)
{
	struct hbus_queue_opts qo = { .owner = 2, .ack_mode = HBUS_ACK_AUTO, .flags = o->flags };
	struct hbus_msg *m = calloc(o->burst, sizeof(*m));
	uint64_t next = 0, bad = 0, t_first = 0, t_last = 0, target = UINT64_MAX;
	uint64_t calls = 0, empty = 0;
	hbus_queue *q = NULL;
	int rc;

	bench_pin_cpu(o->cpu_cons);
	rc = m ? hbus_queue_open_fd(fd, &qo, &q) : -ENOMEM;
	atomic_store(&ctl->cons_ready, rc ? -1 : 1);
	if (rc)
		goto out;
	uint64_t wait0 = gaps_guest_wait_ns();
	uint64_t prev = bench_now_ns();
	while (next < target) {
		int n = hbus_queue_consume_burst(q, m, o->burst);
		uint64_t now = bench_now_ns();
		gaps_note(&ctl->cons_gaps, prev, now);
		prev = now;
		calls++;
		if (n <= 0) {
			empty++;
			if (n < 0) {
				rc = n;
				break;
			}
			if (target == UINT64_MAX && atomic_load_explicit(&ctl->prod_done, memory_order_acquire))
				target = atomic_load(&ctl->produced);
			continue;
		}
		if (next == 0)
			t_first = now;
		for (int i = 0; i < n; i++) {
			uint64_t seq;
			memcpy(&seq, m[i].body, sizeof(seq));
			if (seq != next || m[i].body_len != o->size)
				bad++;
			next = seq + 1; /* resynchronise so one gap counts once */
		}
		hbus_queue_ack_burst(q, m, (unsigned)n);
		t_last = now;
	}
	ctl->consumed = next;
	ctl->elapsed_ns = t_last - t_first;
	ctl->t_first = t_first;
	ctl->cons_wait = gaps_guest_wait_ns() - wait0;
	ctl->t_last = t_last;
	ctl->bad_seq = bad;
	ctl->cons_calls = calls;
	ctl->cons_empty = empty;
out:
	if (q)
		hbus_queue_close(q);
	free(m);
	atomic_store(&ctl->cons_rc, rc ? rc : (bad ? -EBADMSG : 0));
	return rc;
}

/* Producer (the parent): bursts until the time is up. */
static int producer(int fd, const struct tp_opts *o, struct tp_ctl *ctl, pid_t child)
{
	struct hbus_queue_opts qo = { .owner = 1, .ack_mode = HBUS_ACK_AUTO, .flags = o->flags };
	struct hbus_out *out = calloc(o->burst, sizeof(*out));
	uint8_t *bodies = calloc(o->burst, o->size);
	uint64_t seq = 0, end, full = 0;
	hbus_queue *q = NULL;
	unsigned spins = 0;
	int rc;

	bench_pin_cpu(o->cpu_prod);
	rc = out && bodies ? hbus_queue_open_fd(fd, &qo, &q) : -ENOMEM;
	while (rc == 0 && atomic_load(&ctl->cons_ready) == 0) {
		if (waitpid(child, NULL, WNOHANG) == child)
			rc = -ECHILD;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	if (rc == 0 && atomic_load(&ctl->cons_ready) < 0)
		rc = atomic_load(&ctl->cons_rc);
	if (rc)
		goto out;
	for (unsigned i = 0; i < o->burst; i++) {
		memset(bodies + (size_t)i * o->size, (int)i, o->size);
		out[i] = (struct hbus_out){ .body = bodies + (size_t)i * o->size, .body_len = o->size };
	}
	uint64_t wait0 = gaps_guest_wait_ns();
	uint64_t prev = bench_now_ns();
	end = prev + o->seconds * 1000000000u;
	while (rc == 0) {
		for (unsigned i = 0; i < o->burst; i++) {
			uint64_t s = seq + i;
			memcpy(bodies + (size_t)i * o->size, &s, sizeof(s));
		}
		unsigned done = 0;
		while (done < o->burst) {
			int n = hbus_queue_enqueue_burst(q, out + done, o->burst - done);
			uint64_t now = bench_now_ns();
			gaps_note(&ctl->prod_gaps, prev, now);
			prev = now;
			if (n > 0) {
				done += (unsigned)n;
			} else if (full++, n != -ENOBUFS) {
				rc = n;
				break;
			} else if (++spins % 4096 == 0 && atomic_load(&ctl->cons_rc)) {
				rc = atomic_load(&ctl->cons_rc); /* the consumer gave up */
				break;
			} else {
				/* Full: wait for the consumer to free a batch
				 * (~10 us).  Polling again at once pulls in the
				 * very slot lines it is about to free and slows
				 * it down (docs/BENCHMARKS.md, "Full-ring retries"). */
				for (int k = 0; k < TP_FULL_PAUSES; k++)
					bench_cpu_relax();
			}
		}
		seq += done;
		if (prev >= end)
			break;
	}
	ctl->prod_wait = gaps_guest_wait_ns() - wait0;
out:
	ctl->prod_full = full;
	atomic_store(&ctl->produced, seq);
	atomic_store_explicit(&ctl->prod_done, 1, memory_order_release);
	if (q)
		hbus_queue_close(q);
	free(out);
	free(bodies);
	return rc;
}

static void tp_report(const struct tp_opts *o, const struct tp_ctl *ctl)
{
	double secs = (double)ctl->elapsed_ns / 1e9;
	double mps = secs > 0 ? (double)ctl->consumed / secs : 0;
	double both = gaps_both_running(&ctl->prod_gaps, &ctl->cons_gaps, ctl->t_first, ctl->t_last);

	if (o->json) {
		struct bench_json j;
		bench_json_begin(&j, stdout);
		bench_json_u64(&j, "size", o->size);
		bench_json_u64(&j, "burst", o->burst);
		bench_json_dbl(&j, "seconds", secs);
		bench_json_u64(&j, "msgs", ctl->consumed);
		bench_json_dbl(&j, "msgs_per_s", mps);
		bench_json_dbl(&j, "bytes_per_s", mps * o->size);
		bench_json_dbl(&j, "both_running_fraction", both);
		bench_json_end(&j);
		return;
	}
	printf("throughput: %u-byte messages, bursts of %u, producer cpu %d -> consumer cpu %d\n",
	       o->size, o->burst, o->cpu_prod, o->cpu_cons);
	printf("%" PRIu64 " messages in %.3f s: %.2f M msgs/s, %.1f MB/s (sequence checked)\n",
	       ctl->consumed, secs, mps / 1e6, mps * o->size / 1e6);
	printf("consumer: %.1f messages per non-empty burst, %.1f%% of polls empty;"
	       " producer: %" PRIu64 " bursts found the ring full\n",
	       ctl->cons_calls > ctl->cons_empty
		       ? (double)ctl->consumed / (double)(ctl->cons_calls - ctl->cons_empty) : 0.0,
	       ctl->cons_calls ? 100.0 * (double)ctl->cons_empty / (double)ctl->cons_calls : 0.0,
	       ctl->prod_full);
	double el = ctl->elapsed_ns ? (double)ctl->elapsed_ns : 1.0;
	printf("off-cpu: producer %.1f%% (%.1f%% behind other processes), consumer %.1f%% (%.1f%%);"
	       " both running %.1f%% of the run\n", 100.0 * (double)ctl->prod_gaps.lost / el,
	       100.0 * (double)ctl->prod_wait / el, 100.0 * (double)ctl->cons_gaps.lost / el,
	       100.0 * (double)ctl->cons_wait / el, 100.0 * both);
}

int bench_throughput_main(int argc, char **argv)
{
	struct tp_opts o;
	struct tp_ctl *ctl;
	int rc, fd, status = 0;
	pid_t child;

	rc = tp_parse(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	bench_clock_init();
	rc = bench_shm_queue_create(o.shm_dir, "throughput", TP_CAPACITY, o.size, 0, &fd);
	if (rc) {
		fprintf(stderr, "hbus-bench throughput: cannot create the queue: %s\n", strerror(-rc));
		return 1;
	}
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED) {
		close(fd);
		return 1;
	}
	ctl->prod_gaps = (struct gaps){ .cap = TP_MAX_GAPS, .v = ctl->gap_store[0] };
	ctl->cons_gaps = (struct gaps){ .cap = TP_MAX_GAPS, .v = ctl->gap_store[1] };
	fflush(NULL);
	child = fork();
	if (child == 0)
		_exit(consumer(fd, &o, ctl) ? 1 : 0);
	if (child < 0) {
		rc = -errno;
	} else {
		rc = producer(fd, &o, ctl, child);
		if (rc)
			kill(child, SIGKILL); /* it waits for a count that may never come */
		waitpid(child, &status, 0);
		if (rc == 0 && atomic_load(&ctl->cons_rc))
			rc = atomic_load(&ctl->cons_rc);
	}
	if (rc == 0 && ctl->consumed != atomic_load(&ctl->produced))
		rc = -EBADMSG;
	if (rc)
		fprintf(stderr, "hbus-bench throughput: failed: %s (produced %" PRIu64 ", consumed %"
			PRIu64 ", %" PRIu64 " out of sequence)\n", strerror(-rc),
			atomic_load(&ctl->produced), ctl->consumed, ctl->bad_seq);
	else
		tp_report(&o, ctl);
	munmap(ctl, sizeof(*ctl));
	close(fd);
	return rc ? 1 : 0;
}
