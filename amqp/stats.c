/* stats.c - the gateway's counters, as one JSON object (for hbusd's stat
 * reply, `hbus stat` and its Prometheus output, and --stats-file). */
#include "gw.h"

struct gw_counters gw_stats;

const char *const gw_counter_names[GC_N] = {
	[GC_CONN_ACCEPTED] = "connections_accepted",
	[GC_CONN_CLOSED] = "connections_closed",
	[GC_AUTH_FAILED] = "auth_failed",
	[GC_CONN_REFUSED] = "connections_refused",
	[GC_FRAMES_IN] = "frames_in",
	[GC_FRAMES_OUT] = "frames_out",
	[GC_BYTES_IN] = "bytes_in",
	[GC_BYTES_OUT] = "bytes_out",
	[GC_PUBLISHED] = "published",
	[GC_PUB_UNROUTABLE] = "unroutable",
	[GC_PUB_RETURNED] = "returned",
	[GC_PUB_REFUSED] = "publish_refused",
	[GC_CONFIRM_ACK] = "confirm_acks",
	[GC_CONFIRM_NACK] = "confirm_nacks",
	[GC_DELIVERED] = "delivered",
	[GC_REDELIVERED] = "redelivered",
	[GC_GET] = "get_ok",
	[GC_GET_EMPTY] = "get_empty",
	[GC_ACKED] = "acked",
	[GC_NACKED] = "requeued",
	[GC_REJECTED] = "rejected",
	[GC_ERR_FRAME] = "err_frame",
	[GC_ERR_SYNTAX] = "err_syntax",
	[GC_ERR_UNEXPECTED] = "err_unexpected_frame",
	[GC_ERR_CHANNEL] = "err_channel",
	[GC_ERR_NOT_IMPL] = "err_not_implemented",
	[GC_CHAN_EXCEPTIONS] = "channel_exceptions",
	[GC_CONN_EXCEPTIONS] = "connection_exceptions",
	[GC_SLOW_READER] = "slow_reader_closed",
	[GC_HEARTBEAT_TIMEOUT] = "heartbeat_timeouts",
	[GC_HANDSHAKE_TIMEOUT] = "handshake_timeouts",
	[GC_LIMIT_HIT] = "limit_hit",
};

json_t *gw_stats_json(void)
{
	json_t *o = json_object();
	unsigned i;

	if (!o)
		return NULL;
	json_object_set_new(o, "connections", json_integer(atomic_load(&gw_stats.connections)));
	json_object_set_new(o, "channels", json_integer(atomic_load(&gw_stats.channels)));
	json_object_set_new(o, "consumers", json_integer(atomic_load(&gw_stats.consumers)));
	for (i = 0; i < GC_N; i++)
		json_object_set_new(o, gw_counter_names[i],
				    json_integer((json_int_t)atomic_load(&gw_stats.v[i])));
	return o;
}
