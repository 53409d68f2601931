/*
 * queue_fault.c - a queue file truncated under hbusd.
 *
 * The ring needs shared writes, so every client of a queue holds a
 * read-write descriptor of its (state) file, and a read-write descriptor
 * of a regular file can be truncated.  Every process that maps the queue
 * then gets SIGBUS when it touches the pages that are gone.  hbusd must
 * not be one of them:
 *
 *  - every access to a queue's memory runs under a SIGBUS guard
 *    (shm/fault_guard.h): a fault inside that queue's mappings jumps back
 *    here, the queue is marked corrupt (its messages are gone) and its
 *    files are put back to the sizes they were made with, so the other
 *    processes mapping it stop faulting (they read zeros instead: the ring
 *    is then nonsense, and their walks say -EUCLEAN);
 *  - an inotify watch on the bus directory sees the truncation itself
 *    (IN_MODIFY) and restores the size at once, usually before anyone
 *    touches the missing pages.
 *
 * Growing a file back works on tmpfs and hugetlbfs alike (the pages come
 * back zero-filled); they are reserved again with fallocate so that a full
 * tmpfs or hugepage pool is a logged error here, not a SIGBUS later.
 */
#include "model.h"
#include "fault_guard.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* The work was cut short by a SIGBUS in q's memory. */
static void fault_taken(struct mx_queue *q, const char *during)
{
	char why[160];

	snprintf(why, sizeof(why), "a SIGBUS %s: its file was truncated by a process holding its "
		 "descriptor", during);
	mq_corrupt(q, why);
	mq_restore_size(q);
}

int mq_guarded(struct mx_queue *q, const char *during, mq_fn fn, void *arg)
{
	struct fault_guard g;
	int rc;

	if (sigsetjmp(g.env, 0) == 0) {
		fault_guard_arm(&g, q->h);
		rc = fn(q->h, arg);
		fault_guard_disarm();
		return rc;
	}
	fault_taken(q, during);
	return -EFAULT;
}

/* 1: fd had shrunk, 0: it had its size, or negative errno. */
static int restore_one(struct mx_queue *q, int fd, uint64_t size, const char *what)
{
	struct stat st;

	if (fd < 0 || size == 0)
		return 0;
	if (fstat(fd, &st) != 0)
		return -errno;
	if ((uint64_t)st.st_size == size)
		return 0;
	if (ftruncate(fd, (off_t)size) != 0) {
		int rc = -errno;

		HBUS_ERR("queue '%s' (qid %u): its %s is %lld bytes, not %llu, and cannot be put "
			 "back: %s", q->name ? q->name : "?", q->qid, what, (long long)st.st_size,
			 (unsigned long long)size, strerror(errno));
		return rc;
	}
	if (fallocate(fd, 0, 0, (off_t)size) != 0 && errno != EOPNOTSUPP)
		HBUS_ERR("queue '%s' (qid %u): its %s's pages cannot be reserved again (%s): a "
			 "process touching them may get SIGBUS", q->name ? q->name : "?", q->qid,
			 what, strerror(errno));
	/* A client truncating a file over and over gets its size restored
	 * each time, and one log line (stat counts them). */
	hbus_log(q->resized++ ? HBUS_LOG_DEBUG : HBUS_LOG_WARN, "queue '%s' (qid %u): its %s was %s "
		 "to %lld of %llu bytes by a process holding its descriptor: size restored",
		 q->name ? q->name : "?", q->qid, what,
		 (uint64_t)st.st_size < size ? "truncated" : "grown", (long long)st.st_size,
		 (unsigned long long)size);
	return (uint64_t)st.st_size < size;
}

int mq_restore_size(struct mx_queue *q)
{
	int a = restore_one(q, q->fd, q->size, "file");
	int b = restore_one(q, q->data_fd, q->data_size, "data file");

	if (a == 1 || b == 1) {
		mq_corrupt(q, "its file truncated by a process holding its descriptor");
		return 1;
	}
	return a < 0 ? a : b < 0 ? b : 0;
}

int mq_watch_open(const struct model *m)
{
	char path[64];
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -errno;
	/* The held directory itself, not a path someone could swap. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m->bus_fd);
	if (inotify_add_watch(fd, path, IN_MODIFY | IN_ONLYDIR) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

/* "queue.<qid>" or "queue.<qid>.data": the queue, or NULL. */
static struct mx_queue *queue_of(const struct model *m, const char *name)
{
	unsigned long qid;
	char *end;

	if (strncmp(name, "queue.", 6) != 0)
		return NULL;
	qid = strtoul(name + 6, &end, 10);
	if (end == name + 6 || (*end && strcmp(end, ".data")) || !qid || qid >= UINT32_MAX)
		return NULL;
	return model_queue_by_qid(m, (uint32_t)qid);
}

void mq_watch_event(struct model *m, int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool all = false;
	ssize_t n;
	unsigned i;

	/* Writes by clients through write(2) come here too: each costs an
	 * fstat, and a full event queue only a pass over every queue. */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			struct mx_queue *q;

			if (ev->mask & IN_Q_OVERFLOW)
				all = true;
			else if (ev->len && (q = queue_of(m, ev->name)) != NULL)
				mq_restore_size(q);
			p += sizeof(*ev) + ev->len;
		}
	}
	for (i = 0; all && i < m->queues.n; i++)
		mq_restore_size(m->queues.v[i]);
}
