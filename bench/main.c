/*
 * main.c - hbus-bench: latency and throughput tools, peer comparison.
 *
 *   hbus-bench <mode> [options]      (hbus-bench <mode> --help for options)
 *
 * Each mode lives in bench/bench_<mode>.c as bench_<mode>_main(argc, argv)
 * with argv[0] = the mode name.  Modes whose source file is optional are
 * compiled in when meson defines HBUS_BENCH_<MODE> (see bench/meson.build).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

struct bench_mode {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct bench_mode modes[] = {
	{ "pingpong", bench_pingpong_main, "round-trip latency over one transport (cacheline|cacheline2|shm)" },
	{ "throughput", bench_throughput_main, "1 producer -> 1 consumer process over one hbus queue" },
	{ "compare", bench_compare_main, "ping-pong over cacheline, cacheline2, shm, uds, udp, zmq; table and plot" },
	{ "vmcheck", bench_vmcheck_main, "how much of the time the two cpus run, alone and together" },
#ifdef HBUS_BENCH_ROUTE
	{ "route", bench_route_main, "routing-table lookup cost" },
#endif
#ifdef HBUS_BENCH_DATAPLANE
	{ "dataplane", bench_dataplane_main, "DPDK dataplane receive -> route -> enqueue" },
#endif
#ifdef HBUS_BENCH_AMQP
	{ "amqp-throughput", bench_amqp_tp_main, "publish throughput, hbus-amqp against RabbitMQ (rabbitmq-c)" },
#endif
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hbus-bench <mode> [options]   (hbus-bench <mode> --help)\nmodes:\n");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		fprintf(f, "  %-15s %s\n", modes[i].name, modes[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[1], modes[i].name))
			return modes[i].main(argc - 1, argv + 1);
	fprintf(stderr, "hbus-bench: unknown mode '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
