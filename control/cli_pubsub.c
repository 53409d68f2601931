/*
 * cli_pubsub.c - `hbus publish` and `hbus consume`: the client library's
 * publish and consume paths driven from stdin / to stdout.
 *
 * Both keep working while hbusd restarts: queue handles and the routing
 * table are shared memory, so only new queues wait for hbusd; every
 * CHECK_PERIOD_NS the session is checked and re-opened when hbusd is back.
 */
#include "cli.h"
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK_PERIOD_NS 50000000ull /* session check while streaming: 20/s */
#define WAIT_SLICE_MS   100         /* consume waits in slices to notice signals */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void install_stop_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop; /* no SA_RESTART: blocking reads return */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- publish */

struct pub_state {
	struct cli *cli;
	const char *exchange, *key;
	struct hbus_header hdr[HBUS_HEADERS_MAX];
	unsigned nhdr;
	uint64_t lines, delivered;
	uint64_t next_check;
};

/* 0, or CLI_FAIL after printing why (bad exchange, no routing table). */
static int publish_one(struct pub_state *ps, const char *body, size_t len)
{
	hbus_client *c = ps->cli->client;
	uint64_t now = mono_ns();
	int rc;

	if (now >= ps->next_check) {
		hbus_client_check(c); /* rejoin a restarted hbusd; failure is not fatal */
		ps->next_check = now + CHECK_PERIOD_NS;
	}
	if (len > HBUS_SLOT_SIZE_MAX)
		len = HBUS_SLOT_SIZE_MAX + 1; /* refused by every queue, counted */
	ps->lines++;
	rc = hbus_publish(c, ps->exchange, ps->key, ps->hdr, ps->nhdr, body, (uint32_t)len);
	if (rc > 0) {
		ps->delivered++;
		return 0;
	}
	if (rc == 0)
		return 0;
	if (rc == -ENOENT)
		fprintf(stderr, "hbus: publish to exchange '%s': 404 no exchange '%s' in the "
			"routing table\n", ps->exchange, ps->exchange);
	else
		fprintf(stderr, "hbus: publish to exchange '%s': %s\n", ps->exchange,
			hbus_strerror(rc));
	return CLI_FAIL;
}

int cmd_publish(struct cli *cli, int argc, char **argv)
{
	struct cli_list hdrs = { .n = 0 };
	struct hbus_client_counters before, after;
	struct pub_state ps = { .cli = cli };
	const char *body = NULL, *pos[2];
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned i;
	int rc = 0;
	const struct cli_opt opts[] = {
		{ "--header", OPT_LIST, &hdrs, NULL, NULL },
		{ "--body", OPT_STR, &body, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	if (cli_parse(argv[0], argc, argv, opts, pos, 2, 2) < 0)
		return CLI_USAGE;
	if (strlen(pos[0]) > HBUS_NAME_MAX || strlen(pos[1]) > HBUS_NAME_MAX)
		return cli_usage_error(argv[0], "exchange and routing key are at most %u bytes",
				       HBUS_NAME_MAX);
	for (i = 0; i < hdrs.n; i++)
		if (cli_parse_header(hdrs.v[i], &ps.hdr[i]))
			return cli_usage_error(argv[0], "--header wants NAME=VALUE, not '%s'",
					       hdrs.v[i]);
	ps.nhdr = hdrs.n;
	ps.exchange = pos[0];
	ps.key = pos[1];
	if (!cli_client(cli))
		return CLI_FAIL;
	hbus_client_counters(cli->client, &before);
	if (body) {
		rc = publish_one(&ps, body, strlen(body));
	} else {
		install_stop_handlers();
		while (!rc && !stop_requested && (len = getline(&line, &cap, stdin)) >= 0) {
			if (len > 0 && line[len - 1] == '\n')
				line[--len] = '\0';
			rc = publish_one(&ps, line, (size_t)len);
		}
		free(line);
		if (ferror(stdin) && !stop_requested) {
			perror("hbus: publish: reading stdin");
			return CLI_FAIL;
		}
	}
	if (rc)
		return rc;
	if (ps.delivered == ps.lines)
		return CLI_OK;
	hbus_client_counters(cli->client, &after);
	fprintf(stderr, "hbus: publish to exchange '%s': %" PRIu64 " of %" PRIu64 " messages not "
		"delivered: %" PRIu64 " unroutable, %" PRIu64 " refused by a queue (full, too "
		"large or not openable)\n", ps.exchange, ps.lines - ps.delivered, ps.lines,
		after.unroutable - before.unroutable, after.refused - before.refused);
	return CLI_FAIL;
}

/* ------------------------------------------------------------- consume */

static int write_msg(const struct hbus_msg *m, int as_json)
{
	if (as_json) {
		json_t *o = cli_msg_json(m, real_ns());
		int rc = o ? json_dumpf(o, stdout, JSON_COMPACT) : -1;

		json_decref(o);
		if (rc)
			return -1;
	} else if (m->body_len && fwrite(m->body, 1, m->body_len, stdout) != m->body_len) {
		return -1;
	}
	return putchar('\n') == EOF || fflush(stdout) ? -1 : 0;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested)
		;
}

/* Busy-poll the queue for up to slice_ms: no futex sleep, so a message is
 * seen within a cache-line transfer of its commit (costs a core). */
static int consume_spin(hbus_queue *q, struct hbus_msg *m, int slice_ms)
{
	uint64_t end = mono_ns() + (uint64_t)slice_ms * 1000000u;
	unsigned i = 0;

	for (;;) {
		int rc = hbus_queue_consume(q, m);
		if (rc != -EAGAIN)
			return rc;
		if ((++i & 1023) == 0 && mono_ns() >= end)
			return -ETIMEDOUT;
		__builtin_ia32_pause();
	}
}

int cmd_consume(struct cli *cli, int argc, char **argv)
{
	uint64_t count = 0, got = 0, idle_since, next_check = 0;
	uint32_t prefetch = 0, ack_delay = 0;
	int32_t timeout_ms = -1;
	int ack = 0, as_json = 0, busy_poll = 0, exclusive = 0, rc, status = CLI_OK;
	const char *pos[1];
	char what[300];
	hbus_queue *q;
	struct hbus_msg m;
	const struct cli_opt opts[] = {
		{ "--count", OPT_U64, &count, NULL, NULL },
		{ "--timeout-ms", OPT_I32, &timeout_ms, NULL, NULL },
		{ "--ack", OPT_FLAG, &ack, NULL, NULL },
		{ "--prefetch", OPT_U32, &prefetch, NULL, NULL },
		{ "--ack-delay-ms", OPT_U32, &ack_delay, NULL, NULL },
		{ "--json", OPT_FLAG, &as_json, NULL, NULL },
		{ "--busy-poll", OPT_FLAG, &busy_poll, NULL, NULL },
		{ "--exclusive", OPT_FLAG, &exclusive, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	if (cli_parse(argv[0], argc, argv, opts, pos, 1, 1) < 0)
		return CLI_USAGE;
	if (timeout_ms < -1)
		return cli_usage_error(argv[0], "--timeout-ms must be >= 0 (or -1: wait forever)");
	snprintf(what, sizeof(what), "consume '%s'", pos[0]);
	if (!cli_client(cli))
		return CLI_FAIL;
	rc = hbus_consume_open_ex(cli->client, pos[0], ack ? HBUS_ACK_MANUAL : HBUS_ACK_AUTO,
				  prefetch, exclusive ? HBUS_CONSUME_EXCLUSIVE : 0, &q);
	if (rc)
		return cli_fail(cli, what, rc);
	install_stop_handlers();
	idle_since = mono_ns();
	while (!stop_requested && (count == 0 || got < count)) {
		uint64_t now = mono_ns();
		int slice = WAIT_SLICE_MS;

		if (now >= next_check) {
			hbus_client_check(cli->client);
			next_check = now + CHECK_PERIOD_NS;
		}
		if (timeout_ms >= 0) {
			uint64_t idle_ms = (now - idle_since) / 1000000u;
			if (idle_ms >= (uint64_t)timeout_ms)
				break;
			if ((uint64_t)slice > timeout_ms - idle_ms)
				slice = (int)(timeout_ms - idle_ms);
		}
		rc = busy_poll ? consume_spin(q, &m, slice) : hbus_queue_consume_wait(q, &m, slice);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc == -EBUSY) {
			/* Prefetch full of deliveries whose acks were refused: a
			 * session change voids them; check it now. */
			next_check = 0;
			sleep_ms(10);
			continue;
		}
		if (rc) {
			status = cli_fail(cli, what, rc);
			break;
		}
		if (write_msg(&m, as_json)) {
			/* Not written, not acked: a manual-ack message is redelivered. */
			fprintf(stderr, "hbus: %s: writing stdout: %s\n", what, strerror(errno));
			status = CLI_FAIL;
			break;
		}
		if (ack && ack_delay)
			sleep_ms(ack_delay);
		rc = hbus_queue_ack(q, &m);
		if (rc == -ESTALE && ack)
			fprintf(stderr, "hbus: %s: ack refused: the delivery belonged to a session "
				"that ended (hbusd restarted); it is redelivered\n", what);
		got++;
		idle_since = mono_ns();
	}
	hbus_consume_close(cli->client, q);
	return status;
}
