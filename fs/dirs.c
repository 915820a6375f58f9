/* dirs.c — handlers of directories: opendir, readdir(plus), fsyncdir,
 * and statfs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "casns.h"
#include "kcache.h"
#include "ops.h"
#include "req.h"
#include "sandbox_fast.h"
#include "session.h"
#include "trace.h"

void op_opendir(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_opendir);
	/* With FUSE_CAP_NO_OPENDIR_SUPPORT, ENOSYS tells the kernel to stop
	 * sending OPENDIR/RELEASEDIR; each READDIR opens the directory. */
	req_err(&q, ENOSYS);
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
static void do_readdir(struct req *q, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	ino_node *n;
	char *reply = NULL, *dbuf = NULL;
	size_t used = 0;
	int err = 0, dfd = -1;
	int fd = req_node_fd(q, ino, &n);
	if (fd < 0)
		return;
	dfd = fs_reopen_fd(fd, O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		err = -dfd;
		goto out;
	}
	if (q->sess)
		trace_listed(session_trace(q->sess), n, dfd);
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
			if (fs_reserved(name))
				continue; /* the namespace's name: never listed */
			bool dot = name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
			size_t entsize;
			struct stat st = { .st_ino = sbfast_dirent_ino(FS->sb, n, name, d->d_ino) };
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
				entsize = fuse_add_direntry(q->r, reply + used, size - used, name, &st, d->d_off);
				if (entsize > size - used)
					goto full;
				used += entsize;
				continue;
			}
			struct fuse_entry_param e = { .attr = st };
			if (!dot) {
				int rc = fs_lookup_at(n, dfd, name, &e);
				if (rc == -ENOENT)
					continue; /* removed between getdents and now */
				if (rc < 0) {
					err = -rc;
					goto out;
				}
			}
			entsize = fuse_add_direntry_plus(q->r, reply + used, size - used, name, &e, d->d_off);
			if (entsize > size - used) {
				if (!dot) /* did not fit: undo the reference we just took */
					ino_table_forget(FS->tbl, ino_table_get(FS->tbl, e.ino), 1);
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
	if (err && used == 0) {
		req_err(q, err);
	} else {
		if (used == 0) /* the end: the kernel now holds the whole listing */
			kcache_listed(FS->kc, FS->ss, ino);
		req_buf(q, reply, used);
	}
	free(reply);
	free(dbuf);
}

void op_readdir(fuse_req_t r, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_readdir);
	if (fs_is_virtual(ino))
		casns_readdir(&q, ino, size, off, false);
	else
		do_readdir(&q, ino, size, off, false);
}

void op_readdirplus(fuse_req_t r, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_readdirplus);
	if (fs_is_virtual(ino))
		casns_readdir(&q, ino, size, off, true);
	else
		do_readdir(&q, ino, size, off, true);
}

void op_fsyncdir(fuse_req_t r, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_fsync);
	if (fs_is_virtual(ino)) {
		req_err(&q, 0);
		return;
	}
	ino_node *n;
	int fd = req_node_fd(&q, ino, &n);
	if (fd < 0)
		return;
	int dfd = fs_reopen_fd(fd, O_RDONLY | O_DIRECTORY);
	int rc = dfd < 0 ? dfd : ((datasync ? fdatasync(dfd) : fsync(dfd)) < 0 ? -errno : 0);
	if (dfd >= 0)
		close(dfd);
	ino_node_fd_put(FS->tbl, n);
	req_err(&q, -rc);
}

void op_statfs(fuse_req_t r, fuse_ino_t ino)
{
	struct req q;
	req_begin(&q, r, CASFS_C_statfs);
	struct statvfs sv;
	ino_node *n;
	fuse_ino_t id = ino;
	/* one filesystem throughout: .casfs and fast sandboxes answer as the root */
	if (fs_is_virtual(ino) || ((n = ino_table_get(FS->tbl, ino)) && sbfast_dev(FS->sb, n->dev)))
		id = FUSE_ROOT_ID;
	int fd = req_node_fd(&q, id, &n);
	if (fd < 0)
		return;
	int rc = fstatvfs(fd, &sv);
	int e = errno;
	ino_node_fd_put(FS->tbl, n);
	if (rc < 0)
		req_err(&q, e);
	else
		req_statfs(&q, &sv);
}
