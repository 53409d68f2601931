#!/bin/sh
# test_bench.sh - smoke test of every hbus-bench mode with tiny counts.
#
#   sh tests/test_bench.sh path/to/hbus-bench
#
# Checks that each mode (and bench/run_benchmarks.sh) runs to completion on
# cpus 0,1, that --json output
# parses and carries the documented keys with sane values (percentiles in
# order, messages counted), that --plot writes a PNG, that bad options are
# refused with exit status 2, and that no queue file (nor Aeron driver
# directory) is left in /dev/shm.
# Numbers are not judged here: benchmarks print ratios, tests do not time.
set -u

BENCH=${1:?usage: test_bench.sh path/to/hbus-bench}
TMP=$(mktemp -d /tmp/hbus-test-bench.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
FAILS=0
CPUS=0,1

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

# run NAME CMD...: stdout to $TMP/NAME.out; fails the test on non-zero exit.
run() {
	name=$1
	shift
	if ! "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; then
		fail "$name: exit status $? from: $*"
		sed 's/^/    /' "$TMP/$name.err" >&2
		return 1
	fi
	return 0
}

# check_json NAME KIND: validate $TMP/NAME.out with python3.
check_json() {
	python3 - "$TMP/$1.out" "$2" <<'EOF' || fail "$1: JSON check"
import json, sys
path, kind = sys.argv[1], sys.argv[2]
with open(path) as f:
    doc = json.load(f)
PCTS = ["p50", "p90", "p99", "p99.9", "p99.99", "max"]

def check_rtt(r, where):
    assert set(r) == set(PCTS), f"{where}: rtt_ns keys {sorted(r)}"
    vals = [r[k] for k in PCTS]
    assert all(isinstance(v, int) and v > 0 for v in vals), f"{where}: {vals}"
    assert vals == sorted(vals), f"{where}: percentiles out of order {vals}"

if kind.startswith("pingpong:"):
    want = kind.split(":")[1]
    assert list(doc) == ["transport", "size", "count", "rtt_ns"], list(doc)
    assert doc["transport"] == want and doc["count"] > 0 and doc["size"] >= 8, doc
    check_rtt(doc["rtt_ns"], want)
elif kind == "throughput":
    for k in ("msgs_per_s", "bytes_per_s", "size", "seconds", "msgs", "both_running_fraction"):
        assert k in doc, f"missing {k}"
    assert doc["msgs"] > 0 and doc["msgs_per_s"] > 0, doc
    assert abs(doc["bytes_per_s"] - doc["msgs_per_s"] * doc["size"]) <= 1e-3 * doc["bytes_per_s"], doc
elif kind == "vmcheck":
    f = doc["both_running_fraction"]
    assert 0.0 <= f <= 1.0, doc
    for c in ("cpu0", "cpu1"):
        assert 0.0 <= doc[c]["lost_fraction"] <= 1.0 and doc[c]["gaps"] >= 0, doc
elif kind.startswith("compare"):
    # compare, compare+aeron (a -Daeron build), compare:a,b (--transports a,b)
    names = [r["transport"] for r in doc["results"]]
    if ":" in kind:
        want = kind.split(":")[1].split(",")
    else:
        want = ["cacheline", "cacheline2", "shm", "uds", "udp", "zmq"]
        if kind == "compare+aeron":
            want.append("aeron")
    assert names == want, names
    for r in doc["results"]:
        check_rtt(r["rtt_ns"], r["transport"])
        for k in ("round_p50_ns", "round_p99_ns", "round_p99.9_ns"):
            v = r[k]
            assert len(v) == doc["rounds"] and all(x > 0 for x in v), (r["transport"], k, v)
else:
    raise SystemExit("unknown kind " + kind)
EOF
}

shm_before=$(ls /dev/shm | grep -c '^hbus-bench-')

# Ping-pong over both transports, JSON and human output, three sizes.
for t in cacheline cacheline2 slotring shm; do
	run "pp-$t" "$BENCH" pingpong --transport $t --size 32 --count 2000 --warmup 200 \
		--cpus $CPUS --json && check_json "pp-$t" "pingpong:$t"
done
run pp-shm-288 "$BENCH" pingpong --transport shm --size 288 --count 1000 --cpus $CPUS --json &&
	check_json pp-shm-288 pingpong:shm
run pp-slotring-1344 "$BENCH" pingpong --transport slotring --size 1344 --count 1000 --cpus $CPUS \
	--json && check_json pp-slotring-1344 pingpong:slotring
run pp-shm-1344 "$BENCH" pingpong --transport shm --size 1344 --count 1000 --cpus $CPUS &&
	{ grep -q '^shm ' "$TMP/pp-shm-1344.out" || fail "pp-shm-1344: no shm row in the table"; }
run pp-rate "$BENCH" pingpong --transport shm --count 2000 --rate 100000 --cpus $CPUS --json &&
	check_json pp-rate pingpong:shm

# Throughput for one second, sequence-checked by the consumer.
run tp "$BENCH" throughput --size 32 --seconds 1 --cpus $CPUS --json && check_json tp throughput

# The host-scheduling probe the benchmark docs quote.
run vm "$BENCH" vmcheck --cpus $CPUS --seconds 1 --json && check_json vm vmcheck

# Aeron IPC is a peer only in builds given -Daeron=DIR (CI has none): there
# it runs like any transport and leaves no driver directory behind; without
# it pingpong refuses the transport and compare skips the row with a note.
# aeronmd takes the settings the benchmark does not make from the environment:
# 64 KiB terms instead of 64 MiB make each run's setup cheap and make the
# publications rotate terms several times within these short runs.
export AERON_IPC_TERM_BUFFER_LENGTH=65536
AERON_NOTE="compare: no aeron row: hbus-bench was built without -Daeron=DIR"
CMP_KIND=compare
"$BENCH" pingpong --transport aeron --size 32 --count 2000 --warmup 200 --cpus $CPUS --json \
	>"$TMP/pp-aeron.out" 2>"$TMP/pp-aeron.err"
rc=$?
case $rc in
0)
	CMP_KIND=compare+aeron
	check_json pp-aeron pingpong:aeron
	# Fragmented messages (IPC MTU 1408), the driver's dir in our own
	# temp dir: afterwards no driver runs on it and nothing is left in it.
	mkdir "$TMP/aeron-shm"
	run pp-aeron-big "$BENCH" pingpong --transport aeron --size 5000 --count 300 --cpus $CPUS \
		--shm-dir "$TMP/aeron-shm" &&
		{ grep -q '^aeron ' "$TMP/pp-aeron-big.out" || fail "pp-aeron-big: no aeron row"; }
	pgrep -f "aeron.dir=$TMP/aeron-shm" >/dev/null && fail "pp-aeron-big: aeronmd still running"
	[ -z "$(ls -A "$TMP/aeron-shm")" ] || fail "pp-aeron-big: left $(ls "$TMP/aeron-shm")"
	;;
2)
	grep -q "built without -Daeron=DIR" "$TMP/pp-aeron.err" ||
		fail "pingpong --transport aeron: no 'built without -Daeron=DIR' in: $(cat "$TMP/pp-aeron.err")"
	;;
*)
	fail "pingpong --transport aeron: exit status $rc"
	sed 's/^/    /' "$TMP/pp-aeron.err" >&2
	;;
esac

# Compare: every transport, JSON and a PNG plot.
run cmp "$BENCH" compare --size 288 --count 400 --rounds 2 --cpus $CPUS --json \
	--plot "$TMP/cmp.png" && check_json cmp $CMP_KIND
if [ $CMP_KIND = compare ]; then
	[ "$(grep -c "^$AERON_NOTE" "$TMP/cmp.err")" -eq 1 ] ||
		fail "compare: want one line '$AERON_NOTE...' on stderr, got: $(cat "$TMP/cmp.err")"
fi
# --transports picks rows (canonical order) and needs shm for the ratios.
run cmp-pick "$BENCH" compare --transports shm-x,shm,cacheline2 --size 32 --count 400 --rounds 2 \
	--cpus $CPUS --json && check_json cmp-pick compare:cacheline2,shm,shm-x
run cmp-table "$BENCH" compare --transports cacheline2,shm,aeron --size 32 --count 400 --rounds 2 \
	--cpus $CPUS && for want in "^cacheline2 " "^shm " "rnd-p99.9" "two-buffer one"; do
	grep -q -- "$want" "$TMP/cmp-table.out" || fail "compare --transports: no '$want' in the table"
done
if [ -s "$TMP/cmp.png" ]; then
	magic=$(od -An -tx1 -N8 "$TMP/cmp.png" | tr -d ' \n')
	[ "$magic" = "89504e470d0a1a0a" ] || fail "compare --plot: not a PNG (magic $magic)"
else
	fail "compare --plot: no plot file written"
fi

# The script behind docs/BENCHMARKS.md, with tiny counts: it runs every
# mode, keeps the raw JSON and prints the summary the docs quote.
SCRIPT=$(dirname "$0")/../bench/run_benchmarks.sh
if run runbench env CPUS=$CPUS ROUNDS=1 PP_COUNT=2000 CMP_COUNT=300 TP_SECONDS=1 RATE=5000 \
	RATE_COUNT=300 sh "$SCRIPT" "$BENCH" "$TMP/runbench"; then
	for want in "## ping-pong, 32 bytes" "## throughput, 32 bytes" "## compare (closed loop)" \
		"two-buffer floor" "vs best peer"; do
		grep -q -- "$want" "$TMP/runbench.out" || fail "run_benchmarks.sh: no '$want' in its summary"
	done
	n=$(grep -c '^size ' "$TMP/runbench.out")
	[ "$n" -eq 6 ] || fail "run_benchmarks.sh: $n compare lines, want 6 (5 sizes + fixed rate)"
	for f in pingpong.jsonl throughput.jsonl compare.jsonl compare-rate.json compare-rate.png \
		compare-32.png compare-32.txt vmcheck-before.json vmcheck-after.json; do
		[ -s "$TMP/runbench/$f" ] || fail "run_benchmarks.sh: $f missing or empty"
	done
fi

# Bad input: a clear refusal with exit status 2, never a crash.
for args in "nosuchmode" "pingpong --size 4" "pingpong --transport carrier-pigeon" \
	"pingpong --cpus 1,1" "throughput --seconds 0" "compare --rounds x" "pingpong --bogus" \
	"compare --transports uds,udp" "compare --transports shm,pigeon" "compare --transports shm,"; do
	# shellcheck disable=SC2086
	"$BENCH" $args >/dev/null 2>"$TMP/bad.err"
	rc=$?
	[ $rc -eq 2 ] || fail "'$args': exit status $rc, want 2"
	[ -s "$TMP/bad.err" ] || fail "'$args': no error message"
done

shm_after=$(ls /dev/shm | grep -c '^hbus-bench-')
[ "$shm_after" -le "$shm_before" ] || fail "queue files left in /dev/shm"

if [ $FAILS -ne 0 ]; then
	echo "test_bench: $FAILS failure(s)" >&2
	exit 1
fi
echo "test_bench: all checks passed"
