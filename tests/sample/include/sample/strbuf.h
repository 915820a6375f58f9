#ifndef SAMPLE_STRBUF_H
#define SAMPLE_STRBUF_H
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
};

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_putc(struct strbuf *sb, char c);
void sb_puts(struct strbuf *sb, const char *s);
void sb_append(struct strbuf *sb, const void *data, size_t n);
void sb_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sb_reset(struct strbuf *sb);
const char *sb_str(struct strbuf *sb);
#endif
