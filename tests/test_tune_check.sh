#!/bin/sh
# Tests of scripts/tune-check (on the fake /proc and /sys trees in
# tests/fixtures/tune/{good,bad}) and, with --real, smoke tests of tune-check
# and setup-hugepages on this machine.
#
#   sh tests/test_tune_check.sh [--real]
#
# Prints "ok N - ..." / "not ok N - ..." and exits 1 if anything failed.
set -eu

src=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
tc="$src/scripts/tune-check"
sh_="$src/scripts/setup-hugepages"
fx="$src/tests/fixtures/tune"

tmp=$(mktemp -d)
mnt=""
cleanup() {
	if [ -n "$mnt" ] && grep -q " $mnt hugetlbfs " /proc/mounts; then umount "$mnt"; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
	n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
	[ ! -f "$tmp/out" ] || sed 's/^/#   /' "$tmp/out"
}
# check DESC CMD...: CMD's status is 0.
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
# status WANT DESC CMD...: run CMD with output in $tmp/out, expect status WANT.
status() {
	want=$1 d=$2; shift 2
	got=0; "$@" >"$tmp/out" 2>&1 || got=$?
	if [ "$got" -eq "$want" ]; then ok "$d (exit $got)"; else fail "$d: exit $got, want $want"; fi
}
# has DESC PREFIX FIX: a line of $tmp/out starts with PREFIX and contains FIX.
has() {
	if grep -F -- "$2" "$tmp/out" | grep -q -F -- "$3" &&
		[ "$(grep -c -F -- "$2" "$tmp/out")" -eq 1 ]; then
		ok "$1"
	else
		fail "$1: no line '$2 ... $3'"
	fi
}
# count DESC PATTERN WANT: lines of $tmp/out matching the regex PATTERN.
count() {
	c=$(grep -c -E -- "$2" "$tmp/out" || true)
	if [ "$c" -eq "$3" ]; then ok "$1"; else fail "$1: $c lines match '$2', want $3"; fi
}
json_ok() { # DESC STATUS-OF-ALL-ITEMS|any WANT-ITEMS
	if python3 -c '
import json, sys
items = json.load(open(sys.argv[1]))
assert len(items) == int(sys.argv[3]), len(items)
for i in items:
    assert set(i) == {"check", "status", "detail", "fix"}, i
    assert sys.argv[2] == "any" or i["status"] == sys.argv[2], i
    assert (i["fix"] != "") == (i["status"] == "WARN"), i
' "$tmp/out" "$2" "$3"; then ok "$1"; else fail "$1"; fi
}

checks="isolcpus nohz_full rcu_nocbs governor thp irqbalance numa hugepages hugetlbfs memlock"
nchecks=10

fixture_tests() {
	# good: every check passes, also under --strict.
	status 0 "good: --strict passes" "$tc" --root "$fx/good" --cpus 2-3 --dev ens1f0 --strict
	count "good: $nchecks PASS lines" '^PASS [a-z_]+: ' "$nchecks"
	count "good: no WARN" '^WARN' 0
	for c in $checks; do
		count "good: one PASS $c" "^PASS $c: " 1
	done
	status 0 "good: --json" "$tc" --root "$fx/good" --cpus 2-3 --dev ens1f0 --json
	json_ok "good: JSON has $nchecks PASS items" PASS "$nchecks"
	status 0 "good: without --cpus" "$tc" --root "$fx/good" --dev ens1f0
	has "good: isolcpus lists its cores" "PASS isolcpus: isolcpus=managed_irq,domain,2-3" "(cores 2-3)"

	# bad: each check warns, with its fix.
	status 0 "bad: exit 0 without --strict" "$tc" --root "$fx/bad" --cpus 2-3 --dev ens1f0
	count "bad: $nchecks WARN lines with a fix" '^WARN [a-z_]+: .* -- fix: .' "$nchecks"
	count "bad: no PASS" '^PASS' 0
	# (isolcpus= and rcu_nocbs= after " -- " belong to init, not the kernel)
	has "bad: isolcpus" "WARN isolcpus: not set" \
		"-- fix: add isolcpus=domain,managed_irq,2-3 to GRUB_CMDLINE_LINUX"
	has "bad: nohz_full misses cpu 2" "WARN nohz_full: cpu 2 of --cpus not in nohz_full=3" \
		"-- fix: add nohz_full=2-3 to GRUB_CMDLINE_LINUX"
	has "bad: rcu_nocbs" "WARN rcu_nocbs: not set" "-- fix: add rcu_nocbs=2-3 to"
	has "bad: governor" "WARN governor: cpu2=powersave cpu3=schedutil" \
		"-- fix: echo performance | tee /sys/devices/system/cpu/cpu{2,3}/cpufreq/scaling_governor"
	has "bad: thp" "WARN thp: enabled=always" \
		"-- fix: echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"
	has "bad: irqbalance" "WARN irqbalance: running (pid 523)" \
		"-- fix: systemctl disable --now irqbalance, or IRQBALANCE_BANNED_CPULIST=2-3"
	has "bad: numa" "WARN numa: ens1f0 is on node 0 (cpu 0-1) but --cpus 2-3 are not" \
		"declare queues with --numa-node 0"
	has "bad: hugepages" "WARN hugepages: 0 of 64 x 2 MiB pages free" \
		"-- fix: scripts/setup-hugepages --pages 512"
	has "bad: hugetlbfs" "WARN hugetlbfs: no hugetlbfs mounted" "-- fix: scripts/setup-hugepages"
	has "bad: memlock" "WARN memlock: RLIMIT_MEMLOCK 8192 KiB" "-- fix: ulimit -l unlimited"
	status 1 "bad: --strict fails" "$tc" --root "$fx/bad" --cpus 2-3 --dev ens1f0 --strict
	status 0 "bad: --json" "$tc" --root "$fx/bad" --cpus 2-3 --dev ens1f0 --json
	json_ok "bad: JSON has $nchecks WARN items" WARN "$nchecks"

	# Variants of good.
	cp -R "$fx/good/." "$tmp/v"
	mkdir "$tmp/v/proc/77"
	echo irqbalance >"$tmp/v/proc/77/comm"
	status 0 "irqbalance with isolated cores" "$tc" --root "$tmp/v" --cpus 2-3 --dev ens1f0 --strict
	has "irqbalance leaves isolated cores alone" "PASS irqbalance: running (pid 77)" "off cpu 2-3"
	status 0 "--cpus outside isolcpus" "$tc" --root "$tmp/v" --cpus 1-3 --dev ens1f0
	has "isolcpus misses cpu 1" "WARN isolcpus: cpu 1 of --cpus not in" \
		"add isolcpus=domain,managed_irq,1-3 to"
	has "irqbalance may move IRQs to cpu 1" "WARN irqbalance: running (pid 77)" "onto cpu 1 "
	has "numa: cpu 1 is off the NIC's node" "WARN numa: ens1f0 is on node 1 (cpu 2-3) but --cpus 1 are not" \
		"--numa-node 1"
	sed 's/isolcpus=managed_irq,domain,2-3/isolcpus=managed_irq,2-3/' "$fx/good/proc/cmdline" \
		>"$tmp/v/proc/cmdline"
	status 0 "isolcpus without domain" "$tc" --root "$tmp/v" --cpus 2-3
	has "isolcpus without domain warns" "WARN isolcpus: isolcpus=managed_irq,2-3 has no 'domain' flag" \
		"isolcpus=domain,managed_irq,2-3"
	echo 'always [madvise] never' >"$tmp/v/sys/kernel/mm/transparent_hugepage/enabled"
	status 0 "thp madvise" "$tc" --root "$tmp/v"
	has "thp madvise passes" "PASS thp: enabled=madvise" "hugetlbfs"
	mkdir -p "$tmp/v/etc/default"
	echo 'IRQBALANCE_BANNED_CPUS="00000000,0000000c"' >"$tmp/v/etc/default/irqbalance"
	status 0 "irqbalance with a banned mask" "$tc" --root "$tmp/v" --cpus 2-3
	has "irqbalance banned mask covers 2-3" "PASS irqbalance: running (pid 77)" "off cpu 2-3"
	echo 'IRQBALANCE_BANNED_CPULIST=3' >>"$tmp/v/etc/default/irqbalance"
	status 0 "irqbalance with a banned list" "$tc" --root "$tmp/v" --cpus 2-3
	has "irqbalance banned list overrides isolation" "WARN irqbalance: running (pid 77)" "onto cpu 2 "
	echo 'nodev /mnt/huge1G hugetlbfs rw,relatime,pagesize=1024M 0 0' >"$tmp/v/proc/mounts"
	status 0 "hugetlbfs elsewhere" "$tc" --root "$tmp/v"
	has "hugetlbfs elsewhere passes" "PASS hugetlbfs: mounted on /mnt/huge1G" "first writable"

	# Bad arguments exit 2.
	status 2 "--cpus beyond the online cores" "$tc" --root "$fx/good" --cpus 2-9
	status 2 "--cpus reversed range" "$tc" --root "$fx/good" --cpus 3-1
	status 2 "--cpus garbage" "$tc" --root "$fx/good" --cpus two
	status 2 "--cpus without value" "$tc" --root "$fx/good" --cpus
	status 2 "--dev unknown" "$tc" --root "$fx/good" --dev nosuch0
	status 2 "--root missing" "$tc" --root "$tmp/nonexistent"
	status 2 "unknown option" "$tc" --bogus
	status 0 "--help" "$tc" --help
}

real_tests() {
	status 0 "setup-hugepages --help" "$sh_" --help
	has "setup-hugepages --help documents --pages" "--pages N    pool size" "default 512"
	status 2 "setup-hugepages --size 3M" "$sh_" --size 3M
	status 2 "setup-hugepages --pages x" "$sh_" --pages x

	status 0 "tune-check on this machine" "$tc"
	count "tune-check: $nchecks lines" '^(PASS [a-z_]+: .|WARN [a-z_]+: .* -- fix: .)' "$nchecks"
	status 0 "tune-check --json on this machine" "$tc" --json --cpus 0
	json_ok "tune-check --json: $nchecks items" any "$nchecks"

	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP: setup-hugepages as nobody and --mount: not root"
		return
	fi
	# Non-root: it explains what it would need, exit 1.  (Skipped when the
	# checkout is not readable by nobody, e.g. under a 0700 home.)
	if command -v setpriv >/dev/null 2>&1 &&
		setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$sh_"; then
		status 1 "setup-hugepages as nobody" \
			setpriv --reuid=65534 --regid=65534 --clear-groups "$sh_" --pages 100000000
		has "setup-hugepages as nobody says why" "setup-hugepages: needs root to:" ""
		has "setup-hugepages as nobody names the pool" "raise /sys/kernel/mm/hugepages/" "to 100000000"
	else
		echo "SKIP: setup-hugepages as nobody: the checkout is not readable by nobody"
	fi
	# The mount logic on a scratch mount point, pool left as it is (--pages 0).
	if grep -q hugetlbfs /proc/filesystems; then
		mnt="$tmp/huge"
		status 0 "setup-hugepages --mount (first run)" "$sh_" --pages 0 --mount "$mnt"
		has "it mounts" "setup-hugepages: mount -t hugetlbfs -o pagesize=2M,mode=1770 nodev $mnt" ""
		check "mounted once" [ "$(grep -c " $mnt hugetlbfs " /proc/mounts)" -eq 1 ]
		check "mode 1770" [ "$(stat -c %a "$mnt")" = 1770 ]
		status 0 "setup-hugepages --mount (second run)" "$sh_" --pages 0 --mount "$mnt" --group daemon
		has "second run does not mount again" "already on $mnt" ""
		check "still mounted once" [ "$(grep -c " $mnt hugetlbfs " /proc/mounts)" -eq 1 ]
		check "--group sets the gid" [ "$(stat -c %G:%a "$mnt")" = daemon:1770 ]
		umount "$mnt"
		mnt=""
	else
		echo "SKIP: setup-hugepages --mount: no hugetlbfs in this kernel"
	fi
}

case "${1:-}" in
--real) real_tests ;;
'') fixture_tests ;;
*) echo "usage: $0 [--real]" >&2; exit 2 ;;
esac
echo "# $n tests, $failed failed"
[ "$failed" -eq 0 ]
