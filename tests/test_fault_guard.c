/*
 * test_fault_guard.c - the SIGBUS guard hbusd and hbus-dataplane put around
 * queue memory (shm/fault_guard.h): a fault in the queue armed for jumps
 * back, every other SIGBUS keeps its usual action (the process dies).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_guard.h"
#include "queue_internal.h"

/* Under ASan, its own SIGBUS handler would report an unguarded fault and
 * exit 1: these tests check what the kernel does with a SIGBUS that no
 * guard takes, so ASan leaves SIGBUS alone here (no effect without ASan). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_sigbus=0";
}

static char path[64];
static int fd = -1;
static off_t size;
static hbus_queue *q;

static void setup(void)
{
	struct hbus_queue_config c = { .capacity = 64, .slot_size = 64, .numa_node = -1 };
	struct hbus_queue_opts o = { .owner = 1, .ack_mode = HBUS_ACK_AUTO };

	snprintf(path, sizeof(path), "/dev/shm/hbus-test-fault-%d", (int)getpid());
	cr_assert_eq(hbus_queue_create(path, "q", &c, &fd), 0);
	unlink(path);
	cr_assert_eq(hbus_queue_open_fd(fd, &o, &q), 0);
	cr_assert_eq(fault_guard_install(), 0);
	size = lseek(fd, 0, SEEK_END);
}

static void teardown(void)
{
	hbus_queue_close(q);
	close(fd);
}

TestSuite(fault_guard, .init = setup, .fini = teardown);

/* Read q's counters under the guard: 0, or 1 when it faulted. */
static int guarded_stats(const hbus_queue *armed_for, struct fault_guard *g)
{
	struct hbus_queue_stats s;

	if (sigsetjmp(g->env, 0) == 0) {
		fault_guard_arm(g, armed_for);
		hbus_queue_stats(q, &s);
		fault_guard_disarm();
		return 0;
	}
	return 1;
}

Test(fault_guard, a_truncated_queue_jumps_back_every_time)
{
	struct fault_guard g;

	cr_assert_eq(guarded_stats(q, &g), 0);
	cr_assert_eq(ftruncate(fd, 0), 0);
	for (int i = 0; i < 3; i++) { /* SIGBUS is not left blocked by a jump */
		cr_assert_eq(guarded_stats(q, &g), 1);
		cr_assert(fault_in_queue(q, g.addr), "the fault's address is in the queue");
	}
	cr_assert_null(fault_current, "a jump disarms");
	cr_assert_eq(ftruncate(fd, size), 0);
	cr_assert_eq(guarded_stats(q, &g), 0, "the size back: zeros, no fault");
}

/* Run fn in a child: did it die of the SIGBUS?  Killed by it, or, under a
 * sanitizer (whose handler was there before ours), stopped by its report;
 * exit 3 means it jumped back, 0 that it went on. */
static bool died_of_sigbus(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return WTERMSIG(status) == SIGBUS;
	return WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3 && WEXITSTATUS(status) != 2;
}

static void touch_other_mapping(void)
{
	struct fault_guard g;
	char p[64];
	int f;
	volatile char *m;

	snprintf(p, sizeof(p), "/dev/shm/hbus-test-fault-o-%d", (int)getpid());
	f = open(p, O_RDWR | O_CREAT | O_EXCL, 0600);
	unlink(p);
	if (f < 0 || ftruncate(f, 8192) != 0)
		_exit(2);
	m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	if (m == MAP_FAILED || ftruncate(f, 0) != 0)
		_exit(2);
	if (sigsetjmp(g.env, 0) == 0) {
		fault_guard_arm(&g, q); /* armed for q, the fault is elsewhere */
		m[100] = 1;
	}
	_exit(3); /* jumped: wrong */
}

static void unguarded_fault(void)
{
	if (ftruncate(fd, 0) != 0)
		_exit(2);
	hbus_queue_stats(q, &(struct hbus_queue_stats){ 0 });
	_exit(3);
}

static void sent_sigbus(void)
{
	struct fault_guard g;

	if (sigsetjmp(g.env, 0) == 0) {
		fault_guard_arm(&g, NULL); /* even "any fault" is not a kill(2) */
		raise(SIGBUS);
	}
	_exit(3);
}

Test(fault_guard, any_other_sigbus_still_kills)
{
	cr_assert(died_of_sigbus(touch_other_mapping));
	cr_assert(died_of_sigbus(unguarded_fault));
	cr_assert_eq(ftruncate(fd, size), 0); /* the child truncated our queue too */
	cr_assert(died_of_sigbus(sent_sigbus));
}
