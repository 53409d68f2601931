/*
 * client_produce.c - producer handles (hbus_produce_open), and this
 * client's write handles per queue, which keep an exclusive producer its
 * process's only writer on its queue.
 *
 * hbusd grants HBUS_PRODUCE_EXCLUSIVE to an owner id: it keeps every other
 * owner from writing to the queue while the owner's process lives
 * (docs/CONTROL.md, "Exclusive handles").  It cannot tell one owner's
 * handles apart, though, and a second write handle of the same owner (a
 * router of another thread, the dead-letter path, a second exclusive
 * handle) would claim by CAS, or without one, beside the exclusive
 * handle's plain claims.  So this client counts its own write handles per
 * queue and refuses, locally and with the same 405, what hbusd cannot see.
 *
 * A grant lasts until the process exits; on a new session the client asks
 * for each grant again (producers_rejoin_locked).  A resumed owner gets it
 * back (hbusd kept it, in its state file across a restart); if hbusd
 * refuses (it lost its state and another writer came, or the session has a
 * new owner id while the old one's grant stands), the handle drops to the
 * CAS path at once (queue_drop_exclusive): it never claims without a CAS
 * once hbusd no longer says it may.
 */
#include "client_internal.h"
#include "queue_internal.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct client_writer *writer_find(hbus_client *c, uint32_t qid)
{
	struct client_writer *w;

	for (w = c->writers; w; w = w->next)
		if (w->qid == qid)
			return w;
	return NULL;
}

/* Would a write handle (exclusive or not) on qid claim beside one that
 * claims without a CAS?  -EBUSY (the error set: 405), else 0. */
static int writer_conflict_locked(hbus_client *c, uint32_t qid, bool exclusive)
{
	struct client_writer *w = writer_find(c, qid);
	char msg[200];

	if (!w || !(w->excl || (exclusive && w->shared)))
		return 0;
	snprintf(msg, sizeof(msg), "queue (qid %u): %s", qid,
		 w->excl ? "another handle of this process is its exclusive producer"
			 : "this process has other write handles on it (routers, dead-lettering): "
			   "an exclusive producer must be its only writer");
	client_set_error_locked(c, 405, msg);
	return -EBUSY;
}

int client_writer_take_locked(hbus_client *c, uint32_t qid, hbus_queue *excl)
{
	struct client_writer *w = writer_find(c, qid);
	int rc = writer_conflict_locked(c, qid, excl != NULL);

	if (rc)
		return rc;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->qid = qid;
		w->next = c->writers;
		c->writers = w;
	}
	if (excl)
		w->excl = excl;
	else
		w->shared++;
	return 0;
}

void client_writer_put_locked(hbus_client *c, uint32_t qid, hbus_queue *excl)
{
	struct client_writer **pp, *w;

	for (pp = &c->writers; (w = *pp) && w->qid != qid; pp = &w->next)
		;
	if (!w)
		return;
	if (excl && w->excl == excl)
		w->excl = NULL;
	else if (!excl && w->shared)
		w->shared--;
	if (!w->excl && !w->shared) {
		*pp = w->next;
		free(w);
	}
}

static void close_fds(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Ask hbusd for q's file for writing (exclusive: as its only producer),
 * under c->lock.  name or qid names the queue.  0 and fds (a protected
 * queue's data file, read-write, in fds[1]; else -1), *qid_out. */
static int ask_for_write_locked(hbus_client *c, const char *name, uint32_t qid, bool exclusive,
				int fds[2], uint32_t *qid_out)
{
	json_t *req, *reply = NULL;
	int rc;

	fds[0] = fds[1] = -1;

	req = name ? json_pack("{s:s, s:s, s:s}", "op", "open_queue", "name", name, "for", "write")
		   : json_pack("{s:s, s:I, s:s}", "op", "open_queue", "qid", (json_int_t)qid, "for",
			       "write");
	if (req && exclusive)
		json_object_set_new(req, "exclusive", json_true());
	if (!req)
		return -ENOMEM;
	rc = client_request_fds_locked(c, req, &reply, fds);
	json_decref(req);
	if (rc == 0 && (fds[0] < 0 ||
			(exclusive && !json_is_true(json_object_get(reply, "exclusive"))))) {
		client_set_error_locked(c, 0, "open_queue reply without a descriptor or without "
					      "the exclusive grant asked for");
		rc = -EPROTO;
	}
	if (rc == 0 && qid_out)
		*qid_out = (uint32_t)json_integer_value(json_object_get(reply, "qid"));
	json_decref(reply);
	if (rc)
		close_fds(fds);
	return rc;
}

/* ask_for_write_locked, and open the queue: 0 and *out, *qid_out. */
static int open_for_write_locked(hbus_client *c, const char *name, uint32_t qid, bool exclusive,
				 const struct hbus_queue_opts *o, hbus_queue **out,
				 uint32_t *qid_out)
{
	struct hbus_queue_opts oo = *o;
	int fds[2], rc = ask_for_write_locked(c, name, qid, exclusive, fds, qid_out);

	if (rc)
		return rc;
	/* No owner given: the session's that answered (the lock is held). */
	if (!oo.owner)
		oo.owner = atomic_load_explicit(&c->owner, memory_order_relaxed);
	rc = hbus_queue_open_fds(fds[0], fds[1], &oo, out);
	close_fds(fds);
	return rc;
}

int client_open_write_locked(hbus_client *c, uint32_t qid, uint32_t owner, bool exclusive,
			     hbus_queue **out)
{
	struct hbus_queue_opts o = { .owner = owner, .ack_mode = HBUS_ACK_AUTO,
				     .flags = exclusive ? HBUS_PRODUCE_EXCLUSIVE : 0 };
	int rc;

	/* Refused here first: hbusd would grant what it cannot see. */
	rc = writer_conflict_locked(c, qid, exclusive);
	if (rc)
		return rc;
	rc = open_for_write_locked(c, NULL, qid, exclusive, &o, out, NULL);
	if (rc == 0 && (rc = client_writer_take_locked(c, qid, exclusive ? *out : NULL)) != 0) {
		hbus_queue_close(*out);
		*out = NULL;
	}
	return rc;
}

int hbus_produce_open(hbus_client *c, const char *queue, uint32_t flags, hbus_queue **out)
{
	struct hbus_queue_opts o = { .ack_mode = HBUS_ACK_AUTO, .flags = flags };
	struct client_producer *p;
	bool exclusive = flags & HBUS_PRODUCE_EXCLUSIVE;
	int rc;

	if (!c || !queue || !out || strlen(queue) > HBUS_NAME_MAX ||
	    (flags & ~HBUS_PRODUCE_EXCLUSIVE))
		return -EINVAL;
	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	rc = open_for_write_locked(c, queue, 0, exclusive, &o, &p->q, &p->qid);
	/* The grant hbusd gave stays until this process exits: it keeps other
	 * processes out, and this one's routers may still write. */
	if (rc == 0 && (rc = client_writer_take_locked(c, p->qid, exclusive ? p->q : NULL)) != 0)
		rc = rc == -EBUSY ? -EREMOTEIO : rc;
	if (rc == 0) {
		p->exclusive = exclusive;
		p->next = c->producers;
		c->producers = p;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		if (p->q)
			hbus_queue_close(p->q);
		free(p);
		return rc;
	}
	*out = p->q;
	return 0;
}

static void producer_free_locked(hbus_client *c, struct client_producer *p)
{
	client_writer_put_locked(c, p->qid, p->exclusive ? p->q : NULL);
	hbus_queue_close(p->q);
	free(p);
}

int hbus_produce_close(hbus_client *c, hbus_queue *q)
{
	struct client_producer **pp, *p;

	if (!c || !q)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	for (pp = &c->producers; (p = *pp) && p->q != q; pp = &p->next)
		;
	if (p) {
		*pp = p->next;
		producer_free_locked(c, p);
	}
	pthread_mutex_unlock(&c->lock);
	return p ? 0 : -ENOENT;
}

void producers_free_locked(hbus_client *c)
{
	struct client_producer *p;

	while ((p = c->producers)) {
		c->producers = p->next;
		producer_free_locked(c, p);
	}
}

void producers_rejoin_locked(hbus_client *c)
{
	struct client_writer *w;
	int fds[2], rc;

	for (w = c->writers; w; w = w->next) {
		if (!w->excl || !q_sp(w->excl))
			continue;
		rc = ask_for_write_locked(c, NULL, w->qid, true, fds, NULL);
		close_fds(fds);
		if (rc == 0)
			continue;
		queue_drop_exclusive(w->excl);
		HBUS_WARN("queue (qid %u): the exclusive producer grant was not renewed with the new "
			  "session (%s): its handle claims by CAS from now on", w->qid,
			  rc == -EREMOTEIO ? c->err_msg : hbus_strerror(rc));
	}
}
