/* superblock.c - see superblock.h. */
#include "superblock.h"
#include "log.h"
#include "hbus.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define FIRST_ID 1u

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t proc_start_time(int32_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd, field;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: count fields
	 * from the last ')'.  starttime is field 22; ')' ends field 2. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (field = 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (sscanf(p, "%llu", &start) != 1)
		return 0;
	return start ? (uint64_t)start : 1;
}

static int check_existing(struct superblock *s, const char *bus)
{
	struct hbus_super *sb;
	int rc = hbus_shm_map_fd(s->fd, sizeof(struct hbus_super), &s->map);

	if (rc)
		return rc;
	rc = hbus_shm_check_hdr(&s->map, HBUS_FILE_SUPER, HBUS_SUPER_LAYOUT_VERSION);
	if (rc)
		return rc;
	sb = s->map.addr;
	if (memchr(sb->bus, 0, sizeof(sb->bus)) == NULL || sb->session_cap != HBUS_SUPER_SESSIONS)
		return -EPROTO;
	if (strcmp(sb->bus, bus) != 0)
		return -EXDEV;
	s->sb = sb;
	return 0;
}

/* Fill a fresh (zeroed) superblock; the magic goes in last. */
static void init_new(struct superblock *s, const char *bus)
{
	struct hbus_super *sb = s->map.addr;

	snprintf(sb->bus, sizeof(sb->bus), "%s", bus);
	sb->created_ns = now_ns();
	atomic_store(&sb->next_owner, FIRST_ID);
	atomic_store(&sb->next_qid, FIRST_ID);
	sb->session_cap = HBUS_SUPER_SESSIONS;
	hbus_shm_init_hdr(&sb->file, HBUS_FILE_SUPER, HBUS_SUPER_LAYOUT_VERSION,
			  sizeof(struct hbus_super));
	s->sb = sb;
	s->created = 1;
}

static int create_new(struct superblock *s, int dirfd, const char *bus)
{
	int rc = hbus_shm_create_at(dirfd, "superblock", sizeof(struct hbus_super), -1, &s->fd,
				    &s->map);

	if (rc == 0)
		init_new(s, bus);
	return rc;
}

/* All zero: created, never initialised.  Nothing can name it yet (queues
 * are made only after it is complete), so it is safe to start afresh. */
static int never_initialised(const struct hbus_map *map)
{
	const uint8_t *p = map->addr;
	size_t i;

	if (map->len < sizeof(struct hbus_super))
		return 0;
	for (i = 0; i < sizeof(struct hbus_super); i++)
		if (p[i])
			return 0;
	return 1;
}

int sb_open(int dirfd, const char *bus, struct superblock *s, int *other_pid)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (strlen(bus) >= HBUS_SUPER_BUS_MAX)
		return -ENAMETOOLONG;
	s->fd = openat(dirfd, "superblock", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (s->fd < 0 && errno != ENOENT)
		return -errno;
	if (s->fd < 0) {
		rc = create_new(s, dirfd, bus);
		if (rc == -EEXIST) /* lost a race with another hbusd: take its file */
			return sb_open(dirfd, bus, s, other_pid);
		if (rc)
			return rc;
	}
	if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		if (!s->sb && hbus_shm_map_fd(s->fd, sizeof(struct hbus_super), &s->map) == 0)
			s->sb = s->map.addr;
		if (other_pid)
			*other_pid = s->sb ? atomic_load(&s->sb->hbusd_pid) : 0;
		goto fail;
	}
	if (!s->sb) {
		rc = check_existing(s, bus);
		if (rc == -EPROTO && never_initialised(&s->map)) {
			init_new(s, bus);
			s->was_blank = 1;
			rc = 0;
		}
		if (rc)
			goto fail;
		if (!s->created) {
			s->prev_owner = atomic_load(&s->sb->hbusd_owner);
			s->prev_pid = atomic_load(&s->sb->hbusd_pid);
		}
	}
	atomic_fetch_add(&s->sb->epoch, 1);
	atomic_store(&s->sb->hbusd_pid, (int32_t)getpid());
	return 0;
fail:
	hbus_shm_unmap(&s->map);
	close(s->fd);
	s->fd = -1;
	s->sb = NULL;
	return rc;
}

void sb_close(struct superblock *s)
{
	if (s->sb)
		atomic_store(&s->sb->hbusd_pid, 0);
	hbus_shm_unmap(&s->map);
	if (s->fd >= 0)
		close(s->fd); /* drops the flock */
	s->fd = -1;
	s->sb = NULL;
}

uint32_t sb_alloc_owner(struct superblock *s, int (*in_use)(void *ctx, uint32_t owner), void *ctx)
{
	uint32_t tries, id;

	/* Ids go round the 24-bit space before one comes back, and one that
	 * some slot table entry, session or orphan still names is skipped. */
	for (tries = 0; tries < HBUS_OWNER_MAX; tries++) {
		id = atomic_load(&s->sb->next_owner);
		if (id == 0 || id > HBUS_OWNER_MAX)
			id = FIRST_ID;
		atomic_store(&s->sb->next_owner, id + 1);
		if (id == atomic_load(&s->sb->hbusd_owner) || id == s->prev_owner ||
		    sb_session_in_table(s, id) || (in_use && in_use(ctx, id)))
			continue;
		return id;
	}
	return 0;
}

uint32_t sb_alloc_qid(struct superblock *s)
{
	uint32_t id = atomic_fetch_add(&s->sb->next_qid, 1);

	/* UINT32_MAX is HBUS_ROUTE_NONE; 2^32 queue declarations on one bus
	 * lifetime is not a case worth a reuse scheme. */
	return id == UINT32_MAX ? 0 : id;
}

void sb_note_qid(struct superblock *s, uint32_t qid)
{
	if (qid != UINT32_MAX && atomic_load(&s->sb->next_qid) <= qid)
		atomic_store(&s->sb->next_qid, qid + 1);
}

unsigned sb_sessions_used(const struct superblock *s)
{
	unsigned i, n = 0;

	for (i = 0; i < HBUS_SUPER_SESSIONS; i++)
		n += atomic_load(&s->sb->sessions[i].owner) != 0;
	return n;
}

int sb_session_add(struct superblock *s, uint32_t owner, int32_t pid, uint64_t start_time,
		   unsigned reserve)
{
	unsigned i;

	if (reserve && sb_sessions_used(s) + reserve >= HBUS_SUPER_SESSIONS)
		return -ENOSPC;
	for (i = 0; i < HBUS_SUPER_SESSIONS; i++) {
		struct hbus_super_session *e = &s->sb->sessions[i];

		if (atomic_load(&e->owner) != 0)
			continue;
		e->pid = pid;
		e->start_time = start_time;
		atomic_store(&e->owner, owner); /* last: a torn entry reads as free */
		return 0;
	}
	return -ENOSPC;
}

static struct hbus_super_session *find(const struct superblock *s, uint32_t owner)
{
	unsigned i;

	for (i = 0; owner && i < HBUS_SUPER_SESSIONS; i++)
		if (atomic_load(&s->sb->sessions[i].owner) == owner)
			return &s->sb->sessions[i];
	return NULL;
}

int sb_session_in_table(const struct superblock *s, uint32_t owner)
{
	return find(s, owner) != NULL;
}

void sb_session_closed(struct superblock *s, uint32_t owner)
{
	struct hbus_super_session *e = find(s, owner);

	if (e)
		e->pid = 0;
}

void sb_session_remove(struct superblock *s, uint32_t owner)
{
	struct hbus_super_session *e = find(s, owner);

	if (e)
		atomic_store(&e->owner, 0);
}
