/*
 * route.h - the compiled routing table: how hbusd builds it, how it is
 * published in shared memory by generation, and the one lookup that serves
 * local publishers and the dataplane alike.
 *
 * CONTRACT between the routing module (shm/route*.c) and its users (hbusd,
 * the client library, hbus-dataplane).  Change only with all of them.
 *
 * The table is immutable once published and position-independent (offsets
 * only): hbusd compiles the whole topology into a byte buffer, copies it
 * into the inactive half of the routes file and flips the active
 * generation.  A reader picks the active generation once per burst and
 * advertises it in a slot of its session's reader block; hbusd reuses a
 * half only when no reader block still advertises the generation in it, or
 * when the one that does has held it past hbusd's time limit.
 *
 * Trust: clients map the routes file read-only (hbusd hands them an
 * O_RDONLY descriptor), and each session's reader block is memory of its
 * own: no process can change the table another one routes by, nor the
 * slots hbusd reads for another session.
 */
#ifndef HBUS_ROUTE_H
#define HBUS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hbus.h"

enum hbus_xtype {
	HBUS_X_DIRECT  = 0,
	HBUS_X_FANOUT  = 1,
	HBUS_X_TOPIC   = 2,
	HBUS_X_HEADERS = 3,
};

#define HBUS_ROUTE_NONE      UINT32_MAX
#define HBUS_ROUTE_MAX_QIDS  1024u   /* queues one publish can reach */
#define HBUS_READER_SLOTS    63u     /* routers (threads) per session: one reader block */
/* Set in a routes file's active generation by the hbusd that replaced the
 * file (a restart): that table stays as it is for good, and its readers
 * take the new file with their next session (router.c). */
#define HBUS_ROUTES_RETIRED  (1ull << 63)

/* ------------------------------------------------------ compile (hbusd) */

struct hbus_rc_exchange {
	const char *name;       /* "" is the default exchange (implicit: need not be listed) */
	uint32_t type;          /* enum hbus_xtype */
	const char *alternate;  /* alternate exchange name or NULL */
};

struct hbus_rc_queue {
	const char *name;
	uint32_t qid;                  /* hbusd's stable id: a client asks hbusd for qid's fd */
	const char *dead_letter_exchange; /* NULL = none */
	const char *dead_letter_key;      /* NULL = keep the message's key */
};

struct hbus_rc_binding {
	const char *source;            /* exchange */
	const char *dest;              /* queue or exchange name */
	uint32_t dest_is_exchange;
	const char *key;               /* binding key (topic pattern for topic) */
	const struct hbus_header *headers; /* headers exchange arguments */
	uint16_t header_count;
	uint8_t match_all;             /* x-match: 1 = all, 0 = any */
};

/* Raw UDP ingress: datagrams to ip:port go to exchange with key, untouched. */
struct hbus_rc_udpmap {
	uint32_t ip_be;                /* IPv4, network byte order (unicast or group) */
	uint16_t port;                 /* host byte order */
	const char *exchange;
	const char *key;
};

struct hbus_rc_input {
	const struct hbus_rc_exchange *exchanges; unsigned n_exchanges;
	const struct hbus_rc_queue *queues;       unsigned n_queues;
	const struct hbus_rc_binding *bindings;   unsigned n_bindings;
	const struct hbus_rc_udpmap *udpmaps;     unsigned n_udpmaps;
};

/* Compile into buf.  *used = bytes written.  -ENOSPC: buf too small (*used
 * then says how much is needed); -EINVAL: a binding names an unknown
 * exchange or queue, or a name is too long. */
int hbus_route_compile(const struct hbus_rc_input *in, void *buf, size_t cap, size_t *used);

/* ------------------------------------------------ lookup (every reader) */

struct hbus_rtable; /* opaque, lives inside the routes file */

/* Exchange id by name (len bytes, "" = default exchange): 0 or -ENOENT. */
int hbus_route_exchange(const struct hbus_rtable *t, const char *name, size_t len, uint32_t *xid);
int hbus_route_exchange_type(const struct hbus_rtable *t, uint32_t xid, uint32_t *type);
/* Name of exchange xid ("" for xid 0, the default exchange): a view into
 * the table, NUL-terminated, valid while the table is (inside the reader's
 * acquire / hbus_router_begin .. end).  0, -EINVAL, -ENOENT for an unknown
 * xid, -EPROTO when the table's entry points outside the table. */
int hbus_route_exchange_name(const struct hbus_rtable *t, uint32_t xid, const char **name,
			     size_t *len);

/*
 * Route one message: fills qids[] with distinct queue ids (at most max),
 * following exchange-to-exchange bindings (cycle-safe) and the alternate
 * exchange when nothing matched.  Returns the count (0 = unroutable), or
 * -ENOENT for an unknown xid.  headers may be NULL.  No allocation, no
 * syscalls, no locks.
 */
int hbus_route_lookup(const struct hbus_rtable *t, uint32_t xid, const char *key, size_t key_len,
		      const struct hbus_meta *headers, uint32_t *qids, unsigned max);

struct hbus_route_queue_info {
	const char *name;
	uint32_t dlx_xid;              /* HBUS_ROUTE_NONE = no dead-letter exchange */
	const char *dlx_key; size_t dlx_key_len; /* dlx_key NULL = keep key */
};
int hbus_route_queue_info(const struct hbus_rtable *t, uint32_t qid, struct hbus_route_queue_info *qi);
/* Highest qid + 1 in this table (sizes a reader's qid -> queue handle map). */
uint32_t hbus_route_qid_limit(const struct hbus_rtable *t);

/* Raw UDP mapping for ip:port: 0 with xid and key, or -ENOENT. */
int hbus_route_udpmap(const struct hbus_rtable *t, uint32_t ip_be, uint16_t port, uint32_t *xid,
		      const char **key, size_t *key_len);
/* Iterate the mapped multicast groups (for IGMP joins): returns the number
 * of distinct multicast ip_be written to groups[] (at most max). */
unsigned hbus_route_mcast_groups(const struct hbus_rtable *t, uint32_t *groups, unsigned max);

/* ------------------------------------ routes file (shared memory, by generation) */

struct hbus_routes;  /* process-local handle on a mapped routes file */
struct hbus_readers; /* process-local handle on a mapped reader block */

/* hbusd: create the routes file with two halves of table_cap bytes each
 * (create_at: name relative to the directory dirfd, through openat). */
int hbus_routes_create(const char *path, size_t table_cap, int *fd_out, struct hbus_routes **out);
int hbus_routes_create_at(int dirfd, const char *name, size_t table_cap, int *fd_out,
			  struct hbus_routes **out);
/* Map and check an existing file: read-only when fd was opened read-only
 * (every client), read-write otherwise (hbusd, on the file a previous hbusd
 * left).  Layout fields are checked here once and copied: nothing is
 * re-read from the file afterwards. */
int hbus_routes_open_fd(int fd, struct hbus_routes **out);
int hbus_routes_close(struct hbus_routes *r);

/*
 * hbusd: copy a compiled table into the free half and make it active,
 * unless one of the n_rds reader blocks still advertises a generation in
 * that half: then -EBUSY, and busy[i] (when busy is not NULL) says which
 * blocks did (every block is looked at).  -EMSGSIZE when len exceeds
 * table_cap; -EPERM on a read-only mapping.
 */
int hbus_routes_publish(struct hbus_routes *r, const void *table, size_t len,
			struct hbus_readers *const *rds, unsigned n_rds, uint8_t *busy,
			uint64_t *gen_out);
/* hbusd: number the next generation after gen (a new file continues the
 * numbering of the one it replaces). */
void hbus_routes_continue(struct hbus_routes *r, uint64_t gen);
/* hbusd at start, on the previous hbusd's file: freeze it (its active
 * table stays readable for good) and tell its readers to move on. */
int hbus_routes_retire(struct hbus_routes *r);
/* Active generation (0: none yet), without the retired flag. */
uint64_t hbus_routes_generation(const struct hbus_routes *r);
bool hbus_routes_retired(const struct hbus_routes *r);

/* Reader blocks.  hbusd makes one per session (an anonymous memfd, its size
 * sealed so nobody can shrink it under hbusd's mapping) and passes *fd_out
 * with the hello reply; the client maps it with open_fd. */
int hbus_readers_create(int *fd_out, struct hbus_readers **out);
int hbus_readers_open_fd(int fd, struct hbus_readers **out);
void hbus_readers_close(struct hbus_readers *rd);
/* Readers: take a slot of the block once per router, then per burst
 * acquire the active table (advertising its generation) and release it.
 * *gen gets the generation, with HBUS_ROUTES_RETIRED when the file has been
 * replaced (the table is still valid). */
int hbus_readers_attach(struct hbus_readers *rd, unsigned *slot);
int hbus_readers_detach(struct hbus_readers *rd, unsigned slot);
const struct hbus_rtable *hbus_routes_acquire(struct hbus_routes *r, struct hbus_readers *rd,
					      unsigned slot, uint64_t *gen);
void hbus_routes_release(struct hbus_readers *rd, unsigned slot);
/* hbusd: does no attached slot of rd advertise a generation? */
bool hbus_readers_idle(const struct hbus_readers *rd);

#endif
