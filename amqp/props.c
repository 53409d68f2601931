/*
 * props.c - AMQP content properties <-> hbus message headers.
 *
 * A local consumer must see what an AMQP publisher set, and an AMQP
 * consumer must get back exactly what was published.  So each property
 * becomes a readable header (content-type, message-id, reply-to, ...; the
 * names below), each string entry of the headers table a header of its own
 * name, and when that is not the whole truth (a table value that is not a
 * string, a property name also used in the table, more entries than fit)
 * the encoded properties travel as they came, in the header
 * "x-amqp-properties".  Back to AMQP: that header when present, plus any
 * header added on the way (dead-lettering's x-first-death-*, ...) that it
 * does not have; else properties rebuilt from the readable headers, so a
 * local publisher's "content-type" or "message-id" header reaches pika as
 * the property.  A dead-lettered message also gets RabbitMQ's "x-death"
 * array, built from hbus's x-last-death-* headers.
 */
#include "gw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOB_HEADER "x-amqp-properties"

enum pkind { P_STR, P_OCTET, P_TS };

static const struct pdef {
	const char *name;
	amqp_flags_t flag;
	enum pkind kind;
	size_t off;
} pdefs[] = {
#define S(n, f, field) { n, f, P_STR, offsetof(amqp_basic_properties_t, field) }
	S("content-type", AMQP_BASIC_CONTENT_TYPE_FLAG, content_type),
	S("content-encoding", AMQP_BASIC_CONTENT_ENCODING_FLAG, content_encoding),
	{ "delivery-mode", AMQP_BASIC_DELIVERY_MODE_FLAG, P_OCTET,
	  offsetof(amqp_basic_properties_t, delivery_mode) },
	{ "priority", AMQP_BASIC_PRIORITY_FLAG, P_OCTET, offsetof(amqp_basic_properties_t, priority) },
	S("correlation-id", AMQP_BASIC_CORRELATION_ID_FLAG, correlation_id),
	S("reply-to", AMQP_BASIC_REPLY_TO_FLAG, reply_to),
	S("expiration", AMQP_BASIC_EXPIRATION_FLAG, expiration),
	S("message-id", AMQP_BASIC_MESSAGE_ID_FLAG, message_id),
	{ "timestamp", AMQP_BASIC_TIMESTAMP_FLAG, P_TS, offsetof(amqp_basic_properties_t, timestamp) },
	S("type", AMQP_BASIC_TYPE_FLAG, type),
	S("user-id", AMQP_BASIC_USER_ID_FLAG, user_id),
	S("app-id", AMQP_BASIC_APP_ID_FLAG, app_id),
	S("cluster-id", AMQP_BASIC_CLUSTER_ID_FLAG, cluster_id),
#undef S
};
#define NPDEFS (sizeof(pdefs) / sizeof(pdefs[0]))

static const struct pdef *pdef_named(const char *name, size_t len)
{
	unsigned i;

	for (i = 0; i < NPDEFS; i++)
		if (strlen(pdefs[i].name) == len && !memcmp(pdefs[i].name, name, len))
			return &pdefs[i];
	return NULL;
}

static int add(struct props_hdrs *o, const char *name, size_t nlen, const void *v, size_t vlen)
{
	if (o->n >= HBUS_HEADERS_MAX - 1 || nlen > 255 || vlen > UINT16_MAX)
		return -1;
	o->h[o->n++] = (struct hbus_header){ .name = name, .name_len = (uint8_t)nlen,
					     .value = v, .value_len = (uint16_t)vlen };
	return 0;
}

int props_to_headers(const amqp_basic_properties_t *p, const uint8_t *raw, size_t raw_len,
		     struct props_hdrs *out)
{
	bool lossy = false;
	unsigned i, nt = 0;
	int k;

	out->n = 0;
	if (!p->_flags)
		return 0;
	for (i = 0; i < NPDEFS; i++) {
		const struct pdef *d = &pdefs[i];
		const uint8_t *base = (const uint8_t *)p + d->off;

		if (!(p->_flags & d->flag))
			continue;
		if (d->kind == P_STR) {
			const amqp_bytes_t *b = (const amqp_bytes_t *)base;
			if (memchr(b->bytes, 0, b->len))
				lossy = true;
			lossy |= add(out, d->name, strlen(d->name), b->bytes, b->len) != 0;
		} else {
			char *t = out->text[nt++];
			if (d->kind == P_OCTET)
				snprintf(t, sizeof(out->text[0]), "%u", *(const uint8_t *)base);
			else
				snprintf(t, sizeof(out->text[0]), "%" PRIu64, *(const uint64_t *)base);
			lossy |= add(out, d->name, strlen(d->name), t, strlen(t)) != 0;
		}
	}
	if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
		for (k = 0; k < p->headers.num_entries; k++) {
			const amqp_table_entry_t *en = &p->headers.entries[k];

			if (en->value.kind != AMQP_FIELD_KIND_UTF8 ||
			    pdef_named(en->key.bytes, en->key.len) ||
			    (en->key.len == strlen(BLOB_HEADER) &&
			     !memcmp(en->key.bytes, BLOB_HEADER, en->key.len))) {
				lossy = true;
				continue;
			}
			lossy |= add(out, en->key.bytes, en->key.len, en->value.value.bytes.bytes,
				     en->value.value.bytes.len) != 0;
		}
	}
	if (lossy) {
		if (raw_len > UINT16_MAX)
			return -1;
		out->h[out->n++] = (struct hbus_header){ .name = BLOB_HEADER,
							 .name_len = sizeof(BLOB_HEADER) - 1,
							 .value = (const char *)raw,
							 .value_len = (uint16_t)raw_len };
	}
	return 0;
}

static bool table_has(const amqp_table_t *t, const char *k, size_t len)
{
	int i;

	for (i = 0; i < t->num_entries; i++)
		if (t->entries[i].key.len == len && !memcmp(t->entries[i].key.bytes, k, len))
			return true;
	return false;
}

static bool parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!len || len > 20)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Set property d from a header's text; false when it does not parse. */
static bool set_prop(amqp_basic_properties_t *p, const struct pdef *d, const struct hbus_header *h)
{
	uint8_t *base = (uint8_t *)p + d->off;
	uint64_t v;

	if (d->kind == P_STR) {
		*(amqp_bytes_t *)base = (amqp_bytes_t){ .len = h->value_len, .bytes = (void *)h->value };
	} else if (d->kind == P_OCTET) {
		if (!parse_u64(h->value, h->value_len, 255, &v))
			return false;
		*base = (uint8_t)v;
	} else {
		if (!parse_u64(h->value, h->value_len, UINT64_MAX, &v))
			return false;
		*(uint64_t *)base = v;
	}
	p->_flags |= d->flag;
	return true;
}

static const struct hbus_header *header_named(const struct hbus_meta *m, const char *name)
{
	size_t len = strlen(name);

	for (unsigned i = 0; i < m->header_count; i++)
		if (m->headers[i].name_len == len && !memcmp(m->headers[i].name, name, len))
			return &m->headers[i];
	return NULL;
}

static amqp_field_value_t utf8(const char *s, size_t len)
{
	return (amqp_field_value_t){ .kind = AMQP_FIELD_KIND_UTF8,
				     .value.bytes = { .len = len, .bytes = (void *)s } };
}

/*
 * RabbitMQ's "x-death" for a dead-lettered message, from the string headers
 * hbus's dead-lettering sets (x-last-death-{reason,queue,exchange}): an
 * array of one table {reason, queue, exchange, count 1, routing-keys}.
 * Clients parse the array (amqp091-go's tests do); hbus keeps one death,
 * the last, so count is 1.  false: not dead-lettered, or out of memory.
 */
static bool x_death(const struct hbus_meta *m, amqp_pool_t *pool, amqp_table_entry_t *out)
{
	const struct hbus_header *reason = header_named(m, "x-last-death-reason"),
				 *queue = header_named(m, "x-last-death-queue"),
				 *exch = header_named(m, "x-last-death-exchange");
	amqp_table_entry_t *e = amqp_pool_alloc(pool, 5 * sizeof(*e));
	amqp_field_value_t *death = amqp_pool_alloc(pool, sizeof(*death)),
			   *key = amqp_pool_alloc(pool, sizeof(*key));

	if (!reason || !queue || !exch || !e || !death || !key)
		return false;
	*key = utf8(m->routing_key, m->routing_key_len);
	e[0] = (amqp_table_entry_t){ amqp_cstring_bytes("reason"),
				     utf8(reason->value, reason->value_len) };
	e[1] = (amqp_table_entry_t){ amqp_cstring_bytes("queue"), utf8(queue->value, queue->value_len) };
	e[2] = (amqp_table_entry_t){ amqp_cstring_bytes("exchange"), utf8(exch->value, exch->value_len) };
	e[3] = (amqp_table_entry_t){ amqp_cstring_bytes("count"),
				     { .kind = AMQP_FIELD_KIND_I64, .value.i64 = 1 } };
	e[4] = (amqp_table_entry_t){ amqp_cstring_bytes("routing-keys"),
				     { .kind = AMQP_FIELD_KIND_ARRAY,
				       .value.array = { .num_entries = 1, .entries = key } } };
	*death = (amqp_field_value_t){ .kind = AMQP_FIELD_KIND_TABLE,
				       .value.table = { .num_entries = 5, .entries = e } };
	*out = (amqp_table_entry_t){ amqp_cstring_bytes("x-death"),
				     { .kind = AMQP_FIELD_KIND_ARRAY,
				       .value.array = { .num_entries = 1, .entries = death } } };
	return true;
}

int props_from_meta(const uint8_t *meta, size_t meta_len, amqp_pool_t *pool, uint8_t *buf,
		    size_t cap)
{
	amqp_basic_properties_t *p = NULL, base;
	struct hbus_meta m;
	amqp_table_entry_t *ents;
	unsigned i, n_extra = 0;
	int rc, n0;

	if (hbus_meta_decode(meta, meta_len, &m) != 0 || m.header_count == 0) {
		if (cap < 2)
			return -1;
		buf[0] = buf[1] = 0; /* no properties */
		return 2;
	}
	for (i = 0; i < m.header_count; i++) {
		const struct hbus_header *h = &m.headers[i];
		void *dec = NULL;

		if (h->name_len != sizeof(BLOB_HEADER) - 1 || memcmp(h->name, BLOB_HEADER, h->name_len))
			continue;
		if (amqp_decode_properties(AMQP_BASIC_CLASS, pool,
					   (amqp_bytes_t){ .len = h->value_len,
							   .bytes = (void *)h->value }, &dec) == 0)
			p = dec;
		break;
	}
	if (!p) {
		memset(&base, 0, sizeof(base));
		p = &base;
	}
	/* Headers not already said: properties (when rebuilding), and table
	 * entries the blob lacks. */
	ents = amqp_pool_alloc(pool, sizeof(*ents) *
				     (m.header_count + 1 + (size_t)p->headers.num_entries));
	if (!ents)
		return -1;
	n0 = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? p->headers.num_entries : 0;
	if (n0)
		memcpy(ents, p->headers.entries, sizeof(*ents) * (size_t)n0);
	for (i = 0; i < m.header_count; i++) {
		const struct hbus_header *h = &m.headers[i];
		const struct pdef *d = pdef_named(h->name, h->name_len);
		amqp_table_t cur = { .num_entries = n0 + (int)n_extra, .entries = ents };

		if (h->name_len == sizeof(BLOB_HEADER) - 1 && !memcmp(h->name, BLOB_HEADER, h->name_len))
			continue;
		if (d && p == &base && set_prop(p, d, h))
			continue;
		if (d && p != &base)
			continue; /* the blob has the property as it was */
		if (table_has(&cur, h->name, h->name_len))
			continue;
		ents[n0 + n_extra].key = (amqp_bytes_t){ .len = h->name_len, .bytes = (void *)h->name };
		ents[n0 + n_extra].value.kind = AMQP_FIELD_KIND_UTF8;
		ents[n0 + n_extra].value.value.bytes = (amqp_bytes_t){ .len = h->value_len,
								       .bytes = (void *)h->value };
		n_extra++;
	}
	if (!table_has(&(amqp_table_t){ .num_entries = n0 + (int)n_extra, .entries = ents },
		       "x-death", 7) &&
	    x_death(&m, pool, &ents[n0 + n_extra]))
		n_extra++;
	if (n0 + n_extra) {
		p->_flags |= AMQP_BASIC_HEADERS_FLAG;
		p->headers.num_entries = n0 + (int)n_extra;
		p->headers.entries = ents;
	}
	rc = amqp_encode_properties(AMQP_BASIC_CLASS, p, (amqp_bytes_t){ .len = cap, .bytes = buf });
	return rc < 0 ? -1 : rc;
}
