/* sandbox_fast.c — see sandbox_fast.h. */
#include "sandbox_fast.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "state.h"
#include "xdev.h"

/* Fast sandboxes mounted at once (one per Bazel output base in use). */
#define SBFAST_MAX 64
/* Inode numbers of a fast sandbox's tmpfs, as the kernel is told them:
 * above what a disk gives (32 bits on ext4) and below .casfs's (2^62). */
#define SBFAST_INO_BASE (1ull << 61)

/* One fast sandbox.  Readers take no lock: the fields they read are
 * atomics under a sequence count (odd while the entry changes), so a
 * reader racing with the entry's reuse for another tmpfs sees the change
 * and never mixes the two. */
struct fastmount {
	_Atomic uint64_t seq;
	_Atomic uint64_t dev;        /* the tmpfs's st_dev; 0: a free entry */
	_Atomic uint64_t root_ino;   /* the tmpfs root's own inode number */
	_Atomic uint64_t dir_ino;    /* the backing directory under it: the root's number for the kernel */
	_Atomic uint64_t parent_ino; /* that directory's parent: ".." of the root */
	int mnt_id;                  /* as statx and name_to_handle_at give it (lock) */
	int fd;                      /* the mount's root (fsmount's O_PATH fd; lock) */
};

/* What a reader learns of an entry (find). */
struct fastview {
	uint64_t index, root_ino, dir_ino, parent_ino;
};

struct sbfast {
	pthread_mutex_t lock; /* mounting and removing; the entries' fields */
	uint64_t backing_dev;
	int root_fd;          /* the private copy of the backing's mount tree */
	_Atomic unsigned live;
	bool warned;          /* said once that a directory stays on disk */
	struct fastmount m[SBFAST_MAX];
};

/* ---- the entries ------------------------------------------------------------ */

/* Whether dev is a fast sandbox's tmpfs; *ret (may be NULL) its entry's
 * numbers.  No lock (see struct fastmount). */
static bool find(struct sbfast *sb, uint64_t dev, struct fastview *ret)
{
	if (!sb || dev == 0 || dev == sb->backing_dev || !atomic_load_explicit(&sb->live, memory_order_relaxed))
		return false;
	for (int i = 0; i < SBFAST_MAX; i++) {
		struct fastmount *m = &sb->m[i];
		uint64_t seq = atomic_load_explicit(&m->seq, memory_order_acquire);
		if (seq & 1 || atomic_load_explicit(&m->dev, memory_order_relaxed) != dev)
			continue;
		struct fastview v = { (uint64_t)i, atomic_load_explicit(&m->root_ino, memory_order_relaxed),
				      atomic_load_explicit(&m->dir_ino, memory_order_relaxed),
				      atomic_load_explicit(&m->parent_ino, memory_order_relaxed) };
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&m->seq, memory_order_relaxed) != seq)
			return false; /* let go or reused meanwhile: no longer dev's */
		if (ret)
			*ret = v;
		return true;
	}
	return false;
}

/* Opens a change of entry m (lock held); entry_done closes it. */
static void entry_change(struct fastmount *m)
{
	atomic_fetch_add_explicit(&m->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void entry_done(struct fastmount *m)
{
	atomic_fetch_add_explicit(&m->seq, 1, memory_order_release);
}

/* A free entry, or NULL.  Lock held. */
static struct fastmount *free_entry(struct sbfast *sb)
{
	for (int i = 0; i < SBFAST_MAX; i++)
		if (atomic_load_explicit(&sb->m[i].dev, memory_order_relaxed) == 0)
			return &sb->m[i];
	return NULL;
}

bool sbfast_dev(struct sbfast *sb, uint64_t dev)
{
	return find(sb, dev, NULL);
}

static uint64_t map_ino(const struct fastview *v, uint64_t ino)
{
	if (ino == v->root_ino)
		return v->dir_ino;
	return SBFAST_INO_BASE | (v->index << 32) | (ino & 0xffffffffu);
}

uint64_t sbfast_ino(struct sbfast *sb, uint64_t dev, uint64_t ino)
{
	struct fastview v;
	return find(sb, dev, &v) ? map_ino(&v, ino) : ino;
}

uint64_t sbfast_dirent_ino(struct sbfast *sb, const ino_node *dir, const char *name, uint64_t d_ino)
{
	struct fastview v;
	if (!find(sb, dir->dev, &v))
		return d_ino;
	if (dir->ino == v.root_ino && strcmp(name, "..") == 0)
		return v.parent_ino;
	return map_ino(&v, d_ino);
}

/* The entry whose tmpfs is mounted on name in dirfd, with its root's stat
 * in *ret_st; NULL when name is no fast sandbox.  Lock held. */
static struct fastmount *root_at(struct sbfast *sb, int dirfd, const char *name, struct stat *ret_st)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return NULL;
	struct fastview v;
	if (!find(sb, st.st_dev, &v) || st.st_ino != v.root_ino)
		return NULL;
	struct fastmount *m = &sb->m[v.index];
	*ret_st = st;
	return m;
}

/* ---- mounting ----------------------------------------------------------------- */

/* 0 when the directory open as fd (O_RDONLY) has no entry, -ENOTEMPTY, or
 * -errno. */
static int dir_empty(int fd)
{
	char buf[4096];
	for (;;) {
		long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (got < 0)
			return -errno;
		if (got == 0)
			return 0;
		for (long pos = 0; pos < got;) {
			const char *name = buf + pos + 19; /* d_ino 8, d_off 8, d_reclen 2, d_type 1 */
			unsigned short reclen;
			memcpy(&reclen, buf + pos + 16, sizeof(reclen));
			pos += reclen;
			if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
				return -ENOTEMPTY;
		}
	}
}

/* A new tmpfs, attached nowhere yet, whose root has the mode, owner and
 * group of st: its mount's fd (O_PATH), or -errno. */
static int tmpfs_make(const struct stat *st)
{
	char mode[16], uid[16], gid[16];
	int mfd = -1, fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
	snprintf(mode, sizeof(mode), "%o", (unsigned)(st->st_mode & 07777));
	snprintf(uid, sizeof(uid), "%u", (unsigned)st->st_uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)st->st_gid);
	if (fsfd < 0 || fsconfig(fsfd, FSCONFIG_SET_STRING, "source", "casfs-sandbox", 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "mode", mode, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "uid", uid, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "gid", gid, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_FLAG, "inode32", NULL, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto out;
	mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
out:
	if (mfd < 0)
		mfd = -errno;
	if (fsfd >= 0)
		close(fsfd);
	return mfd;
}

/* Whether this kernel mounts inside a mount tree attached nowhere (Linux
 * 6.15 and later): a tmpfs on a directory of another one, both thrown
 * away.  0 or -errno. */
static int probe_detached_mounts(void)
{
	const struct stat st = { .st_mode = 0700 };
	int r = 0, d = -1, a = tmpfs_make(&st), b = tmpfs_make(&st);
	if (a < 0 || b < 0) {
		r = a < 0 ? a : b;
		goto out;
	}
	if (mkdirat(a, "p", 0700) < 0 || (d = openat(a, "p", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    move_mount(b, "", d, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		r = -errno;
out:
	if (d >= 0)
		close(d);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return r;
}

/* Mounts a fresh tmpfs, recorded in the free entry m, on the directory open
 * as dfd (not O_PATH), whose parent has inode number parent_ino.  Its root
 * gets the mode, owner, group and times of st, and the xattrs of the
 * object open as xsrc (-1: none).  Lock held.  0 or -errno. */
static int mount_on(struct sbfast *sb, struct fastmount *m, int dfd, const struct stat *st, int xsrc,
		    uint64_t parent_ino)
{
	const struct timespec ts[2] = { st->st_atim, st->st_mtim };
	struct stat dst, rst;
	struct statx sx;
	int r, root = -1, mfd = tmpfs_make(st);
	if (mfd < 0)
		return mfd;
	/* the root is made like the directory before anyone can see it */
	if ((root = fs_reopen_fd(mfd, O_RDONLY | O_DIRECTORY)) < 0) {
		r = root;
		goto fail;
	}
	if (xsrc >= 0 && (r = xdev_copy_xattrs(xsrc, NULL, root, NULL)) < 0)
		goto fail;
	if (futimens(root, ts) < 0 || fstat(root, &rst) < 0 || fstat(dfd, &dst) < 0)
		goto fail_errno;
	if (move_mount(mfd, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0 ||
	    statx(mfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0)
		goto fail_errno;
	entry_change(m);
	atomic_store_explicit(&m->root_ino, (uint64_t)rst.st_ino, memory_order_relaxed);
	atomic_store_explicit(&m->dir_ino, (uint64_t)dst.st_ino, memory_order_relaxed);
	atomic_store_explicit(&m->parent_ino, parent_ino, memory_order_relaxed);
	atomic_store_explicit(&m->dev, (uint64_t)rst.st_dev, memory_order_relaxed);
	entry_done(m);
	m->mnt_id = (int)sx.stx_mnt_id;
	m->fd = mfd;
	atomic_fetch_add_explicit(&sb->live, 1, memory_order_relaxed);
	COUNT(fast_sandboxes);
	close(root);
	return 0;
fail_errno:
	r = -errno;
fail:
	if (root >= 0)
		close(root);
	close(mfd); /* never attached: the tmpfs goes with it */
	return r;
}

/* The fast sandbox m lost its directory (the kernel detached its tmpfs):
 * its nodes are forgotten and the entry freed.  Lock held. */
static void forget(struct sbfast *sb, struct fastmount *m)
{
	ino_table_mount_gone(FS->tbl, atomic_load_explicit(&m->dev, memory_order_relaxed), m->mnt_id);
	entry_change(m);
	atomic_store_explicit(&m->dev, 0, memory_order_relaxed);
	entry_done(m);
	atomic_fetch_sub_explicit(&sb->live, 1, memory_order_relaxed);
	close(m->fd);
	m->fd = -1;
	COUNT(fast_sandboxes_removed);
}

/* -ENOTEMPTY unless the tmpfs of m is empty; 0 or -errno. */
static int root_empty(const struct fastmount *m)
{
	int root = fs_reopen_fd(m->fd, O_RDONLY | O_DIRECTORY);
	int r = root < 0 ? root : dir_empty(root);
	if (root >= 0)
		close(root);
	return r;
}

void sbfast_adopt(struct sbfast *sb, ino_node *parent, int pfd, const char *name)
{
	struct stat st;
	if (!sb || sbfast_dev(sb, parent->dev))
		return; /* off, or inside a fast sandbox already */
	pthread_mutex_lock(&sb->lock);
	int r = 0, dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0 || (uint64_t)st.st_dev != parent->dev)
		goto out; /* absent, not a directory, or a mount point already */
	ino_node *known = ino_table_find_ref(FS->tbl, st.st_dev, st.st_ino);
	if (known) {
		ino_node_unref(FS->tbl, known);
		goto out; /* the kernel holds it as the disk's directory */
	}
	struct fastmount *m = free_entry(sb);
	if ((r = dir_empty(dfd)) == 0)
		r = m ? mount_on(sb, m, dfd, &st, dfd, parent->ino) : -EMFILE;
	if (r < 0 && r != -ENOTEMPTY && !sb->warned) {
		sb->warned = true;
		fprintf(stderr, "casfs: %s stays on disk, not on a tmpfs (-o fast_sandboxes): %s\n", name,
			strerror(-r));
	}
out:
	if (dfd >= 0)
		close(dfd);
	pthread_mutex_unlock(&sb->lock);
}

int sbfast_rmdir(struct sbfast *sb, int pfd, const char *name)
{
	struct stat st;
	int r;
	pthread_mutex_lock(&sb->lock);
	/* The tmpfs is no mount point in any namespace's table, so the
	 * backing's rmdir would not say EBUSY: it would take the tmpfs away
	 * with whatever it holds. */
	struct fastmount *m = root_at(sb, pfd, name, &st);
	if (!m || (r = root_empty(m)) == 0)
		r = unlinkat(pfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
	if (r == 0 && m)
		forget(sb, m);
	pthread_mutex_unlock(&sb->lock);
	return r;
}

int sbfast_rename(struct sbfast *sb, ino_node *p, int pfd, const char *name, ino_node *np, int npfd,
		  const char *newname, unsigned int flags)
{
	struct stat st;
	struct fastmount *replaced = NULL;
	bool locked = sbfast_name(name) || sbfast_name(newname);
	int r = 0;
	if (locked) {
		pthread_mutex_lock(&sb->lock);
		if (sbfast_name(name) && root_at(sb, pfd, name, &st))
			r = -EXDEV; /* its content is on another filesystem */
		else if (sbfast_name(newname) && (replaced = root_at(sb, npfd, newname, &st)))
			r = flags & RENAME_EXCHANGE ? -EXDEV : root_empty(replaced);
	}
	if (r == 0)
		r = syscall(SYS_renameat2, pfd, name, npfd, newname, flags) < 0 ? -errno : 0;
	if (r == 0 && replaced)
		forget(sb, replaced);
	if (locked)
		pthread_mutex_unlock(&sb->lock);
	if (r == -EXDEV && !replaced && (sbfast_dev(sb, p->dev) || sbfast_dev(sb, np->dev)))
		r = xdev_rename(p, pfd, name, np, npfd, newname, flags);
	return r;
}

int sbfast_zero_range(int fd, int mode, off_t off, off_t len)
{
	if (mode & ~(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) < 0 ||
	    fallocate(fd, mode & FALLOC_FL_KEEP_SIZE, off, len) < 0)
		return -errno;
	return 0;
}

int sbfast_new(int backing_fd, struct sbfast **ret, int *ret_root_fd)
{
	struct stat st;
	struct sbfast *sb = calloc(1, sizeof(*sb));
	int r;
	if (!sb)
		return -ENOMEM;
	pthread_mutex_init(&sb->lock, NULL);
	sb->root_fd = open_tree(backing_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	/* A copy of a shared mount is a peer of it: made a slave, the tmpfs
	 * mounted in the copy propagate to no namespace (as a peer, they
	 * showed up in the mount table and made rmdir EBUSY). */
	struct mount_attr slave = { .propagation = MS_SLAVE };
	if (sb->root_fd < 0 ||
	    mount_setattr(sb->root_fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &slave, sizeof(slave)) < 0 ||
	    fstat(sb->root_fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = probe_detached_mounts()) < 0)
		goto fail;
	sb->backing_dev = st.st_dev;
	for (int i = 0; i < SBFAST_MAX; i++)
		sb->m[i].fd = -1;
	*ret = sb;
	*ret_root_fd = sb->root_fd;
	return 0;
fail:
	if (sb->root_fd >= 0)
		close(sb->root_fd);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
	return r;
}

void sbfast_free(struct sbfast *sb)
{
	if (!sb)
		return;
	for (int i = 0; i < SBFAST_MAX; i++)
		if (sb->m[i].fd >= 0)
			close(sb->m[i].fd);
	close(sb->root_fd);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}
