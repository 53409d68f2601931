#!/usr/bin/env python3
"""udp_sender.py - the soak's UDP source, run inside the peer namespace.

  udp_sender.py --dst IP --port 5900 --state FILE [--rate MSGS_PER_S] [--batch N]
                --stream ID:EXCHANGE:KEY:KIND[:bad] ...

Sends hbus frames (tests/lib/dp_traffic.py: frame encoder and body format,
reused) from one kernel UDP socket, round robin over the streams, paced to
--rate messages per second.  Stream ID's messages have ids 0, 1, 2, ... and
sequence numbers id + 1; the body is "KIND:<id>:<pad>:<fnv1a>".  A ':bad'
stream gives every message whose id % 4 == 3 a malformed metadata block
(header_count 1, no header): the dataplane must drop it as drop_bad_meta.

A datagram the kernel refuses (sendto error: no neighbour while the
dataplane is dead, ENOBUFS) is not resent: its sequence numbers are used,
so the dataplane counts its messages as a gap like any other lost frame.

SIGTERM (or SIGINT): stop sending data, write FILE (JSON: per stream the
next sequence number and counts), then send a heartbeat per stream
(msg_count 0, first_seq = next) every 20 ms, so the dataplane counts the
messages lost at the tail, until a second SIGTERM or --linger seconds.
"""
import argparse
import json
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dp_traffic  # noqa: E402  (hbus_frame, make_body, meta)

STOP = 0


def on_stop(_sig, _frm):
    global STOP
    STOP += 1


def bad_meta(good):
    """The same block with header_count 1 and no header: malformed."""
    return good[:-2] + struct.pack("<H", 1)


def parse_stream(spec):
    parts = spec.split(":")
    if len(parts) not in (4, 5) or (len(parts) == 5 and parts[4] != "bad"):
        raise SystemExit("--stream wants ID:EXCHANGE:KEY:KIND[:bad], not " + spec)
    sid, x, k, kind = int(parts[0]), parts[1], parts[2], parts[3]
    good = dp_traffic.meta(x, k)
    return {"stream": sid, "exchange": x, "key": k, "kind": kind, "bad": len(parts) == 5,
            "meta": good, "bad_meta": bad_meta(good), "next_id": 0, "first_seq": 1,
            "frames": 0, "msgs": 0, "bad_msgs": 0, "err_frames": 0, "err_msgs": 0}


def send_frame(sock, dst, st, n):
    msgs = []
    for i in range(st["next_id"], st["next_id"] + n):
        m = st["bad_meta"] if st["bad"] and i % 4 == 3 else st["meta"]
        msgs.append((m, dp_traffic.make_body(st["kind"], i)))
    frame = dp_traffic.hbus_frame(st["stream"], st["next_id"] + st["first_seq"], msgs)
    st["next_id"] += n
    st["frames"] += 1
    st["msgs"] += n
    if st["bad"]:
        st["bad_msgs"] += sum(1 for i in range(st["next_id"] - n, st["next_id"]) if i % 4 == 3)
    try:
        sock.sendto(frame, dst)
    except OSError:
        st["err_frames"] += 1
        st["err_msgs"] += n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=5900)
    p.add_argument("--state", required=True)
    p.add_argument("--rate", type=float, default=3000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--linger", type=float, default=60)
    p.add_argument("--stream", action="append", required=True)
    a = p.parse_args()
    streams = [parse_stream(s) for s in a.stream]
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sock.setblocking(False)
    dst = (a.dst, a.port)
    gap = a.batch / a.rate
    due = time.monotonic()
    k = 0
    while not STOP:
        send_frame(sock, dst, streams[k % len(streams)], a.batch)
        k += 1
        due += gap
        now = time.monotonic()
        if now > due + 0.05:  # stalled (two busy cores): do not burst to catch up
            due = now
        elif due > now + 0.0005:
            time.sleep(due - now)
    state = {"streams": [{key: s[key] for key in ("stream", "exchange", "key", "kind", "bad",
                                                   "first_seq", "frames", "msgs", "bad_msgs",
                                                   "err_frames", "err_msgs")}
                         | {"next_seq": s["first_seq"] + s["next_id"], "ids": s["next_id"]}
                         for s in streams], "batch": a.batch}
    tmp = a.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.rename(tmp, a.state)
    end = time.monotonic() + a.linger
    while STOP < 2 and time.monotonic() < end:
        for s in streams:
            try:
                sock.sendto(dp_traffic.hbus_frame(s["stream"], s["first_seq"] + s["next_id"], []),
                            dst)
            except OSError:
                pass
        time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
