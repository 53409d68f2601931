/* dp_worker.c - see dp_worker.h. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "dp_config.h"
#include "dp_port.h"
#include "dp_worker.h"
#include "log.h"

/* Backoff idle strategy: pause for the first empty polls, then yield the
 * CPU, then sleep briefly.  Traffic resets it.  See docs/DATAPLANE.md. */
#define IDLE_PAUSE_POLLS 64u
#define IDLE_YIELD_POLLS 128u
#define IDLE_SLEEP_NS    50000L

static inline void ctr_add(struct dp_worker *w, unsigned id, uint64_t n)
{
	hbus_dpc_add(&w->pipe.ctr[id], n);
}

/* Send what main queued (IGMP reports). */
static void drain_tx_ring(struct dp_worker *w)
{
	struct rte_mbuf *m[DP_BURST_MAX];
	unsigned n = rte_ring_dequeue_burst(w->tx_ring, (void **)m, DP_BURST_MAX, NULL);
	uint16_t sent = w->has_txq ? rte_eth_tx_burst(w->port_id, w->txq, m, (uint16_t)n) : 0;

	if (sent < n) {
		ctr_add(w, HBUS_DPC_TX_FAILED, n - sent);
		rte_pktmbuf_free_bulk(m + sent, n - sent);
	}
}

/* Answer the frames the pipeline listed: ARP replies are built in the
 * request's own mbuf (no allocation), IGMP queries go to main.  A reused
 * mbuf is taken out of m[] so the caller does not free it. */
static void answer(struct dp_worker *w, struct rte_mbuf **m, const struct dp_ctl *ctl,
		   unsigned nctl)
{
	struct rte_mbuf *tx[DP_BURST_MAX];
	uint8_t buf[128];
	unsigned i, ntx = 0;
	uint16_t sent;

	for (i = 0; i < nctl; i++) {
		const struct hbus_pkt *pkt = &ctl[i].pkt;
		struct rte_mbuf *mb = m[ctl[i].idx];

		if (pkt->verdict == HBUS_PKT_IGMP_QUERY) {
			struct dp_igmp_query q = {
				.group = pkt->igmp_group, .version = pkt->igmp_version,
				.max_resp_ds = (uint16_t)(pkt->igmp_max_resp_ds > 0xffff ? 0xffff :
							  pkt->igmp_max_resp_ds),
			};
			if (!w->queries || rte_ring_enqueue_elem(w->queries, &q, sizeof(q)) != 0)
				ctr_add(w, HBUS_DPC_TX_FAILED, 1);
			continue;
		}
		/* ARP request for us: reply from the request's own buffer. */
		int len = hbus_build_arp_reply(buf, sizeof(buf), &w->link, pkt);
		char *d;

		if (len <= 0 || !w->has_txq) {
			ctr_add(w, HBUS_DPC_TX_FAILED, 1);
			continue;
		}
		rte_pktmbuf_reset(mb);
		d = rte_pktmbuf_append(mb, (uint16_t)len);
		if (!d) {
			ctr_add(w, HBUS_DPC_TX_FAILED, 1);
			continue;
		}
		memcpy(d, buf, (size_t)len);
		tx[ntx++] = mb;
		m[ctl[i].idx] = NULL;
	}
	if (!ntx)
		return;
	sent = rte_eth_tx_burst(w->port_id, w->txq, tx, (uint16_t)ntx);
	ctr_add(w, HBUS_DPC_ARP_REPLIES, sent);
	if (sent < ntx) {
		ctr_add(w, HBUS_DPC_TX_FAILED, ntx - sent);
		rte_pktmbuf_free_bulk(tx + sent, ntx - sent);
	}
}

unsigned dp_worker_poll(struct dp_worker *w)
{
	struct rte_mbuf *m[DP_BURST_MAX];
	struct dp_frame f[DP_BURST_MAX];
	struct dp_ctl ctl[DP_BURST_MAX];
	uint16_t n, i, k = 0;
	unsigned nctl;

	if (w->tx_ring && unlikely(!rte_ring_empty(w->tx_ring)))
		drain_tx_ring(w);
	n = rte_eth_rx_burst(w->port_id, w->rxq, m, DP_BURST_MAX);
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		struct rte_mbuf *mb = m[i];

		if (unlikely(mb->nb_segs != 1)) {
			/* Bigger than one mbuf (scatter is off, so a PMD that
			 * chains anyway): counted, not parsed in pieces. */
			ctr_add(w, HBUS_DPC_RX_PKTS, 1);
			ctr_add(w, HBUS_DPC_RX_BYTES, mb->pkt_len);
			ctr_add(w, HBUS_DPC_DROP_MULTISEG, 1);
			rte_pktmbuf_free(mb);
			continue;
		}
		m[k] = mb;
		f[k].data = rte_pktmbuf_mtod(mb, const uint8_t *);
		f[k].len = mb->data_len;
		f[k].hints = dp_port_hints(mb);
		k++;
	}
	nctl = dp_pipe_burst(&w->pipe, f, k, ctl);
	if (unlikely(nctl != 0)) {
		answer(w, m, ctl, nctl);
		for (i = 0, n = k, k = 0; i < n; i++)
			if (m[i])
				m[k++] = m[i];
	}
	rte_pktmbuf_free_bulk(m, k);
	return n;
}

/* The session appeared (or came back): open this worker's router, on its
 * own thread, once.  Retried every second while it fails. */
static void worker_try_router(struct dp_worker *w)
{
	hbus_client *c = atomic_load_explicit(w->client, memory_order_acquire);
	uint64_t now = rte_get_timer_cycles();
	int rc;

	if (!c || now < w->router_retry)
		return;
	rc = hbus_router_open(c, &w->router);
	if (rc == 0 && (rc = hbus_router_set_flags(w->router, w->router_flags)) != 0)
		hbus_router_close(w->router);
	if (rc) {
		w->router = NULL;
		w->router_retry = now + rte_get_timer_hz();
		HBUS_WARN("worker %u: no router yet: %s", w->index, hbus_strerror(rc));
		return;
	}
	w->pipe.src.router = w->router;
}

static void idle(struct dp_worker *w)
{
	uint32_t e;

	if (w->idle_mode == DP_IDLE_SPIN)
		return;
	e = ++w->empty_polls;
	if (e < IDLE_PAUSE_POLLS) {
		rte_pause();
	} else if (e < IDLE_YIELD_POLLS) {
		sched_yield();
	} else {
		struct timespec ts = { 0, IDLE_SLEEP_NS };

		w->empty_polls = IDLE_YIELD_POLLS; /* stay in the sleep phase */
		nanosleep(&ts, NULL);
	}
}

void dp_block_sigio(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int dp_worker_loop(void *arg)
{
	struct dp_worker *w = arg;

	dp_block_sigio();
	/* A 50 us sleep should not take the default 50 us of timer slack more. */
	if (w->idle_mode == DP_IDLE_BACKOFF)
		prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	if (w->qsbr)
		rte_rcu_qsbr_thread_online(w->qsbr, w->index);
	atomic_store_explicit(&w->state, DP_WORKER_RUNNING, memory_order_release);
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		unsigned n;

		if (unlikely(!w->router))
			worker_try_router(w);
		n = dp_worker_poll(w);
		/* Quiescent state: nothing of the previous burst is in use. */
		if (w->qsbr)
			rte_rcu_qsbr_quiescent(w->qsbr, w->index);
		if (n)
			w->empty_polls = 0;
		else
			idle(w);
	}
	/* dp_pipe_burst enqueued or counted everything before returning:
	 * nothing is reserved, staged or acquired here. */
	if (w->qsbr)
		rte_rcu_qsbr_thread_offline(w->qsbr, w->index);
	if (w->router) {
		w->pipe.src.router = NULL;
		hbus_router_close(w->router);
		w->router = NULL;
	}
	atomic_store_explicit(&w->state, DP_WORKER_DONE, memory_order_release);
	return 0;
}
