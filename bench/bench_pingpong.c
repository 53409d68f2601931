/*
 * bench_pingpong.c - `hbus-bench pingpong`: round-trip latency over one
 * transport, percentiles in nanoseconds.
 *
 *   hbus-bench pingpong --transport cacheline|cacheline2|shm --size 32 --count 1000000 --cpus 0,1
 *
 * cacheline is the hardware floor (two threads bouncing one line); shm is
 * two processes over two hbus queue rings.  The kernel, ZeroMQ and Aeron
 * peers (uds, udp, zmq, aeron) are accepted too; `compare` runs them all.
 * zmq and aeron exist only in builds that found them (pp_unavailable).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "pp_cli.h"

int bench_pingpong_main(int argc, char **argv)
{
	struct pp_cli cli;
	const struct pp_ops *ops;
	struct hist *h;
	int rc;

	rc = pp_cli_parse(argc, argv, PP_CLI_TRANSPORT, &cli);
	if (rc)
		return rc == 1 ? 0 : rc;
	ops = pp_find(cli.transport);
	if (!ops && pp_unavailable(cli.transport))
		return bench_usage_error(argv[0], "transport '%s': %s", cli.transport,
					 pp_unavailable(cli.transport));
	if (!ops) {
		char known[256] = "";
		for (unsigned i = 0; pp_all_names[i]; i++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
				 i ? ", " : "", pp_all_names[i]);
		return bench_usage_error(argv[0], "unknown transport '%s' (%s)", cli.transport, known);
	}
	h = malloc(sizeof(*h));
	if (!h)
		return 1;
	hist_init(h);
	rc = pp_run(ops, &cli.o, h);
	if (rc) {
		free(h);
		return 1;
	}
	if (cli.json) {
		struct bench_json j;
		bench_json_begin(&j, stdout);
		bench_json_str(&j, "transport", ops->name);
		bench_json_u64(&j, "size", cli.o.size);
		bench_json_u64(&j, "count", cli.o.count);
		bench_json_hist(&j, "rtt_ns", h);
		bench_json_end(&j);
	} else {
		printf("pingpong %s: %u-byte messages, %llu round trips (+%llu warmup), cpus %d,%d%s\n",
		       ops->name, cli.o.size, (unsigned long long)cli.o.count,
		       (unsigned long long)cli.o.warmup, cli.o.cpu_a, cli.o.cpu_b,
		       cli.o.rate ? ", fixed rate (latency from intended send time)" : "");
		printf("timer: %s (%.1f ns per read)\n",
		       bench_clock.use_tsc ? "rdtsc calibrated against CLOCK_MONOTONIC"
					   : "clock_gettime(CLOCK_MONOTONIC)",
		       bench_clock.read_cost_ns);
		bench_print_hist_header(stdout, "RTT (us)");
		putchar('\n');
		bench_print_hist_row(stdout, ops->name, h);
		putchar('\n');
		printf("mean %.3f us\n", hist_mean(h) / 1000.0);
	}
	free(h);
	return 0;
}
