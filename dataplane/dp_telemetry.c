/* dp_telemetry.c - see dp_telemetry.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <rte_telemetry.h>

#include "dp_telemetry.h"

/*
 * Set before registering, cleared before the file is unmapped.  A command
 * marks itself busy before it loads the pointer and detach waits for no
 * command to be busy after clearing it (both seq_cst: whichever comes
 * second sees the other), so a command never reads an unmapped file.
 */
static const struct hbus_dpc_file *_Atomic tel_file;
static _Atomic int tel_busy;

static const struct hbus_dpc_file *file_get(void)
{
	atomic_fetch_add(&tel_busy, 1);
	return atomic_load(&tel_file);
}

static int file_put(int rc)
{
	atomic_fetch_sub(&tel_busy, 1);
	return rc;
}

static int cmd_stats_f(const struct hbus_dpc_file *f, const char *params, struct rte_tel_data *d)
{
	_Atomic uint64_t *port;
	unsigned i;

	(void)params;
	rte_tel_data_start_dict(d);
	/* Index 0 is no reason (the parser's NONE): not a counter. */
	for (i = 1; i < f->hdr->n_counters; i++)
		rte_tel_data_add_dict_u64(d, hbus_dpc_file_name(f, i), hbus_dpc_total(f, i));
	port = hbus_dpc_port(f);
	for (i = 0; i < f->hdr->n_port_counters; i++)
		rte_tel_data_add_dict_u64(d, hbus_dpc_file_port_name(f, i),
					  atomic_load_explicit(&port[i], memory_order_relaxed));
	rte_tel_data_add_dict_u64(d, "lcores",
				  atomic_load_explicit(&f->hdr->n_lcores, memory_order_relaxed));
	return 0;
}

static int cmd_lcore_f(const struct hbus_dpc_file *f, const char *params, struct rte_tel_data *d)
{
	struct hbus_dpc_lcore *l;
	char *end;
	unsigned long n;
	unsigned i;

	if (!params || !*params)
		return -EINVAL;
	n = strtoul(params, &end, 10);
	if (*end || n >= atomic_load_explicit(&f->hdr->n_lcores, memory_order_relaxed))
		return -EINVAL;
	l = hbus_dpc_lcore(f, (unsigned)n);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "lcore_id", l->lcore_id);
	rte_tel_data_add_dict_u64(d, "rx_queue", l->rx_queue);
	for (i = 1; i < f->hdr->n_counters; i++)
		rte_tel_data_add_dict_u64(d, hbus_dpc_file_name(f, i),
					  atomic_load_explicit(&l->c[i], memory_order_relaxed));
	return 0;
}

static int cmd_streams_f(const struct hbus_dpc_file *f, const char *params, struct rte_tel_data *d)
{
	unsigned li, si, nl;

	(void)params;
	rte_tel_data_start_dict(d);
	nl = atomic_load_explicit(&f->hdr->n_lcores, memory_order_relaxed);
	for (li = 0; li < nl; li++) {
		struct hbus_dpc_stream *s = hbus_dpc_streams(f, li);

		for (si = 0; si < f->hdr->n_streams; si++, s++) {
			struct rte_tel_data *e;
			char key[32];

			if (!atomic_load_explicit(&s->used, memory_order_acquire))
				continue;
			e = rte_tel_data_alloc();
			if (!e)
				return -ENOMEM;
			rte_tel_data_start_dict(e);
			rte_tel_data_add_dict_u64(e, "lcore", li);
#define S(field) rte_tel_data_add_dict_u64(e, #field, \
		atomic_load_explicit(&s->field, memory_order_relaxed))
			S(next_seq);
			S(msgs);
			S(gaps);
			S(dups);
			S(resets);
#undef S
			snprintf(key, sizeof(key), "%u",
				 atomic_load_explicit(&s->stream_id, memory_order_relaxed));
			/* The dictionary holds a bounded number of entries:
			 * past it, the rest is in the counters file. */
			if (rte_tel_data_add_dict_container(d, key, e, 0) != 0) {
				rte_tel_data_free(e);
				return 0;
			}
		}
	}
	return 0;
}

#define COMMAND(name)                                                             \
	static int name(const char *cmd, const char *params, struct rte_tel_data *d)  \
	{                                                                         \
		const struct hbus_dpc_file *f = file_get();                       \
		(void)cmd;                                                        \
		return file_put(f ? name##_f(f, params, d) : -ENODEV);            \
	}
COMMAND(cmd_stats)
COMMAND(cmd_lcore)
COMMAND(cmd_streams)

int dp_telemetry_register(const struct hbus_dpc_file *f)
{
	int rc;

	atomic_store_explicit(&tel_file, f, memory_order_release);
	rc = rte_telemetry_register_cmd("/hbus/stats", cmd_stats,
		"hbus dataplane counters summed over worker lcores, and the port's. No parameters");
	if (rc == 0)
		rc = rte_telemetry_register_cmd("/hbus/lcore", cmd_lcore,
			"One worker's counters. Parameter: worker index");
	if (rc == 0)
		rc = rte_telemetry_register_cmd("/hbus/streams", cmd_streams,
			"Sequence tracking per hbus stream id. No parameters");
	return rc;
}

void dp_telemetry_detach(void)
{
	struct timespec ts = { 0, 1000000 };

	atomic_store(&tel_file, NULL);
	while (atomic_load(&tel_busy) != 0)
		nanosleep(&ts, NULL);
}
