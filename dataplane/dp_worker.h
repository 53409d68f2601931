/*
 * dp_worker.h - a worker lcore: one RX queue, its own pipeline, router and
 * counters block, and (where the port has enough) its own TX queue for
 * ARP replies.  Nothing a worker touches per packet is shared with another
 * worker.
 *
 * What crosses lcores, and how:
 *   main -> worker  the session (client pointer, published once, acquire);
 *                   the joined multicast set (pointer, acquire per burst);
 *                   frames to send (IGMP reports: an SP/SC rte_ring, worker 0);
 *                   the stop flag (relaxed: a worker finishes its burst).
 *   worker -> main  IGMP queries (an MP/SC rte_ring of struct dp_igmp_query);
 *                   its quiescent states (rte_rcu_qsbr, once per loop) so
 *                   the main lcore knows when an old multicast set is no
 *                   longer read; its state (running / done).
 */
#ifndef HBUS_DP_WORKER_H
#define HBUS_DP_WORKER_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "dp_pipe.h"
#include "pkt_build.h"

struct dp_igmp_query {
	uint32_t group;        /* 0 = general query */
	uint16_t max_resp_ds;
	uint8_t version;
	uint8_t reserved;
};

enum dp_worker_state { DP_WORKER_INIT = 0, DP_WORKER_RUNNING = 1, DP_WORKER_DONE = 2 };

struct dp_worker {
	struct dp_pipe pipe;
	unsigned index;                /* counters block, RX queue */
	uint16_t port_id, rxq, txq;
	int has_txq;
	int idle_mode;                 /* enum dp_idle_mode */
	uint32_t router_flags;         /* HBUS_PRODUCE_EXCLUSIVE: --exclusive-producer */
	struct hbus_build_link link;   /* our MAC and IP: source of ARP replies */
	struct rte_ring *queries;      /* -> main */
	struct rte_ring *tx_ring;      /* <- main, NULL except on the worker that sends for main */
	hbus_client *_Atomic *client;  /* the session, once main has one */
	const _Atomic int *stop;
	hbus_router *router;           /* this worker's, opened on its own thread */
	uint64_t router_retry;         /* tsc: next hbus_router_open attempt */
	struct rte_rcu_qsbr *qsbr;     /* NULL: nothing shared to report on */
	uint32_t empty_polls;
	alignas(128) _Atomic int state; /* enum dp_worker_state */
};

/*
 * One receive burst through the pipeline: rx_burst, parse, route, enqueue,
 * answer ARP, forward IGMP queries, free.  Also sends what main queued on
 * tx_ring.  Returns the frames received.  Used as is by hbus-bench.
 */
unsigned dp_worker_poll(struct dp_worker *w);

/* The lcore entry (rte_eal_remote_launch): poll until *stop, then close
 * the router.  Nothing is held between bursts, so stopping never leaves a
 * reserved slot behind. */
int dp_worker_loop(void *arg);

/*
 * Keep SIGIO away from the calling thread.  net_tap has the kernel signal
 * the process (SIGIO) for every frame it queues; a worker that took it
 * would pay a signal delivery per frame, and its blocking calls would see
 * EINTR (the hbusd session's calls retry on it: shm/client.c).  EAL's own
 * service threads still take the signal, which is all net_tap needs.
 * Called by the main lcore and every worker.
 */
void dp_block_sigio(void);

#endif
