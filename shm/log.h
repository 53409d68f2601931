/*
 * log.h - one-line diagnostics on stderr.
 *
 * Control-path only (never called on a hot path).  HBUS_LOG=quiet silences
 * info lines; warnings and errors always print.
 */
#ifndef HBUS_LOG_H
#define HBUS_LOG_H

enum hbus_log_level { HBUS_LOG_DEBUG, HBUS_LOG_INFO, HBUS_LOG_WARN, HBUS_LOG_ERR };

void hbus_log(enum hbus_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define HBUS_INFO(...) hbus_log(HBUS_LOG_INFO, __VA_ARGS__)
#define HBUS_WARN(...) hbus_log(HBUS_LOG_WARN, __VA_ARGS__)
#define HBUS_ERR(...)  hbus_log(HBUS_LOG_ERR, __VA_ARGS__)

#endif
