#ifndef SAMPLE_BASE64_H
#define SAMPLE_BASE64_H
#include "sample/strbuf.h"

void base64_encode(struct strbuf *out, const void *data, size_t n);
/* returns -1 on malformed input */
int base64_decode(struct strbuf *out, const char *s);
#endif
