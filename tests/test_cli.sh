#!/bin/bash
# test_cli.sh - the `hbus` command end to end against a real hbusd.
#
#   bash tests/test_cli.sh            (HBUS_BUILD_DIR names the build)
#
# Starts hbusd on a private run dir and shm dir (removed on exit, with
# every process this script started), then drives `hbus` through the
# topology commands, publish/consume with body checksums, acks and
# redelivery after a consumer is killed, an hbusd kill -9 + restart in the
# middle of a publish stream, export/import, error exits and `hbus send`
# decoded by an independent Python receiver.
set -u

B=${HBUS_BUILD_DIR:?set HBUS_BUILD_DIR to the build directory}
HBUS=$B/control/hbus
HBUSD=$B/control/hbusd
[ -x "$HBUS" ] || { echo "FAIL: $HBUS not built" >&2; exit 1; }
# 77 = skipped (meson): hbusd is not part of this build yet.
[ -x "$HBUSD" ] || { echo "SKIP: $HBUSD not built" >&2; exit 77; }
command -v jq >/dev/null && command -v python3 >/dev/null ||
	{ echo "SKIP: needs jq and python3" >&2; exit 77; }

T=$(mktemp -d /tmp/hbus-test-cli.XXXXXX) || exit 1
SHM=$(mktemp -d /dev/shm/hbus-test-cli.XXXXXX) || exit 1
RUN=$T/run
BUS=cli$$
FAILS=0
PIDS=()
HBUSD_PID=

cleanup() {
	exec 3>&- 2>/dev/null
	# Also whatever the pid files name, should an hbusd have detached.
	for p in "${PIDS[@]}" $HBUSD_PID $HBUSD2_PID $(cat "$RUN"/*.pid 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T" "$SHM"
}
HBUSD2_PID=
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}
SECTION_FAILS=0
ok() { # a section passed if it added no failure
	if [ $FAILS -eq $SECTION_FAILS ]; then echo "ok - $*"; else echo "not ok - $*"; fi
	SECTION_FAILS=$FAILS
}

h() { "$HBUS" --bus "$BUS" --run-dir "$RUN" "$@"; }
# For background jobs: $! must be hbus itself, not a subshell running h.
HB=("$HBUS" --bus "$BUS" --run-dir "$RUN")

# Back off while polling: there are two cores.
wait_for() { # wait_for SECONDS CMD...
	local deadline=$((SECONDS + $1)) d=0.01
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep $d
		d=$(awk -v d=$d 'BEGIN { d *= 2; if (d > 0.2) d = 0.2; print d }')
	done
}

start_hbusd() {
	"$HBUSD" --foreground --bus "$BUS" --run-dir "$RUN" --shm-dir "$SHM" \
		--definitions "$T/definitions.json" >>"$T/hbusd.log" 2>&1 3>&- &
	HBUSD_PID=$!
	wait_for 10 h list exchanges || { cat "$T/hbusd.log" >&2; echo "FAIL: hbusd did not start" >&2; exit 1; }
}

sha() { sha256sum | cut -d' ' -f1; }

# wait_pid SECONDS PID: its exit status, or 124 (and killed) when it hangs.
wait_pid() {
	local deadline=$((SECONDS + $1))
	while kill -0 "$2" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			kill -9 "$2" 2>/dev/null
			wait "$2" 2>/dev/null
			return 124
		fi
		sleep 0.05
	done
	wait "$2"
}

# expect_exit WANT NAME CMD... : runs CMD, checks its exit status.
expect_exit() {
	local want=$1 name=$2 rc
	shift 2
	"$@" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	[ $rc -eq "$want" ] || { fail "$name: exit $rc, want $want"; sed 's/^/    /' "$T/$name.err" >&2; return 1; }
	return 0
}

start_hbusd

# ---------------------------------------------------------------- topology
expect_exit 0 decl-x-direct h declare-exchange ex.d direct --durable
expect_exit 0 decl-x-fanout h declare-exchange ex.f fanout
expect_exit 0 decl-x-topic h declare-exchange ex.t topic
expect_exit 0 decl-x-headers h declare-exchange ex.h headers
expect_exit 0 decl-x-dl h declare-exchange ex.dl fanout
for q in qd qf1 qf2 qt qh qdl; do
	expect_exit 0 "decl-q-$q" h declare-queue $q --capacity 1024 --slot-size 512 --durable
	[ "$(cat "$T/decl-q-$q.out")" = "$q" ] || fail "declare-queue $q prints its name"
done
expect_exit 0 decl-q-ttl h declare-queue qttl --ttl-ms 50 --dead-letter-exchange ex.dl
expect_exit 0 decl-q-lat h declare-queue qlat --latency --durable --slot-size 1344
expect_exit 1 decl-q-lat-diff h declare-queue qlat --durable --slot-size 1344
grep -q "406.*latency" "$T/decl-q-lat-diff.err" ||
	fail "redeclaring without --latency names latency: $(cat "$T/decl-q-lat-diff.err")"
# A protected queue: its readers map the message bytes read-only (hbus
# publish writes through the data file, hbus consume reads it read-only).
expect_exit 0 decl-q-prot h declare-queue qprot --protected --durable --slot-size 256
expect_exit 1 decl-q-prot-diff h declare-queue qprot --durable --slot-size 256
grep -q "406 inequivalent arg 'protected'.*received 'false' but current is 'true'" \
	"$T/decl-q-prot-diff.err" ||
	fail "redeclaring without --protected names protected: $(cat "$T/decl-q-prot-diff.err")"
expect_exit 0 decl-q-prot-list h list queues
awk '$1 == "qprot" && $5 == "yes" { f = 1 } $1 == "qd" && $5 == "no" { g = 1 } END { exit !(f && g) }' \
	"$T/decl-q-prot-list.out" || fail "list queues shows PROTECTED: $(cat "$T/decl-q-prot-list.out")"
expect_exit 0 pub-prot h publish "" qprot --body "kept-bytes"
expect_exit 0 con-prot h consume qprot --count 1 --timeout-ms 2000
[ "$(cat "$T/con-prot.out")" = kept-bytes ] || fail "qprot gave '$(cat "$T/con-prot.out")'"
expect_exit 0 bind-d h bind qd ex.d k1
expect_exit 0 bind-f1 h bind qf1 ex.f
expect_exit 0 bind-f2 h bind qf2 ex.f
expect_exit 0 bind-t h bind qt ex.t 'a.*.c'
expect_exit 0 bind-t2 h bind qt ex.t 'z.#'
expect_exit 0 bind-h h bind qh ex.h --header x=1 --header y=2 --match any
expect_exit 0 bind-dl h bind qdl ex.dl
expect_exit 0 list-x h list exchanges --json
for x in ex.d ex.f ex.t ex.h; do
	jq -e --arg x $x 'map(select(.name == $x)) | length == 1' "$T/list-x.out" >/dev/null ||
		fail "list exchanges --json lacks $x"
done
expect_exit 0 list-b h list bindings
grep -q 'a\.\*\.c' "$T/list-b.out" || fail "list bindings table lacks the topic binding"
head -1 "$T/list-b.out" | grep -q SOURCE || fail "list bindings table has a header line"
ok "declare, bind, list"

# ---------------------------------------------------- publish and consume
seq 1 500 | sed 's/^/line-/' >"$T/sent"
expect_exit 0 pub-stdin h publish ex.d k1 <"$T/sent"
expect_exit 0 con-json timeout 20 "${HB[@]}" consume qd --json --count 500 --timeout-ms 3000
[ "$(jq -r .body "$T/con-json.out" | sha)" = "$(sha <"$T/sent")" ] ||
	fail "sha256 of consumed bodies differs from what was published"
jq -e 'select(.exchange != "ex.d" or .routing_key != "k1" or .redelivered != false or (.latency_ns | type) != "number")' \
	"$T/con-json.out" >/dev/null && fail "consume --json: wrong exchange/key/redelivered/latency"
ok "publish stdin -> consume --json, sha256 equal"

expect_exit 0 pub-fan h publish ex.f anything --body hello --header who=me
for q in qf1 qf2; do
	expect_exit 0 con-$q h consume $q --json --count 1 --timeout-ms 2000
	jq -e '.body == "hello" and .headers.who == "me"' "$T/con-$q.out" >/dev/null || fail "fanout to $q"
done
expect_exit 0 pub-topic h publish ex.t a.b.c --body t1
expect_exit 0 pub-topic2 h publish ex.t z.y.x.w --body t2
expect_exit 1 pub-topic-none h publish ex.t a.b.d --body none
grep -q '1 unroutable' "$T/pub-topic-none.err" || fail "unroutable publish is reported"
expect_exit 0 con-qt h consume qt --count 2 --timeout-ms 2000
[ "$(cat "$T/con-qt.out")" = "$(printf 't1\nt2')" ] || fail "topic routing: got $(cat "$T/con-qt.out")"
expect_exit 0 pub-hdr h publish ex.h k --header y=2 --body h-any
expect_exit 1 pub-hdr-none h publish ex.h k --header y=3 --body h-none
expect_exit 0 con-qh h consume qh --timeout-ms 300
[ "$(cat "$T/con-qh.out")" = "h-any" ] || fail "headers routing: got $(cat "$T/con-qh.out")"
expect_exit 0 pub-default h publish "" qd --body via-default
printf 'bin\377\376\n' | h publish "" qd
expect_exit 0 con-default h consume qd --json --count 2 --timeout-ms 2000
jq -e -s '.[0].body == "via-default" and .[1].body_encoding == "base64" and .[1].body == "Ymlu//4="' \
	"$T/con-default.out" >/dev/null || fail "default exchange / base64 body: $(cat "$T/con-default.out")"
ok "fanout, topic, headers, default exchange, binary body"

# TTL expiry dead-letters through the queue's DLX (x-first-death-reason).
expect_exit 0 pub-ttl h publish "" qttl --body expiring
sleep 0.2
expect_exit 0 con-ttl h consume qttl --timeout-ms 200
[ -s "$T/con-ttl.out" ] && fail "an expired message was delivered"
expect_exit 0 con-dl h consume qdl --json --count 1 --timeout-ms 2000
# As RabbitMQ: it now comes from the DLX with its own key; the exchange it
# was published to (the default one) is in the death headers.
jq -e '.body == "expiring" and .headers["x-first-death-reason"] == "expired" and .headers["x-first-death-queue"] == "qttl"
	and .exchange == "ex.dl" and .routing_key == "qttl" and .headers["x-first-death-exchange"] == ""
	and .headers["x-last-death-exchange"] == ""' \
	"$T/con-dl.out" >/dev/null || fail "dead-lettered message: $(cat "$T/con-dl.out")"

# drop-head overflow dead-letters the oldest message (reason maxlen).
expect_exit 0 decl-small h declare-queue qsmall --capacity 2 --overflow drop-head --dead-letter-exchange ex.dl
printf 'o1\no2\no3\n' | h publish "" qsmall
expect_exit 0 con-small h consume qsmall --timeout-ms 200
[ "$(cat "$T/con-small.out")" = "$(printf 'o2\no3')" ] || fail "drop-head kept: $(cat "$T/con-small.out")"
expect_exit 0 con-dl2 h consume qdl --json --count 1 --timeout-ms 2000
jq -e '.body == "o1" and .headers["x-first-death-reason"] == "maxlen"' "$T/con-dl2.out" >/dev/null ||
	fail "drop-head dead-letter: $(cat "$T/con-dl2.out")"
ok "TTL and drop-head dead-letters"

# Exchange-to-exchange binding, alternate exchange, unbind, if-unused.
expect_exit 0 decl-src h declare-exchange ex.src direct --alternate-exchange ex.f
expect_exit 0 bind-e2e h bind ex.d ex.src route --exchange-dest
# As in RabbitMQ, a message that matched an exchange binding is not
# handed to the alternate exchange even if nothing downstream took it.
expect_exit 1 pub-e2e h publish ex.src route --body e2e
expect_exit 0 pub-e2e-k1 h publish ex.src k1 --body alt
expect_exit 0 con-e2e h consume qd --timeout-ms 200
[ "$(cat "$T/con-e2e.out")" = "" ] || fail "ex.src -route-> ex.d: key 'route' is not bound on ex.d"
expect_exit 0 unbind-e2e h unbind ex.d ex.src route --exchange-dest
expect_exit 0 bind-e2e2 h bind ex.d ex.src k1 --exchange-dest
expect_exit 0 pub-e2e2 h publish ex.src k1 --body via-e2e
expect_exit 0 con-e2e2 h consume qd --timeout-ms 200
[ "$(cat "$T/con-e2e2.out")" = "via-e2e" ] || fail "exchange-to-exchange: $(cat "$T/con-e2e2.out")"
for q in qf1 qf2; do
	expect_exit 0 con-alt-$q h consume $q --timeout-ms 200
	[ "$(cat "$T/con-alt-$q.out")" = "alt" ] ||
		fail "alternate exchange to $q: $(cat "$T/con-alt-$q.out")"
done
expect_exit 1 del-used h delete-exchange ex.d --if-unused
grep -q ": 406 " "$T/del-used.err" || fail "delete-exchange --if-unused: $(cat "$T/del-used.err")"
expect_exit 0 unbind-e2e2 h unbind ex.d ex.src k1 --exchange-dest
expect_exit 0 del-src h delete-exchange ex.src
ok "exchange-to-exchange, alternate exchange, unbind, delete"

# ------------------------------------------------------------ acks
seq 1 10 | sed 's/^/ack-/' | h publish ex.d k1
expect_exit 0 ack-4 h consume qd --ack --count 4 --timeout-ms 2000
expect_exit 0 ack-6 h consume qd --ack --count 100 --timeout-ms 500
[ "$(cat "$T/ack-4.out" "$T/ack-6.out" | sha)" = "$(seq 1 10 | sed 's/^/ack-/' | sha)" ] ||
	fail "--ack --count: $(wc -l <"$T/ack-4.out") + $(wc -l <"$T/ack-6.out") lines"
[ "$(wc -l <"$T/ack-4.out")" -eq 4 ] || fail "--count 4 printed $(wc -l <"$T/ack-4.out")"
ok "--ack with --count"

# check_redelivered SENT FIRST SECOND: what SENT lists was consumed by
# FIRST (killed -9) and SECOND (--json lines), none lost, every repeat
# flagged redelivered, and something came back flagged.
check_redelivered() {
	python3 - "$@" <<'EOF'
import json, sys
sent = [l.rstrip("\n") for l in open(sys.argv[1])]
first = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
second = [json.loads(l) for l in open(sys.argv[3]) if l.strip()]
seen = {}
for m in first + second:
    seen.setdefault(m["body"], []).append(m["redelivered"])
missing = [s for s in sent if s not in seen]
assert not missing, f"lost: {missing}"
for body, flags in seen.items():
    assert body in sent, f"unknown {body}"
    # every repeat of a message is flagged redelivered
    assert all(flags[1:]), f"{body} repeated without redelivered flag: {flags}"
redelivered = [m["body"] for m in second if m["redelivered"]]
assert redelivered, "the unacked message of the killed consumer came back flagged"
print(f"first {len(first)} second {len(second)} redelivered {redelivered}")
EOF
}

# ------------------------------------------- consumer killed mid-stream
seq 1 40 | sed 's/^/kill-/' >"$T/kill-sent"
h publish ex.d k1 <"$T/kill-sent"
"${HB[@]}" consume qd --ack --prefetch 1 --ack-delay-ms 100 --json >"$T/kill-1.out" 2>"$T/kill-1.err" &
CPID=$!
PIDS+=($CPID)
wait_for 10 sh -c "[ \$(wc -l <'$T/kill-1.out') -ge 5 ]" || fail "consumer did not start"
kill -9 $CPID
wait $CPID 2>/dev/null
expect_exit 0 kill-2 h consume qd --ack --json --timeout-ms 1000
check_redelivered "$T/kill-sent" "$T/kill-1.out" "$T/kill-2.out" || fail "redelivery after kill -9"
ok "unacked messages of a kill -9'd consumer are redelivered (redelivered=true)"

# ------------------------------------------------- exclusive consumer
expect_exit 0 decl-qx h declare-queue qx --capacity 64 --slot-size 128
seq 1 20 | sed 's/^/x-/' >"$T/x-sent"
h publish "" qx <"$T/x-sent"
"${HB[@]}" consume qx --exclusive --ack --prefetch 1 --ack-delay-ms 100 --json >"$T/x-1.out" 2>"$T/x-1.err" &
CPID=$!
PIDS+=($CPID)
wait_for 10 sh -c "[ \$(wc -l <'$T/x-1.out') -ge 3 ]" || fail "exclusive consumer did not start"
expect_exit 1 x-second h consume qx --timeout-ms 100
grep -q "405.*exclusive consumer" "$T/x-second.err" || fail "a second consumer: $(cat "$T/x-second.err")"
expect_exit 1 x-purge h purge qx
grep -q "405.*purge is refused" "$T/x-purge.err" || fail "purge beside it: $(cat "$T/x-purge.err")"
expect_exit 0 x-list h list consumers --json
jq -e 'map(select(.queue == "qx" and .exclusive and .exclusive_fast)) | length == 1' \
	"$T/x-list.out" >/dev/null || fail "list consumers: qx's consumer is not exclusive_fast"
kill -9 $CPID
wait $CPID 2>/dev/null
# hbusd recovers it once it sees the process gone: until then, 405.
tries=0
until h consume qx --exclusive --ack --json --timeout-ms 1000 >"$T/x-2.out" 2>"$T/x-2.err"; do
	grep -q 405 "$T/x-2.err" && [ $((++tries)) -lt 100 ] ||
		{ fail "consume --exclusive after the kill: $(cat "$T/x-2.err")"; break; }
	sleep 0.1
done
check_redelivered "$T/x-sent" "$T/x-1.out" "$T/x-2.out" || fail "redelivery after kill -9 (exclusive)"
ok "consume --exclusive: others refused (405), kill -9 redelivers flagged"

# ------------------------------------ hbusd kill -9 mid publish stream
mkfifo "$T/fifo"
# A consumer streams through the restart too (it rejoins like the publisher).
"${HB[@]}" consume qd --ack --json --timeout-ms 4000 >"$T/restart-c1.out" 2>"$T/restart-c1.err" &
CPID=$!
PIDS+=($CPID)
"${HB[@]}" publish ex.d k1 <"$T/fifo" 2>"$T/restart-pub.err" &
PPID_PUB=$!
PIDS+=($PPID_PUB)
exec 3>"$T/fifo"
for i in $(seq 1 100); do echo "r-$i" >&3; done
sleep 0.3
kill -9 $HBUSD_PID
wait $HBUSD_PID 2>/dev/null
for i in $(seq 101 200); do echo "r-$i" >&3; done
sleep 0.3
start_hbusd
sleep 0.3 # the publisher rejoins within 50-150 ms
for i in $(seq 201 300); do echo "r-$i" >&3; done
exec 3>&-
wait_pid 20 $PPID_PUB
rc=$?
[ $rc -eq 0 ] || { fail "publish through hbusd restart exited $rc"; cat "$T/restart-pub.err" >&2; }
wait_pid 20 $CPID || { fail "consumer through hbusd restart"; cat "$T/restart-c1.err" >&2; }
expect_exit 0 restart-con h consume qd --json --timeout-ms 1000
python3 - "$T/restart-c1.out" "$T/restart-con.out" <<'EOF' || fail "messages across hbusd restart"
import json, sys
got = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
seen = {}
for m in got:
    seen.setdefault(m["body"], []).append(m["redelivered"])
want = [f"r-{i}" for i in range(1, 301)]
missing = [w for w in want if w not in seen]
assert not missing, f"lost {len(missing)}: {missing[:5]}"
dups = {b: f for b, f in seen.items() if len(f) > 1 and not all(f[1:])}
assert not dups, f"duplicates without redelivered flag: {dups}"
first = [json.loads(l)["body"] for l in open(sys.argv[1]) if l.strip()]
assert any(int(b[2:]) > 200 for b in first), "the streaming consumer got nothing after the restart"
first = len(first)
print(f"received {len(got)} of 300, {first} by the consumer that streamed through the restart")
EOF
ok "hbusd kill -9 + restart while publishing and consuming: nothing lost"
h list queues --json | jq -e '.[] | select(.name == "qprot") | .protected == true' >/dev/null ||
	fail "qprot is not protected after the restart"

# --------------------------------------------------- export / import
expect_exit 0 export h export "$T/export.json"
jq -e '.exchanges | map(.name) | index("ex.d")' "$T/export.json" >/dev/null || fail "export lacks ex.d"
jq -e '.queues[] | select(.name == "qlat") | .latency == true' "$T/export.json" >/dev/null ||
	fail "export lacks qlat's latency"
jq -e '.queues[] | select(.name == "qprot") | .protected == true' "$T/export.json" >/dev/null ||
	fail "export lacks qprot's protected"
BUS2=cli2$$
"$HBUSD" --foreground --bus $BUS2 --run-dir "$RUN" --shm-dir "$SHM" >>"$T/hbusd2.log" 2>&1 &
HBUSD2_PID=$!
h2() { "$HBUS" --bus $BUS2 --run-dir "$RUN" "$@"; }
wait_for 10 h2 list exchanges || fail "second hbusd did not start"
expect_exit 0 import h2 import "$T/export.json"
expect_exit 0 export2 h2 export "$T/export2.json"
norm='del(.hbus_definitions) | walk(if type == "array" then sort_by(tostring) else . end)'
[ "$(jq -S "$norm" "$T/export.json")" = "$(jq -S "$norm" "$T/export2.json")" ] ||
	fail "export -> import -> export differs: $(diff <(jq -S "$norm" "$T/export.json") <(jq -S "$norm" "$T/export2.json") | head -20)"
kill $HBUSD2_PID
wait_pid 30 $HBUSD2_PID || fail "second hbusd: exit $? on SIGTERM: $(tail -5 "$T/hbusd2.log")"
HBUSD2_PID=
ok "export / import round trip"

# ------------------------------------------------------------ errors
expect_exit 1 err-404 h consume nosuch --timeout-ms 10
grep -Eq "^hbus: consume 'nosuch': 404 " "$T/err-404.err" || fail "404 line: $(cat "$T/err-404.err")"
[ "$(wc -l <"$T/err-404.err")" -eq 1 ] || fail "error is one line"
expect_exit 1 err-x404 h publish nosuch k --body x
grep -q "404" "$T/err-x404.err" || fail "publish to unknown exchange names 404"
expect_exit 2 err-type h declare-exchange x badtype
expect_exit 2 err-cmd h frobnicate
expect_exit 2 err-args h consume
expect_exit 2 err-opt h consume qd --count many
expect_exit 2 err-bus "$HBUS" --bus
expect_exit 2 err-addr h map-udp nonsense ex.d k
expect_exit 1 err-nohbusd "$HBUS" --bus nosuchbus --run-dir "$RUN" list queues
grep -q "is hbusd running" "$T/err-nohbusd.err" || fail "no hbusd: $(cat "$T/err-nohbusd.err")"
h publish ex.d k1 --body keep >/dev/null
expect_exit 1 err-406 h delete-queue qd --if-empty
grep -q ": 406 " "$T/err-406.err" || fail "if-empty on a non-empty queue: $(cat "$T/err-406.err")"
expect_exit 0 purge h purge qd
[ "$(cat "$T/purge.out")" = 1 ] || fail "purge prints the count: $(cat "$T/purge.out")"
ok "error exits"

# ------------------------------------------------------ map-udp, stat
expect_exit 0 map h map-udp 127.0.0.1:9999 ex.d k1
expect_exit 0 list-u h list udpmaps --json
jq -e 'map(select(.port == 9999)) | length == 1' "$T/list-u.out" >/dev/null || fail "udpmap listed"
expect_exit 0 unmap h unmap-udp 127.0.0.1:9999
expect_exit 0 list-u2 h list udpmaps --json
jq -e 'map(select(.port == 9999)) | length == 0' "$T/list-u2.out" >/dev/null || fail "udpmap removed"
seq 1 50 | h publish ex.d k1
expect_exit 0 stat-json h stat --json --interval-ms 100
jq -e '.queues | map(select(.name == "qd"))[0] | .depth == 50 and (.rates.enqueued_per_s | type) == "number"' \
	"$T/stat-json.out" >/dev/null || fail "stat --json: $(jq -c '.queues[0]' "$T/stat-json.out")"
expect_exit 0 stat-prom h stat --prometheus
grep -Eq "^hbus_queue_depth\\{bus=\"$BUS\"[^}]*,name=\"qd\"[^}]*\\} 50$" "$T/stat-prom.out" ||
	fail "prometheus depth of qd: $(grep '^hbus_queue_depth' "$T/stat-prom.out")"
expect_exit 0 stat-table h stat --interval-ms 100
grep -Eq '^qd +50 ' "$T/stat-table.out" || fail "stat table: $(cat "$T/stat-table.out")"
h purge qd >/dev/null
ok "map-udp, unmap-udp, stat"

# ------------------------------------------------ send (pure UDP sender)
python3 - "$T/udp.port" "$T/udp.json" 23 <<'EOF' &
import json, socket, struct, sys
port_file, out, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(10)
open(port_file + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(port_file + ".tmp", port_file)
msgs, frames = [], 0
def s8(b, o):  # u8-length string
    n = b[o]; return b[o + 1:o + 1 + n].decode(), o + 1 + n
while len(msgs) < want:
    buf = s.recv(65535)
    frames += 1
    magic, ver, flags, count, stream, res, seq = struct.unpack_from("<IBBHIIQ", buf, 0)
    assert magic == 0x53554248 and ver == 1 and res == 0, (magic, ver)
    o = 24
    for i in range(count):
        rlen, ts, mlen, mflags, blen = struct.unpack_from("<IQHHI", buf, o)
        assert rlen == 16 + mlen + blen, (rlen, mlen, blen)
        m = buf[o + 20:o + 20 + mlen]
        body = buf[o + 20 + mlen:o + 20 + mlen + blen]
        ex, p = s8(m, 0); key, p = s8(m, p)
        (nh,) = struct.unpack_from("<H", m, p); p += 2
        hdrs = {}
        for _ in range(nh):
            name, p = s8(m, p)
            (vl,) = struct.unpack_from("<H", m, p); p += 2
            hdrs[name] = m[p:p + vl].decode(); p += vl
        assert p == mlen
        msgs.append(dict(stream=stream, seq=seq + i, ts=ts, exchange=ex, key=key,
                         headers=hdrs, body=body.decode()))
        o += 4 + rlen
    assert o == len(buf), "frame length"
json.dump(dict(frames=frames, msgs=msgs), open(out, "w"))
EOF
RPID=$!
PIDS+=($RPID)
wait_for 10 test -s "$T/udp.port" || fail "UDP receiver did not start"
PORT=$(cat "$T/udp.port")
expect_exit 0 send-body h send 127.0.0.1:$PORT ex.s key.s --body hi --header a=b --stream 7 --first-seq 100 --batch 4 --count 10
seq 1 13 | sed 's/^/udp-/' | "$HBUS" send 127.0.0.1:$PORT ex.s key.t --stream 8 ||
	fail "send from stdin"
wait $RPID || fail "UDP receiver failed"
python3 - "$T/udp.json" <<'EOF' || fail "hbus send frames decode"
import json, sys, time
d = json.load(open(sys.argv[1]))
m = d["msgs"]
a = [x for x in m if x["stream"] == 7]
b = [x for x in m if x["stream"] == 8]
assert [x["seq"] for x in a] == list(range(100, 110)), [x["seq"] for x in a]
assert all(x["body"] == "hi" and x["exchange"] == "ex.s" and x["key"] == "key.s" and x["headers"] == {"a": "b"} for x in a)
assert [x["body"] for x in b] == [f"udp-{i}" for i in range(1, 14)]
assert [x["seq"] for x in b] == list(range(1, 14))
now = time.time_ns()
assert all(abs(now - x["ts"]) < 60e9 for x in m), "send timestamps are CLOCK_REALTIME ns"
assert d["frames"] <= 3 + 13, d["frames"]  # --batch 4 packs 10 messages in 3 frames
print("frames", d["frames"])
EOF
ok "hbus send: frames decoded by an independent receiver"

# A clean exit on SIGTERM is part of the test: under ASan it is also where
# leaks and memory errors in hbusd surface.
kill $HBUSD_PID
wait_pid 30 $HBUSD_PID || fail "hbusd: exit $? on SIGTERM"
HBUSD_PID=
ok "hbusd stopped cleanly (exit 0 on SIGTERM)"

if [ $FAILS -ne 0 ]; then
	echo "$FAILS check(s) failed; hbusd log:" >&2
	tail -30 "$T/hbusd.log" >&2
	exit 1
fi
echo "all CLI checks passed"
