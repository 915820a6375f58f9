/* digest.c — see digest.h for the state machine.
 *
 * Lock order: table lock → (nothing); state lock → table lock (only through
 * ino_node_ref/unref); state lock → worker lock; pending lock → nothing.
 * The table lock is taken only to attach a state to a node.
 */
#include "digest.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FLUSH_INTERVAL_MS 200
#define FLUSH_BATCH 1024

struct dstate {
	pthread_mutex_t lock;
	hasher_stream *stream; /* NULL unless streaming */
	unsigned extras;       /* what a stream also computes (enum hasher_extra) */
	uint64_t hashed;       /* bytes fed to stream */
	bool dirty;            /* stream cannot give the digest */
	_Atomic uint64_t wgen; /* bumped when a truncation under writers may
				* restart the stream: a write begun before it
				* (digests_write_begin) is not fed to it */
	int writers;           /* handles open for writing */
	bool touched;          /* content changed since the first writer opened */
	bool valid;            /* rec holds the current digest */
	uint64_t version;      /* bumped at every change of rec */
	cache_file_rec rec;
	bool sha_valid;        /* sha is the SHA-256 of rec's content (valid too) */
	hasher_sha256 sha;
	uint64_t dev, ino;
};

struct pending {
	ino_node *node;  /* referenced */
	uint64_t version;
	struct pending *next;
};

struct digests {
	ino_table *tbl;
	cache_index *ix;
	int proc_fd;
	pthread_mutex_t plock;
	pthread_cond_t pcond;
	struct pending *queue;
	size_t queued;
	bool stop;
	bool ix_full; /* the index's queues are full (wake_flusher) */
	pthread_t flusher;
	bool flusher_started;
	_Atomic uint64_t c_stream, c_reread, c_seeded_by_read, c_demand, c_bytes, c_index_hits, c_index_writes, c_index_errors;
	_Atomic uint64_t c_sha_stream, c_sha_read, c_sha_index_hits;
	bool sha_on_write;     /* SHA-256 streamed and re-read with XXH3 */
	digests_subscriber subs[DIGESTS_MAX_SUBSCRIBERS];
	int nsubs;
	/* the rehash worker: files written out of order, hashed after their
	 * last close, off every request's path */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	/* two FIFO queues, each in due order: re-reads due now, and those
	 * that wait DIGESTS_RECORDED_DELAY_MS for a recorder's read (one
	 * never holds the other back) */
	struct job *jobs[2], *jobs_tail[2];
	ino_node *rehashing;   /* the node the worker is reading, or NULL */
	pthread_cond_t wdone;  /* rehashing changed */
	bool wstop;
	pthread_t worker;
	bool worker_started;
};

struct job {
	ino_node *node; /* referenced */
	uint64_t version;
	struct timespec due; /* CLOCK_MONOTONIC: not re-read before */
	struct job *next;
};

/* dstate_free gets only the state: the subscribers of "gone" are per
 * process (there is one digests per daemon) and cleared when it goes. */
static digests *gone_owner;

/* A "known" event, taken under the state lock and told after unlocking. */
struct known_event {
	bool set;
	bool written;
	cache_file_rec rec;
};

static void tell_known(digests *d, ino_node *n, const struct known_event *ev)
{
	if (!ev->set)
		return;
	for (int i = 0; i < d->nsubs; i++)
		if (d->subs[i].known)
			d->subs[i].known(d->subs[i].arg, n, &ev->rec, ev->written);
}

#define BUMP(d, field, n) atomic_fetch_add_explicit(&(d)->field, (n), memory_order_relaxed)

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return cache_timespec_ns(&ts);
}

/* Tells the subscribers that s's known digest is no longer its file's. */
static void tell_gone(digests *d, struct dstate *s)
{
	for (int i = 0; s->valid && d && i < d->nsubs; i++)
		if (d->subs[i].gone)
			d->subs[i].gone(d->subs[i].arg, s->dev, s->ino, &s->rec.digest);
}

static void dstate_free(void *p)
{
	struct dstate *s = p;
	tell_gone(gone_owner, s);
	hasher_stream_free(s->stream);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void *worker_main(void *arg);

/* Returns n's state, creating it. NULL only on ENOMEM. */
/* n's state if it has one.  A node's state is made once (state_of) and
 * freed only with the node, which the caller holds a reference to: no lock
 * (every WRITE asks, twice). */
static struct dstate *state_peek(ino_node *n)
{
	return __atomic_load_n(&n->priv, __ATOMIC_ACQUIRE);
}

static struct dstate *state_of(digests *d, ino_node *n)
{
	struct dstate *s = state_peek(n);
	if (s)
		return s;
	ino_table_lock(d->tbl);
	s = n->priv;
	if (!s && (s = calloc(1, sizeof(*s)))) {
		pthread_mutex_init(&s->lock, NULL);
		s->extras = d->sha_on_write ? HASHER_WITH_SHA256 : 0;
		s->dev = n->dev;
		s->ino = n->ino;
		__atomic_store_n(&n->priv, (void *)s, __ATOMIC_RELEASE);
	}
	ino_table_unlock(d->tbl);
	return s;
}

/* n's state, locked; NULL when digests are off or memory is short. */
static struct dstate *lock_state(digests *d, ino_node *n)
{
	struct dstate *s = d ? state_of(d, n) : NULL;
	if (s)
		pthread_mutex_lock(&s->lock);
	return s;
}

static void fill_rec_stat(cache_file_rec *rec, const struct stat *st)
{
	rec->size = (uint64_t)st->st_size;
	rec->mtime_ns = cache_timespec_ns(&st->st_mtim);
	rec->ctime_ns = cache_timespec_ns(&st->st_ctim);
}

/* Queues n's current record for the index. State lock held. */
static void enqueue(digests *d, ino_node *n, struct dstate *s)
{
	if (!d->ix)
		return;
	struct pending *p = malloc(sizeof(*p));
	if (!p)
		return;
	ino_node_ref(d->tbl, n);
	p->node = n;
	p->version = s->version;
	pthread_mutex_lock(&d->plock);
	p->next = d->queue;
	d->queue = p;
	if (++d->queued >= FLUSH_BATCH)
		pthread_cond_signal(&d->pcond);
	pthread_mutex_unlock(&d->plock);
}

/* Writes queued records.  A record is stamped "known right at time now"
 * (hashed_at) only once now is CACHE_RACY_NS past its ctime: while mounted,
 * every change goes through us, so a still-valid state is right now.  With
 * `final`, waits out the racy window instead of deferring. */
static void flush(digests *d, bool final)
{
	pthread_mutex_lock(&d->plock);
	struct pending *list = d->queue;
	d->queue = NULL;
	d->queued = 0;
	pthread_mutex_unlock(&d->plock);
	if (!list)
		return;

	size_t cap = 256, n = 0;
	cache_file_entry *batch = malloc(cap * sizeof(*batch));
	struct pending *defer = NULL;
	int64_t latest_ctime = 0;
	if (final) {
		for (struct pending *p = list; p; p = p->next) {
			struct dstate *s = p->node->priv;
			if (s && s->rec.ctime_ns > latest_ctime)
				latest_ctime = s->rec.ctime_ns;
		}
		int64_t wait = latest_ctime + CACHE_RACY_NS - now_ns();
		if (wait > 0 && wait <= CACHE_RACY_NS) {
			struct timespec ts = { 0, (long)wait };
			nanosleep(&ts, NULL);
		}
	}
	int64_t now = now_ns();
	while (list) {
		struct pending *p = list;
		list = p->next;
		struct dstate *s = p->node->priv;
		bool keep = false;
		if (s && !__atomic_load_n(&p->node->detached, __ATOMIC_RELAXED)) {
			pthread_mutex_lock(&s->lock);
			if (s->valid && s->version == p->version && s->writers == 0) {
				if (s->rec.ctime_ns + CACHE_RACY_NS <= now) {
					if (s->rec.hashed_at_ns < now)
						s->rec.hashed_at_ns = now;
					if (n == cap) {
						cache_file_entry *b = realloc(batch, 2 * cap * sizeof(*batch));
						if (b) {
							batch = b;
							cap *= 2;
						}
					}
					if (batch && n < cap)
						batch[n++] = (cache_file_entry){ .dev = s->dev, .ino = s->ino, .rec = s->rec,
										 .has_sha256 = s->sha_valid, .sha256 = s->sha };
				} else {
					keep = true;
				}
			}
			pthread_mutex_unlock(&s->lock);
		}
		if (keep) {
			p->next = defer;
			defer = p;
		} else {
			ino_node_unref(d->tbl, p->node);
			free(p);
		}
	}
	if (n) {
		int r = cache_index_file_put(d->ix, batch, n);
		if (r < 0) {
			BUMP(d, c_index_errors, 1);
			fprintf(stderr, "casfs: cannot write %zu digests to the index: %s\n", n, strerror(-r));
		} else {
			BUMP(d, c_index_writes, n);
		}
	}
	free(batch);
	if (defer) {
		pthread_mutex_lock(&d->plock);
		while (defer) {
			struct pending *p = defer;
			defer = p->next;
			p->next = d->queue;
			d->queue = p;
			d->queued++;
		}
		pthread_mutex_unlock(&d->plock);
	}
}

static void *flusher_main(void *arg)
{
	digests *d = arg;
	pthread_mutex_lock(&d->plock);
	while (!d->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += FLUSH_INTERVAL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!d->ix_full)
			pthread_cond_timedwait(&d->pcond, &d->plock, &ts);
		if (d->stop)
			break;
		d->ix_full = false;
		pthread_mutex_unlock(&d->plock);
		flush(d, false);
		if (d->ix)
			cache_index_flush(d->ix); /* blob records and touches deferred */
		pthread_mutex_lock(&d->plock);
	}
	pthread_mutex_unlock(&d->plock);
	return NULL;
}

/* cache_index's full queues: the flusher commits them (cache_index_set_flusher). */
static void wake_flusher(void *arg)
{
	digests *d = arg;
	pthread_mutex_lock(&d->plock);
	d->ix_full = true;
	pthread_cond_signal(&d->pcond);
	pthread_mutex_unlock(&d->plock);
}

int digests_new(ino_table *t, cache_index *ix, int proc_fd, digests **ret)
{
	digests *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->tbl = t;
	d->ix = ix;
	d->proc_fd = proc_fd;
	pthread_mutex_init(&d->plock, NULL);
	pthread_cond_init(&d->pcond, NULL);
	pthread_mutex_init(&d->wlock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wcond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&d->wdone, NULL);
	int r = pthread_create(&d->worker, NULL, worker_main, d);
	if (r) {
		free(d);
		return -r;
	}
	d->worker_started = true;
	ino_table_set_priv_free(t, dstate_free);
	gone_owner = d;
	if (ix) {
		r = pthread_create(&d->flusher, NULL, flusher_main, d);
		if (r) {
			digests_free(d);
			return -r;
		}
		d->flusher_started = true;
		cache_index_set_flusher(ix, wake_flusher, d);
	}
	*ret = d;
	return 0;
}

void digests_free(digests *d)
{
	if (!d)
		return;
	gone_owner = NULL;
	if (d->worker_started) {
		/* Hashes in progress are abandoned (their files get digests on
		 * request after the next mount); the queue is dropped. */
		pthread_mutex_lock(&d->wlock);
		__atomic_store_n(&d->wstop, true, __ATOMIC_RELAXED);
		pthread_cond_signal(&d->wcond);
		pthread_mutex_unlock(&d->wlock);
		pthread_join(d->worker, NULL);
	}
	if (d->flusher_started) {
		cache_index_set_flusher(d->ix, NULL, NULL);
		pthread_mutex_lock(&d->plock);
		d->stop = true;
		pthread_cond_signal(&d->pcond);
		pthread_mutex_unlock(&d->plock);
		pthread_join(d->flusher, NULL);
	}
	if (d->ix) {
		flush(d, true);
		flush(d, true); /* anything deferred by the racy window */
	}
	pthread_cond_destroy(&d->pcond);
	pthread_mutex_destroy(&d->plock);
	pthread_cond_destroy(&d->wcond);
	pthread_cond_destroy(&d->wdone);
	pthread_mutex_destroy(&d->wlock);
	free(d);
}

void digests_counters(digests *d, digest_counters *ret)
{
	ret->files_hashed_streaming = atomic_load(&d->c_stream);
	ret->files_hashed_by_reread = atomic_load(&d->c_reread);
	ret->files_hashed_by_store_read = atomic_load(&d->c_seeded_by_read);
	ret->files_hashed_on_demand = atomic_load(&d->c_demand);
	ret->bytes_hashed = atomic_load(&d->c_bytes);
	ret->digest_index_hits = atomic_load(&d->c_index_hits);
	ret->index_writes = atomic_load(&d->c_index_writes);
	ret->index_errors = atomic_load(&d->c_index_errors);
	ret->sha256_streamed = atomic_load(&d->c_sha_stream);
	ret->sha256_by_read = atomic_load(&d->c_sha_read);
	ret->sha256_index_hits = atomic_load(&d->c_sha_index_hits);
}

int digests_set_sha256_on_write(digests *d, bool on)
{
	hasher_stream *probe = on ? hasher_stream_new_with(HASHER_WITH_SHA256) : NULL;
	if (on && !probe)
		return -ENOTSUP;
	hasher_stream_free(probe);
	if (d)
		d->sha_on_write = on;
	return 0;
}

/* Starts (or restarts) the stream at offset 0. State lock held. */
static void stream_restart(struct dstate *s)
{
	if (!s->stream)
		s->stream = hasher_stream_new_with(s->extras);
	else
		hasher_stream_reset(s->stream);
	s->hashed = 0;
	s->dirty = s->stream == NULL;
	s->wgen++;
}

static void changed(digests *d, struct dstate *s)
{
	tell_gone(d, s);
	s->valid = false;
	s->sha_valid = false;
	s->touched = true;
	s->version++;
}

void digests_open_write(digests *d, ino_node *n, int fd, bool truncated)
{
	struct dstate *s = lock_state(d, n);
	struct stat st;
	if (!s)
		return;
	bool empty = fstat(fd, &st) == 0 && st.st_size == 0;
	if (s->writers++ == 0) {
		s->touched = false;
		if (empty) {
			stream_restart(s);
			/* empty now (new, O_TRUNC): changed unless known empty before */
			if (!(s->valid && s->rec.size == 0))
				changed(d, s);
		} else {
			s->dirty = true; /* existing content: reread at the end */
		}
	} else if (empty && !(s->stream && !s->dirty && s->hashed == 0)) {
		/* another writer has it open, and this open emptied it (O_TRUNC):
		 * what was known or streamed is gone */
		changed(d, s);
		stream_restart(s);
	} else if (truncated && !empty) {
		/* this open emptied it, and another writer's write landed
		 * since, before fstat: at the streamed length, the stream
		 * would take it for a continuation of the bytes the
		 * truncation removed (the file has zeros there now) */
		changed(d, s);
		s->dirty = true;
	} else if (truncated) {
		/* this open emptied it while the stream is still at 0: another
		 * writer's write that landed before the truncation (and is
		 * gone) may reach the stream only after this, at offset 0 */
		s->wgen++;
	}
	pthread_mutex_unlock(&s->lock);
}

void digests_write(digests *d, ino_node *n, off_t off, const void *data, size_t len)
{
	digests_write_reply(d, n, digests_write_begin(d, n), off, data, len, NULL, NULL);
}

uint64_t digests_write_begin(digests *d, ino_node *n)
{
	/* on every write: no state lock (bumped under it, read atomically) */
	struct dstate *s = d ? state_of(d, n) : NULL;
	return s ? atomic_load(&s->wgen) : 0;
}

void digests_write_reply(digests *d, ino_node *n, uint64_t token, off_t off, const void *data, size_t len,
			 void (*reply)(void *arg), void *arg)
{
	struct dstate *s = lock_state(d, n);
	if (!s) {
		if (reply)
			reply(arg);
		return;
	}
	changed(d, s);
	/* ordered in the stream under the lock, hashed after the reply: the
	 * next write in order waits for the lock, so it is hashed after these
	 * bytes, while its copy and backing write overlap this hash */
	bool stream = !s->dirty && s->stream && data && (uint64_t)off == s->hashed && token == s->wgen;
	if (stream)
		s->hashed += len;
	else
		s->dirty = true;
	if (reply)
		reply(arg);
	if (stream) {
		hasher_stream_update(s->stream, data, len);
		BUMP(d, c_bytes, len);
	}
	pthread_mutex_unlock(&s->lock);
}

void digests_begin_change(digests *d, ino_node *n)
{
	struct dstate *s = lock_state(d, n);
	if (!s)
		return;
	changed(d, s);
	pthread_mutex_unlock(&s->lock);
}

void digests_invalidate(digests *d, ino_node *n)
{
	struct dstate *s = lock_state(d, n);
	if (!s)
		return;
	changed(d, s);
	s->dirty = true;
	pthread_mutex_unlock(&s->lock);
}

void digests_truncate(digests *d, ino_node *n, off_t size)
{
	struct dstate *s = lock_state(d, n);
	if (!s)
		return;
	changed(d, s);
	if (size == 0 && s->writers > 0)
		stream_restart(s);
	else if (!(s->stream && !s->dirty && (uint64_t)size == s->hashed))
		s->dirty = true; /* a truncate to the streamed length changes nothing */
	pthread_mutex_unlock(&s->lock);
}

void digests_meta_changed(digests *d, ino_node *n, const struct stat *st)
{
	if (!d)
		return;
	if (!S_ISREG(st->st_mode))
		return;
	struct dstate *s = state_peek(n);
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->valid && s->writers == 0 && s->rec.size == (uint64_t)st->st_size) {
		fill_rec_stat(&s->rec, st);
		s->version++;
		enqueue(d, n, s);
	}
	pthread_mutex_unlock(&s->lock);
}

int digests_touched(digests *d, ino_node *n, const struct stat *st, uint64_t version)
{
	struct dstate *s = lock_state(d, n);
	if (!s)
		return -ENOMEM;
	int r = -ESTALE;
	if (s->valid && s->writers == 0 && s->version == version && s->rec.size == (uint64_t)st->st_size &&
	    !__atomic_load_n(&n->detached, __ATOMIC_RELAXED)) {
		fill_rec_stat(&s->rec, st);
		s->version++;
		enqueue(d, n, s);
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* What a hash of a node's file may be abandoned for: the content changed
 * (version), the file lost its last link, the daemon stops. */
struct hash_watch {
	digests *d;
	ino_node *n;
	struct dstate *s;
	uint64_t version;
};

/* The cancellation of the request this thread serves (digests_cancel_scope). */
static __thread const hasher_cancel *tl_cancel;

void digests_cancel_scope(const hasher_cancel *cancel)
{
	tl_cancel = cancel;
}

static bool caller_cancelled(void)
{
	return tl_cancel && tl_cancel->fn(tl_cancel->arg);
}

static bool hash_abandon(void *arg)
{
	struct hash_watch *w = arg;
	return __atomic_load_n(&w->s->version, __ATOMIC_RELAXED) != w->version ||
	       __atomic_load_n(&w->n->detached, __ATOMIC_RELAXED) || __atomic_load_n(&w->d->wstop, __ATOMIC_RELAXED) ||
	       caller_cancelled();
}

/* Hashes the file behind fd (any fd, O_PATH included) with no lock held,
 * its SHA-256 too in the same read when ret_sha is not NULL; the file's
 * stat after the read is in *st.  -EAGAIN when it changed while read,
 * -ECANCELED when abandoned (w may be NULL: never). */
static int hash_file(digests *d, int fd, struct hash_watch *w, hasher_digest *ret, hasher_sha256 *ret_sha,
		     struct stat *st)
{
	uint64_t size;
	int rfd = cache_io_reopen(d->proc_fd, fd, O_RDONLY);
	if (rfd < 0)
		return rfd;
	hasher_cancel c = { hash_abandon, w };
	int r = hasher_digests_fd(rfd, w ? &c : tl_cancel, ret, ret_sha, &size);
	if (r == 0 && fstat(rfd, st) < 0)
		r = -errno;
	close(rfd);
	if (r == -ECANCELED && caller_cancelled())
		r = -EINTR;
	if (r < 0)
		return r;
	BUMP(d, c_bytes, size);
	if (size != (uint64_t)st->st_size)
		return -EAGAIN;
	if (ret_sha)
		BUMP(d, c_sha_read, 1);
	return 0;
}

/* Makes digest (of the file as st describes it) n's current one, with
 * its SHA-256 when sha is not NULL.  State lock held; the event is told by
 * the caller once it unlocked. */
static void set_digest(digests *d, ino_node *n, struct dstate *s, const hasher_digest *digest,
		       const hasher_sha256 *sha, const struct stat *st, int64_t at, bool written,
		       struct known_event *ev)
{
	if (s->valid && !hasher_digest_equal(&s->rec.digest, digest))
		tell_gone(d, s);
	s->rec.digest = *digest;
	fill_rec_stat(&s->rec, st);
	s->rec.hashed_at_ns = at;
	s->valid = true;
	s->sha_valid = sha != NULL;
	if (sha)
		s->sha = *sha;
	s->version++;
	enqueue(d, n, s);
	*ev = (struct known_event){ .set = true, .written = written, .rec = s->rec };
}

/* Adds the SHA-256 of the content of a valid digest: not a change of the
 * content, so the version stays and no one is told.  State lock held. */
static void set_sha256(digests *d, ino_node *n, struct dstate *s, const hasher_sha256 *sha)
{
	s->sha = *sha;
	s->sha_valid = true;
	enqueue(d, n, s);
}

/* Hashes n's file (fd: any fd of it) without holding its state lock and
 * records the digest, and with want_sha its SHA-256 from the same read, if
 * nothing changed meanwhile.  The state lock is held on entry and on
 * return.  0 (s->valid, and s->sha_valid with want_sha), -EAGAIN (changed:
 * try again), -ECANCELED, -errno. */
static int hash_unlocked(digests *d, ino_node *n, struct dstate *s, int fd, bool want_sha, bool written,
			 struct known_event *ev)
{
	struct hash_watch w = { d, n, s, s->version };
	hasher_digest digest;
	hasher_sha256 sha;
	struct stat st;
	int64_t at = now_ns();
	pthread_mutex_unlock(&s->lock);
	int r = hash_file(d, fd, &w, &digest, want_sha ? &sha : NULL, &st);
	pthread_mutex_lock(&s->lock);
	if (r < 0)
		return r;
	if (s->version != w.version || s->writers > 0)
		return -EAGAIN;
	if (!s->valid || !hasher_digest_equal(&s->rec.digest, &digest)) {
		/* (a known digest that differs: the backing was changed behind
		 * our back; the read is the truth) */
		set_digest(d, n, s, &digest, want_sha ? &sha : NULL, &st, at, written, ev);
		if (written)
			BUMP(d, c_reread, 1);
		else
			BUMP(d, c_demand, 1);
	} else if (want_sha && !s->sha_valid) {
		set_sha256(d, n, s, &sha); /* same version: the content rec describes */
	}
	return 0;
}

/* ---- the rehash worker ---------------------------------------------------- */

static void rehash_one(digests *d, struct job *j)
{
	struct known_event ev = { 0 };
	ino_node *n = j->node;
	if (__atomic_load_n(&n->detached, __ATOMIC_RELAXED))
		return; /* deleted: no digest anyone can ask for */
	int fd = ino_node_fd_get(d->tbl, n);
	if (fd < 0)
		return;
	struct dstate *s = lock_state(d, n);
	if (s) {
		if (!s->valid && s->writers == 0 && s->version == j->version)
			hash_unlocked(d, n, s, fd, d->sha_on_write, true, &ev);
		pthread_mutex_unlock(&s->lock);
	}
	ino_node_fd_put(d->tbl, n);
	tell_known(d, n, &ev);
}

static void *worker_main(void *arg)
{
	digests *d = arg;
	pthread_mutex_lock(&d->wlock);
	for (;;) {
		while (!d->jobs[0] && !d->jobs[1] && !d->wstop)
			pthread_cond_wait(&d->wcond, &d->wlock);
		int q = d->jobs[0] ? 0 : 1;
		struct job *j = d->jobs[q];
		if (!j)
			break; /* stopped */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!d->wstop && (now.tv_sec < j->due.tv_sec ||
				  (now.tv_sec == j->due.tv_sec && now.tv_nsec < j->due.tv_nsec))) {
			pthread_cond_timedwait(&d->wcond, &d->wlock, &j->due);
			continue; /* a job due now may have come meanwhile */
		}
		d->jobs[q] = j->next;
		if (!d->jobs[q])
			d->jobs_tail[q] = NULL;
		d->rehashing = j->node;
		pthread_mutex_unlock(&d->wlock);
		if (!__atomic_load_n(&d->wstop, __ATOMIC_RELAXED))
			rehash_one(d, j);
		pthread_mutex_lock(&d->wlock);
		d->rehashing = NULL;
		pthread_cond_broadcast(&d->wdone);
		pthread_mutex_unlock(&d->wlock);
		ino_node_unref(d->tbl, j->node);
		free(j);
		pthread_mutex_lock(&d->wlock);
	}
	pthread_mutex_unlock(&d->wlock);
	return NULL;
}

/* Waits while the worker reads n, so that a request right after the last
 * close of a file written out of order takes the worker's digests instead
 * of reading the file a second time.  (A job still queued is not waited
 * for: the request reads, and the worker then finds the digest known.)
 * State lock held on entry and on return, released while waiting. */
static void wait_rehash(digests *d, ino_node *n, struct dstate *s)
{
	pthread_mutex_lock(&d->wlock);
	bool busy = d->rehashing == n;
	if (busy) {
		pthread_mutex_unlock(&s->lock);
		while (d->rehashing == n && !caller_cancelled()) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&d->wdone, &d->wlock, &ts);
		}
	}
	pthread_mutex_unlock(&d->wlock);
	if (busy)
		pthread_mutex_lock(&s->lock);
}

/* Queues n for the worker, to be re-read no sooner than delay_ms from
 * now.  State lock held (the version is read there). */
static void rehash_later(digests *d, ino_node *n, struct dstate *s, int delay_ms)
{
	struct job *j = malloc(sizeof(*j));
	if (!j)
		return; /* computed on the next request instead */
	ino_node_ref(d->tbl, n);
	j->node = n;
	j->version = s->version;
	clock_gettime(CLOCK_MONOTONIC, &j->due);
	j->due.tv_sec += delay_ms / 1000;
	j->due.tv_nsec += (long)(delay_ms % 1000) * 1000000L;
	if (j->due.tv_nsec >= 1000000000L) {
		j->due.tv_sec++;
		j->due.tv_nsec -= 1000000000L;
	}
	j->next = NULL;
	int q = delay_ms > 0;
	pthread_mutex_lock(&d->wlock);
	if (d->jobs_tail[q])
		d->jobs_tail[q]->next = j;
	else
		d->jobs[q] = j;
	d->jobs_tail[q] = j;
	pthread_cond_signal(&d->wcond);
	pthread_mutex_unlock(&d->wlock);
}

void digests_release_write(digests *d, ino_node *n, int fd, bool recorded)
{
	struct known_event ev = { 0 };
	struct stat st;
	struct dstate *s = lock_state(d, n);
	if (!s)
		return;
	if (--s->writers == 0) {
		/* Opened for writing but never changed: the digest stands (or is
		 * computed on request, as for any file never written here).  A
		 * file whose last link is gone gets no digest at all. */
		if (s->touched && !__atomic_load_n(&n->detached, __ATOMIC_RELAXED)) {
			if (s->stream && !s->dirty && fstat(fd, &st) == 0 && (uint64_t)st.st_size == s->hashed) {
				hasher_digest digest;
				hasher_sha256 sha;
				hasher_stream_final(s->stream, &digest);
				bool with_sha = hasher_stream_final_sha256(s->stream, &sha) == 0;
				set_digest(d, n, s, &digest, with_sha ? &sha : NULL, &st, now_ns(), true, &ev);
				BUMP(d, c_stream, 1);
				if (with_sha)
					BUMP(d, c_sha_stream, 1);
			} else {
				/* never on a request's path; an output a recorder
				 * will read to store gets its digest from that read
				 * (digests_seed_read) unless it takes long */
				rehash_later(d, n, s, recorded ? DIGESTS_RECORDED_DELAY_MS : 0);
			}
		}
		hasher_stream_free(s->stream);
		s->stream = NULL;
		s->hashed = 0;
		s->dirty = false;
	}
	pthread_mutex_unlock(&s->lock);
	tell_known(d, n, &ev);
}

int digests_get(digests *d, ino_node *n, int fd, hasher_digest *ret)
{
	return digests_get_versioned(d, n, fd, ret, NULL);
}

/* Takes n's digest, and its SHA-256 when recorded, from the index if the
 * entry still describes the file (st: its attributes now).  State lock
 * held. */
static void index_load_st(digests *d, struct dstate *s, const struct stat *st, struct known_event *ev)
{
	cache_file_entry e;
	if (cache_index_file_get_entry(d->ix, s->dev, s->ino, &e) < 0 || !cache_file_rec_valid(&e.rec, st))
		return;
	if (!s->valid) {
		s->rec = e.rec;
		s->valid = true;
		s->version++;
		BUMP(d, c_index_hits, 1);
		*ev = (struct known_event){ .set = true, .rec = s->rec };
	} else if (!hasher_digest_equal(&s->rec.digest, &e.rec.digest)) {
		return;
	}
	if (e.has_sha256 && !s->sha_valid) {
		s->sha = e.sha256;
		s->sha_valid = true;
		BUMP(d, c_sha_index_hits, 1);
	}
}

static void index_load(digests *d, struct dstate *s, int fd, struct known_event *ev)
{
	struct stat st;
	if (fstat(fd, &st) == 0)
		index_load_st(d, s, &st, ev);
}

/* The digests of a file still open for writing, from its stream when the
 * stream covers all of it (every write so far was sequential: a process
 * asking right after its close often comes before the RELEASE, which the
 * kernel sends asynchronously).  The bytes of every write replied to are
 * in the stream before its state lock is let go (digests_write_reply), so
 * this is the content every finished write left.  State lock held.  0, or
 * -EAGAIN when the stream cannot tell. */
static int stream_current(digests *d, struct dstate *s, int fd, bool want_sha, hasher_digest *ret,
			  hasher_sha256 *ret_sha)
{
	struct stat st;
	hasher_sha256 sha;
	if (!s->stream || s->dirty || fstat(fd, &st) < 0 || (uint64_t)st.st_size != s->hashed ||
	    (want_sha && hasher_stream_final_sha256(s->stream, &sha) < 0))
		return -EAGAIN;
	if (ret)
		hasher_stream_final(s->stream, ret);
	if (want_sha) {
		*ret_sha = sha;
		BUMP(d, c_sha_stream, 1);
	}
	return 0;
}

/* digests_get_versioned and digests_get_sha256: the XXH3 digest into *ret
 * (may be NULL), and with want_sha the SHA-256 into *ret_sha. */
static int get(digests *d, ino_node *n, int fd, bool want_sha, hasher_digest *ret, hasher_sha256 *ret_sha,
	       uint64_t *ret_version)
{
	struct dstate *s = state_of(d, n);
	struct known_event ev = { 0 };
	int r = 0;
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	/* a writer has it open: what is known stands if it did not change */
	bool standing = s->valid && !s->touched && (!want_sha || s->sha_valid);
	if (s->writers > 0 && !standing && ret_version) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	if (s->writers > 0 && !standing && stream_current(d, s, fd, want_sha, ret, ret_sha) == 0) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (s->writers > 0 && !standing) {
		pthread_mutex_unlock(&s->lock);
		/* being written: hash what is there now, remember nothing */
		struct stat st;
		hasher_digest digest;
		hasher_sha256 sha;
		r = hash_file(d, fd, NULL, &digest, want_sha ? &sha : NULL, &st);
		if (r == -EAGAIN)
			r = hash_file(d, fd, NULL, &digest, want_sha ? &sha : NULL, &st);
		if (r == 0) {
			BUMP(d, c_demand, 1);
			if (ret)
				*ret = digest;
			if (ret_sha)
				*ret_sha = sha;
		}
		return r;
	}
	if (!s->valid && s->writers == 0)
		wait_rehash(d, n, s);
	if ((!s->valid || (want_sha && !s->sha_valid)) && d->ix)
		index_load(d, s, fd, &ev);
	/* with -o sha256 one read gives both */
	for (int tries = 0; (!s->valid || (want_sha && !s->sha_valid)) && tries < 3; tries++) {
		r = hash_unlocked(d, n, s, fd, want_sha || d->sha_on_write, false, &ev);
		if (r != -EAGAIN)
			break;
	}
	if (s->valid && (!want_sha || s->sha_valid)) {
		if (ret)
			*ret = s->rec.digest;
		if (ret_sha)
			*ret_sha = s->sha;
		if (ret_version)
			*ret_version = s->version;
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	tell_known(d, n, &ev);
	return r;
}

int digests_get_versioned(digests *d, ino_node *n, int fd, hasher_digest *ret, uint64_t *ret_version)
{
	return get(d, n, fd, false, ret, NULL, ret_version);
}

int digests_get_sha256(digests *d, ino_node *n, int fd, hasher_sha256 *ret)
{
	return get(d, n, fd, true, NULL, ret, NULL);
}

void digests_seed(digests *d, ino_node *n, const hasher_digest *digest, const struct stat *st)
{
	struct known_event ev = { 0 };
	struct dstate *s = lock_state(d, n);
	if (!s)
		return;
	if (s->writers == 0)
		set_digest(d, n, s, digest, NULL, st, now_ns(), false, &ev);
	pthread_mutex_unlock(&s->lock);
	tell_known(d, n, &ev);
}

void digests_moved(digests *d, ino_node *n, const struct stat *st)
{
	struct known_event ev = { 0 };
	struct dstate *s = d ? lock_state(d, n) : NULL;
	if (!s)
		return;
	bool keep = s->valid && s->writers == 0 && s->rec.size == (uint64_t)st->st_size;
	/* the old inode's digest is gone either way */
	if (keep)
		tell_gone(d, s);
	else
		changed(d, s); /* computed on request, from the copy */
	s->dev = n->dev;
	s->ino = n->ino;
	if (keep) {
		fill_rec_stat(&s->rec, st);
		s->version++;
		enqueue(d, n, s);
		ev = (struct known_event){ .set = true, .rec = s->rec };
	}
	pthread_mutex_unlock(&s->lock);
	tell_known(d, n, &ev);
}

int digests_subscribe(digests *d, const digests_subscriber *sub)
{
	if (!d)
		return 0;
	if (d->nsubs == DIGESTS_MAX_SUBSCRIBERS)
		return -ENOSPC;
	d->subs[d->nsubs++] = *sub;
	return 0;
}

int digests_version(digests *d, ino_node *n, uint64_t *ret_version)
{
	struct dstate *s = lock_state(d, n);
	if (!s)
		return -ENOMEM;
	int r = s->writers == 0 ? 0 : -EBUSY;
	if (r == 0)
		*ret_version = s->version;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int digests_seed_read(digests *d, ino_node *n, const hasher_digest *digest, const struct stat *st,
		      uint64_t version)
{
	struct known_event ev = { 0 };
	struct dstate *s = lock_state(d, n);
	if (!s)
		return -ENOMEM;
	int r = -ESTALE;
	if (s->version == version && s->writers == 0 && !__atomic_load_n(&n->detached, __ATOMIC_RELAXED)) {
		r = 0;
		if (!s->valid) {
			set_digest(d, n, s, digest, NULL, st, now_ns(), s->touched, &ev);
			BUMP(d, c_seeded_by_read, 1);
		}
	}
	pthread_mutex_unlock(&s->lock);
	tell_known(d, n, &ev);
	return r;
}

int digests_peek_stat(digests *d, ino_node *n, const struct stat *st, cache_file_rec *rec, uint64_t *version)
{
	struct known_event ev = { 0 };
	struct dstate *s = d ? state_of(d, n) : NULL;
	if (!s)
		return -EAGAIN;
	int r = -EAGAIN;
	pthread_mutex_lock(&s->lock);
	if (!s->valid && s->writers == 0 && d->ix)
		index_load_st(d, s, st, &ev);
	if (s->valid && s->writers == 0) {
		*rec = s->rec;
		*version = s->version;
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	tell_known(d, n, &ev);
	return r;
}

bool digests_writers(digests *d, ino_node *n)
{
	if (!d)
		return false;
	struct dstate *s = state_peek(n);
	if (!s)
		return false;
	pthread_mutex_lock(&s->lock);
	bool w = s->writers > 0;
	pthread_mutex_unlock(&s->lock);
	return w;
}

int digests_peek(digests *d, ino_node *n, cache_file_rec *rec, uint64_t *version)
{
	if (!d)
		return -EAGAIN;
	struct dstate *s = state_peek(n);
	if (!s)
		return -EAGAIN;
	int r = -EAGAIN;
	pthread_mutex_lock(&s->lock);
	if (s->valid && s->writers == 0) {
		*rec = s->rec;
		*version = s->version;
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}
