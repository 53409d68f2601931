/*
 * queue.c - the shared-memory queue ring: many producers, many competing
 * consumers, one CAS-guarded state word per slot (see queue_layout.h).
 *
 * Producer:  claim FREE(lap) -> WRITING(lap, me) by CAS, help the tail past
 *            it, write in place, CAS WRITING -> READY (release), wake
 *            sleeping consumers only if one is flagged.
 * Consumer:  claim READY(lap) -> CLAIMED(lap, me) by CAS, help the head past
 *            it, read in place, CAS CLAIMED -> FREE(lap + 1) on ack.
 *
 * Commit and ack use CAS rather than a plain store so that a slot recovered
 * from a process presumed dead can never be overwritten by it later.
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

static uint32_t stride_for(uint32_t slot_size)
{
	return (HBUS_SLOT_HDR_LEN + slot_size + HBUS_CACHE_LINE - 1) & ~(uint32_t)(HBUS_CACHE_LINE - 1);
}

static size_t hdr_len(void)
{
	return (sizeof(struct hbus_queue_hdr) + HBUS_CACHE_LINE - 1) & ~(size_t)(HBUS_CACHE_LINE - 1);
}

static int config_valid(const struct hbus_queue_config *c)
{
	return c->capacity >= HBUS_QUEUE_CAPACITY_MIN && c->capacity <= HBUS_QUEUE_CAPACITY_MAX &&
	       (c->capacity & (c->capacity - 1)) == 0 &&
	       c->slot_size >= HBUS_SLOT_SIZE_MIN && c->slot_size <= HBUS_SLOT_SIZE_MAX &&
	       c->overflow <= HBUS_OVERFLOW_DROP_HEAD && c->numa_node >= -1 &&
	       c->ttl_ms <= 7u * 24 * 3600 * 1000;
}

int hbus_queue_create(const char *path, const char *name,
		      const struct hbus_queue_config *cfg, int *fd_out)
{
	struct hbus_queue_hdr *h;
	struct hbus_map map;
	size_t size;
	int fd, rc;

	if (!path || !name || !cfg || !fd_out || strlen(name) > HBUS_NAME_MAX || !config_valid(cfg))
		return -EINVAL;
	size = hdr_len() + (size_t)cfg->capacity * stride_for(cfg->slot_size);
	rc = hbus_shm_create(path, size, cfg->numa_node, &fd, &map);
	if (rc)
		return rc;
	/* The file is new and zero-filled: every slot is FREE at lap 0. */
	h = map.addr;
	h->capacity = cfg->capacity;
	h->slot_size = cfg->slot_size;
	h->slot_stride = stride_for(cfg->slot_size);
	h->overflow = cfg->overflow;
	h->ttl_ms = cfg->ttl_ms;
	h->numa_node = cfg->numa_node;
	h->slots_offset = hdr_len();
	h->created_ns = hbus_now_ns();
	memcpy(h->name, name, strlen(name) + 1);
	hbus_shm_init_hdr(&h->file, HBUS_FILE_QUEUE, HBUS_QUEUE_LAYOUT_VERSION, size);
	hbus_shm_unmap(&map);
	*fd_out = fd;
	return 0;
}

/* Every size in the header must agree with every other and with the file. */
static int header_consistent(const struct hbus_queue_hdr *h, size_t maplen)
{
	struct hbus_queue_config c = {
		.capacity = h->capacity, .slot_size = h->slot_size,
		.overflow = h->overflow, .ttl_ms = h->ttl_ms, .numa_node = h->numa_node,
	};

	if (!config_valid(&c) || h->slot_stride != stride_for(h->slot_size) ||
	    h->slots_offset != hdr_len() || memchr(h->name, 0, sizeof(h->name)) == NULL)
		return 0;
	return h->slots_offset + (uint64_t)h->capacity * h->slot_stride <= h->file.size &&
	       h->file.size <= maplen;
}

int hbus_queue_open_fd(int fd, const struct hbus_queue_opts *opts, hbus_queue **out)
{
	struct hbus_queue *q;
	struct hbus_queue_hdr *h;
	int rc;

	if (fd < 0 || !opts || !out || opts->owner == 0 || opts->owner > HBUS_OWNER_MAX ||
	    opts->ack_mode > HBUS_ACK_MANUAL)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (q->fd < 0) {
		rc = -errno;
		free(q);
		return rc;
	}
	rc = hbus_shm_map_fd(q->fd, sizeof(struct hbus_file_hdr), &q->map);
	if (rc == 0)
		rc = hbus_shm_check_hdr(&q->map, HBUS_FILE_QUEUE, HBUS_QUEUE_LAYOUT_VERSION);
	if (rc == 0 && (q->map.len < sizeof(*h) || !header_consistent(q->map.addr, q->map.len)))
		rc = -EPROTO;
	if (rc) {
		hbus_shm_unmap(&q->map);
		close(q->fd);
		free(q);
		return rc;
	}
	h = q->map.addr;
	q->hdr = h;
	q->slots = (uint8_t *)h + h->slots_offset;
	q->mask = h->capacity - 1;
	q->shift = (uint32_t)__builtin_ctz(h->capacity);
	q->stride = h->slot_stride;
	q->slot_size = h->slot_size;
	q->overflow = h->overflow;
	q->ttl_ns = (uint64_t)h->ttl_ms * 1000000u;
	q->owner = opts->owner;
	q->ack_mode = opts->ack_mode;
	q->prefetch = opts->prefetch ? opts->prefetch : h->capacity;
	*out = q;
	return 0;
}

int hbus_queue_close(hbus_queue *q)
{
	if (!q)
		return -EINVAL;
	hbus_shm_unmap(&q->map);
	close(q->fd);
	free(q);
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
	cfg->numa_node = q->hdr->numa_node;
	return 0;
}

int hbus_queue_set_dead_letter(hbus_queue *q, hbus_dead_fn fn, void *ctx)
{
	if (!q)
		return -EINVAL;
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

static inline void wake_if_waiting(struct hbus_queue *q)
{
	if (atomic_load_explicit(&q->hdr->waiters, SEQ_CST) != 0)
		queue_wake(q);
}

/* Drop the oldest READY message (drop-head overflow), dead-lettering it. */
static void drop_oldest(struct hbus_queue *q, struct hbus_slot *s, uint64_t pos, uint64_t w)
{
	uint64_t lap = word_lap(w);
	struct hbus_msg m;

	if (!atomic_compare_exchange_strong_explicit(&s->state, &w,
			slot_word(lap, q->owner, SLOT_CLAIMED_AUTO), ACQUIRE, RELAXED))
		return;
	if (q->dead_fn) {
		queue_fill_msg(q, s, pos, &m);
		q->dead_fn(q->dead_ctx, q, &m, HBUS_DEAD_MAXLEN);
		counter_add(&q->hdr->cons.dead_lettered, 1);
	}
	counter_add(&q->hdr->prod.dropped_head, 1);
	atomic_store_explicit(&s->state, slot_word(lap + 1, 0, SLOT_FREE), RELEASE);
	cursor_help(&q->hdr->head, pos);
}

/*
 * Claim the slot at the tail for writing.  0 and *pos, or -ENOBUFS when the
 * slot at the tail still holds the previous lap; *blocked then names that
 * position's slot word so callers can recognise their own slot.
 */
static int claim_tail(struct hbus_queue *q, uint64_t *pos, uint64_t *blocked)
{
	_Atomic uint64_t *tail = &q->hdr->tail;
	uint64_t t = atomic_load_explicit(tail, RELAXED);

	for (;;) {
		struct hbus_slot *s = slot_at(q, t);
		uint64_t lap = pos_lap(q, t);
		uint64_t w = atomic_load_explicit(&s->state, ACQUIRE);
		int64_t d = lap_diff(word_lap(w), lap);

		if (d == 0) {
			if (word_state(w) == SLOT_FREE &&
			    atomic_compare_exchange_weak_explicit(&s->state, &w,
					slot_word(lap, q->owner, SLOT_WRITING), ACQUIRE, RELAXED)) {
				cursor_help(tail, t);
				*pos = t;
				return 0;
			}
			if (word_state(w) != SLOT_FREE)
				cursor_help(tail, t); /* taken: help the tail past it */
			t = atomic_load_explicit(tail, RELAXED);
			continue;
		}
		if (d > 0) { /* our view of the tail is stale */
			t = atomic_load_explicit(tail, RELAXED);
			continue;
		}
		/* The previous lap still occupies the slot: the ring is full,
		 * unless what is there can be cleared. */
		if (word_state(w) == SLOT_SKIP) {
			if (atomic_compare_exchange_strong_explicit(&s->state, &w,
					slot_word(lap, 0, SLOT_FREE), RELEASE, RELAXED))
				cursor_help(&q->hdr->head, t - q->mask - 1);
			continue;
		}
		if (word_state(w) == SLOT_READY && q->overflow == HBUS_OVERFLOW_DROP_HEAD) {
			drop_oldest(q, s, t - q->mask - 1, w);
			continue;
		}
		*pos = t;
		if (blocked)
			*blocked = w;
		return -ENOBUFS;
	}
}

/* WRITING -> READY.  Fails only if the slot was taken from us (recovered). */
static inline int publish_slot(struct hbus_queue *q, struct hbus_slot *s, uint64_t pos)
{
	uint64_t lap = pos_lap(q, pos);
	uint64_t w = slot_word(lap, q->owner, SLOT_WRITING);

	if (q->ttl_ns)
		s->enq_ts_ns = hbus_now_ns();
	/* seq_cst: orders the READY store before the waiters load in
	 * wake_if_waiting (the futex handshake in hbus_queue_wait). */
	if (!atomic_compare_exchange_strong_explicit(&s->state, &w,
			slot_word(lap, 0, SLOT_READY), SEQ_CST, RELAXED))
		return -ESTALE;
	return 0;
}

static inline int out_valid(const struct hbus_out *m)
{
	return (m->body || !m->body_len) && (m->meta || !m->meta_len);
}

static inline void write_slot(struct hbus_slot *s, const struct hbus_out *m)
{
	if (m->meta_len)
		memcpy(s->data, m->meta, m->meta_len);
	if (m->body_len)
		memcpy(s->data + m->meta_len, m->body, m->body_len);
	s->body_len = m->body_len;
	s->meta_len = m->meta_len;
	s->flags = m->flags;
	s->send_ts_ns = m->send_ts_ns;
}

int hbus_queue_enqueue_burst(hbus_queue *q, const struct hbus_out *m, unsigned n)
{
	unsigned i;
	uint64_t pos;
	int rc = 0;

	if (!q || (!m && n))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!out_valid(&m[i])) {
			rc = -EINVAL;
			break;
		}
		if ((uint64_t)m[i].meta_len + m[i].body_len > q->slot_size) {
			counter_add(&q->hdr->prod.dropped_oversize, 1);
			rc = -EMSGSIZE;
			break;
		}
		rc = claim_tail(q, &pos, NULL);
		if (rc) {
			counter_add(&q->hdr->prod.dropped_overflow, 1);
			break;
		}
		write_slot(slot_at(q, pos), &m[i]);
		rc = publish_slot(q, slot_at(q, pos), pos);
		if (rc)
			break;
	}
	if (i) {
		counter_add(&q->hdr->prod.enqueued, i);
		wake_if_waiting(q);
	}
	return i ? (int)i : rc;
}

int hbus_queue_enqueue(hbus_queue *q, const struct hbus_out *m)
{
	int rc = hbus_queue_enqueue_burst(q, m, 1);

	return rc == 1 ? 0 : (rc == 0 ? -EINVAL : rc);
}

int hbus_queue_reserve(hbus_queue *q, struct hbus_reservation *r)
{
	uint64_t pos;
	int rc;

	if (!q || !r)
		return -EINVAL;
	rc = claim_tail(q, &pos, NULL);
	if (rc) {
		counter_add(&q->hdr->prod.dropped_overflow, 1);
		return rc;
	}
	r->data = slot_at(q, pos)->data;
	r->cap = q->slot_size;
	r->pos = pos;
	return 0;
}

int hbus_queue_commit(hbus_queue *q, const struct hbus_reservation *r,
		      uint16_t meta_len, uint32_t body_len, uint16_t flags, uint64_t send_ts_ns)
{
	struct hbus_slot *s;
	int rc;

	if (!q || !r)
		return -EINVAL;
	if ((uint64_t)meta_len + body_len > q->slot_size) {
		/* The reservation is given up: the slot must not stall the ring. */
		hbus_queue_abort(q, r);
		counter_add(&q->hdr->prod.dropped_oversize, 1);
		return -EMSGSIZE;
	}
	s = slot_at(q, r->pos);
	s->body_len = body_len;
	s->meta_len = meta_len;
	s->flags = flags;
	s->send_ts_ns = send_ts_ns;
	rc = publish_slot(q, s, r->pos);
	if (rc)
		return rc;
	counter_add(&q->hdr->prod.enqueued, 1);
	wake_if_waiting(q);
	return 0;
}

int hbus_queue_abort(hbus_queue *q, const struct hbus_reservation *r)
{
	uint64_t lap, w;
	struct hbus_slot *s;

	if (!q || !r)
		return -EINVAL;
	s = slot_at(q, r->pos);
	lap = pos_lap(q, r->pos);
	w = slot_word(lap, q->owner, SLOT_WRITING);
	if (!atomic_compare_exchange_strong_explicit(&s->state, &w,
			slot_word(lap, 0, SLOT_SKIP), RELEASE, RELAXED))
		return -ESTALE;
	counter_add(&q->hdr->prod.aborted, 1);
	wake_if_waiting(q);
	return 0;
}

/* Free a slot this handle holds in state `held` at pos: CAS to FREE(lap+1). */
static inline int release_slot(struct hbus_queue *q, uint64_t pos, unsigned held)
{
	struct hbus_slot *s = slot_at(q, pos);
	uint64_t lap = pos_lap(q, pos);
	uint64_t w = slot_word(lap, q->owner, held);

	if (!atomic_compare_exchange_strong_explicit(&s->state, &w,
			slot_word(lap + 1, 0, SLOT_FREE), RELEASE, RELAXED))
		return -ESTALE;
	return 0;
}

static inline unsigned held_state(const struct hbus_queue *q)
{
	return q->ack_mode == HBUS_ACK_MANUAL ? SLOT_CLAIMED : SLOT_CLAIMED_AUTO;
}

/* Hand a claimed message to the dead-letter hook and free its slot. */
static void dead_letter(struct hbus_queue *q, uint64_t pos, enum hbus_dead_reason why)
{
	struct hbus_msg m;

	if (q->dead_fn) {
		queue_fill_msg(q, slot_at(q, pos), pos, &m);
		q->dead_fn(q->dead_ctx, q, &m, why);
		counter_add(&q->hdr->cons.dead_lettered, 1);
	}
	release_slot(q, pos, held_state(q));
}

/* Claim the READY slot at the head.  0 and *pos, or -EAGAIN when empty. */
static int claim_head(struct hbus_queue *q, uint64_t *pos)
{
	_Atomic uint64_t *head = &q->hdr->head;
	uint64_t h = atomic_load_explicit(head, RELAXED);
	unsigned held = held_state(q);

	for (;;) {
		struct hbus_slot *s = slot_at(q, h);
		uint64_t lap = pos_lap(q, h);
		uint64_t w = atomic_load_explicit(&s->state, ACQUIRE);
		int64_t d = lap_diff(word_lap(w), lap);

		if (d < 0)
			return -EAGAIN; /* previous lap still held: nothing here yet */
		if (d == 0) {
			switch (word_state(w)) {
			case SLOT_FREE:
			case SLOT_WRITING:
				return -EAGAIN;
			case SLOT_READY:
				if (atomic_compare_exchange_weak_explicit(&s->state, &w,
						slot_word(lap, q->owner, held), ACQUIRE, RELAXED)) {
					cursor_help(head, h);
					*pos = h;
					return 0;
				}
				continue;
			case SLOT_SKIP:
				if (!atomic_compare_exchange_strong_explicit(&s->state, &w,
						slot_word(lap + 1, 0, SLOT_FREE), RELEASE, RELAXED))
					continue;
				break;
			default: /* claimed by another consumer */
				break;
			}
		}
		cursor_help(head, h);
		h = atomic_load_explicit(head, RELAXED);
	}
}

int hbus_queue_consume_burst(hbus_queue *q, struct hbus_msg *m, unsigned n)
{
	unsigned got = 0, delivered = 0, expired = 0;
	uint64_t pos, now = 0;

	if (!q || (!m && n))
		return -EINVAL;
	if (q->ack_mode == HBUS_ACK_MANUAL) {
		unsigned room = q->unacked < q->prefetch ? q->prefetch - q->unacked : 0;
		if (n > room)
			n = room;
	}
	while (got < n && claim_head(q, &pos) == 0) {
		struct hbus_slot *s = slot_at(q, pos);

		if (q->ttl_ns) {
			if (!now)
				now = hbus_now_ns();
			if (now - s->enq_ts_ns > q->ttl_ns && now > s->enq_ts_ns) {
				dead_letter(q, pos, HBUS_DEAD_EXPIRED);
				expired++;
				continue;
			}
		}
		queue_fill_msg(q, s, pos, &m[got++]);
		delivered++;
	}
	if (delivered)
		counter_add(&q->hdr->cons.delivered, delivered);
	if (expired)
		counter_add(&q->hdr->cons.expired, expired);
	if (q->ack_mode == HBUS_ACK_MANUAL)
		q->unacked += got;
	return (int)got;
}

int hbus_queue_consume(hbus_queue *q, struct hbus_msg *m)
{
	int rc;

	if (!q || !m)
		return -EINVAL;
	rc = hbus_queue_consume_burst(q, m, 1);
	if (rc == 1)
		return 0;
	if (rc == 0 && q->ack_mode == HBUS_ACK_MANUAL && q->unacked >= q->prefetch)
		return -EBUSY;
	return rc < 0 ? rc : -EAGAIN;
}

/* Could a consumer make progress at the head right now? */
static int head_ready(const struct hbus_queue *q)
{
	uint64_t h = atomic_load_explicit(&q->hdr->head, RELAXED);
	uint64_t w = atomic_load_explicit(&slot_at(q, h)->state, ACQUIRE);
	int64_t d = lap_diff(word_lap(w), pos_lap(q, h));

	if (d < 0)
		return 0;
	return d > 0 || (word_state(w) != SLOT_FREE && word_state(w) != SLOT_WRITING);
}

int hbus_queue_wait(hbus_queue *q, int timeout_ms)
{
	struct hbus_queue_hdr *h;
	uint64_t deadline = 0;
	int i, rc = 0;

	if (!q)
		return -EINVAL;
	h = q->hdr;
	/* Spin first: a message due within a few microseconds is cheaper to
	 * catch awake than through a futex round trip. */
	for (i = 0; i < 2048; i++) {
		if (head_ready(q))
			return 0;
		__builtin_ia32_pause();
	}
	if (timeout_ms >= 0)
		deadline = hbus_now_ns() + (uint64_t)timeout_ms * 1000000u;
	atomic_fetch_add_explicit(&h->waiters, 1, SEQ_CST);
	for (;;) {
		uint32_t seq = atomic_load_explicit(&h->futex_seq, SEQ_CST);
		int64_t left = -1;

		if (head_ready(q))
			break;
		if (timeout_ms >= 0) {
			uint64_t now = hbus_now_ns();
			if (now >= deadline) {
				rc = -ETIMEDOUT;
				break;
			}
			left = (int64_t)(deadline - now);
		}
		hbus_futex_wait(&h->futex_seq, seq, left);
	}
	atomic_fetch_sub_explicit(&h->waiters, 1, SEQ_CST);
	return rc;
}

int hbus_queue_consume_wait(hbus_queue *q, struct hbus_msg *m, int timeout_ms)
{
	uint64_t deadline = timeout_ms >= 0 ? hbus_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
	int rc;

	for (;;) {
		rc = hbus_queue_consume(q, m);
		if (rc != -EAGAIN)
			return rc;
		if (timeout_ms >= 0) {
			uint64_t now = hbus_now_ns();
			if (now >= deadline)
				return -ETIMEDOUT;
			timeout_ms = (int)((deadline - now + 999999) / 1000000);
		}
		rc = hbus_queue_wait(q, timeout_ms);
		if (rc)
			return rc;
	}
}

int hbus_queue_ack_burst(hbus_queue *q, const struct hbus_msg *m, unsigned n)
{
	unsigned i, done = 0;
	unsigned held;
	int rc = 0;

	if (!q || (!m && n))
		return -EINVAL;
	held = held_state(q);
	for (i = 0; i < n; i++) {
		if (release_slot(q, m[i].pos, held) == 0)
			done++;
		else
			rc = -ESTALE;
	}
	if (held == SLOT_CLAIMED) {
		q->unacked -= done < q->unacked ? done : q->unacked;
		counter_add(&q->hdr->cons.acked, done);
	} else if (done) {
		counter_add(&q->hdr->cons.released, done);
	}
	return rc;
}

int hbus_queue_ack(hbus_queue *q, const struct hbus_msg *m)
{
	if (!m)
		return -EINVAL;
	return hbus_queue_ack_burst(q, m, 1);
}

int queue_republish(struct hbus_queue *q, uint64_t pos, uint64_t held)
{
	struct hbus_slot *src = slot_at(q, pos), *dst;
	uint64_t lap = pos_lap(q, pos), t, blocked = 0, w;
	int rc;

	if (atomic_load_explicit(&src->state, ACQUIRE) != held)
		return -ESTALE;
	rc = claim_tail(q, &t, &blocked);
	if (rc == -ENOBUFS) {
		/* Full, and the slot blocking the tail is the one we requeue:
		 * republish it in place, its data is already there. */
		if ((t & q->mask) != (pos & q->mask) || blocked != held)
			return -EAGAIN;
		w = held;
		if (!atomic_compare_exchange_strong_explicit(&src->state, &w,
				slot_word(lap + 1, q->owner, SLOT_WRITING), ACQUIRE, RELAXED))
			return -ESTALE;
		cursor_help(&q->hdr->tail, t);
		src->flags |= HBUS_MSG_REDELIVERED;
		publish_slot(q, src, t);
		counter_add(&q->hdr->cons.requeued, 1);
		wake_if_waiting(q);
		return 0;
	}
	if (rc)
		return rc;
	dst = slot_at(q, t);
	memcpy(dst->data, src->data, (size_t)src->meta_len + src->body_len <= q->slot_size ?
	       (size_t)src->meta_len + src->body_len : q->slot_size);
	dst->body_len = src->body_len;
	dst->meta_len = src->meta_len;
	dst->flags = src->flags | HBUS_MSG_REDELIVERED;
	dst->send_ts_ns = src->send_ts_ns;
	publish_slot(q, dst, t);
	w = held;
	atomic_compare_exchange_strong_explicit(&src->state, &w,
		slot_word(lap + 1, 0, SLOT_FREE), RELEASE, RELAXED);
	counter_add(&q->hdr->cons.requeued, 1);
	wake_if_waiting(q);
	return 0;
}

int hbus_queue_nack(hbus_queue *q, const struct hbus_msg *m, int requeue)
{
	uint64_t held;
	int rc;

	if (!q || !m)
		return -EINVAL;
	held = slot_word(pos_lap(q, m->pos), q->owner, held_state(q));
	if (atomic_load_explicit(&slot_at(q, m->pos)->state, ACQUIRE) != held)
		return -ESTALE;
	if (requeue) {
		rc = queue_republish(q, m->pos, held);
		if (rc)
			return rc;
	} else {
		dead_letter(q, m->pos, HBUS_DEAD_REJECTED);
		counter_add(&q->hdr->cons.rejected, 1);
	}
	if (q->ack_mode == HBUS_ACK_MANUAL && q->unacked)
		q->unacked--;
	return 0;
}

int hbus_queue_stats(const hbus_queue *q, struct hbus_queue_stats *s)
{
	const struct hbus_queue_hdr *h;

	if (!q || !s)
		return -EINVAL;
	h = q->hdr;
	s->enqueued = atomic_load_explicit(&h->prod.enqueued, RELAXED);
	s->dropped_overflow = atomic_load_explicit(&h->prod.dropped_overflow, RELAXED);
	s->dropped_oversize = atomic_load_explicit(&h->prod.dropped_oversize, RELAXED);
	s->dropped_head = atomic_load_explicit(&h->prod.dropped_head, RELAXED);
	s->aborted = atomic_load_explicit(&h->prod.aborted, RELAXED);
	s->delivered = atomic_load_explicit(&h->cons.delivered, RELAXED);
	s->acked = atomic_load_explicit(&h->cons.acked, RELAXED);
	s->released = atomic_load_explicit(&h->cons.released, RELAXED);
	s->requeued = atomic_load_explicit(&h->cons.requeued, RELAXED);
	s->rejected = atomic_load_explicit(&h->cons.rejected, RELAXED);
	s->expired = atomic_load_explicit(&h->cons.expired, RELAXED);
	s->dead_lettered = atomic_load_explicit(&h->cons.dead_lettered, RELAXED);
	s->head = atomic_load_explicit(&h->head, RELAXED);
	s->tail = atomic_load_explicit(&h->tail, RELAXED);
	s->capacity = (uint32_t)q->mask + 1;
	s->slot_size = q->slot_size;
	return 0;
}

int hbus_queue_depth(const hbus_queue *q, uint64_t *depth)
{
	uint64_t head, tail;

	if (!q || !depth)
		return -EINVAL;
	head = atomic_load_explicit(&q->hdr->head, ACQUIRE);
	tail = atomic_load_explicit(&q->hdr->tail, ACQUIRE);
	*depth = tail > head ? tail - head : 0;
	return 0;
}
