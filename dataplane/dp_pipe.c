/*
 * dp_pipe.c - the burst pipeline (see dp_pipe.h).
 *
 * Counting discipline: every frame ends in exactly one of udp_pkts,
 * arp_requests, igmp_queries or a drop counter; every UDP datagram in
 * exactly one of hbus_frames, raw_dgrams or a drop; every message in
 * routed or a drop; every (message, queue) pair in delivered or a drop.
 * The identities are listed in dp_counter_ids.h and checked by the tests.
 * Hot counters accumulate in a per-burst struct and reach shared memory
 * once per burst; rare ones are added where they happen.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "dp_pipe.h"
#include "fault_guard.h"

/* The per-burst accumulators and memo, kept on the stack. */
struct burst {
	uint32_t udp, frames, raw, msgs, routed, enqueues, delivered;
	int table_tried;
	/* Memo: the last raw destination (ip:port) and what it maps to. */
	int raw_state;               /* 0 none, 1 mapped, 2 not mapped */
	uint32_t raw_ip;
	uint16_t raw_port;
	const uint8_t *raw_meta;
	uint16_t raw_meta_len;
	int raw_n;                   /* queues, or < 0 lookup error */
	/* Memo: the last exchange name and its id/type. */
	const char *x_name;
	uint8_t x_len;
	uint32_t xid, xtype;
	/* Memo: the last (xid, key) lookup of a non-headers exchange. */
	int key_valid;
	uint32_t key_xid;
	const char *key;
	uint8_t key_len;
	int key_n;
	/* Memo: the last queue handle found, and its qid. */
	hbus_queue *q_memo;
	uint32_t q_memo_qid;
	uint32_t raw_qids[HBUS_ROUTE_MAX_QIDS];
};

static inline void ctr_add(struct dp_pipe *p, unsigned id, uint64_t n)
{
	hbus_dpc_add(&p->ctr[id], n);
}

int dp_pipe_init(struct dp_pipe *p, const struct hbus_pkt_cfg *cfg, uint16_t hbus_port,
		 const struct dp_route_src *src, _Atomic uint64_t *ctr,
		 struct hbus_dpc_stream *streams, uint32_t n_streams)
{
	int rc;

	if (!p || !cfg || !src || !ctr || !streams)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->pkt_cfg = *cfg;
	p->hbus_port = hbus_port;
	p->src = *src;
	p->ctr = ctr;
	rc = dp_seq_init(&p->seq, streams, n_streams, ctr);
	return rc;
}

/* ------------------------------------------------------- routing source */

static inline const struct hbus_rtable *src_begin(struct dp_pipe *p)
{
	uint64_t gen;

	if (p->src.router)
		return hbus_router_begin(p->src.router);
	if (p->src.routes)
		return hbus_routes_acquire(p->src.routes, p->src.readers, p->src.reader, &gen);
	return NULL; /* no session yet: the worker has no router */
}

static inline void src_end(struct dp_pipe *p)
{
	if (p->src.router)
		hbus_router_end(p->src.router);
	else if (p->src.routes)
		hbus_routes_release(p->src.readers, p->src.reader);
}

static inline hbus_queue *src_queue(struct dp_pipe *p, uint32_t qid)
{
	if (p->src.router)
		return hbus_router_queue(p->src.router, qid);
	return qid < p->src.qtab_len ? p->src.qtab[qid] : NULL;
}

/* No handle for qid because another writer holds the queue exclusively
 * (or this lcore asked to be its only producer and another writer is
 * there): hbus-dataplane --exclusive-producer. */
static inline int src_refused(const struct dp_pipe *p, uint32_t qid)
{
	return p->src.router && hbus_router_queue_error(p->src.router, qid) == -EBUSY;
}

/* ----------------------------------------------------------- staging */

static inline int queue_dead(const struct dp_pipe *p, uint32_t qid)
{
	for (unsigned i = 0; i < p->n_dead; i++)
		if (p->dead[i] == qid)
			return 1;
	return 0;
}

/* Enqueue one queue's staged messages; every one is delivered or counted.
 * s->sent says how many, should an enqueue fault (stage_flush_lists). */
static void stage_flush_one(struct dp_pipe *p, struct burst *b, unsigned k)
{
	struct dp_stage *s = &p->stage;
	hbus_queue *q = s->q[k];
	const struct hbus_out *out = s->out[k];
	unsigned n = s->n[k], i = 0;

	s->sent = 0;
	while (i < n) {
		int rc = hbus_queue_enqueue_burst(q, out + i, n - i);

		if (rc > 0) {
			b->delivered += (uint32_t)rc;
			i += (unsigned)rc;
			s->sent = i;
			continue;
		}
		if (rc == -ENOBUFS)
			ctr_add(p, HBUS_DPC_DROP_QUEUE_FULL, 1);
		else if (rc == -EMSGSIZE)
			ctr_add(p, HBUS_DPC_DROP_OVERSIZE, 1);
		else
			ctr_add(p, HBUS_DPC_DROP_NO_QUEUE, 1); /* slot taken by recovery */
		s->sent = ++i;
	}
	s->n[k] = 0;
}

/* List k's queue faulted in an enqueue: its file was truncated under us.
 * What was not counted yet (the faulting call's messages included: they
 * went into a ring that is gone) is a drop, and the queue is never touched
 * again by this pipeline (the handle may be half-way through a claim). */
static __attribute__((noinline, cold)) void stage_fault(struct dp_pipe *p, struct burst *b,
							unsigned k)
{
	struct dp_stage *s = &p->stage;

	ctr_add(p, HBUS_DPC_DROP_QUEUE_FAULT, s->n[k] - s->sent);
	s->n[k] = 0;
	if (b->q_memo == s->q[k])
		b->q_memo = NULL;
	if (p->n_dead < DP_DEAD_MAX && !queue_dead(p, s->qid[k]))
		p->dead[p->n_dead++] = s->qid[k];
}

/* Flush lists k0..k1-1 under the SIGBUS guard (fault_guard.h): a jump
 * back here means list k's queue faulted; the others are flushed all the
 * same.  sigsetjmp without the mask: no syscall per burst. */
static void stage_flush_lists(struct dp_pipe *p, struct burst *b, unsigned k0, unsigned k1)
{
	struct dp_stage *s = &p->stage;
	struct fault_guard g;
	volatile unsigned k = k0;

	if (sigsetjmp(g.env, 0) != 0)
		stage_fault(p, b, k++);
	for (; k < k1; k++) {
		fault_guard_arm(&g, s->q[k]);
		stage_flush_one(p, b, k);
	}
	fault_guard_disarm();
}

static void stage_flush(struct dp_pipe *p, struct burst *b)
{
	if (p->stage.nq)
		stage_flush_lists(p, b, 0, p->stage.nq);
	p->stage.nq = 0;
}

/* Slow path of stage_slot: q is not the last queue used, or its list is
 * full.  Finds or opens q's list; a full stage or list is flushed first. */
static __attribute__((noinline)) struct hbus_out *stage_slot_slow(struct dp_pipe *p,
								  struct burst *b, hbus_queue *q,
								  uint32_t qid)
{
	struct dp_stage *s = &p->stage;
	unsigned k;

	for (k = 0; k < s->nq && s->q[k] != q; k++)
		;
	if (k == s->nq) {
		if (k == DP_STAGE_QUEUES) {
			stage_flush(p, b); /* keeps per-queue order: lists go in order */
			k = 0;
		}
		s->q[k] = q;
		s->qid[k] = qid;
		s->n[k] = 0;
		s->nq = k + 1;
	} else if (s->n[k] == DP_STAGE_DEPTH) {
		stage_flush_lists(p, b, k, k + 1);
	}
	s->last = k;
	return &s->out[k][s->n[k]++];
}

/* Where the next message for q goes.  Most bursts feed one queue, so the
 * last queue's list is tried before any search. */
static inline struct hbus_out *stage_slot(struct dp_pipe *p, struct burst *b, hbus_queue *q,
					  uint32_t qid)
{
	struct dp_stage *s = &p->stage;
	unsigned k = s->last;

	if (__builtin_expect(k < s->nq && s->q[k] == q && s->n[k] < DP_STAGE_DEPTH, 1))
		return &s->out[k][s->n[k]++];
	return stage_slot_slow(p, b, q, qid);
}

/* The queue handle of qid.  The last handle found is remembered for the
 * burst (handles do not change between a table acquire and its release);
 * a qid without one is asked again every time, as the router may retry. */
static inline hbus_queue *burst_queue(struct dp_pipe *p, struct burst *b, uint32_t qid)
{
	hbus_queue *q;

	if (__builtin_expect(b->q_memo != NULL && b->q_memo_qid == qid, 1))
		return b->q_memo;
	if (__builtin_expect(p->n_dead != 0, 0) && queue_dead(p, qid))
		return NULL;
	q = src_queue(p, qid);
	if (q) {
		b->q_memo = q;
		b->q_memo_qid = qid;
	}
	return q;
}

/* Stage one message (its fields, written straight into the stage lists)
 * for each of n queues. */
static inline __attribute__((always_inline)) void
deliver(struct dp_pipe *p, struct burst *b, const uint32_t *qids, int n, const void *body,
	uint32_t body_len, const void *meta, uint16_t meta_len, uint64_t send_ts_ns)
{
	b->enqueues += (uint32_t)n;
	for (int i = 0; i < n; i++) {
		hbus_queue *q = burst_queue(p, b, qids[i]);

		if (__builtin_expect(q != NULL, 1)) {
			struct hbus_out *o = stage_slot(p, b, q, qids[i]);

			o->body = body;
			o->body_len = body_len;
			o->meta_len = meta_len;
			o->flags = 0;
			o->meta = meta;
			o->send_ts_ns = send_ts_ns;
		} else {
			ctr_add(p, queue_dead(p, qids[i])  ? HBUS_DPC_DROP_QUEUE_FAULT
				 : src_refused(p, qids[i]) ? HBUS_DPC_DROP_QUEUE_LOCKED
							   : HBUS_DPC_DROP_NO_QUEUE, 1);
		}
	}
}

/* ------------------------------------------------------------ messages */

/* A route lookup result: queues (>0), or the counter that says why not. */
static inline int count_unrouted(struct dp_pipe *p, int n)
{
	if (n > 0)
		return 1;
	ctr_add(p, n == 0 ? HBUS_DPC_DROP_NO_ROUTE : HBUS_DPC_DROP_NO_EXCHANGE, 1);
	return 0;
}

static void on_message(struct dp_pipe *p, struct burst *b, const struct hbus_wire_msg *m)
{
	struct hbus_meta *meta = &p->meta;
	const uint32_t *qids = p->qids;
	int n;

	b->msgs++;
	if (hbus_meta_decode(m->meta, m->meta_len, meta) != 0) {
		ctr_add(p, HBUS_DPC_DROP_BAD_META, 1);
		return;
	}
	if (!b->x_name || b->x_len != meta->exchange_len ||
	    memcmp(b->x_name, meta->exchange, meta->exchange_len) != 0) {
		if (hbus_route_exchange(p->t, meta->exchange, meta->exchange_len, &b->xid) != 0 ||
		    hbus_route_exchange_type(p->t, b->xid, &b->xtype) != 0) {
			b->x_name = NULL;
			ctr_add(p, HBUS_DPC_DROP_NO_EXCHANGE, 1);
			return;
		}
		b->x_name = meta->exchange;
		b->x_len = meta->exchange_len;
		b->key_valid = 0;
	}
	/* Same exchange and key as the last message: same queues, unless the
	 * exchange routes on headers. */
	if (b->key_valid && b->xtype != HBUS_X_HEADERS && b->key_xid == b->xid &&
	    b->key_len == meta->routing_key_len &&
	    memcmp(b->key, meta->routing_key, meta->routing_key_len) == 0) {
		n = b->key_n;
	} else {
		n = hbus_route_lookup(p->t, b->xid, meta->routing_key, meta->routing_key_len,
				      meta, p->qids, HBUS_ROUTE_MAX_QIDS);
		b->key_valid = 1;
		b->key_xid = b->xid;
		b->key = meta->routing_key;
		b->key_len = meta->routing_key_len;
		b->key_n = n;
	}
	if (!count_unrouted(p, n))
		return;
	b->routed++;
	/* The metadata block goes into the slot exactly as it came. */
	deliver(p, b, qids, n, m->body, m->body_len, m->meta, m->meta_len, m->send_ts_ns);
}

static void on_hbus_frame(struct dp_pipe *p, struct burst *b, const struct hbus_pkt *pkt)
{
	struct hbus_wire_frame fr;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;
	unsigned done = 0;
	int rc = hbus_wire_decode(pkt->payload, pkt->payload_len, &fr);

	if (rc != 0) {
		ctr_add(p, rc == -EPROTO ? HBUS_DPC_DROP_FRAME_MAGIC :
			   rc == -EPROTONOSUPPORT ? HBUS_DPC_DROP_FRAME_VERSION :
			   HBUS_DPC_DROP_FRAME_LENGTH, 1);
		return;
	}
	b->frames++;
	dp_seq_frame(&p->seq, fr.stream_id, fr.first_seq, fr.msg_count);
	if (fr.msg_count == 0) {
		ctr_add(p, HBUS_DPC_HEARTBEATS, 1);
		return;
	}
	hbus_wire_iter_init(&fr, &it);
	while ((rc = hbus_wire_iter_next(&it, &m)) == 1) {
		on_message(p, b, &m);
		done++;
	}
	if (rc < 0)
		ctr_add(p, HBUS_DPC_DROP_RECORD_LENGTH, fr.msg_count - done);
}

/* Encode the metadata block of a raw datagram (exchange, key, no headers)
 * into the burst's arena.  The arena holds one block per frame of a full
 * burst, so it never runs out within a burst. */
static const uint8_t *raw_meta(struct dp_pipe *p, uint32_t xid, const char *key, size_t klen,
			       uint16_t *len)
{
	struct dp_stage *s = &p->stage;
	uint8_t *at = s->arena + s->arena_used;
	const char *xname;
	size_t xlen;

	if (klen > HBUS_NAME_MAX || hbus_route_exchange_name(p->t, xid, &xname, &xlen) != 0 ||
	    s->arena_used + 4u + xlen + klen > DP_META_ARENA)
		return NULL;
	at[0] = (uint8_t)xlen; /* <= HBUS_NAME_MAX */
	memcpy(at + 1, xname, xlen);
	at[1 + xlen] = (uint8_t)klen;
	memcpy(at + 2 + xlen, key, klen);
	at[2 + xlen + klen] = 0; /* header_count, u16 little-endian */
	at[3 + xlen + klen] = 0;
	*len = (uint16_t)(4u + xlen + klen);
	s->arena_used += *len;
	return at;
}

static void on_raw(struct dp_pipe *p, struct burst *b, const struct hbus_pkt *pkt)
{
	if (b->raw_state == 0 || b->raw_ip != pkt->dst_ip || b->raw_port != pkt->dst_port) {
		const char *key;
		size_t klen;
		uint32_t xid;

		b->raw_ip = pkt->dst_ip;
		b->raw_port = pkt->dst_port;
		b->raw_state = 2;
		if (hbus_route_udpmap(p->t, htonl(pkt->dst_ip), pkt->dst_port, &xid, &key, &klen) != 0)
			goto nomap;
		b->raw_meta = raw_meta(p, xid, key, klen, &b->raw_meta_len);
		if (!b->raw_meta)
			goto nomap;
		b->raw_state = 1;
		b->raw_n = hbus_route_lookup(p->t, xid, key, klen, NULL, b->raw_qids,
					     HBUS_ROUTE_MAX_QIDS);
	}
	if (b->raw_state != 1)
		goto nomap;
	b->raw++;
	b->msgs++;
	if (!count_unrouted(p, b->raw_n))
		return;
	b->routed++;
	deliver(p, b, b->raw_qids, b->raw_n, pkt->payload, pkt->payload_len, b->raw_meta,
		b->raw_meta_len, 0);
	return;
nomap:
	ctr_add(p, HBUS_DPC_DROP_NO_UDPMAP, 1);
}

static void on_udp(struct dp_pipe *p, struct burst *b, const struct hbus_pkt *pkt)
{
	b->udp++;
	if (__builtin_expect(!p->t, 0)) {
		if (!b->table_tried) {
			b->table_tried = 1;
			p->t = src_begin(p);
		}
		if (!p->t) {
			ctr_add(p, HBUS_DPC_DROP_NO_TABLE, 1);
			return;
		}
	}
	if (pkt->dst_port == p->hbus_port)
		on_hbus_frame(p, b, pkt);
	else
		on_raw(p, b, pkt);
}

/* --------------------------------------------------------------- burst */

unsigned dp_pipe_burst(struct dp_pipe *p, const struct dp_frame *f, unsigned n,
		       struct dp_ctl *ctl)
{
	struct burst b;
	struct hbus_pkt pkt;
	uint64_t bytes = 0;
	unsigned i, nctl = 0;
	int v;

	if (n > DP_BURST_MAX)
		n = DP_BURST_MAX;
	/* Only the scalars: raw_qids is written before it is read. */
	memset(&b, 0, offsetof(struct burst, raw_qids));
	if (p->mcast)
		p->pkt_cfg.mcast = atomic_load_explicit(p->mcast, memory_order_acquire);
	for (i = 0; i < n && i < 3; i++)
		__builtin_prefetch(f[i].data);

	for (i = 0; i < n; i++) {
		if (i + 3 < n)
			__builtin_prefetch(f[i + 3].data);
		bytes += f[i].len;
		/* hbus_pkt_parse_hint, with its fast path inlined here. */
		v = hbus_pkt_parse_fast(f[i].data, f[i].len, &p->pkt_cfg, f[i].hints, &pkt);
		if (__builtin_expect(v < 0, 0))
			v = hbus_pkt_parse_careful(f[i].data, f[i].len, &p->pkt_cfg, f[i].hints,
						   &pkt);
		switch (v) {
		case HBUS_PKT_UDP:
			on_udp(p, &b, &pkt);
			break;
		case HBUS_PKT_ARP_REQUEST:
			ctr_add(p, HBUS_DPC_ARP_REQUESTS, 1);
			ctl[nctl].idx = i;
			ctl[nctl++].pkt = pkt;
			break;
		case HBUS_PKT_IGMP_QUERY:
			ctr_add(p, HBUS_DPC_IGMP_QUERIES, 1);
			ctl[nctl].idx = i;
			ctl[nctl++].pkt = pkt;
			break;
		default:
			/* The parser names exactly one reason; out of range
			 * cannot happen, but must not index past the block. */
			ctr_add(p, HBUS_DPC_PARSER_DROPS +
				   (pkt.drop < HBUS_PKT_DROP__COUNT ? pkt.drop : HBUS_PKT_DROP_NONE), 1);
			break;
		}
	}

	stage_flush(p, &b);
	/* Every message of the burst is enqueued or counted: a successor of a
	 * dataplane killed before this line counts the burst as a gap. */
	dp_seq_commit(&p->seq);
	p->stage.arena_used = 0;
	/* Every begin is paired with an end, also one that found no table
	 * (the router counts nesting either way). */
	if (b.table_tried)
		src_end(p);
	p->t = NULL;
	ctr_add(p, HBUS_DPC_RX_PKTS, n);
	ctr_add(p, HBUS_DPC_RX_BYTES, bytes);
	ctr_add(p, HBUS_DPC_BURSTS, 1);
	if (b.udp)
		ctr_add(p, HBUS_DPC_UDP_PKTS, b.udp);
	if (b.frames)
		ctr_add(p, HBUS_DPC_HBUS_FRAMES, b.frames);
	if (b.raw)
		ctr_add(p, HBUS_DPC_RAW_DGRAMS, b.raw);
	if (b.msgs)
		ctr_add(p, HBUS_DPC_MSGS, b.msgs);
	if (b.routed)
		ctr_add(p, HBUS_DPC_ROUTED, b.routed);
	if (b.enqueues)
		ctr_add(p, HBUS_DPC_ENQUEUES, b.enqueues);
	if (b.delivered)
		ctr_add(p, HBUS_DPC_DELIVERED, b.delivered);
	return nctl;
}
