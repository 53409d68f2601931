/*
 * test_dp_pipe.c - the dataplane's burst pipeline (dataplane/dp_pipe.c)
 * without DPDK: frames built in memory go through dp_pipe_burst into real
 * queue rings routed by a real compiled table (dp_localbus), and every
 * message is checked on the consumer side (meta, body, order) and every
 * frame in a counter, with the accounting identities of dp_counter_ids.h.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp_localbus.h"
#include "dp_pipe.h"
#include "fault_guard.h"
#include "pkt_build.h"
#include "route.h"
#include "testutil.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define OUR_IP  IP(10, 0, 0, 1)
#define PEER_IP IP(10, 0, 0, 7)
#define GROUP   IP(239, 1, 1, 1)
#define HPORT   5900

enum { QA = 10, QB = 11, QC = 12 };

static struct dp_localbus bus;
static struct dp_pipe *pipe_;
static _Atomic uint64_t ctr[HBUS_DPC__COUNT];
static struct hbus_dpc_stream streams[HBUS_DPC_STREAMS];
static struct hbus_mcast_set groups;
static hbus_queue *cons[3];

/* frames of the burst being built */
static uint8_t fbuf[64][2048];
static struct dp_frame frames[64];
static unsigned nframes;

static const struct hbus_rc_exchange xs[] = {
	{ .name = "md", .type = HBUS_X_DIRECT },
	{ .name = "fan", .type = HBUS_X_FANOUT },
};
static const struct hbus_rc_queue qs[] = {
	{ .name = "qa", .qid = QA }, { .name = "qb", .qid = QB }, { .name = "qc", .qid = QC },
};
static const struct hbus_rc_binding bs[] = {
	{ .source = "md", .dest = "qa", .key = "a" },
	{ .source = "md", .dest = "qb", .key = "b" },
	{ .source = "fan", .dest = "qa", .key = "" },
	{ .source = "fan", .dest = "qc", .key = "" },
};
static struct hbus_rc_udpmap us[3];

static void setup_bus(uint32_t capacity, uint32_t slot_size)
{
	struct hbus_queue_config qc = { .capacity = capacity, .slot_size = slot_size,
					.overflow = HBUS_OVERFLOW_REJECT, .numa_node = -1 };
	struct hbus_rc_input in = { .exchanges = xs, .n_exchanges = 2, .queues = qs, .n_queues = 3,
				    .bindings = bs, .n_bindings = 4, .udpmaps = us, .n_udpmaps = 3 };
	struct hbus_pkt_cfg pc;
	struct dp_route_src src;
	int i;

	us[0] = (struct hbus_rc_udpmap){ .ip_be = htonl(OUR_IP), .port = 7000, .exchange = "md", .key = "a" };
	us[1] = (struct hbus_rc_udpmap){ .ip_be = htonl(GROUP), .port = 7001, .exchange = "fan", .key = "any" };
	us[2] = (struct hbus_rc_udpmap){ .ip_be = htonl(OUR_IP), .port = 7002, .exchange = "md", .key = "nobody" };
	cr_assert_eq(dp_localbus_open(&bus, "/dev/shm", &in, &qc), 0);
	hbus_mcast_set_init(&groups);
	hbus_mcast_set_add(&groups, GROUP);
	cr_assert_eq(hbus_pkt_cfg_init(&pc, OUR_IP, 24, &groups), 0);
	dp_localbus_route_src(&bus, &src);
	pipe_ = calloc(1, sizeof(*pipe_));
	memset(ctr, 0, sizeof(ctr));
	memset(streams, 0, sizeof(streams));
	cr_assert_eq(dp_pipe_init(pipe_, &pc, HPORT, &src, ctr, streams, HBUS_DPC_STREAMS), 0);
	for (i = 0; i < 3; i++)
		cr_assert_eq(dp_localbus_consumer(&bus, QA + (uint32_t)i, 2, HBUS_ACK_AUTO, &cons[i]), 0);
	nframes = 0;
}

static void setup(void) { setup_bus(1024, 512); }

static void teardown(void)
{
	for (int i = 0; i < 3; i++)
		hbus_queue_close(cons[i]);
	dp_localbus_close(&bus);
	free(pipe_);
}

static uint64_t C(unsigned id) { return atomic_load(&ctr[id]); }

static uint64_t parser_drops(void)
{
	uint64_t s = 0;
	for (unsigned i = 1; i < HBUS_PKT_DROP__COUNT; i++)
		s += C(i);
	return s;
}

/* The identities of dp_counter_ids.h: every frame, datagram, message and
 * (message, queue) pair lands in exactly one counter. */
static void check_identities(void)
{
	cr_assert_eq(C(HBUS_DPC_RX_PKTS), C(HBUS_DPC_UDP_PKTS) + C(HBUS_DPC_ARP_REQUESTS) +
		     C(HBUS_DPC_IGMP_QUERIES) + parser_drops() + C(HBUS_DPC_DROP_MULTISEG));
	cr_assert_eq(C(HBUS_DPC_UDP_PKTS), C(HBUS_DPC_HBUS_FRAMES) + C(HBUS_DPC_RAW_DGRAMS) +
		     C(HBUS_DPC_DROP_NO_UDPMAP) + C(HBUS_DPC_DROP_NO_TABLE) +
		     C(HBUS_DPC_DROP_FRAME_MAGIC) + C(HBUS_DPC_DROP_FRAME_VERSION) +
		     C(HBUS_DPC_DROP_FRAME_LENGTH));
	cr_assert_eq(C(HBUS_DPC_MSGS), C(HBUS_DPC_ROUTED) + C(HBUS_DPC_DROP_NO_EXCHANGE) +
		     C(HBUS_DPC_DROP_NO_ROUTE) + C(HBUS_DPC_DROP_BAD_META));
	cr_assert_eq(C(HBUS_DPC_ENQUEUES), C(HBUS_DPC_DELIVERED) + C(HBUS_DPC_DROP_QUEUE_FULL) +
		     C(HBUS_DPC_DROP_OVERSIZE) + C(HBUS_DPC_DROP_NO_QUEUE) +
		     C(HBUS_DPC_DROP_QUEUE_FAULT) + C(HBUS_DPC_DROP_QUEUE_LOCKED));
}

static struct hbus_udp_spec spec_to(uint32_t dst, uint16_t dport)
{
	struct hbus_udp_spec s = { .src_ip = PEER_IP, .dst_ip = dst, .src_port = 40000,
				   .dst_port = dport };
	s.src_mac[5] = 7;
	if (dst >> 28 == 0xe)
		hbus_mcast_mac(dst, s.dst_mac);
	else
		s.dst_mac[5] = 1;
	return s;
}

static uint8_t *next_frame(void)
{
	cr_assert_lt(nframes, 64);
	return fbuf[nframes];
}

static void push(int len)
{
	cr_assert_gt(len, 0);
	frames[nframes].data = fbuf[nframes];
	frames[nframes].len = (uint32_t)len;
	frames[nframes].hints = 0;
	nframes++;
}

static void add_raw(uint32_t dst, uint16_t dport, const void *body, size_t len)
{
	struct hbus_udp_spec s = spec_to(dst, dport);
	push(hbus_build_udp(next_frame(), 2048, &s, body, len));
}

struct tmsg { const char *x, *key; uint32_t id; };

/* An hbus frame of n messages; body = "id:<id>" padded with the id byte. */
static void add_hbus(uint32_t stream, uint64_t first_seq, const struct tmsg *m, unsigned n)
{
	struct hbus_udp_spec s = spec_to(OUR_IP, HPORT);
	uint8_t *f = next_frame();
	size_t off = hbus_udp_payload_off(&s);
	struct hbus_wire_encoder e;
	unsigned i;

	cr_assert_eq(hbus_wire_encoder_init(&e, f + off, 2048 - off, stream, first_seq), 0);
	for (i = 0; i < n; i++) {
		struct hbus_meta meta = { .exchange = m[i].x, .exchange_len = (uint8_t)strlen(m[i].x),
					  .routing_key = m[i].key,
					  .routing_key_len = (uint8_t)strlen(m[i].key) };
		char body[16];
		int bl = snprintf(body, sizeof(body), "id:%u", m[i].id);
		cr_assert_eq(hbus_wire_encoder_add(&e, &meta, body, (uint32_t)bl, 1000 + m[i].id, 0), 0);
	}
	int len = hbus_wire_encoder_finish(&e);
	push(hbus_build_udp(f, 2048, &s, NULL, (size_t)len));
}

static unsigned run(void)
{
	struct dp_ctl ctl[DP_BURST_MAX];
	unsigned i, nctl = 0;

	for (i = 0; i < nframes; i += DP_BURST_MAX) {
		unsigned n = nframes - i < DP_BURST_MAX ? nframes - i : DP_BURST_MAX;
		nctl += dp_pipe_burst(pipe_, frames + i, n, ctl);
	}
	nframes = 0;
	cr_assert(dp_pipe_idle(pipe_));
	return nctl;
}

/* Drain queue q; returns the ids in order ("id:N" bodies) and checks meta. */
static unsigned drain(int qi, uint32_t *ids, unsigned max, const char *want_x, const char *want_key)
{
	struct hbus_msg m;
	struct hbus_meta meta;
	unsigned n = 0;

	while (hbus_queue_consume(cons[qi], &m) == 0) {
		cr_assert_lt(n, max);
		cr_assert_eq(hbus_meta_decode(m.meta, m.meta_len, &meta), 0);
		if (want_x) {
			cr_assert_eq(meta.exchange_len, strlen(want_x));
			cr_assert_eq(memcmp(meta.exchange, want_x, meta.exchange_len), 0);
			cr_assert_eq(meta.routing_key_len, strlen(want_key));
			cr_assert_eq(memcmp(meta.routing_key, want_key, meta.routing_key_len), 0);
		}
		char body[32] = { 0 };
		memcpy(body, m.body, m.body_len < 31 ? m.body_len : 31);
		cr_assert_eq(sscanf(body, "id:%u", &ids[n]), 1, "body '%s'", body);
		n++;
		cr_assert_eq(hbus_queue_ack(cons[qi], &m), 0);
	}
	return n;
}

TestSuite(dp_pipe, .init = setup, .fini = teardown);

Test(dp_pipe, raw_unicast_routed_by_udpmap_with_meta_built)
{
	uint32_t ids[64];
	char body[16];
	unsigned i;

	for (i = 0; i < 40; i++) {
		int n = snprintf(body, sizeof(body), "id:%u", i);
		add_raw(OUR_IP, 7000, body, (size_t)n);
	}
	cr_assert_eq(run(), 0);
	cr_assert_eq(drain(0, ids, 64, "md", "a"), 40);
	for (i = 0; i < 40; i++)
		cr_assert_eq(ids[i], i);
	cr_assert_eq(C(HBUS_DPC_RAW_DGRAMS), 40);
	cr_assert_eq(C(HBUS_DPC_DELIVERED), 40);
	cr_assert_eq(C(HBUS_DPC_BURSTS), 2);
	check_identities();
}

Test(dp_pipe, raw_multicast_fanout_and_unmapped_and_unrouted)
{
	uint32_t ids[8];

	add_raw(GROUP, 7001, "id:1", 4);              /* fanout: qa and qc */
	add_raw(OUR_IP, 7002, "id:2", 4);             /* maps to a key nothing binds */
	add_raw(OUR_IP, 7999, "id:3", 4);             /* no udpmap */
	add_raw(IP(239, 9, 9, 9), 7001, "id:4", 4);   /* group not joined: parser */
	cr_assert_eq(run(), 0);
	cr_assert_eq(drain(0, ids, 8, "fan", "any"), 1);
	cr_assert_eq(drain(2, ids, 8, "fan", "any"), 1);
	cr_assert_eq(ids[0], 1);
	cr_assert_eq(C(HBUS_DPC_DROP_NO_ROUTE), 1);
	cr_assert_eq(C(HBUS_DPC_DROP_NO_UDPMAP), 1);
	cr_assert_eq(C(HBUS_PKT_DROP_NOT_FOR_US), 1);
	cr_assert_eq(C(HBUS_DPC_DELIVERED), 2);
	cr_assert_eq(C(HBUS_DPC_ENQUEUES), 2);
	check_identities();
}

Test(dp_pipe, hbus_frames_route_each_message_with_meta_unchanged)
{
	struct tmsg m[6] = { { "md", "a", 0 }, { "md", "b", 1 }, { "md", "a", 2 },
			     { "fan", "x", 3 }, { "md", "zz", 4 }, { "nope", "a", 5 } };
	uint32_t ids[16];
	struct hbus_msg hm;

	add_hbus(7, 100, m, 6);
	cr_assert_eq(run(), 0);
	/* qa: ids 0, 2 (md/a) and 3 (fanout) in frame order */
	cr_assert_eq(drain(0, ids, 16, NULL, NULL), 3);
	cr_assert_eq(ids[0], 0);
	cr_assert_eq(ids[1], 2);
	cr_assert_eq(ids[2], 3);
	cr_assert_eq(drain(1, ids, 16, "md", "b"), 1);
	cr_assert_eq(drain(2, ids, 16, "fan", "x"), 1);
	cr_assert_eq(C(HBUS_DPC_MSGS), 6);
	cr_assert_eq(C(HBUS_DPC_ROUTED), 4);
	cr_assert_eq(C(HBUS_DPC_DROP_NO_ROUTE), 1);
	cr_assert_eq(C(HBUS_DPC_DROP_NO_EXCHANGE), 1);
	cr_assert_eq(C(HBUS_DPC_DELIVERED), 5);
	check_identities();

	/* the sender's timestamp travels into the slot */
	add_hbus(7, 106, m, 1);
	run();
	cr_assert_eq(hbus_queue_consume(cons[0], &hm), 0);
	cr_assert_eq(hm.send_ts_ns, 1000);
	hbus_queue_ack(cons[0], &hm);
}

Test(dp_pipe, order_kept_across_stage_flushes_and_many_queues)
{
	/* 3 frames of 60 messages alternating qa/qb: more than a stage list holds. */
	struct tmsg m[60];
	static uint32_t ids[512];
	unsigned i, f, n;

	for (f = 0; f < 3; f++) {
		for (i = 0; i < 60; i++)
			m[i] = (struct tmsg){ "md", i % 3 ? "a" : "b", f * 60 + i };
		add_hbus(1, f * 60, m, 60);
	}
	run();
	n = drain(0, ids, 512, "md", "a");
	cr_assert_eq(n, 120);
	for (i = 1; i < n; i++)
		cr_assert_gt(ids[i], ids[i - 1], "qa out of order at %u", i);
	n = drain(1, ids, 512, "md", "b");
	cr_assert_eq(n, 60);
	for (i = 1; i < n; i++)
		cr_assert_gt(ids[i], ids[i - 1]);
	cr_assert_eq(C(HBUS_DPC_SEQ_GAPS), 0);
	check_identities();
}

Test(dp_pipe, sequence_gaps_dups_resets_per_stream)
{
	struct tmsg m[4] = { { "md", "a", 0 }, { "md", "a", 1 }, { "md", "a", 2 }, { "md", "a", 3 } };
	uint32_t ids[64];

	add_hbus(5, 10, m, 4);        /* 10..13 */
	add_hbus(5, 16, m, 2);        /* gap 14, 15 */
	add_hbus(5, 17, m, 2);        /* 17 dup, 18 new */
	add_hbus(6, 0, m, 1);         /* another stream */
	add_hbus(5, 19, m, 0);        /* heartbeat: nothing missing */
	add_hbus(5, 25, m, 0);        /* heartbeat: 19..24 missing */
	add_hbus(5, 3, m, 4);         /* below, within the reset window: 4 dups */
	run();
	add_hbus(5, (uint64_t)1 << 40, m, 1); /* jump forward: gap */
	add_hbus(5, 0, m, 1);                 /* restart from 0: reset */
	run();
	const struct hbus_dpc_stream *s5 = dp_seq_find(&pipe_->seq, 5);
	const struct hbus_dpc_stream *s6 = dp_seq_find(&pipe_->seq, 6);
	cr_assert_not_null(s5);
	cr_assert_not_null(s6);
	uint64_t gap_jump = ((uint64_t)1 << 40) - 25;
	cr_assert_eq(atomic_load(&s5->gaps), 2 + 6 + gap_jump);
	cr_assert_eq(atomic_load(&s5->dups), 1 + 4);
	cr_assert_eq(atomic_load(&s5->resets), 1);
	cr_assert_eq(atomic_load(&s5->next_seq), 1);
	cr_assert_eq(atomic_load(&s6->gaps) + atomic_load(&s6->dups), 0);
	cr_assert_eq(C(HBUS_DPC_SEQ_GAPS), 2 + 6 + gap_jump);
	cr_assert_eq(C(HBUS_DPC_SEQ_DUPS), 5);
	cr_assert_eq(C(HBUS_DPC_HEARTBEATS), 2);
	/* duplicates are counted, and still delivered */
	cr_assert_eq(drain(0, ids, 64, "md", "a"), 4 + 2 + 2 + 1 + 4 + 1 + 1);
	cr_assert_null(dp_seq_find(&pipe_->seq, 99));
	check_identities();
}

/* Rewrite a built frame's UDP payload byte (and zero the UDP checksum so
 * only the hbus layer sees the damage). */
static void poke_payload(unsigned fi, size_t at, uint8_t v)
{
	uint8_t *f = fbuf[fi];
	f[14 + 20 + 6] = 0;
	f[14 + 20 + 7] = 0;
	f[42 + at] = v;
}

Test(dp_pipe, malformed_hbus_frames_counted_by_reason_and_neighbours_arrive)
{
	struct tmsg ok = { "md", "a", 0 }, two[2] = { { "md", "a", 0 }, { "md", "a", 0 } };
	uint32_t ids[16];
	unsigned i = 0;

	add_hbus(1, 0, &ok, 1);  ids[i++] = 0;
	add_hbus(1, 1, &ok, 1);  poke_payload(nframes - 1, 0, 'X');          /* magic */
	add_hbus(1, 1, &ok, 1);  poke_payload(nframes - 1, 4, 9);            /* version */
	add_hbus(1, 1, &ok, 1);  poke_payload(nframes - 1, 6, 200);          /* msg_count past the datagram */
	add_hbus(1, 1, two, 2);  poke_payload(nframes - 1, 24, 0xff);        /* first record_len: runs past */
	add_hbus(1, 3, &ok, 1);  poke_payload(nframes - 1, 24 + 20, 200);    /* meta exchange_len past meta */
	add_raw(OUR_IP, HPORT, "HBU", 3);                                     /* header truncated */
	add_hbus(1, 4, &ok, 1);
	run();
	cr_assert_eq(C(HBUS_DPC_DROP_FRAME_MAGIC), 1);
	cr_assert_eq(C(HBUS_DPC_DROP_FRAME_VERSION), 1);
	cr_assert_eq(C(HBUS_DPC_DROP_FRAME_LENGTH), 2);
	cr_assert_eq(C(HBUS_DPC_DROP_RECORD_LENGTH), 2);
	cr_assert_eq(C(HBUS_DPC_DROP_BAD_META), 1);
	cr_assert_eq(drain(0, ids, 16, "md", "a"), 2);
	check_identities();
}

static void fix_ip_csum(uint8_t *f)
{
	uint16_t cs;

	f[24] = f[25] = 0;
	cs = hbus_ipv4_hdr_csum(f + 14, 20);
	memcpy(f + 24, &cs, 2);
}

/* An ARP request from the peer for target (by hand: Ethernet + RFC 826). */
static void add_arp_request(uint32_t target)
{
	uint8_t *a = next_frame();
	uint32_t spa = htonl(PEER_IP), tpa = htonl(target);

	memset(a, 0, 60);
	memset(a, 0xff, 6);
	a[11] = 7;
	a[12] = 0x08, a[13] = 0x06;
	a[15] = 1;                  /* htype Ethernet */
	a[16] = 0x08;               /* ptype IPv4 */
	a[18] = 6, a[19] = 4;       /* hlen, plen */
	a[21] = 1;                  /* request */
	a[27] = 7;                  /* sha 00:..:07 */
	memcpy(a + 28, &spa, 4);
	memcpy(a + 38, &tpa, 4);
	push(60);
}

Test(dp_pipe, parser_drops_counted_and_arp_request_listed)
{
	struct dp_ctl ctl[DP_BURST_MAX];
	uint32_t ids[8];

	add_raw(OUR_IP, 7000, "id:0", 4);
	fbuf[nframes - 1][24] ^= 0x55;                   /* IP header checksum broken */
	add_raw(OUR_IP, 7000, "id:1", 4);
	fbuf[nframes - 1][14 + 6] = 0x20;                /* MF set: a fragment */
	fix_ip_csum(fbuf[nframes - 1]);
	add_raw(OUR_IP, 7000, "id:2", 4);
	frames[nframes - 1].len = 30;                    /* runt */
	add_raw(OUR_IP, 7000, "id:3", 4);
	fbuf[nframes - 1][12] = 0x86;                    /* IPv6 ethertype */
	fbuf[nframes - 1][13] = 0xdd;
	add_arp_request(OUR_IP);
	add_arp_request(IP(10, 0, 0, 99));               /* for someone else */
	add_raw(OUR_IP, 7000, "id:6", 4);
	fbuf[nframes - 1][42 + 1] ^= 1;                  /* payload changed: UDP checksum wrong */
	add_raw(OUR_IP, 7000, "id:7", 4);

	cr_assert_eq(dp_pipe_burst(pipe_, frames, nframes, ctl), 1);
	nframes = 0;
	cr_assert_eq(ctl[0].idx, 4);
	cr_assert_eq(ctl[0].pkt.verdict, HBUS_PKT_ARP_REQUEST);
	cr_assert_eq(ctl[0].pkt.arp_spa, PEER_IP);
	cr_assert_eq(C(HBUS_PKT_DROP_BAD_IP_CHECKSUM), 1);
	cr_assert_eq(C(HBUS_PKT_DROP_FRAGMENT), 1);
	cr_assert_eq(C(HBUS_PKT_DROP_RUNT), 1);
	cr_assert_eq(C(HBUS_PKT_DROP_UNKNOWN_ETHERTYPE), 1);
	cr_assert_eq(C(HBUS_PKT_DROP_ARP_OTHER), 1);
	cr_assert_eq(C(HBUS_PKT_DROP_BAD_UDP_CHECKSUM), 1);
	cr_assert_eq(C(HBUS_DPC_ARP_REQUESTS), 1);
	cr_assert_eq(C(HBUS_DPC_RX_PKTS), 8);
	cr_assert_eq(drain(0, ids, 8, "md", "a"), 1);
	cr_assert_eq(ids[0], 7);
	check_identities();
}

Test(dp_pipe, queue_full_and_oversize_counted)
{
	uint32_t ids[2048];
	static uint8_t big[600];
	char body[16];
	unsigned i, total = 0;

	teardown();
	setup_bus(16, 128);
	for (i = 0; i < 40; i++) {
		int n = snprintf(body, sizeof(body), "id:%u", i);
		add_raw(OUR_IP, 7000, body, (size_t)n);
	}
	memcpy(big, "id:99", 5);
	add_raw(OUR_IP, 7000, big, 200);  /* meta + 200 > 128-byte slot */
	run();
	cr_assert_eq(C(HBUS_DPC_DELIVERED), 16);
	cr_assert_eq(C(HBUS_DPC_DROP_QUEUE_FULL), 24);
	cr_assert_eq(C(HBUS_DPC_DROP_OVERSIZE), 1);
	total = drain(0, ids, 2048, "md", "a");
	cr_assert_eq(total, 16);
	for (i = 0; i < 16; i++)
		cr_assert_eq(ids[i], i);
	check_identities();
}

Test(dp_pipe, no_table_counts_udp)
{
	struct dp_route_src none = { 0 };
	struct hbus_pkt_cfg pc = pipe_->pkt_cfg;

	cr_assert_eq(dp_pipe_init(pipe_, &pc, HPORT, &none, ctr, streams, HBUS_DPC_STREAMS), 0);
	memset(ctr, 0, sizeof(ctr));
	add_raw(OUR_IP, 7000, "id:0", 4);
	add_raw(OUR_IP, HPORT, "id:0", 4);
	run();
	cr_assert_eq(C(HBUS_DPC_DROP_NO_TABLE), 2);
	check_identities();
}

Test(dp_pipe, table_change_seen_at_next_burst)
{
	static const struct hbus_rc_binding b2[] = { { .source = "md", .dest = "qc", .key = "a" } };
	struct hbus_rc_input in = { .exchanges = xs, .n_exchanges = 2, .queues = qs, .n_queues = 3,
				    .bindings = b2, .n_bindings = 1, .udpmaps = us, .n_udpmaps = 1 };
	uint32_t ids[8];

	add_raw(OUR_IP, 7000, "id:1", 4);
	run();
	cr_assert_eq(dp_localbus_publish(&bus, &in), 0);
	add_raw(OUR_IP, 7000, "id:2", 4);
	run();
	cr_assert_eq(drain(0, ids, 8, "md", "a"), 1);
	cr_assert_eq(ids[0], 1);
	cr_assert_eq(drain(2, ids, 8, "md", "a"), 1);
	cr_assert_eq(ids[0], 2);
	check_identities();
}

/* A routed queue whose handle is not there (deleted, or not opened yet):
 * each (message, queue) pair for it is counted as drop_no_queue, and the
 * message still reaches the other queues it was routed to. */
Test(dp_pipe, queue_without_a_handle_is_drop_no_queue)
{
	hbus_queue *qc = bus.qtab[QC];
	uint32_t ids[8];

	bus.qtab[QC] = NULL;
	add_raw(GROUP, 7001, "id:1", 4); /* fanout: qa and qc */
	add_raw(GROUP, 7001, "id:2", 4);
	run();
	bus.qtab[QC] = qc;
	cr_assert_eq(drain(0, ids, 8, "fan", "any"), 2);
	cr_assert(ids[0] == 1 && ids[1] == 2);
	cr_assert_eq(drain(2, ids, 8, "fan", "any"), 0);
	cr_assert_eq(C(HBUS_DPC_DROP_NO_QUEUE), 2);
	cr_assert_eq(C(HBUS_DPC_ENQUEUES), 4);
	cr_assert_eq(C(HBUS_DPC_DELIVERED), 2);
	check_identities();
}

/* A queue file truncated under the pipeline (any client holding its
 * descriptor can): the enqueue faults, the queue is dropped for good, each
 * of its pairs counted as drop_queue_fault, and every message still
 * reaches the other queue it was routed to, in order. */
Test(dp_pipe, truncated_queue_is_dropped_and_the_others_fed)
{
	uint32_t ids[64];
	struct stat st;
	char body[16];
	unsigned i;

	cr_assert_eq(fault_guard_install(), 0);
	cr_assert_eq(fstat(bus.qfd[QA], &st), 0);
	add_raw(GROUP, 7001, "id:0", 4); /* fanout: qa and qc */
	run();
	cr_assert_eq(ftruncate(bus.qfd[QA], 4096), 0);
	for (i = 1; i <= 40; i++) /* two bursts: the first faults, the second knows */
		add_raw(GROUP, 7001, body, (size_t)snprintf(body, sizeof(body), "id:%u", i));
	run();
	cr_assert_eq(drain(2, ids, 64, "fan", "any"), 41);
	for (i = 0; i <= 40; i++)
		cr_assert_eq(ids[i], i);
	cr_assert_eq(C(HBUS_DPC_DROP_QUEUE_FAULT), 40);
	cr_assert_eq(C(HBUS_DPC_DELIVERED), 2 + 40);
	cr_assert_eq(C(HBUS_DPC_BURSTS), 3);
	check_identities();
	/* Back to its size (zeros) for the teardown, which closes qa's
	 * handles: hbusd does the same when it sees a truncation. */
	cr_assert_eq(ftruncate(bus.qfd[QA], st.st_size), 0);
}
