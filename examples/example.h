/*
 * example.h - what the examples share: a session with the bus, control
 * requests, and failing loudly.  The bus is $HBUS_BUS (else "default"),
 * hbusd's socket is in $HBUS_RUN_DIR (else /run/hbus).
 */
#ifndef HBUS_EXAMPLE_H
#define HBUS_EXAMPLE_H

#include <errno.h>
#include <hbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* rc, or exit(1) when it is a negative errno: hbusd's refusals say why. */
static inline int check(hbus_client *c, int rc, const char *what)
{
	const char *msg = NULL;
	int code = 0;

	if (rc >= 0)
		return rc;
	if (rc == -EREMOTEIO && hbus_client_error(c, &code, &msg) == 0)
		fprintf(stderr, "%s: %d %s\n", what, code, msg);
	else
		fprintf(stderr, "%s: %s\n", what, hbus_strerror(rc));
	exit(1);
}

static inline hbus_client *connect_bus(void)
{
	hbus_client *c = NULL;

	check(NULL, hbus_connect(NULL, &c), "connect to hbusd");
	return c;
}

/* One control request (JSON, docs/CONTROL.md): declare, bind, ... */
static inline void request(hbus_client *c, const char *json)
{
	char reply[1024];

	check(c, hbus_call(c, json, reply, sizeof(reply)), json);
}

/* A header of a message's metadata (hbus_meta_decode) by name, or NULL. */
static inline const struct hbus_header *header(const struct hbus_meta *meta, const char *name)
{
	for (unsigned i = 0; i < meta->header_count; i++)
		if (meta->headers[i].name_len == strlen(name) &&
		    !memcmp(meta->headers[i].name, name, meta->headers[i].name_len))
			return &meta->headers[i];
	return NULL;
}

#endif
