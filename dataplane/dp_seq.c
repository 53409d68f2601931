/* dp_seq.c - see dp_seq.h. */
#include <errno.h>

#include "dp_seq.h"

#define RLX memory_order_relaxed

static inline uint64_t ld(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, RLX);
}

static inline void st(_Atomic uint64_t *v, uint64_t x)
{
	atomic_store_explicit(v, x, RLX);
}

int dp_seq_init(struct dp_seq *s, struct hbus_dpc_stream *tab, uint32_t entries,
		_Atomic uint64_t *ctr)
{
	if (!s || !tab || !ctr || entries < 2 || (entries & (entries - 1)))
		return -EINVAL;
	s->tab = tab;
	s->mask = entries - 1;
	s->shift = 32u - (uint32_t)__builtin_ctz(entries);
	s->ctr = ctr;
	s->last = NULL;
	s->last_id = 0;
	s->n_dirty = 0;
	return 0;
}

static inline uint32_t slot_of(const struct dp_seq *s, uint32_t id)
{
	return (id * 0x9e3779b1u) >> s->shift; /* Fibonacci hashing */
}

/* Find or insert (insert sets *fresh; a new entry's durable_seq is seq).
 * NULL when the table is full. */
static struct hbus_dpc_stream *lookup(struct dp_seq *s, uint32_t id, int insert, uint64_t seq,
				      int *fresh)
{
	uint32_t i = slot_of(s, id), n;

	for (n = 0; n <= s->mask; n++, i = (i + 1) & s->mask) {
		struct hbus_dpc_stream *e = &s->tab[i];

		if (!atomic_load_explicit(&e->used, RLX)) {
			if (!insert)
				return NULL;
			atomic_store_explicit(&e->stream_id, id, RLX);
			/* Nothing before the first sequence seen was ours to see. */
			atomic_store_explicit(&e->durable_seq, seq, RLX);
			/* used last: a reader that sees it sees the id. */
			atomic_store_explicit(&e->used, 1, memory_order_release);
			*fresh = 1;
			return e;
		}
		if (atomic_load_explicit(&e->stream_id, RLX) == id)
			return e;
	}
	return NULL;
}

static inline void mark_dirty(struct dp_seq *s, struct hbus_dpc_stream *e)
{
	uint32_t i;

	if (s->n_dirty > DP_SEQ_DIRTY_MAX)
		return; /* the whole table is committed anyway */
	for (i = 0; i < s->n_dirty; i++)
		if (s->dirty[i] == e)
			return;
	if (s->n_dirty < DP_SEQ_DIRTY_MAX)
		s->dirty[s->n_dirty] = e;
	s->n_dirty++;
}

void dp_seq_commit(struct dp_seq *s)
{
	uint32_t i;

	if (s->n_dirty > DP_SEQ_DIRTY_MAX) {
		for (i = 0; i <= s->mask; i++)
			if (atomic_load_explicit(&s->tab[i].used, RLX))
				st(&s->tab[i].durable_seq, ld(&s->tab[i].next_seq));
	} else {
		for (i = 0; i < s->n_dirty; i++)
			st(&s->dirty[i]->durable_seq, ld(&s->dirty[i]->next_seq));
	}
	s->n_dirty = 0;
}

void dp_seq_frame(struct dp_seq *s, uint32_t stream_id, uint64_t first_seq, uint32_t count)
{
	struct hbus_dpc_stream *e = s->last;
	int fresh = 0;
	uint64_t next, end = first_seq + count;

	if (!e || s->last_id != stream_id) {
		e = lookup(s, stream_id, 1, first_seq, &fresh);
		if (!e) {
			hbus_dpc_add(&s->ctr[HBUS_DPC_STREAMS_UNTRACKED], 1);
			return;
		}
		s->last = e;
		s->last_id = stream_id;
	}
	mark_dirty(s, e);
	st(&e->msgs, ld(&e->msgs) + count);
	if (fresh) {
		st(&e->next_seq, end);
		return;
	}
	next = ld(&e->next_seq);
	if (first_seq == next) {
		st(&e->next_seq, end);
	} else if (first_seq > next) {
		uint64_t lost = first_seq - next;

		st(&e->gaps, ld(&e->gaps) + lost);
		hbus_dpc_add(&s->ctr[HBUS_DPC_SEQ_GAPS], lost);
		st(&e->next_seq, end);
	} else if (next - first_seq > DP_SEQ_RESET_WINDOW) {
		st(&e->resets, ld(&e->resets) + 1);
		hbus_dpc_add(&s->ctr[HBUS_DPC_SEQ_RESETS], 1);
		st(&e->next_seq, end);
	} else if (count) {
		/* Overlap with what was seen: the part below next is duplicate. */
		uint64_t dup = (end <= next ? end : next) - first_seq;

		st(&e->dups, ld(&e->dups) + dup);
		hbus_dpc_add(&s->ctr[HBUS_DPC_SEQ_DUPS], dup);
		if (end > next)
			st(&e->next_seq, end);
	}
	/* A late heartbeat (count 0, first_seq < next) says nothing new. */
}

const struct hbus_dpc_stream *dp_seq_find(const struct dp_seq *s, uint32_t stream_id)
{
	int fresh = 0;

	return lookup((struct dp_seq *)s, stream_id, 0, 0, &fresh);
}
