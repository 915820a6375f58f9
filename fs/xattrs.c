/* xattrs.c — extended attributes: casfs's digest as user.casfs.xxh128 on
 * every regular file, the backing's own attributes for the rest. */
#include <errno.h>
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

/* xattr calls go to /proc/self/fd/N (getxattr & co. do not take O_PATH
 * fds); symlinks hold no user xattrs, so following the magic link is
 * right.  On failure replies and returns -1; else the pinned fd. */
static int xattr_path(struct req *q, fuse_ino_t ino, ino_node **ret_n, char buf[32])
{
	int fd = req_node_fd(q, ino, ret_n);
	if (fd >= 0)
		snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return fd;
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
	ino_node *n;
	char path[32], *buf = NULL;
	int fd = xattr_path(&q, ino, &n, path);
	if (fd < 0)
		return;
	if (strcmp(name, CASFS_XATTR_DIGEST) == 0) {
		char hex[HASHER_HEX_LEN + 1];
		if (q.sess && n->type == S_IFREG)
			trace_read(session_trace(q.sess), n, fd); /* the digest tells the content */
		int rc = n->type == S_IFREG ? fs_file_digest_hex(n, fd, hex) : -ENODATA;
		ino_node_fd_put(FS->tbl, n);
		req_xattr(&q, size, hex, rc < 0 ? -1 : HASHER_HEX_LEN, -rc);
		return;
	}
	if (size && !(buf = malloc(size))) {
		ino_node_fd_put(FS->tbl, n);
		req_err(&q, ENOMEM);
		return;
	}
	ssize_t len = n->type == S_IFLNK ? lgetxattr(path, name, buf, size) : getxattr(path, name, buf, size);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
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
	ino_node *n;
	char path[32], *buf = NULL;
	int fd = xattr_path(&q, ino, &n, path);
	if (fd < 0)
		return;
	const size_t ours = n->type == S_IFREG && FS->dg ? sizeof(CASFS_XATTR_DIGEST) : 0;
	if (size && !(buf = malloc(size))) {
		ino_node_fd_put(FS->tbl, n);
		req_err(&q, ENOMEM);
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
	req_xattr(&q, size, buf, len, e);
	free(buf);
}

/* Digests are casfs's to say.  Setting the value it already has is allowed
 * as a no-op, so `cp -a`, `tar --xattrs` or `rsync -X` copying a file back
 * onto casfs do not fail. */
static int set_own_xattr(fuse_ino_t ino, const char *name, const char *value, size_t size)
{
	char hex[HASHER_HEX_LEN + 1];
	ino_node *n = ino_table_get(FS->tbl, ino);
	if (!n || strcmp(name, CASFS_XATTR_DIGEST) != 0 || size != HASHER_HEX_LEN || n->type != S_IFREG)
		return EPERM;
	int fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0)
		return -fd;
	bool same = fs_file_digest_hex(n, fd, hex) == 0 && strncasecmp(hex, value, HASHER_HEX_LEN) == 0;
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
	ino_node *n;
	char path[32];
	int fd = xattr_path(&q, ino, &n, path);
	if (fd < 0)
		return;
	int rc = n->type == S_IFLNK ? lsetxattr(path, name, value, size, flags)
				    : setxattr(path, name, value, size, flags);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
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
	ino_node *n;
	char path[32];
	int fd = xattr_path(&q, ino, &n, path);
	if (fd < 0)
		return;
	int rc = n->type == S_IFLNK ? lremovexattr(path, name) : removexattr(path, name);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	req_err(&q, rc < 0 ? e : 0);
}
