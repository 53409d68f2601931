#!/usr/bin/env python3
"""gen_corpus.py - write the seed corpora for the hbus fuzz targets.

    python3 tests/fuzz/gen_corpus.py      (rewrites tests/fuzz/corpus/*)

An independent encoder of docs/PROTOCOL.md (it shares no code with the C
implementation), so the seeds double as a check of the document: every
'valid_*' wire seed must decode cleanly (test_meta_wire does not read these
files; the fuzzers start from them).  The packet seeds assume the fuzz_pkt
configuration: we are 10.0.0.1/24 and have joined 239.1.1.1 and 239.2.2.2.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------- wire format

def meta(exchange=b"", key=b"", headers=()):
    out = struct.pack("<B", len(exchange)) + exchange
    out += struct.pack("<B", len(key)) + key
    out += struct.pack("<H", len(headers))
    for name, value in headers:
        out += struct.pack("<B", len(name)) + name + struct.pack("<H", len(value)) + value
    return out

def record(m, body, ts=0, flags=0, extra=b""):
    rec_len = 16 + len(m) + len(body) + len(extra)
    return struct.pack("<IQHHI", rec_len, ts, len(m), flags, len(body)) + m + body + extra

def frame(records, stream=1, seq=0, count=None, magic=0x53554248, version=1):
    if count is None:
        count = len(records)
    return struct.pack("<IBBHIIQ", magic, version, 0, count, stream, 0, seq) + b"".join(records)

def wire_seeds():
    md = meta(b"md", b"eq.AAPL", [(b"venue", b"XNAS")])
    many = [record(meta(b"ex", b"key.%d" % i, [(b"h", b"v" * (i % 3))] * (i % 4)),
                   bytes(range(i * 7 % 50)), ts=1700000000000000000 + i, flags=i)
            for i in range(10)]
    hdrs64 = meta(b"", b"", [(b"", b"")] * 64)
    hdrs65 = meta(b"", b"", [(b"", b"")] * 65)
    one = frame([record(md, b"hello", ts=123)], stream=7, seq=1000)
    return {
        "valid_one": one,
        "valid_many": frame(many, stream=2, seq=1),
        "valid_empty_meta": frame([record(b"", b"raw body")]),
        "valid_heartbeat": frame([], stream=3, seq=42),
        "valid_record_extension": frame([record(md, b"x", extra=b"\xee" * 5), record(md, b"y")]),
        "valid_64_headers": frame([record(hdrs64, b"")]),
        "bad_65_headers": frame([record(hdrs65, b"")]),
        "bad_truncated": one[:-3],
        "bad_magic": frame([record(md, b"x")], magic=0x58585858),
        "bad_version": frame([record(md, b"x")], version=2),
        "bad_count_high": frame([record(md, b"x")], count=2),
        "bad_count_low": frame([record(md, b"x"), record(md, b"y")], count=1),
        "bad_meta_len": one[:24 + 12] + struct.pack("<H", len(md) + 40) + one[24 + 14:],
    }

# ----------------------------------------------------------------- packets

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def ip4(a):
    return bytes(int(x) for x in a.split("."))

US, PEER, GROUP = "10.0.0.1", "10.0.0.7", "239.1.1.1"
US_MAC, PEER_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000007")

def eth(dst, ethertype, vlan=None):
    h = dst + PEER_MAC
    if vlan is not None:
        h += struct.pack("!HH", 0x8100, vlan)
    return h + struct.pack("!H", ethertype)

def ipv4(src, dst, proto, payload, frag=0x4000, options=b"", ttl=64):
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 0, frag,
                      ttl, proto, 0, ip4(src), ip4(dst)) + options
    c = csum(hdr)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload

def udp(src, dst, payload, sport=40000, dport=5555):
    length = 8 + len(payload)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, length)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, length, c) + payload)

def igmp(dst, msg):
    msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
    return ipv4(PEER, dst, 2, msg, options=b"\x94\x04\x00\x00", ttl=1)

def pad(f):
    return f + b"\0" * max(0, 60 - len(f))

def mcast_mac(g):
    b = ip4(g)
    return bytes([1, 0, 0x5E, b[1] & 0x7F, b[2], b[3]])

def pkt_seeds():
    hb = wire_seeds()["valid_one"]
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER_MAC, ip4(PEER), b"\0" * 6, ip4(US))
    return {
        "udp_unicast": pad(eth(US_MAC, 0x0800) + udp(PEER, US, b"hello")),
        "udp_hbus_frame": eth(US_MAC, 0x0800) + udp(PEER, US, hb),
        "udp_multicast": pad(eth(mcast_mac(GROUP), 0x0800) + udp(PEER, GROUP, b"tick")),
        "udp_broadcast": pad(eth(b"\xff" * 6, 0x0800) + udp(PEER, "10.0.0.255", b"b")),
        "udp_vlan": pad(eth(US_MAC, 0x0800, vlan=0x2000 | 42) + udp(PEER, US, b"tagged")),
        "udp_no_checksum": pad(eth(US_MAC, 0x0800) + ipv4(PEER, US, 17,
                                                           struct.pack("!HHHH", 1, 2, 10, 0) + b"zz")),
        "arp_request": pad(eth(b"\xff" * 6, 0x0806) + arp),
        "arp_request_vlan": pad(eth(b"\xff" * 6, 0x0806, vlan=7) + arp),
        "igmpv2_query": pad(eth(mcast_mac("224.0.0.1"), 0x0800) +
                            igmp("224.0.0.1", struct.pack("!BBH4s", 0x11, 100, 0, b"\0" * 4))),
        "igmpv3_query": pad(eth(mcast_mac(GROUP), 0x0800) +
                            igmp(GROUP, struct.pack("!BBH4sBBH", 0x11, 0x8A, 0, ip4(GROUP), 2, 125, 0))),
        "igmpv3_report": pad(eth(mcast_mac("224.0.0.22"), 0x0800) +
                             igmp("224.0.0.22", struct.pack("!BBHHH", 0x22, 0, 0, 0, 1) +
                                  struct.pack("!BBH4s", 4, 0, 0, ip4(GROUP)))),
        "fragment": pad(eth(US_MAC, 0x0800) + ipv4(PEER, US, 17, b"\0" * 16, frag=0x2000)),
        "ip_options_udp": eth(US_MAC, 0x0800) + ipv4(PEER, US, 17,
                                                     udp(PEER, US, b"opt")[20:], options=b"\x01" * 4),
        "runt": eth(US_MAC, 0x0800)[:10],
        "ipv6": pad(eth(US_MAC, 0x86DD) + b"\x60" + b"\0" * 39),
    }

# ------------------------------------------------------------ queue files

# Slot state word (shm/queue_layout.h): lap 63..32, run 31..28, owner 27..4,
# state 3..0 (0 FREE, 1 WRITING, 2 READY, 3 CLAIMED, 4 CLAIMED_AUTO, 5 SKIP).
def slot(lap, owner, state, run=1):
    return struct.pack("<Q", lap << 32 | ((run - 1) & 0xF) << 28 | owner << 4 | state)

def shm_seeds():
    """fuzz_shm: byte 0 = geometry << 2 | mode (see fuzz_shm.c)."""
    far = 1 << 30
    return {
        "pristine": bytes([0 << 2 | 1]),
        "laps_far_ahead": bytes([3 << 2 | 3]) + b"".join(slot(far + i, 0, 0) for i in range(16)),
        "forged_claims": bytes([2 << 2 | 3]) + b"".join(slot(far, 3, 3) for i in range(8)),
        "dead_writers": bytes([1 << 2 | 3]) + b"".join(slot(0, 2, 1, run=4) for i in range(4)),
        "ready_garbage": bytes([7 << 2 | 1]) + slot(0, 0, 2) + b"\xff" * 120,
        "half_lap_space": bytes([4 << 2 | 3]) + b"".join(slot((1 << 31) + 5, 4, 2) for i in range(32)),
        "header_bytes": bytes([5 << 2 | 2]) + bytes([0, 40, 0xff, 0, 44, 0x7f, 0, 200, 0x01]),
        "random_header": bytes([0 << 2 | 0]) + bytes(range(256)) * 2,
    }

def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.unlink(os.path.join(d, old))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (d, len(seeds)))

if __name__ == "__main__":
    write("fuzz_wire", wire_seeds())
    write("fuzz_pkt", pkt_seeds())
    write("fuzz_shm", shm_seeds())
