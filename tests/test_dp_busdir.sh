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

B=${HBUS_BUILD_DIR:?set HBUS_BUILD_DIR to the build directory}
S=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$S/tests/lib/netns.sh"
netns_require_root

DP=$B/dataplane/hbus-dataplane
HBUSD=$B/control/hbusd
HBUS=$B/control/hbus
for x in "$DP" "$HBUSD" "$HBUS"; do
	[ -x "$x" ] || { echo "SKIP: $x not built" >&2; exit 77; }
done

netns_init   # unique names and the cleanup trap; no namespace is made
T=$(mktemp -d /tmp/hbus-test-bd.XXXXXX) || exit 1
netns_track_dir "$T"
SHM=$(mktemp -d /dev/shm/hbus-test-bd.XXXXXX) || exit 1
netns_track_dir "$SHM"
WRONG=$(mktemp -d /dev/shm/hbus-test-bd2.XXXXXX) || exit 1
netns_track_dir "$WRONG"
supp_env=$(printf '%s' "${LSAN_OPTIONS:-}" | tr ':' '\n' | sed -n 's/^suppressions=//p' | tail -1)
cat "$S/tests/lib/lsan-dpdk.supp" ${supp_env:+"$supp_env"} >"$T/lsan.supp" 2>/dev/null
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$T/lsan.supp:print_suppressions=0"
RUN=$T/run
BUS=bd$$
CTR=$SHM/hbus-$BUS/dataplane.counters
FAILS=0
HBUSD_PID=
DP_PID=
N=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { echo "ok - $*"; }
h() { "$HBUS" --bus "$BUS" --run-dir "$RUN" "$@"; }

start_hbusd() {
	"$HBUSD" --foreground --bus "$BUS" --run-dir "$RUN" --shm-dir "$SHM" >>"$T/hbusd.log" 2>&1 &
	HBUSD_PID=$!
	netns_track_pid $HBUSD_PID
	wait_for 10 h list exchanges || { cat "$T/hbusd.log" >&2; echo "FAIL: hbusd did not start" >&2; exit 1; }
}

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

stop_dp() { # stop_dp: SIGTERM, wait; RC = its exit status
	kill -TERM "$DP_PID" 2>/dev/null
	wait "$DP_PID"
	RC=$?
}

dp_in_stat() { # dp_in_stat: hbus stat --json has our dataplane, alive
	h stat --json --interval-ms 10 | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(x.get("name") == "dataplane" and x.get("alive") for x in d.get("dataplanes", [])) else 1)'
}

exited() { ! kill -0 "$1" 2>/dev/null; }

# ------------------------------------------- 1. no --shm-dir: follows hbusd
start_hbusd
start_dp "$T/dp1.log"
if wait_for 20 test -f "$CTR" && wait_for 10 dp_in_stat &&
	grep -q "counters: $SHM/hbus-$BUS/dataplane.counters" "$T/dp1.log"; then
	ok "without --shm-dir the counters are in hbusd's bus directory and hbus stat shows them"
else
	cat "$T/dp1.log" >&2
	fail "counters not in $CTR / not in hbus stat"
fi
stop_dp
rc=$RC
[ "$rc" = 0 ] && [ ! -e "$CTR" ] && ok "clean stop removes the counters file" ||
	fail "stop: exit $rc, counters file $(ls "$CTR" 2>&1)"

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
	stop_dp
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
stop_dp
rc=$RC
[ "$rc" = 0 ] || fail "stop after 3: exit $rc"

# ------------------------- 4. before hbusd, no --shm-dir: waits, then follows
kill -TERM "$HBUSD_PID"
wait "$HBUSD_PID"
start_dp "$T/dp4.log"
if wait_for 20 grep -q "waiting for hbusd of bus '$BUS'" "$T/dp4.log" &&
	sleep 1 && [ ! -e "$CTR" ] && ! exited "$DP_PID"; then
	ok "started before hbusd without --shm-dir: waits for it, counts nowhere yet"
else
	cat "$T/dp4.log" >&2
	fail "did not wait for hbusd"
fi
start_hbusd
if wait_for 20 test -f "$CTR" && wait_for 10 dp_in_stat; then
	ok "then follows the hbusd that came: counters in its bus directory, in hbus stat"
else
	cat "$T/dp4.log" >&2
	fail "did not follow hbusd once it came"
fi
stop_dp
rc=$RC
[ "$rc" = 0 ] || fail "stop after 4: exit $rc"

# ----------------------------------------------- 5. SIGTERM while waiting
kill -TERM "$HBUSD_PID"
wait "$HBUSD_PID"
start_dp "$T/dp5.log"
wait_for 20 grep -q "waiting for hbusd" "$T/dp5.log"
stop_dp
rc=$RC
if [ "$rc" = 0 ] && [ ! -e "$CTR" ]; then
	ok "SIGTERM while waiting for hbusd: exit 0, nothing left"
else
	cat "$T/dp5.log" >&2
	fail "SIGTERM while waiting: exit $rc"
fi

if [ "$FAILS" -ne 0 ]; then
	echo "$FAILS check(s) failed" >&2
	exit 1
fi
echo "all checks passed"
