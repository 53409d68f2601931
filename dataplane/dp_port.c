/* dp_port.c - see dp_port.h. */
#include <dirent.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "dp_counter_ids.h"
#include "dp_pipe.h"
#include "dp_port.h"
#include "log.h"
#include "pkt_build.h"

#define POOL_CACHE 256u

/* The AF_PACKET sockets of this process: only net_af_packet opens any. */
static void find_packet_sockets(struct dp_port *p)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL && p->n_pkt_fds < RTE_DIM(p->pkt_fds)) {
		int fd = atoi(e->d_name), domain = 0;
		socklen_t len = sizeof(domain);

		if (fd <= 2 || fd == dirfd(d))
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_PACKET)
			p->pkt_fds[p->n_pkt_fds++] = fd;
	}
	closedir(d);
}

int dp_port_setup(struct dp_port *p, uint16_t id, unsigned want_rxq, unsigned rx_desc,
		  unsigned tx_desc, unsigned mbufs)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info di;
	char pool_name[RTE_MEMPOOL_NAMESIZE];
	uint16_t nb_rxd, nb_txd, q;
	unsigned need;
	int rc;

	memset(p, 0, sizeof(*p));
	p->id = id;
	if (!rte_eth_dev_is_valid_port(id)) {
		HBUS_ERR("port %u does not exist (%u ports; give a --vdev or a device)",
			 id, rte_eth_dev_count_avail());
		return -ENODEV;
	}
	rc = rte_eth_dev_info_get(id, &di);
	if (rc)
		return rc;
	rte_eth_dev_get_name_by_port(id, p->name);
	snprintf(p->driver, sizeof(p->driver), "%s", di.driver_name);
	p->socket = rte_eth_dev_socket_id(id);
	if (p->socket < 0)
		p->socket = (int)rte_socket_id();

	memset(&conf, 0, sizeof(conf));
	p->n_rxq = 1;
	if (want_rxq > 1) {
		uint64_t hf = di.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);

		if (hf && di.max_rx_queues > 1) {
			p->n_rxq = (uint16_t)RTE_MIN(want_rxq, di.max_rx_queues);
			p->rss = 1;
			conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
			conf.rx_adv_conf.rss_conf.rss_hf = hf;
		} else {
			HBUS_WARN("port %u (%s) has no RSS: one RX queue, %u worker lcore(s) unused",
				  id, p->driver, want_rxq - 1);
		}
	}
	p->n_txq = (uint16_t)RTE_MIN((unsigned)p->n_rxq, (unsigned)di.max_tx_queues);
	if (p->n_txq == 0) {
		HBUS_ERR("port %u (%s) has no TX queue: cannot answer ARP", id, p->driver);
		return -ENOTSUP;
	}
	/* Checksum offloads become parser hints; VLAN stays in the frame. */
	p->rx_offloads = di.rx_offload_capa &
			 (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
	conf.rxmode.offloads = p->rx_offloads;

	rc = rte_eth_dev_configure(id, p->n_rxq, p->n_txq, &conf);
	if (rc) {
		HBUS_ERR("port %u: configure %u rx / %u tx queues: %s", id, p->n_rxq, p->n_txq,
			 strerror(-rc));
		return rc;
	}
	nb_rxd = (uint16_t)rx_desc;
	nb_txd = (uint16_t)tx_desc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(id, &nb_rxd, &nb_txd);
	if (rc)
		return rc;

	need = (unsigned)p->n_rxq * nb_rxd + (unsigned)p->n_txq * nb_txd +
	       (rte_lcore_count() + 1) * (POOL_CACHE + DP_BURST_MAX) + 1024;
	if (mbufs == 0)
		mbufs = need;
	else if (mbufs < need)
		HBUS_WARN("--mbufs %u is below the %u the queues can hold: RX may starve", mbufs, need);
	snprintf(pool_name, sizeof(pool_name), "hbus_mp_%u", id);
	p->pool = rte_pktmbuf_pool_create(pool_name, mbufs, POOL_CACHE, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE, p->socket);
	if (!p->pool) {
		HBUS_ERR("port %u: mbuf pool of %u: %s (more memory: EAL -m, or hugepages)", id,
			 mbufs, rte_strerror(rte_errno));
		return -rte_errno;
	}
	for (q = 0; q < p->n_rxq; q++) {
		struct rte_eth_rxconf rxc = di.default_rxconf;

		rxc.offloads = conf.rxmode.offloads;
		rc = rte_eth_rx_queue_setup(id, q, nb_rxd, p->socket, &rxc, p->pool);
		if (rc) {
			HBUS_ERR("port %u: rx queue %u: %s", id, q, strerror(-rc));
			return rc;
		}
	}
	for (q = 0; q < p->n_txq; q++) {
		rc = rte_eth_tx_queue_setup(id, q, nb_txd, p->socket, NULL);
		if (rc) {
			HBUS_ERR("port %u: tx queue %u: %s", id, q, strerror(-rc));
			return rc;
		}
	}
	rc = rte_eth_dev_start(id);
	if (rc) {
		HBUS_ERR("port %u: start: %s", id, strerror(-rc));
		return rc;
	}
	p->started = 1;
	rte_eth_macaddr_get(id, &p->mac);
	if (!strcmp(p->driver, "net_af_packet"))
		find_packet_sockets(p);
	HBUS_INFO("port %u %s (%s) mac " RTE_ETHER_ADDR_PRT_FMT ": %u rx queue(s)%s, %u tx, "
		  "%u mbufs", id, p->name, p->driver, RTE_ETHER_ADDR_BYTES(&p->mac), p->n_rxq,
		  p->rss ? " (RSS)" : "", p->n_txq, mbufs);
	return 0;
}

void dp_port_close(struct dp_port *p)
{
	if (p->started) {
		rte_eth_dev_stop(p->id);
		rte_eth_dev_close(p->id);
		p->started = 0;
	}
	if (p->pool) {
		rte_mempool_free(p->pool);
		p->pool = NULL;
	}
}

static const char *mc_mode_name(enum dp_mc_mode m)
{
	static const char *const names[] = { "none", "MAC filter", "allmulticast",
					     "promiscuous", "unfiltered (port delivers all)" };
	return names[m];
}

int dp_port_set_groups(struct dp_port *p, const uint32_t *groups, unsigned n)
{
	struct rte_ether_addr macs[HBUS_MCAST_MAX];
	enum dp_mc_mode was = p->mc_mode, now;
	unsigned i;
	int rc;

	if (n > HBUS_MCAST_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		hbus_mcast_mac(groups[i], macs[i].addr_bytes);
	/* The exact list first; a port without one takes every multicast
	 * frame instead (the parser still drops groups we have not joined). */
	rc = rte_eth_dev_set_mc_addr_list(p->id, n ? macs : NULL, n);
	if (rc == 0) {
		now = n ? DP_MC_FILTER : DP_MC_NONE;
		if (was == DP_MC_ALLMULTI)
			rte_eth_allmulticast_disable(p->id);
	} else if (n == 0) {
		now = was == DP_MC_FILTER ? DP_MC_NONE : was; /* keep a fallback mode on */
	} else if (was == DP_MC_ALLMULTI || was == DP_MC_PROMISC || was == DP_MC_UNFILTERED) {
		now = was;
	} else if (rte_eth_allmulticast_enable(p->id) == 0) {
		now = DP_MC_ALLMULTI;
	} else if (rte_eth_promiscuous_enable(p->id) == 0) {
		now = DP_MC_PROMISC;
	} else {
		now = DP_MC_UNFILTERED;
	}
	if (now != was)
		HBUS_INFO("port %u: multicast receive: %s (%u group%s)", p->id, mc_mode_name(now), n,
			  n == 1 ? "" : "s");
	p->mc_mode = now;
	return 0;
}

void dp_port_stats(struct dp_port *p, _Atomic uint64_t *c)
{
	struct rte_eth_stats st;
	unsigned i;

	for (i = 0; i < p->n_pkt_fds; i++) {
		struct tpacket_stats ts;
		socklen_t len = sizeof(ts);

		if (getsockopt(p->pkt_fds[i], SOL_PACKET, PACKET_STATISTICS, &ts, &len) == 0)
			p->kernel_drops += ts.tp_drops; /* the kernel resets them on read */
	}
	atomic_store_explicit(&c[HBUS_DPC_PORT_KERNEL_DROPS], p->kernel_drops, memory_order_relaxed);

	if (rte_eth_stats_get(p->id, &st) != 0)
		return;
	atomic_store_explicit(&c[HBUS_DPC_PORT_IPACKETS], st.ipackets, memory_order_relaxed);
	atomic_store_explicit(&c[HBUS_DPC_PORT_IBYTES], st.ibytes, memory_order_relaxed);
	atomic_store_explicit(&c[HBUS_DPC_PORT_IMISSED], st.imissed, memory_order_relaxed);
	atomic_store_explicit(&c[HBUS_DPC_PORT_IERRORS], st.ierrors, memory_order_relaxed);
	atomic_store_explicit(&c[HBUS_DPC_PORT_RX_NOMBUF], st.rx_nombuf, memory_order_relaxed);
	atomic_store_explicit(&c[HBUS_DPC_PORT_OPACKETS], st.opackets, memory_order_relaxed);
	atomic_store_explicit(&c[HBUS_DPC_PORT_OBYTES], st.obytes, memory_order_relaxed);
	atomic_store_explicit(&c[HBUS_DPC_PORT_OERRORS], st.oerrors, memory_order_relaxed);
}
