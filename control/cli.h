/*
 * cli.h - the `hbus` command line: shared state, option parsing, output
 * helpers (docs/CLI.md).
 *
 * Each command is `int cmd_<name>(struct cli *, int argc, char **argv)`
 * with argv[0] the command name; it returns the process exit status:
 * 0 success, 1 failure (one line on stderr), 2 usage error.
 */
#ifndef HBUS_CLI_H
#define HBUS_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hbus.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

struct cli {
	const char *bus;      /* --bus, NULL = library default */
	const char *run_dir;  /* --run-dir, NULL = library default */
	hbus_client *client;  /* connected on first use */
};

/* ---------------------------------------------------------- options */

enum cli_opt_kind {
	OPT_FLAG,   /* int: set to 1 */
	OPT_STR,    /* const char * */
	OPT_U32,    /* uint32_t, decimal or 0x */
	OPT_I32,    /* int32_t */
	OPT_U64,    /* uint64_t */
	OPT_LIST,   /* struct cli_list: repeatable */
	OPT_CHOICE, /* const char *, one of choices ("a|b") */
};

struct cli_list {
	const char *v[HBUS_HEADERS_MAX];
	unsigned n;
};

struct cli_opt {
	const char *name;       /* "--capacity" */
	enum cli_opt_kind kind;
	void *dest;
	const char *choices;    /* OPT_CHOICE: "all|any" */
	int *seen;              /* optional: set to 1 when given */
};

/*
 * Parse argv[1..argc) against opts.  Options and positionals may mix;
 * "--opt=value" and "--opt value" both work; "--" ends options.  The
 * positionals land in pos[] (at most max_pos).  Returns the number of
 * positionals, or -1 after printing a usage error for cmd on stderr.
 */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
	      const char **pos, int min_pos, int max_pos);

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* "A.B.C.D:PORT" -> ip (network order) and port; 0 or -1. */
int cli_parse_addr(const char *s, uint32_t *ip_be, uint16_t *port, char *ip_text, size_t cap);
/* "K=V" -> header (views into s); 0 or -1. */
int cli_parse_header(const char *s, struct hbus_header *h);
/* --header K=V list -> JSON object {K:V}, NULL on a bad entry. */
json_t *cli_headers_json(const struct cli_list *l, const char *cmd);

/* ---------------------------------------------------------- session */

/* Connect on first use; prints the error and returns NULL on failure. */
hbus_client *cli_client(struct cli *cli);
/*
 * Send req (consumed) and return the ok reply (caller decrefs), or NULL
 * after printing `hbus: <what>: <code> <message>` on stderr.
 */
json_t *cli_request(struct cli *cli, json_t *req, const char *what);
/* Print `hbus: <what>: <reason for rc>` (with the AMQP code when hbusd
 * refused) and return CLI_FAIL. */
int cli_fail(struct cli *cli, const char *what, int rc);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------- output */

/* 1 when the n bytes are valid UTF-8 without NUL bytes. */
int cli_utf8_valid(const uint8_t *p, size_t n);
/* Base64 (RFC 4648, padded) of n bytes into a malloc'ed string. */
char *cli_base64(const uint8_t *p, size_t n);
/* A consumed message as one JSON object (see docs/CLI.md "consume --json"). */
json_t *cli_msg_json(const struct hbus_msg *m, uint64_t now_ns);
/* Items (objects) as an aligned text table, columns in order of first
 * appearance; nested values are printed as compact JSON. */
void cli_print_table(FILE *f, json_t *items, const char *const *columns);
/* A JSON value as table cell text (malloc'ed). */
char *cli_cell_text(json_t *v);

/* ---------------------------------------------------------- stat */

/* Prometheus metric name hbus_<a>[_<b>], other characters as '_'. */
void cli_prom_name(char *out, size_t cap, const char *a, const char *b);
/* A label value, escaped for the Prometheus text format. */
void cli_prom_label_value(FILE *f, const char *v);
/* The stat reply's "dataplanes" section (cli_stat_dp.c): rates between two
 * samples, the table, the Prometheus metrics hbus_dataplane_*. */
void cli_stat_dp_add_rates(json_t *prev, json_t *cur, double secs);
void cli_stat_dp_render(json_t *dataplanes);
void cli_stat_dp_prometheus(const char *bus, json_t *dataplanes);

/* ---------------------------------------------------------- commands */

int cmd_declare_exchange(struct cli *, int, char **);
int cmd_declare_queue(struct cli *, int, char **);
int cmd_bind(struct cli *, int, char **);     /* also unbind */
int cmd_delete_exchange(struct cli *, int, char **);
int cmd_delete_queue(struct cli *, int, char **);
int cmd_purge(struct cli *, int, char **);
int cmd_map_udp(struct cli *, int, char **);  /* also unmap-udp */
int cmd_list(struct cli *, int, char **);
int cmd_export(struct cli *, int, char **);
int cmd_import(struct cli *, int, char **);
int cmd_publish(struct cli *, int, char **);
int cmd_consume(struct cli *, int, char **);
int cmd_stat(struct cli *, int, char **);
int cmd_send(struct cli *, int, char **);

#endif
