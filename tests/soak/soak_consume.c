/*
 * soak_consume.c - a competing consumer for the chaos soak (tests/soak/run.sh).
 *
 *   soak_consume --bus B --run-dir R --queue Q --ledger FILE
 *                [--prefetch N] [--nack-pct P] [--seed S] [--burst N] [--hold-us U]
 *
 * Manual acks.  Claims up to --burst messages, checks every body
 * (soak_body.h), appends one ledger line per delivery and writes them to
 * the kernel, holds them 0..U us (the "processing" a kill -9 may cut), and
 * only then acks each one, or with probability P% nacks it with requeue (it
 * comes back flagged redelivered).  A kill -9 at any point
 * therefore never loses a delivery that was acked: what was acked is in the
 * ledger, what was not is redelivered by hbusd.  Ledger lines:
 *
 *   <kind> <id> <redelivered 0|1> A     delivered, acked (or being acked)
 *   <kind> <id> <redelivered 0|1> N     delivered, nacked with requeue
 *   <kind> <id> <redelivered 0|1> F     the nack just logged found the queue
 *                                       full (-EAGAIN): the same delivery is
 *                                       acked instead
 *   BAD <hex of the first bytes> <redelivered 0|1> A    body malformed or
 *                                       checksum wrong (acked, so it does not loop)
 *
 * SIGTERM: stop claiming, cancel the consumer, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "soak_body.h"
#include "soak_util.h"

#define BURST_MAX 32u
#define LINE_MAX_ 160u

struct con_opts {
	const char *bus, *run_dir, *queue, *ledger;
	uint32_t prefetch, nack_pct, burst, hold_us;
	unsigned seed;
};

struct con_stats {
	uint64_t delivered, redelivered, acked, nacked, bad, stale;
};

static int usage(void)
{
	fprintf(stderr, "usage: soak_consume --bus B --run-dir R --queue Q --ledger FILE "
		"[--prefetch N] [--nack-pct P] [--seed S] [--burst N] [--hold-us U]\n");
	return 2;
}

static int parse(int argc, char **argv, struct con_opts *o)
{
	static const struct option lo[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "queue", required_argument, NULL, 'q' },
		{ "ledger", required_argument, NULL, 'l' },
		{ "prefetch", required_argument, NULL, 'p' },
		{ "nack-pct", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "burst", required_argument, NULL, 'B' },
		{ "hold-us", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->prefetch = 32;
	o->burst = 16;
	o->seed = (unsigned)getpid();
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'b': o->bus = optarg; break;
		case 'r': o->run_dir = optarg; break;
		case 'q': o->queue = optarg; break;
		case 'l': o->ledger = optarg; break;
		case 'p': o->prefetch = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': o->nack_pct = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': o->seed = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'B': o->burst = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'H': o->hold_us = (uint32_t)strtoul(optarg, NULL, 0); break;
		default: return -1;
		}
	}
	if (!o->bus || !o->queue || !o->ledger || o->nack_pct > 100 || o->burst == 0 ||
	    o->burst > BURST_MAX || optind != argc)
		return -1;
	return 0;
}

/* One ledger line for m into buf; returns its length. */
static int ledger_line(char *buf, const struct hbus_msg *m, char verdict, struct con_stats *st)
{
	char kind[SOAK_KIND_MAX + 1];
	int redelivered = (m->flags & HBUS_MSG_REDELIVERED) != 0, n = 0;
	uint64_t id;

	st->delivered++;
	st->redelivered += (uint64_t)redelivered;
	if (soak_body_check(m->body, m->body_len, kind, &id) == 0)
		return snprintf(buf, LINE_MAX_, "%s %" PRIu64 " %d %c\n", kind, id, redelivered,
				verdict);
	st->bad++;
	n = snprintf(buf, LINE_MAX_, "BAD ");
	for (uint32_t i = 0; i < m->body_len && i < 48; i++)
		n += snprintf(buf + n, LINE_MAX_ - (size_t)n, "%02x", m->body[i]);
	if (m->body_len == 0)
		n += snprintf(buf + n, LINE_MAX_ - (size_t)n, "-");
	return n + snprintf(buf + n, LINE_MAX_ - (size_t)n, " %d A\n", redelivered);
}

/* Claim up to max messages: the first waits up to wait_ms. */
static int claim(hbus_queue *q, struct hbus_msg *m, unsigned max, int wait_ms)
{
	unsigned n = 0;
	int rc = hbus_queue_consume_wait(q, &m[0], wait_ms);

	if (rc)
		return rc;
	for (n = 1; n < max && hbus_queue_consume(q, &m[n]) == 0; n++)
		;
	return (int)n;
}

static void settle(hbus_queue *q, const struct hbus_msg *m, int nack, int fd,
		   struct con_stats *st)
{
	int rc;

	if (nack) {
		rc = hbus_queue_nack(q, m, 1);
		if (rc == 0) {
			st->nacked++;
			return;
		}
		if (rc == -EAGAIN) { /* full: it stays claimed; ack it instead */
			char line[LINE_MAX_];
			int n = ledger_line(line, m, 'F', st);

			st->delivered--; /* the same delivery, logged again */
			if (m->flags & HBUS_MSG_REDELIVERED)
				st->redelivered--;
			if (soak_write_all(fd, line, (size_t)n))
				exit(1);
		}
	}
	rc = hbus_queue_ack(q, m);
	if (rc == 0)
		st->acked++;
	else if (rc == -ESTALE)
		st->stale++; /* recovered from an old session: hbusd redelivers it */
	else
		fprintf(stderr, "soak_consume: ack: %s\n", hbus_strerror(rc));
}

int main(int argc, char **argv)
{
	struct con_opts o = { 0 };
	struct con_stats st = { 0 };
	struct hbus_msg m[BURST_MAX];
	char buf[BURST_MAX * LINE_MAX_];
	hbus_client *c = NULL;
	hbus_queue *q = NULL;
	uint64_t next_check = 0;
	int fd, rc, status = 0, logged = 0;

	if (parse(argc, argv, &o))
		return usage();
	soak_install_stop();
	srand(o.seed);
	fd = soak_ledger_open(o.ledger);
	if (fd < 0)
		return 1;
	if (soak_connect(o.bus, o.run_dir, &c) != 0)
		return 0;
	/* hbusd may die between connect and consume: retry like connect. */
	while (!soak_stop && (rc = hbus_consume_open(c, o.queue, HBUS_ACK_MANUAL, o.prefetch, &q))) {
		if (!logged++)
			fprintf(stderr, "soak_consume: consume '%s': %s; retrying\n", o.queue,
				hbus_strerror(rc));
		soak_sleep_ns(100000000u);
	}
	while (!soak_stop && q) {
		int n, len = 0, nack[BURST_MAX];

		soak_check(c, &next_check);
		n = claim(q, m, o.burst, 100);
		if (n == -ETIMEDOUT || n == -EAGAIN)
			continue;
		if (n == -EBUSY) {
			/* Prefetch full of deliveries a session change voided. */
			next_check = 0;
			soak_sleep_ns(10000000u);
			continue;
		}
		if (n < 0) {
			fprintf(stderr, "soak_consume: consume '%s': %s\n", o.queue, hbus_strerror(n));
			status = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			nack[i] = o.nack_pct && (uint32_t)(rand() % 100) < o.nack_pct;
			len += ledger_line(buf + len, &m[i], nack[i] ? 'N' : 'A', &st);
		}
		/* The ledger reaches the kernel before any ack. */
		if (soak_write_all(fd, buf, (size_t)len))
			exit(1);
		if (o.hold_us)
			soak_sleep_ns((uint64_t)(rand() % (o.hold_us + 1)) * 1000u);
		for (int i = 0; i < n; i++)
			settle(q, &m[i], nack[i], fd, &st);
	}
	if (q)
		hbus_consume_close(c, q);
	hbus_close(c);
	close(fd);
	fprintf(stderr, "soak_consume %s: %" PRIu64 " delivered (%" PRIu64 " redelivered), %"
		PRIu64 " acked, %" PRIu64 " nacked, %" PRIu64 " bad, %" PRIu64 " stale acks\n",
		o.queue, st.delivered, st.redelivered, st.acked, st.nacked, st.bad, st.stale);
	return status;
}
