/*
 * cli_send.c - `hbus send`: encode hbus wire frames (docs/PROTOCOL.md) and
 * send them to ADDR:PORT with an ordinary kernel UDP socket.  A pure
 * sender: no hbusd, no shared memory - a test source for hbus-dataplane
 * and a reference for writing one.
 *
 * Up to --batch messages share a frame (as many as fit in --max-frame
 * bytes); frames leave in groups through one sendmmsg().  Message i of the
 * run has sequence number --first-seq + i on stream --stream, and carries
 * its CLOCK_REALTIME send time.  Input: --body repeated --count times, or
 * one message per stdin line; a frame never waits for more input once
 * stdin has nothing buffered, so a slow producer is not delayed.
 */
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UDP_PAYLOAD_MAX 65507u
#define FRAMES_PER_CALL 32u

struct sender {
	int sock;
	struct sockaddr_in dst;
	struct hbus_meta meta;
	uint32_t stream, batch, max_frame;
	uint64_t next_seq;        /* sequence number of the next message */
	uint64_t rate, sent_msgs; /* pacing: message i is due at t0 + i / rate */
	uint64_t t0;
	uint8_t *bufs;            /* FRAMES_PER_CALL frames of max_frame bytes */
	struct hbus_wire_encoder enc;
	unsigned nframes;         /* complete frames waiting in bufs */
	int open;                 /* enc holds a frame being filled */
	size_t lens[FRAMES_PER_CALL];
};

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int flush_frames(struct sender *s)
{
	struct mmsghdr mm[FRAMES_PER_CALL];
	struct iovec iov[FRAMES_PER_CALL];
	unsigned i, done = 0;

	if (s->open && s->enc.count) {
		s->lens[s->nframes++] = (size_t)hbus_wire_encoder_finish(&s->enc);
		s->open = 0;
	}
	for (i = 0; i < s->nframes; i++) {
		iov[i] = (struct iovec){ .iov_base = s->bufs + (size_t)i * s->max_frame,
					 .iov_len = s->lens[i] };
		mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &s->dst,
			.msg_namelen = sizeof(s->dst), .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	while (done < s->nframes) {
		int n = sendmmsg(s->sock, mm + done, s->nframes - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (unsigned)n;
	}
	s->nframes = 0;
	return 0;
}

/* Sleep until message number i is due under --rate. */
static int pace(struct sender *s)
{
	uint64_t due, now;
	struct timespec ts;
	int rc;

	if (!s->rate)
		return 0;
	due = s->t0 + (uint64_t)((double)s->sent_msgs * 1e9 / (double)s->rate);
	now = clock_ns(CLOCK_MONOTONIC);
	if (now >= due)
		return 0;
	rc = flush_frames(s); /* do not hold frames while sleeping */
	ts.tv_sec = (time_t)(due / 1000000000u);
	ts.tv_nsec = (long)(due % 1000000000u);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return rc;
}

static int add_message(struct sender *s, const void *body, size_t len)
{
	int rc;

	if (len > UDP_PAYLOAD_MAX)
		return -EMSGSIZE;
	rc = pace(s);
	if (rc)
		return rc;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!s->open) {
			if (s->nframes == FRAMES_PER_CALL && (rc = flush_frames(s)))
				return rc;
			hbus_wire_encoder_init(&s->enc, s->bufs + (size_t)s->nframes * s->max_frame,
					       s->max_frame, s->stream, s->next_seq);
			s->open = 1;
		}
		rc = hbus_wire_encoder_add(&s->enc, &s->meta, body, (uint32_t)len,
					   clock_ns(CLOCK_REALTIME), 0);
		if (rc == -ENOSPC && s->enc.count) {
			/* Frame full: close it and start the next. */
			s->lens[s->nframes++] = (size_t)hbus_wire_encoder_finish(&s->enc);
			s->open = 0;
			continue;
		}
		break;
	}
	if (rc)
		return rc == -ENOSPC ? -EMSGSIZE : rc;
	s->next_seq++;
	s->sent_msgs++;
	if (s->enc.count == s->batch) {
		s->lens[s->nframes++] = (size_t)hbus_wire_encoder_finish(&s->enc);
		s->open = 0;
	}
	return 0;
}

/* Lines from stdin: flush whenever the input buffered so far is used up. */
static int send_stdin(struct sender *s, uint64_t count)
{
	size_t cap = 1 << 16, len = 0, start, i;
	char *buf = malloc(cap);
	ssize_t n;
	int rc = 0, eof = 0;

	if (!buf)
		return -ENOMEM;
	while (!rc && !eof && (!count || s->sent_msgs < count)) {
		if (len == cap) {
			char *nb = cap < UDP_PAYLOAD_MAX * 2 ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				rc = -EMSGSIZE; /* a line longer than any datagram */
				break;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			eof = 1;
			if (len)
				buf[len++] = '\n'; /* a last line without a newline */
		}
		len += (size_t)n;
		for (start = 0, i = 0; i < len && !rc && (!count || s->sent_msgs < count); i++) {
			if (buf[i] != '\n')
				continue;
			rc = add_message(s, buf + start, i - start);
			start = i + 1;
		}
		memmove(buf, buf + start, len - start);
		len -= start;
		if (!rc)
			rc = flush_frames(s);
	}
	free(buf);
	return rc;
}

int cmd_send(struct cli *cli, int argc, char **argv)
{
	struct cli_list hdrs = { .n = 0 };
	struct sender s = { .sock = -1, .batch = 1, .max_frame = 1472, .next_seq = 1 };
	const char *body = NULL, *pos[3];
	uint64_t count = 0;
	uint32_t ip_be;
	uint16_t port;
	unsigned i;
	int rc = 0, seen_stream = 0;
	const struct cli_opt opts[] = {
		{ "--body", OPT_STR, &body, NULL, NULL },
		{ "--header", OPT_LIST, &hdrs, NULL, NULL },
		{ "--stream", OPT_U32, &s.stream, NULL, &seen_stream },
		{ "--batch", OPT_U32, &s.batch, NULL, NULL },
		{ "--rate", OPT_U64, &s.rate, NULL, NULL },
		{ "--count", OPT_U64, &count, NULL, NULL },
		{ "--first-seq", OPT_U64, &s.next_seq, NULL, NULL },
		{ "--max-frame", OPT_U32, &s.max_frame, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	(void)cli;
	if (cli_parse(argv[0], argc, argv, opts, pos, 3, 3) < 0)
		return CLI_USAGE;
	if (cli_parse_addr(pos[0], &ip_be, &port, NULL, 0))
		return cli_usage_error(argv[0], "want IPv4-ADDRESS:PORT, not '%s'", pos[0]);
	if (strlen(pos[1]) > HBUS_NAME_MAX || strlen(pos[2]) > HBUS_NAME_MAX)
		return cli_usage_error(argv[0], "exchange and routing key are at most %u bytes",
				       HBUS_NAME_MAX);
	if (s.batch == 0 || s.batch > UINT16_MAX)
		return cli_usage_error(argv[0], "--batch must be 1..65535");
	if (s.max_frame < HBUS_WIRE_HDR_LEN + HBUS_WIRE_MSG_HDR_LEN || s.max_frame > UDP_PAYLOAD_MAX)
		return cli_usage_error(argv[0], "--max-frame must be %u..%u", HBUS_WIRE_HDR_LEN +
				       HBUS_WIRE_MSG_HDR_LEN, UDP_PAYLOAD_MAX);
	s.meta.exchange = pos[1];
	s.meta.exchange_len = (uint8_t)strlen(pos[1]);
	s.meta.routing_key = pos[2];
	s.meta.routing_key_len = (uint8_t)strlen(pos[2]);
	for (i = 0; i < hdrs.n; i++)
		if (cli_parse_header(hdrs.v[i], &s.meta.headers[i]))
			return cli_usage_error(argv[0], "--header wants NAME=VALUE, not '%s'",
					       hdrs.v[i]);
	s.meta.header_count = (uint16_t)hdrs.n;
	if (hbus_meta_size(&s.meta) < 0)
		return cli_usage_error(argv[0], "headers too large");
	if (!seen_stream)
		s.stream = (uint32_t)getpid();
	s.dst = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port),
				      .sin_addr.s_addr = ip_be };
	s.bufs = malloc((size_t)FRAMES_PER_CALL * s.max_frame);
	s.sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!s.bufs || s.sock < 0) {
		rc = s.bufs ? -errno : -ENOMEM;
		goto out;
	}
	if (IN_MULTICAST(ntohl(ip_be))) {
		int ttl = 1; /* stay on the local network unless told otherwise */
		setsockopt(s.sock, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
	}
	s.t0 = clock_ns(CLOCK_MONOTONIC);
	if (body) {
		uint64_t n = count ? count : 1;
		while (!rc && s.sent_msgs < n)
			rc = add_message(&s, body, strlen(body));
		if (!rc)
			rc = flush_frames(&s);
	} else {
		rc = send_stdin(&s, count);
		if (!rc)
			rc = flush_frames(&s);
	}
out:
	if (rc == -EMSGSIZE)
		fprintf(stderr, "hbus: send to %s: a message does not fit in one frame of %u bytes "
			"(--max-frame, at most %u)\n", pos[0], s.max_frame, UDP_PAYLOAD_MAX);
	else if (rc)
		fprintf(stderr, "hbus: send to %s: %s\n", pos[0], strerror(-rc));
	if (s.sock >= 0)
		close(s.sock);
	free(s.bufs);
	return rc ? CLI_FAIL : CLI_OK;
}
