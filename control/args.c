/* args.c - see args.h. */
#include "args.h"

#include <arpa/inet.h>
#include <string.h>

static const char *jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:  return "an object";
	case JSON_ARRAY:   return "an array";
	case JSON_STRING:  return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL:    return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:   return "a boolean";
	default:           return "null";
	}
}

/*
 * Names, keys, tags and every other string hbusd takes are printable only:
 * a control character (C0, DEL, or a C1 control, which jansson's UTF-8
 * carries as 0xc2 0x80-0x9f) would reach log lines and terminals raw (a
 * '\n' forges a log line, ESC starts an escape sequence).  406 naming the
 * character and where it is.
 */
static int printable(const char *s, const char *ctx, const char *what, const char *k,
		     struct herr *e)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i;

	for (i = 0; p[i]; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return herr_set(e, AMQP_PRECONDITION, "%s: %s '%s' holds control character "
					"0x%02x at byte %zu: names, keys and tags must be printable",
					ctx, what, k, p[i], i);
		if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return herr_set(e, AMQP_PRECONDITION, "%s: %s '%s' holds control character "
					"U+%04X at byte %zu: names, keys and tags must be printable",
					ctx, what, k, p[i + 1], i);
	}
	return 0;
}

static json_t *field(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return v && !json_is_null(v) ? v : NULL;
}

int args_check_fields(json_t *o, const char *const *allowed, const char *ctx, struct herr *e)
{
	const char *k;
	json_t *v;
	unsigned i;

	json_object_foreach(o, k, v) {
		for (i = 0; allowed[i]; i++)
			if (!strcmp(k, allowed[i]))
				break;
		if (!allowed[i] && printable(k, ctx, "field name", "(not shown)", e))
			return -1;
		if (!allowed[i])
			return herr_set(e, AMQP_COMMAND_INVALID, "%s: unknown field '%s'", ctx, k);
	}
	return 0;
}

int arg_str(json_t *o, const char *k, const char **out, const char *dflt, const char *ctx,
	    struct herr *e)
{
	json_t *v = field(o, k);

	/* Every path writes *out: callers read it only on success, but the
	 * compiler cannot see that herr_set never returns 0. */
	*out = dflt;
	if (!v) {
		if (!dflt)
			return herr_set(e, AMQP_COMMAND_INVALID, "%s: field '%s' is required", ctx, k);
		*out = dflt;
		return 0;
	}
	if (!json_is_string(v))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: field '%s' must be a string, not %s",
				ctx, k, jtype(v));
	/* jansson refuses \u0000 when parsing, so the C string is the value. */
	*out = json_string_value(v);
	return printable(*out, ctx, "field", k, e);
}

int arg_bool(json_t *o, const char *k, bool *out, bool dflt, const char *ctx, struct herr *e)
{
	json_t *v = field(o, k);

	*out = dflt; /* as in arg_str */
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (!json_is_boolean(v))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: field '%s' must be true or false, not %s",
				ctx, k, jtype(v));
	*out = json_is_true(v);
	return 0;
}

int arg_int(json_t *o, const char *k, int64_t *out, int64_t dflt, bool required, int64_t lo,
	    int64_t hi, const char *ctx, struct herr *e)
{
	json_t *v = field(o, k);
	int64_t x;

	*out = dflt; /* as in arg_str */
	if (!v) {
		if (required)
			return herr_set(e, AMQP_COMMAND_INVALID, "%s: field '%s' is required", ctx, k);
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: field '%s' must be an integer, not %s",
				ctx, k, jtype(v));
	x = (int64_t)json_integer_value(v);
	if (x < lo || x > hi)
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: field '%s' is %lld, must be %lld..%lld",
				ctx, k, (long long)x, (long long)lo, (long long)hi);
	*out = x;
	return 0;
}

int args_exchange(json_t *o, struct exchange_args *a, const char *ctx, struct herr *e)
{
	const char *type;

	memset(a, 0, sizeof(*a));
	if (arg_str(o, "name", &a->name, NULL, ctx, e) ||
	    arg_str(o, "type", &type, "direct", ctx, e) ||
	    arg_bool(o, "durable", &a->durable, false, ctx, e) ||
	    arg_bool(o, "auto_delete", &a->auto_delete, false, ctx, e) ||
	    arg_str(o, "alternate_exchange", &a->alternate, "", ctx, e))
		return -1;
	if (!a->alternate[0])
		a->alternate = NULL;
	if (xtype_parse(type, &a->type))
		return herr_set(e, AMQP_COMMAND_INVALID,
				"%s: unknown exchange type '%s' (direct, fanout, topic or headers)",
				ctx, type);
	return 0;
}

int args_queue(json_t *o, struct queue_args *a, const char *ctx, struct herr *e)
{
	int64_t cap, slot, ttl, node;
	const char *overflow;
	bool latency, prot;

	memset(a, 0, sizeof(*a));
	if (arg_str(o, "name", &a->name, "", ctx, e) ||
	    arg_int(o, "capacity", &cap, HBUSD_DEFAULT_CAPACITY, false, 0, INT64_MAX, ctx, e) ||
	    arg_int(o, "slot_size", &slot, HBUSD_DEFAULT_SLOT_SIZE, false, 0, INT64_MAX, ctx, e) ||
	    arg_str(o, "overflow", &overflow, "reject", ctx, e) ||
	    arg_int(o, "ttl_ms", &ttl, 0, false, 0, INT64_MAX, ctx, e) ||
	    arg_int(o, "numa_node", &node, -1, false, -1, INT32_MAX, ctx, e) ||
	    arg_str(o, "dead_letter_exchange", &a->dlx, "", ctx, e) ||
	    arg_str(o, "dead_letter_routing_key", &a->dlx_key, "", ctx, e) ||
	    arg_bool(o, "durable", &a->durable, false, ctx, e) ||
	    arg_bool(o, "exclusive", &a->exclusive, false, ctx, e) ||
	    arg_bool(o, "auto_delete", &a->auto_delete, false, ctx, e) ||
	    arg_bool(o, "latency", &latency, false, ctx, e) ||
	    arg_bool(o, "protected", &prot, false, ctx, e))
		return -1;
	if (cap < HBUS_QUEUE_CAPACITY_MIN || cap > HBUS_QUEUE_CAPACITY_MAX || (cap & (cap - 1)))
		return herr_set(e, AMQP_PRECONDITION,
				"%s: capacity %lld must be a power of two from %u to %u", ctx,
				(long long)cap, HBUS_QUEUE_CAPACITY_MIN, HBUS_QUEUE_CAPACITY_MAX);
	if (slot < HBUS_SLOT_SIZE_MIN || slot > HBUS_SLOT_SIZE_MAX)
		return herr_set(e, AMQP_PRECONDITION, "%s: slot_size %lld must be from %u to %u bytes "
				"(the largest message a queue takes, metadata included; %u is the "
				"most a ring supports)", ctx, (long long)slot, HBUS_SLOT_SIZE_MIN,
				HBUS_SLOT_SIZE_MAX, HBUS_SLOT_SIZE_MAX);
	if (ttl > HBUSD_MAX_TTL_MS)
		return herr_set(e, AMQP_PRECONDITION, "%s: ttl_ms %lld is over the limit of %u (7 days)",
				ctx, (long long)ttl, HBUSD_MAX_TTL_MS);
	if (!strcmp(overflow, "reject"))
		a->cfg.overflow = HBUS_OVERFLOW_REJECT;
	else if (!strcmp(overflow, "drop-head"))
		a->cfg.overflow = HBUS_OVERFLOW_DROP_HEAD;
	else
		return herr_set(e, AMQP_COMMAND_INVALID,
				"%s: overflow '%s' is not 'reject' or 'drop-head'", ctx, overflow);
	a->cfg.capacity = (uint32_t)cap;
	a->cfg.slot_size = (uint32_t)slot;
	a->cfg.ttl_ms = (uint32_t)ttl;
	a->cfg.numa_node = (int32_t)node;
	a->cfg.flags = (latency ? HBUS_QUEUE_F_LATENCY : 0) | (prot ? HBUS_QUEUE_F_PROTECTED : 0);
	if (!a->dlx[0])
		a->dlx = NULL;
	if (!a->dlx_key[0])
		a->dlx_key = NULL;
	if (a->dlx_key && !a->dlx)
		return herr_set(e, AMQP_COMMAND_INVALID,
				"%s: dead_letter_routing_key needs a dead_letter_exchange", ctx);
	return 0;
}

static int headers_arg(json_t *o, struct binding_args *a, struct hbus_header *hdrs,
		       const char *ctx, struct herr *e)
{
	json_t *h = field(o, "headers"), *v;
	const char *k;
	size_t n = 0;

	if (!h)
		return 0;
	if (!json_is_object(h))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: field 'headers' must be an object, not %s",
				ctx, jtype(h));
	if (json_object_size(h) > HBUS_HEADERS_MAX)
		return herr_set(e, AMQP_PRECONDITION, "%s: %zu headers, the limit is %u", ctx,
				json_object_size(h), HBUS_HEADERS_MAX);
	json_object_foreach(h, k, v) {
		if (printable(k, ctx, "header name", "(not shown)", e))
			return -1;
		if (!json_is_string(v))
			return herr_set(e, AMQP_COMMAND_INVALID,
					"%s: header '%s' must have a string value, not %s", ctx, k,
					jtype(v));
		if (strlen(k) > 255 || json_string_length(v) > UINT16_MAX)
			return herr_set(e, AMQP_PRECONDITION,
					"%s: header '%.40s' is too long (name up to 255 bytes, value "
					"up to 65535)", ctx, k);
		if (printable(json_string_value(v), ctx, "header", k, e))
			return -1;
		hdrs[n].name = k;
		hdrs[n].name_len = (uint8_t)strlen(k);
		hdrs[n].value = json_string_value(v);
		hdrs[n].value_len = (uint16_t)json_string_length(v);
		n++;
	}
	a->headers = hdrs;
	a->n_headers = (uint16_t)n;
	return 0;
}

int args_binding(json_t *o, struct binding_args *a, struct hbus_header *hdrs, const char *ctx,
		 struct herr *e)
{
	const char *dtype, *match;

	memset(a, 0, sizeof(*a));
	if (arg_str(o, "source", &a->source, NULL, ctx, e) ||
	    arg_str(o, "destination", &a->dest, NULL, ctx, e) ||
	    arg_str(o, "destination_type", &dtype, "queue", ctx, e) ||
	    arg_str(o, "key", &a->key, "", ctx, e) ||
	    arg_str(o, "match", &match, "all", ctx, e) ||
	    headers_arg(o, a, hdrs, ctx, e))
		return -1;
	if (!strcmp(dtype, "exchange"))
		a->dest_is_exchange = true;
	else if (strcmp(dtype, "queue"))
		return herr_set(e, AMQP_COMMAND_INVALID,
				"%s: destination_type '%s' is not 'queue' or 'exchange'", ctx, dtype);
	if (!strcmp(match, "all"))
		a->match_all = true;
	else if (strcmp(match, "any"))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: match '%s' is not 'all' or 'any'", ctx,
				match);
	return 0;
}

int args_udpmap(json_t *o, struct udpmap_args *a, bool with_target, const char *ctx,
		struct herr *e)
{
	const char *addr;
	struct in_addr in;
	int64_t port;

	memset(a, 0, sizeof(*a));
	if (arg_str(o, "addr", &addr, NULL, ctx, e) ||
	    arg_int(o, "port", &port, 0, true, 1, 65535, ctx, e))
		return -1;
	if (with_target && (arg_str(o, "exchange", &a->exchange, NULL, ctx, e) ||
			    arg_str(o, "key", &a->key, "", ctx, e)))
		return -1;
	if (inet_pton(AF_INET, addr, &in) != 1)
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: addr '%s' is not an IPv4 address A.B.C.D",
				ctx, addr);
	a->ip_be = in.s_addr;
	a->port = (uint16_t)port;
	return 0;
}
