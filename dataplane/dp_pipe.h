/*
 * dp_pipe.h - the dataplane's burst pipeline: parse -> decode -> route ->
 * enqueue, for one worker lcore.
 *
 * Pure C (no DPDK): hbus-dataplane's workers, the benchmark
 * (hbus-bench dataplane) and the unit tests all call dp_pipe_burst() on
 * the frames of one receive burst, so what is measured and tested is the
 * exact code that runs.  The caller owns the frames (mbufs); the pipeline
 * only reads them, and lists the few frames that need an answer (ARP
 * requests for us, IGMP queries) for the caller to act on.
 *
 * Per burst: one routing-table acquire, then per frame one parse, per
 * message one metadata decode and one route lookup (memoised within the
 * burst for runs of the same exchange/key or the same raw destination),
 * and per (message, queue) one staged enqueue; staged messages are
 * enqueued per queue with hbus_queue_enqueue_burst at the end of the burst
 * (or when the stage fills), which amortises the queue's shared counters
 * and wake-up check.  No syscall, lock or allocation on this path, except
 * the router's documented slow paths (first use of a queue, a new table).
 *
 * A queue file someone truncated makes the enqueue fault (SIGBUS): with
 * the process's handler installed (fault_guard_install, as hbus-dataplane
 * does), each flush runs under a guard, and a faulting queue is dropped
 * for this pipeline (its pairs counted as drop_queue_fault) while the
 * others go on.  Without the handler the process dies, as before.
 */
#ifndef HBUS_DP_PIPE_H
#define HBUS_DP_PIPE_H

#include <stdatomic.h>
#include <stdint.h>

#include "dp_counter_ids.h"
#include "dp_seq.h"
#include "hbus.h"
#include "pkt.h"
#include "route.h"

#define DP_BURST_MAX        32u   /* frames per dp_pipe_burst call */
#define DP_STAGE_QUEUES     8u    /* distinct queues staged at once */
#define DP_STAGE_DEPTH      64u   /* messages staged per queue */
/* Raw-mode metadata blocks built in one burst: at most one per frame, each
 * at most 4 + 255 + 255 bytes. */
#define DP_META_ARENA       (DP_BURST_MAX * 516u)
#define DP_DEAD_MAX         64u   /* faulted queues a pipeline remembers */
#define DP_DEFAULT_HBUS_PORT 5900u

/* One received frame, as the pipeline sees it. */
struct dp_frame {
	const uint8_t *data;
	uint32_t len;
	uint32_t hints; /* HBUS_PKT_HINT_* from the port's offloads */
};

/* A frame the caller must answer (verdict ARP_REQUEST or IGMP_QUERY). */
struct dp_ctl {
	uint32_t idx;         /* index into the burst */
	struct hbus_pkt pkt;  /* parse result; pointers into the frame */
};

/*
 * Where a worker gets its routing table and queue handles.  hbus-dataplane
 * sets router (the worker's own hbus_router: reader slot, lazy queue
 * opening, reconnects).  The benchmark and tests, which run without hbusd,
 * set routes + readers + reader (a routes file read directly, a reader
 * block of their own) and qtab (qid -> handle).
 * Neither set (no session yet): UDP is counted under drop_no_table.
 */
struct dp_route_src {
	hbus_router *router;
	struct hbus_routes *routes;
	struct hbus_readers *readers;
	unsigned reader;
	hbus_queue *const *qtab;
	uint32_t qtab_len;
};

struct dp_stage {
	unsigned nq;
	unsigned last;                /* list of the last message staged */
	unsigned sent;                /* of the list being flushed: enqueued or counted */
	hbus_queue *q[DP_STAGE_QUEUES];
	uint32_t qid[DP_STAGE_QUEUES];
	uint16_t n[DP_STAGE_QUEUES];
	struct hbus_out out[DP_STAGE_QUEUES][DP_STAGE_DEPTH];
	uint32_t arena_used;
	uint8_t arena[DP_META_ARENA];
};

struct dp_pipe {
	/* Configuration, read-only while bursts run (except mcast). */
	struct hbus_pkt_cfg pkt_cfg;
	uint16_t hbus_port;          /* UDP destination port of hbus frames */
	struct dp_route_src src;
	/* Joined groups: the main lcore publishes a new set by pointer; the
	 * worker loads it once per burst (acquire).  NULL = keep pkt_cfg's. */
	const struct hbus_mcast_set *_Atomic *mcast;

	_Atomic uint64_t *ctr;       /* this lcore's counters (hbus_dpc_lcore.c) */
	struct dp_seq seq;

	/* Queues whose file was truncated under us (a SIGBUS while enqueueing:
	 * see stage_flush): never touched again, their pairs counted as
	 * drop_queue_fault.  By qid: qids are never reused on a bus. */
	uint32_t dead[DP_DEAD_MAX];
	unsigned n_dead;

	/* Per-burst state. */
	const struct hbus_rtable *t;
	struct dp_stage stage;
	struct hbus_meta meta;       /* scratch for decoding */
	uint32_t qids[HBUS_ROUTE_MAX_QIDS];
};

/*
 * Prepare a pipeline.  ctr: HBUS_DPC__COUNT counters; streams: the lcore's
 * zeroed stream table (n_streams entries, a power of two).  src is copied.
 */
int dp_pipe_init(struct dp_pipe *p, const struct hbus_pkt_cfg *cfg, uint16_t hbus_port,
		 const struct dp_route_src *src, _Atomic uint64_t *ctr,
		 struct hbus_dpc_stream *streams, uint32_t n_streams);

/*
 * Process n (<= DP_BURST_MAX) frames.  Counts every frame and message in
 * p->ctr; returns the number of frames listed in ctl[] (at most n) that
 * the caller must answer.  The frames are not referenced after the call.
 */
unsigned dp_pipe_burst(struct dp_pipe *p, const struct dp_frame *f, unsigned n,
		       struct dp_ctl *ctl);

/* Worker stop / router teardown: nothing is held between bursts, so this
 * only says so (every staged message was enqueued or counted). */
static inline int dp_pipe_idle(const struct dp_pipe *p)
{
	return p->t == NULL && p->stage.nq == 0;
}

#endif
