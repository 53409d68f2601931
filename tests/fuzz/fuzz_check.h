/*
 * fuzz_check.h - the one way a fuzz target says a property failed: name it,
 * then abort (libFuzzer reports the input as a crash).
 */
#ifndef HBUS_FUZZ_CHECK_H
#define HBUS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                    \
	do {                                                                        \
		if (!(c)) {                                                         \
			fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #c,   \
				__FILE__, __LINE__);                                \
			abort();                                                    \
		}                                                                   \
	} while (0)

#endif
