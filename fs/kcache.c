/* kcache.c — see kcache.h. */
#include "kcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "state.h"
#include "trace.h"

struct neg {
	fuse_ino_t parent;
	struct neg *next;
	char name[];
};

struct dirq {
	fuse_ino_t dir;
	struct dirq *next;
};

struct kcache {
	struct fuse_session *se;
	pthread_mutex_t lock;      /* the sets, and the live/cacheable decision */
	struct neg *negs;          /* cacheable negatives handed out */
	size_t nnegs;
	struct dirq *listed;       /* listings the kernel may keep */
	/* the worker: listings to drop while sessions are live */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	struct dirq *todo;
	bool stop;
	pthread_t worker;
	bool started;
};

static void drop_listing(struct kcache *k, fuse_ino_t dir)
{
	/* the directory's pages are its cached listing */
	fuse_lowlevel_notify_inval_inode(k->se, dir, 0, 0);
}

static void *worker_main(void *arg)
{
	struct kcache *k = arg;
	pthread_mutex_lock(&k->wlock);
	for (;;) {
		while (!k->todo && !k->stop)
			pthread_cond_wait(&k->wcond, &k->wlock);
		struct dirq *q = k->todo;
		if (!q)
			break;
		k->todo = q->next;
		pthread_mutex_unlock(&k->wlock);
		drop_listing(k, q->dir);
		COUNT(kernel_listings_dropped);
		free(q);
		pthread_mutex_lock(&k->wlock);
	}
	pthread_mutex_unlock(&k->wlock);
	return NULL;
}

int kcache_new(struct fuse_session *se, struct kcache **ret)
{
	struct kcache *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->se = se;
	pthread_mutex_init(&k->lock, NULL);
	pthread_mutex_init(&k->wlock, NULL);
	pthread_cond_init(&k->wcond, NULL);
	int r = pthread_create(&k->worker, NULL, worker_main, k);
	if (r) {
		free(k);
		return -r;
	}
	k->started = true;
	*ret = k;
	return 0;
}

static void free_lists(struct neg *n, struct dirq *d)
{
	while (n) {
		struct neg *x = n->next;
		free(n);
		n = x;
	}
	while (d) {
		struct dirq *x = d->next;
		free(d);
		d = x;
	}
}

void kcache_free(struct kcache *k)
{
	if (!k)
		return;
	if (k->started) {
		pthread_mutex_lock(&k->wlock);
		k->stop = true;
		pthread_cond_signal(&k->wcond);
		pthread_mutex_unlock(&k->wlock);
		pthread_join(k->worker, NULL);
	}
	free_lists(k->negs, k->listed);
	free_lists(NULL, k->todo);
	pthread_cond_destroy(&k->wcond);
	pthread_mutex_destroy(&k->wlock);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

struct shared {
	ino_node *parent;
	const char *name;
};

static void share_absence(void *arg, struct session *s)
{
	struct shared *sh = arg;
	trace_absent_shared(session_trace(s), sh->parent, sh->name);
}

bool kcache_negative(struct kcache *k, struct sessions *ss, struct session *caller, bool seen_before,
		     fuse_ino_t parent, ino_node *pnode, const char *name)
{
	size_t l = strlen(name);
	struct neg *n = malloc(sizeof(*n) + l + 1);
	pthread_mutex_lock(&k->lock);
	/* (past a million remembered, absences are simply not cached) */
	unsigned live = sessions_live(ss);
	bool cacheable = n && k->nnegs < (1u << 20) && (live == 0 || (caller && seen_before));
	if (cacheable) {
		n->parent = parent;
		memcpy(n->name, name, l + 1);
		n->next = k->negs;
		k->negs = n;
		k->nnegs++;
		n = NULL;
		if (live) {
			/* every other live run may now be answered from the
			 * cache: each records the absence now (a session
			 * begins under k->lock, so none is missed) */
			struct shared sh = { pnode, name };
			sessions_each_live(ss, caller, share_absence, &sh);
			COUNT(kernel_negatives_shared);
		}
	}
	pthread_mutex_unlock(&k->lock);
	free(n);
	return cacheable;
}

void kcache_listed(struct kcache *k, struct sessions *ss, fuse_ino_t dir)
{
	struct dirq *d = malloc(sizeof(*d));
	if (!d)
		return; /* cannot remember it: drop it at once instead */
	d->dir = dir;
	pthread_mutex_lock(&k->lock);
	bool live = sessions_live(ss) > 0;
	if (!live) {
		d->next = k->listed;
		k->listed = d;
	}
	pthread_mutex_unlock(&k->lock);
	if (live) {
		pthread_mutex_lock(&k->wlock);
		d->next = k->todo;
		k->todo = d;
		pthread_cond_signal(&k->wcond);
		pthread_mutex_unlock(&k->wlock);
	}
}

int kcache_begin_session(struct kcache *k, int (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&k->lock);
	int r = fn(arg);
	struct neg *negs = k->negs;
	struct dirq *listed = k->listed;
	k->negs = NULL;
	k->nnegs = 0;
	k->listed = NULL;
	pthread_mutex_unlock(&k->lock);
	/* A lookup still in flight holds its directory (shared); expiring
	 * takes it exclusively, so such a negative is installed first and
	 * expired after. */
	for (struct neg *n = negs; n; n = n->next) {
		fuse_lowlevel_notify_expire_entry(k->se, n->parent, n->name, strlen(n->name), FUSE_LL_EXPIRE_ONLY);
		COUNT(kernel_negatives_expired);
	}
	for (struct dirq *d = listed; d; d = d->next) {
		drop_listing(k, d->dir);
		COUNT(kernel_listings_dropped);
	}
	free_lists(negs, listed);
	return r;
}
