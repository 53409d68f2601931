/*
 * dp_main.c - hbus-dataplane: EAL, one port, one worker per RX queue, the
 * main lcore's control loop, and a clean stop on SIGINT/SIGTERM.
 *
 *   hbus-dataplane <EAL args> -- --bus NAME --ip ADDR/PREFIX [options]
 *
 * Lifecycle: EAL init -> port up -> bus directory (from hbusd's hello,
 * waiting for hbusd if need be; or --shm-dir) -> counters file there ->
 * workers launched (each opens its own router once the session exists) ->
 * main loop (session, multicast, stats; 5 ms period) -> signal, or hbusd
 * serving the bus from another directory -> workers finish their burst and
 * close their routers -> groups left, session closed -> port closed ->
 * counters file removed -> EAL cleanup.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "dp_busdir.h"
#include "dp_config.h"
#include "dp_control.h"
#include "dp_port.h"
#include "dp_telemetry.h"
#include "dp_worker.h"
#include "fault_guard.h"
#include "log.h"
#include "shm_file.h"

static volatile sig_atomic_t stop_signal;
static _Atomic int workers_stop;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

struct dataplane {
	struct dp_config cfg;
	struct dp_port port;
	struct hbus_dpc_file ctr;
	char bus_dir[512];
	struct rte_ring *queries, *tx_ring;
	struct rte_rcu_qsbr *qsbr;
	struct dp_worker *workers[RTE_MAX_LCORE];
	unsigned n_workers;
	struct dp_control control;
};

static int workers_create(struct dataplane *dp)
{
	struct hbus_pkt_cfg pcfg;
	struct dp_route_src none = { 0 };
	unsigned lcore, i = 0;
	int rc = hbus_pkt_cfg_init(&pcfg, dp->cfg.ip, dp->cfg.prefix, NULL);

	if (rc)
		return rc;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		struct dp_worker *w;
		struct hbus_dpc_lcore *blk;

		if (i == dp->port.n_rxq)
			break;
		w = rte_zmalloc_socket("hbus_worker", sizeof(*w), 128, (int)rte_lcore_to_socket_id(lcore));
		if (!w)
			return -ENOMEM;
		dp->workers[i] = w;
		blk = hbus_dpc_lcore(&dp->ctr, i);
		blk->lcore_id = lcore;
		blk->rx_queue = i;
		rc = dp_pipe_init(&w->pipe, &pcfg, dp->cfg.hbus_port, &none, blk->c,
				  hbus_dpc_streams(&dp->ctr, i), dp->ctr.hdr->n_streams);
		if (rc)
			return rc;
		w->pipe.mcast = &dp->control.mcast;
		w->index = i;
		w->port_id = dp->port.id;
		w->rxq = (uint16_t)i;
		w->txq = (uint16_t)i;
		w->has_txq = i < dp->port.n_txq;
		w->idle_mode = dp->cfg.idle;
		w->router_flags = dp->cfg.exclusive_producer ? HBUS_PRODUCE_EXCLUSIVE : 0;
		memcpy(w->link.mac, dp->port.mac.addr_bytes, 6);
		w->link.ip = dp->cfg.ip;
		w->queries = dp->queries;
		w->tx_ring = i == 0 ? dp->tx_ring : NULL; /* worker 0 sends for main */
		w->client = &dp->control.client;
		w->stop = &workers_stop;
		w->qsbr = dp->qsbr;
		rc = rte_rcu_qsbr_thread_register(dp->qsbr, i);
		if (rc)
			return -rte_errno;
		i++;
	}
	dp->n_workers = i;
	atomic_store_explicit(&dp->ctr.hdr->n_lcores, i, memory_order_release);
	return 0;
}

/*
 * Where the counters file goes: the bus directory hbusd serves the bus
 * from, as its hello says, so `hbus stat` finds the file whatever
 * --shm-dir hbusd has.  Without --shm-dir that means waiting for hbusd
 * (there is nowhere else to count); with it, the dataplane starts at once
 * and the control loop checks each hello against it (dp_busdir_check).
 */
static int choose_bus_dir(struct dataplane *dp)
{
	hbus_client *cl;
	unsigned tries = 0;
	int rc;

	if (dp->cfg.shm_dir)
		return hbus_shm_bus_dir(dp->cfg.shm_dir, dp->cfg.bus, dp->bus_dir,
					sizeof(dp->bus_dir), NULL);
	while ((rc = dp_control_connect(&dp->control)) != 0) {
		struct timespec ts = { 1, 0 };

		if (tries++ % 30 == 0)
			HBUS_WARN("waiting for hbusd of bus '%s' (%s): it says which bus directory "
				  "the counters go in (or give --shm-dir to start without it)",
				  dp->cfg.bus, hbus_strerror(rc));
		nanosleep(&ts, NULL); /* a signal cuts it short */
		if (stop_signal)
			return -EINTR;
	}
	cl = atomic_load_explicit(&dp->control.client, memory_order_relaxed);
	rc = dp_busdir_from_session(cl, dp->cfg.bus, dp->bus_dir, sizeof(dp->bus_dir));
	if (rc == 1)
		HBUS_WARN("hbusd did not say where bus '%s' is (an older hbusd): counters in the "
			  "default place, %s", dp->cfg.bus, dp->bus_dir);
	return rc < 0 ? rc : 0;
}

static int setup(struct dataplane *dp)
{
	unsigned n_lcores = rte_lcore_count();
	struct hbus_dpc_info info;
	size_t qsz;
	int rc, socket = (int)rte_socket_id();

	if (n_lcores < 2) {
		HBUS_ERR("no worker lcore: give the main lcore and at least one worker, e.g. -l 0,1");
		return -EINVAL;
	}
	rc = dp_port_setup(&dp->port, dp->cfg.port_id, n_lcores - 1, dp->cfg.rx_desc,
			   dp->cfg.tx_desc, dp->cfg.mbufs);
	if (rc)
		return rc;
	dp->queries = rte_ring_create_elem("hbus_igmp_q", sizeof(struct dp_igmp_query), 256,
					   socket, RING_F_SC_DEQ);
	dp->tx_ring = rte_ring_create("hbus_ctl_tx", 256, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
	qsz = rte_rcu_qsbr_get_memsize(dp->port.n_rxq);
	dp->qsbr = rte_zmalloc("hbus_qsbr", qsz, RTE_CACHE_LINE_SIZE);
	if (!dp->queries || !dp->tx_ring || !dp->qsbr ||
	    rte_rcu_qsbr_init(dp->qsbr, dp->port.n_rxq) != 0) {
		HBUS_ERR("rings / RCU state: %s", rte_strerror(rte_errno));
		return -ENOMEM;
	}
	dp_control_init(&dp->control, &dp->cfg, &dp->port, &dp->ctr, dp->bus_dir, dp->queries,
			dp->tx_ring, dp->qsbr);
	rc = choose_bus_dir(dp);
	if (rc)
		return rc;
	info = (struct hbus_dpc_info){ .name = dp->cfg.name, .bus = dp->cfg.bus,
				       .ip = dp->cfg.ip_str, .port_name = dp->port.name,
				       .port_id = dp->port.id, .hbus_udp_port = dp->cfg.hbus_port,
				       .max_lcores = dp->port.n_rxq, HBUS_DPC_DATAPLANE_COUNTERS };
	rc = hbus_dpc_create(dp->bus_dir, &info, &dp->ctr);
	if (rc) {
		if (rc == -EADDRINUSE)
			HBUS_ERR("%s/%s.counters belongs to a running dataplane: give this one "
				 "another --name", dp->bus_dir, dp->cfg.name);
		else
			HBUS_ERR("counters file in %s: %s", dp->bus_dir, hbus_strerror(rc));
		return rc;
	}
	HBUS_INFO("counters: %s/%s.counters", dp->bus_dir, dp->cfg.name);
	rc = workers_create(dp);
	if (rc)
		return rc;
	if (dp_telemetry_register(&dp->ctr) != 0)
		HBUS_WARN("telemetry commands /hbus/* not registered");
	return 0;
}

/* After the workers stopped, their TX queue 0 is ours: send the IGMP
 * leaves main queued, and free whatever else is left. */
static void flush_tx_ring(struct dataplane *dp)
{
	struct rte_mbuf *m[32];
	unsigned n;

	if (!dp->tx_ring)
		return;
	while ((n = rte_ring_dequeue_burst(dp->tx_ring, (void **)m, 32, NULL)) > 0) {
		uint16_t sent = dp->port.started ? rte_eth_tx_burst(dp->port.id, 0, m, (uint16_t)n) : 0;

		if (sent < n)
			rte_pktmbuf_free_bulk(m + sent, n - sent);
	}
}

static void teardown(struct dataplane *dp)
{
	unsigned i;

	/* A start-up that failed after the session opened (normally main has
	 * closed it once the workers stopped). */
	if (atomic_load_explicit(&dp->control.client, memory_order_relaxed))
		dp_control_fini(&dp->control);
	if (dp->ctr.hdr)
		dp_telemetry_detach();
	flush_tx_ring(dp);
	dp_port_close(&dp->port);
	for (i = 0; i < dp->n_workers; i++)
		rte_free(dp->workers[i]);
	rte_free(dp->qsbr);
	rte_ring_free(dp->queries);
	rte_ring_free(dp->tx_ring);
	if (dp->ctr.hdr)
		hbus_dpc_destroy(&dp->ctr, dp->bus_dir);
}

/* --help (alone, or among our options after "--"): answered without
 * bringing EAL up, which needs root and hugepages or --no-huge. */
static int help_asked(int argc, char **argv)
{
	int i = 1;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return 1;
	while (i < argc && strcmp(argv[i], "--"))
		i++;
	for (; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	static struct dataplane dp;
	char err[256];
	unsigned lcore, i;
	int rc;

	if (help_asked(argc, argv)) {
		dp_config_usage(argv[0]);
		printf("EAL arguments: DPDK's (-l CORES, --vdev, --no-pci, --file-prefix, ...; "
		       "%s --no-huge --help lists them)\n", argv[0]);
		return 0;
	}
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		fprintf(stderr, "hbus-dataplane: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= rc;
	argv += rc; /* EAL leaves the program name in front of our options */
	rc = dp_config_parse(argc, argv, &dp.cfg, err, sizeof(err));
	if (rc) {
		if (rc < 0)
			fprintf(stderr, "hbus-dataplane: %s\n", err);
		rte_eal_cleanup();
		return rc < 0 ? 2 : 0;
	}
	install_signals();
	dp_block_sigio(); /* after EAL init: its service threads keep taking it */
	/* A queue file a client truncates must not take the dataplane down:
	 * its workers' enqueues run under the SIGBUS guard (dp_pipe.c).
	 * After EAL init, which installs and restores a handler of its own
	 * while it maps hugepages. */
	if ((rc = fault_guard_install()) != 0)
		HBUS_WARN("cannot install the SIGBUS handler (%s): a truncated queue file will "
			  "stop the dataplane", strerror(-rc));
	rc = setup(&dp);
	if (rc) {
		teardown(&dp);
		rte_eal_cleanup();
		if (rc == -EINTR)
			HBUS_INFO("signal %d before start: stopped", (int)stop_signal);
		return rc == -EINTR ? 0 : 1;
	}
	atomic_store_explicit(&dp.ctr.hdr->state, HBUS_DPC_RUNNING, memory_order_release);
	i = 0;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (i == dp.n_workers)
			break;
		rte_eal_remote_launch(dp_worker_loop, dp.workers[i++], lcore);
	}
	HBUS_INFO("hbus-dataplane running: bus '%s', %s, hbus frames on UDP %u, %u worker(s), "
		  "idle %s%s", dp.cfg.bus, dp.cfg.ip_str, dp.cfg.hbus_port, dp.n_workers,
		  dp.cfg.idle == DP_IDLE_SPIN ? "spin" : "backoff",
		  dp.cfg.exclusive_producer ? ", each worker the exclusive producer of its queues" : "");

	/* The main lcore only does control work (session, multicast, stats):
	 * a 5 ms period keeps it off the CPU the workers' neighbours need. */
	while (!stop_signal && !dp.control.failed) {
		struct timespec ts = { 0, 5000000 };

		dp_control_step(&dp.control, dp_mono_ns());
		nanosleep(&ts, NULL);
	}

	if (dp.control.failed)
		HBUS_ERR("stopping: the counters file is not where hbusd looks (above)");
	else
		HBUS_INFO("signal %d: stopping", (int)stop_signal);
	atomic_store_explicit(&dp.ctr.hdr->state, HBUS_DPC_STOPPING, memory_order_release);
	atomic_store_explicit(&workers_stop, 1, memory_order_relaxed);
	rte_eal_mp_wait_lcore(); /* each worker finishes its burst, closes its router */
	dp_control_fini(&dp.control);
	teardown(&dp);
	rte_eal_cleanup();
	HBUS_INFO("stopped");
	return dp.control.failed ? 1 : 0;
}
