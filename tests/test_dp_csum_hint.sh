#!/bin/bash
# test_dp_csum_hint.sh - on a net_af_packet port whose sender leaves UDP
# checksums to TX offload (a veth peer with `tx on`), every datagram is
# dropped as bad_udp_checksum; hbus-dataplane says once what is likely
# happening and the fix (ethtool -K <peer> tx off), and the fix works.
#
#   bash tests/test_dp_csum_hint.sh  (HBUS_BUILD_DIR, HBUS_SOURCE_DIR set by meson)
#
# Root only (exit 77 = skipped otherwise).  A namespace with a veth pair
# (tests/lib/netns.sh), a real hbusd, hbus-dataplane on net_af_packet, a
# kernel UDP sender in the namespace.  Checks: 100 datagrams with offload on
# are all counted under drop_bad_udp_checksum and none passes; the hint is
# logged exactly once, naming the interface and the command; 100 more do not
# repeat it; after `ethtool -K <peer> tx off` the next 100 are delivered.
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
PY="python3 $S/tests/lib/dp_traffic.py"

netns_init
T=$(mktemp -d /tmp/hbus-test-ck.XXXXXX) || exit 1
netns_track_dir "$T"
SHM=$(mktemp -d /dev/shm/hbus-test-ck.XXXXXX) || exit 1
netns_track_dir "$SHM"
supp_env=$(printf '%s' "${LSAN_OPTIONS:-}" | tr ':' '\n' | sed -n 's/^suppressions=//p' | tail -1)
cat "$S/tests/lib/lsan-dpdk.supp" ${supp_env:+"$supp_env"} >"$T/lsan.supp" 2>/dev/null
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$T/lsan.supp:print_suppressions=0"
RUN=$T/run
BUS=ck$$
DP_IP=10.97.0.1
PEER_IP=10.97.0.2
CTR=$SHM/hbus-$BUS/dataplane.counters
FAILS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { echo "ok - $*"; }
h() { "$HBUS" --bus "$BUS" --run-dir "$RUN" "$@"; }
dpq() {
	python3 -c "import sys; sys.path.insert(0, '$S/tests/lib'); import dpstat
d = dpstat.read('$CTR'); t = d['totals']
print($1)"
}
dpq_true() { [ "$(dpq "$1")" = True ]; }
hints() { grep -c "ethtool -K <peer> tx off" "$T/dp.log"; }
send() { # send TAG: 100 raw datagrams to the mapped port
	netns_exec $PY send --dst $DP_IP --port 7000 --kind raw --tag "$1" --count 100 \
		--rate 2000 >/dev/null || fail "sender $1"
}

"$HBUSD" --foreground --bus "$BUS" --run-dir "$RUN" --shm-dir "$SHM" >"$T/hbusd.log" 2>&1 &
netns_track_pid $!
wait_for 10 h list exchanges || { cat "$T/hbusd.log" >&2; echo "FAIL: hbusd did not start" >&2; exit 1; }
h declare-exchange md direct >/dev/null && h declare-queue q --capacity 1024 --slot-size 256 >/dev/null &&
	h bind q md u >/dev/null && h map-udp $DP_IP:7000 md u >/dev/null || { fail "topology"; exit 1; }

netns_create $PEER_IP/24 || { fail "namespace / veth"; exit 1; }
# What netns_create undoes for every other test: the peer leaves UDP
# checksums to an offload that never happens.
netns_exec ethtool -K "$NETNS_PEER_IF" tx on >/dev/null 2>&1 || { fail "ethtool tx on"; exit 1; }
netns_dpdk_prefix hbck
"$DP" -l 0,1 --no-pci --no-huge -m 256 --file-prefix "$NETNS_PREFIX" --log-level=lib.eal:warning \
	--vdev="net_af_packet0,iface=$NETNS_HOST_IF,framecnt=4096" -- \
	--bus "$BUS" --ip $DP_IP/24 --idle backoff --run-dir "$RUN" >"$T/dp.log" 2>&1 &
netns_track_pid $!
wait_for 20 grep -q "session with hbusd" "$T/dp.log" && wait_for 5 test -f "$CTR" ||
	{ cat "$T/dp.log" >&2; fail "dataplane did not start"; exit 1; }

# ------------------------------------------------- offload on: all dropped
send on1
if wait_for 10 dpq_true "t['drop_bad_udp_checksum'] == 100" && dpq_true "t['udp_pkts'] == 0"; then
	ok "peer with TX checksum offload: all 100 datagrams counted as drop_bad_udp_checksum"
else
	fail "offload on: bad $(dpq "t['drop_bad_udp_checksum']"), passed $(dpq "t['udp_pkts']")"
fi
if wait_for 5 test "$(hints)" = 1 &&
	grep -q "UDP datagrams on $NETNS_HOST_IF failed their UDP checksum, 0 passed" "$T/dp.log" &&
	grep -q "the peer of $NETNS_HOST_IF: ifindex [0-9]* in its namespace" "$T/dp.log"; then
	ok "hint logged once: $(grep 'ethtool -K' "$T/dp.log")"
else
	cat "$T/dp.log" >&2
	fail "no hint, or not the expected one ($(hints) lines)"
fi

send on2
wait_for 10 dpq_true "t['drop_bad_udp_checksum'] == 200"
sleep 0.3  # two stats periods of the main lcore
[ "$(hints)" = 1 ] && ok "100 more: the hint is not repeated" || fail "hint repeated: $(hints) lines"

# ------------------------------------------------ the fix the hint gives
netns_exec ethtool -K "$NETNS_PEER_IF" tx off >/dev/null 2>&1
send off
h consume q --count 100 --timeout-ms 5000 --json >"$T/off.json" 2>"$T/off.err"
res=$($PY check --file "$T/off.json" --tag off --start 0 --count 100 --exchange md --key u)
if echo "$res" | grep -q '"missing": 0' && dpq_true "t['drop_bad_udp_checksum'] == 200"; then
	ok "after ethtool -K $NETNS_PEER_IF tx off: all 100 delivered intact"
else
	fail "after the fix: $res; bad $(dpq "t['drop_bad_udp_checksum']")"
fi

if [ "$FAILS" -ne 0 ]; then
	echo "$FAILS check(s) failed" >&2
	exit 1
fi
echo "all checks passed"
