/* ingest.c — storing contents of the mount in the store, off the request
 * path: one worker thread takes queued files (with -o ingest=all, every
 * regular file at the last close of a writer) and puts them with their
 * known digest, so a content already stored costs no read at all.  A file
 * changed again before its turn no longer has that digest and is skipped
 * (its next close queues it again).
 *
 * The same worker collects the store (cache_gc) when it grew past its
 * limit, so no request ever waits for an eviction.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "gc.h"
#include "ingest.h"
#include "state.h"

/* A full queue makes the rehash worker wait when it queues a file; a
 * request never waits (the queue grows instead): no file is dropped. */
#define QUEUE_MAX 4096

struct job {
	ino_node *node; /* referenced */
	hasher_digest digest;
	struct job *next;
};

struct ingest {
	pthread_mutex_t lock;
	pthread_cond_t work, space;
	struct job *head, *tail;
	size_t queued;
	bool gc_wanted;
	bool stop;
	pthread_t thread;
	cache_put_opts opts;
};

/* Returns true when new bytes went into the store. */
static bool store_one(struct ingest *g, struct job *j)
{
	cache_put_result res;
	int fd = fs_node_open(j->node, O_RDONLY);
	if (fd == -ESTALE || fd == -ENOENT) {
		COUNT(ingest_skipped); /* gone */
		return false;
	}
	if (fd < 0) {
		COUNT(ingest_errors);
		fprintf(stderr, "casfs: ingest: cannot open a file to store it: %s\n", strerror(-fd));
		return false;
	}
	cache_put_opts o = g->opts;
	o.has_expect = true;
	o.expect = j->digest;
	int r = cache_put_fd(FS->ix, fd, &o, &res);
	close(fd);
	if (r == -ESTALE) {
		COUNT(ingest_skipped); /* changed since: its next close queues it */
	} else if (r < 0) {
		COUNT(ingest_errors);
		char hex[HASHER_HEX_LEN + 1];
		hasher_digest_to_hex(&j->digest, hex);
		fprintf(stderr, "casfs: ingest: cannot store %s: %s\n", hex, strerror(-r));
	} else if (res.existed) {
		COUNT(ingest_existing);
	} else {
		COUNT(ingest_stored);
		COUNT_N(ingest_bytes, res.size);
		return true;
	}
	return false;
}

/* Commits the records of the contents stored since the last time. */
static void flush_records(void)
{
	int r = cache_index_flush(FS->ix);
	if (r < 0)
		fprintf(stderr, "casfs: ingest: the index of store %s could not record contents (%s): "
			"they are kept, and casfs fsck records them\n", cache_store_path(FS->o.store), strerror(-r));
}

static void collect(void)
{
	cache_totals t;
	cache_gc_result res;
	if (cache_index_totals(FS->ix, &t) < 0 || t.stored <= cache_totals_max_size(&t))
		return;
	int r = cache_gc(FS->ix, 0, false, NULL, NULL, &res);
	if (r == -EBUSY)
		return; /* another process is collecting */
	COUNT(gc_runs);
	COUNT_N(gc_evicted, res.evicted);
	if (r < 0)
		fprintf(stderr, "casfs: gc of store %s failed: %s\n", cache_store_path(FS->o.store), strerror(-r));
}

static void *worker(void *arg)
{
	struct ingest *g = arg;
	for (;;) {
		pthread_mutex_lock(&g->lock);
		while (!g->head && !g->stop && !g->gc_wanted)
			pthread_cond_wait(&g->work, &g->lock);
		struct job *j = g->head;
		if (j) {
			g->head = j->next;
			if (!g->head)
				g->tail = NULL;
			g->queued--;
			pthread_cond_signal(&g->space);
		}
		bool gc = !j && g->gc_wanted; /* once the queue is empty */
		g->gc_wanted &= !gc;
		pthread_mutex_unlock(&g->lock);
		if (!j && !gc)
			break; /* stopped and drained */
		if (j) {
			bool grew = store_one(g, j);
			ino_node_unref(FS->tbl, j->node);
			free(j);
			pthread_mutex_lock(&g->lock);
			g->gc_wanted |= grew;
			bool idle = !g->head;
			pthread_mutex_unlock(&g->lock);
			if (idle)
				flush_records();
		}
		if (gc)
			collect();
	}
	return NULL;
}

int ingest_new(struct ingest **ret)
{
	struct ingest *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->work, NULL);
	pthread_cond_init(&g->space, NULL);
	g->opts.mode = FS->o.compression;
	g->opts.defer_record = true; /* committed when the queue runs dry */
	g->opts.zstd_level = FS->o.zstd_level;
	g->gc_wanted = true; /* the store may be over its limit already */
	int r = pthread_create(&g->thread, NULL, worker, g);
	if (r) {
		free(g);
		return -r;
	}
	*ret = g;
	return 0;
}

void ingest_free(struct ingest *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_cond_signal(&g->work);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	pthread_cond_destroy(&g->work);
	pthread_cond_destroy(&g->space);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

void ingest_queue(struct ingest *g, ino_node *n, const hasher_digest *d)
{
	struct job *j = malloc(sizeof(*j));
	if (!j) {
		COUNT(ingest_errors);
		return;
	}
	ino_node_ref(FS->tbl, n);
	j->node = n;
	j->digest = *d;
	j->next = NULL;
	pthread_mutex_lock(&g->lock);
	while (g->queued >= QUEUE_MAX && !g->stop && !fs_request_thread)
		pthread_cond_wait(&g->space, &g->lock);
	if (g->tail)
		g->tail->next = j;
	else
		g->head = j;
	g->tail = j;
	g->queued++;
	COUNT(ingest_queued);
	pthread_cond_signal(&g->work);
	pthread_mutex_unlock(&g->lock);
}

static void on_known(void *arg, ino_node *n, const cache_file_rec *rec, bool written)
{
	struct ingest *g = arg;
	if (written && FS->o.ingest_all && g)
		ingest_queue(g, n, &rec->digest);
}

const digests_subscriber ingest_subscriber = { .known = on_known };
