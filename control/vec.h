/*
 * vec.h - a growable array of pointers, in declaration order.
 *
 * The model keeps exchanges, queues, bindings, consumers and UDP maps in
 * these.  Lookups are linear: counts are bounded by the limits in model.h
 * (thousands), every topology change recompiles the whole routing table
 * anyway, and the order users declared things in is the order `hbus list`
 * shows them.
 */
#ifndef HBUSD_VEC_H
#define HBUSD_VEC_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vec {
	void **v;
	unsigned n, cap;
};

static inline int vec_push(struct vec *a, void *p)
{
	if (a->n == a->cap) {
		unsigned cap = a->cap ? a->cap * 2 : 16;
		void **nv = realloc(a->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = cap;
	}
	a->v[a->n++] = p;
	return 0;
}

/* Remove element i, keeping the order of the rest. */
static inline void vec_del(struct vec *a, unsigned i)
{
	memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof(*a->v));
	a->n--;
}

static inline int vec_find(const struct vec *a, const void *p)
{
	unsigned i;

	for (i = 0; i < a->n; i++)
		if (a->v[i] == p)
			return (int)i;
	return -1;
}

static inline void vec_free(struct vec *a)
{
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

#endif
