/*
 * dp_seq.h - per-lcore sequence tracking of hbus streams: gaps, duplicates
 * and restarts per stream id, kept in the lcore's stream table inside the
 * counters file (struct hbus_dpc_stream), so `hbus stat` shows them.
 *
 * One writer (the worker lcore that owns the table), no allocation: an
 * open-addressed table of HBUS_DPC_STREAMS entries, linear probing, entries
 * never removed (streams are long-lived feeds).  RSS keeps a stream on one
 * lcore, so a per-lcore view is a complete one.
 */
#ifndef HBUS_DP_SEQ_H
#define HBUS_DP_SEQ_H

#include <stdint.h>

#include "dp_counter_ids.h"

/* A frame whose first sequence is this far below the expected one is a
 * restarted sender, not a duplicate: tracking starts over from it. */
#define DP_SEQ_RESET_WINDOW (UINT64_C(1) << 20)

/* Streams touched in one burst, committed at its end (more: the whole table). */
#define DP_SEQ_DIRTY_MAX 32u

struct dp_seq {
	struct hbus_dpc_stream *tab;
	uint32_t mask;
	uint32_t shift;              /* 32 - log2(entries) */
	_Atomic uint64_t *ctr;       /* the lcore's counters (hbus_dpc_lcore.c) */
	struct hbus_dpc_stream *last; /* one-entry cache: frames come in runs */
	uint32_t last_id;
	uint32_t n_dirty;            /* > DP_SEQ_DIRTY_MAX: commit the whole table */
	struct hbus_dpc_stream *dirty[DP_SEQ_DIRTY_MAX];
};

/* entries: a power of two.  The table is a new counters file's: zeroed, or
 * holding the streams of a dead predecessor (hbus_dpc_create). */
int dp_seq_init(struct dp_seq *s, struct hbus_dpc_stream *tab, uint32_t entries,
		_Atomic uint64_t *ctr);

/*
 * Account one frame of stream_id carrying messages first_seq ..
 * first_seq + count - 1 (count 0: a heartbeat saying first_seq comes next).
 * Duplicates are counted, not dropped: the caller delivers them anyway.
 */
void dp_seq_frame(struct dp_seq *s, uint32_t stream_id, uint64_t first_seq, uint32_t count);

/*
 * End of a burst, after its messages were enqueued or counted: each stream
 * it touched gets durable_seq = next_seq.  A dataplane killed before this
 * leaves the burst's messages below its successor's starting point, counted
 * as a gap (a message may then be both delivered and counted: never lost
 * and uncounted).
 */
void dp_seq_commit(struct dp_seq *s);

/* The entry of stream_id, or NULL (not seen / not tracked). For tests. */
const struct hbus_dpc_stream *dp_seq_find(const struct dp_seq *s, uint32_t stream_id);

#endif
