#!/bin/sh
# Tests of the summary that scripts/test prints from meson's testlog.json: the
# "N passed, N failed" count (Criterion synthesis lines, shell tests by their
# meson result, crashed/timed-out suites as one failure) and its exit status.
# Runs `scripts/test --summarize` only: nothing is built.
set -eu

src=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
	n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
	sed 's/^/#   /' "$tmp/out"
}
summarize() { # WANT-STATUS DESC ARGS...
	want=$1 d=$2; shift 2
	got=0; "$src/scripts/test" --summarize "$@" >"$tmp/out" 2>&1 || got=$?
	if [ "$got" -eq "$want" ]; then ok "$d (exit $got)"; else fail "$d: exit $got, want $want"; fi
}
last_line() { # DESC WANT
	if [ "$(tail -n 1 "$tmp/out")" = "$2" ]; then ok "$1"; else fail "$1: last line is not '$2'"; fi
}
line() { # DESC EXACT-LINE
	if grep -q -x -F -- "$2" "$tmp/out"; then ok "$1"; else fail "$1: no line '$2'"; fi
}

# A hand-made meson testlog.json: one JSON object a line, as meson 1.0 writes.
python3 - "$tmp" <<'EOF'
import json, sys
d = sys.argv[1]
def t(name, result, rc, stderr="", stdout=""):
    o = {"name": name, "stdout": stdout, "result": result, "returncode": rc,
         "duration": 0.1, "starttime": 0, "command": ["x"], "env": {}}
    if stderr:
        o["stderr"] = stderr
    return json.dumps(o)
syn = "[====] Synthesis: Tested: {} | Passing: {} | Failing: {} | Crashing: {} \n".format
color = ("[\x1b[0;34m====\x1b[0m] \x1b[0;1mSynthesis: Tested: \x1b[0;34m2\x1b[0;1m | "
         "Passing: \x1b[0;32m2\x1b[0;1m | Failing: \x1b[0;31m0\x1b[0;1m | "
         "Crashing: \x1b[0;31m0\x1b[0;1m \x1b[0m\n")
mixed = [
    t("hbus:unit / queue", "OK", 0, syn(12, 12, 0, 0)),
    t("hbus:unit / wire", "FAIL", 1,
      "[----] wire.c:10: Assertion Failed\n[FAIL] wire::bad_len: (0.00s)\n"
      "[FAIL] wire::crash: CRASH!\n" + syn(9, 7, 2, 1)),
    t("hbus:multi+nosan / ipc", "TIMEOUT", -15, "[----] started\n"),
    t("hbus:scripts / tune-check", "OK", 0, stdout="ok 1 - x\n"),
    t("hbus:scripts / sh-bad", "FAIL", 3, "bad\n"),
    t("hbus:scripts / skipped", "SKIP", 77),
    t("hbus:unit / leaky", "FAIL", 1, syn(3, 3, 0, 0) + "ERROR: LeakSanitizer: detected memory leaks\n"),
    t("hbus:unit / colored", "OK", 0, color),
    t("hbus / nosuite", "OK", 0),
    t("hbus / xfail", "EXPECTEDFAIL", 1),
]
open(f"{d}/mixed.json", "w").write("\n".join(mixed) + "\n")
good = [t("hbus:unit / queue", "OK", 0, syn(12, 12, 0, 0)),
        t("hbus:scripts / tune-check", "OK", 0)]
open(f"{d}/good.json", "w").write("\n".join(good) + "\n")
EOF

summarize 1 "mixed log, a missing log and a bootstrap failure" \
	build="$tmp/mixed.json" build-san="$tmp/missing.json" '!bootstrap: scripts/bootstrap exited 1'
# unit 12+7+3+2 passed, 2+1 failed; multi 1 failed; scripts 1/1/1 skipped;
# hbus 2 passed; plus the missing log and the bootstrap failure.
last_line "mixed: count line" "27 passed, 7 failed"
line "mixed: unit row" "build      unit                24 passed, 3 failed"
line "mixed: multi row (nosan label hidden)" "build      multi                0 passed, 1 failed"
line "mixed: scripts row" "build      scripts              1 passed, 1 failed, 1 skipped"
line "mixed: no-suite row" "build      hbus                 2 passed, 0 failed"
line "mixed: failed cases named" "FAILED build: unit / wire: 2 case(s) failed: wire::bad_len, wire::crash"
line "mixed: timeout named" "FAILED build: multi / ipc: TIMEOUT (rc -15)"
line "mixed: shell failure named" "FAILED build: scripts / sh-bad: FAIL (rc 3)"
line "mixed: failure after all cases passed" "FAILED build: unit / leaky: FAIL after all cases passed (rc 1)"
line "mixed: missing log" "FAILED build-san: cannot read $tmp/missing.json: No such file or directory"
line "mixed: bootstrap failure" "FAILED bootstrap: scripts/bootstrap exited 1"

summarize 0 "all passing, two trees" build="$tmp/good.json" build-san="$tmp/good.json"
last_line "good: count line" "26 passed, 0 failed"
if grep -q '^FAILED' "$tmp/out"; then fail "good: no FAILED line"; else ok "good: no FAILED line"; fi

summarize 0 "nothing ran"
last_line "nothing: count line" "0 passed, 0 failed"

got=0; "$src/scripts/test" --bogus >"$tmp/out" 2>&1 || got=$?
if [ "$got" -eq 2 ]; then ok "scripts/test --bogus exits 2"; else fail "scripts/test --bogus: exit $got"; fi

echo "# $n tests, $failed failed"
[ "$failed" -eq 0 ]
