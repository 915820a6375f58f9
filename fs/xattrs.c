/* xattrs.c — extended attributes: casfs's digests as user.casfs.xxh128
 * (hex) and user.casfs.sha256 (raw) on every regular file, the backing's
 * own attributes for the rest.
 *
 * user.casfs.xxh128 is listed on every regular file; user.casfs.sha256 only
 * under -o sha256, where it is streamed on the write path and mostly known:
 * without that option listing it would make every tool that copies all
 * attributes (getfattr -d, cp -a, rsync -X, tar --xattrs) read each file
 * once more to compute a SHA-256 nobody asked for.  It answers by name
 * either way. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/xattr.h>

#include "casns.h"
#include "ops.h"
#include "req.h"
#include "session.h"
#include "trace.h"

int fs_file_digest_hex(ino_node *n, int fd, char hex[HASHER_HEX_LEN + 1])
{
	hasher_digest d;
	if (!FS->dg)
		return -ENODATA; /* hashing compiled out: no digest, none listed */
	int r = digests_get(FS->dg, n, fd, &d);
	if (r == 0)
		hasher_digest_to_hex(&d, hex);
	return r;
}

static bool req_cancelled(void *arg)
{
	struct req *q = arg;
	return fuse_req_interrupted(q->r) || fuse_session_exited(FS->se);
}

int fs_req_digest_hex(struct req *q, ino_node *n, int fd, char hex[HASHER_HEX_LEN + 1])
{
	hasher_cancel c = { req_cancelled, q };
	digests_cancel_scope(&c);
	int r = fs_file_digest_hex(n, fd, hex);
	digests_cancel_scope(NULL);
	return r;
}

/* The longest value of casfs's own attributes. */
#define OWN_VALUE_MAX (HASHER_SHA256_LEN > HASHER_HEX_LEN ? HASHER_SHA256_LEN : HASHER_HEX_LEN)

/* The value of casfs's own attribute `name` (CASFS_XATTR_DIGEST or
 * CASFS_XATTR_SHA256) of node n (fd: any fd of it): 0 and *ret_len bytes
 * in buf, -ENODATA for what is not a regular file or without digests,
 * -errno. */
static int own_value(const char *name, ino_node *n, int fd, char buf[OWN_VALUE_MAX], size_t *ret_len)
{
	if (n->type != S_IFREG || !FS->dg)
		return -ENODATA;
	if (strcmp(name, CASFS_XATTR_SHA256) == 0) {
		hasher_sha256 sha;
		int r = digests_get_sha256(FS->dg, n, fd, &sha);
		if (r < 0)
			return r;
		memcpy(buf, sha.bytes, HASHER_SHA256_LEN);
		*ret_len = HASHER_SHA256_LEN;
		return 0;
	}
	char hex[HASHER_HEX_LEN + 1];
	int r = fs_file_digest_hex(n, fd, hex);
	if (r < 0)
		return r;
	memcpy(buf, hex, HASHER_HEX_LEN);
	*ret_len = HASHER_HEX_LEN;
	return 0;
}

static bool own_name(const char *name)
{
	return strcmp(name, CASFS_XATTR_DIGEST) == 0 || strcmp(name, CASFS_XATTR_SHA256) == 0;
}

/* The names ls -l, the kernel's write path and ACL tools ask on every file
 * (security.selinux, security.capability, system.posix_acl_*): answered
 * EOPNOTSUPP without touching the backing unless -o security_xattrs.
 * coreutils remembers "unsupported" per device for EOPNOTSUPP (not for
 * ENODATA), so ls -l asks once per device; other names, user.casfs.xxh128
 * above all, keep working (ENOSYS would stop the kernel asking for any). */
static bool foreign_name(const char *name)
{
	return !FS->o.security_xattrs &&
	       (!strncmp(name, "security.", 9) || !strncmp(name, "system.posix_acl_", 17));
}

/* xattr calls go to a path (getxattr & co. take no O_PATH fd): for most
 * nodes /proc/self/fd/N of its fd, a magic link to the very inode; for a
 * symlink that path would name the /proc link itself, so it is
 * /proc/self/fd/P/NAME through its parent directory's fd, with l*xattr.
 * On failure replies and returns -1; else the node's pinned fd, and *pfd
 * the parent's (or -1; release both). */
struct xpath {
	ino_node *n, *parent;
	int fd, pfd;
	bool nofollow;  /* the path names a symlink itself: l*xattr */
	char path[PATH_MAX];
};

/* The *xattr call for x: following the /proc magic link to the inode, or
 * not following the symlink named through its parent. */
static ssize_t x_get(const struct xpath *x, const char *name, void *buf, size_t size)
{
	return x->nofollow ? lgetxattr(x->path, name, buf, size) : getxattr(x->path, name, buf, size);
}

static ssize_t x_list(const struct xpath *x, char *buf, size_t size)
{
	return x->nofollow ? llistxattr(x->path, buf, size) : listxattr(x->path, buf, size);
}

static int x_set(const struct xpath *x, const char *name, const void *value, size_t size, int flags)
{
	return x->nofollow ? lsetxattr(x->path, name, value, size, flags) : setxattr(x->path, name, value, size, flags);
}

static int x_remove(const struct xpath *x, const char *name)
{
	return x->nofollow ? lremovexattr(x->path, name) : removexattr(x->path, name);
}

static int xattr_path(struct req *q, fuse_ino_t ino, struct xpath *x)
{
	x->parent = NULL;
	x->pfd = -1;
	x->nofollow = false;
	x->fd = req_node_fd(q, ino, &x->n);
	if (x->fd < 0)
		return -1;
	if (x->n->type != S_IFLNK) {
		snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d", x->fd);
		return x->fd;
	}
	char name[NAME_MAX + 1];
	ino_table_lock(FS->tbl);
	if (x->n->parent && x->n->name && strlen(x->n->name) <= NAME_MAX) {
		x->parent = x->n->parent;
		snprintf(name, sizeof(name), "%s", x->n->name);
		ino_node_ref_locked(FS->tbl, x->parent);
	}
	ino_table_unlock(FS->tbl);
	struct stat a, b;
	if (x->parent && (x->pfd = ino_node_fd_get(FS->tbl, x->parent)) >= 0 &&
	    fstatat(x->pfd, name, &a, AT_SYMLINK_NOFOLLOW) == 0 && fs_stat_fd(x->fd, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d/%s", x->pfd, name);
		x->nofollow = true;
		return x->fd;
	}
	/* no name that reaches it (not looked up by name since): the /proc
	 * link itself, which holds no attributes (EOPNOTSUPP) */
	snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d", x->fd);
	x->nofollow = true;
	return x->fd;
}

static void xattr_put(struct xpath *x)
{
	if (x->pfd >= 0)
		ino_node_fd_put(FS->tbl, x->parent);
	if (x->parent)
		ino_node_unref(FS->tbl, x->parent);
	ino_node_fd_put(FS->tbl, x->n);
}

/* xattrs off (-o no_xattr): ENOSYS, and the kernel stops asking. */
static bool xattrs_off(struct req *q)
{
	if (FS->o.xattr)
		return false;
	req_err(q, ENOSYS);
	return true;
}

void op_getxattr(fuse_req_t r, fuse_ino_t ino, const char *name, size_t size)
{
	struct req q;
	req_begin(&q, r, CASFS_C_getxattr);
	if (xattrs_off(&q))
		return;
	if (fs_is_virtual(ino)) {
		casns_getxattr(&q, ino, name, size);
		return;
	}
	if (foreign_name(name)) {
		req_err(&q, EOPNOTSUPP);
		return;
	}
	struct xpath x;
	char *buf = NULL;
	if (xattr_path(&q, ino, &x) < 0)
		return;
	ino_node *n = x.n;
	if (own_name(name)) {
		char value[OWN_VALUE_MAX];
		size_t len = 0;
		if (q.sess && n->type == S_IFREG)
			trace_read(session_trace(q.sess), n, x.fd); /* the digest tells the content */
		/* an interrupted request stops hashing (digests_cancel_scope) */
		hasher_cancel c = { req_cancelled, &q };
		digests_cancel_scope(&c);
		int rc = own_value(name, n, x.fd, value, &len);
		digests_cancel_scope(NULL);
		xattr_put(&x);
		req_xattr(&q, size, value, rc < 0 ? -1 : (ssize_t)len, -rc);
		return;
	}
	/* a value (or its absence) no manifest holds; security.* and system.*
	 * (passed through with -o security_xattrs) are the kernel's and ls's
	 * questions about permissions, not data a command computes with */
	if (q.sess && (!strncmp(name, "user.", 5) || !strncmp(name, "trusted.", 8)))
		trace_xattrs(session_trace(q.sess));
	if (size && !(buf = malloc(size))) {
		xattr_put(&x);
		req_err(&q, ENOMEM);
		return;
	}
	ssize_t len = x_get(&x, name, buf, size);
	int e = errno;
	xattr_put(&x);
	req_xattr(&q, size, buf, len, e);
	free(buf);
}

void op_listxattr(fuse_req_t r, fuse_ino_t ino, size_t size)
{
	struct req q;
	req_begin(&q, r, CASFS_C_listxattr);
	if (xattrs_off(&q))
		return;
	if (fs_is_virtual(ino)) {
		casns_listxattr(&q, ino, size);
		return;
	}
	struct xpath x;
	if (xattr_path(&q, ino, &x) < 0)
		return;
	/* casfs's own names, NUL-separated (see the top of this file) */
	static const char own_all[] = CASFS_XATTR_DIGEST "\0" CASFS_XATTR_SHA256;
	const size_t ours = x.n->type != S_IFREG || !FS->dg ? 0 :
			    FS->o.sha256 ? sizeof(own_all) : sizeof(CASFS_XATTR_DIGEST);
	/* the backing's whole list (its size can change: ask until it fits),
	 * the names casfs answers itself left out */
	char *buf = NULL;
	ssize_t len;
	int e = 0;
	for (int tries = 0;; tries++) {
		len = x_list(&x, NULL, 0);
		char *nb = len >= 0 ? realloc(buf, (size_t)len + ours + 1) : NULL;
		if (len < 0 || !nb) {
			e = len < 0 ? errno : ENOMEM;
			len = -1;
			break;
		}
		buf = nb;
		len = x_list(&x, buf, (size_t)len);
		if (len >= 0 || errno != ERANGE || tries == 3) {
			e = errno;
			break;
		}
	}
	xattr_put(&x);
	if (len >= 0) {
		size_t kept = 0;
		for (size_t at = 0; at < (size_t)len;) {
			size_t l = strlen(buf + at) + 1;
			if (!foreign_name(buf + at) && strncmp(buf + at, CASFS_XATTR_PREFIX, sizeof(CASFS_XATTR_PREFIX) - 1)) {
				memmove(buf + kept, buf + at, l);
				kept += l;
			}
			at += l;
		}
		if (kept && q.sess)
			trace_xattrs(session_trace(q.sess)); /* names no manifest holds */
		memcpy(buf + kept, own_all, ours);
		len = (ssize_t)(kept + ours);
	}
	req_xattr(&q, size, buf, len, e);
	free(buf);
}

/* Digests are casfs's to say.  Setting the value it already has is allowed
 * as a no-op (the hex digest in either case), so `cp -a`, `tar --xattrs` or
 * `rsync -X` copying a file back onto casfs do not fail. */
static int set_own_xattr(fuse_ino_t ino, const char *name, const char *value, size_t size)
{
	char cur[OWN_VALUE_MAX];
	size_t len = 0;
	ino_node *n = ino_table_get(FS->tbl, ino);
	if (!n || !own_name(name) || n->type != S_IFREG)
		return EPERM;
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0)
		return -fd;
	bool same = own_value(name, n, fd, cur, &len) == 0 && size == len &&
		    (strcmp(name, CASFS_XATTR_SHA256) == 0 ? memcmp(cur, value, len) == 0 :
							     strncasecmp(cur, value, len) == 0);
	ino_node_fd_put(FS->tbl, n);
	return same ? 0 : EPERM;
}

void op_setxattr(fuse_req_t r, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
	struct req q;
	req_begin(&q, r, CASFS_C_setxattr);
	if (xattrs_off(&q))
		return;
	if (fs_is_virtual(ino)) {
		req_err(&q, EPERM);
		return;
	}
	if (strncmp(name, CASFS_XATTR_PREFIX, sizeof(CASFS_XATTR_PREFIX) - 1) == 0) {
		req_err(&q, set_own_xattr(ino, name, value, size));
		return;
	}
	if (foreign_name(name)) {
		req_err(&q, EOPNOTSUPP);
		return;
	}
	struct xpath x;
	if (xattr_path(&q, ino, &x) < 0)
		return;
	if (q.sess)
		trace_xattrs(session_trace(q.sess)); /* a hit would not restore it */
	req_creds_enter(&q); /* as the caller: the backing drops setgid as for it */
	int rc = x_set(&x, name, value, size, flags);
	int e = errno;
	req_creds_leave(&q);
	xattr_put(&x);
	if (rc == 0 && !strncmp(name, "system.posix_acl_", 17))
		fuse_lowlevel_notify_inval_inode(FS->se, ino, -1, 0); /* the mode follows the ACL */
	req_err(&q, rc < 0 ? e : 0);
}

void op_removexattr(fuse_req_t r, fuse_ino_t ino, const char *name)
{
	struct req q;
	req_begin(&q, r, CASFS_C_removexattr);
	if (xattrs_off(&q))
		return;
	if (fs_is_virtual(ino) || strncmp(name, CASFS_XATTR_PREFIX, sizeof(CASFS_XATTR_PREFIX) - 1) == 0) {
		req_err(&q, EPERM);
		return;
	}
	if (foreign_name(name)) {
		req_err(&q, EOPNOTSUPP);
		return;
	}
	struct xpath x;
	if (xattr_path(&q, ino, &x) < 0)
		return;
	if (q.sess)
		trace_xattrs(session_trace(q.sess));
	req_creds_enter(&q);
	int rc = x_remove(&x, name);
	int e = errno;
	req_creds_leave(&q);
	xattr_put(&x);
	if (rc == 0 && !strncmp(name, "system.posix_acl_", 17))
		fuse_lowlevel_notify_inval_inode(FS->se, ino, -1, 0);
	req_err(&q, rc < 0 ? e : 0);
}
