/* dp_control.c - see dp_control.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_mbuf.h>

#include "client_internal.h"
#include "dp_busdir.h"
#include "dp_control.h"
#include "log.h"
#include "route.h"

#define CONNECT_RETRY_NS  1000000000ull
#define CHECK_PERIOD_NS   100000000ull
#define MCAST_PERIOD_NS   100000000ull
#define STATS_PERIOD_NS   100000000ull
#define IGMPV3_MAX_RECORDS 183u   /* records of a 1500-byte report */

uint64_t dp_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic uint64_t *port_ctr(struct dp_control *c)
{
	return hbus_dpc_port(c->ctr);
}

int dp_control_init(struct dp_control *c, const struct dp_config *cfg, struct dp_port *port,
		    struct hbus_dpc_file *ctr, const char *bus_dir, struct rte_ring *queries,
		    struct rte_ring *tx_ring, struct rte_rcu_qsbr *qsbr)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->port = port;
	c->ctr = ctr;
	c->bus_dir = bus_dir;
	c->queries = queries;
	c->tx_ring = tx_ring;
	c->qsbr = qsbr;
	memcpy(c->link.mac, port->mac.addr_bytes, 6);
	c->link.ip = cfg->ip;
	hbus_mcast_set_init(&c->sets[0]);
	hbus_mcast_set_init(&c->sets[1]);
	atomic_store_explicit(&c->mcast, &c->sets[0], memory_order_release);
	return 0;
}

/* ------------------------------------------------------------- session */

int dp_control_connect(struct dp_control *c)
{
	struct hbus_client_opts o = { .bus = c->cfg->bus, .run_dir = c->cfg->run_dir,
				      .role = "dataplane" };
	hbus_client *cl;
	uint32_t owner = 0;
	int rc = hbus_connect(&o, &cl);

	if (rc)
		return rc;
	rc = hbus_router_open(cl, &c->router);
	if (rc) {
		HBUS_WARN("main router: %s (multicast groups not followed)", hbus_strerror(rc));
		c->router = NULL;
	}
	hbus_client_owner(cl, &owner);
	HBUS_INFO("session with hbusd on bus '%s' (owner %u, role dataplane)", c->cfg->bus, owner);
	c->session_up = 1;
	/* Workers open their routers from it, on their own threads. */
	atomic_store_explicit(&c->client, cl, memory_order_release);
	return 0;
}

/* After each hello (the client's session_gen moved), whether hbusd still
 * serves the bus from the directory our counters file is in. */
static void busdir_step(struct dp_control *c, hbus_client *cl)
{
	uint64_t gen = atomic_load_explicit(&cl->session_gen, memory_order_acquire);
	char err[768];

	if (gen == c->busdir_gen || c->failed)
		return;
	c->busdir_gen = gen;
	if (dp_busdir_check(cl, c->cfg->bus, c->bus_dir, c->cfg->shm_dir, err, sizeof(err))) {
		HBUS_ERR("%s", err);
		c->failed = 1;
	}
}

static void session_step(struct dp_control *c, uint64_t now)
{
	hbus_client *cl = atomic_load_explicit(&c->client, memory_order_relaxed);
	int rc;

	if (!cl) {
		if (now < c->next_connect_ns)
			return;
		rc = dp_control_connect(c);
		if (rc) {
			c->next_connect_ns = now + CONNECT_RETRY_NS;
			/* Say it once, then every 30 attempts. */
			if (c->connect_failures++ % 30 == 0)
				HBUS_WARN("hbusd for bus '%s' not reachable (%s): retrying every second; "
					  "UDP is counted under drop_no_table until then",
					  c->cfg->bus, hbus_strerror(rc));
		}
		return;
	}
	busdir_step(c, cl);
	if (now < c->next_check_ns)
		return;
	c->next_check_ns = now + CHECK_PERIOD_NS;
	rc = hbus_client_check(cl);
	if (rc < 0 && c->session_up) {
		c->session_up = 0;
		HBUS_WARN("hbusd went away (%s): traffic keeps flowing on the last routing table; "
			  "reconnecting in the background", hbus_strerror(rc));
	} else if (rc >= 0 && !c->session_up) {
		c->session_up = 1;
		c->reconnects++;
		HBUS_INFO("session with hbusd re-established");
	}
}

/* --------------------------------------------------------------- IGMP */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}


static int igmp_version(const struct dp_control *c, uint64_t now)
{
	if (c->cfg->igmp_version)
		return c->cfg->igmp_version;
	return now < c->old_querier_until_ns ? 2 : 3;
}

/* Hand one built frame to the worker that transmits for us. */
static void send_frame(struct dp_control *c, const uint8_t *buf, int len)
{
	struct rte_mbuf *m;
	char *d;

	if (len <= 0)
		return;
	m = rte_pktmbuf_alloc(c->port->pool);
	if (!m)
		return;
	d = rte_pktmbuf_append(m, (uint16_t)len);
	if (!d || rte_ring_enqueue(c->tx_ring, m) != 0) {
		rte_pktmbuf_free(m);
		return;
	}
	memcpy(d, buf, (size_t)len);
	c->igmp_reports++;
}

enum report_kind { REPORT_JOIN, REPORT_LEAVE, REPORT_ANSWER };

static void send_reports(struct dp_control *c, enum report_kind kind, const uint32_t *groups,
			 unsigned n, uint64_t now)
{
	uint8_t buf[1600];
	unsigned i;

	if (!c->tx_ring || n == 0)
		return;
	if (igmp_version(c, now) == 3) {
		unsigned type = kind == REPORT_JOIN ? HBUS_IGMPV3_CHANGE_TO_EXCLUDE :
				kind == REPORT_LEAVE ? HBUS_IGMPV3_CHANGE_TO_INCLUDE :
				HBUS_IGMPV3_MODE_IS_EXCLUDE;

		for (i = 0; i < n; i += IGMPV3_MAX_RECORDS) {
			unsigned k = n - i < IGMPV3_MAX_RECORDS ? n - i : IGMPV3_MAX_RECORDS;

			send_frame(c, buf, hbus_build_igmpv3_report(buf, sizeof(buf), &c->link, type,
								     groups + i, k));
		}
		return;
	}
	for (i = 0; i < n; i++)
		send_frame(c, buf, kind == REPORT_LEAVE ?
			   hbus_build_igmpv2_leave(buf, sizeof(buf), &c->link, groups[i]) :
			   hbus_build_igmpv2_report(buf, sizeof(buf), &c->link, groups[i]));
}

static void answer_queries(struct dp_control *c, uint64_t now)
{
	struct dp_igmp_query q;

	while (rte_ring_dequeue_elem(c->queries, &q, sizeof(q)) == 0) {
		if (q.version < 3 && !c->cfg->igmp_version) {
			if (now >= c->old_querier_until_ns)
				HBUS_INFO("IGMPv%u querier present: answering with IGMPv2 reports",
					  q.version);
			c->old_querier_until_ns = now + DP_IGMP_OLD_QUERIER_NS;
		}
		if (q.group == 0)
			send_reports(c, REPORT_ANSWER, c->groups, c->n_groups, now);
		else if (bsearch(&q.group, c->groups, c->n_groups, sizeof(uint32_t), cmp_u32))
			send_reports(c, REPORT_ANSWER, &q.group, 1, now);
	}
}

/* ---------------------------------------------------------- membership */

/* The groups the routing table maps now (sorted, host order), or -1 when
 * there is no table to read. */
static int table_groups(struct dp_control *c, uint32_t *g)
{
	const struct hbus_rtable *t;
	unsigned n, i;

	if (!c->router)
		return -1;
	t = hbus_router_begin(c->router);
	if (!t) {
		hbus_router_end(c->router);
		return -1;
	}
	n = hbus_route_mcast_groups(t, g, HBUS_MCAST_MAX);
	hbus_router_end(c->router);
	for (i = 0; i < n; i++)
		g[i] = ntohl(g[i]);
	qsort(g, n, sizeof(*g), cmp_u32);
	return (int)n;
}

/* a - b of two sorted sets, into out. */
static unsigned set_minus(const uint32_t *a, unsigned na, const uint32_t *b, unsigned nb,
			  uint32_t *out)
{
	unsigned i = 0, j = 0, n = 0;

	while (i < na) {
		if (j == nb || a[i] < b[j])
			out[n++] = a[i++];
		else if (a[i] == b[j])
			i++, j++;
		else
			j++;
	}
	return n;
}

static void mcast_step(struct dp_control *c, uint64_t now)
{
	uint32_t g[HBUS_MCAST_MAX], join[HBUS_MCAST_MAX], leave[HBUS_MCAST_MAX];
	struct hbus_mcast_set *spare;
	hbus_client *cl = atomic_load_explicit(&c->client, memory_order_relaxed);
	unsigned i, nj, nl;
	int n;

	/* The main router could not be opened with the session: retry. */
	if (!c->router && cl && hbus_router_open(cl, &c->router) != 0)
		c->router = NULL;
	n = table_groups(c, g);

	if (n < 0 || ((unsigned)n == c->n_groups && !memcmp(g, c->groups, (size_t)n * 4)))
		return;
	/* The spare set was published before the last flip: a worker may
	 * still read it until each has passed a quiescent state since. */
	if (c->flip_token && rte_rcu_qsbr_check(c->qsbr, c->flip_token, false) != 1)
		return; /* next round */
	nj = set_minus(g, (unsigned)n, c->groups, c->n_groups, join);
	nl = set_minus(c->groups, c->n_groups, g, (unsigned)n, leave);

	spare = &c->sets[c->cur ^ 1];
	hbus_mcast_set_init(spare);
	for (i = 0; i < (unsigned)n; i++)
		hbus_mcast_set_add(spare, g[i]);
	atomic_store_explicit(&c->mcast, spare, memory_order_release);
	c->cur ^= 1;
	c->flip_token = rte_rcu_qsbr_start(c->qsbr);

	memcpy(c->groups, g, (size_t)n * sizeof(*g));
	c->n_groups = (unsigned)n;
	dp_port_set_groups(c->port, c->groups, c->n_groups);
	for (i = 0; i < nj; i++)
		HBUS_INFO("joined multicast group %u.%u.%u.%u", join[i] >> 24, (join[i] >> 16) & 255,
			  (join[i] >> 8) & 255, join[i] & 255);
	for (i = 0; i < nl; i++)
		HBUS_INFO("left multicast group %u.%u.%u.%u", leave[i] >> 24, (leave[i] >> 16) & 255,
			  (leave[i] >> 8) & 255, leave[i] & 255);
	send_reports(c, REPORT_JOIN, join, nj, now);
	send_reports(c, REPORT_LEAVE, leave, nl, now);
	memcpy(c->rep_join, join, nj * sizeof(*join));
	memcpy(c->rep_leave, leave, nl * sizeof(*leave));
	c->n_rep_join = nj;
	c->n_rep_leave = nl;
	c->repeat_ns = now + DP_IGMP_REPEAT_NS;
}

static void repeat_step(struct dp_control *c, uint64_t now)
{
	if (!c->repeat_ns || now < c->repeat_ns)
		return;
	c->repeat_ns = 0;
	send_reports(c, REPORT_JOIN, c->rep_join, c->n_rep_join, now);
	send_reports(c, REPORT_LEAVE, c->rep_leave, c->n_rep_leave, now);
}

/* ---------------------------------------------------------------- step */

static void stats_step(struct dp_control *c, uint64_t now)
{
	_Atomic uint64_t *pc = port_ctr(c);
	hbus_client *cl = atomic_load_explicit(&c->client, memory_order_relaxed);
	struct timespec ts;

	if (now < c->next_stats_ns)
		return;
	c->next_stats_ns = now + STATS_PERIOD_NS;
	dp_port_stats(c->port, pc);
	atomic_store_explicit(&pc[HBUS_DPC_PORT_MCAST_GROUPS], c->n_groups, memory_order_relaxed);
	atomic_store_explicit(&pc[HBUS_DPC_PORT_IGMP_REPORTS], c->igmp_reports,
			      memory_order_relaxed);
	atomic_store_explicit(&pc[HBUS_DPC_PORT_RECONNECTS], c->reconnects, memory_order_relaxed);
	if (cl) {
		struct hbus_routes *r;
		uint64_t gen = 0;

		pthread_mutex_lock(&cl->lock);
		r = client_routes_locked(cl);
		if (r)
			gen = hbus_routes_generation(r);
		pthread_mutex_unlock(&cl->lock);
		atomic_store_explicit(&pc[HBUS_DPC_PORT_TABLE_GEN], gen, memory_order_relaxed);
	}
	/* af_packet only: on a real NIC a bad checksum is a real fault. */
	if (c->port->n_pkt_fds &&
	    dp_hint_csum_due(&c->hint, hbus_dpc_total(c->ctr, HBUS_PKT_DROP_BAD_UDP_CHECKSUM),
			     hbus_dpc_total(c->ctr, HBUS_DPC_UDP_PKTS)))
		dp_hint_csum_say(c->port->pkt_fds[0],
				 hbus_dpc_total(c->ctr, HBUS_PKT_DROP_BAD_UDP_CHECKSUM),
				 hbus_dpc_total(c->ctr, HBUS_DPC_UDP_PKTS));
	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_store_explicit(&c->ctr->hdr->heartbeat_ns,
			      (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
			      memory_order_relaxed);
}

void dp_control_step(struct dp_control *c, uint64_t now)
{
	session_step(c, now);
	if (now >= c->next_mcast_ns) {
		c->next_mcast_ns = now + MCAST_PERIOD_NS;
		mcast_step(c, now);
	}
	answer_queries(c, now);
	repeat_step(c, now);
	stats_step(c, now);
}

void dp_control_fini(struct dp_control *c)
{
	hbus_client *cl = atomic_load_explicit(&c->client, memory_order_relaxed);
	uint64_t now = dp_mono_ns();

	/* Leave our groups; the worker that sends for us has stopped, so the
	 * leaves go out only if the caller drains tx_ring itself. */
	send_reports(c, REPORT_LEAVE, c->groups, c->n_groups, now);
	c->n_groups = 0;
	if (c->router) {
		hbus_router_close(c->router);
		c->router = NULL;
	}
	if (cl) {
		atomic_store_explicit(&c->client, NULL, memory_order_relaxed);
		hbus_close(cl);
	}
	if (c->ctr->hdr) /* else start-up failed before the counters file */
		stats_step(c, now);
}
