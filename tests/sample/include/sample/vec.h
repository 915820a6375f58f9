#ifndef SAMPLE_VEC_H
#define SAMPLE_VEC_H
#include <stddef.h>

struct ivec {
	long *v;
	size_t n;
	size_t cap;
};

void iv_init(struct ivec *iv);
void iv_free(struct ivec *iv);
void iv_push(struct ivec *iv, long x);
long iv_pop(struct ivec *iv);
long iv_sum(const struct ivec *iv);
void iv_reverse(struct ivec *iv);
#endif
