/* frame.c - see frame.h. */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

int gbuf_reserve(struct gbuf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->head - b->len >= n)
		return 0;
	if (b->head && b->cap - b->len >= n) {
		memmove(b->p, b->p + b->head, b->len);
		b->head = 0;
		return 0;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	if (b->head) {
		memmove(b->p, b->p + b->head, b->len);
		b->head = 0;
	}
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

void gbuf_consume(struct gbuf *b, size_t n)
{
	if (n >= b->len) {
		b->head = b->len = 0;
		return;
	}
	b->head += n;
	b->len -= n;
}

void gbuf_free(struct gbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int frame_parse(const uint8_t *p, size_t n, uint32_t frame_max, struct frame *f)
{
	uint32_t size;

	if (n < FRAME_HDR)
		return 0;
	size = rd32(p + 3);
	if (size > frame_max - FRAME_OVERHEAD)
		return -AMQP_FRAME_ERROR;
	if (n < FRAME_HDR + (size_t)size + 1)
		return 0;
	if (p[FRAME_HDR + size] != FRAME_END)
		return -AMQP_FRAME_ERROR;
	f->type = p[0];
	f->channel = rd16(p + 1);
	f->payload = p + FRAME_HDR;
	f->size = size;
	return (int)(FRAME_HDR + size + 1);
}

int frame_method(const struct frame *f, amqp_pool_t *pool, amqp_method_number_t *id,
		 void **decoded)
{
	amqp_bytes_t args;
	int rc;

	if (f->size < 4)
		return -AMQP_SYNTAX_ERROR;
	*id = rd32(f->payload);
	args.bytes = (void *)(f->payload + 4);
	args.len = f->size - 4;
	rc = amqp_decode_method(*id, pool, args, decoded);
	if (rc == AMQP_STATUS_UNKNOWN_METHOD || rc == AMQP_STATUS_UNKNOWN_CLASS)
		return -AMQP_NOT_IMPLEMENTED;
	if (rc < 0)
		return -AMQP_SYNTAX_ERROR;
	return 0;
}

int frame_content_header(const struct frame *f, uint16_t *class_id, uint64_t *body_size,
			 const uint8_t **props, size_t *props_len)
{
	if (f->size < 14)
		return -AMQP_SYNTAX_ERROR;
	*class_id = rd16(f->payload);
	*body_size = (uint64_t)rd32(f->payload + 4) << 32 | rd32(f->payload + 8);
	*props = f->payload + 12;
	*props_len = f->size - 12;
	return 0;
}

/* Header of a frame whose payload length is known only afterwards. */
static uint8_t *begin(struct gbuf *b, uint8_t type, uint16_t ch, size_t room)
{
	uint8_t *p;

	if (gbuf_reserve(b, FRAME_OVERHEAD + room))
		return NULL;
	p = gbuf_end(b);
	p[0] = type;
	wr16(p + 1, ch);
	return p;
}

static void finish(struct gbuf *b, uint8_t *p, size_t size)
{
	wr32(p + 3, (uint32_t)size);
	p[FRAME_HDR + size] = FRAME_END;
	b->len += FRAME_OVERHEAD + size;
}

int frame_put_method(struct gbuf *b, uint16_t ch, amqp_method_number_t id, void *decoded)
{
	size_t room = 512;
	amqp_bytes_t out;
	uint8_t *p;
	int rc;

	for (;;) {
		p = begin(b, AMQP_FRAME_METHOD, ch, room);
		if (!p)
			return -ENOMEM;
		wr32(p + FRAME_HDR, id);
		out.bytes = p + FRAME_HDR + 4;
		out.len = room - 4;
		rc = amqp_encode_method(id, decoded, out);
		if (rc >= 0)
			break;
		if (rc != AMQP_STATUS_BAD_AMQP_DATA && rc != AMQP_STATUS_TABLE_TOO_BIG)
			return -EINVAL;
		if (room >= (1u << 20))
			return -EINVAL;
		room *= 4; /* a large table: try with more room */
	}
	finish(b, p, 4 + (size_t)rc);
	return 0;
}

int frame_put_content(struct gbuf *b, uint16_t ch, const uint8_t *props, size_t props_len,
		      const void *body, uint64_t len, uint32_t frame_max)
{
	const uint8_t *src = body;
	size_t chunk = frame_max - FRAME_OVERHEAD;
	uint8_t *p = begin(b, AMQP_FRAME_HEADER, ch, 12 + props_len);

	if (!p)
		return -ENOMEM;
	wr16(p + FRAME_HDR, AMQP_BASIC_CLASS);
	wr16(p + FRAME_HDR + 2, 0);
	wr32(p + FRAME_HDR + 4, (uint32_t)(len >> 32));
	wr32(p + FRAME_HDR + 8, (uint32_t)len);
	memcpy(p + FRAME_HDR + 12, props, props_len);
	finish(b, p, 12 + props_len);
	while (len) {
		size_t n = len < chunk ? (size_t)len : chunk;

		p = begin(b, AMQP_FRAME_BODY, ch, n);
		if (!p)
			return -ENOMEM;
		memcpy(p + FRAME_HDR, src, n);
		finish(b, p, n);
		src += n;
		len -= n;
	}
	return 0;
}

int frame_put_heartbeat(struct gbuf *b)
{
	uint8_t *p = begin(b, AMQP_FRAME_HEARTBEAT, 0, 0);

	if (!p)
		return -ENOMEM;
	finish(b, p, 0);
	return 0;
}
