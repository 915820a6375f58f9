/* content.c — content-aware digests.  The exact rules are in docs/DIGESTS.md;
 * keep the two in step (a change of rules needs a new domain prefix). */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "hasher.h"

#define C_DOMAIN "casfs-c-source-v1"
#define AR_DOMAIN "casfs-ar-v1"

/* An output buffer that feeds the stream in chunks. */
struct out {
	hasher_stream *s;
	char buf[4096];
	size_t n;
	char last; /* last byte emitted, '\n' at start */
	bool pending_space;
};

static void out_flush(struct out *o)
{
	hasher_stream_update(o->s, o->buf, o->n);
	o->n = 0;
}

static void out_byte(struct out *o, char c)
{
	if (o->n == sizeof(o->buf))
		out_flush(o);
	o->buf[o->n++] = c;
	o->last = c;
}

/* Characters next to which a space never separates two tokens. */
static bool space_insensitive(char c)
{
	return c == '\n' || c == '(' || c == ')' || c == '{' || c == '}' || c == '[' || c == ']' ||
	       c == ';' || c == ',';
}

/* Emits c, first emitting a single space for a pending whitespace run when
 * it could matter (not at line start, not next to punctuation that never
 * glues to a neighbour). */
static void out_token_byte(struct out *o, char c)
{
	if (o->pending_space && !space_insensitive(o->last) && !space_insensitive(c))
		out_byte(o, ' ');
	o->pending_space = false;
	out_byte(o, c);
}

static void out_newline(struct out *o)
{
	o->pending_space = false; /* trailing whitespace is dropped */
	out_byte(o, '\n');
}

static bool ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c >= 0x80;
}

void hasher_c_source_digest(const void *data, size_t len, hasher_digest *ret)
{
	const char *p = data, *end = p + len;
	struct out o = { .s = hasher_stream_new(), .last = '\n' };
	bool line_start = true, in_number = false;

	if (!o.s) { /* allocation failure: fall back to the plain digest */
		hasher_digest_buffer(data, len, ret);
		return;
	}
	hasher_stream_update(o.s, C_DOMAIN, sizeof(C_DOMAIN));
	while (p < end) {
		char c = *p;
		/* preprocessor line: copied verbatim up to an unescaped newline */
		if (line_start && c == '#') {
			o.pending_space = false;
			while (p < end && *p != '\n') {
				if (*p == '\\' && p + 1 < end && p[1] == '\n') {
					out_byte(&o, *p++);
				}
				out_byte(&o, *p++);
			}
			continue;
		}
		if (c == '\n') {
			out_newline(&o);
			line_start = true;
			in_number = false;
			p++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r') {
			if (!line_start)
				o.pending_space = true;
			in_number = false;
			p++;
			continue;
		}
		line_start = false;
		/* comments: whitespace, but their newlines are kept */
		if (c == '/' && p + 1 < end && p[1] == '/') {
			p += 2;
			while (p < end && *p != '\n') {
				if (*p == '\\' && p + 1 < end && p[1] == '\n') {
					/* a continued // comment swallows the next line */
					out_newline(&o);
					p += 2;
					continue;
				}
				p++;
			}
			o.pending_space = true;
			in_number = false;
			continue;
		}
		if (c == '/' && p + 1 < end && p[1] == '*') {
			p += 2;
			while (p < end && !(*p == '*' && p + 1 < end && p[1] == '/')) {
				if (*p == '\n')
					out_newline(&o);
				p++;
			}
			p = p < end ? p + 2 : end;
			o.pending_space = true;
			in_number = false;
			continue;
		}
		/* raw string: [u8|u|U|L]R"delim( ... )delim" */
		if (c == '"' && p > (const char *)data && p[-1] == 'R' &&
		    (p - 1 == (const char *)data || !ident_char((unsigned char)p[-2]) ||
		     strchr("8uUL", p[-2]))) {
			const char *d = p + 1;
			while (d < end && *d != '(' && d - p <= 17)
				d++;
			if (d < end && *d == '(') {
				char close[20];
				size_t dl = (size_t)(d - p - 1);
				close[0] = ')';
				memcpy(close + 1, p + 1, dl);
				close[dl + 1] = '"';
				const char *q = d + 1;
				while (q + dl + 2 <= end && memcmp(q, close, dl + 2) != 0)
					q++;
				q = q + dl + 2 <= end ? q + dl + 2 : end;
				out_token_byte(&o, *p++);
				while (p < q)
					out_byte(&o, *p++);
				in_number = false;
				continue;
			}
		}
		/* digit separators (1'000) are part of a number, not a char literal */
		if (c == '\'' && in_number) {
			out_token_byte(&o, *p++);
			continue;
		}
		if (c == '"' || c == '\'') {
			char q = c;
			out_token_byte(&o, *p++);
			while (p < end && *p != q && *p != '\n') {
				if (*p == '\\' && p + 1 < end)
					out_byte(&o, *p++);
				out_byte(&o, *p++);
			}
			if (p < end && *p == q)
				out_byte(&o, *p++);
			in_number = false;
			continue;
		}
		/* line continuation outside literals: significant, kept */
		if (c == '\\' && p + 1 < end && p[1] == '\n') {
			out_token_byte(&o, '\\');
			out_byte(&o, '\n');
			p += 2;
			continue;
		}
		if (!in_number && isdigit((unsigned char)c) && !ident_char((unsigned char)o.last))
			in_number = true;
		else if (in_number && !ident_char((unsigned char)c) && c != '.')
			in_number = false;
		out_token_byte(&o, *p++);
	}
	out_flush(&o);
	hasher_stream_final(o.s, ret);
	hasher_stream_free(o.s);
}

/* ar: "!<arch>\n" then members: a 60-byte header
 *   name[16] mtime[12] uid[6] gid[6] mode[8] size[10] "`\n"
 * and size bytes of data padded to an even length with '\n'. */
int hasher_ar_digest(const void *data, size_t len, hasher_digest *ret)
{
	const unsigned char *p = data;
	size_t off = 8;
	if (len < 8 || memcmp(p, "!<arch>\n", 8) != 0)
		return -EINVAL;
	hasher_stream *s = hasher_stream_new();
	if (!s)
		return -ENOMEM;
	hasher_stream_update(s, AR_DOMAIN, sizeof(AR_DOMAIN));
	while (off < len) {
		if (len - off < 60 || memcmp(p + off + 58, "`\n", 2) != 0) {
			hasher_stream_free(s);
			return -EINVAL;
		}
		const unsigned char *h = p + off;
		size_t size = 0;
		for (int i = 48; i < 58 && h[i] != ' '; i++) {
			if (!isdigit(h[i])) {
				hasher_stream_free(s);
				return -EINVAL;
			}
			size = size * 10 + (size_t)(h[i] - '0');
		}
		if (size > len - off - 60) {
			hasher_stream_free(s);
			return -EINVAL;
		}
		hasher_stream_update(s, h, 16);      /* name */
		hasher_stream_update(s, h + 48, 10); /* size */
		hasher_stream_update(s, h + 60, size);
		off += 60 + size + (size & 1);
	}
	hasher_stream_final(s, ret);
	hasher_stream_free(s);
	return 0;
}
