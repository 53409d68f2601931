/*
 * pkt_testutil.h - shared by test_pkt.c and test_pkt_build.c: frames crafted
 * by hand with an independent RFC 1071 checksum (ref_csum, a plain 16-bit
 * big-endian loop), so the parser and builders are not checked against
 * their own helpers.
 */
#ifndef HBUS_PKT_TESTUTIL_H
#define HBUS_PKT_TESTUTIL_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "pkt.h"
#include "pkt_build.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define OUR_IP   IP(10, 0, 0, 1)
#define PEER_IP  IP(10, 0, 0, 7)
#define GROUP_A  IP(239, 1, 1, 1)
#define GROUP_B  IP(239, 2, 2, 2)

static const uint8_t our_mac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t peer_mac[6] = { 0x02, 0, 0, 0, 0, 0x07 };

static struct hbus_mcast_set groups;
static struct hbus_pkt_cfg cfg;

static inline void setup(void)
{
	hbus_mcast_set_init(&groups);
	cr_assert_eq(hbus_mcast_set_add(&groups, GROUP_A), 0);
	cr_assert_eq(hbus_mcast_set_add(&groups, GROUP_B), 0);
	cr_assert_eq(hbus_pkt_cfg_init(&cfg, OUR_IP, 24, &groups), 0);
}

/* ------------------------------------------------ independent helpers */

static inline uint16_t ref_csum(const uint8_t *p, size_t n, uint32_t s)
{
	size_t i;
	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static inline uint32_t ref_pseudo(uint32_t src, uint32_t dst, uint16_t udp_len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17u + udp_len;
}

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) { return (uint32_t)be16(p) << 16 | be16(p + 2); }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* Recompute the IPv4 header checksum of the frame's IP header at l3. */
static inline void fix_ip(uint8_t *f, size_t l3)
{
	uint8_t *ip = f + l3;
	size_t ihl = (ip[0] & 0xfu) * 4u;
	put16(ip + 10, 0);
	put16(ip + 10, ref_csum(ip, ihl, 0));
}

/* Ethernet (untagged) + 20-byte IPv4 header + l4; returns the frame length. */
static inline size_t mk_ip(uint8_t *f, uint8_t proto, uint32_t src, uint32_t dst,
		    const uint8_t *l4, size_t l4_len)
{
	memcpy(f, our_mac, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4_len));
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	memcpy(ip + 20, l4, l4_len);
	fix_ip(f, 14);
	return 14 + 20 + l4_len;
}

static inline size_t mk_udp(uint8_t *f, uint32_t src, uint32_t dst, const void *payload, size_t plen)
{
	uint8_t udp[1600];
	put16(udp, 40000);
	put16(udp + 2, 5555);
	put16(udp + 4, (uint16_t)(8 + plen));
	put16(udp + 6, 0);
	memcpy(udp + 8, payload, plen);
	uint16_t c = ref_csum(udp, 8 + plen, ref_pseudo(src, dst, (uint16_t)(8 + plen)));
	put16(udp + 6, c ? c : 0xffff);
	return mk_ip(f, 17, src, dst, udp, 8 + plen);
}

/* IGMP message of len bytes (8, or 12+ for v3 queries). */
static inline size_t mk_igmp(uint8_t *f, uint32_t dst, uint8_t type, uint8_t code, uint32_t group,
		      size_t len)
{
	uint8_t g[64] = { 0 };
	g[0] = type;
	g[1] = code;
	put32(g + 4, group);
	put16(g + 2, ref_csum(g, len, 0));
	return mk_ip(f, 2, PEER_IP, dst, g, len);
}

/* Parse from an exact-size heap copy so ASan sees any overread. */
static inline int parse(const uint8_t *f, size_t len, struct hbus_pkt *out)
{
	uint8_t *b = malloc(len ? len : 1);
	memcpy(b, f, len);
	int v = hbus_pkt_parse(b, (uint32_t)len, &cfg, out);
	/* pointers into the copy must not escape: rebase them onto f */
	if (out->payload)
		out->payload = f + (out->payload - b);
	if (out->arp_sha)
		out->arp_sha = f + (out->arp_sha - b);
	free(b);
	cr_assert_eq(v, out->verdict);
	cr_assert_eq(v == HBUS_PKT_DROP, out->drop != HBUS_PKT_DROP_NONE);
	return v;
}

static inline size_t mk_arp(uint8_t *f, uint16_t op, uint32_t spa, uint32_t tpa)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0806);
	uint8_t *a = f + 14;
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, peer_mac, 6);
	put32(a + 14, spa);
	memset(a + 18, 0, 6);
	put32(a + 24, tpa);
	return 14 + 28;
}

static const struct hbus_build_link me = {
	.mac = { 0x02, 0, 0, 0, 0, 0x01 }, .ip = OUR_IP,
};

#endif
