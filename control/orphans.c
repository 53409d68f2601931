/*
 * orphans.c - sessions of a previous hbusd whose processes still run.
 *
 * A restarted hbusd finds the owners of the previous one's sessions in the
 * superblock.  A process that is gone is recovered at once; one that still
 * runs is watched (pidfd, else polled by start time) until it exits, when
 * its slots are recovered, or until it says hello again with its old id.
 */
#include "server.h"
#include "log.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

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
	if (model_owner_gone(&d->model, owner, NULL, 0))
		sb_session_closed(&d->sb, owner);
	else
		sb_session_remove(&d->sb, owner);
}

void orphan_dead(struct hbusd *d, struct orphan *o)
{
	HBUS_INFO("process %d (owner %u) from before the restart has exited: recovering its "
		  "slots", (int)o->pid, o->owner);
	owner_dead(d, o->owner);
	orphan_forget(d, o);
}

/* Owners in the superblock's session table belong to sessions of the
 * previous hbusd.  A process that is gone is recovered now; one that runs
 * is watched (pidfd) until it exits or says hello again with its id. */
void adopt_sessions(struct hbusd *d)
{
	struct hbus_super *sb = d->sb.sb;
	unsigned i;

	if (d->sb.prev_owner) /* slots a previous hbusd held mid-purge */
		model_owner_gone(&d->model, d->sb.prev_owner, NULL, 0);
	for (i = 0; i < HBUS_SUPER_SESSIONS; i++) {
		struct hbus_super_session *e = &sb->sessions[i];
		uint32_t owner = atomic_load(&e->owner);
		struct epoll_event ev = { .events = EPOLLIN };
		struct orphan *o;

		if (!owner)
			continue;
		if (!e->pid || proc_start_time(e->pid) != e->start_time) {
			HBUS_INFO("owner %u (pid %d) from before the restart is gone: recovering", owner,
				  (int)e->pid);
			owner_dead(d, owner);
			continue;
		}
		o = calloc(1, sizeof(*o));
		if (!o) {
			HBUS_ERR("out of memory: owner %u not watched", owner);
			continue;
		}
		o->ev.kind = EV_ORPHAN;
		o->owner = owner;
		o->pid = e->pid;
		o->start_time = e->start_time;
		o->pidfd = (int)syscall(SYS_pidfd_open, (pid_t)e->pid, 0);
		ev.data.ptr = o;
		if (o->pidfd >= 0 && epoll_ctl(d->epfd, EPOLL_CTL_ADD, o->pidfd, &ev) != 0) {
			close(o->pidfd);
			o->pidfd = -1;
		}
		o->next = d->orphans;
		d->orphans = o;
		HBUS_INFO("owner %u (pid %d) from before the restart still runs: kept until it exits "
			  "or resumes", owner, (int)o->pid);
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
