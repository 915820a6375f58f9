/* index.h — the store's LMDB index (index.lmdb in the store directory).
 *
 * Databases:
 *   files:   backing (st_dev, st_ino) → digest, size, mtime_ns, ctime_ns,
 *            hashed_at_ns, and the content's SHA-256 when it is known.
 *            Lets digests survive remounts.
 *   blobs:   digest → size, stored size, compression, created, last use,
 *            references (how many times the content was stored).
 *   meta:    store-wide totals and settings (one record, updated in the
 *            same transaction as the blob records it sums).
 *   actions: namespaced key/value records (cache_index_kv_*): the key is
 *            one namespace byte and the caller's bytes, the value the
 *            caller's bytes.  Namespaces in use:
 *              'A'  action key (16-byte digest) → encoded action_record
 *                   (cache/action.h);
 *              'T'  (uid, dev, ino) → the digest of a tool executable, as
 *                   a cache_file_rec.
 *
 * The blob files under objects/ are the truth and these records an index
 * of them: a blob published by a process killed before it recorded it is
 * adopted by the next reader, writer or fsck.
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
	bool has_sha256;       /* sha256 is the SHA-256 of the content rec describes */
	hasher_sha256 sha256;
} cache_file_entry;

typedef struct cache_index cache_index;

/* Opens (creating) STORE/index.lmdb. Returns 0 or -errno. */
int cache_index_open(cache_store *s, cache_index **ret);
/* The same with an explicit initial map size and the most it may grow to
 * (MDB_MAP_FULL past map_max becomes -ENOSPC).  0 = defaults. */
int cache_index_open_sized(cache_store *s, uint64_t map_size, uint64_t map_max, cache_index **ret);
cache_store *cache_index_store(const cache_index *ix);
/* Accepts NULL. */
void cache_index_close(cache_index *ix);

/* Returns 0 and *ret, -ENOENT, or -errno. */
int cache_index_file_get(cache_index *ix, uint64_t dev, uint64_t ino, cache_file_rec *ret);
/* The whole entry of (dev, ino), its SHA-256 included when recorded:
 * 0 and *ret, -ENOENT, or -errno. */
int cache_index_file_get_entry(cache_index *ix, uint64_t dev, uint64_t ino, cache_file_entry *ret);
/* Writes n entries in one transaction (one fsync); an entry's SHA-256 is
 * kept when has_sha256 and dropped from the record otherwise.  Returns 0
 * or -errno. */
int cache_index_file_put(cache_index *ix, const cache_file_entry *e, size_t n);
int cache_index_file_del(cache_index *ix, uint64_t dev, uint64_t ino);

/* True when rec describes st (size, mtime, ctime equal) and may be trusted
 * (ctime safely older than hashed_at; see CACHE_RACY_NS). */
bool cache_file_rec_valid(const cache_file_rec *rec, const struct stat *st);

/* A timestamp in nanoseconds (inline: the action cache's client uses it
 * without the index). */
static inline int64_t cache_timespec_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* ---- blobs ---------------------------------------------------------------- */

#define CACHE_DEFAULT_MAX_SIZE (5ull << 30)
/* last_use is rewritten at most this often per blob (a write transaction
 * per read would cost an fsync each). */
#define CACHE_TOUCH_NS (1000 * 1000 * 1000LL)

typedef struct cache_blob_rec {
	uint64_t size;        /* content bytes */
	uint64_t stored;      /* bytes of the blob file */
	uint8_t compression;  /* CACHE_COMP_* (blob.h) */
	int64_t created_ns;
	int64_t last_use_ns;
	uint64_t refs;        /* times stored: 1 + puts that found it already there */
} cache_blob_rec;

typedef struct cache_blob_entry {
	hasher_digest digest;
	cache_blob_rec rec;
} cache_blob_entry;

typedef struct cache_totals {
	uint64_t blobs;          /* blob records */
	uint64_t logical;        /* sum of content sizes */
	uint64_t stored;         /* sum of blob file sizes */
	uint64_t dedup_bytes;    /* content bytes not stored again (already there) */
	uint64_t dedup_hits;     /* puts that found their content already there */
	uint64_t evictions;      /* blobs removed by gc */
	uint64_t evicted_bytes;  /* their stored bytes */
	uint64_t corrupt;        /* blobs found corrupt (quarantined) */
	uint64_t max_size;       /* the store's size limit (0: default) */
} cache_totals;

enum cache_del_reason { CACHE_DEL_EVICT, CACHE_DEL_CORRUPT, CACHE_DEL_STALE };

int cache_index_blob_get(cache_index *ix, const hasher_digest *d, cache_blob_rec *ret);
/* Records a blob.  When absent, inserts rec and adds it to the totals;
 * returns 0.  When present: touches last_use and, if `put` is true (a
 * writer stored the content again), adds a reference and counts rec->size
 * as dedup savings; returns 1.  -errno on failure. */
int cache_index_blob_add(cache_index *ix, const hasher_digest *d, const cache_blob_rec *rec, bool put);
/* The same, committed later together with others (one transaction and one
 * fsync for up to 256 records): at cache_index_flush, when 256 wait, before
 * this process reads blob records or totals, and at close.  A process
 * killed before that leaves blobs without records, which are adopted when
 * next used or by fsck.  Returns 0 or the flush's -errno. */
int cache_index_blob_add_later(cache_index *ix, const hasher_digest *d, const cache_blob_rec *rec, bool put);
/* Marks a used blob (rec->last_use_ns: now), recording it from rec when it
 * has no record yet (as cache_index_blob_add with put false), committed
 * later: touches wait for cache_index_flush (a timer, close, gc), not for
 * reads, so a hit costs no fsync.  Nothing when the committed last use is
 * within CACHE_TOUCH_NS.  Returns 0 or -errno. */
int cache_index_blob_touch_later(cache_index *ix, const hasher_digest *d, const cache_blob_rec *rec);
/* Commits the deferred records and touches. */
int cache_index_flush(cache_index *ix);
/* Hands full queues of deferred records to a thread that commits them
 * (wake(arg) asks it to call cache_index_flush soon), so that the thread
 * that queued the record never waits for a commit and its fsync; only a
 * queue CACHE_DEFER_HARD long (the flusher fell behind) is committed by
 * the queuing thread.  wake NULL: full queues are committed by whoever
 * fills them (the default).  Set before and cleared after the flusher
 * runs. */
#define CACHE_DEFER_HARD 8192
void cache_index_set_flusher(cache_index *ix, void (*wake)(void *), void *arg);
/* Sets last_use to now_ns when it is older by CACHE_TOUCH_NS.  Returns 0,
 * -ENOENT (no record), -errno. */
int cache_index_blob_touch(cache_index *ix, const hasher_digest *d, int64_t now_ns);
/* Removes the record and subtracts it from the totals, counting an eviction
 * or a corrupt blob by `why`.  When expect_last_use >= 0 and the record's
 * last_use differs (it was used since the caller looked), nothing is removed
 * and -EBUSY is returned.  -ENOENT when absent. */
int cache_index_blob_del(cache_index *ix, const hasher_digest *d, int64_t expect_last_use,
			 enum cache_del_reason why);
/* Counts a corrupt blob that had no record. */
int cache_index_count_corrupt(cache_index *ix);
/* All blob records (malloc'd array, caller frees).  Returns 0 or -errno. */
int cache_index_blob_list(cache_index *ix, cache_blob_entry **ret, size_t *n);

int cache_index_totals(cache_index *ix, cache_totals *ret);
/* Replaces the sums (blobs, logical, stored) after fsck recounted them. */
int cache_index_set_sums(cache_index *ix, uint64_t blobs, uint64_t logical, uint64_t stored);
/* The store's size limit: 0 = CACHE_DEFAULT_MAX_SIZE. */
int cache_index_set_max_size(cache_index *ix, uint64_t max_size);
uint64_t cache_totals_max_size(const cache_totals *t);

/* ---- key/value records (the actions database) ----------------------------- */

/* Longest key the caller may pass (LMDB's limit, less the namespace byte). */
#define CACHE_KV_KEY_MAX 510

/* Returns 0 with a malloc'd copy of the value in *ret_val (caller frees;
 * non-NULL also for an empty value) and its length, -ENOENT, -EINVAL (klen
 * 0 or beyond CACHE_KV_KEY_MAX), or -errno. */
int cache_index_kv_get(cache_index *ix, char ns, const void *key, size_t klen, void **ret_val,
		       size_t *ret_len);
/* Sets the value (replacing any).  0, -EINVAL, -ENOSPC (index full), -errno. */
int cache_index_kv_put(cache_index *ix, char ns, const void *key, size_t klen, const void *val,
		       size_t vlen);
/* The same, committed later with the deferred records (cache_index_flush,
 * which a mount's flusher runs every 200 ms): for records a crash may lose
 * (a digest cache, the action cache).  kv_get in this process sees them at
 * once (the newest queued put or removal of the key wins); other processes
 * once they are committed.  A key written _later must not also be written
 * at once (the queued write would land after).  0 or -errno. */
int cache_index_kv_put_later(cache_index *ix, char ns, const void *key, size_t klen, const void *val,
			     size_t vlen);
int cache_index_kv_del_later(cache_index *ix, char ns, const void *key, size_t klen);
/* 0, -ENOENT (absent), -EINVAL, -errno. */
int cache_index_kv_del(cache_index *ix, char ns, const void *key, size_t klen);

enum cache_kv_verdict {
	CACHE_KV_KEEP,    /* leave the record */
	CACHE_KV_DELETE,  /* remove it */
	CACHE_KV_REPLACE, /* store *ret_val (malloc'd, ownership passes) instead */
	CACHE_KV_STOP,    /* leave it and visit no more */
};
/* Visits one record (key without the namespace byte).  Returns a verdict,
 * or -errno to stop cache_index_kv_each with that error. */
typedef int (*cache_kv_fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
			   void **ret_val, size_t *ret_len);
/* Calls fn for every record of namespace ns in key order.  Records are
 * read in batches and fn runs with no transaction open, so it may take
 * its time and call other index functions.  Verdicts are applied after
 * each batch in one write transaction, each only if the record still
 * holds the value fn saw: a record written meanwhile by someone else is
 * kept as they wrote it.  Records added during the walk may or may not be
 * visited.  When fn stops the walk (CACHE_KV_STOP or -errno), the verdicts
 * it gave before are applied.  Returns 0, fn's -errno, -ENOSPC, -errno. */
int cache_index_kv_each(cache_index *ix, char ns, cache_kv_fn fn, void *arg);
