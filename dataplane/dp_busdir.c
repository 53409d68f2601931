/* dp_busdir.c - see dp_busdir.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "client_internal.h"
#include "dp_busdir.h"
#include "shm_file.h"

int dp_busdir_same(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) != 0)
		return -errno;
	if (stat(b, &sb) != 0)
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int dp_busdir_from_session(hbus_client *cl, const char *bus, char *out, size_t cap)
{
	int rc = client_bus_dir(cl, out, cap);

	if (rc != -ENOENT)
		return rc;
	rc = hbus_shm_bus_dir(NULL, bus, out, cap, NULL);
	return rc ? rc : 1;
}

int dp_busdir_check(hbus_client *cl, const char *bus, const char *ours, const char *shm_dir,
		    char *err, size_t cap)
{
	char theirs[256];
	int rc = client_bus_dir(cl, theirs, sizeof(theirs));

	if (rc == -ENOENT)
		return 0;
	if (rc) {
		snprintf(err, cap, "hbusd's bus directory for bus '%s': %s", bus, strerror(-rc));
		return -EXDEV;
	}
	/* Compared as the directories they are: "/dev/shm/x" and
	 * "/dev/shm//x" are one, and a path hbusd sees in another mount
	 * namespace is not ours even when the strings agree. */
	rc = dp_busdir_same(theirs, ours);
	if (rc == 1)
		return 0;
	if (rc < 0)
		snprintf(err, cap, "cannot look at %s, where hbusd serves bus '%s' from: %s", theirs,
			 bus, strerror(-rc));
	else if (shm_dir)
		snprintf(err, cap, "hbusd serves bus '%s' from %s, but --shm-dir %s puts this "
			 "dataplane's counters in %s, where `hbus stat` does not look: give "
			 "hbus-dataplane hbusd's --shm-dir, or none (it then asks hbusd)",
			 bus, theirs, shm_dir, ours);
	else
		snprintf(err, cap, "hbusd now serves bus '%s' from %s, but this dataplane keeps its "
			 "counters in %s, where the hbusd it started with served it: restart "
			 "hbus-dataplane", bus, theirs, ours);
	return -EXDEV;
}
