/*
 * cli_args.c - option parsing, value parsing, and the session/error
 * helpers every `hbus` command shares.
 */
#include "cli.h"
#include "client_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "hbus: %s: %s (see hbus --help)\n", cmd, msg);
	return CLI_USAGE;
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int choice_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;

	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

static int opt_store(const char *cmd, const struct cli_opt *o, const char *v)
{
	uint64_t u;

	switch (o->kind) {
	case OPT_FLAG:
		*(int *)o->dest = 1;
		break;
	case OPT_STR:
		*(const char **)o->dest = v;
		break;
	case OPT_CHOICE:
		if (!choice_ok(o->choices, v))
			return cli_usage_error(cmd, "%s must be one of %s, not '%s'", o->name,
					       o->choices, v);
		*(const char **)o->dest = v;
		break;
	case OPT_U32:
		if (cli_parse_u64(v, UINT32_MAX, &u))
			return cli_usage_error(cmd, "%s wants a number 0..%u, not '%s'", o->name,
					       UINT32_MAX, v);
		*(uint32_t *)o->dest = (uint32_t)u;
		break;
	case OPT_U64:
		if (cli_parse_u64(v, UINT64_MAX, &u))
			return cli_usage_error(cmd, "%s wants a non-negative number, not '%s'",
					       o->name, v);
		*(uint64_t *)o->dest = u;
		break;
	case OPT_I32: {
		long l;
		char *end;
		errno = 0;
		l = strtol(v, &end, 0);
		if (!*v || *end || errno || l < INT32_MIN || l > INT32_MAX)
			return cli_usage_error(cmd, "%s wants an integer, not '%s'", o->name, v);
		*(int32_t *)o->dest = (int32_t)l;
		break;
	}
	case OPT_LIST: {
		struct cli_list *l = o->dest;
		if (l->n == HBUS_HEADERS_MAX)
			return cli_usage_error(cmd, "%s given more than %u times", o->name,
					       HBUS_HEADERS_MAX);
		l->v[l->n++] = v;
		break;
	}
	}
	if (o->seen)
		*o->seen = 1;
	return 0;
}

int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
	      const char **pos, int min_pos, int max_pos)
{
	int i, npos = 0, only_pos = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *eq;
		const struct cli_opt *o;
		size_t nlen;

		if (only_pos || a[0] != '-' || a[1] != '-' || !a[2]) {
			if (!only_pos && strcmp(a, "--") == 0) {
				only_pos = 1;
				continue;
			}
			if (!only_pos && a[0] == '-' && a[1] && a[1] != '-')
				return cli_usage_error(cmd, "unknown option '%s'", a), -1;
			if (npos == max_pos)
				return cli_usage_error(cmd, "unexpected argument '%s'", a), -1;
			pos[npos++] = a;
			continue;
		}
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (o = opts; o && o->name; o++)
			if (strlen(o->name) == nlen && strncmp(o->name, a, nlen) == 0)
				break;
		if (!o || !o->name)
			return cli_usage_error(cmd, "unknown option '%.*s'", (int)nlen, a), -1;
		if (o->kind == OPT_FLAG) {
			if (eq)
				return cli_usage_error(cmd, "%s takes no value", o->name), -1;
		} else if (eq) {
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			return cli_usage_error(cmd, "%s needs a value", o->name), -1;
		}
		if (opt_store(cmd, o, v))
			return -1;
	}
	if (npos < min_pos)
		return cli_usage_error(cmd, "missing argument(s): needs at least %d", min_pos), -1;
	return npos;
}

int cli_parse_addr(const char *s, uint32_t *ip_be, uint16_t *port, char *ip_text, size_t cap)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	char ip[INET_ADDRSTRLEN];
	struct in_addr a;
	uint64_t p;

	if (!colon || (size_t)(colon - s) >= sizeof(ip))
		return -1;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1 || cli_parse_u64(colon + 1, 65535, &p) || p == 0)
		return -1;
	*ip_be = a.s_addr;
	*port = (uint16_t)p;
	if (ip_text && cap)
		snprintf(ip_text, cap, "%s", ip);
	return 0;
}

int cli_parse_header(const char *s, struct hbus_header *h)
{
	const char *eq = s ? strchr(s, '=') : NULL;
	size_t vlen;

	if (!eq || eq == s || (size_t)(eq - s) > 255)
		return -1;
	vlen = strlen(eq + 1);
	if (vlen > 0xffff)
		return -1;
	h->name = s;
	h->name_len = (uint8_t)(eq - s);
	h->value = eq + 1;
	h->value_len = (uint16_t)vlen;
	return 0;
}

json_t *cli_headers_json(const struct cli_list *l, const char *cmd)
{
	json_t *o = json_object();
	unsigned i;

	for (i = 0; o && i < l->n; i++) {
		struct hbus_header h;
		char name[256];

		if (cli_parse_header(l->v[i], &h)) {
			cli_usage_error(cmd, "--header wants NAME=VALUE, not '%s'", l->v[i]);
			json_decref(o);
			return NULL;
		}
		memcpy(name, h.name, h.name_len);
		name[h.name_len] = '\0';
		json_object_set_new(o, name, json_stringn(h.value, h.value_len));
	}
	return o;
}

/* ---------------------------------------------------------- session */

static const char *socket_path(const struct cli *cli, char *buf, size_t cap)
{
	const char *dir = cli->run_dir ? cli->run_dir : getenv("HBUS_RUN_DIR");
	const char *bus = cli->bus ? cli->bus : getenv("HBUS_BUS");

	snprintf(buf, cap, "%s/%s.sock", dir && *dir ? dir : "/run/hbus",
		 bus && *bus ? bus : "default");
	return buf;
}

hbus_client *cli_client(struct cli *cli)
{
	struct hbus_client_opts o = { .bus = cli->bus, .run_dir = cli->run_dir };
	char msg[256] = "", path[512];
	int rc, code = 0;

	if (cli->client)
		return cli->client;
	rc = hbus_connect_err(&o, &cli->client, &code, msg, sizeof(msg));
	if (rc == -EREMOTEIO)
		fprintf(stderr, "hbus: connect %s: %d %s\n", socket_path(cli, path, sizeof(path)),
			code, msg);
	else if (rc)
		fprintf(stderr, "hbus: connect %s: %s%s\n", socket_path(cli, path, sizeof(path)),
			hbus_strerror(rc),
			rc == -ENOENT || rc == -ECONNREFUSED ? " (is hbusd running?)" : "");
	return rc ? NULL : cli->client;
}

int cli_fail(struct cli *cli, const char *what, int rc)
{
	const char *msg = NULL;
	int code = 0;

	if (rc == -EREMOTEIO && cli->client) {
		hbus_client_error(cli->client, &code, &msg);
		fprintf(stderr, "hbus: %s: %d %s\n", what, code, msg && *msg ? msg : "refused");
	} else {
		fprintf(stderr, "hbus: %s: %s\n", what, hbus_strerror(rc));
	}
	return CLI_FAIL;
}

json_t *cli_request(struct cli *cli, json_t *req, const char *what)
{
	hbus_client *c;
	json_t *reply = NULL;
	int rc;

	if (!req) {
		fprintf(stderr, "hbus: %s: out of memory\n", what);
		return NULL;
	}
	c = cli_client(cli);
	if (!c) {
		json_decref(req);
		return NULL;
	}
	rc = client_request(c, req, &reply, NULL);
	json_decref(req);
	if (rc == 0)
		return reply;
	json_decref(reply);
	cli_fail(cli, what, rc);
	return NULL;
}
