/*
 * cli_stat_dp.c - `hbus stat`: the "dataplanes" section of hbusd's stat
 * reply (control/report_dataplane.c), as a table and as Prometheus
 * metrics, and its rates between two samples.
 *
 * A dataplane object carries its identity (name, alive, state, pid,
 * port_name, ip, ...), "totals" (every counter summed over lcores),
 * "port" (the port's counters), "lcores" (every counter per worker, plus
 * "drops", the sum of its drop_* counters) and "streams" (sequence
 * tracking per stream).  Counter names come from the dataplane's file, so
 * nothing here lists them: a counter named drop_<reason> is a drop, any
 * other is a count.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static int is_drop(const char *name)
{
	return !strncmp(name, "drop_", 5);
}

static json_int_t ival(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* Sum of the drop_* counters of a counters object. */
static json_int_t drops_of(json_t *counters)
{
	const char *k;
	json_t *v;
	json_int_t sum = 0;

	json_object_foreach(counters, k, v)
		if (is_drop(k))
			sum += json_integer_value(v);
	return sum;
}

static json_t *dp_by_name(json_t *dps, const char *name)
{
	size_t i;
	json_t *d;

	json_array_foreach(dps, i, d) {
		const char *n = json_string_value(json_object_get(d, "name"));
		if (n && name && !strcmp(n, name))
			return d;
	}
	return NULL;
}

static double per_s(json_int_t a, json_int_t b, double secs)
{
	return secs > 0 && b >= a ? (double)(b - a) / secs : 0.0;
}

void cli_stat_dp_add_rates(json_t *prev, json_t *cur, double secs)
{
	json_t *dps = json_object_get(cur, "dataplanes"), *d;
	size_t i;

	json_array_foreach(dps, i, d) {
		json_t *p = dp_by_name(json_object_get(prev, "dataplanes"),
				       json_string_value(json_object_get(d, "name")));
		json_t *pt = json_object_get(p, "totals"), *ct = json_object_get(d, "totals");

		/* A dataplane that restarted counts from 0 again: no rate. */
		if (!p || ival(p, "pid") != ival(d, "pid"))
			secs = 0;
		json_object_set_new(d, "rates", json_pack("{s:f, s:f, s:f}",
			"rx_pkts_per_s", per_s(ival(pt, "rx_pkts"), ival(ct, "rx_pkts"), secs),
			"delivered_per_s", per_s(ival(pt, "delivered"), ival(ct, "delivered"), secs),
			"drops_per_s", per_s(drops_of(pt), drops_of(ct), secs)));
	}
}

/* ------------------------------------------------------------ table */

static void print_drops(json_t *totals)
{
	const char *k;
	json_t *v;
	int n = 0;

	printf("  drops:");
	json_object_foreach(totals, k, v) {
		if (!is_drop(k) || json_integer_value(v) == 0)
			continue;
		printf("%s %s %" JSON_INTEGER_FORMAT, n++ ? "," : "", k + 5, json_integer_value(v));
	}
	printf("%s\n", n ? "" : " none");
}

static void print_port(json_t *port)
{
	const char *k;
	json_t *v;

	printf("  port:");
	json_object_foreach(port, k, v)
		printf(" %s %" JSON_INTEGER_FORMAT, strncmp(k, "port_", 5) ? k : k + 5,
		       json_integer_value(v));
	putchar('\n');
}

/* Per worker: what came in, what went out, what was dropped. */
static void print_lcores(json_t *lcores)
{
	json_t *rows = json_array(), *l;
	size_t i;

	json_array_foreach(lcores, i, l)
		json_array_append_new(rows, json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}",
			"lcore", json_object_get(l, "lcore_id"),
			"rx_queue", json_object_get(l, "rx_queue"),
			"rx", json_object_get(l, "rx_pkts"),
			"msgs", json_object_get(l, "msgs"),
			"routed", json_object_get(l, "routed"),
			"delivered", json_object_get(l, "delivered"),
			"drops", json_object_get(l, "drops")));
	cli_print_table(stdout, rows, NULL);
	json_decref(rows);
}

static void print_streams(json_t *streams, json_int_t omitted)
{
	static const char *const cols[] = { "stream_id", "lcore_id", "next_seq", "msgs", "gaps",
					    "dups", "resets", NULL };

	if (json_array_size(streams) == 0)
		return;
	cli_print_table(stdout, streams, cols);
	if (omitted)
		printf("(%" JSON_INTEGER_FORMAT " more streams not shown)\n", omitted);
}

void cli_stat_dp_render(json_t *dps)
{
	size_t i;
	json_t *d;

	json_array_foreach(dps, i, d) {
		json_t *t = json_object_get(d, "totals"), *r = json_object_get(d, "rates");
		int alive = json_is_true(json_object_get(d, "alive"));

		if (i)
			putchar('\n');
		printf("dataplane %s: ", json_string_value(json_object_get(d, "name")));
		if (alive)
			printf("%s, pid %" JSON_INTEGER_FORMAT ", heartbeat %" JSON_INTEGER_FORMAT
			       " ms ago", json_string_value(json_object_get(d, "state")),
			       ival(d, "pid"), ival(d, "heartbeat_age_ms"));
		else /* killed: its file stays, with the counters it had */
			printf("GONE (pid %" JSON_INTEGER_FORMAT ", last heartbeat %" JSON_INTEGER_FORMAT
			       " s ago; counters as it left them)", ival(d, "pid"),
			       ival(d, "heartbeat_age_ms") / 1000);
		printf(", port %s (%" JSON_INTEGER_FORMAT "), ip %s\n",
		       json_string_value(json_object_get(d, "port_name")), ival(d, "port_id"),
		       json_string_value(json_object_get(d, "ip")));
		printf("  rx %" JSON_INTEGER_FORMAT " frames (%.0f/s), udp %" JSON_INTEGER_FORMAT
		       ", msgs %" JSON_INTEGER_FORMAT ", routed %" JSON_INTEGER_FORMAT
		       ", delivered %" JSON_INTEGER_FORMAT " (%.0f/s), dropped %" JSON_INTEGER_FORMAT
		       " (%.0f/s)\n", ival(t, "rx_pkts"),
		       json_real_value(json_object_get(r, "rx_pkts_per_s")), ival(t, "udp_pkts"),
		       ival(t, "msgs"), ival(t, "routed"), ival(t, "delivered"),
		       json_real_value(json_object_get(r, "delivered_per_s")), drops_of(t),
		       json_real_value(json_object_get(r, "drops_per_s")));
		print_drops(t);
		print_port(json_object_get(d, "port"));
		print_lcores(json_object_get(d, "lcores"));
		print_streams(json_object_get(d, "streams"), ival(d, "streams_omitted"));
	}
}

/* ------------------------------------------------------- prometheus */

/*
 * Samples are gathered per metric family first (the text format wants
 * each family's samples together, under one TYPE line), then printed.
 * fams: family name -> {"type": ..., "samples": [line, ...]}.
 */
struct prom {
	json_t *fams;
	const char *bus;
};

static void prom_add(struct prom *p, const char *metric, const char *type, const char *labels,
		     json_int_t value)
{
	char name[160], line[1024];
	json_t *fam;

	cli_prom_name(name, sizeof(name), "dataplane", metric);
	fam = json_object_get(p->fams, name);
	if (!fam) {
		fam = json_pack("{s:s, s:[]}", "type", type, "samples");
		if (!fam || json_object_set_new(p->fams, name, fam))
			return;
	}
	snprintf(line, sizeof(line), "%s{%s} %" JSON_INTEGER_FORMAT, name, labels, value);
	json_array_append_new(json_object_get(fam, "samples"), json_string(line));
}

/* `bus="..",dataplane=".."` plus one more label (name NULL: none). */
static void prom_labels(char *out, size_t cap, const struct prom *p, const char *dp,
			const char *name, const char *value, const char *name2, const char *value2)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		*out = '\0';
		return;
	}
	fputs("bus=\"", f);
	cli_prom_label_value(f, p->bus);
	fputs("\",dataplane=\"", f);
	cli_prom_label_value(f, dp);
	fputc('"', f);
	if (name) {
		fprintf(f, ",%s=\"", name);
		cli_prom_label_value(f, value);
		fputc('"', f);
	}
	if (name2) {
		fprintf(f, ",%s=\"", name2);
		cli_prom_label_value(f, value2);
		fputc('"', f);
	}
	fclose(f);
	snprintf(out, cap, "%s", buf ? buf : "");
	free(buf);
}

static void prom_dataplane(struct prom *p, json_t *d)
{
	const char *dp = json_string_value(json_object_get(d, "name"));
	const char *port = json_string_value(json_object_get(d, "port_name"));
	char labels[768], id[32], full[96];
	const char *k;
	json_t *l, *s, *v;
	size_t i;

	if (!dp)
		return;
	prom_labels(labels, sizeof(labels), p, dp, NULL, NULL, NULL, NULL);
	prom_add(p, "up", "gauge", labels, json_is_true(json_object_get(d, "alive")));
	prom_add(p, "heartbeat_age_ms", "gauge", labels, ival(d, "heartbeat_age_ms"));
	/* Per lcore: sum() over lcore (and reason) gives the totals. */
	json_array_foreach(json_object_get(d, "lcores"), i, l) {
		snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, ival(l, "lcore_id"));
		json_object_foreach(l, k, v) {
			if (!json_is_integer(v) || !strcmp(k, "lcore_id") || !strcmp(k, "rx_queue") ||
			    !strcmp(k, "drops"))
				continue;
			if (is_drop(k)) {
				prom_labels(labels, sizeof(labels), p, dp, "lcore", id, "reason", k + 5);
				prom_add(p, "drops_total", "counter", labels, json_integer_value(v));
			} else {
				prom_labels(labels, sizeof(labels), p, dp, "lcore", id, NULL, NULL);
				snprintf(full, sizeof(full), "%s_total", k);
				prom_add(p, full, "counter", labels, json_integer_value(v));
			}
		}
	}
	prom_labels(labels, sizeof(labels), p, dp, "port", port ? port : "", NULL, NULL);
	json_object_foreach(json_object_get(d, "port"), k, v) {
		/* Levels, not counts: groups joined now, the table in use. */
		int gauge = !strcmp(k, "mcast_groups") || !strcmp(k, "table_generation");

		snprintf(full, sizeof(full), "%s%s", k, gauge ? "" : "_total");
		prom_add(p, full, gauge ? "gauge" : "counter", labels, json_integer_value(v));
	}
	json_array_foreach(json_object_get(d, "streams"), i, s) {
		char sid[32];

		snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, ival(s, "lcore_id"));
		snprintf(sid, sizeof(sid), "%" JSON_INTEGER_FORMAT, ival(s, "stream_id"));
		prom_labels(labels, sizeof(labels), p, dp, "lcore", id, "stream", sid);
		prom_add(p, "stream_next_seq", "gauge", labels, ival(s, "next_seq"));
		prom_add(p, "stream_msgs_total", "counter", labels, ival(s, "msgs"));
		prom_add(p, "stream_gaps_total", "counter", labels, ival(s, "gaps"));
		prom_add(p, "stream_dups_total", "counter", labels, ival(s, "dups"));
		prom_add(p, "stream_resets_total", "counter", labels, ival(s, "resets"));
	}
}

void cli_stat_dp_prometheus(const char *bus, json_t *dps)
{
	struct prom p = { .fams = json_object(), .bus = bus };
	const char *name;
	json_t *fam, *line;
	size_t i;

	json_array_foreach(dps, i, fam)
		prom_dataplane(&p, fam);
	json_object_foreach(p.fams, name, fam) {
		printf("# TYPE %s %s\n", name, json_string_value(json_object_get(fam, "type")));
		json_array_foreach(json_object_get(fam, "samples"), i, line)
			printf("%s\n", json_string_value(line));
	}
	json_decref(p.fams);
}
