#!/bin/bash
# test_dp_busdir.sh - the real hbus-dataplane finds the bus directory from
# hbusd (hello field bus_dir), so `hbus stat` shows it whatever --shm-dir
# hbusd was given; a --shm-dir that disagrees is an error that says so.
# DPDK on net_null (no network namespace), a real hbusd.
#
#   bash tests/test_dp_busdir.sh     (HBUS_BUILD_DIR, HBUS_SOURCE_DIR set by meson)
#
# Root only (exit 77 = skipped otherwise).  Checks:
#  1. no --shm-dir, hbusd up first: counters in hbusd's bus directory,
#     `hbus stat --json` lists the dataplane alive;
#  2. --shm-dir elsewhere: exit 1, the error names hbusd's directory, ours
#     and the fix; no counters file left behind;
#  3. --shm-dir the same as hbusd's: runs;
#  4. no --shm-dir, hbusd not up yet: the dataplane waits (says so, counts
#     nowhere), then follows the hbusd that comes, in its directory;
#  5. SIGTERM while waiting: clean exit 0.
set -u

S=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$S/tests/lib/netns.sh"
. "$S/tests/lib/dptest.sh"
dptest_init bd   # no namespace is made: net_null needs none

WRONG=$(mktemp -d /dev/shm/hbus-test-bd2.XXXXXX) || exit 1
netns_track_dir "$WRONG"
RUN=$T/run
BUS=bd$$
CTR=$SHM/hbus-$BUS/dataplane.counters
DP_PID=
N=0
h() { dptest_h "$@"; }

# start_dp LOG [OPTIONS...]: hbus-dataplane on net_null in the background.
start_dp() {
	local log=$1
	shift
	N=$((N + 1))
	netns_dpdk_prefix "hbbd$N"
	"$DP" -l 0,1 --no-pci --no-huge -m 256 --file-prefix "$NETNS_PREFIX" \
		--log-level=lib.eal:warning --vdev=net_null0 -- \
		--bus "$BUS" --ip 10.98.0.1/24 --idle backoff --run-dir "$RUN" "$@" >"$log" 2>&1 &
	DP_PID=$!
	netns_track_pid $DP_PID
}

# stop_dp WHAT: SIGTERM, wait; a failure unless it exits 0.
stop_dp() {
	kill -TERM "$DP_PID" 2>/dev/null
	wait "$DP_PID"
	RC=$?
	[ "$RC" = 0 ] || fail "$1: exit $RC"
}

stop_hbusd() {
	kill -TERM "$HBUSD_PID"
	wait "$HBUSD_PID"
}

dp_in_stat() { # dp_in_stat: hbus stat --json has our dataplane, alive
	h stat --json --interval-ms 10 | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(x.get("name") == "dataplane" and x.get("alive") for x in d.get("dataplanes", [])) else 1)'
}

exited() { ! kill -0 "$1" 2>/dev/null; }

# ------------------------------------------- 1. no --shm-dir: follows hbusd
dptest_hbusd "$BUS"
start_dp "$T/dp1.log"
if wait_for 20 test -f "$CTR" && wait_for 10 dp_in_stat &&
	grep -q "counters: $SHM/hbus-$BUS/dataplane.counters" "$T/dp1.log"; then
	ok "without --shm-dir the counters are in hbusd's bus directory and hbus stat shows them"
else
	cat "$T/dp1.log" >&2
	fail "counters not in $CTR / not in hbus stat"
fi
stop_dp "stop after 1"
[ ! -e "$CTR" ] && ok "clean stop removes the counters file" || fail "counters file left: $CTR"

# ------------------------------ 2. --shm-dir elsewhere: an error that says so
start_dp "$T/dp2.log" --shm-dir "$WRONG"
if wait_for 30 exited "$DP_PID"; then
	wait "$DP_PID"
	rc=$?
	msg="hbusd serves bus '$BUS' from $SHM/hbus-$BUS, but --shm-dir $WRONG puts this dataplane's counters in $WRONG/hbus-$BUS"
	if [ "$rc" = 1 ] && grep -qF "$msg" "$T/dp2.log" && grep -q "or none (it then asks hbusd)" "$T/dp2.log" &&
		[ ! -e "$WRONG/hbus-$BUS/dataplane.counters" ]; then
		ok "--shm-dir that disagrees with hbusd: exit 1, the error names both directories and the fix"
	else
		cat "$T/dp2.log" >&2
		fail "wrong --shm-dir: exit $rc, or message / leftover file"
	fi
else
	cat "$T/dp2.log" >&2
	fail "a dataplane with a wrong --shm-dir kept running"
	stop_dp "stop after 2"
fi

# ------------------------------------------------ 3. the same --shm-dir: runs
start_dp "$T/dp3.log" --shm-dir "$SHM/"
if wait_for 20 grep -q "session with hbusd" "$T/dp3.log" && wait_for 10 dp_in_stat &&
	sleep 0.5 && ! exited "$DP_PID"; then
	ok "--shm-dir naming hbusd's directory (another spelling): runs, hbus stat shows it"
else
	cat "$T/dp3.log" >&2
	fail "the right --shm-dir was refused"
fi
stop_dp "stop after 3"

# ------------------------- 4. before hbusd, no --shm-dir: waits, then follows
stop_hbusd
start_dp "$T/dp4.log"
if wait_for 20 grep -q "waiting for hbusd of bus '$BUS'" "$T/dp4.log" &&
	sleep 1 && [ ! -e "$CTR" ] && ! exited "$DP_PID"; then
	ok "started before hbusd without --shm-dir: waits for it, counts nowhere yet"
else
	cat "$T/dp4.log" >&2
	fail "did not wait for hbusd"
fi
dptest_hbusd "$BUS"
if wait_for 20 test -f "$CTR" && wait_for 10 dp_in_stat; then
	ok "then follows the hbusd that came: counters in its bus directory, in hbus stat"
else
	cat "$T/dp4.log" >&2
	fail "did not follow hbusd once it came"
fi
stop_dp "stop after 4"

# ----------------------------------------------- 5. SIGTERM while waiting
stop_hbusd
start_dp "$T/dp5.log"
wait_for 20 grep -q "waiting for hbusd" "$T/dp5.log"
stop_dp "SIGTERM while waiting for hbusd"
[ "$RC" = 0 ] && [ ! -e "$CTR" ] && ok "SIGTERM while waiting for hbusd: exit 0, nothing left"

dptest_done
