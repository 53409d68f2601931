/*
 * cli_stat.c - `hbus stat`: queue depths, rates and drops by reason, as a
 * table, JSON or Prometheus text.
 *
 * Rates need two samples: stat takes one, waits --interval-ms, takes
 * another and divides the counter deltas by the time between them
 * (--watch keeps sampling).  Prometheus output is one sample: Prometheus
 * computes rates itself.
 *
 * Hook for other parts of the bus: hbusd's stat reply may carry more
 * top-level sections next to "queues" ("dataplanes": the dataplanes'
 * per-port and per-lcore counters, rendered by cli_stat_dp.c).  A section
 * with a renderer in `sections[]` gets it; any other section is still
 * shown - arrays of objects as a table, objects as key/value lines,
 * numbers as Prometheus samples named hbus_<section>_<field> - so a new
 * section appears everywhere before anyone writes a renderer for it.
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stat_stop;

static void on_stop(int sig)
{
	(void)sig;
	stat_stop = 1;
}

/* Queue fields that are levels, not counters (everything else numeric in
 * a queue is a monotonic counter). */
static const char *const queue_gauges[] = {
	"qid", "depth", "capacity", "slot_size", "consumers", "unacked", "head", "tail", NULL,
};

static int is_gauge(const char *const *gauges, const char *name)
{
	for (; *gauges; gauges++)
		if (!strcmp(*gauges, name))
			return 1;
	return 0;
}

static json_t *stat_sample(struct cli *cli, uint64_t *t_ns)
{
	struct timespec ts;
	json_t *r = cli_request(cli, json_pack("{s:s}", "op", "stat"), "stat");

	clock_gettime(CLOCK_MONOTONIC, &ts);
	*t_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (r)
		json_object_del(r, "ok");
	return r;
}

static json_t *queue_by_name(json_t *queues, const char *name)
{
	size_t i;
	json_t *q;

	json_array_foreach(queues, i, q)
		if (name && json_string_value(json_object_get(q, "name")) &&
		    !strcmp(json_string_value(json_object_get(q, "name")), name))
			return q;
	return NULL;
}

static double rate_of(json_t *prev, json_t *cur, const char *field, double secs)
{
	json_int_t a = json_integer_value(json_object_get(prev, field));
	json_int_t b = json_integer_value(json_object_get(cur, field));

	return prev && secs > 0 && b >= a ? (double)(b - a) / secs : 0.0;
}

/* Add "rates" to each queue of cur (per second since prev). */
static void add_rates(json_t *prev, json_t *cur, double secs)
{
	json_t *queues = json_object_get(cur, "queues"), *q;
	size_t i;

	json_object_set_new(cur, "interval_ms", json_integer((json_int_t)(secs * 1000 + 0.5)));
	json_array_foreach(queues, i, q) {
		json_t *p = queue_by_name(json_object_get(prev, "queues"),
					  json_string_value(json_object_get(q, "name")));
		json_object_set_new(q, "rates", json_pack("{s:f, s:f, s:f}",
			"enqueued_per_s", rate_of(p, q, "enqueued", secs),
			"delivered_per_s", rate_of(p, q, "delivered", secs),
			"acked_per_s", rate_of(p, q, "acked", secs)));
	}
	cli_stat_dp_add_rates(prev, cur, secs);
}

static json_t *num(json_t *q, const char *f)
{
	json_t *v = json_object_get(q, f);

	return v ? json_incref(v) : json_integer(0);
}

static void render_queues(json_t *queues)
{
	json_t *rows = json_array(), *q;
	size_t i;

	json_array_foreach(queues, i, q) {
		json_t *r = json_object_get(q, "rates");
		json_t *row = json_pack("{s:O?}", "queue", json_object_get(q, "name"));

		if (!row)
			continue;
		json_object_set_new(row, "depth", num(q, "depth"));
		json_object_set_new(row, "capacity", num(q, "capacity"));
		json_object_set_new(row, "enq/s", json_integer((json_int_t)json_real_value(
			json_object_get(r, "enqueued_per_s"))));
		json_object_set_new(row, "deliv/s", json_integer((json_int_t)json_real_value(
			json_object_get(r, "delivered_per_s"))));
		json_object_set_new(row, "ack/s", json_integer((json_int_t)json_real_value(
			json_object_get(r, "acked_per_s"))));
		json_object_set_new(row, "consumers", num(q, "consumers"));
		json_object_set_new(row, "unacked", num(q, "unacked"));
		json_object_set_new(row, "enqueued", num(q, "enqueued"));
		json_object_set_new(row, "delivered", num(q, "delivered"));
		/* Drops by reason: every message that entered and did not reach
		 * a consumer is in exactly one of these. */
		json_object_set_new(row, "full", num(q, "dropped_overflow"));
		json_object_set_new(row, "oversize", num(q, "dropped_oversize"));
		json_object_set_new(row, "drop-head", num(q, "dropped_head"));
		json_object_set_new(row, "expired", num(q, "expired"));
		json_object_set_new(row, "rejected", num(q, "rejected"));
		json_object_set_new(row, "purged", num(q, "purged"));
		json_object_set_new(row, "dead-lettered", num(q, "dead_lettered"));
		if (json_is_true(json_object_get(q, "corrupt")))
			json_object_set_new(row, "state", json_string("CORRUPT"));
		json_array_append_new(rows, row);
	}
	cli_print_table(stdout, rows, NULL);
	json_decref(rows);
}

/* Renderers for known sections (the dataplane adds its own here). */
static const struct {
	const char *name;
	void (*render)(json_t *section);
} sections[] = {
	{ "queues", render_queues },
	{ "dataplanes", cli_stat_dp_render }, /* cli_stat_dp.c */
};

static void render_generic(const char *name, json_t *v)
{
	const char *k;
	json_t *x;

	printf("%s:\n", name);
	if (json_is_array(v)) {
		cli_print_table(stdout, v, NULL);
		return;
	}
	json_object_foreach(v, k, x) {
		if (json_is_array(x)) {
			printf("%s.", name);
			render_generic(k, x);
			continue;
		}
		char *t = cli_cell_text(x);
		printf("  %s: %s\n", k, t ? t : "");
		free(t);
	}
}

static void render_table(json_t *st)
{
	const char *k;
	json_t *v;
	size_t i;
	int first = 1;

	/* Bus-wide scalars (bus, epoch, generation, sessions...) on one line. */
	json_object_foreach(st, k, v) {
		char *t;
		if (json_is_array(v) || json_is_object(v))
			continue;
		t = cli_cell_text(v);
		printf("%s%s: %s", first ? "" : "  ", k, t ? t : "");
		free(t);
		first = 0;
	}
	if (!first)
		putchar('\n');
	json_object_foreach(st, k, v) {
		if (!json_is_array(v) && !json_is_object(v))
			continue;
		/* A bus without a dataplane (or the like) shows no empty section. */
		if (json_is_array(v) && json_array_size(v) == 0 && strcmp(k, "queues") != 0)
			continue;
		if (!first)
			putchar('\n');
		first = 0;
		for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
			if (!strcmp(sections[i].name, k))
				break;
		if (i < sizeof(sections) / sizeof(sections[0]))
			sections[i].render(v);
		else
			render_generic(k, v);
	}
}

/* ------------------------------------------------------------ prometheus */

void cli_prom_name(char *out, size_t cap, const char *a, const char *b)
{
	size_t n = 0;
	const char *parts[3] = { "hbus_", a, b };

	for (int p = 0; p < 3; p++) {
		for (const char *s = parts[p]; s && *s && n + 2 < cap; s++) {
			char ch = *s;
			out[n++] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				   (ch >= '0' && ch <= '9') || ch == '_' ? ch : '_';
		}
		if (p == 1 && b && n + 2 < cap)
			out[n++] = '_';
	}
	out[n] = '\0';
}

void cli_prom_label_value(FILE *f, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* Labels of one item: bus, then every string field of it. */
static void prom_labels(const char *bus, json_t *item)
{
	const char *k;
	json_t *v;

	printf("{bus=\"");
	cli_prom_label_value(stdout, bus);
	putchar('"');
	json_object_foreach(item, k, v) {
		char lname[128];
		if (!json_is_string(v))
			continue;
		cli_prom_name(lname, sizeof(lname), k, NULL);
		printf(",%s=\"", lname + 5); /* without the hbus_ prefix */
		cli_prom_label_value(stdout, json_string_value(v));
		putchar('"');
	}
	putchar('}');
}

/* One metric family per numeric field of the items, samples grouped. */
static void prom_section(const char *bus, const char *section, json_t *items,
			 const char *const *gauges)
{
	json_t *fields = json_object(), *it, *v;
	const char *k, *f;
	size_t i;
	json_t *dummy;

	json_array_foreach(items, i, it)
		json_object_foreach(it, k, v)
			if (json_is_number(v) && strcmp(k, "qid") != 0) /* an id, not a value */
				json_object_set_new(fields, k, json_true());
	json_object_foreach(fields, f, dummy) {
		char name[256];
		int gauge = gauges ? is_gauge(gauges, f) : 0;

		cli_prom_name(name, sizeof(name), section, f);
		printf("# TYPE %s%s %s\n", name, gauges && !gauge ? "_total" : "",
		       gauges ? (gauge ? "gauge" : "counter") : "untyped");
		json_array_foreach(items, i, it) {
			v = json_object_get(it, f);
			if (!json_is_number(v))
				continue;
			printf("%s%s", name, gauges && !gauge ? "_total" : "");
			prom_labels(bus, it);
			if (json_is_integer(v))
				printf(" %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
			else
				printf(" %.9g\n", json_real_value(v));
		}
	}
	json_decref(fields);
}

static void render_prometheus(const char *bus, json_t *st)
{
	const char *k;
	json_t *v;

	/* Bus-wide numbers: hbus_<field>{bus="..."}. */
	json_object_foreach(st, k, v) {
		char name[256];
		if (!json_is_number(v))
			continue;
		cli_prom_name(name, sizeof(name), k, NULL);
		printf("# TYPE %s gauge\n%s{bus=\"", name, name);
		cli_prom_label_value(stdout, bus);
		if (json_is_integer(v))
			printf("\"} %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
		else
			printf("\"} %.9g\n", json_real_value(v));
	}

	json_object_foreach(st, k, v) {
		if (!strcmp(k, "queues")) {
			prom_section(bus, "queue", v, queue_gauges);
		} else if (!strcmp(k, "dataplanes")) {
			cli_stat_dp_prometheus(bus, v);
		} else if (json_is_array(v)) {
			prom_section(bus, k, v, NULL);
		} else if (json_is_object(v)) {
			json_t *one = json_pack("[O]", v);
			prom_section(bus, k, one, NULL);
			json_decref(one);
		}
	}
}

/* ------------------------------------------------------------ command */

static void sleep_interval(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stat_stop)
		;
}

int cmd_stat(struct cli *cli, int argc, char **argv)
{
	int as_json = 0, watch = 0, prom = 0, status = CLI_OK, in_place;
	uint32_t interval = 1000;
	uint64_t t0, t1;
	json_t *prev, *cur;
	const char *bus = cli->bus ? cli->bus : getenv("HBUS_BUS");
	struct sigaction sa;
	const struct cli_opt opts[] = {
		{ "--json", OPT_FLAG, &as_json, NULL, NULL },
		{ "--watch", OPT_FLAG, &watch, NULL, NULL },
		{ "--prometheus", OPT_FLAG, &prom, NULL, NULL },
		{ "--interval-ms", OPT_U32, &interval, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	if (cli_parse(argv[0], argc, argv, opts, NULL, 0, 0) < 0)
		return CLI_USAGE;
	if (prom && (as_json || watch))
		return cli_usage_error(argv[0], "--prometheus is one sample: not with --json or --watch");
	if (interval == 0)
		return cli_usage_error(argv[0], "--interval-ms must be > 0");
	if (!bus || !*bus)
		bus = "default";
	prev = stat_sample(cli, &t0);
	if (!prev)
		return CLI_FAIL;
	if (prom) {
		render_prometheus(bus, prev);
		json_decref(prev);
		return CLI_OK;
	}
	in_place = watch && !as_json && isatty(STDOUT_FILENO);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	do {
		sleep_interval(interval);
		if (stat_stop)
			break;
		cur = stat_sample(cli, &t1);
		if (!cur) {
			status = CLI_FAIL;
			break;
		}
		add_rates(prev, cur, (double)(t1 - t0) / 1e9);
		if (as_json) {
			json_dumpf(cur, stdout, watch ? JSON_COMPACT : JSON_INDENT(2));
			putchar('\n');
		} else {
			if (watch) {
				time_t now = time(NULL);
				char ts[32];
				strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&now));
				/* On a terminal each sample replaces the last
				 * (cursor home, clear screen); into a file or
				 * pipe they follow one another. */
				if (in_place)
					fputs("\033[H\033[2J", stdout);
				printf("--- %s\n", ts);
			}
			render_table(cur);
		}
		if (fflush(stdout)) {
			json_decref(cur);
			status = CLI_FAIL;
			break;
		}
		json_decref(prev);
		prev = cur;
		t0 = t1;
	} while (watch && !stat_stop);
	json_decref(prev);
	return status;
}
