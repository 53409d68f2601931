/*
 * test_seq_carry.c - what the chaos soak relies on in the dataplane: a
 * dataplane that replaces the counters file of a dead one goes on with its
 * streams from the sequence the dead one committed after its last enqueue
 * (dp_seq_commit), so messages lost while no dataplane ran, and the burst it
 * died in, are counted as gaps.  Pure C: no DPDK, no root.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp_counter_ids.h"
#include "../teardown.h"
#include "dp_seq.h"

static char dir[128], path[256];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/dev/shm/hbus-test-seqcarry-%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/dp.counters", dir);
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	tu_fini_check(system(cmd) == 0, "%s failed", cmd);
}

TestSuite(seq_carry, .init = setup, .fini = teardown);

static const struct hbus_dpc_info info = {
	.name = "dp", .bus = "b", .ip = "10.0.0.1/24", .port_name = "net_null0",
	.max_lcores = 2, HBUS_DPC_DATAPLANE_COUNTERS,
};

/* A dataplane's counters file and the sequence tracker of its lcore li. */
struct dp_sim {
	struct hbus_dpc_file f;
	struct dp_seq seq;
};

static void sim_start(struct dp_sim *d, unsigned li)
{
	cr_assert_eq(hbus_dpc_create(dir, &info, &d->f), 0);
	cr_assert_eq(dp_seq_init(&d->seq, hbus_dpc_streams(&d->f, li), d->f.hdr->n_streams,
				 hbus_dpc_lcore(&d->f, li)->c), 0);
}

/* kill -9: the mapping goes, the file stays (its pid is ours, so the next
 * create takes it over, as it does a dead process's). */
static void sim_kill(struct dp_sim *d)
{
	hbus_dpc_close(&d->f);
}

static const struct hbus_dpc_stream *stream(const struct dp_sim *d, uint32_t id)
{
	const struct hbus_dpc_stream *e = dp_seq_find(&d->seq, id);

	cr_assert_not_null(e, "stream %u tracked", id);
	return e;
}

static uint64_t gaps(const struct dp_sim *d, unsigned li)
{
	return atomic_load(&hbus_dpc_lcore(&d->f, li)->c[HBUS_DPC_SEQ_GAPS]);
}

Test(seq_carry, a_restarted_dataplane_counts_what_it_never_saw)
{
	struct dp_sim a, b;

	sim_start(&a, 0);
	dp_seq_frame(&a.seq, 7, 1, 4);   /* 1..4, enqueued */
	dp_seq_commit(&a.seq);
	dp_seq_frame(&a.seq, 7, 5, 4);   /* 5..8: killed before the burst's end */
	cr_assert_eq(atomic_load(&stream(&a, 7)->next_seq), 9);
	cr_assert_eq(atomic_load(&stream(&a, 7)->durable_seq), 5);
	sim_kill(&a);

	sim_start(&b, 0);
	cr_assert_eq(atomic_load(&stream(&b, 7)->next_seq), 5, "from the committed sequence");
	cr_assert_eq(atomic_load(&stream(&b, 7)->msgs), 0, "counts are per process");
	/* 9..11 went by while no dataplane ran: 5..11 are gaps. */
	dp_seq_frame(&b.seq, 7, 12, 2);
	dp_seq_commit(&b.seq);
	cr_assert_eq(atomic_load(&stream(&b, 7)->gaps), 7);
	cr_assert_eq(gaps(&b, 0), 7);
	cr_assert_eq(b.f.hdr->file.magic, HBUS_FILE_MAGIC);
	hbus_dpc_destroy(&b.f, dir);
	cr_assert_eq(access(path, F_OK), -1);
}

Test(seq_carry, a_stream_first_seen_in_the_fatal_burst_starts_at_its_first_sequence)
{
	struct dp_sim a, b;

	sim_start(&a, 1);
	dp_seq_frame(&a.seq, 3, 100, 5); /* new, never committed */
	sim_kill(&a);
	sim_start(&b, 1);
	cr_assert_eq(atomic_load(&stream(&b, 3)->next_seq), 100);
	dp_seq_frame(&b.seq, 3, 105, 1);
	cr_assert_eq(gaps(&b, 1), 5, "the 5 messages of the fatal burst");
	/* Heartbeats make tail loss visible the same way. */
	dp_seq_frame(&b.seq, 3, 110, 0);
	cr_assert_eq(gaps(&b, 1), 9);
	hbus_dpc_destroy(&b.f, dir);
}

Test(seq_carry, more_streams_in_a_burst_than_the_dirty_list_holds)
{
	struct dp_sim a, b;
	uint32_t n = DP_SEQ_DIRTY_MAX + 9, id;

	sim_start(&a, 0);
	for (id = 1; id <= n; id++)
		dp_seq_frame(&a.seq, id, 10, 3);
	dp_seq_commit(&a.seq);
	for (id = 1; id <= n; id++)
		cr_assert_eq(atomic_load(&stream(&a, id)->durable_seq), 13, "stream %u", id);
	sim_kill(&a);
	sim_start(&b, 0);
	for (id = 1; id <= n; id++)
		dp_seq_frame(&b.seq, id, 13, 1);
	cr_assert_eq(gaps(&b, 0), 0);
	cr_assert_eq(atomic_load(&hbus_dpc_lcore(&b.f, 0)->c[HBUS_DPC_SEQ_DUPS]), 0);
	hbus_dpc_destroy(&b.f, dir);
}

Test(seq_carry, a_corrupt_or_half_made_file_is_replaced_without_a_carry)
{
	struct dp_sim b;
	char tmp[300];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "not a counters file", 19), 19);
	close(fd);
	/* A .new left by a dataplane killed while building its file. */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	sim_start(&b, 0);
	cr_assert_null(dp_seq_find(&b.seq, 7));
	cr_assert_eq(access(tmp, F_OK), -1, "the leftover .new is gone");
	hbus_dpc_destroy(&b.f, dir);
}

Test(seq_carry, a_live_writer_keeps_its_file)
{
	struct hbus_dpc_file w;

	/* A file whose writer is another live process (pid 1, fresh heartbeat). */
	cr_assert_eq(hbus_dpc_create(dir, &info, &w), 0);
	w.hdr->pid = 1;
	cr_assert_eq(hbus_dpc_create(dir, &info, &(struct hbus_dpc_file){ 0 }), -EADDRINUSE);
	w.hdr->pid = (uint32_t)getpid();
	hbus_dpc_destroy(&w, dir);
}
