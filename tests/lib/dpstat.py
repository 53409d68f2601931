#!/usr/bin/env python3
"""dpstat.py FILE: print a dataplane counters file (shm/dp_counters.h)
as JSON: {"name", "pid", "state", "totals": {counter: sum over lcores},
"port": {...}, "lcores": [{...}], "streams": [{...}]}.

An independent reader of the documented layout (the names come from the
file), used by tests/test_dataplane.sh to check the accounting identities.
"""
import json
import mmap
import struct
import sys

MAGIC = 0x4D48535355424868
KIND_COUNTERS = 4


def cstr(b):
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def read(path):
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    magic, version, kind, size = struct.unpack_from("<QIIQ", m, 0)
    if magic != MAGIC or kind != KIND_COUNTERS or version != 1:
        raise SystemExit(f"{path}: not a version-1 hbus counters file")
    (n_ctr, n_port, max_lc, n_streams, names_off, port_names_off, port_off,
     lcores_off, stride, streams_off, pid, n_lc, state, port_id,
     udp_port) = struct.unpack_from("<IIIIQQQQQQIIIHH", m, 32)
    names = [cstr(m[names_off + 32 * i:names_off + 32 * (i + 1)]) for i in range(n_ctr)]
    pnames = [cstr(m[port_names_off + 32 * i:port_names_off + 32 * (i + 1)])
              for i in range(n_port)]
    out = {"name": cstr(m[128:192]), "bus": cstr(m[192:256]), "port_name": cstr(m[256:320]),
           "ip": cstr(m[320:352]), "pid": pid, "state": state, "hbus_udp_port": udp_port,
           "totals": {n: 0 for n in names[1:]}, "lcores": [], "streams": []}
    out["port"] = dict(zip(pnames, struct.unpack_from(f"<{n_port}Q", m, port_off)))
    for li in range(min(n_lc, max_lc)):
        base = lcores_off + stride * li
        lcore_id, rxq = struct.unpack_from("<II", m, base)
        vals = struct.unpack_from(f"<{n_ctr}Q", m, base + 64)
        lc = {"lcore_id": lcore_id, "rx_queue": rxq}
        for n, v in list(zip(names, vals))[1:]:
            lc[n] = v
            out["totals"][n] += v
        out["lcores"].append(lc)
        for si in range(n_streams):
            sid, used, nxt, msgs, gaps, dups, resets = struct.unpack_from(
                "<IIQQQQQ", m, base + streams_off + 64 * si)
            if used:
                out["streams"].append({"lcore": li, "stream_id": sid, "next_seq": nxt,
                                       "msgs": msgs, "gaps": gaps, "dups": dups,
                                       "resets": resets})
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: dpstat.py COUNTERS-FILE")
    json.dump(read(sys.argv[1]), sys.stdout, indent=1)
    print()
