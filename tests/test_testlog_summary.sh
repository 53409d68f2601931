#!/bin/sh
# Tests of what scripts/test decides without running the suite: the summary
# it prints from meson's testlog.json (the "N passed, N failed, N skipped"
# count: Criterion synthesis lines and [SKIP] cases, shell tests by their
# meson result and "SKIP:" sections, crashed/timed-out suites and crashes
# behind a skip as failures, meson's own exit status), its exit status, the
# .fini audit (--audit) and the leftover-process check (--leftovers) on
# processes this test starts.  Nothing is built.
set -eu

src=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
trap 'for p in ${new:-} ${old:-} ${ours:-}; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
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
    t("hbus:scripts / skipped", "SKIP", 77, "SKIP: needs root\n"),
    t("hbus:scripts / sections", "OK", 0, "SKIP: net_af_xdp unavailable here: no XDP\n"
      "ok - the rest\nSKIP: net_tap with RSS unavailable here: no tap\n"),
    t("hbus:scripts / crashed-skip", "SKIP", 77, "Segmentation fault (core dumped)\nSKIP: x\n"),
    t("hbus:unit / skips", "OK", 0, "[SKIP] skips::slow: needs hugepages\n"
      "[SKIP] skips::off: Test is disabled\n" + syn(2, 2, 0, 0)),
    t("hbus:unit / leaky", "FAIL", 1, syn(3, 3, 0, 0) + "ERROR: LeakSanitizer: detected memory leaks\n"),
    t("hbus:unit / colored", "OK", 0, color),
    t("hbus:unit / torn", "FAIL", 1, "[----] Warning! The test `torn::down` crashed during its "
      "setup or teardown.\n" + syn(2, 2, 0, 0)),
    t("hbus / nosuite", "OK", 0),
    t("hbus / xfail", "EXPECTEDFAIL", 1),
]
open(f"{d}/mixed.json", "w").write("\n".join(mixed) + "\n")
good = [t("hbus:unit / queue", "OK", 0, syn(12, 12, 0, 0)),
        t("hbus:scripts / tune-check", "OK", 0)]
open(f"{d}/good.json", "w").write("\n".join(good) + "\n")
bare = [t("hbus:scripts / quiet-skip", "SKIP", 77)]
open(f"{d}/bare.json", "w").write("\n".join(bare) + "\n")
EOF

summarize 1 "mixed log, a missing log and a bootstrap failure" \
	build="$tmp/mixed.json" build-san="$tmp/missing.json" '!bootstrap: scripts/bootstrap exited 1'
# unit 12+7+3+2+2+1 passed, 2+1+1 failed, 2 skipped; multi 1 failed;
# scripts 2 passed, 2 failed (sh-bad, crashed-skip), 1+2 skipped; hbus 2
# passed; plus the missing log and the bootstrap failure.
last_line "mixed: count line" "31 passed, 9 failed, 5 skipped"
line "mixed: unit row" "build      unit                27 passed, 4 failed, 2 skipped"
line "mixed: a teardown crash fails its case" \
	"FAILED build: unit / torn: 1 case(s) failed: torn::down (setup/teardown)"
line "mixed: multi row (nosan label hidden)" "build      multi                0 passed, 1 failed"
line "mixed: scripts row" "build      scripts              2 passed, 2 failed, 3 skipped"
line "mixed: whole-test skip named" "SKIPPED build: scripts / skipped: needs root"
line "mixed: skipped section named" "SKIPPED build: scripts / sections: net_af_xdp unavailable here: no XDP"
line "mixed: second skipped section" "SKIPPED build: scripts / sections: net_tap with RSS unavailable here: no tap"
line "mixed: Criterion skip named" "SKIPPED build: unit / skips / skips::slow: needs hugepages"
line "mixed: disabled case named" "SKIPPED build: unit / skips / skips::off: Test is disabled"
line "mixed: a crash behind a skip fails" \
	"FAILED build: scripts / crashed-skip: skipped (rc 77) after a crash: 'Segmentation fault'"
line "mixed: no-suite row" "build      hbus                 2 passed, 0 failed"
line "mixed: failed cases named" "FAILED build: unit / wire: 2 case(s) failed: wire::bad_len, wire::crash"
line "mixed: timeout named" "FAILED build: multi / ipc: TIMEOUT (rc -15)"
line "mixed: shell failure named" "FAILED build: scripts / sh-bad: FAIL (rc 3)"
line "mixed: failure after all cases passed" "FAILED build: unit / leaky: FAIL after all cases passed (rc 1)"
line "mixed: missing log" "FAILED build-san: cannot read $tmp/missing.json: No such file or directory"
line "mixed: bootstrap failure" "FAILED bootstrap: scripts/bootstrap exited 1"

summarize 0 "all passing, two trees" build="$tmp/good.json" build-san="$tmp/good.json" \
	%build=0 %build-san=0
last_line "good: count line" "26 passed, 0 failed, 0 skipped"
if grep -q '^FAILED' "$tmp/out"; then fail "good: no FAILED line"; else ok "good: no FAILED line"; fi

summarize 1 "meson failed the tree, no test did" build="$tmp/good.json" %build=1
last_line "meson status: count line" "13 passed, 1 failed, 0 skipped"
line "meson status named" "FAILED build: meson test exited 1 and no failed test explains it"
summarize 1 "meson failed the tree, a test explains it" build="$tmp/mixed.json" %build=1
if grep -q "meson test exited" "$tmp/out"; then fail "explained meson status counted twice"
else ok "a meson status a failed test explains is not counted again"; fi

summarize 0 "a skip that printed no reason" build="$tmp/bare.json"
last_line "bare skip: count line" "0 passed, 0 failed, 1 skipped"
line "bare skip: named anyway" "SKIPPED build: scripts / quiet-skip: exit 77, no reason printed"

summarize 0 "nothing ran"
last_line "nothing: count line" "0 passed, 0 failed, 0 skipped"

# --audit: a check reachable from a .fini, directly, through a helper in
# another file and through a macro, is found; abort() in a .fini is not.
mkdir "$tmp/audit"
cat >"$tmp/audit/helper.h" <<'C'
void helper_check(int x);
#define CHECK_ZERO(x) cr_assert_eq((x), 0)
C
cat >"$tmp/audit/helper.c" <<'C'
void helper_check(int x)
{
	cr_expect(x > 0, "x");
}
C
cat >"$tmp/audit/t.c" <<'C'
#include "helper.h"
static void direct(void) { cr_assert(1); }
static void via_helper(void) { helper_check(1); }
static void via_macro(void) { CHECK_ZERO(0); }
static void clean(void)
{
	/* cr_assert(0) in a comment, "cr_assert(0)" in a string */
	if (0)
		abort();
}
TestSuite(a, .fini = direct);
TestSuite(b, .fini = via_helper);
TestSuite(c, .fini = via_macro);
TestSuite(d, .fini = clean);
C
got=0; "$src/scripts/test" --audit "$tmp/audit" >"$tmp/out" 2>&1 || got=$?
if [ "$got" -eq 1 ] && [ "$(grep -c . "$tmp/out")" -eq 3 ] && grep -q '\.fini = direct: cr_assert' "$tmp/out" &&
	grep -q '\.fini = via_helper -> helper_check: cr_expect' "$tmp/out" &&
	grep -q '\.fini = via_macro -> CHECK_ZERO: cr_assert' "$tmp/out"; then
	ok "audit finds the 3 checks reachable from a .fini, and only them"
else
	fail "audit (exit $got)"
fi
got=0; "$src/scripts/test" --audit "$src/tests" >"$tmp/out" 2>&1 || got=$?
if [ "$got" -eq 0 ]; then ok "audit: no check in any .fini of tests/"; else fail "audit of tests/ (exit $got)"; fi

# --leftovers: an hbus process started after the snapshot is found by its
# executable's name wherever it lives, and one still running from before
# is not.  (Other tests run meanwhile: only these two are looked for.)
mkdir "$tmp/bin"
cp "$(command -v sleep)" "$tmp/bin/hbusd"
cp "$(command -v sleep)" "$tmp/bin/hbus-dataplane"
"$tmp/bin/hbus-dataplane" 60 &
old=$!
"$src/scripts/test" --snapshot "$tmp/snap"
env -u HBUS_TEST_RUN "$tmp/bin/hbusd" 60 &
new=$!
HBUS_TEST_RUN=tok.$$ "$tmp/bin/hbusd" 60 &
ours=$!
got=0; HBUS_TEST_RUN=tok.$$ "$src/scripts/test" --leftovers "$tmp/snap" >"$tmp/out" 2>&1 || got=$?
if [ "$got" -eq 1 ] && grep -Eq "(^| )$new\(hbusd\)( |$)" "$tmp/out" &&
	grep -Eq "(^| )$ours\(hbusd\)!( |$)" "$tmp/out" && ! grep -Eq "(^| )$old\(" "$tmp/out"; then
	ok "--leftovers names the hbusds started after the snapshot (this run's marked '!'), not the older process"
else
	fail "--leftovers (exit $got)"
fi
kill "$new" "$old" "$ours"
wait "$new" "$old" "$ours" 2>/dev/null || true
"$src/scripts/test" --leftovers "$tmp/snap" >"$tmp/out" 2>&1 || true
if ! grep -Eq "(^| )($new|$ours)\(" "$tmp/out"; then ok "--leftovers: gone once killed"; else fail "--leftovers after kill"; fi

echo "# $n tests, $failed failed"
[ "$failed" -eq 0 ]
