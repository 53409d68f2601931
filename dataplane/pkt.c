/*
 * pkt.c - frame classification for the dataplane (see pkt.h).
 *
 * Two parsers.  The fast path (hbus_pkt_parse_fast, inline in pkt.h so
 * the burst loop inlines it) only accepts the common UDP frame, with a
 * few combined compares over four header loads and both checksums summed
 * inline in 64-bit one's-complement words; it never names a drop reason.
 * Everything else goes to the careful parser below, whose checks run
 * cheapest-first and decide each drop reason by exactly one compare, so
 * the counters say precisely what was wrong with a frame.
 */
#include <errno.h>
#include <string.h>

#include "pkt.h"

_Static_assert(sizeof(struct hbus_pkt) <= 64, "hbus_pkt stays within one cache line");

/* ---------------------------------------------------------- checksums */

/*
 * The one's-complement sum only matters modulo 0xffff, and 2^16 = 1 modulo
 * 0xffff, so adding 32-bit words as plain integers into 64-bit accumulators
 * and folding at the end equals RFC 1071's 16-bit loop.  Two accumulators
 * and no carry handling keep the dependency chains short (~1 cycle per 8
 * bytes); they cannot overflow below 2^31 iterations (32 GiB).
 */
uint32_t hbus_csum_partial(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t *p = buf;
	uint64_t a = sum, b = 0;

	while (len >= 16) {
		uint64_t w0, w1;
		memcpy(&w0, p, 8);
		memcpy(&w1, p + 8, 8);
		a += (w0 & 0xffffffffu) + (w0 >> 32);
		b += (w1 & 0xffffffffu) + (w1 >> 32);
		p += 16;
		len -= 16;
	}
	if (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		a += (w & 0xffffffffu) + (w >> 32);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		b += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, 2);
		a += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		/* The odd byte is the first byte of a zero-padded word, on any
		 * host byte order. */
		uint16_t w = 0;
		memcpy(&w, p, 1);
		b += w;
	}
	a += b;                                /* < 2^63: no overflow */
	a = (a >> 32) + (a & 0xffffffffu);     /* < 2^33 */
	a = (a >> 32) + (a & 0xffffffffu);     /* <= 2^32 */
	a = (a >> 32) + (a & 0xffffffffu);     /* < 2^32 */
	return (uint32_t)a;
}

uint16_t hbus_csum_fold(uint32_t sum)
{
	sum = (sum >> 16) + (sum & 0xffffu);
	sum = (sum >> 16) + (sum & 0xffffu);
	return (uint16_t)~sum;
}

uint16_t hbus_ipv4_hdr_csum(const void *ip_hdr, size_t hdr_len)
{
	return hbus_csum_fold(hbus_csum_partial(ip_hdr, hdr_len, 0));
}

/* Sum of the UDP pseudo-header: addrs is src and dst as they sit in the IPv4
 * header (8 bytes, network order); len_be the UDP length bytes. */
static inline uint32_t pseudo_sum(const uint8_t *addrs, uint8_t proto, const uint8_t *len_be)
{
	const uint8_t tail[4] = { 0, proto, len_be[0], len_be[1] };
	uint64_t a;
	uint32_t t;
	memcpy(&a, addrs, 8);
	memcpy(&t, tail, 4);
	a = (a & 0xffffffffu) + (a >> 32) + t; /* < 2^34 */
	a = (a >> 32) + (a & 0xffffffffu);
	a = (a >> 32) + (a & 0xffffffffu);
	return (uint32_t)a;
}

uint16_t hbus_ipv4_udp_csum(uint32_t src_ip, uint32_t dst_ip, const void *udp, size_t udp_len)
{
	const uint8_t addrs[8] = {
		(uint8_t)(src_ip >> 24), (uint8_t)(src_ip >> 16), (uint8_t)(src_ip >> 8), (uint8_t)src_ip,
		(uint8_t)(dst_ip >> 24), (uint8_t)(dst_ip >> 16), (uint8_t)(dst_ip >> 8), (uint8_t)dst_ip,
	};
	const uint8_t len_be[2] = { (uint8_t)(udp_len >> 8), (uint8_t)udp_len };
	uint16_t c = hbus_csum_fold(hbus_csum_partial(udp, udp_len,
						      pseudo_sum(addrs, HBUS_IPPROTO_UDP, len_be)));
	return c ? c : 0xffffu;
}

/* ------------------------------------------------------ multicast set */

static inline unsigned mcast_bit(uint32_t group)
{
	return (group * 0x9e3779b1u) >> 23; /* 0..511 */
}

static inline void filter_set(struct hbus_mcast_set *s, uint32_t group)
{
	unsigned b = mcast_bit(group);
	s->filter[b >> 6] |= 1ull << (b & 63);
}

/* Index of group, or of where it would be inserted (lower bound). */
static uint32_t mcast_find(const struct hbus_mcast_set *s, uint32_t group)
{
	uint32_t lo = 0, hi = s->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->addr[mid] < group)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void hbus_mcast_set_init(struct hbus_mcast_set *s)
{
	if (s)
		memset(s, 0, sizeof(*s));
}

int hbus_mcast_set_add(struct hbus_mcast_set *s, uint32_t group)
{
	if (!s || !hbus_ipv4_is_multicast(group))
		return -EINVAL;
	uint32_t i = mcast_find(s, group);
	if (i < s->count && s->addr[i] == group)
		return 0;
	if (s->count == HBUS_MCAST_MAX)
		return -ENOSPC;
	memmove(&s->addr[i + 1], &s->addr[i], (s->count - i) * sizeof(s->addr[0]));
	s->addr[i] = group;
	s->count++;
	filter_set(s, group);
	return 0;
}

int hbus_mcast_set_del(struct hbus_mcast_set *s, uint32_t group)
{
	if (!s)
		return -EINVAL;
	uint32_t i = mcast_find(s, group);
	if (i == s->count || s->addr[i] != group)
		return -ENOENT;
	memmove(&s->addr[i], &s->addr[i + 1], (s->count - i - 1) * sizeof(s->addr[0]));
	s->count--;
	/* Filter bits may be shared: rebuild from the survivors. */
	memset(s->filter, 0, sizeof(s->filter));
	for (uint32_t j = 0; j < s->count; j++)
		filter_set(s, s->addr[j]);
	return 0;
}

bool hbus_mcast_set_has(const struct hbus_mcast_set *s, uint32_t group)
{
	if (!s)
		return false;
	unsigned b = mcast_bit(group);
	if (!(s->filter[b >> 6] & (1ull << (b & 63))))
		return false;
	uint32_t i = mcast_find(s, group);
	return i < s->count && s->addr[i] == group;
}

/* ------------------------------------------------------------ config */

int hbus_pkt_cfg_init(struct hbus_pkt_cfg *cfg, uint32_t ip, unsigned prefix_len,
		      const struct hbus_mcast_set *mcast)
{
	if (!cfg || prefix_len > 32)
		return -EINVAL;
	cfg->ip = ip;
	cfg->mcast = mcast;
	if (ip == 0 || prefix_len >= 31) {
		cfg->bcast = 0; /* RFC 3021: /31 links have no broadcast */
	} else {
		uint32_t host_mask = prefix_len ? (0xffffffffu >> prefix_len) : 0xffffffffu;
		cfg->bcast = ip | host_mask;
	}
	return 0;
}

/* ------------------------------------------------------------ parsing */

static const char *const drop_names[HBUS_PKT_DROP__COUNT] = {
	[HBUS_PKT_DROP_NONE]              = "none",
	[HBUS_PKT_DROP_RUNT]              = "runt",
	[HBUS_PKT_DROP_UNKNOWN_ETHERTYPE] = "unknown_ethertype",
	[HBUS_PKT_DROP_BAD_ARP]           = "bad_arp",
	[HBUS_PKT_DROP_ARP_OTHER]         = "arp_other",
	[HBUS_PKT_DROP_BAD_IP_VERSION]    = "bad_ip_version",
	[HBUS_PKT_DROP_BAD_IHL]           = "bad_ihl",
	[HBUS_PKT_DROP_BAD_IP_LENGTH]     = "bad_ip_length",
	[HBUS_PKT_DROP_BAD_IP_CHECKSUM]   = "bad_ip_checksum",
	[HBUS_PKT_DROP_FRAGMENT]          = "fragment",
	[HBUS_PKT_DROP_BAD_SRC_IP]        = "bad_src_ip",
	[HBUS_PKT_DROP_NOT_FOR_US]        = "not_for_us",
	[HBUS_PKT_DROP_UNSUPPORTED_L4]    = "unsupported_l4",
	[HBUS_PKT_DROP_BAD_UDP_LENGTH]    = "bad_udp_length",
	[HBUS_PKT_DROP_BAD_UDP_CHECKSUM]  = "bad_udp_checksum",
	[HBUS_PKT_DROP_BAD_IGMP]          = "bad_igmp",
	[HBUS_PKT_DROP_IGMP_OTHER]        = "igmp_other",
};

const char *hbus_pkt_drop_name(unsigned reason)
{
	return reason < HBUS_PKT_DROP__COUNT ? drop_names[reason] : "unknown";
}

static inline int drop(struct hbus_pkt *out, enum hbus_pkt_drop why)
{
	out->verdict = HBUS_PKT_DROP;
	out->drop = (uint8_t)why;
	return HBUS_PKT_DROP;
}

static inline int accept(struct hbus_pkt *out, enum hbus_pkt_verdict v)
{
	out->verdict = (uint8_t)v;
	return v;
}

#define ARP_LEN 28u

static int parse_arp(const uint8_t *a, uint32_t avail, const struct hbus_pkt_cfg *cfg,
		     struct hbus_pkt *out)
{
	if (avail < ARP_LEN)
		return drop(out, HBUS_PKT_DROP_RUNT);
	/* htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4 */
	if (hbus_pkt_be16(a) != 1 || hbus_pkt_be16(a + 2) != HBUS_ETHERTYPE_IPV4 || a[4] != 6 ||
	    a[5] != 4)
		return drop(out, HBUS_PKT_DROP_BAD_ARP);
	uint16_t op = hbus_pkt_be16(a + 6);
	if (op != 1 && op != 2)
		return drop(out, HBUS_PKT_DROP_BAD_ARP);
	out->arp_sha = a + 8;
	out->arp_spa = hbus_pkt_be32(a + 14);
	out->arp_tpa = hbus_pkt_be32(a + 24);
	if (op == 1 && cfg->ip != 0 && out->arp_tpa == cfg->ip)
		return accept(out, HBUS_PKT_ARP_REQUEST);
	return drop(out, HBUS_PKT_DROP_ARP_OTHER);
}

static int parse_udp(const uint8_t *ip, const uint8_t *udp, uint32_t l4_len, unsigned hints,
		     struct hbus_pkt *out)
{
	if (l4_len < HBUS_UDP_HDR_LEN)
		return drop(out, HBUS_PKT_DROP_BAD_UDP_LENGTH);
	uint16_t udp_len = hbus_pkt_be16(udp + 4);
	/* Shorter than the IP payload is legal (RFC 768); the rest is padding. */
	if (udp_len < HBUS_UDP_HDR_LEN || udp_len > l4_len)
		return drop(out, HBUS_PKT_DROP_BAD_UDP_LENGTH);
	if ((udp[6] | udp[7]) && !(hints & HBUS_PKT_HINT_L4_CSUM_GOOD)) {
		uint32_t sum = pseudo_sum(ip + 12, HBUS_IPPROTO_UDP, udp + 4);
		if (hbus_csum_fold(hbus_csum_partial(udp, udp_len, sum)) != 0)
			return drop(out, HBUS_PKT_DROP_BAD_UDP_CHECKSUM);
	}
	out->src_port = hbus_pkt_be16(udp);
	out->dst_port = hbus_pkt_be16(udp + 2);
	out->payload = udp + HBUS_UDP_HDR_LEN;
	out->payload_len = udp_len - HBUS_UDP_HDR_LEN;
	return accept(out, HBUS_PKT_UDP);
}

/* RFC 3376 4.1.1: codes >= 128 are a floating-point value. */
static uint32_t igmpv3_max_resp_ds(uint8_t code)
{
	if (code < 128)
		return code;
	return (uint32_t)((code & 0x0fu) | 0x10u) << (((code >> 4) & 0x07u) + 3);
}

static int parse_igmp(const uint8_t *g, uint32_t l4_len, struct hbus_pkt *out)
{
	if (l4_len < 8 || hbus_csum_fold(hbus_csum_partial(g, l4_len, 0)) != 0)
		return drop(out, HBUS_PKT_DROP_BAD_IGMP);
	if (g[0] != 0x11) /* membership query */
		return drop(out, HBUS_PKT_DROP_IGMP_OTHER);

	uint32_t group = hbus_pkt_be32(g + 4);
	if (group != 0 && !hbus_ipv4_is_multicast(group))
		return drop(out, HBUS_PKT_DROP_BAD_IGMP);

	/* RFC 3376 7.1: the version of a query is told by its length. */
	if (l4_len == 8) {
		out->igmp_version = g[1] ? 2 : 1;
		out->igmp_max_resp_ds = g[1] ? g[1] : 100; /* v1: 10 s */
	} else if (l4_len >= 12) {
		out->igmp_version = 3;
		out->igmp_max_resp_ds = igmpv3_max_resp_ds(g[1]);
	} else {
		return drop(out, HBUS_PKT_DROP_BAD_IGMP);
	}
	out->igmp_group = group;
	return accept(out, HBUS_PKT_IGMP_QUERY);
}

static int parse_ipv4(const uint8_t *ip, uint32_t avail, const struct hbus_pkt_cfg *cfg,
		      unsigned hints, struct hbus_pkt *out)
{
	if (avail < HBUS_IPV4_HDR_LEN)
		return drop(out, HBUS_PKT_DROP_RUNT);
	if ((ip[0] >> 4) != 4)
		return drop(out, HBUS_PKT_DROP_BAD_IP_VERSION);
	uint32_t ihl = (ip[0] & 0x0fu) * 4u;
	if (ihl < HBUS_IPV4_HDR_LEN || ihl > avail)
		return drop(out, HBUS_PKT_DROP_BAD_IHL);
	uint32_t total = hbus_pkt_be16(ip + 2);
	if (total < ihl || total > avail)
		return drop(out, HBUS_PKT_DROP_BAD_IP_LENGTH);
	if (!(hints & HBUS_PKT_HINT_IP_CSUM_GOOD) && hbus_ipv4_hdr_csum(ip, ihl) != 0)
		return drop(out, HBUS_PKT_DROP_BAD_IP_CHECKSUM);
	if (hbus_pkt_be16(ip + 6) & 0x3fffu) /* MF flag or fragment offset */
		return drop(out, HBUS_PKT_DROP_FRAGMENT);

	out->src_ip = hbus_pkt_be32(ip + 12);
	out->dst_ip = hbus_pkt_be32(ip + 16);
	if (hbus_ipv4_is_multicast(out->src_ip) || out->src_ip == HBUS_IPV4_BROADCAST)
		return drop(out, HBUS_PKT_DROP_BAD_SRC_IP);
	if (!hbus_pkt_dst_is_ours(out->dst_ip, cfg, out))
		return drop(out, HBUS_PKT_DROP_NOT_FOR_US);

	out->l4_off = (uint16_t)(out->l3_off + ihl);
	if (ip[9] == HBUS_IPPROTO_UDP)
		return parse_udp(ip, ip + ihl, total - ihl, hints, out);
	if (ip[9] == HBUS_IPPROTO_IGMP)
		return parse_igmp(ip + ihl, total - ihl, out);
	return drop(out, HBUS_PKT_DROP_UNSUPPORTED_L4);
}

int hbus_pkt_parse_careful(const uint8_t *frame, uint32_t len, const struct hbus_pkt_cfg *cfg,
			   unsigned hints, struct hbus_pkt *out)
{
	if (!cfg || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!frame || len < HBUS_ETH_HDR_LEN)
		return drop(out, HBUS_PKT_DROP_RUNT);

	uint32_t off = HBUS_ETH_HDR_LEN;
	uint16_t type = hbus_pkt_be16(frame + 12);
	if (type == HBUS_ETHERTYPE_VLAN) {
		if (len < HBUS_ETH_HDR_LEN + HBUS_VLAN_HDR_LEN)
			return drop(out, HBUS_PKT_DROP_RUNT);
		out->vlan_present = 1;
		out->vlan_tci = hbus_pkt_be16(frame + 14);
		type = hbus_pkt_be16(frame + 16);
		off += HBUS_VLAN_HDR_LEN;
	}
	out->l3_off = (uint16_t)off;

	if (type == HBUS_ETHERTYPE_IPV4)
		return parse_ipv4(frame + off, len - off, cfg, hints, out);
	if (type == HBUS_ETHERTYPE_ARP)
		return parse_arp(frame + off, len - off, cfg, out);
	return drop(out, HBUS_PKT_DROP_UNKNOWN_ETHERTYPE);
}

int hbus_pkt_parse_hint(const uint8_t *frame, uint32_t len, const struct hbus_pkt_cfg *cfg,
			unsigned hints, struct hbus_pkt *out)
{
	if (__builtin_expect(frame && cfg && out, 1)) {
		int v = hbus_pkt_parse_fast(frame, len, cfg, hints, out);

		if (__builtin_expect(v >= 0, 1))
			return v;
	}
	return hbus_pkt_parse_careful(frame, len, cfg, hints, out);
}

int hbus_pkt_parse(const uint8_t *frame, uint32_t len, const struct hbus_pkt_cfg *cfg,
		   struct hbus_pkt *out)
{
	return hbus_pkt_parse_hint(frame, len, cfg, 0, out);
}
