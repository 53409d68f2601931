/*
 * superblock.h - the bus superblock file (<bus dir>/superblock).
 *
 * The one file that says what a bus is and who runs it: bus name, the pid
 * and epoch of the hbusd serving it, and the counters that must survive an
 * hbusd restart because their values are written into shared memory that
 * outlives hbusd:
 *   next_owner  owner ids name processes in every in-flight slot; reusing
 *               the id of a process whose slots were not recovered yet
 *               would let a new process ack a dead one's messages;
 *   next_qid    qids name queue files and routing-table entries that
 *               clients cache; a reused qid would route to the wrong queue.
 * It also lists the live sessions (owner, pid, process start time), so an
 * hbusd that restarts knows which owners to recover if their processes
 * died while no hbusd was watching.
 *
 * Only hbusd writes it; it holds flock(LOCK_EX) on it for its whole life,
 * which is also what stops a second hbusd from serving the same bus.
 */
#ifndef HBUSD_SUPERBLOCK_H
#define HBUSD_SUPERBLOCK_H

#include <stdatomic.h>
#include <stdint.h>

#include "shm_file.h"

#define HBUS_SUPER_LAYOUT_VERSION 1u
#define HBUS_SUPER_SESSIONS       4096u
#define HBUS_SUPER_BUS_MAX        72u

struct hbus_super_session {
	_Atomic uint32_t owner; /* 0 = free entry; written last when adding */
	int32_t pid;            /* 0 = session closed, slot recovery still pending */
	uint64_t start_time;    /* /proc/<pid>/stat starttime: tells pid reuse apart */
};

struct hbus_super {
	struct hbus_file_hdr file;
	char bus[HBUS_SUPER_BUS_MAX];
	uint64_t created_ns;
	_Atomic uint64_t epoch;       /* +1 at every hbusd start */
	_Atomic int32_t hbusd_pid;    /* 0 when no hbusd serves the bus */
	_Atomic uint32_t hbusd_owner; /* owner id hbusd uses on queues this epoch */
	_Atomic uint32_t next_owner;
	_Atomic uint32_t next_qid;
	uint32_t session_cap;
	uint32_t reserved;
	struct hbus_super_session sessions[HBUS_SUPER_SESSIONS];
};

struct superblock {
	struct hbus_super *sb;
	struct hbus_map map;
	int fd;
	int created;           /* 1: made this start, 0: adopted */
	int was_blank;         /* created over a file that was never initialised */
	uint32_t prev_owner;   /* hbusd owner id of the previous epoch (0: none) */
	int32_t prev_pid;      /* hbusd_pid the file held: non-zero when the
				  previous hbusd did not stop cleanly */
};

/*
 * Open superblock in the directory dirfd, or create it when missing.  -EWOULDBLOCK: another
 * hbusd holds it (*other_pid says which); -EPROTO/-EPROTONOSUPPORT: the
 * file is not a superblock of this layout; -EXDEV: it belongs to another
 * bus.  On success the epoch is bumped and hbusd_pid set to ours.  A file
 * that was never initialised (all zero: a first start killed while making
 * it) is initialised as new and counts as created.
 */
int sb_open(int dirfd, const char *bus, struct superblock *s, int *other_pid);
/* Mark the bus as unserved (clean exit) and unmap; the file stays. */
void sb_close(struct superblock *s);

/* Next owner id: 24-bit, never 0, never hbusd's own, never one in_use()
 * says is taken.  0 when every id is in use. */
uint32_t sb_alloc_owner(struct superblock *s, int (*in_use)(void *ctx, uint32_t owner),
			void *ctx);
uint32_t sb_alloc_qid(struct superblock *s);
/* Make sure the qid counter is past qid (adopting a file the counter missed). */
void sb_note_qid(struct superblock *s, uint32_t qid);

/* Session table.  add: -ENOSPC when no more than `reserve` entries are
 * free (entries kept for root and hbusd's uid).  closed: the process is
 * gone but its slots are not all recovered yet.  remove: fully recovered. */
int sb_session_add(struct superblock *s, uint32_t owner, int32_t pid, uint64_t start_time,
		   unsigned reserve);
unsigned sb_sessions_used(const struct superblock *s);
void sb_session_closed(struct superblock *s, uint32_t owner);
void sb_session_remove(struct superblock *s, uint32_t owner);
int sb_session_in_table(const struct superblock *s, uint32_t owner);

/* Start time of pid from /proc (clock ticks since boot), 0 when it is gone. */
uint64_t proc_start_time(int32_t pid);

#endif
