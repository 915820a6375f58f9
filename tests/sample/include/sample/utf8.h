#ifndef SAMPLE_UTF8_H
#define SAMPLE_UTF8_H
#include <stddef.h>
#include <stdint.h>

/* Number of code points, or -1 if s is not valid UTF-8. */
long utf8_length(const char *s);
/* Encode a code point; returns bytes written (0 if invalid). */
size_t utf8_encode(uint32_t cp, char out[4]);
#endif
