/*
 * queue_crash.h - named crash points of the ring's state machine.
 *
 * Every store or CAS of a slot, a cursor, a journal or a counter is
 * followed by a crash point.  In the product they compile to nothing; a
 * test build (meson -Dcrashpoints=true builds a second copy of the ring
 * code with HBUS_CRASHPOINTS for tests/test_queue_crash.c) can arm one
 * point to SIGKILL the process on its n-th pass, and counts every pass so
 * the test can show that each point was reached.  As SQLite's crash tests
 * do for every write, the test kills a process at every point, runs the
 * recovery hbusd runs, and checks a ledger of every message.
 */
#ifndef HBUS_QUEUE_CRASH_H
#define HBUS_QUEUE_CRASH_H

#define HBUS_CRASHPOINT_LIST(X)                                                              \
	/* producer: a run (burst) */                                                        \
	X(RUN_CLAIM) X(RUN_CURSOR) X(RUN_INNER) X(RUN_JOURNAL) X(RUN_PUBLISH) X(RUN_COUNT)   \
	/* producer: one slot (reservations, and every unusual case) */                     \
	X(ONE_CLAIM) X(ONE_CURSOR) X(ONE_WRITE) X(ONE_JOURNAL) X(ONE_PUBLISH) X(ONE_COUNT)   \
	X(ABORT_JOURNAL) X(ABORT_CAS) X(ABORT_COUNT)                                         \
	/* the only producer: a run claimed without a CAS, published in order */           \
	X(XRUN_JOURNAL) X(XRUN_SLOT) X(XRUN_TAIL) X(XRUN_COUNT)                              \
	/* clearing a skip, moving a lagging cursor */                                       \
	X(SKIP_CLEAR) X(CURSOR_JUMP)                                                         \
	/* consumer: claim; ack (manual) or release (auto) */                                \
	X(CLAIM_JOURNAL) X(CLAIM_CAS) X(CLAIM_CURSOR) X(CLAIM_COUNT)                         \
	X(ACK_JOURNAL) X(ACK_CAS) X(ACK_COUNT)                                               \
	/* a burst's acks (releases) of consecutive claims: one journal and one count */    \
	X(ARUN_JOURNAL) X(ARUN_FREE) X(ARUN_COUNT)                                           \
	/* the only consumer: a run claimed in order, one journal and one count */          \
	X(XCRUN_JOURNAL) X(XCRUN_SLOT) X(XCRUN_CURSOR) X(XCRUN_COUNT)                        \
	/* the only consumer's held slot (xhold): let go, or turned into a claim */          \
	X(XHOLD_CLEAR) X(XHOLD_PIN)                                                          \
	/* a READY message removed unread: TTL expiry, drop-head, purge */                   \
	X(REMOVE_CLAIM) X(REMOVE_COPY) X(REMOVE_JOURNAL) X(REMOVE_FREE) X(REMOVE_COUNT)      \
	X(REMOVE_HOOK)                                                                       \
	/* nack without requeue (dead-lettered) */                                           \
	X(REJECT_HOOK) X(REJECT_JOURNAL) X(REJECT_CAS) X(REJECT_COUNT)                       \
	/* nack(requeue) and recovery: back at its position, the head moved back */        \
	X(REQ_FLAGS) X(REQ_JOURNAL) X(REQ_CAS) X(REQ_REWIND) X(REQ_COUNT)                    \
	/* recovery of a dead owner: its journals, its writes, auto claims, removals */      \
	X(REC_SETTLE)                                                                        \
	X(REC_SKIP_JOURNAL) X(REC_SKIP_CAS) X(REC_SKIP_COUNT)                                \
	X(REC_RELEASE_JOURNAL) X(REC_RELEASE_CAS) X(REC_RELEASE_COUNT)                       \
	X(REC_REMOVE_JOURNAL) X(REC_REMOVE_CAS) X(REC_REMOVE_COUNT)                          \
	X(REC_XHOLD_PIN) X(REC_XHOLD_CLEAR)                                                  \
	X(REC_SLEEPER) X(REC_FREE)                                                           \
	/* a cursor read by a helper that is about to move it on */                          \
	X(CURSOR_SEEN)                                                                       \
	/* records and sleepers */                                                           \
	X(OPEN_RECORD) X(CLOSE_RECORD) X(WAIT_SLEEPER)

#ifdef HBUS_CRASHPOINTS
enum hbus_crashpoint {
#define HBUS_CP_ENUM(n) HBUS_CP_##n,
	HBUS_CRASHPOINT_LIST(HBUS_CP_ENUM)
#undef HBUS_CP_ENUM
	HBUS_CP_COUNT
};

/* Names, passes per point, and arming (tests/test_queue_crash.c). */
extern const char *const hbus_crashpoint_names[HBUS_CP_COUNT];
extern unsigned long hbus_crashpoint_passes[HBUS_CP_COUNT];
/* SIGKILL this process at the hit-th pass of point from now (hit >= 1);
 * point < 0 disarms. */
void hbus_crashpoint_arm(int point, unsigned long hit);
/* Call fn at every pass of every point instead (NULL: none): a test
 * drives interleavings through it (tests/test_queue_race.c), e.g. by
 * parking a thread at a point while another one works. */
void hbus_crashpoint_hook(void (*fn)(int point, void *ctx), void *ctx);
void hbus_crashpoint_pass(int point);
#define CRASHPOINT(n) hbus_crashpoint_pass(HBUS_CP_##n)
#define CRASHPOINT_ID(n) HBUS_CP_##n
#define CRASHPOINT_AT(id) hbus_crashpoint_pass(id)
#else
#define CRASHPOINT(n) ((void)0)
#define CRASHPOINT_ID(n) 0
#define CRASHPOINT_AT(id) ((void)(id))
#endif

#endif
