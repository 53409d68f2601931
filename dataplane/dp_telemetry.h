/*
 * dp_telemetry.h - DPDK telemetry commands over the counters file:
 *   /hbus/stats          every counter summed over the lcores, and the port's
 *   /hbus/lcore,N        one worker lcore's counters
 *   /hbus/streams        per-stream sequence tracking (msgs, gaps, dups, resets)
 * Read with dpdk-telemetry.py (socket /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2).
 */
#ifndef HBUS_DP_TELEMETRY_H
#define HBUS_DP_TELEMETRY_H

#include "dp_counter_ids.h"

/* Register the commands; f must stay mapped until the process exits
 * (the telemetry thread may run a command at any time).  0 or -errno. */
int dp_telemetry_register(const struct hbus_dpc_file *f);
/* Commands answer "not running" from now on (before f is unmapped). */
void dp_telemetry_detach(void);

#endif
