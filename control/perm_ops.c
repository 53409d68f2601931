/* perm_ops.c - see perm_ops.h. */
#include "perm_ops.h"

#define CHECK(k, noun, name) c->fn(c->ctx, (k), (noun), (name), e)

int perm_declare_exchange(const struct perm_checker *c, const struct exchange_args *a,
			  struct herr *e)
{
	if (CHECK(PERM_CONFIGURE, "exchange", a->name))
		return -1;
	/* Unroutable messages of a->name go on to the alternate: that is a
	 * write to it, as RabbitMQ checks it. */
	if (a->alternate && (CHECK(PERM_WRITE, "exchange", a->alternate) ||
			     CHECK(PERM_READ, "exchange", a->name)))
		return -1;
	return 0;
}

int perm_declare_queue(const struct perm_checker *c, const struct queue_args *a, struct herr *e)
{
	if (CHECK(PERM_CONFIGURE, "queue", a->name))
		return -1;
	/* Dead letters of a->name are published to the DLX. */
	if (a->dlx && (CHECK(PERM_WRITE, "exchange", a->dlx) || CHECK(PERM_READ, "queue", a->name)))
		return -1;
	return 0;
}

int perm_bind(const struct perm_checker *c, const struct binding_args *a, struct herr *e)
{
	return CHECK(PERM_WRITE, a->dest_is_exchange ? "exchange" : "queue", a->dest) ||
	       CHECK(PERM_READ, "exchange", a->source) ? -1 : 0;
}

int perm_map_udp(const struct perm_checker *c, const struct udpmap_args *a, struct herr *e)
{
	return CHECK(PERM_CONFIGURE, "exchange", a->exchange) ||
	       CHECK(PERM_WRITE, "exchange", a->exchange) ? -1 : 0;
}
