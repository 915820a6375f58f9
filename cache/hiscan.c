/* hiscan.c — the __has_include queries of a C or C++ file (hiscan.h). */
#include "hiscan.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static const char tok[] = "__has_include";

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* buf with its line splices removed and each comment replaced by a space
 * (string and character literals kept), as the preprocessor sees it before
 * it takes tokens: __has_include/ * c * /(<x.h>) is a query.  In place;
 * the new length. */
static size_t clean(char *buf, size_t len)
{
	size_t o = 0;
	char quote = 0;
	for (size_t i = 0; i < len;) {
		if (buf[i] == '\\' && i + 1 < len && buf[i + 1] == '\n') {
			i += 2;
			continue;
		}
		if (buf[i] == '\\' && i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			i += 3;
			continue;
		}
		if (quote) {
			if (buf[i] == '\\' && i + 1 < len) {
				buf[o++] = buf[i++];
			} else if (buf[i] == quote || buf[i] == '\n') {
				quote = 0;
			}
			buf[o++] = buf[i++];
			continue;
		}
		if (buf[i] == '"' || buf[i] == '\'') {
			quote = buf[i];
			buf[o++] = buf[i++];
			continue;
		}
		if (buf[i] == '/' && i + 1 < len && buf[i + 1] == '*') {
			size_t j = i + 2;
			while (j + 1 < len && !(buf[j] == '*' && buf[j + 1] == '/'))
				j++;
			i = j + 2 <= len ? j + 2 : len;
			buf[o++] = ' ';
			continue;
		}
		if (buf[i] == '/' && i + 1 < len && buf[i + 1] == '/') {
			while (i < len && buf[i] != '\n')
				i++;
			continue;
		}
		buf[o++] = buf[i++];
	}
	return o;
}

/* True when the text from line to at (the name __has_include not followed
 * by '(') only asks whether it is defined: #ifdef, #ifndef, #elifdef,
 * #elifndef, defined, defined(. */
static bool defined_only(const char *line, const char *at)
{
	const char *e = at;
	while (e > line && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e > line && e[-1] == '(') {
		e--;
		while (e > line && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
	}
	static const char *const words[] = { "defined", "ifdef", "ifndef", "elifdef", "elifndef" };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t l = strlen(words[i]);
		if ((size_t)(e - line) >= l && !memcmp(e - l, words[i], l) && (e - l == line || !ident_char(e[-l - 1])))
			return true;
	}
	return false;
}

/* A splice leading to another splice may join identifier characters too;
 * comments become spaces, which join nothing. */
bool hiscan_maybe(const char *buf, size_t len)
{
	if (memmem(buf, len, tok, sizeof(tok) - 1))
		return true;
	const char *end = buf + len;
	for (const char *b = memchr(buf, '\\', len); b; b = memchr(b + 1, '\\', (size_t)(end - b - 1))) {
		const char *nl = NULL;
		if (b + 1 < end && b[1] == '\n')
			nl = b + 1;
		else if (b + 2 < end && b[1] == '\r' && b[2] == '\n')
			nl = b + 2;
		char after = nl && nl + 1 < end ? nl[1] : ' ';
		if (nl && b > buf && ident_char(b[-1]) && (ident_char(after) || after == '\\'))
			return true;
	}
	return false;
}

int hiscan(char *text, size_t len, hiscan_fn fn, void *arg)
{
	if (!hiscan_maybe(text, len))
		return 0;
	len = clean(text, len);
	const char *buf = text, *p = buf, *end = buf + len;
	while ((p = memmem(p, (size_t)(end - p), tok, sizeof(tok) - 1))) {
		const char *q = p + sizeof(tok) - 1, *at = p;
		bool starts = p == buf || !ident_char(p[-1]);
		p = q;
		if (!starts)
			continue;
		if (end - q >= 5 && !memcmp(q, "_next", 5))
			q += 5;
		if (q < end && ident_char(*q))
			continue; /* a longer name */
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		if (q >= end || *q != '(') {
			/* #ifdef __has_include, defined(__has_include); anything
			 * else (#define HI __has_include) queries unseen */
			const char *line = at;
			while (line > buf && line[-1] != '\n')
				line--;
			if (!defined_only(line, at))
				return -ENOLINK;
			continue;
		}
		for (q++; q < end && (*q == ' ' || *q == '\t');)
			q++;
		char close = q < end && *q == '<' ? '>' : q < end && *q == '"' ? '"' : 0;
		if (!close)
			return -ENOLINK;
		const char *n = ++q;
		while (q < end && *q != close && *q != '\n')
			q++;
		if (q >= end || *q != close || q == n)
			return -ENOLINK;
		int r = fn(arg, close == '"', n, (size_t)(q - n));
		if (r < 0)
			return r;
	}
	return 0;
}
