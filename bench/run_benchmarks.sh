#!/bin/sh
# run_benchmarks.sh - the runs behind docs/BENCHMARKS.md, repeatable.
#
#   bench/run_benchmarks.sh [path/to/hbus-bench] [OUTDIR]
#
# Interleaves and repeats (the VM time-slices its two vCPUs): ping-pong
# cacheline/shm alternate for ROUNDS rounds, throughput runs ROUNDS times,
# compare runs at 32, 288 and 1344 bytes (32 bytes three times) plus one
# fixed-rate run with a plot.  Every raw JSON line goes to OUTDIR; the
# summary (medians, ratios) goes to stdout.  Takes about 5 minutes.
# Environment: CPUS (default 0,1), ROUNDS (default 7), PP_COUNT (1000000),
# CMP_COUNT (200000), TP_SECONDS (3), RATE (5000: ZeroMQ must keep up), RATE_COUNT (50000).
set -eu

BENCH=${1:-build/bench/hbus-bench}
OUT=${2:-$(mktemp -d /tmp/hbus-benchmarks.XXXXXX)}
CPUS=${CPUS:-0,1}
ROUNDS=${ROUNDS:-7}
PP_COUNT=${PP_COUNT:-1000000}
CMP_COUNT=${CMP_COUNT:-200000}
TP_SECONDS=${TP_SECONDS:-3}
RATE=${RATE:-5000}
RATE_COUNT=${RATE_COUNT:-50000}
mkdir -p "$OUT"
echo "raw results in $OUT" >&2

"$BENCH" vmcheck --cpus "$CPUS" --seconds 2 --json >"$OUT/vmcheck-before.json"

: >"$OUT/pingpong.jsonl"
for r in $(seq "$ROUNDS"); do
	for t in cacheline shm; do
		"$BENCH" pingpong --transport $t --size 32 --count "$PP_COUNT" --cpus "$CPUS" --json \
			>>"$OUT/pingpong.jsonl"
	done
	echo "pingpong round $r/$ROUNDS" >&2
done

: >"$OUT/throughput.jsonl"
for r in $(seq "$ROUNDS"); do
	"$BENCH" throughput --size 32 --seconds "$TP_SECONDS" --cpus "$CPUS" --json >>"$OUT/throughput.jsonl"
	echo "throughput run $r/$ROUNDS" >&2
done

: >"$OUT/compare.jsonl"
for size in 32 288 1344 32 32; do
	"$BENCH" compare --size $size --count "$CMP_COUNT" --cpus "$CPUS" --json >>"$OUT/compare.jsonl"
	echo "compare $size done" >&2
done
"$BENCH" compare --size 32 --count "$RATE_COUNT" --cpus "$CPUS" --rate "$RATE" --json \
	--plot "$OUT/compare-rate.png" >"$OUT/compare-rate.json"
"$BENCH" compare --size 32 --count "$CMP_COUNT" --cpus "$CPUS" --plot "$OUT/compare-32.png" \
	>"$OUT/compare-32.txt"

"$BENCH" vmcheck --cpus "$CPUS" --seconds 2 --json >"$OUT/vmcheck-after.json"

python3 - "$OUT" <<'EOF'
import json, os, statistics as st, sys
out = sys.argv[1]
def lines(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.strip()]
med = st.median

for name in ("vmcheck-before.json", "vmcheck-after.json"):
    v = lines(name)[0]
    print("%s: both cpus running %.0f%% of the time (cpu0 lost %.0f%%, cpu1 lost %.0f%%)" % (
        name[:-5], 100 * v["both_running_fraction"], 100 * v["cpu0"]["lost_fraction"],
        100 * v["cpu1"]["lost_fraction"]))

pp = lines("pingpong.jsonl")
print("\n## ping-pong, 32 bytes, %d runs per transport (interleaved)" % (len(pp) // 2))
by = {}
for d in pp:
    by.setdefault(d["transport"], []).append(d["rtt_ns"])
ratios = [s["p50"] / c["p50"] for c, s in zip(by["cacheline"], by["shm"])]
for t, rs in by.items():
    print("%-10s median p50 %5.0f  p90 %5.0f  p99 %6.0f  p99.9 %7.0f ns   p50 per run %s" % (
        t, med(r["p50"] for r in rs), med(r["p90"] for r in rs), med(r["p99"] for r in rs),
        med(r["p99.9"] for r in rs), [r["p50"] for r in rs]))
print("shm p50 / cacheline p50 in the same round: median %.2fx, per round %s" % (
    med(ratios), ["%.2f" % x for x in ratios]))

tp = lines("throughput.jsonl")
print("\n## throughput, 32 bytes, %d runs" % len(tp))
for d in tp:
    print("  %6.2f M msgs/s  both cpus running %3.0f%% of the run" % (
        d["msgs_per_s"] / 1e6, 100 * d["both_running_fraction"]))
print("median %.2f M msgs/s, best %.2f M msgs/s" % (
    med(d["msgs_per_s"] for d in tp) / 1e6, max(d["msgs_per_s"] for d in tp) / 1e6))

print("\n## compare (closed loop)")
for d in lines("compare.jsonl") + lines("compare-rate.json"):
    res = {r["transport"]: r["rtt_ns"] for r in d["results"]}
    hb = res["shm"]
    peers = [t for t in res if t not in ("cacheline", "cacheline2", "shm")]
    best50 = min(peers, key=lambda t: res[t]["p50"])
    best999 = min(peers, key=lambda t: res[t]["p99.9"])
    print("size %4d%s: " % (d["size"], " rate %d/s" % d["rate"] if "rate" in d else "") +
          "  ".join("%s %.2f/%.1f" % (t, r["p50"] / 1e3, r["p99.9"] / 1e3) for t, r in res.items()) +
          "  (p50/p99.9 us)")
    print("           hbus vs floor p50 %.2fx (two-buffer floor %.2fx); vs best peer: p50 %.1fx (%s), p99.9 %.1fx (%s)" % (
        hb["p50"] / res["cacheline"]["p50"], hb["p50"] / res["cacheline2"]["p50"],
        res[best50]["p50"] / hb["p50"], best50,
        res[best999]["p99.9"] / hb["p99.9"], best999))
EOF
