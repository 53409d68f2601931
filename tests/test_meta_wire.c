/*
 * test_meta_wire.c - message metadata and wire frame codecs: exact byte
 * layout, round trips, and every way a frame can lie (truncation at every
 * byte, wrong magic/version, msg_count and length fields that disagree with
 * the bytes).  Truncated inputs are copied into exact-size heap buffers so
 * ASan (-Dsanitize=true) catches any read past len.
 */
#include <errno.h>
#include <stdlib.h>

#include "testutil.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static uint8_t *dup_exact(const uint8_t *p, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	cr_assert_not_null(b);
	if (len)
		memcpy(b, p, len);
	return b;
}

static void meta_simple(struct hbus_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->exchange = "md";
	m->exchange_len = 2;
	m->routing_key = "eq.AAPL";
	m->routing_key_len = 7;
	m->header_count = 2;
	m->headers[0] = (struct hbus_header){ .name = "venue", .name_len = 5,
					      .value = "XNAS", .value_len = 4 };
	m->headers[1] = (struct hbus_header){ .name = "k", .name_len = 1,
					      .value = "", .value_len = 0 };
}

static void assert_meta_eq(const struct hbus_meta *a, const struct hbus_meta *b)
{
	cr_assert_eq(a->exchange_len, b->exchange_len);
	cr_assert_eq(memcmp(a->exchange, b->exchange, a->exchange_len), 0);
	cr_assert_eq(a->routing_key_len, b->routing_key_len);
	cr_assert_eq(memcmp(a->routing_key, b->routing_key, a->routing_key_len), 0);
	cr_assert_eq(a->header_count, b->header_count);
	for (unsigned i = 0; i < a->header_count; i++) {
		cr_assert_eq(a->headers[i].name_len, b->headers[i].name_len);
		cr_assert_eq(memcmp(a->headers[i].name, b->headers[i].name, a->headers[i].name_len), 0);
		cr_assert_eq(a->headers[i].value_len, b->headers[i].value_len);
		cr_assert_eq(memcmp(a->headers[i].value, b->headers[i].value,
				    a->headers[i].value_len), 0);
	}
}

/* ------------------------------------------------------------- metadata */

Test(meta, exact_bytes)
{
	static const uint8_t want[] = {
		2, 'm', 'd', 7, 'e', 'q', '.', 'A', 'A', 'P', 'L', 2, 0,
		5, 'v', 'e', 'n', 'u', 'e', 4, 0, 'X', 'N', 'A', 'S',
		1, 'k', 0, 0,
	};
	struct hbus_meta m;
	uint8_t buf[64];

	meta_simple(&m);
	cr_assert_eq(hbus_meta_size(&m), (int)sizeof(want));
	cr_assert_eq(hbus_meta_encode(&m, buf, sizeof(buf)), (int)sizeof(want));
	cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
}

Test(meta, round_trip_random)
{
	static char pool[70000];
	for (size_t i = 0; i < sizeof(pool); i++)
		pool[i] = (char)('a' + i % 26);

	for (int iter = 0; iter < 500; iter++) {
		struct hbus_meta m, d;
		memset(&m, 0, sizeof(m));
		m.exchange = pool + rnd() % 100;
		m.exchange_len = (uint8_t)rnd();
		m.routing_key = pool + rnd() % 100;
		m.routing_key_len = (uint8_t)rnd();
		m.header_count = (uint16_t)(rnd() % (HBUS_HEADERS_MAX + 1));
		for (unsigned i = 0; i < m.header_count; i++) {
			m.headers[i].name = pool + rnd() % 100;
			m.headers[i].name_len = (uint8_t)rnd();
			m.headers[i].value = pool + rnd() % 100;
			m.headers[i].value_len = (uint16_t)(rnd() % 300);
		}
		int size = hbus_meta_size(&m);
		cr_assert_gt(size, 0);
		uint8_t *buf = malloc((size_t)size);
		cr_assert_eq(hbus_meta_encode(&m, buf, (size_t)size), size);
		cr_assert_eq(hbus_meta_decode(buf, (size_t)size, &d), 0);
		assert_meta_eq(&m, &d);
		free(buf);
	}
}

Test(meta, empty_block_is_empty_meta)
{
	struct hbus_meta d;
	memset(&d, 0xa5, sizeof(d));
	cr_assert_eq(hbus_meta_decode(NULL, 0, &d), 0);
	cr_assert_eq(d.exchange_len, 0);
	cr_assert_eq(d.routing_key_len, 0);
	cr_assert_eq(d.header_count, 0);
	cr_assert_str_eq(d.exchange, "");
}

Test(meta, every_truncation_is_badmsg)
{
	struct hbus_meta m, d;
	uint8_t full[64];

	meta_simple(&m);
	int size = hbus_meta_encode(&m, full, sizeof(full));
	cr_assert_gt(size, 0);
	for (int len = 1; len < size; len++) {
		uint8_t *b = dup_exact(full, (size_t)len);
		cr_assert_eq(hbus_meta_decode(b, (size_t)len, &d), -EBADMSG, "len %d", len);
		free(b);
	}
}

Test(meta, trailing_byte_is_badmsg)
{
	struct hbus_meta m, d;
	uint8_t full[64];

	meta_simple(&m);
	int size = hbus_meta_encode(&m, full, sizeof(full));
	full[size] = 0;
	cr_assert_eq(hbus_meta_decode(full, (size_t)size + 1, &d), -EBADMSG);
}

Test(meta, header_count_limit)
{
	/* empty exchange, empty key, header_count, then that many empty headers */
	static uint8_t buf[4 + (HBUS_HEADERS_MAX + 1) * 3];
	struct hbus_meta d;

	memset(buf, 0, sizeof(buf));
	buf[2] = HBUS_HEADERS_MAX;
	cr_assert_eq(hbus_meta_decode(buf, 4 + HBUS_HEADERS_MAX * 3, &d), 0);
	cr_assert_eq(d.header_count, HBUS_HEADERS_MAX);
	buf[2] = HBUS_HEADERS_MAX + 1;
	cr_assert_eq(hbus_meta_decode(buf, sizeof(buf), &d), -EBADMSG);
	buf[2] = 0xff;
	buf[3] = 0xff;
	cr_assert_eq(hbus_meta_decode(buf, sizeof(buf), &d), -EBADMSG);
}

Test(meta, value_length_past_end)
{
	/* one header: name "a", value_len 5 but only 4 value bytes */
	static const uint8_t buf[] = { 0, 0, 1, 0, 1, 'a', 5, 0, 'w', 'x', 'y', 'z' };
	struct hbus_meta d;
	cr_assert_eq(hbus_meta_decode(buf, sizeof(buf), &d), -EBADMSG);
}

Test(meta, size_limits_are_einval)
{
	static char big[0x10000];
	struct hbus_meta m;
	uint8_t buf[16];

	meta_simple(&m);
	m.header_count = HBUS_HEADERS_MAX + 1;
	cr_assert_eq(hbus_meta_size(&m), -EINVAL);
	cr_assert_eq(hbus_meta_encode(&m, buf, sizeof(buf)), -EINVAL);

	meta_simple(&m);
	m.exchange = NULL;
	cr_assert_eq(hbus_meta_size(&m), -EINVAL);

	/* two 65535-byte values overflow the u16 meta_len */
	meta_simple(&m);
	m.headers[0].value = big;
	m.headers[0].value_len = 0xffff;
	m.headers[1].value = big;
	m.headers[1].value_len = 0xffff;
	cr_assert_eq(hbus_meta_size(&m), -EINVAL);
	cr_assert_eq(hbus_meta_size(NULL), -EINVAL);
}

Test(meta, encode_enospc_at_every_short_cap)
{
	struct hbus_meta m;
	uint8_t buf[64];

	meta_simple(&m);
	int size = hbus_meta_size(&m);
	for (int cap = 0; cap < size; cap++)
		cr_assert_eq(hbus_meta_encode(&m, buf, (size_t)cap), -ENOSPC);
	cr_assert_eq(hbus_meta_encode(&m, buf, (size_t)size), size);
}

/* ---------------------------------------------------------- wire frames */

#define NMSG 200

struct sent {
	struct hbus_meta meta;
	uint8_t body[300];
	uint32_t body_len;
	uint64_t ts;
	uint16_t flags;
	int has_meta;
};

static struct sent sent[NMSG];
static char names[NMSG][16];

/* Encode n varied messages into buf; returns the frame length. */
static size_t build_frame(uint8_t *buf, size_t cap, unsigned n, uint32_t stream, uint64_t seq)
{
	struct hbus_wire_encoder e;
	cr_assert_eq(hbus_wire_encoder_init(&e, buf, cap, stream, seq), 0);
	for (unsigned i = 0; i < n; i++) {
		struct sent *s = &sent[i];
		memset(s, 0, sizeof(*s));
		snprintf(names[i], sizeof(names[i]), "key.%u", i);
		s->has_meta = i % 4 != 3;
		s->meta.exchange = "ex";
		s->meta.exchange_len = 2;
		s->meta.routing_key = names[i];
		s->meta.routing_key_len = (uint8_t)strlen(names[i]);
		s->meta.header_count = (uint16_t)(i % 3);
		for (unsigned h = 0; h < s->meta.header_count; h++)
			s->meta.headers[h] = (struct hbus_header){ .name = "h", .name_len = 1,
								   .value = names[i],
								   .value_len = (uint16_t)h };
		s->body_len = (i * 37) % sizeof(s->body);
		for (uint32_t b = 0; b < s->body_len; b++)
			s->body[b] = (uint8_t)(i ^ b);
		s->ts = 1700000000000000000ull + i;
		s->flags = (uint16_t)(i * 3);
		int rc = hbus_wire_encoder_add(&e, s->has_meta ? &s->meta : NULL, s->body,
					       s->body_len, s->ts, s->flags);
		cr_assert_eq(rc, 0, "add %u: %s", i, hbus_strerror(rc));
	}
	int len = hbus_wire_encoder_finish(&e);
	cr_assert_gt(len, 0);
	return (size_t)len;
}

static void assert_msg_is_sent(const struct hbus_wire_msg *m, unsigned i, uint64_t first_seq)
{
	const struct sent *s = &sent[i];
	struct hbus_meta d;

	cr_assert_eq(m->seq, first_seq + i);
	cr_assert_eq(m->send_ts_ns, s->ts);
	cr_assert_eq(m->flags, s->flags);
	cr_assert_eq(m->body_len, s->body_len);
	cr_assert_eq(memcmp(m->body, s->body, s->body_len), 0);
	cr_assert_eq(m->meta_len, s->has_meta ? hbus_meta_size(&s->meta) : 0);
	cr_assert_eq(hbus_meta_decode(m->meta, m->meta_len, &d), 0);
	if (s->has_meta)
		assert_meta_eq(&s->meta, &d);
	else
		cr_assert_eq(d.routing_key_len, 0);
}

static uint8_t frame[NMSG * 400];

Test(wire, header_bytes)
{
	size_t len = build_frame(frame, sizeof(frame), 1, 0x01020304u, 0x1122334455667788ull);
	static const uint8_t want[24] = {
		'H', 'B', 'U', 'S', 1, 0, 1, 0, 4, 3, 2, 1, 0, 0, 0, 0,
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	};
	cr_assert_eq(memcmp(frame, want, sizeof(want)), 0);
	/* record_len = 16 + meta_len + body_len, little-endian */
	uint32_t rl = (uint32_t)frame[24] | (uint32_t)frame[25] << 8 | (uint32_t)frame[26] << 16;
	cr_assert_eq(rl, 16u + (uint32_t)hbus_meta_size(&sent[0].meta) + sent[0].body_len);
	cr_assert_eq(len, 24u + 4u + rl);
}

Test(wire, round_trip_many)
{
	size_t len = build_frame(frame, sizeof(frame), NMSG, 7, 1000);
	struct hbus_wire_frame f;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;
	unsigned n = 0;
	int rc;

	cr_assert_eq(hbus_wire_decode(frame, len, &f), 0);
	cr_assert_eq(f.msg_count, NMSG);
	cr_assert_eq(f.stream_id, 7);
	cr_assert_eq(f.first_seq, 1000);
	cr_assert_eq(f.version, HBUS_WIRE_VERSION);
	cr_assert_eq(hbus_wire_iter_init(&f, &it), 0);
	while ((rc = hbus_wire_iter_next(&it, &m)) == 1)
		assert_msg_is_sent(&m, n++, 1000);
	cr_assert_eq(rc, 0);
	cr_assert_eq(n, NMSG);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 0, "end stays end");
}

/* Decoding any prefix of a valid frame either fails in decode, or yields
 * the intact messages in order and then -EBADMSG, with the undelivered
 * ones counted in it.left. */
Test(wire, every_truncation_point)
{
	const unsigned n = 12;
	size_t len = build_frame(frame, sizeof(frame), n, 1, 50);

	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *b = dup_exact(frame, cut);
		struct hbus_wire_frame f;
		struct hbus_wire_iter it;
		struct hbus_wire_msg m;
		unsigned got = 0;
		int rc = hbus_wire_decode(b, cut, &f);

		if (rc == 0) {
			cr_assert_eq(hbus_wire_iter_init(&f, &it), 0);
			while ((rc = hbus_wire_iter_next(&it, &m)) == 1)
				assert_msg_is_sent(&m, got++, 50);
			cr_assert_eq(rc, -EBADMSG, "cut %zu: a truncated frame must not end cleanly", cut);
			cr_assert_lt(got, n);
			cr_assert_eq(got + it.left, n, "undelivered are counted");
			cr_assert_eq(it.next_seq, 50 + got);
			cr_assert_eq(hbus_wire_iter_next(&it, &m), -EBADMSG, "error is sticky");
		} else {
			cr_assert_eq(rc, -EBADMSG, "cut %zu: rc %d", cut, rc);
		}
		free(b);
	}
}

Test(wire, bad_magic_and_version)
{
	size_t len = build_frame(frame, sizeof(frame), 3, 1, 1);
	struct hbus_wire_frame f;

	frame[0] = 'X';
	cr_assert_eq(hbus_wire_decode(frame, len, &f), -EPROTO);
	frame[0] = 'H';
	frame[4] = 2;
	cr_assert_eq(hbus_wire_decode(frame, len, &f), -EPROTONOSUPPORT);
	frame[4] = 0;
	cr_assert_eq(hbus_wire_decode(frame, len, &f), -EPROTONOSUPPORT);
	frame[4] = 1;
	cr_assert_eq(hbus_wire_decode(frame, len, &f), 0);
	cr_assert_eq(hbus_wire_decode(frame, 23, &f), -EBADMSG);
	cr_assert_eq(hbus_wire_decode(NULL, 0, &f), -EBADMSG);
	cr_assert_eq(hbus_wire_decode(frame, len, NULL), -EINVAL);
}

static void set_count(uint16_t c)
{
	frame[6] = (uint8_t)c;
	frame[7] = (uint8_t)(c >> 8);
}

Test(wire, msg_count_lies)
{
	size_t len = build_frame(frame, sizeof(frame), 3, 1, 1);
	struct hbus_wire_frame f;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;

	/* More than the bytes could ever hold: rejected up front. */
	set_count(0xffff);
	cr_assert_eq(hbus_wire_decode(frame, len, &f), -EBADMSG);

	/* More than present but plausible: 3 delivered, then -EBADMSG. */
	set_count(4);
	cr_assert_eq(hbus_wire_decode(frame, len, &f), 0);
	hbus_wire_iter_init(&f, &it);
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(hbus_wire_iter_next(&it, &m), 1);
		assert_msg_is_sent(&m, i, 1);
	}
	cr_assert_eq(hbus_wire_iter_next(&it, &m), -EBADMSG);
	cr_assert_eq(it.left, 1);

	/* Fewer: those are delivered, the trailing records ignored. */
	set_count(2);
	cr_assert_eq(hbus_wire_decode(frame, len, &f), 0);
	hbus_wire_iter_init(&f, &it);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 1);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 1);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 0);
}

Test(wire, heartbeat_has_no_messages)
{
	struct hbus_wire_encoder e;
	struct hbus_wire_frame f;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;

	cr_assert_eq(hbus_wire_encoder_init(&e, frame, sizeof(frame), 9, 77), 0);
	cr_assert_eq(hbus_wire_encoder_finish(&e), (int)HBUS_WIRE_HDR_LEN);
	cr_assert_eq(hbus_wire_decode(frame, HBUS_WIRE_HDR_LEN, &f), 0);
	cr_assert_eq(f.msg_count, 0);
	cr_assert_eq(f.first_seq, 77);
	hbus_wire_iter_init(&f, &it);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 0);
}

/* Patch the first record's u16/u32 fields (offsets inside the record). */
static void put32(size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		frame[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static int first_record_rc(size_t len)
{
	struct hbus_wire_frame f;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;
	cr_assert_eq(hbus_wire_decode(frame, len, &f), 0);
	hbus_wire_iter_init(&f, &it);
	return hbus_wire_iter_next(&it, &m);
}

Test(wire, record_lengths_that_lie)
{
	size_t len = build_frame(frame, sizeof(frame), 2, 1, 1);
	const size_t r = HBUS_WIRE_HDR_LEN;
	uint32_t rl = (uint32_t)frame[r] | (uint32_t)frame[r + 1] << 8;
	uint16_t ml = (uint16_t)(frame[r + 12] | frame[r + 13] << 8);
	uint32_t bl = (uint32_t)frame[r + 16] | (uint32_t)frame[r + 17] << 8;
	cr_assert_eq(rl, 16 + ml + bl);

	cr_assert_eq(first_record_rc(len), 1);
	frame[r + 12] = (uint8_t)(ml + 1); /* meta runs past the record */
	cr_assert_eq(first_record_rc(len), -EBADMSG);
	frame[r + 12] = (uint8_t)ml;
	put32(r + 16, 0xffffffffu);        /* body_len that would wrap 32-bit math */
	cr_assert_eq(first_record_rc(len), -EBADMSG);
	put32(r + 16, bl);
	put32(r, 15);                      /* shorter than the fixed fields */
	cr_assert_eq(first_record_rc(len), -EBADMSG);
	put32(r, (uint32_t)len);           /* past the frame */
	cr_assert_eq(first_record_rc(len), -EBADMSG);
	put32(r, 0xffffffffu);
	cr_assert_eq(first_record_rc(len), -EBADMSG);
	put32(r, rl);
	cr_assert_eq(first_record_rc(len), 1);
}

/* record_len larger than its fields: the extra bytes are skipped and the
 * next record still decodes (forward-compatible per-record extensions). */
Test(wire, record_extension_bytes_are_skipped)
{
	static uint8_t a[1024], b[1024];
	size_t len = build_frame(a, sizeof(a), 2, 1, 1);
	const size_t r = HBUS_WIRE_HDR_LEN;
	uint32_t rl = (uint32_t)a[r] | (uint32_t)a[r + 1] << 8;

	/* b = header, record 0 with 5 extra bytes, record 1 */
	memcpy(b, a, r + 4 + rl);
	memset(b + r + 4 + rl, 0xee, 5);
	memcpy(b + r + 4 + rl + 5, a + r + 4 + rl, len - (r + 4 + rl));
	b[r] = (uint8_t)(rl + 5);

	struct hbus_wire_frame f;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;
	cr_assert_eq(hbus_wire_decode(b, len + 5, &f), 0);
	hbus_wire_iter_init(&f, &it);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 1);
	assert_msg_is_sent(&m, 0, 1);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 1);
	assert_msg_is_sent(&m, 1, 1);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 0);
}

Test(wire, encoder_enospc_keeps_a_valid_frame)
{
	static uint8_t small[512];
	struct hbus_wire_encoder e;
	struct hbus_meta meta;
	uint8_t body[100];
	unsigned added = 0;
	int rc;

	memset(body, 0x5a, sizeof(body));
	meta_simple(&meta);
	cr_assert_eq(hbus_wire_encoder_init(&e, small, sizeof(small), 3, 10), 0);
	while ((rc = hbus_wire_encoder_add(&e, &meta, body, sizeof(body), added, 0)) == 0)
		added++;
	cr_assert_eq(rc, -ENOSPC);
	cr_assert_gt(added, 0);
	size_t before = e.len;
	/* A smaller message still fits in what is left, or fails cleanly. */
	rc = hbus_wire_encoder_add(&e, NULL, body, 4, 99, 0);
	cr_assert(rc == 0 || rc == -ENOSPC);
	unsigned total = added + (rc == 0);
	cr_assert(rc == 0 ? e.len == before + 24 : e.len == before);

	int len = hbus_wire_encoder_finish(&e);
	cr_assert_leq(len, (int)sizeof(small));
	struct hbus_wire_frame f;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;
	unsigned n = 0;
	cr_assert_eq(hbus_wire_decode(small, (size_t)len, &f), 0);
	cr_assert_eq(f.msg_count, total);
	hbus_wire_iter_init(&f, &it);
	while ((rc = hbus_wire_iter_next(&it, &m)) == 1) {
		cr_assert_eq(m.send_ts_ns, n < added ? n : 99);
		n++;
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(n, total);
}

Test(wire, encoder_count_limit)
{
	size_t cap = HBUS_WIRE_HDR_LEN + 0x10000u * HBUS_WIRE_MSG_HDR_LEN;
	uint8_t *buf = malloc(cap);
	struct hbus_wire_encoder e;
	cr_assert_eq(hbus_wire_encoder_init(&e, buf, cap, 1, 0), 0);
	for (unsigned i = 0; i < 0xffffu; i++)
		cr_assert_eq(hbus_wire_encoder_add(&e, NULL, NULL, 0, 0, 0), 0);
	cr_assert_eq(hbus_wire_encoder_add(&e, NULL, NULL, 0, 0, 0), -ENOSPC);
	struct hbus_wire_frame f;
	cr_assert_eq(hbus_wire_decode(buf, (size_t)hbus_wire_encoder_finish(&e), &f), 0);
	cr_assert_eq(f.msg_count, 0xffff);
	free(buf);
}

Test(wire, encoder_bad_arguments)
{
	struct hbus_wire_encoder e;
	struct hbus_meta meta;
	uint8_t buf[64];

	cr_assert_eq(hbus_wire_encoder_init(&e, buf, 23, 1, 0), -ENOSPC);
	cr_assert_eq(hbus_wire_encoder_init(&e, NULL, 64, 1, 0), -EINVAL);
	cr_assert_eq(hbus_wire_encoder_init(&e, buf, sizeof(buf), 1, 0), 0);
	meta_simple(&meta);
	meta.header_count = HBUS_HEADERS_MAX + 1;
	cr_assert_eq(hbus_wire_encoder_add(&e, &meta, "x", 1, 0, 0), -EINVAL);
	cr_assert_eq(hbus_wire_encoder_add(&e, NULL, NULL, 1, 0, 0), -EINVAL);
	cr_assert_eq(e.len, HBUS_WIRE_HDR_LEN, "failed adds leave the frame alone");
	cr_assert_eq(e.count, 0);
}

Test(wire, null_arguments)
{
	struct hbus_wire_frame f = { 0 };
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;
	struct hbus_meta d;

	cr_assert_eq(hbus_wire_iter_init(NULL, &it), -EINVAL);
	cr_assert_eq(hbus_wire_iter_init(&f, NULL), -EINVAL);
	cr_assert_eq(hbus_wire_iter_init(&f, &it), 0);
	cr_assert_eq(hbus_wire_iter_next(&it, &m), 0);
	cr_assert_eq(hbus_wire_iter_next(NULL, &m), -EINVAL);
	cr_assert_eq(hbus_wire_iter_next(&it, NULL), -EINVAL);
	cr_assert_eq(hbus_wire_encoder_finish(NULL), -EINVAL);
	cr_assert_eq(hbus_meta_decode(NULL, 4, &d), -EINVAL);
	cr_assert_eq(hbus_meta_decode((const uint8_t *)"\0\0\0\0", 4, NULL), -EINVAL);
}

/* ---------------------------------------------------------------- util */

Test(util, strerror_texts)
{
	cr_assert_str_eq(hbus_strerror(-ENOBUFS), "queue full");
	cr_assert_str_eq(hbus_strerror(ENOBUFS), "queue full");
	cr_assert_str_eq(hbus_strerror(-EMSGSIZE), "message larger than slot");
	cr_assert_str_eq(hbus_strerror(-EPROTO), "not an hbus file / bad magic");
	cr_assert_str_eq(hbus_strerror(-EPROTONOSUPPORT), "unsupported layout version");
	cr_assert_str_eq(hbus_strerror(-EBADMSG), "malformed");
	cr_assert_str_eq(hbus_strerror(-ESTALE), "delivery tag not held");
	cr_assert(strstr(hbus_strerror(-EBUSY), "prefetch limit reached"));
	cr_assert_str_eq(hbus_strerror(-E2BIG), "routed to too many queues/exchanges");
	cr_assert_str_eq(hbus_strerror(E2BIG), "routed to too many queues/exchanges");
	/* Every errno hbus returns on its own has hbus wording, not libc's. */
	static const int own[] = { EFBIG, EOVERFLOW, ERANGE, EREMOTEIO, ENOTCONN, ECONNRESET };
	for (unsigned i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		cr_assert_str_neq(hbus_strerror(-own[i]), strerrordesc_np(own[i]), "errno %d", own[i]);
	cr_assert_str_eq(hbus_strerror(-ENOENT), "No such file or directory");
	cr_assert_str_eq(hbus_strerror(-99999), "unknown error");
}
