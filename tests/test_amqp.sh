#!/usr/bin/env bash
# hbus-amqp end to end with real clients on loopback (docs/AMQP.md): pika,
# amqp-tools, rabbitmq-c; bad input on raw sockets; AMQP <-> local shared
# memory both ways; kill -9 of the gateway with unacked deliveries; AMQP
# users' permissions and limits; the gateway in `hbus stat`.  Every check
# compares message ids and payload checksums.  Prints stage times and
# 'N passed, N failed'.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/amqp/lib.sh"
RMQ="$B/tests/rmq_client"

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() {
	fail=$((fail + 1)); echo "FAIL $1"
	echo "--- gateway log (last lines)"; tail -5 "$AMQP_DIR/gw.log"
	echo "--- hbusd log (last lines)"; tail -5 "$AMQP_DIR/run/$AMQP_BUS.log"
}
stage() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }
t0=$(date +%s)

amqp_setup a || { echo "0 passed, 1 failed"; exit 1; }
P=$AMQP_PORT
AT="--server 127.0.0.1 --port $P --username guest --password guest"

stage "pika"
if timeout 300 $PY "$here/amqp/pika_suite.py" "$P"; then ok pika-suite; else bad pika-suite; fi

stage "bad input"
if timeout 120 $PY "$here/amqp/bad_input.py" "$P" && kill -0 "$GW_PID"; then
	ok bad-input
else
	bad bad-input
fi

stage "amqp-tools"
amqp-declare-queue $AT -q tools.q >/dev/null &&
for i in $(seq 1 20); do amqp-publish $AT -r tools.q -b "tools message $i" || exit 1; done
want=$(for i in $(seq 1 20); do echo "tools message $i"; done | sha256sum)
printf '#!/bin/sh\ncat; echo\n' >"$AMQP_DIR/cat.sh"; chmod +x "$AMQP_DIR/cat.sh"
got=$(for i in $(seq 1 10); do amqp-get $AT -q tools.q; echo; done
      timeout 20 amqp-consume $AT -q tools.q -c 10 "$AMQP_DIR/cat.sh")
if [ "$(echo "$got" | sed '/^$/d' | sha256sum)" = "$want" ]; then ok amqp-tools; else bad amqp-tools; echo "$got"; fi

stage "rabbitmq-c"
if timeout 60 "$RMQ" "$P" roundtrip 1000 >"$AMQP_DIR/rt.txt" && [ "$(wc -l <"$AMQP_DIR/rt.txt")" = 1000 ]; then
	ok rabbitmq-c-roundtrip
else
	bad rabbitmq-c-roundtrip
fi

stage "mixed paths"
# AMQP publisher -> local shared-memory consumer (the hbus command).
$HBUS declare-queue mix.in --capacity 1024 >/dev/null
timeout 30 "$RMQ" "$P" publish mix.in 100
n=$($HBUS consume mix.in --count 100 --ack --timeout-ms 5000 --json |
    $PY -c 'import sys,json,hashlib
rows=[json.loads(l) for l in sys.stdin if l.strip()]
ids=[r["headers"]["message-id"] for r in rows]
ok=all(r["body"]=="rabbitmq-c message %s %08x"%(i,(int(i)*2654435761)%2**32) for r,i in zip(rows,ids))
print(len(set(ids)) if ok else -1)')
if [ "$n" = 100 ]; then ok amqp-to-shm; else bad "amqp-to-shm ($n)"; fi
# Local publisher -> AMQP consumer, properties from headers.
$HBUS declare-queue mix.out --capacity 1024 >/dev/null
for i in $(seq 0 49); do
	$HBUS publish "" mix.out --header "message-id=$i" --body "rabbitmq-c message $i $(printf %08x $(( (i * 2654435761) % 4294967296 )))"
done
if timeout 30 "$RMQ" "$P" consume mix.out 50 ack >"$AMQP_DIR/mix.txt" && [ "$(cut -d' ' -f1 "$AMQP_DIR/mix.txt" | sort -u | wc -l)" = 50 ]; then
	ok shm-to-amqp
else
	bad shm-to-amqp
fi

stage "kill -9 with unacked deliveries"
$HBUS declare-queue kill.q --capacity 1024 >/dev/null
timeout 30 "$RMQ" "$P" publish kill.q 300
"$RMQ" "$P" consume kill.q 100 hold >"$AMQP_DIR/held.txt" &
holder=$!
for _ in $(seq 1 200); do [ "$(wc -l <"$AMQP_DIR/held.txt")" -ge 100 ] && break; sleep 0.05; done
gw_kill9
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
gw_start
# hbusd recovered the dead gateway's virtual sessions: all 300 are back,
# the 100 it held flagged redelivered, with the same ids and checksums.
timeout 60 "$RMQ" "$P" consume kill.q 300 ack >"$AMQP_DIR/after.txt"
redel=$(grep -c redelivered "$AMQP_DIR/after.txt")
same=$(comm -12 <(cut -d' ' -f1,2 "$AMQP_DIR/held.txt" | sort) <(grep redelivered "$AMQP_DIR/after.txt" | cut -d' ' -f1,2 | sort) | wc -l)
uniq=$(cut -d' ' -f1 "$AMQP_DIR/after.txt" | sort -u | wc -l)
if [ "$(wc -l <"$AMQP_DIR/held.txt")" = 100 ] && [ "$redel" = 100 ] && [ "$same" = 100 ] && [ "$uniq" = 300 ]; then
	ok kill9-unacked-redelivered
else
	bad "kill9-unacked-redelivered (held $(wc -l <"$AMQP_DIR/held.txt"), redelivered $redel, same $same, distinct $uniq)"
fi

stage "AMQP users"
if $PY - "$P" <<'EOF'
import sys, pika
P = int(sys.argv[1])
def c(u, p):
    return pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', P, '/', pika.PlainCredentials(u, p)))
a = c('alice', 'secret')
ch = a.channel()
ch.queue_declare('alice.q')
try:
    ch.queue_declare('bob.q')
    sys.exit('alice declared bob.q')
except pika.exceptions.ChannelClosedByBroker as e:
    assert e.reply_code == 403, e
ch = a.channel()
try:
    ch.basic_consume('kill.q', lambda *x: None)
    sys.exit('alice consumed kill.q')
except pika.exceptions.ChannelClosedByBroker as e:
    assert e.reply_code == 403, e
b = c('alice', 'secret')
try:
    c('alice', 'secret')
    sys.exit('a third connection of alice (max_connections 2)')
except pika.exceptions.AMQPConnectionError:
    pass
try:
    c('alice', 'wrong')
    sys.exit('wrong password accepted')
except pika.exceptions.ProbableAuthenticationError:
    pass
a.close(); b.close()
EOF
then ok amqp-users-permissions; else bad amqp-users-permissions; fi
if grep -q "AMQP login refused for user 'alice'" "$AMQP_DIR/run/$AMQP_BUS.log"; then ok login-refusal-logged; else bad login-refusal-logged; fi

stage "hbus stat"
sleep 1.2 # the gateway reports once a second
if $HBUS stat >"$AMQP_DIR/stat.txt" && grep -q "gateways" "$AMQP_DIR/stat.txt" &&
   $HBUS stat --prometheus >"$AMQP_DIR/prom.txt" && grep -q '^hbus_gateways_delivered{' "$AMQP_DIR/prom.txt"; then
	ok stat-and-prometheus
else
	bad stat-and-prometheus
fi

stage "--threads 2"
# The gateway with two event loops (one listening socket each, the kernel
# spreading connections): pika's suite again, and four publishers and four
# consumers at once on their own queues (eight connections, so both loops
# serve some, and a consumer's loop is often not its publisher's).
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null; GW_PID=
if gw_start --threads 2 && grep -q "2 thread(s)" "$AMQP_DIR/gw.log"; then
	if timeout 300 $PY "$here/amqp/pika_suite.py" "$P"; then ok threads-pika-suite; else bad threads-pika-suite; fi
	pids=()
	for i in 1 2 3 4; do
		$HBUS declare-queue "thr.$i" --capacity 1024 >/dev/null
		timeout 60 "$RMQ" "$P" consume "thr.$i" 500 ack >"$AMQP_DIR/thr.$i.txt" & pids+=($!)
	done
	for i in 1 2 3 4; do timeout 60 "$RMQ" "$P" publish "thr.$i" 500 & pids+=($!); done
	rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	n=0
	for i in 1 2 3 4; do n=$((n + $(cut -d' ' -f1 "$AMQP_DIR/thr.$i.txt" | sort -u | wc -l))); done
	if [ "$rc" = 0 ] && [ "$n" = 2000 ]; then
		ok threads-parallel-clients
	else
		bad "threads-parallel-clients (exit $rc, $n of 2000 distinct ids, checksums checked by rmq_client)"
	fi
else
	bad "gateway with --threads 2 did not start"
fi

stage "sanitizers"
# A clean stop; in the ASan build the gateway's leak and error reports
# land in its log: none may be there.
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null; GW_PID=
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error" "$AMQP_DIR/gw.log"; then
	bad gateway-sanitizer-clean; grep -A20 -E "ERROR: |runtime error" "$AMQP_DIR/gw.log" | head -40
else
	ok gateway-sanitizer-clean
fi

stage "done"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
