/* sandbox_fast.h — -o fast_sandboxes: Bazel's sandbox trees on private
 * tmpfs mounts that only the daemon sees.
 *
 * Bazel started with --sandbox_base DIR makes every action's sandbox below
 * DIR/bazel-sandbox.<hash of its output base>: a tree of directories, one
 * symlink per input and empty output directories, created before the
 * action and deleted right after it; Bazel removes the whole directory at
 * the end of every command.  On a disk each of those entries is a
 * journaled change.  With this option the daemon serves the backing
 * directory through a private copy of its mount tree (open_tree
 * OPEN_TREE_CLONE | AT_RECURSIVE: the same filesystems, attached nowhere,
 * in no mount namespace's table; made a slave, so that nothing mounted in
 * it propagates to a shared original; a filesystem mounted below the
 * backing after casfs started is not seen) and mounts a fresh tmpfs in that copy on
 * the backing directory of every directory named `bazel-sandbox.*`
 *   - that a MKDIR creates, or
 *   - that a lookup (LOOKUP, READDIRPLUS, the entry of a create) finds
 *     empty while the kernel holds no node of it (after a remount),
 * so every backing call below it hits memory.  The mount is made with the
 * new mount API on the directory's fd (fsopen, fsconfig, fsmount,
 * move_mount; no path into the backing); the tmpfs's root takes the
 * directory's mode, owner, group, times and xattrs; its options are
 * nosuid, nodev, inode32, and tmpfs's default size (half the RAM).
 *
 * Nothing else sees these mounts: not /proc/mounts, findmnt or df, not
 * other mount namespaces (Bazel's linux-sandbox copies none), not a process
 * looking at the backing directory directly, where the directory stays
 * empty.  They go with the daemon: when casfs is unmounted, or the daemon
 * is killed, the kernel frees the private tree and the tmpfs with what
 * they still hold (sandboxes are scratch: Bazel empties them itself), and
 * a daemon never finds one left behind.
 *
 * RMDIR of a fast sandbox's directory checks that its tmpfs is empty
 * (ENOTEMPTY, as for a directory) and removes the directory, which detaches
 * the tmpfs; a directory renamed over an empty one does the same.
 *
 * Through the mount it stays one filesystem:
 *   - inode numbers: the root reports the number of the directory under
 *     it (as its parent's listing shows), and every other inode of a tmpfs
 *     2^61 + (mount index << 32) + its tmpfs number, so no two files of the
 *     mount share a number (tmpfs's numbers are small and would collide
 *     with the disk's);
 *   - statfs anywhere answers for the backing root; st_dev is the FUSE
 *     mount's anyway;
 *   - a rename of a regular file or symlink into or out of a sandbox is
 *     done by copying (xdev.h): only the file's inode number and ctime
 *     change.  A directory renamed across gets EXDEV, and so does a fast
 *     sandbox's directory itself renamed anywhere (its content lives on
 *     another filesystem): mv and Bazel then copy.  A hard link across is
 *     EXDEV, as between two filesystems.
 *
 * Thread-safety: every function may be called from any FUSE worker;
 * mounting and removing are serialized by the module's lock, the inode
 * number mapping reads without it.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "inode.h"

#define SBFAST_PREFIX "bazel-sandbox."

struct sbfast;

/* Starts the option for the backing root open as backing_fd: makes the
 * private copy of its mount tree, whose root fd (kept by sb) the daemon
 * serves from, and checks that this process may mount a tmpfs there.
 * Returns 0, *ret and *ret_root_fd, or -errno (-EPERM: mounting is not
 * allowed; -EINVAL: the kernel mounts nothing in a tree attached nowhere,
 * before Linux 6.15). */
int sbfast_new(int backing_fd, struct sbfast **ret, int *ret_root_fd);
/* Lets go of the private tree (the kernel frees it and the tmpfs mounts
 * once the inode table's fds are closed too).  Accepts NULL. */
void sbfast_free(struct sbfast *sb);

/* The names the option looks at: bazel-sandbox.<something>. */
static inline bool sbfast_name(const char *name)
{
	return strncmp(name, SBFAST_PREFIX, sizeof(SBFAST_PREFIX) - 1) == 0 && name[sizeof(SBFAST_PREFIX) - 1];
}

/* Before `name` (sbfast_name) in parent (open as pfd) is looked up: mounts
 * a tmpfs on it when it is an empty directory of the backing's own that
 * the kernel does not know yet.  A failure leaves it on disk (and says so
 * in the log once).  sb may be NULL (the option is off). */
void sbfast_adopt(struct sbfast *sb, ino_node *parent, int pfd, const char *name);

/* The inode number the kernel is told for backing inode (dev, ino).  sb
 * may be NULL: ino. */
uint64_t sbfast_ino(struct sbfast *sb, uint64_t dev, uint64_t ino);
/* The same for a directory entry's d_ino read from the backing directory
 * of node dir (whose "..", at a tmpfs's root, is the directory's parent). */
uint64_t sbfast_dirent_ino(struct sbfast *sb, const ino_node *dir, const char *name, uint64_t d_ino);
/* Whether dev is one of the fast sandboxes' tmpfs (false when sb is NULL). */
bool sbfast_dev(struct sbfast *sb, uint64_t dev);

/* fallocate(FALLOC_FL_ZERO_RANGE), which tmpfs refuses (EOPNOTSUPP), on
 * the file open as fd in a fast sandbox: the range punched out and then
 * allocated (zeros, as on the disk; the size grows unless
 * FALLOC_FL_KEEP_SIZE).  0 or -errno (-EOPNOTSUPP for other flags). */
int sbfast_zero_range(int fd, int mode, off_t off, off_t len);

/* RMDIR of name (sbfast_name) in the directory open as pfd: a fast
 * sandbox goes only when its tmpfs is empty (else -ENOTEMPTY); any other
 * directory as usual.  0 or -errno. */
int sbfast_rmdir(struct sbfast *sb, int pfd, const char *name);

/* RENAME of name in p (open as pfd) to newname in np (npfd) with flags,
 * where fast sandboxes may be involved: their directories are not moved
 * (EXDEV) and are replaced only when empty (ENOTEMPTY); a regular file or
 * symlink crossing between a tmpfs and the disk is copied (xdev.h); other
 * renames go to the backing as they are.  0 or -errno. */
int sbfast_rename(struct sbfast *sb, ino_node *p, int pfd, const char *name, ino_node *np, int npfd,
		  const char *newname, unsigned int flags);
