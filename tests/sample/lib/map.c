#define _POSIX_C_SOURCE 200809L
#include "sample/map.h"
#include "sample/hash.h"
#include <stdlib.h>
#include <string.h>

void map_init(struct map *m)
{
	m->slots = NULL;
	m->cap = m->count = 0;
}

void map_free(struct map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	map_init(m);
}

static struct map_slot *find(const struct map *m, const char *key)
{
	size_t mask = m->cap - 1;
	size_t i = (size_t)fnv1a64_str(key) & mask;
	while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & mask;
	return &m->slots[i];
}

static void rehash(struct map *m)
{
	struct map old = *m;
	m->cap = old.cap ? old.cap * 2 : 16;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots)
		abort();
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++) {
		if (old.slots[i].key) {
			struct map_slot *s = find(m, old.slots[i].key);
			*s = old.slots[i];
			m->count++;
		}
	}
	free(old.slots);
}

void map_put(struct map *m, const char *key, long value)
{
	if ((m->count + 1) * 4 > m->cap * 3)
		rehash(m);
	struct map_slot *s = find(m, key);
	if (!s->key) {
		s->key = strdup(key);
		m->count++;
	}
	s->value = value;
}

int map_get(const struct map *m, const char *key, long *value)
{
	if (!m->cap)
		return 0;
	struct map_slot *s = find(m, key);
	if (!s->key)
		return 0;
	*value = s->value;
	return 1;
}
