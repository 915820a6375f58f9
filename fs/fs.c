/* fs.c — casfs's FUSE lowlevel handlers: a loopback over the backing
 * directory on *at() calls relative to directory fds.
 *
 * Conventions (as libfuse's fuse_lowlevel.h documents them):
 *   - every handler replies exactly once; errors go out as
 *     fuse_reply_err(req, positive errno), saved right after the failing call;
 *   - fuse_reply_entry / fuse_reply_create and every readdirplus entry other
 *     than "." and ".." add one kernel reference (nlookup) to the node;
 *   - the node id the kernel sees is the ino_node pointer (FUSE_ROOT_ID for
 *     the root) and its generation is unique for the daemon's lifetime.
 *
 * Backing access never concatenates paths: names are resolved one component
 * at a time against a directory fd, with O_NOFOLLOW where a name could be a
 * symlink, so nothing can escape the backing directory.  Reopening an O_PATH
 * fd with other flags goes through /proc/self/fd/N (a magic link to the
 * very inode, not a path lookup).
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "casfs_config.h"
#include "fs_internal.h"

/* One open file. */
struct fs_file {
	int fd;
	bool writer; /* opened for writing: feeds the node's digest */
	bool append; /* O_APPEND on the backing fd */
	ino_node *node;
	struct fs_file *next; /* node->open_files, under the table lock */
};

struct fs *FS;

/* Operations that make no sense on the .casfs namespace answer err. */
#define VIRTUAL_DENY(ino, err)                      \
	do {                                        \
		if (fs_is_virtual(ino)) {           \
			fuse_reply_err(req, (err)); \
			return;                     \
		}                                   \
	} while (0)

static struct fs_file *file_of(struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

/* ---- credentials: create as the caller when the daemon is root ---------- */

/* After setfsuid() to a non-zero uid the kernel drops the file-system
 * capabilities from this thread's effective set.  We raise DAC_OVERRIDE and
 * DAC_READ_SEARCH again: the kernel already checked permissions
 * (default_permissions) with the caller's full group list, which a worker
 * thread does not have.  FOWNER and FSETID stay dropped, so set-gid
 * inheritance and stripping behave as for the caller on ext4. */
struct creds {
	bool changed;
};

static int capset_thread(const uint32_t eff[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	for (int i = 0; i < 2; i++) {
		d[i].effective = eff[i];
		d[i].permitted = FS->cap_prm[i];
		d[i].inheritable = FS->cap_inh[i];
	}
	return (int)syscall(SYS_capset, &h, d);
}

static void creds_enter(fuse_req_t req, struct creds *c)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	c->changed = false;
	if (!FS->root_daemon || (ctx->uid == 0 && ctx->gid == 0))
		return;
	/* Raw syscalls: per thread, unlike glibc's process-wide wrappers. */
	syscall(SYS_setfsgid, ctx->gid);
	syscall(SYS_setfsuid, ctx->uid);
	uint32_t eff[2] = { FS->cap_eff[0], FS->cap_eff[1] };
	eff[0] &= ~((1u << CAP_CHOWN) | (1u << CAP_FOWNER) | (1u << CAP_FSETID) |
		    (1u << CAP_LINUX_IMMUTABLE) | (1u << CAP_MKNOD));
	eff[1] &= ~(1u << (CAP_MAC_OVERRIDE - 32));
	capset_thread(eff);
	c->changed = true;
}

static void creds_leave(struct creds *c)
{
	if (!c->changed)
		return;
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	capset_thread(FS->cap_eff);
}

/* ---- helpers ----------------------------------------------------------- */

/* Opens the inode behind the O_PATH fd with real flags. */
static int reopen_fd(int fd, int flags)
{
	char name[16];
	snprintf(name, sizeof(name), "%d", fd);
	return openat(FS->proc_fd, name, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
}

int fs_node_open(ino_node *n, int flags)
{
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0)
		return fd;
	int r = reopen_fd(fd, flags);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	return r < 0 ? -e : r;
}

/* Called by the table, lock held, when a node cannot be reopened (an
 * unlinked file): borrow an fd from one of its open files. */
static int fallback_open(ino_node *n, void *arg)
{
	(void)arg;
	struct fs_file *f = n->open_files;
	return f ? fcntl(f->fd, F_DUPFD_CLOEXEC, 3) : -1;
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static void fill_entry(struct fuse_entry_param *e, ino_node *n, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = id_of(n);
	e->generation = n->generation;
	e->attr = *st;
	e->attr_timeout = FS->o.timeout;
	e->entry_timeout = FS->o.timeout;
}

static bool reserved(const char *name)
{
	return strcmp(name, RESERVED_NAME) == 0;
}

/* Looks name up in the directory open as pfd (a child of parent).  On
 * success adds one kernel reference and fills e.  Returns 0 or -errno. */
static int lookup_at(ino_node *parent, int pfd, const char *name, struct fuse_entry_param *e)
{
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	ino_node *n = ino_table_find(FS->tbl, parent, name, st.st_dev, st.st_ino, 1);
	if (!n) {
		int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		int r = stat_fd(fd, &st);
		if (r < 0) {
			close(fd);
			return r;
		}
		r = ino_table_insert(FS->tbl, parent, name, fd, &st, 1, &n);
		if (r < 0)
			return r;
	}
	fill_entry(e, n, &st);
	return 0;
}

/* Adds a node for the object just created as name in parent and replies
 * with its entry (for mknod, mkdir, symlink, link). */
static void reply_new_entry(fuse_req_t req, ino_node *parent, int pfd, const char *name)
{
	struct fuse_entry_param e;
	int r = lookup_at(parent, pfd, name, &e);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_entry(req, &e);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want |= conn->capable & (FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_SPLICE_WRITE |
				       FUSE_CAP_SPLICE_MOVE |
				       FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO |
				       FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ATOMIC_O_TRUNC |
				       FUSE_CAP_ASYNC_READ | FUSE_CAP_ASYNC_DIO |
				       FUSE_CAP_NO_OPENDIR_SUPPORT | FUSE_CAP_IOCTL_DIR |
				       FUSE_CAP_CACHE_SYMLINKS);
	/* Written bytes must reach us in memory to be hashed on the way.
	 * Builds without hashing (-Dhash_on_write=false) copy too, so that
	 * tools/bench/write-hash compares the hash alone; in its runs the
	 * copy was no slower than splicing, within the machine's noise. */
	conn->want &= ~FUSE_CAP_SPLICE_READ;
	/* Locks are kept by the kernel (all access goes through this mount). */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/* The kernel keeps page cache across opens only if nothing else
	 * changes the data: true by contract, so no auto-invalidation. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (FS->o.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	FS->o.writeback = conn->want & FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
}

/* ---- lookup & attributes ------------------------------------------------ */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(lookup);
	if (fs_is_virtual(parent)) {
		casns_lookup(req, parent, name);
		return;
	}
	if (reserved(name)) {
		casns_lookup_reserved(req, parent);
		return;
	}
	ino_node *p = node_of(parent);
	struct fuse_entry_param e;
	int pfd = ino_node_fd_get(FS->tbl, p);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	int r = lookup_at(p, pfd, name, &e);
	ino_node_fd_put(FS->tbl, p);
	if (r == -ENOENT && FS->o.timeout > 0) {
		/* A negative entry: the kernel caches the absence. */
		COUNT(lookup_negative);
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FS->o.timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	COUNT(forget);
	if (fs_is_virtual(ino))
		casns_forget(ino, nlookup);
	else
		ino_table_forget(FS->tbl, node_of(ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	COUNT_N(forget, count);
	for (size_t i = 0; i < count; i++) {
		if (fs_is_virtual(f[i].ino))
			casns_forget(f[i].ino, f[i].nlookup);
		else
			ino_table_forget(FS->tbl, node_of(f[i].ino), f[i].nlookup);
	}
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(getattr);
	struct stat st;
	int r;
	if (fs_is_virtual(ino)) {
		casns_getattr(req, ino);
		return;
	}
	if (fi && fi->fh) {
		r = stat_fd(file_of(fi)->fd, &st);
	} else {
		ino_node *n = node_of(ino);
		int fd = ino_node_fd_get(FS->tbl, n);
		if (fd < 0) {
			fuse_reply_err(req, -fd);
			return;
		}
		r = stat_fd(fd, &st);
		ino_node_fd_put(FS->tbl, n);
	}
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, FS->o.timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	COUNT(setattr);
	VIRTUAL_DENY(ino, EPERM);
	ino_node *n = node_of(ino);
	int fd = ino_node_fd_get(FS->tbl, n), r = 0;
	int ffd = fi && fi->fh ? file_of(fi)->fd : -1;
	struct stat st;
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	if (valid & FUSE_SET_ATTR_MODE) {
		char name[16];
		snprintf(name, sizeof(name), "%d", fd);
		if ((ffd >= 0 ? fchmod(ffd, attr->st_mode) : fchmodat(FS->proc_fd, name, attr->st_mode, 0)) < 0)
			goto fail;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = valid & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = valid & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			goto fail;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		int tfd = ffd;
		if (tfd < 0 && (tfd = reopen_fd(fd, O_WRONLY)) < 0)
			goto fail;
		r = ftruncate(tfd, attr->st_size);
		int e = errno;
		if (n->type == S_IFREG)
			digests_truncate(FS->dg, n, r == 0 ? attr->st_size : 1);
		if (tfd != ffd)
			close(tfd);
		if (r < 0) {
			errno = e;
			goto fail;
		}
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		if ((ffd >= 0 ? futimens(ffd, ts) : utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) < 0)
			goto fail;
	}
	r = stat_fd(ffd >= 0 ? ffd : fd, &st);
	ino_node_fd_put(FS->tbl, n);
	if (r == 0 && !(valid & FUSE_SET_ATTR_SIZE))
		digests_meta_changed(FS->dg, n, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, FS->o.timeout);
	return;
fail:
	r = errno;
	ino_node_fd_put(FS->tbl, n);
	fuse_reply_err(req, r);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	COUNT(readlink);
	VIRTUAL_DENY(ino, EINVAL);
	ino_node *n = node_of(ino);
	char buf[PATH_MAX + 1];
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	ssize_t len = readlinkat(fd, "", buf, sizeof(buf));
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	if (len < 0)
		fuse_reply_err(req, e);
	else if (len == (ssize_t)sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[len] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

/* ---- namespace ------------------------------------------------------- */

enum mk_kind { MK_NODE, MK_DIR, MK_SYMLINK };

static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, enum mk_kind kind,
		       mode_t mode, dev_t rdev, const char *target)
{
	ino_node *p = node_of(parent);
	struct creds c;
	int r;
	VIRTUAL_DENY(parent, EPERM);
	if (reserved(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int pfd = ino_node_fd_get(FS->tbl, p);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	creds_enter(req, &c);
	if (kind == MK_DIR)
		r = mkdirat(pfd, name, mode);
	else if (kind == MK_SYMLINK)
		r = symlinkat(target, pfd, name);
	else
		r = mknodat(pfd, name, mode, rdev);
	int e = errno;
	creds_leave(&c);
	if (r < 0)
		fuse_reply_err(req, e);
	else
		reply_new_entry(req, p, pfd, name);
	ino_node_fd_put(FS->tbl, p);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	COUNT(mknod);
	make_entry(req, parent, name, MK_NODE, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	COUNT(mkdir);
	make_entry(req, parent, name, MK_DIR, mode, 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	COUNT(symlink);
	make_entry(req, parent, name, MK_SYMLINK, 0, 0, link);
}

/* The inode that `name` in pfd names is about to lose a link (unlink,
 * rmdir, rename over it).  We hold it open (O_PATH) across the removal so
 * that the filesystem cannot free it and hand its number to a file another
 * process creates meanwhile; once it has no link left its node is detached,
 * and only then is it let go.  (The kernel holds the directory's lock, so
 * the name cannot change between the probe and the removal.) */
struct victim {
	int fd;
};

static void victim_probe(int pfd, const char *name, struct victim *v)
{
	v->fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

static void victim_done(struct victim *v, bool removed)
{
	struct stat st;
	if (v->fd < 0)
		return;
	if (removed && fstat(v->fd, &st) == 0 && st.st_nlink == 0)
		ino_table_detach(FS->tbl, st.st_dev, st.st_ino);
	close(v->fd);
	v->fd = -1;
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	ino_node *p = node_of(parent);
	struct victim v;
	VIRTUAL_DENY(parent, EPERM);
	if (reserved(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int pfd = ino_node_fd_get(FS->tbl, p);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	victim_probe(pfd, name, &v);
	int r = unlinkat(pfd, name, flags);
	int e = errno;
	victim_done(&v, r == 0);
	ino_node_fd_put(FS->tbl, p);
	fuse_reply_err(req, r < 0 ? e : 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(unlink);
	remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(rmdir);
	remove_entry(req, parent, name, AT_REMOVEDIR);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	COUNT(rename);
	VIRTUAL_DENY(parent, EPERM);
	VIRTUAL_DENY(newparent, EPERM);
	ino_node *p = node_of(parent), *np = node_of(newparent);
	struct victim v = { -1 };
	struct stat st;
	if (reserved(name) || reserved(newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int pfd = ino_node_fd_get(FS->tbl, p);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	int npfd = ino_node_fd_get(FS->tbl, np);
	if (npfd < 0) {
		ino_node_fd_put(FS->tbl, p);
		fuse_reply_err(req, -npfd);
		return;
	}
	bool path_mode = !ino_table_handle_mode(FS->tbl);
	if (!(flags & RENAME_EXCHANGE))
		victim_probe(npfd, newname, &v);
	int r = (int)syscall(SYS_renameat2, pfd, name, npfd, newname, flags);
	int e = errno;
	victim_done(&v, r == 0);
	if (r == 0) {
		/* Record the new names (path mode) and the new ctimes of the
		 * nodes involved (a rename changes no digest). */
		if (fstatat(npfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			ino_node *n = ino_table_find(FS->tbl, path_mode ? np : NULL, newname, st.st_dev, st.st_ino, 0);
			if (n)
				digests_meta_changed(FS->dg, n, &st);
		}
		if ((flags & RENAME_EXCHANGE) && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			ino_node *n = ino_table_find(FS->tbl, path_mode ? p : NULL, name, st.st_dev, st.st_ino, 0);
			if (n)
				digests_meta_changed(FS->dg, n, &st);
		}
	}
	ino_node_fd_put(FS->tbl, np);
	ino_node_fd_put(FS->tbl, p);
	fuse_reply_err(req, r < 0 ? e : 0);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	COUNT(link);
	VIRTUAL_DENY(ino, EPERM);
	VIRTUAL_DENY(newparent, EPERM);
	ino_node *n = node_of(ino), *np = node_of(newparent);
	char name[16];
	if (reserved(newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	int npfd = ino_node_fd_get(FS->tbl, np);
	if (npfd < 0) {
		ino_node_fd_put(FS->tbl, n);
		fuse_reply_err(req, -npfd);
		return;
	}
	/* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc magic
	 * link with AT_SYMLINK_FOLLOW does not. */
	snprintf(name, sizeof(name), "%d", fd);
	int r = linkat(FS->proc_fd, name, npfd, newname, AT_SYMLINK_FOLLOW);
	int e = errno;
	struct fuse_entry_param ent;
	if (r == 0 && (r = lookup_at(np, npfd, newname, &ent)) < 0)
		e = -r;
	if (r < 0) {
		fuse_reply_err(req, e);
	} else {
		digests_meta_changed(FS->dg, n, &ent.attr); /* ctime changed, content not */
		fuse_reply_entry(req, &ent);
	}
	ino_node_fd_put(FS->tbl, np);
	ino_node_fd_put(FS->tbl, n);
}

/* ---- files -------------------------------------------------------------- */

/* Flags of the backing open for a caller's open with `flags`.  O_DIRECT is
 * the kernel's business (it bypasses its own page cache for the caller), and
 * libfuse's request buffers are not aligned for it.  With the writeback
 * cache the kernel handles O_APPEND itself and may read pages to fill
 * partial writes: `widen` asks for read access on a write-only open. */
static int open_flags(int flags, bool widen)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT);
	if (FS->o.writeback) {
		if (widen && (flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags | O_CLOEXEC;
}

static struct fs_file *file_new(ino_node *n, int fd, int flags)
{
	struct fs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fd = fd;
	f->node = n;
	f->writer = (flags & O_ACCMODE) != O_RDONLY && n->type == S_IFREG;
	f->append = flags & O_APPEND;
	ino_table_lock(FS->tbl);
	n->refs++;
	f->next = n->open_files;
	n->open_files = f;
	ino_table_unlock(FS->tbl);
	COUNT(open_files);
	if (f->writer)
		digests_open_write(FS->dg, n, fd);
	else if ((flags & O_TRUNC) && n->type == S_IFREG)
		digests_truncate(FS->dg, n, 0);
	return f;
}

static void file_free(struct fs_file *f)
{
	ino_node *n = f->node;
	ino_table_lock(FS->tbl);
	struct fs_file **pp = (struct fs_file **)&n->open_files;
	while (*pp && *pp != f)
		pp = &(*pp)->next;
	if (*pp)
		*pp = f->next;
	ino_table_unlock(FS->tbl);
	atomic_fetch_sub_explicit(&FS->counters[CASFS_C_open_files], 1, memory_order_relaxed);
	if (f->writer)
		digests_release_write(FS->dg, n, f->fd);
	close(f->fd);
	ino_node_unref(FS->tbl, n);
	free(f);
}

static void set_open_reply(struct fuse_file_info *fi, int flags)
{
	fi->keep_cache = 1; /* every change goes through casfs */
	fi->noflush = (flags & O_ACCMODE) == O_RDONLY && !FS->o.writeback;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(open);
	if (fs_is_virtual(ino)) {
		casns_open(req, ino, fi);
		return;
	}
	ino_node *n = node_of(ino);
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	int flags = open_flags(fi->flags, true);
	int ofd = reopen_fd(fd, flags);
	if (ofd < 0 && errno == EACCES && flags != open_flags(fi->flags, false)) {
		/* may write but not read (an unprivileged daemon): no widening */
		flags = open_flags(fi->flags, false);
		ofd = reopen_fd(fd, flags);
	}
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	if (ofd < 0) {
		fuse_reply_err(req, e);
		return;
	}
	struct fs_file *f = file_new(n, ofd, flags);
	if (!f) {
		close(ofd);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)f;
	set_open_reply(fi, fi->flags);
	if (fuse_reply_open(req, fi) == -ENOENT)
		file_free(f); /* interrupted: the kernel won't send release */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	COUNT(create);
	VIRTUAL_DENY(parent, EPERM);
	ino_node *p = node_of(parent);
	struct fuse_entry_param e;
	struct creds c;
	if (reserved(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int pfd = ino_node_fd_get(FS->tbl, p);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	creds_enter(req, &c);
	int flags = open_flags(fi->flags, true) | O_CREAT | (fi->flags & O_EXCL) | O_NOFOLLOW;
	int fd = openat(pfd, name, flags, mode);
	int err = errno;
	creds_leave(&c);
	if (fd < 0) {
		ino_node_fd_put(FS->tbl, p);
		fuse_reply_err(req, err);
		return;
	}
	int r = lookup_at(p, pfd, name, &e);
	ino_node_fd_put(FS->tbl, p);
	if (r < 0) {
		close(fd);
		fuse_reply_err(req, -r);
		return;
	}
	struct fs_file *f = file_new(node_of(e.ino), fd, flags);
	if (!f) {
		close(fd);
		ino_table_forget(FS->tbl, node_of(e.ino), 1);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)f;
	set_open_reply(fi, fi->flags);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		file_free(f);
		ino_table_forget(FS->tbl, node_of(e.ino), 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	COUNT(read);
	if (fs_is_virtual(ino)) {
		casns_read(req, ino, size, off, fi);
		return;
	}
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = file_of(fi)->fd;
	buf.buf[0].pos = off;
	COUNT_N(bytes_read, size);
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	COUNT(write);
	VIRTUAL_DENY(ino, EBADF);
	struct fs_file *f = file_of(fi);
	size_t size = fuse_buf_size(in);
	const struct fuse_buf *b = &in->buf[in->idx];
	ssize_t n;
	if (in->count == 1 && !(b->flags & FUSE_BUF_IS_FD)) {
		/* in memory: write it and feed the digest stream */
		const char *data = (const char *)b->mem + in->off;
		size_t done = 0;
		errno = 0;
		while (done < size) {
			ssize_t w = pwrite(f->fd, data + done, size - done, off + (off_t)done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			done += (size_t)w;
		}
		if (done == 0 && size) {
			int e = errno ? errno : EIO;
			digests_invalidate(FS->dg, f->node);
			fuse_reply_err(req, e);
			return;
		}
		off_t at = off;
		if (f->append) { /* O_APPEND writes land at the end, whatever off says */
			struct stat st;
			at = fstat(f->fd, &st) == 0 ? st.st_size - (off_t)done : -1;
		}
		if (at >= 0)
			digests_write(FS->dg, f->node, at, data, done);
		else
			digests_invalidate(FS->dg, f->node);
		n = (ssize_t)done;
	} else {
		struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = f->fd;
		out.buf[0].pos = off;
		n = fuse_buf_copy(&out, in, 0);
		digests_write(FS->dg, f->node, off, NULL, 0); /* bytes unseen: dirty */
		if (n < 0) {
			fuse_reply_err(req, (int)-n);
			return;
		}
	}
	COUNT_N(bytes_written, (uint64_t)n);
	fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(flush);
	VIRTUAL_DENY(ino, 0);
	/* close() of a duplicate reports delayed write errors (NFS & co.). */
	int d = dup(file_of(fi)->fd);
	int r = d < 0 ? -1 : close(d);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(release);
	if (fs_is_virtual(ino)) {
		casns_release(req, ino, fi);
		return;
	}
	file_free(file_of(fi));
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	COUNT(fsync);
	VIRTUAL_DENY(ino, 0);
	int fd = file_of(fi)->fd;
	int r = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	COUNT(fallocate);
	VIRTUAL_DENY(ino, EBADF);
	int r = fallocate(file_of(fi)->fd, mode, off, len);
	int e = errno;
	digests_invalidate(FS->dg, file_of(fi)->node);
	fuse_reply_err(req, r < 0 ? e : 0);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	COUNT(copy_file_range);
	VIRTUAL_DENY(ino_in, EXDEV); /* the kernel falls back to read + write */
	VIRTUAL_DENY(ino_out, EXDEV);
	ssize_t n = copy_file_range(file_of(fi_in)->fd, &off_in, file_of(fi_out)->fd, &off_out,
				    len, (unsigned)flags);
	int e = errno;
	digests_invalidate(FS->dg, file_of(fi_out)->node);
	errno = e;
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	COUNT(lseek);
	if (fs_is_virtual(ino)) {
		casns_lseek(req, ino, off, whence, fi);
		return;
	}
	off_t r = lseek(file_of(fi)->fd, off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

/* ---- directories --------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(opendir);
	/* With FUSE_CAP_NO_OPENDIR_SUPPORT, ENOSYS tells the kernel to stop
	 * sending OPENDIR/RELEASEDIR; each READDIR opens the directory. */
	fuse_reply_err(req, ENOSYS);
}

struct dirent64_raw {
	ino64_t d_ino;
	off64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Fills a READDIR(PLUS) reply from the backing directory.  Offsets are the
 * backing's own d_off cookies (stable across concurrent changes on ext4,
 * xfs, btrfs and tmpfs), so no entry is skipped or repeated. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	ino_node *n = node_of(ino);
	char *reply = NULL, *dbuf = NULL;
	size_t used = 0;
	int err = 0, dfd = -1;
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	dfd = reopen_fd(fd, O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		err = errno;
		goto out;
	}
	if (off && lseek(dfd, off, SEEK_SET) < 0) {
		err = errno;
		goto out;
	}
	size_t dsize = size < 4096 ? 8192 : size * 2;
	reply = malloc(size);
	dbuf = malloc(dsize);
	if (!reply || !dbuf) {
		err = ENOMEM;
		goto out;
	}
	for (;;) {
		long nread = syscall(SYS_getdents64, dfd, dbuf, dsize);
		if (nread < 0) {
			err = errno;
			goto out;
		}
		if (nread == 0)
			break;
		for (long pos = 0; pos < nread;) {
			struct dirent64_raw *d = (struct dirent64_raw *)(dbuf + pos);
			pos += d->d_reclen;
			const char *name = d->d_name;
			if (name[0] == '.' && reserved(name))
				continue; /* the namespace's name: never listed */
			bool dot = name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
			size_t entsize;
			struct stat st = { .st_ino = d->d_ino };
			if (d->d_type == DT_UNKNOWN) {
				/* Rare (some backing filesystems): stat just this one. */
				COUNT(dtype_stat_fallback);
				struct stat s2;
				if (fstatat(dfd, name, &s2, AT_SYMLINK_NOFOLLOW) == 0)
					st.st_mode = s2.st_mode & S_IFMT;
				else
					continue; /* vanished meanwhile */
			} else {
				st.st_mode = (mode_t)DTTOIF(d->d_type);
			}
			if (!plus) {
				entsize = fuse_add_direntry(req, reply + used, size - used, name, &st, d->d_off);
				if (entsize > size - used)
					goto full;
				used += entsize;
				continue;
			}
			struct fuse_entry_param e = { .attr = st };
			if (!dot) {
				int r = lookup_at(n, dfd, name, &e);
				if (r == -ENOENT)
					continue; /* removed between getdents and now */
				if (r < 0) {
					err = -r;
					goto out;
				}
			}
			entsize = fuse_add_direntry_plus(req, reply + used, size - used, name, &e, d->d_off);
			if (entsize > size - used) {
				if (!dot) /* did not fit: undo the reference we just took */
					ino_table_forget(FS->tbl, node_of(e.ino), 1);
				goto full;
			}
			used += entsize;
		}
	}
full:
	err = 0;
out:
	if (dfd >= 0)
		close(dfd);
	ino_node_fd_put(FS->tbl, n);
	/* After a partial fill, return what we have, never an error. */
	if (err && used == 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, reply, used);
	free(reply);
	free(dbuf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	COUNT(readdir);
	if (fs_is_virtual(ino))
		casns_readdir(req, ino, size, off, false);
	else
		do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	COUNT(readdirplus);
	if (fs_is_virtual(ino))
		casns_readdir(req, ino, size, off, true);
	else
		do_readdir(req, ino, size, off, true);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	VIRTUAL_DENY(ino, 0);
	ino_node *n = node_of(ino);
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	int dfd = reopen_fd(fd, O_RDONLY | O_DIRECTORY);
	int r = dfd < 0 ? -1 : (datasync ? fdatasync(dfd) : fsync(dfd));
	int e = errno;
	if (dfd >= 0)
		close(dfd);
	ino_node_fd_put(FS->tbl, n);
	fuse_reply_err(req, r < 0 ? e : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	COUNT(statfs);
	struct statvfs sv;
	ino_node *n = node_of(fs_is_virtual(ino) ? FUSE_ROOT_ID : ino);
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	int r = fstatvfs(fd, &sv);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	if (r < 0)
		fuse_reply_err(req, e);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ------------------------------------------------------------- */

/* The digest of regular file n (fd: any fd of it) in hex. */
static int file_digest_hex(ino_node *n, int fd, char hex[HASHER_HEX_LEN + 1])
{
	hasher_digest d;
	if (!FS->dg)
		return -ENODATA; /* hashing compiled out: no digest, none listed */
	int r = digests_get(FS->dg, n, fd, &d);
	if (r == 0)
		hasher_digest_to_hex(&d, hex);
	return r;
}

/* xattr calls go to /proc/self/fd/N (getxattr & co. do not take O_PATH fds);
 * symlinks hold no user xattrs, so following the magic link is right. */
static int xattr_path(ino_node *n, int *ret_fd, char buf[32])
{
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0)
		return fd;
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	*ret_fd = fd;
	return 0;
}

/* Replies to a getxattr/listxattr of `size` with the len bytes of buf, or
 * with -1/err: a size probe (0) gets the length, a short buffer ERANGE. */
void fs_reply_xattr(fuse_req_t req, size_t size, const char *buf, ssize_t len, int err)
{
	if (len < 0)
		fuse_reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	COUNT(getxattr);
	if (!FS->o.xattr) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking */
		return;
	}
	if (fs_is_virtual(ino)) {
		casns_getxattr(req, ino, name, size);
		return;
	}
	ino_node *n = node_of(ino);
	char path[32], *buf = NULL;
	int fd, r = xattr_path(n, &fd, path);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (strcmp(name, CASFS_XATTR_DIGEST) == 0) {
		char hex[HASHER_HEX_LEN + 1];
		r = n->type == S_IFREG ? file_digest_hex(n, fd, hex) : -ENODATA;
		ino_node_fd_put(FS->tbl, n);
		fs_reply_xattr(req, size, hex, r < 0 ? -1 : HASHER_HEX_LEN, -r);
		return;
	}
	if (size && !(buf = malloc(size))) {
		ino_node_fd_put(FS->tbl, n);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t len = n->type == S_IFLNK ? lgetxattr(path, name, buf, size) : getxattr(path, name, buf, size);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	fs_reply_xattr(req, size, buf, len, e);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	COUNT(listxattr);
	if (!FS->o.xattr) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking */
		return;
	}
	if (fs_is_virtual(ino)) {
		casns_listxattr(req, ino, size);
		return;
	}
	ino_node *n = node_of(ino);
	char path[32], *buf = NULL;
	int fd, r = xattr_path(n, &fd, path);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	const size_t ours = n->type == S_IFREG && FS->dg ? sizeof(CASFS_XATTR_DIGEST) : 0;
	if (size && !(buf = malloc(size))) {
		ino_node_fd_put(FS->tbl, n);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t len = n->type == S_IFLNK ? llistxattr(path, buf, size) : listxattr(path, buf, size);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	if (len >= 0) {
		if (size && (size_t)len + ours <= size)
			memcpy(buf + len, CASFS_XATTR_DIGEST, ours);
		len += (ssize_t)ours;
	}
	fs_reply_xattr(req, size, buf, len, e);
	free(buf);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	COUNT(setxattr);
	if (!FS->o.xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	VIRTUAL_DENY(ino, EPERM);
	if (strncmp(name, CASFS_XATTR_PREFIX, sizeof(CASFS_XATTR_PREFIX) - 1) == 0) {
		/* Digests are casfs's to say.  Setting the value it already has
		 * is allowed as a no-op, so `cp -a`, `tar --xattrs` or `rsync -X`
		 * copying a file back onto casfs do not fail. */
		char hex[HASHER_HEX_LEN + 1];
		int ok = 0;
		ino_node *dn = node_of(ino);
		if (strcmp(name, CASFS_XATTR_DIGEST) == 0 && size == HASHER_HEX_LEN && dn->type == S_IFREG) {
			int dfd = ino_node_fd_get(FS->tbl, dn);
			if (dfd >= 0) {
				ok = file_digest_hex(dn, dfd, hex) == 0 && strncasecmp(hex, value, HASHER_HEX_LEN) == 0;
				ino_node_fd_put(FS->tbl, dn);
			}
		}
		fuse_reply_err(req, ok ? 0 : EPERM);
		return;
	}
	ino_node *n = node_of(ino);
	char path[32];
	int fd, r = xattr_path(n, &fd, path);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	r = n->type == S_IFLNK ? lsetxattr(path, name, value, size, flags)
			       : setxattr(path, name, value, size, flags);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	fuse_reply_err(req, r < 0 ? e : 0);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	COUNT(removexattr);
	if (!FS->o.xattr) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking */
		return;
	}
	VIRTUAL_DENY(ino, EPERM);
	if (strncmp(name, CASFS_XATTR_PREFIX, sizeof(CASFS_XATTR_PREFIX) - 1) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ino_node *n = node_of(ino);
	char path[32];
	int fd, r = xattr_path(n, &fd, path);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	r = n->type == S_IFLNK ? lremovexattr(path, name) : removexattr(path, name);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	fuse_reply_err(req, r < 0 ? e : 0);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	COUNT(access);
	if (fs_is_virtual(ino)) {
		casns_access(req, ino, mask);
		return;
	}
	ino_node *n = node_of(ino);
	char name[16];
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	snprintf(name, sizeof(name), "%d", fd);
	int r = faccessat(FS->proc_fd, name, mask, AT_EACCESS);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	fuse_reply_err(req, r < 0 ? e : 0);
}

/* ---- control ioctls on the root ------------------------------------------ */

static void fill_stats(struct casfs_ctl_stats *s)
{
	ino_stats is;
	struct timespec now;
	memset(s, 0, sizeof(*s));
	s->version = CASFS_CTL_VERSION;
	s->count = CASFS_C_COUNT;
	clock_gettime(CLOCK_MONOTONIC, &now);
	s->uptime_ms = (uint64_t)(now.tv_sec - FS->started.tv_sec) * 1000 +
		       (uint64_t)((now.tv_nsec - FS->started.tv_nsec) / 1000000);
	for (int i = 0; i < CASFS_C_COUNT; i++)
		s->counters[i] = atomic_load_explicit(&FS->counters[i], memory_order_relaxed);
	ino_table_stats(FS->tbl, &is);
	s->counters[CASFS_C_nodes] = is.nodes;
	s->counters[CASFS_C_fd_cache_open] = is.fds_open;
	s->counters[CASFS_C_fd_cache_capacity] = is.fd_cache_cap;
	s->counters[CASFS_C_fd_cache_hits] = is.fd_hits;
	s->counters[CASFS_C_fd_cache_misses] = is.fd_misses;
	s->counters[CASFS_C_fd_cache_evictions] = is.fd_evictions;
	s->counters[CASFS_C_reopen_by_handle] = is.reopen_by_handle;
	s->counters[CASFS_C_reopen_by_path] = is.reopen_by_path;
	s->counters[CASFS_C_stale_handles] = is.stale;
	if (FS->dg) {
		digest_counters dc;
		digests_counters(FS->dg, &dc);
		s->counters[CASFS_C_files_hashed_streaming] = dc.files_hashed_streaming;
		s->counters[CASFS_C_files_hashed_by_reread] = dc.files_hashed_by_reread;
		s->counters[CASFS_C_files_hashed_on_demand] = dc.files_hashed_on_demand;
		s->counters[CASFS_C_bytes_hashed] = dc.bytes_hashed;
		s->counters[CASFS_C_digest_index_hits] = dc.digest_index_hits;
		s->counters[CASFS_C_index_writes] = dc.index_writes;
		s->counters[CASFS_C_index_errors] = dc.index_errors;
	}
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf,
		     size_t in_bufsz, size_t out_bufsz)
{
	COUNT(ioctl);
	if (flags & FUSE_IOCTL_COMPAT) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (fs_is_virtual(ino)) {
		casns_ioctl(req, ino, cmd, out_bufsz);
		return;
	}
	if (ino == FUSE_ROOT_ID && cmd == CASFS_IOC_INFO && out_bufsz >= sizeof(struct casfs_ctl_info)) {
		struct casfs_ctl_info info = { .version = CASFS_CTL_VERSION, .pid = getpid() };
		info.handle_mode = ino_table_handle_mode(FS->tbl);
		info.writeback = FS->o.writeback;
		snprintf(info.backing, sizeof(info.backing), "%s", FS->o.backing_path);
		snprintf(info.store, sizeof(info.store), "%s", cache_store_path(FS->o.store));
		fuse_reply_ioctl(req, 0, &info, sizeof(info));
		return;
	}
	if (ino == FUSE_ROOT_ID && cmd == CASFS_IOC_STATS && out_bufsz >= sizeof(struct casfs_ctl_stats)) {
		struct casfs_ctl_stats s;
		fill_stats(&s);
		fuse_reply_ioctl(req, 0, &s, sizeof(s));
		return;
	}
	if (cmd == CASFS_IOC_DIGEST && out_bufsz >= sizeof(struct casfs_ctl_digest)) {
		ino_node *n = node_of(ino);
		struct casfs_ctl_digest dg;
		memset(&dg, 0, sizeof(dg));
		if (n->type != S_IFREG) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		int fd = ino_node_fd_get(FS->tbl, n);
		int r = fd < 0 ? fd : file_digest_hex(n, fd, dg.hex);
		if (fd >= 0)
			ino_node_fd_put(FS->tbl, n);
		if (r < 0)
			fuse_reply_err(req, -r);
		else
			fuse_reply_ioctl(req, 0, &dg, sizeof(dg));
		return;
	}
	fuse_reply_err(req, ENOTTY);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
	.lseek = op_lseek,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.access = op_access,
	.ioctl = op_ioctl,
};

/* ---- running ------------------------------------------------------------ */

/* A file's digest became known: the live index learns where that content
 * is, and with -o ingest=all a file just written goes to the store. */
static void on_digest_known(ino_node *n, const cache_file_rec *rec, bool written)
{
	casns_live_add(&rec->digest, n->dev, n->ino);
	if (written && FS->o.ingest_all && FS->ing)
		ingest_queue(FS->ing, n, &rec->digest);
}

static void on_digest_gone(uint64_t dev, uint64_t ino, const hasher_digest *d)
{
	casns_live_del(d, dev, ino);
}

static int ready_fd_global = -1;

static void send_ready(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ready_fd_global >= 0) {
		ssize_t w = write(ready_fd_global, msg, strlen(msg));
		(void)w;
		close(ready_fd_global);
		ready_fd_global = -1;
	} else if (strncmp(msg, "ERR ", 4) == 0) {
		fprintf(stderr, "casfs: %s", msg + 4);
	}
}

/* libfuse's own messages (e.g. from fusermount3) become our error line. */
static char fuse_last_error[512];
static void fuse_log_capture(enum fuse_log_level level, const char *fmt, va_list ap)
{
	if (level <= FUSE_LOG_ERR) {
		vsnprintf(fuse_last_error, sizeof(fuse_last_error), fmt, ap);
		size_t l = strlen(fuse_last_error);
		while (l && fuse_last_error[l - 1] == '\n')
			fuse_last_error[--l] = '\0';
	}
	if (ready_fd_global < 0)
		vfprintf(stderr, fmt, ap);
}

int fs_run(const struct fs_options *o, int ready_fd)
{
	struct fs fs = { .o = *o, .proc_fd = -1 };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	char *mount_opts = NULL;
	int ret = 1, r;

	FS = &fs;
	ready_fd_global = ready_fd;
	clock_gettime(CLOCK_MONOTONIC, &fs.started);
	umask(0); /* the kernel applies the caller's umask before sending */
	fs.root_daemon = geteuid() == 0;
	if (fs.root_daemon) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d) == 0)
			for (int i = 0; i < 2; i++) {
				fs.cap_eff[i] = d[i].effective;
				fs.cap_prm[i] = d[i].permitted;
				fs.cap_inh[i] = d[i].inheritable;
			}
	}
	fs.proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs.proc_fd < 0) {
		send_ready("ERR cannot open /proc/self/fd (%s): mount /proc\n", strerror(errno));
		return 1;
	}
	/* Open files: raise the soft limit to the hard one, and keep the fd
	 * cache to half of it so open files and dirs have the rest. */
	unsigned fd_cache = o->fd_cache ? o->fd_cache : 8192;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY && fd_cache > rl.rlim_cur / 2)
			fd_cache = (unsigned)(rl.rlim_cur / 2);
	}
	r = ino_table_new(o->backing_fd, o->use_handles, fd_cache, &fs.tbl);
	if (r < 0) {
		send_ready("ERR cannot use backing directory %s: %s\n", o->backing_path, strerror(-r));
		goto out;
	}
	ino_table_set_fallback(fs.tbl, fallback_open, NULL);
	r = cache_index_open(o->store, &fs.ix);
	if (r < 0) {
		send_ready("ERR cannot open the index of store %s: %s\n", cache_store_path(o->store), strerror(-r));
		goto out;
	}
	if (o->max_size && (r = cache_index_set_max_size(fs.ix, o->max_size)) < 0) {
		send_ready("ERR cannot set the size limit of store %s: %s\n", cache_store_path(o->store),
			   strerror(-r));
		goto out;
	}
	fs.owner_uid = getuid();
	fs.owner_gid = getgid();
	if ((r = casns_new(&fs.ns)) < 0 || (r = ingest_new(&fs.ing)) < 0) {
		send_ready("ERR cannot start: %s\n", strerror(-r));
		goto out;
	}
#if CASFS_HASH_ON_WRITE
	r = digests_new(fs.tbl, fs.ix, fs.proc_fd, &fs.dg);
	if (r < 0) {
		send_ready("ERR cannot start digests: %s\n", strerror(-r));
		goto out;
	}
	digests_set_hooks(fs.dg, on_digest_known, on_digest_gone);
#endif

	/* The source shown in /proc/mounts is the backing directory, as for
	 * other loopbacks (findmnt -S, umount BACKING); libfuse's option list
	 * needs its commas and backslashes escaped. */
	char fsname[PATH_MAX + 8];
	snprintf(fsname, sizeof(fsname), "fsname=%s", o->backing_path);
	if (fuse_opt_add_opt_escaped(&mount_opts, fsname) ||
	    fuse_opt_add_opt(&mount_opts, "subtype=casfs,default_permissions") ||
	    (o->allow_other && fuse_opt_add_opt(&mount_opts, "allow_other")) ||
	    (o->read_only && fuse_opt_add_opt(&mount_opts, "ro")) ||
	    (o->mount_opts && *o->mount_opts && fuse_opt_add_opt(&mount_opts, o->mount_opts)) ||
	    fuse_opt_add_arg(&args, "casfs") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, mount_opts)) {
		send_ready("ERR out of memory\n");
		goto out;
	}
	fuse_set_log_func(fuse_log_capture);
	fs.se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!fs.se) {
		send_ready("ERR cannot create the FUSE session: %s\n", fuse_last_error);
		goto out;
	}
	if (fuse_set_signal_handlers(fs.se) != 0) {
		send_ready("ERR cannot install signal handlers\n");
		goto out_session;
	}
	if (fuse_session_mount(fs.se, o->mountpoint) != 0) {
		send_ready("ERR cannot mount on %s: %s\n", o->mountpoint,
			   fuse_last_error[0] ? fuse_last_error : "mount failed");
		goto out_signals;
	}
	send_ready("OK\n");
	if (!o->foreground && o->log_path) {
		/* Detach from the caller's terminal: messages go to the log. */
		int lfd = open(o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (lfd < 0)
			lfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (lfd >= 0) {
			dup2(lfd, STDOUT_FILENO);
			dup2(lfd, STDERR_FILENO);
			close(lfd);
		}
	}

	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, o->threads ? o->threads : 16);
	fuse_loop_cfg_set_idle_threads(lc, 4);
	r = fuse_session_loop_mt(fs.se, lc);
	/* Unmounted, or stopped by SIGINT/SIGTERM/SIGHUP (libfuse returns the
	 * signal number): a clean exit. */
	ret = r == 0 || r == SIGINT || r == SIGTERM || r == SIGHUP ? 0 : 1;
	fuse_loop_cfg_destroy(lc);
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
out:
	fuse_opt_free_args(&args);
	free(mount_opts);
	digests_free(fs.dg); /* writes pending digests to the index */
	ingest_free(fs.ing); /* stores what is queued */
	fs.ing = NULL;
	casns_free(fs.ns);
	fs.ns = NULL;
	cache_index_close(fs.ix);
	ino_table_free(fs.tbl);
	if (fs.proc_fd >= 0)
		close(fs.proc_fd);
	if (ready_fd_global >= 0)
		send_ready("ERR the daemon stopped before mounting\n");
	return ret;
}
