/*
 * route_build.h - compile-side helpers shared by route_compile.c and the
 * topic trie builder (route_topic.c): a growable output buffer that hands
 * out offsets, and writers for the shared section shapes (strings, slot
 * tables, destination lists).
 *
 * Compiling is hbusd's cold path: it allocates freely.  The output is
 * assembled in a private buffer and copied to the caller only when it is
 * complete and fits, so a failed compile never leaves partial output.
 */
#ifndef HBUS_ROUTE_BUILD_H
#define HBUS_ROUTE_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "route_layout.h"

struct rt_buf {
	uint8_t *p;
	size_t len, cap;
	int err; /* first error (-ENOMEM, -EFBIG); every later call is a no-op */
};

/* Reserve n zeroed bytes, 8-byte aligned: the offset, or 0 with b->err set.
 * Pointers into the buffer die at the next allocation: keep offsets. */
uint32_t rt_buf_alloc(struct rt_buf *b, size_t n);
static inline void *rt_buf_at(struct rt_buf *b, uint32_t off)
{
	return b->p + off;
}
/* Copy a string in, NUL-terminated (readers get C strings). */
uint32_t rt_buf_str(struct rt_buf *b, const char *s, size_t len);

/* Write a slot table holding the n given entries (off/len/hash/id filled
 * in by the caller, strings already in the buffer; the prefix is filled in
 * here): its offset, and *mask. */
uint32_t rt_buf_slots(struct rt_buf *b, const struct rt_slot *ents, unsigned n, uint32_t *mask);
/* The same into slots[cap] already reserved (a power of two >= 2 * n). */
void rt_slots_fill(const struct rt_buf *b, struct rt_slot *slots, uint32_t cap,
		   const struct rt_slot *ents, unsigned n);

/* A binding destination while compiling. */
struct rt_dest {
	uint32_t is_exchange;
	uint32_t id; /* qid or xid */
};

/* Write a destination list: sorted, duplicates removed, queues first.
 * Reorders d[].  Returns 0 (no list) when n == 0. */
uint32_t rt_buf_dests(struct rt_buf *b, struct rt_dest *d, unsigned n);

/* A binding with its names resolved, as the per-type builders see it. */
struct rt_cbind {
	uint32_t src;            /* xid */
	struct rt_dest dest;
	const char *key;
	uint32_t key_len;
	const struct hbus_rc_binding *in;
};

/* Power of two >= 2 * n (at least 2): the capacity of a slot table. */
uint32_t rt_slot_cap(unsigned n);

#endif
