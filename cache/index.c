/* index.c — LMDB-backed index; see index.h.
 *
 * Records (host byte order, version byte first; an unknown version or
 * length reads as absent):
 *   files  key u64 dev, u64 ino
 *          val u8 version=1, u8 pad[7], digest[16], u64 size, i64 mtime_ns,
 *              i64 ctime_ns, i64 hashed_at_ns                      (56 bytes)
 *          or, when the content's SHA-256 is known,
 *              u8 version=2, then as version 1, then sha256[32]    (88 bytes)
 *          (version 1 is still written without a SHA-256, so that older
 *          casfs keeps reading those; an older casfs reads a version 2
 *          record as absent, hashes the file again and writes version 1)
 *   blobs  key digest[16]
 *          val u8 version=1, u8 compression, u8 pad[6], u64 size,
 *              u64 stored, i64 created_ns, i64 last_use_ns, u64 refs (48 bytes)
 *   meta   key "totals"
 *          val u8 version=1, u8 pad[7], then the u64 fields of cache_totals
 *   actions key u8 namespace, then the caller's key bytes
 *           val the caller's bytes (versioned by their owner)
 *
 * Map size: LMDB needs a fixed map; ours starts sparse and doubles on
 * MDB_MAP_FULL up to map_max, then the writer gets -ENOSPC.  Resizing is
 * allowed only while this process has no transaction open, so every
 * transaction holds `resize` for reading and a resize takes it for writing.
 */
#include "index.h"
#include "blob.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAP_SIZE (1ull << 32) /* sparse; grows on MDB_MAP_FULL */
#define MAP_MAX (1ull << 40)

struct cache_index {
	MDB_env *env;
	MDB_dbi files, blobs, meta, actions;
	cache_store *store;
	uint64_t map_max;
	pthread_rwlock_t resize;
	pthread_mutex_t dlock;    /* deferred blob records */
	struct deferred *dq;
	size_t dn, dcap;
	struct deferred *tq;      /* deferred touches (never flushed by reads) */
	size_t tn, tcap;
	struct kv_op *kq;         /* deferred cache records (cache_index_kv_put_later) */
	size_t kn, kcap;
	void (*wake)(void *);     /* the flusher of full queues (dlock) */
	void *wake_arg;
	pthread_mutex_t kflush;   /* one batch of kq committed at a time: */
	struct kv_op *kf;         /* that batch while it commits (kv_get sees it) */
	size_t kfn;
};

struct kv_op {
	MDB_val key, val;
	bool del;
};

struct deferred {
	hasher_digest d;
	cache_blob_rec rec;
	bool put;
};

/* Deferred records are committed in one transaction once this many wait. */
#define DEFER_MAX 256

struct blob_val {
	uint8_t version;
	uint8_t compression;
	uint8_t pad[6];
	uint64_t size, stored;
	int64_t created_ns, last_use_ns;
	uint64_t refs;
};

struct totals_val {
	uint8_t version;
	uint8_t pad[7];
	cache_totals t;
};

static const char TOTALS_KEY[] = "totals";

struct file_val {
	uint8_t version;
	uint8_t pad[7];
	uint8_t digest[16];
	uint64_t size;
	int64_t mtime_ns, ctime_ns, hashed_at_ns;
};

/* Version 2: version 1 and the SHA-256. */
struct file_val2 {
	struct file_val v1;
	uint8_t sha256[HASHER_SHA256_LEN];
};
_Static_assert(sizeof(struct file_val) == 56 && sizeof(struct file_val2) == 88, "files record layout");

/* Sets the map size with no transaction of this process open. */
static int set_mapsize(cache_index *ix, uint64_t size)
{
	pthread_rwlock_wrlock(&ix->resize);
	int rc = mdb_env_set_mapsize(ix->env, size);
	pthread_rwlock_unlock(&ix->resize);
	return rc;
}

/* Begins a transaction; adopts a map grown by another process.  End it
 * with txn_end or txn_commit. */
static int txn_begin(cache_index *ix, unsigned flags, MDB_txn **ret)
{
	for (int attempt = 0;; attempt++) {
		pthread_rwlock_rdlock(&ix->resize);
		int rc = mdb_txn_begin(ix->env, NULL, flags, ret);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&ix->resize);
		if (rc != MDB_MAP_RESIZED || attempt)
			return rc;
		set_mapsize(ix, 0);
	}
}

static void txn_end(cache_index *ix, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&ix->resize);
}

static int txn_commit(cache_index *ix, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);
	pthread_rwlock_unlock(&ix->resize);
	return rc;
}

static int mdb_to_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS: return 0;
	case MDB_NOTFOUND: return -ENOENT;
	case MDB_MAP_FULL: return -ENOSPC;
	case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID: case MDB_VERSION_MISMATCH:
		return -EIO;
	case MDB_READERS_FULL: return -EAGAIN;
	default: return rc > 0 ? -rc : -EIO;
	}
}

/* LMDB maps the data file and trusts its meta page: a file cut short (a
 * copy that stopped, a damaged disk) holds fewer pages than the meta page
 * says, and the first read of a missing page is a SIGBUS in whatever
 * process opened it (fsck --repair included).  Such a file is damaged:
 * MDB_CORRUPTED, as for what LMDB detects itself. */
static int check_file_size(MDB_env *env)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_filehandle_t fd;
	struct stat fst;
	if (mdb_env_info(env, &info) || mdb_env_stat(env, &st) || mdb_env_get_fd(env, &fd) || fstat(fd, &fst) < 0)
		return 0; /* nothing to compare: LMDB's own checks stand */
	if ((uint64_t)fst.st_size < ((uint64_t)info.me_last_pgno + 1) * st.ms_psize)
		return MDB_CORRUPTED;
	return 0;
}

int cache_index_open_sized(cache_store *s, uint64_t map_size, uint64_t map_max, cache_index **ret)
{
	char path[4096];
	MDB_txn *txn = NULL;
	cache_index *ix = calloc(1, sizeof(*ix));
	int rc;
	if (!ix)
		return -ENOMEM;
	ix->store = s;
	ix->map_max = map_max ? map_max : MAP_MAX;
	pthread_rwlock_init(&ix->resize, NULL);
	pthread_mutex_init(&ix->dlock, NULL);
	pthread_mutex_init(&ix->kflush, NULL);
	snprintf(path, sizeof(path), "%s/index.lmdb", cache_store_path(s));
	if ((rc = mdb_env_create(&ix->env)) ||
	    (rc = mdb_env_set_maxdbs(ix->env, 8)) ||
	    (rc = mdb_env_set_mapsize(ix->env, map_size ? map_size : MAP_SIZE)) ||
	    (rc = mdb_env_set_maxreaders(ix->env, 510)) ||
	    (rc = mdb_env_open(ix->env, path, MDB_NOSUBDIR | MDB_NOTLS, 0644)) ||
	    (rc = check_file_size(ix->env)))
		goto fail;
	/* Free the reader slots of processes killed inside a transaction: while
	 * another process keeps the environment open (a mounted daemon), they
	 * would pin old pages and, 510 kills later, fill the reader table. */
	mdb_reader_check(ix->env, NULL);
	if ((rc = mdb_txn_begin(ix->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "files", MDB_CREATE, &ix->files)) ||
	    (rc = mdb_dbi_open(txn, "blobs", MDB_CREATE, &ix->blobs)) ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &ix->meta)) ||
	    (rc = mdb_dbi_open(txn, "actions", MDB_CREATE, &ix->actions)) ||
	    (rc = mdb_txn_commit(txn))) {
		txn = NULL;
		goto fail;
	}
	*ret = ix;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (ix->env)
		mdb_env_close(ix->env);
	pthread_rwlock_destroy(&ix->resize);
	pthread_mutex_destroy(&ix->dlock);
	pthread_mutex_destroy(&ix->kflush);
	free(ix);
	return mdb_to_errno(rc);
}

int cache_index_open(cache_store *s, cache_index **ret)
{
	return cache_index_open_sized(s, 0, 0, ret);
}

void cache_index_close(cache_index *ix)
{
	if (!ix)
		return;
	cache_index_flush(ix);
	mdb_env_close(ix->env);
	pthread_rwlock_destroy(&ix->resize);
	pthread_mutex_destroy(&ix->dlock);
	pthread_mutex_destroy(&ix->kflush);
	free(ix->dq);
	free(ix->tq);
	free(ix->kq);
	free(ix);
}

cache_store *cache_index_store(const cache_index *ix) { return ix->store; }

/* Decodes a files record into *ret: 0, or MDB_NOTFOUND for an unknown
 * version or length (treated as absent). */
static int file_from_val(const MDB_val *val, cache_file_entry *ret)
{
	struct file_val2 v;
	if (val->mv_size != sizeof(v.v1) && val->mv_size != sizeof(v))
		return MDB_NOTFOUND;
	memcpy(&v, val->mv_data, val->mv_size);
	if (v.v1.version != (val->mv_size == sizeof(v) ? 2 : 1))
		return MDB_NOTFOUND;
	memcpy(ret->rec.digest.bytes, v.v1.digest, HASHER_DIGEST_LEN);
	ret->rec.size = v.v1.size;
	ret->rec.mtime_ns = v.v1.mtime_ns;
	ret->rec.ctime_ns = v.v1.ctime_ns;
	ret->rec.hashed_at_ns = v.v1.hashed_at_ns;
	ret->has_sha256 = v.v1.version == 2;
	if (ret->has_sha256)
		memcpy(ret->sha256.bytes, v.sha256, HASHER_SHA256_LEN);
	return 0;
}

int cache_index_file_get_entry(cache_index *ix, uint64_t dev, uint64_t ino, cache_file_entry *ret)
{
	uint64_t k[2] = { dev, ino };
	MDB_val key = { sizeof(k), k }, val;
	MDB_txn *txn;
	cache_file_entry e = { .dev = dev, .ino = ino };
	int rc = txn_begin(ix, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_get(txn, ix->files, &key, &val);
	if (rc == 0) /* values live only until the transaction ends: copy out */
		rc = file_from_val(&val, &e);
	txn_end(ix, txn);
	if (rc == 0)
		*ret = e;
	return mdb_to_errno(rc);
}

int cache_index_file_get(cache_index *ix, uint64_t dev, uint64_t ino, cache_file_rec *ret)
{
	cache_file_entry e;
	int r = cache_index_file_get_entry(ix, dev, ino, &e);
	if (r == 0)
		*ret = e.rec;
	return r;
}

/* Runs fn in a write transaction, doubling the map on MDB_MAP_FULL until
 * map_max.  fn returns an MDB code, or a negative errno to abort with. */
static int write_txn(cache_index *ix, int (*fn)(MDB_txn *, cache_index *, const void *, size_t),
		     const void *arg, size_t n)
{
	for (;;) {
		MDB_txn *txn;
		int rc = txn_begin(ix, 0, &txn);
		if (rc)
			return mdb_to_errno(rc);
		rc = fn(txn, ix, arg, n);
		if (rc)
			txn_end(ix, txn);
		else
			rc = txn_commit(ix, txn);
		/* fn's own -errno; LMDB's codes are negative too (MDB_KEYEXIST to
		 * MDB_LAST_ERRCODE) and must reach the growth and mdb_to_errno */
		if (rc < 0 && (rc < MDB_KEYEXIST || rc > MDB_LAST_ERRCODE))
			return rc;
		if (rc != MDB_MAP_FULL)
			return mdb_to_errno(rc);
		MDB_envinfo info;
		mdb_env_info(ix->env, &info);
		if (info.me_mapsize >= ix->map_max ||
		    set_mapsize(ix, info.me_mapsize * 2 < ix->map_max ? info.me_mapsize * 2 : ix->map_max))
			return -ENOSPC;
	}
}

static int put_fn(MDB_txn *txn, cache_index *ix, const void *arg, size_t n)
{
	const cache_file_entry *e = arg;
	for (size_t i = 0; i < n; i++) {
		uint64_t k[2] = { e[i].dev, e[i].ino };
		struct file_val2 v = { .v1.version = e[i].has_sha256 ? 2 : 1 };
		memcpy(v.v1.digest, e[i].rec.digest.bytes, HASHER_DIGEST_LEN);
		v.v1.size = e[i].rec.size;
		v.v1.mtime_ns = e[i].rec.mtime_ns;
		v.v1.ctime_ns = e[i].rec.ctime_ns;
		v.v1.hashed_at_ns = e[i].rec.hashed_at_ns;
		if (e[i].has_sha256)
			memcpy(v.sha256, e[i].sha256.bytes, HASHER_SHA256_LEN);
		MDB_val key = { sizeof(k), k }, val = { e[i].has_sha256 ? sizeof(v) : sizeof(v.v1), &v };
		int rc = mdb_put(txn, ix->files, &key, &val, 0);
		if (rc)
			return rc;
	}
	return 0;
}

int cache_index_file_put(cache_index *ix, const cache_file_entry *e, size_t n)
{
	return n ? write_txn(ix, put_fn, e, n) : 0;
}

static int del_fn(MDB_txn *txn, cache_index *ix, const void *arg, size_t n)
{
	MDB_val key = { n, (void *)arg };
	int rc = mdb_del(txn, ix->files, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int cache_index_file_del(cache_index *ix, uint64_t dev, uint64_t ino)
{
	uint64_t k[2] = { dev, ino };
	return write_txn(ix, del_fn, k, sizeof(k));
}

bool cache_file_rec_valid(const cache_file_rec *rec, const struct stat *st)
{
	return rec->size == (uint64_t)st->st_size && rec->mtime_ns == cache_timespec_ns(&st->st_mtim) &&
	       rec->ctime_ns == cache_timespec_ns(&st->st_ctim) &&
	       rec->ctime_ns + CACHE_RACY_NS <= rec->hashed_at_ns;
}

/* ---- blobs and totals ------------------------------------------------------ */

static void blob_from_val(const MDB_val *v, cache_blob_rec *r, bool *ok)
{
	struct blob_val b;
	*ok = v->mv_size == sizeof(b);
	if (!*ok)
		return;
	memcpy(&b, v->mv_data, sizeof(b));
	*ok = b.version == 1;
	r->size = b.size;
	r->stored = b.stored;
	r->compression = b.compression;
	r->created_ns = b.created_ns;
	r->last_use_ns = b.last_use_ns;
	r->refs = b.refs;
}

static int blob_put_val(MDB_txn *txn, cache_index *ix, const hasher_digest *d, const cache_blob_rec *r)
{
	struct blob_val b = { .version = 1, .compression = r->compression, .size = r->size,
			      .stored = r->stored, .created_ns = r->created_ns,
			      .last_use_ns = r->last_use_ns, .refs = r->refs };
	MDB_val key = { HASHER_DIGEST_LEN, (void *)d->bytes }, val = { sizeof(b), &b };
	return mdb_put(txn, ix->blobs, &key, &val, 0);
}

/* Reads the record of d in txn: 0, MDB_NOTFOUND (also for an unknown layout). */
static int blob_read(MDB_txn *txn, cache_index *ix, const hasher_digest *d, cache_blob_rec *r)
{
	MDB_val key = { HASHER_DIGEST_LEN, (void *)d->bytes }, val;
	int rc = mdb_get(txn, ix->blobs, &key, &val);
	if (rc)
		return rc;
	bool ok;
	blob_from_val(&val, r, &ok);
	return ok ? 0 : MDB_NOTFOUND;
}

static int totals_read(MDB_txn *txn, cache_index *ix, cache_totals *t)
{
	MDB_val key = { sizeof(TOTALS_KEY) - 1, (void *)TOTALS_KEY }, val;
	memset(t, 0, sizeof(*t));
	int rc = mdb_get(txn, ix->meta, &key, &val);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	struct totals_val tv;
	if (val.mv_size == sizeof(tv)) {
		memcpy(&tv, val.mv_data, sizeof(tv));
		if (tv.version == 1)
			*t = tv.t;
	}
	return 0;
}

static int totals_write(MDB_txn *txn, cache_index *ix, const cache_totals *t)
{
	struct totals_val tv = { .version = 1, .t = *t };
	MDB_val key = { sizeof(TOTALS_KEY) - 1, (void *)TOTALS_KEY }, val = { sizeof(tv), &tv };
	return mdb_put(txn, ix->meta, &key, &val, 0);
}

/* A saturating subtraction: sums never wrap when records and totals
 * disagree (fsck recounts them). */
static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static int flush_adds(cache_index *ix);

int cache_index_blob_get(cache_index *ix, const hasher_digest *d, cache_blob_rec *ret)
{
	flush_adds(ix); /* this process's deferred records first (touches may wait) */
	MDB_txn *txn;
	int rc = txn_begin(ix, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = blob_read(txn, ix, d, ret);
	txn_end(ix, txn);
	return mdb_to_errno(rc);
}

struct add_arg {
	const hasher_digest *d;
	const cache_blob_rec *rec;
	bool put;
	int result;
};

static int add_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	struct add_arg *a = (struct add_arg *)varg;
	cache_blob_rec cur;
	cache_totals t;
	int rc = totals_read(txn, ix, &t);
	if (rc)
		return rc;
	rc = blob_read(txn, ix, a->d, &cur);
	if (rc == MDB_NOTFOUND && !cache_blob_present(ix, a->d)) {
		/* evicted since the caller saw it (a deferred touch or add
		 * committed after a gc in another process): a record now
		 * would point nowhere */
		a->result = -ENOENT;
		return 0;
	}
	if (rc == MDB_NOTFOUND) {
		a->result = 0;
		cur = *a->rec;
		if (!cur.refs)
			cur.refs = 1;
		t.blobs++;
		t.logical += cur.size;
		t.stored += cur.stored;
	} else if (rc) {
		return rc;
	} else {
		a->result = 1;
		if (a->rec->last_use_ns > cur.last_use_ns)
			cur.last_use_ns = a->rec->last_use_ns;
		if (a->put) {
			cur.refs++;
			t.dedup_hits++;
			t.dedup_bytes += cur.size;
		}
	}
	if ((rc = blob_put_val(txn, ix, a->d, &cur)))
		return rc;
	return totals_write(txn, ix, &t);
}

int cache_index_blob_add(cache_index *ix, const hasher_digest *d, const cache_blob_rec *rec, bool put)
{
	struct add_arg a = { d, rec, put, 0 };
	int r = write_txn(ix, add_fn, &a, 0);
	return r < 0 ? r : a.result;
}

static int adds_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	const struct deferred *q = varg;
	for (size_t i = 0; i < n; i++) {
		struct add_arg a = { &q[i].d, &q[i].rec, q[i].put, 0 };
		int rc = add_fn(txn, ix, &a, 0);
		if (rc)
			return rc;
	}
	return 0;
}

static int kv_ops_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n);
static void kv_ops_free(struct kv_op *q, size_t n);

/* Commits the deferred blob records, and with `all` the touches and cache
 * records too (in the same transaction). */
static int flush_queue(cache_index *ix, bool all)
{
	struct deferred *q;
	size_t n;
	struct kv_op *k = NULL;
	size_t kn = 0;
	if (all)
		pthread_mutex_lock(&ix->kflush);
	pthread_mutex_lock(&ix->dlock);
	if (all && ix->tn) { /* touches join the adds */
		if (ix->dn + ix->tn > ix->dcap) {
			struct deferred *nq = realloc(ix->dq, (ix->dn + ix->tn) * sizeof(*nq));
			if (nq) {
				ix->dq = nq;
				ix->dcap = ix->dn + ix->tn;
			}
		}
		if (ix->dn + ix->tn <= ix->dcap) {
			memcpy(ix->dq + ix->dn, ix->tq, ix->tn * sizeof(*ix->tq));
			ix->dn += ix->tn;
			ix->tn = 0;
		}
	}
	q = ix->dq;
	n = ix->dn;
	ix->dq = NULL;
	ix->dn = ix->dcap = 0;
	if (all) {
		k = ix->kf = ix->kq;
		kn = ix->kfn = ix->kn;
		ix->kq = NULL;
		ix->kn = ix->kcap = 0;
	}
	pthread_mutex_unlock(&ix->dlock);
	int r = n ? write_txn(ix, adds_fn, q, n) : 0;
	int rk = kn ? write_txn(ix, kv_ops_fn, k, kn) : 0;
	if (all) {
		pthread_mutex_lock(&ix->dlock);
		ix->kf = NULL;
		ix->kfn = 0;
		pthread_mutex_unlock(&ix->dlock);
		pthread_mutex_unlock(&ix->kflush);
	}
	free(q);
	kv_ops_free(k, kn);
	return r < 0 ? r : rk;
}

static int flush_adds(cache_index *ix)
{
	return flush_queue(ix, false);
}

int cache_index_flush(cache_index *ix)
{
	return flush_queue(ix, true);
}

void cache_index_set_flusher(cache_index *ix, void (*wake)(void *), void *arg)
{
	pthread_mutex_lock(&ix->dlock);
	ix->wake = wake;
	ix->wake_arg = arg;
	pthread_mutex_unlock(&ix->dlock);
}

/* A queue that is n long now (dlock held): true when the queuing thread
 * commits it itself; else the flusher is woken when it just became full. */
static bool full_queue(cache_index *ix, size_t n)
{
	if (n < DEFER_MAX)
		return false;
	if (!ix->wake || n >= CACHE_DEFER_HARD)
		return true;
	if (n == DEFER_MAX)
		ix->wake(ix->wake_arg);
	return false;
}

static int defer(cache_index *ix, bool touch, const hasher_digest *d, const cache_blob_rec *rec, bool put)
{
	pthread_mutex_lock(&ix->dlock);
	struct deferred **q = touch ? &ix->tq : &ix->dq;
	size_t *n = touch ? &ix->tn : &ix->dn, *cap = touch ? &ix->tcap : &ix->dcap;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct deferred *nq = realloc(*q, nc * sizeof(*nq));
		if (!nq) {
			pthread_mutex_unlock(&ix->dlock);
			return cache_index_blob_add(ix, d, rec, put) < 0 ? -ENOMEM : 0;
		}
		*q = nq;
		*cap = nc;
	}
	(*q)[(*n)++] = (struct deferred){ *d, *rec, put };
	bool full = full_queue(ix, *n);
	pthread_mutex_unlock(&ix->dlock);
	return full ? flush_queue(ix, touch) : 0;
}

int cache_index_blob_add_later(cache_index *ix, const hasher_digest *d, const cache_blob_rec *rec, bool put)
{
	return defer(ix, false, d, rec, put);
}

int cache_index_blob_touch_later(cache_index *ix, const hasher_digest *d, const cache_blob_rec *rec)
{
	cache_blob_rec cur;
	MDB_txn *txn;
	int rc = txn_begin(ix, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = blob_read(txn, ix, d, &cur);
	txn_end(ix, txn);
	if (rc == 0 && rec->last_use_ns - cur.last_use_ns < CACHE_TOUCH_NS)
		return 0;
	return defer(ix, true, d, rec, false);
}

struct touch_arg {
	const hasher_digest *d;
	int64_t now;
};

static int touch_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	const struct touch_arg *a = varg;
	cache_blob_rec cur;
	int rc = blob_read(txn, ix, a->d, &cur);
	if (rc)
		return rc;
	cur.last_use_ns = a->now;
	return blob_put_val(txn, ix, a->d, &cur);
}

int cache_index_blob_touch(cache_index *ix, const hasher_digest *d, int64_t now_ns)
{
	cache_blob_rec cur;
	int r = cache_index_blob_get(ix, d, &cur);
	if (r < 0)
		return r;
	if (now_ns - cur.last_use_ns < CACHE_TOUCH_NS)
		return 0;
	struct touch_arg a = { d, now_ns };
	return write_txn(ix, touch_fn, &a, 0);
}

struct del_arg {
	const hasher_digest *d;
	int64_t expect;
	enum cache_del_reason why;
};

static int blob_del_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	const struct del_arg *a = varg;
	cache_blob_rec cur;
	cache_totals t;
	int rc = a->d ? blob_read(txn, ix, a->d, &cur) : MDB_NOTFOUND;
	if (rc == MDB_NOTFOUND && a->why == CACHE_DEL_CORRUPT) {
		memset(&cur, 0, sizeof(cur)); /* count it all the same */
	} else if (rc) {
		return rc;
	} else {
		if (a->expect >= 0 && cur.last_use_ns != a->expect)
			return -EBUSY;
		MDB_val key = { HASHER_DIGEST_LEN, (void *)a->d->bytes };
		if ((rc = mdb_del(txn, ix->blobs, &key, NULL)))
			return rc;
	}
	if ((rc = totals_read(txn, ix, &t)))
		return rc;
	if (cur.stored || cur.size) {
		t.blobs = sub_sat(t.blobs, 1);
		t.logical = sub_sat(t.logical, cur.size);
		t.stored = sub_sat(t.stored, cur.stored);
	}
	if (a->why == CACHE_DEL_EVICT) {
		t.evictions++;
		t.evicted_bytes += cur.stored;
	} else if (a->why == CACHE_DEL_CORRUPT) {
		t.corrupt++;
	}
	return totals_write(txn, ix, &t);
}

int cache_index_blob_del(cache_index *ix, const hasher_digest *d, int64_t expect_last_use,
			 enum cache_del_reason why)
{
	cache_index_flush(ix);
	struct del_arg a = { d, expect_last_use, why };
	return write_txn(ix, blob_del_fn, &a, 0);
}

int cache_index_count_corrupt(cache_index *ix)
{
	struct del_arg a = { NULL, -1, CACHE_DEL_CORRUPT };
	return write_txn(ix, blob_del_fn, &a, 0);
}

int cache_index_blob_list(cache_index *ix, cache_blob_entry **ret, size_t *n)
{
	cache_index_flush(ix); /* this process's deferred records first */
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val key, val;
	size_t cap = 0, len = 0;
	cache_blob_entry *v = NULL;
	int rc = txn_begin(ix, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	if ((rc = mdb_cursor_open(txn, ix->blobs, &cur))) {
		txn_end(ix, txn);
		return mdb_to_errno(rc);
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		bool ok;
		cache_blob_entry e;
		if (key.mv_size != HASHER_DIGEST_LEN)
			continue;
		blob_from_val(&val, &e.rec, &ok);
		if (!ok)
			continue;
		memcpy(e.digest.bytes, key.mv_data, HASHER_DIGEST_LEN);
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			cache_blob_entry *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				rc = ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[len++] = e;
	}
	mdb_cursor_close(cur);
	txn_end(ix, txn);
	if (rc != MDB_NOTFOUND) {
		free(v);
		return mdb_to_errno(rc);
	}
	*ret = v;
	*n = len;
	return 0;
}

int cache_index_totals(cache_index *ix, cache_totals *ret)
{
	cache_index_flush(ix); /* this process's deferred records first */
	MDB_txn *txn;
	int rc = txn_begin(ix, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = totals_read(txn, ix, ret);
	txn_end(ix, txn);
	return mdb_to_errno(rc);
}

static int sums_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	const uint64_t *v = varg;
	cache_totals t;
	int rc = totals_read(txn, ix, &t);
	if (rc)
		return rc;
	if (n == 3) {
		t.blobs = v[0];
		t.logical = v[1];
		t.stored = v[2];
	} else {
		t.max_size = v[0];
	}
	return totals_write(txn, ix, &t);
}

int cache_index_set_sums(cache_index *ix, uint64_t blobs, uint64_t logical, uint64_t stored)
{
	cache_index_flush(ix);
	uint64_t v[3] = { blobs, logical, stored };
	return write_txn(ix, sums_fn, v, 3);
}

int cache_index_set_max_size(cache_index *ix, uint64_t max_size)
{
	return write_txn(ix, sums_fn, &max_size, 1);
}

uint64_t cache_totals_max_size(const cache_totals *t)
{
	return t->max_size ? t->max_size : CACHE_DEFAULT_MAX_SIZE;
}

/* ---- key/value records -------------------------------------------------------- */

/* The stored key: namespace byte, then the caller's.  0 or -EINVAL. */
static int kv_key(char ns, const void *key, size_t klen, uint8_t buf[CACHE_KV_KEY_MAX + 1], MDB_val *ret)
{
	if (!klen || klen > CACHE_KV_KEY_MAX)
		return -EINVAL;
	buf[0] = (uint8_t)ns;
	memcpy(buf + 1, key, klen);
	*ret = (MDB_val){ klen + 1, buf };
	return 0;
}

int cache_index_kv_get(cache_index *ix, char ns, const void *key, size_t klen, void **ret_val,
		       size_t *ret_len)
{
	uint8_t kb[CACHE_KV_KEY_MAX + 1];
	MDB_val k, v;
	MDB_txn *txn;
	int rc = kv_key(ns, key, klen, kb, &k);
	if (rc < 0)
		return rc;
	/* this process's deferred records first, newest first: the batch
	 * waiting, then the one committing */
	pthread_mutex_lock(&ix->dlock);
	const struct kv_op *op = NULL;
	for (size_t i = ix->kn; !op && i-- > 0;)
		if (ix->kq[i].key.mv_size == k.mv_size && !memcmp(ix->kq[i].key.mv_data, k.mv_data, k.mv_size))
			op = &ix->kq[i];
	for (size_t i = ix->kfn; !op && i-- > 0;)
		if (ix->kf[i].key.mv_size == k.mv_size && !memcmp(ix->kf[i].key.mv_data, k.mv_data, k.mv_size))
			op = &ix->kf[i];
	if (op) {
		void *copy = op->del ? NULL : malloc(op->val.mv_size ? op->val.mv_size : 1);
		rc = op->del ? -ENOENT : copy ? 0 : -ENOMEM;
		if (copy) {
			memcpy(copy, op->val.mv_data, op->val.mv_size);
			*ret_val = copy;
			*ret_len = op->val.mv_size;
		}
		pthread_mutex_unlock(&ix->dlock);
		return rc;
	}
	pthread_mutex_unlock(&ix->dlock);
	if ((rc = txn_begin(ix, MDB_RDONLY, &txn)))
		return mdb_to_errno(rc);
	rc = mdb_get(txn, ix->actions, &k, &v);
	if (rc == 0) {
		/* values live only until the transaction ends: copy out */
		void *copy = malloc(v.mv_size ? v.mv_size : 1);
		if (!copy) {
			txn_end(ix, txn);
			return -ENOMEM;
		}
		memcpy(copy, v.mv_data, v.mv_size);
		*ret_val = copy;
		*ret_len = v.mv_size;
	}
	txn_end(ix, txn);
	return mdb_to_errno(rc);
}


static int kv_op_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	const struct kv_op *op = varg;
	MDB_val key = op->key, val = op->val;
	return op->del ? mdb_del(txn, ix->actions, &key, NULL) : mdb_put(txn, ix->actions, &key, &val, 0);
}

static int kv_ops_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	const struct kv_op *q = varg;
	for (size_t i = 0; i < n; i++) {
		int rc = kv_op_fn(txn, ix, &q[i], 0);
		if (rc && !(rc == MDB_NOTFOUND && q[i].del)) /* gone already */
			return rc;
	}
	return 0;
}

static void kv_ops_free(struct kv_op *q, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(q[i].key.mv_data);
		free(q[i].val.mv_data);
	}
	free(q);
}

/* Queues a put (or with del, a removal) of a record for the next flush. */
static int kv_later(cache_index *ix, char ns, const void *key, size_t klen, const void *val, size_t vlen,
		    bool del)
{
	uint8_t kb[CACHE_KV_KEY_MAX + 1];
	struct kv_op op = { .val = { vlen, NULL }, .del = del };
	int rc = kv_key(ns, key, klen, kb, &op.key);
	if (rc < 0)
		return rc;
	void *kc = malloc(op.key.mv_size), *vc = malloc(vlen ? vlen : 1);
	if (!kc || !vc) {
		free(kc);
		free(vc);
		return -ENOMEM;
	}
	memcpy(kc, op.key.mv_data, op.key.mv_size);
	if (vlen)
		memcpy(vc, val, vlen);
	op.key.mv_data = kc;
	op.val.mv_data = vc;
	pthread_mutex_lock(&ix->dlock);
	if (ix->kn == ix->kcap) {
		size_t nc = ix->kcap ? ix->kcap * 2 : 64;
		struct kv_op *nq = realloc(ix->kq, nc * sizeof(*nq));
		if (!nq) {
			pthread_mutex_unlock(&ix->dlock);
			free(kc);
			free(vc);
			return -ENOMEM;
		}
		ix->kq = nq;
		ix->kcap = nc;
	}
	ix->kq[ix->kn++] = op;
	bool full = full_queue(ix, ix->kn);
	pthread_mutex_unlock(&ix->dlock);
	return full ? cache_index_flush(ix) : 0;
}

int cache_index_kv_put_later(cache_index *ix, char ns, const void *key, size_t klen, const void *val,
			     size_t vlen)
{
	return kv_later(ix, ns, key, klen, val, vlen, false);
}

int cache_index_kv_del_later(cache_index *ix, char ns, const void *key, size_t klen)
{
	return kv_later(ix, ns, key, klen, NULL, 0, true);
}

int cache_index_kv_put(cache_index *ix, char ns, const void *key, size_t klen, const void *val,
		       size_t vlen)
{
	uint8_t kb[CACHE_KV_KEY_MAX + 1];
	struct kv_op op = { .val = { vlen, (void *)val } };
	int rc = kv_key(ns, key, klen, kb, &op.key);
	return rc < 0 ? rc : write_txn(ix, kv_op_fn, &op, 0);
}

int cache_index_kv_del(cache_index *ix, char ns, const void *key, size_t klen)
{
	uint8_t kb[CACHE_KV_KEY_MAX + 1];
	struct kv_op op = { .del = true };
	int rc = kv_key(ns, key, klen, kb, &op.key);
	return rc < 0 ? rc : write_txn(ix, kv_op_fn, &op, 0);
}

/* Records visited per read transaction (and verdicts per write). */
#define KV_BATCH 64

struct kv_item {
	MDB_val key, val;  /* malloc'd copies; key with the namespace byte */
	int verdict;
	void *nval;        /* CACHE_KV_REPLACE */
	size_t nlen;
};

/* Reads up to KV_BATCH records of ns after `after` (NULL: from the start)
 * into items.  Returns how many, or -errno. */
static int kv_read_batch(cache_index *ix, char ns, const MDB_val *after, struct kv_item *items)
{
	uint8_t first = (uint8_t)ns;
	MDB_val k = after ? *after : (MDB_val){ 1, &first }, v;
	MDB_txn *txn;
	MDB_cursor *cur;
	int n = 0, rc = txn_begin(ix, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	if ((rc = mdb_cursor_open(txn, ix->actions, &cur))) {
		txn_end(ix, txn);
		return mdb_to_errno(rc);
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && after && k.mv_size == after->mv_size && memcmp(k.mv_data, after->mv_data, k.mv_size) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; rc == 0 && n < KV_BATCH; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 2 || ((uint8_t *)k.mv_data)[0] != first) {
			rc = MDB_NOTFOUND; /* past the namespace */
			break;
		}
		struct kv_item *it = &items[n];
		*it = (struct kv_item){ .key = { k.mv_size, malloc(k.mv_size) },
					.val = { v.mv_size, malloc(v.mv_size ? v.mv_size : 1) } };
		n++;
		if (!it->key.mv_data || !it->val.mv_data) {
			rc = ENOMEM;
			break;
		}
		memcpy(it->key.mv_data, k.mv_data, k.mv_size);
		memcpy(it->val.mv_data, v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	txn_end(ix, txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		for (int i = 0; i < n; i++) {
			free(items[i].key.mv_data);
			free(items[i].val.mv_data);
		}
		return mdb_to_errno(rc);
	}
	return n;
}

/* Applies the verdicts of n items, each only to a record that still holds
 * the value its visitor saw. */
static int kv_apply_fn(MDB_txn *txn, cache_index *ix, const void *varg, size_t n)
{
	const struct kv_item *items = varg;
	for (size_t i = 0; i < n; i++) {
		const struct kv_item *it = &items[i];
		if (it->verdict != CACHE_KV_DELETE && it->verdict != CACHE_KV_REPLACE)
			continue;
		MDB_val k = it->key, cur;
		int rc = mdb_get(txn, ix->actions, &k, &cur);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc)
			return rc;
		if (cur.mv_size != it->val.mv_size || memcmp(cur.mv_data, it->val.mv_data, cur.mv_size) != 0)
			continue; /* rewritten since: theirs stands */
		MDB_val nv = { it->nlen, it->nval };
		rc = it->verdict == CACHE_KV_DELETE ? mdb_del(txn, ix->actions, &k, NULL)
						    : mdb_put(txn, ix->actions, &k, &nv, 0);
		if (rc)
			return rc;
	}
	return 0;
}

int cache_index_kv_each(cache_index *ix, char ns, cache_kv_fn fn, void *arg)
{
	struct kv_item items[KV_BATCH];
	uint8_t last[CACHE_KV_KEY_MAX + 1];
	MDB_val after = { 0, last };
	bool started = false, stop = false;
	int err = 0;
	while (!stop) {
		int n = kv_read_batch(ix, ns, started ? &after : NULL, items);
		if (n <= 0)
			return n;
		int visited = 0;
		for (; visited < n && !stop; visited++) {
			struct kv_item *it = &items[visited];
			int v = fn(arg, (uint8_t *)it->key.mv_data + 1, it->key.mv_size - 1, it->val.mv_data,
				   it->val.mv_size, &it->nval, &it->nlen);
			it->verdict = v;
			if (v < 0) {
				err = v;
				stop = true;
			} else if (v == CACHE_KV_STOP) {
				stop = true;
			}
		}
		int r = write_txn(ix, kv_apply_fn, items, (size_t)visited);
		if (!err && r < 0)
			err = r;
		stop = stop || err || n < KV_BATCH;
		after.mv_size = items[n - 1].key.mv_size;
		memcpy(last, items[n - 1].key.mv_data, after.mv_size);
		started = true;
		for (int i = 0; i < n; i++) {
			free(items[i].key.mv_data);
			free(items[i].val.mv_data);
			if (items[i].verdict == CACHE_KV_REPLACE)
				free(items[i].nval);
		}
	}
	return err;
}
