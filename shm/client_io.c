/*
 * client_io.c - the client's end of the session socket: send, receive a
 * reply with its descriptors, connect; every call made again after EINTR
 * (client.c is the protocol on top).
 */
#include "client_internal.h"
#include "queue_internal.h" /* hbus_now_ns */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 10000

/*
 * Signals.  A handler installed without SA_RESTART (net_tap's SIGIO in
 * hbus-dataplane, profilers, an application's timers) makes a blocking
 * call fail with EINTR.  That says nothing about the session, so every
 * call below is simply made again: a seqpacket send or receive is all or
 * nothing, so an interrupted one moved no data; poll keeps its deadline.
 */

void client_drop_locked(hbus_client *c)
{
	if (c->sock >= 0) {
		close(c->sock);
		c->sock = -1;
	}
}

int client_send_locked(hbus_client *c, const char *text, size_t len)
{
	ssize_t n;

	do
		n = send(c->sock, text, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

static ssize_t recvmsg_retry(int fd, struct msghdr *mh, int flags)
{
	ssize_t n;

	do
		n = recvmsg(fd, mh, flags);
	while (n < 0 && errno == EINTR);
	return n;
}

/* poll() one descriptor for events within timeout_ms: 1, -ETIMEDOUT, or
 * -errno. */
static int poll_one(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t deadline = hbus_now_ns() + (uint64_t)timeout_ms * 1000000u, now;
	int rc;

	for (;;) {
		rc = poll(&p, 1, timeout_ms);
		if (rc > 0)
			return 1;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
		now = hbus_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		timeout_ms = (int)((deadline - now + 999999) / 1000000);
	}
}

/*
 * connect(), made again after EINTR.  On a Unix socket an interrupted
 * connect left the socket unconnected and is simply repeated; a kernel
 * that went on connecting in the background answers EALREADY or EISCONN,
 * and then the outcome is waited for and read from SO_ERROR.
 */
int client_connect_retry(int fd, const struct sockaddr_un *addr)
{
	int err = 0, rc;
	socklen_t len = sizeof(err);

	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0)
		return 0;
	while (errno == EINTR) {
		if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0)
			return 0;
	}
	if (errno == EISCONN)
		return 0;
	if (errno != EALREADY && errno != EINPROGRESS)
		return -errno;
	rc = poll_one(fd, POLLOUT, CALL_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return -errno;
	return -err;
}

/*
 * Receive one reply: peek at its length first (MSG_TRUNC reports the real
 * size of a seqpacket record) so replies of any size fit, then take it with
 * room for two descriptors (hello passes the routes file and the session's
 * reader block).  Extra descriptors are closed, never leaked.
 */
int client_recv_locked(hbus_client *c, char **text, int fds[2])
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct msghdr mh;
	struct iovec iov;
	struct cmsghdr *cm;
	ssize_t len, n;
	char one;
	int rc;

	fds[0] = fds[1] = -1;
	rc = poll_one(c->sock, POLLIN, CALL_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	iov = (struct iovec){ .iov_base = &one, .iov_len = 1 };
	mh = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1 };
	len = recvmsg_retry(c->sock, &mh, MSG_PEEK | MSG_TRUNC);
	if (len < 0)
		return -errno;
	if (len == 0)
		return -ECONNRESET; /* hbusd closed the session */
	*text = malloc((size_t)len + 1);
	if (!*text)
		return -ENOMEM;
	iov = (struct iovec){ .iov_base = *text, .iov_len = (size_t)len };
	mh = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	n = recvmsg_retry(c->sock, &mh, MSG_CMSG_CLOEXEC);
	if (n != len) {
		free(*text);
		*text = NULL;
		return n < 0 ? -errno : -EPROTO;
	}
	(*text)[len] = '\0';
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (fds[0] < 0)
				fds[0] = f;
			else if (fds[1] < 0)
				fds[1] = f;
			else
				close(f);
		}
	}
	return 0;
}

