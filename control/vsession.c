/*
 * vsession.c - virtual sessions: one gateway session (hbus-amqp) acting for
 * many AMQP users, each checked by hbusd as that user.
 *
 * A gateway logs an AMQP connection in (amqp_login: hbusd checks the
 * password) and gets a virtual session with an owner id of its own.  Every
 * request that carries "as": <that owner id> is then checked against the
 * AMQP user's patterns and runs under that owner: its consumers, exclusive
 * queues and the slots its consumer handles claim are the virtual
 * session's.  So the model's owner rules give AMQP its connection scope for
 * free: amqp_logout (the AMQP connection closed) cancels its consumers,
 * deletes its exclusive queues and gives back what it held unacked, and
 * when the gateway's own session closes (the gateway exited or was killed)
 * every virtual session it had is closed the same way, so unacked AMQP
 * deliveries come back redelivered.
 */
#include "server.h"
#include "args.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct vsession *vsession_find(const struct session *s, uint32_t owner)
{
	struct vsession *v;

	for (v = s->vsessions; v; v = v->next)
		if (v->owner == owner)
			return v;
	return NULL;
}

void vsession_note_qid(struct vsession *v, uint32_t qid)
{
	unsigned i;

	for (i = 0; i < v->n_qids; i++)
		if (v->qids[i] == qid)
			return;
	if (v->n_qids == v->cap_qids) {
		unsigned cap = v->cap_qids ? v->cap_qids * 2 : 8;
		uint32_t *n = realloc(v->qids, cap * sizeof(*n));
		if (!n) {
			v->all_queues = true; /* cannot track: recover everywhere */
			return;
		}
		v->qids = n;
		v->cap_qids = cap;
	}
	v->qids[v->n_qids++] = qid;
}

static unsigned connections_of(const struct hbusd *d, const char *user)
{
	const struct session *s;
	const struct vsession *v;
	unsigned n = 0;

	for (s = d->sessions; s; s = s->next)
		for (v = s->vsessions; v; v = v->next)
			n += !strcmp(v->user, user);
	return n;
}

/* Failed logins come in storms (a client retrying a wrong password): one
 * line a second, with the count of the others. */
static void log_refusal(const struct session *s, const char *user)
{
	static struct timespec last;
	static unsigned quiet;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (last.tv_sec && now.tv_sec == last.tv_sec) {
		quiet++;
		return;
	}
	HBUS_WARN("AMQP login refused for user '%.64s' through gateway pid %d (user %s) "
		  "(%u more refused in the last second)", user, (int)s->peer.pid, s->peer.user,
		  quiet);
	last = now;
	quiet = 0;
}

json_t *vsession_login(struct hbusd *d, struct session *s, json_t *req, const char *op,
		       struct herr *e)
{
	const char *user, *password;
	struct vsession *v;
	unsigned max_conns = 0;
	uint32_t owner;

	if (arg_str(req, "user", &user, NULL, op, e) ||
	    arg_str(req, "password", &password, NULL, op, e))
		return NULL;
	if (!perms_is_gateway(&d->perms, &s->peer)) {
		herr_set(e, AMQP_ACCESS_REFUSED, "user '%s' (uid %u) may not act for AMQP users: "
			 "mark its entry in the permissions file with \"amqp_gateway\": true",
			 s->peer.user, (unsigned)s->peer.uid);
		return NULL;
	}
	if (perms_amqp_login(&d->perms, user, password, strlen(password), &max_conns, e)) {
		if (e->code == AMQP_ACCESS_REFUSED)
			log_refusal(s, user);
		return NULL;
	}
	if (connections_of(d, user) >= max_conns) {
		herr_set(e, AMQP_ACCESS_REFUSED, "AMQP user '%s' has reached its limit of %u "
			 "connections (max_connections in the permissions file)", user, max_conns);
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v || !(v->user = strdup(user))) {
		free(v);
		herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	owner = sb_alloc_owner(&d->sb, NULL, NULL);
	/* In the superblock under the gateway's pid: a restarted hbusd
	 * recovers what it held once the gateway exits.  The last entries
	 * are root's (HBUSD_SB_ADMIN_RESERVE). */
	if (!owner || sb_session_add(&d->sb, owner, s->peer.pid, s->start_time,
				     perms_is_admin(&d->perms, &s->peer) ? 0
									  : HBUSD_SB_ADMIN_RESERVE)) {
		free(v->user);
		free(v);
		herr_set(e, AMQP_PRECONDITION, "too many sessions on bus '%s': the superblock holds "
			 "%u", d->o.bus, HBUS_SUPER_SESSIONS);
		return NULL;
	}
	v->owner = owner;
	v->next = s->vsessions;
	s->vsessions = v;
	s->n_vsessions++;
	HBUS_INFO("session %llu: AMQP user '%s' logged in: owner %u", (unsigned long long)s->id,
		  user, owner);
	return json_pack("{s:b, s:I, s:s}", "ok", 1, "owner", (json_int_t)owner, "user", user);
}

/* Close one virtual session.  gateway_idle: the gateway said it no longer
 * uses the owner (logout), so its half-written slots, if any, can be
 * recovered now; otherwise they wait for the gateway's exit, as for a
 * session (server.c). */
static void vsession_close(struct hbusd *d, struct session *s, struct vsession *v,
			   bool gateway_idle)
{
	static const uint32_t none[1];
	bool runs = !gateway_idle && (v->n_qids || v->all_queues) &&
		    orphan_session_closed(d, v->owner, s->peer.uid, s->peer.pid, s->start_time);
	unsigned pending = model_owner_gone(&d->model, v->owner,
					    v->all_queues ? NULL : v->qids ? v->qids : none,
					    v->n_qids, !runs);

	if (runs)
		;
	else if (pending)
		sb_session_closed(&d->sb, v->owner);
	else
		sb_session_remove(&d->sb, v->owner);
	HBUS_INFO("session %llu: AMQP user '%s' (owner %u) %s%s", (unsigned long long)s->id,
		  v->user, v->owner, gateway_idle ? "logged out" : "gone with its gateway",
		  pending ? ", recovery pending" : "");
	free(v->qids);
	free(v->user);
	free(v);
	s->n_vsessions--;
}

int vsession_logout(struct hbusd *d, struct session *s, uint32_t owner, struct herr *e)
{
	struct vsession **pp, *v;

	for (pp = &s->vsessions; *pp && (*pp)->owner != owner; pp = &(*pp)->next)
		;
	v = *pp;
	if (!v)
		return herr_set(e, AMQP_NOT_FOUND, "no virtual session %u on this session", owner);
	*pp = v->next;
	vsession_close(d, s, v, true);
	return 0;
}

void vsession_close_all(struct hbusd *d, struct session *s)
{
	struct vsession *v;

	json_decref(s->gw_report);
	s->gw_report = NULL;
	while ((v = s->vsessions)) {
		s->vsessions = v->next;
		vsession_close(d, s, v, false);
	}
}

void vsession_free_all(struct session *s)
{
	struct vsession *v;

	json_decref(s->gw_report);
	s->gw_report = NULL;
	while ((v = s->vsessions)) {
		s->vsessions = v->next;
		free(v->qids);
		free(v->user);
		free(v);
	}
	s->n_vsessions = 0;
}

json_t *vsession_report(struct hbusd *d, struct session *s, json_t *req, struct herr *e)
{
	json_t *st = json_object_get(req, "stats"), *copy;
	const char *k;
	json_t *v;

	if (!perms_is_gateway(&d->perms, &s->peer)) {
		herr_set(e, AMQP_ACCESS_REFUSED, "gateway_report: user '%s' is not a gateway "
			 "(\"amqp_gateway\": true in the permissions file)", s->peer.user);
		return NULL;
	}
	if (!json_is_object(st) || json_object_size(st) > 64) {
		herr_set(e, AMQP_COMMAND_INVALID, "gateway_report: 'stats' must be an object of at "
			 "most 64 numbers");
		return NULL;
	}
	json_object_foreach(st, k, v)
		if (!json_is_integer(v) || strlen(k) > 64) {
			herr_set(e, AMQP_COMMAND_INVALID, "gateway_report: stat '%.64s' is not an "
				 "integer", k);
			return NULL;
		}
	copy = json_deep_copy(st);
	if (!copy) {
		herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	json_object_set_new(copy, "pid", json_integer(s->peer.pid));
	json_object_set_new(copy, "user", json_string(s->peer.user));
	json_object_set_new(copy, "amqp_sessions", json_integer(s->n_vsessions));
	json_decref(s->gw_report);
	s->gw_report = copy;
	return json_pack("{s:b}", "ok", 1);
}

json_t *vsession_gateways(const struct hbusd *d)
{
	json_t *a = json_array();
	const struct session *s;

	for (s = d->sessions; a && s; s = s->next)
		if (s->gw_report)
			json_array_append(a, s->gw_report);
	return a;
}
