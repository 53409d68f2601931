/*
 * perms_amqp.c - AMQP users in the permissions file: password hashes as
 * RabbitMQ stores them, and the same configure/write/read patterns as the
 * Unix users (see perms.h).  hbusd checks the password itself, so a
 * gateway never learns more than "this user may log in".
 */
#include "perms.h"
#include "args.h"
#include "log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SALT_LEN   4u  /* rabbit_password_hashing_sha256: 4 random bytes */
#define DIGEST_LEN 32u
#define DEFAULT_MAX_CONNS 256u

static const char *const kind_names[] = { "configure", "write", "read" };

/* Base64 of salt + digest; EVP_DecodeBlock counts '=' padding as zero
 * bytes, so the real length comes from the padding. */
static int decode_hash(const char *b64, uint8_t *out, unsigned *len)
{
	size_t n = strlen(b64);
	uint8_t buf[3 * 128 / 4 + 3];
	int got;

	if (n == 0 || n % 4 || n > 128)
		return -1;
	got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
	if (got < 0)
		return -1;
	got -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
	if (got != (int)(SALT_LEN + DIGEST_LEN))
		return -1;
	memcpy(out, buf, (size_t)got);
	*len = (unsigned)got;
	return 0;
}

int perms_amqp_load(json_t *obj, struct vec *out, const char *path, struct herr *e)
{
	static const char *const fields[] = { "password_hash", "hashing_algorithm", "configure",
					      "write", "read", "max_connections", NULL };
	const char *name, *hash, *algo;
	json_t *v;
	char ctx[320];
	int64_t maxc;

	if (!obj)
		return 0;
	if (!json_is_object(obj))
		return herr_set(e, AMQP_COMMAND_INVALID, "%s: 'amqp_users' must be an object", path);
	json_object_foreach(obj, name, v) {
		struct perm_entry *en;

		snprintf(ctx, sizeof(ctx), "%s: AMQP user '%.255s'", path, name);
		if (!json_is_object(v))
			return herr_set(e, AMQP_COMMAND_INVALID, "%s must be an object", ctx);
		if (strlen(name) > 255)
			return herr_set(e, AMQP_PRECONDITION, "%s: name over 255 bytes", ctx);
		if (args_check_fields(v, fields, ctx, e) ||
		    arg_str(v, "password_hash", &hash, NULL, ctx, e) ||
		    arg_str(v, "hashing_algorithm", &algo, "rabbit_password_hashing_sha256", ctx, e) ||
		    arg_int(v, "max_connections", &maxc, DEFAULT_MAX_CONNS, false, 0, 1 << 20, ctx, e))
			return -1;
		if (strcmp(algo, "rabbit_password_hashing_sha256"))
			return herr_set(e, AMQP_COMMAND_INVALID, "%s: hashing_algorithm '%s' is not "
					"supported (only rabbit_password_hashing_sha256)", ctx, algo);
		en = perm_entry_new(name);
		if (!en || vec_push(out, en)) {
			if (en)
				perm_entry_free(en);
			return herr_set(e, AMQP_INTERNAL_ERROR, "out of memory");
		}
		en->max_conns = (unsigned)maxc;
		if (decode_hash(hash, en->hash, &en->hash_len))
			return herr_set(e, AMQP_COMMAND_INVALID, "%s: password_hash is not base64 of a "
					"4-byte salt and a SHA-256 digest (make one with hbus-amqp "
					"--hash-password or rabbitmqctl hash_password)", ctx);
		if (perm_entry_patterns(en, v, ctx, e))
			return -1;
	}
	return 0;
}

static const struct perm_entry *find(const struct perms *p, const char *user)
{
	unsigned i;

	for (i = 0; i < p->amqp_users.n; i++) {
		const struct perm_entry *en = p->amqp_users.v[i];
		if (!strcmp(en->name, user))
			return en;
	}
	return NULL;
}

int perms_amqp_login(const struct perms *p, const char *user, const char *password,
		     size_t password_len, unsigned *max_conns, struct herr *e)
{
	static const uint8_t nobody[SALT_LEN + DIGEST_LEN];
	const struct perm_entry *en = find(p, user);
	const uint8_t *want = en ? en->hash : nobody;
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	/* An unknown user costs the same digest as a known one. */
	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(md, want, SALT_LEN) &&
	     EVP_DigestUpdate(md, password, password_len) &&
	     EVP_DigestFinal_ex(md, digest, &dlen) && dlen == DIGEST_LEN;
	EVP_MD_CTX_free(md);
	if (!ok)
		return herr_set(e, AMQP_INTERNAL_ERROR, "SHA-256 is not available");
	if (!en || CRYPTO_memcmp(digest, want + SALT_LEN, DIGEST_LEN) != 0)
		return herr_set(e, AMQP_ACCESS_REFUSED, "ACCESS_REFUSED - Login was refused using "
				"authentication mechanism PLAIN for user '%.255s'", user);
	if (max_conns)
		*max_conns = en->max_conns;
	return 0;
}

int perms_check_amqp(const struct perms *p, const char *user, enum perm_kind k,
		     const char *noun, const char *name, struct herr *e)
{
	const char *checked = name[0] ? name : "amq.default";
	const struct perm_entry *en = find(p, user);

	if (en && perm_entry_grants(en, k, checked))
		return 0;
	return herr_set(e, AMQP_ACCESS_REFUSED,
			"access refused: AMQP user '%s' has no %s permission on %s '%s'", user,
			kind_names[k], noun, checked);
}
