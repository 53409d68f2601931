/*
 * dp_port.h - one DPDK ethdev port set up for hbus: an mbuf pool, one RX
 * queue per worker (RSS when the port has it), one TX queue per worker
 * where the port has enough, and the multicast receive filter.
 *
 * Control path only (main lcore).
 */
#ifndef HBUS_DP_PORT_H
#define HBUS_DP_PORT_H

#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include "pkt.h"

enum dp_mc_mode {
	DP_MC_NONE      = 0, /* no group joined yet */
	DP_MC_FILTER    = 1, /* exact MAC list (rte_eth_dev_set_mc_addr_list) */
	DP_MC_ALLMULTI  = 2, /* the port has no list: every multicast frame */
	DP_MC_PROMISC   = 3, /* neither: promiscuous */
	DP_MC_UNFILTERED = 4, /* the port can do none of those: it delivers what it gets */
};

struct dp_port {
	uint16_t id;
	uint16_t n_rxq, n_txq;
	int socket;
	int rss;                 /* RSS spreads flows over the RX queues */
	uint64_t rx_offloads;    /* enabled: checksum offloads become parser hints */
	struct rte_mempool *pool;
	struct rte_ether_addr mac;
	enum dp_mc_mode mc_mode;
	char name[RTE_ETH_NAME_MAX_LEN];
	char driver[32];
	int started;
	/* net_af_packet: its packet sockets, whose ring drops the PMD of DPDK
	 * 22.11 does not report; read (and reset) with PACKET_STATISTICS. */
	int pkt_fds[16];
	unsigned n_pkt_fds;
	uint64_t kernel_drops;
};

/*
 * Configure and start port id for want_rxq workers.  n_rxq may come out
 * lower (no RSS: 1; or the port's maximum); n_txq is min(workers, max).
 * mbufs 0 = size the pool from the queue sizes.  Negative errno with a
 * logged reason on failure.
 */
int dp_port_setup(struct dp_port *p, uint16_t id, unsigned want_rxq, unsigned rx_desc,
		  unsigned tx_desc, unsigned mbufs);
void dp_port_close(struct dp_port *p);

/* Receive exactly these IPv4 multicast groups (host order): MAC filter,
 * else allmulticast, else promiscuous.  Sets p->mc_mode. */
int dp_port_set_groups(struct dp_port *p, const uint32_t *groups, unsigned n);

/* Copy the ethdev statistics into the port counters (enum hbus_dpc_port_id). */
void dp_port_stats(struct dp_port *p, _Atomic uint64_t *port_ctr);

/* Parser hints (HBUS_PKT_HINT_*) an mbuf's RX offload flags vouch for. */
static inline unsigned dp_port_hints(const struct rte_mbuf *m)
{
	unsigned h = 0;

	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		h |= HBUS_PKT_HINT_IP_CSUM_GOOD;
	if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		h |= HBUS_PKT_HINT_L4_CSUM_GOOD;
	return h;
}

#endif
