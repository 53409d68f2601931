#!/bin/sh
# run-fuzz.sh - run the hbus libFuzzer targets for a bounded time.
#
#   tests/fuzz/run-fuzz.sh                 configure a clang build with
#                                          -Dfuzz=true, build the targets, run
#                                          each for $HBUS_FUZZ_SECONDS (20)
#   tests/fuzz/run-fuzz.sh --run EXE SEEDS run one built target on a scratch
#                                          copy of the seed corpus SEEDS
#
# Environment: HBUS_FUZZ_SECONDS (per target, default 20), HBUS_FUZZ_BUILD_DIR
# (default /tmp/hbus-fuzz-<hash of the source path>, reused between runs),
# HBUS_FUZZ_ARTIFACTS (where crashing inputs are kept, default
# <build dir>/fuzz-artifacts).  The seed corpus in the source tree is never
# written to.  A crash exits non-zero and prints the input as hex; turn it
# into a regression case in tests/test_meta_wire.c or tests/test_pkt.c
# (control targets: tests/test_hbusd_fuzzed.c).
# Exit 77 (meson: skipped) when clang or libFuzzer is missing.
set -eu

SECONDS_PER_TARGET=${HBUS_FUZZ_SECONDS:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)

run_one() { # exe seed_dir artifact_dir
	exe=$1 seeds=$2 artifacts=$3
	name=$(basename "$exe")
	work=$(mktemp -d "${TMPDIR:-/tmp}/hbus-fuzz-$name.XXXXXX")
	# Scratch shared memory for the control-plane targets (fuzz_hbusd.h).
	shm=$(mktemp -d /dev/shm/hbus-fuzz-$name.XXXXXX)
	trap 'rm -rf "$work" "$shm"' EXIT INT TERM
	mkdir -p "$work/corpus" "$artifacts"
	[ -d "$seeds" ] && cp "$seeds"/* "$work/corpus/" 2>/dev/null || true
	echo "== $name: ${SECONDS_PER_TARGET}s, $(ls "$work/corpus" | wc -l) seeds"
	if HBUS_FUZZ_TMP=$shm "$exe" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" \
		>"$work/log" 2>&1; then
		tail -n 12 "$work/log"
		rm -rf "$work" "$shm"
		trap - EXIT INT TERM
		return 0
	fi
	tail -n 60 "$work/log"
	for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
		[ -e "$a" ] || continue
		cp "$a" "$artifacts/$name-$(basename "$a")"
		echo "== $name: failing input kept as $artifacts/$name-$(basename "$a"):"
		od -An -tx1 -v "$a" | head -n 40
	done
	rm -rf "$work" "$shm"
	trap - EXIT INT TERM
	return 1
}

if [ "${1:-}" = "--run" ]; then
	[ $# -eq 3 ] || { echo "usage: $0 --run EXE SEED_DIR" >&2; exit 2; }
	run_one "$2" "$3" "${HBUS_FUZZ_ARTIFACTS:-$(dirname "$2")/fuzz-artifacts}"
	exit $?
fi

CLANG=$(command -v clang || command -v clang-14 || true)
if [ -z "$CLANG" ]; then
	echo "SKIP: run-fuzz.sh: clang not found" >&2
	exit 77
fi
probe=$(mktemp -d "${TMPDIR:-/tmp}/hbus-fuzz-probe.XXXXXX")
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}\n' \
	>"$probe/p.c"
if ! "$CLANG" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
	cat "$probe/err" >&2
	echo "SKIP: run-fuzz.sh: clang cannot link libFuzzer (install libclang-rt-14-dev)" >&2
	rm -rf "$probe"
	exit 77
fi
rm -rf "$probe"

hash=$(printf '%s' "$SRC" | cksum | cut -d' ' -f1)
BUILD=${HBUS_FUZZ_BUILD_DIR:-${TMPDIR:-/tmp}/hbus-fuzz-$hash}
# One run per build dir at a time.
exec 9>"$BUILD.lock"
flock 9

setup() {
	rm -rf "$BUILD"
	CC="$CLANG" meson setup "$BUILD" "$SRC" -Dfuzz=true -Ddataplane=disabled \
		-Dbuildtype=debugoptimized >"$BUILD.setup.log" 2>&1 ||
		{ cat "$BUILD.setup.log"; exit 1; }
}
TARGETS="fuzz_wire fuzz_pkt fuzz_request fuzz_defs fuzz_shm"
# The AMQP gateway target exists where librabbitmq-dev is installed.
[ -e /usr/include/amqp_framing.h ] && TARGETS="$TARGETS fuzz_amqp"
build() {
	ninja -C "$BUILD" $(for t in $TARGETS; do echo tests/fuzz/$t; done)
}
[ -f "$BUILD/build.ninja" ] || setup
# A build dir left by an older tree may not regenerate: start it afresh once.
build || { setup && build; }

status=0
for t in $TARGETS; do
	run_one "$BUILD/tests/fuzz/$t" "$HERE/corpus/$t" \
		"${HBUS_FUZZ_ARTIFACTS:-$BUILD/fuzz-artifacts}" || status=1
done
exit $status
