/* dp_counter_ids.c - the names of the dataplane's counters (dp_counter_ids.h). */
#include <pthread.h>
#include <stdio.h>

#include "dp_counter_ids.h"

static const char *const dpc_names[HBUS_DPC__COUNT - HBUS_DPC_RX_PKTS] = {
	[HBUS_DPC_RX_PKTS - HBUS_DPC_RX_PKTS]             = "rx_pkts",
	[HBUS_DPC_RX_BYTES - HBUS_DPC_RX_PKTS]            = "rx_bytes",
	[HBUS_DPC_BURSTS - HBUS_DPC_RX_PKTS]              = "bursts",
	[HBUS_DPC_UDP_PKTS - HBUS_DPC_RX_PKTS]            = "udp_pkts",
	[HBUS_DPC_ARP_REQUESTS - HBUS_DPC_RX_PKTS]        = "arp_requests",
	[HBUS_DPC_ARP_REPLIES - HBUS_DPC_RX_PKTS]         = "arp_replies",
	[HBUS_DPC_IGMP_QUERIES - HBUS_DPC_RX_PKTS]        = "igmp_queries",
	[HBUS_DPC_TX_FAILED - HBUS_DPC_RX_PKTS]           = "tx_failed",
	[HBUS_DPC_DROP_MULTISEG - HBUS_DPC_RX_PKTS]       = "drop_multiseg",
	[HBUS_DPC_HBUS_FRAMES - HBUS_DPC_RX_PKTS]         = "hbus_frames",
	[HBUS_DPC_HEARTBEATS - HBUS_DPC_RX_PKTS]          = "heartbeats",
	[HBUS_DPC_RAW_DGRAMS - HBUS_DPC_RX_PKTS]          = "raw_dgrams",
	[HBUS_DPC_DROP_NO_UDPMAP - HBUS_DPC_RX_PKTS]      = "drop_no_udpmap",
	[HBUS_DPC_DROP_NO_TABLE - HBUS_DPC_RX_PKTS]       = "drop_no_table",
	[HBUS_DPC_DROP_FRAME_MAGIC - HBUS_DPC_RX_PKTS]    = "drop_frame_magic",
	[HBUS_DPC_DROP_FRAME_VERSION - HBUS_DPC_RX_PKTS]  = "drop_frame_version",
	[HBUS_DPC_DROP_FRAME_LENGTH - HBUS_DPC_RX_PKTS]   = "drop_frame_length",
	[HBUS_DPC_DROP_RECORD_LENGTH - HBUS_DPC_RX_PKTS]  = "drop_record_length",
	[HBUS_DPC_MSGS - HBUS_DPC_RX_PKTS]                = "msgs",
	[HBUS_DPC_DROP_BAD_META - HBUS_DPC_RX_PKTS]       = "drop_bad_meta",
	[HBUS_DPC_DROP_NO_EXCHANGE - HBUS_DPC_RX_PKTS]    = "drop_no_exchange",
	[HBUS_DPC_DROP_NO_ROUTE - HBUS_DPC_RX_PKTS]       = "drop_no_route",
	[HBUS_DPC_ROUTED - HBUS_DPC_RX_PKTS]              = "routed",
	[HBUS_DPC_ENQUEUES - HBUS_DPC_RX_PKTS]            = "enqueues",
	[HBUS_DPC_DELIVERED - HBUS_DPC_RX_PKTS]           = "delivered",
	[HBUS_DPC_DROP_QUEUE_FULL - HBUS_DPC_RX_PKTS]     = "drop_queue_full",
	[HBUS_DPC_DROP_OVERSIZE - HBUS_DPC_RX_PKTS]       = "drop_oversize",
	[HBUS_DPC_DROP_NO_QUEUE - HBUS_DPC_RX_PKTS]       = "drop_no_queue",
	[HBUS_DPC_DROP_QUEUE_FAULT - HBUS_DPC_RX_PKTS]    = "drop_queue_fault",
	[HBUS_DPC_DROP_QUEUE_LOCKED - HBUS_DPC_RX_PKTS]   = "drop_queue_locked",
	[HBUS_DPC_SEQ_GAPS - HBUS_DPC_RX_PKTS]            = "seq_gaps",
	[HBUS_DPC_SEQ_DUPS - HBUS_DPC_RX_PKTS]            = "seq_dups",
	[HBUS_DPC_SEQ_RESETS - HBUS_DPC_RX_PKTS]          = "seq_resets",
	[HBUS_DPC_STREAMS_UNTRACKED - HBUS_DPC_RX_PKTS]   = "streams_untracked",
};

static const char *const dpc_port_names[HBUS_DPC_PORT__COUNT] = {
	[HBUS_DPC_PORT_IPACKETS]     = "port_ipackets",
	[HBUS_DPC_PORT_IBYTES]       = "port_ibytes",
	[HBUS_DPC_PORT_IMISSED]      = "port_imissed",
	[HBUS_DPC_PORT_IERRORS]      = "port_ierrors",
	[HBUS_DPC_PORT_RX_NOMBUF]    = "port_rx_nombuf",
	[HBUS_DPC_PORT_KERNEL_DROPS] = "port_kernel_drops",
	[HBUS_DPC_PORT_OPACKETS]     = "port_opackets",
	[HBUS_DPC_PORT_OBYTES]       = "port_obytes",
	[HBUS_DPC_PORT_OERRORS]      = "port_oerrors",
	[HBUS_DPC_PORT_MCAST_GROUPS] = "mcast_groups",
	[HBUS_DPC_PORT_IGMP_REPORTS] = "igmp_reports",
	[HBUS_DPC_PORT_RECONNECTS]   = "reconnects",
	[HBUS_DPC_PORT_TABLE_GEN]    = "table_generation",
};

/* Parser drop names get a "drop_" prefix: built once, read-only after. */
static char parser_names[HBUS_PKT_DROP__COUNT][HBUS_DPC_NAME_LEN];
static pthread_once_t parser_names_once = PTHREAD_ONCE_INIT;

static void parser_names_init(void)
{
	for (unsigned id = 0; id < HBUS_PKT_DROP__COUNT; id++)
		snprintf(parser_names[id], HBUS_DPC_NAME_LEN, "drop_%s",
			 id == HBUS_PKT_DROP_NONE ? "unused" : hbus_pkt_drop_name(id));
}

const char *hbus_dpc_name(unsigned id)
{
	if (id < HBUS_PKT_DROP__COUNT) {
		pthread_once(&parser_names_once, parser_names_init);
		return parser_names[id];
	}
	if (id < HBUS_DPC__COUNT)
		return dpc_names[id - HBUS_DPC_RX_PKTS];
	return NULL;
}

const char *hbus_dpc_port_name(unsigned id)
{
	return id < HBUS_DPC_PORT__COUNT ? dpc_port_names[id] : NULL;
}
