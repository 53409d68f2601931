/*
 * dp_counter_ids.h - the counters hbus-dataplane keeps: the writer's index
 * into the counters file (shm/dp_counters.h, the format) and their names.
 *
 * Accounting identities (docs/DATAPLANE.md, checked by tests/test_dataplane
 * and tests/test_dp_pipe):
 *   rx_pkts  = udp_pkts + arp_requests + igmp_queries + every drop_<parser reason>
 *              + drop_multiseg
 *   udp_pkts = hbus_frames + raw_dgrams + drop_no_udpmap + drop_no_table
 *              + drop_frame_magic + drop_frame_version + drop_frame_length
 *   msgs     = routed + drop_no_exchange + drop_no_route + drop_bad_meta
 *   enqueues = delivered + drop_queue_full + drop_oversize + drop_no_queue
 *              + drop_queue_fault + drop_queue_locked
 * where msgs counts the messages of valid hbus frames plus raw datagrams,
 * and enqueues counts (message, queue) pairs.  drop_record_length counts the
 * messages a frame announced but lost to a record running past the frame.
 */
#ifndef HBUS_DP_COUNTER_IDS_H
#define HBUS_DP_COUNTER_IDS_H

#include "dp_counters.h"
#include "pkt.h"

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
	HBUS_DPC_DROP_QUEUE_FAULT,   /* queue file truncated under us (SIGBUS): dropped for good */
	HBUS_DPC_DROP_QUEUE_LOCKED,  /* --exclusive-producer: another writer holds the queue */
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

/* Counter name for index id ("rx_pkts", "drop_bad_ip_checksum", ...). */
const char *hbus_dpc_name(unsigned id);
const char *hbus_dpc_port_name(unsigned id);

/* The dataplane's counters, for a struct hbus_dpc_info initializer:
 *   struct hbus_dpc_info info = { .name = ..., HBUS_DPC_DATAPLANE_COUNTERS };  */
#define HBUS_DPC_DATAPLANE_COUNTERS                                              \
	.n_counters = HBUS_DPC__COUNT, .n_port_counters = HBUS_DPC_PORT__COUNT,  \
	.counter_name = hbus_dpc_name, .port_counter_name = hbus_dpc_port_name

#endif
