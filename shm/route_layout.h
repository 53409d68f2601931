/*
 * route_layout.h - the byte layout of a compiled routing table and of the
 * routes file that publishes it (docs/ROUTING.md draws both).
 *
 * A table is one position-independent block: every reference is a 32-bit
 * byte offset from the start of the table (0 = none: offset 0 is the
 * header, so it never names anything else), every field a fixed-width
 * integer, every section 8-byte aligned.  hbusd compiles it
 * (route_compile.c), copies it into a half of the routes file, and every
 * reader maps that file at its own address and reads it in place.
 *
 * Four lookups share one open-addressing slot type (struct rt_slot):
 * exchange name -> xid, queue name -> qid (the default exchange), direct
 * key -> destination list, and topic word -> child node.  A slot table has
 * a power-of-two capacity of at least twice its entries, so a probe always
 * ends at an empty slot (off == 0).
 */
#ifndef HBUS_ROUTE_LAYOUT_H
#define HBUS_ROUTE_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "route.h"
#include "shm_file.h"

#define RT_MAGIC   0x42545248u /* "HRTB" little-endian */
#define RT_VERSION 1u
#define RT_ALIGN   8u

/* A key has at most 255 bytes, so at most 256 words ("..." has 4). */
#define RT_WORDS_MAX (HBUS_NAME_MAX + 1)
/* Topic search states pack (node record offset << RT_POS_BITS | word position). */
#define RT_POS_BITS  9u

struct rt_table_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t size;          /* bytes of the whole table */
	uint32_t n_exchanges;   /* xid 0 is the default exchange "" */
	uint32_t exchanges_off; /* struct rt_exchange[n_exchanges], indexed by xid */
	uint32_t xdir_off;      /* struct rt_slot[xdir_mask + 1]: name -> xid */
	uint32_t xdir_mask;
	uint32_t n_queues;
	uint32_t queues_off;    /* struct rt_queue[n_queues], sorted by qid */
	uint32_t qdir_off;      /* struct rt_slot[qdir_mask + 1]: name -> qid */
	uint32_t qdir_mask;
	uint32_t qid_limit;     /* highest qid + 1 (0 without queues) */
	uint32_t n_udp;
	uint32_t udp_off;       /* struct rt_udp_slot[udp_mask + 1] */
	uint32_t udp_mask;
	uint32_t n_mcast;
	uint32_t mcast_off;     /* uint32_t ip_be[n_mcast], sorted, distinct */
	uint32_t reserved;      /* 0; keeps the header free of implicit padding */
};

/* One open-addressing slot: a string (off, len, hash) and what it names.
 * The string's first RT_PFX bytes are kept in the slot too, zero-padded:
 * most words, keys and names are shorter, and comparing them there saves
 * the cache miss of fetching the string (the lookup's dominant cost). */
#define RT_PFX 16u
struct rt_slot {
	uint32_t hash;  /* rt_hash() of the string */
	uint32_t len;
	uint32_t off;   /* NUL-terminated string; 0 = empty slot */
	uint32_t id;    /* xid, qid, destination list offset or child record offset */
	uint64_t pfx[RT_PFX / 8];
};

struct rt_exchange {
	uint32_t name_off, name_len;
	uint32_t type;       /* enum hbus_xtype */
	uint32_t alternate;  /* xid, or HBUS_ROUTE_NONE */
	/* direct:  data_off = struct rt_slot[data_n + 1] (key -> dests), data_n = mask
	 * fanout:  data_off = struct rt_dests (0 = no bindings)
	 * topic:   data_off = the root struct rt_tnode (0 = no bindings), data_n = nodes
	 * headers: data_off = struct rt_hbind[data_n]
	 * xid 0 (default exchange): no data, routes by queue name. */
	uint32_t data_off, data_n;
};

/* A destination list: n_queues qids, then n_exchanges xids.  Never empty. */
struct rt_dests {
	uint32_t n_queues;
	uint32_t n_exchanges;
	uint32_t ids[];
};

/* A topic trie node: one record, its literal-edge slot table right behind
 * its header and its destination list right behind that, records laid out
 * in depth-first order -- so following an edge touches one or two adjacent
 * cache lines, not three scattered ones.  Children are record offsets
 * (0 = none). */
struct rt_tnode {
	uint32_t edges_mask; /* edges[] holds edges_mask + 1 slots (RT_T_EDGES) */
	uint32_t flags;      /* RT_T_* */
	uint32_t star;       /* child by '*' */
	uint32_t hash;       /* child by '#' */
	uint32_t dests_off;  /* bindings whose pattern ends here, 0 = none */
	uint32_t pad;
	struct rt_slot edges[]; /* word -> child record offset */
};

#define RT_T_EDGES      4u /* has literal edges */
#define RT_T_HASH       1u /* reached by a '#' edge: may consume more words */
#define RT_T_UNDER_HASH 2u /* a '#' or below one: its '#' child may be reached
			    * at many positions (route_topic.c's memo) */

/* A headers-exchange binding; pairs whose name starts with "x-" are dropped
 * at compile time (RabbitMQ ignores them for x-match all/any). */
struct rt_hbind {
	uint32_t match_all;
	uint32_t n_pairs;
	uint32_t pairs_off;  /* struct rt_hpair[n_pairs] */
	uint32_t dests_off;
};

struct rt_hpair {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
};

struct rt_queue {
	uint32_t qid;
	uint32_t name_off, name_len;
	uint32_t dlx_xid;     /* HBUS_ROUTE_NONE = no dead-letter exchange */
	uint32_t dlx_key_off; /* 0 = keep the message's key */
	uint32_t dlx_key_len;
};

struct rt_udp_slot {
	uint32_t ip_be;
	uint16_t port;
	uint16_t used;
	uint32_t xid;
	uint32_t key_off, key_len;
};

static inline const void *rt_at(const void *base, uint32_t off)
{
	return (const uint8_t *)base + off;
}

static inline uint64_t rt_mix64(uint64_t h)
{
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

/*
 * n <= 8 bytes of s as one little-endian number, zero-padded.  Overlapping
 * loads instead of a byte loop (a byte loop stored to memory and read back
 * as words stalls store forwarding): keys live in the caller's buffer, so
 * nothing past s + n may be read.  The overlapping bytes of the two loads
 * land on the same bit positions, so OR-ing them is exact.
 */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rt_load assumes a little-endian host"
#endif
static inline uint64_t rt_load(const char *s, size_t n)
{
	uint32_t lo, hi;
	uint64_t v;

	if (n >= 8) {
		memcpy(&v, s, 8);
		return v;
	}
	if (n >= 4) {
		memcpy(&lo, s, 4);
		memcpy(&hi, s + n - 4, 4);
		return lo | (uint64_t)hi << ((n - 4) * 8);
	}
	if (n == 0)
		return 0;
	return (uint64_t)(uint8_t)s[0] | (uint64_t)(uint8_t)s[n >> 1] << ((n >> 1) * 8) |
	       (uint64_t)(uint8_t)s[n - 1] << ((n - 1) * 8);
}

/* A string's first RT_PFX bytes, zero-padded (see struct rt_slot). */
static inline void rt_prefix(const char *s, size_t len, uint64_t pfx[RT_PFX / 8])
{
	pfx[0] = rt_load(s, len < 8 ? len : 8);
	pfx[1] = len > 8 ? rt_load(s + 8, len < RT_PFX ? len - 8 : 8) : 0;
}

/*
 * The table's string hash, computed from the prefix words and then the
 * rest 8 bytes at a time.  It is part of the layout (RT_VERSION): hbusd
 * stores hashes that every reader recomputes, so it must be deterministic
 * and the same in every process (no seed).
 */
static inline uint32_t rt_hash_pfx(const char *s, size_t len, const uint64_t pfx[RT_PFX / 8])
{
	uint64_t h = (pfx[0] ^ 0x9e3779b97f4a7c15ull) * 0xc4ceb9fe1a85ec53ull;
	size_t i;

	h ^= (pfx[1] + len) * 0xff51afd7ed558ccdull;
	for (i = RT_PFX; i < len; i += 8) {
		h = (h ^ rt_load(s + i, len - i < 8 ? len - i : 8)) * 0xc4ceb9fe1a85ec53ull;
		h ^= h >> 31;
	}
	return (uint32_t)rt_mix64(h);
}

static inline uint32_t rt_hash(const void *p, size_t len)
{
	uint64_t pfx[RT_PFX / 8];

	rt_prefix(p, len, pfx);
	return rt_hash_pfx(p, len, pfx);
}

/* A string to look up: hashed and prefixed once, probed many times. */
struct rt_key {
	const char *s;
	uint32_t len, hash;
	uint64_t pfx[RT_PFX / 8];
};

static inline void rt_key_init(struct rt_key *k, const char *s, size_t len)
{
	k->s = s;
	k->len = (uint32_t)len;
	rt_prefix(s, len, k->pfx);
	k->hash = rt_hash_pfx(s, len, k->pfx);
}

/* Home slot of ip:port in the raw UDP map. */
static inline uint32_t rt_udp_pos(uint32_t ip_be, uint16_t port, uint32_t mask)
{
	return (uint32_t)rt_mix64(((uint64_t)ip_be << 16 | port) * 0x9e3779b97f4a7c15ull) & mask;
}

/* Does occupied slot e hold k's string (strings at offsets from base)? */
static inline int rt_slot_eq(const void *base, const struct rt_slot *e, const struct rt_key *k)
{
	return e->hash == k->hash && e->len == k->len && e->pfx[0] == k->pfx[0] &&
	       e->pfx[1] == k->pfx[1] &&
	       (k->len <= RT_PFX ||
		memcmp((const char *)rt_at(base, e->off) + RT_PFX, k->s + RT_PFX,
		       k->len - RT_PFX) == 0);
}

/* Find a string in a slot table: its slot, or NULL. */
static inline const struct rt_slot *rt_slot_find(const void *base, const struct rt_slot *slots,
						 uint32_t mask, const struct rt_key *k)
{
	uint32_t i = k->hash & mask;

	for (;; i = (i + 1) & mask) {
		const struct rt_slot *e = &slots[i];

		if (e->off == 0)
			return NULL;
		if (rt_slot_eq(base, e, k))
			return e;
	}
}

/* ------------------------------------------------------- the routes file */

/* 2: reader slots moved out of the routes file (struct hbus_readers_block). */
#define HBUS_ROUTES_LAYOUT_VERSION 2u

/* Written by hbusd only: clients map the file read-only. */
struct hbus_routes_hdr {
	struct hbus_file_hdr file;
	/* Fixed at create; checked once by whoever maps the file, then only
	 * that process's own copy is used. */
	uint64_t table_cap;     /* bytes in each half */
	uint64_t half_off[2];   /* file offsets of the two halves */
	uint64_t reserved;

	/* Generation g lives in half g & 1; 0 = no table published yet.
	 * HBUS_ROUTES_RETIRED (route.h) is set by the hbusd that replaced
	 * the file: the active table then stays as it is for good.
	 * half_len/half_gen are written before the release store that makes
	 * the generation active. */
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint64_t active;
	uint64_t half_len[2];
	uint64_t half_gen[2];
};

/* ------------------------------------------------------- reader blocks */

#define HBUS_READERS_LAYOUT_VERSION 1u

/*
 * A session's reader slots: memory of its own (an anonymous, size-sealed
 * memfd hbusd makes at hello), so what one process writes there can only
 * ever concern its own routers.  hbusd reads `used` and the slots it names
 * at every publish and trusts nothing else: a nonsense value can only hold
 * a publish back, and only until --reader-timeout.
 */
struct hbus_reader_slot {
	alignas(HBUS_CURSOR_ALIGN) _Atomic uint64_t gen; /* generation in use, 0 = idle */
};

struct hbus_readers_block {
	struct hbus_file_hdr file;
	_Atomic uint64_t used;  /* bit i: slot[i] is attached to a router */
	/* One slot per cache-line pair: routers on different cores write
	 * their own slot every burst (see HBUS_CURSOR_ALIGN). */
	struct hbus_reader_slot slot[HBUS_READER_SLOTS];
};

/* A mapped block (route_readers.c; routes_file.c uses the slots). */
struct hbus_readers {
	struct hbus_map map;
	struct hbus_readers_block *b;
};

/* Check a table header against the bytes that hold it: 0 or -EPROTO /
 * -EPROTONOSUPPORT.  (route.c) */
int rt_table_check(const void *table, size_t len);

#endif
