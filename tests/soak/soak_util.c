/* soak_util.c - see soak_util.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h" /* hbus_client_check: what `hbus consume` uses */
#include "soak_util.h"

volatile sig_atomic_t soak_stop;

static void on_stop(int sig)
{
	(void)sig;
	soak_stop = 1;
}

void soak_install_stop(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

uint64_t soak_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void soak_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	nanosleep(&ts, NULL); /* a signal cuts it short: the caller re-checks */
}

int soak_connect(const char *bus, const char *run_dir, hbus_client **out)
{
	struct hbus_client_opts o = { .bus = bus, .run_dir = run_dir };
	uint64_t delay = 20000000u;
	int rc, logged = 0;

	while (!soak_stop) {
		rc = hbus_connect(&o, out);
		if (rc == 0)
			return 0;
		if (!logged++)
			fprintf(stderr, "soak: connect to bus '%s': %s; retrying\n", bus,
				hbus_strerror(rc));
		soak_sleep_ns(delay);
		if (delay < 200000000u)
			delay *= 2;
	}
	return -ECANCELED;
}

void soak_check(hbus_client *c, uint64_t *next)
{
	uint64_t now = soak_mono_ns();

	if (now < *next)
		return;
	hbus_client_check(c); /* failure is not fatal: shared memory keeps working */
	*next = now + SOAK_CHECK_PERIOD_NS;
}

int soak_ledger_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0)
		fprintf(stderr, "soak: open %s: %s\n", path, strerror(errno));
	return fd;
}

int soak_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "soak: ledger write: %s\n", n < 0 ? strerror(errno) : "short");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
