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

#include <jansson.h>
#include <regex.h>
#include <stdint.h>

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
	struct vec amqp_users;    /* struct perm_entry * (perms_amqp.c) */
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

/* ---- AMQP users (perms_amqp.c): users of hbus-amqp, not of this host.
 * "amqp_users": {"guest": {"password_hash": "<base64>", "configure": ".*",
 *   "write": ".*", "read": ".*", "max_connections": 64}}
 * password_hash is RabbitMQ's rabbit_password_hashing_sha256: base64 of a
 * 4-byte salt followed by SHA-256(salt + password), what `rabbitmqctl
 * hash_password` and `hbus-amqp --hash-password` print.  Only a peer whose
 * Unix user or group entry says "amqp_gateway": true (or root, or hbusd's
 * uid) may log AMQP users in and act for them. */

/* Is peer allowed to act for AMQP users? */
bool perms_is_gateway(const struct perms *p, const struct peer *who);
/* Check an AMQP user's password: 0, or -1 with a 403 that does not say
 * whether the user or the password was wrong. *max_conns: the user's
 * connection limit. */
int perms_amqp_login(const struct perms *p, const char *user, const char *password,
		     size_t password_len, unsigned *max_conns, struct herr *e);
/* perms_check for an AMQP user. */
int perms_check_amqp(const struct perms *p, const char *user, enum perm_kind k,
		     const char *noun, const char *name, struct herr *e);

/* perms.c internals shared with perms_amqp.c. */
#define PERM_HASH_MAX 68 /* decoded password_hash: salt + digest (SHA-512 fits) */

struct perm_entry {
	char *name;          /* as written in the file */
	unsigned id;         /* uid or gid it resolved to (Unix entries) */
	bool gateway;        /* "amqp_gateway": may act for AMQP users */
	regex_t re[3];       /* configure, write, read */
	char *src[3];
	uint8_t hash[PERM_HASH_MAX]; /* AMQP users: salt + SHA-256 */
	unsigned hash_len;
	unsigned max_conns;  /* AMQP users: connections at once */
};

/* Parse "configure"/"write"/"read" of object v into en (ctx names it). */
int perm_entry_patterns(struct perm_entry *en, json_t *v, const char *ctx, struct herr *e);
struct perm_entry *perm_entry_new(const char *name);
void perm_entry_free(struct perm_entry *en);
bool perm_entry_grants(const struct perm_entry *en, enum perm_kind k, const char *name);
void perm_free_entries(struct vec *v);
int perms_amqp_load(json_t *obj, struct vec *out, const char *path, struct herr *e);

#endif
