/*
 * dispatch.h - what the op handlers of dispatch.c and dispatch_gw.c share:
 * one request being answered.  Not used outside them.
 */
#ifndef HBUSD_DISPATCH_H
#define HBUSD_DISPATCH_H

#include "perm_ops.h"
#include "server.h"

struct op_ctx {
	struct hbusd *d;
	struct session *s;
	struct vsession *vs; /* "as": acting for an AMQP user (vsession.c) */
	uint32_t owner;      /* the session's owner id, or the virtual session's */
	struct perm_checker who; /* whose permissions: the peer's, or the AMQP user's */
	json_t *req;
	const char *op;
	int fds[2];          /* descriptors the reply passes (the model's), -1: none */
	struct herr e;
};

/* {"ok": true} */
json_t *dispatch_ok(void);
/* May the requester (the peer, or the AMQP user it acts as) do k on name?
 * 0, or -1 with c->e filled (403). */
int dispatch_perm(struct op_ctx *c, enum perm_kind k, const char *noun, const char *name);

/* dispatch_gw.c */
json_t *op_amqp_login(struct op_ctx *c);
json_t *op_amqp_logout(struct op_ctx *c);
json_t *op_authorize(struct op_ctx *c);
json_t *op_gateway_report(struct op_ctx *c);

#endif
