#!/bin/bash
# test_bench_amqp.sh - smoke test of hbus-bench's AMQP modes with tiny counts
# (the modes start their own brokers: hbus-amqp with an hbusd from the build
# tree, and a private RabbitMQ node when rabbitmq-server is installed).
#
#   bash tests/test_bench_amqp.sh path/to/hbus-bench
#
# amqp-throughput through hbus-amqp, confirms off and on: every message
# published is consumed once and intact (the mode checks ids and checksums;
# here the JSON must say so), the JSON carries the documented keys; the same
# with RabbitMQ beside it (ratios), or a SKIP line when it is not installed;
# the amqp ping-pong row of pingpong; bad options refused with exit status 2.
# Numbers are not judged: benchmarks print ratios, tests do not time.
set -u

BENCH=${1:?usage: test_bench_amqp.sh path/to/hbus-bench}
TMP=$(mktemp -d /tmp/hbus-test-bench-amqp.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { echo "ok - $*"; }

if ! "$BENCH" --help | grep -q '^  amqp-throughput '; then
	echo "SKIP: hbus-bench built without librabbitmq (no AMQP modes)" >&2
	exit 77
fi

# check_tp FILE BROKERS COUNT: the JSON of amqp-throughput.
check_tp() {
	python3 - "$@" <<'EOF'
import json, sys
path, brokers, count = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
d = json.load(open(path))
assert d["mode"] == "amqp-throughput" and d["count"] == count and d["size"] == 48, d
runs = d["runs"]
want = {(b, c) for b in brokers for c in ("off", "on")}
assert {(r["broker"], r["confirms"]) for r in runs} == want, runs
for r in runs:
    assert r["result"] == "ok", r
    assert r["published"] == count and r["consumed"] == count - r["nacked"], r
    assert r["nacked"] == 0 and r["bad"] == 0 and r["dups"] == 0, r
    assert r["msgs_per_s"] > 0 and r["publish_msgs_per_s"] > 0, r
    if r["confirms"] == "on":
        assert r["acked"] == count, r
    else:
        assert r["acked"] == 0, r
res = {x["confirms"]: x for x in d["results"]}
assert set(res) == {"off", "on"}, res
for x in res.values():
    for b in brokers:
        assert x[b + "_msgs_per_s"] > 0, x
    assert ("ratio" in x) == (len(brokers) == 2), x
print(" ".join("%s/%s %.0f msgs/s" % (r["broker"], r["confirms"], r["msgs_per_s"]) for r in runs))
EOF
}

# Through hbus-amqp, confirms off and on, 2 rounds (window smaller than the
# count, so the publisher waits for acks on the way).
if "$BENCH" amqp-throughput --brokers amqp --count 600 --size 48 --rounds 2 --window 50 --json \
	>"$TMP/tp.json" 2>"$TMP/tp.err"; then
	line=$(check_tp "$TMP/tp.json" amqp 600) && ok "amqp-throughput through hbus-amqp: $line" ||
		fail "amqp-throughput JSON: $line"
else
	fail "amqp-throughput --brokers amqp: exit $?: $(tail -5 "$TMP/tp.err")"
fi

# The human table.
if "$BENCH" amqp-throughput --brokers amqp --count 200 --size 48 --rounds 1 >"$TMP/tp.txt" 2>&1 &&
	grep -q '^confirms off ' "$TMP/tp.txt" && grep -q '^confirms on (window 1000) ' "$TMP/tp.txt" &&
	grep -qE '^1 +amqp +on ' "$TMP/tp.txt"; then
	ok "amqp-throughput table"
else
	fail "amqp-throughput table: $(cat "$TMP/tp.txt")"
fi

# Beside RabbitMQ: both brokers interleaved, ratios.
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
	if "$BENCH" amqp-throughput --count 300 --size 48 --rounds 1 --window 100 --json \
		>"$TMP/both.json" 2>"$TMP/both.err"; then
		line=$(check_tp "$TMP/both.json" amqp,rabbitmq 300) &&
			ok "amqp-throughput beside RabbitMQ: $line" || fail "amqp-throughput with RabbitMQ: $line"
	else
		fail "amqp-throughput with RabbitMQ: exit $?: $(tail -5 "$TMP/both.err")"
	fi
else
	echo "SKIP: amqp-throughput beside RabbitMQ: rabbitmq-server is not installed" >&2
	if "$BENCH" amqp-throughput --count 100 --rounds 1 --json >"$TMP/normq.json" 2>"$TMP/normq.err" &&
		grep -q "rabbitmq-server is not installed" "$TMP/normq.err" &&
		python3 -c "import json; d = json.load(open('$TMP/normq.json')); assert d['skipped'] == ['rabbitmq']"; then
		ok "without rabbitmq-server: the rabbitmq half is skipped with a note"
	else
		fail "without rabbitmq-server: $(cat "$TMP/normq.err")"
	fi
fi

# The ping-pong row through hbus-amqp (pp_amqp.c).
if "$BENCH" pingpong --transport amqp --size 64 --count 300 --warmup 20 --json >"$TMP/pp.json" 2>"$TMP/pp.err" &&
	python3 -c "import json; d = json.load(open('$TMP/pp.json')); assert d['transport'] == 'amqp' and d['count'] == 300 and d['rtt_ns']['p50'] > 0, d"; then
	ok "pingpong --transport amqp"
else
	fail "pingpong --transport amqp: $(tail -5 "$TMP/pp.err")"
fi

# Bad options: a clear refusal with exit status 2.
for args in "--size 8" "--count 0" "--confirms maybe" "--brokers kafka" "--rounds x" \
	"--count 4000000 --size 65536" "--bogus"; do
	# shellcheck disable=SC2086
	"$BENCH" amqp-throughput $args >/dev/null 2>"$TMP/bad.err"
	rc=$?
	[ $rc -eq 2 ] && [ -s "$TMP/bad.err" ] || fail "amqp-throughput $args: exit status $rc, want 2 with a message"
done
ok "bad options refused"

if [ $FAILS -ne 0 ]; then
	echo "test_bench_amqp: $FAILS failure(s)" >&2
	exit 1
fi
echo "test_bench_amqp: all checks passed"
