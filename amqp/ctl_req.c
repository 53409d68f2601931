/* ctl_req.c - control requests as values (gw.h): made on the loops,
 * run by the control thread (ctl.c) or, in the fuzz target, answered in
 * place (tests/fuzz/fuzz_amqp.c). */
#include "gw.h"

#include <stdlib.h>

struct ctl_req *ctl_new(enum ctl_kind k)
{
	struct ctl_req *r = calloc(1, sizeof(*r));

	if (r)
		r->kind = k;
	return r;
}

void ctl_free(struct ctl_req *r)
{
	if (!r)
		return;
	json_decref(r->req);
	json_decref(r->reply);
	free(r);
}

json_t *ctl_json(struct conn *c, const char *op)
{
	json_t *j = json_pack("{s:s}", "op", op);

	if (j && c && c->vs)
		json_object_set_new(j, "as", json_integer(c->vs));
	return j;
}
