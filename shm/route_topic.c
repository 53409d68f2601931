/*
 * route_topic.c - topic exchanges: patterns compiled to a trie over words,
 * matched with an explicit stack.
 *
 * The trie has one node per distinct pattern prefix.  A node's children are
 * its literal words (an open-addressing slot table, so a node with 5,000
 * symbols costs one probe), at most one '*' child and at most one '#'
 * child.  Each node is one record -- header, edge slots, destination list
 * -- in depth-first order (route_layout.h), because a lookup's cost is its
 * cache misses.  Runs of '#' are collapsed at compile time ("#.#" matches
 * exactly what "#" matches): fewer states, and no '#' has a '#' child.
 *
 * Matching is a depth-first search over states (node, word position),
 * with an explicit stack.  A '#' node H at position i means "the '#' has
 * consumed the words up to i"; from there it may stop (H's children at i)
 * or consume word i (state (H, i + 1), "the chain").
 *
 * Without care, "#.a.#.a.#" against 200 words is exponential: the inner
 * '#' nodes are reached once for every way the outer ones split the words.
 * The stack order prevents it.  Expanding (N, i) pushes N's chain state
 * first and its children after, so everything below (N, i) is finished
 * before (N, i + 1) starts; by induction every node is expanded at
 * increasing positions, so a '#' node is *arrived at* in increasing order
 * too, and the chain started by its first arrival covers every later one.
 * Hence a later arrival can simply be dropped, and all the search needs
 * to remember is which '#' nodes it has arrived at -- and only for '#'
 * nodes under another '#' (their parent has RT_T_UNDER_HASH): a top-level
 * '#' is arrived at exactly once.  Every (node, position) is then expanded
 * at most once.  The memo holds RT_MEMO_NODES nested '#' nodes per lookup;
 * a key that reaches more of them (a pattern set built for it) is still
 * routed correctly, the extra arrivals being re-expanded.
 */
#include "route_topic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- compile */

enum { W_LIT = 0, W_STAR = 1, W_HASH = 2 };

struct tb_word {
	const char *s;
	uint32_t len;
	uint32_t kind;
};

struct tb_pat {
	uint32_t first, n; /* words[first .. first + n) */
	const struct rt_cbind *bind;
};

struct tb_node {
	uint32_t lit_head, lit_tail, next_sibling; /* literal children, a chain */
	uint32_t n_lit;
	uint32_t star, hash;
	uint32_t flags; /* RT_T_* */
	const char *word; /* the literal word of the edge into this node */
	uint32_t word_len;
	uint32_t pat_first, pat_n; /* sorted patterns that end here */
	uint32_t off, dests_off;   /* placed in the table */
};

struct tb {
	struct tb_word *words;
	struct tb_pat *pats;
	struct tb_node *nodes;
	uint32_t n_nodes, cap_nodes;
};

/* Split a pattern into words, collapsing runs of '#'.  The empty pattern
 * has no words, like the empty key. */
static uint32_t split_pattern(const char *k, uint32_t len, struct tb_word *out)
{
	uint32_t i, start = 0, n = 0;

	if (len == 0)
		return 0;
	for (i = 0; i <= len; i++) {
		struct tb_word w;

		if (i < len && k[i] != '.')
			continue;
		w.s = k + start;
		w.len = i - start;
		w.kind = W_LIT;
		if (w.len == 1 && w.s[0] == '*')
			w.kind = W_STAR;
		else if (w.len == 1 && w.s[0] == '#')
			w.kind = W_HASH;
		if (!(w.kind == W_HASH && n > 0 && out[n - 1].kind == W_HASH))
			out[n++] = w;
		start = i + 1;
	}
	return n;
}

static int word_cmp(const struct tb_word *a, const struct tb_word *b)
{
	int c;

	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
	if (c)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

/* Lexicographic order over word sequences: patterns sharing a prefix end
 * up adjacent, so the trie can be built in one pass (see tb_insert). */
static int pat_cmp(const void *pa, const void *pb, void *ctx)
{
	const struct tb_pat *a = pa, *b = pb;
	const struct tb_word *w = ctx;
	uint32_t i;
	int c;

	for (i = 0; i < a->n && i < b->n; i++)
		if ((c = word_cmp(&w[a->first + i], &w[b->first + i])) != 0)
			return c;
	if (a->n != b->n)
		return a->n < b->n ? -1 : 1;
	return a->bind < b->bind ? -1 : a->bind > b->bind;
}

static uint32_t tb_new_node(struct tb *t, int *err)
{
	struct tb_node *n;

	if (t->n_nodes == t->cap_nodes) {
		uint32_t cap = t->cap_nodes ? t->cap_nodes * 2 : 64;

		n = realloc(t->nodes, (size_t)cap * sizeof(*n));
		if (!n) {
			*err = -ENOMEM;
			return 0;
		}
		t->nodes = n;
		t->cap_nodes = cap;
	}
	memset(&t->nodes[t->n_nodes], 0, sizeof(*t->nodes));
	return t->n_nodes++;
}

/*
 * Insert sorted pattern p.  Because patterns arrive in lexicographic order,
 * if node cur already has a literal child for word w it is the child added
 * last: every pattern between the one that created it and p shares the
 * prefix up to w.  So one comparison replaces a child search.
 */
static int tb_insert(struct tb *t, uint32_t p)
{
	const struct tb_pat *pat = &t->pats[p];
	uint32_t cur = 0, i, child, under_hash = 0;
	int err = 0;

	for (i = 0; i < pat->n; i++) {
		const struct tb_word *w = &t->words[pat->first + i];
		struct tb_node *n = &t->nodes[cur];

		if (w->kind == W_STAR || w->kind == W_HASH) {
			child = w->kind == W_STAR ? n->star : n->hash;
			if (!child) {
				if (!(child = tb_new_node(t, &err)))
					return err;
				n = &t->nodes[cur];
				if (w->kind == W_STAR)
					n->star = child;
				else
					n->hash = child;
				if (w->kind == W_HASH)
					t->nodes[child].flags = RT_T_HASH | RT_T_UNDER_HASH;
				else
					t->nodes[child].flags = under_hash ? RT_T_UNDER_HASH : 0;
			}
			under_hash |= w->kind == W_HASH;
		} else {
			child = n->lit_tail;
			if (!child || t->nodes[child].word_len != w->len ||
			    memcmp(t->nodes[child].word, w->s, w->len) != 0) {
				if (!(child = tb_new_node(t, &err)))
					return err;
				n = &t->nodes[cur];
				t->nodes[child].word = w->s;
				t->nodes[child].word_len = w->len;
				t->nodes[child].flags = under_hash ? RT_T_UNDER_HASH : 0;
				if (n->lit_tail)
					t->nodes[n->lit_tail].next_sibling = child;
				else
					n->lit_head = child;
				n->lit_tail = child;
				n->n_lit++;
			}
		}
		cur = child;
	}
	/* Equal patterns are adjacent too: they extend one range. */
	if (t->nodes[cur].pat_n == 0)
		t->nodes[cur].pat_first = p;
	t->nodes[cur].pat_n++;
	return 0;
}

/* Pass 1: place node i's record (header + edge slots) and, right behind
 * it, its destination list.  Creation order is depth-first pre-order
 * (patterns were inserted sorted), so parents sit just before children. */
static int tb_place_node(struct tb *t, struct rt_buf *b, uint32_t i)
{
	struct tb_node *n = &t->nodes[i];
	uint32_t cap = n->n_lit ? rt_slot_cap(n->n_lit) : 0, k;

	n->off = rt_buf_alloc(b, sizeof(struct rt_tnode) + (size_t)cap * sizeof(struct rt_slot));
	if (n->pat_n) {
		struct rt_dest *d = malloc(n->pat_n * sizeof(*d));

		if (!d)
			return -ENOMEM;
		for (k = 0; k < n->pat_n; k++)
			d[k] = t->pats[n->pat_first + k].bind->dest;
		n->dests_off = rt_buf_dests(b, d, n->pat_n);
		free(d);
	}
	return b->err;
}

/* Pass 2, once every record has its offset: link node i to its children.
 * Word strings go to the end of the table: the slots hold the first
 * RT_PFX bytes, so a lookup reads a string only for longer words. */
static int tb_link_node(struct tb *t, struct rt_buf *b, uint32_t i)
{
	const struct tb_node *n = &t->nodes[i];
	struct rt_tnode hdr = { .flags = n->flags, .dests_off = n->dests_off };
	struct rt_slot *ents = NULL;
	uint32_t k, c, cap = 0;

	if (n->star)
		hdr.star = t->nodes[n->star].off;
	if (n->hash)
		hdr.hash = t->nodes[n->hash].off;
	if (n->n_lit) {
		if (!(ents = malloc(n->n_lit * sizeof(*ents))))
			return -ENOMEM;
		for (k = 0, c = n->lit_head; c; c = t->nodes[c].next_sibling, k++) {
			const struct tb_node *ch = &t->nodes[c];

			ents[k].hash = rt_hash(ch->word, ch->word_len);
			ents[k].len = ch->word_len;
			ents[k].off = rt_buf_str(b, ch->word, ch->word_len);
			ents[k].id = ch->off;
		}
		cap = rt_slot_cap(n->n_lit);
		hdr.flags |= RT_T_EDGES;
		hdr.edges_mask = cap - 1;
	}
	if (!b->err) {
		struct rt_tnode *rec = rt_buf_at(b, n->off);

		memcpy(rec, &hdr, sizeof(hdr));
		if (cap)
			rt_slots_fill(b, rec->edges, cap, ents, n->n_lit);
	}
	free(ents);
	return b->err;
}

int rt_topic_build(struct rt_buf *b, const struct rt_cbind *binds, unsigned n,
		   uint32_t *nodes_off, uint32_t *n_nodes)
{
	struct tb t = { 0 };
	size_t total = 0;
	uint32_t i, used = 0;
	int err = 0;

	*nodes_off = 0;
	*n_nodes = 0;
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		total += binds[i].key_len + 1;
	t.words = malloc(total * sizeof(*t.words));
	t.pats = malloc(n * sizeof(*t.pats));
	if (!t.words || !t.pats) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		t.pats[i].first = used;
		t.pats[i].n = split_pattern(binds[i].key, binds[i].key_len, t.words + used);
		t.pats[i].bind = &binds[i];
		used += t.pats[i].n;
	}
	qsort_r(t.pats, n, sizeof(*t.pats), pat_cmp, t.words);
	tb_new_node(&t, &err); /* the root, node 0 */
	for (i = 0; i < n && !err; i++)
		err = tb_insert(&t, i);
	if (err)
		goto out;
	for (i = 0; i < t.n_nodes && !err; i++)
		err = tb_place_node(&t, b, i);
	for (i = 0; i < t.n_nodes && !err; i++)
		err = tb_link_node(&t, b, i);
	*nodes_off = t.nodes[0].off;
	*n_nodes = t.n_nodes;
out:
	free(t.words);
	free(t.pats);
	free(t.nodes);
	return err;
}

/* --------------------------------------------------------------- match */

/*
 * Stack bound.  Each expanded state pushes at most 4 states, and every
 * push increases (word position + trie depth) by at least 1; both are at
 * most RT_WORDS_MAX, so the search tree is at most 2 * RT_WORDS_MAX deep
 * and a LIFO stack never holds more than 3 * depth + 4 states.
 */
#define RT_TSTACK (3u * 2u * RT_WORDS_MAX + 4u)
#define RT_MEMO_NODES 512u

#define ITEM(off, pos) ((uint64_t)(off) << RT_POS_BITS | (pos))

int rt_topic_match(struct rt_ctx *c, const struct rt_exchange *x, const char *key, size_t len)
{
	struct rt_key words[RT_WORDS_MAX];
	uint64_t stack[RT_TSTACK];
	uint32_t memo_items[RT_MEMO_NODES], memo_slots[2 * RT_MEMO_NODES];
	struct rt_set memo; /* nested '#' nodes arrived at (record offsets) */
	uint32_t nw = 0, sp = 0, i, start = 0;
	int rc;

	if (x->data_off == 0 || len > HBUS_NAME_MAX)
		return 0;
	/* The empty key has no words; otherwise dots + 1 words. */
	for (i = 0; len && i <= len; i++) {
		if (i < len && key[i] != '.')
			continue;
		rt_key_init(&words[nw++], key + start, i - start);
		start = i + 1;
	}
	rt_set_init(&memo, memo_items, RT_MEMO_NODES, memo_slots, 2 * RT_MEMO_NODES);
	stack[sp++] = ITEM(x->data_off, 0);
	while (sp) {
		uint64_t it = stack[--sp];
		uint32_t pos = (uint32_t)it & ((1u << RT_POS_BITS) - 1);
		const struct rt_tnode *n = rt_at(c->base, (uint32_t)(it >> RT_POS_BITS));

		/* Only a corrupt table could get here (see RT_TSTACK). */
		if (sp + 4 > RT_TSTACK)
			return -EOVERFLOW;
		/* The chain goes in first: it must run after all of this
		 * state's subtree (see the top of this file). */
		if ((n->flags & RT_T_HASH) && pos < nw)
			stack[sp++] = it + 1; /* '#' consumes word pos */
		if (pos == nw && n->dests_off && (rc = rt_emit(c, n->dests_off)) < 0)
			return rc;
		if (pos < nw && (n->flags & RT_T_EDGES)) {
			const struct rt_slot *e = rt_slot_find(c->base, n->edges, n->edges_mask,
							       &words[pos]);
			if (e)
				stack[sp++] = ITEM(e->id, pos + 1);
		}
		if (pos < nw && n->star)
			stack[sp++] = ITEM(n->star, pos + 1);
		/* A later arrival at a nested '#' is covered by the first one's
		 * chain.  rt_set_add: 1 = first arrival, 0 = seen, -E2BIG =
		 * memo full (arrive again: redundant, never wrong). */
		if (n->hash && (!(n->flags & RT_T_UNDER_HASH) || rt_set_add(&memo, n->hash) != 0))
			stack[sp++] = ITEM(n->hash, pos);
	}
	return 0;
}
