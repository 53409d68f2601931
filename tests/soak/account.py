#!/usr/bin/env python3
"""account.py - the soak's books: every message id accounted for.

  account.py DIR

DIR is the soak's work directory (tests/soak/run.sh):
  sender.json        udp_sender.py's final state (per stream: ids sent, next sequence)
  pub.<kind>.log     one per publisher incarnation: A|R <id>, E <id> <rc>, END <next>
  ledger.<role>.<n>  one per consumer incarnation: <kind> <id> <redelivered> A|N|F, BAD ...
  (a kill -9 inside a write may leave a last line without its newline: that
  line's delivery was never acked, nor its publish reported; it is skipped)
  roles.json         consumer role -> queue, routing key -> queue, stream -> key
  dpsnap/*.json      the dataplane's counters file (tests/lib/dpstat.py) of every
                     instance: after each kill -9, and the last one before its stop
  stat.json          `hbus stat --json` after the drain (queue counters)
  events.log         <ms> <kind> <role> <pid>: each kill -9 (kind consumer,
                     publisher, hbusd, dataplane), "start" of each process,
                     "freeze" <queue> <ms> of each SIGSTOP of a queue's consumers
  unexpected.log     processes that died without being killed (must be empty)

The identities checked are written in run.sh's header and docs/BENCHMARKS.md
("Soak").  Prints the figures; exit status 1 on any violation.
"""
import collections
import glob
import json
import os
import sys

BURST_FRAMES = 32  # DP_BURST_MAX (dataplane/dp_pipe.h): the most a dying dataplane had in flight

# Message-level dataplane drops after sequence accounting: each message of
# the soak routes to exactly one queue, so (message, queue) pair drops are
# message drops too.
DP_MSG_DROPS = ("drop_bad_meta", "drop_no_exchange", "drop_no_route", "drop_record_length",
                "drop_queue_full", "drop_oversize", "drop_no_queue",
                "drop_queue_fault", "drop_queue_locked")


def load_json(path):
    with open(path) as f:
        return json.load(f)


class Books:
    def __init__(self, d):
        self.d = d
        self.fail = []
        self.torn = 0
        self.roles = load_json(os.path.join(d, "roles.json"))

    def bad(self, msg):
        self.fail.append(msg)

    def lines_of(self, path):
        """The complete lines of a ledger: a kill -9 in the middle of a
        write(2) can cut the last one short (nothing after it happened)."""
        with open(path) as f:
            data = f.read()
        lines = data.split("\n")
        if lines[-1]:
            self.torn += 1
        return lines[:-1]

    # ---------------------------------------------------------- sources
    def read_sender(self):
        st = load_json(os.path.join(self.d, "sender.json"))
        self.udp = {}   # kind -> stream record
        for s in st["streams"]:
            self.udp[s["kind"]] = s
        self.batch = st["batch"]

    def read_publishers(self):
        """kind -> {accepted, refused, errors, next, ended}"""
        self.pubs = {}
        for path in sorted(glob.glob(os.path.join(self.d, "pub.*.log"))):
            kind = os.path.basename(path)[4:-4]
            p = {"accepted": set(), "refused": set(), "errors": set(), "next": 0, "ended": False}
            for line in self.lines_of(path):
                w = line.split()
                if not w:
                    continue
                if w[0] == "END":
                    p["ended"] = True
                    if int(w[1]) != p["next"]:
                        self.bad(f"publisher {kind}: END {w[1]} but {p['next']} results")
                    continue
                i = int(w[1])
                if i != p["next"]:
                    self.bad(f"publisher {kind}: result for id {i}, expected {p['next']}")
                p["next"] = i + 1
                {"A": p["accepted"], "R": p["refused"], "E": p["errors"]}[w[0]].add(i)
            self.pubs[kind] = p

    def read_ledgers(self):
        """deliveries[(kind, id)] = list of (queue, redelivered, verdict)"""
        self.deliv = collections.defaultdict(list)
        self.badlines = []
        self.nack_full = 0
        for role, queue in self.roles["consumers"].items():
            for path in sorted(glob.glob(os.path.join(self.d, f"ledger.{role}.*"))):
                for line in self.lines_of(path):
                    w = line.split()
                    if len(w) != 4 or w[0] == "BAD":
                        self.badlines.append(f"{role}: {line.strip()}")
                        continue
                    k = (w[0], int(w[1]))
                    if w[3] == "F":
                        # The nack just logged was refused (queue full): the
                        # same delivery was acked instead.
                        v = self.deliv[k]
                        if not v or v[-1][2] != "N" or v[-1][0] != queue:
                            self.badlines.append(f"{role}: F without its N: {line.strip()}")
                            continue
                        v[-1] = (queue, v[-1][1], "A")
                        self.nack_full += 1
                        continue
                    self.deliv[k].append((queue, w[2] == "1", w[3]))

    def read_dataplane(self):
        """Every instance's counters once (a snapshot taken after a kill may
        show the previous instance again when the new one died before its
        counters file existed: same pid, same instance)."""
        self.dp = {}
        last = None
        for path in sorted(glob.glob(os.path.join(self.d, "dpsnap", "*.json"))):
            last = load_json(path)
            self.dp[last["pid"]] = last
        self.dp_total = collections.Counter()
        self.dp_next = {}                         # stream -> next_seq of the last instance
        for s in self.dp.values():
            for k, v in s["totals"].items():
                self.dp_total[k] += v
            for k, v in s["port"].items():
                if k in ("port_kernel_drops", "reconnects"):
                    self.dp_total[k] += v
        if last:
            for st in last["streams"]:
                self.dp_next[st["stream_id"]] = st["next_seq"]

    def read_queues(self):
        st = load_json(os.path.join(self.d, "stat.json"))
        self.q = {q["name"]: q for q in st["queues"]}

    def read_kills(self):
        self.kills = collections.Counter()
        with open(os.path.join(self.d, "events.log")) as f:
            for line in f:
                w = line.split()
                if len(w) >= 3 and w[1] != "start":
                    self.kills[w[1]] += 1
        path = os.path.join(self.d, "unexpected.log")
        self.unexpected = open(path).read().split("\n") if os.path.exists(path) else []
        self.unexpected = [u for u in self.unexpected if u.strip()]

    # ---------------------------------------------------------- checks
    def check(self):
        R = self.roles
        key_queue = R["keys"]
        deliveries = self.deliv
        delivered = {k for k, v in deliveries.items() if any(x[2] == "A" for x in v)}

        # 1. Integrity: no malformed body, no id nobody sent.
        for b in self.badlines[:5]:
            self.bad("checksum / body mismatch: " + b)
        if len(self.badlines) > 5:
            self.bad(f"... {len(self.badlines) - 5} more bad ledger lines")
        unknown = [k for k in deliveries if not self.was_sent(k)]
        if unknown:
            self.bad(f"{len(unknown)} delivered ids were never sent, e.g. {sorted(unknown)[:5]}")

        # 2. A duplicate must carry the redelivered flag: at most one unflagged
        #    delivery per id, and every delivery on the queue its key routes to.
        self.dups_unflagged = [k for k, v in deliveries.items() if sum(1 for x in v if not x[1]) > 1]
        if self.dups_unflagged:
            self.bad(f"{len(self.dups_unflagged)} ids delivered twice without the redelivered "
                     f"flag, e.g. {sorted(self.dups_unflagged)[:5]}")
        wrongq = [k for k, v in deliveries.items()
                  if self.was_sent(k) and any(x[0] != key_queue[self.key_of(k)] for x in v)]
        if wrongq:
            self.bad(f"{len(wrongq)} ids delivered on a queue their key does not route to")

        # 3. Publishers, per id.
        self.pub_fig = collections.Counter()
        for kind, p in self.pubs.items():
            queue = key_queue[self.key_of((kind, 0))]
            acc_missing = [i for i in p["accepted"] if (kind, i) not in delivered]
            ref_deliv = [i for i in p["refused"] | p["errors"] if (kind, i) in deliveries]
            self.pub_fig["published"] += p["next"]
            self.pub_fig["accepted"] += len(p["accepted"])
            self.pub_fig["refused"] += len(p["refused"])
            self.pub_fig["errors"] += len(p["errors"])
            self.pub_fig["accepted_delivered"] += len(p["accepted"]) - len(acc_missing)
            if not p["ended"]:
                # Killed: the id after its last result line was in doubt.
                self.pub_fig["in_doubt"] += 1
                if (kind, p["next"]) in delivered:
                    self.pub_fig["in_doubt_delivered"] += 1
            if ref_deliv:
                self.bad(f"publisher {kind}: {len(ref_deliv)} refused ids were delivered, "
                         f"e.g. {ref_deliv[:5]}")
            if acc_missing and R["overflow"][queue] == "reject":
                self.bad(f"publisher {kind}: {len(acc_missing)} accepted ids never delivered "
                         f"(queue '{queue}' never drops an accepted message), e.g. "
                         f"{sorted(acc_missing)[:5]}")
            self.pub_fig["accepted_lost"] += len(acc_missing)

        # 4. UDP: per id sent, delivered or not; malformed ones never delivered.
        self.udp_fig = collections.Counter()
        for kind, s in self.udp.items():
            n = s["ids"]
            got = sum(1 for i in range(n) if (kind, i) in delivered)
            self.udp_fig["sent"] += n
            self.udp_fig["delivered"] += got
            self.udp_fig["send_errors"] += s["err_msgs"]
            if s["bad"]:
                self.udp_fig["malformed_sent"] += s["bad_msgs"]
                mal = [i for i in range(3, n, 4) if (kind, i) in deliveries]
                if mal:
                    self.bad(f"stream {kind}: {len(mal)} malformed messages were delivered")
            # The dataplane saw every sequence number up to the end (heartbeats).
            if self.dp_next.get(s["stream"]) != s["next_seq"]:
                self.bad(f"stream {s['stream']}: dataplane expects {self.dp_next.get(s['stream'])}"
                         f" next, sender's next is {s['next_seq']} (tail not accounted)")
        lost_udp = self.udp_fig["sent"] - self.udp_fig["delivered"]

        # 5. Queue identities, exact, from the queues' own counters.
        self.qfig = {}
        for name in R["overflow"]:
            q = self.q[name]
            uniq_a = sum(1 for k, v in deliveries.items() if any(x[0] == name and x[2] == "A" for x in v))
            flagged = sum(1 for v in deliveries.values() for x in v if x[0] == name and x[1])
            nacks = sum(1 for v in deliveries.values() for x in v if x[0] == name and x[2] == "N")
            settled = q["acked"] + q["dropped_head"] + q["rejected"] + q["expired"] + q["released"]
            self.qfig[name] = dict(q, uniq_acked_ids=uniq_a, ledger_flagged=flagged, ledger_nacks=nacks,
                                   overlap_head=uniq_a - q["acked"])
            if q["enqueued"] != settled or q["depth"] != 0 or q.get("unacked", 0) != 0:
                self.bad(f"queue {name}: enqueued {q['enqueued']} != acked {q['acked']} + "
                         f"dropped_head {q['dropped_head']} + rejected {q['rejected']} + expired "
                         f"{q['expired']} + released {q['released']} (depth {q['depth']}, "
                         f"unacked {q.get('unacked')}) after the drain")
            if q["rejected"] or q["expired"] or q["released"]:
                self.bad(f"queue {name}: rejected/expired/released must be 0 here")
            # Each acked message has its own A line; an A line without an ack
            # is a delivery whose consumer died before acking, requeued, and
            # then dropped by drop-head before anyone took it again.
            ob = uniq_a - q["acked"]
            if ob < 0 or (ob > 0 and R["overflow"][name] == "reject") or ob > q["requeued"]:
                self.bad(f"queue {name}: {uniq_a} distinct acked ids in the ledgers, {q['acked']}"
                         f" acks counted by the queue (requeued {q['requeued']})")
            if nacks > q["requeued"]:
                self.bad(f"queue {name}: {nacks} nacks in the ledgers > requeued {q['requeued']}")
        overlap_head = sum(f["overlap_head"] for f in self.qfig.values())
        dropped_head = sum(self.q[n]["dropped_head"] for n in R["overflow"])

        # 6. The UDP identity: every undelivered UDP message is in a counter.
        gaps = self.dp_total["seq_gaps"]
        dp_drops = sum(self.dp_total[k] for k in DP_MSG_DROPS)
        counted = gaps + dp_drops + dropped_head - overlap_head
        self.overlap_dp = counted - lost_udp
        bound = self.kills["dataplane"] * BURST_FRAMES * self.batch
        self.udp_fig.update(lost=lost_udp, gaps=gaps, dp_drops=dp_drops, dropped_head=dropped_head,
                            overlap_head=overlap_head, counted=counted, bound=bound)
        if self.overlap_dp < 0:
            self.bad(f"UNACCOUNTED: {-self.overlap_dp} UDP messages lost and counted nowhere "
                     f"(lost {lost_udp}, gaps {gaps} + dataplane drops {dp_drops} + drop-head "
                     f"{dropped_head} - {overlap_head} = {counted})")
        elif self.overlap_dp > bound:
            self.bad(f"counted {counted} UDP losses but only {lost_udp} messages are missing: "
                     f"{self.overlap_dp} double counts, more than the {bound} a dying "
                     f"dataplane's last bursts explain ({self.kills['dataplane']} kills)")
        if self.dp_total["seq_dups"] or self.dp_total["seq_resets"]:
            self.bad(f"sequence dups {self.dp_total['seq_dups']} / resets "
                     f"{self.dp_total['seq_resets']}: the sender never repeats")
        if self.dp_total["drop_bad_meta"] > self.udp_fig["malformed_sent"]:
            self.bad("more drop_bad_meta than malformed messages sent")

        # 7. What entered the queues is what producers report enqueued.
        enq = sum(self.q[n]["enqueued"] for n in R["overflow"])
        produced = (self.pub_fig["accepted"] + self.pub_fig["in_doubt_delivered"] +
                    self.dp_total["delivered"])
        self.enq_slack = enq - produced
        if not 0 <= self.enq_slack <= bound:
            self.bad(f"queues enqueued {enq}, producers report {produced} (publishers "
                     f"{self.pub_fig['accepted']} + in doubt {self.pub_fig['in_doubt_delivered']}"
                     f" + dataplane {self.dp_total['delivered']})")

        for u in self.unexpected:
            self.bad("unexpected exit: " + u)

    def was_sent(self, k):
        kind, i = k
        if kind in self.udp:
            return i < self.udp[kind]["ids"]
        p = self.pubs.get(kind)
        # p["next"]: the id in doubt when a kill cut the publisher short
        return p is not None and (i < p["next"] or (i == p["next"] and not p["ended"]))

    def key_of(self, k):
        kind = k[0]
        if kind in self.udp:
            return self.udp[kind]["key"]
        return self.roles["pub_keys"][kind.rsplit("i", 1)[0]]

    # ---------------------------------------------------------- report
    def report(self):
        P, U = self.pub_fig, self.udp_fig
        redeliv = sum(1 for v in self.deliv.values() for x in v if x[1])
        print("soak figures")
        print(f"  messages   udp (via hbus-dataplane): {U['sent']} sent, {U['delivered']} delivered, "
              f"{U['lost']} not delivered ({U['malformed_sent']} malformed on purpose, "
              f"{U['send_errors']} refused by the sender's kernel)")
        print(f"             local publishers: {P['published']} published, {P['accepted']} "
              f"accepted ({P['accepted_delivered']} delivered, {P['accepted_lost']} lost to "
              f"drop-head), {P['refused']} refused, {P['errors']} errors, {P['in_doubt']} "
              f"in doubt at a kill ({P['in_doubt_delivered']} of them delivered)")
        print("  kills      " + ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())) +
              f"; dataplane instances {len(self.dp)}, hbusd reconnects seen by the "
              f"dataplane {self.dp_total['reconnects']}")
        print(f"  redelivered {redeliv} deliveries flagged ({self.nack_full} nacks found the queue "
              f"full and became acks); " + "; ".join(
            f"{n}: requeued {f['requeued']}, ledger nacks {f['ledger_nacks']}, flagged "
            f"{f['ledger_flagged']}" for n, f in self.qfig.items()))
        print("  queues     " + "; ".join(
            f"{n}: enqueued {f['enqueued']} = acked {f['acked']} + dropped_head "
            f"{f['dropped_head']}; refused (full) {f['dropped_overflow']}; distinct acked ids "
            f"{f['uniq_acked_ids']}" for n, f in self.qfig.items()))
        print(f"  drops      seq_gaps {U['gaps']} (of which the dataplane's kernel ring "
              f"{self.dp_total['port_kernel_drops']} frames), " +
              ", ".join(f"{k} {self.dp_total[k]}" for k in DP_MSG_DROPS if self.dp_total[k]) +
              f", drop_head {U['dropped_head']}, publisher refused {P['refused']}")
        print(f"  identity   udp lost {U['lost']} = gaps {U['gaps']} + dataplane drops "
              f"{U['dp_drops']} + drop_head {U['dropped_head']} - logged-then-dropped "
              f"{U['overlap_head']} - counted twice by a dying dataplane {self.overlap_dp} "
              f"(<= {U['bound']})")
        print(f"             queues enqueued - producers' reports = {self.enq_slack} (<= {U['bound']})")
        print(f"  unaccounted {max(0, -self.overlap_dp)}; duplicates without the flag "
              f"{len(self.dups_unflagged)}; checksum mismatches {len(self.badlines)}; ledger "
              f"lines cut short by a kill {self.torn}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: account.py DIR")
    b = Books(sys.argv[1])
    b.read_sender()
    b.read_publishers()
    b.read_ledgers()
    b.read_dataplane()
    b.read_queues()
    b.read_kills()
    b.check()
    b.report()
    if b.fail:
        print("SOAK FAILED:")
        for f in b.fail:
            print("  " + f)
        return 1
    print("soak: every message accounted for")
    return 0


if __name__ == "__main__":
    sys.exit(main())
