/* session.c — see session.h. */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "trace.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9 */
#endif

static bool pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	return poll(&p, 1, 0) == 0; /* readable: it exited */
}

/* Cached attributions (one pidfd each). */
#define CACHE_BUCKETS 1024
#define CACHE_MAX 1024
/* Deepest ancestry walked: deeper callers are treated as in no session. */
#define MAX_DEPTH 128

struct session {
	_Atomic int refs;
	_Atomic bool ended;
	uint64_t id;
	pid_t root_pid;
	int root_pidfd;       /* held: the root's pid cannot be reused meanwhile */
	uid_t uid;
	struct trace *trace;
	struct session *next; /* live sessions, under ss->lock */
};

struct tid_entry {
	pid_t tid;
	int pidfd;
	struct session *s;    /* referenced, or NULL: in no session */
	struct tid_entry *next;
};

struct sessions {
	_Atomic unsigned live;
	pthread_mutex_t lock;
	struct session *list;
	uint64_t next_id;
	struct tid_entry *cache[CACHE_BUCKETS];
	size_t cached;
};

int sessions_new(struct sessions **ret)
{
	struct sessions *ss = calloc(1, sizeof(*ss));
	if (!ss)
		return -ENOMEM;
	pthread_mutex_init(&ss->lock, NULL);
	ss->next_id = 1;
	*ret = ss;
	return 0;
}

static void entry_free(struct tid_entry *e)
{
	if (e->pidfd >= 0)
		close(e->pidfd);
	if (e->s)
		session_put(e->s);
	free(e);
}

static void cache_clear(struct sessions *ss)
{
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
		while (ss->cache[b]) {
			struct tid_entry *e = ss->cache[b];
			ss->cache[b] = e->next;
			entry_free(e);
		}
	}
	ss->cached = 0;
}

void sessions_free(struct sessions *ss)
{
	if (!ss)
		return;
	cache_clear(ss);
	while (ss->list) {
		struct session *s = ss->list;
		ss->list = s->next;
		atomic_store(&s->ended, true);
		session_put(s);
	}
	pthread_mutex_destroy(&ss->lock);
	free(ss);
}

void session_ref(struct session *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void session_put(struct session *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		trace_free(s->trace);
		if (s->root_pidfd >= 0)
			close(s->root_pidfd);
		free(s);
	}
}

uint64_t session_id(const struct session *s) { return s->id; }
uid_t session_uid(const struct session *s) { return s->uid; }
struct trace *session_trace(struct session *s) { return s->trace; }
bool session_ended(const struct session *s) { return atomic_load(&s->ended); }
unsigned sessions_live(const struct sessions *ss) { return atomic_load(&ss->live); }

void sessions_each_live(struct sessions *ss, const struct session *except,
			void (*fn)(void *arg, struct session *s), void *arg)
{
	pthread_mutex_lock(&ss->lock);
	for (struct session *s = ss->list; s; s = s->next)
		if (s != except)
			fn(arg, s);
	pthread_mutex_unlock(&ss->lock);
}

/* The kernel's own answer about a pidfd (Linux 6.13): pid, tgid and parent
 * in the daemon's pid namespace, read without any lock a task in the middle
 * of execve may hold.  (Reading /proc/<pid>/stat there can wait for that
 * task, which may itself wait for this daemon: a FLUSH of a FUSE file closed
 * at exec.) */
struct pidfd_info_v1 {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid;
	uint32_t ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
	uint32_t coredump_mask, spare;
};
#define PIDFD_INFO_PID_ 1ull
#define PIDFD_GET_INFO_ _IOWR(0xFF, 11, struct pidfd_info_v1)

static int pidfd_info(int pidfd, struct pidfd_info_v1 *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->mask = PIDFD_INFO_PID_;
	if (ioctl(pidfd, PIDFD_GET_INFO_, ret) < 0)
		return -errno;
	return 0;
}

/* The live session whose root is process pid, referenced; lock held.
 * Roots are alive (their pidfd is held) while listed, so a pid names one
 * process. */
static struct session *root_find(struct sessions *ss, pid_t pid)
{
	for (struct session *s = ss->list; s; s = s->next)
		if (s->root_pid == pid && !atomic_load(&s->ended) && pidfd_alive(s->root_pidfd)) {
			session_ref(s);
			return s;
		}
	return NULL;
}

/* Walks the ancestry of the task behind pidfd up to a session root.
 * Returns a referenced session or NULL. */
static struct session *walk(struct sessions *ss, int pidfd)
{
	struct pidfd_info_v1 info;
	int cur = dup(pidfd);
	struct session *s = NULL;
	for (int depth = 0; cur >= 0 && depth < MAX_DEPTH; depth++) {
		if (pidfd_info(cur, &info) < 0 || info.ppid <= 1)
			break;
		pthread_mutex_lock(&ss->lock);
		s = root_find(ss, (pid_t)info.ppid);
		pthread_mutex_unlock(&ss->lock);
		if (s)
			break;
		/* the parent's pidfd; it is the parent only if the child
		 * still names it after we opened it (else the parent died,
		 * its pid may be another's, and the child was reparented) */
		int parent = (int)syscall(SYS_pidfd_open, (pid_t)info.ppid, 0);
		struct pidfd_info_v1 again;
		if (parent < 0 || pidfd_info(cur, &again) < 0 || again.ppid != info.ppid) {
			if (parent >= 0)
				close(parent);
			continue; /* reparented meanwhile: look at the new parent */
		}
		close(cur);
		cur = parent;
	}
	if (cur >= 0)
		close(cur);
	return s;
}

bool session_caller_compiles(pid_t tid)
{
	char path[32], comm[32];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return false;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	static const char *const prefixes[] = { "cc1", "f951", "lto1", "clang" };
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(comm, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

struct session *session_of_caller(struct sessions *ss, pid_t tid)
{
	if (!ss || atomic_load_explicit(&ss->live, memory_order_acquire) == 0)
		return NULL;
	size_t b = (size_t)tid % CACHE_BUCKETS;
	pthread_mutex_lock(&ss->lock);
	struct tid_entry **pp = &ss->cache[b];
	while (*pp && (*pp)->tid != tid)
		pp = &(*pp)->next;
	if (*pp) {
		struct tid_entry *e = *pp;
		if (pidfd_alive(e->pidfd)) {
			struct session *s = e->s && !atomic_load(&e->s->ended) ? e->s : NULL;
			if (s)
				session_ref(s);
			pthread_mutex_unlock(&ss->lock);
			return s;
		}
		*pp = e->next; /* that thread is gone: tid reused */
		ss->cached--;
		entry_free(e);
	}
	pthread_mutex_unlock(&ss->lock);

	/* The caller waits for our reply, so it is alive while we look. */
	int pidfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
	if (pidfd < 0)
		return NULL; /* gone (or a kernel before 6.9): in no session */
	struct session *s = walk(ss, pidfd);
	struct tid_entry *e = malloc(sizeof(*e));
	if (!e) {
		close(pidfd);
		return s;
	}
	e->tid = tid;
	e->pidfd = pidfd;
	e->s = s;
	if (s)
		session_ref(s);
	pthread_mutex_lock(&ss->lock);
	if (ss->cached >= CACHE_MAX)
		cache_clear(ss); /* rare: many threads at once; start over */
	e->next = ss->cache[b];
	ss->cache[b] = e;
	ss->cached++;
	pthread_mutex_unlock(&ss->lock);
	return s;
}

int session_begin(struct sessions *ss, pid_t tid, uid_t uid, struct trace *tr, struct session **ret)
{
	struct pidfd_info_v1 info;
	int tfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
	if (tfd < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	int r = pidfd_info(tfd, &info);
	close(tfd);
	if (r < 0)
		return r;
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)info.tgid, 0);
	if (pidfd < 0)
		return -errno;
	struct session *s = calloc(1, sizeof(*s));
	if (!s) {
		close(pidfd);
		return -ENOMEM;
	}
	atomic_init(&s->refs, 2); /* the list's and the caller's */
	s->root_pid = (pid_t)info.tgid;
	s->root_pidfd = pidfd;
	s->uid = uid;
	s->trace = tr;
	pthread_mutex_lock(&ss->lock);
	s->id = ss->next_id++;
	s->next = ss->list;
	ss->list = s;
	/* No cached answer can be wrong about the new session: its root is
	 * not traced, and every descendant is a thread not seen before (or
	 * one whose tid is reused, whose pidfd tells). */
	atomic_fetch_add_explicit(&ss->live, 1, memory_order_release);
	pthread_mutex_unlock(&ss->lock);
	*ret = s;
	return 0;
}

void session_end(struct sessions *ss, struct session *s)
{
	pthread_mutex_lock(&ss->lock);
	struct session **pp = &ss->list;
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	bool listed = *pp != NULL;
	if (listed)
		*pp = s->next;
	atomic_store(&s->ended, true);
	if (listed)
		atomic_fetch_sub_explicit(&ss->live, 1, memory_order_release);
	pthread_mutex_unlock(&ss->lock);
	if (listed)
		session_put(s); /* the list's reference */
}
