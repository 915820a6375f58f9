#include "sample/json.h"

void json_string(struct strbuf *out, const char *s)
{
	sb_putc(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"': sb_puts(out, "\\\""); break;
		case '\\': sb_puts(out, "\\\\"); break;
		case '\n': sb_puts(out, "\\n"); break;
		case '\t': sb_puts(out, "\\t"); break;
		default:
			if (c < 0x20)
				sb_printf(out, "\\u%04x", c);
			else
				sb_putc(out, (char)c);
		}
	}
	sb_putc(out, '"');
}

void json_kv_long(struct strbuf *out, const char *key, long v, int first)
{
	if (!first)
		sb_putc(out, ',');
	json_string(out, key);
	sb_printf(out, ":%ld", v);
}
