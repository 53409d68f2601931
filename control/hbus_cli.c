/*
 * hbus_cli.c - the `hbus` command: global options and command dispatch.
 *
 *   hbus [--bus NAME] [--run-dir DIR] <command> [args]
 *
 * Commands and their options: usage text below and docs/CLI.md.
 */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
"usage: hbus [--bus NAME] [--run-dir DIR] <command> [args]\n"
"\n"
"topology:\n"
"  declare-exchange NAME direct|fanout|topic|headers [--durable] [--auto-delete]\n"
"                   [--alternate-exchange X] [--passive]\n"
"  declare-queue NAME [--capacity N] [--slot-size B] [--overflow reject|drop-head]\n"
"                [--ttl-ms N] [--dead-letter-exchange X] [--dead-letter-routing-key K]\n"
"                [--durable] [--exclusive] [--auto-delete] [--numa-node N] [--latency]\n"
"                [--protected] [--passive]\n"
"  bind QUEUE EXCHANGE [KEY] [--header K=V ...] [--match all|any] [--exchange-dest]\n"
"  unbind QUEUE EXCHANGE [KEY] [--header K=V ...] [--match all|any] [--exchange-dest]\n"
"  delete-exchange NAME [--if-unused]\n"
"  delete-queue NAME [--if-unused] [--if-empty]\n"
"  purge NAME\n"
"  map-udp ADDR:PORT EXCHANGE KEY\n"
"  unmap-udp ADDR:PORT\n"
"messages:\n"
"  publish EXCHANGE KEY [--header K=V ...] [--body TEXT]   (else one message per stdin line)\n"
"  consume QUEUE [--count N] [--timeout-ms T] [--ack] [--prefetch N] [--ack-delay-ms D] [--json] [--busy-poll]\n"
"          [--exclusive]\n"
"  send ADDR:PORT EXCHANGE KEY [--body TEXT] [--header K=V ...] [--stream ID] [--batch N]\n"
"       [--rate MSGS_PER_S] [--count N] [--first-seq N] [--max-frame BYTES]\n"
"inspection:\n"
"  list exchanges|queues|bindings|consumers|udpmaps [--json]\n"
"  stat [--json] [--watch] [--prometheus] [--interval-ms N]\n"
"  export FILE | import FILE      (FILE '-' = stdout / stdin)\n"
"\n"
"Environment: HBUS_BUS, HBUS_RUN_DIR (defaults: default, /run/hbus).\n"
"Exit status: 0 ok, 1 failure (one line on stderr), 2 usage error.\n";

struct command {
	const char *name;
	int (*run)(struct cli *, int, char **);
};

static const struct command commands[] = {
	{ "declare-exchange", cmd_declare_exchange },
	{ "declare-queue", cmd_declare_queue },
	{ "bind", cmd_bind },
	{ "unbind", cmd_bind },
	{ "delete-exchange", cmd_delete_exchange },
	{ "delete-queue", cmd_delete_queue },
	{ "purge", cmd_purge },
	{ "map-udp", cmd_map_udp },
	{ "unmap-udp", cmd_map_udp },
	{ "list", cmd_list },
	{ "export", cmd_export },
	{ "import", cmd_import },
	{ "publish", cmd_publish },
	{ "consume", cmd_consume },
	{ "stat", cmd_stat },
	{ "send", cmd_send },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	const struct command *c;
	int i, rc;

	/* A closed stdout is a write error, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dest = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return CLI_OK;
		}
		if (!strcmp(a, "--version")) {
			printf("hbus %s\n", HBUS_VERSION_STRING);
			return CLI_OK;
		}
		if (!strncmp(a, "--bus", 5) && (a[5] == '=' || !a[5]))
			dest = &cli.bus;
		else if (!strncmp(a, "--run-dir", 9) && (a[9] == '=' || !a[9]))
			dest = &cli.run_dir;
		else
			break;
		if (strchr(a, '='))
			*dest = strchr(a, '=') + 1;
		else if (i + 1 < argc)
			*dest = argv[++i];
		else
			return cli_usage_error("hbus", "%s needs a value", a);
		if (!**dest)
			return cli_usage_error("hbus", "%s must not be empty", a);
	}
	if (i == argc) {
		fputs(usage_text, stderr);
		return CLI_USAGE;
	}
	for (c = commands; c->name; c++)
		if (!strcmp(c->name, argv[i]))
			break;
	if (!c->name)
		return cli_usage_error("hbus", "unknown command '%s'", argv[i]);
	rc = c->run(&cli, argc - i, argv + i);
	if (cli.client)
		hbus_close(cli.client);
	if (fflush(stdout) != 0 && rc == CLI_OK) {
		perror("hbus: writing output");
		rc = CLI_FAIL;
	}
	return rc;
}
