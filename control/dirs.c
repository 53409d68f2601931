/* dirs.c - see dirs.h. */
#include "dirs.h"
#include "log.h"
#include "shm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SQUAT_TRIES 4 /* an entry that keeps coming back after being moved aside */

static const char *user_name(uid_t uid, char *buf, size_t cap)
{
	struct passwd *pw = getpwuid(uid);

	if (pw && pw->pw_name)
		snprintf(buf, cap, "user %s", pw->pw_name);
	else
		snprintf(buf, cap, "no user name");
	return buf;
}

int dir_trusted_fd(int fd, const char *path, struct herr *e)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return herr_set(e, AMQP_INTERNAL_ERROR, "%s is not a directory: refusing to use it",
				path);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "%s belongs to uid %u, not to hbusd (uid %u) "
				"or root: refusing to trust what is in it (remove it, or chown it)",
				path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return herr_set(e, AMQP_INTERNAL_ERROR, "%s is writable by %s (mode %04o): refusing "
				"to trust what is in it (chmod go-w it)", path,
				st.st_mode & S_IWOTH ? "every user" : "its group",
				(unsigned)(st.st_mode & 07777));
	return 0;
}

/* Open path as a directory without following a link at its last part. */
static int open_dir(int at, const char *path, const char *shown, struct herr *e)
{
	int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd >= 0)
		return fd;
	/* O_DIRECTORY | O_NOFOLLOW on a link fails with ENOTDIR: say which. */
	if (errno == ELOOP || (errno == ENOTDIR && fstatat(at, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			       S_ISLNK(st.st_mode)))
		herr_set(e, AMQP_INTERNAL_ERROR, "%s %s is a symbolic link: refusing to use it",
			 shown, path);
	else
		herr_set(e, AMQP_INTERNAL_ERROR, "%s %s: %s: refusing to use it", shown, path,
			 errno == ENOTDIR ? "not a directory" : strerror(errno));
	return -1;
}

/* mkdir -p: parents get 0755 (they may be shared), the leaf gets mode. */
static int mkdir_p(const char *path, mode_t mode)
{
	char buf[512];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i < n; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = '/';
	}
	return mkdir(buf, mode) != 0 && errno != EEXIST ? -errno : 0;
}

int dirs_open_run(const char *path, bool shared, int *fd, struct herr *e)
{
	mode_t want = shared ? 0755 : 0700;
	struct stat st;
	int rc = mkdir_p(path, want);

	if (rc)
		return herr_set(e, AMQP_INTERNAL_ERROR, "cannot create run dir %s: %s", path,
				strerror(-rc));
	*fd = open_dir(AT_FDCWD, path, "run dir", e);
	if (*fd < 0)
		return -1;
	/* Checked before it is widened: never chmod a directory we would not
	 * trust, and only through the descriptor we checked. */
	if (dir_trusted_fd(*fd, path, e) || fstat(*fd, &st) != 0)
		goto fail;
	/* Widen only: other buses may share the directory. */
	if ((st.st_mode & want) != want && st.st_uid == geteuid() &&
	    fchmod(*fd, (st.st_mode | want) & 07777) != 0)
		HBUS_WARN("run dir %s: cannot widen it to %04o: %s", path, (unsigned)want,
			  strerror(errno));
	return 0;
fail:
	close(*fd);
	*fd = -1;
	return -1;
}

/* Is base a directory where others could replace hbus-NAME under us?
 * Writable by others is fine with the sticky bit (/dev/shm): then only
 * the owner of an entry may rename or remove it. */
static int base_safe(int basefd, const char *base, struct herr *e)
{
	struct stat st;

	if (fstat(basefd, &st) != 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "%s: %s", base, strerror(errno));
	if (!(st.st_mode & S_ISVTX) &&
	    ((st.st_mode & S_IWOTH) ||
	     ((st.st_mode & S_IWGRP) && st.st_gid != 0 && st.st_gid != getegid())))
		return herr_set(e, AMQP_INTERNAL_ERROR, "shared-memory directory %s is writable by "
				"others (mode %04o) without the sticky bit: anyone could replace the "
				"bus directory in it; use --shm-dir on a directory only hbusd can "
				"write, or chmod +t it", base, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* The entry leaf in base was made by someone else: move it aside (we are
 * root, so the sticky bit does not stop us) or say what to do. */
static int squatted(int basefd, const char *base, const char *leaf, uid_t owner, const char *what,
		    struct herr *e)
{
	char aside[128], who[80];
	int n, rc = -1;

	user_name(owner, who, sizeof(who));
	if (geteuid() != 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "bus directory: %s/%s is %s belonging to uid %u "
				"(%s), not to hbusd (uid %u): another user made it before hbusd, so "
				"nothing in it can be trusted.  Remove it as root (rm -rf %s/%s), or "
				"give hbusd a directory only it can write (--shm-dir; the systemd unit "
				"uses its RuntimeDirectory)", base, leaf, what, (unsigned)owner, who,
				(unsigned)geteuid(), base, leaf);
	/* A fresh name: never over an earlier one (RENAME_NOREPLACE). */
	for (n = 0; n < 100; n++) {
		snprintf(aside, sizeof(aside), "%s.untrusted-uid%u-%lld%s%.0u", leaf, (unsigned)owner,
			 (long long)time(NULL), n ? "-" : "", n);
		if ((rc = renameat2(basefd, leaf, basefd, aside, RENAME_NOREPLACE)) == 0 ||
		    errno != EEXIST)
			break;
	}
	if (rc != 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "bus directory: %s/%s is %s belonging to uid %u "
				"(%s), and it cannot be moved aside: %s", base, leaf, what,
				(unsigned)owner, who, strerror(errno));
	HBUS_WARN("bus directory: %s/%s was %s belonging to uid %u (%s), made before hbusd: "
		  "never trusted, moved to %s/%s (inspect it, then remove it)", base, leaf, what,
		  (unsigned)owner, who, base, aside);
	return 0;
}

/* One attempt at base/leaf: 1 = *fd is ours, 0 = moved aside (try again),
 * -1 = refused. */
static int try_bus_dir(int basefd, const char *base, const char *leaf, const char *path, int *fd,
		       struct herr *e)
{
	struct stat st;

	if (mkdirat(basefd, leaf, 0700) != 0 && errno != EEXIST)
		return herr_set(e, AMQP_INTERNAL_ERROR, "cannot create bus directory %s: %s", path,
				strerror(errno));
	if (fstatat(basefd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0; /* gone meanwhile: make it again */
		return herr_set(e, AMQP_INTERNAL_ERROR, "bus directory %s: %s", path, strerror(errno));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return squatted(basefd, base, leaf, st.st_uid,
				S_ISDIR(st.st_mode) ? "a directory" :
				S_ISLNK(st.st_mode) ? "a symbolic link" : "a file", e);
	*fd = openat(basefd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "bus directory %s %s: refusing to use it "
				"(give hbusd a directory with --shm-dir instead)", path,
				S_ISLNK(st.st_mode) ? "is a symbolic link" :
				!S_ISDIR(st.st_mode) ? "is not a directory" : strerror(errno));
	/* The checks that count are on what we hold. */
	if (dir_trusted_fd(*fd, path, e)) {
		close(*fd);
		*fd = -1;
		return -1;
	}
	return 1;
}

int dirs_open_bus(const char *shm_dir, const char *bus, char *path, size_t cap, int *fd,
		  struct herr *e)
{
	char base[512];
	const char *leaf;
	int rc, basefd, tries;

	*fd = -1;
	rc = hbus_shm_bus_dir(shm_dir, bus, path, cap, NULL);
	if (rc)
		return herr_set(e, AMQP_INTERNAL_ERROR, "bus directory for '%s': %s", bus,
				strerror(-rc));
	leaf = strrchr(path, '/');
	snprintf(base, sizeof(base), "%.*s", (int)(leaf - path), path);
	leaf++;
	if (!base[0])
		snprintf(base, sizeof(base), "/");
	rc = mkdir_p(base, 0755);
	basefd = rc ? -1 : open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (basefd < 0)
		return herr_set(e, AMQP_INTERNAL_ERROR, "shared-memory directory %s: %s", base,
				strerror(rc ? -rc : errno));
	rc = base_safe(basefd, base, e);
	for (tries = 0; rc == 0 && tries < SQUAT_TRIES; tries++) {
		rc = try_bus_dir(basefd, base, leaf, path, fd, e);
		if (rc == 1)
			break;
	}
	close(basefd);
	if (rc == 1)
		return 0;
	if (rc == 0)
		herr_set(e, AMQP_INTERNAL_ERROR, "bus directory %s: another user keeps making it "
			 "(moved aside %d times): use --shm-dir on a directory only hbusd can write",
			 path, SQUAT_TRIES);
	return -1;
}

int dirs_open_file(int dirfd, const char *name, int flags, mode_t mode)
{
	struct stat st;
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		int err = S_ISREG(st.st_mode) ? EPERM : EINVAL;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}
