/* spares.c — see spares.h. */
#include "spares.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct fs_spares {
	int dirfd;
	dev_t dev;
	unsigned keep;
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* the worker waits for a take or the stop */
	int *fds;             /* keep slots, n of them ready */
	unsigned n;
	int *doomed;          /* fds to close, ndoomed of keep slots */
	unsigned ndoomed;
	bool wanted;          /* a take happened: keep the pool full */
	bool sleeping;        /* the worker waits and was not signalled since */
	bool unsupported;     /* O_TMPFILE refused here */
	bool stop;
	pthread_t worker;
};

static void *worker_main(void *arg)
{
	fs_spares *s = arg;
	/* A take wakes the worker in the middle of a restore: as a normal
	 * thread it preempted the request's thread on its CPU for the ~0.1-0.3
	 * ms an inode takes to make (0.26-0.30 ms per hit measured); a batch
	 * thread never preempts on wake-up, it runs once the CPU is free. */
	struct sched_param sp = { 0 };
	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stop && !s->ndoomed && (!s->wanted || s->unsupported || s->n >= s->keep)) {
			s->sleeping = true;
			pthread_cond_wait(&s->cond, &s->lock);
			s->sleeping = false;
		}
		if (s->stop)
			break;
		if (s->ndoomed) {
			int fd = s->doomed[--s->ndoomed];
			pthread_mutex_unlock(&s->lock);
			close(fd);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		pthread_mutex_unlock(&s->lock);
		/* the slow part, with nothing held */
		int fd = openat(s->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		int e = errno;
		pthread_mutex_lock(&s->lock);
		if (fd < 0) {
			/* EOPNOTSUPP/EISDIR: no O_TMPFILE here; anything
			 * else (ENOSPC, EMFILE): stop until the next take */
			if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL)
				s->unsupported = true;
			s->wanted = false;
			continue;
		}
		if (s->n < s->keep && !s->stop)
			s->fds[s->n++] = fd;
		else
			close(fd);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int fs_spares_new(int dirfd, unsigned keep, fs_spares **ret)
{
	struct stat st;
	if (fstat(dirfd, &st) < 0)
		return -errno;
	fs_spares *s = calloc(1, sizeof(*s));
	int *fds = calloc(keep ? keep : 1, sizeof(*fds));
	int *doomed = calloc(keep ? keep : 1, sizeof(*doomed));
	if (!s || !fds || !doomed) {
		free(s);
		free(fds);
		free(doomed);
		return -ENOMEM;
	}
	s->doomed = doomed;
	s->dirfd = dirfd;
	s->dev = st.st_dev;
	s->keep = keep;
	s->fds = fds;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	int r = pthread_create(&s->worker, NULL, worker_main, s);
	if (r) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		free(fds);
		free(doomed);
		free(s);
		return -r;
	}
	*ret = s;
	return 0;
}

void fs_spares_free(fs_spares *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->worker, NULL);
	while (s->n)
		close(s->fds[--s->n]);
	while (s->ndoomed)
		close(s->doomed[--s->ndoomed]);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->fds);
	free(s->doomed);
	free(s);
}

/* Wakes the worker if it sleeps; it looks at everything again before it
 * sleeps.  Called with the lock.  One signal per sleep: glibc's
 * pthread_cond_signal can wait for a waiter signalled before to run, and on
 * a busy machine that was 0.1-0.4 ms of a restore's request. */
static void wake_locked(fs_spares *s)
{
	if (s->sleeping) {
		s->sleeping = false;
		pthread_cond_signal(&s->cond);
	}
}

int fs_spares_take(fs_spares *s, dev_t dev)
{
	if (dev != s->dev)
		return -EXDEV;
	int fd = -EAGAIN;
	pthread_mutex_lock(&s->lock);
	if (s->unsupported)
		fd = -EOPNOTSUPP;
	else if (s->n)
		fd = s->fds[--s->n];
	if (!s->unsupported) {
		s->wanted = true;
		wake_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	return fd;
}

void fs_spares_dispose(fs_spares *s, int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&s->lock);
	bool queued = !s->stop && s->ndoomed < s->keep;
	if (queued) {
		s->doomed[s->ndoomed++] = fd;
		wake_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (!queued)
		close(fd);
}

int fs_spares_publish(int fd, int dirfd, const char *name)
{
	static _Atomic unsigned seq;
	char tmp[64], self[32];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	for (int i = 0; i < 1000; i++) {
		snprintf(tmp, sizeof(tmp), ".casfs-get-%d-s%u", (int)getpid(), atomic_fetch_add(&seq, 1));
		/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd does not */
		int r = linkat(fd, "", dirfd, tmp, AT_EMPTY_PATH);
		if (r < 0 && (errno == ENOENT || errno == EPERM))
			r = linkat(AT_FDCWD, self, dirfd, tmp, AT_SYMLINK_FOLLOW);
		if (r < 0 && errno == EEXIST)
			continue;
		if (r < 0)
			return -errno;
		if (renameat(dirfd, tmp, dirfd, name) < 0) {
			int e = errno;
			unlinkat(dirfd, tmp, 0);
			return -e;
		}
		return 0;
	}
	return -EEXIST;
}
