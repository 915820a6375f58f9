/* Unit tests for cache/index.c: file records, the racy-timestamp rule,
 * persistence across reopen and concurrent writers; namespaced key/value
 * records, their walk with verdicts, and a full map. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <lmdb.h>

#include "index.h"

static char dir[64];
static cache_store *store;

static int setup(void **state)
{
	const char *msg;
	snprintf(dir, sizeof(dir), "/tmp/casfs-index-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return cache_store_open(dir, &store, &msg);
}

static int teardown(void **state)
{
	char cmd[128];
	cache_store_close(store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static cache_file_entry entry(uint64_t ino, int64_t ctime, int64_t hashed_at)
{
	cache_file_entry e = { .dev = 42, .ino = ino };
	hasher_digest_buffer(&ino, sizeof(ino), &e.rec.digest);
	e.rec.size = ino * 10;
	e.rec.mtime_ns = ctime - 5;
	e.rec.ctime_ns = ctime;
	e.rec.hashed_at_ns = hashed_at;
	return e;
}

static void test_put_get_reopen(void **state)
{
	cache_index *ix;
	cache_file_rec rec;
	assert_int_equal(cache_index_open(store, &ix), 0);
	assert_int_equal(cache_index_file_get(ix, 42, 1, &rec), -ENOENT);
	cache_file_entry e[100];
	for (int i = 0; i < 100; i++)
		e[i] = entry((uint64_t)i + 1, 1000000000, 2000000000);
	assert_int_equal(cache_index_file_put(ix, e, 100), 0);
	cache_index_close(ix);

	assert_int_equal(cache_index_open(store, &ix), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(cache_index_file_get(ix, 42, (uint64_t)i + 1, &rec), 0);
		assert_true(hasher_digest_equal(&rec.digest, &e[i].rec.digest));
		assert_int_equal(rec.size, e[i].rec.size);
		assert_int_equal(rec.ctime_ns, e[i].rec.ctime_ns);
	}
	assert_int_equal(cache_index_file_del(ix, 42, 7), 0);
	assert_int_equal(cache_index_file_get(ix, 42, 7, &rec), -ENOENT);
	assert_int_equal(cache_index_file_get(ix, 43, 8, &rec), -ENOENT); /* other dev */
	cache_index_close(ix);
}

/* An index file cut short (fewer pages than its meta page says) is
 * refused as damaged (-EIO), not opened: LMDB would fault (SIGBUS) on the
 * first read of a missing page. */
static void test_truncated_file_refused(void **state)
{
	cache_index *ix;
	char path[128];
	assert_int_equal(cache_index_open(store, &ix), 0);
	cache_file_entry e[2000];
	for (int i = 0; i < 2000; i++)
		e[i] = entry((uint64_t)i + 1, 1000000000, 2000000000);
	assert_int_equal(cache_index_file_put(ix, e, 2000), 0);
	cache_index_close(ix);
	snprintf(path, sizeof(path), "%s/index.lmdb", dir);
	assert_int_equal(truncate(path, 16384), 0);
	assert_int_equal(cache_index_open(store, &ix), -EIO);
}

/* The raw files record of (42, ino) as stored: its length and version
 * byte (the on-disk grammar at the top of index.c). */
static void raw_file_record(uint64_t ino, size_t *ret_len, int *ret_version)
{
	char path[128];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint64_t k[2] = { 42, ino };
	MDB_val key = { sizeof(k), k }, val;
	snprintf(path, sizeof(path), "%s/index.lmdb", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "files", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
	*ret_len = val.mv_size;
	*ret_version = ((const uint8_t *)val.mv_data)[0];
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* A record keeps the SHA-256 given with it (version 2, 88 bytes) and is
 * written as before without one (version 1, 56 bytes, what older casfs
 * reads); rewriting without a SHA-256 drops it; cache_index_file_get reads
 * both versions. */
static void test_sha256_records(void **state)
{
	cache_index *ix;
	cache_file_entry e[2] = { entry(1, 1000000000, 2000000000), entry(2, 1000000000, 2000000000) }, got;
	cache_file_rec rec;
	e[1].has_sha256 = true;
	assert_int_equal(hasher_sha256_buffer("two", 3, &e[1].sha256), 0);
	assert_int_equal(cache_index_open(store, &ix), 0);
	assert_int_equal(cache_index_file_put(ix, e, 2), 0);
	cache_index_close(ix);

	size_t len;
	int version;
	raw_file_record(1, &len, &version);
	assert_int_equal(len, 56);
	assert_int_equal(version, 1);
	raw_file_record(2, &len, &version);
	assert_int_equal(len, 88);
	assert_int_equal(version, 2);

	assert_int_equal(cache_index_open(store, &ix), 0);
	assert_int_equal(cache_index_file_get_entry(ix, 42, 1, &got), 0);
	assert_false(got.has_sha256);
	assert_true(hasher_digest_equal(&got.rec.digest, &e[0].rec.digest));
	assert_int_equal(cache_index_file_get_entry(ix, 42, 2, &got), 0);
	assert_true(got.has_sha256);
	assert_true(hasher_sha256_equal(&got.sha256, &e[1].sha256));
	assert_true(hasher_digest_equal(&got.rec.digest, &e[1].rec.digest));
	assert_int_equal(got.rec.size, e[1].rec.size);
	assert_int_equal(got.rec.mtime_ns, e[1].rec.mtime_ns);
	assert_int_equal(got.rec.ctime_ns, e[1].rec.ctime_ns);
	assert_int_equal(got.rec.hashed_at_ns, e[1].rec.hashed_at_ns);
	assert_int_equal(cache_index_file_get(ix, 42, 2, &rec), 0);
	assert_true(hasher_digest_equal(&rec.digest, &e[1].rec.digest));
	assert_int_equal(cache_index_file_get_entry(ix, 42, 3, &got), -ENOENT);

	e[1].has_sha256 = false; /* the content changed: no SHA-256 known */
	assert_int_equal(cache_index_file_put(ix, &e[1], 1), 0);
	assert_int_equal(cache_index_file_get_entry(ix, 42, 2, &got), 0);
	assert_false(got.has_sha256);
	cache_index_close(ix);
	raw_file_record(2, &len, &version);
	assert_int_equal(len, 56);
	assert_int_equal(version, 1);
}

static void test_valid_rule(void **state)
{
	cache_file_entry e = entry(5, 10 * 1000000000LL, 10 * 1000000000LL + CACHE_RACY_NS);
	struct stat st = { .st_size = 50 };
	st.st_mtim.tv_sec = 9;
	st.st_mtim.tv_nsec = 999999995;
	st.st_ctim.tv_sec = 10;
	assert_true(cache_file_rec_valid(&e.rec, &st));
	/* hashed inside the racy window: not trusted */
	e.rec.hashed_at_ns = e.rec.ctime_ns + CACHE_RACY_NS - 1;
	assert_false(cache_file_rec_valid(&e.rec, &st));
	e.rec.hashed_at_ns = e.rec.ctime_ns + CACHE_RACY_NS;
	/* any stat difference: not valid */
	st.st_size = 51;
	assert_false(cache_file_rec_valid(&e.rec, &st));
	st.st_size = 50;
	st.st_ctim.tv_nsec = 1;
	assert_false(cache_file_rec_valid(&e.rec, &st));
	st.st_ctim.tv_nsec = 0;
	st.st_mtim.tv_nsec = 0;
	assert_false(cache_file_rec_valid(&e.rec, &st));
}

/* One environment per process, shared by its threads (an LMDB rule). */
static cache_index *shared_ix;

static void *writer(void *arg)
{
	uint64_t base = (uint64_t)(uintptr_t)arg;
	for (uint64_t i = 0; i < 200; i++) {
		cache_file_entry e = entry(base + i, 1, 2);
		if (cache_index_file_put(shared_ix, &e, 1) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_threads_and_processes(void **state)
{
	pthread_t th[4];
	pid_t pid = fork();
	if (pid == 0) {
		if (cache_index_open(store, &shared_ix) < 0)
			_exit(1);
		void *r = writer((void *)(uintptr_t)100000);
		cache_index_close(shared_ix);
		_exit(r ? 1 : 0);
	}
	assert_int_equal(cache_index_open(store, &shared_ix), 0);
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, writer, (void *)(i * 1000));
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		assert_null(r);
	}
	cache_index_close(shared_ix);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cache_index *ix;
	cache_file_rec rec;
	assert_int_equal(cache_index_open(store, &ix), 0);
	for (uint64_t b = 0; b < 4000; b += 1000)
		for (uint64_t i = 0; i < 200; i++)
			assert_int_equal(cache_index_file_get(ix, 42, b + i, &rec), 0);
	for (uint64_t i = 0; i < 200; i++)
		assert_int_equal(cache_index_file_get(ix, 42, 100000 + i, &rec), 0);
	cache_index_close(ix);
}


/* ---- key/value records ------------------------------------------------------- */

static void kv_expect(cache_index *ix, char ns, const char *key, const char *want)
{
	void *v = NULL;
	size_t n = 0;
	int r = cache_index_kv_get(ix, ns, key, strlen(key), &v, &n);
	if (!want) {
		assert_int_equal(r, -ENOENT);
		return;
	}
	assert_int_equal(r, 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
	free(v);
}

static void test_kv_basics(void **state)
{
	cache_index *ix;
	assert_int_equal(cache_index_open(store, &ix), 0);
	kv_expect(ix, 'A', "k1", NULL);
	assert_int_equal(cache_index_kv_put(ix, 'A', "k1", 2, "v1", 2), 0);
	assert_int_equal(cache_index_kv_put(ix, 'T', "k1", 2, "other namespace", 15), 0);
	kv_expect(ix, 'A', "k1", "v1");
	kv_expect(ix, 'T', "k1", "other namespace");
	kv_expect(ix, 'B', "k1", NULL);
	assert_int_equal(cache_index_kv_put(ix, 'A', "k1", 2, "replaced", 8), 0);
	kv_expect(ix, 'A', "k1", "replaced");
	/* an empty value is a value */
	assert_int_equal(cache_index_kv_put(ix, 'A', "empty", 5, "", 0), 0);
	void *v = NULL;
	size_t n = 99;
	assert_int_equal(cache_index_kv_get(ix, 'A', "empty", 5, &v, &n), 0);
	assert_non_null(v);
	assert_int_equal(n, 0);
	free(v);
	/* binary keys, the longest key */
	uint8_t key[CACHE_KV_KEY_MAX + 1];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	assert_int_equal(cache_index_kv_put(ix, 'A', key, CACHE_KV_KEY_MAX, "long", 4), 0);
	assert_int_equal(cache_index_kv_get(ix, 'A', key, CACHE_KV_KEY_MAX, &v, &n), 0);
	free(v);
	assert_int_equal(cache_index_kv_put(ix, 'A', key, CACHE_KV_KEY_MAX + 1, "x", 1), -EINVAL);
	assert_int_equal(cache_index_kv_get(ix, 'A', key, 0, &v, &n), -EINVAL);
	assert_int_equal(cache_index_kv_del(ix, 'A', key, 0), -EINVAL);
	/* delete */
	assert_int_equal(cache_index_kv_del(ix, 'A', "k1", 2), 0);
	kv_expect(ix, 'A', "k1", NULL);
	kv_expect(ix, 'T', "k1", "other namespace");
	assert_int_equal(cache_index_kv_del(ix, 'A', "k1", 2), -ENOENT);
	cache_index_close(ix);
	/* persists */
	assert_int_equal(cache_index_open(store, &ix), 0);
	kv_expect(ix, 'T', "k1", "other namespace");
	kv_expect(ix, 'A', "empty", "");
	cache_index_close(ix);
}

/* Records written later: this process reads them at once (the newest
 * queued write of a key wins), another index handle only once flushed. */
static void test_kv_later(void **state)
{
	cache_index *ix, *other;
	assert_int_equal(cache_index_open(store, &ix), 0);
	assert_int_equal(cache_index_open(store, &other), 0);
	assert_int_equal(cache_index_kv_put_later(ix, 'A', "l1", 2, "first", 5), 0);
	kv_expect(ix, 'A', "l1", "first");
	kv_expect(other, 'A', "l1", NULL);
	assert_int_equal(cache_index_kv_put_later(ix, 'A', "l1", 2, "second", 6), 0);
	kv_expect(ix, 'A', "l1", "second");
	assert_int_equal(cache_index_flush(ix), 0);
	kv_expect(other, 'A', "l1", "second");
	/* a removal queued after a put, and one of a key never written */
	assert_int_equal(cache_index_kv_put_later(ix, 'A', "l2", 2, "gone", 4), 0);
	assert_int_equal(cache_index_kv_del_later(ix, 'A', "l2", 2), 0);
	assert_int_equal(cache_index_kv_del_later(ix, 'A', "l1", 2), 0);
	assert_int_equal(cache_index_kv_del_later(ix, 'A', "never", 5), 0);
	kv_expect(ix, 'A', "l2", NULL);
	kv_expect(ix, 'A', "l1", NULL);
	kv_expect(other, 'A', "l1", "second");
	assert_int_equal(cache_index_flush(ix), 0);
	kv_expect(other, 'A', "l1", NULL);
	kv_expect(other, 'A', "l2", NULL);
	/* closing commits what waits */
	assert_int_equal(cache_index_kv_put_later(ix, 'A', "l3", 2, "kept", 4), 0);
	cache_index_close(ix);
	kv_expect(other, 'A', "l3", "kept");
	cache_index_close(other);
}

static void count_wake(void *arg)
{
	(*(int *)arg)++;
}

/* With a flusher, a full queue wakes it once instead of being committed by
 * the thread that filled it; only a queue CACHE_DEFER_HARD long is. */
static void test_kv_later_flusher(void **state)
{
	cache_index *ix, *other;
	int wakes = 0;
	char k[16];
	assert_int_equal(cache_index_open(store, &ix), 0);
	assert_int_equal(cache_index_open(store, &other), 0);
	cache_index_set_flusher(ix, count_wake, &wakes);
	int i = 0;
	for (; i < 1000; i++) {
		snprintf(k, sizeof(k), "f%05d", i);
		assert_int_equal(cache_index_kv_put_later(ix, 'A', k, strlen(k), "v", 1), 0);
	}
	assert_int_equal(wakes, 1);
	kv_expect(ix, 'A', "f00000", "v");
	kv_expect(other, 'A', "f00000", NULL); /* nothing committed by the queuing thread */
	assert_int_equal(cache_index_flush(ix), 0); /* what the flusher does */
	kv_expect(other, 'A', "f00999", "v");
	/* the flusher fell behind: the queuing thread commits at the hard bound */
	for (int j = 0; j < CACHE_DEFER_HARD; j++, i++) {
		snprintf(k, sizeof(k), "f%05d", i);
		assert_int_equal(cache_index_kv_put_later(ix, 'A', k, strlen(k), "v", 1), 0);
	}
	assert_int_equal(wakes, 2);
	snprintf(k, sizeof(k), "f%05d", i - 1);
	kv_expect(other, 'A', k, "v");
	/* without a flusher: the filling thread commits (256 queued) */
	cache_index_set_flusher(ix, NULL, NULL);
	for (int j = 0; j < 256; j++, i++) {
		snprintf(k, sizeof(k), "f%05d", i);
		assert_int_equal(cache_index_kv_put_later(ix, 'A', k, strlen(k), "v", 1), 0);
	}
	snprintf(k, sizeof(k), "f%05d", i - 1);
	kv_expect(other, 'A', k, "v");
	assert_int_equal(wakes, 2);
	cache_index_close(ix);
	cache_index_close(other);
}

struct walk {
	cache_index *ix;
	size_t visits;
	char last[32];
	int stop_after;     /* CACHE_KV_STOP at this visit (1-based); 0: never */
	int fail_after;     /* -EIO at this visit */
	bool sabotage;      /* rewrite key 7 while visiting it, then ask to delete it */
};

static int walk_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
		   void **ret_val, size_t *ret_len)
{
	struct walk *w = arg;
	char k[32];
	assert_true(klen < sizeof(k));
	memcpy(k, key, klen);
	k[klen] = '\0';
	assert_true(strcmp(w->last, k) < 0); /* key order, each once */
	strcpy(w->last, k);
	w->visits++;
	if (w->fail_after && (int)w->visits == w->fail_after)
		return -EIO;
	if (w->stop_after && (int)w->visits == w->stop_after)
		return CACHE_KV_STOP;
	int i = atoi(k + 1);
	if (w->sabotage && i == 7) {
		/* another writer gets there first; no transaction is open here */
		assert_int_equal(cache_index_kv_put(w->ix, 'A', key, klen, "theirs", 6), 0);
		return CACHE_KV_DELETE;
	}
	if (i % 2 == 0)
		return CACHE_KV_DELETE;
	if (i % 3 == 0) {
		char *nv = malloc(vlen + 4);
		memcpy(nv, val, vlen);
		memcpy(nv + vlen, "-new", 4);
		*ret_val = nv;
		*ret_len = vlen + 4;
		return CACHE_KV_REPLACE;
	}
	return CACHE_KV_KEEP;
}

static void kv_fill(cache_index *ix, int n)
{
	for (int i = 0; i < n; i++) {
		char k[16], v[16];
		snprintf(k, sizeof(k), "k%04d", i);
		snprintf(v, sizeof(v), "v%d", i);
		assert_int_equal(cache_index_kv_put(ix, 'A', k, strlen(k), v, strlen(v)), 0);
	}
}

static void test_kv_each(void **state)
{
	cache_index *ix;
	assert_int_equal(cache_index_open(store, &ix), 0);
	kv_fill(ix, 300);
	/* neighbours in other namespaces are never visited */
	assert_int_equal(cache_index_kv_put(ix, '@', "k0001", 5, "before", 6), 0);
	assert_int_equal(cache_index_kv_put(ix, 'B', "k0001", 5, "after", 5), 0);
	struct walk w = { .ix = ix };
	assert_int_equal(cache_index_kv_each(ix, 'A', walk_fn, &w), 0);
	assert_int_equal(w.visits, 300);
	for (int i = 0; i < 300; i++) {
		char k[16], v[24];
		snprintf(k, sizeof(k), "k%04d", i);
		snprintf(v, sizeof(v), i % 3 == 0 ? "v%d-new" : "v%d", i);
		kv_expect(ix, 'A', k, i % 2 == 0 ? NULL : v);
	}
	kv_expect(ix, '@', "k0001", "before");
	kv_expect(ix, 'B', "k0001", "after");
	/* an empty namespace */
	w = (struct walk){ .ix = ix };
	assert_int_equal(cache_index_kv_each(ix, 'Z', walk_fn, &w), 0);
	assert_int_equal(w.visits, 0);

	/* stop: verdicts before it are applied, nothing after is visited */
	kv_fill(ix, 300);
	w = (struct walk){ .ix = ix, .stop_after = 100 };
	assert_int_equal(cache_index_kv_each(ix, 'A', walk_fn, &w), 0);
	assert_int_equal(w.visits, 100);
	kv_expect(ix, 'A', "k0098", NULL);      /* deleted before the stop */
	kv_expect(ix, 'A', "k0093", "v93-new"); /* replaced before the stop */
	kv_expect(ix, 'A', "k0099", "v99");     /* the stop itself leaves it */
	kv_expect(ix, 'A', "k0100", "v100");    /* not visited */
	/* an error: returned, earlier verdicts applied */
	kv_fill(ix, 300);
	w = (struct walk){ .ix = ix, .fail_after = 70 };
	assert_int_equal(cache_index_kv_each(ix, 'A', walk_fn, &w), -EIO);
	assert_int_equal(w.visits, 70);
	kv_expect(ix, 'A', "k0068", NULL);
	kv_expect(ix, 'A', "k0063", "v63-new");
	kv_expect(ix, 'A', "k0069", "v69");     /* the failing visit leaves it */
	kv_expect(ix, 'A', "k0070", "v70");
	/* a record rewritten while it was being judged keeps the new value */
	kv_fill(ix, 300);
	w = (struct walk){ .ix = ix, .sabotage = true };
	assert_int_equal(cache_index_kv_each(ix, 'A', walk_fn, &w), 0);
	kv_expect(ix, 'A', "k0007", "theirs");
	kv_expect(ix, 'A', "k0008", NULL);
	cache_index_close(ix);
}

/* kv writes grow the map like every other write, and report a full one. */
static void test_kv_full_map(void **state)
{
	cache_index *ix;
	assert_int_equal(cache_index_open_sized(store, 256 << 10, 4 << 20, &ix), 0);
	char *big = malloc(100000);
	memset(big, 'x', 100000);
	int stored = 0, r = 0;
	for (int i = 0; i < 200 && r == 0; i++) {
		char k[16];
		snprintf(k, sizeof(k), "big%03d", i);
		r = cache_index_kv_put(ix, 'A', k, strlen(k), big, 100000);
		if (r == 0)
			stored++;
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(stored > 10);        /* more than the first 256 KiB map held */
	assert_true(stored < 45);        /* but within 4 MiB */
	void *v;
	size_t n;
	assert_int_equal(cache_index_kv_get(ix, 'A', "big000", 6, &v, &n), 0);
	assert_int_equal(n, 100000);
	free(v);
	/* deleting makes room again */
	assert_int_equal(cache_index_kv_del(ix, 'A', "big000", 6), 0);
	assert_int_equal(cache_index_kv_del(ix, 'A', "big001", 6), 0);
	assert_int_equal(cache_index_kv_put(ix, 'A', "again", 5, big, 100000), 0);
	free(big);
	cache_index_close(ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sha256_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_file_refused, setup, teardown),
		cmocka_unit_test(test_valid_rule),
		cmocka_unit_test_setup_teardown(test_concurrent_threads_and_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_later_flusher, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_each, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_full_map, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
