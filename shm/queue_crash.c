/*
 * queue_crash.c - crash points (queue_crash.h).  Built only into the test
 * copy of the ring code (-Dcrashpoints=true); the product has none.
 */
#include "queue_crash.h"

#ifdef HBUS_CRASHPOINTS
#include <signal.h>
#include <unistd.h>

const char *const hbus_crashpoint_names[HBUS_CP_COUNT] = {
#define HBUS_CP_NAME(n) #n,
	HBUS_CRASHPOINT_LIST(HBUS_CP_NAME)
#undef HBUS_CP_NAME
};

unsigned long hbus_crashpoint_passes[HBUS_CP_COUNT];
static int armed = -1;
static unsigned long armed_left;
static void (*hook_fn)(int point, void *ctx);
static void *hook_ctx;

void hbus_crashpoint_hook(void (*fn)(int point, void *ctx), void *ctx)
{
	hook_ctx = ctx;
	hook_fn = fn;
}

void hbus_crashpoint_arm(int point, unsigned long hit)
{
	armed = point >= 0 && point < HBUS_CP_COUNT && hit ? point : -1;
	armed_left = hit;
}

void hbus_crashpoint_pass(int point)
{
	hbus_crashpoint_passes[point]++;
	if (hook_fn)
		hook_fn(point, hook_ctx);
	if (point == armed && --armed_left == 0)
		kill(getpid(), SIGKILL);
}
#endif
