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
#include <string.h>

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
/* The same classification without the fast path for common UDP frames
 * (which accepts only what this function would accept, with the same
 * fields, and hands everything else to it): the reference that tests and
 * the fuzzer compare hbus_pkt_parse_hint() against. */
int hbus_pkt_parse_careful(const uint8_t *frame, uint32_t len, const struct hbus_pkt_cfg *cfg,
			   unsigned hints, struct hbus_pkt *out);

/* -------------------------------------------- inline fast path (private) */

/*
 * What follows is here only so that the dataplane's burst loop can inline
 * the common case; call hbus_pkt_parse_hint(), which does the same.
 *
 * hbus_pkt_parse_fast() accepts the common frame (Ethernet, at most one
 * 802.1Q tag, IPv4 without options, not a fragment, UDP, for us) with a
 * handful of combined compares and both checksums summed inline, and
 * returns HBUS_PKT_UDP; for anything else, or any check that fails, it
 * returns -1 and the caller hands the frame to hbus_pkt_parse_careful(),
 * which starts over and names the drop reason.  It only ever accepts what
 * the careful parser accepts, with the same fields, so verdicts, drop
 * reasons and counters are the careful parser's by construction
 * (tests/test_pkt.c and tests/fuzz/fuzz_pkt.c compare the two).
 * Little-endian hosts only (native loads; see hbus_oc_sum): elsewhere it
 * always returns -1.  frame, cfg and out must not be NULL.
 */

static inline uint16_t hbus_pkt_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t hbus_pkt_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Is dst one of ours (our address, a joined group, all-hosts, broadcast)?
 * Sets out->dst_kind. */
static inline bool hbus_pkt_dst_is_ours(uint32_t dst, const struct hbus_pkt_cfg *cfg,
					struct hbus_pkt *out)
{
	if (dst == cfg->ip && dst != 0) {
		out->dst_kind = HBUS_PKT_DST_UNICAST;
		return true;
	}
	if (hbus_ipv4_is_multicast(dst)) {
		out->dst_kind = HBUS_PKT_DST_MULTICAST;
		/* Every host is a member of all-hosts (RFC 1112). */
		return dst == HBUS_IPV4_ALL_HOSTS || hbus_mcast_set_has(cfg->mcast, dst);
	}
	out->dst_kind = HBUS_PKT_DST_BROADCAST;
	return dst == HBUS_IPV4_BROADCAST || (dst == cfg->bcast && dst != 0);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__

static inline uint64_t hbus_pkt_ne64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* One's-complement addition of 64-bit words: the carry out of bit 63 comes
 * back in at bit 0 (2^64 = 1 modulo 0xffff), so the sum stays congruent to
 * RFC 1071's 16-bit sum.  Compiles to add + adc. */
static inline uint64_t hbus_oc_add(uint64_t s, uint64_t w)
{
	s += w;
	return s + (s < w);
}

/* Fold to 16 bits with end-around carries: a word plus its own rotation
 * has hi + lo + carry in its high half.  Non-zero stays non-zero, so a
 * correct packet's sum folds to 0xffff (negative zero): the same test as
 * hbus_csum_fold(...) == 0. */
static inline uint16_t hbus_oc_fold(uint64_t s)
{
	uint32_t a = (uint32_t)((s + (s >> 32 | s << 32)) >> 32);

	return (uint16_t)((a + (a >> 16 | a << 16)) >> 16);
}

/* Add n >= 8 bytes at p (p - start of the summed data even) to s.  Whole
 * words first; the last n % 8 bytes come from the word that ends at p + n
 * (inside the buffer, as n >= 8), shifted down so that each byte lands
 * where a zero-padded load would put it: an odd last byte is the first
 * byte of a zero-padded 16-bit word, as RFC 1071 wants. */
static inline uint64_t hbus_oc_sum(const uint8_t *p, uint32_t n, uint64_t s)
{
	uint64_t t = 0;
	uint32_t i = 0, r = n & 7u;

	for (; i + 16 <= n; i += 16) {
		s = hbus_oc_add(s, hbus_pkt_ne64(p + i));
		t = hbus_oc_add(t, hbus_pkt_ne64(p + i + 8));
	}
	if (i + 8 <= n)
		s = hbus_oc_add(s, hbus_pkt_ne64(p + i));
	if (r)
		t = hbus_oc_add(t, hbus_pkt_ne64(p + n - 8) >> (64u - 8u * r));
	return hbus_oc_add(s, t);
}

#define HBUS_PKT_NE16(x) ((uint16_t)(((x) >> 8) | ((x) & 0xffu) << 8)) /* htons, constant */

static inline int hbus_pkt_parse_fast(const uint8_t *frame, uint32_t len,
				      const struct hbus_pkt_cfg *cfg, unsigned hints,
				      struct hbus_pkt *out)
{
	uint32_t off = HBUS_ETH_HDR_LEN, vlan = 0;
	uint16_t type, tci = 0;

	if (len < HBUS_ETH_HDR_LEN + HBUS_IPV4_HDR_LEN + HBUS_UDP_HDR_LEN)
		return -1;
	memcpy(&type, frame + 12, 2);
	if (type == HBUS_PKT_NE16(HBUS_ETHERTYPE_VLAN)) {
		if (len < HBUS_ETH_HDR_LEN + HBUS_VLAN_HDR_LEN + HBUS_IPV4_HDR_LEN + HBUS_UDP_HDR_LEN)
			return -1;
		tci = hbus_pkt_be16(frame + 14);
		memcpy(&type, frame + 16, 2);
		off += HBUS_VLAN_HDR_LEN;
		vlan = 1;
	}

	/* The IPv4 and UDP headers in four loads (little-endian words). */
	const uint8_t *ip = frame + off, *udp = ip + HBUS_IPV4_HDR_LEN;
	uint64_t w0 = hbus_pkt_ne64(ip);      /* vihl tos len(2) id(2) frag(2) */
	uint64_t w1 = hbus_pkt_ne64(ip + 8);  /* ttl proto csum(2) src(4) */
	uint32_t w2;                          /* dst */
	uint64_t u = hbus_pkt_ne64(udp);      /* sport dport len csum */
	memcpy(&w2, ip + 16, 4);
	uint32_t avail = len - off; /* >= 28 */
	uint32_t total = __builtin_bswap16((uint16_t)(w0 >> 16));
	uint32_t udp_len = __builtin_bswap16((uint16_t)(u >> 32));
	/* IPv4 with IHL 5, neither MF nor an offset (the low 14 bits of the
	 * big-endian flags word), UDP, a source below 224.0.0.0 (multicast
	 * and broadcast are drops; the rare class E source goes the careful
	 * way), 28 <= total <= avail and 8 <= udp_len <= total - 20.
	 * Unsigned differences make each range one compare (when total < 28
	 * the last one means nothing, but the result is false anyway). */
	bool ok = (type == HBUS_PKT_NE16(HBUS_ETHERTYPE_IPV4)) &
		  ((w0 & 0xff3f0000000000ffull) == 0x45u) &
		  ((w1 & 0xff00u) == (uint64_t)HBUS_IPPROTO_UDP << 8) &
		  ((uint8_t)(w1 >> 32) < 0xe0u) &
		  (total - 28u <= avail - 28u) & (udp_len - 8u <= total - 28u);

	if (!ok)
		return -1;
	if (!(hints & HBUS_PKT_HINT_IP_CSUM_GOOD) &&
	    hbus_oc_fold(hbus_oc_add(hbus_oc_add(w0, w1), w2)) != 0xffffu)
		return -1;
	if ((u >> 48) != 0 && !(hints & HBUS_PKT_HINT_L4_CSUM_GOOD)) {
		/* Pseudo-header: both addresses (one word), then the bytes 0,
		 * 17 and the UDP length as one little-endian 32-bit word. */
		uint64_t s = hbus_oc_add(w1 >> 32 | (uint64_t)w2 << 32,
					 (uint32_t)HBUS_IPPROTO_UDP << 8 | (u >> 32 & 0xffffu) << 16);

		if (hbus_oc_fold(hbus_oc_sum(udp, udp_len, s)) != 0xffffu)
			return -1;
	}
	uint32_t src = __builtin_bswap32((uint32_t)(w1 >> 32)), dst = __builtin_bswap32(w2);
	memset(out, 0, sizeof(*out));
	if (!hbus_pkt_dst_is_ours(dst, cfg, out))
		return -1;
	out->verdict = HBUS_PKT_UDP;
	out->vlan_present = (uint8_t)vlan;
	out->vlan_tci = tci;
	out->l3_off = (uint16_t)off;
	out->l4_off = (uint16_t)(off + HBUS_IPV4_HDR_LEN);
	out->src_ip = src;
	out->dst_ip = dst;
	out->src_port = __builtin_bswap16((uint16_t)u);
	out->dst_port = __builtin_bswap16((uint16_t)(u >> 16));
	out->payload = udp + HBUS_UDP_HDR_LEN;
	out->payload_len = udp_len - HBUS_UDP_HDR_LEN;
	return HBUS_PKT_UDP;
}

#else /* not little-endian: always the careful parser */

static inline int hbus_pkt_parse_fast(const uint8_t *frame, uint32_t len,
				      const struct hbus_pkt_cfg *cfg, unsigned hints,
				      struct hbus_pkt *out)
{
	(void)frame, (void)len, (void)cfg, (void)hints, (void)out;
	return -1;
}

#endif

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
