/*
 * dispatch_gw.c - the ops only a gateway uses (hbus-amqp, docs/AMQP.md):
 * its AMQP users' virtual sessions (vsession.c), the permission questions
 * it asks before it acts on its own, and its counters for stat.
 */
#include "dispatch.h"
#include "args.h"

#include <string.h>

json_t *op_amqp_login(struct op_ctx *c)
{
	return vsession_login(c->d, c->s, c->req, c->op, &c->e);
}

json_t *op_amqp_logout(struct op_ctx *c)
{
	if (!c->vs) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "amqp_logout: field 'as' is required");
		return NULL;
	}
	if (vsession_logout(c->d, c->s, c->vs->owner, &c->e))
		return NULL;
	c->vs = NULL;
	return dispatch_ok();
}

/* May the requester do this?  What a gateway asks before it acts on its
 * own (basic.publish needs write on the exchange, as in RabbitMQ). */
json_t *op_authorize(struct op_ctx *c)
{
	static const char *const kinds[] = { "configure", "write", "read" };
	const char *kind, *x, *q;
	unsigned k;

	if (arg_str(c->req, "perm", &kind, NULL, c->op, &c->e) ||
	    arg_str(c->req, "exchange", &x, "", c->op, &c->e) ||
	    arg_str(c->req, "queue", &q, "", c->op, &c->e))
		return NULL;
	for (k = 0; k < 3 && strcmp(kind, kinds[k]); k++)
		;
	if (k == 3 || (json_object_get(c->req, "exchange") != NULL) ==
		      (json_object_get(c->req, "queue") != NULL)) {
		herr_set(&c->e, AMQP_COMMAND_INVALID, "authorize: give 'perm' (configure, write or "
			 "read) and one of 'exchange' or 'queue'");
		return NULL;
	}
	if (json_object_get(c->req, "exchange")) {
		if (dispatch_perm(c, (enum perm_kind)k, "exchange", x))
			return NULL;
		if (!model_exchange_exists(&c->d->model, x)) {
			herr_set(&c->e, AMQP_NOT_FOUND, "no exchange '%s'", x);
			return NULL;
		}
		return dispatch_ok();
	}
	if (dispatch_perm(c, (enum perm_kind)k, "queue", q))
		return NULL;
	if (!model_queue(&c->d->model, q)) {
		herr_set(&c->e, AMQP_NOT_FOUND, "no queue '%s'", q);
		return NULL;
	}
	return dispatch_ok();
}

json_t *op_gateway_report(struct op_ctx *c)
{
	return vsession_report(c->d, c->s, c->req, &c->e);
}
