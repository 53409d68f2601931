/*
 * meta.c - the message metadata block: exchange, routing key, headers.
 *
 * The same bytes travel in a wire frame and sit in a queue slot, so a
 * message crosses the dataplane without being re-encoded.  Layout
 * (docs/PROTOCOL.md, "Metadata block"), little-endian, no padding:
 *
 *   u8 exchange_len, exchange, u8 key_len, key, u16 header_count,
 *   header_count x { u8 name_len, name, u16 value_len, value }
 *
 * A zero-length block is the empty metadata (exchange "", key "", no
 * headers).  A non-empty block must be consumed exactly: trailing bytes
 * are malformed, so that one message has exactly one encoding.
 *
 * Decoding returns views into the caller's buffer (strings are NOT
 * NUL-terminated) and checks every length against the bytes that remain
 * before it reads them.
 */
#include <errno.h>
#include <string.h>

#include "hbus.h"
#include "le_bytes.h"

/* meta_len is a u16 in wire records and queue slots. */
#define META_LEN_MAX 0xffffu

/* Smallest non-empty block: two empty names and a zero header count. */
#define META_MIN_LEN 4u

int hbus_meta_size(const struct hbus_meta *m)
{
	if (!m || m->header_count > HBUS_HEADERS_MAX)
		return -EINVAL;
	if ((m->exchange_len && !m->exchange) || (m->routing_key_len && !m->routing_key))
		return -EINVAL;

	size_t size = META_MIN_LEN + m->exchange_len + m->routing_key_len;
	for (unsigned i = 0; i < m->header_count; i++) {
		const struct hbus_header *h = &m->headers[i];
		if ((h->name_len && !h->name) || (h->value_len && !h->value))
			return -EINVAL;
		size += 3u + h->name_len + h->value_len;
	}
	if (size > META_LEN_MAX)
		return -EINVAL;
	return (int)size;
}

int hbus_meta_encode(const struct hbus_meta *m, uint8_t *buf, size_t cap)
{
	int size = hbus_meta_size(m);
	if (size < 0)
		return size;
	if (!buf || (size_t)size > cap)
		return -ENOSPC;

	uint8_t *p = buf;
	*p++ = m->exchange_len;
	if (m->exchange_len)
		memcpy(p, m->exchange, m->exchange_len);
	p += m->exchange_len;
	*p++ = m->routing_key_len;
	if (m->routing_key_len)
		memcpy(p, m->routing_key, m->routing_key_len);
	p += m->routing_key_len;
	hbus_st_le16(p, m->header_count);
	p += 2;
	for (unsigned i = 0; i < m->header_count; i++) {
		const struct hbus_header *h = &m->headers[i];
		*p++ = h->name_len;
		if (h->name_len)
			memcpy(p, h->name, h->name_len);
		p += h->name_len;
		hbus_st_le16(p, h->value_len);
		p += 2;
		if (h->value_len)
			memcpy(p, h->value, h->value_len);
		p += h->value_len;
	}
	return size;
}

/*
 * Hot path (once per routed message).  With no headers this is three length
 * compares; every compare is "bytes left < bytes needed" on size_t, which
 * cannot overflow because each needed amount is at most 0xffff + 3.
 */
int hbus_meta_decode(const uint8_t *buf, size_t len, struct hbus_meta *m)
{
	if (!m || (!buf && len))
		return -EINVAL;
	if (len == 0) {
		m->exchange = m->routing_key = "";
		m->exchange_len = m->routing_key_len = 0;
		m->header_count = 0;
		return 0;
	}

	const uint8_t *p = buf;
	size_t left = len;

	/* exchange_len + exchange + key_len */
	if (left < 2u + p[0])
		return -EBADMSG;
	m->exchange_len = p[0];
	m->exchange = (const char *)p + 1;
	p += 1u + m->exchange_len;
	left -= 1u + m->exchange_len;

	/* key_len + key + header_count */
	if (left < 3u + p[0])
		return -EBADMSG;
	m->routing_key_len = p[0];
	m->routing_key = (const char *)p + 1;
	p += 1u + m->routing_key_len;
	left -= 1u + m->routing_key_len;

	uint16_t count = hbus_ld_le16(p);
	p += 2;
	left -= 2;
	if (count > HBUS_HEADERS_MAX)
		return -EBADMSG;
	m->header_count = count;

	for (unsigned i = 0; i < count; i++) {
		struct hbus_header *h = &m->headers[i];
		/* name_len + name + value_len */
		if (left < 1u || left < 3u + p[0])
			return -EBADMSG;
		h->name_len = p[0];
		h->name = (const char *)p + 1;
		p += 1u + h->name_len;
		h->value_len = hbus_ld_le16(p);
		p += 2;
		left -= 3u + h->name_len;
		if (left < h->value_len)
			return -EBADMSG;
		h->value = (const char *)p;
		p += h->value_len;
		left -= h->value_len;
	}

	/* One message, one encoding: nothing may follow the last header. */
	if (left != 0)
		return -EBADMSG;
	return 0;
}
