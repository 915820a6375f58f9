#ifndef SAMPLE_MAP_H
#define SAMPLE_MAP_H
#include <stddef.h>

/* Open-addressing string -> long map. */
struct map_slot {
	char *key;
	long value;
};

struct map {
	struct map_slot *slots;
	size_t cap;
	size_t count;
};

void map_init(struct map *m);
void map_free(struct map *m);
void map_put(struct map *m, const char *key, long value);
int map_get(const struct map *m, const char *key, long *value);
#endif
