/* absent.c — see absent.h.  Open addressing with linear probing, keyed by
 * (directory dev, inode, name); an entry keeps the stamps it was recorded
 * under.  Emptied whole when three quarters full (no deletions, so no
 * tombstones). */
#include "absent.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct entry {
	uint64_t hash; /* 0: free */
	cache_dir_stamp dir;
	char *name;
};

struct cache_absent {
	pthread_mutex_t mu;
	struct entry *slots;
	size_t nslots; /* a power of two */
	size_t used, max;
};

int cache_absent_new(size_t cap, cache_absent **ret)
{
	cache_absent *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	size_t n = 16;
	while (n < cap + cap / 3 + 1)
		n *= 2;
	if (!(a->slots = calloc(n, sizeof(*a->slots)))) {
		free(a);
		return -ENOMEM;
	}
	a->nslots = n;
	a->max = cap;
	pthread_mutex_init(&a->mu, NULL);
	*ret = a;
	return 0;
}

static void clear_locked(cache_absent *a)
{
	for (size_t i = 0; i < a->nslots; i++)
		free(a->slots[i].name);
	memset(a->slots, 0, a->nslots * sizeof(*a->slots));
	a->used = 0;
}

void cache_absent_free(cache_absent *a)
{
	if (!a)
		return;
	clear_locked(a);
	free(a->slots);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void cache_dir_stamp_of(const struct stat *st, cache_dir_stamp *ret)
{
	*ret = (cache_dir_stamp){
		.dev = (uint64_t)st->st_dev,
		.ino = (uint64_t)st->st_ino,
		.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
		.ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec,
	};
}

static uint64_t key_hash(const cache_dir_stamp *dir, const char *name)
{
	uint64_t seed = dir->ino * 0x9e3779b97f4a7c15ull ^ dir->dev;
	uint64_t h = XXH3_64bits_withSeed(name, strlen(name), seed);
	return h ? h : 1;
}

/* The slot of (dir, name), or the free slot where it would go. */
static struct entry *find_locked(cache_absent *a, uint64_t h, const cache_dir_stamp *dir, const char *name)
{
	size_t i = (size_t)h & (a->nslots - 1);
	for (;; i = (i + 1) & (a->nslots - 1)) {
		struct entry *e = &a->slots[i];
		if (!e->hash || (e->hash == h && e->dir.dev == dir->dev && e->dir.ino == dir->ino &&
				 strcmp(e->name, name) == 0))
			return e;
	}
}

bool cache_absent_has(cache_absent *a, const cache_dir_stamp *dir, const char *name)
{
	uint64_t h = key_hash(dir, name);
	pthread_mutex_lock(&a->mu);
	struct entry *e = find_locked(a, h, dir, name);
	bool yes = e->hash && e->dir.mtime_ns == dir->mtime_ns && e->dir.ctime_ns == dir->ctime_ns;
	pthread_mutex_unlock(&a->mu);
	return yes;
}

void cache_absent_add(cache_absent *a, const cache_dir_stamp *dir, const char *name)
{
	uint64_t h = key_hash(dir, name);
	pthread_mutex_lock(&a->mu);
	struct entry *e = find_locked(a, h, dir, name);
	if (!e->hash) {
		if (a->used >= a->max) {
			clear_locked(a);
			e = find_locked(a, h, dir, name);
		}
		char *copy = strdup(name);
		if (copy) {
			*e = (struct entry){ .hash = h, .dir = *dir, .name = copy };
			a->used++;
		}
	} else {
		e->dir = *dir;
	}
	pthread_mutex_unlock(&a->mu);
}

size_t cache_absent_count(cache_absent *a)
{
	pthread_mutex_lock(&a->mu);
	size_t n = a->used;
	pthread_mutex_unlock(&a->mu);
	return n;
}
