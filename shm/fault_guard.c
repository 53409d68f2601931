/* fault_guard.c - see fault_guard.h. */
#include "fault_guard.h"
#include "queue_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

_Thread_local struct fault_guard *fault_current;

static struct sigaction prev;     /* what was installed before us */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_rc = -EAGAIN;

static int in_map(const struct hbus_map *m, const void *addr)
{
	uintptr_t a = (uintptr_t)addr, lo = (uintptr_t)m->addr;

	return m->addr && a >= lo && a - lo < m->len;
}

int fault_in_queue(const hbus_queue *q, const void *addr)
{
	return q && (in_map(&q->map, addr) || in_map(&q->data_map, addr));
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct fault_guard *g = fault_current;

	(void)uc;
	/* si_code > 0: the kernel's, from a memory access (BUS_ADRERR for a
	 * page past the end of a file); <= 0: sent by a process. */
	if (g && si->si_code > 0 && (!g->q || fault_in_queue(g->q, si->si_addr))) {
		fault_current = NULL;
		g->addr = si->si_addr;
		siglongjmp(g->env, 1);
	}
	/* Not ours: whatever was there before handles it.  Returning makes
	 * the access fault again, now with that action; a sent signal is
	 * sent again. */
	sigaction(SIGBUS, &prev, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

static void install(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	install_rc = sigaction(SIGBUS, &sa, &prev) == 0 ? 0 : -errno;
}

int fault_guard_install(void)
{
	pthread_once(&once, install);
	return install_rc;
}

int fault_guard_installed(void)
{
	return install_rc == 0;
}
