#!/bin/sh
# test_layers.sh - the folders depend on each other only downwards
# (docs/ARCHITECTURE.md, "Layers"): shm/ (libhbus) on nothing of ours,
# control/ (hbusd, hbus) and amqp/ (hbus-amqp) on shm/ alone.  Read from the build's
# compile_commands.json: every source compiled into a target of control/,
# amqp/ or shm/ must live in an allowed folder, and its include path must name no
# other folder of the tree.  (dataplane/ and bench/ may use shm/ and the
# dataplane core; tests/ may use everything.)
#
#   sh tests/test_layers.sh     (HBUS_BUILD_DIR, HBUS_SOURCE_DIR set by meson)
set -u
B=${HBUS_BUILD_DIR:?set HBUS_BUILD_DIR}
S=${HBUS_SOURCE_DIR:?set HBUS_SOURCE_DIR}
exec python3 - "$B" "$S" <<'PY'
import json, os, re, sys

build, src = (os.path.realpath(p) for p in sys.argv[1:3])
allowed = {"shm": {"shm"}, "control": {"control", "shm"}, "amqp": {"amqp", "shm"}}
required = ("shm", "control")  # amqp/ is built only with librabbitmq
folders = {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)) and not d.startswith(".")
           and not os.path.exists(os.path.join(src, d, "meson-private"))}  # build trees
bad, seen = [], {k: 0 for k in allowed}
for c in json.load(open(os.path.join(build, "compile_commands.json"))):
    out = os.path.normpath(c["output"])  # meson writes it relative to the build tree
    layer = out.split(os.sep)[0]
    if layer not in allowed:
        continue
    seen[layer] += 1
    srcfile = os.path.relpath(os.path.realpath(os.path.join(c["directory"], c["file"])), src)
    if srcfile.split(os.sep)[0] not in allowed[layer]:
        bad.append(f"{out}: compiles {srcfile}")
    for inc in re.findall(r"(?:^|\s)-I(\S+)", c["command"]):
        p = os.path.realpath(os.path.join(c["directory"], inc))
        # The build tree may sit inside the source tree (build/): its
        # folders mirror the source's.
        rel = os.path.relpath(p, os.path.realpath(c["directory"]))
        if rel.startswith(".."):
            rel = os.path.relpath(p, src)
        top = rel.split(os.sep)[0]
        if not rel.startswith("..") and rel != "." and top in folders and top not in allowed[layer]:
            bad.append(f"{out}: include path {inc} ({top}/)")
for b in sorted(set(bad)):
    print("FAIL: " + b)
if not all(seen[k] for k in required):
    print(f"FAIL: no objects of {[k for k in required if not seen[k]]} in compile_commands.json")
    sys.exit(1)
print(f"{'ok' if not bad else 'FAIL'} - shm/ ({seen['shm']} objects) uses shm/ only; "
      f"control/ ({seen['control']} objects) and amqp/ ({seen['amqp']}) use shm/ besides their own")
sys.exit(1 if bad else 0)
PY
