#!/bin/bash
# test_dp_amqp.sh - the mixed path through the dataplane (issue 16): UDP
# datagrams from a kernel socket in a network namespace, received by the real
# hbus-dataplane (DPDK net_af_packet on the host end of a veth), routed into
# an hbus queue, consumed by an AMQP client (pika) through a real hbus-amqp.
#
#   bash tests/test_dp_amqp.sh     (HBUS_BUILD_DIR, HBUS_SOURCE_DIR set by meson)
#
# Root only (exit 77 = skipped otherwise).  Sends 2,000 raw datagrams (one
# message each, routed by a udpmap) and 2,000 messages in hbus frames (5 to a
# datagram, exchange and key in each message) to one queue while pika
# consumes it with manual acks; checks every id and payload checksum once,
# with the exchange and routing key of basic.deliver (tests/lib/dp_traffic.py
# check), or every missing datagram counted where it was dropped (the
# kernel's ring for the port, the veth); then the queue is empty and the
# gateway stops cleanly (no sanitizer report).  Runs under
# `flock /work/.netns.lock` when started by hand on a shared machine.
set -u

S=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$S/tests/lib/netns.sh"
. "$S/tests/lib/dptest.sh"
dptest_init dpamqp
[ -x "$B/amqp/hbus-amqp" ] || { echo "SKIP: $B/amqp/hbus-amqp not built" >&2; exit 77; }
/usr/bin/python3 -c 'import pika' 2>/dev/null || { echo "SKIP: needs python3-pika" >&2; exit 77; }
. "$S/tests/amqp/lib.sh"

BUS=dpa$$
DP_IP=10.95.0.1
PEER_IP=10.95.0.2
N=2000
CTR=$SHM/hbus-$BUS/dataplane.counters
TRAFFIC="python3 $S/tests/lib/dp_traffic.py"
h() { dptest_h "$@"; }

# -------------------------------------------------------------- set-up
mkdir -p "$T/run" && chmod 700 "$T/run"
amqp_perms "$T/perms.json"
dptest_hbusd "$BUS" --permissions "$T/perms.json"
h declare-exchange md direct >/dev/null && h declare-queue qa --capacity 8192 --slot-size 256 >/dev/null &&
	h bind qa md a >/dev/null && h map-udp $DP_IP:7000 md a >/dev/null ||
	{ fail "topology"; dptest_done; }

netns_create $PEER_IP/24 || { fail "namespace / veth"; dptest_done; }
netns_dpdk_prefix hbdpa
"$DP" --no-pci --no-huge -m 512 --log-level=lib.eal:warning -l 0,1 --file-prefix "$NETNS_PREFIX" \
	--vdev="net_af_packet0,iface=$NETNS_HOST_IF,framecnt=16384" -- \
	--bus "$BUS" --ip $DP_IP/24 --idle backoff --run-dir "$T/run" --shm-dir "$SHM" >"$T/dp.log" 2>&1 &
DP_PID=$!
netns_track_pid $DP_PID
wait_for 20 grep -q "session with hbusd" "$T/dp.log" && wait_for 5 test -f "$CTR" ||
	{ cat "$T/dp.log" >&2; fail "dataplane did not start"; dptest_done; }

# The gateway on the same bus (tests/amqp/lib.sh: its log in $T/gw.log).
AMQP_BUS=$BUS AMQP_DIR=$T AMQP_PORT=$(free_port)
gw_start || { fail "gateway did not start"; dptest_done; }
netns_track_pid "$GW_PID"
ok "hbusd, hbus-dataplane on $NETNS_HOST_IF and hbus-amqp on port $AMQP_PORT"

# -------------------------------------------- UDP -> dataplane -> AMQP
drops() { # what the way in dropped: the port's kernel ring, the veth pair
	python3 -c "import sys; sys.path.insert(0, '$S/tests/lib'); import dpstat
print(dpstat.read('$CTR')['port']['port_kernel_drops'] + $(cat "/sys/class/net/$NETNS_HOST_IF/statistics/rx_dropped") + $(netns_exec cat "/sys/class/net/$NETNS_PEER_IF/statistics/tx_dropped"))"
}
d0=$(drops)
# 2N messages and the ARP probe's one (tag ra, id N: not checked below).
/usr/bin/python3 "$S/tests/amqp/consume_json.py" "$AMQP_PORT" qa $((2 * N + 1)) "$T/got.jsonl" \
	--timeout 20 >"$T/consume.out" 2>&1 &
CONS=$!
netns_track_pid $CONS
wait_for 20 test -e "$T/got.jsonl.ready" || fail "pika did not subscribe: $(cat "$T/consume.out")"
# ARP first (the namespace resolves the dataplane's address), then traffic.
netns_exec $TRAFFIC send --dst $DP_IP --port 7000 --kind raw --tag ra --count 1 --start-id $N >/dev/null
wait_for 5 sh -c "ip netns exec $NETNS_NAME ip neigh show $DP_IP | grep -qi '$NETNS_HOST_MAC'" ||
	fail "ARP: $DP_IP not resolved"
netns_exec $TRAFFIC send --dst $DP_IP --port 7000 --kind raw --tag ra --count $N --rate 10000 >/dev/null &&
netns_exec $TRAFFIC send --dst $DP_IP --port 5900 --kind hbus --tag ha --count $N --batch 5 \
	--stream 7 --exchange md --key a --rate 2000 >/dev/null || fail "senders"
wait $CONS
lost=$(( $(drops) - d0 ))
for spec in "ra 1" "ha 5"; do
	set -- $spec
	grep "\"$1:" "$T/got.jsonl" >"$T/$1.jsonl"
	$TRAFFIC check --file "$T/$1.jsonl" --tag "$1" --count $N --exchange md --key a \
		--batch "$2" >"$T/$1.check"
done
res=$(python3 - "$T/ra.check" "$T/ha.check" "$lost" <<'EOF'
import json, sys
r, h = (json.load(open(f)) for f in sys.argv[1:3])
lost = int(sys.argv[3])
bad = r["bad"] + h["bad"] + r["dups"] + h["dups"] + r["partial_frames"] + h["partial_frames"]
whole = r["lost_frames"] + h["lost_frames"]
got = r["delivered"] + h["delivered"]
print("ok" if bad == 0 and whole <= lost else "fail", got, whole, bad)
EOF
)
set -- $res
if [ "$1" = ok ] && [ "$2" = $((2 * N)) ]; then
	ok "$((2 * N)) messages (raw + hbus frames) from UDP through hbus-dataplane to pika via hbus-amqp: ids, checksums, exchange and key intact, once each"
elif [ "$1" = ok ]; then
	ok "$2 of $((2 * N)) delivered intact; the $3 datagram(s) missing were dropped on the way and counted ($lost by the port's ring or the veth)"
else
	fail "UDP -> AMQP: delivered $2, $3 whole datagrams missing (counted drops $lost), $4 bad/dup/partial: $(cat "$T/ra.check" "$T/ha.check")"
fi
/usr/bin/python3 -c "import json; n = sum(1 for l in open('$T/got.jsonl') if json.loads(l)['redelivered'])
assert n == 0, n" || fail "redelivered flags on first deliveries"

# Nothing left behind: the queue is empty once pika has acked.
left=$(h stat --json --interval-ms 10 2>/dev/null | python3 -c "import json, sys
q = [q for q in json.load(sys.stdin)['queues'] if q['name'] == 'qa']
print(q[0]['depth'] if q else 'none')")
if [ "$left" = 0 ]; then
	ok "queue qa drained"
else
	fail "queue qa depth $left after consuming"
fi

# -------------------------------------------------------------- stop
kill -TERM "$GW_PID"
wait "$GW_PID" && ok "hbus-amqp stopped cleanly" || fail "hbus-amqp: exit $? on SIGTERM"
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error" "$T/gw.log"; then
	fail "gateway sanitizer report: $(grep -A5 -E 'ERROR: |runtime error' "$T/gw.log" | head -20)"
fi
kill -TERM $DP_PID
wait $DP_PID && ok "hbus-dataplane stopped cleanly" || fail "hbus-dataplane: exit $? on SIGTERM"
dptest_done
