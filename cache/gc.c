/* gc.c — LRU eviction and fsck of a store; see gc.h. */
#include "gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"

/* ---- gc ------------------------------------------------------------------------- */

static int by_last_use(const void *a, const void *b)
{
	const cache_blob_entry *x = a, *y = b;
	if (x->rec.last_use_ns != y->rec.last_use_ns)
		return x->rec.last_use_ns < y->rec.last_use_ns ? -1 : 1;
	return memcmp(x->digest.bytes, y->digest.bytes, HASHER_DIGEST_LEN);
}

static int open_dir_at(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Removes one blob unless it is in use or was used since `e` was read.
 * 1 removed, 2 only its record dropped (the blob was gone), 0 skipped
 * (busy), -errno. */
static int evict(cache_index *ix, const cache_blob_entry *e)
{
	char dir[3], name[HASHER_HEX_LEN + 1];
	cache_blob_names(&e->digest, dir, name);
	int dfd = open_dir_at(cache_store_objects_fd(cache_index_store(ix)), dir);
	int fd = dfd < 0 ? -1 : openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e_open = errno;
		if (dfd >= 0)
			close(dfd);
		if (e_open != ENOENT)
			return 0; /* not known to be gone: keep the record, skip it */
		/* a record without its blob: drop the record; its bytes leave
		 * the totals, so they count toward the target like an eviction */
		int r = cache_index_blob_del(ix, &e->digest, e->rec.last_use_ns, CACHE_DEL_STALE);
		if (r == -EBUSY)
			return 0;
		return r < 0 && r != -ENOENT ? r : 2;
	}
	int r = 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		/* record first: a crash in between leaves a blob that is adopted,
		 * never a record that points nowhere */
		r = cache_index_blob_del(ix, &e->digest, e->rec.last_use_ns, CACHE_DEL_EVICT);
		if (r == 0) {
			unlinkat(dfd, name, 0);
			r = 1;
		} else if (r == -EBUSY || r == -ENOENT) {
			r = 0;
		}
	}
	close(fd);
	close(dfd);
	return r;
}

int cache_gc(cache_index *ix, uint64_t max_size, bool wait, cache_progress_fn progress, void *arg,
	     cache_gc_result *ret)
{
	cache_totals t;
	cache_blob_entry *v = NULL;
	size_t n = 0;
	int r;
	memset(ret, 0, sizeof(*ret));
	int lock = openat(cache_store_dirfd(cache_index_store(ix)), "gc.lock",
			  O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (lock < 0)
		return -errno;
	if (flock(lock, wait ? LOCK_EX : LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(lock);
		return r;
	}
	if ((r = cache_index_totals(ix, &t)) < 0)
		goto out;
	ret->limit = max_size ? max_size : cache_totals_max_size(&t);
	ret->before = ret->after = t.stored;
	if (t.stored <= ret->limit)
		goto out;
	uint64_t target = ret->limit / 10 * 9, stored = t.stored;
	if ((r = cache_index_blob_list(ix, &v, &n)) < 0)
		goto out;
	qsort(v, n, sizeof(*v), by_last_use);
	for (size_t i = 0; i < n && stored > target; i++) {
		r = evict(ix, &v[i]);
		if (r < 0)
			goto out;
		if (r == 0) {
			ret->busy++;
			continue;
		}
		if (r == 1) {
			ret->evicted++;
			ret->evicted_bytes += v[i].rec.stored;
		}
		stored = v[i].rec.stored < stored ? stored - v[i].rec.stored : 0;
		if (progress) {
			/* the last blob usually takes the store past the target:
			 * done never exceeds total */
			uint64_t freed = t.stored - stored, want = t.stored - target;
			progress(freed < want ? freed : want, want, arg);
		}
	}
	r = 0;
	if (cache_index_totals(ix, &t) == 0)
		ret->after = t.stored;
out:
	free(v);
	close(lock);
	return r;
}

/* ---- fsck ----------------------------------------------------------------------- */

struct fsck {
	cache_index *ix;
	bool repair;
	cache_fsck_report_fn report;
	cache_progress_fn progress;
	void *arg;
	cache_fsck_result *res;
	uint64_t done, total;
	int quarantine_fd;
};

static void report(struct fsck *f, const char *kind, const char *dir, const char *name, const char *why)
{
	char path[512];
	snprintf(path, sizeof(path), "%s%s%s", dir, *dir && *name ? "/" : "", name);
	if (f->report)
		f->report(kind, path, why, f->arg);
}

/* The entry's type, asking the filesystem when the dirent does not say. */
static unsigned char entry_type(int dfd, const struct dirent *e)
{
	struct stat st;
	if (e->d_type != DT_UNKNOWN)
		return e->d_type;
	if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_UNKNOWN;
}

/* A temp file nobody holds (its writer is gone) is removed. */
static void check_temp(struct fsck *f, int dfd, const char *dir, const char *name)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	bool stray = flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
		     /* a writer between create and flock */
		     !(st.st_size == 0 && cache_now_ns() - cache_timespec_ns(&st.st_mtim) < 5000000000LL);
	if (stray && unlinkat(dfd, name, 0) == 0) {
		f->res->temps_removed++;
		report(f, "temp", dir, name, "stray temp file of a killed writer (removed)");
	}
	close(fd);
}

static void move_to_quarantine(struct fsck *f, int dfd, const char *name)
{
	char q[300];
	snprintf(q, sizeof(q), "%s.%lld", name, (long long)cache_now_ns());
	if (f->quarantine_fd >= 0 && renameat(dfd, name, f->quarantine_fd, q) == 0)
		f->res->repaired++;
}

static void check_blob(struct fsck *f, int dfd, const char *dir, const char *name)
{
	hasher_digest d;
	cache_blob_header h;
	const char *why;
	if (hasher_digest_from_hex(name, HASHER_HEX_LEN, &d) < 0)
		return;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return; /* evicted meanwhile */
	flock(fd, LOCK_SH);
	int r = cache_blob_verify_fd(fd, &d, &h, &why);
	struct stat st;
	bool gone = fstat(fd, &st) == 0 && st.st_nlink == 0;
	close(fd);
	if (gone)
		return;
	if (r == -EBADMSG || r == -EPROTO) {
		f->res->corrupt++;
		report(f, "corrupt", dir, name, why ? why : "invalid");
		if (f->repair && cache_blob_quarantine(f->ix, &d) == 0)
			f->res->repaired++;
		return;
	}
	if (r < 0) {
		f->res->corrupt++;
		report(f, "corrupt", dir, name, strerror(-r));
		return;
	}
	f->res->blobs_ok++;
	cache_blob_rec rec;
	uint64_t file_bytes = h.payload_off + h.stored;
	r = cache_index_blob_get(f->ix, &d, &rec);
	if (r == -ENOENT) {
		/* published by a writer killed before it recorded the blob */
		int64_t now = cache_now_ns();
		cache_blob_rec nrec = { .size = h.size, .stored = file_bytes, .compression = h.compression,
					.created_ns = now, .last_use_ns = now, .refs = 1 };
		if (cache_index_blob_add(f->ix, &d, &nrec, false) >= 0)
			f->res->adopted++;
	} else if (r == 0 && (rec.size != h.size || rec.stored != file_bytes || rec.compression != h.compression)) {
		f->res->mismatched++;
		report(f, "mismatch", dir, name, "index record disagrees with the blob's header");
		if (f->repair) {
			cache_blob_rec nrec = rec;
			nrec.size = h.size;
			nrec.stored = file_bytes;
			nrec.compression = h.compression;
			if (cache_index_blob_del(f->ix, &d, -1, CACHE_DEL_STALE) == 0 &&
			    cache_index_blob_add(f->ix, &d, &nrec, false) >= 0)
				f->res->repaired++;
		}
	}
}

static int walk_fanout(struct fsck *f, int objects, const char *dir)
{
	int dfd = open_dir_at(objects, dir);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -ENOMEM;
	}
	char path[16] = "objects/";
	memcpy(path + 8, dir, 3);
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		unsigned char type = entry_type(dirfd(d), e);
		if (!strncmp(e->d_name, ".tmp-", 5)) {
			check_temp(f, dirfd(d), path, e->d_name);
		} else if (strlen(e->d_name) == HASHER_HEX_LEN && hasher_hex_is_lower(e->d_name, HASHER_HEX_LEN) &&
			   !strncmp(e->d_name, dir, 2) && type == DT_REG) {
			check_blob(f, dirfd(d), path, e->d_name);
			if (f->progress)
				f->progress(++f->done, f->total, f->arg);
		} else {
			f->res->unknown++;
			report(f, "unknown", path, e->d_name, "not a blob of this store");
			if (f->repair && type != DT_DIR)
				move_to_quarantine(f, dirfd(d), e->d_name);
		}
	}
	closedir(d);
	return 0;
}

static uint64_t count_entries(int objects, const char *dir)
{
	uint64_t n = 0;
	int dfd = open_dir_at(objects, dir);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Temp files directly in a directory (objects/, tmp/). */
static void sweep_temps(struct fsck *f, int dirfd_, const char *path, bool only_temps)
{
	int dfd = fcntl(dirfd_, F_DUPFD_CLOEXEC, 3);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	rewinddir(d);
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!only_temps || !strncmp(e->d_name, ".tmp-", 5))
			check_temp(f, dirfd(d), path, e->d_name);
	}
	closedir(d);
}

int cache_fsck(cache_index *ix, bool repair, cache_fsck_report_fn report_fn,
	       cache_progress_fn progress, void *arg, cache_fsck_result *ret)
{
	cache_store *s = cache_index_store(ix);
	int objects = cache_store_objects_fd(s);
	struct fsck f = { ix, repair, report_fn, progress, arg, ret, 0, 0, -1 };
	memset(ret, 0, sizeof(*ret));
	f.quarantine_fd = open_dir_at(cache_store_dirfd(s), "quarantine");
	ret->quarantined = f.quarantine_fd >= 0 ? count_entries(cache_store_dirfd(s), "quarantine") : 0;

	/* the fan-out directories, counted first for the progress bar */
	char fan[256][3];
	int nfan = 0;
	int dfd = fcntl(objects, F_DUPFD_CLOEXEC, 3);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		int e = dfd < 0 ? -errno : -ENOMEM;
		if (dfd >= 0)
			close(dfd);
		if (f.quarantine_fd >= 0)
			close(f.quarantine_fd);
		return e;
	}
	rewinddir(d);
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strncmp(e->d_name, ".tmp-", 5))
			continue;
		unsigned char type = entry_type(objects, e);
		if (strlen(e->d_name) == 2 && hasher_hex_is_lower(e->d_name, 2) && type == DT_DIR && nfan < 256) {
			memcpy(fan[nfan++], e->d_name, 3);
		} else {
			ret->unknown++;
			report(&f, "unknown", "objects", e->d_name, "not a blob directory of this store");
			if (repair && type != DT_DIR)
				move_to_quarantine(&f, objects, e->d_name);
		}
	}
	closedir(d);
	for (int i = 0; i < nfan; i++)
		f.total += count_entries(objects, fan[i]);

	sweep_temps(&f, objects, "objects", true);
	sweep_temps(&f, cache_store_tmp_fd(s), "tmp", false);
	for (int i = 0; i < nfan; i++)
		walk_fanout(&f, objects, fan[i]);

	/* records whose blob is gone */
	cache_blob_entry *v;
	size_t n;
	int r = cache_index_blob_list(ix, &v, &n);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		char dir[3], name[HASHER_HEX_LEN + 1];
		struct stat st;
		cache_blob_names(&v[i].digest, dir, name);
		int fd = open_dir_at(objects, dir);
		bool present = fd >= 0 && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
		if (fd >= 0)
			close(fd);
		if (present)
			continue;
		ret->missing++;
		char path[64];
		snprintf(path, sizeof(path), "objects/%s", dir);
		report(&f, "missing", path, name, "index record without a blob");
		if (repair && cache_index_blob_del(ix, &v[i].digest, -1, CACHE_DEL_STALE) == 0)
			ret->repaired++;
	}
	free(v);

	/* totals against the records (after the repairs above) */
	if ((r = cache_index_blob_list(ix, &v, &n)) < 0)
		goto out;
	uint64_t logical = 0, stored = 0;
	for (size_t i = 0; i < n; i++) {
		logical += v[i].rec.size;
		stored += v[i].rec.stored;
	}
	free(v);
	cache_totals t;
	if ((r = cache_index_totals(ix, &t)) < 0)
		goto out;
	if (t.blobs != n || t.logical != logical || t.stored != stored) {
		char why[160];
		snprintf(why, sizeof(why), "totals say %llu blobs/%llu bytes, records %zu/%llu",
			 (unsigned long long)t.blobs, (unsigned long long)t.stored, n, (unsigned long long)stored);
		ret->totals_wrong = 1;
		report(&f, "totals", "index.lmdb", "", why);
		if (repair && cache_index_set_sums(ix, n, logical, stored) == 0)
			ret->repaired++;
	}
	r = 0;
out:
	if (f.quarantine_fd >= 0)
		close(f.quarantine_fd);
	return r;
}

uint64_t cache_fsck_problems(const cache_fsck_result *r)
{
	uint64_t all = r->corrupt + r->unknown + r->missing + r->mismatched + r->totals_wrong;
	return all > r->repaired ? all - r->repaired : 0;
}
