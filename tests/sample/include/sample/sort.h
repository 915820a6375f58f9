#ifndef SAMPLE_SORT_H
#define SAMPLE_SORT_H
#include <stddef.h>

/* Stable merge sort. */
void merge_sort(void *base, size_t n, size_t size,
		int (*cmp)(const void *, const void *));
#endif
