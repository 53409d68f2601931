/*
 * pp_cli.c - the command line shared by the ping-pong modes (pingpong,
 * compare): one parser, so the two modes cannot drift apart.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "pp_cli.h"

void pp_cli_usage(FILE *f, const char *mode, unsigned extra)
{
	fprintf(f, "usage: hbus-bench %s", mode);
	if (extra & PP_CLI_TRANSPORT)
		fprintf(f, " --transport cacheline|cacheline2|slotring|shm|shm-x|shm-p|uds|udp|zmq|aeron|amqp|rabbitmq");
	fprintf(f, " [--size B] [--count N] [--cpus A,B] [--warmup N]\n"
		   "       [--rate MSGS_PER_S] [--shm-dir DIR] [--json]");
	if (extra & PP_CLI_TRANSPORT)
		fprintf(f, " [--protected]");
	if (extra & PP_CLI_COMPARE)
		fprintf(f, "\n       [--plot FILE.png] [--rounds R] [--transports T1,T2,...]");
	fprintf(f, "\n"
		"  --size B        message bytes (>= 8; default 32)\n"
		"  --count N       measured round trips%s (default 100000)\n"
		"  --cpus A,B      pinger on cpu A, echoer on cpu B (default 0,1)\n"
		"  --warmup N      unmeasured round trips first (default min(N/10, 10000))\n"
		"  --rate R        send at R msgs/s and measure from the intended send\n"
		"                  time (corrects coordinated omission); default: closed loop\n"
		"  --shm-dir DIR   where queue files are made (and unlinked); default /dev/shm\n"
		"  --json          machine-readable output\n",
		(extra & PP_CLI_COMPARE) ? " per transport" : "");
	if (extra & PP_CLI_TRANSPORT)
		fprintf(f,
			"  --protected     hbus's queues protected (readers map the bytes read-only):\n"
			"                  --transport shm becomes shm-p\n");
	if (extra & PP_CLI_COMPARE)
		fprintf(f,
			"  --plot FILE     PNG of the percentile distributions (gnuplot)\n"
			"  --rounds R      interleaved rounds, transports rotated each round (default 5)\n"
			"  --transports L  only these rows, e.g. cacheline2,shm,shm-x,aeron (shm is\n"
			"                  required: ratios are to hbus); default: every transport built\n"
			"                  in but shm-x and shm-p (and amqp, rabbitmq: HBUS_BENCH_AMQP=1)\n");
}

int pp_cli_parse(int argc, char **argv, unsigned extra, struct pp_cli *cli)
{
	enum { O_SIZE = 256, O_COUNT, O_CPUS, O_WARMUP, O_RATE, O_SHMDIR, O_JSON, O_TRANSPORT,
	       O_PLOT, O_ROUNDS, O_TRANSPORTS, O_PROTECTED, O_HELP };
	static const struct option opts[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "rate", required_argument, NULL, O_RATE },
		{ "shm-dir", required_argument, NULL, O_SHMDIR },
		{ "json", no_argument, NULL, O_JSON },
		{ "transport", required_argument, NULL, O_TRANSPORT },
		{ "plot", required_argument, NULL, O_PLOT },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "transports", required_argument, NULL, O_TRANSPORTS },
		{ "protected", no_argument, NULL, O_PROTECTED },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = argv[0];
	bool warmup_set = false, prot = false;
	uint64_t v;
	int c;

	memset(cli, 0, sizeof(*cli));
	cli->o.size = 32;
	cli->o.count = 100000;
	cli->o.cpu_a = 0;
	cli->o.cpu_b = 1;
	cli->rounds = 5;
	cli->transport = "shm";
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_SIZE:
			if (bench_parse_u64(optarg, &v) || v < PP_MSG_MIN || v > PP_MSG_MAX)
				return bench_usage_error(mode, "--size must be %u..%u bytes",
							 PP_MSG_MIN, PP_MSG_MAX);
			cli->o.size = (uint32_t)v;
			break;
		case O_COUNT:
			if (bench_parse_u64(optarg, &cli->o.count) || cli->o.count == 0)
				return bench_usage_error(mode, "--count must be a positive integer");
			break;
		case O_WARMUP:
			if (bench_parse_u64(optarg, &cli->o.warmup))
				return bench_usage_error(mode, "--warmup must be a non-negative integer");
			warmup_set = true;
			break;
		case O_CPUS:
			if (bench_parse_cpus(optarg, &cli->o.cpu_a, &cli->o.cpu_b) ||
			    cli->o.cpu_a == cli->o.cpu_b)
				return bench_usage_error(mode, "--cpus wants two different cpus, e.g. 0,1");
			break;
		case O_RATE:
			if (bench_parse_u64(optarg, &cli->o.rate) || cli->o.rate == 0 ||
			    cli->o.rate > 1000000000u)
				return bench_usage_error(mode, "--rate must be 1..1G msgs/s");
			break;
		case O_SHMDIR:
			cli->o.shm_dir = optarg;
			break;
		case O_JSON:
			cli->json = true;
			break;
		case O_TRANSPORT:
			if (!(extra & PP_CLI_TRANSPORT))
				goto unknown;
			cli->transport = optarg;
			break;
		case O_PLOT:
			if (!(extra & PP_CLI_COMPARE))
				goto unknown;
			cli->plot = optarg;
			break;
		case O_ROUNDS:
			if (!(extra & PP_CLI_COMPARE))
				goto unknown;
			if (bench_parse_u64(optarg, &v) || v < 1 || v > 1000)
				return bench_usage_error(mode, "--rounds must be 1..1000");
			cli->rounds = (unsigned)v;
			break;
		case O_TRANSPORTS:
			if (!(extra & PP_CLI_COMPARE))
				goto unknown;
			cli->transports = optarg;
			break;
		case O_PROTECTED:
			if (!(extra & PP_CLI_TRANSPORT))
				goto unknown;
			prot = true;
			break;
		case O_HELP:
			pp_cli_usage(stdout, mode, extra);
			return 1;
		default:
		unknown:
			return bench_usage_error(mode, "unknown or incomplete option '%s'",
						 argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_usage_error(mode, "unexpected argument '%s'", argv[optind]);
	/* The name for it; the transport has one of its own. */
	if (prot && strcmp(cli->transport, "shm") && strcmp(cli->transport, "shm-p"))
		return bench_usage_error(mode, "--protected applies to hbus's queues (--transport "
					 "shm), not to '%s'", cli->transport);
	if (prot)
		cli->transport = "shm-p";
	if (!warmup_set)
		cli->o.warmup = cli->o.count / 10 < 10000 ? cli->o.count / 10 : 10000;
	return 0;
}
