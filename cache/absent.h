/* absent.h — names known absent from directories, while the directories
 * stay unchanged.
 *
 * A cached action's lookup checks, on every hit, that the names a compile
 * searched and did not find (a header's name in each include directory
 * before the one that has it) are still absent: a hundred or more stat
 * calls per compile.  Adding, removing or renaming a name in a directory
 * changes the directory's mtime and ctime, so "name was absent when the
 * directory had these stamps" stays true while stat of the directory shows
 * the same stamps.  The caller records a name only when the directory's
 * ctime was at least CACHE_RACY_NS older than the moment it stat'd the
 * directory, before it looked the name up (a change within the timestamp
 * granularity would leave the stamps as they were; a later one cannot).
 *
 * Bounded: when full, the set is emptied and refills.  Thread-safe.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct cache_dir_stamp {
	uint64_t dev, ino;
	int64_t mtime_ns, ctime_ns;
} cache_dir_stamp;

typedef struct cache_absent cache_absent;

/* A set of at most cap names.  0 or -ENOMEM. */
int cache_absent_new(size_t cap, cache_absent **ret);
void cache_absent_free(cache_absent *a);

/* The stamps of a directory's stat. */
void cache_dir_stamp_of(const struct stat *st, cache_dir_stamp *ret);

/* True when name (one component) was recorded absent from the directory
 * while it had the stamps it has now. */
bool cache_absent_has(cache_absent *a, const cache_dir_stamp *dir, const char *name);

/* Records name absent from the directory with these stamps (replacing what
 * was recorded under older stamps).  Silently does nothing without memory. */
void cache_absent_add(cache_absent *a, const cache_dir_stamp *dir, const char *name);

/* The number of names held (for tests and stats). */
size_t cache_absent_count(cache_absent *a);
