#!/usr/bin/env python3
"""dp_traffic.py - traffic, probes and checks for tests/test_dataplane.sh.

Runs inside the test's network namespace (kernel sockets and raw packet
sockets), independently of the C code under test: the hbus wire format,
checksums and IGMP are re-implemented here from the documents.

  send       UDP datagrams from a kernel socket: raw bodies, or hbus frames
  check      read `hbus consume --json` lines, verify ids and checksums
  malformed  write broken frames (and valid ones around them) on a packet socket
  igmp-watch wait for an IGMP report/leave from the dataplane
  igmp-query send an IGMP general query
  telemetry  run a DPDK telemetry command, print its JSON
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

HBUS_MAGIC = 0x53554248
ETH_P_ALL = 0x0003


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def make_body(kind, i, padlen=16):
    """ASCII body: kind:id:pad:fnv(kind:id:pad)."""
    head = b"%s:%08d:" % (kind.encode(), i)
    pad = bytes(97 + (i * 7 + k) % 26 for k in range(padlen))
    return head + pad + b":%08x" % fnv1a(head + pad)


def check_body(data):
    """(kind, id) of a valid body, or None."""
    try:
        kind, ident, pad, csum = data.split(b":")
        if fnv1a(b"%s:%s:%s" % (kind, ident, pad)) != int(csum, 16):
            return None
        return kind.decode(), int(ident)
    except ValueError:
        return None


def meta(exchange, key):
    x, k = exchange.encode(), key.encode()
    return bytes([len(x)]) + x + bytes([len(k)]) + k + b"\0\0"


def hbus_frame(stream, first_seq, msgs, version=1, magic=HBUS_MAGIC):
    """msgs: list of (meta bytes, body bytes)."""
    out = struct.pack("<IBBHIIQ", magic, version, 0, len(msgs), stream, 0, first_seq)
    for m, b in msgs:
        ts = time.time_ns()
        out += struct.pack("<IQHHI", 16 + len(m) + len(b), ts, len(m), 0, len(b)) + m + b
    return out


def cmd_send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    dst = (a.dst, a.port)
    m = meta(a.exchange, a.key)
    i, sent, seq = a.start_id, 0, a.first_seq
    end = a.start_id + a.count
    per_dgram = a.batch if a.kind == "hbus" else 1
    gap = per_dgram / a.rate if a.rate else 0
    t_next = time.perf_counter()
    while i < end:
        n = min(per_dgram, end - i)
        if a.kind == "hbus":
            payload = hbus_frame(a.stream, seq, [(m, make_body(a.tag, i + k)) for k in range(n)])
            seq += n
        else:
            payload = make_body(a.tag, i)
        while True:
            try:
                s.sendto(payload, dst)
                break
            except BlockingIOError:
                time.sleep(0.0005)
        i += n
        sent += 1
        if gap:
            t_next += gap
            delay = t_next - time.perf_counter()
            if delay > 0.0005:
                time.sleep(delay)
    print(json.dumps({"datagrams": sent, "messages": a.count}))


def cmd_check(a):
    """Verify consumed messages: every id in [start, start+count) once, intact."""
    seen, bad, dups, other = set(), 0, 0, 0
    src = open(a.file) if a.file != "-" else sys.stdin
    for line in src:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        got = check_body(msg.get("body", "").encode())
        if got is None:
            bad += 1
            continue
        if msg.get("exchange") != a.exchange or msg.get("routing_key") != a.key:
            bad += 1
            continue
        kind, ident = got
        if kind != a.tag or not a.start <= ident < a.start + a.count:
            other += 1
            continue
        if ident in seen:
            dups += 1
        seen.add(ident)
    missing = [i for i in range(a.start, a.start + a.count) if i not in seen]
    # Messages sent --batch to a datagram are lost a whole datagram at a
    # time: lost_frames counts the datagrams none of whose messages came,
    # partial_frames those some of whose did (there must be none).
    lost = {}
    for i in missing:
        b = (i - a.start) // a.batch
        lost[b] = lost.get(b, 0) + 1
    whole = sum(1 for b, n in lost.items()
                if n == min(a.batch, a.start + a.count - (a.start + b * a.batch)))
    print(json.dumps({"delivered": len(seen), "missing": len(missing), "bad": bad,
                      "dups": dups, "other": other, "first_missing": missing[:10],
                      "lost_frames": whole, "partial_frames": len(lost) - whole}))
    return 0 if not missing and not bad and not dups else 1


# ----------------------------------------------------------- raw frames

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_hdr(src, dst, proto, payload_len, ttl=64, frag=0, ver_ihl=0x45, total=None,
           options=b"", tos=0):
    ihl_bytes = 20 + len(options)
    if ver_ihl == 0x45 and options:
        ver_ihl = 0x40 | (ihl_bytes // 4)
    tot = total if total is not None else ihl_bytes + payload_len
    h = struct.pack("!BBHHHBBH4s4s", ver_ihl, tos, tot, 0x1234, frag, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + options
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def udp_dgram(src, dst, sport, dport, payload, length=None, good_csum=True):
    ln = length if length is not None else 8 + len(payload)
    u = struct.pack("!HHHH", sport, dport, ln, 0) + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, 8 + len(payload))
    c = csum(pseudo + u) or 0xFFFF
    if not good_csum:
        c ^= 0x5A5A
    return u[:6] + struct.pack("!H", c) + u[8:]


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def eth(dst, src, etype, payload):
    return mac(dst) + mac(src) + struct.pack("!H", etype) + payload


def cmd_malformed(a):
    """Each broken frame kind a.each times, a valid raw datagram (ids from
    a.start_id, to a.port) after every broken one.  Prints the counters the
    dataplane must show (deltas) and the valid ids sent."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    src_ip, dst_ip = a.src_ip, a.dst_ip
    m = meta(a.exchange, a.key)

    def ip_udp(dport, payload, **kw):
        u = udp_dgram(src_ip, dst_ip, 40000, dport, payload, good_csum=kw.pop("good_udp", True),
                      length=kw.pop("udp_len", None))
        return eth(a.dst_mac, a.src_mac, 0x0800, ip_hdr(src_ip, dst_ip, 17, len(u), **kw) + u)

    def hbus_udp(frame):
        return ip_udp(a.hbus_port, frame)

    good_msg = (m, make_body("junk", 0))
    ok_frame = hbus_frame(99, 0, [good_msg])
    kinds = {
        # The kernel refuses frames under 14 bytes: a runt is a header cut short.
        "drop_runt": lambda: eth(a.dst_mac, a.src_mac, 0x0800, b"\x45\x00"),
        "drop_unknown_ethertype": lambda: eth(a.dst_mac, a.src_mac, 0x88B5, bytes(46)),
        "drop_bad_ip_version": lambda: ip_udp(a.port, b"x" * 8, ver_ihl=0x65),
        "drop_bad_ihl": lambda: ip_udp(a.port, b"x" * 8, ver_ihl=0x44),
        "drop_bad_ip_length": lambda: ip_udp(a.port, b"x" * 8, total=1400),
        "drop_bad_ip_checksum": lambda: (lambda f: f[:24] + bytes([f[24] ^ 0xFF]) + f[25:])(
            ip_udp(a.port, b"x" * 8)),
        "drop_fragment": lambda: ip_udp(a.port, b"x" * 8, frag=0x2000),
        "drop_not_for_us": lambda: eth(a.dst_mac, a.src_mac, 0x0800,
                                       ip_hdr(src_ip, a.other_ip, 17, 16) +
                                       udp_dgram(src_ip, a.other_ip, 1, a.port, b"x" * 8)),
        "drop_unsupported_l4": lambda: eth(a.dst_mac, a.src_mac, 0x0800,
                                           ip_hdr(src_ip, dst_ip, 6, 20) + bytes(20)),
        "drop_bad_udp_length": lambda: ip_udp(a.port, b"x" * 8, udp_len=200),
        "drop_bad_udp_checksum": lambda: ip_udp(a.port, b"x" * 8, good_udp=False),
        "drop_frame_magic": lambda: hbus_udp(hbus_frame(99, 0, [good_msg], magic=0x12345678)),
        "drop_frame_version": lambda: hbus_udp(hbus_frame(99, 0, [good_msg], version=7)),
        "drop_frame_length": lambda: hbus_udp(ok_frame[:6] + struct.pack("<H", 50) + ok_frame[8:]),
        "drop_record_length": lambda: hbus_udp(ok_frame[:24] + struct.pack("<I", 5000) + ok_frame[28:]),
        "drop_bad_meta": lambda: hbus_udp(ok_frame[:44] + b"\xee" + ok_frame[45:]),
        "drop_no_exchange": lambda: hbus_udp(hbus_frame(98, 0, [(meta("nope", "k"), b"x")])),
    }
    for name in a.skip or []:
        kinds.pop(name)
    want = {}
    valid = 0
    for rnd in range(a.each):
        for name, build in kinds.items():
            s.send(build())
            want[name] = want.get(name, 0) + 1
            s.send(ip_udp(a.port, make_body(a.tag, a.start_id + valid)))
            valid += 1
            if a.pause:
                time.sleep(a.pause)
    print(json.dumps({"want": want, "valid": valid}))


def cmd_pcap(a):
    """A pcap of --count raw datagrams (ids from --start-id) to dst:port,
    and --jumbo more of --jumbo-len bytes (tag + "j"): bigger than one mbuf
    of the port that replays it, so they arrive in several (drop_multiseg)."""
    smac, dmac = "02:00:00:00:00:02", "02:00:00:00:00:01"
    frames = []
    every = a.count // (a.jumbo + 1) if a.jumbo else 0
    for i in range(a.count):
        frames.append(make_body(a.tag, a.start_id + i))
        if every and (i + 1) % every == 0 and len(frames) - (i + 1) < a.jumbo:
            frames.append(make_body(a.tag + "j", i, padlen=a.jumbo_len))
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for k, body in enumerate(frames):
            fr = eth(dmac, smac, 0x0800, ip_udp_frame(a.src_ip, a.dst_ip, 40000, a.port, body))
            f.write(struct.pack("<IIII", k, 0, len(fr), len(fr)) + fr)
    print(json.dumps({"frames": len(frames), "jumbo": len(frames) - a.count}))


def ip_udp_frame(src, dst, sport, dport, body):
    u = udp_dgram(src, dst, sport, dport, body)
    return ip_hdr(src, dst, 17, len(u)) + u


def cmd_fragments(a):
    """a.count UDP datagrams (ids from a.start_id) sent as two IPv4 fragments
    each, and a.count lone first fragments whose rest never comes."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    for i in range(a.count):
        body = make_body(a.tag, a.start_id + i, padlen=200)  # fits a 256-byte slot
        u = udp_dgram(a.src_ip, a.dst_ip, 40000, a.port, body)
        cut = (len(u) // 2) & ~7
        ip_id = 0x4000 + i
        for off, part, more in ((0, u[:cut], 0x2000), (cut, u[cut:], 0)):
            h = ip_hdr(a.src_ip, a.dst_ip, 17, len(part), frag=more | (off // 8))
            h = h[:4] + struct.pack("!H", ip_id) + h[6:10] + b"\0\0" + h[12:]
            h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
            s.send(eth(a.dst_mac, a.src_mac, 0x0800, h + part))
        lone = ip_hdr(a.src_ip, a.dst_ip, 17, cut, frag=0x2000)
        lone = lone[:4] + struct.pack("!H", 0x6000 + i) + lone[6:10] + b"\0\0" + lone[12:]
        lone = lone[:10] + struct.pack("!H", csum(lone)) + lone[12:]
        s.send(eth(a.dst_mac, a.src_mac, 0x0800, lone + u[:cut]))
        time.sleep(0.001)


# ------------------------------------------------------------------ IGMP

def cmd_igmp_watch(a):
    """Wait for an IGMP message from src_mac: v3-join, v3-leave, v3-answer,
    v2-report or v2-leave for group.  Exit 0 when seen."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((a.iface, 0))
    deadline = time.monotonic() + a.seconds
    want_kind, group = a.want.split(":")
    g = socket.inet_aton(group)
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        f = s.recv(2048)
        if len(f) < 34 or f[6:12] != mac(a.src_mac) or f[12:14] != b"\x08\x00" or f[23] != 2:
            continue
        ihl = (f[14] & 15) * 4
        ig = f[14 + ihl:]
        seen = []
        if ig[0] == 0x22:  # v3 report: records
            n = struct.unpack("!H", ig[6:8])[0]
            off = 8
            for _ in range(n):
                rtype, aux, nsrc = ig[off], ig[off + 1], struct.unpack("!H", ig[off + 2:off + 4])[0]
                rg = ig[off + 4:off + 8]
                kind = {4: "v3-join", 3: "v3-leave", 2: "v3-answer"}.get(rtype, "v3-other")
                seen.append((kind, rg))
                off += 8 + 4 * nsrc + 4 * aux
        elif ig[0] == 0x16:
            seen.append(("v2-report", ig[4:8]))
        elif ig[0] == 0x17:
            seen.append(("v2-leave", ig[4:8]))
        for kind, rg in seen:
            print(json.dumps({"kind": kind, "group": socket.inet_ntoa(rg)}), flush=True)
            if kind == want_kind and rg == g:
                return 0
    return 1


def cmd_igmp_query(a):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    if a.version == 2:
        ig = struct.pack("!BBH4s", 0x11, 100, 0, bytes(4))
    else:
        ig = struct.pack("!BBH4sBBH", 0x11, 100, 0, bytes(4), 2, 125, 0)
    ig = ig[:2] + struct.pack("!H", csum(ig)) + ig[4:]
    ip = ip_hdr(a.src_ip, "224.0.0.1", 2, len(ig), ttl=1, options=b"\x94\x04\x00\x00", tos=0xC0)
    s.send(eth("01:00:5e:00:00:01", a.src_mac, 0x0800, ip + ig))


# ------------------------------------------------------------- telemetry

def cmd_telemetry(a):
    path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % a.prefix
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    json.loads(s.recv(16384))  # the greeting
    s.send(a.cmd.encode())
    reply = b""
    while True:
        part = s.recv(1 << 20)
        reply += part
        try:
            out = json.loads(reply)
            break
        except ValueError:
            if not part:
                raise
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="op", required=True)
    q = sub.add_parser("send")
    q.add_argument("--dst", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--kind", choices=["raw", "hbus"], default="raw")
    q.add_argument("--tag", required=True)
    q.add_argument("--count", type=int, required=True)
    q.add_argument("--start-id", type=int, default=0)
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--rate", type=float, default=0, help="datagrams per second, 0 = as fast as possible")
    q.add_argument("--stream", type=int, default=1)
    q.add_argument("--first-seq", type=int, default=0)
    q.add_argument("--exchange", default="")
    q.add_argument("--key", default="")
    q = sub.add_parser("check")
    q.add_argument("--file", default="-")
    q.add_argument("--tag", required=True)
    q.add_argument("--start", type=int, default=0)
    q.add_argument("--count", type=int, required=True)
    q.add_argument("--exchange", required=True)
    q.add_argument("--key", required=True)
    q.add_argument("--batch", type=int, default=1, help="messages per datagram sent")
    q = sub.add_parser("pcap")
    for o in ("--out", "--src-ip", "--dst-ip", "--tag"):
        q.add_argument(o, required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, required=True)
    q.add_argument("--start-id", type=int, default=0)
    q.add_argument("--jumbo", type=int, default=0)
    q.add_argument("--jumbo-len", type=int, default=4000)
    q = sub.add_parser("malformed")
    for o in ("--iface", "--dst-mac", "--src-mac", "--src-ip", "--dst-ip", "--other-ip", "--tag"):
        q.add_argument(o, required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--hbus-port", type=int, default=5900)
    q.add_argument("--each", type=int, default=10)
    q.add_argument("--start-id", type=int, default=0)
    q.add_argument("--exchange", default="md")
    q.add_argument("--key", default="h")
    q.add_argument("--pause", type=float, default=0.0005)
    q.add_argument("--skip", action="append", help="a kind not to send")
    q = sub.add_parser("fragments")
    for o in ("--iface", "--dst-mac", "--src-mac", "--src-ip", "--dst-ip", "--tag"):
        q.add_argument(o, required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, default=10)
    q.add_argument("--start-id", type=int, default=0)
    q = sub.add_parser("igmp-watch")
    q.add_argument("--iface", required=True)
    q.add_argument("--src-mac", required=True)
    q.add_argument("--want", required=True)
    q.add_argument("--seconds", type=float, default=5)
    q = sub.add_parser("igmp-query")
    q.add_argument("--iface", required=True)
    q.add_argument("--src-mac", required=True)
    q.add_argument("--src-ip", required=True)
    q.add_argument("--version", type=int, default=2)
    q = sub.add_parser("telemetry")
    q.add_argument("--prefix", required=True)
    q.add_argument("--cmd", required=True)
    a = p.parse_args()
    fn = {"send": cmd_send, "check": cmd_check, "malformed": cmd_malformed,
          "fragments": cmd_fragments, "pcap": cmd_pcap,
          "igmp-watch": cmd_igmp_watch, "igmp-query": cmd_igmp_query,
          "telemetry": cmd_telemetry}[a.op]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    main()
