/* trace.c — see trace.h. */
#include "trace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "session.h"
#include "state.h"

#define BUCKETS 4096
/* A run that touches more paths is not cached (and stops recording). */
#define MAX_PATHS (1u << 20)

enum { P_SEEN = 1, P_CHANGED = 2, P_EXISTED = 4, P_IMPLIED = 8, P_MOVED_IN = 16 };

struct pentry {
	char *path;            /* mount-relative */
	uint8_t flags;         /* P_IMPLIED: its absence was only the lookup of
				  the open that created it (O_CREAT|O_TRUNC) */
	size_t in;             /* P_SEEN: its input's index */
	unsigned negs;         /* lookups that found it absent */
	pid_t neg_tid;         /* the thread of the last one */
	struct pentry *next;
};

struct tin {
	action_input in;       /* in.path points to the pentry's path */
	struct pentry *pe;
	ino_node *node;        /* ACTION_IN_FILE: referenced */
	uint64_t version;
};

struct trace {
	pthread_mutex_t lock;
	pthread_cond_t wcond;
	struct pentry *buckets[BUCKETS];
	size_t npaths;
	struct tin *ins;
	size_t nin, capin;
	struct pentry **changed; /* in order of first change */
	size_t nch, capch;
	enum trace_problem problem;
	_Atomic bool watch_compilers;
	int writers;
	char *root_abs;          /* the root as the command sees it, or NULL */
};

int trace_new(struct trace **ret)
{
	struct trace *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->wcond, NULL);
	*ret = t;
	return 0;
}

void trace_free(struct trace *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nin; i++)
		if (t->ins[i].node)
			ino_node_unref(FS->tbl, t->ins[i].node);
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct pentry *p = t->buckets[b], *nx; p; p = nx) {
			nx = p->next;
			free(p->path);
			free(p);
		}
	free(t->ins);
	free(t->changed);
	free(t->root_abs);
	pthread_cond_destroy(&t->wcond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static void problem(struct trace *t, enum trace_problem p);

void trace_nested(struct trace *t)
{
	problem(t, TRACE_NESTED);
}

void trace_watch_compilers(struct trace *t)
{
	atomic_store(&t->watch_compilers, true);
}

bool trace_watching(struct trace *t)
{
	return atomic_load_explicit(&t->watch_compilers, memory_order_relaxed) && t->problem == TRACE_OK;
}

void trace_compiler(struct trace *t)
{
	problem(t, TRACE_HIDDEN_COMPILE);
}

static void problem(struct trace *t, enum trace_problem p)
{
	pthread_mutex_lock(&t->lock);
	if (t->problem == TRACE_OK)
		t->problem = p;
	pthread_mutex_unlock(&t->lock);
}

static size_t path_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h % BUCKETS);
}

/* The entry of path, created when absent (lock held).  NULL on ENOMEM or
 * past MAX_PATHS (the problem is set). */
static struct pentry *pentry_get(struct trace *t, const char *path)
{
	size_t b = path_hash(path);
	for (struct pentry *p = t->buckets[b]; p; p = p->next)
		if (strcmp(p->path, path) == 0)
			return p;
	if (t->npaths >= MAX_PATHS) {
		if (t->problem == TRACE_OK)
			t->problem = TRACE_TOO_BIG;
		return NULL;
	}
	struct pentry *p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		if (t->problem == TRACE_OK)
			t->problem = TRACE_NOMEM;
		return NULL;
	}
	p->next = t->buckets[b];
	t->buckets[b] = p;
	t->npaths++;
	return p;
}

/* n's mount-relative path into buf; sets TRACE_NO_PATH when unknown. */
static bool node_path(struct trace *t, ino_node *n, char *buf, size_t len)
{
	if (ino_node_path(FS->tbl, n, buf, len) >= 0)
		return true;
	problem(t, TRACE_NO_PATH);
	return false;
}

/* parent's path + "/" + name into buf. */
static bool child_path(struct trace *t, ino_node *parent, const char *name, char *buf, size_t len)
{
	if (!node_path(t, parent, buf, len))
		return false;
	size_t l = strlen(buf);
	int w = snprintf(buf + l, len - l, "%s%s", l ? "/" : "", name);
	if (w < 0 || (size_t)w >= len - l) {
		problem(t, TRACE_NO_PATH);
		return false;
	}
	return true;
}

/* A stat-only probe says less than a read, a listing or a readlink of the
 * same path that follows: those replace it.  Anything else observed first
 * stands. */
static bool replaces(const struct trace *t, const struct pentry *p, int kind)
{
	return (p->flags & P_SEEN) && !(p->flags & P_CHANGED) && t->ins[p->in].in.kind == ACTION_IN_EXISTS &&
	       (kind == ACTION_IN_FILE || kind == ACTION_IN_DIR || kind == ACTION_IN_SYMLINK);
}

/* Appends an input observed at path unless the path was observed (more
 * than probed) or changed before.  node (FILE) gets a reference.  Lock
 * taken here. */
static void add_input(struct trace *t, const char *path, const action_input *in, ino_node *node, uint64_t version)
{
	pthread_mutex_lock(&t->lock);
	struct pentry *p = pentry_get(t, path);
	if (p && replaces(t, p, in->kind)) {
		struct tin *ti = &t->ins[p->in];
		ti->in = *in;
		ti->in.path = p->path;
		ti->node = node;
		ti->version = version;
		if (node)
			ino_node_ref(FS->tbl, node);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (!p || (p->flags & (P_SEEN | P_CHANGED))) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (t->nin == t->capin) {
		size_t cap = t->capin ? t->capin * 2 : 64;
		struct tin *a = realloc(t->ins, cap * sizeof(*a));
		if (!a) {
			if (t->problem == TRACE_OK)
				t->problem = TRACE_NOMEM;
			pthread_mutex_unlock(&t->lock);
			return;
		}
		t->ins = a;
		t->capin = cap;
	}
	p->flags |= P_SEEN;
	p->in = t->nin;
	struct tin *ti = &t->ins[t->nin++];
	ti->in = *in;
	ti->in.path = p->path;
	ti->pe = p;
	ti->node = node;
	ti->version = version;
	if (node)
		ino_node_ref(FS->tbl, node);
	pthread_mutex_unlock(&t->lock);
}

/* Notes a change of path; the first change says whether it existed. */
static void add_change(struct trace *t, const char *path, bool existed)
{
	pthread_mutex_lock(&t->lock);
	struct pentry *p = pentry_get(t, path);
	if (p && !(p->flags & P_CHANGED)) {
		if (t->nch == t->capch) {
			size_t cap = t->capch ? t->capch * 2 : 64;
			struct pentry **a = realloc(t->changed, cap * sizeof(*a));
			if (!a) {
				if (t->problem == TRACE_OK)
					t->problem = TRACE_NOMEM;
				pthread_mutex_unlock(&t->lock);
				return;
			}
			t->changed = a;
			t->capch = cap;
		}
		p->flags |= P_CHANGED | (existed ? P_EXISTED : 0);
		t->changed[t->nch++] = p;
	}
	pthread_mutex_unlock(&t->lock);
}

/* True when an observation of kind at path would be dropped (the path
 * was observed, more than probed, or changed before). */
static bool already(struct trace *t, const char *path, int kind)
{
	pthread_mutex_lock(&t->lock);
	size_t b = path_hash(path);
	bool seen = false;
	for (struct pentry *p = t->buckets[b]; p; p = p->next)
		if (strcmp(p->path, path) == 0) {
			seen = (p->flags & (P_SEEN | P_CHANGED)) != 0 && !replaces(t, p, kind);
			break;
		}
	pthread_mutex_unlock(&t->lock);
	return seen;
}

void trace_read(struct trace *t, ino_node *n, int fd)
{
	char path[PATH_MAX];
	if (!node_path(t, n, path, sizeof(path)) || already(t, path, ACTION_IN_FILE))
		return;
	action_input in = { .kind = ACTION_IN_FILE, .digest_kind = ACTION_DIGEST_PLAIN };
	uint64_t version = 0;
	struct stat st;
	if (fs_stat_fd(fd, &st) < 0) {
		problem(t, TRACE_NO_PATH);
		return;
	}
	in.mode = st.st_mode & 07777; /* cp -p and friends carry it over */
	/* another handle has it open for writing (the run's own make its path
	 * a change, never read here): what the run reads may be bytes the
	 * daemon has not seen, the dirty pages of a shared writable mapping */
	if (FS->dg && digests_writers(FS->dg, n)) {
		problem(t, TRACE_INPUT_WRITTEN);
		return;
	}
	int r = FS->dg ? digests_get_versioned(FS->dg, n, fd, &in.digest, &version) : -ENODATA;
	if (r < 0) {
		problem(t, r == -EBUSY ? TRACE_INPUT_WRITTEN : TRACE_NOMEM);
		return;
	}
	add_input(t, path, &in, n, version);
}

/* The path (mount-relative) a change was made to, by another session or
 * by no session. */
/* The entry of path, or NULL.  Lock held. */
static struct pentry *pentry_peek(struct trace *t, const char *path)
{
	struct pentry *p = t->buckets[path_hash(path)];
	while (p && strcmp(p->path, path) != 0)
		p = p->next;
	return p;
}

bool trace_read_digest(struct trace *t, const char *path, hasher_digest *ret)
{
	pthread_mutex_lock(&t->lock);
	struct pentry *p = pentry_peek(t, path);
	bool read = p && (p->flags & P_SEEN) && !(p->flags & P_CHANGED) && t->ins[p->in].in.kind == ACTION_IN_FILE &&
		    t->ins[p->in].in.digest_kind == ACTION_DIGEST_PLAIN;
	if (read)
		*ret = t->ins[p->in].in.digest;
	pthread_mutex_unlock(&t->lock);
	return read;
}

/* Whether another process's change of path (made, removed, renamed)
 * changes what the run observed: the name itself (absent, present, read,
 * listed), its directory's listing, or, with tree (the name was moved
 * away: a directory's whole subtree went with it), anything it observed
 * below it.  Lock held. */
static bool input_touched(struct trace *t, const char *path, bool tree)
{
	struct pentry *p = pentry_peek(t, path);
	if (p && (p->flags & P_SEEN) && !(p->flags & P_CHANGED))
		return true;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		dir[0] = '\0';
	p = pentry_peek(t, dir);
	if (p && (p->flags & P_SEEN) && !(p->flags & P_CHANGED) && t->ins[p->in].in.kind == ACTION_IN_DIR)
		return true;
	if (!tree)
		return false;
	size_t l = strlen(path);
	for (size_t b = 0; b < BUCKETS; b++)
		for (p = t->buckets[b]; p; p = p->next)
			if ((p->flags & P_SEEN) && !(p->flags & P_CHANGED) && (!l || !strncmp(p->path, path, l)) &&
			    p->path[l] == '/')
				return true;
	return false;
}

struct foreign {
	const char *path;
	bool tree;
};

static void foreign_one(void *arg, struct session *s)
{
	const struct foreign *fc = arg;
	const char *path = fc->path;
	struct trace *t = session_trace(s);
	char up[PATH_MAX];
	snprintf(up, sizeof(up), "%s", path);
	pthread_mutex_lock(&t->lock);
	if (t->problem == TRACE_OK && input_touched(t, path, fc->tree))
		t->problem = TRACE_INPUT_CHANGED;
	for (;;) {
		struct pentry *p = t->buckets[path_hash(up)];
		while (p && strcmp(p->path, up) != 0)
			p = p->next;
		if (p && (p->flags & P_CHANGED)) {
			if (t->problem == TRACE_OK)
				t->problem = TRACE_OUTPUT_CHANGED;
			break;
		}
		char *slash = strrchr(up, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	pthread_mutex_unlock(&t->lock);
}

void trace_foreign_change(struct sessions *ss, const struct session *by, ino_node *n, const char *name)
{
	trace_foreign_change_at(ss, by, n, name, false);
}

void trace_foreign_change_at(struct sessions *ss, const struct session *by, ino_node *n, const char *name,
			     bool moved_away)
{
	char path[PATH_MAX];
	if (sessions_live(ss) == 0 || (by && sessions_live(ss) == 1))
		return;
	if (ino_node_path(FS->tbl, n, path, sizeof(path)) < 0)
		return; /* a node without a known path: it is no traced path */
	size_t l = strlen(path);
	if (name && snprintf(path + l, sizeof(path) - l, "%s%s", l ? "/" : "", name) >= (int)(sizeof(path) - l))
		return;
	struct foreign fc = { path, moved_away };
	sessions_each_live(ss, by, foreign_one, &fc);
}

void trace_write_open(struct trace *t, ino_node *n, int fd, const struct stat *trunc_from)
{
	char path[PATH_MAX];
	if (!node_path(t, n, path, sizeof(path)))
		return;
	char target[PATH_MAX];
	ssize_t l;
	if (!trunc_from) {
		trace_read(t, n, fd); /* what it appends to or patches is read */
	} else if (S_ISDIR(trunc_from->st_mode)) {
		/* chmod'ed or touched: its entries stay, and a listing that
		 * follows (chmod -R, touch d; ls d) sees them */
		trace_listed(t, n, fd);
	} else if (S_ISLNK(trunc_from->st_mode) && (l = readlinkat(fd, "", target, sizeof(target) - 1)) >= 0) {
		target[l] = '\0';
		trace_readlink(t, n, target); /* touch -h: it still leads there */
	} else {
		trace_exists(t, n, trunc_from); /* truncated, it keeps its mode */
	}
	add_change(t, path, true);
}

void trace_source(struct trace *t, ino_node *n, int fd)
{
	struct stat st;
	char target[PATH_MAX];
	if (!n || fs_stat_fd(fd, &st) < 0) {
		problem(t, TRACE_NO_PATH);
		return;
	}
	if (S_ISREG(st.st_mode)) {
		trace_read(t, n, fd);
		return;
	}
	if (S_ISLNK(st.st_mode)) {
		ssize_t l = readlinkat(fd, "", target, sizeof(target) - 1);
		if (l < 0) {
			problem(t, TRACE_NO_PATH);
			return;
		}
		target[l] = '\0';
		trace_readlink(t, n, target);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		/* what a moved directory holds becomes outputs (the entries of
		 * a directory new at its new name), none of it read: unless the
		 * run made the directory, the run is not cached */
		char path[PATH_MAX];
		if (!node_path(t, n, path, sizeof(path)))
			return;
		pthread_mutex_lock(&t->lock);
		struct pentry *p = pentry_get(t, path);
		bool made = p && (p->flags & P_CHANGED) && !(p->flags & P_EXISTED);
		if (p && !made && t->problem == TRACE_OK)
			t->problem = TRACE_MOVED_DIR;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	trace_exists(t, n, &st);
}

void trace_xattrs(struct trace *t)
{
	problem(t, TRACE_XATTRS);
}

void trace_inherited_write(struct trace *t)
{
	problem(t, TRACE_INHERITED_WRITE);
}

void trace_owner_changed(struct trace *t)
{
	problem(t, TRACE_OWNER_CHANGED);
}

void trace_created(struct trace *t, ino_node *parent, const char *name)
{
	char path[PATH_MAX];
	if (child_path(t, parent, name, path, sizeof(path)))
		add_change(t, path, false);
}

void trace_created_file(struct trace *t, pid_t tid, ino_node *parent, const char *name, int flags)
{
	char path[PATH_MAX];
	if (!child_path(t, parent, name, path, sizeof(path)))
		return;
	pthread_mutex_lock(&t->lock);
	struct pentry *p = pentry_get(t, path);
	/* The kernel's open(O_CREAT) of a missing name is a LOOKUP then this
	 * CREATE by the same thread.  When that lookup is the only absence the
	 * run saw and the open truncates without O_EXCL, the file ends the
	 * same whether it existed or not: its absence was no observation. */
	if (p && (p->flags & P_SEEN) && !(p->flags & P_CHANGED) && t->ins[p->in].in.kind == ACTION_IN_ABSENT &&
	    p->negs == 1 && p->neg_tid == tid && (flags & O_TRUNC) && !(flags & O_EXCL))
		p->flags |= P_IMPLIED;
	pthread_mutex_unlock(&t->lock);
	add_change(t, path, false);
}

void trace_removed(struct trace *t, ino_node *parent, const char *name)
{
	char path[PATH_MAX];
	if (child_path(t, parent, name, path, sizeof(path)))
		add_change(t, path, true);
}

void trace_renamed(struct trace *t, ino_node *p, const char *name, ino_node *np, const char *newname,
		   bool replaced)
{
	char path[PATH_MAX];
	if (child_path(t, p, name, path, sizeof(path)))
		add_change(t, path, true);
	if (child_path(t, np, newname, path, sizeof(path))) {
		add_change(t, path, replaced);
		/* what is there now came whole from elsewhere (a directory
		 * renamed over an empty one included): all of it is output */
		pthread_mutex_lock(&t->lock);
		struct pentry *e = pentry_get(t, path);
		if (e)
			e->flags |= P_MOVED_IN;
		pthread_mutex_unlock(&t->lock);
	}
}

/* name in parent found absent: `negs` more absences, the last by thread
 * tid.  Returns the path's count of absences (0: not recorded). */
static unsigned absent_at(struct trace *t, pid_t tid, unsigned negs, ino_node *parent, const char *name)
{
	char path[PATH_MAX];
	action_input in = { .kind = ACTION_IN_ABSENT };
	if (!child_path(t, parent, name, path, sizeof(path)))
		return 0;
	add_input(t, path, &in, NULL, 0);
	pthread_mutex_lock(&t->lock);
	struct pentry *p = pentry_get(t, path);
	unsigned n = 0;
	if (p) {
		p->negs += negs;
		p->neg_tid = tid;
		n = p->negs;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

unsigned trace_absent(struct trace *t, pid_t tid, ino_node *parent, const char *name)
{
	return absent_at(t, tid, 1, parent, name);
}

void trace_absent_shared(struct trace *t, ino_node *parent, const char *name)
{
	/* two, by no thread: never the lookup of this run's own create */
	absent_at(t, 0, 2, parent, name);
}

void trace_exists(struct trace *t, ino_node *n, const struct stat *st)
{
	char path[PATH_MAX];
	if (S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode) || S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		/* opened, it is the kernel's pipe, socket or driver: casfs sees
		 * nothing of what passes (fs_fill_entry makes every walk
		 * through one a lookup) */
		problem(t, TRACE_SPECIAL_INPUT);
		return;
	}
	action_input in = { .kind = ACTION_IN_EXISTS, .type = st->st_mode & S_IFMT, .mode = st->st_mode & 07777,
			    .size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0 };
	if (node_path(t, n, path, sizeof(path)))
		add_input(t, path, &in, NULL, 0);
}

struct dirent64_raw {
	ino64_t d_ino;
	off64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

int trace_listing_digest(int dfd, hasher_digest *ret)
{
	char buf[32768];
	action_dirent *e = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	if (lseek(dfd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		long got = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (got < 0) {
			r = -errno;
			goto out;
		}
		if (got == 0)
			break;
		for (long pos = 0; pos < got;) {
			struct dirent64_raw *d = (struct dirent64_raw *)(buf + pos);
			pos += d->d_reclen;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				action_dirent *ne = realloc(e, cap * sizeof(*ne));
				char **nn = realloc(names, cap * sizeof(*nn));
				if (ne)
					e = ne;
				if (nn)
					names = nn;
				if (!ne || !nn) {
					r = -ENOMEM;
					goto out;
				}
			}
			if (!(names[n] = strdup(d->d_name))) {
				r = -ENOMEM;
				goto out;
			}
			e[n].name = names[n];
			e[n].type = d->d_type;
			/* what the listing hands the kernel of each entry; one
			 * gone meanwhile reads as mode 0 (never a match) */
			struct stat st;
			bool dots = !strcmp(d->d_name, ".") || !strcmp(d->d_name, "..");
			bool have = !dots && fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
			/* a symlink: what test -s/-x of it sees, its target
			 * (type and bits; a dangling one 0) */
			bool link = have && S_ISLNK(st.st_mode);
			if (link && fstatat(dfd, d->d_name, &st, 0) < 0)
				have = false;
			e[n].mode = !have ? 0 : link ? (uint16_t)st.st_mode : (uint16_t)(st.st_mode & 07777);
			e[n].size = have && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
			n++;
		}
	}
	/* the directory's own permission bits (cp -a and tar copy them, and a
	 * run may be refused the listing), as an entry named "/", a name no
	 * entry has */
	struct stat dst;
	if (fstat(dfd, &dst) < 0) {
		r = -errno;
		goto out;
	}
	action_dirent *ne = realloc(e, (n + 1) * sizeof(*ne));
	if (!ne) {
		r = -ENOMEM;
		goto out;
	}
	e = ne;
	e[n] = (action_dirent){ .name = "/", .type = DT_DIR, .mode = (uint16_t)(dst.st_mode & 07777) };
	r = action_listing_digest(e, n + 1, ret);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(e);
	return r;
}

/* True when the run changed something below path. */
static bool changed_below(struct trace *t, const char *path)
{
	size_t l = strlen(path);
	pthread_mutex_lock(&t->lock);
	bool yes = false;
	for (size_t i = 0; i < t->nch && !yes; i++)
		yes = (!l || (!strncmp(t->changed[i]->path, path, l) && t->changed[i]->path[l] == '/')) &&
		      t->changed[i]->path[l] != '\0';
	pthread_mutex_unlock(&t->lock);
	return yes;
}

void trace_emptied(struct trace *t, ino_node *n, int dfd)
{
	char path[PATH_MAX];
	if (node_path(t, n, path, sizeof(path)) && !changed_below(t, path))
		trace_listed(t, n, dfd);
}

void trace_listed(struct trace *t, ino_node *n, int dfd)
{
	char path[PATH_MAX];
	action_input in = { .kind = ACTION_IN_DIR };
	if (!node_path(t, n, path, sizeof(path)) || already(t, path, ACTION_IN_DIR))
		return;
	/* its own open: the caller's offset in dfd stays where it is */
	int own = fs_reopen_fd(dfd, O_RDONLY | O_DIRECTORY);
	int r = own < 0 ? own : trace_listing_digest(own, &in.digest);
	if (own >= 0)
		close(own);
	if (r < 0) {
		problem(t, TRACE_NOMEM);
		return;
	}
	add_input(t, path, &in, NULL, 0);
}

int trace_set_root(struct trace *t, const char *root_abs)
{
	free(t->root_abs);
	t->root_abs = strdup(root_abs);
	return t->root_abs ? 0 : -ENOMEM;
}

int trace_symlink_digest(const char *target, const char *root_abs, hasher_digest *ret)
{
	char *rel = root_abs ? action_relativize(target, root_abs) : NULL;
	if (root_abs && !rel && errno == ENOMEM)
		return -ENOMEM;
	const char *s = rel ? rel : target;
	/* an absolute target that leads under the root however it is spelled
	 * (//, /./, ROOT/../p/...): the place it leads to, relative to the
	 * root, joins the spelling, so that the same link in a tree copied
	 * to another root (leading into the first) is a miss there */
	char norm[PATH_MAX];
	size_t rl = root_abs ? strlen(root_abs) : 0;
	char *under = NULL;
	if (rl > 1 && target[0] == '/') {
		action_path_lexical(target, norm, sizeof(norm));
		if (!strncmp(norm, root_abs, rl) && (norm[rl] == '/' || !norm[rl]) &&
		    !(under = action_relativize(norm, root_abs)) && errno == ENOMEM) {
			free(rel);
			return -ENOMEM;
		}
	}
	if (under) {
		hasher_stream *h = hasher_stream_new();
		if (!h) {
			free(rel);
			free(under);
			return -ENOMEM;
		}
		hasher_stream_update(h, under, strlen(under) + 1);
		hasher_stream_update(h, s, strlen(s));
		hasher_stream_final(h, ret);
		hasher_stream_free(h);
	} else {
		hasher_digest_buffer(s, strlen(s), ret);
	}
	free(rel);
	free(under);
	return 0;
}

void trace_readlink(struct trace *t, ino_node *n, const char *target)
{
	char path[PATH_MAX];
	action_input in = { .kind = ACTION_IN_SYMLINK };
	if (trace_symlink_digest(target, t->root_abs, &in.digest) < 0) {
		problem(t, TRACE_NOMEM);
		return;
	}
	if (node_path(t, n, path, sizeof(path)))
		add_input(t, path, &in, NULL, 0);
}

void trace_writer_opened(struct trace *t)
{
	pthread_mutex_lock(&t->lock);
	t->writers++;
	pthread_mutex_unlock(&t->lock);
}

void trace_writer_closed(struct trace *t)
{
	pthread_mutex_lock(&t->lock);
	if (--t->writers == 0)
		pthread_cond_broadcast(&t->wcond);
	pthread_mutex_unlock(&t->lock);
}

bool trace_wait_writers(struct trace *t, int ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&t->lock);
	while (t->writers > 0 && pthread_cond_timedwait(&t->wcond, &t->lock, &until) == 0)
		;
	bool done = t->writers == 0;
	pthread_mutex_unlock(&t->lock);
	return done;
}

void trace_own_meta(struct trace *t, ino_node *n, digests *dg)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nin; i++) {
		struct tin *ti = &t->ins[i];
		cache_file_rec rec;
		uint64_t version;
		if (ti->node == n && digests_peek(dg, n, &rec, &version) == 0 &&
		    hasher_digest_equal(&rec.digest, &ti->in.digest))
			ti->version = version;
	}
	pthread_mutex_unlock(&t->lock);
}

enum trace_problem trace_check(struct trace *t, digests *dg)
{
	pthread_mutex_lock(&t->lock);
	enum trace_problem p = t->problem;
	for (size_t i = 0; p == TRACE_OK && i < t->nin; i++) {
		struct tin *ti = &t->ins[i];
		cache_file_rec rec;
		uint64_t version;
		if (!ti->node)
			continue;
		bool same = digests_peek(dg, ti->node, &rec, &version) == 0 && version == ti->version;
		/* changed by the run itself after it read it: its output */
		bool own = (ti->pe->flags & P_CHANGED) != 0;
		if (!same && !own)
			p = TRACE_INPUT_CHANGED;
	}
	pthread_mutex_unlock(&t->lock);
	return p;
}

/* path relative to root: 0 and *rel, or -EXDEV when not below root. */
static int below(const char *root, const char *path, const char **rel)
{
	size_t l = strlen(root);
	if (l == 0) {
		*rel = path;
		return 0;
	}
	if (strncmp(path, root, l) != 0 || (path[l] != '/' && path[l] != '\0'))
		return -EXDEV;
	*rel = path[l] ? path + l + 1 : path + l;
	return 0;
}

int trace_inputs(struct trace *t, const char *root, action_manifest *m,
		 bool (*is_file)(void *arg, const char *rel), void *arg)
{
	int r = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; r == 0 && i < t->nin; i++) {
		action_input in = t->ins[i].in;
		const char *rel;
		bool inside = below(root, in.path, &rel) == 0;
		if ((t->ins[i].pe->flags & P_IMPLIED) && inside && is_file(arg, rel))
			continue;
		if (inside) {
			in.scope = ACTION_SCOPE_ROOT;
			in.path = (char *)rel;
		} else {
			in.scope = ACTION_SCOPE_MOUNT;
		}
		r = action_manifest_add_input(m, &in);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

int trace_changes(struct trace *t, const char *root,
		  int (*fn)(void *arg, const char *rel, bool existed_before, bool moved_in), void *arg)
{
	int r = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; r == 0 && i < t->nch; i++) {
		const char *rel;
		if (below(root, t->changed[i]->path, &rel) < 0) {
			r = -EXDEV;
			break;
		}
		r = fn(arg, rel, (t->changed[i]->flags & P_EXISTED) != 0, (t->changed[i]->flags & P_MOVED_IN) != 0);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}
