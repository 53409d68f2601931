/*
 * frame.h - AMQP 0-9-1 frames on a byte stream.
 *
 * A frame is type (1) channel (2) size (4) payload (size) 0xCE.  Method
 * arguments and content properties are decoded and encoded by librabbitmq's
 * public codecs (amqp_decode_method / amqp_encode_method /
 * amqp_decode_properties / amqp_encode_properties); the framing around them
 * is here, bounds-checked, so a stream of any bytes yields frames, "need
 * more", or an AMQP error code - never a read past the buffer.
 */
#ifndef HBUS_AMQP_FRAME_H
#define HBUS_AMQP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "gw.h"

#define FRAME_HDR 7u
#define FRAME_OVERHEAD 8u /* header + end byte */
#define FRAME_END 0xCE
#define FRAME_MIN_SIZE 4096u /* frame_max before tune, and the least a peer may ask */

struct frame {
	uint8_t type;          /* AMQP_FRAME_METHOD, _HEADER, _BODY, _HEARTBEAT */
	uint16_t channel;
	const uint8_t *payload;
	uint32_t size;
};

/* One frame from p[0..n): bytes used (> 0), 0 when more bytes are needed,
 * or -code (AMQP reply code, 501 FRAME_ERROR) for a frame over frame_max or
 * without its end byte. */
int frame_parse(const uint8_t *p, size_t n, uint32_t frame_max, struct frame *f);

/* A method frame's method id and decoded arguments (from pool): 0, or
 * -code: 540 NOT_IMPLEMENTED for an unknown class or method, 502
 * SYNTAX_ERROR for arguments that do not decode. */
int frame_method(const struct frame *f, amqp_pool_t *pool, amqp_method_number_t *id,
		 void **decoded);

/* A content header frame: class, body size and the encoded properties
 * (flags first).  0 or -502. */
int frame_content_header(const struct frame *f, uint16_t *class_id, uint64_t *body_size,
			 const uint8_t **props, size_t *props_len);

/* Output.  Each returns 0 or -ENOMEM / -EINVAL. */
int frame_put_method(struct gbuf *b, uint16_t ch, amqp_method_number_t id, void *decoded);
/* Content header with already encoded properties, then body frames cut to
 * frame_max. */
int frame_put_content(struct gbuf *b, uint16_t ch, const uint8_t *props, size_t props_len,
		      const void *body, uint64_t len, uint32_t frame_max);
int frame_put_heartbeat(struct gbuf *b);

#endif
