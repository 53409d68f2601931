/*
 * queue.c - queue files: create, open (validating every field), close,
 * configuration and counters.  The ring operations live in
 * queue_produce.c and queue_consume.c; the slot protocol is described in
 * queue_layout.h and docs/QUEUE.md.
 */
#include "queue_internal.h"
#include "futex.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t hbus_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no syscall */
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Take a free record for a new handle: CAS its owner from 0 to ours.  A
 * record freed by its last handle (or by recovery) has no journal; its
 * counters go on from where they were (the queue's totals are sums). */
static int record_take(struct hbus_queue *q)
{
	for (uint32_t i = 0; i < q->nrec; i++) {
		uint32_t none = 0;

		if (atomic_load_explicit(&q->recs[i].owner, RELAXED) == 0 &&
		    atomic_compare_exchange_strong_explicit(&q->recs[i].owner, &none, q->owner,
							    ACQUIRE, RELAXED)) {
			uint32_t hwm = atomic_load_explicit(&q->hdr->rec_hwm, RELAXED);

			while (hwm < i + 1 &&
			       !atomic_compare_exchange_weak_explicit(&q->hdr->rec_hwm, &hwm, i + 1,
								      RELAXED, RELAXED))
				;
			q->rec = &q->recs[i];
			q->holder = i + 1;
			atomic_store_explicit(&q->rec->jr_op, jr_word(JR_NONE, 0, 0), RELAXED);
			atomic_store_explicit(&q->rec->xhold, 0, RELAXED);
			CRASHPOINT(OPEN_RECORD);
			return 0;
		}
	}
	return -EUSERS;
}

static void handle_free(struct hbus_queue *q)
{
	queue_unmap(q);
	free(q->dead_buf);
	free(q);
}

int hbus_queue_open_fds(int fd, int data_fd, const struct hbus_queue_opts *opts,
			hbus_queue **out)
{
	struct hbus_queue *q;
	int rc;

	if (fd < 0 || !opts || !out || opts->owner == 0 || opts->owner > HBUS_OWNER_MAX ||
	    opts->ack_mode > HBUS_ACK_MANUAL ||
	    (opts->flags & ~(HBUS_CONSUME_EXCLUSIVE | HBUS_PRODUCE_EXCLUSIVE)))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->fd = q->data_fd = -1;
	rc = queue_map(q, fd, data_fd);
	if (rc == 0) {
		q->owner = opts->owner;
		q->ack_mode = opts->ack_mode;
		q->prefetch = opts->prefetch ? opts->prefetch : (uint32_t)q->mask + 1;
		/* On a drop-head queue producers remove from the head: the only
		 * consumer still claims by CAS there. */
		atomic_init(&q->sc, (opts->flags & HBUS_CONSUME_EXCLUSIVE) &&
				    q->overflow != HBUS_OVERFLOW_DROP_HEAD);
		atomic_init(&q->sp, (opts->flags & HBUS_PRODUCE_EXCLUSIVE) && !q->read_only);
		q->next_tail = atomic_load_explicit(&q->hdr->tail, RELAXED);
		q->next_head = atomic_load_explicit(&q->hdr->head, RELAXED);
		q->rewinds_seen = atomic_load_explicit(&q->hdr->head_gen, ACQUIRE);
		rc = record_take(q);
	}
	if (rc) {
		handle_free(q);
		return rc;
	}
	*out = q;
	return 0;
}

int hbus_queue_open_fd(int fd, const struct hbus_queue_opts *opts, hbus_queue **out)
{
	return hbus_queue_open_fds(fd, -1, opts, out);
}

/*
 * Close: the record goes back for the next handle.  Slots the handle still
 * holds stay held under its record until the process exits (hbusd recovers
 * them then) - a consumer that wants them back now calls
 * hbus_queue_release_held first (hbus_consume_close does).  Then the
 * record is not freed: its holder id must not name someone else's slots.
 */
int hbus_queue_close(hbus_queue *q)
{
	if (!q)
		return -EINVAL;
	queue_xret_flush(q);
	if (!q->held) {
		/* A CAS: a record recovery already freed (its process looked
		 * dead) may be someone else's now.  The next taker clears the
		 * journal, which names only transitions that are done. */
		uint32_t mine = q->owner;

		atomic_compare_exchange_strong_explicit(&q->rec->owner, &mine, 0, RELEASE, RELAXED);
		CRASHPOINT(CLOSE_RECORD);
	}
	handle_free(q);
	return 0;
}

int hbus_queue_name(const hbus_queue *q, const char **name)
{
	if (!q || !name)
		return -EINVAL;
	*name = q->hdr->name;
	return 0;
}

int hbus_queue_config_get(const hbus_queue *q, struct hbus_queue_config *cfg)
{
	if (!q || !cfg)
		return -EINVAL;
	cfg->capacity = (uint32_t)q->mask + 1;
	cfg->slot_size = q->slot_size;
	cfg->overflow = q->overflow;
	cfg->ttl_ms = (uint32_t)(q->ttl_ns / 1000000u);
	cfg->numa_node = q->hdr->numa_node; /* informational only */
	cfg->flags = q->flags;
	return 0;
}

int hbus_queue_set_requeue(hbus_queue *q, hbus_requeue_fn fn, void *ctx)
{
	if (!q)
		return -EINVAL;
	q->requeue_fn = fn;
	q->requeue_ctx = ctx;
	return 0;
}

int hbus_queue_set_dead_letter(hbus_queue *q, hbus_dead_fn fn, void *ctx)
{
	if (!q)
		return -EINVAL;
	/* A message removed unread is handed to the hook from a copy (its slot
	 * is free by then): room for one, taken now, not on the removal. */
	if (fn && !q->dead_buf && !(q->dead_buf = malloc(q->slot_size)))
		return -ENOMEM;
	q->dead_fn = fn;
	q->dead_ctx = ctx;
	return 0;
}

void queue_fill_msg(const struct hbus_queue *q, struct hbus_slot *s, uint64_t pos,
		    struct hbus_msg *m)
{
	/* Lengths come from shared memory: clamp so a corrupt slot can never
	 * make a reader run past its slot. */
	uint32_t meta = s->meta_len, body = s->body_len;

	if (meta > q->slot_size)
		meta = q->slot_size;
	if (body > q->slot_size - meta)
		body = q->slot_size - meta;
	m->meta = s->data;
	m->meta_len = (uint16_t)meta;
	m->body = s->data + meta;
	m->body_len = body;
	m->flags = s->flags;
	m->send_ts_ns = s->send_ts_ns;
	m->enq_ts_ns = s->enq_ts_ns;
	m->pos = pos;
}

void queue_wake(struct hbus_queue *q)
{
	atomic_fetch_add_explicit(&q->hdr->futex_seq, 1, SEQ_CST);
	hbus_futex_wake(&q->hdr->futex_seq, INT_MAX);
}

int hbus_queue_stats(const hbus_queue *q, struct hbus_queue_stats *s)
{
	uint64_t c[QC_N] = { 0 };
	uint32_t used = 0, n;

	if (!q || !s)
		return -EINVAL;
	n = atomic_load_explicit(&q->hdr->rec_hwm, RELAXED);
	if (n > q->nrec)
		n = q->nrec; /* written by a hostile handle: read them all */
	for (uint32_t i = 0; i < n; i++) {
		const struct hbus_qrec *r = &q->recs[i];

		for (unsigned k = 0; k < QC_N; k++)
			c[k] += atomic_load_explicit(&r->c[k], RELAXED);
		used += atomic_load_explicit(&r->owner, RELAXED) != 0;
	}
	s->enqueued = c[QC_ENQUEUED];
	s->dropped_overflow = c[QC_DROPPED_OVERFLOW];
	s->dropped_oversize = c[QC_DROPPED_OVERSIZE];
	s->dropped_head = c[QC_DROPPED_HEAD];
	s->aborted = c[QC_ABORTED];
	s->delivered = c[QC_DELIVERED];
	s->acked = c[QC_ACKED];
	s->released = c[QC_RELEASED];
	s->requeued = c[QC_REQUEUED];
	s->rejected = c[QC_REJECTED];
	s->expired = c[QC_EXPIRED];
	s->dead_lettered = c[QC_DEAD_LETTERED];
	s->purged = c[QC_PURGED];
	s->corrupt = c[QC_CORRUPT];
	s->head = atomic_load_explicit(&q->hdr->head, RELAXED);
	s->tail = atomic_load_explicit(&q->hdr->tail, RELAXED);
	s->capacity = (uint32_t)q->mask + 1;
	s->slot_size = q->slot_size;
	s->handles = used;
	return 0;
}

int hbus_queue_depth(const hbus_queue *q, uint64_t *depth)
{
	struct hbus_queue_stats s;
	uint64_t in, out;

	if (!q || !depth)
		return -EINVAL;
	hbus_queue_stats(q, &s);
	/* What entered and was not removed unread, less what consumers took
	 * and did not give back (docs/QUEUE.md, "Accounting"). */
	in = s.enqueued + s.requeued;
	out = s.dropped_head + s.expired + s.purged + s.delivered;
	*depth = in > out ? in - out : 0;
	if (*depth > (uint64_t)s.capacity)
		*depth = s.capacity; /* counters written by a hostile handle */
	return 0;
}

int hbus_queue_scan(const hbus_queue *q, struct hbus_queue_census *c)
{
	if (!q || !c)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	for (uint64_t i = 0; i <= q->mask; i++) {
		unsigned st = word_state(atomic_load_explicit(slot_state(q, i), ACQUIRE));

		c->ready += st == SLOT_READY;
		c->claimed += st == SLOT_CLAIMED || st == SLOT_CLAIMED_AUTO;
		c->writing += st == SLOT_WRITING;
		c->removing += st == SLOT_REMOVING;
	}
	/* READY slots an only consumer holds through its record's xhold. */
	for (uint32_t i = 0; i < q->nrec; i++) {
		uint64_t x = atomic_load_explicit(&q->recs[i].xhold, RELAXED);

		if (x && xhold_idx(x) <= q->mask && c->ready &&
		    atomic_load_explicit(slot_state(q, xhold_idx(x)), ACQUIRE) ==
			    slot_word(xhold_lap(x), 0, SLOT_READY)) {
			c->ready--;
			c->claimed++;
		}
	}
	return 0;
}
