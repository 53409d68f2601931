/*
 * soak_util.h - what soak_pub and soak_consume share: stop signals, the
 * session with hbusd (connect with backoff, periodic check so a restarted
 * hbusd is rejoined), clocks, and ledger writes that reach the kernel
 * before the caller goes on (a kill -9 right after loses nothing written).
 */
#ifndef HBUS_SOAK_UTIL_H
#define HBUS_SOAK_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "hbus.h"

#define SOAK_CHECK_PERIOD_NS 50000000ull /* session check: 20/s, as `hbus consume` */

extern volatile sig_atomic_t soak_stop;

/* SIGTERM / SIGINT set soak_stop (no SA_RESTART: waits return early). */
void soak_install_stop(void);

uint64_t soak_mono_ns(void);
void soak_sleep_ns(uint64_t ns);

/* Connect to bus (run_dir) until it works or soak_stop; backs off from 20
 * to 200 ms between attempts (hbusd may be down: the chaos killed it).
 * 0 and *out, or -ECANCELED when stopped first. */
int soak_connect(const char *bus, const char *run_dir, hbus_client **out);

/* hbus_client_check at most every SOAK_CHECK_PERIOD_NS (*next: state). */
void soak_check(hbus_client *c, uint64_t *next);

/* Open the ledger for appending (created 0644); -1 on error (printed). */
int soak_ledger_open(const char *path);
/* write(2) all of buf; 0, or -1 after printing why. */
int soak_write_all(int fd, const void *buf, size_t len);

#endif
