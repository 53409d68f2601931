/*
 * soak_pub.c - a local publisher for the chaos soak (tests/soak/run.sh).
 *
 *   soak_pub --bus B --run-dir R --exchange X --key K --kind TAG --ledger FILE
 *            [--rate MSGS_PER_S]
 *
 * Publishes bodies "TAG:<id>:<pad>:<fnv1a>" (soak_body.h) with ids 0, 1, 2 ...
 * through hbus_publish, paced to --rate.  After each call, before the next,
 * one ledger line reaches the kernel:
 *
 *   A <id>        accepted: hbus_publish returned >= 1 (enqueued on a queue)
 *   R <id>        refused: it returned 0 (unroutable, queue full, or a queue
 *                 it could not open while hbusd was down); counted here
 *   E <id> <rc>   it returned a negative errno (not enqueued either)
 *
 * So after a kill -9 exactly one id can be in doubt: the one after the last
 * line (the call may have been cut before or after its enqueue).  TAG must be
 * unique per process incarnation: ids are not persisted.  SIGTERM: finish the
 * current message, write "END <next id>", close the session, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "soak_body.h"
#include "soak_util.h"

struct pub_opts {
	const char *bus, *run_dir, *exchange, *key, *kind, *ledger;
	double rate;
};

static int usage(void)
{
	fprintf(stderr, "usage: soak_pub --bus B --run-dir R --exchange X --key K --kind TAG "
		"--ledger FILE [--rate N]\n");
	return 2;
}

static int parse(int argc, char **argv, struct pub_opts *o)
{
	static const struct option lo[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "exchange", required_argument, NULL, 'x' },
		{ "key", required_argument, NULL, 'k' },
		{ "kind", required_argument, NULL, 't' },
		{ "ledger", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->rate = 1000;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'b': o->bus = optarg; break;
		case 'r': o->run_dir = optarg; break;
		case 'x': o->exchange = optarg; break;
		case 'k': o->key = optarg; break;
		case 't': o->kind = optarg; break;
		case 'l': o->ledger = optarg; break;
		case 'R': o->rate = strtod(optarg, NULL); break;
		default: return -1;
		}
	}
	if (!o->bus || !o->exchange || !o->key || !o->kind || !o->ledger || o->rate <= 0 ||
	    strlen(o->kind) > SOAK_KIND_MAX || strchr(o->kind, ':') || optind != argc)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct pub_opts o = { 0 };
	hbus_client *c = NULL;
	uint64_t id = 0, next_check = 0, gap_ns, due;
	uint64_t accepted = 0, refused = 0, errors = 0;
	char body[SOAK_BODY_MAX], line[64];
	int fd, rc;

	if (parse(argc, argv, &o))
		return usage();
	soak_install_stop();
	fd = soak_ledger_open(o.ledger);
	if (fd < 0)
		return 1;
	if (soak_connect(o.bus, o.run_dir, &c) != 0)
		return 0; /* stopped before hbusd came: nothing was published */
	gap_ns = (uint64_t)(1e9 / o.rate);
	due = soak_mono_ns();
	while (!soak_stop) {
		int blen = soak_body_make(body, sizeof(body), o.kind, id), n;
		uint64_t now;

		soak_check(c, &next_check);
		rc = hbus_publish(c, o.exchange, o.key, NULL, 0, body, (uint32_t)blen);
		if (rc > 0) {
			n = snprintf(line, sizeof(line), "A %" PRIu64 "\n", id);
			accepted++;
		} else if (rc == 0) {
			n = snprintf(line, sizeof(line), "R %" PRIu64 "\n", id);
			refused++;
		} else {
			n = snprintf(line, sizeof(line), "E %" PRIu64 " %d\n", id, rc);
			errors++;
		}
		if (soak_write_all(fd, line, (size_t)n))
			return 1;
		id++;
		/* Pace: sleep when ahead; after a stall (SIGSTOP, a busy
		 * core) do not burst to catch up by more than 50 ms. */
		due += gap_ns;
		now = soak_mono_ns();
		if (now > due + 50000000u)
			due = now;
		if (due > now + 100000)
			soak_sleep_ns(due - now);
	}
	rc = snprintf(line, sizeof(line), "END %" PRIu64 "\n", id);
	soak_write_all(fd, line, (size_t)rc);
	close(fd);
	hbus_close(c);
	fprintf(stderr, "soak_pub %s: %" PRIu64 " published: %" PRIu64 " accepted, %" PRIu64
		" refused, %" PRIu64 " errors\n", o.kind, id, accepted, refused, errors);
	return 0;
}
