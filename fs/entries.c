/* entries.c — handlers of names and attributes: lookup, forget, getattr,
 * setattr, readlink, mknod, mkdir, symlink, unlink, rmdir, rename, link.
 *
 * Backing access never concatenates paths: names are resolved one
 * component at a time against a directory fd, with O_NOFOLLOW where a name
 * could be a symlink, so nothing can escape the backing directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "casns.h"
#include "kcache.h"
#include "ops.h"
#include "req.h"
#include "sandbox_fast.h"
#include "session.h"
#include "trace.h"

/* ---- lookup ------------------------------------------------------------- */

/* LOOKUP of "." and ".." comes only from file handles (export support):
 * "." for an id the kernel may have forgotten, ".." for the parent of a
 * directory it holds.  Neither name is recorded as a node's name. */
static void lookup_dot(struct req *q, fuse_ino_t id, bool dotdot)
{
	struct fuse_entry_param e;
	struct stat st;
	ino_node *n = dotdot ? ino_table_get(FS->tbl, id) : ino_table_get_lookup(FS->tbl, id, 1);
	if (!n) {
		COUNT(stale_ids);
		req_err(q, ESTALE);
		return;
	}
	int fd = ino_node_fd_get(FS->tbl, n), r;
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	if (!dotdot) {
		r = fs_stat_fd(fd, &st);
		ino_node_fd_put(FS->tbl, n);
		if (r < 0)
			goto fail;
		fs_fill_entry(&e, n, &st);
	} else {
		int pfd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		r = pfd < 0 ? -errno : fs_stat_fd(pfd, &st);
		ino_node_fd_put(FS->tbl, n);
		if (r < 0) {
			if (pfd >= 0)
				close(pfd);
			req_err(q, -r);
			return;
		}
		ino_node *p = ino_table_find(FS->tbl, NULL, NULL, st.st_dev, st.st_ino, 1);
		if (p)
			close(pfd);
		else if ((r = ino_table_insert(FS->tbl, NULL, NULL, pfd, &st, 1, &p)) < 0) {
			req_err(q, -r);
			return;
		}
		fs_fill_entry(&e, p, &st);
		n = p;
	}
	if (req_entry(q, &e) == -ENOENT)
		ino_table_forget(FS->tbl, n, 1);
	return;
fail:
	if (!dotdot)
		ino_table_forget(FS->tbl, n, 1);
	req_err(q, -r);
}

/* Whether thread tid is a compiler proper (session_caller_compiles),
 * remembered for the last thread this worker asked about: the absences a
 * compiler finds again are its include search (`-I dir` + `bits/`, once per
 * such header), which the kernel may then cache (fs/kcache.h); other
 * programs' repeated probes (a file another action makes) stay uncached, so
 * runs beside them do not record them.  A stale answer costs only that. */
static bool caller_compiles(pid_t tid)
{
	static _Thread_local pid_t last_tid;
	static _Thread_local bool last;
	if (tid != last_tid) {
		last = session_caller_compiles(tid);
		last_tid = tid;
	}
	return last;
}

void op_lookup(fuse_req_t r, fuse_ino_t parent, const char *name)
{
	struct req q;
	req_begin(&q, r, CASFS_C_lookup);
	if (fs_is_virtual(parent)) {
		casns_lookup(&q, parent, name);
		return;
	}
	if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
		lookup_dot(&q, parent, name[1] == '.');
		return;
	}
	if (fs_reserved(name)) {
		casns_lookup_reserved(&q, parent);
		return;
	}
	ino_node *p;
	struct fuse_entry_param e;
	int pfd = req_node_fd(&q, parent, &p);
	if (pfd < 0)
		return;
	int rc = fs_lookup_at(p, pfd, name, &e);
	ino_node_fd_put(FS->tbl, p);
	bool again = false;
	if (q.sess) {
		if (rc == -ENOENT)
			again = trace_absent(session_trace(q.sess), q.tid, p, name) >= 2 && caller_compiles(q.tid);
		else if (rc == 0)
			trace_exists(session_trace(q.sess), ino_table_get(FS->tbl, e.ino), &e.attr);
	}
	if (rc == -ENOENT && FS->o.timeout > 0 && kcache_negative(FS->kc, FS->ss, q.sess, again, parent, p, name)) {
		/* A negative entry: the kernel caches the absence. */
		COUNT(lookup_negative);
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FS->o.timeout;
		req_entry(&q, &e);
		return;
	}
	if (rc < 0) {
		req_err(&q, -rc);
		return;
	}
	if (req_entry(&q, &e) == -ENOENT)
		ino_table_forget(FS->tbl, ino_table_get(FS->tbl, e.ino), 1);
}

/* Forgets must never touch a node the kernel does not hold: an unknown id
 * (a protocol bug) is logged and ignored rather than trusted. */
static void forget_one(fuse_ino_t id, uint64_t nlookup)
{
	if (fs_is_virtual(id)) {
		casns_forget(id, nlookup);
		return;
	}
	ino_node *n = ino_table_get(FS->tbl, id);
	if (n)
		ino_table_forget(FS->tbl, n, nlookup);
	else
		COUNT(stale_ids);
}

void op_forget(fuse_req_t r, fuse_ino_t ino, uint64_t nlookup)
{
	struct req q;
	req_begin(&q, r, CASFS_C_forget);
	forget_one(ino, nlookup);
	req_none(&q);
}

void op_forget_multi(fuse_req_t r, size_t count, struct fuse_forget_data *f)
{
	struct req q;
	req_begin(&q, r, CASFS_C_forget);
	COUNT_N(forget, count ? count - 1 : 0);
	for (size_t i = 0; i < count; i++)
		forget_one(f[i].ino, f[i].nlookup);
	req_none(&q);
}

/* ---- attributes ----------------------------------------------------------- */

void op_getattr(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct req q;
	struct stat st;
	int rc;
	req_begin(&q, r, CASFS_C_getattr);
	if (fs_is_virtual(ino)) {
		casns_getattr(&q, ino);
		return;
	}
	if (fi && fi->fh) {
		rc = fs_stat_fd(fs_file_of(fi)->fd, &st);
	} else {
		ino_node *n;
		int fd = req_node_fd(&q, ino, &n);
		if (fd < 0)
			return;
		rc = fs_stat_fd(fd, &st);
		ino_node_fd_put(FS->tbl, n);
		if (q.sess && rc == 0)
			trace_exists(session_trace(q.sess), n, &st);
	}
	if (rc < 0)
		req_err(&q, -rc);
	else
		req_attr(&q, &st, FS->o.timeout);
}

static int set_size(ino_node *n, int fd, int ffd, off_t size)
{
	int tfd = ffd;
	if (tfd < 0 && (tfd = fs_reopen_fd(fd, O_WRONLY)) < 0)
		return tfd;
	/* The digest learns of the change before the backing sees it, so a
	 * reader of .casfs/cas serving this live file notices. */
	if (n->type == S_IFREG)
		digests_begin_change(FS->dg, n);
	int rc = ftruncate(tfd, size) < 0 ? -errno : 0;
	if (n->type == S_IFREG)
		digests_truncate(FS->dg, n, rc == 0 ? size : 1);
	if (tfd != ffd)
		close(tfd);
	return rc;
}

/* The SETATTR bits that change an attribute (FUSE_SET_ATTR_CTIME alone,
 * which the writeback cache sends with a chown, does not). */
#define SETATTR_SETS                                                                      \
	(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE | \
	 FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)

void op_setattr(fuse_req_t r, fuse_ino_t ino, struct stat *attr, int valid, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_setattr);
	if (fs_is_virtual(ino)) {
		req_err(&q, EPERM);
		return;
	}
	ino_node *n;
	int fd = req_node_fd(&q, ino, &n), rc = 0;
	if (fd < 0)
		return;
	int ffd = fi && fi->fh ? fs_file_of(fi)->fd : -1;
	struct stat st;
	char name[16];
	snprintf(name, sizeof(name), "%d", fd);
	if (q.sess) {
		/* its old content matters unless all of it goes: a chmod or
		 * touch leaves it in the output */
		bool trunc = ((valid & FUSE_SET_ATTR_SIZE) && attr->st_size == 0) || n->type != S_IFREG;
		if (trunc && (rc = fs_stat_fd(fd, &st)) < 0)
			goto fail;
		trace_write_open(session_trace(q.sess), n, fd, trunc ? &st : NULL);
	}
	trace_foreign_change(FS->ss, q.sess, n, NULL);
	if ((valid & FUSE_SET_ATTR_MODE) &&
	    (ffd >= 0 ? fchmod(ffd, attr->st_mode) : fchmodat(FS->proc_fd, name, attr->st_mode, 0)) < 0)
		goto fail_errno;
	/* A SETATTR that sets nothing is chown(-1, -1) (or the kernel's removal
	 * of set-id bits ahead of a write or fallocate, which casfs does there
	 * too).  Under FUSE_HANDLE_KILLPRIV_V2 the kernel sends no mode for it
	 * and no FATTR_KILL_SUIDGID: casfs does what ext4 does, the backing's
	 * own chown(-1, -1) below (set-id bits as for a change of owner, and
	 * the change time). */
	bool chown_none = !(valid & SETATTR_SETS);
	/* FATTR_KILL_SUIDGID (kernel_io.h): a truncation by a caller without
	 * CAP_FSETID, or a change of owner.  The backing's own chown (by this
	 * daemon) drops set-user-ID and a group-executable set-group-ID; what
	 * it cannot know is a caller outside the file's group. */
	if (((valid & FUSE_SET_ATTR_KILL_SUID) || chown_none) &&
	    ((valid & FUSE_SET_ATTR_SIZE) || q.uid != 0) && (rc = req_kill_suidgid(&q, fd)) < 0)
		goto fail;
	if ((valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) || chown_none) {
		uid_t uid = valid & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = valid & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;
		struct stat was;
		/* a run's outputs are restored as the caller's: one that gives
		 * a file another owner or group is not cached */
		if (q.sess && (uid != (uid_t)-1 || gid != (gid_t)-1) && (rc = fs_stat_fd(fd, &was)) < 0)
			goto fail;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			goto fail_errno;
		if (q.sess && ((uid != (uid_t)-1 && uid != was.st_uid) || (gid != (gid_t)-1 && gid != was.st_gid)))
			trace_owner_changed(session_trace(q.sess));
	}
	if ((valid & FUSE_SET_ATTR_SIZE) && (rc = set_size(n, fd, ffd, attr->st_size)) < 0)
		goto fail;
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
			goto fail_errno;
	}
	rc = fs_stat_fd(ffd >= 0 ? ffd : fd, &st);
	ino_node_fd_put(FS->tbl, n);
	if (rc < 0) {
		req_err(&q, -rc);
		return;
	}
	if (!(valid & FUSE_SET_ATTR_SIZE))
		digests_meta_changed(FS->dg, n, &st);
	req_attr(&q, &st, FS->o.timeout);
	return;
fail_errno:
	rc = -errno;
fail:
	ino_node_fd_put(FS->tbl, n);
	req_err(&q, -rc);
}

void op_readlink(fuse_req_t r, fuse_ino_t ino)
{
	struct req q;
	req_begin(&q, r, CASFS_C_readlink);
	if (fs_is_virtual(ino)) {
		req_err(&q, EINVAL);
		return;
	}
	ino_node *n;
	char buf[PATH_MAX + 1];
	int fd = req_node_fd(&q, ino, &n);
	if (fd < 0)
		return;
	ssize_t len = readlinkat(fd, "", buf, sizeof(buf));
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	if (len < 0) {
		req_err(&q, e);
	} else if (len == (ssize_t)sizeof(buf)) {
		req_err(&q, ENAMETOOLONG);
	} else {
		buf[len] = '\0';
		if (q.sess)
			trace_readlink(session_trace(q.sess), n, buf);
		req_readlink(&q, buf);
	}
}

/* ---- namespace ------------------------------------------------------------ */

/* The parent directory of a namespace operation: a real directory whose
 * name argument is not the reserved one.  On failure replies (EPERM for
 * the .casfs namespace) and returns -1; else a pinned fd. */
static int parent_fd(struct req *q, fuse_ino_t parent, const char *name, ino_node **ret_p)
{
	if (fs_is_virtual(parent) || fs_reserved(name)) {
		req_err(q, EPERM);
		return -1;
	}
	return req_node_fd(q, parent, ret_p);
}

/* Replies with the entry of the object just created as name in p. */
static void reply_new_entry(struct req *q, ino_node *p, int pfd, const char *name)
{
	struct fuse_entry_param e;
	int rc = fs_lookup_at(p, pfd, name, &e);
	if (rc < 0)
		req_err(q, -rc);
	else if (req_entry(q, &e) == -ENOENT)
		ino_table_forget(FS->tbl, ino_table_get(FS->tbl, e.ino), 1);
}

enum mk_kind { MK_NODE, MK_DIR, MK_SYMLINK };

static void make_entry(struct req *q, fuse_ino_t parent, const char *name, enum mk_kind kind,
		       mode_t mode, dev_t rdev, const char *target)
{
	ino_node *p;
	int rc, pfd = parent_fd(q, parent, name, &p);
	if (pfd < 0)
		return;
	req_creds_enter(q);
	if (kind == MK_DIR)
		rc = mkdirat(pfd, name, mode);
	else if (kind == MK_SYMLINK)
		rc = symlinkat(target, pfd, name);
	else
		rc = mknodat(pfd, name, mode, rdev);
	int e = errno;
	req_creds_leave(q);
	if (rc < 0) {
		req_err(q, e);
	} else {
		if (q->sess)
			trace_created(session_trace(q->sess), p, name);
		trace_foreign_change(FS->ss, q->sess, p, name);
		reply_new_entry(q, p, pfd, name);
	}
	ino_node_fd_put(FS->tbl, p);
}

void op_mknod(fuse_req_t r, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct req q;
	req_begin(&q, r, CASFS_C_mknod);
	make_entry(&q, parent, name, MK_NODE, mode, rdev, NULL);
}

void op_mkdir(fuse_req_t r, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct req q;
	req_begin(&q, r, CASFS_C_mkdir);
	make_entry(&q, parent, name, MK_DIR, mode, 0, NULL);
}

void op_symlink(fuse_req_t r, const char *link, fuse_ino_t parent, const char *name)
{
	struct req q;
	req_begin(&q, r, CASFS_C_symlink);
	make_entry(&q, parent, name, MK_SYMLINK, 0, 0, link);
}

/* The inode that `name` in pfd names is about to lose a link (unlink,
 * rmdir, rename over it).  We hold it open (O_PATH) across the removal so
 * that the filesystem cannot free it and hand its number to a file another
 * process creates meanwhile; once it has no link left its node is detached
 * (and drops every fd the daemon holds on it), and only then is it let go.
 * (The kernel holds the directory's lock, so the name cannot change between
 * the probe and the removal.) */
struct victim {
	int fd;
};

static void victim_probe(int pfd, const char *name, struct victim *v)
{
	v->fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

/* How long an unlink waits for the daemon to let go of the file it
 * removed: the RELEASE of a file the caller already closed (the kernel
 * sends it asynchronously, and until it arrives the daemon's open fd keeps
 * the deleted file's blocks allocated), or the background hasher, which
 * notices within a MiB of hashing. */
#define RELEASE_WAIT_MS 100

static void victim_done(struct victim *v, bool removed, ino_node *parent, const char *name)
{
	struct stat st;
	if (v->fd < 0)
		return;
	if (removed && fstat(v->fd, &st) == 0) {
		if (st.st_nlink == 0) {
			ino_node *n = ino_table_find_ref(FS->tbl, st.st_dev, st.st_ino);
			ino_table_detach(FS->tbl, st.st_dev, st.st_ino);
			if (n) {
				/* nothing of the deleted file stays allocated
				 * by us once the unlink returns (unless a process
				 * still has it open, as on any filesystem) */
				if (S_ISREG(st.st_mode) && !fs_node_wait_released(n, RELEASE_WAIT_MS))
					COUNT(unlink_open_files);
				ino_node_unref(FS->tbl, n);
			}
		} else {
			ino_table_name_removed(FS->tbl, st.st_dev, st.st_ino, parent, name);
		}
	}
	close(v->fd);
	v->fd = -1;
}

/* A directory removed or renamed over must be empty: the run saw that it
 * was (a fresh run where it is not fails with ENOTEMPTY). */
static void victim_emptied(struct req *q, const struct victim *v)
{
	struct stat vst;
	ino_node *vn;
	if (q->sess && v->fd >= 0 && fstat(v->fd, &vst) == 0 && S_ISDIR(vst.st_mode) &&
	    (vn = ino_table_find_ref(FS->tbl, vst.st_dev, vst.st_ino))) {
		trace_emptied(session_trace(q->sess), vn, v->fd);
		ino_node_unref(FS->tbl, vn);
	}
}

static void remove_entry(struct req *q, fuse_ino_t parent, const char *name, int flags)
{
	ino_node *p;
	struct victim v;
	int pfd = parent_fd(q, parent, name, &p);
	if (pfd < 0)
		return;
	victim_probe(pfd, name, &v);
	if (flags & AT_REMOVEDIR)
		victim_emptied(q, &v);
	int rc, e;
	if ((flags & AT_REMOVEDIR) && FS->sb && sbfast_name(name)) {
		rc = sbfast_rmdir(FS->sb, pfd, name); /* a fast sandbox goes only empty */
		e = -rc;
	} else {
		rc = unlinkat(pfd, name, flags);
		e = errno;
	}
	if (rc == 0 && q->sess)
		trace_removed(session_trace(q->sess), p, name);
	if (rc == 0)
		trace_foreign_change(FS->ss, q->sess, p, name);
	victim_done(&v, rc == 0, p, name);
	ino_node_fd_put(FS->tbl, p);
	req_err(q, rc < 0 ? e : 0);
}

void op_unlink(fuse_req_t r, fuse_ino_t parent, const char *name)
{
	struct req q;
	req_begin(&q, r, CASFS_C_unlink);
	remove_entry(&q, parent, name, 0);
}

void op_rmdir(fuse_req_t r, fuse_ino_t parent, const char *name)
{
	struct req q;
	req_begin(&q, r, CASFS_C_rmdir);
	remove_entry(&q, parent, name, AT_REMOVEDIR);
}

/* After a rename: the node now at name in dir (dfd) records that name and
 * its new ctime (a rename changes no digest). */
static void renamed_at(ino_node *dir, int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	ino_node *n = ino_table_find(FS->tbl, dir, name, st.st_dev, st.st_ino, 0);
	if (n)
		digests_meta_changed(FS->dg, n, &st);
}

/* A run renames name in dir (dfd): what it holds is an input of the run
 * (trace_source), recorded before the rename. */
static void moved_source(struct req *q, ino_node *dir, int dfd, const char *name)
{
	struct stat st;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return; /* the rename fails the same way */
	ino_node *n = fs_stat_fd(fd, &st) == 0 ? ino_table_find_ref(FS->tbl, st.st_dev, st.st_ino) : NULL;
	trace_source(session_trace(q->sess), n, fd);
	if (n)
		ino_node_unref(FS->tbl, n);
	close(fd);
}

void op_rename(fuse_req_t r, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags)
{
	struct req q;
	req_begin(&q, r, CASFS_C_rename);
	ino_node *p, *np;
	struct victim v = { -1 };
	if (fs_reserved(newname)) {
		req_err(&q, EPERM);
		return;
	}
	int pfd = parent_fd(&q, parent, name, &p);
	if (pfd < 0)
		return;
	int npfd = parent_fd(&q, newparent, newname, &np);
	if (npfd < 0) {
		ino_node_fd_put(FS->tbl, p);
		return;
	}
	if (!(flags & RENAME_EXCHANGE))
		victim_probe(npfd, newname, &v);
	if (q.sess) {
		moved_source(&q, p, pfd, name);
		if (flags & RENAME_EXCHANGE)
			moved_source(&q, np, npfd, newname);
		victim_emptied(&q, &v);
	}
	int rc, e;
	if (FS->sb) { /* fast sandboxes: their directories, renames across filesystems */
		rc = sbfast_rename(FS->sb, p, pfd, name, np, npfd, newname, flags);
		e = -rc;
	} else {
		rc = (int)syscall(SYS_renameat2, pfd, name, npfd, newname, flags);
		e = errno;
	}
	if (rc == 0 && q.sess)
		trace_renamed(session_trace(q.sess), p, name, np, newname, v.fd >= 0 || (flags & RENAME_EXCHANGE));
	if (rc == 0) {
		trace_foreign_change_at(FS->ss, q.sess, p, name, true);
		trace_foreign_change_at(FS->ss, q.sess, np, newname, (flags & RENAME_EXCHANGE) != 0);
	}
	victim_done(&v, rc == 0, np, newname);
	if (rc == 0) {
		renamed_at(np, npfd, newname);
		if (flags & RENAME_EXCHANGE)
			renamed_at(p, pfd, name);
	}
	ino_node_fd_put(FS->tbl, np);
	ino_node_fd_put(FS->tbl, p);
	req_err(&q, rc < 0 ? e : 0);
}

void op_link(fuse_req_t r, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct req q;
	req_begin(&q, r, CASFS_C_link);
	ino_node *n, *np;
	char name[16];
	if (fs_is_virtual(ino)) {
		req_err(&q, EPERM);
		return;
	}
	int npfd = parent_fd(&q, newparent, newname, &np);
	if (npfd < 0)
		return;
	int fd = req_node_fd(&q, ino, &n);
	if (fd < 0) {
		ino_node_fd_put(FS->tbl, np);
		return;
	}
	if (q.sess)
		trace_source(session_trace(q.sess), n, fd);
	/* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc magic
	 * link with AT_SYMLINK_FOLLOW does not. */
	snprintf(name, sizeof(name), "%d", fd);
	int rc = linkat(FS->proc_fd, name, npfd, newname, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	struct fuse_entry_param ent;
	if (rc == 0)
		rc = fs_lookup_at(np, npfd, newname, &ent);
	ino_node_fd_put(FS->tbl, np);
	ino_node_fd_put(FS->tbl, n);
	if (rc < 0) {
		req_err(&q, -rc);
		return;
	}
	digests_meta_changed(FS->dg, n, &ent.attr); /* ctime changed, content not */
	if (q.sess) {
		trace_own_meta(session_trace(q.sess), n, FS->dg);
		trace_created(session_trace(q.sess), np, newname);
	}
	trace_foreign_change(FS->ss, q.sess, np, newname);
	if (req_entry(&q, &ent) == -ENOENT)
		ino_table_forget(FS->tbl, n, 1);
}
