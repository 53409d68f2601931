#!/bin/bash
# test_install.sh - what `meson install` delivers, used the way a user or a
# distribution would (docs/INSTALL.md).
#
#   bash tests/test_install.sh     (HBUS_BUILD_DIR, HBUS_SOURCE_DIR set by meson)
#
# Installs the build tree into a temporary DESTDIR, then checks:
#  1. the files: programs, libhbus.so.X.Y.Z + links, libhbus.a, hbus.h,
#     hbus.pc, man pages, systemd units, sysusers.d, docs, examples;
#  2. the library: soname libhbus.so.0, only hbus_ names exported (one
#     symbol version), pkg-config's version = hbus.h's = the project's;
#  3. the examples, built from the installed copy with its Makefile against
#     the installed tree (PKG_CONFIG_PATH + PKG_CONFIG_SYSROOT_DIR), shared
#     and static (libhbus.a), and hbus.h from C++; run against the installed
#     hbusd (under strace), their output compared with
#     tests/fixtures/examples/*.out;
#  4. the syscalls and socket families that hbusd used while serving them
#     are allowed by hbusd@.service's SystemCallFilter= and
#     RestrictAddressFamilies=;
#  5. the man pages: groff finds nothing to warn about, and each documents
#     every --option its program's --help prints;
#  6. the units: systemd-analyze verify has nothing to say (no running
#     systemd needed), and their ExecStart= name the installed programs.
set -u

B=${HBUS_BUILD_DIR:?set HBUS_BUILD_DIR to the build directory}
S=${HBUS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { echo "ok - $*"; }
skip() { echo "SKIP: $*" >&2; exit 77; }

for t in pkg-config readelf nm make cc groff; do
	command -v "$t" >/dev/null 2>&1 || skip "needs $t"
done

T=$(mktemp -d /tmp/hbus-test-install.XXXXXX) || exit 1
SHM=$(mktemp -d /dev/shm/hbus-test-install.XXXXXX) || exit 1
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T" "$SHM"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

D=$T/dest
meson install -C "$B" --destdir "$D" --no-rebuild >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log" >&2; echo "FAIL: meson install" >&2; exit 1; }

# Installation directories, as this tree was configured.
eval "$(meson introspect "$B" --buildoptions | python3 -c '
import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
for k in ("bindir", "sbindir", "libdir", "includedir", "mandir", "datadir", "sysconfdir"):
    print("%s=%s" % (k.upper(), os.path.join(p, o[k])))
print("PREFIX=" + p)
print("UNITDIR_OPT=" + o.get("systemd_unit_dir", ""))')"
VERSION=$(meson introspect "$B" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
DOCDIR=$DATADIR/doc/hbus
LIB=$D$LIBDIR
HAVE_DP=0
[ -x "$B/dataplane/hbus-dataplane" ] && HAVE_DP=1
HAVE_AMQP=0
[ -x "$B/amqp/hbus-amqp" ] && HAVE_AMQP=1

# ------------------------------------------------------------ 1. files
missing=()
want=("$BINDIR/hbus" "$BINDIR/hbus-bench" "$SBINDIR/hbusd" "$INCLUDEDIR/hbus.h"
	"$LIBDIR/libhbus.a" "$LIBDIR/libhbus.so.$VERSION" "$LIBDIR/pkgconfig/hbus.pc"
	"$MANDIR/man1/hbus.1" "$MANDIR/man1/hbus-bench.1" "$MANDIR/man8/hbusd.8"
	"$DOCDIR/README.md" "$DOCDIR/INSTALL.md" "$DOCDIR/OPERATIONS.md"
	"$DOCDIR/examples/Makefile" "$DOCDIR/examples/example.h")
for ex in publisher consumer responder requester; do want+=("$DOCDIR/examples/$ex.c"); done
[ "$HAVE_DP" = 1 ] && want+=("$SBINDIR/hbus-dataplane" "$MANDIR/man8/hbus-dataplane.8"
	"$DOCDIR/examples/dataplane.env")
[ "$HAVE_AMQP" = 1 ] && want+=("$SBINDIR/hbus-amqp" "$MANDIR/man8/hbus-amqp.8"
	"$DOCDIR/examples/amqp.env")
for f in "${want[@]}"; do [ -f "$D$f" ] || missing+=("$f"); done
UNITS=$(cd "$D" && find . -name 'hbusd@.service' | sed 's|^\.||')
SYSUSERS=$(cd "$D" && find . -path '*sysusers.d/hbus.conf' | sed 's|^\.||')
[ -n "$UNITS" ] || missing+=("hbusd@.service")
[ -n "$SYSUSERS" ] || missing+=("sysusers.d/hbus.conf")
UNITDIR=$(dirname "${UNITS:-/x/x}")
[ "$HAVE_DP" = 1 ] && [ ! -f "$D$UNITDIR/hbus-dataplane@.service" ] && missing+=("hbus-dataplane@.service")
[ "$HAVE_AMQP" = 1 ] && [ ! -f "$D$UNITDIR/hbus-amqp@.service" ] && missing+=("hbus-amqp@.service")
if [ ${#missing[@]} -eq 0 ] && [ "$(readlink "$LIB/libhbus.so.0")" = "libhbus.so.$VERSION" ] &&
	[ "$(readlink "$LIB/libhbus.so")" = libhbus.so.0 ]; then
	ok "installed: programs, libhbus.so.$VERSION (+ .so.0, .so), libhbus.a, hbus.h, hbus.pc, man pages, units in $UNITDIR, sysusers, docs, examples"
else
	fail "missing from the installation: ${missing[*]} (links: $(ls -l "$LIB" | grep -o 'libhbus.so.*'))"
fi

# ------------------------------------------------------------ 2. library
soname=$(readelf -d "$LIB/libhbus.so.$VERSION" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libhbus.so.0 ] && ok "soname $soname" || fail "soname '$soname', not libhbus.so.0"
other=$(nm -D --defined-only "$LIB/libhbus.so.$VERSION" | awk '$3 !~ /^hbus_/ && $3 != "HBUS_0" { print $3 }')
unversioned=$(nm -D --defined-only "$LIB/libhbus.so.$VERSION" | awk '$3 ~ /^hbus_/ && $3 !~ /@@HBUS_0$/' | wc -l)
if [ -z "$other" ] && [ "$unversioned" = 0 ]; then
	ok "libhbus.so exports hbus_ names only, all in version HBUS_0"
else
	fail "libhbus.so exports $(echo $other) ($unversioned hbus_ names unversioned)"
fi
export PKG_CONFIG_PATH=$LIB/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
unset PKG_CONFIG_LIBDIR
header_version=$(sed -n 's/^#define HBUS_VERSION_STRING "\(.*\)"/\1/p' "$D$INCLUDEDIR/hbus.h")
pc_version=$(pkg-config --modversion hbus 2>&1)
if [ "$pc_version" = "$VERSION" ] && [ "$header_version" = "$VERSION" ]; then
	ok "pkg-config --modversion hbus = HBUS_VERSION_STRING = $VERSION"
else
	fail "versions: pkg-config '$pc_version', hbus.h '$header_version', project '$VERSION'"
fi

# ----------------------------------------------------------- 3. examples
EX=$T/examples
cp -r "$D$DOCDIR/examples" "$EX"
if make -C "$EX" CFLAGS="-O2 -Wall -Wextra -Werror" >"$T/make.log" 2>&1 &&
	readelf -d "$EX/publisher" | grep -q 'NEEDED.*\[libhbus.so.0\]'; then
	ok "examples built from $DOCDIR/examples with its Makefile (pkg-config, -Werror), linked to libhbus.so.0"
else
	cat "$T/make.log" >&2
	fail "examples did not build against the installed tree"
fi
mkdir -p "$T/static"
if cp "$EX"/*.c "$EX"/*.h "$EX/Makefile" "$T/static/" &&
	make -C "$T/static" static CFLAGS="-O2 -Wall -Werror" >"$T/make-static.log" 2>&1 &&
	! readelf -d "$T/static/publisher" | grep -q 'libhbus' &&
	nm "$T/static/publisher" | grep -q ' T hbus_publish$'; then
	ok "examples linked with libhbus.a (pkg-config --static for its private libraries)"
else
	cat "$T/make-static.log" >&2
	fail "static link against libhbus.a"
fi
if command -v c++ >/dev/null 2>&1; then
	printf '#include <hbus.h>\nint main() { hbus_client *c = nullptr; return hbus_connect(nullptr, &c) == 0 ? 0 : 1; }\n' >"$T/cxx.cc"
	if c++ -std=c++11 -Wall -Werror $(pkg-config --cflags hbus) -o "$T/cxx" "$T/cxx.cc" \
		$(pkg-config --libs hbus) 2>"$T/cxx.log"; then
		ok "hbus.h compiles and links from C++"
	else
		cat "$T/cxx.log" >&2
		fail "hbus.h from C++"
	fi
fi

export LD_LIBRARY_PATH=$LIB
export HBUS_BUS=inst$$ HBUS_RUN_DIR=$T/run
# strace only where ptrace is allowed (a container may forbid it).
STRACE=
command -v strace >/dev/null 2>&1 && strace -f -qq -o /dev/null true 2>/dev/null &&
	STRACE="strace -f -qq -o $T/hbusd.strace"
$STRACE "$D$SBINDIR/hbusd" --foreground --shm-dir "$SHM" >"$T/hbusd.log" 2>&1 &
HBUSD_PID=$!
PIDS+=("$HBUSD_PID")
for i in $(seq 100); do
	[ -S "$HBUS_RUN_DIR/$HBUS_BUS.sock" ] && "$D$BINDIR/hbus" list exchanges >/dev/null 2>&1 && break
	sleep 0.1
done

# run_pair SERVER CLIENT: SERVER in the background until it says it is
# ready (its first line), then CLIENT; both outputs compared.
run_pair() {
	local srv=$1 cli=$2 i
	"$EX/$srv" >"$T/$srv.out" 2>"$T/$srv.err" &
	local spid=$!
	PIDS+=("$spid")
	for i in $(seq 100); do
		[ -s "$T/$srv.out" ] && break
		sleep 0.1
	done
	"$EX/$cli" >"$T/$cli.out" 2>"$T/$cli.err"
	local crc=$?
	wait "$spid"
	local src=$?
	if [ "$crc" = 0 ] && [ "$src" = 0 ] &&
		diff -u "$S/tests/fixtures/examples/$srv.out" "$T/$srv.out" >&2 &&
		diff -u "$S/tests/fixtures/examples/$cli.out" "$T/$cli.out" >&2; then
		ok "$srv + $cli against the installed hbusd: exit 0, output as expected ($(tail -1 "$T/$cli.out"))"
	else
		cat "$T/$srv.err" "$T/$cli.err" >&2
		fail "$srv (exit $src) + $cli (exit $crc): see the diff above"
	fi
}
run_pair consumer publisher
run_pair responder requester
reply_queue_gone() { ! "$D$BINDIR/hbus" list queues | grep -q '^reply-'; }
for i in $(seq 50); do reply_queue_gone && break; sleep 0.1; done
if ! reply_queue_gone; then
	fail "the requester's auto-delete reply queue outlived it"
else
	ok "the requester's auto-delete reply queue went with its session"
fi
# hbusd itself (strace, if any, follows it out).
kill -TERM "$(cat "$HBUS_RUN_DIR/$HBUS_BUS.pid" 2>/dev/null)" 2>/dev/null
wait "$HBUSD_PID" 2>/dev/null

# ------------------------------------------- 4. hbusd@.service's filters
UNIT=$D$UNITDIR/hbusd@.service
if [ -z "$STRACE" ] || ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: syscall filter check (needs strace and systemd-analyze)" >&2
else
	python3 - "$T/hbusd.strace" "$UNIT" <<'EOF' >"$T/filter.txt" 2>&1
import re, subprocess, sys
trace, unit = sys.argv[1], open(sys.argv[2]).read()
used, families = set(), set()
for line in open(trace):
    m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
    if m:
        used.add(m.group(1))
    m = re.search(r"socket\((AF_[A-Z0-9]+)", line)
    if m:
        families.add(m.group(1))
groups = re.findall(r"^SystemCallFilter=(.*)$", unit, re.M)

def expand(name, seen):
    """The syscalls of a filter group, its nested @groups included."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                         capture_output=True, text=True).stdout.splitlines()[1:]
    names = set()
    for w in (l.strip() for l in out):
        if w.startswith("@"):
            names |= expand(w, seen)
        elif re.fullmatch(r"[a-z0-9_]+", w):
            names.add(w)
    return names

allowed = set()
for g in " ".join(groups).split():
    allowed |= expand(g, set())
fams = set(" ".join(re.findall(r"^RestrictAddressFamilies=(.*)$", unit, re.M)).split())
# execve is the exec of hbusd itself, before the filter applies.
bad = sorted(used - allowed - {"execve"})
badf = sorted(families - fams)
print("syscalls used: %d, outside the filter: %s; socket families: %s, not allowed: %s"
      % (len(used), bad or "none", sorted(families), badf or "none"))
sys.exit(1 if bad or badf or not used else 0)
EOF
	if [ $? = 0 ]; then
		ok "hbusd's syscalls and socket families fit hbusd@.service: $(cat "$T/filter.txt")"
	else
		fail "hbusd@.service would stop hbusd: $(cat "$T/filter.txt")"
	fi
fi

# --------------------------------------------------------- 5. man pages
# man_has PAGE HELP-TEXT: every --option of HELP-TEXT is in PAGE.
man_has() {
	local page=$1 help=$2 text opt missing=""
	text=$(groff -man -Tascii -P-cbu "$page" 2>/dev/null)
	for opt in $(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
		printf '%s\n' "$text" | grep -qE -- "$opt([^a-z0-9-]|$)" || missing="$missing $opt"
	done
	echo "${missing# }"
}
M=$D$MANDIR
warn=$(for p in "$M"/man*/hbus*; do groff -man -ww -z "$p" 2>&1; done)
[ -z "$warn" ] && ok "man pages: groff -ww has nothing to say" || fail "groff warnings: $warn"
# Every mode hbus-bench lists (optional ones only when built in).
bench_help=$(for m in $("$D$BINDIR/hbus-bench" --help | awk '/^  [a-z]/ { print $1 }'); do
	"$D$BINDIR/hbus-bench" $m --help 2>&1; done)
checks=("hbus.1|$("$D$BINDIR/hbus" --help 2>&1)" "hbusd.8|$("$D$SBINDIR/hbusd" --help 2>&1)"
	"hbus-bench.1|$bench_help")
[ "$HAVE_DP" = 1 ] && checks+=("hbus-dataplane.8|$("$D$SBINDIR/hbus-dataplane" --help 2>&1)")
[ "$HAVE_AMQP" = 1 ] && checks+=("hbus-amqp.8|$("$D$SBINDIR/hbus-amqp" --help 2>&1)")
for c in "${checks[@]}"; do
	page=${c%%|*}
	m=$(man_has "$M/man${page##*.}/$page" "${c#*|}")
	[ -z "$m" ] && ok "$page documents every option of --help" || fail "$page lacks:$m"
done

# ------------------------------------------------------------- 6. units
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not installed (Debian package systemd)" >&2
else
	# verify checks that ExecStart= is executable: point it into DESTDIR.
	mkdir -p "$T/units"
	bad_exec=""
	for u in "$D$UNITDIR"/hbus*@.service; do
		grep -q "^ExecStart=$SBINDIR/$(basename "$u" | sed 's/@.service//')" "$u" || bad_exec="$bad_exec $(basename "$u")"
		sed "s|$SBINDIR/|$D$SBINDIR/|g" "$u" >"$T/units/$(basename "$u")"
	done
	out=$(cd "$T/units" && systemd-analyze verify --man=no "$T"/units/*.service 2>&1)
	if [ -z "$out" ] && [ -z "$bad_exec" ]; then
		ok "systemd-analyze verify: $(ls "$T/units" | tr '\n' ' ')clean; ExecStart= runs $SBINDIR/..."
	else
		fail "units: $out${bad_exec:+ (ExecStart not in $SBINDIR:$bad_exec)}"
	fi
fi

if [ "$FAILS" -ne 0 ]; then
	echo "$FAILS check(s) failed" >&2
	exit 1
fi
echo "all checks passed"
