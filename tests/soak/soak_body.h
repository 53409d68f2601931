/*
 * soak_body.h - the message body the soak carries end to end, shared by
 * soak_pub (writes it) and soak_consume (checks it).
 *
 *   "<kind>:<id, at least 8 digits>:<16 pad letters>:<fnv1a, 8 hex digits>"
 *
 * The checksum covers everything before the last ':'.  It is the format of
 * tests/lib/dp_traffic.py make_body(), so the UDP sender in the peer
 * namespace (tests/soak/udp_sender.py, which imports it) and the local
 * publishers produce bodies one consumer checks the same way.
 */
#ifndef HBUS_SOAK_BODY_H
#define HBUS_SOAK_BODY_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../fnv1a.h"

#define SOAK_PAD_LEN  16u
#define SOAK_KIND_MAX 31u
#define SOAK_BODY_MAX 96u

/* Write the body of (kind, id) into buf; returns its length, or -1. */
static inline int soak_body_make(char *buf, size_t cap, const char *kind, uint64_t id)
{
	int n = snprintf(buf, cap, "%s:%08" PRIu64 ":", kind, id);
	unsigned k;

	if (n < 0 || (size_t)n + SOAK_PAD_LEN + 10 > cap)
		return -1;
	for (k = 0; k < SOAK_PAD_LEN; k++)
		buf[n++] = (char)(97 + (id * 7 + k) % 26);
	n += snprintf(buf + n, cap - (size_t)n, ":%08x", fnv1a32(buf, (size_t)n));
	return n;
}

/*
 * Check a received body: 0 and (kind, id) when it is well formed and its
 * checksum matches, -1 otherwise.  Never reads past len.
 */
static inline int soak_body_check(const uint8_t *b, size_t len, char kind[SOAK_KIND_MAX + 1],
				  uint64_t *id)
{
	const uint8_t *c1, *c2, *c3, *end = b + len;
	uint32_t want = 0;
	uint64_t v = 0;
	const uint8_t *p;

	if (len < 12)
		return -1;
	c1 = memchr(b, ':', len);
	if (!c1 || c1 == b || (size_t)(c1 - b) > SOAK_KIND_MAX)
		return -1;
	c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
	if (!c2 || c2 == c1 + 1 || c2 - c1 - 1 > 19)
		return -1;
	for (p = c1 + 1; p < c2; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	c3 = c2 + 1 + SOAK_PAD_LEN;
	if (end - c3 != 9 || *c3 != ':')
		return -1;
	for (p = c3 + 1; p < end; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;

		if (d < 0)
			return -1;
		want = want << 4 | (uint32_t)d;
	}
	if (fnv1a32(b, (size_t)(c3 - b)) != want)
		return -1;
	memcpy(kind, b, (size_t)(c1 - b));
	kind[c1 - b] = '\0';
	*id = v;
	return 0;
}

#endif
