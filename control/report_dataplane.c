/*
 * report_dataplane.c - the "dataplanes" section of hbusd's stat reply:
 * what every hbus-dataplane of the bus counts, read from the counters
 * files they keep in the bus directory (<bus dir>/<name>.counters, layout
 * and reader in shm/dp_counters.h; docs/DATAPLANE.md "Counters").
 *
 * hbusd only reads: each file is mapped read-only for the length of one
 * stat request.  The reader checks every offset against the file and takes
 * the counter names from it, so a file written by a newer dataplane is
 * reported with every counter it has.  A file whose writer is gone (killed
 * without its clean stop) is still reported, with "alive": false: its last
 * counters are what an operator wants to see after a crash.
 *
 * The counters are single-writer values read one at a time, so while
 * traffic flows the identities of dataplane/dp_counter_ids.h hold only to within the
 * packets of a burst; at rest they hold exactly.  Totals are the sums of
 * the per-lcore values read here, so they always agree with them.
 */
#include "server.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp_counters.h"

#define STAT_DATAPLANES_MAX 64u    /* counters files reported per request */
#define STAT_STREAMS_MAX    1024u  /* streams reported per dataplane */
#define ALIVE_MAX_AGE_MS    2000u  /* as hbus-dataplane's own takeover check */
#define SUFFIX              ".counters"

/* Text from the file as a JSON string: at most cap bytes, up to the first
 * NUL, printable ASCII only (jansson refuses invalid UTF-8). */
static json_t *file_str(const char *s, size_t cap)
{
	char buf[256];
	size_t i, n = strnlen(s, cap < sizeof(buf) ? cap : sizeof(buf) - 1);

	for (i = 0; i < n; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[n] = '\0';
	return json_string(buf);
}

/* A counter name from the file (NUL-terminated within HBUS_DPC_NAME_LEN,
 * hbus_dpc_file_name sees to it) as a JSON key. */
static const char *key_of(const char *name, char buf[HBUS_DPC_NAME_LEN])
{
	size_t i;

	for (i = 0; name[i] && i + 1 < HBUS_DPC_NAME_LEN; i++)
		buf[i] = name[i] > 0x20 && name[i] < 0x7f ? name[i] : '_';
	buf[i] = '\0';
	return buf;
}

static const char *state_name(uint32_t state)
{
	switch (state) {
	case HBUS_DPC_STARTING: return "starting";
	case HBUS_DPC_RUNNING:  return "running";
	case HBUS_DPC_STOPPING: return "stopping";
	default:                return "unknown";
	}
}

static uint64_t now_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A counter that is no counter: the parser's "no drop" slot. */
static int counter_skipped(const char *name)
{
	return !strcmp(name, "drop_unused");
}

static int is_drop(const char *name)
{
	return !strncmp(name, "drop_", 5);
}

/* Per-lcore counters (every one the file names, plus "drops": the sum of
 * the drop_* counters) and the running totals over lcores. */
static json_t *report_lcore(const struct hbus_dpc_file *f, unsigned li, uint64_t *totals)
{
	const struct hbus_dpc_lcore *l = hbus_dpc_lcore(f, li);
	json_t *o = json_pack("{s:I, s:I}", "lcore_id", (json_int_t)l->lcore_id,
			      "rx_queue", (json_int_t)l->rx_queue);
	uint64_t drops = 0;
	unsigned id;

	char buf[HBUS_DPC_NAME_LEN];

	for (id = 0; o && id < f->hdr->n_counters; id++) {
		const char *name = key_of(hbus_dpc_file_name(f, id), buf);
		uint64_t v = atomic_load_explicit(&l->c[id], memory_order_relaxed);

		if (counter_skipped(name))
			continue;
		totals[id] += v;
		if (is_drop(name))
			drops += v;
		json_object_set_new(o, name, json_integer((json_int_t)v));
	}
	if (o)
		json_object_set_new(o, "drops", json_integer((json_int_t)drops));
	return o;
}

/* The tracked streams of lcore block li, appended to arr (at most *room). */
static void report_streams(const struct hbus_dpc_file *f, unsigned li, json_t *arr,
			   unsigned *room, unsigned *omitted)
{
	const struct hbus_dpc_lcore *l = hbus_dpc_lcore(f, li);
	const struct hbus_dpc_stream *s = hbus_dpc_streams(f, li);
	unsigned i;

	for (i = 0; i < f->hdr->n_streams; i++, s++) {
		if (!atomic_load_explicit(&s->used, memory_order_acquire))
			continue;
		if (*room == 0) {
			(*omitted)++;
			continue;
		}
		(*room)--;
		json_array_append_new(arr, json_pack(
			"{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "lcore_id", (json_int_t)l->lcore_id,
			"stream_id", (json_int_t)atomic_load_explicit(&s->stream_id, memory_order_relaxed),
			"next_seq", (json_int_t)atomic_load_explicit(&s->next_seq, memory_order_relaxed),
			"msgs", (json_int_t)atomic_load_explicit(&s->msgs, memory_order_relaxed),
			"gaps", (json_int_t)atomic_load_explicit(&s->gaps, memory_order_relaxed),
			"dups", (json_int_t)atomic_load_explicit(&s->dups, memory_order_relaxed),
			"resets", (json_int_t)atomic_load_explicit(&s->resets, memory_order_relaxed)));
	}
}

/* One counters file, mapped: everything it says as one JSON object. */
static json_t *report_file(const char *name, const struct hbus_dpc_file *f)
{
	const struct hbus_dpc_hdr *h = f->hdr;
	_Atomic uint64_t *port = hbus_dpc_port(f);
	uint64_t hb = atomic_load_explicit(&h->heartbeat_ns, memory_order_relaxed);
	uint64_t now = now_realtime_ns();
	json_t *o, *totals, *ports, *lcores, *streams;
	uint64_t *sum;
	unsigned li, id, n_lc, room = STAT_STREAMS_MAX, omitted = 0;
	char buf[HBUS_DPC_NAME_LEN];

	sum = calloc(h->n_counters, sizeof(*sum));
	o = json_pack("{s:s, s:b, s:s, s:I, s:o, s:o, s:I, s:o, s:I, s:I}", "name", name,
		      "alive", hbus_dpc_alive(f, ALIVE_MAX_AGE_MS),
		      "state", state_name(atomic_load_explicit(&h->state, memory_order_relaxed)),
		      "pid", (json_int_t)h->pid, "port_name", file_str(h->port_name, sizeof(h->port_name)),
		      "ip", file_str(h->ip, sizeof(h->ip)), "port_id", (json_int_t)h->port_id,
		      "bus", file_str(h->bus, sizeof(h->bus)),
		      "hbus_udp_port", (json_int_t)h->hbus_udp_port,
		      "heartbeat_age_ms", (json_int_t)(now > hb ? (now - hb) / 1000000u : 0));
	totals = json_object();
	ports = json_object();
	lcores = json_array();
	streams = json_array();
	if (!sum || !o || !totals || !ports || !lcores || !streams) {
		free(sum);
		json_decref(o);
		json_decref(totals);
		json_decref(ports);
		json_decref(lcores);
		json_decref(streams);
		return NULL;
	}
	n_lc = atomic_load_explicit(&h->n_lcores, memory_order_acquire);
	if (n_lc > h->max_lcores)
		n_lc = h->max_lcores;
	for (li = 0; li < n_lc; li++) {
		json_array_append_new(lcores, report_lcore(f, li, sum));
		report_streams(f, li, streams, &room, &omitted);
	}
	for (id = 0; id < h->n_counters; id++) {
		const char *key = key_of(hbus_dpc_file_name(f, id), buf);

		if (!counter_skipped(key))
			json_object_set_new(totals, key, json_integer((json_int_t)sum[id]));
	}
	for (id = 0; id < h->n_port_counters; id++)
		json_object_set_new(ports, key_of(hbus_dpc_file_port_name(f, id), buf),
				    json_integer((json_int_t)atomic_load_explicit(
					    &port[id], memory_order_relaxed)));
	free(sum);
	json_object_set_new(o, "totals", totals);
	json_object_set_new(o, "port", ports);
	json_object_set_new(o, "lcores", lcores);
	json_object_set_new(o, "streams", streams);
	if (omitted)
		json_object_set_new(o, "streams_omitted", json_integer(omitted));
	return o;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the counters files in dir (without the suffix), sorted. */
static unsigned list_files(const char *dir, char **names, unsigned max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	if (!d)
		return 0; /* no bus directory yet: no dataplane either */
	while (n < max && (e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (e->d_name[0] == '.' || len <= strlen(SUFFIX) ||
		    strcmp(e->d_name + len - strlen(SUFFIX), SUFFIX) != 0 ||
		    (e->d_type != DT_REG && e->d_type != DT_UNKNOWN))
			continue;
		names[n] = strndup(e->d_name, len - strlen(SUFFIX));
		if (names[n])
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	return n;
}

json_t *report_dataplanes(const char *bus_dir)
{
	char *names[STAT_DATAPLANES_MAX], path[512];
	json_t *arr = json_array();
	struct hbus_dpc_file f;
	unsigned i, n;

	if (!arr)
		return NULL;
	n = list_files(bus_dir, names, STAT_DATAPLANES_MAX);
	for (i = 0; i < n; i++) {
		json_t *it = NULL, *name = file_str(names[i], strlen(names[i]));
		int len = snprintf(path, sizeof(path), "%s/%s%s", bus_dir, names[i], SUFFIX);

		/* Gone since the listing (a clean stop), foreign or damaged:
		 * not a dataplane to report. */
		if (name && len > 0 && (size_t)len < sizeof(path) && hbus_dpc_open(path, &f) == 0) {
			it = report_file(json_string_value(name), &f);
			hbus_dpc_close(&f);
		}
		if (it)
			json_array_append_new(arr, it);
		json_decref(name);
		free(names[i]);
	}
	return arr;
}
