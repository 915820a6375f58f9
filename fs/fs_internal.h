/* fs_internal.h — state shared by the files of the daemon (fs.c, the
 * loopback; casns.c, the .casfs namespace; ingest.c, storing contents). */
#pragma once
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ctl.h"
#include "digest.h"
#include "fs.h"
#include "index.h"
#include "inode.h"

/* casfs's own namespace: a directory of this name answers lookup in every
 * directory, is never listed, and cannot be created, removed or renamed. */
#define RESERVED_NAME ".casfs"

struct casns;
struct ingest;

struct fs {
	ino_table *tbl;
	cache_index *ix;
	digests *dg;
	struct casns *ns;
	struct ingest *ing;
	int proc_fd;      /* /proc/self/fd */
	bool root_daemon; /* euid 0: act as the caller when creating */
	uid_t owner_uid;  /* who mounted: the only user who may read .casfs/cas */
	gid_t owner_gid;
	struct fs_options o;
	struct fuse_session *se;
	struct timespec started;
	uint32_t cap_eff[2], cap_prm[2], cap_inh[2];
	_Atomic uint64_t counters[CASFS_C_COUNT];
};

extern struct fs *FS;

#define COUNT(name) atomic_fetch_add_explicit(&FS->counters[CASFS_C_##name], 1, memory_order_relaxed)
#define COUNT_N(name, n) atomic_fetch_add_explicit(&FS->counters[CASFS_C_##name], (n), memory_order_relaxed)

/* Node ids: an ino_node pointer (FUSE_ROOT_ID for the root), or a casns
 * node pointer with the low bit set (allocations are 16-byte aligned). */
static inline bool fs_is_virtual(fuse_ino_t ino)
{
	return ino != FUSE_ROOT_ID && (ino & 1);
}

static inline ino_node *node_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? ino_table_root(FS->tbl) : (ino_node *)(uintptr_t)ino;
}

static inline fuse_ino_t id_of(ino_node *n)
{
	return n == ino_table_root(FS->tbl) ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

/* ---- casns.c: .casfs, .casfs/cas and .casfs/cas/<hex>[.<ext>] ----------- */

int casns_new(struct casns **ret);
void casns_free(struct casns *ns);
/* lookup of RESERVED_NAME in a real directory */
void casns_lookup_reserved(fuse_req_t req, fuse_ino_t parent);
/* the operations on virtual nodes (ino/parent satisfy fs_is_virtual) */
void casns_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void casns_forget(fuse_ino_t ino, uint64_t nlookup);
void casns_getattr(fuse_req_t req, fuse_ino_t ino);
void casns_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casns_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void casns_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casns_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void casns_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus);
void casns_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void casns_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void casns_access(fuse_req_t req, fuse_ino_t ino, int mask);
void casns_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, size_t out_bufsz);
/* The live-file index: digest -> a file on this mount with that content. */
void casns_live_add(const hasher_digest *d, uint64_t dev, uint64_t ino);
void casns_live_del(const hasher_digest *d, uint64_t dev, uint64_t ino);

/* ---- ingest.c: storing contents in the store ----------------------------- */

int ingest_new(struct ingest **ret);
/* Stops the worker after the queue drains. Accepts NULL. */
void ingest_free(struct ingest *g);
/* Queues n (a regular file whose content has digest d) for the store. */
void ingest_queue(struct ingest *g, ino_node *n, const hasher_digest *d);

/* Opens n's backing file with flags (its cached O_PATH fd reopened through
 * /proc/self/fd).  Returns the fd or -errno (fs.c). */
int fs_node_open(ino_node *n, int flags);

/* Replies to a getxattr/listxattr (fs.c). */
void fs_reply_xattr(fuse_req_t req, size_t size, const char *buf, ssize_t len, int err);
