/*
 * test_hbusd_ops.c - each op against the real hbusd with RabbitMQ's
 * semantics: redeclare rules, passive declares, reserved names, the
 * default exchange, if_unused / if_empty, exclusive queues and consumers,
 * auto-delete; descriptors that really map queues, routing tables that
 * really route.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hbusd_harness.h"
#include "route.h"
#include "testutil.h"

static struct hb_env env;

static void setup(void)
{
	hb_env_init(&env, "ops");
	hb_start(&env, NULL);
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(control_ops, .init = setup, .fini = teardown, .timeout = 60);

/* Open queue `name` through hbusd and map it with owner. */
static hbus_queue *open_queue(int fd, const char *name, const char *mode, uint32_t owner,
			      uint32_t ack)
{
	int qfd = -1;
	json_t *r = hb_call(fd, &qfd, "{s:s, s:s, s:s}", "op", "open_queue", "name", name, "for", mode);
	hbus_queue *q;

	cr_assert(hb_ok(r), "open_queue: %s", hb_error(r));
	cr_assert_geq(qfd, 0, "open_queue passed no descriptor");
	json_decref(r);
	q = tu_open(qfd, owner, ack, 0);
	close(qfd);
	return q;
}

/* Route (exchange, key) on the published table: number of queues. */
static int route(int routes_fd, uint32_t owner, const char *x, const char *key,
		 const struct hbus_meta *hdrs, uint32_t *qids)
{
	struct hbus_routes *r = NULL;
	struct hbus_readers *rd = NULL;
	const struct hbus_rtable *t;
	uint64_t gen;
	uint32_t xid;
	unsigned slot;
	int n, bfd;

	(void)owner;
	/* A block of our own: nothing is published while we look. */
	cr_assert_eq(hbus_routes_open_fd(routes_fd, &r), 0);
	cr_assert_eq(hbus_readers_create(&bfd, &rd), 0);
	cr_assert_eq(hbus_readers_attach(rd, &slot), 0);
	t = hbus_routes_acquire(r, rd, slot, &gen);
	cr_assert_not_null(t);
	n = hbus_route_exchange(t, x, strlen(x), &xid);
	if (n == 0)
		n = hbus_route_lookup(t, xid, key, strlen(key), hdrs, qids, 16);
	hbus_routes_release(rd, slot);
	hbus_readers_close(rd);
	close(bfd);
	hbus_routes_close(r);
	return n;
}

Test(control_ops, exchanges_follow_amqp_rules)
{
	static const char *const types[] = { "direct", "fanout", "topic", "headers" };
	int fd = hb_session(&env, NULL);
	char name[16];
	unsigned i;

	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "x.%s", types[i]);
		OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", name, "type",
			   types[i]));
		OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", name, "type",
			   types[i])); /* identical redeclare */
	}
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "x.direct",
		       "type", "fanout"), 406, "'type'");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s, s:b}", "op", "declare_exchange", "name",
		       "x.direct", "type", "direct", "durable", 1), 406, "durable");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_exchange", "name", "nope",
		       "passive", 1), 404, "nope");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_exchange", "name", "x.topic",
		   "passive", 1));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_exchange", "name", "", "passive", 1));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", ""), 530, "default");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_exchange", "name", "amq.mine"), 530,
	       "amq.");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "x", "type",
		       "x-delayed"), 503, "x-delayed");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_exchange", "name", ""), 530, "default");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_exchange", "name", "nope"), 404, "nope");
	cr_assert_eq(hb_list_count(fd, "exchanges"), 5);

	hb_declare_queue(fd, "q");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "x.fanout",
		   "destination", "q", "key", ""));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "delete_exchange", "name", "x.fanout",
		       "if_unused", 1), 406, "in use");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_exchange", "name", "x.fanout"));
	cr_assert_eq(hb_list_count(fd, "bindings"), 0, "deleting an exchange keeps its bindings");
	cr_assert_eq(hb_list_count(fd, "exchanges"), 4);
	close(fd);
}

Test(control_ops, queues_follow_amqp_rules)
{
	int fd = hb_session(&env, NULL), other;
	json_t *r;

	r = hb_call(fd, NULL, "{s:s, s:s, s:i, s:i, s:s, s:i, s:s, s:s, s:b}", "op",
		    "declare_queue", "name", "orders", "capacity", 256, "slot_size", 512,
		    "overflow", "drop-head", "ttl_ms", 5000, "dead_letter_exchange", "dlx",
		    "dead_letter_routing_key", "dead", "durable", 1);
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert_eq(hb_int(r, "capacity"), 256);
	cr_assert_eq(hb_int(r, "slot_size"), 512);
	cr_assert_gt(hb_int(r, "qid"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(r, "overflow")), "drop-head");
	json_decref(r);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:i, s:s, s:i, s:s, s:s, s:b}", "op",
		   "declare_queue", "name", "orders", "capacity", 256, "slot_size", 512,
		   "overflow", "drop-head", "ttl_ms", 5000, "dead_letter_exchange", "dlx",
		   "dead_letter_routing_key", "dead", "durable", 1));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "orders"), 406,
	       "capacity");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "orders", "passive", 1));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "ghost",
		       "passive", 1), 404, "ghost");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "amq.q"), 530, "amq.");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "c", "capacity",
		       1000), 406, "16777216");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "c", "capacity",
		       1 << 25), 406, "power of two");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "c", "slot_size",
		       4), 406, "1048576");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:I}", "op", "declare_queue", "name", "c", "ttl_ms",
		       (json_int_t)1 << 40), 406, "ttl_ms");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_queue", "name", "c", "overflow",
		       "spill"), 503, "spill");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "declare_queue", "name", "c", "numa_node",
		       4000), 406, "NUMA");
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "");
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert(!strncmp(json_string_value(json_object_get(r, "name")), "amq.gen-", 8));
	json_decref(r);

	/* An exclusive queue belongs to its session. */
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "mine", "exclusive", 1));
	other = hb_session(&env, NULL);
	EXPECT(hb_call(other, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "mine",
		       "exclusive", 1), 405, "exclusive");
	EXPECT(hb_call(other, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "mine",
		       "passive", 1), 405, "mine");
	EXPECT(hb_call(other, NULL, "{s:s, s:s, s:s}", "op", "open_queue", "name", "mine", "for",
		       "write"), 405, "mine");
	EXPECT(hb_call(other, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "mine"), 405, "mine");
	EXPECT(hb_call(other, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "ghost"), 404, "ghost");
	close(other);
	cr_assert_eq(hb_list_count(fd, "queues"), 3);
	close(fd);
}

/* latency: a queue argument like the others: declared, compared on
 * redeclare, written to the queue file, kept across a restart. */
static bool queue_latency(int fd, const char *name)
{
	json_t *r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "queues"), *it;
	bool found = false, latency = false;
	size_t i;

	cr_assert(hb_ok(r), "%s", hb_error(r));
	json_array_foreach(json_object_get(r, "items"), i, it) {
		if (strcmp(json_string_value(json_object_get(it, "name")) ?: "", name))
			continue;
		found = true;
		latency = json_is_true(json_object_get(it, "latency"));
	}
	json_decref(r);
	cr_assert(found, "queue %s not listed", name);
	return latency;
}

Test(control_ops, latency_queues_are_declared_compared_and_kept)
{
	int fd = hb_session(&env, NULL);
	struct hbus_queue_config cfg;
	hbus_queue *q;
	json_t *r;

	r = hb_call(fd, NULL, "{s:s, s:s, s:i, s:b, s:b}", "op", "declare_queue", "name", "lat",
		    "slot_size", 1344, "latency", 1, "durable", 1);
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert(json_is_true(json_object_get(r, "latency")));
	json_decref(r);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:b, s:b}", "op", "declare_queue", "name", "lat",
		   "slot_size", 1344, "latency", 1, "durable", 1));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i, s:b}", "op", "declare_queue", "name", "lat",
		       "slot_size", 1344, "durable", 1), 406, "latency");
	r = hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_queue", "name", "bad", "latency",
		    "yes");
	cr_assert(!hb_ok(r) && strstr(hb_error(r), "latency"), "%s", hb_error(r));
	json_decref(r);
	cr_assert(queue_latency(fd, "lat"));
	q = hb_open_queue(fd, "lat", "write", 1, HBUS_ACK_AUTO);
	cr_assert_eq(hbus_queue_config_get(q, &cfg), 0);
	cr_assert_eq(cfg.flags, HBUS_QUEUE_F_LATENCY, "the queue file carries the flag");
	hbus_queue_close(q);
	close(fd);

	cr_assert_eq(hb_stop(&env), 0);
	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	cr_assert(queue_latency(fd, "lat"), "latency lost across a restart");
	close(fd);
}

Test(control_ops, delete_and_purge_count_messages)
{
	uint32_t owner;
	int fd = hb_session(&env, &owner), i, cfd = -1;
	hbus_queue *q;
	json_t *r;

	hb_declare_queue(fd, "work");
	q = open_queue(fd, "work", "write", owner, HBUS_ACK_AUTO);
	for (i = 0; i < 5; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, (uint32_t)i), 0);
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "delete_queue", "name", "work", "if_empty",
		       1), 406, "5 message");
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "purge_queue", "name", "work");
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert_eq(hb_int(r, "purged"), 5);
	json_decref(r);
	for (i = 0; i < 3; i++)
		cr_assert_eq(tu_enqueue_id(q, 1, (uint32_t)i), 0);
	r = hb_call(fd, &cfd, "{s:s, s:s}", "op", "consume", "queue", "work");
	cr_assert(hb_ok(r));
	close(cfd);
	json_decref(r);
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "delete_queue", "name", "work", "if_unused",
		       1), 406, "consumer");
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_queue", "name", "work");
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert_eq(hb_int(r, "messages"), 3);
	json_decref(r);
	cr_assert_eq(hb_list_count(fd, "queues"), 0);
	cr_assert_eq(hb_list_count(fd, "consumers"), 0);
	hbus_queue_close(q);
	close(fd);
}

Test(control_ops, bindings_route_on_the_published_table)
{
	uint32_t owner, qids[16], qa, qb;
	int fd = hb_connect(&env), rfd = -1;
	struct hbus_meta meta = { .header_count = 1 };
	json_t *r;

	r = hb_call(fd, &rfd, "{s:s}", "op", "hello");
	cr_assert(hb_ok(r));
	owner = (uint32_t)hb_int(r, "owner");
	json_decref(r);
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "qa");
	qa = (uint32_t)hb_int(r, "qid");
	json_decref(r);
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "declare_queue", "name", "qb");
	qb = (uint32_t)hb_int(r, "qid");
	json_decref(r);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "md", "type", "topic"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "hx", "type",
		   "headers"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "edge", "type",
		   "fanout"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "md", "destination",
		   "qa", "key", "px.*.eu"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "md", "destination",
		   "qa", "key", "px.*.eu")); /* twice = once */
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s, s:s}", "op", "bind", "source", "edge",
		   "destination", "md", "destination_type", "exchange", "key", ""));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:{s:s, s:s}, s:s}", "op", "bind", "source", "hx",
		   "destination", "qb", "headers", "venue", "xeur", "kind", "fut", "match", "any"));
	cr_assert_eq(hb_list_count(fd, "bindings"), 3);

	cr_assert_eq(route(rfd, owner, "md", "px.bund.eu", NULL, qids), 1);
	cr_assert_eq(qids[0], qa);
	cr_assert_eq(route(rfd, owner, "md", "px.bund.us", NULL, qids), 0);
	/* edge (fanout) -> md (topic): exchange-to-exchange. */
	cr_assert_eq(route(rfd, owner, "edge", "px.oat.eu", NULL, qids), 1);
	cr_assert_eq(qids[0], qa);
	cr_assert_eq(route(rfd, owner, "", "qb", NULL, qids), 1, "default exchange routes by name");
	cr_assert_eq(qids[0], qb);
	meta.headers[0] = (struct hbus_header){ .name = "kind", .name_len = 4, .value = "fut",
						.value_len = 3 };
	cr_assert_eq(route(rfd, owner, "hx", "", &meta, qids), 1);
	cr_assert_eq(qids[0], qb);

	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "", "destination", "qa"),
	       530, "default");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "nox", "destination",
		       "qa"), 404, "nox");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "md", "destination",
		       "noq"), 404, "noq");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "bind", "source", "md", "destination",
		       "qa", "destination_type", "topic"), 503, "destination_type");

	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "unbind", "source", "md", "destination",
		   "qa", "key", "px.*.eu"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s, s:s}", "op", "unbind", "source", "md", "destination",
		   "qa", "key", "px.*.eu")); /* not bound: still fine */
	cr_assert_eq(route(rfd, owner, "md", "px.bund.eu", NULL, qids), 0, "unbind did not reach readers");
	cr_assert_eq(hb_list_count(fd, "bindings"), 2);
	close(rfd);
	close(fd);
}

Test(control_ops, consumers_register_cancel_and_auto_delete)
{
	int fd = hb_session(&env, NULL), other, cfd = -1;
	json_t *r;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "temp", "auto_delete", 1));
	hb_declare_queue(fd, "shared");
	r = hb_call(fd, &cfd, "{s:s, s:s, s:s, s:i, s:s}", "op", "consume", "queue", "temp",
		    "ack_mode", "manual", "prefetch", 8, "consumer_tag", "c1");
	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert_str_eq(json_string_value(json_object_get(r, "consumer_tag")), "c1");
	cr_assert_geq(cfd, 0);
	close(cfd);
	json_decref(r);
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "consume", "queue", "shared",
		       "consumer_tag", "c1"), 530, "c1");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "consume", "queue", "temp", "ack_mode",
		       "sometimes"), 503, "sometimes");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "consume", "queue", "none"), 404, "none");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "consume", "queue", "shared", "exclusive", 1));
	other = hb_session(&env, NULL);
	EXPECT(hb_call(other, NULL, "{s:s, s:s}", "op", "consume", "queue", "shared"), 405,
	       "exclusive");
	EXPECT(hb_call(other, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "c1"), 404, "c1");
	close(other);
	cr_assert_eq(hb_list_count(fd, "consumers"), 2);
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "c1"));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "cancel", "consumer_tag", "c1"), 404, "c1");
	/* temp lost its last consumer: auto-deleted. */
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "temp", "passive",
		       1), 404, "temp");
	cr_assert_eq(hb_list_count(fd, "consumers"), 1);
	close(fd);
}

Test(control_ops, udp_maps)
{
	int fd = hb_session(&env, NULL);
	json_t *r, *it;

	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "declare_exchange", "name", "feed", "type",
		   "direct"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s, s:s}", "op", "map_udp", "addr", "239.1.2.3",
		   "port", 5000, "exchange", "feed", "key", "md"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s, s:s}", "op", "map_udp", "addr", "239.1.2.3",
		   "port", 5000, "exchange", "feed", "key", "md"));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s, s:s}", "op", "map_udp", "addr", "239.1.2.3",
		       "port", 5000, "exchange", "feed", "key", "other"), 406, "already mapped");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s}", "op", "map_udp", "addr", "239.1.2",
		       "port", 5000, "exchange", "feed"), 503, "IPv4");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s}", "op", "map_udp", "addr", "10.0.0.1",
		       "port", 0, "exchange", "feed"), 503, "port");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i, s:s}", "op", "map_udp", "addr", "10.0.0.1",
		       "port", 9, "exchange", "nofeed"), 404, "nofeed");
	EXPECT(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_exchange", "name", "feed"), 406, "unmap");
	r = hb_call(fd, NULL, "{s:s, s:s}", "op", "list", "what", "udpmaps");
	it = json_array_get(json_object_get(r, "items"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(it, "addr")), "239.1.2.3");
	cr_assert_eq(hb_int(it, "port"), 5000);
	json_decref(r);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "unmap_udp", "addr", "239.1.2.3", "port", 5000));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:i}", "op", "unmap_udp", "addr", "239.1.2.3", "port",
		       5000), 404, "not mapped");
	OK(hb_call(fd, NULL, "{s:s, s:s}", "op", "delete_exchange", "name", "feed"));
	close(fd);
}

Test(control_ops, passed_descriptors_carry_messages_and_stat_counts_them)
{
	struct tu_payload p;
	struct hbus_msg m;
	uint32_t owner;
	int fd = hb_session(&env, &owner), i, cfd = -1;
	hbus_queue *prod, *cons;
	json_t *r, *s0;

	hb_declare_queue(fd, "data");
	prod = open_queue(fd, "data", "write", owner, HBUS_ACK_AUTO);
	for (i = 0; i < 40; i++)
		cr_assert_eq(tu_enqueue_id(prod, 7, (uint32_t)i), 0);
	r = hb_call(fd, &cfd, "{s:s, s:s, s:s}", "op", "consume", "queue", "data", "ack_mode", "manual");
	cr_assert(hb_ok(r), "%s", hb_error(r));
	json_decref(r);
	cons = tu_open(cfd, owner, HBUS_ACK_MANUAL, 0);
	close(cfd);
	for (i = 0; i < 40; i++) {
		cr_assert_eq(hbus_queue_consume(cons, &m), 0);
		cr_assert(tu_payload_ok(&m, &p), "payload %d corrupt", i);
		cr_assert_eq(p.seq, (uint32_t)i);
		cr_assert_eq(hbus_queue_ack(cons, &m), 0);
	}
	r = hb_call(fd, NULL, "{s:s}", "op", "stat");
	cr_assert(hb_ok(r));
	s0 = json_array_get(json_object_get(r, "queues"), 0);
	cr_assert_eq(hb_int(s0, "enqueued"), 40);
	cr_assert_eq(hb_int(s0, "delivered"), 40);
	cr_assert_eq(hb_int(s0, "acked"), 40);
	cr_assert_eq(hb_int(s0, "depth"), 0);
	cr_assert_eq(hb_int(s0, "unacked"), 0);
	cr_assert_eq(hb_int(s0, "consumers"), 1);
	json_decref(r);
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "open_queue", "name", "data", "for", "own"),
	       503, "own");
	EXPECT(hb_call(fd, NULL, "{s:s, s:i, s:s}", "op", "open_queue", "qid", 999, "for", "read"),
	       404, "999");
	hbus_queue_close(prod);
	hbus_queue_close(cons);
	close(fd);
}

