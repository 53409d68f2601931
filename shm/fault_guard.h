/*
 * fault_guard.h - surviving the SIGBUS of a queue file someone truncated.
 *
 * A process handed a queue's read-write descriptor can ftruncate the file;
 * every process that maps the queue then gets SIGBUS when it touches the
 * pages that are gone.  hbusd and hbus-dataplane serve everyone else and
 * must survive it: they arm a guard around each piece of work on one
 * queue's memory, and a SIGBUS whose address lies in that queue's mappings
 * jumps back to the guard (siglongjmp), where the caller stops using the
 * handle (docs/SECURITY.md, "Truncated queue files").  Any other SIGBUS
 * (not in the queue armed for, sent by kill, or with no guard armed) gets
 * the action that was installed before, as if there were no handler: by
 * default the process dies with a core.
 *
 *	struct fault_guard g;
 *
 *	if (sigsetjmp(g.env, 0) == 0) {
 *		fault_guard_arm(&g, q);
 *		... work on q's memory ...
 *		fault_guard_disarm();
 *	} else {
 *		... q's file was truncated: g.addr is where ...
 *	}
 *
 * Cost: sigsetjmp without the signal mask (no syscall: the handler runs
 * with SA_NODEFER, so SIGBUS is never left blocked by a jump) and two
 * thread-local stores.  Locals changed after sigsetjmp and read after a
 * jump must be volatile, as always with setjmp.
 *
 * A handle whose work was cut short may be half-way through a transition:
 * the caller never uses it for the ring again (hbusd marks the queue
 * corrupt, the dataplane drops the queue for that lcore).
 */
#ifndef HBUS_FAULT_GUARD_H
#define HBUS_FAULT_GUARD_H

#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>

#include "hbus.h"

struct fault_guard {
	sigjmp_buf env;
	const hbus_queue *q; /* whose mappings may fault; NULL: any (a handle being opened) */
	void *addr;          /* where it faulted, after the jump */
};

extern _Thread_local struct fault_guard *fault_current;

/* Install the SIGBUS handler (once per process; later calls do nothing).
 * 0, or -errno. */
int fault_guard_install(void);
/* Is the handler installed (by this process)? */
int fault_guard_installed(void);

static inline void fault_guard_arm(struct fault_guard *g, const hbus_queue *q)
{
	g->q = q;
	g->addr = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	fault_current = g;
	atomic_signal_fence(memory_order_seq_cst);
}

static inline void fault_guard_disarm(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	fault_current = NULL;
	atomic_signal_fence(memory_order_seq_cst);
}

/* Does addr lie in one of q's mappings (state file, data file)? */
int fault_in_queue(const hbus_queue *q, const void *addr);

#endif
