/*
 * cli_topology.c - the `hbus` commands that change or show the topology:
 * declare / bind / delete / purge / map-udp / list / export / import.
 * Each builds one control request (docs/CONTROL.md) and prints the result.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Send req and drop the reply: CLI_OK, or CLI_FAIL after the error line. */
static int simple_request(struct cli *cli, json_t *req, const char *what)
{
	json_t *reply = cli_request(cli, req, what);

	json_decref(reply);
	return reply ? CLI_OK : CLI_FAIL;
}

static void what_of(char *buf, size_t cap, const char *cmd, const char *name)
{
	snprintf(buf, cap, "%s '%s'", cmd, name);
}

int cmd_declare_exchange(struct cli *cli, int argc, char **argv)
{
	int durable = 0, auto_delete = 0, passive = 0, n;
	const char *alt = NULL, *pos[2];
	char what[300];
	json_t *req;
	const struct cli_opt opts[] = {
		{ "--durable", OPT_FLAG, &durable, NULL, NULL },
		{ "--auto-delete", OPT_FLAG, &auto_delete, NULL, NULL },
		{ "--passive", OPT_FLAG, &passive, NULL, NULL },
		{ "--alternate-exchange", OPT_STR, &alt, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	n = cli_parse(argv[0], argc, argv, opts, pos, 2, 2);
	if (n < 0)
		return CLI_USAGE;
	if (strcmp(pos[1], "direct") && strcmp(pos[1], "fanout") && strcmp(pos[1], "topic") &&
	    strcmp(pos[1], "headers"))
		return cli_usage_error(argv[0], "type must be direct, fanout, topic or headers, not '%s'",
				       pos[1]);
	req = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b}", "op", "declare_exchange", "name", pos[0],
			"type", pos[1], "durable", durable, "auto_delete", auto_delete,
			"passive", passive);
	if (req && alt)
		json_object_set_new(req, "alternate_exchange", json_string(alt));
	what_of(what, sizeof(what), argv[0], pos[0]);
	return simple_request(cli, req, what);
}

int cmd_declare_queue(struct cli *cli, int argc, char **argv)
{
	uint32_t capacity = 0, slot_size = 0, ttl_ms = 0;
	int32_t numa = -1;
	int durable = 0, exclusive = 0, auto_delete = 0, passive = 0, latency = 0, prot = 0, n;
	int seen_cap = 0, seen_slot = 0, seen_ttl = 0, seen_numa = 0;
	const char *overflow = NULL, *dlx = NULL, *dlk = NULL, *pos[1];
	char what[300];
	json_t *req, *reply;
	const struct cli_opt opts[] = {
		{ "--capacity", OPT_U32, &capacity, NULL, &seen_cap },
		{ "--slot-size", OPT_U32, &slot_size, NULL, &seen_slot },
		{ "--overflow", OPT_CHOICE, &overflow, "reject|drop-head", NULL },
		{ "--ttl-ms", OPT_U32, &ttl_ms, NULL, &seen_ttl },
		{ "--dead-letter-exchange", OPT_STR, &dlx, NULL, NULL },
		{ "--dead-letter-routing-key", OPT_STR, &dlk, NULL, NULL },
		{ "--durable", OPT_FLAG, &durable, NULL, NULL },
		{ "--exclusive", OPT_FLAG, &exclusive, NULL, NULL },
		{ "--auto-delete", OPT_FLAG, &auto_delete, NULL, NULL },
		{ "--passive", OPT_FLAG, &passive, NULL, NULL },
		{ "--numa-node", OPT_I32, &numa, NULL, &seen_numa },
		{ "--latency", OPT_FLAG, &latency, NULL, NULL },
		{ "--protected", OPT_FLAG, &prot, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	n = cli_parse(argv[0], argc, argv, opts, pos, 1, 1);
	if (n < 0)
		return CLI_USAGE;
	req = json_pack("{s:s, s:s, s:b, s:b, s:b, s:b}", "op", "declare_queue", "name", pos[0],
			"durable", durable, "exclusive", exclusive, "auto_delete", auto_delete,
			"passive", passive);
	/* Only what the user gave: hbusd applies its defaults to the rest. */
	if (req && seen_cap)
		json_object_set_new(req, "capacity", json_integer(capacity));
	if (req && seen_slot)
		json_object_set_new(req, "slot_size", json_integer(slot_size));
	if (req && overflow)
		json_object_set_new(req, "overflow", json_string(overflow));
	if (req && seen_ttl)
		json_object_set_new(req, "ttl_ms", json_integer(ttl_ms));
	if (req && latency)
		json_object_set_new(req, "latency", json_true());
	if (req && prot)
		json_object_set_new(req, "protected", json_true());
	if (req && dlx)
		json_object_set_new(req, "dead_letter_exchange", json_string(dlx));
	if (req && dlk)
		json_object_set_new(req, "dead_letter_routing_key", json_string(dlk));
	if (req && seen_numa)
		json_object_set_new(req, "numa_node", json_integer(numa));
	what_of(what, sizeof(what), argv[0], pos[0]);
	reply = cli_request(cli, req, what);
	if (!reply)
		return CLI_FAIL;
	/* The name matters when hbusd chose it (NAME ""). */
	printf("%s\n", json_string_value(json_object_get(reply, "name")) ?
		       json_string_value(json_object_get(reply, "name")) : pos[0]);
	json_decref(reply);
	return CLI_OK;
}

int cmd_bind(struct cli *cli, int argc, char **argv)
{
	struct cli_list hdrs = { .n = 0 };
	const char *match = NULL, *pos[3];
	int exchange_dest = 0, n;
	char what[600];
	json_t *req, *h;
	const struct cli_opt opts[] = {
		{ "--header", OPT_LIST, &hdrs, NULL, NULL },
		{ "--match", OPT_CHOICE, &match, "all|any", NULL },
		{ "--exchange-dest", OPT_FLAG, &exchange_dest, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	n = cli_parse(argv[0], argc, argv, opts, pos, 2, 3);
	if (n < 0)
		return CLI_USAGE;
	h = cli_headers_json(&hdrs, argv[0]);
	if (!h)
		return CLI_USAGE;
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "op", strcmp(argv[0], "bind") ? "unbind" : "bind",
			"source", pos[1], "destination", pos[0],
			"destination_type", exchange_dest ? "exchange" : "queue",
			"key", n > 2 ? pos[2] : "", "headers", h);
	if (req && match)
		json_object_set_new(req, "match", json_string(match));
	snprintf(what, sizeof(what), "%s %s '%s' to exchange '%s'", argv[0],
		 exchange_dest ? "exchange" : "queue", pos[0], pos[1]);
	return simple_request(cli, req, what);
}

int cmd_delete_exchange(struct cli *cli, int argc, char **argv)
{
	int if_unused = 0;
	const char *pos[1];
	char what[300];
	const struct cli_opt opts[] = {
		{ "--if-unused", OPT_FLAG, &if_unused, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	if (cli_parse(argv[0], argc, argv, opts, pos, 1, 1) < 0)
		return CLI_USAGE;
	what_of(what, sizeof(what), argv[0], pos[0]);
	return simple_request(cli, json_pack("{s:s, s:s, s:b}", "op", "delete_exchange",
					     "name", pos[0], "if_unused", if_unused), what);
}

/* Commands whose reply carries a message count print it (scripts use it). */
static int count_request(struct cli *cli, json_t *req, const char *what, const char *field)
{
	json_t *reply = cli_request(cli, req, what);

	if (!reply)
		return CLI_FAIL;
	printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(reply, field)));
	json_decref(reply);
	return CLI_OK;
}

int cmd_delete_queue(struct cli *cli, int argc, char **argv)
{
	int if_unused = 0, if_empty = 0;
	const char *pos[1];
	char what[300];
	const struct cli_opt opts[] = {
		{ "--if-unused", OPT_FLAG, &if_unused, NULL, NULL },
		{ "--if-empty", OPT_FLAG, &if_empty, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	if (cli_parse(argv[0], argc, argv, opts, pos, 1, 1) < 0)
		return CLI_USAGE;
	what_of(what, sizeof(what), argv[0], pos[0]);
	return count_request(cli, json_pack("{s:s, s:s, s:b, s:b}", "op", "delete_queue",
					    "name", pos[0], "if_unused", if_unused,
					    "if_empty", if_empty), what, "messages");
}

int cmd_purge(struct cli *cli, int argc, char **argv)
{
	const char *pos[1];
	char what[300];

	if (cli_parse(argv[0], argc, argv, NULL, pos, 1, 1) < 0)
		return CLI_USAGE;
	what_of(what, sizeof(what), argv[0], pos[0]);
	return count_request(cli, json_pack("{s:s, s:s}", "op", "purge_queue", "name", pos[0]),
			     what, "purged");
}

int cmd_map_udp(struct cli *cli, int argc, char **argv)
{
	int map = !strcmp(argv[0], "map-udp");
	const char *pos[3];
	char ip[32], what[300];
	uint32_t ip_be;
	uint16_t port;
	json_t *req;

	if (cli_parse(argv[0], argc, argv, NULL, pos, map ? 3 : 1, map ? 3 : 1) < 0)
		return CLI_USAGE;
	if (cli_parse_addr(pos[0], &ip_be, &port, ip, sizeof(ip)))
		return cli_usage_error(argv[0], "want IPv4-ADDRESS:PORT, not '%s'", pos[0]);
	req = json_pack("{s:s, s:s, s:i}", "op", map ? "map_udp" : "unmap_udp", "addr", ip,
			"port", (int)port);
	if (req && map) {
		json_object_set_new(req, "exchange", json_string(pos[1]));
		json_object_set_new(req, "key", json_string(pos[2]));
	}
	what_of(what, sizeof(what), argv[0], pos[0]);
	return simple_request(cli, req, what);
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
	static const char *const cols_exchanges[] = { "name", "type", "durable", NULL };
	static const char *const cols_queues[] = { "name", "messages", "consumers", "capacity",
						   "protected", NULL };
	static const char *const cols_bindings[] = { "source", "destination", "destination_type",
						     "key", NULL };
	static const char *const cols_consumers[] = { "queue", "consumer_tag", NULL };
	static const char *const cols_udpmaps[] = { "addr", "port", "exchange", "key", NULL };
	static const struct { const char *what; const char *const *cols; } kinds[] = {
		{ "exchanges", cols_exchanges }, { "queues", cols_queues },
		{ "bindings", cols_bindings }, { "consumers", cols_consumers },
		{ "udpmaps", cols_udpmaps },
	};
	int as_json = 0;
	unsigned k;
	const char *pos[1];
	char what[64];
	json_t *reply, *items;
	const struct cli_opt opts[] = {
		{ "--json", OPT_FLAG, &as_json, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	if (cli_parse(argv[0], argc, argv, opts, pos, 1, 1) < 0)
		return CLI_USAGE;
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (!strcmp(kinds[k].what, pos[0]))
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		return cli_usage_error(argv[0], "list what? exchanges, queues, bindings, consumers "
				       "or udpmaps, not '%s'", pos[0]);
	snprintf(what, sizeof(what), "list %s", pos[0]);
	reply = cli_request(cli, json_pack("{s:s, s:s}", "op", "list", "what", pos[0]), what);
	if (!reply)
		return CLI_FAIL;
	items = json_object_get(reply, "items");
	if (!json_is_array(items)) {
		json_decref(reply);
		fprintf(stderr, "hbus: %s: reply has no items array\n", what);
		return CLI_FAIL;
	}
	if (as_json) {
		json_dumpf(items, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		cli_print_table(stdout, items, kinds[k].cols);
	}
	json_decref(reply);
	return CLI_OK;
}

/* Write text to path atomically (temp file, fsync, rename), "-" = stdout. */
static int write_file_atomic(const char *path, const char *text)
{
	char tmp[4096];
	size_t len = strlen(text);
	FILE *f;
	int ok;

	if (!strcmp(path, "-"))
		return fwrite(text, 1, len, stdout) == len ? 0 : -EIO;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	ok = fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) != 0) {
		int err = errno ? errno : EIO;
		unlink(tmp);
		return -err;
	}
	return 0;
}

int cmd_export(struct cli *cli, int argc, char **argv)
{
	const char *pos[1];
	char what[4200];
	json_t *reply, *defs;
	char *text;
	int rc;

	if (cli_parse(argv[0], argc, argv, NULL, pos, 1, 1) < 0)
		return CLI_USAGE;
	what_of(what, sizeof(what), argv[0], pos[0]);
	reply = cli_request(cli, json_pack("{s:s}", "op", "export"), what);
	if (!reply)
		return CLI_FAIL;
	defs = json_object_get(reply, "definitions");
	text = json_is_object(defs) ? json_dumps(defs, JSON_INDENT(2)) : NULL;
	json_decref(reply);
	if (!text) {
		fprintf(stderr, "hbus: %s: reply has no definitions object\n", what);
		return CLI_FAIL;
	}
	/* A trailing newline makes the file friendlier to every text tool. */
	char *withnl = malloc(strlen(text) + 2);
	if (withnl)
		sprintf(withnl, "%s\n", text);
	rc = withnl ? write_file_atomic(pos[0], withnl) : -ENOMEM;
	free(withnl);
	free(text);
	if (rc) {
		fprintf(stderr, "hbus: %s: %s\n", what, strerror(-rc));
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cmd_import(struct cli *cli, int argc, char **argv)
{
	const char *pos[1];
	char what[4200];
	json_error_t err;
	json_t *defs;

	if (cli_parse(argv[0], argc, argv, NULL, pos, 1, 1) < 0)
		return CLI_USAGE;
	what_of(what, sizeof(what), argv[0], pos[0]);
	defs = strcmp(pos[0], "-") ? json_load_file(pos[0], 0, &err) : json_loadf(stdin, 0, &err);
	if (!defs) {
		fprintf(stderr, "hbus: %s: %s (line %d)\n", what, err.text, err.line);
		return CLI_FAIL;
	}
	if (!json_is_object(defs)) {
		json_decref(defs);
		fprintf(stderr, "hbus: %s: definitions must be a JSON object\n", what);
		return CLI_FAIL;
	}
	return simple_request(cli, json_pack("{s:s, s:o}", "op", "import", "definitions", defs),
			      what);
}
