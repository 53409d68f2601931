/*
 * fnv1a.h - FNV-1a, 32 bits: the payload checksum the tests and the soak
 * carry end to end (also the one in tests/lib/dp_traffic.py).  No
 * dependencies, so both the Criterion suites (testutil.h) and the soak's
 * plain programs (soak/soak_body.h) include it.
 */
#ifndef HBUS_TEST_FNV1A_H
#define HBUS_TEST_FNV1A_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t fnv1a32(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *b++) * 16777619u;
	return h;
}

#endif
