/* gc.h — keeping a store bounded (LRU eviction) and sound (fsck).
 *
 * gc: when the blobs' stored bytes exceed the limit, blobs are removed in
 * order of last use, oldest first, until the store is at 90% of the limit
 * (so a store at its limit is not collected on every write).  A blob that a
 * reader holds (shared flock) or that was used since gc listed it is
 * skipped.  One gc runs per store at a time (STORE/gc.lock).
 *
 * fsck: every file under objects/ is verified (header, size, decoded
 * digest) and compared with its index record; records without a blob and
 * wrong store totals are found.  Temp files no process holds are removed
 * (they are what a killed writer leaves behind).  With repair, corrupt
 * blobs are quarantined, unknown files moved to quarantine/, stale records
 * deleted and totals recounted.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "index.h"

/* Progress of a long run: done out of total (units given by the caller's
 * context: bytes for gc, blobs for fsck). */
typedef void (*cache_progress_fn)(uint64_t done, uint64_t total, void *arg);

typedef struct cache_gc_result {
	uint64_t limit;          /* the limit applied */
	uint64_t before, after;  /* stored bytes */
	uint64_t evicted, evicted_bytes;
	uint64_t busy;           /* skipped: in use */
} cache_gc_result;

/* Collects when the store is over max_size (0: the store's own limit).
 * wait: block for a gc already running elsewhere, else return -EBUSY. */
int cache_gc(cache_index *ix, uint64_t max_size, bool wait, cache_progress_fn progress, void *arg,
	     cache_gc_result *ret);

typedef struct cache_fsck_result {
	uint64_t blobs_ok;
	uint64_t corrupt;        /* blobs that failed verification */
	uint64_t unknown;        /* files that are neither blobs nor temp files */
	uint64_t missing;        /* index records without a blob */
	uint64_t mismatched;     /* records that disagree with their blob */
	uint64_t totals_wrong;   /* 1 when the store totals disagree with the records */
	uint64_t adopted;        /* blobs recorded now (a writer was killed in between) */
	uint64_t temps_removed;  /* stray temp files removed */
	uint64_t quarantined;    /* files already in quarantine/ */
	uint64_t repaired;
} cache_fsck_result;

/* Called once per finding: kind ("corrupt", "unknown", "missing",
 * "mismatch", "totals", "temp"), the path relative to the store, why. */
typedef void (*cache_fsck_report_fn)(const char *kind, const char *path, const char *why, void *arg);

/* Returns 0 (ret says what was found) or -errno when the store cannot be
 * walked. */
int cache_fsck(cache_index *ix, bool repair, cache_fsck_report_fn report,
	       cache_progress_fn progress, void *arg, cache_fsck_result *ret);

/* Problems fsck found that remain (not repaired). */
uint64_t cache_fsck_problems(const cache_fsck_result *r);
