/* dp_config.c - see dp_config.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_config.h"
#include "dp_pipe.h"

void dp_config_usage(const char *prog)
{
	printf("usage: %s <EAL args> -- --bus NAME --ip ADDR/PREFIX [options]\n"
	       "  --bus NAME          bus to serve (hbusd --bus)\n"
	       "  --ip ADDR/PREFIX    our IPv4 address on the port (answers ARP for it)\n"
	       "  --port N            DPDK port id (default 0)\n"
	       "  --hbus-port UDP     destination port of hbus-format frames (default %u);\n"
	       "                      other UDP ports are raw datagrams routed by `hbus map-udp`\n"
	       "  --idle spin|backoff worker idle strategy (default spin)\n"
	       "  --exclusive-producer each worker is the only producer of the queues it feeds\n"
	       "                      (no claim CAS); a queue another writer holds is not fed\n"
	       "                      by that worker (drop_queue_locked): for workers feeding\n"
	       "                      disjoint queues\n"
	       "  --igmp 2|3          IGMP version of our reports (default: 3, 2 after a v1/v2 query)\n"
	       "  --run-dir DIR       hbusd socket directory (default $HBUS_RUN_DIR or /run/hbus)\n"
	       "  --shm-dir DIR       shared-memory base (hbusd --shm-dir; default hugetlbfs or /dev/shm)\n"
	       "  --name NAME         counters file <bus dir>/NAME.counters (default dataplane)\n"
	       "  --rx-desc N         RX descriptors per queue (default 1024)\n"
	       "  --tx-desc N         TX descriptors per queue (default 512)\n"
	       "  --mbufs N           mbuf pool size (default: computed from queues)\n",
	       prog, DP_DEFAULT_HBUS_PORT);
}

static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_ip_prefix(const char *s, struct dp_config *c)
{
	char buf[16];
	const char *slash = strchr(s, '/');
	unsigned long prefix;
	struct in_addr a;

	if (!slash || (size_t)(slash - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (inet_pton(AF_INET, buf, &a) != 1 || parse_uint(slash + 1, 32, &prefix) != 0)
		return -EINVAL;
	c->ip = ntohl(a.s_addr);
	c->prefix = (unsigned)prefix;
	if (c->ip == 0 || (c->ip >> 28) >= 0xe) /* 0.0.0.0, multicast, class E */
		return -EINVAL;
	snprintf(c->ip_str, sizeof(c->ip_str), "%.15s/%u", buf, (unsigned)prefix & 63u);
	return 0;
}

static int valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n > 0 && n <= max && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

int dp_config_parse(int argc, char **argv, struct dp_config *c, char *err, size_t cap)
{
	int i, have_ip = 0;

	memset(c, 0, sizeof(*c));
	c->hbus_port = DP_DEFAULT_HBUS_PORT;
	c->idle = DP_IDLE_SPIN;
	c->name = "dataplane";
	c->rx_desc = 1024;
	c->tx_desc = 512;
	err[0] = '\0';

	for (i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = NULL;
		char name[32];
		const char *eq = strchr(opt, '=');
		unsigned long v;

		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			dp_config_usage(argv[0]);
			return 1;
		}
		if (!strcmp(opt, "--exclusive-producer")) { /* a flag: no value */
			c->exclusive_producer = 1;
			continue;
		}
		if (strncmp(opt, "--", 2) != 0)
			return fail(err, cap, "unexpected argument '%s' (see --help)", opt);
		/* --opt=value or --opt value */
		if (eq) {
			if ((size_t)(eq - opt) >= sizeof(name))
				return fail(err, cap, "unknown option '%s' (see --help)", opt);
			memcpy(name, opt, (size_t)(eq - opt));
			name[eq - opt] = '\0';
			val = eq + 1;
		} else {
			snprintf(name, sizeof(name), "%s", opt);
			if (i + 1 >= argc)
				return fail(err, cap, "option %s needs a value (see --help)", opt);
			val = argv[++i];
		}

		if (!strcmp(name, "--bus")) {
			if (!valid_name(val, 64))
				return fail(err, cap, "--bus: '%s' is not a bus name (1-64 chars, no '/')", val);
			c->bus = val;
		} else if (!strcmp(name, "--ip")) {
			if (parse_ip_prefix(val, c) != 0)
				return fail(err, cap, "--ip: '%s' is not a unicast ADDR/PREFIX, e.g. 10.0.0.2/24", val);
			have_ip = 1;
		} else if (!strcmp(name, "--port")) {
			if (parse_uint(val, 65535, &v) != 0)
				return fail(err, cap, "--port: '%s' is not a port id", val);
			c->port_id = (uint16_t)v;
		} else if (!strcmp(name, "--hbus-port")) {
			if (parse_uint(val, 65535, &v) != 0 || v == 0)
				return fail(err, cap, "--hbus-port: '%s' is not a UDP port (1-65535)", val);
			c->hbus_port = (uint16_t)v;
		} else if (!strcmp(name, "--idle")) {
			if (!strcmp(val, "spin"))
				c->idle = DP_IDLE_SPIN;
			else if (!strcmp(val, "backoff"))
				c->idle = DP_IDLE_BACKOFF;
			else
				return fail(err, cap, "--idle: '%s' is not spin or backoff", val);
		} else if (!strcmp(name, "--igmp")) {
			if (parse_uint(val, 3, &v) != 0 || v < 2)
				return fail(err, cap, "--igmp: '%s' is not 2 or 3", val);
			c->igmp_version = (int)v;
		} else if (!strcmp(name, "--run-dir")) {
			c->run_dir = val;
		} else if (!strcmp(name, "--shm-dir")) {
			c->shm_dir = val;
		} else if (!strcmp(name, "--name")) {
			if (!valid_name(val, 48))
				return fail(err, cap, "--name: '%s' is not a file name (1-48 chars, no '/')", val);
			c->name = val;
		} else if (!strcmp(name, "--rx-desc") || !strcmp(name, "--tx-desc")) {
			if (parse_uint(val, 32768, &v) != 0 || v < 64)
				return fail(err, cap, "%s: '%s' is not a descriptor count (64-32768)", name, val);
			*(name[2] == 'r' ? &c->rx_desc : &c->tx_desc) = (unsigned)v;
		} else if (!strcmp(name, "--mbufs")) {
			if (parse_uint(val, 1u << 24, &v) != 0 || v < 1024)
				return fail(err, cap, "--mbufs: '%s' is not a pool size (1024-16M)", val);
			c->mbufs = (unsigned)v;
		} else {
			return fail(err, cap, "unknown option '%s' (see --help)", name);
		}
	}
	if (!c->bus)
		return fail(err, cap, "--bus NAME is required (see --help)");
	if (!have_ip)
		return fail(err, cap, "--ip ADDR/PREFIX is required (see --help)");
	return 0;
}
