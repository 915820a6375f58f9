#ifndef SAMPLE_PARSE_H
#define SAMPLE_PARSE_H
#include "sample/vec.h"

/* Parse a comma/space separated list of integers into iv; returns the
 * number parsed or -1 on a syntax error. */
int parse_int_list(const char *s, struct ivec *iv);
#endif
