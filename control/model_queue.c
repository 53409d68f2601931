/*
 * model_queue.c - queue files: create, adopt, free, purge, recover.
 *
 * One file per queue, <bus dir>/queue.<qid>, mode 0600, created and opened
 * through hbusd's held bus directory.  hbusd keeps the descriptor (clients
 * receive dups of it over the socket) and its own handle on the ring,
 * opened with hbusd's owner id of this epoch, for purging, statistics and
 * recovering dead owners' slots.
 *
 * A queue's name and arguments are hbusd's own (the request, the state or
 * definitions file), never the file's: a client holding the descriptor can
 * write the header.  A file whose header disagrees is not adopted.
 */
#include "model.h"
#include "log.h"
#include "superblock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int open_handle(struct model *m, int fd, hbus_queue **h)
{
	struct hbus_queue_opts o = { .owner = m->self_owner, .ack_mode = HBUS_ACK_AUTO };

	return hbus_queue_open_fd(fd, &o, h);
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

int mq_create(struct model *m, const struct queue_args *a, uint32_t owner, struct mx_queue **out,
	      struct herr *e)
{
	struct mx_queue *q;
	char path[512], name[MQ_NAME_MAX];
	int rc = -EEXIST, tries;

	q = calloc(1, sizeof(*q));
	if (!q)
		return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
	q->fd = -1;
	/* A file may already sit at a fresh qid when the superblock was lost
	 * but queue files were not: never overwrite one, take the next qid. */
	for (tries = 0; rc == -EEXIST && tries < 64; tries++) {
		q->qid = sb_alloc_qid(m->sb);
		if (!q->qid)
			break;
		/* Created through the held directory (the queue layer takes a
		 * path: this one resolves through our descriptor). */
		mq_name(q->qid, name);
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", m->bus_fd, name);
		rc = hbus_queue_create(path, a->name, &a->cfg, &q->fd);
		if (rc == -EEXIST)
			HBUS_WARN("%s/%s exists but no queue has qid %u: left alone", m->bus_dir, name,
				  q->qid);
	}
	if (rc) {
		free(q);
		return create_error(m, a, rc, e);
	}
	rc = open_handle(m, q->fd, &q->h);
	if (rc == 0)
		rc = fill(q, a, owner);
	if (rc) {
		mq_free(m, q, true);
		return create_error(m, a, rc, e);
	}
	HBUS_INFO("queue '%s' created: qid %u, capacity %u, slot_size %u, %llu bytes%s%s",
		  q->name, q->qid, q->cfg.capacity, q->cfg.slot_size,
		  (unsigned long long)mq_ring_bytes(&q->cfg), q->durable ? ", durable" : "",
		  q->exclusive ? ", exclusive" : "");
	*out = q;
	return 0;
}

static bool config_equal(const struct hbus_queue_config *a, const struct hbus_queue_config *b)
{
	return a->capacity == b->capacity && a->slot_size == b->slot_size &&
	       a->overflow == b->overflow && a->ttl_ms == b->ttl_ms && a->numa_node == b->numa_node &&
	       a->flags == b->flags;
}

int mq_adopt(struct model *m, uint32_t qid, const struct queue_args *a, struct mx_queue **out)
{
	struct hbus_queue_config cfg;
	struct mx_queue *q;
	const char *hname;
	char name[MQ_NAME_MAX];
	int rc;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->qid = qid;
	mq_name(qid, name);
	q->fd = openat(m->bus_fd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	rc = q->fd < 0 ? -errno : 0;
	if (rc == 0)
		rc = open_handle(m, q->fd, &q->h);
	if (rc) {
		if (q->fd >= 0)
			close(q->fd);
		free(q);
		return rc;
	}
	/* The header is only compared with what hbusd knows, never taken. */
	hbus_queue_name(q->h, &hname);
	hbus_queue_config_get(q->h, &cfg);
	if (strcmp(a->name, hname) || !config_equal(&a->cfg, &cfg)) {
		mq_free(m, q, false);
		return -EEXIST;
	}
	rc = fill(q, a, 0);
	if (rc) {
		mq_free(m, q, false);
		return rc;
	}
	sb_note_qid(m->sb, qid);
	*out = q;
	return 0;
}

void mq_free(struct model *m, struct mx_queue *q, bool unlink_file)
{
	char name[MQ_NAME_MAX];

	if (q->h)
		hbus_queue_close(q->h);
	if (q->fd >= 0)
		close(q->fd);
	/* Clients that hold the descriptor keep the ring mapped; the memory
	 * goes back to the pool when the last of them closes it. */
	mq_name(q->qid, name);
	if (unlink_file && unlinkat(m->bus_fd, name, 0) != 0)
		HBUS_WARN("cannot remove %s/%s: %s", m->bus_dir, name, strerror(errno));
	free(q->name);
	free(q->dlx);
	free(q->dlx_key);
	grants_free(q);
	free(q);
}

int mq_depth(const struct mx_queue *q, uint64_t *depth)
{
	return hbus_queue_depth(q->h, depth);
}

uint64_t mq_unacked(const struct mx_queue *q)
{
	struct hbus_queue_stats s;
	uint64_t out;

	if (hbus_queue_stats(q->h, &s))
		return 0;
	/* Every claim ends in exactly one of these; what has not ended yet is
	 * held by a consumer.  Approximate while consumers run. */
	out = s.acked + s.released + s.requeued + s.rejected;
	return s.delivered > out ? s.delivered - out : 0;
}

/*
 * The ring of q is corrupt: a walk over it found no end (slot words no
 * protocol can produce, written by a broken or hostile process that holds
 * its descriptor).  Counted once, logged once; hbusd stops working on it
 * (no recovery retries, purge refused) and says so in list and stat, and
 * clients see -EUCLEAN from their own walks.  Delete and declare it again.
 */
void mq_corrupt(struct mx_queue *q, const char *during)
{
	if (q->corrupt)
		return;
	q->corrupt = true;
	HBUS_ERR("queue '%s' (qid %u) is corrupt (found %s): hbusd stops recovering and purging "
		 "it; delete and declare it again", q->name, q->qid, during);
}

int mq_purge(struct model *m, struct mx_queue *q, uint64_t *purged)
{
	int rc;

	(void)m;
	/* Bounded: a purge takes what is there, not what a producer keeps
	 * adding (or a forger keeps making look READY) while it runs. */
	rc = hbus_queue_purge(q->h, 2 * (uint64_t)q->cfg.capacity, purged);
	if (rc == -EUCLEAN)
		mq_corrupt(q, "while purging");
	if (rc < 0)
		return rc;
	HBUS_INFO("queue '%s' purged: %llu message(s)", q->name, (unsigned long long)*purged);
	return 0;
}

int mq_recover(struct model *m, struct mx_queue *q, uint32_t owner)
{
	struct hbus_recovery r;
	int rc;

	(void)m;
	if (q->corrupt)
		return -EUCLEAN;
	rc = hbus_queue_recover_owner(q->h, owner, &r);
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
