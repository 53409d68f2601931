/*
 * bench_dataplane_e2e.c - `hbus-bench dataplane e2e`: one-way latency of a
 * UDP datagram from the sender's sendto() to the message in a consumer's
 * hands, through hbus-dataplane and through the kernel, in the same run
 * (driven by scripts/bench-e2e, which builds the namespace and veths).
 *
 *   hbus path:    sendto (netns) -> veth -> net_af_packet -> hbus-dataplane
 *                 worker (parse, route, enqueue) -> hbus queue -> this consumer
 *   kernel path:  sendto (netns) -> veth -> IP/UDP stack -> this UDP socket
 *
 * One thread does everything, one probe in flight: take the time, sendto,
 * busy-poll the receiving end of that path until the probe is there.  The
 * paths alternate probe by probe, so both see the same machine.  The
 * sending socket is opened inside the namespace (setns), the receiving UDP
 * socket and the hbus session outside it; a socket keeps the namespace it
 * was created in.  With two cores, the dataplane worker has one and this
 * thread the other: nothing else has to run for a probe to arrive.
 *
 *   hbus-bench dataplane e2e --netns NAME --bus B [--run-dir D] --queue Q
 *        --dp ADDR:PORT --kernel ADDR:PORT [--count N] [--warmup W]
 *        [--size B] [--gap-us U] [--cpu C] [--json]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "hbus.h"

#define E2E_TIMEOUT_NS 200000000ull /* a probe not back in 200 ms is lost */

struct e2e_opts {
	const char *netns, *bus, *run_dir, *queue, *dp, *kernel;
	uint64_t count, warmup, size, gap_us;
	int cpu, json;
};

static int e2e_parse(int argc, char **argv, struct e2e_opts *o)
{
	static const struct option opts[] = {
		{ "netns", required_argument, NULL, 'N' }, { "bus", required_argument, NULL, 'b' },
		{ "run-dir", required_argument, NULL, 'd' }, { "queue", required_argument, NULL, 'q' },
		{ "dp", required_argument, NULL, 'p' }, { "kernel", required_argument, NULL, 'k' },
		{ "count", required_argument, NULL, 'n' }, { "warmup", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 's' }, { "gap-us", required_argument, NULL, 'g' },
		{ "cpu", required_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' }, { 0 },
	};
	const char *me = "dataplane e2e";
	uint64_t v;
	int c;

	*o = (struct e2e_opts){ .count = 20000, .warmup = 500, .size = 32, .gap_us = 50, .cpu = -1 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'N': o->netns = optarg; break;
		case 'b': o->bus = optarg; break;
		case 'd': o->run_dir = optarg; break;
		case 'q': o->queue = optarg; break;
		case 'p': o->dp = optarg; break;
		case 'k': o->kernel = optarg; break;
		case 'n':
			if (bench_parse_u64(optarg, &o->count) || o->count == 0)
				return bench_usage_error(me, "--count must be > 0");
			break;
		case 'w':
			if (bench_parse_u64(optarg, &o->warmup))
				return bench_usage_error(me, "bad --warmup");
			break;
		case 's':
			if (bench_parse_u64(optarg, &o->size) || o->size < 16 || o->size > 1400)
				return bench_usage_error(me, "--size must be 16..1400");
			break;
		case 'g':
			if (bench_parse_u64(optarg, &o->gap_us) || o->gap_us > 1000000)
				return bench_usage_error(me, "bad --gap-us");
			break;
		case 'c':
			if (bench_parse_u64(optarg, &v) || v > 4096)
				return bench_usage_error(me, "bad --cpu");
			o->cpu = (int)v;
			break;
		case 'j': o->json = 1; break;
		default:
			return bench_usage_error(me, "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (!o->netns || !o->bus || !o->queue || !o->dp || !o->kernel)
		return bench_usage_error(me, "--netns, --bus, --queue, --dp and --kernel are required");
	return 0;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char ip[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = '\0';
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, ip, &a->sin_addr) == 1 && a->sin_port ? 0 : -EINVAL;
}

/* A UDP socket created inside network namespace name; we come back out. */
static int socket_in_netns(const char *name)
{
	char path[256];
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), ns, fd = -1;

	snprintf(path, sizeof(path), "/var/run/netns/%s", name);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (self >= 0 && ns >= 0 && setns(ns, CLONE_NEWNET) == 0) {
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (setns(self, CLONE_NEWNET) != 0) {
			close(fd);
			fd = -1;
		}
	}
	if (ns >= 0)
		close(ns);
	if (self >= 0)
		close(self);
	return fd;
}

/* Probe i's index from a received body (after the 8-byte pad). */
static int probe_index(const uint8_t *p, size_t n, uint32_t *i)
{
	if (n < 12)
		return 0;
	memcpy(i, p + 8, 4);
	return 1;
}

struct e2e_ends {
	int tx, rx;
	hbus_queue *q;
	struct sockaddr_in dp, kernel;
};

/* Send probe i on one path, poll its receiver: the latency, or 0 if lost. */
static uint64_t probe(struct e2e_ends *e, int via_hbus, uint32_t i, uint8_t *buf, size_t size)
{
	const struct sockaddr_in *dst = via_hbus ? &e->dp : &e->kernel;
	uint64_t t0, now;
	uint32_t got;

	memcpy(buf + 8, &i, 4);
	t0 = bench_now_ns();
	if (sendto(e->tx, buf, size, 0, (const struct sockaddr *)dst, sizeof(*dst)) < 0)
		return 0;
	for (;;) {
		now = bench_now_ns();
		if (via_hbus) {
			struct hbus_msg m;

			if (hbus_queue_consume(e->q, &m) == 0) {
				int ok = probe_index(m.body, m.body_len, &got) && got == i;

				hbus_queue_ack(e->q, &m);
				if (ok)
					return now - t0;
			}
		} else {
			uint8_t r[2048];
			ssize_t n = recv(e->rx, r, sizeof(r), MSG_DONTWAIT);

			if (n > 0 && probe_index(r, (size_t)n, &got) && got == i)
				return now - t0;
		}
		if (now - t0 > E2E_TIMEOUT_NS)
			return 0;
	}
}

int bench_dataplane_e2e_main(int argc, char **argv)
{
	static struct hist h[2];
	static const char *const names[2] = { "kernel_udp_ns", "hbus_ns" };
	struct hbus_client_opts co;
	struct e2e_opts o;
	struct e2e_ends e = { .tx = -1, .rx = -1 };
	hbus_client *c = NULL;
	uint64_t lost[2] = { 0, 0 }, i;
	uint8_t buf[1500] = { 0 };
	int rc;

	rc = e2e_parse(argc, argv, &o);
	if (rc)
		return rc;
	if (parse_addr(o.dp, &e.dp) || parse_addr(o.kernel, &e.kernel))
		return bench_usage_error("dataplane e2e", "--dp / --kernel want ADDR:PORT");
	bench_clock_init();
	hist_init(&h[0]);
	hist_init(&h[1]);
	co = (struct hbus_client_opts){ .bus = o.bus, .run_dir = o.run_dir };
	rc = hbus_connect(&co, &c);
	if (rc == 0)
		rc = hbus_consume_open(c, o.queue, HBUS_ACK_AUTO, 0, &e.q);
	if (rc) {
		fprintf(stderr, "hbus-bench dataplane e2e: queue %s: %s\n", o.queue, hbus_strerror(rc));
		goto out;
	}
	e.rx = socket(AF_INET, SOCK_DGRAM, 0);
	if (e.rx < 0 || bind(e.rx, (const struct sockaddr *)&e.kernel, sizeof(e.kernel)) != 0) {
		fprintf(stderr, "hbus-bench dataplane e2e: bind %s: %s\n", o.kernel, strerror(errno));
		rc = -errno;
		goto out;
	}
	e.tx = socket_in_netns(o.netns);
	if (e.tx < 0) {
		fprintf(stderr, "hbus-bench dataplane e2e: socket in netns %s: %s\n", o.netns,
			strerror(errno));
		rc = -errno;
		goto out;
	}
	if (o.cpu >= 0)
		bench_pin_cpu(o.cpu);
	for (i = 0; i < o.count + o.warmup; i++) {
		int via_hbus = (int)(i & 1);
		uint64_t ns = probe(&e, via_hbus, (uint32_t)i, buf, o.size);

		if (!ns)
			lost[via_hbus]++;
		else if (i >= o.warmup)
			hist_record(&h[via_hbus], ns);
		if (o.gap_us) {
			uint64_t until = bench_now_ns() + o.gap_us * 1000;

			while (bench_now_ns() < until)
				bench_cpu_relax();
		}
	}
	if (o.json) {
		struct bench_json j;

		bench_json_begin(&j, stdout);
		for (int k = 0; k < 2; k++)
			bench_json_hist(&j, names[k], &h[k]);
		bench_json_u64(&j, "hbus_lost", lost[1]);
		bench_json_u64(&j, "kernel_udp_lost", lost[0]);
		bench_json_dbl(&j, "p50_ratio_hbus_over_kernel",
			       (double)hist_percentile(&h[1], 50) / (double)hist_percentile(&h[0], 50));
		bench_json_end(&j);
	} else {
		printf("one-way latency, sendto() in the namespace -> message in the consumer, us\n");
		bench_print_hist_header(stdout, "path");
		printf("\n");
		bench_print_hist_row(stdout, "hbus", &h[1]);
		printf("   veth -> net_af_packet -> hbus-dataplane -> queue\n");
		bench_print_hist_row(stdout, "kernel-udp", &h[0]);
		printf("   veth -> kernel IP/UDP -> socket\n");
		printf("probes: %llu per path after %llu warm-up, lost: hbus %llu, kernel %llu\n",
		       (unsigned long long)(o.count / 2), (unsigned long long)o.warmup,
		       (unsigned long long)lost[1], (unsigned long long)lost[0]);
	}
out:
	if (e.tx >= 0)
		close(e.tx);
	if (e.rx >= 0)
		close(e.rx);
	if (e.q)
		hbus_consume_close(c, e.q);
	hbus_close(c);
	return rc ? 1 : 0;
}
