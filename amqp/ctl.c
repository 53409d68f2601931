/*
 * ctl.c - the control thread: every request to hbusd (login, declare,
 * bind, consume, ...) runs here, one at a time in submission order, so the
 * event loops never wait on the Unix socket.  A loop submits a ctl_req; the
 * answer goes back on the submitting loop's completion list and its
 * eventfd.  Requests nobody waits for (logout, cancel, closing a handle)
 * are freed here.
 */
#include "gw.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

hbus_client *gw_client;

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static struct ctl_req *qhead, *qtail;
static _Atomic bool qstop; /* read unlocked by ctl_submit_detached */
static pthread_t thread;

static void enqueue(struct ctl_req *r)
{
	pthread_mutex_lock(&qlock);
	r->next = NULL;
	if (qtail)
		qtail->next = r;
	else
		qhead = r;
	qtail = r;
	pthread_cond_signal(&qcond);
	pthread_mutex_unlock(&qlock);
}

void ctl_submit(struct conn *c, struct ctl_req *r, bool wait)
{
	r->c = c;
	c->pending++;
	if (wait)
		c->waiting = true;
	enqueue(r);
}

void ctl_submit_detached(struct ctl_req *r)
{
	r->c = NULL;
	if (qstop) { /* stopping: hbusd ends what the gateway's session held */
		if (r->kind == CTL_CLOSE_HANDLE)
			hbus_consume_close_as(gw_client, r->q);
		ctl_free(r);
		return;
	}
	enqueue(r);
}

/* Run one request against hbusd. */
static void run(struct ctl_req *r)
{
	const char *msg = NULL;

	r->code = 0;
	switch (r->kind) {
	case CTL_CALL: {
		char *text = json_dumps(r->req, JSON_COMPACT);
		static char reply[1 << 16];
		json_error_t jerr;

		r->rc = text ? hbus_call(gw_client, text, reply, sizeof(reply)) : -ENOMEM;
		free(text);
		if (r->rc == 0 || r->rc == -EREMOTEIO)
			r->reply = json_loads(reply, 0, &jerr);
		break;
	}
	case CTL_OPEN:
		r->rc = hbus_consume_open_as(gw_client, r->queue, &r->as, &r->q, r->tag,
					     sizeof(r->tag));
		break;
	case CTL_CLOSE_HANDLE:
		r->rc = hbus_consume_close_as(gw_client, r->q);
		break;
	}
	if (r->rc == -EREMOTEIO) {
		hbus_client_error(gw_client, &r->code, &msg);
		snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
	} else if (r->rc) {
		r->code = AMQP_INTERNAL_ERROR;
		snprintf(r->msg, sizeof(r->msg), "hbusd not reachable: %s", hbus_strerror(r->rc));
	}
}

/* Hand a finished request back to its loop. */
static void complete(struct ctl_req *r)
{
	struct loop *l;
	uint64_t one = 1;

	if (!r->c) {
		if (r->rc && r->kind != CTL_CLOSE_HANDLE)
			HBUS_DEBUG("detached request failed: %s", r->msg);
		/* A handle opened for a connection that went away meanwhile. */
		if (r->kind == CTL_OPEN && r->q)
			hbus_consume_close_as(gw_client, r->q);
		ctl_free(r);
		return;
	}
	l = r->c->loop;
	pthread_mutex_lock(l->lock);
	r->next = NULL;
	if (l->done_tail)
		l->done_tail->next = r;
	else
		l->done_head = r;
	l->done_tail = r;
	pthread_mutex_unlock(l->lock);
	/* A failed write means the counter is already non-zero: the loop
	 * will look anyway. */
	(void)!write(l->evfd, &one, sizeof(one));
}

static void *ctl_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct ctl_req *r;

		pthread_mutex_lock(&qlock);
		while (!qhead && !qstop)
			pthread_cond_wait(&qcond, &qlock);
		r = qhead;
		if (r) {
			qhead = r->next;
			if (!qhead)
				qtail = NULL;
		}
		pthread_mutex_unlock(&qlock);
		if (!r)
			break; /* stopping, and nothing left */
		run(r);
		complete(r);
	}
	return NULL;
}

int ctl_start(void)
{
	return -pthread_create(&thread, NULL, ctl_main, NULL);
}

void ctl_stop(void)
{
	pthread_mutex_lock(&qlock);
	qstop = true;
	pthread_cond_signal(&qcond);
	pthread_mutex_unlock(&qlock);
	pthread_join(thread, NULL);
}

int gw_publish(const char *exch, const char *rk, const struct hbus_header *h, unsigned nh,
	       const void *body, uint32_t len, struct hbus_publish_info *info)
{
	return hbus_publish_info(gw_client, exch, rk, h, nh, body, len, info);
}
