/*
 * hbusd_harness.h - run the real hbusd in a test and talk to it raw.
 *
 * A test gets a private run dir and shm dir; hbusd is started from the
 * build tree ($HBUSD, set by tests/meson.build) with PR_SET_PDEATHSIG, so
 * it dies with the test process however the test ends, and a reaper child
 * removes both directories when the test process goes away, even if it
 * crashes.  The client is deliberately raw (socket + jansson), independent
 * of libhbus's client, so the protocol itself is what is tested.
 */
#ifndef HBUSD_HARNESS_H
#define HBUSD_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct hb_env {
	char base[128];   /* run dir parent, definitions, logs */
	char shm[128];    /* --shm-dir */
	char run[160];    /* --run-dir */
	char defs[200];   /* --definitions */
	char sock[200];
	char log[200];
	char bus[32];
	pid_t pid;        /* hbusd, 0 when not running */
	pid_t reaper;
	int reaper_fd;
	void (*before_exec)(void); /* run in hbusd's process before exec (NULL: none) */
};

/* Create the directories (and the reaper).  bus: a name for this test. */
void hb_env_init(struct hb_env *e, const char *bus);
/* Stop hbusd if it runs, remove everything.  Aborts (fails the test, even
 * from a .fini) when hbusd does not exit 0 on SIGTERM. */
void hb_env_fini(struct hb_env *e);
/* The bus directory inside the shm dir. */
void hb_bus_dir(const struct hb_env *e, char *out, size_t cap);

/* Start hbusd with the standard arguments plus extra (NULL-terminated,
 * may be NULL) and wait until it accepts connections.  Asserts success. */
void hb_start(struct hb_env *e, const char *const *extra);
/* Write a permissions file holding json into the test's base dir; its
 * path (static storage). */
const char *hb_write_perms(const struct hb_env *e, const char *json);
/* hb_start with --permissions holding json (NULL: none) plus more. */
void hb_start_perms(struct hb_env *e, const char *json, const char *const *more);
/* Start and expect it to fail: returns its exit status. */
int hb_start_fail(struct hb_env *e, const char *const *extra, char *out, size_t cap);
/* SIGTERM and wait: returns the exit status (or 128 + signal); 5 s, then
 * SIGKILL.  hb_stop_clean asserts status 0 (in a test body, never in a
 * .fini: see teardown.h), printing hbusd's log when it is not. */
int hb_stop(struct hb_env *e);
void hb_stop_clean(struct hb_env *e);

/* Client side. */
int hb_connect(const struct hb_env *e);
int hb_send_raw(int fd, const void *buf, size_t len);
/* Receive one reply; *rfd gets a passed descriptor or -1 (rfd NULL: closed). */
json_t *hb_recv(int fd, int *rfd);
/* The same, keeping up to max descriptors (hello passes the routes file
 * and the session's reader block); rfds[i] = -1 past what came, the rest
 * are closed. */
json_t *hb_recv_fds(int fd, int *rfds, int max);
/* json_pack-style request, one reply. */
json_t *hb_call(int fd, int *rfd, const char *fmt, ...);
/* Connect and say hello; *owner gets the owner id (may be NULL). */
int hb_session(const struct hb_env *e, uint32_t *owner);

bool hb_ok(const json_t *reply);
int hb_code(const json_t *reply);       /* 0 when ok */
const char *hb_error(const json_t *reply);
int64_t hb_int(const json_t *reply, const char *key);

/* Polling with backoff, for 2-core machines. */
void hb_backoff(unsigned *spins);
/* hbusd's log (e->log) so far, NUL-terminated, in a static buffer (64 KiB). */
const char *hb_log_text(const struct hb_env *e);
/* Wait (generously) until hbusd's log holds needle count times; asserts. */
void hb_wait_log(const struct hb_env *e, const char *needle, unsigned count);
/* Open descriptors of process pid (from /proc/PID/fd). */
unsigned hb_fd_count(pid_t pid);
/* SIGKILL and reap pids[0..*n), newest first; *n becomes 0. */
void hb_kill_all(pid_t *pids, unsigned *n);

/* Items in a list reply (asserts the list succeeded). */
size_t hb_list_count(int fd, const char *what);
/* Declare a small plain queue (capacity 64, slot_size 128); asserts. */
void hb_declare_queue(int fd, const char *name);
/* open_queue name for "write" or "read" and map the descriptor it passes
 * with owner and ack_mode; asserts. */
struct hbus_queue *hb_open_queue(int fd, const char *name, const char *mode, uint32_t owner,
				 uint32_t ack_mode);

/* Assert a reply's code (0 = ok) and that its message contains needle
 * ("" = anything); consumes the reply. */
#define EXPECT(reply, code, needle)                                                          \
	do {                                                                                 \
		json_t *r_ = (reply);                                                        \
		cr_assert_eq(hb_code(r_), (code), "expected %d, got %d: %s", (code),         \
			     hb_code(r_), hb_error(r_));                                     \
		if ((needle) && *(const char *)(needle))                                     \
			cr_assert(strstr(hb_error(r_), (needle)), "'%s' lacks '%s'",         \
				  hb_error(r_), (const char *)(needle));                     \
		json_decref(r_);                                                             \
	} while (0)

#define OK(reply) EXPECT(reply, 0, "")

#endif
