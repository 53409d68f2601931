/*
 * test_queue_file.c - a queue file is trusted only after its magic, layout
 * version and every size field check out: corrupt, truncated or foreign
 * files are refused with a clear error, never mapped and used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "queue_layout.h"
#include "testutil.h"

static int open_with(int fd)
{
	struct hbus_queue_opts o = { .owner = 1 };
	hbus_queue *q = NULL;
	int rc = hbus_queue_open_fd(fd, &o, &q);

	if (rc == 0)
		hbus_queue_close(q);
	return rc;
}

static struct hbus_queue_hdr *map_hdr(int fd)
{
	void *p = mmap(NULL, sizeof(struct hbus_queue_hdr), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

Test(queue_file, valid_file_opens)
{
	int fd = tu_queue_fd(16, 128, HBUS_OVERFLOW_REJECT, 0);
	cr_assert_eq(open_with(fd), 0);
	close(fd);
}

Test(queue_file, wrong_magic_is_eproto)
{
	int fd = tu_queue_fd(16, 128, HBUS_OVERFLOW_REJECT, 0);
	struct hbus_queue_hdr *h = map_hdr(fd);
	h->file.magic ^= 1;
	cr_assert_eq(open_with(fd), -EPROTO);
	cr_assert_str_neq(hbus_strerror(-EPROTO), "");
	munmap(h, sizeof(*h));
	close(fd);
}

Test(queue_file, other_layout_version_is_eprotonosupport)
{
	int fd = tu_queue_fd(16, 128, HBUS_OVERFLOW_REJECT, 0);
	struct hbus_queue_hdr *h = map_hdr(fd);
	h->file.version = HBUS_QUEUE_LAYOUT_VERSION + 1;
	cr_assert_eq(open_with(fd), -EPROTONOSUPPORT);
	munmap(h, sizeof(*h));
	close(fd);
}

Test(queue_file, wrong_kind_is_eproto)
{
	int fd = tu_queue_fd(16, 128, HBUS_OVERFLOW_REJECT, 0);
	struct hbus_queue_hdr *h = map_hdr(fd);
	h->file.kind = HBUS_FILE_ROUTES;
	cr_assert_eq(open_with(fd), -EPROTO);
	munmap(h, sizeof(*h));
	close(fd);
}

Test(queue_file, inconsistent_sizes_are_eproto)
{
	int fd = tu_queue_fd(16, 128, HBUS_OVERFLOW_REJECT, 0);
	struct hbus_queue_hdr *h = map_hdr(fd);
	struct hbus_queue_hdr saved = *h;

	h->capacity = 12; /* not a power of two */
	cr_assert_eq(open_with(fd), -EPROTO);
	h->capacity = 1u << 20; /* larger than the file */
	cr_assert_eq(open_with(fd), -EPROTO);
	h->capacity = saved.capacity;
	h->slot_stride = 64; /* does not fit slot_size */
	cr_assert_eq(open_with(fd), -EPROTO);
	h->slot_stride = saved.slot_stride;
	memset(h->name, 'x', sizeof(h->name)); /* no terminator */
	cr_assert_eq(open_with(fd), -EPROTO);
	memcpy(h->name, saved.name, sizeof(h->name));
	h->file.size = 1ull << 40;
	cr_assert_eq(open_with(fd), -EPROTO);
	h->file.size = saved.file.size;
	cr_assert_eq(open_with(fd), 0, "restored header opens again");
	munmap(h, sizeof(*h));
	close(fd);
}

Test(queue_file, truncated_file_is_eproto)
{
	int fd = tu_queue_fd(64, 128, HBUS_OVERFLOW_REJECT, 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	cr_assert_eq(open_with(fd), -EPROTO);
	cr_assert_eq(ftruncate(fd, 16), 0);
	cr_assert_eq(open_with(fd), -EPROTO);
	cr_assert_eq(ftruncate(fd, 0), 0);
	cr_assert_eq(open_with(fd), -EPROTO);
	close(fd);
}

Test(queue_file, foreign_files_are_refused)
{
	char path[] = "/dev/shm/hbus-test-foreign-XXXXXX";
	int fd = mkstemp(path);
	char junk[8192];

	cr_assert_geq(fd, 0);
	unlink(path);
	memset(junk, 0x5a, sizeof(junk));
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	cr_assert_eq(open_with(fd), -EPROTO);
	close(fd);
	fd = open("/dev/null", O_RDWR);
	cr_assert_neq(open_with(fd), 0);
	close(fd);
}
