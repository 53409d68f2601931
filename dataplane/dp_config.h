/*
 * dp_config.h - hbus-dataplane's own options (after EAL's, past "--").
 * Pure C, so it is unit-tested without DPDK.
 */
#ifndef HBUS_DP_CONFIG_H
#define HBUS_DP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum dp_idle_mode {
	DP_IDLE_SPIN    = 0, /* poll without pause: lowest latency, one core per worker */
	DP_IDLE_BACKOFF = 1, /* pause -> yield -> short sleep after empty polls */
};

struct dp_config {
	const char *bus;       /* --bus NAME (required) */
	uint32_t ip;           /* --ip ADDR/PREFIX (required), host order */
	unsigned prefix;
	char ip_str[32];       /* as given, normalised "A.B.C.D/P" */
	uint16_t port_id;      /* --port N: DPDK port, default 0 */
	uint16_t hbus_port;    /* --hbus-port UDP: hbus frames, default 5900 */
	int idle;              /* --idle spin|backoff, default spin */
	int exclusive_producer; /* --exclusive-producer: workers ask for exclusive write grants */
	int igmp_version;      /* --igmp 2|3: reports we send (0 = follow the querier, v3 default) */
	const char *run_dir;   /* --run-dir DIR: hbusd socket dir (NULL = library default) */
	const char *shm_dir;   /* --shm-dir DIR: base of the bus dir for the counters file */
	const char *name;      /* --name NAME: counters file <name>.counters, default "dataplane" */
	unsigned rx_desc;      /* --rx-desc N, default 1024 */
	unsigned tx_desc;      /* --tx-desc N, default 512 */
	unsigned mbufs;        /* --mbufs N: pool size, 0 = computed */
};

/*
 * Parse argv[0..argc) (argv[0] is the program name).  Returns 0, 1 when
 * --help was asked (usage printed to stdout), or -EINVAL with a one-line
 * message in err.
 */
int dp_config_parse(int argc, char **argv, struct dp_config *c, char *err, size_t errcap);

void dp_config_usage(const char *prog);

#endif
