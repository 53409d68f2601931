/*
 * test_pkt.c - the dataplane's frame parser, without DPDK: checksums against
 * an independent implementation, every accepted kind of frame, every drop
 * reason from a crafted frame, IGMP query versions, the multicast set, and
 * a mutation property test (run it under -Dsanitize=true).
 */
#include "pkt_testutil.h"

/* ---------------------------------------------------------- checksums */

TestSuite(pkt, .init = setup);

/* Reproducible bytes for the checksum tests (an LCG: no libc state). */
static void fill_pseudo_random(uint8_t *buf, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
}

Test(pkt, csum_matches_reference_at_every_length_and_alignment)
{
	static uint8_t buf[600];

	fill_pseudo_random(buf, sizeof(buf), 12345);
	for (size_t align = 0; align < 8; align++) {
		for (size_t n = 0; n <= 520; n++) {
			uint16_t lib = hbus_csum_fold(hbus_csum_partial(buf + align, n, 0));
			uint8_t b[2];
			memcpy(b, &lib, 2);
			cr_assert_eq(be16(b), ref_csum(buf + align, n, 0), "align %zu len %zu", align, n);
		}
	}
	/* all-0xff data: the one's-complement "negative zero" corner */
	memset(buf, 0xff, 64);
	uint16_t lib = hbus_csum_fold(hbus_csum_partial(buf, 64, 0));
	cr_assert_eq(lib, ref_csum(buf, 64, 0));
	/* chaining even-length pieces equals one pass */
	uint32_t s = hbus_csum_partial(buf + 100, 36, 0);
	s = hbus_csum_partial(buf + 136, 101, s);
	cr_assert_eq(hbus_csum_fold(s), hbus_csum_fold(hbus_csum_partial(buf + 100, 137, 0)));
}

/* ------------------------------------------------------------ accepted */

Test(pkt, udp_unicast)
{
	uint8_t f[128];
	struct hbus_pkt p;
	size_t len = mk_udp(f, PEER_IP, OUR_IP, "hello", 5);

	cr_assert_eq(parse(f, len, &p), HBUS_PKT_UDP);
	cr_assert_eq(p.src_ip, PEER_IP);
	cr_assert_eq(p.dst_ip, OUR_IP);
	cr_assert_eq(p.src_port, 40000);
	cr_assert_eq(p.dst_port, 5555);
	cr_assert_eq(p.payload_len, 5);
	cr_assert_eq(p.payload, f + 42);
	cr_assert_eq(memcmp(p.payload, "hello", 5), 0);
	cr_assert_eq(p.dst_kind, HBUS_PKT_DST_UNICAST);
	cr_assert_eq(p.vlan_present, 0);
	cr_assert_eq(p.l3_off, 14);
	cr_assert_eq(p.l4_off, 34);
}

Test(pkt, udp_multicast_joined_and_all_hosts)
{
	uint8_t f[128];
	struct hbus_pkt p;

	cr_assert_eq(parse(f, mk_udp(f, PEER_IP, GROUP_B, "x", 1), &p), HBUS_PKT_UDP);
	cr_assert_eq(p.dst_kind, HBUS_PKT_DST_MULTICAST);
	cr_assert_eq(parse(f, mk_udp(f, PEER_IP, HBUS_IPV4_ALL_HOSTS, "x", 1), &p), HBUS_PKT_UDP);
	cr_assert_eq(parse(f, mk_udp(f, PEER_IP, IP(239, 1, 1, 2), "x", 1), &p), HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_NOT_FOR_US);
}

Test(pkt, udp_broadcast)
{
	uint8_t f[128];
	struct hbus_pkt p;

	cr_assert_eq(parse(f, mk_udp(f, PEER_IP, 0xffffffffu, "x", 1), &p), HBUS_PKT_UDP);
	cr_assert_eq(p.dst_kind, HBUS_PKT_DST_BROADCAST);
	cr_assert_eq(parse(f, mk_udp(f, PEER_IP, IP(10, 0, 0, 255), "x", 1), &p), HBUS_PKT_UDP);
	cr_assert_eq(p.dst_kind, HBUS_PKT_DST_BROADCAST);
	cr_assert_eq(parse(f, mk_udp(f, PEER_IP, IP(10, 0, 1, 255), "x", 1), &p), HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_NOT_FOR_US);
}

Test(pkt, vlan_tagged)
{
	uint8_t f[128], t[132];
	struct hbus_pkt p;
	size_t len = mk_udp(f, PEER_IP, OUR_IP, "vlan!", 5);

	memcpy(t, f, 12);
	put16(t + 12, 0x8100);
	put16(t + 14, 0x6000 | 42); /* PCP 3, VID 42 */
	memcpy(t + 16, f + 12, len - 12);
	cr_assert_eq(parse(t, len + 4, &p), HBUS_PKT_UDP);
	cr_assert_eq(p.vlan_present, 1);
	cr_assert_eq(p.vlan_tci & 0xfff, 42);
	cr_assert_eq(p.vlan_tci >> 13, 3);
	cr_assert_eq(p.l3_off, 18);
	cr_assert_eq(memcmp(p.payload, "vlan!", 5), 0);
}

Test(pkt, padding_and_short_udp_length)
{
	uint8_t f[128];
	struct hbus_pkt p;
	size_t len = mk_udp(f, PEER_IP, OUR_IP, "ab", 2);

	/* Ethernet padding after the IP datagram is ignored */
	memset(f + len, 0xcc, 60 - len);
	cr_assert_eq(parse(f, 60, &p), HBUS_PKT_UDP);
	cr_assert_eq(p.payload_len, 2);

	/* UDP length shorter than the IP payload: the rest is not payload */
	len = mk_udp(f, PEER_IP, OUR_IP, "abcdef", 6);
	put16(f + 38, 8 + 2);
	put16(f + 40, 0); /* no checksum */
	cr_assert_eq(parse(f, len, &p), HBUS_PKT_UDP);
	cr_assert_eq(p.payload_len, 2);
}

Test(pkt, udp_checksum_zero_and_ffff)
{
	uint8_t f[128], payload[16] = "0123456789ab";
	struct hbus_pkt p;
	size_t len = mk_udp(f, PEER_IP, OUR_IP, payload, 12);

	/* checksum 0 means "none" on IPv4: corrupt payload still accepted */
	put16(f + 40, 0);
	f[45] ^= 1;
	cr_assert_eq(parse(f, len, &p), HBUS_PKT_UDP);

	/* make the true checksum 0 so that it travels as 0xffff */
	put16(payload + 10, 0);
	mk_udp(f, PEER_IP, OUR_IP, payload, 12);
	uint16_t c = be16(f + 40);
	put16(payload + 10, c);
	len = mk_udp(f, PEER_IP, OUR_IP, payload, 12);
	cr_assert_eq(be16(f + 40), 0xffff);
	cr_assert_eq(parse(f, len, &p), HBUS_PKT_UDP);

	/* the builder does the same */
	struct hbus_udp_spec s = { .src_ip = PEER_IP, .dst_ip = OUR_IP,
				   .src_port = 40000, .dst_port = 5555 };
	int blen = hbus_build_udp(f, sizeof(f), &s, payload, 12);
	cr_assert_gt(blen, 0);
	cr_assert_eq(be16(f + 40), 0xffff);
	cr_assert_eq(parse(f, (size_t)blen, &p), HBUS_PKT_UDP);
}

Test(pkt, offload_hints_skip_checksums)
{
	uint8_t f[128];
	struct hbus_pkt p;
	size_t len = mk_udp(f, PEER_IP, OUR_IP, "hint", 4);

	f[14 + 10] ^= 0xff; /* IP checksum */
	f[40] ^= 0xff;      /* UDP checksum */
	cr_assert_eq(hbus_pkt_parse((const uint8_t *)f, (uint32_t)len, &cfg, &p), HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_BAD_IP_CHECKSUM);
	cr_assert_eq(hbus_pkt_parse_hint(f, (uint32_t)len, &cfg, HBUS_PKT_HINT_IP_CSUM_GOOD, &p),
		     HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_BAD_UDP_CHECKSUM);
	cr_assert_eq(hbus_pkt_parse_hint(f, (uint32_t)len, &cfg,
					 HBUS_PKT_HINT_IP_CSUM_GOOD | HBUS_PKT_HINT_L4_CSUM_GOOD, &p),
		     HBUS_PKT_UDP);
}

Test(pkt, bad_arguments)
{
	struct hbus_pkt p;
	cr_assert_eq(hbus_pkt_parse(NULL, 0, &cfg, &p), HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_RUNT);
	cr_assert_eq(hbus_pkt_parse((const uint8_t *)"", 0, NULL, &p), -EINVAL);
	cr_assert_eq(hbus_pkt_parse((const uint8_t *)"", 0, &cfg, NULL), -EINVAL);
}

/* ------------------------------------------------------ drop reasons */

static unsigned seen[HBUS_PKT_DROP__COUNT];

static void expect_drop(const uint8_t *f, size_t len, enum hbus_pkt_drop why, const char *what)
{
	struct hbus_pkt p;
	cr_assert_eq(parse(f, len, &p), HBUS_PKT_DROP, "%s: not dropped", what);
	cr_assert_eq(p.drop, why, "%s: dropped as %s, want %s", what, hbus_pkt_drop_name(p.drop),
		     hbus_pkt_drop_name(why));
	seen[why]++;
}

Test(pkt, every_drop_reason)
{
	uint8_t f[256];
	size_t len;
	const size_t ip = 14, udp = 34;

	memset(seen, 0, sizeof(seen));

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	expect_drop(f, 13, HBUS_PKT_DROP_RUNT, "13-byte frame");
	expect_drop(f, 14 + 19, HBUS_PKT_DROP_RUNT, "19-byte IPv4 header");
	put16(f + 12, 0x8100);
	expect_drop(f, 17, HBUS_PKT_DROP_RUNT, "cut VLAN tag");
	mk_arp(f, 1, PEER_IP, OUR_IP);
	expect_drop(f, 14 + 27, HBUS_PKT_DROP_RUNT, "27-byte ARP");

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	put16(f + 12, 0x86dd);
	expect_drop(f, len, HBUS_PKT_DROP_UNKNOWN_ETHERTYPE, "IPv6");
	put16(f + 12, 0x8100);
	put16(f + 16, 0x8100);
	expect_drop(f, len, HBUS_PKT_DROP_UNKNOWN_ETHERTYPE, "two VLAN tags");

	len = mk_arp(f, 1, PEER_IP, OUR_IP);
	put16(f + 14, 6);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_ARP, "ARP htype 6");
	len = mk_arp(f, 3, PEER_IP, OUR_IP);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_ARP, "ARP opcode 3");
	len = mk_arp(f, 1, PEER_IP, IP(10, 0, 0, 99));
	expect_drop(f, len, HBUS_PKT_DROP_ARP_OTHER, "ARP request for another host");
	len = mk_arp(f, 2, PEER_IP, OUR_IP);
	expect_drop(f, len, HBUS_PKT_DROP_ARP_OTHER, "ARP reply");

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	f[ip] = 0x65;
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IP_VERSION, "version 6");
	f[ip] = 0x44;
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IHL, "IHL 4");
	f[ip] = 0x4f;
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IHL, "IHL 15 past the frame");

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	put16(f + ip + 2, 19);
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IP_LENGTH, "total length < header");
	put16(f + ip + 2, (uint16_t)(len - ip + 1));
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IP_LENGTH, "total length > frame");

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	f[ip + 8] = 63; /* TTL changed, checksum not */
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IP_CHECKSUM, "stale IP checksum");

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	put16(f + ip + 6, 0x2000);
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_FRAGMENT, "MF");
	put16(f + ip + 6, 0x0001);
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_FRAGMENT, "offset 8");
	put16(f + ip + 6, 0x8000); /* the reserved bit is not a fragment */
	fix_ip(f, ip);
	struct hbus_pkt p;
	cr_assert_eq(parse(f, len, &p), HBUS_PKT_UDP);

	len = mk_udp(f, IP(224, 0, 0, 5), OUR_IP, "p", 1);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_SRC_IP, "multicast source");
	len = mk_udp(f, 0xffffffffu, OUR_IP, "p", 1);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_SRC_IP, "broadcast source");

	len = mk_udp(f, PEER_IP, IP(10, 0, 0, 2), "p", 1);
	expect_drop(f, len, HBUS_PKT_DROP_NOT_FOR_US, "other unicast");
	len = mk_udp(f, PEER_IP, IP(239, 9, 9, 9), "p", 1);
	expect_drop(f, len, HBUS_PKT_DROP_NOT_FOR_US, "group not joined");
	len = mk_udp(f, PEER_IP, 0, "p", 1);
	expect_drop(f, len, HBUS_PKT_DROP_NOT_FOR_US, "dst 0.0.0.0");

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	f[ip + 9] = 6;
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_UNSUPPORTED_L4, "TCP");

	len = mk_udp(f, PEER_IP, OUR_IP, "p", 1);
	put16(f + udp + 4, 7);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_UDP_LENGTH, "UDP length 7");
	put16(f + udp + 4, 10);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_UDP_LENGTH, "UDP length past IP payload");
	put16(f + ip + 2, 20 + 4);
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_UDP_LENGTH, "IP payload shorter than a UDP header");

	len = mk_udp(f, PEER_IP, OUR_IP, "payload", 7);
	f[udp + 8] ^= 0x20;
	expect_drop(f, len, HBUS_PKT_DROP_BAD_UDP_CHECKSUM, "payload bit flip");
	f[udp + 8] ^= 0x20;
	f[ip + 15] ^= 1; /* source address: covered by the pseudo-header only */
	fix_ip(f, ip);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_UDP_CHECKSUM, "pseudo-header mismatch");

	len = mk_igmp(f, HBUS_IPV4_ALL_HOSTS, 0x11, 100, 0, 8);
	f[ip + 20 + 7] ^= 1;
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IGMP, "IGMP checksum");
	len = mk_igmp(f, HBUS_IPV4_ALL_HOSTS, 0x11, 100, 0, 4);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IGMP, "4-byte IGMP");
	len = mk_igmp(f, HBUS_IPV4_ALL_HOSTS, 0x11, 100, 0, 10);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IGMP, "10-byte query");
	len = mk_igmp(f, HBUS_IPV4_ALL_HOSTS, 0x11, 100, IP(10, 1, 1, 1), 8);
	expect_drop(f, len, HBUS_PKT_DROP_BAD_IGMP, "query for a unicast group");
	len = mk_igmp(f, GROUP_A, 0x16, 0, GROUP_A, 8);
	expect_drop(f, len, HBUS_PKT_DROP_IGMP_OTHER, "another host's report");

	for (unsigned r = 1; r < HBUS_PKT_DROP__COUNT; r++)
		cr_expect_gt(seen[r], 0, "drop reason %s never produced", hbus_pkt_drop_name(r));
}

Test(pkt, drop_names_are_unique)
{
	for (unsigned a = 0; a < HBUS_PKT_DROP__COUNT; a++) {
		cr_assert_not_null(hbus_pkt_drop_name(a));
		cr_assert_str_neq(hbus_pkt_drop_name(a), "unknown");
		for (unsigned b = 0; b < a; b++)
			cr_assert_str_neq(hbus_pkt_drop_name(a), hbus_pkt_drop_name(b));
	}
	cr_assert_str_eq(hbus_pkt_drop_name(HBUS_PKT_DROP_FRAGMENT), "fragment");
	cr_assert_str_eq(hbus_pkt_drop_name(HBUS_PKT_DROP__COUNT), "unknown");
}

/* --------------------------------------------------------------- IGMP */

Test(pkt, igmp_query_versions)
{
	uint8_t f[128];
	struct hbus_pkt p;

	cr_assert_eq(parse(f, mk_igmp(f, HBUS_IPV4_ALL_HOSTS, 0x11, 0, 0, 8), &p), HBUS_PKT_IGMP_QUERY);
	cr_assert_eq(p.igmp_version, 1);
	cr_assert_eq(p.igmp_max_resp_ds, 100);
	cr_assert_eq(parse(f, mk_igmp(f, HBUS_IPV4_ALL_HOSTS, 0x11, 25, 0, 8), &p), HBUS_PKT_IGMP_QUERY);
	cr_assert_eq(p.igmp_version, 2);
	cr_assert_eq(p.igmp_max_resp_ds, 25);
	cr_assert_eq(p.igmp_group, 0);
	/* group-specific v3 query to the group, floating-point max resp code */
	cr_assert_eq(parse(f, mk_igmp(f, GROUP_A, 0x11, 0x8a, GROUP_A, 12), &p), HBUS_PKT_IGMP_QUERY);
	cr_assert_eq(p.igmp_version, 3);
	cr_assert_eq(p.igmp_max_resp_ds, (0x10u | 0xau) << 3);
	cr_assert_eq(p.igmp_group, GROUP_A);
	cr_assert_eq(p.src_ip, PEER_IP);
	/* a query for a group we did not join is not for us */
	cr_assert_eq(parse(f, mk_igmp(f, IP(239, 7, 7, 7), 0x11, 10, IP(239, 7, 7, 7), 8), &p),
		     HBUS_PKT_DROP);
	cr_assert_eq(p.drop, HBUS_PKT_DROP_NOT_FOR_US);
}

/* ------------------------------------------------------ multicast set */

Test(pkt, mcast_set)
{
	struct hbus_mcast_set s;
	hbus_mcast_set_init(&s);
	cr_assert_eq(hbus_mcast_set_add(&s, OUR_IP), -EINVAL);
	for (uint32_t i = 0; i < HBUS_MCAST_MAX; i++)
		cr_assert_eq(hbus_mcast_set_add(&s, IP(239, 0, 0, 0) + (i * 7919u) % 65536u), 0);
	cr_assert_eq(hbus_mcast_set_add(&s, IP(239, 0, 0, 0)), 0, "re-adding a member is fine");
	cr_assert_eq(hbus_mcast_set_add(&s, IP(238, 1, 1, 1)), -ENOSPC);
	cr_assert_eq(s.count, HBUS_MCAST_MAX);
	for (uint32_t i = 1; i < s.count; i++)
		cr_assert_lt(s.addr[i - 1], s.addr[i]);
	/* delete every other member; the rest are still found, the others not */
	for (uint32_t i = 0; i < HBUS_MCAST_MAX; i += 2)
		cr_assert_eq(hbus_mcast_set_del(&s, IP(239, 0, 0, 0) + (i * 7919u) % 65536u), 0);
	for (uint32_t i = 0; i < HBUS_MCAST_MAX; i++)
		cr_assert_eq(hbus_mcast_set_has(&s, IP(239, 0, 0, 0) + (i * 7919u) % 65536u), i % 2 == 1);
	cr_assert_eq(hbus_mcast_set_del(&s, IP(239, 0, 0, 0)), -ENOENT);
	cr_assert_eq(hbus_mcast_set_has(NULL, GROUP_A), false);
}

Test(pkt, cfg_broadcast)
{
	struct hbus_pkt_cfg c;
	cr_assert_eq(hbus_pkt_cfg_init(&c, IP(192, 168, 5, 9), 24, NULL), 0);
	cr_assert_eq(c.bcast, IP(192, 168, 5, 255));
	cr_assert_eq(hbus_pkt_cfg_init(&c, IP(192, 168, 5, 9), 20, NULL), 0);
	cr_assert_eq(c.bcast, IP(192, 168, 15, 255));
	cr_assert_eq(hbus_pkt_cfg_init(&c, IP(192, 168, 5, 9), 31, NULL), 0);
	cr_assert_eq(c.bcast, 0);
	cr_assert_eq(hbus_pkt_cfg_init(&c, IP(192, 168, 5, 9), 33, NULL), -EINVAL);
}

/* ------------------------------------------- mutation property test */

Test(pkt, random_mutations_never_misbehave)
{
	static uint8_t base[4][256];
	size_t blen[4];
	uint32_t gs[2] = { GROUP_A, GROUP_B };
	blen[0] = mk_udp(base[0], PEER_IP, OUR_IP, "mutate me please", 16);
	blen[1] = mk_arp(base[1], 1, PEER_IP, OUR_IP);
	blen[2] = mk_igmp(base[2], HBUS_IPV4_ALL_HOSTS, 0x11, 0x90, 0, 12);
	blen[3] = (size_t)hbus_build_igmpv3_report(base[3], 256, &me, 2, gs, 2);

	uint32_t x = 0xdeadbeef;
	unsigned verdicts[4] = { 0 };
	for (unsigned iter = 0; iter < 200000; iter++) {
		unsigned k = iter % 4;
		size_t len = blen[k];
		uint8_t *b = malloc(len);
		memcpy(b, base[k], len);
		for (unsigned m = 0; m < 1 + iter % 3; m++) {
			x ^= x << 13; x ^= x >> 17; x ^= x << 5;
			b[x % len] ^= (uint8_t)(x >> 8);
		}
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		if (x % 4 == 0)
			len = x % (len + 1);
		struct hbus_pkt p;
		int v = hbus_pkt_parse(b, (uint32_t)len, &cfg, &p);
		cr_assert(v >= 0 && v <= HBUS_PKT_IGMP_QUERY);
		cr_assert_eq(v == HBUS_PKT_DROP, p.drop != HBUS_PKT_DROP_NONE);
		cr_assert_lt(p.drop, HBUS_PKT_DROP__COUNT);
		if (v == HBUS_PKT_UDP)
			cr_assert(p.payload >= b && p.payload + p.payload_len <= b + len);
		verdicts[v]++;
		free(b);
	}
	cr_assert_gt(verdicts[HBUS_PKT_DROP], 0);
	cr_assert_gt(verdicts[HBUS_PKT_ARP_REQUEST], 0);
}

/* ------------------------------------- fast path vs careful parser */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The fast path's inline sum (whole words, then the tail taken from the
 * word that ends the buffer) against the plain 16-bit reference. */
Test(pkt, inline_sum_matches_reference_at_every_length_and_alignment)
{
	static uint8_t buf[600];

	fill_pseudo_random(buf, sizeof(buf), 777);
	for (int fill = 0; fill < 2; fill++) {
		if (fill)
			memset(buf, 0xff, sizeof(buf)); /* negative-zero corner */
		for (size_t align = 0; align < 8; align++) {
			for (uint32_t n = 8; n <= 520; n++) {
				uint16_t c = (uint16_t)~hbus_oc_fold(hbus_oc_sum(buf + align, n, 0));
				uint8_t b[2];
				memcpy(b, &c, 2);
				cr_assert_eq(be16(b), ref_csum(buf + align, n, 0), "align %zu len %u",
					     align, n);
			}
		}
	}
}
#endif

/* Recompute the UDP checksum of the datagram at l3, if its header and
 * length fit in the frame (after a mutation they may not). */
static void fix_udp(uint8_t *f, size_t l3, size_t len)
{
	uint8_t *ip = f + l3;
	size_t ihl = (ip[0] & 0xfu) * 4u;
	if (l3 + ihl + 8 > len)
		return;
	uint8_t *u = ip + ihl;
	size_t ul = be16(u + 4);
	if (ul < 8 || l3 + ihl + ul > len)
		return;
	put16(u + 6, 0);
	uint16_t c = ref_csum(u, ul, ref_pseudo(be32(ip + 12), be32(ip + 16), (uint16_t)ul));
	put16(u + 6, c ? c : 0xffff);
}

/* One frame through hbus_pkt_parse_hint (fast path first) and through the
 * careful parser alone, from exact-size heap copies: same verdict, same
 * bytes in struct hbus_pkt.  Returns 1 when the fast path accepted it. */
static int same_as_careful(const uint8_t *f, size_t len, unsigned hints)
{
	uint8_t *b = malloc(len ? len : 1);
	struct hbus_pkt p1, p2, p3;
	memcpy(b, f, len);
	int v1 = hbus_pkt_parse_hint(b, (uint32_t)len, &cfg, hints, &p1);
	int v2 = hbus_pkt_parse_careful(b, (uint32_t)len, &cfg, hints, &p2);
	int v3 = hbus_pkt_parse_fast(b, (uint32_t)len, &cfg, hints, &p3);
	free(b);
	cr_assert_eq(v1, v2);
	cr_assert_eq(memcmp(&p1, &p2, sizeof(p1)), 0, "verdict %d drop %u", v2, p2.drop);
	if (v3 < 0)
		return 0;
	cr_assert_eq(v3, v2);
	cr_assert_eq(memcmp(&p3, &p2, sizeof(p3)), 0);
	return 1;
}

Test(pkt, fast_path_agrees_with_careful_parser)
{
	static const uint32_t dsts[] = { OUR_IP, GROUP_A, GROUP_B, IP(239, 9, 9, 9),
					 HBUS_IPV4_ALL_HOSTS, IP(10, 0, 0, 255), 0xffffffffu,
					 IP(10, 0, 0, 99), 0 };
	static const uint32_t srcs[] = { PEER_IP, IP(240, 0, 0, 1), IP(224, 0, 0, 5), 0xffffffffu };
	static uint8_t f[2048], body[400];
	uint32_t x = 0x1234567u;
	unsigned fast = 0, common = 0, frames = 0;

	for (unsigned i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 31u + 7u);
	for (unsigned plen = 0; plen <= 300; plen += 1 + plen / 16) {
		for (unsigned k = 0; k < 4 * 9 * 4; k++) {
			struct hbus_udp_spec s = { .src_ip = srcs[k % 4], .dst_ip = dsts[k / 4 % 9],
						   .src_port = 40000, .dst_port = (uint16_t)(5000 + k),
						   .vlan_present = (uint8_t)(k / 36 % 2), .vlan_tci = 0x2005,
						   .no_udp_csum = (uint8_t)(k / 72 % 2) };
			int blen = hbus_build_udp(f, sizeof(f), &s, body, plen);
			size_t l3 = s.vlan_present ? 18 : 14;

			cr_assert_gt(blen, 0);
			/* Built frames: the fast path takes every one that is
			 * for us from an ordinary source. */
			int took = same_as_careful(f, (size_t)blen, 0);
			struct hbus_pkt p;
			hbus_pkt_parse_careful(f, (uint32_t)blen, &cfg, 0, &p);
			if (p.verdict == HBUS_PKT_UDP && s.src_ip == PEER_IP) {
				common++;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
				cr_assert(took, "plen %u k %u not on the fast path", plen, k);
#endif
			}
			fast += (unsigned)took;
			/* Mutants: a few bytes changed (often in the headers),
			 * checksums sometimes made right again so the checks
			 * after them are reached, length cut or padded, hints. */
			for (unsigned m = 0; m < 12; m++) {
				static uint8_t g[2100];
				size_t len = (size_t)blen;
				memcpy(g, f, len);
				for (unsigned j = 0; j < 1 + m % 3; j++) {
					x ^= x << 13; x ^= x >> 17; x ^= x << 5;
					size_t at = x % 3 ? (x >> 8) % (l3 + 28) : (x >> 8) % len;
					g[at] ^= (uint8_t)(1u << (x >> 4 & 7));
				}
				x ^= x << 13; x ^= x >> 17; x ^= x << 5;
				if (x & 1)
					fix_ip(g, l3);
				if (x & 2)
					fix_udp(g, l3, len);
				if ((x >> 2) % 4 == 0)
					len = (x >> 4) % (len + 1);
				else if ((x >> 2) % 4 == 1)
					len += (x >> 4) % 40; /* trailing bytes: leftovers */
				if (len > sizeof(g))
					len = sizeof(g);
				fast += (unsigned)same_as_careful(g, len, (x >> 8) & 3u);
				frames++;
			}
		}
	}
	cr_assert_gt(common, 1000);
	cr_assert_gt(frames, 50000);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	cr_assert_gt(fast, common);
#endif
}
