/*
 * args.h - typed fields out of JSON objects, for requests and definitions.
 *
 * One parser per kind of thing (exchange, queue, binding, UDP map) serves
 * both a request (declare_queue {...}) and an entry of a definitions file,
 * so the two accept exactly the same fields with the same checks.  Errors:
 * 503 for a missing or wrong-typed field or a value outside its set, 406
 * for a value past a limit (naming the limit).  `ctx` names where the
 * object came from ("declare_queue", "definitions queues[2]").
 */
#ifndef HBUSD_ARGS_H
#define HBUSD_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "herr.h"
#include "model.h"

/* Refuse fields not in allowed (NULL-terminated): a typo must not become a
 * silently ignored option. */
int args_check_fields(json_t *o, const char *const *allowed, const char *ctx, struct herr *e);

/* dflt == NULL: the field is required.  A JSON null counts as absent. */
int arg_str(json_t *o, const char *k, const char **out, const char *dflt, const char *ctx,
	    struct herr *e);
int arg_bool(json_t *o, const char *k, bool *out, bool dflt, const char *ctx, struct herr *e);
/* Integer in [lo, hi] (503 outside: use for values that are not limits). */
int arg_int(json_t *o, const char *k, int64_t *out, int64_t dflt, bool required, int64_t lo,
	    int64_t hi, const char *ctx, struct herr *e);

int args_exchange(json_t *o, struct exchange_args *a, const char *ctx, struct herr *e);
int args_queue(json_t *o, struct queue_args *a, const char *ctx, struct herr *e);
/* hdrs: room for HBUS_HEADERS_MAX headers (a->headers points into it). */
int args_binding(json_t *o, struct binding_args *a, struct hbus_header *hdrs, const char *ctx,
		 struct herr *e);
/* with_target: exchange and key are required (map_udp), else absent (unmap). */
int args_udpmap(json_t *o, struct udpmap_args *a, bool with_target, const char *ctx,
		struct herr *e);

#endif
