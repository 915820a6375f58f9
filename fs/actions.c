/* actions.c — the daemon's side of `casfs exec` (see actions.h).
 *
 * LOOKUP   key = the client's key material + its uid.  Each manifest of the
 *          key, newest first, is checked against the tree as it is now:
 *          every recorded path is resolved again against the current root
 *          (never against the root it was recorded at), every digest is the
 *          one the daemon holds or computes now.  The first manifest whose
 *          inputs all match, whose outputs are all still stored, and which
 *          embeds no other root (unless relocation is asked for) is a hit:
 *          its outputs are restored as the caller, the kernel's caches of
 *          those names dropped, their digests seeded, and stdout, stderr and
 *          the exit status go back to the client to replay.
 * BEGIN    the caller's descendants are traced (session.h, trace.h).
 * END      once the run's write handles are closed, the trace becomes a
 *          manifest: inputs, outputs stored in the store as they ended,
 *          the streams, the exit status; unless something makes the run
 *          unsafe to reuse, which is counted by reason.
 *
 * Every path is resolved beneath the backing directory with openat2
 * (RESOLVE_BENEATH, no symlinks on the way): a manifest cannot lead
 * outside it.
 */
#include "actions.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "absent.h"
#include "action.h"
#include "blob.h"
#include "hiscan.h"
#include "io.h"
#include "kcache.h"
#include "session.h"
#include "spares.h"
#include "trace.h"

/* How long END waits for the run's write handles to be released. */
#define WRITERS_WAIT_MS 5000

struct ctlfile {
	pthread_mutex_t lock;      /* one call at a time */
	fuse_ino_t dir;            /* where .casfs/ctl was opened */
	uint8_t *req;
	size_t req_len, req_cap;
	uint8_t *resp;
	size_t resp_len, resp_cap;
	/* the action of the last LOOKUP (BEGIN traces it) */
	bool have_key;
	hasher_digest key;
	char *root, *root_abs;
	uint32_t flags;
	/* between BEGIN and END */
	struct session *sess;
	int64_t begun_ns;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the ctl file ---------------------------------------------------------- */

struct ctlfile *actions_ctl_open(fuse_ino_t dir)
{
	struct ctlfile *cf = calloc(1, sizeof(*cf));
	if (!cf)
		return NULL;
	pthread_mutex_init(&cf->lock, NULL);
	cf->dir = dir;
	return cf;
}

static void end_unrecorded(struct ctlfile *cf)
{
	if (!cf->sess)
		return;
	session_end(FS->ss, cf->sess);
	session_put(cf->sess);
	cf->sess = NULL;
}

void actions_ctl_release(struct ctlfile *cf)
{
	if (!cf)
		return;
	if (cf->sess)
		COUNT(uncacheable_interrupted);
	end_unrecorded(cf);
	free(cf->req);
	free(cf->resp);
	free(cf->root);
	free(cf->root_abs);
	pthread_mutex_destroy(&cf->lock);
	free(cf);
}

ssize_t actions_ctl_read(struct ctlfile *cf, void *buf, size_t size, off_t off)
{
	pthread_mutex_lock(&cf->lock);
	size_t n = 0;
	if (off >= 0 && (size_t)off < cf->resp_len) {
		n = cf->resp_len - (size_t)off;
		if (n > size)
			n = size;
		memcpy(buf, cf->resp + off, n);
	}
	pthread_mutex_unlock(&cf->lock);
	return (ssize_t)n;
}

/* ---- fields ---------------------------------------------------------------- */

static int resp_field(struct ctlfile *cf, uint32_t tag, const void *data, size_t len)
{
	size_t need = cf->resp_len + 8 + len;
	if (len > UINT32_MAX)
		return -E2BIG;
	if (need > cf->resp_cap) {
		size_t cap = cf->resp_cap ? cf->resp_cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *b = realloc(cf->resp, cap);
		if (!b)
			return -ENOMEM;
		cf->resp = b;
		cf->resp_cap = cap;
	}
	uint32_t h[2] = { tag, (uint32_t)len };
	memcpy(cf->resp + cf->resp_len, h, 8);
	if (len)
		memcpy(cf->resp + cf->resp_len + 8, data, len);
	cf->resp_len = need;
	return 0;
}

static int resp_text(struct ctlfile *cf, uint32_t tag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int resp_text(struct ctlfile *cf, uint32_t tag, const char *fmt, ...)
{
	char buf[PATH_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return resp_field(cf, tag, buf, strlen(buf));
}

/* Calls fn for every field of the request.  0, -EBADMSG, or fn's error. */
static int fields_each(const uint8_t *buf, size_t len, int (*fn)(void *arg, uint32_t tag, const uint8_t *v, size_t vl),
		       void *arg)
{
	size_t pos = 0;
	while (pos < len) {
		uint32_t h[2];
		if (len - pos < 8)
			return -EBADMSG;
		memcpy(h, buf + pos, 8);
		pos += 8;
		if (h[1] > len - pos)
			return -EBADMSG;
		int r = fn(arg, h[0], buf + pos, h[1]);
		if (r < 0)
			return r;
		pos += h[1];
	}
	return 0;
}

static char *strndup_field(const uint8_t *v, size_t len)
{
	if (memchr(v, '\0', len))
		return NULL;
	return strndup((const char *)v, len);
}

/* What a LOOKUP carries. */
#define MAX_PROGS 4
#define MAX_USES CASFS_EXEC_MAX_USES
struct action_req {
	const uint8_t *key;      /* the key material, without the tools */
	size_t key_len;
	char *root, *root_abs, *cwd_abs;
	uint32_t flags;
	char *tool;              /* the executable */
	struct casfs_exec_stat tool_st;
	bool has_tool_st;
	hasher_digest tool_digest;
	bool has_tool_digest;
	int cc;                  /* -1: not a compiler driver; 0: C; 1: C++ */
	struct {
		char *spec;      /* "NAME=PATH" */
		hasher_digest digest;
		bool has_digest; /* the caller's, with TOOL_DIGEST */
	} progs[MAX_PROGS];
	size_t nprogs;
	hasher_digest stdin_digest;
	bool has_stdin;
	struct {
		char *path;
		struct casfs_exec_stat st;
		hasher_digest digest;
		bool has_digest;
	} uses[MAX_USES];
	size_t nuses;
};

static int action_req_field(void *arg, uint32_t tag, const uint8_t *v, size_t len)
{
	struct action_req *a = arg;
	switch (tag) {
	case CASFS_T_KEY:
		a->key = v;
		a->key_len = len;
		return 0;
	case CASFS_T_ROOT:
		free(a->root);
		return (a->root = strndup_field(v, len)) ? 0 : -EBADMSG;
	case CASFS_T_ROOT_ABS:
		free(a->root_abs);
		return (a->root_abs = strndup_field(v, len)) ? 0 : -EBADMSG;
	case CASFS_T_FLAGS:
		if (len != 4)
			return -EBADMSG;
		memcpy(&a->flags, v, 4);
		return 0;
	case CASFS_T_CWD_ABS:
		free(a->cwd_abs);
		return (a->cwd_abs = strndup_field(v, len)) ? 0 : -EBADMSG;
	case CASFS_T_TOOL:
		free(a->tool);
		return (a->tool = strndup_field(v, len)) && a->tool[0] == '/' ? 0 : -EBADMSG;
	case CASFS_T_STAT:
		if (len != sizeof(a->tool_st))
			return -EBADMSG;
		memcpy(&a->tool_st, v, len);
		a->has_tool_st = true;
		return 0;
	case CASFS_T_TOOL_DIGEST:
		if (len != sizeof(a->tool_digest.bytes))
			return -EBADMSG;
		memcpy(a->tool_digest.bytes, v, len);
		a->has_tool_digest = true;
		return 0;
	case CASFS_T_STDIN:
		if (len != sizeof(a->stdin_digest.bytes))
			return -EBADMSG;
		memcpy(a->stdin_digest.bytes, v, len);
		a->has_stdin = true;
		return 0;
	case CASFS_T_CC:
		if (len != 1 || v[0] > 1)
			return -EBADMSG;
		a->cc = v[0];
		return 0;
	case CASFS_T_USES: {
		const uint8_t *nul = memchr(v, '\0', len);
		size_t rest = nul ? len - (size_t)(nul - v) - 1 : 0;
		if (!nul || a->nuses == MAX_USES || v[0] != '/' ||
		    (rest != sizeof(a->uses[0].st) && rest != sizeof(a->uses[0].digest.bytes)) ||
		    !(a->uses[a->nuses].path = strndup_field(v, (size_t)(nul - v))))
			return -EBADMSG;
		if (rest == sizeof(a->uses[0].st)) {
			memcpy(&a->uses[a->nuses].st, nul + 1, rest);
		} else {
			memcpy(a->uses[a->nuses].digest.bytes, nul + 1, rest);
			a->uses[a->nuses].has_digest = true;
		}
		a->nuses++;
		return 0;
	}
	case CASFS_T_PROG: {
		const uint8_t *nul = memchr(v, '\0', len);
		size_t sl = nul ? (size_t)(nul - v) : len;
		if (a->nprogs == MAX_PROGS || (nul && len - sl - 1 != sizeof(a->tool_digest.bytes)) ||
		    !(a->progs[a->nprogs].spec = strndup_field(v, sl)))
			return -EBADMSG;
		if (nul) {
			memcpy(a->progs[a->nprogs].digest.bytes, nul + 1, sizeof(a->tool_digest.bytes));
			a->progs[a->nprogs].has_digest = true;
		}
		if (!strchr(a->progs[a->nprogs++].spec, '='))
			return -EBADMSG;
		return 0;
	}
	default:
		return 0; /* fields of newer clients are ignored */
	}
}

static int action_req_parse(const struct ctlfile *cf, struct action_req *a)
{
	memset(a, 0, sizeof(*a));
	a->cc = -1;
	int r = fields_each(cf->req, cf->req_len, action_req_field, a);
	if (r == 0 && (!a->key || !a->root || !a->root_abs || a->root_abs[0] != '/' || !a->cwd_abs ||
		       !a->tool || (!a->has_tool_st && !a->has_tool_digest) ||
		       action_path_check(ACTION_SCOPE_ROOT, a->root) < 0))
		r = -EBADMSG;
	return r;
}

static void action_req_clear(struct action_req *a)
{
	free(a->root);
	free(a->root_abs);
	free(a->cwd_abs);
	free(a->tool);
	for (size_t i = 0; i < a->nprogs; i++)
		free(a->progs[i].spec);
	for (size_t i = 0; i < a->nuses; i++)
		free(a->uses[i].path);
}

/* ---- resolving paths beneath the backing ------------------------------------ */

/* Opens rel ("" = dirfd itself) beneath dirfd, following no symlink on the
 * way (the last component too with O_NOFOLLOW).  fd or -errno. */
static int open_beneath(int dirfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, rel[0] ? rel : ".", &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* The backing root (mount-relative "") as a pinned fd: release with
 * ino_node_fd_put(FS->tbl, ino_table_root(FS->tbl)). */
static int mount_fd(void)
{
	return ino_node_fd_get(FS->tbl, ino_table_root(FS->tbl));
}

/* The digest of a file casfs does not watch (outside the mount, or not
 * known yet), open as fd (O_PATH is fine) with stat st: from the 'T'
 * records (by dev and inode, valid while size, mtime and ctime stay, the
 * index's rule), else read and recorded (later: a lost record costs a
 * read).  0 or -errno. */
static bool outside_known(const struct stat *st, hasher_digest *ret)
{
	cache_file_rec rec;
	uint64_t k[2] = { (uint64_t)st->st_dev, (uint64_t)st->st_ino };
	void *val = NULL;
	size_t vlen = 0;
	bool known = cache_index_kv_get(FS->ix, 'T', k, sizeof(k), &val, &vlen) == 0 && vlen == sizeof(rec);
	if (known)
		memcpy(&rec, val, sizeof(rec));
	free(val);
	if (!known || !cache_file_rec_valid(&rec, st))
		return false;
	*ret = rec.digest;
	return true;
}

static int outside_digest(int fd, const struct stat *st, hasher_digest *ret)
{
	if (outside_known(st, ret))
		return 0;
	cache_file_rec rec;
	uint64_t k[2] = { (uint64_t)st->st_dev, (uint64_t)st->st_ino };
	int rfd = fs_reopen_fd(fd, O_RDONLY);
	if (rfd < 0)
		return rfd;
	int64_t at = now_ns();
	uint64_t size;
	int r = hasher_digest_fd(rfd, &rec.digest, &size);
	close(rfd);
	if (r < 0)
		return r;
	rec.size = size;
	rec.mtime_ns = cache_timespec_ns(&st->st_mtim);
	rec.ctime_ns = cache_timespec_ns(&st->st_ctim);
	rec.hashed_at_ns = at;
	if (size == (uint64_t)st->st_size && rec.ctime_ns + CACHE_RACY_NS <= at)
		cache_index_kv_put_later(FS->ix, 'T', k, sizeof(k), &rec, sizeof(rec));
	*ret = rec.digest;
	return 0;
}

/* The digest of the regular file open (O_PATH is fine) as fd, st its stat:
 * from the node's state, the index, the 'T' records, or by reading it.
 * With unwritten, -EBUSY for a file some handle has open for writing: what
 * a reader sees of it then may not have reached the daemon yet (the dirty
 * pages of a shared writable mapping), so a lookup takes it as changed.
 * 0 or -errno. */
static int file_digest(int fd, const struct stat *st, bool unwritten, hasher_digest *ret)
{
	ino_node *n = ino_table_find_ref(FS->tbl, st->st_dev, st->st_ino);
	int r;
	if (n) {
		if (unwritten && FS->dg && digests_writers(FS->dg, n))
			r = -EBUSY;
		else
			r = FS->dg ? digests_get(FS->dg, n, fd, ret) : -ENODATA;
		ino_node_unref(FS->tbl, n);
		return r;
	}
	cache_file_rec rec;
	if (cache_index_file_get(FS->ix, st->st_dev, st->st_ino, &rec) == 0 && cache_file_rec_valid(&rec, st)) {
		*ret = rec.digest;
		return 0;
	}
	return outside_digest(fd, st, ret);
}

/* file_digest without an fd, for the regular file with stat st: true with
 * the digest in *ret when it is known without reading the file (from the
 * node's state, not being written; the index; the 'T' records); false when
 * file_digest must run (on an fd of the file). */
static bool file_digest_known(const struct stat *st, hasher_digest *ret)
{
	ino_node *n = ino_table_find_ref(FS->tbl, st->st_dev, st->st_ino);
	if (n) {
		cache_file_rec rec;
		uint64_t version;
		bool known = FS->dg && digests_peek_stat(FS->dg, n, st, &rec, &version) == 0;
		ino_node_unref(FS->tbl, n);
		if (known)
			*ret = rec.digest;
		return known;
	}
	cache_file_rec rec;
	if (cache_index_file_get(FS->ix, st->st_dev, st->st_ino, &rec) == 0 && cache_file_rec_valid(&rec, st)) {
		*ret = rec.digest;
		return true;
	}
	return outside_known(st, ret);
}

/* Reads the entries of the directory open (O_PATH is fine) as fd into a
 * listing digest. */
static int dir_digest(int fd, hasher_digest *ret)
{
	int dfd = fs_reopen_fd(fd, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return dfd;
	int r = trace_listing_digest(dfd, ret);
	close(dfd);
	return r;
}

/* The directories of one lookup.  A lookup checks a few hundred recorded
 * paths in a few dozen directories (a compile's include directories and the
 * system's): each directory is opened and stat'd once per lookup, the names
 * in it looked up from it (one component instead of a walk from / or the
 * root every time), and the names recorded absent checked against
 * FS->absent by the directory's stamps (absent.h), without a system call. */
#define PROBE_DIRS 64

struct probe_dir {
	uint64_t hash;          /* of scope and path */
	uint8_t scope;
	char *path;             /* the directory as recorded ("": the scope's top) */
	int fd;                 /* O_PATH directory, or -errno */
	cache_dir_stamp stamp;
	bool stamp_old;         /* its ctime was CACHE_RACY_NS old when stat'd */
};

struct probe_dirs {
	struct probe_dir d[PROBE_DIRS];
	size_t n, last;
};

static void probe_dirs_clear(struct probe_dirs *pd)
{
	for (size_t i = 0; i < pd->n; i++) {
		if (pd->d[i].fd >= 0)
			close(pd->d[i].fd);
		free(pd->d[i].path);
	}
	pd->n = pd->last = 0;
}

struct probe_ctx {
	struct probe_dirs *dirs; /* NULL: every path is walked */
	int root_fd;             /* the current root */
	int mount_fd;            /* the backing root */
	const char *root;        /* the current root, mount-relative */
	size_t mount_abs_len;    /* root_abs less "/" root: the mount's path */
	const char *root_abs;    /* the current root as the caller sees it */
	const char *rec_root;    /* the manifest's root_at_record */
	const action_input *busy; /* the first input found open for writing */
};

/* The number of components of a path ("" has none). */
static size_t components(const char *path)
{
	size_t n = path[0] != '\0';
	for (const char *c = path; *c; c++)
		n += *c == '/';
	return n;
}

/* A mount-scope input at one of the recorded root's own ancestors (met by
 * a walk from / down to the working directory: Bazel's <N> and
 * <N>/execroot) is checked at the same height above the current root
 * (docs/ACTIONS.md, "Path scopes"): true and that path in buf; false when
 * path is no such ancestor, or the mount was elsewhere when it was
 * recorded. */
static bool root_ancestor_now(const struct probe_ctx *p, const char *path, char *buf, size_t size)
{
	const char *rec = p->rec_root;
	size_t pl = strlen(path);
	if (!rec || !pl || strncmp(rec, p->root_abs, p->mount_abs_len) != 0 || rec[p->mount_abs_len] != '/' ||
	    strncmp(rec + p->mount_abs_len + 1, path, pl) != 0 || rec[p->mount_abs_len + 1 + pl] != '/')
		return false;
	size_t up = components(rec + p->mount_abs_len + 1 + pl + 1); /* levels below it to the root */
	size_t have = components(p->root);
	if (up == 0 || have <= up)
		return false;
	const char *end = p->root;
	for (size_t keep = have - up; keep > 0; keep--)
		end = strchrnul(end + (end != p->root), '/');
	if ((size_t)(end - p->root) >= size)
		return false;
	memcpy(buf, p->root, (size_t)(end - p->root));
	buf[end - p->root] = '\0';
	return true;
}

/* A mount-scope input below one of the recorded root's ancestors (not the
 * ancestor itself, which root_ancestor_now maps): where the same place
 * relative to the root is now, at the same height above the current root
 * (`inc -> ../shared`, a sibling of the root's directory).  The run may
 * have reached it by that relative way or by its recorded absolute path:
 * the probe checks both.  True and that path in buf when it differs from
 * path. */
static bool root_sibling_now(const struct probe_ctx *p, const char *path, char *buf, size_t size)
{
	const char *rec = p->rec_root;
	if (!rec || strncmp(rec, p->root_abs, p->mount_abs_len) != 0 || rec[p->mount_abs_len] != '/')
		return false;
	const char *r1 = rec + p->mount_abs_len + 1;
	/* the longest proper ancestor of r1 that path is below */
	size_t a = 0;
	for (size_t i = 0; r1[i] && path[i] == r1[i]; i++)
		if (r1[i + 1] == '/' && (path[i + 1] == '/'))
			a = i + 1;
	if (!a)
		return false;
	size_t up = components(r1 + a + 1), have = components(p->root);
	if (up == 0 || have <= up)
		return false;
	const char *end = p->root;
	for (size_t keep = have - up; keep > 0; keep--)
		end = strchrnul(end + (end != p->root), '/');
	size_t al = (size_t)(end - p->root);
	if (al + strlen(path + a) >= size)
		return false;
	memcpy(buf, p->root, al);
	strcpy(buf + al, path + a);
	return strcmp(buf, path) != 0;
}

/* The directory of the recorded path (opened the first time this lookup
 * meets it) and the path's last component in *name; NULL when the path
 * has no such component or the lookup met too many directories. */
static struct probe_dir *probe_dir_of(struct probe_ctx *p, const action_input *want, const char **name)
{
	const char *path = want->path, *slash = strrchr(path, '/');
	const char *nm = slash ? slash + 1 : path;
	size_t plen = slash ? (size_t)(slash - path) : 0;
	if (!p->dirs || !*nm || !strcmp(nm, ".") || !strcmp(nm, "..") || plen >= PATH_MAX ||
	    (want->scope == ACTION_SCOPE_ABS && path[0] != '/'))
		return NULL;
	*name = nm;
	struct probe_dirs *pd = p->dirs;
	uint64_t h = XXH3_64bits_withSeed(path, plen, want->scope);
	struct probe_dir *d = &pd->d[pd->last];
	if (pd->n && d->hash == h && d->scope == want->scope && !strncmp(d->path, path, plen) && !d->path[plen])
		return d;
	for (size_t i = 0; i < pd->n; i++) {
		d = &pd->d[i];
		if (d->hash == h && d->scope == want->scope && !strncmp(d->path, path, plen) && !d->path[plen]) {
			pd->last = i;
			return d;
		}
	}
	if (pd->n == PROBE_DIRS)
		return NULL;
	d = &pd->d[pd->n];
	*d = (struct probe_dir){ .hash = h, .scope = want->scope, .path = strndup(path, plen), .fd = -ENOMEM };
	if (!d->path)
		return NULL;
	int64_t at = now_ns(); /* before the stat: see absent.h */
	if (want->scope == ACTION_SCOPE_ABS) {
		d->fd = open(plen ? d->path : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		d->fd = d->fd < 0 ? -errno : d->fd;
	} else {
		d->fd = open_beneath(want->scope == ACTION_SCOPE_ROOT ? p->root_fd : p->mount_fd, d->path,
				     O_PATH | O_DIRECTORY);
	}
	struct stat st;
	if (d->fd >= 0 && fs_stat_fd(d->fd, &st) == 0) {
		cache_dir_stamp_of(&st, &d->stamp);
		d->stamp_old = d->stamp.ctime_ns + CACHE_RACY_NS <= at;
	}
	pd->last = pd->n++;
	return d;
}

/* probe_at for a file or an absence in a directory of the lookup: true when
 * it answered (its result in *ret), false when the full probe must (the
 * path's directory is not one it handles, or the name is now something
 * else than a regular file or nothing). */
static bool probe_in_dir(struct probe_ctx *p, const action_input *want, action_input *have, int *ret)
{
	char above[PATH_MAX];
	const char *name;
	struct probe_dir *d;
	if ((want->kind != ACTION_IN_ABSENT &&
	     (want->kind != ACTION_IN_FILE || want->digest_kind != ACTION_DIGEST_PLAIN)) ||
	    (want->scope == ACTION_SCOPE_MOUNT && root_ancestor_now(p, want->path, above, sizeof(above))) ||
	    !(d = probe_dir_of(p, want, &name)))
		return false;
	*ret = 0;
	if (d->fd == -ENOENT || d->fd == -ENOTDIR) {
		have->kind = ACTION_IN_ABSENT;
		return true;
	}
	if (d->fd < 0)
		return false;
	bool remember = d->stamp_old && FS->absent;
	if (want->kind == ACTION_IN_ABSENT && remember && cache_absent_has(FS->absent, &d->stamp, name)) {
		COUNT(action_absent_known);
		have->kind = ACTION_IN_ABSENT;
		return true;
	}
	/* most files are known by their stat: one system call, no open */
	struct stat st;
	int fd = -1;
	if (fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		fd = -errno;
	} else if (want->kind == ACTION_IN_FILE && S_ISREG(st.st_mode) &&
		   (want->scope == ACTION_SCOPE_ABS ? outside_known(&st, &have->digest)
						    : file_digest_known(&st, &have->digest))) {
		have->kind = ACTION_IN_FILE;
		have->digest_kind = want->digest_kind;
		have->mode = st.st_mode & 07777;
		return true;
	}
	if (fd == -1) {
		fd = openat(d->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
	}
	if (fd == -ENOENT || fd == -ENOTDIR) {
		if (remember)
			cache_absent_add(FS->absent, &d->stamp, name);
		have->kind = ACTION_IN_ABSENT;
		return true;
	}
	if (fd < 0)
		return false;
	bool done = false;
	if (want->kind == ACTION_IN_FILE && fs_stat_fd(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		have->kind = ACTION_IN_FILE;
		have->digest_kind = want->digest_kind;
		have->mode = st.st_mode & 07777;
		*ret = file_digest(fd, &st, true, &have->digest);
		done = true;
	}
	close(fd);
	return done;
}

static int probe_at(struct probe_ctx *p, const action_input *want, const char *sibling, action_input *have);

static int probe(void *arg, const action_input *want, action_input *have)
{
	struct probe_ctx *p = arg;
	int r;
	if (!probe_in_dir(p, want, have, &r))
		r = probe_at(p, want, NULL, have);
	char other[PATH_MAX];
	if (r == 0 && want->scope == ACTION_SCOPE_MOUNT && root_sibling_now(p, want->path, other, sizeof(other))) {
		action_input there = { 0 };
		if ((r = probe_at(p, want, other, &there)) == 0 && !action_input_equal(want, &there))
			*have = there; /* what differs there is what the run may see */
	}
	if (r == -EBUSY && !p->busy)
		p->busy = want;
	return r;
}

/* probe of want, at sibling (mount-relative) instead of its own place when
 * not NULL. */
static int probe_at(struct probe_ctx *p, const action_input *want, const char *sibling, action_input *have)
{
	struct stat st;
	int fd;
	char above[PATH_MAX];
	if (sibling) {
		fd = open_beneath(p->mount_fd, sibling, O_PATH | O_NOFOLLOW);
	} else if (want->scope == ACTION_SCOPE_ABS) {
		/* most are system headers, known by their stat: one syscall */
		if (fstatat(AT_FDCWD, want->path, &st, AT_SYMLINK_NOFOLLOW) < 0 && (errno == ENOENT || errno == ENOTDIR)) {
			have->kind = ACTION_IN_ABSENT;
			return 0;
		}
		if (want->kind == ACTION_IN_FILE && want->digest_kind == ACTION_DIGEST_PLAIN && S_ISREG(st.st_mode) &&
		    outside_known(&st, &have->digest)) {
			have->kind = ACTION_IN_FILE;
			have->digest_kind = want->digest_kind;
			have->mode = st.st_mode & 07777;
			return 0;
		}
		fd = open(want->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
	} else if (want->scope == ACTION_SCOPE_MOUNT && root_ancestor_now(p, want->path, above, sizeof(above))) {
		fd = open_beneath(p->mount_fd, above, O_PATH | O_NOFOLLOW);
	} else {
		fd = open_beneath(want->scope == ACTION_SCOPE_ROOT ? p->root_fd : p->mount_fd, want->path,
				  O_PATH | O_NOFOLLOW);
	}
	if (fd == -ENOENT || fd == -ENOTDIR) {
		have->kind = ACTION_IN_ABSENT;
		return 0;
	}
	if (fd < 0)
		return fd;
	int r = fs_stat_fd(fd, &st);
	if (r < 0)
		goto out;
	if (want->kind == ACTION_IN_FILE && S_ISREG(st.st_mode)) {
		have->kind = ACTION_IN_FILE;
		have->digest_kind = want->digest_kind;
		have->mode = st.st_mode & 07777;
		r = want->digest_kind == ACTION_DIGEST_PLAIN ? file_digest(fd, &st, true, &have->digest) : -ENOTSUP;
	} else if (want->kind == ACTION_IN_DIR && S_ISDIR(st.st_mode)) {
		have->kind = ACTION_IN_DIR;
		r = dir_digest(fd, &have->digest);
	} else if (want->kind == ACTION_IN_SYMLINK && S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t l = readlinkat(fd, "", target, sizeof(target));
		if (l < 0 || l == (ssize_t)sizeof(target)) {
			r = l < 0 ? -errno : -ENAMETOOLONG;
		} else {
			target[l] = '\0';
			have->kind = ACTION_IN_SYMLINK;
			r = trace_symlink_digest(target, p->root_abs, &have->digest);
		}
	} else {
		have->kind = ACTION_IN_EXISTS;
		have->type = st.st_mode & S_IFMT;
		have->mode = st.st_mode & 07777;
		have->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	}
out:
	close(fd);
	return r;
}

/* ---- restoring outputs ------------------------------------------------------ */

/* Drops the kernel's cached entry for name in the directory open as pdfd,
 * the directory's cached listing (dropping the entry marks it stale only
 * when the kernel holds one of that name), and the node of a file it
 * replaced (st of the old file, if any). */
static void forget_name(int pdfd, const char *name, const struct stat *old)
{
	struct stat pst;
	if (old && old->st_nlink <= 1)
		ino_table_detach(FS->tbl, old->st_dev, old->st_ino);
	if (fs_stat_fd(pdfd, &pst) < 0)
		return;
	ino_node *p = ino_table_find(FS->tbl, NULL, NULL, pst.st_dev, pst.st_ino, 0);
	if (p) {
		fuse_lowlevel_notify_inval_entry(FS->se, p->id, name, strlen(name));
		fuse_lowlevel_notify_inval_inode(FS->se, p->id, 0, 0);
	}
}

/* The directory of rel beneath root_fd (rel's last '/' splits it), if it
 * is there.  Writes the last component's offset in rel to *name_at and the
 * directory's path to dir.  fd (O_PATH) or -errno (-ENOENT: missing). */
static int parent_open(int root_fd, const char *rel, size_t *name_at, char dir[PATH_MAX])
{
	const char *slash = strrchr(rel, '/');
	*name_at = slash ? (size_t)(slash - rel) + 1 : 0;
	dir[0] = '\0';
	if (!slash) {
		int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
		return fd < 0 ? -errno : fd;
	}
	size_t dl = (size_t)(slash - rel);
	if (dl >= PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(dir, rel, dl);
	dir[dl] = '\0';
	return open_beneath(root_fd, dir, O_PATH | O_DIRECTORY);
}

/* The directory of rel beneath root_fd (rel's last '/' splits it), made
 * (0755, as the caller) where missing.  Writes the last component's offset
 * in rel to *name_at.  fd (O_PATH) or -errno. */
static int parent_dir(int root_fd, const char *rel, size_t *name_at)
{
	char dir[PATH_MAX];
	int fd = parent_open(root_fd, rel, name_at, dir);
	if (fd != -ENOENT || !dir[0])
		return fd;
	size_t dl = strlen(dir);
	/* make the missing ones, top down */
	for (size_t i = 0; i <= dl; i++) {
		if (dir[i] != '/' && dir[i] != '\0')
			continue;
		char c = dir[i];
		dir[i] = '\0';
		size_t at;
		int pfd = parent_dir(root_fd, dir, &at);
		if (pfd < 0)
			return pfd;
		if (mkdirat(pfd, dir + at, 0755) < 0 && errno != EEXIST) {
			int e = -errno;
			close(pfd);
			return e;
		}
		forget_name(pfd, dir + at, NULL);
		close(pfd);
		dir[i] = c;
	}
	return open_beneath(root_fd, dir, O_PATH | O_DIRECTORY);
}

/* Largest text output or stream rewritten for another root (they are held
 * in memory whole). */
#define ROOT_TEXT_MAX (16u << 20)

/* Stores len bytes of data, whose digest is d, in the store (through a
 * memfd).  0 or -errno. */
static int put_bytes(const uint8_t *data, size_t len, const hasher_digest *d)
{
	int fd = memfd_create("casfs-bytes", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = cache_io_write_some(fd, data, len, 0) == (ssize_t)len ? 0 : -EIO;
	cache_put_result res;
	cache_put_opts opts = { .mode = FS->o.compression, .has_expect = true, .expect = *d };
	if (r == 0)
		r = cache_put_fd(FS->ix, fd, &opts, &res);
	close(fd);
	return r;
}

/* The whole content of blob d, at most max bytes: *ret (malloc'd) and
 * *ret_len.  0, -EFBIG, -errno. */
static int blob_bytes(const hasher_digest *d, size_t max, uint8_t **ret, size_t *ret_len)
{
	cache_reader rd;
	int r = cache_blob_open(FS->ix, d, &rd);
	if (r < 0)
		return r;
	uint8_t *buf = rd.size <= max ? malloc(rd.size ? rd.size : 1) : NULL;
	r = rd.size > max ? -EFBIG : buf ? 0 : -ENOMEM;
	if (r == 0 && cache_io_read(rd.fd, buf, rd.size, (off_t)rd.off) != (ssize_t)rd.size)
		r = -EIO;
	cache_reader_close(&rd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = rd.size;
	return 0;
}

/* For a hit at root `to` of a run recorded at root `from`: the content of
 * each text output naming the root (action_output.root_text) as the run
 * would have written it at `to`, stored; *ret_alt[i] is its digest (the
 * original's when it needs no change).  Called before restoring, as the
 * daemon (the store is its own).  0 or -errno. */
static int root_text_outputs(const action_manifest *m, const char *from, const char *to, hasher_digest **ret_alt)
{
	hasher_digest *alt = calloc(m->nout ? m->nout : 1, sizeof(*alt));
	int r = alt ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < m->nout; i++) {
		alt[i] = m->out[i].digest;
		if (!m->out[i].root_text)
			continue;
		uint8_t *text, *moved;
		size_t len, mlen;
		if ((r = blob_bytes(&m->out[i].digest, ROOT_TEXT_MAX, &text, &len)) < 0)
			break;
		r = action_root_rewrite(text, len, from, to, &moved, &mlen);
		/* a dependency file that breaks its lines as gcc does: broken
		 * where gcc breaks them at this root */
		uint8_t *same = NULL, *wrapped = NULL;
		size_t slen, wlen;
		if (r == 0 && strlen(from) != strlen(to) && action_depfile_rewrap(text, len, &same, &slen) == 0 &&
		    slen == len && !memcmp(same, text, len) && action_depfile_rewrap(moved, mlen, &wrapped, &wlen) == 0) {
			free(moved);
			moved = wrapped;
			mlen = wlen;
		}
		free(same);
		free(text);
		if (r < 0)
			break;
		hasher_digest_buffer(moved, mlen, &alt[i]);
		r = put_bytes(moved, mlen, &alt[i]);
		free(moved);
	}
	if (r < 0) {
		free(alt);
		return r;
	}
	*ret_alt = alt;
	return 0;
}

/* Seeds the digest of the file just restored as name in pdfd: the content
 * is known, so nothing reads it again. */
static void seed_digest(int pdfd, const char *name, const hasher_digest *d)
{
	struct stat st;
	if (!FS->dg || fstatat(pdfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	int fd = openat(pdfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat pst;
	ino_node *p = fs_stat_fd(pdfd, &pst) == 0 ? ino_table_find(FS->tbl, NULL, NULL, pst.st_dev, pst.st_ino, 0) : NULL;
	ino_node *n;
	if (ino_table_insert(FS->tbl, p, name, fd, &st, 0, &n) == 0) {
		digests_seed(FS->dg, n, d, &st);
		ino_table_forget(FS->tbl, n, 0); /* freed once nothing holds it */
	}
}

/* ---- outputs already in place ------------------------------------------------ */

/* An output whose file already holds the recorded content, with the owner
 * and permission bits a restore would give it (a hit where the last run's
 * outputs are still there: make after a touch, a branch switched away and
 * back), keeps its file: the restore sets its mtime to now, as a run that
 * rewrites it does, and drops the kernel's attributes of it.  Its content
 * is known from the digest casfs holds for the node (nothing is read); the
 * digest's version is checked again after the touch, so a write in between
 * sends the output the usual way. */
struct in_place {
	ino_node *n;      /* referenced, NULL: not in place */
	uint64_t version; /* of the digest that matched */
	ino_t ino;
};

static void in_place_clear(struct in_place *k)
{
	if (k->n)
		ino_node_unref(FS->tbl, k->n);
	k->n = NULL;
}

/* Whether output o (content digest) is in place beneath root_fd, for the
 * caller of q.  Called as the daemon. */
static bool output_in_place(struct req *q, int root_fd, const action_output *o, const hasher_digest *digest,
			    struct in_place *k)
{
	k->n = NULL;
	if (!FS->dg || o->kind != ACTION_OUT_FILE || (o->mode & 07000))
		return false;
	size_t at;
	char dir[PATH_MAX];
	struct stat pst, st;
	int pfd = parent_open(root_fd, o->path, &at, dir);
	if (pfd < 0)
		return false;
	bool there = fs_stat_fd(pfd, &pst) == 0 && fstatat(pfd, o->path + at, &st, AT_SYMLINK_NOFOLLOW) == 0;
	close(pfd);
	if (!there || !S_ISREG(st.st_mode) || st.st_nlink != 1 || (uint64_t)st.st_size != o->size)
		return false;
	uid_t uid;
	gid_t gid;
	req_creds_owner(q, &uid, &gid);
	if (pst.st_mode & S_ISGID)
		gid = pst.st_gid;
	if (st.st_uid != uid || st.st_gid != gid || (st.st_mode & 07777) != ((mode_t)o->mode & 0777 & ~req_umask(q)))
		return false;
	cache_file_rec rec;
	ino_node *n = ino_table_find_ref(FS->tbl, st.st_dev, st.st_ino);
	if (!n)
		return false;
	if (digests_peek_stat(FS->dg, n, &st, &rec, &k->version) == 0 && hasher_digest_equal(&rec.digest, digest) &&
	    rec.size == (uint64_t)st.st_size && rec.mtime_ns == cache_timespec_ns(&st.st_mtim) &&
	    rec.ctime_ns == cache_timespec_ns(&st.st_ctim)) {
		k->n = n;
		k->ino = st.st_ino;
		return true;
	}
	ino_node_unref(FS->tbl, n);
	return false;
}

/* Sets the mtime of an output output_in_place found (as the caller): 0, or
 * -ESTALE when its content or file changed since (the caller restores it
 * the usual way). */
static int touch_in_place(int root_fd, const action_output *o, const struct in_place *k)
{
	size_t at;
	char dir[PATH_MAX];
	struct stat st;
	int pfd = parent_open(root_fd, o->path, &at, dir);
	if (pfd < 0)
		return -ESTALE;
	int r = utimensat(pfd, o->path + at, NULL, AT_SYMLINK_NOFOLLOW) == 0 &&
			fstatat(pfd, o->path + at, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == k->ino ?
		digests_touched(FS->dg, k->n, &st, k->version) :
		-ESTALE;
	close(pfd);
	if (r == 0)
		fuse_lowlevel_notify_inval_inode(FS->se, k->n->id, -1, 0); /* its attributes */
	return r < 0 ? -ESTALE : 0;
}

/* A file made ahead (fs/spares.h) holding output o's content (digest), with
 * the owner and mode the file restore_one would make gets: its fd, or -1
 * where o takes the plain way (none ready, o not a regular file, set-ID or
 * sticky bits, its directory not there yet, a default ACL there, another
 * filesystem, any error: the plain way meets it again and says it).
 * Called as the daemon (the owner is given with fchown), before
 * req_creds_enter. */
static int spare_filled(struct req *q, int root_fd, const action_output *o, const hasher_digest *digest)
{
	if (!FS->spares || o->kind != ACTION_OUT_FILE || (o->mode & 07000))
		return -1;
	size_t at;
	char dir[PATH_MAX], self[40];
	struct stat pst, st;
	int pfd = parent_open(root_fd, o->path, &at, dir);
	if (pfd < 0)
		return -1;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	bool plain = fstat(pfd, &pst) < 0 || getxattr(self, "system.posix_acl_default", NULL, 0) >= 0;
	close(pfd);
	int fd = plain ? -1 : fs_spares_take(FS->spares, pst.st_dev);
	if (fd < 0)
		return -1;
	uid_t uid;
	gid_t gid;
	req_creds_owner(q, &uid, &gid);
	if (pst.st_mode & S_ISGID)
		gid = pst.st_gid;
	if (cache_get_fd(FS->ix, digest, fd, NULL) < 0 || fstat(fd, &st) < 0 ||
	    ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0) ||
	    fchmod(fd, (mode_t)o->mode & 0777 & ~req_umask(q)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Removes what name (stat old) in the directory pfd is, for an output of
 * another type: the run removed it and made the output there.  A
 * directory must be empty by then (its entries the run removed are
 * restored as removed first).  0 or -errno. */
static int replace_type(int pfd, const char *name, const struct stat *old)
{
	if (unlinkat(pfd, name, S_ISDIR(old->st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
		return -errno;
	forget_name(pfd, name, old);
	return 0;
}

/* Restores o (content digest) beneath root_fd; spare, when not -1, is a
 * file spare_filled made for it, consumed. */
static int restore_one(int root_fd, const action_output *o, const hasher_digest *digest, const char *root_abs,
		       int spare)
{
	size_t at;
	int pfd = parent_dir(root_fd, o->path, &at);
	if (pfd < 0)
		return pfd;
	const char *name = o->path + at;
	struct stat old;
	bool had = fstatat(pfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0;
	int r = 0;
	switch (o->kind) {
	case ACTION_OUT_FILE: {
		bool reflinked;
		if (had && S_ISDIR(old.st_mode)) {
			/* the run replaced a directory (emptied first: its
			 * entries are restored as removed before this) */
			if ((r = replace_type(pfd, name, &old)) < 0)
				break;
			had = false;
		}
		/* the file replaced is let go by the worker (fs_spares_dispose) */
		int replaced = had && FS->spares ? openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC) : -1;
		r = spare >= 0 ? fs_spares_publish(spare, pfd, name) : -1;
		if (r == 0)
			COUNT(action_outputs_made_ahead);
		else
			r = cache_get_at(FS->ix, digest, pfd, name, (mode_t)o->mode, &reflinked);
		if (r == 0) {
			forget_name(pfd, name, had ? &old : NULL);
			seed_digest(pfd, name, digest);
		}
		if (replaced >= 0)
			fs_spares_dispose(FS->spares, replaced);
		break;
	}
	case ACTION_OUT_DIR: {
		struct stat now, pst;
		if (had && !S_ISDIR(old.st_mode)) {
			/* the run replaced a file or symlink (rm e; mv d e) */
			if ((r = replace_type(pfd, name, &old)) == 0)
				had = false;
		}
		if (r == 0 && !had && mkdirat(pfd, name, (mode_t)o->mode & 0777) < 0)
			r = -errno;
		if (r == 0 && fstatat(pfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
		if (r == 0) {
			/* mkdir takes no set-ID or sticky bits from its mode; a
			 * set-group-ID bit the parent hands down is recorded as
			 * inherited (left out of the mode): the parent here decides */
			mode_t want = (mode_t)(o->mode & 07777);
			if (!(o->mode & ACTION_MODE_SGID_CLEARED) && !(want & S_ISGID) && fs_stat_fd(pfd, &pst) == 0 &&
			    (pst.st_mode & S_ISGID))
				want |= now.st_mode & S_ISGID;
			if ((now.st_mode & 07777) != want && fchmodat(pfd, name, want, 0) < 0)
				r = -errno;
		}
		if (r == 0)
			forget_name(pfd, name, NULL);
		break;
	}
	case ACTION_OUT_SYMLINK: {
		char *target = action_absolutize(o->target, root_abs);
		if (!target) {
			r = -ENOMEM;
			break;
		}
		if (had)
			r = replace_type(pfd, name, &old);
		if (r == 0 && symlinkat(target, pfd, name) < 0)
			r = -errno;
		free(target);
		if (r == 0)
			forget_name(pfd, name, NULL);
		break;
	}
	case ACTION_OUT_REMOVED:
		if (had)
			r = replace_type(pfd, name, &old);
		break;
	default:
		r = -EINVAL;
	}
	close(pfd);
	if (spare >= 0)
		close(spare);
	return r;
}

static size_t path_depth(const char *p)
{
	size_t d = 0;
	for (; *p; p++)
		d += *p == '/';
	return d;
}

static int removed_deeper_first(const void *a, const void *b, void *arg)
{
	const action_manifest *m = arg;
	size_t da = path_depth(m->out[*(const size_t *)a].path), db = path_depth(m->out[*(const size_t *)b].path);
	return da < db ? 1 : da > db ? -1 : 0;
}

/* The order to restore m's outputs in: the names the run removed first,
 * deepest first (a removed directory's entries before it: `rm -rf`), then
 * the others as recorded (a directory before what it holds).  malloc'd,
 * NULL on ENOMEM. */
static size_t *restore_order(const action_manifest *m)
{
	size_t *order = malloc((m->nout ? m->nout : 1) * sizeof(*order)), n = 0;
	if (!order)
		return NULL;
	for (size_t k = 0; k < m->nout; k++)
		if (m->out[k].kind == ACTION_OUT_REMOVED)
			order[n++] = k;
	qsort_r(order, n, sizeof(*order), removed_deeper_first, (void *)m);
	for (size_t k = 0; k < m->nout; k++)
		if (m->out[k].kind != ACTION_OUT_REMOVED)
			order[n++] = k;
	return order;
}

/* ---- LOOKUP ----------------------------------------------------------------- */

/* Whether m's streams replay as a run would write them now, stdout and
 * stderr being one file (merged) or not: a run recorded with them apart
 * replays into one file in order only when one of them was empty; one
 * recorded into one file cannot be split, unless it wrote nothing. */
static bool streams_fit(const action_manifest *m, bool merged)
{
	if (m->flags & ACTION_F_MERGED_STREAMS)
		return merged || m->out_stdout.size == 0;
	return !merged || m->out_stdout.size == 0 || m->out_stderr.size == 0;
}


/* True when the file open (O_PATH) as fd carries extended attributes a
 * truncating open keeps and a new file does not get: user, trusted and
 * system ones such as an access ACL (not security.*: a new file gets its
 * label too, and a write drops file capabilities). */
static bool keeps_xattrs(int fd)
{
	char proc[48], names[4096];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t n = listxattr(proc, names, sizeof(names));
	if (n < 0)
		return errno == ERANGE; /* more than fit: some are kept */
	for (ssize_t at = 0; at < n; at += (ssize_t)strlen(names + at) + 1)
		if (strncmp(names + at, "security.", 9) != 0)
			return true;
	return false;
}

/* Why output o of m cannot be restored as a fresh run would leave it, or
 * NULL.  A hit replaces the name; a fresh run that opens it truncating
 * writes through what is there: a symlink, or a file with other links; and
 * keeps its owner, group and extended attributes, which the file a hit makes
 * does not have (it is the caller's, q).  And where m observed nothing of
 * the name (its absence was implied by the open that created it), a file
 * there now keeps its permission bits when truncated, and anything but a
 * regular file makes the run differ. */
static const char *output_blocked(struct req *q, int root_fd, const action_manifest *m, const action_output *o)
{
	struct stat st, pst;
	if (o->kind != ACTION_OUT_FILE)
		return NULL;
	size_t at;
	char dir[PATH_MAX];
	int pfd = parent_open(root_fd, o->path, &at, dir);
	if (pfd < 0)
		return NULL; /* absent, or unreachable: restoring it fails */
	int fd = openat(pfd, o->path + at, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int r = fd < 0 ? -errno : fs_stat_fd(fd, &st);
	if (r == 0 && fs_stat_fd(pfd, &pst) < 0)
		r = -errno;
	close(pfd);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return NULL; /* absent (or unreachable: restoring it fails) */
	}
	bool xattrs = S_ISREG(st.st_mode) && keeps_xattrs(fd);
	close(fd);
	if (S_ISLNK(st.st_mode))
		return "is a symlink";
	if (S_ISREG(st.st_mode) && st.st_nlink > 1)
		return "is a file with other hard links";
	if (S_ISREG(st.st_mode)) {
		uid_t uid;
		gid_t gid;
		req_creds_owner(q, &uid, &gid);
		if (pst.st_mode & S_ISGID)
			gid = pst.st_gid;
		if (st.st_uid != uid || st.st_gid != gid)
			return "is a file of another owner or group";
		if (xattrs)
			return "is a file with extended attributes";
	}
	for (size_t i = 0; i < m->nin; i++)
		if (m->in[i].scope == ACTION_SCOPE_ROOT && strcmp(m->in[i].path, o->path) == 0)
			return NULL;
	if (!S_ISREG(st.st_mode))
		return "exists, not as a file";
	if ((st.st_mode & 07777) != o->mode)
		return "is a file of another mode";
	return NULL;
}

/* True when every stored output of m is still in the store (gc may have
 * evicted some: then m is of no use). */
static bool outputs_stored(const action_manifest *m)
{
	cache_blob_header h;
	for (size_t i = 0; i < m->nout; i++)
		if (m->out[i].kind == ACTION_OUT_FILE && cache_blob_stat(FS->ix, &m->out[i].digest, &h) < 0)
			return false;
	for (int s = 0; s < 2; s++) {
		const action_stream *st = s ? &m->out_stderr : &m->out_stdout;
		if (!st->inline_data && st->size && cache_blob_stat(FS->ix, &st->digest, &h) < 0)
			return false;
	}
	return true;
}

static const char *in_kind_name(int kind)
{
	switch (kind) {
	case ACTION_IN_FILE: return "file";
	case ACTION_IN_ABSENT: return "absent";
	case ACTION_IN_DIR: return "directory listing";
	case ACTION_IN_SYMLINK: return "symlink";
	case ACTION_IN_EXISTS: return "existing name";
	default: return "?";
	}
}

/* A replayed stream into the response: inline bytes, or the blob's; with
 * from, as the run would have written it at root `to` (its paths under the
 * root moved there) when that rewrite holds. */
static int resp_stream(struct ctlfile *cf, uint32_t tag, const action_stream *s, const char *from, const char *to)
{
	uint8_t *buf = NULL, *moved;
	size_t len = (size_t)s->size, mlen;
	const uint8_t *data = s->data;
	int r = 0;
	if (!s->inline_data && s->size && (r = blob_bytes(&s->digest, SIZE_MAX, &buf, &len)) < 0)
		return r;
	if (buf)
		data = buf;
	if (from && len && action_root_rewrite(data, len, from, to, &moved, &mlen) == 0) {
		r = resp_field(cf, tag, moved, mlen);
		free(moved);
	} else {
		r = resp_field(cf, tag, data, len);
	}
	free(buf);
	return r;
}

/* The digest of a file outside the mount (a compiler, say), as the daemon
 * sees it at path: cached by (dev, ino) with size, mtime and ctime (the
 * index's rule), so a toolchain is hashed once.  When want (the caller's
 * stat of it) is given and the daemon sees another file there (another
 * mount namespace), -EXDEV.  Opened as the caller: a file it may not read
 * is not hashed for it.  0 or -errno. */
static int tool_digest_of(struct req *q, const char *path, const struct casfs_exec_stat *want, hasher_digest *ret)
{
	struct stat st;
	req_creds_enter(q);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int err = errno;
	req_creds_leave(q);
	if (fd < 0)
		return -err;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0 && !S_ISREG(st.st_mode))
		r = -EINVAL;
	if (r == 0 && want &&
	    ((uint64_t)st.st_dev != want->dev || (uint64_t)st.st_ino != want->ino || (uint64_t)st.st_size != want->size ||
	     cache_timespec_ns(&st.st_mtim) != want->mtime_ns || cache_timespec_ns(&st.st_ctim) != want->ctime_ns))
		r = -EXDEV;
	if (r == 0)
		r = outside_digest(fd, &st, ret);
	close(fd);
	return r;
}


/* The per-user record of what a compiler driver (by digest) runs as NAME. */
static void prog_key(uint32_t uid, const char *name, const hasher_digest *driver, char *buf, size_t size)
{
	char hex[HASHER_HEX_LEN + 1];
	hasher_digest_to_hex(driver, hex);
	snprintf(buf, size, "%u:prog:%s:%s", uid, name, hex);
}

/* What besides the uid decides what the caller may read and so what a run
 * of its gets: its gid, supplementary groups and effective capabilities
 * (root without CAP_DAC_OVERRIDE is refused what root is not), from
 * /proc/TID/status; unreadable, the thread id itself (no other call
 * shares it). */
static void caller_creds(const struct req *q, hasher_digest *ret)
{
	char path[64], buf[4096], key[1024];
	int n = snprintf(key, sizeof(key), "gid=%u\n", (unsigned)q->gid);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)q->tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t l = fd >= 0 ? cache_io_read(fd, buf, sizeof(buf) - 1, 0) : -1;
	if (fd >= 0)
		close(fd);
	if (l <= 0) {
		n += snprintf(key + n, sizeof(key) - (size_t)n, "tid=%d\n", (int)q->tid);
	} else {
		buf[l] = '\0';
		static const char *const lines[] = { "\nGroups:", "\nCapEff:" };
		for (size_t i = 0; i < 2 && n < (int)sizeof(key); i++) {
			const char *s = strstr(buf, lines[i]);
			size_t sl = s ? strcspn(s + 1, "\n") : 0;
			n += snprintf(key + n, sizeof(key) - (size_t)n, "%.*s\n", (int)sl, s ? s + 1 : "");
		}
	}
	hasher_digest_buffer(key, n < (int)sizeof(key) ? (size_t)n : sizeof(key) - 1, ret);
}

/* The action's key: the caller's key material and uid with the digests of
 * the toolchain, which the daemon takes itself (the executable, and for a
 * gcc/clang driver the compiler proper and the assembler it runs), of
 * stdin and of the caller's credentials (caller_creds).  0 and *ret;
 * -EAGAIN with out->status telling what to send. */
static int action_key(struct req *q, const struct action_req *a, struct casfs_ctl_call *out, hasher_digest *ret)
{
	hasher_digest tools[5 + MAX_USES];
	size_t n = 0;
	int r = 0;
	if (a->has_tool_digest)
		tools[n++] = a->tool_digest;
	else if ((r = tool_digest_of(q, a->tool, &a->tool_st, &tools[n++])) == -EXDEV) {
		out->status = CASFS_LOOKUP_NEED_DIGEST;
		return -EAGAIN;
	}
	if (r < 0)
		return r;
	if (a->cc >= 0) {
		const char *names[2] = { a->cc ? "cc1plus" : "cc1", "as" };
		for (int i = 0; i < 2; i++) {
			char key[160], path[PATH_MAX] = "";
			prog_key(q->uid, names[i], &tools[0], key, sizeof(key));
			size_t nl = strlen(names[i]);
			const hasher_digest *given = NULL;
			for (size_t k = 0; k < a->nprogs; k++)
				if (!strncmp(a->progs[k].spec, names[i], nl) && a->progs[k].spec[nl] == '=') {
					snprintf(path, sizeof(path), "%s", a->progs[k].spec + nl + 1);
					given = a->progs[k].has_digest ? &a->progs[k].digest : NULL;
				}
			if (a->has_tool_digest) {
				/* the daemon sees other files: the caller's digests */
				if (!given) {
					out->status = CASFS_LOOKUP_NEED_DIGEST;
					return -EAGAIN;
				}
				tools[n++] = *given;
				continue;
			}
			/* what the driver runs, remembered per driver; not a
			 * call's own (-B, COMPILER_PATH) */
			bool own = (a->flags & CASFS_EXEC_F_OWN_PROGS) != 0;
			if (path[0] && !own)
				cache_index_kv_put(FS->ix, 'U', key, strlen(key), path, strlen(path));
			void *val = NULL;
			size_t vlen;
			if (!path[0] && !own && cache_index_kv_get(FS->ix, 'U', key, strlen(key), &val, &vlen) == 0 &&
			    vlen < sizeof(path)) {
				memcpy(path, val, vlen);
				path[vlen] = '\0';
			}
			free(val);
			if (!path[0]) {
				out->status = CASFS_LOOKUP_NEED_PROGS;
				return -EAGAIN;
			}
			/* a name the driver finds on PATH, or nothing: in the key as text */
			if (path[0] != '/' || tool_digest_of(q, path, NULL, &tools[n]) < 0)
				hasher_digest_buffer(path, strlen(path), &tools[n]);
			n++;
		}
	}
	if (a->has_stdin)
		tools[n++] = a->stdin_digest;
	/* the other programs a shell line names */
	for (size_t i = 0; i < a->nuses; i++, n++) {
		if (a->uses[i].has_digest != a->has_tool_digest)
			return -EBADMSG;
		if (a->uses[i].has_digest) {
			tools[n] = a->uses[i].digest;
			continue;
		}
		if ((r = tool_digest_of(q, a->uses[i].path, &a->uses[i].st, &tools[n])) == -EXDEV) {
			out->status = CASFS_LOOKUP_NEED_DIGEST;
			return -EAGAIN;
		}
		if (r < 0) /* gone or unreadable: that, as text */
			hasher_digest_buffer(strerror(-r), strlen(strerror(-r)), &tools[n]);
	}
	caller_creds(q, &tools[n++]);
	size_t len = a->key_len + 4 + n * sizeof(tools[0].bytes);
	uint8_t *m = malloc(len);
	if (!m)
		return -ENOMEM;
	memcpy(m, a->key, a->key_len);
	uint32_t nt = (uint32_t)n | (a->has_stdin ? 0x80000000u : 0);
	memcpy(m + a->key_len, &nt, 4);
	for (size_t i = 0; i < n; i++)
		memcpy(m + a->key_len + 4 + i * sizeof(tools[0].bytes), tools[i].bytes, sizeof(tools[0].bytes));
	action_key_final(m, len, q->uid, ret);
	free(m);
	return 0;
}

/* The caller's view agrees with the daemon's: its working directory ends
 * with the path .casfs/ctl was opened in, and the root it names is that
 * mount's.  -EXDEV otherwise (the caller then asks WHERE). */
static int check_view(struct ctlfile *cf, const struct action_req *a)
{
	char where[PATH_MAX];
	ino_node *d = ino_table_get(FS->tbl, cf->dir);
	int wl = d ? ino_node_path(FS->tbl, d, where, sizeof(where)) : -ESTALE;
	if (wl < 0)
		return wl;
	size_t cl = strlen(a->cwd_abs), ml;
	if (wl == 0)
		ml = cl;
	else if (cl > (size_t)wl && a->cwd_abs[cl - wl - 1] == '/' && !strcmp(a->cwd_abs + cl - wl, where))
		ml = cl - wl - 1;
	else
		return -EXDEV;
	/* root_abs == mount (as the caller sees it) + "/" + root */
	if (strncmp(a->root_abs, a->cwd_abs, ml) != 0)
		return -EXDEV;
	const char *rest = a->root_abs + ml;
	if (a->root[0] ? (rest[0] != '/' || strcmp(rest + 1, a->root) != 0) : rest[0] != '\0')
		return -EXDEV;
	return 0;
}

/* A client asking from inside another run (a recursive make under
 * casfs-sh): that run cannot be cached. */
static void mark_outer(struct req *q)
{
	struct session *outer = session_of_caller(FS->ss, q->tid);
	if (outer) {
		trace_nested(session_trace(outer));
		session_put(outer);
	}
}

static void lookup(struct req *q, struct ctlfile *cf, struct casfs_ctl_call *out)
{
	struct action_req a;
	action_record rec = { 0 };
	void *val = NULL;
	size_t vlen = 0;
	int root_fd = -1, mfd = -1, r;
	bool dropped = false;
	hasher_digest key;
	struct probe_dirs *dirs = NULL;
	out->status = CASFS_LOOKUP_MISS;
	cf->have_key = false;
	if ((r = action_req_parse(cf, &a)) < 0) {
		out->result = r;
		return;
	}
	if ((r = check_view(cf, &a)) < 0 || (r = action_key(q, &a, out, &key)) < 0) {
		if (r != -EAGAIN)
			out->result = r;
		action_req_clear(&a);
		return;
	}
	COUNT(action_lookups);
	mark_outer(q);
	/* BEGIN traces this action */
	free(cf->root);
	free(cf->root_abs);
	cf->key = key;
	cf->root = strdup(a.root);
	cf->root_abs = strdup(a.root_abs);
	cf->flags = a.flags;
	cf->have_key = cf->root && cf->root_abs;
	r = cache_index_kv_get(FS->ix, 'A', key.bytes, sizeof(key.bytes), &val, &vlen);
	if (r == -ENOENT) {
		resp_text(cf, CASFS_T_EXPLAIN, "miss: no run of this action is recorded");
		COUNT(action_misses);
		goto out;
	}
	if (r < 0 || (r = action_record_decode(val, vlen, &rec)) < 0) {
		resp_text(cf, CASFS_T_EXPLAIN, "miss: the recorded runs could not be read (%s)", strerror(-r));
		COUNT(action_misses);
		goto out;
	}
	if ((mfd = mount_fd()) < 0 || (root_fd = open_beneath(mfd, a.root, O_PATH | O_DIRECTORY)) < 0) {
		out->result = mfd < 0 ? mfd : root_fd;
		goto out;
	}
	size_t rl = strlen(a.root);
	dirs = calloc(1, sizeof(*dirs)); /* NULL: paths are walked */
	struct probe_ctx pc = { .dirs = dirs, .root_fd = root_fd, .mount_fd = mfd, .root = a.root, .root_abs = a.root_abs,
				.mount_abs_len = strlen(a.root_abs) - (rl ? rl + 1 : 0) };
	ssize_t first_diff = -2;
	size_t first_m = 0;
	bool relocation_needed = false, streams_apart = false;
	const char *blocked = NULL, *blocked_out = NULL; /* an output in the way */
	for (size_t i = 0; i < rec.n; i++) {
		action_manifest *m = &rec.m[i];
		pc.rec_root = m->root_at_record;
		ssize_t d = action_manifest_match(m, probe, &pc);
		if (d >= 0) {
			if (first_diff == -2) {
				first_diff = d;
				first_m = i;
			}
			continue;
		}
		if (!streams_fit(m, (a.flags & CASFS_EXEC_F_MERGED_STREAMS) != 0)) {
			streams_apart = true;
			continue;
		}
		const char *why = NULL;
		size_t o = 0;
		while (o < m->nout && !(why = output_blocked(q, root_fd, m, &m->out[o])))
			o++;
		if (why) {
			if (!blocked) {
				blocked = why;
				blocked_out = m->out[o].path;
			}
			continue;
		}
		bool relocated = strcmp(m->root_at_record, a.root_abs) != 0;
		if ((m->flags & ACTION_F_EMBEDS_ROOT) && relocated && !(a.flags & CASFS_EXEC_F_RELOCATE)) {
			relocation_needed = true;
			continue;
		}
		if (!outputs_stored(m)) {
			action_record_remove(&rec, i--);
			dropped = true;
			COUNT(action_blob_missing);
			continue;
		}
		/* a hit */
		out->status = CASFS_LOOKUP_HIT;
		if (a.flags & CASFS_EXEC_F_EXPLAIN) {
			resp_text(cf, CASFS_T_EXPLAIN, "hit: %zu outputs would be restored (recorded run took %llu ms)%s",
				  m->nout, (unsigned long long)action_manifest_run_ms(m),
				  (m->flags & ACTION_F_EMBEDS_ROOT) && relocated ? " at another root (--relocate)" : "");
			goto out;
		}
		/* text naming the root (dependency files) as a run here would
		 * have written it */
		hasher_digest *alt = NULL;
		if (relocated)
			r = root_text_outputs(m, m->root_at_record, a.root_abs, &alt);
		size_t *order = r == 0 ? restore_order(m) : NULL;
		int *spare = r == 0 ? malloc((m->nout ? m->nout : 1) * sizeof(*spare)) : NULL;
		struct in_place *kept = r == 0 ? calloc(m->nout ? m->nout : 1, sizeof(*kept)) : NULL;
		if (r == 0 && (!order || !spare || !kept))
			r = -ENOMEM;
		for (size_t k = 0; r == 0 && k < m->nout; k++) {
			const hasher_digest *dg = alt ? &alt[k] : &m->out[k].digest;
			spare[k] = output_in_place(q, root_fd, &m->out[k], dg, &kept[k]) ?
					   -1 :
					   spare_filled(q, root_fd, &m->out[k], dg);
		}
		req_creds_enter(q);
		size_t j = 0;
		for (; r == 0 && j < m->nout; j++) {
			size_t k = order[j];
			if (kept[k].n && touch_in_place(root_fd, &m->out[k], &kept[k]) == 0) {
				COUNT(action_outputs_in_place);
				continue;
			}
			r = restore_one(root_fd, &m->out[k], alt ? &alt[k] : &m->out[k].digest, a.root_abs,
					spare[k]);
		}
		req_creds_leave(q);
		for (; order && spare && j < m->nout; j++) /* not reached after a failure */
			if (spare[order[j]] >= 0)
				close(spare[order[j]]);
		for (size_t k = 0; kept && k < m->nout; k++)
			in_place_clear(&kept[k]);
		free(kept);
		free(spare);
		free(order);
		free(alt);
		if (r < 0) {
			/* what was restored stays; the command runs and writes
			 * its outputs anyway */
			out->status = CASFS_LOOKUP_MISS;
			resp_text(cf, CASFS_T_EXPLAIN, "miss: restoring the outputs failed (%s)", strerror(-r));
			COUNT(action_restore_errors);
			goto out;
		}
		int32_t ex = m->exit_status;
		resp_field(cf, CASFS_T_EXIT, &ex, sizeof(ex));
		if (m->flags & ACTION_F_STDIN_EOF)
			resp_field(cf, CASFS_T_STDIN_EOF, NULL, 0);
		const char *from = relocated && (m->flags & ACTION_F_STREAMS_ROOT_TEXT) ? m->root_at_record : NULL;
		if ((r = resp_stream(cf, CASFS_T_STDOUT, &m->out_stdout, from, a.root_abs)) < 0 ||
		    (r = resp_stream(cf, CASFS_T_STDERR, &m->out_stderr, from, a.root_abs)) < 0) {
			out->status = CASFS_LOOKUP_MISS;
			cf->resp_len = 0;
			resp_text(cf, CASFS_T_EXPLAIN, "miss: the recorded output streams are unreadable (%s)",
				  strerror(-r));
			goto out;
		}
		resp_text(cf, CASFS_T_EXPLAIN, "hit: %zu outputs restored, %llu ms saved%s", m->nout,
			  (unsigned long long)action_manifest_run_ms(m), (m->flags & ACTION_F_EMBEDS_ROOT) && relocated ? " (relocated)" : "");
		COUNT(action_hits);
		COUNT_N(action_time_saved_ms, action_manifest_run_ms(m));
		COUNT_N(action_outputs_restored, m->nout);
		if (relocated && (m->flags & ACTION_F_EMBEDS_ROOT))
			COUNT(action_relocated_hits);
		goto out;
	}
	COUNT(action_misses);
	if (relocation_needed)
		resp_text(cf, CASFS_T_EXPLAIN, "miss: a recorded run matches, but its outputs or streams hold the "
			  "path of its root (%s) where casfs cannot move it (a compile's -MD dependency file and "
			  "diagnostics it moves); reuse them here with --relocate, or make the object relocatable "
			  "with -ffile-prefix-map=ROOT=.", rec.n ? rec.m[0].root_at_record : "?");
	else if (blocked)
		resp_text(cf, CASFS_T_EXPLAIN, "miss: a recorded run matches, but its output %s %s", blocked_out,
			  blocked);
	else if (streams_apart)
		resp_text(cf, CASFS_T_EXPLAIN, "miss: a recorded run matches, but it wrote both stdout and stderr "
			  "with them %s, and they are %s now", (a.flags & CASFS_EXEC_F_MERGED_STREAMS) ? "apart" : "one file",
			  (a.flags & CASFS_EXEC_F_MERGED_STREAMS) ? "one file" : "apart");
	else if (first_diff >= 0) {
		const action_input *in = &rec.m[first_m].in[first_diff];
		resp_text(cf, CASFS_T_EXPLAIN, "miss: %s%s%s (%s) %s",
			  in->scope == ACTION_SCOPE_MOUNT ? "<mount>/" : "", in->path[0] ? in->path : ".",
			  "", in_kind_name(in->kind),
			  in == pc.busy ? "is open for writing (what a reader sees of it may not have reached casfs)"
					: "differs from the recorded run");
	} else {
		resp_text(cf, CASFS_T_EXPLAIN, "miss: no recorded run has all its outputs still stored");
	}
out:
	if (dropped) {
		uint8_t *enc;
		size_t elen;
		if (rec.n == 0)
			cache_index_kv_del_later(FS->ix, 'A', key.bytes, sizeof(key.bytes));
		else if (action_record_encode(&rec, &enc, &elen) == 0) {
			cache_index_kv_put_later(FS->ix, 'A', key.bytes, sizeof(key.bytes), enc, elen);
			free(enc);
		}
	}
	if (dirs) {
		probe_dirs_clear(dirs);
		free(dirs);
	}
	if (root_fd >= 0)
		close(root_fd);
	if (mfd >= 0)
		ino_node_fd_put(FS->tbl, ino_table_root(FS->tbl));
	action_record_clear(&rec);
	free(val);
	action_req_clear(&a);
}

/* ---- BEGIN ------------------------------------------------------------------ */

struct begin_args {
	struct req *q;
	struct trace *tr;
	struct session **ret;
};

static int begin_session(void *arg)
{
	struct begin_args *b = arg;
	return session_begin(FS->ss, b->q->tid, b->q->uid, b->tr, b->ret);
}

static void begin(struct req *q, struct ctlfile *cf, struct casfs_ctl_call *out)
{
	struct trace *tr = NULL;
	int r;
	if (!cf->have_key) {
		out->result = -EINVAL; /* BEGIN without a LOOKUP */
		return;
	}
	end_unrecorded(cf);
	struct begin_args b = { q, NULL, &cf->sess };
	if ((r = trace_new(&tr)) == 0 && (r = trace_set_root(tr, cf->root_abs)) == 0) {
		b.tr = tr;
		r = kcache_begin_session(FS->kc, begin_session, &b);
	}
	if (r < 0) {
		trace_free(tr);
		COUNT(exec_uncached);
		out->result = r;
		return;
	}
	if (!(cf->flags & CASFS_EXEC_F_CC_DEPS))
		trace_watch_compilers(tr);
	cf->begun_ns = now_ns();
	out->value = session_id(cf->sess);
	COUNT(sessions);
}

/* ---- END -------------------------------------------------------------------- */

/* Counts a reason not to cache a run (the names are the counters'). */
static void count_reason(const char *reason)
{
	static const struct {
		const char *name;
		enum casfs_counter c;
	} reasons[] = {
#define REASON(n) { #n, CASFS_C_##n },
		CASFS_UNCACHEABLE_COUNTERS(REASON)
#undef REASON
	};
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(reasons[i].name + strlen("uncacheable_"), reason) == 0)
			atomic_fetch_add_explicit(&FS->counters[reasons[i].c], 1, memory_order_relaxed);
}

struct end_req {
	int32_t exit;
	bool has_exit;
	bool outlived;
	bool stdin_moved, stdin_eof;
	char reason[32];        /* the client's reason not to cache */
	uint64_t run_ms;
	const uint8_t *out, *err;
	size_t out_len, err_len;
	const uint8_t *fields;  /* for the DEP_ABS walk */
	size_t fields_len;
	const uint8_t *text_out[4]; /* CASFS_T_TEXT_OUT (not NUL-terminated) */
	size_t text_out_len[4];
	int ntext_out;
};

static int end_field(void *arg, uint32_t tag, const uint8_t *v, size_t len)
{
	struct end_req *e = arg;
	switch (tag) {
	case CASFS_T_EXIT:
		if (len != 4)
			return -EBADMSG;
		memcpy(&e->exit, v, 4);
		e->has_exit = true;
		return 0;
	case CASFS_T_RUN_MS:
		if (len != 8)
			return -EBADMSG;
		memcpy(&e->run_ms, v, 8);
		return 0;
	case CASFS_T_STDOUT:
		e->out = v;
		e->out_len = len;
		return 0;
	case CASFS_T_STDERR:
		e->err = v;
		e->err_len = len;
		return 0;
	case CASFS_T_OUTLIVED:
		e->outlived = true;
		return 0;
	case CASFS_T_STDIN_MOVED:
		e->stdin_moved = true;
		return 0;
	case CASFS_T_STDIN_EOF:
		e->stdin_eof = true;
		return 0;
	case CASFS_T_TEXT_OUT:
		if (len == 0 || v[0] != '/')
			return -EBADMSG;
		if (e->ntext_out < (int)(sizeof(e->text_out) / sizeof(*e->text_out))) {
			e->text_out[e->ntext_out] = v;
			e->text_out_len[e->ntext_out++] = len;
		}
		return 0;
	case CASFS_T_REASON:
		if (len == 0 || len >= sizeof(e->reason))
			return -EBADMSG;
		memcpy(e->reason, v, len);
		e->reason[len] = '\0';
		return 0;
	default:
		return 0;
	}
}

struct rec_ctx {
	action_manifest *m;
	int64_t begun_ns;     /* when the run began */
	int root_fd;
	const char *root_abs;
	action_scan scan;
	bool scanning;
	/* the root as make's syntax escapes it in a dependency file (a space
	 * as "\ ", '#' as "\#", '$' as "$$"), when that differs: gcc writes
	 * it so, and such a root cannot be moved (action_root_rewrite) */
	action_scan scan_esc;
	bool scanning_esc;
	const char *reason;   /* set when the run cannot be cached */
	const struct end_req *e; /* its TEXT_OUT outputs */
	bool link_names_root; /* a symlink output's target names the root */
};

/* Whether the output rel (root-relative) is one the client named as text
 * naming paths with the root spelled out. */
static bool is_text_out(const struct rec_ctx *c, const char *rel)
{
	size_t rl = strlen(c->root_abs), l = strlen(rel);
	for (int i = 0; c->e && i < c->e->ntext_out; i++) {
		const uint8_t *v = c->e->text_out[i];
		size_t vl = c->e->text_out_len[i];
		if (vl == rl + 1 + l && memcmp(v, c->root_abs, rl) == 0 && v[rl] == '/' && memcmp(v + rl + 1, rel, l) == 0)
			return true;
	}
	return false;
}

/* Whether the text of fd (size bytes) names the root only as a prefix of
 * paths under it (action_root_rewrite can move it to another root). */
static bool root_text_rewritable(const struct rec_ctx *c, int fd, uint64_t size)
{
	if (size > ROOT_TEXT_MAX)
		return false;
	uint8_t *buf = malloc(size ? size : 1);
	bool ok = buf && cache_io_read(fd, buf, size, 0) == (ssize_t)size &&
		  action_root_rewrite(buf, size, c->root_abs, NULL, NULL, NULL) == 0;
	free(buf);
	return ok;
}

/* The scans for the root start over (a new file or stream). */
static void scan_restart(struct rec_ctx *c)
{
	c->scan.matched = 0;
	c->scan_esc.matched = 0;
}

static void scan_chunk(void *arg, const void *data, size_t len)
{
	struct rec_ctx *c = arg;
	if (c->scanning)
		action_scan_feed(&c->scan, data, len);
	if (c->scanning_esc)
		action_scan_feed(&c->scan_esc, data, len);
}

/* Whether the root was seen (either spelling) since the flags were last
 * cleared; clears them. */
static bool scan_take_found(struct rec_ctx *c)
{
	bool found = c->scan.found || c->scan_esc.found;
	c->scan.found = c->scan_esc.found = false;
	return found;
}

static int scan_start(struct rec_ctx *c, const char *root_abs)
{
	c->scanning = strlen(root_abs) > 1 && action_scan_init(&c->scan, root_abs) == 0;
	char esc[2 * PATH_MAX];
	size_t n = 0;
	for (const char *p = root_abs; *p && n + 2 < sizeof(esc); p++) {
		if (*p == ' ' || *p == '\t' || *p == '#')
			esc[n++] = '\\';
		else if (*p == '$')
			esc[n++] = '$';
		esc[n++] = *p;
	}
	esc[n] = '\0';
	c->scanning_esc = c->scanning && strcmp(esc, root_abs) != 0 && action_scan_init(&c->scan_esc, esc) == 0;
	return 0;
}

/* Stores the regular file open (O_PATH) as fd: its digest (known, or read
 * once with the store, and then recorded as the file's: an output written
 * out of order is not read a second time for it) and whether it holds the
 * root's path. */
static int store_file(struct rec_ctx *c, const char *rel, int fd, const struct stat *st, action_output *o)
{
	int rfd = fs_reopen_fd(fd, O_RDONLY);
	if (rfd < 0)
		return rfd;
	/* the blob's index record is committed with the action's (the
	 * flusher): a hit checks the blob file itself (outputs_stored) */
	cache_put_opts opts = { .mode = FS->o.compression, .zstd_level = FS->o.zstd_level,
				.on_chunk = scan_chunk, .on_chunk_arg = c, .defer_record = true };
	ino_node *n = ino_table_find_ref(FS->tbl, st->st_dev, st->st_ino);
	cache_file_rec rec;
	uint64_t version;
	bool seed = false;
	if (n && FS->dg && digests_peek(FS->dg, n, &rec, &version) == 0 && rec.size == (uint64_t)st->st_size) {
		opts.has_expect = true;
		opts.expect = rec.digest;
	} else if (n && FS->dg) {
		seed = digests_version(FS->dg, n, &version) == 0;
	}
	cache_put_result res;
	bool before = scan_take_found(c);
	scan_restart(c);
	int r = cache_put_fd(FS->ix, rfd, &opts, &res);
	struct stat after;
	if (r == 0 && seed && res.read && fstat(rfd, &after) == 0 && (uint64_t)after.st_size == res.size)
		(void)digests_seed_read(FS->dg, n, &res.digest, &after, version);
	if (n)
		ino_node_unref(FS->tbl, n);
	if (r == 0 && c->scanning && !res.read) {
		/* stored before, so not read now: read it for the root */
		char buf[65536];
		ssize_t got;
		off_t off = 0;
		scan_restart(c);
		while ((got = pread(rfd, buf, sizeof(buf), off)) > 0) {
			scan_chunk(c, buf, (size_t)got);
			off += got;
		}
	}
	/* a dependency file naming the root: rewritten for another root when
	 * restored there, so it does not pin the result to this one */
	bool esc = c->scan_esc.found;
	bool here = scan_take_found(c);
	if (r == 0 && here && !esc && is_text_out(c, rel) && root_text_rewritable(c, rfd, res.size)) {
		o->root_text = true;
		here = false;
	}
	c->scan.found = before || here;
	close(rfd);
	if (r < 0)
		return r;
	o->kind = ACTION_OUT_FILE;
	o->digest = res.digest;
	o->size = res.size;
	o->mode = st->st_mode & 07777;
	return 0;
}

static int add_output_at(struct rec_ctx *c, const char *rel, bool existed, bool whole);

/* The entries of a directory the run made: outputs too. */
static int add_dir_entries(struct rec_ctx *c, int fd, const char *rel)
{
	int dfd = fs_reopen_fd(fd, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return dfd;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int r = 0;
	struct dirent *e;
	while (r == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char child[PATH_MAX];
		if (snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= (int)sizeof(child))
			r = -ENAMETOOLONG;
		else
			r = add_output_at(c, child, false, false);
	}
	closedir(d);
	return r;
}

/* rel changed: what is there now is an output (or its removal, when it
 * existed before).  A directory's entries are outputs too when it is new or
 * whole (renamed onto rel by the run: its entries were made under another
 * name, or before the run). */
static int add_output_at(struct rec_ctx *c, const char *rel, bool existed, bool whole)
{
	action_output o = { .path = (char *)rel };
	struct stat st;
	if (c->reason)
		return 0;
	if (rel[0] == '\0') {
		c->reason = "writes_outside_root"; /* the root itself changed */
		return 0;
	}
	int fd = open_beneath(c->root_fd, rel, O_PATH | O_NOFOLLOW);
	/* gone, or a directory on its way is now something else: a symlink
	 * (ELOOP: rm -rf d && ln -s x d), whose own output it is */
	if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP) {
		if (!existed)
			return 0; /* made and removed by the run: a temporary */
		o.kind = ACTION_OUT_REMOVED;
		return action_manifest_add_output(c->m, &o);
	}
	if (fd < 0)
		return fd;
	int r = fs_stat_fd(fd, &st);
	if (r < 0)
		goto out;
	if (S_ISREG(st.st_mode)) {
		r = store_file(c, rel, fd, &st, &o);
		if (r == -ESTALE) {
			c->reason = "output_changed";
			r = 0;
			goto out;
		}
	} else if (S_ISDIR(st.st_mode)) {
		o.kind = ACTION_OUT_DIR;
		o.mode = st.st_mode & 07777;
		/* below a set-group-ID parent: the bit it hands down is recorded
		 * as inherited, its absence as cleared by the run */
		const char *slash = strrchr(rel, '/');
		char parent[PATH_MAX];
		struct stat pst;
		snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - rel) : 0, rel);
		int pfd = open_beneath(c->root_fd, parent, O_PATH | O_DIRECTORY);
		if (pfd >= 0 && fs_stat_fd(pfd, &pst) == 0 && (pst.st_mode & S_ISGID))
			o.mode = o.mode & S_ISGID ? o.mode & ~(uint32_t)S_ISGID : o.mode | ACTION_MODE_SGID_CLEARED;
		if (pfd >= 0)
			close(pfd);
		r = action_manifest_add_output(c->m, &o);
		if (r == 0 && (!existed || whole))
			r = add_dir_entries(c, fd, rel);
		goto out;
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t l = readlinkat(fd, "", target, sizeof(target) - 1);
		if (l < 0) {
			r = -errno;
			goto out;
		}
		target[l] = '\0';
		o.kind = ACTION_OUT_SYMLINK;
		o.target = action_relativize(target, c->root_abs);
		r = o.target ? 0 : -ENOMEM;
		/* the root's path in a target may come from what the run read
		 * (a script, a file), the same bytes at another root: such a
		 * link, like a file holding the root, stays at its root */
		if (o.target && strstr(o.target, "\x01R"))
			c->link_names_root = true;
	} else {
		c->reason = "special_output";
		goto out;
	}
	if (r == 0)
		r = action_manifest_add_output(c->m, &o);
	free(o.target);
out:
	close(fd);
	return r;
}

static int change_cb(void *arg, const char *rel, bool existed, bool moved_in)
{
	return add_output_at(arg, rel, existed, moved_in);
}

/* A captured stream: inline, or stored as a blob (through a memfd). */
/* action_root_at_locations' read: whether m holds rel (under the root) as a
 * file the run read. */
static bool was_read(void *arg, const char *rel, size_t len)
{
	const action_manifest *m = arg;
	for (size_t i = 0; i < m->nin; i++)
		if (m->in[i].scope == ACTION_SCOPE_ROOT && m->in[i].kind == ACTION_IN_FILE &&
		    !strncmp(m->in[i].path, rel, len) && !m->in[i].path[len])
			return true;
	return false;
}

static int make_stream(struct rec_ctx *c, const uint8_t *data, size_t len, action_stream *s, bool root_text)
{
	s->size = len;
	hasher_digest_buffer(data, len, &s->digest);
	if (c->scanning && !(root_text && len <= ROOT_TEXT_MAX &&
			     action_root_rewrite(data, len, c->root_abs, NULL, NULL, NULL) == 0 &&
			     action_root_at_locations(data, len, c->root_abs, was_read, c->m))) {
		scan_restart(c);
		bool before = scan_take_found(c);
		scan_chunk(c, data, len);
		c->scan.found = scan_take_found(c) || before;
	}
	if (len <= ACTION_INLINE_MAX) {
		s->inline_data = true;
		s->data = len ? malloc(len) : NULL;
		if (len && !s->data)
			return -ENOMEM;
		if (len)
			memcpy(s->data, data, len);
		return 0;
	}
	return put_bytes(data, len, &s->digest);
}

/* Adds the inputs outside the mount the client learned (the compiler's
 * dependency output, absences along its include search chain): the
 * daemon digests and checks them as it sees them. */
static int dep_field(void *arg, uint32_t tag, const uint8_t *v, size_t len)
{
	struct rec_ctx *c = arg;
	if ((tag != CASFS_T_DEP_ABS && tag != CASFS_T_ABSENT_ABS && tag != CASFS_T_LINK_ABS) || c->reason)
		return 0;
	char *path = strndup_field(v, len);
	if (!path || path[0] != '/') {
		free(path);
		return -EBADMSG;
	}
	struct stat st;
	if (tag == CASFS_T_LINK_ABS) {
		/* where it leads, as a lookup reads it (probe_at) */
		action_input in = { .kind = ACTION_IN_SYMLINK, .scope = ACTION_SCOPE_ABS, .path = path };
		char target[PATH_MAX];
		ssize_t l = -1;
		int r = 0;
		if (lstat(path, &st) < 0 || !S_ISLNK(st.st_mode) || cache_timespec_ns(&st.st_ctim) >= c->begun_ns ||
		    (l = readlink(path, target, sizeof(target) - 1)) < 0 || l == (ssize_t)sizeof(target) - 1) {
			c->reason = "input_changed"; /* retargeted or gone since the run began */
		} else {
			target[l] = '\0';
			r = trace_symlink_digest(target, c->root_abs, &in.digest);
			if (r == 0 && (r = action_manifest_add_input(c->m, &in)) == -EINVAL) {
				c->reason = "unknown_input";
				r = 0;
			}
		}
		free(path);
		return r;
	}
	if (tag == CASFS_T_ABSENT_ABS) {
		action_input in = { .kind = ACTION_IN_ABSENT, .scope = ACTION_SCOPE_ABS, .path = path };
		int r = 0, lr = lstat(path, &st), le = errno;
		if (lr == 0)
			c->reason = "input_changed"; /* it appeared since the compile looked */
		else if (le != ENOENT && le != ENOTDIR)
			c->reason = "unknown_input";
		else if ((r = action_manifest_add_input(c->m, &in)) == -EINVAL) {
			c->reason = "unknown_input";
			r = 0;
		}
		free(path);
		return r;
	}
	action_input in = { .kind = ACTION_IN_FILE, .scope = ACTION_SCOPE_ABS, .path = path };
	int fd = open(path, O_PATH | O_CLOEXEC);
	int r = 0;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    cache_timespec_ns(&st.st_ctim) >= c->begun_ns) {
		c->reason = "input_changed"; /* gone, replaced or changed since the run began */
	} else if ((r = file_digest(fd, &st, false, &in.digest)) == 0) {
		in.mode = st.st_mode & 07777;
		r = action_manifest_add_input(c->m, &in);
		if (r == -EINVAL) { /* a path the manifest cannot hold ("..") */
			c->reason = "unknown_input";
			r = 0;
		}
	}
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

/* Whether the file open as fd (-errno: not opened) may mark itself
 * once-only for gcc: "#pragma once" or "#import" (a superset: any "once"
 * or "import"); unreadable counts as yes. */
static bool maybe_once_only(int fd)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20))
		return true;
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n ? n : 1);
	if (!buf || cache_io_read(fd, buf, n, 0) != (ssize_t)n) {
		free(buf);
		return true;
	}
	bool yes = memmem(buf, n, "once", 4) || memmem(buf, n, "import", 6);
	free(buf);
	return yes;
}

struct dup_ent {
	hasher_digest d;
	size_t i;
};

static int dup_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct dup_ent *)a)->d, &((const struct dup_ent *)b)->d, sizeof(hasher_digest));
}

/* A compile that read two files of one content: gcc takes the second for
 * the first when the first was once-only (#pragma once, #import) and both
 * have the same size and modification time (in seconds), and then skips
 * it, without naming it in any dependency file.  So its result depends on
 * modification times, which no manifest holds: not cacheable.  0, or the
 * reason. */
static const char *once_duplicates(const action_manifest *m, int root_fd, int mfd)
{
	struct dup_ent *v = calloc(m->nin ? m->nin : 1, sizeof(*v));
	size_t n = 0;
	if (!v)
		return "out_of_memory";
	hasher_digest empty;
	hasher_digest_buffer("", 0, &empty);
	for (size_t i = 0; i < m->nin; i++)
		if (m->in[i].kind == ACTION_IN_FILE && !hasher_digest_equal(&m->in[i].digest, &empty))
			v[n++] = (struct dup_ent){ .d = m->in[i].digest, .i = i };
	qsort(v, n, sizeof(*v), dup_cmp);
	const char *reason = NULL;
	for (size_t k = 1; k < n && !reason; k++) {
		if (!hasher_digest_equal(&v[k].d, &v[k - 1].d))
			continue;
		const action_input *in = &m->in[v[k].i];
		int fd = in->scope == ACTION_SCOPE_ABS	? open(in->path, O_RDONLY | O_CLOEXEC) :
			 in->scope == ACTION_SCOPE_ROOT ? open_beneath(root_fd, in->path, O_RDONLY | O_NOFOLLOW) :
							  open_beneath(mfd, in->path, O_RDONLY | O_NOFOLLOW);
		if (maybe_once_only(fd))
			reason = "unknown_input";
		if (fd >= 0)
			close(fd);
	}
	free(v);
	return reason;
}

/* trace_inputs' is_file: whether rel (beneath the root fd *arg) is a
 * regular file now, at the end of the run.  A name whose absence was only
 * the lookup of the run's own create may be left out of the inputs only
 * then: a hit checks what is there (output_blocked).  Renamed or removed
 * since (`> $@.tmp && mv $@.tmp $@`), its absence is an input: a fresh run
 * would write through whatever is there first. */
static bool ends_as_file(void *arg, const char *rel)
{
	struct stat st;
	return fstatat(*(int *)arg, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static void end(struct req *q, struct ctlfile *cf, struct casfs_ctl_call *out)
{
	struct end_req e = { 0 };
	action_manifest m = { 0 };
	struct rec_ctx c = { .m = &m, .root_fd = -1, .root_abs = cf->root_abs, .begun_ns = cf->begun_ns, .e = &e };
	int r, mfd = -1;
	if (!cf->sess) {
		out->result = -EINVAL; /* END without BEGIN */
		return;
	}
	struct session *s = cf->sess;
	struct trace *tr = session_trace(s);
	out->status = CASFS_END_UNCACHEABLE;
	if ((r = fields_each(cf->req, cf->req_len, end_field, &e)) < 0 || !e.has_exit) {
		end_unrecorded(cf);
		out->result = r < 0 ? r : -EBADMSG;
		return;
	}
	if (e.outlived)
		c.reason = "outlived";
	else if (e.stdin_moved)
		c.reason = "stdin";
	else if (e.reason[0])
		c.reason = e.reason;
	else if (!trace_wait_writers(tr, WRITERS_WAIT_MS))
		c.reason = "outputs_open";
	session_end(FS->ss, s);
	if (!c.reason && e.exit != 0 && !(cf->flags & CASFS_EXEC_F_CACHE_FAILURES))
		c.reason = "failed";
	if (!c.reason) {
		switch (trace_check(tr, FS->dg)) {
		case TRACE_OK: break;
		case TRACE_NO_PATH: c.reason = "unknown_path"; break;
		case TRACE_INPUT_CHANGED: c.reason = "input_changed"; break;
		case TRACE_INPUT_WRITTEN: c.reason = "input_being_written"; break;
		case TRACE_TOO_BIG: c.reason = "too_big"; break;
		case TRACE_NOMEM: c.reason = "out_of_memory"; break;
		case TRACE_NESTED: c.reason = "nested"; break;
		case TRACE_HIDDEN_COMPILE: c.reason = "hidden_compile"; break;
		case TRACE_MOVED_DIR: c.reason = "moved_dir"; break;
		case TRACE_OUTPUT_CHANGED: c.reason = "output_changed"; break;
		case TRACE_XATTRS: c.reason = "xattrs"; break;
		case TRACE_INHERITED_WRITE: c.reason = "inherited_write"; break;
		case TRACE_OWNER_CHANGED: c.reason = "owner_changed"; break;
		case TRACE_SPECIAL_INPUT: c.reason = "special_input"; break;
		}
	}
	if (!c.reason) {
		scan_start(&c, cf->root_abs);
		if ((mfd = mount_fd()) < 0 || (c.root_fd = open_beneath(mfd, cf->root, O_PATH | O_DIRECTORY)) < 0)
			r = mfd < 0 ? mfd : c.root_fd;
		if (r == 0)
			r = trace_inputs(tr, cf->root, &m, ends_as_file, &c.root_fd);
		if (r == 0)
			r = fields_each(cf->req, cf->req_len, dep_field, &c);
		if (r == 0 && !c.reason && (cf->flags & CASFS_EXEC_F_CC_DEPS))
			c.reason = once_duplicates(&m, c.root_fd, mfd);
		if (r == 0 && !c.reason) {
			r = trace_changes(tr, cf->root, change_cb, &c);
			if (r == -EXDEV) {
				c.reason = "writes_outside_root";
				r = 0;
			}
		}
		/* a compile's streams name paths as given: rewritten for another
		 * root on a hit when they name the root only as such paths' prefix */
		bool st_text = cf->flags & CASFS_EXEC_F_ROOT_TEXT;
		if (r == 0 && !c.reason && (r = make_stream(&c, e.out, e.out_len, &m.out_stdout, st_text)) == 0)
			r = make_stream(&c, e.err, e.err_len, &m.out_stderr, st_text);
		if (r < 0 && !c.reason)
			c.reason = r == -ENOSPC ? "store_full" : "store_error";
	}
	if (!c.reason) {
		m.exit_status = e.exit;
		m.created_ns = now_ns();
		/* the client's measure, bounded by the session's own span */
		uint64_t span_ms = (uint64_t)(m.created_ns - cf->begun_ns) / 1000000;
		m.run_ms = e.run_ms < span_ms ? e.run_ms : span_ms;
		m.flags = (c.scanning && c.scan.found) || c.link_names_root || (cf->flags & CASFS_EXEC_F_HIDES_ROOT) ?
				  ACTION_F_EMBEDS_ROOT :
				  0;
		if (cf->flags & CASFS_EXEC_F_ROOT_TEXT)
			m.flags |= ACTION_F_STREAMS_ROOT_TEXT;
		if (e.stdin_eof)
			m.flags |= ACTION_F_STDIN_EOF;
		if (cf->flags & CASFS_EXEC_F_MERGED_STREAMS)
			m.flags |= ACTION_F_MERGED_STREAMS;
		m.root_at_record = strdup(cf->root_abs);
		action_record rec = { 0 };
		void *val = NULL;
		size_t vlen;
		uint8_t *enc = NULL;
		size_t elen;
		r = m.root_at_record ? 0 : -ENOMEM;
		if (r == 0 && cache_index_kv_get(FS->ix, 'A', cf->key.bytes, sizeof(cf->key.bytes), &val, &vlen) == 0 &&
		    action_record_decode(val, vlen, &rec) < 0)
			memset(&rec, 0, sizeof(rec)); /* unreadable: start over */
		if (r == 0)
			r = action_record_push(&rec, &m);
		if (r == 0)
			r = action_record_encode(&rec, &enc, &elen);
		if (r == 0)
			/* committed by the flusher (200 ms): no fsync on this
			 * request; a crash loses it, as a cache may */
			r = cache_index_kv_put_later(FS->ix, 'A', cf->key.bytes, sizeof(cf->key.bytes), enc, elen);
		free(enc);
		free(val);
		action_record_clear(&rec);
		if (r < 0)
			c.reason = r == -ENOSPC ? "store_full" : "store_error";
	}
	if (c.reason) {
		COUNT(action_uncacheable);
		count_reason(c.reason);
		resp_field(cf, CASFS_T_REASON, c.reason, strlen(c.reason));
	} else {
		out->status = CASFS_END_RECORDED;
		COUNT(action_recorded);
	}
	if (c.scanning)
		action_scan_free(&c.scan);
	if (c.scanning_esc)
		action_scan_free(&c.scan_esc);
	if (c.root_fd >= 0)
		close(c.root_fd);
	if (mfd >= 0)
		ino_node_fd_put(FS->tbl, ino_table_root(FS->tbl));
	action_manifest_clear(&m);
	session_put(cf->sess);
	cf->sess = NULL;
	(void)q;
}

/* ---- KV ------------------------------------------------------------------ */

struct small_req {
	const uint8_t *kkey, *kval;
	size_t kkey_len, kval_len;
};

static int small_field(void *arg, uint32_t tag, const uint8_t *v, size_t len)
{
	struct small_req *s = arg;
	switch (tag) {
	case CASFS_T_KVKEY:
		s->kkey = v;
		s->kkey_len = len;
		return len <= 256 ? 0 : -EBADMSG;
	case CASFS_T_KVVAL:
		s->kval = v;
		s->kval_len = len;
		return len <= 4096 ? 0 : -EBADMSG;
	default:
		return 0;
	}
}

/* A client's own small records ("which cc1 does this gcc run"), per user:
 * key 'U' + uid + the caller's key. */
static int kv(struct req *q, struct ctlfile *cf, const struct small_req *s, bool put)
{
	uint8_t key[4 + 256];
	if (!s->kkey || (put && !s->kval))
		return -EBADMSG;
	uint32_t uid = q->uid;
	memcpy(key, &uid, 4);
	memcpy(key + 4, s->kkey, s->kkey_len);
	if (put)
		return cache_index_kv_put(FS->ix, 'U', key, 4 + s->kkey_len, s->kval, s->kval_len);
	void *val = NULL;
	size_t vlen;
	int r = cache_index_kv_get(FS->ix, 'U', key, 4 + s->kkey_len, &val, &vlen);
	if (r == 0)
		r = resp_field(cf, CASFS_T_KVVAL, val, vlen);
	free(val);
	return r;
}

static void small_op(struct req *q, struct ctlfile *cf, struct casfs_ctl_call *out)
{
	struct small_req s = { 0 };
	int r = fields_each(cf->req, cf->req_len, small_field, &s);
	if (r == 0)
		r = kv(q, cf, &s, out->op == CASFS_OP_KV_PUT);
	out->result = r;
}

static int reason_field(void *arg, uint32_t tag, const uint8_t *v, size_t len)
{
	char *out = arg;
	if (tag == CASFS_T_REASON && len < 64) {
		memcpy(out, v, len);
		out[len] = '\0';
	}
	return 0;
}

/* ---- __has_include scans of the files a compile read ------------------------- */

/* The client records what each __has_include query in the files a compile
 * read would find (cli/ccdeps.c).  For the files on the mount it asks the
 * daemon, which reads them from the backing (a dozen system calls, no
 * FUSE round trip: opening them through the mount cost the client and the
 * daemon an OPEN, a RELEASE and READs each), and scans one only when the
 * run's trace holds it as read with the same digest as now.  Response: a
 * HISCAN field per PATH field, in order, whose first byte says:
 *   'n'  not scanned here (not read by the run, changed since, unreadable):
 *        the client scans it itself
 *   '0'  no query
 *   '1'  queries follow, each a line: '<' or '"' and the name
 *   'x'  a query whose name cannot be read (the run is not cacheable) */
struct hiscan_out {
	char *b;
	size_t len, cap;
};

static int hiscan_put(void *arg, bool quote, const char *name, size_t len)
{
	struct hiscan_out *o = arg;
	if (o->len + len + 2 > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 256;
		while (cap < o->len + len + 2)
			cap *= 2;
		char *b = realloc(o->b, cap);
		if (!b)
			return -ENOMEM;
		o->b = b;
		o->cap = cap;
	}
	o->b[o->len++] = quote ? '"' : '<';
	memcpy(o->b + o->len, name, len);
	o->len += len;
	o->b[o->len++] = '\n';
	return 0;
}

/* Scans rel for the run traced by tr: fills o ('n' when not here; o->b
 * has room for the status byte). */
static void hiscan_one(struct trace *tr, int mfd, const char *rel, struct hiscan_out *o)
{
	hasher_digest want, got;
	o->len = 1;
	o->b[0] = 'n';
	if (!trace_read_digest(tr, rel, &want))
		return;
	/* O_PATH first: a name that is no longer a regular file (a device
	 * node since) is never opened */
	int pfd = open_beneath(mfd, rel, O_PATH | O_NOFOLLOW), fd = -1;
	struct stat st;
	char *text = NULL;
	if (pfd >= 0 && fstat(pfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (64 << 20) &&
	    (fd = fs_reopen_fd(pfd, O_RDONLY)) >= 0 && (text = malloc((size_t)st.st_size + 1)) &&
	    cache_io_read(fd, text, (size_t)st.st_size, 0) == st.st_size) {
		hasher_digest_buffer(text, (size_t)st.st_size, &got);
		if (hasher_digest_equal(&want, &got)) {
			int r = hiscan(text, (size_t)st.st_size, hiscan_put, o);
			if (r == -ENOLINK) {
				o->len = 1;
				o->b[0] = 'x';
			} else if (r == 0) {
				o->b[0] = o->len > 1 ? '1' : '0';
				COUNT(action_headers_scanned);
			} else {
				o->len = 1; /* out of memory: the client scans it */
			}
		}
	}
	free(text);
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
}

struct hiscan_req {
	struct ctlfile *cf;
	struct trace *tr;
	int mfd;
	struct hiscan_out o;
	int err;
};

static int hiscan_field(void *arg, uint32_t tag, const uint8_t *v, size_t len)
{
	struct hiscan_req *h = arg;
	if (tag != CASFS_T_PATH)
		return 0;
	char *rel = strndup_field(v, len);
	if (!rel)
		return -EBADMSG;
	hiscan_one(h->tr, h->mfd, rel, &h->o);
	free(rel);
	return resp_field(h->cf, CASFS_T_HISCAN, h->o.b, h->o.len);
}

static void hiscan_op(struct ctlfile *cf, struct casfs_ctl_call *out)
{
	if (!cf->sess) {
		out->result = -EINVAL; /* the run's files: between BEGIN and END */
		return;
	}
	struct hiscan_req h = { .cf = cf, .tr = session_trace(cf->sess), .mfd = mount_fd() };
	if (h.mfd < 0) {
		out->result = h.mfd;
		return;
	}
	h.o.cap = 256;
	if (!(h.o.b = malloc(h.o.cap))) {
		ino_node_fd_put(FS->tbl, ino_table_root(FS->tbl));
		out->result = -ENOMEM;
		return;
	}
	out->result = fields_each(cf->req, cf->req_len, hiscan_field, &h);
	ino_node_fd_put(FS->tbl, ino_table_root(FS->tbl));
	free(h.o.b);
}

/* ---- dispatch ------------------------------------------------------------------ */

void actions_call(struct req *q, struct ctlfile *cf, const struct casfs_ctl_call *in)
{
	if (in->proto < CASFS_EXEC_PROTO_MIN || in->proto > CASFS_EXEC_PROTO) {
		req_err(q, EPROTO);
		return;
	}
	if (in->len > CASFS_CTL_CHUNK) {
		req_err(q, EINVAL);
		return;
	}
	pthread_mutex_lock(&cf->lock);
	struct casfs_ctl_call *o = calloc(1, sizeof(*o));
	if (!o) {
		pthread_mutex_unlock(&cf->lock);
		req_err(q, ENOMEM);
		return;
	}
	o->proto = in->proto;
	o->op = in->op;
	/* the call's data joins the request (APPEND; any op in protocol 2) */
	if (in->len) {
		if (cf->req_len + in->len > cf->req_cap) {
			size_t cap = cf->req_cap ? cf->req_cap : 16384;
			while (cap < cf->req_len + in->len)
				cap *= 2;
			uint8_t *b = cap <= CASFS_CTL_REQ_MAX ? realloc(cf->req, cap) : NULL;
			if (!b) {
				o->result = -ENOMEM;
				goto reply;
			}
			cf->req = b;
			cf->req_cap = cap;
		}
		memcpy(cf->req + cf->req_len, in->data, in->len);
		cf->req_len += in->len;
	}
	if (in->op == CASFS_OP_APPEND)
		goto reply;
	/* every other op works on what was appended; its response is new */
	cf->resp_len = 0;
	switch (in->op) {
	case CASFS_OP_WHERE: {
		char path[PATH_MAX];
		ino_node *d = ino_table_get(FS->tbl, cf->dir);
		int r = d ? ino_node_path(FS->tbl, d, path, sizeof(path)) : -ESTALE;
		if (r < 0)
			o->result = r;
		else
			resp_field(cf, CASFS_T_ROOT, path, (size_t)r);
		break;
	}
	case CASFS_OP_LOOKUP:
		lookup(q, cf, o);
		break;
	case CASFS_OP_BEGIN:
		begin(q, cf, o);
		break;
	case CASFS_OP_END:
		end(q, cf, o);
		break;
	case CASFS_OP_KV_GET:
	case CASFS_OP_KV_PUT:
		small_op(q, cf, o);
		break;
	case CASFS_OP_HISCAN:
		hiscan_op(cf, o);
		break;
	case CASFS_OP_NOTE: {
		char reason[64] = "";
		if (fields_each(cf->req, cf->req_len, reason_field, reason) < 0 || !reason[0]) {
			o->result = -EBADMSG;
		} else {
			COUNT(action_uncacheable);
			count_reason(reason);
			mark_outer(q);
		}
		break;
	}
	default:
		o->result = -EINVAL;
	}
	cf->req_len = 0;
reply:
	o->len = (uint32_t)(cf->resp_len < UINT32_MAX ? cf->resp_len : UINT32_MAX);
	/* protocol 2: a response that fits comes back in the call (it stays
	 * readable from the file too); else only the header */
	size_t inline_len = in->proto >= 2 && in->op != CASFS_OP_APPEND && cf->resp_len <= CASFS_CTL_CHUNK ?
				    cf->resp_len :
				    0;
	if (inline_len)
		memcpy(o->data, cf->resp, inline_len);
	pthread_mutex_unlock(&cf->lock);
	req_ioctl(q, 0, o, offsetof(struct casfs_ctl_call, data) + inline_len);
	free(o);
}
