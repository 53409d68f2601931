/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int log_threshold(void)
{
	static int threshold = -1;
	if (threshold < 0) {
		const char *e = getenv("HBUS_LOG");
		if (e && !strcmp(e, "quiet"))
			threshold = HBUS_LOG_WARN;
		else if (e && !strcmp(e, "debug"))
			threshold = HBUS_LOG_DEBUG;
		else
			threshold = HBUS_LOG_INFO;
	}
	return threshold;
}

void hbus_log(enum hbus_log_level lvl, const char *fmt, ...)
{
	static const char *const tag[] = { "debug", "info", "warning", "error" };
	char line[1024];
	va_list ap;

	if ((int)lvl < log_threshold())
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write so lines from several processes do not interleave. */
	fprintf(stderr, "hbus: %s: %s\n", tag[lvl], line);
}
