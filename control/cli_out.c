/*
 * cli_out.c - what `hbus` prints: messages as JSON lines, text tables.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cli_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t b = p[i];
		uint32_t cp;
		unsigned len, k;

		if (b == 0)
			return 0;
		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf) {
			len = 2;
			cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			len = 3;
			cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			len = 4;
			cp = b & 0x07;
		} else {
			return 0; /* continuation byte or overlong lead */
		}
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, past U+10FFFF. */
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

char *cli_base64(const uint8_t *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Bytes as a JSON string, or as base64 when they are not UTF-8 text;
 * *b64 says which. */
static json_t *bytes_json(const void *p, size_t n, int *b64)
{
	char *s;
	json_t *j;

	*b64 = 0;
	if (cli_utf8_valid(p, n))
		return json_stringn_nocheck(n ? p : "", n);
	s = cli_base64(p, n);
	j = s ? json_string(s) : NULL;
	free(s);
	*b64 = 1;
	return j;
}

json_t *cli_msg_json(const struct hbus_msg *m, uint64_t now_ns)
{
	struct hbus_meta meta;
	json_t *o = json_object(), *h = json_object(), *h64 = NULL;
	int b64;
	unsigned i;

	if (!o || !h)
		goto fail;
	if (hbus_meta_decode(m->meta, m->meta_len, &meta) != 0) {
		/* Cannot happen for messages hbus enqueued; say so rather than hide it. */
		hbus_meta_decode(NULL, 0, &meta);
		json_object_set_new(o, "meta_error", json_string("malformed metadata"));
	}
	json_object_set_new(o, "exchange", bytes_json(meta.exchange, meta.exchange_len, &b64));
	json_object_set_new(o, "routing_key",
			    bytes_json(meta.routing_key, meta.routing_key_len, &b64));
	for (i = 0; i < meta.header_count; i++) {
		const struct hbus_header *hd = &meta.headers[i];
		char name[256];

		memcpy(name, hd->name, hd->name_len);
		name[hd->name_len] = '\0';
		if (!cli_utf8_valid((const uint8_t *)name, hd->name_len))
			continue; /* not representable as a JSON key; cannot come from hbus */
		json_object_set_new(h, name, bytes_json(hd->value, hd->value_len, &b64));
		if (b64) {
			if (!h64)
				h64 = json_array();
			json_array_append_new(h64, json_string(name));
		}
	}
	json_object_set_new(o, "headers", h);
	h = NULL;
	if (h64)
		json_object_set_new(o, "headers_base64", h64);
	json_object_set_new(o, "redelivered", json_boolean(m->flags & HBUS_MSG_REDELIVERED));
	json_object_set_new(o, "body", bytes_json(m->body, m->body_len, &b64));
	if (b64)
		json_object_set_new(o, "body_encoding", json_string("base64"));
	json_object_set_new(o, "body_len", json_integer(m->body_len));
	if (m->send_ts_ns) {
		json_object_set_new(o, "send_ts_ns", json_integer((json_int_t)m->send_ts_ns));
		json_object_set_new(o, "latency_ns",
				    json_integer((json_int_t)(now_ns - m->send_ts_ns)));
	}
	return o;
fail:
	json_decref(o);
	json_decref(h);
	return NULL;
}

char *cli_cell_text(json_t *v)
{
	char buf[64];

	if (!v)
		return strdup("");
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return strdup(buf);
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.6g", json_real_value(v));
		return strdup(buf);
	case JSON_TRUE:
		return strdup("yes");
	case JSON_FALSE:
		return strdup("no");
	case JSON_NULL:
		return strdup("");
	default:
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	}
}

void cli_print_table(FILE *f, json_t *items, const char *const *columns)
{
	json_t *cols = json_array(), *it;
	size_t i, j, ncol, *width;
	const char *key;
	json_t *v;

	if (!cols || !json_is_array(items)) {
		json_decref(cols);
		return;
	}
	/* Preferred columns first, when some item has them. */
	for (i = 0; columns && columns[i]; i++) {
		int present = 0;
		json_array_foreach(items, j, it)
			present |= json_object_get(it, columns[i]) != NULL;
		if (present)
			json_array_append_new(cols, json_string(columns[i]));
	}
	json_array_foreach(items, i, it) {
		json_object_foreach(it, key, v) {
			int known = 0;
			for (j = 0; j < json_array_size(cols) && !known; j++)
				known = !strcmp(json_string_value(json_array_get(cols, j)), key);
			if (!known)
				json_array_append_new(cols, json_string(key));
		}
	}
	ncol = json_array_size(cols);
	width = calloc(ncol ? ncol : 1, sizeof(*width));
	if (!width) {
		json_decref(cols);
		return;
	}
	for (j = 0; j < ncol; j++)
		width[j] = strlen(json_string_value(json_array_get(cols, j)));
	json_array_foreach(items, i, it) {
		for (j = 0; j < ncol; j++) {
			char *t = cli_cell_text(json_object_get(it, json_string_value(json_array_get(cols, j))));
			if (t && strlen(t) > width[j])
				width[j] = strlen(t);
			free(t);
		}
	}
	for (j = 0; j < ncol; j++) {
		const char *name = json_string_value(json_array_get(cols, j));
		for (const char *p = name; *p; p++)
			fputc(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, f);
		fprintf(f, "%*s", j + 1 < ncol ? (int)(width[j] - strlen(name) + 2) : 0, "");
	}
	fputc('\n', f);
	json_array_foreach(items, i, it) {
		for (j = 0; j < ncol; j++) {
			char *t = cli_cell_text(json_object_get(it, json_string_value(json_array_get(cols, j))));
			if (j + 1 < ncol)
				fprintf(f, "%-*s  ", (int)width[j], t ? t : "");
			else
				fprintf(f, "%s", t ? t : "");
			free(t);
		}
		fputc('\n', f);
	}
	free(width);
	json_decref(cols);
}
