#!/usr/bin/env bash
# RabbitMQ as the bridge off the host (docs/AMQP.md, "Spanning hosts"): a
# private RabbitMQ node with rabbitmq_shovel moves 10,000 messages from an
# hbus queue into a RabbitMQ queue and 10,000 from a RabbitMQ queue into an
# hbus exchange, ack-mode on-confirm, through hbus-amqp; the gateway is
# killed (-9) mid-stream and restarted.  Checks: every id arrives with its
# checksum, none is lost; copies (at-least-once across the kill) are
# counted and bounded by what was in flight.  Skipped without rabbitmq-server.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/amqp/lib.sh"
. "$here/amqp/rabbitmq.sh"
N=${HBUS_SHOVEL_MSGS:-10000}
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
	echo "SKIP: RabbitMQ shovel bridge: rabbitmq-server not installed" >&2; exit 77
fi
t0=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }
pass=0 fail=0
amqp_setup sh || exit 1
cleanup_all() { rmq_stop; amqp_cleanup; }
trap cleanup_all EXIT
stage "rabbitmq"
rmq_start "$AMQP_DIR/rmq" rabbitmq_shovel || { echo "0 passed, 1 failed"; exit 1; }

stage "fill"
$HBUS declare-queue to.rmq --capacity 16384 --slot-size 512 --durable >/dev/null
$HBUS declare-exchange from.rmq fanout --durable >/dev/null
$HBUS declare-queue in.q --capacity 16384 --slot-size 512 --durable >/dev/null
$HBUS bind in.q from.rmq >/dev/null
# hbus side: N lines, one message each (the id is the line's number).
seq 0 $((N - 1)) | sed 's/^/hbus-to-rmq /' | $HBUS publish "" to.rmq >/dev/null
$PY - "$RMQ_PORT" "$N" <<'EOF'
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', int(sys.argv[1])))
ch = c.channel()
ch.queue_declare('to.hbus', durable=True)
ch.queue_declare('from.hbus', durable=True)
ch.confirm_delivery()
for i in range(int(sys.argv[2])):
    ch.basic_publish('', 'to.hbus', b'rmq-to-hbus %d' % i, pika.BasicProperties(message_id=str(i)))
c.close()
EOF

stage "shovels"
G="amqp://guest:guest@127.0.0.1:$AMQP_PORT"
R="amqp://guest:guest@127.0.0.1:$RMQ_PORT"
shovel() { # name, source part, destination part
	$RMQ_CTL set_parameter shovel "$1" "{\"src-protocol\": \"amqp091\", $2, \"dest-protocol\": \"amqp091\", $3, \"ack-mode\": \"on-confirm\", \"prefetch-count\": 2, \"reconnect-delay\": 1}" >/dev/null
}
depth() { $HBUS stat --json | $PY -c "import json,sys; print(next(q['depth'] for q in json.load(sys.stdin)['queues'] if q['name']=='$1'))"; }
# Both shovels start at once, two messages in flight each (so they take
# seconds, not one probe's time); the gateway is killed while one
# direction is under way, then brought back.
shovel out "\"src-uri\": \"$G\", \"src-queue\": \"to.rmq\"" "\"dest-uri\": \"$R\", \"dest-queue\": \"from.hbus\"" &
s1=$!
shovel in "\"src-uri\": \"$R\", \"src-queue\": \"to.hbus\"" "\"dest-uri\": \"$G\", \"dest-exchange\": \"from.rmq\"" &
s2=$!
depths() { $HBUS stat --json | $PY -c "import json,sys; d={q['name']: q['depth'] for q in json.load(sys.stdin)['queues']}; print(d['to.rmq'], d['in.q'])"; }
end=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$end" ]; do
	read -r left got <<<"$(depths)"
	# one direction under way (the other may not have started, or be done)
	{ [ "$left" -gt 0 ] && [ "$left" -lt "$N" ]; } || { [ "$got" -gt 0 ] && [ "$got" -lt "$N" ]; } && break
	[ "$left" = 0 ] && [ "$got" -ge "$N" ] && break # both done: too late
done
gw_kill9
wait $s1 $s2
stage "killed the gateway with to.rmq holding $left of $N, in.q $got of $N"
if { [ "$left" -gt 0 ] && [ "$left" -lt "$N" ]; } || { [ "$got" -gt 0 ] && [ "$got" -lt "$N" ]; }; then
	pass=$((pass + 1)); echo "ok   kill mid-stream"
else
	fail=$((fail + 1)); echo "FAIL kill not mid-stream"
fi
sleep 1
gw_start
for _ in $(seq 1 1200); do
	[ "$(depth to.rmq)" = 0 ] && [ "$(depth in.q)" -ge "$N" ] && break
	sleep 0.1
done
sleep 2 # confirms and acks in flight settle

stage "check"
$PY - "$RMQ_PORT" "$N" <<'EOF' && pass=$((pass + 1)) || fail=$((fail + 1))
import sys, pika
n = int(sys.argv[2])
c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', int(sys.argv[1])))
ch = c.channel()
seen = {}
while True:
    m, p, b = ch.basic_get('from.hbus', auto_ack=True)
    if m is None:
        break
    word, i = b.decode().rsplit(' ', 1)
    assert word == 'hbus-to-rmq', b
    seen[int(i)] = seen.get(int(i), 0) + 1
missing = n - len(seen)
dups = sum(v - 1 for v in seen.values())
print('hbus -> RabbitMQ: %d of %d arrived, %d missing, %d copies' % (len(seen), n, missing, dups))
assert missing == 0 and set(seen) == set(range(n))
assert dups <= 2000, 'more copies than the shovel can have in flight'
EOF
$HBUS consume in.q --count $((N * 2)) --ack --timeout-ms 2000 --json | $PY -c '
import sys, json
n = int(sys.argv[1])
seen = {}
for l in sys.stdin:
    if not l.strip():
        continue
    r = json.loads(l)
    i = int(r["headers"]["message-id"])
    assert r["body"] == "rmq-to-hbus %d" % i, r
    seen[i] = seen.get(i, 0) + 1
missing = n - len(seen)
dups = sum(v - 1 for v in seen.values())
print("RabbitMQ -> hbus: %d of %d arrived, %d missing, %d copies" % (len(seen), n, missing, dups))
assert missing == 0 and set(seen) == set(range(n))
assert dups <= 2000
' "$N" && pass=$((pass + 1)) || fail=$((fail + 1))
stage "done"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
