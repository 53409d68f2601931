/*
 * test_hbusd_fuzzed.c - inputs the control-plane fuzzers (tests/fuzz:
 * fuzz_request, fuzz_defs) found to break hbusd, replayed against the real
 * daemon so they stay fixed.  Each test names the property that failed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hbusd_harness.h"

static struct hb_env env;

static void setup(void)
{
	hb_env_init(&env, "fz");
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(control_fuzzed, .init = setup, .fini = teardown, .timeout = 60);

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *log_text(void)
{
	return hb_log_text(&env);
}

/* fuzz_defs, restore: a definitions queue whose name is not a string made
 * restore read the name through a NULL pointer (hbusd crashed at start). */
Test(control_fuzzed, definitions_queue_with_a_non_string_name_is_skipped)
{
	int fd;

	write_file(env.defs, "{\"hbus_definitions\":1,\"queues\":[{\"name\":7},{\"name\":\"\"},"
			     "{\"name\":\"good\",\"capacity\":8,\"durable\":true}]}");
	hb_start(&env, NULL);
	cr_assert(strstr(log_text(), "queue entry skipped: definitions queue: field 'name' must be "
				     "a string"), "%s", log_text());
	cr_assert(strstr(log_text(), "queue entry skipped: no name"), "%s", log_text());
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_queue", "name", "good", "passive", 1));
	cr_assert_eq(hb_list_count(fd, "queues"), 1);
	close(fd);
}

/* fuzz_defs, "a refused import changes nothing": undoing an import's new
 * binding from an auto-delete exchange deleted that (older) exchange. */
Test(control_fuzzed, refused_import_keeps_an_auto_delete_exchange)
{
	int fd;

	hb_start(&env, NULL);
	fd = hb_session(&env, NULL);
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_exchange", "name", "ad", "auto_delete",
		   1));
	hb_declare_queue(fd, "q");
	EXPECT(hb_call(fd, NULL, "{s:s, s:{s:i, s:[{s:s, s:s, s:s}], s:[{s:s, s:i, s:s, s:s}]}}",
		       "op", "import", "definitions", "hbus_definitions", 1, "bindings", "source", "ad",
		       "destination", "q", "key", "k", "udpmaps", "addr", "10.1.1.1", "port", 9,
		       "exchange", "nope", "key", ""),
	       404, "definitions udpmaps[0]: no exchange 'nope'");
	OK(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_exchange", "name", "ad", "passive", 1));
	cr_assert_eq(hb_list_count(fd, "bindings"), 0);
	/* And it still goes when its first real binding does. */
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "bind", "source", "ad", "destination", "q"));
	OK(hb_call(fd, NULL, "{s:s, s:s, s:s}", "op", "unbind", "source", "ad", "destination", "q"));
	EXPECT(hb_call(fd, NULL, "{s:s, s:s, s:b}", "op", "declare_exchange", "name", "ad", "passive",
		       1), 404, "no exchange 'ad'");
	close(fd);
}
