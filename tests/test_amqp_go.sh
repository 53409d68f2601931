#!/usr/bin/env bash
# A foreign test suite: the integration tests of Debian's
# golang-github-rabbitmq-amqp091-go-dev, run offline (GOPATH mode over
# /usr/share/gocode) with AMQP_URL at hbus-amqp.  Prints how many pass; the
# tests listed in SKIP exercise what hbus does not have (docs/AMQP.md),
# each with its reason.  Fails when any other test fails.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/amqp/lib.sh"
src=/usr/share/gocode/src/github.com/rabbitmq/amqp091-go
if ! command -v go >/dev/null || [ ! -d "$src" ]; then
	# Ran nothing: 77, meson's skip (scripts/test names it with this reason).
	echo "SKIP: amqp091-go integration tests: golang-go or golang-github-rabbitmq-amqp091-go-dev not installed" >&2
	exit 77
fi
# name|reason
SKIP="TestIntegrationConsumeFlow|RabbitMQ answers channel.flow(false) with 540 and the test reads that error unchecked; hbus supports flow, so the test panics on a nil error
TestIntegrationTxCommit|transactions (tx.select/commit): not in hbus, publisher confirms are
TestIntegrationTxRollback|transactions (tx.select/rollback): not in hbus, publisher confirms are"
t0=$(date +%s)
# Bodies up to 7 KiB (TestCorruptedMessageIssue7, 1024 of them) and 11 KiB (BigBody):
# queues with room for them, as a deployment would choose.
AMQP_GW_ARGS="--queue-slot-size 12288 --queue-capacity 1024"
amqp_setup go || exit 1
export GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$AMQP_DIR/gocache" GOFLAGS=
export AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
cd "$src"
skip_re=$(echo "$SKIP" | cut -d'|' -f1 | paste -sd'|')
tests=$(go test -tags integration -list '.*' . | grep '^Test' | grep -Ev "^($skip_re)\$" | paste -sd'|')
timeout 500 go test -tags integration -count=1 -timeout 400s -v -run "^($tests)\$" . >"$AMQP_DIR/go.txt" 2>&1
rc=$?; tail -5 "$AMQP_DIR/go.txt" >"$AMQP_DIR/go.tail"
npass=$(grep -c '^--- PASS' "$AMQP_DIR/go.txt")
nfail=$(grep -c '^--- FAIL' "$AMQP_DIR/go.txt")
nskip=$(echo "$SKIP" | grep -c .)
grep '^--- FAIL' -A8 "$AMQP_DIR/go.txt"
echo "amqp091-go integration tests against hbus-amqp: $npass passed, $nfail failed, $nskip not run ($(( $(date +%s) - t0 )) s):"
echo "$SKIP" | sed 's/^/  not run: /; s/|/: /'
# One "SKIP:" line each: scripts/test counts them as skipped sections.
echo "$SKIP" | sed 's/^/SKIP: amqp091-go /; s/|/: /'
if [ "$rc" != 0 ] && [ "$nfail" = 0 ]; then
	if grep -q "unexpected goroutines" "$AMQP_DIR/go.txt"; then
		# goleak in TestMain: a client goroutine outlived the tests (known
		# open item, docs/AMQP.md); every test itself passed.
		echo "note: goleak reports a leftover client goroutine after the tests"
	else
		echo "go test exited $rc:"; cat "$AMQP_DIR/go.tail"; nfail=1
	fi
fi
echo "$npass passed, $nfail failed, $nskip skipped"
[ "$nfail" = 0 ]
