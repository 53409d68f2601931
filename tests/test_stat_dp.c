/*
 * test_stat_dp.c - dataplane counters in `stat`, without DPDK: the test
 * writes counters files itself (hbus_dpc_create, the dataplane's own
 * writer) with known values that satisfy the accounting identities, then
 * checks the real hbusd's stat reply ("dataplanes") and what `hbus stat`
 * makes of it: the table, --json and --prometheus.  Also: stale files
 * (writer gone), foreign files in the bus directory (garbage, a FIFO, a
 * symbolic link, a half-made .new) that hbusd must skip without blocking.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dp_counter_ids.h"
#include "hbusd_harness.h"

static struct hb_env env;
static char bus_dir[256];

static void setup(void)
{
	hb_env_init(&env, "sdp");
	hb_start(&env, NULL);
	hb_bus_dir(&env, bus_dir, sizeof(bus_dir));
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(stat_dp, .init = setup, .fini = teardown, .timeout = 60);

static unsigned id_of(const char *name)
{
	for (unsigned id = 0; id < HBUS_DPC__COUNT; id++)
		if (!strcmp(hbus_dpc_name(id), name))
			return id;
	cr_assert_fail("no counter '%s'", name);
	return 0;
}

static void set(const struct hbus_dpc_file *f, unsigned li, const char *name, uint64_t v)
{
	atomic_store(&hbus_dpc_lcore(f, li)->c[id_of(name)], v);
}

static void beat(const struct hbus_dpc_file *f)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_store(&f->hdr->heartbeat_ns, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

/*
 * A dataplane with n lcores; lcore block i (k = i + 1) has counted, as a
 * real one would: 1000k frames = 994k UDP + 2k ARP + 3k bad UDP checksum
 * + 1k runts; 994k UDP = 500k hbus frames + 490k raw + 4k unmapped;
 * 1490k messages (2 per frame + raw) = 1480k routed + 10k without route;
 * 1480k (message, queue) pairs = 1470k delivered + 10k queue full.
 */
static void make_dp(const char *name, unsigned n, struct hbus_dpc_file *f)
{
	struct hbus_dpc_info info = { .name = name, .bus = env.bus, .ip = "10.9.0.1/24",
				      .port_name = "net_null0", .port_id = 3, .hbus_udp_port = 5900,
				      .max_lcores = n, HBUS_DPC_DATAPLANE_COUNTERS };
	struct hbus_dpc_stream *s;

	cr_assert_eq(hbus_dpc_create(bus_dir, &info, f), 0);
	for (unsigned i = 0; i < n; i++) {
		uint64_t k = i + 1;

		hbus_dpc_lcore(f, i)->lcore_id = i + 1;
		hbus_dpc_lcore(f, i)->rx_queue = i;
		set(f, i, "rx_pkts", 1000 * k);
		set(f, i, "rx_bytes", 64000 * k);
		set(f, i, "arp_requests", 2 * k);
		set(f, i, "drop_bad_udp_checksum", 3 * k);
		set(f, i, "drop_runt", 1 * k);
		set(f, i, "udp_pkts", 994 * k);
		set(f, i, "hbus_frames", 500 * k);
		set(f, i, "raw_dgrams", 490 * k);
		set(f, i, "drop_no_udpmap", 4 * k);
		set(f, i, "msgs", 1490 * k);
		set(f, i, "routed", 1480 * k);
		set(f, i, "drop_no_route", 10 * k);
		set(f, i, "enqueues", 1480 * k);
		set(f, i, "delivered", 1470 * k);
		set(f, i, "drop_queue_full", 10 * k);
		set(f, i, "seq_gaps", 10 * k);
	}
	s = hbus_dpc_streams(f, 0);
	atomic_store(&s[5].stream_id, 7);
	atomic_store(&s[5].next_seq, 120);
	atomic_store(&s[5].msgs, 100);
	atomic_store(&s[5].gaps, 10);
	atomic_store(&s[5].dups, 5);
	atomic_store(&s[5].resets, 1);
	atomic_store(&s[5].used, 1);
	hbus_dpc_port(f)[HBUS_DPC_PORT_IPACKETS] = 2000;
	hbus_dpc_port(f)[HBUS_DPC_PORT_MCAST_GROUPS] = 2;
	atomic_store(&f->hdr->n_lcores, n);
	atomic_store(&f->hdr->state, HBUS_DPC_RUNNING);
	beat(f);
}

static json_t *stat_reply(void)
{
	int fd = hb_session(&env, NULL);
	json_t *r = hb_call(fd, NULL, "{s:s}", "op", "stat");

	close(fd);
	cr_assert(hb_ok(r), "stat: %s", hb_error(r));
	cr_assert(json_is_array(json_object_get(r, "dataplanes")), "no dataplanes array");
	return r;
}

static json_int_t num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	cr_assert(json_is_integer(v), "no integer '%s'", k);
	return json_integer_value(v);
}

/* The identities of dp_counter_ids.h over one counters object. */
static void check_identities(json_t *c)
{
	json_int_t parser = 0, rx = num(c, "rx_pkts");
	const char *k;
	json_t *v;

	json_object_foreach(c, k, v)
		for (unsigned d = 1; d < HBUS_PKT_DROP__COUNT; d++)
			if (!strcmp(k, hbus_dpc_name(HBUS_DPC_PARSER_DROPS + d)))
				parser += json_integer_value(v);
	cr_assert_eq(rx, num(c, "udp_pkts") + num(c, "arp_requests") + num(c, "igmp_queries") +
			     parser + num(c, "drop_multiseg"));
	cr_assert_eq(num(c, "udp_pkts"), num(c, "hbus_frames") + num(c, "raw_dgrams") +
			     num(c, "drop_no_udpmap") + num(c, "drop_no_table") +
			     num(c, "drop_frame_magic") + num(c, "drop_frame_version") +
			     num(c, "drop_frame_length"));
	cr_assert_eq(num(c, "msgs"), num(c, "routed") + num(c, "drop_no_exchange") +
			     num(c, "drop_no_route") + num(c, "drop_bad_meta"));
	cr_assert_eq(num(c, "enqueues"), num(c, "delivered") + num(c, "drop_queue_full") +
			     num(c, "drop_oversize") + num(c, "drop_no_queue") +
			     num(c, "drop_queue_fault") + num(c, "drop_queue_locked"));
}

Test(stat_dp, no_dataplane_no_entries)
{
	json_t *r = stat_reply();

	cr_assert_eq(json_array_size(json_object_get(r, "dataplanes")), 0);
	json_decref(r);
}

Test(stat_dp, reply_carries_every_counter)
{
	struct hbus_dpc_file f;
	json_t *r, *d, *t, *l, *s;

	make_dp("dp1", 2, &f);
	r = stat_reply();
	cr_assert_eq(json_array_size(json_object_get(r, "dataplanes")), 1);
	d = json_array_get(json_object_get(r, "dataplanes"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "dp1");
	cr_assert(json_is_true(json_object_get(d, "alive")));
	cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "running");
	cr_assert_eq(num(d, "pid"), getpid());
	cr_assert_str_eq(json_string_value(json_object_get(d, "port_name")), "net_null0");
	cr_assert_str_eq(json_string_value(json_object_get(d, "ip")), "10.9.0.1/24");
	cr_assert_eq(num(d, "port_id"), 3);
	cr_assert_lt(num(d, "heartbeat_age_ms"), 2000);

	/* Totals: every counter of the file, summed over both lcores. */
	t = json_object_get(d, "totals");
	cr_assert_eq(json_object_size(t), HBUS_DPC__COUNT - 1, "all but drop_unused");
	cr_assert_null(json_object_get(t, "drop_unused"));
	cr_assert_eq(num(t, "rx_pkts"), 3000);
	cr_assert_eq(num(t, "delivered"), 4410);
	cr_assert_eq(num(t, "drop_bad_udp_checksum"), 9);
	cr_assert_eq(num(t, "drop_fragment"), 0, "a reason never hit is reported as 0");
	check_identities(t);

	/* Per lcore: ids, counters, and the drops summed. */
	cr_assert_eq(json_array_size(json_object_get(d, "lcores")), 2);
	for (int i = 0; i < 2; i++) {
		l = json_array_get(json_object_get(d, "lcores"), i);
		cr_assert_eq(num(l, "lcore_id"), i + 1);
		cr_assert_eq(num(l, "rx_queue"), i);
		cr_assert_eq(num(l, "rx_pkts"), 1000 * (i + 1));
		cr_assert_eq(num(l, "routed"), 1480 * (i + 1));
		cr_assert_eq(num(l, "delivered"), 1470 * (i + 1));
		cr_assert_eq(num(l, "drops"), (3 + 1 + 4 + 10 + 10) * (i + 1));
		check_identities(l);
	}

	/* Ports and streams. */
	cr_assert_eq(num(json_object_get(d, "port"), "port_ipackets"), 2000);
	cr_assert_eq(num(json_object_get(d, "port"), "mcast_groups"), 2);
	cr_assert_eq(json_array_size(json_object_get(d, "streams")), 1);
	s = json_array_get(json_object_get(d, "streams"), 0);
	cr_assert_eq(num(s, "lcore_id"), 1);
	cr_assert_eq(num(s, "stream_id"), 7);
	cr_assert_eq(num(s, "next_seq"), 120);
	cr_assert_eq(num(s, "gaps"), 10);
	cr_assert_eq(num(s, "dups"), 5);
	cr_assert_eq(num(s, "resets"), 1);
	json_decref(r);

	/* Counters move: the next stat sees them. */
	set(&f, 1, "rx_pkts", 2001);
	set(&f, 1, "udp_pkts", 1989);
	set(&f, 1, "raw_dgrams", 981);
	set(&f, 1, "msgs", 2981);
	set(&f, 1, "routed", 2961);
	set(&f, 1, "enqueues", 2961);
	set(&f, 1, "delivered", 2941);
	beat(&f);
	r = stat_reply();
	t = json_object_get(json_array_get(json_object_get(r, "dataplanes"), 0), "totals");
	cr_assert_eq(num(t, "rx_pkts"), 3001);
	cr_assert_eq(num(t, "delivered"), 4411);
	check_identities(t);
	json_decref(r);
	hbus_dpc_destroy(&f, bus_dir);
	r = stat_reply();
	cr_assert_eq(json_array_size(json_object_get(r, "dataplanes")), 0, "a clean stop removes it");
	json_decref(r);
}

static char *hbus_stat(const char *args);
static void want(const char *out, const char *line);

/* A writer that died without its clean stop: still reported, not alive. */
Test(stat_dp, stale_file_is_reported_not_alive)
{
	struct hbus_dpc_file f;
	pid_t child = fork();
	json_t *r, *d;
	char *out;

	cr_assert_geq(child, 0);
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);
	make_dp("gone", 1, &f);
	f.hdr->pid = (uint32_t)child; /* a pid that no longer exists */
	atomic_store(&f.hdr->heartbeat_ns, 1);
	r = stat_reply();
	d = json_array_get(json_object_get(r, "dataplanes"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "gone");
	cr_assert(json_is_false(json_object_get(d, "alive")));
	cr_assert_eq(num(json_object_get(d, "totals"), "rx_pkts"), 1000, "last counters kept");
	json_decref(r);
	out = hbus_stat("--interval-ms 10");
	want(out, "dataplane gone: GONE (pid ");
	free(out);
	out = hbus_stat("--prometheus");
	want(out, "hbus_dataplane_up{bus=\"sdp\",dataplane=\"gone\"} 0\n");
	free(out);
	hbus_dpc_close(&f);
}

/* Garbage, a FIFO (which would block a reader without O_NONBLOCK), a
 * symbolic link and a half-made .new next to real files: only the real
 * ones are reported, sorted by name, and hbusd keeps answering. */
Test(stat_dp, foreign_files_are_skipped)
{
	struct hbus_dpc_file a, b;
	char path[512], target[512], junk[4096];
	json_t *r, *dps;
	int fd;

	make_dp("zeta", 1, &a);
	make_dp("alpha", 2, &b);
	snprintf(path, sizeof(path), "%s/junk.counters", bus_dir);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	memset(junk, 0xa5, sizeof(junk));
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	snprintf(path, sizeof(path), "%s/fifo.counters", bus_dir);
	cr_assert_eq(mkfifo(path, 0644), 0);
	snprintf(path, sizeof(path), "%s/link.counters", bus_dir);
	snprintf(target, sizeof(target), "%s/zeta.counters", bus_dir);
	cr_assert_eq(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/half.counters.new", bus_dir);
	cr_assert_eq(link(target, path), 0);
	snprintf(path, sizeof(path), "%s/.counters", bus_dir);
	cr_assert_eq(link(target, path), 0);

	r = stat_reply();
	dps = json_object_get(r, "dataplanes");
	cr_assert_eq(json_array_size(dps), 2, "%s", json_dumps(dps, JSON_COMPACT));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(dps, 0), "name")), "alpha");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(dps, 1), "name")), "zeta");
	json_decref(r);
	hbus_dpc_close(&a);
	hbus_dpc_close(&b);
}

/* ------------------------------------------------------- hbus stat */

/* Run `hbus stat ARGS` against the test's hbusd; its stdout, malloc'ed. */
static char *hbus_stat(const char *args)
{
	const char *build = getenv("HBUS_BUILD_DIR");
	char cmd[1024], *out = NULL;
	size_t cap = 0, len = 0;
	FILE *p;
	int st;

	cr_assert_not_null(build, "HBUS_BUILD_DIR not set");
	snprintf(cmd, sizeof(cmd), "%s/control/hbus --bus %s --run-dir %s stat %s", build, env.bus,
		 env.run, args);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	for (;;) {
		if (len + 4096 > cap) {
			cap = cap ? 2 * cap : 65536;
			out = realloc(out, cap);
			cr_assert_not_null(out);
		}
		size_t n = fread(out + len, 1, cap - len - 1, p);
		if (n == 0)
			break;
		len += n;
	}
	out[len] = '\0';
	st = pclose(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d\n%s", cmd, st, out);
	return out;
}

static void want(const char *out, const char *line)
{
	cr_assert_not_null(strstr(out, line), "missing '%s' in:\n%s", line, out);
}

/* The text format wants one TYPE line per family, its samples together
 * right after it. */
static void check_grouped(char *out)
{
	char *save = NULL, *line, done[512][96], cur[96] = "";
	unsigned n_done = 0;

	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[96];

		if (!strncmp(line, "# TYPE ", 7)) {
			cr_assert_eq(sscanf(line + 7, "%95s", name), 1);
			for (unsigned i = 0; i < n_done; i++)
				cr_assert_str_neq(done[i], name, "family %s split", name);
			if (*cur && n_done < 512)
				snprintf(done[n_done++], sizeof(done[0]), "%s", cur);
			snprintf(cur, sizeof(cur), "%s", name);
			continue;
		}
		cr_assert_eq(sscanf(line, "%95[^{ ]", name), 1, "%s", line);
		cr_assert_str_eq(name, cur, "sample '%s' outside its family", line);
	}
}

Test(stat_dp, hbus_stat_shows_dataplanes)
{
	struct hbus_dpc_file f;
	json_error_t jerr;
	json_t *j, *d;
	char *out;

	make_dp("dp1", 2, &f);

	out = hbus_stat("--prometheus");
	want(out, "# TYPE hbus_dataplane_up gauge\nhbus_dataplane_up{bus=\"sdp\",dataplane=\"dp1\"} 1\n");
	want(out, "# TYPE hbus_dataplane_rx_pkts_total counter\n");
	want(out, "hbus_dataplane_rx_pkts_total{bus=\"sdp\",dataplane=\"dp1\",lcore=\"1\"} 1000\n");
	want(out, "hbus_dataplane_rx_pkts_total{bus=\"sdp\",dataplane=\"dp1\",lcore=\"2\"} 2000\n");
	want(out, "hbus_dataplane_delivered_total{bus=\"sdp\",dataplane=\"dp1\",lcore=\"2\"} 2940\n");
	want(out, "# TYPE hbus_dataplane_drops_total counter\n");
	want(out, "hbus_dataplane_drops_total{bus=\"sdp\",dataplane=\"dp1\",lcore=\"2\","
		  "reason=\"bad_udp_checksum\"} 6\n");
	want(out, "hbus_dataplane_drops_total{bus=\"sdp\",dataplane=\"dp1\",lcore=\"1\","
		  "reason=\"queue_full\"} 10\n");
	want(out, "hbus_dataplane_port_ipackets_total{bus=\"sdp\",dataplane=\"dp1\",port=\"net_null0\"} 2000\n");
	want(out, "# TYPE hbus_dataplane_mcast_groups gauge\n");
	want(out, "hbus_dataplane_stream_gaps_total{bus=\"sdp\",dataplane=\"dp1\",lcore=\"1\","
		  "stream=\"7\"} 10\n");
	cr_assert_null(strstr(out, "reason=\"unused\""));
	cr_assert_null(strstr(out, "hbus_dataplanes_"), "the generic renderer did not run too");
	check_grouped(out);
	free(out);

	out = hbus_stat("--json --interval-ms 50");
	j = json_loads(out, 0, &jerr);
	cr_assert_not_null(j, "--json: %s\n%s", jerr.text, out);
	d = json_array_get(json_object_get(j, "dataplanes"), 0);
	cr_assert_eq(num(json_object_get(d, "totals"), "rx_pkts"), 3000);
	cr_assert(json_is_real(json_object_get(json_object_get(d, "rates"), "rx_pkts_per_s")));
	json_decref(j);
	free(out);

	out = hbus_stat("--interval-ms 50");
	want(out, "dataplane dp1: running, pid ");
	want(out, "port net_null0 (3), ip 10.9.0.1/24\n");
	want(out, "rx 3000 frames");
	want(out, "delivered 4410");
	want(out, "drops: runt 3, bad_udp_checksum 9, no_udpmap 12, no_route 30, queue_full 30\n");
	want(out, "port: ipackets 2000");
	want(out, "LCORE");
	want(out, "STREAM_ID");
	free(out);
	hbus_dpc_destroy(&f, bus_dir);

	out = hbus_stat("--interval-ms 50");
	cr_assert_null(strstr(out, "dataplane"), "no dataplane, no section:\n%s", out);
	free(out);
}
