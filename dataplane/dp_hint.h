/*
 * dp_hint.h - what an operator should be told, once, when the counters show
 * a known misconfiguration rather than bad traffic.
 *
 * Today one: on a net_af_packet port, UDP datagrams that mostly fail their
 * checksum.  A sender whose kernel leaves UDP checksums to TX offload (a
 * veth peer, a bridge or tap in between: nothing ever completes them) hands
 * the frame over CHECKSUM_PARTIAL, so the packet socket under af_packet sees
 * an unfinished sum and the parser rightly drops it (drop_bad_udp_checksum).
 * The fix is on the sender: ethtool -K <peer> tx off.
 *
 * Pure C, no DPDK; the main lcore calls it with the counters' totals.
 */
#ifndef HBUS_DP_HINT_H
#define HBUS_DP_HINT_H

#include <stdint.h>

/* Datagrams that must have failed before the hint can be due: a stray
 * corrupt frame or two is traffic, not configuration. */
#define DP_HINT_CSUM_MIN 32u

struct dp_hint {
	int csum_said;
};

/* 1 exactly once: when at least DP_HINT_CSUM_MIN datagrams failed their UDP
 * checksum (bad) and more failed than passed the parser (good). */
int dp_hint_csum_due(struct dp_hint *h, uint64_t bad, uint64_t good);

/* Say it: which interface (that of the af_packet socket pkt_fd; -1 when
 * unknown), its veth peer when it has one, and the command. */
void dp_hint_csum_say(int pkt_fd, uint64_t bad, uint64_t good);

#endif
