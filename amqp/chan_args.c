/*
 * chan_args.c - AMQP method arguments (field tables) -> hbusd request
 * fields: queue arguments (x-message-ttl, x-dead-letter-*, x-max-length,
 * x-overflow, x-hbus-*: capacity, slot-size, protected), exchange arguments (alternate-exchange) and
 * binding arguments (headers exchanges: x-match and the values).
 */
#include "chan_args.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool key_is(const amqp_table_entry_t *e, const char *k)
{
	return e->key.len == strlen(k) && !memcmp(e->key.bytes, k, e->key.len);
}

bool field_int(const amqp_field_value_t *v, int64_t *out)
{
	switch (v->kind) {
	case AMQP_FIELD_KIND_I8:  *out = v->value.i8; return true;
	case AMQP_FIELD_KIND_U8:  *out = v->value.u8; return true;
	case AMQP_FIELD_KIND_I16: *out = v->value.i16; return true;
	case AMQP_FIELD_KIND_U16: *out = v->value.u16; return true;
	case AMQP_FIELD_KIND_I32: *out = v->value.i32; return true;
	case AMQP_FIELD_KIND_U32: *out = v->value.u32; return true;
	case AMQP_FIELD_KIND_I64: *out = v->value.i64; return true;
	case AMQP_FIELD_KIND_U64: *out = v->value.u64 > INT64_MAX ? INT64_MAX : (int64_t)v->value.u64;
		return true;
	default: return false;
	}
}

/* A string field as a NUL-terminated copy; false for another kind, a NUL
 * inside, or more than cap - 1 bytes. */
static bool field_str(const amqp_field_value_t *v, char *out, size_t cap)
{
	if (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)
		return false;
	if (v->value.bytes.len >= cap || memchr(v->value.bytes.bytes, 0, v->value.bytes.len))
		return false;
	memcpy(out, v->value.bytes.bytes, v->value.bytes.len);
	out[v->value.bytes.len] = 0;
	return true;
}

/* The text a header value is compared as (strings, integers, booleans). */
bool field_text(const amqp_field_value_t *v, char *out, size_t cap)
{
	int64_t i;

	if (field_str(v, out, cap))
		return true;
	if (field_int(v, &i)) {
		snprintf(out, cap, "%" PRId64, i);
		return true;
	}
	if (v->kind == AMQP_FIELD_KIND_BOOLEAN) {
		snprintf(out, cap, "%s", v->value.boolean ? "true" : "false");
		return true;
	}
	return false;
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint64_t p = 2;

	while (p < n && p < (1u << 24))
		p <<= 1;
	return (uint32_t)p;
}

int args_queue_json(const amqp_table_t *t, json_t *req, struct arg_err *err)
{
	char s[256];
	int64_t v;
	bool maxlen = false, overflow = false;
	int k;

	json_object_set_new(req, "capacity", json_integer(gw_opts.queue_capacity));
	json_object_set_new(req, "slot_size", json_integer(gw_opts.queue_slot_size));
	for (k = 0; k < t->num_entries; k++) {
		const amqp_table_entry_t *e = &t->entries[k];

		if (key_is(e, "x-message-ttl")) {
			if (!field_int(&e->value, &v) || v < 0 || v > 604800000)
				goto bad;
			json_object_set_new(req, "ttl_ms", json_integer(v));
		} else if (key_is(e, "x-dead-letter-exchange")) {
			if (!field_str(&e->value, s, sizeof(s)))
				goto bad;
			if (s[0])
				json_object_set_new(req, "dead_letter_exchange", json_string(s));
		} else if (key_is(e, "x-dead-letter-routing-key")) {
			if (!field_str(&e->value, s, sizeof(s)))
				goto bad;
			json_object_set_new(req, "dead_letter_routing_key", json_string(s));
		} else if (key_is(e, "x-max-length")) {
			if (!field_int(&e->value, &v) || v < 0 || v > (1 << 24))
				goto bad;
			/* A ring holds a power of two: the next one up. */
			json_object_set_new(req, "capacity", json_integer(pow2_at_least((uint64_t)v)));
			maxlen = true;
		} else if (key_is(e, "x-overflow")) {
			if (!field_str(&e->value, s, sizeof(s)))
				goto bad;
			if (!strcmp(s, "drop-head"))
				json_object_set_new(req, "overflow", json_string("drop-head"));
			else if (!strcmp(s, "reject-publish") || !strcmp(s, "reject-publish-dlx"))
				json_object_set_new(req, "overflow", json_string("reject"));
			else
				goto bad;
			overflow = true;
		} else if (key_is(e, "x-hbus-capacity")) {
			if (!field_int(&e->value, &v) || v < 2 || v > (1 << 24))
				goto bad;
			json_object_set_new(req, "capacity", json_integer(v));
		} else if (key_is(e, "x-hbus-slot-size")) {
			if (!field_int(&e->value, &v) || v < 8 || v > (1 << 20))
				goto bad;
			json_object_set_new(req, "slot_size", json_integer(v));
		} else if (key_is(e, "x-hbus-protected")) {
			/* Consumers map the message bytes read-only (docs/SECURITY.md). */
			if (e->value.kind != AMQP_FIELD_KIND_BOOLEAN)
				goto bad;
			if (e->value.value.boolean)
				json_object_set_new(req, "protected", json_true());
		} else if (key_is(e, "x-queue-type")) {
			if (!field_str(&e->value, s, sizeof(s)) || strcmp(s, "classic")) {
				snprintf(err->msg, sizeof(err->msg), "PRECONDITION_FAILED - queue type "
					 "'%.64s' is not supported: hbus queues are classic", s);
				return -1;
			}
		}
		/* Other arguments (x-expires, x-max-priority, ...) are not
		 * hbus features: ignored, as RabbitMQ ignores unknown ones. */
	}
	/* RabbitMQ's x-max-length drops the oldest unless told otherwise. */
	if (maxlen && !overflow)
		json_object_set_new(req, "overflow", json_string("drop-head"));
	return 0;
bad:
	snprintf(err->msg, sizeof(err->msg), "PRECONDITION_FAILED - invalid arg '%.*s'",
		 (int)(t->entries[k].key.len > 64 ? 64 : t->entries[k].key.len),
		 (char *)t->entries[k].key.bytes);
	return -1;
}

int args_exchange_json(const amqp_table_t *t, json_t *req, struct arg_err *err)
{
	char s[256];
	int k;

	for (k = 0; k < t->num_entries; k++) {
		const amqp_table_entry_t *e = &t->entries[k];

		if (!key_is(e, "alternate-exchange"))
			continue;
		if (!field_str(&e->value, s, sizeof(s))) {
			snprintf(err->msg, sizeof(err->msg), "PRECONDITION_FAILED - invalid arg "
				 "'alternate-exchange'");
			return -1;
		}
		if (s[0])
			json_object_set_new(req, "alternate_exchange", json_string(s));
	}
	return 0;
}

int args_binding_json(const amqp_table_t *t, json_t *req, struct arg_err *err)
{
	json_t *h = NULL;
	char key[256], val[1024];
	int k;

	for (k = 0; k < t->num_entries; k++) {
		const amqp_table_entry_t *e = &t->entries[k];

		if (e->key.len >= sizeof(key) || memchr(e->key.bytes, 0, e->key.len))
			continue;
		if (key_is(e, "x-match")) {
			if (!field_str(&e->value, val, sizeof(val)) ||
			    (strcmp(val, "all") && strcmp(val, "any"))) {
				snprintf(err->msg, sizeof(err->msg), "PRECONDITION_FAILED - x-match "
					 "must be 'all' or 'any'");
				json_decref(h);
				return -1;
			}
			json_object_set_new(req, "match", json_string(val));
			continue;
		}
		if (e->key.len >= 2 && !memcmp(e->key.bytes, "x-", 2))
			continue; /* x- arguments are not matched (as RabbitMQ) */
		if (!field_text(&e->value, val, sizeof(val)))
			continue; /* tables, arrays, floats: no text to match */
		if (!h && !(h = json_object()))
			return -1;
		memcpy(key, e->key.bytes, e->key.len);
		key[e->key.len] = 0;
		json_object_set_new(h, key, json_string(val));
	}
	if (h)
		json_object_set_new(req, "headers", h);
	return 0;
}

/* Redeclaring a queue that exists: compare what the AMQP client said
 * with what the queue is (sizes only when the client gave them). */
int args_queue_equivalent(json_t *want, json_t *have, struct arg_err *err)
{
	static const char *const keys[] = { "durable", "exclusive", "auto_delete", "ttl_ms",
					    "dead_letter_exchange", "dead_letter_routing_key",
					    "overflow", "protected", NULL };
	unsigned i;

	for (i = 0; keys[i]; i++) {
		json_t *w = json_object_get(want, keys[i]), *h = json_object_get(have, keys[i]);
		bool w_none = !w || json_is_false(w) || (json_is_integer(w) && !json_integer_value(w));
		bool h_none = !h || json_is_false(h) || (json_is_integer(h) && !json_integer_value(h));

		if (!strcmp(keys[i], "overflow") && !w)
			continue; /* not given: whatever the queue has */
		if (!strcmp(keys[i], "overflow") && h && json_is_string(h) &&
		    !strcmp(json_string_value(h), "reject") && !w)
			continue;
		if (w_none && h_none)
			continue;
		if (w && h && json_equal(w, h))
			continue;
		snprintf(err->msg, sizeof(err->msg), "PRECONDITION_FAILED - inequivalent arg '%s' "
			 "for queue '%s' in vhost '/'", keys[i],
			 json_string_value(json_object_get(have, "name")) ?: "");
		return -1;
	}
	return 0;
}
