/*
 * pkt.h - Ethernet / 802.1Q / ARP / IPv4 / IGMP / UDP parsing for the dataplane.
 *
 * Pure C, no DPDK: the dataplane feeds it rte_pktmbuf_mtod() bytes, and the
 * unit tests, fuzzers and benchmarks feed it plain buffers.  hbus_pkt_parse()
 * allocates nothing, makes no syscall, writes only *out, and never reads
 * outside frame[0..len).  It either classifies a frame as something the
 * dataplane acts on, or gives exactly one drop reason for the counters.
 *
 * Conventions: IPv4 addresses and ports in struct hbus_pkt / hbus_pkt_cfg
 * are in HOST byte order (10.0.0.1 is 0x0a000001).  Pointers in hbus_pkt
 * point into the frame and live as long as it does.
 */
#ifndef HBUS_PKT_H
#define HBUS_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HBUS_ETHERTYPE_IPV4 0x0800u
#define HBUS_ETHERTYPE_ARP  0x0806u
#define HBUS_ETHERTYPE_VLAN 0x8100u

#define HBUS_ETH_HDR_LEN   14u
#define HBUS_VLAN_HDR_LEN   4u
#define HBUS_IPV4_HDR_LEN  20u   /* without options */
#define HBUS_UDP_HDR_LEN    8u
#define HBUS_ETH_MIN_FRAME 60u   /* minimum frame without FCS; builders pad to it */

#define HBUS_IPPROTO_IGMP 2u
#define HBUS_IPPROTO_UDP 17u

#define HBUS_IPV4_ALL_HOSTS    0xe0000001u /* 224.0.0.1 */
#define HBUS_IPV4_ALL_ROUTERS  0xe0000002u /* 224.0.0.2: IGMPv2 leaves */
#define HBUS_IPV4_IGMPV3_RTRS  0xe0000016u /* 224.0.0.22: IGMPv3 reports */
#define HBUS_IPV4_BROADCAST    0xffffffffu

static inline bool hbus_ipv4_is_multicast(uint32_t ip)
{
	return (ip >> 28) == 0xeu;
}

/* ------------------------------------------------------- multicast set */

/*
 * The multicast groups this host has joined.  Membership tests are the
 * per-packet cost for multicast traffic, so a 512-bit filter indexed by a
 * hash of the group answers "not joined" with one load; only a set bit
 * leads to a binary search of the sorted address array.  The set is
 * read-only while packets are parsed: a writer builds a new set and swaps
 * the pointer in hbus_pkt_cfg (the dataplane does this RCU-style).
 */
#define HBUS_MCAST_MAX 256u

struct hbus_mcast_set {
	uint64_t filter[8];
	uint32_t count;
	uint32_t addr[HBUS_MCAST_MAX]; /* sorted ascending, host order */
};

void hbus_mcast_set_init(struct hbus_mcast_set *s);
/* 0 (also when already a member), -EINVAL (not a multicast address),
 * -ENOSPC (HBUS_MCAST_MAX groups joined). */
int hbus_mcast_set_add(struct hbus_mcast_set *s, uint32_t group);
/* 0, or -ENOENT when not a member. */
int hbus_mcast_set_del(struct hbus_mcast_set *s, uint32_t group);
bool hbus_mcast_set_has(const struct hbus_mcast_set *s, uint32_t group);

/* ------------------------------------------------------------ parsing */

struct hbus_pkt_cfg {
	uint32_t ip;     /* our unicast address; 0 = none yet */
	uint32_t bcast;  /* our subnet's directed broadcast; 0 = none */
	const struct hbus_mcast_set *mcast; /* joined groups; NULL = none */
};

/* Fill cfg from ADDR/PREFIX (prefix 0..32; /31 and /32 have no broadcast).
 * -EINVAL on a bad prefix. */
int hbus_pkt_cfg_init(struct hbus_pkt_cfg *cfg, uint32_t ip, unsigned prefix_len,
		      const struct hbus_mcast_set *mcast);

enum hbus_pkt_verdict {
	HBUS_PKT_DROP          = 0, /* see hbus_pkt.drop */
	HBUS_PKT_UDP           = 1, /* a UDP datagram for us: payload is valid */
	HBUS_PKT_ARP_REQUEST   = 2, /* an ARP request for cfg->ip: answer it */
	HBUS_PKT_IGMP_QUERY    = 3, /* an IGMP membership query: report our groups */
};

/*
 * Every drop reason, in the order the parser checks them.  Values are
 * stable (counters are indexed by them); add new reasons before _COUNT.
 */
enum hbus_pkt_drop {
	HBUS_PKT_DROP_NONE = 0,
	HBUS_PKT_DROP_RUNT,              /* shorter than the header its type needs */
	HBUS_PKT_DROP_UNKNOWN_ETHERTYPE, /* not IPv4/ARP (incl. a second VLAN tag) */
	HBUS_PKT_DROP_BAD_ARP,           /* not Ethernet/IPv4 ARP, or bad opcode */
	HBUS_PKT_DROP_ARP_OTHER,         /* replies, and requests for other hosts */
	HBUS_PKT_DROP_BAD_IP_VERSION,    /* version != 4 */
	HBUS_PKT_DROP_BAD_IHL,           /* IHL < 5, or options past the frame */
	HBUS_PKT_DROP_BAD_IP_LENGTH,     /* total length < header, or > frame */
	HBUS_PKT_DROP_BAD_IP_CHECKSUM,
	HBUS_PKT_DROP_FRAGMENT,          /* MF set or offset != 0 */
	HBUS_PKT_DROP_BAD_SRC_IP,        /* source is multicast or broadcast */
	HBUS_PKT_DROP_NOT_FOR_US,        /* dst neither ours, a joined group, nor broadcast */
	HBUS_PKT_DROP_UNSUPPORTED_L4,    /* neither UDP nor IGMP */
	HBUS_PKT_DROP_BAD_UDP_LENGTH,    /* < 8, or > IP payload */
	HBUS_PKT_DROP_BAD_UDP_CHECKSUM,  /* non-zero and wrong */
	HBUS_PKT_DROP_BAD_IGMP,          /* too short or bad checksum */
	HBUS_PKT_DROP_IGMP_OTHER,        /* reports/leaves of other hosts */
	HBUS_PKT_DROP__COUNT
};

/* Stable lower-case name ("runt", "bad_ip_checksum", ...) for counters and
 * logs; "unknown" for a value out of range. */
const char *hbus_pkt_drop_name(unsigned reason);

/* 64 bytes: one cache line, cleared once per frame. */
struct hbus_pkt {
	uint8_t verdict;      /* enum hbus_pkt_verdict */
	uint8_t drop;         /* enum hbus_pkt_drop, NONE unless verdict is DROP */
	uint8_t vlan_present; /* the frame had an 802.1Q tag */
	uint8_t dst_kind;     /* IPv4 frames: enum hbus_pkt_dst_kind */
	uint16_t vlan_tci;    /* whole TCI (PCP, DEI, VID); VID = tci & 0xfff */
	uint16_t l3_off;      /* offset of the ARP or IPv4 header */
	uint16_t l4_off;      /* offset of the UDP/IGMP header (IPv4 only) */
	uint8_t igmp_version; /* IGMP query: 1, 2 or 3 (RFC 3376 section 7.1) */

	/* UDP and IGMP */
	uint32_t src_ip, dst_ip;
	uint16_t src_port, dst_port; /* UDP */
	const uint8_t *payload;      /* UDP payload */
	uint32_t payload_len;

	/* ARP request: who asks, so the reply can go back */
	const uint8_t *arp_sha;      /* sender MAC (6 bytes in the frame) */
	uint32_t arp_spa, arp_tpa;   /* sender and target IPv4 */

	/* IGMP query */
	uint32_t igmp_group;         /* 0 = general query */
	uint32_t igmp_max_resp_ds;   /* max response time, tenths of a second */
};

enum hbus_pkt_dst_kind {
	HBUS_PKT_DST_UNICAST   = 0,
	HBUS_PKT_DST_MULTICAST = 1,
	HBUS_PKT_DST_BROADCAST = 2,
};

/* Per-frame hints, e.g. from NIC checksum offload: a checksum the hardware
 * verified as good is not summed again. */
#define HBUS_PKT_HINT_IP_CSUM_GOOD 0x1u
#define HBUS_PKT_HINT_L4_CSUM_GOOD 0x2u

/*
 * Classify one frame.  Returns the verdict (also in out->verdict), or
 * -EINVAL when cfg or out is NULL.  A malformed frame is never an error:
 * it is HBUS_PKT_DROP with out->drop saying why.  Trailing bytes past the
 * IPv4 total length (Ethernet padding) are ignored.
 */
int hbus_pkt_parse(const uint8_t *frame, uint32_t len, const struct hbus_pkt_cfg *cfg,
		   struct hbus_pkt *out);
int hbus_pkt_parse_hint(const uint8_t *frame, uint32_t len, const struct hbus_pkt_cfg *cfg,
			unsigned hints, struct hbus_pkt *out);

/* ---------------------------------------------------------- checksums */

/*
 * Internet checksum (RFC 1071) pieces.  hbus_csum_partial adds len bytes to a
 * running sum; chain calls only on even-length pieces (except the last).
 * hbus_csum_fold folds a sum and complements it.  The sum is taken over
 * native-order 16-bit words, so the 16-bit result is stored into a frame
 * with memcpy as is (no htons): the byte-order independence of the
 * one's-complement sum makes that come out right on any host.
 */
uint32_t hbus_csum_partial(const void *buf, size_t len, uint32_t sum);
uint16_t hbus_csum_fold(uint32_t sum);

/* Checksum of an IPv4 header (its checksum field must be zero, or the result
 * of the sum over a correct header is 0). */
uint16_t hbus_ipv4_hdr_csum(const void *ip_hdr, size_t hdr_len);
/* UDP checksum over pseudo-header + udp[0..udp_len) with the checksum field
 * zeroed; a computed 0 is returned as 0xffff (RFC 768). src/dst host order. */
uint16_t hbus_ipv4_udp_csum(uint32_t src_ip, uint32_t dst_ip, const void *udp, size_t udp_len);

#ifdef __cplusplus
}
#endif
#endif /* HBUS_PKT_H */
