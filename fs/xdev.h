/* xdev.h — a rename whose source and destination are on two different
 * backing filesystems (a fast sandbox's tmpfs and the disk under the rest
 * of the mount: sandbox_fast.h), done by the daemon so that through the
 * mount it looks like a rename within one filesystem.
 *
 * The backing's renameat answers EXDEV there.  For a regular file or a
 * symlink with one link that no process has open, the daemon instead
 *   1. copies it under a temporary name in the destination directory: the
 *      content (holes kept), owner, group, xattrs, mode, access and
 *      modification times (a regular file is written unnamed, O_TMPFILE,
 *      and named only once complete);
 *   2. moves the kernel's node of the source onto the copy
 *      (ino_table_moved, digests_moved): its id, cached pages and known
 *      digest stay, nothing rereads the content;
 *   3. checks that the source did not change meanwhile (size, ctime: else
 *      the node moves back and the answer is EXDEV), and renames the copy
 *      over the destination (the commit);
 *   4. unlinks the source.
 * No fsync: a rename within one filesystem makes nothing durable either,
 * and a daemon that dies leaves the page cache intact.  A daemon killed
 * between 3 and 4 leaves both names with the content, between 1 and 3 a
 * temporary name `.casfs-rename.*` in the destination directory; never
 * neither.  The kernel holds both directories locked throughout, so no
 * process sees the temporary name or a half-made copy through the mount.
 *
 * What stays different from a rename within one filesystem: the file's
 * inode number (st_ino) and its ctime are the copy's.  Directories,
 * special files, files with several links and files open somewhere keep
 * the EXDEV (mv and Bazel then copy themselves), as do RENAME_EXCHANGE
 * and RENAME_WHITEOUT.
 *
 * Thread-safety: any FUSE worker, inside a RENAME request (the kernel
 * holds the directories' locks).
 */
#pragma once
#include "inode.h"

/* Renames name in p (open as pfd) to newname in np (npfd) by copying, as
 * above; flags: the request's (0 or RENAME_NOREPLACE emulated).  Returns
 * 0, -EXDEV when the rename cannot be emulated (nothing was changed), or
 * another -errno that a rename within one filesystem would give (-EEXIST,
 * -EISDIR, -EPERM...). */
int xdev_rename(ino_node *p, int pfd, const char *name, ino_node *np, int npfd, const char *newname,
		unsigned int flags);

/* Copies every xattr (ACLs, security labels, user.*) of one object to
 * another, each given by an fd (not O_PATH) or, with fd -1, by a path
 * whose last component is not followed (a symlink as
 * /proc/self/fd/<dir>/<name>).  0 or -errno. */
int xdev_copy_xattrs(int sfd, const char *spath, int dfd, const char *dpath);
