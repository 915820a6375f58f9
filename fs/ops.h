/* ops.h — the FUSE handlers of each family, wired into libfuse by fs.c,
 * and the open-file record they share. */
#pragma once
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "state.h"

/* One open file of a real node (fi->fh). */
struct fs_file {
	int fd;
	bool writer;  /* opened for writing: feeds the node's digest */
	bool direct;  /* the caller opened with O_DIRECT */
	bool uncached; /* answered FOPEN_DIRECT_IO: a lone write-only open
			  (files.c, mode_choose) */
	_Atomic bool shared; /* uncached, and another open of the node came
				 meanwhile: its writes drop the kernel's cached
				 pages of what they replaced */
	int backing_id; /* > 0: the kernel passes its reads and writes through
			   to the backing (kernel_io.h); under files.c's lock */
	struct session *sess; /* opened for writing by a session (referenced) */
	ino_node *node;
	struct fs_file *next; /* node->open_files, under the table lock */
};

static inline struct fs_file *fs_file_of(const struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

/* entries.c */
void op_lookup(fuse_req_t r, fuse_ino_t parent, const char *name);
void op_forget(fuse_req_t r, fuse_ino_t ino, uint64_t nlookup);
void op_forget_multi(fuse_req_t r, size_t count, struct fuse_forget_data *f);
void op_getattr(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t r, fuse_ino_t ino, struct stat *attr, int valid, struct fuse_file_info *fi);
void op_readlink(fuse_req_t r, fuse_ino_t ino);
void op_mknod(fuse_req_t r, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void op_mkdir(fuse_req_t r, fuse_ino_t parent, const char *name, mode_t mode);
void op_symlink(fuse_req_t r, const char *link, fuse_ino_t parent, const char *name);
void op_unlink(fuse_req_t r, fuse_ino_t parent, const char *name);
void op_rmdir(fuse_req_t r, fuse_ino_t parent, const char *name);
void op_rename(fuse_req_t r, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags);
void op_link(fuse_req_t r, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);

/* files.c */
void op_open(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t r, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi);
void op_read(fuse_req_t r, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_write_buf(fuse_req_t r, fuse_ino_t ino, struct fuse_bufvec *in, off_t off, struct fuse_file_info *fi);
void op_flush(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi);
void op_release(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t r, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_fallocate(fuse_req_t r, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi);
void op_copy_file_range(fuse_req_t r, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
			fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len,
			int flags);
void op_lseek(fuse_req_t r, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
/* The table's fallback when a node cannot be reopened (an unlinked file):
 * an fd borrowed from one of its open files, or -1.  Table lock held. */
int fs_files_fallback_open(ino_node *n, void *arg);
/* Waits up to ms milliseconds until the daemon holds nothing of n's
 * backing inode (no open file, no caller using its fd).  True when it
 * holds nothing. */
bool fs_node_wait_released(ino_node *n, int ms);

/* dirs.c */
void op_opendir(fuse_req_t r, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t r, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t r, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_fsyncdir(fuse_req_t r, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_statfs(fuse_req_t r, fuse_ino_t ino);

/* xattrs.c */
void op_getxattr(fuse_req_t r, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t r, fuse_ino_t ino, size_t size);
void op_setxattr(fuse_req_t r, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags);
void op_removexattr(fuse_req_t r, fuse_ino_t ino, const char *name);
/* The digest of regular file n (fd: any fd of it) in hex: 0 or -errno
 * (-ENODATA when hashing is compiled out). */
int fs_file_digest_hex(ino_node *n, int fd, char hex[HASHER_HEX_LEN + 1]);
/* fs_file_digest_hex for request q: a hash stops when q is interrupted or
 * the session ends (-EINTR). */
struct req;
int fs_req_digest_hex(struct req *q, ino_node *n, int fd, char hex[HASHER_HEX_LEN + 1]);

/* control.c */
void op_access(fuse_req_t r, fuse_ino_t ino, int mask);
void op_ioctl(fuse_req_t r, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
	      unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz);
