/*
 * dp_counters.h - the dataplane's counters file: layout and reader API.
 *
 * Pure C, no DPDK: hbus-dataplane writes the file, `hbus stat` and the
 * tests read it.  One file per dataplane process, in the bus directory:
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
 * newer writer without knowing its enum; the enum below is the writer's
 * index.  Every counter has exactly one writer (a worker lcore for its
 * block, the main lcore for the port block and the header's heartbeat) that
 * updates it with relaxed atomic load + store; readers use relaxed loads and
 * may see a sum a few packets old, never a torn value.
 *
 * Accounting identities (docs/DATAPLANE.md, checked by tests/test_dataplane):
 *   rx_pkts  = udp_pkts + arp_requests + igmp_queries + every drop_<parser reason>
 *              + drop_multiseg
 *   udp_pkts = hbus_frames + raw_dgrams + drop_no_udpmap + drop_no_table
 *              + drop_frame_magic + drop_frame_version + drop_frame_length
 *   msgs     = routed + drop_no_exchange + drop_no_route + drop_bad_meta
 *   enqueues = delivered + drop_queue_full + drop_oversize + drop_no_queue
 * where msgs counts the messages of valid hbus frames plus raw datagrams,
 * and enqueues counts (message, queue) pairs.  drop_record_length counts the
 * messages a frame announced but lost to a record running past the frame.
 */
#ifndef HBUS_DP_COUNTERS_H
#define HBUS_DP_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pkt.h"
#include "shm_file.h"

#define HBUS_DPC_LAYOUT_VERSION 1u
#define HBUS_DPC_NAME_LEN       32u
#define HBUS_DPC_STREAMS        256u  /* tracked streams per lcore (power of two) */
#define HBUS_DPC_MAX_LCORES     128u

/*
 * Per-lcore counters.  The first block mirrors enum hbus_pkt_drop (one
 * counter per parser drop reason, same order) so the worker indexes it with
 * the parser's reason directly.
 */
enum hbus_dpc_id {
	HBUS_DPC_PARSER_DROPS = 0, /* + enum hbus_pkt_drop; index 0 (NONE) unused */
	HBUS_DPC_RX_PKTS = HBUS_PKT_DROP__COUNT,
	HBUS_DPC_RX_BYTES,
	HBUS_DPC_BURSTS,          /* non-empty rx bursts */
	HBUS_DPC_UDP_PKTS,        /* UDP datagrams for us, past the parser */
	HBUS_DPC_ARP_REQUESTS,    /* ARP requests for our address */
	HBUS_DPC_ARP_REPLIES,     /* replies sent */
	HBUS_DPC_IGMP_QUERIES,
	HBUS_DPC_TX_FAILED,       /* ARP replies / IGMP reports the port did not take */
	HBUS_DPC_DROP_MULTISEG,   /* frame spread over several mbufs (bigger than one) */
	HBUS_DPC_HBUS_FRAMES,     /* valid hbus frames (header checked) */
	HBUS_DPC_HEARTBEATS,      /* hbus frames with no message */
	HBUS_DPC_RAW_DGRAMS,      /* datagrams routed by a udpmap (raw mode) */
	HBUS_DPC_DROP_NO_UDPMAP,  /* UDP to a port/address nothing maps */
	HBUS_DPC_DROP_NO_TABLE,   /* no routing table yet (hbusd never reached) */
	HBUS_DPC_DROP_FRAME_MAGIC,
	HBUS_DPC_DROP_FRAME_VERSION,
	HBUS_DPC_DROP_FRAME_LENGTH,  /* header truncated / msg_count past the datagram */
	HBUS_DPC_DROP_RECORD_LENGTH, /* messages lost to a record running past the frame */
	HBUS_DPC_MSGS,
	HBUS_DPC_DROP_BAD_META,      /* metadata block malformed */
	HBUS_DPC_DROP_NO_EXCHANGE,   /* exchange unknown to the routing table */
	HBUS_DPC_DROP_NO_ROUTE,      /* routed to no queue */
	HBUS_DPC_ROUTED,             /* messages routed to at least one queue */
	HBUS_DPC_ENQUEUES,           /* (message, queue) pairs the routes produced */
	HBUS_DPC_DELIVERED,          /* (message, queue) enqueues */
	HBUS_DPC_DROP_QUEUE_FULL,
	HBUS_DPC_DROP_OVERSIZE,      /* message larger than the queue's slot */
	HBUS_DPC_DROP_NO_QUEUE,      /* queue handle not available (gone, or not opened yet) */
	HBUS_DPC_SEQ_GAPS,           /* messages missing, all streams */
	HBUS_DPC_SEQ_DUPS,           /* duplicate or reordered messages, all streams */
	HBUS_DPC_SEQ_RESETS,         /* streams that restarted from a far lower sequence */
	HBUS_DPC_STREAMS_UNTRACKED,  /* frames of streams that found the table full */
	HBUS_DPC__COUNT
};

/* Per-port counters, copied from rte_eth_stats by the main lcore. */
enum hbus_dpc_port_id {
	HBUS_DPC_PORT_IPACKETS = 0,
	HBUS_DPC_PORT_IBYTES,
	HBUS_DPC_PORT_IMISSED,   /* frames the port dropped: RX ring full */
	HBUS_DPC_PORT_IERRORS,
	HBUS_DPC_PORT_RX_NOMBUF,
	HBUS_DPC_PORT_KERNEL_DROPS, /* net_af_packet: frames its kernel ring dropped (PACKET_STATISTICS) */
	HBUS_DPC_PORT_OPACKETS,
	HBUS_DPC_PORT_OBYTES,
	HBUS_DPC_PORT_OERRORS,
	HBUS_DPC_PORT_MCAST_GROUPS, /* groups joined now */
	HBUS_DPC_PORT_IGMP_REPORTS, /* reports and leaves sent */
	HBUS_DPC_PORT_RECONNECTS,   /* hbusd sessions re-established */
	HBUS_DPC_PORT_TABLE_GEN,    /* routing-table generation the main lcore last saw */
	HBUS_DPC_PORT__COUNT
};

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

/* Counter name for index id ("rx_pkts", "drop_bad_ip_checksum", ...). */
const char *hbus_dpc_name(unsigned id);
const char *hbus_dpc_port_name(unsigned id);

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
