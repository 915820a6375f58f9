#ifndef SAMPLE_JSON_H
#define SAMPLE_JSON_H
#include "sample/strbuf.h"

void json_string(struct strbuf *out, const char *s);
void json_kv_long(struct strbuf *out, const char *key, long v, int first);
#endif
