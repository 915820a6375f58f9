/* Unit tests for cache/gc.c: LRU eviction down to 90% of the limit, blobs
 * held by readers, one gc at a time, and fsck's findings and repairs. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "blob.h"
#include "gc.h"

#define SEC 1000000000LL

static char tmpdir[64], storedir[96];
static cache_store *store;
static cache_index *ix;

static int setup(void **state)
{
	const char *msg;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/casfs-gc-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);
	if (cache_store_open(storedir, &store, &msg) < 0)
		return -1;
	return cache_index_open(store, &ix) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];
	cache_index_close(ix);
	ix = NULL;
	cache_store_close(store);
	store = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers ----------------------------------------------------------------- */

/* len bytes of content number seed: random, or compressible text. */
static uint8_t *content(uint64_t seed, size_t len, bool text)
{
	uint8_t *p = malloc(len + 1);
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 99;
	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		p[i] = text ? (uint8_t)("casfs gc "[i % 9] + (i % 4096 == 0 ? seed % 7 : 0)) : (uint8_t)s;
	}
	if (text && len)
		p[0] = (uint8_t)seed; /* distinct per seed */
	return p;
}

static hasher_digest put(uint64_t seed, size_t len, cache_put_mode mode, uint64_t *stored)
{
	char path[160];
	cache_put_result r;
	cache_put_opts o = { .mode = mode };
	uint8_t *buf = content(seed, len, mode == CACHE_PUT_ZSTD);
	snprintf(path, sizeof(path), "%s/src", tmpdir);
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(cache_put_fd(ix, fd, &o, &r), 0);
	assert_false(r.existed);
	close(fd);
	free(buf);
	if (stored)
		*stored = r.stored;
	return r.digest;
}

static void blob_path(const hasher_digest *d, char *out, size_t n)
{
	char fan[3], name[HASHER_HEX_LEN + 1];
	cache_blob_names(d, fan, name);
	snprintf(out, n, "%s/objects/%s/%s", storedir, fan, name);
}

static bool blob_exists(const hasher_digest *d)
{
	char path[256];
	struct stat st;
	blob_path(d, path, sizeof(path));
	return stat(path, &st) == 0;
}

static bool record_exists(const hasher_digest *d)
{
	cache_blob_rec rec;
	int r = cache_index_blob_get(ix, d, &rec);
	assert_true(r == 0 || r == -ENOENT);
	return r == 0;
}

static cache_totals totals(void)
{
	cache_totals t;
	assert_int_equal(cache_index_totals(ix, &t), 0);
	return t;
}

/* Reads the whole content through a reader and compares it. */
static void assert_reader_is(const cache_reader *r, uint64_t seed, size_t len, bool text)
{
	uint8_t *want = content(seed, len, text), *got = malloc(len + 1);
	assert_non_null(got);
	assert_int_equal(r->size, len);
	assert_int_equal(pread(r->fd, got, len, (off_t)r->off), (ssize_t)len);
	assert_memory_equal(got, want, len);
	free(got);
	free(want);
}

struct progress {
	int calls;
	uint64_t last_done, last_total;
	bool backwards, over;
};

static void on_progress(uint64_t done, uint64_t total, void *arg)
{
	struct progress *p = arg;
	if (p->calls && done < p->last_done)
		p->backwards = true;
	if (done > total)
		p->over = true;
	p->calls++;
	p->last_done = done;
	p->last_total = total;
}

/* ---- gc ------------------------------------------------------------------------ */

#define N 10
#define BLOB 10000

static void test_gc_lru_order(void **state)
{
	/* age of each blob: 0 is the least recently used; not the order of the puts */
	static const int age[N] = { 7, 2, 9, 0, 5, 3, 8, 1, 6, 4 };
	hasher_digest d[N];
	uint64_t each = 0, total = 0;
	int64_t base = cache_now_ns() + 100 * SEC;
	for (int i = 0; i < N; i++) {
		d[i] = put((uint64_t)i, BLOB, CACHE_PUT_RAW, &each);
		assert_int_equal(each, BLOB + CACHE_BLOB_HDR);
		total += each;
	}
	for (int i = 0; i < N; i++) {
		cache_blob_rec rec;
		assert_int_equal(cache_index_blob_touch(ix, &d[i], base + age[i] * 10 * SEC), 0);
		assert_int_equal(cache_index_blob_get(ix, &d[i], &rec), 0);
		assert_int_equal(rec.last_use_ns, base + age[i] * 10 * SEC);
	}
	assert_int_equal(totals().stored, total);

	/* 100640 bytes, limit 60000: down to 54000 takes the 5 oldest */
	cache_gc_result res;
	struct progress prog = { 0 };
	assert_int_equal(cache_index_set_max_size(ix, 60000), 0);
	assert_int_equal(cache_gc(ix, 0, false, on_progress, &prog, &res), 0);
	assert_int_equal(res.limit, 60000);
	assert_int_equal(res.before, total);
	assert_int_equal(res.evicted, 5);
	assert_int_equal(res.evicted_bytes, 5 * each);
	assert_int_equal(res.after, total - 5 * each);
	assert_true(res.after <= 60000 / 10 * 9);
	assert_int_equal(res.busy, 0);
	for (int i = 0; i < N; i++) {
		bool kept = age[i] >= 5;
		assert_int_equal(blob_exists(&d[i]), kept);
		assert_int_equal(record_exists(&d[i]), kept);
	}
	cache_totals t = totals();
	assert_int_equal(t.blobs, 5);
	assert_int_equal(t.stored, total - 5 * each);
	assert_int_equal(t.logical, 5 * BLOB);
	assert_int_equal(t.evictions, 5);
	assert_int_equal(t.evicted_bytes, 5 * each);
	assert_int_equal(t.max_size, 60000);
	/* progress: one call per eviction, forward, never past its total */
	assert_int_equal(prog.calls, 5);
	assert_false(prog.backwards);
	assert_false(prog.over);
	assert_int_equal(prog.last_done, prog.last_total);

	/* an explicit limit overrides the store's: 30000 → 27000, two remain */
	assert_int_equal(cache_gc(ix, 30000, false, NULL, NULL, &res), 0);
	assert_int_equal(res.limit, 30000);
	assert_int_equal(res.evicted, 3);
	for (int i = 0; i < N; i++)
		assert_int_equal(blob_exists(&d[i]), age[i] >= 8);
	t = totals();
	assert_int_equal(t.blobs, 2);
	assert_int_equal(t.evictions, 8);
	assert_int_equal(t.evicted_bytes, 8 * each);
}

static void test_gc_under_limit(void **state)
{
	hasher_digest d[3];
	uint64_t each, total = 0;
	cache_gc_result res;
	for (int i = 0; i < 3; i++) {
		d[i] = put((uint64_t)i, 5000, CACHE_PUT_RAW, &each);
		total += each;
	}
	/* the default limit */
	assert_int_equal(cache_gc(ix, 0, false, NULL, NULL, &res), 0);
	assert_int_equal(res.limit, CACHE_DEFAULT_MAX_SIZE);
	assert_int_equal(res.before, total);
	assert_int_equal(res.after, total);
	assert_int_equal(res.evicted + res.evicted_bytes + res.busy, 0);
	/* exactly at the limit is not over it */
	assert_int_equal(cache_gc(ix, total, false, NULL, NULL, &res), 0);
	assert_int_equal(res.evicted, 0);
	for (int i = 0; i < 3; i++)
		assert_true(blob_exists(&d[i]) && record_exists(&d[i]));
	cache_totals t = totals();
	assert_int_equal(t.blobs, 3);
	assert_int_equal(t.evictions, 0);
	/* one byte over: down to 90% */
	assert_int_equal(cache_gc(ix, total - 1, false, NULL, NULL, &res), 0);
	assert_int_equal(res.evicted, 1);
	assert_int_equal(totals().blobs, 2);
}

static void test_gc_skips_readers(void **state)
{
	hasher_digest d[3];
	int64_t base = cache_now_ns() + 100 * SEC;
	cache_gc_result res;
	cache_reader r, r2;
	for (int i = 0; i < 3; i++) {
		d[i] = put((uint64_t)i, 50000, CACHE_PUT_RAW, NULL);
		assert_int_equal(cache_index_blob_touch(ix, &d[i], base + i * 10 * SEC), 0);
	}
	/* d[0], the oldest, is being read (a raw blob: served from the blob) */
	assert_int_equal(cache_blob_open(ix, &d[0], &r), 0);
	assert_false(r.decompressed);
	assert_int_equal(cache_gc(ix, 1, false, NULL, NULL, &res), 0);
	assert_int_equal(res.busy, 1);
	assert_int_equal(res.evicted, 2);
	assert_true(blob_exists(&d[0]) && record_exists(&d[0]));
	assert_false(blob_exists(&d[1]) || record_exists(&d[1]));
	assert_false(blob_exists(&d[2]) || record_exists(&d[2]));
	assert_reader_is(&r, 0, 50000, false);
	/* still served to others meanwhile */
	assert_int_equal(cache_blob_open(ix, &d[0], &r2), 0);
	assert_reader_is(&r2, 0, 50000, false);
	cache_reader_close(&r2);
	assert_int_equal(cache_gc(ix, 1, false, NULL, NULL, &res), 0);
	assert_int_equal(res.busy, 1);
	assert_int_equal(res.evicted, 0);
	cache_reader_close(&r);

	/* released: the next gc takes it */
	assert_int_equal(cache_gc(ix, 1, false, NULL, NULL, &res), 0);
	assert_int_equal(res.busy, 0);
	assert_int_equal(res.evicted, 1);
	assert_false(blob_exists(&d[0]) || record_exists(&d[0]));
	cache_totals t = totals();
	assert_int_equal(t.blobs, 0);
	assert_int_equal(t.stored, 0);
	assert_int_equal(t.evictions, 3);

	/* a decompressed reader holds its own copy: eviction does not hurt it */
	hasher_digest z = put(9, 300000, CACHE_PUT_ZSTD, NULL);
	assert_int_equal(cache_blob_open(ix, &z, &r), 0);
	assert_true(r.decompressed);
	assert_int_equal(cache_gc(ix, 1, false, NULL, NULL, &res), 0);
	assert_int_equal(res.evicted, 1);
	assert_false(blob_exists(&z));
	assert_reader_is(&r, 9, 300000, true);
	cache_reader_close(&r);
}

/* A record whose blob is gone (deleted behind the store's back) is dropped
 * and its bytes count toward the target: live blobs are not evicted for it. */
static void test_gc_record_without_blob(void **state)
{
	char path[256];
	hasher_digest d[3];
	uint64_t each, total = 0;
	int64_t base = cache_now_ns() + 100 * SEC;
	cache_gc_result res;
	for (int i = 0; i < 3; i++) {
		d[i] = put((uint64_t)i, BLOB, CACHE_PUT_RAW, &each);
		assert_int_equal(cache_index_blob_touch(ix, &d[i], base + i * 10 * SEC), 0);
		total += each;
	}
	blob_path(&d[0], path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	/* 30192 bytes recorded, limit 27000: dropping d[0]'s record is enough */
	assert_int_equal(cache_gc(ix, 27000, false, NULL, NULL, &res), 0);
	assert_false(record_exists(&d[0]));
	assert_true(blob_exists(&d[1]) && record_exists(&d[1]));
	assert_true(blob_exists(&d[2]) && record_exists(&d[2]));
	assert_int_equal(res.evicted, 0);
	assert_int_equal(res.busy, 0);
	assert_int_equal(res.after, total - each);
	cache_totals t = totals();
	assert_int_equal(t.blobs, 2);
	assert_int_equal(t.stored, total - each);
	assert_int_equal(t.evictions, 0);
}

struct waiter {
	atomic_bool done;
	int rc;
	cache_gc_result res;
};

static void *gc_waiting(void *arg)
{
	struct waiter *w = arg;
	w->rc = cache_gc(ix, 1, true, NULL, NULL, &w->res);
	atomic_store(&w->done, true);
	return NULL;
}

static void test_gc_one_at_a_time(void **state)
{
	char path[160];
	cache_gc_result res;
	hasher_digest d = put(1, 1000, CACHE_PUT_RAW, NULL);
	snprintf(path, sizeof(path), "%s/gc.lock", storedir);
	int lock = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	assert_true(lock >= 0);
	assert_int_equal(flock(lock, LOCK_EX), 0);

	assert_int_equal(cache_gc(ix, 1, false, NULL, NULL, &res), -EBUSY);
	assert_true(blob_exists(&d) && record_exists(&d));
	assert_int_equal(totals().evictions, 0);

	/* wait: blocks until the other gc is done */
	struct waiter w = { .rc = 1 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, gc_waiting, &w), 0);
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	assert_false(atomic_load(&w.done));
	assert_true(blob_exists(&d));
	assert_int_equal(flock(lock, LOCK_UN), 0);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.res.evicted, 1);
	assert_false(blob_exists(&d));
	close(lock);

	/* released: no longer busy */
	assert_int_equal(cache_gc(ix, 1, false, NULL, NULL, &res), 0);
}

/* ---- fsck ------------------------------------------------------------------------ */

#define MAXF 16

struct findings {
	int n;
	char kind[MAXF][16];
	char path[MAXF][128];
};

static void collect(const char *kind, const char *path, const char *why, void *arg)
{
	struct findings *f = arg;
	assert_non_null(why);
	assert_true(*why);
	if (f->n < MAXF) {
		snprintf(f->kind[f->n], sizeof(f->kind[0]), "%s", kind);
		snprintf(f->path[f->n], sizeof(f->path[0]), "%s", path);
	}
	f->n++;
}

static bool found(const struct findings *f, const char *kind, const char *path)
{
	for (int i = 0; i < f->n && i < MAXF; i++)
		if (!strcmp(f->kind[i], kind) && !strcmp(f->path[i], path))
			return true;
	return false;
}

static cache_fsck_result fsck(bool repair, struct findings *f)
{
	cache_fsck_result res;
	memset(f, 0, sizeof(*f));
	assert_int_equal(cache_fsck(ix, repair, collect, NULL, f, &res), 0);
	return res;
}

static void assert_clean(void)
{
	struct findings f;
	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(res.corrupt + res.unknown + res.missing + res.mismatched + res.totals_wrong, 0);
	assert_int_equal(res.adopted + res.temps_removed + res.repaired, 0);
	assert_int_equal(f.n, 0);
}

static void rel_path(const hasher_digest *d, char *out, size_t n)
{
	char fan[3], name[HASHER_HEX_LEN + 1];
	cache_blob_names(d, fan, name);
	snprintf(out, n, "objects/%s/%s", fan, name);
}

static void plant(const char *rel, const char *data)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", storedir, rel);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	if (*data)
		assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static bool planted(const char *rel)
{
	char path[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", storedir, rel);
	return lstat(path, &st) == 0;
}

static int count_progress;

static void fsck_progress(uint64_t done, uint64_t total, void *arg)
{
	assert_true(done <= total);
	count_progress++;
}

static void test_fsck_clean(void **state)
{
	cache_fsck_result res;
	put(1, 5000, CACHE_PUT_RAW, NULL);
	put(2, 200000, CACHE_PUT_ZSTD, NULL);
	put(3, 0, CACHE_PUT_RAW, NULL);
	assert_int_equal(cache_fsck(ix, false, NULL, fsck_progress, NULL, &res), 0);
	assert_int_equal(res.blobs_ok, 3);
	assert_int_equal(count_progress, 3);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(res.quarantined, 0);
	assert_clean();
	/* an empty store is clean too */
	assert_int_equal(cache_gc(ix, 1, false, NULL, NULL, &(cache_gc_result){ 0 }), 0);
	assert_int_equal(totals().blobs, 0);
	assert_clean();
}

static void test_fsck_temps(void **state)
{
	char path[256];
	struct findings f;
	hasher_digest d = put(1, 5000, CACHE_PUT_RAW, NULL);
	snprintf(path, sizeof(path), "%s/objects/ab", storedir);
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
	/* what killed writers leave */
	plant("objects/.tmp-x", "half a blob");
	plant("objects/ab/.tmp-x", "");
	snprintf(path, sizeof(path), "%s/objects/ab/.tmp-x", storedir);
	struct timespec old[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	plant("tmp/.tmp-y", "decompressed");
	/* what live writers hold: a locked temp, one just created and not yet locked */
	plant("objects/.tmp-held", "being written");
	snprintf(path, sizeof(path), "%s/objects/.tmp-held", storedir);
	int held = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(held >= 0);
	assert_int_equal(flock(held, LOCK_EX), 0);
	plant("objects/.tmp-new", "");

	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(res.temps_removed, 3);
	assert_int_equal(f.n, 3);
	assert_true(found(&f, "temp", "objects/.tmp-x"));
	assert_true(found(&f, "temp", "objects/ab/.tmp-x"));
	assert_true(found(&f, "temp", "tmp/.tmp-y"));
	assert_false(planted("objects/.tmp-x"));
	assert_false(planted("objects/ab/.tmp-x"));
	assert_false(planted("tmp/.tmp-y"));
	assert_true(planted("objects/.tmp-held"));
	assert_true(planted("objects/.tmp-new"));
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(res.blobs_ok, 1);
	assert_int_equal(res.unknown, 0);
	assert_true(blob_exists(&d));

	/* the writer is gone */
	close(held);
	res = fsck(false, &f);
	assert_int_equal(res.temps_removed, 1);
	assert_false(planted("objects/.tmp-held"));
	assert_true(planted("objects/.tmp-new"));
}

static void test_fsck_adopts(void **state)
{
	struct findings f;
	uint64_t stored;
	hasher_digest d = put(1, 7000, CACHE_PUT_ZSTD, &stored);
	put(2, 3000, CACHE_PUT_RAW, NULL);
	cache_totals before = totals();
	/* published, then the writer died before recording it */
	assert_int_equal(cache_index_blob_del(ix, &d, -1, CACHE_DEL_STALE), 0);
	assert_false(record_exists(&d));
	assert_int_equal(totals().blobs, 1);

	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(res.adopted, 1);
	assert_int_equal(res.blobs_ok, 2);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(f.n, 0);
	cache_blob_rec rec;
	assert_int_equal(cache_index_blob_get(ix, &d, &rec), 0);
	assert_int_equal(rec.size, 7000);
	assert_int_equal(rec.stored, stored);
	assert_int_equal(rec.compression, CACHE_COMP_ZSTD);
	cache_totals t = totals();
	assert_int_equal(t.blobs, before.blobs);
	assert_int_equal(t.logical, before.logical);
	assert_int_equal(t.stored, before.stored);
	assert_clean();
}

static void test_fsck_corrupt(void **state)
{
	char path[256], rel[128], qdir[160];
	struct findings f;
	put(1, 4000, CACHE_PUT_RAW, NULL);
	hasher_digest d = put(2, 100000, CACHE_PUT_ZSTD, NULL);
	blob_path(&d, path, sizeof(path));
	rel_path(&d, rel, sizeof(rel));
	snprintf(qdir, sizeof(qdir), "%s/quarantine", storedir);
	assert_int_equal(chmod(path, 0644), 0);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	uint8_t b;
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	off_t at = CACHE_BLOB_HDR + (st.st_size - CACHE_BLOB_HDR) / 2; /* in the payload */
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);

	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(res.corrupt, 1);
	assert_int_equal(res.blobs_ok, 1);
	assert_int_equal(cache_fsck_problems(&res), 1);
	assert_int_equal(f.n, 1);
	assert_true(found(&f, "corrupt", rel));
	assert_true(blob_exists(&d)); /* no repair: left alone */
	assert_true(record_exists(&d));
	assert_int_equal(totals().corrupt, 0);

	res = fsck(true, &f);
	assert_int_equal(res.corrupt, 1);
	assert_int_equal(res.repaired, 1);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_false(blob_exists(&d));
	assert_false(record_exists(&d));
	cache_totals t = totals();
	assert_int_equal(t.corrupt, 1);
	assert_int_equal(t.blobs, 1);

	res = fsck(false, &f);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(res.corrupt, 0);
	assert_int_equal(res.quarantined, 1);
	assert_int_equal(f.n, 0);
	assert_clean();
}

static void test_fsck_missing(void **state)
{
	char path[256], rel[128];
	struct findings f;
	uint64_t keep_stored;
	put(1, 4000, CACHE_PUT_RAW, &keep_stored);
	hasher_digest d = put(2, 6000, CACHE_PUT_RAW, NULL);
	blob_path(&d, path, sizeof(path));
	rel_path(&d, rel, sizeof(rel));
	assert_int_equal(unlink(path), 0);

	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(res.missing, 1);
	assert_int_equal(cache_fsck_problems(&res), 1);
	assert_true(found(&f, "missing", rel));
	assert_true(record_exists(&d));

	res = fsck(true, &f);
	assert_int_equal(res.missing, 1);
	assert_int_equal(res.repaired, 1);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_false(record_exists(&d));
	cache_totals t = totals();
	assert_int_equal(t.blobs, 1);
	assert_int_equal(t.stored, keep_stored);
	assert_int_equal(t.logical, 4000);
	assert_clean();
}

static void test_fsck_totals(void **state)
{
	struct findings f;
	uint64_t s1, s2;
	put(1, 4000, CACHE_PUT_RAW, &s1);
	put(2, 9000, CACHE_PUT_ZSTD, &s2);
	assert_int_equal(cache_index_set_sums(ix, 7, 8, 9), 0);

	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(res.totals_wrong, 1);
	assert_int_equal(cache_fsck_problems(&res), 1);
	assert_true(found(&f, "totals", "index.lmdb"));
	assert_int_equal(totals().blobs, 7);

	res = fsck(true, &f);
	assert_int_equal(res.totals_wrong, 1);
	assert_int_equal(res.repaired, 1);
	assert_int_equal(cache_fsck_problems(&res), 0);
	cache_totals t = totals();
	assert_int_equal(t.blobs, 2);
	assert_int_equal(t.logical, 13000);
	assert_int_equal(t.stored, s1 + s2);
	assert_clean();
}

static void test_fsck_mismatch(void **state)
{
	char rel[128];
	struct findings f;
	uint64_t stored;
	hasher_digest d = put(1, 4000, CACHE_PUT_RAW, &stored);
	rel_path(&d, rel, sizeof(rel));
	cache_blob_rec rec;
	assert_int_equal(cache_index_blob_get(ix, &d, &rec), 0);
	assert_int_equal(cache_index_blob_del(ix, &d, -1, CACHE_DEL_STALE), 0);
	rec.size = 4001;
	rec.stored = 12;
	rec.compression = CACHE_COMP_ZSTD;
	assert_int_equal(cache_index_blob_add(ix, &d, &rec, false), 0);

	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(res.mismatched, 1);
	assert_int_equal(cache_fsck_problems(&res), 1);
	assert_true(found(&f, "mismatch", rel));

	res = fsck(true, &f);
	assert_int_equal(res.repaired, 1);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(cache_index_blob_get(ix, &d, &rec), 0);
	assert_int_equal(rec.size, 4000);
	assert_int_equal(rec.stored, stored);
	assert_int_equal(rec.compression, CACHE_COMP_NONE);
	cache_totals t = totals();
	assert_int_equal(t.blobs, 1);
	assert_int_equal(t.stored, stored);
	assert_int_equal(t.logical, 4000);
	assert_clean();
}

static void test_fsck_unknown(void **state)
{
	char path[256], src[256], name[HASHER_HEX_LEN + 1], wrong[128], fan[3];
	struct findings f;
	/* a real blob, copied into a fan-out directory that is not its own */
	hasher_digest d;
	for (uint64_t seed = 1;; seed++) {
		d = put(seed, 2000, CACHE_PUT_RAW, NULL);
		cache_blob_names(&d, fan, name);
		if (strcmp(fan, "ab"))
			break;
	}
	snprintf(path, sizeof(path), "%s/objects/ab", storedir);
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
	blob_path(&d, src, sizeof(src));
	snprintf(path, sizeof(path), "%s/objects/ab/%s", storedir, name);
	assert_int_equal(link(src, path), 0);
	snprintf(wrong, sizeof(wrong), "objects/ab/%s", name);
	plant("objects/README", "hello");
	plant("objects/ab/notablob", "x");
	snprintf(path, sizeof(path), "%s/objects/zz", storedir);
	assert_int_equal(mkdir(path, 0755), 0);

	cache_fsck_result res = fsck(false, &f);
	assert_int_equal(res.unknown, 4);
	assert_int_equal(cache_fsck_problems(&res), 4);
	assert_true(found(&f, "unknown", "objects/README"));
	assert_true(found(&f, "unknown", "objects/zz"));
	assert_true(found(&f, "unknown", "objects/ab/notablob"));
	assert_true(found(&f, "unknown", wrong));
	assert_int_equal(res.blobs_ok, 1);
	assert_true(planted("objects/README"));

	/* repair moves files aside; a directory stays and is still reported */
	res = fsck(true, &f);
	assert_int_equal(res.unknown, 4);
	assert_int_equal(res.repaired, 3);
	assert_int_equal(cache_fsck_problems(&res), 1);
	assert_false(planted("objects/README"));
	assert_false(planted("objects/ab/notablob"));
	assert_false(planted(wrong));
	assert_true(blob_exists(&d));
	snprintf(path, sizeof(path), "%s/objects/zz", storedir);
	assert_int_equal(rmdir(path), 0);
	res = fsck(false, &f);
	assert_int_equal(res.quarantined, 3);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(f.n, 0);
}

/* Deferred records: a process killed before its last batch was committed
 * leaves blobs that fsck adopts, with nothing to repair. */
static void test_deferred_records_killed(void **state)
{
	const int n = 300; /* one full batch of 256 committed, 44 pending */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cache_store *cs;
		cache_index *cix;
		const char *msg;
		char path[160];
		if (cache_store_open(storedir, &cs, &msg) < 0 || cache_index_open(cs, &cix) < 0)
			_exit(2);
		snprintf(path, sizeof(path), "%s/src-child", tmpdir);
		for (int i = 0; i < n; i++) {
			cache_put_opts o = { .mode = CACHE_PUT_RAW, .defer_record = true };
			cache_put_result r;
			uint64_t v[4] = { (uint64_t)i, 7, 7, 7 };
			int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
			if (fd < 0 || write(fd, v, sizeof(v)) != (ssize_t)sizeof(v) ||
			    cache_put_fd(cix, fd, &o, &r) < 0 || r.existed)
				_exit(3);
			close(fd);
		}
		_exit(0); /* as if killed: no flush, no close */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	cache_totals t;
	assert_int_equal(cache_index_totals(ix, &t), 0);
	assert_int_equal(t.blobs, 256); /* the first batch only */
	cache_fsck_result res;
	assert_int_equal(cache_fsck(ix, false, NULL, NULL, NULL, &res), 0);
	assert_int_equal(res.blobs_ok, n);
	assert_int_equal(res.adopted, n - 256);
	assert_int_equal(cache_fsck_problems(&res), 0);
	assert_int_equal(cache_index_totals(ix, &t), 0);
	assert_int_equal(t.blobs, n);
}

/* gc in another process evicts a blob between this process's use of it and
 * the commit of that use: the deferred touch of a read, and the deferred
 * record of a put that found the content stored.  Neither may bring the
 * record back: it would point at no blob (fsck: "index record without a
 * blob"; a hit would find its output gone). */
static void gc_in_child(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cache_store *cs;
		cache_index *cix;
		cache_gc_result res;
		const char *msg;
		if (cache_store_open(storedir, &cs, &msg) < 0 || cache_index_open(cs, &cix) < 0)
			_exit(2);
		if (cache_gc(cix, 1, true, NULL, NULL, &res) < 0 || res.evicted != 1)
			_exit(3);
		cache_index_close(cix);
		cache_store_close(cs);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_deferred_use_of_evicted(void **state)
{
	char path[160];
	cache_reader r;
	cache_blob_rec rec;
	hasher_digest d = put(5, 4000, CACHE_PUT_RAW, NULL);
	/* last used long ago, so that a read defers a touch */
	assert_int_equal(cache_index_blob_get(ix, &d, &rec), 0);
	rec.last_use_ns -= 100 * SEC;
	assert_int_equal(cache_index_blob_del(ix, &d, -1, CACHE_DEL_STALE), 0);
	assert_int_equal(cache_index_blob_add(ix, &d, &rec, false), 0);

	assert_int_equal(cache_blob_open(ix, &d, &r), 0);
	cache_reader_close(&r);
	gc_in_child();
	assert_false(blob_exists(&d));
	assert_int_equal(cache_index_flush(ix), 0);
	assert_false(record_exists(&d));
	assert_clean();

	/* a put of content found stored, its record deferred */
	d = put(5, 4000, CACHE_PUT_RAW, NULL);
	snprintf(path, sizeof(path), "%s/src", tmpdir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	cache_put_opts o = { .mode = CACHE_PUT_RAW, .defer_record = true, .has_expect = true, .expect = d };
	cache_put_result pr;
	assert_int_equal(cache_put_fd(ix, fd, &o, &pr), 0);
	assert_true(pr.existed);
	close(fd);
	gc_in_child();
	assert_int_equal(cache_index_flush(ix), 0);
	assert_false(record_exists(&d));
	assert_clean();

	/* the next put stores it again */
	d = put(5, 4000, CACHE_PUT_RAW, NULL);
	assert_true(blob_exists(&d) && record_exists(&d));
	assert_clean();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gc_lru_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_under_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_skips_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_record_without_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_one_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_temps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_adopts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_totals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_records_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_use_of_evicted, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
