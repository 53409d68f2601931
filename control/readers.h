/*
 * readers.h - hbusd's side of the reader blocks (route.h): whose each block
 * is, how long each has held a routing-table publish back, and when one is
 * given up.
 *
 * hbusd makes one block per session at hello.  A block stays registered
 * while its owner is a live session or a watched orphan (a closed session
 * whose process still runs: its routers may still be in a burst), and is
 * dropped when the process exits.  A block whose owner is neither (a
 * resumed session's previous one, a process that is not watched) is
 * dropped as soon as it reads idle.  No block is waited for longer than
 * --reader-timeout: one that holds a publish back that long is treated as
 * gone (its session, if live, is told and closed by the caller), because a
 * router finishes a burst in microseconds and a stuck or forged slot must
 * not stop topology changes.
 */
#ifndef HBUSD_READERS_H
#define HBUSD_READERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route.h"

#define HBUSD_READER_TIMEOUT_MS 1000u /* --reader-timeout */

struct rblock {
	uint32_t owner;
	bool current;           /* the owner's newest block */
	uint64_t busy_since_ns; /* CLOCK_MONOTONIC; 0: not holding a publish back */
};

struct readers_reg {
	struct rblock *v;
	struct hbus_readers **rds; /* parallel to v: what a publish scans */
	uint8_t *busy;
	unsigned n, cap;
	uint32_t timeout_ms;
};

void readers_init(struct readers_reg *g, uint32_t timeout_ms);
void readers_fini(struct readers_reg *g);
/* Register owner's new block (taken over; older blocks of owner are kept
 * until they read idle).  0 or -ENOMEM (then rd is closed). */
int readers_add(struct readers_reg *g, uint32_t owner, struct hbus_readers *rd);
/* Unmap every block of owner (its process has exited, or it timed out). */
void readers_drop_owner(struct readers_reg *g, uint32_t owner);
/* hbus_routes_publish over every registered block, noting which ones hold
 * it back and since when. */
int readers_publish(struct readers_reg *g, struct hbus_routes *r, const void *table, size_t len,
		    uint64_t *gen);
/* Owners of blocks that have held a publish back for longer than the time
 * limit (at most max, each once); returns how many. */
unsigned readers_overdue(const struct readers_reg *g, uint32_t *owners, unsigned max);
/* Drop blocks that read idle and whose owner held() says is neither a live
 * session nor a watched orphan, or that are not their owner's newest. */
void readers_sweep(struct readers_reg *g, bool (*held)(void *ctx, uint32_t owner), void *ctx);

#endif
