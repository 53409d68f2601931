/*
 * topic_naive.h - a deliberately simple topic matcher: the oracle the
 * routing tests and hbus-bench route check the trie against.
 *
 * It shares nothing with shm/route_topic.c: no trie, no '#' collapsing, no
 * hashing; a textbook dynamic program over (pattern words x key words).
 * RabbitMQ semantics: '.'-separated words, the empty string has no words,
 * "*" is exactly one word, "#" zero or more.
 */
#ifndef HBUS_TOPIC_NAIVE_H
#define HBUS_TOPIC_NAIVE_H

#include <stddef.h>
#include <string.h>

#define TN_WORDS_MAX 257

struct tn_words {
	const char *w[TN_WORDS_MAX];
	size_t len[TN_WORDS_MAX];
	int n;
};

static inline void tn_split(const char *s, size_t len, struct tn_words *out)
{
	size_t i, start = 0;

	out->n = 0;
	if (len == 0)
		return;
	for (i = 0; i <= len && out->n < TN_WORDS_MAX; i++) {
		if (i < len && s[i] != '.')
			continue;
		out->w[out->n] = s + start;
		out->len[out->n++] = i - start;
		start = i + 1;
	}
}

static inline int tn_is(const char *w, size_t len, char c)
{
	return len == 1 && w[0] == c;
}

/* Does the pattern (pn words pw[], plen[]) match the key?  ok[j]: the
 * pattern words seen so far match the first j key words. */
static inline int tn_match_split(const char *const *pw, const size_t *plen, int pn,
				 const struct tn_words *k)
{
	unsigned char ok[TN_WORDS_MAX + 1], next[TN_WORDS_MAX + 1];
	int i, j;

	memset(ok, 0, (size_t)k->n + 1);
	ok[0] = 1;
	for (i = 0; i < pn; i++) {
		if (tn_is(pw[i], plen[i], '#')) {
			next[0] = ok[0];
			for (j = 1; j <= k->n; j++)
				next[j] = next[j - 1] || ok[j];
		} else {
			next[0] = 0;
			for (j = 1; j <= k->n; j++)
				next[j] = ok[j - 1] &&
					  (tn_is(pw[i], plen[i], '*') ||
					   (plen[i] == k->len[j - 1] &&
					    memcmp(pw[i], k->w[j - 1], plen[i]) == 0));
		}
		memcpy(ok, next, (size_t)k->n + 1);
	}
	return ok[k->n];
}

static inline int tn_match_words(const struct tn_words *p, const struct tn_words *k)
{
	return tn_match_split(p->w, p->len, p->n, k);
}

static inline int tn_match(const char *pat, const char *key)
{
	struct tn_words p, k;

	tn_split(pat, strlen(pat), &p);
	tn_split(key, strlen(key), &k);
	return tn_match_words(&p, &k);
}

#endif
