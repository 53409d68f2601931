/*
 * dp_counters.h - the dataplane's counters file: layout, writer and reader.
 *
 * A shared format, so it lives here with the other files of a bus: hbus-
 * dataplane writes it, hbusd reads it for its stat reply (what `hbus stat`
 * prints) and the tests read it; nothing here knows which counters a
 * dataplane keeps (dataplane/dp_counter_ids.h, the writer's index, gives
 * their names when it creates the file).  One file per dataplane process,
 * in the bus directory:
 *
 *   <bus dir>/<name>.counters      (name: hbus-dataplane --name, default "dataplane")
 *
 *   [ struct hbus_dpc_hdr ]
 *   [ counter names: n_counters x char[HBUS_DPC_NAME_LEN] ]
 *   [ port counter names: n_port_counters x char[HBUS_DPC_NAME_LEN] ]
 *   [ port block: n_port_counters x u64 ]
 *   [ lcore block 0 ] ... [ lcore block max_lcores-1 ]     (lcore_stride bytes each)
 *
 *   lcore block: struct hbus_dpc_lcore (ids, then n_counters x u64),
 *                then at streams_off n_streams x struct hbus_dpc_stream.
 *
 * The names travel in the file, so a reader prints every counter of a
 * newer writer without knowing its index.  Every counter has exactly one
 * writer (a worker lcore for its block, the main lcore for the port block
 * and the header's heartbeat) that updates it with relaxed atomic load +
 * store; readers use relaxed loads and may see a sum a few packets old,
 * never a torn value.
 */
#ifndef HBUS_DP_COUNTERS_H
#define HBUS_DP_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "shm_file.h"

#define HBUS_DPC_LAYOUT_VERSION 1u
#define HBUS_DPC_NAME_LEN       32u
#define HBUS_DPC_STREAMS        256u  /* tracked streams per lcore (power of two) */
#define HBUS_DPC_MAX_LCORES     128u
#define HBUS_DPC_MAX_COUNTERS   4096u /* per lcore block, and in the port block */

enum hbus_dpc_state {
	HBUS_DPC_STARTING = 0,
	HBUS_DPC_RUNNING  = 1,
	HBUS_DPC_STOPPING = 2,
};

struct hbus_dpc_hdr {
	struct hbus_file_hdr file;     /* kind HBUS_FILE_COUNTERS */
	uint32_t n_counters;
	uint32_t n_port_counters;
	uint32_t max_lcores;
	uint32_t n_streams;
	uint64_t names_off;
	uint64_t port_names_off;
	uint64_t port_off;
	uint64_t lcores_off;
	uint64_t lcore_stride;
	uint64_t streams_off;          /* inside an lcore block */
	uint32_t pid;
	_Atomic uint32_t n_lcores;     /* lcore blocks in use */
	_Atomic uint32_t state;        /* enum hbus_dpc_state */
	uint16_t port_id;
	uint16_t hbus_udp_port;
	uint64_t start_ns;             /* CLOCK_REALTIME */
	_Atomic uint64_t heartbeat_ns; /* main lcore, every ~100 ms: stale = process gone */
	char name[64];
	char bus[64];
	char port_name[64];
	char ip[32];                   /* "ADDR/PREFIX" */
};

struct hbus_dpc_lcore {
	uint32_t lcore_id;
	uint32_t rx_queue;
	uint32_t reserved[14];
	_Atomic uint64_t c[];          /* n_counters */
};

/*
 * One tracked sequence stream (hbus frames' stream_id) on one lcore.
 * durable_seq trails next_seq by at most one burst: every message below it
 * was enqueued or counted.  A dataplane that replaces the file of a dead
 * one starts each stream from there (hbus_dpc_create), so what the kernel
 * dropped while no dataplane ran, and the burst the dead one was cut in,
 * are counted as gaps; msgs/gaps/dups/resets start from 0 per process.
 */
struct hbus_dpc_stream {
	_Atomic uint32_t stream_id;
	_Atomic uint32_t used;         /* 0 = free entry */
	_Atomic uint64_t next_seq;     /* sequence expected next */
	_Atomic uint64_t msgs;
	_Atomic uint64_t gaps;
	_Atomic uint64_t dups;
	_Atomic uint64_t resets;
	_Atomic uint64_t durable_seq;  /* committed after each burst's enqueue */
	uint64_t reserved;
};

/* Single-writer increment: a relaxed load and store (no locked RMW). */
static inline void hbus_dpc_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* -------------------------------------------------------- the file */

struct hbus_dpc_file {
	struct hbus_map map;
	int fd;
	struct hbus_dpc_hdr *hdr;
};

struct hbus_dpc_info {
	const char *name, *bus, *ip, *port_name;
	uint16_t port_id, hbus_udp_port;
	uint32_t max_lcores;
	/* The writer's counters: how many, and the name of each index (names
	 * are at most HBUS_DPC_NAME_LEN - 1 bytes; NULL for an index is "?"). */
	uint32_t n_counters, n_port_counters;
	const char *(*counter_name)(unsigned id);
	const char *(*port_counter_name)(unsigned id);
};

/* Writer: create <dir>/<info->name>.counters (replacing a file whose
 * writer is gone, atomically by rename, and taking over its streams' table
 * from durable_seq; -EADDRINUSE when a live process still writes it). */
int hbus_dpc_create(const char *dir, const struct hbus_dpc_info *info, struct hbus_dpc_file *f);
/* Writer at a clean stop: unmap and unlink. */
void hbus_dpc_destroy(struct hbus_dpc_file *f, const char *dir);

/* Reader (read-only map; checks magic, kind, version and every offset).
 * Never blocks and never follows a symbolic link: anything but a regular
 * file is refused (-EPROTO for a link), so hbusd may scan the bus dir. */
int hbus_dpc_open(const char *path, struct hbus_dpc_file *f);
void hbus_dpc_close(struct hbus_dpc_file *f);

/* Accessors, bounds-checked against the header (NULL when out of range). */
struct hbus_dpc_lcore *hbus_dpc_lcore(const struct hbus_dpc_file *f, unsigned i);
struct hbus_dpc_stream *hbus_dpc_streams(const struct hbus_dpc_file *f, unsigned i);
_Atomic uint64_t *hbus_dpc_port(const struct hbus_dpc_file *f);
const char *hbus_dpc_file_name(const struct hbus_dpc_file *f, unsigned id);
const char *hbus_dpc_file_port_name(const struct hbus_dpc_file *f, unsigned id);

/* Sum counter id over the lcores in use. */
uint64_t hbus_dpc_total(const struct hbus_dpc_file *f, unsigned id);
/* Whether the writer looks alive: its pid exists and the heartbeat is
 * younger than max_age_ms. */
int hbus_dpc_alive(const struct hbus_dpc_file *f, unsigned max_age_ms);

#endif
