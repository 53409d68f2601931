/*
 * util.c - small helpers shared by every part of libhbus.
 */
#include <errno.h>
#include <string.h>

#include "hbus.h"

/*
 * hbus functions return negative errno codes.  Some codes mean something
 * more precise in hbus than libc's generic text ("No buffer space available"
 * for a full queue helps nobody), so those get hbus wording; everything else
 * falls back to libc.  strerrordesc_np() returns a static string, so this is
 * thread-safe, unlike strerror().
 */
const char *hbus_strerror(int err)
{
	if (err < 0)
		err = -err;

	switch (err) {
	case 0:               return "success";
	case ENOBUFS:         return "queue full";
	case EMSGSIZE:        return "message larger than slot";
	case EPROTO:          return "not an hbus file / bad magic";
	case EPROTONOSUPPORT: return "unsupported layout version";
	case EUCLEAN:         return "queue ring corrupt (a walk over its slots found no end)";
	case EBADMSG:         return "malformed";
	case ESTALE:          return "delivery tag not held";
	case EBUSY:           return "busy (prefetch limit reached, or a routing-table half still in use)";
	case EAGAIN:          return "would block (queue empty or full)";
	case ENOSPC:          return "no space left (buffer, frame or hugepage pool full)";
	case ETIMEDOUT:       return "timed out";
	/* Routing: a lookup reaches at most HBUS_ROUTE_MAX_QIDS queues and
	 * RT_MAX_XIDS exchanges; a table has 32-bit offsets. */
	case E2BIG:           return "routed to too many queues/exchanges";
	case EFBIG:           return "too large (routing table or file past its limit)";
	case EOVERFLOW:       return "overflow (corrupt routing table?)";
	case ERANGE:          return "out of range (queue id past the router's limit)";
	/* The session with hbusd. */
	case EREMOTEIO:       return "refused by hbusd (see its reply code and message)";
	case ENOTCONN:        return "no session with hbusd (reconnecting)";
	case ECONNRESET:      return "session with hbusd lost (a request in flight may have been applied)";
	default:              break;
	}

	const char *s = strerrordesc_np(err);
	return s ? s : "unknown error";
}
