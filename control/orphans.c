/*
 * orphans.c - owners whose session is gone but whose process still runs.
 *
 * Two ways to get here.  A restarted hbusd finds the owners of the previous
 * one's sessions in the superblock; and a session can close while its
 * process lives on (it closed the socket, hbusd dropped it, or it is in the
 * middle of exiting).  A process that is gone is recovered at once; one that
 * still runs is watched (pidfd, else polled by start time) until it exits,
 * when its slots are recovered, or until it says hello again with its old
 * id.  Its WRITING slots must wait for its exit: producers publish them
 * with plain stores (docs/QUEUE.md, "Recovery").
 *
 * Every such owner keeps its superblock entry, so it counts against its
 * user's --max-sessions-per-user (server.c): a process that loops hello,
 * open_queue, close runs into its own user's limit, never into anyone
 * else's.  Entries nobody holds any more are swept (sb_sweep).
 */
#include "server.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Orphans watched by a pidfd at most: a process that churns sessions must
 * not turn hbusd's descriptors into pidfds without bound.  The rest are
 * polled (by start time, twice a second). */
#define ORPHAN_PIDFDS_MAX 1024u

/* The uid a process runs as (what counts against its user's limit). */
static uid_t proc_uid(int32_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
}

struct orphan *orphan_find(struct hbusd *d, uint32_t owner)
{
	struct orphan *o;

	for (o = d->orphans; o; o = o->next)
		if (o->owner == owner)
			return o;
	return NULL;
}

void orphan_forget(struct hbusd *d, struct orphan *o)
{
	struct orphan **pp;

	for (pp = &d->orphans; *pp; pp = &(*pp)->next)
		if (*pp == o) {
			*pp = o->next;
			d->n_orphans--;
			break;
		}
	if (o->pidfd >= 0) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, o->pidfd, NULL);
		close(o->pidfd);
		d->n_pidfds--;
	}
	/* Its event may still be in this epoll batch: free after it. */
	o->ev.kind = 0;
	o->next = d->dead_orphans;
	d->dead_orphans = o;
}

static void owner_dead(struct hbusd *d, uint32_t owner)
{
	if (model_owner_gone(&d->model, owner, NULL, 0, true))
		sb_session_closed(&d->sb, owner);
	else
		sb_session_remove(&d->sb, owner);
}

void orphan_dead(struct hbusd *d, struct orphan *o)
{
	HBUS_INFO("process %d (owner %u) has exited: recovering its slots", (int)o->pid, o->owner);
	owner_dead(d, o->owner);
	orphan_forget(d, o);
}

/* Watch a running process's owner.  pidfd: one the caller opened (taken
 * over), or -1 to open it here.  -ENOMEM when not watched. */
static int orphan_watch(struct hbusd *d, uint32_t owner, uid_t uid, int32_t pid,
			uint64_t start_time, int pidfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct orphan *o;

	if (!(o = calloc(1, sizeof(*o)))) {
		if (pidfd >= 0)
			close(pidfd);
		return -ENOMEM;
	}
	if (pidfd >= 0 && d->n_pidfds >= ORPHAN_PIDFDS_MAX) {
		close(pidfd);
		pidfd = -1;
	} else if (pidfd < 0 && d->n_pidfds < ORPHAN_PIDFDS_MAX) {
		pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	}
	o->ev.kind = EV_ORPHAN;
	o->owner = owner;
	o->uid = uid;
	o->pid = pid;
	o->start_time = start_time;
	o->pidfd = pidfd;
	ev.data.ptr = o;
	if (o->pidfd >= 0 && epoll_ctl(d->epfd, EPOLL_CTL_ADD, o->pidfd, &ev) != 0) {
		close(o->pidfd);
		o->pidfd = -1;
	}
	d->n_pidfds += o->pidfd >= 0;
	o->next = d->orphans;
	d->orphans = o;
	d->n_orphans++;
	return 0;
}

/* Has this process exited?  *pidfd_out: an open pidfd when it runs. */
static bool process_exited(int32_t pid, uint64_t start_time, int *pidfd_out)
{
	struct pollfd p = { .events = POLLIN };

	*pidfd_out = -1;
	if (pid <= 0 || proc_start_time(pid) != start_time)
		return true; /* gone, or the pid names another process now */
	p.fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (p.fd < 0)
		return errno == ESRCH;
	if (poll(&p, 1, 0) == 1) {
		close(p.fd);
		return true;
	}
	*pidfd_out = p.fd;
	return false;
}

bool orphan_session_closed(struct hbusd *d, uint32_t owner, uid_t uid, int32_t pid,
			   uint64_t start_time)
{
	int pidfd;

	if (process_exited(pid, start_time, &pidfd))
		return false;
	if (orphan_watch(d, owner, uid, pid, start_time, pidfd)) {
		HBUS_WARN("owner %u (pid %d) not watched (out of memory): what it holds (unacked or "
			  "half-written messages), if anything, waits for the next hbusd start",
			  owner, (int)pid);
		return true; /* the superblock keeps it: a restart adopts it */
	}
	HBUS_INFO("owner %u (pid %d) left its session but still runs: what it holds is "
		  "recovered when it exits", owner, (int)pid);
	return true;
}

/* Owners in the superblock's session table belong to sessions of the
 * previous hbusd.  A process that is gone is recovered now; one that runs
 * is watched (pidfd) until it exits or says hello again with its id. */
void adopt_sessions(struct hbusd *d)
{
	struct hbus_super *sb = d->sb.sb;
	unsigned i;

	if (d->sb.prev_owner) /* slots a previous hbusd held mid-purge */
		model_owner_gone(&d->model, d->sb.prev_owner, NULL, 0, true);
	for (i = 0; i < HBUS_SUPER_SESSIONS; i++) {
		struct hbus_super_session *e = &sb->sessions[i];
		uint32_t owner = atomic_load(&e->owner);
		if (!owner)
			continue;
		if (!e->pid || proc_start_time(e->pid) != e->start_time) {
			HBUS_INFO("owner %u (pid %d) from before the restart is gone: recovering", owner,
				  (int)e->pid);
			owner_dead(d, owner);
			continue;
		}
		if (orphan_watch(d, owner, proc_uid(e->pid), e->pid, e->start_time, -1) != 0) {
			HBUS_ERR("owner %u (pid %d) not watched: out of memory", owner, (int)e->pid);
			continue;
		}
		HBUS_INFO("owner %u (pid %d) from before the restart still runs: kept until it exits "
			  "or resumes", owner, (int)e->pid);
	}
}

void poll_orphans(struct hbusd *d)
{
	struct orphan *o = d->orphans, *next;

	for (; o; o = next) {
		next = o->next;
		if (o->pidfd < 0 && proc_start_time(o->pid) != o->start_time)
			orphan_dead(d, o);
	}
}

unsigned orphans_of(const struct hbusd *d, uid_t uid)
{
	const struct orphan *o;
	unsigned n = 0;

	for (o = d->orphans; o; o = o->next)
		n += o->uid == uid;
	return n;
}

bool owner_held(const struct hbusd *d, uint32_t owner)
{
	return server_owner_live(d, owner) || orphan_find((struct hbusd *)d, owner) != NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

unsigned sb_sweep(struct hbusd *d)
{
	const struct session *s;
	const struct orphan *o;
	uint32_t *held;
	unsigned n = 0, i, swept = 0;
	size_t cap = (size_t)d->n_sessions + d->n_orphans + d->model.pending.n + 2;

	if (!d->sb.sb || !(held = malloc(cap * sizeof(*held))))
		return 0;
	for (s = d->sessions; s && n < cap; s = s->next)
		if (s->owner)
			held[n++] = s->owner;
	for (o = d->orphans; o && n < cap; o = o->next)
		held[n++] = o->owner;
	for (i = 0; i < d->model.pending.n && n < cap; i++)
		held[n++] = ((const struct mx_pending *)d->model.pending.v[i])->owner;
	held[n++] = d->model.self_owner;
	qsort(held, n, sizeof(*held), cmp_u32);
	for (i = 0; i < HBUS_SUPER_SESSIONS; i++) {
		uint32_t owner = atomic_load(&d->sb.sb->sessions[i].owner);

		if (owner && !bsearch(&owner, held, n, sizeof(*held), cmp_u32)) {
			sb_session_remove(&d->sb, owner);
			swept++;
		}
	}
	free(held);
	if (swept)
		HBUS_WARN("superblock: %u session entr%s nobody held any more removed", swept,
			  swept == 1 ? "y" : "ies");
	return swept;
}
