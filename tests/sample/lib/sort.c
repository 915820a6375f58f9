#include "sample/sort.h"
#include <stdlib.h>
#include <string.h>

static void msort(char *a, char *tmp, size_t n, size_t size,
		  int (*cmp)(const void *, const void *))
{
	if (n < 2)
		return;
	size_t h = n / 2;
	msort(a, tmp, h, size, cmp);
	msort(a + h * size, tmp, n - h, size, cmp);
	size_t i = 0, j = h, k = 0;
	while (i < h && j < n) {
		if (cmp(a + j * size, a + i * size) < 0)
			memcpy(tmp + k++ * size, a + j++ * size, size);
		else
			memcpy(tmp + k++ * size, a + i++ * size, size);
	}
	while (i < h)
		memcpy(tmp + k++ * size, a + i++ * size, size);
	while (j < n)
		memcpy(tmp + k++ * size, a + j++ * size, size);
	memcpy(a, tmp, n * size);
}

void merge_sort(void *base, size_t n, size_t size,
		int (*cmp)(const void *, const void *))
{
	char *tmp = malloc(n * size + 1);
	if (!tmp)
		abort();
	msort(base, tmp, n, size, cmp);
	free(tmp);
}
