#!/bin/bash
# tests/soak/run.sh - the chaos soak: the whole bus under kill -9, every
# message id accounted for at the end.
#
#   bash tests/soak/run.sh            (HBUS_BUILD_DIR, HBUS_SOURCE_DIR set by meson)
#   HBUS_SOAK_SECONDS=300 bash tests/soak/run.sh
#
# Root and DPDK only (exit 77 = skipped otherwise).  Runs at once, for
# HBUS_SOAK_SECONDS of chaos (default 60):
#
#   peer namespace: udp_sender.py, 3 hbus streams from one kernel UDP socket
#       u1 -> key w, u2 -> key l, u3 -> key w with every 4th message malformed
#   hbus-dataplane on net_af_packet (veth), -l 0,1, backoff idle
#   hbusd
#   soak_pub x2 (key w): hbus_publish, ledger of accepted / refused ids
#   soak_consume x3 on queue work (reject, 1024 slots), x2 on queue lossy
#       (drop-head, 256 slots): manual ack, 2% nack with requeue, a ledger
#       line per delivery written before the ack, then 0-2 ms of
#       "processing" before the ack (where a kill -9 leaves them unacked)
#   chaos: every 0.3-1.5 s one of (weights 4:2:1:1:2): kill -9 a consumer,
#       a publisher, hbusd or the dataplane (restarted 0.1-1.5 s later), or
#       SIGSTOP the consumers of one queue for 0.5-2 s (so both overflow
#       policies act)
#
# then stops the chaos, restarts what is down, stops the sources, lets the
# queues drain, stops everything with SIGTERM (exit status 0 each) and
# checks the books (tests/soak/account.py):
#
#   Per id.  D = ids with an acked delivery in some ledger.
#   - every body's checksum matches; every delivered id was sent;
#   - an id has at most one delivery without the redelivered flag;
#   - publishers: every accepted id (hbus_publish >= 1) is in D (work never
#     drops an accepted message); no refused id is; a killed publisher has
#     exactly one id in doubt (the call the kill cut short), either way;
#   - malformed UDP messages are never in D.
#   Per queue, from its own counters, after the drain (docs/QUEUE.md):
#     enqueued = acked + dropped_head            (rejected = expired = released = 0)
#     |ids acked in the ledgers on q| = acked + H_q,   H_work = 0,
#     H_lossy = deliveries logged by a consumer killed before its ack, then
#     requeued and discarded by drop-head before anyone took them again.
#   UDP, all streams (nothing unaccounted):
#     sent - |D ∩ udp| = seq_gaps + dp_drops + dropped_head(lossy) - H_lossy - K
#     seq_gaps  = sum over every dataplane instance of the per-stream gaps:
#                 frames the kernel dropped while no dataplane ran, or its
#                 packet ring overflowed, or the sender's kernel refused, or
#                 a dataplane without a table yet saw; a restarted
#                 dataplane continues each stream from the sequence its
#                 predecessor had committed (after enqueue), and final
#                 heartbeats make the tail visible
#     dp_drops  = drop_bad_meta + drop_no_exchange + drop_no_route +
#                 drop_record_length + drop_queue_full + drop_oversize +
#                 drop_no_queue + drop_queue_fault + drop_queue_locked
#                 (each message routes to one queue)
#     K         = messages of a dying dataplane's last burst that were
#                 enqueued or counted but not yet committed, so its
#                 successor counts them again as a gap:
#                 0 <= K <= dataplane kills x 32 frames x 4 messages
#   and sum(enqueued) = publisher accepted + in-doubt delivered + the
#   dataplanes' delivered + K' (0 <= K' <= the same bound).
# Exit status 1 on any violation, with the figures printed either way.
#
# Options (environment): HBUS_SOAK_SECONDS (60), HBUS_SOAK_SEED (random),
# HBUS_SOAK_KILL (consumer,publisher,hbusd,dataplane,freeze: the chaos
# kinds), HBUS_SOAK_UDP_RATE (1500 msgs/s), HBUS_SOAK_PUB_RATE (400 msgs/s
# per publisher), HBUS_SOAK_KEEP=1 keeps the work directory.
set -u

B=${HBUS_BUILD_DIR:?set HBUS_BUILD_DIR to the build directory}
S=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$S/tests/lib/netns.sh"
netns_require_root

DP=$B/dataplane/hbus-dataplane
HBUSD=$B/control/hbusd
HBUS=$B/control/hbus
PUB=$B/tests/soak/soak_pub
CON=$B/tests/soak/soak_consume
for x in "$DP" "$HBUSD" "$HBUS" "$PUB" "$CON"; do
	[ -x "$x" ] || { echo "SKIP: $x not built" >&2; exit 77; }
done
SECS=${HBUS_SOAK_SECONDS:-60}
SEED=${HBUS_SOAK_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
KINDS=${HBUS_SOAK_KILL:-consumer,publisher,hbusd,dataplane,freeze}
UDP_RATE=${HBUS_SOAK_UDP_RATE:-1500}
PUB_RATE=${HBUS_SOAK_PUB_RATE:-400}
export LSAN_OPTIONS="suppressions=$S/tests/lib/lsan-dpdk.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

netns_init
T=$(mktemp -d /tmp/hbus-soak.XXXXXX) || exit 1
SHM=$(mktemp -d /dev/shm/hbus-soak.XXXXXX) || exit 1
netns_track_dir "$SHM"
[ "${HBUS_SOAK_KEEP:-0}" = 1 ] || netns_track_dir "$T"
mkdir -p "$T/log" "$T/dpsnap"
RUN=$T/run
BUS=soak$$
DP_IP=10.98.0.1
PEER_IP=10.98.0.2
CTR=$SHM/hbus-$BUS/dataplane.counters

# Roles: one process each at a time; chaos kills and restarts them.
ROLES=(hbusd dp cw0 cw1 cw2 cl0 cl1 pub0 pub1)
declare -A PID=() INC=() DOWN_UNTIL=() KIND=() QUEUE=()
KIND=([hbusd]=hbusd [dp]=dataplane [pub0]=publisher [pub1]=publisher
	[cw0]=consumer [cw1]=consumer [cw2]=consumer [cl0]=consumer [cl1]=consumer)
QUEUE=([cw0]=work [cw1]=work [cw2]=work [cl0]=lossy [cl1]=lossy)
SENDER=
DP_SNAPS=0
FAILS=0
FROZEN=
FROZEN_UNTIL=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
h() { "$HBUS" --bus "$BUS" --run-dir "$RUN" "$@"; }
# Milliseconds since the epoch into NOW (no fork: the loop ticks often).
tick() { local t=${EPOCHREALTIME/./}; NOW=$((t / 1000)); }
# A random integer in [$1, $2] into R.
rnd() { R=$(($1 + RANDOM % ($2 - $1 + 1))); }

soak_cleanup() {
	local r
	for r in "${!PID[@]}"; do
		kill -CONT "${PID[$r]}" 2>/dev/null
		kill -TERM "${PID[$r]}" 2>/dev/null
		netns_track_pid "${PID[$r]}" # netns_cleanup insists with KILL
	done
	[ -n "$SENDER" ] && netns_track_pid "$SENDER"
	netns_cleanup
}
trap soak_cleanup EXIT

start_role() {
	local r=$1 log
	INC[$r]=$((${INC[$r]:-0} + 1))
	log=$T/log/$r.${INC[$r]}.log
	case $r in
	hbusd)
		"$HBUSD" --foreground --bus "$BUS" --run-dir "$RUN" --shm-dir "$SHM" \
			--definitions "$T/definitions.json" >"$log" 2>&1 &
		;;
	dp)
		"$DP" -l 0,1 --no-pci --no-huge -m 512 --file-prefix "$PFX" \
			--log-level=lib.eal:warning \
			--vdev="net_af_packet0,iface=$NETNS_HOST_IF,framecnt=16384" -- \
			--bus "$BUS" --ip $DP_IP/24 --idle backoff --run-dir "$RUN" --shm-dir "$SHM" \
			>"$log" 2>&1 &
		;;
	pub*)
		"$PUB" --bus "$BUS" --run-dir "$RUN" --exchange soak --key w \
			--kind "${r}i${INC[$r]}" --rate "$PUB_RATE" \
			--ledger "$T/pub.${r}i${INC[$r]}.log" >"$log" 2>&1 &
		;;
	c*)
		"$CON" --bus "$BUS" --run-dir "$RUN" --queue "${QUEUE[$r]}" \
			--ledger "$T/ledger.$r.${INC[$r]}" \
			--prefetch 32 --nack-pct 2 --hold-us 2000 --seed "$RANDOM" >"$log" 2>&1 &
		;;
	esac
	PID[$r]=$!
	unset "DOWN_UNTIL[$r]"
	tick
	echo "$NOW start $r $!" >>"$T/events.log"
}

# Copy the dataplane's counters file (the instance just killed, or an
# older one if it died before making its own: account.py keeps one per pid).
dp_snapshot() {
	DP_SNAPS=$((DP_SNAPS + 1))
	[ -f "$CTR" ] && python3 "$S/tests/lib/dpstat.py" "$CTR" \
		>"$T/dpsnap/$(printf %05d $DP_SNAPS).json" 2>/dev/null
}

kill_role() { # kill_role ROLE RESTART_AFTER_MS
	local r=$1 p=${PID[$1]}
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	unset "PID[$r]"
	tick
	echo "$NOW ${KIND[$r]} $r $p" >>"$T/events.log"
	[ "$r" = dp ] && dp_snapshot
	DOWN_UNTIL[$r]=$((NOW + $2))
}

# Zombie or gone: the process ended without being killed by the chaos.
role_dead() {
	local st
	read -r st <"/proc/$1/stat" 2>/dev/null || return 0
	st=${st##*) }
	[ "${st%% *}" = Z ]
}

check_roles() {
	local r rc
	for r in "${!PID[@]}"; do
		role_dead "${PID[$r]}" || continue
		wait "${PID[$r]}" 2>/dev/null
		rc=$?
		echo "$r (${KIND[$r]} pid ${PID[$r]}) exited by itself with status $rc: $(tail -2 "$T/log/$r.${INC[$r]}.log" | tr '\n' ' ')" >>"$T/unexpected.log"
		[ "$r" = dp ] && dp_snapshot
		unset "PID[$r]"
		tick
		DOWN_UNTIL[$r]=$NOW
	done
	for r in "${!DOWN_UNTIL[@]}"; do
		[ "${DOWN_UNTIL[$r]}" -le "$NOW" ] && start_role "$r"
	done
}

unfreeze() {
	local r
	for r in "${!QUEUE[@]}"; do
		[ "${QUEUE[$r]}" = "$FROZEN" ] && [ -n "${PID[$r]:-}" ] && kill -CONT "${PID[$r]}" 2>/dev/null
	done
	FROZEN=
}

# One chaos action on a random role of a random enabled kind that is up.
chaos_step() {
	local kinds=() k r up=()
	# Weights: consumers die most, as they do in real life.
	for k in consumer consumer consumer consumer publisher publisher hbusd dataplane freeze freeze; do
		[[ ",$KINDS," == *",$k,"* ]] && kinds+=("$k")
	done
	[ ${#kinds[@]} -gt 0 ] || return
	k=${kinds[RANDOM % ${#kinds[@]}]}
	if [ "$k" = freeze ]; then
		[ -n "$FROZEN" ] && return
		FROZEN=$([ $((RANDOM % 2)) = 0 ] && echo work || echo lossy)
		for r in "${!QUEUE[@]}"; do
			[ "${QUEUE[$r]}" = "$FROZEN" ] && [ -n "${PID[$r]:-}" ] && kill -STOP "${PID[$r]}"
		done
		rnd 500 2000
		FROZEN_UNTIL=$((NOW + R))
		echo "$NOW freeze $FROZEN $R" >>"$T/events.log"
		return
	fi
	for r in "${ROLES[@]}"; do
		[ "${KIND[$r]}" = "$k" ] && [ -n "${PID[$r]:-}" ] && up+=("$r")
	done
	[ ${#up[@]} -gt 0 ] || return
	r=${up[RANDOM % ${#up[@]}]}
	rnd 100 1500
	kill_role "$r" "$R"
}

rss_sample() { # rss_sample LABEL: VmRSS of hbusd and the dataplane
	local r kb
	for r in hbusd dp; do
		[ -n "${PID[$r]:-}" ] || continue
		kb=$(awk '/^VmRSS/ { print $2 }' "/proc/${PID[$r]}/status" 2>/dev/null)
		echo "$NOW $1 $r ${PID[$r]} ${kb:-0}" >>"$T/rss.log"
	done
}

# --------------------------------------------------------------- setup
cat >"$T/roles.json" <<EOF
{"consumers": {"cw0": "work", "cw1": "work", "cw2": "work", "cl0": "lossy", "cl1": "lossy"},
 "keys": {"w": "work", "l": "lossy"},
 "pub_keys": {"pub0": "w", "pub1": "w"},
 "overflow": {"work": "reject", "lossy": "drop-head"}}
EOF
netns_create $PEER_IP/24 || { fail "namespace / veth"; exit 1; }
# The host end has no address; with forwarding on, the kernel would route
# what the dead dataplane does not take.  Nothing leaves this link.
sysctl -qw "net.ipv4.conf.$NETNS_HOST_IF.forwarding=0" 2>/dev/null
netns_dpdk_prefix hbsoak
PFX=$NETNS_PREFIX

start_role hbusd
wait_for 10 h list exchanges || { cat "$T"/log/hbusd.1.log >&2; fail "hbusd did not start"; exit 1; }
h declare-exchange soak direct --durable >/dev/null &&
h declare-queue work --capacity 1024 --slot-size 256 --overflow reject --durable >/dev/null &&
h declare-queue lossy --capacity 256 --slot-size 256 --overflow drop-head --durable >/dev/null &&
h bind work soak w >/dev/null && h bind lossy soak l >/dev/null || { fail "topology"; exit 1; }

start_role dp
wait_for 30 grep -q "session with hbusd" "$T/log/dp.1.log" && wait_for 5 test -f "$CTR" ||
	{ grep -v '^EAL' "$T/log/dp.1.log" >&2; fail "dataplane did not start"; exit 1; }
for r in cw0 cw1 cw2 cl0 cl1 pub0 pub1; do
	start_role "$r"
done
# A first datagram resolves the dataplane's MAC before the streams start.
netns_exec python3 "$S/tests/lib/dp_traffic.py" send --dst $DP_IP --port 7999 --tag arp \
	--count 1 >/dev/null
wait_for 5 sh -c "ip netns exec $NETNS_NAME ip neigh show $DP_IP | grep -q lladdr" ||
	fail "the namespace did not resolve $DP_IP"
# Not through the netns_exec function: $! must be the sender itself (ip
# netns exec execs it) for the signals below to reach it.
ip netns exec "$NETNS_NAME" python3 "$S/tests/soak/udp_sender.py" --dst $DP_IP --port 5900 --state "$T/sender.json" \
	--rate "$UDP_RATE" --batch 4 --stream 1:soak:w:u1 --stream 2:soak:l:u2 \
	--stream 3:soak:w:u3:bad >"$T/log/sender.log" 2>&1 &
SENDER=$!
echo "soak: bus $BUS, seed $SEED, $SECS s of chaos ($KINDS), work dir $T"

# --------------------------------------------------------------- chaos
tick
END=$((NOW + SECS * 1000))
rnd 300 1500
NEXT=$((NOW + R))
NEXT_RSS=$NOW
while tick; [ "$NOW" -lt "$END" ]; do
	check_roles
	[ -n "$FROZEN" ] && [ "$NOW" -ge "$FROZEN_UNTIL" ] && unfreeze
	if [ "$NOW" -ge "$NEXT" ]; then
		chaos_step
		rnd 300 1500
		NEXT=$((NOW + R))
	fi
	if [ "$NOW" -ge "$NEXT_RSS" ]; then
		rss_sample chaos
		NEXT_RSS=$((NOW + 5000))
	fi
	sleep 0.1
done

# --------------------------------------------------- calm, drain, stop
[ -n "$FROZEN" ] && unfreeze
for r in "${!DOWN_UNTIL[@]}"; do
	DOWN_UNTIL[$r]=0
done
tick
check_roles
wait_for 20 h list exchanges || fail "hbusd does not answer after the chaos"
# The dataplane has a session (its log says so) and its counters file.
wait_for 30 grep -q "session with hbusd" "$T/log/dp.${INC[dp]}.log" || fail "dataplane has no session"
wait_for 10 sh -c "python3 '$S/tests/lib/dpstat.py' '$CTR' | grep -q '\"pid\": ${PID[dp]},'" ||
	fail "dataplane counters file"
rss_sample end
for r in pub0 pub1; do
	kill -TERM "${PID[$r]}"
	wait "${PID[$r]}" || fail "$r exit status $?"
	unset "PID[$r]"
done
kill -TERM "$SENDER"
wait_for 10 test -f "$T/sender.json" || fail "sender state"
# The sender now sends heartbeats: wait until the dataplane has seen every
# stream's last sequence number (tail loss counted as a gap).
streams_done() {
	python3 - "$T/sender.json" "$CTR" "$S/tests/lib" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[3])
import dpstat
want = {s["stream"]: s["next_seq"] for s in json.load(open(sys.argv[1]))["streams"]}
got = {s["stream_id"]: s["next_seq"] for s in dpstat.read(sys.argv[2])["streams"]}
sys.exit(0 if all(got.get(k) == v for k, v in want.items()) else 1)
EOF
}
wait_for 30 streams_done || fail "the dataplane did not see the streams' ends"
kill -TERM "$SENDER"
wait "$SENDER" 2>/dev/null
SENDER=
# Drain: every queue empty, nothing unacked, no recovery pending.
drained() {
	h stat --json --interval-ms 1 >"$T/stat.json" 2>/dev/null && python3 - "$T/stat.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
ok = s.get("pending_recoveries", 0) == 0 and all(
    q["depth"] == 0 and q.get("unacked", 0) == 0 for q in s["queues"] if q["name"] in ("work", "lossy"))
sys.exit(0 if ok else 1)
EOF
}
wait_for 60 drained || fail "queues did not drain: $(cat "$T/stat.json")"
# The last dataplane: its counters (final), then a clean stop.
dp_snapshot
kill -TERM "${PID[dp]}"
wait "${PID[dp]}" || fail "dataplane exit status $?"
unset "PID[dp]"
for r in cw0 cw1 cw2 cl0 cl1; do
	kill -TERM "${PID[$r]}"
	wait "${PID[$r]}" || fail "$r exit status $?"
	unset "PID[$r]"
done
h stat --json --interval-ms 1 >"$T/stat.json" || fail "final stat"
kill -TERM "${PID[hbusd]}"
wait "${PID[hbusd]}" || fail "hbusd exit status $?"
unset "PID[hbusd]"

# ------------------------------------------------------------- books
python3 "$S/tests/soak/account.py" "$T" || FAILS=$((FAILS + 1))
# Sanitizer builds: any report in any process's log is a failure.
if grep -l -E "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:" "$T"/log/* >"$T/san.txt" 2>/dev/null; then
	fail "sanitizer reports in: $(tr '\n' ' ' <"$T/san.txt")"
	head -30 "$(head -1 "$T/san.txt")" >&2
fi
# RSS of hbusd and the dataplane: the longest-lived instance of each, its
# first and last sample (every 5 s) and the largest.
awk '{ id = $3 " " $4; if (!(id in n)) { first[id] = $5; t0[id] = $1 }
	n[id]++; last[id] = $5; t1[id] = $1; if ($5 > mx[id]) mx[id] = $5
	if (n[id] > best[$3]) { best[$3] = n[id]; pick[$3] = id } }
END { for (r in pick) { id = pick[r]; split(id, a, " ")
	printf "  rss        %s (pid %s, %d samples over %d s): %d kB first, %d kB last, %d kB max\n",
		r, a[2], n[id], (t1[id] - t0[id]) / 1000, first[id], last[id], mx[id] } }' "$T/rss.log"
if [ $FAILS -ne 0 ]; then
	echo "soak: $FAILS failure(s); seed $SEED; logs in $T (kept)" >&2
	NETNS_DIRS=("${NETNS_DIRS[@]/$T/}")
	exit 1
fi
echo "soak passed (seed $SEED)"
