/* perms.c - see perms.h. */
#include "perms.h"
#include "args.h"
#include "defs.h"
#include "log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const kind_names[] = { "configure", "write", "read" };

int peer_identify(int fd, struct peer *out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[PEER_GROUPS_MAX];
	struct passwd pw, *res = NULL;
	char buf[1024];

	memset(out, 0, sizeof(*out));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	out->uid = cred.uid;
	out->gid = cred.gid;
	out->pid = cred.pid;
	len = sizeof(groups);
	/* Supplementary groups as they were when the peer connected; a peer
	 * in more groups than fit is judged by the first PEER_GROUPS_MAX. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0 || errno == ERANGE) {
		out->ngroups = (int)(len / sizeof(gid_t));
		if (out->ngroups > PEER_GROUPS_MAX)
			out->ngroups = PEER_GROUPS_MAX;
		memcpy(out->groups, groups, (size_t)out->ngroups * sizeof(gid_t));
	}
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out->user, sizeof(out->user), "%s", pw.pw_name);
	else
		snprintf(out->user, sizeof(out->user), "%u", (unsigned)cred.uid);
	return 0;
}

void perms_init(struct perms *p)
{
	memset(p, 0, sizeof(*p));
	p->self_uid = geteuid();
}

void perm_entry_free(struct perm_entry *en)
{
	int k;

	for (k = 0; k < 3; k++) {
		if (en->src[k])
			regfree(&en->re[k]);
		free(en->src[k]);
	}
	free(en->name);
	free(en);
}

void perm_free_entries(struct vec *v)
{
	unsigned i;

	for (i = 0; i < v->n; i++)
		perm_entry_free(v->v[i]);
	vec_free(v);
}

void perms_free(struct perms *p)
{
	perm_free_entries(&p->users);
	perm_free_entries(&p->groups);
	perm_free_entries(&p->amqp_users);
}

struct perm_entry *perm_entry_new(const char *name)
{
	struct perm_entry *en = calloc(1, sizeof(*en));

	if (en && !(en->name = strdup(name))) {
		free(en);
		en = NULL;
	}
	return en;
}

int perm_entry_patterns(struct perm_entry *en, json_t *v, const char *ctx, struct herr *e)
{
	static const char *const fields[] = { "configure", "write", "read" };
	char anchored[1100];
	int k;

	for (k = 0; k < 3; k++) {
		const char *pat;
		int rc;

		if (arg_str(v, fields[k], &pat, "", ctx, e))
			return -1;
		if (strlen(pat) > 1024)
			return herr_set(e, AMQP_PRECONDITION, "%s: %s pattern over 1024 bytes", ctx,
					fields[k]);
		/* Full match, as RabbitMQ's patterns behave when anchored;
		 * "" stays "" and so matches no real name. */
		snprintf(anchored, sizeof(anchored), "^(%s)$", pat);
		rc = regcomp(&en->re[k], anchored, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			char msg[128];
			regerror(rc, &en->re[k], msg, sizeof(msg));
			return herr_set(e, AMQP_COMMAND_INVALID, "%s: bad %s pattern '%s': %s", ctx,
					fields[k], pat, msg);
		}
		en->src[k] = strdup(pat);
		if (!en->src[k]) {
			regfree(&en->re[k]);
			return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		}
	}
	return 0;
}

bool perm_entry_grants(const struct perm_entry *en, enum perm_kind k, const char *name)
{
	return regexec(&en->re[k], name, 0, NULL, 0) == 0;
}

/* A user or group name, or a number standing for the id itself. */
static int resolve(const char *name, bool group, unsigned *id)
{
	char buf[4096], *end;
	unsigned long n = strtoul(name, &end, 10);

	if (*name && !*end) {
		*id = (unsigned)n;
		return 0;
	}
	if (group) {
		struct group g, *r = NULL;
		if (getgrnam_r(name, &g, buf, sizeof(buf), &r) != 0 || !r)
			return -ENOENT;
		*id = r->gr_gid;
	} else {
		struct passwd pw, *r = NULL;
		if (getpwnam_r(name, &pw, buf, sizeof(buf), &r) != 0 || !r)
			return -ENOENT;
		*id = r->pw_uid;
	}
	return 0;
}

static int load_entries(json_t *obj, bool group, struct vec *out, const char *path,
			struct herr *e)
{
	static const char *const fields[] = { "configure", "write", "read", "amqp_gateway", NULL };
	const char *name;
	json_t *v;
	char ctx[320];

	if (!obj)
		return 0;
	if (!json_is_object(obj))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: '%s' must be an object", path,
				group ? "groups" : "users");
	json_object_foreach(obj, name, v) {
		struct perm_entry *en;
		unsigned id;
		bool gw;

		snprintf(ctx, sizeof(ctx), "%s: %s '%s'", path, group ? "group" : "user", name);
		if (!json_is_object(v))
			return herr_set(e, AMQP_COMMAND_INVALID, "%s must be an object", ctx);
		if (args_check_fields(v, fields, ctx, e) ||
		    arg_bool(v, "amqp_gateway", &gw, false, ctx, e))
			return -1;
		if (resolve(name, group, &id)) {
			HBUS_WARN("%s: no such %s on this host: entry ignored", ctx,
				  group ? "group" : "user");
			continue;
		}
		en = perm_entry_new(name);
		if (!en || vec_push(out, en)) {
			if (en)
				perm_entry_free(en);
			return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		}
		en->id = id;
		en->gateway = gw;
		if (perm_entry_patterns(en, v, ctx, e))
			return -1;
	}
	return 0;
}

int perms_load(struct perms *p, const char *path, struct herr *e)
{
	static const char *const top[] = { "users", "groups", "amqp_users", NULL };
	struct perms n;
	json_t *j;

	perms_init(&n);
	j = defs_load_file(path, DEFS_FILE_MAX, e);
	if (!j)
		return -1;
	if (!json_is_object(j) || args_check_fields(j, top, path, e) ||
	    load_entries(json_object_get(j, "users"), false, &n.users, path, e) ||
	    load_entries(json_object_get(j, "groups"), true, &n.groups, path, e) ||
	    perms_amqp_load(json_object_get(j, "amqp_users"), &n.amqp_users, path, e)) {
		if (!json_is_object(j))
			herr_set(e, AMQP_COMMAND_INVALID, "%s: must be a JSON object", path);
		json_decref(j);
		perms_free(&n);
		return -1;
	}
	json_decref(j);
	snprintf(n.path, sizeof(n.path), "%s", path);
	n.from_file = true;
	perms_free(p);
	*p = n;
	HBUS_INFO("permissions from %s: %u user(s), %u group(s), %u AMQP user(s)", path,
		  p->users.n, p->groups.n, p->amqp_users.n);
	return 0;
}

bool perms_is_admin(const struct perms *p, const struct peer *who)
{
	return who->uid == 0 || who->uid == p->self_uid;
}

bool perms_grants_others(const struct perms *p)
{
	unsigned i;

	if (p->groups.n)
		return true;
	for (i = 0; i < p->users.n; i++) {
		const struct perm_entry *en = p->users.v[i];
		if (en->id != 0 && en->id != p->self_uid)
			return true;
	}
	return false;
}

static bool in_group(const struct peer *who, unsigned gid)
{
	int i;

	if (who->gid == gid)
		return true;
	for (i = 0; i < who->ngroups; i++)
		if (who->groups[i] == gid)
			return true;
	return false;
}

int perms_may_connect(const struct perms *p, const struct peer *who, struct herr *e)
{
	unsigned i;

	if (perms_is_admin(p, who))
		return 0;
	for (i = 0; i < p->users.n; i++)
		if (((struct perm_entry *)p->users.v[i])->id == who->uid)
			return 0;
	for (i = 0; i < p->groups.n; i++)
		if (in_group(who, ((struct perm_entry *)p->groups.v[i])->id))
			return 0;
	if (!p->from_file)
		return herr_set(e, AMQP_ACCESS_REFUSED,
				"access refused for user '%s' (uid %u): hbusd has no permissions "
				"file, only root and uid %u may use this bus",
				who->user, (unsigned)who->uid, (unsigned)p->self_uid);
	return herr_set(e, AMQP_ACCESS_REFUSED,
			"access refused for user '%s' (uid %u): no entry for it or its groups in %s",
			who->user, (unsigned)who->uid, p->path);
}

int perms_check(const struct perms *p, const struct peer *who, enum perm_kind k,
		const char *noun, const char *name, struct herr *e)
{
	const char *checked = name[0] ? name : "amq.default";
	unsigned i;

	if (perms_is_admin(p, who))
		return 0;
	for (i = 0; i < p->users.n; i++) {
		const struct perm_entry *en = p->users.v[i];
		if (en->id == who->uid && perm_entry_grants(en, k, checked))
			return 0;
	}
	for (i = 0; i < p->groups.n; i++) {
		const struct perm_entry *en = p->groups.v[i];
		if (in_group(who, en->id) && perm_entry_grants(en, k, checked))
			return 0;
	}
	return herr_set(e, AMQP_ACCESS_REFUSED,
			"access refused: user '%s' (uid %u) has no %s permission on %s '%s'",
			who->user, (unsigned)who->uid, kind_names[k], noun, checked);
}

bool perms_is_gateway(const struct perms *p, const struct peer *who)
{
	unsigned i;

	if (perms_is_admin(p, who))
		return true;
	for (i = 0; i < p->users.n; i++) {
		const struct perm_entry *en = p->users.v[i];
		if (en->gateway && en->id == who->uid)
			return true;
	}
	for (i = 0; i < p->groups.n; i++) {
		const struct perm_entry *en = p->groups.v[i];
		if (en->gateway && in_group(who, en->id))
			return true;
	}
	return false;
}
