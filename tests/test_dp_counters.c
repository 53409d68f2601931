/*
 * test_dp_counters.c - the dataplane's counters file (create, map, read,
 * stale-file takeover, corrupt-file refusal), its option parser and the
 * operator hints drawn from the counters.
 * Pure C: no DPDK, no root.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dp_config.h"
#include "dp_counter_ids.h"
#include "dp_hint.h"
#include "teardown.h"

static char dir[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/dev/shm/hbus-test-dpc-%d", (int)getpid());
	mkdir(dir, 0700);
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	tu_fini_check(system(cmd) == 0, "%s failed", cmd);
}

static const struct hbus_dpc_info info = {
	.name = "dp", .bus = "b", .ip = "10.0.0.1/24", .port_name = "net_null0",
	.port_id = 3, .hbus_udp_port = 5900, .max_lcores = 4, HBUS_DPC_DATAPLANE_COUNTERS,
};

TestSuite(dp_counters, .init = setup, .fini = teardown);

Test(dp_counters, names_are_unique_and_in_the_file)
{
	struct hbus_dpc_file w, r;
	unsigned i, j;

	cr_assert_eq(hbus_dpc_create(dir, &info, &w), 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/dp.counters", dir);
	cr_assert_eq(hbus_dpc_open(path, &r), 0);
	cr_assert_eq(r.hdr->n_counters, HBUS_DPC__COUNT);
	for (i = 1; i < HBUS_DPC__COUNT; i++) {
		cr_assert_str_eq(hbus_dpc_file_name(&r, i), hbus_dpc_name(i));
		for (j = 1; j < i; j++)
			cr_assert_str_neq(hbus_dpc_name(i), hbus_dpc_name(j));
	}
	cr_assert_str_eq(hbus_dpc_name(HBUS_PKT_DROP_BAD_UDP_CHECKSUM), "drop_bad_udp_checksum");
	cr_assert_str_eq(hbus_dpc_name(HBUS_DPC_DELIVERED), "delivered");
	cr_assert_str_eq(hbus_dpc_file_port_name(&r, HBUS_DPC_PORT_KERNEL_DROPS), "port_kernel_drops");
	cr_assert_null(hbus_dpc_name(HBUS_DPC__COUNT));
	cr_assert_null(hbus_dpc_file_name(&r, HBUS_DPC__COUNT));
	cr_assert_str_eq(r.hdr->ip, "10.0.0.1/24");
	cr_assert_eq(r.hdr->port_id, 3);
	hbus_dpc_close(&r);
	hbus_dpc_destroy(&w, dir);
	cr_assert_eq(access(path, F_OK), -1, "destroy unlinks the file");
}

Test(dp_counters, totals_sum_the_lcores_in_use)
{
	struct hbus_dpc_file w, r;
	char path[256];

	cr_assert_eq(hbus_dpc_create(dir, &info, &w), 0);
	for (unsigned i = 0; i < 4; i++)
		hbus_dpc_add(&hbus_dpc_lcore(&w, i)->c[HBUS_DPC_RX_PKTS], 10 + i);
	hbus_dpc_add(&hbus_dpc_streams(&w, 1)[5].gaps, 7);
	atomic_store(&w.hdr->n_lcores, 3);
	snprintf(path, sizeof(path), "%s/dp.counters", dir);
	cr_assert_eq(hbus_dpc_open(path, &r), 0);
	cr_assert_eq(hbus_dpc_total(&r, HBUS_DPC_RX_PKTS), 10 + 11 + 12);
	cr_assert_eq(atomic_load(&hbus_dpc_streams(&r, 1)[5].gaps), 7);
	cr_assert_null(hbus_dpc_lcore(&r, 4));
	cr_assert(hbus_dpc_alive(&r, 2000));
	hbus_dpc_close(&r);
	hbus_dpc_destroy(&w, dir);
}

Test(dp_counters, live_writer_refused_stale_file_replaced)
{
	struct hbus_dpc_file a, b;
	char path[256];
	pid_t child;
	int status;

	cr_assert_eq(hbus_dpc_create(dir, &info, &a), 0);
	/* Another process finds it alive: refused. */
	child = fork();
	if (child == 0)
		_exit(hbus_dpc_create(dir, &info, &b) == -EADDRINUSE ? 0 : 1);
	waitpid(child, &status, 0);
	cr_assert_eq(WEXITSTATUS(status), 0);
	/* A writer that died leaves a stale file: the next one takes over. */
	snprintf(path, sizeof(path), "%s/dp.counters", dir);
	hbus_dpc_close(&a); /* unmapped but not removed, as after a crash */
	child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, &status, 0);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	uint32_t dead = (uint32_t)child;
	cr_assert_eq(pwrite(fd, &dead, 4, offsetof(struct hbus_dpc_hdr, pid)), 4);
	close(fd);
	cr_assert_eq(hbus_dpc_create(dir, &info, &b), 0);
	cr_assert_eq(b.hdr->pid, (uint32_t)getpid());
	hbus_dpc_destroy(&b, dir);
}

Test(dp_counters, corrupt_files_refused)
{
	struct hbus_dpc_file w, r;
	char path[256];
	int fd;

	cr_assert_eq(hbus_dpc_create(dir, &info, &w), 0);
	snprintf(path, sizeof(path), "%s/dp.counters", dir);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	/* An offset past the file. */
	uint64_t far = 1ull << 40;
	cr_assert_eq(pwrite(fd, &far, 8, offsetof(struct hbus_dpc_hdr, lcores_off)), 8);
	cr_assert_eq(hbus_dpc_open(path, &r), -EPROTO);
	/* Another layout version. */
	uint32_t v = 99;
	cr_assert_eq(pwrite(fd, &v, 4, offsetof(struct hbus_file_hdr, version)), 4);
	cr_assert_eq(hbus_dpc_open(path, &r), -EPROTONOSUPPORT);
	close(fd);
	hbus_dpc_destroy(&w, dir);
	cr_assert_eq(hbus_dpc_open(path, &r), -ENOENT);
	/* Not a counters file at all. */
	fd = open(path, O_CREAT | O_RDWR, 0600);
	cr_assert_eq(write(fd, "hello, this is not hbus", 23), 23);
	close(fd);
	cr_assert_eq(hbus_dpc_open(path, &r), -EPROTO);
	unlink(path);
}

Test(dp_counters, create_rejects_bad_names)
{
	struct hbus_dpc_file w;
	struct hbus_dpc_info bad = info;

	bad.name = "a/b";
	cr_assert_eq(hbus_dpc_create(dir, &bad, &w), -EINVAL);
	bad.name = "";
	cr_assert_eq(hbus_dpc_create(dir, &bad, &w), -EINVAL);
	bad = info;
	bad.max_lcores = 0;
	cr_assert_eq(hbus_dpc_create(dir, &bad, &w), -EINVAL);
	/* The format (shm/) has no counters of its own: a writer that names
	 * none, or more than the layout takes, is refused. */
	bad = info;
	bad.counter_name = NULL;
	cr_assert_eq(hbus_dpc_create(dir, &bad, &w), -EINVAL);
	bad = info;
	bad.n_counters = 0;
	cr_assert_eq(hbus_dpc_create(dir, &bad, &w), -EINVAL);
	bad = info;
	bad.n_counters = HBUS_DPC_MAX_COUNTERS + 1;
	cr_assert_eq(hbus_dpc_create(dir, &bad, &w), -EINVAL);
	bad = info;
	bad.port_counter_name = NULL;
	cr_assert_eq(hbus_dpc_create(dir, &bad, &w), -EINVAL);
}

/* A name the writer has no text for is written as "?", never left empty. */
static const char *sparse_name(unsigned id)
{
	return id == 1 ? NULL : hbus_dpc_name(id);
}

Test(dp_counters, create_names_missing_counter)
{
	struct hbus_dpc_file w, r;
	struct hbus_dpc_info i2 = info;
	char path[512];

	i2.counter_name = sparse_name;
	cr_assert_eq(hbus_dpc_create(dir, &i2, &w), 0);
	snprintf(path, sizeof(path), "%s/dp.counters", dir);
	cr_assert_eq(hbus_dpc_open(path, &r), 0);
	cr_assert_str_eq(hbus_dpc_file_name(&r, 1), "?");
	cr_assert_str_eq(hbus_dpc_file_name(&r, 2), hbus_dpc_name(2));
	hbus_dpc_close(&r);
	hbus_dpc_destroy(&w, dir);
}

/* ---------------------------------------------------------- options */

static int parse(struct dp_config *c, char *err, ...)
{
	char *argv[32] = { "hbus-dataplane" };
	int argc = 1;
	va_list ap;
	char *a;

	va_start(ap, err);
	while ((a = va_arg(ap, char *)) != NULL)
		argv[argc++] = a;
	va_end(ap);
	return dp_config_parse(argc, argv, c, err, 256);
}

Test(dp_config, defaults_and_every_option)
{
	struct dp_config c;
	char err[256];

	cr_assert_eq(parse(&c, err, "--bus", "b1", "--ip", "10.1.2.3/16", NULL), 0, "%s", err);
	cr_assert_str_eq(c.bus, "b1");
	cr_assert_eq(c.ip, 0x0a010203u);
	cr_assert_eq(c.prefix, 16);
	cr_assert_str_eq(c.ip_str, "10.1.2.3/16");
	cr_assert_eq(c.hbus_port, 5900);
	cr_assert_eq(c.idle, DP_IDLE_SPIN);
	cr_assert_eq(c.port_id, 0);
	cr_assert_str_eq(c.name, "dataplane");
	cr_assert_eq(parse(&c, err, "--bus=b", "--ip=10.0.0.1/32", "--port", "2", "--hbus-port", "6000",
			   "--idle", "backoff", "--igmp", "2", "--run-dir", "/r", "--shm-dir", "/s",
			   "--name", "dp2", "--rx-desc", "2048", "--tx-desc", "256", "--mbufs", "65535",
			   NULL), 0, "%s", err);
	cr_assert_eq(c.port_id, 2);
	cr_assert_eq(c.hbus_port, 6000);
	cr_assert_eq(c.idle, DP_IDLE_BACKOFF);
	cr_assert_eq(c.igmp_version, 2);
	cr_assert_str_eq(c.run_dir, "/r");
	cr_assert_str_eq(c.shm_dir, "/s");
	cr_assert_str_eq(c.name, "dp2");
	cr_assert_eq(c.rx_desc, 2048);
	cr_assert_eq(c.tx_desc, 256);
	cr_assert_eq(c.mbufs, 65535);
}

Test(dp_config, bad_input_gets_a_message)
{
	static const char *const bad[][4] = {
		{ "--ip", "10.0.0.1/24", NULL },                /* no --bus */
		{ "--bus", "b", NULL },                         /* no --ip */
		{ "--bus", "b", "--ip", "10.0.0.1" },           /* no prefix */
		{ "--bus", "b", "--ip", "10.0.0.1/33" },
		{ "--bus", "b", "--ip", "239.1.1.1/24" },       /* multicast */
		{ "--bus", "b", "--ip", "10.0.0.300/24" },
		{ "--bus", "a/b", "--ip", "10.0.0.1/24" },
		{ "--bus", "b", "--port", "-1" },
		{ "--bus", "b", "--hbus-port", "0" },
		{ "--bus", "b", "--idle", "sleepy" },
		{ "--bus", "b", "--igmp", "1" },
		{ "--bus", "b", "--rx-desc", "8" },
		{ "--bus", "b", "--frobnicate", "1" },
		{ "--bus", "b", "stray" },
		{ "--bus", NULL },                              /* value missing */
	};
	struct dp_config c;
	char err[256];

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(parse(&c, err, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL), -EINVAL,
			     "case %u accepted", i);
		cr_assert_gt(strlen(err), 10, "case %u: no message", i);
	}
}

/* ------------------------------------------------------------- hints */

Test(dp_hint, csum_due_once_when_bad_checksums_dominate)
{
	struct dp_hint h = { 0 };

	/* A few corrupt datagrams among good ones are traffic. */
	cr_assert_eq(dp_hint_csum_due(&h, DP_HINT_CSUM_MIN - 1, 0), 0);
	cr_assert_eq(dp_hint_csum_due(&h, 1000, 1000), 0);
	cr_assert_eq(dp_hint_csum_due(&h, 1000, 5000), 0);
	/* Most of them failing is configuration: said once, never again. */
	cr_assert_eq(dp_hint_csum_due(&h, DP_HINT_CSUM_MIN, 0), 1);
	cr_assert_eq(dp_hint_csum_due(&h, 10 * DP_HINT_CSUM_MIN, 0), 0);
	cr_assert_eq(dp_hint_csum_due(&h, 1u << 30, 1), 0);
}
