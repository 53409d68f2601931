/*
 * amqp_tp_run.c - one run of `hbus-bench amqp-throughput` (amqp_tp.h):
 * the messages (an id, bytes derived from it, a checksum), the consumer
 * process that checks them, and the publisher with its confirm window.
 */
#ifdef HBUS_BENCH_AMQP
#include <amqp.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amqp_tp.h"
#include "bench.h"

#define TP_IDLE_S 10             /* a consumer that got nothing this long stops */

/* What the consumer process reports (shared, anonymous mapping). */
struct atp_shared {
	_Atomic int ready;           /* 1 subscribed, -1 failed */
	_Atomic int pub_done;        /* the publisher's final count is in expect */
	_Atomic uint64_t expect;
	uint64_t consumed, bad, dups, t_last;
	int rc;
};

/* ------------------------------------------------------------ messages */

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Checksum of n bytes, 8 at a time (n is size - 8). */
static uint64_t body_sum(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return mix(h);
}

/* id (8 bytes), bytes derived from it, checksum of all that (8 bytes). */
static void body_fill(uint8_t *p, uint32_t size, uint64_t id)
{
	uint64_t w, sum;
	size_t i;

	memcpy(p, &id, 8);
	for (i = 8; i + 8 <= size - 8u; i += 8) {
		w = mix(id * 0x9e3779b97f4a7c15ull + i);
		memcpy(p + i, &w, 8);
	}
	for (; i < size - 8u; i++)
		p[i] = (uint8_t)(id + i);
	sum = body_sum(p, size - 8u);
	memcpy(p + size - 8, &sum, 8);
}

static const char *qname(char *buf, size_t cap)
{
	snprintf(buf, cap, "hbus.bench.tp.%d", (int)getpid());
	return buf;
}

static int declare(amqp_connection_state_t c, const char *q, const struct atp_opts *o)
{
	amqp_table_entry_t e[3] = {
		{ .key = amqp_cstring_bytes("x-max-length"),
		  .value = { .kind = AMQP_FIELD_KIND_I64, .value.i64 = (int64_t)o->count } },
		{ .key = amqp_cstring_bytes("x-overflow"),
		  .value = { .kind = AMQP_FIELD_KIND_UTF8,
			     .value.bytes = amqp_cstring_bytes("reject-publish") } },
		{ .key = amqp_cstring_bytes("x-hbus-slot-size"),
		  .value = { .kind = AMQP_FIELD_KIND_I64, .value.i64 = o->size + TP_SLOT_EXTRA } },
	};
	amqp_table_t args = { .num_entries = 3, .entries = e };

	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 0, 0, 0, args);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		return -EPROTO;
	amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
	return amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -EPROTO;
}

/* ------------------------------------------------------------ consumer */

/* The consumer process: subscribe, then check every message until all
 * the publisher says were taken have come, or nothing came for a while. */
static int consumer(int port, const struct atp_opts *o, struct atp_shared *sh, const char *q)
{
	amqp_connection_state_t c = amqp_bench_connect(port);
	uint8_t *seen = calloc(o->count, 1);
	uint64_t last = bench_mono_ns();
	struct timeval tv = { 0, 200000 };
	int rc = -EPROTO;

	if (!c || !seen || declare(c, q, o))
		goto out;
	amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		goto out;
	atomic_store(&sh->ready, 1);
	rc = 0;
	for (;;) {
		amqp_envelope_t e;
		amqp_rpc_reply_t r;
		uint64_t id, sum, now;

		if (atomic_load(&sh->pub_done) &&
		    sh->consumed + sh->bad >= atomic_load(&sh->expect))
			break;
		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &e, &tv, 0);
		now = bench_mono_ns();
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT) {
			if (now - last > TP_IDLE_S * 1000000000ull)
				break; /* what is missing is lost */
			continue;
		}
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			rc = -EIO;
			break;
		}
		last = now;
		if (e.message.body.len != o->size) {
			sh->bad++;
		} else {
			const uint8_t *b = e.message.body.bytes;
			memcpy(&id, b, 8);
			memcpy(&sum, b + o->size - 8, 8);
			if (id >= o->count || sum != body_sum(b, o->size - 8u))
				sh->bad++;
			else if (seen[id])
				sh->dups++;
			else {
				seen[id] = 1;
				sh->consumed++;
				sh->t_last = now;
			}
		}
		amqp_destroy_envelope(&e);
	}
	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
out:
	if (atomic_load(&sh->ready) == 0)
		atomic_store(&sh->ready, -1);
	amqp_bench_close(c);
	free(seen);
	return rc;
}

/* ----------------------------------------------------------- publisher */

struct confirms {
	uint8_t *done;          /* [count + 1]: seq confirmed (acked or nacked) */
	uint64_t low;           /* lowest seq not confirmed */
	uint64_t acked, nacked, bad;
};

static void settle(struct confirms *cf, uint64_t published, uint64_t tag, bool multiple, bool ack)
{
	uint64_t s;

	if (tag > published || (!multiple && tag == 0)) {
		cf->bad++;
		return;
	}
	for (s = multiple ? cf->low : tag; s <= tag; s++)
		if (!cf->done[s]) {
			cf->done[s] = 1;
			if (ack)
				cf->acked++;
			else
				cf->nacked++;
		}
	while (cf->low <= published && cf->done[cf->low])
		cf->low++;
}

/* Read frames until fewer than max are unconfirmed: 0 or -EIO. */
static int wait_confirms(amqp_connection_state_t c, struct confirms *cf, uint64_t published,
			 uint64_t max)
{
	while (published - cf->acked - cf->nacked > max) {
		struct timeval tv = { 30, 0 };
		amqp_frame_t f;

		amqp_maybe_release_buffers(c);
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			return -EIO;
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			settle(cf, published, a->delivery_tag, a->multiple, true);
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			amqp_basic_nack_t *n = f.payload.method.decoded;
			settle(cf, published, n->delivery_tag, n->multiple, false);
		} else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
			   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
			return -EIO;
		}
	}
	return 0;
}

int amqp_tp_run(enum amqp_broker_kind k, int port, bool confirm, const struct atp_opts *o,
		struct atp_run *run)
{
	struct atp_shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	amqp_connection_state_t c = NULL;
	struct confirms cf = { .low = 1 };
	uint8_t *body = malloc(o->size);
	char q[64];
	uint64_t t0, t1, i;
	pid_t child;
	int rc = 0, st;

	memset(run, 0, sizeof(*run));
	cf.done = calloc(o->count + 1, 1);
	if (!body || !cf.done || sh == MAP_FAILED) {
		free(body);
		free(cf.done);
		if (sh != MAP_FAILED)
			munmap(sh, sizeof(*sh));
		return -ENOMEM;
	}
	qname(q, sizeof(q));
	fflush(NULL);
	child = fork();
	if (child == 0)
		_exit(consumer(port, o, sh, q) ? 1 : 0);
	if (child < 0) {
		rc = -errno;
		goto out;
	}
	for (i = 0; atomic_load(&sh->ready) == 0 && i < 60000; i++)
		usleep(1000);
	if (atomic_load(&sh->ready) != 1) {
		fprintf(stderr, "hbus-bench amqp-throughput: %s: the consumer could not subscribe\n",
			amqp_broker_name(k));
		rc = -EPROTO;
		goto out;
	}
	c = amqp_bench_connect(port);
	if (!c || (confirm && (amqp_confirm_select(c, 1),
			       amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL))) {
		rc = -ECONNREFUSED;
		goto out;
	}
	t0 = bench_mono_ns();
	for (i = 0; i < o->count && rc == 0; i++) {
		body_fill(body, o->size, i);
		if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, NULL,
				       (amqp_bytes_t){ o->size, body })) {
			rc = -EIO;
			break;
		}
		run->published++;
		if (confirm && run->published - cf.acked - cf.nacked >= o->window)
			rc = wait_confirms(c, &cf, run->published, o->window - 1);
	}
	if (confirm && rc == 0)
		rc = wait_confirms(c, &cf, run->published, 0);
	t1 = bench_mono_ns();
	run->acked = cf.acked;
	run->nacked = cf.nacked;
	run->pub_rate = t1 > t0 ? (double)run->published * 1e9 / (double)(t1 - t0) : 0;
	atomic_store(&sh->expect, run->published - cf.nacked);
	atomic_store(&sh->pub_done, 1);
	if (rc)
		fprintf(stderr, "hbus-bench amqp-throughput: %s: publishing failed after %llu "
			"messages\n", amqp_broker_name(k), (unsigned long long)run->published);
	if (waitpid(child, &st, 0) == child)
		child = 0;
	run->consumed = sh->consumed;
	run->bad = sh->bad + cf.bad;
	run->dups = sh->dups;
	if (sh->t_last > t0)
		run->rate = (double)sh->consumed * 1e9 / (double)(sh->t_last - t0);
	if (rc == 0 && (!WIFEXITED(st) || WEXITSTATUS(st)))
		rc = -EIO;
out:
	if (child > 0) {
		atomic_store(&sh->expect, 0);
		atomic_store(&sh->pub_done, 1);
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	amqp_bench_close(c);
	free(body);
	free(cf.done);
	munmap(sh, sizeof(*sh));
	return rc;
}
#endif
