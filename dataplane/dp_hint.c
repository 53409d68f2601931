/* dp_hint.c - see dp_hint.h. */
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "dp_hint.h"
#include "log.h"

int dp_hint_csum_due(struct dp_hint *h, uint64_t bad, uint64_t good)
{
	if (h->csum_said || bad < DP_HINT_CSUM_MIN || bad <= good)
		return 0;
	h->csum_said = 1;
	return 1;
}

/* The interface a packet socket is bound to, into name (IF_NAMESIZE). */
static int socket_iface(int fd, char *name)
{
	struct sockaddr_ll sll;
	socklen_t len = sizeof(sll);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&sll, &len) != 0 ||
	    sll.sll_family != AF_PACKET || !if_indextoname((unsigned)sll.sll_ifindex, name))
		return -1;
	return 0;
}

/* A veth's other end: iflink is the peer's ifindex (in the peer's network
 * namespace, where the name may not resolve here).  0 = not a pair. */
static unsigned peer_ifindex(const char *iface)
{
	char path[96], buf[32];
	unsigned long idx = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/iflink", iface);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		idx = strtoul(buf, NULL, 10);
	fclose(f);
	return idx == if_nametoindex(iface) ? 0 : (unsigned)idx;
}

void dp_hint_csum_say(int pkt_fd, uint64_t bad, uint64_t good)
{
	char iface[IF_NAMESIZE] = "the port", peer[IF_NAMESIZE], where[96] = "";
	unsigned pi = 0;

	if (socket_iface(pkt_fd, iface) == 0)
		pi = peer_ifindex(iface);
	/* An ifindex from another namespace may name an unrelated interface
	 * here: a true local peer points back at us. */
	if (pi && if_indextoname(pi, peer) && peer_ifindex(peer) == if_nametoindex(iface))
		snprintf(where, sizeof(where), " (the peer of %s is %s)", iface, peer);
	else if (pi)
		snprintf(where, sizeof(where), " (the peer of %s: ifindex %u in its namespace)",
			 iface, pi);
	HBUS_WARN("%llu UDP datagrams on %s failed their UDP checksum, %llu passed "
		  "(drop_bad_udp_checksum): the sender most likely leaves UDP checksums to TX "
		  "offload, which a veth, bridge or tap never completes, so af_packet sees them "
		  "unfinished. On the sending interface run: ethtool -K <peer> tx off%s",
		  (unsigned long long)bad, iface, (unsigned long long)good, where);
}
