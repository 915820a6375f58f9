/* xdev.c — see xdev.h. */
#include "xdev.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"
#include "state.h"

/* How long the rename waits for the daemon to let go of the source: the
 * RELEASE of a file its writer already closed comes asynchronously (as
 * for unlink, entries.c), and a caller may be using its fd for a moment. */
#define XDEV_WAIT_MS 100

#define TEMP_PREFIX ".casfs-rename."
#define TEMP_LEN (sizeof(TEMP_PREFIX) + 16)
#define TEMP_TRIES 8

/* -EPERM when chattr +i or +a forbids renaming (on the file or on the
 * directory it leaves), as the backing would say within one filesystem;
 * else 0.  fd: an O_RDONLY fd. */
static int flags_forbid(int fd)
{
	int fl = 0;
	if (ioctl(fd, FS_IOC_GETFLAGS, &fl) < 0)
		return 0; /* no such flags on this filesystem */
	return fl & (FS_IMMUTABLE_FL | FS_APPEND_FL) ? -EPERM : 0;
}

/* Writes a fresh temporary name into buf. */
static void temp_name(char buf[TEMP_LEN])
{
	unsigned long long r;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (unsigned long long)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (unsigned long long)gettid();
	}
	snprintf(buf, TEMP_LEN, TEMP_PREFIX "%016llx", r);
}

/* Copies the first size bytes of in to out at the same offsets, leaving
 * holes as holes, and sets out's size.  0 or -errno. */
static int copy_data(int in, int out, off_t size)
{
	off_t off = 0;
	while (off < size) {
		off_t data = lseek(in, off, SEEK_DATA), end = size;
		if (data < 0 && errno == ENXIO)
			break; /* a hole up to the end */
		if (data < 0) {
			data = off; /* no SEEK_DATA: copy everything */
		} else {
			end = lseek(in, data, SEEK_HOLE);
			if (end < 0 || end > size)
				end = size;
		}
		if (lseek(out, data, SEEK_SET) < 0)
			return -errno;
		for (off_t pos = data; pos < end;) {
			ssize_t n = sendfile(out, in, &pos, (size_t)(end - pos));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				return -EIO; /* shorter than its stat: changed meanwhile */
		}
		off = end;
	}
	return ftruncate(out, size) < 0 ? -errno : 0;
}

/* One side of an xattr copy: a regular file by fd, a symlink by a
 * /proc/self/fd/<dir>/<name> path (the l* calls do not follow it). */
struct xobj {
	int fd;
	const char *path;
};

static ssize_t xobj_list(const struct xobj *o, char *buf, size_t len)
{
	return o->path ? llistxattr(o->path, buf, len) : flistxattr(o->fd, buf, len);
}

static ssize_t xobj_get(const struct xobj *o, const char *name, void *buf, size_t len)
{
	return o->path ? lgetxattr(o->path, name, buf, len) : fgetxattr(o->fd, name, buf, len);
}

static int xobj_set(const struct xobj *o, const char *name, const void *val, size_t len)
{
	return o->path ? lsetxattr(o->path, name, val, len, 0) : fsetxattr(o->fd, name, val, len, 0);
}

static int copy_xattrs(const struct xobj *src, const struct xobj *dst)
{
	char *names = NULL, *val = NULL;
	int r = 0;
	ssize_t len = xobj_list(src, NULL, 0);
	if (len <= 0)
		return len < 0 && errno != EOPNOTSUPP ? -errno : 0;
	names = malloc((size_t)len);
	if (!names || (len = xobj_list(src, names, (size_t)len)) < 0) {
		r = names ? -errno : -ENOMEM;
		goto fail;
	}
	for (char *nm = names; nm < names + len; nm += strlen(nm) + 1) {
		ssize_t vl = xobj_get(src, nm, NULL, 0);
		char *v = vl >= 0 ? realloc(val, vl ? (size_t)vl : 1) : NULL;
		if (!v) {
			r = vl < 0 ? -errno : -ENOMEM;
			goto fail;
		}
		val = v;
		if ((vl = xobj_get(src, nm, val, (size_t)vl)) < 0 || xobj_set(dst, nm, val, (size_t)vl) < 0) {
			r = -errno;
			goto fail;
		}
	}
fail:
	free(names);
	free(val);
	return r;
}

int xdev_copy_xattrs(int sfd, const char *spath, int dfd, const char *dpath)
{
	struct xobj src = { sfd, sfd < 0 ? spath : NULL }, dst = { dfd, dfd < 0 ? dpath : NULL };
	return copy_xattrs(&src, &dst);
}

/* Copies the regular file open as in (st: its stat) to a new file in ddfd
 * under a temporary name, written into tmp.  0 or -errno. */
static int copy_file(int in, const struct stat *st, int ddfd, char tmp[TEMP_LEN])
{
	char proc[16];
	int r, out = openat(ddfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	const struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (out < 0)
		goto fail_errno;
	if ((r = copy_data(in, out, st->st_size)) < 0)
		goto fail;
	/* the ACL a default ACL of ddfd gave the new file is not the file's */
	if (fremovexattr(out, "system.posix_acl_access") < 0 && errno != ENODATA && errno != EOPNOTSUPP)
		goto fail_errno;
	if (fchown(out, st->st_uid, st->st_gid) < 0)
		goto fail_errno;
	if ((r = xdev_copy_xattrs(in, NULL, out, NULL)) < 0)
		goto fail;
	if (fchmod(out, st->st_mode & 07777) < 0 || futimens(out, ts) < 0)
		goto fail_errno;
	snprintf(proc, sizeof(proc), "%d", out);
	for (int i = 0;; i++) {
		temp_name(tmp);
		if (linkat(FS->proc_fd, proc, ddfd, tmp, AT_SYMLINK_FOLLOW) == 0)
			break;
		if (errno != EEXIST || i == TEMP_TRIES)
			goto fail_errno;
	}
	r = 0;
	goto out;
fail_errno:
	r = -errno;
fail:
	tmp[0] = '\0';
out:
	if (out >= 0)
		close(out);
	return r;
}

/* Copies the symlink name in sdfd (st: its stat) into ddfd under a
 * temporary name, written into tmp.  0 or -errno. */
static int copy_symlink(int sdfd, const char *name, const struct stat *st, int ddfd, char tmp[TEMP_LEN])
{
	char target[PATH_MAX + 1], spath[PATH_MAX + 32], dpath[64];
	const struct timespec ts[2] = { st->st_atim, st->st_mtim };
	int r;
	ssize_t l = readlinkat(sdfd, name, target, sizeof(target));
	if (l < 0 || l == (ssize_t)sizeof(target))
		return l < 0 ? -errno : -ENAMETOOLONG;
	target[l] = '\0';
	for (int i = 0;; i++) {
		temp_name(tmp);
		if (symlinkat(target, ddfd, tmp) == 0)
			break;
		if (errno != EEXIST || i == TEMP_TRIES) {
			r = -errno;
			tmp[0] = '\0';
			return r;
		}
	}
	snprintf(spath, sizeof(spath), "/proc/self/fd/%d/%s", sdfd, name);
	snprintf(dpath, sizeof(dpath), "/proc/self/fd/%d/%s", ddfd, tmp);
	if (fchownat(ddfd, tmp, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = xdev_copy_xattrs(-1, spath, -1, dpath)) < 0)
		goto fail;
	if (utimensat(ddfd, tmp, ts, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto fail;
	}
	return 0;
fail:
	unlinkat(ddfd, tmp, 0);
	tmp[0] = '\0';
	return r;
}

/* Moves node n onto the inode open as fd (st), named name in dir:
 * ino_table_moved, waiting out callers that use n's fd for a moment.
 * fd is the table's on success.  0 or -errno. */
static int node_move(ino_node *n, int fd, const struct stat *st, ino_node *dir, const char *name)
{
	struct timespec step = { 0, 200 * 1000 };
	int r;
	for (int waited_us = 0;; waited_us += 200) {
		r = ino_table_moved(FS->tbl, n, fd, st, dir, name);
		if (r != -EBUSY || waited_us >= XDEV_WAIT_MS * 1000)
			return r;
		nanosleep(&step, NULL);
	}
}

int xdev_rename(ino_node *p, int pfd, const char *name, ino_node *np, int npfd, const char *newname,
		unsigned int flags)
{
	struct stat sst, tst, cst;
	char tmp[TEMP_LEN] = "";
	int src = -1, in = -1, copy = -1, undo = -1, dir = -1, r;
	ino_node *n = NULL;
	bool moved = false;

	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EXDEV; /* exchange, whiteout: not atomic by copying */
	src = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return -errno;
	if ((r = fs_stat_fd(src, &sst)) < 0)
		goto fail;
	r = -EXDEV;
	if ((!S_ISREG(sst.st_mode) && !S_ISLNK(sst.st_mode)) || sst.st_nlink != 1)
		goto fail; /* a directory, a special file, or other names that would not follow */
	if (fstatat(npfd, newname, &tst, AT_SYMLINK_NOFOLLOW) == 0) {
		r = flags & RENAME_NOREPLACE ? -EEXIST : S_ISDIR(tst.st_mode) ? -EISDIR : 0;
		if (r < 0)
			goto fail;
	} else if (errno != ENOENT) {
		r = -errno;
		goto fail;
	}
	/* the kernel's node of the source, which must follow the content */
	n = ino_table_find_ref(FS->tbl, sst.st_dev, sst.st_ino);
	r = -EXDEV;
	if (!n || !fs_node_wait_released(n, XDEV_WAIT_MS))
		goto fail; /* open somewhere: its handles could not follow */
	/* chattr +i or +a on the directory or the file: EPERM, as within one
	 * filesystem (a symlink has no such flags) */
	dir = fs_reopen_fd(pfd, O_RDONLY | O_DIRECTORY);
	if (S_ISREG(sst.st_mode) && (in = fs_reopen_fd(src, O_RDONLY)) < 0) {
		r = in;
		goto fail;
	}
	if ((dir >= 0 && (r = flags_forbid(dir)) < 0) || (in >= 0 && (r = flags_forbid(in)) < 0))
		goto fail;
	r = in >= 0 ? copy_file(in, &sst, npfd, tmp) : copy_symlink(pfd, name, &sst, npfd, tmp);
	if (r < 0 || (copy = openat(npfd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fs_stat_fd(copy, &cst) < 0 || (undo = fcntl(src, F_DUPFD_CLOEXEC, 3)) < 0) {
		r = -EXDEV; /* no room, no O_TMPFILE...: the caller copies itself */
		goto fail;
	}
	if (node_move(n, copy, &cst, np, newname) < 0) {
		r = -EXDEV;
		goto fail;
	}
	copy = -1; /* the table's now */
	moved = true;
	/* Changed while it was copied (the kernel holds the file's lock for
	 * the rename, but a caller of the backing inode could have been
	 * between its open and its release): the copy is not the file. */
	struct stat now;
	if (fs_stat_fd(src, &now) < 0 || now.st_size != sst.st_size || now.st_ctim.tv_sec != sst.st_ctim.tv_sec ||
	    now.st_ctim.tv_nsec != sst.st_ctim.tv_nsec) {
		r = -EXDEV;
		goto fail;
	}
	if (syscall(SYS_renameat2, npfd, tmp, npfd, newname, flags) < 0) {
		r = -errno;
		goto fail;
	}
	tmp[0] = '\0'; /* committed: the content is at newname */
	digests_moved(FS->dg, n, &cst);
	/* the kernel's attributes of the node (its inode number) are the
	 * source's: it asks again (no lock of the rename is needed for this) */
	fuse_lowlevel_notify_inval_inode(FS->se, n->id, -1, 0);
	if (unlinkat(pfd, name, 0) < 0)
		fprintf(stderr, "casfs: a rename across filesystems left its source %s behind: %s\n", name,
			strerror(errno));
	COUNT(renames_across);
	r = 0;
	goto out;
fail:
	if (moved && node_move(n, undo, &sst, p, name) == 0)
		undo = -1;
	else if (moved)
		fprintf(stderr, "casfs: a failed rename across filesystems could not give %s its node back\n", name);
	if (tmp[0])
		unlinkat(npfd, tmp, 0);
	if (r == -EXDEV)
		COUNT(renames_exdev);
out:
	if (n)
		ino_node_unref(FS->tbl, n);
	const int fds[] = { src, in, copy, undo, dir };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}
