/*
 * fuzz_pkt.c - libFuzzer target: hbus_pkt_parse on arbitrary frames.
 * Properties: the verdict and drop reason agree; the fast path and the
 * careful parser classify alike (with and without checksum hints); every
 * view lies inside the frame; an accepted ARP request yields a reply that
 * parses back as a well-formed reply; an accepted UDP datagram, rebuilt by
 * the UDP builder from the parsed fields, parses back to the same fields
 * and payload.
 * The configuration matches the seed corpus (gen_corpus.py): we are
 * 10.0.0.1/24 and joined 239.1.1.1 and 239.2.2.2.
 */
#include <stdlib.h>
#include <string.h>

#include "pkt.h"
#include "pkt_build.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static struct hbus_mcast_set groups;
static struct hbus_pkt_cfg cfg;
static const struct hbus_build_link me = { .mac = { 2, 0, 0, 0, 0, 1 }, .ip = 0x0a000001u };
static uint8_t out[70000];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	hbus_mcast_set_init(&groups);
	hbus_mcast_set_add(&groups, 0xef010101u);
	hbus_mcast_set_add(&groups, 0xef020202u);
	hbus_pkt_cfg_init(&cfg, me.ip, 24, &groups);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hbus_pkt p, q;
	if (size > UINT32_MAX)
		return 0;
	int v = hbus_pkt_parse(data, (uint32_t)size, &cfg, &p);

	CHECK(v >= HBUS_PKT_DROP && v <= HBUS_PKT_IGMP_QUERY && v == p.verdict);
	CHECK((v == HBUS_PKT_DROP) == (p.drop != HBUS_PKT_DROP_NONE));
	CHECK(p.drop < HBUS_PKT_DROP__COUNT);
	CHECK(strcmp(hbus_pkt_drop_name(p.drop), "unknown") != 0);

	/* The inline fast path accepts only what the careful parser accepts,
	 * with the same fields (and the same bytes: both clear the struct). */
	for (unsigned h = 0; h < 4; h++) {
		struct hbus_pkt a, b;
		int va = hbus_pkt_parse_hint(data, (uint32_t)size, &cfg, h, &a);
		int vb = hbus_pkt_parse_careful(data, (uint32_t)size, &cfg, h, &b);
		CHECK(va == vb && memcmp(&a, &b, sizeof(a)) == 0);
	}

	if (v == HBUS_PKT_UDP) {
		CHECK(p.payload >= data && p.payload + p.payload_len <= data + size);
		struct hbus_udp_spec s = {
			.src_ip = p.src_ip, .dst_ip = p.dst_ip, .src_port = p.src_port,
			.dst_port = p.dst_port, .vlan_present = p.vlan_present, .vlan_tci = p.vlan_tci,
		};
		int len = hbus_build_udp(out, sizeof(out), &s, p.payload, p.payload_len);
		CHECK(len > 0);
		CHECK(hbus_pkt_parse(out, (uint32_t)len, &cfg, &q) == HBUS_PKT_UDP);
		CHECK(q.src_ip == p.src_ip && q.dst_ip == p.dst_ip);
		CHECK(q.src_port == p.src_port && q.dst_port == p.dst_port);
		CHECK(q.vlan_present == p.vlan_present && q.vlan_tci == p.vlan_tci);
		CHECK(q.payload_len == p.payload_len);
		CHECK(memcmp(q.payload, p.payload, p.payload_len) == 0);
	} else if (v == HBUS_PKT_ARP_REQUEST) {
		CHECK(p.arp_sha >= data && p.arp_sha + 6 <= data + size);
		int len = hbus_build_arp_reply(out, sizeof(out), &me, &p);
		CHECK(len >= 60);
		struct hbus_pkt_cfg peer;
		hbus_pkt_cfg_init(&peer, p.arp_spa, 32, NULL);
		CHECK(hbus_pkt_parse(out, (uint32_t)len, &peer, &q) == HBUS_PKT_DROP);
		CHECK(q.drop == HBUS_PKT_DROP_ARP_OTHER);
		CHECK(q.arp_spa == me.ip && q.arp_tpa == p.arp_spa);
		CHECK(memcmp(q.arp_sha, me.mac, 6) == 0);
		CHECK(q.vlan_present == p.vlan_present && q.vlan_tci == p.vlan_tci);
	} else if (v == HBUS_PKT_IGMP_QUERY) {
		CHECK(p.igmp_version >= 1 && p.igmp_version <= 3);
		CHECK(p.igmp_group == 0 || hbus_ipv4_is_multicast(p.igmp_group));
	}
	return 0;
}
