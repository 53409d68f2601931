/*
 * perm_ops.h - the permissions each topology operation needs (the table in
 * docs/CONTROL.md, RabbitMQ's), one function per operation.
 *
 * A request (dispatch.c) and an item of an imported definitions file
 * (defs.c) that do the same thing call the same function, so the two doors
 * cannot drift apart: declaring an exchange with an alternate exchange, or
 * a queue with a dead-letter exchange, needs write on that exchange either
 * way.  Who is asking is a checker: a Unix peer, or an AMQP user a gateway
 * acts for.  0, or -1 with the checker's 403 (permission, resource, user).
 */
#ifndef HBUSD_PERM_OPS_H
#define HBUSD_PERM_OPS_H

#include "herr.h"
#include "model.h"
#include "perms.h"

struct perm_checker {
	/* One permission on one name; noun is "exchange" or "queue". */
	int (*fn)(void *ctx, enum perm_kind k, const char *noun, const char *name, struct herr *e);
	void *ctx;
};

int perm_declare_exchange(const struct perm_checker *c, const struct exchange_args *a,
			  struct herr *e);
int perm_declare_queue(const struct perm_checker *c, const struct queue_args *a, struct herr *e);
int perm_bind(const struct perm_checker *c, const struct binding_args *a, struct herr *e);
int perm_map_udp(const struct perm_checker *c, const struct udpmap_args *a, struct herr *e);

#endif
