/*
 * dp_busdir.h - where hbus-dataplane keeps its counters file: in the bus
 * directory hbusd serves the bus from, which hbusd names in its hello
 * reply.  hbusd reads every <bus dir>/NAME.counters for `hbus stat`, so a dataplane
 * whose file is anywhere else would count unseen: with --shm-dir it must
 * agree with hbusd; without, it follows hbusd.
 *
 * Pure C (no DPDK): unit-tested against a real hbusd (tests/test_dp_busdir.c).
 */
#ifndef HBUS_DP_BUSDIR_H
#define HBUS_DP_BUSDIR_H

#include <stddef.h>

#include "hbus.h"

/* 1 when paths a and b are the same directory (device and inode), 0 when
 * they are not (or b does not exist), negative errno when a cannot be looked at. */
int dp_busdir_same(const char *a, const char *b);

/*
 * The bus directory of the session's last hello, into out: 0, or when hbusd
 * did not name one (an hbusd older than the field) the default directory
 * for bus (hugetlbfs, else /dev/shm; 1 is returned so the caller can say so).
 */
int dp_busdir_from_session(hbus_client *cl, const char *bus, char *out, size_t cap);

/*
 * Does the session's hbusd serve the bus from ours, the directory the
 * counters file is in?  0 yes (or hbusd did not say), -EXDEV no: err gets a
 * line naming both and the fix.  shm_dir is the --shm-dir ours came from
 * (NULL: ours came from an earlier hbusd's hello).
 */
int dp_busdir_check(hbus_client *cl, const char *bus, const char *ours, const char *shm_dir,
		    char *err, size_t cap);

#endif
