/*
 * pkt_build.c - frame builders (see pkt_build.h).
 *
 * Each builder lays out Ethernet [+ 802.1Q] + payload via the helpers below,
 * so header layout lives in exactly one place; checksums come from pkt.c.
 */
#include <errno.h>
#include <string.h>

#include "pkt_build.h"

#define ARP_LEN        28u
#define IGMPV2_LEN      8u
#define IGMPV3_HDR_LEN  8u
#define IGMPV3_REC_LEN  8u
#define RA_OPT_LEN      4u   /* IPv4 router alert: 0x94 0x04 0x00 0x00 */
#define UDP_PAYLOAD_MAX (0xffffu - HBUS_IPV4_HDR_LEN - HBUS_UDP_HDR_LEN)

#define IP_FLAG_DF 0x4000u

static inline void st_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void st_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void hbus_mcast_mac(uint32_t group, uint8_t mac[6])
{
	if (!mac)
		return;
	mac[0] = 0x01;
	mac[1] = 0x00;
	mac[2] = 0x5e;
	mac[3] = (uint8_t)((group >> 16) & 0x7f);
	mac[4] = (uint8_t)(group >> 8);
	mac[5] = (uint8_t)group;
}

static inline size_t eth_len(uint8_t vlan_present)
{
	return HBUS_ETH_HDR_LEN + (vlan_present ? HBUS_VLAN_HDR_LEN : 0);
}

/* Writes the Ethernet header; returns its length. */
static size_t put_eth(uint8_t *p, const uint8_t dst[6], const uint8_t src[6],
		      uint8_t vlan_present, uint16_t vlan_tci, uint16_t type)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	if (vlan_present) {
		st_be16(p + 12, HBUS_ETHERTYPE_VLAN);
		st_be16(p + 14, vlan_tci);
		st_be16(p + 16, type);
	} else {
		st_be16(p + 12, type);
	}
	return eth_len(vlan_present);
}

struct ipv4_fields {
	uint8_t tos, ttl, proto, router_alert;
	uint16_t id, frag;
	uint32_t src, dst;
};

/* Writes an IPv4 header (with the router-alert option if asked) for
 * l4_len bytes of payload, checksum included; returns its length. */
static size_t put_ipv4(uint8_t *ip, const struct ipv4_fields *f, size_t l4_len)
{
	size_t hlen = HBUS_IPV4_HDR_LEN + (f->router_alert ? RA_OPT_LEN : 0);
	ip[0] = (uint8_t)(0x40 | (hlen / 4));
	ip[1] = f->tos;
	st_be16(ip + 2, (uint16_t)(hlen + l4_len));
	st_be16(ip + 4, f->id);
	st_be16(ip + 6, f->frag);
	ip[8] = f->ttl;
	ip[9] = f->proto;
	ip[10] = ip[11] = 0;
	st_be32(ip + 12, f->src);
	st_be32(ip + 16, f->dst);
	if (f->router_alert) {
		ip[20] = 0x94;
		ip[21] = 0x04;
		ip[22] = ip[23] = 0;
	}
	uint16_t c = hbus_ipv4_hdr_csum(ip, hlen);
	memcpy(ip + 10, &c, 2);
	return hlen;
}

/* Zero-pads a frame of len bytes to the Ethernet minimum; returns the new
 * length.  The caller has checked cap >= padded length. */
static int pad_frame(uint8_t *buf, size_t len)
{
	if (len < HBUS_ETH_MIN_FRAME) {
		memset(buf + len, 0, HBUS_ETH_MIN_FRAME - len);
		len = HBUS_ETH_MIN_FRAME;
	}
	return (int)len;
}

static inline size_t padded(size_t len)
{
	return len < HBUS_ETH_MIN_FRAME ? HBUS_ETH_MIN_FRAME : len;
}

int hbus_build_arp_reply(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			 const struct hbus_pkt *req)
{
	if (!buf || !me || !req || req->verdict != HBUS_PKT_ARP_REQUEST || !req->arp_sha)
		return -EINVAL;
	size_t len = eth_len(req->vlan_present) + ARP_LEN;
	if (cap < padded(len))
		return -ENOSPC;

	/* Copy the requester's MAC first: req->arp_sha may point into buf. */
	uint8_t sha[6];
	memcpy(sha, req->arp_sha, 6);

	uint8_t *a = buf + put_eth(buf, sha, me->mac, req->vlan_present, req->vlan_tci,
				   HBUS_ETHERTYPE_ARP);
	st_be16(a, 1);                     /* htype Ethernet */
	st_be16(a + 2, HBUS_ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	st_be16(a + 6, 2);                 /* reply */
	memcpy(a + 8, me->mac, 6);
	st_be32(a + 14, me->ip);
	memcpy(a + 18, sha, 6);
	st_be32(a + 24, req->arp_spa);
	return pad_frame(buf, len);
}

/* Lays out an IGMP frame to dst (Ethernet to dst's group MAC, IPv4 with
 * TTL 1 and router alert) and points *igmp at the igmp_len bytes the caller
 * fills in.  Returns the unpadded frame length. */
static int put_igmp_frame(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			  uint32_t dst, uint8_t tos, size_t igmp_len, uint8_t **igmp)
{
	size_t l2 = eth_len(me->vlan_present);
	size_t len = l2 + HBUS_IPV4_HDR_LEN + RA_OPT_LEN + igmp_len;
	if (cap < padded(len))
		return -ENOSPC;

	uint8_t dst_mac[6];
	hbus_mcast_mac(dst, dst_mac);
	put_eth(buf, dst_mac, me->mac, me->vlan_present, me->vlan_tci, HBUS_ETHERTYPE_IPV4);
	const struct ipv4_fields f = {
		.tos = tos, .ttl = 1, .proto = HBUS_IPPROTO_IGMP, .router_alert = 1,
		.id = 0, .frag = IP_FLAG_DF, .src = me->ip, .dst = dst,
	};
	*igmp = buf + l2 + put_ipv4(buf + l2, &f, igmp_len);
	return (int)len;
}

static int build_igmpv2(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			uint8_t type, uint32_t dst, uint32_t group)
{
	if (!buf || !me || !hbus_ipv4_is_multicast(group))
		return -EINVAL;
	uint8_t *g;
	int len = put_igmp_frame(buf, cap, me, dst, 0, IGMPV2_LEN, &g);
	if (len < 0)
		return len;
	g[0] = type;
	g[1] = 0;                 /* max resp time: unused in reports */
	g[2] = g[3] = 0;
	st_be32(g + 4, group);
	uint16_t c = hbus_csum_fold(hbus_csum_partial(g, IGMPV2_LEN, 0));
	memcpy(g + 2, &c, 2);
	return pad_frame(buf, (size_t)len);
}

int hbus_build_igmpv2_report(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			     uint32_t group)
{
	return build_igmpv2(buf, cap, me, 0x16, group, group);
}

int hbus_build_igmpv2_leave(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			    uint32_t group)
{
	return build_igmpv2(buf, cap, me, 0x17, HBUS_IPV4_ALL_ROUTERS, group);
}

int hbus_build_igmpv3_report(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			     unsigned record_type, const uint32_t *groups, unsigned n_groups)
{
	if (!buf || !me || !groups || n_groups == 0 || n_groups > 0xffffu ||
	    record_type < HBUS_IGMPV3_MODE_IS_INCLUDE || record_type > HBUS_IGMPV3_BLOCK_OLD_SOURCES)
		return -EINVAL;
	for (unsigned i = 0; i < n_groups; i++)
		if (!hbus_ipv4_is_multicast(groups[i]))
			return -EINVAL;
	size_t igmp_len = IGMPV3_HDR_LEN + (size_t)n_groups * IGMPV3_REC_LEN;
	if (igmp_len > 0xffffu - HBUS_IPV4_HDR_LEN - RA_OPT_LEN)
		return -EINVAL;

	uint8_t *g;
	/* RFC 3376 4.2.13: TOS 0xc0 (internetwork control). */
	int len = put_igmp_frame(buf, cap, me, HBUS_IPV4_IGMPV3_RTRS, 0xc0, igmp_len, &g);
	if (len < 0)
		return len;
	g[0] = 0x22;
	g[1] = 0;
	g[2] = g[3] = 0;
	g[4] = g[5] = 0;
	st_be16(g + 6, (uint16_t)n_groups);
	uint8_t *r = g + IGMPV3_HDR_LEN;
	for (unsigned i = 0; i < n_groups; i++, r += IGMPV3_REC_LEN) {
		r[0] = (uint8_t)record_type;
		r[1] = 0;             /* aux data len */
		st_be16(r + 2, 0);    /* number of sources */
		st_be32(r + 4, groups[i]);
	}
	uint16_t c = hbus_csum_fold(hbus_csum_partial(g, igmp_len, 0));
	memcpy(g + 2, &c, 2);
	return pad_frame(buf, (size_t)len);
}

size_t hbus_udp_payload_off(const struct hbus_udp_spec *s)
{
	if (!s)
		return 0;
	return eth_len(s->vlan_present) + HBUS_IPV4_HDR_LEN + HBUS_UDP_HDR_LEN;
}

int hbus_build_udp(uint8_t *buf, size_t cap, const struct hbus_udp_spec *s,
		   const void *payload, size_t len)
{
	if (!buf || !s || len > UDP_PAYLOAD_MAX)
		return -EINVAL;
	size_t off = hbus_udp_payload_off(s);
	if (cap < padded(off + len))
		return -ENOSPC;

	if (payload && len)
		memmove(buf + off, payload, len);
	size_t l2 = put_eth(buf, s->dst_mac, s->src_mac, s->vlan_present, s->vlan_tci,
			    HBUS_ETHERTYPE_IPV4);
	const struct ipv4_fields f = {
		.tos = s->tos, .ttl = s->ttl ? s->ttl : 64, .proto = HBUS_IPPROTO_UDP,
		.id = s->ip_id, .frag = IP_FLAG_DF, .src = s->src_ip, .dst = s->dst_ip,
	};
	size_t udp_len = HBUS_UDP_HDR_LEN + len;
	uint8_t *udp = buf + l2 + put_ipv4(buf + l2, &f, udp_len);
	st_be16(udp, s->src_port);
	st_be16(udp + 2, s->dst_port);
	st_be16(udp + 4, (uint16_t)udp_len);
	udp[6] = udp[7] = 0;
	if (!s->no_udp_csum) {
		uint16_t c = hbus_ipv4_udp_csum(s->src_ip, s->dst_ip, udp, udp_len);
		memcpy(udp + 6, &c, 2);
	}
	return pad_frame(buf, off + len);
}
