/*
 * test_dp_busdir.c - hbus-dataplane learns the bus directory from hbusd
 * (dataplane/dp_busdir.c) against a real hbusd, without DPDK: hbusd's hello
 * names its bus directory, the library keeps it, and a directory that is
 * not hbusd's is refused with a message that names both and the fix.
 * The real hbus-dataplane doing the same: tests/test_dp_busdir.sh.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_internal.h" /* hbus_client_check */
#include "dp_busdir.h"
#include "hbusd_harness.h"

static struct hb_env env;
static char bus_dir[256], other[256];

static void setup(void)
{
	hb_env_init(&env, "bdir");
	hb_start(&env, NULL);
	hb_bus_dir(&env, bus_dir, sizeof(bus_dir));
	/* Another directory of the same name elsewhere: what a wrong
	 * --shm-dir gives (inside the harness's base dir, removed with it). */
	snprintf(other, sizeof(other), "%s/shm2", env.base);
	cr_assert_eq(mkdir(other, 0700), 0);
	strcat(other, "/hbus-");
	strcat(other, env.bus);
	cr_assert_eq(mkdir(other, 0700), 0);
}

static void teardown(void)
{
	hb_env_fini(&env);
}

TestSuite(dp_busdir, .init = setup, .fini = teardown, .timeout = 60);

static hbus_client *connect_dp(void)
{
	struct hbus_client_opts o = { .bus = env.bus, .run_dir = env.run, .role = "dataplane" };
	hbus_client *cl = NULL;

	cr_assert_eq(hbus_connect(&o, &cl), 0);
	return cl;
}

Test(dp_busdir, hello_names_the_bus_directory)
{
	int fd = hb_connect(&env), rfd = -1;
	json_t *r = hb_call(fd, &rfd, "{s:s, s:s, s:i}", "op", "hello", "role", "dataplane",
			    "version", 1);

	cr_assert(hb_ok(r), "%s", hb_error(r));
	cr_assert_str_eq(json_string_value(json_object_get(r, "bus_dir")), bus_dir);
	cr_assert_geq(rfd, 0, "the routes descriptor still comes with it");
	json_decref(r);
	close(rfd);
	close(fd);
}

Test(dp_busdir, session_gives_hbusds_directory)
{
	hbus_client *cl = connect_dp();
	char dir[256];

	cr_assert_eq(dp_busdir_from_session(cl, env.bus, dir, sizeof(dir)), 0);
	cr_assert_str_eq(dir, bus_dir);
	cr_assert_eq(dp_busdir_from_session(cl, env.bus, dir, 8), -ENAMETOOLONG);
	hbus_close(cl);
}

Test(dp_busdir, same_directory_passes)
{
	hbus_client *cl = connect_dp();
	char err[768] = "", spelled[300];

	cr_assert_eq(dp_busdir_check(cl, env.bus, bus_dir, env.shm, err, sizeof(err)), 0);
	/* Another spelling of the same directory is the same directory. */
	snprintf(spelled, sizeof(spelled), "%s//./hbus-%s/", env.shm, env.bus);
	cr_assert_eq(dp_busdir_check(cl, env.bus, spelled, env.shm, err, sizeof(err)), 0);
	cr_assert_str_empty(err);
	hbus_close(cl);
}

Test(dp_busdir, other_directory_is_refused_with_the_fix)
{
	hbus_client *cl = connect_dp();
	char err[768] = "";

	cr_assert_eq(dp_busdir_check(cl, env.bus, other, "/elsewhere", err, sizeof(err)), -EXDEV);
	cr_assert(strstr(err, bus_dir), "names hbusd's directory: %s", err);
	cr_assert(strstr(err, other), "names ours: %s", err);
	cr_assert(strstr(err, "--shm-dir /elsewhere"), "names the option: %s", err);
	cr_assert(strstr(err, "or none (it then asks hbusd)"), "gives the fix: %s", err);
	/* Learnt from an earlier hbusd (no --shm-dir): restart. */
	cr_assert_eq(dp_busdir_check(cl, env.bus, other, NULL, err, sizeof(err)), -EXDEV);
	cr_assert(strstr(err, "restart hbus-dataplane"), "%s", err);
	/* A directory that does not exist is not hbusd's either. */
	cr_assert_eq(dp_busdir_check(cl, env.bus, "/nonexistent/hbus-x", "/nonexistent", err,
				     sizeof(err)), -EXDEV);
	hbus_close(cl);
}

Test(dp_busdir, restarted_hbusd_elsewhere_is_noticed)
{
	hbus_client *cl = connect_dp();
	char err[768] = "", moved[200];
	const char *extra[] = { "--shm-dir", moved, NULL };

	cr_assert_eq(dp_busdir_check(cl, env.bus, bus_dir, NULL, err, sizeof(err)), 0);
	/* hbusd comes back serving the bus from another directory: the next
	 * hello (the library reconnects by itself) says so. */
	cr_assert_eq(hb_stop(&env), 0);
	snprintf(moved, sizeof(moved), "%s/shm3", env.base);
	hb_start(&env, extra);
	unsigned spins = 0;
	while (hbus_client_check(cl) < 0)
		hb_backoff(&spins);
	cr_assert_eq(dp_busdir_check(cl, env.bus, bus_dir, NULL, err, sizeof(err)), -EXDEV);
	cr_assert(strstr(err, "hbusd now serves bus"), "%s", err);
	cr_assert(strstr(err, moved), "%s", err);
	hbus_close(cl);
}

Test(dp_busdir, same_compares_directories)
{
	char spelled[300];

	snprintf(spelled, sizeof(spelled), "%s/", bus_dir);
	cr_assert_eq(dp_busdir_same(bus_dir, spelled), 1);
	cr_assert_eq(dp_busdir_same(bus_dir, other), 0);
	cr_assert_eq(dp_busdir_same(bus_dir, "/nonexistent/x"), 0);
	cr_assert_eq(dp_busdir_same("/nonexistent/x", bus_dir), -ENOENT);
}
