/* index.c — LMDB-backed index; see index.h.
 *
 * files record (little-endian host layout, 56 bytes, version byte first):
 *   u8 version=1, u8 pad[7], digest[16], u64 size, i64 mtime_ns,
 *   i64 ctime_ns, i64 hashed_at_ns
 * key: u64 dev, u64 ino
 */
#include "index.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_SIZE (1ull << 32) /* sparse; grows on MDB_MAP_FULL */

struct cache_index {
	MDB_env *env;
	MDB_dbi files;
};

struct file_val {
	uint8_t version;
	uint8_t pad[7];
	uint8_t digest[16];
	uint64_t size;
	int64_t mtime_ns, ctime_ns, hashed_at_ns;
};

/* Begins a transaction; adopts a map grown by another process. */
static int txn_begin(cache_index *ix, unsigned flags, MDB_txn **ret)
{
	int rc = mdb_txn_begin(ix->env, NULL, flags, ret);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(ix->env, 0);
		rc = mdb_txn_begin(ix->env, NULL, flags, ret);
	}
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

int64_t cache_timespec_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

int cache_index_open(cache_store *s, cache_index **ret)
{
	char path[4096];
	MDB_txn *txn = NULL;
	cache_index *ix = calloc(1, sizeof(*ix));
	int rc;
	if (!ix)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/index.lmdb", cache_store_path(s));
	if ((rc = mdb_env_create(&ix->env)) ||
	    (rc = mdb_env_set_maxdbs(ix->env, 8)) ||
	    (rc = mdb_env_set_mapsize(ix->env, MAP_SIZE)) ||
	    (rc = mdb_env_set_maxreaders(ix->env, 510)) ||
	    (rc = mdb_env_open(ix->env, path, MDB_NOSUBDIR | MDB_NOTLS, 0644)))
		goto fail;
	if ((rc = mdb_txn_begin(ix->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "files", MDB_CREATE, &ix->files)) ||
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
	free(ix);
	return mdb_to_errno(rc);
}

void cache_index_close(cache_index *ix)
{
	if (!ix)
		return;
	mdb_env_close(ix->env);
	free(ix);
}

int cache_index_file_get(cache_index *ix, uint64_t dev, uint64_t ino, cache_file_rec *ret)
{
	uint64_t k[2] = { dev, ino };
	MDB_val key = { sizeof(k), k }, val;
	MDB_txn *txn;
	int rc = txn_begin(ix, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_get(txn, ix->files, &key, &val);
	if (rc == 0) {
		/* values live only until the transaction ends: copy out */
		struct file_val v;
		if (val.mv_size != sizeof(v)) {
			rc = MDB_NOTFOUND; /* unknown layout: treat as absent */
		} else {
			memcpy(&v, val.mv_data, sizeof(v));
			if (v.version != 1) {
				rc = MDB_NOTFOUND;
			} else {
				memcpy(ret->digest.bytes, v.digest, 16);
				ret->size = v.size;
				ret->mtime_ns = v.mtime_ns;
				ret->ctime_ns = v.ctime_ns;
				ret->hashed_at_ns = v.hashed_at_ns;
			}
		}
	}
	mdb_txn_abort(txn);
	return mdb_to_errno(rc);
}

/* Runs fn in a write transaction, growing the map once on MDB_MAP_FULL. */
static int write_txn(cache_index *ix, int (*fn)(MDB_txn *, cache_index *, const void *, size_t),
		     const void *arg, size_t n)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		MDB_txn *txn;
		int rc = txn_begin(ix, 0, &txn);
		if (rc)
			return mdb_to_errno(rc);
		rc = fn(txn, ix, arg, n);
		if (rc) {
			mdb_txn_abort(txn);
		} else {
			rc = mdb_txn_commit(txn);
		}
		if (rc != MDB_MAP_FULL || attempt)
			return mdb_to_errno(rc);
		MDB_envinfo info;
		mdb_env_info(ix->env, &info);
		if (mdb_env_set_mapsize(ix->env, info.me_mapsize * 2))
			return -ENOSPC;
	}
	return -ENOSPC;
}

static int put_fn(MDB_txn *txn, cache_index *ix, const void *arg, size_t n)
{
	const cache_file_entry *e = arg;
	for (size_t i = 0; i < n; i++) {
		uint64_t k[2] = { e[i].dev, e[i].ino };
		struct file_val v = { .version = 1 };
		memcpy(v.digest, e[i].rec.digest.bytes, 16);
		v.size = e[i].rec.size;
		v.mtime_ns = e[i].rec.mtime_ns;
		v.ctime_ns = e[i].rec.ctime_ns;
		v.hashed_at_ns = e[i].rec.hashed_at_ns;
		MDB_val key = { sizeof(k), k }, val = { sizeof(v), &v };
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
