/*
 * test_pkt_build.c - the frame builders (ARP reply, IGMPv2/v3 reports, UDP):
 * every header field and checksum checked against independent code, and
 * every frame parsed back by hbus_pkt_parse.
 */
#include "pkt_testutil.h"

TestSuite(pkt_build, .init = setup);

/* The IPv4 header at f+14 carries router alert, TTL 1, proto IGMP, a
 * correct checksum; returns the IGMP message. */
static const uint8_t *check_igmp_ip(const uint8_t *f, uint32_t dst, size_t igmp_len)
{
	const uint8_t *ip = f + 14;
	cr_assert_eq(be16(f + 12), 0x0800);
	cr_assert_eq(ip[0], 0x46, "IHL 6: router alert option");
	cr_assert_eq(be32(ip + 20), 0x94040000u);
	cr_assert_eq(ip[8], 1, "TTL 1");
	cr_assert_eq(ip[9], 2);
	cr_assert_eq(be16(ip + 2), 24 + igmp_len);
	cr_assert_eq(ref_csum(ip, 24, 0), 0, "IP checksum");
	cr_assert_eq(be32(ip + 12), OUR_IP);
	cr_assert_eq(be32(ip + 16), dst);
	uint8_t mac[6];
	hbus_mcast_mac(dst, mac);
	cr_assert_eq(memcmp(f, mac, 6), 0);
	cr_assert_eq(memcmp(f + 6, me.mac, 6), 0);
	const uint8_t *g = ip + 24;
	cr_assert_eq(ref_csum(g, igmp_len, 0), 0, "IGMP checksum");
	return g;
}

Test(pkt_build, igmpv2_report_and_leave)
{
	uint8_t f[128];
	struct hbus_pkt p;
	int len = hbus_build_igmpv2_report(f, sizeof(f), &me, GROUP_A);

	cr_assert_eq(len, 60, "padded to the Ethernet minimum");
	const uint8_t *g = check_igmp_ip(f, GROUP_A, 8);
	cr_assert_eq(g[0], 0x16);
	cr_assert_eq(be32(g + 4), GROUP_A);
	/* another instance, joined to the group, sees a valid foreign report */
	cr_assert_eq(parse(f, (size_t)len, &p), HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_IGMP_OTHER);

	len = hbus_build_igmpv2_leave(f, sizeof(f), &me, GROUP_B);
	cr_assert_eq(len, 60);
	g = check_igmp_ip(f, HBUS_IPV4_ALL_ROUTERS, 8);
	cr_assert_eq(g[0], 0x17);
	cr_assert_eq(be32(g + 4), GROUP_B);

	cr_assert_eq(hbus_build_igmpv2_report(f, 59, &me, GROUP_A), -ENOSPC);
	cr_assert_eq(hbus_build_igmpv2_report(f, sizeof(f), &me, OUR_IP), -EINVAL);
}

Test(pkt_build, igmpv3_report)
{
	static uint8_t f[2048];
	uint32_t gs[3] = { GROUP_A, GROUP_B, IP(239, 255, 0, 1) };
	int len = hbus_build_igmpv3_report(f, sizeof(f), &me, HBUS_IGMPV3_CHANGE_TO_EXCLUDE, gs, 3);

	cr_assert_eq(len, 14 + 24 + 8 + 3 * 8);
	const uint8_t *g = check_igmp_ip(f, HBUS_IPV4_IGMPV3_RTRS, 8 + 3 * 8);
	cr_assert_eq(f[14 + 1], 0xc0, "TOS internetwork control");
	cr_assert_eq(g[0], 0x22);
	cr_assert_eq(be16(g + 6), 3);
	for (unsigned i = 0; i < 3; i++) {
		const uint8_t *r = g + 8 + 8 * i;
		cr_assert_eq(r[0], HBUS_IGMPV3_CHANGE_TO_EXCLUDE);
		cr_assert_eq(r[1], 0);
		cr_assert_eq(be16(r + 2), 0);
		cr_assert_eq(be32(r + 4), gs[i]);
	}
	struct hbus_mcast_set s2 = groups;
	cr_assert_eq(hbus_mcast_set_add(&s2, HBUS_IPV4_IGMPV3_RTRS), 0);
	struct hbus_pkt_cfg c2 = cfg;
	c2.mcast = &s2;
	struct hbus_pkt p;
	cr_assert_eq(hbus_pkt_parse(f, (uint32_t)len, &c2, &p), HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_IGMP_OTHER, "valid checksums: got %s",
		     hbus_pkt_drop_name(p.drop));

	cr_assert_eq(hbus_build_igmpv3_report(f, sizeof(f), &me, 7, gs, 3), -EINVAL);
	cr_assert_eq(hbus_build_igmpv3_report(f, sizeof(f), &me, 4, gs, 0), -EINVAL);
	cr_assert_eq(hbus_build_igmpv3_report(f, (size_t)len - 1, &me, 4, gs, 3), -ENOSPC);
}

/* ---------------------------------------------------------------- ARP */

Test(pkt_build, arp_request_and_reply)
{
	uint8_t f[128], r[128];
	struct hbus_pkt p, q;
	size_t len = mk_arp(f, 1, PEER_IP, OUR_IP);

	cr_assert_eq(parse(f, len, &p), HBUS_PKT_ARP_REQUEST);
	cr_assert_eq(p.arp_spa, PEER_IP);
	cr_assert_eq(p.arp_tpa, OUR_IP);
	cr_assert_eq(memcmp(p.arp_sha, peer_mac, 6), 0);

	int rlen = hbus_build_arp_reply(r, sizeof(r), &me, &p);
	cr_assert_eq(rlen, 60);
	cr_assert_eq(memcmp(r, peer_mac, 6), 0, "back to the requester");
	cr_assert_eq(memcmp(r + 6, me.mac, 6), 0);
	cr_assert_eq(be16(r + 12), 0x0806);
	const uint8_t *a = r + 14;
	cr_assert_eq(be16(a + 6), 2, "opcode reply");
	cr_assert_eq(memcmp(a + 8, me.mac, 6), 0);
	cr_assert_eq(be32(a + 14), OUR_IP);
	cr_assert_eq(memcmp(a + 18, peer_mac, 6), 0);
	cr_assert_eq(be32(a + 24), PEER_IP);
	/* the peer parses it back as a well-formed ARP reply */
	struct hbus_pkt_cfg peer;
	hbus_pkt_cfg_init(&peer, PEER_IP, 24, NULL);
	cr_assert_eq(hbus_pkt_parse(r, (uint32_t)rlen, &peer, &q), HBUS_PKT_DROP);
	cr_assert_eq(q.drop, HBUS_PKT_DROP_ARP_OTHER);
	cr_assert_eq(q.arp_spa, OUR_IP);

	/* a tagged request gets a tagged reply on the same VLAN */
	uint8_t t[128];
	memcpy(t, f, 12);
	put16(t + 12, 0x8100);
	put16(t + 14, 7);
	memcpy(t + 16, f + 12, len - 12);
	cr_assert_eq(parse(t, len + 4, &p), HBUS_PKT_ARP_REQUEST);
	rlen = hbus_build_arp_reply(r, sizeof(r), &me, &p);
	cr_assert_eq(rlen, 60, "18 + 28 bytes, padded to 60");
	cr_assert_eq(be16(r + 12), 0x8100);
	cr_assert_eq(be16(r + 14), 7);
	cr_assert_eq(be16(r + 18 + 6), 2);

	p.verdict = HBUS_PKT_UDP;
	cr_assert_eq(hbus_build_arp_reply(r, sizeof(r), &me, &p), -EINVAL);
}

/* ----------------------------------------------------- UDP builder */

Test(pkt_build, udp_builder_checksums_and_parse_back)
{
	static uint8_t f[2048];
	uint8_t payload[1000];
	for (unsigned i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);

	for (unsigned n = 0; n < sizeof(payload); n += 37) {
		struct hbus_udp_spec s = {
			.src_mac = { 2, 0, 0, 0, 0, 7 }, .src_ip = PEER_IP, .dst_ip = GROUP_A,
			.src_port = 1234, .dst_port = 4321, .vlan_present = n % 2, .vlan_tci = 9,
			.ip_id = (uint16_t)n,
		};
		hbus_mcast_mac(GROUP_A, s.dst_mac);
		int len = hbus_build_udp(f, sizeof(f), &s, payload, n);
		size_t l3 = s.vlan_present ? 18 : 14;
		cr_assert_eq((size_t)len, n + l3 + 28 < 60 ? 60 : n + l3 + 28);
		cr_assert_eq(ref_csum(f + l3, 20, 0), 0, "IP checksum");
		cr_assert_eq(ref_csum(f + l3 + 20, 8 + n, ref_pseudo(PEER_IP, GROUP_A, (uint16_t)(8 + n))),
			     0, "UDP checksum");
		struct hbus_pkt p;
		cr_assert_eq(parse(f, (size_t)len, &p), HBUS_PKT_UDP);
		cr_assert_eq(p.payload_len, n);
		cr_assert_eq(memcmp(p.payload, payload, n), 0);
		cr_assert_eq(p.src_port, 1234);
		cr_assert_eq(p.dst_port, 4321);
		cr_assert_eq(p.vlan_present, s.vlan_present);
		cr_assert_eq(hbus_udp_payload_off(&s), l3 + 28);
	}

	/* payload already in place (payload == NULL) */
	struct hbus_udp_spec s = { .src_ip = PEER_IP, .dst_ip = OUR_IP, .no_udp_csum = 1 };
	memcpy(f + hbus_udp_payload_off(&s), "inplace", 7);
	int len = hbus_build_udp(f, sizeof(f), &s, NULL, 7);
	struct hbus_pkt p;
	cr_assert_eq(parse(f, (size_t)len, &p), HBUS_PKT_UDP);
	cr_assert_eq(memcmp(p.payload, "inplace", 7), 0);
	cr_assert_eq(be16(f + 40), 0);
	cr_assert_eq(hbus_build_udp(f, 59, &s, NULL, 7), -ENOSPC);
	cr_assert_eq(hbus_build_udp(f, sizeof(f), &s, NULL, 65508), -EINVAL);
}

Test(pkt_build, multicast_mac_mapping)
{
	uint8_t mac[6];
	static const uint8_t a[6] = { 0x01, 0x00, 0x5e, 0x7f, 0x01, 0x02 };
	static const uint8_t b[6] = { 0x01, 0x00, 0x5e, 0x00, 0x01, 0x02 };
	hbus_mcast_mac(IP(239, 255, 1, 2), mac);
	cr_assert_eq(memcmp(mac, a, 6), 0);
	hbus_mcast_mac(IP(224, 128, 1, 2), mac); /* bit 23 is not mapped */
	cr_assert_eq(memcmp(mac, b, 6), 0);
}

