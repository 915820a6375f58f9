/* state.c — the daemon's shared state (see state.h). */
#include "state.h"
#include "io.h"

#include "sandbox_fast.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct fs *FS;
_Thread_local bool fs_request_thread;

int fs_reopen_fd(int fd, int flags)
{
	return cache_io_reopen(FS->proc_fd, fd, flags);
}

int fs_node_open(ino_node *n, int flags)
{
	int fd = ino_node_open_uncached(FS->tbl, n, flags);
	if (fd >= 0)
		return fd;
	/* cached (reopened), or a handle that failed (an unlinked file the
	 * table reaches another way): the pinned fd's way */
	fd = ino_node_fd_get(FS->tbl, n);
	if (fd < 0)
		return fd;
	int r = fs_reopen_fd(fd, flags);
	ino_node_fd_put(FS->tbl, n);
	return r;
}

int fs_stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

void fs_told_stat(struct stat *st)
{
	st->st_ino = sbfast_ino(FS->sb, st->st_dev, st->st_ino);
	if (S_ISREG(st->st_mode))
		st->st_blksize = FS_FILE_BLKSIZE;
}

void fs_fill_entry(struct fuse_entry_param *e, ino_node *n, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->id;
	e->generation = n->generation;
	e->attr = *st;
	fs_told_stat(&e->attr);
	e->attr_timeout = FS->o.timeout;
	e->entry_timeout = FS->o.timeout;
	/* a fifo, socket or device: every path walk through it asks again, so
	 * that a traced run that opens one is seen (trace_exists) */
	if (S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode) || S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		e->attr_timeout = e->entry_timeout = 0;
}

int fs_lookup_at(ino_node *parent, int pfd, const char *name, struct fuse_entry_param *e)
{
	struct stat st;
	if (FS->sb && sbfast_name(name))
		sbfast_adopt(FS->sb, parent, pfd, name);
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	ino_node *n = ino_table_find(FS->tbl, parent, name, st.st_dev, st.st_ino, 1);
	if (!n) {
		int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		int r = fs_stat_fd(fd, &st);
		if (r < 0) {
			close(fd);
			return r;
		}
		r = ino_table_insert(FS->tbl, parent, name, fd, &st, 1, &n);
		if (r < 0)
			return r;
	}
	fs_fill_entry(e, n, &st);
	return 0;
}
