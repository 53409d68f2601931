/*
 * pp_cli.h - command line of the ping-pong modes (pingpong, compare).
 */
#ifndef HBUS_BENCH_PP_CLI_H
#define HBUS_BENCH_PP_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "pp.h"

#define PP_CLI_TRANSPORT 1u /* accept --transport (pingpong) */
#define PP_CLI_COMPARE   2u /* accept --plot, --rounds and --transports (compare) */

struct pp_cli {
	struct pp_opts o;
	const char *transport;
	const char *transports; /* compare --transports a,b,...; NULL: all */
	const char *plot;
	unsigned rounds;
	bool json;
};

/* 0 = parsed; 1 = --help printed (exit 0); 2 = usage error printed. */
int pp_cli_parse(int argc, char **argv, unsigned extra, struct pp_cli *cli);
void pp_cli_usage(FILE *f, const char *mode, unsigned extra);

#endif
