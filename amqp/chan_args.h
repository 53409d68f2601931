/* chan_args.h - AMQP field tables -> hbusd request fields (chan_args.c). */
#ifndef HBUS_AMQP_CHAN_ARGS_H
#define HBUS_AMQP_CHAN_ARGS_H

#include "gw.h"

struct arg_err {
	char msg[200]; /* "PRECONDITION_FAILED - ..." */
};

bool field_int(const amqp_field_value_t *v, int64_t *out);
bool field_text(const amqp_field_value_t *v, char *out, size_t cap);
/* Each adds fields to req; -1 with err->msg (406) for a bad argument. */
int args_queue_json(const amqp_table_t *t, json_t *req, struct arg_err *err);
int args_exchange_json(const amqp_table_t *t, json_t *req, struct arg_err *err);
int args_binding_json(const amqp_table_t *t, json_t *req, struct arg_err *err);
/* want: the declare request; have: hbusd's passive reply. */
int args_queue_equivalent(json_t *want, json_t *have, struct arg_err *err);

#endif
