/*
 * dp_control.h - the main lcore's duties, all off the packet path:
 *
 *  - the hbusd session: connect (role "dataplane"), and keep it: when hbusd
 *    goes away, workers keep routing on the last table; the main lcore
 *    reconnects in the background (hbus_client_check) and the workers'
 *    routers follow the new session at their next burst.  After every
 *    hello, the bus directory hbusd names must be the one the counters file
 *    is in (dp_busdir.h): if not, `failed` is set and the dataplane stops;
 *  - multicast membership: the groups of the routing table's udpmaps are
 *    joined (parser set published RCU-style, port MAC filter, IGMP reports)
 *    and left when they disappear; IGMP queries the workers forward are
 *    answered;
 *  - the port block of the counters file and its heartbeat;
 *  - operator hints from the counters (dp_hint.h).
 */
#ifndef HBUS_DP_CONTROL_H
#define HBUS_DP_CONTROL_H

#include <stdatomic.h>
#include <stdint.h>

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "dp_config.h"
#include "dp_counter_ids.h"
#include "dp_hint.h"
#include "dp_port.h"
#include "dp_worker.h"
#include "hbus.h"
#include "pkt_build.h"

#define DP_IGMP_REPEAT_NS     1000000000ull     /* unsolicited reports repeat once, 1 s later */
#define DP_IGMP_OLD_QUERIER_NS 260000000000ull  /* RFC 3376 8.12: v2 mode after a v1/v2 query */

struct dp_control {
	const struct dp_config *cfg;
	struct dp_port *port;
	struct hbus_dpc_file *ctr;
	struct rte_ring *queries;     /* <- workers */
	struct rte_ring *tx_ring;     /* -> the worker that sends for us */
	struct rte_rcu_qsbr *qsbr;    /* workers' quiescent states */
	struct hbus_build_link link;

	/* Session. */
	hbus_client *_Atomic client;  /* workers open their routers from it */
	hbus_router *router;          /* main's own: reads the multicast groups */
	uint64_t next_connect_ns, next_check_ns, next_mcast_ns, next_stats_ns;
	int session_up;
	unsigned connect_failures;
	uint64_t reconnects;
	const char *bus_dir;          /* where the counters file is */
	uint64_t busdir_gen;          /* the client's session_gen checked last */
	int failed;                   /* hbusd serves the bus from elsewhere: stop */

	struct dp_hint hint;

	/* Multicast: the parser's set, double-buffered. */
	struct hbus_mcast_set sets[2];
	const struct hbus_mcast_set *_Atomic mcast; /* what workers read */
	unsigned cur;
	uint64_t flip_token;          /* qsbr token of the last flip (0 = none) */
	uint32_t groups[HBUS_MCAST_MAX]; /* joined, sorted, host order */
	unsigned n_groups;
	/* Unsolicited reports are sent twice (RFC 3376 robustness 2). */
	uint32_t rep_join[HBUS_MCAST_MAX], rep_leave[HBUS_MCAST_MAX];
	unsigned n_rep_join, n_rep_leave;
	uint64_t repeat_ns;
	uint64_t old_querier_until_ns;
	uint64_t igmp_reports;
};

/* ctr and bus_dir may be filled in after this call, before the first step. */
int dp_control_init(struct dp_control *c, const struct dp_config *cfg, struct dp_port *port,
		    struct hbus_dpc_file *ctr, const char *bus_dir, struct rte_ring *queries,
		    struct rte_ring *tx_ring, struct rte_rcu_qsbr *qsbr);

/* Open the session with hbusd now (hello, main's router; the workers see
 * it): 0, or negative errno when hbusd is not reachable or refused. */
int dp_control_connect(struct dp_control *c);

/* One round of the main loop's duties; now_ns is CLOCK_MONOTONIC. */
void dp_control_step(struct dp_control *c, uint64_t now_ns);

/* At stop, after every worker returned: leave the groups, close the
 * router and the session. */
void dp_control_fini(struct dp_control *c);

uint64_t dp_mono_ns(void);

#endif
