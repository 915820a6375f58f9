#include "sample/vec.h"
#include <stdlib.h>

void iv_init(struct ivec *iv)
{
	iv->v = NULL;
	iv->n = iv->cap = 0;
}

void iv_free(struct ivec *iv)
{
	free(iv->v);
	iv_init(iv);
}

void iv_push(struct ivec *iv, long x)
{
	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 8;
		long *p = realloc(iv->v, cap * sizeof(*p));
		if (!p)
			abort();
		iv->v = p;
		iv->cap = cap;
	}
	iv->v[iv->n++] = x;
}

long iv_pop(struct ivec *iv)
{
	return iv->n ? iv->v[--iv->n] : 0;
}

long iv_sum(const struct ivec *iv)
{
	long s = 0;
	for (size_t i = 0; i < iv->n; i++)
		s += iv->v[i];
	return s;
}

void iv_reverse(struct ivec *iv)
{
	for (size_t i = 0, j = iv->n; i + 1 < j; i++, j--) {
		long t = iv->v[i];
		iv->v[i] = iv->v[j - 1];
		iv->v[j - 1] = t;
	}
}
