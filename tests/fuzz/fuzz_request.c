/*
 * fuzz_request.c - libFuzzer target: control requests, answered by the code
 * path hbusd answers a message on its socket with (dispatch_text: parse,
 * field checks, permissions, the model, the commit that compiles the
 * routing table and writes the definitions and state files), without the
 * socket (fuzz_hbusd.h).
 *
 * Input: one session's conversation.  The bytes up to the first newline are
 * one request (one socket message), the next line the next request, and so
 * on: with no newline the whole input is one request.  A leading '!' makes
 * the peer uid 65534 with the permissions of fuzz_hbusd.h instead of root,
 * so the permission checks run.  Each input starts from an empty bus; the
 * session closes at the end (consumers cancelled, exclusive queues deleted,
 * as when a client dies).
 *
 * Properties (fuzz_hbusd.h): every reply well-formed, a refused request
 * changes nothing, the model stays consistent - also after the close.
 */
#include "fuzz_hbusd.h"

#define MAX_REQUESTS 16

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

static void one_request(struct session *s, const char *buf, size_t n)
{
	char *before = fz_state_text(), *after;
	bool changed = false;
	json_t *reply;
	int fds[2] = { -1, -1 };

	reply = dispatch_text(&fz.d, s, buf, n, fds, &changed);
	CHECK(reply);
	fz_check_reply(reply);
	if (!json_is_true(json_object_get(reply, "ok"))) {
		CHECK(fds[0] == -1 && fds[1] == -1 && !changed);
		after = fz_state_text();
		if (strcmp(before, after)) {
			fprintf(stderr, "refused request changed the bus:\n%s\n--- before\n%s\n"
				"--- after\n%s\n", json_string_value(json_object_get(reply, "error")),
				before, after);
			abort();
		}
		free(after);
	}
	/* A descriptor goes only with hello (routes), open_queue, consume;
	 * a second one only with a protected queue (its data file). */
	if (fds[0] >= 0) {
		struct mx_queue *q = model_queue_by_qid(&fz.d.model,
			(uint32_t)json_integer_value(json_object_get(reply, "qid")));

		CHECK(fds[0] == fz.d.routes_fd || (q && fds[0] == q->fd));
		CHECK(fds[1] < 0 || (q && (fds[1] == q->data_fd || fds[1] == q->data_ro_fd) &&
				     (q->cfg.flags & HBUS_QUEUE_F_PROTECTED)));
	}
	json_decref(reply);
	free(before);
	fz_check_model(true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	struct session s;
	bool nobody = size && p[0] == '!';
	unsigned n = 0;

	if (nobody)
		p++;
	fz_clean();
	fz_model_begin(true);
	fz_session_init(&s, nobody);
	do {
		nl = memchr(p, '\n', (size_t)(end - p));
		one_request(&s, p, (size_t)((nl ? nl : end) - p));
		p = nl ? nl + 1 : end;
	} while (nl && ++n < MAX_REQUESTS);
	fz_session_close(&s);
	fz_check_model(true);
	fz_model_end();
	return 0;
}
