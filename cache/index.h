/* index.h — the store's LMDB index (index.lmdb in the store directory).
 *
 * Databases:
 *   files: backing (st_dev, st_ino) → digest, size, mtime_ns, ctime_ns,
 *          hashed_at_ns.  Lets digests survive remounts.
 *
 * Several processes and threads may use one index at once (LMDB is
 * multi-process; the env is opened with MDB_NOTLS for thread pools).
 * Errors are -errno; LMDB codes are translated here (MDB_MAP_FULL → -ENOSPC,
 * MDB_NOTFOUND → -ENOENT, corruption → -EIO).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "hasher.h"
#include "store.h"

/* A stored digest is trusted only when the file's ctime was at least this
 * much older than the moment the digest was known to match the file:
 * a change within the timestamp granularity leaves stat unchanged. */
#define CACHE_RACY_NS (50 * 1000 * 1000LL)

typedef struct cache_file_rec {
	hasher_digest digest;
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	int64_t hashed_at_ns;
} cache_file_rec;

typedef struct cache_file_entry {
	uint64_t dev, ino;
	cache_file_rec rec;
} cache_file_entry;

typedef struct cache_index cache_index;

/* Opens (creating) STORE/index.lmdb. Returns 0 or -errno. */
int cache_index_open(cache_store *s, cache_index **ret);
/* Accepts NULL. */
void cache_index_close(cache_index *ix);

/* Returns 0 and *ret, -ENOENT, or -errno. */
int cache_index_file_get(cache_index *ix, uint64_t dev, uint64_t ino, cache_file_rec *ret);
/* Writes n entries in one transaction (one fsync). Returns 0 or -errno. */
int cache_index_file_put(cache_index *ix, const cache_file_entry *e, size_t n);
int cache_index_file_del(cache_index *ix, uint64_t dev, uint64_t ino);

/* True when rec describes st (size, mtime, ctime equal) and may be trusted
 * (ctime safely older than hashed_at; see CACHE_RACY_NS). */
bool cache_file_rec_valid(const cache_file_rec *rec, const struct stat *st);

int64_t cache_timespec_ns(const struct timespec *ts);
