#ifndef SAMPLE_HASH_H
#define SAMPLE_HASH_H
#include <stddef.h>
#include <stdint.h>

uint64_t fnv1a64(const void *data, size_t n);
uint64_t fnv1a64_str(const char *s);
#endif
