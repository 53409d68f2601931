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
 */
#include "server.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Watched owners at most: a process that churns sessions must not turn
 * hbusd's descriptors into pidfds without bound. */
#define ORPHANS_MAX 1024u

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
 * over), or -1 to open it here.  -ENOMEM / -ENOSPC (cap) when not watched. */
static int orphan_watch(struct hbusd *d, uint32_t owner, int32_t pid, uint64_t start_time,
			int pidfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct orphan *o;

	if (d->n_orphans >= ORPHANS_MAX || !(o = calloc(1, sizeof(*o)))) {
		if (pidfd >= 0)
			close(pidfd);
		return d->n_orphans >= ORPHANS_MAX ? -ENOSPC : -ENOMEM;
	}
	o->ev.kind = EV_ORPHAN;
	o->owner = owner;
	o->pid = pid;
	o->start_time = start_time;
	o->pidfd = pidfd >= 0 ? pidfd : (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	ev.data.ptr = o;
	if (o->pidfd >= 0 && epoll_ctl(d->epfd, EPOLL_CTL_ADD, o->pidfd, &ev) != 0) {
		close(o->pidfd);
		o->pidfd = -1;
	}
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

bool orphan_session_closed(struct hbusd *d, uint32_t owner, int32_t pid, uint64_t start_time)
{
	int pidfd, rc;

	if (process_exited(pid, start_time, &pidfd))
		return false;
	rc = orphan_watch(d, owner, pid, start_time, pidfd);
	if (rc) {
		HBUS_WARN("owner %u (pid %d) not watched (%s): what it holds (unacked or "
			  "half-written messages), if anything, waits for the next hbusd start",
			  owner, (int)pid,
			  rc == -ENOSPC ? "too many watched processes" : "out of memory");
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
		if (orphan_watch(d, owner, e->pid, e->start_time, -1) != 0) {
			HBUS_ERR("owner %u (pid %d) not watched: too many, or out of memory", owner,
				 (int)e->pid);
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
