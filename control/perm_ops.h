/*
 * perm_ops.h - the permissions each topology operation needs (the table in
 * docs/CONTROL.md, RabbitMQ's), one function per operation.
 *
 * A request (dispatch.c) and an item of an imported definitions file
 * (defs.c) that do the same thing call the same function, so the two doors
 * cannot drift apart: declaring an exchange with an alternate exchange, or
 * a queue with a dead-letter exchange, needs write on that exchange either
 * way.  0, or -1 with a 403 naming the permission, resource and user.
 */
#ifndef HBUSD_PERM_OPS_H
#define HBUSD_PERM_OPS_H

#include "herr.h"
#include "model.h"
#include "perms.h"

int perm_declare_exchange(const struct perms *p, const struct peer *who,
			  const struct exchange_args *a, struct herr *e);
int perm_declare_queue(const struct perms *p, const struct peer *who, const struct queue_args *a,
		       struct herr *e);
int perm_bind(const struct perms *p, const struct peer *who, const struct binding_args *a,
	      struct herr *e);
int perm_map_udp(const struct perms *p, const struct peer *who, const struct udpmap_args *a,
		 struct herr *e);

#endif
