/*
 * perms.h - who may do what on a bus, RabbitMQ style.
 *
 * Peers are identified by the kernel (SO_PEERCRED uid/gid/pid and
 * SO_PEERGROUPS), never by anything they say.  A permissions file
 * (hbusd --permissions FILE) gives Unix users and groups three POSIX ERE
 * patterns each, matched against the whole resource name:
 *   {"users":  {"alice":   {"configure":"^alice\\..*", "write":".*", "read":".*"}},
 *    "groups": {"traders": {"configure":"", "write":"^orders$", "read":".*"}}}
 * A permission is granted when the user's entry or any of its groups'
 * entries grants it.  root and the uid hbusd runs as may always do
 * everything.  Without a file nobody else may even say hello.
 * The default exchange "" is checked under the name "amq.default", as in
 * RabbitMQ, so "" as a pattern (matches nothing) really means nothing.
 */
#ifndef HBUSD_PERMS_H
#define HBUSD_PERMS_H

#include <stdbool.h>
#include <sys/types.h>

#include "herr.h"
#include "vec.h"

enum perm_kind { PERM_CONFIGURE = 0, PERM_WRITE = 1, PERM_READ = 2 };

#define PEER_GROUPS_MAX 64

struct peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[PEER_GROUPS_MAX];
	int ngroups;
	char user[64]; /* user name, or the uid in decimal */
};

struct perms {
	struct vec users, groups; /* struct perm_entry * */
	char path[512];
	uid_t self_uid;
	bool from_file;
};

/* Identify the process at the other end of a connected Unix socket. */
int peer_identify(int fd, struct peer *out);

void perms_init(struct perms *p);
/* Load (or reload) a permissions file; on error *p is unchanged. */
int perms_load(struct perms *p, const char *path, struct herr *e);
void perms_free(struct perms *p);

/* Does the file grant anything to a user other than root and hbusd's own?
 * Then the socket must be reachable by others (run dir 0755, socket 0666). */
bool perms_grants_others(const struct perms *p);

/* May peer connect at all?  (Has any entry, or is root / hbusd's uid.) */
int perms_may_connect(const struct perms *p, const struct peer *who, struct herr *e);
/* 0, or -1 and a 403 naming the permission, the resource and the user.
 * noun is "exchange" or "queue"; name "" is the default exchange. */
int perms_check(const struct perms *p, const struct peer *who, enum perm_kind k,
		const char *noun, const char *name, struct herr *e);
/* May peer do everything (root or hbusd's own uid)? */
bool perms_is_admin(const struct perms *p, const struct peer *who);

#endif
