/* chan_internal.h - what the channel modules (chan.c, chan_consume.c)
 * share. */
#ifndef HBUS_AMQP_CHAN_INTERNAL_H
#define HBUS_AMQP_CHAN_INTERNAL_H

#include "gw.h"

#include <string.h>

/* Queue a method frame on ch's connection. */
void chan_put(struct chan *ch, amqp_method_number_t id, void *m);
/* hbusd refused r: a channel exception with its code, or a connection
 * exception for the codes the spec makes hard errors. */
void chan_refused(struct chan *ch, struct ctl_req *r);

int chan_basic_consume(struct chan *ch, const amqp_basic_consume_t *m);
int chan_basic_cancel(struct chan *ch, const amqp_basic_cancel_t *m);
int chan_basic_get(struct chan *ch, const amqp_basic_get_t *m);

/* An AMQP short string as a C string: false if it does not fit or holds a
 * NUL byte. */
static inline bool chan_cstr(amqp_bytes_t b, char *out, size_t cap)
{
	if (b.len >= cap || memchr(b.bytes, 0, b.len))
		return false;
	memcpy(out, b.bytes, b.len);
	out[b.len] = 0;
	return true;
}

/* In a method handler (ch in scope, returning int): b into the array out,
 * or a 406 channel exception and return 0. */
#define NAME(b, out, id)                                                                    \
	if (!chan_cstr((b), (out), sizeof(out))) {                                          \
		chan_exception(ch, AMQP_PRECONDITION_FAILED, (id), "PRECONDITION_FAILED - "  \
			       "a name holds a NUL byte");                                    \
		return 0;                                                                    \
	}

#endif
