/* files.c — handlers of open files: open, create, read, write, flush,
 * release, fsync, fallocate, copy_file_range, lseek.  Writes feed the
 * node's digest (digest.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "casns.h"
#include "io.h"
#include "ops.h"
#include "req.h"
#include "session.h"
#include "trace.h"

int fs_files_fallback_open(ino_node *n, void *arg)
{
	(void)arg;
	struct fs_file *f = n->open_files;
	return f ? fcntl(f->fd, F_DUPFD_CLOEXEC, 3) : -1;
}

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

/* A new open file of n on the backing fd (opened with `flags`; the caller
 * asked for `caller_flags`).  A writer opened by a session is counted in
 * its trace until released.  NULL on ENOMEM (fd stays the caller's). */
static struct fs_file *file_new(struct req *q, ino_node *n, int fd, int flags, int caller_flags)
{
	struct fs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fd = fd;
	f->node = n;
	f->writer = (flags & O_ACCMODE) != O_RDONLY && n->type == S_IFREG;
	f->append = flags & O_APPEND;
	f->direct = caller_flags & O_DIRECT;
	if (q->sess && (caller_flags & O_ACCMODE) != O_RDONLY) {
		f->sess = q->sess;
		session_ref(f->sess);
		trace_writer_opened(session_trace(f->sess));
	}
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

/* Closing files wake fs_files_wait_closed. */
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t closed_cond = PTHREAD_COND_INITIALIZER;

/* True while the daemon holds n's backing inode: an open file, or a
 * caller using its fd (the background hasher, a request). */
static bool held(ino_node *n)
{
	ino_table_lock(FS->tbl);
	bool h = n->open_files != NULL || n->fd_pins > 0;
	ino_table_unlock(FS->tbl);
	return h;
}

bool fs_node_wait_released(ino_node *n, int ms)
{
	struct timespec now, step;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t end = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec + (int64_t)ms * 1000000LL;
	pthread_mutex_lock(&closed_lock);
	bool h;
	while ((h = held(n))) {
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t t = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
		if (t >= end)
			break;
		/* closes wake us; pins are short, so look again each ms */
		t += 1000000LL;
		step.tv_sec = t / 1000000000LL;
		step.tv_nsec = t % 1000000000LL;
		pthread_cond_timedwait(&closed_cond, &closed_lock, &step);
	}
	pthread_mutex_unlock(&closed_lock);
	return !h;
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
	bool last = n->open_files == NULL;
	ino_table_unlock(FS->tbl);
	atomic_fetch_sub_explicit(&FS->counters[CASFS_C_open_files], 1, memory_order_relaxed);
	if (f->writer)
		digests_release_write(FS->dg, n, f->fd);
	close(f->fd);
	if (f->sess) {
		trace_writer_closed(session_trace(f->sess));
		session_put(f->sess);
	}
	if (last) {
		pthread_mutex_lock(&closed_lock);
		pthread_cond_broadcast(&closed_cond);
		pthread_mutex_unlock(&closed_lock);
	}
	ino_node_unref(FS->tbl, n);
	free(f);
}

static void set_open_reply(struct fuse_file_info *fi, int flags)
{
	fi->keep_cache = 1; /* every change goes through casfs */
	fi->noflush = (flags & O_ACCMODE) == O_RDONLY && !FS->o.writeback;
}

void op_open(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_open);
	if (fs_is_virtual(ino)) {
		casns_open(&q, ino, fi);
		return;
	}
	ino_node *n;
	int fd = req_node_fd(&q, ino, &n);
	if (fd < 0)
		return;
	/* what a truncating open of a traced run finds is observed */
	struct stat before;
	bool trunc = q.sess && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
	int e = trunc ? fs_stat_fd(fd, &before) : 0;
	if (e < 0) {
		ino_node_fd_put(FS->tbl, n);
		req_err(&q, -e);
		return;
	}
	int flags = open_flags(fi->flags, true);
	/* the digest learns of a truncation before the backing sees it (a
	 * reader opening in between must not be served the old digest) */
	bool truncating = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY && n->type == S_IFREG;
	if (truncating)
		digests_begin_change(FS->dg, n);
	int ofd = fs_reopen_fd(fd, flags);
	if (ofd == -EACCES && flags != open_flags(fi->flags, false)) {
		/* may write but not read (an unprivileged daemon): no widening */
		flags = open_flags(fi->flags, false);
		ofd = fs_reopen_fd(fd, flags);
	}
	ino_node_fd_put(FS->tbl, n);
	if (ofd < 0) {
		req_err(&q, -ofd);
		return;
	}
	if (q.sess && n->type == S_IFREG) {
		struct trace *tr = session_trace(q.sess);
		if ((fi->flags & O_ACCMODE) == O_RDONLY)
			trace_read(tr, n, ofd);
		else
			trace_write_open(tr, n, ofd, trunc ? &before : NULL);
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		trace_foreign_change(FS->ss, q.sess, n, NULL);
	struct fs_file *f = file_new(&q, n, ofd, flags, fi->flags);
	if (!f) {
		close(ofd);
		req_err(&q, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)f;
	set_open_reply(fi, fi->flags);
	if (req_open(&q, fi) == -ENOENT)
		file_free(f); /* interrupted: the kernel won't send release */
}

void op_create(fuse_req_t r, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_create);
	struct fuse_entry_param e;
	if (fs_is_virtual(parent) || fs_reserved(name)) {
		req_err(&q, EPERM);
		return;
	}
	ino_node *p;
	int pfd = req_node_fd(&q, parent, &p);
	if (pfd < 0)
		return;
	req_creds_enter(&q);
	int flags = open_flags(fi->flags, true) | O_CREAT | (fi->flags & O_EXCL) | O_NOFOLLOW;
	int fd = openat(pfd, name, flags, mode);
	int err = errno;
	req_creds_leave(&q);
	if (fd < 0) {
		ino_node_fd_put(FS->tbl, p);
		req_err(&q, err);
		return;
	}
	int rc = fs_lookup_at(p, pfd, name, &e);
	ino_node_fd_put(FS->tbl, p);
	if (rc < 0) {
		close(fd);
		req_err(&q, -rc);
		return;
	}
	ino_node *n = ino_table_get(FS->tbl, e.ino);
	if (q.sess)
		trace_created_file(session_trace(q.sess), q.tid, p, name, fi->flags);
	trace_foreign_change(FS->ss, q.sess, p, name);
	struct fs_file *f = file_new(&q, n, fd, flags, fi->flags);
	if (!f) {
		close(fd);
		ino_table_forget(FS->tbl, n, 1);
		req_err(&q, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)f;
	set_open_reply(fi, fi->flags);
	if (req_create(&q, &e, fi) == -ENOENT) {
		file_free(f);
		ino_table_forget(FS->tbl, n, 1);
	}
}

void op_read(fuse_req_t r, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_read);
	if (fs_is_virtual(ino)) {
		casns_read(&q, ino, size, off, fi);
		return;
	}
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fs_file_of(fi)->fd;
	buf.buf[0].pos = off;
	COUNT_N(bytes_read, size);
	req_data(&q, &buf, 0);
}

void op_write_buf(fuse_req_t r, fuse_ino_t ino, struct fuse_bufvec *in, off_t off, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_write);
	if (fs_is_virtual(ino)) {
		req_err(&q, EBADF);
		return;
	}
	struct fs_file *f = fs_file_of(fi);
	size_t size = fuse_buf_size(in);
	const struct fuse_buf *b = &in->buf[in->idx];
	ssize_t n;
	if (in->count == 1 && !(b->flags & FUSE_BUF_IS_FD)) {
		/* in memory: write it and feed the digest stream */
		const char *data = (const char *)b->mem + in->off;
		n = cache_io_write_some(f->fd, data, size, off);
		if (n < 0) {
			digests_invalidate(FS->dg, f->node);
			req_err(&q, (int)-n);
			return;
		}
		off_t at = off;
		if (f->append) { /* O_APPEND writes land at the end, whatever off says */
			struct stat st;
			at = fstat(f->fd, &st) == 0 ? st.st_size - (off_t)n : -1;
		}
		if (at >= 0)
			digests_write(FS->dg, f->node, at, data, (size_t)n);
		else
			digests_invalidate(FS->dg, f->node);
	} else {
		struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = f->fd;
		out.buf[0].pos = off;
		n = fuse_buf_copy(&out, in, 0);
		digests_write(FS->dg, f->node, off, NULL, 0); /* bytes unseen: dirty */
		if (n < 0) {
			req_err(&q, (int)-n);
			return;
		}
	}
	if (f->direct && !fi->writepage && n > 0) {
		/* The kernel's direct write may race a buffered read that
		 * refills its page cache with the old bytes (asynchronous
		 * O_DIRECT writes are not invalidated after completion).  The
		 * backing has the new bytes now: drop the cached range before
		 * the write completes; a read still in flight holds its page
		 * locked, so the invalidation waits for it and removes it.
		 * Never for the page cache's own writeback (writepage): its
		 * folio waits for this very reply. */
		fuse_lowlevel_notify_inval_inode(FS->se, ino, off, n);
	}
	COUNT_N(bytes_written, (uint64_t)n);
	req_write(&q, (size_t)n);
}

void op_flush(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_flush);
	if (fs_is_virtual(ino)) {
		req_err(&q, 0);
		return;
	}
	/* close() of a duplicate reports delayed write errors (NFS & co.). */
	int d = dup(fs_file_of(fi)->fd);
	int rc = d < 0 ? -1 : close(d);
	req_err(&q, rc < 0 ? errno : 0);
}

void op_release(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_release);
	if (fs_is_virtual(ino)) {
		casns_release(&q, ino, fi);
		return;
	}
	file_free(fs_file_of(fi));
	req_err(&q, 0);
}

void op_fsync(fuse_req_t r, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_fsync);
	if (fs_is_virtual(ino)) {
		req_err(&q, 0);
		return;
	}
	int fd = fs_file_of(fi)->fd;
	int rc = datasync ? fdatasync(fd) : fsync(fd);
	req_err(&q, rc < 0 ? errno : 0);
}

void op_fallocate(fuse_req_t r, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_fallocate);
	if (fs_is_virtual(ino)) {
		req_err(&q, EBADF);
		return;
	}
	struct fs_file *f = fs_file_of(fi);
	digests_begin_change(FS->dg, f->node);
	/* as the caller: the backing strips set-user/group-id as for it */
	req_creds_enter(&q);
	int rc = fallocate(f->fd, mode, off, len);
	int e = errno;
	req_creds_leave(&q);
	digests_invalidate(FS->dg, f->node);
	req_err(&q, rc < 0 ? e : 0);
}

void op_copy_file_range(fuse_req_t r, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
			fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len,
			int flags)
{
	struct req q;
	req_begin(&q, r, CASFS_C_copy_file_range);
	if (fs_is_virtual(ino_in) || fs_is_virtual(ino_out)) {
		req_err(&q, EXDEV); /* the kernel falls back to read + write */
		return;
	}
	struct fs_file *out = fs_file_of(fi_out);
	digests_begin_change(FS->dg, out->node);
	ssize_t n = copy_file_range(fs_file_of(fi_in)->fd, &off_in, out->fd, &off_out, len, (unsigned)flags);
	int e = errno;
	digests_invalidate(FS->dg, out->node);
	if (n < 0)
		req_err(&q, e);
	else
		req_write(&q, (size_t)n);
}

void op_lseek(fuse_req_t r, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_lseek);
	if (fs_is_virtual(ino)) {
		casns_lseek(&q, ino, off, whence, fi);
		return;
	}
	off_t o = lseek(fs_file_of(fi)->fd, off, whence);
	if (o < 0)
		req_err(&q, errno);
	else
		req_lseek(&q, o);
}
