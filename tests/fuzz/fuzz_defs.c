/*
 * fuzz_defs.c - libFuzzer target: the definitions importer and hbusd's
 * start-up restore, on arbitrary text (fuzz_hbusd.h has the in-process
 * hbusd they run in).
 *
 * Each input is used three ways:
 *  1. import (defs_parse + defs_import, as the import op does) into a bus
 *     that already holds a small topology, so conflicts are reachable.
 *     A leading '!' imports as uid 65534 (per-item permission checks).
 *     Refused: nothing changed.  Accepted: importing it again changes
 *     nothing (idempotent), and the export of the bus, imported into an
 *     empty bus, exports the very same text (round trip).
 *  2. the --definitions file of a starting hbusd (defs_restore, then the
 *     commit open_bus makes);
 *  3. the state file (topology.json) of a starting hbusd, in the bus
 *     directory the import left, so its queue files are there to adopt or
 *     set aside.
 * After each: the model is consistent (fuzz_hbusd.h).
 */
#include "fuzz_hbusd.h"

static const char base_defs[] =
	"{\"hbus_definitions\":1,"
	"\"exchanges\":[{\"name\":\"base.x\",\"type\":\"topic\",\"durable\":true},"
	"{\"name\":\"base.ad\",\"type\":\"direct\",\"auto_delete\":true},"
	"{\"name\":\"f.h\",\"type\":\"headers\",\"alternate_exchange\":\"base.x\"}],"
	"\"queues\":[{\"name\":\"base.q\",\"capacity\":8,\"slot_size\":64,\"durable\":true},"
	"{\"name\":\"f.q\",\"capacity\":4,\"slot_size\":32,\"dead_letter_exchange\":\"base.x\"}],"
	"\"bindings\":[{\"source\":\"base.x\",\"destination\":\"base.q\",\"key\":\"a.#\"},"
	"{\"source\":\"f.h\",\"destination\":\"f.q\",\"headers\":{\"k\":\"v\"},\"match\":\"any\"}],"
	"\"udpmaps\":[{\"addr\":\"239.1.1.1\",\"port\":5000,\"exchange\":\"base.x\",\"key\":\"a.u\"}]}";

static struct session nobody;

static int check_as_nobody(void *ctx, enum perm_kind k, const char *noun, const char *name,
			   struct herr *e)
{
	(void)ctx;
	return perms_check(&fz.d.perms, &nobody.peer, k, noun, name, e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	fz_session_init(&nobody, true);
	return 0;
}

static void import_text(const char *text, size_t n, const struct defs_check *chk, bool must_ok)
{
	struct herr e = { 0 };
	json_t *defs = defs_parse(text, n, "fuzz", &e);
	int rc;

	CHECK(defs || !must_ok);
	if (!defs)
		return;
	rc = json_is_object(defs) ? defs_import(&fz.d.model, defs, 1, chk, &e) : -1;
	if (must_ok && rc) {
		fprintf(stderr, "import refused: %s\n%.*s\n", e.msg, (int)n, text);
		abort();
	}
	json_decref(defs);
}

/* Import the input; on success check idempotence and the round trip. */
static void fuzz_import(const char *text, size_t n, const struct defs_check *chk)
{
	struct herr e = { 0 };
	char *before, *after, *exp1, *exp2;
	json_t *defs;
	int rc;

	fz_model_begin(true);
	import_text(base_defs, sizeof(base_defs) - 1, NULL, true);
	before = fz_state_text();
	defs = defs_parse(text, n, "fuzz", &e);
	rc = defs && json_is_object(defs) ? defs_import(&fz.d.model, defs, 1, chk, &e) : -1;
	json_decref(defs);
	fz_check_model(true);
	after = fz_state_text();
	if (rc) {
		CHECK(e.code >= 400 && e.msg[0]);
		if (strcmp(before, after)) {
			fprintf(stderr, "refused import changed the bus: %s\n--- before\n%s\n"
				"--- after\n%s\n", e.msg, before, after);
			abort();
		}
	} else {
		free(before);
		before = after;
		import_text(text, n, chk, true);
		after = fz_state_text();
		if (strcmp(before, after)) {
			fprintf(stderr, "importing twice is not importing once:\n--- once\n%s\n"
				"--- twice\n%s\n", before, after);
			abort();
		}
	}
	free(before);
	free(after);
	if (rc) {
		fz_model_end();
		return;
	}
	exp1 = defs_render_text(&fz.d.model, DEFS_EXPORT);
	CHECK(exp1);
	fz_model_end();
	fz_clean();
	fz_model_begin(false);
	import_text(exp1, strlen(exp1), NULL, true);
	exp2 = defs_render_text(&fz.d.model, DEFS_EXPORT);
	CHECK(exp2);
	if (strcmp(exp1, exp2)) {
		fprintf(stderr, "export -> import -> export differs:\n%s\n---\n%s\n", exp1, exp2);
		abort();
	}
	free(exp1);
	free(exp2);
	fz_model_end();
}

/* A starting hbusd: defs_restore, then the commit open_bus makes. */
static void fuzz_restore(const char *defs_path)
{
	struct herr e = { 0 };

	fz_model_begin(defs_path != NULL);
	fz.d.model.defs_path = defs_path;
	if (defs_restore(&fz.d.model, defs_path, &e) == 0) {
		fz_check_model(false);
		if (model_commit(&fz.d.model, &e))
			CHECK(e.code >= 400 && e.msg[0]);
	} else {
		CHECK(e.code >= 400 && e.msg[0]);
	}
	fz_check_model(false);
	fz_model_end();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct defs_check chk = { .fn = check_as_nobody };
	const char *text = (const char *)data;
	char path[300];
	bool as_nobody = size && text[0] == '!';

	if (as_nobody) {
		text++;
		size--;
	}
	fz_clean();
	fuzz_import(text, size, as_nobody ? &chk : NULL);

	fz_clean();
	fz_write(fz.defs_path, text, size);
	fuzz_restore(fz.defs_path);

	/* The state file, among the queue files that restore left. */
	snprintf(path, sizeof(path), "%s/topology.json", fz.bus_dir);
	fz_write(path, text, size);
	fuzz_restore(NULL);
	fz_clean();
	return 0;
}
