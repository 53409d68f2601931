/*
 * bench_dataplane.c - `hbus-bench dataplane`: how much of a port's receive
 * rate survives parse + route + enqueue, on one lcore.
 *
 *   hbus-bench dataplane [--seconds S] [--rounds R] [--mode raw|hbus]
 *                        [--msgs-per-frame K] [--payload B] [--cpus A,B] [--json]
 *                        [--verbose] [--route-only] [--exclusive]
 *
 * A net_pcap port replays a pcap we generate (small UDP frames) from
 * memory at the rate the lcore can take (infinite_rx).  Each round runs two
 * phases on cpu A for S seconds each:
 *   pmd_only  rx_burst + free: the port's receive-and-drop rate, the baseline;
 *   hbus      dp_worker_poll(): the exact burst function of hbus-dataplane
 *             (parse, udpmap or frame decode, route lookup, enqueue into a
 *             real queue ring), with a consumer draining the queue on cpu B.
 * Phases alternate and repeat (--rounds); the medians and the median ratio
 * are reported.  hbus_mpps counts frames whose every message reached the
 * queue (a frame dropped because the consumer fell behind does not count).
 * No hbusd: the routing table and queue live in a local bus (dp_localbus),
 * read through the same lookup code.  Needs root (DPDK, even --no-huge).
 *
 *   hbus-bench dataplane e2e ...   UDP -> consumer latency, hbus vs kernel
 *                                  (bench_dataplane_e2e.c, run by scripts/bench-e2e)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "bench.h"
#include "dp_localbus.h"
#include "dp_port.h"
#include "dp_worker.h"
#include "fault_guard.h"
#include "pkt_build.h"

#define BD_IP        0x0a000001u /* 10.0.0.1 */
#define BD_PEER      0x0a000007u
#define BD_RAW_PORT  7000u
#define BD_FRAMES    256u        /* distinct frames in the pcap */
#define BD_ROUNDS_MAX 50u

struct bd_opts {
	double seconds;
	unsigned rounds, msgs_per_frame, payload;
	int hbus_mode;
	int cpu_rx, cpu_cons;
	int json, verbose, route_only;
	int exclusive; /* the lcore is the queue's exclusive producer (--exclusive-producer) */
};

struct bd_consumer {
	hbus_queue *q;
	int cpu;
	alignas(128) _Atomic int stop;
	alignas(128) _Atomic uint64_t consumed;
};

struct bd_round {
	double pmd_mpps, hbus_mpps, rx_mpps, msgs_mpps, ratio;
	uint64_t queue_full;
};

static void bd_usage(FILE *f)
{
	fprintf(f, "usage: hbus-bench dataplane [--seconds S] [--rounds R] [--mode raw|hbus]\n"
		   "                            [--msgs-per-frame K] [--payload B] [--cpus A,B] [--json]\n"
		   "                            [--verbose] [--route-only] [--exclusive]\n"
		   "  --seconds S         each phase of each round (default 2, fractions allowed)\n"
		   "  --rounds R          pmd_only / hbus alternations (default 3)\n"
		   "  --mode raw|hbus     raw UDP routed by a udpmap (default), or hbus frames\n"
		   "  --msgs-per-frame K  hbus mode: messages per frame (default 1)\n"
		   "  --payload B         body bytes per message (default 18: 60-byte raw frames)\n"
		   "  --cpus A,B          RX lcore and consumer cpus (default 0,1)\n"
		   "  --verbose           print the pipeline's counters and the port's (stderr)\n"
		   "  --route-only        diagnosis: parse + route, no enqueue (no queue handle:\n"
		   "                      every pair counted as drop_no_queue); hbus_mpps = frames routed\n"
		   "  --exclusive         the lcore is the queue's exclusive producer, as hbus-dataplane\n"
		   "                      --exclusive-producer (no claim CAS); the consumer stays shared\n"
		   "       hbus-bench dataplane e2e ...  (UDP -> consumer latency, see scripts/bench-e2e)\n");
}

static int bd_parse(int argc, char **argv, struct bd_opts *o)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' }, { "rounds", required_argument, NULL, 'r' },
		{ "mode", required_argument, NULL, 'm' }, { "msgs-per-frame", required_argument, NULL, 'k' },
		{ "payload", required_argument, NULL, 'p' }, { "cpus", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' }, { "verbose", no_argument, NULL, 'v' },
		{ "route-only", no_argument, NULL, 'o' }, { "exclusive", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	uint64_t v;
	int c;

	*o = (struct bd_opts){ .seconds = 2, .rounds = 3, .msgs_per_frame = 1, .payload = 18,
			       .cpu_rx = 0, .cpu_cons = 1 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->seconds = atof(optarg);
			if (!(o->seconds >= 0.05 && o->seconds <= 600))
				return bench_usage_error(argv[0], "--seconds must be 0.05..600");
			break;
		case 'r':
			if (bench_parse_u64(optarg, &v) || v < 1 || v > BD_ROUNDS_MAX)
				return bench_usage_error(argv[0], "--rounds must be 1..%u", BD_ROUNDS_MAX);
			o->rounds = (unsigned)v;
			break;
		case 'm':
			if (strcmp(optarg, "raw") && strcmp(optarg, "hbus"))
				return bench_usage_error(argv[0], "--mode is raw or hbus");
			o->hbus_mode = !strcmp(optarg, "hbus");
			break;
		case 'k':
			if (bench_parse_u64(optarg, &v) || v < 1 || v > 64)
				return bench_usage_error(argv[0], "--msgs-per-frame must be 1..64");
			o->msgs_per_frame = (unsigned)v;
			break;
		case 'p':
			if (bench_parse_u64(optarg, &v) || v < 8 || v > 1024)
				return bench_usage_error(argv[0], "--payload must be 8..1024");
			o->payload = (unsigned)v;
			break;
		case 'c':
			if (bench_parse_cpus(optarg, &o->cpu_rx, &o->cpu_cons))
				return bench_usage_error(argv[0], "--cpus wants two different cpus, e.g. 0,1");
			break;
		case 'j':
			o->json = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'o':
			o->route_only = 1;
			break;
		case 'x':
			o->exclusive = 1;
			break;
		case 'h':
			bd_usage(stdout);
			return 1;
		default:
			return bench_usage_error(argv[0], "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if (!o->hbus_mode && o->msgs_per_frame != 1)
		return bench_usage_error(argv[0], "--msgs-per-frame needs --mode hbus");
	if ((o->hbus_mode ? 24u + o->msgs_per_frame * (20u + 8 + o->payload) : o->payload) > 1400)
		return bench_usage_error(argv[0], "frames over 1400 bytes: lower --payload or --msgs-per-frame");
	return 0;
}

/* ------------------------------------------------------------ the pcap */

static int put(FILE *f, const void *p, size_t n)
{
	return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

/* BD_FRAMES frames (source ports vary, as from many senders) in a pcap. */
static int write_pcap(const char *path, const struct bd_opts *o, uint32_t *frame_len)
{
	const uint32_t ghdr[6] = { 0xa1b2c3d4u, 2u | 4u << 16, 0, 0, 65535, 1 };
	static uint8_t frame[2048], body[1024];
	struct hbus_meta meta = { .exchange = "md", .exchange_len = 2, .routing_key = "k",
				  .routing_key_len = 1 };
	FILE *f = fopen(path, "wb");
	unsigned i, k;
	int rc = 0, len;

	if (!f)
		return -errno;
	rc = put(f, ghdr, sizeof(ghdr));
	for (i = 0; rc == 0 && i < BD_FRAMES; i++) {
		struct hbus_udp_spec s = { .src_mac = { 2, 0, 0, 0, 0, 7 }, .dst_mac = { 2, 0, 0, 0, 0, 1 },
					   .src_ip = BD_PEER, .dst_ip = BD_IP,
					   .src_port = (uint16_t)(10000 + i),
					   .dst_port = o->hbus_mode ? DP_DEFAULT_HBUS_PORT : BD_RAW_PORT };
		memset(body, 'a' + (int)(i % 26), o->payload);
		if (o->hbus_mode) {
			size_t off = hbus_udp_payload_off(&s);
			struct hbus_wire_encoder e;

			hbus_wire_encoder_init(&e, frame + off, sizeof(frame) - off, 1,
					       (uint64_t)i * o->msgs_per_frame);
			for (k = 0; k < o->msgs_per_frame; k++)
				hbus_wire_encoder_add(&e, &meta, body, o->payload, 0, 0);
			len = hbus_build_udp(frame, sizeof(frame), &s, NULL,
					     (size_t)hbus_wire_encoder_finish(&e));
		} else {
			len = hbus_build_udp(frame, sizeof(frame), &s, body, o->payload);
		}
		if (len < 0) {
			rc = len;
			break;
		}
		uint32_t rh[4] = { i, 0, (uint32_t)len, (uint32_t)len };
		*frame_len = (uint32_t)len;
		rc = put(f, rh, sizeof(rh));
		if (rc == 0)
			rc = put(f, frame, (size_t)len);
	}
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* ------------------------------------------------------------ consumer */

static void *consumer_main(void *arg)
{
	struct bd_consumer *c = arg;
	struct hbus_msg m[64];

	bench_pin_cpu(c->cpu);
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		int n = hbus_queue_consume_burst(c->q, m, 64);

		if (n > 0) {
			hbus_queue_ack_burst(c->q, m, (unsigned)n);
			atomic_store_explicit(&c->consumed,
					      atomic_load_explicit(&c->consumed, memory_order_relaxed) + (uint64_t)n,
					      memory_order_relaxed);
		} else {
			/* Empty: let the producer get ahead, so the two sides do
			 * not fight over the same slot line message by message. */
			for (int i = 0; i < 256; i++)
				bench_cpu_relax();
		}
	}
	return NULL;
}

/* ------------------------------------------------------------- phases */

static uint64_t phase_pmd_only(uint16_t port, double seconds, uint64_t *elapsed)
{
	struct rte_mbuf *m[DP_BURST_MAX];
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), n = 0, now;

	do {
		uint16_t k = rte_eth_rx_burst(port, 0, m, DP_BURST_MAX);

		rte_pktmbuf_free_bulk(m, k);
		n += k;
	} while ((now = bench_now_ns()) < end);
	*elapsed = now - t0;
	return n;
}

static uint64_t phase_hbus(struct dp_worker *w, double seconds, uint64_t *elapsed)
{
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), n = 0, now;

	do {
		n += dp_worker_poll(w);
	} while ((now = bench_now_ns()) < end);
	*elapsed = now - t0;
	return n;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const struct bd_round *r, unsigned n, size_t field)
{
	double v[BD_ROUNDS_MAX];

	for (unsigned i = 0; i < n; i++)
		memcpy(&v[i], (const char *)&r[i] + field, sizeof(double));
	qsort(v, n, sizeof(double), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* /var/run/dpdk/<prefix> is left by EAL: remove it. */
static void remove_runtime_dir(const char *prefix)
{
	char dir[256], path[512];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", prefix);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* ---------------------------------------------------------------- main */

struct bd_run {
	struct bd_opts o;
	char pcap[128], prefix[64];
	uint32_t frame_len;
	struct dp_port port;
	struct dp_localbus bus;
	struct dp_worker *w;
	_Atomic uint64_t *ctr;
	struct hbus_dpc_stream *streams;
	struct bd_consumer cons;
	struct bd_round rounds[BD_ROUNDS_MAX];
};

static int bd_setup(struct bd_run *r)
{
	static const struct hbus_rc_exchange xs[] = { { .name = "md", .type = HBUS_X_DIRECT } };
	static const struct hbus_rc_queue qs[] = { { .name = "bench", .qid = 0 } };
	static const struct hbus_rc_binding bs[] = { { .source = "md", .dest = "bench", .key = "k" } };
	struct hbus_rc_udpmap um = { .ip_be = htonl(BD_IP), .port = BD_RAW_PORT, .exchange = "md",
				     .key = "k" };
	struct hbus_rc_input in = { .exchanges = xs, .n_exchanges = 1, .queues = qs, .n_queues = 1,
				    .bindings = bs, .n_bindings = 1, .udpmaps = &um, .n_udpmaps = 1 };
	/* Slots sized to the message, as a deployment would: meta ("md", "k")
	 * + body, the 32-byte slot header, rounded to whole cache lines. */
	uint32_t slot = ((32u + 7u + r->o.payload + 63u) & ~63u) - 32u;
	struct hbus_queue_config qc = { .capacity = 1u << 16, .slot_size = slot,
					.overflow = HBUS_OVERFLOW_REJECT, .numa_node = -1 };
	struct hbus_pkt_cfg pc;
	struct dp_route_src src;
	int rc;

	rc = dp_port_setup(&r->port, 0, 1, 1024, 512, 16384);
	if (rc)
		return rc;
	rc = dp_localbus_open_ex(&r->bus, "/dev/shm", &in, &qc,
				 r->o.exclusive ? HBUS_PRODUCE_EXCLUSIVE : 0);
	if (rc)
		return rc;
	rc = dp_localbus_consumer(&r->bus, 0, 2, HBUS_ACK_AUTO, &r->cons.q);
	if (rc)
		return rc;
	r->w = rte_zmalloc("bench_worker", sizeof(*r->w), 128);
	r->ctr = calloc(HBUS_DPC__COUNT, sizeof(*r->ctr));
	r->streams = calloc(HBUS_DPC_STREAMS, sizeof(*r->streams));
	if (!r->w || !r->ctr || !r->streams)
		return -ENOMEM;
	hbus_pkt_cfg_init(&pc, BD_IP, 24, NULL);
	dp_localbus_route_src(&r->bus, &src);
	if (r->o.route_only)
		src.qtab_len = 0; /* same pipeline, stops short of the queue */
	rc = dp_pipe_init(&r->w->pipe, &pc, DP_DEFAULT_HBUS_PORT, &src, r->ctr, r->streams,
			  HBUS_DPC_STREAMS);
	r->w->port_id = r->port.id;
	r->w->has_txq = 1;
	return rc;
}

/* Every frame the pipeline saw, by counter, and the port's view. */
static void bd_print_counters(const struct bd_run *r)
{
	struct rte_eth_stats st;

	if (rte_eth_stats_get(r->port.id, &st) == 0)
		fprintf(stderr, "port: ipackets %" PRIu64 ", rx_nombuf %" PRIu64 ", imissed %" PRIu64 "\n",
			st.ipackets, st.rx_nombuf, st.imissed);
	fprintf(stderr, "consumer: %" PRIu64 " messages\n", atomic_load(&r->cons.consumed));
	for (unsigned k = 1; k < HBUS_DPC__COUNT; k++)
		if (atomic_load(&r->ctr[k]))
			fprintf(stderr, "  %-22s %" PRIu64 "\n", hbus_dpc_name(k), atomic_load(&r->ctr[k]));
}

#define MED(field) median(r->rounds, o->rounds, offsetof(struct bd_round, field))

static void bd_report(struct bd_run *r)
{
	const struct bd_opts *o = &r->o;
	struct bench_json j;
	unsigned i;

	if (!o->json) {
		printf("dataplane: %s frames of %u bytes (%u message%s each), net_pcap infinite_rx, "
		       "cpu %d, consumer cpu %d%s\n", o->hbus_mode ? "hbus" : "raw UDP", r->frame_len,
		       o->msgs_per_frame, o->msgs_per_frame == 1 ? "" : "s", o->cpu_rx, o->cpu_cons,
		       o->exclusive ? ", exclusive producer" : "");
		printf("%-6s %12s %12s %8s %12s\n", "round", "pmd Mpps", "hbus Mpps", "ratio", "queue full");
		for (i = 0; i < o->rounds; i++)
			printf("%-6u %12.2f %12.2f %8.3f %12llu\n", i, r->rounds[i].pmd_mpps,
			       r->rounds[i].hbus_mpps, r->rounds[i].ratio,
			       (unsigned long long)r->rounds[i].queue_full);
		printf("median %12.2f %12.2f %8.3f   (%.1f ns/frame vs %.1f ns/frame)\n",
		       MED(pmd_mpps),
		       MED(hbus_mpps),
		       MED(ratio),
		       1e3 / MED(hbus_mpps),
		       1e3 / MED(pmd_mpps));
		return;
	}
	bench_json_begin(&j, stdout);
	bench_json_dbl(&j, "pmd_only_mpps", MED(pmd_mpps));
	bench_json_dbl(&j, "hbus_mpps", MED(hbus_mpps));
	bench_json_dbl(&j, "ratio", MED(ratio));
	bench_json_dbl(&j, "hbus_rx_mpps", MED(rx_mpps));
	bench_json_dbl(&j, "msgs_mpps", MED(msgs_mpps));
	bench_json_str(&j, "mode", o->hbus_mode ? "hbus" : "raw");
	bench_json_u64(&j, "route_only", (uint64_t)o->route_only);
	bench_json_u64(&j, "exclusive", (uint64_t)o->exclusive);
	bench_json_u64(&j, "msgs_per_frame", o->msgs_per_frame);
	bench_json_u64(&j, "frame_len", r->frame_len);
	bench_json_dbl(&j, "seconds", o->seconds);
	bench_json_str(&j, "port", "net_pcap infinite_rx");
	bench_json_key_arr(&j, "rounds");
	for (i = 0; i < o->rounds; i++) {
		bench_json_obj(&j);
		bench_json_dbl(&j, "pmd_only_mpps", r->rounds[i].pmd_mpps);
		bench_json_dbl(&j, "hbus_mpps", r->rounds[i].hbus_mpps);
		bench_json_dbl(&j, "ratio", r->rounds[i].ratio);
		bench_json_u64(&j, "queue_full", r->rounds[i].queue_full);
		bench_json_obj_end(&j);
	}
	bench_json_arr_end(&j);
	bench_json_end(&j);
}

int bench_dataplane_e2e_main(int argc, char **argv);

int bench_dataplane_main(int argc, char **argv)
{
	static struct bd_run r;
	char vdev[256], lcores[16];
	char *eal[16];
	pthread_t th;
	unsigned i;
	int rc, n = 0;

	if (argc > 1 && !strcmp(argv[1], "e2e"))
		return bench_dataplane_e2e_main(argc - 1, argv + 1);
	r.bus.routes_fd = r.bus.readers_fd = -1; /* nothing open yet */
	rc = bd_parse(argc, argv, &r.o);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (geteuid() != 0) {
		fprintf(stderr, "hbus-bench dataplane: needs root (DPDK)\n");
		return 1;
	}
	bench_clock_init();
	snprintf(r.pcap, sizeof(r.pcap), "/tmp/hbus-bench-dp-%d.pcap", (int)getpid());
	snprintf(r.prefix, sizeof(r.prefix), "hbus-bench-dp-%d", (int)getpid());
	rc = write_pcap(r.pcap, &r.o, &r.frame_len);
	if (rc) {
		fprintf(stderr, "hbus-bench dataplane: %s: %s\n", r.pcap, strerror(-rc));
		unlink(r.pcap);
		return 1;
	}
	snprintf(vdev, sizeof(vdev), "net_pcap0,rx_pcap=%s,infinite_rx=1", r.pcap);
	snprintf(lcores, sizeof(lcores), "%d", r.o.cpu_rx);
	eal[n++] = argv[0];
	eal[n++] = "-l";
	eal[n++] = lcores;
	eal[n++] = "--no-pci";
	eal[n++] = "--no-huge";
	eal[n++] = "-m";
	eal[n++] = "1024";
	eal[n++] = "--file-prefix";
	eal[n++] = r.prefix;
	eal[n++] = "--log-level";
	eal[n++] = "lib.eal:error";
	eal[n++] = "--vdev";
	eal[n++] = vdev;
	eal[n] = NULL;
	if (rte_eal_init(n, eal) < 0) {
		fprintf(stderr, "hbus-bench dataplane: EAL init: %s\n", rte_strerror(rte_errno));
		unlink(r.pcap);
		remove_runtime_dir(r.prefix);
		return 1;
	}
	fault_guard_install(); /* as hbus-dataplane: the guard's cost is in the figures */
	rc = bd_setup(&r);
	unlink(r.pcap); /* loaded into mbufs at port start */
	if (rc) {
		fprintf(stderr, "hbus-bench dataplane: setup: %s\n", hbus_strerror(rc));
		goto out;
	}
	r.cons.cpu = r.o.cpu_cons;
	if (pthread_create(&th, NULL, consumer_main, &r.cons) != 0) {
		rc = -errno;
		goto out;
	}
	bench_pin_cpu(r.o.cpu_rx);
	for (i = 0; i < r.o.rounds; i++) {
		struct bd_round *rd = &r.rounds[i];
		uint64_t el, frames, d0, full0;

		frames = phase_pmd_only(r.port.id, r.o.seconds, &el);
		rd->pmd_mpps = frames * 1e3 / (double)el;
		d0 = atomic_load(&r.ctr[r.o.route_only ? HBUS_DPC_ROUTED : HBUS_DPC_DELIVERED]);
		full0 = atomic_load(&r.ctr[HBUS_DPC_DROP_QUEUE_FULL]);
		frames = phase_hbus(r.w, r.o.seconds, &el);
		rd->rx_mpps = frames * 1e3 / (double)el;
		rd->msgs_mpps = (atomic_load(&r.ctr[r.o.route_only ? HBUS_DPC_ROUTED : HBUS_DPC_DELIVERED]) -
				 d0) * 1e3 / (double)el;
		/* Frames whose every message reached the queue. */
		rd->hbus_mpps = rd->msgs_mpps / r.o.msgs_per_frame;
		if (rd->hbus_mpps > rd->rx_mpps)
			rd->hbus_mpps = rd->rx_mpps;
		rd->ratio = rd->pmd_mpps > 0 ? rd->hbus_mpps / rd->pmd_mpps : 0;
		rd->queue_full = atomic_load(&r.ctr[HBUS_DPC_DROP_QUEUE_FULL]) - full0;
	}
	atomic_store(&r.cons.stop, 1);
	pthread_join(th, NULL);
	if (r.o.verbose)
		bd_print_counters(&r);
	bd_report(&r);
out:
	if (r.cons.q)
		hbus_queue_close(r.cons.q);
	dp_localbus_close(&r.bus);
	dp_port_close(&r.port);
	rte_free(r.w);
	free(r.ctr);
	free(r.streams);
	rte_eal_cleanup();
	remove_runtime_dir(r.prefix);
	return rc ? 1 : 0;
}
