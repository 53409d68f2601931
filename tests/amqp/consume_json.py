#!/usr/bin/python3
"""consume_json.py - a pika consumer that writes what it gets as JSON lines.

Usage: consume_json.py PORT QUEUE COUNT OUT [--timeout S] [--prefetch N]

Subscribes to QUEUE on hbus-amqp at 127.0.0.1:PORT (guest/guest, manual
acks, basic.qos prefetch N, default 200), writes one line per delivery to
OUT: {"body", "exchange", "routing_key", "redelivered", "delivery_tag"}
(the shape tests/lib/dp_traffic.py check reads), acks it, and stops after
COUNT deliveries or S seconds (default 60) without one.  Touches 'OUT.ready'
once subscribed, so a test can start its senders then.  Exit 0 when COUNT
came, 1 otherwise.
"""
import argparse
import json
import sys

import pika


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("queue")
    ap.add_argument("count", type=int)
    ap.add_argument("out")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--prefetch", type=int, default=200)
    a = ap.parse_args()
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", a.port, "/", pika.PlainCredentials("guest", "guest"),
        heartbeat=30, socket_timeout=10))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=a.prefetch)
    got = 0
    with open(a.out, "w") as out:
        stream = ch.consume(a.queue, auto_ack=False, inactivity_timeout=a.timeout)
        open(a.out + ".ready", "w").close()
        for method, props, body in stream:
            if method is None:
                break  # nothing for a.timeout seconds
            out.write(json.dumps({"body": body.decode("latin-1"), "exchange": method.exchange,
                                  "routing_key": method.routing_key,
                                  "redelivered": method.redelivered,
                                  "delivery_tag": method.delivery_tag}) + "\n")
            ch.basic_ack(method.delivery_tag)
            got += 1
            if got == a.count:
                break
    ch.cancel()
    conn.close()
    print(json.dumps({"consumed": got}))
    return 0 if got == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
