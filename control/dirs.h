/*
 * dirs.h - hbusd's two directories, opened once and held: the run dir
 * (socket, pid file, log) and the bus directory (shared memory).
 *
 * A directory is opened without following a symbolic link, checked through
 * the descriptor (fstat: a real directory, owned by hbusd's uid or root,
 * writable by nobody else), widened only through it (fchmod), and every
 * file in it is then opened relative to it (openat, O_NOFOLLOW): nothing
 * can be swapped under hbusd between the check and the use.
 *
 * The bus directory sits in a directory other users may write to (by
 * default /dev/shm).  An entry there that another user made first (a
 * directory, file or symbolic link "hbus-NAME") is never trusted: an hbusd
 * running as root moves it aside (hbus-NAME.untrusted-uid<U>-<time>) and
 * makes its own; any other hbusd refuses, saying what to do
 * (docs/OPERATIONS.md, docs/SECURITY.md).
 */
#ifndef HBUSD_DIRS_H
#define HBUSD_DIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "herr.h"

/* May hbusd trust the directory open at fd (path: for messages)?  0, or -1
 * with *e saying what is wrong and how to fix it. */
int dir_trusted_fd(int fd, const char *path, struct herr *e);

/* Create the run dir (parents 0755) if missing, open and check it; widen
 * it to 0755 when `shared` (others must reach the socket).  *fd: held. */
int dirs_open_run(const char *path, bool shared, int *fd, struct herr *e);

/* The bus directory <base>/hbus-<bus> (base: shm_dir, else a writable
 * hugetlbfs mount, else /dev/shm), created 0700 if missing, opened and
 * checked; an entry another user made is moved aside (root) or refused.
 * path gets its name for messages; *fd the held descriptor. */
int dirs_open_bus(const char *shm_dir, const char *bus, char *path, size_t cap, int *fd,
		  struct herr *e);

/* openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode), and the result
 * must be a regular file owned by hbusd's uid: -1 with errno otherwise
 * (ELOOP for a symbolic link, EPERM for a file someone else owns). */
int dirs_open_file(int dirfd, const char *name, int flags, mode_t mode);

#endif
