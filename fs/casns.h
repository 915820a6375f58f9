/* casns.h — casfs's own namespace under every directory: .casfs,
 * .casfs/cas and .casfs/cas/<hex>[.<ext>] (see casns.c). */
#pragma once
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "digest.h"
#include "req.h"

struct casns;

int casns_new(struct casns **ret);
/* Accepts NULL. */
void casns_free(struct casns *ns);

/* LOOKUP of RESERVED_NAME in the real directory `parent`. */
void casns_lookup_reserved(struct req *q, fuse_ino_t parent);
/* The operations on virtual ids (fs_is_virtual); an id that names no node
 * is answered ESTALE (ignored by forget). */
void casns_lookup(struct req *q, fuse_ino_t parent, const char *name);
void casns_forget(fuse_ino_t ino, uint64_t nlookup);
void casns_getattr(struct req *q, fuse_ino_t ino);
void casns_open(struct req *q, fuse_ino_t ino, struct fuse_file_info *fi);
void casns_read(struct req *q, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void casns_release(struct req *q, fuse_ino_t ino, struct fuse_file_info *fi);
void casns_lseek(struct req *q, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void casns_readdir(struct req *q, fuse_ino_t ino, size_t size, off_t off, bool plus);
void casns_getxattr(struct req *q, fuse_ino_t ino, const char *name, size_t size);
void casns_listxattr(struct req *q, fuse_ino_t ino, size_t size);
void casns_access(struct req *q, fuse_ino_t ino, int mask);
void casns_ioctl(struct req *q, fuse_ino_t ino, unsigned int cmd, size_t out_bufsz);
/* The control file behind an open .casfs/ctl (fi of its open), or NULL
 * when ino is not one. */
struct ctlfile *casns_ctlfile(fuse_ino_t ino, const struct fuse_file_info *fi);

/* The live-file index (digest → a file of this mount with that content)
 * learns from digest events: subscribe this to the digests. */
extern const digests_subscriber casns_live_subscriber;
