/*
 * herr.h - a refused request: the AMQP reply code and one line a person can
 * act on.  Every layer of hbusd that can refuse something fills one of these
 * and returns -1, so the message is written where the reason is known (the
 * model knows which limit was hit, the permission check knows which pattern
 * refused) and the server only copies it into the reply.
 */
#ifndef HBUSD_HERR_H
#define HBUSD_HERR_H

#include <stdarg.h>
#include <stdio.h>

/* AMQP 0-9-1 reply codes, as docs/CONTROL.md uses them. */
enum amqp_code {
	AMQP_ACCESS_REFUSED   = 403,
	AMQP_NOT_FOUND        = 404,
	AMQP_RESOURCE_LOCKED  = 405,
	AMQP_PRECONDITION     = 406,
	AMQP_SYNTAX_ERROR     = 502,
	AMQP_COMMAND_INVALID  = 503,
	AMQP_NOT_ALLOWED      = 530,
	AMQP_NOT_IMPLEMENTED  = 540,
	AMQP_INTERNAL_ERROR   = 541,
};

struct herr {
	int code;
	char msg[400];
};

static inline int herr_set(struct herr *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline int herr_set(struct herr *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

#endif
