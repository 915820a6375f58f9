/* files.c — handlers of open files: open, create, read, write, flush,
 * release, fsync, fallocate, copy_file_range, lseek.  Writes feed the
 * node's digest (digest.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "casns.h"
#include "io.h"
#include "kernel_io.h"
#include "ops.h"
#include "req.h"
#include "sandbox_fast.h"
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
 * libfuse's request buffers are not aligned for it.  So is O_APPEND: the
 * kernel sends every append at the end of the file as it knows it, which is
 * the backing's end (every change goes through this mount), so a WRITE lands
 * where it says and the digest needs no fstat to learn where.  With the
 * writeback cache the kernel may read pages to fill partial writes: `widen`
 * asks for read access on a write-only open. */
static int open_flags(int flags, bool widen)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_APPEND);
	if (FS->o.writeback && widen && (flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
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
		digests_open_write(FS->dg, n, fd, (flags & O_TRUNC) != 0);
	else if ((flags & O_TRUNC) && n->type == S_IFREG)
		digests_truncate(FS->dg, n, 0);
	return f;
}

/* The last close of a node's files wakes fs_node_wait_released, when
 * anyone waits (closed_waiters). */
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t closed_cond = PTHREAD_COND_INITIALIZER;
static _Atomic int closed_waiters;

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
	if (!held(n))
		return true; /* the common case: a file nobody has open */
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t end = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec + (int64_t)ms * 1000000LL;
	atomic_fetch_add(&closed_waiters, 1);
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
	atomic_fetch_sub(&closed_waiters, 1);
	return !h;
}

/* ---- how the kernel serves an open: cached, uncached, passthrough -----------
 *
 * Cached (the default): reads and writes go through the FUSE inode's page
 * cache, and keep_cache lets it outlive the open (every change goes through
 * casfs).
 *
 * Uncached (FOPEN_DIRECT_IO): a write-only open of a regular file that
 * nobody else has open, without O_APPEND and without the writeback cache.
 * A cached write(2) copies the caller's bytes into the FUSE page cache and
 * the WRITE copies them again out of it; an uncached WRITE is copied
 * straight from the caller's pages, and the inode's page cache, which a
 * write-only open never reads, is not filled with a second copy of what the
 * backing's page cache holds (`dd bs=1M conv=fsync` of 1 GiB: 1.9 s cached,
 * 1.0 s uncached, 0.65 s on ext4; docs/PERFORMANCE.md).  The open answers
 * keep_cache = 0, so the kernel drops pages of earlier opens there; an
 * open of the same node that comes while the uncached one lasts is cached
 * and marks it `shared`, and from then on each of its WRITEs drops the
 * kernel's cached pages of the range it replaced once the bytes are in the
 * backing and before it is answered (as for an O_DIRECT write), so no page
 * cached by a reader holds the old bytes.  O_APPEND stays cached: the
 * kernel places an uncached append at the size it has cached, without the
 * attribute refresh its cached write path makes (a file a hit restored
 * behind the kernel would be appended at its old end).  A write-only open
 * can be neither read nor mapped, so nothing else changes for its caller.
 *
 * Passthrough: a read-only open of a large file nobody else has open gets
 * kernel passthrough (kernel_io.h): its reads go to the backing file in the
 * kernel, through the backing's page cache and readahead, and never reach
 * casfs.  The kernel keeps an inode either in passthrough or in cached mode
 * and fails (EIO) an open of the other kind, with one backing file per
 * inode: so every open of an inode open in passthrough joins it (the same
 * backing id), and every other open stays cached.  A writer that joins
 * writes past casfs: its node's digest is invalidated (re-read after the
 * last close, as for any write casfs could not follow).  The inode's page
 * cache from earlier cached opens cannot serve bytes such a writer
 * replaced: a passthrough open has no keep_cache (the kernel refuses it
 * beside passthrough), so the kernel drops that cache at every such open,
 * and nothing fills it while the inode is in passthrough.  OPEN must reach
 * casfs for every file (the action cache records
 * reads there), so a small file gains nothing (keep_cache serves it without
 * a READ) and its registration would cost more than its read: only files
 * of PASSTHROUGH_MIN_SIZE and more get it.  An uncached open is never in
 * passthrough (it needs no peers, and its peers see it as one).
 *
 * pt_lock orders the decisions, registrations and releases of backing
 * ids (backing_id is read and written under it), so two racing opens and a
 * release agree on whether an id exists, and an open that comes while an
 * uncached one lasts marks it before its own reply. */
#define PASSTHROUGH_MIN_SIZE (1 << 20)
static pthread_mutex_t pt_lock = PTHREAD_MUTEX_INITIALIZER;

/* Decides f's mode (f just added to its node's open files; fi its reply,
 * caller_flags the caller's open flags).  Returns the backing id to answer
 * the open with, or 0 (cached or uncached).  may_pass: passthrough may be
 * chosen (not for a CREATE). */
static int mode_choose(struct fs_file *f, struct fuse_file_info *fi, int caller_flags, bool may_pass)
{
	ino_node *n = f->node;
	struct stat st;
	int id = 0;
	bool peers = false;
	if (n->type != S_IFREG)
		return 0;
	pthread_mutex_lock(&pt_lock);
	ino_table_lock(FS->tbl);
	for (struct fs_file *o = n->open_files; o; o = o->next) {
		if (o == f)
			continue;
		peers = true;
		if (o->backing_id > 0)
			id = o->backing_id;
		if (o->uncached)
			atomic_store(&o->shared, true);
	}
	ino_table_unlock(FS->tbl);
	if (!peers && f->writer && (caller_flags & O_ACCMODE) == O_WRONLY && !(caller_flags & O_APPEND) &&
	    !FS->o.writeback && !f->direct) {
		f->uncached = true;
		fi->direct_io = 1;
		fi->keep_cache = 0;
		COUNT(uncached_opens);
	} else if (may_pass && kio_passthrough()) {
		if (!id && !peers && !f->writer && fstat(f->fd, &st) == 0 && st.st_size >= PASSTHROUGH_MIN_SIZE &&
		    (id = kio_backing_open(f->fd)) > 0)
			COUNT(passthrough_backings);
		if (id < 0)
			id = 0; /* the backing cannot be passed through (stacked, say) */
	} else {
		id = 0;
	}
	f->backing_id = id;
	pthread_mutex_unlock(&pt_lock);
	if (id && f->writer)
		digests_invalidate(FS->dg, n);
	if (id)
		COUNT(passthrough_opens);
	return id;
}

/* Takes f out of its node's open files; the last file of a backing id
 * releases it.  Returns true when the node has no open file left. */
static bool file_unlink(struct fs_file *f)
{
	ino_node *n = f->node;
	bool pt = f->backing_id > 0, last_of_id = pt;
	if (pt)
		pthread_mutex_lock(&pt_lock);
	ino_table_lock(FS->tbl);
	struct fs_file **pp = (struct fs_file **)&n->open_files;
	while (*pp && *pp != f)
		pp = &(*pp)->next;
	if (*pp)
		*pp = f->next;
	bool last = n->open_files == NULL;
	for (struct fs_file *o = n->open_files; o && last_of_id; o = o->next)
		last_of_id = o->backing_id != f->backing_id;
	ino_table_unlock(FS->tbl);
	if (pt) {
		if (last_of_id)
			kio_backing_close(f->backing_id);
		pthread_mutex_unlock(&pt_lock);
	}
	return last;
}

static void file_free(struct fs_file *f)
{
	ino_node *n = f->node;
	bool last = file_unlink(f);
	atomic_fetch_sub_explicit(&FS->counters[CASFS_C_open_files], 1, memory_order_relaxed);
	if (f->writer)
		digests_release_write(FS->dg, n, f->fd, f->sess != NULL);
	close(f->fd);
	if (f->sess) {
		trace_writer_closed(session_trace(f->sess));
		session_put(f->sess);
	}
	if (last && atomic_load(&closed_waiters)) {
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

/* After an open with O_TRUNC by a caller without CAP_FSETID (the kernel
 * says so, kernel_io.h): set-user/group-ID go as ext4 drops them at
 * truncation.  Returns req_kill_suidgid's answer (1: a bit went, and the
 * kernel's cached mode is stale). */
static int kill_at_trunc(struct req *q, int fd, int flags, bool kill)
{
	return kill && (flags & O_TRUNC) ? req_kill_suidgid(q, fd) : 0;
}

void op_open(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_open);
	bool kill = fi->flags & FS_KILL_SUIDGID;
	fi->flags &= ~FS_KILL_SUIDGID;
	if (fs_is_virtual(ino)) {
		casns_open(&q, ino, fi);
		return;
	}
	ino_node *n = req_node(&q, ino);
	if (!n)
		return;
	/* -o fast_sandboxes: n stays pinned until the open file is n's, so
	 * that a rename across filesystems (ino_table_moved, which waits for
	 * both) never leaves ofd on the inode n just left */
	int pin = FS->sb ? ino_node_fd_get(FS->tbl, n) : -1;
	if (FS->sb && pin < 0) {
		req_err(&q, -pin);
		return;
	}
	/* what a truncating open of a traced run finds is observed: its
	 * stat from before the truncation */
	struct stat before;
	bool trunc = q.sess && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
	int e = 0;
	if (trunc) {
		int sfd = fs_node_open(n, O_PATH);
		e = sfd < 0 ? sfd : fs_stat_fd(sfd, &before);
		if (sfd >= 0)
			close(sfd);
	}
	if (e < 0) {
		if (pin >= 0)
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
	int ofd = fs_node_open(n, flags);
	if (ofd == -EACCES && flags != open_flags(fi->flags, false)) {
		/* may write but not read (an unprivileged daemon): no widening */
		flags = open_flags(fi->flags, false);
		ofd = fs_node_open(n, flags);
	}
	int rc = ofd < 0 ? ofd : kill_at_trunc(&q, ofd, fi->flags, kill);
	if (rc < 0) {
		if (ofd >= 0)
			close(ofd);
		if (pin >= 0)
			ino_node_fd_put(FS->tbl, n);
		req_err(&q, -rc);
		return;
	}
	if (rc > 0)
		fuse_lowlevel_notify_inval_inode(FS->se, ino, -1, 0);
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
	if (pin >= 0)
		ino_node_fd_put(FS->tbl, n);
	if (!f) {
		close(ofd);
		req_err(&q, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)f;
	set_open_reply(fi, fi->flags);
	int id = mode_choose(f, fi, fi->flags, true);
	if (id)
		kio_open_reply_passthrough(id);
	rc = req_open(&q, fi);
	kio_open_reply_done();
	if (rc == -ENOENT)
		file_free(f); /* interrupted: the kernel won't send release */
}

/* An O_TRUNC create of name in pfd: when name is a regular file casfs
 * knows, its digest changes now. */
static void create_trunc_begin(int pfd, const char *name)
{
	struct stat st;
	if (!FS->dg || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return;
	ino_node *n = ino_table_find_ref(FS->tbl, st.st_dev, st.st_ino);
	if (!n)
		return;
	digests_begin_change(FS->dg, n);
	ino_node_unref(FS->tbl, n);
}

void op_create(fuse_req_t r, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct req q;
	req_begin(&q, r, CASFS_C_create);
	struct fuse_entry_param e;
	bool kill = fi->flags & FS_KILL_SUIDGID;
	fi->flags &= ~FS_KILL_SUIDGID;
	if (fs_is_virtual(parent) || fs_reserved(name)) {
		req_err(&q, EPERM);
		return;
	}
	ino_node *p;
	int pfd = req_node_fd(&q, parent, &p);
	if (pfd < 0)
		return;
	/* a name the kernel thought absent may be an existing file (its
	 * entry expired or evicted, a link made behind the mount): a
	 * truncation reaches its digest before the backing sees it, as in
	 * op_open (a .casfs/cas reader of that content must not be served
	 * the emptied file in between).  The kernel holds the directory
	 * locked across CREATE, so the name stays this inode meanwhile. */
	if ((fi->flags & O_TRUNC) && !(fi->flags & O_EXCL))
		create_trunc_begin(pfd, name);
	req_creds_enter(&q);
	int flags = open_flags(fi->flags, true) | O_CREAT | (fi->flags & O_EXCL) | O_NOFOLLOW;
	int fd = openat(pfd, name, flags, mode);
	int err = errno;
	req_creds_leave(&q);
	/* an existing file opened O_TRUNC (the kernel thought it absent); the
	 * reply carries its attributes from after the kill */
	int rc = fd < 0 ? -err : kill_at_trunc(&q, fd, fi->flags, kill);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		ino_node_fd_put(FS->tbl, p);
		req_err(&q, -rc);
		return;
	}
	rc = fs_lookup_at(p, pfd, name, &e);
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
	mode_choose(f, fi, fi->flags, false);
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

/* A write's bytes are in the backing file: the kernel's cached pages of a
 * direct write, or of an uncached open's write while the node has another
 * open, are dropped, the bytes counted. */
static void write_landed(fuse_ino_t ino, const struct fs_file *f, const struct fuse_file_info *fi, off_t off,
			 size_t n)
{
	if ((f->direct || (f->uncached && atomic_load(&f->shared))) && !fi->writepage && n > 0) {
		/* The kernel's direct write may race a buffered read that
		 * refills its page cache with the old bytes (asynchronous
		 * O_DIRECT writes are not invalidated after completion).  The
		 * backing has the new bytes now: drop the cached range before
		 * the write completes; a read still in flight holds its page
		 * locked, so the invalidation waits for it and removes it.
		 * Never for the page cache's own writeback (writepage): its
		 * folio waits for this very reply. */
		fuse_lowlevel_notify_inval_inode(FS->se, ino, off, (off_t)n);
	}
	COUNT_N(bytes_written, (uint64_t)n);
}

struct write_reply {
	struct req *q;
	size_t n;
};

static void write_reply_send(void *arg)
{
	struct write_reply *w = arg;
	req_write(w->q, w->n);
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
	/* a run writing through a file opened before it (3>>log): the bytes
	 * are an effect no hit would have */
	if (q.sess && f->sess != q.sess)
		trace_inherited_write(session_trace(q.sess));
	ssize_t n;
	if (fi->flags & FS_KILL_SUIDGID) {
		/* before the bytes land, as ext4 does; the kernel's cached mode
		 * is stale once a bit went */
		int k = req_kill_suidgid(&q, f->fd);
		if (k < 0) {
			req_err(&q, -k);
			return;
		}
		if (k > 0)
			fuse_lowlevel_notify_inval_inode(FS->se, ino, -1, 0);
	}
	if (in->count == 1 && !(b->flags & FUSE_BUF_IS_FD)) {
		/* in memory: write it and feed the digest stream */
		const char *data = (const char *)b->mem + in->off;
		uint64_t token = digests_write_begin(FS->dg, f->node);
		n = cache_io_write_some(f->fd, data, size, off);
		if (n < 0) {
			digests_invalidate(FS->dg, f->node);
			req_err(&q, (int)-n);
			return;
		}
		write_landed(ino, f, fi, off, (size_t)n);
		/* answered before the bytes are hashed (digest.h) */
		struct write_reply w = { &q, (size_t)n };
		digests_write_reply(FS->dg, f->node, token, off, data, (size_t)n, write_reply_send, &w);
		return;
	}
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
	write_landed(ino, f, fi, off, (size_t)n);
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

/* fallocate and copy_file_range run as the caller, so the backing drops
 * set-user/group-ID as ext4 would for it (the kernel leaves that to casfs,
 * kernel_io.h, and sends no flag for these).  The set-ID bits of the file
 * open as fd before the call (0 when none, or unknown). */
static mode_t setid_bits(int fd)
{
	struct stat st;
	return fs_stat_fd(fd, &st) == 0 ? st.st_mode & (S_ISUID | S_ISGID) : 0;
}

/* After such a call: when a set-ID bit went, the kernel's cached mode is
 * stale. */
static void setid_changed(fuse_ino_t ino, int fd, mode_t before)
{
	if (before && setid_bits(fd) != before)
		fuse_lowlevel_notify_inval_inode(FS->se, ino, -1, 0);
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
	mode_t before = setid_bits(f->fd);
	/* as the caller: the backing strips set-user/group-id as for it */
	req_creds_enter(&q);
	int rc = fallocate(f->fd, mode, off, len);
	int e = errno;
	if (rc < 0 && e == EOPNOTSUPP && (mode & FALLOC_FL_ZERO_RANGE) && sbfast_dev(FS->sb, f->node->dev)) {
		rc = sbfast_zero_range(f->fd, mode, off, len); /* as on the disk */
		e = -rc;
	}
	req_creds_leave(&q);
	setid_changed(ino, f->fd, before);
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
	mode_t before = setid_bits(out->fd);
	/* as the caller, as fallocate */
	req_creds_enter(&q);
	ssize_t n = copy_file_range(fs_file_of(fi_in)->fd, &off_in, out->fd, &off_out, len, (unsigned)flags);
	int e = errno;
	req_creds_leave(&q);
	setid_changed(ino_out, out->fd, before);
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
