/* Unit tests for fs/digest.c: the hash-on-write state machine, driven
 * through its API the way the fs layer drives it, over a real inode table
 * of a temporary directory, real files and a real store index.
 *
 * Oracles: the hasher's digest of the bytes the test wrote (kept in
 * memory) or read back from the file, and the module's counters (which
 * path produced a digest, how many bytes it read).
 *
 * Waits for the background rehash worker are on a condition variable,
 * bounded only by the test's meson timeout.  The randomized chunk sizes
 * print their seed; CASFS_TEST_SEED=<n> replays one. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "digest.h"
#include "test_rng.h"

/* ---- events heard by a subscriber ------------------------------------------ */

#define MAX_EVENTS 64

struct event {
	bool gone;
	bool written;
	uint64_t dev, ino;
	hasher_digest digest;
	int peek_rc;          /* digests_peek from inside `known` */
	hasher_digest peeked;
};

struct recorder {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	digests *d;
	int n;
	struct event ev[MAX_EVENTS];
};

static void on_known(void *arg, ino_node *n, const cache_file_rec *rec, bool written)
{
	struct recorder *r = arg;
	struct event e = { .written = written, .dev = n->dev, .ino = n->ino, .digest = rec->digest };
	/* called with no lock of the module held: peeking must not deadlock */
	cache_file_rec p;
	uint64_t version;
	e.peek_rc = digests_peek(r->d, n, &p, &version);
	e.peeked = p.digest;
	pthread_mutex_lock(&r->lock);
	if (r->n < MAX_EVENTS)
		r->ev[r->n++] = e;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void on_gone(void *arg, uint64_t dev, uint64_t ino, const hasher_digest *d)
{
	struct recorder *r = arg;
	pthread_mutex_lock(&r->lock);
	if (r->n < MAX_EVENTS)
		r->ev[r->n++] = (struct event){ .gone = true, .dev = dev, .ino = ino, .digest = *d };
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* ---- fixture: a directory, its inode table, a store, the digests ------------ */

struct fx {
	char dir[64];        /* temp dir: tree/ (the backing root) and store/ */
	int tree;            /* fd of dir/tree */
	int proc_fd;
	ino_table *t;
	cache_store *store;
	cache_index *ix;
	digests *d;
	struct recorder rec;
};

static void fx_start(struct fx *f)
{
	assert_int_equal(ino_table_new(f->tree, false, 0, &f->t), 0);
	assert_int_equal(cache_index_open(f->store, &f->ix), 0);
	assert_int_equal(digests_new(f->t, f->ix, f->proc_fd, &f->d), 0);
	f->rec.d = f->d;
	f->rec.n = 0;
	digests_subscriber s = { .known = on_known, .gone = on_gone, .arg = &f->rec };
	assert_int_equal(digests_subscribe(f->d, &s), 0);
}

/* What an unmount does: pending digests go to the index, nodes go. */
static void fx_stop(struct fx *f)
{
	digests_free(f->d);
	f->d = NULL;
	ino_table_free(f->t);
	f->t = NULL;
	cache_index_close(f->ix);
	f->ix = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[96];
	const char *msg;
	snprintf(f->dir, sizeof(f->dir), "/tmp/casfs-digest-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(path, sizeof(path), "%s/tree", f->dir);
	if (mkdir(path, 0755) < 0 || (f->tree = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/store", f->dir);
	if (cache_store_open(path, &f->store, &msg) < 0)
		return -1;
	if ((f->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	pthread_mutex_init(&f->rec.lock, NULL);
	pthread_cond_init(&f->rec.cond, NULL);
	fx_start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	if (f->d)
		fx_stop(f);
	cache_store_close(f->store);
	close(f->proc_fd);
	close(f->tree);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int r = system(cmd);
	free(f);
	return r == 0 ? 0 : -1;
}

/* ---- helpers: the fs layer's calls ----------------------------------------- */

/* Looks name up as the fs layer does (one kernel reference). */
static ino_node *node_of(struct fx *f, const char *name)
{
	struct stat st;
	int fd = openat(f->tree, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), 0);
	ino_node *n = NULL;
	assert_int_equal(ino_table_insert(f->t, ino_table_root(f->t), name, fd, &st, 1, &n), 0);
	return n;
}

static struct stat stat_of(struct fx *f, const char *name)
{
	struct stat st;
	assert_int_equal(fstatat(f->tree, name, &st, 0), 0);
	return st;
}

/* Writes a file behind the module's back (as before a mount). */
static void put_file(struct fx *f, const char *name, const void *data, size_t len)
{
	int fd = openat(f->tree, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, len, 0), (ssize_t)len);
	close(fd);
}

/* An open for writing through the mount. */
static int open_w(struct fx *f, ino_node *n, const char *name, int flags)
{
	int fd = openat(f->tree, name, O_WRONLY | O_CLOEXEC | flags, 0644);
	assert_true(fd >= 0);
	digests_open_write(f->d, n, fd, (flags & O_TRUNC) != 0);
	return fd;
}

/* A write through the mount; data_seen false: spliced, the bytes unseen. */
static void write_at(struct fx *f, ino_node *n, int fd, off_t off, const void *data, size_t len, bool data_seen)
{
	assert_int_equal(pwrite(fd, data, len, off), (ssize_t)len);
	digests_write(f->d, n, off, data_seen ? data : NULL, len);
}

static void close_w(struct fx *f, ino_node *n, int fd)
{
	digests_release_write(f->d, n, fd, false);
	close(fd);
}

static int get_rc(struct fx *f, ino_node *n, hasher_digest *ret, uint64_t *ret_version)
{
	int fd = ino_node_fd_get(f->t, n);
	assert_true(fd >= 0);
	int r = ret_version ? digests_get_versioned(f->d, n, fd, ret, ret_version) : digests_get(f->d, n, fd, ret);
	ino_node_fd_put(f->t, n);
	return r;
}

static hasher_digest get(struct fx *f, ino_node *n)
{
	hasher_digest d;
	assert_int_equal(get_rc(f, n, &d, NULL), 0);
	return d;
}

/* The hasher's digest of the file's bytes as they are now. */
static hasher_digest file_digest(struct fx *f, const char *name)
{
	hasher_digest d;
	int fd = openat(f->tree, name, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(hasher_digest_fd(fd, &d, NULL), 0);
	close(fd);
	return d;
}

static hasher_digest digest_of(const void *data, size_t len)
{
	hasher_digest d;
	hasher_digest_buffer(data, len, &d);
	return d;
}

static digest_counters counters(struct fx *f)
{
	digest_counters c;
	digests_counters(f->d, &c);
	return c;
}

static bool digest_eq(hasher_digest a, hasher_digest b)
{
	return hasher_digest_equal(&a, &b);
}
#define assert_digest_equal(a, b) assert_true(digest_eq((a), (b)))

static int events(struct fx *f)
{
	pthread_mutex_lock(&f->rec.lock);
	int n = f->rec.n;
	pthread_mutex_unlock(&f->rec.lock);
	return n;
}

/* Waits for the n-th event (the rehash worker's), without a time limit of
 * its own: the test's meson timeout bounds it. */
static struct event wait_event(struct fx *f, int n)
{
	pthread_mutex_lock(&f->rec.lock);
	while (f->rec.n < n)
		pthread_cond_wait(&f->rec.cond, &f->rec.lock);
	struct event e = f->rec.ev[n - 1];
	pthread_mutex_unlock(&f->rec.lock);
	return e;
}

/* A "known" event told with no lock held and the digest readable. */
static void assert_known(const struct event *e, ino_node *n, const hasher_digest *d, bool written)
{
	assert_false(e->gone);
	assert_int_equal(e->dev, n->dev);
	assert_int_equal(e->ino, n->ino);
	assert_digest_equal(e->digest, *d);
	assert_int_equal(e->written, written);
	assert_int_equal(e->peek_rc, 0);
	assert_digest_equal(e->peeked, *d);
}

/* Waits until the clock's coarse time (what the kernel stamps ctime with)
 * is past ts, so the next change gets a later ctime. */
static void clock_past(const struct timespec *ts)
{
	struct timespec now;
	for (;;) {
		clock_gettime(CLOCK_REALTIME_COARSE, &now);
		if (now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec > ts->tv_nsec))
			return;
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

static uint8_t *random_bytes(size_t len)
{
	uint8_t *b = malloc(len);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)rng();
	return b;
}

/* ---- streaming ------------------------------------------------------------- */

/* Sequential writes from offset 0 are hashed as they arrive: at the last
 * close the digest is final without reading the file. */
static void test_sequential_writes_stream(void **state)
{
	struct fx *f = *state;
	seed_rng("sequential_writes_stream");
	size_t len = 3 * 1024 * 1024 + (size_t)(rng() % 100000);
	uint8_t *data = random_bytes(len);
	put_file(f, "out", NULL, 0);
	ino_node *n = node_of(f, "out");
	int fd = open_w(f, n, "out", O_TRUNC);
	for (size_t off = 0; off < len;) {
		size_t chunk = (size_t)(rng() % 200000) + 1;
		if (chunk > len - off)
			chunk = len - off;
		write_at(f, n, fd, (off_t)off, data + off, chunk, true);
		off += chunk;
	}
	close_w(f, n, fd);

	hasher_digest want = digest_of(data, len);
	digest_counters c = counters(f);
	assert_int_equal(c.files_hashed_streaming, 1);
	assert_int_equal(c.files_hashed_by_reread, 0);
	assert_int_equal(c.files_hashed_on_demand, 0);
	assert_int_equal(c.bytes_hashed, len); /* each byte once, as written */
	assert_int_equal(events(f), 1);
	assert_known(&f->rec.ev[0], n, &want, true);
	/* served as it is, nothing read */
	hasher_digest got = get(f, n);
	assert_digest_equal(got, want);
	assert_digest_equal(got, file_digest(f, "out"));
	c = counters(f);
	assert_int_equal(c.bytes_hashed, len);
	assert_int_equal(c.files_hashed_on_demand, 0);
	free(data);
}

/* A new empty file written in order streams too, and an empty one gets
 * the digest of no bytes. */
static void test_new_and_empty_files_stream(void **state)
{
	struct fx *f = *state;
	put_file(f, "empty", NULL, 0);
	put_file(f, "small", NULL, 0);
	ino_node *e = node_of(f, "empty"), *s = node_of(f, "small");
	int fd = open_w(f, e, "empty", 0);
	close_w(f, e, fd);
	fd = open_w(f, s, "small", 0);
	write_at(f, s, fd, 0, "hello", 5, true);
	write_at(f, s, fd, 5, ", world", 7, true);
	close_w(f, s, fd);
	assert_int_equal(counters(f).files_hashed_streaming, 2);
	hasher_digest want_e = digest_of("", 0), want_s = digest_of("hello, world", 12);
	assert_digest_equal(get(f, e), want_e);
	assert_digest_equal(get(f, s), want_s);
	assert_int_equal(counters(f).files_hashed_on_demand, 0);
	assert_int_equal(counters(f).files_hashed_by_reread, 0);
}

/* ---- what the stream cannot follow: one re-read after the last close ------- */

enum change {
	OUT_OF_ORDER,   /* a write that is not at the streamed length */
	UNSEEN_BYTES,   /* a write whose bytes were not seen (spliced) */
	FALLOCATE,      /* begin_change + invalidate around fallocate */
	TRUNCATE_SHORT, /* truncate to a non-zero size below the streamed length */
	TRUNCATE_LONG,  /* truncate past the streamed length (a hole) */
};

static const char *const change_name[] = { "out of order", "unseen bytes", "fallocate", "truncate shorter",
					    "truncate longer" };

static void reread_case(struct fx *f, enum change what)
{
	uint8_t a[8192], b[4096];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 7 + what);
	memset(b, 'b', sizeof(b));
	char name[32];
	snprintf(name, sizeof(name), "f%d", (int)what);
	put_file(f, name, NULL, 0);
	ino_node *n = node_of(f, name);
	int ev0 = events(f);
	digest_counters c0 = counters(f);
	int fd = open_w(f, n, name, 0);
	switch (what) {
	case OUT_OF_ORDER: /* as `as` and `ld` do: the header last */
		write_at(f, n, fd, 4096, a + 4096, 4096, true);
		write_at(f, n, fd, 0, a, 4096, true);
		break;
	case UNSEEN_BYTES:
		write_at(f, n, fd, 0, a, 4096, true);
		write_at(f, n, fd, 4096, a + 4096, 4096, false);
		break;
	case FALLOCATE:
		write_at(f, n, fd, 0, a, 4096, true);
		digests_begin_change(f->d, n);
		assert_int_equal(fallocate(fd, 0, 0, 16384), 0);
		digests_invalidate(f->d, n);
		break;
	case TRUNCATE_SHORT:
	case TRUNCATE_LONG: {
		off_t size = what == TRUNCATE_SHORT ? 1000 : 20000;
		write_at(f, n, fd, 0, a, sizeof(a), true);
		digests_begin_change(f->d, n);
		assert_int_equal(ftruncate(fd, size), 0);
		digests_truncate(f->d, n, size);
		break;
	}
	}
	/* later in-order writes do not bring the stream back */
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	write_at(f, n, fd, st.st_size, b, sizeof(b), true);
	close_w(f, n, fd);

	/* the digest comes from the rehash worker, off the closing call */
	hasher_digest want = file_digest(f, name);
	struct event e = wait_event(f, ev0 + 1);
	print_message("  %s: re-read once\n", change_name[what]);
	assert_known(&e, n, &want, true);
	digest_counters c = counters(f);
	assert_int_equal(c.files_hashed_by_reread - c0.files_hashed_by_reread, 1);
	assert_int_equal(c.files_hashed_streaming - c0.files_hashed_streaming, 0);
	assert_int_equal(c.files_hashed_on_demand - c0.files_hashed_on_demand, 0);
	assert_digest_equal(get(f, n), want);
	assert_int_equal(counters(f).bytes_hashed, c.bytes_hashed); /* served, not read again */
}

static void test_changes_force_one_reread(void **state)
{
	for (int w = OUT_OF_ORDER; w <= TRUNCATE_LONG; w++)
		reread_case(*state, (enum change)w);
}

/* A truncate to exactly the streamed length changes no byte: the stream
 * still gives the digest. */
static void test_truncate_to_streamed_length_keeps_stream(void **state)
{
	struct fx *f = *state;
	put_file(f, "t", NULL, 0);
	ino_node *n = node_of(f, "t");
	int fd = open_w(f, n, "t", 0);
	write_at(f, n, fd, 0, "0123456789", 10, true);
	digests_begin_change(f->d, n);
	assert_int_equal(ftruncate(fd, 10), 0);
	digests_truncate(f->d, n, 10);
	close_w(f, n, fd);
	assert_int_equal(counters(f).files_hashed_streaming, 1);
	assert_digest_equal(get(f, n), digest_of("0123456789", 10));
}

/* A truncate to 0 while writing starts the stream again, also after the
 * stream went dirty. */
static void test_truncate_to_zero_restarts_stream(void **state)
{
	struct fx *f = *state;
	put_file(f, "z", "old content", 11);
	ino_node *n = node_of(f, "z");
	int fd = open_w(f, n, "z", 0); /* existing content: no stream */
	write_at(f, n, fd, 3, "XYZ", 3, true);
	digests_begin_change(f->d, n);
	assert_int_equal(ftruncate(fd, 0), 0);
	digests_truncate(f->d, n, 0);
	write_at(f, n, fd, 0, "new ", 4, true);
	write_at(f, n, fd, 4, "bytes", 5, true);
	close_w(f, n, fd);
	digest_counters c = counters(f);
	assert_int_equal(c.files_hashed_streaming, 1);
	assert_int_equal(c.files_hashed_by_reread, 0);
	assert_int_equal(c.bytes_hashed, 9);
	assert_digest_equal(get(f, n), digest_of("new bytes", 9));
	assert_int_equal(counters(f).files_hashed_on_demand, 0);
}

/* An open with O_TRUNC while another writer has the file open empties it
 * too: the digest known from before must not stand. */
static void test_second_writer_o_trunc(void **state)
{
	struct fx *f = *state;
	put_file(f, "w", "before", 6);
	ino_node *n = node_of(f, "w");
	hasher_digest before = get(f, n), version_digest;
	assert_digest_equal(before, digest_of("before", 6));
	uint64_t v0, v;
	assert_int_equal(get_rc(f, n, &version_digest, &v0), 0);

	int a = open_w(f, n, "w", 0);
	int b = open_w(f, n, "w", O_TRUNC); /* the backing is empty now */
	assert_int_equal(get_rc(f, n, &version_digest, &v), -EBUSY);
	close_w(f, n, b);
	close_w(f, n, a);
	hasher_digest empty = digest_of("", 0);
	assert_digest_equal(get(f, n), empty);
	assert_int_equal(get_rc(f, n, &version_digest, &v), 0);
	assert_true(v != v0);

	/* emptied by the second open, the file streams from 0 again */
	a = open_w(f, n, "w", O_TRUNC);
	write_at(f, n, a, 0, "middle", 6, true);
	close_w(f, n, a);
	digest_counters c0 = counters(f);
	a = open_w(f, n, "w", 0);
	b = open_w(f, n, "w", O_TRUNC);
	write_at(f, n, b, 0, "after", 5, true);
	close_w(f, n, b);
	close_w(f, n, a);
	digest_counters c = counters(f);
	assert_int_equal(c.files_hashed_streaming - c0.files_hashed_streaming, 1);
	assert_int_equal(c.files_hashed_by_reread - c0.files_hashed_by_reread, 0);
	assert_digest_equal(get(f, n), digest_of("after", 5));
	assert_digest_equal(file_digest(f, "w"), digest_of("after", 5));
}

/* An open with O_TRUNC races another writer's sequential write: the
 * truncation empties the backing, the write lands at the streamed length
 * (behind zeros now) before the opener's fstat, and the stream must not
 * take it for the continuation of the bytes the truncation removed. */
static void test_o_trunc_racing_writer(void **state)
{
	struct fx *f = *state;
	put_file(f, "r", NULL, 0);
	ino_node *n = node_of(f, "r");
	int a = open_w(f, n, "r", O_TRUNC);
	write_at(f, n, a, 0, "0123456789", 10, true);
	/* b's open: the backing truncates ... */
	int b = openat(f->tree, "r", O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(b >= 0);
	/* ... a's next write lands (at the streamed length 10) ... */
	write_at(f, n, a, 10, "abc", 3, true);
	/* ... and only then does b's open reach the digest */
	digests_open_write(f->d, n, b, true);
	close_w(f, n, b);
	close_w(f, n, a);
	static const char want[13] = { [10] = 'a', 'b', 'c' };
	assert_digest_equal(file_digest(f, "r"), digest_of(want, 13));
	assert_digest_equal(get(f, n), digest_of(want, 13));
}

/* As above, but the other writer's write lands before the truncation and
 * reaches the digest only after the opener's: the stream is still at 0
 * (or restarts there), and must not take the write the truncation removed
 * for the file's first bytes. */
static void o_trunc_before_write_fed(struct fx *f, const char *name, int first_flags)
{
	ino_node *n = node_of(f, name);
	int a = open_w(f, n, name, first_flags);
	/* a's write lands ... */
	uint64_t token = digests_write_begin(f->d, n);
	assert_int_equal(pwrite(a, "0123456789", 10, 0), 10);
	/* ... b's open truncates and reaches the digest ... */
	int b = open_w(f, n, name, O_TRUNC);
	/* ... and only then does a's write reach it */
	digests_write_reply(f->d, n, token, 0, "0123456789", 10, NULL, NULL);
	write_at(f, n, a, 10, "abc", 3, true);
	close_w(f, n, b);
	close_w(f, n, a);
	static const char want[13] = { [10] = 'a', 'b', 'c' };
	assert_digest_equal(file_digest(f, name), digest_of(want, 13));
	assert_digest_equal(get(f, n), digest_of(want, 13));
}

static void test_o_trunc_before_write_fed(void **state)
{
	struct fx *f = *state;
	put_file(f, "z", NULL, 0);
	o_trunc_before_write_fed(f, "z", O_TRUNC); /* stream at 0 */
	put_file(f, "y", "old", 3);
	o_trunc_before_write_fed(f, "y", 0);       /* restarted at 0 */
}

/* A file whose last link went before its last close gets no digest. */
static void test_deleted_while_written(void **state)
{
	struct fx *f = *state;
	put_file(f, "gone", NULL, 0);
	ino_node *n = node_of(f, "gone");
	int fd = open_w(f, n, "gone", 0);
	write_at(f, n, fd, 0, "data", 4, true);
	struct stat st = stat_of(f, "gone");
	assert_int_equal(unlinkat(f->tree, "gone", 0), 0);
	assert_ptr_equal(ino_table_detach(f->t, st.st_dev, st.st_ino), n);
	close_w(f, n, fd);
	digest_counters c = counters(f);
	assert_int_equal(c.files_hashed_streaming + c.files_hashed_by_reread, 0);
	assert_int_equal(events(f), 0);
	cache_file_rec rec;
	uint64_t version;
	assert_int_equal(digests_peek(f->d, n, &rec, &version), -EAGAIN);
	ino_table_forget(f->t, n, 1);
}

/* A request's hash stops when its request is interrupted: a sparse file
 * of 1 TiB takes minutes to hash (the holes are hashed as zeros), its
 * caller unkillable meanwhile; on demand, and open for writing. */
static int cancel_asks;
static bool cancel_now(void *arg)
{
	(void)arg;
	return ++cancel_asks > 2;
}

static void test_request_cancel_stops_hash(void **state)
{
	struct fx *f = *state;
	int fd = openat(f->tree, "huge", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, (1LL << 40) - 1), 1);
	close(fd);
	ino_node *n = node_of(f, "huge");
	hasher_digest dg;
	hasher_cancel c = { cancel_now, NULL };
	time_t t0 = time(NULL);
	cancel_asks = 0;
	digests_cancel_scope(&c);
	assert_int_equal(get_rc(f, n, &dg, NULL), -EINTR);
	/* open for writing: hashed as it is, on the request's path */
	int w = open_w(f, n, "huge", 0);
	cancel_asks = 0;
	assert_int_equal(get_rc(f, n, &dg, NULL), -EINTR);
	digests_cancel_scope(NULL);
	assert_true(time(NULL) - t0 < 10);
	assert_int_equal(ftruncate(w, 0), 0);
	digests_truncate(f->d, n, 0);
	close_w(f, n, w);
	assert_digest_equal(get(f, n), digest_of("", 0));
}

/* ---- files never written here: on demand once, then from memory ----------- */

static void test_on_demand_once(void **state)
{
	struct fx *f = *state;
	put_file(f, "src.c", "int x;\n", 7);
	ino_node *n = node_of(f, "src.c");
	hasher_digest want = digest_of("int x;\n", 7);
	assert_digest_equal(get(f, n), want);
	digest_counters c = counters(f);
	assert_int_equal(c.files_hashed_on_demand, 1);
	assert_int_equal(c.bytes_hashed, 7);
	assert_int_equal(c.digest_index_hits, 0);
	assert_int_equal(events(f), 1);
	assert_known(&f->rec.ev[0], n, &want, false);
	for (int i = 0; i < 3; i++)
		assert_digest_equal(get(f, n), want);
	c = counters(f);
	assert_int_equal(c.files_hashed_on_demand, 1);
	assert_int_equal(c.bytes_hashed, 7);
	assert_int_equal(events(f), 1);
	/* opened for writing and closed without a change: still known */
	int fd = open_w(f, n, "src.c", 0);
	close_w(f, n, fd);
	assert_digest_equal(get(f, n), want);
	assert_int_equal(counters(f).bytes_hashed, 7);
}

/* ---- the index: digests across remounts ----------------------------------- */

static void test_index_across_remount(void **state)
{
	struct fx *f = *state;
	put_file(f, "keep", "kept content", 12);
	put_file(f, "edit", "old content!", 12);
	hasher_digest keep = digest_of("kept content", 12);
	assert_digest_equal(get(f, node_of(f, "keep")), keep);
	get(f, node_of(f, "edit"));
	fx_stop(f); /* writes the records, waiting out the racy window */

	/* the records are there and trustworthy */
	cache_index *ix;
	cache_file_rec rec;
	struct stat st = stat_of(f, "keep");
	assert_int_equal(cache_index_open(f->store, &ix), 0);
	assert_int_equal(cache_index_file_get(ix, st.st_dev, st.st_ino, &rec), 0);
	assert_digest_equal(rec.digest, keep);
	assert_true(cache_file_rec_valid(&rec, &st));
	cache_index_close(ix);

	/* changed while unmounted: same size, new ctime and mtime */
	struct stat old = stat_of(f, "edit");
	clock_past(&old.st_ctim);
	put_file(f, "edit", "new content!", 12);
	struct stat now = stat_of(f, "edit");
	assert_true(now.st_ctim.tv_sec != old.st_ctim.tv_sec || now.st_ctim.tv_nsec != old.st_ctim.tv_nsec);

	fx_start(f);
	ino_node *k = node_of(f, "keep"), *e = node_of(f, "edit");
	assert_digest_equal(get(f, k), keep);
	digest_counters c = counters(f);
	assert_int_equal(c.digest_index_hits, 1);
	assert_int_equal(c.files_hashed_on_demand, 0);
	assert_int_equal(c.bytes_hashed, 0);
	assert_int_equal(events(f), 1);
	assert_known(&f->rec.ev[0], k, &keep, false);

	hasher_digest edited = digest_of("new content!", 12);
	assert_digest_equal(get(f, e), edited);
	c = counters(f);
	assert_int_equal(c.digest_index_hits, 1);
	assert_int_equal(c.files_hashed_on_demand, 1);
	assert_int_equal(c.bytes_hashed, 12);
}

/* A record is used only when size, mtime and ctime match and it was known
 * CACHE_RACY_NS after the ctime: records planted with a digest that is not
 * the file's show which were trusted. */
static void test_index_trust_rule(void **state)
{
	struct fx *f = *state;
	enum { TRUSTED, RACY, SIZE, MTIME, CTIME, NCASES };
	static const char *const names[NCASES] = { "trusted", "racy", "size", "mtime", "ctime" };
	hasher_digest planted = digest_of("planted", 7);
	cache_file_entry e[NCASES];
	for (int i = 0; i < NCASES; i++) {
		put_file(f, names[i], names[i], strlen(names[i]));
		struct stat st = stat_of(f, names[i]);
		e[i] = (cache_file_entry){ .dev = st.st_dev, .ino = st.st_ino };
		e[i].rec = (cache_file_rec){ .digest = planted, .size = (uint64_t)st.st_size,
					     .mtime_ns = cache_timespec_ns(&st.st_mtim),
					     .ctime_ns = cache_timespec_ns(&st.st_ctim) };
		e[i].rec.hashed_at_ns = e[i].rec.ctime_ns + CACHE_RACY_NS;
	}
	e[RACY].rec.hashed_at_ns = e[RACY].rec.ctime_ns + CACHE_RACY_NS - 1;
	e[SIZE].rec.size++;
	e[MTIME].rec.mtime_ns--;
	e[CTIME].rec.ctime_ns--;
	e[CTIME].rec.hashed_at_ns = e[CTIME].rec.ctime_ns + 10 * CACHE_RACY_NS;
	assert_int_equal(cache_index_file_put(f->ix, e, NCASES), 0);

	assert_digest_equal(get(f, node_of(f, "trusted")), planted);
	digest_counters c = counters(f);
	assert_int_equal(c.digest_index_hits, 1);
	assert_int_equal(c.bytes_hashed, 0);
	for (int i = RACY; i < NCASES; i++) {
		print_message("  %s: not trusted\n", names[i]);
		assert_digest_equal(get(f, node_of(f, names[i])), file_digest(f, names[i]));
	}
	c = counters(f);
	assert_int_equal(c.digest_index_hits, 1);
	assert_int_equal(c.files_hashed_on_demand, NCASES - 1);
}

/* Metadata changes keep a known digest, in memory and in the index. */
static void test_meta_changed_keeps_digest(void **state)
{
	struct fx *f = *state;
	put_file(f, "told", "mode changes", 12);
	put_file(f, "untold", "mode changes", 12);
	ino_node *t = node_of(f, "told"), *u = node_of(f, "untold");
	hasher_digest want = digest_of("mode changes", 12);
	get(f, t);
	get(f, u);
	struct stat st = stat_of(f, "untold");
	clock_past(&st.st_ctim);
	assert_int_equal(fchmodat(f->tree, "told", 0600, 0), 0);
	assert_int_equal(fchmodat(f->tree, "untold", 0600, 0), 0);
	st = stat_of(f, "told");
	digests_meta_changed(f->d, t, &st);
	cache_file_rec rec;
	uint64_t version;
	assert_int_equal(digests_peek(f->d, t, &rec, &version), 0);
	assert_digest_equal(rec.digest, want);
	assert_int_equal(rec.ctime_ns, cache_timespec_ns(&st.st_ctim));
	assert_int_equal(rec.size, 12);
	fx_stop(f);

	fx_start(f);
	t = node_of(f, "told");
	u = node_of(f, "untold");
	assert_digest_equal(get(f, t), want);
	assert_int_equal(counters(f).digest_index_hits, 1);
	/* without the call the record describes the old ctime: hashed again */
	assert_digest_equal(get(f, u), want);
	assert_int_equal(counters(f).digest_index_hits, 1);
	assert_int_equal(counters(f).files_hashed_on_demand, 1);
}

/* ---- writers, versions, peek, seed ------------------------------------------ */

static void test_busy_while_written(void **state)
{
	struct fx *f = *state;
	put_file(f, "b", "first", 5);
	ino_node *n = node_of(f, "b");
	hasher_digest d;
	uint64_t v;
	cache_file_rec rec;
	int fd = open_w(f, n, "b", 0);
	/* never hashed, a writer open: no hashing for a versioned caller */
	assert_int_equal(get_rc(f, n, &d, &v), -EBUSY);
	assert_int_equal(counters(f).bytes_hashed, 0);
	assert_int_equal(digests_peek(f->d, n, &rec, &v), -EAGAIN);
	/* a plain caller gets what is there now, and nothing is remembered */
	assert_digest_equal(get(f, n), digest_of("first", 5));
	assert_int_equal(digests_peek(f->d, n, &rec, &v), -EAGAIN);
	assert_int_equal(events(f), 0);
	write_at(f, n, fd, 5, "+more", 5, true);
	assert_int_equal(get_rc(f, n, &d, &v), -EBUSY);
	assert_digest_equal(get(f, n), digest_of("first+more", 10));
	close_w(f, n, fd);
	/* existing content was not streamed: the worker reads it once */
	struct event e = wait_event(f, 1);
	hasher_digest want = digest_of("first+more", 10);
	assert_known(&e, n, &want, true);
	assert_int_equal(get_rc(f, n, &d, &v), 0);
	assert_digest_equal(d, want);

	/* a writer that has changed nothing yet: the known digest still holds */
	uint64_t v2;
	fd = open_w(f, n, "b", 0);
	assert_int_equal(get_rc(f, n, &d, &v2), 0);
	assert_int_equal(v2, v);
	assert_digest_equal(d, want);
	assert_int_equal(digests_peek(f->d, n, &rec, &v2), -EAGAIN); /* peek: no writer at all */
	close_w(f, n, fd);
	assert_int_equal(digests_peek(f->d, n, &rec, &v2), 0);
	assert_int_equal(v2, v);
}

static void test_versions_follow_content(void **state)
{
	struct fx *f = *state;
	put_file(f, "v", "one", 3);
	ino_node *n = node_of(f, "v");
	hasher_digest d;
	cache_file_rec rec;
	uint64_t v1, v1b, v2, pv;
	assert_int_equal(get_rc(f, n, &d, &v1), 0);
	assert_int_equal(get_rc(f, n, &d, &v1b), 0);
	assert_int_equal(v1, v1b); /* nothing changed */
	assert_int_equal(digests_peek(f->d, n, &rec, &pv), 0);
	assert_int_equal(pv, v1);
	assert_digest_equal(rec.digest, digest_of("one", 3));

	int fd = open_w(f, n, "v", O_TRUNC);
	write_at(f, n, fd, 0, "two", 3, true);
	close_w(f, n, fd);
	assert_int_equal(digests_peek(f->d, n, &rec, &pv), 0);
	assert_true(pv != v1);
	assert_digest_equal(rec.digest, digest_of("two", 3));
	assert_int_equal(get_rc(f, n, &d, &v2), 0);
	assert_int_equal(v2, pv);

	/* a version taken before a change never matches after it, even when
	 * the content comes back to the same bytes */
	fd = open_w(f, n, "v", O_TRUNC);
	write_at(f, n, fd, 0, "one", 3, true);
	close_w(f, n, fd);
	assert_int_equal(get_rc(f, n, &d, &pv), 0);
	assert_digest_equal(d, digest_of("one", 3));
	assert_true(pv != v1 && pv != v2);
}

static void test_peek_computes_nothing(void **state)
{
	struct fx *f = *state;
	put_file(f, "p", "peek", 4);
	ino_node *n = node_of(f, "p");
	cache_file_rec rec;
	uint64_t v;
	assert_int_equal(digests_peek(f->d, n, &rec, &v), -EAGAIN);
	assert_int_equal(counters(f).bytes_hashed, 0);
	get(f, n);
	struct stat st = stat_of(f, "p");
	assert_int_equal(digests_peek(f->d, n, &rec, &v), 0);
	assert_digest_equal(rec.digest, digest_of("peek", 4));
	assert_int_equal(rec.size, 4);
	assert_int_equal(rec.mtime_ns, cache_timespec_ns(&st.st_mtim));
	assert_int_equal(rec.ctime_ns, cache_timespec_ns(&st.st_ctim));
	/* a change makes it unknown until hashed again */
	int fd = open_w(f, n, "p", 0);
	digests_begin_change(f->d, n);
	assert_int_equal(ftruncate(fd, 2), 0);
	digests_truncate(f->d, n, 2);
	assert_int_equal(digests_peek(f->d, n, &rec, &v), -EAGAIN);
	close_w(f, n, fd);
	assert_true(wait_event(f, 2).gone); /* "peek" stopped being its digest */
	wait_event(f, 3);
	assert_int_equal(digests_peek(f->d, n, &rec, &v), 0);
	assert_digest_equal(rec.digest, digest_of("pe", 2));
}

/* A digest known from elsewhere (restored from the store) is taken as is. */
static void test_seed_reads_nothing(void **state)
{
	struct fx *f = *state;
	put_file(f, "restored", "from the store", 14);
	ino_node *n = node_of(f, "restored");
	hasher_digest want = digest_of("from the store", 14);
	struct stat st = stat_of(f, "restored");
	digests_seed(f->d, n, &want, &st);
	assert_int_equal(events(f), 1);
	assert_known(&f->rec.ev[0], n, &want, false);
	assert_digest_equal(get(f, n), want);
	digest_counters c = counters(f);
	assert_int_equal(c.bytes_hashed, 0);
	assert_int_equal(c.files_hashed_on_demand, 0);
	assert_int_equal(c.digest_index_hits, 0);
	fx_stop(f); /* and it persists like any other */
	fx_start(f);
	assert_digest_equal(get(f, node_of(f, "restored")), want);
	assert_int_equal(counters(f).digest_index_hits, 1);
}

/* Writes the 8 KiB a into a new file name as `as` does (the header last),
 * by a writer of a recorded run. */
static ino_node *write_recorded_out_of_order(struct fx *f, const char *name, const uint8_t *a)
{
	put_file(f, name, NULL, 0);
	ino_node *n = node_of(f, name);
	int fd = openat(f->tree, name, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	digests_open_write(f->d, n, fd, false);
	write_at(f, n, fd, 4096, a + 4096, 4096, true);
	write_at(f, n, fd, 0, a, 4096, true);
	digests_release_write(f->d, n, fd, true);
	close(fd);
	return n;
}

/* An output written out of order by a recorded run: the recorder's read
 * (to store it) gives its digest, and the delayed re-read reads nothing;
 * a seed from a read of an older version is refused and the re-read
 * comes. */
static void test_recorded_output_read_once(void **state)
{
	struct fx *f = *state;
	uint8_t a[8192];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 13);
	ino_node *n = write_recorded_out_of_order(f, "obj", a);
	uint64_t version;
	assert_int_equal(digests_version(f->d, n, &version), 0);
	hasher_digest want = file_digest(f, "obj"); /* the recorder's read */
	struct stat st = stat_of(f, "obj");
	assert_int_equal(digests_seed_read(f->d, n, &want, &st, version), 0);
	assert_int_equal(events(f), 1);
	assert_known(&f->rec.ev[0], n, &want, true);
	struct timespec past = { DIGESTS_RECORDED_DELAY_MS / 1000 + 1, 0 };
	nanosleep(&past, NULL);
	digest_counters c = counters(f);
	assert_int_equal(c.files_hashed_by_store_read, 1);
	assert_int_equal(c.files_hashed_by_reread, 0);
	assert_int_equal(c.bytes_hashed, 0); /* the module read nothing */
	assert_digest_equal(get(f, n), want);

	/* changed after the recorder's digests_version: its seed is refused */
	ino_node *n2 = write_recorded_out_of_order(f, "obj2", a);
	int fd;
	assert_int_equal(digests_version(f->d, n2, &version), 0);
	hasher_digest old = file_digest(f, "obj2");
	fd = open_w(f, n2, "obj2", 0);
	write_at(f, n2, fd, 100, "changed", 7, true);
	close_w(f, n2, fd);
	st = stat_of(f, "obj2");
	assert_int_equal(digests_seed_read(f->d, n2, &old, &st, version), -ESTALE);
	hasher_digest now = file_digest(f, "obj2");
	struct event e = wait_event(f, 2);
	assert_known(&e, n2, &now, true);
	c = counters(f);
	assert_int_equal(c.files_hashed_by_store_read, 1);
	assert_int_equal(c.files_hashed_by_reread, 1);
}

/* A re-read that waits for a recorder does not hold back one due now: the
 * plain out-of-order file written after it is known first. */
static void test_recorded_wait_holds_nothing_back(void **state)
{
	struct fx *f = *state;
	uint8_t a[8192];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 5);
	ino_node *rec = write_recorded_out_of_order(f, "recorded", a);
	put_file(f, "plain", NULL, 0);
	ino_node *n = node_of(f, "plain");
	int fd = open_w(f, n, "plain", 0);
	write_at(f, n, fd, 4096, a + 4096, 4096, true);
	write_at(f, n, fd, 0, a, 4096, true);
	close_w(f, n, fd);
	hasher_digest want = file_digest(f, "plain");
	struct event e = wait_event(f, 1);
	assert_known(&e, n, &want, true);
	/* and the recorded one comes after its wait, read once */
	want = file_digest(f, "recorded");
	e = wait_event(f, 2);
	assert_known(&e, rec, &want, true);
	assert_int_equal(counters(f).files_hashed_by_reread, 2);
}

/* ---- subscribers and the end ------------------------------------------------ */

static void test_subscribers(void **state)
{
	struct fx *f = *state;
	digests_subscriber none = { 0 };
	for (int i = 1; i < DIGESTS_MAX_SUBSCRIBERS; i++)
		assert_int_equal(digests_subscribe(f->d, &none), 0);
	assert_int_equal(digests_subscribe(f->d, &none), -ENOSPC);

	put_file(f, "known", "known", 5);
	put_file(f, "never", "never", 5);
	ino_node *k = node_of(f, "known"), *nv = node_of(f, "never");
	hasher_digest want = digest_of("known", 5);
	struct stat st = stat_of(f, "known");
	get(f, k);
	assert_int_equal(events(f), 1);
	/* freed with its digest known: gone, with what it was (the node goes
	 * when the index queue lets go of it too) */
	ino_table_forget(f->t, k, 1);
	struct event e = wait_event(f, 2);
	assert_true(e.gone);
	assert_int_equal(e.dev, (uint64_t)st.st_dev);
	assert_int_equal(e.ino, (uint64_t)st.st_ino);
	assert_digest_equal(e.digest, want);
	/* freed never known: nothing */
	ino_table_forget(f->t, nv, 1);
	assert_int_equal(events(f), 2);
}

/* A known digest that stops being the file's is told gone, with what it
 * was (the .casfs/cas live map forgets it: no entry per content ever
 * written stays for the life of the mount). */
static void test_gone_on_change(void **state)
{
	struct fx *f = *state;
	put_file(f, "c", "old", 3);
	ino_node *n = node_of(f, "c");
	hasher_digest old = digest_of("old", 3), fresh = digest_of("fresh", 5);
	assert_digest_equal(get(f, n), old);
	assert_int_equal(events(f), 1);
	int fd = open_w(f, n, "c", O_TRUNC);
	assert_int_equal(events(f), 2);
	struct event e = f->rec.ev[1];
	assert_true(e.gone);
	assert_int_equal(e.ino, n->ino);
	assert_digest_equal(e.digest, old);
	write_at(f, n, fd, 0, "fresh", 5, true);
	close_w(f, n, fd);
	assert_int_equal(events(f), 3);
	assert_known(&f->rec.ev[2], n, &fresh, true);
	assert_digest_equal(get(f, n), fresh);
}

/* Everything pending reaches the index when the digests are freed. */
static void test_free_flushes(void **state)
{
	struct fx *f = *state;
	const char *names[] = { "streamed", "demanded", "seeded" };
	put_file(f, "streamed", NULL, 0);
	put_file(f, "demanded", "demanded", 8);
	put_file(f, "seeded", "seeded", 6);
	ino_node *s = node_of(f, "streamed");
	int fd = open_w(f, s, "streamed", 0);
	write_at(f, s, fd, 0, "streamed", 8, true);
	close_w(f, s, fd);
	get(f, node_of(f, "demanded"));
	hasher_digest sd = digest_of("seeded", 6);
	struct stat st = stat_of(f, "seeded");
	digests_seed(f->d, node_of(f, "seeded"), &sd, &st);
	fx_stop(f);

	cache_index *ix;
	assert_int_equal(cache_index_open(f->store, &ix), 0);
	for (size_t i = 0; i < 3; i++) {
		cache_file_rec rec;
		st = stat_of(f, names[i]);
		assert_int_equal(cache_index_file_get(ix, st.st_dev, st.st_ino, &rec), 0);
		assert_digest_equal(rec.digest, file_digest(f, names[i]));
		assert_true(cache_file_rec_valid(&rec, &st));
	}
	cache_index_close(ix);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	umask(022);
	const struct CMUnitTest tests[] = {
		T(test_sequential_writes_stream),
		T(test_new_and_empty_files_stream),
		T(test_changes_force_one_reread),
		T(test_truncate_to_streamed_length_keeps_stream),
		T(test_truncate_to_zero_restarts_stream),
		T(test_second_writer_o_trunc),
		T(test_o_trunc_racing_writer),
		T(test_o_trunc_before_write_fed),
		T(test_deleted_while_written),
		T(test_on_demand_once),
		T(test_request_cancel_stops_hash),
		T(test_index_across_remount),
		T(test_index_trust_rule),
		T(test_meta_changed_keeps_digest),
		T(test_busy_while_written),
		T(test_versions_follow_content),
		T(test_peek_computes_nothing),
		T(test_seed_reads_nothing),
		T(test_recorded_output_read_once),
		T(test_recorded_wait_holds_nothing_back),
		T(test_subscribers),
		T(test_gone_on_change),
		T(test_free_flushes),
	};
	return cmocka_run_group_tests_name("digest", tests, NULL, NULL);
}
