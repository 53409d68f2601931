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

S=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$S/tests/lib/netns.sh"
. "$S/tests/lib/dptest.sh"
dptest_init ck
PY="python3 $S/tests/lib/dp_traffic.py"
RUN=$T/run
BUS=ck$$
DP_IP=10.97.0.1
PEER_IP=10.97.0.2
CTR=$SHM/hbus-$BUS/dataplane.counters
h() { dptest_h "$@"; }
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

dptest_hbusd "$BUS"
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

dptest_done
