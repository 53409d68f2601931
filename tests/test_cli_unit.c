/*
 * test_cli_unit.c - the `hbus` command's parsing and output helpers
 * (control/cli_*.c), without hbusd: option parsing, addresses and
 * headers, UTF-8 checks, base64, message JSON, tables.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))

Test(cli_parse, options_and_positionals_mix)
{
	int durable = 0, seen_cap = 0;
	uint32_t cap = 0;
	const char *overflow = NULL, *pos[2];
	struct cli_list hdrs = { .n = 0 };
	const struct cli_opt opts[] = {
		{ "--durable", OPT_FLAG, &durable, NULL, NULL },
		{ "--capacity", OPT_U32, &cap, NULL, &seen_cap },
		{ "--overflow", OPT_CHOICE, &overflow, "reject|drop-head", NULL },
		{ "--header", OPT_LIST, &hdrs, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};
	char **argv = ARGV("declare-queue", "--capacity=1024", "q1", "--durable", "--header",
			   "a=1", "--overflow", "drop-head", "--header=b=2", "--", "--odd");
	int n = cli_parse("declare-queue", 11, argv, opts, pos, 1, 2);

	cr_assert_eq(n, 2);
	cr_assert_str_eq(pos[0], "q1");
	cr_assert_str_eq(pos[1], "--odd", "after --, everything is positional");
	cr_assert_eq(durable, 1);
	cr_assert_eq(cap, 1024);
	cr_assert_eq(seen_cap, 1);
	cr_assert_str_eq(overflow, "drop-head");
	cr_assert_eq(hdrs.n, 2);
	cr_assert_str_eq(hdrs.v[0], "a=1");
	cr_assert_str_eq(hdrs.v[1], "b=2");
}

Test(cli_parse, hex_and_dash_positional)
{
	uint64_t v = 0;
	const char *pos[1];
	const struct cli_opt opts[] = {
		{ "--count", OPT_U64, &v, NULL, NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};

	cr_assert_eq(cli_parse("x", 4, ARGV("x", "--count", "0x10", "-"), opts, pos, 1, 1), 1);
	cr_assert_eq(v, 16);
	cr_assert_str_eq(pos[0], "-", "a lone '-' (stdin/stdout) is a positional");
}

static void expect_usage_error(int argc, char **argv, const char *needle)
{
	int32_t i32 = 0;
	uint32_t u32 = 0;
	int flag = 0;
	const char *choice = NULL, *pos[2];
	const struct cli_opt opts[] = {
		{ "--flag", OPT_FLAG, &flag, NULL, NULL },
		{ "--u32", OPT_U32, &u32, NULL, NULL },
		{ "--i32", OPT_I32, &i32, NULL, NULL },
		{ "--match", OPT_CHOICE, &choice, "all|any", NULL },
		{ NULL, 0, NULL, NULL, NULL },
	};
	char buf[512] = "";
	FILE *err;

	cr_assert_eq(cli_parse("cmd", argc, argv, opts, pos, 1, 2), -1, "%s accepted", needle);
	fflush(stderr);
	err = cr_get_redirected_stderr();
	size_t n = fread(buf, 1, sizeof(buf) - 1, err);
	buf[n] = '\0';
	cr_assert(strstr(buf, needle), "stderr '%s' lacks '%s'", buf, needle);
	cr_assert(strncmp(buf, "hbus: cmd: ", 11) == 0, "one-line format: %s", buf);
}

Test(cli_parse, unknown_option, .init = cr_redirect_stderr)
{
	expect_usage_error(3, ARGV("cmd", "a", "--nope"), "unknown option '--nope'");
}

Test(cli_parse, short_option_unknown, .init = cr_redirect_stderr)
{
	expect_usage_error(3, ARGV("cmd", "a", "-x"), "unknown option '-x'");
}

Test(cli_parse, missing_value, .init = cr_redirect_stderr)
{
	expect_usage_error(3, ARGV("cmd", "a", "--u32"), "--u32 needs a value");
}

Test(cli_parse, flag_with_value, .init = cr_redirect_stderr)
{
	expect_usage_error(3, ARGV("cmd", "a", "--flag=1"), "--flag takes no value");
}

Test(cli_parse, number_out_of_range, .init = cr_redirect_stderr)
{
	expect_usage_error(4, ARGV("cmd", "a", "--u32", "4294967296"), "wants a number");
}

Test(cli_parse, negative_unsigned, .init = cr_redirect_stderr)
{
	expect_usage_error(4, ARGV("cmd", "a", "--u32", "-1"), "wants a number");
}

Test(cli_parse, trailing_garbage, .init = cr_redirect_stderr)
{
	expect_usage_error(4, ARGV("cmd", "a", "--i32", "12x"), "wants an integer");
}

Test(cli_parse, bad_choice, .init = cr_redirect_stderr)
{
	expect_usage_error(4, ARGV("cmd", "a", "--match", "some"), "one of all|any");
}

Test(cli_parse, too_many_positionals, .init = cr_redirect_stderr)
{
	expect_usage_error(4, ARGV("cmd", "a", "b", "c"), "unexpected argument 'c'");
}

Test(cli_parse, too_few_positionals, .init = cr_redirect_stderr)
{
	expect_usage_error(2, ARGV("cmd", "--flag"), "missing argument");
}

Test(cli_values, addresses)
{
	uint32_t ip;
	uint16_t port;
	char text[32];

	cr_assert_eq(cli_parse_addr("127.0.0.1:5000", &ip, &port, text, sizeof(text)), 0);
	cr_assert_eq(ip, htonl(0x7f000001));
	cr_assert_eq(port, 5000);
	cr_assert_str_eq(text, "127.0.0.1");
	cr_assert_eq(cli_parse_addr("239.1.2.3:65535", &ip, &port, NULL, 0), 0);
	cr_assert_eq(port, 65535);
	cr_assert_eq(cli_parse_addr("127.0.0.1", &ip, &port, NULL, 0), -1);
	cr_assert_eq(cli_parse_addr("127.0.0.1:0", &ip, &port, NULL, 0), -1);
	cr_assert_eq(cli_parse_addr("127.0.0.1:65536", &ip, &port, NULL, 0), -1);
	cr_assert_eq(cli_parse_addr("127.0.0.256:1", &ip, &port, NULL, 0), -1);
	cr_assert_eq(cli_parse_addr("host:1", &ip, &port, NULL, 0), -1);
	cr_assert_eq(cli_parse_addr(":1", &ip, &port, NULL, 0), -1);
	cr_assert_eq(cli_parse_addr("1.2.3.4:1x", &ip, &port, NULL, 0), -1);
}

Test(cli_values, headers)
{
	struct hbus_header h;
	struct cli_list l = { .v = { "a=1", "x-match=any=2" }, .n = 2 };
	json_t *o;

	cr_assert_eq(cli_parse_header("k=v=w", &h), 0);
	cr_assert_eq(h.name_len, 1);
	cr_assert_eq(h.value_len, 3);
	cr_assert_eq(memcmp(h.value, "v=w", 3), 0);
	cr_assert_eq(cli_parse_header("k=", &h), 0);
	cr_assert_eq(h.value_len, 0);
	cr_assert_eq(cli_parse_header("=v", &h), -1);
	cr_assert_eq(cli_parse_header("novalue", &h), -1);
	o = cli_headers_json(&l, "bind");
	cr_assert_not_null(o);
	cr_assert_str_eq(json_string_value(json_object_get(o, "a")), "1");
	cr_assert_str_eq(json_string_value(json_object_get(o, "x-match")), "any=2");
	json_decref(o);
}

Test(cli_out, utf8)
{
	cr_assert(cli_utf8_valid((const uint8_t *)"plain", 5));
	cr_assert(cli_utf8_valid((const uint8_t *)"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	cr_assert_not(cli_utf8_valid((const uint8_t *)"\xc3", 1), "truncated sequence");
	cr_assert_not(cli_utf8_valid((const uint8_t *)"\xc0\xaf", 2), "overlong");
	cr_assert_not(cli_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3), "overlong 3-byte");
	cr_assert_not(cli_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3), "surrogate");
	cr_assert_not(cli_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4), "past U+10FFFF");
	cr_assert_not(cli_utf8_valid((const uint8_t *)"a\0b", 3), "NUL");
	cr_assert_not(cli_utf8_valid((const uint8_t *)"\x80", 1), "lone continuation");
	cr_assert(cli_utf8_valid((const uint8_t *)"", 0));
}

Test(cli_out, base64_rfc4648_vectors)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					   "Zm9vYmFy" };

	for (unsigned i = 0; i < 7; i++) {
		char *s = cli_base64((const uint8_t *)in[i], strlen(in[i]));
		cr_assert_str_eq(s, out[i]);
		free(s);
	}
}

static struct hbus_msg msg_with(uint8_t *meta_buf, const char *body, size_t body_len,
				uint16_t flags, uint64_t ts)
{
	struct hbus_meta meta = {
		.exchange = "amq.topic", .exchange_len = 9,
		.routing_key = "a.b", .routing_key_len = 3, .header_count = 2,
		.headers = {
			{ .name = "h1", .name_len = 2, .value = "v1", .value_len = 2 },
			{ .name = "bin", .name_len = 3, .value = "\xff\x00", .value_len = 2 },
		},
	};
	int n = hbus_meta_encode(&meta, meta_buf, 256);

	cr_assert_gt(n, 0);
	return (struct hbus_msg){ .meta = meta_buf, .meta_len = (uint16_t)n,
				  .body = (const uint8_t *)body, .body_len = (uint32_t)body_len,
				  .flags = flags, .send_ts_ns = ts };
}

Test(cli_out, message_json_text)
{
	uint8_t mb[256];
	struct hbus_msg m = msg_with(mb, "hello", 5, HBUS_MSG_REDELIVERED, 1000);
	json_t *o = cli_msg_json(&m, 1500), *h;

	cr_assert_not_null(o);
	cr_assert_str_eq(json_string_value(json_object_get(o, "exchange")), "amq.topic");
	cr_assert_str_eq(json_string_value(json_object_get(o, "routing_key")), "a.b");
	cr_assert_str_eq(json_string_value(json_object_get(o, "body")), "hello");
	cr_assert_null(json_object_get(o, "body_encoding"));
	cr_assert(json_is_true(json_object_get(o, "redelivered")));
	cr_assert_eq(json_integer_value(json_object_get(o, "send_ts_ns")), 1000);
	cr_assert_eq(json_integer_value(json_object_get(o, "latency_ns")), 500);
	h = json_object_get(o, "headers");
	cr_assert_str_eq(json_string_value(json_object_get(h, "h1")), "v1");
	/* A binary header value is base64 and named in headers_base64. */
	cr_assert_str_eq(json_string_value(json_object_get(h, "bin")), "/wA=");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "headers_base64"), 0)),
			 "bin");
	json_decref(o);
}

Test(cli_out, message_json_binary_body)
{
	uint8_t mb[256];
	struct hbus_msg m = msg_with(mb, "\x01\x02\xfe", 3, 0, 0);
	json_t *o = cli_msg_json(&m, 1500);

	cr_assert_str_eq(json_string_value(json_object_get(o, "body")), "AQL+");
	cr_assert_str_eq(json_string_value(json_object_get(o, "body_encoding")), "base64");
	cr_assert(json_is_false(json_object_get(o, "redelivered")));
	cr_assert_null(json_object_get(o, "send_ts_ns"), "no timestamp, no latency");
	cr_assert_null(json_object_get(o, "latency_ns"));
	json_decref(o);
}

Test(cli_out, message_json_empty_meta)
{
	struct hbus_msg m = { .body = (const uint8_t *)"", .body_len = 0 };
	json_t *o = cli_msg_json(&m, 0);

	cr_assert_str_eq(json_string_value(json_object_get(o, "exchange")), "");
	cr_assert_str_eq(json_string_value(json_object_get(o, "body")), "");
	cr_assert_eq(json_object_size(json_object_get(o, "headers")), 0);
	json_decref(o);
}

Test(cli_out, table)
{
	static const char *const cols[] = { "name", "absent", NULL };
	json_t *items = json_loads("[{\"type\":\"direct\",\"name\":\"x\",\"n\":12},"
				   "{\"name\":\"longer-name\",\"durable\":true,\"n\":3}]", 0, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cli_print_table(f, items, cols);
	fclose(f);
	cr_assert_str_eq(buf,
		"NAME         TYPE    N   DURABLE\n"
		"x            direct  12  \n"
		"longer-name          3   yes\n");
	free(buf);
	json_decref(items);
}
