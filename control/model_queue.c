/*
 * model_queue.c - queue files: create, adopt, free, purge, recover.
 *
 * One file per queue, <bus dir>/queue.<qid>, mode 0600, created and opened
 * through hbusd's held bus directory; a protected queue has a second one,
 * queue.<qid>.data, with its message bytes (docs/QUEUE.md).  hbusd keeps
 * the descriptors (clients receive dups of them over the socket: the data
 * file read-write for writers, read-only for readers) and its own handle
 * on the ring, opened with hbusd's owner id of this epoch, for purging,
 * statistics and recovering dead owners' slots.
 *
 * A queue's name and arguments are hbusd's own (the request, the state or
 * definitions file), never the file's: a client holding the descriptor can
 * write the header.  A file whose header disagrees is not adopted.
 *
 * Every access to a queue's memory runs under the SIGBUS guard
 * (queue_fault.c): a client holding a read-write descriptor can truncate
 * the file under hbusd.
 */
#include "model.h"
#include "log.h"
#include "superblock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

int mq_path(const struct model *m, uint32_t qid, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/queue.%u", m->bus_dir, qid);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void mq_name(uint32_t qid, char name[MQ_NAME_MAX])
{
	snprintf(name, MQ_NAME_MAX, "queue.%u", qid);
}

void mq_data_name(uint32_t qid, char name[MQ_NAME_MAX])
{
	snprintf(name, MQ_NAME_MAX, "queue.%u.data", qid);
}

static int do_open(hbus_queue *unused, void *arg)
{
	struct { struct model *m; struct mx_queue *q; } *a = arg;
	struct hbus_queue_opts o = { .owner = a->m->self_owner, .ack_mode = HBUS_ACK_AUTO };

	(void)unused;
	return hbus_queue_open_fds(a->q->fd, a->q->data_fd, &o, &a->q->h);
}

/* hbusd's own handle: the data file read-write (it writes a reader's
 * requeue flag).  The sizes are what a truncation is undone to. */
static int open_handle(struct model *m, struct mx_queue *q)
{
	struct { struct model *m; struct mx_queue *q; } a = { m, q };
	struct stat st;
	int rc;

	if (fstat(q->fd, &st) != 0)
		return -errno;
	q->size = (uint64_t)st.st_size;
	if (q->data_fd >= 0) {
		if (fstat(q->data_fd, &st) != 0)
			return -errno;
		q->data_size = (uint64_t)st.st_size;
	}
	rc = mq_guarded(q, "opening its file", do_open, &a);
	return rc == -EFAULT ? -EPROTO : rc;
}

/* Fill the model fields of q from a (names copied). */
static int fill(struct mx_queue *q, const struct queue_args *a, uint32_t owner)
{
	q->name = strdup(a->name);
	q->cfg = a->cfg;
	q->dlx = a->dlx ? strdup(a->dlx) : NULL;
	q->dlx_key = a->dlx_key ? strdup(a->dlx_key) : NULL;
	q->durable = a->durable;
	q->exclusive = a->exclusive;
	q->auto_delete = a->auto_delete;
	q->excl_owner = a->exclusive ? owner : 0;
	return !q->name || (a->dlx && !q->dlx) || (a->dlx_key && !q->dlx_key) ? -ENOMEM : 0;
}

uint64_t mq_ring_bytes(const struct hbus_queue_config *c)
{
	uint64_t stride = (32u + c->slot_size + 63u) & ~63ull;

	return (uint64_t)c->capacity * stride;
}

static int create_error(const struct model *m, const struct queue_args *a, int rc,
			struct herr *e)
{
	struct statfs sf;
	char room[96] = "";

	if (rc == -ENOSPC || rc == -ENOMEM) {
		bool known = fstatfs(m->bus_fd, &sf) == 0;
		bool huge = known && (unsigned long)sf.f_type == HUGETLBFS_MAGIC;

		/* A hugetlbfs mount without size= reports no limit of its own:
		 * then the pool (HugePages_Free) is what ran out. */
		if (known && sf.f_blocks && sf.f_blocks != (fsblkcnt_t)-1)
			snprintf(room, sizeof(room), ", %llu bytes free there",
				 (unsigned long long)sf.f_bavail * (unsigned long long)sf.f_bsize);
		return herr_set(e, AMQP_PRECONDITION,
				"no space in %s: queue '%s' needs %llu bytes (capacity %u x slot_size "
				"%u)%s; %s, or declare a smaller queue", m->bus_dir, a->name,
				(unsigned long long)mq_ring_bytes(&a->cfg), a->cfg.capacity,
				a->cfg.slot_size, room,
				huge ? "reserve more hugepages (scripts/setup-hugepages --pages N)"
				     : "give the tmpfs more room (mount -o remount,size=...)");
	}
	if (rc == -EMFILE || rc == -ENFILE)
		return herr_set(e, AMQP_PRECONDITION, "cannot create queue '%s': hbusd has reached its "
				"limit of open files (one per queue and session): raise it (ulimit -n, "
				"or LimitNOFILE= under systemd) or lower --max-queues", a->name);
	if (rc == -EINVAL && a->cfg.numa_node >= 0)
		return herr_set(e, AMQP_PRECONDITION, "cannot place queue '%s' on NUMA node %d: "
				"no such node on this host", a->name, a->cfg.numa_node);
	return herr_set(e, AMQP_INTERNAL_ERROR, "cannot create queue '%s': %s", a->name,
			hbus_strerror(rc));
}

/* Create the file(s) of qid: 0, -EEXIST when one is there already. */
static int create_files(struct model *m, struct mx_queue *q, const struct queue_args *a)
{
	char path[512], data_path[512], name[MQ_NAME_MAX], data_name[MQ_NAME_MAX];
	int rc;

	/* Created through the held directory (the queue layer takes a path:
	 * this one resolves through our descriptor), O_EXCL | O_NOFOLLOW. */
	mq_name(q->qid, name);
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", m->bus_fd, name);
	if (!(a->cfg.flags & HBUS_QUEUE_F_PROTECTED)) {
		rc = hbus_queue_create(path, a->name, &a->cfg, &q->fd);
	} else {
		mq_data_name(q->qid, data_name);
		snprintf(data_path, sizeof(data_path), "/proc/self/fd/%d/%s", m->bus_fd, data_name);
		rc = hbus_queue_create_protected(path, data_path, a->name, &a->cfg, &q->fd,
						 &q->data_fd);
		/* What readers get: the same file, read-only. */
		if (rc == 0 && (q->data_ro_fd = openat(m->bus_fd, data_name,
						       O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
			rc = -errno;
			close(q->fd);
			close(q->data_fd);
			q->fd = q->data_fd = -1;
			unlinkat(m->bus_fd, name, 0);
			unlinkat(m->bus_fd, data_name, 0);
		}
	}
	if (rc == -EEXIST)
		HBUS_WARN("%s/%s%s exists but no queue has qid %u: left alone", m->bus_dir, name,
			  a->cfg.flags & HBUS_QUEUE_F_PROTECTED ? " or its .data" : "", q->qid);
	return rc;
}

static struct mx_queue *queue_new(uint32_t qid)
{
	struct mx_queue *q = calloc(1, sizeof(*q));

	if (q) {
		q->qid = qid;
		q->fd = q->data_fd = q->data_ro_fd = -1;
	}
	return q;
}

int mq_create(struct model *m, const struct queue_args *a, uint32_t owner, struct mx_queue **out,
	      struct herr *e)
{
	struct mx_queue *q = queue_new(0);
	int rc = -EEXIST, tries;

	if (!q)
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	q->cfg = a->cfg; /* which files mq_free removes */
	/* A file may already sit at a fresh qid when the superblock was lost
	 * but queue files were not: never overwrite one, take the next qid. */
	for (tries = 0; rc == -EEXIST && tries < 64; tries++) {
		q->qid = sb_alloc_qid(m->sb);
		if (!q->qid)
			break;
		rc = create_files(m, q, a);
	}
	if (rc) { /* nothing of it is left */
		free(q);
		return create_error(m, a, rc, e);
	}
	rc = open_handle(m, q);
	if (rc == 0)
		rc = fill(q, a, owner);
	if (rc) {
		mq_free(m, q, true);
		return create_error(m, a, rc, e);
	}
	HBUS_INFO("queue '%s' created: qid %u, capacity %u, slot_size %u, %llu bytes%s%s%s",
		  q->name, q->qid, q->cfg.capacity, q->cfg.slot_size,
		  (unsigned long long)mq_ring_bytes(&q->cfg), q->durable ? ", durable" : "",
		  q->exclusive ? ", exclusive" : "",
		  q->cfg.flags & HBUS_QUEUE_F_PROTECTED ? ", protected" : "");
	*out = q;
	return 0;
}

static bool config_equal(const struct hbus_queue_config *a, const struct hbus_queue_config *b)
{
	return a->capacity == b->capacity && a->slot_size == b->slot_size &&
	       a->overflow == b->overflow && a->ttl_ms == b->ttl_ms && a->numa_node == b->numa_node &&
	       a->flags == b->flags;
}

/* The header is only compared with what hbusd knows, never taken. */
static int do_compare(hbus_queue *h, void *arg)
{
	const struct queue_args *a = arg;
	struct hbus_queue_config cfg;
	const char *hname;

	hbus_queue_name(h, &hname);
	hbus_queue_config_get(h, &cfg);
	return strncmp(a->name, hname, HBUS_NAME_MAX + 1) || !config_equal(&a->cfg, &cfg) ? -EEXIST
											     : 0;
}

static int open_at(const struct model *m, const char *name, int flags)
{
	int fd = openat(m->bus_fd, name, flags | O_CLOEXEC | O_NOFOLLOW);

	return fd < 0 ? -errno : fd;
}

int mq_adopt(struct model *m, uint32_t qid, const struct queue_args *a, struct mx_queue **out)
{
	struct mx_queue *q = queue_new(qid);
	char name[MQ_NAME_MAX];
	int rc;

	if (!q)
		return -ENOMEM;
	mq_name(qid, name);
	rc = q->fd = open_at(m, name, O_RDWR);
	/* A protected queue's pair must agree (the open checks that the data
	 * file was made with this state file). */
	if (rc >= 0 && (a->cfg.flags & HBUS_QUEUE_F_PROTECTED)) {
		mq_data_name(qid, name);
		rc = q->data_fd = open_at(m, name, O_RDWR);
		if (rc >= 0)
			rc = q->data_ro_fd = open_at(m, name, O_RDONLY);
	}
	if (rc >= 0)
		rc = open_handle(m, q);
	if (rc == -EINVAL) /* the file is protected and the state says not, or the reverse */
		rc = -EEXIST;
	if (rc == 0)
		rc = mq_guarded(q, "adopting it", do_compare, (void *)a);
	if (rc == 0)
		rc = fill(q, a, 0);
	if (rc) {
		mq_free(m, q, false);
		return rc == -EFAULT ? -EPROTO : rc;
	}
	sb_note_qid(m->sb, qid);
	*out = q;
	return 0;
}

static int do_close(hbus_queue *h, void *arg)
{
	(void)arg;
	return hbus_queue_close(h);
}

void mq_free(struct model *m, struct mx_queue *q, bool unlink_file)
{
	char name[MQ_NAME_MAX];

	/* A close that faults (the file truncated again, its pages not
	 * coming back) leaves the handle mapped: never touched again. */
	if (q->h && mq_guarded(q, "closing it", do_close, NULL) == -EFAULT)
		HBUS_WARN("queue '%s' (qid %u): hbusd's handle could not be closed (its file "
			  "faults): left mapped", q->name ? q->name : "?", q->qid);
	if (q->fd >= 0)
		close(q->fd);
	if (q->data_fd >= 0)
		close(q->data_fd);
	if (q->data_ro_fd >= 0)
		close(q->data_ro_fd);
	/* Clients that hold the descriptor keep the ring mapped; the memory
	 * goes back to the pool when the last of them closes it. */
	mq_name(q->qid, name);
	if (unlink_file && unlinkat(m->bus_fd, name, 0) != 0)
		HBUS_WARN("cannot remove %s/%s: %s", m->bus_dir, name, strerror(errno));
	mq_data_name(q->qid, name);
	if (unlink_file && (q->cfg.flags & HBUS_QUEUE_F_PROTECTED) &&
	    unlinkat(m->bus_fd, name, 0) != 0)
		HBUS_WARN("cannot remove %s/%s: %s", m->bus_dir, name, strerror(errno));
	free(q->name);
	free(q->dlx);
	free(q->dlx_key);
	grants_free(q);
	free(q);
}

static int do_depth(hbus_queue *h, void *arg)
{
	return hbus_queue_depth(h, arg);
}

int mq_depth(struct mx_queue *q, uint64_t *depth)
{
	*depth = 0;
	return mq_guarded(q, "reading its depth", do_depth, depth);
}

static int do_stats(hbus_queue *h, void *arg)
{
	return hbus_queue_stats(h, arg);
}

int mq_stats(struct mx_queue *q, struct hbus_queue_stats *s)
{
	return mq_guarded(q, "reading its counters", do_stats, s);
}

static int do_scan(hbus_queue *h, void *arg)
{
	return hbus_queue_scan(h, arg);
}

int mq_scan(struct mx_queue *q, struct hbus_queue_census *c)
{
	memset(c, 0, sizeof(*c));
	return mq_guarded(q, "counting its slots", do_scan, c);
}

uint64_t mq_unacked(struct mx_queue *q)
{
	struct hbus_queue_stats s;
	uint64_t out;

	if (mq_stats(q, &s))
		return 0;
	/* Every claim ends in exactly one of these; what has not ended yet is
	 * held by a consumer.  Approximate while consumers run. */
	out = s.acked + s.released + s.requeued + s.rejected;
	return s.delivered > out ? s.delivered - out : 0;
}

/*
 * The ring of q is corrupt: a walk over it found no end (slot words no
 * protocol can produce, written by a broken or hostile process that holds
 * its descriptor), or its file was truncated.  Counted once, logged once;
 * hbusd stops working on it (no recovery retries, purge refused) and says
 * so in list and stat, and clients see -EUCLEAN from their own walks.
 * Delete and declare it again.
 */
void mq_corrupt(struct mx_queue *q, const char *during)
{
	if (q->corrupt)
		return;
	q->corrupt = true;
	HBUS_ERR("queue '%s' (qid %u) is corrupt (found %s): hbusd stops recovering and purging "
		 "it; delete and declare it again", q->name ? q->name : "?", q->qid, during);
}

struct purge_arg {
	uint64_t max, *purged;
};

static int do_purge(hbus_queue *h, void *arg)
{
	struct purge_arg *a = arg;

	return hbus_queue_purge(h, a->max, a->purged);
}

int mq_purge(struct model *m, struct mx_queue *q, uint64_t *purged)
{
	/* Bounded: a purge takes what is there, not what a producer keeps
	 * adding (or a forger keeps making look READY) while it runs. */
	struct purge_arg a = { 2 * (uint64_t)q->cfg.capacity, purged };
	int rc;

	(void)m;
	*purged = 0;
	rc = mq_guarded(q, "while purging", do_purge, &a);
	if (rc == -EUCLEAN)
		mq_corrupt(q, "while purging");
	if (rc < 0)
		return rc == -EFAULT ? -EUCLEAN : rc;
	HBUS_INFO("queue '%s' purged: %llu message(s)", q->name, (unsigned long long)*purged);
	return 0;
}

struct recover_arg {
	uint32_t owner;
	struct hbus_recovery *r;
};

static int do_recover(hbus_queue *h, void *arg)
{
	struct recover_arg *a = arg;

	return hbus_queue_recover_owner(h, a->owner, a->r);
}

int mq_recover(struct model *m, struct mx_queue *q, uint32_t owner)
{
	struct hbus_recovery r = { 0 };
	struct recover_arg a = { owner, &r };
	int rc;

	(void)m;
	if (q->corrupt)
		return -EUCLEAN;
	rc = mq_guarded(q, "while recovering a dead owner's slots", do_recover, &a);
	if (rc == -EUCLEAN)
		mq_corrupt(q, "while recovering a dead owner's slots");
	if (rc && rc != -EAGAIN) {
		HBUS_ERR("recovering owner %u on queue '%s': %s", owner, q->name, hbus_strerror(rc));
		return rc;
	}
	if (r.requeued || r.released || r.skipped || r.removed)
		HBUS_INFO("owner %u gone: queue '%s' requeued %u, released %u, skipped %u, "
			  "removals finished %u", owner, q->name, r.requeued, r.released, r.skipped,
			  r.removed);
	return rc;
}

struct requeue_arg {
	uint32_t owner;
	uint64_t pos;
};

static int do_requeue(hbus_queue *h, void *arg)
{
	struct requeue_arg *a = arg;

	return hbus_queue_requeue_for(h, a->owner, a->pos);
}

int mq_requeue_for(struct mx_queue *q, uint32_t owner, uint64_t pos)
{
	struct requeue_arg a = { owner, pos };

	if (q->corrupt)
		return -EUCLEAN;
	return mq_guarded(q, "while requeueing for a reader", do_requeue, &a);
}
