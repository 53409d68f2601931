/*
 * pkt_build.h - build the few frames the dataplane sends (ARP replies, IGMP
 * membership reports) and UDP frames for tests and benchmarks.
 *
 * Every builder writes one complete Ethernet frame (without FCS) into the
 * caller's buffer, with correct checksums, padded with zeros to the 60-byte
 * Ethernet minimum, and returns its length, or -EINVAL (bad argument) /
 * -ENOSPC (cap too small).  Nothing is allocated.  Addresses are host order.
 */
#ifndef HBUS_PKT_BUILD_H
#define HBUS_PKT_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "pkt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Who we are on one port (and VLAN): source of the frames we send. */
struct hbus_build_link {
	uint8_t mac[6];
	uint8_t vlan_present; /* tag frames with vlan_tci */
	uint16_t vlan_tci;
	uint32_t ip;
};

/* 01:00:5e + the low 23 bits of the group (RFC 1112 section 6.4). */
void hbus_mcast_mac(uint32_t group, uint8_t mac[6]);

/* Reply to a request that hbus_pkt_parse() classified as
 * HBUS_PKT_ARP_REQUEST (req->arp_sha must still point into its frame).
 * The reply goes back on the request's VLAN, whatever me->vlan says. */
int hbus_build_arp_reply(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			 const struct hbus_pkt *req);

/* IGMPv2 (RFC 2236): report to the group, leave to 224.0.0.2.  IP TTL 1,
 * TOS 0xc0 and the router-alert option, as the RFC asks. */
int hbus_build_igmpv2_report(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			     uint32_t group);
int hbus_build_igmpv2_leave(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			    uint32_t group);

/* IGMPv3 group record types (RFC 3376 4.2.12).  Any-source joins use
 * CHANGE_TO_EXCLUDE (join), CHANGE_TO_INCLUDE (leave) and MODE_IS_EXCLUDE
 * (answer to a query), all with no sources. */
enum hbus_igmpv3_record {
	HBUS_IGMPV3_MODE_IS_INCLUDE   = 1,
	HBUS_IGMPV3_MODE_IS_EXCLUDE   = 2,
	HBUS_IGMPV3_CHANGE_TO_INCLUDE = 3,
	HBUS_IGMPV3_CHANGE_TO_EXCLUDE = 4,
	HBUS_IGMPV3_ALLOW_NEW_SOURCES = 5,
	HBUS_IGMPV3_BLOCK_OLD_SOURCES = 6,
};

/* An IGMPv3 report to 224.0.0.22 with one source-less record of record_type
 * per group (n_groups >= 1; a 1500-byte MTU holds 183 records). */
int hbus_build_igmpv3_report(uint8_t *buf, size_t cap, const struct hbus_build_link *me,
			     unsigned record_type, const uint32_t *groups, unsigned n_groups);

struct hbus_udp_spec {
	uint8_t src_mac[6];
	uint8_t dst_mac[6];   /* hbus_mcast_mac() for a group */
	uint8_t vlan_present;
	uint8_t tos;
	uint8_t ttl;          /* 0 = 64 */
	uint8_t no_udp_csum;  /* send checksum 0 (allowed on IPv4) */
	uint16_t vlan_tci;
	uint16_t ip_id;
	uint32_t src_ip, dst_ip;
	uint16_t src_port, dst_port;
};

/* Where the UDP payload starts in a frame built from s (42, or 46 tagged). */
size_t hbus_udp_payload_off(const struct hbus_udp_spec *s);

/* A UDP/IPv4/Ethernet frame carrying payload[0..len) (len <= 65507).
 * payload == NULL: the payload is already in place at
 * buf + hbus_udp_payload_off(s), e.g. a wire frame encoded there. */
int hbus_build_udp(uint8_t *buf, size_t cap, const struct hbus_udp_spec *s,
		   const void *payload, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* HBUS_PKT_BUILD_H */
