/*
 * test_queue_protected.c - protected queues (HBUS_QUEUE_F_PROTECTED): the
 * message bytes in a second file that a consumer maps from a read-only
 * descriptor.  A consumer can claim, read and ack; it cannot write a byte
 * of any message, produce, or requeue by itself (hbusd requeues for it);
 * and the pair of files is checked like one queue.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash_ledger.h"
#include "queue_internal.h"
#include "testutil.h"

TestSuite(queue_protected, .timeout = 60);

struct pair {
	char path[128], data[128];
	int fd, dfd, ro;   /* state file, data file (read-write), data file read-only */
};

static void pair_make(struct pair *p, uint32_t capacity, uint32_t slot_size)
{
	static int seq;
	struct hbus_queue_config cfg = { .capacity = capacity, .slot_size = slot_size,
					 .numa_node = -1, .flags = HBUS_QUEUE_F_PROTECTED };

	snprintf(p->path, sizeof(p->path), "/dev/shm/hbus-prot-%d-%d", (int)getpid(), seq);
	snprintf(p->data, sizeof(p->data), "/dev/shm/hbus-prot-%d-%d.data", (int)getpid(), seq++);
	unlink(p->path);
	unlink(p->data);
	cr_assert_eq(hbus_queue_create_protected(p->path, p->data, "prot", &cfg, &p->fd, &p->dfd), 0);
	p->ro = open(p->data, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(p->ro, 0);
	unlink(p->path);
	unlink(p->data);
}

static void pair_close(struct pair *p)
{
	close(p->fd);
	close(p->dfd);
	close(p->ro);
}

static hbus_queue *open2(int fd, int dfd, uint32_t owner, uint32_t ack)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = ack };
	hbus_queue *q = NULL;
	int rc = hbus_queue_open_fds(fd, dfd, &o, &q);

	cr_assert_eq(rc, 0, "open: %s", hbus_strerror(rc));
	return q;
}

static void put(hbus_queue *q, uint32_t id, uint32_t len)
{
	uint8_t b[1400];

	msg_make(b, 1, id, len);
	struct hbus_out o = { .body = b, .body_len = len };
	cr_assert_eq(hbus_queue_enqueue(q, &o), 0);
}

Test(queue_protected, a_consumer_reads_but_cannot_write)
{
	struct pair p;
	hbus_queue *prod, *cons;
	struct hbus_msg m;
	uint32_t producer, id;
	uint8_t b[64];
	struct hbus_out o = { .body = b, .body_len = sizeof(b) };
	struct hbus_reservation r;

	pair_make(&p, 16, 1344);
	prod = open2(p.fd, p.dfd, 1, HBUS_ACK_AUTO);
	cons = open2(p.fd, p.ro, 2, HBUS_ACK_MANUAL);
	for (uint32_t i = 0; i < 4; i++)
		put(prod, i, 16 + i * 400);
	msg_make(b, 2, 99, sizeof(b));
	cr_assert_eq(hbus_queue_enqueue(cons, &o), -EPERM, "a reader cannot produce");
	cr_assert_eq(hbus_queue_reserve(cons, &r), -EPERM);
	for (uint32_t i = 0; i < 4; i++) {
		cr_assert_eq(hbus_queue_consume(cons, &m), 0);
		cr_assert(msg_check(m.body, m.body_len, &producer, &id) && id == i);
		cr_assert_eq(hbus_queue_ack(cons, &m), 0);
	}
	/* The bytes are not writable through anything the reader holds. */
	cr_assert_eq(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, p.ro, 0), MAP_FAILED);
	cr_assert_eq(errno, EACCES);
	cr_assert_eq(mprotect((void *)((uintptr_t)cons->slots & ~(uintptr_t)4095), 4096,
			      PROT_READ | PROT_WRITE), -1, "a read-only file mapping cannot be made writable");
	hbus_queue_close(prod);
	hbus_queue_close(cons);
	pair_close(&p);
}

static int requeue_by_hbusd(void *ctx, hbus_queue *q, const struct hbus_msg *m)
{
	hbus_queue *hbusd = ctx;

	return hbus_queue_requeue_for(hbusd, q->owner, m->pos);
}

Test(queue_protected, a_readers_requeue_is_done_for_it)
{
	struct pair p;
	hbus_queue *prod = NULL, *cons, *hbusd;
	struct hbus_msg m;
	uint32_t producer, id;

	pair_make(&p, 8, 64);
	prod = open2(p.fd, p.dfd, 1, HBUS_ACK_AUTO);
	cons = open2(p.fd, p.ro, 2, HBUS_ACK_MANUAL);
	hbusd = open2(p.fd, p.dfd, 3, HBUS_ACK_AUTO);
	put(prod, 7, 40);
	cr_assert_eq(hbus_queue_consume(cons, &m), 0);
	cr_assert_eq(hbus_queue_nack(cons, &m, 1), -EPERM, "no hook: cannot write the copy");
	cr_assert_eq(hbus_queue_requeue_for(hbusd, 9, m.pos), -ESTALE, "not owner 9's");
	cr_assert_eq(hbus_queue_requeue_for(cons, 2, m.pos), -EPERM, "the reader cannot");
	hbus_queue_set_requeue(cons, requeue_by_hbusd, hbusd);
	cr_assert_eq(hbus_queue_nack(cons, &m, 1), 0);
	cr_assert_eq(hbus_queue_ack(cons, &m), -ESTALE, "given back");
	cr_assert_eq(hbus_queue_consume(cons, &m), 0);
	cr_assert(msg_check(m.body, m.body_len, &producer, &id) && id == 7);
	cr_assert(m.flags & HBUS_MSG_REDELIVERED);
	cr_assert_eq(hbus_queue_ack(cons, &m), 0);
	hbus_queue_close(prod);
	hbus_queue_close(cons);
	hbus_queue_close(hbusd);
	pair_close(&p);
}

Test(queue_protected, the_pair_is_checked_like_one_queue)
{
	struct pair a, b;
	struct hbus_queue_opts o = { .owner = 1 };
	struct hbus_queue_config cfg = { .capacity = 8, .slot_size = 64, .numa_node = -1,
					 .flags = HBUS_QUEUE_F_PROTECTED };
	hbus_queue *q = NULL;
	int fd;

	pair_make(&a, 8, 64);
	pair_make(&b, 8, 64);
	cr_assert_eq(hbus_queue_open_fd(a.fd, &o, &q), -EINVAL, "without its data file");
	cr_assert_eq(hbus_queue_open_fds(a.fd, b.dfd, &o, &q), -EPROTO, "another queue's data");
	cr_assert_eq(hbus_queue_open_fds(a.fd, a.fd, &o, &q), -EPROTO, "not a data file");
	fd = tu_queue_fd(8, 64, HBUS_OVERFLOW_REJECT, 0);
	cr_assert_eq(hbus_queue_open_fds(fd, a.dfd, &o, &q), -EINVAL, "not a protected queue");
	cr_assert_eq(hbus_queue_create("/dev/shm/hbus-prot-x", "x", &cfg, &fd), -EINVAL,
		     "a protected queue needs its data path");
	close(fd);
	pair_close(&a);
	pair_close(&b);
}

/* Every path of the ring on the split layout: the state words in their
 * own lines, the bytes elsewhere (runs, one slot, requeue in place and by
 * copy, drop-head, recovery). */
Test(queue_protected, the_ring_works_on_the_split_layout)
{
	struct pair p;
	hbus_queue *prod, *c1, *c2;
	struct hbus_msg m[8];
	struct hbus_recovery r;
	struct hbus_queue_stats s;
	uint32_t producer, id, seen = 0;

	pair_make(&p, 8, 256);
	prod = open2(p.fd, p.dfd, 1, HBUS_ACK_AUTO);
	c1 = open2(p.fd, p.dfd, 2, HBUS_ACK_MANUAL);
	c2 = open2(p.fd, p.ro, 3, HBUS_ACK_MANUAL);
	for (uint32_t i = 0; i < 8; i++)
		put(prod, i, 16 + i * 30);
	cr_assert_eq(hbus_queue_consume_burst(c1, m, 3), 3);
	cr_assert_eq(hbus_queue_nack(c1, &m[0], 1), 0, "in place: the ring is full");
	cr_assert_eq(hbus_queue_recover_owner(prod, 2, &r), 0, "c1 'dies' holding two");
	cr_assert_eq(r.requeued, 2);
	while (hbus_queue_consume(c2, &m[0]) == 0) {
		cr_assert(msg_check(m[0].body, m[0].body_len, &producer, &id));
		cr_assert(!(seen & (1u << id)), "id %u twice", id);
		seen |= 1u << id;
		cr_assert_eq(!!(m[0].flags & HBUS_MSG_REDELIVERED), id < 3);
		cr_assert_eq(hbus_queue_ack(c2, &m[0]), 0);
	}
	cr_assert_eq(seen, 0xffu);
	hbus_queue_stats(prod, &s);
	cr_assert_eq(s.enqueued, 8);
	cr_assert_eq(s.acked, 8);
	cr_assert_eq(s.requeued, 3);
	hbus_queue_close(prod);
	hbus_queue_close(c1);
	hbus_queue_close(c2);
	pair_close(&p);
}
