#!/usr/bin/env bash
# test_demo.sh - the README's main command, as a test: scripts/demo with a
# short count on the already-built tree, as root (namespace + DPDK dataplane)
# and as an unprivileged user (the shared-memory part alone).  The demo
# exits non-zero unless every queue got exactly the messages routed to it;
# here we also check that the latency summary and hbus stat were printed.
# A half that cannot run here says "SKIP: why" (scripts/test counts it);
# when neither could, the test exits 77 (skipped), never 0.
set -u
ROOT=${HBUS_SOURCE_DIR:?}
export HBUS_BUILD_DIR=${HBUS_BUILD_DIR:?}
out=$(mktemp /tmp/hbus-test-demo.XXXXXX)
trap 'rm -f "$out"' EXIT
fails=0
ran=0

check() { # check LABEL STATUS PATTERN...
	local label=$1 st=$2 p
	shift 2
	if [ "$st" -ne 0 ]; then
		echo "FAIL $label: exit $st"; tail -30 "$out"; fails=$((fails + 1)); return
	fi
	for p in "$@"; do
		if ! grep -qE "$p" "$out"; then
			echo "FAIL $label: no line matching '$p'"; tail -30 "$out"; fails=$((fails + 1)); return
		fi
	done
	echo "ok   $label"
}
run_demo() { ran=$((ran + 1)); "$@" >"$out" 2>&1; }

if [ "$(id -u)" -eq 0 ] && [ -x "$HBUS_BUILD_DIR/dataplane/hbus-dataplane" ]; then
	run_demo timeout 240 "$ROOT/scripts/demo" --no-build --count 300
	check "demo as root (dataplane)" $? "OK +equities +300 of 300" "OK +fx +350 of 350" \
		"OK +audit +650 of 650" "p50 [0-9.]+ us" "^equities +0 "
else
	echo "SKIP: demo as root: not root or no dataplane built"
fi

# The unprivileged path, if user nobody can reach the tree.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$HBUS_BUILD_DIR/control/hbusd"; then
	run_demo timeout 120 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$ROOT/scripts/demo" --no-build --count 200
	check "demo unprivileged (shared memory only)" $? "not root" "OK +equities +200 of 200" \
		"OK +audit +250 of 250" "p50 [0-9.]+ us" "^shm +[0-9.]+"
else
	echo "SKIP: demo unprivileged: not root, no setpriv, or user nobody cannot reach $HBUS_BUILD_DIR"
fi
[ $ran -gt 0 ] || exit 77
[ $fails -eq 0 ]
