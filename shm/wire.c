/*
 * wire.c - the hbus UDP frame: a 24-byte header and a run of message records.
 *
 * Byte layout and the compatibility rules are in docs/PROTOCOL.md; this file
 * is the reference implementation.  Decoding is zero-copy (views into the
 * caller's buffer) and bounds-checked before every read; the per-message path
 * is four compares.  Decisions worth knowing:
 *
 *  - msg_count 0 is valid: a heartbeat that carries first_seq = the stream's
 *    next sequence number, so a receiver notices messages lost at the tail of
 *    a burst without waiting for the next data frame.
 *  - record_len may exceed 16 + meta_len + body_len: decoders skip the extra
 *    bytes (room for per-record extensions within version 1); v1 encoders
 *    never write any.  Bytes after the last record are ignored likewise.
 *  - A frame whose msg_count cannot fit (msg_count * 20 bytes > payload) is
 *    rejected whole by hbus_wire_decode; a record that runs past the frame
 *    stops iteration with -EBADMSG, after the intact records before it.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "hbus.h"
#include "le_bytes.h"

/* Frame header offsets. */
#define FH_MAGIC     0
#define FH_VERSION   4
#define FH_FLAGS     5
#define FH_COUNT     6
#define FH_STREAM    8
#define FH_RESERVED 12
#define FH_SEQ      16

/* Message record offsets (record_len counts the bytes after itself). */
#define MR_LEN       0
#define MR_TS        4
#define MR_META_LEN 12
#define MR_FLAGS    14
#define MR_BODY_LEN 16
#define MR_FIXED    (HBUS_WIRE_MSG_HDR_LEN - 4u) /* fixed bytes counted in record_len */

_Static_assert(FH_SEQ + 8 == HBUS_WIRE_HDR_LEN, "frame header is 24 bytes");
_Static_assert(MR_BODY_LEN + 4 == HBUS_WIRE_MSG_HDR_LEN, "record header is 20 bytes");

int hbus_wire_decode(const uint8_t *buf, size_t len, struct hbus_wire_frame *f)
{
	if (!f || (!buf && len))
		return -EINVAL;
	if (len < HBUS_WIRE_HDR_LEN)
		return -EBADMSG;
	if (hbus_ld_le32(buf + FH_MAGIC) != HBUS_WIRE_MAGIC)
		return -EPROTO;
	if (buf[FH_VERSION] != HBUS_WIRE_VERSION)
		return -EPROTONOSUPPORT;

	uint16_t count = hbus_ld_le16(buf + FH_COUNT);
	size_t msgs_len = len - HBUS_WIRE_HDR_LEN;
	if ((size_t)count * HBUS_WIRE_MSG_HDR_LEN > msgs_len)
		return -EBADMSG;

	f->version = buf[FH_VERSION];
	f->flags = buf[FH_FLAGS];
	f->msg_count = count;
	f->stream_id = hbus_ld_le32(buf + FH_STREAM);
	f->first_seq = hbus_ld_le64(buf + FH_SEQ);
	f->msgs = buf + HBUS_WIRE_HDR_LEN;
	f->msgs_len = msgs_len;
	return 0;
}

int hbus_wire_iter_init(const struct hbus_wire_frame *f, struct hbus_wire_iter *it)
{
	if (!f || !it || (!f->msgs && f->msgs_len))
		return -EINVAL;
	it->p = f->msgs;
	it->end = f->msgs + f->msgs_len;
	it->next_seq = f->first_seq;
	it->left = f->msg_count;
	return 0;
}

/*
 * On -EBADMSG the iterator is parked at the end of the frame with it->left
 * still counting the undelivered messages (the bad one included) and
 * it->next_seq naming the first of them, so the caller can count the loss;
 * later calls keep returning -EBADMSG.  (-EINVAL only for NULL arguments.)
 */
int hbus_wire_iter_next(struct hbus_wire_iter *it, struct hbus_wire_msg *m)
{
	if (!it || !m)
		return -EINVAL;
	if (it->left == 0)
		return 0;

	const uint8_t *p = it->p;
	size_t avail = (size_t)(it->end - p);
	if (avail < HBUS_WIRE_MSG_HDR_LEN)
		goto bad;

	uint32_t record_len = hbus_ld_le32(p + MR_LEN);
	uint16_t meta_len = hbus_ld_le16(p + MR_META_LEN);
	uint32_t body_len = hbus_ld_le32(p + MR_BODY_LEN);
	if (record_len > avail - 4u)
		goto bad;
	/* 64-bit sum: body_len up to 2^32-1 must not wrap.  Also rejects
	 * record_len < 16. */
	if ((uint64_t)MR_FIXED + meta_len + body_len > record_len)
		goto bad;

	m->seq = it->next_seq;
	m->send_ts_ns = hbus_ld_le64(p + MR_TS);
	m->flags = hbus_ld_le16(p + MR_FLAGS);
	m->meta_len = meta_len;
	m->body_len = body_len;
	m->meta = p + HBUS_WIRE_MSG_HDR_LEN;
	m->body = m->meta + meta_len;

	it->p = p + 4u + record_len;
	it->next_seq++;
	it->left--;
	return 1;

bad:
	it->p = it->end;
	return -EBADMSG;
}

int hbus_wire_encoder_init(struct hbus_wire_encoder *e, uint8_t *buf, size_t cap,
			   uint32_t stream_id, uint64_t first_seq)
{
	if (!e || !buf)
		return -EINVAL;
	if (cap < HBUS_WIRE_HDR_LEN)
		return -ENOSPC;
	if (cap > INT_MAX) /* finish() returns the length as an int */
		cap = INT_MAX;

	hbus_st_le32(buf + FH_MAGIC, HBUS_WIRE_MAGIC);
	buf[FH_VERSION] = HBUS_WIRE_VERSION;
	buf[FH_FLAGS] = 0;
	hbus_st_le16(buf + FH_COUNT, 0);
	hbus_st_le32(buf + FH_STREAM, stream_id);
	hbus_st_le32(buf + FH_RESERVED, 0);
	hbus_st_le64(buf + FH_SEQ, first_seq);

	e->buf = buf;
	e->cap = cap;
	e->len = HBUS_WIRE_HDR_LEN;
	e->count = 0;
	return 0;
}

/*
 * The header's msg_count is rewritten after every add, so buf[0..len) is a
 * complete, valid frame at all times; a message that does not fit leaves it
 * untouched.
 */
int hbus_wire_encoder_add(struct hbus_wire_encoder *e, const struct hbus_meta *meta,
			  const void *body, uint32_t body_len, uint64_t send_ts_ns, uint16_t flags)
{
	if (!e || !e->buf || (!body && body_len))
		return -EINVAL;
	int meta_len = meta ? hbus_meta_size(meta) : 0;
	if (meta_len < 0)
		return meta_len;
	if (e->count == UINT16_MAX)
		return -ENOSPC;

	uint64_t need = (uint64_t)HBUS_WIRE_MSG_HDR_LEN + (uint64_t)meta_len + body_len;
	if (e->len > e->cap || need > e->cap - e->len)
		return -ENOSPC;

	uint8_t *p = e->buf + e->len;
	hbus_st_le32(p + MR_LEN, (uint32_t)(need - 4u));
	hbus_st_le64(p + MR_TS, send_ts_ns);
	hbus_st_le16(p + MR_META_LEN, (uint16_t)meta_len);
	hbus_st_le16(p + MR_FLAGS, flags);
	hbus_st_le32(p + MR_BODY_LEN, body_len);
	p += HBUS_WIRE_MSG_HDR_LEN;
	if (meta_len) {
		int rc = hbus_meta_encode(meta, p, (size_t)meta_len);
		if (rc < 0)
			return rc;
		p += meta_len;
	}
	if (body_len)
		memcpy(p, body, body_len);

	e->len += (size_t)need;
	e->count++;
	hbus_st_le16(e->buf + FH_COUNT, e->count);
	return 0;
}

int hbus_wire_encoder_finish(struct hbus_wire_encoder *e)
{
	if (!e || !e->buf)
		return -EINVAL;
	return (int)e->len;
}
