/*
 * fuzz_amqp.c - the gateway's frame decoder and connection state machine
 * (amqp/frame.c, conn.c, chan*.c, deliver.c, props.c) on arbitrary bytes,
 * without sockets or hbusd: control requests are answered here at once
 * (logins succeed, declares and binds are ok, consumers are refused) and
 * publishes "route" to one queue.  A crash, a sanitizer report or a leak
 * is a finding.  The seed is a well-formed session (corpus/fuzz_amqp).
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gw_opts gw_opts = {
	.host = "127.0.0.1", .port = 5672, .threads = 1, .channel_max = 64,
	.frame_max = 131072, .heartbeat = 60, .max_unacked = 64, .max_buffer = 1u << 20,
	.handshake_s = 10, .send_timeout_s = 30, .idle_max_us = 1000,
	.queue_capacity = 64, .queue_slot_size = 4096,
};
hbus_client *gw_client;

static struct ctl_req *pending;

void ctl_submit(struct conn *c, struct ctl_req *r, bool wait)
{
	r->c = c;
	c->pending++;
	if (wait)
		c->waiting = true;
	r->next = pending;
	pending = r;
}

void ctl_submit_detached(struct ctl_req *r)
{
	ctl_free(r);
}

int gw_publish(const char *exch, const char *rk, const struct hbus_header *h, unsigned nh,
	       const void *body, uint32_t len, struct hbus_publish_info *info)
{
	(void)exch; (void)h; (void)nh; (void)body;
	memset(info, 0, sizeof(*info));
	if (!strcmp(rk, "nowhere"))
		return 0;
	info->matched = 1;
	if (len > 1000)
		info->oversize = 1;
	else
		info->enqueued = 1;
	return (int)info->enqueued;
}

void loop_want_write(struct conn *c) { (void)c; }
void loop_update_events(struct conn *c) { (void)c; }

uint64_t gw_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Answer what the connection asked, as hbusd would have. */
static void answer(struct conn *c)
{
	while (pending) {
		struct ctl_req *r = pending;
		pending = r->next;
		c->pending--;
		c->waiting = false;
		if (r->kind == CTL_OPEN) {
			r->rc = -EREMOTEIO;
			r->code = 404;
			snprintf(r->msg, sizeof(r->msg), "no queue (fuzz)");
		} else {
			r->reply = json_pack("{s:b, s:i, s:s, s:i, s:i, s:i}", "ok", 1, "owner", 7,
					     "name", "q", "messages", 0, "consumers", 0, "purged", 0);
		}
		r->done(c, r);
		ctl_free(r);
		conn_process(c);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct loop l = { 0 };
	struct conn *c = conn_new(&l, -1, "fuzz");
	size_t off = 0;

	if (!c)
		return 0;
	/* Fed in pieces so frames straddle reads, as on a socket. */
	while (off < size) {
		size_t n = size - off < 1500 ? size - off : 1500;
		if (gbuf_reserve(&c->in, n))
			break;
		memcpy(gbuf_end(&c->in), data + off, n);
		c->in.len += n;
		off += n;
		conn_process(c);
		answer(c);
		c->out.len = 0; /* what a peer would have read */
	}
	conn_tick(c, gw_now_ns());
	conn_teardown(c);
	answer(c);
	conn_free(c);
	return 0;
}
