/*
 * fuzz_wire.c - libFuzzer target: hbus_wire_decode + iteration + metadata
 * decode of every message, with properties checked on the way:
 *   - every view (meta, body) lies inside the input;
 *   - delivered + undelivered messages always add up to msg_count;
 *   - a metadata block that decodes re-encodes to the very same bytes
 *     (one message, one encoding);
 *   - the decoded messages, re-encoded into a new frame, decode back equal.
 * A violated property aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hbus.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static uint8_t reframe[1 << 17];

static void check_same(const struct hbus_wire_msg *a, const struct hbus_wire_msg *b)
{
	CHECK(a->seq == b->seq && a->send_ts_ns == b->send_ts_ns && a->flags == b->flags);
	CHECK(a->meta_len == b->meta_len && a->body_len == b->body_len);
	CHECK(memcmp(a->meta, b->meta, a->meta_len) == 0);
	CHECK(memcmp(a->body, b->body, a->body_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hbus_wire_frame f;
	struct hbus_wire_iter it;
	struct hbus_wire_msg m;
	struct hbus_meta meta;
	struct hbus_wire_encoder e;
	int rc, reencode = 1;
	unsigned delivered = 0;

	if (hbus_wire_decode(data, size, &f) != 0)
		return 0;
	CHECK(f.msgs == data + HBUS_WIRE_HDR_LEN && f.msgs_len == size - HBUS_WIRE_HDR_LEN);
	CHECK(hbus_wire_iter_init(&f, &it) == 0);
	CHECK(hbus_wire_encoder_init(&e, reframe, sizeof(reframe), f.stream_id, f.first_seq) == 0);

	while ((rc = hbus_wire_iter_next(&it, &m)) == 1) {
		CHECK(m.seq == f.first_seq + delivered);
		CHECK(m.meta >= data && m.meta + m.meta_len <= data + size);
		CHECK(m.body >= data && m.body + m.body_len <= data + size);
		delivered++;

		if (hbus_meta_decode(m.meta, m.meta_len, &meta) != 0) {
			reencode = 0;
			continue;
		}
		if (m.meta_len) {
			uint8_t canon[0x10000];
			CHECK(hbus_meta_size(&meta) == m.meta_len);
			CHECK(hbus_meta_encode(&meta, canon, sizeof(canon)) == m.meta_len);
			CHECK(memcmp(canon, m.meta, m.meta_len) == 0);
		}
		if (reencode && hbus_wire_encoder_add(&e, m.meta_len ? &meta : NULL, m.body,
						      m.body_len, m.send_ts_ns, m.flags) != 0)
			reencode = 0; /* larger than our scratch frame */
	}
	CHECK(rc == 0 || rc == -EBADMSG);
	CHECK(delivered + it.left == f.msg_count);
	CHECK(rc == -EBADMSG || it.left == 0);
	if (rc != 0 || !reencode)
		return 0;

	/* Round trip: the re-encoded frame yields the same messages. */
	struct hbus_wire_frame f2;
	struct hbus_wire_iter it1, it2;
	struct hbus_wire_msg m1, m2;
	int len = hbus_wire_encoder_finish(&e);
	CHECK(hbus_wire_decode(reframe, (size_t)len, &f2) == 0);
	CHECK(f2.msg_count == f.msg_count && f2.stream_id == f.stream_id);
	hbus_wire_iter_init(&f, &it1);
	hbus_wire_iter_init(&f2, &it2);
	while (hbus_wire_iter_next(&it1, &m1) == 1) {
		CHECK(hbus_wire_iter_next(&it2, &m2) == 1);
		check_same(&m1, &m2);
	}
	CHECK(hbus_wire_iter_next(&it2, &m2) == 0);
	return 0;
}
