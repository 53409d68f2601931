/*
 * test_routes_file.c - the routes file: tables published by generation
 * into two halves, readers advertising the generation they use in reader
 * blocks of their own, hbusd refusing (-EBUSY) to overwrite a half a
 * reader block still uses (and saying which block), read-only mappings for
 * readers, layout fields copied at open and never re-read, retirement, and
 * refusal of corrupt files.  The cross-process cases fork real readers;
 * every child also arms alarm() so that a failing parent can never leave
 * one behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "route_layout.h"
#include "testutil.h"

#define CAP (64 * 1024)

/* A table whose direct exchange "x" routes key "k" to qid `marker`, padded
 * with `extra` queues so that successive tables differ in size too. */
static void *make_table(uint32_t marker, unsigned extra, size_t *len)
{
	static struct hbus_rc_queue qs[512];
	static char names[512][16];
	struct hbus_rc_exchange x = { .name = "x", .type = HBUS_X_DIRECT };
	struct hbus_rc_binding b = { .source = "x", .dest = "target", .key = "k" };
	struct hbus_rc_input in = { &x, 1, qs, 1 + extra, &b, 1, NULL, 0 };
	void *t = aligned_alloc(64, CAP);
	unsigned i;

	cr_assert(extra < 511);
	qs[0] = (struct hbus_rc_queue){ .name = "target", .qid = marker };
	for (i = 1; i <= extra; i++) {
		snprintf(names[i], sizeof(names[i]), "pad%u", i);
		qs[i] = (struct hbus_rc_queue){ .name = names[i], .qid = marker + i };
	}
	cr_assert_eq(hbus_route_compile(&in, t, CAP, len), 0);
	return t;
}

/* Route "k" through "x": the marker of the table, or a negative errno. */
static int64_t marker_of(const struct hbus_rtable *t)
{
	uint32_t xid, qids[4];
	int n;

	if (hbus_route_exchange(t, "x", 1, &xid))
		return -ENOENT;
	n = hbus_route_lookup(t, xid, "k", 1, NULL, qids, 4);
	if (n != 1)
		return n < 0 ? n : -EBADMSG;
	return qids[0];
}

static struct hbus_routes *rf_create(int *fd)
{
	static int seq;
	struct hbus_routes *r = NULL;
	char path[128];
	int rc;

	snprintf(path, sizeof(path), "/dev/shm/hbus-test-routes-%d-%d", (int)getpid(), seq++);
	unlink(path);
	rc = hbus_routes_create(path, CAP, fd, &r);
	unlink(path); /* the descriptor keeps it alive; nothing left behind */
	cr_assert_eq(rc, 0, "hbus_routes_create: %s", hbus_strerror(rc));
	return r;
}

static struct hbus_routes_hdr *map_hdr_rw(int fd);

static struct hbus_readers *rb_create(int *fd)
{
	struct hbus_readers *rd = NULL;
	int rc = hbus_readers_create(fd, &rd);

	cr_assert_eq(rc, 0, "hbus_readers_create: %s", hbus_strerror(rc));
	return rd;
}

/* A read-only descriptor of the same file, as hbusd hands it to clients. */
static int ro_fd(int fd)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(r, 0);
	return r;
}

/* Publish with the reader blocks rds[0..n). */
static int publish_n(struct hbus_routes *r, uint32_t marker, struct hbus_readers *const *rds,
		     unsigned n, uint8_t *busy, uint64_t *gen)
{
	size_t len;
	void *t = make_table(marker, marker % 7, &len);
	int rc = hbus_routes_publish(r, t, len, rds, n, busy, gen);

	free(t);
	return rc;
}

static int publish(struct hbus_routes *r, uint32_t marker, struct hbus_readers *rd, uint64_t *gen)
{
	return publish_n(r, marker, &rd, rd ? 1 : 0, NULL, gen);
}

Test(routes_file, publish_then_acquire_by_generation)
{
	int fd, bfd, rfd;
	struct hbus_routes *r = rf_create(&fd), *r2;
	struct hbus_readers *rd = rb_create(&bfd);
	const struct hbus_rtable *t;
	unsigned slot;
	uint64_t gen = 0, g;

	cr_assert_eq(hbus_routes_generation(r), 0);
	cr_assert_eq(hbus_readers_attach(rd, &slot), 0);
	cr_assert_null(hbus_routes_acquire(r, rd, slot, &g)); /* nothing published yet */
	cr_assert_eq(publish(r, 1001, rd, &gen), 0);
	cr_assert_eq(gen, 1);
	t = hbus_routes_acquire(r, rd, slot, &g);
	cr_assert_not_null(t);
	cr_assert_eq(g, 1);
	cr_assert_eq(marker_of(t), 1001);
	hbus_routes_release(rd, slot);
	cr_assert_eq(publish(r, 1002, rd, &gen), 0);
	cr_assert_eq(gen, 2);
	cr_assert_eq(publish(r, 1003, rd, &gen), 0); /* nobody holds gen 1: its half is free */
	cr_assert_eq(gen, 3);
	/* A reader's mapping (another process, read-only) sees the same
	 * active table. */
	rfd = ro_fd(fd);
	cr_assert_eq(hbus_routes_open_fd(rfd, &r2), 0);
	cr_assert_eq(hbus_routes_generation(r2), 3);
	t = hbus_routes_acquire(r2, rd, slot, &g);
	cr_assert_eq(g, 3);
	cr_assert_eq(marker_of(t), 1003);
	hbus_routes_release(rd, slot);
	cr_assert_eq(publish(r2, 1004, NULL, &gen), -EPERM, "a read-only mapping published");
	cr_assert_eq(hbus_readers_detach(rd, slot), 0);
	cr_assert_eq(hbus_readers_detach(rd, slot), -EINVAL);
	hbus_routes_close(r2);
	hbus_routes_close(r);
	hbus_readers_close(rd);
	close(rfd);
	close(bfd);
	close(fd);
}

Test(routes_file, publish_refuses_bad_tables)
{
	int fd;
	struct hbus_routes *r = rf_create(&fd);
	static uint64_t junk[CAP / 4];
	size_t len;
	void *t = make_table(7, 0, &len);

	cr_assert_eq(hbus_routes_publish(r, t, CAP * 2, NULL, 0, NULL, NULL), -EMSGSIZE);
	cr_assert_eq(hbus_routes_publish(r, junk, 4096, NULL, 0, NULL, NULL), -EINVAL);
	cr_assert_eq(hbus_routes_publish(r, t, len - 8, NULL, 0, NULL, NULL), -EINVAL); /* truncated */
	cr_assert_eq(hbus_routes_publish(r, NULL, len, NULL, 0, NULL, NULL), -EINVAL);
	cr_assert_eq(hbus_routes_publish(r, t, len, NULL, 1, NULL, NULL), -EINVAL);
	cr_assert_eq(hbus_routes_generation(r), 0);
	cr_assert_eq(hbus_routes_create("/dev/shm/x", 8, &fd, &r), -EINVAL);
	free(t);
	hbus_routes_close(r);
	close(fd);
}

Test(routes_file, reader_slots_are_bounded_and_reused)
{
	int bfd;
	struct hbus_readers *rd = rb_create(&bfd), *rd2;
	unsigned slot, i, seen[HBUS_READER_SLOTS] = { 0 };
	struct stat st;

	for (i = 0; i < HBUS_READER_SLOTS; i++) {
		cr_assert_eq(hbus_readers_attach(rd, &slot), 0);
		cr_assert_lt(slot, HBUS_READER_SLOTS);
		cr_assert_eq(seen[slot]++, 0, "slot %u handed out twice", slot);
	}
	cr_assert_eq(hbus_readers_attach(rd, &slot), -ENOSPC);
	cr_assert_eq(hbus_readers_detach(rd, 17), 0);
	cr_assert_eq(hbus_readers_attach(rd, &slot), 0);
	cr_assert_eq(slot, 17);
	cr_assert_eq(hbus_readers_detach(rd, HBUS_READER_SLOTS), -EINVAL);
	cr_assert_null(hbus_routes_acquire(NULL, rd, 0, NULL));
	/* The block's size is sealed: nobody can shrink it under hbusd's
	 * mapping (a SIGBUS in hbusd), nor grow it. */
	cr_assert_eq(ftruncate(bfd, 64), -1);
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(bfd, 1 << 20), -1);
	cr_assert_eq(fstat(bfd, &st), 0);
	cr_assert_eq(st.st_size, (off_t)sizeof(struct hbus_readers_block));
	/* A client maps the same block and sees the same slots. */
	cr_assert_eq(hbus_readers_open_fd(bfd, &rd2), 0);
	cr_assert_eq(hbus_readers_attach(rd2, &slot), -ENOSPC);
	hbus_readers_close(rd2);
	cr_assert_eq(hbus_readers_open_fd(-1, &rd2), -EINVAL);
	hbus_readers_close(rd);
	close(bfd);
}

/* hbusd looks at every block and says which ones hold a publish back;
 * a slot that is not attached is not looked at, whatever it holds. */
Test(routes_file, publish_names_every_block_in_the_way)
{
	int fd, bfd[3];
	struct hbus_routes *r = rf_create(&fd);
	struct hbus_readers *rds[3];
	uint8_t busy[3];
	unsigned slot, i;
	uint64_t gen, g;

	for (i = 0; i < 3; i++)
		rds[i] = rb_create(&bfd[i]);
	cr_assert_eq(publish_n(r, 1, rds, 3, busy, &gen), 0);
	cr_assert_eq(hbus_readers_attach(rds[0], &slot), 0);
	cr_assert_not_null(hbus_routes_acquire(r, rds[0], slot, &g));
	cr_assert_eq(hbus_readers_attach(rds[2], &slot), 0);
	cr_assert_not_null(hbus_routes_acquire(r, rds[2], slot, &g));
	/* Block 1: a slot holding generation 1 that was never attached. */
	atomic_store(&rds[1]->b->slot[5].gen, 1);
	cr_assert_eq(publish_n(r, 2, rds, 3, busy, &gen), 0); /* half 0 */
	cr_assert_eq(publish_n(r, 3, rds, 3, busy, &gen), -EBUSY); /* half 1, held */
	cr_assert(busy[0] && !busy[1] && busy[2], "busy %d %d %d", busy[0], busy[1], busy[2]);
	hbus_routes_release(rds[0], 0);
	cr_assert_eq(publish_n(r, 3, rds, 3, busy, &gen), -EBUSY);
	cr_assert(!busy[0] && !busy[1] && busy[2]);
	cr_assert(!hbus_readers_idle(rds[2]) && hbus_readers_idle(rds[0]) &&
		  hbus_readers_idle(rds[1]));
	/* Without the block (hbusd gave it up), the half is reused. */
	cr_assert_eq(publish_n(r, 3, rds, 2, busy, &gen), 0);
	cr_assert_eq(gen, 3);
	for (i = 0; i < 3; i++) {
		hbus_readers_close(rds[i]);
		close(bfd[i]);
	}
	hbus_routes_close(r);
	close(fd);
}

/* Readers get a read-only descriptor: the kernel refuses every way of
 * writing the table through it. */
Test(routes_file, readers_cannot_write_the_table)
{
	int fd, rfd;
	struct hbus_routes *r = rf_create(&fd), *cr;
	struct stat st;
	uint64_t gen;
	void *p;

	cr_assert_eq(publish(r, 6001, NULL, &gen), 0);
	rfd = ro_fd(fd);
	cr_assert_eq(fstat(rfd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
	cr_assert_eq(p, MAP_FAILED, "a read-only descriptor mapped writable");
	cr_assert_eq(errno, EACCES);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, rfd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(mprotect(p, 4096, PROT_READ | PROT_WRITE), -1);
	cr_assert_eq(errno, EACCES);
	munmap(p, (size_t)st.st_size);
	cr_assert_eq(ftruncate(rfd, 0), -1);
	cr_assert_eq(write(rfd, "x", 1), -1);
	cr_assert_eq(hbus_routes_open_fd(rfd, &cr), 0);
	cr_assert_eq(hbus_routes_generation(cr), 1);
	hbus_routes_close(cr);
	close(rfd);
	hbus_routes_close(r);
	close(fd);
}

/* hbusd checks the layout once and keeps its own copy: fields rewritten in
 * the file afterwards change nothing about where it writes. */
Test(routes_file, layout_fields_are_never_read_again)
{
	int fd, bfd;
	struct hbus_routes *r = rf_create(&fd), *cr;
	struct hbus_readers *rd = rb_create(&bfd);
	struct hbus_routes_hdr *h = map_hdr_rw(fd), saved;
	const struct hbus_rtable *t;
	unsigned slot;
	uint64_t gen, g;

	cr_assert_eq(publish(r, 7001, NULL, &gen), 0);
	memcpy(&saved, h, sizeof(saved));
	h->table_cap = 1u << 30;
	h->half_off[0] = 0;
	h->half_off[1] = 64;
	cr_assert_eq(publish(r, 7002, NULL, &gen), 0);
	cr_assert_eq(publish(r, 7003, NULL, &gen), 0);
	cr_assert_eq(h->half_off[1], 64, "hbusd rewrote the field: it read it");
	cr_assert_eq(h->file.magic, saved.file.magic, "the header was overwritten");
	memcpy(h, &saved, offsetof(struct hbus_routes_hdr, active));
	cr_assert_eq(hbus_routes_open_fd(fd, &cr), 0);
	cr_assert_eq(hbus_readers_attach(rd, &slot), 0);
	t = hbus_routes_acquire(cr, rd, slot, &g);
	cr_assert_eq(g, 3);
	cr_assert_eq(marker_of(t), 7003);
	hbus_routes_release(rd, slot);
	hbus_routes_close(cr);
	munmap(h, sizeof(*h));
	hbus_readers_close(rd);
	close(bfd);
	hbus_routes_close(r);
	close(fd);
}

/* A restarted hbusd retires its predecessor's file: the last table stays
 * readable as it is, readers see the flag, nothing is published into it;
 * the new file continues the generation numbers. */
Test(routes_file, retired_file_stays_readable_and_frozen)
{
	int fd, fd2, bfd;
	struct hbus_routes *r = rf_create(&fd), *old, *r2 = rf_create(&fd2);
	struct hbus_readers *rd = rb_create(&bfd);
	const struct hbus_rtable *t;
	unsigned slot;
	uint64_t gen, g;

	cr_assert_eq(publish(r, 8001, NULL, &gen), 0);
	cr_assert_eq(publish(r, 8002, NULL, &gen), 0);
	cr_assert_eq(hbus_readers_attach(rd, &slot), 0);
	cr_assert_eq(hbus_routes_open_fd(fd, &old), 0); /* the new hbusd's view of it */
	cr_assert_eq(hbus_routes_generation(old), 2);
	cr_assert_eq(hbus_routes_retire(old), 0);
	cr_assert(hbus_routes_retired(r));
	t = hbus_routes_acquire(r, rd, slot, &g);
	cr_assert_eq(g, 2 | HBUS_ROUTES_RETIRED);
	cr_assert_eq(marker_of(t), 8002);
	hbus_routes_release(rd, slot);
	cr_assert_eq(hbus_routes_generation(old), 2);
	cr_assert_eq(publish(old, 8003, NULL, &gen), -EPERM);
	hbus_routes_continue(r2, 2);
	cr_assert_eq(publish(r2, 8003, NULL, &gen), 0);
	cr_assert_eq(gen, 3);
	hbus_routes_close(old);
	hbus_routes_close(r);
	hbus_routes_close(r2);
	hbus_readers_close(rd);
	close(bfd);
	close(fd);
	close(fd2);
}

static void wait_byte(int fd)
{
	char c;
	cr_assert_eq(read(fd, &c, 1), 1);
}

static void send_byte(int fd)
{
	cr_assert_eq(write(fd, "x", 1), 1);
}

static void wait_child_ok(pid_t pid)
{
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %#x)", st);
}

/*
 * A reader in another process holds generation 1.  hbusd may publish
 * generation 2 (the other half) but not 3 (generation 1's half) until the
 * reader lets go; meanwhile the reader's table stays byte-identical.
 */
Test(routes_file, busy_while_a_reader_holds_the_old_generation)
{
	int fd, to_child[2], to_parent[2];
	struct hbus_routes *r = rf_create(&fd);
	size_t len;
	void *orig = make_table(2001, 0, &len);
	uint64_t gen;
	pid_t pid;

	int bfd;
	struct hbus_readers *rd = rb_create(&bfd);

	cr_assert_eq(hbus_routes_publish(r, orig, len, &rd, 1, NULL, &gen), 0);
	cr_assert_eq(pipe(to_child), 0);
	cr_assert_eq(pipe(to_parent), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct hbus_routes *cr;
		struct hbus_readers *crd;
		const struct hbus_rtable *t;
		unsigned slot;
		uint64_t g;
		char c;
		int ok = 1;

		alarm(30);
		ok &= hbus_routes_open_fd(ro_fd(fd), &cr) == 0;
		ok &= hbus_readers_open_fd(bfd, &crd) == 0;
		ok &= hbus_readers_attach(crd, &slot) == 0;
		t = hbus_routes_acquire(cr, crd, slot, &g);
		ok &= t && g == 1 && marker_of(t) == 2001;
		ok &= write(to_parent[1], "a", 1) == 1;
		ok &= read(to_child[0], &c, 1) == 1;      /* parent published 2, tried 3 */
		ok &= memcmp(t, orig, len) == 0 && marker_of(t) == 2001;
		hbus_routes_release(crd, slot);
		ok &= write(to_parent[1], "b", 1) == 1;
		ok &= read(to_child[0], &c, 1) == 1;      /* parent published 3 */
		t = hbus_routes_acquire(cr, crd, slot, &g);
		ok &= t && g == 3 && marker_of(t) == 2003;
		hbus_routes_release(crd, slot);
		_exit(ok ? 0 : 1);
	}
	wait_byte(to_parent[0]);
	cr_assert_eq(publish(r, 2002, rd, &gen), 0);
	cr_assert_eq(gen, 2);
	cr_assert_eq(publish(r, 2003, rd, &gen), -EBUSY);
	cr_assert_eq(hbus_routes_generation(r), 2);
	send_byte(to_child[1]);
	wait_byte(to_parent[0]);
	cr_assert_eq(publish(r, 2003, rd, &gen), 0);
	cr_assert_eq(gen, 3);
	send_byte(to_child[1]);
	wait_child_ok(pid);
	free(orig);
	hbus_readers_close(rd);
	close(bfd);
	hbus_routes_close(r);
	close(fd);
}

/* A reader that dies holding a generation blocks its half (through its
 * block) until hbusd gives the block up (its process exited); another
 * process's block is no concern of it. */
Test(routes_file, a_dead_readers_block_holds_only_until_dropped)
{
	int fd, bfd[2];
	struct hbus_routes *r = rf_create(&fd);
	struct hbus_readers *rds[2] = { rb_create(&bfd[0]), rb_create(&bfd[1]) };
	uint64_t gen;
	pid_t pid;

	cr_assert_eq(publish_n(r, 3001, rds, 2, NULL, &gen), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct hbus_routes *cr;
		struct hbus_readers *crd;
		unsigned slot;
		uint64_t g;

		alarm(30);
		if (hbus_routes_open_fd(ro_fd(fd), &cr) || hbus_readers_open_fd(bfd[1], &crd) ||
		    hbus_readers_attach(crd, &slot) || !hbus_routes_acquire(cr, crd, slot, &g) ||
		    g != 1)
			_exit(1);
		_exit(0); /* dies holding generation 1 */
	}
	wait_child_ok(pid);
	cr_assert_eq(publish_n(r, 3002, rds, 2, NULL, &gen), 0);
	cr_assert_eq(publish_n(r, 3003, rds, 2, NULL, &gen), -EBUSY);
	cr_assert_eq(publish_n(r, 3003, rds, 1, NULL, &gen), 0); /* block 1 dropped */
	cr_assert_eq(gen, 3);
	hbus_readers_close(rds[0]);
	hbus_readers_close(rds[1]);
	close(bfd[0]);
	close(bfd[1]);
	hbus_routes_close(r);
	close(fd);
}

/*
 * A reader process acquires, looks up, holds the table as a burst would,
 * looks up again and releases, while hbusd publishes as fast as it can
 * (retrying on -EBUSY) until the reader has checked 1500 generations.
 * Generation g's table routes to qid 5000 + g % 1000: a reader that ever
 * sees a table change under it, or a table of the wrong generation, fails.
 */
Test(routes_file, readers_never_see_a_table_change_under_them, .timeout = 120)
{
	enum { KINDS = 1000, WANT = 1500 };
	static void *tables[KINDS];
	static size_t lens[KINDS];
	int fd, ready[2], st = 0, bfd;
	struct hbus_routes *r = rf_create(&fd);
	struct hbus_readers *rd = rb_create(&bfd);
	uint64_t gen = 0, busy = 0, k;
	pid_t pid, done = 0;

	/* Compiled up front, so that publishing is a bare copy and hbusd
	 * races the reader as hard as it can. */
	for (k = 0; k < KINDS; k++) {
		void *t = make_table((uint32_t)(5000 + k), (unsigned)(k % 7), &lens[k]);
		tables[k] = malloc(lens[k]);
		memcpy(tables[k], t, lens[k]);
		free(t);
	}
	cr_assert_eq(pipe(ready), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct hbus_routes *cr;
		struct hbus_readers *crd;
		unsigned slot;
		uint64_t g = 0, last = 0, checked = 0;

		alarm(100);
		if (hbus_routes_open_fd(ro_fd(fd), &cr) || hbus_readers_open_fd(bfd, &crd) ||
		    hbus_readers_attach(crd, &slot) || write(ready[1], "r", 1) != 1)
			_exit(2);
		while (checked < WANT) {
			const struct hbus_rtable *t = hbus_routes_acquire(cr, crd, slot, &g);

			if (t) {
				int64_t m1 = marker_of(t);
				for (volatile int i = 0; i < 2000; i++)
					;
				if (m1 != (int64_t)(5000 + g % KINDS) || marker_of(t) != m1)
					_exit(3);
				checked += g != last;
				last = g;
			}
			hbus_routes_release(crd, slot);
		}
		_exit(0);
	}
	wait_byte(ready[0]);
	while (!done) {
		unsigned spins = 0;
		int rc;

		while ((rc = hbus_routes_publish(r, tables[(gen + 1) % KINDS],
						 lens[(gen + 1) % KINDS], &rd, 1, NULL, &gen)) ==
		       -EBUSY) {
			busy++;
			tu_backoff(&spins);
		}
		cr_assert_eq(rc, 0);
		cr_assert_lt(gen, 50000000u, "reader never finished");
		done = waitpid(pid, &st, WNOHANG);
	}
	cr_assert_eq(done, pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader failed (status %#x)", st);
	/* The reader held tables all along: hbusd must have had to wait. */
	cr_assert_gt(busy, 0);
	cr_log_info("%llu publishes, %llu -EBUSY retries", (unsigned long long)gen,
		    (unsigned long long)busy);
	for (k = 0; k < KINDS; k++)
		free(tables[k]);
	hbus_readers_close(rd);
	close(bfd);
	hbus_routes_close(r);
	close(fd);
}

static struct hbus_routes_hdr *map_hdr_rw(int fd)
{
	void *p = mmap(NULL, sizeof(struct hbus_routes_hdr), PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

static int open_rc(int fd)
{
	struct hbus_routes *r;
	int rc = hbus_routes_open_fd(fd, &r);

	if (rc == 0)
		hbus_routes_close(r);
	return rc;
}

Test(routes_file, corrupt_files_are_refused)
{
	int fd;
	struct hbus_routes *r = rf_create(&fd);
	struct hbus_routes_hdr *h = map_hdr_rw(fd), saved;
	uint8_t *half;
	uint64_t gen;
	struct stat st;

	cr_assert_eq(publish(r, 4001, NULL, &gen), 0);
	cr_assert_eq(open_rc(fd), 0);
	memcpy(&saved, h, sizeof(saved));
#define CORRUPT(stmt, want) do { stmt; cr_assert_eq(open_rc(fd), want, #stmt); \
		memcpy(h, &saved, sizeof(saved)); cr_assert_eq(open_rc(fd), 0); } while (0)
	CORRUPT(h->file.magic ^= 1, -EPROTO);
	CORRUPT(h->file.kind = HBUS_FILE_QUEUE, -EPROTO);
	CORRUPT(h->file.version++, -EPROTONOSUPPORT);
	CORRUPT(h->file.size += 4096 * 1024, -EPROTO);
	CORRUPT(h->table_cap *= 2, -EPROTO);
	CORRUPT(h->half_off[1] += 8, -EPROTO);
	CORRUPT(h->half_len[1] = h->table_cap + 1, -EPROTO);
	CORRUPT(h->active = 2, -EPROTO); /* half 0 holds no generation 2 */
	/* The active table itself is checked too. */
	half = (uint8_t *)mmap(NULL, saved.half_off[1] + CAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(half, MAP_FAILED);
	half[saved.half_off[1]] ^= 0xff; /* table magic */
	cr_assert_eq(open_rc(fd), -EPROTO);
	half[saved.half_off[1]] ^= 0xff;
	cr_assert_eq(open_rc(fd), 0);
	/* A truncated file. */
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(ftruncate(fd, 512), 0);
	cr_assert_eq(open_rc(fd), -EPROTO);
	cr_assert_eq(open_rc(-1), -EINVAL);
	munmap(half, saved.half_off[1] + CAP);
	munmap(h, sizeof(*h));
	hbus_routes_close(r);
	close(fd);
}
