#include "sample/base64.h"
#include <string.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(struct strbuf *out, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		sb_putc(out, alphabet[v >> 18 & 63]);
		sb_putc(out, alphabet[v >> 12 & 63]);
		sb_putc(out, alphabet[v >> 6 & 63]);
		sb_putc(out, alphabet[v & 63]);
	}
	if (i < n) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		sb_putc(out, alphabet[v >> 18 & 63]);
		sb_putc(out, alphabet[v >> 12 & 63]);
		sb_putc(out, i + 1 < n ? alphabet[v >> 6 & 63] : '=');
		sb_putc(out, '=');
	}
}

static int val(char c)
{
	const char *p = c ? strchr(alphabet, c) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

int base64_decode(struct strbuf *out, const char *s)
{
	size_t n = strlen(s);
	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int a = val(s[i]), b = val(s[i + 1]);
		int c = s[i + 2] == '=' ? 0 : val(s[i + 2]);
		int d = s[i + 3] == '=' ? 0 : val(s[i + 3]);
		if (a < 0 || b < 0 || c < 0 || d < 0)
			return -1;
		unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
		sb_putc(out, (char)(v >> 16));
		if (s[i + 2] != '=')
			sb_putc(out, (char)(v >> 8 & 0xff));
		if (s[i + 3] != '=')
			sb_putc(out, (char)(v & 0xff));
	}
	return 0;
}
