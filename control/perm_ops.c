/* perm_ops.c - see perm_ops.h. */
#include "perm_ops.h"

int perm_declare_exchange(const struct perms *p, const struct peer *who,
			  const struct exchange_args *a, struct herr *e)
{
	if (perms_check(p, who, PERM_CONFIGURE, "exchange", a->name, e))
		return -1;
	/* Unroutable messages of a->name go on to the alternate: that is a
	 * write to it, as RabbitMQ checks it. */
	if (a->alternate && (perms_check(p, who, PERM_WRITE, "exchange", a->alternate, e) ||
			     perms_check(p, who, PERM_READ, "exchange", a->name, e)))
		return -1;
	return 0;
}

int perm_declare_queue(const struct perms *p, const struct peer *who, const struct queue_args *a,
		       struct herr *e)
{
	if (perms_check(p, who, PERM_CONFIGURE, "queue", a->name, e))
		return -1;
	/* Dead letters of a->name are published to the DLX. */
	if (a->dlx && (perms_check(p, who, PERM_WRITE, "exchange", a->dlx, e) ||
		       perms_check(p, who, PERM_READ, "queue", a->name, e)))
		return -1;
	return 0;
}

int perm_bind(const struct perms *p, const struct peer *who, const struct binding_args *a,
	      struct herr *e)
{
	if (perms_check(p, who, PERM_WRITE, a->dest_is_exchange ? "exchange" : "queue", a->dest,
			e) ||
	    perms_check(p, who, PERM_READ, "exchange", a->source, e))
		return -1;
	return 0;
}

int perm_map_udp(const struct perms *p, const struct peer *who, const struct udpmap_args *a,
		 struct herr *e)
{
	if (perms_check(p, who, PERM_CONFIGURE, "exchange", a->exchange, e) ||
	    perms_check(p, who, PERM_WRITE, "exchange", a->exchange, e))
		return -1;
	return 0;
}
