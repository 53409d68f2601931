# tests/lib/dptest.sh - what a shell test of the real hbus-dataplane sets up
# first (sourced by bash scripts after tests/lib/netns.sh; root only).
#
#   dptest_init NAME   root or skip (77), the binaries (DP, HBUSD, HBUS) or
#                      skip, netns_init (unique names, cleanup at exit), a temp
#                      dir T and a shared-memory dir SHM (removed at exit),
#                      LSan told about DPDK's own leaks (sanitizer builds)
#   dptest_hbusd BUS [ARGS]  start hbusd --foreground on BUS in $T/run, $SHM,
#                      with ARGS (log $T/hbusd.log; HBUSD_PID); exit 1 if it
#                      does not come up
#   dptest_h ARGS      hbus --bus $DPTEST_BUS --run-dir $T/run ARGS
#   fail MSG, ok MSG   one check (FAILS counts failures); dptest_done: exit status

dptest_init() {
	B=${HBUS_BUILD_DIR:?set HBUS_BUILD_DIR to the build directory}
	netns_require_root
	DP=$B/dataplane/hbus-dataplane
	HBUSD=$B/control/hbusd
	HBUS=$B/control/hbus
	local x supp_env
	for x in "$DP" "$HBUSD" "$HBUS"; do
		[ -x "$x" ] || { echo "SKIP: $x not built" >&2; exit 77; }
	done
	netns_init
	T=$(mktemp -d "/tmp/hbus-test-$1.XXXXXX") || exit 1
	netns_track_dir "$T"
	SHM=$(mktemp -d "/dev/shm/hbus-test-$1.XXXXXX") || exit 1
	netns_track_dir "$SHM"
	# LSan takes one suppressions file: DPDK's leaks plus the environment's.
	supp_env=$(printf '%s' "${LSAN_OPTIONS:-}" | tr ':' '\n' | sed -n 's/^suppressions=//p' | tail -1)
	cat "$S/tests/lib/lsan-dpdk.supp" ${supp_env:+"$supp_env"} >"$T/lsan.supp" 2>/dev/null
	export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$T/lsan.supp:print_suppressions=0"
	FAILS=0
}

dptest_h() { "$HBUS" --bus "$DPTEST_BUS" --run-dir "$T/run" "$@"; }

dptest_hbusd() {
	DPTEST_BUS=$1
	shift
	"$HBUSD" --foreground --bus "$DPTEST_BUS" --run-dir "$T/run" --shm-dir "$SHM" "$@" \
		>>"$T/hbusd.log" 2>&1 &
	HBUSD_PID=$!
	netns_track_pid $HBUSD_PID
	wait_for 10 dptest_h list exchanges ||
		{ cat "$T/hbusd.log" >&2; echo "FAIL: hbusd did not start" >&2; exit 1; }
}

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { echo "ok - $*"; }

dptest_done() {
	if [ "$FAILS" -ne 0 ]; then
		echo "$FAILS check(s) failed" >&2
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
